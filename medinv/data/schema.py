"""A CSV's declared schema: what each column is, and what a missing cell means.

A schema is a plain config block (`config.data.schema`; configs/schemas/ has examples, and
`./launch.sh draft_schema --csv FILE` drafts one from a file):

  label: the label column.
  positive: '' (multi-class: every value of the label is a class, sorted), a rule on the
    label ('> 0', '>= 2', '< 5', '<= 5', '== yes', '!= no') or a tuple of the label values
    that make class 1.
  class_names: () = derived from the label ('num > 0' and 'not num > 0', or its values).
  id: a column that names the record ('' = none): dropped from the features, kept beside
    each record so that its split can be recorded.
  ignore: columns to drop.
  categorical: column -> its values in code order (text or numbers), or () = the values
    found in the file (sorted; printed once when the dataset is built).
  numeric: column -> (low, high), declared bounds: public knowledge (a device's range, a
    plausible clinical range), never statistics of the private records. Values are clipped to
    them and the model sees (value - low) / (high - low), so a DP-trained model's epsilon
    covers its preprocessing.
  sensitive: the attributes attribute inference targets: column -> () for a categorical
    column, or the inner bin edges of a numeric one, e.g. age=(45, 55, 65).
  missing: what a missing cell means in every column: 'drop' the record, or 'category' (a
    value of its own; categorical columns only).
  fill: column -> 'drop', 'category' or a stated value, overriding `missing` there.
  missing_markers: cell texts that mean "missing" (an empty cell always does).

Every column of the file must be declared once (label, id, ignore, categorical or numeric),
so a renamed or added column is an error, not a silent change of the model's inputs.
"""
from __future__ import annotations

import dataclasses
import json
import math
import operator
import re

from medinv.core.errors import DataError

POLICIES = ('drop', 'category')
MISSING_MARKERS = ('?', 'NA', 'N/A', 'n/a', 'na', 'nan', 'NaN', 'NAN', 'null', 'NULL', 'None',
                   'none', '-')
RULES = {'>=': operator.ge, '<=': operator.le, '!=': operator.ne, '==': operator.eq,
         '>': operator.gt, '<': operator.lt}
FIELDS = ('label', 'positive', 'class_names', 'id', 'ignore', 'categorical', 'numeric',
          'sensitive', 'missing', 'fill', 'missing_markers')
_PREFIX = 'config.data.schema'


@dataclasses.dataclass(frozen=True)
class Schema:
  """A checked schema (see the module docstring for the fields)."""
  label: str
  positive: str | tuple
  class_names: tuple[str, ...]
  id: str
  ignore: tuple[str, ...]
  categorical: dict[str, tuple]
  numeric: dict[str, tuple[float, float]]
  sensitive: dict[str, tuple[float, ...]]
  missing: str
  fill: dict[str, object]
  missing_markers: tuple[str, ...]

  @property
  def features(self) -> tuple[str, ...]:
    """Feature columns, categorical first then numeric, each in declaration order."""
    return tuple(self.categorical) + tuple(self.numeric)

  def declared(self) -> dict[str, str]:
    """Every declared column -> the field that declares it."""
    out = {self.label: 'label'}
    if self.id:
      out[self.id] = 'id'
    for field in ('ignore', 'categorical', 'numeric'):
      out.update({name: field for name in getattr(self, field)})
    return out

  def policy(self, column: str):
    """'drop', 'category' or the stated value for a missing cell of `column`."""
    return self.fill.get(column, self.missing)

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), sort_keys=True)


