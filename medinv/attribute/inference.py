"""Attribute inference attacks on clinical-record models: the building blocks.

Threat model: a patient's record x = (x_1..x_(d-1), x_d) may have trained the target model.
The attacker knows x_1..x_(d-1), what the deployment released for x (a label or a
probability vector), the prior of the sensitive attribute x_d, and can query the model
through the same release channel. It wants x_d, one of k candidate values.

  map_attack       Fredrikson et al. 2014: argmax_v prior(v) * P(release | x with x_d = v),
                   the likelihood either the release channel's (pi(released | predicted),
                   'confusion') or the model's own confusion matrix as Fredrikson et al.
                   weight it (P(prediction | true label), 'model_confusion').
  learned_attack   as the Adversarial Robustness Toolbox's AttributeInferenceBlackBox: a
                   classifier from (known attributes, release) to x_d, trained on auxiliary
                   records that are never the targets.
  baselines        the same classifier without the release (the imputation baseline: the
                   sensitive value imputed from the other attributes, trained on the same
                   auxiliary records), and the prior-only guess (the majority value). An
                   attack's advantage is its score minus the imputation baseline's (and,
                   for accuracy, minus the best baseline's too).

The MAP attack's likelihoods are scoring rules registered by name in LIKELIHOODS, each
`(views, released_label, ctx) -> log-likelihood (n, k)`, where views (n, k, C) is what the
channel reveals about the candidate queries; adding a rule is one function plus one line.

The attacks as registered components (MAP, learned, the baselines, and any added later) are
in medinv.attribute.attacks; the evaluation every experiment runs is in
medinv.attribute.evaluation.
Every function here is pure and jit-able; randomness comes from explicit keys.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import flax
import jax
import jax.numpy as jnp
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
  """pi[i, j] = P(released label j | model predicted i), add-`smoothing` rows, each sums to 1.

  Any pair of labels works: (true labels, model predictions) gives the model's confusion
  matrix P(prediction j | true label i) of Fredrikson et al.
  """
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


def model_confusion_likelihood(views, released_label, ctx):
  """Fredrikson et al. 2014: pi_model(true label, candidate's predicted label), the model's
  confusion matrix P(prediction | true label) (ctx['model_confusion'], measured on the
  attacker's auxiliary records); the released label stands in for the record's label, which
  their attacker knows. It forgives a candidate whose prediction misses the label as often as
  the model errs, where 'confusion' forgives it as often as the channel flips."""
  return jnp.log(ctx['model_confusion'][released_label[:, None], jnp.argmax(views, -1)])


def probability_likelihood(views, released_label, ctx):
  """The candidate's released probability of the released label (floored at ctx['eps'])."""
  index = jnp.broadcast_to(released_label[:, None, None], views.shape[:2] + (1,))
  return jnp.log(jnp.maximum(jnp.take_along_axis(views, index, -1)[..., 0], ctx['eps']))


LIKELIHOODS: dict[str, Callable] = {
    'indicator': indicator_likelihood,
    'confusion': confusion_likelihood,
    'model_confusion': model_confusion_likelihood,
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
               confusion: jax.Array | None = None, model_confusion: jax.Array | None = None,
               eps: float = 1e-3) -> jax.Array:
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
    model_confusion: (C, C) P(prediction | true label) for the 'model_confusion' variant.
    eps: likelihood of a mismatch ('indicator') and floor of a probability ('probability').

  Returns:
    (n,) int32 index into `candidates` of each record's MAP guess (ties go to the first).
  """
  queries = candidate_inputs(features, column, candidates)
  n, k, d = queries.shape
  views = view_fn(view_params, queries.reshape(n * k, d)).reshape(n, k, -1)
  scores = map_scores(views, released_label, prior, variant=variant,
                      ctx={'confusion': confusion, 'model_confusion': model_confusion,
                           'eps': eps})
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
