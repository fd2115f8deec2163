"""Train the SplitCNN on any MedMNIST v2 2D npz (official train/validation/test splits).

The data are not shipped: pass the folder that holds `<name>.npz` (28x28) or
`<name>_<size>.npz` (`medinv.data.describe()` says where to download them). Images are resized
to image_size (default: 32 for 28x28 files, else the file's size).

  ./launch.sh train --config configs/train_medmnist.py:name=pneumoniamnist \\
      --config.data.manual_dir=/data/medmnist --workdir runs/train_pneumoniamnist
  ./launch.sh train --config configs/train_medmnist.py:name=dermamnist,size=64 \\
      --config.data.manual_dir=/data/medmnist --workdir runs/train_dermamnist_64
  ./launch.sh train --config configs/train_medmnist.py:name=chestmnist,task=6 \\
      --config.data.manual_dir=/data/medmnist --workdir runs/train_chestmnist_pneumonia
  ./launch.sh train --config configs/train_medmnist.py:name=pneumoniamnist,smoke \\
      --config.data.manual_dir=/data/medmnist --workdir /tmp/medmnist_smoke

name / size / task set config.data.medmnist_name / medmnist_size / medmnist_task (task: one
column of a multi-label set such as chestmnist, as a binary label; -1 = single-label file).
"""
from configs import common


def get_config(arg=None):
  args = common.parse_arg(arg, smoke=False, name='pneumoniamnist', size=28, task=-1,
                          image_size=0)
  image_size = args.image_size or (32 if args.size == 28 else args.size)
  config = common.base_config('medmnist', 'split_cnn', image_size=image_size,
                              medmnist_name=args.name, medmnist_size=args.size,
                              medmnist_task=args.task)
  config.train.update(num_epochs=20, batch_size=128, learning_rate=1e-3,
                      checkpoint_every_epochs=5, augment_flip=False)
  if args.smoke:
    config.data.image_size = 16
    config.train.update(num_epochs=1, batch_size=128, checkpoint_every_epochs=1)
  return config
