"""What the report says each part ran on (medinv.study.sources): the data's name, the line
under each heading, and the study's title built from the parts' data."""
from configs import common
from medinv.study import sources


def test_data_name_says_which_file_or_variant():
  assert sources.data_name(common.data_config('heart_disease')) == 'heart_disease'
  assert sources.data_name(common.data_config('medmnist', medmnist_name='pneumoniamnist')) == (
      'medmnist:pneumoniamnist')
  assert sources.data_name(common.data_config(
      'medmnist', medmnist_name='chestmnist', medmnist_size=64, medmnist_task=3)) == (
          'medmnist:chestmnist_64_task3')
  assert sources.data_name(common.data_config('mias', variant='abnormal')) == 'mias:abnormal'
  assert sources.data_name(common.data_config('csv', path='/data/heart_uci.csv')) == (
      'csv:heart_uci.csv')


def test_data_line_names_file_image_size_and_counts():
  config = common.data_config('medmnist', medmnist_name='pneumoniamnist', image_size=16,
                              manual_dir='/downloads')
  line = sources.data_line(config, (500, 140))
  assert line == ('**Data:** medmnist:pneumoniamnist: Any MedMNIST v2 2D dataset from its npz '
                  'file, from a manual download; read with medmnist_name pneumoniamnist, '
                  'medmnist_size 28 from /downloads; images at 16x16; 500 train / 140 test '
                  'images.')
  records = sources.data_line(common.data_config('heart_disease'), (242, 61))
  assert records.endswith('shipped as package data; 242 train / 61 test records.'), records
  assert 'counts unavailable' in sources.data_line(common.data_config('heart_disease'), None)


def test_title_and_heading():
  assert sources.title(['heart_disease', 'breastmnist', 'heart_disease']) == (
      'medinv study: heart_disease, breastmnist')
  assert sources.title([]) == 'medinv study: no part ran'
  described = {'_data': {'name': 'medmnist:pneumoniamnist', 'line': '**Data:** x.'}}
  assert sources.heading('Model inversion', 'inversion_breastmnist', described, 'medmnist') == [
      '## Model inversion: medmnist:pneumoniamnist (`inversion_breastmnist`)', '',
      '**Data:** x.', '']
  assert sources.heading('DP audit', 'audit_heart', {}, 'heart_disease') == [
      '## DP audit: heart_disease (`audit_heart`)', '']
