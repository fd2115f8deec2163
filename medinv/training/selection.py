"""Choosing a training recipe on validation accuracy: candidates x repeats, the best mean wins.

A selection config is a train config (configs/train_*.py) plus

    config.select.axes.train.num_epochs = (20, 40)          # candidates: the product of axes
    config.select.axes.train.learning_rate = (1e-3, 3e-3)
    config.select.repeats.seed = (0, 1, 2)                  # each scored as its mean over these
    config.select.repeats.data.validation_seed = (0, 1)     # (product too)

Every (candidate, repeat) trains with medinv.training.trainer in workdir/<candidate>/<repeat>
(a run whose results.json was written for the same config is reused, so a killed selection
rerun with the same command trains only what is missing). A candidate's score is its mean
validation accuracy over the repeats; the chosen candidate has the highest (ties: the lower
mean validation loss, then the first in grid order). Test accuracy enters nothing that is
chosen: results.json / results.csv give it for the chosen candidate only, the number to
report. Every row gives the mean seconds one training took (model build, compilation,
training and evaluation; the data is loaded once per data config).
"""
from __future__ import annotations

import copy
import itertools
import json
import os
import re
import time
from typing import Callable

import ml_collections

from medinv import data as data_lib
from medinv.core import axes as axes_lib
from medinv.core import locks
from medinv.core import report
from medinv.metrics import intervals
from medinv.training import trainer


def _product(tree) -> list[dict]:
  """Every combination of the axes in `tree` (nested like the config) as {path: value}."""
  flat = axes_lib.flatten(tree)
  for path, values in flat.items():
    if not isinstance(values, (tuple, list)) or not values:
      raise ValueError(f'config.select: axis {path!r} needs a non-empty tuple of values, got '
                       f'{values!r}')
  return [dict(zip(flat, values)) for values in itertools.product(*flat.values())]


def _name(overrides: dict) -> str:
  """'learning_rate=0.001,num_epochs=20' from {path: value} (leaf names)."""
  parts = [f'{path.rsplit(".", 1)[-1]}={value:g}' if isinstance(value, float) else
           f'{path.rsplit(".", 1)[-1]}={value}' for path, value in overrides.items()]
  return re.sub(r'[^A-Za-z0-9_.=,+-]', '-', ','.join(parts)) or 'default'


def run_configs(config) -> list[tuple[str, str, dict, ml_collections.ConfigDict]]:
  """(candidate name, repeat name, candidate overrides, run config) of every run, in order.

  Raises:
    ValueError: an axis that is no config field, or a run config trainer.validate refuses.
  """
  base = ml_collections.ConfigDict(copy.deepcopy(config.to_dict()))
  del base['select']
  runs = []
  for candidate in _product(config.select.axes):
    for repeat in _product(config.select.get('repeats')):
      run_config = ml_collections.ConfigDict(copy.deepcopy(base.to_dict()))
      for path, value in {**candidate, **repeat}.items():
        try:
          axes_lib.set_path(run_config, path, value)
        except KeyError:
          raise ValueError(f'config.select: axis {path!r} is not a field of the config') from None
      try:
        trainer.validate(run_config)
      except ValueError as e:
        raise ValueError(f'config.select: candidate {_name(candidate)}, repeat '
                         f'{_name(repeat)}: {e}') from None
      runs.append((_name(candidate), _name(repeat), candidate, run_config))
  return runs


def check_validation(config) -> None:
  """A record dataset has no validation split of its own: config.data.validation_fraction
  must carve one (images without one are refused when loaded, `_train_runs`)."""
  if data_lib.is_records(config.data.dataset) and not config.data.validation_fraction:
    raise ValueError(f'config.data.validation_fraction is 0: {config.data.dataset} has no '
                     'validation split to choose a recipe on; set it in (0, 1), e.g. 0.2')


