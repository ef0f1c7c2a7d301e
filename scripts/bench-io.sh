#!/usr/bin/env bash
# Prints I/O figures for a local backend mounted through the service, next to
# `rclone mount` of the same directory (when rclone is installed) in the same
# run: sequential write and read (cold, then warm) of a file (default 1 GiB), `ls -l` of a
# 10,000-file directory cold and warm, and 1,000 creates; then the same
# through berth's rclone engine (the backend created with "engine": "rclone",
# so berth runs `rclone mount`: what the native engine buys); then all of it
# for an S3 backend served by `rclone serve s3`, after what the server itself
# gives to curl. Each write and cold read also prints the CPU
# time the client (berth, or rclone) spent per GiB. Figures, not a test.
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
# Removes every mount, and stops the bench if one stays (a later mount at
# the same path would be refused, and the figures would be of nothing).
unmount_berth() {
    local id answer
    for id in $(api "$base/api/v1/mounts" | grep -o '"id":"mount_[0-9a-f]*"' | cut -d'"' -f4); do
        answer="$(api -X DELETE "$base/api/v1/mounts/$id")"
        [[ $answer == *'"success":true'* ]] || { echo "bench-io: unmount failed: $answer" >&2; exit 1; }
    done
}
# Seconds a command took, or "failed" (a failed step is never timed).
secs() {
    local t0=$(date +%s%N)
    "$@" >/dev/null 2>&1 || { echo failed; return 0; }
    echo "scale=3; ($(date +%s%N) - $t0) / 1000000000" | bc
}
# Where the store keeps what the mounts write (a write-cache mode uploads
# after close): the cold read waits for the written file to be at rest there,
# so that it does not measure the upload running beside it. Before the cold
# read, warm_store readies a test server (S3) the way a real store is ready:
# its file in the page cache, so that the server's own disk reads are not
# measured.
stored_file="$dir/local/store/big.bin"
warm_store() { :; }
mibps() { [[ $1 == failed ]] && echo failed || echo "scale=0; $size_mib / $1" | bc; }
# CPU ticks used so far by a process and its children (berth's rclone
# engine runs `rclone mount` as a child).
ticks() {
    local p total=0
    for p in "$1" $(pgrep -P "$1" || true); do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}
# CPU seconds per GiB from ticks $1 to $2.
cpu_per_gib() { echo "scale=2; ($2 - $1) * 1024 / $size_mib / $(getconf CLK_TCK)" | bc; }

run_suite() { # label mountpoint client-pid
    local m="$2" w r warm t0 t1 t2 t3
    sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
    t0=$(ticks "$3")
    # Timed until the bytes are on disk: rclone answers `fsync` in `writes`
    # mode without syncing its cache file (1 GiB still dirty after `dd
    # conv=fsync` returns), so the `sync` after dd is what makes the figures
    # compare; for berth, which syncs, it finds nothing left.
    w=$(secs bash -c "dd if=/dev/zero of='$m/big.bin' bs=1M count=$size_mib conv=fsync && sync")
    for _ in $(seq 1 600); do
        [[ $(stat -c %s "$stored_file" 2>/dev/null) == $((size_mib * 1048576)) ]] && break
        sleep 0.2
    done
    # The write's CPU includes the upload after close (write-cache modes).
    t1=$(ticks "$3")
    sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
    warm_store
    t2=$(ticks "$3")
    r=$(secs dd if="$m/big.bin" of=/dev/null bs=1M)
    t3=$(ticks "$3")
    # Warm: the same file again, every cache left as the first read left it.
    warm=$(secs dd if="$m/big.bin" of=/dev/null bs=1M)
    rm -f "$m/big.bin"
    printf '%-26s write %6s MiB/s  read cold %6s MiB/s  warm %6s MiB/s  cpu s/GiB write %5s read %5s' \
        "$1" "$(mibps "$w")" "$(mibps "$r")" "$(mibps "$warm")" "$(cpu_per_gib "$t0" "$t1")" "$(cpu_per_gib "$t2" "$t3")"
}

listing() { # label mountpoint(fresh)
    local cold warm creates
    cold=$(secs ls -l "$2/many")
    warm=$(secs ls -l "$2/many")
    # A fresh directory each time, so that no run meets another's leftovers.
    local created="$2/creates-$RANDOM$RANDOM"
    creates=$(secs bash -c "mkdir '$created' && for i in \$(seq 1 1000); do : > '$created'/f\$i; done")
    rm -rf "$created" 2>/dev/null || true
    printf '   ls -l 10k cold %ss warm %ss   1,000 creates %ss\n' "$cold" "$warm" "$creates"
}

bench_berth() { # label [remote_path]: every cache mode through the service
    local mode m
    for mode in off writes full; do
        m="$(mount_berth "$mode" "bench-$mode" "${2:-}")"
        run_suite "$1 berth cache=$mode" "$m" "$pid"
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
            if [[ $part == run_suite ]]; then run_suite "$1 rclone cache=$mode" "$dir/rclone" "$rpid"; else listing "rclone" "$dir/rclone"; fi
            fusermount3 -u "$dir/rclone"; wait "$rpid" 2>/dev/null || true
            rpid=""
        done
    done
}

