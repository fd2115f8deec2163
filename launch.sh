#!/usr/bin/env bash
# medinv launcher: sets up .venv (requirements.txt, then medinv itself with `pip install -e .`;
# both again when requirements.txt or pyproject.toml change), then runs from the repository
# root, where experiments/ and configs/ are imported from.
#   ./launch.sh demo                 the main study on the embedded data
#   ./launch.sh test [pytest args]   the fast tests; `test -m e2e` the end-to-end tier (CI: both)
#   ./launch.sh paper --manual_dir DIR   the same study at paper scale on downloaded data
#   ./launch.sh dp                   DP-SGD training against every attack (configs/dp.py)
#   ./launch.sh --list_datasets      every dataset, its options and download instructions
#   ./launch.sh <experiment> [flags] any experiments/<experiment>.py, e.g. train --config configs/train_heart.py
set -euo pipefail
cd "$(dirname "$0")"

VENV=.venv
STAMP="$VENV/.requirements.sha256"
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "[launch] installing requirements and medinv into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements.txt
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e .
  echo "$want" > "$STAMP"
fi
PY="$VENV/bin/python"
# TFDS without TensorFlow: keep its logging quiet and never reach for GCS.
export TF_CPP_MIN_LOG_LEVEL=3 NO_GCE_CHECK=true

usage() {
  echo "usage: ./launch.sh {demo|test|paper|dp|--list_datasets|<experiment>} [flags]"
  echo "experiments: $(cd experiments && ls *.py | grep -v '^_' | sed 's/\.py$//' | tr '\n' ' ')"
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  test)
    exec "$PY" -m pytest -q tests "$@" ;;
  ""|-h|--help|help)
    usage ;;
  --list_datasets|datasets)
    exec "$PY" -c 'from medinv import data; print(data.list_datasets())' ;;
  demo)
    exec "$PY" -m experiments.demo "$@" ;;
  dp)
    exec "$PY" -m experiments.demo --config configs/dp.py --workdir runs/dp "$@" ;;
  paper)
    exec "$PY" -m experiments.demo --config configs/paper.py --workdir runs/paper "$@" ;;
  *)
    if [ -f "experiments/$cmd.py" ]; then
      exec "$PY" -m "experiments.$cmd" "$@"
    fi
    echo "unknown command '$cmd'" >&2; usage >&2; exit 2 ;;
esac
