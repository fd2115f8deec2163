"""Population training: K target models in one program, vmapped over training hyperparameters.

Model k is what `medinv.training.trainer.train_and_evaluate` trains for config.seed = seed_k,
train.label_flip_prob = p_k and train.learning_rate = lr_k (same key tree, same epochs,
optimizer and schedule (medinv.training.optimizer), augmentation and label perturbation),
so a population equals K sequential runs up to float rounding.
The K models are the points of the sweep's vmapped axes (`TRAIN_AXES`); they train
sharded over every device (`sharding.map_grid_sharded`), a chunk of epochs per program, with
an orbax checkpoint of the whole population after each chunk (each process saves its own
shards), so a killed run resumes where it stopped.

Keys (medinv.core.keys), per model: named_keys(seed_k); `init` initialises it, epoch e shuffles
with fold_in(data, e), fold_in(defense, 0) flips its training labels (as medinv.training.trainer);
the attack draws its releases as medinv.attribute.experiment's first grid point and draw for seed_k
(`attack_accuracy`). Targets, auxiliary records and baselines come from config.seed's attack stream,
shared by every model.
"""
from __future__ import annotations

import functools
import os
import time
from typing import Callable

from absl import logging
import jax
import numpy as np

from medinv.core import axes as axes_lib
from medinv.core import checkpoint
from medinv import data as data_lib
from medinv import defenses
from medinv.training import dp_sgd
from medinv.training import optimizer
from medinv.core import keys as keys_lib
from medinv import models
from medinv.core import sharding
from medinv.training import trainer

TRAIN_AXES = ('seed', 'train.label_flip_prob', 'train.learning_rate', 'train.dp.target_epsilon')
SEED, FLIP, LR, EPSILON = TRAIN_AXES
# DP-SGD per model (`with_privacy`): noise multiplier, clip norm (inf without DP), accounted
# epsilon.
DP_NOISE, DP_CLIP, DP_EPSILON = 'dp_noise_multiplier', 'dp_clip_norm', 'dp_epsilon'
# Optional point field (K, M) int: model k trains on x[train_index[k]], y[train_index[k]] only
# (membership-inference shadows, each on its own half of the candidate records).
TRAIN_INDEX = 'train_index'
# Optional point field (K, N) 0/1: model k's records at 0 add nothing to its steps (a DP
# audit's canaries, each in or out of each model; medinv.membership.audit).
TRAIN_MASK = 'train_mask'
# Optional point field (K,) int: model k initialises from named_keys(init_seed_k)['init']
# instead of its SEED's (a DP audit's shared initialisation: DP-SGD's guarantee holds for any
# fixed initial parameters, and sharing them takes their spread out of the audit's scores).
INIT_SEED = 'init_seed'


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

  Model k's DP-SGD is medinv.training.trainer's for train.dp.target_epsilon = EPSILON_k (calibrated
  on the host, once per distinct epsilon). When any model is private, the whole population
  trains with Poisson-sampled batches and per-example gradients (the non-private ones with
  noise 0 and no clipping), so the padded batch is static; 0 means ordinary training.
  """
  epsilons = np.asarray(population.get(EPSILON, np.full(len(population[SEED]),
                                                         config.train.dp.target_epsilon)))
  tc = config.train
  settings = {float(e): dp_sgd.setting(tc.dp, records, tc.batch_size, tc.num_epochs, float(e))
              for e in np.unique(epsilons)}
  points = {**population, EPSILON: epsilons.astype(np.float32)}
  points[DP_NOISE] = np.asarray([settings[float(e)].noise_multiplier for e in epsilons],
                                np.float32)
  points[DP_CLIP] = np.asarray([settings[float(e)].clip_norm for e in epsilons], np.float32)
  points[DP_EPSILON] = np.asarray([settings[float(e)].epsilon for e in epsilons], np.float32)
  private = [s for s in settings.values() if s.noise_multiplier > 0]
  return points, (private[0].max_batch if private else 0)


def _optimizer(point, settings: optimizer.Settings):
  return optimizer.make(point[LR], settings)


def training_labels(point, y, *, num_classes: int):
  """Model k's training labels: randomized response at its flip_prob (identity at 0)."""
  defense_key = keys_lib.named_keys(point[SEED])['defense']
  return defenses.randomized_response(jax.random.fold_in(defense_key, 0), y, point[FLIP],
                                      num_classes)


