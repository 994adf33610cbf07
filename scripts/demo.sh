#!/usr/bin/env bash
# The main job: set up, then train + evaluate + report on MovieLens-100k.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh maps
exec .venv/bin/ratecast demo "$@"
