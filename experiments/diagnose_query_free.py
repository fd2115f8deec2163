"""Why the query-free attack falls short: its shadow edge against hospital A's
(medinv.inversion.diagnose).

  ./launch.sh diagnose_query_free --config configs/inversion_breastmnist.py:split=4 \\
      --workdir runs/diagnose_split4
  ./launch.sh diagnose_query_free --config configs/inversion_breastmnist.py:smoke \\
      --workdir /tmp/diag
"""
import json
import os

from absl import flags
from absl import logging

from medinv.core import cli
from medinv.inversion import diagnose as inversion_diagnose
from medinv.core import progress
from medinv.core import report

cli.define_config_file('config', 'configs/inversion_breastmnist.py', 'Model-inversion config.')
flags.DEFINE_string('workdir', None, 'Run directory (target/ is trained or resumed there).')
FLAGS = flags.FLAGS


def main(argv):
  del argv
  workdir = FLAGS.workdir or f'runs/diagnose_{FLAGS.config.data.dataset}'
  rows = inversion_diagnose.diagnose(FLAGS.config, workdir)
  print(f'{"split":>5} {"edge":36} {"acc via B":>9} {"feat err":>8} {"MMD2":>7} {"rMLE SSIM":>9}')
  for r in rows:
    print(f'{r["split"]:>5} {r["edge"]:36} {r["accuracy_through_cloud"]:9.3f} '
          f'{r["feature_error"]:8.2f} {r["mmd2_to_real"]:7.3f} {r["rmle_ssim"]:9.3f}')
  report.write_atomic(os.path.join(workdir, 'diagnosis.json'), json.dumps(rows, indent=2))
  print(f'diagnosis in {workdir}/diagnosis.json')


if __name__ == '__main__':
  logging.set_verbosity(logging.INFO)
  progress.quiet_library_logs()
  cli.run(main)
