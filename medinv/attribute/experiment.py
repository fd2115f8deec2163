"""Attribute inference against a clinical-record model, under label perturbation.

`run(config, workdir)` is `experiment.run(SPEC, ...)`:
  1. validate: the config against the dataset's schema and the attack registry, before any
     compute;
  2. target: trains (or reuses) the target model in workdir/target (`experiment.train_target`);
  3. grid: per sensitive attribute, one jitted program runs every configured attack
     (config.attack.names, in medinv.attribute.attacks.ATTACKS) over the whole
     flip_prob grid and `defense.num_draws` independent release draws per grid value, vmapped
     over (grid value, draw keys) and sharded over every device (`sharding.map_grid`); the
     no-model baselines run once beside it; each draw is `attribute_eval.evaluate`, the
     evaluation medinv.attribute.population shares;
  4. rows: results.json / results.csv (one row per attribute, attack, variant, flip_prob,
     release and target group): accuracy, balanced accuracy and MCC of the attack, the same
     of each baseline, and the attack's advantage in each over the imputation baseline (a
     classifier from the other attributes trained on the attacker's auxiliary records);
     figures: attribute.png (a privacy-utility plot).

Targets are a member_fraction share of the model's training records ('members') and, when
nonmember_fraction > 0, part of the held-out records ('non-members'); the attacker's
auxiliary data (num_aux records, -1: all) are drawn from every other record, training or
held-out, so the learned attacks, the imputation baseline and the priors never see a target.

Key tree (streams from medinv.core.keys):
  defense ├ fold_in(defense, 0)   training-label perturbation (medinv.training.trainer)
          └ fold_in(defense, 1)   release root; grid point i, draw r uses
                                  fold_in(fold_in(root, i), r), folded
                                  again per channel use (attribute_eval.CHANNEL_USES). The
                                  same releases serve every attribute, as one deployment would.
  attack  ├ fold_in(attack, 0)   which held-out records are non-member targets / auxiliary
          └ fold_in(attack, 1+a)  attribute a: fold 0 the baselines' key, fold 1 the release
                                  attacks' root (grid point i, draw r:
                                  fold_in(fold_in(root, i), r)); a registered attack
                                  folds in its own `fold` (none for the built-ins)
"""
from __future__ import annotations

import functools
import os
import time

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from medinv import data as data_lib
from medinv import defenses
from medinv.training import experiment
from medinv.core import distributed
from medinv.core import keys as keys_lib
from medinv.core import report
from medinv.data import records as records_lib
from medinv.core import plots
from medinv.core import sharding
from medinv.metrics import intervals
from medinv.attribute import evaluation as attribute_eval


@functools.lru_cache(maxsize=None)
def grid_program(apply_fn, *, release: str, decimals: int, noise_std: float, attacks: tuple,
                 baselines: tuple):
  """(baseline, point): the two functions one attribute's evaluation runs.

  attacks, baselines: `attribute_eval.split_attacks(config.attack)` (static).
  baseline(baseline_key, arrays) (jitted): the no-model baselines' scores
    {name: {metric: [members, non-members]}} (`attribute_eval.baseline_scores`).
  point(grid_point, arrays, view_params): one flip_prob's per-draw `attribute_eval.evaluate`
    outputs (R, ...), for `sharding.map_grid`; grid_point = {'flip_prob': (), 'defense_keys':
    (R, 2) uint32, 'attack_keys': (R, 2) uint32} (raw key data: R release draws, vmapped).

  Cached on its static configuration, so attributes with the same number of candidates
  share one compiled program (the column index is an ordinary argument).
  """
  evaluate = functools.partial(attribute_eval.evaluate, apply_fn=apply_fn, release=release,
                               decimals=decimals, noise_std=noise_std, attacks=attacks)

  def one_draw(flip_prob, defense_key, attack_key, arrays, view_params):
    return evaluate(jax.random.wrap_key_data(defense_key), jax.random.wrap_key_data(attack_key),
                    flip_prob, arrays, view_params)

  def point(grid_point, arrays, view_params):
    # Broadcast flip_prob, data and model; vectorise the draws' (defense, attack) keys.
    return jax.vmap(one_draw, in_axes=(None, 0, 0, None, None))(
        grid_point['flip_prob'], grid_point['defense_keys'], grid_point['attack_keys'],
        arrays, view_params)

  baseline = functools.partial(attribute_eval.baseline_scores, attacks=baselines)
  return jax.jit(baseline), point


