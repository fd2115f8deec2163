"""Attribute-inference sweep: target seeds as runs, the flip_prob grid vmapped in each.

Each run trains its target MLP (the seed changes the model, so seeds are separate runs) and
attacks it with configs/attribute_heart.py's (or attribute_cardio.py's) settings; the whole
flip_prob grid and its release draws run in one program sharded over every device
(medinv.attribute.experiment).

  ./launch.sh sweep --config configs/sweep_attribute.py --workdir runs/sweep_attribute
  ./launch.sh sweep --config configs/sweep_attribute.py:smoke --workdir /tmp/sweep_attribute \\
      --hosts 2
  ./launch.sh sweep --config configs/sweep_attribute.py:dataset=cardio \\
      --config.data.manual_dir=../shared/data/cardio --workdir runs/sweep_attribute_cardio

Args: `dataset=heart_disease|cardio`; `release=label|probs|...`; `smoke` shrinks the grid.
"""
import ml_collections

from configs import attribute_cardio
from configs import attribute_heart
from configs import common


def get_config(arg=None):
  args = common.parse_arg(arg, smoke=False, dataset='heart_disease', release='label')
  if args.dataset not in ('heart_disease', 'cardio'):
    raise ValueError(f"dataset must be 'heart_disease' or 'cardio', got {args.dataset!r}")
  base = attribute_heart if args.dataset == 'heart_disease' else attribute_cardio
  parts = [f'release={args.release}'] + (['smoke'] if args.smoke else [])
  config = base.get_config(','.join(parts))
  config.sweep = ml_collections.ConfigDict()
  config.sweep.experiment = 'attribute_inference'
  config.sweep.axes = ml_collections.ConfigDict()
  config.sweep.axes.seed = (0, 1, 2, 3)  # run axis: one target model per seed
  config.sweep.axes.defense = ml_collections.ConfigDict()
  config.sweep.axes.defense.flip_prob = tuple(config.defense.flip_probs)  # vmapped
  if args.smoke:
    config.sweep.axes.seed = (0, 1)
  return config
