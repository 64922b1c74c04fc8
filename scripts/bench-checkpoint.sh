#!/bin/bash
# Checkpoint/restore latency side by side, engine against engine (no containerd): the median of N
# rounds of, on one small detached container (busybox `sh` counting in /dev/shm every 0.2 s,
# stdio /dev/null),
#   checkpoint --leave-running   (images of a running container; it keeps running)
#   checkpoint                   (images, then the container is gone)
#   restore -d                   (from the images of the checkpoint just taken)
# for
#   myrt  $MYRT --criu CRIU ...  (default target/release/myrt, built if missing)
#   runc  runc  --criu CRIU ...
#   crun  crun  ...              (only if `crun --version` shows +CRIU; else says so)
# all with the same CRIU ($CRIU, default /usr/local/sbin/criu), the same config.json (`runc spec`
# made detached: terminal false, the counter as args) and the same flags, each with its own state
# root, bundle and rootfs copy on a tmpfs. Prints medians and each runtime's ratio to myrt, and
# checks once per runtime that the restored counter went on from the checkpointed one. Measures
# and prints only; a runtime whose checkpoint fails is reported with its error and skipped.
#
#   bench-checkpoint.sh [N]     N timed rounds per runtime (default 10), after 1 warm-up round
#
# Runs inside a private mount + pid namespace (it re-executes itself under unshare), so nothing
# it mounts reaches the host; its cgroups (/myrt-bench/<rt> under each hierarchy) are removed at
# the end. Needs root, runc, jq and a CRIU that passes `criu check`.
set -euo pipefail

runs=${1:-10}
repo=$(cd "$(dirname "$0")/.." && pwd)
criu=${CRIU:-/usr/local/sbin/criu}

if [ "$(id -u)" -ne 0 ]; then
    echo "bench-checkpoint.sh: run as root" >&2
    exit 1
