"""MI-FACE judged properly: Fredrikson et al.'s stopping rule, recovery of a planted class
pattern, the evaluation classifier that labels each class representative, and the columns a
model-inversion run writes for it."""
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import experiment_runs
from medinv.inversion import experiment as inversion_experiment
from medinv.inversion import evaluation
from medinv.inversion import reconstruct

SIZE = 12
RULES = reconstruct.STOP_RULES
PATTERN = jnp.asarray(np.where(np.random.default_rng(0).uniform(size=(SIZE, SIZE, 1)) < 0.5,
                               1.0, -1.0), jnp.float32)  # the planted class evidence, +-1


def planted(pattern):
  """A linear model whose class-1 evidence is <x - 0.5, pattern> (class 0: its negative)."""
  def logits_apply(step, images):
    del step
    evidence = jnp.sum((images - 0.5) * pattern, axis=(1, 2, 3)) * 8.0 / pattern.size
    return jnp.stack([-evidence, evidence], -1)
  return logits_apply


def scripted(costs):
  """A 'model' whose class-1 cost (1 - softmax prob.) at query `step` is costs[step], whatever
  the image (zero gradient: the image never moves)."""
  costs = jnp.asarray(costs, jnp.float32)

  def logits_apply(step, images):
    logit = jnp.log((1 - costs[step]) / costs[step]) + 0.0 * jnp.sum(images)
    return jnp.stack([jnp.zeros_like(logit), logit])[None]
  return logits_apply


def fredrikson(costs, *, max_steps, patience, threshold):
  """Algorithm 1 of Fredrikson et al. 2015 on a cost sequence, as a plain loop:
  (steps, rule, least cost, last cost)."""
  if costs[0] <= threshold:
    return 0, 'threshold', costs[0], costs[0]
  for i in range(1, max_steps + 1):
    if costs[i] <= threshold:
      rule = 'threshold'
    elif i >= patience and costs[i] >= max(costs[i - patience:i]):
      rule = 'patience'
    elif i == max_steps:
      rule = 'max_steps'
    else:
      continue
    return i, rule, min(costs[:i + 1]), costs[i]


def run_scripted(costs, **kwargs):
  out = reconstruct.mi_face(scripted(costs), jnp.array([1]), jnp.zeros((SIZE, SIZE, 1)),
                            learning_rate=0.1, **kwargs)
  return (int(out['steps'][0]), RULES[int(out['stopped_by'][0])], float(out['cost'][0]),
          float(out['last_cost'][0]))


def aux_images(n, seed=1):
  """The attacker's labelled images: class c shows the pattern (c = 1) or its negative, faintly,
  under strong noise; 3 of 4 images are class 0 (a skewed set, like BreastMNIST)."""
  rng = np.random.default_rng(seed)
  labels = (rng.uniform(size=n) < 0.25).astype(np.int32)
  sign = (2 * labels - 1).astype(np.float32)[:, None, None, None]
  images = np.clip(0.5 + 0.15 * sign * np.asarray(PATTERN)[None]
                   + 0.25 * rng.normal(size=(n, SIZE, SIZE, 1)), 0, 1)
  return jnp.asarray(images, jnp.float32), jnp.asarray(labels)


@pytest.fixture(scope='module')
def evaluator():
  model = evaluation.EvalCNN(2, width=8)
  images, labels = aux_images(160)
  train = jax.jit(lambda key: evaluation.train_evaluator(
      key, images, labels, model=model, steps=150, batch_size=32, learning_rate=3e-3))
  params, losses = train(jax.random.key(7))
  return model, params, losses, train


# ----------------------------------------------------------------------------- stopping rule

