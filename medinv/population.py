"""Population training: K target models in one program, vmapped over training hyperparameters.

Model k is what `medinv.train.train_and_evaluate` trains for config.seed = seed_k,
train.label_flip_prob = p_k and train.learning_rate = lr_k (same key tree, same epochs,
same label perturbation), so a population equals K sequential runs up to float rounding.
The K models are the points of the sweep's vmapped axes (`TRAIN_AXES`); they train
sharded over every device (`sharding.map_grid_sharded`), a chunk of epochs per program, with
an orbax checkpoint of the whole population after each chunk (each process saves its own
shards), so a killed run resumes where it stopped.

For record datasets, when the config has an `attack` section (configs/aia_*.py), the
attribute-inference MAP attack runs against every model of the population in the same
program as its evaluation: the released label is the model's prediction (the training-time
label flip is the defense under study), and each row carries the model's test accuracy and
the prior-only baseline, so each row is a point on a privacy-utility curve.

Keys (medinv.keys), per model: named_keys(seed_k); `init` initialises it, epoch e shuffles
with fold_in(data, e), fold_in(defense, 0) flips its training labels (as medinv.train).
"""
from __future__ import annotations

import functools
import json
import os
import time

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from medinv import axes as axes_lib
from medinv import checkpoint
from medinv import data as data_lib
from medinv import defenses
from medinv import distributed
from medinv import keys as keys_lib
from medinv import models
from medinv import report
from medinv import sharding
from medinv import train

TRAIN_AXES = ('seed', 'train.label_flip_prob', 'train.learning_rate')
SEED, FLIP, LR = TRAIN_AXES


def points(config) -> dict[str, np.ndarray]:
  """The population's hyperparameters {axis: (K,)} from the sweep axes (config defaults)."""
  axes = axes_lib.grid_axes(config, TRAIN_AXES)
  defaults = {SEED: config.seed, FLIP: float(config.train.label_flip_prob),
              LR: float(config.train.learning_rate)}
  return axes_lib.grid_points(axes, defaults)


def _optimizer(point, weight_decay: float):
  return train.make_optimizer(point[LR], weight_decay)


def training_labels(point, y, *, num_classes: int):
  """Model k's training labels: randomized response at its flip_prob (identity at 0)."""
  defense_key = keys_lib.named_keys(point[SEED])['defense']
  return defenses.randomized_response(jax.random.fold_in(defense_key, 0), y, point[FLIP],
                                      num_classes)


def init_one(point, sample_x, *, model, weight_decay: float) -> train.TrainState:
  init_key = keys_lib.named_keys(point[SEED])['init']
  return train.init_state(init_key, model, _optimizer(point, weight_decay), sample_x)


def train_chunk(state_point, x, y, first_epoch, *, model, weight_decay: float,
                batch_size: int, augment_flip: bool, num_epochs: int, num_classes: int):
  """num_epochs epochs of one model from first_epoch: (state, point) -> (state, last loss)."""
  state, point = state_point
  data_key = keys_lib.named_keys(point[SEED])['data']
  state, losses = train.run_epochs(
      state, data_key, first_epoch, x, training_labels(point, y, num_classes=num_classes),
      num_epochs=num_epochs, apply_fn=model.apply, tx=_optimizer(point, weight_decay),
      batch_size=batch_size, augment_flip=augment_flip)
  return state, losses[-1]


@functools.lru_cache(maxsize=None)
def chunk_fn(model, weight_decay, batch_size, augment_flip, num_epochs, num_classes):
  """Cached per static setting, so every chunk of the same length reuses one program."""
  return functools.partial(train_chunk, model=model, weight_decay=weight_decay,
                           batch_size=batch_size, augment_flip=augment_flip,
                           num_epochs=num_epochs, num_classes=num_classes)


def fit(config, task: data_lib.Task, population: dict[str, np.ndarray], *,
        checkpoint_dir: str | None = None, mesh=None):
  """Trains the population; returns (model, padded sharded TrainState, K).

  The state's leading axis is the population padded to a multiple of the device count
  (entry k < K is model k); `sharding.gather` brings it to the host.
  """
  model = models.build(config.model, task.num_classes)
  tc = config.train
  mesh = sharding.grid_mesh() if mesh is None else mesh
  x, y = np.asarray(task.x_train), np.asarray(task.y_train)  # Placed by sharding (any process).
  state, size = sharding.map_grid_sharded(init_fn(model, float(tc.weight_decay)), population,
                                       x[:1], mesh=mesh)
  mngr, epoch = None, 0
  if checkpoint_dir:
    padded = sharding.padded_size(size, mesh.size)  # Checkpoints hold the padded population.
    mngr = checkpoint.manager(os.path.join(checkpoint_dir, f'padded_{padded}'))
    epoch, restored = checkpoint.restore_latest(mngr, state)
    if restored is not None:
      state = restored
      logging.info('population of %d resumed from epoch %d', size, epoch)
  start = time.time()
  while epoch < tc.num_epochs:
    chunk = min(tc.checkpoint_every_epochs, tc.num_epochs - epoch)
    fn = chunk_fn(model, float(tc.weight_decay), tc.batch_size, tc.augment_flip, chunk,
                  task.num_classes)
    (state, losses), _ = sharding.map_grid_sharded(fn, (state, population), x, y,
                                                np.int32(epoch), mesh=mesh)
    epoch += chunk
    if mngr is not None:
      checkpoint.save(mngr, epoch, state)
    logging.info('population of %d: epoch %d/%d, %.1fs', size, epoch, tc.num_epochs,
                 time.time() - start)
  if mngr is not None:
    mngr.wait_until_finished()
    mngr.close()
  return model, state, size


