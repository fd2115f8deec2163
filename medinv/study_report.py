"""report.md and privacy_utility.png for a study run (see medinv.study)."""
from __future__ import annotations

import io
import math
import os

from medinv import report

HOW_TO_READ = """\
**How to read this.** Every attack sits next to its baseline: attribute-inference accuracy
next to the prior-only guess (always the most common value) and a classifier that never sees
the model, reconstruction quality next to the attacker's mean image. An attack leaks only as
far as it beats its baseline (the *advantage* column). Every defense level sits next to the
model's accuracy under that defense, so each row is one point on a privacy-utility curve:
a good defense pushes the attack down to its baseline while the accuracy stays up.
SSIM is 1 for a perfect reconstruction; PSNR is in dB (higher is closer); MSE is per pixel on
[0, 1] images.

**Threat models.**
*Attribute inference:* the attacker knows a patient's record except one sensitive attribute,
the label the deployed model released for that record, and the attribute's population prior.
It queries the model with every candidate value and picks the most probable one (MAP), or
trains a classifier on its own records; randomized response flips the released label with
probability p.
*Model inversion:* in collaborative inference hospital A runs the first conv layers and sends
the features to hospital B; the attacker sees those features and reconstructs the patient's
image (an inverse network trained on its own queries, white-box rMLE, a query-free shadow
model, or MI-FACE class representatives). Hospital A's weights carry Gaussian noise of std
sigma, drawn once (fixed) or fresh for every query (per_query).
"""


def fmt(value, digits: int = 3) -> str:
  if value is None or value == '':
    return 'n/a'
  if isinstance(value, str):
    return value
  if isinstance(value, bool):
    return 'yes' if value else 'no'
  if isinstance(value, float) and math.isinf(value):
    return 'inf'
  if isinstance(value, int):
    return str(value)
  return f'{value:.{digits}f}'


def table(header: list[str], rows: list[list]) -> str:
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  lines += ['| ' + ' | '.join(fmt(v) for v in row) + ' |' for row in rows]
  return '\n'.join(lines)


def aia_section(name: str, results: dict) -> str:
  rows = [r for r in results['rows'] if r['targets'] == 'members']
  m = results['metrics']
  out = [f'## Attribute inference: {rows[0]["dataset"]} (`{name}`)', '',
         f'Target MLP test accuracy {fmt(m["model_test_accuracy"])} (majority class '
         f'{fmt(m["test_majority_accuracy"])}); {m["num_members"]} training records attacked; '
         f'the attacker trains its classifiers on {m["num_aux"]} held-out records. Accuracies '
         'are means over release draws. *Released acc.* is the test accuracy of the released '
         '(perturbed) labels: the model utility under the defense.', '']
  variants = sorted({r['variant'] for r in rows if r['attack'] == 'map'})
  for attribute in dict.fromkeys(r['attribute'] for r in rows):
    mine = [r for r in rows if r['attribute'] == attribute]
    header = (['p', 'ε', 'released acc.'] + [f'MAP ({v})' for v in variants] +
              ['learned', 'prior guess', 'no-model clf', 'best advantage'])
    body = []
    for p in dict.fromkeys(r['flip_prob'] for r in mine):
      at_p = {(r['attack'], r['variant']): r for r in mine if r['flip_prob'] == p}
      first = next(iter(at_p.values()))
      attacks = [at_p[('map', v)]['attack_accuracy'] for v in variants]
      learned = [r['attack_accuracy'] for k, r in at_p.items() if k[0] == 'learned']
      best = max(attacks + learned) - first['best_baseline_accuracy']
      body.append([p, float(first['epsilon']), first['release_test_accuracy'], *attacks,
                   learned[0], first['prior_accuracy'],
                   first['baseline_classifier_accuracy'], best])
    out += [f'**{attribute}** ({mine[0]["num_candidates"]} values)', '', table(header, body), '']
  out += [f'![attribute inference vs flip probability]({name}/aia.png)', '']
  return '\n'.join(out)


def _inverse_table(attacked: list[dict], defense: str, symbol: str) -> list[str]:
  inverse = [r for r in attacked if r['attack'] == 'inverse_network' and r['knows_defense']]
  if not inverse:
    return []
  strengths = sorted({r['strength'] for r in inverse})
  modes = list(dict.fromkeys(r['mode'] for r in inverse))
  header = ['split', symbol] + [f'{col} ({mode})' if mode else col for mode in modes
                                for col in ('model acc.', 'MSE', 'PSNR', 'SSIM')]
  body = []
  for split in sorted({r['split'] for r in inverse}):
    for strength in strengths:
      cells = [split, strength]
      for mode in modes:
        r = next(r for r in inverse
                 if (r['split'], r['strength'], r['mode']) == (split, strength, mode))
        cells += [r['model_test_accuracy'], r['mse_mean'], r['psnr_mean'], r['ssim_mean']]
      body.append(cells)
  title = ('**Inverse network (the paper\'s black-box attack; the attacker queries the '
           'deployed model)**')
  if defense != 'model_perturbation':
    title = f'**Inverse network under {defense} (the attacker queries the deployed model)**'
  return [title, '', table(header, body), '']


