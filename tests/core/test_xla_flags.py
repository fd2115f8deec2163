"""medinv's XLA:CPU flag (medinv/__init__.py): set once, beside the user's flags, never over
a setting the user chose."""
import importlib.metadata
import os
import subprocess
import sys

import medinv


def test_flag_joins_the_users_flags(monkeypatch):
  monkeypatch.setenv('XLA_FLAGS', '--xla_force_host_platform_device_count=2')
  medinv._cpu_convolutions_off_ynnpack()
  expected = '--xla_force_host_platform_device_count=2'
  if importlib.metadata.version('jaxlib') in medinv._MEASURED_JAXLIB:
    expected += f' {medinv.YNN_FLAG}={medinv.YNN_SETTING}'
  assert os.environ['XLA_FLAGS'] == expected
  medinv._cpu_convolutions_off_ynnpack()  # Only once.
  assert os.environ['XLA_FLAGS'] == expected


def test_a_users_setting_is_kept(monkeypatch):
  monkeypatch.setenv('XLA_FLAGS', f'{medinv.YNN_FLAG}=+individual_convolution')
  medinv._cpu_convolutions_off_ynnpack()
  assert os.environ['XLA_FLAGS'] == f'{medinv.YNN_FLAG}=+individual_convolution'


def test_the_pinned_jaxlib_accepts_the_flag():
  """XLA stops the process on a flag it does not know: the setting must parse and compute."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(medinv.__file__)))
  env = dict(os.environ, XLA_FLAGS='', PYTHONPATH=root)
  out = subprocess.run(
      [sys.executable, '-c', 'import medinv, os, jax, jax.numpy as jnp; '
       'x = jnp.ones((1, 4, 4, 1)); k = jnp.ones((3, 3, 1, 1)); '
       'print(os.environ["XLA_FLAGS"]); '
       'from medinv import layers; print(float(layers.conv2d(x, k).sum()))'],
      env=env, capture_output=True, text=True, check=True).stdout.split('\n')
  if importlib.metadata.version('jaxlib') in medinv._MEASURED_JAXLIB:
    assert out[0] == f'{medinv.YNN_FLAG}={medinv.YNN_SETTING}'
  assert float(out[1]) == 100.0  # SAME 3x3 sums of ones: 4 corners x 4 + 8 edges x 6 + 4 x 9
