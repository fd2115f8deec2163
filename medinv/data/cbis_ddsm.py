"""CBIS-DDSM mammograms (Curated Breast Imaging Subset of DDSM), from a manual download.

Source: Lee, Gimenez, Hoogi, Rubin, "Curated Breast Imaging Subset of DDSM", The Cancer
Imaging Archive (TCIA), 2016, doi:10.7937/K9/TCIA.2016.7O02S9CY; CC BY 3.0. It is about
160 GB of DICOM, so medinv does not ship it.

Layout as published: four case-description CSVs (CASE_FILES: mass and calcification, train
and test; one row per abnormality) whose `image file path` and `cropped image file path`
columns name DICOM files relative to the download folder (CBIS-DDSM/). NBIA downloads often
rename the lower folders and files (e.g. `.../1-1.dcm` instead of `.../000000.dcm`); when the
exact path is missing, the DICOMs under the path's top folder (`Mass-Training_P_00001_LEFT_CC`)
are used. An ROI folder holds the cropped lesion and its binary mask; the crop is the DICOM
whose SeriesDescription mentions "crop", else the smaller image.

Views by builder config (`config.data.variant`): `full` (default) is one example per full
mammogram, malignant if any of its abnormalities is; `roi` is one example per abnormality,
its cropped region. Labels: 0 benign (BENIGN and BENIGN_WITHOUT_CALLBACK), 1 malignant.
Splits: the official train and test CSVs. Images: pixel values divided by 2**BitsStored - 1
(MONOCHROME1 inverted), zero-padded to a square and resized to `image_size` with the
anti-aliased filter of medinv.data.mias.downsample. Every DICOM is decoded and resized before
TFDS writes anything, so an unreadable file fails the build without leaving a partial dataset.
"""
from __future__ import annotations

import csv
import dataclasses
import glob
import os

import numpy as np
import pydicom
import tensorflow_datasets as tfds

from medinv.data import mias
from medinv.data import tfds_util
from medinv.core.errors import DataError

CASE_FILES = {  # (abnormality type, split) -> file name as published
    ('mass', 'train'): 'mass_case_description_train_set.csv',
    ('mass', 'test'): 'mass_case_description_test_set.csv',
    ('calc', 'train'): 'calc_case_description_train_set.csv',
    ('calc', 'test'): 'calc_case_description_test_set.csv',
}
REQUIRED_COLUMNS = ('patient_id', 'left or right breast', 'image view', 'abnormality id',
                    'abnormality type', 'pathology', 'image file path',
                    'cropped image file path')
