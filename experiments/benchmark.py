"""Sweep benchmark: one compiled program per grid versus Python loops of jitted steps.

  ./launch.sh benchmark
  ./launch.sh benchmark --parts=rmle --steps=20
  ./launch.sh benchmark --cardio_dir=../shared/data/cardio

Prints, each line prefixed with the backend and device count:
  rmle (white box, split 4, 32x32 BreastMNIST targets, N targets x K sigmas): the compiled
    program (sharding.map_grid: targets vmapped, sigma points one at a time / all vmapped)
    versus a per-target Python loop of jitted Adam steps (as He et al.'s and ART's reference
    code run), in target-steps per second, and all vmapped / one at a time; with torch
    installed, the same attack in eager PyTorch (experiments/torch_reference.py); the same
    program with flax nn.Conv/nn.max_pool layers instead of medinv.models.layers (JAX's own
    batching), one sigma and all vmapped; achieved FLOP/s (XLA cost analysis) against the
    matmul FLOP/s measured in the same run; the one-sigma program again in a child process
    with XLA:CPU's default YNNPACK convolutions (this process runs them on Eigen, as every
    experiment does: medinv.core.xla.use_eigen_cpu_convolutions, set by cli.run);
  inverse-network training for K sigmas: vmapped versus K sequential runs, and their ratio;
  population training of 8 MLPs on cardio: vmapped versus sequential;
  the MAP attack on the 70,000 cardio records x every candidate: records per second (both
    read cardio from --cardio_dir before anything is timed; skipped with a line when the
    default folder lacks it);
  membership inference on heart_disease: K shadow MLPs (+ the target) trained as one vmapped
    population versus one at a time, in shadow models per second, and the whole LiRA attack
    (every model's outputs, every attack, metrics and the bootstrap) on the K shadows.
Not part of the tests; the models are untrained where only speed matters.
"""
import functools
import importlib.util
import os
import re
import subprocess
import sys
import time

from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from configs import membership_heart
from configs import train_breastmnist
from configs import train_cardio
from experiments.bench_programs import (DEFENSE, LEARNING_RATE, OBJECTIVE, SPLIT, block,
                                        compiled_rmle, loop_rmle, matmul_flops,
                                        plain_rmle_point, program_run, rmle_inputs, say,
                                        seconds)
from medinv.core import cli
from medinv.core import xla
from medinv import data as data_lib
from medinv import defenses
from medinv.training import experiment
from medinv.membership import experiment as membership_experiment
from medinv import models
from medinv.training import population
from medinv.core import sharding
from medinv.attribute import inference as attribute
from medinv.inversion import grid
from medinv.inversion import attacks as inversion_attacks
from medinv.inversion import objectives

flags.DEFINE_list('parts', ['rmle', 'decoder', 'population', 'map', 'membership'],
                  "What to measure (also 'rmle_program': the rmle program alone, one sigma at a "
                  'time, under the process\'s XLA_FLAGS).')
flags.DEFINE_integer('shadows', 16, 'Membership inference: shadow models K.')
flags.DEFINE_integer('targets', 64, 'rmle targets N.')
flags.DEFINE_list('sigmas', ['0.0', '0.01', '0.02', '0.05'], 'Defense sigmas K.')
flags.DEFINE_integer('steps', 50, 'rmle Adam steps.')
flags.DEFINE_integer('plain_steps', 10, 'rmle steps for the flax nn.Conv/nn.max_pool line.')
flags.DEFINE_integer('decoder_steps', 30, 'Inverse-network training steps.')
flags.DEFINE_integer('decoder_repeats', 2, 'Inverse network: timed runs of each line (the best).')
flags.DEFINE_string('cardio_dir', '../shared/data/cardio', 'Folder with cardio_train.csv.')
FLAGS = flags.FLAGS
PARTS = ('rmle', 'rmle_program', 'decoder', 'population', 'map', 'membership')


