"""DP-SGD against every attack: the study's targets trained at target epsilon inf, 8 and 1.

  ./launch.sh dp                                          # workdir runs/dp
  ./launch.sh dp --config configs/dp.py:smoke --workdir /tmp/dp_smoke
  ./launch.sh dp --config configs/dp.py:epsilons=8/4/1 --workdir runs/dp_841
  ./launch.sh dp --config.parts.attribute_heart_eps1.train.dp.clip_norm=0.5

Per target epsilon (`train.dp.target_epsilon`; medinv.training.dp_sgd calibrates the noise
multiplier at delta = 1 / (100 N), N the model's training records, and records the accounted epsilon)
four parts: attribute inference and membership inference on heart_disease, model inversion at
split 4 and membership inference on BreastMNIST (attribute_heart_<tag>, membership_heart_<tag>,
inversion_breastmnist_<tag>, membership_breastmnist_<tag>; tag 'inf', 'eps8', 'eps1', ...),
and at each finite epsilon the DP audit of heart_disease's MLP (audit_heart_<tag>,
configs/dp_audit.py: lower bounds on epsilon from canaries),
each attacking a target (and, for membership, the attacker's shadows) trained with DP-SGD
(dp_audit.recipe: each dataset's recipe chosen on validation at each epsilon, inf included,
by configs/select_dp_heart.py and configs/select_dp_breastmnist.py). No other defense runs:
DP training is the one under study.
report.md opens with one table and privacy_utility_dp.png (epsilon on the x axis).
BreastMNIST runs at 16x16 and the attacks at the demo's lengths, so the study fits a 2-core
CPU; override any field under config.parts.<part>.

Your own CSV: `schema=FILE` replaces the heart_disease parts by attribute_csv_<tag> and
membership_csv_<tag> on that table (configs/attribute_csv.py, membership_csv.py), e.g.
  ./launch.sh dp --config configs/dp.py:schema=configs/schemas/heart_disease_uci.py \
      --manual_dir ../shared/data/heart --workdir runs/dp_heart_uci

Over target seeds: `seeds=4` trains every part at config.seed 0..3 (parts
<part>_<tag>_seed<s>; the audit's K runs at seeds s*K..s*K+K-1, so no two seeds share a run);
report.md's DP table then gives every column as its mean and 95% t-interval over the seeds
(medinv.study.seeds), also in dp_seeds.csv / dp_seeds.json. `datasets=heart` runs the
heart_disease parts only (attribute, membership, audit):
  ./launch.sh dp --config configs/dp.py:datasets=heart,seeds=4,audit_models=256 \
      --workdir runs/dp_heart_seeds

Args: `epsilons` (finite target epsilons separated by '/', inf always runs too), `seeds`
(target seeds 0..seeds-1; 1: the parts keep their names and seed 0), `datasets` ('heart',
'breastmnist' or both separated by '/'; '' = both; with `schema`, 'csv' for the table's
parts), `audit_models` (the audit's independent runs per seed; 0: configs/dp_audit.py's 512),
`schema`, `smoke`.
"""
import ml_collections

from configs import attribute_csv
from configs import attribute_heart
from configs import common
from configs import dp_audit
from configs import inversion_breastmnist
from configs import membership_breastmnist
from configs import membership_csv
from configs import membership_heart


def tag(epsilon: float) -> str:
  return 'inf' if epsilon == float('inf') else f'eps{epsilon:g}'.replace('.', 'p')


