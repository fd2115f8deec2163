"""The DP-SGD summary of a study whose parts train at several target epsilons (configs/dp.py).

One row per (dataset, target epsilon): the accounted epsilon of each part's target, its test
accuracy, and what each attack achieves against it: attribute inference's best advantage over
its no-model baselines, model inversion's strongest attack (SSIM, beside the attacker's mean
image), membership inference's strongest attack (AUC and TPR at the lowest FPR, with their
bootstrap intervals; the AUC's accounts for choosing the attack), and the DP audit's lower
bounds on epsilon from canaries (multi-run over independent runs, one-run over one run's
canaries; medinv.membership.audit) with the most each could show at its size. The figure puts
the target epsilon on the x axis.

Over target seeds (configs/dp.py `seeds=N`: parts named <part>_<tag>_seed<s>): one row per
(dataset, target epsilon, seed) first (`seed_rows`), then every column as its mean and
Student-t 95% interval over the seeds (medinv.study.seeds.across_seeds; `summary_rows`),
which the table, the figure and dp_seeds.csv / dp_seeds.json give.
"""
from __future__ import annotations

import json
import math
import os
import re

from medinv import data as data_lib
from medinv.core import plots
from medinv.core import report
from medinv.study import report as study_report
from medinv.study import seeds as seeds_lib


def target_epsilon(part_config) -> float:
  return float(part_config.train.dp.target_epsilon)


def is_dp_study(configs) -> bool:
  """True when the parts train at more than one target epsilon, or at a finite one."""
  epsilons = {target_epsilon(c) for c in configs.values()}
  return len(epsilons) > 1 or any(math.isfinite(e) for e in epsilons)


def _attribute(results: dict) -> dict:
  rows = [r for r in results['rows'] if r['targets'] == 'members' and r['flip_prob'] == 0.0]
  best = max(rows, key=lambda r: r['attack_accuracy'] - r['best_baseline_accuracy'])
  return {'accuracy': results['metrics']['model_test_accuracy'],
          'majority': results['metrics'].get('test_majority_accuracy'),
          'dp_epsilon': float(results['metrics']['dp_epsilon']),  # results.json: 'inf'
          'delta': results['metrics'].get('delta'),
          'attribute_advantage': best['attack_accuracy'] - best['best_baseline_accuracy'],
          'attribute_attack': f'{best["attack"]} {best["variant"]} on {best["attribute"]}'}


def _inversion(results: dict) -> dict:
  rows = [r for r in results['rows'] if r['reference'] == 'target']
  attacked = [r for r in rows if r['attack'] != 'mean_aux_image' and not r['strength']]
  best = max(attacked, key=lambda r: r['ssim_mean'])
  baseline = next(r for r in rows if r['attack'] == 'mean_aux_image')
  return {'accuracy': results['metrics']['target_test_accuracy'],
          'majority': results['metrics'].get('test_majority_accuracy'),
          'dp_epsilon': float(results['metrics']['dp_epsilon']),
          'delta': results['metrics'].get('delta'),
          'inversion_split': best['split'], 'inversion_ssim': best['ssim_mean'],
          'inversion_attack': best['attack'], 'inversion_baseline_ssim': baseline['ssim_mean']}


def _membership(results: dict) -> dict:
  rows = [r for r in results['rows'] if r['subgroup'] == 'all' and r['defense'] == 'none']
  best = max(rows, key=lambda r: r['auc'])
  fprs = [k for k in best if k.startswith('tpr_at_') and not k.endswith(('_low', '_high'))]
  fpr = min(fprs, key=lambda k: abs(float(k[len('tpr_at_'):]) - 0.01))  # 1% where reported
  return {'membership_accuracy': results['metrics']['target_test_accuracy'],
          'membership_majority': results['metrics'].get('test_majority_accuracy'),
          'membership_dp_epsilon': float(results['metrics']['dp_epsilon']),
          'membership_delta': results['metrics'].get('delta'),
          'membership_attack': best['attack'],
          'membership_auc': study_report.interval(best, 'strongest_auc'),
          'membership_strongest_auc': best['strongest_auc'],
          'membership_strongest_auc_low': best['strongest_auc_low'],
          'membership_strongest_auc_high': best['strongest_auc_high'],
          'membership_tpr': study_report.interval(best, fpr),
          'membership_tpr_at_fpr': best[fpr],
          'membership_fpr': fpr[len('tpr_at_'):]}


