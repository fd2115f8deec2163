"""Attribute inference and label perturbation: statistics, references, planted models, e2e."""
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from configs import aia_cardio
from configs import aia_heart
from medinv import aia
from medinv import data as data_lib
from medinv import defenses
from medinv.attacks import attribute
from medinv.data import heart_disease
from medinv.data import records

ALPHA = 1e-3  # Significance of the statistical tests (fixed keys, so they are deterministic).


@pytest.mark.parametrize('flip_prob,num_classes', [(0.1, 2), (0.3, 3), (0.5, 4)])
def test_randomized_response_flip_rate_and_uniform_replacement(flip_prob, num_classes):
  n = 20_000
  labels = jax.random.randint(jax.random.key(1), (n,), 0, num_classes)
  released = np.asarray(defenses.randomized_response(jax.random.key(2), labels, flip_prob,
                                                     num_classes))
  flipped = released != np.asarray(labels)
  assert stats.binomtest(int(flipped.sum()), n, flip_prob).pvalue > ALPHA
  if num_classes > 2:  # A flip lands uniformly on the k-1 other classes.
    shift = (released - np.asarray(labels))[flipped] % num_classes
    counts = np.bincount(shift, minlength=num_classes)[1:]
    assert stats.chisquare(counts).pvalue > ALPHA


@pytest.mark.parametrize('num_classes', [2, 3, 5])
def test_randomized_response_never_returns_the_original_on_a_flip(num_classes):
  labels = jnp.arange(10_000) % num_classes
  released = defenses.randomized_response(jax.random.key(0), labels, 1.0, num_classes)
  assert not np.any(np.asarray(released) == np.asarray(labels))
  assert set(np.unique(released)) == set(range(num_classes))
  unchanged = defenses.randomized_response(jax.random.key(0), labels, 0.0, num_classes)
  np.testing.assert_array_equal(unchanged, labels)


def test_randomized_response_keys_differ_and_repeat():
  labels = jnp.zeros(1_000, jnp.int32)
  a = defenses.randomized_response(jax.random.key(0), labels, 0.5, 3)
  b = defenses.randomized_response(jax.random.key(1), labels, 0.5, 3)
  again = defenses.randomized_response(jax.random.key(0), labels, 0.5, 3)
  assert np.mean(np.asarray(a) != np.asarray(b)) > 0.3
  np.testing.assert_array_equal(a, again)


@pytest.mark.parametrize('flip_prob,num_classes', [(0.1, 2), (0.25, 2), (0.2, 3), (0.6, 4)])
def test_epsilon_is_the_likelihood_ratio_bound(flip_prob, num_classes):
  keep, other = 1 - flip_prob, flip_prob / (num_classes - 1)
  expected = math.log(keep / other)  # max over outputs of P(out | a) / P(out | b)
  assert defenses.randomized_response_epsilon(flip_prob, num_classes) == pytest.approx(expected)
  assert defenses.randomized_response_epsilon(0.2, 2) == pytest.approx(math.log(4.0))
  assert defenses.randomized_response_epsilon(0.0, 2) == math.inf
  assert defenses.randomized_response_epsilon(2 / 3, 3) == pytest.approx(0.0, abs=1e-12)


