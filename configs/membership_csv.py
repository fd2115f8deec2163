"""Membership inference on your own CSV: target and shadow MLPs as configs/train_csv.py
trains them, attacks, defenses and evaluation as configs/membership_heart.py; subgroups are
the schema's categorical sensitive attributes.

  ./launch.sh membership_inference \\
      --config configs/membership_csv.py:schema=configs/schemas/heart_disease_uci.py \\
      --config.data.manual_dir=../shared/data/heart --workdir runs/membership_heart_uci

Args: `schema` (default configs/schemas/heart_disease_uci.py), `smoke`.
"""
from configs import common
from configs import membership_heart
from configs import train_csv


def get_config(arg=None):
  args = common.parse_arg(arg, smoke=False, schema=train_csv.SCHEMA)
  config = train_csv.get_config(f'schema={args.schema}' + (',smoke' if args.smoke else ''))
  config.membership = membership_heart.membership_config(16)
  config.attack = membership_heart.attack_config()
  config.defense = membership_heart.defense_config()
  schema = config.data.schema
  subgroups = [name for name in schema.get('sensitive', {}) if name not in schema.get('numeric', {})]
  config.evaluation = membership_heart.evaluation_config(subgroups=('label', *subgroups))
  if args.smoke:
    membership_heart.shrink(config)
  return config
