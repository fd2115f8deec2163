"""Attribute inference attacks on clinical-record models, and their registry.

Threat model: a patient's record x = (x_1..x_(d-1), x_d) may have trained the target model.
The attacker knows x_1..x_(d-1), what the deployment released for x (a label or a
probability vector), the prior of the sensitive attribute x_d, and can query the model
through the same release channel. It wants x_d, one of k candidate values.

  map_attack       Fredrikson et al. 2014: argmax_v prior(v) * P(release | x with x_d = v).
  learned_attack   as the Adversarial Robustness Toolbox's AttributeInferenceBlackBox: a
                   classifier from (known attributes, release) to x_d, trained on auxiliary
                   records that are never the targets.
  baselines        the same classifier without the release, and the prior-only guess (the
                   majority value). An attack's advantage is its accuracy minus the best
                   baseline's.

The MAP attack's likelihoods are scoring rules registered by name in LIKELIHOODS, each
`(views, released_label, ctx) -> log-likelihood (n, k)`, where views (n, k, C) is what the
channel reveals about the candidate queries; adding a rule is one function plus one line.

ATTACKS maps a name to an `AttributeAttack`: a `guess(key, obs, cfg, variant)` function
that reads one `Observation` (what the attacker holds under one release draw) and returns
a candidate index per target, its config defaults (fields of config.attack), and whether
it is a no-model baseline. medinv.attacks.attribute_eval runs every configured attack;
adding one is one function plus one `register` call:

    def constant_guess(key, obs, cfg, variant):  # always the cfg.index-th candidate
      return jnp.full(obs.targets.shape[:1], cfg.index, jnp.int32)

    attribute.register('constant', constant_guess, defaults={'index': 0})

Every function here is pure and jit-able; randomness comes from explicit keys.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple, Sequence

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from medinv import models


def candidate_inputs(features: jax.Array, column, candidates: jax.Array) -> jax.Array:
  """Each record with its `column` replaced by every candidate: (n, d) -> (n, k, d).

  `column` may be a traced int (the same program serves every attribute).
  """
  n, d = features.shape
  queries = jnp.broadcast_to(features[:, None, :], (n, candidates.shape[0], d))
  return queries.at[:, :, column].set(candidates[None, :].astype(features.dtype))


def known_attributes(features: jax.Array, column) -> jax.Array:
  """The attacker's knowledge of each record: the sensitive column is zeroed, the rest kept.

  Zeroing instead of dropping keeps the shape (n, d), so `column` may be traced and one
  compiled program serves every attribute with the same number of candidates; a constant
  column carries no information (and `Classifier` standardises it to zero).
  """
  return jnp.where(jnp.arange(features.shape[-1]) == column, 0.0, features)


def attribute_prior(truth: jax.Array, num_candidates: int, smoothing: float = 1.0
                    ) -> jax.Array:
  """Marginal of the sensitive attribute, add-`smoothing` estimated from (auxiliary) records."""
  counts = jnp.bincount(truth, length=num_candidates).astype(jnp.float32) + smoothing
  return counts / jnp.sum(counts)


def confusion_matrix(predicted: jax.Array, released: jax.Array, num_classes: int,
                     smoothing: float = 1.0) -> jax.Array:
  """pi[i, j] = P(released label j | model predicted i), add-`smoothing` rows, each sums to 1."""
  counts = jnp.zeros((num_classes, num_classes), jnp.float32).at[predicted, released].add(1.0)
  counts = counts + smoothing
  return counts / jnp.sum(counts, axis=-1, keepdims=True)


# ---- MAP attack likelihoods: (views (n, k, C), released_label (n,), ctx) -> (n, k) ----

def indicator_likelihood(views, released_label, ctx):
  """1 when the candidate's predicted label equals the released label, else ctx['eps']."""
  match = jnp.argmax(views, -1) == released_label[:, None]
  return jnp.where(match, 0.0, jnp.log(ctx['eps']))


def confusion_likelihood(views, released_label, ctx):
  """pi(released label | candidate's predicted label), Fredrikson et al.'s weighting."""
  return jnp.log(ctx['confusion'][jnp.argmax(views, -1), released_label[:, None]])


