"""Dataset csv: a user's table under a declared schema (medinv.data.schema, csv_table).

The tables are synthetic, in the layout of the UCI heart-disease file (tests/fixture_files.py);
every expected value is computed here from the cells the test wrote, with csv and numpy.
"""
import csv
import json
import os

import numpy as np
import pytest

from configs import common
from configs import train_csv
from medinv import data
from medinv.attribute import evaluation as attribute_eval
from medinv.core import checkpoint
from medinv.core import errors
from medinv.core.errors import DataError
from medinv.data import csv_table
from medinv.data import schema as schema_lib
from medinv.training import trainer

import fixture_files

SCHEMA = dict(label='num', positive='> 0', id='id', ignore=('ca', 'dataset'),
              categorical=dict(sex=(), cp=(), fbs=(), restecg=(), exang=(), slope=(), thal=()),
              numeric=dict(age=(18, 100), trestbps=(60, 220), chol=(0, 700),
                           thalch=(50, 230), oldpeak=(-3, 7)),
              sensitive=dict(sex=(), age=(45, 55, 65)), missing='category',
              fill=dict(trestbps='drop', chol=200, thalch='drop', oldpeak=0))


def _table(path):
  with open(path, newline='', encoding='utf-8-sig') as f:
    text = f.read()
  delimiter = ';' if ';' in text.splitlines()[0] else ','
  return list(csv.DictReader(text.splitlines(), delimiter=delimiter))


def _load(path, schema=SCHEMA):
  return data.load_records('csv', path=str(path), schema=schema)


def test_records_match_the_cells(tmp_path):
  path = fixture_files.write_heart_uci(tmp_path, num_records=120)
  loaded = _load(path)
  rows = _table(path)
  kept = [r for r in rows if r['trestbps'] and r['thalch']]  # 'drop' columns
  assert len(loaded) == len(kept) < len(rows)
  names = [c.name for c in loaded.columns]
  assert names == sorted(SCHEMA['categorical']) + sorted(SCHEMA['numeric'])
  np.testing.assert_array_equal(loaded.labels, [int(r['num']) > 0 for r in kept])
  np.testing.assert_array_equal(loaded.ids, [r['id'] for r in kept])
  assert loaded.class_names == ('not num > 0', 'num > 0')
  chol = loaded.features[:, names.index('chol')]
  np.testing.assert_array_equal(chol, [float(r['chol'] or 200) for r in kept])  # stated value
  oldpeak = loaded.features[:, names.index('oldpeak')]
  np.testing.assert_allclose(oldpeak, [float(r['oldpeak'] or 0) for r in kept], rtol=1e-6)
  slope = loaded.columns[names.index('slope')]
  assert slope.value_names == ('downsloping', 'flat', 'upsloping', csv_table.MISSING)
  codes = loaded.features[:, names.index('slope')].astype(int)
  expected = [slope.value_names.index(r['slope'] or csv_table.MISSING) for r in kept]
  np.testing.assert_array_equal(codes, expected)
  age = loaded.columns[names.index('age')]
  assert age.edges == (18, 45, 55, 65, 100) and age.midpoints == (31.5, 50, 60, 82.5)


def test_declared_values_fix_the_coding_and_numbers_are_clipped(tmp_path):
  path = fixture_files.write_heart_uci(tmp_path, num_records=60)
  schema = dict(SCHEMA, categorical=dict(SCHEMA['categorical'], sex=('Male', 'Female')),
                numeric=dict(SCHEMA['numeric'], age=(40, 60)), sensitive=dict(sex=()))
  loaded = _load(path, schema)
  rows = {r['id']: r for r in _table(path)}
  names = [c.name for c in loaded.columns]
  sex = loaded.features[:, names.index('sex')]
  np.testing.assert_array_equal(sex, [rows[i]['sex'] == 'Female' for i in loaded.ids])
  age = loaded.features[:, names.index('age')]
  np.testing.assert_array_equal(age, [min(max(int(rows[i]['age']), 40), 60) for i in loaded.ids])


