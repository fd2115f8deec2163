"""Inverse networks for the black-box model-inversion attack: edge features -> image.

`InverseDecoder(split)` mirrors the edge at that split: one 2x2 stride-2 transposed
convolution per halving of the image side inside the edge (SplitCNN's split 2: none; 4: one;
6: two), each followed by a 3x3 transposed convolution at the new resolution (no halving:
one 3x3 layer), then a 3x3 transposed convolution to the image channels and a sigmoid (images
live in [0, 1]). Features (n, s / 2^k, same, channels) come back as images (n, s, s,
out_channels). `split` is a `models.Split` (any registered model whose features at the split
are (s / 2^k, s / 2^k, channels) for images (s, s, c)) or SplitCNN's 2, 4, 6.

`ConvTranspose` avoids XLA:CPU's slow convolution gradients inside loops (where decoders
train): stride-1 layers use `layers.conv2d`, and a stride equal to the kernel size (2x2,
stride 2: non-overlapping output blocks) is one matmul per input pixel.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from medinv.models import layers
from medinv import models


class ConvTranspose(nn.Module):
  """Transposed convolution, 'SAME' output size = stride x input size.

  Supported: stride 1 with an odd kernel, or stride == kernel size (no overlap).
  """
  features: int
  kernel_size: int = 3
  stride: int = 1
  kernel_init: Any = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k, stride = self.kernel_size, self.stride
    if not ((stride == 1 and k % 2) or stride == k):
      raise ValueError(f'ConvTranspose supports stride 1 with an odd kernel or stride == '
                       f'kernel size; got kernel {k}, stride {stride}')
    kernel = self.param('kernel', self.kernel_init, (k, k, x.shape[-1], self.features),
                        jnp.float32)
    bias = self.param('bias', nn.initializers.zeros_init(), (self.features,), jnp.float32)
    if stride == 1:
      return layers.conv2d(x, kernel, bias)
    n, h, w, _ = x.shape
    # Input pixel (i, j) paints output block (k i .. k i + k - 1, k j .. k j + k - 1).
    blocks = jnp.einsum('nhwc,abcf->nhawbf', x, kernel)
    return blocks.reshape(n, h * k, w * k, self.features) + bias


def num_upsamplings(split) -> int:
  """How many 2x upsamplings undo the edge's downsampling (SplitCNN: its pools sit before
  conv 3 and 5); ValueError for features that are not an image-shaped map."""
  if not isinstance(split, models.Split):
    models.check_split(split)
    return split // 2 - 1
  image, features = split.input_shape, split.feature_shape
  ratio = image[0] // features[0] if len(features) == 3 and features[0] else 0
  if (len(image) != 3 or len(features) != 3 or features[0] != features[1] or
      ratio < 1 or ratio & (ratio - 1) or features[0] * ratio != image[0]):
    raise ValueError(f'split point {split.point!r} (layer {split.layer!r}) sends features of '
                     f'shape {features} for inputs {image}: the inverse-network decoder needs '
                     'a feature map (s / 2^k, s / 2^k, channels) of images (s, s, c)')
  return ratio.bit_length() - 1


class InverseDecoder(nn.Module):
  """Transposed-convolution decoder sized to the split (see module docstring)."""
  split: int
  out_channels: int = 1
  width: int = 64

  @nn.compact
  def __call__(self, features: jax.Array) -> jax.Array:
    h = features
    for _ in range(num_upsamplings(self.split)):
      h = nn.relu(ConvTranspose(self.width, kernel_size=2, stride=2)(h))
      h = nn.relu(ConvTranspose(self.width)(h))
    if not num_upsamplings(self.split):
      h = nn.relu(ConvTranspose(self.width)(h))
    return nn.sigmoid(ConvTranspose(self.out_channels)(h))


def feature_shape(image_shape: tuple[int, int, int], split) -> tuple[int, ...]:
  """Shape of one image's edge features at `split` (what the decoder takes)."""
  if isinstance(split, models.Split):
    return split.feature_shape
  size = image_shape[0] // 2 ** num_upsamplings(split)
  return (size, size, models.CONV_CHANNELS[split - 1])
