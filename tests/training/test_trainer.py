"""Training: determinism, resume equality, results files, config errors."""
import functools
import json
import os

import jax
import numpy as np
import optax
import pytest

from configs import train_breastmnist
from configs import train_heart
from medinv.core import checkpoint
from medinv.core import errors
from medinv import data
from medinv.core import keys
from medinv.training import evaluation
from medinv.training import trainer


def _heart(data_dir, **train_overrides):
  config = train_heart.get_config('smoke')
  config.data.data_dir = data_dir
  config.train.update(train_overrides)
  return config


def _leaves_equal(a, b):
  return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_same_seed_bit_identical_and_other_seed_differs(data_dir, tmp_path):
  config = _heart(data_dir, num_epochs=4, checkpoint_every_epochs=4)
  first = trainer.train_and_evaluate(config, str(tmp_path / 'a'))
  second = trainer.train_and_evaluate(config, str(tmp_path / 'b'))
  assert _leaves_equal(first.params, second.params)
  config.seed = 1
  third = trainer.train_and_evaluate(config, str(tmp_path / 'c'))
  assert not _leaves_equal(first.params, third.params)


def test_resume_after_checkpoint_equals_uninterrupted(data_dir, tmp_path):
  # At a constant rate (a cosine schedule's run cannot grow: the test below).
  config = functools.partial(_heart, data_dir, checkpoint_every_epochs=2, schedule='constant')
  full = trainer.train_and_evaluate(config(num_epochs=6), str(tmp_path / 'full'))
  # "Killed" after epoch 4: a run configured to stop there, then the same workdir resumed.
  stopped = str(tmp_path / 'stopped')
  trainer.train_and_evaluate(config(num_epochs=4), stopped)
  assert checkpoint.manager(os.path.join(stopped, 'checkpoints')).latest_step() == 4
  resumed = trainer.train_and_evaluate(config(num_epochs=6), stopped)
  assert _leaves_equal(full.params, resumed.params)
  assert resumed.metrics['steps'] == full.metrics['steps']


def test_results_files(data_dir, tmp_path):
  trained = trainer.train_and_evaluate(_heart(data_dir), str(tmp_path))
  results = json.loads((tmp_path / 'results.json').read_text())
  assert results['experiment'] == 'train' and results['schema'] == 'medinv.results/1'
  assert results['metrics']['test_accuracy'] == pytest.approx(trained.metrics['test_accuracy'])
  assert [r['split'] for r in results['rows']] == ['train', 'test']  # No validation split.
  assert 'validation_accuracy' not in results['metrics']
  csv_lines = (tmp_path / 'results.csv').read_text().splitlines()
  assert csv_lines[0] == 'dataset,model,split,accuracy,loss,dp_epsilon' and len(csv_lines) == 3
  saved = json.loads((tmp_path / 'config.json').read_text())
  assert saved['data']['dataset'] == 'heart_disease'


def test_incompatible_workdir_names_field(data_dir, tmp_path):
  trainer.train_and_evaluate(_heart(data_dir), str(tmp_path))
  config = _heart(data_dir, learning_rate=0.1)
  with pytest.raises(ValueError, match='train.learning_rate was 0.0003, now 0.1'):
    trainer.train_and_evaluate(config, str(tmp_path))


def test_workdir_from_before_the_dp_and_nopeek_fields_resumes(data_dir, tmp_path):
  trainer.train_and_evaluate(_heart(data_dir), str(tmp_path))
  path = tmp_path / 'config.json'
  saved = json.loads(path.read_text())
  for field in ('dp', 'nopeek_weight', 'nopeek_split'):
    del saved['train'][field]  # As a workdir written before these fields existed.
  path.write_text(json.dumps(saved))
  again = trainer.train_and_evaluate(_heart(data_dir), str(tmp_path))  # Resumes: same model.
  assert again.metrics['dp_epsilon'] == float('inf')
  private = _heart(data_dir)
  private.train.dp.target_epsilon = 4.0
  private.data.scaling = 'fit'  # DP-SGD refuses the default scaling by private statistics.
  with pytest.raises(ValueError, match='train.dp.target_epsilon was inf, now 4.0'):
    trainer.train_and_evaluate(private, str(tmp_path))


def test_bad_configs_fail_before_compute(data_dir, tmp_path):
  config = _heart(data_dir)
  config.data.dataset = 'heart'
  with pytest.raises(ValueError, match='known datasets'):
    trainer.train_and_evaluate(config, str(tmp_path / 'a'))
  config = train_breastmnist.get_config('smoke')
  config.data.image_size = 20
  with pytest.raises(ValueError, match='multiple of 8'):
    trainer.train_and_evaluate(config, str(tmp_path / 'b'))
  config = _heart(data_dir)
  config.model = 'split_cnn'
  with pytest.raises(ValueError, match='does not fit dataset'):
    trainer.train_and_evaluate(config, str(tmp_path / 'c'))
  assert not os.path.exists(tmp_path / 'a')


