#!/usr/bin/env bash
# (Copied from ../shared/tools/install-criu.sh so that a checkout sets itself up alone.)
# install-criu.sh - install a CRIU that works on new kernels whose vDSO layout has a
# "[vvar_vclock]" mapping (seen on 6.18.x) on Debian 12 bookworm, using only Debian's
# package archive.
#
# Why: bookworm's criu 3.17.1 fails `criu check` there with
#   "vdso: Unexpected rt vDSO area bounds" / "kerndat_vdso_fill_symtable failed".
# Debian trixie's CRIU 4.1.1 and sid's 4.2.1 handle [vvar_vclock] (both checked here).
#
# How: add deb-src entries for trixie+sid (same archive host as debian.sources),
# `apt-get source --download-only` the upstream tarball (criu_X.orig.tar.xz; apt checks
# its hash against the signed Sources index, and this script checks it again), build
# the criu binary with plain `make` against bookworm's -dev packages, and install it to
# $PREFIX/sbin/criu (default /usr/local/sbin/criu, which is ahead of /usr/sbin in PATH).
# Debian's own criu package (/usr/sbin/criu), if installed, is left alone.
# Also installs $PREFIX/include/criu/rpc.proto (the RPC/swrk protocol of the built version).
#
# dpkg-buildpackage is not used: the archive mirror reachable here answers 404 for
# criu_*.debian.tar.xz, so only the .orig tarball (upstream source) can be fetched.
#
# Idempotent: exits early if $PREFIX/sbin/criu already passes `criu check`
# (FORCE=1 rebuilds). Build trees live under $WORKDIR (default /var/tmp/criu-build).
# Env knobs: CRIU_SRC_SPECS (apt-get source specs tried in order), PREFIX, WORKDIR, FORCE.
set -euo pipefail

CRIU_SRC_SPECS=${CRIU_SRC_SPECS:-"criu=4.2.1-1 criu/sid criu/trixie"}
PREFIX=${PREFIX:-/usr/local}
WORKDIR=${WORKDIR:-/var/tmp/criu-build}
FORCE=${FORCE:-0}
CRIU_BIN="$PREFIX/sbin/criu"
SRC_LIST=/etc/apt/sources.list.d/debian-src-newer.sources
APT="apt-get -o DPkg::Lock::Timeout=600 -o APT::Sandbox::User=root -o Acquire::Check-Valid-Until=false"
export DEBIAN_FRONTEND=noninteractive

log() { printf '[install-criu] %s\n' "$*" >&2; }

finish() {
    local v
    v=$("$CRIU_BIN" --version | awk '/^Version:/{print $2}')
    log "installed: $CRIU_BIN (CRIU $v)"
    case "$(command -v criu || true)" in
        "$CRIU_BIN") ;;
        *) log "note: 'criu' in PATH is $(command -v criu || echo none); use $CRIU_BIN explicitly (e.g. runc --criu $CRIU_BIN)";;
    esac
    echo "criu $v"
}

[ "$(id -u)" = 0 ] || { log "must run as root"; exit 1; }

# 0. already done?
if [ "$FORCE" != 1 ] && [ -x "$CRIU_BIN" ] && "$CRIU_BIN" check >/dev/null 2>&1; then
    log "$CRIU_BIN already installed and 'criu check' passes; nothing to do (FORCE=1 to rebuild)"
    finish
    exit 0
fi

mkdir -p "$WORKDIR/src" "$WORKDIR/build"

