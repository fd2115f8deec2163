"""The target-model registry: a config name -> how to build the model, what it takes, where
it splits.

An entry (`Entry`) holds
  constructor   `(num_classes) -> flax.linen.Module` whose `__call__(x)` returns logits
                (batch, num_classes);
  takes         'records' (rows of a record dataset, (n, d)) or 'images' ((n, s, s, c));
                `check_fits` compares it with config.data.dataset;
  split_points  optional: {config value: layer name}, the direct submodules after which
                hospital A hands its output to hospital B (collaborative inference). A
                sequence of names registers each name as its own config value; int keys let
                train.nopeek_split (an int field) name them from the command line too. Model
                inversion (config.attack.splits) and NoPeek (train.nopeek_split) name these
                config values;
  edge, cloud   optional `(module, point) -> (params, x) -> features` and
                `(module, point) -> (params, features) -> logits`: the entry's own split
                functions; without them medinv.models.splitting splits any flax module
                generically at the named layer.
medinv.models registers the built-ins ('mlp', 'split_cnn'); a user's module registers its
own with `register(...)` before the experiment runs.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax

from medinv.core import registry

TAKES = ('records', 'images')


@dataclasses.dataclass(frozen=True)
class Entry:
  """A registered target model (see the module docstring)."""
  name: str
  constructor: Callable[[int], nn.Module]
  takes: str
  split_points: Mapping[Any, str]
  edge: Callable | None = None
  cloud: Callable | None = None


MODELS = registry.Registry('model')


def _points(name: str, split_points) -> dict:
  if isinstance(split_points, str):
    raise ValueError(f'model {name!r}: split_points must be a sequence or mapping of layer '
                     f'names, got the string {split_points!r}')
  points = (dict(split_points) if isinstance(split_points, Mapping)
            else {layer: layer for layer in split_points})
  bad = [layer for layer in points.values() if not isinstance(layer, str) or not layer]
  if bad:
    raise ValueError(f'model {name!r}: split_points name layers (submodule names), got {bad}')
  return points


def register(name: str, constructor: Callable[[int], nn.Module], *, takes: str,
             split_points: Sequence[str] | Mapping[Any, str] = (),
             edge: Callable | None = None, cloud: Callable | None = None,
             replace: bool = False) -> Entry:
  """Registers a target model under `name` (config.model); returns its entry.

  Args:
    name: the config.model value.
    constructor: `(num_classes) -> flax.linen.Module` returning logits.
    takes: 'records' or 'images'.
    split_points: layer names (or {config value: layer name}) after which hospital A hands
      over; () for a model that is never split.
    edge, cloud: the entry's own split functions (both or neither; see the module docstring).
    replace: allow registering a name again.

  Returns:
    The registered `Entry`.
  """
  if takes not in TAKES:
    raise ValueError(f'model {name!r}: takes must be one of {TAKES}, got {takes!r}')
  if not callable(constructor):
    raise ValueError(f'model {name!r}: constructor must be a callable (num_classes) -> '
                     f'flax.linen.Module, got {constructor!r}')
  points = _points(name, split_points)
  if (edge is None) != (cloud is None) or (edge is not None and not points):
    raise ValueError(f'model {name!r}: edge and cloud come together, with split_points')
  return MODELS.add(name, Entry(name, constructor, takes, points, edge, cloud),
                    replace=replace)


def unregister(name: str) -> None:
  """Removes a registered model (e.g. a test's own); KeyError if it is not registered."""
  del MODELS[name]


def get(name: str, field: str = 'config.model') -> Entry:
  """The entry registered as `name`; ValueError naming `field` and listing the models."""
  if name not in MODELS:
    known = ', '.join(repr(n) for n in sorted(MODELS))
    raise ValueError(f'{field}: unknown model {name!r}; known models: {known} (a model of '
                     'your own: medinv.models.register)')
  return MODELS[name]


def check_output(name: str, module: nn.Module, sample_x, num_classes: int) -> None:
  """ValueError unless the module's output on a batch shaped like sample_x is
  (batch, num_classes); traced with `jax.eval_shape`, nothing is computed."""
  out = jax.eval_shape(lambda x: module.init_with_output(jax.random.key(0), x)[0], sample_x)
  expected = (sample_x.shape[0], num_classes)
  shape = getattr(out, 'shape', None)
  if shape != expected:
    raise ValueError(f'config.model {name!r}: its module returned {shape if shape else out} '
                     f'on a batch of shape {tuple(sample_x.shape)}; a target model returns '
                     f'logits (batch, num_classes) = {expected}')


def build(name: str, num_classes: int, sample_x=None) -> nn.Module:
  """The module registered as `name` for `num_classes` classes.

  Args:
    name: a registered model (config.model).
    num_classes: the dataset's class count.
    sample_x: a batch of inputs (array or shape struct); when given, the module's output
      shape is checked on it (`check_output`).

  Returns:
    The flax module.
  """
  entry = get(name)
  module = entry.constructor(num_classes)
  if not isinstance(module, nn.Module):
    raise ValueError(f'config.model {name!r}: its constructor returned {type(module).__name__}, '
                     'not a flax.linen.Module')
  if sample_x is not None:
    check_output(name, module, sample_x, num_classes)
  return module


def check_fits(name: str, dataset: str, holds_records: bool) -> Entry:
  """The entry of model `name`; ValueError when it takes records and the dataset holds
  images, or the other way round."""
  entry = get(name)
  kind = 'records' if holds_records else 'images'
  if entry.takes != kind:
    fitting = ', '.join(repr(n) for n in sorted(MODELS) if MODELS[n].takes == kind)
    raise ValueError(f'config.model {name!r} does not fit dataset {dataset!r}: the model is '
                     f'registered for {entry.takes} and the dataset holds {kind}; models for '
                     f'{kind}: {fitting}')
  return entry


def require_split_points(name: str, field: str, purpose: str) -> Entry:
  """The entry of model `name`; ValueError naming `field` when it declares no split points
  (`purpose`: what needs them, e.g. 'model inversion')."""
  entry = get(name)
  if not entry.split_points:
    split_models = ' or '.join(repr(n) for n in sorted(MODELS) if MODELS[n].split_points)
    raise ValueError(f'{field} needs model {split_models}, or another model registered with '
                     f'split points: model {name!r} declares no split points; register it '
                     f'with split_points=... to run {purpose}')
  return entry


def split_layer(name: str, point, field: str) -> str:
  """The layer that split point `point` (a config value) of model `name` names; ValueError
  naming `field` and listing the model's points otherwise."""
  entry = require_split_points(name, field, 'split inference')
  if isinstance(point, bool) or point not in entry.split_points:
    points = tuple(entry.split_points)
    raise ValueError(f'{field} must be one of {points} (the split points model {name!r} '
                     f'declares), got {point!r}')
  return entry.split_points[point]