def test_bom_crlf_and_semicolons_read_like_a_plain_file(tmp_path):
  plain = _load(fixture_files.write_heart_uci(tmp_path / 'plain', num_records=50))
  excel = _load(fixture_files.write_heart_uci(tmp_path / 'excel', num_records=50, bom=True,
                                              newline='\r\n', delimiter=';'))
  np.testing.assert_array_equal(plain.features, excel.features)
  np.testing.assert_array_equal(plain.labels, excel.labels)
  assert plain.columns == excel.columns


def test_multiclass_and_value_list_labels(tmp_path):
  path = fixture_files.write_heart_uci(tmp_path, num_records=200)
  nums = [int(r['num']) for r in _table(path) if r['trestbps'] and r['thalch']]
  multi = _load(path, dict(SCHEMA, positive=''))
  assert multi.class_names == tuple(f'num = {v}' for v in sorted(set(nums)))
  np.testing.assert_array_equal(multi.labels, [sorted(set(nums)).index(v) for v in nums])
  listed = _load(path, dict(SCHEMA, positive=(3, 4), class_names=('mild', 'severe')))
  np.testing.assert_array_equal(listed.labels, [v >= 3 for v in nums])
  assert listed.class_names == ('mild', 'severe')


def test_task_scales_by_declared_bounds_and_records_its_split(tmp_path):
  path = fixture_files.write_heart_uci(tmp_path, num_records=100)
  config = common.data_config('csv', path=os.path.basename(path), manual_dir=str(tmp_path),
                              schema=SCHEMA)
  task = data.load_task(config)
  raw = task.records_train
  low = np.asarray([c.bounds[0] for c in raw.columns], np.float32)
  high = np.asarray([c.bounds[1] for c in raw.columns], np.float32)
  np.testing.assert_allclose(task.x_train, (raw.features - low) / (high - low), rtol=1e-6)
  assert task.x_train.min() >= 0 and task.x_train.max() <= 1
  rows = data.records.split_rows(train=task.records_train, test=task.records_test)
  assert [r['split'] for r in rows].count('test') == len(task.y_test)
  lines = [r['line'] for r in rows]
  assert lines == sorted(lines) and len(set(lines)) == len(lines)
  by_id = {r['id']: r['line'] for r in rows}
  assert all(by_id[r['id']] == i + 2 for i, r in enumerate(_table(path)) if r['id'] in by_id)
  assert data.source_name(config) == 'csv:heart_disease_uci.csv'


def test_a_changed_file_is_a_new_build(tmp_path):
  path = fixture_files.write_heart_uci(tmp_path, num_records=80)
  first = _load(path)
  fixture_files.write_heart_uci(tmp_path, num_records=90)
  second = _load(path)
  assert len(second) > len(first)
  assert csv_table.builder_config(str(path), SCHEMA).name != csv_table.builder_config(
      str(path), dict(SCHEMA, positive='> 1')).name


def test_declared_columns_and_classes_before_loading():
  columns = data.declared_columns(common.data_config('csv', schema=SCHEMA))
  age = [c for c in columns if c.name == 'age'][0]
  assert age.edges == (18, 45, 55, 65, 100) and not age.categorical
  assert data.declared_num_classes(common.data_config('csv', schema=SCHEMA)) == 2
  assert data.declared_num_classes(common.data_config('csv', schema=dict(SCHEMA, positive=''))
                                   ) is None


def test_the_example_schema_fits_in_30_lines_and_loads():
  path = os.path.join(common.REPO, 'configs', 'schemas', 'heart_disease_uci.py')
  with open(path) as f:
    assert len(f.read().splitlines()) <= 30
  config = common.csv_data(path)
  assert config.path == 'heart_disease_uci.csv' and config.schema.label == 'num'
  schema_lib.parse(config.schema)


def _error(tmp_path, match, schema=SCHEMA, edit=None):
  path = fixture_files.write_heart_uci(tmp_path, num_records=40)
  if edit:
    path.write_text(edit(path.read_text()))
  with pytest.raises(DataError, match=match) as info:
    _load(path, schema)
  assert '\n' not in str(info.value)


