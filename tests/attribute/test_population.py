"""Population training: equals sequential runs, resumes exactly, compiles once, and its
attribute-inference attack equals medinv.attribute.experiment's on the same model, key and
likelihood."""
import functools
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import sweep_population
from medinv.attribute import experiment as attribute_experiment
from medinv import data as data_lib
from medinv import defenses
from medinv.core import keys as keys_lib
from medinv import models
from medinv.attribute import population as population_experiment
from medinv.training import optimizer
from medinv.training import population
from medinv.core import sharding
from medinv.study import sweep
from medinv.training import trainer
from medinv.attribute import inference as attribute
from medinv.attribute import attacks as attribute_attacks
from medinv.attribute import evaluation as attribute_eval


def _config(data_dir, seeds=(0, 1), flip_probs=(0.0, 0.3), **train_overrides):
  config = sweep_population.get_config('smoke')
  config.data.data_dir = data_dir
  config.train.update(train_overrides)
  config.sweep.axes = ml_collections.ConfigDict(
      {'seed': seeds, 'train': {'label_flip_prob': flip_probs}})
  (run,) = sweep.expand_runs(config)
  return run.config


def _model(tree, k):
  return jax.tree.map(lambda leaf: np.asarray(leaf)[k], tree)


@pytest.fixture(scope='module')
def population_run(data_dir, tmp_path_factory):
  config = _config(data_dir)
  workdir = str(tmp_path_factory.mktemp('population'))
  return config, workdir, population_experiment.run(config, workdir)


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
    trained = trainer.train_and_evaluate(single, str(tmp_path / f'single{k}'))
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


def _attribute_accuracy(config, task, params, apply_fn, seed, flip_prob, name):
  """medinv.attribute.experiment's grid program on `params` at one flip_prob, draw 0 of grid point
  0, with the keys that experiment draws for config.seed = seed: {(attack, variant): [members,
  non-members]}."""
  streams = keys_lib.named_keys(seed)
  targets, member, aux = attribute_eval.attack_sets(
      task, jax.random.fold_in(keys_lib.named_keys(config.seed)['attack'], 0), config.attack)
  arrays = {**attribute_eval.record_arrays(targets, member, aux, task),
            **attribute_eval.attribute_arrays(targets, aux, name)}
  attacks, baselines = attribute_eval.split_attacks(config.attack)
  _, point = attribute_experiment.grid_program(apply_fn, release=config.defense.release,
                                               decimals=config.defense.decimals,
                                               noise_std=float(config.defense.noise_std),
                                               attacks=tuple(r for r in attacks if r.name == 'map'),
                                               baselines=baselines)
  a = list(config.attack.sensitive).index(name)
  attack_root = jax.random.fold_in(jax.random.fold_in(streams['attack'], 1 + a), 1)
  grid_point = {'flip_prob': np.float32(flip_prob),
                'defense_keys': attribute_experiment.grid_keys(
                    jax.random.fold_in(streams['defense'], 1), 1, 1)[0],
                'attack_keys': attribute_experiment.grid_keys(attack_root, 1, 1)[0]}
  view_params = (params, np.asarray(task.scaler.mean), np.asarray(task.scaler.std))
  out = jax.device_get(point(grid_point, arrays, view_params))
  return {attack: accuracy[0] for attack, accuracy in out['attacks'].items()}


@pytest.fixture(scope='module')
def population_model(population_run):
  """Model 2 of the population run (seed 1, label flip_prob 0.0), resumed from its run."""
  config, workdir, _ = population_run
  task = data_lib.load_task(config.data)
  _, state, _ = population.fit(config, task, population.points(config),
                               checkpoint_dir=os.path.join(workdir, 'checkpoints'))
  return task, _model(sharding.gather(state.params), 2), models.build(config.model,
                                                                      task.num_classes)


def test_population_rows_equal_attribute_inference_on_the_same_model(population_run,
                                                                     population_model):
  """results.json of the population == medinv.attribute.experiment's program on model 2, per variant
  and target group (release p = 0, the keys that experiment draws for seed 1)."""
  config, _, results = population_run
  task, params, model = population_model
  attribute_accuracy = _attribute_accuracy(config, task, params, model.apply, seed=1,
                                           flip_prob=0.0, name='sex')
  for variant in ('indicator', 'confusion'):
    for g, group in enumerate(attribute_eval.GROUPS):
      (row,) = [r for r in results['rows'] if r['seed'] == 1 and r['label_flip_prob'] == 0.0
                and r['variant'] == variant and r['targets'] == group]
      assert row['attack_accuracy'] == pytest.approx(attribute_accuracy[('map', variant)][g],
                                                     abs=1e-6)
      if group == 'members':
        assert row['n'] == len(task.records_train)


