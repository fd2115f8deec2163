"""image_folder: a user's folder of PNG / JPEG / DICOM images, one subfolder per class, written
here into tmp_path (layouts, channels, sizes, formats, the build key, and every bad input)."""
import json
import os

import jax
import numpy as np
from PIL import Image
import pytest

from configs import train_breastmnist
from medinv import data
from medinv.core import checkpoint
from medinv.core import errors
from medinv.core.errors import DataError
from medinv.data import image_folder
from medinv.data import images
from medinv.data import records
from medinv.training import trainer

from fixture_files import write_dicom


def write_png(path, pixels):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(np.asarray(pixels, np.uint8)).save(path)


def gray(seed, size=(8, 8)):
  return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)


def as_float(pixels):
  """uint8 values as medinv.data.images.resize gives them (float32 / 255)."""
  return np.asarray(pixels, np.float32) / 255.0


def write_pool(root, counts=(('benign', 6), ('malignant', 4))):
  """<root>/<class>/<i>.png, numbered across classes; returns {file name: (pixels, label)}."""
  written, number = {}, 0
  for label, (name, count) in enumerate(counts):
    for _ in range(count):
      pixels = gray(number)
      write_png(root / name / f'{number:02d}.png', pixels)
      written[f'{number:02d}.png'] = (pixels, label)
      number += 1
  return written


def load(root, tmp_path, image_size=8, **kwargs):
  return data.load_images('image_folder', image_size=image_size, path=str(root),
                          data_dir=str(tmp_path / 'tfds'), **kwargs)


def load_pool(root, tmp_path, **kwargs):
  """(images, labels) of a folder without split folders, back in folder order."""
  loaded = load(root, tmp_path, test_fraction=0.34, split_seed=0, **kwargs)
  n = len(loaded.train[1]) + len(loaded.test[1])
  train, test = records.split_indices(jax.random.key(0), n, 0.34)
  order = np.argsort(np.concatenate([train, test]))
  return (np.concatenate([loaded.train[0], loaded.test[0]])[order],
          np.concatenate([loaded.train[1], loaded.test[1]])[order])


def built_configs(tmp_path):
  return sorted(os.listdir(tmp_path / 'tfds' / 'image_folder'))


def test_pool_is_split_by_seed_when_loading_without_a_rebuild(tmp_path):
  root = tmp_path / 'scans'
  written = write_pool(root)
  (root / '.DS_Store').write_bytes(b'\0junk')  # hidden: ignored
  (root / 'README.txt').write_text('my scans')  # not an image, beside the class folders
  names = sorted(written)
  for seed in (0, 1):
    loaded = load(root, tmp_path, split_seed=seed, test_fraction=0.3)
    train, test = records.split_indices(jax.random.key(seed), len(names), 0.3)
    for split, index in (('train', train), ('test', test)):
      x, y = getattr(loaded, split)
      expected = [written[names[i]] for i in index]
      np.testing.assert_array_equal(x[..., 0], as_float(np.stack([p for p, _ in expected])))
      np.testing.assert_array_equal(y, [label for _, label in expected])
    assert loaded.validation is None and len(test) == 3
    assert loaded.class_names == ('benign', 'malignant')
  assert len(built_configs(tmp_path)) == 1  # the seed splits when loading, not building


def test_split_layout_keeps_file_order_across_classes(tmp_path):
  root = tmp_path / 'study'
  order = {'train': [('b', '001.png'), ('a', '002.png'), ('b', '003.png'), ('a', '010.png')],
           'val': [('a', '1.png'), ('b', '1.png')],  # a tie: by class
           'test': [('b', 'x.png'), ('a', 'y.png')]}
  expected = {}
  for folder, files in order.items():
    for i, (name, file_name) in enumerate(files):
      write_png(root / folder / name / file_name, np.full((8, 8), 10 * i + len(folder)))
    expected[folder] = ([10 * i + len(folder) for i in range(len(files))],
                        [('a', 'b').index(name) for name, _ in files])
  loaded = load(root, tmp_path)
  for folder, split in (('train', 'train'), ('val', 'validation'), ('test', 'test')):
    x, y = getattr(loaded, split)
    np.testing.assert_array_equal(np.rint(x[:, 0, 0, 0] * 255), expected[folder][0])
    np.testing.assert_array_equal(y, expected[folder][1])


