"""Manual-download mammograms, on small files in their published encodings (written by
tests/fixture_files.py): binary PGM plus an Info.txt table (mini-MIAS), DICOM written by
pydicom plus the four case-description CSVs (CBIS-DDSM).
"""
import os

import numpy as np
import pydicom
import pytest

from medinv import data
from medinv.data import cbis_ddsm
from medinv.data import mias
from medinv.data import tfds_util
from medinv.core.errors import DataError

from fixture_files import CBIS_CASES
from fixture_files import MIAS_INFO
from fixture_files import MIAS_SEVERITY
from fixture_files import cbis_paths
from fixture_files import write_cbis
from fixture_files import write_mias


# ------------------------------------------------------------------------------------- mias

def test_mias_builds_with_pair_split_and_antialiasing(tmp_path):
  manual = write_mias(tmp_path / 'manual')
  data_dir = str(tmp_path / 'tfds')
  loaded = data.load_images('mias', image_size=16, data_dir=data_dir, manual_dir=str(manual))
  assert loaded.class_names == ('normal', 'benign', 'malignant')
  builder = tfds_util.prepare(mias.Builder, data_dir=data_dir,
                              config=mias.builder_config(16))
  train, test = tfds_util.read_split(builder, 'train'), tfds_util.read_split(builder, 'test')
  assert test['refnum'].tolist() == [9, 10]  # The pair mdb009/mdb010 is held out together.
  assert train['refnum'].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 11, 12]
  refnums = np.concatenate([train['refnum'], test['refnum']])
  labels = np.concatenate([train['label'], test['label']])
  assert labels.tolist() == [MIAS_SEVERITY[r - 1] for r in refnums]
  np.testing.assert_array_equal(loaded.train[1], train['label'])
  assert loaded.train[0].shape == (10, 16, 16, 1) and loaded.test[0].shape == (2, 16, 16, 1)
  # Constant films keep their grey level; the 1-pixel checkerboard averages to mid-grey
  # (nearest-neighbour or strided subsampling would give pure black or pure white).
  assert np.all(train['image'][train['refnum'] == 3] == 30)
  assert np.all(np.abs(train['image'][train['refnum'] == 2].astype(int) - 128) <= 1)
  board = train['image'][0].astype(float)
  assert abs(board.mean() - 127.5) < 3 and board.std() < 3


def test_mias_abnormal_view_and_split_rule(tmp_path):
  manual = write_mias(tmp_path / 'manual', size=32)
  loaded = data.load_images('mias', image_size=8, data_dir=str(tmp_path / 'tfds'),
                            manual_dir=str(manual), variant='abnormal')
  assert loaded.class_names == ('normal', 'abnormal')
  expected = [int(MIAS_SEVERITY[r - 1] > 0) for r in (1, 2, 3, 4, 5, 6, 7, 8, 11, 12)]
  assert loaded.train[1].tolist() == expected
  with pytest.raises(ValueError, match='mias variant'):
    mias.builder_config(64, 'birads')
  # The rule over all 322 films: both films of a woman share a split; 64 films held out.
  held_out = [r for r in range(1, 323) if mias.is_test(r)]
  assert len(held_out) == 64
  assert all(mias.is_test(r) == mias.is_test(r + 1) for r in range(1, 323, 2))


def test_mias_files_in_all_mias_subfolder(tmp_path):
  write_mias(tmp_path / 'manual' / 'all-mias', size=16)
  loaded = data.load_images('mias', image_size=8, data_dir=str(tmp_path / 'tfds'),
                            manual_dir=str(tmp_path / 'manual'))
  assert len(loaded.train[1]) == 10


def _truncate(path):
  path.write_bytes(path.read_bytes()[:-100])


def _ascii_pgm(path):
  path.write_bytes(b'P2\n64 64\n255\n' + b'0 ' * 4096)


def _bad_header(path):
  path.write_bytes(b'P5\n64 sixty-four\n255\n' + bytes(4096))


