"""Membership inference: the LiRA statistics against scipy, the ROC metrics against brute
force, the shadow design's balance, and attacks with known answers (a memorising target and a
target that ignores its training data)."""
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy import stats

from medinv import metrics
from medinv.attacks import membership as attacks


def _obs(seed=0, k=6, n=5, a=2):
  rng = np.random.default_rng(seed)
  shadow_in = np.zeros((k, n), np.int32)
  shadow_in[: k // 2] = 1
  shadow_in = rng.permuted(shadow_in, axis=0)
  return attacks.Observation(target_phi=rng.normal(size=(n, a)).astype(np.float32),
                             target_loss=rng.uniform(size=n).astype(np.float32),
                             shadow_phi=rng.normal(1.0, 2.0, size=(k, n, a)).astype(np.float32),
                             shadow_in=shadow_in)


def _cfg(name):
  return attacks.attack_cfg(ml_collections.ConfigDict({}), name)


def test_logit_confidence_is_log_odds_of_the_true_label():
  logits = jnp.asarray([[2.0, -1.0, 0.5], [0.0, 0.0, 0.0], [30.0, -30.0, 0.0]])
  labels = jnp.asarray([0, 2, 0])
  p = np.asarray(jax.nn.softmax(logits[:2]))[np.arange(2), labels[:2]]
  phi = np.asarray(attacks.logit_confidence(logits, labels))
  np.testing.assert_allclose(phi[:2], np.log(p / (1 - p)), rtol=1e-5)
  assert phi[2] == pytest.approx(30.0 - np.log(np.exp(-60.0) + 1.0), abs=1e-4)  # p rounds to 1


def test_lira_online_likelihood_ratio_matches_scipy():
  obs = _obs()
  phi, shadow_in = np.asarray(obs.shadow_phi), np.asarray(obs.shadow_in).astype(bool)
  want = []
  for n in range(phi.shape[1]):
    inside, outside = phi[shadow_in[:, n], n], phi[~shadow_in[:, n], n]
    ratio = (stats.norm.logpdf(obs.target_phi[n], inside.mean(0), inside.std(0))
             - stats.norm.logpdf(obs.target_phi[n], outside.mean(0), outside.std(0)))
    want.append(ratio.mean())
  got = attacks.lira_online_score(None, obs, _cfg('lira_online'))
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_lira_offline_is_the_one_sided_out_tail_of_scipy():
  obs = _obs(seed=1)
  phi, shadow_in = np.asarray(obs.shadow_phi), np.asarray(obs.shadow_in).astype(bool)
  pooled_var = np.mean([phi[~shadow_in[:, n], n].var(0) for n in range(phi.shape[1])], axis=0)
  for name, fixed in (('lira_offline', False), ('lira_offline_fixed_variance', True)):
    want = []
    for n in range(phi.shape[1]):
      outside = phi[~shadow_in[:, n], n]
      std = np.sqrt(pooled_var) if fixed else outside.std(0)
      want.append(-stats.norm.logsf(obs.target_phi[n], outside.mean(0), std).mean())
    got = attacks.ATTACKS[name].score(None, obs, _cfg(name))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_fixed_variance_pools_and_single_shadow_falls_back_to_pooled():
  phi = jnp.asarray([[[0.0]], [[2.0]], [[5.0]]]).repeat(2, axis=1)  # (3, 2, 1)
  weight = jnp.asarray([[1, 1], [1, 0], [0, 1]])  # record 0: two models, record 1: two.
  mean, std = attacks.masked_moments(phi, weight, fixed_variance=False, min_std=1e-3)
  np.testing.assert_allclose(mean[:, 0], [1.0, 2.5])
  np.testing.assert_allclose(std[:, 0], [1.0, 2.5])
  _, fixed = attacks.masked_moments(phi, weight, fixed_variance=True, min_std=1e-3)
  np.testing.assert_allclose(fixed[:, 0], [math.sqrt((1 + 6.25) / 2)] * 2, rtol=1e-6)
  _, single = attacks.masked_moments(phi, jnp.asarray([[1, 1], [0, 1], [0, 0]]),
                                     fixed_variance=False, min_std=1e-3)
  np.testing.assert_allclose(single[:, 0], [1.0, 1.0])  # record 0 has one model: pooled.


def test_bad_attack_config_names_the_field():
  with pytest.raises(ValueError, match='attack.names: unknown membership attack .nope.'):
    attacks.get('nope')
  config = ml_collections.ConfigDict({'names': ('lira_online',), 'queries': 'identity',
                                      'lira_online': {'typo': 1}})
  with pytest.raises(ValueError, match=r'attack.lira_online: unknown fields \[.typo.\]'):
    attacks.check_config(config)
  config = ml_collections.ConfigDict({'names': ('lira_online',), 'queries': 'mirror'})
  with pytest.raises(ValueError, match='attack.queries'):
    attacks.check_config(config)


def test_flip_queries_mirror_images():
  x = jnp.arange(2 * 3 * 4 * 1, dtype=jnp.float32).reshape(2, 3, 4, 1)
  views = attacks.query_views(x, 'flip')
  np.testing.assert_array_equal(views[1], np.asarray(x)[:, :, ::-1])
  with pytest.raises(ValueError, match='flip'):
    attacks.query_views(jnp.zeros((2, 5)), 'flip')


# ----------------------------------------------------------------------------- metrics

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
  assert float(metrics.auc(scores, labels)) == pytest.approx(
      u / (labels.sum() * (~labels).sum()), abs=1e-5)
  fprs = (0.0, 0.01, 0.1, 0.5)
  np.testing.assert_allclose(metrics.tpr_at_fpr(scores, labels, fprs),
                             [_brute_tpr_at_fpr(scores, labels, f) for f in fprs], atol=1e-6)
  thresholds = np.concatenate([[np.inf], scores])
  want = max((np.mean(scores[labels] >= t) + np.mean(scores[~labels] < t)) / 2
             for t in thresholds)
  assert float(metrics.balanced_accuracy(scores, labels)) == pytest.approx(want, abs=1e-6)
  fpr, tpr = metrics.roc_points(scores, labels)
  assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1 and np.all(np.diff(fpr) >= 0)
  assert np.trapezoid(tpr, fpr) == pytest.approx(float(metrics.auc(scores, labels)), abs=1e-5)


def test_bootstrap_is_keyed_and_covers_the_estimate():
  rng = np.random.default_rng(4)
  labels = rng.uniform(size=300) < 0.5
  scores = rng.normal(size=300) + labels
  key = jax.random.key(0)
  first = metrics.bootstrap(key, scores, labels, (0.01, 0.1), 200)
  again = metrics.bootstrap(key, scores, labels, (0.01, 0.1), 200)
  np.testing.assert_array_equal(first['auc'], again['auc'])
  assert first['tpr_at_fpr'].shape == (200, 2)
  low, high = metrics.percentile_interval(first['auc'])
  assert low < float(metrics.auc(scores, labels)) < high
  assert 0.02 < high - low < 0.2  # ~ 4 * sqrt(AUC(1 - AUC) / 150)
  assert metrics.fpr_records((0.01, 0.001), 150) == pytest.approx([1.5, 0.15])
