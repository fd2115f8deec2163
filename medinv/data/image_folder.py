"""A user's own images, one subfolder per class (config.data.path): PNG, JPEG or DICOM.

Layout: `<path>/<class>/<image>` (images at any depth below the class folder) is one pool,
split into train and test when loading by config.data.split_seed and config.data.test_fraction
(as record datasets are, so changing them does not rebuild); or `<path>/train/<class>/...`,
`<path>/test/<class>/...` and optionally `<path>/validation/` (or `val/`) give those splits.
Class names are the class folders' names sorted in Python string order; a label is its class's
index. Hidden files and folders (.DS_Store, .git), Thumbs.db and desktop.ini are ignored, and
so are files beside the class folders that are not images (a README); every other file inside
a class folder must be an image (medinv.data.image_files: the formats and how they are read).

Order: within a split, images are ordered by their path inside their class folder, across
classes (ties by class), so files named in a known order (0000.png, 0001.png, ...) keep it.

Channels: 1 when every image is grayscale (an RGB image with three equal channels counts),
else 3 (grayscale images repeated). Sizes: when every image has the same size they are stored
at that size and resized to config.data.image_size when loading, by the function the built-in
datasets use (medinv.data.images.resize), so a folder of BreastMNIST's PNGs loads
bit-identical to `breastmnist`. Otherwise each image is resized by that same function while
building and stored at image_size, rounded to uint8 (the resize compiles once per distinct
size, about 0.1-0.3 s each on a CPU). Non-square images are stretched to a square: crop or pad
them first if their aspect ratio matters.

Build key: a fingerprint of every image's split, class, path and SHA-256 content digest, with
image_size, so a changed folder (an image added, removed, moved or edited) is rebuilt, never
silently reused. Loading therefore reads every file once to hash it (about 1 s per GB).
"""
from __future__ import annotations

import dataclasses
import os
import re

import numpy as np
import tensorflow_datasets as tfds

from medinv.core.errors import DataError
from medinv.data import image_files
from medinv.data import images
from medinv.data import tfds_util

SPLIT_FOLDERS = {'train': 'train', 'validation': 'validation', 'val': 'validation',
                 'test': 'test'}
CLASS_NAMES = ()  # Per folder: see builder.info.metadata['class_names'].
OPTIONS = ('path',)
DEFAULT_IMAGE_SIZE = 32
SYSTEM_FILES = ('Thumbs.db', 'desktop.ini')  # written by file browsers, like .DS_Store
LAYOUT = """\
config.data.path is a folder with one subfolder per class (PNG, JPEG or DICOM files):
  <path>/<class>/*.png            one pool, split by config.data.split_seed / test_fraction
  <path>/train|validation|test/<class>/*.png   or these splits (val/ also names validation)
Class names are the subfolders' names, sorted; grayscale stays 1 channel, any RGB makes 3.
"""


@dataclasses.dataclass(frozen=True)
class Entry:
  """One image file."""
  path: str  # absolute
  name: str  # its path inside the class folder (with '/'): the sort key
  label: int
  kind: str  # 'png', 'jpeg' or 'dicom'


@dataclasses.dataclass(frozen=True)
class Layout:
  """What `scan` found: the class names and each split's images in order."""
  root: str
  class_names: tuple[str, ...]
  splits: dict[str, tuple[Entry, ...]]  # 'train', 'validation', 'test', or only POOL


def _ignored(name: str) -> bool:
  return name.startswith('.') or name in SYSTEM_FILES


def _visible(folder: str) -> tuple[list[str], list[str]]:
  """(subfolders, files) of folder, sorted, hidden and system files left out."""
  try:
    names = sorted(n for n in os.listdir(folder) if not _ignored(n))
  except OSError as e:
    raise DataError(f'{folder}: cannot list the folder ({e.strerror})') from e
  dirs = [n for n in names if os.path.isdir(os.path.join(folder, n))]
  return dirs, [n for n in names if n not in dirs]


