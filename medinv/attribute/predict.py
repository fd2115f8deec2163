"""Attribute inference against a predict function: a model trained anywhere, in any framework.

`run(predict, train, test, config, workdir)` runs the attribute experiment's grid, rows and
figures (medinv.attribute.experiment) on a `Target` built around `predict`, so a user's model
is attacked by the same code as a trained one. `predict` maps raw records (n, d) float32 (the
columns of `train.columns`, categorical values as their codes) to (n, classes) logits, or
probabilities with outputs='probs'. A NumPy function (not traceable by JAX) runs through
`jax.pure_callback`.
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from medinv import data as data_lib
from medinv.attribute import attacks as attribute_attacks
from medinv.attribute import evaluation as attribute_eval
from medinv.attribute import experiment as attribute_experiment
from medinv.core import locks
from medinv.core import report
from medinv.data import records as records_lib
from medinv.training import experiment

OUTPUTS = ('logits', 'probs')


@dataclasses.dataclass(frozen=True)
class Target:
  """What the attribute experiment reads of a target: params, apply_fn and its metrics."""
  params: Any
  apply_fn: Callable
  metrics: dict


def model_fn(predict: Callable, num_classes: int, *, outputs: str = 'logits',
             jax_traceable: bool = True) -> Callable:
  """`apply_fn(variables, raw) -> logits` around predict (variables are not read).

  Args:
    predict: raw records (n, d) -> (n, num_classes) logits or probabilities.
    num_classes: the number of classes.
    outputs: 'logits' or 'probs' (then log-probabilities are the logits).
    jax_traceable: False for a NumPy function (runs through jax.pure_callback).
  """
  if outputs not in OUTPUTS:
    raise ValueError(f'outputs must be one of {OUTPUTS}, got {outputs!r}')

  def host(raw):
    flat = np.asarray(raw, np.float32).reshape(-1, raw.shape[-1])
    return np.asarray(predict(flat), np.float32).reshape(raw.shape[:-1] + (num_classes,))

  def apply(variables, raw):
    del variables
    if jax_traceable:
      out = predict(raw)
    else:
      shape = jax.ShapeDtypeStruct(raw.shape[:-1] + (num_classes,), jnp.float32)
      out = jax.pure_callback(host, shape, raw, vmap_method='broadcast_all')
    return jnp.log(jnp.clip(out, 1e-12, 1.0)) if outputs == 'probs' else out
  return apply


def check_predict(apply_fn: Callable, features: np.ndarray, num_classes: int) -> None:
  """One clear line when predict's output on two records is not (2, num_classes)."""
  got = np.shape(apply_fn(None, jnp.asarray(features[:2])))
  if tuple(got) != (2, num_classes):
    raise ValueError(f'predict returned shape {tuple(got)} for 2 records; expected (batch, '
                     f'classes) = (2, {num_classes})')


def default_config(sensitive, *, flip_probs=(0.0,), release: str = 'label',
                   names=('map', 'learned', 'prior', 'classifier'), num_draws: int = 1,
                   member_fraction: float = 0.5, nonmember_fraction: float = 0.5,
                   seed: int = 0) -> ml_collections.ConfigDict:
  """The attack and defense blocks of an attribute config at the registered defaults."""
  attack = dict(sensitive=tuple(sensitive), names=tuple(names), num_aux=-1, max_records=0,
                member_fraction=member_fraction, nonmember_fraction=nonmember_fraction,
                plot_variant='confusion')
  for name in names:
    attack[name] = dict(attribute_attacks.get(name).defaults)
  return ml_collections.ConfigDict(dict(
      seed=seed, data=dict(dataset='records'), attack=attack,
      defense=dict(flip_probs=tuple(flip_probs), release=release, decimals=1, noise_std=0.0,
                   num_draws=num_draws)))


def _accuracy(apply_fn, records) -> float:
  return float(np.mean(np.argmax(np.asarray(apply_fn(None, jnp.asarray(records.features))), -1)
                       == records.labels))


def run(predict: Callable, train: records_lib.Records, test: records_lib.Records, config,
        workdir: str, *, outputs: str = 'logits', jax_traceable: bool = True) -> dict:
  """Attribute inference of config.attack.sensitive against `predict`; writes results.json,
  results.csv, attack_records.csv and attribute.png into workdir and returns the results.

  Args:
    predict: see the module docstring.
    train: the records the model trained on (members); test: records it did not see.
    config: `default_config(...)` or any attribute config (its attack, defense and seed).
    workdir: where results and figures go.
    outputs, jax_traceable: see `model_fn`.
  """
  start = time.time()
  num_classes = train.num_classes
  apply_fn = model_fn(predict, num_classes, outputs=outputs, jax_traceable=jax_traceable)
  check_predict(apply_fn, train.features, num_classes)
  attribute_eval.check_sensitive(config.attack.sensitive, train.columns, 'records')
  identity = records_lib.Scaler(mean=np.zeros(train.features.shape[1], np.float32),
                                std=np.ones(train.features.shape[1], np.float32))
  task = data_lib.Task(config.data.dataset, train.features, train.labels, test.features,
                       test.labels, train.class_names, train, test, identity)
  majority = np.max(np.bincount(test.labels, minlength=num_classes)) / len(test)
  target = Target(params=None, apply_fn=apply_fn, metrics={
      'test_accuracy': _accuracy(apply_fn, test), 'train_accuracy': _accuracy(apply_fn, train),
      'dp_epsilon': float('inf'), 'test_majority_accuracy': float(majority)})
  os.makedirs(workdir, exist_ok=True)
  with locks.workdir_lock(workdir):
    report.write_config(workdir, config)
    ctx = experiment.Context(config=config, workdir=workdir, task=task, target=target)
    return experiment.attack(attribute_experiment.SPEC, ctx, start)
