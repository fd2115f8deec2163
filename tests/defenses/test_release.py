"""Defenses on the released output (medinv.defenses.release): the registered deployments and
the release channel attribute inference builds from them."""
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from medinv import defenses

PROBS = jnp.asarray([[0.72, 0.18, 0.10], [0.05, 0.31, 0.64], [0.34, 0.33, 0.33]])


def _deployed(name, key, strength, **overrides):
  cfg = ml_collections.ConfigDict(defenses.config_block(name, **overrides))
  return defenses.deploy(name, key, None, strength, cfg, split=None, variant='')


def test_release_channel_composes_the_registered_output_defenses_in_order():
  """attribute inference's channel: postprocessing with one split of the key, then randomized
  response with the other, each the registered deployment."""
  key = jax.random.key(5)
  for release, noise_std in (('noisy_probs', 0.2), ('rounded', 0.0), ('label', 0.0)):
    vector, label = defenses.release_channel(key, PROBS, 0.4, release=release, decimals=1,
                                             noise_std=noise_std)
    post_key, flip_key = jax.random.split(key, 2)
    want_vector, want_label = _deployed('output_postprocessing', post_key, noise_std,
                                        release=release).release(PROBS, jnp.argmax(PROBS, -1))
    want_vector, want_label = _deployed('randomized_response', flip_key, 0.4).release(
        want_vector, want_label)
    np.testing.assert_array_equal(vector, want_vector)
    np.testing.assert_array_equal(label, want_label)
    np.testing.assert_array_equal(np.argmax(vector, -1), label)  # the vector follows the label
  with pytest.raises(ValueError, match=r"each must be a registered output defense, got \['model_"):
    defenses.release_through(key, PROBS, {'model_perturbation': (0.1, None)})


def test_postprocessing_strength_is_the_noise_std():
  key = jax.random.key(0)
  probs = jnp.full((4000, 2), 0.5)
  clean, _ = _deployed('output_postprocessing', key, 0.0, release='noisy_probs').release(
      probs, jnp.zeros(4000, jnp.int32))
  np.testing.assert_allclose(clean, probs)
  noisy, label = _deployed('output_postprocessing', key, 0.05, release='noisy_probs').release(
      probs, jnp.zeros(4000, jnp.int32))
  # Two classes: p0 = (0.5 + e0) / (1 + e0 + e1) ~ 0.5 + (e0 - e1) / 2: std 0.05 / sqrt 2.
  assert float(jnp.std(noisy[:, 0])) == pytest.approx(0.05 / math.sqrt(2), rel=0.1)
  np.testing.assert_array_equal(label, jnp.argmax(noisy, -1))
  rounded, _ = _deployed('output_postprocessing', key, 0.0, release='rounded',
                         decimals=1).release(PROBS, None)
  np.testing.assert_allclose(rounded, jnp.round(PROBS, 1))
  with pytest.raises(ValueError, match=r"output_postprocessing.release 'logits': allowed"):
    defenses.check_block('output_postprocessing', defenses.config_block(
        'output_postprocessing', release='logits'))


def test_randomized_response_releases_any_batch_shape():
  """(answers, views, records) labels draw as one array from the deployment's key."""
  key = jax.random.key(2)
  labels = jnp.zeros((3, 2, 500), jnp.int32)
  vector = jnp.broadcast_to(jnp.asarray([0.9, 0.1]), (3, 2, 500, 2))
  released_vector, released = _deployed('randomized_response', key, 0.3).release(vector, labels)
  np.testing.assert_array_equal(released, defenses.randomized_response(key, labels, 0.3, 2))
  flipped = np.asarray(released != 0)
  assert abs(flipped.mean() - 0.3) < 4 * math.sqrt(0.3 * 0.7 / flipped.size)
  np.testing.assert_allclose(released_vector[..., 0], np.where(flipped, 0.1, 0.9))
