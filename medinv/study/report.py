"""report.md and privacy_utility.png for a study run (see medinv.study.study)."""
from __future__ import annotations

import math
import os

from medinv.membership import figures as membership_figures
from medinv.inversion import figures as inversion_figures
from medinv.core import report
from medinv.study import curves as study_curves
from medinv.study import sources
from medinv.study import verdict

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
*Membership inference:* the attacker holds a pool of patients' records, half of which trained
the model, and K shadow models of the same architecture, each trained on its own half of the
pool; it tells members from non-members by the model's confidence on the record (LiRA:
per-record Gaussians of the shadows' confidence with and without it; RMIA: the ratio of the
model's probability of the true label to the shadows' mean, ranked against the other
records), by its loss, or, when
the deployment releases labels only, by whether the label is right. AUC 0.5 is chance; the
TPR at a low FPR says how many patients it exposes with few false accusations. Intervals are
95% percentile-bootstrap intervals over records (members and non-members resampled apart);
the strongest attack's AUC carries a wider interval that accounts for choosing it.
"""


# Published test accuracy on a dataset's official split (heart_disease has none: the UCI
# archive's heart-disease.names quotes these on the Cleveland records), beside the target's.
PUBLISHED = {'breastmnist': '; published: ResNet-18 at 28x28 0.863, MedMNIST v2',
             'heart_disease': '; published: CLASSIT 0.789, instance-based NTgrowth 0.770, '
                              'UCI heart-disease.names'}


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


def trained_with(metrics: dict) -> str:
  """' (DP-SGD, ε = 8.00)' or ' (no DP-SGD, ε = inf)': the target's accounted epsilon."""
  epsilon = float(metrics.get('dp_epsilon', math.inf))
  return (' (no DP-SGD, ε = inf)' if math.isinf(epsilon) else
          f' (DP-SGD, accounted ε = {epsilon:.2f})')


def attribute_section(name: str, results: dict) -> str:
  rows = [r for r in results['rows'] if r['targets'] == 'members']
  m = results['metrics']
  out = [*sources.heading('Attribute inference', name, results, rows[0]['dataset']),
         f'Target MLP test accuracy {fmt(m["model_test_accuracy"])}{trained_with(m)} (majority '
         f'class {fmt(m["test_majority_accuracy"])}{PUBLISHED.get(rows[0]["dataset"], "")}); '
         f'{m["num_members"]} training records attacked; '
         f'the attacker trains its classifiers on {m["num_aux"]} records that are not targets, '
         'the same records the *imputation* baseline (a classifier from the other attributes, '
         'no model) learns from. Accuracies are means over release draws. *Released acc.* is '
         'the test accuracy of the released (perturbed) labels: the model utility under the '
         'defense. MCC (Matthews correlation) is 0 for a constant guess, so it shows leakage '
         'that accuracy hides on imbalanced attributes. *Label ε per release*: the '
         'randomized response\'s ε for one released label (answers to repeated queries '
         'compose). *Member gap*: the best attack\'s accuracy on training records minus on '
         'records the model never saw (95% Newcombe interval): the part of its success that '
         'is privacy leakage, not what the population\'s statistics already reveal.', '']
  variants = sorted({r['variant'] for r in rows if r['attack'] == 'map'})
  for attribute in dict.fromkeys(r['attribute'] for r in rows):
    mine = [r for r in rows if r['attribute'] == attribute]
    header = (['p', 'label ε per release', 'released acc.'] + [f'MAP ({v})' for v in variants]
              + ['learned', 'prior guess', 'imputation', 'best advantage', 'best MCC',
                 'imputation MCC', 'member gap (best attack)'])
    body = []
    for p in dict.fromkeys(r['flip_prob'] for r in mine):
      at_p = {(r['attack'], r['variant']): r for r in mine if r['flip_prob'] == p}
      first = next(iter(at_p.values()))
      attacks = [at_p[('map', v)]['attack_accuracy'] for v in variants]
      learned = [r['attack_accuracy'] for k, r in at_p.items() if k[0] == 'learned']
      best = max(attacks + learned) - first['best_baseline_accuracy']
      best_mcc = max(r.get('mcc', math.nan) for r in at_p.values())
      strongest = max(at_p.values(), key=lambda r: r['attack_accuracy'])
      gap = interval(strongest, 'member_gap') if 'member_gap' in strongest else None
      body.append([p, float(first['epsilon']), first['release_test_accuracy'], *attacks,
                   learned[0], first['prior_accuracy'],
                   first['baseline_classifier_accuracy'], best, best_mcc,
                   first.get('imputation_mcc', math.nan), gap])
    out += [f'**{attribute}** ({mine[0]["num_candidates"]} values)', '', table(header, body), '']
  out += [f'![attribute inference vs flip probability]({name}/attribute.png)', '']
  return '\n'.join(out)


