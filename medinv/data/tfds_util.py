"""Shared TFDS plumbing: where datasets are built, and reading a split into NumPy.

Every medinv dataset is a `tfds.core.GeneratorBasedBuilder` writing array_record files, read
back through `builder.as_data_source()` (the same path as `tfds.data_source`). TensorFlow is
never imported. A build is atomic: TFDS writes into an `incomplete.*` folder and renames it
only when every split is written, so a failed build leaves nothing a later run would use.

Builds are serialised per dataset, config and version by the lock file `<version>.lock`
beside the build's folder (medinv.core.locks): a second process that wants the same build
waits, then reads the finished one.

A dataset built from files the user downloaded (a builder with MANUAL_DOWNLOAD_INSTRUCTIONS:
cardio, mias, cbis_ddsm, medmnist) keeps RECORD_FILE in its folder: the name (relative to
manual_dir), size, modification time and SHA-256 of every file the build read (the builder's
`manual_files(manual_dir)`; every file under manual_dir for a builder without one). Before
reusing the build, `prepare` compares the record with manual_dir's files and rebuilds on a
changed, added or removed file, logging one line that names it. Rebuilding rather than
refusing: the build holds nothing but what its files give, so a rebuild is always right,
and one log line says why it happened. A file whose size and modification time match the
record counts as unchanged, so a check costs one `stat` per file; only a file with its old
size and a new time is hashed again. When manual_dir is not given or holds none of the
files, the build is used as it is (there is nothing to compare). A user's own files (csv,
image_folder, npz) need no record: their builder config is keyed by the file's SHA-256
(`fingerprint`), so a changed file is another build.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import shutil
import tempfile

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from medinv.core import errors
from medinv.core import locks
from medinv.core import report
from medinv.core.errors import DataError

ENV_DATA_DIR = 'MEDINV_DATA_DIR'
RECORD_FILE = 'medinv_manual_files.json'


def default_data_dir() -> str:
  """`$MEDINV_DATA_DIR`, else `~/.cache/medinv/tensorflow_datasets`."""
  return os.environ.get(ENV_DATA_DIR) or os.path.join(
      os.path.expanduser('~'), '.cache', 'medinv', 'tensorflow_datasets')


def how_to_get(name: str) -> str:
  """Where a manual dataset's download instructions are printed, for a one-line error."""
  return f'how to get the files: ./launch.sh --list_datasets (the {name} entry)'


def check_writable(data_dir: str) -> None:
  """Raises errors.UsageError (exit 2, like a workdir that is not writable) naming
  config.data.data_dir when datasets cannot be built in `data_dir`."""
  try:
    os.makedirs(data_dir, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=data_dir):
      pass
  except OSError as e:
    raise errors.UsageError(
        f'config.data.data_dir {data_dir!r} is not writable ({e.strerror}); pass a writable '
        f'--config.data.data_dir or set ${ENV_DATA_DIR}') from e


def _is_manual(builder_cls) -> bool:
  return bool(getattr(builder_cls, 'MANUAL_DOWNLOAD_INSTRUCTIONS', None))


def _check_manual_dir(builder, data_dir: str, manual_dir: str | None) -> None:
  """DataError with the download instructions when a manual build has no files to read."""
  instructions = getattr(builder, 'MANUAL_DOWNLOAD_INSTRUCTIONS', None)
  if instructions and not (manual_dir and os.path.isdir(manual_dir) and os.listdir(manual_dir)):
    # TFDS itself asserts on an empty manual_dir before the builder can name its files.
    problem = ('no manual_dir was given (--config.data.manual_dir)' if not manual_dir else
               f'manual_dir {manual_dir!r} is not a directory'
               if not os.path.isdir(manual_dir) else f'manual_dir {manual_dir!r} is empty')
    raise DataError(f'{builder.name}: not built in {data_dir} yet and {problem}; '
                    f'{how_to_get(builder.name)}')


def _label(builder) -> str:
  """'cardio/raw' (the dataset and its builder config)."""
  config = builder.builder_config
  return f'{builder.name}/{config.name}' if config is not None else builder.name


def _is_built(builder) -> bool:
  """`builder.is_prepared()` without its warning about a folder not built yet."""
  version_dir = os.fspath(builder.data_dir)
  return all(os.path.isfile(os.path.join(version_dir, name))
             for name in ('dataset_info.json', 'features.json'))


def _reusable(builder, manual_dir: str | None, log: bool) -> bool:
  """Whether the builder's data is built and (for a manual build) still matches manual_dir;
  with `log`, a stale build is reported in one line."""
  if not _is_built(builder):
    return False
  if not _is_manual(type(builder)) or not manual_dir:
    return True
  changed = manual_change(builder, manual_dir)
  if changed and log:
    logging.warning('%s in %s: %s; rebuilding it from %s', _label(builder),
                    os.fspath(builder.data_dir), changed, manual_dir)
  return changed is None


