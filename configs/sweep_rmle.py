"""rMLE sweep on BreastMNIST: targets x defense sigma x attack step size x TV weight.

Per run (one per split), the target SplitCNNs train as one population and the white-box
rMLE attack runs over every (model, sigma, learning rate, TV weight) point in one program,
sharded over every device (medinv.inversion.sweep_rmle).

  ./launch.sh sweep --config configs/sweep_rmle.py --workdir runs/sweep_rmle
  ./launch.sh sweep --config configs/sweep_rmle.py:smoke --workdir /tmp/sweep_rmle_smoke
  ./launch.sh sweep --config configs/sweep_rmle.py --config.attack.grid_batch_size=0 \\
      --config.sweep.axes.seed="(0,1,2,3)" --workdir runs/sweep_rmle_gpu

Args: `smoke` shrinks images, training, targets, steps and the grid.
"""
import ml_collections

from configs import common
from configs import train_breastmnist


def get_config(arg=None):
  args = common.parse_arg(arg, smoke=False)
  config = train_breastmnist.get_config('smoke' if args.smoke else None)
  config.attack = ml_collections.ConfigDict(dict(
      split=4,                  # run axis (sweep.axes.attack.split)
      num_targets=16,           # training images the attacker reconstructs
      steps=300, learning_rate=0.05,
      weights=ml_collections.ConfigDict({'feature_l2': 1.0, 'tv': 0.02}),
      # Grid points per device run k at a time (lax.map); 0 = all in one vmap. On XLA:CPU
      # convolutions whose weights differ per point are faster one point at a time.
      grid_batch_size=1,
  ))
  config.defense = ml_collections.ConfigDict(dict(sigma=0.0, scope='edge'))
  config.sweep = ml_collections.ConfigDict()
  config.sweep.experiment = 'rmle'
  config.sweep.axes = ml_collections.ConfigDict({
      'defense': {'sigma': (0.0, 0.01, 0.02, 0.05)},
      'attack': {'split': (2, 4, 6), 'learning_rate': (0.02, 0.05),
                 'weights': {'tv': (0.0, 0.02, 0.05)}},
  })
  if args.smoke:
    config.attack.update(num_targets=4, steps=5)
    config.train.num_epochs = 1
    config.sweep.axes.defense.sigma = (0.0, 0.05)
    config.sweep.axes.attack.split = (2, 4)
    config.sweep.axes.attack.learning_rate = (0.05,)
    config.sweep.axes.attack.weights.tv = (0.0, 0.05)
  return config