def _plain(value):
  """ConfigDict / FieldReference / list -> dicts and tuples."""
  if hasattr(value, 'to_dict'):
    value = value.to_dict()
  if isinstance(value, dict):
    return {str(k): _plain(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return tuple(_plain(v) for v in value)
  return value


def _names(field: str, value) -> tuple[str, ...]:
  value = (value,) if isinstance(value, str) else value
  if not isinstance(value, tuple) or not all(isinstance(v, str) and v for v in value):
    raise DataError(f'{_PREFIX}.{field} must be a tuple of column names, got {value!r}')
  return value


def _mapping(field: str, value) -> dict:
  if not isinstance(value, dict):
    raise DataError(f'{_PREFIX}.{field} must map column names to values, e.g. '
                    f'{field}=dict(sex=()), got {value!r}')
  return value


def _number(field: str, value) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
    raise DataError(f'{_PREFIX}.{field}: {value!r} is not a finite number')
  return float(value)


def _bounds(name: str, value) -> tuple[float, float]:
  field = f'numeric.{name}'
  if not isinstance(value, tuple) or len(value) != 2:
    raise DataError(f'{_PREFIX}.{field} needs declared bounds (low, high), public knowledge '
                    f'such as a plausible clinical range; got {value!r}')
  low, high = (_number(field, v) for v in value)
  if not low < high:
    raise DataError(f'{_PREFIX}.{field}: low {low} must be below high {high}')
  return low, high


def _bins(name: str, value, numeric: dict) -> tuple[float, ...]:
  field = f'sensitive.{name}'
  if name not in numeric:
    if value:
      raise DataError(f'{_PREFIX}.{field}: categorical attributes take no bins (use '
                      f'{name}=()), got {value!r}')
    return ()
  low, high = numeric[name]
  if not value:
    raise DataError(f'{_PREFIX}.{field}: the numeric sensitive attribute {name!r} needs bins: '
                    f'inner bin edges within its bounds ({low:g}, {high:g}), e.g. '
                    f'{name}=({low + (high - low) / 3:g}, {low + 2 * (high - low) / 3:g})')
  edges = tuple(_number(field, v) for v in value)
  if any(b <= a for a, b in zip(edges, edges[1:])) or edges[0] <= low or edges[-1] >= high:
    raise DataError(f'{_PREFIX}.{field}: bins {edges} must increase strictly and lie inside '
                    f'the bounds ({low:g}, {high:g})')
  return edges


def _positive(value) -> str | tuple:
  if isinstance(value, tuple):
    if not value:
      raise DataError(f'{_PREFIX}.positive: an empty tuple names no positive value')
    return tuple(str(v) for v in value)
  if not isinstance(value, str):
    raise DataError(f'{_PREFIX}.positive must be \'\', a rule such as \'> 0\' or a tuple of '
                    f'label values, got {value!r}')
  if value.strip() and not parse_rule(value):
    raise DataError(f'{_PREFIX}.positive: {value!r} is not a rule; use one of '
                    f'{", ".join(RULES)} followed by a value, e.g. \'> 0\'')
  return value.strip()


def parse_rule(rule: str) -> tuple[str, str] | None:
  """'> 0' -> ('>', '0'); None when `rule` is not an operator followed by a value."""
  match = re.fullmatch(r'\s*(>=|<=|!=|==|>|<)\s*(\S.*?)\s*', rule)
  return (match.group(1), match.group(2)) if match else None


def parse(block) -> Schema:
  """Checks a schema block (ConfigDict or dict) and returns a `Schema`.

  Raises:
    DataError: one line naming the field (config.data.schema.<field>) and what is allowed.
  """
  raw = _plain(block)
  if not raw:
    raise DataError(f'{_PREFIX} is empty: dataset csv needs a schema (see configs/schemas/, '
                    'or draft one with ./launch.sh draft_schema --csv FILE)')
  unknown = sorted(set(raw) - set(FIELDS) - {'path'})
  if unknown:
    raise DataError(f'{_PREFIX}: unknown field(s) {unknown}; fields: {", ".join(FIELDS)}')
  if not isinstance(raw.get('label'), str) or not raw.get('label'):
    raise DataError(f'{_PREFIX}.label must name the label column')
  categorical = {k: tuple(v) if isinstance(v, tuple) else (v,)
                 for k, v in _mapping('categorical', raw.get('categorical', {})).items()}
  numeric = {k: _bounds(k, v) for k, v in _mapping('numeric', raw.get('numeric', {})).items()}
  if not categorical and not numeric:
    raise DataError(f'{_PREFIX}: no feature columns (declare categorical and/or numeric)')
  sensitive = {k: _bins(k, v, numeric)
               for k, v in _mapping('sensitive', raw.get('sensitive', {})).items()}
  missing = raw.get('missing', 'drop')
  if missing not in POLICIES:
    raise DataError(f'{_PREFIX}.missing must be one of {POLICIES}, got {missing!r} (stated '
                    'values go in fill, per column)')
  schema = Schema(
      label=raw['label'], positive=_positive(raw.get('positive', '')),
      class_names=_names('class_names', raw.get('class_names', ())),
      id=raw.get('id', '') or '', ignore=_names('ignore', raw.get('ignore', ())),
      categorical=categorical, numeric=numeric, sensitive=sensitive, missing=missing,
      fill=_mapping('fill', raw.get('fill', {})),
      missing_markers=tuple(str(m) for m in raw.get('missing_markers', MISSING_MARKERS)))
  _check_columns(schema)
  return schema


def _check_columns(schema: Schema) -> None:
  """Each column declared once; sensitive and fill name feature columns; fill fits its type."""
  seen = {}
  groups = [('label', (schema.label,)), ('id', (schema.id,) if schema.id else ()),
            ('ignore', schema.ignore), ('categorical', schema.categorical),
            ('numeric', schema.numeric)]
  for field, names in groups:
    for name in names:
      if name in seen:
        raise DataError(f'{_PREFIX}: column {name!r} is declared in both {seen[name]} and '
                        f'{field}')
      seen[name] = field
  for field in ('sensitive', 'fill'):
    for name in getattr(schema, field):
      if name not in schema.features:
        raise DataError(f'{_PREFIX}.{field}.{name}: {name!r} is not a categorical or numeric '
                        f'column (feature columns: {", ".join(schema.features)})')
  for name in schema.numeric:
    policy = schema.fill.get(name, 'drop')
    if policy == 'category':
      raise DataError(f'{_PREFIX}.fill.{name}: missing cells of the numeric column {name!r} '
                      'cannot be a category; use \'drop\' or a stated number')
    if policy != 'drop':
      _number(f'fill.{name}', policy)
  if len(schema.class_names) == 1:
    raise DataError(f'{_PREFIX}.class_names: one name given; a classifier needs two or more')
