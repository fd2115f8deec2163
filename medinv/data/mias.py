"""mini-MIAS mammograms (322 films, 1024x1024 8-bit PGM), from a manual download.

Source: Suckling et al., "The Mammographic Image Analysis Society Digital Mammogram
Database", Excerpta Medica International Congress Series 1069, 1994; mini-MIAS is the
200-micron version, clipped or padded to 1024x1024. Its licence allows research use; medinv
does not ship it.

Ground truth (`Info.txt`): one row per abnormality, columns REFNUM BG CLASS SEVERITY X Y
RADIUS, e.g. `mdb001 G CIRC B 535 425 197` or `mdb003 D NORM`. An image with several
abnormalities has several rows. SEVERITY is B (benign) or M (malignant) and is absent for
NORM rows; X Y RADIUS may be absent (some calcification clusters and a few masses). An image is
malignant if any row says M, else benign if any row is abnormal, else normal.

Labels by builder config (`config.data.variant`): `severity` (default: 0 normal, 1 benign,
2 malignant) or `abnormal` (0 normal, 1 benign or malignant). Every example also carries the
three-class `severity` and the `refnum` (the NNN of mdbNNN).

Split (fixed, patient-safe): films come in left/right pairs of one woman, mdb(2k-1) and
mdb(2k). Pair k-1 = (NNN-1)//2 goes to `test` when its index is 4 mod 5 (mdb009/010,
mdb019/020, ...: 64 of the 322 films), otherwise to `train`.

Images: read as PGM (P5; any size; 8- or 16-bit), scaled to [0, 1], zero-padded to a square,
and resized to `image_size` (default 64) with Pillow's bilinear filter, which widens its
kernel by the downscale factor, so it averages (anti-aliases) instead of skipping pixels.
"""
from __future__ import annotations

import dataclasses
import os
import re

import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from medinv.core.errors import DataError
from medinv.data import tfds_util

INFO_FILENAME = 'Info.txt'
SUBFOLDERS = ('', 'all-mias')  # Where the files may be, relative to manual_dir.
INFO_COLUMNS = ('REFNUM', 'BG', 'CLASS', 'SEVERITY', 'X', 'Y', 'RADIUS')
BACKGROUNDS = ('F', 'G', 'D')  # fatty, fatty-glandular, dense-glandular
ABNORMALITIES = ('CALC', 'CIRC', 'SPIC', 'MISC', 'ARCH', 'ASYM', 'NORM')
SEVERITY_NAMES = ('normal', 'benign', 'malignant')
ABNORMAL_NAMES = ('normal', 'abnormal')
CLASS_NAMES = SEVERITY_NAMES
DEFAULT_IMAGE_SIZE = 64
OPTIONS = ('variant',)
VARIANTS = ('severity', 'abnormal')

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
mias: download the mini-MIAS database from http://peipa.essex.ac.uk/info/mias.html
(all-mias.tar.gz; also mirrored on Kaggle as "MIAS Mammography") and extract it so that
manual_dir (or manual_dir/all-mias) holds
  mdb001.pgm ... mdb322.pgm   (1024x1024 8-bit binary PGM)
  Info.txt                    (ground truth: REFNUM BG CLASS SEVERITY X Y RADIUS)
