"""Summaries and 95% intervals of means: every interval a medinv row carries comes from here.

- `summarize`: mean and (population) std of per-image values, +inf kept visible;
- `mean_interval` / `mean_and_interval`: the Student-t interval of a mean over independent
  values (the images of one run; a sweep's target seeds, `medinv.study.seeds`);
- `percentile_interval`: the percentile bootstrap interval of resampled statistics
  (membership inference's records, `medinv.metrics.roc.bootstrap`);
- `selection_interval`: the interval of the largest of several statistics (the strongest
  attack's AUC), a simultaneous band over paired resamples that accounts for the choice;
- `crossed_interval`: the interval of a mean over defense draws x targets
  (`medinv.defenses.draws`);
- `difference_interval`: Newcombe's hybrid score interval of a difference of two independent
  proportions (attribute inference's accuracy on members minus non-members).

Crossed design (`crossed_interval`): the values y[r, t] of draws r on targets t are a crossed
design (every draw is attacked on the same targets), y = mu + a_r + b_t + e_rt, and the grand
mean has variance s_a^2 / R + s_b^2 / n + s_e^2 / (R n). The estimate
var(draw means) / R + var(target means) / n has expectation that plus s_e^2 / (R n) (slightly
conservative); the interval is mean +- t(0.975, df) x se with Welch-Satterthwaite df. Why not
a bootstrap: a percentile bootstrap under-covers with the 4-16 targets and 1-3 draws these
runs have (no t quantile, a variance too small by (n - 1) / n), and resampling one to three
draws cannot see their spread; this interval is exact for normal data at one draw, where it is
the Student-t interval over targets (`mean_interval`) the rows carried before draws.
"""
from __future__ import annotations

import math

import numpy as np

LEVEL = 0.95


def summarize(values) -> dict[str, float]:
  """Mean and (population) std of per-image values.

  +inf values (PSNR of exact reconstructions) make the mean +inf; the std is then 0 when
  every value is +inf and nan otherwise (a spread that includes infinity is undefined).

  Args:
    values: numbers of any shape (flattened).

  Returns:
    {'mean': float, 'std': float}.

  Raises:
    ValueError: values is empty.
  """
  values = np.asarray(values, np.float64).ravel()
  if values.size == 0:
    raise ValueError('cannot summarize an empty set of values')
  if np.all(np.isfinite(values)):
    return {'mean': float(np.mean(values)), 'std': float(np.std(values))}
  if np.any(np.isnan(values)):
    return {'mean': math.nan, 'std': math.nan}
  if np.all(values == values[0]):
    return {'mean': float(values[0]), 'std': 0.0}
  return {'mean': float(np.mean(values)), 'std': math.nan}


def mean_interval(values, level: float = LEVEL) -> tuple[float, float]:
  """Student-t interval of the mean of independent values.

  Args:
    values: numbers of any shape (flattened).
    level: the interval's coverage.

  Returns:
    (low, high); (nan, nan) with fewer than 2 values or a value that is not finite.
  """
  from scipy import stats
  values = np.asarray(values, np.float64).ravel()
  if values.size < 2 or not np.all(np.isfinite(values)):
    return math.nan, math.nan
  half = stats.t.ppf(0.5 + level / 2, values.size - 1) * stats.sem(values)
  return float(np.mean(values) - half), float(np.mean(values) + half)


def mean_and_interval(values, level: float = LEVEL) -> tuple[float, float, float]:
  """The mean of independent values with its Student-t interval (`mean_interval`).

  Args:
    values: a sequence of numbers.
    level: the interval's coverage.

  Returns:
    (mean, low, high).
  """
  return (float(np.mean(values)),) + mean_interval(values, level)