def test_population_attack_equals_attribute_inference_under_randomized_response(
    population_run, population_model):
  """The same evaluation with release flip_prob 0.3: the confusion variant reads pi measured
  on the training records in both experiments. (Measured on the auxiliary records, as
  population did before, it gives this model 0.686 instead of 0.678 on the members.)"""
  config, _, _ = population_run
  flip_prob = 0.3
  task, params, model = population_model
  settings = dict(population_experiment.attack_settings(config, flip_prob=flip_prob))
  arrays, _, _, _ = population_experiment.prepare_attack(config, task)
  attack_accuracy = jax.jit(functools.partial(population_experiment.attack_accuracy,
                                              apply_fn=model.apply, **settings))
  got = jax.device_get(attack_accuracy(params, 1, arrays))
  want = _attribute_accuracy(config, task, params, model.apply, seed=1, flip_prob=flip_prob,
                             name='sex')
  assert set(got['sex']) == {('map', 'indicator'), ('map', 'confusion')}
  for attack, accuracy in got['sex'].items():
    np.testing.assert_allclose(accuracy, want[attack], atol=1e-6)


def test_population_baselines_and_map_equal_independent_computations(population_run,
                                                                     population_model):
  """The rows' baselines are the prior's majority guess and a classifier trained here with the key
  medinv.attribute.experiment uses for attribute 0; MAP (indicator, release p = 0) is map_attack on
  the model's own predicted labels, computed without the experiment's channel or keys."""
  config, _, results = population_run
  task, params, model = population_model
  targets, member, aux = attribute_eval.attack_sets(
      task, jax.random.fold_in(keys_lib.named_keys(config.seed)['attack'], 0), config.attack)
  arrays = attribute_eval.attribute_arrays(targets, aux, 'sex')
  view_params = (params, jnp.asarray(task.scaler.mean), jnp.asarray(task.scaler.std))
  features = jnp.asarray(targets.features)
  released = jnp.argmax(defenses.model_probs(view_params, features, apply_fn=model.apply), -1)
  view_fn = functools.partial(defenses.candidate_view, apply_fn=model.apply, release='label',
                              decimals=1)
  guess = attribute.map_attack(view_fn, view_params, features, released, arrays['prior'],
                               arrays['candidates'], column=arrays['column'],
                               variant='indicator')
  is_member = np.asarray(member) == 1
  truth = np.asarray(arrays['target_truth'])[is_member]
  want = float(np.mean(np.asarray(guess)[is_member] == truth))
  (row,) = [r for r in results['rows'] if r['seed'] == 1 and r['label_flip_prob'] == 0.0
            and r['variant'] == 'indicator' and r['targets'] == 'members']
  assert row['attack_accuracy'] == pytest.approx(want, abs=1e-6)
  column = arrays['column']
  known = lambda records: attribute.known_attributes(jnp.asarray(records.features), column)
  classifier = attribute.train_classifier(
      jax.random.fold_in(jax.random.fold_in(keys_lib.named_keys(config.seed)['attack'], 1), 0),
      known(aux), jnp.asarray(arrays['aux_truth']), len(arrays['candidates']),
      **{field: config.attack.classifier[field] for field in attribute_attacks.CLASSIFIER_DEFAULTS})
  classifier_accuracy = float(np.mean(np.asarray(classifier.predict(known(targets)))[is_member]
                                      == truth))
  majority = np.argmax(np.bincount(arrays['aux_truth'], minlength=len(arrays['candidates'])))
  assert row['prior_accuracy'] == pytest.approx(np.mean(truth == majority), abs=1e-6)
  assert row['baseline_classifier_accuracy'] == pytest.approx(classifier_accuracy, abs=1e-6)
  assert row['best_baseline_accuracy'] == max(row['prior_accuracy'],
                                              row['baseline_classifier_accuracy'])


def test_resume_equals_uninterrupted_and_compiles_once(data_dir, tmp_path):
  # A constant rate: the run "killed" below is one configured with fewer epochs.
  config = _config(data_dir, seeds=(3,), flip_probs=(0.1, 0.2, 0.4), num_epochs=3,
                   checkpoint_every_epochs=1, schedule='constant')
  task = data_lib.load_task(config.data)
  points = population.points(config)
  settings = optimizer.settings(config.train, len(task.y_train))
  chunk = population.chunk_fn(models.build('mlp', 2), settings, config.train.batch_size,
                              (False, 0), 1, 2, 0)
  program = sharding.program(chunk, sharding.grid_mesh(), 0, 3)
  compiled_before = program._cache_size()
  _, full, _ = population.fit(config, task, points)
  stopped = config.copy_and_resolve_references()
  stopped.train.num_epochs = 2  # "Killed" after epoch 2, then the same directory resumed.
  population.fit(stopped, task, points, checkpoint_dir=str(tmp_path))
  _, resumed, _ = population.fit(config, task, points, checkpoint_dir=str(tmp_path))
  for a, b in zip(jax.tree.leaves(sharding.gather(full)),
                  jax.tree.leaves(sharding.gather(resumed))):
    np.testing.assert_array_equal(a, b)
  # Six one-epoch chunks of a 3-model population: one compiled program.
  assert program._cache_size() == compiled_before + 1
