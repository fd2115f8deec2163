"""Model inversion in collaborative inference on BreastMNIST, under model perturbation.

Hospital A runs SplitCNN conv 1..split and sends the features; the attacker reconstructs the
image. Grid: split x sigma x mode x attack (x whether the attacker knows the defense).

  ./launch.sh model_inversion --config configs/mia_breastmnist.py --workdir runs/mia_breastmnist
  ./launch.sh model_inversion --config configs/mia_breastmnist.py:split=4 --workdir runs/mia_s4
  ./launch.sh model_inversion --config configs/mia_breastmnist.py:smoke --workdir /tmp/mia_smoke
  ./launch.sh model_inversion --config configs/mia_breastmnist.py \
      --config.attack.names="('inverse_network',)" --config.defense.sigmas="(0.0,0.05)"

Args: `split=k` runs one split (2, 4 or 6) instead of all three; `smoke` shrinks images,
epochs, steps and the grid so the whole run takes seconds on a CPU.
"""
import ml_collections

from configs import common
from configs import train_breastmnist

ATTACKS = ('inverse_network', 'rmle', 'query_free', 'mi_face')


def get_config(arg=None):
  args = common.parse_arg(arg, split=0, smoke=False)
  # The target model is train_breastmnist's, so its checkpoints can be shared.
  config = train_breastmnist.get_config('smoke' if args.smoke else None)

  config.attack = ml_collections.ConfigDict(dict(
      names=ATTACKS,
      splits=(args.split,) if args.split else (2, 4, 6),
      num_targets=16,           # training images the attacker tries to reconstruct
      figure_targets=8,         # columns of the reconstruction grid PNG
      knows_defense=(True, False),  # attacker's model view: deployed (perturbed) or clean
      # Sigma values per device per program call (0: the whole grid in one call, vmapped on
      # each device, for accelerators). Each call's result is kept, so a killed run resumes;
      # 1 suits a CPU (batched-weight convolutions are slow on XLA:CPU).
      grid_chunk=1,
      # rMLE (white box) and the query-free attack's inversion step.
      objective='feature_l2:1.0,tv:0.005',
      rmle_steps=300, rmle_learning_rate=0.02,
      # Inverse network (black box): decoder trained on the attacker's own queries.
      decoder_width=64, decoder_steps=400, decoder_batch_size=32,
      decoder_learning_rate=2e-3, augment_flip=True,
      # Query-free: shadow edge trained on the attacker's labelled images.
      shadow_steps=400, shadow_batch_size=32, shadow_learning_rate=1e-3,
      shadow_uses_target_cloud=True,
      # MI-FACE (white box, full model): gradient descent on the input.
      mi_face_objective='class_conf:1.0', mi_face_max_steps=500,
      mi_face_learning_rate=0.1, mi_face_patience=50, mi_face_threshold=0.01,
  ))
  config.defense = ml_collections.ConfigDict(dict(
      sigmas=(0.0, 0.01, 0.02, 0.05, 0.1),
      modes=('fixed', 'per_query'),
      scope='edge',             # perturb hospital A's layers ('all': the whole model)
  ))
  if args.smoke:
    config.attack.update(
        num_targets=4, figure_targets=4, rmle_steps=10, decoder_steps=10,
        decoder_batch_size=16, decoder_width=16, shadow_steps=5, shadow_batch_size=16,
        mi_face_max_steps=10, mi_face_patience=3,
        grid_chunk=0)  # the whole (small) grid in one vmapped call per program
    config.defense.sigmas = (0.0, 0.05)
  return config
