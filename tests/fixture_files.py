"""Dataset files in their published layouts, written for tests (no network, no real data).

The data tests (tests/test_data_*.py) damage these files to check error messages; the config
tests (tests/e2e/test_configs.py) run every config end to end on them. `write_manual_dir` puts
one small copy of every manual-download dataset into one folder, as `--manual_dir` expects.
"""
import csv

import numpy as np
import pydicom

from medinv.data import cardio
from medinv.data import cbis_ddsm


# ------------------------------------------------------------------------------------- mias

def write_pgm(path, image, maxval=255):
  dtype = np.uint8 if maxval < 256 else np.dtype('>u2')
  header = f'P5\n# written by the medinv tests\n{image.shape[1]} {image.shape[0]}\n{maxval}\n'
  path.write_bytes(header.encode() + np.asarray(image, dtype).tobytes())


MIAS_INFO = """REFNUM BG CLASS SEVERITY X Y RADIUS
mdb001 G CIRC B 30 32 10
mdb002 G CIRC B 20 28 6
mdb003 D NORM
mdb004 D NORM
mdb005 F CIRC B 27 13 3
mdb005 F CIRC B 30 16 2
mdb006 F NORM
mdb007 G SPIC M 40 40 5
mdb008 G NORM
mdb009 F CALC M
mdb010 F NORM
mdb011 D CALC B *NOTE 3*
mdb011 D SPIC M 10 10 4
mdb012 D ASYM B 50 30 8

"""
MIAS_SEVERITY = [1, 1, 0, 0, 1, 0, 2, 0, 2, 0, 2, 1]  # mdb001..mdb012


def checkerboard(size):
  return (np.indices((size, size)).sum(axis=0) % 2) * 255


def write_mias(folder, size=64, info=MIAS_INFO):
  folder.mkdir(parents=True, exist_ok=True)
  for refnum in range(1, 13):
    image = np.full((size, size), 10 * refnum)
    if refnum == 1:
      image = checkerboard(size)
    if refnum == 2:  # 16-bit PGM: 65535 * 0.5
      write_pgm(folder / 'mdb002.pgm', np.full((size, size), 32768), maxval=65535)
      continue
    write_pgm(folder / f'mdb{refnum:03d}.pgm', image)
  (folder / 'Info.txt').write_text(info)
  return folder


# -------------------------------------------------------------------------------- cbis_ddsm

def write_dicom(path, pixels, description='', bits_stored=16, photometric='MONOCHROME2'):
  meta = pydicom.dataset.FileMetaDataset()
  meta.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.1.2'  # Digital mammography X-ray
  meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
  meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
  dataset = pydicom.dataset.FileDataset(str(path), {}, file_meta=meta, preamble=b'\0' * 128)
  dataset.SOPClassUID = meta.MediaStorageSOPClassUID
  dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
  dataset.Modality = 'MG'
  dataset.SeriesDescription = description
  dataset.Rows, dataset.Columns = pixels.shape
  dataset.SamplesPerPixel = 1
  dataset.PhotometricInterpretation = photometric
  dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 16, bits_stored, bits_stored - 1
  dataset.PixelRepresentation = 0
  dataset.PixelData = np.asarray(pixels, np.uint16).tobytes()
  path.parent.mkdir(parents=True, exist_ok=True)
  dataset.save_as(str(path), enforce_file_format=True)


MASS_COLUMNS = ['patient_id', 'breast_density', 'left or right breast', 'image view',
                'abnormality id', 'abnormality type', 'mass shape', 'mass margins',
                'assessment', 'pathology', 'subtlety', 'image file path',
                'cropped image file path', 'ROI mask file path']
CALC_COLUMNS = ['patient_id', 'breast density', 'left or right breast', 'image view',
                'abnormality id', 'abnormality type', 'calc type', 'calc distribution',
                'assessment', 'pathology', 'subtlety', 'image file path',
                'cropped image file path', 'ROI mask file path']
# (csv, patient, side, view, abnormality id, pathology, full grey level, crop grey level)
CBIS_CASES = [
    ('mass_train', 'P_00001', 'LEFT', 'CC', 1, 'MALIGNANT', 60000, 50000),
    ('mass_train', 'P_00001', 'LEFT', 'CC', 2, 'BENIGN', 60000, 10000),  # same mammogram
    ('mass_train', 'P_00004', 'RIGHT', 'MLO', 1, 'BENIGN_WITHOUT_CALLBACK', 20000, 30000),
    ('calc_train', 'P_00005', 'RIGHT', 'CC', 1, 'MALIGNANT', 40000, 45000),
    ('mass_test', 'P_00016', 'LEFT', 'CC', 1, 'BENIGN', 30000, 20000),
    ('calc_test', 'P_00038', 'LEFT', 'MLO', 1, 'MALIGNANT', 50000, 40000),
]




