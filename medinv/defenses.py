"""Defenses: label perturbation (against attribute inference) and model perturbation (against
model inversion), as pure functions of an explicit key.

Label side: randomized response on released labels, its local-DP epsilon, and postprocessors
for probability releases. Model side: Gaussian noise on the weights and biases of a parameter
subtree, drawn once (`fixed`) or per query (`per_query`).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from medinv import models

RELEASES = ('label', 'probs', 'rounded', 'noisy_probs')
MODES = ('fixed', 'per_query')
SCOPES = ('edge', 'all')


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


def scope_mask(params: dict, scope: str, split: int | None = None) -> dict:
  """A bool pytree shaped like params: True where `perturb_params` adds noise.

  scope 'all' selects every weight and bias; 'edge' selects the SplitCNN layers that hospital
  A runs at `split` (conv1..conv{split}).
  """
  if scope == 'all':
    return jax.tree.map(lambda _: True, params)
  if scope == 'edge':
    if split is None:
      raise ValueError("scope 'edge' needs the split layer")
    edge = set(models.edge_param_names(split))
    return {name: jax.tree.map(lambda _, n=name: n in edge, sub) for name, sub in params.items()}
  raise ValueError(f'unknown perturbation scope {scope!r}; allowed: {SCOPES}')


def perturb_params(key: jax.Array, params, sigma, mask=None):
  """theta + N(0, sigma^2 I) on every leaf where `mask` is True (all leaves when mask is None).

  sigma may be traced (vmap over a sigma grid). Each leaf draws from its own fold of `key`.
  """
  leaves, treedef = jax.tree.flatten(params)
  mask_leaves = [True] * len(leaves) if mask is None else treedef.flatten_up_to(mask)
  noisy = [
      leaf + sigma * jax.random.normal(jax.random.fold_in(key, i), leaf.shape, leaf.dtype)
      if selected else leaf
      for i, (leaf, selected) in enumerate(zip(leaves, mask_leaves))]
  return jax.tree.unflatten(treedef, noisy)


def deployed_params(key: jax.Array, params, sigma, mode: str, query_index, mask=None):
  """The parameters that answer query number `query_index` under model perturbation.

  mode 'fixed': one perturbed model for every query (noise from `key` itself).
  mode 'per_query': fresh noise per query, from fold_in(key, query_index).
  """
  if mode == 'fixed':
    return perturb_params(key, params, sigma, mask)
  if mode == 'per_query':
    return perturb_params(jax.random.fold_in(key, query_index), params, sigma, mask)
  raise ValueError(f'unknown perturbation mode {mode!r}; allowed: {MODES}')