def _inverse_table(attacked: list[dict], defense: str, symbol: str) -> list[str]:
  """The headline table: the inverse network in every attacker view that was run, the
  paper's setting (the decoder trained before the defense) marked."""
  inverse = [r for r in attacked if r['attack'] == 'inverse_network']
  if not inverse:
    return []
  strengths = sorted({r['strength'] for r in inverse})
  modes = list(dict.fromkeys(r['mode'] for r in inverse))
  views = sorted({r['knows_defense'] for r in inverse}, key=lambda view: bool(view))
  header = ['split', 'attacker', symbol] + [f'{col} ({mode})' if mode else col for mode in modes
                                            for col in ('model acc.', 'MSE', 'PSNR', 'SSIM')]
  body = []
  for split in sorted({r['split'] for r in inverse}):
    for view in views:
      for strength in strengths:
        cells = [split, inversion_figures.VIEWS[view], strength]
        for mode in modes:
          r = next(r for r in inverse if (r['split'], r['knows_defense'], r['strength'],
                                          r['mode']) == (split, view, strength, mode))
          cells += [r['model_test_accuracy'], _mean_interval(r, 'mse', 4),
                    _mean_interval(r, 'psnr', 2), _mean_interval(r, 'ssim')]
        body.append(cells)
  under = '' if defense == 'model_perturbation' else f' under {defense}'
  title = (f'**Inverse network{under} (He et al.\'s black-box attack). Attacker "trained before '
           'the defense" is the paper\'s setting: its decoder learned from the undefended model; '
           '"queries the deployed model" trains on the defended one**')
  return [title, '', table(header, body), '']


def _every_attack_table(attacked: list[dict], defense: str, symbol: str) -> list[str]:
  strengths = sorted({r['strength'] for r in attacked})
  header = ['attack', 'split', 'mode', 'attacker'] + [
      f'SSIM {symbol}={s:g}' for s in strengths]
  body = []
  for key in dict.fromkeys((r['attack'], r['split'], r['mode'], r['knows_defense'])
                           for r in attacked):
    by_strength = {r['strength']: _mean_interval(r, 'ssim') for r in attacked
                   if (r['attack'], r['split'], r['mode'], r['knows_defense']) == key}
    body.append([key[0], key[1], key[2], inversion_figures.VIEWS[key[3]]]
                + [by_strength.get(s) for s in strengths])
  under = '' if defense == 'model_perturbation' else f' under {defense}'
  return [f'**Every attack{under} (SSIM; MI-FACE is compared with each class\'s mean training '
          'image)**', '', table(header, body), '']


