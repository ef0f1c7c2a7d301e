#!/usr/bin/env bash
# Stop the test PostgreSQL started by scripts/start-postgres.sh.
#   scripts/stop-postgres.sh [DATA_DIR]   (default DATA_DIR: /tmp/berth-pg)
# Pass --purge as a second argument to also delete the data directory and log.
set -euo pipefail

DATA="${1:-/tmp/berth-pg}"
if [[ -n "${PGBIN:-}" ]]; then
    :
elif command -v pg_config >/dev/null 2>&1 && [[ -x "$(pg_config --bindir)/pg_ctl" ]]; then
    PGBIN="$(pg_config --bindir)"
else
    PGBIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
fi
if [[ "$(id -u)" == 0 ]]; then
    as_pg() { runuser -u postgres -- "$@"; }
else
    as_pg() { "$@"; }
fi

if [[ -s "${DATA}/PG_VERSION" ]] && as_pg "${PGBIN}/pg_ctl" -D "${DATA}" status >/dev/null 2>&1; then
    as_pg "${PGBIN}/pg_ctl" -D "${DATA}" -m fast -w stop >&2
else
    echo "stop-postgres: not running (${DATA})" >&2
fi
if [[ "${2:-}" == "--purge" ]]; then
    rm -rf "${DATA}" "${DATA%/}.log"
fi
