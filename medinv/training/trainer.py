"""Target-model training: pure steps, one `lax.scan` per epoch, orbax checkpoints, resume.

Keys (medinv.core.keys): `init` initialises the parameters; epoch e shuffles and augments with
fold_in(data, e), split into a shuffle key and an augmentation key whose fold_in(., s)
augments step s's batch (medinv.data.images.augment): a run resumed from an epoch-e
checkpoint ends as an uninterrupted run. The optimizer (medinv.training.optimizer) keeps its
step count, and with it the learning-rate schedule, in the checkpointed state.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from typing import Any, Callable

from absl import logging
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from medinv.core import checkpoint
from medinv import data as data_lib
from medinv.data import images as image_lib
from medinv.core import distributed
from medinv.training import dp_sgd
from medinv.training import evaluation
from medinv.training import optimizer
from medinv.core import errors
from medinv.core import keys as keys_lib
from medinv.core import locks
from medinv.metrics import features as feature_metrics
from medinv import models
from medinv.core import report
from medinv.core import sharding

# Config fields a checkpoint depends on; changing one of them makes a workdir incompatible.
# train.num_epochs sets a cosine schedule's horizon; at a constant rate it may change
# (medinv.core.checkpoint's RESUMABLE_CHANGES).
CHECKPOINT_FIELDS = ('seed', 'model', 'data.dataset', 'data.image_size', 'data.test_fraction',
                     'data.split_seed', 'data.validation_fraction', 'data.validation_seed',
                     'data.clean', 'data.variant', 'data.medmnist_name',
                     'data.medmnist_size', 'data.medmnist_task', 'data.path', 'data.schema',
                     'train.batch_size', 'train.learning_rate', 'train.weight_decay',
                     'train.schedule', 'train.warmup_epochs', 'train.num_epochs',
                     'train.augment_flip', 'train.augment_shift', 'train.label_flip_prob',
                     'train.dp.target_epsilon', 'train.dp.delta', 'train.dp.clip_norm',
                     'train.nopeek_weight', 'train.nopeek_split', 'data.scaling')


class TrainState(flax.struct.PyTreeNode):
  """Everything that changes during training (a pure pytree: checkpointable, vmappable)."""
  step: jax.Array
  params: Any
  opt_state: Any


def init_state(key: jax.Array, model: nn.Module, tx: optax.GradientTransformation,
               sample_x: jax.Array) -> TrainState:
  # One compiled program: flax's initializers op by op took 5 s of compilation per model.
  params = jax.jit(model.init)(key, sample_x[:1])['params']
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))


def nopeek_penalty(config, model: nn.Module, sample_x):
  """NoPeek (Vepakomma et al. 2020): train.nopeek_weight x the distance correlation between
  the batch's inputs and the features hospital A sends at split point train.nopeek_split of
  config.model (`models.split_at`; sample_x: inputs of the batch's shape); None at 0."""
  weight = float(config.train.nopeek_weight)
  if not weight:
    return None
  split = models.split_at(config.model, model, config.train.nopeek_split, sample_x,
                          'train.nopeek_split')
  edge = models.edge_fn(model, split)
  return lambda params, x: weight * feature_metrics.distance_correlation(x, edge(params, x))


def train_step(state: TrainState, batch, *, apply_fn, tx, penalty_fn=None
               ) -> tuple[TrainState, jax.Array]:
  """One Adam step on batch = (x, y, mask); returns (new state, loss)."""
  x, y, mask = batch
  grad_fn = jax.value_and_grad(functools.partial(evaluation.loss_and_logits, apply_fn=apply_fn,
                                                 penalty_fn=penalty_fn), has_aux=True)
  (loss, _), grads = grad_fn(state.params, x, y, mask)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  return TrainState(step=state.step + 1, params=params, opt_state=opt_state), loss


def private_step(state: TrainState, batch, key, *, apply_fn, tx, noise_multiplier, clip_norm,
                 expected_batch) -> tuple[TrainState, jax.Array]:
  """One DP-SGD step (medinv.training.dp_sgd) on batch = (x, y, mask), noise from `key`."""
  x, y, mask = batch

  def example_loss(params, x1, y1):
    logits = apply_fn({'params': params}, x1[None])
    return optax.softmax_cross_entropy_with_integer_labels(logits, y1[None])[0]

  grads, loss = dp_sgd.private_grads(key, state.params, x, y, mask, example_loss=example_loss,
                                     noise_multiplier=noise_multiplier, clip_norm=clip_norm,
                                     expected_batch=expected_batch)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  return TrainState(step=state.step + 1, params=params, opt_state=opt_state), loss


def train_epoch(state: TrainState, epoch_key: jax.Array, x, y, *, apply_fn, tx,
                batch_size: int, augment_flip: bool, augment_shift: int = 0, dp_batch: int = 0,
                dp_params=None, penalty_fn=None, record_mask=None
                ) -> tuple[TrainState, jax.Array]:
  """One pass over (x, y) in shuffled mini-batches, as a single `lax.scan`; images augmented
  (medinv.data.images.augment: flip, shift by up to augment_shift pixels). Records whose
  record_mask (N,) is 0 are drawn as usual but add nothing (a DP audit's excluded canaries).
  With dp_batch > 0 (DP-SGD, medinv.training.dp_sgd): ceil(N / batch_size) Poisson-sampled
  batches padded to dp_batch rows; dp_params {'noise_multiplier', 'clip_norm', 'key'}
  (traced; step s draws its noise from fold_in(key, s))."""
  perm_key, aug_key = jax.random.split(epoch_key)
  n = x.shape[0]
  if dp_batch:
    index, mask = dp_sgd.poisson_batches(perm_key, n, min(1.0, batch_size / n),
                                         math.ceil(n / batch_size), dp_batch)
  else:
    index, mask = evaluation.batch_indices(perm_key, n, batch_size)

  def body(state, step_input):
    step, (batch_index, batch_mask) = step_input
    batch_mask = batch_mask if record_mask is None else batch_mask * record_mask[batch_index]
    batch_x = x[batch_index]
    if augment_flip or augment_shift:
      batch_x = image_lib.augment(jax.random.fold_in(aug_key, step), batch_x,
                                  flip=augment_flip, max_shift=augment_shift)
    batch = (batch_x, y[batch_index], batch_mask)
    if dp_batch:
      return private_step(state, batch, jax.random.fold_in(dp_params['key'], step),
                          apply_fn=apply_fn, tx=tx, expected_batch=min(batch_size, n),
                          noise_multiplier=dp_params['noise_multiplier'],
                          clip_norm=dp_params['clip_norm'])
    return train_step(state, batch, apply_fn=apply_fn, tx=tx, penalty_fn=penalty_fn)

  state, losses = jax.lax.scan(body, state, (jnp.arange(index.shape[0]), (index, mask)))
  return state, jnp.mean(losses)


def run_epochs(state: TrainState, data_key: jax.Array, first_epoch: jax.Array, x, y, *,
               num_epochs: int, dp_params=None, **epoch_kwargs) -> tuple[TrainState, jax.Array]:
  """Epochs first_epoch .. first_epoch + num_epochs - 1, as a `lax.scan` of `train_epoch`.

  DP-SGD's noise key for epoch e is fold_in(dp_params['key'], e).
  """
  def body(state, epoch):
    epoch_dp = None if dp_params is None else {
        **dp_params, 'key': jax.random.fold_in(dp_params['key'], epoch)}
    return train_epoch(state, jax.random.fold_in(data_key, epoch), x, y, dp_params=epoch_dp,
                       **epoch_kwargs)
  return jax.lax.scan(body, state, first_epoch + jnp.arange(num_epochs))


@dataclasses.dataclass
class Trained:
  """A trained target model with the data it was trained on."""
  model: nn.Module
  params: Any
  task: data_lib.Task
  metrics: dict[str, float]
  apply_fn: Callable = dataclasses.field(init=False)

  def __post_init__(self):
    self.apply_fn = self.model.apply


def validate(config) -> None:
  """Checks names and sizes before any data is touched or compute spent."""
  dp_sgd.check_config(config.train.dp)
  data_lib.check_config(config.data, private=dp_sgd.is_private(config.train.dp))
  entry = models.check_fits(config.model, config.data.dataset,
                            data_lib.is_records(config.data.dataset))
  if entry.takes == 'images':
    data_lib.images.check_image_size(config.data.image_size)
  for field in ('num_epochs', 'batch_size', 'checkpoint_every_epochs'):
    if config.train[field] <= 0:
      raise ValueError(f'train.{field} must be positive, got {config.train[field]}')
  optimizer.check_config(config.train)
  check_augment(config, entry.takes)
  check_label_flip_prob(config, data_lib.declared_num_classes(config.data))
  check_nopeek(config)


def check_augment(config, takes: str) -> None:
  """train.augment_shift: 0, or for a model of images a shift in [1, data.image_size); no
  augmentation of records (takes: what config.model takes, 'images' or 'records')."""
  shift = config.train.augment_shift
  if takes != 'images' and (shift or config.train.augment_flip):
    raise ValueError(f'train.augment_flip / train.augment_shift: {config.model} takes records, '
                     'which have no pixels to flip or shift; set them to False / 0')
  if not 0 <= shift < config.data.image_size:
    raise ValueError(f'train.augment_shift must be in [0, data.image_size) = [0, '
                     f'{config.data.image_size}) pixels (0 = no shift), got {shift}')


def check_nopeek(config) -> None:
  """train.nopeek_weight >= 0; a positive one needs no DP-SGD, a model with split points
  and train.nopeek_split one of them (SplitCNN: 2, 4 or 6)."""
  weight = config.train.nopeek_weight
  if not weight >= 0:
    raise ValueError(f'train.nopeek_weight must be >= 0 (0 = no NoPeek), got {weight}')
  if weight and dp_sgd.is_private(config.train.dp):
    raise ValueError('train.nopeek_weight: NoPeek cannot train with DP-SGD (its penalty '
                     'couples a batch\'s records); set it to 0 or train.dp.target_epsilon inf')
  if weight:
    models.require_split_points(config.model, 'train.nopeek_weight', 'NoPeek')
    models.split_layer(config.model, config.train.nopeek_split, 'train.nopeek_split')


def check_label_flip_prob(config, num_classes: int | None) -> None:
  """train.label_flip_prob in [0, (k - 1) / k] for k classes ([0, 1) while k is unknown).

  At (k - 1) / k the flipped labels are independent of the true ones; above it they
  anti-correlate, which no label-DP setting asks for.
  """
  flip_prob = config.train.label_flip_prob
  if num_classes is None:
    if not 0 <= flip_prob < 1:
      raise ValueError(f'train.label_flip_prob must be in [0, 1), got {flip_prob}')
    return
  limit = (num_classes - 1) / num_classes
  if not 0 <= flip_prob <= limit:
    raise ValueError(f'train.label_flip_prob must be in [0, {limit:g}] for the '
                     f'{num_classes} classes of {config.data.dataset}, got {flip_prob}')


def _all_finite(tree) -> bool:
  return all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(tree)
             if jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.inexact))