def _train_runs(runs, workdir: str, log: Callable[[str], None]) -> list[dict]:
  """Trains (or reuses) every run; returns each run's results.json."""
  tasks, results = {}, []
  for i, (candidate, repeat, _, run_config) in enumerate(runs):
    run_dir = os.path.join(workdir, candidate, repeat)
    done = report.completed_results(run_dir, run_config)
    if done is None:
      data_key = json.dumps(run_config.data.to_dict(), sort_keys=True)
      if data_key not in tasks:
        tasks[data_key] = data_lib.load_task(run_config.data)
      if tasks[data_key].x_val is None:
        raise ValueError(f'config.data: dataset {run_config.data.dataset} has no validation '
                         'split; set config.data.validation_fraction in (0, 1) to carve one')
      trainer.train_and_evaluate(run_config, run_dir, task=tasks[data_key])
      done = report.completed_results(run_dir, run_config)
    results.append(done)
    metrics = done['metrics']
    log(f'[{i + 1}/{len(runs)}] {candidate} {repeat}: validation accuracy '
        f'{metrics["validation_accuracy"]:.3f} ({done["wall_seconds"]:.1f}s)')
  return results


def candidate_rows(runs, results: list[dict]) -> list[dict]:
  """One row per candidate: its overrides and its means over the repeats; the chosen
  candidate (highest mean validation accuracy, then lowest mean validation loss) with
  chosen True and its test accuracy, every other with test accuracy None."""
  groups: dict[str, list] = {}
  for (candidate, _, overrides, _), result in zip(runs, results):
    groups.setdefault(candidate, []).append((overrides, result))
  rows = []
  for candidate, members in groups.items():
    metrics = [result['metrics'] for _, result in members]
    accuracy, low, high = intervals.mean_and_interval([m['validation_accuracy'] for m in metrics])
    rows.append({
        'candidate': candidate, **{path.rsplit('.', 1)[-1]: value
                                   for path, value in members[0][0].items()},
        'repeats': len(members), 'validation_accuracy': accuracy,
        'validation_accuracy_low': low, 'validation_accuracy_high': high,
        'validation_loss': sum(m['validation_loss'] for m in metrics) / len(metrics),
        'train_accuracy': sum(m['train_accuracy'] for m in metrics) / len(metrics),
        'seconds': sum(result['wall_seconds'] for _, result in members) / len(members)})
  best = max(range(len(rows)), key=lambda i: (rows[i]['validation_accuracy'],
                                             -rows[i]['validation_loss'], -i))
  for i, row in enumerate(rows):
    row['chosen'] = i == best
    tests = [result['metrics']['test_accuracy'] for _, result in groups[row['candidate']]]
    row['test_accuracy'], row['test_accuracy_low'], row['test_accuracy_high'] = (
        intervals.mean_and_interval(tests) if i == best else (None, None, None))
  return rows


def run(config, workdir: str, log: Callable[[str], None] = print) -> dict:
  """Trains every candidate recipe of config.select at every repeat and chooses one.

  Args:
    config: a train config with a `select` block (the module docstring).
    workdir: where the runs and results.json / results.csv go.
    log: where progress lines go.

  Returns:
    The results dict as written to results.json: a row per candidate (`candidate_rows`);
    metrics: the chosen candidate's row index, validation and test accuracy and seconds.
  """
  check_validation(config)
  runs = run_configs(config)
  with locks.workdir_lock(workdir):
    start = time.time()
    report.write_config(workdir, config)
    rows = candidate_rows(runs, _train_runs(runs, workdir, log))
    index = next(i for i, row in enumerate(rows) if row['chosen'])
    metrics = {'candidates': len(rows), 'repeats': rows[index]['repeats'], 'chosen_row': index,
               **{f'chosen_{k}': rows[index][k] for k in ('validation_accuracy',
                                                          'test_accuracy', 'seconds')}}
    results = report.write_results(workdir, 'select', metrics, rows, time.time() - start)
  log(summary_table(rows))
  return results


def summary_table(rows: list[dict]) -> str:
  """One line per candidate: mean validation accuracy with its interval, seconds; the chosen
  one marked and given its test accuracy."""
  width = max(len('candidate'), *(len(row['candidate']) for row in rows))
  lines = [f'{"candidate":<{width}}  validation acc. (95% CI)  seconds  test acc.']
  for row in rows:
    test = f'{row["test_accuracy"]:.3f}  <- chosen' if row['chosen'] else ''
    lines.append(f'{row["candidate"]:<{width}}  {row["validation_accuracy"]:.3f} '
                 f'[{row["validation_accuracy_low"]:.3f}, {row["validation_accuracy_high"]:.3f}]'
                 f'{"":>6}  {row["seconds"]:7.1f}  {test}')
  return '\n'.join(lines)
