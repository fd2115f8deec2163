"""Tabular patient records: the schema that attribute inference needs, splits and scaling.

A `Records` holds raw feature values (float32, shape (n, d)), integer class labels and a
schema: per column its name, meaning, and whether it is categorical. Attribute inference
enumerates a sensitive column's `candidates`: the allowed values of a categorical column, or
representative values (bin midpoints) of a continuous column binned by its documented `edges`.
"""
from __future__ import annotations

import dataclasses

import jax
import numpy as np


@dataclasses.dataclass(frozen=True)
class Column:
  """One feature column.

  Attributes:
    name: column name as in the source file.
    description: what the value means, with its unit.
    categorical: True when the value is one of `values`.
    values: allowed values of a categorical column.
    edges: bin edges of a continuous column (values below edges[0] go to bin 0, at or above
      edges[-1] to the last bin); used only when the column is the sensitive attribute.
    midpoints: one representative value per bin of a continuous column.
    bounds: declared (low, high) of the raw value (a user's CSV schema): the model sees
      (value - low) / (high - low). Empty for built-in datasets, which are z-scored.
    value_names: what each of a categorical column's `values` (codes) stands for.
  """
  name: str
  description: str
  categorical: bool
  values: tuple[float, ...] = ()
  edges: tuple[float, ...] = ()
  midpoints: tuple[float, ...] = ()
  bounds: tuple[float, ...] = ()
  value_names: tuple[str, ...] = ()

  @property
  def candidates(self) -> np.ndarray:
    """Values an attacker substitutes for this column (float32, shape (k,))."""
    return np.asarray(self.values if self.categorical else self.midpoints, np.float32)

  def candidate_index(self, raw: np.ndarray) -> np.ndarray:
    """Index into `candidates` of each raw value (the attack's ground truth)."""
    raw = np.asarray(raw)
    if self.categorical:
      values = np.asarray(self.values, raw.dtype)
      index = np.argmax(raw[..., None] == values, axis=-1)
      unknown = ~np.any(raw[..., None] == values, axis=-1)
      if np.any(unknown):
        raise ValueError(f'column {self.name!r}: values {np.unique(raw[unknown])} are not in '
                         f'its allowed values {self.values}')
      return index
    return np.digitize(raw, np.asarray(self.edges[1:-1], raw.dtype))


@dataclasses.dataclass(frozen=True)
class Records:
  """Raw features (n, d) float32, labels (n,) int32, the column schema and class names.

  lines / ids: where each record came from (its line in the source file and its id), for
  datasets that keep them (a user's CSV); None otherwise.
  """
  features: np.ndarray
  labels: np.ndarray
  columns: tuple[Column, ...]
  class_names: tuple[str, ...]
  lines: np.ndarray | None = None
  ids: np.ndarray | None = None

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  def column_index(self, name: str) -> int:
    names = [c.name for c in self.columns]
    if name not in names:
      raise ValueError(f'unknown column {name!r}; columns are {names}')
    return names.index(name)

  def take(self, index: np.ndarray) -> 'Records':
    def pick(values):
      return None if values is None else values[index]
    return dataclasses.replace(self, features=self.features[index], labels=self.labels[index],
                               lines=pick(self.lines), ids=pick(self.ids))

  def __len__(self) -> int:
    return len(self.labels)


def concatenate(first: Records, second: Records) -> Records:
  """The records of `first` then `second` (same schema)."""
  def join(a, b):
    return None if a is None or b is None else np.concatenate([a, b])
  return dataclasses.replace(
      first, features=join(first.features, second.features),
      labels=join(first.labels, second.labels), lines=join(first.lines, second.lines),
      ids=join(first.ids, second.ids))


def split_indices(key: jax.Array, n: int, test_fraction: float
                  ) -> tuple[np.ndarray, np.ndarray]:
  """(train, test) indices into n items: a permutation by `key` holds out `test_fraction`.

  Args:
    key: the split's key (from `config.data.split_seed`, independent of the run seed).
    n: how many items.
    test_fraction: the share held out, in (0, 1).

  Returns:
    Sorted int arrays (train indices, test indices), so each split keeps source order.
  """
  if not 0.0 < test_fraction < 1.0:
    raise ValueError(f'test_fraction must be in (0, 1), got {test_fraction}')
  order = np.asarray(jax.random.permutation(key, n))
  num_test = int(round(test_fraction * n))
  return np.sort(order[num_test:]), np.sort(order[:num_test])


def split(records: Records, key: jax.Array, test_fraction: float) -> tuple[Records, Records]:
  """Shuffles with `key` and splits into (train, test)."""
  train, test = split_indices(key, len(records), test_fraction)
  return records.take(train), records.take(test)


def split_rows(**parts: Records) -> list[dict]:
  """One row per record of each named part (e.g. train=..., test=...): its source line, id and
  the part's name as 'split', in line order; [] for records that do not know their lines."""
  rows = []
  for name, part in parts.items():
    if part.lines is None:
      return []
    ids = part.ids if part.ids is not None else [''] * len(part)
    rows += [{'line': int(line), 'id': str(i), 'split': name} for line, i in zip(part.lines, ids)]
  return sorted(rows, key=lambda row: row['line'])


@dataclasses.dataclass(frozen=True)
class Scaler:
  """Per-column z-scoring fitted on training records; part of the deployed model."""
  mean: np.ndarray
  std: np.ndarray

  @classmethod
  def from_bounds(cls, columns: tuple[Column, ...]) -> 'Scaler':
    """(value - low) / (high - low) from declared bounds: no private statistic enters."""
    low = np.asarray([c.bounds[0] for c in columns], np.float32)
    high = np.asarray([c.bounds[1] for c in columns], np.float32)
    return cls(mean=low, std=high - low)

  @classmethod
  def fit(cls, features: np.ndarray) -> 'Scaler':
    std = features.std(axis=0)
    return cls(mean=features.mean(axis=0), std=np.where(std > 0, std, 1.0).astype(np.float32))

  def __call__(self, features):
    return (features - self.mean) / self.std
