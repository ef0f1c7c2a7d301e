#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for berth's tests (idempotent).
#
#   scripts/start-postgres.sh [DATA_DIR]        (default DATA_DIR: /tmp/berth-pg)
#   BERTH_TEST_PG_PORT=55432                     (TCP port on 127.0.0.1)
#
# Creates the cluster on first use, starts it if it is not running (restarts
# it if it runs on another port), ensures role `berth` (password `berth`) and
# database `berth`, and prints the connection URL as the last line of stdout.
# Everything else goes to stderr, so this works:
#   export BERTH_TEST_POSTGRES_URL=$(scripts/start-postgres.sh | tail -n1)
# The server is tuned for tests (fsync off): never use it for real data.
set -euo pipefail

PORT="${BERTH_TEST_PG_PORT:-55432}"
DATA="${1:-/tmp/berth-pg}"
LOG="${DATA%/}.log"

log() { echo "start-postgres: $*" >&2; }

# Locate the server binaries (Debian keeps them out of PATH).
if [[ -n "${PGBIN:-}" ]]; then
    :
elif command -v pg_config >/dev/null 2>&1 && [[ -x "$(pg_config --bindir)/initdb" ]]; then
    PGBIN="$(pg_config --bindir)"
else
    PGBIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
fi
if [[ -z "${PGBIN}" || ! -x "${PGBIN}/initdb" ]]; then
    log "PostgreSQL server binaries not found (install Debian 'postgresql' or set PGBIN)"
    exit 1
fi

# PostgreSQL refuses to run as root: run it as the `postgres` user then.
if [[ "$(id -u)" == 0 ]]; then
    as_pg() { runuser -u postgres -- "$@"; }
    SUPERUSER=postgres
else
    as_pg() { "$@"; }
    SUPERUSER="$(id -un)"
fi

if [[ ! -s "${DATA}/PG_VERSION" ]]; then
    log "initialising cluster in ${DATA}"
    mkdir -p "${DATA}"
    chmod 700 "${DATA}"
    [[ "$(id -u)" == 0 ]] && chown postgres:postgres "${DATA}"
    as_pg "${PGBIN}/initdb" -D "${DATA}" -U "${SUPERUSER}" -E UTF8 \
        --auth-local=trust --auth-host=scram-sha-256 >&2
    cat >>"${DATA}/postgresql.conf" <<CONF
# berth test settings
listen_addresses = '127.0.0.1'
unix_socket_directories = '${DATA}'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
fi

if [[ "$(id -u)" == 0 ]]; then
    touch "${LOG}" && chown postgres:postgres "${LOG}"
fi

running_port() {
    # Line 4 of postmaster.pid is the port of a running server.
    if as_pg "${PGBIN}/pg_ctl" -D "${DATA}" status >/dev/null 2>&1; then
        sed -n 4p "${DATA}/postmaster.pid"
    fi
}

current="$(running_port)"
if [[ -n "${current}" && "${current}" != "${PORT}" ]]; then
    log "running on port ${current}; restarting on ${PORT}"
    as_pg "${PGBIN}/pg_ctl" -D "${DATA}" -m fast -w stop >&2
    current=""
fi
if [[ -z "${current}" ]]; then
    log "starting on 127.0.0.1:${PORT} (log: ${LOG})"
    as_pg "${PGBIN}/pg_ctl" -D "${DATA}" -l "${LOG}" -o "-p ${PORT}" -w -t 60 start >&2
else
    log "already running on 127.0.0.1:${PORT}"
fi

psql_su() {
    as_pg "${PGBIN}/psql" -X -q -v ON_ERROR_STOP=1 -h "${DATA}" -p "${PORT}" \
        -U "${SUPERUSER}" -d postgres "$@"
}
psql_su >&2 <<'SQL'
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'berth') THEN
        CREATE ROLE berth LOGIN CREATEDB PASSWORD 'berth';
    ELSE
        ALTER ROLE berth LOGIN CREATEDB PASSWORD 'berth';
    END IF;
END
$$;
SQL
if [[ "$(psql_su -tAc "SELECT 1 FROM pg_database WHERE datname = 'berth'")" != 1 ]]; then
    psql_su -c "CREATE DATABASE berth OWNER berth" >&2
fi

echo "postgres://berth:berth@127.0.0.1:${PORT}/berth"
