"""Orbax checkpoints of a run's state, keyed by epoch, plus the checks that keep them sound.

- Saves are synchronous: a failed save (no space left, read-only filesystem) raises
  errors.WriteError naming the checkpoint, right there, and leaves no
  `<epoch>.orbax-checkpoint-tmp*` folder behind (one left by a killed run is removed when the
  next run opens the manager).
- A checkpoint is restored only into a state of the shapes it stores; otherwise the workdir
  is reported as incompatible (errors.WorkdirError), whatever config.json says.
- `check_compatible` compares config.json's checkpoint fields, when there are checkpoints.
"""
from __future__ import annotations

import contextlib
import glob
import json
import math
import logging as std_logging
import os
import shutil

import jax
import orbax.checkpoint as ocp

from medinv.core import axes as axes_lib
from medinv.core import errors

# Fields that may change between a run and its resumption without invalidating checkpoints;
# train.num_epochs only at a constant learning rate (a cosine schedule decays to 0 at its end).
RESUMABLE_CHANGES = ('train.num_epochs', 'train.checkpoint_every_epochs', 'data.data_dir',
                     'data.manual_dir')
# Fields added after workdirs were written: a saved config without one trained at this value.
ADDED_FIELDS = {'train.dp.target_epsilon': math.inf, 'train.dp.delta': 0.0,
                'train.dp.clip_norm': 1.0, 'train.nopeek_weight': 0.0, 'train.nopeek_split': 4,
                'data.path': '', 'data.scaling': '', 'data.validation_fraction': 0.0,
                'data.validation_seed': 0, 'train.schedule': 'constant', 'train.warmup_epochs': 0,
                'train.augment_shift': 0}
TMP_SUFFIX = '.orbax-checkpoint-tmp'
_DELETE_HINT = 'Use another --workdir or delete that one.'


def manager(directory: str, max_to_keep: int = 2) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                         enable_async_checkpointing=False,
                                         cleanup_tmp_directories=True)
  try:
    with _quiet_orbax():
      return ocp.CheckpointManager(os.path.abspath(directory), options=options,
                                   item_handlers=ocp.StandardCheckpointHandler())
  except Exception as e:  # pylint: disable=broad-except
    raise _io_error(e, directory) from e


class _DropOrbax(std_logging.Filter):
  """Orbax logs a failed write with its traceback from several threads before raising it."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return '/orbax/' not in record.pathname


@contextlib.contextmanager
def _quiet_orbax():
  """Drops orbax's log records meanwhile (unless MEDINV_DEBUG): the raised error says it."""
  if errors.debug():
    yield
    return
  drop, logger = _DropOrbax(), std_logging.getLogger('absl')
  logger.addFilter(drop)
  try:
    yield
  finally:
    logger.removeFilter(drop)


def _io_error(error: Exception, path: str) -> Exception:
  """errors.WriteError naming path for an I/O failure; the error itself otherwise."""
  return errors.write_error(error, path) or error


def _remove_temporary(directory: str, epoch: int) -> None:
  for tmp in glob.glob(os.path.join(glob.escape(directory), f'{epoch}{TMP_SUFFIX}*')):
    shutil.rmtree(tmp, ignore_errors=True)


def save(mngr: ocp.CheckpointManager, epoch: int, state) -> None:
  """Saves state as checkpoint `epoch` (synchronously); WriteError naming it on I/O failure."""
  directory = os.fspath(mngr.directory)
  try:
    with _quiet_orbax():
      mngr.save(epoch, args=ocp.args.StandardSave(state))
  except Exception as e:  # pylint: disable=broad-except
    if jax.process_index() == 0:
      _remove_temporary(directory, epoch)
    raise _io_error(e, os.path.join(directory, str(epoch))) from e


def _leaf_name(path) -> str:
  return jax.tree_util.keystr(path, simple=True, separator='.')


