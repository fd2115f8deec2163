"""The population experiment: K target models trained in one program (a sweep run), each
evaluated and, for record datasets, attacked by attribute inference.

For record datasets, when the config has an `attack` section (configs/attribute_*.py), the
attribute-inference MAP attack runs against every model of the population in the same program as its
evaluation, through `attribute_eval.evaluate`, the evaluation medinv.attribute.experiment runs per
release draw: the released label is the model's prediction (release flip_prob 0: the training-time
label flip is the defense under study), and each row carries the model's test accuracy and the
no-model baselines, so each row is a point on a privacy-utility curve.

`run(config, workdir)` is `experiment.run(SPEC, ...)`; its target step is the population fit.

Keys (medinv.core.keys), per model: named_keys(seed_k); `init` initialises it, epoch e shuffles
with fold_in(data, e), fold_in(defense, 0) flips its training labels (as medinv.training.trainer);
the attack draws its releases as medinv.attribute.experiment's first grid point and draw for seed_k
(`attack_accuracy`). Targets, auxiliary records and baselines come from config.seed's attack stream,
shared by every model.

"""
from __future__ import annotations

import functools
import json
import os

import jax
import numpy as np

from medinv import data as data_lib
from medinv.attribute import evaluation as attribute_eval
from medinv.core import checkpoint
from medinv.core import keys as keys_lib
from medinv.core import report
from medinv.core import sharding
from medinv.training import evaluation
from medinv.training import experiment
from medinv.training import population as population_lib
from medinv.training import trainer

MAP_ATTACKS = ('map',)  # The release attacks a population runs (of config.attack.names).


# ----------------------------------------------------------------------------- evaluation

def attack_settings(config, flip_prob: float = 0.0) -> tuple:
  """The attack's static settings: the configured MAP variants and the release rule.

  flip_prob: randomized response on the released labels; the population releases its
  models' labels unperturbed (0.0: the training-time label flip is the defense under study).
  """
  attacks, _ = attribute_eval.split_attacks(config.attack)
  return (('sensitive', tuple(config.attack.sensitive)),
          ('attacks', tuple(run for run in attacks if run.name in MAP_ATTACKS)),
          ('release', config.defense.release), ('decimals', config.defense.decimals),
          ('noise_std', float(config.defense.noise_std)), ('flip_prob', float(flip_prob)))


def prepare_attack(config, task: data_lib.Task):
  """Host arrays of the attack on every sensitive attribute, and the no-model baselines.

  Targets, auxiliary records and priors are medinv.attribute.experiment's (the attack stream of
  config.seed picks the non-member targets), the same for every model of the population; baselines
  use the key the experiment uses for attribute a: fold_in(fold_in(attack, 1 + a), 0).

  Returns:
    (arrays {'scaler', 'records', 'attributes': {name: ...}}, group sizes,
     baselines {attribute: {name: accuracy [members, non-members]}}, baseline names).
  """
  streams = keys_lib.named_keys(config.seed)
  targets, member, aux = attribute_eval.attack_sets(
      task, jax.random.fold_in(streams['attack'], 0), config.attack)
  records = attribute_eval.record_arrays(targets, member, aux, task)
  arrays = {'scaler': (np.asarray(task.scaler.mean), np.asarray(task.scaler.std)),
            'records': records, 'attributes': {}}
  _, baseline_runs = attribute_eval.split_attacks(config.attack)
  baseline_program = jax.jit(functools.partial(attribute_eval.evaluate_baselines,
                                               attacks=baseline_runs))
  baselines = {}
  for a, name in enumerate(config.attack.sensitive):
    arrays['attributes'][name] = attribute_eval.attribute_arrays(targets, aux, name)
    key = jax.random.fold_in(jax.random.fold_in(streams['attack'], 1 + a), 0)
    baselines[name] = jax.device_get(baseline_program(key, {**records,
                                                            **arrays['attributes'][name]}))
  sizes = {'members': int(member.sum()), 'non-members': int((1 - member).sum())}
  return arrays, sizes, baselines, tuple(run.name for run in baseline_runs)


def attack_accuracy(params, seed, arrays, *, apply_fn, sensitive, attacks, release, decimals,
                    noise_std, flip_prob) -> dict:
  """Accuracy [members, non-members] {attribute: {(attack, variant): ...}} against one model.

  Each attribute is `attribute_eval.evaluate` with the keys medinv.attribute.experiment draws for
  model seed `seed` at its first grid point, first draw: the release key fold_in(fold_in(fold_in(
  defense, 1), 0), 0) and the attack key fold_in(fold_in(fold_in(fold_in(attack, 1 + a), 1),
  0), 0), a the attribute's index in `sensitive`. So a model equals the experiment's target of
  config.seed = seed when both see the same targets and release rule.
  """
  streams = keys_lib.named_keys(seed)
  first = lambda key: jax.random.fold_in(jax.random.fold_in(key, 0), 0)
  release_key = first(jax.random.fold_in(streams['defense'], 1))
  view_params = (params,) + tuple(arrays['scaler'])
  out = {}
  for a, name in enumerate(sensitive):  # config order (the traced dict's order is sorted)
    attack_key = first(jax.random.fold_in(jax.random.fold_in(streams['attack'], 1 + a), 1))
    out[name] = attribute_eval.evaluate(
        release_key, attack_key, flip_prob, {**arrays['records'], **arrays['attributes'][name]},
        view_params, apply_fn=apply_fn, release=release, decimals=decimals,
        noise_std=noise_std, attacks=attacks)['attacks']
  return out


