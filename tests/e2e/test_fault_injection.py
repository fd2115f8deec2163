"""experiments/fault_injection.py: its comparison, its kills, and the command itself on train.

The command's own run (a reference run, two runs SIGKILLed and one resumed to the end) is
in the `paper` tier (`./launch.sh test -m paper tests/e2e/test_fault_injection.py`).
"""
import json
import os
import subprocess
import sys
import time

import pytest

from experiments import fault_injection

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REFERENCE = {
    'schema': 'medinv.results/1', 'experiment': 'train', 'wall_seconds': 6.8,
    'metrics': {'test_accuracy': 0.705, 'epochs': 3, 'dp_epsilon': 'inf', 'auc': float('nan')},
    'rows': [{'split': 'train', 'accuracy': 0.839, 'attack_seconds': 1.5},
             {'split': 'test', 'accuracy': 0.705, 'attack_seconds': 0.5}],
}


def _copy(results: dict) -> dict:
  return json.loads(json.dumps(results))


def test_results_that_differ_only_in_timing_fields_are_equal():
  resumed = _copy(REFERENCE)
  resumed['wall_seconds'] = 61.2
  resumed['rows'][1]['attack_seconds'] = 9.0
  assert fault_injection.first_difference(REFERENCE, resumed) is None


def test_a_different_metric_is_the_first_difference():
  resumed = _copy(REFERENCE)
  resumed['rows'][1]['accuracy'] = 0.71
  assert fault_injection.first_difference(REFERENCE, resumed) == '.rows[1].accuracy: 0.705 != 0.71'


@pytest.mark.parametrize('change, expected', [
    (lambda r: r['rows'].pop(), '.rows: 2 items != 1'),
    (lambda r: r['metrics'].pop('epochs'), '.metrics.epochs: missing in the resumed run'),
    (lambda r: r['metrics'].update(extra=1), ".metrics: only the resumed run has ['extra']"),
    (lambda r: r['metrics'].update(epochs=3.0), '.metrics.epochs: 3 != 3.0'),
])
def test_missing_extra_and_retyped_fields_are_differences(change, expected):
  resumed = _copy(REFERENCE)
  change(resumed)
  assert fault_injection.first_difference(REFERENCE, resumed) == expected


def _write(path, results: dict) -> None:
  os.makedirs(path, exist_ok=True)
  with open(os.path.join(path, 'results.json'), 'w') as f:
    json.dump(results, f)


def test_compare_workdirs_reads_every_results_json_below(tmp_path):
  for top in ('reference', 'resumed'):
    _write(tmp_path / top, REFERENCE)
    _write(tmp_path / top / 'run_a', REFERENCE)
  assert fault_injection.compare_workdirs(tmp_path / 'reference', tmp_path / 'resumed') is None
  changed = _copy(REFERENCE)
  changed['metrics']['test_accuracy'] = 0.7
  _write(tmp_path / 'resumed' / 'run_a', changed)
  assert fault_injection.compare_workdirs(tmp_path / 'reference', tmp_path / 'resumed') == (
      'run_a/results.json.metrics.test_accuracy: 0.705 != 0.7')
  os.remove(tmp_path / 'resumed' / 'run_a' / 'results.json')
  assert fault_injection.compare_workdirs(tmp_path / 'reference', tmp_path / 'resumed') == (
      "results.json files differ: reference ['results.json', 'run_a/results.json'], "
      "resumed ['results.json']")


def test_kill_moments_are_seeded_sorted_and_inside_the_run():
  moments = fault_injection.kill_moments(0, 10, 0.0, 15.0)
  assert moments == fault_injection.kill_moments(0, 10, 0.0, 15.0)
  assert moments != fault_injection.kill_moments(1, 10, 0.0, 15.0)
  assert len(moments) == 10 and all(0.0 < t < 15.0 for t in moments)
  assert moments == sorted(moments)


def test_kill_delays_add_the_start_up_each_resumed_run_pays():
  assert fault_injection.kill_delays([2.0, 5.0, 5.5], startup=3.0) == [2.0, 6.0, 3.5]


def test_run_kills_a_child_still_running_and_notes_one_that_ended(tmp_path):
  log = str(tmp_path / 'log')
  start = time.time()
  assert fault_injection.run([sys.executable, '-c', 'import time; time.sleep(60)'], log,
                             kill_after=0.5)[0]
  assert time.time() - start < 30
  marker = tmp_path / 'marker'
  landed, seen = fault_injection.run(
      [sys.executable, '-c', f'open({str(marker)!r}, "w").close()'], log, kill_after=30.0,
      watch=str(marker))
  assert not landed and seen is not None and seen < 30
  with pytest.raises(RuntimeError, match='exited with 3'):
    fault_injection.run([sys.executable, '-c', 'raise SystemExit(3)'], log)


@pytest.mark.paper  # a reference run and three more of experiments/train.py: about a minute
def test_train_killed_twice_and_resumed_passes(tmp_path, data_dir):
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='3', NO_GCE_CHECK='true',
             MEDINV_DATA_DIR=data_dir, JAX_PLATFORMS='cpu')
  done = subprocess.run(
      [sys.executable, '-m', 'experiments.fault_injection', '--experiment=train', '--kills=2',
       '--seed=0', f'--workdir={tmp_path / "faults"}'],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stdout + done.stderr[-3000:]
  lines = done.stdout.splitlines()
  assert [line.split(' at ')[0] for line in lines if line.startswith('kill ')] == [
      'kill 1/2', 'kill 2/2']
  assert lines[-1].startswith('PASS: train resumed after 2 kills (seed 0)'), done.stdout
  resumed = json.load(open(tmp_path / 'faults' / 'resumed' / 'results.json'))
  assert resumed['experiment'] == 'train' and resumed['metrics']['epochs'] == 3
