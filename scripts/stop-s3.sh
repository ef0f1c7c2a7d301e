#!/usr/bin/env bash
# Stop the S3 test server started by scripts/start-s3.sh and remove its pid
# and env files (its data lives in memory and goes with it).
#   BERTH_TEST_S3_PORT=9000   (the port it was started on)
set -euo pipefail

PORT="${BERTH_TEST_S3_PORT:-9000}"
BASE="/tmp/berth-s3-${PORT}"
PIDFILE="${BASE}.pid"

if [[ -s "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    pid="$(cat "$PIDFILE")"
    kill "$pid"
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -9 "$pid"
    fi
    echo "stop-s3: stopped moto on 127.0.0.1:${PORT} (pid ${pid})" >&2
else
    echo "stop-s3: not running on 127.0.0.1:${PORT}" >&2
fi
rm -f "$PIDFILE" "${BASE}.env" "${BASE}-server.py"
