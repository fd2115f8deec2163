"""medinv's XLA:CPU flag (medinv.core.xla): set by the entry points, not by `import medinv`;
joined once to the user's flags, never over a setting the user chose; parsed by the pinned
jaxlib."""
import importlib.metadata
import os
import subprocess
import sys

from medinv.core import xla

SETTING = f'{xla.YNN_FLAG}={xla.YNN_SETTING}'
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MEASURED = importlib.metadata.version('jaxlib') in xla.MEASURED_JAXLIB


def _python(code: str, xla_flags: str) -> list[str]:
  """stdout lines of `python -c code` from the repository root, with XLA_FLAGS=xla_flags."""
  env = dict(os.environ, XLA_FLAGS=xla_flags, PYTHONPATH=ROOT)
  return subprocess.run([sys.executable, '-c', code], env=env, cwd=ROOT, capture_output=True,
                        text=True, check=True).stdout.splitlines()


def test_flag_joins_the_users_flags_once(monkeypatch):
  monkeypatch.setenv('XLA_FLAGS', '--xla_force_host_platform_device_count=2')
  assert xla.use_eigen_cpu_convolutions() == MEASURED
  expected = '--xla_force_host_platform_device_count=2' + (f' {SETTING}' if MEASURED else '')
  assert os.environ['XLA_FLAGS'] == expected
  assert xla.use_eigen_cpu_convolutions() == MEASURED  # Only once.
  assert os.environ['XLA_FLAGS'] == expected


def test_a_users_setting_is_kept(monkeypatch):
  monkeypatch.setenv('XLA_FLAGS', f'{xla.YNN_FLAG}=+individual_convolution')
  assert not xla.use_eigen_cpu_convolutions()
  assert os.environ['XLA_FLAGS'] == f'{xla.YNN_FLAG}=+individual_convolution'


def test_import_sets_nothing_the_entry_point_sets_the_flag():
  """`import medinv` (and every package) leaves XLA_FLAGS alone; cli.run, which every
  experiments/*.py ends with, sets the flag before main runs and before any jax backend."""
  lines = _python(
      'import os\n'
      'import medinv, medinv.inversion, medinv.attribute, medinv.membership, medinv.study.study\n'
      'print(repr(os.environ.get("XLA_FLAGS")))\n'
      'from jax._src import xla_bridge\n'
      'from medinv.core import cli\n'
      'def main(argv):\n'
      '  print(repr(os.environ["XLA_FLAGS"]), xla_bridge.backends_are_initialized())\n'
      'cli.run(main, config_flag=None)\n', xla_flags='--xla_cpu_enable_fast_math=false')
  assert lines[0] == repr('--xla_cpu_enable_fast_math=false')
  flags = '--xla_cpu_enable_fast_math=false' + (f' {SETTING}' if MEASURED else '')
  assert lines[1] == f'{flags!r} False'


def test_the_pinned_jaxlib_accepts_the_flag():
  """XLA stops the process on a flag it does not know: the setting must parse and compute."""
  lines = _python(
      'import os\n'
      'from medinv.core import xla\n'
      'xla.use_eigen_cpu_convolutions()\n'
      'import jax.numpy as jnp\n'
      'from medinv.models import layers\n'
      'x = jnp.ones((1, 4, 4, 1)); k = jnp.ones((3, 3, 1, 1))\n'
      'print(os.environ["XLA_FLAGS"]); print(float(layers.conv2d(x, k).sum()))\n', xla_flags='')
  if MEASURED:
    assert lines[0] == SETTING
  assert float(lines[1]) == 100.0  # SAME 3x3 sums of ones: 4 corners x 4 + 8 edges x 6 + 4 x 9
