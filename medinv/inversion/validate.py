"""Every config error of the model-inversion experiment, found before any data or compute.

config.model: a registered model with split points (`medinv.models`). config.attack: `names`
(registered attacks, `medinv.inversion.attacks`), `splits` (split points of config.model),
optionally `splits_of` ({attack name: the subset of `splits` it runs at}; an attack not in it
runs at every split), `num_targets`, `figure_targets`, `knows_defense`, `grid_chunk`, and one block per named attack
(`config.attack.<name>`, checked by the attack's registration). config.defense: one block per
registered defense that acts on 'weights' or 'features' (`medinv.defenses`, `ACTS_ON`), each
with a non-empty `strengths` grid of values >= 0 (`defenses.check_block`) and, optionally,
`num_draws` (independent realisations per strength, `medinv.defenses.draws`; an int >= 1,
default 1), a field every defense block may carry beside its registered ones.
"""
from __future__ import annotations

from medinv import defenses
from medinv.defenses import draws
from medinv import models
from medinv.training import trainer
from medinv.inversion import reconstruct
from medinv.inversion import attacks as inversion_attacks

COMMON_ATTACK_FIELDS = ('names', 'splits', 'splits_of', 'num_targets', 'figure_targets',
                        'knows_defense', 'grid_chunk')
COMMON_DEFENSE_FIELDS = ('num_draws',)
ACTS_ON = ('weights', 'features')  # the registered defenses model inversion runs


def _check_attacks(attack) -> None:
  registered = sorted(inversion_attacks.ATTACKS)
  names = tuple(attack.names)
  unknown = [name for name in names if name not in inversion_attacks.ATTACKS]
  if unknown or not names:
    raise ValueError(f'attack.names {names}: unknown {unknown}; registered: {registered}')
  blocks = [key for key in attack.keys() if key not in COMMON_ATTACK_FIELDS]
  for name in blocks:
    if name not in inversion_attacks.ATTACKS:
      raise ValueError(f'attack.{name} is neither a setting ({", ".join(COMMON_ATTACK_FIELDS)})'
                       f' nor a registered attack ({", ".join(registered)})')
  for name in names:
    if name not in attack:
      raise ValueError(f'attack.{name}: the config has no settings block for this attack '
                       f'(inversion_attacks.config_block({name!r}) gives the defaults)')
    inversion_attacks.get(name).check(attack[name])


def _check_defenses(defense) -> None:
  if not list(defense.keys()):
    raise ValueError('config.defense has no defense block; e.g. defense.model_perturbation '
                     '(strengths (0.0,) for no defense)')
  for name in defense.keys():
    defenses.applicable(name, ACTS_ON, f'defense.{name}', 'model inversion')
    defenses.check_block(name, defense[name], COMMON_DEFENSE_FIELDS)
    draws.check(name, defense[name])


def validate(config) -> None:
  """Raises ValueError naming the field for every config error."""
  trainer.validate(config)
  models.require_split_points(config.model, 'config.model', 'model inversion')
  attack = config.attack
  _check_attacks(attack)
  _check_defenses(config.defense)
  if not attack.splits:
    raise ValueError('attack.splits is empty')
  for split in attack.splits:
    models.split_layer(config.model, split, f'every entry of attack.splits {tuple(attack.splits)}')
  if not attack.knows_defense or any(not isinstance(k, bool) for k in attack.knows_defense):
    raise ValueError(f'attack.knows_defense must be a non-empty tuple of bools, got '
                     f'{attack.knows_defense}')
  reconstruct.check_positive('attack.num_targets', attack.num_targets)
  if not 0 < attack.figure_targets <= attack.num_targets:
    raise ValueError(f'attack.figure_targets must be in 1..num_targets ({attack.num_targets}), '
                     f'got {attack.figure_targets}')
  for name, splits in attack.get('splits_of', {}).items():
    if name not in attack.names or not splits or set(splits) - set(attack.splits):
      raise ValueError(f'attack.splits_of.{name}: {tuple(splits)} must name an attack of '
                       f'attack.names {tuple(attack.names)} and a non-empty subset of '
                       f'attack.splits {tuple(attack.splits)}')
  if attack.grid_chunk < 0:
    raise ValueError(f'attack.grid_chunk must be >= 0, got {attack.grid_chunk}')
