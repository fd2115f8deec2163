"""medinv.api: the CLI and the API give equal rows for one config and seed (one test per attack
family); arrays-in membership scoring equals the train-shadows path on the same logits; bad
arrays are one clear line."""
import json
import math
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import attribute_heart
from configs import common
from configs import inversion_breastmnist
from configs import membership_heart
from medinv import api
from medinv import data as data_lib
from medinv.membership import experiment as membership_experiment
from medinv.training import trainer


def _cli(experiment: str, config_arg: str, overrides: list[str], workdir, data_dir) -> dict:
  command = [sys.executable, '-m', f'experiments.{experiment}', f'--config={config_arg}',
             f'--config.data.data_dir={data_dir}', f'--workdir={workdir}', *overrides]
  env = dict(os.environ, PYTHONPATH=common.REPO)
  done = subprocess.run(command, cwd=common.REPO, env=env, capture_output=True, text=True)
  assert done.returncode == 0, done.stderr[-3000:]
  with open(os.path.join(workdir, 'results.json')) as f:
    return json.load(f)


def _same(rows, other_rows):
  """Rows equal cell by cell (NaN equals NaN), after results.json's JSON round trip."""
  rows = json.loads(json.dumps(rows))
  assert len(rows) == len(other_rows) > 0
  for row, other in zip(rows, other_rows):
    assert row.keys() == other.keys()
    for key, value in row.items():
      both_nan = isinstance(value, float) and math.isnan(value) and math.isnan(other[key])
      assert both_nan or value == other[key], (key, value, other[key])


@pytest.fixture(scope='module')
def membership_run(tmp_path_factory, data_dir):
  config = membership_heart.get_config('smoke')
  config.data.data_dir = data_dir
  config.defense.names = ()  # undefended (tests/membership runs the defenses): for time
  workdir = str(tmp_path_factory.mktemp('membership_api'))
  return config, workdir, api.membership_inference(config, workdir)


@pytest.mark.e2e
def test_membership_cli_equals_api(membership_run, tmp_path, data_dir):
  _, workdir, result = membership_run
  cli = _cli('membership_inference', 'configs/membership_heart.py:smoke',
             ['--config.defense.names=()'], tmp_path, data_dir)
  _same(result.rows, cli['rows'])
  assert result.metrics == cli['metrics']
  assert 'roc' in result.figures and result.workdir == workdir
  assert result.table().splitlines()[0].startswith('| attack | defense |')


@pytest.fixture(scope='module')
def attribute_run(tmp_path_factory, data_dir):
  config = attribute_heart.get_config('smoke')
  config.data.data_dir = data_dir
  workdir = str(tmp_path_factory.mktemp('attribute_api'))
  return config, workdir, api.attribute_inference(config, workdir)


@pytest.mark.e2e
def test_attribute_cli_equals_api(attribute_run, tmp_path, data_dir):
  _, _, result = attribute_run
  cli = _cli('attribute_inference', 'configs/attribute_heart.py:smoke', [], tmp_path, data_dir)
  _same(result.rows, cli['rows'])
  assert 'attribute' in result.figures


def _close(rows, other_rows):
  assert len(rows) == len(other_rows) > 0
  for row, other in zip(rows, other_rows):
    for key, value in row.items():
      if isinstance(value, float) and not math.isnan(value):
        assert value == pytest.approx(other[key], abs=1e-6), key
      elif not isinstance(value, float):
        assert value == other[key], key


@pytest.mark.e2e
def test_attribute_audit_of_a_predict_function_equals_the_trained_path(attribute_run, tmp_path):
  config, workdir, result = attribute_run
  task = data_lib.load_task(config.data)
  trained = trainer.train_and_evaluate(config, os.path.join(workdir, 'target'), task=task)

  def predict(raw):  # the deployed model on raw records, as a user would wrap theirs
    return trained.apply_fn({'params': trained.params}, task.scaler(raw))
  jax_run = api.audit_attribute(predict, task.records_train, task.records_test,
                                config.attack.sensitive, str(tmp_path / 'jax'), config=config)
  _close(jax_run.rows, result.rows)
  numpy_run = api.audit_attribute(lambda raw: np.asarray(predict(raw)), task.records_train,
                                  task.records_test, config.attack.sensitive,
                                  str(tmp_path / 'numpy'), config=config, jax_traceable=False)
  _close(numpy_run.rows, result.rows)
  with pytest.raises(ValueError, match=r'predict returned shape \(2,\) for 2 records; '
                     r'expected \(batch, classes\) = \(2, 2\)'):
    api.audit_attribute(lambda raw: predict(raw)[:, 0], task.records_train, task.records_test,
                        ('sex',), str(tmp_path / 'bad'), config=config)


INVERSION_OVERRIDES = {'attack.names': ('inverse_network',), 'attack.knows_defense': (True,),
                       'data.image_size': 16, 'train.num_epochs': 2,
                       'train.checkpoint_every_epochs': 1}


@pytest.fixture(scope='module')
def inversion_run(tmp_path_factory, data_dir):
  config = inversion_breastmnist.get_config('split=2,smoke')
  config.data.data_dir = data_dir
  for field, value in INVERSION_OVERRIDES.items():
    block, name = field.split('.')
    config[block][name] = value
  workdir = str(tmp_path_factory.mktemp('inversion_api'))
  return config, workdir, api.model_inversion(config, workdir)


