"""DP audits: lower bounds on epsilon from canaries a DP-SGD run did or did not train on.

K models train with DP-SGD on the dataset's training records plus m canaries, each canary in
each model independently with probability 1/2 (a canary that is out is drawn by Poisson
sampling as usual and adds nothing to the step: population.TRAIN_MASK, so an out-model is
DP-SGD on the other records, the add/remove neighbour DP-SGD's accounting is about). The K
models are one program on the population engine (medinv.training.population). Each canary is
scored by the model's logit-scaled confidence in its label (phi, as membership inference's
attacks; for one record across models every per-record attack, LiRA or the loss threshold, is
a monotone map of phi, and every threshold is scanned). Two audits read the scores, both by
jax_privacy.auditing's `CanaryScoreAuditor`:

  multi_run    canary 0 across the K independent runs: Clopper-Pearson bounds on TPR and FPR
               at every threshold (Bonferroni over thresholds), epsilon >= log((TPR_low -
               delta) / FPR_high) (Jagielski et al. 2020); K independent trials, so the
               bound holds at the stated confidence;
  one_run      the m canaries of run 0 (Steinke, Nasr and Jagielski 2023), and one_run_fdp
               its f-DP refinement (Mahloujifar et al. 2024).

Each row also carries the bound's `ceiling`: what the same audit would give were in- and
out-scores perfectly separated, i.e. the most that audit could show at its size.

Canaries (`audit.canary`): 'outlier', points outside the data (each feature at
+-audit.canary_scale standard deviations from its mean, random signs) labelled against the
data's trend there (`against_trend`), which a model gets right only by memorising them;
'mislabelled', test records with a wrong label.

`audit.fault` deliberately breaks the mechanism while the accounted epsilon stays the claimed
one, so an audit can be seen to catch it: 'noise_div10' (noise multiplier / 10) or
'no_clipping' (no clipping, the same noise standard deviation).
"""
from __future__ import annotations

import dataclasses
import io
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from medinv import data as data_lib
from medinv.core import distributed
from medinv.core import keys as keys_lib
from medinv.core import report
from medinv.core import sharding
from medinv.membership import attacks
from medinv.training import dp_sgd
from medinv.training import experiment
from medinv.training import population as population_lib
from medinv.training import trainer

FAULTS = ('', 'noise_div10', 'no_clipping')
CANARIES = ('outlier', 'mislabelled')
AUDITS = ('multi_run', 'one_run', 'one_run_fdp')
SCORES = ('confidence', 'gradient')
UNCLIPPED = 1e6  # 'no_clipping': a clip norm no per-example gradient reaches


def validate(config) -> None:
  """Clear errors for an audit block no audit can run."""
  audit = config.audit
  trainer.validate(config)
  if not dp_sgd.is_private(config.train.dp):
    raise ValueError('train.dp.target_epsilon: a DP audit needs a finite claimed epsilon, '
                     f'got {config.train.dp.target_epsilon}')
  if not data_lib.is_records(config.data.dataset):
    raise ValueError(f'data.dataset: the DP audit runs on record datasets, got '
                     f'{config.data.dataset!r}')
  if audit.fault not in FAULTS:
    raise ValueError(f'audit.fault must be one of {FAULTS}, got {audit.fault!r}')
  if audit.score not in SCORES:
    raise ValueError(f'audit.score must be one of {SCORES}, got {audit.score!r}')
  if audit.score == 'gradient' and not audit.shared_init:
    raise ValueError("audit.score 'gradient' measures the move from the shared start: it "
                     'needs audit.shared_init True')
  if audit.canary not in CANARIES:
    raise ValueError(f'audit.canary must be one of {CANARIES}, got {audit.canary!r}')
  if not audit.num_models >= 4:
    raise ValueError(f'audit.num_models must be >= 4, got {audit.num_models}')
  if not audit.num_canaries >= 2:
    raise ValueError(f'audit.num_canaries must be >= 2, got {audit.num_canaries}')
  if not 0.5 <= audit.confidence < 1:
    raise ValueError(f'audit.confidence must be in [0.5, 1), got {audit.confidence}')