@functools.lru_cache(maxsize=None)
def init_fn(model, weight_decay):
  return functools.partial(init_one, model=model, weight_decay=weight_decay)


# ----------------------------------------------------------------------------- evaluation

def prepare_attack(config, task: data_lib.Task):
  """Arrays and static settings of the MAP attack on every sensitive attribute, and the
  no-model baselines.

  Targets, auxiliary records, priors and the baselines come from medinv.aia (the attack
  stream of config.seed picks the non-member targets and, folded per attribute as in
  medinv.aia, trains the baseline classifier), the same for every model of the population.

  Returns:
    (host arrays, settings, group sizes, baselines {attribute: {'prior', 'classifier':
    accuracy [members, non-members]}}).
  """
  from medinv import aia
  from medinv.attacks import attribute
  streams = keys_lib.named_keys(config.seed)
  targets, member, aux = aia.attack_sets(task, jax.random.fold_in(streams['attack'], 0),
                                         config.attack)
  fields = ('column', 'candidates', 'prior', 'targets', 'target_truth', 'member', 'aux')
  arrays = {'scaler': (jnp.asarray(task.scaler.mean), jnp.asarray(task.scaler.std)),
            'attributes': {}}
  baselines = {}
  classifier = dict(hidden=tuple(config.attack.hidden), steps=config.attack.steps,
                    learning_rate=config.attack.learning_rate,
                    weight_decay=config.attack.weight_decay)
  for a, name in enumerate(config.attack.sensitive):
    attribute_arrays = aia.attribute_arrays(targets, member, aux, task, name)
    arrays['attributes'][name] = {k: attribute_arrays[k] for k in fields}
    column = attribute_arrays['column']
    guesses = attribute.baseline_attack(
        jax.random.fold_in(jax.random.fold_in(streams['attack'], 1 + a), 0),
        attribute.known_attributes(attribute_arrays['aux'], column),
        attribute_arrays['aux_truth'],
        attribute.known_attributes(attribute_arrays['targets'], column),
        attribute_arrays['prior'], **classifier)
    baselines[name] = {
        kind: np.asarray(aia.group_accuracy(guess == attribute_arrays['target_truth'],
                                            attribute_arrays['member']))
        for kind, guess in guesses.items()}
  settings = (('variants', tuple(config.attack.map_variants)),
              ('release', config.defense.release), ('decimals', config.defense.decimals),
              ('eps', float(config.attack.eps)))
  sizes = {'members': int(member.sum()), 'non-members': int((1 - member).sum())}
  return jax.tree.map(np.asarray, arrays), settings, sizes, baselines


def map_accuracy(params, arrays, *, apply_fn, variants, release, decimals, eps) -> dict:
  """MAP attack accuracy [members, non-members] per attribute and variant."""
  from medinv import aia
  from medinv.attacks import attribute
  view_params = (params,) + tuple(arrays['scaler'])
  view_fn = functools.partial(defenses.candidate_view, apply_fn=apply_fn, release=release,
                              decimals=decimals)
  channel = functools.partial(defenses.release_channel, jax.random.key(0), flip_prob=0.0,
                              release=release, decimals=decimals, noise_std=0.0)
  out = {}
  for name, a in arrays['attributes'].items():
    _, released = channel(defenses.model_probs(view_params, a['targets'], apply_fn=apply_fn))
    aux_probs = defenses.model_probs(view_params, a['aux'], apply_fn=apply_fn)
    confusion = attribute.confusion_matrix(jnp.argmax(aux_probs, -1), channel(aux_probs)[1],
                                           aux_probs.shape[-1])
    truth = a['target_truth']
    out[name] = {'map': {}}
    for variant in variants:
      guess = attribute.map_attack(view_fn, view_params, a['targets'], released, a['prior'],
                                   a['candidates'], column=a['column'], variant=variant,
                                   confusion=confusion, eps=eps)
      out[name]['map'][variant] = aia.group_accuracy(guess == truth, a['member'])
  return out


