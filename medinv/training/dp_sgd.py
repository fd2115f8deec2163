"""DP-SGD: per-example clipping, Gaussian noise, Poisson sampling, and its privacy accounting.

The mechanism (Abadi et al. 2016) is written here in jax, not taken from optax's DP
transform: it has to run inside medinv's compiled training scan with the noise drawn from
the run's key tree (`defense` stream, fold_in(2), then epoch and step), and to be vmapped over
a population whose models differ in noise multiplier, which a transform built from Python
floats and seeded from an int cannot do. The accounting is Google's dp_accounting (RDP
accountant of the Poisson-subsampled Gaussian mechanism, and its Brent calibration from a
target epsilon to the noise multiplier), the maintained library the DP community audits.

Config (`config.train.dp`): target_epsilon (inf = ordinary training), delta (0 = 1 / (100 N),
N the training records: `default_delta`), clip_norm C. Each step every training record joins the batch independently
with probability q = batch_size / N (Poisson sampling, which is what the accountant assumes);
the batch is padded to `max_batch` rows with a mask, and a step whose draw exceeds max_batch
(probability under 1e-6 at the sizes used) keeps the first max_batch records. The summed
clipped gradient plus N(0, (noise_multiplier * C)^2) is divided by the expected batch size
q * N and handed to the optimizer (Adam: post-processing, so the guarantee holds).
"""
from __future__ import annotations

import contextlib
import dataclasses
import math

from absl import logging

import dp_accounting
import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Setting:
  """DP-SGD for one training run, as the training loop and the rows need it."""
  noise_multiplier: float
  clip_norm: float
  sample_rate: float
  steps: int
  delta: float
  epsilon: float  # Accounted at delta (inf when noise_multiplier is 0).
  max_batch: int


def check_config(dp_config, where: str = 'train.dp') -> None:
  """Clear errors for an epsilon, delta or clip norm no DP run can have."""
  eps, delta, clip = dp_config.target_epsilon, dp_config.delta, dp_config.clip_norm
  if not eps > 0:  # Also rejects nan.
    raise ValueError(f'{where}.target_epsilon must be > 0 (inf = no DP training), got {eps}')
  if not 0 <= delta < 1:
    raise ValueError(f'{where}.delta must be in [0, 1) (0 = 1 / (100 N), N the training '
                     'records), '
                     f'got {delta}')
  if not (clip > 0 and math.isfinite(clip)):
    raise ValueError(f'{where}.clip_norm must be a positive finite number, got {clip}')


def default_delta(num_records: int) -> float:
  """delta when train.dp.delta is 0: 1 / (100 N).

  delta = 1/N admits a mechanism that publishes each record whole with probability delta and
  so leaks one record in expectation; at 1 / (100 N) that mechanism leaks any record at all
  with probability at most 1%. (The common 1e-5 is below 1/N only for N < 100,000.)
  """
  return 1.0 / (100.0 * num_records)


def is_private(dp_config) -> bool:
  return math.isfinite(dp_config.target_epsilon)


def _event(noise_multiplier: float, sample_rate: float, steps: int):
  step = dp_accounting.PoissonSampledDpEvent(
      sample_rate, dp_accounting.GaussianDpEvent(noise_multiplier))
  return dp_accounting.SelfComposedDpEvent(step, steps)


@contextlib.contextmanager
def _quiet_accountant():
  """Hides the RDP accountant's per-order warnings: at small noise multipliers (tried while
  calibrating) some fractional orders fail to converge and are left out, which can only make
  the reported epsilon larger (the minimum over fewer orders); hundreds of lines otherwise."""
  verbosity = logging.get_verbosity()
  logging.set_verbosity(logging.ERROR)
  try:
    yield
  finally:
    logging.set_verbosity(verbosity)


def epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
  """Epsilon at delta of `steps` Poisson-sampled Gaussian steps (RDP accountant)."""
  if noise_multiplier <= 0:
    return math.inf
  accountant = dp_accounting.rdp.RdpAccountant()
  accountant.compose(_event(noise_multiplier, sample_rate, steps))
  with _quiet_accountant():
    return float(accountant.get_epsilon(delta))


def calibrate(target_epsilon: float, sample_rate: float, steps: int, delta: float) -> float:
  """The smallest noise multiplier whose accounted epsilon is at most target_epsilon."""
  if math.isinf(target_epsilon):
    return 0.0
  with _quiet_accountant():
    return float(dp_accounting.calibrate_dp_mechanism(
        dp_accounting.rdp.RdpAccountant, lambda sigma: _event(sigma, sample_rate, steps),
        target_epsilon, delta,
        bracket_interval=dp_accounting.LowerEndpointAndGuess(1e-3, 1.0), tol=1e-5))


def max_batch_size(num_records: int, sample_rate: float) -> int:
  """Rows of a padded Poisson batch: the mean plus 6 standard deviations (at least 8)."""
  mean = sample_rate * num_records
  bound = math.ceil(mean + 6 * math.sqrt(mean * (1 - sample_rate))) + 1
  return int(min(num_records, max(bound, 8)))


