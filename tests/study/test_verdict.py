"""The report's first screen (medinv.study.verdict): on hand-made rows, against answers worked
out by hand; and on a real smoke run of the demo, whose first-screen table this test
recomputes from results.csv with its own code (csv module, its own Wilson and Newcombe
intervals) and compares with report.md."""
import csv
import math
import os
import re

import pytest

from configs import demo
from medinv.study import study
from medinv.study import verdict

PART = {'attribute': 'attribute inference (`attribute_heart`)',
        'inversion': 'model inversion (`inversion_breastmnist`)',
        'membership': 'membership inference (`membership_heart`)'}


def _attribute_row(correct, flip_prob, release_accuracy, attack='map', variant='confusion',
                   targets='members'):
  """A member-target row: `correct` of 400 targets right, the best baseline at 0.5."""
  return dict(part='attribute_heart', dataset='heart_disease', attribute='sex', attack=attack,
              variant=variant, targets=targets, n=400, flip_prob=flip_prob, release='label',
              attack_accuracy=correct / 400, best_baseline_accuracy=0.5,
              advantage=correct / 400 - 0.5, release_test_accuracy=release_accuracy)


def test_attribute_inference_smallest_flip_probability_that_reaches_the_baseline():
  """Newcombe's interval of k/400 - 200/400, from the Wilson intervals (z = 1.95996):
  240/400 [0.55126, 0.64684], 200/400 [0.45123, 0.54877]: 0.1 - sqrt(0.04874^2 + 0.04877^2)
  = 0.0311 and 0.1 + sqrt(0.04684^2 + 0.04877^2) = 0.1676; 232/400 [0.53110, 0.62738]: low
  0.08 - sqrt(0.04890^2 + 0.04877^2) = 0.0109 > 0 (p = 0.25 does not reach the baseline);
  212/400 [0.48104, 0.57839]: [0.03 - 0.06910, 0.03 + 0.06870] = [-0.0391, 0.0987], and
  208/400's [-0.0491, 0.0888] lies under it, so at p = 0.5 the strongest (learned, 0.03) has
  the interval [-0.039, 0.099]: it reaches the baseline."""
  rows = [_attribute_row(240, 0.0, 0.8), _attribute_row(220, 0.0, 0.8, 'learned', 'black_box'),
          _attribute_row(380, 0.0, 0.8, targets='non-members'),  # not a member target
          _attribute_row(232, 0.25, 0.7), _attribute_row(200, 0.25, 0.7, 'learned', 'black_box'),
          _attribute_row(208, 0.5, 0.55), _attribute_row(212, 0.5, 0.55, 'learned', 'black_box')]
  assert verdict.table_lines(rows) == [
      [PART['attribute'], 'heart_disease', 'none', '0', 'map (confusion) on sex',
       '0.100 [0.031, 0.168]', 'no', '0.800'],
      [PART['attribute'], 'heart_disease', 'randomized_response', '0.5',
       'learned (black_box) on sex', '0.030 [-0.039, 0.099]', 'yes',
       '0.550 (undefended 0.800)']]


def _inversion_row(attack, split, mode, strength, ssim, low, high, accuracy, knows=True,
                   reference='target'):
  return dict(part='inversion_breastmnist', attack=attack, split=split,
              defense='model_perturbation', mode=mode, strength=strength, knows_defense=knows,
              reference=reference, ssim_mean=ssim, ssim_low=low, ssim_high=high,
              model_test_accuracy=accuracy)


def test_model_inversion_takes_the_largest_lower_end_and_says_when_none_reaches():
  """Baseline SSIM 0.30. Undefended, rmle at split 2 is strongest (0.70 - 0.30 = 0.40); its
  interval runs from the largest lower end (inverse network: 0.40 - 0.30 = 0.10) to the
  largest upper end (rmle: 1.20 - 0.30 = 0.90). Fixed noise, sigma 0.05: rmle is strongest
  (0.15) and its own interval reaches 0 (0.25 - 0.30), but the inverse network's lower end is
  0.34 - 0.30 = 0.04 > 0: not reached; sigma 0.1: largest lower end 0.25 - 0.30 = -0.05:
  reached. Per query, sigma 0.05: [0.20, 0.40], none reaches. Split 4 rows (weaker
  undefended) and MI-FACE's class-mean rows do not count."""
  rows = [dict(part='inversion_breastmnist', attack='mean_aux_image', split=None,
               defense=None, mode=None, strength=None, knows_defense=None, reference='target',
               ssim_mean=0.30, ssim_low=0.28, ssim_high=0.32, model_test_accuracy=0.8)]
  for mode in ('fixed', 'per_query'):
    rows += [_inversion_row('rmle', 2, mode, 0.0, 0.70, 0.20, 1.20, 0.80),
             _inversion_row('inverse_network', 2, mode, 0.0, 0.50, 0.40, 0.60, 0.80, False),
             _inversion_row('inverse_network', 4, mode, 0.0, 0.45, 0.40, 0.50, 0.80)]
  rows += [_inversion_row('rmle', 2, 'fixed', 0.05, 0.45, 0.25, 0.65, 0.75),
           _inversion_row('inverse_network', 2, 'fixed', 0.05, 0.40, 0.34, 0.46, 0.75),
           _inversion_row('inverse_network', 4, 'fixed', 0.05, 0.90, 0.85, 0.95, 0.75),
           _inversion_row('rmle', 2, 'fixed', 0.1, 0.33, 0.05, 0.61, 0.70),
           _inversion_row('inverse_network', 2, 'fixed', 0.1, 0.31, 0.25, 0.37, 0.70),
           _inversion_row('mi_face', 2, 'fixed', 0.1, 0.99, 0.98, 1.0, 0.70,
                          reference='class_mean'),
           _inversion_row('rmle', 2, 'per_query', 0.05, 0.60, 0.50, 0.70, 0.78, False)]
  lines = verdict.table_lines(rows, {'inversion_breastmnist': 'breastmnist'})
  assert lines == [
      [PART['inversion'], 'breastmnist', 'none', '0', 'rmle (split 2, queries the deployed model)',
       '0.400 [0.100, 0.900]', 'no', '0.800'],
      [PART['inversion'], 'breastmnist', 'model_perturbation (fixed)', '0.1',
       'rmle (split 2, queries the deployed model)', '0.030 [-0.050, 0.310]', 'yes',
       '0.700 (undefended 0.800)'],
      [PART['inversion'], 'breastmnist', 'model_perturbation (per_query)', '0.05',
       'rmle (split 2, trained before the defense (paper))', '0.300 [0.200, 0.400]',
       'none of the strengths run (0.05) reaches the baseline', '0.780 (undefended 0.800)']]


