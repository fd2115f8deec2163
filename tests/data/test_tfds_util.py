"""Dataset builds: serialised across processes, and redone when a manual file changes.

Two processes building one dataset at once both end with it, built once. A build made from
manual files records them (medinv_manual_files.json); a replaced file rebuilds the dataset
with one log line naming it (only the files that build reads count), a rewritten file with
the same bytes does not, and a build without a record (made by an older medinv) is rebuilt
once.
"""
import json
import logging as py_logging
import os
import subprocess
import sys
import time

import numpy as np

import fixture_files
from medinv import data
from medinv.data import cardio
from medinv.data import tfds_util

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = """
import os, sys, time
from absl import logging
from medinv import data
logging.set_verbosity(logging.INFO)
data_dir, manual_dir, barrier, me = sys.argv[1:]
open(os.path.join(barrier, me), 'w').close()
while len(os.listdir(barrier)) < 2:  # Both processes start building at the same moment.
  time.sleep(0.001)
print(len(data.load_records('cardio', data_dir=data_dir, manual_dir=manual_dir).labels))
"""


def _cardio_dir(data_dir):
  return os.path.join(data_dir, 'cardio', 'raw', '1.0.0')


def _load_cardio(data_dir, manual_dir):
  return data.load_records('cardio', data_dir=str(data_dir), manual_dir=str(manual_dir))


def _rebuild_lines(caplog) -> list[str]:
  return [r.getMessage() for r in caplog.records if 'rebuilding it' in r.getMessage()]


