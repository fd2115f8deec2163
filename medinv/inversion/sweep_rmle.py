"""White-box rMLE sweep: target population x defense sigma x attack hyperparameters, one program.

A run trains a population of targets (config.model, any registered model with split points;
`medinv.training.population`: vmapped over seeds, training-time label flip_prob and learning
rate), split at attack.split (`medinv.models.split_at`), then attacks every model at every point of
the attack grid (defense.sigma x attack.learning_rate x attack.weights.<term>) in one
program: `sharding.map_grid` over the flattened (model, attack point) grid, sharded over the
devices. Each point perturbs hospital A's layers of its model with sigma (the 'fixed' mode
of medinv.defenses, drawn from the model's defense stream, as medinv.inversion.experiment),
reconstructs the targets from the features the deployed edge sends, with He et al.'s regularised
maximum-likelihood attack (the attacker holds the deployed model), and reports SSIM / PSNR / MSE
against the targets next to the deployed model's test accuracy. The no-model baseline (the
attacker's mean image as every reconstruction) is in the run's metrics.

Objective weights are traced values, so `attack.weights.tv` etc. vmap like any number; the
terms come from medinv.inversion.objectives.TERMS.
"""
from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from medinv.core import axes as axes_lib
from medinv import data as data_lib
from medinv import defenses
from medinv.training import experiment
from medinv.core import keys as keys_lib
from medinv.metrics import image as image_metrics
from medinv import models
from medinv.training import population
from medinv.core import sharding
from medinv.training import trainer
from medinv.inversion import grid
from medinv.inversion import reconstruct
from medinv.inversion import objectives

ATTACK_AXES = ('defense.sigma', 'attack.learning_rate', 'attack.weights.*')


def validate(config) -> None:
  trainer.validate(config)
  models.require_split_points(config.model, 'config.model', 'the rmle sweep')
  models.split_layer(config.model, config.attack.split, 'attack.split')
  for name, weight in config.attack.weights.items():
    if name not in objectives.TERMS:
      raise ValueError(f'attack.weights.{name}: unknown objective term; registered: '
                       f'{", ".join(sorted(objectives.TERMS))}')
    if not weight >= 0:
      raise ValueError(f'attack.weights.{name} must be >= 0, got {weight}')
  for field in ('num_targets', 'steps', 'learning_rate'):
    reconstruct.check_positive(f'attack.{field}', config.attack[field])
  if not config.defense.sigma >= 0:
    raise ValueError(f'defense.sigma must be >= 0, got {config.defense.sigma}')
  if config.defense.scope not in defenses.SCOPES:
    raise ValueError(f'defense.scope {config.defense.scope!r}: allowed {defenses.SCOPES}')


def attack_points(config) -> dict[str, np.ndarray]:
  """The attack grid {axis: (P,)}: sigma x learning rate x each objective weight."""
  axes = axes_lib.grid_axes(config, ATTACK_AXES)
  defaults = {'defense.sigma': float(config.defense.sigma),
              'attack.learning_rate': float(config.attack.learning_rate)}
  defaults.update({f'attack.weights.{name}': float(weight)
                   for name, weight in config.attack.weights.items()})
  return axes_lib.grid_points(axes, defaults)


def weighted_objective(weights: dict):
  """sum_k weights[k] * TERMS[k](x, ctx), with weights that may be traced."""
  def objective(x, ctx):
    return sum((weight * objectives.TERMS[name](x, ctx) for name, weight in weights.items()),
               jnp.zeros((), x.dtype))
  return objective


def attack_point(point, population_params, x_targets, x_test, y_test, *, model, split,
                 scope: str, steps: int):
  """One (model, sigma, attack hyperparameters) point: reconstruction quality and utility.

  The registered 'rmle' attack against the registered 'model_perturbation' defense (fixed
  mode), through the model-inversion grid driver, with traced hyperparameters.
  """
  params = jax.tree.map(lambda leaf: leaf[point['model']], population_params)
  defense_key = keys_lib.named_keys(point['seed'])['defense']
  defense_cfg = defenses.config_block('model_perturbation', modes=('fixed',), scope=scope)
  weights = {path.rsplit('.', 1)[1]: value for path, value in point.items()
             if path.startswith('attack.weights.')}
  cfg = ml_collections.ConfigDict(dict(objective=weighted_objective(weights), steps=steps,
                                       learning_rate=point['attack.learning_rate']))
  arrays = {'theta': params, 'x_targets': x_targets, 'x_aux': x_test, 'y_aux': y_test}
  reconstructions = grid.attack_at(
      point['defense.sigma'], arrays, {}, defense='model_perturbation',
      defense_cfg=defense_cfg, defense_key=defense_key, attack='rmle', cfg=cfg, model=model,
      split=split, knows_defense=True, attack_key=defense_key, num_classes=0)['fixed']
  quality = {name: jnp.mean(values) for name, values in
             image_metrics.image_quality(reconstructions, x_targets).items()}
  accuracy = grid.accuracy_at(point['defense.sigma'], {'theta': params, 'x_test': x_test,
                                                       'y_test': y_test},
                              model=model, split=split, defense='model_perturbation',
                              defense_cfg=defense_cfg, defense_key=defense_key)['fixed']
  return {**quality, 'model_test_accuracy': accuracy}