def test_any_rgb_image_makes_three_channels(tmp_path):
  root = tmp_path / 'rgb'
  rgb = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
  write_png(root / 'a' / '0.png', rgb)
  write_png(root / 'b' / '1.png', gray(1))
  write_png(root / 'b' / '2.png', np.repeat(gray(2)[..., None], 3, axis=-1))
  x, y = load_pool(root, tmp_path)
  assert x.shape == (3, 8, 8, 3)
  np.testing.assert_array_equal(y, [0, 1, 1])
  np.testing.assert_array_equal(x[0], as_float(rgb))
  for i in (1, 2):  # grayscale repeated into every channel
    np.testing.assert_array_equal(x[i], as_float(np.repeat(gray(i)[..., None], 3, axis=-1)))


def test_rgb_with_equal_channels_counts_as_grayscale(tmp_path):
  root = tmp_path / 'gray_as_rgb'
  pixels = gray(5)
  write_png(root / 'a' / '0.png', np.repeat(pixels[..., None], 3, axis=-1))
  write_png(root / 'b' / '1.png', gray(6))
  (root / 'a' / '2.jpg').parent.mkdir(exist_ok=True)
  Image.fromarray(gray(7)).convert('RGB').save(root / 'a' / '2.jpg', quality=95)
  x, _ = load_pool(root, tmp_path)
  assert x.shape == (3, 8, 8, 1)
  np.testing.assert_array_equal(x[0, ..., 0], as_float(pixels))


def test_mixed_sizes_are_resized_while_building(tmp_path):
  root = tmp_path / 'mixed'
  small, large = gray(1, (8, 8)), gray(2, (24, 16))
  write_png(root / 'a' / '0.png', small)
  write_png(root / 'b' / '1.png', large)
  write_png(root / 'b' / '2.png', gray(3, (24, 16)))
  x, _ = load_pool(root, tmp_path, image_size=16)
  assert x.shape == (3, 16, 16, 1)
  for i, pixels in ((0, small), (1, large)):  # each resized alone, rounded to 8 bits
    resized = images.resize(pixels[None, ..., None], 16)[0]
    np.testing.assert_array_equal(x[i], as_float(np.rint(resized * 255)))
    assert np.any(x[i] != resized)
  assert built_configs(tmp_path)[0].endswith('_16')


def test_jpeg_and_sixteen_bit_png_and_nested_folders(tmp_path):
  root = tmp_path / 'formats'
  jpeg = root / 'a' / 'scan.JPEG'
  jpeg.parent.mkdir(parents=True)
  Image.fromarray(gray(1)).save(jpeg, quality=90)
  wide = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000
  (root / 'b').mkdir()
  Image.fromarray(wide).save(root / 'b' / 'wide.png')  # 16-bit grayscale
  write_png(root / 'b' / 'patient7' / 'view.png', gray(2))  # any depth below the class
  x, y = load_pool(root, tmp_path)  # in name order: patient7/view.png, scan.JPEG, wide.png
  np.testing.assert_array_equal(y, [1, 0, 1])
  np.testing.assert_array_equal(x[0, ..., 0], as_float(gray(2)))
  with Image.open(jpeg) as decoded:
    np.testing.assert_array_equal(x[1, ..., 0], as_float(decoded))
  np.testing.assert_array_equal(x[2, ..., 0], as_float(np.rint(wide * (255 / 65535))))


def test_dicom_is_min_max_scaled_and_monochrome1_inverted(tmp_path):
  root = tmp_path / 'dicom'
  pixels = np.arange(64).reshape(8, 8) * 100 + 1000  # 1000..7300 of 16 bits
  write_dicom(root / 'a' / 'one.dcm', pixels)
  write_dicom(root / 'b' / 'IM0002', pixels, photometric='MONOCHROME1')  # no suffix
  write_png(root / 'b' / 'three.png', gray(3))
  x, y = load_pool(root, tmp_path)  # in name order: IM0002, one.dcm, three.png
  np.testing.assert_array_equal(y, [1, 0, 1])
  scaled = np.rint((pixels - 1000) / 6300 * 255)
  np.testing.assert_array_equal(x[1, ..., 0], as_float(scaled))
  np.testing.assert_array_equal(x[0, ..., 0], as_float(255 - scaled))
  np.testing.assert_array_equal(x[2, ..., 0], as_float(gray(3)))


def test_a_changed_folder_is_rebuilt(tmp_path):
  root = tmp_path / 'changing'
  write_pool(root)
  first = load(root, tmp_path)
  (root / 'benign' / '.hidden.png').write_bytes(b'not read')
  (root / 'malignant' / 'Thumbs.db').write_bytes(b'not read')
  assert len(built_configs(tmp_path)) == 1  # hidden and system files are not in the folder
  load(root, tmp_path)
  assert len(built_configs(tmp_path)) == 1
  write_png(root / 'benign' / '00.png', np.zeros((8, 8)))  # same name, new pixels
  second = load(root, tmp_path)
  assert len(built_configs(tmp_path)) == 2
  assert not np.array_equal(np.concatenate([first.train[0], first.test[0]]),
                            np.concatenate([second.train[0], second.test[0]]))