def bench_rmle_program():
  """Part 'rmle_program': only the one-sigma-at-a-time program, under this process's XLA_FLAGS
  (the rmle part runs it in a child process with XLA's default convolutions)."""
  model, theta, _, x_targets, x_aux, _, sigmas = rmle_inputs(FLAGS.targets, FLAGS.sigmas)
  rate = program_run(model, theta, x_targets, x_aux, sigmas, 1, FLAGS.steps)[0]
  say(f'rmle_program one sigma at a time, XLA_FLAGS={os.environ.get("XLA_FLAGS", "")!r}: '
      f'{rate:.1f} target-steps/s')


def xla_default_convolution_rate() -> float | None:
  """The rmle_program rate in a child process whose convolutions run as XLA:CPU's default
  YNNPACK fusions (this process sends them to XLA's Eigen convolution: cli.run calls
  medinv.core.xla.use_eigen_cpu_convolutions), or None when medinv's setting is not in force
  (another jaxlib, or XLA_FLAGS set the flag otherwise)."""
  ours = f'{xla.YNN_FLAG}={xla.YNN_SETTING}'
  flags_now = os.environ.get('XLA_FLAGS', '')
  if ours not in flags_now.split():
    return None
  # '+' adds to XLA's default list of YNNPACK fusions, which holds the convolutions already.
  env = dict(os.environ, XLA_FLAGS=flags_now.replace(
      ours, f'{xla.YNN_FLAG}=+individual_convolution'))
  child = subprocess.run(
      [sys.executable, '-m', 'experiments.benchmark', '--parts=rmle_program',
       f'--targets={FLAGS.targets}', f'--steps={FLAGS.steps}', f'--sigmas={FLAGS.sigmas[0]}'],
      env=env, capture_output=True, text=True, check=True)
  return float(re.findall(r'([0-9.]+) target-steps/s', child.stdout)[-1])


