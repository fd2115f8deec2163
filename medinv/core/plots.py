"""Figures' shared machinery: matplotlib on its Agg backend (chosen here, the one place) and
the plot helpers every task's figures use. Each task's figures module (e.g.
medinv.inversion.figures) keeps the figures of that task; they draw with `plt` from here.

- `save_png`: a figure written atomically as PNG (`report.write_atomic`), then closed;
- `image_grid`: rows of grey images on one canvas, a label per row;
- `band`: a shaded interval (the rows' <metric>_low / _high) against strength;
- `error_bars` / `plot_curve`: a privacy-utility curve with both intervals as error bars;
- `reference_lines`: the attack's baseline (horizontal) and the majority-class accuracy
  (vertical) on a privacy-utility panel;
- `privacy_utility_panel`: one whole panel in the shared format; `panel_grid`: the canvas
  for several, two to a line.

Every privacy-utility figure (the study's, the DP study's, the split-defense study's, model
inversion's per split) draws the same way: x the model's test accuracy under the defense, y the
strongest attack, one curve per defense ordered by strength with the strength written at each
point, and both reference lines.
"""
from __future__ import annotations

import io

import matplotlib

matplotlib.use('Agg')
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

from medinv.core import report


def save_png(fig, path: str, *, dpi: int = 100, tight: bool = True) -> None:
  """Writes fig to path as PNG (atomically) and closes it.

  Args:
    fig: a matplotlib figure.
    path: the file to write.
    dpi: dots per inch.
    tight: crop the canvas to what is drawn (`bbox_inches='tight'`).
  """
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png', dpi=dpi, bbox_inches='tight' if tight else None)
  plt.close(fig)
  report.write_atomic(path, buffer.getvalue())


