"""One skeleton for every experiment: validate -> write config -> load data once -> target
model -> grid -> rows -> results -> figures.

An experiment module (medinv.aia, medinv.mia, medinv.population, medinv.sweep_rmle) defines
a `Spec` of pure steps and its `run(config, workdir)` is `experiment.run(SPEC, config,
workdir)`; `medinv.runners` names them for the study and the sweep.
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable

from medinv import data as data_lib
from medinv import distributed
from medinv import report
from medinv import train


@dataclasses.dataclass
class Context:
  """What every step after data loading reads: the config, the workdir, the data, the target."""
  config: Any
  workdir: str
  task: data_lib.Task
  target: Any = None


def train_target(config, task: data_lib.Task, workdir: str) -> train.Trained:
  """The default target step: train (or resume) config.model in workdir/target."""
  return train.train_and_evaluate(config, os.path.join(workdir, 'target'), task=task)


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


def run(spec: Spec, config, workdir: str) -> dict:
  """Runs `spec` on config in workdir; returns the results dict (as written to results.json)."""
  spec.validate(config)
  start_time = time.time()
  spec.start(workdir, config)
  task = distributed.writer_first(lambda: data_lib.load_task(config.data))
  ctx = Context(config=config, workdir=workdir, task=task)
  ctx.target = spec.target(config, task, workdir)
  outputs = spec.grid(ctx)
  metrics, rows = spec.rows(ctx, outputs)
  results = report.write_results(workdir, spec.name, metrics, rows, time.time() - start_time)
  if spec.figures is not None and distributed.is_writer():
    spec.figures(ctx, outputs, results['rows'])
  return results
