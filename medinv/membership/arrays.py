"""Membership inference on arrays a user brings (a model trained in any framework): the
checks, and the attacker's measurements from logits or losses. `medinv.api.score_membership`
runs the registered attacks on them through the same code as the train-shadows path."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from medinv.membership import attacks as membership_attacks


def _check_finite(name: str, array: np.ndarray) -> None:
  if not np.all(np.isfinite(array)):
    bad = np.argwhere(~np.isfinite(array))[0]
    raise ValueError(f'{name} holds NaN or inf (first at index {tuple(int(i) for i in bad)})')


def _phi_from_loss(loss: np.ndarray) -> np.ndarray:
  """phi = log(p / (1 - p)) of the true label from the cross-entropy loss = -log p."""
  loss = np.maximum(loss.astype(np.float64), 1e-12)
  return (-loss - np.log(-np.expm1(-loss))).astype(np.float32)


def measurements(labels, logits=None, loss=None) -> dict:
  """{'phi' (M, N, 1), 'loss' (M, N), 'correct' (M, N, 1) or None} for M models."""
  if logits is not None:
    out = jax.vmap(lambda one: membership_attacks.measurements(one[None], jnp.asarray(labels)))(
        jnp.asarray(logits, jnp.float32))
    return jax.device_get(out)
  return {'phi': _phi_from_loss(loss)[..., None], 'loss': loss.astype(np.float32),
          'correct': None}


def check_scores(labels, membership, target_logits=None, shadow_logits=None,
                 target_loss=None, shadow_loss=None) -> tuple[int, int]:
  """Checks the arrays of `score_membership`; returns (num_shadows, num_records).

  Raises:
    ValueError: one line naming the argument: lengths that differ, NaN or inf, logits that
      are not (records, classes), a label outside the classes, a membership matrix that is not
      0/1 of shape (1 + shadows, records), or a record IN (or OUT) for every shadow.
  """
  labels = np.asarray(labels)
  membership = np.asarray(membership)
  if (target_logits is None) == (target_loss is None):
    raise ValueError('pass either target_logits (records, classes) or target_loss (records,)')
  n = len(labels)
  target = np.asarray(target_logits if target_logits is not None else target_loss)
  shadows = shadow_logits if target_logits is not None else shadow_loss
  shadows = None if shadows is None else np.asarray(shadows)
  name = 'target_logits' if target_logits is not None else 'target_loss'
  shadow_name = name.replace('target', 'shadow')
  if target_logits is not None and target.ndim != 2:
    raise ValueError(f'target_logits must be (records, classes), got shape {target.shape}')
  for arg, array in ((name, target), (shadow_name, shadows)):
    if array is None:
      continue
    if array.shape[-2 if arg.endswith('logits') else -1] != n:
      raise ValueError(f'{arg} has {array.shape[-2 if arg.endswith("logits") else -1]} '
                       f'records (shape {array.shape}) but labels has {n}')
    _check_finite(arg, array)
  if target_logits is not None and not np.all((labels >= 0) & (labels < target.shape[-1])):
    raise ValueError(f'labels must be class indices in [0, {target.shape[-1]}), got values '
                     f'{np.unique(labels)[:10]}')
  num_shadows = 0 if shadows is None else shadows.shape[0]
  if membership.shape != (1 + num_shadows, n) or not np.isin(membership, (0, 1)).all():
    raise ValueError(f'membership must be 0/1 of shape (1 + shadows, records) = '
                     f'({1 + num_shadows}, {n}) (row 0: the target), got shape '
                     f'{membership.shape}')
  if num_shadows:
    always = np.flatnonzero(membership[1:].all(axis=0) | ~membership[1:].any(axis=0))
    if always.size:
      raise ValueError(f'membership: record {int(always[0])} is IN for every shadow or OUT '
                       f'for every shadow ({always.size} records); LiRA needs shadows both '
                       'with and without each record')
  return num_shadows, n


