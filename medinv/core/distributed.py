"""Multi-process (multi-host) runs: when to call `jax.distributed.initialize`, who writes.

A sweep spans several processes when a launcher started several copies of the same command:
SLURM (`srun`), Open MPI (`mpirun`), a Cloud TPU pod (one process per host), or explicit
flags (`--coordinator_address`, `--num_processes`, `--process_id`, or the JAX_* variables
below). Every process then runs the same program on its own devices; the mesh in
`medinv.study.sweep` spans all processes' devices, so each process computes its share of a grid.
Only process 0 writes results and figures (`is_writer`); orbax checkpoints are written by
every process together (each saves its own shards).

Environment variables read here (besides JAX's own cluster detection):
  JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID   explicit settings
  SLURM_NTASKS / SLURM_STEP_NUM_TASKS, OMPI_COMM_WORLD_SIZE      launcher process counts
  TPU_WORKER_HOSTNAMES (comma-separated)                         TPU pod slices
"""
from __future__ import annotations

import os
from typing import Callable, Mapping, TypeVar

from absl import logging
import jax
import numpy as np

T = TypeVar('T')


def _count(environ: Mapping[str, str], name: str) -> int:
  try:
    return int(environ.get(name, '1').split('(')[0])  # SLURM may write '2(x3)'.
  except ValueError:
    return 1


def launcher_process_count(environ: Mapping[str, str] | None = None) -> int:
  """How many processes the environment says this run spans (1 = a single process)."""
  environ = os.environ if environ is None else environ
  if 'JAX_NUM_PROCESSES' in environ:
    return _count(environ, 'JAX_NUM_PROCESSES')
  if 'SLURM_JOB_ID' in environ:
    return max(_count(environ, 'SLURM_STEP_NUM_TASKS'), _count(environ, 'SLURM_NTASKS'))
  if 'OMPI_COMM_WORLD_SIZE' in environ:
    return _count(environ, 'OMPI_COMM_WORLD_SIZE')
  hosts = [h for h in environ.get('TPU_WORKER_HOSTNAMES', '').split(',') if h]
  return max(len(hosts), 1)


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None,
               environ: Mapping[str, str] | None = None) -> bool:
  """Calls `jax.distributed.initialize` when the run spans several processes.

  Explicit arguments win over the environment; with none, JAX detects the cluster itself
  (SLURM, Open MPI, TPU pods). Call it before anything touches a device. Calling it again
  in an initialized process does nothing.

  Returns:
    True when this process is part of a multi-process run.
  """
  environ = os.environ if environ is None else environ
  if jax.distributed.is_initialized():
    return jax.process_count() > 1
  coordinator_address = coordinator_address or environ.get('JAX_COORDINATOR_ADDRESS') or None
  if num_processes is None and 'JAX_NUM_PROCESSES' in environ:
    num_processes = int(environ['JAX_NUM_PROCESSES'])
  if process_id is None and 'JAX_PROCESS_ID' in environ:
    process_id = int(environ['JAX_PROCESS_ID'])
  explicit = (coordinator_address, num_processes, process_id)
  if any(value is not None for value in explicit):
    if any(value is None for value in explicit):
      raise ValueError('a multi-process run needs all of coordinator_address, num_processes '
                       f'and process_id (got {explicit})')
    if not 0 <= process_id < num_processes:
      raise ValueError(f'process_id {process_id} is outside 0..{num_processes - 1}')
    if num_processes == 1:
      return False
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
  elif launcher_process_count(environ) > 1:
    jax.distributed.initialize()  # JAX's cluster detection fills in every argument.
  else:
    return False
  logging.info('process %d of %d: %d local devices, %d in all', jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())
  return True


def is_writer() -> bool:
  """True on the one process that writes results, figures and logs of a run (process 0)."""
  return jax.process_index() == 0


def sync(name: str) -> None:
  """A barrier across processes (no-op in a single-process run)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)


def writer_first(fn: Callable[[], T]) -> T:
  """fn() on process 0, then on the others (e.g. building a dataset cache they all read)."""
  if is_writer():
    result = fn()
    sync('writer_first')
    return result
  sync('writer_first')
  return fn()


def broadcast_from_writer(values) -> np.ndarray:
  """Process 0's numpy array, on every process (identity in a single-process run).

  Used for decisions every process must share, e.g. which sweep runs are still to do.
  """
  values = np.asarray(values)
  if jax.process_count() == 1:
    return values
  from jax.experimental import multihost_utils
  return np.asarray(multihost_utils.broadcast_one_to_all(values))
