#!/usr/bin/env bash
# Creates .venv (if missing) and installs ratecast with the given extras. Usage: scripts/setup.sh [extras]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
extras=${1:-}
.venv/bin/python -m pip install -q -e ".${extras:+[$extras]}"
