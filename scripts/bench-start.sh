#!/bin/bash
# Start latency side by side: the median of N `ctr run --rm ... /bin/true` on one private
# containerd for
#   myrt  --runtime io.containerd.myrt.v1
#   runc  --runtime io.containerd.runc.v2                      (containerd-shim-runc-v2 + runc)
#   crun  --runtime io.containerd.runc.v2 --runc-binary crun   (containerd-shim-runc-v2 + crun)
# from the busybox rootfs dir (`--rootfs`, as in ../shared/notes/baselines.md) and from the
# imported image (overlay snapshot), plus `ctr version` as the client's floor. Prints medians
# and each runtime's ratio to myrt. Measures and prints only; asserts nothing.
#
#   bench-start.sh [N]     N runs per row (default 20), after 3 warm-up runs
#
# Runs inside a private mount + pid namespace (it re-executes itself under unshare), so nothing
# it mounts reaches the host; there it hides /sys/fs/cgroup/unified by default (see below). Needs root and hyperfine. MYRT_BIN_DIR: where the myrt shim is
# (default: target/release or target/debug of this checkout, else /usr/local/bin).
set -euo pipefail

runs=${1:-20}
repo=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" -ne 0 ]; then
    echo "bench-start.sh: run as root" >&2
    exit 1
fi
if [ -z "${MYRT_BENCH_ISOLATED:-}" ]; then
    exec unshare --mount --pid --fork --kill-child --propagation private --mount-proc \
        env MYRT_BENCH_ISOLATED=1 "$0" "$@"
fi
command -v hyperfine >/dev/null || {
    echo "bench-start.sh: hyperfine missing (scripts/setup.sh installs it)" >&2
    exit 1
}

# Private /run/containerd (shim sockets, runc state, fifos) for this namespace only.
mkdir -p /run/containerd
mount -t tmpfs -o mode=0711 tmpfs /run/containerd

# crun 1.8 refuses cgroup v1 "hybrid" hosts (a cgroup2 mount at /sys/fs/cgroup/unified): hide
# that mount in this namespace for all three runtimes alike, as baselines.md did.
# BENCH_HIDE_CGROUP2=0 keeps it (crun then fails and is reported as FAILED).
hidden=""
if [ "${BENCH_HIDE_CGROUP2:-1}" = 1 ] && mountpoint -q /sys/fs/cgroup/unified; then
    umount -l /sys/fs/cgroup/unified
    # An empty tmpfs in its place: with only the bare directory of the host's /sys/fs/cgroup
    # tmpfs left, crun writes cgroup dirs there, onto the host.
    mount -t tmpfs -o mode=0755,size=1m tmpfs /sys/fs/cgroup/unified
    hidden=" [cgroup2 mount /sys/fs/cgroup/unified hidden]"
fi

have_myrt=1
shim_dir=${MYRT_BIN_DIR:-}
if [ -z "$shim_dir" ]; then
    for d in "$repo/target/release" "$repo/target/debug" /usr/local/bin; do
        if [ -x "$d/containerd-shim-myrt-v1" ]; then
            shim_dir=$d
            break
        fi
    done
fi
if [ -z "$shim_dir" ] || [ ! -x "$shim_dir/containerd-shim-myrt-v1" ]; then
    echo "bench-start.sh: containerd-shim-myrt-v1 not built: measuring runc and crun only" >&2
    have_myrt=0
    shim_dir=/usr/local/bin
fi
export MYRT_BIN_DIR=$shim_dir

image_dir=${MYRT_IMAGE_DIR:-$repo/target/myrt-e2e-image}
"$repo/scripts/build-image.sh" "$image_dir" >/dev/null
work=$(mktemp -d /tmp/myrt-bench-XXXXXX)
trap '"$repo/scripts/containerd.sh" stop "$work/cd" >/dev/null; rm -rf "$work"' EXIT
"$repo/scripts/containerd.sh" start "$work/cd"
ctr=(ctr --address "$work/cd/containerd.sock" --namespace myrt-bench)
"${ctr[@]}" images import "$image_dir/busybox-oci.tar" >/dev/null

names=(myrt runc crun)
flags=("--runtime io.containerd.myrt.v1" "--runtime io.containerd.runc.v2"
    "--runtime io.containerd.runc.v2 --runc-binary crun")

