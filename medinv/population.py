"""Population training: K target models in one program, vmapped over training hyperparameters.

Model k is what `medinv.train.train_and_evaluate` trains for config.seed = seed_k,
train.label_flip_prob = p_k and train.learning_rate = lr_k (same key tree, same epochs,
same label perturbation), so a population equals K sequential runs up to float rounding.
The K models are the points of the sweep's vmapped axes (`TRAIN_AXES`); they train
sharded over every device (`sharding.map_grid_sharded`), a chunk of epochs per program, with
an orbax checkpoint of the whole population after each chunk (each process saves its own
shards), so a killed run resumes where it stopped.

For record datasets, when the config has an `attack` section (configs/aia_*.py), the
attribute-inference MAP attack runs against every model of the population in the same
program as its evaluation, through `attribute_eval.evaluate`, the evaluation medinv.aia runs
per release draw: the released label is the model's prediction (release flip_prob 0: the
training-time label flip is the defense under study), and each row carries the model's test
accuracy and the no-model baselines, so each row is a point on a privacy-utility curve.

`run(config, workdir)` is `experiment.run(SPEC, ...)`; its target step is the population fit.

Keys (medinv.keys), per model: named_keys(seed_k); `init` initialises it, epoch e shuffles
with fold_in(data, e), fold_in(defense, 0) flips its training labels (as medinv.train); the
attack draws its releases as medinv.aia's first grid point and draw for seed_k
(`attack_accuracy`). Targets, auxiliary records and baselines come from config.seed's attack
stream, shared by every model.
"""
from __future__ import annotations

import functools
import json
import os
import time

from absl import logging
import jax
import numpy as np

from medinv import axes as axes_lib
from medinv import checkpoint
from medinv import data as data_lib
from medinv import defenses
from medinv import dp
from medinv import experiment
from medinv import keys as keys_lib
from medinv import models
from medinv import report
from medinv import sharding
from medinv import train
from medinv.attacks import attribute_eval

TRAIN_AXES = ('seed', 'train.label_flip_prob', 'train.learning_rate', 'train.dp.target_epsilon')
SEED, FLIP, LR, EPSILON = TRAIN_AXES
# DP-SGD per model (`with_privacy`): noise multiplier, clip norm (inf without DP), accounted
# epsilon.
DP_NOISE, DP_CLIP, DP_EPSILON = 'dp_noise_multiplier', 'dp_clip_norm', 'dp_epsilon'
MAP_ATTACKS = ('map',)  # The release attacks a population runs (of config.attack.names).
# Optional point field (K, M) int: model k trains on x[train_index[k]], y[train_index[k]] only
# (membership-inference shadows, each on its own half of the candidate records).
TRAIN_INDEX = 'train_index'


def points(config) -> dict[str, np.ndarray]:
  """The population's hyperparameters {axis: (K,)} from the sweep axes (config defaults)."""
  axes = axes_lib.grid_axes(config, TRAIN_AXES)
  defaults = {SEED: config.seed, FLIP: float(config.train.label_flip_prob),
              LR: float(config.train.learning_rate),
              EPSILON: float(config.train.dp.target_epsilon)}
  return axes_lib.grid_points(axes, defaults)


def num_records(population, x) -> int:
  """Training records per model: its TRAIN_INDEX rows, or all of x."""
  return population[TRAIN_INDEX].shape[1] if TRAIN_INDEX in population else len(x)


def with_privacy(config, population: dict, records: int) -> tuple[dict, int]:
  """(points with DP_NOISE, DP_CLIP, DP_EPSILON per model, padded DP batch or 0).

  Model k's DP-SGD is medinv.train's for train.dp.target_epsilon = EPSILON_k (calibrated
  on the host, once per distinct epsilon). When any model is private, the whole population
  trains with Poisson-sampled batches and per-example gradients (the non-private ones with
  noise 0 and no clipping), so the padded batch is static; 0 means ordinary training.
  """
  epsilons = np.asarray(population.get(EPSILON, np.full(len(population[SEED]),
                                                         config.train.dp.target_epsilon)))
  tc = config.train
  settings = {float(e): dp.setting(tc.dp, records, tc.batch_size, tc.num_epochs, float(e))
              for e in np.unique(epsilons)}
  points = {**population, EPSILON: epsilons.astype(np.float32)}
  points[DP_NOISE] = np.asarray([settings[float(e)].noise_multiplier for e in epsilons],
                                np.float32)
  points[DP_CLIP] = np.asarray([settings[float(e)].clip_norm for e in epsilons], np.float32)
  points[DP_EPSILON] = np.asarray([settings[float(e)].epsilon for e in epsilons], np.float32)
  private = [s for s in settings.values() if s.noise_multiplier > 0]
  return points, (private[0].max_batch if private else 0)


