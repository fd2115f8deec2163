"""Defenses: every release rule of a deployed model, as pure functions of an explicit key.

Release side (against attribute inference): randomized response on released labels, its
local-DP epsilon, postprocessors for probability releases, and `release_channel`, the one
rule a deployment applies per query. Split-inference side (against model inversion): a
`Deployment` is hospital A's model as it answers queries under a defense; model perturbation
(Gaussian noise on the weights and biases of a parameter subtree, drawn once, `fixed`, or per
query, `per_query`) is one. `query_each` is the one way anything queries a deployment.

Registry: DEFENSES maps a name to a `Defense` (its config defaults and a `deploy` function);
an experiment's `config.defense.<name>` block runs that defense over its strengths. Adding a
defense is one `register(...)` call, e.g. rounding the transmitted features to a grid:

    class FeatureRounding(defenses.Deployment):
      def transmit(self, query_index, features):
        step = jnp.maximum(self.strength, 1e-6)
        return jnp.where(self.strength > 0, jnp.round(features / step) * step, features)

    defenses.register('feature_rounding', lambda key, theta, strength, cfg, *, split, variant:
                      FeatureRounding(key, theta, strength), defaults={'strengths': (0.0, 0.5)})

Built in: model perturbation (Gaussian noise on hospital A's weights); and, in
medinv.defenses.features, the defenses on the transmitted features: Gaussian noise
(`feature_noise`), inference-time dropout (`feature_dropout`) and learned noise
(`learned_noise`, a defense with a `fit` stage).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp

from medinv import models
from medinv.core import registry

RELEASES = ('label', 'probs', 'rounded', 'noisy_probs')
MODES = ('fixed', 'per_query')
SCOPES = ('edge', 'all')
SIGMA_SCALES = ('absolute', 'relative')


def randomized_response(key: jax.Array, labels: jax.Array, flip_prob, num_classes: int
                        ) -> jax.Array:
  """With probability flip_prob, replaces each label by a uniformly chosen *different* class.

  Args:
    key: PRNG key; every label draws its own flip and replacement from it.
    labels: int array of class indices, any shape.
    flip_prob: scalar in [0, 1] (may be traced, so a grid of values can be vmapped).
    num_classes: k >= 2.

  Returns:
    int32 array shaped like labels.
  """
  flip_key, shift_key = jax.random.split(key)
  flip = jax.random.bernoulli(flip_key, flip_prob, labels.shape)
  # A shift in 1..k-1 lands uniformly on the k-1 other classes.
  shift = jax.random.randint(shift_key, labels.shape, 1, num_classes)
  return jnp.where(flip, (labels + shift) % num_classes, labels).astype(jnp.int32)


def randomized_response_epsilon(flip_prob: float, num_classes: int) -> float:
  """Local-DP epsilon of k-ary randomized response: ln((1 - p)(k - 1) / p); inf at p = 0.

  Only meaningful for p <= (k - 1) / k (at that point the release is independent of the
  label and epsilon is 0; larger p gives a negative value, i.e. the release anti-correlates).
  """
  if flip_prob <= 0.0:
    return math.inf
  if flip_prob >= 1.0:
    return -math.inf
  return math.log((1.0 - flip_prob) * (num_classes - 1) / flip_prob)


def postprocess_probs(key: jax.Array, probs: jax.Array, release: str, *, decimals: int = 1,
                      noise_std: float = 0.0) -> jax.Array:
  """What a deployment releases from a probability vector (last axis = classes).

  release: 'label' (one-hot of the top-1 class), 'probs' (unchanged), 'rounded' (rounded to
  `decimals`), 'noisy_probs' (plus N(0, noise_std^2), clipped at 0 and renormalised).
  """
  if release == 'probs':
    return probs
  if release == 'label':
    return jax.nn.one_hot(jnp.argmax(probs, -1), probs.shape[-1], dtype=probs.dtype)
  if release == 'rounded':
    return jnp.round(probs, decimals)
  if release == 'noisy_probs':
    noisy = jnp.clip(probs + noise_std * jax.random.normal(key, probs.shape, probs.dtype), 0.0)
    total = jnp.sum(noisy, -1, keepdims=True)
    uniform = jnp.full_like(noisy, 1.0 / probs.shape[-1])
    return jnp.where(total > 0, noisy / jnp.where(total > 0, total, 1.0), uniform)
  raise ValueError(f'unknown release {release!r}; allowed: {RELEASES}')


def scope_mask(params: dict, scope: str, split: int | None = None) -> dict:
  """A bool pytree shaped like params: True where `perturb_params` adds noise.

  scope 'all' selects every weight and bias; 'edge' selects the SplitCNN layers that hospital
  A runs at `split` (conv1..conv{split}).
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


