"""Model-inversion attacks as registered components: one name, one config block, two functions.

An attack is registered with
  defaults     its config block (`config.attack.<name>`),
  prepare      optional `(ctx) -> pytree`: work that does not depend on the defense strength
               (a shadow model, the decoder of an attacker that queried before the defense),
               run once per split and attacker view and kept as an orbax stage,
  attack       `(ctx, held, features, prepared) -> reconstructions (n, h, w, c)`: `held` is the
               deployment the attacker holds (the deployed one, or theta when it does not
               know the defense; a `defenses.Deployment` either way), `features` what
               hospital A sent for the targets. An attack may instead return a dict with the
               reconstructions under 'images' and per-image diagnostics (arrays with leading
               axis n) beside them, as MI-FACE does (steps taken, final cost, stopping rule).
`medinv.inversion.grid` runs every registered attack over defenses x strengths x targets; the
loops, vmaps and sharding never change when one is added. Adding one, e.g. in a research
script:

    def nearest(ctx, held, features, prepared):
      aux = defenses.query_each(held, ctx.edge, ctx.x_aux, inversion.ATTACKER_QUERIES)
      d = jnp.sum((features[:, None] - aux[None]) ** 2, axis=(2, 3, 4))
      return ctx.x_aux[jnp.argmin(d, axis=1)]

    inversion_attacks.register('nearest_aux', nearest, defaults={})

after which `attack.names` may name it and `config.attack.nearest_aux` holds its settings.
"""
from __future__ import annotations

import dataclasses
import zlib
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from medinv.models import decoders
from medinv import defenses
from medinv import models
from medinv.core import registry
from medinv.inversion import evaluation
from medinv.inversion import reconstruct
from medinv.inversion import objectives


@dataclasses.dataclass(frozen=True)
class Context:
  """What an attack may read (arrays may be traced; the rest is static).

  model: the target's flax module; split: where hospital A hands over (a `models.Split`, or
  SplitCNN's 2, 4, 6); `edge` / `cloud` are its two parts.
  knows_defense: the attacker's view of hospital A's model (True: the deployed model, False:
  the clean one; None for attacks that never see the model).
  intercepted: what hospital A sent, under the same deployment, for other patients' images
  (training images that are not targets), for an attack registered with `intercepts`
  (None otherwise).
  """
  model: nn.Module
  split: Any
  cfg: Any
  key: jax.Array
  theta: Any
  x_targets: jax.Array
  x_aux: jax.Array
  y_aux: jax.Array
  num_classes: int
  knows_defense: bool | None = None
  intercepted: jax.Array | None = None

  @property
  def edge(self) -> Callable:
    return models.edge_fn(self.model, self.split)

  @property
  def cloud(self) -> Callable:
    return models.cloud_fn(self.model, self.split)


@dataclasses.dataclass(frozen=True)
class Attack:
  """A registered model-inversion attack (see the module docstring).

  uses_view: whether `held` matters (False: one run, knows_defense None).
  reference: 'target' (reconstructs the targets) or 'class_mean' (one image per class).
  fold: the attack stream's fold for this attack's key.
  positive: config fields that must be > 0; objective_fields: fields holding objective specs.
  intercepts: the attack reads `Context.intercepted`, the features of `intercepted` (a field
  of its block) training images that are not targets.
  """
  name: str
  attack: Callable[..., jax.Array]
  defaults: dict
  prepare: Callable[[Context], Any] | None = None
  uses_view: bool = True
  reference: str = 'target'
  fold: int = 0
  positive: tuple[str, ...] = ()
  objective_fields: tuple[str, ...] = ()
  intercepts: bool = False

  def check(self, cfg) -> None:
    """Raises ValueError for a bad `config.attack.<name>` block."""
    unknown = sorted(set(cfg.keys()) - set(self.defaults))
    if unknown:
      raise ValueError(f'attack.{self.name}: unknown fields {unknown}; known: '
                       f'{sorted(self.defaults)}')
    for field in self.positive:
      reconstruct.check_positive(f'attack.{self.name}.{field}', cfg[field])
    for field in self.objective_fields:
      try:
        objectives.parse(cfg[field])
      except ValueError as e:
        raise ValueError(f'attack.{self.name}.{field}: {e}') from None


ATTACKS = registry.Registry('model-inversion attack')


