"""Population sweep: target MLPs over seeds x training-time label flip_prob, each attacked.

Every model of a run trains in one program (vmapped over the grid, sharded over the
devices); the MAP attribute-inference attack of configs/attribute_heart.py then runs against
each model (medinv.attribute.evaluation, the evaluation medinv.attribute.experiment runs), next to
its test accuracy and the no-model baselines. Runs: one per batch size.

  ./launch.sh sweep --config configs/sweep_population.py --workdir runs/sweep_population
  ./launch.sh sweep --config configs/sweep_population.py:smoke --workdir /tmp/sweep_smoke
  ./launch.sh sweep --config configs/sweep_population.py:dataset=cardio \\
      --config.data.manual_dir=../shared/data/cardio --workdir runs/sweep_population_cardio
  ./launch.sh sweep --config configs/sweep_population.py --hosts 2 --workdir runs/sweep_2p
  ./launch.sh sweep --config configs/sweep_population.py \\
      --config.sweep.axes.seed="(0,1,2,3,4,5,6,7)" --workdir runs/sweep_population_8

Args: `dataset=heart_disease|cardio`; `smoke` shrinks the grid and training.
"""
import ml_collections

from configs import attribute_cardio
from configs import attribute_heart
from configs import common


def get_config(arg=None):
  args = common.parse_arg(arg, smoke=False, dataset='heart_disease')
  if args.dataset not in ('heart_disease', 'cardio'):
    raise ValueError(f"dataset must be 'heart_disease' or 'cardio', got {args.dataset!r}")
  base = attribute_heart if args.dataset == 'heart_disease' else attribute_cardio
  config = base.get_config('smoke' if args.smoke else None)
  # Every training record of every model is a target (the paper's setting), attacked with
  # the release-channel MAP likelihoods.
  config.attack.member_fraction = 1.0
  config.attack.map.variants = ('indicator', 'confusion')
  config.sweep = ml_collections.ConfigDict()
  config.sweep.experiment = 'population'
  config.sweep.axes = ml_collections.ConfigDict()
  config.sweep.axes.seed = (0, 1, 2, 3)
  config.sweep.axes.train = ml_collections.ConfigDict()
  config.sweep.axes.train.label_flip_prob = (0.0, 0.1, 0.2, 0.3, 0.4)
  config.sweep.axes.train.batch_size = (config.train.batch_size, 2 * config.train.batch_size)
  if args.smoke:
    config.sweep.axes.seed = (0, 1)
    config.sweep.axes.train.label_flip_prob = (0.0, 0.3, 0.45)
  return config
