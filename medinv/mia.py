"""The model-inversion experiment: attacks x splits x defense grid, next to model utility.

`run(config, workdir)` trains (or reuses) the target SplitCNN in workdir/target, then for
every split, attack and attacker view runs one compiled program over the sigma grid (sharded
over every device by `sharding.map_grid`, vmapped on each; fed `attack.grid_chunk` sigmas per
device per call), both perturbation modes and all targets
(`medinv.attacks.grid`), and writes workdir/results.json
+ results.csv (one row per attack, split, sigma, mode, attacker view) and figures.

Every attack row carries the deployed model's test accuracy under the same perturbation
(`model_test_accuracy`), so each row is a point on a privacy-utility curve; the rows with
attack 'mean_aux_image' are the no-model baseline (the attacker's mean image as the
reconstruction of every target). MI-FACE reconstructs classes, so its rows compare each
class's reconstruction with that class's mean training image (reference 'class_mean').

Keys (medinv.keys): `init`, `data` train the target; `defense` draws the model perturbation
(the same key for every split and sigma: noise = sigma * the same normal draw); `attack`:
fold 0 picks the targets, then one fold per attack (ATTACK_FOLDS: decoder init and batches,
shadow model init and batches).
"""
from __future__ import annotations

import functools
import io
import os
import shutil
import time

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from medinv import data as data_lib
from medinv import defenses
from medinv import distributed
from medinv import keys as keys_lib
from medinv import metrics
from medinv import mia_figures
from medinv import models
from medinv import progress
from medinv import report
from medinv import axes as axes_lib
from medinv import sharding
from medinv import train
from medinv.attacks import grid
from medinv.attacks import inversion
from medinv.attacks import objectives

ATTACKS = ('inverse_network', 'rmle', 'query_free', 'mi_face')
# attack key folds (fold 0 picks the targets)
ATTACK_FOLDS = {'inverse_network': 1, 'query_free': 2, 'rmle': 3, 'mi_face': 4}


def validate(config) -> None:
  """Every config error, before any data is read or compute spent."""
  train.validate(config)
  if config.model != 'split_cnn':
    raise ValueError(f"model inversion attacks the SplitCNN; got model {config.model!r}")
  attack, defense = config.attack, config.defense
  unknown = [name for name in attack.names if name not in ATTACKS]
  if unknown or not attack.names:
    raise ValueError(f'unknown attacks {unknown} in {tuple(attack.names)}; known: {ATTACKS}')
  if not attack.splits:
    raise ValueError('attack.splits is empty')
  for split in attack.splits:
    models.check_split(split)
  if not defense.sigmas:
    raise ValueError('defense.sigmas is empty (use (0.0,) for no defense)')
  negative = [s for s in defense.sigmas if not s >= 0]
  if negative:
    raise ValueError(f'defense.sigmas must be >= 0, got {negative}')
  bad_modes = [m for m in defense.modes if m not in defenses.MODES]
  if bad_modes or not defense.modes:
    raise ValueError(f'defense.modes {tuple(defense.modes)}: allowed {defenses.MODES}')
  if defense.scope not in defenses.SCOPES:
    raise ValueError(f'defense.scope {defense.scope!r}: allowed {defenses.SCOPES}')
  if not attack.knows_defense or any(not isinstance(k, bool) for k in attack.knows_defense):
    raise ValueError(f'attack.knows_defense must be a non-empty tuple of bools, got '
                     f'{attack.knows_defense}')
  objectives.parse(attack.objective)
  objectives.parse(attack.mi_face_objective)
  for field in ('num_targets', 'rmle_steps', 'rmle_learning_rate', 'decoder_steps',
                'decoder_batch_size', 'decoder_width', 'decoder_learning_rate', 'shadow_steps',
                'shadow_batch_size', 'shadow_learning_rate', 'mi_face_max_steps',
                'mi_face_patience', 'mi_face_learning_rate'):
    inversion.check_positive(f'attack.{field}', attack[field])
  if not 0 < attack.figure_targets <= attack.num_targets:
    raise ValueError(f'attack.figure_targets must be in 1..num_targets ({attack.num_targets}), '
                     f'got {attack.figure_targets}')
  if attack.grid_chunk < 0:
    raise ValueError(f'attack.grid_chunk must be >= 0, got {attack.grid_chunk}')


def select_targets(key: jax.Array, task: data_lib.Task, num_targets: int) -> np.ndarray:
  """Indices of the training images under attack (a fixed random subset)."""
  if num_targets > len(task.x_train):
    raise ValueError(f'attack.num_targets={num_targets} but the training set has only '
                     f'{len(task.x_train)} images')
  return np.sort(np.asarray(jax.random.permutation(key, len(task.x_train))[:num_targets]))


def _quality_row(reconstructions, references) -> dict:
  return metrics.quality_summary(jnp.asarray(reconstructions), jnp.asarray(references))