def register(name: str, attack: Callable[..., jax.Array], *, defaults: dict,
             prepare: Callable[[Context], Any] | None = None, uses_view: bool = True,
             reference: str = 'target', fold: int | None = None,
             positive: tuple[str, ...] = (), objective_fields: tuple[str, ...] = (),
             intercepts: bool = False, replace: bool = False) -> Attack:
  """Registers a model-inversion attack; `fold` defaults to a stable hash of the name."""
  if reference not in ('target', 'class_mean'):
    raise ValueError(f"reference must be 'target' or 'class_mean', got {reference!r}")
  fold = 16 + zlib.crc32(name.encode()) % (1 << 20) if fold is None else fold
  return ATTACKS.add(name, Attack(name, attack, dict(defaults), prepare, uses_view, reference,
                                  fold, tuple(positive), tuple(objective_fields), intercepts),
                     replace=replace)


get = ATTACKS.find
config_block = ATTACKS.config_block  # an attack's block: its defaults with overrides


# ----------------------------------------------------------------------------- inverse network

def _train_decoder(ctx: Context, held: defenses.Deployment):
  cfg = ctx.cfg
  decoder = decoders.InverseDecoder(ctx.split, ctx.x_targets.shape[-1], cfg.width)

  def query_fn(t, images):  # step t's batch is the attacker's query ATTACKER_QUERIES + t
    return defenses.query_batch(held, ctx.edge, images, reconstruct.ATTACKER_QUERIES + t)
  table = None
  if held.same_for_every_query and _table_bytes(ctx) <= reconstruct.FEATURE_TABLE_BYTES:
    table = reconstruct.feature_table(lambda images: query_fn(0, images), ctx.x_aux,
                                      cfg.augment_flip)
  params, _ = reconstruct.train_decoder(
      ctx.key, query_fn, ctx.x_aux, decoder=decoder, steps=cfg.steps,
      batch_size=cfg.batch_size, learning_rate=cfg.learning_rate,
      augment_flip=cfg.augment_flip, table=table)
  return decoder, params


def _table_bytes(ctx: Context) -> int:
  shape = decoders.feature_shape(ctx.x_aux.shape[1:], ctx.split)
  return 2 * ctx.x_aux.shape[0] * int(np.prod(shape)) * 4


def _inverse_network_prepare(ctx: Context):
  """The clean decoder (attacker that queried before the defense); nothing otherwise."""
  if ctx.knows_defense:
    return {}
  return _train_decoder(ctx, defenses.Deployment(None, ctx.theta))[1]


def _inverse_network(ctx: Context, held, features, prepared):
  decoder = decoders.InverseDecoder(ctx.split, ctx.x_targets.shape[-1], ctx.cfg.width)
  params = _train_decoder(ctx, held)[1] if ctx.knows_defense else prepared
  return decoder.apply({'params': params}, features)


register('inverse_network', _inverse_network, prepare=_inverse_network_prepare, fold=1,
         defaults=dict(width=64, steps=400, batch_size=32, learning_rate=2e-3,
                       augment_flip=True),
         positive=('width', 'steps', 'batch_size', 'learning_rate'))


# ----------------------------------------------------------------------------- rMLE

def _rmle_with(ctx: Context, edge_params, features):
  prior = jnp.mean(ctx.x_aux, axis=0)
  return reconstruct.rmle(ctx.edge, edge_params, features, prior, objective=ctx.cfg.objective,
                          steps=ctx.cfg.steps, learning_rate=ctx.cfg.learning_rate,
                          prior_image=prior)[0]


def _rmle(ctx: Context, held, features, prepared):
  """White box: the attacker's model is one answer of the deployment, or theta itself."""
  del prepared
  return _rmle_with(ctx, held.params_for(reconstruct.ATTACKER_QUERIES), features)


RMLE_DEFAULTS = dict(objective='feature_l2:1.0,tv:0.005', steps=300, learning_rate=0.02)
register('rmle', _rmle, fold=3, defaults=RMLE_DEFAULTS, positive=('steps', 'learning_rate'),
         objective_fields=('objective',))


# ----------------------------------------------------------------------------- query-free

def _shadow(ctx: Context):
  cfg = ctx.cfg
  cloud_params = ctx.theta if cfg.shadow_uses_target_cloud else None
  return reconstruct.train_shadow_edge(
      ctx.key, ctx.x_aux, ctx.y_aux, model=ctx.model, split=ctx.split,
      cloud_params=cloud_params, steps=cfg.shadow_steps, batch_size=cfg.shadow_batch_size,
      learning_rate=cfg.shadow_learning_rate, augment_flip=cfg.augment_flip)[0]


