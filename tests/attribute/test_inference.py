"""Attribute inference and label perturbation: statistics, references, planted models, the
shared evaluation and the attack registry (the experiment: tests/attribute/test_experiment.py)."""
import functools
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy import stats

from extensions import constant_guess
from extensions import oracle_guess

from medinv import defenses
from medinv.attribute import inference as attribute
from medinv.attribute import attacks as attribute_attacks
from medinv.attribute import evaluation as attribute_eval

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


@pytest.mark.parametrize('variant', ['indicator', 'confusion', 'model_confusion',
                                     'probability'])
def test_map_attack_equals_a_python_loop_reference(variant):
  num_classes, column, eps = 3, 1, 1e-3
  view_fn, params = _random_view(num_classes)
  features = np.asarray(jax.random.normal(jax.random.key(5), (12, 4)))
  candidates = np.asarray([-1.0, 0.0, 0.5, 2.0], np.float32)
  prior = np.asarray([0.1, 0.4, 0.3, 0.2], np.float32)
  released = np.asarray(jax.random.randint(jax.random.key(6), (12,), 0, num_classes))
  confusion = np.asarray([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.05, 0.15, 0.8]], np.float32)
  # Far from symmetric: reading it transposed changes the guesses.
  model_confusion = np.asarray([[0.1, 0.85, 0.05], [0.05, 0.05, 0.9], [0.9, 0.05, 0.05]],
                               np.float32)
  got = attribute.map_attack(view_fn, params, jnp.asarray(features), jnp.asarray(released),
                             jnp.asarray(prior), jnp.asarray(candidates), column=column,
                             variant=variant, confusion=jnp.asarray(confusion),
                             model_confusion=jnp.asarray(model_confusion), eps=eps)
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
                    # Fredrikson et al.: pi(label the attacker holds, candidate's prediction).
                    'model_confusion': model_confusion[released[i], predicted],
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


def _planted_apply(variables, x, *, num_classes):
  """The planted model as a deployed apply_fn: (near) certain of the sensitive value."""
  del variables
  return 50.0 * jax.nn.one_hot(jnp.round(x[:, 0] / 10.0).astype(jnp.int32), num_classes)