def _every_attack_table(attacked: list[dict], defense: str, symbol: str) -> list[str]:
  strengths = sorted({r['strength'] for r in attacked})
  header = ['attack', 'split', 'mode', 'attacker queries'] + [
      f'SSIM {symbol}={s:g}' for s in strengths]
  body = []
  for key in dict.fromkeys((r['attack'], r['split'], r['mode'], r['knows_defense'])
                           for r in attacked):
    by_strength = {r['strength']: r['ssim_mean'] for r in attacked
                   if (r['attack'], r['split'], r['mode'], r['knows_defense']) == key}
    view = 'deployed model' if key[3] else 'clean model'
    body.append([key[0], key[1], key[2], view] + [by_strength.get(s) for s in strengths])
  under = '' if defense == 'model_perturbation' else f' under {defense}'
  return [f'**Every attack{under} (SSIM; MI-FACE is compared with each class\'s mean training '
          'image)**', '', table(header, body), '']


def mia_section(name: str, results: dict) -> str:
  rows = results['rows']
  m = results['metrics']
  out = [f'## Model inversion: {name.split("_", 1)[1]} (`{name}`)', '',
         f'Target SplitCNN test accuracy {fmt(m["target_test_accuracy"])}; {m["n_targets"]} '
         f'training images reconstructed from hospital A\'s features; the attacker holds '
         f'{m["n_aux"]} other images ({m["image_size"]}x{m["image_size"]}). *Model acc.* is the '
         'test accuracy of the perturbed model.', '']
  baseline = [r for r in rows if r['attack'] == 'mean_aux_image' and r['reference'] == 'target']
  if baseline:
    b = baseline[0]
    out += ['Baseline (the attacker\'s mean image as every reconstruction): '
            f'MSE {fmt(b["mse_mean"], 4)}, PSNR {fmt(b["psnr_mean"], 2)}, '
            f'SSIM {fmt(b["ssim_mean"])}.', '']
  for defense in dict.fromkeys(r['defense'] for r in rows if r['defense']):
    attacked = [r for r in rows if r['defense'] == defense]
    symbol = 'σ' if defense == 'model_perturbation' else 'strength'
    out += _inverse_table(attacked, defense, symbol) + _every_attack_table(attacked, defense,
                                                                           symbol)
  figures = sorted(f for f in os.listdir(results['_dir']) if f.endswith('.png'))
  out += [f'![{f[:-4]}]({name}/{f})' for f in figures] + ['']
  return '\n'.join(out)


def privacy_utility_figure(parts: dict, path: str) -> bool:
  """Attack success against model utility for both defenses; False when there is nothing."""
  import matplotlib
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt
  aia_parts = {n: r for n, r in parts.items() if n.startswith('aia')}
  mia_parts = {n: r for n, r in parts.items() if n.startswith('mia')}
  if not aia_parts and not mia_parts:
    return False
  panels = int(bool(aia_parts)) + int(bool(mia_parts))
  fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.2), squeeze=False)
  aia_ax, mia_ax = axes[0][0], axes[0][-1]
  for name, results in aia_parts.items():
    rows = [r for r in results['rows'] if r['targets'] == 'members' and r['attack'] == 'map'
            and r['variant'] == 'confusion']
    for attribute in dict.fromkeys(r['attribute'] for r in rows):
      mine = [r for r in rows if r['attribute'] == attribute]
      aia_ax.plot([r['release_test_accuracy'] for r in mine], [r['advantage'] for r in mine],
                  'o-', label=f'{name}: {attribute}')
  if aia_parts:
    aia_ax.axhline(0.0, color='grey', lw=0.8)
    aia_ax.set(xlabel='released-label test accuracy (utility)',
               ylabel='MAP advantage over best baseline', title='label perturbation')
    aia_ax.legend(fontsize=7)
  for name, results in mia_parts.items():
    rows = [r for r in results['rows'] if r['attack'] == 'inverse_network'
            and r['knows_defense'] and r['defense'] == 'model_perturbation'
            and r['mode'] == 'per_query']
    for split in sorted({r['split'] for r in rows}):
      mine = sorted((r for r in rows if r['split'] == split), key=lambda r: r['strength'])
      mia_ax.plot([r['model_test_accuracy'] for r in mine], [r['ssim_mean'] for r in mine],
                  'o-', label=f'{name}: split {split}')
  if mia_parts:
    mia_ax.set(xlabel='model test accuracy under perturbation (utility)',
               ylabel='inverse-network SSIM', title='model perturbation (per query)')
    mia_ax.legend(fontsize=7)
  fig.tight_layout()
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png', dpi=110)
  plt.close(fig)
  report.write_atomic(path, buffer.getvalue())
  return True


def write(workdir: str, parts: dict, skipped: dict, title: str) -> str:
  """Writes workdir/report.md (and privacy_utility.png); returns the report path."""
  for name, results in parts.items():
    results['_dir'] = os.path.join(workdir, name)
  out = [f'# {title}', '', HOW_TO_READ]
  if skipped:
    out += ['**Skipped parts** (their files were not found):', '']
    out += [f'- `{name}`: {reason}' for name, reason in skipped.items()] + ['']
  if privacy_utility_figure(parts, os.path.join(workdir, 'privacy_utility.png')):
    out += ['![privacy-utility curves](privacy_utility.png)', '']
  for name, results in parts.items():
    out.append(aia_section(name, results) if name.startswith('aia') else
               mia_section(name, results))
  out += ['Machine-readable: `results.json` (all rows, with a `part` column) and '
          '`results.csv`; each part\'s own files are in its folder.', '']
  path = os.path.join(workdir, 'report.md')
  report.write_atomic(path, '\n'.join(out))
  return path
