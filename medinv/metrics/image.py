"""Reconstruction quality of images: MSE, PSNR and SSIM per image, and their row summaries.

Images are float arrays in [0, 1] shaped (n, h, w, c) (a single (h, w, c) image also works);
every per-image function returns shape (n,). SSIM is dm-pix's: an 11x11 Gaussian window with
sigma 1.5, k1 = 0.01, k2 = 0.03, valid padding, averaged over pixels and channels, which is
scikit-image's `structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1)`. PSNR of two identical images is +inf (as in
scikit-image); `intervals.summarize` keeps that visible instead of turning it into nan.
"""
from __future__ import annotations

import dm_pix
import jax
import jax.numpy as jnp

from medinv.metrics import intervals

MAX_VAL = 1.0  # images live in [0, 1]
QUALITY_METRICS = ('mse', 'psnr', 'ssim')


def _batched(images: jax.Array) -> jax.Array:
  images = jnp.asarray(images, jnp.float32)
  if images.ndim == 3:
    images = images[None]
  if images.ndim != 4:
    raise ValueError(f'expected images shaped (n, h, w, c) or (h, w, c), got {images.shape}')
  return images


def _check_pair(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
  a, b = _batched(a), _batched(b)
  if a.shape != b.shape:
    raise ValueError(f'images to compare have different shapes: {a.shape} vs {b.shape}')
  return a, b


def mse(a: jax.Array, b: jax.Array) -> jax.Array:
  """Mean squared error per image, shape (n,)."""
  a, b = _check_pair(a, b)
  return dm_pix.mse(a, b)


def psnr(a: jax.Array, b: jax.Array) -> jax.Array:
  """Peak signal-to-noise ratio in dB per image (peak 1.0), +inf where the images agree."""
  a, b = _check_pair(a, b)
  error = dm_pix.mse(a, b)
  safe = jnp.where(error > 0, error, 1.0)
  return jnp.where(error > 0, 10.0 * jnp.log10(MAX_VAL ** 2 / safe), jnp.inf)


def ssim(a: jax.Array, b: jax.Array) -> jax.Array:
  """Structural similarity per image, shape (n,); 1 for identical images.

  Images must be at least 11 pixels on each side (the Gaussian window).
  """
  a, b = _check_pair(a, b)
  if min(a.shape[1:3]) < 11:
    raise ValueError(f'SSIM needs images of at least 11x11 pixels, got {a.shape[1:3]}')
  return dm_pix.ssim(a, b, max_val=MAX_VAL)


@jax.jit
def image_quality(reconstructions: jax.Array, originals: jax.Array) -> dict[str, jax.Array]:
  """{'mse', 'psnr', 'ssim'} per image, each shape (n,) (one compiled program per shape: the
  metrics' ops one by one took 4.6 s of compilation in the demo's model inversion)."""
  return {'mse': mse(reconstructions, originals), 'psnr': psnr(reconstructions, originals),
          'ssim': ssim(reconstructions, originals)}


def quality_summary(reconstructions: jax.Array, originals: jax.Array) -> dict[str, float]:
  """Flat row fields: mse_mean, mse_std, psnr_mean, psnr_std, ssim_mean, ssim_std, and the
  95% t-interval of the mean SSIM over the images (ssim_low, ssim_high)."""
  row = {}
  for name, values in image_quality(reconstructions, originals).items():
    for stat, value in intervals.summarize(values).items():
      row[f'{name}_{stat}'] = value
    if name == 'ssim':
      row['ssim_low'], row['ssim_high'] = intervals.mean_interval(values)
  return row