def validate(config) -> None:
  """Checks the attack and defense config against the dataset's schema, before any compute."""
  attribute_eval.check_config(config)
  num_classes = data_lib.declared_num_classes(config.data)
  limit = (num_classes - 1) / num_classes if num_classes else 1.0
  if not config.defense.flip_probs:
    raise ValueError('defense.flip_probs is empty')
  for flip_prob in config.defense.flip_probs:
    if not 0.0 <= flip_prob <= limit + 1e-12:
      raise ValueError(f'flip_prob {flip_prob} is outside [0, (k-1)/k] = [0, {limit:.4g}] for '
                       f'k = {num_classes} classes')
  if config.defense.num_draws <= 0:
    raise ValueError(f'defense.num_draws must be positive, got {config.defense.num_draws}')


def grid_keys(root: jax.Array, num_points: int, num_draws: int) -> np.ndarray:
  """(G, R, 2) raw data of the keys fold_in(fold_in(root, i), r)."""
  rows = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(root, jnp.arange(num_points))
  draws = jnp.arange(num_draws)
  return np.asarray(jax.random.key_data(jax.vmap(
      jax.vmap(jax.random.fold_in, in_axes=(None, 0)), in_axes=(0, None))(rows, draws)))


def write_attack_records(workdir: str, targets, member: np.ndarray, aux) -> None:
  """workdir/attack_records.csv: each attacked or auxiliary record's source line and id, and
  its role (member_target, nonmember_target, auxiliary), for data that keeps its lines."""
  rows = records_lib.split_rows(member_target=targets.take(np.flatnonzero(member == 1)),
                                nonmember_target=targets.take(np.flatnonzero(member == 0)),
                                auxiliary=aux)
  roles = [{'line': row['line'], 'id': row['id'], 'role': row['split']} for row in rows]
  if roles and distributed.is_writer():
    report.write_atomic(os.path.join(workdir, 'attack_records.csv'), report.rows_to_csv(roles))


def grid(ctx: experiment.Context) -> dict:
  """Every attribute's baselines and grid outputs, with the target sets' sizes."""
  config, task, trained = ctx.config, ctx.task, ctx.target
  streams = keys_lib.named_keys(config.seed)
  targets, member, aux = attribute_eval.attack_sets(
      task, jax.random.fold_in(streams['attack'], 0), config.attack)
  write_attack_records(ctx.workdir, targets, member, aux)
  records = attribute_eval.record_arrays(targets, member, aux, task)
  flip_probs = np.asarray([float(p) for p in config.defense.flip_probs], np.float32)
  num_draws = config.defense.num_draws
  defense_keys = grid_keys(jax.random.fold_in(streams['defense'], 1), len(flip_probs), num_draws)
  view_params = jax.device_get((trained.params, task.scaler.mean, task.scaler.std))
  attacks, baselines = attribute_eval.split_attacks(config.attack)
  baseline_program, point = grid_program(
      trained.apply_fn, release=config.defense.release, decimals=config.defense.decimals,
      noise_std=float(config.defense.noise_std), attacks=attacks, baselines=baselines)
  outputs = {}
  for a, name in enumerate(config.attack.sensitive):
    attribute_start = time.time()
    arrays = {**records, **attribute_eval.attribute_arrays(targets, aux, name)}
    attribute_key = jax.random.fold_in(streams['attack'], 1 + a)
    grid_points = {'flip_prob': flip_probs, 'defense_keys': defense_keys,
                   'attack_keys': grid_keys(jax.random.fold_in(attribute_key, 1),
                                            len(flip_probs), num_draws)}
    outputs[name] = {
        'num_candidates': int(arrays['candidates'].shape[0]),
        'baseline': jax.device_get(baseline_program(jax.random.fold_in(attribute_key, 0),
                                                    arrays)),
        'grid': sharding.map_grid(point, grid_points, arrays, view_params)}
    logging.info('attribute %s: %d grid points in %.1fs', name, len(flip_probs),
                 time.time() - attribute_start)
  return {'attributes': outputs, 'num_members': int(member.sum()),
          'num_nonmembers': int((1 - member).sum()), 'num_aux': len(aux),
          'baseline_names': tuple(run.name for run in baselines)}


