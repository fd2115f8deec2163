"""Attribute inference against a clinical-record model, under label perturbation.

`run(config, workdir)`:
  1. checks the config against the dataset's schema, before any compute;
  2. trains (or reuses) the target model in workdir/target via `train.train_and_evaluate`;
  3. per sensitive attribute, one jitted program runs every attack over the whole flip_prob
     grid and `defense.num_draws` independent release draws per grid value, vmapped over
     (grid value, draw keys) and sharded over every device (`sharding.map_grid`); the no-model
     baselines run once beside it;
  4. writes results.json / results.csv (one row per attribute, attack, variant, flip_prob,
     release and target group) and aia.png (a privacy-utility plot).

Targets are the model's training records ('members') and, when nonmember_fraction > 0, part
of the held-out records ('non-members'); the learned attacks train on the other, disjoint
part of the held-out records (the attacker's auxiliary data) and never see a target.

Key tree (streams from medinv.keys):
  defense ├ fold_in(defense, 0)   training-label perturbation (medinv.train)
          └ fold_in(defense, 1)   release root; grid point i, draw r uses
                                  fold_in(fold_in(root, i), r), folded
                                  again per channel use (targets, auxiliary queries,
                                  confusion measurement, held-out utility). The same
                                  releases serve every attribute, as one deployment would.
  attack  ├ fold_in(attack, 0)   which held-out records are non-member targets / auxiliary
          └ fold_in(attack, 1+a)  attribute a: fold 0 the baseline classifier, fold 1 the
                                  learned-attack root (grid point i, draw r:
                                  fold_in(fold_in(root, i), r))
"""
from __future__ import annotations

import dataclasses
import functools
import io
import os
import time

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from medinv import data as data_lib
from medinv import defenses
from medinv import distributed
from medinv import keys as keys_lib
from medinv import report
from medinv import sharding
from medinv import train
from medinv.attacks import attribute

CHANNEL_USES = ('targets', 'aux', 'confusion', 'test')


def group_accuracy(correct: jax.Array, member: jax.Array) -> jax.Array:
  """[accuracy over members, accuracy over non-members] (nan for an empty group)."""
  correct = correct.astype(jnp.float32)
  groups = jnp.stack([member, 1.0 - member])
  return jnp.sum(groups * correct, -1) / jnp.sum(groups, -1)


@functools.lru_cache(maxsize=None)
def grid_program(apply_fn, *, num_classes: int, variants: tuple[str, ...], release: str,
                 decimals: int, noise_std: float, eps: float, classifier: tuple):
  """(baseline, point): the two functions one attribute's attack runs.

  baseline(baseline_key, arrays) (jitted): the no-model baselines' accuracies
    [members, non-members].
  point(grid_point, arrays, view_params): one flip_prob's per-draw accuracies (R, ...), for
    `sharding.map_grid`; grid_point = {'flip_prob': (), 'defense_keys': (R, 2) uint32,
    'attack_keys': (R, 2) uint32} (raw key data: R release draws, vmapped).

  Cached on its static configuration, so attributes with the same number of candidates
  share one compiled program (the column index is an ordinary argument).
  """
  classifier_kwargs = dict(classifier)
  view_fn = functools.partial(defenses.candidate_view, apply_fn=apply_fn, release=release,
                              decimals=decimals)
  probs_fn = functools.partial(defenses.model_probs, apply_fn=apply_fn)
  channel = functools.partial(defenses.release_channel, release=release, decimals=decimals,
                              noise_std=noise_std)

  def one_draw(flip_prob, defense_key, attack_key, arrays, view_params):
    defense_key, attack_key = jax.random.wrap_key_data(defense_key), jax.random.wrap_key_data(
        attack_key)
    key = {use: jax.random.fold_in(defense_key, i) for i, use in enumerate(CHANNEL_USES)}
    column, member = arrays['column'], arrays['member']
    target_vector, target_label = channel(key['targets'], probs_fn(view_params,
                                                                   arrays['targets']), flip_prob)
    # The deployment's confusion pi(released | predicted), measured on its training data.
    _, train_released = channel(key['confusion'], probs_fn(view_params, arrays['train']),
                                flip_prob)
    train_predicted = jnp.argmax(view_fn(view_params, arrays['train']), -1)
    confusion = attribute.confusion_matrix(train_predicted, train_released, num_classes)
    accuracy = {}
    for variant in variants:
      guess = attribute.map_attack(view_fn, view_params, arrays['targets'], target_label,
                                   arrays['prior'], arrays['candidates'], column=column,
                                   variant=variant, confusion=confusion, eps=eps)
      accuracy[('map', variant)] = group_accuracy(guess == arrays['target_truth'], member)
    aux_vector, _ = channel(key['aux'], probs_fn(view_params, arrays['aux']), flip_prob)
    guess = attribute.learned_attack(
        attack_key, attribute.known_attributes(arrays['aux'], column), aux_vector,
        arrays['aux_truth'], attribute.known_attributes(arrays['targets'], column),
        target_vector, arrays['candidates'].shape[0], **classifier_kwargs)
    accuracy[('learned', 'black_box')] = group_accuracy(guess == arrays['target_truth'], member)
    _, test_label = channel(key['test'], probs_fn(view_params, arrays['test']), flip_prob)
    return {'attacks': accuracy,
            'release': group_accuracy(target_label == arrays['target_labels'], member),
            'release_test': jnp.mean(test_label == arrays['test_labels'])}

  def point(grid_point, arrays, view_params):
    # Broadcast flip_prob, data and model; vectorise the draws' (defense, attack) keys.
    return jax.vmap(one_draw, in_axes=(None, 0, 0, None, None))(
        grid_point['flip_prob'], grid_point['defense_keys'], grid_point['attack_keys'],
        arrays, view_params)

  def baseline(baseline_key, arrays):
    column = arrays['column']
    guesses = attribute.baseline_attack(
        baseline_key, attribute.known_attributes(arrays['aux'], column), arrays['aux_truth'],
        attribute.known_attributes(arrays['targets'], column), arrays['prior'],
        **classifier_kwargs)
    return {name: group_accuracy(guess == arrays['target_truth'], arrays['member'])
            for name, guess in guesses.items()}

  return jax.jit(baseline), point