def _check_no_loose_images(folder: str, files: list[str]) -> None:
  for name in files:
    if image_files.kind(os.path.join(folder, name)):
      raise DataError(f'{os.path.join(folder, name)}: an image outside any class folder; '
                      f'put each image in {folder}/<class name>/')


def _class_files(class_dir: str) -> list[tuple[str, str, str]]:
  """(name inside class_dir, path, kind) of every visible file below class_dir."""
  found = []
  for folder, dirs, files in os.walk(class_dir):
    dirs[:] = sorted(d for d in dirs if not _ignored(d))
    for file_name in sorted(f for f in files if not _ignored(f)):
      path = os.path.join(folder, file_name)
      file_kind = image_files.kind(path)
      if file_kind is None:
        raise DataError(f'{path}: unsupported file type in class folder {class_dir} (images '
                        f'must be {image_files.SUPPORTED}; hidden files are ignored)')
      found.append((os.path.relpath(path, class_dir).replace(os.sep, '/'), path, file_kind))
  return found


def _entries(split_dir: str, class_names: tuple[str, ...]) -> tuple[Entry, ...]:
  """The images of one split folder, ordered by name across classes (ties by class)."""
  dirs, files = _visible(split_dir)
  _check_no_loose_images(split_dir, files)
  unknown = [d for d in dirs if d not in class_names]
  if unknown:
    raise DataError(f'{split_dir}: class folders {unknown} are not in train/ (classes there: '
                    f'{list(class_names)})')
  if not dirs:
    raise DataError(f'{split_dir}: no class folders (one subfolder per class)')
  entries = []
  for folder in dirs:
    class_dir = os.path.join(split_dir, folder)
    files_found = _class_files(class_dir)
    if not files_found:
      raise DataError(f'{class_dir}: empty class folder (no images)')
    entries += [Entry(path, name, class_names.index(folder), file_kind)
                for name, path, file_kind in files_found]
  return tuple(sorted(entries, key=lambda e: (e.name, e.label)))


def _class_names(folder: str) -> tuple[str, ...]:
  names = tuple(_visible(folder)[0])
  if len(names) < 2:
    raise DataError(f'{folder}: {len(names)} class folder(s) {list(names)}; image_folder '
                    'needs at least two, one subfolder per class')
  return names


def scan(root: str) -> Layout:
  """Finds the classes, splits and images of the folder `root` (nothing is decoded).

  Args:
    root: the folder (config.data.path, resolved to an absolute path).

  Returns:
    Its Layout.

  Raises:
    DataError: naming the folder or file: a missing path, fewer than two classes, an empty
      class folder, an unsupported file, split folders mixed with class folders.
  """
  if not os.path.exists(root):
    raise DataError(f'config.data.path: {root} does not exist (a relative path is taken '
                    'from config.data.manual_dir when one is given, else the working '
                    'directory)')
  if not os.path.isdir(root):
    raise DataError(f'config.data.path: {root} is not a folder; dataset image_folder reads a '
                    'folder with one subfolder per class (an npz file: dataset npz)')
  dirs, files = _visible(root)
  _check_no_loose_images(root, files)
  split_dirs = [d for d in dirs if d in SPLIT_FOLDERS]
  if not split_dirs:
    class_names = _class_names(root)
    return Layout(root, class_names, {images.POOL_SPLIT: _entries(root, class_names)})
  others = [d for d in dirs if d not in SPLIT_FOLDERS]
  if others:
    raise DataError(f'{root}: mixed layout: split folders {split_dirs} beside other folders '
                    f'{others}; put every class folder under train/, test/ (and validation/) '
                    'or use no split folders')
  if 'val' in split_dirs and 'validation' in split_dirs:
    raise DataError(f'{root}: both val/ and validation/; keep one')
  missing = [s for s in ('train', 'test') if s not in split_dirs]
  if missing:
    raise DataError(f'{root}: split folders {split_dirs} but no {"/, ".join(missing)}/; a '
                    'split layout needs train/ and test/ (validation/ is optional)')
  class_names = _class_names(os.path.join(root, 'train'))
  splits = {SPLIT_FOLDERS[d]: _entries(os.path.join(root, d), class_names) for d in split_dirs}
  return Layout(root, class_names, splits)


