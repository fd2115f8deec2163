"""Shared fixtures: one TFDS data dir per test module (each module builds the datasets it
uses), one read-only folder of small manual-download dataset files in their published
layouts per worker, and the e2e marker for tests/e2e.

Compilation is over half of the suite's time (hundreds of small programs, each compiled once),
so the suite (and every process it starts, through the environment) compiles with XLA's
cheapest CPU optimisation and shares one persistent compilation cache, so that a program
another test already compiled (the same trained target in several experiments) loads from it.
Results agree with the default optimisation up to float rounding; `./launch.sh` runs keep the
defaults."""
import atexit
import os
import shutil
import tempfile

import pytest

import fixture_files
from medinv.core import xla

FAST_COMPILE_FLAGS = '--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true'
# A pytest started by a test shares the cache, as do both tiers of .ci/run (its own folder).
if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
  _cache = tempfile.mkdtemp(prefix='medinv-test-xla-cache-')
  atexit.register(shutil.rmtree, _cache, ignore_errors=True)
  os.environ['JAX_COMPILATION_CACHE_DIR'] = _cache
os.environ.update(JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',
                  JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='0')
if FAST_COMPILE_FLAGS not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = ' '.join(filter(None, [os.environ.get('XLA_FLAGS'),
                                                   FAST_COMPILE_FLAGS]))
# The CPU convolutions every experiment runs with (medinv.core.cli.run sets the same flag).
xla.use_eigen_cpu_convolutions()


@pytest.fixture(scope='module', autouse=True)
def data_dir(tmp_path_factory):
  """The test module's own TFDS data dir, also $MEDINV_DATA_DIR while the module runs.

  Every test module builds the datasets it uses into a folder of its own, so no module sees
  a dataset another one built (the suite's outcome does not depend on which files share a
  worker, or in which order they run)."""
  path = str(tmp_path_factory.mktemp('tfds'))
  before = os.environ.get('MEDINV_DATA_DIR')
  os.environ['MEDINV_DATA_DIR'] = path
  yield path
  if before is None:
    os.environ.pop('MEDINV_DATA_DIR', None)
  else:
    os.environ['MEDINV_DATA_DIR'] = before


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


@pytest.hookimpl(tryfirst=True)  # Before -m deselects by marker.
def pytest_collection_modifyitems(config, items):
  """Marks every test under tests/e2e as `e2e` (the end-to-end tier), but those marked
  `paper`: paper-scale checks are a tier of their own (`-m paper`), in neither CI tier."""
  del config
  e2e_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'e2e') + os.sep
  for item in items:
    if str(item.path).startswith(e2e_dir) and item.get_closest_marker('paper') is None:
      item.add_marker(pytest.mark.e2e)
