"""Train the MLP on cardio (Kaggle Cardiovascular Disease, 70,000 records, 80/20 split).

The data are not shipped: pass the folder that holds cardio_train.csv (a copy is in
../shared/data/cardio; `medinv.data.describe()` says where to download it).

  ./launch.sh train --config configs/train_cardio.py \\
      --config.data.manual_dir=../shared/data/cardio --workdir runs/train_cardio
  ./launch.sh train --config configs/train_cardio.py:clean \\
      --config.data.manual_dir=../shared/data/cardio --workdir runs/train_cardio_clean
  ./launch.sh train --config configs/train_cardio.py:smoke \\
      --config.data.manual_dir=../shared/data/cardio --workdir /tmp/cardio_smoke

`clean` drops the 1,376 records with implausible measurements (config.data.clean).
"""
from configs import common


def get_config(arg=None):
  args = common.parse_arg(arg, smoke=False, clean=False)
  config = common.base_config('cardio', 'mlp', clean=args.clean)
  # 56,000 training records: large batches and few epochs (the MLP plateaus after ~10).
  config.train.update(num_epochs=10, batch_size=128, learning_rate=1e-3,
                      checkpoint_every_epochs=5)
  if args.smoke:
    config.train.update(num_epochs=1, batch_size=512, checkpoint_every_epochs=1)
  return config
