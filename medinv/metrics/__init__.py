"""Reconstruction quality (MSE, PSNR, SSIM) and membership-inference ROC metrics.

Membership scores (`membership_summary`, `bootstrap`): AUC, best-threshold balanced accuracy,
TPR at given FPRs and ROC points from per-record scores (higher = member) and true
membership; a percentile bootstrap over records gives their intervals. All pure jax.numpy.

Images are float arrays in [0, 1] shaped (n, h, w, c) (a single (h, w, c) image also works);
every per-image function returns shape (n,). SSIM is dm-pix's: an 11x11 Gaussian window with
sigma 1.5, k1 = 0.01, k2 = 0.03, valid padding, averaged over pixels and channels, which is
scikit-image's `structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1)`. PSNR of two identical images is +inf (as in
scikit-image); `summarize` keeps that visible instead of turning it into nan.
"""
from __future__ import annotations

import math

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np

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


def summarize(values) -> dict[str, float]:
  """Mean and (population) std of per-image values.

  +inf values (PSNR of exact reconstructions) make the mean +inf; the std is then 0 when
  every value is +inf and nan otherwise (a spread that includes infinity is undefined).
  """
  values = np.asarray(values, np.float64).ravel()
  if values.size == 0:
    raise ValueError('cannot summarize an empty set of values')
  if np.all(np.isfinite(values)):
    return {'mean': float(np.mean(values)), 'std': float(np.std(values))}
  if np.any(np.isnan(values)):
    return {'mean': math.nan, 'std': math.nan}
  if np.all(values == values[0]):
    return {'mean': float(values[0]), 'std': 0.0}
  return {'mean': float(np.mean(values)), 'std': math.nan}


def mean_interval(values, level: float = 0.95) -> tuple[float, float]:
  """Student-t interval of the mean of per-image values (nan with fewer than 2 or non-finite)."""
  from scipy import stats
  values = np.asarray(values, np.float64).ravel()
  if values.size < 2 or not np.all(np.isfinite(values)):
    return math.nan, math.nan
  half = stats.t.ppf(0.5 + level / 2, values.size - 1) * stats.sem(values)
  return float(np.mean(values) - half), float(np.mean(values) + half)


def quality_summary(reconstructions: jax.Array, originals: jax.Array) -> dict[str, float]:
  """Flat row fields: mse_mean, mse_std, psnr_mean, psnr_std, ssim_mean, ssim_std, and the
  95% t-interval of the mean SSIM over the images (ssim_low, ssim_high)."""
  row = {}
  for name, values in image_quality(reconstructions, originals).items():
    for stat, value in summarize(values).items():
      row[f'{name}_{stat}'] = value
    if name == 'ssim':
      row['ssim_low'], row['ssim_high'] = mean_interval(values)
  return row


# ----------------------------------------------------------------------------- feature statistics

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


# ----------------------------------------------------------------------------- membership ROC
# Every function takes an optional mask (N,): only records where it is True count (a subgroup
# evaluated at the full array's shape, so every subgroup shares one compiled program).

def _prepared(scores, labels, mask):
  scores = jnp.asarray(scores, jnp.float32)
  labels = jnp.asarray(labels).astype(bool)
  mask = jnp.ones(scores.shape, bool) if mask is None else jnp.asarray(mask).astype(bool)
  return scores, labels, mask


def _counts_at_scores(scores: jax.Array, labels: jax.Array, mask=None):
  """(tp, fp, positives, negatives, mask): counted records with score >= scores[i], per i."""
  scores, labels, mask = _prepared(scores, labels, mask)
  n = scores.shape[0]
  pos_sorted = jnp.sort(jnp.where(labels & mask, scores, -jnp.inf))
  neg_sorted = jnp.sort(jnp.where(~labels & mask, scores, -jnp.inf))
  tp = n - jnp.searchsorted(pos_sorted, scores, side='left')
  fp = n - jnp.searchsorted(neg_sorted, scores, side='left')
  positives = jnp.sum(labels & mask)
  return tp, fp, positives, jnp.sum(~labels & mask), mask


