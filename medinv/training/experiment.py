"""One skeleton for every experiment: validate -> lock the workdir -> write config -> load data
once -> target model -> grid -> rows -> results -> figures.

An experiment module (medinv.attribute.experiment, medinv.inversion.experiment,
medinv.attribute.population, medinv.inversion.sweep_rmle, medinv.membership.experiment)
defines a `Spec` of pure steps and its `run(config, workdir)` is `experiment.run(SPEC, config,
workdir)`; `medinv.study.runners` names them for the study and the sweep.
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp

from medinv import data as data_lib
from medinv.core import distributed
from medinv.core import errors
from medinv.core import locks
from medinv.core import report
from medinv.core import sharding
from medinv.training import evaluation
from medinv.training import trainer


@dataclasses.dataclass
class Context:
  """What every step after data loading reads: the config, the workdir, the data, the target."""
  config: Any
  workdir: str
  task: data_lib.Task
  target: Any = None


def train_target(config, task: data_lib.Task, workdir: str) -> trainer.Trained:
  """The default target step: train (or resume) config.model in workdir/target."""
  return trainer.train_and_evaluate(config, os.path.join(workdir, 'target'), task=task)


@dataclasses.dataclass(frozen=True)
class Spec:
  """The steps of one experiment.

  name: results.json's 'experiment'.
  validate(config): raises ValueError for every config error, before data or compute.
  grid(ctx) -> outputs: the attack / evaluation program(s) over the experiment's grid.
  rows(ctx, outputs) -> (metrics dict, rows list): what results.json / results.csv hold.
  target(config, task, workdir) -> the trained target(s) (default `train_target`).
  start(workdir, config): prepares the workdir (default: writes config.json).
  figures(ctx, outputs, rows): writes figures (process 0 only); None for none.
  """
  name: str
  validate: Callable[[Any], None]
  grid: Callable[[Context], Any]
  rows: Callable[[Context, Any], tuple[dict, list[dict]]]
  target: Callable[[Any, data_lib.Task, str], Any] = train_target
  start: Callable[[str, Any], None] = report.write_config
  figures: Callable[[Context, Any, list[dict]], None] | None = None


def check_finite(target, workdir: str) -> None:
  """Refuses to attack a target whose parameters are not all finite (a diverged model)."""
  params = target.params if hasattr(target, 'params') else target['state'].params
  finite = jax.jit(lambda tree: jax.tree.map(lambda leaf: jnp.all(jnp.isfinite(leaf)), tree))
  flags = sharding.gather(finite(params))  # sharded populations too, on every process
  bad = [jax.tree_util.keystr(path) for path, ok in jax.tree_util.tree_leaves_with_path(flags)
         if not ok]
  if bad:
    raise errors.DivergedError(f'the target model in {workdir} has non-finite parameters '
                               f'({", ".join(bad[:3])}); it is not attacked. Retrain it with '
                               'a lower --config.train.learning_rate.')


def run(spec: Spec, config, workdir: str) -> dict:
  """Runs `spec` on config in workdir; returns the results dict (as written to results.json).

  The workdir is locked for the whole run (medinv.core.locks): a second run into it is
  refused (errors.WorkdirError) or, when asked to, waits.
  """
  spec.validate(config)
  with locks.workdir_lock(workdir):
    start_time = time.time()
    spec.start(workdir, config)
    task = distributed.writer_first(lambda: data_lib.load_task(config.data))
    evaluation.write_splits(workdir, task)
    return attack(spec, Context(config=config, workdir=workdir, task=task,
                                target=spec.target(config, task, workdir)), start_time)


def attack(spec: Spec, ctx: Context, start_time: float | None = None) -> dict:
  """The steps after the target exists: grid, rows, results, figures. `run` calls it on the
  target it trained (holding the workdir's lock); medinv.api on a target a user brings
  (ctx.target: what the spec's grid and rows read of it, e.g. params, apply_fn and metrics)."""
  start_time = time.time() if start_time is None else start_time
  workdir = ctx.workdir
  check_finite(ctx.target, workdir)
  outputs = spec.grid(ctx)
  metrics, rows = spec.rows(ctx, outputs)
  results = report.write_results(workdir, spec.name, metrics, rows, time.time() - start_time)
  if spec.figures is not None and distributed.is_writer():
    spec.figures(ctx, outputs, results['rows'])
  return results