def prepare(builder_cls, *, data_dir: str | None = None, manual_dir: str | None = None,
            config: str | tfds.core.BuilderConfig | None = None) -> tfds.core.DatasetBuilder:
  """Builds the dataset once into `data_dir` (reused afterwards) and returns the builder.

  Builders with MANUAL_DOWNLOAD_INSTRUCTIONS need `manual_dir` (a folder with the files the
  user downloaded) for their first build; without one the DataError says where the download
  instructions are (`how_to_get`).
  Their build is redone when manual_dir's files differ from those it was built from. One
  process builds at a time; another one wanting the same build waits for it (see above).
  """
  data_dir = data_dir or default_data_dir()
  kwargs = dict(data_dir=data_dir, file_format='array_record')
  if config is not None:
    kwargs['config'] = config
  make = functools.partial(builder_cls, **kwargs)
  builder = make()
  if _reusable(builder, manual_dir, log=True):
    return builder
  _check_manual_dir(builder, data_dir, manual_dir)
  check_writable(data_dir)
  version_dir = os.fspath(builder.data_dir)
  with locks.exclusive(f'{version_dir}.lock', f'building {_label(builder)}'):
    builder = make()  # Another process may have built it while this one waited.
    if _reusable(builder, manual_dir, log=False):
      return builder
    if _is_built(builder):  # Built from files that have changed since: built afresh.
      shutil.rmtree(version_dir)
      builder = make()
    record = manual_record(builder, manual_dir) if _is_manual(builder_cls) else None
    tfds.disable_progress_bar()
    # TFDS prints 'Downloading and preparing ...' first, which would precede a build error;
    # one line after the build says what was built (on stdout, as TFDS's lines were).
    with contextlib.redirect_stdout(io.StringIO()):
      builder.download_and_prepare(
          download_config=tfds.download.DownloadConfig(manual_dir=manual_dir or None))
    print(f'built {_label(builder)} in {version_dir}; later runs read it', flush=True)
    if record is not None:
      report.write_atomic(os.path.join(version_dir, RECORD_FILE), json.dumps(record, indent=1))
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


def files_under(folder: str) -> list[str]:
  """Every file under folder (sorted; names starting with '.' skipped)."""
  found = []
  for root, dirs, files in os.walk(folder):
    dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
    found += [os.path.join(root, f) for f in sorted(files) if not f.startswith('.')]
  return found


def _manual_paths(builder, manual_dir: str) -> list[str]:
  """The files a build of `builder` reads from manual_dir (absolute paths)."""
  if hasattr(builder, 'manual_files'):
    return [os.path.abspath(p) for p in builder.manual_files(manual_dir)]
  return files_under(manual_dir)


def manual_record(builder, manual_dir: str) -> dict:
  """{'manual_dir', 'files': {name relative to manual_dir: {size, mtime_ns, sha256}}} of the
  files a build of `builder` reads."""
  root = os.path.abspath(manual_dir)
  try:
    paths = [p for p in _manual_paths(builder, root) if os.path.isfile(p)]
  except DataError:  # The build itself says what is missing.
    paths = []
  files = {}
  for path in paths:
    stat = os.stat(path)
    files[os.path.relpath(path, root)] = {'size': stat.st_size, 'mtime_ns': stat.st_mtime_ns,
                                          'sha256': file_digest(path)}
  return {'manual_dir': root, 'files': files}


def _read_record(version_dir: str) -> dict | None:
  try:
    with open(os.path.join(version_dir, RECORD_FILE)) as f:
      record = json.load(f)
    return record if isinstance(record.get('files'), dict) else None
  except (OSError, ValueError, AttributeError):
    return None


def _file_changes(recorded: dict, current: dict[str, str]) -> tuple[list[str], bool]:
  """(what differs between the recorded files and the current ones {name: path}, whether a
  recorded modification time was refreshed for a file whose bytes are unchanged)."""
  changes, refreshed = [], False
  for name in sorted(set(recorded) | set(current)):
    if name not in current:
      changes.append(f'{name} is gone')
    elif name not in recorded:
      changes.append(f'{name} is new')
    else:
      stat, old = os.stat(current[name]), recorded[name]
      if stat.st_size != old['size']:
        changes.append(f'{name} changed ({old["size"]:,} -> {stat.st_size:,} bytes)')
      elif stat.st_mtime_ns != old['mtime_ns']:
        if file_digest(current[name]) != old['sha256']:
          changes.append(f'{name} changed (same size, other bytes)')
        else:
          recorded[name] = {**old, 'mtime_ns': stat.st_mtime_ns}
          refreshed = True
  return changes, refreshed


def manual_change(builder, manual_dir: str) -> str | None:
  """Why the build in builder.data_dir differs from the files in manual_dir, in a few words;
  None when they match, or when manual_dir holds none of the files (nothing to compare)."""
  root = os.path.abspath(manual_dir)
  if not os.path.isdir(root):
    return None
  try:
    paths = _manual_paths(builder, root)
  except DataError:  # The builder finds none of its files here.
    return None
  current = {os.path.relpath(p, root): p for p in paths if os.path.isfile(p)}
  if not current:
    return None
  version_dir = os.fspath(builder.data_dir)
  record = _read_record(version_dir)
  if record is None:
    return (f'it has no {RECORD_FILE} naming the files it was built from (an older build), '
            'so they cannot be compared')
  changes, refreshed = _file_changes(record['files'], current)
  if refreshed and not changes:
    try:  # Next time, no hash: best effort (data_dir may be read-only to this user).
      report.write_atomic(os.path.join(version_dir, RECORD_FILE), json.dumps(record, indent=1))
    except (OSError, RuntimeError):
      pass
  if not changes:
    return None
  more = f' (and {len(changes) - 1} more)' if len(changes) > 1 else ''
  return f'{changes[0]}{more} since it was built'


def any_size_image_info(builder, description: str) -> tfds.core.DatasetInfo:
  """DatasetInfo of a user's images: uint8 images of any size and channels, int64 labels, in
  stored order, with metadata (class names, channels) filled in while building."""
  return tfds.core.DatasetInfo(
      builder=builder,
      description=description,
      features=tfds.features.FeaturesDict({
          'image': tfds.features.Tensor(shape=(None, None, None), dtype=np.uint8,
                                        encoding='bytes'),
          'label': tfds.features.Tensor(shape=(), dtype=np.int64),
      }),
      supervised_keys=('image', 'label'),
      disable_shuffling=True,
      metadata=tfds.core.MetadataDict(),
  )
