"""Shared config pieces and the `get_config(arg)` argument parser.

`arg` is a small `key=value,...` string after the config path, e.g.
`--config=configs/train_breastmnist.py:smoke` or `configs/inversion_breastmnist.py:split=4,smoke`.
A bare key is a boolean flag set to True. Each config declares the keys it accepts, with
defaults whose types the values are parsed to; an unknown key is an error that lists them.
"""
from __future__ import annotations

import importlib.util
import os

import ml_collections

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
  """Parses `key=value,flag` against `defaults` (name -> default value, typed)."""
  parsed = dict(defaults)
  for item in filter(None, (arg or '').split(',')):
    key, _, value = item.partition('=')
    key = key.strip()
    if key not in defaults:
      raise ValueError(f'unknown config argument {key!r} in {arg!r}; allowed: '
                       f'{", ".join(sorted(defaults)) or "(none)"}')
    default = defaults[key]
    if not _:
      if not isinstance(default, bool):
        raise ValueError(f'config argument {key!r} needs a value ({key}=...)')
      parsed[key] = True
    elif isinstance(default, bool):
      if value.lower() not in ('true', 'false', '1', '0'):
        raise ValueError(f'config argument {key}={value!r}: expected true or false')
      parsed[key] = value.lower() in ('true', '1')
    else:
      try:
        parsed[key] = type(default)(value)
      except ValueError as e:
        raise ValueError(f'config argument {key}={value!r}: expected {type(default).__name__}'
                         ) from e
  return ml_collections.ConfigDict(parsed)


def data_config(dataset: str, **overrides) -> ml_collections.ConfigDict:
  """Where the data comes from and how it is split.

  data_dir: where TFDS builds datasets ('' = $MEDINV_DATA_DIR or ~/.cache/medinv/...).
  manual_dir: folder with files a user downloaded (paper-scale datasets).
  image_size: side length images are resized to (a multiple of 8).
  test_fraction / split_seed: record datasets (and image_folder / npz without split folders
    or keys) have no official split; a fixed permutation from `split_seed` (independent of
    the run seed) holds out `test_fraction` of them.
  validation_fraction / validation_seed: a dataset without a validation split of its own
    (heart_disease, cardio, a CSV, images without one) holds out `validation_fraction` of its
    training records as validation records, by a fixed permutation from `validation_seed`
    (independent of the run seed and of split_seed's test split: the test records stay the
    same); the model then trains on the rest. 0 = none (every training record trains).
    Validation accuracy (results.json / results.csv) is what training choices are made on.
  Dataset options (ignored by datasets that do not list them in their module's OPTIONS):
  clean: cardio drops records with implausible measurements.
  variant: mias 'severity' (normal/benign/malignant) or 'abnormal'; cbis_ddsm 'full' or
    'roi'; '' = the dataset's default.
  medmnist_name / medmnist_size / medmnist_task: which MedMNIST npz (<name>.npz or
    <name>_<size>.npz) and, for multi-label sets, which task (-1 = none).
  Your own data (datasets csv, image_folder, npz):
  path: the CSV file, the image folder or the npz file; a relative path is taken from
    manual_dir when one is given, else from the working directory.
  schema: the CSV's declared columns (csv only; see configs/schemas/ and `load_schema`).
  scaling (record datasets): '' = a CSV schema's declared bounds, else z-scores fitted on the
    training records; 'bounds' = declared public bounds (heart_disease's PUBLIC_BOUNDS), the
    only scaling DP-SGD's epsilon covers (DP runs refuse ''); 'fit' = z-scores regardless.
  """
  config = ml_collections.ConfigDict(dict(
      dataset=dataset, data_dir='', manual_dir='', image_size=32, test_fraction=0.2,
      split_seed=0, validation_fraction=0.0, validation_seed=0, clean=False, variant='',
      medmnist_name='', medmnist_size=28, medmnist_task=-1, path='',
      schema=ml_collections.ConfigDict(), scaling=''))
  config.update(overrides)
  return config


def train_config(**overrides) -> ml_collections.ConfigDict:
  """Target-model training: Adam, mini-batches, orbax checkpoints every N epochs.

  learning_rate / schedule / warmup_epochs: Adam's step size (medinv.training.optimizer):
    'constant' keeps it, 'cosine' decays it to 0 over num_epochs along a half cosine; either
    first rises linearly from 0 over warmup_epochs (0 = no warmup).
  weight_decay: AdamW's decoupled weight decay (0 = Adam).
  augment_flip: mirror each training image left-right with probability 1/2 (images only).
  augment_shift: move each training image by a random whole number of pixels, up to this
    many, along each axis, filling with 0 (images only; 0 = no shift).

  dp: DP-SGD (medinv.training.dp_sgd). target_epsilon inf trains without it; a finite one calibrates
    the noise multiplier to reach it at delta (0 = 1 / (100 N), medinv.training.dp_sgd's
    default_delta) with per-example gradients clipped to
    clip_norm and Poisson-sampled batches of expected size batch_size.
  nopeek_weight / nopeek_split: NoPeek's distance-correlation penalty between the inputs and
    the features hospital A sends at split point nopeek_split of config.model (0 = none; an
    int field: SplitCNN's 2, 4, 6, or a model registered with int split points).
  """
  config = ml_collections.ConfigDict(dict(
      num_epochs=100, batch_size=32, learning_rate=1e-3, weight_decay=0.0,
      checkpoint_every_epochs=10, schedule='constant', warmup_epochs=0, augment_flip=False,
      augment_shift=0, label_flip_prob=0.0,
      dp=dict(target_epsilon=float('inf'), delta=0.0, clip_norm=1.0),
      nopeek_weight=0.0, nopeek_split=4))
  config.update(overrides)
  return config


def load_schema(path: str) -> ml_collections.ConfigDict:
  """The block a schema file's get_config() returns (a CSV's declared columns; see
  configs/schemas/). A relative path is taken from the working directory, else from the
  repository root."""
  if not os.path.isabs(path) and not os.path.isfile(path):
    path = os.path.join(REPO, path)
  if not os.path.isfile(path):
    raise ValueError(f'config argument schema={path!r}: no such file (a schema file is a '
                     'Python file with get_config(); see configs/schemas/)')
  spec = importlib.util.spec_from_file_location('medinv_schema', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, 'get_config'):
    raise ValueError(f'schema file {path} defines no get_config()')
  return module.get_config()


def csv_data(schema_path: str, **overrides) -> ml_collections.ConfigDict:
  """data_config for dataset 'csv' from a schema file: its `path` names the CSV (relative to
  manual_dir), the rest is config.data.schema."""
  schema = load_schema(schema_path)
  path = schema.get('path', '')
  if 'path' in schema:
    del schema['path']
  return data_config('csv', path=path, schema=schema, **overrides)


def base_config(dataset: str, model: str, **data_overrides) -> ml_collections.ConfigDict:
  """seed + data + model + train: everything needed to produce a target model (model: a
  registered model, medinv.models: 'mlp', 'split_cnn' or one of your own)."""
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.data = data_config(dataset, **data_overrides)
  config.model = model
  config.train = train_config()
  return config
