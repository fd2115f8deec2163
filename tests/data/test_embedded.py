"""Embedded datasets: counts, shapes, schema, rebuild determinism, clear errors."""
import importlib.resources
import os

import numpy as np
import pytest
from skimage import transform

from configs import common
from medinv import data
from medinv.data import heart_disease
from medinv.core import errors
from medinv.core.errors import DataError


def test_heart_disease_records(data_dir):
  records = data.load_records('heart_disease', data_dir=data_dir)
  assert records.features.shape == (303, 13) and records.features.dtype == np.float32
  assert np.bincount(records.labels).tolist() == [138, 165]
  assert [c.name for c in records.columns][:3] == ['age', 'sex', 'cp']
  # First row of the source file, in source order.
  np.testing.assert_array_equal(records.features[0],
                                np.float32([63, 1, 3, 145, 233, 1, 0, 150, 0, 2.3, 0, 0, 1]))
  sex = records.columns[records.column_index('sex')]
  assert np.bincount(sex.candidate_index(records.features[:, 1])).tolist() == [96, 207]
  for column in records.columns:  # Every value maps to its own value or to the bin it is in.
    raw = records.features[:, records.column_index(column.name)]
    index = column.candidate_index(raw)
    if column.categorical:
      np.testing.assert_array_equal(column.candidates[index], raw)
      continue
    edges = np.asarray(column.edges, np.float64)
    assert len(column.candidates) == len(edges) - 1, column.name
    low = np.where(index > 0, edges[index], -np.inf)  # Bins 0 and k-1 are open outwards.
    high = np.where(index < len(edges) - 2, edges[np.minimum(index + 1, len(edges) - 1)], np.inf)
    assert np.all((low <= raw) & (raw < high)), column.name


def test_continuous_column_bins():
  age = heart_disease.COLUMNS[0]
  np.testing.assert_array_equal(age.candidate_index(np.array([30., 45., 54.9, 65., 90.])),
                                [0, 1, 1, 3, 3])


def test_breastmnist_splits(data_dir):
  images = data.load_images('breastmnist', image_size=32, data_dir=data_dir)
  assert images.train[0].shape == (546, 32, 32, 1)
  assert images.validation[0].shape == (78, 32, 32, 1)
  assert images.test[0].shape == (156, 32, 32, 1)
  assert images.train[0].dtype == np.float32
  # Same images, same order as the shipped npz, resized 28 -> 32 as scikit-image's bilinear
  # interpolation (half-pixel centres, edge padding) resizes them.
  with np.load(importlib.resources.files('medinv.data') / 'files' / 'breastmnist.npz') as npz:
    raw, raw_labels = npz['train_images'], npz['train_labels'].reshape(-1)
  np.testing.assert_array_equal(images.train[1], raw_labels)
  for i in (0, 1, 545):
    reference = transform.resize(raw[i] / 255.0, (32, 32), order=1, mode='edge',
                                 anti_aliasing=False)
    np.testing.assert_allclose(images.train[0][i, ..., 0], reference, atol=1e-5)
  assert np.bincount(images.train[1]).tolist() == [147, 399]
  assert np.bincount(images.test[1]).tolist() == [42, 114]
  native = data.load_images('breastmnist', image_size=8 * 4, data_dir=data_dir)
  np.testing.assert_array_equal(native.train[0], images.train[0])  # Reused, deterministic.


def test_rebuild_gives_identical_arrays(tmp_path):
  first = data.load_images('breastmnist', image_size=32, data_dir=str(tmp_path / 'a'))
  second = data.load_images('breastmnist', image_size=32, data_dir=str(tmp_path / 'b'))
  np.testing.assert_array_equal(first.train[0], second.train[0])
  np.testing.assert_array_equal(first.test[1], second.test[1])
  assert os.path.isdir(tmp_path / 'a' / 'breastmnist')


def test_task_split_is_fixed_by_split_seed(data_dir):
  task = data.load_task(common.data_config('heart_disease', data_dir=data_dir))
  again = data.load_task(common.data_config('heart_disease', data_dir=data_dir))
  other = data.load_task(common.data_config('heart_disease', data_dir=data_dir, split_seed=1))
  assert len(task.y_train) + len(task.y_test) == 303 and len(task.y_test) == 61
  np.testing.assert_array_equal(task.x_train, again.x_train)
  assert not np.array_equal(task.records_test.features, other.records_test.features)
  np.testing.assert_allclose(task.x_train.mean(0), 0, atol=1e-5)  # z-scored on train


