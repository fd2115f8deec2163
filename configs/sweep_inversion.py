"""Model-inversion sweep: one run per split, the sigma grid vmapped in each.

Each run attacks the same target SplitCNN (configs/inversion_breastmnist.py's settings) at one
split; within a run every attack's sigma grid is sharded over every device
(medinv.inversion.experiment), fed `attack.grid_chunk` sigmas per device per call
(defense.model_perturbation.strengths; the default 0 vmaps the whole grid in one call).

  ./launch.sh sweep --config configs/sweep_inversion.py --workdir runs/sweep_inversion
  ./launch.sh sweep --config configs/sweep_inversion.py:smoke --workdir /tmp/sweep_inversion \\
      --hosts 2
  ./launch.sh sweep --config configs/sweep_inversion.py --config.attack.grid_chunk=1 \\
      --workdir runs/sweep_inversion_low_memory     # one sigma per device per call
  ./launch.sh sweep --config configs/sweep_inversion.py:seeds=4 \\
      --config.sweep.axes.attack.splits="((4,),)" --workdir runs/sweep_inversion_seeds

Args: `smoke` shrinks images, training, steps and the grid (splits 2 and 4); `seeds=N` trains
N targets (seeds 0..N-1, a run axis) and writes every row over them to seeds.csv (mean and
95% t-interval over the seeds, medinv.study.seeds).
"""
import ml_collections

from configs import common
from configs import inversion_breastmnist


def get_config(arg=None):
  args = common.parse_arg(arg, smoke=False, seeds=1)
  if args.seeds < 1:
    raise ValueError(f'seeds must be >= 1, got {args.seeds}')
  config = inversion_breastmnist.get_config('smoke' if args.smoke else None)
  config.sweep = ml_collections.ConfigDict()
  config.sweep.experiment = 'model_inversion'
  config.sweep.axes = ml_collections.ConfigDict()
  config.sweep.axes.attack = ml_collections.ConfigDict()
  config.sweep.axes.attack.splits = ((2,), (4,), (6,))  # run axis
  config.sweep.axes.defense = ml_collections.ConfigDict()
  config.sweep.axes.defense.sigma = tuple(config.defense.model_perturbation.strengths)  # vmapped
  if args.seeds > 1:
    config.sweep.axes.seed = tuple(range(args.seeds))  # run axis: one target per seed
  if args.smoke:
    config.sweep.axes.attack.splits = ((2,), (4,))
  return config
