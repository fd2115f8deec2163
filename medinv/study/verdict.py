"""The study report's first screen: what leaks, how much, and what a defense costs.

Per attack part (attribute inference, model inversion, membership inference), one line for
its strongest attack on the undefended deployment, as an *advantage* over the attack's
no-model baseline with a 95% interval:
- attribute inference: attack accuracy on the member targets minus the best no-model baseline
  (prior guess or imputation), with Newcombe's interval for a difference of two proportions
  over the n targets (`medinv.metrics.intervals.difference_interval`; attack and baseline are
  taken as independent samples, which widens the interval when they agree on most records);
- model inversion: mean SSIM of the reconstructed targets minus the SSIM of the attacker's
  mean image, the attack's crossed draws x targets t-interval shifted by that baseline (taken
  as fixed), at the split where the strongest attack is strongest (MI-FACE's class
  representatives, compared with class means, are left out);
- membership inference: the strongest AUC minus 0.5, with the interval that accounts for
  choosing it among the attacks (the rows' `strongest_auc_low` / `_high`).
For attribute and inversion the strongest attack's interval runs from the largest lower end
to the largest upper end of all the attacks' intervals on that deployment: it holds the
largest true advantage whenever each attack's interval holds its own, whichever attack the
data favour (it is not a simultaneous interval).

Then one line per defense (and mode) of the part: the smallest strength run at which the
strongest attack *reaches its baseline* (`Point.reaches`: the interval's lower end is at or
below 0), with the model's test accuracy there beside the undefended one; when no strength
does, the largest strength run and the accuracy there. The functions are pure over the
study's rows (results.json's `rows`, each with its `part`).
"""
from __future__ import annotations

import dataclasses
import math

from medinv.inversion import figures as inversion_figures
from medinv.metrics import intervals

HEADER = ['part', 'data', 'defense', 'strength', 'strongest attack',
          'advantage [95% interval]', 'reaches the baseline', 'model accuracy']
TITLE = ('**What leaks, how much, and what a defense costs.** Per part, the strongest attack '
         'on the undefended model against its no-model baseline, then per defense the '
         'smallest strength at which the strongest attack reaches that baseline, and the '
         'model accuracy it costs.')
NOTES = ('*Advantage*: attribute inference, attack accuracy minus the best of the prior guess '
         'and imputation (Newcombe\'s interval over the member targets); model inversion, SSIM '
         'minus the attacker\'s mean image\'s SSIM (t-interval over draws x targets); '
         'membership inference, AUC minus 0.5 (the interval that accounts for choosing the '
         'strongest attack). For attribute and inversion the interval runs from the largest '
         'lower end to the largest upper end of the attacks\' own intervals. *Model accuracy*: '
         'test accuracy under the defense (attribute inference: of the released labels).')
REACHES = ('*Reaches the baseline*: the lower end of the strongest attack\'s 95% advantage '
           'interval is at or below 0 (the baseline\'s value lies in the interval or above '
           'it); a defense\'s line shows the smallest strength run where it does.')


@dataclasses.dataclass(frozen=True)
class Point:
  """The strongest attack on one deployment (a defense at one strength): its advantage over
  the baseline with a 95% interval, and the model's test accuracy under the deployment."""
  strength: float
  attack: str
  advantage: float
  low: float
  high: float
  accuracy: float

  @property
  def reaches(self) -> bool:
    """Whether the interval's lower end is at or below 0 (False when it is unknown)."""
    return self.low <= 0.0


@dataclasses.dataclass(frozen=True)
class Verdict:
  """A part's undefended point (None when no deployment at strength 0 ran) and, per defense
  label, its points at strengths above 0 in increasing order."""
  undefended: Point | None
  defenses: dict[str, list[Point]]


def _num(value) -> float:
  """A row's number (results.json writes inf / nan as strings; absent or empty: nan)."""
  return math.nan if value is None or value == '' else float(value)


def strongest(points: list[Point]) -> Point:
  """The point with the largest advantage (the first of equal ones), with the interval from
  the largest lower end to the largest upper end of all the points' intervals."""
  top = max(points, key=lambda p: p.advantage)
  lows = [p.low for p in points if not math.isnan(p.low)]
  highs = [p.high for p in points if not math.isnan(p.high)]
  return dataclasses.replace(top, low=max(lows, default=math.nan),
                             high=max(highs, default=math.nan))


def _verdict(groups: dict[str, dict[float, list[Point]]]) -> Verdict:
  """The Verdict of candidate points grouped by defense label and strength."""
  at_zero = [p for by_strength in groups.values() for p in by_strength.get(0.0, [])]
  defenses = {label: [strongest(by_strength[s]) for s in sorted(by_strength) if s > 0]
              for label, by_strength in groups.items()}
  return Verdict(strongest(at_zero) if at_zero else None,
                 {label: points for label, points in defenses.items() if points})


def _label(defense: str, mode) -> str:
  return f'{defense} ({mode})' if mode else defense


def attribute_verdict(rows: list[dict]) -> Verdict:
  """Attribute inference: the release attacks on the member targets, per flip probability of
  randomized response on the released label (0: undefended)."""
  groups = {}
  for r in rows:
    if r['targets'] != 'members' or math.isnan(_num(r['advantage'])):
      continue
    n, accuracy, baseline = int(r['n']), _num(r['attack_accuracy']), _num(
        r['best_baseline_accuracy'])
    low, high = intervals.difference_interval(accuracy * n, n, baseline * n, n)
    name = r['attack'] + (f' ({r["variant"]})' if r.get('variant') else '')
    strength = _num(r['flip_prob'])
    label = _label('randomized_response', '' if r['release'] == 'label' else
                   f'{r["release"]} release')
    groups.setdefault(label, {}).setdefault(strength, []).append(Point(
        strength, f'{name} on {r["attribute"]}', _num(r['advantage']), low, high,
        _num(r['release_test_accuracy'])))
  return _verdict(groups)