def validate(config) -> None:
  """Checks the attack and defense config against the dataset's schema, before any compute."""
  data_lib.check_name(config.data.dataset)
  if config.data.dataset not in data_lib.RECORD_DATASETS:
    raise ValueError(f'attribute inference needs a record dataset, got {config.data.dataset!r};'
                     f' record datasets: {sorted(data_lib.RECORD_DATASETS)}')
  module = data_lib.RECORD_DATASETS[config.data.dataset]
  columns = {column.name: column for column in module.COLUMNS}
  if not config.attack.sensitive:
    raise ValueError('attack.sensitive is empty; name at least one of ' + ', '.join(columns))
  for name in config.attack.sensitive:
    if name not in columns:
      raise ValueError(f'sensitive attribute {name!r} is not in the {config.data.dataset} '
                       f'schema; valid attributes: {", ".join(columns)}')
    column = columns[name]
    if not column.categorical and (len(column.midpoints) < 2
                                   or len(column.edges) != len(column.midpoints) + 1):
      raise ValueError(f'sensitive attribute {name!r} is continuous and has no bins (edges and'
                       ' midpoints) to enumerate candidates from')
  num_classes = len(module.CLASS_NAMES)
  limit = (num_classes - 1) / num_classes
  if not config.defense.flip_probs:
    raise ValueError('defense.flip_probs is empty')
  for flip_prob in config.defense.flip_probs:
    if not 0.0 <= flip_prob <= limit + 1e-12:
      raise ValueError(f'flip_prob {flip_prob} is outside [0, (k-1)/k] = [0, {limit:.4g}] for '
                       f'k = {num_classes} classes')
  if config.defense.release not in defenses.RELEASES:
    raise ValueError(f'unknown release {config.defense.release!r}; allowed: {defenses.RELEASES}')
  if config.defense.noise_std < 0:
    raise ValueError(f'defense.noise_std must be >= 0, got {config.defense.noise_std}')
  for variant in config.attack.map_variants:
    if variant not in attribute.LIKELIHOODS:
      raise ValueError(f'unknown MAP likelihood {variant!r}; known: '
                       f'{sorted(attribute.LIKELIHOODS)}')
    if variant == 'probability' and config.defense.release == 'label':
      raise ValueError("MAP likelihood 'probability' needs a probability release ('probs', "
                       "'rounded' or 'noisy_probs'); the release is 'label'")
  if not 0.0 < config.attack.eps < 1.0:
    raise ValueError(f'attack.eps must be in (0, 1), got {config.attack.eps}')
  nonmember, aux = config.attack.nonmember_fraction, config.attack.aux_fraction
  if not (0.0 <= nonmember < 1.0 and 0.0 < aux <= 1.0):
    raise ValueError('attack.nonmember_fraction must be in [0, 1) and attack.aux_fraction in '
                     f'(0, 1], got {nonmember} and {aux}')
  if nonmember + aux > 1.0 + 1e-9:
    raise ValueError(f'the auxiliary set overlaps the targets: nonmember_fraction {nonmember} + '
                     f'aux_fraction {aux} of the held-out records exceed 1')
  if config.defense.num_draws <= 0:
    raise ValueError(f'defense.num_draws must be positive, got {config.defense.num_draws}')
  if config.attack.steps <= 0:
    raise ValueError(f'attack.steps must be positive, got {config.attack.steps}')


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