def check_finite(losses, state: TrainState, first_epoch: int, config, workdir: str) -> None:
  """errors.DivergedError naming the epoch and learning rate when training diverged."""
  losses = np.asarray(losses)
  bad = np.flatnonzero(~np.isfinite(losses))
  if not bad.size and _all_finite(state.params):
    return
  epoch = first_epoch + (int(bad[0]) if bad.size else losses.size - 1) + 1
  what = f'loss {losses[bad[0]]}' if bad.size else 'non-finite parameters'
  kept = (f'; {workdir} keeps the checkpoints up to epoch {first_epoch}, trained with this '
          'learning rate: delete them or use another --workdir' if first_epoch else '')
  raise errors.DivergedError(
      f'training diverged at epoch {epoch} ({what}) with train.learning_rate='
      f'{config.train.learning_rate}: lower --config.train.learning_rate{kept}. No results '
      'were written.')


def _checkpointable(state):
  """The state as orbax saves it. In a multi-process run: global arrays replicated over every
  device of every process, so orbax writes each array once; otherwise the state itself."""
  if jax.process_count() == 1:
    return state
  return sharding.replicate(jax.device_get(state))


def _local(state):
  """A restored state on this process's device (undoes `_checkpointable`)."""
  if jax.process_count() == 1:
    return state
  return jax.tree.map(lambda leaf: jnp.asarray(leaf.addressable_data(0)), state)