@pytest.mark.parametrize('damage, match', [
    (_truncate, r'mdb004\.pgm: 3996 bytes of pixel data, expected 4096 .*truncated'),
    (_ascii_pgm, r"mdb004\.pgm: not a binary PGM \(starts with b'P2'"),
    (_bad_header, r'mdb004\.pgm: malformed PGM header: expected the height'),
    (lambda path: path.unlink(), r'1 films listed in .*Info\.txt have no PGM file, e.g. '
     r'mdb004\.pgm'),
])
def test_mias_bad_pgm_fails_cleanly(tmp_path, damage, match, assert_nothing_built):
  manual = write_mias(tmp_path / 'manual')
  damage(manual / 'mdb004.pgm')
  data_dir = str(tmp_path / 'tfds')
  with pytest.raises(DataError, match=match):
    data.load_images('mias', image_size=16, data_dir=data_dir, manual_dir=str(manual))
  assert not mias.Builder(data_dir=data_dir, config=mias.builder_config(16)).is_prepared()
  assert_nothing_built(data_dir)


@pytest.mark.parametrize('info, match', [
    (MIAS_INFO.replace('mdb012 D ASYM B 50 30 8', 'mdb012 D ASYM'),
     r'Info\.txt, line 15, column SEVERITY: missing'),
    (MIAS_INFO.replace('mdb012 D ASYM B 50 30 8', 'mdb012 D ASYM B 50 3'),
     r'Info\.txt, line 15, column RADIUS: expected X Y RADIUS together'),
    (MIAS_INFO.replace('mdb007 G SPIC M', 'mdb007 G SPIC X'),
     r"line 9, column SEVERITY: 'X' is not B or M"),
    (MIAS_INFO.replace('mdb007 G SPIC', 'mdb007 Q SPIC'), r"line 9, column BG: 'Q'"),
    (MIAS_INFO.replace('mdb001 G CIRC B 30 32', 'mdb001 G CIRC B 3O 32'),
     r"line 2, column X: '3O' is not a whole number"),
    (MIAS_INFO.replace('mdb012', 'mdb13'), r"line 15, column REFNUM: 'mdb13' is not mdbNNN"),
    (MIAS_INFO.replace('mdb012 D ASYM B 50 30 8', ''), r'mdb012\.pgm .*has no row in'),
])
def test_mias_bad_info_table(tmp_path, info, match, assert_nothing_built):
  manual = write_mias(tmp_path / 'manual', size=16, info=info)
  data_dir = str(tmp_path / 'tfds')
  with pytest.raises(DataError, match=match):
    data.load_images('mias', image_size=8, data_dir=data_dir, manual_dir=str(manual))
  assert_nothing_built(data_dir)


def test_mias_missing_info_points_to_instructions(tmp_path):
  manual = write_mias(tmp_path / 'manual', size=16)
  (manual / 'Info.txt').unlink()
  with pytest.raises(DataError, match='Info.txt not found') as error:
    data.load_images('mias', image_size=8, data_dir=str(tmp_path / 'tfds'),
                     manual_dir=str(manual))
  assert '\n' not in str(error.value)
  assert 'how to get the files: ./launch.sh --list_datasets (the mias entry)' in str(error.value)


# -------------------------------------------------------------------------------- cbis_ddsm

@pytest.mark.parametrize('nbia_names', [False, True])
def test_cbis_ddsm_full_and_roi(tmp_path, nbia_names):
  manual = write_cbis(tmp_path / 'manual', nbia_names=nbia_names)
  data_dir = str(tmp_path / 'tfds')
  full = data.load_images('cbis_ddsm', image_size=8, data_dir=data_dir, manual_dir=str(manual))
  assert full.class_names == ('benign', 'malignant')
  # Train mammograms: P_00001 (malignant + benign finding -> malignant), P_00004, P_00005.
  assert full.train[1].tolist() == [1, 0, 1] and full.test[1].tolist() == [0, 1]
  grey = full.train[0][:, :, 4, 0]  # Middle column block: inside the 40x24 mammogram.
  np.testing.assert_allclose(grey[:, 3:5].mean(axis=1), [60000 / 65535, 20000 / 65535,
                                                         40000 / 65535], atol=0.01)
  assert np.all(full.train[0][:, :, 0, 0] < 0.01)  # Zero padding beside the 24 columns.
  roi = data.load_images('cbis_ddsm', image_size=8, data_dir=data_dir, manual_dir=str(manual),
                         variant='roi')
  assert roi.train[1].tolist() == [1, 0, 0, 1] and roi.test[1].tolist() == [0, 1]
  # Each example is the lesion crop (not the binary mask next to it in the same folder).
  crops = [c[7] for c in CBIS_CASES]
  centre = np.concatenate([roi.train[0], roi.test[0]])[:, 4, 4, 0]
  np.testing.assert_allclose(centre, np.asarray(crops) / 65535, atol=0.01)


