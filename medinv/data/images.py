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
