"""The DP study over target seeds (configs/dp.py `seeds`, `datasets`; medinv.study.dp): part
names and seeds, the table's means and t-intervals over seeds, and a 2-seed smoke study."""
import json
import math

import numpy as np
import pytest
from scipy import stats

from configs import dp as dp_config
from configs import dp_audit
from medinv.study import dp as study_dp
from medinv.study import study


def test_seeds_name_every_part_and_give_disjoint_audit_runs():
  config = dp_config.get_config('smoke,epsilons=1,seeds=2,datasets=heart')
  assert sorted(config.parts) == sorted(
      f'{part}_{tag}_seed{s}' for part, tags in (('attribute_heart', ('inf', 'eps1')),
                                                 ('membership_heart', ('inf', 'eps1')),
                                                 ('audit_heart', ('eps1',)))
      for tag in tags for s in (0, 1))
  assert [config.parts[f'membership_heart_eps1_seed{s}'].seed for s in (0, 1)] == [0, 1]
  # The audit's runs k train at seed + k: seeds 0 and K keep its K runs apart.
  num_models = config.parts['audit_heart_eps1_seed0'].audit.num_models
  assert [config.parts[f'audit_heart_eps1_seed{s}'].seed for s in (0, 1)] == [0, num_models]
  default = dp_config.get_config('smoke')  # One seed: the names and seed 0 as before.
  assert 'attribute_heart_eps8' in default.parts and 'inversion_breastmnist_inf' in default.parts
  assert {part.seed for part in default.parts.values()} == {0}


def test_every_part_trains_the_recipe_chosen_at_its_epsilon():
  config = dp_config.get_config('epsilons=8/1')
  chosen = {'heart_disease': dp_audit.HEART_RECIPES, 'breastmnist': dp_audit.BREASTMNIST_RECIPES}
  datasets = set()
  for name, part in config.parts.items():
    recipe = chosen[part.data.dataset][study_dp.target_epsilon(part)]
    assert (part.train.learning_rate, part.train.num_epochs) == (
        recipe['learning_rate'], recipe['num_epochs']), name
    assert (part.train.schedule, part.train.weight_decay) == ('constant', 0.0), name
    datasets.add(part.data.dataset)
    if part.data.dataset == 'heart_disease':
      assert part.data.scaling == 'bounds', name
    else:
      assert (part.data.image_size, part.train.augment_shift) == (16, 0), name
  assert datasets == set(chosen)


def test_an_epsilon_without_a_chosen_recipe_trains_the_nearest_and_says_so(caplog):
  assert 4.0 not in dp_audit.HEART_RECIPES
  with caplog.at_level('WARNING'):
    recipe = dp_audit.heart_recipe(4.0)  # Nearest on a log scale: 8 (log 2 against log 4).
  assert (recipe['learning_rate'], recipe['num_epochs']) == (
      dp_audit.HEART_RECIPES[8.0]['learning_rate'], dp_audit.HEART_RECIPES[8.0]['num_epochs'])
  assert 'no DP-SGD recipe was chosen at target epsilon 4; training with the one chosen at 8' in (
      caplog.text)
  caplog.clear()
  with caplog.at_level('WARNING'):
    dp_audit.heart_recipe(1.0)
  assert 'no DP-SGD recipe' not in caplog.text


@pytest.mark.parametrize('arg,message', [
    ('datasets=heart/cardio', "datasets='heart/cardio': unknown cardio; allowed: heart, "
                              'breastmnist'),
    ('seeds=0', 'seeds=0: must be 1 or more'),
])
def test_bad_arguments_are_a_clear_error(arg, message):
  with pytest.raises(ValueError, match=message):
    dp_config.get_config(arg)


def _attribute(accuracy: float, advantage: float) -> dict:
  return {'metrics': {'model_test_accuracy': accuracy, 'test_majority_accuracy': 0.574,
                      'dp_epsilon': 1.0, 'delta': 4e-5},
          'rows': [{'targets': 'members', 'flip_prob': 0.0, 'attack': 'map', 'variant': 'v',
                    'attribute': 'cp', 'attack_accuracy': 0.5 + advantage,
                    'best_baseline_accuracy': 0.5}]}


