"""A user's own CSV from the command line: the full UCI heart-disease table (920 records, four
hospitals, text categories, empty cells, num 0-4) under configs/schemas/heart_disease_uci.py,
studied by attribute and membership inference (configs/study_csv.py, smoke: its parts
attribute_csv and membership_csv, and their target, train_csv), with the report.

Without ../shared/data/heart/heart_disease_uci.csv the same runs on a synthetic table in its
layout (tests/fixture_files.py), so the study's configs always run here."""
import csv
import os
import re
import subprocess
import sys

import pytest

from configs import common
from configs import study_csv
from configs import train_csv

import fixture_files

FILE = 'heart_disease_uci.csv'


@pytest.fixture(scope='module')
def table_folder(shared_data, tmp_path_factory):
  """(folder holding heart_disease_uci.csv, whether it is the real UCI table)."""
  folder = os.path.join(shared_data, 'heart')
  if os.path.isfile(os.path.join(folder, FILE)):
    return folder, True
  return str(fixture_files.write_heart_uci(tmp_path_factory.mktemp('uci')).parent), False


def test_uci_table_study_from_the_command_line(tmp_path, table_folder, data_dir):
  folder, real = table_folder
  parts = study_csv.get_config('smoke').parts
  target = train_csv.get_config('smoke')
  for part in (parts.attribute_csv, parts.membership_csv):  # both train train_csv's target
    assert part.train == target.train and part.data == target.data and part.model == target.model
  workdir = tmp_path / 'study'
  command = [sys.executable, '-m', 'experiments.demo', '--config',
             'configs/study_csv.py:smoke,schema=configs/schemas/heart_disease_uci.py',
             f'--manual_dir={folder}', f'--workdir={workdir}',
             '--config.parts.membership_csv.defense.names=()']  # undefended: for time
  env = dict(os.environ, PYTHONPATH=common.REPO, MEDINV_DATA_DIR=data_dir)
  done = subprocess.run(command, cwd=common.REPO, env=env, capture_output=True, text=True)
  assert done.returncode == 0, done.stderr[-3000:]
  report = (workdir / 'report.md').read_text()
  assert '# medinv study: heart_disease_uci.csv' in report
  assert f'## Attribute inference: csv:{FILE} (`attribute_csv`)' in report
  assert f'## Membership inference: csv:{FILE} (`membership_csv`)' in report
  for attribute, values in (('age', 4), ('cp', 4), ('restecg', 4), ('sex', 2)):
    assert re.search(rf'\*\*{attribute}\*\* \({values} values\)\n\n\| p \|', report), attribute
  assert re.search(r'\| label \| disease \| \d+ \| \d+ \| 0\.\d{3} \[', report)
  assert re.search(r'\| sex \| Female \| \d+ \| \d+ \| 0\.\d{3} \[', report)
  target_dir = workdir / 'attribute_csv' / 'target'
  assert (target_dir / 'results.json').exists()  # train_csv's smoke target, trained here
  with open(workdir / 'membership_csv' / 'splits.csv') as f:
    splits = list(csv.DictReader(f))
  with open(os.path.join(folder, FILE)) as f:
    rows = list(csv.DictReader(f))
  lines = {row['id']: i + 2 for i, row in enumerate(rows)}
  complete = [r for r in rows if all(r[c] for c in ('trestbps', 'chol', 'thalch', 'oldpeak'))]
  assert len(splits) == len(complete) == (827 if real else len(complete))  # schema: drop
  assert all(lines[row['id']] == int(row['line']) for row in splits)
  assert {row['split'] for row in splits} == {'train', 'test'}