def inversion_verdict(rows: list[dict]) -> Verdict:
  """Model inversion: every attack that reconstructs the targets, any attacker view, at the
  split where the strongest attack on an undefended deployment is strongest (the first split
  when none ran at strength 0)."""
  baseline = [_num(r['ssim_mean']) for r in rows
              if r['attack'] == 'mean_aux_image' and r['reference'] == 'target']
  attacked = [r for r in rows if r.get('defense') and r['reference'] == 'target']
  if not baseline or not attacked:
    return Verdict(None, {})
  base = baseline[0]
  undefended = [r for r in attacked if _num(r['strength']) == 0.0]
  split = (max(undefended, key=lambda r: _num(r['ssim_mean'])) if undefended
           else min(attacked, key=lambda r: r['split']))['split']
  groups = {}
  for r in attacked:
    if r['split'] != split:
      continue
    strength = _num(r['strength'])
    view = inversion_figures.VIEWS[_view(r.get('knows_defense'))]
    groups.setdefault(_label(r['defense'], r['mode']), {}).setdefault(strength, []).append(
        Point(strength, f'{r["attack"]} (split {split}, {view})',
              _num(r['ssim_mean']) - base, _num(r['ssim_low']) - base,
              _num(r['ssim_high']) - base, _num(r['model_test_accuracy'])))
  return _verdict(groups)


def _view(value):
  """knows_defense as a row holds it: a bool, or, read back from CSV, 'True' / 'False' / ''."""
  return {'True': True, 'False': False, '': None}.get(value, value)


def membership_verdict(rows: list[dict]) -> Verdict:
  """Membership inference: each deployment's strongest attack on all records, with its
  choice-aware AUC interval."""
  groups = {}
  for r in rows:
    if r['subgroup'] != 'all' or 'strongest_auc' not in r:
      continue
    strength = _num(r['strength'])
    by_strength = groups.setdefault(_label(r['defense'], r['mode']), {})
    if strength not in by_strength:  # every row of a deployment carries its strongest attack
      by_strength[strength] = [Point(
          strength, r['strongest_attack'], _num(r['strongest_auc']) - 0.5,
          _num(r['strongest_auc_low']) - 0.5, _num(r['strongest_auc_high']) - 0.5,
          _num(r['defended_test_accuracy']))]
  return _verdict(groups)


FAMILIES = {'attribute': ('attribute inference', attribute_verdict),
            'inversion': ('model inversion', inversion_verdict),
            'membership': ('membership inference', membership_verdict)}


def _interval(point: Point) -> str:
  return f'{point.advantage:.3f} [{point.low:.3f}, {point.high:.3f}]'


def part_lines(part: str, rows: list[dict], data: str) -> list[list[str]]:
  """The first screen's table lines for one part (none for a part of another kind).

  Args:
    part: the part's name; its prefix (attribute_, inversion_, membership_) is its kind.
    rows: the part's rows.
    data: the data's name for the data column.

  Returns:
    Lines of cells in HEADER's order: the undefended one, then one per defense.
  """
  kind = part.split('_', 1)[0]
  if kind not in FAMILIES or not rows:
    return []
  family, compute = FAMILIES[kind]
  verdict = compute(rows)
  cell = f'{family} (`{part}`)'
  lines = []
  undefended = verdict.undefended
  if undefended is not None:
    lines.append([cell, data, 'none', '0', undefended.attack, _interval(undefended),
                  'yes, even undefended' if undefended.reaches else 'no',
                  f'{undefended.accuracy:.3f}'])
  reference = f'{undefended.accuracy:.3f}' if undefended is not None else 'not run'
  for label, points in verdict.defenses.items():
    reached = next((p for p in points if p.reaches), None)
    shown = reached or points[-1]
    strengths = ', '.join(f'{p.strength:g}' for p in points)
    lines.append([cell, data, label, f'{shown.strength:g}', shown.attack, _interval(shown),
                  'yes' if reached else
                  f'none of the strengths run ({strengths}) reaches the baseline',
                  f'{shown.accuracy:.3f} (undefended {reference})'])
  return lines


def table_lines(rows: list[dict], data_names: dict[str, str] | None = None
                ) -> list[list[str]]:
  """The first screen's table lines for every part of a study, in the rows' order.

  Args:
    rows: the study's rows (results.json's), each with `part`.
    data_names: {part: the data's name}; else the rows' `dataset`, else the part's name.

  Returns:
    Lines of cells in HEADER's order.
  """
  by_part = {}
  for r in rows:
    by_part.setdefault(r['part'], []).append(r)
  lines = []
  for part, mine in by_part.items():
    data = (data_names or {}).get(part) or mine[0].get('dataset') or part
    lines += part_lines(part, mine, data)
  return lines


def section(parts: dict) -> str:
  """The first screen's markdown ('' when no part is an attack part).

  Args:
    parts: {part: its results dict}: 'rows', and '_data' ({'name': ...}) where the study
      described the data.

  Returns:
    Markdown: the lead, the table, and the notes that define its columns.
  """
  rows = [{'part': name, **row} for name, results in parts.items() for row in results['rows']]
  names = {name: (results.get('_data') or {}).get('name') for name, results in parts.items()}
  lines = table_lines(rows, names)
  if not lines:
    return ''
  table = ['| ' + ' | '.join(HEADER) + ' |', '|' + '---|' * len(HEADER)]
  table += ['| ' + ' | '.join(line) + ' |' for line in lines]
  return '\n'.join([TITLE, '', *table, '', REACHES, '', NOTES, ''])
