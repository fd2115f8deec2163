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
from typing import Callable, Sequence

import jax
import ml_collections
import numpy as np

from medinv import data as data_lib
from medinv.attribute import experiment as attribute_experiment
from medinv.attribute import predict as attribute_predict
from medinv import models
from medinv.core import locks
from medinv.data import records as records_lib
from medinv.training import experiment as training_experiment
from medinv.training import trainer
from medinv.inversion import experiment as inversion_experiment
from medinv.membership import arrays
from medinv.membership import attacks as membership_attacks
from medinv.membership import columns as membership_columns
from medinv.membership import experiment as membership_experiment

MEMBERSHIP_ATTACKS = ('lira_online', 'lira_offline', 'lira_online_fixed_variance',
                      'lira_offline_fixed_variance', 'rmia', 'rmia_offline', 'loss_threshold',
                      'label_only', 'label_lira')
# The columns Result.table() shows first, where a result has them.
TABLE_COLUMNS = ('attribute', 'flip_prob', 'attack', 'variant', 'targets', 'defense', 'mode',
                 'strength', 'split', 'knows_defense', 'subgroup', 'subgroup_value',
                 'attack_accuracy', 'prior_accuracy', 'imputation_accuracy', 'advantage', 'auc',
                 'auc_low', 'auc_high', 'balanced_accuracy', 'tpr_at_0.01', 'tpr_at_0.001',
                 'ssim_mean', 'psnr_mean', 'release_test_accuracy', 'defended_test_accuracy')


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


def load_records(path: str, schema) -> records_lib.Records:
  """Every record of a CSV under a declared schema (medinv.data.schema), in file order."""
  return data_lib.load_records('csv', path=os.path.abspath(path), schema=schema)


def split_records(records: records_lib.Records, seed: int = 0, test_fraction: float = 0.2
                  ) -> tuple[records_lib.Records, records_lib.Records]:
  """(train, test): `test_fraction` held out by a permutation from `seed`."""
  return records_lib.split(records, jax.random.key(seed), test_fraction)


def audit_attribute(predict: Callable, train: records_lib.Records, test: records_lib.Records,
                    sensitive: Sequence[str], workdir: str, *, flip_probs=(0.0,),
                    release: str = 'label', outputs: str = 'logits', jax_traceable: bool = True,
                    seed: int = 0, config=None) -> Result:
  """Attribute inference against a model of your own, given as a predict function.

  Args:
    predict: raw records (n, d) float32 -> (n, classes) logits (or probabilities with
      outputs='probs'); a NumPy function needs jax_traceable=False.
    train: the records the model trained on (its members: medinv.data.records.Records, e.g.
      from `load_records` and `split_records`); test: records it never saw.
    sensitive: the attributes to infer (columns of the records; numeric ones need bins).
    workdir: where results.json, results.csv and attribute.png go.
    flip_probs, release: the deployment's randomized response on its released label.
    seed: the attack's and the release's keys.
    config: an attribute config to take attack, defense and seed from instead (e.g.
      configs/attribute_heart.py's): the defaults above are then not used.

  Returns:
    The Result (rows: one per attribute and flip probability, results.csv's columns).
  """
  config = config or attribute_predict.default_config(sensitive, flip_probs=flip_probs,
                                                      release=release, seed=seed)
  return _result(attribute_predict.run(predict, train, test, config, workdir, outputs=outputs,
                                       jax_traceable=jax_traceable), workdir)


