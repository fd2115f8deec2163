"""Every split-inference defense on one privacy-utility plot: BreastMNIST at split 4.

  ./launch.sh demo --config configs/split_defenses.py --workdir runs/split_defenses
  ./launch.sh demo --config configs/split_defenses.py:smoke --workdir /tmp/split_smoke

Part `inversion_breastmnist_deployed`: one target, deployed under model perturbation (fixed noise
on hospital A's weights), Gaussian noise on the transmitted features, inference-time
feature dropout and learned feature noise (Shredder-style), each at four strengths, attacked
by every model-inversion attack of configs/inversion_breastmnist.py (the feature-alignment
attack included). Parts `inversion_breastmnist_nopeek<w>`: targets trained
with NoPeek's distance-correlation penalty at weight w (train.nopeek_weight), each attacked
undefended by the attacks that reconstruct the targets. report.md gets one table and
privacy_utility_split4.png with every defense (x: accuracy, y: the strongest attack's SSIM).
Attack lengths are the demo's; NoPeek weights 0.05-8. On a 2-core CPU the study takes about
an hour and a half (each part resumes on its own).

Args: `smoke`.
"""
import ml_collections

from configs import common
from configs import inversion_breastmnist

NOPEEK_WEIGHTS = (0.05, 0.2, 0.5, 2.0, 8.0)


def _base(part_arg, smoke: bool):
  config = inversion_breastmnist.get_config(part_arg)
  config.attack.update(splits=(2,) if smoke else (4,), knows_defense=(True,))
  config.train.nopeek_split = config.attack.splits[0]
  if not smoke:
    config.attack.update(num_targets=16, figure_targets=8)
    config.attack.inverse_network.update(steps=120, width=32)
    config.attack.rmle.steps = 60
    config.attack.query_free.update(steps=60, shadow_steps=80)
    config.attack.mi_face.update(max_steps=100, patience=20)
    config.attack.feature_alignment.update(steps=120, width=32, substitute_steps=150)
  return config


def get_config(arg=None):
  args = common.parse_arg(arg, smoke=False)
  part_arg = 'smoke' if args.smoke else None
  config = ml_collections.ConfigDict()
  config.title = 'medinv study: split-inference defenses (BreastMNIST)'
  # Parts run at once, each in its own process (medinv.study.workers); 0: 2 on a CPU host
  # with two or more cores, else 1. 1 by default: a second worker pays when the parts are of
  # similar size (the demo: 5m19s -> 4m17s on 2 cores); beside one long model-inversion part
  # it saved 2 s of 13 min (the parts share the cores).
  config.workers = 1
  config.parts = ml_collections.ConfigDict()
  deployed = _base(part_arg, args.smoke)
  deployed.defense.model_perturbation.update(strengths=(0.0, 0.01, 0.02, 0.05),
                                             modes=('fixed',), num_draws=1)
  # Learned noise runs end to end in tests/inversion/test_reconstruct.py's smoke run.
  if args.smoke:
    del deployed.defense['learned_noise']
  config.parts.inversion_breastmnist_deployed = deployed
  for weight in (0.5,) if args.smoke else NOPEEK_WEIGHTS:
    part = _base(part_arg, args.smoke)
    part.train.nopeek_weight = weight
    part.attack.names = ('inverse_network', 'rmle', 'feature_alignment')
    for name in ('query_free', 'mi_face'):
      del part.attack[name]
    for name in inversion_breastmnist.FEATURE_DEFENSES:
      if name in part.defense:
        del part.defense[name]
    part.defense.model_perturbation.update(strengths=(0.0,), modes=('fixed',), num_draws=1)
    config.parts[f'inversion_breastmnist_nopeek{weight:g}'.replace('.', 'p')] = part
  return config
