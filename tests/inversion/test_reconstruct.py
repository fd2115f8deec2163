"""Model-inversion attacks: recovery on invertible edges, vmap == loop, the perturbation defense's
noise, the objective registry, bad input, end to end (MI-FACE: tests/inversion/test_mi_face.py)."""
import functools
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy import stats

import experiment_runs
from configs import inversion_breastmnist
from medinv.models import decoders
from medinv import defenses
from medinv.inversion import experiment as inversion_experiment
from medinv import models
from medinv.inversion import reconstruct
from medinv.inversion import objectives

SIZE = 8  # 8x8 single-channel images for the linear-edge tests


def linear_edge(weights, images):
  """A small invertible 'edge': features = flattened image @ weights."""
  return images.reshape(images.shape[0], -1) @ weights


def blocky_images(n, seed=0):
  """Piecewise-constant images in [0.1, 0.9] (what TV favours)."""
  rng = np.random.default_rng(seed)
  coarse = rng.uniform(0.1, 0.9, (n, SIZE // 4, SIZE // 4, 1))
  return jnp.asarray(np.repeat(np.repeat(coarse, 4, 1), 4, 2), jnp.float32)


def random_weights(out_dim, seed=1):
  """out_dim orthonormal columns (all of them: an orthogonal, well-conditioned edge)."""
  rng = np.random.default_rng(seed)
  q, _ = np.linalg.qr(rng.normal(size=(SIZE * SIZE, SIZE * SIZE)))
  return jnp.asarray(q[:, :out_dim], jnp.float32)


def test_total_variation_term():
  ctx = objectives.Context()
  assert float(objectives.TERMS['tv'](jnp.full((SIZE, SIZE, 1), 0.3), ctx)) == 0.0
  stripes = jnp.tile(jnp.array([0.0, 1.0]), SIZE // 2)[None, :, None] * jnp.ones((SIZE, 1, 1))
  # Every horizontal neighbour differs by 1, no vertical one does.
  assert float(objectives.TERMS['tv'](stripes, ctx)) == pytest.approx(1.0)


def test_rmle_recovers_input_of_invertible_linear_edge():
  targets = blocky_images(3)
  weights = random_weights(SIZE * SIZE)  # orthogonal: invertible
  recon, losses = reconstruct.rmle(
      linear_edge, weights, linear_edge(weights, targets), jnp.full((SIZE, SIZE, 1), 0.5),
      objective='feature_l2:1.0,tv:0.0001', steps=400, learning_rate=0.02)
  assert recon.shape == targets.shape and losses.shape == (3, 400)
  assert float(jnp.max(jnp.abs(recon - targets))) < 0.03
  assert np.all(losses[:, -1] < losses[:, 0] * 1e-2)


def test_tv_prior_helps_when_the_edge_loses_information():
  targets = blocky_images(3, seed=2)
  weights = random_weights(SIZE * SIZE // 2)  # half the dimensions: not invertible
  features, x0 = linear_edge(weights, targets), jnp.full((SIZE, SIZE, 1), 0.5)
  errors = {}
  for spec in ('feature_l2:1.0', 'feature_l2:1.0,tv:0.002'):
    recon, _ = reconstruct.rmle(linear_edge, weights, features, x0, objective=spec, steps=400,
                                learning_rate=0.02)
    errors[spec] = float(jnp.mean(jnp.square(recon - targets)))
  assert errors['feature_l2:1.0,tv:0.002'] < 0.5 * errors['feature_l2:1.0']


def test_vmapped_rmle_equals_per_target_loop():
  targets = blocky_images(3, seed=3)
  weights = random_weights(SIZE * SIZE)
  features, x0 = linear_edge(weights, targets), jnp.full((SIZE, SIZE, 1), 0.5)
  # A smooth objective: with |.| (TV) Adam amplifies float rounding near zero gradients.
  kwargs = dict(objective='feature_l2:1.0,prior_l2:0.1', steps=30, learning_rate=0.05,
                prior_image=x0)
  attack = jax.jit(lambda v: reconstruct.rmle(linear_edge, weights, v, x0, **kwargs)[0])
  batched = attack(features)
  looped = jnp.concatenate([attack(features[i:i + 1]) for i in range(3)])
  np.testing.assert_allclose(batched, looped, atol=1e-5)


def test_grid_in_chunks_equals_whole_grid_and_resumes(tmp_path):
  sigmas = np.array([0.0, 0.5, 1.0, 2.0, 3.0], np.float32)
  calls = []

  def call(s):  # a grid program: {mode: (n_sigma, ...)}
    calls.append(len(s))
    return {'fixed': jnp.sin(s[:, None] * jnp.arange(4.0)), 'per_query': s * 2}

  whole = inversion_experiment._over_grid(str(tmp_path / 'a'), 'toy', sigmas, 0, call)
  chunked = inversion_experiment._over_grid(str(tmp_path / 'b'), 'toy', sigmas, 2, call)
  assert calls == [5, 2, 2, 2]  # the last chunk is padded to the same shape
  for mode in whole:
    np.testing.assert_allclose(chunked[mode], whole[mode], atol=1e-6)
    assert chunked[mode].shape[0] == len(sigmas)
  # all stages kept
  again = inversion_experiment._over_grid(str(tmp_path / 'b'), 'toy', sigmas, 2, call)
  assert calls == [5, 2, 2, 2] and np.array_equal(again['fixed'], chunked['fixed'])


def test_custom_term_registered_here_changes_reconstruction(monkeypatch):
  monkeypatch.setattr(objectives, 'TERMS', dict(objectives.TERMS))  # undone after the test

  @objectives.register('brightness')
  def brightness(x, ctx):  # pylint: disable=unused-variable
    del ctx
    return -jnp.mean(x)

  targets = blocky_images(2, seed=4)
  weights = random_weights(SIZE * SIZE // 4)
  features, x0 = linear_edge(weights, targets), jnp.full((SIZE, SIZE, 1), 0.5)
  kwargs = dict(steps=100, learning_rate=0.05)
  plain, _ = reconstruct.rmle(linear_edge, weights, features, x0, objective='feature_l2:1.0',
                              **kwargs)
  bright, _ = reconstruct.rmle(linear_edge, weights, features, x0,
                               objective='feature_l2:1.0,brightness:0.1', **kwargs)
  assert float(jnp.mean(bright)) > float(jnp.mean(plain)) + 0.05
  with pytest.raises(ValueError, match='already registered'):
    objectives.register('brightness', lambda x, ctx: 0.0)


def test_objective_spec_errors():
  assert objectives.parse('feature_l2:1.0, tv:0.05') == (('feature_l2', 1.0), ('tv', 0.05))
  assert objectives.parse('tv') == (('tv', 1.0),)
  with pytest.raises(ValueError, match="unknown objective term 'tvv'.*registered terms"):
    objectives.parse('feature_l2:1,tvv:0.1')
  with pytest.raises(ValueError, match="'tv': weight must be >= 0"):
    objectives.parse('feature_l2:1,tv:-0.1')
  with pytest.raises(ValueError, match='appears twice'):
    objectives.parse('tv:1,tv:2')
  with pytest.raises(ValueError, match='names no terms'):
    objectives.parse('')
  with pytest.raises(ValueError, match='needs Context fields'):
    objectives.build('class_conf')(jnp.zeros((SIZE, SIZE, 1)), objectives.Context())


@functools.lru_cache
def _split_cnn_params(size=16):
  model = models.SplitCNN(num_classes=2)
  return model, jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, size, size, 1)))['params']


def test_perturbation_has_configured_std_and_touches_only_scope():
  _, params = _split_cnn_params()
  sigma = 0.05
  mask = defenses.scope_mask(params, 'edge', 2)
  noisy = jax.jit(lambda p: defenses.ModelPerturbation(jax.random.key(3), p, sigma, mode='fixed',
                                                       mask=mask).params_for(0))(params)
  for name in params:
    for leaf in params[name]:
      delta = np.asarray(noisy[name][leaf] - params[name][leaf]).ravel()
      if name in ('conv1', 'conv2'):
        assert stats.kstest(delta / sigma, 'norm').pvalue > 1e-3, (name, leaf)
      else:
        assert np.all(delta == 0), (name, leaf)
  everything = jax.jit(lambda p: defenses.ModelPerturbation(
      jax.random.key(3), p, sigma, mode='fixed', mask=defenses.scope_mask(params, 'all')
  ).params_for(0))(params)
  assert stats.kstest(np.asarray(everything['fc1']['kernel'] - params['fc1']['kernel']).ravel()
                      / sigma, 'norm').pvalue > 1e-3


def test_per_query_noise_differs_between_queries_and_fixed_does_not():
  model, params = _split_cnn_params()
  images = jnp.asarray(np.random.default_rng(0).uniform(size=(3, 16, 16, 1)), jnp.float32)
  edge = models.edge_fn(model, 2)
  for mode in ('fixed', 'per_query'):
    deployment = defenses.ModelPerturbation(jax.random.key(1), params, 0.1, mode=mode)
    first, second = (deployment.params_for(q)['conv1']['kernel'] for q in (0, 1))
    assert np.array_equal(first, second) == (mode == 'fixed')
    # Each image its own query: the same image answered twice differs only per query.
    same = jnp.concatenate([images[:1]] * 2)
    answers = defenses.query_each(deployment, edge, same, 0)
    gap = float(jnp.max(jnp.abs(answers[0] - answers[1])))
    # Fixed: the same weights, equal up to float rounding (4.8e-7 seen: the two queries'
    # convolutions need not round alike); per query: other weights, a gap of the noise's size.
    assert (gap < 1e-4 if mode == 'fixed' else gap > 1e-2), (mode, gap)
    # query_each answers image i with the parameters of query first + i.
    np.testing.assert_allclose(answers[1], edge(deployment.params_for(1), same[1:])[0],
                               atol=1e-5)


@pytest.mark.parametrize('split,size', [(2, 16), (4, 16), (6, 16)])
def test_decoder_sized_to_split(split, size):
  model, params = _split_cnn_params(size)
  features = models.edge_fn(model, split)(params, jnp.zeros((2, size, size, 1)))
  assert features.shape[1:] == decoders.feature_shape((size, size, 1), split)
  decoder = decoders.InverseDecoder(split, 1, width=8)
  out = decoder.apply(decoder.init(jax.random.key(0), features), features)
  assert out.shape == (2, size, size, 1) and float(out.min()) >= 0 and float(out.max()) <= 1


def test_inverse_network_learns_linear_edge():
  aux, targets = blocky_images(64, seed=5), blocky_images(3, seed=6)
  weights = random_weights(SIZE * SIZE)

  class Linear(decoders.nn.Module):
    @decoders.nn.compact
    def __call__(self, h):
      return decoders.nn.Dense(SIZE * SIZE)(h).reshape(h.shape[0], SIZE, SIZE, 1)

  recon, losses = reconstruct.inverse_network(
      jax.random.key(0), lambda q, x: linear_edge(weights, x), aux,
      linear_edge(weights, targets), decoder=Linear(), steps=300, batch_size=16,
      learning_rate=1e-2, augment_flip=False)
  assert float(losses[-1]) < 0.1 * float(losses[0])
  assert float(jnp.mean(jnp.square(recon - targets))) < 0.01


def test_decoder_on_a_feature_table_equals_decoder_on_queries():
  """A deployment that answers every query alike: looking each batch's features up in the
  table of every image and its mirror trains the same decoder as querying each batch."""
  model, params = _split_cnn_params(16)
  aux = jax.random.uniform(jax.random.key(3), (12, 16, 16, 1))
  edge = models.edge_fn(model, 2)
  held = defenses.Deployment(None, params)
  assert held.same_for_every_query
  assert not defenses.deploy('model_perturbation', jax.random.key(0), params, 0.1,
                             defenses.config_block('model_perturbation'), split=2,
                             variant='per_query').same_for_every_query
  decoder = decoders.InverseDecoder(2, 1, width=8)
  query_fn = lambda t, images: defenses.query_batch(held, edge, images, t)
  table = reconstruct.feature_table(lambda images: query_fn(0, images), aux, True)
  train = functools.partial(reconstruct.train_decoder, jax.random.key(4), query_fn, aux,
                            decoder=decoder, steps=6, batch_size=5, learning_rate=1e-2)
  queried, looked_up = train(), train(table=table)
  np.testing.assert_allclose(looked_up[1], queried[1], rtol=1e-4)  # per-step losses
  for a, b in zip(jax.tree.leaves(looked_up[0]), jax.tree.leaves(queried[0])):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  wrong = jnp.stack([table[1], table[0]])  # mirrored features for unmirrored images
  assert not np.allclose(train(table=wrong)[1], queried[1], rtol=1e-4)


def test_bad_input_is_rejected_before_compute():
  images = np.random.default_rng(0).uniform(size=(5, 16, 16, 1)).astype(np.float32)
  with pytest.raises(ValueError, match='overlaps the targets'):
    reconstruct.check_attack_images(images[:2], images[1:])
  with pytest.raises(ValueError, match='different shapes'):
    reconstruct.check_attack_images(images[:2], images[2:, :8])
  cases = [('defense.model_perturbation.strengths', (0.0, -0.1), 'strengths must be >= 0'),
           ('attack.splits', (3,),
            r'every entry of attack.splits \(3,\) must be one of \(2, 4, 6\)'),
           ('attack.rmle.objective', 'feature_l2:1.0,tv:-1',
            "^attack.rmle.objective: objective term 'tv': weight must be >= 0"),
           ('attack.query_free.objective', 'tvv:1',
            "^attack.query_free.objective: unknown objective term 'tvv'"),
           ('attack.rmle.steps', 0, 'attack.rmle.steps must be positive'),
           ('attack.inverse_network.steps', 0, 'attack.inverse_network.steps must be positive'),
           ('defense.model_perturbation.modes', ('sometimes',), 'allowed'),
           ('attack.names', ('guess',), 'unknown'),
           ('attack.rmle.stepz', 3, 'unknown fields')]
  for field, value, message in cases:
    config = inversion_breastmnist.get_config('smoke')
    *parents, key = field.split('.')
    node = config
    for part in parents:
      node = node[part]
    with node.unlocked():
      node[key] = value
    with pytest.raises(ValueError, match=message):
      inversion_experiment.validate(config)
  config = inversion_breastmnist.get_config('smoke')
  with config.unlocked():
    config.defense.cloak = ml_collections.ConfigDict({'strengths': (0.0,)})
  with pytest.raises(ValueError, match="unknown defense 'cloak'"):
    inversion_experiment.validate(config)
  with pytest.raises(ValueError, match='zero|positive'):
    reconstruct.rmle(linear_edge, random_weights(4), jnp.zeros((1, 4)),
                     jnp.zeros((SIZE, SIZE, 1)), objective='tv', steps=0, learning_rate=0.1)


ATTACKS = ('inverse_network', 'query_free')  # the two with prepared stages


@pytest.mark.e2e  # runs an experiment end to end: the e2e tier
def test_model_inversion_smoke_end_to_end(tmp_path, data_dir):
  workdir = str(tmp_path / 'inversion')
  # The demo's smoke run runs all four core attacks.
  experiment_runs.model_inversion_smoke(workdir, data_dir, f'--config.attack.names={ATTACKS!r}')
  with open(os.path.join(workdir, 'results.json')) as f:
    results = json.load(f)
  config = inversion_breastmnist.get_config('split=2,smoke')
  config.attack.names = ATTACKS
  rows = results['rows']
  attacks = {r['attack'] for r in rows}
  assert attacks == set(config.attack.names) | {'mean_aux_image'}
  perturbation = config.defense.model_perturbation
  grid = len(perturbation.strengths) * len(perturbation.modes)
  knows = len(config.attack.knows_defense)
  feature = sum(len(config.defense[name].strengths)  # One variant each.
                for name in ('feature_noise', 'learned_noise'))
  assert len([r for r in rows if r['attack'] == 'inverse_network']) == (grid + feature) * knows
  assert len([r for r in rows if r['attack'] == 'query_free']) == grid + feature
  assert {r['defense'] for r in rows if r['attack'] == 'inverse_network'} == {
      'model_perturbation', 'feature_noise', 'learned_noise'}
  with open(os.path.join(workdir, 'target', 'results.json')) as f:
    clean_accuracy = json.load(f)['metrics']['test_accuracy']
  # Undefended, the deployed model is the trained one: its accuracy, in every attack row.
  assert {r['model_test_accuracy'] for r in rows if r['strength'] == 0.0} == {clean_accuracy}
  # Fresh noise per query changes what hospital A sends, so the reconstructions move.
  per_query = {r['strength']: r['ssim_mean'] for r in rows if r['attack'] == 'inverse_network'
               and r['mode'] == 'per_query' and r['knows_defense'] is False}
  assert per_query[0.05] != per_query[0.0]
  # At sigma 0 both modes deploy the same model, so every attack gets the same answers.
  for attack in ATTACKS:
    at_zero = {r['mode']: r['ssim_mean'] for r in rows if r['attack'] == attack
               and r['strength'] == 0.0 and r['knows_defense'] in (True, None)}
    assert at_zero['fixed'] == pytest.approx(at_zero['per_query'], abs=1e-5)
  # The smoke config's feature noise runs two draws: its rows pool them, with intervals.
  noisy = [r for r in rows if r['defense'] == 'feature_noise']
  assert noisy and {r['num_draws'] for r in noisy} == {config.defense.feature_noise.num_draws, 2}
  for r in noisy:
    assert r['ssim_low'] <= r['ssim_mean'] <= r['ssim_high']
    assert (r['model_test_accuracy_low'] <= r['model_test_accuracy']
            <= r['model_test_accuracy_high'])
  for name in ('results.csv', 'config.json', 'recon_inverse_network.png', 'ssim_vs_sigma.png',
               'target/results.json'):
    assert os.path.exists(os.path.join(workdir, name)), name
