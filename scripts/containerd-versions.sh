#!/bin/bash
# Other containerd versions for the e2e tests, unpacked from Debian's packages (not installed).
#
#   containerd-versions.sh fetch [1.7|2.1|all]   download + unpack (once), print the binary path(s)
#   containerd-versions.sh path 1.6|1.7|2.1      print the binary path of a fetched version (no network)
#   containerd-versions.sh list                  the series this script knows, with their source
#
# Series and where they come from (Debian's containerd package; its Go binaries run on bookworm):
#   1.6  the installed package (/usr/bin/containerd, bookworm)
#   1.7  trixie  (1.7.24)
#   2.1  sid     (2.1.9)
# The run the e2e tests against one: MYRT_CONTAINERD=$(containerd-versions.sh fetch 2.1) cargo test ...
# The harness takes ctr (and containerd-shim-runc-v2) from the same directory, so client and
# server match.
#
# Nothing on the system changes: apt runs on a private sources list, lists and archive cache
# under CACHE/apt/<suite>; the .deb is unpacked with dpkg-deb -x into CACHE/<upstream version>/
# (usr/bin/containerd, ctr, containerd-shim-runc-v2, ...). A tree is used only after its
# containerd answered `--version` with the expected series (marker file .myrt-ok); a second
# fetch finds it and uses no network.
#
# Environment:
#   MYRT_CONTAINERD_CACHE   CACHE (default /var/cache/myrt-containerd)
#   MYRT_DEBIAN_MIRROR      archive URL (default: the host's, from /etc/apt/sources.list.d/debian.sources)
set -euo pipefail

CACHE=${MYRT_CONTAINERD_CACHE:-/var/cache/myrt-containerd}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

say() { printf 'containerd-versions: %s\n' "$*" >&2; }
die() {
    printf 'containerd-versions: error: %s\n' "$*" >&2
    exit 1
}
usage() {
    echo "usage: $0 fetch [1.7|2.1|all] | path 1.6|1.7|2.1 | list" >&2
    exit 2
}

suite_of() {
    case $1 in
    1.7) echo trixie ;;
    2.1) echo sid ;;
    *) die "unknown series '$1': use 1.7 or 2.1 (1.6 is the installed package)" ;;
    esac
}

# The Debian archive the host already uses (first URIs line ending in /debian).
mirror() {
    if [ -n "${MYRT_DEBIAN_MIRROR:-}" ]; then
        echo "$MYRT_DEBIAN_MIRROR"
        return
    fi
    local uri
    uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }' \
        /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    echo "${uri:-http://deb.debian.org/debian}"
}

# A fetched tree of SERIES: CACHE/<x.y.z>/ with the marker, else nothing.
tree_of() {
    local d
    for d in "$CACHE/$1".*/; do
        [ -f "$d.myrt-ok" ] && [ -x "$d/usr/bin/containerd" ] && {
            echo "${d%/}"
            return 0
        }
    done
    return 1
}

# apt-get/apt-cache on the private state of SUITE.
papt() {
    local tool=$1 suite=$2
    shift 2
    local a=$CACHE/apt/$suite
    "$tool" -q -o Dir::State="$a/state" -o Dir::Cache="$a/cache" \
        -o Dir::Etc::SourceList="$a/sources.list" -o Dir::Etc::SourceParts="$a/parts" \
        -o Dir::Etc::PreferencesParts="$a/parts" -o Dir::Etc::Preferences="$a/preferences" \
        -o Acquire::Languages=none -o Acquire::Check-Valid-Until=false \
        -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false \
        -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false \
        -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false \
        -o Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled=false \
        "$@"
}

fetch_one() {
    local series=$1 suite tree a version upstream deb out
    if tree=$(tree_of "$series"); then
        echo "$tree/usr/bin/containerd"
        return 0
    fi
    suite=$(suite_of "$series")
    command -v dpkg-deb >/dev/null || die "dpkg-deb not found (Debian hosts only)"
    [ -r "$KEYRING" ] || die "$KEYRING not found: install debian-archive-keyring"
    a=$CACHE/apt/$suite
    mkdir -p "$a/state/lists/partial" "$a/cache/archives/partial" "$a/parts" "$a/dl"
    echo "deb [signed-by=$KEYRING] $(mirror) $suite main" >"$a/sources.list"
    : >"$a/preferences"
    say "apt-get update ($suite, private lists in $a)"
    papt apt-get "$suite" update >"$a/update.log" 2>&1 ||
        {
            tail -20 "$a/update.log" >&2
            die "apt-get update for $suite failed (log: $a/update.log)"
        }
    version=$(papt apt-cache "$suite" show --no-all-versions containerd 2>/dev/null |
        awk '/^Version:/ && !v { v = $2 } END { print v }')
    [ -n "$version" ] || die "no containerd package in $suite"
    # 1.7.24~ds1-6 -> 1.7.24; 2.1.9+ds1-5 -> 2.1.9
    upstream=${version#*:}
    upstream=${upstream%%[~+-]*}
    case $upstream in
    "$series".*) ;;
    *) die "$suite now has containerd $version, not the $series series this matrix expects" ;;
    esac
    say "downloading containerd $version ($suite)"
    rm -f "$a/dl"/containerd_*.deb
    (cd "$a/dl" && papt apt-get "$suite" download "containerd=$version") >"$a/download.log" 2>&1 ||
        {
            tail -20 "$a/download.log" >&2
            die "apt-get download containerd=$version failed (log: $a/download.log)"
        }
    deb=$(ls "$a/dl"/containerd_*.deb)
    tree=$CACHE/$upstream
    rm -rf "$tree" "$tree.tmp"
    mkdir -p "$tree.tmp"
    dpkg-deb -x "$deb" "$tree.tmp"
    out=$("$tree.tmp/usr/bin/containerd" --version 2>&1) ||
        die "the unpacked $tree.tmp/usr/bin/containerd does not run: $out"
    case $out in
    *" $upstream"*) ;;
    *) die "unexpected version from the unpacked containerd: $out" ;;
    esac
    [ -x "$tree.tmp/usr/bin/ctr" ] || die "the containerd $version package has no usr/bin/ctr"
    printf '%s\n%s\n' "$version" "$out" >"$tree.tmp/.myrt-ok"
    mv "$tree.tmp" "$tree"
    rm -f "$deb"
    say "$out"
    echo "$tree/usr/bin/containerd"
}

cmd=${1:-}
case $cmd in
fetch)
    [ $# -le 2 ] || usage
    which=${2:-all}
    mkdir -p "$CACHE"
    exec 9>"$CACHE/.lock"
    flock 9
    case $which in
    all) for s in 1.7 2.1; do fetch_one "$s"; done ;;
    *) fetch_one "$which" ;;
    esac
    ;;
path)
    [ $# -eq 2 ] || usage
    if [ "$2" = 1.6 ]; then
        command -v containerd || die "containerd is not installed (scripts/setup.sh)"
    else
        suite_of "$2" >/dev/null
        tree=$(tree_of "$2") || die "containerd $2 is not fetched: run $0 fetch $2"
        echo "$tree/usr/bin/containerd"
    fi
    ;;
list)
    echo "1.6 installed $(command -v containerd || echo '(missing)')"
    for s in 1.7 2.1; do
        echo "$s $(suite_of "$s") $(tree_of "$s" || echo '(not fetched)')"
    done
    ;;
*) usage ;;
esac