median_ms() { # command... -> median in ms
    hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/h.json" --style none "$*" >/dev/null 2>&1 ||
        { echo "FAILED"; return; }
    jq -r '.results[0].median * 1000 | . * 10 | round / 10' "$work/h.json"
}

# Check each variant works once before timing it, so a failure shows its error.
probe() {
    if ! out=$("${ctr[@]}" run --rm "$@" probe /bin/true 2>&1); then
        echo "bench-start.sh: \`ctr run $*\` failed: $out" >&2
        return 1
    fi
}

floor=$(median_ms "${ctr[@]}" version)
printf '%-7s %-5s %10s %9s\n' source rt median_ms vs_myrt
printf '%-7s %-5s %10s %9s\n' - ctr-version "$floor" -
for source in rootfs image; do
    if [ "$source" = rootfs ]; then src="--rootfs $image_dir/busybox-rootfs"; else src=localhost/myrt/busybox:latest; fi
    declare -A med=()
    for i in 0 1 2; do
        name=${names[$i]}
        if [ "$name" = myrt ] && [ "$have_myrt" = 0 ]; then
            med[$name]=n/a
            continue
        fi
        # shellcheck disable=SC2086 # word lists on purpose
        if probe ${flags[$i]} $src; then
            # shellcheck disable=SC2086
            med[$name]=$(median_ms "${ctr[@]}" run --rm ${flags[$i]} $src bench /bin/true)
        else
            med[$name]=FAILED
        fi
    done
    for name in "${names[@]}"; do
        ratio=-
        if [[ "${med[myrt]}" =~ ^[0-9.]+$ && "${med[$name]}" =~ ^[0-9.]+$ ]]; then
            ratio=$(awk -v a="${med[$name]}" -v b="${med[myrt]}" 'BEGIN { printf "%.2f", a / b }')
        fi
        printf '%-7s %-5s %10s %9s\n' "$source" "$name" "${med[$name]}" "$ratio"
    done
    unset med
done
echo "(median of $runs runs each; vs_myrt = runtime median / myrt median, > 1 means myrt is faster)$hidden"

# Shim memory: one idle shim serving one sleeping container, per runtime (the shim is the parent
# of the container's init for every runtime here).
kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/smaps_rollup"; }
echo
printf '%-5s %9s %9s %9s %8s %9s\n' rt rss_kib pss_kib anon_kib threads pss_vs_myrt
declare -A pss=()
for i in 0 1 2; do
    name=${names[$i]}
    [ "$name" = myrt ] && [ "$have_myrt" = 0 ] && continue
    # shellcheck disable=SC2086
    if ! "${ctr[@]}" run -d ${flags[$i]} localhost/myrt/busybox:latest "mem-$name" /bin/sleep 1000 >/dev/null 2>&1; then
        printf '%-5s %9s\n' "$name" FAILED
        continue
    fi
    sleep 1
    task_pid=$("${ctr[@]}" tasks ls | awk -v id="mem-$name" '$1 == id { print $2 }')
    shim=$(awk '{ print $4 }' "/proc/$task_pid/stat")
    rss=$(kib "$shim" Rss)
    pss[$name]=$(kib "$shim" Pss)
    anon=$(kib "$shim" Anonymous)
    threads=$(awk '/^Threads:/ { print $2 }' "/proc/$shim/status")
    ratio=-
    [ -n "${pss[myrt]:-}" ] && ratio=$(awk -v a="${pss[$name]}" -v b="${pss[myrt]}" 'BEGIN { printf "%.2f", a / b }')
    printf '%-5s %9s %9s %9s %8s %9s\n' "$name" "$rss" "${pss[$name]}" "$anon" "$threads" "$ratio"
    "${ctr[@]}" tasks kill -s SIGKILL "mem-$name" >/dev/null 2>&1 || true
    sleep 0.5
    "${ctr[@]}" tasks delete "mem-$name" >/dev/null 2>&1 || true
    "${ctr[@]}" containers delete "mem-$name" >/dev/null 2>&1 || true
done
echo "(idle shim with one sleeping container; anon = its own heap and stacks, the rest of PSS is the"
echo " binary's pages, shared between the shims of one runtime; pss_vs_myrt > 1 means myrt uses less)"
