"""Sharded sweeps: 8 devices equal 1 device; 2 processes (jax.distributed) equal 1 process.

The device count is fixed when JAX starts, so the 8-device checks run in their own pytest
process (XLA_FLAGS=--xla_force_host_platform_device_count=8), started by
`test_sharded_checks_on_eight_devices` (the checks are in tests/multidevice_checks.py); the 2-process check starts `./launch.sh sweep
--hosts 2` (two processes on 127.0.0.1, 2 CPU devices each) and compares with a run here.
"""
import json
import os
import subprocess
import sys

import pytest

from configs import sweep_population
from medinv import data as data_lib
from medinv import sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env(**extra):
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get(
      'PYTHONPATH')])), TF_CPP_MIN_LOG_LEVEL='3', NO_GCE_CHECK='true')
  env.update(extra)
  return env


def test_sharded_checks_on_eight_devices(data_dir):
  proc = subprocess.run(
      [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
       os.path.join(ROOT, 'tests', 'multidevice_checks.py')],
      env=_env(XLA_FLAGS='--xla_force_host_platform_device_count=8',
               MEDINV_TEST_DATA_DIR=data_dir),
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0 and '4 passed' in proc.stdout, proc.stdout[-6000:] + proc.stderr[-3000:]


def test_two_processes_equal_one_process(data_dir, tmp_path):
  config = sweep_population.get_config('smoke')
  config.data.data_dir = data_dir
  config.sweep.axes.train.batch_size = (32,)
  config.train.checkpoint_every_epochs = config.train.num_epochs  # One chunk.
  data_lib.load_task(config.data)  # Builds the dataset cache the processes share.
  one = sweep.run_sweep(config, str(tmp_path / 'one'), log=lambda line: None)
  two_dir = str(tmp_path / 'two')
  proc = subprocess.run(
      [sys.executable, '-m', 'experiments.sweep', '--config',
       'configs/sweep_population.py:smoke', '--config.sweep.axes.train.batch_size=(32,)',
       f'--config.train.checkpoint_every_epochs={config.train.num_epochs}',
       f'--config.data.data_dir={data_dir}', f'--workdir={two_dir}', '--hosts=2'],
      env=_env(XLA_FLAGS='--xla_force_host_platform_device_count=2'), cwd=ROOT,
      capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
  assert '4 cpu devices in 2 processes' in proc.stdout
  assert proc.stdout.count('results in') == 1  # Only process 0 reports and writes.
  two = json.load(open(os.path.join(two_dir, 'results.json')))
  assert len(two['rows']) == len(one['rows']) > 0
  for a, b in zip(one['rows'], two['rows']):
    assert a.keys() == b.keys()
    for key in a:
      if isinstance(a[key], float):
        assert a[key] == pytest.approx(b[key], abs=1e-5), key
      else:
        assert a[key] == b[key], key
  for key, value in one['metrics'].items():
    assert two['metrics'][key] == pytest.approx(value, abs=1e-5), key
