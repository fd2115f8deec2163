"""Sharded sweeps: 8 devices equal 1 device; 2 processes (jax.distributed) equal 1 process.

The device count is fixed when JAX starts, so the 8-device checks run in their own pytest
process (XLA_FLAGS=--xla_force_host_platform_device_count=8), started by
`test_sharded_checks_on_eight_devices` (the checks are in tests/core/multidevice_checks.py); the
2-process checks start `./launch.sh sweep --hosts 2` (two processes on 127.0.0.1, 2 CPU devices
each) for every sweep experiment and compare with a run here.
"""
import json
import os
import subprocess
import sys

import pytest

from configs import sweep_attribute
from configs import sweep_inversion
from configs import sweep_population
from medinv import data as data_lib
from medinv.core import axes as axes_lib
from medinv.study import sweep

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _env(**extra):
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get(
      'PYTHONPATH')])), TF_CPP_MIN_LOG_LEVEL='3', NO_GCE_CHECK='true')
  if 'XLA_FLAGS' in extra:  # Added to the suite's own flags (tests/conftest.py).
    extra['XLA_FLAGS'] = ' '.join(filter(None, [os.environ.get('XLA_FLAGS'), extra['XLA_FLAGS']]))
  env.update(extra)
  return env


@pytest.mark.e2e  # runs an experiment end to end: the e2e tier
def test_sharded_checks_on_eight_devices(data_dir):
  proc = subprocess.run(
      [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
       os.path.join(ROOT, 'tests', 'core', 'multidevice_checks.py')],
      env=_env(XLA_FLAGS='--xla_force_host_platform_device_count=8',
               MEDINV_TEST_DATA_DIR=data_dir),
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0 and '4 passed' in proc.stdout, (
      proc.stdout[-6000:] + proc.stderr[-3000:])


# (config, its argument, flag overrides): each 2-process run also trains its target models
# and writes their orbax checkpoints through the multi-process path.
TWO_PROCESS_SWEEPS = {
    'population': (sweep_population, 'smoke', {'sweep.axes.train.batch_size': (32,)}),
    'attribute_inference': (sweep_attribute, 'smoke', {'sweep.axes.seed': (1,)}),
    # One sigma per device in both runs: a vmap over sigmas batches the perturbed weights,
    # which changes the convolution's float rounding, and rMLE amplifies that (~0.4% SSIM).
    # The two attacks with prepared stages (clean decoder, shadow edge), saved by both.
    'model_inversion': (sweep_inversion, 'smoke', {'sweep.axes.attack.splits': ((2,),),
                                                   'attack.grid_chunk': 1,
                                                   'attack.names': ('inverse_network',
                                                                    'query_free')}),
}


@pytest.mark.e2e  # runs an experiment end to end: the e2e tier
def test_two_processes_equal_one_process(data_dir, tmp_path):
  """The population sweep, in every suite."""
  two_processes_equal_one_process('population', data_dir, tmp_path)


@pytest.mark.paper  # several CPU-minutes: ./launch.sh test -m paper
@pytest.mark.parametrize('experiment', ['attribute_inference', 'model_inversion'])
def test_two_processes_equal_one_process_heavy(experiment, data_dir, tmp_path):
  two_processes_equal_one_process(experiment, data_dir, tmp_path)


def two_processes_equal_one_process(experiment, data_dir, tmp_path):
  module, arg, overrides = TWO_PROCESS_SWEEPS[experiment]
  config = module.get_config(arg)
  config.data.data_dir = data_dir
  config.train.checkpoint_every_epochs = 1  # several checkpoints per target model
  for path, value in overrides.items():
    axes_lib.set_path(config, path, value)
  assert config.sweep.experiment == experiment
  data_lib.load_task(config.data)  # Builds the dataset cache the processes share.
  sweep.run_sweep(config, str(tmp_path / 'one'), log=lambda line: None)
  one = json.load(open(tmp_path / 'one' / 'results.json'))
  two_dir = str(tmp_path / 'two')
  flags = [f'--config.{path}={value!r}' for path, value in overrides.items()]
  command = [sys.executable, '-m', 'experiments.sweep', '--config',
             f'configs/{module.__name__.split(".")[-1]}.py:{arg}', *flags,
             '--config.train.checkpoint_every_epochs=1',
             f'--config.data.data_dir={data_dir}', f'--workdir={two_dir}', '--hosts=2']

  def run_two_processes():
    proc = subprocess.run(command, env=_env(XLA_FLAGS='--xla_force_host_platform_device_count=2'),
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert '4 cpu devices in 2 processes' in proc.stdout
    assert proc.stdout.count('results in') == 1  # Only process 0 reports and writes.
    _assert_same_results(one, json.load(open(os.path.join(two_dir, 'results.json'))))
    return proc

  run_two_processes()
  if experiment == 'attribute_inference':
    # Rerun the run from its target's orbax checkpoints (saved by both processes together).
    (run_dir,) = [d for d in os.listdir(two_dir) if os.path.isdir(os.path.join(two_dir, d))]
    os.remove(os.path.join(two_dir, run_dir, 'results.json'))
    proc = run_two_processes()
    assert 'resumed' in proc.stderr and ': ran' in proc.stdout, proc.stderr[-3000:]


def _assert_same_results(one: dict, two: dict) -> None:
  assert len(two['rows']) == len(one['rows']) > 0
  for a, b in zip(one['rows'], two['rows']):
    assert a.keys() == b.keys()
    for key in a:
      if isinstance(a[key], float):
        assert a[key] == pytest.approx(b[key], abs=1e-4), key
      else:
        assert a[key] == b[key], key
  for key, value in one['metrics'].items():
    assert two['metrics'][key] == pytest.approx(value, abs=1e-4), key
