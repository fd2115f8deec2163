"""Components registered from outside medinv, as a user's own module would: the attribute
tests register these attacks (tests/attribute/).
"""
import jax.numpy as jnp


def constant_guess(key, obs, cfg, variant):
  """An extension attack: always the cfg.index-th candidate."""
  del key, variant
  return jnp.full(obs.targets.shape[:1], cfg.index, jnp.int32)


def oracle_guess(key, obs, cfg, variant):
  """An extension baseline that cheats (reads the sensitive column): always right."""
  del key, cfg, variant
  raw = obs.targets[:, obs.column]
  return jnp.argmin(jnp.abs(raw[:, None] - obs.candidates[None, :]), -1).astype(jnp.int32)
