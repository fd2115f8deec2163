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

Rows (`quality_summary`, `accuracy_summary`) carry the 95% interval of a mean over draws and
targets: `medinv.metrics.intervals.crossed_interval` (a crossed draws x targets design; with one
draw, the Student-t interval over targets).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from medinv.metrics import image as image_metrics
from medinv.metrics import intervals

DRAW_FOLD = 1 << 27  # above the query numbers (< 2**26) and the fit's folds (2**26 + split)


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


def quality_summary(reconstructions, references) -> dict[str, float]:
  """Row fields of reconstructions (R draws, n, h, w, c) of references (n, h, w, c): per metric
  (mse, psnr, ssim) the mean and std over every draw and target, and the interval of the
  mean (`<metric>_low`, `<metric>_high`; psnr's is nan where a reconstruction is exact)."""
  reconstructions = np.asarray(reconstructions)
  draws, n = reconstructions.shape[:2]
  flat = reconstructions.reshape((draws * n,) + reconstructions.shape[2:])
  tiled = np.tile(np.asarray(references), (draws,) + (1,) * (reconstructions.ndim - 2))
  row = {}
  for name, values in image_metrics.image_quality(jnp.asarray(flat), jnp.asarray(tiled)).items():
    values = np.asarray(values).reshape(draws, n)
    for stat, value in intervals.summarize(values).items():
      row[f'{name}_{stat}'] = value
    row[f'{name}_low'], row[f'{name}_high'] = intervals.crossed_interval(values)
  return row


def accuracy_summary(correct, name: str = 'model_test_accuracy') -> dict[str, float]:
  """{name, name_low, name_high}: accuracy from correct (R draws, m test images) and the
  interval of its mean over draws and test images."""
  correct = np.asarray(correct, np.float64)
  low, high = intervals.crossed_interval(correct)
  # A float32 count / size, as medinv.training.evaluation.evaluate computes the clean model's
  # accuracy.
  mean = np.float32(correct.sum()) / np.float32(correct.size)
  return {name: float(mean), f'{name}_low': low, f'{name}_high': high}
