#!/bin/bash
# Kubernetes (CRI) latency and memory side by side: one private containerd with the CRI plugin,
# driven the way kubelet drives it (tests/src/bin/bench_cri.rs), with the handlers
#   myrt  runtime_type io.containerd.myrt.v1
#   runc  runtime_type io.containerd.runc.v2                          (containerd-shim-runc-v2 + runc)
#   crun  runtime_type io.containerd.runc.v2, BinaryName = crun's path (containerd-shim-runc-v2 + crun)
# Each round runs, per handler in turn (the first one rotates): a host-network pod
# (RunPodSandbox, CreateContainer + StartContainer of a busybox `sleep 3600`, ExecSync
# /bin/true, StopContainer, RemoveContainer, StopPodSandbox, RemovePodSandbox) and a pod with a
# network namespace of its own (CNI bridge; RunPodSandbox, StopPodSandbox, RemovePodSandbox),
# every call timed. Then K pods per handler at once for the runtime's memory per pod (PSS and
# USS of each pod's shim and its non-container descendants). Prints medians and each
# handler's ratio to myrt. Measures and prints; exits 1 when a handler failed (its error shown).
#
#   bench-cri.sh [N]     N rounds (default 10) after one warm-up round
#
# Environment:
#   MYRT_CONTAINERD      the containerd binary (default /usr/bin/containerd, 1.6), e.g.
#                        $(scripts/containerd-versions.sh path 2.1)
#   MYRT_BIN_DIR         a dir holding a built containerd-shim-myrt-v1 and myrt; default: both
#                        built here with `cargo build --release` (runc and crun are optimized too)
#   BENCH_CRI_PODS       K, pods per handler for the memory figure (default 5)
#   BENCH_CRI_NETNS=0    skip the pods with a network namespace of their own
#   BENCH_CRI_HANDLERS   a comma list (default myrt,runc,crun)
#   BENCH_HIDE_CGROUP2=0 keep the cgroup2 mount at /sys/fs/cgroup/unified (crun then fails)
#
# Runs inside a private mount + pid namespace (it re-executes itself under unshare), so nothing
# it mounts or starts reaches the host; containerd and the pods get a private network namespace.
# Needs root. The driver is built with the dev profile (its client overhead is the same for
# every handler).
set -euo pipefail

runs=${1:-10}
repo=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}

if [ "$(id -u)" -ne 0 ]; then
    echo "bench-cri.sh: run as root" >&2
    exit 1
fi
if ! [[ "$runs" =~ ^[1-9][0-9]*$ ]]; then
    echo "bench-cri.sh: N must be a positive integer, not '$runs'" >&2
    exit 2
fi

if [ -z "${MYRT_BENCH_ISOLATED:-}" ]; then
    # Build out here: cargo needs nothing private.
    if [ -z "${MYRT_BIN_DIR:-}" ]; then
        (cd "$repo" && nice -n 19 cargo build --quiet --release -p myrt-shim -p myrt-runtime)
        export MYRT_BIN_DIR=$target/release
    fi
    (cd "$repo" && nice -n 19 cargo build --quiet -p myrt-tests --bin bench_cri)
    export MYRT_IMAGE_DIR=${MYRT_IMAGE_DIR:-$target/myrt-e2e-image}
    "$repo/scripts/build-image.sh" "$MYRT_IMAGE_DIR" >/dev/null
    # The outer namespace ids let the driver check it runs inside (tests/src/isolation.rs).
    exec unshare --mount --pid --fork --kill-child --propagation private --mount-proc \
        env MYRT_BENCH_ISOLATED=1 \
        MYRT_E2E_OUTER_PIDNS="$(readlink /proc/self/ns/pid)" \
        MYRT_E2E_OUTER_MNTNS="$(readlink /proc/self/ns/mnt)" \
        "$0" "$@"
fi

for f in containerd-shim-myrt-v1 myrt; do
    if [ ! -x "$MYRT_BIN_DIR/$f" ]; then
        echo "bench-cri.sh: $MYRT_BIN_DIR/$f missing (cargo build --release -p myrt-shim -p myrt-runtime)" >&2
        exit 1
    fi
done

# crun 1.8 refuses cgroup v1 "hybrid" hosts (a cgroup2 mount at /sys/fs/cgroup/unified): hide
# that mount in this namespace for the whole run, so all three handlers see the same layout.
# An empty private tmpfs takes its place: crun still writes `<path>/cgroup.procs` files under
# .../unified, and the bare mount point below is the host's /sys/fs/cgroup tmpfs.
layout="cgroup v1 ($(stat -f -c %T /sys/fs/cgroup) at /sys/fs/cgroup)"
if [ "${BENCH_HIDE_CGROUP2:-1}" = 1 ] && mountpoint -q /sys/fs/cgroup/unified; then
    umount -l /sys/fs/cgroup/unified
    mount -t tmpfs -o mode=0755,size=1m tmpfs /sys/fs/cgroup/unified
    layout+=", the cgroup2 mount at /sys/fs/cgroup/unified hidden for all three handlers"
fi

containerd=${MYRT_CONTAINERD:-/usr/bin/containerd}
echo "bench-cri.sh: $("$containerd" --version | awk '{ print $1, $3 }'); myrt shim: $MYRT_BIN_DIR;" \
    "$(runc --version | head -n 1); $(crun --version | head -n 1)"
echo "bench-cri.sh: $layout; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
export MYRT_CONTAINERD=$containerd
rc=0
"$target/debug/bench_cri" "$runs" || rc=$?
exit "$rc"
