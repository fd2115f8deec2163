"""Choose a training recipe on validation accuracy (medinv.training.selection):

  ./launch.sh select_recipe --config configs/select_breastmnist.py \\
      --workdir runs/select_breastmnist
  ./launch.sh select_recipe --config configs/select_heart.py --workdir runs/select_heart

Rerunning the same command reuses every finished training run.
"""
from absl import flags
from absl import logging

from medinv.core import cli
from medinv.core import progress
from medinv.training import selection

cli.define_config_file('config', 'configs/select_heart.py', 'Selection config.')
flags.DEFINE_string('workdir', None, 'Selection directory: one subdirectory per training run.')
FLAGS = flags.FLAGS


def main(argv):
  del argv
  config = FLAGS.config
  selection.run(config, FLAGS.workdir or f'runs/select_{config.data.dataset}')


if __name__ == '__main__':
  logging.set_verbosity(logging.WARNING)
  progress.quiet_library_logs()
  cli.run(main)
