"""Manual-download cardio: the shared real copy, cleaning, malformed CSVs; manual configs.
"""
import os
import time

import numpy as np
import pytest

import fixture_files
from medinv import data
from medinv.data import cardio
from medinv.data import cbis_ddsm
from medinv.data import medmnist
from medinv.data import mias
from medinv.data import tfds_util
from medinv.core.errors import DataError


# ----------------------------------------------------------------------------------- cardio

@pytest.fixture(scope='module')
def cardio_dir(shared_data):
  folder = os.path.join(shared_data, 'cardio')
  if not os.path.isfile(os.path.join(folder, cardio.FILENAME)):
    pytest.skip(f'{folder}/{cardio.FILENAME} is absent (see ../shared/data/SOURCES.md)')
  return folder


@pytest.fixture(scope='module')
def cardio_data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('cardio_tfds'))


@pytest.fixture(scope='module')
def cardio_raw(cardio_dir, cardio_data_dir):
  return data.load_records('cardio', data_dir=cardio_data_dir, manual_dir=cardio_dir)


def test_cardio_shared_copy(cardio_raw, cardio_dir):
  assert cardio_raw.features.shape == (70_000, 11)
  assert np.bincount(cardio_raw.labels).tolist() == [35_021, 34_979]
  assert [c.name for c in cardio_raw.columns] == list(cardio.HEADER[1:-1])
  # Independent parse of the file: age in days -> years, every other column unchanged.
  raw = np.loadtxt(os.path.join(cardio_dir, cardio.FILENAME), delimiter=';', skiprows=1)
  np.testing.assert_allclose(cardio_raw.features[:, 0], raw[:, 1] / 365.25, rtol=1e-6)
  np.testing.assert_array_equal(cardio_raw.features[:, 1:], raw[:, 2:-1].astype(np.float32))
  np.testing.assert_array_equal(cardio_raw.labels, raw[:, -1])
  assert cardio_raw.features[0, 0] == pytest.approx(18393 / 365.25)  # id 0: 18393 days
  assert 29 < cardio_raw.features[:, 0].min() < cardio_raw.features[:, 0].max() < 66


def test_cardio_attribute_candidates(cardio_raw):
  for name, expected in [('gender', [1, 2]), ('cholesterol', [1, 2, 3]), ('gluc', [1, 2, 3]),
                         ('smoke', [0, 1]), ('alco', [0, 1]), ('active', [0, 1])]:
    column = cardio_raw.columns[cardio_raw.column_index(name)]
    assert column.categorical and column.candidates.tolist() == expected
    index = column.candidate_index(cardio_raw.features[:, cardio_raw.column_index(name)])
    assert set(np.unique(index)) == set(range(len(expected)))
  age = cardio_raw.columns[0]
  bins = np.bincount(age.candidate_index(cardio_raw.features[:, 0]), minlength=5)
  assert len(age.candidates) == len(bins) == 5 and bins.min() > 1000