def audit_inversion(model: str, params, train: tuple, attacker: tuple, config,
                    workdir: str, *, class_names: Sequence[str] | None = None) -> Result:
  """Model inversion against a split model of your own, trained anywhere, with its params.

  Args:
    model: a registered model (medinv.models.register) with split points: its edge part
      (what hospital A runs) and cloud part come from them.
    params: its flax parameters (the `params` collection).
    train: (images (n, s, s, c) float32 in [0, 1], labels (n,)) the model trained on: the
      attack's targets are config.attack.num_targets of them (MI-FACE's class means too).
    attacker: (images, labels) the attacker holds from the same distribution (its queries,
      its decoders' training data); also where the model's test accuracy is measured.
    config: a model-inversion config (e.g. configs/inversion_breastmnist.py's): attack,
      defense and seed are read; config.model is set to `model`.
    workdir: where stages, results and figures go.
    class_names: the classes' names (default 'class <i>').

  Returns:
    The Result (rows: one per attack, split point, attacker view, defense and strength).
  """
  x_train, y_train = (np.asarray(a) for a in train)
  x_aux, y_aux = (np.asarray(a) for a in attacker)
  num_classes = int(max(y_train.max(), y_aux.max())) + 1
  models.require_split_points(model, 'model', 'model inversion')
  module = models.build(model, num_classes, sample_x=x_train[:2])
  config = ml_collections.ConfigDict(config.to_dict())
  config.model = model
  inversion_experiment.validate(config)
  task = data_lib.Task(model, x_train, y_train.astype(np.int32), x_aux, y_aux.astype(np.int32),
                       tuple(class_names or (f'class {i}' for i in range(num_classes))))

  def accuracy(x, y):
    return float(np.mean(np.argmax(np.asarray(module.apply({'params': params}, x)), -1) == y))
  target = trainer.Trained(module, params, task, {
      'test_accuracy': accuracy(x_aux, y_aux), 'train_accuracy': accuracy(x_train, y_train),
      'dp_epsilon': float('inf'),
      'test_majority_accuracy': float(np.bincount(y_aux).max() / len(y_aux))})
  with locks.workdir_lock(workdir):
    inversion_experiment.SPEC.start(workdir, config)
    ctx = training_experiment.Context(config=config, workdir=workdir, task=task, target=target)
    return _result(training_experiment.attack(inversion_experiment.SPEC, ctx), workdir)


def score_membership(labels, membership, *, target_logits=None, shadow_logits=None,
                     target_loss=None, shadow_loss=None,
                     attacks: Sequence[str] | None = None,
                     fprs: Sequence[float] = (0.01, 0.001), bootstrap_samples: int = 1000,
                     interval: float = 0.95, seed: int = 0) -> Result:
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
    seed: the seed of the attacks' and the bootstrap's keys (medinv.core.keys streams).

  Returns:
    The Result; its rows have the train-shadows path's attack columns (auc, tpr_at_<f>, ...).
  """
  num_shadows, _ = arrays.check_scores(labels, membership, target_logits, shadow_logits, target_loss,
                                shadow_loss)
  labels = np.asarray(labels, np.int32)
  membership = np.asarray(membership).astype(bool)
  logits = None if target_logits is None else np.concatenate(
      [np.asarray(target_logits)[None]] + ([np.asarray(shadow_logits)] if num_shadows else []))
  loss = None if target_loss is None else np.concatenate(
      [np.asarray(target_loss)[None]] + ([np.asarray(shadow_loss)] if num_shadows else []))
  outputs = arrays.measurements(labels, logits, loss)
  usable = [name for name in (attacks or MEMBERSHIP_ATTACKS)
            if (num_shadows or not membership_attacks.get(name).uses_shadows)
            and (logits is not None or membership_attacks.get(name).reads != 'label')]
  if attacks is not None and len(usable) != len(attacks):
    raise ValueError(f'attacks {sorted(set(attacks) - set(usable))} need shadows (shadow_'
                     'logits) or released labels (logits, not losses)')
  config = ml_collections.ConfigDict(dict(
      seed=seed, attack=dict(names=tuple(usable), queries='identity'),
      evaluation=dict(fprs=tuple(float(f) for f in fprs), bootstrap_samples=bootstrap_samples,
                      interval=interval, subgroups=(), below_one_record='flag')))
  if outputs['correct'] is None:  # no labels released: a placeholder the attacks never read
    outputs['correct'] = np.zeros(outputs['phi'].shape, bool)
  obs = membership_experiment.observation(outputs, membership)
  members = membership[0]
  results = membership_experiment.run_attacks(config, obs, members, ())
  rows = [{'attack': name, 'num_shadows': num_shadows, 'num_members': int(members.sum()),
           'num_nonmembers': int((~members).sum()), 'subgroup': 'all', 'subgroup_value': '',
           **membership_columns.attack_row(config, name, result, int((~members).sum())),
           **membership_columns.strongest_columns(config, results)}
          for name, result in results.items()]
  metrics = {'num_shadows': num_shadows, 'num_records': len(labels),
             'auc_max': max(row['auc'] for row in rows)}
  return Result('membership_inference', rows, metrics)
