#!/usr/bin/env bash
# A throwaway local PostgreSQL server for the tests of shared tuning studies (Debian's postgresql package).
#   scripts/postgres.sh start DIR   initialise a cluster in DIR, start it on 127.0.0.1, create database ratecast_test;
#                                   prints the URL to export as RATECAST_TEST_POSTGRES
#   scripts/postgres.sh stop DIR    stop it (DIR, which start created, is then removed)
set -euo pipefail
cmd=${1:?start or stop}
dir=${2:?a folder for the cluster}
port=${RATECAST_TEST_POSTGRES_PORT:-54329}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "postgres.sh: PostgreSQL is not installed (apt-get install postgresql)" >&2
  exit 1
fi
as_owner() {  # initdb and postgres refuse to run as root: run them as the postgres user then
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
case "$cmd" in
  start)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust >/dev/null
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=50" start >/dev/null
    as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres ratecast_test
    echo "postgresql://postgres@127.0.0.1:$port/ratecast_test"
    ;;
  stop)
    if [ -d "$dir/data" ]; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
    fi
    rm -rf "$dir"
    ;;
  *) echo "postgres.sh: start or stop, got $cmd" >&2; exit 2 ;;
esac
