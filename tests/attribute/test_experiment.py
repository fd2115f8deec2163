"""The attribute-inference experiment: config validation and end-to-end runs (heart with an
extension attack and baseline registered from here, cardio on the shared file), checked
against known answers and computations made here without the experiment's keys or grid."""
import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import attribute_cardio
from configs import attribute_heart
from medinv.attribute import experiment as attribute_experiment
from medinv import data as data_lib
from medinv import defenses
from medinv.core import keys as keys_lib
from medinv.training import trainer
from medinv.attribute import inference as attribute
from medinv.attribute import attacks as attribute_attacks
from medinv.attribute import evaluation as attribute_eval
from medinv.data import heart_disease
from medinv.data import records
from extensions import constant_guess  # the extension attacks of the unit tests
from extensions import oracle_guess


def _check(config, match):
  with pytest.raises(ValueError, match=match):
    attribute_experiment.validate(config)


def test_bad_configs_fail_before_compute(monkeypatch):
  config = attribute_heart.get_config('smoke')
  attribute_experiment.validate(config)
  with config.unlocked():
    config.defense.flip_probs = (0.0, 0.6)
  _check(config, r'flip_prob 0.6 is outside \[0, \(k-1\)/k\]')
  config = attribute_heart.get_config('smoke')
  config.attack.sensitive = ('sex', 'gender')
  _check(config, "'gender' is not in the heart_disease schema; valid attributes: age, sex")
  config = attribute_heart.get_config('smoke')
  config.attack.member_fraction = 0.0
  _check(config, r'attack.member_fraction must be in \(0, 1\]')
  for num_aux in (0, -2):
    config = attribute_heart.get_config('smoke')
    config.attack.num_aux = num_aux
    _check(config, 'attack.num_aux must be -1 \\(every record that is not a target\\) or a '
           f'positive number of records, got {num_aux}')
  config = attribute_heart.get_config('smoke,release=noisy_probs')
  config.defense.noise_std = -0.1
  _check(config, 'noise_std must be >= 0')
  config = attribute_heart.get_config('smoke')
  config.attack.map.variants = ('probability',)
  _check(config, "'probability' needs a probability release")
  config = attribute_heart.get_config('smoke')
  config.attack.names = ('map', 'nearest')
  _check(config, "unknown attribute attack 'nearest'; registered: ")
  config = attribute_heart.get_config('smoke')
  config.attack.learned.steps = 0
  _check(config, 'attack.learned.steps must be positive')
  config = attribute_heart.get_config('smoke')
  config.attack.map.epsilon = 0.1
  _check(config, r"attack.map: unknown fields \['epsilon'\]; known: \['eps', 'variants'\]")
  unbinned = records.Column('age', 'age', False)
  monkeypatch.setattr(heart_disease, 'COLUMNS', (unbinned,) + heart_disease.COLUMNS[1:])
  config = attribute_heart.get_config('smoke')
  config.attack.sensitive = ('age',)
  _check(config, "'age' is numeric and has no bins")
  with pytest.raises(ValueError, match='overlaps the targets in 1 records'):
    attribute_eval.check_disjoint(np.array([1, 2, 3]), np.array([3, 4]))


def _run_smoke(config, workdir):
  results = attribute_experiment.run(config, str(workdir))
  with open(os.path.join(workdir, 'results.json')) as f:
    assert json.load(f) == results
  assert os.path.getsize(os.path.join(workdir, 'attribute.png')) > 1000
  return results


@pytest.fixture(scope='module')
def heart_run(data_dir, tmp_path_factory):
  """attribute_heart:smoke with an extension attack and an extension baseline registered."""
  attribute_attacks.register('constant', constant_guess, defaults={'index': 1})
  attribute_attacks.register('oracle', oracle_guess, baseline=True)
  try:
    config = attribute_heart.get_config('smoke')
    config.attack.names += ('constant', 'oracle')
    workdir = tmp_path_factory.mktemp('attribute_heart')
    yield config, str(workdir), _run_smoke(config, workdir)
  finally:
    del attribute_attacks.ATTACKS['constant'], attribute_attacks.ATTACKS['oracle']


def _attack_sets(config, task):
  return attribute_eval.attack_sets(
      task, jax.random.fold_in(keys_lib.named_keys(config.seed)['attack'], 0), config.attack)


def _members(rows, attack, variant):
  return [r for r in rows if r['targets'] == 'members' and r['attack'] == attack
          and r['variant'] == variant]


