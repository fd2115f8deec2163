"""Finished stages of a run, kept as orbax checkpoints so a killed run resumes after them.

A stage is a pytree of arrays (trained shadow or decoder parameters, one chunk of a grid's
outputs) saved as step 0 of an orbax CheckpointManager in <directory>/<name>, through
`medinv.core.checkpoint` (synchronous saves; a failed write raises errors.WriteError naming it and
leaves no temporary folder). Process 0 decides whether a stage exists (every process reads the
shared workdir); every process takes part in the save, as orbax requires.
"""
from __future__ import annotations

import os
from typing import Any, Callable

from absl import logging
import jax
import numpy as np
import orbax.checkpoint as ocp

from medinv.core import checkpoint
from medinv.core import distributed


def load_or_compute(directory: str, name: str, compute: Callable[[], Any]) -> Any:
  """The stage `name` from `directory` when it is complete, else compute() (saved; host arrays).

  A tree without leaves is returned as is and never saved (orbax keeps no empty items).
  """
  path = os.path.join(directory, name)
  done = os.path.isdir(os.path.join(path, '0'))
  if distributed.broadcast_from_writer(done):
    logging.info('reusing stage %s', path)
    mngr = checkpoint.manager(path)
    tree = mngr.restore(0, args=ocp.args.StandardRestore())
    mngr.close()
    return tree
  tree = jax.tree.map(np.asarray, jax.device_get(compute()))
  if jax.tree.leaves(tree):
    mngr = checkpoint.manager(path)
    checkpoint.save(mngr, 0, tree)
    mngr.wait_until_finished()
    mngr.close()
  return tree
