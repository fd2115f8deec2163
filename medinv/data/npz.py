"""A user's own images as plain arrays in one npz file (config.data.path, any file name).

Keys: either `images` and `labels`, one pool split into train and test when loading by
config.data.split_seed and config.data.test_fraction (as record datasets are, so changing them
does not rebuild); or MedMNIST's split keys `train_images`/`train_labels`,
`test_images`/`test_labels` and optionally `val_images`/`val_labels` (or
`validation_images`/`validation_labels`). Optional `class_names`: a string array, one name per
class (else 'class 0', 'class 1', ...).

Images: (n, h, w) or (n, h, w, 1) grayscale, (n, h, w, 3) RGB, the same h, w and channels in
every split; uint8, or float in [0, 1], stored as uint8 `np.rint(x * 255)` (every medinv
dataset stores 8 bits). They are stored at their native size and resized to
config.data.image_size when loading (medinv.data.images.resize, as the built-in datasets are).
Labels: (n,) or (n, 1) class indices (integers, or floats holding integers), at least two
classes. The build is keyed by the file's SHA-256, so a changed file is rebuilt.

The checks shared with medinv.data.medmnist (reading an npz member's header without loading
it, label values, lengths) live here.
"""
from __future__ import annotations

import dataclasses
import os
import re
import zipfile

import numpy as np
import tensorflow_datasets as tfds

from medinv.core.errors import DataError
from medinv.data import images
from medinv.data import tfds_util

SPLIT_PREFIXES = {'train': ('train',), 'validation': ('val', 'validation'), 'test': ('test',)}
CLASS_NAMES = ()  # Per file: see builder.info.metadata['class_names'].
OPTIONS = ('path',)
LAYOUT = """\
config.data.path is an npz file (any name) holding images (n, h, w[, 1 or 3]) uint8 or float
in [0, 1] and labels (n,) or (n, 1) class indices: `images` + `labels` (one pool, split by
config.data.split_seed / test_fraction) or train_/val_ (or validation_)/test_ prefixed keys
(MedMNIST's); optional class_names.
"""

# ------------------------------------------------------------ checks shared with medmnist.py


def open_npz(path) -> np.lib.npyio.NpzFile:
  """np.load(path) (never unpickling).

  Args:
    path: the npz file.

  Returns:
    The open NpzFile (use it as a context manager).

  Raises:
    DataError: naming the file when it is not a readable npz.
  """
  if os.path.isfile(path) and not zipfile.is_zipfile(path):  # np.load would try unpickling
    raise DataError(f'{path}: not a readable npz file (numpy.savez writes a zip archive of '
                    '.npy arrays; this file is no zip archive)')
  try:
    return np.load(path, allow_pickle=False)
  except (OSError, ValueError, zipfile.BadZipFile) as e:
    raise DataError(f'{path}: not a readable npz file ({e})') from e


def array_header(npz: np.lib.npyio.NpzFile, key: str) -> tuple[tuple[int, ...], np.dtype]:
  """Shape and dtype of an npz member, read from its .npy header without loading it.

  Args:
    npz: the open file.
    key: the member's name (without .npy).

  Returns:
    (shape, dtype) as the header states them.
  """
  with npz.zip.open(f'{key}.npy') as f:
    version = np.lib.format.read_magic(f)
    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
            else np.lib.format.read_array_header_2_0)
    shape, _, dtype = read(f)
  return shape, dtype


def check_lengths(path, images_key: str, num_images: int, labels_key: str,
                  num_labels: int) -> None:
  """DataError naming both keys of `path` unless they hold as many entries."""
  if num_images != num_labels:
    raise DataError(f'{path}: {images_key} has {num_images} entries but {labels_key} has '
                    f'{num_labels}')


def class_indices(path, key: str, values: np.ndarray) -> np.ndarray:
  """Checks that values are class indices (finite, whole, >= 0).

  Args:
    path: the file, for the message.
    key: the member holding values, for the message.
    values: (n,) numbers (integers, floats holding integers or booleans).

  Returns:
    values as int64.

  Raises:
    DataError: naming the file and key, with up to 10 of the distinct values.
  """
  if values.dtype.kind not in 'biuf':
    raise DataError(f'{path}: {key} has dtype {values.dtype}; expected integer class indices')
  if not np.all(np.isfinite(values)) or np.any(values < 0) or np.any(values % 1):
    raise DataError(f'{path}: {key} holds values that are not class indices '
                    f'({np.unique(values)[:10]})')
  return values.astype(np.int64)


