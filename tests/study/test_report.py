"""The study report's membership section (medinv.study.report): the strongest attack of each
deployment shows the interval that accounts for choosing it, and a note says how many of
the per-row intervals to expect to miss."""
from medinv.study import report


def _row(attack, auc, own, defense='none', strength=0.0):
  return dict(dataset='heart_disease', model='mlp', attack=attack, uses_shadows=True,
              defense=defense, mode='', strength=strength, subgroup='all', subgroup_value='',
              defended_test_accuracy=0.8, auc=auc, auc_low=own[0], auc_high=own[1],
              balanced_accuracy=0.55, balanced_accuracy_low=0.5, balanced_accuracy_high=0.6,
              **{'tpr_at_0.01': 0.02, 'tpr_at_0.01_low': 0.0, 'tpr_at_0.01_high': 0.05})


def _deployment(rows, chosen, share, low, high):
  best = max(rows, key=lambda r: r['auc'])
  for row in rows:
    row.update(strongest_attack=chosen, strongest_share=share, strongest_auc=best['auc'],
               strongest_auc_low=low, strongest_auc_high=high)
  return rows


def test_membership_section_shows_the_choice_aware_interval(tmp_path):
  undefended = _deployment([_row('rmia', 0.61, (0.54, 0.68)), _row('lira_online', 0.58,
                                                                    (0.51, 0.65)),
                            _row('loss_threshold', 0.55, (0.48, 0.62))],
                           'rmia', 0.7, 0.50, 0.70)
  defended = _deployment([_row('rmia', 0.57, (0.505, 0.64), 'model_perturbation', 0.1),
                          _row('loss_threshold', 0.52, (0.45, 0.59), 'model_perturbation',
                               0.1)], 'rmia', 0.8, 0.47, 0.66)
  metrics = dict(target_test_accuracy=0.8, target_train_accuracy=0.9,
                 target_nonmember_accuracy=0.77,
                 test_majority_accuracy=0.55, num_members=121, num_nonmembers=121,
                 num_shadows=16, shadow_test_accuracy_mean=0.79, dp_epsilon=float('inf'))
  text = report.membership_section('membership_heart', {'rows': undefended + defended,
                                                         'metrics': metrics,
                                                         '_dir': str(tmp_path)})
  assert ('with 3 rows compared, expect about 0.15 to miss. The strongest, rmia (the strongest '
          'in 70% of resamples), has AUC 0.610 [0.500, 0.700]') in text
  assert 'on its members (training records) 0.900, on the non-members 0.770' in text
  defense_line = next(line for line in text.splitlines() if '| model_perturbation' in line)
  assert '0.570 [0.470, 0.660]' in defense_line and '[0.505, 0.640]' not in defense_line
