"""Models and fast layers: split equivalence, drop-in equality with flax's layers."""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from medinv.models import layers
from medinv import models


@pytest.fixture(scope='module')
def cnn():
  model = models.SplitCNN(num_classes=2)
  x = jax.random.uniform(jax.random.key(0), (3, 16, 16, 1))
  params = model.init(jax.random.key(1), x)['params']
  return model, params, x


@pytest.mark.parametrize('split', models.SPLITS)
def test_cloud_of_edge_equals_forward(cnn, split):
  model, params, x = cnn
  full = model.apply({'params': params}, x)
  edge = models.edge_fn(model, split)(models.edge_params(params, split), x)
  np.testing.assert_array_equal(models.cloud_fn(model, split)(params, edge), full)
  channels = models.CONV_CHANNELS[split - 1]
  side = 16 // 2 ** (split // 2 - 1)
  assert edge.shape == (3, side, side, channels)
  assert set(models.edge_params(params, split)) == {f'conv{i + 1}' for i in range(split)}


def test_bad_split_and_model_names():
  with pytest.raises(ValueError, match=r'split must be one of \(2, 4, 6\)'):
    models.edge_fn(models.SplitCNN(2), 3)
  with pytest.raises(ValueError, match="known models: 'mlp', 'split_cnn'"):
    models.build('resnet', 2)


def test_mlp_shape():
  model = models.MLP(num_classes=3)
  params = model.init(jax.random.key(0), jnp.ones((1, 13)))['params']
  assert [p['kernel'].shape for p in params.values()] == [(13, 100), (100, 100), (100, 3)]


@pytest.mark.parametrize('shape,features', [((2, 8, 8, 3), 5), ((1, 6, 10, 4), 2)])
def test_fast_conv_matches_flax_conv(shape, features):
  x = jax.random.normal(jax.random.key(0), shape)
  ours, theirs = layers.Conv(features), nn.Conv(features, (3, 3))
  params = theirs.init(jax.random.key(1), x)
  assert jax.tree.structure(params) == jax.tree.structure(ours.init(jax.random.key(1), x))
  np.testing.assert_allclose(ours.apply(params, x), theirs.apply(params, x), rtol=1e-6, atol=1e-6)

  def loss(module, params, x):
    return jnp.sum(jnp.sin(module.apply(params, x)))
  grads_ours = jax.grad(loss, argnums=(1, 2))(ours, params, x)
  grads_theirs = jax.grad(loss, argnums=(1, 2))(theirs, params, x)
  for a, b in zip(jax.tree.leaves(grads_ours), jax.tree.leaves(grads_theirs)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


# Wider outputs (the input is shifted), narrower outputs (the cotangent is), a non-square
# kernel and image, and a 1x1 kernel.
@pytest.mark.parametrize('x_shape,kernel_shape', [((2, 8, 8, 3), (3, 3, 3, 4)),
                                                  ((3, 8, 6, 5), (3, 5, 5, 2)),
                                                  ((2, 4, 4, 3), (1, 1, 3, 3))])
def test_fast_conv_gradient_inside_scan(x_shape, kernel_shape):
  x = jax.random.normal(jax.random.key(0), x_shape)
  kernel = jax.random.normal(jax.random.key(1), kernel_shape)

  def grads(k):
    return jax.grad(lambda k, x: jnp.sum(layers.conv2d(x, k) ** 2), argnums=(0, 1))(k, x)
  _, (looped_k, looped_x) = jax.lax.scan(lambda c, _: (c, grads(kernel)), None, length=2)
  plain = jax.grad(lambda k, x: jnp.sum(jax.lax.conv_general_dilated(
      x, k, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC')) ** 2), (0, 1))(kernel, x)
  np.testing.assert_allclose(looped_k[1], plain[0], rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(looped_x[1], plain[1], rtol=1e-4, atol=1e-4)


def test_max_pool_matches_flax():
  x = jax.random.normal(jax.random.key(0), (2, 8, 6, 3))
  np.testing.assert_array_equal(layers.max_pool_2x2(x), nn.max_pool(x, (2, 2), (2, 2)))
  g_ours = jax.grad(lambda x: jnp.sum(layers.max_pool_2x2(x) ** 2))(x)
  g_flax = jax.grad(lambda x: jnp.sum(nn.max_pool(x, (2, 2), (2, 2)) ** 2))(x)
  np.testing.assert_allclose(g_ours, g_flax)  # No ties in Gaussian inputs.
  ties = jnp.round(x) * (x > 0)  # ReLU-like zeros and equal values inside windows
  g_ours = jax.grad(lambda x: jnp.sum(layers.max_pool_2x2(x) * 2.0 + 1.0))(ties)
  g_flax = jax.grad(lambda x: jnp.sum(nn.max_pool(x, (2, 2), (2, 2)) * 2.0 + 1.0))(ties)
  np.testing.assert_array_equal(g_ours, g_flax)  # Each window's first maximum gets it all.
  assert float(jnp.sum(g_ours)) == 2.0 * ties.size / 4


def _per_point(x, kernel):
  return jnp.stack([jax.lax.conv_general_dilated(
      x[i], kernel[i], (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
      for i in range(kernel.shape[0])])


@pytest.mark.parametrize('points', [3, layers.UNROLL + 2])  # unrolled, then lax.map
def test_conv_vmapped_over_kernels_equals_one_point_at_a_time(points):
  x = jax.random.normal(jax.random.key(0), (points, 2, 8, 8, 3))
  kernel = jax.random.normal(jax.random.key(1), (points, 3, 3, 3, 4))
  expected = _per_point(x, kernel)
  np.testing.assert_allclose(jax.vmap(layers.conv2d)(x, kernel), expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(layers.looped_conv(x, kernel), expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(layers.grouped_conv(x, kernel), expected, rtol=1e-5, atol=1e-5)
  shared = jax.vmap(layers.conv2d, in_axes=(None, 0))(x[0], kernel)  # one image batch
  np.testing.assert_allclose(shared, _per_point(jnp.broadcast_to(x[0], x.shape), kernel),
                             rtol=1e-5, atol=1e-5)
  # A batch of images under one kernel, and both axes nested (targets inside points).
  nested = jax.vmap(jax.vmap(layers.conv2d, in_axes=(0, None)))(x[:, :, None], kernel)
  np.testing.assert_allclose(nested[:, :, 0], expected, rtol=1e-5, atol=1e-5)


def test_conv_gradients_vmapped_over_kernels_equal_per_point_gradients():
  x = jax.random.normal(jax.random.key(0), (4, 2, 8, 8, 3))
  kernel = jax.random.normal(jax.random.key(1), (4, 3, 3, 3, 4))

  def loss(conv, k, x):
    return jnp.sum(jnp.sin(conv(x, k)))
  ours = jax.vmap(jax.grad(functools.partial(loss, layers.conv2d), (0, 1)))(kernel, x)
  plain = jax.vmap(jax.grad(functools.partial(loss, lambda x, k: jax.lax.conv_general_dilated(
      x, k, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))), (0, 1)))(kernel, x)
  for a, b in zip(ours, plain):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
