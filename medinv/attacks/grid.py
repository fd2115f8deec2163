"""Model-inversion attacks over a defense grid: one traced program per (split, attack, view).

Each `*_grid` function runs one attack for every perturbation mode (a static Python loop),
every sigma it is given (`jax.vmap`) and every target (vmapped inside the attack), and
returns {mode: array (n_sigma, n_targets, ...)}. A caller may pass the whole sigma grid or
chunks of it (same program, same shapes); `mia.run` keeps each chunk's result, so a killed run
resumes. Work that does not depend on sigma (the query-free shadow model, the decoder of an
attacker that does not know the defense) is a separate `train_*` function whose result the
grid functions take as an argument.

`knows_defense` is the attacker's view of hospital A's model: True = the deployed (perturbed)
model, the one it queries or was given; False = the clean trained parameters (an attacker
that queried, or copied, the model before the defense was switched on). The query-free
attacker never sees hospital A's model.

`medinv.mia` runs them through `sweep.map_grid` (`at_sigma` with the keyword arguments bound
by functools.partial): the sigma grid is sharded over every device of every process and each
device's share is vmapped; wrapping a call in `jax.jit` gives the unsharded program.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from medinv import decoders
from medinv import models
from medinv.attacks import inversion

Deployment = inversion.Deployment


def at_sigma(grid_fn, sigma, theta, *args, **kwargs):
  """`grid_fn` at one sigma (for `sweep.map_grid`): {mode: array without the sigma axis}."""
  return jax.tree.map(lambda leaf: leaf[0], grid_fn(theta, sigma[None], *args, **kwargs))


def _over_sigmas(fn, sigmas, *per_sigma):
  # vectorise the sigma grid (and any per-sigma arrays); everything else is broadcast
  return jax.vmap(fn)(sigmas, *per_sigma)


def target_features(theta, sigmas, x_targets, *, edge, mode, mask, defense_key) -> jax.Array:
  """v for every (sigma, target): each target is its own query. (n_sigma, n_targets, ...)."""
  return _over_sigmas(
      lambda sigma: inversion.query_each(Deployment(defense_key, theta, sigma, mode, mask),
                                         edge, x_targets, inversion.TARGET_QUERIES), sigmas)


def accuracy_grid(theta, sigmas, x_test, y_test, *, model: models.SplitCNN, modes, mask,
                  defense_key) -> dict[str, jax.Array]:
  """Test accuracy of the deployed model at every sigma, per mode ({mode: (n_sigma,)}).

  Every test image is its own query, so 'per_query' answers each with fresh noise.
  """
  def apply(params, images):
    return model.apply({'params': params}, images)

  def accuracy(sigma, mode):
    deployed = Deployment(defense_key, theta, sigma, mode, mask)
    logits = inversion.query_each(deployed, apply, x_test, inversion.EVAL_QUERIES)
    return jnp.mean(jnp.argmax(logits, -1) == y_test)
  return {mode: _over_sigmas(lambda s, mode=mode: accuracy(s, mode), sigmas) for mode in modes}


def _decoder(split: int, x_targets, cfg):
  decoder = decoders.InverseDecoder(split, x_targets.shape[-1], cfg.decoder_width)
  train_kwargs = dict(decoder=decoder, steps=cfg.decoder_steps,
                      batch_size=cfg.decoder_batch_size, learning_rate=cfg.decoder_learning_rate,
                      augment_flip=cfg.augment_flip)
  return decoder, train_kwargs


def _train_decoder(view: Deployment, edge, x_aux, attack_key, train_kwargs):
  def query_fn(t, images):
    return edge(view.params_for(inversion.ATTACKER_QUERIES + t), images)
  return inversion.train_decoder(attack_key, query_fn, x_aux, **train_kwargs)[0]


def train_clean_decoder(theta, x_targets, x_aux, *, model, split, cfg, attack_key):
  """The decoder of an attacker that queried the model before the defense: params."""
  _, train_kwargs = _decoder(split, x_targets, cfg)
  return _train_decoder(Deployment(None, theta, 0.0), models.edge_fn(model, split), x_aux,
                        attack_key, train_kwargs)


def inverse_network_grid(theta, sigmas, x_targets, x_aux, clean_decoder=None, *, model, split,
                         mask, modes, knows_defense: bool, cfg: ml_collections.ConfigDict,
                         defense_key, attack_key) -> dict[str, jax.Array]:
  """Black-box inverse network at every (mode, sigma).

  knows_defense: a decoder per (mode, sigma), trained on the deployed model's answers;
  otherwise `clean_decoder` (`train_clean_decoder`) decodes every sigma's features.
  """
  edge = models.edge_fn(model, split)
  decoder, train_kwargs = _decoder(split, x_targets, cfg)
  out = {}
  for mode in modes:
    features = target_features(theta, sigmas, x_targets, edge=edge, mode=mode, mask=mask,
                               defense_key=defense_key)

    def attack(sigma, v, mode=mode):
      params = (_train_decoder(Deployment(defense_key, theta, sigma, mode, mask), edge, x_aux,
                               attack_key, train_kwargs) if knows_defense else clean_decoder)
      return decoder.apply({'params': params}, v)
    out[mode] = _over_sigmas(attack, sigmas, features)
  return out


def _rmle_kwargs(cfg, x_aux):
  prior = jnp.mean(x_aux, axis=0)
  return dict(objective=cfg.objective, steps=cfg.rmle_steps,
              learning_rate=cfg.rmle_learning_rate, prior_image=prior), prior


def rmle_grid(theta, sigmas, x_targets, x_aux, *, model, split, mask, modes,
              knows_defense: bool, cfg, defense_key) -> dict[str, jax.Array]:
  """White-box rMLE at every (mode, sigma), starting from the attacker's mean image."""
  edge = models.edge_fn(model, split)
  kwargs, x0 = _rmle_kwargs(cfg, x_aux)
  out = {}
  for mode in modes:
    features = target_features(theta, sigmas, x_targets, edge=edge, mode=mode, mask=mask,
                               defense_key=defense_key)

    def attack(sigma, v, mode=mode):
      # The attacker's white-box model: one answer of the deployment, or theta itself.
      params = (Deployment(defense_key, theta, sigma, mode, mask).params_for(
          inversion.ATTACKER_QUERIES) if knows_defense else theta)
      return inversion.rmle(edge, params, v, x0, **kwargs)[0]
    out[mode] = _over_sigmas(attack, sigmas, features)
  return out


