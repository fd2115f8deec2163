"""Grid axes of a sweep config: `config.sweep.axes`, nested like the config itself.

    config.sweep.axes.seed = (0, 1, 2, 3)
    config.sweep.axes.train.label_flip_prob = (0.0, 0.1, 0.3)

An experiment takes some axes as traced values (its vmapped axes, fnmatch patterns): their
cartesian product (`grid_points`) is one compiled program's grid. Every other axis is a
separate run (`medinv.study.sweep`).
"""
from __future__ import annotations

import fnmatch
import itertools
from typing import Any

import ml_collections
import numpy as np


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


def numeric(value) -> bool:
  return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


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


def matches(path: str, patterns) -> bool:
  return any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns)


def split_axes(config, vmap_axes, experiment: str = ''
               ) -> tuple[dict[str, tuple], dict[str, tuple]]:
  """(vmapped axes, run axes) of config.sweep.axes, each {path: values} in config order.

  vmap_axes: the experiment's vmapped patterns; every other axis must be a config field.
  """
  vmapped, runs = {}, {}
  for path, values in flatten(config.sweep.axes).items():
    values = tuple(values) if isinstance(values, (tuple, list)) else (values,)
    if not values:
      raise ValueError(f'sweep axis {path!r} has no values')
    if matches(path, vmap_axes):
      bad = [v for v in values if not numeric(v)]
      if bad:
        raise ValueError(f'sweep axis {path!r} is vmapped and needs numbers, got {bad}')
      vmapped[path] = values
      continue
    try:
      _parent(config, path)
    except KeyError:
      raise ValueError(f'sweep axis {path!r} is not a field of the config (and not one of the '
                       f'vmapped axes {tuple(vmap_axes)} of experiment {experiment!r})'
                       ) from None
    runs[path] = values
  return vmapped, runs


def grid_axes(config, patterns) -> dict[str, tuple]:
  """The axes of one run's config that match `patterns` ({path: values}); {} outside a sweep."""
  if 'sweep' not in config:
    return {}
  return {path: tuple(values) if isinstance(values, (tuple, list)) else (values,)
          for path, values in flatten(config.sweep.axes).items() if matches(path, patterns)}
