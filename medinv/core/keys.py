"""The run's key tree.

    key(config.seed)
      ├─ init      model initialisation (shadow models fold in their index)
      ├─ data      epoch e shuffles and augments with fold_in(data, e)
      ├─ defense   label / model perturbation (per query: fold_in(defense, query_index))
      └─ attack    attack initialisation and auxiliary sampling

Each stream is split once from the seed; loops derive per-step keys with `fold_in`, so a
resumed run draws exactly what an uninterrupted run draws.
"""
import jax

STREAMS = ('init', 'data', 'defense', 'attack')


def named_keys(seed: int) -> dict[str, jax.Array]:
  """Splits `jax.random.key(seed)` into the named streams above."""
  return dict(zip(STREAMS, jax.random.split(jax.random.key(seed), len(STREAMS))))
