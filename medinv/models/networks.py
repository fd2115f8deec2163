"""The paper's target models, registered in medinv.models as 'mlp' and 'split_cnn'.

`MLP`: the clinical-record model, 2 hidden layers of 100 units with ReLU.
`SplitCNN`: He et al.'s collaborative-inference CNN: six 3x3 convs (64, 64, 128, 128, 128,
128 channels, ReLU), 2x2 max-pool after conv 2, 4 and 6, then FC 512 and FC num_classes.
Hospital A runs `edge(x, split)` (conv 1..split, ending at the ReLU of conv `split`, before
its pool); hospital B runs `cloud(h, split)` (the rest). cloud(edge(x, k), k) is exactly the
full forward pass. Parameters are named conv1..conv6, fc1, fc2, so the edge part of a split
is its own subtree (`edge_params`); each conv layer includes its ReLU, so the output of layer
`conv<k>` is what hospital A sends at split k (the generic split of medinv.models.splitting
at 'conv<k>' equals `edge` / `cloud`). Convs and pools come from medinv.models.layers, which
keeps their gradients fast inside compiled loops (training epochs, inversion attacks).

The functions below take SplitCNN's split as its config value, 2, 4 or 6.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax

from medinv.models import layers

SPLITS = (2, 4, 6)
CONV_CHANNELS = (64, 64, 128, 128, 128, 128)


def check_split(split: int) -> None:
  if split not in SPLITS:
    raise ValueError(f'split must be one of {SPLITS} (the SplitCNN conv layer after which '
                     f'hospital A hands over), got {split}')


class MLP(nn.Module):
  """Multilayer perceptron returning logits."""
  num_classes: int
  hidden: Sequence[int] = (100, 100)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for width in self.hidden:
      x = nn.relu(nn.Dense(width)(x))
    return nn.Dense(self.num_classes)(x)


class SplitCNN(nn.Module):
  """Six-conv CNN that splits into edge and cloud parts after conv 2, 4 or 6."""
  num_classes: int

  def setup(self):
    self.convs = [layers.Conv(c, (3, 3), activation=nn.relu, name=f'conv{i + 1}')
                  for i, c in enumerate(CONV_CHANNELS)]
    self.fc1 = nn.Dense(512)
    self.fc2 = nn.Dense(self.num_classes)

  def edge(self, x: jax.Array, split: int) -> jax.Array:
    """Conv 1..split on images (n, s, s, c); returns features (n, s', s', channels)."""
    for i in range(split):
      if i and i % 2 == 0:
        x = layers.max_pool_2x2(x)
      x = self.convs[i](x)
    return x

  def cloud(self, h: jax.Array, split: int) -> jax.Array:
    """The rest of the network on edge features; returns logits."""
    h = layers.max_pool_2x2(h)
    for i in range(split, len(CONV_CHANNELS)):
      h = self.convs[i](h)
      if i % 2 == 1:
        h = layers.max_pool_2x2(h)
    h = h.reshape(h.shape[0], -1)
    return self.fc2(nn.relu(self.fc1(h)))

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.cloud(self.edge(x, 6), 6)


def edge_param_names(split: int) -> tuple[str, ...]:
  """The SplitCNN layers hospital A runs at this split (conv1..conv<split>)."""
  check_split(split)
  return tuple(f'conv{i + 1}' for i in range(split))


def edge_fn(model: SplitCNN, split: int):
  """`(params, x) -> edge features`; params may be the full tree or the edge subtree."""
  check_split(split)

  def apply(params, x):
    return model.apply({'params': params}, x, split, method=SplitCNN.edge)
  return apply


def cloud_fn(model: SplitCNN, split: int):
  """`(params, h) -> logits` for the cloud part at this split."""
  check_split(split)

  def apply(params, h):
    return model.apply({'params': params}, h, split, method=SplitCNN.cloud)
  return apply
