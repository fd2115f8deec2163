"""Choose heart_disease's MLP recipe on validation accuracy (medinv.training.selection).

heart_disease has no validation split: 20% of its 242 training records (48) are held out for
validation by data.validation_seed, and the 61 test records stay what they are. Every
candidate trains at every run seed and validation seed (3 x 3: repeated hold-out, so no single
48-record draw decides); the highest mean validation accuracy wins. configs/train_heart.py
then trains the chosen recipe on all 242 training records.

  ./launch.sh select_recipe --config configs/select_heart.py --workdir runs/select_heart
  ./launch.sh select_recipe --config configs/select_heart.py:members \
      --workdir runs/select_heart_members
  ./launch.sh select_recipe --config configs/select_heart.py:smoke --workdir /tmp/select_smoke

`members` chooses for the membership target's size (configs/membership_heart.py trains on
121 of the 242 records): half the training records train, the other half (121) validate, over
the 12 cosine candidates with weight decay 0.1 or 1, a third of the grid to keep the run to 10
minutes on a 2-core CPU (at 194 records the whole grid scored 0.82-0.85, and the chosen
candidate was one of these 12).

Args: `members`, `smoke` (2 candidates, 2 repeats, 3 epochs).
"""
import ml_collections

from configs import common
from configs import train_heart


def get_config(arg=None):
  args = common.parse_arg(arg, smoke=False, members=False)
  config = train_heart.get_config('smoke' if args.smoke else None)
  config.data.validation_fraction = 0.5 if args.members else 0.2
  config.select = ml_collections.ConfigDict()
  config.select.axes = ml_collections.ConfigDict()
  config.select.axes.train = ml_collections.ConfigDict(dict(
      num_epochs=(20, 40, 80), learning_rate=(3e-4, 1e-3), schedule=('constant', 'cosine'),
      weight_decay=(0.0, 0.1, 1.0)))
  if args.members:
    config.select.axes.train.update(schedule=('cosine',), weight_decay=(0.1, 1.0))
  config.select.repeats = ml_collections.ConfigDict()
  config.select.repeats.seed = (0, 1, 2)
  config.select.repeats.data = ml_collections.ConfigDict(dict(validation_seed=(0, 1, 2)))
  if args.smoke:
    config.select.axes.train = ml_collections.ConfigDict(dict(
        num_epochs=(3,), learning_rate=(3e-4, 1e-3)))
    config.select.repeats.seed = (0, 1)
    config.select.repeats.data.validation_seed = (0,)
  return config
