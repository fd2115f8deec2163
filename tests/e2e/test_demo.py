"""The study end to end (smoke): report.md's numbers and its first screen against independent
computations; a rerun reuses finished parts; a changed part runs again; parts side by side in
workers."""
import csv
import math
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


def _section(markdown: str, part: str) -> str:
  """The report's section for `part` (its heading ends with (`part`))."""
  sections = re.split(r'^## ', markdown, flags=re.M)
  (section,) = [s for s in sections if s.splitlines()[0].endswith(f'(`{part}`)')]
  return section


def _part_tables(markdown: str, part: str) -> list[list[list[str]]]:
  """The tables of the report's section for `part`."""
  return _tables(_section(markdown, part))


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
  # The target's accuracy beside its majority class and the published references.
  majority_class = np.max(np.bincount(test.labels)) / len(test.labels)
  assert (f'Target MLP test accuracy {test_accuracy:.3f} (no DP-SGD, ε = inf) (majority class '
          f'{majority_class:.3f}; published: CLASSIT 0.789, instance-based NTgrowth 0.770'
          in _section(report_md, 'attribute_heart'))
  assert 'published: CLASSIT 0.789' in _section(report_md, 'membership_heart')
  assert 'published: ResNet-18 at 28x28 0.863' in _section(report_md, 'inversion_breastmnist')
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


def _number(cell: str) -> float:
  return math.nan if cell in ('', 'nan') else float(cell)


def _wilson(correct: int, n: int) -> tuple[float, float]:
  z = 1.959963984540054
  p = correct / n
  centre = (p + z * z / (2 * n)) / (1 + z * z / n)
  half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
  return centre - half, centre + half


def _newcombe(accuracy: float, baseline: float, n: int) -> tuple[float, float]:
  k1, k2 = round(accuracy * n), round(baseline * n)
  (l1, u1), (l2, u2) = _wilson(k1, n), _wilson(k2, n)
  d = (k1 - k2) / n
  return (d - math.hypot(k1 / n - l1, u2 - k2 / n), d + math.hypot(u1 - k1 / n, k2 / n - l2))


def _candidates(kind: str, rows: list[dict]) -> dict:
  """{(defense label, strength): [(attack, advantage, low, high, accuracy), ...]}."""
  out = {}
  if kind == 'attribute':
    for r in rows:
      if r['targets'] == 'members':
        n = int(r['n'])
        low, high = _newcombe(float(r['attack_accuracy']),
                              float(r['best_baseline_accuracy']), n)
        out.setdefault(('randomized_response', float(r['flip_prob'])), []).append(
            (f'{r["attack"]} ({r["variant"]}) on {r["attribute"]}', float(r['advantage']),
             low, high, float(r['release_test_accuracy'])))
  elif kind == 'inversion':
    (base,) = [float(r['ssim_mean']) for r in rows
               if r['attack'] == 'mean_aux_image' and r['reference'] == 'target']
    attacked = [r for r in rows if r['defense'] and r['reference'] == 'target']
    at_zero = [r for r in attacked if float(r['strength']) == 0]
    split = max(at_zero, key=lambda r: float(r['ssim_mean']))['split']
    views = {'True': 'queries the deployed model', 'False': 'trained before the defense (paper)',
             '': 'passive (no queries)'}
    for r in attacked:
      if r['split'] == split:
        mode = f' ({r["mode"]})' if r['mode'] else ''
        out.setdefault((r['defense'] + mode, float(r['strength'])), []).append(
            (f'{r["attack"]} (split {split}, {views[r["knows_defense"]]})',
             float(r['ssim_mean']) - base, _number(r['ssim_low']) - base,
             _number(r['ssim_high']) - base, float(r['model_test_accuracy'])))
  else:
    for r in rows:
      if r['subgroup'] == 'all':
        mode = f' ({r["mode"]})' if r['mode'] else ''
        out[(r['defense'] + mode, float(r['strength']))] = [(
            r['strongest_attack'], float(r['strongest_auc']) - 0.5,
            float(r['strongest_auc_low']) - 0.5, float(r['strongest_auc_high']) - 0.5,
            float(r['defended_test_accuracy']))]
  return out


def _expected(kind: str, rows: list[dict]) -> list[tuple]:
  """(defense, strength, attack, advantage, low, high, reached?, accuracy) per line."""
  best = {}
  for key, candidates in _candidates(kind, rows).items():
    top = candidates[[c[1] for c in candidates].index(max(c[1] for c in candidates))]
    best[key] = (top[0], top[1], max(c[2] for c in candidates),
                 max(c[3] for c in candidates), top[4])
  # Model inversion runs strength 0 once per mode: the same undefended model.
  undefended = max((v for k, v in best.items() if k[1] == 0), key=lambda v: v[1])
  lines = [('none', 0.0, *undefended[:4], undefended[2] <= 0, undefended[4])]
  for label in dict.fromkeys(k[0] for k in best if k[1] > 0):
    strengths = sorted(k[1] for k in best if k[0] == label and k[1] > 0)
    reached = [s for s in strengths if best[(label, s)][2] <= 0]
    strength = reached[0] if reached else strengths[-1]
    lines.append((label, strength, *best[(label, strength)][:4], bool(reached),
                  best[(label, strength)][4]))
  return lines


