"""The model-inversion experiment: attacks x splits x defenses x strengths, next to utility.

`run(config, workdir)` follows medinv.training.experiment's skeleton: it trains (or reuses) the
target (config.model, any registered model with split points: SplitCNN in the configs) in
workdir/target, then for every split point of attack.splits (`models.split_at`: hospital A
runs the layers up to it), registered defense in `config.defense` (one
block per defense that acts on 'weights' or 'features': its `strengths` grid and settings), attack
in `attack.names` and attacker view runs one compiled program over the grid of (strength, draw)
points (`medinv.inversion.grid`; the block's `num_draws` independent realisations of the defense per
strength, `medinv.defenses.draws`), sharded over every device by `sharding.map_grid`, fed
`attack.grid_chunk` points per device per call, and writes results.json + results.csv (one row per
attack, split, defense, strength, variant and attacker view) and figures.

Every quality column (mse, psnr, ssim) is the mean over draws and targets (`<metric>_mean`,
`_std`) with the 95% interval of that mean (`<metric>_low`, `_high`:
`medinv.metrics.intervals.crossed_interval`, a t-interval over the crossed draws x targets; at
one draw the Student-t interval over targets), and `num_draws`; figures show draw 0's
reconstructions.

Every attack row carries the deployed model's test accuracy under the same defense
(`model_test_accuracy`, its mean over draws and test images, with `model_test_accuracy_low` /
`_high`), so each row is a point on a privacy-utility curve; the rows with attack
'mean_aux_image' are the no-model baseline (the attacker's mean image as the
reconstruction of every target). MI-FACE reconstructs classes, so its rows compare each
class's reconstruction with that class's mean training image (reference 'class_mean'), and an
evaluation classifier trained separately on the attacker's images labels each one
(`medinv.inversion.evaluation`): eval_accuracy, eval_confidence; MI-FACE rows also carry the
steps taken, the final cost (means over classes) and the stopping rule that fired per class.

Finished stages (prepared shadow models and decoders, each chunk of each program's outputs)
are orbax checkpoints in workdir/partial (`medinv.core.stages`), so rerunning a killed run with the
same config recomputes only what is missing.

Keys (medinv.core.keys): `init`, `data` train the target; `defense` deploys every defense, draw r
with draws.draw_key(defense, r) (draw 0: the key itself; the same key for every split and
strength: model perturbation's noise in draw r = sigma * draw r's normal draw);
`attack`: fold 0 picks the targets, then one fold per attack (its registered `fold`), and
fold evaluation.FOLD trains the evaluation classifier.
"""
from __future__ import annotations

import functools
import os
import shutil
import time

from absl import logging
import jax
import numpy as np

from medinv import data as data_lib
from medinv import defenses
from medinv.core import distributed
from medinv.defenses import draws
from medinv.training import experiment
from medinv.core import keys as keys_lib
from medinv import models
from medinv.inversion import figures as inversion_figures
from medinv.inversion import validate as inversion_validate
from medinv.core import progress
from medinv.core import report
from medinv.core import sharding
from medinv.core import stages
from medinv.training import trainer
from medinv.inversion import evaluation
from medinv.inversion import grid
from medinv.inversion import reconstruct
from medinv.inversion import attacks as inversion_attacks

validate = inversion_validate.validate


def select_targets(key: jax.Array, task: data_lib.Task, num_targets: int) -> np.ndarray:
  """Indices of the training images under attack (a fixed random subset)."""
  if num_targets > len(task.x_train):
    raise ValueError(f'attack.num_targets={num_targets} but the training set has only '
                     f'{len(task.x_train)} images')
  return np.sort(np.asarray(jax.random.permutation(key, len(task.x_train))[:num_targets]))


def class_means(task: data_lib.Task) -> np.ndarray:
  """Mean training image per class, (num_classes, h, w, c) (MI-FACE's reference)."""
  return np.stack([task.x_train[task.y_train == c].mean(axis=0)
                   for c in range(task.num_classes)]).astype(np.float32)


