#!/bin/bash
# Idempotent set-up of a fresh Debian bookworm machine, as root:
#   1. the Debian packages the project builds and tests with (skipped when all are installed);
#   2. a Rust toolchain with rustfmt and clippy (an existing one is kept);
#   3. `cargo build --release --workspace`, and myrt + containerd-shim-myrt-v1 installed into
#      /usr/local/bin (where containerd finds the shim on PATH);
#   4. the busybox test image in /var/lib/myrt-demo/image (scripts/build-image.sh);
#   5. a CRIU that passes `criu check` here, for checkpoint/restore: kept if one on PATH does,
#      else built by scripts/install-criu.sh (CRIU 4.2.1 from Debian's source archive into
#      /usr/local/sbin/criu, ~1 min; bookworm's criu 3.17 fails on kernels with [vvar_vclock]).
#
# Environment: SETUP_SKIP_CARGO=1 skips steps 2-3 (packages and image only); SETUP_SKIP_CRIU=1
# skips step 5;
# MYRT_PREFIX (default /usr/local) is where bin/ gets the binaries.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
prefix=${MYRT_PREFIX:-/usr/local}
image_dir=/var/lib/myrt-demo/image

if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: run as root (it installs packages and binaries)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive

packages=(
    ca-certificates curl git build-essential pkg-config # toolchain, rustup download
    containerd runc crun                                # the runtime's peers and its host
    busybox-static                                      # the test image's only binary
    libseccomp-dev protobuf-compiler                    # seccomp, shim protos
    jq hyperfine                                        # scripts, benchmarks
    util-linux bsdutils iproute2 procps                 # unshare, script, ip, ps
    python3                                             # scripts/build-image.py
    containernetworking-plugins                         # CNI for the CRI tests (bridge, host-local)
    apparmor                                            # apparmor_parser for the v2 guest's LSM test
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup.sh: installing ${missing[*]}"
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
else
    echo "setup.sh: Debian packages already installed"
fi

# containerd's overlayfs snapshotter needs overlay: built in here, a module on some kernels.
if ! grep -qw overlay /proc/filesystems && command -v modprobe >/dev/null; then
    modprobe overlay || echo "setup.sh: warning: no overlay filesystem; image tests will fail" >&2
fi

if [ "${SETUP_SKIP_CARGO:-0}" != 1 ]; then
    [ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"
    if ! command -v cargo >/dev/null 2>&1; then
        # bookworm's rustc (1.63) is older than the workspace's rust-version: use rustup.
        echo "setup.sh: installing Rust with rustup"
        curl -sSf --proto '=https' --tlsv1.2 https://sh.rustup.rs |
            sh -s -- -y --profile minimal --component rustfmt,clippy
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    if command -v rustup >/dev/null 2>&1; then
        if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
            rustup component add rustfmt clippy
        fi
    fi
    echo "setup.sh: $(cargo --version)"
    (cd "$repo" && cargo build --release --workspace)
    install -d "$prefix/bin"
    for b in myrt containerd-shim-myrt-v1; do
        install -m 0755 "$repo/target/release/$b" "$prefix/bin/$b"
        echo "setup.sh: installed $prefix/bin/$b"
    done
fi

"$repo/scripts/build-image.sh" "$image_dir"

if [ "${SETUP_SKIP_CRIU:-0}" != 1 ]; then
    if command -v criu >/dev/null && criu check >/dev/null 2>&1; then
        echo "setup.sh: $(command -v criu) passes criu check: $(criu --version | head -1)"
    else
        "$repo/scripts/install-criu.sh" </dev/null
    fi
fi
echo "setup.sh: done"