# ------------------------------------------------------------------------ the plain npz


@dataclasses.dataclass(frozen=True)
class Summary:
  """What `inspect` found: each split's keys and labels, the image shape, class names."""
  path: str
  keys: dict[str, tuple[str, str]]  # split -> (images key, labels key); POOL or splits
  shape: tuple[int, int, int]  # (h, w, channels)
  labels: dict[str, np.ndarray]  # split -> (n,) int64
  class_names: tuple[str, ...]


def _split_keys(path, files: list[str]) -> dict[str, tuple[str, str]]:
  """split -> (images key, labels key) from the keys present; DataError listing them."""
  if 'train_images' not in files and 'images' in files:
    return {images.POOL_SPLIT: ('images', 'labels')}
  if 'images' in files:
    raise DataError(f'{path}: both `images` and `train_images`; use either images + labels '
                    f'(one pool) or split keys, not both (keys: {sorted(files)})')
  keys = {}
  for split, prefixes in SPLIT_PREFIXES.items():
    present = [p for p in prefixes if f'{p}_images' in files or f'{p}_labels' in files]
    if len(present) > 1:
      raise DataError(f'{path}: both {present[0]}_* and {present[1]}_* keys; keep one')
    if present:
      keys[split] = (f'{present[0]}_images', f'{present[0]}_labels')
  return keys


def _check_keys(path, files: list[str], keys: dict[str, tuple[str, str]]) -> None:
  if images.POOL_SPLIT in keys:
    wanted = ['images', 'labels']
  else:
    optional = [k for split, pair in keys.items() if split == 'validation' for k in pair]
    wanted = ['train_images', 'train_labels', 'test_images', 'test_labels'] + optional
  missing = [k for k in wanted if k not in files]
  if missing:
    raise DataError(f'{path}: missing keys {missing}; found {sorted(files)} (expected images + '
                    'labels, or train_, test_ and optional val_ images and labels)')


def _image_shape(path, npz, key: str) -> tuple[int, tuple[int, int, int]]:
  """(n, (h, w, channels)) of an images member, checking its rank and dtype."""
  shape, dtype = array_header(npz, key)
  if len(shape) == 3:
    shape = shape + (1,)
  if len(shape) != 4 or shape[3] not in (1, 3) or 0 in shape[1:3]:
    raise DataError(f'{path}: {key} has shape {shape}, expected (n, h, w), (n, h, w, 1) or '
                    '(n, h, w, 3)')
  if dtype != np.uint8 and dtype.kind != 'f':
    raise DataError(f'{path}: {key} has dtype {dtype}, expected uint8 or float in [0, 1]')
  return shape[0], tuple(shape[1:])


def _labels(path, npz, key: str) -> np.ndarray:
  labels = np.asarray(npz[key])
  if labels.ndim == 2 and labels.shape[1] == 1:
    labels = labels[:, 0]
  if labels.ndim != 1:
    raise DataError(f'{path}: {key} has shape {labels.shape}, expected (n,) or (n, 1) class '
                    'indices')
  return class_indices(path, key, labels)


def _class_names(path, npz, labels: dict[str, np.ndarray]) -> tuple[str, ...]:
  present = np.unique(np.concatenate(list(labels.values())))
  if len(present) < 2:
    raise DataError(f'{path}: the labels hold {len(present)} class(es) {present.tolist()}; '
                    'a classifier needs at least two')
  if 'class_names' not in npz.files:
    return tuple(f'class {i}' for i in range(int(present.max()) + 1))
  try:
    names = np.asarray(npz['class_names'])
  except ValueError as e:  # An object array would need unpickling, which medinv never does.
    raise DataError(f'{path}: class_names must be an array of strings ({e})') from e
  if names.ndim != 1 or names.dtype.kind not in 'US' or len(names) <= present.max():
    raise DataError(f'{path}: class_names must be a 1D string array with a name for each '
                    f'of labels 0..{present.max()}; got {names.dtype} {names.shape}')
  return tuple(str(n.decode() if isinstance(n, bytes) else n) for n in names)


