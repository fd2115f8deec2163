"""DP-SGD (medinv.training.dp_sgd): clipping, noise, Poisson batches, accounting, calibration,
populations against one-by-one training, the default delta, the DP study, and the config errors."""
import json
import math

import dp_accounting
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy import stats

from configs import demo
from configs import dp as dp_config
from configs import membership_heart
from configs import split_defenses
from configs import sweep_population
from medinv import data as data_lib
from medinv.data import heart_disease
from medinv.training import dp_sgd
from medinv.training import population
from medinv.core import sharding
from medinv.study import study
from medinv.study import dp as study_dp
from medinv.study import sweep
from medinv.training import trainer


def test_clipping_bounds_every_per_example_norm():
  keys = jax.random.split(jax.random.key(0), 2)
  grads = {'w': 5.0 * jax.random.normal(keys[0], (64, 7, 3)),
           'b': jax.random.normal(keys[1], (64, 3)) * jnp.linspace(0.0, 3.0, 64)[:, None]}
  clipped = dp_sgd.clip_per_example(grads, 1.5)
  norms = lambda tree: np.sqrt(sum(np.sum(np.reshape(g, (64, -1)) ** 2, 1)
                                   for g in jax.tree.leaves(tree)))
  before, after = norms(grads), norms(clipped)
  assert np.all(after <= 1.5 * (1 + 1e-6))
  assert np.sum(before > 1.5) > 50  # Most examples were over the bound...
  small = before <= 1.5
  np.testing.assert_allclose(after[small], before[small], rtol=1e-6)  # ...the rest untouched.
  np.testing.assert_allclose(after[~small], 1.5, rtol=1e-5)


def test_noiseless_private_gradient_is_jax_privacys_sum_of_clipped_gradients():
  """Against an independent implementation: jax_privacy.clipping.clipped_grad sums the
  clipped per-example gradients of the batch's records (the masked-in rows)."""
  from jax_privacy import clipping  # pylint: disable=g-import-not-at-top
  keys = jax.random.split(jax.random.key(5), 4)
  params = {'w': jax.random.normal(keys[0], (6, 3)), 'b': jax.random.normal(keys[1], (3,))}
  x = 3.0 * jax.random.normal(keys[2], (16, 6))
  y = jax.random.randint(keys[3], (16,), 0, 3)
  mask = jnp.asarray(np.arange(16) % 3 != 0, jnp.float32)  # 10 records, 6 padding rows

  def example_loss(p, xi, yi):
    logits = xi @ p['w'] + p['b']
    return -jax.nn.log_softmax(logits)[yi]

  def batch_loss(p, xb, yb):  # jax_privacy's convention: a batch function, a mean over it
    return jnp.mean(jax.vmap(example_loss, in_axes=(None, 0, 0))(p, xb, yb))

  kept = np.flatnonzero(np.asarray(mask))
  for clip_norm in (0.3, 1.0, 100.0):
    ours, _ = dp_sgd.private_grads(jax.random.key(0), params, x, y, mask,
                                   example_loss=example_loss, noise_multiplier=0.0,
                                   clip_norm=clip_norm, expected_batch=1.0)
    theirs = clipping.clipped_grad(batch_loss, l2_clip_norm=clip_norm, batch_argnums=(1, 2))(
        params, x[kept], y[kept])
    for name in params:
      np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-5, atol=1e-6)


def test_noise_has_std_noise_multiplier_times_clip_norm():
  zeros = {'w': jnp.zeros((200, 50)), 'b': jnp.zeros((1000,))}
  noisy = dp_sgd.add_noise(jax.random.key(3), zeros, 1.3, 0.7)
  sample = np.concatenate([np.ravel(leaf) for leaf in jax.tree.leaves(noisy)])
  assert stats.kstest(sample, stats.norm(0, 1.3 * 0.7).cdf).pvalue > 0.01
  assert stats.kstest(sample, stats.norm(0, 1.3).cdf).pvalue < 1e-6  # The test can tell.
  # Through the whole gradient: no example in the batch (mask 0) leaves only noise / batch.
  params = {'w': jnp.ones((40, 25))}
  grads, _ = dp_sgd.private_grads(
      jax.random.key(4), params, jnp.ones((4, 40)), jnp.zeros((4,), jnp.int32), jnp.zeros(4),
      example_loss=lambda p, x, y: jnp.sum(x @ p['w']), noise_multiplier=2.0, clip_norm=0.5,
      expected_batch=8.0)
  assert stats.kstest(np.ravel(grads['w']) * 8.0, stats.norm(0, 1.0).cdf).pvalue > 0.01
  assert np.all(dp_sgd.add_noise(jax.random.key(3), zeros, 0.0, math.inf)['w'] == 0)


