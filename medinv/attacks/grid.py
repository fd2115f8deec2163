"""Model-inversion attacks over a defense grid: one traced program per (split, attack).

Each `*_grid` function runs one attack for every perturbation mode (a static Python loop),
every sigma (`inversion.grid_map`: vmap, or lax.map in chunks) and every target (vmapped
inside the attack), and returns {(mode, knows_defense): array (n_sigma, n_targets, ...)}.
`knows_defense` is the attacker's view of hospital A's model: True = the deployed
(perturbed) model, the one it queries or was given; False = the clean trained parameters
(an attacker that queried, or copied the model, before the defense was switched on). Attacks
whose attacker never sees hospital A's model (query_free) use the key None.

Wrap a call in `jax.jit` (keyword arguments bound with functools.partial) to get the one
compiled program.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from medinv import decoders
from medinv import models
from medinv.attacks import inversion

Deployment = inversion.Deployment


def _deployments(defense_key, theta, mode, mask):
  return lambda sigma: Deployment(defense_key, theta, sigma, mode, mask)


def target_features(theta, sigmas, x_targets, *, edge, mode, mask, defense_key,
                    grid_batch: int) -> jax.Array:
  """v for every (sigma, target): each target is its own query. (n_sigma, n_targets, ...)."""
  deploy = _deployments(defense_key, theta, mode, mask)
  return inversion.grid_map(
      lambda sigma: inversion.query_each(deploy(sigma), edge, x_targets,
                                         inversion.TARGET_QUERIES), sigmas, grid_batch)


def accuracy_grid(theta, sigmas, x_test, y_test, *, model: models.SplitCNN, modes, mask,
                  defense_key, grid_batch: int) -> dict[str, jax.Array]:
  """Test accuracy of the deployed model at every sigma, per mode ({mode: (n_sigma,)}).

  Every test image is its own query, so 'per_query' answers each with fresh noise.
  """
  def apply(params, images):
    return model.apply({'params': params}, images)

  out = {}
  for mode in modes:
    deploy = _deployments(defense_key, theta, mode, mask)

    def one_sigma(sigma, deploy=deploy):
      logits = inversion.query_each(deploy(sigma), apply, x_test, inversion.EVAL_QUERIES)
      return jnp.mean(jnp.argmax(logits, -1) == y_test)
    out[mode] = inversion.grid_map(one_sigma, sigmas, grid_batch)
  return out


def inverse_network_grid(theta, sigmas, x_targets, x_aux, *, model, split, mask, modes,
                         knows_defense, cfg: ml_collections.ConfigDict, defense_key,
                         attack_key, grid_batch: int) -> dict:
  """Black-box inverse network at every (mode, sigma); decoders trained per grid value."""
  edge = models.edge_fn(model, split)
  decoder = decoders.InverseDecoder(split, x_targets.shape[-1], cfg.decoder_width)
  train_kwargs = dict(decoder=decoder, steps=cfg.decoder_steps,
                      batch_size=cfg.decoder_batch_size, learning_rate=cfg.decoder_learning_rate,
                      augment_flip=cfg.augment_flip)

  def train_for(view: Deployment):
    def query_fn(t, images):
      return edge(view.params_for(inversion.ATTACKER_QUERIES + t), images)
    return inversion.train_decoder(attack_key, query_fn, x_aux, **train_kwargs)[0]

  def decode(params, features):
    return decoder.apply({'params': params}, features)

  clean_decoder = None
  if False in knows_defense:  # Trained once on the clean model, used against every sigma.
    clean_decoder = train_for(Deployment(defense_key, theta, 0.0))
  out = {}
  for mode in modes:
    deploy = _deployments(defense_key, theta, mode, mask)
    features = target_features(theta, sigmas, x_targets, edge=edge, mode=mode, mask=mask,
                               defense_key=defense_key, grid_batch=grid_batch)
    if True in knows_defense:
      out[mode, True] = inversion.grid_map(
          lambda sigma_v, deploy=deploy: decode(train_for(deploy(sigma_v[0])), sigma_v[1]),
          (sigmas, features), grid_batch)
    if clean_decoder is not None:
      out[mode, False] = jax.vmap(decode, in_axes=(None, 0))(clean_decoder, features)
  return out


def _rmle_kwargs(cfg, x_aux):
  prior = jnp.mean(x_aux, axis=0)
  return dict(objective=cfg.objective, steps=cfg.rmle_steps,
              learning_rate=cfg.rmle_learning_rate, prior_image=prior), prior


def rmle_grid(theta, sigmas, x_targets, x_aux, *, model, split, mask, modes, knows_defense,
              cfg, defense_key, attack_key, grid_batch: int) -> dict:
  """White-box rMLE at every (mode, sigma), starting from the attacker's mean image."""
  del attack_key  # Deterministic given the start image.
  edge = models.edge_fn(model, split)
  kwargs, x0 = _rmle_kwargs(cfg, x_aux)
  out = {}
  for mode in modes:
    deploy = _deployments(defense_key, theta, mode, mask)
    features = target_features(theta, sigmas, x_targets, edge=edge, mode=mode, mask=mask,
                               defense_key=defense_key, grid_batch=grid_batch)
    for knows in knows_defense:
      def one_sigma(sigma_v, deploy=deploy, knows=knows):
        sigma, v = sigma_v
        # The attacker's white-box model: one answer of the deployment, or theta itself.
        params = (deploy(sigma).params_for(inversion.ATTACKER_QUERIES) if knows else theta)
        return inversion.rmle(edge, params, v, x0, **kwargs)[0]
      out[mode, knows] = inversion.grid_map(one_sigma, (sigmas, features), grid_batch)
  return out


