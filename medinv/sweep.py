"""Sweeps: grid axes from a config become vmapped values in one program, or separate runs.

A sweep config is an experiment config plus

    config.sweep.experiment = 'population'          # a key of EXPERIMENTS
    config.sweep.axes.seed = (0, 1, 2, 3)           # nested like the config itself
    config.sweep.axes.train.label_flip_prob = (0.0, 0.1, 0.3)
    config.sweep.axes.train.batch_size = (32, 64)   # changes shapes: separate runs

Numeric axes the experiment can take as traced values (its `vmap_axes`) run inside one
jitted program: `grid_points` forms their cartesian product and `map_grid` maps a per-point
function over it, vmapped on each device, with the grid's leading axis sharded over a
`Mesh` of every device of every process (padded to a multiple of the device count; the
padding is dropped from the results, which equal the unsharded run). Every other axis
(dataset, split, architecture, batch size, step counts, ...) expands into separate runs,
each in `workdir/<name from its overrides>`; `run_sweep` skips runs whose results.json was
written for the same config, so a killed sweep rerun with the same command recomputes only
the unfinished runs, and ends with a summary table.
"""
from __future__ import annotations

import copy
import dataclasses
import fnmatch
import functools
import importlib
import itertools
import os
import re
import time
from typing import Any, Callable

import jax
import ml_collections
import numpy as np

from medinv import distributed
from medinv import report

GRID_AXIS = 'grid'


@dataclasses.dataclass(frozen=True)
class Experiment:
  """How a sweep runs one config: `module.function(config, workdir) -> results dict`.

  vmap_axes: config paths (fnmatch patterns) the experiment takes as a vmapped grid.
  grid_fields: (axis, config field) pairs for runners that read a grid from a tuple field
    of their config (e.g. medinv.mia's defense.sigmas): the run's config gets the values.
  """
  module: str
  function: str
  vmap_axes: tuple[str, ...]
  grid_fields: tuple[tuple[str, str], ...] = ()

  def runner(self) -> Callable:
    return getattr(importlib.import_module(self.module), self.function)


TRAIN_AXES = ('seed', 'train.label_flip_prob', 'train.learning_rate')
EXPERIMENTS = {
    'population': Experiment('medinv.population', 'run', TRAIN_AXES),
    'rmle': Experiment('medinv.sweep_rmle', 'run', TRAIN_AXES + (
        'defense.sigma', 'attack.learning_rate', 'attack.weights.*')),
    'model_inversion': Experiment('medinv.mia', 'run', ('defense.sigma',),
                                  (('defense.sigma', 'defense.sigmas'),)),
    'attribute_inference': Experiment('medinv.aia', 'run', ('defense.flip_prob',),
                                      (('defense.flip_prob', 'defense.flip_probs'),)),
}


# ----------------------------------------------------------------------------- axes

