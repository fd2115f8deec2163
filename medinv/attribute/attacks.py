"""Attribute-inference attacks as registered components.

ATTACKS maps a name to an `AttributeAttack`: a `guess(key, obs, cfg, variant)` function that
reads one `Observation` (what the attacker holds about one sensitive attribute under one
release draw) and returns a candidate index per target; its config defaults (the block
`config.attack.<name>`); the variants it runs (MAP: one per likelihood, `variants` in its
block, each a key of attribute.LIKELIHOODS); and whether it is a no-model baseline (reads no
release; its accuracy is a column of every row). `config.attack.names` says which run;
medinv.attribute.evaluation runs them, the same way for medinv.attribute.experiment and
medinv.attribute.population.

Registered here: 'map' (Fredrikson et al.'s MAP, one variant per likelihood), 'learned'
(a classifier on (known attributes, release)), and the baselines 'prior' (majority value)
and 'classifier' (known attributes only: the imputation baseline, IMPUTATION, every
advantage is measured against). Adding an attack is one function plus one
`register` call, e.g. from a test module:

    def constant_guess(key, obs, cfg, variant):  # always the cfg.index-th candidate
      return jnp.full(obs.targets.shape[:1], cfg.index, jnp.int32)

    attribute_attacks.register('constant', constant_guess, defaults={'index': 0})

and `config.attack.names += ('constant',)`; `config.attack.constant` (optional) overrides
its defaults. Adding a MAP likelihood is one function plus one line in
attribute.LIKELIHOODS, then naming it in `config.attack.map.variants`.
"""
from __future__ import annotations

import dataclasses
import zlib
from typing import Any, Callable, NamedTuple, Sequence

import flax
import jax
import jax.numpy as jnp
import ml_collections

from medinv.core import registry
from medinv.attribute import inference as attribute


class Observation(flax.struct.PyTreeNode):
  """What the attacker holds about one sensitive attribute under one release draw.

  targets (n, d): the targets' raw records (the sensitive column is there; attacks read it
    only through `known_attributes` / `candidate_inputs`, which overwrite it).
  target_vector (n, C), target_label (n,): what the deployment released for each target.
  aux (m, d), aux_vector (m, C), aux_truth (m,): the attacker's own records, the channel's
    release for each, their sensitive value's candidate index.
  prior (k,), candidates (k,), column: the sensitive attribute (see `attribute.map_attack`).
  confusion (C, C): pi(released | predicted), measured on the deployment's training records.
  model_confusion (C, C): the model's P(prediction | true label), measured on the auxiliary
    records (their labels and the model's predictions for them).
  view_params, view_fn: the candidate view (see `attribute.map_attack`); view_fn is static.
  A no-model baseline's Observation has None for every release field.
  """
  targets: jax.Array
  aux: jax.Array
  aux_truth: jax.Array
  prior: jax.Array
  candidates: jax.Array
  column: Any
  target_vector: Any = None
  target_label: Any = None
  aux_vector: Any = None
  confusion: Any = None
  model_confusion: Any = None
  view_params: Any = None
  view_fn: Callable | None = flax.struct.field(pytree_node=False, default=None)


@dataclasses.dataclass(frozen=True)
class AttributeAttack:
  """A registered attribute-inference attack.

  guess(key, obs, cfg, variant) -> (n,) int32 candidate index per target; cfg is its
    `config.attack.<name>` block over `defaults` (a FrozenConfigDict).
  variants(cfg) -> the variants it runs (the rows' 'variant'), e.g. MAP's likelihoods.
  baseline: True for a no-model baseline: it reads no release, runs once per attribute,
    and its accuracy is the rows' `column` (and enters best_baseline_accuracy).
  fold: its key is fold_in(draw's attack key, fold) (a baseline: of the attribute's baseline
    key); None uses that key as is (the built-in attacks, whose numbers predate the registry).
  check(cfg, release): raises ValueError for a bad block (release: config.defense.release).
  """
  name: str
  guess: Callable[..., jax.Array]
  defaults: dict
  variants: Callable[[Any], tuple[str, ...]]
  baseline: bool = False
  column: str = ''
  fold: int | None = None
  check: Callable[[Any, str], None] = lambda cfg, release: None


ATTACKS = registry.Registry('attribute attack')


def register(name: str, guess: Callable[..., jax.Array], *, defaults: dict | None = None,
             variants: Callable[[Any], tuple[str, ...]] | None = None, baseline: bool = False,
             column: str = '', fold: int | None = -1,
             check: Callable[[Any, str], None] | None = None,
             replace: bool = False) -> AttributeAttack:
  """Registers an attribute-inference attack under `name` (see `AttributeAttack`).

  variants defaults to one unnamed variant (''); a baseline's column to f'{name}_accuracy';
  fold (-1) to a stable hash of the name, so each attack draws from its own stream.
  """
  fold = 16 + zlib.crc32(name.encode()) % (1 << 20) if fold == -1 else fold
  attack = AttributeAttack(name, guess, dict(defaults or {}), variants or (lambda cfg: ('',)),
                           baseline, column or (f'{name}_accuracy' if baseline else ''), fold,
                           check or (lambda cfg, release: None))
  return ATTACKS.add(name, attack, replace=replace)