def class_means(task: data_lib.Task) -> np.ndarray:
  """Mean training image per class, (num_classes, h, w, c) (MI-FACE's reference)."""
  return np.stack([task.x_train[task.y_train == c].mean(axis=0)
                   for c in range(task.num_classes)]).astype(np.float32)


def _start_workdir(workdir: str, config) -> str:
  """Writes config.json; keeps workdir/partial (finished stages) only if the config is the same.

  Returns the partial-results directory.
  """
  partial = os.path.join(workdir, 'partial')
  if distributed.is_writer():
    if not report.same_config(workdir, config) and os.path.isdir(partial):
      shutil.rmtree(partial)
    os.makedirs(partial, exist_ok=True)
  report.write_config(workdir, config)
  distributed.sync('mia_workdir')
  return partial


def _stage(partial: str, name: str, compute) -> dict[str, np.ndarray]:
  """compute() -> {str: array}, saved as partial/<name>.npz so a killed run resumes here.

  Process 0 decides whether the stage is done (every process reads the shared workdir) and
  is the one that writes it.
  """
  path = os.path.join(partial, f'{name}.npz')
  if distributed.broadcast_from_writer(os.path.exists(path)):
    with np.load(path, allow_pickle=False) as saved:
      logging.info('reusing %s', path)
      return {key: saved[key] for key in saved.files}
  arrays = {key: np.asarray(value) for key, value in compute().items()}
  if distributed.is_writer():
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    report.write_atomic(path, buffer.getvalue())
  return arrays


def _params_stage(partial: str, name: str, train_fn, *args) -> dict:
  """jit(train_fn)(*args) (a nested dict of parameters), kept as a stage: host arrays."""
  flat = _stage(partial, name, lambda: axes_lib.flatten(jax.jit(train_fn)(*args)))
  tree = {}
  for path, value in flat.items():  # {'a.b': array} -> {'a': {'b': array}}
    *parents, leaf = path.split('.')
    node = tree
    for part in parents:
      node = node.setdefault(part, {})
    node[leaf] = value
  return tree


def _over_grid(partial: str, name: str, sigmas: np.ndarray, chunk: int, call
               ) -> dict[str, np.ndarray]:
  """call(sigmas) -> {mode: (n, ...)} over the grid, `chunk` sigmas per device per call (0: all).

  Each call is a stage (kept in `partial`); the last chunk is padded by repeating its last
  sigma, so every call has the same shapes and the program compiles once.
  """
  size = len(sigmas) if chunk <= 0 else min(chunk * jax.device_count(), len(sigmas))
  parts, start_time = [], time.time()
  for start in range(0, len(sigmas), size):
    values = sigmas[start:start + size]
    padded = np.concatenate([values, np.repeat(values[-1:], size - len(values))])
    out = _stage(partial, f'{name}_from{start}', lambda padded=padded: call(padded))
    parts.append({key: value[:len(values)] for key, value in out.items()})
    done = start + len(values)
    if done < len(sigmas):  # progress within a long grid (the caller logs its end)
      elapsed = time.time() - start_time
      logging.info('%s: sigma %d/%d  elapsed %s  eta %s', name, done, len(sigmas),
                   progress.format_seconds(elapsed),
                   progress.format_seconds(elapsed / done * (len(sigmas) - done)))
  return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def _attack_call(name: str, view, split: int, partial: str, *, theta, x_targets, x_aux, y_aux,
                 model, mask, modes, cfg, defense_key, attack_key, num_classes):
  """sigmas -> {mode: reconstructions (n_sigma, ...)} for one attack and attacker view.

  The sigma grid is sharded over every device (`sharding.map_grid`; host arrays in, host arrays
  out). Sigma-independent preparation (shadow model, clean decoder) runs once, as its own
  stage.
  """
  common = dict(model=model, mask=mask, modes=modes, cfg=cfg, defense_key=defense_key)

  def at(grid_fn, **static):  # the per-sigma function sharding.map_grid maps over the grid
    return functools.partial(grid.at_sigma, grid_fn, **static)

  if name == 'mi_face':
    fn = at(grid.mi_face_grid, num_classes=num_classes, knows_defense=view, **common)
    return lambda s: sharding.map_grid(fn, s, theta, x_aux)
  if name == 'rmle':
    fn = at(grid.rmle_grid, split=split, knows_defense=view, **common)
    return lambda s: sharding.map_grid(fn, s, theta, x_targets, x_aux)
  prepare = dict(model=model, split=split, cfg=cfg, attack_key=attack_key)
  if name == 'query_free':
    shadow = _params_stage(partial, f'split{split}_shadow',
                           functools.partial(grid.train_shadow, **prepare), theta, x_aux, y_aux)
    fn = at(grid.query_free_grid, split=split, **common)
    return lambda s: sharding.map_grid(fn, s, theta, x_targets, x_aux, shadow)
  fn = at(grid.inverse_network_grid, split=split, knows_defense=view, attack_key=attack_key,
          **common)
  if view:
    return lambda s: sharding.map_grid(fn, s, theta, x_targets, x_aux)
  clean_decoder = _params_stage(partial, f'split{split}_clean_decoder',
                                functools.partial(grid.train_clean_decoder, **prepare), theta,
                                x_targets, x_aux)
  return lambda s: sharding.map_grid(fn, s, theta, x_targets, x_aux, clean_decoder)


