"""Attribute-inference baselines that match the attacker's knowledge: the target / auxiliary
split (attack.member_fraction, attack.num_aux), balanced accuracy and MCC against a numpy
reference, the imputation baseline as the reference of every advantage on planted records,
and Fredrikson et al.'s model confusion measured on the auxiliary records."""
import functools
import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from medinv.attribute import experiment as attribute_experiment
from medinv.core import sharding
from medinv.attribute import inference as attribute
from medinv.attribute import attacks as attribute_attacks
from medinv.attribute import evaluation as attribute_eval
from medinv.attribute import metrics as attribute_metrics
from medinv.data import records

# ---- balanced accuracy and MCC ----


def _reference(guess, truth, k):
  """(accuracy, balanced accuracy, MCC) by their definitions: mean recall over the values
  present; MCC as the covariance of the one-hot truth and guess over their variances."""
  recalls = [np.mean(guess[truth == v] == v) for v in range(k) if np.any(truth == v)]
  x, y = np.eye(k)[truth], np.eye(k)[guess]
  cov = lambda a, b: np.sum((a - a.mean(0)) * (b - b.mean(0)))
  denominator = np.sqrt(cov(x, x) * cov(y, y))
  return (np.mean(guess == truth), np.mean(recalls),
          cov(x, y) / denominator if denominator > 0 else 0.0)


@pytest.mark.parametrize('k,skew', [(2, 0.9), (3, 0.0), (4, 0.6)])
def test_scores_equal_their_definitions_per_group(k, skew):
  rng = np.random.default_rng(k)
  n = 400
  truth = np.where(rng.random(n) < skew, 0, rng.integers(0, k, n))  # skew: imbalanced
  guess = np.where(rng.random(n) < 0.6, truth, rng.integers(0, k, n))
  member = (rng.random(n) < 0.7).astype(np.float32)
  got = jax.device_get(jax.jit(attribute_metrics.group_scores, static_argnums=3)(
      jnp.asarray(guess), jnp.asarray(truth), jnp.asarray(member), k))
  for g, in_group in enumerate([member == 1, member == 0]):
    want = _reference(guess[in_group], truth[in_group], k)
    for metric, value in zip(attribute_metrics.METRICS, want):
      assert got[metric][g] == pytest.approx(value, abs=1e-5), (metric, g)


def test_scores_of_constant_perfect_and_empty_guesses():
  truth = jnp.asarray([0, 0, 0, 0, 1, 2])
  member = jnp.ones(6)
  constant = attribute_metrics.group_scores(jnp.zeros(6, jnp.int32), truth, member, 3)
  # The majority guess: accuracy 2/3, but balanced accuracy 1/3 and MCC 0.
  np.testing.assert_allclose(constant['accuracy'][0], 4 / 6, rtol=1e-6)
  np.testing.assert_allclose(constant['balanced_accuracy'][0], 1 / 3, rtol=1e-6)
  assert constant['mcc'][0] == 0.0
  perfect = attribute_metrics.group_scores(truth, truth, member, 3)
  for metric in attribute_metrics.METRICS:
    assert perfect[metric][0] == pytest.approx(1.0)
    assert np.isnan(perfect[metric][1])  # No non-members: undefined, not 0.
  # Only value 0 among the targets: balanced accuracy over the values present, MCC 0.
  one_value = attribute_metrics.group_scores(jnp.asarray([0, 1]), jnp.zeros(2, jnp.int32),
                                             jnp.ones(2), 2)
  assert one_value['balanced_accuracy'][0] == 0.5 and one_value['mcc'][0] == 0.0


# ---- the target / auxiliary split ----

def _task(num_train=40, num_heldout=20):
  """Records whose feature 0 is a global id: training records 0.., then held-out ones."""
  columns = (records.Column('id', 'id', False),)
  make = lambda ids: records.Records(np.asarray(ids, np.float32)[:, None],
                                     np.zeros(len(ids), np.int32), columns, ('a', 'b'))
  return types.SimpleNamespace(records_train=make(range(num_train)),
                               records_test=make(range(num_train, num_train + num_heldout)))


def _attack_config(**overrides):
  return ml_collections.ConfigDict({'member_fraction': 0.5, 'nonmember_fraction': 0.5,
                                    'num_aux': -1, 'max_records': 0, **overrides})


def _ids(recs):
  return np.asarray(recs.features[:, 0], int)


