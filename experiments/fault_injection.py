"""Fault injection: a run SIGKILLed at random moments and resumed ends as an uninterrupted run.

  ./launch.sh fault_injection --experiment train
  ./launch.sh fault_injection --experiment membership_inference --kills 10 --seed 0 \\
      --workdir runs/faults_membership

For one experiment on its smoke config (EXPERIMENTS), each run a child process
(`python -m experiments.<name> --config ... --workdir ...`), it checks:
  1. an uninterrupted reference run into WORKDIR/reference; its wall time is T;
  2. into WORKDIR/resumed, `--kills` runs, each SIGKILLed (with every process it started):
     `--kills` moments are drawn uniformly in (0, T) from numpy's Generator seeded with
     `--seed` and sorted; run k is killed when, counting the start-up S each run pays again
     (the reference's time until config.json), the runs so far have progressed to moment k
     (`kill_delays`); a run that ends first is noted as such; then one run to the end;
  3. every results.json under WORKDIR/resumed equals the one at the same place under
     WORKDIR/reference, every row and metric, except timing fields (`wall_seconds`, any
     `*_seconds`).
Prints each kill moment and whether it landed before the run ended, then PASS (exit 0) or
FAIL with the first difference (exit 1).
"""
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

from absl import flags
import numpy as np

from medinv.core import cli

# experiment -> (experiments/<module>.py, its smoke config; model inversion at one split, the
# paper's headline split 4, as the smoke run of all three takes many minutes on a CPU)
EXPERIMENTS = {
    'train': ('train', 'configs/train_heart.py:smoke'),
    'model_inversion': ('model_inversion', 'configs/inversion_breastmnist.py:split=4,smoke'),
    'membership_inference': ('membership_inference', 'configs/membership_heart.py:smoke'),
    'sweep': ('sweep', 'configs/sweep_population.py:smoke'),
}

flags.DEFINE_enum('experiment', 'train', list(EXPERIMENTS), 'Experiment to kill and resume.')
flags.DEFINE_integer('kills', 10, 'Runs killed with SIGKILL before the last one.')
flags.DEFINE_integer('seed', 0, 'Seed of the kill moments (numpy Generator).')
flags.DEFINE_string('workdir', None, 'Folder for reference/ and resumed/ (emptied first).')
FLAGS = flags.FLAGS


def is_timing(key: str) -> bool:
  """Whether a results.json field is a wall time, which differs between any two runs."""
  return key.endswith('_seconds')


def first_difference(reference, resumed, where: str = '') -> str | None:
  """The first place where two results.json values differ, timing fields aside.

  Args:
    reference: a value read from the reference run's results.json (dict, list or scalar).
    resumed: the value at the same place in the resumed run's results.json.
    where: the path of these values, for the message.

  Returns:
    `path: reference value != resumed value`, or None when they are equal (NaN equals NaN).
  """
  if isinstance(reference, dict) and isinstance(resumed, dict):
    keys = [k for k in reference if not is_timing(k)]
    extra = sorted(set(resumed) - set(reference) - {k for k in resumed if is_timing(k)})
    if extra:
      return f"{where}: only the resumed run has {extra}"
    for key in keys:
      if key not in resumed:
        return f'{where}.{key}: missing in the resumed run'
      difference = first_difference(reference[key], resumed[key], f'{where}.{key}')
      if difference:
        return difference
    return None
  if isinstance(reference, list) and isinstance(resumed, list):
    if len(reference) != len(resumed):
      return f'{where}: {len(reference)} items != {len(resumed)}'
    for i, (a, b) in enumerate(zip(reference, resumed)):
      difference = first_difference(a, b, f'{where}[{i}]')
      if difference:
        return difference
    return None
  both_nan = (isinstance(reference, float) and isinstance(resumed, float)
              and math.isnan(reference) and math.isnan(resumed))
  if reference == resumed and type(reference) is type(resumed) or both_nan:
    return None
  return f'{where}: {reference!r} != {resumed!r}'


def compare_workdirs(reference_dir: str, resumed_dir: str) -> str | None:
  """The first difference between the two workdirs' results.json files (all of them, at
  every depth: a sweep's runs too), or None when every one is equal."""
  found = [sorted(os.path.relpath(os.path.join(root, 'results.json'), top)
                  for root, _, files in os.walk(top) if 'results.json' in files)
           for top in (reference_dir, resumed_dir)]
  if found[0] != found[1]:
    return f'results.json files differ: reference {found[0]}, resumed {found[1]}'
  for name in found[0]:
    with open(os.path.join(reference_dir, name)) as a, open(os.path.join(resumed_dir, name)) as b:
      difference = first_difference(json.load(a), json.load(b))
    if difference:
      return f'{name}{difference}'
  return None