def init_one(point, sample_x, *, model, settings: optimizer.Settings) -> trainer.TrainState:
  init_key = keys_lib.named_keys(point.get(INIT_SEED, point[SEED]))['init']
  return trainer.init_state(init_key, model, _optimizer(point, settings), sample_x)


def training_subset(point, x, y):
  """Model k's training records: all of (x, y), or its own rows when the point has TRAIN_INDEX.

  A model with TRAIN_INDEX is what train.train_and_evaluate trains on a task whose x_train,
  y_train are x[train_index], y[train_index] (same keys, same order).
  """
  if TRAIN_INDEX not in point:
    return x, y
  return x[point[TRAIN_INDEX]], y[point[TRAIN_INDEX]]


def train_chunk(state_point, x, y, first_epoch, *, model, settings: optimizer.Settings,
                batch_size: int, augment: tuple[bool, int], num_epochs: int, num_classes: int,
                dp_batch: int = 0):
  """num_epochs epochs of one model from first_epoch: (state, point) -> (state, last loss).

  settings: the optimizer's (`optimizer.settings` of config.train for the model's records);
  augment: (train.augment_flip, train.augment_shift).

  dp_batch > 0: DP-SGD with the point's DP_NOISE and DP_CLIP (`with_privacy`), its noise
  from fold_in(defense, 2) of the model's seed, as medinv.training.trainer.
  """
  state, point = state_point
  x, y = training_subset(point, x, y)
  streams = keys_lib.named_keys(point[SEED])
  private = {}
  if dp_batch:
    private = {'dp_batch': dp_batch, 'dp_params': {
        'noise_multiplier': point[DP_NOISE], 'clip_norm': point[DP_CLIP],
        'key': jax.random.fold_in(streams['defense'], 2)}}
  state, losses = trainer.run_epochs(
      state, streams['data'], first_epoch, x, training_labels(point, y, num_classes=num_classes),
      num_epochs=num_epochs, apply_fn=model.apply, tx=_optimizer(point, settings),
      batch_size=batch_size, augment_flip=augment[0], augment_shift=augment[1],
      record_mask=point.get(TRAIN_MASK),
      **private)
  return state, losses[-1]


@functools.lru_cache(maxsize=None)
def chunk_fn(model, settings, batch_size, augment, num_epochs, num_classes, dp_batch=0):
  """Cached per static setting, so every chunk of the same length reuses one program."""
  return functools.partial(train_chunk, model=model, settings=settings,
                           batch_size=batch_size, augment=augment,
                           num_epochs=num_epochs, num_classes=num_classes, dp_batch=dp_batch)


def fit(config, task: data_lib.Task, population: dict[str, np.ndarray], *,
        checkpoint_dir: str | None = None, mesh=None, batch_size: int = 0,
        privacy: Callable[[dict, int], tuple[dict, int]] | None = None):
  """Trains the population; returns (model, padded sharded TrainState, K).

  The state's leading axis is the population padded to a multiple of the device count
  (entry k < K is model k); `sharding.gather` brings it to the host. batch_size: models per
  step on each device (`sharding.map_grid`'s; 0 vmaps them all, k > 0 runs k at a time,
  e.g. 1 for CNNs on XLA:CPU, where batched-weight convolutions are slow). Models train with
  DP-SGD where their train.dp.target_epsilon (EPSILON) is finite (`with_privacy`);
  privacy(points, dp_batch) -> (points, dp_batch), optional, changes that mechanism (a DP
  audit's deliberately broken ones, medinv.membership.audit).
  """
  model = models.build(config.model, task.num_classes, sample_x=task.x_train[:2])
  tc = config.train
  if tc.nopeek_weight:
    raise ValueError('train.nopeek_weight: populations (sweeps, membership shadows) train '
                     'without NoPeek; train the target with the model-inversion experiment')
  mesh = sharding.grid_mesh() if mesh is None else mesh
  x, y = np.asarray(task.x_train), np.asarray(task.y_train)  # Placed by sharding (any process).
  population, dp_batch = with_privacy(config, population, num_records(population, x))
  settings = optimizer.settings(tc, num_records(population, x))
  if privacy is not None:
    population, dp_batch = privacy(population, dp_batch)
  state, size = sharding.map_grid_sharded(init_fn(model, settings), population,
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
    fn = chunk_fn(model, settings, tc.batch_size, (tc.augment_flip, tc.augment_shift), chunk,
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
def init_fn(model, settings):
  return functools.partial(init_one, model=model, settings=settings)
