"""An evaluation classifier that judges class representatives (MI-FACE's reconstructions).

SSIM against a class's mean image says little about whether an inversion recovered the class:
a representative can carry the class's evidence and still look nothing like the average
image. Following the model-inversion literature (e.g. Zhang et al. 2020, "The Secret
Revealer"), a separately trained classifier labels each representative: attack accuracy is
the fraction labelled as their intended class, confidence the mean softmax probability of that
class. The evaluator differs from the target SplitCNN in architecture, width and key (its
own stream), and is trained only on the attacker's labelled images, so agreement means the
representative carries class evidence that transfers, not an adversarial quirk of the target.

    params = evaluation.train_evaluator(key, x_aux, y_aux, model=EvalCNN(2, width=16),
                                        steps=300, batch_size=32, learning_rate=1e-3)
    judged = evaluation.judge(params, images, jnp.arange(2), model=EvalCNN(2, width=16))

Batches are drawn class-balanced (each class equally likely), so a skewed auxiliary set does
not teach the evaluator to answer the majority class for every input. Training is one
`lax.scan`; batch t uses `fold_in(key, t)`.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from medinv.models import layers
from medinv.data import images as image_lib

FOLD = 15  # the evaluator's fold of the attack key stream (attacks use 0-5 and >= 16)

# The evaluator's settings, held in the block of every attack it judges (config.attack.mi_face).
DEFAULTS = dict(eval_width=16, eval_steps=300, eval_batch_size=32, eval_learning_rate=2e-3)


class EvalCNN(nn.Module):
  """Two conv layers (width, 2 x width), each with a 2x2 max-pool, then a dense layer."""
  num_classes: int
  width: int = 16

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for features in (self.width, 2 * self.width):
      x = layers.max_pool_2x2(nn.relu(layers.Conv(features)(x)))
    x = nn.relu(nn.Dense(4 * self.width)(x.reshape(x.shape[0], -1)))
    return nn.Dense(self.num_classes)(x)


def balanced_weights(labels: jax.Array, num_classes: int) -> jax.Array:
  """Sampling probability per image so that every present class is drawn equally often."""
  counts = jnp.bincount(labels, length=num_classes)
  weights = 1.0 / jnp.maximum(counts[labels], 1)
  return weights / jnp.sum(weights)


def train_evaluator(key: jax.Array, images: jax.Array, labels: jax.Array, *, model: EvalCNN,
                    steps: int, batch_size: int, learning_rate: float,
                    augment_flip: bool = True) -> tuple[dict, jax.Array]:
  """Trains the evaluation classifier (Adam, cross-entropy, class-balanced batches).

  Args:
    key: the evaluator's key (initialisation, then batches: fold_in(batch_key, t)).
    images: (m, h, w, c) the attacker's labelled images; labels: (m,) their classes.
    model: the evaluator (`EvalCNN`).
    steps, batch_size, learning_rate: the training loop.
    augment_flip: mirror each batch image left-right with probability 1/2.

  Returns:
    (params, per-step losses (steps,)).
  """
  if not (steps > 0 and batch_size > 0 and learning_rate > 0):
    raise ValueError(f'evaluator steps, batch size and learning rate must be positive, got '
                     f'{steps}, {batch_size}, {learning_rate}')
  images, labels = jnp.asarray(images), jnp.asarray(labels)
  init_key, batch_key = jax.random.split(key)
  params = model.init(init_key, images[:1])['params']
  weights = balanced_weights(labels, model.num_classes)
  tx = optax.adam(learning_rate)

  def loss_fn(params, batch, batch_labels):
    logits = model.apply({'params': params}, batch)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, batch_labels))

  def step(carry, t):
    params, opt_state = carry
    index_key, flip_key = jax.random.split(jax.random.fold_in(batch_key, t))
    index = jax.random.choice(index_key, images.shape[0], (batch_size,), p=weights)
    batch = images[index]
    batch = image_lib.random_flip(flip_key, batch) if augment_flip else batch
    loss, grads = jax.value_and_grad(loss_fn)(params, batch, labels[index])
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), jnp.arange(steps))
  return params, losses


def judge(params, images: jax.Array, labels: jax.Array, *, model: EvalCNN
          ) -> dict[str, jax.Array]:
  """The evaluator's verdict on images meant to show class `labels`.

  Returns:
    {'predicted': (k,) the evaluator's class, 'correct': (k,) predicted == label,
    'confidence': (k,) its softmax probability of the intended label}.
  """
  probs = jax.nn.softmax(model.apply({'params': params}, images), axis=-1)
  predicted = jnp.argmax(probs, axis=-1)
  return {'predicted': predicted, 'correct': predicted == labels,
          'confidence': jnp.take_along_axis(probs, labels[:, None], axis=-1)[:, 0]}


def summary(judged: dict) -> dict[str, float]:
  """Row columns: eval_accuracy (fraction labelled as intended), eval_confidence (mean)."""
  return {'eval_accuracy': float(np.mean(judged['correct'])),
          'eval_confidence': float(np.mean(judged['confidence']))}
