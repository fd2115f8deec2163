"""The DP audit: its bounds against jax_privacy and an independent Clopper-Pearson, its
canaries and inclusion draws, the masked records of the population, and a smoke run.

The check that the audit catches a broken mechanism (noise / 10 at a claimed epsilon of 1)
and not the correct one trains 512 models of 20 epochs each: it is in the `paper` tier
(`./launch.sh test -m paper tests/membership/test_audit.py`; 52 minutes on 2 shared cores)."""
import dataclasses
import math
import os

import jax
import numpy as np
import pytest
from jax_privacy import auditing
from scipy import stats

from configs import dp_audit as dp_audit_config
from medinv import data as data_lib
from medinv.membership import audit
from medinv.training import population
from medinv.core import sharding


def test_one_run_bounds_equal_jax_privacy_on_fixed_scores():
  rng = np.random.default_rng(0)
  ins, outs = rng.normal(2.0, 1.0, 300), rng.normal(0.0, 1.0, 300)
  included = np.zeros((2, 600), bool)
  included[0, :300] = True
  phi = np.stack([np.concatenate([ins, outs]), np.zeros(600)])
  rows = {r['audit']: r for r in audit.audit_rows(phi, included, delta=1e-5, confidence=0.95)}
  auditor = auditing.CanaryScoreAuditor(ins, outs)
  assert rows['one_run']['epsilon_lower_bound'] == pytest.approx(
      auditor.epsilon_one_run(0.05, 1e-5))
  assert rows['one_run_fdp']['epsilon_lower_bound'] == pytest.approx(
      auditor.epsilon_one_run_fdp(0.05, 1e-5))
  assert rows['one_run']['epsilon_lower_bound'] > 0.5  # Separated scores show something...
  assert rows['one_run']['auc'] == pytest.approx(
      np.mean(ins[:, None] > outs[None, :]), abs=1e-9)
  same = audit.audit_rows(np.stack([rng.normal(size=600), np.zeros(600)]), included,
                          delta=1e-5, confidence=0.95)
  assert same[1]['epsilon_lower_bound'] < 0.2  # ...scores without signal (almost) nothing.


def _clopper_pearson_bound(ins, outs, delta, confidence):
  """An independent multi-run bound: Clopper-Pearson on TPR and FPR (a score >= t guesses
  'in'), Bonferroni over the thresholds whose (TPR, FPR) no other threshold dominates, from
  scipy's binomial test."""
  thresholds = np.unique(np.concatenate([ins, outs, [np.inf]]))
  counts = [(int(np.sum(ins >= t)), int(np.sum(outs >= t))) for t in thresholds]
  frontier = [c for c in counts if not any(
      o != c and o[0] >= c[0] and o[1] <= c[1] for o in counts)]
  alpha = (1 - confidence) / len(frontier)
  best = 0.0
  for tp, fp in frontier:
    tpr_low = stats.binomtest(tp, len(ins)).proportion_ci(1 - alpha, 'exact').low
    fpr_high = stats.binomtest(fp, len(outs)).proportion_ci(1 - alpha, 'exact').high
    if tpr_low > delta and fpr_high > 0:
      best = max(best, math.log((tpr_low - delta) / fpr_high))
  return best


def test_multi_run_bound_is_clopper_pearson_over_runs():
  rng = np.random.default_rng(1)
  included = rng.random((200, 3)) < 0.5
  phi = rng.normal(size=(200, 3)) + 3.0 * included
  rows = {r['audit']: r for r in audit.audit_rows(phi, included, delta=1e-4, confidence=0.95)}
  ins, outs = phi[included[:, 0], 0], phi[~included[:, 0], 0]
  want = _clopper_pearson_bound(ins, outs, 1e-4, 0.95)
  assert want > 1.0
  assert rows['multi_run']['epsilon_lower_bound'] == pytest.approx(want, rel=0.02)
  assert rows['multi_run']['in_scores'] == included[:, 0].sum()
  assert rows['multi_run']['epsilon_lower_bound'] <= rows['multi_run']['ceiling']
  # Perfect separation at one threshold, with no Bonferroni correction, is the most any
  # audit of these counts could show; the ceiling is close below it.
  most = _clopper_pearson_bound(np.ones(len(ins)), np.zeros(len(outs)), 1e-4, 0.95)
  assert 0.85 * most < rows['multi_run']['ceiling'] <= most + 1e-9


