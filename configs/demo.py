"""The study on the embedded data: attribute inference and membership inference on
heart_disease, model inversion on BreastMNIST at splits 2, 4 and 6, with their defenses,
written up in report.md (its first screen: what leaks, how much, what a defense costs).

  ./launch.sh demo                                   # workdir runs/demo
  ./launch.sh demo --workdir runs/demo2 \\
      --config.parts.attribute_heart.defense.flip_probs="(0.0,0.5)"
  ./launch.sh demo --config configs/demo.py:smoke --workdir /tmp/demo_smoke
  ./launch.sh demo \\
    --config.parts.inversion_breastmnist.defense.model_perturbation.strengths="(0.0,0.01,0.02,0.05)"

Each part is a full experiment config: attribute_heart (configs/attribute_heart.py),
inversion_breastmnist (configs/inversion_breastmnist.py) and membership_heart
(configs/membership_heart.py); override any field under config.parts.<part>. What the demo
leaves to the full runs, and why, is LEFT_OUT (printed under the report's first screen); the
smoke study also runs membership_breastmnist (configs/membership_breastmnist.py).

"""
import ml_collections

from configs import attribute_heart
from configs import common
from configs import inversion_breastmnist
from configs import membership_breastmnist
from configs import membership_heart


DEMO_INVERSION_ATTACKS = ('inverse_network', 'rmle', 'feature_alignment')
# What the demo leaves to the full runs, and why (the report prints it under its title).
LEFT_OUT = (
    'Model inversion\'s query-free shadow attack and MI-FACE run in '
    'configs/inversion_breastmnist.py, not here: at the demo\'s scale neither beats its '
    'baseline (query-free SSIM 0.04 against the mean image\'s 0.34; MI-FACE\'s class images '
    'are labelled at chance, 0.50).',
    'Membership inference on BreastMNIST runs in configs/membership_breastmnist.py, not here: '
    'with the 4 shadow SplitCNNs the demo\'s 5 minutes allow on a 2-core CPU no attack beat '
    'chance (the strongest, RMIA, AUC 0.554 [0.488, 0.620] accounting for its choice); run '
    'it with 64 or more shadows on an accelerator.',
    'The BreastMNIST target trains on 16x16 images here (test accuracy 0.81 at seed 0): at '
    '32x32 it reaches 0.86, but this part alone then took 10 minutes on a 2-core CPU '
    '(docs/results.md); configs/inversion_breastmnist.py runs 32x32.')


def get_config(arg=None):
  args = common.parse_arg(arg, smoke=False)
  part_arg = 'smoke' if args.smoke else None
  config = ml_collections.ConfigDict()
  config.title = ''  # '': named after the data the parts ran on (medinv.study.sources)
  config.notes = LEFT_OUT[:1] if args.smoke else LEFT_OUT
  # Parts run at once, each in its own process (medinv.study.workers); 0: 2 on a CPU host
  # with two or more cores, else 1. Measured on a 2-core CPU: the demo in 5m19s with one
  # worker and 4m17s with two (model inversion beside the other three parts).
  config.workers = 1 if args.smoke else 0
  config.parts = ml_collections.ConfigDict()
  config.parts.attribute_heart = attribute_heart.get_config(part_arg)
  inversion = inversion_breastmnist.get_config(part_arg)
  if args.smoke:
    # Every training record is a target, so tests/e2e/test_demo.py recomputes MAP over them all.
    config.parts.attribute_heart.attack.member_fraction = 1.0
    inversion.attack.splits = (2,)  # One split keeps the end-to-end test short.
  else:
    # Sized so the whole demo finishes in under 5 minutes on a 2-core CPU: splits 2, 4 and 6
    # on 16x16 images, the paper's sigmas, both attacker views of the inverse network (the
    # paper's, trained before the defense, and the one that queries the deployed model), 8
    # targets, shorter attack optimisations. configs/inversion_breastmnist.py runs 32x32,
    # the full sigma grid, 3 draws and the feature defenses.
    inversion.data.image_size = 16
    # The recipe chosen on the validation split at 16x16 (configs/select_breastmnist.py, 12
    # candidates x 3 seeds; docs/results.md): 30 epochs on a cosine schedule, validation
    # accuracy 0.880, test accuracy 0.821 over the 3 seeds (10 constant epochs: validation 0.812).
    inversion.train.update(num_epochs=30, schedule='cosine', checkpoint_every_epochs=10)
    # Noise drawn once ('fixed'); per-query noise answers each image with its own weights,
    # one convolution per image on a CPU (configs/inversion_breastmnist.py runs both modes).
    inversion.defense.model_perturbation.update(strengths=(0.0, 0.02, 0.05), modes=('fixed',))
    inversion.attack.update(splits=(2, 4, 6), num_targets=8, figure_targets=8,
                            knows_defense=(False, True))
    inversion.attack.inverse_network.update(steps=120, width=32)
    inversion.attack.rmle.steps = 60
    inversion.attack.feature_alignment.update(steps=100, width=32, substitute_steps=100,
                                              intercepted=32)
    # The passive attacker at the paper's split only: its substitute edge is trained anew at
    # every strength (it aligns to what the deployed model sends), the demo's costliest attack.
    inversion.attack.splits_of = ml_collections.ConfigDict({'feature_alignment': (4,)})
  # The attacks that beat their baseline at the demo's scale (LEFT_OUT says why the others
  # are not here); the feature defenses run in configs/inversion_breastmnist.py.
  inversion_breastmnist.keep_core(inversion, DEMO_INVERSION_ATTACKS)
  config.parts.inversion_breastmnist = inversion
  # Shadow populations sized for a 2-core CPU (a GPU run: 64-256 shadows, see the configs).
  config.parts.membership_heart = membership_heart.get_config(part_arg)
  if not args.smoke:
    # The population engine trains heart's MLPs in one program: 64 shadows cost ~3 s more
    # than 16 on a 2-core CPU, and the strongest AUC rises (0.64 -> 0.66, docs/results.md).
    config.parts.membership_heart.membership.num_shadows = 64
  if args.smoke:
    # The smoke study keeps membership inference on images, so the tests run the study's
    # image membership part (the full demo leaves it out: LEFT_OUT).
    config.parts.membership_breastmnist = membership_breastmnist.get_config(part_arg)
  return config
