"""The programs experiments/benchmark.py times: the rmle grid program (medinv.models.layers or
flax's own layers), the per-target loop of jitted Adam steps, the matmul rate, and the timing
helpers."""
import functools
import time

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from configs import train_breastmnist
from medinv import data as data_lib
from medinv import defenses
from medinv import models
from medinv.core import sharding
from medinv.inversion import grid
from medinv.inversion import reconstruct
from medinv.inversion import objectives

SPLIT, OBJECTIVE, LEARNING_RATE = 4, 'feature_l2:1.0,tv:0.02', 0.05
DEFENSE = defenses.config_block('model_perturbation', modes=('fixed',), scope='edge')


def say(text: str) -> None:
  print(f'[{jax.default_backend()} x{jax.device_count()}] {text}', flush=True)


def block(tree):
  return jax.block_until_ready(tree)


def seconds(fn, *args, repeats: int = 1):
  """Best wall time of fn(*args) over `repeats` calls (after one untimed call)."""
  block(fn(*args))
  best = float('inf')
  for _ in range(repeats):
    start = time.perf_counter()
    block(fn(*args))
    best = min(best, time.perf_counter() - start)
  return best


def matmul_flops() -> float:
  """The machine's dense float32 matmul FLOP/s (best of sizes 1024, 2048)."""
  best = 0.0
  for n in (1024, 2048):
    a = jax.random.normal(jax.random.key(n), (n, n))
    best = max(best, 2 * n ** 3 / seconds(jax.jit(jnp.matmul), a, a, repeats=5))
  return best


def plain_edge(params, x):
  """The SplitCNN edge at split 4 with flax's own layers (nn.Conv's convolution, max_pool)."""
  for i in range(SPLIT):
    if i and i % 2 == 0:
      x = nn.max_pool(x, (2, 2), (2, 2))
    layer = params[f'conv{i + 1}']
    x = nn.relu(lax.conv_general_dilated(x, layer['kernel'], (1, 1), 'SAME',
                                         dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
                + layer['bias'])
  return x


def rmle_point(sigma, theta, x_targets, x_aux, *, model, steps: int):
  """One sigma through the model-inversion grid driver: the registered 'rmle' attack against
  the registered 'model_perturbation' defense (fixed, hospital A's layers)."""
  cfg = ml_collections.ConfigDict(dict(objective=OBJECTIVE, steps=steps,
                                       learning_rate=LEARNING_RATE))
  arrays = {'theta': theta, 'x_targets': x_targets, 'x_aux': x_aux, 'y_aux': x_aux[:, 0, 0, 0]}
  return grid.attack_at(sigma, arrays, {}, defense='model_perturbation',
                        defense_cfg=DEFENSE, defense_key=jax.random.key(0), attack='rmle',
                        cfg=cfg, model=model, split=SPLIT, knows_defense=True,
                        attack_key=jax.random.key(1), num_classes=0)['fixed']


def plain_rmle_point(sigma, theta, x_targets, x_aux, *, steps: int):
  """The same attack with flax's own layers in the edge (`plain_edge`)."""
  x0 = jnp.mean(x_aux, axis=0)
  mask = defenses.scope_mask(theta, 'edge', SPLIT)
  deployed = defenses.perturb_params(jax.random.key(0), theta, sigma, mask)
  return reconstruct.rmle(plain_edge, deployed, plain_edge(deployed, x_targets), x0,
                          objective=OBJECTIVE, steps=steps, learning_rate=LEARNING_RATE,
                          prior_image=x0)[0]


def compiled_rmle(fn, sigmas, theta, x_targets, x_aux, batch_size):
  """(compiled sweep program, its placed arguments) for the rmle grid over sigmas."""
  mesh = sharding.grid_mesh()
  grid_values, _ = sharding.shard_grid(np.asarray(sigmas, np.float32), mesh)
  args = (grid_values,) + sharding.replicate((theta, x_targets, x_aux), mesh)
  return sharding.program(fn, mesh, batch_size, 3).lower(*args).compile(), args


def loop_rmle(edge, sigmas, theta, x_targets, x0, steps):
  """He et al. / ART style: per sigma, per target, a Python loop of jitted Adam steps."""
  objective, tx = objectives.build(OBJECTIVE), optax.adam(LEARNING_RATE)

  @jax.jit
  def step(x, opt_state, params, v):
    ctx = objectives.Context(features_fn=lambda z: edge(params, z[None])[0],
                             target_features=v, prior_image=x0)
    grad = jax.grad(objective)(x, ctx)
    updates, opt_state = tx.update(grad, opt_state, x)
    return jnp.clip(x + updates, 0.0, 1.0), opt_state

  deploy = jax.jit(lambda s: defenses.perturb_params(
      jax.random.key(0), theta, s, defenses.scope_mask(theta, 'edge', SPLIT)))
  features = jax.jit(edge)
  warm = deploy(jnp.float32(sigmas[0]))  # Compile every jitted piece before timing.
  block(step(x0, tx.init(x0), warm, features(warm, x_targets)[0]))
  start, out = time.perf_counter(), []
  for sigma in sigmas:
    params = deploy(jnp.float32(sigma))
    v = features(params, x_targets)
    for i in range(x_targets.shape[0]):
      x, opt_state = x0, tx.init(x0)
      for _ in range(steps):
        x, opt_state = step(x, opt_state, params, v[i])
      out.append(x)
  out = block(jnp.stack(out))
  return time.perf_counter() - start, out.reshape((len(sigmas),) + x_targets.shape)


def rmle_inputs(targets: int, sigmas):
  """(model, theta, edge, x_targets, x_aux, x0, sigmas) of the rmle lines."""
  config = train_breastmnist.get_config()
  task = data_lib.load_task(config.data)
  x_targets = jnp.asarray(task.x_train[:targets])
  x_aux = jnp.asarray(task.x_test)
  model = models.SplitCNN(num_classes=task.num_classes)
  theta = model.init(jax.random.key(0), x_targets[:1])['params']
  return (model, theta, models.edge_fn(model, SPLIT), x_targets, x_aux,
          jnp.mean(x_aux, axis=0), [float(s) for s in sigmas])


def program_run(model, theta, x_targets, x_aux, sigmas, batch_size, steps):
  """(target-steps/s, seconds, compile seconds, reconstructions, compiled program) of the
  rmle grid program over `sigmas` (`batch_size` points vmapped, 0: all)."""
  start = time.perf_counter()
  fn = functools.partial(rmle_point, model=model, steps=steps)
  program, args = compiled_rmle(fn, sigmas, theta, x_targets, x_aux, batch_size)
  compile_seconds = time.perf_counter() - start
  start = time.perf_counter()
  out = block(program(*args))
  elapsed = time.perf_counter() - start
  return len(x_targets) * len(sigmas) * steps / elapsed, elapsed, compile_seconds, out, program
