"""Membership inference: the LiRA statistics against scipy, the ROC metrics against brute
force, the shadow design's balance, and attacks with known answers (a memorising target and a
target that ignores its training data)."""
import functools
import math
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy import stats

from configs import membership_heart
from medinv import data as data_lib
from medinv import errors
from medinv import experiment
from medinv import membership as membership_lib
from medinv import membership_validate
from medinv import metrics
from medinv import population
from medinv import runners
from medinv import sharding
from medinv import train
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


def test_masked_metrics_equal_metrics_of_the_subset():
  rng = np.random.default_rng(5)
  labels = rng.uniform(size=200) < 0.5
  scores = np.round(rng.normal(size=200) + labels, 1).astype(np.float32)
  mask = rng.uniform(size=200) < 0.4
  fprs = (0.05, 0.2)
  summary = jax.jit(functools.partial(metrics.membership_summary, fprs=fprs))
  masked = summary(scores, labels, mask=mask)
  subset = summary(scores[mask], labels[mask])
  for name in masked:
    np.testing.assert_allclose(masked[name], subset[name], atol=1e-6)
  garbage = np.where(mask, scores, 1e6 * rng.normal(size=200)).astype(np.float32)
  flipped = np.where(mask, labels, ~labels)
  key = jax.random.key(1)
  resample = jax.jit(functools.partial(metrics.bootstrap, fprs=fprs, num_samples=30))
  first = resample(key, scores, labels, mask=mask)
  other = resample(key, garbage, flipped, mask=mask)  # never drawn or counted
  for name in first:
    np.testing.assert_array_equal(first[name], other[name])


def test_bootstrap_is_keyed_and_covers_the_estimate():
  rng = np.random.default_rng(4)
  labels = rng.uniform(size=300) < 0.5
  scores = rng.normal(size=300) + labels
  key = jax.random.key(0)
  resample = jax.jit(functools.partial(metrics.bootstrap, fprs=(0.01, 0.1), num_samples=200))
  first = resample(key, scores, labels)
  again = resample(key, scores, labels)
  np.testing.assert_array_equal(first['auc'], again['auc'])
  assert first['tpr_at_fpr'].shape == (200, 2)
  low, high = metrics.percentile_interval(first['auc'])
  assert low < float(metrics.auc(scores, labels)) < high
  assert 0.02 < high - low < 0.2  # ~ 4 * sqrt(AUC(1 - AUC) / 150)
  assert metrics.fpr_records((0.01, 0.001), 150) == pytest.approx([1.5, 0.15])


# ----------------------------------------------------------------------------- experiment

def test_every_record_is_in_for_half_the_shadows():
  for k in (16, 17):
    shadows = membership_lib.paired_halves(jax.random.key(1), k, 242)
    assert shadows.shape == (k, 242)
    np.testing.assert_array_equal(shadows.sum(axis=1), 121)  # every shadow: half the records
    fraction = shadows.mean(axis=0)
    assert np.all((fraction >= 0.4) & (fraction <= 0.6)), (fraction.min(), fraction.max())
  np.testing.assert_array_equal(membership_lib.paired_halves(jax.random.key(1), 16, 242)[:2],
                                shadows[:2])  # keyed
  assert not np.array_equal(membership_lib.paired_halves(jax.random.key(2), 16, 242), shadows[:16])
  assert membership_lib.member_index(shadows[:3]).shape == (3, 121)


def _synthetic_task(key, n, num_features=13):
  """Gaussian features and labels that no feature predicts (a model can only memorise them)."""
  x_key, y_key = jax.random.split(key)
  x = np.asarray(jax.random.normal(x_key, (n + 20, num_features)))
  y = np.asarray(jax.random.bernoulli(y_key, 0.5, (n + 20,))).astype(np.int32)
  return data_lib.Task('synthetic', x[:n], y[:n], x[n:], y[n:], ('no', 'yes'))


def _config(num_shadows, **train):
  config = membership_heart.get_config('smoke')
  config.membership.num_shadows = num_shadows
  config.train.update(train)
  config.evaluation.bootstrap_samples = 20
  config.evaluation.subgroups = ()  # Subgroups: the heart smoke run (sex).
  config.defense.names = ()  # Defenses: the heart smoke run.
  return config


def _attack(config, task, workdir):
  """The experiment's target, grid and rows steps on an in-memory task."""
  membership_validate.validate(config)
  ctx = experiment.Context(config=config, workdir=str(workdir), task=task)
  ctx.target = membership_lib.fit_target(config, task, str(workdir))
  outputs = membership_lib.grid(ctx)
  metrics_dict, rows = membership_lib.rows(ctx, outputs)
  return ctx, outputs, metrics_dict, {r['attack']: r for r in rows if r['subgroup'] == 'all'
                                      and r['defense'] == 'none'}