def test_cbis_ddsm_crop_path_pointing_at_mask(tmp_path):
  manual = write_cbis(tmp_path / 'manual', rows=CBIS_CASES[2:])
  for name in ('mass_case_description_train_set.csv',):
    text = (manual / name).read_text().replace('/000001.dcm', '/000000.dcm')
    (manual / name).write_text(text)
  roi = data.load_images('cbis_ddsm', image_size=8, data_dir=str(tmp_path / 'tfds'),
                         manual_dir=str(manual), variant='roi')
  assert roi.train[0][0, 4, 4, 0] == pytest.approx(30000 / 65535, abs=0.01)


def _rename_column(manual):
  path = manual / 'calc_case_description_test_set.csv'
  path.write_text(path.read_text().replace('pathology', 'diagnosis', 1))
  return r"calc_case_description_test_set\.csv, line 1: missing columns \['pathology'\]"


def _bad_pathology(manual):
  path = manual / 'mass_case_description_train_set.csv'
  path.write_text(path.read_text().replace('BENIGN_WITHOUT_CALLBACK', 'UNKNOWN'))
  return r"mass_case_description_train_set\.csv, line 6, column 'pathology': 'UNKNOWN'"


def _truncated_row(manual):
  path = manual / 'mass_case_description_train_set.csv'
  text = path.read_text().rstrip('\n')
  path.write_text(text[:text.rindex(',BENIGN_WITHOUT') + 1])
  return (r"mass_case_description_train_set\.csv, line 6, column 'pathology': missing value "
          r'\(truncated row\?\)')


def _unreadable_dicom(manual):
  path = manual / 'CBIS-DDSM' / cbis_paths(CBIS_CASES[3])[0]
  path.write_bytes(b'this is not a DICOM file' * 10)
  return rf'{path.name}: not a readable DICOM image \(InvalidDicomError'


def _dicom_without_pixels(manual):
  path = manual / 'CBIS-DDSM' / cbis_paths(CBIS_CASES[4])[0]
  dataset = pydicom.dcmread(path)
  del dataset.PixelData
  dataset.save_as(path)
  return r'000000\.dcm: not a readable DICOM image'


def _missing_dicom(manual):
  full = cbis_paths(CBIS_CASES[5])[0]
  os.remove(manual / 'CBIS-DDSM' / full)
  return rf"calc_case_description_test_set\.csv, line 2: DICOM file '{full}' not found"


def _missing_csv(manual):
  os.remove(manual / 'calc_case_description_train_set.csv')
  return (r"\['calc_case_description_train_set\.csv'\] not found in [^\n]*; how to get the "
          r'files: \./launch\.sh --list_datasets \(the cbis_ddsm entry\)$')


@pytest.mark.parametrize('damage', [_rename_column, _bad_pathology, _truncated_row,
                                    _unreadable_dicom, _dicom_without_pixels, _missing_dicom,
                                    _missing_csv])
def test_cbis_ddsm_bad_input_fails_cleanly(tmp_path, damage, assert_nothing_built):
  manual = write_cbis(tmp_path / 'manual')
  match = damage(manual)
  data_dir = str(tmp_path / 'tfds')
  with pytest.raises(DataError, match=match):
    data.load_images('cbis_ddsm', image_size=8, data_dir=data_dir, manual_dir=str(manual))
  assert not cbis_ddsm.Builder(data_dir=data_dir,
                               config=cbis_ddsm.builder_config(8)).is_prepared()
  assert_nothing_built(data_dir)