def test_auxiliary_set_is_every_record_that_is_not_a_target():
  task = _task()
  targets, member, aux = attribute_eval.attack_sets(task, jax.random.key(0), _attack_config())
  target_ids, aux_ids = _ids(targets), _ids(aux)
  assert member.sum() == 20 and (1 - member).sum() == 10
  assert np.all(target_ids[member == 1] < 40) and np.all(target_ids[member == 0] >= 40)
  np.testing.assert_array_equal(np.sort(np.concatenate([target_ids, aux_ids])), np.arange(60))
  # num_aux = n: n of those records, drawn by the key (the same key, the same draw).
  draw = lambda seed: _ids(attribute_eval.attack_sets(
      task, jax.random.key(seed), _attack_config(num_aux=12))[2])
  small = draw(0)
  assert len(small) == 12 and set(small) <= set(aux_ids)
  np.testing.assert_array_equal(small, draw(0))
  assert not np.array_equal(small, draw(1))
  # member_fraction 1.0: every training record in order (the paper's setting).
  targets, member, aux = attribute_eval.attack_sets(task, jax.random.key(0),
                                                    _attack_config(member_fraction=1.0))
  np.testing.assert_array_equal(_ids(targets)[member == 1], np.arange(40))
  assert len(aux) == 10 and np.all(_ids(aux) >= 40)
  capped = attribute_eval.attack_sets(task, jax.random.key(0), _attack_config(max_records=3))
  assert [len(capped[0]), len(capped[2])] == [6, 3]


def test_auxiliary_set_errors_name_the_field():
  task = _task()
  with pytest.raises(ValueError, match='attack.num_aux = 31 exceeds the 30 records that are '
                     'not targets; use -1'):
    attribute_eval.attack_sets(task, jax.random.key(0), _attack_config(num_aux=31))
  with pytest.raises(ValueError, match='no record is left for the auxiliary set'):
    attribute_eval.attack_sets(task, jax.random.key(0), _attack_config(
        member_fraction=1.0, nonmember_fraction=1.0))


@pytest.mark.parametrize('release, field, value', [
    ('label', 'noise_std', 0.1), ('probs', 'noise_std', 0.1), ('rounded', 'noise_std', 0.1),
    ('label', 'decimals', 2), ('noisy_probs', 'decimals', 3)])
def test_release_option_the_release_does_not_read_is_refused(release, field, value):
  from configs import attribute_heart
  config = attribute_heart.get_config(f'smoke,release={release}')
  attribute_eval.check_config(config)  # the config's own values are accepted
  config.defense[field] = value
  used_by = {'noise_std': 'noisy_probs', 'decimals': 'rounded'}[field]
  with pytest.raises(ValueError, match=f"^defense.{field}={value} applies to defense.release "
                     f"'{used_by}' only, and the release is '{release}'"):
    attribute_eval.check_config(config)
  config.defense.release = used_by
  attribute_eval.check_config(config)  # the release that reads it


# ---- the imputation baseline on planted records ----

def _planted_apply(variables, x):
  """The planted model: its label is the sensitive value (column 0, 0 or 10)."""
  del variables
  return 50.0 * jax.nn.one_hot(jnp.round(x[:, 0] / 10.0).astype(jnp.int32), 2)


def _planted_records(key, n, deterministic):
  """x1..x3 ~ N(0, 1); the sensitive x0 is 10 * [x1 + x2 > 0], or an independent coin."""
  others = jax.random.normal(key, (n, 3))
  coin = jax.random.bernoulli(jax.random.fold_in(key, 1), 0.5, (n,))
  truth = jnp.where(deterministic, others[:, 0] + others[:, 1] > 0, coin).astype(jnp.int32)
  return jnp.concatenate([10.0 * truth[:, None], others], -1), truth


