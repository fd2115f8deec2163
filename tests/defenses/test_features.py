"""Split-inference defenses on the transmitted features, NoPeek and the feature-alignment attack
(their statistics, distance correlation and MMD: tests/metrics/test_features.py)."""
import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import inversion_breastmnist
from configs import split_defenses
from configs import train_breastmnist
from configs import train_heart
from medinv import defenses
from medinv.defenses import features as feature_defenses
from medinv.metrics import features as feature_metrics
from medinv.inversion import diagnose as inversion_diagnose
from medinv import models
from medinv.study import study
from medinv.study import split_defenses as study_defenses
from medinv.training import trainer
from medinv.inversion import reconstruct


def _deployment(name, key, strength, log_scale=None):
  cfg = ml_collections.ConfigDict(defenses.config_block(name))
  state = {'log_scale': jnp.zeros((8, 8, 16)) if log_scale is None else log_scale}
  return defenses.deploy(name, key, {}, strength, cfg, split=2, variant='', state=state)


@pytest.mark.parametrize('name,strength', [('feature_noise', 0.5), ('feature_dropout', 0.3),
                                           ('learned_noise', 0.5)])
def test_feature_defenses_draw_per_query_and_reproduce_from_the_seed(name, strength):
  features = jax.random.uniform(jax.random.key(0), (4, 8, 8, 16)) + 0.5
  deployed = _deployment(name, jax.random.key(7), strength)
  first, second = deployed.transmit(5, features), deployed.transmit(6, features)
  assert not np.allclose(first, second)  # Each query gets its own draw...
  again = _deployment(name, jax.random.key(7), strength).transmit(5, features)
  np.testing.assert_array_equal(first, again)  # ...reproducible from the key...
  other = _deployment(name, jax.random.key(8), strength).transmit(5, features)
  assert not np.allclose(first, other)  # ...and a different seed draws differently.
  untouched = _deployment(name, jax.random.key(7), 0.0).transmit(5, features)
  np.testing.assert_allclose(untouched, features, rtol=1e-6)


def test_feature_noise_and_dropout_have_their_stated_size():
  features = jax.random.uniform(jax.random.key(0), (64, 8, 8, 16)) + 0.5
  rms = float(jnp.sqrt(jnp.mean(features ** 2)))
  noisy = _deployment('feature_noise', jax.random.key(1), 0.4).transmit(0, features)
  assert float(jnp.std(noisy - features)) == pytest.approx(0.4 * rms, rel=0.02)
  dropped = _deployment('feature_dropout', jax.random.key(1), 0.3).transmit(0, features)
  assert float(jnp.mean(dropped == 0)) == pytest.approx(0.3, abs=0.01)
  assert float(jnp.mean(dropped)) == pytest.approx(float(jnp.mean(features)), rel=0.02)
  cfg = ml_collections.ConfigDict(defenses.config_block('feature_dropout', strengths=(0.0, 1.0)))
  with pytest.raises(ValueError, match=r'feature_dropout.strengths .* \[0, 1\)'):
    defenses.get('feature_dropout').check(cfg)


def test_learned_noise_spends_the_feature_noise_energy_where_its_allocation_says():
  features = jax.random.uniform(jax.random.key(0), (1, 8, 8, 16)) + 0.5
  # An isotropic allocation is exactly feature_noise (one image per query, the same key).
  np.testing.assert_allclose(
      _deployment('learned_noise', jax.random.key(3), 0.7).transmit(4, features),
      _deployment('feature_noise', jax.random.key(3), 0.7).transmit(4, features), rtol=1e-6)
  # All the energy on channels 0..3: they get twice the std, the others none.
  planted = jnp.where(jnp.arange(16) < 4, 0.0, -40.0) * jnp.ones((8, 8, 16))
  batch = jax.random.uniform(jax.random.key(1), (256, 8, 8, 16)) + 0.5
  noise = _deployment('learned_noise', jax.random.key(2), 0.5, planted).transmit(0, batch) - batch
  rms = jnp.sqrt(jnp.mean(batch ** 2, (1, 2, 3), keepdims=True))
  np.testing.assert_allclose(float(jnp.std(noise[..., :4] / rms)), 0.5 * 2.0, rtol=0.02)
  assert float(jnp.max(jnp.abs(noise[..., 4:]))) < 1e-6
  allocation = feature_defenses.allocation(planted + 3.0)  # Invariant to a shift of log_scale.
  assert float(jnp.mean(allocation ** 2)) == pytest.approx(1.0, rel=1e-5)


