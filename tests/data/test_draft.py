"""Drafting a schema file from a CSV (medinv.data.draft, experiments/draft_schema.py)."""
import os
import subprocess
import sys

import numpy as np

from configs import common
from medinv import data
from medinv.core import errors
from medinv.data import draft

import fixture_files
from experiment_runs import error_line


def test_draft_describes_the_file_and_loads_as_written(tmp_path):
  path = fixture_files.write_heart_uci(tmp_path, num_records=80)
  schema_file = tmp_path / 'schema.py'
  schema_file.write_text(draft.draft(str(path)))
  config = common.csv_data(str(schema_file))
  schema = config.schema
  assert config.path == str(path)
  assert (schema.label, schema.positive, schema.id) == ('num', '', 'id')
  assert schema.categorical.sex == ('Female', 'Male')
  assert schema.categorical.ca == (0, 1, 2, 3)  # few integer values: categorical
  ages = [int(row[1]) for row in fixture_files.heart_uci_rows(80)]
  assert schema.numeric.age == (min(ages), max(ages))  # observed, marked CHECK
  assert 'CHECK' in schema_file.read_text()
  loaded = data.load_records('csv', path=config.path, schema=schema)  # drops missing cells
  complete = [row for row in fixture_files.heart_uci_rows(80) if all(row)]
  assert len(loaded) == len(complete)
  np.testing.assert_array_equal(loaded.ids, [row[0] for row in complete])


def test_draft_command_writes_and_refuses_to_overwrite(tmp_path):
  path = fixture_files.write_heart_uci(tmp_path, num_records=30)
  out = tmp_path / 'drafted.py'
  command = [sys.executable, '-m', 'experiments.draft_schema', f'--csv={path}', f'--out={out}']
  env = dict(os.environ, PYTHONPATH=common.REPO)
  first = subprocess.run(command, cwd=common.REPO, env=env, capture_output=True, text=True)
  assert first.returncode == 0, first.stderr
  assert out.read_text() == draft.draft(str(path))
  again = subprocess.run(command, cwd=common.REPO, env=env, capture_output=True, text=True)
  error_line(again, errors.EXIT_USAGE, str(out), 'exists; pass --force')
