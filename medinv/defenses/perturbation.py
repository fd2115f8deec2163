"""Model perturbation: Gaussian noise on the weights and biases that answer queries.

theta + N(0, sigma^2 I) (sigma: the strength) on a parameter subtree (`scope`: hospital A's
edge layers, or the whole model), drawn once (`fixed`) or afresh per query (`per_query`);
with sigma_scale 'relative' the std is sigma x each tensor's own std. Registered as
`model_perturbation` (acts on 'weights'; variants: its modes).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from medinv import models
from medinv.defenses import base

MODES = ('fixed', 'per_query')
SCOPES = ('edge', 'all')
SIGMA_SCALES = ('absolute', 'relative')


def scope_mask(params: dict, scope: str, split=None) -> dict:
  """A bool pytree shaped like params: True where `perturb_params` adds noise.

  scope 'all' selects every weight and bias; 'edge' selects the layers that hospital A runs
  at `split` (`models.edge_param_names`: a `models.Split`, or SplitCNN's 2, 4, 6, whose edge
  is conv1..conv{split}).
  """
  if scope == 'all':
    return jax.tree.map(lambda _: True, params)
  if scope == 'edge':
    if split is None:
      raise ValueError("scope 'edge' needs the split layer")
    edge = set(models.edge_param_names(split))
    return {name: jax.tree.map(lambda _, n=name: n in edge, sub) for name, sub in params.items()}
  raise ValueError(f'unknown perturbation scope {scope!r}; allowed: {SCOPES}')


def perturb_params(key: jax.Array, params, sigma, mask=None, relative: bool = False):
  """theta + N(0, sigma^2 I) on every leaf where `mask` is True (all leaves when mask is None).

  relative: the noise std is sigma x the leaf's own standard deviation (sigma_scale
  'relative'), so one sigma means the same noise-to-weight ratio in every layer.
  sigma may be traced (vmap over a sigma grid). Each leaf draws from its own fold of `key`.
  """
  leaves, treedef = jax.tree.flatten(params)
  mask_leaves = [True] * len(leaves) if mask is None else treedef.flatten_up_to(mask)
  noisy = [
      leaf + sigma * (jnp.std(leaf) if relative else 1.0)
      * jax.random.normal(jax.random.fold_in(key, i), leaf.shape, leaf.dtype)
      if selected else leaf
      for i, (leaf, selected) in enumerate(zip(leaves, mask_leaves))]
  return jax.tree.unflatten(treedef, noisy)


def noise_to_weight(params: dict, mask: dict, relative: bool) -> dict[str, float]:
  """{layer: noise std per unit sigma / the std of its weights}, for each perturbed kernel."""
  return {name: 1.0 if relative else 1.0 / float(jnp.std(sub['kernel']))
          for name, sub in params.items()
          if isinstance(sub, dict) and 'kernel' in sub and mask[name]['kernel']}


def deployed_params(key: jax.Array, params, sigma, mode: str, query_index, mask=None,
                    relative: bool = False):
  """The parameters that answer query number `query_index` under model perturbation.

  mode 'fixed': one perturbed model for every query (noise from `key` itself).
  mode 'per_query': fresh noise per query, from fold_in(key, query_index).
  """
  if mode == 'fixed':
    return perturb_params(key, params, sigma, mask, relative)
  if mode == 'per_query':
    return perturb_params(jax.random.fold_in(key, query_index), params, sigma, mask, relative)
  raise ValueError(f'unknown perturbation mode {mode!r}; allowed: {MODES}')


@dataclasses.dataclass(frozen=True)
class ModelPerturbation(base.Deployment):
  """theta + N(0, sigma^2) on the `mask`ed leaves, drawn once ('fixed') or per query
  (relative: sigma x each leaf's std)."""
  mode: str = 'fixed'
  mask: Any = None
  relative: bool = False

  @property
  def per_query_params(self) -> bool:
    return self.mode == 'per_query'

  def params_for(self, query_index) -> Any:
    if isinstance(self.strength, (int, float)) and self.strength == 0:
      return self.params
    return deployed_params(self.key, self.params, self.strength, self.mode, query_index,
                           self.mask, self.relative)


def check(cfg) -> None:
  """ValueError naming the field for a bad `defense.model_perturbation` block."""
  bad_modes = [m for m in cfg.modes if m not in MODES]
  if bad_modes or not cfg.modes:
    raise ValueError(f'defense.model_perturbation.modes {tuple(cfg.modes)}: allowed {MODES}')
  if cfg.scope not in SCOPES:
    raise ValueError(f'defense.model_perturbation.scope {cfg.scope!r}: allowed {SCOPES}')
  if cfg.get('sigma_scale', 'absolute') not in SIGMA_SCALES:
    raise ValueError(f'defense.model_perturbation.sigma_scale {cfg.sigma_scale!r}: allowed '
                     f'{SIGMA_SCALES} (sigma itself, or sigma x each weight tensor\'s std)')


def deploy(key, theta, strength, cfg, *, split, variant) -> ModelPerturbation:
  """Model perturbation at sigma = strength in mode `variant` (cfg: its block)."""
  return ModelPerturbation(key, theta, strength, cfg, mode=variant,
                           mask=scope_mask(theta, cfg.scope, split),
                           relative=cfg.get('sigma_scale', 'absolute') == 'relative')


base.register('model_perturbation', deploy, acts_on='weights',
              defaults={'strengths': (0.0, 0.01, 0.02, 0.05, 0.1), 'modes': MODES,
                        'scope': 'edge', 'sigma_scale': 'absolute'},
              variants=lambda cfg: tuple(cfg.modes), check=check)
