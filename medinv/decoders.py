"""Inverse networks for the black-box model-inversion attack: edge features -> image.

`InverseDecoder(split)` mirrors the SplitCNN edge at that split: one stride-2 transposed
convolution per max-pool inside the edge (split 2: none; 4: one; 6: two), each followed by a
stride-1 transposed convolution at the new resolution, then a 3x3 transposed convolution to
the image channels and a sigmoid (images live in [0, 1]). Input features of shape
(n, s / 2^(split/2 - 1), same, channels) come back as images (n, s, s, out_channels).

`ConvTranspose` is built on `layers.conv2d` (a convolution whose gradients stay fast inside
XLA:CPU loops, where the decoder trains): a stride-2 transposed convolution is the
convolution of the input with zeros inserted between its pixels.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from medinv import layers
from medinv import models


def insert_zeros(x: jax.Array, stride: int) -> jax.Array:
  """(n, h, w, c) -> (n, stride*h, stride*w, c), x at the top-left of each stride x stride."""
  if stride == 1:
    return x
  n, h, w, c = x.shape
  out = jnp.zeros((n, h, stride, w, stride, c), x.dtype).at[:, :, 0, :, 0].set(x)
  return out.reshape(n, stride * h, stride * w, c)


class ConvTranspose(nn.Module):
  """Transposed convolution ('SAME', odd kernel): output size = stride x input size."""
  features: int
  kernel_size: tuple[int, int] = (3, 3)
  stride: int = 1
  kernel_init: Any = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param('kernel', self.kernel_init,
                        self.kernel_size + (x.shape[-1], self.features), jnp.float32)
    bias = self.param('bias', nn.initializers.zeros_init(), (self.features,), jnp.float32)
    return layers.conv2d(insert_zeros(x, self.stride), kernel) + bias


def num_upsamplings(split: int) -> int:
  """How many 2x upsamplings undo the edge's max-pools (pools sit before conv 3 and 5)."""
  models.check_split(split)
  return split // 2 - 1


class InverseDecoder(nn.Module):
  """Transposed-convolution decoder sized to the split (see module docstring)."""
  split: int
  out_channels: int = 1
  width: int = 64

  @nn.compact
  def __call__(self, features: jax.Array) -> jax.Array:
    h = features
    for _ in range(num_upsamplings(self.split)):
      h = nn.relu(ConvTranspose(self.width, stride=2)(h))
      h = nn.relu(ConvTranspose(self.width)(h))
    h = nn.relu(ConvTranspose(self.width)(h))
    return nn.sigmoid(ConvTranspose(self.out_channels)(h))


def feature_shape(image_shape: tuple[int, int, int], split: int) -> tuple[int, int, int]:
  """Shape of one image's edge features at `split` (what the decoder takes)."""
  size = image_shape[0] // 2 ** num_upsamplings(split)
  return (size, size, models.CONV_CHANNELS[split - 1])
