"""Run outputs: config.json, results.json (one schema for all experiments), results.csv.

results.json = {"schema": "medinv.results/1", "experiment": str, "wall_seconds": float,
                "metrics": {name: number}, "rows": [{column: value}, ...]}
results.csv holds `rows` (one line per row, the union of their keys as columns).
Every write goes to a temporary file first and is renamed into place. In a multi-process run
every process calls `write_config` / `write_results` and gets the same results dict; only
process 0 writes the files.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile

from medinv import distributed

SCHEMA = 'medinv.results/1'


def write_atomic(path: str, text: str | bytes) -> None:
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  mode = 'wb' if isinstance(text, bytes) else 'w'
  with tempfile.NamedTemporaryFile(mode, dir=directory, delete=False, suffix='.tmp') as f:
    f.write(text)
    tmp = f.name
  os.replace(tmp, path)


def _jsonable(value):
  if hasattr(value, 'item'):
    value = value.item()
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)  # 'inf' / 'nan': JSON has no such numbers.
  return value


def write_config(workdir: str, config) -> None:
  if distributed.is_writer():
    write_atomic(os.path.join(workdir, 'config.json'),
                 json.dumps(config.to_dict(), indent=2, sort_keys=True) + '\n')


def rows_to_csv(rows: list[dict]) -> str:
  columns = list(dict.fromkeys(key for row in rows for key in row))
  out = io.StringIO()
  writer = csv.DictWriter(out, fieldnames=columns, lineterminator='\n')
  writer.writeheader()
  for row in rows:
    writer.writerow({k: _jsonable(v) for k, v in row.items()})
  return out.getvalue()


def write_results(workdir: str, experiment: str, metrics: dict, rows: list[dict],
                  wall_seconds: float) -> dict:
  """Writes results.json and results.csv (process 0; a barrier for all); returns the dict."""
  results = {
      'schema': SCHEMA, 'experiment': experiment, 'wall_seconds': round(wall_seconds, 3),
      'metrics': {k: _jsonable(v) for k, v in metrics.items()},
      'rows': [{k: _jsonable(v) for k, v in row.items()} for row in rows],
  }
  if distributed.is_writer():
    write_atomic(os.path.join(workdir, 'results.json'), json.dumps(results, indent=2) + '\n')
    write_atomic(os.path.join(workdir, 'results.csv'), rows_to_csv(results['rows']))
  distributed.sync(f'results_written:{workdir}')
  return results


def same_config(run_dir: str, config) -> bool:
  """Whether run_dir/config.json was written for this config."""
  try:
    with open(os.path.join(run_dir, 'config.json')) as f:
      return json.load(f) == json.loads(json.dumps(config.to_dict()))
  except (OSError, ValueError):
    return False


def completed_results(run_dir: str, config) -> dict | None:
  """The run's results when results.json is complete and was written for this config."""
  try:
    with open(os.path.join(run_dir, 'results.json')) as f:
      results = json.load(f)
  except (OSError, ValueError):
    return None
  if results.get('schema') != SCHEMA or 'rows' not in results:
    return None
  return results if same_config(run_dir, config) else None