get = ATTACKS.find
config_block = ATTACKS.config_block  # an attack's block: its defaults with overrides


def attack_cfg(attack_config, name: str) -> ml_collections.FrozenConfigDict:
  """Attack `name`'s defaults overridden by its block `attack_config.<name>` (if any)."""
  return ATTACKS.resolve(attack_config, name)


class Configured(NamedTuple):
  """One (attack, variant) to run, with its resolved config: hashable, so static."""
  name: str
  variant: str
  guess: Callable[..., jax.Array]
  cfg: ml_collections.FrozenConfigDict
  fold: int | None

  def __call__(self, key: jax.Array, obs: Observation) -> jax.Array:
    """The guesses (n,) from the draw's key (folded by `fold`) and the observation."""
    key = key if self.fold is None else jax.random.fold_in(key, self.fold)
    return self.guess(key, obs, self.cfg, self.variant)


def configure(attack_config, names: Sequence[str]) -> tuple[Configured, ...]:
  """Each named attack's variants, with its `attack_cfg`."""
  runs = []
  for name in names:
    attack, cfg = get(name), attack_cfg(attack_config, name)
    runs += [Configured(name, variant, attack.guess, cfg, attack.fold)
             for variant in attack.variants(cfg)]
  return tuple(runs)


# ----------------------------------------------------------------------------- the attacks

def _classifier_kwargs(cfg) -> dict:
  return dict(hidden=tuple(cfg.hidden), steps=cfg.steps, learning_rate=cfg.learning_rate,
              weight_decay=cfg.weight_decay)


def map_guess(key, obs: Observation, cfg, variant: str) -> jax.Array:
  """The MAP attack with likelihood `variant`, on the targets' released labels."""
  del key
  return attribute.map_attack(obs.view_fn, obs.view_params, obs.targets, obs.target_label,
                              obs.prior, obs.candidates, column=obs.column, variant=variant,
                              confusion=obs.confusion, model_confusion=obs.model_confusion,
                              eps=cfg.eps)


def learned_guess(key, obs: Observation, cfg, variant: str) -> jax.Array:
  """The learned black-box attack on (known attributes, released vector)."""
  del variant
  return attribute.learned_attack(
      key, attribute.known_attributes(obs.aux, obs.column), obs.aux_vector, obs.aux_truth,
      attribute.known_attributes(obs.targets, obs.column), obs.target_vector,
      obs.candidates.shape[0], **_classifier_kwargs(cfg))


def prior_guess(key, obs: Observation, cfg, variant: str) -> jax.Array:
  """No model: the prior's most likely value for every target."""
  del key, cfg, variant
  return jnp.full(obs.targets.shape[:1], jnp.argmax(obs.prior), jnp.int32)


def classifier_guess(key, obs: Observation, cfg, variant: str) -> jax.Array:
  """No model: a classifier from the known attributes, trained on the auxiliary records."""
  del variant
  classifier = attribute.train_classifier(
      key, attribute.known_attributes(obs.aux, obs.column), obs.aux_truth, obs.prior.shape[0],
      **_classifier_kwargs(cfg))
  return classifier.predict(attribute.known_attributes(obs.targets, obs.column))


def _check_map(cfg, release: str) -> None:
  for variant in cfg.variants:
    if variant not in attribute.LIKELIHOODS:
      raise ValueError(f'unknown MAP likelihood {variant!r}; known: '
                       f'{sorted(attribute.LIKELIHOODS)}')
    if variant == 'probability' and release == 'label':
      raise ValueError("MAP likelihood 'probability' needs a probability release ('probs', "
                       "'rounded' or 'noisy_probs'); the release is 'label'")
  if not 0.0 < cfg.eps < 1.0:
    raise ValueError(f'attack.map.eps must be in (0, 1), got {cfg.eps}')


def _check_classifier(name: str) -> Callable[[Any, str], None]:
  def check(cfg, release: str) -> None:
    del release
    if cfg.steps <= 0:
      raise ValueError(f'attack.{name}.steps must be positive, got {cfg.steps}')
  return check


IMPUTATION = 'classifier'  # The baseline every advantage is measured against.
CLASSIFIER_DEFAULTS = {'hidden': (32,), 'steps': 300, 'learning_rate': 1e-2,
                       'weight_decay': 1e-4}

register('map', map_guess, defaults={'variants': ('indicator', 'confusion'), 'eps': 1e-3},
         variants=lambda cfg: tuple(cfg.variants), fold=None, check=_check_map)
register('learned', learned_guess, defaults=CLASSIFIER_DEFAULTS,
         variants=lambda cfg: ('black_box',), fold=None, check=_check_classifier('learned'))
register('prior', prior_guess, baseline=True, column='prior_accuracy', fold=None)
register('classifier', classifier_guess, defaults=CLASSIFIER_DEFAULTS, baseline=True,
         column='baseline_classifier_accuracy', fold=None,
         check=_check_classifier('classifier'))
