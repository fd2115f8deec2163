"""Every split-inference defense of a study side by side (configs/split_defenses.py).

Inference-time defenses (model perturbation, feature noise, feature dropout) come from the
model-inversion part trained without NoPeek; NoPeek, a training-time defense, is one target per
weight (train.nopeek_weight), so each NoPeek part contributes its undefended deployment as
one point of the 'nopeek' curve (weight 0: the plain target). Per split: a table of every
(defense, strength) with the target's accuracy under it and the strongest attack's SSIM with
its interval, and privacy_utility_split<k>.png (x accuracy, y strongest SSIM).
"""
from __future__ import annotations

import os

from medinv.core import plots
from medinv.inversion import figures as inversion_figures
from medinv.study import report as study_report


def _inversion_parts(parts: dict) -> dict:
  return {name: results for name, results in parts.items() if name.startswith('inversion_')}


def is_defense_study(configs) -> bool:
  """True when some model-inversion part trains its target with NoPeek."""
  return any(name.startswith('inversion_')
             and float(config.train.get('nopeek_weight', 0.0)) > 0
             for name, config in configs.items())


def curves(parts: dict, configs, split) -> dict[str, list[dict]]:
  """{defense label: [row of the strongest attack, ...]} over every model-inversion part."""
  out, nopeek = {}, []
  for name, results in _inversion_parts(parts).items():
    weight = float(configs[name].train.nopeek_weight)
    points = inversion_figures.strongest_points(results['rows'], split)
    undefended = [r for rows in points.values() for r in rows if not r['strength']][:1]
    nopeek += [{**r, 'nopeek_weight': weight} for r in undefended]
    if not weight:
      for label, rows in points.items():
        out.setdefault(label, []).extend(rows)
  if len(nopeek) > 1:
    out['nopeek'] = sorted(nopeek, key=lambda r: r['nopeek_weight'])
  return out


def _splits(parts: dict) -> list:
  return sorted({r['split'] for results in _inversion_parts(parts).values()
                 for r in results['rows'] if r['split'] is not None})


def section(parts: dict, configs) -> str:
  out = ['## Split-inference defenses side by side', '',
         'Per defense and strength: the target\'s test accuracy under it and the strongest '
         'attack (highest mean SSIM over the targets, any attacker view) with the 95% '
         't-interval of its mean. NoPeek\'s strength is its training weight (one target '
         'each); the others act on one deployed target. A defense is better the further right '
         '(accuracy) and the lower (SSIM) its points lie.', '']
  for split in _splits(parts):
    body = []
    for label, rows in curves(parts, configs, split).items():
      field = 'nopeek_weight' if label == 'nopeek' else 'strength'
      body += [[label, r[field], r['model_test_accuracy'], r['attack'],
                f'{r["ssim_mean"]:.3f} [{r["ssim_low"]:.3f}, {r["ssim_high"]:.3f}]']
               for r in rows]
    out += [f'**Split {split}**', '', study_report.table(
        ['defense', 'strength', 'test acc.', 'strongest attack', 'SSIM'], body), '',
            f'![every defense at split {split}](privacy_utility_split{split}.png)', '']
  return '\n'.join(out)


def figures(parts: dict, configs, workdir: str) -> list[str]:
  """privacy_utility_split<k>.png in workdir, one per split, every defense of every part
  (`plots.privacy_utility_panel`; NoPeek's points are labelled with its weight)."""
  paths = []
  inversion = _inversion_parts(parts).values()
  floor = [r['ssim_mean'] for results in inversion for r in results['rows']
           if r['attack'] == 'mean_aux_image' and r['reference'] == 'target']
  majority = [results['metrics'].get('test_majority_accuracy') for results in inversion]
  for split in _splits(parts):
    fig, ax = plots.plt.subplots(figsize=(6, 4.5))
    curves_at = {label: [{**r, 'strength': r['nopeek_weight']} for r in rows]
                 if label == 'nopeek' else rows
                 for label, rows in curves(parts, configs, split).items()}
    plots.privacy_utility_panel(
        ax, curves_at, x='model_test_accuracy', y='ssim', baseline=floor[0] if floor else None,
        baseline_label='mean image', majority=majority[0] if majority else None,
        xlabel='target test accuracy under the defense', ylabel='strongest attack SSIM',
        title=f'split {split}: every defense')
    paths.append(os.path.join(workdir, f'privacy_utility_split{split}.png'))
    plots.save_png(fig, paths[-1])
  return paths
