"""Shared TFDS plumbing: where datasets are built, and reading a split into NumPy.

Every medinv dataset is a `tfds.core.GeneratorBasedBuilder` writing array_record files, read
back through `builder.as_data_source()` (the same path as `tfds.data_source`). TensorFlow is
never imported. A build is atomic: TFDS writes into an `incomplete.*` folder and renames it
only when every split is written, so a failed build leaves nothing a later run would use.
"""
from __future__ import annotations

import hashlib
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


def resolve_path(path: str, manual_dir: str | None, field: str = 'config.data.path') -> str:
  """The absolute path of a user's file or folder: relative paths are taken from manual_dir
  when one is given, else from the working directory. DataError naming `field` when empty."""
  if not path:
    raise DataError(f'{field} is empty: name your file or folder (a relative path is taken '
                    'from config.data.manual_dir)')
  path = os.path.expanduser(path)
  if not os.path.isabs(path) and manual_dir:
    path = os.path.join(os.path.expanduser(manual_dir), path)
  return os.path.abspath(path)


def fingerprint(*parts: str | bytes) -> str:
  """12 hex digits of SHA-256 over `parts`: the key of a build made from a user's files."""
  digest = hashlib.sha256()
  for part in parts:
    digest.update(part.encode() if isinstance(part, str) else part)
    digest.update(b'\0')
  return digest.hexdigest()[:12]


def file_digest(path: str) -> str:
  """SHA-256 of a file's bytes (read in 1 MiB blocks)."""
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      digest.update(block)
  return digest.hexdigest()
