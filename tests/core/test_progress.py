"""Progress lines (medinv.core.progress.Stages): the time left is the work left x the seconds
per unit of work measured in the run (planted paces on a fake clock), none before anything is
measured, reused parts kept out of the pace, and the makespan of parts side by side."""
import io

import pytest

from medinv.core import progress


@pytest.fixture
def clock(monkeypatch):
  now = [100.0]
  monkeypatch.setattr(progress.time, 'time', lambda: now[0])
  return now


@pytest.mark.parametrize('seconds_per_unit,elapsed,left', [(0.5, '6s', '10s'),
                                                            (3.0, '31s', '1m00s')])
def test_time_left_is_the_work_left_times_the_measured_pace(clock, seconds_per_unit, elapsed,
                                                            left):
  lines = io.StringIO()
  stages = progress.Stages(['a', 'b', 'c'], [10.0, 30.0, 20.0], stream=lines)
  assert stages.order == [0, 1, 2]
  assert stages.pace() is None and stages.remaining() is None  # nothing measured yet
  stages.begin(0)
  assert lines.getvalue().splitlines()[0] == (
      '[1/3] a  (elapsed 0s, time left: after the first part)')
  clock[0] += 10.0 * seconds_per_unit  # 'a' (10 units) at the planted pace
  stages.end(0)
  assert stages.pace() == pytest.approx(seconds_per_unit)
  assert stages.remaining() == pytest.approx(50.0 * seconds_per_unit)
  stages.begin(1)
  clock[0] += 1.0  # 'b' was reused: neither its second nor its work sets the pace
  stages.end(1, reused=True)
  assert stages.pace() == pytest.approx(seconds_per_unit)
  assert stages.remaining() == pytest.approx(20.0 * seconds_per_unit)
  stages.begin(2, 'heart_disease')
  assert lines.getvalue().splitlines()[-1] == (
      f'[3/3] c: heart_disease  (elapsed {elapsed}, ~{left} left)')


def test_pace_pools_every_measured_part(clock):
  stages = progress.Stages(['a', 'b', 'c'], [4.0, 6.0, 10.0])
  stages.begin(0)
  clock[0] += 8.0  # 2 s per unit
  stages.end(0)
  assert stages.remaining() == pytest.approx(16 * 2.0)
  stages.begin(1)
  clock[0] += 6.0  # 1 s per unit: (8 + 6) s over (4 + 6) units
  stages.end(1)
  assert stages.pace() == pytest.approx(1.4)
  assert stages.remaining() == pytest.approx(10 * 1.4)


def test_reused_or_skipped_parts_give_no_pace(clock):
  lines = io.StringIO()
  stages = progress.Stages(['a', 'b'], [10.0, 30.0], stream=lines)
  stages.begin(0)
  clock[0] += 2.0
  stages.end(0, 'reused earlier results', reused=True)
  assert stages.pace() is None and stages.remaining() is None
  stages.begin(1)
  assert lines.getvalue().splitlines()[-1] == (
      '[2/2] b  (elapsed 2s, time left: after the first part)')


def test_time_left_with_two_workers_is_the_makespan_heaviest_first(clock):
  lines = io.StringIO()
  stages = progress.Stages(['a', 'b', 'c', 'd'], [10.0, 40.0, 20.0, 15.0], stream=lines,
                           workers=2)
  assert stages.order == [1, 2, 3, 0]
  stages.begin(1)
  stages.begin(2)
  assert stages.remaining() is None
  clock[0] += 10.0  # c (20 units) finished in 10 s, beside b: the pace is 0.5
  stages.end(2)
  # b has 40 * 0.5 - 10 = 10 s left; d (7.5) then a (5) on the free worker.
  assert stages.remaining() == 12.5
  stages.begin(3)
  assert lines.getvalue().splitlines()[-1].startswith('[3/4] d')
  clock[0] += 20.0  # b and d overran: nothing negative is left
  assert stages.remaining() == 5.0
  stages.end(1)
  stages.end(3)
  stages.begin(0)
  # c, b and d took 10, 30 and 20 s for 20, 40 and 15 units: a (10 units) takes 8 s.
  assert stages.remaining() == pytest.approx(8.0)
