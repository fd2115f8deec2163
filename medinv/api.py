"""medinv's public Python API: audit a model of your own for what it leaks.

One module to import (`from medinv import api`); the command-line experiments call the same
functions, so a notebook and `./launch.sh <experiment>` share one code path.

From a config (plain ml_collections, e.g. `configs/membership_heart.py`'s `get_config()`):
  membership_inference(config, workdir)  target + K shadows of a registered model, trained
                                          in one program (vmapped), then every attack;
  attribute_inference(config, workdir)   the target, then the attacks per sensitive attribute;
  model_inversion(config, workdir)       the SplitCNN target, then every inversion attack.
From arrays (a model trained anywhere, in any framework):
  score_membership(labels, membership, target_logits=..., shadow_logits=...)
                                          the membership attacks on the logits (or losses) of
                                          a target and its shadows, and the membership matrix.

Every function returns a `Result`: its rows (results.csv's columns, docs/results_csv.md), its
metrics, a markdown table (`result.table()`, shown by notebooks) and its figures (PNG paths).
Defenses are named by their registered names (medinv.defenses) in the config's
`defense.names`.
"""
from __future__ import annotations

import dataclasses
import glob
import os
from typing import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from medinv.attribute import experiment as attribute_experiment
from medinv.inversion import experiment as inversion_experiment
from medinv.membership import attacks as membership_attacks
from medinv.membership import experiment as membership_experiment

MEMBERSHIP_ATTACKS = ('lira_online', 'lira_offline', 'lira_online_fixed_variance',
                      'lira_offline_fixed_variance', 'loss_threshold', 'label_only',
                      'label_lira')
# The columns Result.table() shows first, where a result has them.
TABLE_COLUMNS = ('attribute', 'flip_prob', 'attack', 'defense', 'mode', 'strength', 'split',
                 'knows_defense', 'subgroup', 'subgroup_value', 'auc', 'auc_low', 'auc_high',
                 'balanced_accuracy', 'tpr_at_0.01', 'tpr_at_0.001', 'ssim_mean', 'psnr_mean',
                 'defended_test_accuracy')


@dataclasses.dataclass(frozen=True)
class Result:
  """What an audit found.

  experiment: 'membership_inference', 'attribute_inference' or 'model_inversion'.
  rows: one dict per row of results.csv (columns: docs/results_csv.md).
  metrics: results.json's metrics (target accuracy, sizes, maxima).
  figures: figure name -> PNG path (in `workdir`).
  workdir: where the run wrote its files (None for an arrays-in audit without one).
  """
  experiment: str
  rows: list[dict]
  metrics: dict
  figures: dict[str, str] = dataclasses.field(default_factory=dict)
  workdir: str | None = None

  def table(self, columns: Sequence[str] | None = None, max_rows: int = 40) -> str:
    """A markdown table of the rows: `columns`, or those of TABLE_COLUMNS the rows have."""
    if not self.rows:
      return '(no rows)'
    columns = list(columns or [c for c in TABLE_COLUMNS if c in self.rows[0]])
    lines = ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
    for row in self.rows[:max_rows]:
      lines.append('| ' + ' | '.join(_cell(row.get(c, '')) for c in columns) + ' |')
    if len(self.rows) > max_rows:
      lines.append(f'({len(self.rows) - max_rows} more rows in result.rows)')
    return '\n'.join(lines)

  def _repr_markdown_(self) -> str:
    return f'**{self.experiment}**\n\n' + self.table()


def _cell(value) -> str:
  if isinstance(value, float):
    return f'{value:.3f}'
  return str(value)


def _result(results: dict, workdir: str | None) -> Result:
  figures = {} if workdir is None else {
      os.path.splitext(os.path.basename(p))[0]: p
      for p in sorted(glob.glob(os.path.join(workdir, '*.png')))}
  return Result(results['experiment'], results['rows'], results['metrics'], figures, workdir)


def membership_inference(config, workdir: str) -> Result:
  """Trains (or resumes) config.model's target and config.membership.num_shadows shadows as
  one population on config.data and runs config.attack.names under each defense.

  Args:
    config: a membership config (e.g. configs/membership_heart.py's get_config()).
    workdir: where checkpoints, results and figures go (a rerun resumes there).

  Returns:
    The Result (rows: one per deployment and attack, then per subgroup).
  """
  return _result(membership_experiment.run(config, workdir), workdir)


