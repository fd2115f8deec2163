"""Manual-download MedMNIST: npz files with the standard keys (tests/fixture_files.py).
"""
import zipfile

import numpy as np
import pytest

from medinv import data
from medinv.data import medmnist
from medinv.data import tfds_util
from medinv.core.errors import DataError

from fixture_files import medmnist_arrays


# --------------------------------------------------------------------------------- medmnist


def test_medmnist_grayscale_28(tmp_path):
  arrays = medmnist_arrays()
  np.savez_compressed(tmp_path / 'pneumoniamnist.npz', **arrays)
  from configs import train_medmnist
  config = train_medmnist.get_config('name=pneumoniamnist')
  config.data.update(manual_dir=str(tmp_path), data_dir=str(tmp_path / 'tfds'))
  task = data.load_task(config.data)
  assert task.x_train.shape == (12, 32, 32, 1) and task.x_test.shape == (6, 32, 32, 1)
  np.testing.assert_array_equal(task.y_train, arrays['train_labels'][:, 0])
  assert task.class_names == tuple(f'pneumoniamnist class {i}' for i in range(3))
  # Validation split, stored at 28x28 exactly.
  builder = tfds_util.prepare(medmnist.Builder, data_dir=str(tmp_path / 'tfds'),
                              config=medmnist.builder_config(medmnist_name='pneumoniamnist'))
  stored = tfds_util.read_split(builder, 'validation')
  np.testing.assert_array_equal(stored['image'][..., 0], arrays['val_images'])


def test_medmnist_rgb_64_with_flat_labels(tmp_path):
  arrays = medmnist_arrays(size=64, channels=3, label_shape=())
  np.savez_compressed(tmp_path / 'dermamnist_64.npz', **arrays)
  np.savez_compressed(tmp_path / 'dermamnist.npz', **medmnist_arrays())  # 28: not picked
  loaded = data.load_images('medmnist', image_size=64, data_dir=str(tmp_path / 'tfds'),
                            manual_dir=str(tmp_path), medmnist_name='dermamnist',
                            medmnist_size=64)
  np.testing.assert_allclose(loaded.test[0], arrays['test_images'] / 255.0, atol=1e-6)
  np.testing.assert_array_equal(loaded.validation[1], arrays['val_labels'])


def test_medmnist_multilabel_needs_a_task(tmp_path, assert_nothing_built):
  arrays = medmnist_arrays(label_shape=(5,), classes=2)
  np.savez_compressed(tmp_path / 'chestmnist.npz', **arrays)
  kwargs = dict(image_size=32, data_dir=str(tmp_path / 'tfds'), manual_dir=str(tmp_path),
                medmnist_name='chestmnist')
  with pytest.raises(DataError, match=r'chestmnist\.npz: train_labels is multi-label \(5 '
                     r'tasks.*medmnist_task=<0\.\.4>'):
    data.load_images('medmnist', **kwargs)
  assert_nothing_built(str(tmp_path / 'tfds'))
  loaded = data.load_images('medmnist', medmnist_task=2, **kwargs)
  np.testing.assert_array_equal(loaded.train[1], arrays['train_labels'][:, 2])
  assert loaded.class_names == ('chestmnist task 2 negative', 'chestmnist task 2 positive')
  with pytest.raises(DataError, match='medmnist_task=7 but train_labels has 5 task'):
    data.load_images('medmnist', medmnist_task=7, **kwargs)


def _corrupt_test_images(path):
  """Flips bytes inside test_images' stored data: the zip CRC fails while it is read."""
  with zipfile.ZipFile(path) as z:
    offset = z.getinfo('test_images.npy').header_offset
  raw = bytearray(path.read_bytes())
  name_length, extra_length = np.frombuffer(bytes(raw[offset + 26:offset + 30]), '<u2')
  start = offset + 30 + int(name_length) + int(extra_length) + 200  # Past the .npy header.
  raw[start:start + 50] = bytes(50)
  path.write_bytes(bytes(raw))
  return r'test_images'


@pytest.mark.parametrize('edit, match', [
    (lambda a: a.pop('val_labels'), r"missing keys \['val_labels'\]"),
    (lambda a: a.update(test_labels=a['test_labels'][:-1]),
     'test_images has 6 entries but test_labels has 5'),
    (lambda a: a.update(train_images=a['train_images'][:, :14, :14]),
     r'train_images has shape \(12, 14, 14, 1\), expected \(n, 28, 28\)'),
    (lambda a: a.update(train_images=np.zeros((12, 28, 28, 28), np.uint8)),
     '3D sets are not supported'),
    (lambda a: a.update(val_images=a['val_images'].astype(np.float32)),
     'val_images has dtype float32, expected uint8'),
    (lambda a: a.update(val_labels=-a['val_labels'].astype(np.int64) - 1),
     'val_labels holds values that are not class indices'),
    ('corrupt', 'test_images'),
    ('not_npz', 'not a readable npz file'),
])
def test_medmnist_bad_npz_fails_cleanly(tmp_path, edit, match, assert_nothing_built):
  arrays = medmnist_arrays()
  path = tmp_path / 'octmnist.npz'
  if edit == 'not_npz':
    path.write_bytes(b'PK\x03\x04 truncated download')
  else:
    if edit != 'corrupt':
      edit(arrays)
    np.savez(path, **arrays)  # Uncompressed, so the corruption below hits raw array bytes.
    if edit == 'corrupt':
      _corrupt_test_images(path)
  data_dir = str(tmp_path / 'tfds')
  with pytest.raises(DataError, match=match) as error:
    data.load_images('medmnist', image_size=32, data_dir=data_dir, manual_dir=str(tmp_path),
                     medmnist_name='octmnist')
  assert 'octmnist.npz' in str(error.value)
  assert not medmnist.Builder(data_dir=data_dir, config=medmnist.builder_config(
      medmnist_name='octmnist')).is_prepared()
  assert_nothing_built(data_dir)


def test_medmnist_file_selection_errors(tmp_path):
  np.savez(tmp_path / 'bloodmnist_128.npz', **medmnist_arrays(size=28))
  kwargs = dict(image_size=32, data_dir=str(tmp_path / 'tfds'), manual_dir=str(tmp_path))
  with pytest.raises(DataError, match=r"bloodmnist\.npz or bloodmnist_28\.npz not found .*"
                     r"\['bloodmnist_128\.npz'\]") as error:
    data.load_images('medmnist', medmnist_name='bloodmnist', **kwargs)
  assert '\n' not in str(error.value)
  assert str(error.value).endswith('./launch.sh --list_datasets (the medmnist entry)')
  with pytest.raises(DataError, match=r'bloodmnist_128\.npz: train_images has shape \(12, 28, '
                     r'28, 1\), expected \(n, 128, 128\)'):
    data.load_images('medmnist', medmnist_name='bloodmnist', medmnist_size=128, **kwargs)
  with pytest.raises(ValueError, match='medmnist needs a dataset name'):
    data.load_images('medmnist', **kwargs)
  with pytest.raises(ValueError, match='medmnist_size must be one of'):
    data.load_images('medmnist', medmnist_name='bloodmnist', medmnist_size=32, **kwargs)
  with pytest.raises(ValueError, match="dataset 'breastmnist' takes no options"):
    data.load_images('breastmnist', medmnist_name='bloodmnist', **kwargs)
