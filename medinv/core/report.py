"""Run outputs: config.json, results.json (one schema for all experiments), results.csv.

results.json = {"schema": "medinv.results/1", "experiment": str, "wall_seconds": float,
                "metrics": {name: number}, "rows": [{column: value}, ...]}
results.csv holds `rows` (one line per row, the union of their keys as columns).
Every write goes to a temporary file first and is renamed into place; a write that fails (no
space left, read-only filesystem) removes its temporary file, leaves the previous file intact
and raises errors.WriteError naming the path. config.json and results.json stay a pair: while
a workdir holds results of another config, the new config waits in config.pending.json and
replaces config.json only together with the new results (a failed or killed run leaves the
previous pair as it was). In a multi-process run every process calls `write_config` /
`write_results` and gets the same results dict; only process 0 writes the files.
"""
from __future__ import annotations

import csv
import errno
import io
import json
import math
import os
import secrets
import tempfile

from medinv.core import distributed
from medinv.core import errors

SCHEMA = 'medinv.results/1'
PENDING_CONFIG = 'config.pending.json'


def check_workdir(workdir: str) -> None:
  """Creates workdir if needed; WorkdirError naming it when it is no writable directory."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise errors.WorkdirError(f'workdir {workdir!r} exists and is not a directory; pass '
                              'another --workdir')
  try:
    os.makedirs(workdir, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=workdir, prefix='.write-check-'):
      pass
  except OSError as e:
    if errors.os_error_code(e) == errno.ENOSPC:
      raise errors.WriteError(f'No space left on device while writing in workdir {workdir!r}',
                              workdir, errno.ENOSPC) from e
    raise errors.WorkdirError(f'workdir {workdir!r} is not writable ({e.strerror or e}); pass '
                              'a writable --workdir') from e


def _write_temp(path: str, text: str | bytes) -> str:
  """Writes text into a new temporary file beside path; returns its name (removed on failure)."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  tmp = os.path.join(directory, f'.{os.path.basename(path)}.{os.getpid()}.'
                     f'{secrets.token_hex(4)}.tmp')
  fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # The umask applies.
  try:
    _fill(fd, text.encode() if isinstance(text, str) else text)
  except BaseException:
    os.remove(tmp)
    raise
  return tmp


def _fill(fd: int, data: bytes) -> None:
  """Writes data to the open file descriptor fd and closes it."""
  with os.fdopen(fd, 'wb') as f:
    f.write(data)


def write_atomic_files(files: dict[str, str | bytes]) -> None:
  """Writes every {path: text} into temporary files, then renames them into place in order.

  Nothing is replaced unless every file was written; on failure the temporary files are
  removed and an I/O error becomes errors.WriteError naming the path.
  """
  written, current = {}, ''
  try:
    for path, text in files.items():
      current = path
      written[path] = _write_temp(path, text)
    for path, tmp in written.items():
      current = path
      os.replace(tmp, path)
  except BaseException as e:
    for tmp in written.values():
      if os.path.exists(tmp):
        os.remove(tmp)
    failure = errors.write_error(e, current) if isinstance(e, OSError) else None
    if failure is None:
      raise
    raise failure from e


def write_atomic(path: str, text: str | bytes) -> None:
  """Writes path through a temporary file and a rename (see write_atomic_files)."""
  write_atomic_files({path: text})


def jsonable(value):
  if hasattr(value, 'item'):
    value = value.item()
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)  # 'inf' / 'nan': JSON has no such numbers.
  return value


def _config_text(config) -> str:
  return json.dumps(config.to_dict(), indent=2, sort_keys=True) + '\n'


def write_config(workdir: str, config) -> None:
  """Checks the workdir and records the run's config (process 0).

  Beside results.json of another config, the config goes to config.pending.json; it becomes
  config.json when `write_results` writes the new results.
  """
  if not distributed.is_writer():
    return
  check_workdir(workdir)
  path, pending = os.path.join(workdir, 'config.json'), os.path.join(workdir, PENDING_CONFIG)
  results_beside = os.path.exists(os.path.join(workdir, 'results.json'))
  if results_beside and not _matches(path, config):
    write_atomic(pending, _config_text(config))
    return
  write_atomic(path, _config_text(config))
  if os.path.exists(pending):
    os.remove(pending)


def rows_to_csv(rows: list[dict]) -> str:
  columns = list(dict.fromkeys(key for row in rows for key in row))
  out = io.StringIO()
  writer = csv.DictWriter(out, fieldnames=columns, lineterminator='\n')
  writer.writeheader()
  for row in rows:
    writer.writerow({k: jsonable(v) for k, v in row.items()})
  return out.getvalue()


def write_results(workdir: str, experiment: str, metrics: dict, rows: list[dict],
                  wall_seconds: float) -> dict:
  """Writes results.json and results.csv (process 0; a barrier for all); returns the dict."""
  results = {
      'schema': SCHEMA, 'experiment': experiment, 'wall_seconds': round(wall_seconds, 3),
      'metrics': {k: jsonable(v) for k, v in metrics.items()},
      'rows': [{k: jsonable(v) for k, v in row.items()} for row in rows],
  }
  if distributed.is_writer():
    files = {}
    pending = os.path.join(workdir, PENDING_CONFIG)
    if os.path.exists(pending):
      with open(pending, 'rb') as f:
        files[os.path.join(workdir, 'config.json')] = f.read()
    files[os.path.join(workdir, 'results.json')] = json.dumps(results, indent=2) + '\n'
    files[os.path.join(workdir, 'results.csv')] = rows_to_csv(results['rows'])
    write_atomic_files(files)
    if os.path.exists(pending):
      os.remove(pending)
  distributed.sync(f'results_written:{workdir}')
  return results


def _matches(config_path: str, config) -> bool:
  """Whether the config file at config_path was written for this config."""
  try:
    with open(config_path) as f:
      return json.load(f) == json.loads(json.dumps(config.to_dict()))
  except (OSError, ValueError):
    return False


def same_config(run_dir: str, config) -> bool:
  """Whether run_dir's latest run (config.pending.json if a run is unfinished beside older
  results, else config.json) was written for this config."""
  pending = os.path.join(run_dir, PENDING_CONFIG)
  return _matches(pending if os.path.exists(pending) else os.path.join(run_dir, 'config.json'),
                  config)


def completed_results(run_dir: str, config) -> dict | None:
  """The run's results when results.json is complete and was written for this config."""
  try:
    with open(os.path.join(run_dir, 'results.json')) as f:
      results = json.load(f)
  except (OSError, ValueError):
    return None
  if results.get('schema') != SCHEMA or 'rows' not in results:
    return None
  return results if _matches(os.path.join(run_dir, 'config.json'), config) else None
