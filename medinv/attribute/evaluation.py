"""The attribute-inference evaluation that medinv.attribute.experiment and
medinv.attribute.population share.

Who is attacked: a share of the deployment's training records ('members') and, when
attack.nonmember_fraction > 0, part of its held-out records ('non-members'); the attacker's
auxiliary records are attack.num_aux (-1: all) of the records that are not targets, training
or held-out (`attack_sets`).

One release draw (`evaluate`): the deployment answers every query through
`defenses.release_channel`, with one fold of the draw's defense key per use (`CHANNEL_USES`):
  targets    what it releases for each target;
  aux        what the attacker's own queries of its auxiliary records return;
  confusion  pi(released | predicted), measured on the deployment's training records (the
             definition both experiments use);
  test       the released labels' accuracy on the held-out records (the defense's utility).
From those releases it builds the attacker's `attribute_attacks.Observation`, runs every
configured attack (`attribute_attacks.configure`) and scores each guess per target group
(`group_accuracy`; balanced accuracy and MCC too, `attribute_metrics.group_scores`).
The no-model baselines run once per attribute beside it (`baseline_scores`); the imputation
baseline (attribute_attacks.IMPUTATION) is the reference of every row's advantages
(`imputation_columns`).
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from medinv import defenses
from medinv.attribute import inference as attribute
from medinv.attribute import attacks as attribute_attacks
from medinv.attribute import metrics as attribute_metrics
from medinv.data import records as records_lib

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
  """(targets Records, member flags, auxiliary Records) from a task's train/held-out split.

  Targets: a member_fraction share of the training records ('members'; at 1.0 all of them, in
  order) and a nonmember_fraction share of the held-out records ('non-members'). The
  auxiliary records are attack.num_aux (-1: all) records drawn from every record that is not
  a target (training records left out of the targets and the other held-out records), so
  they never meet a target. max_records caps each of the three sets.
  Keys: the non-member targets come from permutation(key) of the held-out records, the member
  targets from permutation(fold_in(key, 1)) of the training records, the auxiliary draw from
  permutation(fold_in(key, 2)) of the non-target records.
  """
  train, heldout = task.records_train, task.records_test
  order = np.asarray(jax.random.permutation(key, len(heldout)))
  num_nonmembers = int(round(attack_config.nonmember_fraction * len(heldout)))
  if attack_config.member_fraction >= 1.0:
    member_order = np.arange(len(train))
    num_members = len(train)
  else:
    member_order = np.asarray(jax.random.permutation(jax.random.fold_in(key, 1), len(train)))
    num_members = max(1, int(round(attack_config.member_fraction * len(train))))
  cap = attack_config.max_records or None
  member_ids = np.sort(member_order[:num_members])[:cap]
  nonmember_ids = np.sort(order[:num_nonmembers][:cap])
  # Global ids: training records first, then held-out records.
  target_ids = np.concatenate([member_ids, len(train) + nonmember_ids])
  pool = np.setdiff1d(np.arange(len(train) + len(heldout)), target_ids)
  aux_ids = np.sort(_draw_aux(pool, jax.random.fold_in(key, 2), attack_config)[:cap])
  check_disjoint(target_ids, aux_ids)
  everything = records_lib.concatenate(train, heldout)
  targets = everything.take(target_ids)
  member = np.concatenate([np.ones(len(member_ids)),
                           np.zeros(len(nonmember_ids))]).astype(np.float32)
  return targets, member, everything.take(aux_ids)


def _draw_aux(pool: np.ndarray, key: jax.Array, attack_config) -> np.ndarray:
  """num_aux of the non-target ids `pool` (all at -1), drawn with `key`."""
  num_aux = attack_config.num_aux
  if not len(pool):
    raise ValueError('no record is left for the auxiliary set: every record is a target '
                     '(lower attack.member_fraction or attack.nonmember_fraction)')
  if num_aux == -1:
    return pool
  if num_aux > len(pool):
    raise ValueError(f'attack.num_aux = {num_aux} exceeds the {len(pool)} records that are not '
                     'targets; use -1 for all of them, or lower attack.member_fraction')
  return pool[np.asarray(jax.random.permutation(key, len(pool)))[:num_aux]]


def record_arrays(targets, member, aux, task: data_lib.Task) -> dict:
  """The host arrays every attribute's evaluation reads (records, labels, target groups)."""
  return jax.device_get({
      'targets': jnp.asarray(targets.features),
      'target_labels': jnp.asarray(targets.labels),
      'member': jnp.asarray(member),
      'aux': jnp.asarray(aux.features),
      'aux_labels': jnp.asarray(aux.labels),
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
  # Fredrikson et al.'s model confusion P(prediction | true label): the attacker's own
  # records, their labels and the model's predictions (the MAP's candidate view).
  aux_predicted = jnp.argmax(view_fn(view_params, arrays['aux']), -1)
  return attribute_attacks.Observation(
      targets=arrays['targets'], aux=arrays['aux'], aux_truth=arrays['aux_truth'],
      prior=arrays['prior'], candidates=arrays['candidates'], column=arrays['column'],
      target_vector=target_vector, target_label=target_label, aux_vector=aux_vector,
      confusion=attribute.confusion_matrix(train_predicted, train_released, num_classes),
      model_confusion=attribute.confusion_matrix(arrays['aux_labels'], aux_predicted,
                                                 num_classes),
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
     'scores': {(name, variant): {'balanced_accuracy', 'mcc': [members, non-members]}},
     'release': the released target labels' accuracy [members, non-members],
     'release_test': the released held-out labels' accuracy}.
  """
  key = channel_keys(defense_key)
  obs = observe(key, flip_prob, arrays, view_params, apply_fn=apply_fn, release=release,
                decimals=decimals, noise_std=noise_std)
  member, truth = arrays['member'], arrays['target_truth']
  num_candidates = arrays['candidates'].shape[0]
  accuracy, scores = {}, {}
  for run in attacks:
    guess = run(attack_key, obs)
    accuracy[(run.name, run.variant)] = group_accuracy(guess == truth, member)
    scored = attribute_metrics.group_scores(guess, truth, member, num_candidates)
    scores[(run.name, run.variant)] = {m: scored[m] for m in ('balanced_accuracy', 'mcc')}
  _, test_label = defenses.release_channel(
      key['test'], defenses.model_probs(view_params, arrays['test'], apply_fn=apply_fn),
      flip_prob, release=release, decimals=decimals, noise_std=noise_std)
  return {'attacks': accuracy, 'scores': scores,
          'release': group_accuracy(obs.target_label == arrays['target_labels'], member),
          'release_test': jnp.mean(test_label == arrays['test_labels'])}


def baseline_scores(key: jax.Array, arrays: dict, *,
                    attacks: tuple[attribute_attacks.Configured, ...]) -> dict:
  """The no-model baselines' {name: {metric: [members, non-members]}} (one key for all)."""
  obs = attribute_attacks.Observation(
      targets=arrays['targets'], aux=arrays['aux'], aux_truth=arrays['aux_truth'],
      prior=arrays['prior'], candidates=arrays['candidates'], column=arrays['column'])
  return {run.name: attribute_metrics.group_scores(
      run(key, obs), arrays['target_truth'], arrays['member'], arrays['candidates'].shape[0])
          for run in attacks}


def evaluate_baselines(key: jax.Array, arrays: dict, *,
                       attacks: tuple[attribute_attacks.Configured, ...]) -> dict:
  """The no-model baselines' accuracies {name: [members, non-members]} (one key for all)."""
  return {name: scores['accuracy']
          for name, scores in baseline_scores(key, arrays, attacks=attacks).items()}


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


def imputation_columns(baselines: dict, group: int, attack_scores: dict,
                       names: tuple[str, ...]) -> dict:
  """Balanced accuracy and MCC of each baseline, and the attack's advantages over imputation.

  baselines: {name: {metric: [members, non-members]}} (`baseline_scores`); attack_scores:
  {metric: float} of the attack for target group `group`. Columns: per baseline,
  its accuracy column with '_accuracy' replaced by '_balanced_accuracy' and '_mcc'; then
  imputation_accuracy / _balanced_accuracy / _mcc (the imputation baseline's, nan when it did
  not run) and imputation_advantage, balanced_accuracy_advantage, mcc_advantage (the attack's
  score minus the imputation baseline's).
  """
  columns = {}
  for name in names:
    stem = attribute_attacks.get(name).column.removesuffix('_accuracy')
    columns[f'{stem}_balanced_accuracy'] = float(baselines[name]['balanced_accuracy'][group])
    columns[f'{stem}_mcc'] = float(baselines[name]['mcc'][group])
  imputation = baselines.get(attribute_attacks.IMPUTATION) if (
      attribute_attacks.IMPUTATION in names) else None
  for metric, advantage in (('accuracy', 'imputation_advantage'),
                            ('balanced_accuracy', 'balanced_accuracy_advantage'),
                            ('mcc', 'mcc_advantage')):
    reference = float(imputation[metric][group]) if imputation else float('nan')
    columns[f'imputation_{metric}'] = reference
    columns[advantage] = attack_scores[metric] - reference
  return columns


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
  data_lib.check_config(config.data)
  if config.data.dataset not in data_lib.RECORD_DATASETS:
    raise ValueError(f'attribute inference needs a record dataset, got {config.data.dataset!r};'
                     f' record datasets: {sorted(data_lib.RECORD_DATASETS)}')
  check_sensitive(config.attack.sensitive, data_lib.declared_columns(config.data),
                   config.data.dataset)
  if config.defense.release not in defenses.RELEASES:
    raise ValueError(f'unknown release {config.defense.release!r}; allowed: {defenses.RELEASES}')
  if config.defense.noise_std < 0:
    raise ValueError(f'defense.noise_std must be >= 0, got {config.defense.noise_std}')
  _check_release_options(config.defense)
  if not config.attack.names:
    raise ValueError(f'attack.names is empty; registered: {sorted(attribute_attacks.ATTACKS)}')
  for name in config.attack.names:
    attribute_attacks.get(name).check(attribute_attacks.attack_cfg(config.attack, name),
                                      config.defense.release)
  _check_target_split(config.attack)


def _check_release_options(defense) -> None:
  """Refuses defense.noise_std > 0 unless the release is 'noisy_probs', and decimals other
  than the registered default unless it is 'rounded': the release would ignore them."""
  release = defense.release
  default_decimals = defenses.get('output_postprocessing').defaults['decimals']
  for field, used_by, unset in (('noise_std', 'noisy_probs', 0.0),
                                ('decimals', 'rounded', default_decimals)):
    if release != used_by and defense[field] != unset:
      raise ValueError(f'defense.{field}={defense[field]} applies to defense.release '
                       f'{used_by!r} only, and the release is {release!r}: set '
                       f'--config.defense.release={used_by} or drop defense.{field}')


def _check_target_split(attack_config) -> None:
  member, nonmember = attack_config.member_fraction, attack_config.nonmember_fraction
  if not (0.0 < member <= 1.0 and 0.0 <= nonmember < 1.0):
    raise ValueError('attack.member_fraction must be in (0, 1] and attack.nonmember_fraction '
                     f'in [0, 1), got {member} and {nonmember}')
  num_aux = attack_config.num_aux
  if isinstance(num_aux, bool) or not isinstance(num_aux, int) or not (
      num_aux == -1 or num_aux >= 1):
    raise ValueError(f'attack.num_aux must be -1 (every record that is not a target) or a '
                     f'positive number of records, got {num_aux!r}')


def check_sensitive(sensitive, declared, dataset: str) -> None:
  columns = {column.name: column for column in declared}
  if not sensitive:
    raise ValueError('attack.sensitive is empty; name at least one of ' + ', '.join(columns))
  for name in sensitive:
    if name not in columns:
      raise ValueError(f'sensitive attribute {name!r} is not in the {dataset} schema; valid '
                       f'attributes: {", ".join(columns)}')
    column = columns[name]
    if not column.categorical and (len(column.midpoints) < 2
                                   or len(column.edges) != len(column.midpoints) + 1):
      hint = (f'; declare config.data.schema.sensitive.{name}=(edges...)' if dataset == 'csv'
              else '')
      raise ValueError(f'sensitive attribute {name!r} is numeric and has no bins (edges and '
                       f'midpoints) to enumerate candidates from{hint}')