def image_grid(rows: list[tuple[str, np.ndarray]], path: str) -> None:
  """Writes a grid of grey images: rows of (label, images (k, h, w, c)).

  The grid is one canvas (images on a white background, one imshow): a subplot per image
  took 1.5 s per figure.

  Args:
    rows: (label, images in [0, 1] shaped (k, h, w, c)) per row; rows may differ in k.
    path: the PNG to write.
  """
  columns = max(len(images) for _, images in rows)
  h, w = np.asarray(rows[0][1]).shape[1:3]
  pad = max(1, h // 16)
  canvas = np.ones((len(rows) * (h + pad) - pad, columns * (w + pad) - pad), np.float32)
  for r, (_, images) in enumerate(rows):
    for c, image in enumerate(np.asarray(images)):
      canvas[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = image[..., 0]
  fig, ax = plt.subplots(figsize=(0.9 * columns + 1.6, 0.9 * len(rows)))
  ax.imshow(canvas, cmap='gray', vmin=0.0, vmax=1.0, interpolation='nearest')
  ax.set_xticks([])
  ax.set_yticks([r * (h + pad) + h / 2 for r in range(len(rows))],
                [label for label, _ in rows], fontsize=7)
  ax.tick_params(length=0)
  for spine in ax.spines.values():
    spine.set_visible(False)
  save_png(fig, path)


def band(ax, rows: list[dict], metric: str, **style) -> None:
  """A shaded band between rows' <metric>_low and _high against strength (skipped where a
  row has no finite interval).

  Args:
    ax: the axes to draw on.
    rows: dicts with 'strength' and, where known, <metric>_low and <metric>_high.
    metric: the column prefix ('ssim', 'model_test_accuracy').
    **style: passed to `fill_between` (e.g. color).
  """
  points = sorted((r['strength'], r.get(f'{metric}_low'), r.get(f'{metric}_high'))
                  for r in rows)
  points = [p for p in points if p[1] is not None and p[2] is not None
            and np.isfinite(p[1]) and np.isfinite(p[2])]
  if points:
    ax.fill_between(*zip(*points), alpha=0.15, linewidth=0, **style)


def _value(point: dict, stat: str) -> float:
  """point's <stat>_mean, or its <stat> where it has no mean column."""
  return point.get(f'{stat}_mean', point.get(stat))


def error_bars(points: list[dict], stat: str) -> list[list[float]]:
  """[below, above] errorbar lengths from points' <stat>_low / _high.

  Args:
    points: rows with <stat>_mean (or <stat>) and, where known, <stat>_low and <stat>_high.
    stat: the column prefix.

  Returns:
    Two lists of lengths, one per point (0 where an end is absent or not finite).
  """
  mean = [_value(p, stat) for p in points]
  low = [p.get(f'{stat}_low') for p in points]
  high = [p.get(f'{stat}_high') for p in points]
  return [[m - lo if lo is not None and np.isfinite(lo) else 0.0 for m, lo in zip(mean, low)],
          [hi - m if hi is not None and np.isfinite(hi) else 0.0 for m, hi in zip(mean, high)]]


def plot_curve(ax, label: str, points: list[dict], annotate: str, *, x: str, y: str) -> None:
  """One privacy-utility curve: stat x against stat y, each with its interval as error bars,
  every point annotated with its `annotate` field (e.g. the strength).

  Args:
    ax: the axes to draw on.
    label: the curve's legend label.
    points: rows (see `error_bars`), in the curve's order.
    annotate: the field written beside each point.
    x: the x stat (e.g. 'model_test_accuracy').
    y: the y stat (e.g. 'ssim').
  """
  xs = [_value(p, x) for p in points]
  ys = [_value(p, y) for p in points]
  ax.errorbar(xs, ys, xerr=error_bars(points, x), yerr=error_bars(points, y),
              marker='o', capsize=2, label=label)
  for point, xi, yi in zip(points, xs, ys):
    text = point[annotate]
    ax.annotate(text if isinstance(text, str) else f'{text:g}', (xi, yi), fontsize=6,
                xytext=(2, 2), textcoords='offset points')


def reference_lines(ax, *, baseline: float | None = None, baseline_label: str = 'baseline',
                    majority: float | None = None) -> None:
  """The two lines every privacy-utility panel carries.

  Args:
    ax: the axes to draw on.
    baseline: the attack's no-model baseline on the y axis (dashed); None: none drawn.
    baseline_label: its legend label.
    majority: the majority-class test accuracy on the x axis (dotted): a model left of it is
      no better than a constant guess. None: none drawn.
  """
  if baseline is not None and np.isfinite(baseline):
    ax.axhline(baseline, ls='--', color='gray', lw=1.0, label=baseline_label)
  if majority is not None and np.isfinite(majority):
    ax.axvline(majority, ls=':', color='black', lw=1.0, label='majority class')


def privacy_utility_panel(ax, curves: dict[str, list[dict]], *, x: str, y: str,
                          annotate: str = 'strength', baseline: float | None = None,
                          baseline_label: str = 'baseline', majority: float | None = None,
                          xlabel: str, ylabel: str, title: str) -> None:
  """A privacy-utility panel in the format every study figure shares (see the module doc).

  Args:
    ax: the axes to draw on.
    curves: {legend label: rows}; each curve is drawn in order of its `annotate` field.
    x: the utility stat (e.g. 'model_test_accuracy'), with its interval where rows have one.
    y: the attack's stat (e.g. 'ssim'), likewise.
    annotate: the field that orders a curve and is written at each point (its strength).
    baseline: the attack's no-model baseline (a dashed horizontal line), or None.
    baseline_label: its legend label.
    majority: the majority-class test accuracy (a dotted vertical line), or None.
    xlabel: the x axis label.
    ylabel: the y axis label.
    title: the panel's title.
  """
  for label, points in curves.items():
    ordered = sorted(points, key=lambda p: (isinstance(p[annotate], str), p[annotate]))
    plot_curve(ax, label, ordered, annotate, x=x, y=y)
  reference_lines(ax, baseline=baseline, baseline_label=baseline_label, majority=majority)
  ax.set_xlabel(xlabel, fontsize=8)
  ax.set_ylabel(ylabel, fontsize=8)
  ax.set_title(title, fontsize=9)
  if ax.get_legend_handles_labels()[0]:
    ax.legend(fontsize=6)


def panel_grid(count: int, *, width: float = 5.5, height: float = 4.2):
  """A figure with `count` panels, two to a line (extra axes hidden).

  Returns:
    (figure, the `count` axes in reading order).
  """
  columns = min(max(count, 1), 2)
  lines = -(-max(count, 1) // columns)
  fig, axes = plt.subplots(lines, columns, figsize=(width * columns, height * lines),
                           squeeze=False)
  for ax in list(axes.flat)[count:]:
    ax.set_visible(False)
  return fig, list(axes.flat)[:count]
