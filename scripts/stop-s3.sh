#!/usr/bin/env bash
# Stop the S3 test server started by scripts/start-s3.sh and remove its pid
# and env files (its data lives in memory and goes with it).
#   BERTH_TEST_S3_PORT=9000   (the port it was started on)
set -euo pipefail

BASE="/tmp/berth-s3-${BERTH_TEST_S3_PORT:-9000}"
"$(dirname "$0")/stop-pidfile.sh" stop-s3 "${BASE}.pid"
rm -f "${BASE}.env" "${BASE}-server.py"