def _audit(results: dict) -> dict:
  rows = {r['audit']: r for r in results['rows']}
  summary = {'audit_dp_epsilon': float(results['metrics']['dp_epsilon']),
             'audit_delta': results['metrics'].get('delta'),
             'audit_models': results['metrics']['num_models'],
             'audit_canaries': results['metrics']['num_canaries']}
  for name, row in rows.items():
    summary[f'audit_{name}'] = row['epsilon_lower_bound']
    summary[f'audit_{name}_ceiling'] = row['ceiling']
  return summary


SUMMARIES = {'attribute': _attribute, 'inversion': _inversion, 'membership': _membership,
             'audit': _audit}


def _delta(parts: dict, configs) -> str:
  """The deltas the parts' epsilons are accounted at, as the table's note states them."""
  deltas = sorted({float(r[k]) for r in seed_rows(parts, configs)
                   for k in ('delta', 'membership_delta', 'audit_delta') if r.get(k) is not None})
  return ', '.join(f'{d:.2g}' for d in deltas) or 'none (no finite epsilon)'


def _bound(r: dict, name: str):
  if f'audit_{name}' not in r:
    return None
  return f'{r[f"audit_{name}"]:.2f} (≤ {r[f"audit_{name}_ceiling"]:.2f})'


def seed_of(name: str) -> int:
  """The target seed of a part named <part>_<tag>_seed<s> (configs/dp.py `seeds`), else 0."""
  match = re.fullmatch(r'.*_seed(\d+)', name)
  return int(match.group(1)) if match else 0


def seed_rows(parts: dict, configs) -> list[dict]:
  """One dict per (dataset, target epsilon, target seed), merging what each part measured."""
  merged = {}
  for name, results in parts.items():
    kind = name.split('_')[0]
    key = (data_lib.source_name(configs[name].data), target_epsilon(configs[name]),
           seed_of(name))
    merged.setdefault(key, {'dataset': key[0], 'target_epsilon': key[1], 'seed': key[2]})
    merged[key].update(SUMMARIES[kind](results))
  return sorted(merged.values(), key=lambda r: (r['dataset'], -r['target_epsilon'], r['seed']))


# Columns that are formatted text of one run (a value and its interval): left out over seeds,
# where their numbers come from the numeric columns.
ONE_RUN_TEXT = ('membership_auc', 'membership_tpr')


def summary_rows(parts: dict, configs) -> list[dict]:
  """One dict per (dataset, target epsilon): the merged parts of its one target seed, or over
  several seeds every numeric column's mean with `<column>_seed_low` / `_seed_high` (the
  95% t-interval over the seeds), `num_seeds` and `seeds`."""
  rows = seed_rows(parts, configs)
  groups = {}
  for row in rows:
    groups.setdefault((row['dataset'], row['target_epsilon']), []).append(row)
  if all(len(group) == 1 for group in groups.values()):
    return [{k: v for k, v in row.items() if k != 'seed'} for row in rows]
  summary = []
  for (dataset, epsilon), group in groups.items():
    runs = [({'seed': r['seed']}, [{k: v for k, v in r.items() if k not in ONE_RUN_TEXT}])
            for r in group]
    (cell,) = seeds_lib.across_seeds(runs) if len(group) > 1 else [
        {'num_seeds': 1, 'seeds': str(group[0]['seed']), **runs[0][1][0]}]
    cell.pop('seed', None)
    summary.append({'dataset': dataset, 'target_epsilon': epsilon, **cell})
  return summary


