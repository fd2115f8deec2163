"""npz: a user's images and labels as plain arrays in one npz file, written here into tmp_path
(pool and split keys, shapes, float images, class names, the build key, and bad input)."""
import os

import jax
import numpy as np
import pytest

from medinv import data
from medinv.core.errors import DataError
from medinv.data import npz as npz_lib
from medinv.data import records


def split_arrays(size=8, channels=None, counts=(10, 3, 5), seed=0, prefix_val='val'):
  rng = np.random.default_rng(seed)
  arrays = {}
  for prefix, n in zip(('train', prefix_val, 'test'), counts):
    shape = (n, size, size) + ((channels,) if channels else ())
    arrays[f'{prefix}_images'] = rng.integers(0, 256, shape, dtype=np.uint8)
    arrays[f'{prefix}_labels'] = (np.arange(n) % 3).astype(np.uint8)[:, None]
  return arrays


def load(path, tmp_path, image_size=8, **kwargs):
  return data.load_images('npz', image_size=image_size, path=str(path),
                          data_dir=str(tmp_path / 'tfds'), **kwargs)


def as_float(pixels):
  return np.asarray(pixels, np.float32) / 255.0


def test_split_keys_with_any_file_name(tmp_path):
  arrays = split_arrays(channels=3)
  np.savez_compressed(tmp_path / 'my export.npz', **arrays)
  loaded = load(tmp_path / 'my export.npz', tmp_path)
  for split, prefix in (('train', 'train'), ('validation', 'val'), ('test', 'test')):
    x, y = getattr(loaded, split)
    np.testing.assert_array_equal(x, as_float(arrays[f'{prefix}_images']))
    np.testing.assert_array_equal(y, arrays[f'{prefix}_labels'][:, 0])
  assert loaded.class_names == ('class 0', 'class 1', 'class 2')


def test_validation_prefix_class_names_and_resize(tmp_path):
  arrays = split_arrays(size=16, channels=1, prefix_val='validation')
  names = np.array(['normal', 'benign', 'malignant'])
  np.savez(tmp_path / 'scans.npz', class_names=names, **arrays)
  loaded = load(tmp_path / 'scans.npz', tmp_path)
  assert loaded.class_names == ('normal', 'benign', 'malignant')
  np.testing.assert_array_equal(loaded.validation[0],
                                data.images.resize(arrays['validation_images'], 8))


def test_pool_is_split_by_seed_without_a_rebuild(tmp_path):
  rng = np.random.default_rng(1)
  images = rng.integers(0, 256, (20, 8, 8), dtype=np.uint8)
  labels = np.arange(20) % 2
  np.savez(tmp_path / 'pool.npz', images=images, labels=labels)
  for seed in (0, 5):
    loaded = load(tmp_path / 'pool.npz', tmp_path, split_seed=seed, test_fraction=0.25)
    train, test = records.split_indices(jax.random.key(seed), 20, 0.25)
    np.testing.assert_array_equal(loaded.test[0][..., 0], as_float(images[test]))
    np.testing.assert_array_equal(loaded.train[1], labels[train])
    assert loaded.validation is None and len(test) == 5
  assert len(os.listdir(tmp_path / 'tfds' / 'npz')) == 1


def test_float_images_in_unit_range_are_stored_as_eight_bits(tmp_path):
  values = np.random.default_rng(2).random((6, 8, 8, 1)).astype(np.float32)
  np.savez(tmp_path / 'floats.npz', images=values, labels=np.array([0, 1] * 3, np.int64))
  loaded = load(tmp_path / 'floats.npz', tmp_path, test_fraction=0.5)
  train, _ = records.split_indices(jax.random.key(0), 6, 0.5)
  np.testing.assert_array_equal(loaded.train[0], as_float(np.rint(values[train] * 255)))


def test_a_changed_file_is_rebuilt(tmp_path):
  arrays = split_arrays()
  np.savez(tmp_path / 'data.npz', **arrays)
  first = load(tmp_path / 'data.npz', tmp_path)
  arrays['test_images'] = 255 - arrays['test_images']
  np.savez(tmp_path / 'data.npz', **arrays)
  second = load(tmp_path / 'data.npz', tmp_path)
  np.testing.assert_array_equal(first.test[0][..., 0], as_float(255 - arrays['test_images']))
  np.testing.assert_array_equal(second.test[0][..., 0], as_float(arrays['test_images']))
  assert len(os.listdir(tmp_path / 'tfds' / 'npz')) == 2