def test_inclusion_is_independent_with_probability_one_half():
  included = audit.inclusion(jax.random.key(0), 400, 50)
  assert included.shape == (400, 50) and included.dtype == bool
  # 20,000 fair coins: the count lies within 4 standard deviations of 10,000.
  assert abs(included.sum() - 10000) < 4 * math.sqrt(5000)
  # Columns are independent: their correlation is near 0 (not one shared draw per model).
  assert abs(np.corrcoef(included[:, 0], included[:, 1])[0, 1]) < 0.25
  assert not np.array_equal(included, audit.inclusion(jax.random.key(1), 400, 50))


def _task(n=200, d=3, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, d)).astype(np.float32)
  y = (x[:, 0] > 0).astype(np.int32)  # class 1 where the first feature is positive
  return data_lib.Task('toy', x, y, x[:50], y[:50], ('neg', 'pos'))


def test_outlier_canaries_are_labelled_against_the_trend():
  task = _task()
  x, y = audit.canaries(jax.random.key(0), task, 'outlier', 32, 3.0)
  assert x.shape == (32, 3) and np.all(np.abs(np.abs(x - task.x_train.mean(0))
                                              / task.x_train.std(0) - 3.0) < 1e-3)
  np.testing.assert_array_equal(y, (x[:, 0] < 0).astype(int))
  x, y = audit.canaries(jax.random.key(0), task, 'mislabelled', 8, 3.0)
  rows = [np.flatnonzero((task.x_test == row).all(1))[0] for row in x]
  assert np.all(y != task.y_test[rows])


def _config(**audit_overrides):
  config = dp_audit_config.get_config('smoke')
  config.audit.update(audit_overrides)
  return config


def test_broken_mechanisms_change_only_what_they_say():
  points = {population.DP_NOISE: np.asarray([2.0, 4.0], np.float32),
            population.DP_CLIP: np.asarray([1.0, 0.5], np.float32)}
  assert audit.broken('') is None
  divided, _ = audit.broken('noise_div10')(points, 7)
  np.testing.assert_allclose(divided[population.DP_NOISE], [0.2, 0.4])
  unclipped, batch = audit.broken('no_clipping')(points, 7)
  assert batch == 7 and np.all(unclipped[population.DP_CLIP] >= 1e6)
  np.testing.assert_allclose(unclipped[population.DP_NOISE] * unclipped[population.DP_CLIP],
                             [2.0, 2.0], rtol=1e-6)  # The same noise standard deviation.


def test_masked_records_add_nothing_to_training():
  # Two populations whose masked rows hold different data train to the same parameters;
  # unmasking a row changes them.
  config = _config()
  config.train.update(num_epochs=2, checkpoint_every_epochs=2)
  task = _task()
  extra = np.random.default_rng(3).normal(size=(4, 3)).astype(np.float32) * 5
  mask = np.concatenate([np.ones((2, 200), np.float32), np.zeros((2, 4), np.float32)], 1)
  points = {population.SEED: np.asarray([0, 1], np.int32),
            population.FLIP: np.zeros(2, np.float32),
            population.LR: np.full(2, 3e-3, np.float32),
            population.EPSILON: np.full(2, 1.0, np.float32), population.TRAIN_MASK: mask}

  def params(rows, mask):
    fitted = dataclasses.replace(task, x_train=np.concatenate([task.x_train, rows]),
                                 y_train=np.concatenate([task.y_train, np.ones(4, np.int32)]))
    _, state, size = population.fit(config, fitted, {**points, population.TRAIN_MASK: mask})
    return jax.tree.leaves(sharding.gather(state.params))

  first, second = params(extra, mask), params(-extra, mask)
  for a, b in zip(first, second):
    np.testing.assert_array_equal(a, b)
  unmasked = mask.copy()
  unmasked[:, 200:] = 1
  assert not all(np.allclose(a, b) for a, b in zip(first, params(extra, unmasked)))