def bench_rmle():
  model, theta, edge, x_targets, x_aux, x0, sigmas = rmle_inputs(FLAGS.targets, FLAGS.sigmas)
  n, k, steps = len(x_targets), len(sigmas), FLAGS.steps
  work = n * k * steps
  say(f'rmle: N={n} targets x K={k} sigmas, split {SPLIT}, {x_targets.shape[1]}x'
      f'{x_targets.shape[2]} images, {steps} Adam steps ({work} target-steps)')
  peaks = [matmul_flops()]
  say(f'matmul (float32, jit): {peaks[0] / 1e9:.1f} GFLOP/s')
  rates = {}
  for batch_size, label in ((1, 'one sigma at a time'), (0, 'all sigmas vmapped')):
    rates[batch_size], elapsed, compile_seconds, out, program = program_run(
        model, theta, x_targets, x_aux, sigmas, batch_size, steps)
    say(f'rmle compiled program ({label}, targets vmapped, {steps} steps): '
        f'{rates[batch_size]:.1f} target-steps/s ({elapsed:.1f}s, compile {compile_seconds:.1f}s)')
    if batch_size == 1:
      compiled_out, compiled_elapsed, reported = out, elapsed, program.cost_analysis()['flops']
      peaks.append(matmul_flops())  # Again right after it: the machine may be shared.
      say(f'matmul (float32, jit), measured again: {peaks[1] / 1e9:.1f} GFLOP/s')
  default_rate = xla_default_convolution_rate()
  if default_rate is None:
    say(f'rmle with XLA\'s default convolutions: not measured (XLA_FLAGS sets {xla.YNN_FLAG}'
        ' already, or this jaxlib is not one medinv sets it for)')
  else:
    say(f'rmle one sigma at a time with XLA:CPU\'s default (YNNPACK) convolutions, in a child '
        f'process: {default_rate:.1f} target-steps/s; medinv\'s {xla.YNN_FLAG}='
        f'{xla.YNN_SETTING} (Eigen convolutions) is {rates[1] / default_rate:.2f}x faster')
  peak = max(peaks)
  loop_seconds, loop_out = loop_rmle(edge, sigmas, theta, x_targets, x0, steps)
  loop_rate = work / loop_seconds
  say(f'rmle per-target loop of jitted steps: {loop_rate:.1f} target-steps/s ({loop_seconds:.1f}s)')
  difference = np.abs(np.asarray(compiled_out)[:k] - np.asarray(loop_out))
  say(f'rmle compiled / loop: {rates[1] / loop_rate:.2f}x one sigma at a time, '
      f'{rates[0] / loop_rate:.2f}x all vmapped; reconstructions differ by {difference.mean():.1e}'
      f' on average (max {difference.max():.1e}: Adam steps amplify rounding)')

  if importlib.util.find_spec('torch') is None:
    say('rmle torch reference skipped: torch is not installed (to enable it: '
        '.venv/bin/pip install -r requirements-benchmark.txt)')
  else:
    from experiments import torch_reference  # Here: torch is optional.
    for line in torch_reference.report(
        jax.tree.map(np.asarray, theta), x_targets, x0, steps=steps,
        learning_rate=LEARNING_RATE, term_weights=dict(objectives.parse(OBJECTIVE)),
        medinv_out=np.asarray(compiled_out)[sigmas.index(0.0)] if 0.0 in sigmas else None,
        medinv_rate=rates[1], split=SPLIT):
      say(line)

  say(f'rmle all sigmas vmapped / one sigma at a time: {rates[0] / rates[1]:.2f}')
  plain = {}  # JAX's own layers and batching: a vmapped kernel is a feature-grouped conv
  for batch_size, points in ((1, sigmas[:1]), (0, sigmas)):
    program, args = compiled_rmle(functools.partial(plain_rmle_point, steps=FLAGS.plain_steps),
                                  points, theta, x_targets, x_aux, batch_size)
    start = time.perf_counter()  # compiled already: one timed call
    block(program(*args))
    plain[batch_size] = n * len(points) * FLAGS.plain_steps / (time.perf_counter() - start)
  say(f'rmle compiled, flax nn.Conv + nn.max_pool layers ({FLAGS.plain_steps} steps): '
      f'{plain[1]:.1f} target-steps/s one sigma, {plain[0]:.1f} all {k} vmapped '
      f'(ratio {plain[0] / plain[1]:.2f}); medinv.models.layers are {rates[1] / plain[1]:.1f}x / '
      f'{rates[0] / plain[0]:.1f}x faster')

  # XLA's cost analysis counts a loop body once: one step's count x steps, plus the prologue.
  step_fn = jax.jit(jax.vmap(lambda x, v, params: jax.grad(objectives.build(OBJECTIVE))(
      x, objectives.Context(features_fn=lambda z: edge(params, z[None])[0], target_features=v,
                            prior_image=x0)), in_axes=(0, 0, None)))
  v = edge(theta, x_targets)
  step_flops = step_fn.lower(x_targets, v, theta).compile().cost_analysis()['flops']
  prologue = jax.jit(edge).lower(theta, x_targets).compile().cost_analysis()['flops']
  total = k * (steps * step_flops + prologue)
  achieved = total / compiled_elapsed
  say(f'rmle FLOPs (XLA cost analysis): program reports {reported / 1e9:.1f} GFLOP (loop body '
      f'once); one step {step_flops / 1e9:.2f} GFLOP x {steps} steps x {k} sigmas + prologue '
      f'= {total / 1e9:.1f} GFLOP')
  say(f'rmle achieved {achieved / 1e9:.1f} GFLOP/s = {100 * achieved / peak:.0f}% of the '
      f'measured matmul {peak / 1e9:.1f} GFLOP/s (the higher of its two measurements)')


