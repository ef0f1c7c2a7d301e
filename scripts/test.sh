#!/usr/bin/env bash
# Installs and starts what the tests need (Debian packages, PostgreSQL, the
# S3, Azure Blob and GCS emulators, and an sshd for sftp, all on 127.0.0.1),
# runs the whole suite, and stops the servers again. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh --test

work="$(mktemp -d /tmp/berth-test.XXXXXX)"
# PostgreSQL runs as its own user and must reach its data dir inside.
chmod 755 "$work"
pg_data="$work/pg"
cleanup() {
    scripts/stop-postgres.sh "$pg_data" >/dev/null 2>&1 || true
    scripts/stop-s3.sh >/dev/null 2>&1 || true
    scripts/stop-azurite.sh >/dev/null 2>&1 || true
    scripts/stop-gcs.sh >/dev/null 2>&1 || true
    scripts/stop-sftp.sh >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# The FUSE control filesystem lets tests abort a connection like a crash would.
if [[ -d /sys/fs/fuse/connections ]] && ! grep -q ' /sys/fs/fuse/connections ' /proc/mounts; then
    mount -t fusectl none /sys/fs/fuse/connections || true
fi

# The servers install and start in the background while the code builds.
started=$SECONDS
scripts/start-postgres.sh "$pg_data" >"$work/pg.out" 2>"$work/pg.err" & pg=$!
scripts/start-s3.sh >"$work/s3.out" 2>"$work/s3.err" & s3=$!
scripts/start-azurite.sh >"$work/azure.out" 2>"$work/azure.err" & azure=$!
scripts/start-gcs.sh >"$work/gcs.out" 2>"$work/gcs.err" & gcs=$!
scripts/start-sftp.sh >"$work/sftp.out" 2>"$work/sftp.err" & sftp=$!

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace --no-run --quiet

for server in pg s3 azure gcs sftp; do
    if ! wait "${!server}"; then
        echo "test.sh: starting $server failed:" >&2
        cat "$work/$server.err" >&2
        exit 1
    fi
done
echo "test.sh: test servers ready $((SECONDS - started)) s after the start" >&2

export BERTH_TEST_POSTGRES_URL BERTH_TEST_AZURE_ENDPOINT BERTH_TEST_GCS_ENDPOINT
BERTH_TEST_POSTGRES_URL="$(tail -n1 "$work/pg.out")"
BERTH_TEST_AZURE_ENDPOINT="$(tail -n1 "$work/azure.out")"
BERTH_TEST_GCS_ENDPOINT="$(tail -n1 "$work/gcs.out")"
# start-s3.sh and start-sftp.sh name the files holding their addresses and
# the credentials they created.
set -a
for out in s3 sftp; do
    # shellcheck disable=SC1090
    source "$(sed -n 's/^# env: //p' "$work/$out.out")"
done
set +a
# From here on, tests that need a server must run, never skip.
export BERTH_REQUIRE_POSTGRES=1 BERTH_REQUIRE_EMULATORS=1 BERTH_REQUIRE_FUSE=1 BERTH_REQUIRE_RCLONE=1 \
    BERTH_REQUIRE_SFTP=1

cargo test --workspace --no-fail-fast "$@"