def test_medmnist_and_npz_share_the_label_check():
  np.testing.assert_array_equal(npz_lib.class_indices('f.npz', 'labels', np.array([0., 2.])),
                                [0, 2])
  with pytest.raises(DataError, match=r'f\.npz: labels holds values that are not class '
                     r'indices \(\[0\.  0\.5\]\)'):
    npz_lib.class_indices('f.npz', 'labels', np.array([0., 0.5]))


def _corrupt(arrays):
  arrays['train_images'] = arrays['train_images'].astype(np.float32) * 2.0


@pytest.mark.parametrize('edit, match', [
    (lambda a: a.pop('test_labels'), r"missing keys \['test_labels'\]; found \['test_images', "
     r"'train_images', 'train_labels', 'val_images', 'val_labels'\]"),
    (lambda a: a.clear() or a.update(pixels=np.zeros((4, 8, 8), np.uint8)),
     r"missing keys \['train_images', 'train_labels', 'test_images', 'test_labels'\]; "
     r"found \['pixels'\] \(expected images \+ labels, or"),
    (lambda a: a.clear() or a.update(images=np.zeros((4, 8, 8), np.uint8)),
     r"missing keys \['labels'\]; found \['images'\]"),
    (lambda a: a.update(test_labels=a['test_labels'][:-1]),
     'test_images has 5 entries but test_labels has 4'),
    (lambda a: a.update(val_labels=a['val_labels'] - 1.5),
     'val_labels holds values that are not class indices'),
    (lambda a: a.update(train_labels=np.zeros((10, 2), np.uint8)),
     r'train_labels has shape \(10, 2\), expected \(n,\) or \(n, 1\) class indices'),
    (lambda a: [a.update({k: np.zeros_like(v)}) for k, v in list(a.items()) if 'labels' in k],
     r'the labels hold 1 class\(es\) \[0\]; a classifier needs at least two'),
    (lambda a: a.update(train_images=np.zeros((10, 8, 8, 2), np.uint8)),
     r'train_images has shape \(10, 8, 8, 2\), expected'),
    (lambda a: a.update(train_images=np.zeros((10, 8, 8), np.int16)),
     'train_images has dtype int16, expected uint8 or float in'),
    (lambda a: a.update(test_images=np.zeros((5, 16, 16), np.uint8)),
     'image shapes differ between splits'),
    (_corrupt, r'train_images is float with values outside \[0, 1\]'),
    (lambda a: a.update(images=a['train_images']), 'both `images` and `train_images`'),
    (lambda a: a.update(validation_images=a['val_images'], validation_labels=a['val_labels']),
     'both val_\\* and validation_\\* keys'),
    (lambda a: a.update(class_names=np.array(['one', 'two'])),
     'class_names must be a 1D string array with a name for each of labels 0..2'),
])
def test_bad_npz_fails_with_one_clear_line(tmp_path, edit, match, assert_nothing_built):
  arrays = split_arrays()
  edit(arrays)
  path = tmp_path / 'bad.npz'
  np.savez(path, **arrays)
  with pytest.raises(DataError, match=match) as error:
    load(path, tmp_path)
  assert str(error.value).startswith(str(path)) and '\n' not in str(error.value)
  assert_nothing_built(str(tmp_path / 'tfds'))


def test_missing_path_names_the_field_and_the_resolved_path(tmp_path):
  with pytest.raises(DataError, match=r'config\.data\.path: \S+/mine/nothing\.npz does not '
                     'exist'):
    data.load_images('npz', image_size=8, path='nothing.npz',
                     manual_dir=str(tmp_path / 'mine'), data_dir=str(tmp_path / 'tfds'))
  with pytest.raises(DataError, match=r'config\.data\.path: \S+ is not a file; dataset npz'):
    load(tmp_path, tmp_path)
  (tmp_path / 'text.npz').write_text('not a zip')
  with pytest.raises(DataError, match=r'text\.npz: not a readable npz file'):
    load(tmp_path / 'text.npz', tmp_path)
  (tmp_path / 'random.npz').write_bytes(np.random.default_rng(0).bytes(300))
  with pytest.raises(DataError, match=r'random\.npz: not a readable npz file \(numpy\.savez '
                     r'writes a zip archive of \.npy arrays; this file is no zip archive\)$'):
    load(tmp_path / 'random.npz', tmp_path)  # numpy's own error advises unpickling
