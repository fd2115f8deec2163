"""Any MedMNIST v2 2D dataset from its npz file, from a manual download.

Source: Yang et al., "MedMNIST v2 - A large-scale lightweight benchmark for 2D and 3D
biomedical image classification", Scientific Data 10:41, 2023 (https://medmnist.com/,
files on Zenodo); each subset keeps the license of its source (mostly CC BY 4.0). BreastMNIST at
28x28 is also shipped with medinv as `breastmnist`.

Selection (loader options, `config.data.medmnist_*`): `medmnist_name` (e.g. pneumoniamnist)
and `medmnist_size` (28, 64, 128 or 224) pick `<name>.npz` (size 28; `<name>_28.npz` also
works) or `<name>_<size>.npz` in manual_dir. The file must hold the standard keys
train_images, train_labels, val_images, val_labels, test_images, test_labels; images
(n, s, s) grayscale or (n, s, s, 3) RGB uint8; labels (n,) or (n, 1) class indices. A
multi-label file (labels (n, k), k > 1, e.g. chestmnist) is rejected unless `medmnist_task`
picks one column, which becomes a binary label. The builder config is named
`<name>_<size>` (plus `_task<k>`), stores images at their native size (medinv.data.images
resizes them when loading) and records `class_names` in its metadata ('<name> class <i>':
the npz holds no label names; see the MedMNIST INFO table for them).
"""
from __future__ import annotations

import dataclasses
import os
import re
import zipfile

import numpy as np
import tensorflow_datasets as tfds

from medinv.core.errors import DataError
from medinv.data import npz as npz_lib
from medinv.data import tfds_util

SIZES = (28, 64, 128, 224)
SPLITS = {'train': 'train', 'validation': 'val', 'test': 'test'}  # split -> npz key prefix
CLASS_NAMES = ()  # Per file: see builder.info.metadata['class_names'].
OPTIONS = ('medmnist_name', 'medmnist_size', 'medmnist_task')

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
medmnist: download a MedMNIST v2 npz from https://medmnist.com/ (the files are hosted on
Zenodo; the `medmnist` Python package downloads the same files) and put it, unrenamed, in
manual_dir:
  <manual_dir>/<name>.npz           28x28, e.g. pneumoniamnist.npz
  <manual_dir>/<name>_<size>.npz    size 64, 128 or 224, e.g. pneumoniamnist_64.npz