def test_each_stopping_condition_fires_in_its_constructed_case():
  # Threshold: the planted model's class confidence passes 1 - gamma within a few steps.
  kwargs = dict(max_steps=500, learning_rate=20.0, patience=10, threshold=0.01)
  out = reconstruct.mi_face(planted(PATTERN), jnp.array([0, 1]), jnp.zeros((SIZE, SIZE, 1)),
                            **kwargs)
  assert [RULES[r] for r in out['stopped_by']] == ['threshold', 'threshold']
  assert np.all(out['cost'] <= 0.01) and np.all(out['steps'] < 20)
  # ... and it is the first step under gamma: one step fewer ends at the limit, above gamma.
  steps = int(out['steps'][1])
  shorter = reconstruct.mi_face(planted(PATTERN), jnp.array([1]), jnp.zeros((SIZE, SIZE, 1)),
                                **dict(kwargs, max_steps=steps - 1))
  assert RULES[int(shorter['stopped_by'][0])] == 'max_steps'
  assert int(shorter['steps'][0]) == steps - 1 and float(shorter['cost'][0]) > 0.01
  # Patience: the cost at step 4 is no lower than the last beta = 2 costs (0.8, 0.7), although
  # it never beat the best (0.5) for 3 steps, which a best-so-far rule would have stopped on.
  costs = [0.9, 0.5, 0.8, 0.7, 0.85, 0.3, 0.2, 0.1, 0.05, 0.04, 0.03]
  assert run_scripted(costs, max_steps=10, patience=2, threshold=0.0) == pytest.approx(
      (4, 'patience', 0.5, 0.85))
  # Step limit: a cost that keeps falling and never reaches gamma runs all alpha steps.
  falling = np.linspace(0.9, 0.2, 12)
  assert run_scripted(falling, max_steps=10, patience=3, threshold=0.01) == pytest.approx(
      (10, 'max_steps', falling[10], falling[10]))
  # A start already under gamma takes no step.
  assert run_scripted([0.005, 0.5], max_steps=1, patience=1, threshold=0.01)[:2] == (
      0, 'threshold')


@pytest.mark.parametrize('seed', range(6))
def test_stopping_rule_equals_fredrikson_loop(seed):
  rng = np.random.default_rng(seed)
  costs = np.clip(np.cumsum(rng.normal(-0.02, 0.05, 40)) + 0.8, 0.02, 0.98).astype(np.float32)
  kwargs = dict(max_steps=int(rng.integers(5, 39)), patience=int(rng.integers(1, 6)),
                threshold=float(rng.choice([0.0, np.quantile(costs, 0.2)])))
  steps, rule, least, last = run_scripted(costs, **kwargs)
  model = scripted(costs)  # the costs as the attack computes them (float32 softmax)
  seen = [float(1 - jax.nn.softmax(model(i, jnp.zeros((1, SIZE, SIZE, 1)))[0])[1])
          for i in range(len(costs))]
  want = fredrikson(seen, **kwargs)
  assert (steps, rule) == want[:2]
  assert (least, last) == pytest.approx(want[2:], abs=1e-6)


def test_labels_vectorised_equal_one_at_a_time():
  kwargs = dict(max_steps=60, learning_rate=2.0, patience=4, threshold=0.001)
  x0 = jnp.full((SIZE, SIZE, 1), 0.5)
  out = reconstruct.mi_face(planted(PATTERN), jnp.array([0, 1]), x0, **kwargs)
  for label in (0, 1):
    alone = reconstruct.mi_face(planted(PATTERN), jnp.array([label]), x0, **kwargs)
    for key in out:
      np.testing.assert_allclose(alone[key][0], out[key][label], atol=1e-6, err_msg=key)


# ----------------------------------------------------------------------------- planted pattern

def test_planted_pattern_is_recovered_and_judged(evaluator):
  model, params, losses, _ = evaluator
  out = reconstruct.mi_face(planted(PATTERN), jnp.array([0, 1]), jnp.zeros((SIZE, SIZE, 1)),
                            max_steps=500, learning_rate=20.0, patience=10, threshold=0.01)
  flat = np.asarray(PATTERN).ravel()
  assert np.corrcoef(np.asarray(out['images'][1]).ravel(), flat)[0, 1] > 0.95
  assert np.corrcoef(np.asarray(out['images'][0]).ravel(), flat)[0, 1] < -0.95
  assert [RULES[r] for r in out['stopped_by']] == ['threshold', 'threshold']
  assert float(losses[-10:].mean()) < 0.5 * float(losses[:10].mean())
  judged = evaluation.judge(params, out['images'], jnp.array([0, 1]), model=model)
  assert evaluation.summary(judged)['eval_accuracy'] == 1.0
  assert evaluation.summary(judged)['eval_confidence'] > 0.9
  # The judge can say no: the same images meant as the other class, and the featureless
  # mean image meant as both classes.
  swapped = evaluation.judge(params, out['images'], jnp.array([1, 0]), model=model)
  assert evaluation.summary(swapped)['eval_accuracy'] == 0.0
  grey = evaluation.judge(params, jnp.full((2, SIZE, SIZE, 1), 0.5), jnp.array([0, 1]),
                          model=model)
  assert evaluation.summary(grey)['eval_accuracy'] == 0.5


