"""Figures of the model-inversion experiment (drawn with medinv.core.plots; every PNG written
atomically).

recon_<attack>.png: rows = the originals, then one row per (split, defense variant,
  strength) for the attacker that knows the defense (or the only view run), then the
  mean-image baseline; columns = the first `num_columns` targets (MI-FACE: the classes,
  against class means); a defense run over several draws shows draw 0.
ssim_vs_sigma.png (model perturbation) / ssim_vs_<defense>.png: one panel per split; SSIM
  against the strength per attack and variant (solid: first variant, e.g. fixed; dashed: the
  next, e.g. per_query), the model's test accuracy on a second axis (grey). Every curve is the
  mean over the defense's draws and the targets (test images) with its 95% interval as a
  band (the rows' <metric>_low / _high, `medinv.metrics.intervals.crossed_interval`).
privacy_utility_split<k>.png: accuracy x the strongest attack's SSIM per defense, both with
  their intervals as error bars.
"""
from __future__ import annotations

import os

import numpy as np

from medinv.core import plots


def _preferred_view(keys) -> object:
  views = {key[3] for key in keys}
  return True if True in views else sorted(views, key=str)[0]


def reconstruction_grids(workdir: str, recon: dict, originals: np.ndarray,
                         baseline: np.ndarray, class_means: np.ndarray,
                         num_columns: int) -> list[str]:
  """One PNG per attack; returns the paths written."""
  paths = []
  for attack in sorted({key[0] for key in recon}):
    keys = [key for key in recon if key[0] == attack]
    view = _preferred_view(keys)
    mi_face = attack == 'mi_face'
    reference = class_means if mi_face else originals[:num_columns]
    rows = [('class mean' if mi_face else 'original', reference)]
    for _, split, mode, _, sigma in sorted((k for k in keys if k[3] == view), key=str):
      images = recon[attack, split, mode, view, sigma][:len(reference)]
      symbol = 'sigma' if mode in ('fixed', 'per_query') else 'strength'
      rows.append((f'split {split} {mode}\n{symbol} {sigma:g}', images))
    rows.append(('mean aux image', baseline[:len(reference)]))
    path = os.path.join(workdir, f'recon_{attack}.png')
    plots.image_grid(rows, path)
    paths.append(path)
  return paths


# The attacker's views (a row's knows_defense) as the report names them. The paper's setting
# is the decoder trained before the defense was deployed (on the clean model's features).
VIEWS = {True: 'queries the deployed model', False: 'trained before the defense (paper)',
         None: 'passive (no queries)'}


def figure_name(defense: str) -> str:
  """ssim_vs_sigma.png for model perturbation (the paper's defense), else ssim_vs_<defense>."""
  return 'ssim_vs_sigma.png' if defense == 'model_perturbation' else f'ssim_vs_{defense}.png'


def _panel(ax, twin, rows: list[dict], attacks: list[str], colors: dict) -> None:
  """One split: SSIM per (attack, variant, attacker view) and accuracy per variant against
  strength; line styles tell the (variant, view) pairs apart."""
  variants = list(dict.fromkeys(r['mode'] for r in rows))
  views = list(dict.fromkeys((r['mode'], r['knows_defense']) for r in rows))
  for (variant, view), style in zip(views, ('-', '--', ':', '-.') * len(views)):
    mine = [r for r in rows if (r['mode'], r['knows_defense']) == (variant, view)]
    suffix = ', '.join(filter(None, [variant, VIEWS[view]]))
    for attack in attacks:
      line = sorted((r['strength'], r['ssim_mean']) for r in mine if r['attack'] == attack)
      if line:
        ax.plot(*zip(*line), style, marker='o', ms=3, color=colors[attack],
                label=f'{attack} ({suffix})')
        plots.band(ax, [r for r in mine if r['attack'] == attack], 'ssim', color=colors[attack])
  for variant, style in zip(variants, ('-', '--', ':', '-.') * len(variants)):
    at = {r['strength']: r for r in rows if r['mode'] == variant}  # one per strength
    accuracy = sorted((s, r['model_test_accuracy']) for s, r in at.items())
    twin.plot(*zip(*accuracy), style, color='grey', alpha=0.6,
              label=f'accuracy ({variant})' if variant else 'accuracy')
    plots.band(twin, list(at.values()), 'model_test_accuracy', color='grey')


