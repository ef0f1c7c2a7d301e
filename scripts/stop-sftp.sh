#!/usr/bin/env bash
# Stop the sshd started by scripts/start-sftp.sh.
#   BERTH_SFTP_STATE=/tmp/berth-sftp  (as given to start-sftp.sh)
set -euo pipefail

STATE="${BERTH_SFTP_STATE:-/tmp/berth-sftp}"
PIDFILE="${STATE}/sshd.pid"

if [[ -s "${PIDFILE}" ]] && kill -0 "$(cat "${PIDFILE}")" 2>/dev/null; then
    pid="$(cat "${PIDFILE}")"
    kill "${pid}"
    for _ in $(seq 1 50); do
        kill -0 "${pid}" 2>/dev/null || break
        sleep 0.1
    done
    echo "stop-sftp: stopped (pid ${pid})" >&2
else
    echo "stop-sftp: not running" >&2
fi
rm -f "${PIDFILE}"