# ----------------------------------------------------------------------------- release channel

def _postprocess_rule(key, vector, label, flip_prob, *, release, decimals, noise_std):
  del label, flip_prob
  vector = postprocess_probs(key, vector, release, decimals=decimals, noise_std=noise_std)
  return vector, jnp.argmax(vector, -1)


def _randomized_response_rule(key, vector, label, flip_prob, **settings):
  """Flips the label; swaps the vector's entries for the old and the new label, so the
  released vector ranks the released label first."""
  del settings
  released = randomized_response(key, label, flip_prob, vector.shape[-1])
  classes = jnp.arange(vector.shape[-1])
  source = jnp.where(classes == label[:, None], released[:, None],
                     jnp.where(classes == released[:, None], label[:, None], classes))
  return jnp.take_along_axis(vector, source, -1), released


# Release rules, applied in order to every query of a record model: (key, vector (n, C),
# label (n,), flip_prob, **release settings) -> (vector, label). A new output defense is one
# function and one entry here.
RELEASE_RULES: dict[str, Callable] = {
    'output_postprocessing': _postprocess_rule,
    'randomized_response': _randomized_response_rule,
}


def release_channel(key: jax.Array, probs: jax.Array, flip_prob, *, release: str,
                    decimals: int, noise_std: float) -> tuple[jax.Array, jax.Array]:
  """What the deployment releases per query: (vector (n, C), label (n,)).

  Every RELEASE_RULES entry in order, each with its own split of `key`: the probability
  vector is postprocessed (`postprocess_probs`), then its top-1 label goes through randomized
  response with probability flip_prob.
  """
  vector, label = probs, jnp.argmax(probs, -1)
  for rule_key, rule in zip(jax.random.split(key, len(RELEASE_RULES)), RELEASE_RULES.values()):
    vector, label = rule(rule_key, vector, label, flip_prob, release=release,
                         decimals=decimals, noise_std=noise_std)
  return vector, label


def model_probs(view_params, raw: jax.Array, *, apply_fn) -> jax.Array:
  """The deployed model on raw records; view_params = (params, scaler mean, scaler std)."""
  params, mean, std = view_params
  return jax.nn.softmax(apply_fn({'params': params}, (raw - mean) / std), -1)


def candidate_view(view_params, raw: jax.Array, *, apply_fn, release: str, decimals: int
                   ) -> jax.Array:
  """What unlimited queries of `raw` through the channel reveal (the MAP attack's view).

  Randomized response with p < (k-1)/k leaves the predicted label the most frequent answer,
  and Gaussian noise averages out, so repeated queries reveal the one-hot predicted label
  ('label'), the probabilities ('probs', 'noisy_probs') or the rounded probabilities.
  """
  probs = model_probs(view_params, raw, apply_fn=apply_fn)
  if release == 'label':
    return jax.nn.one_hot(jnp.argmax(probs, -1), probs.shape[-1], dtype=probs.dtype)
  if release == 'rounded':
    return jnp.round(probs, decimals)
  return probs


# ----------------------------------------------------------------------------- deployments

@dataclasses.dataclass(frozen=True)
class Deployment:
  """Hospital A's model as it answers queries; the base class answers with theta unchanged.

  key: the defense key (per-query randomness folds in the query number); params: the trained
  parameters theta; strength: the defense's grid value (may be traced); cfg: the defense's
  config block. A defense overrides `params_for` (the parameters that answer query q) and/or
  `transmit` (what happens to the features (m, ...) of query q on their way to hospital B).
  """
  key: Any
  params: Any
  strength: Any = 0.0
  cfg: Any = None

  per_query_params = False  # True when params_for depends on the query number.

  def params_for(self, query_index) -> Any:
    del query_index
    return self.params

  def transmit(self, query_index, features: jax.Array) -> jax.Array:
    """The features (m, ...) of query `query_index` as hospital B receives them."""
    del query_index
    return features

  @property
  def same_for_every_query(self) -> bool:
    """True when the answer does not depend on the query number (no per-query parameters,
    features sent as computed), so an attacker's answers can be computed once per image."""
    return not self.per_query_params and type(self).transmit is Deployment.transmit


@dataclasses.dataclass(frozen=True)
class ModelPerturbation(Deployment):
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


