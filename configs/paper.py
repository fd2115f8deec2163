"""The study at paper scale on downloaded data: ./launch.sh paper --manual_dir DIR

Attribute inference on cardio (70,000 records; cardio_train.csv in DIR) and heart_disease
(shipped); model inversion on mini-MIAS (mdb*.pgm + Info.txt in DIR), CBIS-DDSM (its CSVs and
DICOM folders in DIR) and a MedMNIST npz (DIR/<medmnist>.npz). A part whose files are not in
DIR is skipped, with a line in report.md saying which files were missing.

  ./launch.sh paper --manual_dir ../shared/data/cardio
  ./launch.sh paper --manual_dir /data/medical --config configs/paper.py:medmnist=pneumoniamnist
  ./launch.sh paper --config configs/paper.py:smoke --manual_dir ../shared/data/cardio \\
      --workdir /tmp/paper_smoke
"""
import ml_collections

from configs import attribute_cardio
from configs import attribute_heart
from configs import common
from configs import inversion_breastmnist
from configs import train_cbis_ddsm
from configs import train_medmnist
from configs import train_mias


def inversion_config(train_module, part_arg, **data_overrides):
  """The model-inversion attack and defense of inversion_breastmnist on another image dataset."""
  config = inversion_breastmnist.get_config(part_arg)
  target = train_module.get_config(part_arg)
  config.data, config.train = target.data, target.train
  config.data.update(data_overrides)
  return config


def get_config(arg=None):
  args = common.parse_arg(arg, smoke=False, medmnist='breastmnist')
  part_arg = 'smoke' if args.smoke else None
  config = ml_collections.ConfigDict()
  config.title = 'medinv study: paper scale (cardio, heart_disease, MIAS, CBIS-DDSM, MedMNIST)'
  # Parts run at once, each in its own process (medinv.study.workers); 0: 2 on a CPU host
  # with two or more cores, else 1. 1 by default: a second worker pays when the parts are of
  # similar size (the demo: 5m19s -> 4m17s on 2 cores); beside one long model-inversion part
  # it saved 2 s of 13 min (the parts share the cores).
  config.workers = 1
  config.parts = ml_collections.ConfigDict()
  config.parts.attribute_cardio = attribute_cardio.get_config(part_arg)
  config.parts.attribute_heart = attribute_heart.get_config(part_arg)
  config.parts.inversion_mias = inversion_config(train_mias, part_arg)
  config.parts.inversion_cbis_ddsm = inversion_config(train_cbis_ddsm, part_arg)
  config.parts.inversion_medmnist = inversion_config(train_medmnist, part_arg,
                                                     medmnist_name=args.medmnist)
  return config