def run(config, workdir: str) -> dict:
  """Runs the experiment; writes results and figures into workdir; returns the results dict.

  Each (split, attack) program's outputs are kept in workdir/partial, so rerunning a killed
  run with the same config recomputes only the missing programs.
  """
  validate(config)
  start_time = time.time()
  partial = _start_workdir(workdir, config)
  attack_cfg, defense_cfg = config.attack, config.defense
  streams = keys_lib.named_keys(config.seed)
  attack_key, defense_key = streams['attack'], streams['defense']

  task = distributed.writer_first(lambda: data_lib.load_task(config.data))
  target_index = select_targets(jax.random.fold_in(attack_key, 0), task, attack_cfg.num_targets)
  x_targets_np = task.x_train[target_index]
  inversion.check_attack_images(x_targets_np, task.x_test)  # The attacker holds the test split.

  trained = train.train_and_evaluate(config, os.path.join(workdir, 'target'))
  # Host arrays: `sharding.map_grid` places them on every device of every process.
  model, theta = trained.model, jax.device_get(trained.params)
  x_targets, x_aux, y_aux = x_targets_np, task.x_test, task.y_test
  sigmas = np.asarray(defense_cfg.sigmas, np.float32)
  modes = tuple(defense_cfg.modes)
  means = class_means(task)

  rows, recon = [], {}
  baseline = inversion.mean_image_baseline(x_aux, len(x_targets))
  clean_accuracy = trained.metrics['test_accuracy']
  for reference, images in (('target', x_targets), ('class_mean', means)):
    rows.append(dict(attack='mean_aux_image', split=None, sigma=None, mode=None,
                     knows_defense=None, reference=reference,
                     **_quality_row(baseline[:len(images)], images),
                     model_test_accuracy=clean_accuracy, n_targets=len(images)))

  for split in attack_cfg.splits:
    mask = defenses.scope_mask(theta, defense_cfg.scope, split)
    accuracy_fn = functools.partial(grid.at_sigma, grid.accuracy_grid, model=model,
                                    modes=modes, mask=mask, defense_key=defense_key)
    accuracy = _over_grid(partial, f'split{split}_accuracy', sigmas, attack_cfg.grid_chunk,
                          lambda s, fn=accuracy_fn: sharding.map_grid(fn, s, theta, x_aux, y_aux))
    logging.info('split %d: test accuracy under perturbation %s', split, accuracy)
    for name in attack_cfg.names:
      attack_start = time.time()
      views = (None,) if name == 'query_free' else tuple(attack_cfg.knows_defense)
      for view in views:
        call = _attack_call(name, view, split, partial, theta=theta, x_targets=x_targets,
                            x_aux=x_aux, y_aux=y_aux, model=model, mask=mask, modes=modes,
                            cfg=attack_cfg, defense_key=defense_key,
                            attack_key=jax.random.fold_in(attack_key, ATTACK_FOLDS[name]),
                            num_classes=task.num_classes)
        outputs = _over_grid(partial, f'split{split}_{name}_{view}', sigmas,
                             attack_cfg.grid_chunk, call)
        references = means if name == 'mi_face' else x_targets
        for mode, images in outputs.items():
          for i, sigma in enumerate(defense_cfg.sigmas):
            recon[name, split, mode, view, sigma] = images[i]
            rows.append(dict(attack=name, split=split, sigma=sigma, mode=mode,
                             knows_defense=view,
                             reference='class_mean' if name == 'mi_face' else 'target',
                             **_quality_row(images[i], references),
                             model_test_accuracy=float(accuracy[mode][i]),
                             n_targets=len(references)))
      logging.info('split %d %s: %.1fs', split, name, time.time() - attack_start)

  results_metrics = {
      'target_test_accuracy': clean_accuracy,
      'target_train_accuracy': trained.metrics['train_accuracy'],
      'n_targets': len(x_targets), 'n_aux': len(x_aux), 'image_size': int(x_aux.shape[1]),
  }
  results = report.write_results(workdir, 'model_inversion', results_metrics, rows,
                                 time.time() - start_time)
  if distributed.is_writer():
    mia_figures.write_all(workdir, rows, recon, originals=np.asarray(x_targets),
                          baseline=np.asarray(baseline), class_means=means,
                          num_columns=attack_cfg.figure_targets)
  return results
