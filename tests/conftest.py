"""Shared fixtures: one TFDS data dir per test session (datasets build once, into tmp)."""
import os

import pytest


@pytest.fixture(scope='session')
def data_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('tfds'))
  os.environ['MEDINV_DATA_DIR'] = path
  return path


@pytest.fixture(scope='session')
def shared_data():
  """../shared/data next to the checkout (copies of public files for tests)."""
  return os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'data'))
