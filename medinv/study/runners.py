"""Every experiment medinv runs, by name: one registry for the study, the sweep and the CLI.

A runner is `run(config, workdir) -> results dict` (medinv.training.experiment's skeleton), its
`validate(config)` (run on the config and on every sweep-axis value), plus what
the sweep and the study need to know about it: which config paths it takes as a vmapped grid
(`vmap_axes`, fnmatch patterns), which tuple fields of its config hold that grid
(`grid_fields`: (axis, field) pairs), the prefix of its part names in a study ('attribute_heart'),
and the units of work a part asks for (relative, computed from its config): the study's
time left is the work left x the seconds per unit measured in the run (medinv.core.progress).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from medinv.attribute import experiment as attribute_experiment
from medinv import data as data_lib
from medinv.membership import audit as dp_audit
from medinv.membership import experiment as membership_experiment
from medinv.membership import validate as membership_validate
from medinv.inversion import experiment as inversion_experiment
from medinv.attribute import population as population_experiment
from medinv.training import population
from medinv.inversion import sweep_rmle
from medinv.inversion import attacks as inversion_attacks


@dataclasses.dataclass(frozen=True)
class Runner:
  run: Callable[..., dict]
  validate: Callable[..., None]
  vmap_axes: tuple[str, ...] = ()
  grid_fields: tuple[tuple[str, str], ...] = ()
  study_prefix: str = ''
  # A study part's units of work (the time-left estimate's weight, relative to the other
  # parts; not seconds): a number, or config -> number.
  weight: float | Callable[..., float] = 1.0

  def weight_of(self, config) -> float:
    return self.weight(config) if callable(self.weight) else self.weight


# Study-part weights: units of work that grow with what each config asks for (attributes;
# models x pixels x epochs; epochs x pixels, and per split and attack a fixed part (its
# compilation) plus its steps x defense points x pixels, a second attacker view adding half a
# view's steps: the paper's view trains one decoder, or takes the clean model's class images,
# for every strength). Only their ratios matter: the coefficients put the kinds of part on one
# scale, from the relative times of the demo's parts (attribute inference 7 units per
# attribute; membership inference 42 units on heart_disease, 98 on 5 SplitCNNs at 16x16 for 10
# epochs; model inversion 64 units of target training at 32x32 for 10 epochs, 20 per split and
# attack, then per step as below). What a unit costs in seconds is measured in each run.
_STEP_WORK = {'inverse_network': 0.11, 'rmle': 0.08, 'query_free': 0.1, 'mi_face': 0.03,
              'feature_alignment': 0.2}


def _attribute_weight(config) -> float:
  return 7.0 * len(config.attack.sensitive)


def _membership_weight(config) -> float:
  if data_lib.is_records(config.data.dataset):
    return 42.0
  models = config.membership.num_shadows + 1
  size = config.data.image_size / 16
  return 20.0 + 78.0 * models / 5 * size ** 2 * config.train.num_epochs / 10


def _inversion_weight(config) -> float:
  size = (config.data.image_size / 32) ** 2
  points = sum(len(block.strengths) * block.get('num_draws', 1) * len(block.get('modes', ('',)))
               for block in config.defense.values())
  views = 1.0 + 0.5 * (len(config.attack.knows_defense) - 1)
  attacks = 0.0
  for name in config.attack.names:
    cfg = config.attack[name]
    steps = cfg.get('steps', cfg.get('max_steps', 100))
    per_view = views if inversion_attacks.get(name).uses_view else 1.0
    splits = config.attack.get('splits_of', {}).get(name, config.attack.splits)
    attacks += len(splits) * (20.0 + _STEP_WORK.get(name, 0.1) * steps * points * size
                              * per_view)
  return 6.4 * config.train.num_epochs * size + attacks


RUNNERS: dict[str, Runner] = {
    'attribute_inference': Runner(attribute_experiment.run, attribute_experiment.validate,
                                  ('defense.flip_prob',),
                                  (('defense.flip_prob', 'defense.flip_probs'),), 'attribute',
                                  _attribute_weight),
    'model_inversion': Runner(inversion_experiment.run, inversion_experiment.validate,
                              ('defense.sigma',),
                              (('defense.sigma', 'defense.model_perturbation.strengths'),),
                              'inversion', _inversion_weight),
    'membership_inference': Runner(membership_experiment.run, membership_validate.validate,
                                   study_prefix='membership', weight=_membership_weight),
    'dp_audit': Runner(dp_audit.run, dp_audit.validate, study_prefix='audit',
                       weight=lambda c: 42.0 * c.audit.num_models / 64 * c.train.num_epochs / 20),
    'population': Runner(population_experiment.run, population_experiment.validate,
                         population.TRAIN_AXES),
    'rmle': Runner(sweep_rmle.run, sweep_rmle.validate,
                   population.TRAIN_AXES + sweep_rmle.ATTACK_AXES),
}


def get(name: str) -> Runner:
  if name not in RUNNERS:
    raise ValueError(f'unknown experiment {name!r}; known: {sorted(RUNNERS)}')
  return RUNNERS[name]


def for_part(part_name: str) -> Runner:
  """The runner of a study part, by the prefix of its name ('attribute_heart' -> attribute)."""
  prefix = part_name.split('_', 1)[0]
  for runner in RUNNERS.values():
    if runner.study_prefix and runner.study_prefix == prefix:
      return runner
  prefixes = sorted(r.study_prefix + '_' for r in RUNNERS.values() if r.study_prefix)
  raise ValueError(f'study part {part_name!r} must start with one of {prefixes}')
