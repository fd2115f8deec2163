"""Membership-inference attacks: the LiRA, RMIA and label-only statistics against scipy / numpy,
and what a model answers under each defense (the ROC metrics: tests/metrics/test_roc.py)."""
import functools
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy import stats

from configs import membership_heart
from medinv import defenses
from medinv.membership import attacks
from medinv.metrics import roc


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


def test_label_attacks_match_numpy():
  rng = np.random.default_rng(7)
  k, n, q = 8, 6, 3
  obs = _obs(seed=2, k=k, n=n).replace(
      target_correct=rng.uniform(size=(n, q)) < 0.6,
      shadow_correct=rng.uniform(size=(k, n, q)) < 0.6)
  np.testing.assert_allclose(attacks.label_only_score(None, obs, None),
                             obs.target_correct.mean(-1), rtol=1e-6)
  shadow_in = np.asarray(obs.shadow_in).astype(bool)
  want = []
  for record in range(n):
    right = obs.shadow_correct[:, record]  # (k, q)
    p_in = (right[shadow_in[:, record]].sum() + 1) / (right[shadow_in[:, record]].size + 2)
    p_out = (right[~shadow_in[:, record]].sum() + 1) / (right[~shadow_in[:, record]].size + 2)
    hit = obs.target_correct[record].mean()
    want.append(stats.bernoulli.logpmf(1, p_in) * hit
                + stats.bernoulli.logpmf(0, p_in) * (1 - hit)
                - stats.bernoulli.logpmf(1, p_out) * hit
                - stats.bernoulli.logpmf(0, p_out) * (1 - hit))
  np.testing.assert_allclose(attacks.label_lira_score(None, obs, None), want, rtol=1e-5)


def test_defended_outputs_follow_the_deployment():
  """Strength 0 answers as the undefended model; per-query noise answers two identical
  records differently and a fixed draw identically; randomized response flips about p of the
  labels (binomial bound) and hides phi and loss."""
  w_key, x_key = jax.random.split(jax.random.key(3))
  params = {'w': jax.random.normal(w_key, (4, 2))}
  apply_fn = lambda variables, x: x @ variables['params']['w']
  x = jnp.tile(jax.random.normal(x_key, (1, 4)), (2000, 1))  # one record asked 2000 times
  y = jnp.zeros(2000, jnp.int32)
  clean = attacks.model_outputs(params, x, y, apply_fn=apply_fn, queries='identity')
  config = membership_heart.defense_config()
  key = jax.random.key(4)

  def defended(defense, mode, strength):
    return attacks.defended_outputs(key, params, x, y, apply_fn=apply_fn, queries='identity',
                                    defense=defense, variant=mode, strength=strength,
                                    cfg=config[defense])
  for name, mode in (('model_perturbation', 'per_query'), ('randomized_response', '')):
    np.testing.assert_array_equal(defended(name, mode, 0.0)['correct'], clean['correct'])
  per_query = defended('model_perturbation', 'per_query', 0.5)['phi'][:, 0]
  fixed = defended('model_perturbation', 'fixed', 0.5)['phi'][:, 0]
  assert len(np.unique(np.asarray(per_query))) == 2000 and len(np.unique(np.asarray(fixed))) == 1
  assert float(fixed[0]) != pytest.approx(float(clean['phi'][0, 0]))
  flipped = defended('randomized_response', '', 0.3)
  assert np.all(np.isnan(flipped['phi'])) and np.all(np.isnan(flipped['loss']))
  changed = np.mean(np.asarray(flipped['correct'][:, 0]) != np.asarray(clean['correct'][:, 0]))
  assert abs(changed - 0.3) < 4 * math.sqrt(0.3 * 0.7 / 2000)


def test_flip_queries_give_one_phi_column_per_view():
  """model_outputs with 'flip': column 0 queries the image, column 1 its mirror (a toy model
  whose logit is a left-weighted sum of pixels; a SplitCNN takes the same path in
  configs/membership_breastmnist.py)."""
  weight = np.linspace(1.0, 0.0, 4, dtype=np.float32)[None, None, :, None]  # left-heavy

  def apply_fn(variables, x):
    del variables
    score = jnp.sum(x * weight, axis=(1, 2, 3))
    return jnp.stack([jnp.zeros_like(score), score], axis=-1)

  x = np.asarray(jax.random.uniform(jax.random.key(1), (5, 3, 4, 1)))
  labels = np.asarray([1, 1, 0, 1, 0], np.int32)
  out = jax.jit(functools.partial(attacks.model_outputs, apply_fn=apply_fn, queries='flip'))(
      {}, x, labels)
  plain = np.sum(x * weight, axis=(1, 2, 3))
  mirrored = np.sum(x[:, :, ::-1] * weight, axis=(1, 2, 3))
  sign = np.where(labels == 1, 1.0, -1.0)  # phi of 2 classes = +-(logit_1 - logit_0)
  np.testing.assert_allclose(out['phi'], np.stack([sign * plain, sign * mirrored], 1), rtol=1e-5)
  np.testing.assert_array_equal(out['correct'], np.stack([plain > 0, mirrored > 0], 1)
                                == (labels == 1)[:, None])


