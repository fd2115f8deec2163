"""Model-inversion attacks on collaborative inference (He et al. 2019) and MI-FACE.

Hospital A runs the target's edge (the layers up to the split point, `models.edge_fn`) and
sends v = edge(x). The attacks reconstruct x:

  `inverse_network` (black box, the paper's): query the deployed edge with the attacker's
      own images, train a decoder g on (edge(x_aux), x_aux) by pixel MSE, return g(v).
  `rmle` (white box): argmin_x objective(x; v), e.g. ||edge(x) - v||^2 + lambda TV(x), by
      Adam on the pixels projected onto [0, 1].
  `query_free`: no parameters, no queries; train a shadow edge on the attacker's labelled
      images (through hospital B's cloud layers, which the attacker holds), then `rmle` with
      the shadow edge (`train_shadow_edge` + `rmle`).
  `mi_face` (Fredrikson et al. 2015, white box on the whole model): gradient descent on the
      input to minimise a class-confidence objective, with Fredrikson et al.'s stopping rule
      (threshold gamma, no decrease over the last beta costs, step limit alpha), inside a
      `lax.while_loop`; it says how many steps each class took and which rule stopped it.

Every function here attacks a whole batch of targets in one traced program (vmap over the
targets, iterations inside `lax.scan` / `lax.while_loop`), so a caller can vmap it over a
whole defense grid (`medinv.inversion.grid`). The optimisation attacks take their
objective from `objectives` (a spec string or a built function).

Queries (`medinv.defenses.query_each` / `query_batch`): the deployed model answers query
number q with `Deployment.params_for(q)` (fresh noise per query under per-query defenses).
Query numbers are disjoint per use: targets are queries TARGET_QUERIES + i, the attacker's
queries ATTACKER_QUERIES + t, test-accuracy queries EVAL_QUERIES + i, and the other patients'
images whose features a passive attacker intercepts INTERCEPTED_QUERIES + i.
The registered attacks built from these functions are in `medinv.inversion.attacks`;
`medinv.inversion.noise_aware` holds the adaptive one against per-query noise (its decoder
trained with one query, so one perturbation, per image rather than per batch).
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from medinv.metrics import features as feature_metrics
from medinv import models
from medinv.data import images as image_lib
from medinv.inversion import objectives

TARGET_QUERIES = 0
ATTACKER_QUERIES = 1 << 24
EVAL_QUERIES = 1 << 25
INTERCEPTED_QUERIES = 3 << 24

EdgeApply = Callable[[Any, jax.Array], jax.Array]  # (params, images (n, h, w, c)) -> features


# ----------------------------------------------------------------------------- checks

def check_positive(name: str, value) -> None:
  if not value > 0:
    raise ValueError(f'{name} must be positive, got {value}')


def check_attack_images(targets: np.ndarray, aux: np.ndarray) -> None:
  """Targets and the attacker's images: same image shape, and no target among the aux set."""
  targets, aux = np.asarray(targets), np.asarray(aux)
  if targets.shape[1:] != aux.shape[1:]:
    raise ValueError(f'target images {targets.shape[1:]} and attacker images {aux.shape[1:]} '
                     'have different shapes')
  if not len(targets) or not len(aux):
    raise ValueError(f'need targets and attacker images, got {len(targets)} and {len(aux)}')
  aux_bytes = {np.ascontiguousarray(image).tobytes() for image in aux}
  overlap = [i for i, image in enumerate(targets)
             if np.ascontiguousarray(image).tobytes() in aux_bytes]
  if overlap:
    raise ValueError(f'the attacker image set overlaps the targets (target indices {overlap}); '
                     'the attacker must not hold the images it reconstructs')


# ----------------------------------------------------------------------------- optimisation

def _objective_fn(objective):
  return objectives.build(objective) if isinstance(objective, (str, tuple)) else objective