def attribute_inference(config, workdir: str) -> Result:
  """Trains (or resumes) the target and infers each of config.attack.sensitive from what the
  deployment releases, at every flip probability of config.defense.

  Args:
    config: an attribute config (e.g. configs/attribute_heart.py or attribute_csv.py).
    workdir: where the target, results and figures go.

  Returns:
    The Result (rows: one per attribute and flip probability).
  """
  return _result(attribute_experiment.run(config, workdir), workdir)


def model_inversion(config, workdir: str) -> Result:
  """Trains (or resumes) the split target and runs every model-inversion attack at each split,
  defense and strength of config.

  Args:
    config: a model-inversion config (e.g. configs/inversion_breastmnist.py).
    workdir: where the target, attack stages, results and figures go.

  Returns:
    The Result (rows: one per attack, split, attacker view, defense and strength).
  """
  return _result(inversion_experiment.run(config, workdir), workdir)


def _check_finite(name: str, array: np.ndarray) -> None:
  if not np.all(np.isfinite(array)):
    bad = np.argwhere(~np.isfinite(array))[0]
    raise ValueError(f'{name} holds NaN or inf (first at index {tuple(int(i) for i in bad)})')


def _phi_from_loss(loss: np.ndarray) -> np.ndarray:
  """phi = log(p / (1 - p)) of the true label from the cross-entropy loss = -log p."""
  loss = np.maximum(loss.astype(np.float64), 1e-12)
  return (-loss - np.log(-np.expm1(-loss))).astype(np.float32)


def _measurements(labels, logits=None, loss=None) -> dict:
  """{'phi' (M, N, 1), 'loss' (M, N), 'correct' (M, N, 1) or None} for M models."""
  if logits is not None:
    out = jax.vmap(lambda one: membership_attacks.measurements(one[None], jnp.asarray(labels)))(
        jnp.asarray(logits, jnp.float32))
    return jax.device_get(out)
  return {'phi': _phi_from_loss(loss)[..., None], 'loss': loss.astype(np.float32),
          'correct': None}


def check_scores(labels, membership, target_logits=None, shadow_logits=None,
                 target_loss=None, shadow_loss=None) -> tuple[int, int]:
  """Checks the arrays of `score_membership`; returns (num_shadows, num_records).

  Raises:
    ValueError: one line naming the argument: lengths that differ, NaN or inf, logits that
      are not (records, classes), a label outside the classes, a membership matrix that is not
      0/1 of shape (1 + shadows, records), or a record IN (or OUT) for every shadow.
  """
  labels = np.asarray(labels)
  membership = np.asarray(membership)
  if (target_logits is None) == (target_loss is None):
    raise ValueError('pass either target_logits (records, classes) or target_loss (records,)')
  n = len(labels)
  target = np.asarray(target_logits if target_logits is not None else target_loss)
  shadows = shadow_logits if target_logits is not None else shadow_loss
  shadows = None if shadows is None else np.asarray(shadows)
  name = 'target_logits' if target_logits is not None else 'target_loss'
  shadow_name = name.replace('target', 'shadow')
  if target_logits is not None and target.ndim != 2:
    raise ValueError(f'target_logits must be (records, classes), got shape {target.shape}')
  for arg, array in ((name, target), (shadow_name, shadows)):
    if array is None:
      continue
    if array.shape[-2 if arg.endswith('logits') else -1] != n:
      raise ValueError(f'{arg} has {array.shape[-2 if arg.endswith("logits") else -1]} '
                       f'records (shape {array.shape}) but labels has {n}')
    _check_finite(arg, array)
  if target_logits is not None and not np.all((labels >= 0) & (labels < target.shape[-1])):
    raise ValueError(f'labels must be class indices in [0, {target.shape[-1]}), got values '
                     f'{np.unique(labels)[:10]}')
  num_shadows = 0 if shadows is None else shadows.shape[0]
  if membership.shape != (1 + num_shadows, n) or not np.isin(membership, (0, 1)).all():
    raise ValueError(f'membership must be 0/1 of shape (1 + shadows, records) = '
                     f'({1 + num_shadows}, {n}) (row 0: the target), got shape '
                     f'{membership.shape}')
  if num_shadows:
    always = np.flatnonzero(membership[1:].all(axis=0) | ~membership[1:].any(axis=0))
    if always.size:
      raise ValueError(f'membership: record {int(always[0])} is IN for every shadow or OUT '
                       f'for every shadow ({always.size} records); LiRA needs shadows both '
                       'with and without each record')
  return num_shadows, n


