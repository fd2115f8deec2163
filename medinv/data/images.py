"""Image datasets as float32 arrays in [0, 1], shape (n, image_size, image_size, channels).

Resizing: builders store images at their stored resolution; `resize` maps them to
`image_size` with `jax.image.resize(method='linear', antialias=True)` (bilinear, with an
anti-aliasing filter when downsampling), then clips to [0, 1]. BreastMNIST goes 28 -> 32 by
default because the SplitCNN pools three times and needs a multiple of 8.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

# The one split of a user's images without a split layout (image_folder, npz):
# `medinv.data.load_images` holds out config.data.test_fraction of it by split_seed.
POOL_SPLIT = 'pool'


@dataclasses.dataclass(frozen=True)
class Images:
  """train/validation/test splits of (images float32 (n, s, s, c), labels int32 (n,))."""
  train: tuple[np.ndarray, np.ndarray]
  validation: tuple[np.ndarray, np.ndarray] | None
  test: tuple[np.ndarray, np.ndarray]
  class_names: tuple[str, ...]

  @property
  def num_classes(self) -> int:
    return len(self.class_names)


def resize(images_uint8: np.ndarray, image_size: int) -> np.ndarray:
  """uint8 (n, h, w, c) -> float32 (n, image_size, image_size, c) in [0, 1]."""
  images = images_uint8.astype(np.float32) / 255.0
  n, h, w, c = images.shape
  if (h, w) == (image_size, image_size):
    return images
  out = jax.image.resize(images, (n, image_size, image_size, c), method='linear', antialias=True)
  return np.clip(np.asarray(out), 0.0, 1.0)


def check_image_size(image_size: int) -> None:
  if image_size <= 0 or image_size % 8:
    raise ValueError(f'image_size must be a positive multiple of 8 (the SplitCNN pools three '
                     f'times), got {image_size}')


def flip_draws(key: jax.Array, n: int) -> jax.Array:
  """(n,) bool: which of n images `random_flip` mirrors under this key."""
  return jax.random.bernoulli(key, 0.5, (n, 1, 1, 1))[:, 0, 0, 0]


def flip_where(flipped: jax.Array, images: jax.Array) -> jax.Array:
  return jnp.where(flipped[:, None, None, None], images[:, :, ::-1], images)


def random_flip(key: jax.Array, images: jax.Array) -> jax.Array:
  """Mirrors each image left-right with probability 1/2."""
  return flip_where(flip_draws(key, images.shape[0]), images)


def shift_draws(key: jax.Array, n: int, max_shift: int) -> jax.Array:
  """(n, 2) int32: the (rows, columns) `random_shift` moves each of n images by, each uniform
  in [-max_shift, max_shift]."""
  return jax.random.randint(key, (n, 2), -max_shift, max_shift + 1)


def shift_by(shifts: jax.Array, images: jax.Array, max_shift: int) -> jax.Array:
  """Moves image i down by shifts[i, 0] and right by shifts[i, 1] pixels (negative: up, left),
  filling the uncovered pixels with 0: out[i, y, x] = images[i, y - dy, x - dx].

  Args:
    shifts: (n, 2) int, each entry in [-max_shift, max_shift].
    images: (n, h, w, c).
    max_shift: the largest shift allowed (the zero padding around each image).

  Returns:
    The shifted images, same shape and dtype.
  """
  _, h, w, c = images.shape
  pad = max_shift
  padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))

  def crop(image, shift):
    return jax.lax.dynamic_slice(image, (pad - shift[0], pad - shift[1], 0), (h, w, c))
  return jax.vmap(crop)(padded, shifts)


def random_shift(key: jax.Array, images: jax.Array, max_shift: int) -> jax.Array:
  """Moves each image by a random whole number of pixels in [-max_shift, max_shift] along each
  axis (`shift_draws`), filling with 0 (`shift_by`)."""
  return shift_by(shift_draws(key, images.shape[0], max_shift), images, max_shift)


def augment(key: jax.Array, images: jax.Array, *, flip: bool, max_shift: int) -> jax.Array:
  """A training batch's augmentation: `random_flip` with `key` (when flip), then
  `random_shift` with fold_in(key, 1) (when max_shift > 0)."""
  if flip:
    images = random_flip(key, images)
  if max_shift:
    images = random_shift(jax.random.fold_in(key, 1), images, max_shift)
  return images
