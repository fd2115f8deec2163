"""The report's first screen (medinv.study.verdict) on hand-made rows, against answers worked
out by hand. tests/e2e/test_demo.py recomputes the first screen of a real smoke run of the demo
from its results.csv."""
import math

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
