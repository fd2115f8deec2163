"""Membership inference (LiRA and the loss threshold) with a shadow population in one program.

  ./launch.sh membership_inference --config configs/membership_heart.py \\
      --workdir runs/membership_heart
  ./launch.sh membership_inference --config configs/membership_heart.py:smoke \\
      --workdir /tmp/membership_smoke

Trains (or resumes, from WORKDIR/checkpoints) the target and config.membership.num_shadows shadow
models as one population, runs every attack of config.attack.names, and writes
WORKDIR/results.json, results.csv (one row per attack), records.csv (per-record scores) and
roc.png.
"""
from absl import flags
from absl import logging

from medinv import api
from medinv.core import cli
from medinv.core import progress

cli.define_config_file('config', 'configs/membership_heart.py', 'Membership-inference config.')
flags.DEFINE_string('workdir', None, 'Run directory (shadows, config.json, results, figures).')
FLAGS = flags.FLAGS


def summary(rows: list[dict], fprs) -> str:
  """One line per attack: AUC, balanced accuracy and TPR at each FPR with their intervals."""
  header = f'{"attack":<28} {"AUC":>19} {"bal.acc":>7} ' + ' '.join(
      f'{"TPR@" + format(fpr, "g"):>19}' for fpr in fprs)
  lines = [header]
  for r in rows:
    cells = [f'{r["auc"]:.3f} [{r["auc_low"]:.3f}, {r["auc_high"]:.3f}]',
             f'{r["balanced_accuracy"]:>7.3f}']
    for fpr in fprs:
      name = f'tpr_at_{fpr:g}'
      flag = '*' if r[f'fpr_{fpr:g}_below_one_record'] else ' '
      cells.append(f'{r[name]:.3f}{flag}[{r[name + "_low"]:.3f}, {r[name + "_high"]:.3f}]')
    lines.append(f'{r["attack"]:<28} ' + ' '.join(cells))
  lines.append('* below one non-member record: the TPR at zero false positives; intervals: '
               f'{rows[0]["interval"]}')
  return '\n'.join(lines)


def subgroup_summary(rows: list[dict], fpr: float) -> str:
  """TPR at `fpr` per attack and subgroup value (the issue's 'who is most exposed')."""
  name = f'tpr_at_{fpr:g}'
  lines = []
  for r in rows:
    if r['subgroup'] != 'all':
      lines.append(f'  {r["attack"]:<28} {r["subgroup"]}={r["subgroup_value"]:<8} '
                   f'n={r["num_members"]}+{r["num_nonmembers"]:<4} AUC {r["auc"]:.3f} '
                   f'TPR@{fpr:g} {r[name]:.3f}{"*" if r[f"fpr_{fpr:g}_below_one_record"] else ""}'
                   f' [{r[name + "_low"]:.3f}, {r[name + "_high"]:.3f}]')
  return '\n'.join(['per subgroup:'] + lines) if lines else ''


def main(argv):
  del argv
  config = FLAGS.config
  workdir = FLAGS.workdir or f'runs/membership_{config.data.dataset}'
  result = api.membership_inference(config, workdir)
  fprs = tuple(config.evaluation.fprs)
  print(summary([r for r in result.rows if r['subgroup'] == 'all'], fprs))
  print(subgroup_summary(result.rows, fprs[0]))
  m = result.metrics
  print(f'target test accuracy {m["target_test_accuracy"]:.3f} '
        f'(train {m["target_train_accuracy"]:.3f}, {m["num_shadows"]} shadows); '
        f'results in {workdir}/results.json')


if __name__ == '__main__':
  logging.set_verbosity(logging.INFO)
  progress.quiet_library_logs()
  cli.run(main)
