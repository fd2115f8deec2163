"""Kaggle Cardiovascular Disease dataset (70,000 records), from a manual download.

Source: Svetlana Ulianova, "Cardiovascular Disease dataset", Kaggle
(sulianova/cardiovascular-disease-dataset), 2019; no license is stated on the page, so medinv
does not ship it. Every record is one medical examination; the target `cardio` says whether
the patient has cardiovascular disease. The classes are nearly balanced (35,021 without,
34,979 with).

Columns of `cardio_train.csv` (semicolon-separated, header
`id;age;gender;height;weight;ap_hi;ap_lo;cholesterol;gluc;smoke;alco;active;cardio`):
`id` is kept as the example's `id`, `cardio` is the label, and the 11 others are the features
in the order of COLUMNS below. The source gives `age` in days; medinv stores years
(days / 365.25). Attribute-inference candidates: gender, smoke, alco, active, cholesterol
(1-3), gluc (1-3), and age in five bins.

The raw file holds well-known implausible rows (ap_hi 16020, negative pressures, diastolic
above systolic, height 55 cm). They are kept by default (builder config `raw`); the `clean`
config drops every row that breaks one of PLAUSIBLE_RANGES or has ap_lo > ap_hi, and records
how many rows each rule removed in `builder.info.metadata['dropped']` (1,376 of the 70,000
rows of the published file).

Storage: one TFDS example holds up to RECORDS_PER_EXAMPLE consecutive records (`features`
(k, 11), `label` (k,), `id` (k,)), so reading all 70,000 takes tens of milliseconds instead
of seconds; `tfds_util.read_split` concatenates the chunks.
"""
from __future__ import annotations

import dataclasses
import os

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from medinv.data import records
from medinv.data import tfds_util
from medinv.core.errors import DataError

Column = records.Column

FILENAME = 'cardio_train.csv'
HEADER = ('id', 'age', 'gender', 'height', 'weight', 'ap_hi', 'ap_lo', 'cholesterol', 'gluc',
          'smoke', 'alco', 'active', 'cardio')
DAYS_PER_YEAR = 365.25
_WIDE = 1e6  # Outer bin edges: the raw file has values far outside any plausible range.

COLUMNS = (
    Column('age', 'age in years (the source gives days; converted as days / 365.25)', False,
           edges=(0, 45, 50, 55, 60, 200), midpoints=(42.5, 47.5, 52.5, 57.5, 62.5)),
    Column('gender', 'gender code: 1 = women, 2 = men (the source says only "categorical '
           'code"; code 2 is 8.6 cm taller on average)', True, values=(1, 2)),
    Column('height', 'height, cm', False, edges=(-_WIDE, 155, 165, 175, _WIDE),
           midpoints=(150, 160, 170, 180)),
    Column('weight', 'weight, kg', False, edges=(-_WIDE, 60, 70, 80, 90, _WIDE),
           midpoints=(55, 65, 75, 85, 95)),
    Column('ap_hi', 'systolic blood pressure, mm Hg', False,
           edges=(-_WIDE, 120, 130, 140, 160, _WIDE), midpoints=(110, 125, 135, 150, 170)),
    Column('ap_lo', 'diastolic blood pressure, mm Hg', False,
           edges=(-_WIDE, 80, 90, 100, _WIDE), midpoints=(70, 85, 95, 105)),
    Column('cholesterol', 'cholesterol: 1 normal, 2 above normal, 3 well above normal', True,
           values=(1, 2, 3)),
    Column('gluc', 'glucose: 1 normal, 2 above normal, 3 well above normal', True,
           values=(1, 2, 3)),
    Column('smoke', 'smokes (self-reported): 1 = yes, 0 = no', True, values=(0, 1)),
    Column('alco', 'drinks alcohol (self-reported): 1 = yes, 0 = no', True, values=(0, 1)),
    Column('active', 'physically active (self-reported): 1 = yes, 0 = no', True,
           values=(0, 1)),
)
CLASS_NAMES = ('no cardiovascular disease', 'cardiovascular disease')
NUM_RECORDS = 70_000
RECORDS_PER_EXAMPLE = 4096
# Inclusive plausible ranges used by the `clean` config; a row outside any of them is dropped,
# as is a row with diastolic above systolic pressure.
PLAUSIBLE_RANGES = {'height': (120, 220), 'weight': (30, 250), 'ap_hi': (60, 250),
                    'ap_lo': (30, 200)}
