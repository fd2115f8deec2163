"""PyTorch reference for the rmle benchmark (experiments/benchmark.py, optional).

The same white-box rMLE attack as medinv's `rmle` attack at sigma 0, written in eager
PyTorch, to compare medinv's compiled program with a plain PyTorch implementation:

  edge: the SplitCNN edge (medinv/models.py): 3x3 SAME convs with ReLU, a 2x2 max-pool before
    conv 3 and conv 5; medinv's NHWC / HWIO weights become NCHW / OIHW here;
  objective: medinv/attacks/objectives.py's terms, per target: feature_l2 = mean squared
    feature difference, tv = mean |vertical| + mean |horizontal| neighbour difference (with
    JAX's gradient of |d| at d = 0, which is +1, where torch's is 0); summed over targets, so
    each target's gradient is its own;
  optimiser: Adam on the pixels (torch's defaults are optax.adam's: b1 0.9, b2 0.999, eps
    1e-8 added after the square root), from x0 = the mean auxiliary image, every image
    clipped to [0, 1] after each step (medinv.inversion.reconstruct.optimize_image).

`rmle_batched` optimises all targets as one batch; `rmle_loop` one target at a time (a
Python loop, as He et al.'s and ART's reference code run). Both return (seconds,
reconstructions as a numpy array (n, h, w, c)). `report` times the batched attack on one
thread and on os.cpu_count() threads and compares medinv with the faster (on a machine other
jobs keep busy, torch's OpenMP threads wait on each other and run several times slower than
one thread). Needs torch: pip install -r requirements-benchmark.txt. Not
imported by medinv or the tests.
"""
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

TERMS = ('feature_l2', 'tv')


