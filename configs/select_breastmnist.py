"""Choose BreastMNIST's SplitCNN recipe on validation accuracy (medinv.training.selection).

Candidates: epochs x learning-rate schedule x random shift (up to size / 16 pixels), with
configs/train_breastmnist.py's flips, batch size and learning rate; each trains at 3 run
seeds on the 546 training images and is scored by its mean accuracy on the 78 validation
images (MedMNIST's official split). The test images give the chosen recipe's number only.

  ./launch.sh select_recipe --config configs/select_breastmnist.py \\
      --workdir runs/select_breastmnist_16
  ./launch.sh select_recipe --config configs/select_breastmnist.py:size=32 \\
      --workdir runs/select_breastmnist_32
  ./launch.sh select_recipe --config configs/select_breastmnist.py:smoke \\
      --workdir /tmp/select_bm_smoke

Args: `size` (data.image_size, a multiple of 16; the demo trains this target at 16);
`smoke` (1 epoch, 2 candidates, 1 seed).
"""
import ml_collections

from configs import common
from configs import train_breastmnist


def get_config(arg=None):
  args = common.parse_arg(arg, smoke=False, size=16)
  if args.size <= 0 or args.size % 16:
    raise ValueError(f'config argument size={args.size}: expected a positive multiple of 16')
  config = train_breastmnist.get_config('smoke' if args.smoke else None)
  config.data.image_size = args.size
  config.select = ml_collections.ConfigDict()
  config.select.axes = ml_collections.ConfigDict()
  config.select.axes.train = ml_collections.ConfigDict(dict(
      num_epochs=(10, 20, 30), schedule=('constant', 'cosine'),
      augment_shift=(0, args.size // 16)))
  config.select.repeats = ml_collections.ConfigDict(dict(seed=(0, 1, 2)))
  if args.smoke:
    config.select.axes.train = ml_collections.ConfigDict(dict(
        num_epochs=(1,), augment_shift=(0, args.size // 16)))
    config.select.repeats.seed = (0,)
  return config
