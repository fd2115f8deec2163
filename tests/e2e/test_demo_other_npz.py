"""The demo's image part on another MedMNIST file, from the command line: inversion_breastmnist
(smoke) pointed at a `pneumoniamnist.npz` through --config.parts.<part>.data.* overrides; the
report names that data in its title, in its section heading and data line and in the first
screen, and BreastMNIST nowhere but in the part's own name. (The smoke study's
membership_breastmnist part, which the full demo leaves out, names its data the same way:
medinv.study.sources; tests/e2e/test_own_images.py runs it on a user's npz.)

The file is written here, in MedMNIST's layout (train_ / val_ / test_ images and labels), from
the embedded BreastMNIST npz, transformed (intensities inverted, images transposed) and cut to
other split sizes (500 / 70 / 140), so the counts in the report show which file was read."""
import importlib.resources
import json
import os
import re
import subprocess
import sys

import numpy as np

from configs import common

NAME = 'pneumoniamnist'
SIZES = {'train': 500, 'val': 70, 'test': 140}
IMAGE_PARTS = ('inversion_breastmnist',)

# demo.py's smoke config with only its image part (the study has no option that drops parts).
IMAGE_PARTS_CONFIG = '''\
from configs import demo


def get_config(arg=None):
  config = demo.get_config(arg)
  for name in list(config.parts.keys()):
    if name not in {parts!r}:
      del config.parts[name]
  return config
'''


def _write_npz(folder) -> str:
  source = importlib.resources.files('medinv.data') / 'files' / 'breastmnist.npz'
  with np.load(source) as npz:
    arrays = dict(npz)
  out = {}
  for prefix, size in SIZES.items():
    out[f'{prefix}_images'] = (255 - arrays[f'{prefix}_images'][:size]).transpose(0, 2, 1)
    out[f'{prefix}_labels'] = arrays[f'{prefix}_labels'][:size]
  path = os.path.join(folder, f'{NAME}.npz')
  np.savez(path, **out)
  return path


def test_image_part_on_another_medmnist_file(tmp_path, data_dir):
  manual = tmp_path / 'manual'
  manual.mkdir()
  _write_npz(str(manual))
  config_file = tmp_path / 'image_parts.py'
  config_file.write_text(IMAGE_PARTS_CONFIG.format(parts=IMAGE_PARTS))
  workdir = tmp_path / 'study'
  overrides = [f'--config.parts.{part}.data.{field}={value}' for part in IMAGE_PARTS
               for field, value in (('dataset', 'medmnist'), ('manual_dir', str(manual)),
                                    ('medmnist_name', NAME))]
  command = [sys.executable, '-m', 'experiments.demo', f'--config={config_file}:smoke',
             f'--workdir={workdir}', *overrides]
  env = dict(os.environ, PYTHONPATH=common.REPO, MEDINV_DATA_DIR=data_dir,
             TF_CPP_MIN_LOG_LEVEL='3', NO_GCE_CHECK='true')
  done = subprocess.run(command, cwd=common.REPO, env=env, capture_output=True, text=True,
                        timeout=900)
  assert done.returncode == 0, done.stderr[-3000:]
  report = (workdir / 'report.md').read_text()
  title = report.splitlines()[0]
  assert title == f'# medinv study: medmnist:{NAME}'
  headings = re.findall(r'^## (.*) \(`(\w+)`\)$', report, flags=re.M)
  assert [part for _, part in headings] == list(IMAGE_PARTS)
  for text, part in headings:
    assert NAME in text and 'breastmnist' not in text.lower(), (text, part)
  data_lines = re.findall(r'^\*\*Data:\*\* .*$', report, flags=re.M)
  assert len(data_lines) == len(IMAGE_PARTS)
  for line in data_lines:
    assert line.startswith(f'**Data:** medmnist:{NAME}: ') and 'breastmnist' not in line.lower()
    assert f'medmnist_name {NAME}' in line and str(manual) in line, line
    assert f'{SIZES["train"]} train / {SIZES["test"]} test images' in line, line
  # Outside the parts' names (`inversion_breastmnist`, ...) BreastMNIST is named nowhere.
  without_part_names = re.sub(r'(inversion|membership)_breastmnist', '', report)
  assert 'breastmnist' not in without_part_names.lower()
  first_screen = [line for line in report.split('\n\n')
                  if line.startswith('| part | data |')][0].splitlines()[2:]
  assert first_screen and all(f'| medmnist:{NAME} |' in line for line in first_screen)
  results = json.loads((workdir / 'results.json').read_text())
  assert results['metrics']['inversion_breastmnist.n_aux'] == SIZES['test']
