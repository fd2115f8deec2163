"""Locks that keep two processes from writing one workdir, or building one dataset, at once.

A lock is `fcntl.flock` on a small file. The kernel releases it when the holding process
ends, however it ends (a SIGKILL, a lost node), so a killed run never leaves a workdir
locked. The file stays (removing it would race a process that has just opened it); while
held it names the holder (pid, host, start time, user and command), and it is emptied when
released.

Workdirs: `workdir_lock(workdir)` is held for a whole run by every entry that writes a
workdir (medinv.training.experiment.run, medinv.training.trainer.train_and_evaluate,
medinv.study.study.run, medinv.study.sweep.run_sweep). A second run into a held workdir
raises errors.WorkdirError at once, naming the holder, unless it asks to wait (`wait=True`,
or $MEDINV_WAIT_FOR_WORKDIR, which the experiments' --wait_for_workdir flag sets, so the
processes a run starts inherit it); a waiting run logs once, then waits. Entering a workdir
this process already holds again is a no-op; a subfolder (target/, a study part, a sweep
run) gets a lock of its own, so a run into it from elsewhere is refused too. Only the
writer process (medinv.core.distributed.is_writer) takes the lock, and every process of a
multi-process run learns whether it did.

Datasets: `exclusive(path, what)` serialises builds (medinv.data.tfds_util.prepare); the
second process waits, logging once, then reads the finished build.

On a filesystem without flock (some network filesystems) locking logs a warning once and
the run goes on unlocked.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import getpass
import json
import os
import socket
import sys
import time
from typing import Iterator

from absl import logging
import numpy as np

from medinv.core import distributed
from medinv.core import errors
from medinv.core import report

LOCK_FILE = '.medinv.lock'
WAIT_ENV = 'MEDINV_WAIT_FOR_WORKDIR'
_UNSUPPORTED = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)
_held: dict[str, int] = {}  # real path of a workdir this process holds -> nesting depth
_warned_unsupported: set[str] = set()


@dataclasses.dataclass(frozen=True)
class Holder:
  """Who holds a lock: written into the lock file by the process that took it."""
  pid: int
  host: str
  since: float
  user: str
  command: str

  def describe(self) -> str:
    """'pid 1234 on host h since 2025-01-31 08:01:02 (started by alice: python -m ...)'."""
    when = time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(self.since))
    return (f'pid {self.pid} on host {self.host} since {when} '
            f'(started by {self.user}: {self.command})')


def this_process() -> Holder:
  """This process as a lock holder (its command line on one line, at most 160 characters)."""
  try:
    user = getpass.getuser()
  except (KeyError, OSError):  # No passwd entry (some containers).
    user = f'uid {os.getuid()}'
  command = ' '.join(sys.argv).replace('\n', ' ').strip() or sys.executable
  if len(command) > 160:
    command = command[:157] + '...'
  return Holder(os.getpid(), socket.gethostname(), time.time(), user, command)


class FileLock:
  """An exclusive flock on the file `path` (created if needed, never removed)."""

  def __init__(self, path: str):
    self.path = path
    self._fd: int | None = None

  def try_acquire(self) -> bool:
    """Takes the lock if it is free; False while another process (or file) holds it.

    On a filesystem without locks: a warning (once per folder) and True, unlocked."""
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      os.close(fd)
      return False
    except OSError as e:
      os.close(fd)
      if e.errno not in _UNSUPPORTED:
        raise
      self._warn_unsupported(e)
      return True
    self._claim(fd)
    return True

  def acquire(self) -> None:
    """Takes the lock, waiting as long as another process holds it."""
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException as e:
      os.close(fd)
      if isinstance(e, OSError) and e.errno in _UNSUPPORTED:
        self._warn_unsupported(e)
        return
      raise
    self._claim(fd)

  def _claim(self, fd: int) -> None:
    """Records this process in the lock file (best effort: a full disk still locks)."""
    self._fd = fd
    try:
      os.ftruncate(fd, 0)
      os.pwrite(fd, json.dumps(dataclasses.asdict(this_process())).encode(), 0)
    except OSError:
      pass

  def _warn_unsupported(self, error: OSError) -> None:
    folder = os.path.dirname(os.path.abspath(self.path))
    if folder not in _warned_unsupported:
      _warned_unsupported.add(folder)
      logging.warning('cannot lock %s (%s): this filesystem has no file locks, so nothing '
                      'stops another run from using it at the same time', self.path,
                      error.strerror)

  def holder(self, attempts: int = 10) -> Holder | None:
    """The holder named in the lock file; None when it names none (a holder that has just
    taken the lock writes its name a moment later: retried `attempts` times)."""
    for attempt in range(attempts):
      try:
        with open(self.path) as f:
          return Holder(**json.load(f))
      except (OSError, ValueError, TypeError):
        if attempt + 1 < attempts:
          time.sleep(0.05)
    return None

  def release(self) -> None:
    """Empties the lock file and releases the lock (no-op when not held)."""
    if self._fd is None:
      return
    fd, self._fd = self._fd, None
    try:
      os.ftruncate(fd, 0)
    except OSError:
      pass
    os.close(fd)


def _describe(holder: Holder | None) -> str:
  return holder.describe() if holder else 'another process'


def wait_default() -> bool:
  """Whether $MEDINV_WAIT_FOR_WORKDIR asks runs to wait for a held workdir."""
  return os.environ.get(WAIT_ENV, '').strip().lower() not in ('', '0', 'false', 'no')


def busy_message(workdir: str, holder: Holder | None) -> str:
  """The one line a run refused by a held workdir prints."""
  return (f'workdir {workdir} is in use by {_describe(holder)}; wait for it, use another '
          '--workdir, or pass --wait_for_workdir')


def _writer_lock(workdir: str, wait: bool) -> FileLock:
  """The writer process's lock on workdir; WorkdirError when another run holds it and
  `wait` is False."""
  report.check_workdir(workdir)
  lock = FileLock(os.path.join(workdir, LOCK_FILE))
  if not lock.try_acquire():
    holder = lock.holder()
    if not wait:
      raise errors.WorkdirError(busy_message(workdir, holder))
    logging.warning('workdir %s is in use by %s; waiting for it to finish '
                    '(--wait_for_workdir)', workdir, _describe(holder))
    lock.acquire()
  return lock


def _lock_workdir(workdir: str, wait: bool) -> FileLock | None:
  """The writer's lock on workdir (None on the other processes). When the writer cannot
  lock it, every process of a multi-process run raises (the writer its own error)."""
  lock, failure = None, None
  if distributed.is_writer():
    try:
      lock = _writer_lock(workdir, wait)
    except (errors.WorkdirError, errors.RunError) as e:
      failure = e
  if distributed.broadcast_from_writer(np.int32(failure is not None)):
    if failure is not None:
      raise failure
    raise errors.WorkdirError(f'workdir {workdir} cannot be used: the writer process '
                              'could not lock it (its error says why)')
  return lock


@contextlib.contextmanager
def workdir_lock(workdir: str, wait: bool | None = None) -> Iterator[None]:
  """Holds workdir for the duration of the `with` block (see the module docstring).

  Args:
    workdir: the run directory (created if needed).
    wait: wait while another run holds it; None: $MEDINV_WAIT_FOR_WORKDIR decides.

  Raises:
    errors.WorkdirError: another run holds it (and not waiting), or it is no writable
      directory.
  """
  key = os.path.realpath(workdir)
  if key in _held:  # Already held by this process: an inner call of the same run.
    _held[key] += 1
    try:
      yield
    finally:
      _held[key] -= 1
    return
  lock = _lock_workdir(workdir, wait_default() if wait is None else wait)
  _held[key] = 1
  try:
    yield
  finally:
    del _held[key]
    if lock is not None:
      lock.release()


@contextlib.contextmanager
def exclusive(path: str, what: str) -> Iterator[None]:
  """Holds the lock file `path` for the `with` block, waiting (and logging once, naming
  `what`) while another process holds it."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  lock = FileLock(path)
  if not lock.try_acquire():
    logging.info('%s: %s holds %s; waiting for it', what, _describe(lock.holder()), path)
    lock.acquire()
  try:
    yield
  finally:
    lock.release()
