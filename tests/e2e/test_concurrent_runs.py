"""Two runs of experiments/train.py into one workdir, as a shared-cluster user starts them.

The first run is caught while it holds the workdir and paused (SIGSTOP), so the second one
meets it for certain: it is refused with one `error:` line and exit code 2, and the first,
resumed, ends with results and config that are its own. With --wait_for_workdir the second
run waits (saying so once) and runs when the holder is done.
"""
import json
import os
import signal
import subprocess
import sys
import time

from experiment_runs import only_error_line
from medinv.core import errors
from medinv.core import locks

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOLD = """
import sys
from medinv.core import locks
with locks.workdir_lock(sys.argv[1]):
  print('held', flush=True)
  sys.stdin.read()
"""


def _env(data_dir):
  env = {k: v for k, v in os.environ.items() if k not in (errors.DEBUG_ENV, locks.WAIT_ENV)}
  env.update(PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='3', NO_GCE_CHECK='true',
             MEDINV_DATA_DIR=data_dir, JAX_PLATFORMS='cpu')
  return env


def start_train(workdir, data_dir, log_dir, name, *flags) -> subprocess.Popen:
  """experiments/train.py on the heart_disease smoke config; stdout and stderr go to
  log_dir/<name>.out and .err."""
  argv = [sys.executable, 'experiments/train.py', '--config=configs/train_heart.py:smoke',
          f'--workdir={workdir}', *flags]
  return subprocess.Popen(argv, cwd=ROOT, env=_env(data_dir),
                          stdout=open(log_dir / f'{name}.out', 'w'),
                          stderr=open(log_dir / f'{name}.err', 'w'))


def wait_until(condition, what: str, timeout: float = 120.0) -> None:
  start = time.time()
  while not condition():
    assert time.time() - start < timeout, f'timed out waiting until {what}'
    time.sleep(0.02)


def holder_pid(workdir) -> int | None:
  try:
    return json.load(open(os.path.join(workdir, locks.LOCK_FILE)))['pid']
  except (OSError, ValueError, KeyError):
    return None


def test_a_second_run_is_refused_and_the_first_keeps_its_own_results(tmp_path, data_dir):
  workdir = tmp_path / 'run'
  first = start_train(workdir, data_dir, tmp_path, 'first', '--config.seed=1')
  try:
    wait_until(lambda: holder_pid(workdir) == first.pid, 'the first run holds the workdir')
    os.kill(first.pid, signal.SIGSTOP)  # Holds the lock, paused, while the second one starts.
    second = start_train(workdir, data_dir, tmp_path, 'second', '--config.seed=2')
    assert second.wait(timeout=300) == errors.EXIT_USAGE
  finally:
    os.kill(first.pid, signal.SIGCONT)
  assert first.wait(timeout=300) == 0, (tmp_path / 'first.err').read_text()[-3000:]
  line = only_error_line((tmp_path / 'second.err').read_text(), 'experiments/train.py',
                         '--wait_for_workdir')
  assert line.startswith(f'error: workdir {workdir} is in use by pid {first.pid} '), line
  assert f'results in {workdir}/results.json' in (tmp_path / 'first.out').read_text()
  assert json.load(open(workdir / 'config.json'))['seed'] == 1  # The first run's, not 2.
  results = json.load(open(workdir / 'results.json'))
  assert results['experiment'] == 'train' and results['metrics']['epochs'] == 3
  assert not (workdir / 'config.pending.json').exists()
  assert sorted(os.listdir(workdir / 'checkpoints')) == ['2', '3']


def test_wait_for_workdir_waits_for_the_holder_then_runs(tmp_path, data_dir):
  workdir = tmp_path / 'run'
  holder = subprocess.Popen([sys.executable, '-c', HOLD, str(workdir)], cwd=ROOT,
                            env=_env(data_dir), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
  assert holder.stdout.readline().strip() == 'held'
  waiter = start_train(workdir, data_dir, tmp_path, 'waiter', '--wait_for_workdir')
  try:
    wait_until(lambda: 'waiting for it' in (tmp_path / 'waiter.err').read_text(),
               'the second run says it waits')
    time.sleep(1.0)
    assert waiter.poll() is None and not (workdir / 'config.json').exists()
  finally:
    holder.stdin.close()
  assert holder.wait(timeout=60) == 0
  assert waiter.wait(timeout=300) == 0, (tmp_path / 'waiter.err').read_text()[-3000:]
  stderr = (tmp_path / 'waiter.err').read_text()
  waiting = [line for line in stderr.splitlines() if 'waiting for it' in line]
  assert len(waiting) == 1 and f'in use by pid {holder.pid}' in waiting[0], waiting
  assert json.load(open(workdir / 'results.json'))['experiment'] == 'train'
