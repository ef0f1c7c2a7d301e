#!/usr/bin/env bash
# Compares berth binaries on one figure in alternating rounds: each round
# starts every binary once, on a fresh data dir, mounts a local backend in
# MODE and times a sequential `dd conv=fsync` write of SIZE_MIB (or, with
# WHAT=read, a cold read of a file written through the mount). Alternating
# is what makes a change visible on a disk whose speed swings between
# minutes (docs/BENCHMARKS.md). Figures, not a test.
#   scripts/bench-ab.sh ROUNDS SIZE_MIB MODE BINARY...
#   WHAT=read scripts/bench-ab.sh 4 512 off target/release/berth /tmp/berth-old
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"
[[ $# -ge 4 ]] || { sed -n 2,9p "$0" >&2; exit 2; }
rounds=$1 size_mib=$2 mode=$3
shift 3
what="${WHAT:-write}"

one() { # binary -> prints MiB/s (run in a subshell: $(one ...))
    local bin=$1 dir pid base token backend m t0 t1
    dir="$(mktemp -d /tmp/berth-bench-ab.XXXXXX)"
    mkdir -p "$dir/local/store"
    export BERTH_DATA_DIR="$dir/data" BERTH_LISTEN=127.0.0.1:0 BERTH_JWT_SECRET=bench BERTH_LOG=warn \
        BERTH_LOCAL_ROOTS="$dir/local"
    start_berth "$bin" "$dir"
    token="$("$bin" token --org bench)"
    backend="$(api -X POST "$base/api/v1/backends/local" -d "{\"root\": \"$dir/local/store\"}" | json_field id)"
    m="$(mount_berth "$mode" ab)"
    sync
    t0=$(date +%s%N)
    dd if=/dev/zero of="$m/ab.bin" bs=1M count="$size_mib" conv=fsync 2>/dev/null
    t1=$(date +%s%N)
    if [[ $what == read ]]; then
        sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
        t0=$(date +%s%N)
        dd if="$m/ab.bin" of=/dev/null bs=1M 2>/dev/null
        t1=$(date +%s%N)
    fi
    echo $(( size_mib * 1000000000 / (t1 - t0) ))
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
}

echo "$what ${size_mib} MiB, cache mode $mode, MiB/s per round:"
for round in $(seq 1 "$rounds"); do
    line="round $round:"
    for bin in "$@"; do line+="  $(basename "$bin") $(one "$bin")"; done
    echo "$line"
done
