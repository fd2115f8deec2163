"""Collaborative inference for any registered model: hospital A runs the layers up to a split
point (the edge), hospital B the rest (the cloud).

`split_at(name, module, point, sample_x)` resolves a config value of model `name`
(config.attack.splits, train.nopeek_split) into a `Split`: the layer it names, the direct
submodules hospital A runs (the edge parameters: those called before the layer, and the
layer, in the order one forward pass calls them, recorded once by interception), and the
shapes of one input and of its features. For a module without its own split functions the
split is generic, by `flax.linen.intercept_methods`:
  edge   the forward pass up to the named layer's output, which it returns (the pass stops
         there, so the edge parameters alone suffice);
  cloud  the forward pass with the named layer's output replaced by the given features (the
         layers before it run on zeros and nothing uses their outputs; under jit XLA drops
         them). It takes the full parameter tree.
So cloud(edge(x)) is the model's output whenever the layer's output is the only path from
the edge to the rest of the network (no skip connection across the split). An entry that
supplies its own `edge` / `cloud` (SplitCNN's exact methods) is split by those.

`edge_fn`, `cloud_fn`, `edge_param_names`, `edge_params` and `split_number` take a `Split`,
or SplitCNN's split as its bare config value (2, 4 or 6; medinv.models.networks).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from medinv.models import networks
from medinv.models import registry


@dataclasses.dataclass(frozen=True)
class Split:
  """One split point of one model (hashable: it is a static argument of compiled programs).

  point: the config value (SplitCNN: 2, 4, 6); number: an int for it (the point itself when
  an int, else its 1-based position among the model's split points; key folds use it);
  layer: the submodule whose output hospital A sends; edge_names: the direct submodules
  hospital A runs, in call order; input_shape / input_dtype: one input's; feature_shape: one
  input's features; edge_factory / cloud_factory: the entry's own split functions, if any.
  """
  point: Any
  number: int
  layer: str
  edge_names: tuple[str, ...]
  input_shape: tuple[int, ...]
  input_dtype: str
  feature_shape: tuple[int, ...]
  edge_factory: Callable | None = None
  cloud_factory: Callable | None = None


def _is_layer(context, layer: str) -> bool:
  scope = context.module.scope
  return (context.method_name == '__call__' and scope is not None
          and tuple(scope.path) == (layer,))


class _Handover(Exception):
  """Carries the split layer's output out of the forward pass (the generic edge)."""

  def __init__(self, features):
    super().__init__('split layer output')
    self.features = features


def generic_edge_fn(module: nn.Module, layer: str):
  """`(params, x) -> the output of submodule `layer``, stopping the forward pass there."""
  def interceptor(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if _is_layer(context, layer):
      raise _Handover(out)
    return out

  def apply(params, x):
    try:
      with nn.intercept_methods(interceptor):
        module.apply({'params': params}, x)
    except _Handover as handover:
      return handover.features
    raise ValueError(f'split layer {layer!r} did not run in the forward pass of '
                     f'{type(module).__name__}')
  return apply


def generic_cloud_fn(module: nn.Module, layer: str, input_shape: tuple[int, ...],
                     input_dtype: str = 'float32'):
  """`(params, features) -> logits`: the forward pass with submodule `layer`'s output
  replaced by `features` (full params; the layers before it run on zeros)."""
  def apply(params, features):
    def interceptor(next_fun, args, kwargs, context):
      return features if _is_layer(context, layer) else next_fun(*args, **kwargs)
    x = jnp.zeros((features.shape[0],) + tuple(input_shape), input_dtype)
    with nn.intercept_methods(interceptor):
      return module.apply({'params': params}, x)
  return apply


def call_order(module: nn.Module, sample_x) -> list[str]:
  """The direct submodules one forward pass on sample_x calls, in order (each call listed;
  traced with `jax.eval_shape`, nothing is computed)."""
  calls = []

  def interceptor(next_fun, args, kwargs, context):
    scope = context.module.scope
    if context.method_name == '__call__' and scope is not None and len(scope.path) == 1:
      calls.append(scope.path[0])
    return next_fun(*args, **kwargs)
  with nn.intercept_methods(interceptor):
    jax.eval_shape(lambda x: module.init(jax.random.key(0), x), sample_x)
  return calls


def _edge_names(name: str, module: nn.Module, sample_x, layer: str) -> tuple[str, ...]:
  calls = call_order(module, sample_x)
  if calls.count(layer) != 1:
    ran = ', '.join(dict.fromkeys(calls)) or 'none'
    what = 'does not run' if layer not in calls else f'runs {calls.count(layer)} times'
    raise ValueError(f'model {name!r}: split layer {layer!r} {what} in one forward pass; a '
                     f'split point names a direct submodule that runs once (ran: {ran})')
  return tuple(dict.fromkeys(calls[:calls.index(layer) + 1]))


def split_at(name: str, module: nn.Module, point, sample_x, field: str = 'attack.splits'
             ) -> Split:
  """Split point `point` (a config value) of registered model `name`, built as `module`.

  Args:
    name: the registered model (config.model).
    module: its flax module (`medinv.models.build`).
    point: one of the entry's split points (ValueError naming `field` otherwise).
    sample_x: a batch of inputs (array or shape struct; only its shape and dtype are used).
    field: the config field `point` came from, for errors.

  Returns:
    The `Split`.
  """
  entry = registry.get(name)
  layer = registry.split_layer(name, point, field)
  sample = jax.ShapeDtypeStruct((1,) + tuple(sample_x.shape[1:]), sample_x.dtype)
  names = _edge_names(name, module, sample, layer)
  number = point if isinstance(point, int) else list(entry.split_points).index(point) + 1
  split = Split(point=point, number=int(number), layer=layer, edge_names=names,
                input_shape=tuple(sample.shape[1:]), input_dtype=np.dtype(sample.dtype).name,
                feature_shape=(), edge_factory=entry.edge, cloud_factory=entry.cloud)
  features = jax.eval_shape(
      lambda x: edge_fn(module, split)(module.init(jax.random.key(0), x)['params'], x), sample)
  return dataclasses.replace(split, feature_shape=tuple(features.shape[1:]))


def edge_fn(model: nn.Module, split):
  """`(params, x) -> features` hospital A sends at `split` (a `Split`, or SplitCNN's 2, 4,
  6); params may be the full tree or `edge_params`."""
  if not isinstance(split, Split):
    return networks.edge_fn(model, split)
  if split.edge_factory is not None:
    return split.edge_factory(model, split.point)
  return generic_edge_fn(model, split.layer)


def cloud_fn(model: nn.Module, split):
  """`(params, features) -> logits` for hospital B's part at `split` (full params)."""
  if not isinstance(split, Split):
    return networks.cloud_fn(model, split)
  if split.cloud_factory is not None:
    return split.cloud_factory(model, split.point)
  return generic_cloud_fn(model, split.layer, split.input_shape, split.input_dtype)


def edge_param_names(split) -> tuple[str, ...]:
  """The submodules hospital A runs at `split` (a `Split`, or SplitCNN's 2, 4, 6)."""
  return split.edge_names if isinstance(split, Split) else networks.edge_param_names(split)


def edge_params(params: dict, split) -> dict:
  """The subtree of params that hospital A holds at `split` (submodules with parameters)."""
  return {name: params[name] for name in edge_param_names(split) if name in params}


def split_number(split) -> int:
  """An int for the split point (SplitCNN's: the point itself), e.g. for key folds."""
  return split.number if isinstance(split, Split) else int(split)