def canaries(key: jax.Array, task: data_lib.Task, kind: str, count: int,
             scale: float) -> tuple[np.ndarray, np.ndarray]:
  """(x (count, ...), y (count,)): the audit's canaries (module docstring)."""
  shape_key, label_key, pick_key = jax.random.split(key, 3)
  if kind == 'outlier':
    std = np.std(task.x_train, axis=0) + 1e-6
    signs = np.asarray(jax.random.rademacher(shape_key, (count,) + task.x_train.shape[1:]))
    x = np.mean(task.x_train, axis=0) + scale * std * signs
    y = against_trend(task, x)
  else:
    if count > len(task.x_test):
      raise ValueError(f'audit.num_canaries {count}: \'mislabelled\' canaries are test '
                       f'records, and there are {len(task.x_test)}')
    pick = np.asarray(jax.random.choice(pick_key, len(task.x_test), (count,), replace=False))
    shift = np.asarray(jax.random.randint(label_key, (count,), 1, task.num_classes))
    x, y = task.x_test[pick], (task.y_test[pick] + shift) % task.num_classes
  return x.astype(task.x_train.dtype), y.astype(task.y_train.dtype)


def against_trend(task: data_lib.Task, x: np.ndarray) -> np.ndarray:
  """Per point of x, the class a least-squares linear fit of the training records' one-hot
  labels rates least likely there: the label a model not trained on the point is least
  likely to give it (chosen from the data, before and apart from the audited runs)."""
  flat = task.x_train.reshape(len(task.x_train), -1).astype(np.float64)
  design = np.concatenate([flat, np.ones((len(flat), 1))], axis=1)
  onehot = np.eye(task.num_classes)[task.y_train]
  weights = np.linalg.lstsq(design, onehot, rcond=None)[0]
  points = np.concatenate([x.reshape(len(x), -1), np.ones((len(x), 1))], axis=1)
  return np.argmin(points @ weights, axis=1)


def inclusion(key: jax.Array, num_models: int, count: int) -> np.ndarray:
  """(num_models, count) bool: canary j is in model k, independently with probability 1/2."""
  return np.asarray(jax.random.bernoulli(key, 0.5, (num_models, count)))


def broken(fault: str):
  """The population's `privacy` hook for audit.fault (None for the correct mechanism)."""
  if not fault:
    return None

  def privacy(points: dict, dp_batch: int) -> tuple[dict, int]:
    points = dict(points)
    noise, clip = points[population_lib.DP_NOISE], points[population_lib.DP_CLIP]
    if fault == 'noise_div10':
      points[population_lib.DP_NOISE] = noise / 10
    else:  # Same noise std (multiplier x clip norm), no per-example gradient clipped.
      points[population_lib.DP_NOISE] = noise * clip / UNCLIPPED
      points[population_lib.DP_CLIP] = np.full_like(clip, UNCLIPPED)
    return points, dp_batch
  return privacy


@dataclasses.dataclass(frozen=True)
class Design:
  """The audit's training set, canaries and which model trains on which canary."""
  task: data_lib.Task  # x_train, y_train: the training records, then the canaries
  canary_x: np.ndarray
  canary_y: np.ndarray
  included: np.ndarray  # (K, m) bool
  points: dict  # the population's points, TRAIN_MASK included


def design(config, task: data_lib.Task) -> Design:
  """Canaries from the attack stream of config.seed; model k has seed config.seed + k."""
  audit = config.audit
  attack_key = keys_lib.named_keys(config.seed)['attack']
  x_c, y_c = canaries(jax.random.fold_in(attack_key, 0), task, audit.canary,
                      int(audit.num_canaries), float(audit.canary_scale))
  included = inclusion(jax.random.fold_in(attack_key, 1), int(audit.num_models),
                       int(audit.num_canaries))
  k, n = int(audit.num_models), len(task.x_train)
  mask = np.concatenate([np.ones((k, n), np.float32), included.astype(np.float32)], axis=1)
  points = {population_lib.SEED: config.seed + np.arange(k, dtype=np.int32),
            population_lib.FLIP: np.zeros(k, np.float32),
            population_lib.LR: np.full(k, config.train.learning_rate, np.float32),
            population_lib.EPSILON: np.full(k, config.train.dp.target_epsilon, np.float32),
            population_lib.TRAIN_MASK: mask}
  if audit.shared_init:
    points[population_lib.INIT_SEED] = np.full(k, config.seed, np.int32)
  audited = dataclasses.replace(task, x_train=np.concatenate([task.x_train, x_c]),
                                y_train=np.concatenate([task.y_train, y_c]))
  return Design(audited, x_c, y_c, included, points)