@pytest.mark.e2e
def test_inversion_cli_equals_api(inversion_run, tmp_path, data_dir):
  _, _, result = inversion_run
  cli = _cli('model_inversion', 'configs/inversion_breastmnist.py:split=2,smoke',
             [f'--config.{k}={v!r}' if isinstance(v, tuple) else f'--config.{k}={v}'
              for k, v in INVERSION_OVERRIDES.items()], tmp_path, data_dir)
  _same(result.rows, cli['rows'])


@pytest.mark.e2e
def test_inversion_audit_of_a_users_params_equals_the_trained_path(inversion_run, tmp_path):
  config, workdir, result = inversion_run
  task = data_lib.load_task(config.data)
  trained = trainer.train_and_evaluate(config, os.path.join(workdir, 'target'), task=task)
  audited = api.audit_inversion('split_cnn', trained.params, (task.x_train, task.y_train),
                                (task.x_test, task.y_test), config, str(tmp_path / 'own'),
                                class_names=task.class_names)
  _close(audited.rows, result.rows)
  with pytest.raises(ValueError, match="model 'mlp' declares no split points"):
    api.audit_inversion('mlp', trained.params, (task.x_train, task.y_train),
                        (task.x_test, task.y_test), config, str(tmp_path / 'bad'))


@pytest.mark.e2e
def test_arrays_in_scoring_equals_the_train_shadows_path(membership_run):
  config, workdir, result = membership_run
  task = data_lib.load_task(config.data)
  population = membership_experiment.fit_target(config, task, workdir)  # resumes: no training
  x, y = membership_experiment.candidates(task)
  logits = jax.vmap(lambda params: population['model'].apply({'params': params}, x))(
      population['state'].params)
  scored = api.score_membership(
      y, population['membership'].astype(int), target_logits=np.asarray(logits[0]),
      shadow_logits=np.asarray(logits[1:]), attacks=config.attack.names,
      fprs=config.evaluation.fprs, bootstrap_samples=config.evaluation.bootstrap_samples,
      seed=config.seed)
  trained = [r for r in result.rows if r['defense'] == 'none' and r['subgroup'] == 'all']
  assert [r['attack'] for r in scored.rows] == [r['attack'] for r in trained]
  for mine, theirs in zip(scored.rows, trained):
    for key in ('auc', 'auc_low', 'auc_high', 'balanced_accuracy', 'tpr_at_0.01',
                'tpr_at_0.01_low', 'strongest_auc_low', 'strongest_auc_high'):
      assert mine[key] == pytest.approx(theirs[key], abs=1e-6), (mine['attack'], key)


def _arrays(num_shadows=4, n=12, classes=3, seed=0):
  rng = np.random.default_rng(seed)
  membership = np.zeros((1 + num_shadows, n), int)
  membership[0, ::2] = 1
  membership[1::2, : n // 2] = 1
  membership[2::2, n // 2:] = 1
  return dict(labels=rng.integers(0, classes, n), membership=membership,
              target_logits=rng.normal(size=(n, classes)),
              shadow_logits=rng.normal(size=(num_shadows, n, classes)))


def test_losses_give_the_logits_confidence():
  arrays = _arrays()
  by_logits = api.score_membership(**arrays, attacks=('lira_offline', 'loss_threshold'),
                                   bootstrap_samples=20)
  logits = np.concatenate([arrays['target_logits'][None], arrays['shadow_logits']])
  shifted = logits - logits.max(-1, keepdims=True)
  log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
  loss = -np.take_along_axis(log_probs, arrays['labels'][None, :, None], -1)[..., 0]
  by_loss = api.score_membership(arrays['labels'], arrays['membership'], target_loss=loss[0],
                                 shadow_loss=loss[1:], attacks=('lira_offline',
                                                                'loss_threshold'),
                                 bootstrap_samples=20)
  for mine, theirs in zip(by_loss.rows, by_logits.rows):
    assert mine['auc'] == pytest.approx(theirs['auc'], abs=1e-6)


@pytest.mark.parametrize('change, match', [
    (lambda a: a.update(labels=a['labels'][:-1]),
     r'target_logits has 12 records \(shape \(12, 3\)\) but labels has 11'),
    (lambda a: a['shadow_logits'].__setitem__((1, 3, 0), np.nan),
     r'shadow_logits holds NaN or inf \(first at index \(1, 3, 0\)\)'),
    (lambda a: a['membership'].__setitem__((slice(1, None), 5), 1),
     r'membership: record 5 is IN for every shadow'),
    (lambda a: a.update(membership=a['membership'][:3]),
     r'membership must be 0/1 of shape \(1 \+ shadows, records\) = \(5, 12\)'),
    (lambda a: a.update(target_logits=a['target_logits'][:, 0]),
     r'target_logits must be \(records, classes\), got shape \(12,\)'),
    (lambda a: a.update(labels=a['labels'] + 3), r'labels must be class indices in \[0, 3\)'),
])
def test_bad_arrays_are_one_clear_line(change, match):
  arrays = _arrays()
  change(arrays)
  with pytest.raises(ValueError, match=match) as info:
    api.score_membership(**arrays, bootstrap_samples=10)
  assert '\n' not in str(info.value)