def test_memorising_target_is_detected_and_population_equals_one_by_one(tmp_path):
  """64 records with random labels, each model trained to ~zero loss on its 32; and shadow 1
  of the vmapped population equals train.train_and_evaluate on its records alone.

  256 features keep the records nearly orthogonal, so a model's confidence on a record it
  did not see stays near chance (with 13 features it extrapolates confidently, right for
  half of them, and the AUCs fall to 0.75-0.9)."""
  task = _synthetic_task(jax.random.key(5), 64, num_features=256)
  config = _config(8, num_epochs=60, batch_size=32, learning_rate=1e-3,
                   checkpoint_every_epochs=60)
  ctx, outputs, summary, rows = _attack(config, task, tmp_path / 'run')
  assert summary['target_train_accuracy'] == 1.0
  labels = outputs['labels']
  assert np.max(outputs['outputs']['loss'][0][labels]) < 0.01  # memorised
  for name, row in rows.items():
    if attacks.get(name).reads == 'phi':
      assert row['auc'] > 0.95, (name, row['auc'])
  # Labels alone: every member is answered right, a non-member with probability q, so the
  # label_only AUC is P(member right, non-member wrong) + ties / 2 = 1 - q / 2.
  q = np.mean(outputs['outputs']['correct'][0][~labels, 0])
  assert rows['label_only']['auc'] == pytest.approx(1 - q / 2, abs=1e-6)
  assert rows['label_lira']['auc'] > 0.6
  index = ctx.target['points'][population.TRAIN_INDEX][1]
  single = config.copy_and_resolve_references()
  single.seed = int(ctx.target['points'][population.SEED][1])
  alone = data_lib.Task('synthetic', task.x_train[index], task.y_train[index], task.x_test,
                        task.y_test, task.class_names)
  trained = train.train_and_evaluate(single, str(tmp_path / 'alone'), task=alone)
  shadow = jax.tree.map(lambda leaf: np.asarray(leaf)[1], sharding.gather(ctx.target['state'].params))
  for got, want in zip(jax.tree.leaves(shadow), jax.tree.leaves(trained.params)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_target_independent_of_its_data_gives_chance_auc(tmp_path):
  """At learning rate 1e-9 no model moves from its initialisation (Adam steps ~1e-9 vanish in
  float32), so scores are independent of membership. Membership is a uniformly random half,
  so AUC has the Mann-Whitney null: mean 1/2, variance (n0 + n1 + 1) / (12 n0 n1). All five
  attacks inside 4 standard deviations (each fails with probability 6e-5)."""
  task = _synthetic_task(jax.random.key(6), 1000)
  config = _config(4, num_epochs=1, batch_size=100, learning_rate=1e-9)
  _, _, summary, rows = _attack(config, task, tmp_path)
  n0 = n1 = 500
  bound = 4 * math.sqrt((n0 + n1 + 1) / (12 * n0 * n1))  # 0.073
  assert len(rows) == 7
  for name, row in rows.items():
    assert abs(row['auc'] - 0.5) < bound, (name, row['auc'], bound)
  assert summary['num_members'] == summary['num_nonmembers'] == 500


def test_membership_heart_smoke_end_to_end(data_dir, tmp_path):
  config = membership_heart.get_config('smoke')
  config.data.data_dir = data_dir
  results = runners.get('membership_inference').run(config, str(tmp_path))
  assert results['experiment'] == 'membership_inference'
  overall = [r for r in results['rows'] if r['subgroup'] == 'all' and r['defense'] == 'none']
  assert [r['attack'] for r in overall] == list(membership_heart.ATTACKS)
  _check_defended_rows(config, results)
  assert (tmp_path / 'defenses.png').stat().st_size > 0
  row = overall[0]
  assert row['num_members'] == row['num_nonmembers'] == 121
  by_sex = [r for r in results['rows'] if r['subgroup'] == 'sex' and r['attack'] == row['attack']]
  assert sorted(r['subgroup_value'] for r in by_sex) == ['0', '1']
  assert sum(r['num_members'] for r in by_sex) == 121
  assert sum(r['num_nonmembers'] for r in by_sex) == 121
  assert not row['fpr_0.01_below_one_record'] and row['fpr_0.001_below_one_record']
  assert row['auc_low'] <= row['auc'] <= row['auc_high']
  assert 0.5 < results['metrics']['target_test_accuracy'] <= 1.0
  with open(tmp_path / 'records.csv') as f:
    lines = f.read().splitlines()
  assert len(lines) == 243 and 'score_lira_online' in lines[0] and 'sex' in lines[0]
  assert (tmp_path / 'roc.png').stat().st_size > 0
  assert os.path.isdir(tmp_path / 'checkpoints' / 'membership' / '0')
  again = runners.get('membership_inference').run(config, str(tmp_path))  # resumes, same numbers
  assert again['rows'] == results['rows']
  config.membership.num_shadows = 6
  with pytest.raises(errors.WorkdirError, match='membership.num_shadows was 4, now 6'):
    runners.get('membership_inference').run(config, str(tmp_path))


def _check_defended_rows(config, results):
  """Every deployment of config.defense has rows: the label-only release only the attacks
  that read labels, model perturbation every attack; the released labels' test accuracy is
  within 4 standard deviations of what randomized response makes of the model's (each of
  the test records answered UTILITY_DRAWS times, each answer flipped with probability p)."""
  rows = [r for r in results['rows'] if r['subgroup'] == 'all']
  clean = results['metrics']['target_test_accuracy']
  label_attacks = [n for n in config.attack.names if attacks.get(n).reads == 'label']
  assert len(label_attacks) == 2
  answers = 61 * membership_lib.UTILITY_DRAWS  # heart_disease's test split, answered 16 times
  for p in config.defense.randomized_response.strengths:
    mine = [r for r in rows if (r['defense'], r['strength']) == ('randomized_response', p)]
    assert [r['attack'] for r in mine] == label_attacks
    expected = (1 - p) * clean + p * (1 - clean)  # two classes: a flip swaps right and wrong
    bound = 4 * math.sqrt(p * (1 - p) / answers)
    assert abs(mine[0]['defended_test_accuracy'] - expected) <= bound, (p, mine[0], expected)
  for sigma in config.defense.model_perturbation.strengths:
    mine = [r for r in rows if (r['defense'], r['mode'], r['strength'])
            == ('model_perturbation', 'per_query', sigma)]
    assert [r['attack'] for r in mine] == list(config.attack.names)
    assert all(r['auc_low'] <= r['auc'] <= r['auc_high'] for r in mine)


def test_label_attacks_match_numpy():
  rng = np.random.default_rng(7)
  k, n, q = 8, 6, 3
  obs = _obs(seed=2, k=k, n=n).replace(
      target_correct=rng.uniform(size=(n, q)) < 0.6, shadow_correct=rng.uniform(size=(k, n, q)) < 0.6)
  np.testing.assert_allclose(attacks.label_only_score(None, obs, None),
                             obs.target_correct.mean(-1), rtol=1e-6)
  shadow_in = np.asarray(obs.shadow_in).astype(bool)
  want = []
  for record in range(n):
    right = obs.shadow_correct[:, record]  # (k, q)
    p_in = (right[shadow_in[:, record]].sum() + 1) / (right[shadow_in[:, record]].size + 2)
    p_out = (right[~shadow_in[:, record]].sum() + 1) / (right[~shadow_in[:, record]].size + 2)
    hit = obs.target_correct[record].mean()
    want.append(stats.bernoulli.logpmf(1, p_in) * hit + stats.bernoulli.logpmf(0, p_in) * (1 - hit)
                - stats.bernoulli.logpmf(1, p_out) * hit - stats.bernoulli.logpmf(0, p_out) * (1 - hit))
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


def test_bad_input_names_the_field():
  config = membership_heart.get_config('smoke')
  config.membership.num_shadows = 1
  with pytest.raises(ValueError, match='membership.num_shadows must be at least 2'):
    membership_validate.validate(config)
  config = membership_heart.get_config('smoke')
  config.attack.names = ('lira_online', 'lira_typo')
  with pytest.raises(ValueError, match="attack.names: unknown membership attack 'lira_typo'"):
    membership_validate.validate(config)
  config = membership_heart.get_config('smoke')
  config.attack.queries = 'flip'
  with pytest.raises(ValueError, match="attack.queries 'flip' needs an image dataset"):
    membership_validate.validate(config)
  for field, value, message in (
      ('names', ('dp_sgd',), 'defense.names'),
      ('randomized_response.strengths', (0.5, 1.5), 'flip probabilities in'),
      ('model_perturbation.scope', 'edge', "defense.model_perturbation.scope must be 'all'"),
      ('model_perturbation.strengths', (), 'defense.model_perturbation.strengths')):
    config = membership_heart.get_config('smoke')
    block, _, leaf = ('defense.' + field).rpartition('.')
    node = config
    for part in block.split('.'):
      node = node[part]
    node[leaf] = value
    with pytest.raises(ValueError, match=message):
      membership_validate.validate(config)
  config = membership_heart.get_config('smoke')
  config.attack.names = ('lira_online',)
  with pytest.raises(ValueError, match='no attack that reads labels'):
    membership_validate.validate(config)
  config = membership_heart.get_config('smoke')
  config.evaluation.below_one_record = 'error'
  membership_validate.check_record_count(config.copy_and_resolve_references(), 200_000)
  config.evaluation.fprs = (0.01, 0.001)
  with pytest.raises(ValueError, match=r'evaluation.fprs \[0.001\] are below one record'):
    membership_validate.check_record_count(config, 242)
  with pytest.raises(ValueError, match='at least 4 candidate records'):
    membership_validate.check_record_count(config, 2)
  config.evaluation.subgroups = ('gender',)
  task = _synthetic_task(jax.random.key(0), 8)
  with pytest.raises(ValueError, match="evaluation.subgroups: 'gender' is neither 'label'"):
    membership_lib.subgroups(config, task, 8)


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
