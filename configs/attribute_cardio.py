"""Attribute inference on cardio (Kaggle Cardiovascular Disease, 70,000 records).

The target model is configs/train_cardio.py's; the attack and defense settings are
configs/attribute_heart.py's. The data are not shipped: pass the folder that holds
cardio_train.csv (a copy is in ../shared/data/cardio).

  ./launch.sh attribute_inference --config configs/attribute_cardio.py \\
      --config.data.manual_dir=../shared/data/cardio --workdir runs/attribute_cardio
  ./launch.sh attribute_inference --config configs/attribute_cardio.py:smoke \\
      --config.data.manual_dir=../shared/data/cardio --workdir /tmp/attribute_cardio_smoke
  ./launch.sh attribute_inference --config configs/attribute_cardio.py:clean,release=probs \\
      --config.data.manual_dir=../shared/data/cardio --workdir runs/attribute_cardio_clean_probs
"""
from configs import attribute_heart
from configs import common
from configs import train_cardio

# Every categorical cardio attribute with 2-4 values.
SENSITIVE = ('gender', 'cholesterol', 'gluc', 'smoke', 'alco', 'active')


def get_config(arg=None):
  args = common.parse_arg(arg, smoke=False, clean=False, release='label')
  config = train_cardio.get_config(f'smoke={args.smoke},clean={args.clean}')
  # 56,000 training records: all are member targets (the paper's setting), and the 7,000
  # held-out records that are not non-member targets are already a large auxiliary set.
  config.attack = attribute_heart.attack_config(SENSITIVE, args.release, member_fraction=1.0)
  # 56,000 member targets: a few release draws already give tight averages.
  config.defense = attribute_heart.defense_config(args.release, num_draws=3)
  if args.smoke:
    config.attack.update(sensitive=('gender', 'cholesterol'), max_records=1000)
    config.attack.learned.steps = config.attack.classifier.steps = 50
    config.defense.update(flip_probs=(0.0, 0.25, 0.5), num_draws=2)
  return config