@pytest.mark.e2e  # runs an experiment end to end: the e2e tier
def test_learned_noise_fit_moves_the_noise_to_features_the_cloud_ignores():
  model = models.SplitCNN(num_classes=2)
  images = jax.random.uniform(jax.random.key(0), (64, 8, 8, 1))
  theta = model.init(jax.random.key(1), images[:1])['params']
  # Hospital B's first conv reads only channels 0..31 of the 64 the edge sends at split 2.
  kernel = theta['conv3']['kernel']
  theta = {**theta, 'conv3': {**theta['conv3'], 'kernel': kernel.at[:, :, 32:].set(0.0)}}
  # A confident model with balanced answers (margins scaled to std 10, centred at their
  # median), and its own answers as labels: noise the cloud reads can only cost accuracy.
  margin = jnp.diff(model.apply({'params': theta}, images), axis=-1)[:, 0]
  scale = 10.0 / jnp.std(margin)
  theta['fc2'] = {'kernel': theta['fc2']['kernel'] * scale,
                  'bias': (theta['fc2']['bias'] - jnp.array([0.0, jnp.median(margin)])) * scale}
  labels = jnp.argmax(model.apply({'params': theta}, images), -1)
  assert 0.4 < float(jnp.mean(labels)) < 0.6
  cfg = ml_collections.ConfigDict(defenses.config_block(
      'learned_noise', steps=100, batch_size=16, learning_rate=0.08, fit_strength=2.0))
  fit = jax.jit(lambda key, *data: defenses.get('learned_noise').fit(
      key, *data, cfg, model=model, split=2))
  fitted = fit(jax.random.key(2), theta, images, labels)
  allocation = feature_defenses.allocation(fitted['log_scale'])
  assert allocation.shape == (8, 8, 64)
  ignored = float(jnp.mean(allocation[..., 32:] ** 2))
  assert ignored > 1.8, ignored  # of at most 2.0 (every unit of energy there); 1.0 at start
  losses = np.asarray(fitted['losses'])
  assert losses[-20:].mean() < 0.5 * losses[:20].mean()
  with pytest.raises(ValueError, match='defense.learned_noise.steps must be positive'):
    defenses.get('learned_noise').check({**cfg.to_dict(), 'steps': 0})


@pytest.mark.e2e  # runs an experiment end to end: the e2e tier
def test_alignment_pulls_the_substitute_towards_the_observed_features():
  model = models.SplitCNN(num_classes=2)
  keys = jax.random.split(jax.random.key(0), 4)
  images = jax.random.uniform(keys[0], (64, 16, 16, 1))
  labels = (jnp.mean(images, (1, 2, 3)) > 0.5).astype(jnp.int32)
  theta = model.init(keys[1], images[:1])['params']
  edge = models.edge_fn(model, 2)
  observed = edge(theta, images[32:])  # What hospital B received: the real edge's features.

  def substitute_mmd(weight):
    substitute, _ = reconstruct.train_shadow_edge(
        keys[2], images[:32], labels[:32], model=model, split=2, cloud_params=theta, steps=60,
        batch_size=16, learning_rate=3e-3, augment_flip=False, observed=observed,
        mmd_weight=weight)
    return float(feature_metrics.mmd2(edge(substitute, images[:32]), observed))
  assert substitute_mmd(10.0) < 0.5 * substitute_mmd(0.0)


@pytest.mark.e2e  # runs an experiment end to end: the e2e tier
def test_nopeek_training_lowers_the_distance_correlation_of_the_features(data_dir, tmp_path):
  def dcor_after(weight):
    config = train_breastmnist.get_config('smoke')
    config.data.update(data_dir=data_dir, image_size=16)
    # A constant rate: the deployed recipe's cosine decay leaves 3 epochs too few steps at a
    # rate that moves the features.
    config.train.update(nopeek_weight=weight, nopeek_split=2, num_epochs=3, schedule='constant')
    trained = trainer.train_and_evaluate(config, str(tmp_path / f'w{weight}'))
    images = jnp.asarray(trained.task.x_test[:128])
    features = models.edge_fn(trained.model, 2)(trained.params, images)
    return float(feature_metrics.distance_correlation(images, features))
  plain, nopeek = dcor_after(0.0), dcor_after(5.0)
  assert nopeek < plain - 0.05, (plain, nopeek)


@pytest.mark.parametrize('overrides,message', [
    (dict(nopeek_weight=-1.0), 'train.nopeek_weight must be >= 0'),
    (dict(nopeek_weight=1.0, nopeek_split=3), r'train.nopeek_split must be one of \(2, 4, 6\)'),
])
def test_bad_nopeek_config_is_a_clear_error(overrides, message):
  config = train_breastmnist.get_config('smoke')
  config.train.update(overrides)
  with pytest.raises(ValueError, match=message):
    trainer.validate(config)
  heart = train_heart.get_config('smoke')
  heart.train.nopeek_weight = 1.0
  with pytest.raises(ValueError, match="train.nopeek_weight needs model 'split_cnn'"):
    trainer.validate(heart)