then pass --config.data.manual_dir=<manual_dir>.
"""


def read_pgm(path) -> np.ndarray:
  """Reads a binary (P5) PGM into float32 (h, w) in [0, 1].

  Raises:
    DataError: naming the file when the header is wrong or the pixel data is short.
  """
  with open(path, 'rb') as f:
    data = f.read()
  if data[:2] != b'P5':
    raise DataError(f'{path}: not a binary PGM (starts with {data[:2]!r}, expected b"P5")')
  tokens, pos = [], 2
  while len(tokens) < 3:
    while pos < len(data) and (data[pos:pos + 1].isspace() or data[pos:pos + 1] == b'#'):
      if data[pos:pos + 1] == b'#':  # A comment runs to the end of the line.
        end = data.find(b'\n', pos)
        pos = len(data) if end < 0 else end
      pos += 1
    start = pos
    while pos < len(data) and data[pos:pos + 1].isdigit():
      pos += 1
    if pos == start or pos >= len(data) or not data[pos:pos + 1].isspace():
      name = ('width', 'height', 'maxval')[len(tokens)]
      raise DataError(f'{path}: malformed PGM header: expected the {name} as a number at '
                      f'byte {start}, found {data[start:start + 8]!r}')
    tokens.append(int(data[start:pos]))
  width, height, maxval = tokens
  if not (width and height and 0 < maxval < 65536):
    raise DataError(f'{path}: malformed PGM header: width {width}, height {height}, '
                    f'maxval {maxval}')
  pos += 1  # Exactly one whitespace byte separates the header from the pixels.
  dtype = np.dtype(np.uint8) if maxval < 256 else np.dtype('>u2')
  expected = width * height * dtype.itemsize
  pixels = data[pos:pos + expected]
  if len(pixels) < expected:
    raise DataError(f'{path}: {len(pixels)} bytes of pixel data, expected {expected} for '
                    f'{width}x{height} at maxval {maxval}; the file is truncated')
  image = np.frombuffer(pixels, dtype).reshape(height, width).astype(np.float32) / maxval
  return np.minimum(image, 1.0)


def downsample(image: np.ndarray, size: int) -> np.ndarray:
  """float (h, w) in [0, 1] -> uint8 (size, size, 1): zero-pad to a square, anti-aliased resize.

  Pillow's BILINEAR filter scales its support with the downscale factor (an area-weighted
  triangle filter, like jax.image.resize(method='linear', antialias=True)), so a 1024 -> 64
  reduction averages 16x16 neighbourhoods rather than sampling every 16th pixel.
  """
  height, width = image.shape
  side = max(height, width)
  square = np.zeros((side, side), np.float32)
  top, left = (side - height) // 2, (side - width) // 2
  square[top:top + height, left:left + width] = image
  resized = Image.fromarray(square).resize((size, size), Image.Resampling.BILINEAR)
  return np.clip(np.rint(np.asarray(resized) * 255.0), 0, 255).astype(np.uint8)[..., None]


@dataclasses.dataclass(frozen=True)
class Finding:
  """One row of Info.txt."""
  refnum: int
  background: str
  abnormality: str
  severity: str  # 'B', 'M', or '' for NORM rows
  x: int | None = None
  y: int | None = None
  radius: int | None = None


def read_info(path) -> dict[int, list[Finding]]:
  """Parses Info.txt into {refnum: findings}; errors name the line and column.

  Lines before the first `mdbNNN` row (a title, the column header) are skipped, as are blank
  lines; any other line must be a well-formed row.
  """
  findings: dict[int, list[Finding]] = {}
  with open(path, errors='replace') as f:
    lines = f.read().splitlines()
  for line_number, line in enumerate(lines, start=1):
    fields = line.split()
    if not fields or (not findings and not fields[0].lower().startswith('mdb')):
      continue
    where = f'{path}, line {line_number}'
    match = re.fullmatch(r'mdb(\d{3})', fields[0], re.IGNORECASE)
    if not match:
      raise DataError(f'{where}, column REFNUM: {fields[0]!r} is not mdbNNN')
    notes = [i for i, field in enumerate(fields) if field.startswith('*')]
    if notes:  # An annotation such as "*NOTE 3*" ends the row's data.
      fields = fields[:notes[0]]
    if len(fields) < 3:
      raise DataError(f'{where}, column {INFO_COLUMNS[len(fields)]}: missing (the row has '
                      f'{len(fields)} of the fields {" ".join(INFO_COLUMNS)}; truncated?)')
    refnum, background, abnormality = int(match.group(1)), fields[1].upper(), fields[2].upper()
    if background not in BACKGROUNDS:
      raise DataError(f'{where}, column BG: {fields[1]!r} is not one of {BACKGROUNDS}')
    if abnormality not in ABNORMALITIES:
      raise DataError(f'{where}, column CLASS: {fields[2]!r} is not one of {ABNORMALITIES}')
    severity, coordinates = '', []
    if abnormality == 'NORM':
      if len(fields) > 3:
        raise DataError(f'{where}: a NORM row has no SEVERITY X Y RADIUS, found '
                        f'{fields[3:]}')
    else:
      if len(fields) < 4:
        raise DataError(f'{where}, column SEVERITY: missing for a {abnormality} row')
      severity = fields[3].upper()
      if severity not in ('B', 'M'):
        raise DataError(f'{where}, column SEVERITY: {fields[3]!r} is not B or M')
      if len(fields) not in (4, 7):
        raise DataError(f'{where}, column {INFO_COLUMNS[min(len(fields), 7)]}: expected '
                        f'X Y RADIUS together or none of them, found {fields[4:]}')
      for column, value in zip(INFO_COLUMNS[4:], fields[4:]):
        if not value.isdigit():
          raise DataError(f'{where}, column {column}: {value!r} is not a whole number')
        coordinates.append(int(value))
    findings.setdefault(refnum, []).append(
        Finding(refnum, background, abnormality, severity, *coordinates))
  if not findings:
    raise DataError(f'{path}: no mdbNNN rows found')
  return findings


def severity(findings: list[Finding]) -> int:
  """0 normal, 1 benign, 2 malignant (the worst finding of the image)."""
  if any(f.severity == 'M' for f in findings):
    return 2
  return 1 if any(f.abnormality != 'NORM' for f in findings) else 0


def is_test(refnum: int) -> bool:
  """The fixed patient-safe split: pairs (2k-1, 2k) with k-1 = 4 mod 5 are held out."""
  return (refnum - 1) // 2 % 5 == 4


def find_files(manual_dir) -> tuple[str, dict[int, str]]:
  """Locates Info.txt and the mdbNNN.pgm files in manual_dir (or manual_dir/all-mias)."""
  info, images = None, {}
  for sub in SUBFOLDERS:
    folder = os.path.join(manual_dir, sub)
    if not os.path.isdir(folder):
      continue
    for name in sorted(os.listdir(folder)):
      if name.lower() == INFO_FILENAME.lower() and info is None:
        info = os.path.join(folder, name)
      match = re.fullmatch(r'mdb(\d{3})\.pgm', name, re.IGNORECASE)
      if match:
        images.setdefault(int(match.group(1)), os.path.join(folder, name))
  if info is None:
    raise DataError(f'mias: {INFO_FILENAME} not found in {manual_dir}; '
                    f'{tfds_util.how_to_get("mias")}')
  return info, images


@dataclasses.dataclass(eq=False)
class MiasConfig(tfds.core.BuilderConfig):
  labels: str = 'severity'
  image_size: int = DEFAULT_IMAGE_SIZE

  @property
  def class_names(self) -> tuple[str, ...]:
    return SEVERITY_NAMES if self.labels == 'severity' else ABNORMAL_NAMES


def _make_config(image_size: int, labels: str) -> MiasConfig:
  return MiasConfig(name=f'{labels}_{image_size}', labels=labels, image_size=image_size,
                    description=f'{labels} labels, images resized to {image_size}')


def builder_config(image_size: int = DEFAULT_IMAGE_SIZE, variant: str = '') -> MiasConfig:
  """Config `<labels>_<image_size>`; variant '' or 'severity' (3 classes) or 'abnormal'."""
  labels = variant or 'severity'
  if labels not in VARIANTS:
    raise ValueError(f'mias variant {variant!r}: expected one of {VARIANTS} (or empty)')
  config = _make_config(image_size, labels)
  return Mias.builder_configs.get(config.name, config)


class Mias(tfds.core.GeneratorBasedBuilder):
  """mini-MIAS films, resized to the config's image_size; patient-safe train/test split."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'mini-MIAS, PGM + Info.txt, odd/even pair split.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = [_make_config(DEFAULT_IMAGE_SIZE, v) for v in VARIANTS]

  def _info(self) -> tfds.core.DatasetInfo:
    size = self.builder_config.image_size
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Tensor(shape=(size, size, 1), dtype=np.uint8),
            'label': tfds.features.Tensor(shape=(), dtype=np.int64),
            'severity': tfds.features.Tensor(shape=(), dtype=np.int64),
            'refnum': tfds.features.Tensor(shape=(), dtype=np.int64),
        }),
        supervised_keys=('image', 'label'),
        disable_shuffling=True,
        homepage='http://peipa.essex.ac.uk/info/mias.html',
    )

  def manual_files(self, manual_dir: str) -> list[str]:
    """The files a build reads (medinv.data.tfds_util records them with the build)."""
    info_path, image_paths = find_files(manual_dir)
    return [info_path, *image_paths.values()]

  def _split_generators(self, dl_manager):
    info_path, image_paths = find_files(dl_manager.manual_dir)
    findings = read_info(info_path)
    missing = sorted(set(findings) - set(image_paths))
    if missing:
      raise DataError(f'mias: {len(missing)} films listed in {info_path} have no PGM file, '
                      f'e.g. mdb{missing[0]:03d}.pgm; {tfds_util.how_to_get("mias")}')
    unlisted = sorted(set(image_paths) - set(findings))
    if unlisted:
      raise DataError(f'mias: {image_paths[unlisted[0]]} (and {len(unlisted) - 1} more) has no '
                      f'row in {info_path}')
    # Decode and resize every film before TFDS writes anything (a few MB at 64x64).
    examples = {'train': [], 'test': []}
    for refnum in sorted(findings):
      image = downsample(read_pgm(image_paths[refnum]), self.builder_config.image_size)
      grade = severity(findings[refnum])
      label = grade if self.builder_config.labels == 'severity' else int(grade > 0)
      examples['test' if is_test(refnum) else 'train'].append(
          (refnum, {'image': image, 'label': label, 'severity': grade, 'refnum': refnum}))
    for split, rows in examples.items():
      if not rows:
        raise DataError(f'mias: no films for the {split} split among the {len(findings)} in '
                        f'{info_path} (test holds the pairs mdb009/010, mdb019/020, ...)')
    return {split: self._generate_examples(rows) for split, rows in examples.items()}

  def _generate_examples(self, rows):
    yield from rows


Builder = Mias