def ssim_vs_strength(workdir: str, rows: list[dict], defense: str) -> str | None:
  """SSIM against the defense strength per split (attacks x variants), accuracy on a twin axis."""
  attack_rows = [r for r in rows if r['defense'] == defense and r['reference'] == 'target']
  splits = sorted({r['split'] for r in attack_rows})
  if not splits:
    return None
  fig, axes = plots.plt.subplots(1, len(splits), squeeze=False, figsize=(4.2 * len(splits), 3.4))
  attacks = sorted({r['attack'] for r in attack_rows})
  colors = dict(zip(attacks, plots.plt.rcParams['axes.prop_cycle'].by_key()['color'] * 4))
  for ax, split in zip(axes[0], splits):
    twin = ax.twinx()
    _panel(ax, twin, [r for r in attack_rows if r['split'] == split], attacks, colors)
    ax.set_title(f'split {split}')
    ax.set_xlabel('sigma' if defense == 'model_perturbation' else f'{defense} strength')
    ax.set_ylabel('SSIM')
    ax.set_ylim(-0.05, 1.05)
    twin.set_ylabel('model test accuracy', color='grey')
    twin.set_ylim(0.0, 1.0)
  fig.subplots_adjust(wspace=0.55)
  handles, labels = axes[0, 0].get_legend_handles_labels()
  fig.legend(handles, labels, loc='upper center', ncol=min(3, len(labels)), fontsize=6,
             bbox_to_anchor=(0.5, 1.0 + 0.04 * -(-len(labels) // 3)))
  path = os.path.join(workdir, figure_name(defense))
  plots.save_png(fig, path)
  return path


def strongest_points(rows: list[dict], split) -> dict[str, list[dict]]:
  """{defense label: [row, ...] by strength} at one split: per deployment (defense, mode,
  strength) the row of the attack with the best mean SSIM among those that reconstruct the
  targets, any attacker view. The label names the mode when a defense has several."""
  best = {}
  for r in rows:
    if r['split'] != split or r['reference'] != 'target' or r['defense'] is None:
      continue
    key = (r['defense'], r['mode'], r['strength'])
    if key not in best or r['ssim_mean'] > best[key]['ssim_mean']:
      best[key] = r
  modes = {}
  for defense, mode, _ in best:
    modes.setdefault(defense, set()).add(mode)
  curves = {}
  for (defense, mode, _), row in best.items():
    curves.setdefault(f'{defense} ({mode})' if len(modes[defense]) > 1 else defense,
                      []).append(row)
  return {label: sorted(points, key=lambda r: r['strength']) for label, points in curves.items()}


def privacy_utility(workdir: str, rows: list[dict], split, majority: float | None = None
                    ) -> str:
  """privacy_utility_split<k>.png: every defense at one split, x the deployed model's test
  accuracy, y the strongest attack's SSIM (each point one strength), the attacker's mean image
  as the floor and the majority-class accuracy (`plots.privacy_utility_panel`); the best
  trade-off is the point furthest right and lowest."""
  fig, ax = plots.plt.subplots(figsize=(5.5, 4.2))
  floor = [r['ssim_mean'] for r in rows if r['attack'] == 'mean_aux_image'
           and r['reference'] == 'target']
  plots.privacy_utility_panel(
      ax, strongest_points(rows, split), x='model_test_accuracy', y='ssim',
      baseline=floor[0] if floor else None, baseline_label='mean image', majority=majority,
      xlabel='model test accuracy under the defense', ylabel='strongest attack SSIM',
      title=f'split {split}: every defense')
  path = os.path.join(workdir, f'privacy_utility_split{split}.png')
  plots.save_png(fig, path)
  return path


def write_all(workdir: str, rows: list[dict], recon: dict, *, originals: np.ndarray,
              baseline: np.ndarray, class_means: np.ndarray, num_columns: int,
              majority: float | None = None) -> list[str]:
  """Every figure of the experiment (majority: the majority-class test accuracy); returns
  the paths written."""
  paths = reconstruction_grids(workdir, recon, originals, baseline, class_means, num_columns)
  for defense in dict.fromkeys(r['defense'] for r in rows if r['defense']):
    path = ssim_vs_strength(workdir, rows, defense)
    paths += [path] if path else []
  splits = sorted({r['split'] for r in rows if r['split'] is not None})
  return paths + [privacy_utility(workdir, rows, split, majority) for split in splits]
