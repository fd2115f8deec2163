"""Drafts a schema file (configs/schemas/-style) from a CSV: a start, with every choice the
file cannot make marked `# CHECK` for the user.

What the draft decides from the file: the delimiter; which columns are numbers; a column
named like an id with one distinct value per record is the id; numeric columns with few
integer values, and text columns, are categorical (their values listed as found, so the
coding is fixed); text columns with more distinct values than MAX_CATEGORIES are ignored.
What it leaves to the user: the label (the last column, by convention) and its rule, the
bounds of numeric columns (it writes the observed range, which is a statistic of the private
records: replace it with public knowledge), the sensitive attributes, and the missing-cell
policy.
"""
from __future__ import annotations

import os
import re

from medinv.data import csv_table
from medinv.data import schema as schema_lib

MAX_CATEGORIES = 20  # Text columns with more distinct values are ignored (free text, names).
MAX_NUMERIC_CATEGORIES = 10  # Integer columns with at most this many values are categorical.


def _numbers(values: list[str]) -> list[float] | None:
  try:
    return [float(v) for v in values]
  except ValueError:
    return None


def _literal(value: str) -> str:
  """A value as the schema file writes it: numbers bare, text quoted."""
  number = _numbers([value])
  if number is not None and re.fullmatch(r'-?\d+(\.\d+)?', value):
    return value
  return repr(value)


def describe_columns(header, rows, markers) -> list[dict]:
  """Per column: name, kind ('id', 'numeric', 'categorical', 'ignore'), values, missing."""
  out = []
  for j, name in enumerate(header):
    cells = [cells[j] for _, cells in rows]
    present = [c for c in cells if c not in markers]
    numbers = _numbers(present)
    distinct = csv_table._sort_values(present)  # pylint: disable=protected-access
    column = dict(name=name, values=distinct, missing=len(cells) - len(present),
                  numbers=numbers)
    integers = numbers is not None and all(float(v).is_integer() for v in numbers)
    if re.fullmatch(r'(?i)(.*[_ ])?(id|ids|identifier|record)', name) and len(distinct) == len(
        cells):
      column['kind'] = 'id'
    elif numbers is not None and not (integers and len(distinct) <= MAX_NUMERIC_CATEGORIES):
      column['kind'] = 'numeric'
    elif len(distinct) <= MAX_CATEGORIES:
      column['kind'] = 'categorical'
    else:
      column['kind'] = 'ignore'
    out.append(column)
  return out


def _label_lines(label: dict) -> list[str]:
  values = label['values']
  if len(values) == 2:
    rule, note = f"'== {values[1]}'", f'{values[1]!r} is class 1'
  elif label['numbers'] is not None:
    rule, note = "''", f"{len(values)} values, each a class; '> {values[0]}' would binarise"
  else:
    rule, note = "''", f'{len(values)} values, each a class'
  return [f"      label={label['name']!r},  # CHECK: the label column (the last one)",
          f'      positive={rule},  # CHECK: {note}']


def draft(path: str) -> str:
  """The text of a schema file for the CSV at `path` (see the module docstring)."""
  header, rows, delimiter = csv_table.read_rows(path)
  markers = set(schema_lib.MISSING_MARKERS) | {''}
  columns = describe_columns(header, rows, markers)
  label, features = columns[-1], columns[:-1]
  by_kind = {kind: [c for c in features if c['kind'] == kind]
             for kind in ('id', 'numeric', 'categorical', 'ignore')}
  lines = [f'"""Schema of {os.path.basename(path)} ({len(rows)} records, delimiter '
           f'{delimiter!r}), drafted by medinv.', '',
           'Review every line marked CHECK, then run e.g.',
           '  ./launch.sh attribute_inference --config configs/attribute_csv.py:schema=THIS_FILE',
           '"""', 'import ml_collections', '', '', 'def get_config():',
           '  return ml_collections.ConfigDict(dict(',
           f'      path={os.path.abspath(path)!r},', *_label_lines(label)]
  ids = by_kind['id']
  lines.append(f"      id={ids[0]['name'] if ids else ''!r},")
  ignored = by_kind['ignore'] + ids[1:]
  lines.append(f"      ignore={tuple(c['name'] for c in ignored)!r},"
               + (f'  # more than {MAX_CATEGORIES} text values' if ignored else ''))
  lines.append('      categorical=dict(')
  for c in by_kind['categorical']:
    values = ', '.join(_literal(v) for v in c['values'])
    lines.append(f"          {c['name']}=({values}{',' if len(c['values']) == 1 else ''}),"
                 + (f"  # {c['missing']} missing" if c['missing'] else ''))
  lines += ['      ),', '      # CHECK: bounds are the observed range, a statistic of the '
            'private records;', '      # replace them with public bounds (a clinical range).',
            '      numeric=dict(']
  for c in by_kind['numeric']:
    low, high = min(c['numbers']), max(c['numbers'])
    lines.append(f"          {c['name']}=({low:g}, {high:g}),"
                 + (f"  # {c['missing']} missing" if c['missing'] else ''))
  candidates = ', '.join(c['name'] for c in by_kind['categorical'][:4]) or 'none'
  lines += ['      ),',
            f'      sensitive=dict(),  # CHECK: e.g. {candidates}: categorical name=(), '
            'numeric name=(bin edges)',
            "      missing='drop',  # CHECK: or 'category'; fill=dict(name=value) per column",
            '  ))', '']
  return '\n'.join(lines)
