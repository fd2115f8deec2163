"""Membership-inference scores: AUC, best-threshold balanced accuracy, TPR at given FPRs and
ROC points from per-record scores (higher = member) and true membership, and a stratified
bootstrap over records (members and non-members resampled apart) for their intervals
(`intervals.percentile_interval`, `intervals.selection_interval`). All pure jax.numpy.

Every function takes an optional mask (N,): only records where it is True count (a subgroup
evaluated at the full array's shape, so every subgroup shares one compiled program).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _prepared(scores, labels, mask):
  scores = jnp.asarray(scores, jnp.float32)
  labels = jnp.asarray(labels).astype(bool)
  mask = jnp.ones(scores.shape, bool) if mask is None else jnp.asarray(mask).astype(bool)
  return scores, labels, mask


def _counts_at_scores(scores: jax.Array, labels: jax.Array, mask=None):
  """(tp, fp, positives, negatives, mask): counted records with score >= scores[i], per i."""
  scores, labels, mask = _prepared(scores, labels, mask)
  n = scores.shape[0]
  pos_sorted = jnp.sort(jnp.where(labels & mask, scores, -jnp.inf))
  neg_sorted = jnp.sort(jnp.where(~labels & mask, scores, -jnp.inf))
  tp = n - jnp.searchsorted(pos_sorted, scores, side='left')
  fp = n - jnp.searchsorted(neg_sorted, scores, side='left')
  positives = jnp.sum(labels & mask)
  return tp, fp, positives, jnp.sum(~labels & mask), mask


def auc(scores: jax.Array, labels: jax.Array, mask=None) -> jax.Array:
  """Area under the ROC curve: P(member score > non-member score) + P(tie) / 2.

  The Mann-Whitney statistic from average ranks (ties share their mean rank); scores finite.
  """
  scores, labels, mask = _prepared(scores, labels, mask)
  ordered = jnp.sort(jnp.where(mask, scores, jnp.inf))  # uncounted records rank last
  ranks = (jnp.searchsorted(ordered, scores, side='left')
           + jnp.searchsorted(ordered, scores, side='right') + 1) / 2.0
  positives = jnp.sum(labels & mask)
  negatives = jnp.sum(mask) - positives
  rank_sum = jnp.sum(jnp.where(labels & mask, ranks, 0.0))
  return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def tpr_at_fpr(scores: jax.Array, labels: jax.Array, fprs, mask=None) -> jax.Array:
  """(F,) best TPR over thresholds whose FPR is at most each of fprs (0 where none is).

  Where fpr * non-members < 1 the only such thresholds admit no false positive: the value is
  the TPR at zero false positives (`fpr_records` says when).
  """
  tp, fp, positives, negatives, mask = _counts_at_scores(scores, labels, mask)
  allowed = (fp[None, :] <= jnp.asarray(fprs, jnp.float32)[:, None] * negatives + 1e-6) & mask
  return jnp.max(jnp.where(allowed, (tp / positives)[None, :], 0.0), axis=1)


def balanced_accuracy(scores: jax.Array, labels: jax.Array, mask=None) -> jax.Array:
  """Best balanced accuracy (TPR + TNR) / 2 over thresholds (0.5 for a useless score)."""
  tp, fp, positives, negatives, mask = _counts_at_scores(scores, labels, mask)
  balanced = jnp.where(mask, (tp / positives + 1.0 - fp / negatives) / 2.0, 0.0)
  return jnp.maximum(0.5, jnp.max(balanced))


def roc_points(scores, labels) -> tuple[np.ndarray, np.ndarray]:
  """(fpr, tpr) host arrays of the ROC curve, from (0, 0) to (1, 1), FPR ascending."""
  tp, fp, positives, negatives, _ = jax.device_get(_counts_at_scores(scores, labels))
  points = np.unique(np.stack([fp / negatives, tp / positives], axis=1), axis=0)
  points = np.concatenate([[[0.0, 0.0]], points, [[1.0, 1.0]]])
  return points[:, 0], points[:, 1]


def fpr_records(fprs, num_nonmembers: int) -> list[float]:
  """How many non-member records each FPR allows as false positives (< 1: below one record)."""
  return [float(fpr) * num_nonmembers for fpr in fprs]


def membership_summary(scores: jax.Array, labels: jax.Array, fprs,
                       mask=None) -> dict[str, jax.Array]:
  """{'auc': (), 'balanced_accuracy': (), 'tpr_at_fpr': (F,)} of one attack's scores."""
  return {'auc': auc(scores, labels, mask),
          'balanced_accuracy': balanced_accuracy(scores, labels, mask),
          'tpr_at_fpr': tpr_at_fpr(scores, labels, fprs, mask)}


def stratified_resample(key: jax.Array, labels: jax.Array, mask=None
                        ) -> tuple[jax.Array, jax.Array]:
  """One stratified resample of the counted records: members and non-members apart.

  Positions 0..m-1 hold m draws, uniform with replacement, from the m counted members;
  positions m..m+n-1 hold n draws from the n counted non-members; the rest are not counted.

  Args:
    key: the resample's key.
    labels: (N,) membership.
    mask: (N,) the counted records (None: all).

  Returns:
    (index (N,) into the records, counted (N,) bool: the positions that form the resample).
  """
  _, labels, mask = _prepared(jnp.zeros(jnp.shape(labels)), labels, mask)
  n = labels.shape[0]
  members, nonmembers = labels & mask, ~labels & mask
  num_members, counted = jnp.sum(members), jnp.sum(mask)

  def draw(group_key, group, size):  # the group's records first (stable), then uniform draws
    order = jnp.argsort(~group, stable=True)
    return order[jax.random.randint(group_key, (n,), 0, jnp.maximum(size, 1))]
  member_key, nonmember_key = jax.random.split(key)
  position = jnp.arange(n)
  index = jnp.where(position < num_members, draw(member_key, members, num_members),
                    draw(nonmember_key, nonmembers, counted - num_members))
  return index, position < counted


def bootstrap(key: jax.Array, scores: jax.Array, labels: jax.Array, fprs, num_samples: int,
              mask=None) -> dict[str, jax.Array]:
  """`membership_summary` on num_samples stratified resamples of the (counted) records.

  Resample b (`stratified_resample` with fold_in(key, b)) keeps the member and non-member
  counts: the members are resampled among the members, the non-members among the
  non-members, so every resample has both. The resamples depend on key, labels and mask
  only: attacks scored on the same records with the same key share them (paired), which the
  strongest attack's interval needs (`intervals.selection_interval`).
  """
  scores, labels, mask = _prepared(scores, labels, mask)

  def one(b):
    index, counted = stratified_resample(jax.random.fold_in(key, b), labels, mask)
    return membership_summary(scores[index], labels[index], fprs, counted)

  return jax.vmap(one)(jnp.arange(num_samples))  # vectorise the resamples