def test_experiment_smoke_heart_rows_and_extensions(heart_run):
  config, _, results = heart_run
  rows = results['rows']
  attacks = {(r['attack'], r['variant']) for r in rows}
  assert attacks == {('map', 'indicator'), ('map', 'confusion'), ('map', 'model_confusion'),
                     ('learned', 'black_box'), ('constant', '')}
  assert {r['targets'] for r in rows} == {'members', 'non-members'}
  assert len(rows) == 2 * len(config.defense.flip_probs) * len(attacks)
  task = data_lib.load_task(config.data)
  targets, member, aux = _attack_sets(config, task)
  sex = targets.column_index('sex')
  truth = targets.columns[sex].candidate_index(targets.features[:, sex])[member == 1]
  # Members: half the training records; the auxiliary set: every record not a target.
  assert results['metrics']['num_members'] == len(truth) == round(len(task.records_train) / 2)
  assert results['metrics']['num_aux'] == len(aux) == (
      len(task.records_train) + len(task.records_test) - len(member))
  for r in rows:
    assert r['num_aux'] == len(aux)
  for r in _members(rows, 'constant', ''):  # Known answers, computed from the data alone.
    assert r['attack_accuracy'] == pytest.approx(np.mean(truth == 1), abs=1e-6)
    assert r['attack_accuracy_std'] == 0.0
    assert r['oracle_accuracy'] == 1.0 and r['best_baseline_accuracy'] == 1.0
    assert r['prior_accuracy'] == pytest.approx(np.mean(truth == 1), abs=1e-6) or (
        r['prior_accuracy'] == pytest.approx(np.mean(truth == 0), abs=1e-6))
  confusion = _members(rows, 'map', 'confusion')
  assert confusion[0]['epsilon'] == 'inf' and confusion[-1]['epsilon'] == pytest.approx(0.0)
  assert confusion[0]['n'] == results['metrics']['num_members']
  # Randomized response at (k-1)/k leaves the confusion-weighted MAP guess at the prior's.
  assert confusion[-1]['attack_accuracy'] == pytest.approx(confusion[-1]['prior_accuracy'])
  # At p = 0 the released labels are the model's predictions: its test accuracy (and its
  # accuracy on the member targets: test_experiment_smoke_heart_map_equals_...).
  assert confusion[0]['release_test_accuracy'] == pytest.approx(
      results['metrics']['model_test_accuracy'], abs=1e-6)
  assert confusion[-1]['release_accuracy'] < confusion[0]['release_accuracy'] - 0.2


def test_experiment_smoke_heart_map_equals_a_direct_attack_on_the_target(heart_run):
  """MAP (indicator) at p = 0 from results.json == map_attack on the trained target,
  computed here from the checkpoint without the experiment's keys, grid or channel."""
  config, workdir, results = heart_run
  task = data_lib.load_task(config.data)
  trained = trainer.train_and_evaluate(config, os.path.join(workdir, 'target'), task=task)
  targets, member, aux = _attack_sets(config, task)
  members = targets.take(np.flatnonzero(member == 1))
  sex = members.column_index('sex')
  column = members.columns[sex]
  prior = attribute.attribute_prior(jnp.asarray(column.candidate_index(aux.features[:, sex])),
                                    len(column.candidates))
  view_params = (trained.params, jnp.asarray(task.scaler.mean), jnp.asarray(task.scaler.std))
  features = jnp.asarray(members.features)
  released = jnp.argmax(defenses.model_probs(view_params, features, apply_fn=trained.apply_fn), -1)
  (row,) = [r for r in _members(results['rows'], 'map', 'indicator') if r['flip_prob'] == 0.0]
  assert row['release_accuracy'] == pytest.approx(
      float(np.mean(np.asarray(released) == members.labels)), abs=1e-6)
  view_fn = functools.partial(defenses.candidate_view, apply_fn=trained.apply_fn,
                              release='label', decimals=1)
  guess = attribute.map_attack(view_fn, view_params, features, released, prior,
                               jnp.asarray(column.candidates), column=sex, variant='indicator')
  want = float(np.mean(np.asarray(guess) == column.candidate_index(members.features[:, sex])))
  assert row['attack_accuracy'] == pytest.approx(want, abs=1e-6)
  assert row['attack_accuracy_std'] == 0.0  # p = 0: every release draw is the same.


def test_experiment_smoke_cardio(shared_data, tmp_path):
  manual_dir = os.path.join(shared_data, 'cardio')
  if not os.path.exists(os.path.join(manual_dir, 'cardio_train.csv')):
    pytest.skip(f'{manual_dir}/cardio_train.csv is absent')
  config = attribute_cardio.get_config('smoke')
  # Its own data dir: the session's may hold cardio built from the small fixture file.
  config.data.update(manual_dir=manual_dir, data_dir=str(tmp_path / 'tfds'))
  results = _run_smoke(config, tmp_path)
  rows = results['rows']
  assert {r['attribute'] for r in rows} == {'gender', 'cholesterol'}
  cap = config.attack.max_records
  assert results['metrics']['num_members'] == cap  # max_records caps every target set.
  assert {r['n'] for r in rows if r['targets'] == 'members'} == {cap}
  p0 = [r for r in rows if r['flip_prob'] == 0.0]
  for r in p0:  # At p = 0 the held-out released labels are the model's test predictions.
    assert r['release_test_accuracy'] == pytest.approx(r['model_test_accuracy'], abs=1e-6)


def test_member_gaps_pair_each_attack_with_its_non_member_row():
  def row(targets, accuracy, n, attack='map', variant='confusion', flip=0.0):
    return {'attribute': 'sex', 'attack': attack, 'variant': variant, 'flip_prob': flip,
            'targets': targets, 'attack_accuracy': accuracy, 'n': n}
  rows = [row('members', 56 / 70, 70), row('non-members', 48 / 80, 80),
          row('members', 0.5, 70, flip=0.3), row('non-members', 0.75, 80, attack='learned')]
  attribute_experiment.with_member_gaps(rows)
  assert rows[0]['member_gap'] == pytest.approx(0.2)
  assert (rows[0]['member_gap_low'], rows[0]['member_gap_high']) == pytest.approx(
      (0.0524, 0.3339), abs=1e-4)  # Newcombe (1998), Table II (a)
  assert 'member_gap' not in rows[1]  # Non-member rows carry none...
  assert 'member_gap' not in rows[2]  # ...nor members rows without a matching non-member row.
