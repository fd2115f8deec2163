"""Every config in configs/: parses its argument, loads, and runs end to end with `smoke`.

Each config runs through the runner its name maps to (RUNNER_BY_PREFIX), on tiny data: the
embedded datasets, and for the manual-download datasets small files in their published
layouts (tests/fixture_files.py, one folder passed as every config's data.manual_dir).

A config runs end to end in this module unless
- RUN_INSIDE names a config whose smoke run here contains it: that config (or one of its
  study parts) holds the same value for every field of the contained config, checked field by
  field, and the run's workdir shows the contained config's output; or
- RUN_ELSEWHERE names another test that runs it with `smoke`: the test is checked to exist,
  to be neither skipped nor excluded from the default run, and its file to name the config.
So a new config runs here by default.
"""
import ast
import glob
import importlib
import json
import os

import pytest

from configs import common
from configs import inversion_breastmnist
from medinv import data as data_lib
from medinv.study import runners
from medinv.study import study
from medinv.study import sweep
from medinv.training import selection
from medinv.training import trainer

TESTS = os.path.dirname(os.path.abspath(__file__))
CONFIG_FILES = sorted(glob.glob(os.path.join(TESTS, '..', '..', 'configs', '*.py')))
CONFIG_NAMES = [os.path.basename(p)[:-3] for p in CONFIG_FILES
                if os.path.basename(p) not in ('__init__.py', 'common.py', 'components.py')]

# (name prefix, runner, results.json's 'experiment'); the first matching prefix wins. A config
# whose prefix is not here goes to the runner whose study prefix its name starts with
# (runners.for_part: attribute_*, inversion_*, membership_*, as study parts are named).
RUNNER_BY_PREFIX = (
    ('train_', trainer.train_and_evaluate, 'train'),
    ('sweep_', lambda config, workdir: sweep.run_sweep(config, workdir, log=lambda line: None),
     'sweep'),
    ('select_', lambda config, workdir: selection.run(config, workdir, log=lambda line: None),
     'select'),
    ('demo', study.run, 'study'),
    ('dp', study.run, 'study'),
    ('split_defenses', study.run, 'study'),
    ('study_', study.run, 'study'),
    ('paper', study.run, 'study'),
)

# The smoke argument, where it is more than 'smoke'. paper's MedMNIST part reads
# train_medmnist's default file, so the paper run also runs train_medmnist's smoke config.
SMOKE_ARGS = {'paper': 'smoke,medmnist=pneumoniamnist'}


def _narrow_paper(config):
  """paper's smoke run, narrowed for the default suite (test_paper_smoke_exact, marked
  `paper`, runs it whole): its attribute_heart part is run by tests/attribute/test_experiment.py
  and the demo, and each model-inversion part runs one split, one attacker view and one attack
  under fixed model perturbation (the core of what its dataset changes), whose code, grid and
  feature defenses tests/inversion/test_reconstruct.py and the demo run in full."""
  del config.parts['attribute_heart']
  for name, part in config.parts.items():
    if name.startswith('inversion_'):
      for field, value in (('splits', (2,)), ('knows_defense', (True,))):
        assert field in part.attack, f'paper.{name}.attack has no {field}: update _narrow_paper'
        part.attack[field] = value
      inversion_breastmnist.keep_core(part, ('inverse_network',))
      part.defense.model_perturbation.modes = ('fixed',)
  return config


def _narrow_inversion_sweep(config):
  """sweep_inversion's smoke run on one split with the two attacks that prepare stages (the
  whole smoke sweep runs on 1 and 2 processes in tests/core/test_sharding.py, marked `paper`)."""
  config.sweep.axes.attack.splits = ((2,),)
  config.attack.names = ('inverse_network', 'query_free')
  return config


def _narrow_membership_sweep(config):
  """sweep_membership's smoke run undefended (membership_heart's smoke run, in
  tests/membership/test_experiment.py, runs every defense): two seeds, each a target and its
  shadows."""
  config.defense.names = ()
  return config


# Changes to the smoke config that keep the default suite short; each says why.
NARROW = {'paper': _narrow_paper, 'sweep_inversion': _narrow_inversion_sweep,
          'sweep_membership': _narrow_membership_sweep}

RUN_INSIDE = {name: 'paper' for name in (
    'attribute_cardio', 'train_cardio',  # paper's part attribute_cardio and its target
    'train_mias', 'train_cbis_ddsm', 'train_medmnist')}  # the targets of its inversion_* parts