fi
if ! [[ "$runs" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [N]   (N rounds, a positive integer)" >&2
    exit 2
fi
if [ -z "${MYRT_BENCH_ISOLATED:-}" ]; then
    exec unshare --mount --pid --fork --kill-child --propagation private --mount-proc \
        env MYRT_BENCH_ISOLATED=1 "$0" "$@"
fi
for tool in runc jq; do
    command -v "$tool" >/dev/null || {
        echo "bench-checkpoint.sh: $tool missing (scripts/setup.sh installs it)" >&2
        exit 1
    }
done
if ! out=$("$criu" check 2>&1); then
    echo "bench-checkpoint.sh: \`$criu check\` fails: $out" >&2
    echo "  (Debian's criu 3.17 does not work on 6.x kernels: shared/tools/install-criu.sh)" >&2
    exit 1
fi
criu_version=$("$criu" --version | awk '/^Version:/ { print $2 }')

myrt=${MYRT:-$repo/target/release/myrt}
if [ -z "${MYRT:-}" ] && [ ! -x "$myrt" ]; then
    echo "bench-checkpoint.sh: building $myrt (cargo build --release -p myrt-runtime)" >&2
    (cd "$repo" && cargo build --release -p myrt-runtime >&2)
fi

image_dir=${MYRT_IMAGE_DIR:-$repo/target/myrt-e2e-image}
"$repo/scripts/build-image.sh" "$image_dir" >/dev/null
work=$(mktemp -d /tmp/myrt-bench-ckpt-XXXXXX)
# Images, work dirs, rootfs copies and state roots on a tmpfs: no disk noise, gone with the
# namespace.
mount -t tmpfs -o mode=0700 tmpfs "$work"

names=(myrt runc crun)
declare -A bin=([myrt]="$myrt" [runc]=runc [crun]=crun)
crun_note=""
if ! crun --version 2>/dev/null | grep -q '+CRIU'; then
    crun_note="crun: $(crun --version 2>/dev/null | awk '/^crun version/ { print $3 }' || true) built without CRIU (no +CRIU in \`crun --version\`): not measured"
    bin[crun]=""
elif mountpoint -q /sys/fs/cgroup/unified; then
    # crun 1.8 refuses cgroup v1 "hybrid" hosts: hide the cgroup2 mount for all runtimes alike,
    # as bench-start.sh does.
    umount -l /sys/fs/cgroup/unified
    # An empty tmpfs in its place: with only the bare directory of the host's /sys/fs/cgroup
    # tmpfs left, crun writes cgroup dirs there, onto the host.
    mount -t tmpfs -o mode=0755,size=1m tmpfs /sys/fs/cgroup/unified
    crun_note="[cgroup2 mount /sys/fs/cgroup/unified hidden for all runtimes]"
fi

# shellcheck disable=SC2016 # $i is the container shell's
counter='i=0; while true; do i=$((i+1)); echo $i > /dev/shm/counter; sleep 0.2; done'
(cd "$work" && runc spec)
spec=$work/config.json

rt_cmd() { # rt args... : the runtime with its own state root and the common CRIU
    local rt=$1
    shift
    if [ "$rt" = crun ]; then
        "${bin[$rt]}" --root "$work/$rt/state" "$@"
    else
        "${bin[$rt]}" --root "$work/$rt/state" --criu "$criu" "$@"
    fi
}

cleanup() {
    local rt
    for rt in "${names[@]}"; do
        [ -n "${bin[$rt]}" ] || continue
        rt_cmd "$rt" kill "ckpt-$rt" KILL >/dev/null 2>&1 || true
        rt_cmd "$rt" delete -f "ckpt-$rt" >/dev/null 2>&1 || true
    done
    for d in /sys/fs/cgroup/*/myrt-bench /sys/fs/cgroup/myrt-bench; do
        [ -d "$d" ] || continue
        find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
    done
    umount -l "$work" 2>/dev/null || true
    rmdir "$work" 2>/dev/null || true
}
trap cleanup EXIT

now_ns() { date +%s%N; }

median() { # numbers on stdin -> median, one decimal
    sort -n | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "n/a"; exit }
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.1f\n", m }'
}

counter_of() { # rt -> the container's counter
    rt_cmd "$1" exec "ckpt-$1" /bin/cat /dev/shm/counter 2>/dev/null | tr -d '\n'
}

# timed rt label cmd...: runs `rt_cmd rt cmd...` with stdio /dev/null (a restored container
# inherits them) and errors to --log, appends its wall time in ms to $work/$rt/$label.ms; on
# failure prints the error and returns 1.
timed() {
    local rt=$1 label=$2 t0 t1 log
    shift 2
    log=$work/$rt/$label.log
    t0=$(now_ns)
    if ! rt_cmd "$rt" --log "$log" "$@" </dev/null >/dev/null 2>&1; then
        echo "bench-checkpoint.sh: $rt $1 failed: $(tr '\n' ' ' <"$log")" >&2
        # CRIU's reason is only in its log, which goes with the tmpfs: show it now.
        grep -h 'Error (' "$work/$rt"/work-*/*.log 2>/dev/null | tail -5 | sed 's/^/  criu: /' >&2
        return 1
    fi
    t1=$(now_ns)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f\n", (b - a) / 1e6 }' >>"$work/$rt/$label.ms"
}

# setup rt: its bundle (the common config, its own cgroup) and the running counter.
setup() {
    local rt=$1 bundle=$work/$1/bundle
    mkdir -p "$bundle" "$work/$rt/state"
    cp -a "$image_dir/busybox-rootfs" "$bundle/rootfs"
    jq --arg cmd "$counter" --arg cg "/myrt-bench/$rt" \
        '.process.terminal = false | .process.args = ["/bin/sh", "-c", $cmd]
         | .linux.cgroupsPath = $cg' "$spec" >"$bundle/config.json"
    # The container inherits run's stdio: /dev/null (a file on a mount outside the container
    # cannot be dumped); the runtime's own errors go to --log.
    if ! rt_cmd "$rt" --log "$work/$rt/run.log" run -d -b "$bundle" "ckpt-$rt" \
        </dev/null >/dev/null 2>&1; then
        echo "bench-checkpoint.sh: $rt run failed: $(tr '\n' ' ' <"$work/$rt/run.log")" >&2
        return 1
    fi
}

# round rt N: checkpoint --leave-running, checkpoint, restore; round 0 is the warm-up, untimed,
# and checks that the restore brought the counter back.
round() {
    local rt=$1 n=$2 id=ckpt-$1 before after
    rm -rf "$work/$rt/img" "$work/$rt/img-lr" "$work/$rt"/work-*
    [ "$n" = 0 ] && before=$(counter_of "$rt")
    timed "$rt" leave-running checkpoint --leave-running --image-path "$work/$rt/img-lr" \
        --work-path "$work/$rt/work-lr" "$id" || return 1
    timed "$rt" checkpoint checkpoint --image-path "$work/$rt/img" \
        --work-path "$work/$rt/work-ck" "$id" || return 1
    timed "$rt" restore restore -d --image-path "$work/$rt/img" \
        --work-path "$work/$rt/work-rs" -b "$work/$rt/bundle" "$id" || return 1
    if [ "$n" = 0 ]; then
        sleep 0.5
        after=$(counter_of "$rt")
        if ! [[ "$before" =~ ^[0-9]+$ && "$after" =~ ^[0-9]+$ ]] || [ "$after" -lt "$before" ]; then
            echo "bench-checkpoint.sh: $rt: the counter was '$before' before the checkpoint," \
                "'$after' after the restore: not restored" >&2
            return 1
        fi
        echo "$rt: counter $before before the checkpoint, $after after the restore" >&2
        rm -f "$work/$rt"/*.ms
    fi
}

ops=(leave-running checkpoint restore)
declare -A med=() state=()
for rt in "${names[@]}"; do
    for op in "${ops[@]}"; do med[$rt,$op]=n/a; done
    [ -n "${bin[$rt]}" ] || continue
    if [ "$rt" = myrt ] && ! "$myrt" checkpoint --help >/dev/null 2>&1; then
        echo "bench-checkpoint.sh: $myrt has no checkpoint command: $("$myrt" checkpoint --help 2>&1 | head -1)" >&2
        continue
    fi
    if setup "$rt"; then state[$rt]=ok; else state[$rt]=FAILED; fi
done
sleep 1
# Rounds interleave the runtimes, so that drift on the host hits all of them alike.
for n in $(seq 0 "$runs"); do
    for rt in "${names[@]}"; do
        [ "${state[$rt]:-}" = ok ] || continue
        round "$rt" "$n" || state[$rt]=FAILED
    done
done
for rt in "${names[@]}"; do
    case ${state[$rt]:-} in
    ok) for op in "${ops[@]}"; do med[$rt,$op]=$(median <"$work/$rt/$op.ms"); done ;;
    FAILED) for op in "${ops[@]}"; do med[$rt,$op]=FAILED; done ;;
    esac
done

printf '%-27s %-5s %10s %9s\n' op rt median_ms vs_myrt
for op in "${ops[@]}"; do
    case $op in
    leave-running) label="checkpoint --leave-running" ;;
    checkpoint) label=checkpoint ;;
    restore) label="restore -d" ;;
    esac
    for rt in "${names[@]}"; do
        [ -n "${bin[$rt]}" ] || continue
        ratio=-
        if [[ "${med[myrt,$op]}" =~ ^[0-9.]+$ && "${med[$rt,$op]}" =~ ^[0-9.]+$ ]]; then
            ratio=$(awk -v a="${med[$rt,$op]}" -v b="${med[myrt,$op]}" 'BEGIN { printf "%.2f", a / b }')
        fi
        printf '%-27s %-5s %10s %9s\n' "$label" "$rt" "${med[$rt,$op]}" "$ratio"
    done
done
echo "(median of $runs rounds each after 1 warm-up; CRIU $criu_version at $criu for all; vs_myrt ="
echo " runtime median / myrt median, > 1 means myrt is faster; myrt: $myrt)"
[ -z "$crun_note" ] || echo "$crun_note"
