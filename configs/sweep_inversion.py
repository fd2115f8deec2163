"""Model-inversion sweep: one run per split, the sigma grid vmapped in each.

Each run attacks the same target SplitCNN (configs/mia_breastmnist.py's settings) at one
split; within a run every attack's sigma grid is sharded over every device (medinv.mia), fed
`attack.grid_chunk` sigmas per device per call (defense.model_perturbation.strengths).

  ./launch.sh sweep --config configs/sweep_inversion.py --workdir runs/sweep_inversion
  ./launch.sh sweep --config configs/sweep_inversion.py:smoke --workdir /tmp/sweep_mia --hosts 2
  ./launch.sh sweep --config configs/sweep_inversion.py --config.attack.grid_chunk=0 \\
      --workdir runs/sweep_inversion_gpu     # accelerators: the whole grid per call

Args: `smoke` shrinks images, training, steps and the grid (splits 2 and 4).
"""
import ml_collections

from configs import common
from configs import mia_breastmnist


def get_config(arg=None):
  args = common.parse_arg(arg, smoke=False)
  config = mia_breastmnist.get_config('smoke' if args.smoke else None)
  config.sweep = ml_collections.ConfigDict()
  config.sweep.experiment = 'model_inversion'
  config.sweep.axes = ml_collections.ConfigDict()
  config.sweep.axes.attack = ml_collections.ConfigDict()
  config.sweep.axes.attack.splits = ((2,), (4,), (6,))  # run axis
  config.sweep.axes.defense = ml_collections.ConfigDict()
  config.sweep.axes.defense.sigma = tuple(config.defense.model_perturbation.strengths)  # vmapped
  if args.smoke:
    config.sweep.axes.attack.splits = ((2,), (4,))
  return config