def _start(workdir: str, config) -> None:
  """Writes config.json; keeps workdir/partial (finished stages) only if the config is the same."""
  partial = os.path.join(workdir, 'partial')
  if distributed.is_writer():
    if not report.same_config(workdir, config) and os.path.isdir(partial):
      shutil.rmtree(partial)
    os.makedirs(partial, exist_ok=True)
  report.write_config(workdir, config)
  distributed.sync('inversion_workdir')


def targets(config, task: data_lib.Task) -> np.ndarray:
  """The training images under attack (config.attack.num_targets, from the attack stream)."""
  attack_key = keys_lib.named_keys(config.seed)['attack']
  index = select_targets(jax.random.fold_in(attack_key, 0), task, config.attack.num_targets)
  return task.x_train[index]


def intercepted(config, task: data_lib.Task) -> np.ndarray | None:
  """Other patients' training images (never targets) whose features a passive attacker
  intercepts: the next `intercepted` images of the targets' permutation, as many as the
  largest `attack.<name>.intercepted` of the named attacks registered with `intercepts`;
  None when no such attack runs."""
  sizes = [config.attack[name].intercepted for name in config.attack.names
           if inversion_attacks.get(name).intercepts]
  if not sizes:
    return None
  num_targets = config.attack.num_targets
  if num_targets + max(sizes) > len(task.x_train):
    raise ValueError(f'attack.num_targets + attack.<name>.intercepted = {num_targets} + '
                     f'{max(sizes)} but the training set has only {len(task.x_train)} images')
  attack_key = keys_lib.named_keys(config.seed)['attack']
  order = np.asarray(jax.random.permutation(jax.random.fold_in(attack_key, 0),
                                            len(task.x_train)))
  return task.x_train[np.sort(order[num_targets:num_targets + max(sizes)])]


def _target(config, task: data_lib.Task, workdir: str) -> trainer.Trained:
  """Checks the attacker's images against the targets, then trains (or reuses) the target."""
  reconstruct.check_attack_images(targets(config, task), task.x_test)  # attacker: test split
  intercepted(config, task)  # Enough training images for the targets and the intercepted.
  return experiment.train_target(config, task, workdir)


def _over_grid(partial: str, name: str, points, chunk: int, call) -> dict:
  """call(points) -> {variant: (n, ...) or a dict of them} over the grid `points` (an array or
  a dict of arrays with the same leading axis, e.g. `draws.points`), `chunk` per device per
  call (0: all).

  Each call is a stage; the last chunk is padded by repeating its last point, so every call
  has the same shapes and the program compiles once.
  """
  total = len(jax.tree.leaves(points)[0])
  size = total if chunk <= 0 else min(chunk * jax.device_count(), total)
  parts, start_time = [], time.time()
  for start in range(0, total, size):
    n = min(size, total - start)
    padded = jax.tree.map(lambda leaf, start=start, n=n: np.concatenate(
        [leaf[start:start + n], np.repeat(leaf[start + n - 1:start + n], size - n, 0)]), points)
    out = stages.load_or_compute(partial, f'{name}_from{start}',
                                 lambda padded=padded: call(padded))
    parts.append(jax.tree.map(lambda value, n=n: value[:n], out))
    done = start + n
    if done < total:  # progress within a long grid (the caller logs its end)
      elapsed = time.time() - start_time
      logging.info('%s: point %d/%d  elapsed %s  eta %s', name, done, total,
                   progress.format_seconds(elapsed),
                   progress.format_seconds(elapsed / done * (total - done)))
  return jax.tree.map(lambda *chunks: np.concatenate(chunks), *parts)


