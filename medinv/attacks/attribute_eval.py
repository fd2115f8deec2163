"""The attribute-inference evaluation that medinv.aia and medinv.population share.

Who is attacked: the deployment's training records ('members') and, when
attack.nonmember_fraction > 0, part of its held-out records ('non-members'); the attacker's
auxiliary records are another, disjoint part of the held-out records (`attack_sets`).

One release draw (`evaluate`): the deployment answers every query through
`defenses.release_channel`, with one fold of the draw's defense key per use (`CHANNEL_USES`):
  targets    what it releases for each target;
  aux        what the attacker's own queries of its auxiliary records return;
  confusion  pi(released | predicted), measured on the deployment's training records (the
             definition both experiments use);
  test       the released labels' accuracy on the held-out records (the defense's utility).
From those releases it builds the attacker's `attribute_attacks.Observation`, runs every
configured attack (`attribute_attacks.configure`) and scores each guess per target group
(`group_accuracy`).
The no-model baselines run once per attribute beside it (`evaluate_baselines`).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from medinv import defenses
from medinv.attacks import attribute
from medinv.attacks import attribute_attacks

if TYPE_CHECKING:
  from medinv import data as data_lib

CHANNEL_USES = ('targets', 'aux', 'confusion', 'test')
GROUPS = ('members', 'non-members')


def group_accuracy(correct: jax.Array, member: jax.Array) -> jax.Array:
  """[accuracy over members, accuracy over non-members] (nan for an empty group)."""
  correct = correct.astype(jnp.float32)
  groups = jnp.stack([member, 1.0 - member])
  return jnp.sum(groups * correct, -1) / jnp.sum(groups, -1)


# ----------------------------------------------------------------------------- target sets

def check_disjoint(target_ids: np.ndarray, aux_ids: np.ndarray) -> None:
  """Raises when an auxiliary record is also a target (ids index the held-out records)."""
  overlap = np.intersect1d(target_ids, aux_ids)
  if overlap.size:
    raise ValueError(f'the auxiliary set overlaps the targets in {overlap.size} records '
                     f'(held-out ids {overlap[:10].tolist()}...)')


def attack_sets(task: data_lib.Task, key: jax.Array, attack_config):
  """(targets Records, member flags, auxiliary Records) from a task's train/held-out split."""
  heldout = task.records_test
  order = np.asarray(jax.random.permutation(key, len(heldout)))
  num_nonmembers = int(round(attack_config.nonmember_fraction * len(heldout)))
  num_aux = min(int(round(attack_config.aux_fraction * len(heldout))),
                len(heldout) - num_nonmembers)
  nonmember_ids, aux_ids = order[:num_nonmembers], order[len(heldout) - num_aux:]
  cap = attack_config.max_records or None
  members = task.records_train.take(np.arange(len(task.records_train))[:cap])
  nonmember_ids, aux_ids = nonmember_ids[:cap], aux_ids[:cap]
  check_disjoint(nonmember_ids, aux_ids)
  nonmembers, aux = heldout.take(np.sort(nonmember_ids)), heldout.take(np.sort(aux_ids))
  targets = dataclasses.replace(
      members, features=np.concatenate([members.features, nonmembers.features]),
      labels=np.concatenate([members.labels, nonmembers.labels]))
  member = np.concatenate([np.ones(len(members)), np.zeros(len(nonmembers))]).astype(np.float32)
  return targets, member, aux


def record_arrays(targets, member, aux, task: data_lib.Task) -> dict:
  """The host arrays every attribute's evaluation reads (records, labels, target groups)."""
  return jax.device_get({
      'targets': jnp.asarray(targets.features),
      'target_labels': jnp.asarray(targets.labels),
      'member': jnp.asarray(member),
      'aux': jnp.asarray(aux.features),
      'train': jnp.asarray(task.records_train.features),
      'test': jnp.asarray(task.records_test.features),
      'test_labels': jnp.asarray(task.records_test.labels),
  })