def query_each(deployment: Deployment, edge: Callable, images: jax.Array, first_query,
               cloud: Callable | None = None, batch_size: int = 1) -> jax.Array:
  """Answers each image as its own query (numbers first_query + i): (n, ...) outputs.

  edge(params, images) -> features is hospital A's part; with `cloud` (params, features) ->
  logits, the answer is the whole model's output on the transmitted features. Per-query
  parameters answer batch_size queries at once (vmapped; 1: one query after another).
  """
  if not deployment.per_query_params:  # One model answers every query: one batched call.
    params = deployment.params_for(first_query)
    features = edge(params, images)
    numbers = first_query + jnp.arange(images.shape[0])
    features = jax.vmap(lambda q, f: deployment.transmit(q, f[None])[0])(numbers, features)
    return features if cloud is None else cloud(params, features)

  def one(index_image):
    index, image = index_image
    return query_batch(deployment, edge, image[None], first_query + index, cloud)[0]
  return jax.lax.map(one, (jnp.arange(images.shape[0]), images),
                     batch_size=batch_size if batch_size > 1 else None)


def query_batch(deployment: Deployment, edge: Callable, images: jax.Array, query,
                cloud: Callable | None = None) -> jax.Array:
  """Answers a whole batch as ONE query number (one draw of per-query noise): (m, ...)."""
  params = deployment.params_for(query)
  features = deployment.transmit(query, edge(params, images))
  return features if cloud is None else cloud(params, features)


# ----------------------------------------------------------------------------- registry

@dataclasses.dataclass(frozen=True)
class Defense:
  """A registered split-inference defense.

  deploy(key, theta, strength, cfg, *, split, variant) -> Deployment.
  defaults: its config block (`strengths` is the grid every experiment runs it over).
  variants(cfg) -> the named variants each strength runs in (e.g. the perturbation modes);
    one unnamed variant ('',) by default.
  check(cfg): raises ValueError for a bad config block (strengths are checked >= 0 here).
  fit(key, theta, x_train, y_train, cfg, *, model, split) -> state: a defense that learns
    from hospital A's training data (once per split, a stage of the experiment); deploy then
    also takes `state=`. None for the others.
  """
  name: str
  deploy: Callable[..., Deployment]
  defaults: dict
  variants: Callable[[Any], tuple[str, ...]] = lambda cfg: ('',)
  check: Callable[[Any], None] = lambda cfg: None
  fit: Callable[..., Any] | None = None


DEFENSES = registry.Registry('defense')


def register(name: str, deploy: Callable[..., Deployment], *, defaults: dict,
             variants: Callable[[Any], tuple[str, ...]] | None = None,
             check: Callable[[Any], None] | None = None, fit: Callable[..., Any] | None = None,
             replace: bool = False) -> Defense:
  """Registers a split-inference defense under `name` (see `Defense`)."""
  if 'strengths' not in defaults:
    raise ValueError(f'defense {name!r}: defaults need a "strengths" grid')
  return DEFENSES.add(name, Defense(name, deploy, dict(defaults),
                                     variants or (lambda cfg: ('',)),
                                     check or (lambda cfg: None), fit), replace=replace)


def deploy(name: str, key, theta, strength, cfg, *, split, variant, state=None) -> Deployment:
  """Defense `name` deployed at `strength`; `state` is its fit's output (fitted defenses)."""
  defense = get(name)
  extra = {} if defense.fit is None else {'state': state}
  return defense.deploy(key, theta, strength, cfg, split=split, variant=variant, **extra)


get = DEFENSES.find
config_block = DEFENSES.config_block  # a defense's block: its defaults with overrides


def _check_model_perturbation(cfg) -> None:
  bad_modes = [m for m in cfg.modes if m not in MODES]
  if bad_modes or not cfg.modes:
    raise ValueError(f'defense.model_perturbation.modes {tuple(cfg.modes)}: allowed {MODES}')
  if cfg.scope not in SCOPES:
    raise ValueError(f'defense.model_perturbation.scope {cfg.scope!r}: allowed {SCOPES}')
  if cfg.get('sigma_scale', 'absolute') not in SIGMA_SCALES:
    raise ValueError(f'defense.model_perturbation.sigma_scale {cfg.sigma_scale!r}: allowed '
                     f'{SIGMA_SCALES} (sigma itself, or sigma x each weight tensor\'s std)')


def _deploy_model_perturbation(key, theta, strength, cfg, *, split, variant):
  return ModelPerturbation(key, theta, strength, cfg, mode=variant,
                           mask=scope_mask(theta, cfg.scope, split),
                           relative=cfg.get('sigma_scale', 'absolute') == 'relative')


register('model_perturbation', _deploy_model_perturbation,
         defaults={'strengths': (0.0, 0.01, 0.02, 0.05, 0.1), 'modes': MODES, 'scope': 'edge',
                   'sigma_scale': 'absolute'},
         variants=lambda cfg: tuple(cfg.modes), check=_check_model_perturbation)


from medinv.defenses import features as feature_defenses  # noqa: E402,F401  (registers the feature defenses)