@pytest.mark.parametrize('field,value,message', [
    ('audit.fault', 'none', r'audit.fault must be one of'),
    ('audit.canary', 'corner', r'audit.canary must be one of'),
    ('audit.num_models', 2, r'audit.num_models must be >= 4'),
    ('train.dp.target_epsilon', float('inf'), r'train.dp.target_epsilon: a DP audit needs'),
])
def test_config_errors_name_the_field(field, value, message):
  config = _config()
  block, _, name = field.rpartition('.')
  node = config
  for part in block.split('.'):
    node = node[part]
  node[name] = value
  with pytest.raises(ValueError, match=message):
    audit.validate(config)


@pytest.mark.e2e  # runs an experiment end to end: the e2e tier
def test_smoke_audit_writes_rows_and_scores_and_resumes(data_dir, tmp_path):
  config = _config()
  config.data.data_dir = data_dir
  workdir = str(tmp_path / 'audit')
  results = audit.run(config, workdir)
  rows = {r['audit']: r for r in results['rows']}
  assert sorted(rows) == sorted(audit.AUDITS)
  metrics = results['metrics']
  assert metrics['dp_epsilon'] == pytest.approx(1.0, rel=0.01)
  assert metrics['delta'] == pytest.approx(1 / (100 * (242 + 8)))
  saved = np.load(os.path.join(workdir, 'canary_scores.npz'))
  assert saved['phi'].shape == saved['included'].shape == (32, 8)
  # The rows are the audits of the saved scores.
  again = audit.audit_rows(saved['phi'], saved['included'], delta=metrics['delta'],
                           confidence=0.95)
  for row in again:
    assert rows[row['audit']]['epsilon_lower_bound'] == pytest.approx(row['epsilon_lower_bound'])
    assert 0 <= row['epsilon_lower_bound'] <= min(row['ceiling'], metrics['dp_epsilon'])
  # A second run resumes the trained population (same scores).
  audit.run(config, workdir)
  np.testing.assert_array_equal(np.load(os.path.join(workdir, 'canary_scores.npz'))['phi'],
                                saved['phi'])


def test_the_audit_trains_its_own_recipe_and_the_dp_study_its_own():
  """`./launch.sh dp_audit` (and the check below) trains AUDIT_RECIPE, the setting in which
  noise / 10 was caught; configs/dp.py's audit parts train the study's recipe at their epsilon
  (tests/study/test_dp.py checks those)."""
  config = dp_audit_config.get_config()
  assert {k: config.train[k] for k in dp_audit_config.AUDIT_RECIPE} == (
      dp_audit_config.AUDIT_RECIPE)
  assert config.train.learning_rate != dp_audit_config.heart_recipe(1.0)['learning_rate']


@pytest.mark.paper  # 2 x 512 DP-SGD runs of 20 epochs: about an hour on a shared 2-core CPU
@pytest.mark.parametrize('fault,caught', [('noise_div10', True), ('', False)])
def test_audit_catches_noise_divided_by_ten_and_not_the_correct_mechanism(
    data_dir, tmp_path, fault, caught):
  config = dp_audit_config.get_config()
  config.data.data_dir = data_dir
  config.audit.update(num_models=512, fault=fault)
  results = audit.run(config, str(tmp_path / 'audit'))
  bound = {r['audit']: r for r in results['rows']}['multi_run']['epsilon_lower_bound']
  assert results['metrics']['dp_epsilon'] == pytest.approx(1.0, rel=0.01)
  assert (bound > 1.0) == caught, bound
