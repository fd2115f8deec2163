"""Finished stages of a run, kept as orbax checkpoints so a killed run resumes after them.

A stage is a pytree of arrays (trained shadow or decoder parameters, one chunk of a grid's
outputs) saved under <directory>/<name> with orbax's StandardCheckpointer. Process 0 decides
whether a stage exists (every process reads the shared workdir); every process takes part in
the save, as orbax requires, and orbax writes host arrays once.
"""
from __future__ import annotations

import os
from typing import Any, Callable

from absl import logging
import jax
import numpy as np
import orbax.checkpoint as ocp

from medinv import distributed


def load_or_compute(directory: str, name: str, compute: Callable[[], Any]) -> Any:
  """The stage `name` from `directory` when it is there, else compute() (saved, host arrays).

  A tree without leaves is returned as is and never saved (orbax keeps no empty items).
  """
  path = os.path.abspath(os.path.join(directory, name))
  checkpointer = ocp.StandardCheckpointer()
  if distributed.broadcast_from_writer(os.path.isdir(path)):
    logging.info('reusing stage %s', path)
    return checkpointer.restore(path)
  tree = jax.tree.map(np.asarray, jax.device_get(compute()))
  if jax.tree.leaves(tree):
    checkpointer.save(path, tree)
    checkpointer.wait_until_finished()
  return tree
