#!/usr/bin/env bash
# Installs and starts what the tests need (Debian packages, a PostgreSQL
# server on 127.0.0.1), runs the whole suite, and stops the servers again.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh --test

pg_data="$(mktemp -d /tmp/berth-test-pg.XXXXXX)"
cleanup() {
    scripts/stop-postgres.sh "$pg_data" >/dev/null 2>&1 || true
    rm -rf "$pg_data" "${pg_data}.log"
}
trap cleanup EXIT

export BERTH_TEST_POSTGRES_URL
BERTH_TEST_POSTGRES_URL="$(scripts/start-postgres.sh "$pg_data" | tail -n1)"
# Every test that needs PostgreSQL must run (not skip) from here on.
export BERTH_REQUIRE_POSTGRES=1

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace --no-fail-fast "$@"