def _optimizer(point, weight_decay: float):
  return train.make_optimizer(point[LR], weight_decay)


def training_labels(point, y, *, num_classes: int):
  """Model k's training labels: randomized response at its flip_prob (identity at 0)."""
  defense_key = keys_lib.named_keys(point[SEED])['defense']
  return defenses.randomized_response(jax.random.fold_in(defense_key, 0), y, point[FLIP],
                                      num_classes)


def init_one(point, sample_x, *, model, weight_decay: float) -> train.TrainState:
  init_key = keys_lib.named_keys(point[SEED])['init']
  return train.init_state(init_key, model, _optimizer(point, weight_decay), sample_x)


def training_subset(point, x, y):
  """Model k's training records: all of (x, y), or its own rows when the point has TRAIN_INDEX.

  A model with TRAIN_INDEX is what train.train_and_evaluate trains on a task whose x_train,
  y_train are x[train_index], y[train_index] (same keys, same order).
  """
  if TRAIN_INDEX not in point:
    return x, y
  return x[point[TRAIN_INDEX]], y[point[TRAIN_INDEX]]


def train_chunk(state_point, x, y, first_epoch, *, model, weight_decay: float,
                batch_size: int, augment_flip: bool, num_epochs: int, num_classes: int,
                dp_batch: int = 0):
  """num_epochs epochs of one model from first_epoch: (state, point) -> (state, last loss).

  dp_batch > 0: DP-SGD with the point's DP_NOISE and DP_CLIP (`with_privacy`), its noise
  from fold_in(defense, 2) of the model's seed, as medinv.train.
  """
  state, point = state_point
  x, y = training_subset(point, x, y)
  streams = keys_lib.named_keys(point[SEED])
  private = {}
  if dp_batch:
    private = {'dp_batch': dp_batch, 'dp_params': {
        'noise_multiplier': point[DP_NOISE], 'clip_norm': point[DP_CLIP],
        'key': jax.random.fold_in(streams['defense'], 2)}}
  state, losses = train.run_epochs(
      state, streams['data'], first_epoch, x, training_labels(point, y, num_classes=num_classes),
      num_epochs=num_epochs, apply_fn=model.apply, tx=_optimizer(point, weight_decay),
      batch_size=batch_size, augment_flip=augment_flip, **private)
  return state, losses[-1]


@functools.lru_cache(maxsize=None)
def chunk_fn(model, weight_decay, batch_size, augment_flip, num_epochs, num_classes,
             dp_batch=0):
  """Cached per static setting, so every chunk of the same length reuses one program."""
  return functools.partial(train_chunk, model=model, weight_decay=weight_decay,
                           batch_size=batch_size, augment_flip=augment_flip,
                           num_epochs=num_epochs, num_classes=num_classes, dp_batch=dp_batch)


