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

Joining fails with one line, never a crash or a hang: process 0 first checks that it can
bind the coordinator's port (JAX's distributed service would crash the process on a taken
one: errors.UsageError, exit 2), and every process gives up after `initialization_timeout`
seconds (the sweep's --initialization_timeout) when the coordinator cannot be reached or not
every process joined: a watchdog prints the line and exits 1, because JAX's own timeout
aborts the process from C++ with a stack trace.
"""
from __future__ import annotations

import contextlib
import errno
import os
import socket
import sys
import threading
from typing import Callable, Iterator, Mapping, TypeVar

from absl import logging
import jax
import numpy as np

from medinv.core import errors

T = TypeVar('T')
DEFAULT_INITIALIZATION_TIMEOUT = 300  # seconds, as jax.distributed.initialize's default
TIMEOUT_FLAG = '--initialization_timeout'


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


def _split_address(address: str, name: str = '--coordinator_address') -> tuple[str, int]:
  """('host', port) of 'host:port' ('[::1]:port' too); UsageError naming `name` otherwise."""
  host, _, port = address.rpartition(':')
  if not host or not port.isdigit() or not 0 < int(port) < 65536:
    raise errors.UsageError(f'{name}={address}: expected host:port, e.g. node0:8476')
  return host.strip('[]'), int(port)


def check_coordinator_port(address: str, environ: Mapping[str, str] | None = None) -> None:
  """Raises errors.UsageError (exit 2) when process 0 cannot bind the coordinator's port.

  JAX's service binds $JAX_COORDINATOR_BIND_ADDRESS, by default every interface ('[::]')
  on the port of `address`; on a port already taken it crashes the process (a segmentation
  fault), so the port is tried here first. Errors other than a taken port are left to JAX.
  """
  environ = os.environ if environ is None else environ
  _, port = _split_address(address)
  bind = environ.get('JAX_COORDINATOR_BIND_ADDRESS') or f'[::]:{port}'
  host, bind_port = _split_address(bind, '$JAX_COORDINATOR_BIND_ADDRESS')
  for candidate in [host] + (['0.0.0.0'] if host == '::' else []):  # '::' needs IPv6
    try:
      family, kind, proto, _, where = socket.getaddrinfo(
          candidate, bind_port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
      with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(where)
      return
    except OSError as e:  # socket.gaierror too
      if e.errno == errno.EADDRINUSE:
        raise errors.UsageError(
            f'--coordinator_address={address}: port {bind_port} is already in use on this '
            'host (process 0 runs the coordinator there); choose a free port') from None


def _reachable(address: str) -> bool:
  """Whether a TCP connection to address ('host:port') opens within a second."""
  try:
    with socket.create_connection(_split_address(address), timeout=1.0):
      return True
  except OSError:
    return False


def _join_failure(address: str | None, num_processes: int | None, process_id: int | None,
                  timeout: float) -> str:
  """The line for a join that did not finish within `timeout` seconds."""
  wait = f'within {timeout:g} s ({TIMEOUT_FLAG} sets the wait)'
  if address is None:
    return (f'the processes the launcher started did not all join the run {wait}; check '
            'that every process started and can reach process 0')
  if process_id and not _reachable(address):
    return (f'process {process_id}: cannot reach the coordinator (process 0) at {address} '
            f'{wait}; is process 0 running, and is the port open to this host?')
  return (f'not all {num_processes} processes joined the coordinator at {address} {wait}; '
          'check that every process started with the same --coordinator_address and '
          '--num_processes')


@contextlib.contextmanager
def _watchdog(timeout: float, message: Callable[[], str]) -> Iterator[None]:
  """Ends the process with `error: message()` and exit 1 if the body outlasts `timeout`
  seconds (a thread: the body blocks in JAX's C++ client, which releases the GIL)."""
  def expire():
    sys.stdout.flush()
    print(f'error: {message()}', file=sys.stderr, flush=True)
    os._exit(errors.EXIT_FAILURE)  # pylint: disable=protected-access

  timer = threading.Timer(timeout, expire)
  timer.daemon = True
  timer.start()
  try:
    yield
  finally:
    timer.cancel()


def _explicit_settings(coordinator_address: str | None, num_processes: int | None,
                       process_id: int | None, environ: Mapping[str, str]) -> tuple:
  """(coordinator_address, num_processes, process_id) from the arguments, else the JAX_*
  variables: all None (nothing explicit), or all set and consistent (else UsageError)."""
  coordinator_address = coordinator_address or environ.get('JAX_COORDINATOR_ADDRESS') or None
  if num_processes is None and 'JAX_NUM_PROCESSES' in environ:
    num_processes = int(environ['JAX_NUM_PROCESSES'])
  if process_id is None and 'JAX_PROCESS_ID' in environ:
    process_id = int(environ['JAX_PROCESS_ID'])
  explicit = (coordinator_address, num_processes, process_id)
  if all(value is None for value in explicit):
    return explicit
  if any(value is None for value in explicit):
    raise errors.UsageError('a multi-process run needs all of coordinator_address, '
                            f'num_processes and process_id (got {explicit})')
  if not 0 <= process_id < num_processes:
    raise errors.UsageError(f'process_id {process_id} is outside 0..{num_processes - 1}')
  return explicit


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None,
               environ: Mapping[str, str] | None = None,
               initialization_timeout: float = DEFAULT_INITIALIZATION_TIMEOUT) -> bool:
  """Calls `jax.distributed.initialize` when the run spans several processes.

  Explicit arguments win over the environment; with none, JAX detects the cluster itself
  (SLURM, Open MPI, TPU pods). Call it before anything touches a device. Calling it again
  in an initialized process does nothing.

  Args:
    coordinator_address: 'host:port' of process 0 (or $JAX_COORDINATOR_ADDRESS).
    num_processes: processes in the run (or $JAX_NUM_PROCESSES).
    process_id: this process, 0..num_processes-1 (or $JAX_PROCESS_ID).
    environ: the environment to read (os.environ when None).
    initialization_timeout: seconds to wait for the coordinator and every process.

  Returns:
    True when this process is part of a multi-process run.

  Raises:
    errors.UsageError: settings that do not fit together, or (on process 0) a coordinator
      port already in use. A join that outlasts the timeout ends the process (see above).
  """
  environ = os.environ if environ is None else environ
  if jax.distributed.is_initialized():
    return jax.process_count() > 1
  if not initialization_timeout > 0:
    raise errors.UsageError(f'{TIMEOUT_FLAG} must be a positive number of seconds, got '
                            f'{initialization_timeout}')
  explicit = _explicit_settings(coordinator_address, num_processes, process_id, environ)
  coordinator_address, num_processes, process_id = explicit
  # JAX's own deadline comes after the watchdog's: its expiry aborts the process.
  jax_timeout = int(initialization_timeout) + 60
  if any(value is not None for value in explicit):
    if num_processes == 1:
      return False
    if process_id == 0:
      check_coordinator_port(coordinator_address, environ)
    with _watchdog(initialization_timeout, lambda: _join_failure(
        coordinator_address, num_processes, process_id, initialization_timeout)):
      jax.distributed.initialize(coordinator_address, num_processes, process_id,
                                 initialization_timeout=jax_timeout)
  elif launcher_process_count(environ) > 1:
    with _watchdog(initialization_timeout, lambda: _join_failure(
        None, None, None, initialization_timeout)):
      # JAX's cluster detection fills in every argument.
      jax.distributed.initialize(initialization_timeout=jax_timeout)
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