def _membership_rows(defense, mode, strength, strongest, auc, low, high, accuracy):
  """Two attacks on one deployment; every row carries the deployment's strongest attack."""
  common = dict(part='membership_heart', dataset='heart_disease', defense=defense, mode=mode,
                strength=strength, subgroup='all', defended_test_accuracy=accuracy,
                strongest_attack=strongest, strongest_auc=auc, strongest_auc_low=low,
                strongest_auc_high=high)
  return [{**common, 'attack': strongest, 'auc': auc},
          {**common, 'attack': 'loss_threshold', 'auc': 0.5}]


def test_membership_inference_uses_the_choice_aware_interval():
  """AUC - 0.5 with strongest_auc_low / _high - 0.5: undefended 0.62 [0.55, 0.69] -> 0.12
  [0.05, 0.19]; randomized response reaches 0.5 at p = 0.3 (0.47), not at 0.1 (0.51); model
  perturbation's lower ends 0.53 and 0.505 both stay above 0.5. A subgroup row does not
  count."""
  rows = (_membership_rows('none', '', 0.0, 'rmia', 0.62, 0.55, 0.69, 0.80)
          + _membership_rows('randomized_response', '', 0.1, 'label_lira', 0.56, 0.51, 0.61,
                             0.75)
          + _membership_rows('randomized_response', '', 0.3, 'label_lira', 0.52, 0.47, 0.57,
                             0.70)
          + _membership_rows('model_perturbation', 'fixed', 0.01, 'lira_online', 0.60, 0.53,
                             0.67, 0.80)
          + _membership_rows('model_perturbation', 'fixed', 0.03, 'lira_online', 0.58, 0.505,
                             0.655, 0.79))
  rows.append({**rows[0], 'subgroup': 'sex', 'strongest_auc': 0.99})
  assert verdict.table_lines(rows) == [
      [PART['membership'], 'heart_disease', 'none', '0', 'rmia', '0.120 [0.050, 0.190]', 'no',
       '0.800'],
      [PART['membership'], 'heart_disease', 'randomized_response', '0.3', 'label_lira',
       '0.020 [-0.030, 0.070]', 'yes', '0.700 (undefended 0.800)'],
      [PART['membership'], 'heart_disease', 'model_perturbation (fixed)', '0.03', 'lira_online',
       '0.080 [0.005, 0.155]', 'none of the strengths run (0.01, 0.03) reaches the baseline',
       '0.790 (undefended 0.800)']]


def test_reaches_at_zero_not_when_unknown_and_section_states_the_definition():
  point = verdict.Point(0.1, 'rmia', 0.05, 0.0, 0.1, 0.8)
  assert point.reaches
  assert not verdict.Point(0.1, 'rmia', 0.05, math.nan, math.nan, 0.8).reaches
  undefended = _membership_rows('none', '', 0.0, 'rmia', 0.52, 0.48, 0.56, 0.8)
  assert verdict.table_lines(undefended)[0][6] == 'yes, even undefended'
  text = verdict.section({'membership_heart': {'rows': undefended}})
  table_end = text.index('|\n\n') + 3
  assert text[table_end:].startswith(verdict.REACHES + '\n')
  assert verdict.section({'audit_heart': {'rows': [{'audit': 'one_run'}]}}) == ''


# ------------------------------------------------------ a real smoke run, recomputed from CSV

@pytest.fixture(scope='module')
def smoke_run(tmp_path_factory, data_dir):
  """The demo's smoke run (its four parts): (config, workdir)."""
  workdir = str(tmp_path_factory.mktemp('demo'))
  config = demo.get_config('smoke')
  for part in config.parts.values():
    part.data.data_dir = data_dir
  study.run(config, workdir)
  return config, workdir


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


@pytest.mark.e2e  # runs the demo end to end: the e2e tier
def test_first_screen_matches_results_csv_recomputed(smoke_run):
  config, workdir = smoke_run
  with open(os.path.join(workdir, 'results.csv')) as f:
    rows = list(csv.DictReader(f))
  report = open(os.path.join(workdir, 'report.md')).read()
  assert report.startswith('# medinv study: heart_disease, breastmnist\n')
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
