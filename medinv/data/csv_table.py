"""Dataset `csv`: records from any CSV file with a declared schema (medinv.data.schema).

`config.data.path` names the file (relative to `config.data.manual_dir` when one is given) and
`config.data.schema` declares its columns. The file may use `,`, `;`, tab or `|` (detected
from the header), a UTF-8 byte-order mark (as Excel writes) and CRLF line ends. Categorical
cells become codes 0..k-1 in their declared order; numeric cells are clipped to their declared
bounds. The build is keyed by the schema and the file's SHA-256, so a changed file or schema
is a new build (never a stale one), and every record keeps its line number and id so that the
split it lands in can be recorded.
"""
from __future__ import annotations

import collections
import csv
import dataclasses
import json
import os
import re

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from medinv.core.errors import DataError
from medinv.data import records
from medinv.data import schema as schema_lib
from medinv.data import tfds_util

OPTIONS = ('path', 'schema')
CLASS_NAMES = ()  # Per file: builder.info.metadata['class_names'].
DELIMITERS = (',', ';', '\t', '|')
MISSING = '(missing)'  # The value of a missing categorical cell under the 'category' policy.
RECORDS_PER_EXAMPLE = 4096


def read_rows(path: str) -> tuple[list[str], list[tuple[int, list[str]]], str]:
  """(header, [(line, cells)], delimiter) of a CSV; blank lines are skipped.

  Raises:
    DataError: naming the file for an unreadable or non-UTF-8 file, an empty file or a
      duplicated header name; and the line for a row with the wrong number of fields.
  """
  try:
    with open(path, encoding='utf-8-sig', newline='') as f:
      text = f.read()
  except UnicodeDecodeError as e:
    raise DataError(f'{path}: not UTF-8 text (byte {e.start}); save it as UTF-8 CSV') from e
  except OSError as e:
    raise DataError(f'{path}: cannot read it ({e.strerror})') from e
  first = text.split('\n', 1)[0]
  delimiter = max(DELIMITERS, key=first.count)
  reader = csv.reader(text.splitlines(keepends=True), delimiter=delimiter)
  header = [name.strip() for name in next(reader, [])]
  if not any(header):
    raise DataError(f'{path}: empty file (a header line and records are needed)')
  duplicated = sorted(n for n, c in collections.Counter(header).items() if c > 1)
  if duplicated:
    raise DataError(f'{path}: the header names {duplicated} more than once')
  rows = []
  for cells in reader:
    if not cells or not any(c.strip() for c in cells):
      continue
    if len(cells) != len(header):
      raise DataError(f'{path}, line {reader.line_num}: {len(cells)} fields, expected '
                      f'{len(header)} (delimiter {delimiter!r})')
    rows.append((reader.line_num, [c.strip() for c in cells]))
  if not rows:
    raise DataError(f'{path}: a header but no records')
  return header, rows, delimiter


def check_header(path: str, header: list[str], schema: schema_lib.Schema) -> None:
  """Every declared column is in the file and every file column is declared."""
  declared = schema.declared()
  absent = [f'{name} ({field})' for name, field in declared.items() if name not in header]
  if absent:
    raise DataError(f'{path}: column(s) {", ".join(absent)} of config.data.schema not in the '
                    f'file (its columns: {", ".join(header)})')
  undeclared = [name for name in header if name not in declared]
  if undeclared:
    raise DataError(f'{path}: column(s) {", ".join(undeclared)} not declared in '
                    'config.data.schema; add each to categorical, numeric or ignore')


def _sort_values(values) -> tuple[str, ...]:
  """Numbers in numeric order, then text in alphabetical order."""
  def key(v):
    try:
      return (0, float(v), v)
    except ValueError:
      return (1, 0.0, v)
  return tuple(sorted(set(values), key=key))


def _same(cell: str, value) -> bool:
  if isinstance(value, (int, float)) and not isinstance(value, bool):
    try:
      return float(cell) == float(value)
    except ValueError:
      return False
  return cell == str(value)


@dataclasses.dataclass(frozen=True)
class Table:
  """What a CSV holds under its schema: raw features, labels, line numbers and ids."""
  features: np.ndarray  # (n, d) float32: categorical codes, numeric values clipped to bounds
  labels: np.ndarray  # (n,) int64
  lines: np.ndarray  # (n,) int64, the record's line in the file
  ids: tuple[str, ...]  # the id column's values ('' without one)
  columns: tuple[records.Column, ...]
  class_names: tuple[str, ...]
  notes: tuple[str, ...]  # what was dropped, clipped or read from the file


