"""Shared TFDS plumbing: where datasets are built, and reading a split into NumPy.

Every medinv dataset is a `tfds.core.GeneratorBasedBuilder` writing array_record files, read
back through `builder.as_data_source()` (the same path as `tfds.data_source`). TensorFlow is
never imported. A build is atomic: TFDS writes into an `incomplete.*` folder and renames it
only when every split is written, so a failed build leaves nothing a later run would use.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np
import tensorflow_datasets as tfds

from medinv.core.errors import DataError

ENV_DATA_DIR = 'MEDINV_DATA_DIR'


def default_data_dir() -> str:
  """`$MEDINV_DATA_DIR`, else `~/.cache/medinv/tensorflow_datasets`."""
  return os.environ.get(ENV_DATA_DIR) or os.path.join(
      os.path.expanduser('~'), '.cache', 'medinv', 'tensorflow_datasets')


def check_writable(data_dir: str) -> None:
  """Raises DataError naming `data_dir` when datasets cannot be built there."""
  try:
    os.makedirs(data_dir, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=data_dir):
      pass
  except OSError as e:
    raise DataError(
        f'data_dir {data_dir!r} is not writable ({e.strerror}); pass a writable '
        f'--config.data_dir or set ${ENV_DATA_DIR}.') from e


def prepare(builder_cls, *, data_dir: str | None = None, manual_dir: str | None = None,
            config: str | tfds.core.BuilderConfig | None = None) -> tfds.core.DatasetBuilder:
  """Builds the dataset once into `data_dir` (reused afterwards) and returns the builder.

  Builders with MANUAL_DOWNLOAD_INSTRUCTIONS need `manual_dir` (a folder with the files the
  user downloaded) for their first build; without one the DataError carries the instructions.
  """
  data_dir = data_dir or default_data_dir()
  kwargs = dict(data_dir=data_dir, file_format='array_record')
  if config is not None:
    kwargs['config'] = config
  builder = builder_cls(**kwargs)
  if not builder.is_prepared():
    instructions = getattr(builder_cls, 'MANUAL_DOWNLOAD_INSTRUCTIONS', None)
    if instructions and not (manual_dir and os.path.isdir(manual_dir)
                             and os.listdir(manual_dir)):
      # TFDS itself asserts on an empty manual_dir before the builder can name its files.
      problem = ('no manual_dir was given (--config.data.manual_dir)' if not manual_dir else
                 f'manual_dir {manual_dir!r} is not a directory'
                 if not os.path.isdir(manual_dir) else f'manual_dir {manual_dir!r} is empty')
      raise DataError(f'{builder.name}: not built in {data_dir} yet and {problem}.\n'
                      f'{instructions}')
    check_writable(data_dir)
    download_config = tfds.download.DownloadConfig(manual_dir=manual_dir or None)
    tfds.disable_progress_bar()
    builder.download_and_prepare(download_config=download_config)
  return builder


def read_split(builder: tfds.core.DatasetBuilder, split: str) -> dict[str, np.ndarray]:
  """Reads a whole split into a dict of stacked NumPy arrays, in stored order.

  Builders with `EXAMPLES_ARE_CHUNKS = True` store consecutive records in chunks (one
  example holds up to a few thousand records; decoding one example costs ~40 us, so
  70,000 one-record examples would take seconds); their chunks are concatenated.
  """
  source = builder.as_data_source(split=split)
  examples = source.__getitems__(list(range(len(source))))
  if not examples:
    raise DataError(f'{builder.name}: split {split!r} is empty')
  join = np.concatenate if getattr(builder, 'EXAMPLES_ARE_CHUNKS', False) else np.stack
  return {key: join([ex[key] for ex in examples]) for key in examples[0]}
