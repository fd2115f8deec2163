"""Every experiment medinv runs, by name: one registry for the study, the sweep and the CLI.

A runner is `run(config, workdir) -> results dict` (medinv.experiment's skeleton), its
`validate(config)` (run on the config and on every sweep-axis value), plus what
the sweep and the study need to know about it: which config paths it takes as a vmapped grid
(`vmap_axes`, fnmatch patterns), which tuple fields of its config hold that grid
(`grid_fields`: (axis, field) pairs), the prefix of its part names in a study ('aia_heart'),
and its rough relative cost for the study's time-left estimate.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from medinv import aia
from medinv import data as data_lib
from medinv import membership
from medinv import membership_validate
from medinv import mia
from medinv import population
from medinv import sweep_rmle


@dataclasses.dataclass(frozen=True)
class Runner:
  run: Callable[..., dict]
  validate: Callable[..., None]
  vmap_axes: tuple[str, ...] = ()
  grid_fields: tuple[tuple[str, str], ...] = ()
  study_prefix: str = ''
  # A study part's relative time, for the time-left estimate: a number, or config -> number.
  weight: float | Callable[..., float] = 1.0

  def weight_of(self, config) -> float:
    return self.weight(config) if callable(self.weight) else self.weight


# Study-part weights measured on the demo (2-core CPU, 2026-11-29): attribute inference 28-33 s,
# membership inference 39-46 s (heart_disease MLPs) and 76-89 s (BreastMNIST SplitCNNs),
# model inversion 577-624 s.
def _membership_weight(config) -> float:
  return 1.5 if data_lib.is_records(config.data.dataset) else 3.0




RUNNERS: dict[str, Runner] = {
    'attribute_inference': Runner(aia.run, aia.validate, ('defense.flip_prob',),
                                  (('defense.flip_prob', 'defense.flip_probs'),), 'aia', 1.0),
    'model_inversion': Runner(mia.run, mia.validate, ('defense.sigma',),
                              (('defense.sigma', 'defense.model_perturbation.strengths'),), 'mia',
                              20.0),
    'membership_inference': Runner(membership.run, membership_validate.validate,
                                   study_prefix='mem', weight=_membership_weight),
    'population': Runner(population.run, population.validate, population.TRAIN_AXES),
    'rmle': Runner(sweep_rmle.run, sweep_rmle.validate,
                   population.TRAIN_AXES + sweep_rmle.ATTACK_AXES),
}


def get(name: str) -> Runner:
  if name not in RUNNERS:
    raise ValueError(f'unknown experiment {name!r}; known: {sorted(RUNNERS)}')
  return RUNNERS[name]


def for_part(part_name: str) -> Runner:
  """The runner of a study part, by the prefix of its name ('aia_heart' -> aia)."""
  prefix = part_name.split('_', 1)[0]
  for runner in RUNNERS.values():
    if runner.study_prefix and runner.study_prefix == prefix:
      return runner
  prefixes = sorted(r.study_prefix + '_' for r in RUNNERS.values() if r.study_prefix)
  raise ValueError(f'study part {part_name!r} must start with one of {prefixes}')