def test_evaluator_is_keyed_and_balanced(evaluator):
  _, params, _, train = evaluator
  again, _ = train(jax.random.key(7))
  other, _ = train(jax.random.key(8))
  same = jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), params, again)
  assert all(jax.tree.leaves(same))
  assert not all(jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)),
                                              params, other)))
  _, labels = aux_images(160)
  weights = evaluation.balanced_weights(labels, 2)
  per_class = [float(jnp.sum(weights[labels == c])) for c in (0, 1)]
  assert per_class == pytest.approx([0.5, 0.5], abs=1e-6)
  # An absent class gets no weight and no division by zero.
  assert np.all(np.isfinite(evaluation.balanced_weights(jnp.array([0, 0, 2]), 3)))
  with pytest.raises(ValueError, match='positive'):
    evaluation.train_evaluator(jax.random.key(0), *aux_images(8), model=evaluation.EvalCNN(2),
                               steps=0, batch_size=4, learning_rate=1e-3)


def test_grid_stages_keep_dict_outputs(tmp_path):
  """An attack's dict output (MI-FACE's images and diagnostics) survives chunked stages."""
  strengths = np.array([0.0, 0.1, 0.2], np.float32)

  def call(s):
    return {'fixed': {'images': np.asarray(s)[:, None] * np.ones((1, 3)),
                      'steps': (np.asarray(s) * 10).astype(np.int32)[:, None]}}
  whole = inversion_experiment._over_grid(str(tmp_path / 'a'), 'toy', strengths, 0, call)
  chunked = inversion_experiment._over_grid(str(tmp_path / 'b'), 'toy', strengths, 1, call)
  for out in (whole, chunked):
    assert out['fixed']['images'].shape == (3, 3) and out['fixed']['steps'].shape == (3, 1)
    np.testing.assert_array_equal(out['fixed']['steps'][:, 0], [0, 1, 2])


# ----------------------------------------------------------------------------- end to end

@pytest.mark.e2e  # runs an experiment end to end: the e2e tier
def test_mi_face_rows_carry_the_evaluator_and_stopping_columns(tmp_path, data_dir):
  workdir = str(tmp_path / 'inversion')
  experiment_runs.model_inversion_smoke(workdir, data_dir,
                                       "--config.attack.names=('mi_face',)",
                                       '--config.attack.mi_face.eval_steps=40')
  with open(os.path.join(workdir, 'results.json')) as f:
    results = json.load(f)
  with open(os.path.join(workdir, 'config.json')) as f:
    config = json.load(f)['attack']['mi_face']
  assert 0.0 <= results['metrics']['evaluator_train_accuracy'] <= 1.0
  face = [r for r in results['rows'] if r['attack'] == 'mi_face']
  assert face
  for row in face:
    assert row['eval_accuracy'] in (0.0, 0.5, 1.0)  # two classes
    assert 0.0 <= row['eval_confidence'] <= 1.0
    # A class stopped by the step limit took max_steps steps, by patience at least beta.
    floors = {'max_steps': config['max_steps'], 'patience': config['patience'], 'threshold': 0}
    floor = np.mean([floors[rule] for rule in row['stopped_by'].split(',')])
    assert floor <= row['steps'] <= config['max_steps']
    assert math.isfinite(row['final_cost']) and row['final_cost'] >= 0.0
    assert set(row['stopped_by'].split(',')) <= set(RULES)
    if row['defense'] == 'model_perturbation':  # class_conf: 1 - a probability
      assert 0.0 <= row['final_cost'] <= 1.0
  baseline = next(r for r in results['rows']
                  if r['attack'] == 'mean_aux_image' and r['reference'] == 'class_mean')
  assert 'eval_accuracy' in baseline and 'steps' not in baseline
  target_rows = [r for r in results['rows'] if r['reference'] == 'target']
  assert all('eval_accuracy' not in r for r in target_rows)