echo "size ${size_mib} MiB; machine: $(nproc) cores"
# The disk itself: a write made durable, a read from the page cache (warm),
# and one after the page cache was dropped (cold: in this VM a cold read
# swings from 0.4 to 1.4 s per GiB, most of it system time copying out of
# freshly filled pages, and every cold read through a mount pays the same).
raw=$(secs dd if=/dev/zero of="$dir/local/raw.bin" bs=1M count="$size_mib" conv=fsync)
rraw=$(secs dd if="$dir/local/raw.bin" of=/dev/null bs=1M)
sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
craw=$(secs dd if="$dir/local/raw.bin" of=/dev/null bs=1M); rm -f "$dir/local/raw.bin"
printf '%-26s write %6s MiB/s  read cold %6s MiB/s  warm %6s MiB/s\n' "raw disk" "$(mibps "$raw")" "$(mibps "$craw")" "$(mibps "$rraw")"

mkdir -p "$dir/local/store/many"
(cd "$dir/local/store/many" && seq 1 10000 | xargs touch)
bench_berth "local"
bench_rclone "local" "$dir/local/store"
if command -v rclone >/dev/null 2>&1; then
    backend="$(api -X POST "$base/api/v1/backends/local" -d "{\"root\": \"$dir/local/store\", \"engine\": \"rclone\"}" | json_field id)"
    bench_berth "local engine=rclone"
fi

# S3: `rclone serve s3` (gofakes3 over a directory, each top directory a
# bucket; it checks SigV4 signatures). On this machine the server shares the
# two cores with the client, so its CPU per GiB bounds every S3 figure: it
# serves ranged GETs for about 0.6 CPU-seconds per GiB, where s3rver needed
# 1.4-2.4 and s3s-fs 4.8 (docs/BENCHMARKS.md).
if command -v rclone >/dev/null 2>&1; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    mkdir -p "$dir/s3/bench/many"
    (cd "$dir/s3/bench/many" && seq 1 10000 | xargs touch)
    rclone serve s3 "$dir/s3" --addr "127.0.0.1:$port" --auth-key bench-key,bench-secret >/dev/null 2>&1 &
    s3pid=$!
    s3="http://127.0.0.1:$port"
    sig=(--aws-sigv4 aws:amz:us-east-1:s3 --user bench-key:bench-secret)
    for _ in $(seq 1 100); do curl -s -o /dev/null "$s3/" && break; sleep 0.1; done
    # What the server gives on this machine with next to no client work: curl
    # reading an object in eight ranged GETs one after the other, then all
    # eight at once (a GET of a whole object also hashes it, so ranges).
    stored_file="$dir/s3/bench/ceiling.bin"
    dd if=/dev/urandom of="$stored_file" bs=1M count="$size_mib" status=none
    # The server hashes an object (its ETag) when it first serves it, and
    # keeps the hash: the cold read finds it done, as with a real store.
    warm_store() {
        cat "$stored_file" >/dev/null
        curl -sf -I "${sig[@]}" "$s3/bench/${stored_file##*/}" >/dev/null || true
    }
    warm_store
    part=$((size_mib * 1048576 / 8))
    ranges=(); for i in $(seq 0 7); do ranges+=("$((i * part))-$((i * part + part - 1))"); done
    one=$(secs bash -c "for r in ${ranges[*]}; do curl -sf ${sig[*]} -o /dev/null -r \$r '$s3/bench/ceiling.bin' || exit 1; done")
    eight=$(secs bash -c "for r in ${ranges[*]}; do curl -sf ${sig[*]} -o /dev/null -r \$r '$s3/bench/ceiling.bin' & done; wait")
    rm -f "$stored_file"
    printf '%-26s read %6s MiB/s in one stream, %6s MiB/s in eight\n' "s3 server to curl" "$(mibps "$one")" "$(mibps "$eight")"
    s3_backend() { # [engine]
        api -X POST "$base/api/v1/backends/s3" -d "{\"provider\": \"Other\", \"endpoint\": \"$s3\", \"access_key_id\": \"bench-key\", \"secret_access_key\": \"bench-secret\", \"region\": \"us-east-1\"${1:+, \"engine\": \"$1\"}}" | json_field id
    }
    stored_file="$dir/s3/bench/big.bin"
    backend="$(s3_backend)"
    bench_berth "s3" "bench"
    export RCLONE_CONFIG_BENCHS3_TYPE=s3 RCLONE_CONFIG_BENCHS3_PROVIDER=Other \
        RCLONE_CONFIG_BENCHS3_ENDPOINT="$s3" RCLONE_CONFIG_BENCHS3_ACCESS_KEY_ID=bench-key \
        RCLONE_CONFIG_BENCHS3_SECRET_ACCESS_KEY=bench-secret RCLONE_CONFIG_BENCHS3_REGION=us-east-1
    bench_rclone "s3" "benchs3:bench"
    backend="$(s3_backend rclone)"
    bench_berth "s3 engine=rclone" "bench"
    kill "$s3pid" 2>/dev/null || true
else
    echo "(no rclone on PATH: S3 figures skipped)"
fi
