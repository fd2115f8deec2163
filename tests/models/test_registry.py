"""The model registry: the generic split checked against SplitCNN's own, models registered from
outside medinv (a small CNN with named blocks: model inversion, NoPeek; a record MLP of another
width: membership and attribute inference) in the experiments that apply to them, and every
registration and config error.

The outside models are registered under names of this module's own by the `registered`
fixture, which removes them again, so no other test sees them.
"""
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import attribute_heart
from configs import inversion_breastmnist
from configs import membership_heart
from configs import train_breastmnist
from configs import train_heart
from medinv import models
from medinv.attribute import experiment as attribute
from medinv.inversion import experiment as inversion
from medinv.membership import experiment as membership
from medinv.metrics import features as feature_metrics
from medinv.models import decoders
from medinv.models import networks
from medinv.training import trainer

IMAGE, NUMBERED, NO_POINTS = 'test_small_cnn', 'test_small_cnn_numbered', 'test_cnn_no_points'
RECORDS, BAD_OUTPUT = 'test_wide_mlp', 'test_bad_output'
BUILT = []  # the num_classes of every RECORDS model built (the experiments build it)


class SmallCNN(nn.Module):
  """An image classifier of a user's own, in plain flax: two named blocks and a head."""
  num_classes: int

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Conv(8, (3, 3), name='block1')(x))
    x = nn.max_pool(x, (2, 2), (2, 2))
    x = nn.relu(nn.Conv(16, (3, 3), name='block2')(x))
    return nn.Dense(self.num_classes, name='head')(x.reshape(x.shape[0], -1))


class Twice(nn.Module):
  """Applies one layer twice (a split point there is ambiguous)."""
  num_classes: int

  @nn.compact
  def __call__(self, x):
    shared = nn.Dense(x.shape[-1], name='shared')
    return nn.Dense(self.num_classes, name='head')(shared(shared(x)))


def wide_mlp(num_classes):
  BUILT.append(num_classes)
  return models.MLP(num_classes, hidden=(32,))


@pytest.fixture
def registered():
  names = [models.register(IMAGE, SmallCNN, takes='images', split_points=('block1', 'block2')),
           models.register(NUMBERED, SmallCNN, takes='images',
                           split_points={1: 'block1', 2: 'block2'}),
           models.register(NO_POINTS, SmallCNN, takes='images'),
           models.register(RECORDS, wide_mlp, takes='records'),
           models.register(BAD_OUTPUT, lambda n: models.MLP(n + 3), takes='records')]
  BUILT.clear()
  yield
  for entry in names:
    models.unregister(entry.name)


def _images(n=3, size=16):
  return jax.random.uniform(jax.random.key(0), (n, size, size, 1))


@pytest.mark.parametrize('split', models.SPLITS)
def test_generic_split_equals_split_cnn(split):
  model, x = models.SplitCNN(num_classes=2), _images()
  params = model.init(jax.random.key(1), x)['params']
  resolved = models.split_at('split_cnn', model, split, x)
  assert resolved.layer == f'conv{split}' and resolved.number == split
  assert resolved.edge_names == networks.edge_param_names(split)
  generic_edge = models.splitting.generic_edge_fn(model, resolved.layer)
  generic_cloud = models.splitting.generic_cloud_fn(model, resolved.layer, resolved.input_shape)
  features = model.apply({'params': params}, x, split, method=models.SplitCNN.edge)
  assert resolved.feature_shape == features.shape[1:]
  tolerance = dict(rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(generic_edge(models.edge_params(params, resolved), x), features,
                             **tolerance)
  np.testing.assert_allclose(
      generic_cloud(params, features),
      model.apply({'params': params}, features, split, method=models.SplitCNN.cloud), **tolerance)
  full = model.apply({'params': params}, x)
  np.testing.assert_allclose(generic_cloud(params, generic_edge(params, x)), full, **tolerance)
  # The entry's own methods split it in the experiments: exactly the functions of before.
  np.testing.assert_array_equal(models.edge_fn(model, resolved)(params, x), features)
  grads = [jax.jit(jax.grad(lambda p, f=f: jnp.sum(jnp.sin(f(p)))))(params) for f in (
      lambda p: generic_cloud(p, generic_edge(p, x)), lambda p: model.apply({'params': p}, x))]
  for a, b in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1])):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('layer,edge_names,upsamplings', [('block1', ('block1',), 0),
                                                          ('block2', ('block1', 'block2'), 1)])