def _planted_rows(deterministic, n=1_000):
  """medinv.attribute.experiment's grid program and rows on planted targets (half members) and
  auxiliary records, release p = 0, 2 draws."""
  targets, truth = _planted_records(jax.random.key(0), n, deterministic)
  aux, aux_truth = _planted_records(jax.random.key(1), n, deterministic)
  arrays = {'targets': targets, 'target_labels': truth, 'member': (jnp.arange(n) < n // 2) * 1.0,
            'aux': aux, 'aux_labels': aux_truth, 'train': targets, 'test': aux,
            'test_labels': aux_truth, 'column': jnp.int32(0),
            'candidates': jnp.asarray([0.0, 10.0]), 'target_truth': truth,
            'aux_truth': aux_truth, 'prior': attribute.attribute_prior(aux_truth, 2)}
  config = ml_collections.ConfigDict({
      'names': ('map', 'learned', 'prior', 'classifier'),
      'map': {'variants': ('indicator', 'confusion', 'model_confusion'), 'eps': 1e-3}})
  attacks, baselines = attribute_eval.split_attacks(config)
  baseline_program, point = attribute_experiment.grid_program(
      _planted_apply, release='label', decimals=1, noise_std=0.0, attacks=attacks,
      baselines=baselines)
  grid_points = {'flip_prob': np.zeros(1, np.float32),
                 'defense_keys': attribute_experiment.grid_keys(jax.random.key(2), 1, 2),
                 'attack_keys': attribute_experiment.grid_keys(jax.random.key(3), 1, 2)}
  view_params = (None, jnp.zeros(4), jnp.ones(4))
  grid_output = sharding.map_grid(point, grid_points, arrays, view_params)
  baseline = jax.device_get(baseline_program(jax.random.key(4), arrays))
  return attribute_experiment.attribute_rows({}, [0.0], 2,
                                             {'members': n // 2, 'non-members': n // 2},
                                             baseline, grid_output, ('prior', 'classifier'))


def test_imputation_reaches_a_deterministic_attribute_and_map_gains_nothing_over_it():
  """x0 is a function of x1, x2: imputation ~1.0, and MAP's advantage over it ~0, in every
  score (the acceptance test of the baselines)."""
  rows = _planted_rows(deterministic=True)
  assert len(rows) == 2 * 4  # target groups x (3 MAP variants + learned)
  for r in rows:
    assert r['baseline_classifier_accuracy'] == r['imputation_accuracy'] >= 0.97
    assert r['imputation_balanced_accuracy'] >= 0.97 and r['imputation_mcc'] >= 0.94
    assert 0.4 < r['prior_accuracy'] < 0.6 and r['prior_mcc'] == 0.0
    assert r['prior_balanced_accuracy'] == 0.5
    if r['attack'] == 'map':  # The model's label is x0: MAP is exact.
      assert r['attack_accuracy'] == r['balanced_accuracy'] == r['mcc'] == 1.0
    assert abs(r['imputation_advantage']) <= 0.03
    assert abs(r['balanced_accuracy_advantage']) <= 0.03 and abs(r['mcc_advantage']) <= 0.06
    assert r['imputation_advantage'] == pytest.approx(
        r['attack_accuracy'] - r['imputation_accuracy'])
    assert r['advantage'] == pytest.approx(r['attack_accuracy'] - r['best_baseline_accuracy'])


def test_imputation_is_at_chance_on_an_independent_attribute_and_map_gains_the_rest():
  """The control: x0 is a coin independent of x1..x3, so only the model reveals it."""
  rows = _planted_rows(deterministic=False)
  for r in rows:
    assert 0.4 < r['imputation_accuracy'] < 0.6 and abs(r['imputation_mcc']) < 0.15
    if r['attack'] == 'map':
      assert r['imputation_advantage'] > 0.4 and r['mcc_advantage'] > 0.85


# ---- Fredrikson et al.'s model confusion ----

def test_model_confusion_is_measured_on_the_auxiliary_records_not_the_channel():
  """P(prediction | true label) from the auxiliary records' labels and the model's own
  predictions, add-one smoothed; randomized response on the releases leaves it unchanged."""
  k, n = 2, 600
  aux, prediction = _planted_records(jax.random.key(5), n, deterministic=False)
  labels = jnp.where(jnp.arange(n) % 3 == 0, 1 - prediction, prediction)  # the model errs
  arrays = {'targets': aux[:10], 'aux': aux, 'aux_labels': labels, 'train': aux[:50],
            'aux_truth': prediction, 'prior': jnp.full((k,), 0.5),
            'candidates': jnp.asarray([0.0, 10.0]), 'column': jnp.int32(0)}
  observe = functools.partial(attribute_eval.observe, arrays=arrays,
                              view_params=(None, jnp.zeros(4), jnp.ones(4)),
                              apply_fn=_planted_apply, release='label', decimals=1,
                              noise_std=0.0)
  keys = attribute_eval.channel_keys(jax.random.key(6))
  got = np.asarray(observe(keys, 0.0).model_confusion)
  counts = np.ones((k, k))
  np.add.at(counts, (np.asarray(labels), np.asarray(prediction)), 1.0)
  np.testing.assert_allclose(got, counts / counts.sum(1, keepdims=True), rtol=1e-6)
  np.testing.assert_array_equal(got, np.asarray(observe(keys, 0.5).model_confusion))
  assert not np.allclose(np.asarray(observe(keys, 0.5).confusion),
                         np.asarray(observe(keys, 0.0).confusion))


def test_model_confusion_map_follows_a_strong_prior_where_the_model_errs_often():
  """A model right 60% of the time and a prior of 0.9 on value 0: P(released 1 | v = 1)
  = 0.6 * 0.1 < 0.4 * 0.9, so the model-confusion MAP guesses 0, the indicator MAP 1."""
  features = jnp.asarray([[10.0, 0.0, 0.0, 0.0]])
  view_fn = lambda params, raw: jax.nn.one_hot(jnp.round(raw[:, 0] / 10.0).astype(int), 2)
  guess = functools.partial(
      attribute.map_attack, view_fn, None, features, jnp.asarray([1]), jnp.asarray([0.9, 0.1]),
      jnp.asarray([0.0, 10.0]), column=0,
      model_confusion=jnp.asarray([[0.6, 0.4], [0.4, 0.6]]))
  assert int(guess(variant='model_confusion')[0]) == 0
  assert int(guess(variant='indicator')[0]) == 1
  assert attribute_attacks.get('map').variants(
      attribute_attacks.attack_cfg(ml_collections.ConfigDict(
          {'map': {'variants': ('model_confusion',)}}), 'map')) == ('model_confusion',)
