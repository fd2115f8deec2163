"""Repeated draws of a defense (medinv.defenses.draws): draws differ and each is reproducible from
the seed, the (strength, draw) grid of medinv.inversion.grid, the quality/accuracy columns, the
config check, and the report cells and figure bands built from them (the interval itself:
tests/metrics/test_intervals.py)."""
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import inversion_breastmnist
from medinv import defenses
from medinv.defenses import draws
from medinv.core import keys as keys_lib
from medinv.core import plots
from medinv.metrics import image as image_metrics
from medinv.metrics import intervals
from medinv.inversion import experiment as inversion_experiment
from medinv.inversion import figures as inversion_figures
from medinv import models
from medinv.core import sharding
from medinv.study import report as study_report
from medinv.inversion import grid

SPLIT = 2
CFG = defenses.config_block('model_perturbation', modes=('fixed', 'per_query'), scope='edge')


@pytest.fixture(scope='module')
def target():
  model = models.SplitCNN(num_classes=2)
  images = jax.random.uniform(jax.random.key(1), (6, 16, 16, 1))
  params = model.init(jax.random.key(0), images)['params']
  return model, params, images


def _features(model, params, images, key, draw, strength, variant, query):
  """What hospital A sends for `images` as query `query` in draw `draw`."""
  deployed = defenses.deploy('model_perturbation', draws.draw_key(key, draw), params,
                             strength, CFG, split=SPLIT, variant=variant)
  return np.asarray(defenses.query_batch(deployed, models.edge_fn(model, SPLIT), images, query))


def test_fixed_draws_differ_and_each_is_reproducible_from_the_seed(target):
  model, params, images = target
  key = keys_lib.named_keys(7)['defense']
  one = [_features(model, params, images, key, r, 0.05, 'fixed', 0) for r in range(3)]
  for a in range(3):
    for b in range(a + 1, 3):
      assert np.abs(one[a] - one[b]).max() > 1e-4, (a, b)  # independent perturbations
  again = keys_lib.named_keys(7)['defense']  # the same seed: the same realisation, bit for bit
  for r in range(3):
    np.testing.assert_array_equal(_features(model, params, images, again, r, 0.05, 'fixed', 0),
                                  one[r])
  # 'fixed': one perturbation per draw answers every query.
  np.testing.assert_array_equal(_features(model, params, images, key, 1, 0.05, 'fixed', 99),
                                one[1])
  # Another seed, another realisation; draw 0 deploys with the defense key itself.
  other = _features(model, params, images, keys_lib.named_keys(8)['defense'], 1, 0.05, 'fixed', 0)
  assert np.abs(other - one[1]).max() > 1e-4
  assert np.array_equal(np.asarray(jax.random.key_data(draws.draw_key(key, 0))),
                        np.asarray(jax.random.key_data(key)))
  # The same draw at every strength: its perturbation is sigma x the same normal draw.
  noise = lambda sigma: jax.tree.leaves(defenses.deployed_params(
      draws.draw_key(key, 2), params, sigma, 'fixed', 0))[0] - jax.tree.leaves(params)[0]
  np.testing.assert_allclose(noise(0.1), 2 * noise(0.05), rtol=1e-4, atol=1e-6)


def test_per_query_draws_are_new_key_streams(target):
  model, params, images = target
  key = keys_lib.named_keys(3)['defense']
  first = _features(model, params, images, key, 0, 0.05, 'per_query', 5)
  assert np.abs(_features(model, params, images, key, 1, 0.05, 'per_query', 5)
                - first).max() > 1e-4
  assert np.abs(_features(model, params, images, key, 0, 0.05, 'per_query', 6)
                - first).max() > 1e-4
  np.testing.assert_array_equal(_features(model, params, images, key, 0, 0.05, 'per_query', 5),
                                first)


def test_grid_points_run_each_draw_under_its_own_key(target):
  """map_grid over draws.points == the deployed model of each draw, computed independently."""
  model, params, _ = target
  images = jax.random.uniform(jax.random.key(2), (64, 16, 16, 1))
  key = keys_lib.named_keys(0)['defense']
  labels = np.asarray(np.argmax(model.apply({'params': params}, images), -1))  # clean: all right
  fn = grid.accuracy_fn('model_perturbation', CFG, model=model, split=SPLIT, defense_key=key)
  points = draws.points([0.0, 1.0], 3)  # strength 0, the undefended model, once
  np.testing.assert_allclose(points['strength'], [0.0] + [1.0] * 3)
  assert points['draw'].tolist() == [0, 0, 1, 2]
  arrays = {'theta': params, 'x_test': images, 'y_test': labels}
  correct = draws.by_strength(sharding.map_grid(fn, points, arrays), [0.0, 1.0], 3)
  assert correct['fixed'].shape == (2, 3, len(images))
  assert correct['per_query'][0].all()  # sigma 0: every draw is the clean model
  # The draws' perturbations flip different images (so the check below tells them apart).
  assert len({tuple(c) for c in correct['fixed'][1]}) == 3
  mask = defenses.scope_mask(params, 'edge', SPLIT)
  for r in range(3):
    noisy = defenses.perturb_params(jax.random.fold_in(key, draws.DRAW_FOLD + r) if r else key,
                                    params, 1.0, mask)
    logits = model.apply({'params': noisy}, images)
    np.testing.assert_array_equal(correct['fixed'][1, r], np.argmax(logits, -1) == labels)