def _mi_face_table(attacked: list[dict], defense: str, symbol: str) -> list[str]:
  """MI-FACE judged by the evaluation classifier, beside SSIM, with its stopping columns."""
  face = [r for r in attacked if r['attack'] == 'mi_face' and 'eval_accuracy' in r]
  if not face:
    return []
  header = ['split', 'mode', 'attacker', symbol, 'eval. accuracy', 'eval. confidence',
            'SSIM', 'steps', 'final cost', 'stopped by']
  body = [[r['split'], r['mode'], inversion_figures.VIEWS[r['knows_defense']],
           r['strength'], r['eval_accuracy'], r['eval_confidence'], _mean_interval(r, 'ssim'),
           r.get('steps'), r.get('final_cost'), r.get('stopped_by')] for r in face]
  under = '' if defense == 'model_perturbation' else f' under {defense}'
  return [f'**MI-FACE{under}: each class representative labelled by a separately trained '
          'evaluation classifier (accuracy: fraction labelled as their class; confidence: '
          'mean probability of it); steps and final cost are means over classes**', '',
          table(header, body), '']


def _mean_interval(row: dict, metric: str, digits: int = 3) -> str:
  """'mean [low, high]' of a quality metric (the interval over draws and targets), or the
  mean alone where the row has no finite interval (e.g. PSNR of exact reconstructions)."""
  low, high = row.get(f'{metric}_low'), row.get(f'{metric}_high')
  mean = fmt(row[f'{metric}_mean'], digits)
  if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
    return mean
  return f'{mean} [{low:.{digits}f}, {high:.{digits}f}]'


def _draws_note(rows: list[dict]) -> list[str]:
  """What a 'mean [low, high]' cell is, with the number of draws of each defense."""
  counts = {r['defense']: r.get('num_draws', 1) for r in rows if r['defense']}
  if not counts:
    return []
  per_defense = ', '.join(f'{defense} {count}' for defense, count in counts.items())
  return ['Quality cells are *mean [95% interval]* over the independent draws of the defense '
          f'(draws per strength: {per_defense}) and the targets: a t-interval for the crossed '
          'draws x targets design (`medinv.metrics.intervals.crossed_interval`; with one draw, the '
          'Student-t interval over targets). They hold this trained target fixed: a target '
          'trained with another seed can move a cell by more than its interval (a sweep with '
          '`seed` as a run axis writes every cell over the seeds to seeds.csv; README, Sweeps). '
          'Model acc. is its mean over draws; its interval is in results.csv '
          '(model_test_accuracy_low, _high).', '']


def _noise_ratio_table(m: dict, rows: list[dict]) -> list[str]:
  """Model perturbation's noise-to-weight ratio per perturbed layer at the largest sigma."""
  sigmas = [r['strength'] for r in rows if r['defense'] == 'model_perturbation']
  if not m.get('noise_to_weight') or not sigmas:
    return []
  sigma = max(sigmas)
  layers = list(dict.fromkeys(k for ratios in m['noise_to_weight'].values() for k in ratios))
  body = [[split.replace('split', '')] + [f'{ratios[k] * sigma:.2f}' if k in ratios else ''
                                          for k in layers]
          for split, ratios in m['noise_to_weight'].items()]
  return [f'Noise-to-weight ratio at σ = {sigma:g} (noise std / the std of the layer\'s trained '
          'weights; it scales with σ), per split and perturbed layer:', '',
          table(['split'] + layers, body), '']


