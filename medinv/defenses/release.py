"""Defenses on what a deployment releases: randomized response and output postprocessing.

Both act on 'output': their deployments change the released probability vector and label
(`Deployment.release`), never the model.
  randomized_response    with probability p (the strength) the released label becomes a
                         uniformly chosen other class (`randomized_response`, epsilon-local-DP:
                         `randomized_response_epsilon`); the label alone is released. Its
                         block's `queries`: how often membership inference's attacker asks
                         each query view.
  output_postprocessing  the probability vector is released as a one-hot label, unchanged,
                         rounded to `decimals`, or with Gaussian noise whose std is the
                         strength (`release`: 'label', 'probs', 'rounded', 'noisy_probs';
                         `postprocess_probs`).

`release_channel` is attribute inference's rule per query: its flat config.defense block
(flip_probs, release, decimals, noise_std) sets both defenses, applied in the registry's order
(`release_through`, each with its own split of the key): the vector is postprocessed, then its
top-1 label goes through randomized response, the vector's entries of the old and the new
label swapped so that it ranks the released label first.
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from medinv.defenses import base

RELEASES = ('label', 'probs', 'rounded', 'noisy_probs')


def randomized_response(key: jax.Array, labels: jax.Array, flip_prob, num_classes: int
                        ) -> jax.Array:
  """With probability flip_prob, replaces each label by a uniformly chosen *different* class.

  Args:
    key: PRNG key; every label draws its own flip and replacement from it.
    labels: int array of class indices, any shape.
    flip_prob: scalar in [0, 1] (may be traced, so a grid of values can be vmapped).
    num_classes: k >= 2.

  Returns:
    int32 array shaped like labels.
  """
  flip_key, shift_key = jax.random.split(key)
  flip = jax.random.bernoulli(flip_key, flip_prob, labels.shape)
  # A shift in 1..k-1 lands uniformly on the k-1 other classes.
  shift = jax.random.randint(shift_key, labels.shape, 1, num_classes)
  return jnp.where(flip, (labels + shift) % num_classes, labels).astype(jnp.int32)


def randomized_response_epsilon(flip_prob: float, num_classes: int) -> float:
  """Local-DP epsilon of k-ary randomized response: ln((1 - p)(k - 1) / p); inf at p = 0.

  Only meaningful for p <= (k - 1) / k (at that point the release is independent of the
  label and epsilon is 0; larger p gives a negative value, i.e. the release anti-correlates).
  """
  if flip_prob <= 0.0:
    return math.inf
  if flip_prob >= 1.0:
    return -math.inf
  return math.log((1.0 - flip_prob) * (num_classes - 1) / flip_prob)


def postprocess_probs(key: jax.Array, probs: jax.Array, release: str, *, decimals: int = 1,
                      noise_std: float = 0.0) -> jax.Array:
  """What a deployment releases from a probability vector (last axis = classes).

  release: 'label' (one-hot of the top-1 class), 'probs' (unchanged), 'rounded' (rounded to
  `decimals`), 'noisy_probs' (plus N(0, noise_std^2), clipped at 0 and renormalised).
  """
  if release == 'probs':
    return probs
  if release == 'label':
    return jax.nn.one_hot(jnp.argmax(probs, -1), probs.shape[-1], dtype=probs.dtype)
  if release == 'rounded':
    return jnp.round(probs, decimals)
  if release == 'noisy_probs':
    noisy = jnp.clip(probs + noise_std * jax.random.normal(key, probs.shape, probs.dtype), 0.0)
    total = jnp.sum(noisy, -1, keepdims=True)
    uniform = jnp.full_like(noisy, 1.0 / probs.shape[-1])
    return jnp.where(total > 0, noisy / jnp.where(total > 0, total, 1.0), uniform)
  raise ValueError(f'unknown release {release!r}; allowed: {RELEASES}')


@dataclasses.dataclass(frozen=True)
class RandomizedResponse(base.Deployment):
  """Flips each released label with probability strength; swaps the vector's entries for the
  old and the new label, so the vector ranks the released label first."""

  def release(self, vector, label):
    released = randomized_response(self.key, label, self.strength, vector.shape[-1])
    classes = jnp.arange(vector.shape[-1])
    source = jnp.where(classes == label[..., None], released[..., None],
                       jnp.where(classes == released[..., None], label[..., None], classes))
    return jnp.take_along_axis(vector, source, -1), released


@dataclasses.dataclass(frozen=True)
class OutputPostprocessing(base.Deployment):
  """Releases `postprocess_probs` of the vector (cfg: release, decimals; the strength is the
  noise std of 'noisy_probs') and its top-1 label."""

  def release(self, vector, label):
    del label
    vector = postprocess_probs(self.key, vector, self.cfg['release'],
                               decimals=self.cfg['decimals'], noise_std=self.strength)
    return vector, jnp.argmax(vector, -1)


def _check_randomized_response(cfg) -> None:
  if max(cfg.strengths) > 1 or cfg.queries < 1:
    raise ValueError('defense.randomized_response: strengths are flip probabilities in '
                     f'[0, 1] and queries >= 1, got {tuple(cfg.strengths)}, {cfg.queries}')


def _check_postprocessing(cfg) -> None:
  if cfg.release not in RELEASES:
    raise ValueError(f'defense.output_postprocessing.release {cfg.release!r}: allowed '
                     f'{RELEASES}')
  if not isinstance(cfg.decimals, int) or cfg.decimals < 0:
    raise ValueError(f'defense.output_postprocessing.decimals must be an int >= 0, got '
                     f'{cfg.decimals!r}')


base.register('output_postprocessing',
              lambda key, theta, strength, cfg, *, split, variant:
              OutputPostprocessing(key, theta, strength, cfg),
              acts_on='output', defaults={'strengths': (0.0,), 'release': 'rounded',
                                          'decimals': 1},
              check=_check_postprocessing, label_only=lambda cfg: cfg['release'] == 'label')
base.register('randomized_response',
              lambda key, theta, strength, cfg, *, split, variant:
              RandomizedResponse(key, theta, strength, cfg),
              acts_on='output', defaults={'strengths': (0.1, 0.3), 'queries': 1},
              check=_check_randomized_response, label_only=lambda cfg: True)


def release_through(key: jax.Array, probs: jax.Array, settings: dict
                    ) -> tuple[jax.Array, jax.Array]:
  """(vector (..., C), label (...)) released from probs by the 'output' defenses of
  `settings` ({name: (strength, cfg)}), in the registry's order, each deployed with its own
  split of `key`."""
  names = [name for name, defense in base.DEFENSES.items()
           if defense.acts_on == 'output' and name in settings]
  if len(names) != len(settings):
    raise ValueError(f'release settings {sorted(settings)}: each must be a registered output '
                     f'defense, got {sorted(set(settings) - set(names))}')
  vector, label = probs, jnp.argmax(probs, -1)
  for rule_key, name in zip(jax.random.split(key, len(names)), names):
    strength, cfg = settings[name]
    deployed = base.deploy(name, rule_key, None, strength, cfg, split=None, variant='')
    vector, label = deployed.release(vector, label)
  return vector, label


def release_channel(key: jax.Array, probs: jax.Array, flip_prob, *, release: str,
                    decimals: int, noise_std: float) -> tuple[jax.Array, jax.Array]:
  """What the deployment releases per query under attribute inference's defense block:
  (vector (n, C), label (n,)). The probability vector is postprocessed (`postprocess_probs`:
  release, decimals, noise_std), then its top-1 label goes through randomized response with
  probability flip_prob (`release_through`)."""
  return release_through(key, probs, {
      'output_postprocessing': (noise_std, {'release': release, 'decimals': decimals}),
      'randomized_response': (flip_prob, None)})


def model_probs(view_params, raw: jax.Array, *, apply_fn) -> jax.Array:
  """The deployed model on raw records; view_params = (params, scaler mean, scaler std)."""
  params, mean, std = view_params
  return jax.nn.softmax(apply_fn({'params': params}, (raw - mean) / std), -1)


def candidate_view(view_params, raw: jax.Array, *, apply_fn, release: str, decimals: int
                   ) -> jax.Array:
  """What unlimited queries of `raw` through the channel reveal (the MAP attack's view).

  Randomized response with p < (k-1)/k leaves the predicted label the most frequent answer,
  and Gaussian noise averages out, so repeated queries reveal the one-hot predicted label
  ('label'), the probabilities ('probs', 'noisy_probs') or the rounded probabilities.
  """
  probs = model_probs(view_params, raw, apply_fn=apply_fn)
  if release == 'label':
    return jax.nn.one_hot(jnp.argmax(probs, -1), probs.shape[-1], dtype=probs.dtype)
  if release == 'rounded':
    return jnp.round(probs, decimals)
  return probs
