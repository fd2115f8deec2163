"""Model inversion in collaborative inference on BreastMNIST, under model perturbation.

Hospital A runs SplitCNN conv 1..split and sends the features; the attacker reconstructs the
image. Grid: split x defense strength x variant x attack (x whether the attacker knows the
defense). Every attack has its block `config.attack.<name>` and every defense its block
`config.defense.<name>` (the registered defaults of medinv.inversion.attacks and
medinv.defenses, written out in configs/components.py).

  ./launch.sh model_inversion --config configs/inversion_breastmnist.py \\
      --workdir runs/inversion_breastmnist
  ./launch.sh model_inversion --config configs/inversion_breastmnist.py:split=4 \\
      --workdir runs/inversion_s4
  ./launch.sh model_inversion --config configs/inversion_breastmnist.py:smoke \\
      --workdir /tmp/inversion_smoke
  ./launch.sh model_inversion --config configs/inversion_breastmnist.py \\
      --config.attack.names="('inverse_network',)" \\
      --config.defense.model_perturbation.strengths="(0.0,0.05)"
  ./launch.sh model_inversion --config configs/inversion_breastmnist.py:split=4 \\
      --config.attack.names="('inverse_network','noise_aware_inverse')" \\
      --config.attack.noise_aware_inverse.views=4

Args: `split=k` runs one split (2, 4 or 6) instead of all three; `smoke` shrinks images,
epochs, steps and the grid so the whole run takes seconds on a CPU.

Every defense block has `num_draws`, the independent realisations of the defense per strength
(medinv.defenses.draws; rows carry the mean and a 95% interval over draws and targets): 3 for model
perturbation (its fixed noise is otherwise one realisation scaled by sigma), 1 for the others;
`keep_core` (the demo's and the DP study's model inversion) runs 1 draw, and the smoke
config's feature noise runs 2 so the tests exercise the draw axis.
"""
import ml_collections

from configs import common
from configs import components
from configs import train_breastmnist

# The paper's and He et al.'s attacks and MI-FACE (the demo runs these), then the passive
# feature-alignment attack.
CORE_ATTACKS = ('inverse_network', 'rmle', 'query_free', 'mi_face')
ATTACKS = CORE_ATTACKS + ('feature_alignment',)
# Opt-in (a block, not in `names`): the adaptive attacker against per-query noise, trained
# with fresh noise per image, averaging `views` resends (medinv.inversion.noise_aware).
OPT_IN_ATTACKS = ('noise_aware_inverse',)
# Defenses on the transmitted features (std relative to the features' RMS; drop probability;
# learned noise: the same energy as feature_noise, placed where the cloud looks least).
FEATURE_DEFENSES = {'feature_noise': (0.0, 0.25, 0.5, 1.0),
                    'feature_dropout': (0.0, 0.3, 0.6, 0.9),
                    'learned_noise': (0.0, 0.5, 1.0, 2.0)}


def keep_core(config, names=CORE_ATTACKS) -> None:
  """Only the attacks `names` (the core attacks by default) under model perturbation, one
  draw (the demo's and the DP study's model inversion, sized for a 2-core CPU)."""
  config.attack.names = tuple(names)
  for name in set(ATTACKS + OPT_IN_ATTACKS) - set(names):
    del config.attack[name]
  for name in FEATURE_DEFENSES:
    if name in config.defense:
      del config.defense[name]
  config.defense.model_perturbation.num_draws = 1


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
      # (strength, draw) points per device per program call; 0: the whole grid in one call,
      # vmapped (on a CPU, medinv.models.layers runs a point's convolutions as fast as one point at
      # a time). Each call's result is kept, so a killed run resumes from the last finished call.
      grid_chunk=0,
  ))
  for name in ATTACKS + OPT_IN_ATTACKS:  # each attack's registered defaults (attack.rmle.steps)
    config.attack[name] = components.block(components.INVERSION_ATTACKS, name)
  config.defense = ml_collections.ConfigDict()
  # Gaussian noise of std sigma (= strength) on hospital A's weights ('all': the whole model);
  # sigma_scale 'relative': std sigma x each weight tensor's own std.
  config.defense.model_perturbation = components.block(
      components.DEFENSES, 'model_perturbation', strengths=(0.0, 0.01, 0.02, 0.05, 0.1),
      modes=('fixed', 'per_query'), scope='edge', sigma_scale='absolute', num_draws=3)
  for name, strengths in FEATURE_DEFENSES.items():
    config.defense[name] = components.block(components.DEFENSES, name, strengths=strengths,
                                            num_draws=1)
  if args.smoke:
    config.attack.update(num_targets=4, figure_targets=4)
    config.attack.rmle.steps = 10
    config.attack.inverse_network.update(steps=10, batch_size=16, width=16)
    config.attack.noise_aware_inverse.update(steps=10, batch_size=16, width=16)
    config.attack.query_free.update(steps=10, shadow_steps=5, shadow_batch_size=16)
    config.attack.mi_face.update(max_steps=10, patience=3)
    config.attack.feature_alignment.update(steps=10, substitute_steps=5, width=16,
                                           batch_size=16, intercepted=16)
    config.defense.model_perturbation.update(strengths=(0.0, 0.05), num_draws=1)
    config.defense.feature_noise.update(strengths=(0.5,), num_draws=2)
    config.defense.learned_noise.update(strengths=(1.0,), steps=5, batch_size=8)
    del config.defense['feature_dropout']  # Its code runs in tests/defenses/test_features.py.
  return config
