"""Named objective terms for the optimisation attacks (rMLE, query-free, MI-FACE).

An optimisation attack minimises sum_k weight_k * term_k(x, ctx) over one image x
(shape (h, w, c), values in [0, 1]). A term is a pure function `(x, ctx) -> scalar`; `ctx`
(a `Context`) carries what the attacker knows about the one target being attacked.
Configs name terms and weights as a string, `'feature_l2:1.0,tv:0.05'`.

Adding a term is one function and one registry line, e.g. in a research script:

    @objectives.register('feature_l1')
    def feature_l1(x, ctx):
      return jnp.mean(jnp.abs(ctx.features_fn(x) - ctx.target_features))

after which `attack.objective='feature_l1:1.0,tv:0.05'` uses it; the attack loops, vmaps
and grids do not change.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

Term = Callable[[jax.Array, 'Context'], jax.Array]


@dataclasses.dataclass(frozen=True)
class Context:
  """What the attacker knows about one target, for the objective terms.

  features_fn: x (h, w, c) -> the edge features the attacker's model computes for x.
  target_features: v, the features hospital A sent for the target.
  logits_fn: x (h, w, c) -> class logits of the attacker's view of the full model.
  label: the class MI-FACE reconstructs (int, may be traced).
  prior_image: an image the attacker expects targets to resemble (e.g. its mean image).
  """
  features_fn: Callable[[jax.Array], jax.Array] | None = None
  target_features: Any = None
  logits_fn: Callable[[jax.Array], jax.Array] | None = None
  label: Any = None
  prior_image: Any = None

  def require(self, *fields: str) -> None:
    missing = [f for f in fields if getattr(self, f) is None]
    if missing:
      raise ValueError(f'this objective term needs Context fields {missing}; the attack did '
                       'not provide them (e.g. class terms need logits_fn and label)')


TERMS: dict[str, Term] = {}


def register(name: str, fn: Term | None = None, *, replace: bool = False):
  """Registers `fn` as term `name`; usable as a decorator (`@register('my_term')`)."""
  def add(term: Term) -> Term:
    if not replace and name in TERMS and TERMS[name] is not term:
      raise ValueError(f'objective term {name!r} is already registered (pass replace=True)')
    if ':' in name or ',' in name:
      raise ValueError(f'objective term names cannot contain ":" or ",": {name!r}')
    TERMS[name] = term
    return term
  return add if fn is None else add(fn)


@register('feature_l2')
def feature_l2(x, ctx: Context):
  """Mean squared difference between the features of x and the target's features."""
  ctx.require('features_fn', 'target_features')
  return jnp.mean(jnp.square(ctx.features_fn(x) - ctx.target_features))


@register('feature_cos')
def feature_cos(x, ctx: Context):
  """1 - cosine similarity between the features of x and the target's features."""
  ctx.require('features_fn', 'target_features')
  a, b = ctx.features_fn(x).ravel(), jnp.ravel(ctx.target_features)
  return 1.0 - jnp.dot(a, b) / (jnp.linalg.norm(a) * jnp.linalg.norm(b) + 1e-12)


@register('tv')
def total_variation(x, ctx: Context):
  """Anisotropic total variation: mean |vertical| + mean |horizontal| neighbour difference."""
  del ctx
  return (jnp.mean(jnp.abs(x[1:, :] - x[:-1, :])) + jnp.mean(jnp.abs(x[:, 1:] - x[:, :-1])))


@register('l2')
def l2_prior(x, ctx: Context):
  """Mean squared pixel value (a weight-decay prior on the image)."""
  del ctx
  return jnp.mean(jnp.square(x))


@register('prior_l2')
def prior_l2(x, ctx: Context):
  """Mean squared distance to ctx.prior_image (e.g. the attacker's mean image)."""
  ctx.require('prior_image')
  return jnp.mean(jnp.square(x - ctx.prior_image))


@register('class_conf')
def class_confidence(x, ctx: Context):
  """1 - softmax probability of ctx.label (MI-FACE's cost)."""
  ctx.require('logits_fn', 'label')
  return 1.0 - jax.nn.softmax(ctx.logits_fn(x))[ctx.label]


@register('class_ce')
def class_cross_entropy(x, ctx: Context):
  """-log softmax probability of ctx.label."""
  ctx.require('logits_fn', 'label')
  return -jax.nn.log_softmax(ctx.logits_fn(x))[ctx.label]


def parse(spec: str) -> tuple[tuple[str, float], ...]:
  """'feature_l2:1.0,tv:0.05' -> (('feature_l2', 1.0), ('tv', 0.05)); a bare name weighs 1.

  Raises ValueError for unknown or repeated names, bad or negative weights, an empty spec.
  """
  terms = []
  for item in filter(None, (part.strip() for part in (spec or '').split(','))):
    name, has_weight, weight_text = (s.strip() for s in item.partition(':'))
    if name not in TERMS:
      raise ValueError(f'unknown objective term {name!r} in {spec!r}; registered terms: '
                       f'{", ".join(sorted(TERMS))}')
    try:
      weight = float(weight_text) if has_weight else 1.0
    except ValueError as e:
      raise ValueError(f'objective term {name!r}: weight {weight_text!r} is not a number') from e
    if not weight >= 0.0:
      raise ValueError(f'objective term {name!r}: weight must be >= 0, got {weight}')
    if name in dict(terms):
      raise ValueError(f'objective term {name!r} appears twice in {spec!r}')
    terms.append((name, weight))
  if not terms:
    raise ValueError(f'objective {spec!r} names no terms; e.g. "feature_l2:1.0,tv:0.05"')
  return tuple(terms)


def build(spec: str | tuple[tuple[str, float], ...]) -> Callable[[jax.Array, Context], jax.Array]:
  """The weighted sum of the named terms, as one `(x, ctx) -> scalar` function.

  Terms are looked up now, so a term registered before `build` is called is available.
  """
  terms = parse(spec) if isinstance(spec, str) else tuple(spec)
  functions = [(TERMS[name], weight) for name, weight in terms if weight]

  def objective(x, ctx: Context):
    return sum((weight * fn(x, ctx) for fn, weight in functions), jnp.zeros((), x.dtype))
  return objective