def probability_likelihood(views, released_label, ctx):
  """The candidate's released probability of the released label (floored at ctx['eps'])."""
  index = jnp.broadcast_to(released_label[:, None, None], views.shape[:2] + (1,))
  return jnp.log(jnp.maximum(jnp.take_along_axis(views, index, -1)[..., 0], ctx['eps']))


LIKELIHOODS: dict[str, Callable] = {
    'indicator': indicator_likelihood,
    'confusion': confusion_likelihood,
    'probability': probability_likelihood,
}


def map_scores(views: jax.Array, released_label: jax.Array, prior: jax.Array, *,
               variant: str, ctx: dict) -> jax.Array:
  """log prior(v) + log P(release | candidate v), shape (n, k)."""
  if variant not in LIKELIHOODS:
    raise ValueError(f'unknown MAP likelihood {variant!r}; known: {sorted(LIKELIHOODS)}')
  return jnp.log(prior)[None, :] + LIKELIHOODS[variant](views, released_label, ctx)


@functools.partial(jax.jit, static_argnames=('view_fn', 'variant'))
def map_attack(view_fn: Callable[[Any, jax.Array], jax.Array], view_params: Any,
               features: jax.Array, released_label: jax.Array, prior: jax.Array,
               candidates: jax.Array, *, column, variant: str,
               confusion: jax.Array | None = None, eps: float = 1e-3) -> jax.Array:
  """The MAP attack on n target records at once (records x candidates in one program).

  Args:
    view_fn: (view_params, raw records (m, d)) -> what the release channel reveals for a
      query of each record (m, C): a one-hot label for label releases, a probability vector
      otherwise. A pure function (hashable; static under jit).
    view_params: pytree view_fn reads (the deployed model's parameters and scaler).
    features: the targets' raw records (n, d); their `column` is overwritten, never read.
    released_label: (n,) the label the deployment released for each target.
    prior: (k,) prior of the sensitive attribute over the candidates.
    candidates: (k,) raw values substituted into `column`.
    column: index of the sensitive attribute (an int, possibly traced).
    variant: a key of LIKELIHOODS.
    confusion: (C, C) pi(released | predicted) for the 'confusion' variant.
    eps: likelihood of a mismatch ('indicator') and floor of a probability ('probability').

  Returns:
    (n,) int32 index into `candidates` of each record's MAP guess (ties go to the first).
  """
  queries = candidate_inputs(features, column, candidates)
  n, k, d = queries.shape
  views = view_fn(view_params, queries.reshape(n * k, d)).reshape(n, k, -1)
  scores = map_scores(views, released_label, prior, variant=variant,
                      ctx={'confusion': confusion, 'eps': eps})
  return jnp.argmax(scores, -1).astype(jnp.int32)


# ---- Learned attacks: a small classifier trained with optax inside lax.scan ----

class Classifier(flax.struct.PyTreeNode):
  """An MLP on standardised inputs (hidden=() is softmax regression)."""
  params: Any
  mean: jax.Array
  std: jax.Array
  num_classes: int = flax.struct.field(pytree_node=False)
  hidden: tuple[int, ...] = flax.struct.field(pytree_node=False)

  def logits(self, inputs: jax.Array) -> jax.Array:
    model = models.MLP(self.num_classes, hidden=self.hidden)
    return model.apply({'params': self.params}, (inputs - self.mean) / self.std)

  def predict(self, inputs: jax.Array) -> jax.Array:
    return jnp.argmax(self.logits(inputs), -1).astype(jnp.int32)


def train_classifier(key: jax.Array, inputs: jax.Array, labels: jax.Array, num_classes: int,
                     *, hidden: Sequence[int] = (32,), steps: int = 300,
                     learning_rate: float = 1e-2, weight_decay: float = 1e-4) -> Classifier:
  """Full-batch AdamW on cross-entropy for `steps` steps, as one `lax.scan`."""
  hidden = tuple(hidden)
  std = jnp.std(inputs, axis=0)
  classifier = Classifier(params=None, mean=jnp.mean(inputs, axis=0),
                          std=jnp.where(std > 0, std, 1.0), num_classes=num_classes,
                          hidden=hidden)
  model = models.MLP(num_classes, hidden=hidden)
  params = model.init(key, inputs[:1])['params']
  tx = optax.adamw(learning_rate, weight_decay=weight_decay)

  def loss_fn(params):
    logits = classifier.replace(params=params).logits(inputs)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))

  def step(carry, _):
    params, opt_state = carry
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), None, length=steps)
  return classifier.replace(params=params)


