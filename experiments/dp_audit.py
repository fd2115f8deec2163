"""DP audit: lower bounds on epsilon from canaries in or out of K DP-SGD runs.

  ./launch.sh dp_audit --workdir runs/dp_audit
  ./launch.sh dp_audit --config.audit.fault=noise_div10 --workdir runs/dp_audit_broken

Trains (or resumes, from WORKDIR/population) config.audit.num_models models with DP-SGD on the
training records plus the canaries, scores the canaries, and writes WORKDIR/results.json and
results.csv: one row per audit (multi_run, one_run, one_run_fdp) with its epsilon lower bound
beside the claimed epsilon (medinv.membership.audit).
"""
from absl import flags
from absl import logging

from medinv.core import cli
from medinv.core import progress
from medinv.membership import audit

cli.define_config_file('config', 'configs/dp_audit.py', 'DP audit config.')
flags.DEFINE_string('workdir', 'runs/dp_audit', 'Run directory (models, config.json, results).')
FLAGS = flags.FLAGS


def summary(result: dict) -> str:
  """One line per audit, then the claimed mechanism and the models' accuracy."""
  m = result['metrics']
  lines = [f'{"audit":<12} {"epsilon >=":>10} {"ceiling":>8} {"AUC":>6} {"in/out":>9}']
  for r in result['rows']:
    lines.append(f'{r["audit"]:<12} {r["epsilon_lower_bound"]:>10.3f} {r["ceiling"]:>8.3f} '
                 f'{r["auc"]:>6.3f} {r["in_scores"]:>4}/{r["out_scores"]:<4}')
  lines.append(f'claimed epsilon {m["dp_epsilon"]:.3f} at delta {m["delta"]:.2g} '
               f'(noise multiplier {m["noise_multiplier"]:.3f}, mechanism fault: {m["fault"]}); '
               f'{m["num_models"]} models, test accuracy {m["mean_test_accuracy"]:.3f} '
               f'[{m["test_accuracy_low"]:.3f}, {m["test_accuracy_high"]:.3f}]; bounds at '
               f'{result["rows"][0]["confidence"]:g} confidence')
  return '\n'.join(lines)


def main(argv):
  del argv
  result = audit.run(FLAGS.config, FLAGS.workdir)
  print(summary(result))
  print(f'results in {FLAGS.workdir}/results.json')


if __name__ == '__main__':
  logging.set_verbosity(logging.INFO)
  progress.quiet_library_logs()
  cli.run(main)
