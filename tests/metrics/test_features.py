"""Feature statistics (medinv.metrics.features): distance correlation against a numpy
reference and its extremes, and MMD's zero and growth with a mean shift."""
import numpy as np
import pytest

from medinv.metrics import features as feature_metrics


def _numpy_dcor(x, y):
  """Székely and Rizzo's bias-corrected squared distance correlation, in numpy loops' terms:
  U-centred distance matrices, then their inner product over i != j."""
  n = len(x)

  def u_centred(z):
    z = z.reshape(n, -1).astype(np.float64)
    d = np.sqrt(((z[:, None] - z[None]) ** 2).sum(-1))
    u = (d - d.sum(0)[None] / (n - 2) - d.sum(1)[:, None] / (n - 2)
         + d.sum() / ((n - 1) * (n - 2)))
    np.fill_diagonal(u, 0.0)
    return u
  a, b = u_centred(x), u_centred(y)
  return (a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum())


def test_distance_correlation_matches_numpy_and_its_extremes():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(300, 5)).astype(np.float32)
  independent = rng.normal(size=(300, 3)).astype(np.float32)
  dependent = np.stack([x[:, 0] ** 2, np.sin(x[:, 1]), x[:, 2]], 1)
  dcor = lambda a, b: float(feature_metrics.distance_correlation(a, b))
  for y in (independent, dependent, x):
    np.testing.assert_allclose(dcor(x, y), _numpy_dcor(x, y), rtol=1e-3, atol=1e-4)
  assert abs(dcor(x, independent)) < 0.02
  assert dcor(x, dependent) > 0.2
  assert dcor(x, x) == pytest.approx(1.0, abs=1e-4)
  assert dcor(x, 3.0 * x + 1.0) == pytest.approx(1.0, abs=1e-4)
  images = rng.normal(size=(16, 4, 4, 2)).astype(np.float32)  # Any trailing shape.
  assert dcor(images, images) == pytest.approx(1.0, abs=1e-4)


def test_mmd_is_zero_for_a_sample_with_itself_and_grows_with_a_mean_shift():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(200, 8)).astype(np.float32)
  other = rng.normal(size=(200, 8)).astype(np.float32)
  assert float(feature_metrics.mmd2(x, x)) == pytest.approx(0.0, abs=1e-6)
  shifted = [float(feature_metrics.mmd2(x, other + shift)) for shift in (0.0, 0.25, 0.5, 1.0, 2.0)]
  assert all(a < b for a, b in zip(shifted, shifted[1:])), shifted
  assert shifted[0] < 0.1 * shifted[-1]
