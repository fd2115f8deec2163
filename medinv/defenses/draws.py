"""Repeated draws of a split-inference defense: their keys, the (strength, draw) grid, and the
95% interval of a mean over draws and targets.

A defense block's `num_draws` (default 1; `config.defense.<name>.num_draws`) runs that many
independent realisations of the defense at every strength. Draw r deploys with
`draw_key(defense_key, r)`: draw 0 with the defense key itself (so a one-draw run keeps the
numbers it had before draws existed), draw r > 0 with fold_in(defense_key, DRAW_FOLD + r),
apart from every query number and the fit's folds. Model perturbation 'fixed': one weight
perturbation per draw; 'per_query' and the feature defenses: a new per-query key stream per
draw. A defense's fit stage (learned noise) is trained once; its draws vary the deployment.

The experiment's grid point is (strength, draw): `points(strengths, num_draws)` flattens
strengths x draws, strength-major, so one compiled program runs them all, and
`by_strength(outputs, strengths, num_draws)` gives every output a draw axis after the strength
axis. Strength 0 is the undefended model, the same in every draw: it is one point (draw 0)
of the grid, and `by_strength` repeats it over the draws.

Interval (`crossed_interval`): the values y[r, t] of draws r on targets t are a crossed
design (every draw is attacked on the same targets), y = mu + a_r + b_t + e_rt, and the grand
mean has variance s_a^2 / R + s_b^2 / n + s_e^2 / (R n). The estimate
var(draw means) / R + var(target means) / n has expectation that plus s_e^2 / (R n) (slightly
conservative); the interval is mean +- t(0.975, df) x se with Welch-Satterthwaite df. Why not
a bootstrap: a percentile bootstrap under-covers with the 4-16 targets and 1-3 draws these
runs have (no t quantile, a variance too small by (n - 1) / n), and resampling one to three
draws cannot see their spread; this interval is exact for normal data at one draw, where it is
the Student-t interval over targets (`metrics.mean_interval`) the rows carried before draws.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from medinv import metrics

DRAW_FOLD = 1 << 27  # above the query numbers (< 2**26) and the fit's folds (2**26 + split)
LEVEL = 0.95


def num_draws(block) -> int:
  """A defense block's number of draws (1 when the block has no `num_draws`)."""
  return int(block.get('num_draws', 1))


def check(name: str, block) -> None:
  """ValueError naming `defense.<name>.num_draws` unless it is a positive int."""
  value = block.get('num_draws', 1)
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
    raise ValueError(f'defense.{name}.num_draws must be an int >= 1 (independent realisations '
                     f'of the defense per strength), got {value!r}')


def draw_key(defense_key: jax.Array, draw) -> jax.Array:
  """The key draw `draw` (may be traced) deploys with: draw 0 the defense key itself."""
  return jnp.where(draw == 0, defense_key, jax.random.fold_in(defense_key, DRAW_FOLD + draw))


def points(strengths, num: int) -> dict[str, np.ndarray]:
  """{'strength', 'draw'}: every (strength, draw) with strength > 0, strength-major, and
  strength 0 once (draw 0)."""
  pairs = [(float(s), r) for s in strengths for r in range(num) if float(s) != 0 or r == 0]
  return {'strength': np.asarray([s for s, _ in pairs], np.float32),
          'draw': np.asarray([r for _, r in pairs], np.int32)}


def by_strength(tree, strengths, num: int):
  """Leaves over a `points(strengths, num)` grid -> (S, R, ...), strength 0 repeated over the
  draws."""
  def expand(leaf):
    rows, i = [], 0
    for strength in strengths:
      size = 1 if float(strength) == 0 else num
      rows.append(np.broadcast_to(np.asarray(leaf[i:i + size]), (num,) + np.shape(leaf)[1:]))
      i += size
    return np.stack(rows)
  return jax.tree.map(expand, tree)


def crossed_interval(values, level: float = LEVEL) -> tuple[float, float]:
  """The interval of the mean of values (R draws, n targets) (see the module docstring);
  nan when a value is not finite or there is only one value."""
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


def quality_summary(reconstructions, references) -> dict[str, float]:
  """Row fields of reconstructions (R draws, n, h, w, c) of references (n, h, w, c): per metric
  (mse, psnr, ssim) the mean and std over every draw and target, and the interval of the
  mean (`<metric>_low`, `<metric>_high`; psnr's is nan where a reconstruction is exact)."""
  reconstructions = np.asarray(reconstructions)
  draws, n = reconstructions.shape[:2]
  flat = reconstructions.reshape((draws * n,) + reconstructions.shape[2:])
  tiled = np.tile(np.asarray(references), (draws,) + (1,) * (reconstructions.ndim - 2))
  row = {}
  for name, values in metrics.image_quality(jnp.asarray(flat), jnp.asarray(tiled)).items():
    values = np.asarray(values).reshape(draws, n)
    for stat, value in metrics.summarize(values).items():
      row[f'{name}_{stat}'] = value
    row[f'{name}_low'], row[f'{name}_high'] = crossed_interval(values)
  return row


def accuracy_summary(correct, name: str = 'model_test_accuracy') -> dict[str, float]:
  """{name, name_low, name_high}: accuracy from correct (R draws, m test images) and the
  interval of its mean over draws and test images."""
  correct = np.asarray(correct, np.float64)
  low, high = crossed_interval(correct)
  # A float32 count / size, as medinv.training.trainer.evaluate computes the clean model's accuracy.
  mean = np.float32(correct.sum()) / np.float32(correct.size)
  return {name: float(mean), f'{name}_low': low, f'{name}_high': high}
