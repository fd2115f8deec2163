"""Grid sharding: a per-point function mapped over a grid, one program over every device.

`map_grid(fn, grid, *broadcast)` pads the grid's leading axis to a multiple of the device
count, shards it over a 1-D `Mesh` named 'grid' that spans every device of every process,
vmaps `fn` over each device's share (`jax.shard_map`), and gathers the results to the host
with the padding dropped, so the outputs equal the unsharded run.
"""
from __future__ import annotations

import functools
from typing import Callable

import jax
import numpy as np

GRID_AXIS = 'grid'


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
def program(fn: Callable, mesh: jax.sharding.Mesh, batch_size: int, num_broadcast: int):
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
  compiled = program(fn, mesh, batch_size, len(broadcast))
  return compiled(grid, *replicate(broadcast, mesh)), size


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
