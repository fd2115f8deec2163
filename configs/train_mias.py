"""Train the SplitCNN on mini-MIAS (322 mammograms, resized to 64x64; patient-safe split).

The data are not shipped: pass the folder that holds mdb001.pgm ... mdb322.pgm and Info.txt
(`medinv.data.describe()` says where to download them).

  ./launch.sh train --config configs/train_mias.py \\
      --config.data.manual_dir=/data/all-mias --workdir runs/train_mias
  ./launch.sh train --config configs/train_mias.py:labels=abnormal \\
      --config.data.manual_dir=/data/all-mias --workdir runs/train_mias_abnormal
  ./launch.sh train --config configs/train_mias.py:smoke \\
      --config.data.manual_dir=/data/all-mias --workdir /tmp/mias_smoke

labels: `severity` (normal / benign / malignant) or `abnormal` (normal vs abnormal).
"""
from configs import common


def get_config(arg=None):
  args = common.parse_arg(arg, smoke=False, labels='severity', image_size=64)
  config = common.base_config('mias', 'split_cnn', image_size=args.image_size,
                              variant=args.labels)
  config.train.update(num_epochs=40, batch_size=32, learning_rate=1e-3,
                      checkpoint_every_epochs=10, augment_flip=True)
  if args.smoke:
    config.data.image_size = 16
    config.train.update(num_epochs=2, batch_size=64, checkpoint_every_epochs=1)
  return config