def model_outputs(params, x_c, y_c, x_test, y_test, *, apply_fn):
  """One model's phi on the canaries (m,) and its test accuracy."""
  phi = attacks.logit_confidence(apply_fn({'params': params}, x_c), y_c)
  accuracy = jnp.mean(jnp.argmax(apply_fn({'params': params}, x_test), -1) == y_test)
  return phi, accuracy


def gradient_scores(params, start, x_c, y_c, *, apply_fn):
  """(m,) how far one model moved from the shared start against each canary's loss gradient
  there: -<theta - theta_0, g_j> / |g_j|, g_j the gradient of canary j's cross-entropy at
  theta_0 (a white-box score: the auditor knows the start; Nasr et al. 2021)."""
  def loss(p, x1, y1):
    logits = apply_fn({'params': p}, x1[None])
    return optax.softmax_cross_entropy_with_integer_labels(logits, y1[None])[0]
  grads = jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))(start, x_c, y_c)
  moved = jax.tree.map(lambda a, b: a - b, params, start)
  dot = sum(jnp.sum(jnp.reshape(g, (g.shape[0], -1)) * jnp.ravel(m)[None], axis=1)
            for g, m in zip(jax.tree.leaves(grads), jax.tree.leaves(moved)))
  norm = jnp.sqrt(sum(jnp.sum(jnp.reshape(g, (g.shape[0], -1)) ** 2, axis=1)
                      for g in jax.tree.leaves(grads)))
  return -dot / jnp.maximum(norm, 1e-12)


def scores(config, model, state, size: int, d: Design, task: data_lib.Task):
  """(scores (K, m), test accuracy (K,)) of the population's K models, on the host: phi, or
  under audit.score 'gradient' the white-box `gradient_scores` (needs audit.shared_init)."""
  params = sharding.gather(state.params)
  params = jax.tree.map(lambda leaf: leaf[:size], params)
  fn = jax.jit(jax.vmap(lambda p: model_outputs(p, d.canary_x, d.canary_y, task.x_test,
                                                task.y_test, apply_fn=model.apply)))
  phi, accuracy = jax.device_get(fn(params))
  if config.audit.score == 'gradient':
    start = model.init(keys_lib.named_keys(config.seed)['init'], d.task.x_train[:1])['params']
    phi = jax.device_get(jax.jit(jax.vmap(lambda p: gradient_scores(
        p, start, d.canary_x, d.canary_y, apply_fn=model.apply)))(params))
  return np.asarray(phi, np.float64), np.asarray(accuracy, np.float64)


def lower_bound(audit: str, in_scores, out_scores, delta: float, confidence: float) -> float:
  """jax_privacy's epsilon lower bound of `audit` (AUDITS) from in- and out-canary scores."""
  from jax_privacy import auditing  # pylint: disable=g-import-not-at-top  # ~1 s; audits only
  auditor = auditing.CanaryScoreAuditor(np.asarray(in_scores), np.asarray(out_scores))
  significance = 1.0 - confidence
  if audit == 'multi_run':
    return float(auditor.epsilon_clopper_pearson(significance, delta))
  method = auditor.epsilon_one_run if audit == 'one_run' else auditor.epsilon_one_run_fdp
  return float(method(significance, max(delta, 1e-300)))


def ceiling(audit: str, num_in: int, num_out: int, delta: float, confidence: float) -> float:
  """The bound `audit` gives on perfectly separated scores of these sizes: its most."""
  return lower_bound(audit, np.ones(num_in), np.zeros(num_out), delta, confidence)


