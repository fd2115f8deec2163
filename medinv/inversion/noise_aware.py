"""The noise-aware inverse network: an adaptive attacker against per-query noise.

`inverse_network` trains its decoder on the deployment's answers to whole batches, each batch
ONE query (`defenses.query_batch`): under per-query noise its decoder sees one noise draw per
training step, shared by every image of the batch. The attacker here adapts to the defense:

  training     every image of every training batch is its own query
               (`defenses.query_each`), query number ATTACKER_QUERIES + t x batch_size + i for
               image i of step t (`training_queries`), so the decoder sees a fresh perturbation
               per image (per-query model perturbation: one perturbed model per image; feature
               defenses: one noise draw per image) and learns to decode through the noise;
  views        when hospital A sends the features of the same image more than once (a
               resend, a retry, a second consultation: an assumption about the protocol, not
               something the attacker can cause), the attacker decodes each of the `views`
               noisy copies and averages the reconstructions. View 0 is what hospital A sent
               for the targets (queries TARGET_QUERIES + i); view v >= 1 is the same targets
               sent again as queries TARGET_QUERIES + v x num_targets + i (`received_views`).
               views = 1 (the default) is the single-send protocol. Under 'fixed' model
               perturbation every view is the same, so averaging buys nothing.

Without knowledge of the defense (knows_defense False) the attacker holds only theta: its
decoder is trained on theta's clean answers (a prepared stage, as inverse_network's) and it
decodes the one view received; it has no deployed model through which to model the resends,
so `views` applies only when it knows the defense.

Registered as 'noise_aware_inverse' (config block `config.attack.noise_aware_inverse`):
width, steps, batch_size, learning_rate and augment_flip as inverse_network's, plus views.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from medinv.models import decoders
from medinv import defenses
from medinv.inversion import reconstruct
from medinv.inversion import attacks as inversion_attacks


def training_queries(step, batch_size: int) -> jax.Array:
  """The query numbers of training step `step`'s batch: one per image, (batch_size,)."""
  return reconstruct.ATTACKER_QUERIES + step * batch_size + jnp.arange(batch_size)


def per_image_query_fn(held: defenses.Deployment, edge):
  """(step, images (m, ...)) -> features: image i answered as query training_queries(step)[i]."""
  def query_fn(step, images):
    return defenses.query_each(held, edge, images,
                               reconstruct.ATTACKER_QUERIES + step * images.shape[0])
  return query_fn


def received_views(held: defenses.Deployment, edge, x_targets: jax.Array,
                   features: jax.Array, views: int) -> jax.Array:
  """(views, n, ...): view 0 the received `features`, view v the targets resent as queries
  TARGET_QUERIES + v x n + i (hospital A sending the same images again)."""
  reconstruct.check_positive('views', views)
  if views == 1:
    return features[None]
  n = x_targets.shape[0]
  resent = jax.lax.map(  # one resend of all targets per view, in sequence
      lambda v: defenses.query_each(held, edge, x_targets, reconstruct.TARGET_QUERIES + v * n),
      jnp.arange(1, views))
  return jnp.concatenate([features[None], resent.astype(features.dtype)])


def _decoder(ctx: inversion_attacks.Context) -> decoders.InverseDecoder:
  return decoders.InverseDecoder(ctx.split, ctx.x_targets.shape[-1], ctx.cfg.width)


def train(ctx: inversion_attacks.Context, held: defenses.Deployment):
  """The decoder's params, trained with a fresh query (fresh noise) per image."""
  cfg = ctx.cfg
  params, _ = reconstruct.train_decoder(
      ctx.key, per_image_query_fn(held, ctx.edge), ctx.x_aux, decoder=_decoder(ctx),
      steps=cfg.steps, batch_size=cfg.batch_size, learning_rate=cfg.learning_rate,
      augment_flip=cfg.augment_flip)
  return params


def _prepare(ctx: inversion_attacks.Context):
  """The clean decoder (attacker that queried before the defense); nothing otherwise."""
  if ctx.knows_defense:
    return {}
  return train(ctx, defenses.Deployment(None, ctx.theta))


def attack(ctx: inversion_attacks.Context, held, features, prepared):
  """Reconstructions (n, h, w, c): the mean of the decoder's outputs over the views."""
  decoder = _decoder(ctx)
  if not ctx.knows_defense:
    return decoder.apply({'params': prepared}, features)
  params = train(ctx, held)
  views = received_views(held, ctx.edge, ctx.x_targets, features, ctx.cfg.views)
  # broadcast the decoder's params; vectorise the views
  decoded = jax.vmap(lambda view: decoder.apply({'params': params}, view))(views)
  return jnp.mean(decoded, axis=0)


DEFAULTS = dict(width=64, steps=400, batch_size=32, learning_rate=2e-3, augment_flip=True,
                views=1)

inversion_attacks.register(
    'noise_aware_inverse', attack, prepare=_prepare, fold=6, defaults=DEFAULTS,
    positive=('width', 'steps', 'batch_size', 'learning_rate', 'views'))