def evaluate_one(state_point, x_train, y_train, x_test, y_test, attack_arrays, *, apply_fn,
                 attack_settings):
  """Utility of one model and, with attack arrays, the MAP attack against it."""
  state, _ = state_point
  out = {f'train_{k}': v for k, v in train.evaluate(state.params, x_train, y_train,
                                                      apply_fn=apply_fn).items()}
  out.update({f'test_{k}': v for k, v in train.evaluate(state.params, x_test, y_test,
                                                          apply_fn=apply_fn).items()})
  if attack_arrays:
    out['attack'] = map_accuracy(state.params, attack_arrays, apply_fn=apply_fn,
                                 **dict(attack_settings))
  return out


@functools.lru_cache(maxsize=None)
def evaluate_fn(apply_fn, attack_settings):
  return functools.partial(evaluate_one, apply_fn=apply_fn, attack_settings=attack_settings)


def run(config, workdir: str) -> dict:
  """Trains the population of config (a sweep run), evaluates and attacks it, writes results."""
  train.validate(config)
  start = time.time()
  population = points(config)
  checkpoint.check_compatible(
      os.path.join(workdir, 'config.json'), json.loads(json.dumps(config.to_dict())),
      train.CHECKPOINT_FIELDS + tuple(f'sweep.axes.{axis}' for axis in TRAIN_AXES))
  report.write_config(workdir, config)
  task = distributed.writer_first(lambda: data_lib.load_task(config.data))
  model, state, size = fit(config, task, population,
                           checkpoint_dir=os.path.join(workdir, 'checkpoints'))
  attack_arrays, attack_settings, group_sizes, baselines = {}, (), {}, {}
  if 'attack' in config and data_lib.is_records(config.data.dataset):
    attack_arrays, attack_settings, group_sizes, baselines = prepare_attack(config, task)
  evaluated = sharding.map_grid(evaluate_fn(model.apply, attack_settings), (state, population),
                             task.x_train, task.y_train, task.x_test, task.y_test,
                             attack_arrays)
  rows = population_rows(config, population, evaluated, group_sizes, baselines)
  test_accuracy = evaluated['test_accuracy']
  metrics = {'models': size, 'test_accuracy_mean': float(np.mean(test_accuracy)),
             'test_accuracy_min': float(np.min(test_accuracy)),
             'test_accuracy_max': float(np.max(test_accuracy)),
             'test_majority_accuracy': float(np.max(np.bincount(task.y_test)) / len(task.y_test))}
  if group_sizes:
    member_rows = [r['attack_accuracy'] for r in rows if r['targets'] == 'members']
    metrics['attack_accuracy_max'] = float(np.max(member_rows))
  return report.write_results(workdir, 'population', metrics, rows, time.time() - start)


def _value(x) -> float:
  return float(str(np.float32(x)))  # 0.0003, not float32's 0.0003000000142492354


def _baseline_columns(baseline: dict, group: int, attack_accuracy: float) -> dict:
  prior, classifier = float(baseline['prior'][group]), float(baseline['classifier'][group])
  return {'prior_accuracy': prior, 'baseline_classifier_accuracy': classifier,
          'best_baseline_accuracy': max(prior, classifier),
          'advantage': attack_accuracy - max(prior, classifier)}


def population_rows(config, population, evaluated, group_sizes, baselines) -> list[dict]:
  """One row per model, or per (model, attribute, variant, target group) with an attack.

  Attack rows carry the no-model baselines (the prior's majority guess and the classifier
  from the other attributes) and the attack's advantage over the better of the two.
  """
  rows = []
  for k in range(len(population[SEED])):
    model_row = {'dataset': config.data.dataset, 'model': config.model,
                 'seed': int(population[SEED][k]),
                 'label_flip_prob': _value(population[FLIP][k]),
                 'learning_rate': _value(population[LR][k]),
                 'train_accuracy': float(evaluated['train_accuracy'][k]),
                 'test_accuracy': float(evaluated['test_accuracy'][k]),
                 'test_loss': float(evaluated['test_loss'][k])}
    if not group_sizes:
      rows.append(model_row)
      continue
    for name in config.attack.sensitive:
      attack = evaluated['attack'][name]
      for variant, accuracy in attack['map'].items():
        for g, group in enumerate(('members', 'non-members')):
          if group_sizes[group]:
            rows.append({**model_row, 'attribute': name, 'attack': 'map', 'variant': variant,
                         'targets': group, 'n': group_sizes[group],
                         'attack_accuracy': float(accuracy[k, g]),
                         **_baseline_columns(baselines[name], g, float(accuracy[k, g]))})
  return rows