@pytest.mark.e2e  # runs an experiment end to end: the e2e tier
def test_breastmnist_smoke_trains_cnn(data_dir, tmp_path):
  config = train_breastmnist.get_config('smoke')
  config.data.data_dir = data_dir
  trained = trainer.train_and_evaluate(config, str(tmp_path))
  assert trained.metrics['steps'] == 2 * 9  # 546 images / 64 per batch = 9 padded batches.
  # The metrics, recomputed here in one unbatched pass over the data loaded afresh.
  task = data.load_task(config.data)
  assert task.x_test.shape == (156, 16, 16, 1) and task.x_val.shape == (78, 16, 16, 1)
  for split, x, y in (('train', task.x_train, task.y_train), ('validation', task.x_val,
                                                              task.y_val),
                      ('test', task.x_test, task.y_test)):
    logits = trained.model.apply({'params': trained.params}, x)
    accuracy = float(np.mean(np.argmax(logits, -1) == y))
    loss = float(optax.softmax_cross_entropy_with_integer_labels(logits, y).mean())
    assert trained.metrics[f'{split}_accuracy'] == pytest.approx(accuracy, abs=1e-6), split
    assert trained.metrics[f'{split}_loss'] == pytest.approx(loss, rel=1e-4), split
  # Training moved the model: its training loss is below that of the initial parameters.
  initial = trained.model.init(keys.named_keys(config.seed)['init'], task.x_train[:1])
  initial_logits = trained.model.apply(initial, task.x_train)
  initial_loss = optax.softmax_cross_entropy_with_integer_labels(initial_logits, task.y_train)
  assert trained.metrics['train_loss'] < float(initial_loss.mean()) - 0.01


def test_last_batch_padded_and_masked():
  index, mask = evaluation.batch_indices(jax.random.key(0), 10, 4)
  assert index.shape == (3, 4) and mask.sum() == 10 and mask[-1].tolist() == [1, 1, 0, 0]
  assert sorted(np.asarray(index).ravel()[:10].tolist()) == list(range(10))


def test_validation_accuracy_in_results(data_dir, tmp_path):
  config = _heart(data_dir)
  config.data.validation_fraction = 0.2  # heart_disease's 242 training records: 48 validate.
  trained = trainer.train_and_evaluate(config, str(tmp_path))
  results = json.loads((tmp_path / 'results.json').read_text())
  assert [r['split'] for r in results['rows']] == ['train', 'validation', 'test']
  csv_lines = (tmp_path / 'results.csv').read_text().splitlines()
  assert len(csv_lines) == 4 and csv_lines[2].startswith('heart_disease,mlp,validation,')
  task = data.load_task(config.data)
  logits = trained.model.apply({'params': trained.params}, task.x_val)
  accuracy = float(np.mean(np.argmax(logits, -1) == task.y_val))
  assert results['metrics']['validation_accuracy'] == pytest.approx(accuracy, abs=1e-6)
  assert results['rows'][1]['accuracy'] == pytest.approx(accuracy, abs=1e-6)
  majority = np.max(np.bincount(task.y_val)) / len(task.y_val)
  assert results['metrics']['validation_majority_accuracy'] == pytest.approx(majority)
  # It trained on the 194 records left: 7 batches of 32 an epoch.
  assert trained.metrics['steps'] == config.train.num_epochs * 7


def test_scheduled_run_resumes_as_uninterrupted_and_keeps_its_horizon(data_dir, tmp_path):
  config = _heart(data_dir, num_epochs=6, checkpoint_every_epochs=2, schedule='cosine',
                  warmup_epochs=1, weight_decay=1e-3)
  full = trainer.train_and_evaluate(config, str(tmp_path / 'full'))
  # Killed after the checkpoint of epoch 4: the epoch-6 checkpoint and results never written.
  killed = tmp_path / 'killed'
  trainer.train_and_evaluate(config, str(killed))
  mngr = checkpoint.manager(str(killed / 'checkpoints'))
  mngr.delete(6)
  mngr.close()
  os.remove(killed / 'results.json')
  resumed = trainer.train_and_evaluate(config, str(killed))
  assert _leaves_equal(full.params, resumed.params)
  # The cosine decays to 0 at num_epochs: a longer run may not resume from these checkpoints.
  config.train.num_epochs = 8
  with pytest.raises(errors.WorkdirError, match='train.num_epochs was 6, now 8'):
    trainer.train_and_evaluate(config, str(killed))
  # Without the schedule the rate does not depend on num_epochs, which may grow (as before).
  constant = _heart(data_dir, num_epochs=2, checkpoint_every_epochs=2, schedule='constant')
  trainer.train_and_evaluate(constant, str(tmp_path / 'constant'))
  constant.train.num_epochs = 4
  assert trainer.train_and_evaluate(constant, str(tmp_path / 'constant')).metrics['steps'] == 32


def test_augmentation_config_errors(data_dir, tmp_path):
  config = _heart(data_dir, augment_shift=2)
  with pytest.raises(ValueError, match='mlp takes records, which have no pixels to flip or '
                                       'shift'):
    trainer.validate(config)
  config = train_breastmnist.get_config('smoke')
  config.train.augment_shift = 16
  with pytest.raises(ValueError, match=r'train.augment_shift must be in \[0, data.image_size\) '
                                       r'= \[0, 16\) pixels'):
    trainer.validate(config)
  config.train.augment_shift = 15
  trainer.validate(config)
