"""A user's own CSV from the command line: the full UCI heart-disease table (920 records, four
hospitals, text categories, empty cells, num 0-4) under configs/schemas/heart_disease_uci.py,
studied by attribute and membership inference (configs/study_csv.py, smoke), with the report."""
import csv
import os
import re
import subprocess
import sys

import pytest

from configs import common

FILE = 'heart_disease_uci.csv'


def test_uci_table_study_from_the_command_line(tmp_path, shared_data, data_dir):
  folder = os.path.join(shared_data, 'heart')
  if not os.path.isfile(os.path.join(folder, FILE)):
    pytest.skip(f'{folder}/{FILE} is absent (see ../shared/data/SOURCES.md)')
  workdir = tmp_path / 'study'
  command = [sys.executable, '-m', 'experiments.demo', '--config',
             'configs/study_csv.py:smoke,schema=configs/schemas/heart_disease_uci.py',
             f'--manual_dir={folder}', f'--workdir={workdir}']
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
  with open(workdir / 'membership_csv' / 'splits.csv') as f:
    splits = list(csv.DictReader(f))
  with open(os.path.join(folder, FILE)) as f:
    lines = {row['id']: i + 2 for i, row in enumerate(csv.DictReader(f))}
  assert len(splits) == 827  # 920 minus 93 records with a missing numeric cell (schema: drop)
  assert all(lines[row['id']] == int(row['line']) for row in splits)
  assert {row['split'] for row in splits} == {'train', 'test'}