def write_seed_files(parts: dict, configs, workdir: str) -> None:
  """dp_seeds.json and dp_seeds.csv: `summary_rows` when the parts ran at several target
  seeds (nothing otherwise)."""
  rows = summary_rows(parts, configs)
  if not any(r.get('num_seeds', 1) > 1 for r in rows):
    return
  report.write_atomic_files({
      os.path.join(workdir, 'dp_seeds.json'): json.dumps(
          [{k: report.jsonable(v) for k, v in row.items()} for row in rows], indent=2) + '\n',
      os.path.join(workdir, 'dp_seeds.csv'): report.rows_to_csv(rows)})


def _single_seed_table(rows: list[dict]) -> tuple[list[str], list[list]]:
  """Header and body: one target per row, attacks with their intervals over records."""
  fpr = next((r['membership_fpr'] for r in rows if 'membership_fpr' in r), '')
  header = ['dataset', 'target ε', 'accounted ε (attack / membership target)', 'test acc.',
            'attribute advantage', 'inversion SSIM (strongest / mean image)', 'membership AUC',
            f'TPR @ FPR {fpr}', 'audit ε ≥ multi-run (most it could show)',
            'one-run', 'one-run f-DP']
  body = []
  for r in rows:
    accounted = ' / '.join(study_report.fmt(r[k], 2)
                           for k in ('dp_epsilon', 'membership_dp_epsilon') if k in r)
    accuracy = ' / '.join(study_report.fmt(r[k]) for k in ('accuracy', 'membership_accuracy')
                          if k in r)
    inversion = (f'{r["inversion_ssim"]:.3f} ({r["inversion_attack"]}, split '
                 f'{r["inversion_split"]}) / {r["inversion_baseline_ssim"]:.3f}'
                 if 'inversion_ssim' in r else None)
    body.append([r['dataset'], f"{r['target_epsilon']:g}", accounted, accuracy,
                 r.get('attribute_advantage'), inversion, r.get('membership_auc'),
                 r.get('membership_tpr')] + [_bound(r, name) for name in
                                             ('multi_run', 'one_run', 'one_run_fdp')])
  return header, body


def _over_seeds(r: dict, column: str, digits: int = 3) -> str | None:
  """'mean [low, high]' over the seeds; the value alone where every seed gave it."""
  if r.get(column) is None:
    return None
  if f'{column}_seed_low' not in r:
    return study_report.fmt(r[column], digits)
  return (f'{r[column]:.{digits}f} [{r[column + "_seed_low"]:.{digits}f}, '
          f'{r[column + "_seed_high"]:.{digits}f}]')


def _seed_table(rows: list[dict]) -> tuple[list[str], list[list]]:
  """Header and body: every measured column as its mean [95% t-interval] over the seeds."""
  fpr = next((r['membership_fpr'] for r in rows if 'membership_fpr' in r), '')
  header = ['dataset', 'target ε', 'seeds', 'accounted ε (attack / membership / audit)',
            'δ (attack / membership / audit)', 'test acc.', 'membership target test acc.',
            'attribute advantage', 'inversion SSIM (strongest)', 'membership AUC (strongest)',
            f'TPR @ FPR {fpr}', 'audit ε ≥ multi-run', 'one-run', 'one-run f-DP']
  body = []
  for r in rows:
    accounted = ' / '.join(study_report.fmt(r[k], 2) for k in (
        'dp_epsilon', 'membership_dp_epsilon', 'audit_dp_epsilon') if k in r)
    deltas = ' / '.join(f'{r[k]:.2g}' for k in ('delta', 'membership_delta', 'audit_delta')
                        if r.get(k) is not None) or 'none'
    bounds = [None if f'audit_{name}' not in r else
              f'{_over_seeds(r, f"audit_{name}", 2)} '
              f'(≤ {_over_seeds(r, f"audit_{name}_ceiling", 2)})'
              for name in ('multi_run', 'one_run', 'one_run_fdp')]
    body.append([r['dataset'], f"{r['target_epsilon']:g}", r['num_seeds'], accounted, deltas,
                 _over_seeds(r, 'accuracy'), _over_seeds(r, 'membership_accuracy'),
                 _over_seeds(r, 'attribute_advantage'), _over_seeds(r, 'inversion_ssim'),
                 _over_seeds(r, 'membership_strongest_auc'),
                 _over_seeds(r, 'membership_tpr_at_fpr')] + bounds)
  return header, body


