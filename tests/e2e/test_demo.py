"""The study end to end (smoke): report.md's numbers against independent computations; a
rerun reuses finished parts; a changed part runs again; parts side by side in workers."""
import os
import re
import shutil

import numpy as np
import pytest
from scipy import stats

from configs import attribute_cardio
from configs import demo
from configs import membership_breastmnist
from medinv.study import runners
from medinv.study import study
from medinv.training import trainer


@pytest.fixture(scope='module')
def smoke_run(tmp_path_factory, data_dir):
  """The demo's smoke run; its membership_breastmnist part is configs/membership_breastmnist.py's
  smoke config unchanged (so tests/e2e/test_configs.py counts that config as run here)."""
  workdir = str(tmp_path_factory.mktemp('demo'))
  config = demo.get_config('smoke')
  assert config.parts.membership_breastmnist == membership_breastmnist.get_config('smoke')
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


def _part_tables(markdown: str, part: str) -> list[list[list[str]]]:
  """The tables of the report's section for `part` (its heading ends with (`part`))."""
  sections = re.split(r'^## ', markdown, flags=re.M)
  (section,) = [s for s in sections if s.splitlines()[0].endswith(f'(`{part}`)')]
  return _tables(section)


def _restore_target(part_config, workdir, part, tmp_path):
  """The part's trained target, restored from a copy of its checkpoints (nothing retrained)."""
  copy = str(tmp_path / part)
  shutil.copytree(os.path.join(workdir, part, 'target'), copy)
  return trainer.train_and_evaluate(part_config, copy)


def _row(table, first_cell):
  (line,) = [line for line in table[1:] if float(line[0]) == first_cell]
  return dict(zip(table[0], line))