def attribute_arrays(targets, member, aux, task: data_lib.Task, name: str) -> dict:
  """The device arrays one attribute's program reads."""
  column_index = targets.column_index(name)
  column = targets.columns[column_index]
  aux_truth = column.candidate_index(aux.features[:, column_index]).astype(np.int32)
  num_candidates = len(column.candidates)
  return {
      'column': jnp.int32(column_index),
      'candidates': jnp.asarray(column.candidates),
      # The attacker's prior: the attribute's marginal among its auxiliary records.
      'prior': attribute.attribute_prior(jnp.asarray(aux_truth), num_candidates),
      'targets': jnp.asarray(targets.features),
      'target_truth': jnp.asarray(column.candidate_index(targets.features[:, column_index])),
      'target_labels': jnp.asarray(targets.labels),
      'member': jnp.asarray(member),
      'aux': jnp.asarray(aux.features),
      'aux_truth': jnp.asarray(aux_truth),
      'train': jnp.asarray(task.records_train.features),
      'test': jnp.asarray(task.records_test.features),
      'test_labels': jnp.asarray(task.records_test.labels),
  }


def attribute_rows(common: dict, flip_probs, num_classes: int, group_sizes: dict, baseline,
                   grid) -> list[dict]:
  """One row per (attack, flip_prob, target group) of one attribute's program output.

  Accuracies under the defense are means over the release draws (axis 1); *_std columns
  give their standard deviation across draws.
  """
  rows = []
  for g, group in enumerate(('members', 'non-members')):
    if not group_sizes[group]:
      continue
    prior_accuracy = float(baseline['prior'][g])
    classifier_accuracy = float(baseline['classifier'][g])
    best_baseline = max(prior_accuracy, classifier_accuracy)
    for i, flip_prob in enumerate(flip_probs):
      for (attack, variant), accuracy in grid['attacks'].items():
        rows.append({
            **common, 'attack': attack, 'variant': variant, 'flip_prob': flip_prob,
            'epsilon': defenses.randomized_response_epsilon(flip_prob, num_classes),
            'targets': group, 'n': group_sizes[group],
            'attack_accuracy': float(np.mean(accuracy[i, :, g])),
            'attack_accuracy_std': float(np.std(accuracy[i, :, g])),
            'prior_accuracy': prior_accuracy,
            'baseline_classifier_accuracy': classifier_accuracy,
            'best_baseline_accuracy': best_baseline,
            'advantage': float(np.mean(accuracy[i, :, g])) - best_baseline,
            'release_accuracy': float(np.mean(grid['release'][i, :, g])),
            'release_test_accuracy': float(np.mean(grid['release_test'][i])),
            'num_draws': accuracy.shape[1]})
  return rows