@pytest.mark.parametrize('schema, match', [
    (dict(SCHEMA, numeric=dict(SCHEMA['numeric'], bmi=(10, 60))),
     r"heart_disease_uci\.csv: column\(s\) bmi \(numeric\) of config\.data\.schema not in the "
     'file'),
    (dict(SCHEMA, ignore=('ca',)), r'column\(s\) dataset not declared in config\.data\.schema'),
    (dict(SCHEMA, positive='> 9'),
     r"heart_disease_uci\.csv, column 'num': one class after binarising with positive='> 9'"),
    (dict(SCHEMA, sensitive=dict(age=())),
     r"config\.data\.schema\.sensitive\.age: the numeric sensitive attribute 'age' needs bins"),
    (dict(SCHEMA, sensitive=dict(age=(45, 120))), r'sensitive\.age: bins .* inside the bounds'),
    (dict(SCHEMA, numeric=dict(SCHEMA['numeric'], age=())),
     r'config\.data\.schema\.numeric\.age needs declared bounds'),
    (dict(SCHEMA, ignore=('ca', 'dataset', 'sex')),
     r"column 'sex' is declared in both ignore and categorical"),
    (dict(SCHEMA, fill=dict(chol='category')), r'fill\.chol: missing cells of the numeric'),
    (dict(SCHEMA, missing='impute'), r"config\.data\.schema\.missing must be one of"),
    (dict(SCHEMA, positive='more than 0'), r"positive: 'more than 0' is not a rule"),
    (dict(SCHEMA, categorical=dict(SCHEMA['categorical'], cp=('typical angina',))),
     r"line \d+, column 'cp': '.*' is not one of its declared values"),
    (dict(SCHEMA, labels='num'), r"config\.data\.schema: unknown field\(s\) \['labels'\]"),
])
def test_schema_errors_are_one_line_naming_the_field(tmp_path, schema, match):
  _error(tmp_path, match, schema)


def test_file_errors_name_file_line_and_column(tmp_path):
  def extra_field(text):
    lines = text.splitlines()
    lines[5] += ',surplus'
    return '\n'.join(lines) + '\n'
  _error(tmp_path / 'a', r'heart_disease_uci\.csv, line 6: 17 fields, expected 16', edit=extra_field)
  def word_age(text):  # every record's age: the first record kept names its line
    lines = text.splitlines()
    for i in range(1, len(lines)):
      cells = lines[i].split(',')
      lines[i] = ','.join([cells[0], 'old'] + cells[2:])
    return '\n'.join(lines) + '\n'
  _error(tmp_path / 'b', r"line \d+, column 'age': 'old' is not a finite number",
         edit=word_age)
  missing_file = common.data_config('csv', path='absent.csv', manual_dir=str(tmp_path),
                                    schema=SCHEMA)
  with pytest.raises(DataError, match=r'config\.data\.path: .*absent\.csv is not a file'):
    data.load_task(missing_file)
  with pytest.raises(DataError, match=r'config\.data\.schema is empty'):
    data.load_records('csv', path=str(tmp_path / 'a' / 'heart_disease_uci.csv'), schema={})


def test_attribute_inference_refuses_a_numeric_attribute_without_bins():
  config = common.base_config('csv', 'mlp')
  config.data.schema = SCHEMA
  config.attack = {'sensitive': ('chol',)}
  with pytest.raises(ValueError, match="'chol' is numeric and has no bins.*"
                     r'config\.data\.schema\.sensitive\.chol'):
    attribute_eval.check_sensitive(('chol',), data.declared_columns(config.data), 'csv')


def test_a_workdir_trained_under_another_schema_is_not_resumed(tmp_path):
  config = train_csv.get_config()
  saved = config.to_dict()
  saved['data']['schema']['positive'] = '> 1'
  (tmp_path / 'config.json').write_text(json.dumps(saved))
  (tmp_path / 'checkpoints' / '1').mkdir(parents=True)
  with pytest.raises(errors.WorkdirError, match="data.schema.positive was '> 1', now '> 0'"):
    checkpoint.check_compatible(str(tmp_path / 'config.json'), config.to_dict(),
                                trainer.CHECKPOINT_FIELDS)
  (tmp_path / 'config.json').write_text(json.dumps(config.to_dict()))
  checkpoint.check_compatible(str(tmp_path / 'config.json'), config.to_dict(),
                              trainer.CHECKPOINT_FIELDS)
