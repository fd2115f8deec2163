"""Datasets by name. `load(name, ...)` returns `records.Records` or `images.Images`.

Embedded (shipped with medinv): heart_disease (records), breastmnist (images).
Manual (built from files the user downloads into `manual_dir`): cardio (records), mias,
cbis_ddsm, medmnist (images); `describe()` prints where to get them.
A user's own images (`config.data.path`): image_folder (one subfolder per class), npz.

Builder options: a dataset module may define `OPTIONS` (names of `config.data` fields) and
`builder_config(**options)` (image modules also receive `image_size`) returning the TFDS
builder config those options select, e.g. cardio `clean`, mias/cbis_ddsm `variant`, medmnist
`medmnist_name`/`medmnist_size`/`medmnist_task`.
"""
from __future__ import annotations

import dataclasses
import os

from absl import logging
import jax
import numpy as np

from medinv.data import breastmnist
from medinv.data import cardio
from medinv.data import cbis_ddsm
from medinv.data import csv_table
from medinv.data import heart_disease
from medinv.data import image_folder
from medinv.data import images
from medinv.data import medmnist
from medinv.data import mias
from medinv.data import npz
from medinv.data import records
from medinv.data import tfds_util
from medinv.core.errors import DataError

RECORD_DATASETS = {'heart_disease': heart_disease, 'cardio': cardio, 'csv': csv_table}
IMAGE_DATASETS = {'breastmnist': breastmnist, 'mias': mias, 'cbis_ddsm': cbis_ddsm,
                  'medmnist': medmnist, 'image_folder': image_folder, 'npz': npz}


def known() -> list[str]:
  return sorted({**RECORD_DATASETS, **IMAGE_DATASETS})


def check_name(name: str) -> None:
  if name not in RECORD_DATASETS and name not in IMAGE_DATASETS:
    raise ValueError(f'unknown dataset {name!r}; known datasets: {", ".join(known())}')


def reads_manual_dir(name: str) -> bool:
  """Whether dataset `name` reads config.data.manual_dir: the files a user downloaded (cardio,
  mias, cbis_ddsm, medmnist), or a user's own file whose relative path is taken from it
  (csv, image_folder, npz). The datasets shipped with medinv (heart_disease, breastmnist)
  read none."""
  check_name(name)
  module = RECORD_DATASETS.get(name) or IMAGE_DATASETS[name]
  return (bool(getattr(module.Builder, 'MANUAL_DOWNLOAD_INSTRUCTIONS', None))
          or 'path' in getattr(module, 'OPTIONS', ()))


SCALINGS = ('', 'bounds', 'fit')


def public_bounds(name: str) -> dict[str, tuple[float, float]]:
  """A built-in record dataset's declared public bounds per column ({} when it has none)."""
  return dict(getattr(RECORD_DATASETS.get(name), 'PUBLIC_BOUNDS', {}))


def check_config(config, private: bool = False) -> None:
  """Checks `config` (config.data) before anything is loaded: a known dataset, no
  manual_dir for a dataset that reads none (it would be ignored without a word), and with
  DP-SGD (`private`) no scaling from the private training records' statistics, which the
  accounted epsilon does not cover.

  Raises:
    ValueError: naming the config field and what is allowed.
  """
  check_name(config.dataset)
  if config.get('manual_dir') and not reads_manual_dir(config.dataset):
    readers = ', '.join(name for name in known() if reads_manual_dir(name))
    raise ValueError(f'config.data.manual_dir {config.manual_dir!r}: dataset '
                     f'{config.dataset!r} ships with medinv and reads no files from it; drop '
                     f'--config.data.manual_dir (datasets that read it: {readers})')
  fraction = config.get('validation_fraction', 0.0)
  if not 0.0 <= fraction < 1.0:
    raise ValueError(f'config.data.validation_fraction must be in [0, 1) (the share of the '
                     f'training records held out for validation; 0 = none), got {fraction}')
  scaling = config.get('scaling', '')
  if scaling not in SCALINGS:
    raise ValueError(f'config.data.scaling must be one of {SCALINGS} (\'\': a CSV schema\'s '
                     f'bounds, else z-scores of the training records), got {scaling!r}')
  if not is_records(config.dataset) or config.dataset == 'csv':
    return  # Images are in [0, 1]; a CSV schema declares bounds.
  if scaling == 'bounds' and not public_bounds(config.dataset):
    raise ValueError(f'config.data.scaling \'bounds\': dataset {config.dataset!r} declares no '
                     'public bounds; use \'fit\' or a CSV with a schema (dataset csv)')
  if private and not scaling:
    raise ValueError('config.data.scaling: with DP-SGD the features must not be z-scored with '
                     'the private training records\' statistics (epsilon does not cover them); '
                     'set --config.data.scaling=bounds (declared public bounds) or, accepting '
                     'that, =fit')