def optimize_image(objective_fn, ctx: objectives.Context, x0: jax.Array, *, steps: int,
                   learning_rate: float) -> tuple[jax.Array, jax.Array]:
  """Adam on the pixels of one image, projected onto [0, 1] after each step (a lax.scan).

  Returns (final image, objective value before each step (steps,)).
  """
  check_positive('steps', steps)
  tx = optax.adam(learning_rate)
  value_and_grad = jax.value_and_grad(objective_fn)

  def step(carry, _):
    x, opt_state = carry
    loss, grad = value_and_grad(x, ctx)
    updates, opt_state = tx.update(grad, opt_state, x)
    return (jnp.clip(x + updates, 0.0, 1.0), opt_state), loss

  (x, _), losses = jax.lax.scan(step, (x0, tx.init(x0)), None, length=steps)
  return x, losses


def rmle(edge_apply: EdgeApply, params, target_features: jax.Array, x0: jax.Array, *,
         objective, steps: int, learning_rate: float, prior_image=None
         ) -> tuple[jax.Array, jax.Array]:
  """White-box regularised maximum-likelihood inversion of a batch of feature vectors.

  Args:
    edge_apply: (params, images) -> features, the attacker's model of the edge.
    params: its parameters (the deployed ones, the clean ones, or a shadow's).
    target_features: (n, ...) features v sent for the n targets.
    x0: (h, w, c) start image, shared by all targets.
    objective: spec string ('feature_l2:1.0,tv:0.05') or a built `(x, ctx) -> scalar`.
    steps, learning_rate: Adam on the pixels.
    prior_image: optional (h, w, c) image for prior terms.

  Returns:
    reconstructions (n, h, w, c) in [0, 1] and losses (n, steps).
  """
  objective_fn = _objective_fn(objective)

  def one_target(features):
    ctx = objectives.Context(features_fn=lambda x: edge_apply(params, x[None])[0],
                             target_features=features, prior_image=prior_image)
    return optimize_image(objective_fn, ctx, x0, steps=steps, learning_rate=learning_rate)
  # broadcast params, start and prior image; vectorise the targets' features
  return jax.vmap(one_target)(target_features)


# ----------------------------------------------------------------------------- training

def _sample_batch(key: jax.Array, images: jax.Array, batch_size: int, augment_flip: bool):
  """(batch, index, flipped): the images, their rows in `images`, which ones were mirrored."""
  index_key, flip_key = jax.random.split(key)
  index = jax.random.choice(index_key, images.shape[0], (batch_size,),
                            replace=batch_size > images.shape[0])
  batch = images[index]
  if not augment_flip:
    return batch, index, jnp.zeros((batch_size,), bool)
  flipped = image_lib.flip_draws(flip_key, batch_size)
  return image_lib.flip_where(flipped, batch), index, flipped


# The largest feature table `train_decoder` looks batches up in (float32 bytes, per grid point);
# beyond it every step computes its batch's features.
FEATURE_TABLE_BYTES = 1 << 28


def feature_table(features_fn: Callable[[jax.Array], jax.Array], images: jax.Array,
                  augment_flip: bool) -> jax.Array:
  """(2, m, ...) features of every image and of its mirror: what a deterministic deployment
  answers to any batch `train_decoder` samples, computed once."""
  features = features_fn(images)
  mirrored = features_fn(images[:, :, ::-1]) if augment_flip else features  # never looked up
  return jnp.stack([features, mirrored])


