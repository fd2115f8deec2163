"""Attribute inference on cardio (Kaggle Cardiovascular Disease, 70,000 records).

Derives from configs/aia_heart.py; the data are not shipped, so pass the folder that holds
cardio_train.csv (a copy is in ../shared/data/cardio):

  ./launch.sh attribute_inference --config configs/aia_cardio.py \\
      --config.data.manual_dir=../shared/data/cardio --workdir runs/aia_cardio
  ./launch.sh attribute_inference --config configs/aia_cardio.py:smoke \\
      --config.data.manual_dir=../shared/data/cardio --workdir /tmp/aia_cardio_smoke
"""
from configs import aia_heart
from configs import common

# Every categorical cardio attribute with 2-4 values.
SENSITIVE = ('gender', 'cholesterol', 'gluc', 'smoke', 'alco', 'active')


def get_config(arg=None):
  args = common.parse_arg(arg, smoke=False, release='label')
  config = aia_heart.get_config(','.join(['smoke'] * args.smoke + [f'release={args.release}']))
  config.data.dataset = 'cardio'
  # 56,000 training records: larger batches, fewer epochs than heart's 242.
  config.train.update(num_epochs=10, batch_size=128, learning_rate=1e-3,
                      checkpoint_every_epochs=5)
  config.attack.sensitive = SENSITIVE
  config.defense.num_draws = 3  # 56,000 members: one draw already averages over many.
  if args.smoke:
    config.train.update(num_epochs=1, checkpoint_every_epochs=1)
    config.attack.update(sensitive=('gender', 'cholesterol'), max_records=1000)
  return config
