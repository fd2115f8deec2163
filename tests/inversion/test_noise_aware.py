"""The noise-aware inverse network (medinv.inversion.noise_aware): a fresh query, so a fresh
perturbation, for every image of every training batch; the same seed reproduces the decoder;
averaging `views` resends of the targets' features shrinks the noise variance ~1/views."""
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import inversion_breastmnist
from medinv import defenses
from medinv.defenses import features as feature_defenses
from medinv import models
from medinv.inversion import reconstruct
from medinv.inversion import attacks as inversion_attacks
from medinv.inversion import noise_aware

SIZE = 16


def flat_edge(params, images):
  """A planted 'edge' whose features are the image times the weights: with identical images,
  the features are the perturbed weights of the query that answered them."""
  return images.reshape(images.shape[0], -1) * params['w']


@functools.lru_cache
def _split_cnn():
  model = models.SplitCNN(num_classes=2)
  params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, SIZE, SIZE, 1)))['params']
  return model, params


def _images(n, seed=0):
  return jnp.asarray(np.random.default_rng(seed).uniform(size=(n, SIZE, SIZE, 1)), jnp.float32)


def _context(knows_defense=True, key=0, **cfg):
  model, theta = _split_cnn()
  block = dict(noise_aware.DEFAULTS, steps=3, batch_size=4, width=8, **cfg)
  return inversion_attacks.Context(
      model=model, split=2, cfg=ml_collections.ConfigDict(block), key=jax.random.key(key),
      theta=theta, x_targets=_images(3, seed=1), x_aux=_images(12, seed=2),
      y_aux=jnp.zeros((12,), jnp.int32), num_classes=2, knows_defense=knows_defense)


def test_training_queries_are_one_per_image_and_fresh_every_step():
  first, second = (np.asarray(noise_aware.training_queries(t, 8)) for t in (0, 1))
  assert len(set(first)) == 8 and not set(first) & set(second)
  assert first.min() >= reconstruct.ATTACKER_QUERIES and second.max() < reconstruct.EVAL_QUERIES


def test_each_image_of_a_batch_gets_its_own_perturbation_of_the_model():
  d = 32
  held = defenses.ModelPerturbation(jax.random.key(4), {'w': jnp.ones((d,))}, 0.1,
                                    mode='per_query')
  same = jnp.ones((6, d))  # six copies of one image: any difference is the perturbation's
  query_fn = noise_aware.per_image_query_fn(held, flat_edge)
  seen = np.asarray(query_fn(5, same))
  # image i was answered by the model of query training_queries(5)[i], and by no other
  for i, q in enumerate(np.asarray(noise_aware.training_queries(5, 6))):
    np.testing.assert_allclose(seen[i], held.params_for(q)['w'], rtol=1e-6)
  distinct = {row.tobytes() for row in seen}
  assert len(distinct) == 6
  assert not distinct & {row.tobytes() for row in np.asarray(query_fn(6, same))}
  # The per-batch attacker (inverse_network) sees ONE perturbed model for the whole batch.
  batch = np.asarray(defenses.query_batch(held, flat_edge, same,
                                          reconstruct.ATTACKER_QUERIES + 5))
  assert len({row.tobytes() for row in batch}) == 1
  # The same seed reproduces the draws; another defense key draws others.
  np.testing.assert_array_equal(seen, np.asarray(query_fn(5, same)))
  other = noise_aware.per_image_query_fn(
      defenses.ModelPerturbation(jax.random.key(5), {'w': jnp.ones((d,))}, 0.1,
                                 mode='per_query'), flat_edge)
  assert not np.allclose(seen, np.asarray(other(5, same)))


def test_the_decoder_is_trained_on_per_image_perturbations(monkeypatch):
  """What noise_aware.train hands the decoder's training loop: under per-query perturbation
  of the SplitCNN edge, every image of a batch of identical images gets different features."""
  captured = {}

  def fake_train_decoder(key, query_fn, aux_images, **kwargs):
    captured.update(query_fn=query_fn, batch_size=kwargs['batch_size'])
    return {}, jnp.zeros((kwargs['steps'],))
  monkeypatch.setattr(noise_aware.reconstruct, 'train_decoder', fake_train_decoder)
  ctx = _context()
  held = defenses.ModelPerturbation(jax.random.key(7), ctx.theta, 0.05, mode='per_query')
  noise_aware.train(ctx, held)
  same = jnp.broadcast_to(ctx.x_aux[:1], (captured['batch_size'],) + ctx.x_aux.shape[1:])
  seen = np.asarray(captured['query_fn'](2, same))
  rows = seen.reshape(len(seen), -1)
  assert min(np.abs(rows[i] - rows[j]).max() for i in range(len(rows))
             for j in range(i)) > 1e-4
  clean = np.asarray(ctx.edge(ctx.theta, same[:1]))[0]
  assert np.abs(seen - clean).max() > 1e-3  # and none of them is the clean answer
  # inverse_network's query (one per batch) gives every copy the same features
  batch = defenses.query_batch(held, ctx.edge, same, reconstruct.ATTACKER_QUERIES + 2)
  np.testing.assert_allclose(batch[0], batch[-1], atol=1e-6)