then pass --config.data.manual_dir=<manual_dir> --config.data.medmnist_name=<name>
(and --config.data.medmnist_size=<size>; --config.data.medmnist_task=<k> for a multi-label
set such as chestmnist).
"""


def find_file(manual_dir, name: str, size: int) -> str:
  """The npz for (name, size) in manual_dir; DataError listing what is there otherwise."""
  names = [f'{name}.npz', f'{name}_28.npz'] if size == 28 else [f'{name}_{size}.npz']
  for candidate in names:
    path = os.path.join(manual_dir, candidate)
    if os.path.isfile(path):
      return path
  present = sorted(f for f in os.listdir(manual_dir) if f.endswith('.npz'))
  raise DataError(f'medmnist: {" or ".join(names)} not found in {manual_dir} (npz files '
                  f'there: {present or "none"}); {tfds_util.how_to_get("medmnist")}')


@dataclasses.dataclass(frozen=True)
class Summary:
  """What the checks found in a MedMNIST file."""
  path: str
  channels: int
  labels: dict[str, np.ndarray]  # split -> (n,) int64, after task selection
  class_names: tuple[str, ...]


def inspect(path, name: str, size: int, task: int = -1) -> Summary:
  """Checks an npz completely except for decompressing the images; returns its labels.

  Raises:
    DataError: naming the file and what is wrong (unreadable file, missing keys, image
      shape or dtype, mismatched lengths, multi-label without a task, bad label values).
  """
  with npz_lib.open_npz(path) as npz:
    wanted = [f'{p}_{kind}' for p in SPLITS.values() for kind in ('images', 'labels')]
    missing = [k for k in wanted if k not in npz.files]
    if missing:
      raise DataError(f'{path}: missing keys {missing}; found {sorted(npz.files)}')
    labels, channels = {}, None
    for split, prefix in SPLITS.items():
      shape, dtype = npz_lib.array_header(npz, f'{prefix}_images')
      if len(shape) == 3:
        shape = shape + (1,)
      if len(shape) != 4 or shape[1:3] != (size, size) or shape[3] not in (1, 3):
        raise DataError(f'{path}: {prefix}_images has shape {shape}, expected (n, {size}, '
                        f'{size}) or (n, {size}, {size}, 3) (a 2D MedMNIST file of size '
                        f'{size}; 3D sets are not supported)')
      if dtype != np.uint8:
        raise DataError(f'{path}: {prefix}_images has dtype {dtype}, expected uint8')
      if channels not in (None, shape[3]):
        raise DataError(f'{path}: {prefix}_images has {shape[3]} channels, other splits '
                        f'{channels}')
      channels = shape[3]
      split_labels = np.asarray(npz[f'{prefix}_labels'])
      npz_lib.check_lengths(path, f'{prefix}_images', shape[0], f'{prefix}_labels',
                            len(split_labels))
      labels[split] = _select_task(path, f'{prefix}_labels', split_labels, task)
  if task >= 0:
    class_names = (f'{name} task {task} negative', f'{name} task {task} positive')
  else:
    num_classes = int(max(l.max(initial=0) for l in labels.values())) + 1
    class_names = tuple(f'{name} class {i}' for i in range(max(num_classes, 2)))
  return Summary(str(path), channels, labels, class_names)


def _select_task(path, key: str, labels: np.ndarray, task: int) -> np.ndarray:
  """(n,), (n, 1) or (n, k) labels -> (n,) int64, checking the values."""
  if labels.ndim == 1:
    labels = labels[:, None]
  if labels.ndim != 2:
    raise DataError(f'{path}: {key} has shape {labels.shape}, expected (n,) or (n, 1)')
  if labels.shape[1] > 1 and task < 0:
    raise DataError(f'{path}: {key} is multi-label ({labels.shape[1]} tasks per image); '
                    f'choose one task with --config.data.medmnist_task=<0..'
                    f'{labels.shape[1] - 1}> to train a binary classifier on it')
  if task >= labels.shape[1]:
    raise DataError(f'{path}: medmnist_task={task} but {key} has {labels.shape[1]} task(s)')
  column = npz_lib.class_indices(path, key, labels[:, max(task, 0)])
  if task >= 0 and np.any(column > 1):
    raise DataError(f'{path}: {key} task {task} is not binary ({np.unique(column)[:10]})')
  return column


@dataclasses.dataclass(eq=False)
class MedmnistConfig(tfds.core.BuilderConfig):
  medmnist_name: str = ''
  size: int = 28
  task: int = -1


def builder_config(image_size: int | None = None, medmnist_name: str = '',
                   medmnist_size: int = 28, medmnist_task: int = -1) -> MedmnistConfig:
  """Config for one MedMNIST file; image_size is applied when loading, not here."""
  del image_size
  if not re.fullmatch(r'[a-z0-9]+', medmnist_name or ''):
    raise ValueError(f'medmnist needs a dataset name such as pneumoniamnist '
                     f'(--config.data.medmnist_name), got {medmnist_name!r}')
  if medmnist_size not in SIZES:
    raise ValueError(f'medmnist_size must be one of {SIZES}, got {medmnist_size}')
  name = f'{medmnist_name}_{medmnist_size}' + (f'_task{medmnist_task}'
                                               if medmnist_task >= 0 else '')
  return MedmnistConfig(name=name, medmnist_name=medmnist_name, size=medmnist_size,
                        task=medmnist_task, description=f'MedMNIST {name}')


class Medmnist(tfds.core.GeneratorBasedBuilder):
  """One MedMNIST v2 2D file at its native size, official train/validation/test splits."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Any MedMNIST v2 2D npz.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS

  def _info(self) -> tfds.core.DatasetInfo:
    size = self.builder_config.size if self.builder_config else None
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            # Channels (1 or 3) depend on the file.
            'image': tfds.features.Tensor(shape=(size, size, None), dtype=np.uint8),
            'label': tfds.features.Tensor(shape=(), dtype=np.int64),
        }),
        supervised_keys=('image', 'label'),
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(),
        homepage='https://medmnist.com/',
    )

  def manual_files(self, manual_dir: str) -> list[str]:
    """The file a build reads (medinv.data.tfds_util records it with the build)."""
    config = self.builder_config
    return [] if config is None else [find_file(manual_dir, config.medmnist_name, config.size)]

  def _split_generators(self, dl_manager):
    if self.builder_config is None:
      raise DataError('medmnist: choose a file with --config.data.medmnist_name (and '
                      f'medmnist_size); {tfds_util.how_to_get("medmnist")}')
    config = self.builder_config
    path = find_file(dl_manager.manual_dir, config.medmnist_name, config.size)
    summary = inspect(path, config.medmnist_name, config.size, config.task)
    self.info.metadata['class_names'] = list(summary.class_names)
    self.info.metadata['channels'] = summary.channels
    self.info.metadata['file'] = os.path.basename(path)
    return {split: self._generate_examples(summary, split) for split in SPLITS}

  def _generate_examples(self, summary: Summary, split: str):
    key = f'{SPLITS[split]}_images'
    try:
      with np.load(summary.path) as npz:
        images = npz[key]
    except (OSError, ValueError, zipfile.BadZipFile) as e:  # e.g. a bad CRC: damaged download
      raise DataError(f'{summary.path}: cannot read {key} ({e})') from e
    images = images.reshape(images.shape[:3] + (summary.channels,))
    for i, (image, label) in enumerate(zip(images, summary.labels[split])):
      yield i, {'image': image, 'label': label}


Builder = Medmnist
