"""The membership-inference experiment: the shadow design's balance, attacks with known answers
(a memorising target and a target that ignores its training data), the heart smoke run with its
defenses, and bad input."""
import math
import os

import jax
import numpy as np
import pytest

from configs import membership_heart
from medinv import data as data_lib
from medinv import defenses
from medinv.core import errors
from medinv.training import experiment
from medinv.membership import experiment as membership_experiment
from medinv.membership import subgroups as membership_subgroups
from medinv.membership import validate as membership_validate
from medinv.training import population
from medinv.study import runners
from medinv.core import sharding
from medinv.training import trainer
from medinv.membership import attacks


def test_every_record_is_in_for_half_the_shadows():
  for k in (16, 17):
    shadows = membership_experiment.paired_halves(jax.random.key(1), k, 242)
    assert shadows.shape == (k, 242)
    np.testing.assert_array_equal(shadows.sum(axis=1), 121)  # every shadow: half the records
    fraction = shadows.mean(axis=0)
    assert np.all((fraction >= 0.4) & (fraction <= 0.6)), (fraction.min(), fraction.max())
  np.testing.assert_array_equal(membership_experiment.paired_halves(jax.random.key(1), 16, 242)[:2],
                                shadows[:2])  # keyed
  assert not np.array_equal(membership_experiment.paired_halves(jax.random.key(2), 16, 242),
                            shadows[:16])
  assert membership_experiment.member_index(shadows[:3]).shape == (3, 121)


def _synthetic_task(key, n, num_features=13):
  """Gaussian features and labels that no feature predicts (a model can only memorise them)."""
  x_key, y_key = jax.random.split(key)
  x = np.asarray(jax.random.normal(x_key, (n + 20, num_features)))
  y = np.asarray(jax.random.bernoulli(y_key, 0.5, (n + 20,))).astype(np.int32)
  return data_lib.Task('synthetic', x[:n], y[:n], x[n:], y[n:], ('no', 'yes'))


def _config(num_shadows, **train):
  config = membership_heart.get_config('smoke')
  config.membership.num_shadows = num_shadows
  config.train.update(train)
  config.evaluation.bootstrap_samples = 20
  config.evaluation.subgroups = ()  # Subgroups: the heart smoke run (sex).
  config.defense.names = ()  # Defenses: the heart smoke run.
  return config


def _attack(config, task, workdir):
  """The experiment's target, grid and rows steps on an in-memory task."""
  membership_validate.validate(config)
  ctx = experiment.Context(config=config, workdir=str(workdir), task=task)
  ctx.target = membership_experiment.fit_target(config, task, str(workdir))
  outputs = membership_experiment.grid(ctx)
  metrics_dict, rows = membership_experiment.rows(ctx, outputs)
  return ctx, outputs, metrics_dict, {r['attack']: r for r in rows if r['subgroup'] == 'all'
                                      and r['defense'] == 'none'}


