"""Image-quality metrics (medinv.metrics.image) against scikit-image, and their row summary."""
import math

import numpy as np
import pytest
from skimage import metrics as skmetrics

from medinv.metrics import image as image_metrics


def _pairs(seed=0, n=3, size=24):
  rng = np.random.default_rng(seed)
  clean = rng.uniform(size=(n, size, size, 1)).astype(np.float32)
  # Smooth images (the structure SSIM cares about) plus noise of growing strength.
  clean = (clean + np.roll(clean, 1, 1) + np.roll(clean, 1, 2)) / 3
  strength = np.array([0.02, 0.1, 0.3])[:n, None, None, None]
  noisy = np.clip(clean + rng.normal(0, 1, clean.shape) * strength, 0, 1).astype(np.float32)
  return clean, noisy


def test_identical_images():
  clean, _ = _pairs()
  assert np.allclose(image_metrics.ssim(clean, clean), 1.0, atol=1e-6)
  assert np.all(np.isinf(image_metrics.psnr(clean, clean)))
  assert np.all(image_metrics.mse(clean, clean) == 0)
  row = image_metrics.quality_summary(clean, clean)
  assert row['psnr_mean'] == math.inf and row['psnr_std'] == 0.0
  assert row['ssim_mean'] == pytest.approx(1.0, abs=1e-6) and row['mse_mean'] == 0.0


def test_known_pairs_match_scikit_image():
  clean, noisy = _pairs()
  ours = image_metrics.image_quality(noisy, clean)
  for i in range(clean.shape[0]):
    a, b = clean[i, ..., 0].astype(np.float64), noisy[i, ..., 0].astype(np.float64)
    ref_ssim = skmetrics.structural_similarity(
        a, b, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    ref_psnr = skmetrics.peak_signal_noise_ratio(a, b, data_range=1.0)
    ref_mse = skmetrics.mean_squared_error(a, b)
    assert abs(float(ours['ssim'][i]) - ref_ssim) < 1e-3
    assert abs(float(ours['psnr'][i]) - ref_psnr) < 1e-3
    assert abs(float(ours['mse'][i]) - ref_mse) < 1e-6
  # More noise, worse quality.
  assert np.all(np.diff(np.asarray(ours['ssim'])) < 0)


def test_single_image_and_errors():
  clean, noisy = _pairs(n=1)
  assert image_metrics.ssim(clean[0], noisy[0]).shape == (1,)
  with pytest.raises(ValueError, match='different shapes'):
    image_metrics.ssim(clean, noisy[:, :20])
  with pytest.raises(ValueError, match='at least 11x11'):
    image_metrics.ssim(clean[:, :8, :8], noisy[:, :8, :8])
