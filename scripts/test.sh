#!/usr/bin/env bash
# Set up, then run the whole test suite. Extra arguments go to pytest (e.g. -m "not slow").
# Where PostgreSQL is installed, a throwaway server runs for the tests of shared tuning studies and is stopped at
# the end (scripts/postgres.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "maps,test"
export RATECAST_DATA=${RATECAST_DATA:-$(cd .. && pwd)/shared/data}
if [ -z "${RATECAST_TEST_POSTGRES:-}" ] && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  pgdir=$(mktemp -d "${TMPDIR:-/tmp}/ratecast-pg.XXXXXX")
  trap 'bash scripts/postgres.sh stop "$pgdir"' EXIT
  RATECAST_TEST_POSTGRES=$(bash scripts/postgres.sh start "$pgdir")
  export RATECAST_TEST_POSTGRES
fi
.venv/bin/python -m pytest "$@"
