"""privacy_utility.png for a study run: one panel per part, in the shared format of
`medinv.core.plots.privacy_utility_panel` (x the model's test accuracy under the defense, y the
strongest attack, one curve per defense ordered by strength with the strength at each point,
the attack's baseline and the majority-class accuracy as lines).

Attribute inference's y is the strongest attack's accuracy minus the better no-model baseline
(one curve per sensitive attribute, whose baselines differ), so its baseline line is 0; model
inversion's y is the strongest attack's SSIM beside the attacker's mean image; membership
inference's y is the strongest attack's AUC (its interval accounts for choosing it) beside 0.5.
"""
from __future__ import annotations

from medinv.core import plots
from medinv.inversion import figures as inversion_figures
from medinv.membership import figures as membership_figures


def attribute_curves(rows: list[dict]) -> dict[str, list[dict]]:
  """{sensitive attribute: points} on training records: per flip probability, the released
  labels' test accuracy and the strongest attack's advantage over the better baseline."""
  members = [r for r in rows if r['targets'] == 'members']
  curves = {}
  for attribute in dict.fromkeys(r['attribute'] for r in members):
    mine = [r for r in members if r['attribute'] == attribute]
    points = []
    for p in dict.fromkeys(r['flip_prob'] for r in mine):
      at_p = [r for r in mine if r['flip_prob'] == p]
      best = max(at_p, key=lambda r: r['attack_accuracy'])
      points.append({'strength': p, 'release_test_accuracy': best['release_test_accuracy'],
                     'advantage': best['attack_accuracy'] - best['best_baseline_accuracy']})
    curves[attribute] = points
  return curves


def _attribute_panel(ax, name: str, results: dict) -> None:
  plots.privacy_utility_panel(
      ax, attribute_curves(results['rows']), x='release_test_accuracy', y='advantage',
      baseline=0.0, baseline_label='no-model baseline',
      majority=results['metrics'].get('test_majority_accuracy'),
      xlabel='released-label test accuracy', ylabel='strongest attack: accuracy - baseline',
      title=f'{name}: label flip probability p')


def _inversion_panel(ax, name: str, results: dict) -> None:
  rows = results['rows']
  curves = {}
  for split in sorted({r['split'] for r in rows if r['split'] is not None}):
    for label, points in inversion_figures.strongest_points(rows, split).items():
      curves[f'split {split}: {label}'] = points
  floor = [r['ssim_mean'] for r in rows if r['attack'] == 'mean_aux_image'
           and r['reference'] == 'target']
  plots.privacy_utility_panel(
      ax, curves, x='model_test_accuracy', y='ssim', baseline=floor[0] if floor else None,
      baseline_label='mean image', majority=results['metrics'].get('test_majority_accuracy'),
      xlabel='model test accuracy under the defense', ylabel='strongest attack SSIM',
      title=f'{name}: weight noise σ')


def _membership_panel(ax, name: str, results: dict) -> None:
  curves = {f'{defense} ({mode})' if mode else defense: points
            for (defense, mode), points in
            membership_figures.defense_curves(results['rows']).items()}
  plots.privacy_utility_panel(
      ax, curves, x='defended_test_accuracy', y='strongest_auc', baseline=0.5,
      baseline_label='chance (AUC 0.5)',
      majority=results['metrics'].get('test_majority_accuracy'),
      xlabel='model test accuracy under the defense', ylabel='strongest attack AUC',
      title=f'{name}: defense strength')


PANELS = {'attribute': _attribute_panel, 'inversion': _inversion_panel,
          'membership': _membership_panel}


def privacy_utility_figure(parts: dict, path: str) -> bool:
  """One panel per part that has a defense curve (see the module doc); False when none."""
  drawn = {name: results for name, results in parts.items()
           if name.split('_')[0] in PANELS and _has_curve(name, results)}
  if not drawn:
    return False
  fig, axes = plots.panel_grid(len(drawn))
  for ax, (name, results) in zip(axes, drawn.items()):
    PANELS[name.split('_')[0]](ax, name, results)
  fig.tight_layout()
  plots.save_png(fig, path, dpi=110, tight=False)
  return True


def _has_curve(name: str, results: dict) -> bool:
  """Whether the part ran a defense at more than one strength."""
  kind, rows = name.split('_')[0], results['rows']
  if kind == 'attribute':
    return len({r['flip_prob'] for r in rows}) > 1
  if kind == 'membership':
    return bool(membership_figures.defense_curves(rows))
  return len({r['strength'] for r in rows if r.get('defense')}) > 1
