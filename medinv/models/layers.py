"""Layers that stay fast on XLA:CPU inside compiled loops (`lax.scan`, `fori_loop`).

Measured on a 2-core CPU (see `./launch.sh benchmark`): inside a while loop, XLA:CPU runs a
convolution's kernel gradient about 150x slower than the same op jitted on its own, and its
input gradient (a transposed convolution) about 2x slower. `conv2d` keeps the forward
convolution and supplies its own backward pass: the input gradient is a forward convolution
of the cotangent with the spatially flipped, in/out-transposed kernel, and the kernel and bias
gradients are one matmul over every pixel with the kernel offsets side by side
(`_weight_grads`). Values equal `lax.conv_general_dilated`; gradients agree to float32
rounding. `max_pool_2x2` (reshape-then-max) avoids select-and-scatter, ~14x slower.

Grids over weights (sigmas, draws, population members) vmap the convolution over its kernel.
JAX's own batching rule turns that into one feature-grouped convolution, which XLA:CPU runs
3-6x slower per point than one convolution at a time. `conv2d`'s batching rule (`_conv`)
instead folds a batch of inputs into the image axis, a batch of kernels applied to one input
into the output channels (one wider convolution), and a batch of both into K convolutions in
one program on a CPU (`lax.map` beyond `UNROLL` points) or feature groups elsewhere.

The forward convolutions run as XLA's Eigen convolution on a CPU, not YNNPACK (1.5x faster
here), where the XLA flag of medinv.core.xla is set (every experiment sets it).
"""
from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp

_DIMS = ('NHWC', 'HWIO', 'NHWC')


UNROLL = 8  # Kernel-and-input batches up to this size run as unrolled convolutions on a CPU.


def _plain_conv(x: jax.Array, kernel: jax.Array, groups: int = 1) -> jax.Array:
  return lax.conv_general_dilated(x, kernel, (1, 1), 'SAME', dimension_numbers=_DIMS,
                                  feature_group_count=groups)


@jax.custom_batching.custom_vmap
def _conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  return _plain_conv(x, kernel)


def grouped_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """K convolutions as one feature-grouped convolution: x (K, n, h, w, c), kernel (K, kh, kw,
  c, o) -> (K, n, h, w, o). What JAX's own batching rule does; fast on accelerators."""
  size, n, h, w, c = x.shape
  folded = x.transpose(1, 2, 3, 0, 4).reshape(n, h, w, size * c)
  kernel = kernel.transpose(1, 2, 3, 0, 4).reshape(kernel.shape[1:3] + (c, -1))
  out = _plain_conv(folded, kernel, groups=size)
  return out.reshape(n, h, w, size, -1).transpose(3, 0, 1, 2, 4)


def looped_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """The same K convolutions one after another in one program (XLA:CPU's fast layout)."""
  if x.shape[0] <= UNROLL:
    return jnp.stack([_conv(x[i], kernel[i]) for i in range(x.shape[0])])
  return lax.map(lambda pair: _conv(*pair), (x, kernel))


@_conv.def_vmap
def _conv_batched(size, batched, x, kernel):
  x_batched, kernel_batched = batched
  if not kernel_batched:  # Images of every point are one larger batch.
    out = _conv(x.reshape((-1,) + x.shape[2:]), kernel)
    return out.reshape((size, -1) + out.shape[1:]), True
  if not x_batched:  # Every point's kernel on the same images: wider output channels.
    out = _conv(x, kernel.transpose(1, 2, 3, 0, 4).reshape(kernel.shape[1:4] + (-1,)))
    return out.reshape(out.shape[:3] + (size, -1)).transpose(3, 0, 1, 2, 4), True
  if jax.default_backend() == 'cpu':
    return looped_conv(x, kernel), True
  return grouped_conv(x, kernel), True


def conv2d(x: jax.Array, kernel: jax.Array, bias: jax.Array | None = None) -> jax.Array:
  """Stride-1 'SAME' convolution, NHWC input, HWIO kernel with odd spatial size, plus an
  optional bias (its gradient comes out of the kernel gradient's matmul)."""
  if bias is None:
    bias = jnp.zeros(kernel.shape[-1], kernel.dtype)
  return _conv2d(x, kernel, bias)