def _parts_at(epsilon: float, part_arg, smoke: bool, schema: str = '',
              audit_models: int = 0) -> dict:
  """Every part at one target epsilon, by name without the epsilon's tag."""
  if schema:
    record_arg = f'schema={schema}' + (',smoke' if smoke else '')
    attribute = attribute_csv.get_config(record_arg)
    membership_records = membership_csv.get_config(record_arg)
  else:
    attribute = attribute_heart.get_config(part_arg)
    membership_records = membership_heart.get_config(part_arg)
  attribute.defense.flip_probs = (0.0,)
  inversion = inversion_breastmnist.get_config(part_arg)
  inversion.attack.update(splits=(2,) if smoke else (4,), knows_defense=(True,))
  inversion_breastmnist.keep_core(inversion)
  inversion.defense.model_perturbation.update(strengths=(0.0,), modes=('fixed',))
  membership_images = membership_breastmnist.get_config(part_arg)
  if not smoke:
    inversion.data.image_size = membership_images.data.image_size = 16
    inversion.attack.update(num_targets=8)
    inversion.attack.inverse_network.update(steps=120, width=32)
    inversion.attack.rmle.steps = 60
    inversion.attack.query_free.update(steps=60, shadow_steps=80)
    inversion.attack.mi_face.update(max_steps=100, patience=20)
    membership_images.membership.num_shadows = 4
  for config in (membership_records, membership_images):
    config.defense.names = ()
  records = 'csv' if schema else 'heart'
  parts = {f'attribute_{records}': attribute, f'membership_{records}': membership_records,
           'inversion_breastmnist': inversion, 'membership_breastmnist': membership_images}
  if epsilon != float('inf') and not schema:  # The audit of heart_disease's DP-SGD MLP.
    parts['audit_heart'] = dp_audit.get_config(
        f'epsilon={epsilon}' + (',smoke' if smoke else ''))
    if audit_models:
      parts['audit_heart'].audit.num_models = audit_models
  for config in parts.values():
    config.train.dp.target_epsilon = epsilon
    if config.data.dataset == 'heart_disease':  # Public bounds, at every epsilon alike.
      config.data.scaling = 'bounds'
    recipe = dp_audit.recipe(config.data.dataset, epsilon)
    if smoke:  # The recipe's rate and schedule, the smoke config's few epochs.
      recipe.pop('num_epochs', None)
    config.train.update(recipe)
  return {f'{name}_{tag(epsilon)}': config for name, config in parts.items()}


def _datasets(arg: str, schema: str) -> tuple[str, ...]:
  """The `datasets` argument as the parts' dataset names, refused when unknown."""
  allowed = ('csv' if schema else 'heart', 'breastmnist')
  chosen = tuple(d for d in arg.split('/') if d) or allowed
  unknown = [d for d in chosen if d not in allowed]
  if unknown:
    raise ValueError(f'config argument datasets={arg!r}: unknown {", ".join(unknown)}; '
                     f'allowed: {", ".join(allowed)} separated by /')
  return chosen


def _at_seed(name: str, part, seed: int, seeds: int):
  """The part at target seed `seed` and its name (unchanged when seeds is 1)."""
  if seeds == 1:
    return name, part
  part.seed = seed * int(part.audit.num_models) if 'audit' in part else seed
  return f'{name}_seed{seed}', part


def get_config(arg=None):
  args = common.parse_arg(arg, smoke=False, epsilons='8/1', schema='', seeds=1, datasets='',
                          audit_models=0)
  epsilons = [float('inf')] + [float(e) for e in args.epsilons.split('/') if e]
  if args.seeds < 1:
    raise ValueError(f'config argument seeds={args.seeds}: must be 1 or more (target seeds '
                     '0..seeds-1)')
  if args.audit_models < 0:
    raise ValueError(f'config argument audit_models={args.audit_models}: must be 0 (the '
                     "audit config's) or a number of runs")
  datasets = _datasets(args.datasets, args.schema)
  config = ml_collections.ConfigDict()
  config.title = 'medinv study: DP-SGD training against every attack'
  # Parts run at once, each in its own process (medinv.study.workers); 0: 2 on a CPU host
  # with two or more cores, else 1. 1 by default: a second worker pays when the parts are of
  # similar size (the demo: 5m19s -> 4m17s on 2 cores); beside one long model-inversion part
  # it saved 2 s of 13 min (the parts share the cores).
  config.workers = 1
  config.parts = ml_collections.ConfigDict()
  for epsilon in epsilons:
    for seed in range(args.seeds):
      for name, part in _parts_at(epsilon, 'smoke' if args.smoke else None, args.smoke,
                                  args.schema, args.audit_models).items():
        if name.split('_')[1] in datasets:
          name, part = _at_seed(name, part, seed, args.seeds)
          config.parts[name] = part
  return config
