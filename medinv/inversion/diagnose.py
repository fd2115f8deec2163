"""Why a shadow-model (query-free) attack fails: how far its edge is from hospital A's.

`diagnose(config, workdir)` trains (or resumes) the model-inversion target of `config` in
workdir/target, then at each split of config.attack.splits compares edges an rMLE attacker
could invert through: hospital A's real edge (the white-box reference), the query-free
attack's shadow edge at its configured shadow_steps and at 5x as many, and the
feature-alignment attack's substitute, MMD-aligned to the features of the intercepted
(non-target) training images. Per edge: its accuracy through hospital B's
layers on the attacker's images, the relative feature error ||edge'(x) - edge(x)|| / ||edge(x)||
and the squared MMD to the real features on those images, and the SSIM of rMLE through it on
the targets' features. These are evaluation quantities (they read the real edge), not what
an attacker can compute.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from medinv import data as data_lib
from medinv.training import experiment
from medinv.core import keys as keys_lib
from medinv.metrics import features as feature_metrics
from medinv.metrics import image as image_metrics
from medinv.inversion import experiment as inversion_experiment
from medinv import models
from medinv.inversion import reconstruct


def edge_report(name: str, params, *, theta, edge, cloud, x_aux, y_aux, targets, rmle_cfg
                ) -> dict:
  """One edge's agreement with hospital A's and what rMLE recovers through it."""
  features, real = edge(params, x_aux), edge(theta, x_aux)
  prior = jnp.mean(x_aux, 0)
  recon = reconstruct.rmle(edge, params, edge(theta, targets), prior, objective=rmle_cfg.objective,
                           steps=rmle_cfg.steps, learning_rate=rmle_cfg.learning_rate,
                           prior_image=prior)[0]
  return {'edge': name,
          'accuracy_through_cloud': float(jnp.mean(
              jnp.argmax(cloud(theta, features), -1) == y_aux)),
          'feature_error': float(jnp.linalg.norm(features - real) / jnp.linalg.norm(real)),
          'mmd2_to_real': float(feature_metrics.mmd2(features[:256], real[:256])),
          'rmle_ssim': float(jnp.mean(image_metrics.ssim(recon, targets)))}


def diagnose(config, workdir: str) -> list[dict]:
  task = data_lib.load_task(config.data)
  trained = experiment.train_target(config, task, workdir)
  key = jax.random.fold_in(keys_lib.named_keys(config.seed)['attack'], 99)  # Substitutes.
  x_aux, y_aux = jnp.asarray(task.x_test), jnp.asarray(task.y_test)
  targets = jnp.asarray(inversion_experiment.targets(config, task))  # The experiment's targets.
  pool = jnp.asarray(inversion_experiment.intercepted(config, task))  # What B intercepts.
  qf, fa = config.attack.query_free, config.attack.feature_alignment
  rows = []
  for split in config.attack.splits:
    resolved = models.split_at(config.model, trained.model, split, task.x_train[:1])
    edge, cloud = models.edge_fn(trained.model, resolved), models.cloud_fn(trained.model, resolved)

    def substitute(steps, observed=None, weight=0.0, lr=qf.shadow_learning_rate):
      return reconstruct.train_shadow_edge(
          key, x_aux, y_aux, model=trained.model, split=resolved, cloud_params=trained.params,
          steps=steps, batch_size=qf.shadow_batch_size, learning_rate=lr,
          augment_flip=qf.augment_flip, observed=observed, mmd_weight=weight)[0]
    edges = [('real edge (white box)', trained.params),
             (f'query-free shadow, {qf.shadow_steps} steps', substitute(qf.shadow_steps)),
             (f'query-free shadow, {5 * qf.shadow_steps} steps', substitute(5 * qf.shadow_steps)),
             (f'aligned substitute, {fa.substitute_steps} steps',
              substitute(fa.substitute_steps, edge(trained.params, pool), fa.mmd_weight,
                         fa.substitute_learning_rate))]
    rows += [{'split': split, **edge_report(name, params, theta=trained.params, edge=edge,
                                            cloud=cloud, x_aux=x_aux, y_aux=y_aux,
                                            targets=targets, rmle_cfg=qf)}
             for name, params in edges]
  return rows