def train_shadow(theta, x_aux, y_aux, *, model, split, cfg, attack_key) -> dict:
  """Query-free attacker's shadow edge (through hospital B's cloud layers if configured)."""
  cloud_params = theta if cfg.shadow_uses_target_cloud else None
  return inversion.train_shadow_edge(
      attack_key, x_aux, y_aux, model=model, split=split, cloud_params=cloud_params,
      steps=cfg.shadow_steps, batch_size=cfg.shadow_batch_size,
      learning_rate=cfg.shadow_learning_rate, augment_flip=cfg.augment_flip)[0]


def query_free_grid(theta, sigmas, x_targets, x_aux, shadow, *, model, split, mask, modes,
                    cfg, defense_key) -> dict[str, jax.Array]:
  """Query-free: rMLE through the shadow edge (`train_shadow`) at every (mode, sigma)."""
  edge = models.edge_fn(model, split)
  kwargs, x0 = _rmle_kwargs(cfg, x_aux)
  out = {}
  for mode in modes:
    features = target_features(theta, sigmas, x_targets, edge=edge, mode=mode, mask=mask,
                               defense_key=defense_key)
    out[mode] = _over_sigmas(lambda sigma, v: inversion.rmle(edge, shadow, v, x0, **kwargs)[0],
                             sigmas, features)
  return out


def mi_face_grid(theta, sigmas, x_aux, *, num_classes: int, model, mask, modes,
                 knows_defense: bool, cfg, defense_key) -> dict[str, jax.Array]:
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

  if not knows_defense:  # The clean model: the same images at every sigma.
    clean = attack(Deployment(None, theta, 0.0))
    return {mode: jnp.broadcast_to(clean, sigmas.shape + clean.shape) for mode in modes}
  return {mode: _over_sigmas(
      lambda s, mode=mode: attack(Deployment(defense_key, theta, s, mode, mask)), sigmas)
          for mode in modes}