def edge_weights(theta, split: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
  """[(kernel OIHW, bias)] for conv1..conv{split} from medinv's SplitCNN params (HWIO)."""
  weights = []
  for i in range(split):
    layer = theta[f'conv{i + 1}']
    kernel = np.asarray(layer['kernel']).transpose(3, 2, 0, 1)
    weights.append((torch.from_numpy(np.array(kernel, np.float32, order='C')),
                    torch.from_numpy(np.array(layer['bias'], np.float32))))
  return weights


def edge(weights, x: torch.Tensor) -> torch.Tensor:
  """The SplitCNN edge on images (n, c, h, w): conv 1..split, each followed by ReLU."""
  for i, (kernel, bias) in enumerate(weights):
    if i and i % 2 == 0:
      x = F.max_pool2d(x, 2)
    x = F.relu(F.conv2d(x, kernel, bias, padding=kernel.shape[-1] // 2))
  return x


def jax_abs(d: torch.Tensor) -> torch.Tensor:
  """|d| whose gradient at d = 0 is +1, as jnp.abs's (torch.abs's is 0 there)."""
  return torch.where(d >= 0, d, -d)


def objective(x, features, target_features, term_weights: dict) -> torch.Tensor:
  """Sum over the targets of feature_l2 and tv, weighted, each as medinv defines it."""
  per_target = (term_weights.get('feature_l2', 0.0)
                * torch.square(features - target_features).mean(dim=(1, 2, 3)))
  if term_weights.get('tv', 0.0):
    tv = (jax_abs(x[:, :, 1:, :] - x[:, :, :-1, :]).mean(dim=(1, 2, 3))
          + jax_abs(x[:, :, :, 1:] - x[:, :, :, :-1]).mean(dim=(1, 2, 3)))
    per_target = per_target + term_weights['tv'] * tv
  return per_target.sum()


def attack(weights, x0, target_features, *, steps: int, learning_rate: float,
           term_weights: dict) -> torch.Tensor:
  """Adam on the pixels of one image per target, all from x0 (1, c, h, w), clipped to [0, 1]."""
  x = x0.expand(target_features.shape[0], -1, -1, -1).clone().requires_grad_(True)
  optimizer = torch.optim.Adam([x], lr=learning_rate)
  for _ in range(steps):
    optimizer.zero_grad(set_to_none=True)
    objective(x, edge(weights, x), target_features, term_weights).backward()
    optimizer.step()
    with torch.no_grad():
      x.clamp_(0.0, 1.0)
  return x.detach()


def prepare(theta, x_targets, x0, split: int, term_weights: dict):
  """(edge weights, targets NCHW, start image (1, c, h, w))."""
  unknown = set(term_weights) - set(TERMS)
  if unknown:
    raise ValueError(f'the torch reference has objective terms {TERMS}, not {sorted(unknown)}')
  return edge_weights(theta, split), to_nchw(x_targets), to_nchw(np.asarray(x0)[None])


def to_nchw(x) -> torch.Tensor:
  """A float32 torch copy (n, c, h, w) of images (n, h, w, c) (numpy or JAX)."""
  return torch.from_numpy(np.array(np.asarray(x).transpose(0, 3, 1, 2), np.float32, order='C'))


def to_nhwc(x: torch.Tensor) -> np.ndarray:
  return x.numpy().transpose(0, 2, 3, 1)


def rmle_batched(theta, x_targets, x0, *, steps: int, learning_rate: float,
                 term_weights: dict, split: int = 4) -> tuple[float, np.ndarray]:
  """All targets in one batch: (seconds, reconstructions (n, h, w, c)).

  Timed: the targets' features and the Adam steps, after a 2-step warm-up on the batch.
  """
  weights, targets, start = prepare(theta, x_targets, x0, split, term_weights)
  settings = dict(learning_rate=learning_rate, term_weights=term_weights)
  with torch.no_grad():
    warm_features = edge(weights, targets)
  attack(weights, start, warm_features, steps=2, **settings)
  begin = time.perf_counter()
  with torch.no_grad():
    target_features = edge(weights, targets)
  x = attack(weights, start, target_features, steps=steps, **settings)
  return time.perf_counter() - begin, to_nhwc(x)


def rmle_loop(theta, x_targets, x0, *, steps: int, learning_rate: float,
              term_weights: dict, split: int = 4) -> tuple[float, np.ndarray]:
  """One target at a time, a Python loop: (seconds, reconstructions (n, h, w, c))."""
  weights, targets, start = prepare(theta, x_targets, x0, split, term_weights)
  settings = dict(learning_rate=learning_rate, term_weights=term_weights)
  with torch.no_grad():
    warm_features = edge(weights, targets[:1])
  attack(weights, start, warm_features, steps=2, **settings)
  begin, out = time.perf_counter(), []
  for i in range(targets.shape[0]):
    with torch.no_grad():
      target_features = edge(weights, targets[i:i + 1])
    out.append(attack(weights, start, target_features, steps=steps, **settings))
  return time.perf_counter() - begin, to_nhwc(torch.cat(out))


def report(theta, x_targets, x0, *, steps: int, learning_rate: float, term_weights: dict,
           medinv_out, medinv_rate: float, loop_targets: int = 8, split: int = 4) -> list[str]:
  """The benchmark's torch lines: both rates, the agreement with medinv's reconstructions at
  sigma 0 (`medinv_out`, (n, h, w, c), or None) and medinv's rate over torch's batched one."""
  settings = dict(steps=steps, learning_rate=learning_rate, term_weights=term_weights,
                  split=split)
  n = len(x_targets)
  timed = {}
  for threads in sorted({1, os.cpu_count() or 1}):
    torch.set_num_threads(threads)
    timed[threads] = rmle_batched(theta, x_targets, x0, **settings)
  threads = min(timed, key=lambda t: timed[t][0])
  torch.set_num_threads(threads)
  batched_seconds, batched_out = timed[threads]
  batched_rate = n * steps / batched_seconds
  loop_seconds, _ = rmle_loop(theta, x_targets[:loop_targets], x0, **settings)
  loop_n = min(loop_targets, n)
  if medinv_out is None:
    agreement = 'not compared (no sigma 0 in --sigmas)'
  else:
    difference = np.abs(batched_out - np.asarray(medinv_out))
    agreement = f'mean abs difference {difference.mean():.1e} (max {difference.max():.1e})'
  rates = ', '.join(f'{n * steps / timed[t][0]:.1f} on {t} thread{"s" * (t > 1)}'
                    for t in sorted(timed))
  return [
      f'rmle torch {torch.__version__} batched eager ({n} targets in one batch, {steps} '
      f'steps): {rates} target-steps/s; the faster: {threads}',
      f'rmle torch per-target loop ({loop_n} targets, {steps} steps, {threads} threads): '
      f'{loop_n * steps / loop_seconds:.1f} target-steps/s ({loop_seconds:.1f}s)',
      f'rmle torch batched vs medinv compiled reconstructions at sigma 0: {agreement}',
      f'rmle medinv / torch batched: {medinv_rate / batched_rate:.2f}x',
  ]