def audit_rows(phi: np.ndarray, included: np.ndarray, *, delta: float,
               confidence: float) -> list[dict]:
  """One row per audit: its epsilon lower bound, ceiling, counts and the scores' AUC."""
  from scipy import stats
  samples = {'multi_run': (phi[included[:, 0], 0], phi[~included[:, 0], 0]),
             'one_run': (phi[0, included[0]], phi[0, ~included[0]])}
  samples['one_run_fdp'] = samples['one_run']
  rows = []
  for audit in AUDITS:
    ins, outs = samples[audit]
    if len(ins) == 0 or len(outs) == 0:
      raise ValueError(f'audit {audit}: no {"in" if len(ins) == 0 else "out"}-canary scores; '
                       'raise audit.num_models or audit.num_canaries')
    u = stats.mannwhitneyu(ins, outs).statistic
    rows.append({'audit': audit, 'in_scores': len(ins), 'out_scores': len(outs),
                 'auc': float(u / (len(ins) * len(outs))),
                 'epsilon_lower_bound': lower_bound(audit, ins, outs, delta, confidence),
                 'ceiling': ceiling(audit, len(ins), len(outs), delta, confidence)})
  return rows


def accounted(config, num_records: int) -> dp_sgd.Setting:
  """The claimed mechanism's DP-SGD setting (what a correct run's epsilon is accounted as)."""
  tc = config.train
  return dp_sgd.setting(tc.dp, num_records, tc.batch_size, tc.num_epochs)


# ----------------------------------------------------------------------------- experiment

def fit_target(config, task: data_lib.Task, workdir: str) -> dict:
  """Trains (or resumes) the audit's K models under the (maybe broken) mechanism."""
  d = design(config, task)
  model, state, size = population_lib.fit(
      config, d.task, d.points, checkpoint_dir=os.path.join(workdir, 'population'),
      privacy=broken(config.audit.fault))
  return {'model': model, 'state': state, 'size': size, 'design': d}


def grid(ctx) -> dict:
  """Scores the canaries; writes them (phi (K, m), included (K, m)) to canary_scores.npz,
  so a program can audit them again (e.g. with another jax_privacy threshold strategy)."""
  target = ctx.target
  phi, accuracy = scores(ctx.config, target['model'], target['state'], target['size'],
                         target['design'], ctx.task)
  if distributed.is_writer():
    buffer = io.BytesIO()
    np.savez(buffer, phi=phi, included=target['design'].included, test_accuracy=accuracy)
    report.write_atomic(os.path.join(ctx.workdir, 'canary_scores.npz'), buffer.getvalue())
  return {'phi': phi, 'accuracy': accuracy}


def rows(ctx, outputs: dict) -> tuple[dict, list[dict]]:
  config, d = ctx.config, ctx.target['design']
  setting = accounted(config, len(d.task.x_train))
  shared = {'dataset': data_lib.source_name(config.data), 'fault': config.audit.fault or 'none',
            'canary': config.audit.canary, 'claimed_epsilon': setting.epsilon,
            'delta': setting.delta, 'confidence': float(config.audit.confidence)}
  found = audit_rows(outputs['phi'], d.included, delta=setting.delta,
                     confidence=float(config.audit.confidence))
  accuracy = outputs['accuracy']
  metrics = {'dp_epsilon': setting.epsilon, 'delta': setting.delta,
             'noise_multiplier': setting.noise_multiplier, 'clip_norm': setting.clip_norm,
             'num_models': int(config.audit.num_models),
             'num_canaries': int(config.audit.num_canaries), 'fault': shared['fault'],
             'mean_test_accuracy': float(np.mean(accuracy)),
             'test_accuracy_low': float(np.min(accuracy)),
             'test_accuracy_high': float(np.max(accuracy))}
  return metrics, [{**shared, **row} for row in found]


SPEC = experiment.Spec(name='dp_audit', validate=validate, grid=grid, rows=rows,
                       target=fit_target)


def run(config, workdir: str) -> dict:
  """The DP audit of config (module docstring) in workdir: results.json / results.csv."""
  return experiment.run(SPEC, config, workdir)
