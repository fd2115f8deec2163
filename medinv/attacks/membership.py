"""Membership-inference attacks as registered components: LiRA and the loss threshold.

Every attack reads one `Observation` (what the attacker measured on the candidate records)
and returns a score per record, higher meaning "more likely a member of the target's
training set"; medinv.metrics turns scores and true membership into AUC and TPR at low FPR.

What the attacker measures, per model and record (`model_outputs`):
  phi   the logit-scaled confidence of the true label, log(p_y / (1 - p_y)), computed from
        the logits as logit_y - logsumexp(logits without y) (finite where p_y rounds to 1),
        one column per query view (`QUERIES`: 'identity', or 'flip' = the record and its
        horizontal mirror, for images);
  loss  the cross-entropy of the true label on the plain record.

Registered here (Carlini et al. 2022, "Membership Inference Attacks From First Principles";
Yeom et al. 2018):
  lira_online          per-record Gaussians N(mu_in, sd_in), N(mu_out, sd_out) of the shadows'
                       phi with and without the record; score = log N(phi; in) -
                       log N(phi; out), averaged over query views;
  lira_offline         OUT shadows only, one-sided: score = -log P(Z > phi), Z ~ N(mu_out,
                       sd_out) (larger when phi sits high in the OUT distribution);
  lira_online_fixed_variance, lira_offline_fixed_variance
                       the same with one variance per side pooled over records (better with
                       few shadows);
  loss_threshold       no shadows: score = -loss (Yeom et al.'s baseline; every threshold is
                       scanned by the metrics, so it is the best loss threshold).
Adding an attack is one function and one `register` call:

    def max_phi(key, obs, cfg):  # the target's confidence alone
      return jnp.max(obs.target_phi, axis=-1)

    membership.register('confidence', max_phi, defaults={}, uses_shadows=False)
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import jax.scipy.special as jsp_special
import ml_collections
import optax

from medinv import registry

QUERIES = ('identity', 'flip')


class Observation(flax.struct.PyTreeNode):
  """What a membership attacker holds about N candidate records.

  target_phi (N, A): the target's phi per record and query view.
  target_loss (N,): the target's loss per record (plain view).
  shadow_phi (K, N, A): each shadow's phi (None for attacks without shadows).
  shadow_in (K, N): 1 where shadow k trained on record n.
  """
  target_phi: jax.Array
  target_loss: jax.Array
  shadow_phi: Any = None
  shadow_in: Any = None


@dataclasses.dataclass(frozen=True)
class MembershipAttack:
  """A registered membership-inference attack.

  score(key, obs, cfg) -> (N,) float scores (higher = member); cfg is its block
    `config.attack.<name>` over `defaults` (a FrozenConfigDict).
  uses_shadows: whether it reads the shadow population (False: a no-shadow baseline).
  """
  name: str
  score: Callable[..., jax.Array]
  defaults: dict
  uses_shadows: bool = True


ATTACKS = registry.Registry('membership attack')


def register(name: str, score: Callable[..., jax.Array], *, defaults: dict,
             uses_shadows: bool = True, replace: bool = False) -> MembershipAttack:
  """Registers a membership-inference attack under `name` (see `MembershipAttack`)."""
  return ATTACKS.add(name, MembershipAttack(name, score, dict(defaults), uses_shadows),
                     replace=replace)


def get(name: str) -> MembershipAttack:
  return ATTACKS.find(name, field='attack.names')


config_block = ATTACKS.config_block  # an attack's block: its defaults with overrides


def attack_cfg(attack_config, name: str) -> ml_collections.FrozenConfigDict:
  """Attack `name`'s defaults overridden by its block `attack_config.<name>` (if any)."""
  get(name)
  cfg = ATTACKS.resolve(attack_config, name)
  if 'min_std' in cfg and not cfg.min_std > 0:
    raise ValueError(f'attack.{name}.min_std must be positive, got {cfg.min_std}')
  return cfg


def check_config(attack_config) -> None:
  """ValueError naming the field for an empty or unknown attack name or a bad block."""
  names = tuple(attack_config.names)
  if not names:
    raise ValueError('attack.names is empty')
  if len(set(names)) != len(names):
    raise ValueError(f'attack.names repeats a name: {names}')
  for name in names:
    attack_cfg(attack_config, name)
  if attack_config.queries not in QUERIES:
    raise ValueError(f'attack.queries must be one of {QUERIES}, got {attack_config.queries!r}')


# ----------------------------------------------------------------------------- measurements