def test_relative_path_is_taken_from_manual_dir_and_experiments_load_it(tmp_path):
  write_pool(tmp_path / 'mine' / 'scans')
  config = train_breastmnist.get_config('smoke')
  config.data.update(dataset='image_folder', path='scans', manual_dir=str(tmp_path / 'mine'),
                     data_dir=str(tmp_path / 'tfds'), image_size=8)
  task = data.load_task(config.data)
  assert task.x_train.shape == (8, 8, 8, 1) and task.class_names == ('benign', 'malignant')


def _one_class(root):
  write_png(root / 'only' / '0.png', gray(0))


def _unsupported(root):
  write_pool(root)
  (root / 'malignant' / 'notes.txt').write_text('x')


def _corrupt(root):
  write_pool(root)
  (root / 'benign' / '03.png').write_bytes(b'\x89PNG\r\n\x1a\n truncated')


def _mixed(root):
  write_pool(root / 'train')
  write_pool(root / 'test')
  write_png(root / 'other' / '0.png', gray(0))


def _test_class_not_in_train(root):
  write_pool(root / 'train')
  write_pool(root / 'test', counts=(('benign', 1), ('Malignant', 1)))


@pytest.mark.parametrize('make, match', [
    (lambda root: root.mkdir(), r'scans: 0 class folder\(s\) \[\]; image_folder needs at least '
     'two'),
    (_one_class, r"scans: 1 class folder\(s\) \['only'\]"),
    (lambda root: (write_pool(root), (root / 'extra').mkdir()),
     r'scans/extra: empty class folder'),
    (_unsupported, r'scans/malignant/notes\.txt: unsupported file type in class folder'),
    (_corrupt, r'scans/benign/03\.png: not a readable image'),
    (_mixed, r"scans: mixed layout: split folders \['test', 'train'\] beside other folders "
     r"\['other'\]"),
    (lambda root: (write_pool(root / 'train'), write_pool(root / 'val'),
                   write_pool(root / 'validation'), write_pool(root / 'test')),
     'both val/ and validation/'),
    (lambda root: write_pool(root / 'train'), r"split folders \['train'\] but no test/"),
    (_test_class_not_in_train, r"scans/test: class folders \['Malignant'\] are not in train/"),
    (lambda root: (write_pool(root), write_png(root / 'loose.png', gray(0))),
     r'scans/loose\.png: an image outside any class folder'),
    (lambda root: None, r'config\.data\.path: /\S+/scans does not exist'),
    (lambda root: root.write_text('x'), r'config\.data\.path: \S+/scans is not a folder'),
])
def test_bad_folder_fails_with_one_clear_line(tmp_path, make, match, assert_nothing_built):
  root = tmp_path / 'scans'
  make(root)
  with pytest.raises(DataError, match=match) as error:
    load(root, tmp_path)
  assert '\n' not in str(error.value)
  assert_nothing_built(str(tmp_path / 'tfds'))


def test_empty_path_names_the_field(tmp_path):
  with pytest.raises(DataError, match=r'config\.data\.path is empty'):
    load('', tmp_path)


def test_scan_orders_by_name_then_class(tmp_path):
  root = tmp_path / 'ties'
  for name, file_name in (('b', '1.png'), ('a', '1.png'), ('a', '0.png')):
    write_png(root / name / file_name, gray(0))
  layout = image_folder.scan(str(root))
  assert [(e.name, e.label) for e in layout.splits['pool']] == [('0.png', 0), ('1.png', 0),
                                                                 ('1.png', 1)]


def test_a_workdir_trained_on_another_folder_is_not_resumed(tmp_path):
  config = train_breastmnist.get_config('smoke')
  config.data.update(dataset='image_folder', path='/data/scans')
  saved = config.to_dict()
  saved['data']['path'] = '/data/other_scans'
  (tmp_path / 'config.json').write_text(json.dumps(saved))
  (tmp_path / 'checkpoints' / '1').mkdir(parents=True)
  with pytest.raises(errors.WorkdirError, match="data.path was '/data/other_scans', now "
                     "'/data/scans'"):
    checkpoint.check_compatible(str(tmp_path / 'config.json'), config.to_dict(),
                                trainer.CHECKPOINT_FIELDS)
  before = train_breastmnist.get_config('smoke').to_dict()  # a workdir from before data.path
  del before['data']['path']
  (tmp_path / 'config.json').write_text(json.dumps(before))
  checkpoint.check_compatible(str(tmp_path / 'config.json'),
                              train_breastmnist.get_config('smoke').to_dict(),
                              trainer.CHECKPOINT_FIELDS)
