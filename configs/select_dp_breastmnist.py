"""Choose BreastMNIST's DP-SGD recipe on validation accuracy, at one target epsilon.

The DP study's BreastMNIST parts (configs/dp.py: model inversion at split 4, membership
inference) train the SplitCNN at 16x16. Here the same grid and the same rule
(medinv.training.selection: the highest mean validation accuracy over the repeats wins, ties by
the lower validation loss) run at every target epsilon, inf included, so the DP study's rows
differ by their epsilon only: learning rate 3e-4 / 1e-3 / 3e-3 x 10 / 20 epochs, constant
schedule, no weight decay, flips and no shift, clip norm 1, batch 32; every candidate trains at
run seeds 0-2 on the 546 training images and is scored on MedMNIST's 78 validation images.
The 156 test images enter no choice. The choices go to configs/dp_audit.py's
BREASTMNIST_RECIPES, which configs/dp.py trains with.

  ./launch.sh select_recipe --config configs/select_dp_breastmnist.py:epsilon=1 \\
      --workdir runs/select_dp_breastmnist_eps1
  ./launch.sh select_recipe --config configs/select_dp_breastmnist.py:epsilon=inf \\
      --workdir runs/select_dp_breastmnist_inf
  ./launch.sh select_recipe --config configs/select_dp_breastmnist.py:epsilon=1,smoke \\
      --workdir /tmp/select_dp_bm_smoke

Args: `epsilon` (the target epsilon, 'inf' for ordinary training; default 1), `smoke`
(1 candidate, 1 seed, 1 epoch).
"""
import ml_collections

from configs import common
from configs import train_breastmnist


def get_config(arg=None):
  args = common.parse_arg(arg, smoke=False, epsilon=1.0)
  config = train_breastmnist.get_config('smoke' if args.smoke else None)
  config.data.image_size = 16
  config.train.update(schedule='constant', warmup_epochs=0, weight_decay=0.0, augment_shift=0)
  config.train.dp.update(target_epsilon=args.epsilon, clip_norm=1.0)
  config.select = ml_collections.ConfigDict()
  config.select.axes = ml_collections.ConfigDict()
  config.select.axes.train = ml_collections.ConfigDict(dict(
      learning_rate=(3e-4, 1e-3, 3e-3), num_epochs=(10, 20)))
  config.select.repeats = ml_collections.ConfigDict(dict(seed=(0, 1, 2)))
  if args.smoke:
    # One candidate: the run end to end (choosing among candidates is tested on heart_disease,
    # tests/training/test_selection.py); each DP-SGD SplitCNN candidate compiles its own program.
    config.select.axes.train = ml_collections.ConfigDict(dict(
        learning_rate=(3e-3,), num_epochs=(1,)))
    config.select.repeats.seed = (0,)
  return config
