"""Run a sweep: vmapped grid axes in one sharded program per run, other axes as runs.

  ./launch.sh sweep --config configs/sweep_population.py --workdir runs/sweep_population
  ./launch.sh sweep --config configs/sweep_population.py:smoke --workdir /tmp/sweep --hosts 2
  srun --nodes=2 --ntasks-per-node=1 ./launch.sh sweep --config configs/sweep_rmle.py

Rerunning the same command skips the runs whose results.json is complete. `--hosts N`
starts N processes on this machine, joined through jax.distributed on 127.0.0.1 (a
multi-host layout on one machine); under SLURM, Open MPI or on a TPU pod, start one process
per host with the launcher instead and JAX finds the others (see README, Sweeps).
"""
import os
import socket
import subprocess
import sys
import time

from absl import app
from absl import flags
from absl import logging

from medinv.core import cli
from medinv.core import distributed
from medinv.core import progress
from medinv.study import sweep

cli.define_config_file('config', 'configs/sweep_population.py', 'Sweep config.')
flags.DEFINE_string('workdir', None, 'Sweep directory: one subdirectory per run.')
flags.DEFINE_integer('hosts', 1, 'Processes to start on this machine (1 = this one).')
flags.DEFINE_string('coordinator_address', None, 'host:port of process 0 (multi-process).')
flags.DEFINE_integer('num_processes', None, 'Processes in the run (multi-process).')
flags.DEFINE_integer('process_id', None, 'This process, 0..num_processes-1 (multi-process).')
flags.DEFINE_float('initialization_timeout', distributed.DEFAULT_INITIALIZATION_TIMEOUT,
                   'Seconds a process waits for the coordinator and every other process to '
                   'join before it gives up with one line (multi-process).')
FLAGS = flags.FLAGS


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def spawn_local(hosts: int) -> int:
  """Reruns this command as `hosts` processes on 127.0.0.1; returns the worst exit code."""
  argv, skip = [], False
  for arg in sys.argv[1:]:
    if skip or arg.startswith('--hosts='):
      skip = False
      continue
    skip = arg == '--hosts'
    if not skip:
      argv.append(arg)
  address = f'127.0.0.1:{_free_port()}'
  children = [subprocess.Popen(
      [sys.executable, '-m', 'experiments.sweep', *argv, f'--coordinator_address={address}',
       f'--num_processes={hosts}', f'--process_id={i}']) for i in range(hosts)]
  codes = {}
  while len(codes) < hosts:
    for i, child in enumerate(children):
      if i not in codes and child.poll() is not None:
        codes[i] = child.returncode
        if child.returncode:  # The others would wait for it at the next barrier: stop them.
          for other in children:
            if other.poll() is None:
              other.terminate()
    time.sleep(0.2)
  return max(abs(code) for code in codes.values())


def main(argv):
  del argv
  explicit = FLAGS.process_id is not None or FLAGS.coordinator_address
  launched = distributed.launcher_process_count()
  if FLAGS.hosts > 1 and not explicit and launched == 1:
    sweep.expand_runs(FLAGS.config)  # a config error: one line here, not one per process
    sys.exit(spawn_local(FLAGS.hosts))
  if FLAGS.hosts > 1 and launched > 1 and FLAGS.hosts != launched:
    raise app.UsageError(f'--hosts={FLAGS.hosts} but the launcher started {launched} processes')
  distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id,
                         initialization_timeout=FLAGS.initialization_timeout)
  logging.set_verbosity(logging.INFO if distributed.is_writer() else logging.WARNING)
  progress.quiet_library_logs()
  config = FLAGS.config
  workdir = FLAGS.workdir or f'runs/sweep_{config.sweep.experiment}'
  log = print if distributed.is_writer() else (lambda line: None)
  results = sweep.run_sweep(config, workdir, log=log)
  log(f'{len(results["summary"])} runs; results in {os.path.abspath(workdir)}/results.json')


if __name__ == '__main__':
  cli.run(main)
