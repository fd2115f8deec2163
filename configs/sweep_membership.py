"""Membership-inference sweep: target seeds as runs, each with its own shadow population.

Each run draws its own membership split and trains its target and K shadows
(configs/membership_heart.py's or membership_breastmnist.py's settings) from its seed, then
runs every attack against every defense (medinv.membership.experiment). The sweep writes every row
over the seeds to seeds.csv (AUC, TPR at low FPR, accuracy under each defense: mean and 95%
t-interval over the targets, medinv.study.seeds), beside each run's own bootstrap intervals over
records.

  ./launch.sh sweep --config configs/sweep_membership.py --workdir runs/sweep_membership
  ./launch.sh sweep --config configs/sweep_membership.py:dataset=breastmnist \\
      --workdir runs/sweep_membership_breastmnist
  ./launch.sh sweep --config configs/sweep_membership.py:smoke --workdir /tmp/sweep_membership

Args: `dataset=heart_disease|breastmnist`; `seeds=N` (default 4); `smoke` (two seeds, the
smoke config's shadows and epochs).
"""
import ml_collections

from configs import common
from configs import membership_breastmnist
from configs import membership_heart

DATASETS = {'heart_disease': membership_heart, 'breastmnist': membership_breastmnist}


def get_config(arg=None):
  args = common.parse_arg(arg, smoke=False, dataset='heart_disease', seeds=4)
  if args.dataset not in DATASETS:
    raise ValueError(f'dataset must be one of {sorted(DATASETS)}, got {args.dataset!r}')
  if args.seeds < 2:
    raise ValueError(f'seeds must be >= 2 (a spread over targets), got {args.seeds}')
  config = DATASETS[args.dataset].get_config('smoke' if args.smoke else None)
  config.sweep = ml_collections.ConfigDict()
  config.sweep.experiment = 'membership_inference'
  config.sweep.axes = ml_collections.ConfigDict()
  config.sweep.axes.seed = tuple(range(2 if args.smoke else args.seeds))  # run axis
  return config