def learned_attack(key: jax.Array, aux_known: jax.Array, aux_released: jax.Array,
                   aux_truth: jax.Array, target_known: jax.Array, target_released: jax.Array,
                   num_candidates: int, **classifier_kwargs) -> jax.Array:
  """Black-box attack: learns x_d from (known attributes, release) on auxiliary records.

  Args:
    key: initialises the classifier.
    aux_known, aux_released, aux_truth: the attacker's own records (never the targets): known
      attributes (m, d') (see `known_attributes`), the channel's release for each (m, C),
      the sensitive value's candidate index (m,).
    target_known, target_released: the same for the targets, (n, d') and (n, C).
    num_candidates: k.
    **classifier_kwargs: passed to `train_classifier`.

  Returns:
    (n,) int32 candidate index guessed for each target.
  """
  classifier = train_classifier(key, jnp.concatenate([aux_known, aux_released], -1),
                                aux_truth, num_candidates, **classifier_kwargs)
  return classifier.predict(jnp.concatenate([target_known, target_released], -1))


# ---- The registry: what every attack reads, and the registered attacks ----

class Observation(flax.struct.PyTreeNode):
  """What the attacker holds about one sensitive attribute under one release draw.

  targets (n, d): the targets' raw records (the sensitive column is there; attacks read it
    only through `known_attributes` / `candidate_inputs`, which overwrite it).
  target_vector (n, C), target_label (n,): what the deployment released for each target.
  aux (m, d), aux_vector (m, C), aux_truth (m,): the attacker's own records, the channel's
    release for each, their sensitive value's candidate index.
  prior (k,), candidates (k,), column: the sensitive attribute (see `map_attack`).
  confusion (C, C): pi(released | predicted), measured on the deployment's training records.
  view_params, view_fn: the candidate view (see `map_attack`); view_fn is static.
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
  view_params: Any = None
  view_fn: Callable | None = flax.struct.field(pytree_node=False, default=None)


@dataclasses.dataclass(frozen=True)
class AttributeAttack:
  """A registered attribute-inference attack.

  guess(key, obs, cfg, variant) -> (n,) int32 candidate index per target; key is the
    draw's attack key (the learned attack uses it as is; fold in a constant for another
    stream), cfg a FrozenConfigDict of `defaults` overridden by config.attack's fields.
  variants(cfg) -> the variants it runs (the rows' 'variant'), e.g. MAP's likelihoods.
  baseline: True for a no-model baseline: it reads no release, runs once per attribute,
    and its accuracy is the rows' `column` (and enters best_baseline_accuracy).
  check(cfg, release): raises ValueError for a bad config (release: defense.release).
  """
  name: str
  guess: Callable[..., jax.Array]
  defaults: dict
  variants: Callable[[Any], tuple[str, ...]]
  baseline: bool = False
  column: str = ''
  check: Callable[[Any, str], None] = lambda cfg, release: None


ATTACKS: dict[str, AttributeAttack] = {}


def register(name: str, guess: Callable[..., jax.Array], *, defaults: dict | None = None,
             variants: Callable[[Any], tuple[str, ...]] | None = None, baseline: bool = False,
             column: str = '', check: Callable[[Any, str], None] | None = None,
             replace: bool = False) -> AttributeAttack:
  """Registers an attribute-inference attack under `name` (see `AttributeAttack`).

  variants defaults to one unnamed variant (''); a baseline's column to f'{name}_accuracy'.
  """
  if name in ATTACKS and not replace:
    raise ValueError(f'attribute attack {name!r} is already registered (pass replace=True)')
  attack = AttributeAttack(name, guess, dict(defaults or {}), variants or (lambda cfg: ('',)),
                           baseline, column or (f'{name}_accuracy' if baseline else ''),
                           check or (lambda cfg, release: None))
  ATTACKS[name] = attack
  return attack


def get(name: str) -> AttributeAttack:
  if name not in ATTACKS:
    raise ValueError(f'unknown attribute attack {name!r}; registered: {sorted(ATTACKS)}')
  return ATTACKS[name]


class Configured(NamedTuple):
  """One (attack, variant) to run, with its resolved config: hashable, so static."""
  name: str
  variant: str
  guess: Callable[..., jax.Array]
  cfg: ml_collections.FrozenConfigDict


def attack_cfg(attack_config, name: str) -> ml_collections.FrozenConfigDict:
  """Attack `name`'s defaults, each overridden by attack_config's field of the same name."""
  return ml_collections.FrozenConfigDict(
      {field: attack_config.get(field, default)
       for field, default in get(name).defaults.items()})


def configure(attack_config, names: Sequence[str]) -> tuple[Configured, ...]:
  """Each named attack's variants, with its `attack_cfg`."""
  runs = []
  for name in names:
    attack, cfg = get(name), attack_cfg(attack_config, name)
    runs += [Configured(name, variant, attack.guess, cfg) for variant in attack.variants(cfg)]
  return tuple(runs)


def _classifier_kwargs(cfg) -> dict:
  return dict(hidden=tuple(cfg.hidden), steps=cfg.steps, learning_rate=cfg.learning_rate,
              weight_decay=cfg.weight_decay)


def map_guess(key, obs: Observation, cfg, variant: str) -> jax.Array:
  """The MAP attack with likelihood `variant`, on the targets' released labels."""
  del key
  return map_attack(obs.view_fn, obs.view_params, obs.targets, obs.target_label, obs.prior,
                    obs.candidates, column=obs.column, variant=variant,
                    confusion=obs.confusion, eps=cfg.eps)


def learned_guess(key, obs: Observation, cfg, variant: str) -> jax.Array:
  """The learned black-box attack on (known attributes, released vector)."""
  del variant
  return learned_attack(key, known_attributes(obs.aux, obs.column), obs.aux_vector,
                        obs.aux_truth, known_attributes(obs.targets, obs.column),
                        obs.target_vector, obs.candidates.shape[0], **_classifier_kwargs(cfg))


def prior_guess(key, obs: Observation, cfg, variant: str) -> jax.Array:
  """No model: the prior's most likely value for every target."""
  del key, cfg, variant
  return jnp.full(obs.targets.shape[:1], jnp.argmax(obs.prior), jnp.int32)


def classifier_guess(key, obs: Observation, cfg, variant: str) -> jax.Array:
  """No model: a classifier from the known attributes, trained on the auxiliary records."""
  del variant
  classifier = train_classifier(key, known_attributes(obs.aux, obs.column), obs.aux_truth,
                                obs.prior.shape[0], **_classifier_kwargs(cfg))
  return classifier.predict(known_attributes(obs.targets, obs.column))


def _check_map(cfg, release: str) -> None:
  for variant in cfg.map_variants:
    if variant not in LIKELIHOODS:
      raise ValueError(f'unknown MAP likelihood {variant!r}; known: {sorted(LIKELIHOODS)}')
    if variant == 'probability' and release == 'label':
      raise ValueError("MAP likelihood 'probability' needs a probability release ('probs', "
                       "'rounded' or 'noisy_probs'); the release is 'label'")
  if not 0.0 < cfg.eps < 1.0:
    raise ValueError(f'attack.eps must be in (0, 1), got {cfg.eps}')


def _check_classifier(cfg, release: str) -> None:
  del release
  if cfg.steps <= 0:
    raise ValueError(f'attack.steps must be positive, got {cfg.steps}')


CLASSIFIER_DEFAULTS = {'hidden': (32,), 'steps': 300, 'learning_rate': 1e-2,
                       'weight_decay': 1e-4}

register('map', map_guess, defaults={'map_variants': ('indicator', 'confusion'), 'eps': 1e-3},
         variants=lambda cfg: tuple(cfg.map_variants), check=_check_map)
register('learned', learned_guess, defaults=CLASSIFIER_DEFAULTS,
         variants=lambda cfg: ('black_box',), check=_check_classifier)
register('prior', prior_guess, baseline=True, column='prior_accuracy')
register('classifier', classifier_guess, defaults=CLASSIFIER_DEFAULTS, baseline=True,
         column='baseline_classifier_accuracy', check=_check_classifier)
