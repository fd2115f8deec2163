"""Every config error of the membership-inference experiment, found before data or compute.

config.membership (num_shadows >= 2, models_per_step >= 0), config.attack (registered
attacks, `medinv.membership.attacks`, and their blocks; queries), config.defense (optional:
`names` from attacks.membership.DEFENSES, a block per name with its `strengths`),
config.evaluation (fprs, below_one_record, bootstrap_samples, interval), and, once the data
is loaded, whether the candidate records resolve every requested FPR.
"""
from __future__ import annotations

from medinv import data as data_lib
from medinv import defenses
from medinv.metrics import roc
from medinv.training import trainer
from medinv.membership import attacks

POLICIES = ('flag', 'error')  # evaluation.below_one_record


def validate(config) -> None:
  """ValueError naming the field for every config error, before data or compute."""
  trainer.validate(config)
  if config.membership.models_per_step < 0:
    raise ValueError('membership.models_per_step must be >= 0 (0: all at once), got '
                     f'{config.membership.models_per_step}')
  if not config.membership.num_shadows >= 2:
    raise ValueError('membership.num_shadows must be at least 2 (LiRA needs IN and OUT '
                     f'shadows for every record), got {config.membership.num_shadows}')
  attacks.check_config(config.attack)
  if config.attack.queries == 'flip' and data_lib.is_records(config.data.dataset):
    raise ValueError(f"attack.queries 'flip' needs an image dataset; {config.data.dataset} "
                     "holds records: use 'identity'")
  validate_defense(config)
  evaluation = config.evaluation
  if not evaluation.fprs or not all(0 < fpr < 1 for fpr in evaluation.fprs):
    raise ValueError(f'evaluation.fprs must be FPRs in (0, 1), got {tuple(evaluation.fprs)}')
  if evaluation.below_one_record not in POLICIES:
    raise ValueError(f'evaluation.below_one_record must be one of {POLICIES}, got '
                     f'{evaluation.below_one_record!r}')
  if evaluation.bootstrap_samples < 1:
    raise ValueError('evaluation.bootstrap_samples must be at least 1, got '
                     f'{evaluation.bootstrap_samples}')
  if not 0 < evaluation.interval < 1:
    raise ValueError(f'evaluation.interval must be in (0, 1), got {evaluation.interval}')


def validate_defense(config) -> None:
  """config.defense (optional): names from attacks.DEFENSES, each block with its strengths."""
  if 'defense' not in config:
    return
  names = tuple(config.defense.names)
  unknown = [n for n in names if n not in attacks.DEFENSES]
  if unknown or len(set(names)) != len(names):
    raise ValueError(f'defense.names {names}: each at most once, from {attacks.DEFENSES}')
  for name in names:
    if name not in config.defense:
      raise ValueError(f'defense.names lists {name!r} but config.defense.{name} is missing')
    block = config.defense[name]
    if not block.strengths or min(block.strengths) < 0:
      raise ValueError(f'defense.{name}.strengths must be non-empty and >= 0, got '
                       f'{tuple(block.strengths)}')
  if 'randomized_response' in names:
    block = config.defense.randomized_response
    if max(block.strengths) > 1 or block.queries < 1:
      raise ValueError('defense.randomized_response: strengths are flip probabilities in '
                       f'[0, 1] and queries >= 1, got {tuple(block.strengths)}, {block.queries}')
  if 'model_perturbation' in names:
    block = config.defense.model_perturbation
    defenses.get('model_perturbation').check(block)
    if block.scope != 'all':
      raise ValueError("defense.model_perturbation.scope must be 'all' for membership "
                       f"inference (the attacker sees the whole model's output), got "
                       f'{block.scope!r}')
  if not any(attacks.get(n).reads == 'label' for n in config.attack.names) and (
      'randomized_response' in names):
    raise ValueError('defense.names has randomized_response (labels only) but attack.names '
                     'has no attack that reads labels (e.g. label_only, label_lira)')


def check_record_count(config, num_records: int) -> None:
  """ValueError naming the field when the candidates are too few for the requested FPRs."""
  if num_records < 4:
    raise ValueError(f'membership inference needs at least 4 candidate records, got '
                     f'{num_records} (data.dataset {config.data.dataset})')
  nonmembers = num_records // 2
  below = [fpr for fpr, count in zip(config.evaluation.fprs,
                                     roc.fpr_records(config.evaluation.fprs, nonmembers))
           if count < 1]
  if below and config.evaluation.below_one_record == 'error':
    raise ValueError(f'evaluation.fprs {below} are below one record: the target has '
                     f'{nonmembers} non-member candidates, so the smallest FPR it resolves is '
                     f'{1 / nonmembers:.3g} (drop them, or set evaluation.below_one_record='
                     "'flag' to report the TPR at zero false positives)")

