"""Membership inference (LiRA, RMIA) against the BreastMNIST SplitCNN, queried with flips.

The target and its shadows train exactly as configs/train_breastmnist.py's model (with
random-flip augmentation), each on half of the 546 training images; the attacker queries every
model with each image and its mirror (attack.queries 'flip') and tells the target's 273
members from its 273 non-members.

  ./launch.sh membership_inference --config configs/membership_breastmnist.py \\
      --workdir runs/membership_breastmnist
  ./launch.sh membership_inference --config configs/membership_breastmnist.py:smoke \\
      --workdir /tmp/membership_bm_smoke

Args: `smoke` (4 shadows, 16x16 images, 2 epochs, 50 bootstrap resamples).
"""
from configs import common
from configs import membership_heart
from configs import train_breastmnist


def get_config(arg=None):
  args = common.parse_arg(arg, smoke=False)
  config = train_breastmnist.get_config('smoke' if args.smoke else None)
  # A GPU run should use 64-256 shadows (see membership_heart.membership_config); 8 keeps the
  # CPU run to minutes (SplitCNNs train one program, but XLA:CPU convolutions are slow).
  config.membership = membership_heart.membership_config(8, models_per_step=1)  # GPU: 0
  config.attack = membership_heart.attack_config(queries='flip')
  # Weight noise drawn once per model ('fixed'): per-query noise on a CNN is one convolution
  # per image with its own weights, slow on a CPU (use modes=('per_query',) on an accelerator).
  config.defense = membership_heart.defense_config(sigmas=(0.01, 0.03), modes=('fixed',))
  config.evaluation = membership_heart.evaluation_config(subgroups=('label',))
  if args.smoke:
    config.membership.num_shadows = 4
    config.evaluation.bootstrap_samples = 50
  return config
