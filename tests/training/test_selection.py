"""Recipe selection: the best mean validation accuracy wins, test accuracy only for it, reuse."""
import json
import os

import numpy as np
import pytest

from configs import dp_audit
from configs import membership_heart
from configs import select_dp_breastmnist
from configs import select_dp_heart
from configs import select_heart
from medinv.training import selection


def _smoke(data_dir):
  config = select_heart.get_config('smoke')
  config.data.data_dir = data_dir
  return config


@pytest.fixture(scope='module')
def selected(data_dir, tmp_path_factory):
  workdir = tmp_path_factory.mktemp('select')
  results = selection.run(_smoke(data_dir), str(workdir), log=lambda line: None)
  return workdir, results


def _run_results(workdir, row) -> list[dict]:
  folder = workdir / row['candidate']
  return [json.loads((folder / repeat / 'results.json').read_text())
          for repeat in sorted(os.listdir(folder))]


def test_the_best_mean_validation_accuracy_is_chosen(selected):
  workdir, results = selected
  rows = results['rows']
  assert [row['candidate'] for row in rows] == ['learning_rate=0.0003,num_epochs=3',
                                               'learning_rate=0.001,num_epochs=3']
  means = []
  for row in rows:  # Each row: the mean over its repeats' own results.json.
    runs = _run_results(workdir, row)
    assert len(runs) == row['repeats'] == 2
    means.append(np.mean([run['metrics']['validation_accuracy'] for run in runs]))
    assert row['validation_accuracy'] == pytest.approx(means[-1])
    assert row['learning_rate'] in (3e-4, 1e-3) and row['num_epochs'] == 3
  chosen = [row['chosen'] for row in rows]
  assert chosen.count(True) == 1 and rows[int(np.argmax(means))]['chosen']
  assert results['metrics']['chosen_row'] == chosen.index(True)
  # Test accuracy: the chosen candidate's mean over its repeats, and nobody else's.
  for row in rows:
    if row['chosen']:
      tests = [run['metrics']['test_accuracy'] for run in _run_results(workdir, row)]
      assert row['test_accuracy'] == pytest.approx(np.mean(tests))
      assert results['metrics']['chosen_test_accuracy'] == pytest.approx(np.mean(tests))
    else:
      assert row['test_accuracy'] is None
  header = (workdir / 'results.csv').read_text().splitlines()[0].split(',')
  assert {'candidate', 'validation_accuracy', 'test_accuracy', 'seconds', 'chosen'} <= set(header)


def test_runs_train_on_the_carved_records_at_each_repeat(selected):
  workdir, results = selected
  runs = _run_results(workdir, results['rows'][0])
  seeds = [json.loads((workdir / results['rows'][0]['candidate'] / repeat / 'config.json')
                      .read_text())['seed'] for repeat in sorted(os.listdir(
                          workdir / results['rows'][0]['candidate']))]
  assert sorted(seeds) == [0, 1]
  for run in runs:  # 194 of the 242 training records train (7 batches of 32), 48 validate.
    assert run['metrics']['steps'] == 3 * 7
    assert [row['split'] for row in run['rows']] == ['train', 'validation', 'test']


def test_rerun_reuses_every_finished_run(selected, data_dir):
  workdir, results = selected
  stamps = {path: os.path.getmtime(path) for path in workdir.glob('*/*/results.json')}
  assert len(stamps) == 4
  again = selection.run(_smoke(data_dir), str(workdir), log=lambda line: None)
  assert again['rows'] == results['rows']
  assert stamps == {path: os.path.getmtime(path) for path in stamps}


def test_config_errors(data_dir, tmp_path):
  config = _smoke(data_dir)
  config.data.validation_fraction = 0.0
  with pytest.raises(ValueError, match='validation_fraction is 0: heart_disease has no '
                                       'validation split'):
    selection.run(config, str(tmp_path))
  config = _smoke(data_dir)
  config.select.axes.train.learning_rate = (0.0,)
  with pytest.raises(ValueError, match='candidate learning_rate=0,num_epochs=3, repeat .*: '
                                       'train.learning_rate must be positive'):
    selection.run(config, str(tmp_path))
  config = _smoke(data_dir)
  config.select.axes.train.epochs = (3,)
  with pytest.raises(ValueError, match="axis 'train.epochs' is not a field of the config"):
    selection.run(config, str(tmp_path))
  assert not os.listdir(tmp_path)  # Refused before anything was written.


def test_the_membership_targets_recipe_is_a_candidate_at_its_own_size():
  config = select_heart.get_config('members')
  runs = selection.run_configs(config)
  candidates = {name: overrides for name, _, overrides, _ in runs}
  assert len(candidates) == 12 and len(runs) == 12 * 9
  assert {run.data.validation_fraction for *_, run in runs} == {0.5}  # 121 train, as a target.
  recipe = {f'train.{k}': v for k, v in membership_heart.RECIPE.items()}
  assert recipe in candidates.values()
  trained = membership_heart.get_config()
  assert {k: trained.train[k] for k in membership_heart.RECIPE} == membership_heart.RECIPE


@pytest.mark.parametrize('select, chosen', [(select_dp_heart, dp_audit.HEART_RECIPES),
                                            (select_dp_breastmnist, dp_audit.BREASTMNIST_RECIPES)],
                         ids=['heart_disease', 'breastmnist'])
def test_every_dp_recipe_is_a_candidate_of_its_selection_at_its_epsilon(select, chosen):
  for epsilon, recipe in chosen.items():
    config = select.get_config(f'epsilon={epsilon}')
    runs = selection.run_configs(config)
    assert {run.train.dp.target_epsilon for *_, run in runs} == {epsilon}
    candidates = [overrides for _, _, overrides, _ in runs]
    assert {f'train.{k}': v for k, v in recipe.items()} in candidates, epsilon
    # The study trains what was selected: every other train field of the selection's runs.
    trained = dp_audit.recipe(config.data.dataset, epsilon)
    assert all(config.train[k] == v for k, v in trained.items() if k not in recipe), epsilon
