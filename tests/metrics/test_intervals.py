"""Intervals (medinv.metrics.intervals): summaries with +inf, the t-interval of a mean worked
out by hand, and the draws x targets interval's coverage of a known mean (a fixed-seed
statistical test) with its edge cases."""
import math

import numpy as np
import pytest

from medinv.metrics import intervals


def test_summarize():
  assert intervals.summarize([1.0, 3.0]) == {'mean': 2.0, 'std': 1.0}
  mixed = intervals.summarize([10.0, math.inf])
  assert mixed['mean'] == math.inf and math.isnan(mixed['std'])
  with pytest.raises(ValueError, match='empty'):
    intervals.summarize([])


def test_mean_and_t_interval_worked_out_by_hand():
  # mean 2, sem 1 / sqrt(3), t(0.975, 2 dof) = 4.302653: half width 2.484138.
  mean, low, high = intervals.mean_and_interval([1.0, 2.0, 3.0])
  assert mean == 2.0
  assert low == pytest.approx(2 - 2.484138, abs=1e-6)
  assert high == pytest.approx(2 + 2.484138, abs=1e-6)
  assert all(math.isnan(v) for v in intervals.mean_interval([1.0]))
  assert all(math.isnan(v) for v in intervals.mean_interval([1.0, math.inf]))
  assert intervals.mean_interval([1.0, 2.0, 3.0], level=0.5)[1] < high  # narrower at 50%


def test_percentile_interval_ignores_nan_samples():
  samples = np.concatenate([np.arange(101.0), [np.nan] * 50])[:, None] * [1.0, 2.0]
  low, high = intervals.percentile_interval(samples)
  np.testing.assert_allclose(low, [2.5, 5.0])
  np.testing.assert_allclose(high, [97.5, 195.0])


def _coverage(rng, num_draws, targets, sd_draw, sd_target, sd_noise, interval, reps=1000):
  """Fraction of `reps` crossed samples y = 0.5 + a_r + b_t + e_rt whose interval holds 0.5."""
  hits = 0
  for _ in range(reps):
    values = (0.5 + sd_draw * rng.standard_normal((num_draws, 1))
              + sd_target * rng.standard_normal((1, targets))
              + sd_noise * rng.standard_normal((num_draws, targets)))
    low, high = interval(values)
    hits += low <= 0.5 <= high
  return hits / reps


@pytest.mark.parametrize('num_draws,targets,sd_draw,sd_target,sd_noise', [
    (1, 8, 0.0, 0.2, 0.0),     # one draw: the t-interval over targets
    (3, 8, 0.2, 0.05, 0.02),   # the draws dominate
    (3, 8, 0.02, 0.2, 0.02),   # the targets dominate
    (2, 4, 0.1, 0.1, 0.05),    # both, the smoke config's size
])
def test_interval_covers_a_known_mean_about_95_percent(num_draws, targets, sd_draw, sd_target,
                                                       sd_noise):
  rng = np.random.default_rng(12)
  coverage = _coverage(rng, num_draws, targets, sd_draw, sd_target, sd_noise,
                       intervals.crossed_interval)
  assert 0.925 <= coverage <= 0.985, coverage  # 1000 repetitions: sd of the rate ~0.007


def test_coverage_test_catches_an_interval_that_ignores_the_draws():
  """Treating the draws x targets values as independent images (the old per-target interval
  over every value) misses the draw-to-draw spread: far below 95%, so the test can fail."""
  rng = np.random.default_rng(12)
  pooled = lambda values: intervals.mean_interval(values.ravel())
  assert _coverage(rng, 3, 8, 0.2, 0.05, 0.02, pooled, reps=400) < 0.8


def test_crossed_interval_edge_cases():
  values = np.random.default_rng(0).normal(size=9)
  np.testing.assert_allclose(intervals.crossed_interval(values[None]),
                             intervals.mean_interval(values))  # one draw, nine targets
  np.testing.assert_allclose(intervals.crossed_interval(values[:, None]),
                             intervals.mean_interval(values))  # one target, nine draws
  assert intervals.crossed_interval(np.full((2, 3), 0.4)) == (pytest.approx(0.4),) * 2
  assert all(math.isnan(v) for v in intervals.crossed_interval([[0.3]]))
  assert all(math.isnan(v) for v in intervals.crossed_interval([[0.3, np.inf]]))


def test_difference_interval_matches_newcombe_1998():
  # Newcombe (1998), Statistics in Medicine 17:873-890, Table II, example (a): 56/70 vs
  # 48/80, method 10 (hybrid score): 0.0524 to 0.3339.
  low, high = intervals.difference_interval(56, 70, 48, 80)
  assert (low, high) == pytest.approx((0.0524, 0.3339), abs=1e-4)
  # Example (d), 5/56 vs 0/29 (a zero count, where Wald fails): -0.0381 to 0.1926.
  assert intervals.difference_interval(5, 56, 0, 29) == pytest.approx((-0.0381, 0.1926),
                                                                     abs=1e-4)
  assert all(math.isnan(v) for v in intervals.difference_interval(1, 0, 1, 3))


def test_selection_interval_worked_out_by_hand():
  """Resample stds sqrt(0.003 / 3) and sqrt(0.0074 / 3); the largest standardised
  deviations per resample have median c = (0.05 / sd1 + 0.06 / sd1) / 2 at level 0.5; the
  interval is [max(0.6 - c sd0, 0.55 - c sd1), max(0.6 + c sd0, 0.55 + c sd1)]; attack 0 is
  the largest in 3 of 4 resamples. A resample with a nan is dropped."""
  samples = [[0.62, 0.50], [0.58, 0.61], [0.65, 0.52], [0.59, 0.57], [math.nan, 0.9]]
  got = intervals.selection_interval([0.6, 0.55], samples, level=0.5)
  sd0, sd1 = math.sqrt(0.003 / 3), math.sqrt(0.0074 / 3)
  # per resample max(|s0 - 0.6| / sd0, |s1 - 0.55| / sd1): 0.05/sd1, 0.06/sd1, 0.05/sd0, 0.02/sd1
  c = (0.05 / sd1 + 0.06 / sd1) / 2
  assert got['best'] == 0 and got['value'] == 0.6 and got['share'] == 0.75
  assert got['low'] == pytest.approx(0.6 - c * sd0) and got['high'] == pytest.approx(0.6 + c * sd0)
  clipped = intervals.selection_interval([0.99, 0.5], [[0.9, 0.5], [0.95, 0.45], [1.0, 0.6]],
                                         bounds=(0, 1))
  assert clipped['high'] == 1.0
  assert math.isnan(intervals.selection_interval([0.5], [[0.5]])['low'])  # one resample