def flatten(tree, prefix: str = '') -> dict[str, Any]:
  """Nested ConfigDict / dict -> {'a.b.c': leaf}."""
  flat = {}
  for key, value in (tree.items() if tree is not None else ()):
    if isinstance(value, (dict, ml_collections.ConfigDict)):
      flat.update(flatten(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = value
  return flat


def _parent(config, path: str):
  """(the ConfigDict holding `path`, its last name); KeyError when the field does not exist."""
  *parents, leaf = path.split('.')
  node = config
  for part in parents + [leaf]:
    if not isinstance(node, (dict, ml_collections.ConfigDict)) or part not in node:
      raise KeyError(path)
    parent, node = node, node[part]
  return parent, leaf


def set_path(config, path: str, value) -> None:
  parent, leaf = _parent(config, path)
  parent[leaf] = value


def _numeric(value) -> bool:
  return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def split_axes(config) -> tuple[dict[str, tuple], dict[str, tuple]]:
  """(vmapped axes, run axes) of config.sweep.axes, each {path: values} in config order."""
  experiment = experiment_of(config)
  vmapped, runs = {}, {}
  for path, values in flatten(config.sweep.axes).items():
    values = tuple(values) if isinstance(values, (tuple, list)) else (values,)
    if not values:
      raise ValueError(f'sweep axis {path!r} has no values')
    if any(fnmatch.fnmatchcase(path, pattern) for pattern in experiment.vmap_axes):
      bad = [v for v in values if not _numeric(v)]
      if bad:
        raise ValueError(f'sweep axis {path!r} is vmapped and needs numbers, got {bad}')
      vmapped[path] = values
      continue
    try:
      _parent(config, path)
    except KeyError:
      raise ValueError(f'sweep axis {path!r} is not a field of the config (and not one of the '
                       f'vmapped axes {experiment.vmap_axes} of experiment '
                       f'{config.sweep.experiment!r})') from None
    runs[path] = values
  return vmapped, runs


def experiment_of(config) -> Experiment:
  name = config.sweep.experiment
  if name not in EXPERIMENTS:
    raise ValueError(f'unknown sweep experiment {name!r}; known: {sorted(EXPERIMENTS)}')
  return EXPERIMENTS[name]


def grid_axes(config) -> dict[str, tuple]:
  """The vmapped axes of one run's config ({path: values}); {} outside a sweep."""
  if 'sweep' not in config:
    return {}
  return split_axes(config)[0]


def grid_points(axes: dict[str, tuple], defaults: dict[str, Any]) -> dict[str, np.ndarray]:
  """The cartesian product of `axes` (first axis slowest), as {path: (G,) array}.

  Paths in `defaults` that no axis sweeps are constant columns. Integers become int32,
  other numbers float32.
  """
  names = list(axes) + [path for path in defaults if path not in axes]
  columns = [axes[path] if path in axes else (defaults[path],) for path in names]
  product = list(itertools.product(*columns)) or [()]
  points = {}
  for i, path in enumerate(names):
    values = [point[i] for point in product]
    integer = all(isinstance(v, (int, np.integer)) for v in values)
    points[path] = np.asarray(values, np.int32 if integer else np.float32)
  return points


# ----------------------------------------------------------------------------- sharding

def grid_mesh(devices=None) -> jax.sharding.Mesh:
  """A 1-D mesh named 'grid' over `devices` (default: every device of every process)."""
  return jax.sharding.Mesh(np.asarray(jax.devices() if devices is None else devices),
                           (GRID_AXIS,))


def padded_size(size: int, num_devices: int) -> int:
  return -(-size // num_devices) * num_devices


def pad_leading(tree, size: int):
  """Pads every host leaf's leading axis to `size` with copies of its first entry."""
  def pad(leaf):
    if isinstance(leaf, jax.Array) and leaf.shape[0] == size:
      return leaf  # Already padded (device arrays from an earlier map_grid_sharded).
    leaf = np.asarray(leaf)
    extra = size - leaf.shape[0]
    return np.concatenate([leaf, np.repeat(leaf[:1], extra, 0)]) if extra > 0 else leaf
  return jax.tree.map(pad, tree)


def _place(tree, sharding):
  """Host values -> global arrays with `sharding`; device arrays are resharded by jit."""
  def place(leaf):
    if isinstance(leaf, jax.Array):
      return leaf
    leaf = np.asarray(leaf)
    return jax.make_array_from_callback(leaf.shape, sharding, lambda index: leaf[index])
  placed = jax.tree.map(place, tree)
  return jax.jit(lambda t: t, out_shardings=sharding)(placed)


def shard_grid(tree, mesh: jax.sharding.Mesh | None = None):
  """Pads the leading (grid) axis of every leaf to a multiple of the mesh size and shards it.

  The size G is that of the host (numpy) leaves; device-array leaves must already be padded
  (outputs of an earlier `map_grid_sharded`). Returns (sharded tree, G); `gather(out)[:G]`
  undoes it.
  """
  mesh = grid_mesh() if mesh is None else mesh
  host = [leaf for leaf in jax.tree.leaves(tree) if not isinstance(leaf, jax.Array)]
  if not host:
    raise ValueError('a grid needs at least one host (numpy) leaf to give its size')
  size = np.shape(host[0])[0]
  target = padded_size(size, mesh.size)
  if any(isinstance(leaf, jax.Array) and leaf.shape[0] != target
         for leaf in jax.tree.leaves(tree)):
    raise ValueError(f'device arrays in a grid must already be padded to {target} entries')
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(GRID_AXIS))
  return _place(pad_leading(tree, target), sharding), size


def replicate(tree, mesh: jax.sharding.Mesh | None = None):
  """Every leaf in full on every device of the mesh."""
  mesh = grid_mesh() if mesh is None else mesh
  return _place(tree, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))


def gather(tree):
  """Global arrays -> host numpy arrays on every process (all-gather across processes)."""
  def one(leaf):
    if not isinstance(leaf, jax.Array) or leaf.is_fully_addressable:
      return np.asarray(leaf)
    from jax.experimental import multihost_utils
    return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
  return jax.tree.map(one, tree)


@functools.lru_cache(maxsize=64)
def _program(fn: Callable, mesh: jax.sharding.Mesh, batch_size: int, num_broadcast: int):
  spec = jax.sharding.PartitionSpec

  def local(grid, *broadcast):
    size = jax.tree.leaves(grid)[0].shape[0]
    one = lambda point: fn(point, *broadcast)  # broadcast the shared arguments
    if batch_size <= 0 or batch_size >= size:
      return jax.vmap(one)(grid)  # vectorise this device's grid points
    return jax.lax.map(one, grid, batch_size=batch_size)
  return jax.jit(jax.shard_map(local, mesh=mesh,
                               in_specs=(spec(GRID_AXIS),) + (spec(),) * num_broadcast,
                               out_specs=spec(GRID_AXIS), check_vma=False))


def map_grid_sharded(fn: Callable, grid, *broadcast, batch_size: int = 0,
                     mesh: jax.sharding.Mesh | None = None):
  """`fn(point, *broadcast)` for every point of `grid`, as one program over every device.

  Returns (outputs with a padded, sharded leading axis (device arrays), number of real
  points). Device-array leaves of `grid` must come padded from an earlier call.
  """
  mesh = grid_mesh() if mesh is None else mesh
  grid, size = shard_grid(grid, mesh)
  program = _program(fn, mesh, batch_size, len(broadcast))
  return program(grid, *replicate(broadcast, mesh)), size


def map_grid(fn: Callable, grid, *broadcast, batch_size: int = 0,
             mesh: jax.sharding.Mesh | None = None):
  """`fn(point, *broadcast)` over the leading axis of `grid`, sharded over every device.

  Args:
    fn: per-point function (hashable: a module-level function or a functools.partial; the
      compiled program is cached on it).
    grid: pytree of arrays whose leading axis is the grid (G points).
    *broadcast: pytrees every point reads in full (replicated on every device).
    batch_size: 0 vectorises each device's points in one vmap; k > 0 runs k at a time
      (`lax.map`), e.g. on XLA:CPU where batched-weight convolutions are slow.
    mesh: default `grid_mesh()` (every device of every process).

  Returns:
    fn's outputs stacked over the G points, as host numpy arrays (padding dropped).
  """
  out, size = map_grid_sharded(fn, grid, *broadcast, batch_size=batch_size, mesh=mesh)
  return jax.tree.map(lambda leaf: leaf[:size], gather(out))


# ----------------------------------------------------------------------------- runs

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
      set_path(run_config, path, value)
    axes = {}
    for path, axis_values in vmapped.items():  # {'a.b': v} -> {'a': {'b': v}}
      *parents, leaf = path.split('.')
      functools.reduce(lambda node, part: node.setdefault(part, {}), parents, axes)[leaf] = (
          tuple(axis_values))
    run_config.sweep.axes = ml_collections.ConfigDict(axes)
    for path, field in experiment_of(config).grid_fields:
      if path in vmapped:
        set_path(run_config, field, tuple(float(v) for v in vmapped[path]))
    runs.append(Run(run_name(overrides), overrides, run_config))
  return runs


def run_sweep(config, workdir: str, log: Callable[[str], None] = print) -> dict:
  """Runs every expanded run that is not complete; writes workdir/results.json + summary.

  Returns the sweep's results dict (rows: every run's rows with 'run' and its overrides).
  """
  experiment = experiment_of(config)
  runs = expand_runs(config)
  start = time.time()
  done = [report.completed_results(os.path.join(workdir, run.name), run.config) for run in runs]
  # Every process must agree on what to run: process 0's view decides.
  pending = distributed.broadcast_from_writer([d is None for d in done])
  report.write_config(workdir, config)
  log(f'sweep {config.sweep.experiment}: {len(runs)} runs ({int(pending.sum())} to do), '
      f'vmapped axes {list(split_axes(config)[0]) or "none"}, {jax.device_count()} '
      f'{jax.default_backend()} devices in {jax.process_count()} processes')
  runner = experiment.runner()
  summary, rows, metrics = [], [], {}
  for i, run in enumerate(runs):
    run_dir = os.path.join(workdir, run.name)
    if pending[i]:
      stale = os.path.join(run_dir, 'results.json')
      if distributed.is_writer() and os.path.exists(stale):
        os.remove(stale)  # A killed rerun must not leave old results beside a new config.
      log(f'[{i + 1}/{len(runs)}] {run.name}: running')
      run_start = time.time()
      results = runner(run.config, run_dir)
      status, seconds = 'ran', time.time() - run_start
    else:
      results = done[i] or report.completed_results(run_dir, run.config)
      status, seconds = 'reused', results.get('wall_seconds', 0.0)
    log(f'[{i + 1}/{len(runs)}] {run.name}: {status} ({seconds:.1f}s)')
    summary.append({'run': run.name, 'status': status, 'seconds': seconds,
                    **results.get('metrics', {})})
    rows += [{'run': run.name, **run.overrides, **row} for row in results['rows']]
    metrics.update({f'{run.name}.{k}': v for k, v in results.get('metrics', {}).items()})
  results = report.write_results(workdir, 'sweep', metrics, rows, time.time() - start)
  results['summary'] = summary
  log(summary_table(summary))
  return results


def summary_table(summary: list[dict], max_metrics: int = 6) -> str:
  """One line per run: name, status, seconds and the numeric metrics every run reports."""
  shared = [k for k in summary[0] if k not in ('run', 'status', 'seconds')
            and all(_numeric(s.get(k)) for s in summary)][:max_metrics] if summary else []
  width = max([len('run')] + [len(s['run']) for s in summary])
  lines = [f'{"run":<{width}}  {"status":>6}  {"sec":>7}  ' + '  '.join(shared)]
  for s in summary:
    lines.append(f'{s["run"]:<{width}}  {s["status"]:>6}  {s["seconds"]:>7.1f}  ' +
                 '  '.join(f'{s[k]:>{len(k)}.4g}' for k in shared))
  return '\n'.join(lines)
