"""Sweeps: axis classification, run expansion and naming, grid programs, resume, rmle sweep."""
import json
import dataclasses
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import inversion_breastmnist
from configs import sweep_population
from configs import sweep_rmle
from medinv.core import distributed
from medinv import models
from medinv.core import axes as axes_lib
from medinv.training import population
from medinv.study import runners
from medinv.core import sharding
from medinv.study import sweep
from medinv.inversion import sweep_rmle as rmle_lib


def _population_config(data_dir, **axes):
  config = sweep_population.get_config('smoke')
  config.data.data_dir = data_dir
  config.train.checkpoint_every_epochs = config.train.num_epochs  # One training program.
  config.sweep.axes = ml_collections.ConfigDict(axes)
  return config


def test_split_axes_vmaps_numbers_and_expands_the_rest():
  config = sweep_population.get_config('smoke')
  vmapped, runs = sweep.split_axes(config)
  assert list(vmapped) == ['seed', 'train.label_flip_prob']
  assert list(runs) == ['train.batch_size']
  config.sweep.axes.model = ('mlp',)
  with pytest.raises(ValueError, match="'seed' is vmapped and needs numbers"):
    config.sweep.axes.seed = ('zero',)
    sweep.split_axes(config)
  config = sweep_population.get_config('smoke')
  config.sweep.axes.train.batch_sise = (1, 2)
  with pytest.raises(ValueError, match="'train.batch_sise' is not a field of the config"):
    sweep.split_axes(config)
  config.sweep.axes = ml_collections.ConfigDict()
  config.sweep.experiment = 'nope'
  with pytest.raises(ValueError, match='unknown sweep experiment'):
    sweep.split_axes(config)


def test_expand_runs_names_overrides_and_keeps_only_vmapped_axes():
  config = sweep_population.get_config('smoke')
  config.sweep.axes.data = ml_collections.ConfigDict({'test_fraction': (0.2, 0.25)})
  runs = sweep.expand_runs(config)
  assert [r.name for r in runs] == [  # Axes in config order (ConfigDict sorts keys).
      'test_fraction=0.2,batch_size=32', 'test_fraction=0.2,batch_size=64',
      'test_fraction=0.25,batch_size=32', 'test_fraction=0.25,batch_size=64']
  last = runs[-1].config
  assert last.train.batch_size == 64 and last.data.test_fraction == 0.25
  assert axes_lib.grid_axes(last, population.TRAIN_AXES) == {
      'seed': (0, 1), 'train.label_flip_prob': (0.0, 0.3, 0.45)}
  assert config.train.batch_size == 32  # The sweep's own config is untouched.
  assert sweep.run_name({'a.seed': 1, 'b.seed': 2, 'attack.splits': (2, 4)}) == (
      'a.seed=1,b.seed=2,splits=2-4')
  inversion_config = inversion_breastmnist.get_config('smoke')
  inversion_config.defense.model_perturbation.strengths = (0.0,)
  inversion_config.sweep = ml_collections.ConfigDict({'experiment': 'model_inversion', 'axes': {
      'defense': {'sigma': (0.0, 0.05)}}})
  (run,) = sweep.expand_runs(inversion_config)  # the vmapped axis becomes the run's strength grid
  assert run.name == 'run'
  assert run.config.defense.model_perturbation.strengths == (0.0, 0.05)


def test_grid_points_cartesian_product():
  points = axes_lib.grid_points({'seed': (0, 1), 'train.label_flip_prob': (0.0, 0.1, 0.2)},
                             {'train.learning_rate': 1e-3, 'seed': 7})
  assert points['seed'].tolist() == [0, 0, 0, 1, 1, 1] and points['seed'].dtype == np.int32
  np.testing.assert_allclose(points['train.label_flip_prob'], [0, .1, .2] * 2, rtol=1e-6)
  np.testing.assert_allclose(points['train.learning_rate'], [1e-3] * 6, rtol=1e-6)


def _point_fn(point, matrix):
  hidden = jnp.tanh(matrix @ jnp.full((3,), point['a']) + point['b'])
  return {'sum': jnp.sum(hidden), 'hidden': hidden}


@pytest.mark.parametrize('batch_size', [0, 2])
def test_map_grid_equals_loop(batch_size):
  matrix = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
  grid = {'a': np.linspace(-1, 1, 5).astype(np.float32), 'b': np.arange(5, dtype=np.float32)}
  out = sharding.map_grid(_point_fn, grid, matrix, batch_size=batch_size)
  for i in range(5):
    expected = _point_fn({'a': grid['a'][i], 'b': grid['b'][i]}, matrix)
    np.testing.assert_allclose(out['hidden'][i], expected['hidden'], rtol=1e-6)
    np.testing.assert_allclose(out['sum'][i], expected['sum'], rtol=1e-6)
  assert out['hidden'].shape == (5, 4)
  np.testing.assert_array_equal(sharding.pad_leading(grid['b'], 8), [0, 1, 2, 3, 4, 0, 0, 0])