def test_over_grid_chunks_a_point_grid_like_one_call(tmp_path):
  points = draws.points([0.0, 1.0, 2.0], 2)
  call = lambda p: {'v': p['strength'] * 10 + p['draw']}
  whole = inversion_experiment._over_grid(str(tmp_path / 'a'), 'toy', points, 0, call)
  # padded last chunk
  chunked = inversion_experiment._over_grid(str(tmp_path / 'b'), 'toy', points, 4, call)
  np.testing.assert_array_equal(whole['v'], chunked['v'])
  np.testing.assert_array_equal(draws.by_strength(whole, [0.0, 1.0, 2.0], 2)['v'],
                                [[0, 0], [10, 11], [20, 21]])


def test_strength_zero_runs_once_and_fills_every_draw():
  strengths = [0.5, 0.0, 2.0]
  points = draws.points(strengths, 2)
  assert list(zip(points['strength'], points['draw'])) == [(0.5, 0), (0.5, 1), (0.0, 0),
                                                           (2.0, 0), (2.0, 1)]
  values = {'v': points['strength'] * 10 + points['draw']}
  np.testing.assert_array_equal(draws.by_strength(values, strengths, 2)['v'],
                                [[5, 6], [0, 0], [20, 21]])
  single = draws.points(strengths, 1)  # one draw: the plain strength grid
  np.testing.assert_array_equal(single['strength'], strengths)


def test_quality_and_accuracy_columns_pool_draws_and_targets():
  rng = np.random.default_rng(1)
  references = rng.uniform(size=(4, 16, 16, 1)).astype(np.float32)
  recon = np.clip(references + rng.normal(0, 0.2, (2, 4, 16, 16, 1)), 0, 1).astype(np.float32)
  row = draws.quality_summary(recon, references)
  per_draw = [image_metrics.ssim(jnp.asarray(recon[r]), jnp.asarray(references)) for r in range(2)]
  assert row['ssim_mean'] == pytest.approx(float(np.mean(per_draw)), abs=1e-6)
  assert row['ssim_low'] < row['ssim_mean'] < row['ssim_high']
  assert (row['ssim_low'], row['ssim_high']) == pytest.approx(
      intervals.crossed_interval(np.asarray(per_draw)))
  one = draws.quality_summary(recon[:1], references)  # one draw: the pre-draw columns
  for name, value in image_metrics.quality_summary(jnp.asarray(recon[0]),
                                                   jnp.asarray(references)).items():
    assert one[name] == pytest.approx(value, rel=1e-5), name
  correct = np.array([[True, False, True, True], [True, True, False, True]])
  accuracy = draws.accuracy_summary(correct)
  assert accuracy['model_test_accuracy'] == 0.75
  assert accuracy['model_test_accuracy_low'] < 0.75 < accuracy['model_test_accuracy_high']


@pytest.mark.parametrize('value', [0, -1, 1.5, True, '2'])
def test_bad_num_draws_names_the_field(value):
  config = inversion_breastmnist.get_config('smoke')
  block = dict(config.defense.model_perturbation.items(), num_draws=value)
  config.defense.model_perturbation = ml_collections.ConfigDict(block)  # any type
  with pytest.raises(ValueError, match=r'defense\.model_perturbation\.num_draws'):
    inversion_experiment.validate(config)


def test_configs_run_more_than_one_draw_where_cheap():
  smoke, full = inversion_breastmnist.get_config('smoke'), inversion_breastmnist.get_config()
  inversion_experiment.validate(smoke)
  inversion_experiment.validate(full)
  assert smoke.defense.feature_noise.num_draws == 2  # the smoke run exercises the draw axis
  assert full.defense.model_perturbation.num_draws == 3
  inversion_breastmnist.keep_core(full)  # the demo and the DP study keep their time
  assert full.defense.model_perturbation.num_draws == 1
  block = ml_collections.ConfigDict({'strengths': (0.0,)})  # older blocks: one draw
  assert draws.num_draws(block) == 1


def _row(strength, mean, low, high, **extra):
  return dict(attack='inverse_network', split=2, defense='model_perturbation', mode='fixed',
              knows_defense=True, reference='target', strength=strength, ssim_mean=mean,
              ssim_low=low, ssim_high=high, model_test_accuracy=0.8,
              model_test_accuracy_low=0.7, model_test_accuracy_high=0.9, num_draws=3, **extra)


def test_report_cells_and_figure_bands_show_the_interval(tmp_path):
  rows = [_row(0.0, 0.9, 0.85, 0.95, mse_mean=0.01, mse_low=0.005, mse_high=0.015,
               psnr_mean=math.inf, psnr_low=math.nan, psnr_high=math.nan),
          _row(0.05, 0.4, 0.3, 0.5, mse_mean=0.05, mse_low=0.04, mse_high=0.06,
               psnr_mean=13.0, psnr_low=12.0, psnr_high=14.0)]
  table = '\n'.join(study_report._inverse_table(rows, 'model_perturbation', 'σ'))
  assert '0.900 [0.850, 0.950]' in table and '0.400 [0.300, 0.500]' in table
  assert '13.00 [12.00, 14.00]' in table and '| inf |' in table  # no finite interval: mean
  every = '\n'.join(study_report._every_attack_table(rows, 'model_perturbation', 'σ'))
  assert '0.400 [0.300, 0.500]' in every
  assert 'model_perturbation 3' in '\n'.join(study_report._draws_note(rows))
  fig, ax = plots.plt.subplots()
  plots.band(ax, rows, 'ssim')
  (polygon,) = ax.collections
  ys = polygon.get_paths()[0].vertices[:, 1]
  assert ys.min() == pytest.approx(0.3) and ys.max() == pytest.approx(0.95)
  plots.plt.close(fig)
  assert plots.error_bars(rows, 'ssim') == [[pytest.approx(0.05), pytest.approx(0.1)],
                                            [pytest.approx(0.05), pytest.approx(0.1)]]
  path = inversion_figures.ssim_vs_strength(str(tmp_path), rows, 'model_perturbation')
  assert path.endswith('ssim_vs_sigma.png')
