#!/usr/bin/env bash
# Prints the RSS that idle mounts cost and how long a restart takes to
# restore them all: N mounts (default 200) of one memory backend, through the
# API, on a throwaway data dir. Figures, not a test.
#   scripts/bench-mounts.sh [N] [BERTH_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
n="${1:-200}"
bin="${2:-target/release/berth}"
[[ -x "$bin" ]] || { echo "bench-mounts: build $bin first (cargo build --release --bin berth)" >&2; exit 1; }

dir="$(mktemp -d /tmp/berth-bench.XXXXXX)"
export BERTH_DATA_DIR="$dir/data" BERTH_LISTEN=127.0.0.1:0 BERTH_JWT_SECRET=bench BERTH_LOG=warn
pid=""
stop() { kill -TERM "$pid"; wait "$pid" || true; }
cleanup() { [[ -n "$pid" ]] && kill -TERM "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
active() { api "$base/api/v1/mounts" | grep -o '"status":"active"' | wc -l; }

start_berth "$bin" "$dir"
token="$("$bin" token --org bench)"
backend="$(api -X POST "$base/api/v1/backends/memory" -d '{}' | json_field id)"
before="$(rss_kib)"
for i in $(seq 1 "$n"); do
    api -o /dev/null -X POST "$base/api/v1/mounts" \
        -d "{\"backend_id\": \"$backend\", \"mount_path\": \"m$i\"}"
done
sleep 2
after="$(rss_kib)"
echo "mounts: $(active) of $n active"
echo "rss: ${before} KiB before, ${after} KiB with $n idle mounts: $(( (after - before) / n )) KiB per mount"

stop
t0=$(date +%s%N)
start_berth "$bin" "$dir"
while (( $(active) < n )); do sleep 0.05; done
echo "restore: $n mounts active $(( ($(date +%s%N) - t0) / 1000000 )) ms after the restart began"
stop
pid=""