def test_poisson_batches_sample_each_record_at_the_rate():
  index, mask = dp_sgd.poisson_batches(jax.random.key(0), 500, 0.1, 400, 90)
  sizes = np.asarray(mask).sum(1)
  assert abs(sizes.mean() - 50) < 1.0 and 4 < sizes.std() < 9  # Binomial(500, 0.1): 6.7.
  for row, size in zip(np.asarray(index)[:20], sizes[:20]):
    assert len(set(row[:int(size)])) == int(size)  # No record twice in a batch.
  counts = np.bincount(np.concatenate([r[:int(s)] for r, s in zip(np.asarray(index), sizes)]),
                       minlength=500)
  assert stats.chisquare(counts).pvalue > 0.001  # Every record equally likely.


def test_accounted_epsilon_is_the_librarys_and_falls_with_noise():
  q, steps, delta = 256 / 60000, 60 * 235, 1e-5
  accountant = dp_accounting.rdp.RdpAccountant()
  accountant.compose(dp_accounting.PoissonSampledDpEvent(
      q, dp_accounting.GaussianDpEvent(1.1)), steps)
  assert dp_sgd.epsilon(1.1, q, steps, delta) == pytest.approx(accountant.get_epsilon(delta),
                                                               rel=1e-12)
  assert 2.5 < dp_sgd.epsilon(1.1, q, steps, delta) < 3.5  # The DP-SGD MNIST tutorial: ~3.
  values = [dp_sgd.epsilon(s, q, steps, delta) for s in (0.7, 1.0, 1.5, 3.0, 6.0)]
  assert all(a > b for a, b in zip(values, values[1:]))
  assert dp_sgd.epsilon(0.0, q, steps, delta) == math.inf
  # One full-batch Gaussian step: RDP is an upper bound on the exact (PLD) epsilon, close to it.
  pld = dp_accounting.pld.PLDAccountant()
  pld.compose(dp_accounting.GaussianDpEvent(2.0))
  assert pld.get_epsilon(1e-5) <= dp_sgd.epsilon(2.0, 1.0, 1, 1e-5) < 1.3 * pld.get_epsilon(1e-5)


@pytest.mark.parametrize('target', [8.0, 1.0, 0.3])
def test_calibration_reaches_the_target_epsilon(target):
  noise = dp_sgd.calibrate(target, 32 / 242, 160, 1 / 242)
  reached = dp_sgd.epsilon(noise, 32 / 242, 160, 1 / 242)
  assert reached <= target * (1 + 1e-6) and reached == pytest.approx(target, rel=0.01)
  assert dp_sgd.calibrate(math.inf, 0.1, 10, 1e-5) == 0.0


def test_default_delta_is_a_hundredth_of_one_over_n():
  dp = ml_collections.ConfigDict(dict(target_epsilon=1.0, delta=0.0, clip_norm=1.0))
  run = dp_sgd.setting(dp, 242, 32, 2)
  assert run.delta == pytest.approx(1 / 24200)
  assert run.epsilon <= 1.0 + 1e-6
  dp.delta = 1e-3  # A stated delta is kept.
  assert dp_sgd.setting(dp, 242, 32, 2).delta == 1e-3


