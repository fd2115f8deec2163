"""The whole study in one run: attribute inference and model inversion, with a report.

`run(config, workdir)` runs each part of `config.parts` (an ordered ConfigDict; a part named
`attribute_*` is an attribute-inference config, `inversion_*` a model-inversion config,
`membership_*` a membership-inference config) in
workdir/<part>, then writes workdir/report.md, results.json, results.csv and
privacy_utility.png. A part whose results.json was written for the same config is reused,
and target models resume from their orbax checkpoints, so a killed or repeated run redoes
only what is missing. A part whose dataset files are absent is skipped with a line in the
report saying why. The workdir is locked for the whole run (medinv.core.locks).
"""
from __future__ import annotations

import os
import time

import jax

from medinv.core import locks
from medinv.core import progress
from medinv.core import report
from medinv.study import runners
from medinv.study import split_defenses as study_defenses
from medinv.study import dp as study_dp
from medinv.study import report as study_report
from medinv.study import sources
from medinv.study import workers as study_workers
from medinv.data import DataError

def run_part(name: str, part_config, part_dir: str) -> dict:
  """Runs (or reuses) one part; returns its results dict."""
  return (study_workers.reused_results(part_config, part_dir)
          or study_workers.compute_part(name, part_config, part_dir))


def num_workers(config) -> int:
  """How many parts run at once (`config.workers`, medinv.study.workers; 0 or absent: 2 on a
  CPU host with two or more cores, else 1)."""
  workers = int(config.get('workers', 0) or 0)
  if workers < 0:
    raise ValueError(f'workers must be >= 0 (0: automatic), got {workers}')
  if workers == 0:
    workers = 2 if _cpu_cores() >= 2 else 1
  return min(workers, len(config.parts))


def _cpu_cores() -> int:
  """The host's cores when JAX computes on the CPU, else 0 (an accelerator host)."""
  return (os.cpu_count() or 1) if jax.default_backend() == 'cpu' else 0


def run(config, workdir: str) -> dict:
  """Runs every part and writes the report; returns the combined results dict.

  workdir is locked meanwhile (medinv.core.locks): a second study into it is refused, or
  waits when asked to; each part locks its own workdir/<part> too, in whichever process
  runs it.
  """
  part_runners = [runners.for_part(name) for name in config.parts.keys()]
  with locks.workdir_lock(workdir):
    return _run(config, workdir, part_runners)


def _run(config, workdir: str, part_runners: list[runners.Runner]) -> dict:
  names = list(config.parts.keys())
  start = time.time()
  os.makedirs(workdir, exist_ok=True)
  report.write_config(workdir, config)
  workers = num_workers(config)
  # Time left: each part's units of work x the seconds per unit measured in this run.
  stages = progress.Stages(names, [runner.weight_of(config.parts[name])
                                  for name, runner in zip(names, part_runners)],
                           workers=workers)
  parts, skipped = {}, {}

  def finish(i: int, results: dict | None, error: DataError | None) -> None:
    name = names[i]
    if error is not None:
      skipped[name] = str(error).strip().splitlines()[0]
      stages.end(i, f'skipped ({skipped[name]})', reused=True)
      return
    parts[name] = results
    how = 'reused earlier results' if results.get('reused') else (
        f'{progress.format_seconds(results["wall_seconds"])}')
    stages.end(i, how, reused=bool(results.get('reused')))

  if workers == 1:
    for i, name in enumerate(names):
      stages.begin(i, f'{config.parts[name].data.dataset}')
      try:
        results, error = run_part(name, config.parts[name], os.path.join(workdir, name)), None
      except DataError as e:
        results, error = None, e
      finish(i, results, error)
  else:
    study_workers.run_parts(names, config.parts, workdir, stages, finish)
  parts = {name: parts[name] for name in names if name in parts}  # the config's order
  rows = [{'part': name, **row} for name, results in parts.items() for row in results['rows']]
  metrics = {f'{name}.{key}': value for name, results in parts.items()
             for key, value in results['metrics'].items()}
  metrics.update({f'{name}.skipped': reason for name, reason in skipped.items()})
  combined = report.write_results(workdir, 'study', metrics, rows, time.time() - start)
  extra = []
  if parts and study_dp.is_dp_study({name: config.parts[name] for name in parts}):
    study_dp.figure(parts, config.parts, os.path.join(workdir, 'privacy_utility_dp.png'))
    extra.append(study_dp.section(parts, config.parts))
    study_dp.write_seed_files(parts, config.parts, workdir)
  if parts and study_defenses.is_defense_study({name: config.parts[name] for name in parts}):
    study_defenses.figures(parts, config.parts, workdir)
    extra.append(study_defenses.section(parts, config.parts))
  for name, results in parts.items():
    results['_data'] = sources.describe(config.parts[name].data)
  # An empty or absent config.title: named after the data the parts ran on.
  title = config.get('title') or sources.title(r['_data']['name'] for r in parts.values())
  study_report.write(workdir, parts, skipped, title=title, extra_sections=extra,
                     notes=tuple(config.get('notes', ())))
  return combined