def test_membership_measures_the_released_vector_or_only_the_label():
  """A vector release gives phi and loss of the released probabilities (at 'probs' those of
  the model); a one-hot release hides them and keeps the labels' correctness."""
  params = {'w': jnp.asarray([[1.0, -0.5], [0.2, 0.8], [-0.3, 0.4]])}
  x = jax.random.normal(jax.random.key(1), (50, 3))
  y = jnp.asarray(np.arange(50) % 2, jnp.int32)
  apply_fn = lambda variables, records: records @ variables['params']['w']
  clean = attacks.model_outputs(params, x, y, apply_fn=apply_fn, queries='identity')

  def released(**overrides):
    return attacks.defended_outputs(
        jax.random.key(3), params, x, y, apply_fn=apply_fn, queries='identity',
        defense='output_postprocessing', variant='', strength=0.0,
        cfg=ml_collections.ConfigDict(defenses.config_block('output_postprocessing',
                                                            **overrides)))
  same = released(release='probs')
  np.testing.assert_allclose(same['phi'], clean['phi'], rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(same['loss'], clean['loss'], rtol=1e-4, atol=1e-5)
  np.testing.assert_array_equal(same['correct'], clean['correct'])
  coarse = released(release='rounded', decimals=1)
  assert np.all(np.isfinite(coarse['phi'])) and not np.allclose(coarse['phi'], clean['phi'])
  label_only = released(release='label')
  assert np.all(np.isnan(label_only['phi'])) and np.all(np.isnan(label_only['loss']))
  np.testing.assert_array_equal(label_only['correct'], clean['correct'])


def _rmia_numpy(obs, online, offline_a, gamma):
  """RMIA from the paper's formulas, in probabilities and a loop over pairs (x, z)."""
  sigmoid = lambda v: 1.0 / (1.0 + np.exp(-np.asarray(v, np.float64)))
  p_target = sigmoid(obs.target_phi).mean(-1)  # Pr(x | theta): mean over query views
  p_shadow = sigmoid(obs.shadow_phi).mean(-1)  # (K, N)
  shadow_in = np.asarray(obs.shadow_in).astype(bool)
  n = p_target.size
  if online:
    p_x = p_shadow.mean(0)
  else:
    p_out = np.empty(n)
    for record in range(n):
      outs = p_shadow[~shadow_in[:, record], record]
      if outs.size:
        p_out[record] = outs.mean()
      else:  # Privacy Meter: Pr_in = a Pr_out + (1 - a), solved for Pr_out
        p_in = p_shadow[shadow_in[:, record], record].mean()
        p_out[record] = min(max((p_in - (1 - offline_a)) / offline_a, 0.0), 1.0)
    p_x = ((1 + offline_a) * p_out + (1 - offline_a)) / 2
  ratio = p_target / p_x
  return np.asarray([np.mean([ratio[x] / ratio[z] >= gamma for z in range(n) if z != x])
                     for x in range(n)])


def _rmia_cfg(name, **overrides):
  return attacks.attack_cfg(ml_collections.ConfigDict({name: overrides}), name)


@pytest.mark.parametrize('name, overrides', [
    ('rmia', {}), ('rmia', {'gamma': 1.2}), ('rmia_offline', {}),
    ('rmia_offline', {'offline_a': 0.6, 'gamma': 1.1})])
def test_rmia_matches_the_papers_formula(name, overrides):
  obs = _obs(seed=3, k=6, n=12, a=2)
  cfg = _rmia_cfg(name, **overrides)
  want = _rmia_numpy(obs, cfg.online, cfg.offline_a, cfg.gamma)
  got = jax.jit(functools.partial(attacks.rmia_score, cfg=cfg))(None, obs)
  np.testing.assert_allclose(got, want, atol=1e-6)
  assert len(np.unique(want)) >= 3  # the check compares distinct scores, not a constant


def test_rmia_with_one_shadow_uses_its_in_answers_offline():
  """K = 1: half the records have no OUT shadow; offline takes their Pr_out from the IN
  answer (the numpy reference above), online uses the one shadow for every record."""
  obs = _obs(seed=4, k=1, n=10, a=1).replace(shadow_in=(np.arange(10) % 2)[None])
  for name in ('rmia', 'rmia_offline'):
    cfg = _rmia_cfg(name)
    got = np.asarray(attacks.rmia_score(None, obs, cfg))
    np.testing.assert_allclose(got, _rmia_numpy(obs, cfg.online, cfg.offline_a, cfg.gamma),
                               atol=1e-6)
    assert np.all((got >= 0) & (got <= 1))


def _confident_members(seed, k, n=400):
  """Records of varied difficulty; every model is more confident (phi + 1) on its members."""
  rng = np.random.default_rng(seed)
  difficulty = rng.normal(0.0, 1.5, size=n)
  member = rng.permutation(n) < n // 2
  shadow_in = np.stack([rng.permutation(n) < n // 2 for _ in range(k)]).astype(np.int32)
  answer = lambda inside: (difficulty + 1.0 * inside + rng.normal(0, 0.5, inside.shape))
  obs = attacks.Observation(target_phi=answer(member)[:, None].astype(np.float32),
                            target_loss=np.zeros(n, np.float32),
                            shadow_phi=answer(shadow_in)[..., None].astype(np.float32),
                            shadow_in=shadow_in)
  return obs, member


@pytest.mark.parametrize('k', [1, 2, 4])
def test_rmia_beats_chance_where_members_are_more_confident(k):
  obs, member = _confident_members(k, k)
  for name in ('rmia', 'rmia_offline'):
    scores = attacks.rmia_score(None, obs, _cfg(name))
    assert float(roc.auc(scores, member)) > 0.7, (name, k)
  noise = obs.replace(target_phi=np.asarray(obs.shadow_phi[0]))  # a model the labels miss
  assert abs(float(roc.auc(attacks.rmia_score(None, noise, _cfg('rmia')), member)) - 0.5) < 0.1


def test_bad_rmia_config_names_the_field():
  with pytest.raises(ValueError, match=r'attack.rmia_offline.offline_a must be in \(0, 1\]'):
    _rmia_cfg('rmia_offline', offline_a=0.0)
  with pytest.raises(ValueError, match='attack.rmia.gamma must be positive'):
    _rmia_cfg('rmia', gamma=0.0)
