"""The feature-alignment attack aligns its substitute edge to features hospital B intercepted
for other patients (training images that are not targets), sent under the same deployment,
never to the targets' own features."""
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import inversion_breastmnist
from medinv import data as data_lib
from medinv import models
from medinv.inversion import experiment as inversion_experiment
from medinv.inversion import grid
from medinv.inversion import validate as inversion_validate
from medinv.inversion import reconstruct
from medinv.inversion import attacks as inversion_attacks

SIZE = 16


@functools.lru_cache
def _split_cnn():
  model = models.SplitCNN(num_classes=2)
  params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, SIZE, SIZE, 1)))['params']
  return model, params


def _images(n, seed):
  return np.random.default_rng(seed).uniform(size=(n, SIZE, SIZE, 1)).astype(np.float32)


def _reconstruct(x_intercepted, strength=0.0):
  model, theta = _split_cnn()
  cfg = ml_collections.ConfigDict(dict(inversion_attacks.get('feature_alignment').defaults,
                                       substitute_steps=3, steps=3, batch_size=4, width=8))
  defense_cfg = ml_collections.ConfigDict(dict(modes=('fixed',), scope='edge',
                                               sigma_scale='absolute'))
  arrays = jax.tree.map(jnp.asarray, {
      'theta': theta, 'x_targets': _images(3, 1), 'x_aux': _images(12, 2),
      'y_aux': np.zeros((12,), np.int32), 'x_intercepted': x_intercepted})
  out = grid.attack_at(strength, arrays, {}, defense='model_perturbation',
                       defense_cfg=defense_cfg, defense_key=jax.random.key(1),
                       attack='feature_alignment', cfg=cfg, model=model, split=2,
                       knows_defense=None, attack_key=jax.random.key(2), num_classes=2)
  return np.asarray(out['fixed'])


def test_reconstructions_depend_on_the_intercepted_pool():
  pool = _images(8, 3)
  same, again = _reconstruct(pool), _reconstruct(pool)
  np.testing.assert_array_equal(same, again)  # same keys, same pool: same reconstructions
  other = _reconstruct(_images(8, 4))
  assert not np.allclose(same, other)  # the substitute aligns to the pool it was given


def test_intercepted_pool_is_read_under_its_own_query_numbers():
  assert reconstruct.INTERCEPTED_QUERIES not in (
      reconstruct.TARGET_QUERIES, reconstruct.ATTACKER_QUERIES, reconstruct.EVAL_QUERIES)
  assert reconstruct.INTERCEPTED_QUERIES - reconstruct.EVAL_QUERIES >= 1 << 24  # room per use


def _config(num_targets, intercepted, names=('inverse_network', 'feature_alignment')):
  config = inversion_breastmnist.get_config('smoke')
  config.attack.update(names=names, num_targets=num_targets, figure_targets=1)
  config.attack.feature_alignment.intercepted = intercepted
  return config


def test_intercepted_images_are_training_images_that_are_not_targets():
  x_train = _images(40, 5)
  x_train[:, 0, 0, 0] = np.arange(40)  # each image carries its index
  task = data_lib.Task('breastmnist', x_train, np.zeros(40, np.int32), x_train[:4],
                       np.zeros(4, np.int32), ('benign', 'malignant'))
  config = _config(num_targets=6, intercepted=10)
  targets = inversion_experiment.targets(config, task)[:, 0, 0, 0]
  pool = inversion_experiment.intercepted(config, task)[:, 0, 0, 0]
  assert len(pool) == 10 and len(set(pool)) == 10
  assert not set(pool) & set(targets)
  assert set(pool) <= set(range(40))
  config.seed = 1  # the attack stream draws another pool
  assert set(inversion_experiment.intercepted(config, task)[:, 0, 0, 0]) != set(pool)
  assert inversion_experiment.intercepted(
      _config(6, 10, names=('inverse_network',)), task) is None  # no attack reads it
  with pytest.raises(ValueError, match=r'attack.num_targets \+ attack.<name>.intercepted'):
    inversion_experiment.intercepted(_config(num_targets=6, intercepted=35), task)


def test_splits_of_names_a_named_attack_and_a_subset_of_the_splits():
  config = _config(num_targets=4, intercepted=8)
  config.attack.splits = (2, 4)
  config.attack.splits_of = ml_collections.ConfigDict({'feature_alignment': (4,)})
  inversion_validate.validate(config)
  config.attack.splits_of.feature_alignment = (6,)
  with pytest.raises(ValueError, match=r'attack.splits_of.feature_alignment: \(6,\) must name'):
    inversion_validate.validate(config)
  config.attack.splits_of = ml_collections.ConfigDict({'rmle': (4,)})  # rmle is not named
  with pytest.raises(ValueError, match=r'attack.splits_of.rmle'):
    inversion_validate.validate(config)


@pytest.mark.e2e
def test_an_attack_runs_only_at_its_splits(tmp_path, data_dir):
  config = _config(num_targets=4, intercepted=8)
  config.data.data_dir = data_dir
  config.attack.splits = (2, 4)
  config.attack.splits_of = ml_collections.ConfigDict({'feature_alignment': (4,)})
  config.defense = ml_collections.ConfigDict(
      {'model_perturbation': config.defense.model_perturbation})
  config.defense.model_perturbation.update(strengths=(0.0,), modes=('fixed',))
  rows = inversion_experiment.run(config, str(tmp_path))['rows']
  ran = {(r['attack'], r['split']) for r in rows if r['attack'] != 'mean_aux_image'}
  assert ran == {('inverse_network', 2), ('inverse_network', 4), ('feature_alignment', 4)}
