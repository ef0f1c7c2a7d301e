#!/usr/bin/env bash
# Prints I/O figures for a local backend mounted through the service, next to
# `rclone mount` of the same directory (when rclone is installed) in the same
# run: sequential write and read (cold, then warm) of a file (default 1 GiB), `ls -l` of a
# 10,000-file directory cold and warm, and 1,000 creates. Figures, not a test.
#   scripts/bench-io.sh [SIZE_MIB] [BERTH_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib="${1:-1024}"
bin="${2:-target/release/berth}"
[[ -x "$bin" ]] || { echo "bench-io: build $bin first (cargo build --release --bin berth)" >&2; exit 1; }

dir="$(mktemp -d /tmp/berth-bench-io.XXXXXX)"
export BERTH_DATA_DIR="$dir/data" BERTH_LISTEN=127.0.0.1:0 BERTH_JWT_SECRET=bench BERTH_LOG=warn
export BERTH_LOCAL_ROOTS="$dir/local"
mkdir -p "$dir/local/store" "$dir/rclone"
pid=""; rpid=""
cleanup() {
    [[ -n "$rpid" ]] && { fusermount3 -u "$dir/rclone" 2>/dev/null || true; kill "$rpid" 2>/dev/null || true; }
    [[ -n "$pid" ]] && kill -TERM "$pid" 2>/dev/null
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

"$bin" serve >"$dir/out" 2>"$dir/log" &
pid=$!
for _ in $(seq 1 200); do base="$(sed -n 's/^berth listening on //p' "$dir/out")"; [[ -n "$base" ]] && break; sleep 0.05; done
token="$("$bin" token --org bench)"
api() { curl -s -H "Authorization: Bearer $token" "$@"; }
backend="$(api -X POST "$base/api/v1/backends/local" -d "{\"root\": \"$dir/local/store\"}" | sed 's/.*"id":"\([0-9a-f]*\)".*/\1/')"
mount_berth() { # mode name -> prints the mount path
    api -X POST "$base/api/v1/mounts" -d "{\"backend_id\": \"$backend\", \"mount_path\": \"$2\", \"vfs_config\": {\"cache_mode\": \"$1\"}}" \
        | sed 's/.*"mount_path":"\([^"]*\)".*/\1/'
}
unmount_berth() { api -X DELETE "$base/api/v1/mounts/$(api "$base/api/v1/mounts" | sed 's/.*"id":"\(mount_[0-9a-f]*\)".*/\1/')" >/dev/null; }
secs() { local t0=$(date +%s%N); "$@" >/dev/null 2>&1; echo "scale=3; ($(date +%s%N) - $t0) / 1000000000" | bc; }
mibps() { echo "scale=0; $size_mib / $1" | bc; }

run_suite() { # label mountpoint
    local m="$2" w r warm
    sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
    w=$(secs dd if=/dev/zero of="$m/big.bin" bs=1M count="$size_mib" conv=fsync)
    sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
    r=$(secs dd if="$m/big.bin" of=/dev/null bs=1M)
    # Warm: the same file again, every cache left as the first read left it.
    warm=$(secs dd if="$m/big.bin" of=/dev/null bs=1M)
    rm -f "$m/big.bin"
    printf '%-26s write %6s MiB/s  read cold %6s MiB/s  warm %6s MiB/s' \
        "$1" "$(mibps "$w")" "$(mibps "$r")" "$(mibps "$warm")"
}

listing() { # label mountpoint(fresh)
    local cold warm creates
    cold=$(secs ls -l "$2/many")
    warm=$(secs ls -l "$2/many")
    creates=$(secs bash -c "mkdir -p '$2/creates' && for i in \$(seq 1 1000); do : > '$2/creates/f\$i'; done")
    rm -rf "$2/creates"
    printf '   ls -l 10k cold %ss warm %ss   1,000 creates %ss\n' "$cold" "$warm" "$creates"
}

mkdir -p "$dir/local/store/many"
(cd "$dir/local/store/many" && seq 1 10000 | xargs touch)
echo "size ${size_mib} MiB; machine: $(nproc) cores"
raw=$(secs dd if=/dev/zero of="$dir/local/raw.bin" bs=1M count="$size_mib" conv=fsync)
rraw=$(secs dd if="$dir/local/raw.bin" of=/dev/null bs=1M); rm -f "$dir/local/raw.bin"
printf '%-26s write %6s MiB/s  read %6s MiB/s\n' "raw disk" "$(mibps "$raw")" "$(mibps "$rraw")"
for mode in off writes full; do
    m="$(mount_berth "$mode" "bench-$mode")"
    run_suite "berth cache=$mode" "$m"
    unmount_berth
    m="$(mount_berth "$mode" "bench-$mode")"
    listing "berth" "$m"
    unmount_berth
done
if command -v rclone >/dev/null 2>&1; then
    for mode in off writes; do
        rclone mount "$dir/local/store" "$dir/rclone" --vfs-cache-mode "$mode" --cache-dir "$dir/rclone-cache" >/dev/null 2>&1 &
        rpid=$!
        for _ in $(seq 1 100); do mountpoint -q "$dir/rclone" && break; sleep 0.1; done
        run_suite "rclone cache=$mode" "$dir/rclone"
        fusermount3 -u "$dir/rclone"; wait "$rpid" 2>/dev/null || true
        rclone mount "$dir/local/store" "$dir/rclone" --vfs-cache-mode "$mode" --cache-dir "$dir/rclone-cache" >/dev/null 2>&1 &
        rpid=$!
        for _ in $(seq 1 100); do mountpoint -q "$dir/rclone" && break; sleep 0.1; done
        listing "rclone" "$dir/rclone"
        fusermount3 -u "$dir/rclone"; wait "$rpid" 2>/dev/null || true
        rpid=""
    done
fi