@pytest.mark.e2e  # runs an experiment end to end: the e2e tier
def test_killed_sweep_resumes_only_unfinished_runs(data_dir, tmp_path, monkeypatch):
  # Runs over the split seed: same shapes, so both runs share their compiled programs.
  config = _population_config(data_dir, seed=(0,), train={'label_flip_prob': (0.0, 0.3)},
                              data={'split_seed': (0, 1)})
  workdir = str(tmp_path / 'sweep')
  real_runner = runners.RUNNERS['population']
  calls, kill = [], [True]

  def killed_on_second(run_config, run_dir):
    calls.append(os.path.basename(run_dir))
    if len(calls) == 2 and kill and kill.pop():
      raise KeyboardInterrupt  # The sweep is killed while the second run is running.
    return real_runner.run(run_config, run_dir)

  monkeypatch.setitem(runners.RUNNERS, 'population',
                      dataclasses.replace(real_runner, run=killed_on_second))
  with pytest.raises(KeyboardInterrupt):
    sweep.run_sweep(config, workdir, log=lambda line: None)
  first = os.path.join(workdir, 'split_seed=0', 'results.json')
  mtime = os.path.getmtime(first)
  assert not os.path.exists(os.path.join(workdir, 'split_seed=1', 'results.json'))

  calls.clear()
  lines = []
  results = sweep.run_sweep(config, workdir, log=lines.append)
  assert calls == ['split_seed=1']
  assert os.path.getmtime(first) == mtime
  assert [s['status'] for s in results['summary']] == ['reused', 'ran']
  assert 'reused' in lines[-1] and 'ran' in lines[-1]
  on_disk = json.load(open(os.path.join(workdir, 'results.json')))
  assert on_disk['experiment'] == 'sweep' and len(on_disk['rows']) == len(results['rows'])
  assert {r['run'] for r in on_disk['rows']} == {'split_seed=0', 'split_seed=1'}

  calls.clear()  # A changed config makes a finished run stale.
  config.attack.map.eps = 0.01
  sweep.run_sweep(config, workdir, log=lambda line: None)
  assert calls == ['split_seed=0', 'split_seed=1']


def test_rmle_point_grid_equals_single_points():
  model = models.SplitCNN(num_classes=2)
  keys = jax.random.split(jax.random.key(0), 3)
  images = jax.random.uniform(keys[0], (3, 16, 16, 1))
  params = model.init(keys[1], images[:1])['params']
  population_params = jax.tree.map(lambda p: jnp.stack([p, p * 1.01]), params)
  attack = {'defense.sigma': np.float32([0.0, 0.05]), 'attack.learning_rate': np.float32(
      [0.05, 0.05]), 'attack.weights.feature_l2': np.float32([1.0, 1.0]),
      'attack.weights.tv': np.float32([0.0, 0.05])}
  flat = rmle_lib.flat_grid({'seed': np.int32([0, 1])}, attack)
  assert flat['model'].tolist() == [0, 0, 1, 1] and flat['seed'].tolist() == [0, 0, 1, 1]
  fn = rmle_lib.point_fn(model, 2, 'edge', 3)
  args = (population_params, images[:2], images, jnp.int32([0, 1, 0]))
  out = sharding.map_grid(fn, flat, *args)
  single = jax.jit(fn)({k: v[3] for k, v in flat.items()}, *args)
  for name in ('ssim', 'psnr', 'mse', 'model_test_accuracy'):
    np.testing.assert_allclose(out[name][3], single[name], rtol=2e-5)
  assert len(set(np.round(out['mse'], 8))) == 4  # Every point is a different attack.
  with pytest.raises(ValueError, match='unknown objective term'):
    config = sweep_rmle.get_config('smoke')
    config.attack.weights.nope = 1.0
    rmle_lib.validate(config)


def test_multi_process_detection_from_the_environment():
  count = distributed.launcher_process_count
  assert count({}) == 1
  assert count({'SLURM_JOB_ID': '7', 'SLURM_NTASKS': '4'}) == 4
  assert count({'SLURM_JOB_ID': '7', 'SLURM_STEP_NUM_TASKS': '2(x3)'}) == 2
  assert count({'OMPI_COMM_WORLD_SIZE': '3'}) == 3
  assert count({'TPU_WORKER_HOSTNAMES': 'h0,h1,h2,h3'}) == 4
  assert count({'JAX_NUM_PROCESSES': '2', 'SLURM_JOB_ID': '7', 'SLURM_NTASKS': '8'}) == 2
  assert not distributed.initialize(environ={'SLURM_JOB_ID': '7', 'SLURM_NTASKS': '1'})
  assert not distributed.initialize('127.0.0.1:1', 1, 0, environ={})  # One process: no-op.
  with pytest.raises(ValueError, match='needs all of coordinator_address'):
    distributed.initialize(num_processes=2, environ={})
  with pytest.raises(ValueError, match='outside 0..1'):
    distributed.initialize('127.0.0.1:1', 2, 5, environ={})
  assert distributed.is_writer() and jax.process_count() == 1