def auc(scores: jax.Array, labels: jax.Array, mask=None) -> jax.Array:
  """Area under the ROC curve: P(member score > non-member score) + P(tie) / 2.

  The Mann-Whitney statistic from average ranks (ties share their mean rank); scores finite.
  """
  scores, labels, mask = _prepared(scores, labels, mask)
  ordered = jnp.sort(jnp.where(mask, scores, jnp.inf))  # uncounted records rank last
  ranks = (jnp.searchsorted(ordered, scores, side='left')
           + jnp.searchsorted(ordered, scores, side='right') + 1) / 2.0
  positives = jnp.sum(labels & mask)
  negatives = jnp.sum(mask) - positives
  rank_sum = jnp.sum(jnp.where(labels & mask, ranks, 0.0))
  return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def tpr_at_fpr(scores: jax.Array, labels: jax.Array, fprs, mask=None) -> jax.Array:
  """(F,) best TPR over thresholds whose FPR is at most each of fprs (0 where none is).

  Where fpr * non-members < 1 the only such thresholds admit no false positive: the value is
  the TPR at zero false positives (`fpr_records` says when).
  """
  tp, fp, positives, negatives, mask = _counts_at_scores(scores, labels, mask)
  allowed = (fp[None, :] <= jnp.asarray(fprs, jnp.float32)[:, None] * negatives + 1e-6) & mask
  return jnp.max(jnp.where(allowed, (tp / positives)[None, :], 0.0), axis=1)


def balanced_accuracy(scores: jax.Array, labels: jax.Array, mask=None) -> jax.Array:
  """Best balanced accuracy (TPR + TNR) / 2 over thresholds (0.5 for a useless score)."""
  tp, fp, positives, negatives, mask = _counts_at_scores(scores, labels, mask)
  balanced = jnp.where(mask, (tp / positives + 1.0 - fp / negatives) / 2.0, 0.0)
  return jnp.maximum(0.5, jnp.max(balanced))


def roc_points(scores, labels) -> tuple[np.ndarray, np.ndarray]:
  """(fpr, tpr) host arrays of the ROC curve, from (0, 0) to (1, 1), FPR ascending."""
  tp, fp, positives, negatives, _ = jax.device_get(_counts_at_scores(scores, labels))
  points = np.unique(np.stack([fp / negatives, tp / positives], axis=1), axis=0)
  points = np.concatenate([[[0.0, 0.0]], points, [[1.0, 1.0]]])
  return points[:, 0], points[:, 1]


def fpr_records(fprs, num_nonmembers: int) -> list[float]:
  """How many non-member records each FPR allows as false positives (< 1: below one record)."""
  return [float(fpr) * num_nonmembers for fpr in fprs]


def membership_summary(scores: jax.Array, labels: jax.Array, fprs,
                       mask=None) -> dict[str, jax.Array]:
  """{'auc': (), 'balanced_accuracy': (), 'tpr_at_fpr': (F,)} of one attack's scores."""
  return {'auc': auc(scores, labels, mask),
          'balanced_accuracy': balanced_accuracy(scores, labels, mask),
          'tpr_at_fpr': tpr_at_fpr(scores, labels, fprs, mask)}


def bootstrap(key: jax.Array, scores: jax.Array, labels: jax.Array, fprs, num_samples: int,
              mask=None) -> dict[str, jax.Array]:
  """`membership_summary` on num_samples resamples of the (counted) records, with replacement.

  Resample b draws as many records as are counted, uniformly among them, from
  fold_in(key, b). A resample without a member or a non-member gives nan (use
  `percentile_interval`, which ignores nan).
  """
  scores, labels, mask = _prepared(scores, labels, mask)
  n = scores.shape[0]
  counted = jnp.sum(mask)
  # The first `counted` of n draws from the counted records form the resample.
  draws_mask = jnp.arange(n) < counted

  def one(b):
    index = jax.random.choice(jax.random.fold_in(key, b), n, (n,), p=mask / counted)
    return membership_summary(scores[index], labels[index], fprs, draws_mask)

  return jax.vmap(one)(jnp.arange(num_samples))  # vectorise the resamples


def percentile_interval(samples, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
  """Percentile bootstrap interval (low, high) over the leading axis, nan samples ignored."""
  samples = np.asarray(samples, np.float64)
  tail = 50.0 * (1.0 - level)
  return (np.nanpercentile(samples, tail, axis=0), np.nanpercentile(samples, 100 - tail, axis=0))
