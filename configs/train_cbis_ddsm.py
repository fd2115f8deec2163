"""Train the SplitCNN on CBIS-DDSM, benign vs malignant (official split, resized to 64x64).

The data are not shipped: pass the folder that holds the four case-description CSVs and the
CBIS-DDSM/ DICOM download (`medinv.data.describe()` says how to arrange it).

  ./launch.sh train --config configs/train_cbis_ddsm.py \\
      --config.data.manual_dir=/data/cbis_ddsm --workdir runs/train_cbis_ddsm
  ./launch.sh train --config configs/train_cbis_ddsm.py:view=roi,image_size=128 \\
      --config.data.manual_dir=/data/cbis_ddsm --workdir runs/train_cbis_ddsm_roi
  ./launch.sh train --config configs/train_cbis_ddsm.py:smoke \\
      --config.data.manual_dir=/data/cbis_ddsm --workdir /tmp/cbis_smoke

view: `full` (whole mammograms) or `roi` (cropped lesions).
"""
from configs import common


def get_config(arg=None):
  args = common.parse_arg(arg, smoke=False, view='full', image_size=64)
  config = common.base_config('cbis_ddsm', 'split_cnn', image_size=args.image_size,
                              variant=args.view)
  config.train.update(num_epochs=30, batch_size=64, learning_rate=1e-3,
                      checkpoint_every_epochs=5, augment_flip=True)
  if args.smoke:
    config.data.image_size = 16
    config.train.update(num_epochs=2, batch_size=64, checkpoint_every_epochs=1)
  return config