def fingerprint(layout: Layout) -> str:
  """The folder's build key.

  Args:
    layout: what `scan` found.

  Returns:
    12 hex digits of SHA-256 over every image's split, class, name and content digest.
  """
  parts = []
  for split, entries in layout.splits.items():
    for entry in entries:
      parts += [split, layout.class_names[entry.label], entry.name,
                tfds_util.file_digest(entry.path)]
  return tfds_util.fingerprint(*parts)


@dataclasses.dataclass(eq=False)
class ImageFolderConfig(tfds.core.BuilderConfig):
  layout: Layout | None = dataclasses.field(default=None, repr=False)  # logged by TFDS
  image_size: int = DEFAULT_IMAGE_SIZE


def builder_config(image_size: int = DEFAULT_IMAGE_SIZE, path: str = '') -> ImageFolderConfig:
  """The builder config of one folder.

  Args:
    image_size: the side images are resized to (it only changes what is stored when the
      folder's images differ in size, but it is always part of the key).
    path: the folder, absolute (see tfds_util.resolve_path).

  Returns:
    A config named after the folder, its fingerprint and image_size, holding its Layout.

  Raises:
    DataError: from `scan`, or naming the file whose contents cannot be read.
  """
  layout = scan(path)
  slug = re.sub(r'[^a-z0-9]+', '_', os.path.basename(path).lower()).strip('_')[:32]
  name = f'{slug or "folder"}_{fingerprint(layout)}_{image_size}'
  return ImageFolderConfig(name=name, layout=layout, image_size=image_size,
                           description=f'image folder {path}')


def _probe(entry: Entry) -> tuple[tuple[int, int], bool]:
  """(height, width) and whether it is grayscale; decodes the image (fails on a bad file)."""
  pixels = image_files.read(entry.path, entry.kind)
  return pixels.shape[:2], pixels.ndim == 2


def pixels(entry: Entry, channels: int, resize_to: int | None) -> np.ndarray:
  """The stored pixels of one image.

  Args:
    entry: the image file.
    channels: 1 or 3 (grayscale images are repeated to 3).
    resize_to: a side length to resize to with medinv.data.images.resize (then rounded to
      uint8), or None to keep the native size.

  Returns:
    uint8 (h, w, channels).
  """
  image = image_files.read(entry.path, entry.kind)
  if image.ndim == 2:
    image = image[..., None]
  if image.shape[-1] != channels:
    image = np.repeat(image, channels, axis=-1)
  if resize_to is not None:
    resized = images.resize(image[None], resize_to)[0]
    image = np.rint(resized * 255.0).astype(np.uint8)
  return image


class ImageFolder(tfds.core.GeneratorBasedBuilder):
  """A folder of images, one subfolder per class; stored as the module docstring says."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'PNG, JPEG or DICOM images, one subfolder per class.'}

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds_util.any_size_image_info(self, __doc__)

  def _split_generators(self, dl_manager):
    del dl_manager  # The user's own folder; nothing to download.
    config = self.builder_config
    if config is None or config.layout is None:
      raise DataError('image_folder: name your folder with --config.data.path')
    # Every image is decoded once before TFDS writes anything, so a bad file fails the
    # build without leaving a partial dataset (and the stored size and channels are known).
    probes = [_probe(entry) for entries in config.layout.splits.values() for entry in entries]
    channels = 1 if all(gray for _, gray in probes) else 3
    sizes = sorted({size for size, _ in probes})
    resize_to = None if len(sizes) == 1 else config.image_size
    self.info.metadata.update(
        class_names=list(config.layout.class_names), channels=channels,
        folder=config.layout.root,
        stored_size=list(sizes[0]) if resize_to is None else [resize_to, resize_to])
    return {split: self._generate_examples(entries, channels, resize_to)
            for split, entries in config.layout.splits.items()}

  def _generate_examples(self, entries, channels, resize_to):
    for index, entry in enumerate(entries):
      yield index, {'image': pixels(entry, channels, resize_to), 'label': entry.label}


Builder = ImageFolder
