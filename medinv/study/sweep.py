"""Sweeps: a config's grid axes as vmapped values in one program, or as separate runs.

A sweep config is an experiment config plus

    config.sweep.experiment = 'population'          # a key of runners.RUNNERS
    config.sweep.axes.seed = (0, 1, 2, 3)           # nested like the config itself
    config.sweep.axes.train.label_flip_prob = (0.0, 0.1, 0.3)
    config.sweep.axes.train.batch_size = (32, 64)   # changes shapes: separate runs

Numeric axes the experiment takes as traced values (its runner's `vmap_axes`) run inside one
jitted program sharded over every device (`medinv.core.axes`, `medinv.core.sharding`). Every other
axis (dataset, split, architecture, batch size, step counts, ...) expands into separate runs,
each in `workdir/<name from its overrides>`; `run_sweep` skips runs whose results.json was
written for the same config, so a killed sweep rerun with the same command recomputes only
the unfinished runs, and ends with a summary table. The sweep's workdir and each run's
folder are locked while in use (medinv.core.locks). With `seed` as a run axis it also writes
seeds.csv / seeds.json: every row as its mean and 95% interval over the seeds (medinv.study.seeds).
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import itertools
import json
import os
import re
import time
from typing import Any, Callable

import jax
import ml_collections

from medinv.core import axes as axes_lib
from medinv.core import distributed
from medinv.core import locks
from medinv.core import report
from medinv.study import runners
from medinv.study import seeds


def runner_of(config) -> runners.Runner:
  name = config.sweep.experiment
  if name not in runners.RUNNERS:
    raise ValueError(f'config.sweep.experiment: unknown sweep experiment {name!r}; known: '
                     f'{sorted(runners.RUNNERS)}')
  return runners.RUNNERS[name]


def split_axes(config) -> tuple[dict[str, tuple], dict[str, tuple]]:
  """(vmapped axes, run axes) of config.sweep.axes for its experiment's runner."""
  return axes_lib.split_axes(config, runner_of(config).vmap_axes, config.sweep.experiment)


@dataclasses.dataclass
class Run:
  name: str
  overrides: dict[str, Any]
  config: ml_collections.ConfigDict


def _format_value(value) -> str:
  if isinstance(value, (tuple, list)):
    return '-'.join(_format_value(v) for v in value) or 'none'
  return f'{value:g}' if isinstance(value, float) else str(value)


def run_name(overrides: dict[str, Any]) -> str:
  """'batch_size=32,dataset=heart_disease' from the overrides (leaf names unless ambiguous)."""
  if not overrides:
    return 'run'
  leaves = [path.rsplit('.', 1)[-1] for path in overrides]
  parts = [f'{leaf if leaves.count(leaf) == 1 else path}={_format_value(value)}'
           for leaf, (path, value) in zip(leaves, overrides.items())]
  return re.sub(r'[^A-Za-z0-9_.=,+-]', '-', ','.join(parts))


def expand_runs(config) -> list[Run]:
  """One Run per combination of the run axes; each config keeps only the vmapped axes."""
  vmapped, run_axes = split_axes(config)
  runs = []
  for values in itertools.product(*run_axes.values()):
    overrides = dict(zip(run_axes, values))
    run_config = ml_collections.ConfigDict(copy.deepcopy(config.to_dict()))
    for path, value in overrides.items():
      axes_lib.set_path(run_config, path, value)
    axes = {}
    for path, axis_values in vmapped.items():  # {'a.b': v} -> {'a': {'b': v}}
      *parents, leaf = path.split('.')
      functools.reduce(lambda node, part: node.setdefault(part, {}), parents, axes)[leaf] = (
          tuple(axis_values))
    run_config.sweep.axes = ml_collections.ConfigDict(axes)
    for path, field in runner_of(config).grid_fields:
      if path in vmapped:
        axes_lib.set_path(run_config, field, tuple(float(v) for v in vmapped[path]))
    check_axis_values(run_config, vmapped)
    runs.append(Run(run_name(overrides), overrides, run_config))
  return runs


def check_axis_values(run_config, vmapped: dict[str, tuple]) -> None:
  """Validates every value of every vmapped axis as if the config held it, before compiling.

  Each value is set into a copy of the run's config (into its grid field, e.g.
  defense.model_perturbation.strengths, where the runner reads the grid from one) and the
  runner's own `validate` runs on it, so a sweep value is checked exactly like a config value.
  """
  runner = runner_of(run_config)
  fields = dict(runner.grid_fields)
  for path, values in vmapped.items():
    for value in values:
      point = ml_collections.ConfigDict(copy.deepcopy(run_config.to_dict()))
      try:
        if path in fields:
          axes_lib.set_path(point, fields[path], (value,))
        else:
          axes_lib.set_path(point, path, value)
      except KeyError:
        continue  # an axis the runner reads only from sweep.axes
      try:
        runner.validate(point)
      except ValueError as e:
        raise ValueError(f'sweep axis {path}={value!r}: {e}') from None