@jax.custom_vjp
def _conv2d(x: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
  return _conv(x, kernel) + bias


def _conv2d_fwd(x, kernel, bias):
  return _conv(x, kernel) + bias, (x, kernel)


def _weight_grads(x: jax.Array, cotangent: jax.Array, kh: int, kw: int):
  """The kernel and bias gradients as one matmul over every padded pixel of the batch.

  Rows t of X are the zero-padded input's pixels (batch, row, column flattened); the
  cotangent G sits on the same padded grid at offset 0. Kernel offset (a, b) pairs row t + s
  of X with row t of G, s = a * padded width + b, so the gradient at (a, b) is
  X[s:]^T G[:T - s] (a pairing never crosses into the next image: G is zero past each
  image's last real row and column). The narrower side is shifted and the kh x kw shifts
  laid side by side, with a column of ones for the bias: one dot for everything, no strided
  slices of the image and no reduction that keeps a grid axis.
  """
  n, height, width, c = x.shape
  o = cotangent.shape[-1]
  ph, pw = kh // 2, kw // 2
  rows = jnp.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0))).reshape(-1, c)
  grads = jnp.pad(cotangent, ((0, 0), (0, 2 * ph), (0, 2 * pw), (0, 0))).reshape(-1, o)
  total = rows.shape[0]
  ones = jnp.ones((total, 1), rows.dtype)
  shifts = [a * (width + 2 * pw) + b for a in range(kh) for b in range(kw)]
  contract = (((0,), (0,)), ((), ()))
  if o <= c:  # G shifted down by s: row t holds G[t - s].
    shifted = jnp.concatenate([jnp.pad(grads[:total - s], ((s, 0), (0, 0))) for s in shifts], -1)
    out = lax.dot_general(jnp.concatenate([rows, ones], -1), shifted, contract)
    return out[:c].reshape(c, kh, kw, o).transpose(1, 2, 0, 3), out[c, :o]  # shift 0 first
  shifted = jnp.concatenate([jnp.pad(rows[s:], ((0, s), (0, 0))) for s in shifts] + [ones], -1)
  out = lax.dot_general(shifted, grads, contract)
  return out[:-1].reshape(kh, kw, c, o), out[-1]


def _conv2d_bwd(residuals, cotangent):
  x, kernel = residuals
  kh, kw = kernel.shape[:2]
  grad_x = _conv(cotangent, jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2))
  grad_kernel, grad_bias = _weight_grads(x, cotangent, kh, kw)
  return grad_x, grad_kernel.astype(kernel.dtype), grad_bias.astype(kernel.dtype)


_conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


class Conv(nn.Module):
  """Drop-in for `nn.Conv(features, (k, k))` (stride 1, SAME): same params, init and values.

  activation: applied to the output when given (e.g. `nn.relu`), so the layer's output is
  what a split after it hands over (medinv.models.splitting).
  """
  features: int
  kernel_size: tuple[int, int] = (3, 3)
  kernel_init: Any = nn.initializers.lecun_normal()
  bias_init: Any = nn.initializers.zeros_init()
  activation: Callable[[jax.Array], jax.Array] | None = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.kernel_size[0] % 2 == 0 or self.kernel_size[1] % 2 == 0:
      raise ValueError(f'Conv needs odd kernel sizes, got {self.kernel_size}')
    kernel = self.param('kernel', self.kernel_init,
                        self.kernel_size + (x.shape[-1], self.features), jnp.float32)
    bias = self.param('bias', self.bias_init, (self.features,), jnp.float32)
    out = conv2d(x, kernel, bias)
    return out if self.activation is None else self.activation(out)


def _windows(x: jax.Array) -> jax.Array:
  """(n, h, w, c) -> (n, h/2, w/2, c, 4): each 2x2 window's values on the last axis."""
  n, h, w, c = x.shape
  return x.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 5, 2, 4).reshape(
      n, h // 2, w // 2, c, 4)


@jax.custom_vjp
def max_pool_2x2(x: jax.Array) -> jax.Array:
  """2x2 max-pool, stride 2: the values of `nn.max_pool(x, (2, 2), (2, 2))` as reshape-then-max.

  Its gradient goes to each window's first maximum (argmax), as select-and-scatter's does,
  without select-and-scatter. (JAX's own rule for max compares x with the max and divides by
  the count of equal values; under XLA:CPU's lowest optimisation level a recomputed x can
  differ from the max in the last bit, the count is 0, and the gradient is NaN.)
  """
  n, h, w, c = x.shape
  return jnp.max(x.reshape(n, h // 2, 2, w // 2, 2, c), axis=(2, 4))


def _max_pool_fwd(x):
  return max_pool_2x2(x), x


def _max_pool_bwd(x, cotangent):
  n, h, w, c = x.shape
  chosen = jax.nn.one_hot(jnp.argmax(_windows(x), -1), 4, dtype=cotangent.dtype)
  grad = (chosen * cotangent[..., None]).reshape(n, h // 2, w // 2, c, 2, 2)
  return (grad.transpose(0, 1, 4, 2, 5, 3).reshape(n, h, w, c),)


max_pool_2x2.defvjp(_max_pool_fwd, _max_pool_bwd)