def inversion_section(name: str, results: dict) -> str:
  rows = results['rows']
  m = results['metrics']
  out = [*sources.heading('Model inversion', name, results,
                          m.get('dataset', name.split('_', 1)[1])),
         f'Target SplitCNN test accuracy {fmt(m["target_test_accuracy"])}{trained_with(m)} '
         f'(majority class {fmt(m.get("test_majority_accuracy"))}'
         f'{PUBLISHED.get(m.get("dataset"), "")}); {m["n_targets"]} '
         f'training images reconstructed from hospital A\'s features; the attacker holds '
         f'{m["n_aux"]} other images ({m["image_size"]}x{m["image_size"]})'
         + (f'; the passive attacker intercepts the features of {m["n_intercepted"]} other '
            'training images' if m.get('n_intercepted') else '')
         + '. *Model acc.* is the test accuracy of the perturbed model.', '']
  baseline = [r for r in rows if r['attack'] == 'mean_aux_image' and r['reference'] == 'target']
  if baseline:
    b = baseline[0]
    out += ['Baseline (the attacker\'s mean image as every reconstruction): '
            f'MSE {fmt(b["mse_mean"], 4)}, PSNR {fmt(b["psnr_mean"], 2)}, '
            f'SSIM {fmt(b["ssim_mean"])}.', '']
  judged = [r for r in rows if r['attack'] == 'mean_aux_image' and 'eval_accuracy' in r]
  if judged:
    out += ['Evaluation classifier (trained on the attacker\'s images; accuracy on hospital A\'s '
            f'training images {fmt(m.get("evaluator_train_accuracy"))}, balanced '
            f'{fmt(m.get("evaluator_train_balanced_accuracy"))}): the mean image as '
            f'every class scores eval. accuracy {fmt(judged[0]["eval_accuracy"])}.', '']
  out += _draws_note(rows)
  for defense in dict.fromkeys(r['defense'] for r in rows if r['defense']):
    attacked = [r for r in rows if r['defense'] == defense]
    symbol = 'σ' if defense == 'model_perturbation' else 'strength'
    out += (_inverse_table(attacked, defense, symbol)
            + _every_attack_table(attacked, defense, symbol)
            + _mi_face_table(attacked, defense, symbol))
  out += _noise_ratio_table(m, rows)
  figures = sorted(f for f in os.listdir(results['_dir']) if f.endswith('.png'))
  out += [f'![{f[:-4]}]({name}/{f})' for f in figures] + ['']
  return '\n'.join(out)


def interval(row: dict, stat: str) -> str:
  return f'{row[stat]:.3f} [{row[stat + "_low"]:.3f}, {row[stat + "_high"]:.3f}]'


def many_intervals(num_rows: int, strongest: dict) -> str:
  """The note under a table of per-attack intervals: how many to expect to miss, and the
  strongest attack's AUC with the interval that accounts for choosing it."""
  return (f'Intervals are per row at 95%: with {num_rows} rows compared, expect about '
          f'{0.05 * num_rows:.2g} to miss. The strongest, {strongest["strongest_attack"]} '
          f'(the strongest in {strongest["strongest_share"]:.0%} of resamples), has AUC '
          f'{interval(strongest, "strongest_auc")} once choosing it among the {num_rows} is '
          'accounted for.')


def membership_section(name: str, results: dict) -> str:
  rows, m = results['rows'], results['metrics']
  fpr = next(k for k in rows[0] if k.startswith('tpr_at_') and not k.endswith(('_low', '_high')))
  out = [*sources.heading('Membership inference', name, results, rows[0]['dataset']),
         f'Target {rows[0]["model"]} test accuracy {fmt(m["target_test_accuracy"])}'
         f'{trained_with(m)}, on its members (training records) {fmt(m["target_train_accuracy"])}'
         f', on the non-members {fmt(m.get("target_nonmember_accuracy"))} (majority class '
         f'{fmt(m["test_majority_accuracy"])}{PUBLISHED.get(rows[0]["dataset"], "")}); '
         f'{m["num_members"]} members and '
         f'{m["num_nonmembers"]} non-members (the candidates\' two halves); {m["num_shadows"]}'
         f' shadow models (mean test accuracy {fmt(m["shadow_test_accuracy_mean"])}).', '']
  plain = [r for r in rows if r['subgroup'] == 'all' and r['defense'] == 'none']
  header = ['attack', 'shadows', 'AUC', 'balanced acc.', fpr.replace('tpr_at_', 'TPR @ FPR ')]
  out += ['**Undefended**', '', table(header, [
      [r['attack'], r['uses_shadows'], interval(r, 'auc'), interval(r, 'balanced_accuracy'),
       interval(r, fpr)] for r in plain]), '', many_intervals(len(plain), plain[0]), '']
  best = membership_figures.strongest(rows)
  defended = [(k, r) for k, r in best.items() if k[0] != 'none']
  if defended:
    header = ['defense', 'mode', 'strength', 'test acc. under defense', 'strongest attack',
              'AUC (choice-aware)', fpr.replace('tpr_at_', 'TPR @ FPR ')]
    body = [[k[0], k[1] or '-', k[2], r['defended_test_accuracy'], r['attack'],
             interval(r, 'strongest_auc'), interval(r, fpr)] for k, r in best.items()]
    out += ['**Against each defense** (the attacker knows the defense and queries its shadows '
            'through it; randomized response releases labels only)', '', table(header, body),
            '']
  top = best[('none', '', 0.0)]['attack']
  groups = [r for r in rows if r['subgroup'] != 'all' and r['attack'] == top]
  if groups:
    body = [[r['subgroup'], r['subgroup_value'], r['num_members'], r['num_nonmembers'],
             interval(r, 'auc'), interval(r, fpr)] for r in groups]
    out += [f'**Per subgroup** ({top}, undefended)', '',
            table(['subgroup', 'value', 'members', 'non-members', 'AUC',
                   fpr.replace('tpr_at_', 'TPR @ FPR ')], body), '']
  figures = [f for f in ('roc.png', 'defenses.png')
             if os.path.exists(os.path.join(results['_dir'], f))]
  out += [f'![{f[:-4]}]({name}/{f})' for f in figures] + ['']
  return '\n'.join(out)