def test_two_processes_building_one_dataset_both_read_one_build(tmp_path):
  manual = fixture_files.write_cardio(tmp_path / 'manual', num_records=5000)
  barrier = tmp_path / 'barrier'
  barrier.mkdir()
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='3')
  processes = [subprocess.Popen(
      [sys.executable, '-c', BUILD, str(tmp_path / 'tfds'), str(manual), str(barrier), name],
      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for name in ('a', 'b')]
  outputs = [p.communicate(timeout=300) for p in processes]
  for process, (stdout, stderr) in zip(processes, outputs):
    assert process.returncode == 0, stderr[-3000:]
    assert stdout.splitlines()[-1] == '5000'
  logs = [stderr for _, stderr in outputs]
  assert sum(log.count('Generating dataset cardio') for log in logs) == 1, logs
  assert sorted(os.listdir(tmp_path / 'tfds' / 'cardio' / 'raw')) == ['1.0.0', '1.0.0.lock']


def test_a_replaced_manual_file_is_rebuilt_with_one_line(tmp_path, caplog):
  manual = fixture_files.write_cardio(tmp_path / 'manual', num_records=200)
  assert len(_load_cardio(tmp_path / 'tfds', manual).labels) == 200
  record = json.load(open(os.path.join(_cardio_dir(tmp_path / 'tfds'), tfds_util.RECORD_FILE)))
  assert record['manual_dir'] == str(manual) and list(record['files']) == [cardio.FILENAME]
  assert record['files'][cardio.FILENAME]['sha256'] == tfds_util.file_digest(
      manual / cardio.FILENAME)
  fixture_files.write_cardio(manual, num_records=300, seed=1)  # A bigger file, same name.
  with caplog.at_level(py_logging.WARNING):
    replaced = _load_cardio(tmp_path / 'tfds', manual)
  expected = cardio.read_csv(manual / cardio.FILENAME)
  np.testing.assert_array_equal(replaced.features, expected[0])
  np.testing.assert_array_equal(replaced.labels, expected[1])
  (line,) = _rebuild_lines(caplog)
  assert f'{cardio.FILENAME} changed (' in line and 'since it was built' in line
  assert '\n' not in line
  caplog.clear()
  with caplog.at_level(py_logging.WARNING):  # The new build is reused as it is.
    assert len(_load_cardio(tmp_path / 'tfds', manual).labels) == 300
  assert not _rebuild_lines(caplog)


def test_same_bytes_with_a_new_time_are_hashed_once_and_reused(tmp_path, caplog):
  manual = fixture_files.write_cardio(tmp_path / 'manual')
  _load_cardio(tmp_path / 'tfds', manual)
  shard = next(f for f in os.scandir(_cardio_dir(tmp_path / 'tfds')) if 'array_record' in f.name)
  built = os.stat(shard.path).st_ino
  later = time.time() + 10
  os.utime(manual / cardio.FILENAME, (later, later))
  with caplog.at_level(py_logging.WARNING):
    _load_cardio(tmp_path / 'tfds', manual)
  assert not _rebuild_lines(caplog)
  assert os.stat(shard.path).st_ino == built  # Not rebuilt.
  record = json.load(open(os.path.join(_cardio_dir(tmp_path / 'tfds'), tfds_util.RECORD_FILE)))
  assert record['files'][cardio.FILENAME]['mtime_ns'] == os.stat(
      manual / cardio.FILENAME).st_mtime_ns  # Next time: no hash.


def test_a_build_without_a_record_is_rebuilt_once(tmp_path, caplog):
  manual = fixture_files.write_cardio(tmp_path / 'manual')
  _load_cardio(tmp_path / 'tfds', manual)
  os.remove(os.path.join(_cardio_dir(tmp_path / 'tfds'), tfds_util.RECORD_FILE))
  with caplog.at_level(py_logging.WARNING):
    _load_cardio(tmp_path / 'tfds', manual)
    _load_cardio(tmp_path / 'tfds', manual)
  (line,) = _rebuild_lines(caplog)
  assert tfds_util.RECORD_FILE in line


def test_without_manual_dir_the_build_is_used_as_it_is(tmp_path, caplog):
  manual = fixture_files.write_cardio(tmp_path / 'manual')
  _load_cardio(tmp_path / 'tfds', manual)
  fixture_files.write_cardio(manual, num_records=300)
  with caplog.at_level(py_logging.WARNING):
    records = data.load_records('cardio', data_dir=str(tmp_path / 'tfds'))
  assert len(records.labels) == 200 and not _rebuild_lines(caplog)


def test_a_mias_film_with_other_bytes_of_the_same_size_is_rebuilt(tmp_path, caplog):
  manual = fixture_files.write_mias(tmp_path / 'manual', size=16)
  first = data.load_images('mias', image_size=16, data_dir=str(tmp_path / 'tfds'),
                           manual_dir=str(manual))
  film = manual / 'mdb004.pgm'  # A train film: 16x16 of value 40.
  size = film.stat().st_size
  fixture_files.write_pgm(film, np.full((16, 16), 200))
  assert film.stat().st_size == size
  with caplog.at_level(py_logging.WARNING):
    second = data.load_images('mias', image_size=16, data_dir=str(tmp_path / 'tfds'),
                              manual_dir=str(manual))
  (line,) = _rebuild_lines(caplog)
  assert 'mdb004.pgm changed (same size, other bytes)' in line
  def has_film_of(images, value):
    return np.any(np.all(np.isclose(images, value / 255, atol=1e-6), axis=(1, 2, 3)))
  assert has_film_of(first.train[0], 40) and not has_film_of(first.train[0], 200)
  assert has_film_of(second.train[0], 200) and not has_film_of(second.train[0], 40)


def test_medmnist_rebuilds_for_its_own_file_only(tmp_path, caplog):
  manual = tmp_path / 'manual'
  fixture_files.write_medmnist(manual, 'pneumoniamnist', counts=(12, 4, 6))
  fixture_files.write_medmnist(manual, 'dermamnist', counts=(12, 4, 6))
  kwargs = dict(image_size=16, data_dir=str(tmp_path / 'tfds'), medmnist_name='pneumoniamnist')
  assert len(data.load_images('medmnist', manual_dir=str(manual), **kwargs).train[1]) == 12
  fixture_files.write_medmnist(manual, 'dermamnist', counts=(30, 4, 6))  # Another dataset's.
  with caplog.at_level(py_logging.WARNING):
    assert len(data.load_images('medmnist', manual_dir=str(manual), **kwargs).train[1]) == 12
    assert len(data.load_images('medmnist', manual_dir=str(tmp_path / 'nowhere'),
                                **kwargs).train[1]) == 12  # Nothing to compare: used as it is.
  assert not _rebuild_lines(caplog)
  fixture_files.write_medmnist(manual, 'pneumoniamnist', counts=(20, 4, 6))
  with caplog.at_level(py_logging.WARNING):
    assert len(data.load_images('medmnist', manual_dir=str(manual), **kwargs).train[1]) == 20
  (line,) = _rebuild_lines(caplog)
  assert 'pneumoniamnist.npz changed (' in line
