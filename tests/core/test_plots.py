"""The privacy-utility panel every study figure shares (medinv.core.plots): each curve in
order of strength with the strength written at each point, intervals as error bars, the
attack's baseline as a horizontal line and the majority-class accuracy as a vertical one."""
import os

import numpy as np
from PIL import Image

from medinv.core import plots


def _points():
  # Given out of order: the panel orders a curve by strength.
  return [{'strength': 0.05, 'acc': 0.70, 'ssim_mean': 0.30, 'ssim_low': 0.25, 'ssim_high': 0.35},
          {'strength': 0.0, 'acc': 0.86, 'ssim_mean': 0.90, 'ssim_low': 0.88, 'ssim_high': 0.92},
          {'strength': 0.02, 'acc': 0.80, 'ssim_mean': 0.60, 'ssim_low': 0.50, 'ssim_high': 0.70}]


def _panel(**kwargs):
  fig, (ax,) = plots.panel_grid(1)
  plots.privacy_utility_panel(ax, {'model_perturbation': _points()}, x='acc', y='ssim',
                              xlabel='accuracy', ylabel='SSIM', title='split 4', **kwargs)
  return fig, ax


def test_curve_is_ordered_by_strength_and_each_point_carries_it():
  fig, ax = _panel(baseline=0.3, baseline_label='mean image', majority=0.73)
  curve = ax.containers[0]  # the errorbar container of the one curve
  xs, ys = (np.asarray(v, float) for v in curve.lines[0].get_data())
  np.testing.assert_allclose(xs, [0.86, 0.80, 0.70])
  np.testing.assert_allclose(ys, [0.90, 0.60, 0.30])
  assert [t.get_text() for t in ax.texts] == ['0', '0.02', '0.05']
  plots.plt.close(fig)


def test_baseline_and_majority_are_drawn_as_lines_with_labels():
  fig, ax = _panel(baseline=0.3, baseline_label='mean image', majority=0.73)
  lines = {line.get_label(): line for line in ax.get_lines()}
  assert set(lines[label].get_ydata()[0] for label in ['mean image']) == {0.3}
  assert lines['majority class'].get_xdata()[0] == 0.73
  labels = ax.get_legend_handles_labels()[1]
  assert labels == ['mean image', 'majority class', 'model_perturbation']
  plots.plt.close(fig)
  fig, ax = _panel()  # no baseline, no majority: no reference lines
  assert not [line for line in ax.get_lines() if line.get_label() in ('baseline',
                                                                        'majority class')]
  plots.plt.close(fig)


def test_y_intervals_become_error_bars(tmp_path):
  fig, ax = _panel(baseline=0.3)
  segments = ax.containers[0].lines[2][-1].get_segments()  # the y error bars, point by point
  spans = sorted((round(float(s[0][1]), 3), round(float(s[1][1]), 3)) for s in segments)
  assert spans == [(0.25, 0.35), (0.5, 0.7), (0.88, 0.92)]
  path = os.path.join(tmp_path, 'panel.png')
  plots.save_png(fig, path)
  assert Image.open(path).size[0] > 100
