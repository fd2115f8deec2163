"""Runs an experiment's command line as a user would, for the end-to-end tests."""
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = 'configs/train_heart.py:smoke'  # run_train's config
DEBUG_ENV = 'MEDINV_DEBUG'  # medinv.core.errors.DEBUG_ENV


def model_inversion_smoke(workdir: str, data_dir: str, *overrides: str) -> None:
  """experiments/model_inversion.py on configs/inversion_breastmnist.py:split=2,smoke with
  `overrides` (flags), into workdir, building data in data_dir; raises if it fails."""
  env = dict(os.environ, PYTHONPATH=REPO, MEDINV_DATA_DIR=data_dir, JAX_PLATFORMS='cpu')
  config = os.path.join(REPO, 'configs', 'inversion_breastmnist.py')
  subprocess.run([sys.executable, os.path.join(REPO, 'experiments', 'model_inversion.py'),
                  f'--config={config}:split=2,smoke', *overrides, f'--workdir={workdir}'],
                 check=True, env=env, cwd=REPO, capture_output=True, timeout=600)


def only_error_line(stderr: str, *names: str) -> str:
  """The one line of `stderr`, checked: an `error:` line (no traceback, no library log line
  before it) that names every one of `names`."""
  lines = stderr.splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: '), stderr[-3000:]
  for name in names:
    assert name in lines[0], lines[0]
  return lines[0]


def error_line(result, exit_code: int, *names: str) -> str:
  """The one stderr line of a failed command (a subprocess.CompletedProcess run with text
  output), checked: its exit code, and `only_error_line`."""
  assert result.returncode == exit_code, result.stderr[-3000:]
  return only_error_line(result.stderr, *names)


def run_train(*flags, patch: str = '', debug: bool = False, data_dir: str | None = None,
              config: str | None = SMOKE, experiment: str = 'train'):
  """Runs `python -m experiments.EXPERIMENT --config CONFIG *flags` after `patch` (Python
  code); config None leaves --config out (the entry point's default config)."""
  argv = [f'experiments/{experiment}.py'] + ([f'--config={config}'] if config else []) + list(
      flags)
  code = (f'import runpy, sys\n{patch}\nsys.argv = {argv!r}\n'
          f"runpy.run_module('experiments.{experiment}', run_name='__main__', alter_sys=True)\n")
  env = {k: v for k, v in os.environ.items() if k != DEBUG_ENV}
  env.update(PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL='3', NO_GCE_CHECK='true')
  if data_dir:
    env['MEDINV_DATA_DIR'] = data_dir
  if debug:
    env[DEBUG_ENV] = '1'
  return subprocess.run([sys.executable, '-c', code], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=300)
