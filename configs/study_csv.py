"""The study on your own CSV: attribute inference on the schema's sensitive attributes and
membership inference, with their defenses, written up in report.md.

  ./launch.sh demo --config configs/study_csv.py:schema=configs/schemas/heart_disease_uci.py \\
      --manual_dir ../shared/data/heart --workdir runs/heart_uci

Parts: attribute_csv (configs/attribute_csv.py) and membership_csv (configs/membership_csv.py);
override any field under config.parts.<part>. Args: `schema`, `smoke`.
"""
import os

import ml_collections

from configs import attribute_csv
from configs import common
from configs import membership_csv
from configs import train_csv


def get_config(arg=None):
  args = common.parse_arg(arg, smoke=False, schema=train_csv.SCHEMA)
  part_arg = f'schema={args.schema}' + (',smoke' if args.smoke else '')
  config = ml_collections.ConfigDict()
  config.parts = ml_collections.ConfigDict()
  config.parts.attribute_csv = attribute_csv.get_config(part_arg)
  config.parts.membership_csv = membership_csv.get_config(part_arg)
  config.title = f'medinv study: {os.path.basename(config.parts.attribute_csv.data.path)}'
  config.workers = 1 if args.smoke else 0
  return config
