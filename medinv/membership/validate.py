"""Every config error of the membership-inference experiment, found before data or compute.

config.membership (num_shadows >= 2, models_per_step >= 0), config.attack (registered
attacks, `medinv.membership.attacks`, and their blocks; queries), config.defense (optional:
`names`, registered defenses of medinv.defenses that act on 'weights' or 'output', and a
block per name, checked by `defenses.check_block`; the block of a defense it cannot run, with
strengths other than the registered default, is refused rather than ignored),
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
  """config.defense (optional): `names`, each a registered defense that acts on what
  membership inference attacks (attacks.ACTS_ON) and has no fit stage, with its block."""
  if 'defense' not in config:
    return
  names = tuple(config.defense.names)
  if len(set(names)) != len(names):
    raise ValueError(f'defense.names {names}: each name at most once')
  for name in names:
    component = defenses.applicable(name, attacks.ACTS_ON, 'defense.names',
                                    'membership inference')
    if component.fit is not None:
      raise ValueError(f'defense.names: {name!r} learns from training data (a fit stage), '
                       'which membership inference does not run')
    if name not in config.defense:
      raise ValueError(f'defense.names lists {name!r} but config.defense.{name} is missing')
    defenses.check_block(name, config.defense[name])
  _check_unselected_blocks(config.defense, names)
  if 'model_perturbation' in names and config.defense.model_perturbation.scope != 'all':
    raise ValueError("defense.model_perturbation.scope must be 'all' for membership "
                     f"inference (the attacker sees the whole model's output), got "
                     f'{config.defense.model_perturbation.scope!r}')
  label_only = [n for n in names if defenses.get(n).label_only(config.defense[n])]
  if label_only and not any(attacks.get(n).reads == 'label' for n in config.attack.names):
    raise ValueError(f'defense.names has {label_only} (labels only) but attack.names has no '
                     'attack that reads labels (e.g. label_only, label_lira)')


def _check_unselected_blocks(defense, names: tuple[str, ...]) -> None:
  """Refuses a block of a registered defense that membership inference cannot run (it acts
  on training or transmitted features) once its strengths differ from the registered
  default: a grid that would be ignored. Blocks at their defaults, and blocks of defenses
  it can run but `names` leaves out, may stay."""
  for name in defense.keys():
    if name == 'names' or name in names or name not in defenses.DEFENSES:
      continue
    component = defenses.get(name)
    strengths = tuple(defense[name].get('strengths', component.defaults.get('strengths', ())))
    if (component.acts_on not in attacks.ACTS_ON
        and strengths != tuple(component.defaults.get('strengths', ()))):
      defenses.applicable(name, attacks.ACTS_ON, f'defense.{name}.strengths',
                          'membership inference')


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