@functools.lru_cache(maxsize=None)
def point_fn(model, split: models.Split, scope: str, steps: int):
  return functools.partial(attack_point, model=model, split=split, scope=scope, steps=steps)


def flat_grid(models_points: dict[str, np.ndarray], attack_grid: dict[str, np.ndarray]
         ) -> dict[str, np.ndarray]:
  """The flattened (model, attack point) grid, models slowest."""
  num_models = len(models_points['seed'])
  num_attack = len(next(iter(attack_grid.values())))
  flat = {'model': np.repeat(np.arange(num_models, dtype=np.int32), num_attack),
          'seed': np.repeat(models_points['seed'], num_attack)}
  flat.update({k: np.tile(v, num_models) for k, v in attack_grid.items()})
  return flat


def _targets(config, task: data_lib.Task) -> np.ndarray:
  targets_key = jax.random.fold_in(keys_lib.named_keys(config.seed)['attack'], 0)
  index = np.sort(np.asarray(
      jax.random.permutation(targets_key, len(task.x_train))[:config.attack.num_targets]))
  return task.x_train[index]


def _target(config, task: data_lib.Task, workdir: str) -> dict:
  """Checks the attacker's images, then trains (or resumes) the run's target population."""
  reconstruct.check_attack_images(_targets(config, task), task.x_test)  # attacker: test split
  models_points = population.points(config)
  model, state, size = population.fit(config, task, models_points,
                                      checkpoint_dir=os.path.join(workdir, 'checkpoints'))
  return {'model': model, 'state': state, 'size': size, 'points': models_points}


def _grid(ctx: experiment.Context) -> dict:
  """Every (model, attack point) in one program sharded over the devices."""
  config, task, target = ctx.config, ctx.task, ctx.target
  flat = flat_grid(target['points'], attack_points(config))
  split = models.split_at(config.model, target['model'], config.attack.split, task.x_train[:1],
                          'attack.split')
  fn = point_fn(target['model'], split, config.defense.scope, config.attack.steps)
  out = sharding.map_grid(fn, flat, target['state'].params, _targets(config, task), task.x_test,
                          task.y_test, batch_size=config.attack.grid_batch_size)
  return {'flat': flat, 'out': out}


def _rows(ctx: experiment.Context, outputs: dict) -> tuple[dict, list[dict]]:
  config, models_points = ctx.config, ctx.target['points']
  flat, out = outputs['flat'], outputs['out']
  x_targets, x_aux = _targets(config, ctx.task), ctx.task.x_test
  rows = []
  for i, k in enumerate(flat['model']):
    row = {'dataset': data_lib.source_name(config.data), 'split': config.attack.split,
           'seed': int(flat['seed'][i]),
           'label_flip_prob': float(str(models_points['train.label_flip_prob'][k])),
           'train_learning_rate': float(str(models_points['train.learning_rate'][k]))}
    row.update({path.split('.', 1)[1]: float(str(flat[path][i])) for path in flat
                if path.startswith(('defense.', 'attack.'))})
    row.update({f'{name}_mean': float(out[name][i]) for name in image_metrics.QUALITY_METRICS})
    row.update(model_test_accuracy=float(out['model_test_accuracy'][i]),
               n_targets=len(x_targets))
    rows.append(row)
  baseline = image_metrics.quality_summary(
      reconstruct.mean_image_baseline(jnp.asarray(x_aux), len(x_targets)), jnp.asarray(x_targets))
  results_metrics = {'models': ctx.target['size'], 'points': len(rows),
                     'ssim_max': max(r['ssim_mean'] for r in rows),
                     'baseline_ssim': baseline['ssim_mean'], 'baseline_psnr': baseline['psnr_mean']}
  return results_metrics, rows


SPEC = experiment.Spec('rmle_sweep', validate, _grid, _rows, target=_target)


def run(config, workdir: str) -> dict:
  """Trains the run's target population, attacks it over the attack grid, writes results."""
  return experiment.run(SPEC, config, workdir)