def _over_points(partial: str, name: str, config, defense: str, call) -> dict:
  """{variant: leaves (strengths, draws, ...)}: `call(points)` -> {variant: outputs} over the
  defense's (strength, draw) grid, in which strength 0 (the undefended model, alike in every
  draw) is one point (`draws.points`)."""
  block = config.defense[defense]
  num = draws.num_draws(block)
  out = _over_grid(partial, name, draws.points(block.strengths, num), config.attack.grid_chunk,
                   call)
  return draws.by_strength(out, block.strengths, num)


def _views(name: str, config) -> tuple:
  uses_view = inversion_attacks.get(name).uses_view
  return tuple(config.attack.knows_defense) if uses_view else (None,)


def split_points(ctx: experiment.Context) -> dict:
  """{point: its `models.Split`} for each split point of config.attack.splits (config
  values of config.model's registered split points)."""
  model, sample = ctx.target.model, ctx.task.x_train[:1]
  return {point: models.split_at(ctx.config.model, model, point, sample)
          for point in ctx.config.attack.splits}


def _run_attack(ctx, split: models.Split, defense, name, view, partial, arrays, streams
                ) -> dict:
  """{variant: reconstructions (n_strengths, num_draws, ...)} for one program; prepare is a
  stage."""
  config, model = ctx.config, ctx.target.model
  common = dict(model=model, split=split, knows_defense=view, attack_key=streams['attack'],
                num_classes=ctx.task.num_classes)
  cfg = config.attack[name]
  prepared = stages.load_or_compute(
      partial, f'split{split.point}_{name}_{view}_prepared',
      lambda: grid.prepare_fn(name, cfg, **common)(arrays))
  fn = grid.attack_fn(name, cfg, defense, config.defense[defense],
                      defense_key=streams['defense'], **common)
  return _over_points(partial, f'split{split.point}_{defense}_{name}_{view}', config, defense,
                      lambda p: sharding.map_grid(fn, p, arrays, prepared))


def _fit_defense(ctx: experiment.Context, split: models.Split, defense: str, partial: str,
                 defense_key: jax.Array):
  """The fit stage of a defense that learns from hospital A's training images (None for the
  others): once per split, kept in workdir/partial."""
  fit = defenses.get(defense).fit
  if fit is None:
    return None
  start = time.time()
  fit_fn = jax.jit(functools.partial(fit, cfg=ctx.config.defense[defense],
                                     model=ctx.target.model, split=split))
  state = stages.load_or_compute(
      partial, f'split{split.point}_{defense}_fit',
      lambda: fit_fn(defense_key, ctx.target.params, ctx.task.x_train, ctx.task.y_train))
  logging.info('split %s %s: fitted in %.1fs', split.point, defense, time.time() - start)
  return state


def _grid(ctx: experiment.Context) -> dict:
  """Every (split, defense, attack, view) program: per strength and draw, whether the deployed
  model labels each test image right, and the reconstructions."""
  config, task = ctx.config, ctx.task
  partial = os.path.join(ctx.workdir, 'partial')
  streams = keys_lib.named_keys(config.seed)
  theta = jax.device_get(ctx.target.params)  # host arrays: map_grid places them everywhere
  arrays = {'theta': theta, 'x_targets': targets(config, task), 'x_aux': task.x_test,
            'y_aux': task.y_test}
  pool = intercepted(config, task)
  if pool is not None:
    arrays['x_intercepted'] = pool
  accuracy, recon = {}, {}
  for split, resolved in split_points(ctx).items():
    for defense in config.defense:
      arrays['defense_state'] = _fit_defense(ctx, resolved, defense, partial, streams['defense'])
      fn = grid.accuracy_fn(defense, config.defense[defense], model=ctx.target.model,
                            split=resolved, defense_key=streams['defense'])
      test = {'theta': theta, 'x_test': task.x_test, 'y_test': task.y_test,
              'defense_state': arrays['defense_state']}
      accuracy[split, defense] = _over_points(
          partial, f'split{split}_{defense}_correct', config, defense,
          lambda p, fn=fn, test=test: sharding.map_grid(fn, p, test))
      for name in config.attack.names:
        if split not in config.attack.get('splits_of', {}).get(name, config.attack.splits):
          continue
        attack_start = time.time()
        for view in _views(name, config):
          recon[split, defense, name, view] = _run_attack(ctx, resolved, defense, name, view,
                                                          partial, arrays, streams)
        logging.info('split %s %s %s: %.1fs', split, defense, name, time.time() - attack_start)
  return {'accuracy': accuracy, 'recon': recon, 'x_targets': arrays['x_targets'],
          'x_intercepted': arrays.get('x_intercepted', ()),
          'class_means': class_means(task),
          'baseline': np.asarray(reconstruct.mean_image_baseline(task.x_test,
                                                                 len(arrays['x_targets'])))}


