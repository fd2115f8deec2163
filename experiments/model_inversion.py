"""Model inversion in collaborative inference under model perturbation.

  ./launch.sh model_inversion --config configs/inversion_breastmnist.py \\
      --workdir runs/inversion_breastmnist
  ./launch.sh model_inversion --config configs/inversion_breastmnist.py:smoke \\
      --workdir /tmp/inversion_smoke
"""
from absl import flags
from absl import logging

from medinv import api
from medinv.core import cli
from medinv.core import progress

cli.define_config_file('config', 'configs/inversion_breastmnist.py', 'Attack config.')
flags.DEFINE_string('workdir', None, 'Run directory (target/, config.json, results, figures).')
FLAGS = flags.FLAGS


def _format(value, spec='.3f'):
  return '' if value is None else (format(value, spec) if isinstance(value, float) else
                                   str(value))


def main(argv):
  del argv
  config = FLAGS.config
  workdir = FLAGS.workdir or f'runs/inversion_{config.data.dataset}'
  result = api.model_inversion(config, workdir)
  print(f'{"attack":16} {"split":>5} {"defense":>18} {"strength":>8} {"mode":>9} {"knows":>5} '
        f'{"ssim":>13} {"psnr":>6} {"acc":>6}')
  for row in result.rows:
    print(f'{row["attack"]:16} {_format(row["split"]):>5} {_format(row["defense"]):>18} '
          f'{_format(row["strength"], "g"):>8} '
          f'{_format(row["mode"]):>9} {_format(row["knows_defense"]):>5} '
          f'{_format(row["ssim_mean"])}±{_format(row["ssim_std"])} '
          f'{_format(row["psnr_mean"], ".1f"):>6} {_format(row["model_test_accuracy"]):>6}')
  print(f'results in {workdir}/results.json')


if __name__ == '__main__':
  logging.set_verbosity(logging.INFO)
  progress.quiet_library_logs()
  cli.run(main)
