"""UCI Heart Disease, Cleveland subset (303 records), shipped as package data.

Source: UCI Machine Learning Repository, Heart Disease (Janosi, Steinbrunn, Pfisterer,
Detrano, 1988), CC BY 4.0, in its common Kaggle form (`heart.csv`). The Kaggle form recodes
some categorical values relative to the UCI original; the meanings below are for that form.
"""
from __future__ import annotations

import csv
import importlib.resources
import math

import numpy as np
import tensorflow_datasets as tfds

from medinv.data import records
from medinv.core.errors import DataError

Column = records.Column

COLUMNS = (
    Column('age', 'age in years', False, edges=(0, 45, 55, 65, 200), midpoints=(40, 50, 60, 70)),
    Column('sex', 'sex: 1 = male, 0 = female', True, values=(0, 1)),
    Column('cp', 'chest pain type: 0 typical angina, 1 atypical angina, 2 non-anginal pain, '
           '3 asymptomatic', True, values=(0, 1, 2, 3)),
    Column('trestbps', 'resting blood pressure on admission, mm Hg', False,
           edges=(0, 120, 140, 160, 400), midpoints=(110, 130, 150, 170)),
    Column('chol', 'serum cholesterol, mg/dl', False, edges=(0, 200, 240, 280, 1000),
           midpoints=(180, 220, 260, 300)),
    Column('fbs', 'fasting blood sugar > 120 mg/dl: 1 = true, 0 = false', True, values=(0, 1)),
    Column('restecg', 'resting ECG: 0 normal, 1 ST-T wave abnormality, 2 left ventricular '
           'hypertrophy', True, values=(0, 1, 2)),
    Column('thalach', 'maximum heart rate achieved, beats/min', False,
           edges=(0, 130, 150, 170, 300), midpoints=(120, 140, 160, 180)),
    Column('exang', 'exercise-induced angina: 1 = yes, 0 = no', True, values=(0, 1)),
    Column('oldpeak', 'ST depression induced by exercise relative to rest, mm', False,
           edges=(0, 0.5, 1.5, 2.5, 10), midpoints=(0.0, 1.0, 2.0, 3.0)),
    Column('slope', 'slope of the peak exercise ST segment: 0 downsloping, 1 flat, '
           '2 upsloping', True, values=(0, 1, 2)),
    Column('ca', 'number of major vessels coloured by fluoroscopy (0-4)', True,
           values=(0, 1, 2, 3, 4)),
    Column('thal', 'thalassemia: 0 unknown, 1 fixed defect, 2 normal, 3 reversible defect',
           True, values=(0, 1, 2, 3)),
)
# Public bounds of each raw value (clinical ranges and the coding's values, not statistics of
# these records): the model's inputs under data.scaling 'bounds', which DP-SGD runs use.
PUBLIC_BOUNDS = {'age': (20, 90), 'sex': (0, 1), 'cp': (0, 3), 'trestbps': (80, 220),
                 'chol': (100, 600), 'fbs': (0, 1), 'restecg': (0, 2), 'thalach': (60, 220),
                 'exang': (0, 1), 'oldpeak': (0, 7), 'slope': (0, 2), 'ca': (0, 4),
                 'thal': (0, 3)}
TARGET = 'target'  # 1 = heart disease (less than 50% narrowing in the Kaggle coding), 0 = no
CLASS_NAMES = ('no disease', 'disease')
NUM_RECORDS = 303


def _number(path, line: int, column: str, text: str) -> float:
  """The cell's value; DataError naming file, line and column for an empty, non-numeric,
  nan or infinite cell."""
  where = f'{path}, line {line}, column {column!r}'
  if not text.strip():
    raise DataError(f'{where}: empty cell (every cell needs a number)')
  try:
    value = float(text)
  except ValueError as e:
    raise DataError(f'{where}: {text!r} is not a number') from e
  if not math.isfinite(value):
    raise DataError(f'{where}: {text!r} is not a finite number (missing values are not '
                    'allowed)')
  return value


def read_csv(path) -> tuple[np.ndarray, np.ndarray]:
  """Parses heart.csv into (features (n, 13) float32, labels (n,) int64).

  Raises:
    DataError: naming the file, line and column of a malformed row or cell (wrong field
      count; empty, non-numeric, nan or infinite cell; a target other than 0 or 1).
  """
  header = [c.name for c in COLUMNS] + [TARGET]
  with open(path, newline='') as f:
    rows = list(csv.reader(f))
  if not rows or rows[0] != header:
    raise DataError(f'{path}: header {rows[0] if rows else "(empty file)"} differs from the '
                    f'expected {header}')
  features, labels = [], []
  for line, row in enumerate(rows[1:], start=2):
    if len(row) != len(header):
      raise DataError(f'{path}, line {line}: {len(row)} fields, expected {len(header)}')
    values = [_number(path, line, column, text) for column, text in zip(header, row)]
    if values[-1] not in (0, 1):
      raise DataError(f'{path}, line {line}, column {TARGET!r}: {row[-1]!r} is not 0 or 1')
    features.append(values[:-1])
    labels.append(int(values[-1]))
  return np.asarray(features, np.float32), np.asarray(labels, np.int64)


class HeartDisease(tfds.core.GeneratorBasedBuilder):
  """Cleveland heart-disease records: 13 clinical features, binary target."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Cleveland subset, Kaggle coding, 303 records.'}

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            'features': tfds.features.Tensor(shape=(len(COLUMNS),), dtype=np.float32),
            'label': tfds.features.Tensor(shape=(), dtype=np.int64),
        }),
        supervised_keys=('features', 'label'),
        disable_shuffling=True,
        homepage='https://archive.ics.uci.edu/dataset/45/heart+disease',
        license='CC BY 4.0',
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Shipped with medinv; nothing to download.
    return {'train': self._generate_examples(
        importlib.resources.files('medinv.data') / 'files' / 'heart.csv')}

  def _generate_examples(self, path):
    features, labels = read_csv(path)
    for i, (x, y) in enumerate(zip(features, labels)):
      yield i, {'features': x, 'label': y}
Builder = HeartDisease
