"""The full UCI Heart Disease table (920 records from four hospitals) as a user's own CSV.

  ./launch.sh attribute_inference --config configs/attribute_csv.py:schema=configs/schemas/heart_disease_uci.py \\
      --config.data.manual_dir=../shared/data/heart --workdir runs/attribute_heart_uci
"""
import ml_collections


def get_config():
  return ml_collections.ConfigDict(dict(
      path='heart_disease_uci.csv',  # relative to --config.data.manual_dir
      label='num', positive='> 0', class_names=('no disease', 'disease'),  # num 1-4: narrowing
      id='id',
      ignore=('ca',),  # 611 of 920 cells missing
      categorical=dict(sex=(), dataset=(), cp=(), fbs=(), restecg=(), exang=(), slope=(),
                       thal=()),
      # Bounds: plausible clinical ranges (public knowledge), not the file's minima and maxima.
      numeric=dict(age=(18, 100), trestbps=(60, 220), chol=(0, 700), thalch=(50, 230),
                   oldpeak=(-3, 7)),
      sensitive=dict(sex=(), cp=(), restecg=(), age=(45, 55, 65)),
      missing='category',  # a missing categorical cell is a value of its own
      fill=dict(trestbps='drop', chol='drop', thalch='drop', oldpeak='drop'),
  ))