def test_outside_model_splits_at_its_named_layers(registered, layer, edge_names, upsamplings):
  x = _images()
  module = models.build(IMAGE, 2, sample_x=x)
  params = module.init(jax.random.key(1), x)['params']
  split = models.split_at(IMAGE, module, layer, x)
  _, state = module.apply({'params': params}, x, mutable=['intermediates'],
                          capture_intermediates=lambda mdl, method: method == '__call__')
  layer_output = state['intermediates'][layer]['__call__'][0]
  edge, cloud = models.edge_fn(module, split), models.cloud_fn(module, split)
  assert tuple(models.edge_params(params, split)) == edge_names == split.edge_names
  features = edge(models.edge_params(params, split), x)  # hospital A's layers suffice
  np.testing.assert_array_equal(features, layer_output)
  np.testing.assert_allclose(jax.jit(edge)(params, x), layer_output, rtol=1e-6, atol=1e-6)
  assert split.feature_shape == layer_output.shape[1:] and split.number == len(edge_names)
  full = module.apply({'params': params}, x)
  np.testing.assert_allclose(cloud(params, features), full, rtol=1e-6, atol=1e-6)
  assert not np.allclose(cloud(params, features + 1.0), full)  # the cloud reads the features
  assert decoders.num_upsamplings(split) == upsamplings


@pytest.mark.e2e  # runs an experiment end to end: the e2e tier
def test_outside_image_model_runs_model_inversion(registered, data_dir, tmp_path):
  config = inversion_breastmnist.get_config('smoke')
  inversion_breastmnist.keep_core(config)  # model perturbation only, for time
  config.data.update(data_dir=data_dir, image_size=16)
  config.train.update(num_epochs=2, checkpoint_every_epochs=1)
  config.attack.knows_defense = (True,)
  config.model = IMAGE
  config.attack.splits = ('block2',)
  results = inversion.run(config, str(tmp_path))
  attack_rows = [r for r in results['rows'] if r['attack'] != 'mean_aux_image']
  assert {r['attack'] for r in attack_rows} == set(config.attack.names)
  assert {r['split'] for r in attack_rows} == {'block2'}
  assert {r['defense'] for r in attack_rows} == set(config.defense)
  assert all(np.isfinite(r['ssim_mean']) and 0 <= r['model_test_accuracy'] <= 1
             for r in attack_rows)
  # Undefended, hospital B's layers on hospital A's features are the model itself.
  clean = [r for r in attack_rows if r['defense'] == 'model_perturbation' and r['strength'] == 0]
  assert {r['model_test_accuracy'] for r in clean} == {results['metrics']['target_test_accuracy']}
  # Model perturbation's edge scope: the blocks hospital A runs, not the head.
  assert set(results['metrics']['noise_to_weight']['splitblock2']) == {'block1', 'block2'}
  assert (tmp_path / 'privacy_utility_splitblock2.png').stat().st_size > 0


def test_outside_record_model_runs_membership_inference(registered, data_dir, tmp_path):
  config = membership_heart.get_config('smoke')
  config.data.data_dir = data_dir
  config.model = RECORDS
  config.defense.names = ('randomized_response',)
  results = membership.run(config, str(tmp_path))
  assert BUILT and set(BUILT) == {2}  # the registered model is the one trained
  overall = [r for r in results['rows'] if r['subgroup'] == 'all' and r['defense'] == 'none']
  assert [r['attack'] for r in overall] == list(config.attack.names)
  assert {r['model'] for r in results['rows']} == {RECORDS}
  assert all(r['auc_low'] <= r['auc'] <= r['auc_high'] for r in overall)
  assert 0.5 < results['metrics']['target_test_accuracy'] <= 1.0


def test_outside_record_model_runs_attribute_inference(registered, data_dir, tmp_path):
  config = attribute_heart.get_config('smoke')
  config.data.data_dir = data_dir
  config.model = RECORDS
  results = attribute.run(config, str(tmp_path))
  assert BUILT and set(BUILT) == {2}
  assert {r['attack'] for r in results['rows']} == {'map', 'learned'}  # baselines: columns
  assert 0.5 < results['metrics']['model_test_accuracy'] <= 1.0


def test_nopeek_on_an_outside_model_penalises_its_split_layer(registered):
  config = train_breastmnist.get_config('smoke')
  config.model = NUMBERED
  config.train.update(nopeek_weight=2.0, nopeek_split=2)  # int points: train.nopeek_split
  trainer.validate(config)
  x = _images(8)
  module = models.build(NUMBERED, 2, sample_x=x)
  params = module.init(jax.random.key(1), x)['params']
  penalty = trainer.nopeek_penalty(config, module, x)
  _, state = module.apply({'params': params}, x, mutable=['intermediates'],
                          capture_intermediates=lambda mdl, method: method == '__call__')
  expected = 2.0 * feature_metrics.distance_correlation(
      x, state['intermediates']['block2']['__call__'][0])
  np.testing.assert_allclose(penalty(params, x), expected, rtol=1e-6)
  grads = jax.grad(penalty)(params, x)
  assert not np.any(grads['head']['kernel']) and np.any(grads['block1']['kernel'])