def test_report_numbers_match_independent_computation(smoke_run, tmp_path):
  """report.md's numbers against what this test computes itself from the data and the saved
  target models (not against results.json, which is written from the same rows)."""
  config, workdir, _ = smoke_run
  report_md = open(os.path.join(workdir, 'report.md')).read()
  tables = _tables(report_md)
  # The first screen (medinv.study.verdict; tests/study/test_verdict.py), then the parts in
  # config order (attribute_heart, inversion_breastmnist, membership_breastmnist,
  # membership_heart). Attribute inference: sex; model inversion: inverse network, every
  # attack, noise-to-weight ratios (MI-FACE, left to the full run, has no table); per
  # membership part: undefended, against each defense, per subgroup.
  assert len(tables) == 1 + 1 + 3 + 3 * 2
  assert [len(_part_tables(report_md, part)) for part in config.parts] == [1, 3, 3, 3]
  assert 'mi_face' not in config.parts.inversion_breastmnist.attack.names
  assert 'feature_alignment' in config.parts.inversion_breastmnist.attack.names
  for table in tables:
    assert all(cell and cell != 'n/a' for row in table for cell in row), table

  # Attribute inference on sex: released labels at p = 0 are the model's own predictions.
  part = config.parts.attribute_heart
  assert tuple(part.attack.sensitive) == ('sex',) and part.attack.max_records == 0
  (attribute_table,) = _part_tables(report_md, 'attribute_heart')
  assert attribute_table[0][:5] == ['p', 'label ε per release', 'released acc.',
                                    'MAP (confusion)', 'MAP (indicator)']
  assert attribute_table[0][-1] == 'member gap (best attack)'
  assert [float(r[0]) for r in attribute_table[1:]] == pytest.approx(list(part.defense.flip_probs))
  trained = _restore_target(part, workdir, 'attribute_heart', tmp_path)
  members, test = trained.task.records_train, trained.task.records_test

  def predict(features):
    logits = trained.model.apply({'params': trained.params}, trained.task.scaler(features))
    return np.argmax(np.asarray(logits), -1)
  at_zero = _row(attribute_table, 0.0)
  test_accuracy = np.mean(predict(test.features) == test.labels)
  assert float(at_zero['released acc.']) == pytest.approx(test_accuracy, abs=6e-4)
  # MAP with the indicator likelihood (mismatch 1e-3): the one candidate whose query
  # reproduces the released label, else the prior's most common value (men, 207 of 303).
  column = members.column_index('sex')
  candidates = members.columns[column].candidates
  released = predict(members.features)
  reproduces = []
  for value in candidates:
    queried = members.features.copy()
    queried[:, column] = value
    reproduces.append(predict(queried) == released)
  reproduces = np.stack(reproduces, 1)
  majority = int(np.argmax(np.bincount(members.columns[column].candidate_index(
      members.features[:, column]))))
  guess = np.where(reproduces.sum(1) == 1, np.argmax(reproduces, 1), majority)
  map_accuracy = np.mean(candidates[guess] == members.features[:, column])
  assert float(at_zero['MAP (indicator)']) == pytest.approx(map_accuracy, abs=6e-4)
  # p = 1/2 on two classes releases a coin flip: the confusion-weighted MAP, which knows the
  # release channel, falls back to the prior's guess.
  prior_accuracy = np.mean(members.features[:, column] == candidates[majority])
  for name in ('MAP (confusion)', 'prior guess'):
    assert float(_row(attribute_table, 0.5)[name]) == pytest.approx(prior_accuracy, abs=6e-4), name
  # ε = ln((1 - p)(k - 1) / p) for k = 2 classes.
  assert [r[1] for r in attribute_table[1:]] == ['inf', f'{np.log(3):.3f}', '0.000']

  # Model inversion: at sigma 0 the deployed model is the target itself.
  part = config.parts.inversion_breastmnist
  perturbation = part.defense.model_perturbation
  inverse_table = _part_tables(report_md, 'inversion_breastmnist')[0]
  assert inverse_table[0][:4] == ['split', 'attacker', 'σ',
                                  f'model acc. ({perturbation.modes[0]})']
  views = {line[1] for line in inverse_table[1:]}  # every view that ran, the paper's marked
  assert views == {'queries the deployed model', 'trained before the defense (paper)'}
  assert len(inverse_table) - 1 == (len(part.attack.splits) * len(perturbation.strengths)
                                    * len(part.attack.knows_defense))
  trained = _restore_target(part, workdir, 'inversion_breastmnist', tmp_path)
  logits = trained.model.apply({'params': trained.params}, trained.task.x_test)
  test_accuracy = np.mean(np.argmax(np.asarray(logits), -1) == trained.task.y_test)
  at_zero = [dict(zip(inverse_table[0], line)) for line in inverse_table[1:]
             if float(line[2]) == 0.0]
  assert len(at_zero) == len(part.attack.splits) * len(views)
  for row in at_zero:
    for mode in perturbation.modes:
      assert float(row[f'model acc. ({mode})']) == pytest.approx(test_accuracy, abs=6e-4)

  # Membership inference: the loss threshold's AUC is the Mann-Whitney statistic of the
  # target's losses (records.csv), members against non-members (lower loss = member).
  for name in ('membership_heart', 'membership_breastmnist'):
    records = np.genfromtxt(os.path.join(workdir, name, 'records.csv'), delimiter=',',
                            names=True, dtype=None, encoding=None)
    member = records['member'].astype(str) == 'True'
    u = stats.mannwhitneyu(-records['target_loss'][member], -records['target_loss'][~member])
    auc = u.statistic / (member.sum() * (~member).sum())
    undefended, defended, _ = _part_tables(report_md, name)
    assert undefended[0][:3] == ['attack', 'shadows', 'AUC']
    row = dict(zip(undefended[0], next(r for r in undefended if r[0] == 'loss_threshold')))
    assert float(row['AUC'].split()[0]) == pytest.approx(auc, abs=6e-4), name
    assert {r[0] for r in defended[1:]} == {'none', *config.parts[name].defense.names}

  for link in re.findall(r'!\[[^\]]*\]\(([^)]+)\)', report_md):
    assert os.path.isfile(os.path.join(workdir, link)), link
  assert 'privacy_utility.png' in report_md and 'recon_inverse_network.png' in report_md


def _mtimes(workdir):
  return {part: os.stat(os.path.join(workdir, part, 'results.json')).st_mtime_ns
          for part in ('attribute_heart', 'inversion_breastmnist')}