def test_the_table_over_seeds_is_each_columns_mean_and_t_interval():
  accuracies, advantages = [0.70, 0.76, 0.79], [0.02, -0.01, 0.05]
  parts = {f'attribute_heart_eps1_seed{s}': _attribute(a, v)
           for s, (a, v) in enumerate(zip(accuracies, advantages))}
  configs = dp_config.get_config('epsilons=1,seeds=3,datasets=heart').parts
  (row,) = study_dp.summary_rows(parts, configs)
  mean = np.mean(accuracies)
  low, high = stats.t.interval(0.95, 2, loc=mean, scale=stats.sem(accuracies))
  assert (row['accuracy'], row['accuracy_seed_low'], row['accuracy_seed_high']) == (
      pytest.approx(mean), pytest.approx(low), pytest.approx(high))
  assert row['attribute_advantage'] == pytest.approx(np.mean(advantages))
  assert (row['num_seeds'], row['seeds'], row['dp_epsilon'], row['delta']) == (3, '0,1,2', 1.0,
                                                                               4e-5)
  text = study_dp.section(parts, configs)
  assert f'| heart_disease | 1 | 3 | 1.00 | 4e-05 | {mean:.3f} [{low:.3f}, {high:.3f}] |' in text
  # One seed: the rows of that target, as before.
  (single,) = study_dp.summary_rows({'attribute_heart_eps1': parts['attribute_heart_eps1_seed0']},
                                    dp_config.get_config('epsilons=1').parts)
  assert single['accuracy'] == 0.70 and 'num_seeds' not in single


def test_the_inversion_targets_delta_is_stated_beside_its_epsilon():
  results = {'metrics': {'target_test_accuracy': 0.73, 'test_majority_accuracy': 0.731,
                         'dp_epsilon': 1.0, 'delta': 1.8e-5},
             'rows': [{'reference': 'target', 'attack': 'mean_aux_image', 'strength': 0.0,
                       'split': 4, 'ssim_mean': 0.34},
                      {'reference': 'target', 'attack': 'rmle', 'strength': 0.0, 'split': 4,
                       'ssim_mean': 0.91}]}
  configs = dp_config.get_config('epsilons=1,datasets=breastmnist').parts
  parts = {'inversion_breastmnist_eps1': results}
  (row,) = study_dp.summary_rows(parts, configs)
  assert (row['delta'], row['inversion_ssim'], row['inversion_attack']) == (1.8e-5, 0.91, 'rmle')
  assert '(here 1.8e-05)' in study_dp.section(parts, configs)


def _results(path) -> dict:
  with open(path / 'results.json') as f:
    return json.load(f)


@pytest.mark.e2e  # runs a study end to end (4 parts): the e2e tier
def test_two_seed_smoke_study_summarises_two_different_targets(data_dir, tmp_path):
  config = dp_config.get_config('smoke,epsilons=1,seeds=2,datasets=heart')
  for name in list(config.parts.keys()):
    if not name.startswith(('attribute_heart_eps1', 'membership_heart_eps1')):
      del config.parts[name]
    else:
      config.parts[name].data.data_dir = data_dir
      assert config.parts[name].train.num_epochs == 3  # smoke: the recipe's rate, few epochs
  study.run(config, str(tmp_path))
  per_seed = {s: (_results(tmp_path / f'attribute_heart_eps1_seed{s}'),
                  _results(tmp_path / f'membership_heart_eps1_seed{s}')) for s in (0, 1)}
  (row,) = json.loads((tmp_path / 'dp_seeds.json').read_text())
  # The summary's means, against the per-seed results.json read here.
  accuracies = [per_seed[s][0]['metrics']['model_test_accuracy'] for s in (0, 1)]
  assert row['accuracy'] == pytest.approx(np.mean(accuracies))
  aucs = [max(r['strongest_auc'] for r in per_seed[s][1]['rows']
              if r['subgroup'] == 'all' and r['defense'] == 'none') for s in (0, 1)]
  assert row['membership_strongest_auc'] == pytest.approx(np.mean(aucs))
  assert row['num_seeds'] == 2 and row['dp_epsilon'] == pytest.approx(1.0, rel=0.01)
  assert 'dataset,target_epsilon,num_seeds' in (tmp_path / 'dp_seeds.csv').read_text()
  # Each seed trained its own target: its seed, and a different fit of the same records.
  targets = [tmp_path / f'attribute_heart_eps1_seed{s}' / 'target' for s in (0, 1)]
  assert [json.loads((t / 'config.json').read_text())['seed'] for t in targets] == [0, 1]
  losses = [_results(t)['metrics']['train_loss'] for t in targets]
  assert losses[0] != pytest.approx(losses[1], rel=1e-6)
  assert math.isfinite(row['membership_dp_epsilon'])
  # Each membership target's epsilon is accounted at delta = 1 / (100 members), in its results.
  for s in (0, 1):
    metrics = per_seed[s][1]['metrics']
    assert metrics['delta'] == pytest.approx(1 / (100 * metrics['num_members']))
  assert row['membership_delta'] == pytest.approx(1 / (100 * 121))