def is_records(name: str) -> bool:
  check_name(name)
  return name in RECORD_DATASETS


def _builder_config(name: str, module, image_size: int | None = None, **options):
  """The module's builder config for `options` (None for modules without options)."""
  if hasattr(module, 'builder_config'):
    sizes = {} if image_size is None else {'image_size': image_size}
    return module.builder_config(**sizes, **options)
  if any(options.values()):
    raise ValueError(f'dataset {name!r} takes no options, got {options}')
  return None


def load_records(name: str, *, data_dir: str | None = None,
                 manual_dir: str | None = None, **options) -> records.Records:
  """Builds (once) and reads a record dataset: every record, in source order.

  `options` are the module's OPTIONS, e.g. `clean=True` for cardio.
  """
  check_name(name)
  if name not in RECORD_DATASETS:
    raise ValueError(f'{name!r} is an image dataset; record datasets: {sorted(RECORD_DATASETS)}')
  module = RECORD_DATASETS[name]
  builder = tfds_util.prepare(module.Builder, data_dir=data_dir, manual_dir=manual_dir,
                              config=_builder_config(name, module, **options))
  dropped = (builder.info.metadata or {}).get('dropped', {}).get('total')
  if dropped:
    logging.info('%s/%s: %d implausible records dropped', name, builder.builder_config.name,
                 dropped)
  arrays = tfds_util.read_split(builder, 'train')
  metadata = builder.info.metadata or {}
  return records.Records(
      features=arrays['features'].astype(np.float32), labels=arrays['label'].astype(np.int32),
      columns=module.columns(builder) if hasattr(module, 'columns') else module.COLUMNS,
      class_names=tuple(metadata.get('class_names') or module.CLASS_NAMES),
      lines=arrays.get('line'), ids=np.asarray(metadata['ids']) if metadata.get('ids') else None)


def load_images(name: str, *, image_size: int, data_dir: str | None = None,
                manual_dir: str | None = None, split_seed: int = 0, test_fraction: float = 0.2,
                **options) -> images.Images:
  """Builds (once) and reads an image dataset, resized to image_size (see images.resize).

  `options` are the module's OPTIONS, e.g. `variant='roi'` for cbis_ddsm,
  `medmnist_name='pneumoniamnist'` for medmnist or `path` (relative to manual_dir when one
  is given) for image_folder and npz. A dataset without a split layout (images.POOL_SPLIT)
  is split into train and test here by split_seed and test_fraction, as records are.
  """
  check_name(name)
  if name not in IMAGE_DATASETS:
    raise ValueError(f'{name!r} is a record dataset; image datasets: {sorted(IMAGE_DATASETS)}')
  images.check_image_size(image_size)
  module = IMAGE_DATASETS[name]
  if 'path' in options:
    options['path'] = tfds_util.resolve_path(options['path'], manual_dir)
  config = _builder_config(name, module, image_size, **options)
  builder = tfds_util.prepare(module.Builder, data_dir=data_dir, manual_dir=manual_dir,
                              config=config)
  splits = {}
  for split in builder.info.splits:
    arrays = tfds_util.read_split(builder, split)
    splits[split] = (images.resize(arrays['image'], image_size), arrays['label'].astype(np.int32))
  if images.POOL_SPLIT in splits:
    pool_images, pool_labels = splits.pop(images.POOL_SPLIT)
    train, test = records.split_indices(jax.random.key(split_seed), len(pool_labels),
                                        test_fraction)
    splits.update(train=(pool_images[train], pool_labels[train]),
                  test=(pool_images[test], pool_labels[test]))
  class_names = ((builder.info.metadata or {}).get('class_names')
                 or getattr(builder.builder_config, 'class_names', None) or module.CLASS_NAMES)
  return images.Images(train=splits['train'], validation=splits.get('validation'),
                       test=splits['test'], class_names=tuple(class_names))