OPTIONS = ('clean',)

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
cardio: download `cardio_train.csv` from Kaggle, "Cardiovascular Disease dataset" by
Svetlana Ulianova (https://www.kaggle.com/datasets/sulianova/cardiovascular-disease-dataset,
a zip holding one file), unzip it and put the file, unchanged, in manual_dir:
  <manual_dir>/cardio_train.csv   (semicolon-separated, 70,001 lines with the header)
then pass --config.data.manual_dir=<manual_dir>.
"""


def read_csv(path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Parses cardio_train.csv.

  Args:
    path: the file.

  Returns:
    (features (n, 11) float32 in COLUMNS order with age in years, labels (n,) int64,
    ids (n,) int64).

  Raises:
    DataError: naming the file, line and column of the first problem (wrong header or
      separator, missing field, non-numeric value, a categorical value outside its codes).
  """
  with open(path, newline='', encoding='utf-8-sig') as f:  # Excel may add a BOM.
    lines = f.read().splitlines()
  if not lines:
    raise DataError(f'{path}: empty file; expected the header {";".join(HEADER)}')
  header = tuple(lines[0].strip().split(';'))
  if header != HEADER:
    hint = (' (wrong separator: the published file uses ";")' if len(header) == 1 and
            len(lines[0].split(',')) > 1 else '')
    missing = [c for c in HEADER if c not in header]
    raise DataError(f'{path}, line 1: header {lines[0]!r} differs from the expected '
                    f'{";".join(HEADER)!r}{hint}; missing columns: {missing or "none"}')
  values = np.empty((len(lines) - 1, len(HEADER)), np.float64)
  num_rows = 0
  for line_number, line in enumerate(lines[1:], start=2):
    if not line.strip():
      continue
    fields = line.split(';')
    if len(fields) != len(HEADER):
      raise DataError(f'{path}, line {line_number}: {len(fields)} fields, expected '
                      f'{len(HEADER)} ({";".join(HEADER)}); truncated or wrong separator?')
    try:
      values[num_rows] = [float(v) for v in fields]
    except ValueError:
      column = next(c for c, v in zip(HEADER, fields) if not _is_number(v))
      raise DataError(f'{path}, line {line_number}, column {column!r}: non-numeric value '
                      f'{fields[HEADER.index(column)]!r}') from None
    num_rows += 1
  values = values[:num_rows]
  if not num_rows:
    raise DataError(f'{path}: no records after the header')
  not_finite = np.argwhere(~np.isfinite(values))
  if not_finite.size:
    row, column = not_finite[0]
    raise DataError(f'{path}, line {_data_lines(lines)[row]}, column {HEADER[column]!r}: '
                    f'value {values[row, column]} is not a finite number')
  _check_codes(path, values, lines)
  features = values[:, 1:-1].copy()
  features[:, 0] /= DAYS_PER_YEAR
  return (features.astype(np.float32), values[:, -1].astype(np.int64),
          values[:, 0].astype(np.int64))


def _is_number(text: str) -> bool:
  try:
    float(text)
  except ValueError:
    return False
  return True


def _data_lines(lines: list[str]) -> list[int]:
  """1-based line numbers of the data rows (read_csv skips blank lines)."""
  return [i for i, text in enumerate(lines[1:], start=2) if text.strip()]


