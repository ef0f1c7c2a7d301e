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
exec "$(dirname "$0")/stop-pidfile.sh" stop-azurite "${DIR}/azurite-${PORT}.pid"
