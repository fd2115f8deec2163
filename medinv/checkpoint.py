"""Orbax checkpoints of a run's state, keyed by epoch, plus a config-compatibility check."""
from __future__ import annotations

import json
import os

import orbax.checkpoint as ocp

from medinv import axes as axes_lib

# Fields that may change between a run and its resumption without invalidating checkpoints.
RESUMABLE_CHANGES = ('train.num_epochs', 'train.checkpoint_every_epochs', 'data.data_dir',
                     'data.manual_dir')


def manager(directory: str, max_to_keep: int = 2) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
  return ocp.CheckpointManager(os.path.abspath(directory), options=options)


def save(mngr: ocp.CheckpointManager, epoch: int, state) -> None:
  mngr.save(epoch, args=ocp.args.StandardSave(state))


def restore_latest(mngr: ocp.CheckpointManager, abstract_state):
  """Returns (epoch, state) of the latest checkpoint, or (0, None) when there is none."""
  epoch = mngr.latest_step()
  if epoch is None:
    return 0, None
  return epoch, mngr.restore(epoch, args=ocp.args.StandardRestore(abstract_state))


def check_compatible(saved_config_path: str, config: dict, fields: tuple[str, ...]) -> None:
  """Raises ValueError naming the first of `fields` whose value differs from the saved run's."""
  if not os.path.exists(saved_config_path):
    return
  with open(saved_config_path) as f:
    saved = axes_lib.flatten(json.load(f))
  current = axes_lib.flatten(config)
  for field in fields:
    if field in RESUMABLE_CHANGES:
      continue
    if saved.get(field) != current.get(field):
      raise ValueError(
          f'{os.path.dirname(saved_config_path)} holds checkpoints from an incompatible config: '
          f'{field} was {saved.get(field)!r}, now {current.get(field)!r}. Use another --workdir '
          'or delete that one.')
