"""Files of the membership-inference experiment, written by process 0 (atomically).

records.csv: one row per candidate record: its index in the training split, label, whether
  the target trained on it ('member'), the fraction of shadows that did, the target's phi
  (mean over query views) and loss, every attack's score, and for record datasets the raw
  attributes, so a reader can ask which patients (and which subgroups) are most exposed.
roc.png: every attack's ROC curve on log-log axes (the low-FPR regime LiRA is judged in),
  the chance diagonal dashed, and one record of FPR marked.
defenses.png (when config.defense names defenses): privacy-utility curves, the strongest
  attack's AUC (with the interval that accounts for choosing it, `strongest_auc_low` /
  `_high`) and TPR at the first FPR against the target's test accuracy under each
  deployment, one curve per defense and mode from the undefended point.
"""
from __future__ import annotations

import os

import numpy as np

from medinv import data as data_lib
from medinv.metrics import roc
from medinv.core import plots
from medinv.core import report


def record_rows(ctx, outputs: dict) -> list[dict]:
  """records.csv's rows (see the module doc)."""
  labels = outputs['labels']
  target_phi = np.asarray(outputs['outputs']['phi'][0]).mean(axis=-1)
  target_loss = np.asarray(outputs['outputs']['loss'][0])
  shadow_in = np.asarray(ctx.target['membership'][1:]).mean(axis=0)
  raw = ctx.task.records_train
  rows = []
  for n in range(labels.size):
    row = {'record': n, 'label': int(ctx.task.y_train[n]), 'member': bool(labels[n]),
           'shadow_in_fraction': float(shadow_in[n]), 'target_phi': float(target_phi[n]),
           'target_loss': float(target_loss[n])}
    row.update({f'score_{name}': float(result['scores'][n])
                for name, result in outputs['attacks'].items()})
    if raw is not None:
      row.update({column.name: float(raw.features[n, c])
                  for c, column in enumerate(raw.columns)})
    rows.append(row)
  return rows


def write_records(ctx, outputs: dict) -> None:
  report.write_atomic(os.path.join(ctx.workdir, 'records.csv'),
                      report.rows_to_csv(record_rows(ctx, outputs)))


def plot_roc(ctx, outputs: dict) -> None:
  """roc.png: log-log ROC per attack with its AUC and TPR at the first configured FPR."""
  labels = outputs['labels']
  floor = 1.0 / max(1, int((~labels).sum()))
  fpr_wanted = float(ctx.config.evaluation.fprs[0])
  fig, ax = plots.plt.subplots(figsize=(5.2, 4.6))
  for name, result in outputs['attacks'].items():
    fpr, tpr = roc.roc_points(result['scores'], labels)
    summary = result['summary']
    ax.plot(np.maximum(fpr, floor / 2), np.maximum(tpr, floor / 2),
            label=f'{name} (AUC {float(summary["auc"]):.3f}, TPR@{fpr_wanted:g} '
                  f'{float(summary["tpr_at_fpr"][0]):.3f})')
  grid = np.logspace(np.log10(floor / 2), 0, 50)
  ax.plot(grid, grid, '--', color='grey', label='chance')
  ax.axvline(floor, color='lightgrey', lw=0.8)
  ax.set_xscale('log')
  ax.set_yscale('log')
  ax.set_xlabel('false positive rate (grey line: one non-member record)')
  ax.set_ylabel('true positive rate')
  ax.set_title(f'{data_lib.source_name(ctx.config.data)}: membership inference, '
               f'{ctx.config.membership.num_shadows} shadows', fontsize=10)
  ax.legend(fontsize=7, loc='upper left')
  fig.tight_layout()
  plots.save_png(fig, os.path.join(ctx.workdir, 'roc.png'), dpi=120, tight=False)


def strongest(result_rows: list[dict]) -> dict[tuple, dict]:
  """{(defense, mode, strength): the row of the attack with the highest AUC} on all records
  (its `strongest_auc_low` / `_high` account for the choice; its `auc_low` / `_high` do
  not)."""
  best = {}
  for row in result_rows:
    key = (row['defense'], row['mode'], row['strength'])
    if row['subgroup'] == 'all' and (key not in best or row['auc'] > best[key]['auc']):
      best[key] = row
  return best


def defense_curves(result_rows: list[dict]) -> dict[tuple[str, str], list[dict]]:
  """{(defense, mode): the strongest attack's rows, undefended first, then by strength}."""
  best = strongest(result_rows)
  curves = {key[:2]: [best[('none', '', 0.0)]] for key in best if key[0] != 'none'}
  for key, row in sorted(best.items(), key=lambda item: item[0][2]):
    if key[0] != 'none':
      curves[key[:2]].append(row)
  return curves


def plot_defenses(ctx, result_rows: list[dict]) -> None:
  """defenses.png (see the module doc); nothing when no defense ran."""
  curves = defense_curves(result_rows)
  if not curves:
    return
  fpr = float(ctx.config.evaluation.fprs[0])
  fig, axes = plots.plt.subplots(1, 2, figsize=(10, 4.2))
  for (defense, mode), points in curves.items():
    x = [r['defended_test_accuracy'] for r in points]
    auc = np.asarray([r['strongest_auc'] for r in points])
    band = np.asarray([[r['strongest_auc'] - r['strongest_auc_low'] for r in points],
                       [r['strongest_auc_high'] - r['strongest_auc'] for r in points]])
    label = f'{defense} ({mode})' if mode else defense
    axes[0].errorbar(x, auc, yerr=band, fmt='o-', capsize=3, label=label)
    axes[1].plot(x, [r[f'tpr_at_{fpr:g}'] for r in points], 'o-', label=label)
    for r, xi, yi in zip(points[1:], x[1:], auc[1:]):
      axes[0].annotate(f'{r["strength"]:g}', (xi, yi), fontsize=7, xytext=(3, 3),
                       textcoords='offset points')
  axes[0].axhline(0.5, color='grey', lw=0.8, ls='--')
  axes[1].axhline(fpr, color='grey', lw=0.8, ls='--')
  axes[0].set(xlabel='target test accuracy under the defense', ylabel='AUC (strongest attack)')
  axes[1].set(xlabel='target test accuracy under the defense',
              ylabel=f'TPR at FPR {fpr:g} (strongest by AUC)')
  axes[0].legend(fontsize=7)
  fig.suptitle(f'{data_lib.source_name(ctx.config.data)}: membership inference against defenses '
               '(labels: strength)', fontsize=10)
  fig.tight_layout()
  plots.save_png(fig, os.path.join(ctx.workdir, 'defenses.png'), dpi=110, tight=False)