def bench_decoder():
  config = train_breastmnist.get_config()
  task = data_lib.load_task(config.data)
  x_aux = jnp.asarray(task.x_test)
  sigmas = np.asarray([float(s) for s in FLAGS.sigmas], np.float32)
  model = models.SplitCNN(num_classes=task.num_classes)
  theta = model.init(jax.random.key(0), x_aux[:1])['params']
  steps = FLAGS.decoder_steps
  cfg = inversion_attacks.config_block('inverse_network', steps=steps, batch_size=32, width=64,
                                       augment_flip=False)
  arrays = {'theta': theta, 'x_targets': x_aux[:8], 'x_aux': x_aux, 'y_aux': task.y_test}

  def train_one(sigma, theta, x_aux):  # the registered inverse network, decoder per sigma
    return grid.attack_at(sigma, dict(arrays, theta=theta, x_aux=x_aux), {},
                          defense='model_perturbation', defense_cfg=DEFENSE,
                          defense_key=jax.random.key(0), attack='inverse_network', cfg=cfg,
                          model=model, split=SPLIT, knows_defense=True,
                          attack_key=jax.random.key(1), num_classes=task.num_classes)['fixed']
  repeats = FLAGS.decoder_repeats  # Best of: each run is seconds long on a shared machine.
  vmapped = seconds(lambda: sharding.map_grid(train_one, sigmas, theta, x_aux), repeats=repeats)
  one_at_a_time = seconds(lambda: sharding.map_grid(train_one, sigmas, theta, x_aux, batch_size=1),
                          repeats=repeats)
  single = jax.jit(train_one)
  sequential = seconds(lambda: [block(single(sigma, theta, x_aux)) for sigma in sigmas],
                       repeats=repeats)
  work = len(sigmas) * steps
  say(f'inverse network, K={len(sigmas)} sigmas x {steps} steps (batch 32, width 64, split '
      f'{SPLIT}): vmapped {work / vmapped:.2f} steps/s, K sequential runs '
      f'{work / sequential:.2f} steps/s; one program with one sigma at a time '
      f'{work / one_at_a_time:.2f} steps/s')
  say(f'inverse network vmapped / sequential: {sequential / vmapped:.2f}')


def load_cardio():
  """(config, task) of cardio from --cardio_dir, loaded before any timing; None, with a line,
  when the default folder lacks it (a folder named on the command line must hold it)."""
  config = train_cardio.get_config()
  config.data.manual_dir = FLAGS.cardio_dir
  try:
    return config, data_lib.load_task(config.data)
  except data_lib.DataError as error:
    reason = str(error).splitlines()[0].rstrip('.')
    if FLAGS['cardio_dir'].present:
      raise data_lib.DataError(f'--cardio_dir={FLAGS.cardio_dir}: {reason}') from error
    say(f'population and map skipped: cardio is not in --cardio_dir={FLAGS.cardio_dir} '
        f'({reason}); pass --cardio_dir=<folder with cardio_train.csv>')
    return None


def bench_population(config, task):
  config.train.checkpoint_every_epochs = config.train.num_epochs
  grid = population.points(config)
  eight = {k: np.repeat(v, 8) for k, v in grid.items()}
  eight['seed'] = np.arange(8, dtype=np.int32)
  fit = lambda points: population.fit(config, task, points)[1].params
  vmapped = seconds(fit, eight)
  one = {k: v[:1] for k, v in eight.items()}
  block(fit(one))
  start = time.perf_counter()
  for i in range(8):
    block(fit({k: v[i:i + 1] for k, v in eight.items()}))
  sequential = time.perf_counter() - start
  say(f'population: 8 MLPs, {config.train.num_epochs} epochs of {len(task.x_train)} cardio '
      f'records (batch '
      f'{config.train.batch_size}): vmapped {8 / vmapped:.2f} models/s, sequential '
      f'{8 / sequential:.2f} models/s, ratio {sequential / vmapped:.2f}x')
  return config, task, jax.tree.map(lambda leaf: np.asarray(leaf)[0], fit(one))