def score_membership(labels, membership, *, target_logits=None, shadow_logits=None,
                     target_loss=None, shadow_loss=None,
                     attacks: Sequence[str] | None = None,
                     fprs: Sequence[float] = (0.01, 0.001), bootstrap_samples: int = 1000,
                     interval: float = 0.95, delta: float = 0.0, seed: int = 0) -> Result:
  """The membership attacks on scores a user brings: a model from any framework.

  Args:
    labels: (N,) the candidates' class labels.
    membership: (1 + K, N) 0/1; row 0: whether the target trained on each candidate (the
      truth being audited), rows 1..K: each shadow's training set.
    target_logits: (N, C) the target's logits on the candidates; or target_loss (N,) its
      cross-entropy loss (then the label-only attacks cannot run).
    shadow_logits: (K, N, C) the shadows' logits (or shadow_loss (K, N)); None: K = 0 and
      only the attacks without shadows run.
    attacks: registered membership attacks (medinv.membership.attacks.ATTACKS); default
      every built-in that the arrays allow.
    fprs: the false-positive rates TPR is reported at.
    bootstrap_samples, interval: the percentile-bootstrap intervals over records.
    delta: the delta of the empirical epsilon lower bound (0: 1 / members).
    seed: the seed of the attacks' and the bootstrap's keys (medinv.core.keys streams).

  Returns:
    The Result; its rows have the train-shadows path's attack columns (auc, tpr_at_<f>, ...).
  """
  num_shadows, _ = check_scores(labels, membership, target_logits, shadow_logits, target_loss,
                                shadow_loss)
  labels = np.asarray(labels, np.int32)
  membership = np.asarray(membership).astype(bool)
  logits = None if target_logits is None else np.concatenate(
      [np.asarray(target_logits)[None]] + ([np.asarray(shadow_logits)] if num_shadows else []))
  loss = None if target_loss is None else np.concatenate(
      [np.asarray(target_loss)[None]] + ([np.asarray(shadow_loss)] if num_shadows else []))
  outputs = _measurements(labels, logits, loss)
  usable = [name for name in (attacks or MEMBERSHIP_ATTACKS)
            if (num_shadows or not membership_attacks.get(name).uses_shadows)
            and (logits is not None or membership_attacks.get(name).reads != 'label')]
  if attacks is not None and len(usable) != len(attacks):
    raise ValueError(f'attacks {sorted(set(attacks) - set(usable))} need shadows (shadow_'
                     'logits) or released labels (logits, not losses)')
  config = ml_collections.ConfigDict(dict(
      seed=seed, attack=dict(names=tuple(usable), queries='identity'),
      evaluation=dict(fprs=tuple(float(f) for f in fprs), bootstrap_samples=bootstrap_samples,
                      interval=interval, subgroups=(), below_one_record='flag'),
      train=dict(dp=dict(delta=delta))))
  if outputs['correct'] is None:  # no labels released: a placeholder the attacks never read
    outputs['correct'] = np.zeros(outputs['phi'].shape, bool)
  obs = membership_experiment.observation(outputs, membership)
  members = membership[0]
  results = membership_experiment.run_attacks(config, obs, members, ())
  rows = [{'attack': name, 'num_shadows': num_shadows, 'num_members': int(members.sum()),
           'num_nonmembers': int((~members).sum()), 'subgroup': 'all', 'subgroup_value': '',
           **membership_experiment.attack_row(config, name, result, int((~members).sum()),
                                              members)}
          for name, result in results.items()]
  metrics = {'num_shadows': num_shadows, 'num_records': len(labels),
             'auc_max': max(row['auc'] for row in rows)}
  return Result('membership_inference', rows, metrics)
