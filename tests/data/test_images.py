"""Training-image augmentation: shifts against a NumPy reference, key discipline, flips."""
import jax
import numpy as np
import pytest

from medinv.data import images


def _shift_reference(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
  """out[y, x] = image[y - dy, x - dx] where that pixel exists, else 0 (a plain loop)."""
  h, w = image.shape[:2]
  out = np.zeros_like(image)
  for y in range(h):
    for x in range(w):
      if 0 <= y - dy < h and 0 <= x - dx < w:
        out[y, x] = image[y - dy, x - dx]
  return out


def _batch(n=6, size=8, channels=2, seed=0):
  return np.random.default_rng(seed).random((n, size, size, channels), np.float32)


def test_shift_moves_pixels_as_declared():
  batch = _batch()
  shifts = np.array([[0, 0], [2, 0], [0, -2], [-1, 1], [2, 2], [-2, -1]], np.int32)
  out = np.asarray(images.shift_by(shifts, batch, max_shift=2))
  for i, (dy, dx) in enumerate(shifts):
    np.testing.assert_array_equal(out[i], _shift_reference(batch[i], dy, dx))
  # One pixel by hand: image 1 moves down by 2, so its row 0 lands on row 2; rows 0-1 are 0.
  np.testing.assert_array_equal(out[1, 2], batch[1, 0])
  assert not out[1, :2].any()


def test_random_shift_draws_its_shifts_from_the_key():
  batch = _batch(n=64)
  key = jax.random.key(3)
  shifts = np.asarray(images.shift_draws(key, 64, 3))
  assert shifts.shape == (64, 2) and shifts.min() == -3 and shifts.max() == 3
  out = np.asarray(images.random_shift(key, batch, 3))
  for i in (0, 17, 63):
    np.testing.assert_array_equal(out[i], _shift_reference(batch[i], *shifts[i]))
  np.testing.assert_array_equal(out, images.random_shift(key, batch, 3))  # same key, same
  assert not np.array_equal(out, images.random_shift(jax.random.key(4), batch, 3))


def test_augment_flips_with_the_key_and_shifts_with_fold_in_1():
  batch = _batch(n=16)
  key = jax.random.key(7)
  # Flip alone is random_flip under the same key: runs with augment_flip only keep their draws.
  np.testing.assert_array_equal(images.augment(key, batch, flip=True, max_shift=0),
                                images.random_flip(key, batch))
  both = images.augment(key, batch, flip=True, max_shift=2)
  expected = images.random_shift(jax.random.fold_in(key, 1), images.random_flip(key, batch), 2)
  np.testing.assert_array_equal(both, expected)
  np.testing.assert_array_equal(images.augment(key, batch, flip=False, max_shift=0), batch)


@pytest.mark.parametrize('max_shift', [1, 3])
def test_shift_is_uniform_over_its_range(max_shift):
  shifts = np.asarray(images.shift_draws(jax.random.key(0), 20000, max_shift))
  counts = np.bincount((shifts + max_shift).ravel(), minlength=2 * max_shift + 1)
  expected = shifts.size / (2 * max_shift + 1)
  assert len(counts) == 2 * max_shift + 1
  assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))
