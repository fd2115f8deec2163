"""8-device sweep checks, run by tests/core/test_sharding.py in its own pytest process with
XLA_FLAGS=--xla_force_host_platform_device_count=8 (the device count is fixed when JAX starts).
Not collected by a plain `pytest tests` run: the file name does not start with test_.
"""
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import sweep_population
from medinv import data as data_lib
from medinv import models
from medinv.training import population
from medinv.core import sharding
from medinv.study import sweep
from medinv.inversion import sweep_rmle


def _one_device():
  return sharding.grid_mesh(jax.devices()[:1])


def _close(a, b, rtol=1e-5, atol=1e-6):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


def _fn(point, table):
  return {'value': jnp.sin(point['a'] * table).sum() + point['b'], 'row': table * point['a']}


@pytest.mark.parametrize('size', [5, 16])
def test_on_8_devices_map_grid_equals_one_device(size):
  assert jax.device_count() == 8
  grid = {'a': np.linspace(0, 1, size).astype(np.float32), 'b': np.arange(size, dtype=np.int32)}
  table = np.arange(6, dtype=np.float32)
  sharded, real = sharding.map_grid_sharded(_fn, grid, table)
  assert real == size and sharded['value'].shape == (sharding.padded_size(size, 8),)
  assert len(sharded['value'].sharding.device_set) == 8
  _close(sharding.map_grid(_fn, grid, table),
         sharding.map_grid(_fn, grid, table, mesh=_one_device()))
  assert sharding.map_grid(_fn, grid, table)['value'].shape == (size,)


def test_on_8_devices_population_equals_one_device():
  config = sweep_population.get_config('smoke')
  config.data.data_dir = os.environ['MEDINV_TEST_DATA_DIR']
  config.sweep.axes = ml_collections.ConfigDict({'seed': (0, 1, 2), 'train': {
      'label_flip_prob': (0.0, 0.3), 'learning_rate': (1e-3, 3e-3)}})  # 12 models
  config.train.checkpoint_every_epochs = config.train.num_epochs  # One chunk.
  (run,) = sweep.expand_runs(config)
  task = data_lib.load_task(run.config.data)
  points = population.points(run.config)
  _, eight, size = population.fit(run.config, task, points)
  _, one, _ = population.fit(run.config, task, points, mesh=_one_device())
  assert size == 12 and jax.tree.leaves(eight.params)[0].shape[0] == 16
  _close(jax.tree.map(lambda x: x[:size], sharding.gather(eight.params)),
         sharding.gather(one.params), rtol=1e-4, atol=1e-5)


def test_on_8_devices_rmle_grid_equals_one_device():
  model = models.SplitCNN(num_classes=2)
  keys = jax.random.split(jax.random.key(0), 2)
  images = jax.random.uniform(keys[0], (3, 16, 16, 1))
  params = model.init(keys[1], images[:1])['params']
  population_params = jax.tree.map(lambda p: jnp.stack([p, 0.9 * p]), params)
  attack = {'defense.sigma': np.float32([0.0, 0.05, 0.1]),
            'attack.learning_rate': np.float32([0.05, 0.1, 0.05]),
            'attack.weights.tv': np.float32([0.0, 0.05, 0.02])}
  flat = sweep_rmle.flat_grid({'seed': np.int32([0, 1])}, attack)  # 6 points on 8 devices
  fn = sweep_rmle.point_fn(model, 2, 'edge', 3)
  args = (population_params, images[:2], images, jnp.int32([0, 1, 0]))
  _close(sharding.map_grid(fn, flat, *args),  # vmapped per device; one point at a time on one
         sharding.map_grid(fn, flat, *args, mesh=_one_device(), batch_size=1),
         rtol=1e-4, atol=1e-5)