def audit_section(name: str, results: dict) -> str:
  """A DP audit part (medinv.membership.audit): each audit's bound beside its ceiling."""
  m, rows = results['metrics'], results['rows']
  body = [[r['audit'], r['epsilon_lower_bound'], r['ceiling'], r['auc'],
           f'{r["in_scores"]} / {r["out_scores"]}'] for r in rows]
  return '\n'.join([
      *sources.heading('DP audit', name, results, rows[0]['dataset']),
      f'{m["num_models"]} DP-SGD runs claimed at ε = {fmt(m["dp_epsilon"], 2)}, δ = '
      f'{m["delta"]:.2g} (mechanism fault: {m["fault"]}), each with {m["num_canaries"]} '
      f'canaries in or out at random; test accuracy {fmt(m["mean_test_accuracy"])}. Each '
      f'bound holds with {rows[0]["confidence"]:g} confidence; *ceiling*: the most that audit '
      'could show at its size.', '',
      table(['audit', 'ε ≥', 'ceiling', 'AUC', 'in / out scores'], body), ''])


def write(workdir: str, parts: dict, skipped: dict, title: str,
          extra_sections: list[str] = (), notes: tuple[str, ...] = ()) -> str:
  """Writes workdir/report.md (and privacy_utility.png); returns the report path.
  extra_sections: markdown put before the parts' sections (e.g. medinv.study.dp's); notes:
  lines under the title (e.g. what the study leaves to the full runs, and why)."""
  for name, results in parts.items():
    results['_dir'] = os.path.join(workdir, name)
  out = [f'# {title}', '', verdict.section(parts)]
  out += [line for note in notes for line in (f'*{note}*', '')]
  out += [HOW_TO_READ]
  if skipped:
    out += ['**Skipped parts** (their files were not found):', '']
    out += [f'- `{name}`: {reason}' for name, reason in skipped.items()] + ['']
  if study_curves.privacy_utility_figure(parts, os.path.join(workdir, 'privacy_utility.png')):
    out += ['![privacy-utility curves](privacy_utility.png)', '']
  out += list(extra_sections)
  sections = {'attribute': attribute_section, 'membership': membership_section,
              'audit': audit_section}
  for name, results in parts.items():
    out.append(sections.get(name.split('_')[0], inversion_section)(name, results))
  out += ['Machine-readable: `results.json` (all rows, with a `part` column) and '
          '`results.csv`; each part\'s own files are in its folder.', '']
  path = os.path.join(workdir, 'report.md')
  report.write_atomic(path, '\n'.join(out))
  return path