def train_decoder(key: jax.Array, query_fn: Callable[[Any, jax.Array], jax.Array],
                  aux_images: jax.Array, *, decoder: nn.Module, steps: int, batch_size: int,
                  learning_rate: float, augment_flip: bool = True,
                  table: jax.Array | None = None) -> tuple[Any, jax.Array]:
  """Trains an inverse network on the attacker's own queries (Adam, pixel MSE, a lax.scan).

  Args:
    key: attack key (decoder init and batch sampling).
    query_fn: (query_number, images) -> features, the deployed edge answering the attacker;
      step t's batch is query number t.
    aux_images: (m, h, w, c) the attacker's images.
    decoder: features -> images module (`decoders.InverseDecoder`).
    table: `feature_table` of a deployment whose answers do not depend on the query number:
      each step looks its batch's features up instead of calling query_fn (same batches,
      same features).

  Returns:
    decoder params and per-step losses (steps,).
  """
  check_positive('decoder steps', steps)
  check_positive('decoder batch size', batch_size)
  init_key, data_key = jax.random.split(key)
  feature_spec = jax.eval_shape(lambda: query_fn(0, aux_images[:1]))
  params = decoder.init(init_key, jnp.zeros(feature_spec.shape, feature_spec.dtype))['params']
  tx = optax.adam(learning_rate)

  def loss_fn(params, features, images):
    return jnp.mean(jnp.square(decoder.apply({'params': params}, features) - images))

  def step(carry, t):
    params, opt_state = carry
    images, index, flipped = _sample_batch(jax.random.fold_in(data_key, t), aux_images,
                                           batch_size, augment_flip)
    features = query_fn(t, images) if table is None else table[flipped.astype(int), index]
    loss, grads = jax.value_and_grad(loss_fn)(params, features, images)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), jnp.arange(steps))
  return params, losses


def inverse_network(key: jax.Array, query_fn, aux_images: jax.Array,
                    target_features: jax.Array, *, decoder: nn.Module, **train_kwargs
                    ) -> tuple[jax.Array, jax.Array]:
  """Black-box attack: `train_decoder`, then decode the targets' features.

  Returns reconstructions (n, h, w, c) and the decoder's training losses (steps,).
  """
  params, losses = train_decoder(key, query_fn, aux_images, decoder=decoder, **train_kwargs)
  return decoder.apply({'params': params}, target_features), losses


def train_shadow_edge(key: jax.Array, aux_images: jax.Array, aux_labels: jax.Array, *,
                      model: nn.Module, split, cloud_params=None, steps: int,
                      batch_size: int, learning_rate: float, augment_flip: bool = True,
                      observed=None, mmd_weight: float = 0.0) -> tuple[dict, jax.Array]:
  """Query-free attack, step 1: a shadow edge trained for classification on the aux images.

  With `cloud_params` (hospital B's layers, which a cloud-side attacker holds), only the
  shadow edge is trained, through those fixed layers, so its features become compatible
  with the real edge's (He et al.). Without them, a whole shadow model is trained.
  With `observed` features (what hospital B received from the real edge), the loss adds
  mmd_weight x the squared MMD between the shadow's features of each batch and them
  (feature-space alignment, as FORA).

  model / split: the target's module and split (a `models.Split`, or SplitCNN's 2, 4, 6).
  Returns the shadow's params (edge subtree usable with `models.edge_fn`) and losses.
  """
  check_positive('shadow steps', steps)
  init_key, data_key = jax.random.split(key)
  shadow = model.init(init_key, aux_images[:1])['params']
  edge_names = models.edge_param_names(split)
  trainable = shadow if cloud_params is None else models.edge_params(shadow, split)
  frozen = {} if cloud_params is None else {n: v for n, v in cloud_params.items()
                                            if n not in edge_names}
  edge, cloud = models.edge_fn(model, split), models.cloud_fn(model, split)
  tx = optax.adam(learning_rate)

  def loss_fn(params, images, labels):
    full = {**frozen, **params}
    features = edge(full, images)
    logits = cloud(full, features)
    loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
    if observed is None:
      return loss
    return loss + mmd_weight * feature_metrics.mmd2(features, observed)

  def step(carry, t):
    params, opt_state = carry
    images, index, _ = _sample_batch(jax.random.fold_in(data_key, t), aux_images, batch_size,
                                      augment_flip)
    loss, grads = jax.value_and_grad(loss_fn)(params, images, aux_labels[index])
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  (trainable, _), losses = jax.lax.scan(step, (trainable, tx.init(trainable)),
                                        jnp.arange(steps))
  return models.edge_params(trainable, split), losses


# ----------------------------------------------------------------------------- MI-FACE

# Why an MI-FACE run stopped (`mi_face(...)['stopped_by']` indexes this tuple).
STOP_RULES = ('max_steps', 'patience', 'threshold')