@pytest.mark.e2e  # runs an experiment end to end: the e2e tier
def test_split_defenses_study_smoke(data_dir, tmp_path):
  config = split_defenses.get_config('smoke')
  for part in config.parts.values():
    part.data.data_dir = data_dir
  assert sorted(config.parts) == ['inversion_breastmnist_deployed',
                                  'inversion_breastmnist_nopeek0p5']
  # Narrowed to what the study adds (its parts, curves, table and figure): the deployed
  # target under two of its defenses' strengths, attacked by the two attacks that need no
  # model of their own; every attack runs on the NoPeek target, and under every defense in
  # tests/inversion/test_reconstruct.py's smoke run.
  deployed = config.parts.inversion_breastmnist_deployed
  deployed.attack.names = ('inverse_network', 'rmle')
  deployed.defense.model_perturbation.strengths = (0.0, 0.05)
  study.run(config, str(tmp_path))
  parts = {name: json.loads((tmp_path / name / 'results.json').read_text())
           for name in config.parts}
  lines = study_defenses.curves(parts, config.parts, 2)
  assert set(lines) == {'model_perturbation', 'feature_noise', 'nopeek'}
  assert [r['nopeek_weight'] for r in lines['nopeek']] == [0.0, 0.5]
  for rows in lines.values():  # Each point is the strongest attack at its deployment.
    for r in rows:
      rivals = [o['ssim_mean'] for o in parts[_part_of(r, parts)]['rows']
                if o['split'] == 2 and o['reference'] == 'target' and o['defense'] == r['defense']
                and o['strength'] == r['strength'] and o['mode'] == r['mode']]
      assert r['ssim_mean'] == max(rivals) and r['ssim_low'] <= r['ssim_mean'] <= r['ssim_high']
  nopeek_target = parts['inversion_breastmnist_nopeek0p5']['rows']
  assert {r['attack'] for r in nopeek_target} >= {'inverse_network', 'rmle', 'feature_alignment'}
  report = (tmp_path / 'report.md').read_text()
  table = report[report.index('**Split 2**'):].split('\n\n')[1].splitlines()
  assert len(table) == 2 + sum(len(rows) for rows in lines.values())
  assert (tmp_path / 'privacy_utility_split2.png').read_bytes()[:4] == b'\x89PNG'


def _part_of(row, parts):
  return next(name for name, results in parts.items()
              if any(r == {k: v for k, v in row.items() if k != 'nopeek_weight'}
                     for r in results['rows']))


@pytest.mark.e2e  # runs an experiment end to end: the e2e tier
def test_query_free_diagnosis_measures_edges_against_hospital_as(data_dir, tmp_path):
  config = inversion_breastmnist.get_config('smoke')
  config.data.data_dir = data_dir
  config.attack.splits = (2,)
  rows = inversion_diagnose.diagnose(config, str(tmp_path))
  assert [r['edge'].split(',')[0] for r in rows] == [
      'real edge (white box)', 'query-free shadow', 'query-free shadow', 'aligned substitute']
  real = rows[0]
  target = json.loads((tmp_path / 'target' / 'results.json').read_text())['metrics']
  # Hospital A's own edge: no feature error, and through B's layers on the attacker's images
  # (the test split) exactly the target's test accuracy.
  assert real['feature_error'] == 0.0 and abs(real['mmd2_to_real']) < 1e-5
  assert real['accuracy_through_cloud'] == pytest.approx(target['test_accuracy'], abs=1e-6)
  assert all(r['feature_error'] > 0.05 for r in rows[1:])  # Substitutes are other edges.


def test_relative_sigma_scales_the_noise_by_each_tensor_and_reports_the_ratio():
  params = {'conv1': {'kernel': 0.5 * jax.random.normal(jax.random.key(0), (3, 3, 1, 64)),
                      'bias': jnp.zeros(64)},
            'conv2': {'kernel': 0.02 * jax.random.normal(jax.random.key(1), (3, 3, 64, 64)),
                      'bias': jnp.zeros(64)}}
  for relative, expected in ((False, (0.1, 0.1)), (True, (0.1 * 0.5, 0.1 * 0.02))):
    noisy = defenses.perturb_params(jax.random.key(2), params, 0.1, relative=relative)
    for name, std in zip(('conv1', 'conv2'), expected):
      noise = noisy[name]['kernel'] - params[name]['kernel']
      assert float(jnp.std(noise)) == pytest.approx(std, rel=0.1), (relative, name)
  mask = defenses.scope_mask(params, 'all')
  ratios = defenses.noise_to_weight(params, mask, relative=False)
  assert ratios['conv1'] == pytest.approx(2.0, rel=0.1)  # noise 1 / weights 0.5 per unit σ
  assert ratios['conv2'] == pytest.approx(50.0, rel=0.1)
  assert defenses.noise_to_weight(params, mask, relative=True) == {'conv1': 1.0, 'conv2': 1.0}
  cfg = defenses.config_block('model_perturbation', sigma_scale='relative', scope='all')
  deployed = defenses.deploy('model_perturbation', jax.random.key(2), params, 0.1, cfg,
                             split=None, variant='fixed')
  np.testing.assert_allclose(deployed.params_for(0)['conv2']['kernel'],
                             defenses.perturb_params(jax.random.key(2), params, 0.1,
                                                     relative=True)['conv2']['kernel'])
  cfg.sigma_scale = 'per_layer'
  with pytest.raises(ValueError, match=r"sigma_scale 'per_layer': allowed \('absolute'"):
    defenses.get('model_perturbation').check(cfg)
