"""MedMNIST v2 BreastMNIST (780 breast-ultrasound images, 28x28 grayscale), shipped as package data.

Source: MedMNIST v2 (Yang et al., Scientific Data 10:41, 2023), built from Al-Dhabyani et al.,
"Dataset of breast ultrasound images", Data in Brief 2020; CC BY 4.0. Official splits
546/78/156. Labels: 0 = malignant, 1 = normal or benign.
"""
from __future__ import annotations

import importlib.resources

import numpy as np
import tensorflow_datasets as tfds

from medinv.core.errors import DataError

CLASS_NAMES = ('malignant', 'normal or benign')
SPLITS = {'train': 546, 'validation': 78, 'test': 156}
_NPZ_PREFIX = {'train': 'train', 'validation': 'val', 'test': 'test'}


def read_npz(path, split: str) -> tuple[np.ndarray, np.ndarray]:
  """Returns (images (n, 28, 28, 1) uint8, labels (n,) int64) of one MedMNIST split."""
  prefix = _NPZ_PREFIX[split]
  with np.load(path) as npz:
    missing = [k for k in (f'{prefix}_images', f'{prefix}_labels') if k not in npz]
    if missing:
      raise DataError(f'{path}: missing keys {missing}; found {sorted(npz.keys())}')
    images, labels = npz[f'{prefix}_images'], npz[f'{prefix}_labels'].reshape(-1)
  if len(images) != len(labels):
    raise DataError(f'{path}: {prefix}_images has {len(images)} entries but '
                    f'{prefix}_labels has {len(labels)}')
  return images.reshape(images.shape[:3] + (1,)).astype(np.uint8), labels.astype(np.int64)


class Breastmnist(tfds.core.GeneratorBasedBuilder):
  """BreastMNIST at its native 28x28; medinv.data.images resizes when loading."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'MedMNIST v2 BreastMNIST, 28x28.'}

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
            'label': tfds.features.Tensor(shape=(), dtype=np.int64),
        }),
        supervised_keys=('image', 'label'),
        disable_shuffling=True,
        homepage='https://medmnist.com/',
        license='CC BY 4.0',
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Shipped with medinv; nothing to download.
    path = importlib.resources.files('medinv.data') / 'files' / 'breastmnist.npz'
    return {split: self._generate_examples(path, split) for split in SPLITS}

  def _generate_examples(self, path, split):
    images, labels = read_npz(path, split)
    for i, (image, label) in enumerate(zip(images, labels)):
      yield i, {'image': image, 'label': label}
Builder = Breastmnist
