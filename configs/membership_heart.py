"""Membership inference (LiRA, RMIA) against the heart_disease MLP, with K shadow MLPs in one program.

The target and its shadows train as configs/train_heart.py's model (the deployed setting),
each on half of the 242 training records with the recipe chosen on validation at that size
(RECIPE); the attacker tells the
target's members from its non-members (121 each) with every registered attack, undefended
and under each defense (randomized response on a label-only release, per-query model
perturbation), whose rows give the privacy-utility curves of defenses.png.

  ./launch.sh membership_inference --config configs/membership_heart.py \\
      --workdir runs/membership_heart
  ./launch.sh membership_inference --config configs/membership_heart.py:smoke \\
      --workdir /tmp/membership_smoke
  ./launch.sh membership_inference --config configs/membership_heart.py \\
      --config.membership.num_shadows=128 --workdir runs/membership_heart_128

Args: `smoke` (4 shadows, 3 epochs, one strength per defense, 50 bootstrap resamples).
"""
import ml_collections

from configs import common
from configs import components
from configs import train_heart

# heart's MLP recipe chosen on validation accuracy for 121 training records, the target's
# size (configs/select_heart.py:members: 12 candidates x 3 run seeds x 3 validation seeds, 121
# records validating): validation 0.847 [0.838, 0.855]; test 0.814, the mean of the 9
# selection models. (train_heart's recipe, chosen at 194 records, scored 0.845 here.)
RECIPE = dict(num_epochs=40, learning_rate=1e-3, schedule='cosine', weight_decay=1.0)

ATTACKS = ('lira_online', 'lira_offline', 'lira_online_fixed_variance',
           'lira_offline_fixed_variance', 'rmia', 'rmia_offline', 'loss_threshold',
           'label_only', 'label_lira')


def membership_config(num_shadows: int, models_per_step: int = 0) -> ml_collections.ConfigDict:
  """The shadow population: num_shadows models of the target's architecture and training.

  Every shadow trains in the same compiled program (vmapped, sharded over the devices), so K
  is cheap on an accelerator: a GPU run should use 64-256 (Carlini et al. use 256; LiRA's
  low-FPR numbers need many OUT shadows per record). The CPU default is 16.
  models_per_step: models each device trains / queries at once (0: all, vmapped; k > 0: k
  at a time, e.g. 1 for CNNs on a CPU, where batched-weight convolutions are slow).
  """
  return ml_collections.ConfigDict(dict(num_shadows=num_shadows,
                                        models_per_step=models_per_step))


def attack_config(queries: str = 'identity', **overrides) -> ml_collections.ConfigDict:
  """The attacks (medinv.membership.attacks.ATTACKS), each with its block of defaults
  (configs/components.py).

  queries: 'identity', or 'flip' (the record and its horizontal mirror; images only).
  lira_*: fixed_variance (one variance per side pooled over records), min_std (floor).
  rmia*: online (Pr(x) from every shadow, or offline from the OUT shadows with offline_a),
  gamma (the likelihood-ratio margin a record must beat a population record by).
  """
  config = ml_collections.ConfigDict(dict(names=ATTACKS, queries=queries))
  for name in ATTACKS:
    config[name] = components.block(components.MEMBERSHIP_ATTACKS, name)
  config.update(overrides)
  return config


def defense_config(flip_probs=(0.1, 0.3), sigmas=(0.05, 0.1, 0.2), modes=('per_query',),
                   queries: int = 1) -> ml_collections.ConfigDict:
  """The deployments attacked besides the undefended one, each a privacy-utility curve.

  randomized_response: the deployment releases only a label, flipped with probability p
    (strengths) afresh at every query; the attacker asks each query view `queries` times
    (for p < (k-1)/k the majority of repeated answers is the model's own label; on
    heart_disease with 25 queries label_only's AUC at p = 0.3 was 0.568 [0.499, 0.635],
    against 0.558 undefended and 0.529 with one query).
  model_perturbation: Gaussian noise of std sigma (strengths) on every weight, fresh per query
    ('per_query') or drawn once per model ('fixed').
  The attacker knows the defense and runs its shadows through it too.
  """
  return ml_collections.ConfigDict(dict(
      names=('randomized_response', 'model_perturbation'),
      randomized_response=dict(strengths=tuple(flip_probs), queries=queries),
      model_perturbation=components.block(components.DEFENSES, 'model_perturbation',
                                          strengths=tuple(sigmas), modes=tuple(modes),
                                          scope='all')))


def evaluation_config(subgroups=('sex',), **overrides) -> ml_collections.ConfigDict:
  """Metrics: TPR at each of fprs; an FPR below one non-member record is flagged ('flag': the
  TPR at zero false positives is reported) or refused ('error'); percentile-bootstrap
  intervals at level `interval` from bootstrap_samples resamples of the records; the same
  metrics per value of each of `subgroups` ('label': the class; or a raw record column)."""
  config = ml_collections.ConfigDict(dict(fprs=(0.01, 0.001, 0.0001), below_one_record='flag',
                                          bootstrap_samples=1000, interval=0.95,
                                          subgroups=tuple(subgroups)))
  config.update(overrides)
  return config


def get_config(arg=None):
  args = common.parse_arg(arg, smoke=False)
  config = train_heart.get_config('smoke' if args.smoke else None)
  config.train.update({k: v for k, v in RECIPE.items() if not (args.smoke and k == 'num_epochs')})
  config.membership = membership_config(16)
  config.attack = attack_config()
  config.defense = defense_config()
  config.evaluation = evaluation_config()
  if args.smoke:
    shrink(config)
  return config


def shrink(config) -> None:
  """The smoke sizes: 4 shadows, one strength per defense, 50 bootstrap resamples."""
  config.membership.num_shadows = 4
  config.defense.randomized_response.strengths = (0.3,)
  config.defense.model_perturbation.strengths = (0.1,)
  config.evaluation.bootstrap_samples = 50