def attribute_rows(common: dict, flip_probs, num_classes: int, group_sizes: dict, baseline,
                   grid_output, baseline_names: tuple[str, ...]) -> list[dict]:
  """One row per (attack, flip_prob, target group) of one attribute's program output.

  Scores under the defense are means over the release draws (axis 1); attack_accuracy_std
  gives the accuracy's standard deviation across draws. baseline: `baseline_scores`.
  """
  accuracies = {name: scores['accuracy'] for name, scores in baseline.items()}
  rows = []
  for g, group in enumerate(attribute_eval.GROUPS):
    if not group_sizes[group]:
      continue
    for i, flip_prob in enumerate(flip_probs):
      for (attack, variant), accuracy in grid_output['attacks'].items():
        mean = float(np.mean(accuracy[i, :, g]))
        scores = {'accuracy': mean, **{
            metric: float(np.mean(values[i, :, g]))
            for metric, values in grid_output['scores'][(attack, variant)].items()}}
        rows.append({
            **common, 'attack': attack, 'variant': variant, 'flip_prob': flip_prob,
            'epsilon': defenses.randomized_response_epsilon(flip_prob, num_classes),
            'targets': group, 'n': group_sizes[group],
            'attack_accuracy': mean, 'attack_accuracy_std': float(np.std(accuracy[i, :, g])),
            'balanced_accuracy': scores['balanced_accuracy'], 'mcc': scores['mcc'],
            **attribute_eval.baseline_columns(accuracies, g, mean, baseline_names),
            **attribute_eval.imputation_columns(baseline, g, scores, baseline_names),
            'release_accuracy': float(np.mean(grid_output['release'][i, :, g])),
            'release_test_accuracy': float(np.mean(grid_output['release_test'][i])),
            'num_draws': accuracy.shape[1]})
  return rows


def with_member_gaps(rows: list[dict], level: float = intervals.LEVEL) -> list[dict]:
  """Adds to each members row its attack's accuracy on members minus on non-members (same
  attribute, attack, variant and flip_prob), with Newcombe's interval (`member_gap`,
  `member_gap_low`, `member_gap_high`): leakage beyond what the population's statistics
  already reveal, which the same attack achieves on records the model never saw."""
  def key(r):
    return r['attribute'], r['attack'], r['variant'], r['flip_prob']
  others = {key(r): r for r in rows if r['targets'] == 'non-members'}
  for r in rows:
    other = others.get(key(r))
    if r['targets'] == 'members' and other is not None:
      low, high = intervals.difference_interval(
          r['attack_accuracy'] * r['n'], r['n'], other['attack_accuracy'] * other['n'],
          other['n'], level)
      r.update(member_gap=r['attack_accuracy'] - other['attack_accuracy'],
               member_gap_low=low, member_gap_high=high)
  return rows


def rows(ctx: experiment.Context, outputs: dict) -> tuple[dict, list[dict]]:
  """(metrics, rows) of results.json."""
  config, trained = ctx.config, ctx.target
  group_sizes = {'members': outputs['num_members'], 'non-members': outputs['num_nonmembers']}
  flip_probs = [float(p) for p in config.defense.flip_probs]
  all_rows = []
  for name, out in outputs['attributes'].items():
    common = {'dataset': data_lib.source_name(config.data), 'attribute': name,
              'num_candidates': out['num_candidates'], 'num_aux': outputs['num_aux'],
              'release': config.defense.release,
              'model_test_accuracy': trained.metrics['test_accuracy'],
              'dp_epsilon': trained.metrics['dp_epsilon']}
    all_rows += attribute_rows(common, flip_probs, ctx.task.num_classes, group_sizes,
                               out['baseline'], out['grid'], outputs['baseline_names'])
  with_member_gaps(all_rows)
  metrics = {'model_test_accuracy': trained.metrics['test_accuracy'],
             'model_train_accuracy': trained.metrics['train_accuracy'],
             'dp_epsilon': trained.metrics['dp_epsilon'],
             'test_majority_accuracy': trained.metrics['test_majority_accuracy'],
             'num_members': outputs['num_members'], 'num_nonmembers': outputs['num_nonmembers'],
             'num_aux': outputs['num_aux'], 'num_classes': ctx.task.num_classes}
  if 'delta' in trained.metrics:  # DP-SGD's: the epsilon above is accounted at it.
    metrics['delta'] = trained.metrics['delta']
  return metrics, all_rows


def figures(ctx: experiment.Context, outputs: dict, result_rows: list[dict]) -> None:
  del outputs
  plot(result_rows, os.path.join(ctx.workdir, 'attribute.png'), ctx.config.attack.plot_variant)


SPEC = experiment.Spec(name='attribute_inference', validate=validate, grid=grid, rows=rows,
                       figures=figures)


def run(config, workdir: str) -> dict:
  """Trains or reuses the target model, attacks every sensitive attribute, writes results.

  The flip_prob grid is sharded over every device of every process (`sharding.map_grid`); in a
  multi-process run only process 0 writes.
  """
  return experiment.run(SPEC, config, workdir)


def plot(rows: list[dict], path: str, variant: str) -> None:
  """Member-target accuracy of the MAP attack (solid) and its best baseline (dashed) per
  attribute, and the released labels' test accuracy (black), against flip_prob."""
  rows = [r for r in rows if r['targets'] == 'members']
  fig, ax = plots.plt.subplots(figsize=(8.4, 4.4))
  colors = plots.plt.rcParams['axes.prop_cycle'].by_key()['color']
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
  plots.save_png(fig, path, dpi=120, tight=False)
