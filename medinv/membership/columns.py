"""The columns of membership inference's rows: one attack's metrics with their intervals, the
strongest attack's AUC with an interval that accounts for choosing it, and the target's
utility. Used by the train-shadows experiment and by `medinv.api.score_membership`."""
from __future__ import annotations

import numpy as np

from medinv.membership import attacks
from medinv.metrics import intervals
from medinv.metrics import roc


def interval_columns(name: str, value, samples, level: float) -> dict:
  """{name, name_low, name_high}: a value and the percentile interval of its resamples."""
  low, high = intervals.percentile_interval(samples, level)
  return {name: float(value), f'{name}_low': float(low), f'{name}_high': float(high)}


def attack_row(config, name: str, result: dict, num_nonmembers: int) -> dict:
  """One attack's AUC, balanced accuracy and TPR at each FPR, with bootstrap intervals."""
  level = float(config.evaluation.interval)
  summary, samples = result['summary'], result['bootstrap']
  row = {'attack': name, 'uses_shadows': attacks.get(name).uses_shadows}
  for stat in ('auc', 'balanced_accuracy'):
    row.update(interval_columns(stat, summary[stat], samples[stat], level))
  for f, fpr in enumerate(config.evaluation.fprs):
    records = roc.fpr_records([fpr], num_nonmembers)[0]
    row.update(interval_columns(f'tpr_at_{fpr:g}', summary['tpr_at_fpr'][f],
                                samples['tpr_at_fpr'][:, f], level))
    row[f'fpr_{fpr:g}_records'] = records
    row[f'fpr_{fpr:g}_below_one_record'] = records < 1
  return row


def strongest_columns(config, results: dict) -> dict:
  """The strongest of the attacks `results` ({name: {'summary', 'bootstrap'}}, scored on one
  deployment's records with paired resamples): the one with the highest AUC, that AUC with
  the interval that accounts for the choice (`intervals.selection_interval`), and the share
  of resamples in which it stays the strongest."""
  names = list(results)
  chosen = intervals.selection_interval(
      [results[name]['summary']['auc'] for name in names],
      np.stack([np.asarray(results[name]['bootstrap']['auc']) for name in names], axis=1),
      float(config.evaluation.interval), bounds=(0.0, 1.0))
  return {'strongest_attack': names[chosen['best']], 'strongest_share': chosen['share'],
          'strongest_auc': chosen['value'], 'strongest_auc_low': chosen['low'],
          'strongest_auc_high': chosen['high']}


def utility(outputs: dict, labels: np.ndarray, num_classes: int, y_test) -> dict:
  """The target's accuracy on its members (its training records), on the candidates' other
  half (the non-members the attack is scored on) and on the test split, the shadows' mean
  test accuracy, and the majority class's test accuracy."""
  correct = np.asarray(outputs['correct'][0])[:, 0]
  return {'target_train_accuracy': float(np.mean(correct[labels])),
          'target_nonmember_accuracy': float(np.mean(correct[~labels])),
          'target_test_accuracy': float(outputs['test_accuracy'][0]),
          'shadow_test_accuracy_mean': float(np.mean(outputs['test_accuracy'][1:])),
          'test_majority_accuracy': float(np.max(np.bincount(y_test, minlength=num_classes))
                                          / len(y_test))}
