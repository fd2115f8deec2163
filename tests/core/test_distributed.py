"""A multi-process run that cannot start ends with one line and an exit code, never a crash
or a hang: a taken coordinator port (exit 2, checked before JAX's service would crash on it),
an unreachable coordinator and a process that never joins (exit 1 after
--initialization_timeout seconds). Each case runs `experiments.sweep` as a subprocess, as
one process of a two-process run whose other process is missing."""
import os
import socket
import subprocess
import sys
import time

import pytest

from experiment_runs import error_line
from medinv.core import distributed
from medinv.core import errors

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GUARD = 120  # seconds: a run that hangs fails the test instead of stalling the suite


def run_sweep_process(address: str, process_id: int, timeout: float, tmp_path):
  """One process of a two-process smoke sweep; returns (result, seconds it took)."""
  env = {k: v for k, v in os.environ.items() if k != errors.DEBUG_ENV}
  env.update(PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='3', NO_GCE_CHECK='true')
  start = time.time()
  result = subprocess.run(
      [sys.executable, '-m', 'experiments.sweep', '--config=configs/sweep_population.py:smoke',
       f'--coordinator_address={address}', '--num_processes=2', f'--process_id={process_id}',
       f'--initialization_timeout={timeout:g}', f'--workdir={tmp_path / "w"}'],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=GUARD)
  return result, time.time() - start


def free_address() -> str:
  with socket.socket() as probe:
    probe.bind(('127.0.0.1', 0))
    return f'127.0.0.1:{probe.getsockname()[1]}'


def test_taken_coordinator_port_is_one_line_and_exit_2(tmp_path):
  with socket.socket() as taken:
    taken.bind(('127.0.0.1', 0))
    taken.listen()
    address = f'127.0.0.1:{taken.getsockname()[1]}'
    result, seconds = run_sweep_process(address, 0, 10, tmp_path)
  # Exit 2 from the port check: the 10 s watchdog (exit 1) never fired, nor did JAX crash.
  error_line(result, errors.EXIT_USAGE, f'--coordinator_address={address}: port '
             f'{address.split(":")[1]} is already in use on this host', 'choose a free port')
  assert seconds < GUARD
  assert not (tmp_path / 'w').exists()


def test_unreachable_coordinator_ends_after_the_timeout_with_one_line(tmp_path):
  address = free_address()  # nobody listens there
  result, seconds = run_sweep_process(address, 1, 2, tmp_path)
  error_line(result, errors.EXIT_FAILURE, f'process 1: cannot reach the coordinator (process 0)'
             f' at {address} within 2 s (--initialization_timeout sets the wait)')
  assert 2 <= seconds < GUARD


def test_process_that_never_joins_ends_the_coordinator_with_one_line(tmp_path):
  address = free_address()
  result, seconds = run_sweep_process(address, 0, 2, tmp_path)  # process 1 never starts
  error_line(result, errors.EXIT_FAILURE, f'not all 2 processes joined the coordinator at '
             f'{address} within 2 s (--initialization_timeout sets the wait)')
  assert 2 <= seconds < GUARD


def test_coordinator_port_check():
  with socket.socket() as taken:
    taken.bind(('127.0.0.1', 0))
    taken.listen()
    port = taken.getsockname()[1]
    with pytest.raises(errors.UsageError, match=f'port {port} is already in use'):
      distributed.check_coordinator_port(f'node0:{port}', environ={})
    with pytest.raises(errors.UsageError, match=f'port {port} is already in use'):
      distributed.check_coordinator_port(
          'node0:1', environ={'JAX_COORDINATOR_BIND_ADDRESS': f'127.0.0.1:{port}'})
  distributed.check_coordinator_port(free_address(), environ={})  # a free port passes
  with pytest.raises(errors.UsageError, match='--coordinator_address=node0: expected host:port'):
    distributed.check_coordinator_port('node0', environ={})
  with pytest.raises(errors.UsageError, match='--initialization_timeout must be a positive'):
    distributed.initialize('127.0.0.1:1', 2, 0, environ={}, initialization_timeout=0)


def test_config_error_with_local_hosts_is_one_line_not_one_per_process(tmp_path):
  env = {k: v for k, v in os.environ.items() if k != errors.DEBUG_ENV}
  env.update(PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='3', NO_GCE_CHECK='true')
  result = subprocess.run(
      [sys.executable, '-m', 'experiments.sweep', '--config=configs/sweep_rmle.py:smoke',
       '--config.sweep.axes.attack.learning_rate=(0.0,)', '--hosts=2',
       f'--workdir={tmp_path / "w"}'], cwd=ROOT, env=env, capture_output=True, text=True,
      timeout=GUARD)
  error_line(result, errors.EXIT_USAGE, 'sweep axis attack.learning_rate=0.0')
  assert not (tmp_path / 'w').exists()
