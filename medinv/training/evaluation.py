"""Evaluating a model: its loss (the training objective too), batched accuracy, and a trained
target's metrics and results rows on each split of its data (train, validation when the data
has one, test), with which record went to which split (splits.csv).

Training choices (epochs, learning rate, schedule, augmentation, ...) are made on the
validation split (medinv.training.selection); the test split gives the number reported.
"""
from __future__ import annotations

import functools
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from medinv import data as data_lib
from medinv.core import distributed
from medinv.core import errors
from medinv.core import report
from medinv.data import records


def loss_and_logits(params, x, y, mask, *, apply_fn, penalty_fn=None):
  """Mean cross-entropy over the examples where mask is 1 (+ penalty_fn(params, x))."""
  logits = apply_fn({'params': params}, x)
  per_example = optax.softmax_cross_entropy_with_integer_labels(logits, y)
  loss = jnp.sum(per_example * mask) / jnp.maximum(jnp.sum(mask), 1.0)
  return (loss if penalty_fn is None else loss + penalty_fn(params, x)), logits


def batch_indices(key: jax.Array | None, n: int, batch_size: int):
  """(steps, batch_size) indices and a 0/1 mask; the last batch is padded and masked.

  key None: in order; else a permutation by key (a training epoch's shuffle)."""
  steps = math.ceil(n / batch_size)
  order = jnp.arange(n) if key is None else jax.random.permutation(key, n)
  index = order[jnp.arange(steps * batch_size) % n].reshape(steps, batch_size)
  mask = (jnp.arange(steps * batch_size) < n).astype(jnp.float32).reshape(steps, batch_size)
  return index, mask


def evaluate(params, x, y, *, apply_fn, batch_size: int = 256) -> dict[str, jax.Array]:
  """Mean loss and accuracy over (x, y), batched with a `lax.scan`."""
  index, mask = batch_indices(None, x.shape[0], batch_size)

  def body(totals, step_input):
    batch_index, batch_mask = step_input
    loss, logits = loss_and_logits(params, x[batch_index], y[batch_index], batch_mask,
                                   apply_fn=apply_fn)
    correct = jnp.sum((jnp.argmax(logits, -1) == y[batch_index]) * batch_mask)
    return (totals[0] + loss * jnp.sum(batch_mask), totals[1] + correct), None

  (loss_sum, correct), _ = jax.lax.scan(body, (0.0, 0.0), (index, mask))
  return {'loss': loss_sum / x.shape[0], 'accuracy': correct / x.shape[0]}


def splits(task: data_lib.Task) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """The task's evaluated splits by name: train, validation (when it has one), test."""
  out = {'train': (task.x_train, task.y_train)}
  if task.x_val is not None:
    out['validation'] = (task.x_val, task.y_val)
  out['test'] = (task.x_test, task.y_test)
  return out


def _majority(labels: np.ndarray) -> float:
  return float(np.max(np.bincount(labels)) / len(labels))


def model_metrics(config, params, steps: int, task: data_lib.Task, *,
                  apply_fn) -> dict[str, float]:
  """A trained target's loss and accuracy (true labels) on every split of `splits(task)`.

  Args:
    config: the run's config (train.num_epochs and train.learning_rate are named).
    params: the trained parameters.
    steps: the optimizer steps taken.
    task: the data.
    apply_fn: the model's apply function.

  Returns:
    {split}_accuracy and {split}_loss per split, the majority-class accuracy of the test (and
    validation) labels, epochs and steps.

  Raises:
    errors.DivergedError: a loss is not finite.
  """
  evaluate_fn = jax.jit(functools.partial(evaluate, apply_fn=apply_fn))
  metrics = {}
  for split, (x, y) in splits(task).items():
    result = evaluate_fn(params, jnp.asarray(x), jnp.asarray(y))
    metrics[f'{split}_accuracy'] = float(result['accuracy'])
    metrics[f'{split}_loss'] = float(result['loss'])
    if not math.isfinite(metrics[f'{split}_loss']):
      raise errors.DivergedError(
          f'the trained model\'s {split} loss is {metrics[f"{split}_loss"]} (train.learning_rate'
          f'={config.train.learning_rate}): lower --config.train.learning_rate. No results were '
          'written.')
  metrics['test_majority_accuracy'] = _majority(task.y_test)
  if task.y_val is not None:
    metrics['validation_majority_accuracy'] = _majority(task.y_val)
  metrics.update(epochs=config.train.num_epochs, steps=steps)
  return metrics


def result_rows(config, metrics: dict) -> list[dict]:
  """results.csv's rows of a trained target: one per split in `metrics`."""
  names = [split for split in ('train', 'validation', 'test') if f'{split}_accuracy' in metrics]
  return [{'dataset': data_lib.source_name(config.data), 'model': config.model, 'split': split,
           'accuracy': metrics[f'{split}_accuracy'], 'loss': metrics[f'{split}_loss'],
           'dp_epsilon': metrics['dp_epsilon']} for split in names]


def write_splits(workdir: str, task: data_lib.Task) -> None:
  """workdir/splits.csv: which source line (and id) went to train, validation and test, for
  record datasets that keep their lines (a user's CSV)."""
  if task.records_train is None or not distributed.is_writer():
    return
  parts = {'train': task.records_train, 'validation': task.records_validation,
           'test': task.records_test}
  rows = records.split_rows(**{name: part for name, part in parts.items() if part is not None})
  if rows:
    os.makedirs(workdir, exist_ok=True)
    report.write_atomic(os.path.join(workdir, 'splits.csv'), report.rows_to_csv(rows))