def _dp_config(data_dir, epsilons):
  config = sweep_population.get_config('smoke')
  config.data.data_dir = data_dir
  config.data.scaling = 'bounds'  # DP-SGD's epsilon covers no statistic of the records
  config.sweep.axes = ml_collections.ConfigDict(
      {'seed': (0, 3), 'train': {'dp': {'target_epsilon': epsilons}}})
  (run,) = sweep.expand_runs(config)
  return run.config


@pytest.mark.e2e  # runs an experiment end to end: the e2e tier
def test_dp_population_equals_models_trained_one_by_one(data_dir, tmp_path):
  config = _dp_config(data_dir, (math.inf, 2.0))
  task = data_lib.load_task(config.data)
  points, dp_batch = population.with_privacy(config, population.points(config),
                                             len(task.y_train))
  assert dp_batch > config.train.batch_size
  _, state, size = population.fit(config, task, points)
  assert size == 4
  params = sharding.gather(state.params)
  for k, (seed, eps) in enumerate([(0, 2.0), (3, 2.0), (3, math.inf)]):
    single = config.copy_and_resolve_references()
    del single['sweep']
    single.seed, single.train.dp.target_epsilon = seed, eps
    trained = trainer.train_and_evaluate(single, str(tmp_path / f'single{k}'))
    index = [1, 3, 2][k]  # Grid order: seed slowest, epsilon fastest.
    assert points[population.DP_EPSILON][index] == pytest.approx(trained.metrics['dp_epsilon'])
    if eps == math.inf:  # A population with a private model trains all with Poisson batches.
      assert trained.metrics['noise_multiplier'] == 0.0
      continue
    assert trained.metrics['dp_epsilon'] == pytest.approx(2.0, rel=0.01)
    for got, want in zip(jax.tree.leaves(jax.tree.map(lambda a: np.asarray(a)[index], params)),
                         jax.tree.leaves(trained.params)):
      np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
  # The private models moved differently from the non-private one of the same seed.
  assert not np.allclose(np.asarray(params['Dense_0']['kernel'][2]),
                         np.asarray(params['Dense_0']['kernel'][3]), atol=1e-3)


@pytest.mark.e2e  # runs an experiment end to end: the e2e tier
def test_dp_study_smoke_reports_every_attack_against_epsilon(data_dir, tmp_path):
  # configs/dp.py's smoke study on heart_disease (its BreastMNIST parts' code runs in the
  # demo's smoke run and tests/inversion/test_reconstruct.py), at epsilon inf and 1.
  config = dp_config.get_config('smoke,epsilons=1')
  for name in list(config.parts.keys()):
    if 'heart' not in name:
      del config.parts[name]
    else:
      config.parts[name].data.data_dir = data_dir
  assert sorted(config.parts) == ['attribute_heart_eps1', 'attribute_heart_inf',
                                  'audit_heart_eps1', 'membership_heart_eps1',
                                  'membership_heart_inf']
  assert not study_dp.is_dp_study(demo.get_config('smoke').parts)  # No DP table there.
  study.run(config, str(tmp_path))
  rows = {r['target_epsilon']: r for r in study_dp.summary_rows(
      {n: _results(tmp_path / n) for n in config.parts}, config.parts)}
  assert rows[math.inf]['dp_epsilon'] == math.inf == rows[math.inf]['membership_dp_epsilon']
  for key in ('dp_epsilon', 'membership_dp_epsilon'):
    assert rows[1.0][key] == pytest.approx(1.0, rel=0.01)
  for row in rows.values():
    assert -1 <= row['attribute_advantage'] <= 1 and 0 <= row['membership_strongest_auc'] <= 1
  audited = rows[1.0]
  assert audited['audit_dp_epsilon'] == pytest.approx(1.0, rel=0.01)
  for name in ('multi_run', 'one_run', 'one_run_fdp'):  # The correct mechanism at epsilon 1.
    assert 0 <= audited[f'audit_{name}'] <= min(1.0, audited[f'audit_{name}_ceiling'])
  assert 'audit_multi_run' not in rows[math.inf]  # No audit without a claimed epsilon.
  text = (tmp_path / 'report.md').read_text()
  assert '## DP audit: heart_disease (`audit_heart_eps1`)' in text
  table = text[text.index('## DP-SGD training'):].split('\n\n')[2].splitlines()
  assert [line.split(' | ')[:3] for line in table[2:]] == [
      ['| heart_disease', 'inf', 'inf / inf'], ['| heart_disease', '1', '1.00 / 1.00']]
  assert (tmp_path / 'privacy_utility_dp.png').read_bytes()[:4] == b'\x89PNG'