def _check_codes(path, values: np.ndarray, lines: list[str]) -> None:
  """Categorical columns and the label must hold one of their codes."""
  checks = [(c.name, c.values) for c in COLUMNS if c.categorical] + [('cardio', (0, 1))]
  for name, codes in checks:
    column = values[:, HEADER.index(name)]
    bad = np.flatnonzero(~np.isin(column, codes))
    if bad.size:
      raise DataError(f'{path}, line {_data_lines(lines)[bad[0]]}, column {name!r}: value '
                      f'{column[bad[0]]:g} is not one of the codes {codes} '
                      f'({bad.size} rows affected)')


def plausible(features: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
  """Which rows pass the `clean` rules, and how many rows each rule rejects.

  Args:
    features: (n, 11) in COLUMNS order.

  Returns:
    (keep mask (n,) bool, {rule: rows it rejects}; a row can break several rules, and
    'total' counts the rows dropped).
  """
  names = [c.name for c in COLUMNS]
  keep = np.ones(len(features), bool)
  counts = {}
  for name, (low, high) in PLAUSIBLE_RANGES.items():
    column = features[:, names.index(name)]
    ok = (column >= low) & (column <= high)
    counts[f'{name} outside [{low}, {high}]'] = int(np.sum(~ok))
    keep &= ok
  ordered = features[:, names.index('ap_lo')] <= features[:, names.index('ap_hi')]
  counts['ap_lo > ap_hi'] = int(np.sum(~ordered))
  keep &= ordered
  counts['total'] = int(np.sum(~keep))
  return keep, counts


@dataclasses.dataclass(eq=False)
class CardioConfig(tfds.core.BuilderConfig):
  clean: bool = False


def builder_config(clean: bool = False) -> CardioConfig:
  """The builder config for a loader option (`config.data.clean`)."""
  return Cardio.builder_configs['clean' if clean else 'raw']


class Cardio(tfds.core.GeneratorBasedBuilder):
  """Cardiovascular disease records: 11 examination features, binary target."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Kaggle cardio_train.csv, age in years, chunked records.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = [
      CardioConfig(name='raw', description='All 70,000 records as published.'),
      CardioConfig(name='clean', clean=True,
                   description='Records with implausible measurements dropped.'),
  ]
  DEFAULT_CONFIG_NAME = 'raw'
  EXAMPLES_ARE_CHUNKS = True

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            'features': tfds.features.Tensor(shape=(None, len(COLUMNS)), dtype=np.float32),
            'label': tfds.features.Tensor(shape=(None,), dtype=np.int64),
            'id': tfds.features.Tensor(shape=(None,), dtype=np.int64),
        }),
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(),
        homepage='https://www.kaggle.com/datasets/sulianova/cardiovascular-disease-dataset',
    )

  def manual_files(self, manual_dir: str) -> list[str]:
    """The files a build reads (medinv.data.tfds_util records them with the build)."""
    return [os.path.join(manual_dir, FILENAME)]

  def _split_generators(self, dl_manager):
    path = dl_manager.manual_dir / FILENAME
    if not path.exists():
      raise DataError(f'cardio: {path} not found; {tfds_util.how_to_get("cardio")}')
    # Parse and check the whole file before TFDS writes anything.
    features, labels, ids = read_csv(path)
    dropped = {'total': 0}
    if self.builder_config.clean:
      keep, dropped = plausible(features)
      features, labels, ids = features[keep], labels[keep], ids[keep]
      logging.info('cardio clean: dropped %d of %d records (%s)', dropped['total'],
                   len(keep), dropped)
    self.info.metadata['dropped'] = dropped
    return {'train': self._generate_examples(features, labels, ids)}

  def _generate_examples(self, features, labels, ids):
    for chunk, start in enumerate(range(0, len(labels), RECORDS_PER_EXAMPLE)):
      stop = start + RECORDS_PER_EXAMPLE
      yield chunk, {'features': features[start:stop], 'label': labels[start:stop],
                    'id': ids[start:stop]}


Builder = Cardio
