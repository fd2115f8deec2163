"""Bad input and faults end in one clear line, the right exit code and nothing half-written.

Entry-point cases run `experiments/train.py` (heart_disease smoke config) as a subprocess and
check: the exit code (2 usage / config / workdir, 1 data / divergence / disk full), that
stderr is one `error:` line naming the field, file or workdir (no traceback without
MEDINV_DEBUG, no library log line), and the files left behind. Faults that need a broken machine (a full disk, a read-only workdir)
are simulated by a patch that the subprocess applies before running the entry point.
"""
import errno
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from configs import train_heart
from medinv.core import checkpoint
from medinv.core import errors
from medinv import models
from medinv.core import report
from medinv.training import optimizer
from medinv.training import trainer
from medinv.data import DataError
from medinv.data import heart_disease
import experiment_runs
from experiment_runs import error_line
from experiment_runs import run_train

ROOT = experiment_runs.REPO


@pytest.fixture(autouse=True)
def _session_data_dir(data_dir):
  """Every run here (and its subprocesses, through $MEDINV_DATA_DIR) builds data in tmp."""
  return data_dir


def leftovers(directory) -> list[str]:
  """Temporary files or checkpoint folders a failed write may have left under directory."""
  found = []
  for root, folders, files in os.walk(directory):
    found += [os.path.join(root, n) for n in folders + files
              if n.endswith('.tmp') or checkpoint.TMP_SUFFIX in n]
  return found


# ---------------------------------------------------------------------------- workdir

@pytest.mark.e2e  # runs an experiment end to end: the e2e tier
def test_workdir_that_is_a_file(tmp_path):
  path = tmp_path / 'file'
  path.write_text('not a directory')
  error_line(run_train(f'--workdir={path}'), errors.EXIT_USAGE, 'workdir', str(path))
  error_line(run_train(f'--workdir={path / "sub"}'), errors.EXIT_USAGE, 'workdir',
             'not writable')
  assert path.read_text() == 'not a directory'


def test_data_dir_that_cannot_be_written_exits_2_naming_the_field(tmp_path):
  blocker = tmp_path / 'file'
  blocker.write_text('not a directory')
  result = run_train(f'--config.data.data_dir={blocker / "tfds"}', f'--workdir={tmp_path / "w"}')
  error_line(result, errors.EXIT_USAGE, f"config.data.data_dir '{blocker / 'tfds'}' is not "
             'writable', '--config.data.data_dir', '$MEDINV_DATA_DIR')


@pytest.mark.e2e  # runs an experiment end to end: the e2e tier
def test_read_only_workdir(tmp_path):
  workdir = tmp_path / 'w'
  patch = ('import errno, os\n_open = os.open\n'
           'def read_only(path, *args, **kwargs):\n'
           f'  if str(path).startswith({str(workdir)!r}):\n'
           "    raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)\n"
           '  return _open(path, *args, **kwargs)\n'
           'os.open = read_only\n')
  error_line(run_train(f'--workdir={workdir}', patch=patch), errors.EXIT_USAGE,
             'workdir', 'not writable', 'Read-only file system')
  assert os.listdir(workdir) == []


@pytest.mark.e2e  # runs an experiment end to end: the e2e tier
def test_checkpoints_of_another_model_without_config_json(tmp_path):
  tx = optimizer.make(1e-3, optimizer.Settings())
  other = trainer.init_state(jax.random.key(0), models.build('mlp', 3), tx, jnp.ones((1, 13)))
  mngr = checkpoint.manager(str(tmp_path / 'checkpoints'))
  checkpoint.save(mngr, 2, other)
  mngr.close()
  line = error_line(run_train(f'--workdir={tmp_path}'), errors.EXIT_USAGE,
                    str(tmp_path / 'checkpoints'), 'incompatible', 'Dense_2', '--workdir')
  assert '[3] there' in line and '[2] here' in line
  assert not (tmp_path / 'results.json').exists()


def test_config_json_without_checkpoints_protects_nothing(tmp_path):
  config = train_heart.get_config('smoke')
  stale = train_heart.get_config('smoke')
  stale.train.learning_rate = 0.1  # Left by a run whose data build failed.
  (tmp_path / 'config.json').write_text(json.dumps(stale.to_dict()))
  checkpoint.check_compatible(str(tmp_path / 'config.json'), config.to_dict(),
                              trainer.CHECKPOINT_FIELDS)  # No checkpoints: no complaint.
  (tmp_path / 'checkpoints' / '4').mkdir(parents=True)
  with pytest.raises(errors.WorkdirError, match='train.learning_rate was 0.1, now 0.0003'):
    checkpoint.check_compatible(str(tmp_path / 'config.json'), config.to_dict(),
                                trainer.CHECKPOINT_FIELDS)


# ------------------------------------------------------------------------- divergence