def setting(dp_config, num_records: int, batch_size: int, num_epochs: int,
            target_epsilon: float | None = None) -> Setting:
  """The run's DP-SGD: noise multiplier calibrated to target_epsilon (config's by default)."""
  eps = dp_config.target_epsilon if target_epsilon is None else target_epsilon
  sample_rate = min(1.0, batch_size / num_records)
  steps = num_epochs * math.ceil(num_records / batch_size)
  delta = dp_config.delta or default_delta(num_records)
  noise = calibrate(eps, sample_rate, steps, delta)
  return Setting(noise_multiplier=noise, clip_norm=float(dp_config.clip_norm) if noise else
                 math.inf, sample_rate=sample_rate, steps=steps, delta=delta,
                 epsilon=epsilon(noise, sample_rate, steps, delta),
                 max_batch=max_batch_size(num_records, sample_rate))


def training_arguments(config, num_records: int, defense_key: jax.Array):
  """(Setting, medinv.training.trainer.train_epoch's DP arguments) of config.train.dp; (None, {})
  without DP.

  The noise of DP-SGD is drawn from fold_in(defense, 2) (fold_in(defense, 0) flips labels).
  """
  if not is_private(config.train.dp):
    return None, {}
  run = setting(config.train.dp, num_records, config.train.batch_size, config.train.num_epochs)
  return run, {'dp_batch': run.max_batch, 'dp_params': {
      'noise_multiplier': jnp.float32(run.noise_multiplier),
      'clip_norm': jnp.float32(run.clip_norm), 'key': jax.random.fold_in(defense_key, 2)}}


def model_metrics(run: Setting | None) -> dict[str, float]:
  """What every trained model records about its DP training (epsilon inf without it)."""
  if run is None:
    return {'dp_epsilon': math.inf, 'noise_multiplier': 0.0}
  return {'dp_epsilon': run.epsilon, 'delta': run.delta, 'noise_multiplier': run.noise_multiplier,
          'clip_norm': run.clip_norm, 'sample_rate': run.sample_rate, 'dp_steps': run.steps}


def poisson_batches(key: jax.Array, num_records: int, sample_rate, steps: int,
                    max_batch: int) -> tuple[jax.Array, jax.Array]:
  """(steps, max_batch) record indices and 0/1 mask; step s draws from fold_in(key, s).

  Each record joins step s's batch independently with probability sample_rate; the
  included records come first, in random order, then padding (mask 0).
  """
  def one(step):
    include_key, order_key = jax.random.split(jax.random.fold_in(key, step))
    include = jax.random.bernoulli(include_key, sample_rate, (num_records,))
    u = jax.random.uniform(order_key, (num_records,))
    order = jnp.argsort(jnp.where(include, u, 1.0 + u))[:max_batch]
    return order, (jnp.arange(max_batch) < jnp.sum(include)).astype(jnp.float32)
  return jax.vmap(one)(jnp.arange(steps))


def clip_per_example(per_example_grads, clip_norm):
  """Scales each example's gradient (leading axis of every leaf) to L2 norm <= clip_norm."""
  squares = sum(jnp.sum(jnp.reshape(g, (g.shape[0], -1)) ** 2, axis=1)
                for g in jax.tree.leaves(per_example_grads))
  norms = jnp.sqrt(squares)
  factor = jnp.minimum(1.0, clip_norm / jnp.maximum(norms, 1e-12))
  return jax.tree.map(lambda g: g * jnp.reshape(factor, (-1,) + (1,) * (g.ndim - 1)),
                      per_example_grads)


def add_noise(key: jax.Array, summed, noise_multiplier, clip_norm):
  """summed + N(0, (noise_multiplier * clip_norm)^2) per coordinate (nothing at multiplier 0)."""
  std = jnp.where(noise_multiplier > 0, noise_multiplier * clip_norm, 0.0)
  leaves, treedef = jax.tree.flatten(summed)
  noisy = [leaf + std * jax.random.normal(jax.random.fold_in(key, i), leaf.shape, leaf.dtype)
           for i, leaf in enumerate(leaves)]
  return jax.tree.unflatten(treedef, noisy)


def private_grads(key: jax.Array, params, x, y, mask, *, example_loss, noise_multiplier,
                  clip_norm, expected_batch):
  """DP-SGD's gradient: (sum of clipped per-example gradients + noise) / expected_batch.

  example_loss(params, x_i, y_i) -> scalar loss of one example; mask zeroes padding rows.
  Returns (gradient, mean loss over the batch's records).
  """
  losses, per_example = jax.vmap(jax.value_and_grad(example_loss), in_axes=(None, 0, 0))(
      params, x, y)
  clipped = clip_per_example(per_example, clip_norm)
  summed = jax.tree.map(lambda g: jnp.tensordot(mask, g, axes=1), clipped)
  noisy = add_noise(key, summed, noise_multiplier, clip_norm)
  loss = jnp.sum(losses * mask) / jnp.maximum(jnp.sum(mask), 1.0)
  return jax.tree.map(lambda g: g / expected_batch, noisy), loss
