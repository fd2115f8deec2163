"""Defenses on the features hospital A transmits (they act on 'features'), each fresh per query
(fold_in(key, query)).

`feature_noise`: Gaussian noise of std strength x the features' RMS. `feature_dropout`:
inference-time dropout with probability strength. `learned_noise`, below.

Learned feature noise, a Shredder-style defense. Shredder (Mireshghallah et al., ASPLOS 2020)
learns the distribution of the noise hospital A adds to the features it sends, with both
halves of the model frozen, so that as much noise as possible goes where the cloud's decision
does not look. Here the noise energy is the grid
value, as for `feature_noise` (std = strength x the features' RMS per query), and what is
learned is where it goes: a per-element allocation a (the feature map's shape, mean square
1), fitted once per split on hospital A's training images by minimising the cloud's
cross-entropy under noise of energy `fit_strength`. At strength s, query q receives

    features + s x RMS(features) x a x N(0, I)    (noise from fold_in(key, q)).

So at equal strength the learned and the isotropic defense inject the same energy; the
privacy-utility plot shows which spends it better. The fit is the defense's `fit` stage
(`medinv.defenses.base.Defense.fit`), computed once per split and kept in the run's partial
stages.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax

from medinv import models
from medinv.defenses import base

# The fit's key: fold_in(defense key, FIT_FOLD + the split's number, `models.split_number`:
# SplitCNN's 2, 4, 6), apart from every query number.
FIT_FOLD = 1 << 26


def allocation(log_scale: jax.Array) -> jax.Array:
  """exp(log_scale), normalised to mean square 1 (the noise energy stays the strength's)."""
  scale = jnp.exp(log_scale - jax.lax.stop_gradient(jnp.max(log_scale)))  # shift-invariant
  return scale / jnp.sqrt(jnp.mean(jnp.square(scale)))


def _rms(features: jax.Array) -> jax.Array:
  """RMS of each query's features (leading axis), broadcastable against them."""
  axes = tuple(range(1, features.ndim))
  return jnp.sqrt(jnp.mean(jnp.square(features), axes, keepdims=True) + 1e-12)


def fit(key: jax.Array, theta, x_train: jax.Array, y_train: jax.Array, cfg, *,
        model, split) -> dict:
  """The allocation's parameters {'log_scale': feature-map shape}, by Adam on the cloud's
  cross-entropy (theta frozen) with noise of energy cfg.fit_strength, cfg.steps steps of
  cfg.batch_size training images. model / split: the target's module and split (a
  `models.Split`, or SplitCNN's 2, 4, 6). Jittable."""
  edge, cloud = models.edge_fn(model, split), models.cloud_fn(model, split)
  features = edge(theta, x_train)  # theta is frozen: the features are computed once
  rms = _rms(features)
  tx = optax.adam(cfg.learning_rate)

  def loss_fn(log_scale, step_key):
    index_key, noise_key = jax.random.split(step_key)
    index = jax.random.randint(index_key, (cfg.batch_size,), 0, features.shape[0])
    noise = jax.random.normal(noise_key, (cfg.batch_size,) + features.shape[1:])
    noisy = features[index] + cfg.fit_strength * rms[index] * allocation(log_scale) * noise
    logits = cloud(theta, noisy)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y_train[index]))

  def step(carry, t):
    log_scale, opt_state = carry
    loss, grads = jax.value_and_grad(loss_fn)(log_scale, jax.random.fold_in(key, t))
    updates, opt_state = tx.update(grads, opt_state, log_scale)
    return (optax.apply_updates(log_scale, updates), opt_state), loss

  log_scale = jnp.zeros(features.shape[1:], features.dtype)  # start: isotropic noise
  (log_scale, _), losses = jax.lax.scan(step, (log_scale, tx.init(log_scale)),
                                        jnp.arange(cfg.steps))
  return {'log_scale': log_scale, 'losses': losses}


@dataclasses.dataclass(frozen=True)
class FeatureNoise(base.Deployment):
  """Gaussian noise of std strength x (the features' RMS over the query) on the transmitted
  features, fresh per query from fold_in(key, query number)."""

  def transmit(self, query_index, features):
    noise = jax.random.normal(jax.random.fold_in(self.key, query_index), features.shape,
                              features.dtype)
    rms = jnp.sqrt(jnp.mean(jnp.square(features)) + 1e-12)
    return features + self.strength * rms * noise


@dataclasses.dataclass(frozen=True)
class FeatureDropout(base.Deployment):
  """Dropout at inference on the transmitted features: each value is zeroed with probability
  strength (per query, from fold_in(key, query number)) and the rest scaled by
  1 / (1 - strength), so the cloud sees the same expected features."""

  def transmit(self, query_index, features):
    keep = jax.random.bernoulli(jax.random.fold_in(self.key, query_index), 1.0 - self.strength,
                                features.shape)
    return jnp.where(keep, features / jnp.maximum(1.0 - self.strength, 1e-6), 0.0)


def _check_dropout(cfg) -> None:
  if any(not 0 <= s < 1 for s in cfg.strengths):
    raise ValueError(f'defense.feature_dropout.strengths {tuple(cfg.strengths)}: each must be '
                     'in [0, 1) (the probability of dropping a feature value)')


base.register('feature_noise', lambda key, theta, strength, cfg, *, split, variant:
              FeatureNoise(key, theta, strength, cfg),
              acts_on='features', defaults={'strengths': (0.0, 0.25, 0.5, 1.0)})
base.register('feature_dropout', lambda key, theta, strength, cfg, *, split, variant:
              FeatureDropout(key, theta, strength, cfg),
              acts_on='features', defaults={'strengths': (0.0, 0.3, 0.6, 0.9)},
              check=_check_dropout)


@dataclasses.dataclass(frozen=True)
class LearnedNoise(base.Deployment):
  """Gaussian noise of std strength x RMS x the learned allocation, fresh per query."""
  log_scale: Any = None

  def transmit(self, query_index, features):
    noise = jax.random.normal(jax.random.fold_in(self.key, query_index), features.shape,
                              features.dtype)
    return features + self.strength * _rms(features) * allocation(self.log_scale) * noise


def _check(cfg) -> None:
  for field in ('steps', 'batch_size', 'learning_rate', 'fit_strength'):
    if not cfg[field] > 0:
      raise ValueError(f'defense.learned_noise.{field} must be positive, got {cfg[field]}')


def _deploy(key, theta, strength, cfg, *, split, variant, state):
  del cfg, split, variant
  return LearnedNoise(key, theta, strength, log_scale=state['log_scale'])


def _fit(key, theta, x_train, y_train, cfg, *, model, split):
  fit_key = jax.random.fold_in(key, FIT_FOLD + models.split_number(split))
  return fit(fit_key, theta, x_train, y_train, cfg, model=model, split=split)


base.register('learned_noise', _deploy, acts_on='features', fit=_fit, check=_check,
              defaults={'strengths': (0.0, 0.5, 1.0, 2.0), 'fit_strength': 1.0,
                        'steps': 300, 'batch_size': 64, 'learning_rate': 0.05})