def _fit(config, workdir: str, state: TrainState, data_key: jax.Array, x_train, y_train, *,
         apply_fn, tx, private: dict, penalty_fn=None) -> TrainState:
  """Resumes from workdir/checkpoints, trains to train.num_epochs, saving every
  checkpoint_every_epochs (DivergedError before saving a non-finite loss). private: DP-SGD's
  arguments (`dp_sgd.training_arguments`, {} without DP); penalty_fn: NoPeek's."""
  mngr = checkpoint.manager(os.path.join(workdir, 'checkpoints'))
  epoch, restored = checkpoint.restore_latest(mngr, _checkpointable(state))
  if restored is not None:
    state = _local(restored)
    check_finite(np.zeros(0), state, epoch, config, workdir)
    logging.info('resumed %s from epoch %d', workdir, epoch)
  epochs = jax.jit(functools.partial(
      run_epochs, apply_fn=apply_fn, tx=tx, batch_size=config.train.batch_size,
      augment_flip=config.train.augment_flip, augment_shift=config.train.augment_shift,
      dp_batch=private.get('dp_batch', 0),
      penalty_fn=penalty_fn),
      static_argnames='num_epochs', donate_argnums=0)
  total = config.train.num_epochs
  loop_start = time.time()
  first_epoch = epoch
  while epoch < total:
    chunk = min(config.train.checkpoint_every_epochs, total - epoch)
    state, losses = epochs(state, data_key, epoch, x_train, y_train, num_epochs=chunk,
                           dp_params=private.get('dp_params'))
    check_finite(losses, state, epoch, config, workdir)  # Before saving: resume stays sound.
    epoch += chunk
    checkpoint.save(mngr, epoch, _checkpointable(state))
    elapsed = time.time() - loop_start
    eta = elapsed / (epoch - first_epoch) * (total - epoch)
    logging.info('%s epoch %d/%d  loss %.4f  elapsed %.1fs  eta %.1fs', config.data.dataset,
                 epoch, total, float(losses[-1]), elapsed, eta)
  mngr.wait_until_finished()
  mngr.close()
  return state


