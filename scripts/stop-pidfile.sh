#!/usr/bin/env bash
# Stops the process whose pid a test server's start script wrote, and
# removes the pid file: SIGTERM, then SIGKILL if it is still there after 5 s.
# Used by the stop-*.sh scripts.
#   scripts/stop-pidfile.sh NAME PIDFILE
set -euo pipefail
name="$1"
pidfile="$2"

if [[ -s "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    pid="$(cat "$pidfile")"
    kill "$pid"
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -9 "$pid" 2>/dev/null || true
    fi
    echo "$name: stopped (pid ${pid})" >&2
else
    echo "$name: not running" >&2
fi
rm -f "$pidfile"