def read(path: str, schema: schema_lib.Schema) -> Table:
  """Parses and checks a whole CSV under `schema` (nothing is written before it passes).

  Raises:
    DataError: one line naming the file, line, column or schema field that is wrong.
  """
  header, rows, delimiter = read_rows(path)
  check_header(path, header, schema)
  index = {name: header.index(name) for name in header}
  notes = [f'{len(rows)} records, delimiter {delimiter!r}']
  keep, dropped = _keep(path, rows, index, schema)
  rows = [row for row, ok in zip(rows, keep) if ok]
  notes += [f'{count} records dropped for a missing {name!r}' for name, count in dropped.items()]
  if not rows:
    raise DataError(f'{path}: every record was dropped for missing cells; see '
                    'config.data.schema.missing and fill')
  columns, features = [], []
  for name in schema.features:
    cells = [(line, cells[index[name]]) for line, cells in rows]
    column, values, note = (_categorical(path, name, cells, schema) if name in schema.categorical
                            else _numeric(path, name, cells, schema))
    columns.append(column)
    features.append(values)
    notes += [note] if note else []
  labels, class_names = _labels(path, [cells[index[schema.label]] for _, cells in rows], schema)
  ids = tuple(cells[index[schema.id]] for _, cells in rows) if schema.id else ()
  return Table(np.stack(features, axis=1).astype(np.float32), labels,
               np.asarray([line for line, _ in rows], np.int64), ids, tuple(columns),
               class_names, tuple(notes))


def _keep(path, rows, index, schema) -> tuple[list[bool], dict[str, int]]:
  """Which rows survive the 'drop' policies (a missing label always drops the record)."""
  markers = set(schema.missing_markers) | {''}
  droppers = [schema.label] + [n for n in schema.features if schema.policy(n) == 'drop']
  keep, dropped = [], collections.Counter()
  for _, cells in rows:
    missing = [name for name in droppers if cells[index[name]] in markers]
    keep.append(not missing)
    dropped.update(missing[:1])
  return keep, dict(dropped)


def _categorical(path, name, cells, schema):
  markers = set(schema.missing_markers) | {''}
  policy = schema.policy(name)
  cells = [(line, (MISSING if policy == 'category' else str(policy)) if text in markers
            else text) for line, text in cells]
  declared = schema.categorical[name]
  found = _sort_values(text for _, text in cells if text != MISSING)
  values = tuple(str(v) for v in declared) if declared else found
  if any(text == MISSING for _, text in cells) and MISSING not in values:
    values += (MISSING,)
  note = '' if declared else f'column {name!r}: values read from the file: {list(values)}'
  codes = []
  for line, text in cells:
    match = [i for i, value in enumerate(declared or values) if _same(text, value)]
    if not match and text != MISSING:
      raise DataError(f'{path}, line {line}, column {name!r}: {text!r} is not one of its '
                      f'declared values {list(values)}')
    codes.append(match[0] if match else values.index(MISSING))
  description = f'{name}: ' + ', '.join(f'{i} = {v}' for i, v in enumerate(values))
  column = records.Column(name, description, True, values=tuple(range(len(values))),
                          bounds=(0.0, float(max(len(values) - 1, 1))), value_names=values)
  return column, np.asarray(codes, np.float64), note


def _numeric(path, name, cells, schema):
  low, high = schema.numeric[name]
  policy = schema.policy(name)
  values = []
  for line, text in cells:
    if text in set(schema.missing_markers) | {''}:
      if policy == 'category':
        raise DataError(f'{path}, line {line}, column {name!r}: missing cell in a numeric '
                        f'column; set config.data.schema.fill.{name} to \'drop\' or a number')
      values.append(float(policy))
      continue
    try:
      value = float(text)
    except ValueError:
      value = float('nan')
    if not np.isfinite(value):
      raise DataError(f'{path}, line {line}, column {name!r}: {text!r} is not a finite number '
                      '(declare the column categorical, or the marker in missing_markers)')
    values.append(value)
  values = np.asarray(values, np.float64)
  outside = int(np.sum((values < low) | (values > high)))
  note = (f'column {name!r}: {outside} values outside the declared bounds ({low:g}, {high:g}) '
          'clipped to them') if outside else ''
  bins = schema.sensitive.get(name, ())
  edges = (low,) + bins + (high,) if bins else ()
  midpoints = tuple((a + b) / 2 for a, b in zip(edges, edges[1:]))
  column = records.Column(name, f'{name} (declared bounds {low:g} to {high:g})', False,
                          edges=edges, midpoints=midpoints, bounds=(low, high))
  return column, np.clip(values, low, high), note