PATHOLOGY_LABELS = {'BENIGN': 0, 'BENIGN_WITHOUT_CALLBACK': 0, 'MALIGNANT': 1}
CLASS_NAMES = ('benign', 'malignant')
ABNORMALITY_TYPES = ('mass', 'calc')
DEFAULT_IMAGE_SIZE = 64
OPTIONS = ('variant',)
VARIANTS = ('full', 'roi')
_ROOTS = ('CBIS-DDSM', '')  # DICOM paths are relative to manual_dir/CBIS-DDSM or manual_dir.

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
cbis_ddsm: from The Cancer Imaging Archive, \
https://www.cancerimagingarchive.net/collection/cbis-ddsm/
download the four case-description CSVs and the images (NBIA Data Retriever, about 160 GB),
and arrange manual_dir as
  <manual_dir>/mass_case_description_train_set.csv
  <manual_dir>/mass_case_description_test_set.csv
  <manual_dir>/calc_case_description_train_set.csv
  <manual_dir>/calc_case_description_test_set.csv
  <manual_dir>/CBIS-DDSM/Mass-Training_P_00001_LEFT_CC/.../*.dcm   (the NBIA download folder)
The CSVs' `image file path` / `cropped image file path` are looked up under CBIS-DDSM/.
Then pass --config.data.manual_dir=<manual_dir>.
"""


@dataclasses.dataclass(frozen=True)
class Case:
  """One CSV row: an abnormality on one mammogram."""
  source: str  # 'file, line N', for error messages
  abnormality_type: str
  label: int
  image_path: str
  crop_path: str


def read_cases(path, abnormality_type: str) -> list[Case]:
  """Parses one case-description CSV; errors name the file, line and column."""
  with open(path, newline='') as f:
    reader = csv.DictReader(f)
    header = reader.fieldnames or []
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
      raise DataError(f'{path}, line 1: missing columns {missing} (header {header}); '
                      'expected the CBIS-DDSM case-description layout')
    cases, previous_end = [], reader.line_num
    for row in reader:
      # A quoted path may hold a newline, so a row can span lines: report its first line.
      where, previous_end = f'{path}, line {previous_end + 1}', reader.line_num
      empty = [c for c in REQUIRED_COLUMNS if not (row.get(c) or '').strip()]
      if empty:
        raise DataError(f'{where}, column {empty[0]!r}: missing value (truncated row?)')
      pathology = row['pathology'].strip().upper()
      if pathology not in PATHOLOGY_LABELS:
        raise DataError(f'{where}, column \'pathology\': {row["pathology"]!r} is not one of '
                        f'{sorted(PATHOLOGY_LABELS)}')
      cases.append(Case(where, abnormality_type, PATHOLOGY_LABELS[pathology],
                        _clean_path(row['image file path']),
                        _clean_path(row['cropped image file path'])))
  if not cases:
    raise DataError(f'{path}: no cases after the header')
  return cases


def _clean_path(value: str) -> str:
  # Some published rows end the path with a newline inside the quotes.
  return value.strip().replace('\\', '/')


def read_dicom(path) -> np.ndarray:
  """Reads a DICOM image into float32 (h, w) in [0, 1]; DataError naming the file on failure."""
  try:
    dataset = pydicom.dcmread(path)
    pixels = dataset.pixel_array
    bits = int(dataset.get('BitsStored', 8 * pixels.dtype.itemsize))
    photometric = str(dataset.get('PhotometricInterpretation', 'MONOCHROME2'))
  except Exception as e:  # pydicom raises many types (InvalidDicomError, AttributeError, ...)
    raise DataError(f'{path}: not a readable DICOM image ({type(e).__name__}: {e})') from e
  if pixels.ndim != 2:
    raise DataError(f'{path}: expected one grayscale frame, got pixel array {pixels.shape}')
  image = np.clip(pixels.astype(np.float32) / float(2 ** bits - 1), 0.0, 1.0)
  return 1.0 - image if photometric == 'MONOCHROME1' else image


def _pick_crop(paths: list[str]) -> str:
  """The cropped lesion among an ROI folder's DICOMs (the other one is the binary mask)."""
  if len(paths) == 1:
    return paths[0]
  headers = {}
  for path in paths:
    try:
      headers[path] = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as e:
      raise DataError(f'{path}: not a readable DICOM file ({type(e).__name__}: {e})') from e
  described = [p for p in paths if 'crop' in str(headers[p].get('SeriesDescription', '')).lower()]
  if len(described) == 1:
    return described[0]
  return min(paths,
             key=lambda p: int(headers[p].get('Rows', 0)) * int(headers[p].get('Columns', 0)))


def resolve(manual_dir, relative: str, crop: bool, source: str) -> str:
  """Finds the DICOM a CSV path names (see the module docstring); DataError if none."""
  for root in _ROOTS:
    exact = os.path.join(manual_dir, root, relative)
    if os.path.isfile(exact):
      if not crop:
        return exact
      return _pick_crop(sorted(glob.glob(os.path.join(os.path.dirname(exact), '*.dcm'))))
  for root in _ROOTS:
    top = os.path.join(manual_dir, root, relative.split('/')[0])
    found = sorted(glob.glob(os.path.join(glob.escape(top), '**', '*.dcm'), recursive=True))
    if found and crop:
      return _pick_crop(found)
    if len(found) == 1:
      return found[0]
    if found:
      raise DataError(f'{source}: {relative!r} is missing and {top} holds {len(found)} DICOM '
                      'files, so the full mammogram is ambiguous')
  raise DataError(f'{source}: DICOM file {relative!r} not found under {manual_dir} or '
                  f'{os.path.join(manual_dir, "CBIS-DDSM")}; {tfds_util.how_to_get("cbis_ddsm")}')


@dataclasses.dataclass(eq=False)
class CbisDdsmConfig(tfds.core.BuilderConfig):
  crop: str = 'full'
  image_size: int = DEFAULT_IMAGE_SIZE


def _make_config(image_size: int, crop: str) -> CbisDdsmConfig:
  what = 'full mammograms' if crop == 'full' else 'cropped regions of interest'
  return CbisDdsmConfig(name=f'{crop}_{image_size}', crop=crop, image_size=image_size,
                        description=f'{what}, resized to {image_size}')


def builder_config(image_size: int = DEFAULT_IMAGE_SIZE, variant: str = '') -> CbisDdsmConfig:
  """Config `<full|roi>_<image_size>`; variant '' or 'full' (whole mammograms) or 'roi'."""
  crop = variant or 'full'
  if crop not in VARIANTS:
    raise ValueError(f'cbis_ddsm variant {variant!r}: expected one of {VARIANTS} (or empty)')
  config = _make_config(image_size, crop)
  return CbisDdsm.builder_configs.get(config.name, config)


class CbisDdsm(tfds.core.GeneratorBasedBuilder):
  """CBIS-DDSM benign vs malignant, full mammograms or ROI crops; official split."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'CBIS-DDSM case CSVs + DICOM, full or ROI view.'}
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
            # 0 mass, 1 calcification; a full mammogram with both kinds counts as mass.
            'abnormality_type': tfds.features.Tensor(shape=(), dtype=np.int64),
        }),
        supervised_keys=('image', 'label'),
        disable_shuffling=True,
        homepage='https://www.cancerimagingarchive.net/collection/cbis-ddsm/',
        license='CC BY 3.0',
    )

  def manual_files(self, manual_dir: str) -> list[str]:
    """The case CSVs and every file under the DICOM folder (manual_dir/CBIS-DDSM, else
    manual_dir): what a build may read (medinv.data.tfds_util records them with the build)."""
    dicom_root = os.path.join(manual_dir, _ROOTS[0])
    csvs = [os.path.join(manual_dir, name) for name in CASE_FILES.values()]
    return sorted(set(csvs) | set(tfds_util.files_under(
        dicom_root if os.path.isdir(dicom_root) else manual_dir)))

  def _split_generators(self, dl_manager):
    manual_dir = dl_manager.manual_dir
    missing = [name for name in CASE_FILES.values() if not (manual_dir / name).exists()]
    if missing:
      raise DataError(f'cbis_ddsm: {missing} not found in {manual_dir}; '
                      f'{tfds_util.how_to_get("cbis_ddsm")}')
    cases = {'train': [], 'test': []}
    for (abnormality_type, split), name in CASE_FILES.items():
      cases[split] += read_cases(manual_dir / name, abnormality_type)
    # Resolve every path, then decode and resize every image, before TFDS writes anything.
    size, crop = self.builder_config.image_size, self.builder_config.crop == 'roi'
    examples = {}
    for split, split_cases in cases.items():
      entries = {}  # full: one per mammogram (shared by its abnormalities); roi: one per row
      for index, case in enumerate(split_cases):
        path = resolve(manual_dir, case.crop_path if crop else case.image_path, crop,
                       case.source)
        key = (path, index) if crop else path
        label, kind = case.label, ABNORMALITY_TYPES.index(case.abnormality_type)
        if key in entries:  # Malignant if any abnormality is; mass before calcification.
          label, kind = max(entries[key][1], label), min(entries[key][2], kind)
        entries[key] = (path, label, kind)
      examples[split] = [
          {'image': mias.downsample(read_dicom(path), size), 'label': label,
           'abnormality_type': kind} for path, label, kind in entries.values()]
    return {split: self._generate_examples(rows) for split, rows in examples.items()}

  def _generate_examples(self, rows):
    yield from enumerate(rows)


Builder = CbisDdsm
