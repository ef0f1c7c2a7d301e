#!/usr/bin/env bash
# Prints I/O figures for a local backend mounted through the service, next to
# `rclone mount` of the same directory (when rclone is installed) in the same
# run: sequential write and read (cold, then warm) of a file (default 1 GiB), `ls -l` of a
# 10,000-file directory cold and warm, and 1,000 creates; then the same
# through berth's rclone engine (the backend created with "engine": "rclone",
# so berth runs `rclone mount`: what the native engine buys); then all of it
# for an S3 backend served by s3s-fs, when it is installed. Figures, not a test.
#   scripts/bench-io.sh [SIZE_MIB] [BERTH_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
size_mib="${1:-1024}"
bin="${2:-target/release/berth}"
[[ -x "$bin" ]] || { echo "bench-io: build $bin first (cargo build --release --bin berth)" >&2; exit 1; }

dir="$(mktemp -d /tmp/berth-bench-io.XXXXXX)"
export BERTH_DATA_DIR="$dir/data" BERTH_LISTEN=127.0.0.1:0 BERTH_JWT_SECRET=bench BERTH_LOG=warn
export BERTH_LOCAL_ROOTS="$dir/local"
mkdir -p "$dir/local/store" "$dir/rclone"
pid=""; rpid=""; s3pid=""
cleanup() {
    [[ -n "$s3pid" ]] && { kill "$s3pid" 2>/dev/null || true; }
    [[ -n "$rpid" ]] && { fusermount3 -u "$dir/rclone" 2>/dev/null || true; kill "$rpid" 2>/dev/null || true; }
    [[ -n "$pid" ]] && { kill -TERM "$pid" 2>/dev/null || true; }
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

start_berth "$bin" "$dir"
token="$("$bin" token --org bench)"
backend="$(api -X POST "$base/api/v1/backends/local" -d "{\"root\": \"$dir/local/store\"}" | json_field id)"
mount_berth() { # mode name [remote_path] -> prints the mount path
    api -X POST "$base/api/v1/mounts" -d "{\"backend_id\": \"$backend\", \"mount_path\": \"$2\", \"remote_path\": \"${3:-}\", \"vfs_config\": {\"cache_mode\": \"$1\"}}" \
        | json_field mount_path
}
unmount_berth() { api -X DELETE "$base/api/v1/mounts/$(api "$base/api/v1/mounts" | json_field id)" >/dev/null; }
# Seconds a command took, or "failed" (a failed step is never timed).
secs() {
    local t0=$(date +%s%N)
    "$@" >/dev/null 2>&1 || { echo failed; return 0; }
    echo "scale=3; ($(date +%s%N) - $t0) / 1000000000" | bc
}
# What the read figures read: the file just written, except on S3 (below),
# and the file a local test server keeps it in, read into the page cache
# before the cold read so that the server's own disk reads are not measured.
read_file=big.bin
server_file=""
# Where the store keeps what the mounts write (a write-cache mode uploads
# after close): the cold read waits for the written file to be at rest there,
# so that it does not measure the upload running beside it.
store_dir="$dir/local/store"
mibps() { [[ $1 == failed ]] && echo failed || echo "scale=0; $size_mib / $1" | bc; }

run_suite() { # label mountpoint
    local m="$2" w r warm
    sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
    # Timed until the bytes are on disk: rclone answers `fsync` in `writes`
    # mode without syncing its cache file (1 GiB still dirty after `dd
    # conv=fsync` returns), so the `sync` after dd is what makes the figures
    # compare; for berth, which syncs, it finds nothing left.
    w=$(secs bash -c "dd if=/dev/zero of='$m/big.bin' bs=1M count=$size_mib conv=fsync && sync")
    for _ in $(seq 1 600); do
        [[ $(stat -c %s "$store_dir/big.bin" 2>/dev/null) == $((size_mib * 1048576)) ]] && break
        sleep 0.2
    done
    sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
    [[ -n "$server_file" ]] && cat "$server_file" >/dev/null
    r=$(secs dd if="$m/$read_file" of=/dev/null bs=1M)
    # Warm: the same file again, every cache left as the first read left it.
    warm=$(secs dd if="$m/$read_file" of=/dev/null bs=1M)
    rm -f "$m/big.bin"
    printf '%-26s write %6s MiB/s  read cold %6s MiB/s  warm %6s MiB/s' \
        "$1" "$(mibps "$w")" "$(mibps "$r")" "$(mibps "$warm")"
}

listing() { # label mountpoint(fresh)
    local cold warm creates
    cold=$(secs ls -l "$2/many")
    warm=$(secs ls -l "$2/many")
    # A fresh directory each time: s3s-fs cannot delete a prefix that is a
    # directory on its disk (500), so an earlier one may linger, empty.
    local created="$2/creates-$RANDOM$RANDOM"
    creates=$(secs bash -c "mkdir '$created' && for i in \$(seq 1 1000); do : > '$created/f\$i'; done")
    rm -rf "$created" 2>/dev/null || true
    printf '   ls -l 10k cold %ss warm %ss   1,000 creates %ss\n' "$cold" "$warm" "$creates"
}

bench_berth() { # label [remote_path]: every cache mode through the service
    local mode m
    for mode in off writes full; do
        m="$(mount_berth "$mode" "bench-$mode" "${2:-}")"
        run_suite "$1 berth cache=$mode" "$m"
        unmount_berth
        m="$(mount_berth "$mode" "bench-$mode" "${2:-}")"
        listing "berth" "$m"
        unmount_berth
    done
}

bench_rclone() { # label remote: rclone mount of the same data, same run
    command -v rclone >/dev/null 2>&1 || return 0
    local mode
    for mode in off writes; do
        for part in run_suite listing; do
            rclone mount "$2" "$dir/rclone" --vfs-cache-mode "$mode" --cache-dir "$dir/rclone-cache" >/dev/null 2>&1 &
            rpid=$!
            for _ in $(seq 1 100); do mountpoint -q "$dir/rclone" && break; sleep 0.1; done
            if [[ $part == run_suite ]]; then run_suite "$1 rclone cache=$mode" "$dir/rclone"; else listing "rclone" "$dir/rclone"; fi
            fusermount3 -u "$dir/rclone"; wait "$rpid" 2>/dev/null || true
            rpid=""
        done
    done
}

echo "size ${size_mib} MiB; machine: $(nproc) cores"
raw=$(secs dd if=/dev/zero of="$dir/local/raw.bin" bs=1M count="$size_mib" conv=fsync)
rraw=$(secs dd if="$dir/local/raw.bin" of=/dev/null bs=1M); rm -f "$dir/local/raw.bin"
printf '%-26s write %6s MiB/s  read %6s MiB/s\n' "raw disk" "$(mibps "$raw")" "$(mibps "$rraw")"

mkdir -p "$dir/local/store/many"
(cd "$dir/local/store/many" && seq 1 10000 | xargs touch)
bench_berth "local"
bench_rclone "local" "$dir/local/store"
if command -v rclone >/dev/null 2>&1; then
    backend="$(api -X POST "$base/api/v1/backends/local" -d "{\"root\": \"$dir/local/store\", \"engine\": \"rclone\"}" | json_field id)"
    bench_berth "local engine=rclone"
fi

# S3: s3s-fs (`cargo install s3s-fs --version 0.14.1 --locked --features
# binary`) serves a directory as buckets, checks keys and is fast enough not
# to be the bottleneck (moto copies whole objects for ranged reads).
if command -v s3s-fs >/dev/null 2>&1; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    mkdir -p "$dir/s3/bench/many"
    (cd "$dir/s3/bench/many" && seq 1 10000 | xargs touch)
    s3s-fs --host 127.0.0.1 --port "$port" --access-key benchkey --secret-key benchsecret "$dir/s3" >/dev/null 2>&1 &
    s3pid=$!
    for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
    backend="$(api -X POST "$base/api/v1/backends/s3" -d "{\"provider\": \"Other\", \"endpoint\": \"http://127.0.0.1:$port\", \"access_key_id\": \"benchkey\", \"secret_access_key\": \"benchsecret\", \"region\": \"us-east-1\"}" | json_field id)"
    # s3s-fs hashes a multipart object whole on every GET (it stores no ETag
    # for it), which real S3 does not: reads would measure that. So the read
    # figures read an object stored with one PUT (rclone's upload cutoff
    # raised), the same object for both, and s3s-fs serves it from the page
    # cache (parallel ranged reads of a cold file on this disk measure the
    # disk's seeks, not the client).
    if command -v rclone >/dev/null 2>&1; then
        dd if=/dev/urandom of="$dir/read.bin" bs=1M count="$size_mib" 2>/dev/null
        RCLONE_CONFIG=/dev/null rclone copyto "$dir/read.bin" ":s3,provider=Other,endpoint='http://127.0.0.1:$port',access_key_id=benchkey,secret_access_key=benchsecret,region=us-east-1:bench/read.bin" --s3-upload-cutoff 5Gi
        rm -f "$dir/read.bin"
        read_file=read.bin
        server_file="$dir/s3/bench/read.bin"
    fi
    store_dir="$dir/s3/bench"
    bench_berth "s3" "bench"
    export RCLONE_CONFIG_BENCHS3_TYPE=s3 RCLONE_CONFIG_BENCHS3_PROVIDER=Other \
        RCLONE_CONFIG_BENCHS3_ENDPOINT="http://127.0.0.1:$port" RCLONE_CONFIG_BENCHS3_ACCESS_KEY_ID=benchkey \
        RCLONE_CONFIG_BENCHS3_SECRET_ACCESS_KEY=benchsecret RCLONE_CONFIG_BENCHS3_REGION=us-east-1
    bench_rclone "s3" "benchs3:bench"
    backend="$(api -X POST "$base/api/v1/backends/s3" -d "{\"provider\": \"Other\", \"endpoint\": \"http://127.0.0.1:$port\", \"access_key_id\": \"benchkey\", \"secret_access_key\": \"benchsecret\", \"region\": \"us-east-1\", \"engine\": \"rclone\"}" | json_field id)"
    bench_berth "s3 engine=rclone" "bench"
    kill "$s3pid" 2>/dev/null || true
else
    echo "(no s3s-fs on PATH: S3 figures skipped)"
fi