def test_unknown_dataset_lists_known():
  with pytest.raises(ValueError, match='known datasets: .*breastmnist.*heart_disease'):
    data.load_records('heart', data_dir='/nonexistent')


@pytest.mark.parametrize('size', [28, 0, 12])
def test_image_size_must_be_multiple_of_8(size, data_dir):
  with pytest.raises(ValueError, match='multiple of 8'):
    data.load_images('breastmnist', image_size=size, data_dir=data_dir)


def test_unwritable_data_dir(tmp_path):
  blocked = tmp_path / 'blocked'
  blocked.write_text('a file where a directory should be')
  with pytest.raises(errors.UsageError, match=r"^config\.data\.data_dir '\S+/blocked/sub' is "
                     r'not writable \(Not a directory\); pass a writable --config\.data\.data_dir '
                     r'or set \$MEDINV_DATA_DIR$'):  # exit 2, as for a workdir
    data.load_records('heart_disease', data_dir=str(blocked / 'sub'))


def test_malformed_heart_csv_names_line(tmp_path):
  path = tmp_path / 'heart.csv'
  header = 'age,sex,cp,trestbps,chol,fbs,restecg,thalach,exang,oldpeak,slope,ca,thal,target\n'
  path.write_text(header + '63,1,3,145,233,1,0,150,0,2.3,0,0,1,1\n'
                  '37,1,x,130,250,0,1,187,0,3.5,0,0,2,1\n')
  with pytest.raises(DataError, match="line 3, column 'cp': 'x' is not a number"):
    heart_disease.read_csv(path)
  path.write_text(header + '63,1,3,145\n')
  with pytest.raises(DataError, match='line 2: 4 fields, expected 14'):
    heart_disease.read_csv(path)
  path.write_text(header.replace('chol', 'cholesterol'))
  with pytest.raises(DataError, match='header'):
    heart_disease.read_csv(path)


def _rows(features: np.ndarray) -> set:
  return {tuple(row) for row in features.tolist()}


def test_carved_validation_split_is_disjoint_and_fixed(data_dir):
  plain = data.load_task(common.data_config('heart_disease', data_dir=data_dir))
  config = common.data_config('heart_disease', data_dir=data_dir, validation_fraction=0.2)
  task = data.load_task(config)
  # 242 training records: 48 (20%) carved out for validation, the 61 test records unchanged.
  assert (len(task.y_train), len(task.y_val), len(task.y_test)) == (194, 48, 61)
  np.testing.assert_array_equal(task.records_test.features, plain.records_test.features)
  train, val, test = (_rows(r.features) for r in (task.records_train, task.records_validation,
                                                  task.records_test))
  assert not train & val and not val & test and not train & test
  assert train | val == _rows(plain.records_train.features)
  # Model inputs: z-scores fitted on the 194 records that train, applied to the validation ones.
  np.testing.assert_allclose(task.x_train.mean(axis=0), 0.0, atol=1e-5)
  np.testing.assert_allclose(task.x_val, task.scaler(task.records_validation.features))
  np.testing.assert_array_equal(task.y_val, task.records_validation.labels)
  # Fixed by validation_seed alone: the same again (load_task reads no run seed); another
  # validation_seed carves other records out of the same training records.
  again = data.load_task(config)
  np.testing.assert_array_equal(again.records_validation.features,
                                task.records_validation.features)
  config.validation_seed = 1
  other = data.load_task(config)
  assert _rows(other.records_validation.features) != val
  assert _rows(other.records_train.features) | _rows(other.records_validation.features) == (
      train | val)
  np.testing.assert_array_equal(other.records_test.features, task.records_test.features)


def test_validation_fraction_errors(data_dir):
  config = common.data_config('breastmnist', data_dir=data_dir, image_size=16,
                              validation_fraction=0.1)
  with pytest.raises(ValueError, match="validation_fraction 0.1: dataset 'breastmnist' has a "
                                       r'validation split of its own \(78 records\); set it to 0'):
    data.load_task(config)
  config.validation_fraction = 1.0
  with pytest.raises(ValueError, match=r'config.data.validation_fraction must be in \[0, 1\)'):
    data.check_config(config)
