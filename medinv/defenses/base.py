"""The defense interface: a `Deployment` answers queries, and one registry holds every defense.

A `Deployment` is the target model as it answers queries under a defense. It may change the
parameters that answer query q (`params_for`), the features hospital A transmits for query q
(`transmit`, split inference) and what is released from the answers (`release`: the
probability vector and the label). `query_each` / `query_batch` are the one way anything
queries a deployment.

`DEFENSES` maps a name to a `Defense`: what it acts on (`ACTS_ON`), its config defaults (the
block `config.defense.<name>`) and how to deploy it. Each experiment runs the registered
defenses that act on what it attacks:
  'training'  changes how the target is trained (DP-SGD, training-time label flips, NoPeek);
              medinv.training applies them from the config.train fields the record names, so
              they have no deployment and no config.defense block;
  'weights'   the parameters that answer queries (model inversion, membership inference);
  'features'  the features hospital A transmits (model inversion);
  'output'    the released probabilities or label (membership inference; attribute inference's
              release channel, medinv.defenses.release).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from medinv.core import registry

ACTS_ON = ('training', 'weights', 'features', 'output')


# ----------------------------------------------------------------------------- deployments

@dataclasses.dataclass(frozen=True)
class Deployment:
  """The target model as it answers queries; the base class answers with theta unchanged.

  key: the defense key (per-query randomness folds in the query number); params: the trained
  parameters theta; strength: the defense's grid value (may be traced); cfg: the defense's
  config block. A defense overrides `params_for` (the parameters that answer query q),
  `transmit` (what happens to the features (m, ...) of query q on their way to hospital B)
  and/or `release` (what is released from a batch of answers).
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

  def release(self, vector: jax.Array, label: jax.Array) -> tuple[jax.Array, jax.Array]:
    """What is released for answers with probabilities vector (..., C) and label (...): a
    (vector, label) pair of the same shapes. A random rule draws every answer independently
    from the deployment's key."""
    return vector, label

  @property
  def same_for_every_query(self) -> bool:
    """True when the answer does not depend on the query number (no per-query parameters,
    features sent and answers released as computed), so an attacker's answers can be
    computed once per image."""
    return (not self.per_query_params and type(self).transmit is Deployment.transmit
            and type(self).release is Deployment.release)


def query_each(deployment: Deployment, edge: Callable, images: jax.Array, first_query,
               cloud: Callable | None = None, batch_size: int = 1) -> jax.Array:
  """Answers each image as its own query (numbers first_query + i): (n, ...) outputs.

  edge(params, images) -> features is hospital A's part (a whole model answering alone is
  its own edge); with `cloud` (params, features) -> logits, the answer is the whole model's
  output on the transmitted features. Per-query parameters answer batch_size queries at once
  (vmapped; 1: one query after another).
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

def _no_check(cfg) -> None:
  del cfg


def _one_variant(cfg) -> tuple[str, ...]:
  del cfg
  return ('',)


def _vector_release(cfg) -> bool:
  del cfg
  return False


@dataclasses.dataclass(frozen=True)
class Defense:
  """A registered defense.

  acts_on: one of ACTS_ON (see the module docstring).
  deploy(key, theta, strength, cfg, *, split, variant) -> Deployment (split is None where
    the attacked model is not split); None for a 'training' defense.
  defaults: its config block (`strengths` is the grid every experiment runs it over).
  variants(cfg) -> the named variants each strength runs in (e.g. the perturbation modes);
    one unnamed variant ('',) by default.
  check(cfg): raises ValueError for a bad config block (`check_block` checks the strengths).
  fit(key, theta, x_train, y_train, cfg, *, model, split) -> state: a defense that learns
    from hospital A's training data (once per split, a stage of model inversion); deploy then
    also takes `state=`. None for the others.
  label_only(cfg) -> True where the deployment releases the label alone (an 'output'
    defense; membership inference then runs only the attacks that read labels).
  train_fields: a 'training' defense's settings, the config.train fields the trainer reads.
  """
  name: str
  acts_on: str
  deploy: Callable[..., Deployment] | None
  defaults: dict
  variants: Callable[[Any], tuple[str, ...]] = _one_variant
  check: Callable[[Any], None] = _no_check
  fit: Callable[..., Any] | None = None
  label_only: Callable[[Any], bool] = _vector_release
  train_fields: tuple[str, ...] = ()


DEFENSES = registry.Registry('defense')


def register(name: str, deploy: Callable[..., Deployment] | None = None, *, acts_on: str,
             defaults: dict | None = None,
             variants: Callable[[Any], tuple[str, ...]] | None = None,
             check: Callable[[Any], None] | None = None, fit: Callable[..., Any] | None = None,
             label_only: Callable[[Any], bool] | None = None,
             train_fields: tuple[str, ...] = (), replace: bool = False) -> Defense:
  """Registers a defense under `name` (see `Defense`); returns its record."""
  if acts_on not in ACTS_ON:
    raise ValueError(f'defense {name!r}: acts_on must be one of {ACTS_ON}, got {acts_on!r}')
  defaults = dict(defaults or {})
  if acts_on == 'training':
    if deploy is not None or defaults or not train_fields:
      raise ValueError(f"defense {name!r} acts on 'training': it names its config.train "
                       'fields (train_fields) and has no deploy function or defaults')
  elif deploy is None or 'strengths' not in defaults:
    raise ValueError(f'defense {name!r}: a deploy function and defaults with a "strengths" '
                     'grid are needed')
  return DEFENSES.add(name, Defense(name, acts_on, deploy, defaults, variants or _one_variant,
                                    check or _no_check, fit, label_only or _vector_release,
                                    tuple(train_fields)), replace=replace)


get = DEFENSES.find
config_block = DEFENSES.config_block  # a defense's block: its defaults with overrides


def deploy(name: str, key, theta, strength, cfg, *, split, variant, state=None) -> Deployment:
  """Defense `name` deployed at `strength`; `state` is its fit's output (fitted defenses)."""
  defense = get(name)
  extra = {} if defense.fit is None else {'state': state}
  return defense.deploy(key, theta, strength, cfg, split=split, variant=variant, **extra)


def applicable(name: str, acts_on: tuple[str, ...], field: str, experiment: str) -> Defense:
  """Defense `name` where `experiment` runs defenses that act on `acts_on`; a ValueError
  naming `field` for a name that is not registered or acts on something else."""
  defense = DEFENSES.find(name, field)
  if defense.acts_on not in acts_on:
    where = (f' (set {", ".join(defense.train_fields)} instead)'
             if defense.acts_on == 'training' else '')
    raise ValueError(f'{field}: defense {name!r} acts on {defense.acts_on}{where}; '
                     f'{experiment} runs the defenses that act on {" or ".join(acts_on)}')
  return defense


def check_block(name: str, block, common_fields: tuple[str, ...] = ()) -> None:
  """ValueError naming `defense.<name>.<field>` for a field the defense does not know (its
  defaults and `common_fields`), an empty or negative strengths grid, or what its `check`
  refuses."""
  defense = get(name)
  known = set(defense.defaults) | set(common_fields)
  unknown = sorted(set(block.keys()) - known)
  if unknown:
    raise ValueError(f'defense.{name}: unknown fields {unknown}; known: {sorted(known)}')
  strengths = tuple(block.strengths)
  if not strengths:
    raise ValueError(f'defense.{name}.strengths is empty (use (0.0,) for no defense)')
  negative = [s for s in strengths if not s >= 0]
  if negative:
    raise ValueError(f'defense.{name}.strengths must be >= 0, got {negative}')
  defense.check(block)
