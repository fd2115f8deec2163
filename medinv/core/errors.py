"""The errors a user can cause or meet, each with its exit code, and one-line descriptions.

Library code raises these (or ValueError / medinv.data.DataError / OSError); the entry points
(`medinv.core.cli.run`) print `describe(error)` as one line and exit with its code, and show
the traceback before it only when the environment variable MEDINV_DEBUG is set (`debug()`).

Exit codes: 2 = a usage, config or workdir error (ValueError and its subclasses here);
1 = the run could not finish: bad data (DataError), a diverged run, no space left or another
I/O error; 130 = interrupted.
"""
from __future__ import annotations

import errno
import os
import re

DEBUG_ENV = 'MEDINV_DEBUG'
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class DataError(ValueError):
  """A dataset file is missing, truncated or malformed, or a data option is invalid."""


class UsageError(ValueError):
  """A flag, config field or workdir the user gave is wrong (exit 2)."""


class WorkdirError(UsageError):
  """The workdir cannot be used: not a directory, not writable, or holding another run."""


class RunError(RuntimeError):
  """The run could not finish for a reason outside the code (exit 1)."""


class DivergedError(RunError):
  """Training produced a non-finite loss or parameters."""


class WriteError(RunError):
  """Writing a result or checkpoint failed (no space left, read-only filesystem, ...)."""

  def __init__(self, message: str, path: str, code: int | None = None):
    super().__init__(message)
    self.path = path
    self.errno = code


def debug() -> bool:
  """Whether MEDINV_DEBUG asks for tracebacks (set, and not '', '0' or 'false')."""
  return os.environ.get(DEBUG_ENV, '').strip().lower() not in ('', '0', 'false', 'no')


# tensorstore (under orbax) reports an OS error as text: "... [os_error_code='28']".
_OS_ERROR_CODE = re.compile(r"os_error_code='?(\d+)")
_QUOTED_PATH = re.compile(r'(?:Failed writing|local file):? "([^"]+)"')


def os_error_code(error: BaseException) -> int | None:
  """The errno behind an OSError, or behind an orbax/tensorstore error that quotes one."""
  if isinstance(error, OSError) and error.errno:
    return error.errno
  text = str(error)
  found = _OS_ERROR_CODE.search(text)
  if found:
    return int(found.group(1))
  if os.strerror(errno.ENOSPC) in text:
    return errno.ENOSPC
  return None


def write_error(error: BaseException, path: str) -> WriteError | None:
  """A WriteError naming `path` when `error` is an I/O failure (None for anything else)."""
  code = os_error_code(error)
  if code is None:
    return None
  return WriteError(f'{os.strerror(code)} while writing {path}', path, code)


def describe(error: BaseException) -> tuple[int, str] | None:
  """(exit code, message) for an error a user can act on; None for a bug (keep its traceback).

  DataError is checked before ValueError (it is one), so bad data exits 1, not 2.
  """
  if isinstance(error, KeyboardInterrupt):
    return EXIT_INTERRUPTED, 'interrupted; rerunning the same command resumes the run'
  if isinstance(error, (DataError, RunError)):
    return EXIT_FAILURE, str(error).strip()
  code = None if isinstance(error, OSError) else os_error_code(error)
  if code is not None:  # An orbax / tensorstore write that failed on an OS error.
    path = _QUOTED_PATH.search(str(error))
    return EXIT_FAILURE, f'{os.strerror(code)} while writing {path.group(1) if path else "?"}'
  if isinstance(error, ValueError):
    return EXIT_USAGE, str(error).strip()
  if isinstance(error, OSError):
    where = f' while writing {error.filename}' if error.filename else ''
    if error.errno == errno.ENOSPC:
      return EXIT_FAILURE, f'{os.strerror(errno.ENOSPC)}{where}'
    return EXIT_FAILURE, str(error).strip()
  return None