def _raises(message, fn, *args, **kwargs):
  with pytest.raises(ValueError, match=message):
    fn(*args, **kwargs)


def test_config_errors_name_the_field_and_what_is_allowed(registered):
  _raises(re.escape("config.model: unknown model 'resnet'; known models: 'mlp', 'split_cnn', "
                    "'test_bad_output', 'test_cnn_no_points', 'test_small_cnn', "
                    "'test_small_cnn_numbered', 'test_wide_mlp'"), models.build, 'resnet', 2)
  heart = train_heart.get_config('smoke')
  heart.model = IMAGE
  _raises(re.escape("config.model 'test_small_cnn' does not fit dataset 'heart_disease': the "
                    'model is registered for images and the dataset holds records; models for '
                    "records: 'mlp', 'test_bad_output', 'test_wide_mlp'"), trainer.validate, heart)
  images = train_breastmnist.get_config('smoke')
  images.model = RECORDS
  _raises(re.escape("models for images: 'split_cnn', 'test_cnn_no_points', 'test_small_cnn', "
                    "'test_small_cnn_numbered'"), trainer.validate, images)
  config = inversion_breastmnist.get_config('smoke')
  config.model = NO_POINTS
  _raises(re.escape("config.model needs model 'split_cnn' or 'test_small_cnn' or "
                    "'test_small_cnn_numbered', or another model registered with split points: "
                    "model 'test_cnn_no_points' declares no split points; register it with "
                    'split_points=... to run model inversion'), inversion.validate, config)
  images.model = NO_POINTS
  images.train.nopeek_weight = 1.0
  _raises(re.escape("train.nopeek_weight needs model 'split_cnn' or 'test_small_cnn' or "
                    "'test_small_cnn_numbered', or another model registered with split points: "
                    "model 'test_cnn_no_points' declares no split points; register it with "
                    'split_points=... to run NoPeek'), trainer.validate, images)
  config.model = IMAGE
  config.attack.splits = ('block2', 'block3')
  _raises(re.escape("every entry of attack.splits ('block2', 'block3') must be one of ('block1', "
                    "'block2') (the split points model 'test_small_cnn' declares), got 'block3'"),
          inversion.validate, config)
  images.model, images.train.nopeek_split = NUMBERED, 3
  _raises(re.escape('train.nopeek_split must be one of (1, 2)'), trainer.validate, images)
  images.model, images.train.nopeek_split = 'split_cnn', 3
  _raises(re.escape('train.nopeek_split must be one of (2, 4, 6)'), trainer.validate, images)


def test_registration_and_module_errors(registered):
  _raises(f"model '{IMAGE}' is already registered", models.register, IMAGE, SmallCNN,
          takes='images')
  _raises("model 'mlp' is already registered", models.register, 'mlp', models.MLP,
          takes='records')
  _raises(r"takes must be one of \('records', 'images'\), got 'pixels'", models.register,
          'test_pixels', SmallCNN, takes='pixels')
  _raises('split_points must be a sequence or mapping of layer names', models.register,
          'test_one_string', SmallCNN, takes='images', split_points='block1')
  _raises('edge and cloud come together', models.register, 'test_edge_only', SmallCNN,
          takes='images', split_points=('block1',), edge=networks.edge_fn)
  assert not {'test_pixels', 'test_one_string', 'test_edge_only'} & set(models.MODELS)
  records = np.zeros((4, 13), np.float32)
  _raises(rf"config.model '{BAD_OUTPUT}': its module returned \(2, 5\) on a batch of shape "
          r'\(2, 13\); a target model returns logits \(batch, num_classes\) = \(2, 2\)',
          models.build, BAD_OUTPUT, 2, records[:2])
  module = models.build(IMAGE, 2)
  x = _images()
  models.register('test_missing_layer', SmallCNN, takes='images', split_points=('block9',))
  models.register('test_twice', Twice, takes='records', split_points=('shared',))
  try:
    _raises(r"split layer 'block9' does not run in one forward pass.*\(ran: block1, block2, "
            r'head\)', models.split_at, 'test_missing_layer', module, 'block9', x)
    _raises("split layer 'shared' runs 2 times", models.split_at, 'test_twice',
            Twice(2), 'shared', records)
  finally:
    models.unregister('test_missing_layer')
    models.unregister('test_twice')
  models.register('test_head_split', SmallCNN, takes='images', split_points=('head',))
  try:
    split = models.split_at('test_head_split', module, 'head', x)
    _raises(r"split point 'head' \(layer 'head'\) sends features of shape \(2,\).*decoder "
            'needs a feature map', decoders.num_upsamplings, split)
  finally:
    models.unregister('test_head_split')