def attribute_arrays(targets, aux, name: str) -> dict:
  """The host arrays of one sensitive attribute: its column, candidates, prior and truths."""
  column_index = targets.column_index(name)
  column = targets.columns[column_index]
  aux_truth = column.candidate_index(aux.features[:, column_index]).astype(np.int32)
  return jax.device_get({
      'column': jnp.int32(column_index),
      'candidates': jnp.asarray(column.candidates),
      # The attacker's prior: the attribute's marginal among its auxiliary records.
      'prior': attribute.attribute_prior(jnp.asarray(aux_truth), len(column.candidates)),
      'target_truth': jnp.asarray(column.candidate_index(targets.features[:, column_index])),
      'aux_truth': jnp.asarray(aux_truth),
  })


# ----------------------------------------------------------------------------- evaluation

def channel_keys(defense_key: jax.Array) -> dict[str, jax.Array]:
  """One key per use of the release channel in a draw: fold_in(defense_key, i)."""
  return {use: jax.random.fold_in(defense_key, i) for i, use in enumerate(CHANNEL_USES)}


def observe(key: dict, flip_prob, arrays: dict, view_params, *, apply_fn, release: str,
            decimals: int, noise_std: float) -> attribute_attacks.Observation:
  """What the attacker holds under one release draw (key: `channel_keys`).

  arrays: `record_arrays` merged with one `attribute_arrays`; view_params: (model params,
  scaler mean, scaler std); flip_prob may be traced.
  """
  view_fn = functools.partial(defenses.candidate_view, apply_fn=apply_fn, release=release,
                              decimals=decimals)
  probs = lambda records: defenses.model_probs(view_params, records, apply_fn=apply_fn)
  channel = functools.partial(defenses.release_channel, release=release, decimals=decimals,
                              noise_std=noise_std)
  target_vector, target_label = channel(key['targets'], probs(arrays['targets']), flip_prob)
  _, train_released = channel(key['confusion'], probs(arrays['train']), flip_prob)
  train_predicted = jnp.argmax(view_fn(view_params, arrays['train']), -1)
  num_classes = target_vector.shape[-1]
  aux_vector, _ = channel(key['aux'], probs(arrays['aux']), flip_prob)
  return attribute_attacks.Observation(
      targets=arrays['targets'], aux=arrays['aux'], aux_truth=arrays['aux_truth'],
      prior=arrays['prior'], candidates=arrays['candidates'], column=arrays['column'],
      target_vector=target_vector, target_label=target_label, aux_vector=aux_vector,
      confusion=attribute.confusion_matrix(train_predicted, train_released, num_classes),
      view_params=view_params, view_fn=view_fn)


def evaluate(defense_key: jax.Array, attack_key: jax.Array, flip_prob, arrays: dict,
             view_params, *, apply_fn, release: str, decimals: int, noise_std: float,
             attacks: tuple[attribute_attacks.Configured, ...]) -> dict:
  """Every configured attack under one release draw, scored per target group.

  Args:
    defense_key: the draw's release key (folded per `CHANNEL_USES`).
    attack_key: the draw's attack key (passed to every attack's guess).
    flip_prob: randomized response on the released labels (may be traced).
    arrays, view_params: see `observe`.
    apply_fn, release, decimals, noise_std: the deployed model and its release rule.
    attacks: `attribute_attacks.configure(...)` of the release attacks (no baselines).

  Returns:
    {'attacks': {(name, variant): accuracy [members, non-members]},
     'release': the released target labels' accuracy [members, non-members],
     'release_test': the released held-out labels' accuracy}.
  """
  key = channel_keys(defense_key)
  obs = observe(key, flip_prob, arrays, view_params, apply_fn=apply_fn, release=release,
                decimals=decimals, noise_std=noise_std)
  member, truth = arrays['member'], arrays['target_truth']
  accuracy = {(run.name, run.variant): group_accuracy(run(attack_key, obs) == truth, member)
              for run in attacks}
  _, test_label = defenses.release_channel(
      key['test'], defenses.model_probs(view_params, arrays['test'], apply_fn=apply_fn),
      flip_prob, release=release, decimals=decimals, noise_std=noise_std)
  return {'attacks': accuracy,
          'release': group_accuracy(obs.target_label == arrays['target_labels'], member),
          'release_test': jnp.mean(test_label == arrays['test_labels'])}