RUN_ELSEWHERE = {
    'attribute_heart': ('attribute/test_experiment.py', 'heart_run'),  # with extensions registered
    'demo': ('e2e/test_demo.py', 'smoke_run'),
    'dp': ('training/test_dp_sgd.py', 'test_dp_study_smoke_reports_every_attack_against_epsilon'),
    'dp_audit': ('membership/test_audit.py', 'test_smoke_audit_writes_rows_and_scores_and_resumes'),
    'split_defenses': ('defenses/test_features.py', 'test_split_defenses_study_smoke'),
    'membership_heart': ('membership/test_experiment.py', 'test_membership_heart_smoke_end_to_end'),
    # The demo's membership_breastmnist part.
    'membership_breastmnist': ('e2e/test_demo.py', 'smoke_run'),
    'inversion_breastmnist': ('inversion/test_reconstruct.py',
                              'test_model_inversion_smoke_end_to_end'),
    'train_breastmnist': ('training/test_trainer.py', 'test_breastmnist_smoke_trains_cnn'),
    'train_heart': ('training/test_trainer.py', 'test_results_files'),
    'select_heart': ('training/test_selection.py', 'selected'),
    # From the command line on the UCI table (or one in its layout), with its parts and target.
    **{name: ('e2e/test_own_csv.py', 'test_uci_table_study_from_the_command_line')
       for name in ('study_csv', 'attribute_csv', 'membership_csv', 'train_csv')},
    # One process and two processes (--hosts 2), a full smoke sweep but for one run axis.
    'sweep_population': ('core/test_sharding.py', 'test_two_processes_equal_one_process'),
}
RUN_HERE = [name for name in CONFIG_NAMES if name not in RUN_INSIDE and name not in RUN_ELSEWHERE]


def runner_for(name: str):
  """(run(config, workdir), the 'experiment' its results.json names)."""
  for prefix, run, experiment in RUNNER_BY_PREFIX:
    if name.startswith(prefix):
      return run, experiment
  try:
    runner = runners.for_part(name)
  except ValueError as e:
    raise LookupError(f'configs/{name}.py: no runner for this name; add its prefix to '
                      f'RUNNER_BY_PREFIX in tests/e2e/test_configs.py ({e})') from None
  return runner.run, next(key for key, value in runners.RUNNERS.items() if value is runner)


def smoke_config(name: str, data_dir: str, manual_dir: str, narrow: bool = True):
  config = importlib.import_module(f'configs.{name}').get_config(SMOKE_ARGS.get(name, 'smoke'))
  if narrow and name in NARROW:
    config = NARROW[name](config)
  for part in config.parts.values() if 'parts' in config else [config]:
    part.data.data_dir = data_dir
    if data_lib.reads_manual_dir(part.data.dataset):  # the others refuse one
      part.data.manual_dir = manual_dir
  return config


@pytest.fixture(scope='module')
def smoke_runs(tmp_path_factory, data_dir, manual_dir):
  """run(name) -> (config, workdir, results): each config's smoke run, once per module."""
  done = {}

  def run(name):
    if name not in done:
      config = smoke_config(name, data_dir, manual_dir)
      workdir = str(tmp_path_factory.mktemp(name))
      runner, _ = runner_for(name)
      runner(config, workdir)
      with open(os.path.join(workdir, 'results.json')) as f:
        done[name] = config, workdir, json.load(f)
    return done[name]

  return run


# ------------------------------------------------------------------------------- loading

def test_parse_arg():
  args = common.parse_arg('split=4,smoke', split=2, smoke=False, lr=0.1)
  assert args.split == 4 and args.smoke is True and args.lr == 0.1
  assert common.parse_arg(None, smoke=False).smoke is False
  with pytest.raises(ValueError, match="unknown config argument 'splt'.*allowed: smoke, split"):
    common.parse_arg('splt=4', split=2, smoke=False)
  with pytest.raises(ValueError, match='expected int'):
    common.parse_arg('split=four', split=2)
  with pytest.raises(ValueError, match='needs a value'):
    common.parse_arg('split', split=2)


@pytest.mark.parametrize('name', CONFIG_NAMES)
def test_config_loads_default_and_smoke(name):
  module = importlib.import_module(f'configs.{name}')
  assert module.__doc__ and './launch.sh' in module.__doc__  # Runnable example commands.
  default, smoke = module.get_config(), module.get_config('smoke')
  assert default.get('seed') == smoke.get('seed')  # smoke shrinks sizes, not the seed.
  assert default.to_dict() != smoke.to_dict()
  runner_for(name)  # Every config has a runner.


# ---------------------------------------------------------------------------- running

@pytest.mark.parametrize('name', RUN_HERE)
def test_smoke_runs_end_to_end(name, smoke_runs):
  _check_run(name, *smoke_runs(name))


@pytest.mark.paper
def test_paper_smoke_exact(data_dir, manual_dir, tmp_path):
  config = smoke_config('paper', data_dir, manual_dir, narrow=False)
  study.run(config, str(tmp_path))
  with open(tmp_path / 'results.json') as f:
    _check_run('paper', config, str(tmp_path), json.load(f))