def _query_free(ctx: Context, held, features, shadow):
  """rMLE through the shadow edge: never sees hospital A's model."""
  del held
  return _rmle_with(ctx, shadow, features)


register('query_free', _query_free, prepare=_shadow, uses_view=False, fold=2,
         defaults=dict(RMLE_DEFAULTS, shadow_steps=400, shadow_batch_size=32,
                       shadow_learning_rate=1e-3, shadow_uses_target_cloud=True,
                       augment_flip=True),
         positive=('steps', 'learning_rate', 'shadow_steps', 'shadow_batch_size',
                   'shadow_learning_rate'), objective_fields=('objective',))


# ----------------------------------------------------------------------------- feature alignment

def _feature_alignment(ctx: Context, held, features, prepared):
  """Passive (FORA-like): no query to hospital A. A substitute edge is trained on the
  attacker's labelled images through hospital B's own layers while the squared MMD pulls its
  features towards features hospital B intercepted for other patients (`intercepted`
  training images that are not targets, sent under the same deployment); an inverse network
  is then trained on the substitute's features of the attacker's images and decodes the
  targets' features."""
  del held, prepared
  cfg = ctx.cfg
  substitute_key, decoder_key = jax.random.split(ctx.key)
  substitute = reconstruct.train_shadow_edge(
      substitute_key, ctx.x_aux, ctx.y_aux, model=ctx.model, split=ctx.split,
      cloud_params=ctx.theta, steps=cfg.substitute_steps, batch_size=cfg.batch_size,
      learning_rate=cfg.substitute_learning_rate, augment_flip=cfg.augment_flip,
      observed=ctx.intercepted, mmd_weight=cfg.mmd_weight)[0]
  decoder = decoders.InverseDecoder(ctx.split, ctx.x_targets.shape[-1], cfg.width)
  params, _ = reconstruct.train_decoder(
      decoder_key, lambda t, images: ctx.edge(substitute, images), ctx.x_aux, decoder=decoder,
      steps=cfg.steps, batch_size=cfg.batch_size, learning_rate=cfg.learning_rate,
      augment_flip=cfg.augment_flip)
  return decoder.apply({'params': params}, features)


register('feature_alignment', _feature_alignment, uses_view=False, fold=5, intercepts=True,
         defaults=dict(substitute_steps=400, substitute_learning_rate=1e-3, mmd_weight=10.0,
                       width=64, steps=400, batch_size=32, learning_rate=2e-3,
                       augment_flip=True, intercepted=128),
         positive=('substitute_steps', 'substitute_learning_rate', 'width', 'steps',
                   'batch_size', 'learning_rate', 'intercepted'))


# ----------------------------------------------------------------------------- MI-FACE

def _class_images(ctx: Context, held: defenses.Deployment) -> dict:
  """MI-FACE per class from a black image; gradient step t is query ATTACKER_QUERIES + t.

  Returns `inversion.mi_face`'s dict: images (k, h, w, c) and, per class, cost (of the
  returned image), last_cost, steps and stopped_by (index into inversion.STOP_RULES).
  """
  cfg = ctx.cfg
  edge, cloud = ctx.edge, ctx.cloud

  def logits_apply(step, images):
    return defenses.query_batch(held, edge, images, reconstruct.ATTACKER_QUERIES + step, cloud)
  return reconstruct.mi_face(
      logits_apply, jnp.arange(ctx.num_classes), jnp.zeros_like(ctx.x_aux[0]),
      objective=cfg.objective, max_steps=cfg.max_steps, learning_rate=cfg.learning_rate,
      patience=cfg.patience, threshold=cfg.threshold,
      prior_image=jnp.mean(ctx.x_aux, axis=0))


def _mi_face_prepare(ctx: Context):
  """The clean model's class images (the same at every strength); nothing otherwise."""
  return {} if ctx.knows_defense else _class_images(ctx, defenses.Deployment(None, ctx.theta))


def _mi_face(ctx: Context, held, features, prepared):
  del features
  return _class_images(ctx, held) if ctx.knows_defense else prepared


# eval_*: the evaluation classifier that labels the class images (medinv.inversion.evaluation).
register('mi_face', _mi_face, prepare=_mi_face_prepare, reference='class_mean', fold=4,
         defaults=dict(objective='class_conf:1.0', max_steps=500, learning_rate=0.1,
                       patience=50, threshold=0.01, **evaluation.DEFAULTS),
         positive=('max_steps', 'learning_rate', 'patience', *evaluation.DEFAULTS),
         objective_fields=('objective',))