@pytest.mark.e2e  # runs an experiment end to end: the e2e tier
def test_diverged_training_exits_1_without_results(tmp_path):
  result = run_train('--config.train.learning_rate=1e30', f'--workdir={tmp_path}')
  error_line(result, errors.EXIT_FAILURE, 'diverged at epoch 1', 'train.learning_rate=1e+30')
  assert not (tmp_path / 'results.json').exists()
  assert not checkpoint.holds_checkpoints(str(tmp_path / 'checkpoints'))  # NaN never saved.


# ------------------------------------------------------------------------- disk full

def _previous_pair(workdir) -> dict[str, bytes]:
  """A finished earlier run's config.json + results.json (2 epochs; this run asks for 3)."""
  config = train_heart.get_config('smoke')
  config.train.num_epochs = 2
  report.write_config(str(workdir), config)
  report.write_results(str(workdir), 'train', {'test_accuracy': 0.7}, [{'split': 'test'}], 1.0)
  return {name: (workdir / name).read_bytes() for name in ('config.json', 'results.json')}


@pytest.mark.e2e  # runs an experiment end to end: the e2e tier
def test_disk_full_during_checkpoint_keeps_previous_results(tmp_path):
  before = _previous_pair(tmp_path)
  patch = ('import errno, os, orbax.checkpoint as ocp\n'
           'def full(self, step, *args, **kwargs):\n'
           "  tmp = os.path.join(str(self.directory), f'{step}.orbax-checkpoint-tmp-123')\n"
           '  os.makedirs(os.path.join(tmp, "default"))\n'
           "  raise ValueError(\"OUT_OF_RANGE: Failed writing: No space left on device "
           "[os_error_code='28']\")\n"
           'ocp.CheckpointManager.save = full\n')
  result = run_train(f'--workdir={tmp_path}', patch=patch)
  error_line(result, errors.EXIT_FAILURE, 'No space left on device while writing',
             str(tmp_path / 'checkpoints' / '2'))
  assert {name: (tmp_path / name).read_bytes() for name in before} == before
  assert leftovers(tmp_path) == []