def _labels(path, cells: list[str], schema) -> tuple[np.ndarray, tuple[str, ...]]:
  """Class indices and class names of the label cells under `positive`."""
  positive, label = schema.positive, schema.label
  if not positive:
    names = _sort_values(cells)
    labels = np.asarray([names.index(c) for c in cells], np.int64)
    names = tuple(f'{label} = {n}' for n in names)
  elif isinstance(positive, tuple):
    labels = np.asarray([any(_same(c, v) for v in positive) for c in cells], np.int64)
    names = (f'{label} not in {list(positive)}', f'{label} in {list(positive)}')
  else:
    op, value = schema_lib.parse_rule(positive)
    labels = np.asarray([_compare(path, label, c, op, value) for c in cells], np.int64)
    names = (f'not {label} {op} {value}', f'{label} {op} {value}')
  if len(np.unique(labels)) < 2:
    raise DataError(f'{path}, column {label!r}: one class after binarising with '
                    f'positive={positive!r} (every record is {names[labels[0]]!r}); a '
                    'classifier needs two')
  if schema.class_names:
    if len(schema.class_names) != len(names):
      raise DataError(f'config.data.schema.class_names: {len(schema.class_names)} names for '
                      f'{len(names)} classes ({list(names)})')
    names = schema.class_names
  return labels, names


def _compare(path, label: str, cell: str, op: str, value: str) -> bool:
  try:
    return schema_lib.RULES[op](float(cell), float(value))
  except ValueError:
    if op in ('==', '!='):
      return schema_lib.RULES[op](cell, value)
    raise DataError(f'{path}, column {label!r}: {cell!r} cannot be compared with '
                    f'positive={op} {value} (not a number)') from None


@dataclasses.dataclass(eq=False)
class CsvConfig(tfds.core.BuilderConfig):
  path: str = ''
  schema_json: str = ''
  num_features: int = 0


def builder_config(path: str = '', schema=None) -> CsvConfig:
  """The build of `path` (absolute) under `schema`: named by the file stem and a fingerprint
  of the schema and the file's bytes."""
  checked = schema_lib.parse(schema)
  if not os.path.isfile(path):
    raise DataError(f'config.data.path: {path} is not a file')
  stem = re.sub(r'[^a-z0-9]+', '_', os.path.splitext(os.path.basename(path))[0].lower())
  key = tfds_util.fingerprint(checked.to_json(), tfds_util.file_digest(path))
  return CsvConfig(name=f'{stem.strip("_") or "table"}_{key}', path=path,
                   schema_json=checked.to_json(), num_features=len(checked.features),
                   description=f'{path} under a declared schema')


def declared_columns(schema) -> tuple[records.Column, ...]:
  """The feature columns the schema declares, before the file is read: categorical values
  are codes and numeric sensitive attributes carry their bins."""
  checked = schema_lib.parse(schema)
  out = []
  for name in checked.features:
    if name in checked.categorical:
      out.append(records.Column(name, name, True, values=tuple(range(len(
          checked.categorical[name])))))
      continue
    low, high = checked.numeric[name]
    edges = (low,) + checked.sensitive[name] + (high,) if checked.sensitive.get(name) else ()
    out.append(records.Column(name, name, False, edges=edges,
                              midpoints=tuple((a + b) / 2 for a, b in zip(edges, edges[1:])),
                              bounds=(low, high)))
  return tuple(out)


def declared_num_classes(schema) -> int | None:
  """2 for a binarised label, the number of class_names when declared, else None."""
  checked = schema_lib.parse(schema)
  return 2 if checked.positive else (len(checked.class_names) or None)


def columns(builder) -> tuple[records.Column, ...]:
  """The built dataset's columns, from its metadata."""
  return tuple(records.Column(**{k: tuple(v) if isinstance(v, list) else v
                                 for k, v in column.items()})
               for column in builder.info.metadata['columns'])


class Csv(tfds.core.GeneratorBasedBuilder):
  """Records of a user's CSV file under a declared schema."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Any CSV with a declared schema.'}
  EXAMPLES_ARE_CHUNKS = True

  def _info(self) -> tfds.core.DatasetInfo:
    width = self.builder_config.num_features if self.builder_config else None
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            'features': tfds.features.Tensor(shape=(None, width), dtype=np.float32),
            'label': tfds.features.Tensor(shape=(None,), dtype=np.int64),
            'line': tfds.features.Tensor(shape=(None,), dtype=np.int64),
        }),
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # The file is named by the config, not found in manual_dir.
    if self.builder_config is None:
      raise DataError('csv: set config.data.path and config.data.schema')
    config = self.builder_config
    table = read(config.path, schema_lib.parse(json.loads(config.schema_json)))
    for note in table.notes:
      logging.info('csv %s: %s', os.path.basename(config.path), note)
    self.info.metadata.update(
        columns=[dataclasses.asdict(c) for c in table.columns],
        class_names=list(table.class_names), ids=list(table.ids), notes=list(table.notes),
        file=config.path)
    return {'train': self._generate_examples(table)}

  def _generate_examples(self, table: Table):
    for chunk, start in enumerate(range(0, len(table.labels), RECORDS_PER_EXAMPLE)):
      stop = start + RECORDS_PER_EXAMPLE
      yield chunk, {'features': table.features[start:stop], 'label': table.labels[start:stop],
                    'line': table.lines[start:stop]}


Builder = Csv
