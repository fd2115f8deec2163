"""Study parts side by side: each part in its own worker process, the heaviest first.

Most of a part's compilation is single-threaded, so while one part compiles another part may
compute. Measured on 2 cores: the demo's four parts in 4m17s with 2 workers against 5m19s
with 1 (model inversion in one worker, the rest in the other); with one model-inversion part
that dominates the rest, 13m05s against 13m07s. `run_parts` keeps what `medinv.study.study.run`
does for one worker (reuse finished parts, skip a part whose data is missing) and adds:
  - datasets are built in this process before any worker starts, so two workers never build
    the same TFDS dataset at once (a DataError here skips every part that reads it);
  - parts begin in `stages.order` (the heaviest first) on the first free worker, a fresh
    `spawn`ed process that shares this process's compilation cache, logging and environment;
  - a part's error stops the study: the workers are terminated and the error raised here.
Each part writes only into its own workdir/<part>, so the results equal a one-worker run.
"""
from __future__ import annotations

import multiprocessing
import os
import queue
from typing import Callable

from absl import logging
import jax

from medinv import data as data_lib
from medinv.core import cli
from medinv.core import locks
from medinv.core import progress
from medinv.core import report
from medinv.study import runners
from medinv.data import DataError


def _settings() -> dict:
  """What a worker copies from this process: the compilation cache and the log level."""
  return {'cache_dir': jax.config.jax_compilation_cache_dir,
          'cache_min_seconds': jax.config.jax_persistent_cache_min_compile_time_secs,
          'verbosity': logging.get_verbosity()}


def _init_worker(settings: dict) -> None:
  cli.load_extensions()  # the models, attacks and defenses the parent's --extension registered
  if settings['cache_dir']:
    jax.config.update('jax_compilation_cache_dir', settings['cache_dir'])
    jax.config.update('jax_persistent_cache_min_compile_time_secs',
                      settings['cache_min_seconds'])
  logging.use_absl_handler()
  logging.set_verbosity(settings['verbosity'])
  progress.quiet_library_logs()


def reused_results(part_config, part_dir: str) -> dict | None:
  """The part's results when workdir/<part> holds them for this config (marked 'reused')."""
  reused = report.completed_results(part_dir, part_config)
  return None if reused is None else {**reused, 'reused': True}


def compute_part(name: str, part_config, part_dir: str) -> dict:
  """Runs one part afresh, holding part_dir's lock (medinv.core.locks); returns its results
  dict."""
  with locks.workdir_lock(part_dir):
    stale = os.path.join(part_dir, 'results.json')
    if os.path.exists(stale):
      os.remove(stale)  # A killed rerun must not leave old results beside a new config.
    return runners.for_part(name).run(part_config, part_dir)


def _build_datasets(indices, names, parts, skip: Callable[[int, DataError], None]
                    ) -> list[int]:
  """Builds (or finds) the dataset of every part in `indices` here; skips the parts whose
  data fails to load and returns the others."""
  loaded, errors, ready = set(), {}, []
  for i in indices:
    data_config = parts[names[i]].data
    key = data_config.to_json()
    if key not in loaded and key not in errors:
      try:
        data_lib.load_task(data_config)
        loaded.add(key)
      except DataError as e:
        errors[key] = e
    if key in errors:
      skip(i, errors[key])
    else:
      ready.append(i)
  return ready


def run_parts(names: list[str], parts, workdir: str, stages: progress.Stages,
              finish: Callable) -> None:
  """Runs the parts `names` of the ConfigDict `parts` on `stages.workers` processes.

  stages: the study's progress (its workers and order); finish(i, results, error) records
  part i's results dict, or the DataError that skipped it.
  """
  todo = []
  for i, name in enumerate(names):
    reused = reused_results(parts[name], os.path.join(workdir, name))
    if reused is not None:
      stages.begin(i, parts[name].data.dataset)
      finish(i, reused, None)
    else:
      todo.append(i)

  def skip(i, error):
    stages.begin(i, parts[names[i]].data.dataset)
    finish(i, None, error)
  ready = set(_build_datasets(todo, names, parts, skip))
  queued = [i for i in stages.order if i in ready]
  if not queued:
    return
  done: queue.Queue = queue.Queue()
  context = multiprocessing.get_context('spawn')
  with context.Pool(min(stages.workers, len(queued)), initializer=_init_worker,
                    initargs=(_settings(),)) as pool:  # leaving terminates the workers
    running = 0
    while queued or running:
      while queued and running < stages.workers:
        i = queued.pop(0)
        stages.begin(i, parts[names[i]].data.dataset)
        pool.apply_async(compute_part, (names[i], parts[names[i]],
                                        os.path.join(workdir, names[i])),
                         callback=lambda results, i=i: done.put((i, results, None)),
                         error_callback=lambda error, i=i: done.put((i, None, error)))
        running += 1
      i, results, error = done.get()
      running -= 1
      if error is not None and not isinstance(error, DataError):
        raise error
      finish(i, results, error)