def bench_map(config, task, params):
  records = np.concatenate([task.records_train.features, task.records_test.features])
  column = task.records_train.column_index('cholesterol')
  candidates = jnp.asarray(task.records_train.columns[column].candidates)
  model = models.build(config.model, task.num_classes)
  view_params = (params, jnp.asarray(task.scaler.mean), jnp.asarray(task.scaler.std))
  view_fn = functools.partial(defenses.candidate_view, apply_fn=model.apply, release='label',
                              decimals=1)
  features = jnp.asarray(records)
  released = jnp.argmax(defenses.model_probs(view_params, features, apply_fn=model.apply), -1)
  prior = jnp.full((candidates.shape[0],), 1.0 / candidates.shape[0])
  elapsed = seconds(lambda: attribute.map_attack(
      view_fn, view_params, features, released, prior, candidates, column=column,
      variant='indicator'), repeats=3)
  say(f'map_attack: {len(records)} cardio records x {candidates.shape[0]} candidates '
      f'(cholesterol): {len(records) / elapsed:,.0f} records/s ({elapsed * 1e3:.0f} ms)')


def bench_membership():
  config = membership_heart.get_config()
  config.membership.num_shadows = FLAGS.shadows
  config.defense.names = ()
  config.train.checkpoint_every_epochs = config.train.num_epochs
  task = data_lib.load_task(config.data)
  members = membership_experiment.draw_membership(
      config, len(membership_experiment.candidates(task)[0]))
  points = membership_experiment.model_points(config, members)
  size = len(members)
  fit = lambda pts: population.fit(config, task, pts)
  vmapped = seconds(lambda: fit(points)[1].params)
  one = lambda i: {k: v[i:i + 1] for k, v in points.items()}
  block(fit(one(0))[1].params)
  start = time.perf_counter()
  for i in range(size):
    block(fit(one(i))[1].params)
  sequential = time.perf_counter() - start
  say(f'membership: {size} heart_disease MLPs (target + {size - 1} shadows), '
      f'{config.train.num_epochs} epochs of {members.sum(1)[0]} records: vmapped '
      f'{size / vmapped:.1f} models/s, sequential {size / sequential:.1f} models/s, ratio '
      f'{sequential / vmapped:.2f}x')
  model, state, _ = fit(points)
  ctx = experiment.Context(config=config, workdir='', task=task)
  ctx.target = {'model': model, 'state': state, 'size': size, 'points': points,
                'membership': members}
  attack = seconds(
      lambda: membership_experiment.grid(ctx)['attacks'][config.attack.names[0]]['scores'],
      repeats=3)
  say(f'membership: LiRA on {size - 1} shadows ({len(config.attack.names)} attacks, '
      f'{members.shape[1]} candidates, {config.evaluation.bootstrap_samples} bootstrap '
      f'resamples): {attack * 1e3:.0f} ms')


def main(argv):
  del argv
  unknown = sorted(set(FLAGS.parts) - set(PARTS))
  if unknown:
    raise ValueError(f'--parts: unknown {", ".join(unknown)}; allowed: {", ".join(PARTS)}')
  logging.set_verbosity(logging.WARNING)
  say(f'devices: {jax.devices()}')
  cardio = None
  if 'population' in FLAGS.parts or 'map' in FLAGS.parts:
    cardio = load_cardio()
  if 'rmle' in FLAGS.parts:
    bench_rmle()
  if 'rmle_program' in FLAGS.parts:
    bench_rmle_program()
  if 'decoder' in FLAGS.parts:
    bench_decoder()
  if cardio is not None:
    config, task, params = bench_population(*cardio)
    if 'map' in FLAGS.parts:
      bench_map(config, task, params)
  if 'membership' in FLAGS.parts:
    bench_membership()


if __name__ == '__main__':
  cli.run(main, config_flag=None)
