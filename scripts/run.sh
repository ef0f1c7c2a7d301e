#!/usr/bin/env bash
# Builds berth and runs it on its embedded defaults (SQLite in ./data,
# http://127.0.0.1:8080). Any BERTH_* variable overrides a default.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh
cargo build --release --bin berth
exec target/release/berth serve "$@"
