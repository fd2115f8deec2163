"""Statistics of two samples of features: distance correlation (NoPeek's training penalty)
and the squared maximum mean discrepancy (the feature-alignment attack's loss). Pure
jax.numpy and differentiable; samples are (n, ...) arrays, flattened per row.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def _squared_distances(x: jax.Array) -> jax.Array:
  """(n, n) squared Euclidean distances of the rows of x (n, d), through one matmul."""
  norms = jnp.sum(jnp.square(x), -1)
  return jnp.maximum(norms[:, None] + norms[None] - 2 * x @ x.T, 0.0)


def _pairwise_distances(x: jax.Array) -> jax.Array:
  x = jnp.reshape(x, (x.shape[0], -1))
  return jnp.sqrt(jnp.maximum(_squared_distances(x), 1e-12)) * (1 - jnp.eye(x.shape[0]))


def distance_correlation(x: jax.Array, y: jax.Array) -> jax.Array:
  """Bias-corrected squared distance correlation (Székely & Rizzo 2014, U-centred) of paired
  samples x (n, ...) and y (n, ...), n >= 4: about 0 for independent variables at any n
  (it may dip below 0), 1 when y is a similarity transform of x. The plain V-statistic is
  biased upwards (about 0.2 for independent 5- and 3-dimensional Gaussians at n = 300).
  Differentiable: NoPeek's training penalty."""
  n = x.shape[0]

  def u_centred(d):
    centred = (d - jnp.sum(d, 0) / (n - 2) - (jnp.sum(d, 1) / (n - 2))[:, None]
               + jnp.sum(d) / ((n - 1) * (n - 2)))
    return centred * (1 - jnp.eye(n))
  a, b = u_centred(_pairwise_distances(x)), u_centred(_pairwise_distances(y))
  dcov_xy, dcov_xx, dcov_yy = jnp.sum(a * b), jnp.sum(a * a), jnp.sum(b * b)
  return dcov_xy / jnp.sqrt(dcov_xx * dcov_yy + 1e-12)


def mmd2(x: jax.Array, y: jax.Array, bandwidths=(0.5, 1.0, 2.0)) -> jax.Array:
  """Squared maximum mean discrepancy of samples x (n, ...) and y (m, ...) (biased
  estimator), with a sum of Gaussian kernels whose widths are the given multiples of the
  median pairwise distance of the pooled samples (held fixed for gradients)."""
  x, y = jnp.reshape(x, (x.shape[0], -1)), jnp.reshape(y, (y.shape[0], -1))
  squared = _squared_distances(jnp.concatenate([x, y]))
  median = jax.lax.stop_gradient(jnp.median(squared) + 1e-12)
  kernel = sum(jnp.exp(-squared / (2 * (w ** 2) * median)) for w in bandwidths)
  n = x.shape[0]
  return jnp.mean(kernel[:n, :n]) + jnp.mean(kernel[n:, n:]) - 2 * jnp.mean(kernel[:n, n:])
