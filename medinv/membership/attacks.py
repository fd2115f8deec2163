"""Membership-inference attacks as registered components: LiRA, RMIA and the loss threshold.

Every attack reads one `Observation` (what the attacker measured on the candidate records)
and returns a score per record, higher meaning "more likely a member of the target's
training set"; medinv.metrics turns scores and true membership into AUC and TPR at low FPR.

What the attacker measures, per model and record (`model_outputs`, or `defended_outputs`
when the model answers under a defense):
  phi      the logit-scaled confidence of the true label, log(p_y / (1 - p_y)), computed
           from the logits as logit_y - logsumexp(logits without y) (finite where p_y rounds
           to 1), one column per query view (`QUERIES`: 'identity', or 'flip' = the record
           and its horizontal mirror, for images; x repeated answer where an output defense
           releases a probability vector);
  loss     the cross-entropy of the true label on the plain record;
  correct  whether each released label equals the true one, one column per answer (query
           view x repeated query): all a label-only attacker sees.

Defenses: every defense registered in medinv.defenses that acts on 'weights' or 'output'
(`ACTS_ON`; the deployment answers every query of the target, and the attacker, who knows the
defense, runs its shadows through it too; `defended_outputs`):
  weights  the deployment's parameters answer each query, e.g. model perturbation on every
           weight (scope 'all'), fresh noise per query ('per_query') or one draw per model
           ('fixed'); the attacker sees the deployed model's outputs;
  output   the deployment's `release` of the model's answers, e.g. randomized response: only
           a label, flipped with probability p afresh at every answer (phi and loss are
           hidden, so only the attacks that read labels run; `Defense.label_only`).

Registered here (Carlini et al. 2022, "Membership Inference Attacks From First Principles";
Zarifzadeh, Liu and Shokri 2024, "Low-Cost High-Power Membership Inference Attacks"; Yeom et
al. 2018):
  lira_online          per-record Gaussians N(mu_in, sd_in), N(mu_out, sd_out) of the shadows'
                       phi with and without the record; score = log N(phi; in) -
                       log N(phi; out), averaged over query views;
  lira_offline         OUT shadows only, one-sided: score = -log P(Z > phi), Z ~ N(mu_out,
                       sd_out) (larger when phi sits high in the OUT distribution);
  lira_online_fixed_variance, lira_offline_fixed_variance
                       the same with one variance per side pooled over records (better with
                       few shadows);
  rmia                 the likelihood ratio LR(x) = Pr(x | target) / Pr(x), Pr(x | model) the
                       probability of the true label, sigmoid(phi), averaged over query views,
                       and Pr(x) its mean over every shadow (IN and OUT); score = the fraction
                       of the other candidates z with LR(x) / LR(z) >= gamma (`rmia_score`);
  rmia_offline         the same from OUT shadows only: Pr(x) = ((1 + a) Pr_out(x) + (1 - a)) / 2,
                       a = offline_a (the paper's offline approximation);
  loss_threshold       no shadows: score = -loss (Yeom et al.'s baseline; every threshold is
                       scanned by the metrics, so it is the best loss threshold);
  label_only           no shadows, labels only: the fraction of the record's answers whose
                       label is right (Choquette-Choo et al. 2021's gap attack, averaged over
                       query views and repeated queries);
  label_lira           labels only, with shadows: per record, the IN and OUT shadows' rates of
                       right answers (add-one smoothed) as Bernoulli likelihoods; score = mean
                       log-likelihood ratio of the target's answers.
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

from medinv import defenses
from medinv.core import registry

QUERIES = ('identity', 'flip')
ACTS_ON = ('weights', 'output')  # the registered defenses membership inference runs
READS = ('phi', 'label')  # what an attack needs: the confidence vector, or labels alone
RECORD_QUERY_BATCH = 256  # per-query deployments of a record model answered at once (vmap)


class Observation(flax.struct.PyTreeNode):
  """What a membership attacker holds about N candidate records.

  target_phi (N, A): the target's phi per record and query view.
  target_loss (N,): the target's loss per record (plain view).
  shadow_phi (K, N, A): each shadow's phi (None for attacks without shadows).
  shadow_in (K, N): 1 where shadow k trained on record n.
  target_correct (N, Q), shadow_correct (K, N, Q): whether each of the Q released labels per
    record (query views x repeated queries) is the true label.
  """
  target_phi: jax.Array
  target_loss: jax.Array
  shadow_phi: Any = None
  shadow_in: Any = None
  target_correct: Any = None
  shadow_correct: Any = None


@dataclasses.dataclass(frozen=True)
class MembershipAttack:
  """A registered membership-inference attack.

  score(key, obs, cfg) -> (N,) float scores (higher = member); cfg is its block
    `config.attack.<name>` over `defaults` (a FrozenConfigDict).
  uses_shadows: whether it reads the shadow population (False: a no-shadow baseline).
  reads: 'phi' (confidences and losses) or 'label' (released labels only: it also runs where
    the deployment releases labels alone).
  """
  name: str
  score: Callable[..., jax.Array]
  defaults: dict
  uses_shadows: bool = True
  reads: str = 'phi'


ATTACKS = registry.Registry('membership attack')


def register(name: str, score: Callable[..., jax.Array], *, defaults: dict,
             uses_shadows: bool = True, reads: str = 'phi',
             replace: bool = False) -> MembershipAttack:
  """Registers a membership-inference attack under `name` (see `MembershipAttack`)."""
  if reads not in READS:
    raise ValueError(f'membership attack {name!r}: reads must be one of {READS}, got {reads!r}')
  return ATTACKS.add(name, MembershipAttack(name, score, dict(defaults), uses_shadows, reads),
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
  if 'offline_a' in cfg and not 0 < cfg.offline_a <= 1:
    raise ValueError(f'attack.{name}.offline_a must be in (0, 1], got {cfg.offline_a}')
  if 'gamma' in cfg and not cfg.gamma > 0:
    raise ValueError(f'attack.{name}.gamma must be positive, got {cfg.gamma}')
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


def measurements(logits: jax.Array, y: jax.Array) -> dict:
  """{'phi': (N, A), 'loss': (N,), 'correct': (N, A)} from logits (A, N, C) of A views."""
  loss = optax.softmax_cross_entropy_with_integer_labels(logits[0], y)
  return {'phi': jnp.moveaxis(logit_confidence(logits, y[None]), 0, -1), 'loss': loss,
          'correct': jnp.moveaxis(jnp.argmax(logits, axis=-1) == y[None], 0, -1)}


def view_logits(params, x: jax.Array, *, apply_fn, queries: str) -> jax.Array:
  """(A, N, C) logits of one model on every query view of x."""
  return jax.vmap(lambda view: apply_fn({'params': params}, view))(query_views(x, queries))


def model_outputs(params, x: jax.Array, y: jax.Array, *, apply_fn, queries: str) -> dict:
  """`measurements` of one model answering every query view of records (x, y) undefended."""
  return measurements(view_logits(params, x, apply_fn=apply_fn, queries=queries), y)


def released_outputs(deployment: defenses.Deployment, logits: jax.Array, y: jax.Array, *,
                     answers: int, label_only: bool) -> dict:
  """`measurements` of what an 'output' deployment releases when each view (logits
  (A, N, C)) is asked `answers` times: the released labels' correctness (N, answers * A),
  and, unless label_only, phi and loss of the released probability vectors (phi (N, answers
  * A); loss of the first answer of the plain view); label_only: phi and loss are nan (not
  released)."""
  repeated = jnp.broadcast_to(logits, (answers,) + logits.shape)  # (answers, A, N, C)
  vector, label = deployment.release(jax.nn.softmax(repeated, -1), jnp.argmax(repeated, -1))
  correct = jnp.moveaxis(label == y, -1, 0).reshape(len(y), -1)  # (N, answers * A)
  if label_only:
    hidden = jnp.full((len(y), logits.shape[0]), jnp.nan)
    return {'phi': hidden, 'loss': hidden[:, 0], 'correct': correct}
  log_vector = jnp.log(jnp.maximum(vector, jnp.finfo(vector.dtype).tiny))
  return {**measurements(log_vector.reshape((-1,) + logits.shape[1:]), y), 'correct': correct}


def defended_outputs(key: jax.Array, params, x: jax.Array, y: jax.Array, *, apply_fn,
                     queries: str, defense: str, variant: str, strength: float, cfg,
                     first_query: int = 0, logits: jax.Array | None = None) -> dict:
  """`measurements` of one model answering records (x, y) under the registered `defense`
  (ACTS_ON) at `strength`, deployed with `key` (cfg: its block).

  'weights': query q (view a of record n is q = first_query + a * N + n) is answered by the
  deployment's parameters (record models answer RECORD_QUERY_BATCH per-query deployments at
  once, image models one at a time). 'output': the undefended `logits` (A, N, C) (computed
  when not given) go through the deployment's release, each view asked cfg.queries times
  (1 when the block has none; `released_outputs`).
  """
  component = defenses.applicable(defense, ACTS_ON, 'defense.names', 'membership inference')
  deployment = defenses.deploy(defense, key, params, strength, cfg, split=None,
                               variant=variant)
  if component.acts_on == 'weights':
    forward = lambda p, images: apply_fn({'params': p}, images)
    batch = RECORD_QUERY_BATCH if x.ndim == 2 else 1
    answers = jnp.stack([defenses.query_each(deployment, forward, view, first_query + a * len(y),
                                             batch_size=batch)
                         for a, view in enumerate(query_views(x, queries))])
    return measurements(answers, y)
  if logits is None:
    logits = view_logits(params, x, apply_fn=apply_fn, queries=queries)
  return released_outputs(deployment, logits, y, answers=cfg.get('queries', 1),
                          label_only=component.label_only(cfg))


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


def _log_mean_probability(phi: jax.Array) -> jax.Array:
  """log of the mean over query views (last axis) of sigmoid(phi): log Pr(x | model)."""
  return jsp_special.logsumexp(jax.nn.log_sigmoid(phi), axis=-1) - jnp.log(phi.shape[-1])


def rmia_log_prior(obs: Observation, *, online: bool, offline_a: float) -> jax.Array:
  """(N,) log Pr(x): the shadows' probability of each record's true label.

  online: the mean over every shadow. Offline: ((1 + a) Pr_out(x) + (1 - a)) / 2 with
  Pr_out the mean over the OUT shadows; a record no shadow left out (K = 1) takes Pr_out from
  its IN shadows' mean by the relation the approximation assumes, Pr_in = a Pr_out + (1 - a)
  (Privacy Meter's rule), clipped to [0, 1].
  """
  log_ref = _log_mean_probability(obs.shadow_phi)  # (K, N)
  if online:
    return jsp_special.logsumexp(log_ref, axis=0) - jnp.log(log_ref.shape[0])
  out = obs.shadow_in == 0

  def log_mean(mask):
    count = jnp.sum(mask, axis=0)
    total = jsp_special.logsumexp(jnp.where(mask, log_ref, -jnp.inf), axis=0)
    return total - jnp.log(jnp.maximum(count, 1)), count
  log_out, num_out = log_mean(out)
  log_in, _ = log_mean(~out)
  from_in = jnp.clip((jnp.exp(log_in) - (1.0 - offline_a)) / offline_a, 0.0, 1.0)
  log_out = jnp.where(num_out > 0, log_out, jnp.log(from_in))
  return jnp.logaddexp(jnp.log((1.0 + offline_a) / 2) + log_out,
                       jnp.log((1.0 - offline_a) / 2))


def dominated_fraction(log_ratio: jax.Array, gamma: float) -> jax.Array:
  """(N,) per record x, the fraction of the other records z with LR(x) / LR(z) >= gamma,
  from log LR (N,): a sort and a search, so N may be large (no (N, N) comparison)."""
  threshold = log_ratio - jnp.log(gamma)
  below = jnp.searchsorted(jnp.sort(log_ratio), threshold, side='right')  # z: log LR(z) <= t
  itself = (log_ratio <= threshold).astype(below.dtype)
  return (below - itself) / max(log_ratio.shape[0] - 1, 1)


def rmia_score(key, obs: Observation, cfg) -> jax.Array:
  """RMIA (Zarifzadeh et al. 2024): the fraction of population records z that x dominates,
  LR(x) / LR(z) >= gamma, with LR(x) = Pr(x | target) / Pr(x) (`rmia_log_prior`).

  The population z is the attacker's pool: the other candidate records, half of them the
  target's members, where the paper draws z from records no model trained on. That is an
  approximation. The score is a monotone function of LR(x) for any population, so the ROC
  (AUC, TPR at FPR) of one target is the ROC of LR(x) itself; the population sets the
  score's scale (and, with gamma > 1, the ties of records that dominate no z).
  """
  del key
  log_target = _log_mean_probability(obs.target_phi)
  log_prior = rmia_log_prior(obs, online=cfg.online, offline_a=cfg.offline_a)
  return dominated_fraction(log_target - log_prior, cfg.gamma)


def loss_threshold_score(key, obs: Observation, cfg) -> jax.Array:
  """-loss: records the target fits better score higher (Yeom et al.)."""
  del key, cfg
  return -obs.target_loss


def label_only_score(key, obs: Observation, cfg) -> jax.Array:
  """The fraction of the target's released labels for the record that are right."""
  del key, cfg
  return jnp.mean(obs.target_correct.astype(jnp.float32), axis=-1)


def label_lira_score(key, obs: Observation, cfg) -> jax.Array:
  """Mean Bernoulli log-likelihood ratio of the target's answers, IN vs OUT shadow rates."""
  del key, cfg
  right = obs.shadow_correct.astype(jnp.float32).mean(axis=-1)  # (K, N) rate per shadow
  answers = obs.shadow_correct.shape[-1]

  def rate(weight):  # add-one smoothed rate of right answers over the weighted shadows
    w = weight.astype(jnp.float32)
    return (jnp.sum(w * right, 0) * answers + 1.0) / (jnp.sum(w, 0) * answers + 2.0)
  p_in, p_out = rate(obs.shadow_in), rate(1 - obs.shadow_in)
  hit = obs.target_correct.astype(jnp.float32).mean(axis=-1)
  return (hit * (jnp.log(p_in) - jnp.log(p_out))
          + (1.0 - hit) * (jnp.log1p(-p_in) - jnp.log1p(-p_out)))


LIRA_DEFAULTS = {'fixed_variance': False, 'min_std': 1e-3}

register('lira_online', lira_online_score, defaults=LIRA_DEFAULTS)
register('lira_offline', lira_offline_score, defaults=LIRA_DEFAULTS)
register('lira_online_fixed_variance', lira_online_score,
         defaults={**LIRA_DEFAULTS, 'fixed_variance': True})
register('lira_offline_fixed_variance', lira_offline_score,
         defaults={**LIRA_DEFAULTS, 'fixed_variance': True})
RMIA_DEFAULTS = {'online': True, 'offline_a': 0.3, 'gamma': 1.0}  # the paper's a and gamma
register('rmia', rmia_score, defaults=RMIA_DEFAULTS)
register('rmia_offline', rmia_score, defaults={**RMIA_DEFAULTS, 'online': False})
register('loss_threshold', loss_threshold_score, defaults={}, uses_shadows=False)
register('label_only', label_only_score, defaults={}, uses_shadows=False, reads='label')
register('label_lira', label_lira_score, defaults={}, reads='label')