def logit_confidence(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """phi = log(p_y / (1 - p_y)) of the true label, from logits (..., C) and labels (...)."""
  true = jnp.take_along_axis(logits, labels[..., None], axis=-1)[..., 0]
  others = jnp.where(jax.nn.one_hot(labels, logits.shape[-1], dtype=bool), -jnp.inf, logits)
  return true - jax.nn.logsumexp(others, axis=-1)


def query_views(x: jax.Array, queries: str) -> jax.Array:
  """(A, N, ...) query views of x: itself, and for 'flip' its horizontal mirror (NHWC)."""
  if queries == 'identity':
    return x[None]
  if queries == 'flip':
    if x.ndim != 4:
      raise ValueError(f"attack.queries 'flip' needs images (n, h, w, c), got shape {x.shape}")
    return jnp.stack([x, x[:, :, ::-1, :]])
  raise ValueError(f'attack.queries must be one of {QUERIES}, got {queries!r}')


def model_outputs(params, x: jax.Array, y: jax.Array, *, apply_fn, queries: str) -> dict:
  """{'phi': (N, A), 'loss': (N,), 'correct': (N,)} of one model on records (x, y).

  phi per query view (see the module doc); loss and correct (top-1 == y) on the plain view.
  """
  views = query_views(x, queries)
  logits = jax.vmap(lambda view: apply_fn({'params': params}, view))(views)  # (A, N, C)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits[0], y)
  return {'phi': jnp.moveaxis(logit_confidence(logits, y[None]), 0, -1), 'loss': loss,
          'correct': jnp.argmax(logits[0], axis=-1) == y}


# ----------------------------------------------------------------------------- statistics

def gaussian_logpdf(x, mean, std):
  """log N(x; mean, std^2), elementwise."""
  z = (x - mean) / std
  return -0.5 * z * z - jnp.log(std) - 0.5 * jnp.log(2.0 * jnp.pi)


def gaussian_log_sf(x, mean, std):
  """log P(Z > x) for Z ~ N(mean, std^2), accurate far in the upper tail."""
  return jsp_special.log_ndtr(-(x - mean) / std)


def masked_moments(phi: jax.Array, weight: jax.Array, *, fixed_variance: bool,
                   min_std: float) -> tuple[jax.Array, jax.Array]:
  """Per-record mean and std (N, A) of phi (K, N, A) over the models where weight (K, N) is 1.

  The std is the per-record population std where at least two models count, else (and
  everywhere with fixed_variance) the root of the per-record variances pooled over records
  that have two or more; at least min_std.
  """
  w = weight.astype(phi.dtype)[..., None]
  count = jnp.sum(w, axis=0)  # (N, 1)
  mean = jnp.sum(w * phi, axis=0) / jnp.maximum(count, 1.0)
  var = jnp.sum(w * (phi - mean) ** 2, axis=0) / jnp.maximum(count, 1.0)
  enough = count >= 2
  pooled = jnp.sum(jnp.where(enough, var, 0.0), axis=0) / jnp.maximum(jnp.sum(enough, 0), 1)
  var = jnp.broadcast_to(pooled, var.shape) if fixed_variance else jnp.where(enough, var, pooled)
  return mean, jnp.maximum(jnp.sqrt(var), min_std)


def lira_online_score(key, obs: Observation, cfg) -> jax.Array:
  """log N(phi; mu_in, sd_in) - log N(phi; mu_out, sd_out), averaged over query views."""
  del key
  kwargs = dict(fixed_variance=cfg.fixed_variance, min_std=cfg.min_std)
  mean_in, std_in = masked_moments(obs.shadow_phi, obs.shadow_in, **kwargs)
  mean_out, std_out = masked_moments(obs.shadow_phi, 1 - obs.shadow_in, **kwargs)
  ratio = (gaussian_logpdf(obs.target_phi, mean_in, std_in)
           - gaussian_logpdf(obs.target_phi, mean_out, std_out))
  return jnp.mean(ratio, axis=-1)


def lira_offline_score(key, obs: Observation, cfg) -> jax.Array:
  """-log P(Z > phi), Z ~ N(mu_out, sd_out), averaged over query views (one-sided)."""
  del key
  mean_out, std_out = masked_moments(obs.shadow_phi, 1 - obs.shadow_in,
                                     fixed_variance=cfg.fixed_variance, min_std=cfg.min_std)
  return -jnp.mean(gaussian_log_sf(obs.target_phi, mean_out, std_out), axis=-1)


def loss_threshold_score(key, obs: Observation, cfg) -> jax.Array:
  """-loss: records the target fits better score higher (Yeom et al.)."""
  del key, cfg
  return -obs.target_loss


LIRA_DEFAULTS = {'fixed_variance': False, 'min_std': 1e-3}

register('lira_online', lira_online_score, defaults=LIRA_DEFAULTS)
register('lira_offline', lira_offline_score, defaults=LIRA_DEFAULTS)
register('lira_online_fixed_variance', lira_online_score,
         defaults={**LIRA_DEFAULTS, 'fixed_variance': True})
register('lira_offline_fixed_variance', lira_offline_score,
         defaults={**LIRA_DEFAULTS, 'fixed_variance': True})
register('loss_threshold', loss_threshold_score, defaults={}, uses_shadows=False)
