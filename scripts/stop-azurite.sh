#!/usr/bin/env bash
# Stop the Azurite started by scripts/start-azurite.sh (same BERTH_TEST_AZURE_PORT
# and BERTH_AZURITE_DIR). Its data is in memory and is gone afterwards.
set -euo pipefail

PORT="${BERTH_TEST_AZURE_PORT:-10000}"
if [[ -n "${BERTH_AZURITE_DIR:-}" ]]; then
    DIR="${BERTH_AZURITE_DIR}"
elif [[ -d /opt/berth-test/azurite && -w /opt/berth-test/azurite ]]; then
    DIR=/opt/berth-test/azurite
else
    DIR="${HOME}/.cache/berth/azurite"
fi
PIDFILE="${DIR}/azurite-${PORT}.pid"

if [[ ! -f "${PIDFILE}" ]]; then
    echo "stop-azurite: no pid file ${PIDFILE}; nothing to stop" >&2
    exit 0
fi
pid="$(cat "${PIDFILE}")"
if kill -0 "${pid}" 2>/dev/null; then
    kill "${pid}"
    for _ in $(seq 1 50); do
        kill -0 "${pid}" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "${pid}" 2>/dev/null; then
        kill -9 "${pid}" 2>/dev/null || true
    fi
    echo "stop-azurite: stopped pid ${pid}" >&2
else
    echo "stop-azurite: pid ${pid} was not running" >&2
fi
rm -f "${PIDFILE}"