def source_name(config) -> str:
  """What results name the data by (`config` is config.data): the dataset, and for a user's
  own file or folder its name too, e.g. 'csv:heart_disease_uci.csv'."""
  path = config.get('path', '') if 'path' in getattr(
      RECORD_DATASETS.get(config.dataset) or IMAGE_DATASETS.get(config.dataset), 'OPTIONS',
      ()) else ''
  return f'{config.dataset}:{os.path.basename(os.path.normpath(path))}' if path else config.dataset


def declared_columns(config) -> tuple[records.Column, ...]:
  """A record dataset's feature columns before loading it (`config` is config.data); a CSV's
  come from its schema (categorical values read from the file are not known yet)."""
  module = RECORD_DATASETS[config.dataset]
  if hasattr(module, 'declared_columns'):
    return module.declared_columns(config.schema)
  return module.COLUMNS


def declared_num_classes(config) -> int | None:
  """The class count `config.data` fixes before loading; None where the data decides it."""
  check_name(config.dataset)
  module = RECORD_DATASETS.get(config.dataset) or IMAGE_DATASETS[config.dataset]
  if hasattr(module, 'declared_num_classes'):
    return module.declared_num_classes(config.schema)
  options = set(getattr(module, 'OPTIONS', ())) - {'clean'}  # cardio's 'clean' keeps classes.
  names = getattr(module, 'CLASS_NAMES', ())
  return len(names) if names and not options else None


@dataclasses.dataclass(frozen=True)
class Task:
  """Model-ready arrays for one dataset, plus what attacks need to query like the model.

  x_*: model inputs (z-scored records, or images in [0, 1]); y_*: int32 labels.
  x_val, y_val: the validation split (the dataset's own, or carved out of the training records
  by config.data.validation_fraction, `carve_validation`); None without one.
  For record datasets `records_train/test/validation` hold the raw records and `scaler` maps
  raw features to model inputs (the deployed model is `apply(params, scaler(raw))`).
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
  x_val: np.ndarray | None = None
  y_val: np.ndarray | None = None
  records_validation: records.Records | None = None

  @property
  def num_classes(self) -> int:
    return len(self.class_names)


def scaler_for(config, all_records: records.Records, train: records.Records) -> records.Scaler:
  """config.scaling's scaler: declared bounds (a CSV schema's, or the dataset's PUBLIC_BOUNDS
  under 'bounds'), else z-scores fitted on the training records."""
  columns = all_records.columns
  scaling = config.get('scaling', '')
  if scaling == 'bounds' and not all(column.bounds for column in columns):
    bounds = public_bounds(config.dataset)
    columns = tuple(dataclasses.replace(c, bounds=bounds[c.name]) for c in columns)
  if scaling != 'fit' and all(column.bounds for column in columns):
    return records.Scaler.from_bounds(columns)
  return records.Scaler.fit(train.features)


def validation_indices(config, n: int) -> tuple[np.ndarray, np.ndarray]:
  """(kept, validation) indices into n training records: config.validation_fraction of them
  by a permutation from fold_in(key(config.validation_seed), 1), independent of the run seed
  and of the test split's permutation (key(split_seed)) even when the two seeds are equal."""
  key = jax.random.fold_in(jax.random.key(config.validation_seed), 1)
  return records.split_indices(key, n, config.validation_fraction)


