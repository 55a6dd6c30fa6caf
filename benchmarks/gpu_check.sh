#!/usr/bin/env bash
# The prepared GPU check (details: benchmarks/gpu_check.py). On a machine with one GPU:
#     benchmarks/gpu_check.sh                        # finishes within 8 minutes
#     OUT=/some/folder benchmarks/gpu_check.sh       # also writes gpu_check.md, gpu_check.json, gpu_tests.log there
#     benchmarks/gpu_check.sh --device cpu --quick   # tiny sizes on a CPU: shows that every part runs
# Python: $PYTHON, else .venv/bin/python, else python on the PATH; this checkout's src/ comes first.
# The whole check stops after $GPU_CHECK_TIMEOUT seconds (465, under 8 minutes with the 10 s kill grace);
# what was measured by then is kept.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python; fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export WANDB_MODE="${WANDB_MODE:-offline}" WANDB_SILENT=true
# SIGINT first: the script records the section it was in as stopped and keeps the others' numbers.
timeout --signal=INT --kill-after=10 "${GPU_CHECK_TIMEOUT:-465}" "$PY" benchmarks/gpu_check.py "$@"
status=$?
if [ "$status" -eq 124 ]; then echo "gpu_check.sh: stopped by the ${GPU_CHECK_TIMEOUT:-465} s time limit" >&2; fi
exit "$status"
