"""Train the MLP on your own CSV, whose columns a schema file declares (configs/schemas/).

  ./launch.sh train --config configs/train_csv.py:schema=configs/schemas/heart_disease_uci.py \\
      --config.data.manual_dir=../shared/data/heart --workdir runs/train_heart_uci
  ./launch.sh train --config configs/train_csv.py:schema=my_schema.py,smoke \\
      --workdir /tmp/csv_smoke

Args: `schema` (a schema file; default the full UCI heart-disease table's), `smoke` (3 epochs).
Draft a schema from your file with `./launch.sh draft_schema --csv FILE --out my_schema.py`.
"""
from configs import common

SCHEMA = 'configs/schemas/heart_disease_uci.py'


def get_config(arg=None):
  args = common.parse_arg(arg, smoke=False, schema=SCHEMA)
  config = common.base_config('csv', 'mlp')
  config.data = common.csv_data(args.schema)
  config.train.update(num_epochs=20, batch_size=32, learning_rate=3e-4,
                      checkpoint_every_epochs=5)
  if args.smoke:
    config.train.update(num_epochs=3, checkpoint_every_epochs=2)
  return config
