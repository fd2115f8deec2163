"""DP audit of heart_disease's DP-SGD MLP: canaries in or out of K runs, epsilon lower bounds.

  ./launch.sh dp_audit --workdir runs/dp_audit                       # claimed epsilon 1
  ./launch.sh dp_audit --config.audit.fault=noise_div10 --workdir runs/dp_audit_broken
  ./launch.sh dp_audit --config configs/dp_audit.py:smoke --workdir /tmp/dp_audit_smoke

The models train as the DP study's heart_disease targets (configs/dp.py: 20 epochs, batch 32,
learning rate DP_LEARNING_RATE, clip norm 1, delta 1 / (100 N)) at train.dp.target_epsilon, on
the 242 training records plus audit.num_canaries canaries, each in each of audit.num_models runs with
probability 1/2 (medinv.membership.audit). audit.fault breaks the mechanism on purpose
('noise_div10', 'no_clipping') while the claimed epsilon stays: the audit should catch it.

Args: `epsilon` (the claimed target epsilon, default 1), `smoke` (32 models, 8 canaries, 3 epochs).
"""
import ml_collections

from configs import common
from configs import train_heart

# The learning rate every DP-SGD run of heart_disease's MLP uses (configs/dp.py).
DP_LEARNING_RATE = 3e-3
# What every DP-SGD run trains with besides it (configs/dp.py), per dataset: the epochs and
# schedule DP-SGD has been run with so far, not configs/train_*.py's recipes (chosen on
# validation without DP: more epochs cost more noise at the same epsilon).
DP_RECIPES = {
    'heart_disease': dict(num_epochs=20, schedule='constant', warmup_epochs=0, weight_decay=0.0),
    'breastmnist': dict(num_epochs=10, schedule='constant', warmup_epochs=0, weight_decay=0.0,
                        augment_shift=0),
}


def audit_config(**overrides) -> ml_collections.ConfigDict:
  """num_models: independent runs (the multi-run audit's trials); num_canaries: canaries per
  run (the one-run audit's); canary: 'outlier' or 'mislabelled'; canary_scale: an outlier's
  distance from the mean, in standard deviations per feature; fault: '' (the correct
  mechanism), 'noise_div10' or 'no_clipping'; shared_init: every run starts from the same
  parameters (DP-SGD's guarantee holds for any fixed start; its Poisson draws and noise stay
  each run's own); confidence: of every bound."""
  config = ml_collections.ConfigDict(dict(
      num_models=512, num_canaries=64, canary='outlier', canary_scale=2.0, fault='',
      shared_init=True, score='confidence', confidence=0.95))
  config.update(overrides)
  return config


def get_config(arg=None):
  args = common.parse_arg(arg, smoke=False, epsilon=1.0)
  config = train_heart.get_config()
  config.train.update(learning_rate=DP_LEARNING_RATE, checkpoint_every_epochs=20,
                      **DP_RECIPES['heart_disease'])
  config.train.dp.target_epsilon = float(args.epsilon)
  # z-scores of the training records: no canary enters them, so DP-SGD's guarantee with
  # respect to a canary is the claimed one, and canaries stand out more than in [0, 1]
  # bounds (multi-run AUC 0.85 against 0.74 at 128 models under noise_div10).
  config.data.scaling = 'fit'
  config.audit = audit_config()
  if args.smoke:
    config.train.update(num_epochs=3, checkpoint_every_epochs=3)
    config.audit.update(num_models=32, num_canaries=8)
  return config