def _quality(reconstructions, references) -> dict:
  """Quality columns of reconstructions (num_draws, n, ...) (`draws.quality_summary`)."""
  return draws.quality_summary(reconstructions, references)


def _images(output):
  """An attack's reconstructions: its output, or the 'images' of its dict (MI-FACE)."""
  return output['images'] if isinstance(output, dict) else output


def _evaluator(ctx: experiment.Context, names) -> tuple:
  """(judge, its accuracy and balanced accuracy on hospital A's training images) when an
  attack in `names` reconstructs classes, else (None, {}). judge(images, labels) ->
  `evaluation.judge`'s dict.

  The evaluation classifier is trained on the attacker's images (the test split) with its own
  key, fold_in(attack stream, evaluation.FOLD), and kept as a stage; its settings are the
  eval_* fields of config.attack.mi_face (the registered defaults without that block).
  """
  if not any(inversion_attacks.get(name).reference == 'class_mean' for name in names):
    return None, {}
  config, task = ctx.config, ctx.task
  cfg = (config.attack.mi_face if 'mi_face' in config.attack
         else inversion_attacks.config_block('mi_face'))
  model = evaluation.EvalCNN(task.num_classes, width=cfg.eval_width)
  key = jax.random.fold_in(keys_lib.named_keys(config.seed)['attack'], evaluation.FOLD)
  train_fn = jax.jit(functools.partial(
      evaluation.train_evaluator, model=model, steps=cfg.eval_steps,
      batch_size=cfg.eval_batch_size, learning_rate=cfg.eval_learning_rate))
  params = stages.load_or_compute(os.path.join(ctx.workdir, 'partial'), 'class_evaluator',
                                  lambda: train_fn(key, task.x_test, task.y_test)[0])
  judge = functools.partial(jax.jit(functools.partial(evaluation.judge, model=model)), params)
  correct = np.asarray(judge(task.x_train, task.y_train)['correct'])
  balanced = np.mean([correct[task.y_train == c].mean() for c in np.unique(task.y_train)])
  return judge, {'evaluator_train_accuracy': float(correct.mean()),
                 'evaluator_train_balanced_accuracy': float(balanced)}


def _class_columns(output, i: int, judge) -> dict:
  """Columns of a class-reconstructing attack at strength i: the evaluation classifier's
  verdict on the class images of every draw and, for MI-FACE, steps taken, final cost (the
  cost of the returned image; means over draws and classes) and the rule that stopped each
  class (draw by draw)."""
  images = np.asarray(_images(output)[i])  # (num_draws, classes, ...)
  labels = np.tile(np.arange(images.shape[1]), images.shape[0])
  columns = evaluation.summary(judge(images.reshape((-1,) + images.shape[2:]), labels))
  if isinstance(output, dict) and 'stopped_by' in output:
    columns.update(steps=float(np.mean(output['steps'][i])),
                   final_cost=float(np.mean(output['cost'][i])),
                   stopped_by=','.join(reconstruct.STOP_RULES[r]
                                      for r in np.ravel(output['stopped_by'][i])))
  return columns