def cbis_cases(num_train=8, num_test=4):
  """CBIS_CASES plus more mammograms (one finding each, distinct grey levels) up to
  num_train training and num_test test mammograms."""
  cases = list(CBIS_CASES)
  extra = [('mass_train' if i % 2 else 'calc_train', 'train') for i in range(num_train - 3)]
  extra += [('mass_test' if i % 2 else 'calc_test', 'test') for i in range(num_test - 2)]
  for i, (name, _) in enumerate(extra):
    pathology = ('BENIGN', 'MALIGNANT')[i % 2]
    cases.append((name, f'P_{100 + i:05d}', ('LEFT', 'RIGHT')[i % 2], ('CC', 'MLO')[i // 2 % 2],
                  1, pathology, 5000 + 1500 * i, 7000 + 1500 * i))
  return cases


def cbis_paths(case):
  name, patient, side, view, abnormality = case[:5]
  uid = f'1.3.6.1.4.1.9590.100.1.2.{int(patient[2:])}'
  prefix = {'mass_train': 'Mass-Training', 'mass_test': 'Mass-Test',
            'calc_train': 'Calc-Training', 'calc_test': 'Calc-Test'}[name]
  full = f'{prefix}_{patient}_{side}_{view}/{uid}0/{uid}1/000000.dcm'
  roi = f'{prefix}_{patient}_{side}_{view}_{abnormality}/{uid}{abnormality}2/{uid}{abnormality}3'
  return full, f'{roi}/000001.dcm', f'{roi}/000000.dcm'  # full, crop, mask


def write_cbis(manual, nbia_names=False, rows=None):
  """Writes the case CSVs and DICOMs; nbia_names renames folders/files as NBIA downloads do."""
  root = manual / 'CBIS-DDSM'
  tables = {name: [] for name in ('mass_train', 'mass_test', 'calc_train', 'calc_test')}
  for case in rows or CBIS_CASES:
    name, patient, side, view, abnormality, pathology, full_grey, crop_grey = case
    full, crop, mask = cbis_paths(case)
    full_image = np.full((40, 24), full_grey)  # Non-square, as mammograms are.
    crop_image = np.full((10, 12), crop_grey)
    mask_image = np.zeros((40, 24)); mask_image[5:15, 4:16] = 65535
    if nbia_names:
      top_full, top_roi = full.split('/')[0], crop.split('/')[0]
      write_dicom(root / top_full / '08-07-2016-DDSM-1' / '1.000000-full mammogram images-1' /
                  '1-1.dcm', full_image, 'full mammogram images')
      write_dicom(root / top_roi / '08-07-2016-DDSM-2' / '1.000000-ROI mask images-2' /
                  '1-1.dcm', mask_image, 'ROI mask images')
      write_dicom(root / top_roi / '08-07-2016-DDSM-2' / '1.000000-ROI mask images-2' /
                  '1-2.dcm', crop_image, 'cropped images')
    else:
      write_dicom(root / full, full_image)
      write_dicom(root / crop, crop_image)
      write_dicom(root / mask, mask_image)
    kind = 'mass' if name.startswith('mass') else 'calcification'
    shape = ['OVAL', 'CIRCUMSCRIBED'] if kind == 'mass' else ['PLEOMORPHIC', 'CLUSTERED']
    # The published files end some paths with a newline inside the quotes.
    tables[name].append([patient, 3, side, view, abnormality, kind, *shape, 4, pathology, 3,
                         full, crop + '\n', mask])
  for name, table_rows in tables.items():
    kind, split = name.split('_')
    with open(manual / cbis_ddsm.CASE_FILES[(kind, split)], 'w', newline='') as f:
      writer = csv.writer(f)
      writer.writerow(MASS_COLUMNS if kind == 'mass' else CALC_COLUMNS)
      writer.writerows(table_rows)
  return manual

# ----------------------------------------------------------------------------------- cardio

def write_cardio(folder, num_records=200, seed=0):
  """cardio_train.csv with plausible synthetic records (';'-separated, age in days)."""
  rng = np.random.default_rng(seed)
  n = num_records
  gender = rng.integers(1, 3, n)
  ap_lo = rng.integers(60, 100, n)
  columns = [np.arange(n), rng.integers(30 * 365, 65 * 365, n), gender,
             rng.integers(150, 190, n) + 8 * (gender == 2), rng.integers(50, 110, n),
             ap_lo + rng.integers(20, 60, n), ap_lo, rng.integers(1, 4, n),
             rng.integers(1, 4, n), rng.integers(0, 2, n), rng.integers(0, 2, n),
             rng.integers(0, 2, n)]
  risk = (columns[1] / 365 - 30) / 35 + (columns[7] - 1) / 2 + rng.normal(0, 0.3, n)
  columns.append((risk > np.median(risk)).astype(int))
  folder.mkdir(parents=True, exist_ok=True)
  lines = [';'.join(cardio.HEADER)] + [';'.join(str(int(v)) for v in row)
                                       for row in zip(*columns)]
  (folder / cardio.FILENAME).write_text('\n'.join(lines) + '\n')
  return folder


# ----------------------------------------------------------------------- a user's own CSV

HEART_UCI_HEADER = ('id', 'age', 'sex', 'dataset', 'cp', 'trestbps', 'chol', 'fbs', 'restecg',
                    'thalch', 'exang', 'oldpeak', 'slope', 'ca', 'thal', 'num')


def heart_uci_rows(num_records=160, seed=0):
  """Synthetic records in the layout of the UCI heart-disease table (heart_disease_uci.csv):
  text categories, TRUE/FALSE flags, empty cells, num 0-4 related to age, sex and cp."""
  rng = np.random.default_rng(seed)
  rows = []
  for i in range(num_records):
    age, male = int(rng.integers(30, 78)), bool(rng.random() < 0.7)
    cp = str(rng.choice(['typical angina', 'atypical angina', 'non-anginal', 'asymptomatic']))
    risk = (age - 30) / 48 + 0.5 * male + (cp == 'asymptomatic') + rng.normal(0, 0.4)
    num = int(np.clip(np.floor(risk * 1.6), 0, 4))
    maybe = lambda text, p=0.1: '' if rng.random() < p else text  # noqa: E731
    rows.append([str(i + 1), str(age), 'Male' if male else 'Female',
                 str(rng.choice(['Cleveland', 'Hungary', 'Switzerland', 'VA Long Beach'])), cp,
                 maybe(str(int(rng.integers(100, 180)))), maybe(str(int(rng.integers(150, 400)))),
                 maybe(str(rng.random() < 0.2).upper()),
                 maybe(str(rng.choice(['normal', 'lv hypertrophy', 'st-t abnormality'])), 0.05),
                 maybe(str(int(rng.integers(90, 200)))), maybe(str(rng.random() < 0.4).upper()),
                 maybe(f'{rng.uniform(0, 4):.1f}'),
                 maybe(str(rng.choice(['upsloping', 'flat', 'downsloping'])), 0.3),
                 maybe(str(int(rng.integers(0, 4))), 0.6),
                 maybe(str(rng.choice(['normal', 'fixed defect', 'reversable defect'])), 0.5),
                 str(num)])
  return rows


def write_heart_uci(folder, num_records=160, seed=0, name='heart_disease_uci.csv',
                    delimiter=',', newline='\n', bom=False):
  """heart_disease_uci.csv (synthetic, see heart_uci_rows); returns its path."""
  folder.mkdir(parents=True, exist_ok=True)
  lines = [delimiter.join(HEART_UCI_HEADER)] + [
      delimiter.join(row) for row in heart_uci_rows(num_records, seed)]
  path = folder / name
  path.write_bytes(('\ufeff' if bom else '').encode() + (newline.join(lines) + newline).encode())
  return path


# --------------------------------------------------------------------------------- medmnist

def medmnist_arrays(size=28, channels=1, label_shape=(1,), counts=(12, 4, 6), classes=3,
                    seed=0):
  rng = np.random.default_rng(seed)
  arrays = {}
  for prefix, n in zip(('train', 'val', 'test'), counts):
    shape = (n, size, size) if channels == 1 else (n, size, size, channels)
    arrays[f'{prefix}_images'] = rng.integers(0, 256, shape, dtype=np.uint8)
    arrays[f'{prefix}_labels'] = rng.integers(0, classes, (n, *label_shape), dtype=np.uint8)
  return arrays



def write_medmnist(folder, name, **array_options):
  """<name>.npz with the standard MedMNIST keys; returns the arrays written."""
  folder.mkdir(parents=True, exist_ok=True)
  arrays = medmnist_arrays(**array_options)
  np.savez_compressed(folder / f'{name}.npz', **arrays)
  return arrays


# ---------------------------------------------------------------------------- all of them

def write_manual_dir(folder, medmnist_names=('pneumoniamnist', 'breastmnist')):
  """Every manual-download dataset in one folder: cardio_train.csv, heart_disease_uci.csv
  (in the UCI layout, for configs/schemas/heart_disease_uci.py), MIAS films + Info.txt,
  the CBIS-DDSM CSVs + CBIS-DDSM/ DICOMs, and <name>.npz for each MedMNIST name."""
  write_cardio(folder)
  write_heart_uci(folder)
  write_mias(folder, size=32)
  write_cbis(folder, rows=cbis_cases())
  for name in medmnist_names:
    write_medmnist(folder, name, counts=(24, 8, 12), classes=2)
  return folder
