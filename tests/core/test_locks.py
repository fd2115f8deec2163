"""Workdir locks: a held workdir is refused in one line (or waited for), a killed holder
frees it, nested runs do not deadlock, and every entry that writes a workdir takes the lock.

The holder is a real second process (`hold`), so the locks are checked across processes as
runs meet them; the end-to-end runs of two experiments into one workdir are in
tests/e2e/test_concurrent_runs.py.
"""
import json
import logging as py_logging
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from configs import attribute_heart
from configs import demo
from configs import sweep_population
from configs import train_heart
from medinv.attribute import experiment as attribute_experiment
from medinv.core import errors
from medinv.core import locks
from medinv.study import study
from medinv.study import sweep
from medinv.training import trainer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOLD = """
import sys, time
from medinv.core import locks
with locks.workdir_lock(sys.argv[1]):
  print('held', flush=True)
  if sys.argv[2] == 'stdin':
    sys.stdin.read()
  else:
    time.sleep(float(sys.argv[2]))
"""


def hold(workdir, until: str = 'stdin') -> subprocess.Popen:
  """A process holding workdir's lock until its stdin closes (or for `until` seconds)."""
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS='cpu')
  env.pop(locks.WAIT_ENV, None)
  holder = subprocess.Popen([sys.executable, '-c', HOLD, str(workdir), until], cwd=ROOT,
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
  assert holder.stdout.readline().strip() == 'held'
  return holder


def release(holder: subprocess.Popen) -> None:
  holder.stdin.close()
  assert holder.wait(timeout=60) == 0


def test_a_held_workdir_is_refused_in_one_line_naming_the_holder(tmp_path):
  holder = hold(tmp_path)
  try:
    with pytest.raises(errors.WorkdirError) as refused:
      with locks.workdir_lock(str(tmp_path), wait=False):
        pytest.fail('entered a workdir another process holds')
    message = str(refused.value)
    assert '\n' not in message
    assert message.startswith(f'workdir {tmp_path} is in use by pid {holder.pid} on host '
                              f'{socket.gethostname()} since ')
    assert '--wait_for_workdir' in message and 'another --workdir' in message
    assert errors.describe(refused.value) == (errors.EXIT_USAGE, message)
  finally:
    release(holder)
  with locks.workdir_lock(str(tmp_path), wait=False):  # Free again once the holder ended.
    recorded = json.load(open(tmp_path / locks.LOCK_FILE))
    assert recorded['pid'] == os.getpid()
  assert (tmp_path / locks.LOCK_FILE).read_text() == ''  # Emptied on release.


def test_a_holder_killed_with_sigkill_frees_the_workdir(tmp_path):
  holder = hold(tmp_path)
  os.kill(holder.pid, signal.SIGKILL)
  assert holder.wait(timeout=60) == -signal.SIGKILL
  assert json.load(open(tmp_path / locks.LOCK_FILE))['pid'] == holder.pid  # Left behind...
  start = time.time()
  with locks.workdir_lock(str(tmp_path), wait=False):  # ...yet the lock is free at once.
    assert time.time() - start < 1.0


def test_waiting_logs_once_then_enters_when_the_holder_ends(tmp_path, caplog, monkeypatch):
  monkeypatch.setenv(locks.WAIT_ENV, '1')  # What --wait_for_workdir sets.
  holder = hold(tmp_path, until='2')
  start = time.time()
  with caplog.at_level(py_logging.WARNING):
    with locks.workdir_lock(str(tmp_path)):
      waited = time.time() - start  # Entered once the holder's 2 s were over.
  assert holder.wait() == 0 and waited > 1.5
  waiting = [r.getMessage() for r in caplog.records if 'waiting for it' in r.getMessage()]
  assert len(waiting) == 1 and f'pid {holder.pid}' in waiting[0], waiting


def test_nested_locks_reenter_and_subfolders_lock_their_own(tmp_path):
  target = tmp_path / 'target'
  with locks.workdir_lock(str(tmp_path), wait=False):
    with locks.workdir_lock(str(tmp_path), wait=False):  # The same run again: no deadlock.
      with locks.workdir_lock(str(target), wait=False):
        for folder in (tmp_path, target):  # Both held against any other open of the file.
          assert not locks.FileLock(str(folder / locks.LOCK_FILE)).try_acquire()
      other = locks.FileLock(str(target / locks.LOCK_FILE))
      assert other.try_acquire()  # target/ is free again; the outer lock is still held.
      other.release()
    assert not locks.FileLock(str(tmp_path / locks.LOCK_FILE)).try_acquire()
  assert locks.FileLock(str(tmp_path / locks.LOCK_FILE)).try_acquire()


def _train(data_dir, workdir):
  config = train_heart.get_config('smoke')
  config.data.data_dir = data_dir
  return trainer.train_and_evaluate(config, workdir)


def _attribute(data_dir, workdir):
  config = attribute_heart.get_config('smoke')
  config.data.data_dir = data_dir
  return attribute_experiment.run(config, workdir)


def _study(data_dir, workdir):
  config = demo.get_config('smoke')
  for part in config.parts.values():
    part.data.data_dir = data_dir
  return study.run(config, workdir)


def _sweep(data_dir, workdir):
  config = sweep_population.get_config('smoke')
  config.data.data_dir = data_dir
  return sweep.run_sweep(config, workdir, log=lambda line: None)


@pytest.mark.parametrize('entry', [_train, _attribute, _study, _sweep],
                         ids=['trainer', 'experiment', 'study', 'sweep'])
def test_every_entry_that_writes_a_workdir_refuses_a_held_one(entry, data_dir, tmp_path):
  holder = hold(tmp_path)
  try:
    with pytest.raises(errors.WorkdirError, match=f'in use by pid {holder.pid}'):
      entry(data_dir, str(tmp_path))
  finally:
    release(holder)
  assert os.listdir(tmp_path) == [locks.LOCK_FILE]  # Nothing was written.