def test_same_seed_same_decoder_and_other_seed_another():
  ctx = _context()
  held = feature_defenses.FeatureNoise(jax.random.key(3), ctx.theta, 1.0)
  first = jax.tree.leaves(noise_aware.train(ctx, held))
  again = jax.tree.leaves(noise_aware.train(ctx, held))
  other = jax.tree.leaves(noise_aware.train(_context(key=1), held))
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a, b)
  assert any(not np.allclose(a, b) for a, b in zip(first, other))


def test_averaging_views_shrinks_the_feature_noise_like_one_over_views():
  n, d, sigma = 4, 4096, 1.0
  x = jnp.asarray(np.random.default_rng(0).uniform(0.5, 1.5, (n, d)), jnp.float32)
  held = feature_defenses.FeatureNoise(jax.random.key(11), {'w': jnp.ones((d,))}, sigma)
  received = defenses.query_each(held, flat_edge, x, reconstruct.TARGET_QUERIES)
  rms = np.sqrt(np.mean(np.square(np.asarray(x)), axis=1, keepdims=True))
  variances = {}
  for views in (1, 4, 16):
    stack = noise_aware.received_views(held, flat_edge, x, received, views)
    assert stack.shape == (views, n, d)
    np.testing.assert_array_equal(stack[0], received)  # view 0: what hospital A sent
    if views > 1:  # view v: the targets resent as queries TARGET_QUERIES + v * n + i
      np.testing.assert_allclose(
          stack[2 % views], defenses.query_each(held, flat_edge, x, (2 % views) * n),
          atol=1e-5)
      assert len({np.asarray(v).tobytes() for v in stack}) == views
    noise = (np.mean(np.asarray(stack), axis=0) - np.asarray(x)) / rms
    variances[views] = float(np.var(noise))
  assert variances[1] == pytest.approx(sigma ** 2, rel=0.05)
  for views in (4, 16):
    assert variances[views] * views == pytest.approx(variances[1], rel=0.1)


def test_fixed_perturbation_views_are_all_the_same():
  d = 16
  held = defenses.ModelPerturbation(jax.random.key(2), {'w': jnp.ones((d,))}, 0.1,
                                    mode='fixed')
  x = jnp.ones((3, d))
  received = defenses.query_each(held, flat_edge, x, reconstruct.TARGET_QUERIES)
  stack = np.asarray(noise_aware.received_views(held, flat_edge, x, received, 3))
  np.testing.assert_array_equal(stack[1], stack[0])
  np.testing.assert_array_equal(stack[2], stack[0])


def test_attack_averages_decoded_views_and_the_clean_view_decodes_what_it_received():
  ctx = _context(views=3)
  held = feature_defenses.FeatureNoise(jax.random.key(5), ctx.theta, 1.0)
  features = defenses.query_each(held, ctx.edge, ctx.x_targets, reconstruct.TARGET_QUERIES)
  recon = jax.jit(lambda f: noise_aware.attack(ctx, held, f, {}))(features)
  assert recon.shape == ctx.x_targets.shape
  assert float(recon.min()) >= 0.0 and float(recon.max()) <= 1.0
  params = noise_aware.train(ctx, held)
  decoder = noise_aware._decoder(ctx)
  views = noise_aware.received_views(held, ctx.edge, ctx.x_targets, features, 3)
  expected = np.mean([decoder.apply({'params': params}, v) for v in views], axis=0)
  np.testing.assert_allclose(recon, expected, atol=1e-5)
  # An attacker that does not know the defense decodes the one view it received.
  clean_ctx = _context(knows_defense=False, views=3)
  prepared = noise_aware._prepare(clean_ctx)
  blind = noise_aware.attack(clean_ctx, defenses.Deployment(None, ctx.theta), features,
                             prepared)
  np.testing.assert_allclose(
      blind, decoder.apply({'params': prepared}, features), atol=1e-6)


def test_registered_with_a_config_block_and_checked():
  attack = inversion_attacks.get('noise_aware_inverse')
  assert attack.uses_view and attack.prepare is not None
  assert attack.fold not in {inversion_attacks.get(name).fold
                             for name in inversion_breastmnist.ATTACKS}
  config = inversion_breastmnist.get_config('smoke')
  assert 'noise_aware_inverse' not in config.attack.names  # opt-in
  block = config.attack.noise_aware_inverse
  assert block.views == 1 and block.steps == 10
  attack.check(block)
  bad = ml_collections.ConfigDict(dict(block.to_dict(), views=0))
  with pytest.raises(ValueError, match='views must be positive'):
    attack.check(bad)
  with pytest.raises(ValueError, match='views must be positive'):
    noise_aware.received_views(None, flat_edge, jnp.ones((1, 2)), jnp.ones((1, 2)), 0)
  core = inversion_breastmnist.get_config('smoke')
  inversion_breastmnist.keep_core(core)
  assert 'noise_aware_inverse' not in core.attack
