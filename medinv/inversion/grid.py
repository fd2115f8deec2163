"""The one grid driver for model inversion: any registered attack x any registered defense.

For one (split, attack, attacker view, defense) the driver builds two pure functions (model:
the target's flax module, split: a `models.Split`, or SplitCNN's 2, 4, 6):
  `prepare_fn`  the attack's strength-independent step (jitted once; a stage of
                medinv.inversion.experiment),
  `attack_fn`   one defense strength -> {variant: reconstructions}: hospital A is deployed
                under the defense (`defenses.get(name).deploy`), answers the targets' queries
                (`defenses.query_each`), and the attack reconstructs them from what it holds.
`accuracy_fn` is whether the deployed model labels each test image right at one strength
({variant: (m,) bool}). `attack_fn` and `accuracy_fn` are per-point functions for
`sharding.map_grid`, whose point is a (strength, draw) pair (`medinv.defenses.draws.points`): it
shards that grid over every device and vmaps each device's share:
`map_grid(fn, draws.points(strengths, num_draws), arrays, prepared)`.
The variants of a defense (e.g. model perturbation's 'fixed' and 'per_query' modes) are a
static loop inside the same program.

`arrays` holds what the attack reads: theta, x_targets, x_aux, y_aux, x_intercepted for an
attack registered with `intercepts` (accuracy: theta, x_test, y_test), and `defense_state`, the output of the defense's fit stage, for a defense
that learns (`defenses.Defense.fit`). Keys: `defense_key` deploys the defense, draw r with
`draws.draw_key(defense_key, r)` (the same key at every strength: draw r of model perturbation
is sigma x one normal draw); `attack_key` is the attack stream, folded with the attack's
registered fold (the same for every draw). `attack_at` / `accuracy_at` are one strength under
one key (medinv.inversion.sweep_rmle and experiments/benchmark.py call them directly).
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from medinv import defenses
from medinv.defenses import draws
from medinv import models
from medinv.inversion import reconstruct
from medinv.inversion import attacks as inversion_attacks


def _context(arrays, *, attack, cfg, model, split, knows_defense, attack_key, num_classes):
  attack = inversion_attacks.get(attack)
  return inversion_attacks.Context(
      model=model, split=split, cfg=cfg, key=jax.random.fold_in(attack_key, attack.fold),
      theta=arrays['theta'], x_targets=arrays['x_targets'], x_aux=arrays['x_aux'],
      y_aux=arrays['y_aux'], num_classes=num_classes, knows_defense=knows_defense)


def _prepare(arrays, **context_kwargs):
  attack = inversion_attacks.get(context_kwargs['attack'])
  return attack.prepare(_context(arrays, **context_kwargs)) if attack.prepare else {}


def attack_at(strength, arrays, prepared, *, defense: str, defense_cfg, defense_key,
              **context_kwargs) -> dict:
  """One strength of `defense`: {variant: the attack's reconstructions of the targets}.

  context_kwargs: attack (a registered name), cfg (its block; fields may be traced values),
  model, split, knows_defense, attack_key, num_classes.
  """
  ctx = _context(arrays, **context_kwargs)
  attack = inversion_attacks.get(context_kwargs['attack'])
  out = {}
  for variant in defenses.get(defense).variants(defense_cfg):
    deployed = defenses.deploy(defense, defense_key, ctx.theta, strength, defense_cfg,
                               split=ctx.split, variant=variant,
                               state=arrays.get('defense_state'))
    features = defenses.query_each(deployed, ctx.edge, ctx.x_targets, reconstruct.TARGET_QUERIES)
    if attack.intercepts:  # Other patients' features, sent under the same deployment.
      ctx = dataclasses.replace(ctx, intercepted=defenses.query_each(
          deployed, ctx.edge, arrays['x_intercepted'], reconstruct.INTERCEPTED_QUERIES))
    held = deployed if ctx.knows_defense else defenses.Deployment(None, ctx.theta)
    out[variant] = attack.attack(ctx, held, features, prepared)
  return out


def attack_at_draw(point, arrays, prepared, *, defense_key, **kwargs) -> dict:
  """`attack_at` at point {'strength', 'draw'}: the draw's own defense key."""
  return attack_at(point['strength'], arrays, prepared,
                   defense_key=draws.draw_key(defense_key, point['draw']), **kwargs)


def accuracy_at(strength, arrays, **kwargs) -> dict:
  """One strength of `defense`: {variant: test accuracy of the deployed model}."""
  return {variant: jnp.mean(correct)
          for variant, correct in correct_at(strength, arrays, **kwargs).items()}


def correct_at(strength, arrays, *, model, split, defense: str, defense_cfg,
               defense_key) -> dict:
  """One strength of `defense`: {variant: (m,) whether the deployed model labels each test
  image right}."""
  edge, cloud = models.edge_fn(model, split), models.cloud_fn(model, split)
  out = {}
  for variant in defenses.get(defense).variants(defense_cfg):
    deployed = defenses.deploy(defense, defense_key, arrays['theta'], strength, defense_cfg,
                               split=split, variant=variant, state=arrays.get('defense_state'))
    logits = defenses.query_each(deployed, edge, arrays['x_test'], reconstruct.EVAL_QUERIES,
                                 cloud)
    out[variant] = jnp.argmax(logits, -1) == arrays['y_test']
  return out


def correct_at_draw(point, arrays, *, defense_key, **kwargs) -> dict:
  """`correct_at` at point {'strength', 'draw'}: the draw's own defense key."""
  return correct_at(point['strength'], arrays,
                    defense_key=draws.draw_key(defense_key, point['draw']), **kwargs)


def prepare_fn(name: str, cfg, *, model, split, knows_defense, attack_key,
               num_classes: int):
  """arrays -> the attack's prepared pytree (jitted; {} when it prepares nothing)."""
  return jax.jit(functools.partial(
      _prepare, attack=name, cfg=cfg, model=model, split=split,
      knows_defense=knows_defense, attack_key=attack_key, num_classes=num_classes))


def attack_fn(name: str, cfg, defense_name: str, defense_cfg, *, model, split,
              knows_defense, defense_key, attack_key, num_classes: int):
  """(point, arrays, prepared) -> {variant: reconstructions}, for `sharding.map_grid` over
  `draws.points` ({'strength', 'draw'}).

  Build it once per program and reuse it: the compiled program is cached on this function.
  """
  return functools.partial(
      attack_at_draw, attack=name, cfg=cfg, defense=defense_name, defense_cfg=defense_cfg,
      defense_key=defense_key,
      model=model, split=split, knows_defense=knows_defense, attack_key=attack_key,
      num_classes=num_classes)


def accuracy_fn(defense_name: str, defense_cfg, *, model, split, defense_key):
  """(point, arrays) -> {variant: (m,) correct labels of the deployed model}, over
  `draws.points`."""
  return functools.partial(correct_at_draw, model=model, split=split, defense=defense_name,
                           defense_cfg=defense_cfg, defense_key=defense_key)