def test_release_channel_swaps_the_vector_with_the_label():
  probs = jnp.asarray([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
  vector, label = defenses.release_channel(jax.random.key(0), probs, 1.0, release='probs',
                                      decimals=1, noise_std=0.0)
  assert np.all(np.asarray(label) != np.array([0, 2]))
  np.testing.assert_array_equal(np.argmax(vector, -1), label)
  np.testing.assert_allclose(np.sort(vector, -1), np.sort(probs, -1))


def _random_view(num_classes):
  """A small random MLP view (softmax probabilities) and its params."""
  w1, w2 = jax.random.normal(jax.random.key(3), (4, 8)), jax.random.normal(jax.random.key(4),
                                                                            (8, num_classes))
  def view_fn(params, raw):
    return jax.nn.softmax(jnp.tanh(raw @ params[0]) @ params[1], -1)
  return view_fn, (w1, w2)


@pytest.mark.parametrize('variant', ['indicator', 'confusion', 'probability'])
def test_map_attack_equals_a_python_loop_reference(variant):
  num_classes, column, eps = 3, 1, 1e-3
  view_fn, params = _random_view(num_classes)
  features = np.asarray(jax.random.normal(jax.random.key(5), (12, 4)))
  candidates = np.asarray([-1.0, 0.0, 0.5, 2.0], np.float32)
  prior = np.asarray([0.1, 0.4, 0.3, 0.2], np.float32)
  released = np.asarray(jax.random.randint(jax.random.key(6), (12,), 0, num_classes))
  confusion = np.asarray([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.05, 0.15, 0.8]], np.float32)
  got = attribute.map_attack(view_fn, params, jnp.asarray(features), jnp.asarray(released),
                             jnp.asarray(prior), jnp.asarray(candidates), column=column,
                             variant=variant, confusion=jnp.asarray(confusion), eps=eps)
  expected = []
  for i in range(len(features)):
    scores = []
    for v, value in enumerate(candidates):
      query = features[i].copy()
      query[column] = value
      view = np.asarray(view_fn(params, jnp.asarray(query[None])))[0]
      predicted = int(np.argmax(view))
      likelihood = {'indicator': 1.0 if predicted == released[i] else eps,
                    'confusion': confusion[predicted, released[i]],
                    'probability': max(view[released[i]], eps)}[variant]
      scores.append(prior[v] * likelihood)
    expected.append(int(np.argmax(scores)))
  np.testing.assert_array_equal(got, expected)


def _planted(num_candidates=3, n=3_000):
  """Records whose column 0 is the sensitive attribute; the model outputs it as its label."""
  truth = jax.random.randint(jax.random.key(7), (n,), 0, num_candidates)
  noise = jax.random.normal(jax.random.key(8), (n, 3))
  candidates = jnp.arange(num_candidates, dtype=jnp.float32) * 10.0
  features = noise.at[:, 0].set(candidates[truth])

  def view_fn(params, raw):  # One-hot of the sensitive value: a deterministic planted model.
    del params
    return jax.nn.one_hot(jnp.round(raw[:, 0] / 10.0).astype(jnp.int32), num_candidates)
  return features, truth, candidates, view_fn


@pytest.mark.parametrize('variant', ['indicator', 'confusion'])
def test_map_attack_on_a_planted_model_exact_at_zero_and_chance_at_max_flip(variant):
  k = 3
  features, truth, candidates, view_fn = _planted(k)
  prior = jnp.full((k,), 1.0 / k)
  for flip_prob, check in [(0.0, 'exact'), ((k - 1) / k, 'chance')]:
    channel_key, confusion_key = jax.random.split(jax.random.key(9))
    _, released = defenses.release_channel(channel_key, view_fn(None, features), flip_prob,
                                      release='label', decimals=1, noise_std=0.0)
    _, measured = defenses.release_channel(confusion_key, view_fn(None, features), flip_prob,
                                      release='label', decimals=1, noise_std=0.0)
    confusion = attribute.confusion_matrix(truth, measured, k)
    guess = attribute.map_attack(view_fn, None, features, released, prior, candidates, column=0,
                                 variant=variant, confusion=confusion)
    correct = np.asarray(guess == truth)
    if check == 'exact':
      assert correct.all()
    else:
      assert stats.binomtest(int(correct.sum()), len(correct), 1 / k).pvalue > ALPHA


def test_learned_attack_reads_the_release_and_baselines_cannot():
  k = 3
  features, truth, _, view_fn = _planted(k, n=1_000)
  known = attribute.known_attributes(features, 0)
  assert not np.any(np.asarray(known[:, 0]))
  aux, targets = slice(0, 500), slice(500, None)
  released = view_fn(None, features)
  guess = attribute.learned_attack(jax.random.key(0), known[aux], released[aux], truth[aux],
                                   known[targets], released[targets], k, steps=100)
  assert np.mean(np.asarray(guess == truth[targets])) > 0.95
  prior = attribute.attribute_prior(truth[aux], k)
  baseline = attribute.baseline_attack(jax.random.key(1), known[aux], truth[aux],
                                       known[targets], prior, steps=100)
  assert np.all(np.asarray(baseline['prior']) == int(np.argmax(prior)))
  assert np.mean(np.asarray(baseline['classifier'] == truth[targets])) < 0.5


def _check(config, match):
  with pytest.raises(ValueError, match=match):
    aia.validate(config)


def test_bad_configs_fail_before_compute(monkeypatch):
  config = aia_heart.get_config('smoke')
  aia.validate(config)
  with config.unlocked():
    config.defense.flip_probs = (0.0, 0.6)
  _check(config, r'flip_prob 0.6 is outside \[0, \(k-1\)/k\]')
  config = aia_heart.get_config('smoke')
  config.attack.sensitive = ('sex', 'gender')
  _check(config, "'gender' is not in the heart_disease schema; valid attributes: age, sex")
  config = aia_heart.get_config('smoke')
  config.attack.update(nonmember_fraction=0.6, aux_fraction=0.5)
  _check(config, 'auxiliary set overlaps the targets')
  config = aia_heart.get_config('smoke,release=noisy_probs')
  config.defense.noise_std = -0.1
  _check(config, 'noise_std must be >= 0')
  config = aia_heart.get_config('smoke')
  config.attack.map_variants = ('probability',)
  _check(config, "'probability' needs a probability release")
  unbinned = records.Column('age', 'age', False)
  monkeypatch.setattr(heart_disease, 'COLUMNS', (unbinned,) + heart_disease.COLUMNS[1:])
  config = aia_heart.get_config('smoke')
  config.attack.sensitive = ('age',)
  _check(config, "'age' is continuous and has no bins")
  with pytest.raises(ValueError, match='overlaps the targets in 1 records'):
    aia.check_disjoint(np.array([1, 2, 3]), np.array([3, 4]))


def _run_smoke(config, workdir):
  results = aia.run(config, str(workdir))
  with open(os.path.join(workdir, 'results.json')) as f:
    assert json.load(f) == results
  assert os.path.getsize(os.path.join(workdir, 'aia.png')) > 1000
  return results


def test_experiment_smoke_heart(data_dir, tmp_path):
  config = aia_heart.get_config('smoke')
  results = _run_smoke(config, tmp_path)
  rows = results['rows']
  attacks = {(r['attack'], r['variant']) for r in rows}
  assert attacks == {('map', 'indicator'), ('map', 'confusion'), ('learned', 'black_box')}
  assert {r['targets'] for r in rows} == {'members', 'non-members'}
  assert len(rows) == 2 * len(config.defense.flip_probs) * len(attacks)
  for r in rows:
    for name in ('attack_accuracy', 'best_baseline_accuracy', 'release_accuracy'):
      assert 0.0 <= r[name] <= 1.0
    assert r['advantage'] == pytest.approx(r['attack_accuracy'] - r['best_baseline_accuracy'])
  members = [r for r in rows if r['targets'] == 'members' and r['variant'] == 'confusion']
  assert members[0]['epsilon'] == 'inf' and members[-1]['epsilon'] == pytest.approx(0.0)
  assert members[0]['n'] == results['metrics']['num_members']
  # Randomized response at (k-1)/k leaves the confusion-weighted MAP guess at the prior's.
  assert members[-1]['attack_accuracy'] == pytest.approx(members[-1]['prior_accuracy'])
  assert members[0]['release_accuracy'] > members[-1]['release_accuracy']


def test_experiment_smoke_cardio(data_dir, shared_data, tmp_path):
  if 'cardio' not in data_lib.RECORD_DATASETS:
    pytest.skip('the cardio dataset builder is not registered in medinv.data yet')
  manual_dir = os.path.join(shared_data, 'cardio')
  if not os.path.exists(os.path.join(manual_dir, 'cardio_train.csv')):
    pytest.skip(f'{manual_dir}/cardio_train.csv is absent')
  config = aia_cardio.get_config('smoke')
  config.data.manual_dir = manual_dir
  rows = _run_smoke(config, tmp_path)['rows']
  assert {r['attribute'] for r in rows} == {'gender', 'cholesterol'}
