"""Config and flag errors, and options that do not apply: one clear line, exit 2, before any
data or compute (the entry-point cases run `experiments/train.py` as tests/core/test_errors.py
does, through `experiment_runs.run_train`)."""
import os

import pytest

from configs import train_heart
from medinv.core import cli
from medinv.core import errors
from medinv.training import trainer
from experiment_runs import error_line
from experiment_runs import run_train


@pytest.fixture(autouse=True)
def _session_data_dir(data_dir):
  """Every run here (and its subprocesses, through $MEDINV_DATA_DIR) builds data in tmp."""
  return data_dir


# ---------------------------------------------------------------------- flags and config

@pytest.mark.parametrize('flag, names', [
    ('--config.train.sigm=0.1', ('--config.train.sigm', "no field 'sigm'", 'learning_rate')),
    ('--config.train.learning_rate=abc', ('--config.train.learning_rate=abc', 'float')),
    ('--config=configs/train_heart.py:smok', ("'smok'", 'allowed: smoke')),
    ('--config=configs/no_such_config.py', ('configs/no_such_config.py', 'No such file')),
    ('--workdri=/tmp/x', ("'workdri'", 'workdir')),
])
def test_flag_errors_are_one_line(flag, names, tmp_path):
  result = run_train(flag, f'--workdir={tmp_path / "w"}')
  error_line(result, errors.EXIT_USAGE, *names)
  assert not os.path.exists(tmp_path / 'w')


def test_mistyped_override_of_the_default_config(tmp_path):
  """Without --config, config_flags applies overrides while the entry point imports."""
  result = run_train('--config.train.sigm=0.1', f'--workdir={tmp_path / "w"}', config=None)
  error_line(result, errors.EXIT_USAGE, '--config.train.sigm', 'learning_rate')


def test_unknown_field_suggests_the_closest():
  config = train_heart.get_config('smoke')
  message = cli.unknown_field(config, 'train.learning_rat')
  assert "did you mean 'learning_rate'?" in message and 'weight_decay' in message
  assert 'not a group of fields' in cli.unknown_field(config, 'seed.x')
  assert cli.unknown_field(config, 'train.learning_rate') is None


def test_debug_switch_shows_the_traceback(tmp_path):
  result = run_train('--config.train.sigm=0.1', f'--workdir={tmp_path}', debug=True)
  assert result.returncode == errors.EXIT_USAGE
  assert 'Traceback' in result.stderr
  assert result.stderr.splitlines()[-1].startswith('error: --config.train.sigm')


def test_config_file_without_get_config_names_the_file(tmp_path):
  path = tmp_path / 'my_config.py'
  path.write_text('import ml_collections\n\ndef config():\n  return None\n')
  error_line(run_train(f'--workdir={tmp_path / "w"}', config=f'{path}:smoke'),
             errors.EXIT_USAGE, f'--config={path}: {path} defines no get_config(arg=None)')


def test_one_line_joins_a_message_of_several_lines():
  assert cli.one_line('first line\n  second\n\n third ') == 'first line second third'


# ------------------------------------------------------------ options that do not apply

def test_manual_dir_for_a_dataset_shipped_with_medinv_is_refused(tmp_path):
  from medinv import data as data_lib
  assert not data_lib.reads_manual_dir('heart_disease')
  assert not data_lib.reads_manual_dir('breastmnist')
  assert all(data_lib.reads_manual_dir(name) for name in ('cardio', 'mias', 'csv', 'npz'))
  config = train_heart.get_config('smoke')
  config.data.manual_dir = str(tmp_path)
  with pytest.raises(ValueError, match="config.data.manual_dir .*'heart_disease' ships with "
                     'medinv.*datasets that read it: cardio, cbis_ddsm, csv'):
    trainer.validate(config)
  config.data.update(dataset='cardio')
  trainer.validate(config)  # cardio reads its file from manual_dir
  result = run_train(f'--config.data.manual_dir={tmp_path}', f'--workdir={tmp_path / "w"}')
  error_line(result, errors.EXIT_USAGE, 'config.data.manual_dir', 'heart_disease')
  assert not os.path.exists(tmp_path / 'w')


def test_option_of_an_attack_that_is_not_run_is_refused(tmp_path):
  from configs import inversion_breastmnist
  from configs import membership_heart
  config = inversion_breastmnist.get_config('smoke')
  config.attack.names = ('inverse_network',)
  message = cli.unselected_override(config, 'attack.rmle.objective')
  assert message == ("--config.attack.rmle.objective: attack.rmle is not run (attack.names is "
                     "('inverse_network',)); add 'rmle' to --config.attack.names or drop this "
                     'option')
  assert cli.unselected_override(config, 'attack.inverse_network.steps') is None
  assert cli.unselected_override(config, 'attack.num_targets') is None
  assert cli.unselected_override(config, 'defense.feature_noise.strengths') is None  # all run
  membership = membership_heart.get_config('smoke')
  membership.defense.names = ('model_perturbation',)
  assert 'defense.randomized_response is not run' in cli.unselected_override(
      membership, 'defense.randomized_response.strengths')
  result = run_train('--config.attack.names=("loss_threshold",)',
                     '--config.attack.lira_online.min_std=0.01', f'--workdir={tmp_path / "w"}',
                     config='configs/membership_heart.py:smoke',
                     experiment='membership_inference')
  error_line(result, errors.EXIT_USAGE, '--config.attack.lira_online.min_std',
             "attack.names is ('loss_threshold',)")
  assert not os.path.exists(tmp_path / 'w')


def test_demo_manual_dir_without_a_part_that_reads_it(tmp_path):
  result = run_train(f'--manual_dir={tmp_path}', f'--workdir={tmp_path / "w"}',
                     config='configs/demo.py:smoke', experiment='demo')
  error_line(result, errors.EXIT_USAGE, '--manual_dir: no part of this study reads')


@pytest.mark.parametrize('field, value, allowed', [
    ('learning_rate', 0.0, 'must be positive'),
    ('learning_rate', float('nan'), 'must be positive'),
    ('weight_decay', -0.1, 'must be >= 0'),
    ('label_flip_prob', 0.7, 'in [0, 0.5]'),
    ('label_flip_prob', -0.1, 'in [0, 0.5]'),
    ('num_epochs', 0, 'must be positive'),
])
def test_train_validate_rejects(field, value, allowed):
  config = train_heart.get_config('smoke')
  config.train[field] = value
  with pytest.raises(ValueError, match=f'train.{field}') as raised:
    trainer.validate(config)
  assert allowed in str(raised.value)


def test_label_flip_prob_bound_from_loaded_classes():
  config = train_heart.get_config('smoke')
  config.train.label_flip_prob = 0.7
  trainer.check_label_flip_prob(config, 4)  # Up to (k - 1) / k = 0.75.
  with pytest.raises(ValueError, match=r'in \[0, 0.666667\] for the 3 classes'):
    trainer.check_label_flip_prob(config, 3)


@pytest.mark.e2e  # runs an experiment end to end: the e2e tier
def test_invalid_config_exits_2_before_anything_is_written(tmp_path):
  result = run_train('--config.train.learning_rate=0', f'--workdir={tmp_path / "w"}')
  error_line(result, errors.EXIT_USAGE, 'train.learning_rate', 'positive')
  assert not os.path.exists(tmp_path / 'w')
