"""Population training: equals sequential runs, resumes exactly, compiles once, attacks."""
import functools
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import sweep_population
from medinv import aia
from medinv import data as data_lib
from medinv import defenses
from medinv import keys as keys_lib
from medinv import models
from medinv import population
from medinv import sharding
from medinv import train
from medinv.attacks import attribute


def _config(data_dir, seeds=(0, 1), flip_probs=(0.0, 0.3), **train_overrides):
  config = sweep_population.get_config('smoke')
  config.data.data_dir = data_dir
  config.train.update(train_overrides)
  config.sharding.axes = ml_collections.ConfigDict(
      {'seed': seeds, 'train': {'label_flip_prob': flip_probs}})
  (run,) = sharding.expand_runs(config)
  return run.config


def _model(tree, k):
  return jax.tree.map(lambda leaf: np.asarray(leaf)[k], tree)


@pytest.fixture(scope='module')
def population_run(data_dir, tmp_path_factory):
  config = _config(data_dir)
  workdir = str(tmp_path_factory.mktemp('population'))
  return config, workdir, population.run(config, workdir)


def test_population_equals_sequential_training(population_run, tmp_path):
  config, _, results = population_run
  task = data_lib.load_task(config.data)
  _, state, size = population.fit(config, task, population.points(config))
  assert size == 4
  params = sharding.gather(state.params)
  for k, (seed, flip_prob) in enumerate([(0, 0.0), (1, 0.3)]):
    single = config.copy_and_resolve_references()
    del single['sweep']
    single.seed, single.train.label_flip_prob = seed, flip_prob
    trained = train.train_and_evaluate(single, str(tmp_path / f'single{k}'))
    index = [0, 3][k]  # Grid order: seed slowest, flip_prob fastest.
    for got, want in zip(jax.tree.leaves(_model(params, index)), jax.tree.leaves(trained.params)):
      np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    row = next(r for r in results['rows'] if r['seed'] == seed
               and r['label_flip_prob'] == flip_prob)
    assert row['test_accuracy'] == pytest.approx(trained.metrics['test_accuracy'], abs=1e-6)
    assert row['train_accuracy'] == pytest.approx(trained.metrics['train_accuracy'], abs=1e-6)
  flipped = [r['train_accuracy'] for r in results['rows'] if r['label_flip_prob'] == 0.3]
  clean = [r['train_accuracy'] for r in results['rows'] if r['label_flip_prob'] == 0.0]
  assert np.mean(flipped) < np.mean(clean)  # Flipped training labels cost training fit.


def test_population_attack_equals_direct_map_attack(population_run):
  config, workdir, results = population_run
  assert os.path.exists(os.path.join(workdir, 'results.csv'))
  task = data_lib.load_task(config.data)
  _, state, _ = population.fit(config, task, population.points(config),
                               checkpoint_dir=os.path.join(workdir, 'checkpoints'))
  params = _model(sharding.gather(state.params), 2)  # seed 1, flip_prob 0.0
  model = models.build(config.model, task.num_classes)
  targets, member, aux = aia.attack_sets(
      task, jax.random.fold_in(keys_lib.named_keys(config.seed)['attack'], 0),
      config.attack)
  arrays = aia.attribute_arrays(targets, member, aux, task, 'sex')
  view_params = (params, jnp.asarray(task.scaler.mean), jnp.asarray(task.scaler.std))
  released = jnp.argmax(defenses.model_probs(view_params, arrays['targets'], apply_fn=model.apply), -1)
  view_fn = functools.partial(defenses.candidate_view, apply_fn=model.apply, release='label',
                              decimals=1)
  guess = attribute.map_attack(view_fn, view_params, arrays['targets'], released,
                               arrays['prior'], arrays['candidates'], column=arrays['column'],
                               variant='indicator')
  is_member = np.asarray(member) == 1
  want = float(np.mean((np.asarray(guess) == np.asarray(arrays['target_truth']))[is_member]))
  row = next(r for r in results['rows'] if r['seed'] == 1 and r['label_flip_prob'] == 0.0
             and r['variant'] == 'indicator' and r['targets'] == 'members')
  assert row['attack_accuracy'] == pytest.approx(want, abs=1e-6)
  assert row['prior_accuracy'] < 1.0 and row['n'] == int(is_member.sum())
  # The no-model baselines, drawn from the key medinv.aia uses for attribute 0 ('sex').
  streams = keys_lib.named_keys(config.seed)
  column = arrays['column']
  baseline = attribute.baseline_attack(
      jax.random.fold_in(jax.random.fold_in(streams['attack'], 1), 0),
      attribute.known_attributes(arrays['aux'], column), arrays['aux_truth'],
      attribute.known_attributes(arrays['targets'], column), arrays['prior'],
      hidden=tuple(config.attack.hidden), steps=config.attack.steps,
      learning_rate=config.attack.learning_rate, weight_decay=config.attack.weight_decay)
  truth = np.asarray(arrays['target_truth'])[is_member]
  prior = float(np.mean(np.asarray(baseline['prior'])[is_member] == truth))
  classifier = float(np.mean(np.asarray(baseline['classifier'])[is_member] == truth))
  assert row['prior_accuracy'] == pytest.approx(prior, abs=1e-6)
  assert row['baseline_classifier_accuracy'] == pytest.approx(classifier, abs=1e-6)
  assert row['advantage'] == pytest.approx(want - max(prior, classifier), abs=1e-6)


def test_resume_equals_uninterrupted_and_compiles_once(data_dir, tmp_path):
  config = _config(data_dir, seeds=(3,), flip_probs=(0.1, 0.2, 0.4), num_epochs=3,
                   checkpoint_every_epochs=1)
  task = data_lib.load_task(config.data)
  points = population.points(config)
  chunk = population.chunk_fn(models.build('mlp', 2), 0.0, config.train.batch_size, False, 1, 2)
  program = sharding.program(chunk, sharding.grid_mesh(), 0, 3)
  compiled_before = program._cache_size()
  _, full, _ = population.fit(config, task, points)
  stopped = config.copy_and_resolve_references()
  stopped.train.num_epochs = 2  # "Killed" after epoch 2, then the same directory resumed.
  population.fit(stopped, task, points, checkpoint_dir=str(tmp_path))
  _, resumed, _ = population.fit(config, task, points, checkpoint_dir=str(tmp_path))
  for a, b in zip(jax.tree.leaves(sharding.gather(full)), jax.tree.leaves(sharding.gather(resumed))):
    np.testing.assert_array_equal(a, b)
  # Six one-epoch chunks of a 3-model population: one compiled program.
  assert program._cache_size() == compiled_before + 1