def carve_validation(config, name: str, train, validation):
  """(train, validation) with config.validation_fraction of train carved out as validation
  (`validation_indices`); unchanged when the fraction is 0. train / validation: Records, or
  (images, labels) pairs; validation is the dataset's own split or None.

  Raises:
    ValueError: a fraction > 0 for a dataset with a validation split of its own.
  """
  fraction = config.get('validation_fraction', 0.0)
  if not fraction:
    return train, validation
  if validation is not None:
    raise ValueError(f'config.data.validation_fraction {fraction}: dataset {name!r} has a '
                     f'validation split of its own ({len(validation[1])} records); set it to 0')
  kept, held = validation_indices(config, len(train) if isinstance(train, records.Records)
                                  else len(train[1]))
  if isinstance(train, records.Records):
    return train.take(kept), train.take(held)
  return (train[0][kept], train[1][kept]), (train[0][held], train[1][held])


def load_task(config) -> Task:
  """Loads `config.dataset` (a `configs.common.data_config`) into a `Task`."""
  kwargs = dict(data_dir=config.data_dir or None, manual_dir=config.manual_dir or None)
  module = RECORD_DATASETS.get(config.dataset) or IMAGE_DATASETS.get(config.dataset)
  kwargs.update({option: config[option] for option in getattr(module, 'OPTIONS', ())
                 if option in config})
  if 'path' in kwargs:
    kwargs['path'] = tfds_util.resolve_path(config.path, config.manual_dir)
  if is_records(config.dataset):
    all_records = load_records(config.dataset, **kwargs)
    train, test = records.split(all_records, jax.random.key(config.split_seed),
                                config.test_fraction)
    train, validation = carve_validation(config, config.dataset, train, None)
    scaler = scaler_for(config, all_records, train)
    val = {} if validation is None else dict(
        x_val=scaler(validation.features), y_val=validation.labels,
        records_validation=validation)
    return Task(config.dataset, scaler(train.features), train.labels, scaler(test.features),
                test.labels, all_records.class_names, train, test, scaler, **val)
  loaded = load_images(config.dataset, image_size=config.image_size,
                       split_seed=config.split_seed, test_fraction=config.test_fraction,
                       **kwargs)
  train, validation = carve_validation(config, config.dataset, loaded.train, loaded.validation)
  val = {} if validation is None else dict(x_val=validation[0], y_val=validation[1])
  return Task(config.dataset, *train, *loaded.test, loaded.class_names, **val)


def describe() -> str:
  """Every dataset: kind, whether it is shipped, its options, and download instructions."""
  lines = []
  for name in known():
    module = RECORD_DATASETS.get(name) or IMAGE_DATASETS[name]
    kind = 'records' if name in RECORD_DATASETS else 'images'
    layout = getattr(module, 'LAYOUT', None)  # a user's own files (config.data.path)
    instructions = layout or getattr(module.Builder, 'MANUAL_DOWNLOAD_INSTRUCTIONS', None)
    where = ('your own files' if layout else
             'manual download (manual_dir)' if instructions else 'shipped with medinv')
    options = ', '.join(f'config.data.{o}' for o in getattr(module, 'OPTIONS', ())) or 'none'
    summary = (module.__doc__ or '').strip().splitlines()[0]
    lines += [f'{name} ({kind}; {where}; options: {options})', f'  {summary}']
    if instructions:
      lines += ['  ' + line for line in instructions.rstrip().splitlines()]
    lines.append('')
  return '\n'.join(lines)


def list_datasets() -> str:
  """The text `--list_datasets` prints (same as describe())."""
  return describe()