def test_disk_full_during_results_write_keeps_previous_pair(tmp_path, monkeypatch):
  before = _previous_pair(tmp_path)

  def fill_half_then_fail(fd, data):
    os.write(fd, data[:len(data) // 2])
    os.close(fd)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

  config = train_heart.get_config('smoke')
  report.write_config(str(tmp_path), config)  # Another config: waits beside the old pair.
  monkeypatch.setattr(report, '_fill', fill_half_then_fail)
  with pytest.raises(errors.WriteError,
                     match=f'No space left on device while writing {tmp_path}/'):
    report.write_results(str(tmp_path), 'train', {'test_accuracy': 0.8}, [], 2.0)
  assert {name: (tmp_path / name).read_bytes() for name in before} == before
  assert leftovers(tmp_path) == []
  monkeypatch.undo()
  report.write_results(str(tmp_path), 'train', {'test_accuracy': 0.8}, [], 2.0)
  assert report.completed_results(str(tmp_path), config)['metrics']['test_accuracy'] == 0.8
  assert not (tmp_path / report.PENDING_CONFIG).exists()


def test_describe_orbax_write_failure_and_exit_codes():
  orbax_error = ValueError(
      'OUT_OF_RANGE: Error writing "a/0" in OCDBT database at local file "/w/partial/s.tmp/": '
      "Failed to write 4096 bytes to file 7: No space left on device [os_error_code='28']")
  assert errors.describe(orbax_error) == (
      errors.EXIT_FAILURE, 'No space left on device while writing /w/partial/s.tmp/')
  assert errors.describe(DataError('x.csv, line 2: ...'))[0] == errors.EXIT_FAILURE
  assert errors.describe(ValueError('sigma must be >= 0')) == (errors.EXIT_USAGE,
                                                              'sigma must be >= 0')
  assert errors.describe(TypeError('a bug')) is None  # Bugs keep their traceback.


# -------------------------------------------------------------------------------- data

@pytest.mark.parametrize('cell, problem', [
    ('nan', 'not a finite number'), ('', 'empty cell'), ('12a', "'12a' is not a number"),
    ('inf', 'not a finite number')])
def test_heart_csv_bad_cell_names_file_line_column(tmp_path, cell, problem):
  header = [c.name for c in heart_disease.COLUMNS] + [heart_disease.TARGET]
  good = ['63', '1', '3', '145', '233', '1', '0', '150', '0', '2.3', '0', '0', '1', '1']
  bad = list(good)
  bad[4] = cell  # chol
  path = tmp_path / 'heart.csv'
  path.write_text('\n'.join(','.join(row) for row in (header, good, bad)) + '\n')
  with pytest.raises(DataError, match=f"{path}, line 3, column 'chol': ") as raised:
    heart_disease.read_csv(path)
  assert problem in str(raised.value)


@pytest.mark.e2e  # runs an experiment end to end: the e2e tier
def test_bad_data_exits_1_and_builds_nothing(tmp_path, assert_nothing_built):
  bad_csv = tmp_path / 'heart.csv'
  rows = [[c.name for c in heart_disease.COLUMNS] + [heart_disease.TARGET],
          ['63', '1', '3', '145', 'nan', '1', '0', '150', '0', '2.3', '0', '0', '1', '1']]
  bad_csv.write_text('\n'.join(','.join(row) for row in rows) + '\n')
  patch = ('from medinv.data import heart_disease\n'
           'heart_disease.HeartDisease._split_generators = (\n'
           f"    lambda self, dl: {{'train': self._generate_examples({str(bad_csv)!r})}})\n")
  data_dir = tmp_path / 'tfds'
  result = run_train(f'--workdir={tmp_path / "w"}', patch=patch, data_dir=str(data_dir))
  error_line(result, errors.EXIT_FAILURE, str(bad_csv), 'line 2', "column 'chol'")
  assert_nothing_built(str(data_dir))


@pytest.mark.parametrize('module, axis, value, message', [
    ('sweep_rmle', 'defense.sigma', -0.1, 'defense.sigma must be >= 0'),
    ('sweep_rmle', 'attack.weights.tv', -0.1, 'attack.weights.tv must be >= 0'),
    ('sweep_rmle', 'attack.learning_rate', 0.0, 'attack.learning_rate must be positive'),
    ('sweep_rmle', 'train.learning_rate', 0.0, 'train.learning_rate must be positive'),
    ('sweep_inversion', 'defense.sigma', -0.1, 'strengths must be >= 0'),
    ('sweep_attribute', 'defense.flip_prob', 0.9, 'flip_prob'),
    ('sweep_population', 'train.label_flip_prob', 1.2, 'label_flip_prob'),
])
def test_sweep_axis_values_are_validated_like_config_values(module, axis, value, message):
  import importlib
  from medinv.core import axes as axes_lib
  from medinv.study import sweep
  config = importlib.import_module(f'configs.{module}').get_config('smoke')
  *parents, leaf = axis.split('.')
  node = config.sweep.axes
  with config.unlocked():
    for part in parents:
      if part not in node:
        node[part] = {}
      node = node[part]
    node[leaf] = (value,)
  assert axes_lib.grid_axes(config, (axis,))  # the axis is in the sweep
  with pytest.raises(ValueError, match=f'sweep axis {axis}={value!r}:.*{message}'):
    sweep.expand_runs(config)


def test_a_target_with_non_finite_parameters_is_not_attacked():
  from medinv.training import experiment
  model = models.MLP(2, hidden=(4,))
  params = model.init(jax.random.key(0), jnp.zeros((1, 3)))['params']
  experiment.check_finite(trainer.Trained(model, params, None, {}), 'w')  # finite: accepted
  broken = jax.tree.map(lambda leaf: leaf.at[0].set(jnp.nan), params)
  with pytest.raises(errors.DivergedError, match="non-finite parameters.*Dense_0.*not attacked"):
    experiment.check_finite(trainer.Trained(model, broken, None, {}), 'w')


def test_disk_full_during_a_stage_leaves_no_stage(tmp_path, monkeypatch):
  import numpy as np
  import orbax.checkpoint as ocp
  from medinv.core import stages

  def full(self, step, *args, **kwargs):  # orbax's temporary folder, then ENOSPC
    os.makedirs(os.path.join(str(self.directory), f'{step}.orbax-checkpoint-tmp-9', 'default'))
    raise ValueError("OUT_OF_RANGE: Failed writing: No space left on device "
                     "[os_error_code='28']")

  monkeypatch.setattr(ocp.CheckpointManager, 'save', full)
  with pytest.raises(errors.WriteError, match='No space left on device while writing'):
    stages.load_or_compute(str(tmp_path), 'stage', lambda: {'w': np.ones(3, np.float32)})
  assert leftovers(tmp_path) == []
  monkeypatch.undo()
  calls = []

  def compute():
    calls.append(1)
    return {'w': np.arange(3, dtype=np.float32)}
  first = stages.load_or_compute(str(tmp_path), 'stage', compute)  # computed, saved
  again = stages.load_or_compute(str(tmp_path), 'stage', compute)  # restored, not recomputed
  assert calls == [1] and np.array_equal(again['w'], first['w'])


@pytest.mark.e2e  # runs an experiment end to end: the e2e tier
def test_bad_sweep_axis_value_exits_2_before_any_run(tmp_path):
  env = {k: v for k, v in os.environ.items() if k != errors.DEBUG_ENV}
  env.update(PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='3', NO_GCE_CHECK='true')
  result = subprocess.run(
      [sys.executable, '-m', 'experiments.sweep', '--config=configs/sweep_rmle.py:smoke',
       '--config.sweep.axes.attack.learning_rate=(0.0,)', f'--workdir={tmp_path / "w"}'],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  error_line(result, errors.EXIT_USAGE, 'sweep axis attack.learning_rate=0.0',
             'attack.learning_rate must be positive')
  assert not (tmp_path / 'w').exists()  # nothing was trained or written
