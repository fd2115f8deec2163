"""Draft a schema file for your own CSV: ./launch.sh draft_schema --csv FILE --out schema.py

The draft lists every column with the type and values found in the file; review each line
marked CHECK (label rule, public bounds, sensitive attributes, missing cells), then pass it to
configs/attribute_csv.py, membership_csv.py, train_csv.py or study_csv.py as `:schema=FILE`.
"""
import os

from absl import app
from absl import flags

from medinv.core import cli
from medinv.core import report
from medinv.data import draft

flags.DEFINE_string('csv', None, 'The CSV file to draft a schema for.', required=True)
flags.DEFINE_string('out', None, 'Where to write the schema file (default: print it).')
flags.DEFINE_bool('force', False, 'Overwrite --out when it exists.')
FLAGS = flags.FLAGS


def main(argv):
  del argv
  text = draft.draft(FLAGS.csv)
  if not FLAGS.out:
    print(text, end='')
    return
  if os.path.exists(FLAGS.out) and not FLAGS.force:
    raise app.UsageError(f'--out {FLAGS.out} exists; pass --force to overwrite it')
  report.write_atomic(FLAGS.out, text)
  print(f'schema drafted in {FLAGS.out}: review the lines marked CHECK')


if __name__ == '__main__':
  cli.run(main, config_flag=None)
