"""A user's own images end to end: BreastMNIST written out as a folder of PNGs (train/,
validation/, test/ with one subfolder per class) and as a plain npz with split keys loads
bit-identical to the built-in `breastmnist`; model inversion gives the same results.csv on all
three and membership inference on the built-in data and the npz (every column but `dataset`).

The experiments are the smoke configs, narrowed to what the data path can change (one split,
the inverse network under model perturbation; two shadows, undefended, for membership
inference): their attacks and grids run in full in tests/inversion and tests/membership.
The first dataset's run compiles; the others load the programs from the suite's
persistent compilation cache (tests/conftest.py).
"""
import csv
import importlib.resources
import os

import numpy as np
from PIL import Image
import pytest

from configs import inversion_breastmnist
from configs import membership_breastmnist
from medinv import data
from medinv.inversion import experiment as inversion_experiment
from medinv.membership import experiment as membership_experiment

DATASETS = ('breastmnist', 'image_folder', 'npz')
PREFIXES = {'train': 'train', 'validation': 'val', 'test': 'test'}


@pytest.fixture(scope='module')
def own_paths(tmp_path_factory):
  """{dataset: config.data.path} for BreastMNIST as a PNG folder and as a plain npz."""
  root = tmp_path_factory.mktemp('own')
  source = importlib.resources.files('medinv.data') / 'files' / 'breastmnist.npz'
  with np.load(source) as npz:
    arrays = dict(npz)
  folder = root / 'breastmnist_png'
  for split, prefix in PREFIXES.items():
    labels = arrays[f'{prefix}_labels'].reshape(-1)
    for i, (pixels, label) in enumerate(zip(arrays[f'{prefix}_images'], labels)):
      class_dir = folder / split / data.breastmnist.CLASS_NAMES[label]
      class_dir.mkdir(parents=True, exist_ok=True)
      Image.fromarray(pixels).save(class_dir / f'{i:04d}.png')  # file names keep the order
  npz_path = root / 'exported arrays.npz'
  np.savez(npz_path, class_names=np.array(data.breastmnist.CLASS_NAMES), **arrays)
  return {'breastmnist': '', 'image_folder': str(folder), 'npz': str(npz_path)}


def test_own_copies_load_bit_identical(own_paths, data_dir):
  builtin = data.load_images('breastmnist', image_size=32, data_dir=data_dir)
  for dataset in DATASETS[1:]:
    loaded = data.load_images(dataset, image_size=32, data_dir=data_dir,
                              path=own_paths[dataset])
    assert loaded.class_names == builtin.class_names
    for split in PREFIXES:
      for mine, theirs in zip(getattr(loaded, split), getattr(builtin, split)):
        assert mine.dtype == theirs.dtype and np.array_equal(mine, theirs), (dataset, split)


def _inversion_config(dataset, path, data_dir):
  config = inversion_breastmnist.get_config('split=2,smoke')
  inversion_breastmnist.keep_core(config)
  config.attack.update(names=('inverse_network',), knows_defense=(True,))
  config.defense.model_perturbation.modes = ('fixed',)
  return _on(config, dataset, path, data_dir)


def _membership_config(dataset, path, data_dir):
  config = membership_breastmnist.get_config('smoke')
  config.membership.num_shadows = 2
  config.defense.names = ()  # undefended: the defenses do not read the data's source
  return _on(config, dataset, path, data_dir)


def _on(config, dataset, path, data_dir):
  # 16x16: the resize from 28x28 is part of what must match, at a quarter of the compute.
  config.data.update(dataset=dataset, path=path, data_dir=data_dir, image_size=16)
  config.train.update(num_epochs=2, checkpoint_every_epochs=1)  # equal numbers, not good models
  return config


def _rows(workdir):
  with open(os.path.join(workdir, 'results.csv'), newline='') as f:
    return list(csv.DictReader(f))


def _without_dataset(rows):
  return [{k: v for k, v in row.items() if k != 'dataset'} for row in rows]


def _numeric_columns(rows):
  def is_number(text):
    try:
      float(text)
      return True
    except ValueError:
      return False
  return [c for c in rows[0] if any(r[c] for r in rows)
          and all(is_number(r[c]) for r in rows if r[c])]


@pytest.mark.e2e  # runs experiments end to end: the e2e tier
@pytest.mark.parametrize('make_config, run, datasets', [
    (_inversion_config, inversion_experiment.run, DATASETS),
    # The built-in data against the npz (the folder loads bit-identical above and runs through
    # model inversion here).
    (_membership_config, membership_experiment.run, ('breastmnist', 'npz')),
], ids=['model_inversion', 'membership_inference'])
def test_experiments_give_the_same_numbers(own_paths, data_dir, tmp_path, make_config, run,
                                           datasets):
  results = {}
  for dataset in datasets:
    workdir = str(tmp_path / dataset)
    run(make_config(dataset, own_paths[dataset], data_dir), workdir)
    results[dataset] = _rows(workdir)
  for dataset, rows in results.items():
    # source_name: the dataset, and the file or folder a user's own data came from.
    expected = {'breastmnist': 'breastmnist', 'image_folder': 'image_folder:breastmnist_png',
                'npz': 'npz:exported arrays.npz'}[dataset]
    assert all(row.get('dataset', expected) == expected for row in rows)
  builtin = _without_dataset(results['breastmnist'])
  numeric = _numeric_columns(builtin)
  assert len(numeric) > 10 and len(builtin) > 2
  for dataset in datasets[1:]:
    mine = _without_dataset(results[dataset])
    for column in numeric:  # the numbers, to the last digit written
      assert [r[column] for r in mine] == [r[column] for r in builtin], (dataset, column)
    assert mine == builtin, dataset  # and every other column
