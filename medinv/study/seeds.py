"""Across target seeds: every row of a sweep as a mean and 95% interval over its seeds.

An experiment's intervals hold its trained target fixed (they cover targets, records and
defense draws). A sweep with `seed` as a run axis trains one target per seed; `across_seeds`
puts the runs that differ only in their seed side by side and summarises each cell over them:

    config.sweep.axes.seed = (0, 1, 2, 3)     # one run (one target) per seed

Runs with the same config but the seed write the same rows in the same order, so row i of
every seed is one cell. In the summary row a column that every seed gives the same value
(attack, split, strength, ...) is kept as it is; a numeric column that varies becomes its mean
over the seeds with `<column>_seed_low` / `_seed_high`, the Student-t 95% interval of that mean
(`medinv.metrics.intervals.mean_and_interval`, the seeds as independent draws); a text column
that varies (the strongest attack, a stopping rule) lists its distinct values joined by '|'.
Within-run interval columns (`_low`, `_high`, `_std`) are left out: they belong to one target.
"""
from __future__ import annotations

import numbers

from medinv.metrics import intervals

SEED = 'seed'
WITHIN_RUN = ('_low', '_high', '_std')
NON_FINITE = ('inf', '-inf', 'nan')  # how results.json writes them


def _number(value) -> float | None:
  """value as a float if it is a number (or results.json's 'inf' / 'nan'), else None."""
  if isinstance(value, numbers.Number) and not isinstance(value, bool):
    return float(value)
  return float(value) if value in NON_FINITE else None


def _cell(rows: list[dict]) -> dict:
  """One summary row from the same row of every seed."""
  out = {}
  for column in dict.fromkeys(key for row in rows for key in row):
    if column == SEED or column.endswith(WITHIN_RUN):
      continue
    values = [row.get(column) for row in rows]
    as_numbers = [_number(v) for v in values]
    if all(v == values[0] for v in values):
      out[column] = values[0]
    elif None not in as_numbers:
      out[column], out[f'{column}_seed_low'], out[f'{column}_seed_high'] = (
          intervals.mean_and_interval(as_numbers))
    else:
      out[column] = '|'.join(dict.fromkeys(str(v) for v in values))
  return out


def across_seeds(runs: list[tuple[dict, list[dict]]]) -> list[dict]:
  """Summary rows over the seeds of every group of runs that differ only in `seed`.

  Args:
    runs: (overrides, rows) of every sweep run; overrides are its run-axis values by config
      path ('seed' among them), rows its results rows.

  Returns:
    For each group with two or more seeds, one row per cell: the group's other overrides,
    `num_seeds`, `seeds` ('0,1,2,3') and the cell's columns (see the module docstring); []
    when `seed` is not a run axis.

  Raises:
    ValueError: runs of one group have different numbers of rows.
  """
  groups: dict[tuple, list[tuple[dict, list[dict]]]] = {}
  for overrides, rows in runs:
    if SEED not in overrides:
      return []
    rest = tuple((k, repr(v)) for k, v in overrides.items() if k != SEED)
    groups.setdefault(rest, []).append((overrides, rows))
  summary = []
  for members in groups.values():
    if len(members) < 2:
      continue
    seeds = [overrides[SEED] for overrides, _ in members]
    counts = {len(rows) for _, rows in members}
    if len(counts) > 1:
      raise ValueError(f'sweep: the runs of seeds {seeds} have {sorted(counts)} rows; runs that '
                       'differ only in seed must write the same rows')
    rest = {k: v for k, v in members[0][0].items() if k != SEED}
    for cell in zip(*(rows for _, rows in members)):
      summary.append({**rest, 'num_seeds': len(seeds),
                      'seeds': ','.join(str(s) for s in seeds), **_cell(list(cell))})
  return summary