def percentile_interval(samples, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
  """Percentile bootstrap interval over the leading axis, nan samples ignored.

  Args:
    samples: (B, ...) a statistic on B resamples.
    level: the interval's coverage.

  Returns:
    (low, high), each shaped like one sample.
  """
  samples = np.asarray(samples, np.float64)
  tail = 50.0 * (1.0 - level)
  return (np.nanpercentile(samples, tail, axis=0), np.nanpercentile(samples, 100 - tail, axis=0))


def selection_interval(values, samples, level: float = LEVEL, bounds=(-np.inf, np.inf)
                       ) -> dict:
  """The interval of the largest of J statistics chosen on the same data (the strongest
  attack's AUC), which accounts for the choice.

  The chosen statistic's own interval is optimistic (the winner's curse: with J attacks at
  chance the best one's interval often excludes chance), and the percentile interval of
  each resample's largest value is biased further upward. This is the simultaneous
  bootstrap band (max-|t|): in every resample, the largest over the J statistics of
  |sample_j - value_j| / sd_j (sd_j: the std of statistic j over the resamples), and c its
  `level` quantile; with that probability every true value lies in value_j +- c sd_j at
  once, so their largest lies in [max_j (value_j - c sd_j), max_j (value_j + c sd_j)],
  whichever statistic the data favoured. It is wider than one statistic's interval (c grows
  with J: about 2.5 for 5 near-independent statistics against 1.96 for one).

  Args:
    values: (J,) each candidate's statistic on the data.
    samples: (B, J) the statistics on B paired resamples (one resample serves all J);
      resamples with a nan are dropped.
    level: the interval's coverage.
    bounds: the statistic's range, where the interval is clipped (AUC: (0, 1)).

  Returns:
    {'best': index of the largest value, 'value': it, 'low', 'high': the interval,
     'share': the fraction of resamples in which `best` is the largest}.
  """
  values = np.asarray(values, np.float64)
  samples = np.asarray(samples, np.float64).reshape(-1, values.size)
  samples = samples[~np.any(np.isnan(samples), axis=1)]
  best = int(np.argmax(values))
  out = {'best': best, 'value': float(values[best]), 'low': math.nan, 'high': math.nan,
         'share': math.nan}
  if len(samples) < 2:
    return out
  spread = np.std(samples, axis=0, ddof=1)
  deviation = np.abs(samples - values) / np.where(spread > 0, spread, np.inf)
  critical = np.quantile(np.max(deviation, axis=1), level)
  low, high = np.clip([np.max(values - critical * spread), np.max(values + critical * spread)],
                      *bounds)
  return {**out, 'low': float(low), 'high': float(high),
          'share': float(np.mean(np.argmax(samples, axis=1) == best))}


def crossed_interval(values, level: float = LEVEL) -> tuple[float, float]:
  """The interval of the mean of values over R draws x n targets (see the module docstring).

  Args:
    values: (R, n) values, or (n,) for one draw.
    level: the interval's coverage.

  Returns:
    (low, high); (nan, nan) when a value is not finite or there is only one value.
  """
  values = np.asarray(values, np.float64)
  if values.ndim == 1:
    values = values[None]
  draws, targets = values.shape
  if values.size < 2 or not np.all(np.isfinite(values)):
    return math.nan, math.nan
  parts = [(np.var(values.mean(axis=1), ddof=1) / draws, draws - 1) if draws > 1 else (0., 1),
           (np.var(values.mean(axis=0), ddof=1) / targets, targets - 1) if targets > 1
           else (0., 1)]
  variance = sum(part for part, _ in parts)
  mean = float(np.mean(values))
  if variance <= 0:
    return mean, mean
  df = variance ** 2 / sum(part ** 2 / dof for part, dof in parts)
  from scipy import stats
  half = stats.t.ppf(0.5 + level / 2, df) * math.sqrt(variance)
  return mean - half, mean + half


def difference_interval(k1: float, n1: int, k2: float, n2: int,
                        level: float = LEVEL) -> tuple[float, float]:
  """Newcombe's (1998, method 10) interval of p1 - p2, p_i = k_i / n_i independent
  proportions, from the Wilson score interval of each (good coverage at small n and near 0
  or 1, where the Wald interval is not).

  Args:
    k1, n1, k2, n2: successes and trials of each sample (k rounded to whole trials).
    level: the interval's coverage.

  Returns:
    (low, high); (nan, nan) when a sample is empty.
  """
  from scipy import stats
  if n1 < 1 or n2 < 1:
    return math.nan, math.nan
  k1, k2 = int(round(k1)), int(round(k2))
  p1, p2 = k1 / n1, k2 / n2
  l1, u1 = stats.binomtest(k1, n1).proportion_ci(level, 'wilson')
  l2, u2 = stats.binomtest(k2, n2).proportion_ci(level, 'wilson')
  d = p1 - p2
  return (d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
          d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))
