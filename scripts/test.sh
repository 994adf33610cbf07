#!/usr/bin/env bash
# Set up, then run the whole test suite. Extra arguments go to pytest (e.g. -m "not slow").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "maps,test"
export RATECAST_DATA=${RATECAST_DATA:-$(cd .. && pwd)/shared/data}
exec .venv/bin/python -m pytest "$@"