def _stored_shapes(mngr: ocp.CheckpointManager, epoch: int) -> dict[str, tuple]:
  """{leaf name: (shape, dtype)} of checkpoint `epoch`, read from its metadata."""
  metadata = mngr.item_metadata(epoch)
  tree = getattr(metadata, 'tree', metadata)
  return {_leaf_name(path): (tuple(leaf.shape), str(leaf.dtype))
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def check_shapes(mngr: ocp.CheckpointManager, epoch: int, abstract_state) -> None:
  """WorkdirError naming the first leaf whose stored shape or dtype differs from the state's."""
  directory = os.fspath(mngr.directory)
  try:
    with _quiet_orbax():
      stored = _stored_shapes(mngr, epoch)
  except Exception as e:  # pylint: disable=broad-except
    raise errors.WorkdirError(f'{directory}/{epoch}: unreadable checkpoint '
                              f'({str(e).strip().splitlines()[0]}). {_DELETE_HINT}') from e
  wanted = {_leaf_name(path): (tuple(leaf.shape), str(leaf.dtype))
            for path, leaf in jax.tree_util.tree_flatten_with_path(abstract_state)[0]}
  prefix = f'{directory} holds checkpoints from an incompatible config or model'
  for name in list(wanted) + sorted(stored.keys() - wanted.keys()):  # Parameters first.
    if name not in stored:
      raise errors.WorkdirError(f'{prefix}: they have no {name}. {_DELETE_HINT}')
    if name not in wanted:
      raise errors.WorkdirError(f'{prefix}: they hold {name}, which this model has not. '
                                f'{_DELETE_HINT}')
    if stored[name] != wanted[name]:
      (shape, dtype), (want_shape, want_dtype) = stored[name], wanted[name]
      raise errors.WorkdirError(
          f'{prefix}: {name} is {dtype}{list(shape)} there, {want_dtype}{list(want_shape)} '
          f'here. {_DELETE_HINT}')


def restore_latest(mngr: ocp.CheckpointManager, abstract_state):
  """Returns (epoch, state) of the latest checkpoint, or (0, None) when there is none.

  Raises errors.WorkdirError when the checkpoint's shapes differ from abstract_state's.
  """
  epoch = mngr.latest_step()
  if epoch is None:
    return 0, None
  check_shapes(mngr, epoch, abstract_state)
  with _quiet_orbax():
    return epoch, mngr.restore(epoch, args=ocp.args.StandardRestore(abstract_state))


def holds_checkpoints(directory: str) -> bool:
  """Whether directory (or a folder below it) holds a finished checkpoint (an epoch folder)."""
  for _, folders, _ in os.walk(directory):
    if any(folder.isdigit() for folder in folders):
      return True
  return False


def check_compatible(saved_config_path: str, config: dict, fields: tuple[str, ...]) -> None:
  """Raises WorkdirError naming the first of `fields` whose value differs from the saved run's.

  Only when the saved run left checkpoints (in `checkpoints/` beside its config.json): a
  config.json alone (say, from a run whose data failed to build) protects nothing.
  """
  run_dir = os.path.dirname(saved_config_path)
  if (not os.path.exists(saved_config_path) or
      not holds_checkpoints(os.path.join(run_dir, 'checkpoints'))):
    return
  with open(saved_config_path) as f:
    saved = axes_lib.flatten(json.load(f))
  current = axes_lib.flatten(json.loads(json.dumps(config)))  # tuples as the saved lists
  # A field may be a block (data.schema): each of its leaves is compared.
  leaves = [key for field in fields
            for key in sorted({k for k in (*saved, *current) if k.startswith(field + '.')})
            or [field]]
  for field in leaves:
    if field in RESUMABLE_CHANGES and not (field == 'train.num_epochs' and
                                           current.get('train.schedule') == 'cosine'):
      continue
    was = saved.get(field, ADDED_FIELDS.get(field))
    if was != current.get(field):
      raise errors.WorkdirError(
          f'{run_dir} holds checkpoints from an incompatible config: '
          f'{field} was {was!r}, now {current.get(field)!r}. {_DELETE_HINT}')