@pytest.mark.e2e  # runs an experiment end to end: the e2e tier
def test_dp_study_on_a_users_csv(data_dir, manual_dir, tmp_path):
  # configs/dp.py with schema=: the record parts on a CSV (tests/fixture_files.py's table in
  # the UCI layout), at epsilon 1: the accounted epsilon reaches it, the table names the file.
  config = dp_config.get_config('smoke,epsilons=1,schema=configs/schemas/heart_disease_uci.py')
  for name in list(config.parts.keys()):
    if name not in ('attribute_csv_eps1', 'membership_csv_eps1'):
      del config.parts[name]
    else:
      config.parts[name].data.update(data_dir=data_dir, manual_dir=manual_dir)
  assert len(config.parts) == 2
  study.run(config, str(tmp_path))
  (row,) = study_dp.summary_rows({n: _results(tmp_path / n) for n in config.parts},
                                 config.parts)
  assert row['dataset'] == 'csv:heart_disease_uci.csv'
  for key in ('dp_epsilon', 'membership_dp_epsilon'):
    assert row[key] == pytest.approx(1.0, rel=0.01)
  text = (tmp_path / 'report.md').read_text()
  assert '| csv:heart_disease_uci.csv | 1 | 1.00 / 1.00 |' in text


def _results(path):
  with open(path / 'results.json') as f:
    return json.load(f)


@pytest.mark.parametrize('field,value,message', [
    ('target_epsilon', 0.0, 'train.dp.target_epsilon must be > 0'),
    ('target_epsilon', -1.0, 'train.dp.target_epsilon must be > 0'),
    ('delta', 1.0, r'train.dp.delta must be in \[0, 1\)'),
    ('clip_norm', 0.0, 'train.dp.clip_norm must be a positive'),
    ('clip_norm', -2.0, 'train.dp.clip_norm must be a positive'),
])
def test_bad_dp_config_is_a_clear_error(field, value, message):
  config = membership_heart.get_config('smoke')
  config.train.dp[field] = value
  with pytest.raises(ValueError, match=message):
    trainer.validate(config)


def test_nopeek_with_dp_sgd_is_refused():
  config = split_defenses.get_config('smoke')
  part = next(p for name, p in config.parts.items() if 'nopeek' in name)
  trainer.validate(part)  # NoPeek alone trains...
  part.train.dp.target_epsilon = 4.0
  with pytest.raises(ValueError, match='train.nopeek_weight: NoPeek cannot train with DP-SGD'):
    trainer.validate(part)  # ...with DP-SGD it is refused, not silently dropped.


def test_dp_sgd_scales_features_by_public_bounds_only(data_dir):
  config = membership_heart.get_config('smoke')
  config.data.data_dir = data_dir
  config.train.dp.target_epsilon = 1.0
  with pytest.raises(ValueError, match=r'config.data.scaling: with DP-SGD'):
    trainer.validate(config)  # z-scores of the private records: refused
  config.data.scaling = 'bounds'
  trainer.validate(config)
  task = data_lib.load_task(config.data)
  bounds = np.asarray([heart_disease.PUBLIC_BOUNDS[c.name]
                       for c in task.records_train.columns], np.float32)
  want = (task.records_train.features - bounds[:, 0]) / (bounds[:, 1] - bounds[:, 0])
  np.testing.assert_allclose(task.x_train, want, rtol=1e-6)
  assert 0 <= task.x_train.min() and task.x_train.max() <= 1
  cardio = dict(config.data.to_dict(), dataset='cardio')
  with pytest.raises(ValueError, match=r"scaling 'bounds': dataset 'cardio' declares no"):
    data_lib.check_config(ml_collections.ConfigDict(cardio))