def train_and_evaluate(config, workdir: str, task: data_lib.Task | None = None) -> Trained:
  """Trains config.model on config.data (resuming from workdir's checkpoints) and evaluates.

  `task` is config.data already loaded (an experiment loads its data once); None loads it.
  Writes workdir/config.json, checkpoints/ and results.json + results.csv, holding the
  workdir's lock (medinv.core.locks; an experiment's target/ gets a lock of its own).
  In a multi-process run every process trains the same model (same keys, same data) and
  orbax writes each checkpointed array once (`_checkpointable`); process 0 writes the rest.
  """
  validate(config)
  with locks.workdir_lock(workdir):
    return _train_and_evaluate(config, workdir, task)


def _train_and_evaluate(config, workdir: str, task: data_lib.Task | None) -> Trained:
  start_time = time.time()
  checkpoint.check_compatible(os.path.join(workdir, 'config.json'), config.to_dict(),
                              CHECKPOINT_FIELDS)
  report.write_config(workdir, config)
  if task is None:
    task = distributed.writer_first(lambda: data_lib.load_task(config.data))
    evaluation.write_splits(workdir, task)
  check_label_flip_prob(config, task.num_classes)
  model = models.build(config.model, task.num_classes, sample_x=task.x_train[:2])
  streams = keys_lib.named_keys(config.seed)
  y_train = task.y_train
  if config.train.label_flip_prob:
    from medinv import defenses  # Training-time label perturbation (label-DP variant).
    y_train = np.asarray(defenses.randomized_response(
        jax.random.fold_in(streams['defense'], 0), jnp.asarray(y_train),
        config.train.label_flip_prob, task.num_classes))
  tx = optimizer.make(config.train.learning_rate,
                      optimizer.settings(config.train, len(y_train)))
  state = init_state(streams['init'], model, tx, jnp.asarray(task.x_train))
  setting, private = dp_sgd.training_arguments(config, len(y_train), streams['defense'])
  state = _fit(config, workdir, state, streams['data'], jnp.asarray(task.x_train),
               jnp.asarray(y_train), apply_fn=model.apply, tx=tx, private=private,
               penalty_fn=nopeek_penalty(config, model, task.x_train[:1]))
  metrics = {**evaluation.model_metrics(config, state.params, int(state.step), task,
                                        apply_fn=model.apply),
             **dp_sgd.model_metrics(setting)}
  report.write_results(workdir, 'train', metrics, evaluation.result_rows(config, metrics),
                       time.time() - start_time)
  return Trained(model=model, params=state.params, task=task, metrics=metrics)