def section(parts: dict, configs) -> str:
  """report.md's DP-SGD section: the table (over target seeds where the parts ran at several)
  and the figure."""
  rows = summary_rows(parts, configs)
  over_seeds = any('num_seeds' in r for r in rows)
  header, body = (_seed_table if over_seeds else _single_seed_table)(rows)
  seeds_note = (
      ' Every cell is the mean over the target seeds with its Student-t 95% interval over '
      'them in brackets (the seeds as independent draws; a single value: every seed gave it); '
      'each seed trains its own targets, shadows and audit runs. Rows per seed: the parts\' '
      'results.json; these rows: dp_seeds.csv.' if over_seeds else '')
  return '\n'.join([
      '## DP-SGD training against every attack', '',
      'Each target (and, for membership inference, each of the attacker\'s shadows) trained '
      'with DP-SGD (per-example clipping, Gaussian noise, Poisson-sampled batches); ε is '
      f'accounted with an RDP accountant at δ = 1/(100 N) (here {_delta(parts, configs)}). *Test acc.*: '
      'the attacked target\'s and the membership target\'s. *Attribute advantage*: the best '
      'attack\'s accuracy over the better no-model baseline, on training records. *Audit ε ≥*: '
      '95% lower bounds on ε from canaries in or out of the heart_disease MLP\'s DP-SGD runs '
      '(configs/dp_audit.py): multi-run over independent runs, one-run over one run\'s '
      'canaries (and its f-DP form); in brackets the most each audit could show at its size. '
      'A correct DP-SGD keeps every bound below its accounted ε (with 95% confidence); a '
      'bound of 0 with a small ceiling means the audit was too small to show anything.'
      + seeds_note, '',
      study_report.table(header, body), '',
      '![privacy-utility against epsilon](privacy_utility_dp.png)', ''])


# (panel, y stat, x stat, majority stat, baseline (a value or the stat holding it), its label)
FIGURE_PANELS = (
    ('attribute inference', 'attribute_advantage', 'accuracy', 'majority', 0.0,
     'no-model baseline'),
    ('model inversion', 'inversion_ssim', 'accuracy', 'majority', 'inversion_baseline_ssim',
     'mean image'),
    ('membership inference', 'membership_strongest_auc', 'membership_accuracy',
     'membership_majority', 0.5,
     'chance (AUC 0.5)'))
Y_LABELS = {'attribute_advantage': 'strongest attack: accuracy - baseline',
            'inversion_ssim': 'strongest attack SSIM',
            'membership_strongest_auc': 'strongest attack AUC (choice-aware interval)'}


def figure(parts: dict, configs, path: str) -> None:
  """privacy_utility_dp.png: one panel per (attack family, dataset) in the shared format
  (`plots.privacy_utility_panel`): x the target's test accuracy, y the strongest attack, each
  point one target epsilon (written beside it)."""
  rows = summary_rows(parts, configs)
  panels = []
  for title, y, x, majority, baseline, baseline_label in FIGURE_PANELS:
    for dataset in dict.fromkeys(r['dataset'] for r in rows):
      mine = [{**r, 'strength': r['target_epsilon']} for r in rows
              if r['dataset'] == dataset and y in r]
      if mine:
        panels.append((f'{title}: {dataset}', y, x, majority, baseline, baseline_label, mine))
  fig, axes = plots.panel_grid(len(panels))
  for ax, (title, y, x, majority, baseline, baseline_label, mine) in zip(axes, panels):
    plots.privacy_utility_panel(
        ax, {'DP-SGD': mine}, x=x, y=y,
        baseline=mine[0][baseline] if isinstance(baseline, str) else baseline,
        baseline_label=baseline_label, majority=mine[0].get(majority),
        xlabel='target test accuracy', ylabel=Y_LABELS[y], title=f'{title} (points: target ε)')
  fig.tight_layout()
  plots.save_png(fig, path)