def command(experiment: str, workdir: str) -> list[str]:
  """The child process's argv for `experiment` on its smoke config into workdir."""
  module, config = EXPERIMENTS[experiment]
  return [sys.executable, '-m', f'experiments.{module}', f'--config={config}',
          f'--workdir={workdir}']


def run(argv: list[str], log_path: str, kill_after: float | None = None,
        watch: str | None = None) -> tuple[bool, float | None]:
  """Runs argv (output appended to log_path); SIGKILLs it and every process it started
  `kill_after` seconds after its start, unless it ended first.

  Returns:
    (whether the kill landed (False: the run ended first, or kill_after is None), seconds
    until the file `watch` existed (None if it never did)).

  Raises:
    RuntimeError: the run ended by itself with a nonzero exit code.
  """
  start, seen = time.time(), None
  with open(log_path, 'a') as log:
    child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
    while child.poll() is None:
      if watch and seen is None and os.path.exists(watch):
        seen = time.time() - start
      if kill_after is not None and time.time() - start >= kill_after:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        return True, seen
      time.sleep(0.02)
  if watch and seen is None and os.path.exists(watch):
    seen = time.time() - start
  if child.returncode:
    raise RuntimeError(f'{" ".join(argv)} exited with {child.returncode}; see {log_path}')
  return False, seen


def kill_moments(seed: int, kills: int, start: float, end: float) -> list[float]:
  """`kills` moments uniform in (start, end), ascending, from numpy's Generator seeded with
  seed."""
  return sorted(float(t) for t in np.random.default_rng(seed).uniform(start, end, size=kills))


def kill_delays(moments: list[float], startup: float) -> list[float]:
  """Seconds after its start to kill each resumed run so that, together, the runs stop at
  `moments` of the uninterrupted run's progress: the first at moments[0]; each later run
  pays the start-up again, then goes on from the previous moment."""
  return [m if i == 0 else startup + m - moments[i - 1] for i, m in enumerate(moments)]


def check(experiment: str, kills: int, seed: int, workdir: str) -> str | None:
  """Runs the fault-injection check (the module docstring), printing each kill.

  Returns:
    The first difference between the resumed and reference results, or None (PASS).
  """
  shutil.rmtree(workdir, ignore_errors=True)
  reference, resumed = os.path.join(workdir, 'reference'), os.path.join(workdir, 'resumed')
  os.makedirs(workdir)
  start = time.time()
  _, startup = run(command(experiment, reference), os.path.join(workdir, 'reference.log'),
                   watch=os.path.join(reference, 'config.json'))
  seconds = time.time() - start
  startup = startup or 0.0
  print(f'{experiment}: reference run {seconds:.1f}s ({startup:.1f}s start-up, until '
        f'config.json) in {reference}', flush=True)
  log_path = os.path.join(workdir, 'resumed.log')
  moments = kill_moments(seed, kills, 0.0, seconds)
  for i, (moment, delay) in enumerate(zip(moments, kill_delays(moments, startup))):
    landed, _ = run(command(experiment, resumed), log_path, kill_after=delay)
    print(f'kill {i + 1}/{kills} at {moment:.2f}s of the reference run ({delay:.2f}s into '
          f'this run): {"killed before the run ended" if landed else "the run ended first"}',
          flush=True)
  run(command(experiment, resumed), log_path)
  return compare_workdirs(reference, resumed)


def main(argv):
  del argv
  workdir = FLAGS.workdir or f'runs/fault_injection_{FLAGS.experiment}'
  difference = check(FLAGS.experiment, FLAGS.kills, FLAGS.seed, workdir)
  if difference:
    print(f'FAIL: {FLAGS.experiment} resumed after {FLAGS.kills} kills differs from the '
          f'uninterrupted run: {difference}')
    sys.exit(1)
  print(f'PASS: {FLAGS.experiment} resumed after {FLAGS.kills} kills (seed {FLAGS.seed}) equals '
        'the uninterrupted run, timing fields aside')


if __name__ == '__main__':
  cli.run(main, config_flag=None)