def test_rerun_reuses_finished_parts(smoke_run, capsys):
  config, workdir, results = smoke_run
  before = _mtimes(workdir)
  again = study.run(config, workdir)
  assert capsys.readouterr().out.count('reused earlier results') == len(config.parts)
  assert _mtimes(workdir) == before  # Neither part's results were rewritten.
  assert again['rows'] == results['rows']


def test_changed_part_config_is_rerun(smoke_run, tmp_path):
  """A copy of the finished run, rerun with other flip probabilities for attribute_heart: that
  part runs again (its target resumed, not retrained), the other part is reused."""
  config, workdir, results = smoke_run
  copy = str(tmp_path / 'demo')
  shutil.copytree(workdir, copy)
  before = _mtimes(copy)
  checkpoints = sorted(os.listdir(os.path.join(copy, 'attribute_heart', 'target', 'checkpoints')))
  changed = config.copy_and_resolve_references()
  changed.parts.attribute_heart.defense.flip_probs = (0.0, 0.5)
  rerun = study.run(changed, copy)
  after = _mtimes(copy)
  assert after['inversion_breastmnist'] == before['inversion_breastmnist']
  assert after['attribute_heart'] != before['attribute_heart']
  assert sorted(os.listdir(os.path.join(copy, 'attribute_heart', 'target', 'checkpoints'))) == (
      checkpoints)
  attribute_rows = [r for r in rerun['rows'] if r['part'] == 'attribute_heart']
  assert sorted({r['flip_prob'] for r in attribute_rows}) == [0.0, 0.5]
  assert [r for r in rerun['rows'] if r['part'] == 'inversion_breastmnist'] == [
      r for r in results['rows'] if r['part'] == 'inversion_breastmnist']
  # Same target, same seed: the MAP attack at p = 0 gives what the first run gave.
  def map_at_zero(rows):
    return sorted((r['targets'], r['variant'], r['attack_accuracy']) for r in rows
                  if r['part'] == 'attribute_heart' and r['attack'] == 'map'
                  and r['flip_prob'] == 0)
  assert map_at_zero(rerun['rows']) == map_at_zero(results['rows'])
  (attribute_table,) = _part_tables(open(os.path.join(copy, 'report.md')).read(),
                                    'attribute_heart')
  assert [float(r[0]) for r in attribute_table[1:]] == [0.0, 0.5]


def test_unknown_part_kind():
  with pytest.raises(ValueError, match='must start with one of'):
    runners.for_part('attack_heart')


def test_two_workers_give_the_rows_of_one(tmp_path, data_dir):
  """The study's parts side by side in worker processes (study_workers) write the results a
  run in this process writes; a part whose dataset is missing is skipped either way."""
  config = demo.get_config('smoke')
  for name in ('inversion_breastmnist', 'membership_breastmnist'):
    del config.parts[name]
  config.parts.attribute_cardio = attribute_cardio.get_config('smoke')
  config.parts.attribute_cardio.data.manual_dir = str(tmp_path / 'empty')  # no cardio_train.csv
  os.makedirs(config.parts.attribute_cardio.data.manual_dir)
  runs = {}
  for workers in (1, 2):
    changed = config.copy_and_resolve_references()
    changed.workers = workers
    for part in changed.parts.values():
      part.data.data_dir = data_dir
    # A data_dir of its own: the session's shared one may already hold a built cardio.
    changed.parts.attribute_cardio.data.data_dir = str(tmp_path / 'tfds_no_cardio')
    assert study.num_workers(changed) == workers
    runs[workers] = study.run(changed, str(tmp_path / f'w{workers}'))
  drop = lambda rows: [{k: v for k, v in r.items() if 'seconds' not in k} for r in rows]
  assert drop(runs[2]['rows']) == drop(runs[1]['rows'])
  assert {r['part'] for r in runs[2]['rows']} == {'attribute_heart', 'membership_heart'}
  assert (runs[2]['metrics']['attribute_cardio.skipped']
          == runs[1]['metrics']['attribute_cardio.skipped'])
  assert 'is empty' in runs[2]['metrics']['attribute_cardio.skipped']