def evaluate_one(state_point, x_train, y_train, x_test, y_test, attack_arrays, *, apply_fn,
                 settings):
  """Utility of one model and, with attack arrays, the attacks against it."""
  state, point = state_point
  out = {f'train_{k}': v for k, v in evaluation.evaluate(state.params, x_train, y_train,
                                                         apply_fn=apply_fn).items()}
  out.update({f'test_{k}': v for k, v in evaluation.evaluate(state.params, x_test, y_test,
                                                             apply_fn=apply_fn).items()})
  if attack_arrays:
    out['attack'] = attack_accuracy(state.params, point[population_lib.SEED], attack_arrays,
                                    apply_fn=apply_fn, **dict(settings))
  return out


@functools.lru_cache(maxsize=None)
def evaluate_fn(apply_fn, settings):
  return functools.partial(evaluate_one, apply_fn=apply_fn, settings=settings)


# ----------------------------------------------------------------------------- experiment

def has_attack(config) -> bool:
  return 'attack' in config and data_lib.is_records(config.data.dataset)


def validate(config) -> None:
  """The training config, and the attack config when the population is attacked."""
  trainer.validate(config)
  if has_attack(config):
    attribute_eval.check_config(config)


def start(workdir: str, config) -> None:
  """Refuses a workdir whose checkpoints another population wrote; writes config.json."""
  checkpoint.check_compatible(
      os.path.join(workdir, 'config.json'), json.loads(json.dumps(config.to_dict())),
      trainer.CHECKPOINT_FIELDS + tuple(f'sweep.axes.{axis}' for axis in population_lib.TRAIN_AXES))
  report.write_config(workdir, config)


def fit_target(config, task: data_lib.Task, workdir: str) -> dict:
  """The target step: the population's fit (resumed from workdir/checkpoints)."""
  population, _ = population_lib.with_privacy(config, population_lib.points(config),
                                              len(task.y_train))
  model, state, size = population_lib.fit(config, task, population,
                           checkpoint_dir=os.path.join(workdir, 'checkpoints'))
  return {'model': model, 'state': state, 'size': size, 'points': population}


def grid(ctx) -> dict:
  """Every model's utility and, for record datasets with an attack config, the MAP attack."""
  config, task, target = ctx.config, ctx.task, ctx.target
  arrays, settings, group_sizes, baselines, baseline_names = {}, (), {}, {}, ()
  if has_attack(config):
    settings = attack_settings(config)
    arrays, group_sizes, baselines, baseline_names = prepare_attack(config, task)
  evaluated = sharding.map_grid(evaluate_fn(target['model'].apply, settings),
                                (target['state'], target['points']), task.x_train,
                                task.y_train, task.x_test, task.y_test, arrays)
  return {'evaluated': evaluated, 'group_sizes': group_sizes, 'baselines': baselines,
          'baseline_names': baseline_names}


def rows(ctx, outputs: dict) -> tuple[dict, list[dict]]:
  """(metrics, rows) of results.json."""
  task, evaluated = ctx.task, outputs['evaluated']
  result_rows = population_rows(ctx.config, ctx.target['points'], outputs)
  test_accuracy = evaluated['test_accuracy']
  metrics = {'models': ctx.target['size'], 'test_accuracy_mean': float(np.mean(test_accuracy)),
             'test_accuracy_min': float(np.min(test_accuracy)),
             'test_accuracy_max': float(np.max(test_accuracy)),
             'test_majority_accuracy': float(np.max(np.bincount(task.y_test)) / len(task.y_test))}
  if outputs['group_sizes']:
    member_rows = [r['attack_accuracy'] for r in result_rows if r['targets'] == 'members']
    metrics['attack_accuracy_max'] = float(np.max(member_rows))
  return metrics, result_rows


SPEC = experiment.Spec(name='population', validate=validate, grid=grid, rows=rows,
                       target=fit_target, start=start)


def run(config, workdir: str) -> dict:
  """Trains the population of config (a sweep run), evaluates and attacks it, writes results."""
  return experiment.run(SPEC, config, workdir)


def _value(x) -> float:
  return float(str(np.float32(x)))  # 0.0003, not float32's 0.0003000000142492354


def population_rows(config, population, outputs: dict) -> list[dict]:
  """One row per model, or per (model, attribute, attack, variant, target group) attacked.

  Attack rows carry the no-model baselines (the prior's majority guess and the classifier
  from the other attributes) and the attack's advantage over the better of the two.
  """
  evaluated, group_sizes = outputs['evaluated'], outputs['group_sizes']
  rows = []
  for k in range(len(population[population_lib.SEED])):
    model_row = {'dataset': data_lib.source_name(config.data), 'model': config.model,
                 'seed': int(population[population_lib.SEED][k]),
                 'label_flip_prob': _value(population[population_lib.FLIP][k]),
                 'learning_rate': _value(population[population_lib.LR][k]),
                 'dp_target_epsilon': _value(population[population_lib.EPSILON][k]),
                 'dp_epsilon': _value(population[population_lib.DP_EPSILON][k]),
                 'train_accuracy': float(evaluated['train_accuracy'][k]),
                 'test_accuracy': float(evaluated['test_accuracy'][k]),
                 'test_loss': float(evaluated['test_loss'][k])}
    if not group_sizes:
      rows.append(model_row)
      continue
    for name in config.attack.sensitive:
      for (attack, variant), accuracy in evaluated['attack'][name].items():
        for g, group in enumerate(attribute_eval.GROUPS):
          if group_sizes[group]:
            rows.append({**model_row, 'attribute': name, 'attack': attack, 'variant': variant,
                         'targets': group, 'n': group_sizes[group],
                         'attack_accuracy': float(accuracy[k, g]),
                         **attribute_eval.baseline_columns(
                             outputs['baselines'][name], g, float(accuracy[k, g]),
                             outputs['baseline_names'])})
  return rows
