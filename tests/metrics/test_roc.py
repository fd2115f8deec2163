"""Membership-inference ROC metrics (medinv.metrics.roc) against brute force and the
Mann-Whitney statistic, masked subgroups, the keyed stratified bootstrap over records and
the strongest attack's interval."""
import functools

import jax
import numpy as np
import pytest
from scipy import stats

from medinv.metrics import intervals
from medinv.metrics import roc


def _brute_tpr_at_fpr(scores, labels, fpr):
  best = 0.0
  for threshold in np.concatenate([[np.inf], scores]):
    predicted = scores >= threshold
    if predicted[~labels].sum() <= fpr * (~labels).sum() + 1e-9:
      best = max(best, predicted[labels].mean())
  return best


def test_roc_metrics_match_brute_force_and_mann_whitney():
  rng = np.random.default_rng(3)
  labels = rng.uniform(size=400) < 0.5
  scores = np.round(rng.normal(size=400) + 0.8 * labels, 1).astype(np.float32)  # with ties
  u = stats.mannwhitneyu(scores[labels], scores[~labels]).statistic
  assert float(roc.auc(scores, labels)) == pytest.approx(
      u / (labels.sum() * (~labels).sum()), abs=1e-5)
  fprs = (0.0, 0.01, 0.1, 0.5)
  np.testing.assert_allclose(roc.tpr_at_fpr(scores, labels, fprs),
                             [_brute_tpr_at_fpr(scores, labels, f) for f in fprs], atol=1e-6)
  thresholds = np.concatenate([[np.inf], scores])
  want = max((np.mean(scores[labels] >= t) + np.mean(scores[~labels] < t)) / 2
             for t in thresholds)
  assert float(roc.balanced_accuracy(scores, labels)) == pytest.approx(want, abs=1e-6)
  fpr, tpr = roc.roc_points(scores, labels)
  assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1 and np.all(np.diff(fpr) >= 0)
  assert np.trapezoid(tpr, fpr) == pytest.approx(float(roc.auc(scores, labels)), abs=1e-5)


def test_masked_metrics_equal_metrics_of_the_subset():
  rng = np.random.default_rng(5)
  labels = rng.uniform(size=200) < 0.5
  scores = np.round(rng.normal(size=200) + labels, 1).astype(np.float32)
  mask = rng.uniform(size=200) < 0.4
  fprs = (0.05, 0.2)
  summary = jax.jit(functools.partial(roc.membership_summary, fprs=fprs))
  masked = summary(scores, labels, mask=mask)
  subset = summary(scores[mask], labels[mask])
  for name in masked:
    np.testing.assert_allclose(masked[name], subset[name], atol=1e-6)
  garbage = np.where(mask, scores, 1e6 * rng.normal(size=200)).astype(np.float32)
  flipped = np.where(mask, labels, ~labels)
  key = jax.random.key(1)
  resample = jax.jit(functools.partial(roc.bootstrap, fprs=fprs, num_samples=30))
  first = resample(key, scores, labels, mask=mask)
  other = resample(key, garbage, flipped, mask=mask)  # never drawn or counted
  for name in first:
    np.testing.assert_array_equal(first[name], other[name])


def test_bootstrap_is_keyed_and_covers_the_estimate():
  rng = np.random.default_rng(4)
  labels = rng.uniform(size=300) < 0.5
  scores = rng.normal(size=300) + labels
  key = jax.random.key(0)
  resample = jax.jit(functools.partial(roc.bootstrap, fprs=(0.01, 0.1), num_samples=200))
  first = resample(key, scores, labels)
  again = resample(key, scores, labels)
  np.testing.assert_array_equal(first['auc'], again['auc'])
  assert first['tpr_at_fpr'].shape == (200, 2)
  low, high = intervals.percentile_interval(first['auc'])
  assert low < float(roc.auc(scores, labels)) < high
  assert 0.02 < high - low < 0.2  # ~ 4 * sqrt(AUC(1 - AUC) / 150)
  assert roc.fpr_records((0.01, 0.001), 150) == pytest.approx([1.5, 0.15])


def test_stratified_resamples_keep_the_member_count_and_draw_uniformly():
  rng = np.random.default_rng(6)
  labels = rng.uniform(size=60) < 0.3
  mask = rng.uniform(size=60) < 0.8
  members = np.flatnonzero(labels & mask)
  resample = jax.jit(roc.stratified_resample)
  drawn = []
  for b in range(400):
    index, counted = (np.asarray(a) for a in resample(jax.random.key(b), labels, mask))
    assert counted.sum() == mask.sum()
    assert labels[index[counted]].sum() == members.size  # the member count, every resample
    assert np.all(np.isin(index[counted], np.flatnonzero(mask)))
    drawn.append(index[:members.size])
  counts = np.bincount(np.concatenate(drawn), minlength=60)[members]
  assert stats.chisquare(counts).pvalue > 1e-3  # uniform over the members
  scores = rng.normal(size=60) + labels
  auc = roc.bootstrap(jax.random.key(9), scores, labels, (0.1,), 3, mask)['auc']
  for b in range(3):
    index, counted = (np.asarray(a) for a in
                      resample(jax.random.fold_in(jax.random.key(9), b), labels, mask))
    s, y = scores[index[counted]], labels[index[counted]]
    u = stats.mannwhitneyu(s[y], s[~y]).statistic
    assert float(auc[b]) == pytest.approx(u / (y.sum() * (~y).sum()), abs=1e-5)


def test_selection_aware_interval_is_below_the_naive_one_on_noise():
  """Five attacks whose scores ignore membership: the naive interval of the one with the best
  AUC starts above the selection-aware one, which covers chance; with one attack far ahead
  of noise both centre on it, the selection-aware one a little wider."""
  rng = np.random.default_rng(8)
  labels = rng.permutation(300) < 150
  resample = jax.jit(functools.partial(roc.bootstrap, fprs=(0.01,), num_samples=400))
  key = jax.random.key(2)

  def compare(scores):
    values = np.asarray([float(roc.auc(s, labels)) for s in scores])
    samples = np.stack([np.asarray(resample(key, s, labels)['auc']) for s in scores], axis=1)
    naive = intervals.percentile_interval(samples[:, np.argmax(values)])
    return naive, intervals.selection_interval(values, samples, bounds=(0, 1))
  naive, chosen = compare(rng.normal(size=(5, 300)))
  assert naive[0] > chosen['low'] + 0.005 and chosen['high'] > naive[1]
  assert chosen['low'] < 0.5 < chosen['high']
  strong = np.concatenate([rng.normal(size=(1, 300)) + 1.5 * labels, rng.normal(size=(4, 300))])
  naive, chosen = compare(strong)
  assert chosen['best'] == 0 and chosen['share'] == 1.0
  assert 0 < naive[0] - chosen['low'] < 0.03 and 0 < chosen['high'] - naive[1] < 0.03