def _first_table(markdown: str) -> list[dict]:
  """The first screen's table: one dict of cells per line."""
  block = next(b for b in markdown.split('\n\n') if b.startswith('| part | data |'))
  lines = [[c.strip() for c in line.strip('|').split('|')] for line in block.splitlines()]
  return [dict(zip(lines[0], line)) for line in lines[2:]]


def test_first_screen_matches_results_csv_recomputed(smoke_run):
  """The first screen (medinv.study.verdict; hand-worked rows in tests/study/test_verdict.py)
  recomputed from results.csv with this test's own code: the csv module, its own Wilson and
  Newcombe intervals."""
  config, workdir, _ = smoke_run
  with open(os.path.join(workdir, 'results.csv')) as f:
    rows = list(csv.DictReader(f))
  report = open(os.path.join(workdir, 'report.md')).read()
  assert report.startswith('# medinv study: heart_disease, breastmnist\n')
  assert config.notes and all(f'*{note}*' in report for note in config.notes)
  table = _first_table(report)
  expected = []
  for part in config.parts:
    kind = part.split('_')[0]
    mine = [r for r in rows if r['part'] == part]
    for line in _expected(kind, mine):
      expected.append((part, config.parts[part].data.dataset, *line))
  assert len(table) == len(expected) == 11  # 2 attribute, 3 inversion, 3 + 3 membership
  for got, (part, data, defense, strength, attack, advantage, low, high, reached, accuracy) in (
      zip(table, expected)):
    assert got['part'].endswith(f'(`{part}`)') and got['data'] == data, got
    assert (got['defense'], float(got['strength']), got['strongest attack']) == (
        defense, strength, attack), got
    numbers = [float(x) for x in re.findall(r'-?\d+\.\d+', got['advantage [95% interval]'])]
    assert numbers == pytest.approx([advantage, low, high], abs=6e-4), got
    assert float(got['model accuracy'].split()[0]) == pytest.approx(accuracy, abs=6e-4), got
    if defense == 'none':
      assert got['reaches the baseline'] == ('yes, even undefended' if reached else 'no'), got
    else:
      assert (got['reaches the baseline'] == 'yes') == reached, got
      assert got['reaches the baseline'].startswith('yes' if reached else 'none of the'), got
  # Some strength of some defense in the smoke run reaches the baseline and some does not, so
  # both kinds of line were compared.
  assert {line[-2] for line in expected if line[2] != 'none'} == {True, False}


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


def test_two_workers_give_the_rows_of_one(smoke_run, tmp_path):
  """The study's heart parts side by side in worker processes (study_workers) write the rows
  the smoke run (one worker, this process) wrote; a part whose dataset is missing is skipped
  with a line saying why, in a worker as in this process."""
  config, _, one_worker = smoke_run
  changed = config.copy_and_resolve_references()
  for name in ('inversion_breastmnist', 'membership_breastmnist'):
    del changed.parts[name]
  changed.parts.attribute_cardio = attribute_cardio.get_config('smoke')
  empty = tmp_path / 'empty'  # no cardio_train.csv
  empty.mkdir()
  changed.parts.attribute_cardio.data.update(
      manual_dir=str(empty),
      data_dir=str(tmp_path / 'tfds_no_cardio'))  # The session's may already hold a cardio.
  changed.workers = 2
  assert study.num_workers(changed) == 2
  two_workers = study.run(changed, str(tmp_path / 'w2'))
  drop = lambda rows: [{k: v for k, v in r.items() if 'seconds' not in k} for r in rows
                       if r['part'] in ('attribute_heart', 'membership_heart')]
  assert drop(two_workers['rows']) == drop(one_worker['rows'])
  assert {r['part'] for r in two_workers['rows']} == {'attribute_heart', 'membership_heart'}
  skipped = two_workers['metrics']['attribute_cardio.skipped']
  assert 'is empty' in skipped and str(empty) in skipped, skipped
  alone = changed.copy_and_resolve_references()  # The skip in this process: the same line.
  for name in ('attribute_heart', 'membership_heart'):
    del alone.parts[name]
  alone.workers = 1
  in_process = study.run(alone, str(tmp_path / 'w1'))
  assert in_process['metrics']['attribute_cardio.skipped'] == skipped