# 1. deb-src entries for trixie + sid on the archive host already configured for bookworm
if [ ! -f "$SRC_LIST" ]; then
    uri=$(awk '/^URIs:/{print $2}' /etc/apt/sources.list.d/debian.sources 2>/dev/null \
          | grep -v -- '-security' | head -n1 || true)
    uri=${uri:-http://deb.debian.org/debian}
    log "adding deb-src (trixie sid) from $uri -> $SRC_LIST"
    cat > "$SRC_LIST" <<EOF
Types: deb-src
URIs: $uri
Suites: trixie sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
fi
log "apt-get update"
# (the archive behind deb.debian.org here is a dated snapshot: machines of this kind carry
#  Acquire::Check-Valid-Until "false" in /etc/apt/apt.conf.d; without it sid's Release is
#  "expired". Don't abort on that: later steps fall back to other suites.)
$APT update -qq || log "warning: apt-get update reported errors; continuing"

# 2. build + runtime dependencies (all from bookworm)
log "installing build/runtime dependencies"
# (--no-upgrade: don't upgrade packages of this list that are already installed)
$APT install -y -qq --no-install-recommends --no-upgrade \
    gcc make libc6-dev pkg-config xz-utils \
    protobuf-c-compiler libprotobuf-c-dev protobuf-compiler libprotobuf-dev \
    libnl-3-dev libnet1-dev libcap-dev libbsd-dev libgnutls28-dev libnftables-dev uuid-dev \
    iproute2 iptables tar >/dev/null

# 3. fetch the upstream tarball with apt-get source (first spec that works)
cd "$WORKDIR/src"
orig="" sha=""
for spec in $CRIU_SRC_SPECS; do
    # --print-uris omits files already present in the cwd, so ask from an empty directory
    rm -rf "$WORKDIR/.uris" && mkdir -p "$WORKDIR/.uris"
    line=$(cd "$WORKDIR/.uris" && $APT source --print-uris "$spec" 2>/dev/null \
           | grep -E "^'[^']*/criu_[^']*\.orig\.tar\.[a-z0-9]+'" | head -n1 || true)
    [ -n "$line" ] || { log "no source for '$spec'"; continue; }
    orig=$(awk '{print $2}' <<<"$line")
    sha=$(awk '{print $4}' <<<"$line"); sha=${sha#SHA256:}
    if [ -f "$orig" ] && echo "$sha  $orig" | sha256sum -c --quiet - 2>/dev/null; then
        log "using cached $orig ($spec)"; break
    fi
    rm -f "$orig"
    log "apt-get source --download-only $spec"
    # exits non-zero here because criu_*.debian.tar.xz is 404 on this mirror; the orig
    # tarball is all we need, so only its presence + checksum matter
    $APT source --download-only "$spec" >"$WORKDIR/apt-source.log" 2>&1 || true
    if [ -f "$orig" ] && echo "$sha  $orig" | sha256sum -c --quiet -; then
        log "got $orig (sha256 $sha)"; break
    fi
    log "could not fetch $orig for '$spec'"; orig=""
done
[ -n "$orig" ] || { log "no CRIU source could be fetched (tried: $CRIU_SRC_SPECS)"; exit 1; }
ver=${orig#criu_}; ver=${ver%.orig.tar.*}

# 4. build (plain make, only the criu binary; ~1 min of 2 cores)
tree="$WORKDIR/build/criu-$ver"
if [ "$FORCE" = 1 ] || [ ! -x "$tree/criu/criu" ]; then
    rm -rf "$tree"
    mkdir -p "$tree"
    tar -xf "$WORKDIR/src/$orig" -C "$tree" --strip-components=1
    log "building CRIU $ver in $tree (log: $WORKDIR/build-$ver.log)"
    if ! make -C "$tree" -j"$(nproc)" criu >"$WORKDIR/build-$ver.log" 2>&1; then
        tail -n 30 "$WORKDIR/build-$ver.log" >&2; log "build failed"; exit 1
    fi
fi

# 5. install
log "installing to $PREFIX"
make -C "$tree" install-criu PREFIX="$PREFIX" >"$WORKDIR/install-$ver.log" 2>&1
install -D -m 0644 "$tree/images/rpc.proto" "$PREFIX/include/criu/rpc.proto"
hash -r

# 6. verify
if ! "$CRIU_BIN" check; then
    log "'$CRIU_BIN check' failed on this kernel"; exit 1
fi
finish