def _rows(ctx: experiment.Context, out: dict) -> tuple[dict, list[dict]]:
  config, trained = ctx.config, ctx.target
  clean_accuracy = trained.metrics['test_accuracy']
  judge, evaluator_metrics = _evaluator(ctx, {key[2] for key in out['recon']})
  rows = []
  for reference, images in (('target', out['x_targets']), ('class_mean', out['class_means'])):
    baseline = out['baseline'][:len(images)]
    judged = (evaluation.summary(judge(baseline, np.arange(len(images))))
              if judge and reference == 'class_mean' else {})
    rows.append(dict(attack='mean_aux_image', split=None, defense=None, strength=None,
                     mode=None, knows_defense=None, reference=reference,
                     **_quality(baseline[None], images), **judged,
                     model_test_accuracy=clean_accuracy, n_targets=len(images), num_draws=1,
                     dp_epsilon=trained.metrics['dp_epsilon']))
  for (split, defense, name, view), outputs in out['recon'].items():
    reference = inversion_attacks.get(name).reference
    references = out['class_means'] if reference == 'class_mean' else out['x_targets']
    correct = out['accuracy'][split, defense]
    for variant, output in outputs.items():
      for i, strength in enumerate(config.defense[defense].strengths):
        judged = _class_columns(output, i, judge) if reference == 'class_mean' else {}
        rows.append(dict(attack=name, split=split, defense=defense, strength=strength,
                         mode=variant, knows_defense=view, reference=reference,
                         **_quality(_images(output)[i], references), **judged,
                         **draws.accuracy_summary(correct[variant][i]),
                         n_targets=len(references), num_draws=len(correct[variant][i]),
                         dp_epsilon=trained.metrics['dp_epsilon']))
  results_metrics = {
      'target_test_accuracy': clean_accuracy,
      'target_train_accuracy': trained.metrics['train_accuracy'],
      'test_majority_accuracy': trained.metrics['test_majority_accuracy'],
      'dp_epsilon': trained.metrics['dp_epsilon'],
      'n_targets': len(out['x_targets']), 'n_aux': len(ctx.task.x_test),
      'n_intercepted': len(out.get('x_intercepted', ())),
      'image_size': int(ctx.task.x_test.shape[1]),
      'dataset': data_lib.source_name(config.data),
  }
  if 'delta' in trained.metrics:  # DP-SGD's: the epsilon above is accounted at it.
    results_metrics['delta'] = trained.metrics['delta']
  if 'model_perturbation' in config.defense:  # per unit sigma, per perturbed layer
    cfg = config.defense.model_perturbation
    results_metrics['noise_to_weight'] = {
        f'split{point}': defenses.noise_to_weight(
            trained.params, defenses.scope_mask(trained.params, cfg.scope, split),
            cfg.sigma_scale == 'relative') for point, split in split_points(ctx).items()}
  results_metrics.update(evaluator_metrics)
  return results_metrics, rows


def _figures(ctx: experiment.Context, out: dict, rows: list[dict]) -> None:
  recon = {}
  for (split, defense, name, view), outputs in out['recon'].items():
    for variant, output in outputs.items():
      label = variant if defense == 'model_perturbation' else f'{defense} {variant}'.strip()
      for i, strength in enumerate(ctx.config.defense[defense].strengths):
        recon[name, split, label, view, strength] = _images(output)[i][0]  # draw 0
  inversion_figures.write_all(ctx.workdir, rows, recon, originals=np.asarray(out['x_targets']),
                              baseline=out['baseline'], class_means=out['class_means'],
                              num_columns=ctx.config.attack.figure_targets,
                              majority=ctx.target.metrics['test_majority_accuracy'])


SPEC = experiment.Spec('model_inversion', validate, _grid, _rows, target=_target,
                       start=_start, figures=_figures)


def run(config, workdir: str) -> dict:
  """Runs the experiment; writes results and figures into workdir; returns the results dict."""
  return experiment.run(SPEC, config, workdir)