def run(config, workdir: str) -> dict:
  """Trains or reuses the target model, attacks every sensitive attribute, writes results.

  The flip_prob grid is sharded over every device of every process (`sharding.map_grid`); in a
  multi-process run only process 0 writes.
  """
  validate(config)
  start_time = time.time()
  report.write_config(workdir, config)
  trained = train.train_and_evaluate(config, os.path.join(workdir, 'target'))
  task = trained.task
  streams = keys_lib.named_keys(config.seed)
  targets, member, aux = attack_sets(task, jax.random.fold_in(streams['attack'], 0),
                                     config.attack)
  group_sizes = {'members': int(member.sum()), 'non-members': int((1 - member).sum())}
  flip_probs = [float(p) for p in config.defense.flip_probs]
  def grid_keys(root):  # (G, R, 2) raw data of the keys fold_in(fold_in(root, i), r)
    rows = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(root, jnp.arange(len(flip_probs)))
    draws = jnp.arange(config.defense.num_draws)
    return np.asarray(jax.random.key_data(jax.vmap(
        jax.vmap(jax.random.fold_in, in_axes=(None, 0)), in_axes=(0, None))(rows, draws)))
  defense_keys = grid_keys(jax.random.fold_in(streams['defense'], 1))
  view_params = jax.device_get((trained.params, task.scaler.mean, task.scaler.std))
  baseline_program, point = grid_program(
      trained.apply_fn, num_classes=task.num_classes,
      variants=tuple(config.attack.map_variants), release=config.defense.release,
      decimals=config.defense.decimals, noise_std=float(config.defense.noise_std),
      eps=float(config.attack.eps),
      classifier=(('hidden', tuple(config.attack.hidden)), ('steps', config.attack.steps),
                  ('learning_rate', config.attack.learning_rate),
                  ('weight_decay', config.attack.weight_decay)))
  rows = []
  for a, name in enumerate(config.attack.sensitive):
    attribute_start = time.time()
    arrays = jax.device_get(attribute_arrays(targets, member, aux, task, name))
    attribute_key = jax.random.fold_in(streams['attack'], 1 + a)
    grid_points = {'flip_prob': np.asarray(flip_probs, np.float32),
                   'defense_keys': defense_keys,
                   'attack_keys': grid_keys(jax.random.fold_in(attribute_key, 1))}
    baseline = jax.device_get(baseline_program(jax.random.fold_in(attribute_key, 0), arrays))
    grid = sharding.map_grid(point, grid_points, arrays, view_params)
    common = {'dataset': config.data.dataset, 'attribute': name,
              'num_candidates': int(arrays['candidates'].shape[0]),
              'release': config.defense.release,
              'model_test_accuracy': trained.metrics['test_accuracy']}
    rows += attribute_rows(common, flip_probs, task.num_classes, group_sizes, baseline, grid)
    logging.info('attribute %s: %d grid points in %.1fs', name, len(flip_probs),
                 time.time() - attribute_start)
  metrics = {'model_test_accuracy': trained.metrics['test_accuracy'],
             'model_train_accuracy': trained.metrics['train_accuracy'],
             'test_majority_accuracy': trained.metrics['test_majority_accuracy'],
             'num_members': group_sizes['members'], 'num_nonmembers': group_sizes['non-members'],
             'num_aux': len(aux), 'num_classes': task.num_classes}
  results = report.write_results(workdir, 'attribute_inference', metrics, rows,
                                 time.time() - start_time)
  if distributed.is_writer():
    plot(rows, os.path.join(workdir, 'aia.png'), config.attack.plot_variant)
  return results


def plot(rows: list[dict], path: str, variant: str) -> None:
  """Member-target accuracy of the MAP attack (solid) and its best baseline (dashed) per
  attribute, and the released labels' test accuracy (black), against flip_prob."""
  import matplotlib  # Imported here: only runs that write figures need it.
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt
  rows = [r for r in rows if r['targets'] == 'members']
  fig, ax = plt.subplots(figsize=(8.4, 4.4))
  colors = plt.rcParams['axes.prop_cycle'].by_key()['color']
  for i, name in enumerate(dict.fromkeys(r['attribute'] for r in rows)):
    mine = [r for r in rows if r['attribute'] == name and r['attack'] == 'map'
            and r['variant'] == variant]
    color = colors[i % len(colors)]
    ax.plot([r['flip_prob'] for r in mine], [r['attack_accuracy'] for r in mine], 'o-',
            color=color, label=name)
    ax.plot([r['flip_prob'] for r in mine], [r['best_baseline_accuracy'] for r in mine], '--',
            color=color)
  ax.plot([], [], '--', color='grey', label='best baseline (dashed)')
  utility = {r['flip_prob']: r['release_test_accuracy'] for r in rows}
  ax.plot(list(utility), list(utility.values()), 's-', color='black',
          label='model test accuracy (released labels)')
  ax.set_xlabel('flip probability p')
  ax.set_ylabel('accuracy')
  ax.set_title(f'{rows[0]["dataset"]}: MAP attack ({variant}) on training records',
               fontsize=10)
  ax.legend(fontsize=8, loc='upper left', bbox_to_anchor=(1.02, 1.0))
  fig.tight_layout()
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png', dpi=120)
  plt.close(fig)
  report.write_atomic(path, buffer.getvalue())
