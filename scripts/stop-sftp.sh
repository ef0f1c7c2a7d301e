#!/usr/bin/env bash
# Stop the sshd started by scripts/start-sftp.sh.
#   BERTH_SFTP_STATE=/tmp/berth-sftp  (as given to start-sftp.sh)
set -euo pipefail

exec "$(dirname "$0")/stop-pidfile.sh" stop-sftp "${BERTH_SFTP_STATE:-/tmp/berth-sftp}/sshd.pid"