def _planted_arrays(k, n=3_000, num_aux=500):
  """`attribute_eval` arrays of the planted records: half members, half non-members; the
  model's label is the sensitive value, so the release is the attribute itself."""
  features, truth, candidates, _ = _planted(k, n)
  member = (jnp.arange(n) < n // 2).astype(jnp.float32)
  arrays = {'targets': features, 'target_labels': truth, 'member': member,
            'aux': features[:num_aux], 'aux_labels': truth[:num_aux], 'train': features,
            'test': features,
            'test_labels': truth, 'column': jnp.int32(0), 'candidates': candidates,
            'prior': jnp.full((k,), 1.0 / k), 'target_truth': truth,
            'aux_truth': truth[:num_aux]}
  view_params = (None, jnp.zeros(3), jnp.ones(3))
  return arrays, view_params, functools.partial(_planted_apply, num_classes=k)


def _evaluate(arrays, view_params, apply_fn, runs, flip_prob, seed=0):
  return jax.device_get(attribute_eval.evaluate(
      jax.random.key(seed), jax.random.key(seed + 1), flip_prob, arrays, view_params,
      apply_fn=apply_fn, release='label', decimals=1, noise_std=0.0, attacks=runs))


_MAP_CONFIG = ml_collections.ConfigDict(
    {'names': ('map',), 'map': {'variants': ('indicator', 'confusion'), 'eps': 1e-3}})


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


def test_shared_evaluation_on_a_planted_model_is_exact_then_tracks_the_flips():
  """The model's label is the sensitive value: at p = 0 every MAP guess is right; at p > 0
  (uniform prior) MAP guesses the released label, so it is right exactly when that label was
  not flipped, i.e. MAP accuracy == released-label accuracy ~ Binomial(n, 1 - p)."""
  k = 3
  arrays, view_params, apply_fn = _planted_arrays(k)
  runs = attribute_attacks.configure(_MAP_CONFIG, ('map',))
  exact = _evaluate(arrays, view_params, apply_fn, runs, 0.0)
  for accuracy in list(exact['attacks'].values()) + [exact['release']]:
    np.testing.assert_array_equal(accuracy, [1.0, 1.0])
  assert exact['release_test'] == 1.0
  flip_prob, n = 0.3, arrays['targets'].shape[0] // 2
  out = _evaluate(arrays, view_params, apply_fn, runs, flip_prob)
  for variant in ('indicator', 'confusion'):
    np.testing.assert_array_equal(out['attacks'][('map', variant)], out['release'])
  for group in range(2):
    correct = int(round(out['release'][group] * n))
    assert stats.binomtest(correct, n, 1 - flip_prob).pvalue > ALPHA


def test_confusion_is_measured_on_the_training_records_through_the_channel():
  """Training records all predict class 0, auxiliary records all class 1: the confusion's
  row 1 holds only its smoothing, row 0 the flip rate (an auxiliary-record measurement, the
  old population's, would give the opposite)."""
  k, n, flip_prob = 2, 4_000, 0.4
  arrays, view_params, apply_fn = _planted_arrays(k)
  train_records = jnp.zeros((n, 3))
  arrays.update(train=train_records, aux=train_records.at[:, 0].set(10.0),
                aux_truth=jnp.ones(n, jnp.int32), aux_labels=jnp.ones(n, jnp.int32))
  obs = attribute_eval.observe(
      attribute_eval.channel_keys(jax.random.key(3)), flip_prob, arrays, view_params,
      apply_fn=apply_fn, release='label', decimals=1, noise_std=0.0)
  confusion = np.asarray(obs.confusion)
  np.testing.assert_allclose(confusion[1], [0.5, 0.5])
  flips = int(round(confusion[0, 1] * (n + 2))) - 1  # add-one smoothing on each cell
  assert stats.binomtest(flips, n, flip_prob).pvalue > ALPHA


def test_learned_attack_reads_the_release_and_baselines_cannot():
  k = 3
  features, truth, candidates, view_fn = _planted(k, n=1_000)
  known = attribute.known_attributes(features, 0)
  assert not np.any(np.asarray(known[:, 0]))
  aux, targets = slice(0, 500), slice(500, None)
  released = view_fn(None, features)
  prior = attribute.attribute_prior(truth[aux], k)
  obs = attribute_attacks.Observation(
      targets=features[targets], aux=features[aux], aux_truth=truth[aux], prior=prior,
      candidates=candidates, column=0, target_vector=released[targets],
      aux_vector=released[aux])
  cfg = ml_collections.ConfigDict(dict(attribute_attacks.CLASSIFIER_DEFAULTS, steps=100))
  learned = attribute_attacks.get('learned').guess(jax.random.key(0), obs, cfg, 'black_box')
  assert np.mean(np.asarray(learned == truth[targets])) > 0.95
  baseline_obs = obs.replace(target_vector=None, aux_vector=None)
  prior_guess = attribute_attacks.get('prior').guess(jax.random.key(1), baseline_obs, cfg, '')
  assert np.all(np.asarray(prior_guess) == int(np.argmax(prior)))
  classifier = attribute_attacks.get('classifier').guess(jax.random.key(1), baseline_obs, cfg, '')
  # The known attributes are noise: the classifier is near chance (1/3), far below learned.
  assert stats.binomtest(int(np.sum(np.asarray(classifier == truth[targets]))), 500,
                         1 / k).pvalue > ALPHA


# ---- The registry: attacks and likelihoods added from outside medinv ----

@pytest.fixture
def extensions():
  attribute_attacks.register('constant', constant_guess, defaults={'index': 1})
  attribute_attacks.register('oracle', oracle_guess, baseline=True)
  yield
  del attribute_attacks.ATTACKS['constant'], attribute_attacks.ATTACKS['oracle']


def test_registered_attack_likelihood_and_baseline_run_with_known_answers(extensions,
                                                                          monkeypatch):
  k = 2
  # A likelihood that prefers candidates whose predicted label is NOT the released one.
  monkeypatch.setitem(attribute.LIKELIHOODS, 'mismatch', lambda views, released, ctx: jnp.where(
      jnp.argmax(views, -1) == released[:, None], jnp.log(ctx['eps']), 0.0))
  arrays, view_params, apply_fn = _planted_arrays(k)
  config = _MAP_CONFIG.copy_and_resolve_references()
  config.map.variants = ('indicator', 'mismatch')
  config.names = ('map', 'constant', 'prior', 'oracle')
  attacks, baselines = attribute_eval.split_attacks(config)
  assert [(r.name, r.variant) for r in attacks] == [('map', 'indicator'), ('map', 'mismatch'),
                                                    ('constant', '')]
  assert attacks[-1].cfg.index == 1  # The registered default.
  out = _evaluate(arrays, view_params, apply_fn, attacks, 0.0)
  truth, member = np.asarray(arrays['target_truth']), np.asarray(arrays['member']) == 1
  np.testing.assert_array_equal(out['attacks'][('map', 'indicator')], [1.0, 1.0])
  np.testing.assert_array_equal(out['attacks'][('map', 'mismatch')], [0.0, 0.0])
  np.testing.assert_allclose(out['attacks'][('constant', '')],
                             [np.mean(truth[member] == 1), np.mean(truth[~member] == 1)])
  baseline = jax.device_get(attribute_eval.evaluate_baselines(jax.random.key(0), arrays,
                                                              attacks=baselines))
  np.testing.assert_array_equal(baseline['oracle'], [1.0, 1.0])
  columns = attribute_eval.baseline_columns(baseline, 0, 0.25, ('prior', 'oracle'))
  assert list(columns) == ['prior_accuracy', 'oracle_accuracy', 'best_baseline_accuracy',
                           'advantage']
  assert columns['best_baseline_accuracy'] == 1.0 and columns['advantage'] == -0.75
  with pytest.raises(ValueError, match="'constant' is already registered"):
    attribute_attacks.register('constant', constant_guess)