def fit(config, task: data_lib.Task, population: dict[str, np.ndarray], *,
        checkpoint_dir: str | None = None, mesh=None, batch_size: int = 0):
  """Trains the population; returns (model, padded sharded TrainState, K).

  The state's leading axis is the population padded to a multiple of the device count
  (entry k < K is model k); `sharding.gather` brings it to the host. batch_size: models per
  step on each device (`sharding.map_grid`'s; 0 vmaps them all, k > 0 runs k at a time,
  e.g. 1 for CNNs on XLA:CPU, where batched-weight convolutions are slow). Models train with
  DP-SGD where their train.dp.target_epsilon (EPSILON) is finite (`with_privacy`).
  """
  model = models.build(config.model, task.num_classes)
  tc = config.train
  if tc.nopeek_weight:
    raise ValueError('train.nopeek_weight: populations (sweeps, membership shadows) train '
                     'without NoPeek; train the target with the model-inversion experiment')
  mesh = sharding.grid_mesh() if mesh is None else mesh
  x, y = np.asarray(task.x_train), np.asarray(task.y_train)  # Placed by sharding (any process).
  population, dp_batch = with_privacy(config, population, num_records(population, x))
  state, size = sharding.map_grid_sharded(init_fn(model, float(tc.weight_decay)), population,
                                       x[:1], mesh=mesh)
  mngr, epoch = None, 0
  if checkpoint_dir:
    padded = sharding.padded_size(size, mesh.size)  # Checkpoints hold the padded population.
    mngr = checkpoint.manager(os.path.join(checkpoint_dir, f'padded_{padded}'))
    epoch, restored = checkpoint.restore_latest(mngr, state)
    if restored is not None:
      state = restored
      logging.info('population of %d resumed from epoch %d', size, epoch)
  start = time.time()
  while epoch < tc.num_epochs:
    chunk = min(tc.checkpoint_every_epochs, tc.num_epochs - epoch)
    fn = chunk_fn(model, float(tc.weight_decay), tc.batch_size, tc.augment_flip, chunk,
                  task.num_classes, dp_batch)
    (state, losses), _ = sharding.map_grid_sharded(fn, (state, population), x, y,
                                                np.int32(epoch), mesh=mesh,
                                                batch_size=batch_size)
    epoch += chunk
    if mngr is not None:
      checkpoint.save(mngr, epoch, state)
    logging.info('population of %d: epoch %d/%d, %.1fs', size, epoch, tc.num_epochs,
                 time.time() - start)
  if mngr is not None:
    mngr.wait_until_finished()
    mngr.close()
  return model, state, size


@functools.lru_cache(maxsize=None)
def init_fn(model, weight_decay):
  return functools.partial(init_one, model=model, weight_decay=weight_decay)


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

  Targets, auxiliary records and priors are medinv.aia's (the attack stream of config.seed
  picks the non-member targets), the same for every model of the population; baselines use
  the key aia uses for attribute a: fold_in(fold_in(attack, 1 + a), 0).

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

  Each attribute is `attribute_eval.evaluate` with the keys medinv.aia draws for model seed
  `seed` at its first grid point, first draw: the release key fold_in(fold_in(fold_in(
  defense, 1), 0), 0) and the attack key fold_in(fold_in(fold_in(fold_in(attack, 1 + a), 1),
  0), 0), a the attribute's index in `sensitive`. So a model equals aia's target of
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
  out = {f'train_{k}': v for k, v in train.evaluate(state.params, x_train, y_train,
                                                      apply_fn=apply_fn).items()}
  out.update({f'test_{k}': v for k, v in train.evaluate(state.params, x_test, y_test,
                                                          apply_fn=apply_fn).items()})
  if attack_arrays:
    out['attack'] = attack_accuracy(state.params, point[SEED], attack_arrays,
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
  train.validate(config)
  if has_attack(config):
    attribute_eval.check_config(config)


def start(workdir: str, config) -> None:
  """Refuses a workdir whose checkpoints another population wrote; writes config.json."""
  checkpoint.check_compatible(
      os.path.join(workdir, 'config.json'), json.loads(json.dumps(config.to_dict())),
      train.CHECKPOINT_FIELDS + tuple(f'sweep.axes.{axis}' for axis in TRAIN_AXES))
  report.write_config(workdir, config)


def fit_target(config, task: data_lib.Task, workdir: str) -> dict:
  """The target step: the population's fit (resumed from workdir/checkpoints)."""
  population, _ = with_privacy(config, points(config), len(task.y_train))
  model, state, size = fit(config, task, population,
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
  for k in range(len(population[SEED])):
    model_row = {'dataset': config.data.dataset, 'model': config.model,
                 'seed': int(population[SEED][k]),
                 'label_flip_prob': _value(population[FLIP][k]),
                 'learning_rate': _value(population[LR][k]),
                 'dp_target_epsilon': _value(population[EPSILON][k]),
                 'dp_epsilon': _value(population[DP_EPSILON][k]),
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