def test_cardio_reads_fast_in_chunks(cardio_raw, cardio_dir, cardio_data_dir):
  del cardio_raw  # Built.
  builder = tfds_util.prepare(cardio.Builder, data_dir=cardio_data_dir, manual_dir=cardio_dir)
  assert len(builder.as_data_source(split='train')) == -(-70_000 // cardio.RECORDS_PER_EXAMPLE)
  start = time.perf_counter()
  arrays = tfds_util.read_split(builder, 'train')
  assert time.perf_counter() - start < 2.0  # One record per example took ~3 s.
  assert arrays['features'].shape == (70_000, 11) and len(np.unique(arrays['id'])) == 70_000


def test_cardio_clean(cardio_raw, cardio_dir, cardio_data_dir):
  clean = data.load_records('cardio', data_dir=cardio_data_dir, manual_dir=cardio_dir,
                            clean=True)
  keep, counts = cardio.plausible(cardio_raw.features)
  assert counts['total'] == 1376 and len(clean) == 70_000 - 1376
  np.testing.assert_array_equal(clean.features, cardio_raw.features[keep])
  f = {c.name: clean.features[:, i] for i, c in enumerate(clean.columns)}
  assert np.all(f['ap_lo'] <= f['ap_hi']) and f['ap_hi'].max() <= 250 and f['ap_lo'].min() >= 30
  builder = tfds_util.prepare(cardio.Builder, data_dir=cardio_data_dir, config='clean')
  assert builder.info.metadata['dropped'] == counts
  assert counts['ap_lo > ap_hi'] == 1234


def test_cardio_task_passes_clean_option(cardio_dir, cardio_data_dir, cardio_raw):
  from configs import train_cardio
  config = train_cardio.get_config('clean')
  config.data.update(manual_dir=cardio_dir, data_dir=cardio_data_dir)
  task = data.load_task(config.data)
  assert len(task.y_train) + len(task.y_test) == 70_000 - 1376
  assert task.num_classes == 2 and task.x_train.shape[1] == 11


CARDIO_HEADER = ';'.join(cardio.HEADER)
CARDIO_ROWS = ['0;18393;2;168;62.0;110;80;1;1;0;0;1;0', '1;20228;1;156;85.0;140;90;3;1;0;0;1;1',
               '2;18857;1;165;64.0;130;70;3;1;0;0;0;1']


@pytest.mark.parametrize('text, match', [
    (CARDIO_HEADER.replace('ap_hi', 'sbp') + '\n' + '\n'.join(CARDIO_ROWS),
     r"line 1: header .*missing columns: \['ap_hi'\]"),
    (CARDIO_HEADER.replace(';', ',') + '\n' + '\n'.join(r.replace(';', ',') for r in CARDIO_ROWS),
     'line 1: .*wrong separator'),
    (CARDIO_HEADER + '\n' + '\n'.join(CARDIO_ROWS).replace('85.0', '85,5'),
     r"line 3, column 'weight': non-numeric value '85,5'"),
    (CARDIO_HEADER + '\n' + '\n'.join(CARDIO_ROWS)[:-9], r'line 4: 9 fields, expected 13'),
    (CARDIO_HEADER + '\n' + '\n'.join(CARDIO_ROWS)[:-1], r"line 4, column 'cardio': non-numeric"),
    (CARDIO_HEADER + '\n' + '\n'.join(CARDIO_ROWS).replace(';3;1;0;0;1;1', ';4;1;0;0;1;1'),
     r"line 3, column 'cholesterol': value 4 is not one of the codes"),
    (CARDIO_HEADER + '\n' + '\n'.join(CARDIO_ROWS).replace('130', 'nan'),
     r"line 4, column 'ap_hi': value nan is not a finite number"),
    ('', 'empty file'),
])
def test_cardio_malformed_csv_fails_cleanly(tmp_path, text, match, assert_nothing_built):
  manual, data_dir = tmp_path / 'manual', str(tmp_path / 'tfds')
  manual.mkdir()
  path = manual / cardio.FILENAME
  path.write_text(text)
  with pytest.raises(DataError, match=match) as error:
    data.load_records('cardio', data_dir=data_dir, manual_dir=str(manual))
  assert str(path) in str(error.value)
  assert not cardio.Builder(data_dir=data_dir, config='raw').is_prepared()
  assert_nothing_built(data_dir)
  # A corrected file then builds normally in the same data_dir.
  path.write_text(CARDIO_HEADER + '\n' + '\n'.join(CARDIO_ROWS) + '\n')
  loaded = data.load_records('cardio', data_dir=data_dir, manual_dir=str(manual))
  assert loaded.labels.tolist() == [0, 1, 1]
  assert loaded.features[1, 0] == pytest.approx(20228 / 365.25)


def _points_to_instructions(error) -> None:
  """One line that says where the download instructions are printed."""
  assert '\n' not in str(error.value)
  assert str(error.value).endswith(
      'how to get the files: ./launch.sh --list_datasets (the cardio entry)')


def test_cardio_missing_file_points_to_instructions(tmp_path):
  with pytest.raises(DataError, match='no manual_dir was given') as error:
    data.load_records('cardio', data_dir=str(tmp_path / 'tfds'))
  _points_to_instructions(error)
  with pytest.raises(DataError, match='is not a directory'):
    data.load_records('cardio', data_dir=str(tmp_path / 'tfds'),
                      manual_dir=str(tmp_path / 'nowhere'))
  (tmp_path / 'manual').mkdir()
  with pytest.raises(DataError, match='is empty') as error:  # not TFDS's bare assertion
    data.load_records('cardio', data_dir=str(tmp_path / 'tfds'),
                      manual_dir=str(tmp_path / 'manual'))
  _points_to_instructions(error)
  (tmp_path / 'manual' / 'cardio.csv').write_text('renamed\n')
  with pytest.raises(DataError, match='cardio_train.csv not found') as error:
    data.load_records('cardio', data_dir=str(tmp_path / 'tfds'),
                      manual_dir=str(tmp_path / 'manual'))
  _points_to_instructions(error)
  text = data.describe()
  assert 'cardio (records; manual download' in text and data.list_datasets() == text
  for module in (cardio, mias, cbis_ddsm, medmnist):
    assert all(line in text for line in module.MANUAL_DOWNLOAD_INSTRUCTIONS.splitlines())


def test_cardio_csv_with_a_byte_order_mark_equals_the_plain_file(tmp_path):
  plain = fixture_files.write_cardio(tmp_path / 'plain')
  excel = tmp_path / 'excel'  # Saved as "CSV UTF-8" by Excel: a BOM before the header.
  excel.mkdir()
  (excel / cardio.FILENAME).write_bytes(b'\xef\xbb\xbf' + (plain / cardio.FILENAME).read_bytes())
  loaded = [data.load_records('cardio', data_dir=str(tmp_path / f'tfds_{folder.name}'),
                              manual_dir=str(folder)) for folder in (plain, excel)]
  np.testing.assert_array_equal(loaded[1].features, loaded[0].features)
  np.testing.assert_array_equal(loaded[1].labels, loaded[0].labels)
  assert len(loaded[0].labels) == 200




# ---------------------------------------------------------------------------------- configs

@pytest.mark.parametrize('name, dataset', [('train_cardio', 'cardio'), ('train_mias', 'mias'),
                                           ('train_cbis_ddsm', 'cbis_ddsm'),
                                           ('train_medmnist', 'medmnist')])
def test_manual_configs(name, dataset):
  import importlib
  module = importlib.import_module(f'configs.{name}')
  config = module.get_config()
  assert config.data.dataset == dataset and config.data.manual_dir == ''
  assert '--config.data.manual_dir' in module.__doc__
  smoke = module.get_config('smoke')
  assert smoke.train.num_epochs < config.train.num_epochs
