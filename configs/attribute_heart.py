"""Attribute inference on heart_disease under label perturbation (the paper's experiment).

The target model is configs/train_heart.py's; the attacker infers each sensitive attribute of
training records (and of held-out non-members) from the released label, for every flip
probability of randomized response on that label.

  ./launch.sh attribute_inference --config configs/attribute_heart.py \\
      --workdir runs/attribute_heart
  ./launch.sh attribute_inference --config configs/attribute_heart.py:smoke \\
      --workdir /tmp/attribute_smoke
  ./launch.sh attribute_inference --config configs/attribute_heart.py:release=probs \\
      --workdir runs/attribute_heart_probs
  ./launch.sh attribute_inference --config configs/attribute_heart.py \\
      --config.attack.sensitive="('sex',)" --config.defense.flip_probs="(0.0, 0.25, 0.5)"
  ./launch.sh attribute_inference --config configs/attribute_heart.py \\
      --config.attack.num_aux=30 --workdir runs/attribute_heart_aux30

The auxiliary-set size is an axis like any config field: a sweep over it is
config.sweep.axes.attack.num_aux = (30, 60, -1) (configs/sweep_attribute.py).
"""
import ml_collections

from configs import common
from configs import components
from configs import train_heart

FLIP_PROBS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5)
# Every categorical heart_disease attribute with 2-4 values (ca has 5).
SENSITIVE = ('sex', 'cp', 'fbs', 'restecg', 'exang', 'slope', 'thal')


def attack_config(sensitive, release: str, **overrides) -> ml_collections.ConfigDict:
  """The attacker: what it targets and which registered attacks it runs, each with its block.

  names: the attacks it runs (medinv.attribute.attacks.ATTACKS): release attacks
    ('map', 'learned') get rows; no-model baselines ('prior', 'classifier') get columns of
    every row. Each has its block attack.<name>, the registered defaults
    (configs/components.py):
    map: variants (MAP likelihoods, medinv.attribute.inference.LIKELIHOODS: 'confusion' the
      release channel's pi(released | predicted), 'model_confusion' Fredrikson et al.'s
      model confusion P(prediction | true label) measured on the auxiliary records;
      'probability' needs a probability release) and eps (the indicator's mismatch
      likelihood);
    learned, classifier: hidden, steps, learning_rate, weight_decay of the MLP, trained
      full-batch with AdamW; 'classifier' (the other attributes only) is the imputation
      baseline every row's advantages are measured against.
  member_fraction: share of the training records attacked as member targets (1.0: all, the
    paper's setting); nonmember_fraction: share of the held-out records attacked as
    non-member targets.
  num_aux: the attacker's auxiliary records (what the learned attack, the imputation
    baseline, the prior and the model confusion are estimated on): -1 = every record that
    is not a target (training records left out of the targets, and the other held-out
    records), n > 0 = n of them drawn at random. heart_disease's default attacks half the
    training records so that the other half (121) and 31 held-out records can be the
    auxiliary set: 152 records instead of the 30 held-out records of the paper's split.
  max_records: cap on each of members, non-members and auxiliary records (0 = all).
  plot_variant: the MAP variant drawn in attribute.png.
  """
  config = ml_collections.ConfigDict(dict(
      sensitive=tuple(sensitive), names=('map', 'learned', 'prior', 'classifier'),
      member_fraction=0.5, nonmember_fraction=0.5, num_aux=-1, max_records=0,
      plot_variant='confusion'))
  for name in config.names:
    config[name] = components.block(components.ATTRIBUTE_ATTACKS, name)
  config.map.variants += ('model_confusion',)
  if release != 'label':
    config.map.variants += ('probability',)
  config.update(overrides)
  return config


def defense_config(release: str, **overrides) -> ml_collections.ConfigDict:
  """The deployment: randomized response on released labels at each flip_prob.

  release: 'label', 'probs', 'rounded' (to `decimals`), 'noisy_probs' (Gaussian, noise_std).
  num_draws: independent release draws per flip_prob (accuracies are averaged over them;
    heart's 242 training records make a single draw noisy).
  """
  config = ml_collections.ConfigDict(dict(
      flip_probs=FLIP_PROBS, release=release, decimals=1, noise_std=0.0, num_draws=20))
  config.update(overrides)
  return config


def get_config(arg=None):
  args = common.parse_arg(arg, smoke=False, release='label')
  config = train_heart.get_config('smoke' if args.smoke else None)
  config.attack = attack_config(SENSITIVE, args.release)
  config.defense = defense_config(args.release)
  if args.smoke:
    config.attack.sensitive = ('sex',)
    config.attack.learned.steps = config.attack.classifier.steps = 50
    config.defense.update(flip_probs=(0.0, 0.25, 0.5), num_draws=2)
  return config
