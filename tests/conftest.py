"""Shared fixtures: one TFDS data dir per test session (datasets build once, into tmp), and
one folder of small manual-download dataset files in their published layouts."""
import os

import pytest

import fixture_files


@pytest.fixture(scope='session')
def data_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('tfds'))
  os.environ['MEDINV_DATA_DIR'] = path
  return path


@pytest.fixture(scope='session')
def manual_dir(tmp_path_factory):
  """cardio_train.csv, MIAS films, CBIS-DDSM CSVs + DICOMs and MedMNIST npz files, in one
  folder (tests/fixture_files.write_manual_dir), as `--manual_dir` takes them."""
  return str(fixture_files.write_manual_dir(tmp_path_factory.mktemp('manual')))


@pytest.fixture(scope='session')
def shared_data():
  """../shared/data next to the checkout (copies of public files for tests)."""
  return os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'data'))


@pytest.fixture
def assert_nothing_built():
  """Checks that a failed build left nothing a later run would take as a dataset."""
  def check(data_dir):
    """No finished dataset (dataset_info.json) and no incomplete.* folder is left."""
    for root, dirs, files in os.walk(data_dir):
      assert 'dataset_info.json' not in files, root
      assert not any(d.startswith('incomplete') for d in dirs), (root, dirs)
      assert not any('.array_record' in f for f in files), (root, files)

  return check
