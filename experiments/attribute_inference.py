"""Attribute inference under label perturbation.

  ./launch.sh attribute_inference --config configs/attribute_heart.py --workdir runs/attribute_heart

Trains (or reuses, from WORKDIR/target) the target model, runs every attack on every
sensitive attribute over the whole flip_prob grid, and writes WORKDIR/results.json,
results.csv and attribute.png.
"""
from absl import flags
from absl import logging

from medinv import api
from medinv.core import cli
from medinv.core import progress

cli.define_config_file('config', 'configs/attribute_heart.py', 'Attribute-inference config.')
flags.DEFINE_string('workdir', None, 'Run directory (target model, config.json, results).')
FLAGS = flags.FLAGS


def summary(rows: list[dict]) -> str:
  """A member-target table: MAP accuracy per variant, learned, baselines, release utility."""
  rows = [r for r in rows if r['targets'] == 'members']
  attacks = sorted(dict.fromkeys((r['attack'], r['variant']) for r in rows),
                   key=lambda attack: attack[0] != 'map')  # MAP variants first.
  header = (f'{"attribute":<12} {"p":>5} {"eps":>6} ' +
            ' '.join(f'{a[:3] + "/" + v[:6]:>11}' for a, v in attacks) +
            f' {"prior":>6} {"clf":>6} {"rel_acc":>7} {"test":>6}')
  lines = [header]
  for (name, flip_prob), group in _group(rows).items():
    first = group[0]
    by_attack = {(r['attack'], r['variant']): r['attack_accuracy'] for r in group}
    lines.append(
        f'{name:<12} {flip_prob:>5.2f} {float(first["epsilon"]):>6.2f} ' +
        ' '.join(f'{by_attack[a]:>11.3f}' for a in attacks) +
        f' {_cell(first.get("prior_accuracy"), 6)} '
        f'{_cell(first.get("baseline_classifier_accuracy"), 6)}'
        f' {first["release_accuracy"]:>7.3f} {first["release_test_accuracy"]:>6.3f}')
  return '\n'.join(lines)


def _cell(value, width: int) -> str:
  """A baseline's accuracy, or n/a when the config did not run that baseline."""
  return f'{value:>{width}.3f}' if value is not None else f'{"n/a":>{width}}'


def _group(rows):
  groups = {}
  for r in rows:
    groups.setdefault((r['attribute'], r['flip_prob']), []).append(r)
  return groups


def main(argv):
  del argv
  config = FLAGS.config
  workdir = FLAGS.workdir or f'runs/attribute_{config.data.dataset}'
  result = api.attribute_inference(config, workdir)
  print(summary(result.rows))
  print(f'model test accuracy {result.metrics["model_test_accuracy"]:.3f}; '
        f'results in {workdir}/results.json')


if __name__ == '__main__':
  logging.set_verbosity(logging.INFO)
  progress.quiet_library_logs()
  cli.run(main)
