"""`./launch.sh benchmark` checks its inputs before it times anything.

The benchmark itself is not run here (it takes minutes); these runs stop or skip before the
first timed program.
"""
import os
import subprocess
import sys

from experiment_runs import error_line
from medinv.core import errors

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_benchmark(cwd, *flags):
  env = {k: v for k, v in os.environ.items() if k != errors.DEBUG_ENV}
  env.update(PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='3', NO_GCE_CHECK='true')
  return subprocess.run([sys.executable, '-m', 'experiments.benchmark', *flags], cwd=cwd,
                        env=env, capture_output=True, text=True, timeout=300)


def test_unknown_part_is_one_error_line(tmp_path):
  result = run_benchmark(tmp_path, '--parts=rmle,bogus')
  error_line(result, 2, '--parts: unknown bogus; allowed: rmle, rmle_program')
  assert 'target-steps/s' not in result.stdout


def test_missing_default_cardio_skips_its_parts_with_a_line(tmp_path, data_dir):
  # The default --cardio_dir is ../shared/data/cardio from the working directory: absent here.
  result = run_benchmark(tmp_path, '--parts=population,map')
  assert result.returncode == 0, result.stderr[-2000:]
  lines = [line for line in result.stdout.splitlines() if 'skipped' in line]
  assert len(lines) == 1, result.stdout
  assert 'population and map skipped' in lines[0]
  assert '--cardio_dir=../shared/data/cardio' in lines[0]
  assert 'models/s' not in result.stdout  # nothing was timed


def test_named_cardio_folder_must_hold_the_file(tmp_path, data_dir):
  empty = tmp_path / 'no_cardio'
  empty.mkdir()
  result = run_benchmark(tmp_path, '--parts=map,membership', f'--cardio_dir={empty}')
  line = error_line(result, 1)
  assert line.startswith(f'error: --cardio_dir={empty}: cardio')
  assert 'membership:' not in result.stdout  # stopped before the first timed part
