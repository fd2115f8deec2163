"""Datasets by name. `load(name, ...)` returns `records.Records` or `images.Images`.

Embedded (shipped with medinv): heart_disease (records), breastmnist (images).
"""
from __future__ import annotations

import dataclasses

import jax
import numpy as np

from medinv.data import breastmnist
from medinv.data import heart_disease
from medinv.data import images
from medinv.data import records
from medinv.data import tfds_util
from medinv.data.tfds_util import DataError

RECORD_DATASETS = {'heart_disease': heart_disease}
IMAGE_DATASETS = {'breastmnist': breastmnist}


def known() -> list[str]:
  return sorted({**RECORD_DATASETS, **IMAGE_DATASETS})


def check_name(name: str) -> None:
  if name not in RECORD_DATASETS and name not in IMAGE_DATASETS:
    raise ValueError(f'unknown dataset {name!r}; known datasets: {", ".join(known())}')


def is_records(name: str) -> bool:
  check_name(name)
  return name in RECORD_DATASETS


def load_records(name: str, *, data_dir: str | None = None,
                 manual_dir: str | None = None) -> records.Records:
  """Builds (once) and reads a record dataset: every record, in source order."""
  check_name(name)
  if name not in RECORD_DATASETS:
    raise ValueError(f'{name!r} is an image dataset; record datasets: {sorted(RECORD_DATASETS)}')
  module = RECORD_DATASETS[name]
  builder = tfds_util.prepare(module.Builder, data_dir=data_dir, manual_dir=manual_dir)
  arrays = tfds_util.read_split(builder, 'train')
  return records.Records(features=arrays['features'].astype(np.float32),
                         labels=arrays['label'].astype(np.int32),
                         columns=module.COLUMNS, class_names=module.CLASS_NAMES)


def load_images(name: str, *, image_size: int, data_dir: str | None = None,
                manual_dir: str | None = None) -> images.Images:
  """Builds (once) and reads an image dataset, resized to image_size (see images.resize)."""
  check_name(name)
  if name not in IMAGE_DATASETS:
    raise ValueError(f'{name!r} is a record dataset; image datasets: {sorted(IMAGE_DATASETS)}')
  images.check_image_size(image_size)
  module = IMAGE_DATASETS[name]
  builder = tfds_util.prepare(module.Builder, data_dir=data_dir, manual_dir=manual_dir)
  splits = {}
  for split in builder.info.splits:
    arrays = tfds_util.read_split(builder, split)
    splits[split] = (images.resize(arrays['image'], image_size), arrays['label'].astype(np.int32))
  return images.Images(train=splits['train'], validation=splits.get('validation'),
                       test=splits['test'], class_names=module.CLASS_NAMES)


@dataclasses.dataclass(frozen=True)
class Task:
  """Model-ready arrays for one dataset, plus what attacks need to query like the model.

  x_*: model inputs (z-scored records, or images in [0, 1]); y_*: int32 labels.
  For record datasets `records_train/test` hold the raw records and `scaler` maps raw
  features to model inputs (the deployed model is `apply(params, scaler(raw))`).
  """
  name: str
  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  class_names: tuple[str, ...]
  records_train: records.Records | None = None
  records_test: records.Records | None = None
  scaler: records.Scaler | None = None

  @property
  def num_classes(self) -> int:
    return len(self.class_names)


def load_task(config) -> Task:
  """Loads `config.dataset` (a `configs.common.data_config`) into a `Task`."""
  kwargs = dict(data_dir=config.data_dir or None, manual_dir=config.manual_dir or None)
  if is_records(config.dataset):
    all_records = load_records(config.dataset, **kwargs)
    train, test = records.split(all_records, jax.random.key(config.split_seed),
                                config.test_fraction)
    scaler = records.Scaler.fit(train.features)
    return Task(config.dataset, scaler(train.features), train.labels, scaler(test.features),
                test.labels, all_records.class_names, train, test, scaler)
  loaded = load_images(config.dataset, image_size=config.image_size, **kwargs)
  return Task(config.dataset, *loaded.train, *loaded.test, loaded.class_names)