def inspect(path: str) -> Summary:
  """Checks an npz completely except for decompressing the images; returns its labels.

  Raises:
    DataError: naming the file and what is wrong (missing keys, listing those present; image
      shapes or dtypes; different lengths; labels that are not class indices; one class).
  """
  with open_npz(path) as npz:
    keys = _split_keys(path, npz.files)
    _check_keys(path, npz.files, keys)
    labels, shapes = {}, {}
    for split, (images_key, labels_key) in keys.items():
      num_images, shapes[images_key] = _image_shape(path, npz, images_key)
      labels[split] = _labels(path, npz, labels_key)
      check_lengths(path, images_key, num_images, labels_key, len(labels[split]))
    if len(set(shapes.values())) > 1:
      raise DataError(f'{path}: image shapes differ between splits ({shapes}); every split '
                      'needs the same (h, w, channels)')
    class_names = _class_names(path, npz, labels)
  return Summary(path, keys, next(iter(shapes.values())), labels, class_names)


def to_uint8(path, key: str, array: np.ndarray) -> np.ndarray:
  """Images as uint8: uint8 as is, float in [0, 1] as np.rint(x * 255).

  Args:
    path: the file, for the message.
    key: the member, for the message.
    array: uint8 or float images.

  Returns:
    uint8 images of array's shape.

  Raises:
    DataError: for floats outside [0, 1] (or not finite).
  """
  if array.dtype == np.uint8:
    return array
  if not (np.all(np.isfinite(array)) and array.min(initial=0) >= 0
          and array.max(initial=0) <= 1):
    raise DataError(f'{path}: {key} is float with values outside [0, 1] (min '
                    f'{np.nanmin(array):g}, max {np.nanmax(array):g}); scale it to [0, 1] or '
                    'store uint8')
  return np.rint(array.astype(np.float64) * 255.0).astype(np.uint8)


@dataclasses.dataclass(eq=False)
class NpzConfig(tfds.core.BuilderConfig):
  path: str = ''


def builder_config(image_size: int | None = None, path: str = '') -> NpzConfig:
  """The builder config of one npz file.

  Args:
    image_size: unused (images are stored at their native size and resized when loading).
    path: the npz file, absolute (see tfds_util.resolve_path).

  Returns:
    A config named after the file and its SHA-256 (12 hex digits).

  Raises:
    DataError: naming config.data.path when the file does not exist or is a folder.
  """
  del image_size
  if not os.path.exists(path):
    raise DataError(f'config.data.path: {path} does not exist (a relative path is taken '
                    'from config.data.manual_dir when one is given, else the working '
                    'directory)')
  if not os.path.isfile(path):
    raise DataError(f'config.data.path: {path} is not a file; dataset npz reads one npz '
                    'file (a folder of images: dataset image_folder)')
  slug = re.sub(r'[^a-z0-9]+', '_', os.path.basename(path).lower()).strip('_')[:32]
  digest = tfds_util.fingerprint(tfds_util.file_digest(path))
  return NpzConfig(name=f'{slug or "npz"}_{digest}', path=path, description=f'npz {path}')


class Npz(tfds.core.GeneratorBasedBuilder):
  """Images and labels from one npz file, at their native size."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Images and labels from a plain npz file.'}

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds_util.any_size_image_info(self, __doc__)

  def _split_generators(self, dl_manager):
    del dl_manager  # The user's own file; nothing to download.
    if self.builder_config is None or not self.builder_config.path:
      raise DataError('npz: name your file with --config.data.path')
    summary = inspect(self.builder_config.path)
    self.info.metadata.update(class_names=list(summary.class_names),
                              channels=summary.shape[2], file=summary.path)
    return {split: self._generate_examples(summary, split) for split in summary.keys}

  def _generate_examples(self, summary: Summary, split: str):
    key = summary.keys[split][0]
    try:
      with np.load(summary.path) as npz:
        array = npz[key]
    except (OSError, ValueError, zipfile.BadZipFile) as e:  # e.g. a bad CRC: a damaged file
      raise DataError(f'{summary.path}: cannot read {key} ({e})') from e
    array = to_uint8(summary.path, key, array).reshape((len(array),) + summary.shape)
    for i, (image, label) in enumerate(zip(array, summary.labels[split])):
      yield i, {'image': image, 'label': label}


Builder = Npz
