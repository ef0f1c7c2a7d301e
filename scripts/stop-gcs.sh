#!/usr/bin/env bash
# Stop the fake-gcs-server started by scripts/start-gcs.sh.
#   BERTH_GCS_STATE=/tmp/berth-gcs  (as given to start-gcs.sh)
set -euo pipefail

exec "$(dirname "$0")/stop-pidfile.sh" stop-gcs "${BERTH_GCS_STATE:-/tmp/berth-gcs}.pid"
