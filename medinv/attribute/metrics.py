"""Scores of attribute-inference guesses per target group, for imbalanced attributes too.

Accuracy alone flatters a guess on an imbalanced attribute (heart's fbs, cardio's smoke and
alco: the majority value alone is right for 85-95% of patients), so every attack and baseline
is also scored by
  balanced accuracy  the mean over the attribute's values present among the targets of the
                     share of targets with that value guessed right (the recall); the prior's
                     majority guess scores 1 / (number of values present);
  MCC                Matthews correlation, Gorodkin's k-class form (sklearn's
                     matthews_corrcoef): 0 for any constant guess, 1 for a perfect one, and 0
                     where it is undefined (all targets, or all guesses, one value).
All are computed from one per-group confusion count (`group_confusion`), so one jitted program
serves every target group and attribute (the number of candidates is static).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

METRICS = ('accuracy', 'balanced_accuracy', 'mcc')


def group_confusion(guess: jax.Array, truth: jax.Array, member: jax.Array,
                    num_candidates: int) -> jax.Array:
  """counts[g, t, p]: targets of group g (0 members, 1 non-members) with value t guessed p."""
  groups = jnp.stack([member, 1.0 - member]).astype(jnp.float32)
  true = jax.nn.one_hot(truth, num_candidates, dtype=jnp.float32)
  guessed = jax.nn.one_hot(guess, num_candidates, dtype=jnp.float32)
  return jnp.einsum('gn,nt,np->gtp', groups, true, guessed)


def accuracy(counts: jax.Array) -> jax.Array:
  """Share of right guesses per group (nan for an empty group)."""
  return jnp.trace(counts, axis1=-2, axis2=-1) / jnp.sum(counts, (-2, -1))


def balanced_accuracy(counts: jax.Array) -> jax.Array:
  """Mean recall over the values present among the group's targets (nan for an empty group)."""
  support = jnp.sum(counts, -1)
  present = support > 0
  recall = jnp.diagonal(counts, axis1=-2, axis2=-1) / jnp.where(present, support, 1.0)
  return jnp.sum(jnp.where(present, recall, 0.0), -1) / jnp.sum(present, -1)


def mcc(counts: jax.Array) -> jax.Array:
  """Gorodkin's k-class Matthews correlation per group; 0 where undefined, nan if empty."""
  total = jnp.sum(counts, (-2, -1))
  shares = counts / total[..., None, None]  # Shares keep float32 exact enough for 70k rows.
  true, guessed = jnp.sum(shares, -1), jnp.sum(shares, -2)
  right = jnp.trace(shares, axis1=-2, axis2=-1)
  numerator = right - jnp.sum(true * guessed, -1)
  denominator = jnp.sqrt((1.0 - jnp.sum(guessed ** 2, -1)) * (1.0 - jnp.sum(true ** 2, -1)))
  value = numerator / jnp.where(denominator > 0, denominator, 1.0)
  return jnp.where(denominator > 0, value, jnp.where(total > 0, 0.0, jnp.nan))


def group_scores(guess: jax.Array, truth: jax.Array, member: jax.Array,
                 num_candidates: int) -> dict[str, jax.Array]:
  """{metric: [members, non-members]} for every name in METRICS.

  Args:
    guess, truth: (n,) candidate indices guessed and true.
    member: (n,) 1.0 for a member target, 0.0 for a non-member.
    num_candidates: k (static).
  """
  counts = group_confusion(guess, truth, member, num_candidates)
  return {'accuracy': accuracy(counts), 'balanced_accuracy': balanced_accuracy(counts),
          'mcc': mcc(counts)}
