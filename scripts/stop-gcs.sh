#!/usr/bin/env bash
# Stop the fake-gcs-server started by scripts/start-gcs.sh.
#   BERTH_GCS_STATE=/tmp/berth-gcs  (as given to start-gcs.sh)
set -euo pipefail

STATE="${BERTH_GCS_STATE:-/tmp/berth-gcs}"
PIDFILE="${STATE}.pid"

if [[ -s "${PIDFILE}" ]] && kill -0 "$(cat "${PIDFILE}")" 2>/dev/null; then
    pid="$(cat "${PIDFILE}")"
    kill "${pid}"
    for _ in $(seq 1 50); do
        kill -0 "${pid}" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "${pid}" 2>/dev/null; then
        kill -9 "${pid}"
    fi
    echo "stop-gcs: stopped (pid ${pid})" >&2
else
    echo "stop-gcs: not running" >&2
fi
rm -f "${PIDFILE}"
