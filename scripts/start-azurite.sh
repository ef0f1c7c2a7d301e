#!/usr/bin/env bash
# Start Azurite (the Azure Blob Storage emulator) for berth's tests (idempotent).
#
#   scripts/start-azurite.sh
#   BERTH_TEST_AZURE_PORT=10000          blob port on 127.0.0.1
#   BERTH_AZURITE_DIR=...                install cache (default /opt/berth-test/azurite
#                                        when writable, else ~/.cache/berth/azurite)
#   BERTH_AZURITE_VERSION=...            npm version spec (default: latest)
#
# Installs Azurite with npm into the cache on first use (about 80 s), starts
# the blob service in the background with in-memory persistence (log and pid
# next to the install: azurite-<port>.log / .pid) unless one already answers
# on the port, waits until it answers, and prints the blob endpoint
# (http://127.0.0.1:<port>/devstoreaccount1) as the last line of stdout.
# Everything else goes to stderr, so this works:
#   export BERTH_TEST_AZURE_ENDPOINT=$(scripts/start-azurite.sh | tail -n1)
# The account is Azurite's well-known devstoreaccount1 and its documented key.
set -euo pipefail

PORT="${BERTH_TEST_AZURE_PORT:-10000}"
if [[ -n "${BERTH_AZURITE_DIR:-}" ]]; then
    DIR="${BERTH_AZURITE_DIR}"
elif mkdir -p /opt/berth-test/azurite 2>/dev/null && [[ -w /opt/berth-test/azurite ]]; then
    DIR=/opt/berth-test/azurite
else
    DIR="${HOME}/.cache/berth/azurite"
fi
MAIN="${DIR}/node_modules/azurite/dist/src/blob/main.js"
LOG="${DIR}/azurite-${PORT}.log"
PIDFILE="${DIR}/azurite-${PORT}.pid"
ENDPOINT="http://127.0.0.1:${PORT}/devstoreaccount1"

log() { echo "start-azurite: $*" >&2; }

command -v node >/dev/null 2>&1 || { log "node is not installed (Debian 'nodejs' and 'npm')"; exit 1; }

# Any HTTP answer (Azurite replies 400/403 to a bare GET) means it is up.
answers() {
    local code
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "${ENDPOINT}?comp=list" 2>/dev/null || true)"
    [[ -n "${code}" && "${code}" != 000 ]]
}

if [[ ! -f "${MAIN}" ]]; then
    log "installing azurite into ${DIR} (about 80 s)"
    mkdir -p "${DIR}"
    started=$(date +%s)
    npm install --prefix "${DIR}" --no-audit --no-fund --loglevel=error \
        "azurite@${BERTH_AZURITE_VERSION:-latest}" >&2
    log "installed in $(( $(date +%s) - started )) s"
fi

if answers; then
    log "already answering on 127.0.0.1:${PORT}"
else
    log "starting on 127.0.0.1:${PORT} (log: ${LOG})"
    started=$(date +%s%N)
    nohup node "${MAIN}" --blobHost 127.0.0.1 --blobPort "${PORT}" \
        --inMemoryPersistence --disableTelemetry \
        >"${LOG}" 2>&1 </dev/null &
    echo $! >"${PIDFILE}"
    # Generous: under a saturated 2-core build node takes long to start.
    deadline=$((SECONDS + ${BERTH_START_TIMEOUT:-180}))
    while ((SECONDS < deadline)); do
        if answers; then break; fi
        if ! kill -0 "$(cat "${PIDFILE}")" 2>/dev/null; then
            log "azurite exited; see ${LOG}"
            tail -n 20 "${LOG}" >&2 || true
            exit 1
        fi
        sleep 0.1
    done
    answers || { log "azurite did not answer within ${BERTH_START_TIMEOUT:-180} s; see ${LOG}"; exit 1; }
    log "answering after $(( ($(date +%s%N) - started) / 1000000 )) ms"
fi

echo "${ENDPOINT}"
