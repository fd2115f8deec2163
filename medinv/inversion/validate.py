"""Every config error of the model-inversion experiment, found before any data or compute.

config.attack: `names` (registered attacks, `medinv.inversion.attacks`), `splits`,
`num_targets`, `figure_targets`, `knows_defense`, `grid_chunk`, and one block per named attack
(`config.attack.<name>`, checked by the attack's registration). config.defense: one block per
registered defense (`medinv.defenses`), each with a non-empty `strengths` grid of values >= 0
and, optionally, `num_draws` (independent realisations per strength, `medinv.defenses.draws`; an int
>= 1, default 1), a field every defense block may carry beside its registered ones.
"""
from __future__ import annotations

from medinv import defenses
from medinv.defenses import draws
from medinv import models
from medinv.training import trainer
from medinv.inversion import reconstruct
from medinv.inversion import attacks as inversion_attacks

COMMON_ATTACK_FIELDS = ('names', 'splits', 'num_targets', 'figure_targets', 'knows_defense',
                        'grid_chunk')
COMMON_DEFENSE_FIELDS = ('num_draws',)


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
    component = defenses.get(name)
    block = defense[name]
    known = set(component.defaults) | set(COMMON_DEFENSE_FIELDS)
    unknown = sorted(set(block.keys()) - known)
    if unknown:
      raise ValueError(f'defense.{name}: unknown fields {unknown}; known: {sorted(known)}')
    draws.check(name, block)
    strengths = tuple(block.strengths)
    if not strengths:
      raise ValueError(f'defense.{name}.strengths is empty (use (0.0,) for no defense)')
    negative = [s for s in strengths if not s >= 0]
    if negative:
      raise ValueError(f'defense.{name}.strengths must be >= 0, got {negative}')
    component.check(block)


def validate(config) -> None:
  """Raises ValueError naming the field for every config error."""
  trainer.validate(config)
  if config.model != 'split_cnn':
    raise ValueError(f'model inversion attacks the SplitCNN; got model {config.model!r}')
  attack = config.attack
  _check_attacks(attack)
  _check_defenses(config.defense)
  if not attack.splits:
    raise ValueError('attack.splits is empty')
  for split in attack.splits:
    models.check_split(split)
  if not attack.knows_defense or any(not isinstance(k, bool) for k in attack.knows_defense):
    raise ValueError(f'attack.knows_defense must be a non-empty tuple of bools, got '
                     f'{attack.knows_defense}')
  reconstruct.check_positive('attack.num_targets', attack.num_targets)
  if not 0 < attack.figure_targets <= attack.num_targets:
    raise ValueError(f'attack.figure_targets must be in 1..num_targets ({attack.num_targets}), '
                     f'got {attack.figure_targets}')
  if attack.grid_chunk < 0:
    raise ValueError(f'attack.grid_chunk must be >= 0, got {attack.grid_chunk}')