def evaluate_baselines(key: jax.Array, arrays: dict, *,
                       attacks: tuple[attribute_attacks.Configured, ...]) -> dict:
  """The no-model baselines' accuracies {name: [members, non-members]} (one key for all)."""
  obs = attribute_attacks.Observation(
      targets=arrays['targets'], aux=arrays['aux'], aux_truth=arrays['aux_truth'],
      prior=arrays['prior'], candidates=arrays['candidates'], column=arrays['column'])
  return {run.name: group_accuracy(run(key, obs) == arrays['target_truth'], arrays['member'])
          for run in attacks}


def baseline_columns(baselines: dict, group: int, attack_accuracy: float,
                     names: tuple[str, ...]) -> dict:
  """The rows' baseline columns for target group `group` and the attack's advantage.

  baselines: {name: accuracy [members, non-members]} (`evaluate_baselines`); names: their
  column order.
  """
  columns = {attribute_attacks.get(name).column: float(baselines[name][group])
             for name in names}
  best = max(columns.values()) if columns else float('nan')
  return {**columns, 'best_baseline_accuracy': best, 'advantage': attack_accuracy - best}


def split_attacks(attack_config) -> tuple[tuple[attribute_attacks.Configured, ...],
                                          tuple[attribute_attacks.Configured, ...]]:
  """(release attacks, no-model baselines) named by attack_config.names, configured."""
  runs = attribute_attacks.configure(attack_config, tuple(attack_config.names))
  baseline = lambda run: attribute_attacks.get(run.name).baseline
  return (tuple(r for r in runs if not baseline(r)), tuple(r for r in runs if baseline(r)))


# ----------------------------------------------------------------------------- config

def check_config(config) -> None:
  """Checks config.attack and config.defense's release rule against the dataset's schema."""
  from medinv import data as data_lib  # The schema of each record dataset.
  data_lib.check_name(config.data.dataset)
  if config.data.dataset not in data_lib.RECORD_DATASETS:
    raise ValueError(f'attribute inference needs a record dataset, got {config.data.dataset!r};'
                     f' record datasets: {sorted(data_lib.RECORD_DATASETS)}')
  _check_sensitive(config.attack.sensitive, data_lib.RECORD_DATASETS[config.data.dataset],
                   config.data.dataset)
  if config.defense.release not in defenses.RELEASES:
    raise ValueError(f'unknown release {config.defense.release!r}; allowed: {defenses.RELEASES}')
  if config.defense.noise_std < 0:
    raise ValueError(f'defense.noise_std must be >= 0, got {config.defense.noise_std}')
  if not config.attack.names:
    raise ValueError(f'attack.names is empty; registered: {sorted(attribute_attacks.ATTACKS)}')
  for name in config.attack.names:
    attribute_attacks.get(name).check(attribute_attacks.attack_cfg(config.attack, name),
                                      config.defense.release)
  nonmember, aux = config.attack.nonmember_fraction, config.attack.aux_fraction
  if not (0.0 <= nonmember < 1.0 and 0.0 < aux <= 1.0):
    raise ValueError('attack.nonmember_fraction must be in [0, 1) and attack.aux_fraction in '
                     f'(0, 1], got {nonmember} and {aux}')
  if nonmember + aux > 1.0 + 1e-9:
    raise ValueError(f'the auxiliary set overlaps the targets: nonmember_fraction {nonmember} + '
                     f'aux_fraction {aux} of the held-out records exceed 1')


def _check_sensitive(sensitive, module, dataset: str) -> None:
  columns = {column.name: column for column in module.COLUMNS}
  if not sensitive:
    raise ValueError('attack.sensitive is empty; name at least one of ' + ', '.join(columns))
  for name in sensitive:
    if name not in columns:
      raise ValueError(f'sensitive attribute {name!r} is not in the {dataset} schema; valid '
                       f'attributes: {", ".join(columns)}')
    column = columns[name]
    if not column.categorical and (len(column.midpoints) < 2
                                   or len(column.edges) != len(column.midpoints) + 1):
      raise ValueError(f'sensitive attribute {name!r} is continuous and has no bins (edges and'
                       ' midpoints) to enumerate candidates from')