def _stop_rule(step, cost, window, *, max_steps: int, threshold: float):
  """Fredrikson et al.'s rule after step `step` with cost c = `cost`: 2 (threshold) when
  c <= gamma, 1 (patience) when c >= max of the last beta costs (`window`, +inf until
  beta costs are seen), 0 (max_steps) at the step limit, -1 (keep going)."""
  return jnp.where(cost <= threshold, 2, jnp.where(
      cost >= jnp.max(window), 1, jnp.where(step >= max_steps, 0, -1))).astype(jnp.int32)


def mi_face(logits_apply: Callable[[Any, jax.Array], jax.Array], labels: jax.Array,
            x0: jax.Array, *, objective='class_conf:1.0', max_steps: int,
            learning_rate: float, patience: int, threshold: float, prior_image=None
            ) -> dict[str, jax.Array]:
  """MI-FACE (Fredrikson et al. 2015, Algorithm 1): gradient descent on the input, per label.

  x_0 = x0; x_i = clip(x_{i-1} - learning_rate * grad c(x_{i-1}), 0, 1), with c the
  objective (default 1 - softmax probability of the label). Stops after step i when
  c(x_i) <= threshold (gamma), or c(x_i) >= max(c(x_{i-1}), ..., c(x_{i-beta})) with
  beta = patience (checked once beta earlier costs exist: i >= beta), or i = max_steps
  (alpha); also before any step when c(x_0) <= threshold. Returns the iterate of least cost.
  The cost of x_i is evaluated once, with its gradient, by query number i.

  Args:
    logits_apply: (step, images) -> logits, the model answering gradient query `step`
      (fresh noise per step under 'per_query' perturbation).
    labels: (k,) classes to reconstruct.
    x0: (h, w, c) start image.

  Returns:
    {'images': (k, h, w, c) argmin_i c(x_i), 'cost': (k,) its cost, 'last_cost': (k,)
    c(x_steps), 'steps': (k,) steps taken, 'stopped_by': (k,) index into STOP_RULES}.
  """
  check_positive('mi_face max steps', max_steps)
  check_positive('mi_face patience', patience)
  objective_fn = _objective_fn(objective)
  stop = functools.partial(_stop_rule, max_steps=max_steps, threshold=threshold)

  def one_label(label):
    def cost(x, step):
      ctx = objectives.Context(logits_fn=lambda z: logits_apply(step, z[None])[0], label=label,
                               prior_image=prior_image)
      return objective_fn(x, ctx)
    value_and_grad = jax.value_and_grad(cost)

    def body(carry):
      step, x, value, grad, window, best_x, best_cost, _ = carry
      x = jnp.clip(x - learning_rate * grad, 0.0, 1.0)
      new_value, grad = value_and_grad(x, step + 1)
      stopped_by = stop(step + 1, new_value, window)
      window = jnp.roll(window, -1).at[-1].set(new_value)  # the last beta costs, oldest first
      improved = new_value < best_cost
      return (step + 1, x, new_value, grad, window, jnp.where(improved, x, best_x),
              jnp.where(improved, new_value, best_cost), stopped_by)

    value, grad = value_and_grad(x0, 0)
    window = jnp.full((patience,), jnp.inf, value.dtype).at[-1].set(value)
    first = jnp.where(value <= threshold, 2, -1).astype(jnp.int32)
    init = (jnp.zeros((), jnp.int32), x0, value, grad, window, x0, value, first)
    step, _, last, _, _, best_x, best_cost, stopped_by = jax.lax.while_loop(
        lambda carry: carry[-1] < 0, body, init)
    return {'images': best_x, 'cost': best_cost, 'last_cost': last, 'steps': step,
            'stopped_by': stopped_by}
  # broadcast the model and start image; vectorise the labels
  return jax.vmap(one_label)(jnp.asarray(labels))


def mean_image_baseline(aux_images: jax.Array, num_targets: int) -> jax.Array:
  """The no-model 'reconstruction': the attacker's mean image, once per target."""
  mean = jnp.mean(aux_images, axis=0)
  return jnp.broadcast_to(mean, (num_targets,) + mean.shape)