def _check_run(name, config, workdir, results):
  _, experiment = runner_for(name)
  assert results['experiment'] == experiment and results['rows']
  with open(os.path.join(workdir, 'results.csv')) as f:
    assert len(f.read().splitlines()) == len(results['rows']) + 1
  if 'parts' in config:  # A study: every part ran (none skipped for missing files).
    assert not [k for k in results['metrics'] if k.endswith('.skipped')], results['metrics']
    assert {r['part'] for r in results['rows']} == set(config.parts)
    assert os.path.isfile(os.path.join(workdir, 'report.md'))
  if 'sweep' in config:  # A sweep: every run ran, each in its own folder.
    names = [run.name for run in sweep.expand_runs(config)]
    assert {r['run'] for r in results['rows']} == set(names)
    for run_name in names:
      assert os.path.isfile(os.path.join(workdir, run_name, 'results.json')), run_name
    seeds = sweep.split_axes(config)[1].get('seed', ())
    if len(seeds) > 1 and len(names) == len(seeds):  # seeds.json: every row over the seeds
      _check_over_seeds(workdir, results['rows'], seeds)


def _check_over_seeds(workdir, rows, seeds):
  with open(os.path.join(workdir, 'seeds.json')) as f:
    over_seeds = json.load(f)
  per_seed = [[row for row in rows if row['seed'] == seed] for seed in seeds]
  assert len(over_seeds) == len(per_seed[0])
  varying = 0
  for i, summary in enumerate(over_seeds):
    assert summary['num_seeds'] == len(seeds)
    for column in [k[:-len('_seed_low')] for k in summary if k.endswith('_seed_low')]:
      values = [run_rows[i][column] for run_rows in per_seed]
      assert summary[column] == pytest.approx(sum(values) / len(values))
      low, high = summary[f'{column}_seed_low'], summary[f'{column}_seed_high']
      if isinstance(low, float):  # 'nan' (JSON) where a seed's value is not finite
        assert low <= summary[column] <= high
      varying += 1
  assert varying, 'no column varies over the seeds'


def _fields(config) -> dict:
  """config as a flat {dotted path: value}, without where the data lives."""
  flat = {}

  def walk(node, prefix):
    for key, value in node.items():
      if isinstance(value, dict):
        walk(value, f'{prefix}{key}.')
      elif f'{prefix}{key}' not in ('data.data_dir', 'data.manual_dir'):
        flat[f'{prefix}{key}'] = value
  walk(config.to_dict(), '')
  return flat


@pytest.mark.parametrize('name', sorted(RUN_INSIDE))
def test_smoke_run_inside_another(name, smoke_runs, data_dir, manual_dir):
  container = RUN_INSIDE[name]
  assert container in RUN_HERE, f'{name} is inside {container}, which runs elsewhere'
  config = smoke_config(name, data_dir, manual_dir)
  container_config, workdir, _ = smoke_runs(container)
  wanted = _fields(config)
  places = {part: os.path.join(workdir, part) for part in container_config.parts} if (
      'parts' in container_config) else {'': workdir}
  found = []
  for part, part_dir in places.items():
    held = _fields(container_config.parts[part] if part else container_config)
    if all(key in held and held[key] == value for key, value in wanted.items()):
      found.append(part_dir)
  assert found, f'no part of {container} smoke holds every field of {name} smoke'
  _, experiment = runner_for(name)
  checked = 0
  for part_dir in found:
    if experiment == 'train':  # An experiment trains its target in workdir/target,
      part_dir = os.path.join(part_dir, 'target')
      if not os.path.isdir(part_dir):  # but membership inference inside its population.
        continue
    with open(os.path.join(part_dir, 'results.json')) as f:
      results = json.load(f)
    assert results['rows'] and results['experiment'] == experiment
    checked += 1
  assert checked, f'no part of {container} smoke shows the output of {name} smoke'


def _test_function(filename: str, function: str):
  path = os.path.join(TESTS, '..', filename)
  with open(path) as f:
    source = f.read()
  tree = ast.parse(source)
  assert not any(isinstance(node, ast.Assign) and any(
      getattr(t, 'id', '') == 'pytestmark' for t in node.targets) for node in tree.body), (
      f'{filename} marks every test (pytestmark)')
  for node in tree.body:
    if isinstance(node, ast.FunctionDef) and node.name == function:
      return source, node
  raise AssertionError(f'{filename} has no function {function}')


@pytest.mark.parametrize('name', sorted(RUN_ELSEWHERE))
def test_smoke_run_elsewhere_exists(name):
  filename, function = RUN_ELSEWHERE[name]
  source, node = _test_function(filename, function)
  for decorator in node.decorator_list:
    text = ast.unparse(decorator)
    assert not any(word in text for word in ('skip', 'paper', 'xfail')), (filename, text)
  assert 'pytest.skip(' not in ast.unparse(node), f'{filename}::{function} may skip'
  assert name in source and 'smoke' in source, f'{filename} does not run {name} with smoke'


def test_tables_name_existing_configs():
  for table in (SMOKE_ARGS, NARROW, RUN_INSIDE, RUN_ELSEWHERE):
    stale = sorted(set(table) - set(CONFIG_NAMES))
    assert not stale, f'tests/test_configs.py names configs that are gone: {stale}'
  assert not set(RUN_INSIDE) & set(RUN_ELSEWHERE)