def test_memorising_target_is_detected_and_population_equals_one_by_one(tmp_path):
  """64 records with random labels, each model trained to ~zero loss on its 32; and shadow 1
  of the vmapped population equals train.train_and_evaluate on its records alone.

  256 features keep the records nearly orthogonal, so a model's confidence on a record it
  did not see stays near chance (with 13 features it extrapolates confidently, right for
  half of them, and the AUCs fall to 0.75-0.9)."""
  task = _synthetic_task(jax.random.key(5), 64, num_features=256)
  config = _config(8, num_epochs=60, batch_size=32, learning_rate=1e-3,
                   checkpoint_every_epochs=60, schedule='constant', weight_decay=0.0)
  ctx, outputs, summary, rows = _attack(config, task, tmp_path / 'run')
  assert summary['target_train_accuracy'] == 1.0
  labels = outputs['labels']
  assert np.max(outputs['outputs']['loss'][0][labels]) < 0.01  # memorised
  for name, row in rows.items():
    if attacks.get(name).reads == 'phi':
      # rmia_offline divides by the OUT shadows' confidence, noise on these records (0.92).
      assert row['auc'] > (0.9 if name == 'rmia_offline' else 0.95), (name, row['auc'])
  # Labels alone: every member is answered right, a non-member with probability q, so the
  # label_only AUC is P(member right, non-member wrong) + ties / 2 = 1 - q / 2.
  q = np.mean(outputs['outputs']['correct'][0][~labels, 0])
  assert summary['target_nonmember_accuracy'] == pytest.approx(q) and q < 0.9
  assert rows['label_only']['auc'] == pytest.approx(1 - q / 2, abs=1e-6)
  assert rows['label_lira']['auc'] > 0.6
  index = ctx.target['points'][population.TRAIN_INDEX][1]
  single = config.copy_and_resolve_references()
  single.seed = int(ctx.target['points'][population.SEED][1])
  alone = data_lib.Task('synthetic', task.x_train[index], task.y_train[index], task.x_test,
                        task.y_test, task.class_names)
  trained = trainer.train_and_evaluate(single, str(tmp_path / 'alone'), task=alone)
  shadow = jax.tree.map(lambda leaf: np.asarray(leaf)[1],
                        sharding.gather(ctx.target['state'].params))
  for got, want in zip(jax.tree.leaves(shadow), jax.tree.leaves(trained.params)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_target_independent_of_its_data_gives_chance_auc(tmp_path):
  """At learning rate 1e-9 no model moves from its initialisation (Adam steps ~1e-9 vanish in
  float32), so scores are independent of membership. Membership is a uniformly random half,
  so AUC has the Mann-Whitney null: mean 1/2, variance (n0 + n1 + 1) / (12 n0 n1). Every
  attack inside 4 standard deviations (each fails with probability 6e-5)."""
  task = _synthetic_task(jax.random.key(6), 1000)
  config = _config(4, num_epochs=1, batch_size=100, learning_rate=1e-9)
  _, _, summary, rows = _attack(config, task, tmp_path)
  n0 = n1 = 500
  bound = 4 * math.sqrt((n0 + n1 + 1) / (12 * n0 * n1))  # 0.073
  assert list(rows) == list(membership_heart.ATTACKS)
  for name, row in rows.items():
    assert abs(row['auc'] - 0.5) < bound, (name, row['auc'], bound)
  assert summary['num_members'] == summary['num_nonmembers'] == 500


@pytest.mark.e2e  # runs an experiment end to end: the e2e tier
def test_membership_heart_smoke_end_to_end(data_dir, tmp_path):
  config = membership_heart.get_config('smoke')
  config.data.data_dir = data_dir
  results = runners.get('membership_inference').run(config, str(tmp_path))
  assert results['experiment'] == 'membership_inference'
  overall = [r for r in results['rows'] if r['subgroup'] == 'all' and r['defense'] == 'none']
  assert [r['attack'] for r in overall] == list(membership_heart.ATTACKS)
  _check_defended_rows(config, results)
  assert (tmp_path / 'defenses.png').stat().st_size > 0
  row = overall[0]
  assert row['num_members'] == row['num_nonmembers'] == 121
  by_sex = [r for r in results['rows'] if r['subgroup'] == 'sex' and r['attack'] == row['attack']]
  assert sorted(r['subgroup_value'] for r in by_sex) == ['0', '1']
  assert sum(r['num_members'] for r in by_sex) == 121
  assert sum(r['num_nonmembers'] for r in by_sex) == 121
  assert not row['fpr_0.01_below_one_record'] and row['fpr_0.001_below_one_record']
  assert row['auc_low'] <= row['auc'] <= row['auc_high']
  assert 0.5 < results['metrics']['target_test_accuracy'] <= 1.0
  with open(tmp_path / 'records.csv') as f:
    lines = f.read().splitlines()
  assert len(lines) == 243 and 'score_lira_online' in lines[0] and 'sex' in lines[0]
  assert (tmp_path / 'roc.png').stat().st_size > 0
  assert os.path.isdir(tmp_path / 'checkpoints' / 'membership' / '0')
  again = runners.get('membership_inference').run(config, str(tmp_path))  # resumes, same numbers
  assert again['rows'] == results['rows']
  config.membership.num_shadows = 6
  with pytest.raises(errors.WorkdirError, match='membership.num_shadows was 4, now 6'):
    runners.get('membership_inference').run(config, str(tmp_path))


def _check_defended_rows(config, results):
  """Every deployment of config.defense has rows: the label-only release only the attacks
  that read labels, model perturbation every attack; the released labels' test accuracy is
  within 4 standard deviations of what randomized response makes of the model's (each of
  the test records answered UTILITY_DRAWS times, each answer flipped with probability p)."""
  rows = [r for r in results['rows'] if r['subgroup'] == 'all']
  clean = results['metrics']['target_test_accuracy']
  label_attacks = [n for n in config.attack.names if attacks.get(n).reads == 'label']
  assert len(label_attacks) == 2
  # heart_disease's test split, answered 16 times
  answers = 61 * membership_experiment.UTILITY_DRAWS
  for p in config.defense.randomized_response.strengths:
    mine = [r for r in rows if (r['defense'], r['strength']) == ('randomized_response', p)]
    assert [r['attack'] for r in mine] == label_attacks
    expected = (1 - p) * clean + p * (1 - clean)  # two classes: a flip swaps right and wrong
    bound = 4 * math.sqrt(p * (1 - p) / answers)
    assert abs(mine[0]['defended_test_accuracy'] - expected) <= bound, (p, mine[0], expected)
  for sigma in config.defense.model_perturbation.strengths:
    mine = [r for r in rows if (r['defense'], r['mode'], r['strength'])
            == ('model_perturbation', 'per_query', sigma)]
    assert [r['attack'] for r in mine] == list(config.attack.names)
    assert all(r['auc_low'] <= r['auc'] <= r['auc_high'] for r in mine)


def test_bad_input_names_the_field():
  config = membership_heart.get_config('smoke')
  config.membership.num_shadows = 1
  with pytest.raises(ValueError, match='membership.num_shadows must be at least 2'):
    membership_validate.validate(config)
  config = membership_heart.get_config('smoke')
  config.attack.names = ('lira_online', 'lira_typo')
  with pytest.raises(ValueError, match="attack.names: unknown membership attack 'lira_typo'"):
    membership_validate.validate(config)
  config = membership_heart.get_config('smoke')
  config.attack.queries = 'flip'
  with pytest.raises(ValueError, match="attack.queries 'flip' needs an image dataset"):
    membership_validate.validate(config)
  for field, value, message in (
      ('names', ('dp_sgd',), 'defense.names'),
      ('randomized_response.strengths', (0.5, 1.5), 'flip probabilities in'),
      ('model_perturbation.scope', 'edge', "defense.model_perturbation.scope must be 'all'"),
      ('model_perturbation.strengths', (), 'defense.model_perturbation.strengths')):
    config = membership_heart.get_config('smoke')
    block, _, leaf = ('defense.' + field).rpartition('.')
    node = config
    for part in block.split('.'):
      node = node[part]
    node[leaf] = value
    with pytest.raises(ValueError, match=message):
      membership_validate.validate(config)
  config = membership_heart.get_config('smoke')
  with config.unlocked():  # a block of a defense on transmitted features, given a grid
    config.defense.feature_noise = defenses.config_block('feature_noise')
  membership_validate.validate(config)  # at its registered defaults: nothing to ignore
  config.defense.feature_noise.strengths = (0.5,)
  with pytest.raises(ValueError, match="^defense.feature_noise.strengths: defense "
                     "'feature_noise' acts on features; membership inference runs the "
                     'defenses that act on weights or output'):
    membership_validate.validate(config)
  config = membership_heart.get_config('smoke')
  config.attack.names = ('lira_online',)
  with pytest.raises(ValueError, match='no attack that reads labels'):
    membership_validate.validate(config)
  config = membership_heart.get_config('smoke')
  config.evaluation.below_one_record = 'error'
  membership_validate.check_record_count(config.copy_and_resolve_references(), 200_000)
  config.evaluation.fprs = (0.01, 0.001)
  with pytest.raises(ValueError, match=r'evaluation.fprs \[0.001\] are below one record'):
    membership_validate.check_record_count(config, 242)
  with pytest.raises(ValueError, match='at least 4 candidate records'):
    membership_validate.check_record_count(config, 2)
  config.evaluation.subgroups = ('gender',)
  task = _synthetic_task(jax.random.key(0), 8)
  with pytest.raises(ValueError, match="evaluation.subgroups: 'gender' is neither 'label'"):
    membership_subgroups.masks(config, task, 8)