def query_free_grid(theta, sigmas, x_targets, x_aux, y_aux, *, model, split, mask, modes,
                    knows_defense, cfg, defense_key, attack_key, grid_batch: int) -> dict:
  """Query-free: one shadow edge (independent of the defense), then rMLE per (mode, sigma)."""
  del knows_defense  # The attacker never sees hospital A's model.
  edge = models.edge_fn(model, split)
  cloud_params = theta if cfg.shadow_uses_target_cloud else None
  shadow, _ = inversion.train_shadow_edge(
      attack_key, x_aux, y_aux, model=model, split=split, cloud_params=cloud_params,
      steps=cfg.shadow_steps, batch_size=cfg.shadow_batch_size,
      learning_rate=cfg.shadow_learning_rate, augment_flip=cfg.augment_flip)
  kwargs, x0 = _rmle_kwargs(cfg, x_aux)
  out = {}
  for mode in modes:
    features = target_features(theta, sigmas, x_targets, edge=edge, mode=mode, mask=mask,
                               defense_key=defense_key, grid_batch=grid_batch)
    # broadcast the shadow; vectorise the sigma grid's features
    out[mode, None] = inversion.grid_map(
        lambda v: inversion.rmle(edge, shadow, v, x0, **kwargs)[0], features, grid_batch)
  return out


def mi_face_grid(theta, sigmas, x_aux, *, num_classes: int, model, mask, modes,
                 knows_defense, cfg, defense_key, grid_batch: int) -> dict:
  """MI-FACE per class at every (mode, sigma): (n_sigma, num_classes, h, w, c) images.

  Gradient step t is query ATTACKER_QUERIES + t (fresh noise per step under 'per_query').
  Starts from a black image, as Fredrikson et al.
  """
  x0 = jnp.zeros_like(x_aux[0])
  labels = jnp.arange(num_classes)
  kwargs = dict(objective=cfg.mi_face_objective, max_steps=cfg.mi_face_max_steps,
                learning_rate=cfg.mi_face_learning_rate, patience=cfg.mi_face_patience,
                threshold=cfg.mi_face_threshold, prior_image=jnp.mean(x_aux, axis=0))

  def attack(view: Deployment):
    def logits_apply(step, images):
      params = view.params_for(inversion.ATTACKER_QUERIES + step)
      return model.apply({'params': params}, images)
    return inversion.mi_face(logits_apply, labels, x0, **kwargs)['images']

  clean = attack(Deployment(defense_key, theta, 0.0)) if False in knows_defense else None
  out = {}
  for mode in modes:
    deploy = _deployments(defense_key, theta, mode, mask)
    if True in knows_defense:
      out[mode, True] = inversion.grid_map(lambda s, deploy=deploy: attack(deploy(s)), sigmas,
                                           grid_batch)
    if clean is not None:
      out[mode, False] = jnp.broadcast_to(clean, (sigmas.shape[0],) + clean.shape)
  return out


GRIDS: dict[str, Any] = {
    'inverse_network': inverse_network_grid,
    'rmle': rmle_grid,
    'query_free': query_free_grid,
}
