"""Train a target model: ./launch.sh train --config configs/train_heart.py --workdir runs/x"""
from absl import flags
from absl import logging

from medinv.core import cli
from medinv.core import progress
from medinv.training import trainer

cli.define_config_file('config', 'configs/train_heart.py', 'Training config.')
flags.DEFINE_string('workdir', None, 'Run directory (checkpoints, config.json, results).')
FLAGS = flags.FLAGS


def main(argv):
  del argv
  config = FLAGS.config
  workdir = FLAGS.workdir or f'runs/train_{config.data.dataset}'
  trained = trainer.train_and_evaluate(config, workdir)
  m = trained.metrics
  print(f'{config.data.dataset} {config.model}: test accuracy {m["test_accuracy"]:.3f} '
        f'(majority {m["test_majority_accuracy"]:.3f}), train accuracy {m["train_accuracy"]:.3f};'
        f' results in {workdir}/results.json')


if __name__ == '__main__':
  logging.set_verbosity(logging.INFO)
  progress.quiet_library_logs()
  cli.run(main)
