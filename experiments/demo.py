"""The whole study with a report: ./launch.sh demo (or ./launch.sh paper --manual_dir DIR).

Runs every part of the config (attribute inference, model inversion), reusing finished parts,
target-model checkpoints and compiled programs (WORKDIR/xla_cache) in the workdir, and writes
WORKDIR/report.md, results.json, results.csv and figures.
"""
import os

from absl import app
from absl import flags
from absl import logging
import jax

from medinv import data as data_lib
from medinv.core import cli
from medinv.core import progress
from medinv.study import study

cli.define_config_file('config', 'configs/demo.py', 'Study config.')
flags.DEFINE_string('workdir', 'runs/demo', 'Run directory (parts, report.md, results).')
flags.DEFINE_string('manual_dir', None,
                    'Folder with downloaded dataset files; sets data.manual_dir of every part '
                    'whose dataset reads one (see ./launch.sh --list_datasets for what goes '
                    'where).')
FLAGS = flags.FLAGS


def main(argv):
  del argv
  config = FLAGS.config
  if not os.environ.get('JAX_COMPILATION_CACHE_DIR'):
    # Compiled programs persist in the workdir: a rerun (a killed run, a changed part) loads
    # them instead of compiling again, and a run loads a program another part compiled.
    jax.config.update('jax_compilation_cache_dir', os.path.join(FLAGS.workdir, 'xla_cache'))
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)
  if FLAGS.manual_dir is not None:
    if not os.path.isdir(FLAGS.manual_dir):
      raise app.UsageError(f'--manual_dir {FLAGS.manual_dir!r} is not a directory')
    readers = [part for part in config.parts.values()
               if data_lib.reads_manual_dir(part.data.dataset)]
    if not readers:
      raise app.UsageError('--manual_dir: no part of this study reads downloaded files (its '
                           'datasets ship with medinv); drop --manual_dir')
    for part in readers:
      part.data.manual_dir = os.path.abspath(FLAGS.manual_dir)
  study.run(config, FLAGS.workdir)
  print(f'report: {os.path.join(FLAGS.workdir, "report.md")}')


if __name__ == '__main__':
  logging.set_verbosity(logging.INFO)
  progress.quiet_library_logs()
  cli.run(main)
