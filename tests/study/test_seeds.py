"""Sweep rows over target seeds (medinv.study.seeds): means, t-intervals, groups, kept columns, and
the files a sweep writes from them."""
import json

import pytest
from scipy import stats

from medinv.core import report
from medinv.study import seeds
from medinv.study import sweep


def _rows(seed_offset: float, split: int = 4) -> list[dict]:
  return [
      dict(attack='inverse_network', split=split, strength=0.0, ssim_mean=0.8 + seed_offset,
           ssim_low=0.7, ssim_high=0.9, ssim_std=0.1, stopped_by='max_steps',
           psnr_mean='inf', seed=99),
      dict(attack='inverse_network', split=split, strength=0.05, ssim_mean=0.2 + 2 * seed_offset,
           ssim_low=0.1, ssim_high=0.3, ssim_std=0.1,
           stopped_by='patience' if seed_offset > 0.05 else 'max_steps', psnr_mean=20.0,
           seed=99),
  ]


def test_each_cell_is_its_mean_and_t_interval_over_the_seeds():
  offsets = {0: 0.0, 1: 0.03, 2: 0.1}
  runs = [({'seed': s}, _rows(o)) for s, o in offsets.items()]
  out = seeds.across_seeds(runs)
  assert len(out) == 2
  second = out[1]
  values = [0.2 + 2 * o for o in offsets.values()]
  low, high = stats.t.interval(0.95, len(values) - 1, loc=sum(values) / 3,
                               scale=stats.sem(values))
  assert second['ssim_mean'] == pytest.approx(sum(values) / 3)
  assert second['ssim_mean_seed_low'] == pytest.approx(low)
  assert second['ssim_mean_seed_high'] == pytest.approx(high)
  # Columns alike in every seed stay; within-run intervals and the seed column go.
  assert (second['attack'], second['split'], second['strength']) == ('inverse_network', 4, 0.05)
  assert second['psnr_mean'] == 20.0 and 'psnr_mean_seed_low' not in second
  assert not any(k in second for k in ('ssim_low', 'ssim_high', 'ssim_std', 'seed'))
  assert second['stopped_by'] == 'max_steps|patience'
  assert (second['num_seeds'], second['seeds']) == (3, '0,1,2')
  assert out[0]['psnr_mean'] == 'inf'  # results.json's infinity, alike in every seed


def test_groups_are_the_runs_that_differ_only_in_seed():
  runs = [({'attack.splits': (s,), 'seed': seed}, _rows(0.01 * seed, split=s))
          for s in (2, 4) for seed in (0, 1)]
  runs.append(({'attack.splits': (6,), 'seed': 0}, _rows(0.0, split=6)))  # one seed: no row
  out = seeds.across_seeds(runs)
  assert [(row['attack.splits'], row['split']) for row in out] == [((2,), 2)] * 2 + [((4,), 4)] * 2
  assert out[0]['ssim_mean'] == pytest.approx(0.805)


def test_no_seed_axis_gives_no_rows():
  assert seeds.across_seeds([({'attack.splits': (2,)}, _rows(0.0))]) == []


def test_runs_of_one_group_must_write_the_same_rows():
  runs = [({'seed': 0}, _rows(0.0)), ({'seed': 1}, _rows(0.1)[:1])]
  with pytest.raises(ValueError, match=r'seeds \[0, 1\] have \[1, 2\] rows'):
    seeds.across_seeds(runs)


def test_sweep_writes_seed_files_and_removes_a_stale_pair(tmp_path):
  lines = []
  rows = sweep._write_seeds(str(tmp_path), [({'seed': 0}, _rows(0.0)), ({'seed': 1}, _rows(0.1))],
                            lines.append)
  with open(tmp_path / 'seeds.json') as f:
    assert json.load(f) == [{k: report.jsonable(v) for k, v in row.items()} for row in rows]
  with open(tmp_path / 'seeds.csv') as f:
    assert len(f.read().splitlines()) == len(rows) + 1
  assert lines == [f'over seeds: 2 rows with mean and 95% t-interval over 2 seeds in '
                   f'{tmp_path / "seeds.csv"}']
  # The same workdir swept again without a seed axis: no seed files from the earlier sweep.
  assert sweep._write_seeds(str(tmp_path), [({'attack.splits': (2,)}, _rows(0.0))],
                            lines.append) == []
  assert not (tmp_path / 'seeds.json').exists() and not (tmp_path / 'seeds.csv').exists()