def run_sweep(config, workdir: str, log: Callable[[str], None] = print) -> dict:
  """Runs every expanded run that is not complete; writes workdir/results.json + summary, and
  seeds.csv / seeds.json where `seed` is a run axis.

  Returns the sweep's results dict (rows: every run's rows with 'run' and its overrides;
  'seeds': the rows over seeds, `seeds.across_seeds`).
  """
  runs = expand_runs(config)
  with locks.workdir_lock(workdir):
    return _run_sweep(config, workdir, runs, log)


def _run_sweep(config, workdir: str, runs: list[Run], log: Callable[[str], None]) -> dict:
  runner = runner_of(config)
  start = time.time()
  done = [report.completed_results(os.path.join(workdir, run.name), run.config) for run in runs]
  # Every process must agree on what to run: process 0's view decides.
  pending = distributed.broadcast_from_writer([d is None for d in done])
  report.write_config(workdir, config)
  log(f'sweep {config.sweep.experiment}: {len(runs)} runs ({int(pending.sum())} to do), '
      f'vmapped axes {list(split_axes(config)[0]) or "none"}, {jax.device_count()} '
      f'{jax.default_backend()} devices in {jax.process_count()} processes')
  summary, rows, metrics, per_run = [], [], {}, []
  for i, run in enumerate(runs):
    run_dir = os.path.join(workdir, run.name)
    if pending[i]:
      log(f'[{i + 1}/{len(runs)}] {run.name}: running')
      run_start = time.time()
      results = _run_one(runner, run, run_dir)
      status, seconds = 'ran', time.time() - run_start
    else:
      results = done[i] or report.completed_results(run_dir, run.config)
      status, seconds = 'reused', results.get('wall_seconds', 0.0)
    log(f'[{i + 1}/{len(runs)}] {run.name}: {status} ({seconds:.1f}s)')
    summary.append({'run': run.name, 'status': status, 'seconds': seconds,
                    **results.get('metrics', {})})
    rows += [{'run': run.name, **run.overrides, **row} for row in results['rows']]
    per_run.append((run.overrides, results['rows']))
    metrics.update({f'{run.name}.{k}': v for k, v in results.get('metrics', {}).items()})
  results = report.write_results(workdir, 'sweep', metrics, rows, time.time() - start)
  results['summary'] = summary
  results['seeds'] = _write_seeds(workdir, per_run, log)
  log(summary_table(summary))
  return results


def _run_one(runner: runners.Runner, run: Run, run_dir: str) -> dict:
  """Runs one sweep run afresh in run_dir, holding its lock (medinv.core.locks)."""
  with locks.workdir_lock(run_dir):
    stale = os.path.join(run_dir, 'results.json')
    if distributed.is_writer() and os.path.exists(stale):
      os.remove(stale)  # A killed rerun must not leave old results beside a new config.
    return runner.run(run.config, run_dir)


def _write_seeds(workdir: str, per_run: list, log: Callable[[str], None]) -> list[dict]:
  """seeds.csv and seeds.json (every row over the seeds) when `seed` is a run axis; else
  removes those of an earlier sweep in this workdir."""
  rows = seeds.across_seeds(per_run)
  paths = {name: os.path.join(workdir, name) for name in ('seeds.json', 'seeds.csv')}
  if distributed.is_writer():
    if rows:
      report.write_atomic_files({
          paths['seeds.json']: json.dumps(
              [{k: report.jsonable(v) for k, v in row.items()} for row in rows], indent=2) + '\n',
          paths['seeds.csv']: report.rows_to_csv(rows)})
    else:
      for path in paths.values():
        if os.path.exists(path):
          os.remove(path)
  if rows:
    log(f'over seeds: {len(rows)} rows with mean and 95% t-interval over '
        f'{rows[0]["num_seeds"]} seeds in {paths["seeds.csv"]}')
  return rows


def summary_table(summary: list[dict], max_metrics: int = 6) -> str:
  """One line per run: name, status, seconds and the numeric metrics every run reports."""
  shared = [k for k in summary[0] if k not in ('run', 'status', 'seconds')
            and all(axes_lib.numeric(s.get(k)) for s in summary)][:max_metrics] if summary else []
  width = max([len('run')] + [len(s['run']) for s in summary])
  lines = [f'{"run":<{width}}  {"status":>6}  {"sec":>7}  ' + '  '.join(shared)]
  for s in summary:
    lines.append(f'{s["run"]:<{width}}  {s["status"]:>6}  {s["seconds"]:>7.1f}  ' +
                 '  '.join(f'{s[k]:>{len(k)}.4g}' for k in shared))
  return '\n'.join(lines)
