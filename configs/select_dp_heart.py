"""Choose heart_disease's DP-SGD recipe on validation accuracy, at one target epsilon.

The same grid and the same rule (medinv.training.selection: the highest mean validation
accuracy over the repeats wins, ties by the lower validation loss) at every target epsilon,
inf included, so the DP study's rows differ by their epsilon only. As in the DP study
(configs/dp.py), features are scaled by heart_disease's public bounds, the schedule is
constant, clip norm 1, batch 32, no weight decay. 20% of the 242 training records (48) are
held out for validation by data.validation_seed (delta and the noise follow the 194 that
train); the 61 test records enter no choice. Every candidate trains at run seeds 0-2 x
validation seeds 0-2, as configs/select_heart.py. The choices go to
configs/dp_audit.py's HEART_RECIPES, which configs/dp.py and the DP audit train with.

  ./launch.sh select_recipe --config configs/select_dp_heart.py:epsilon=inf \
      --workdir runs/select_dp_heart_inf
  ./launch.sh select_recipe --config configs/select_dp_heart.py:epsilon=8 \
      --workdir runs/select_dp_heart_eps8
  ./launch.sh select_recipe --config configs/select_dp_heart.py:epsilon=1 \
      --workdir runs/select_dp_heart_eps1
  ./launch.sh select_recipe --config configs/select_dp_heart.py:epsilon=1,smoke \
      --workdir /tmp/select_dp_smoke

Args: `epsilon` (the target epsilon, 'inf' for ordinary training; default 1), `smoke`
(2 candidates, 2 repeats, 3 epochs).
"""
import ml_collections

from configs import common
from configs import train_heart


def get_config(arg=None):
  args = common.parse_arg(arg, smoke=False, epsilon=1.0)
  config = train_heart.get_config('smoke' if args.smoke else None)
  config.data.validation_fraction = 0.2
  config.data.scaling = 'bounds'
  config.train.update(schedule='constant', warmup_epochs=0, weight_decay=0.0)
  config.train.dp.update(target_epsilon=args.epsilon, clip_norm=1.0)
  config.select = ml_collections.ConfigDict()
  config.select.axes = ml_collections.ConfigDict()
  config.select.axes.train = ml_collections.ConfigDict(dict(
      learning_rate=(1e-3, 3e-3, 1e-2), num_epochs=(20, 40)))
  config.select.repeats = ml_collections.ConfigDict()
  config.select.repeats.seed = (0, 1, 2)
  config.select.repeats.data = ml_collections.ConfigDict(dict(validation_seed=(0, 1, 2)))
  if args.smoke:
    config.select.axes.train = ml_collections.ConfigDict(dict(
        learning_rate=(1e-3, 1e-2), num_epochs=(3,)))
    config.select.repeats.seed = (0, 1)
    config.select.repeats.data.validation_seed = (0,)
  return config
