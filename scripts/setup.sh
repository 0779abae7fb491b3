#!/usr/bin/env bash
# Make .venv (once) and install ibhooks with every extra and the dev tools into it.
# torch is installed first, pinned to the CPU wheel 2.13.0, so that the package's own
# `torch>=2.1` requirement is already met and pip never fetches a CUDA build.
# Override with IBHOOKS_TORCH="torch==X.Y" (e.g. on a GPU machine) if you need another build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
  "$VPY" -m pip install -q "${IBHOOKS_TORCH:-torch==2.13.0}"
fi
stamp=.venv/.ibhooks-installed
# setup.py and the C files build the optional compiled kNN kernel: a change to any reinstalls too
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ] \
   || [ -n "$(find ibhooks/estimators/knn_kernel -newer "$stamp" 2>/dev/null)" ]; then
  "$VPY" -m pip install -q -e ".[all,dev]"
  touch "$stamp"
fi
