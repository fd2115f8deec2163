"""The study end to end (smoke): report.md tables agree with results.json; a rerun reuses."""
import json
import os
import re

import pytest

from configs import demo
from medinv import report
from medinv import runners
from medinv import study


@pytest.fixture(scope='module')
def smoke_run(tmp_path_factory, data_dir):
  workdir = str(tmp_path_factory.mktemp('demo'))
  config = demo.get_config('smoke')
  for part in config.parts.values():
    part.data.data_dir = data_dir
  results = study.run(config, workdir)
  return config, workdir, results


def _tables(markdown: str) -> list[list[list[str]]]:
  """Every markdown table as a list of rows of cell strings (header included)."""
  tables, current = [], []
  for line in markdown.splitlines() + ['']:
    if line.startswith('|'):
      if not set(line) <= set('|-'):
        current.append([c.strip() for c in line.strip('|').split('|')])
    elif current:
      tables.append(current)
      current = []
  return tables


def test_report_tables_match_results(smoke_run):
  config, workdir, results = smoke_run
  report = open(os.path.join(workdir, 'report.md')).read()
  on_disk = json.load(open(os.path.join(workdir, 'results.json')))
  assert on_disk['experiment'] == 'study' and on_disk['rows'] == results['rows']
  tables = _tables(report)
  assert len(tables) == 3  # AIA (sex), inverse network, every attack.
  for table in tables:
    assert all(cell and cell != 'n/a' for row in table for cell in row), table
  rows = on_disk['rows']

  aia_table = tables[0]
  assert aia_table[0][:4] == ['p', 'ε', 'released acc.', 'MAP (confusion)']
  flip_probs = list(config.parts.aia_heart.defense.flip_probs)
  assert [float(r[0]) for r in aia_table[1:]] == pytest.approx(flip_probs)
  for line in aia_table[1:]:
    match = [r for r in rows if r['part'] == 'aia_heart' and r['targets'] == 'members'
             and r['attack'] == 'map' and r['variant'] == 'confusion'
             and r['flip_prob'] == pytest.approx(float(line[0]))]
    assert len(match) == 1
    assert float(line[3]) == pytest.approx(match[0]['attack_accuracy'], abs=6e-4)
    assert float(line[2]) == pytest.approx(match[0]['release_test_accuracy'], abs=6e-4)

  inverse_table = tables[1]
  for line in inverse_table[1:]:
    split, sigma = int(line[0]), float(line[1])
    match = [r for r in rows if r['part'] == 'mia_breastmnist' and r['attack'] ==
             'inverse_network' and r['split'] == split and r['sigma'] == sigma and
             r['mode'] == 'fixed' and r['knows_defense']]
    assert len(match) == 1
    assert float(line[5]) == pytest.approx(match[0]['ssim_mean'], abs=6e-4)
    assert float(line[2]) == pytest.approx(match[0]['model_test_accuracy'], abs=6e-4)
  assert len(inverse_table) - 1 == (len(config.parts.mia_breastmnist.attack.splits) *
                                    len(config.parts.mia_breastmnist.defense.sigmas))

  for link in re.findall(r'!\[[^\]]*\]\(([^)]+)\)', report):
    assert os.path.isfile(os.path.join(workdir, link)), link
  assert 'privacy_utility.png' in report and 'recon_inverse_network.png' in report
  csv_lines = open(os.path.join(workdir, 'results.csv')).read().splitlines()
  assert len(csv_lines) == len(rows) + 1 and csv_lines[0].startswith('part,')


def test_rerun_reuses_finished_parts(smoke_run, capsys):
  config, workdir, results = smoke_run
  again = study.run(config, workdir)
  assert 'reused earlier results' in capsys.readouterr().out
  assert again['rows'] == results['rows']


def test_changed_part_config_is_rerun(smoke_run, tmp_path):
  config, workdir, _ = smoke_run
  part_dir = os.path.join(workdir, 'aia_heart')
  part = config.parts.aia_heart
  assert report.completed_results(part_dir, part) is not None
  changed = part.copy_and_resolve_references()
  changed.defense.flip_probs = (0.0, 0.5)
  assert report.completed_results(part_dir, changed) is None


def test_unknown_part_kind():
  with pytest.raises(ValueError, match='must start with one of'):
    runners.for_part('attack_heart')
