"""Attribute inference on your own CSV: the schema's sensitive attributes, under label
perturbation (configs/attribute_heart.py's attack and defense, configs/train_csv.py's target).

  ./launch.sh attribute_inference \\
      --config configs/attribute_csv.py:schema=configs/schemas/heart_disease_uci.py \\
      --config.data.manual_dir=../shared/data/heart --workdir runs/attribute_heart_uci

Args: `schema` (default configs/schemas/heart_disease_uci.py), `release` (as attribute_heart),
`smoke`.
"""
from configs import attribute_heart
from configs import common
from configs import train_csv


def get_config(arg=None):
  args = common.parse_arg(arg, smoke=False, release='label', schema=train_csv.SCHEMA)
  config = train_csv.get_config(f'schema={args.schema}' + (',smoke' if args.smoke else ''))
  sensitive = tuple(config.data.schema.get('sensitive', {}))
  config.attack = attribute_heart.attack_config(sensitive, args.release)
  config.defense = attribute_heart.defense_config(args.release)
  if args.smoke:
    config.attack.learned.steps = config.attack.classifier.steps = 50
    config.defense.update(flip_probs=(0.0, 0.25, 0.5), num_draws=2)
  return config
