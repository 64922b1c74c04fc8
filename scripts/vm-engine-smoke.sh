#!/bin/bash
# vm-engine-smoke.sh - smoke test of myrt's engine on a pure cgroup v2 host.
#
#   scripts/vm-engine-smoke.sh --vm   on this (cgroup v1 hybrid) host: boots the QEMU guest of
#                                     ../shared/vm/vm-run.sh (cgroup2 alone at /sys/fs/cgroup)
#                                     and runs this script inside it
#   scripts/vm-engine-smoke.sh        as root on a cgroup v2 host (e.g. inside that guest)
#
# It builds a busybox bundle under /run/myrt-smoke (tmpfs: the guest's root is an overlay),
# writes the configs with `myrt spec` + jq, and drives `myrt --root /run/myrt-vm` through run,
# create/start, pause/resume (cgroup.freeze, cgroup.events), exec, memory/pids limits, the
# cgroup2 mount inside, the default device rules (eBPF), kill --all, delete, delete --force,
# and a second container in a nested cgroup (/myrt/a/b) with its own cgroup namespace, which
# makes a child cgroup of its own that ps, pause, kill --all and delete must cover. Every check
# prints PASS or FAIL with the reason; the exit status is non-zero if any check failed.
# About a minute in the emulated guest (~45 s of checks + boot).
#
# Build first: cargo build --release -p myrt-runtime (the debug binary is 55 MB and every myrt
# call copies itself into a memfd). Environment: MYRT (the binary; default
# target/release/myrt of this checkout), VM_TIMEOUT (--vm only; default 900 s).
# pass and fail always succeed: "A && pass || fail" is safe; the $ in the single-quoted
# scripts is for the container's shell
# shellcheck disable=SC2015,SC2016
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")

if [ "${1:-}" = --vm ]; then
    vm=$(dirname "$0")/../../shared/vm/vm-run.sh
    [ -x "$vm" ] || { echo "vm-engine-smoke: $vm not found" >&2; exit 125; }
    export VM_TIMEOUT=${VM_TIMEOUT:-900}
    bin=${MYRT:-$REPO/target/release/myrt}
    [ -x "$bin" ] || { echo "vm-engine-smoke: $bin missing: cargo build --release -p myrt-runtime" >&2; exit 1; }
    newer=$(find "$REPO/runtime/src" -name '*.rs' -newer "$bin" | head -1)
    [ -z "$newer" ] || echo "vm-engine-smoke: warning: $newer is newer than $bin" >&2
    export VM_PASS_ENV="MYRT RUST_BACKTRACE RUST_LOG"
    t0=$(date +%s%N)
    "$vm" "$(printf '%q' "$HERE/vm-engine-smoke.sh")"
    rc=$?
    ms=$((($(date +%s%N) - t0) / 1000000))
    echo "vm-engine-smoke: VM run (boot to power-off) took $((ms / 1000)).$(printf %03d $((ms % 1000))) s, exit $rc" >&2
    exit "$rc"
fi

MYRT=${MYRT:-$REPO/target/release/myrt}
STATE=/run/myrt-vm
WORK=/run/myrt-smoke
ROOTFS=$WORK/rootfs
CG=/sys/fs/cgroup
FAILS=0

pass() { printf '[%4ss] PASS %s: %s\n' "$SECONDS" "$1" "$2"; }
fail() { printf '[%4ss] FAIL %s: %s\n' "$SECONDS" "$1" "$2"; FAILS=$((FAILS + 1)); }
# check NAME DESCRIPTION EXPECTED ACTUAL
check() {
    if [ "$3" = "$4" ]; then pass "$1" "$2 = ${4//$'\n'/\\n}"; else
        fail "$1" "$2: expected ${3//$'\n'/\\n}, got ${4//$'\n'/\\n}"; fi
}
myrt() { "$MYRT" --root "$STATE" "$@"; }
status_of() { myrt state "$1" 2>/dev/null | jq -r .status 2>/dev/null; }
# wait_status ID STATUS: up to 60 s (the guest is slow)
wait_status() {
    local s
    for _ in $(seq 1 120); do
        s=$(status_of "$1")
        [ "$s" = "$2" ] && { echo "$s"; return 0; }
        [ -n "$s" ] || { echo "(no state)"; return 1; }
        sleep 0.5
    done
    echo "$s"
    return 1
}
flat_key() { awk -v k="$2" '$1 == k { print $2 }' "$1" 2>/dev/null; }

cleanup() {
    local id
    for id in c1 c2 c3 c4; do
        [ -d "$STATE/$id" ] && myrt delete --force "$id" >/dev/null 2>&1
    done
}
trap cleanup EXIT

# ---------------------------------------------------------------- preflight ----
[ "$(id -u)" = 0 ] || { echo "FAIL preflight: must run as root"; exit 1; }
fstype=$(stat -f -c %T "$CG")
[ "$fstype" = cgroup2fs ] || {
    echo "FAIL preflight: $CG is $fstype, not cgroup2 (on a v1/hybrid host use --vm)"
    exit 1
}
[ -x "$MYRT" ] || { echo "FAIL preflight: $MYRT not executable"; exit 1; }
echo "kernel: $(uname -srvm)"
echo "cgroup: $CG is $fstype ($(awk '$5 == "/sys/fs/cgroup" { print $NF }' /proc/self/mountinfo)), root controllers: $(cat $CG/cgroup.subtree_control)"
echo "myrt:   $MYRT ($("$MYRT" --version | head -1))"
SECONDS=0

# ---------------------------------------------------------------- bundle -------
rm -rf "$WORK" && mkdir -p "$ROOTFS"/{bin,proc,dev,sys,tmp,etc,root}
# `busybox --install -s DIR` (one process, not one ln per applet) links every applet to the
# binary's resolved path (/usr/bin/busybox on a merged-/usr host): put the binary there too.
bb=$(readlink -f /bin/busybox)
mkdir -p "$ROOTFS${bb%/*}" && cp "$bb" "$ROOTFS$bb"
[ -e "$ROOTFS/bin/busybox" ] || ln -s "$bb" "$ROOTFS/bin/busybox"
"$bb" --install -s "$ROOTFS/bin"
echo 'root:x:0:0:root:/root:/bin/sh' >"$ROOTFS/etc/passwd"
echo 'root:x:0:' >"$ROOTFS/etc/group"
[ -L "$ROOTFS/bin/sh" ] && [ -L "$ROOTFS/bin/mknod" ] &&
    pass bundle "busybox rootfs with $(find "$ROOTFS/bin" -mindepth 1 | wc -l) entries in $ROOTFS/bin" ||
    fail bundle "no applet links in $ROOTFS/bin"

# bundle NAME CGROUPS_PATH ARGS_JSON [EXTRA_JQ]: $WORK/NAME/config.json from `myrt spec`
bundle() {
    local dir=$WORK/$1
    mkdir -p "$dir"
    "$MYRT" spec -b "$dir" || { fail "spec-$1" "myrt spec failed"; return 1; }
    # CAP_MKNOD: so that a mknod/open denial can only come from the device program
    jq --arg rootfs "$ROOTFS" --arg cg "$2" --argjson args "$3" '
        .root = {path: $rootfs, readonly: true}
        | .hostname = "smoke"
        | .process.terminal = false
        | .process.args = $args
        | .process.capabilities |= with_entries(.value += ["CAP_MKNOD"])
        | .linux.cgroupsPath = $cg
        | .linux.resources.memory.limit = 67108864
        | .linux.resources.pids.limit = 64
        | .mounts += [{destination: "/tmp", type: "tmpfs", source: "tmpfs",
                       options: ["nosuid", "mode=1777", "size=1m"]}]
        '"${4:-}" "$dir/config.json" >"$dir/config.new" && mv "$dir/config.new" "$dir/config.json" ||
        { fail "spec-$1" "jq edit failed"; return 1; }
}

bundle c1 /myrt/c1 '["echo", "hello from myrt"]'
bundle c2 /myrt/c2 '["sh", "-c", "exit 3"]'
# `myrt spec` adds a cgroup namespace on a v2 host (as runc does): c3 goes without one (its
# cgroup2 mount shows the whole hierarchy), c4 keeps it (its cgroup is the mount's root)
bundle c3 /myrt/c3 '["sleep", "100000"]' '| .linux.namespaces |= map(select(.type != "cgroup"))'
# c4's cgroup2 mount is read-write, so that it can make a child cgroup of its own (nsdelegate)
bundle c4 /myrt/a/b '["sleep", "100000"]' \
    '| .linux.namespaces |= map(select(.type != "cgroup")) + [{type: "cgroup"}]
     | (.mounts[] | select(.destination == "/sys/fs/cgroup") | .options) |= map(select(. != "ro"))'
devs=$(jq -cS .linux.resources.devices "$WORK/c3/config.json")
check spec "linux.resources.devices (containerd-style)" '[{"access":"rwm","allow":false}]' "$devs"

# ---------------------------------------------------------------- run ----------
out=$(myrt run -b "$WORK/c1" c1 </dev/null 2>"$WORK/c1.err")
rc=$?
check run-echo "exit status" 0 "$rc"
check run-echo "output" "hello from myrt" "$out"
[ -s "$WORK/c1.err" ] && echo "  stderr: $(head -c 2000 "$WORK/c1.err")"
[ ! -d $CG/myrt/c1 ] && pass run-echo "cgroup $CG/myrt/c1 removed after run" ||
    fail run-echo "cgroup $CG/myrt/c1 still there after run"

myrt run -b "$WORK/c2" c2 </dev/null >/dev/null 2>"$WORK/c2.err"
rc=$?
check run-exit3 "exit status" 3 "$rc"
[ "$rc" = 3 ] || echo "  stderr: $(head -c 2000 "$WORK/c2.err")"

# ---------------------------------------------------------------- create/start -
myrt create -b "$WORK/c3" c3 </dev/null >"$WORK/c3.out" 2>&1
rc=$?
check create "exit status" 0 "$rc"
[ "$rc" = 0 ] || echo "  output: $(head -c 2000 "$WORK/c3.out")"
check create "state" created "$(status_of c3)"
D3=$CG/myrt/c3
[ -d "$D3" ] && pass create "cgroup $D3 exists" || fail create "cgroup $D3 missing"
pid=$(myrt state c3 2>/dev/null | jq -r .pid)
grep -qx "$pid" "$D3/cgroup.procs" 2>/dev/null &&
    pass create "init pid $pid in $D3/cgroup.procs" ||
    fail create "init pid $pid not in $D3/cgroup.procs ($(tr '\n' ' ' <"$D3/cgroup.procs" 2>&1))"
check limits "$D3/memory.max" 67108864 "$(cat "$D3/memory.max" 2>&1)"
check limits "$D3/pids.max" 64 "$(cat "$D3/pids.max" 2>&1)"
sc=$(cat $CG/myrt/cgroup.subtree_control 2>&1)
case " $sc " in *" memory "*" pids "*) pass limits "$CG/myrt/cgroup.subtree_control has memory, pids ($sc)" ;;
*) fail limits "$CG/myrt/cgroup.subtree_control lacks memory or pids: $sc" ;; esac

myrt start c3 >"$WORK/c3.start" 2>&1
check start "exit status" 0 "$?"
check start "state" running "$(wait_status c3 running)"

# ---------------------------------------------------------------- pause/resume -
myrt pause c3 >"$WORK/c3.pause" 2>&1
rc=$?
check pause "exit status" 0 "$rc"
[ "$rc" = 0 ] || echo "  output: $(head -c 2000 "$WORK/c3.pause")"
check pause "state" paused "$(status_of c3)"
check pause "$D3/cgroup.freeze" 1 "$(cat "$D3/cgroup.freeze" 2>&1)"
check pause "$D3/cgroup.events frozen" 1 "$(flat_key "$D3/cgroup.events" frozen)"
myrt resume c3 >"$WORK/c3.resume" 2>&1
check resume "exit status" 0 "$?"
check resume "state" running "$(status_of c3)"
check resume "$D3/cgroup.freeze" 0 "$(cat "$D3/cgroup.freeze" 2>&1)"
check resume "$D3/cgroup.events frozen" 0 "$(flat_key "$D3/cgroup.events" frozen)"

# ---------------------------------------------------------------- exec ---------
out=$(myrt exec c3 sh -c 'echo exec-out; exit 7' </dev/null 2>"$WORK/c3.exec")
rc=$?
check exec "exit status" 7 "$rc"
check exec "output" exec-out "$out"
[ "$rc" = 7 ] || echo "  stderr: $(head -c 2000 "$WORK/c3.exec")"

# cgroup2 as the container sees it (no cgroup namespace here: the whole hierarchy, read-only)
out=$(myrt exec c3 sh -c 'awk '\''$5 == "/sys/fs/cgroup" { print $(NF-2), $6 }'\'' /proc/self/mountinfo
    cat /sys/fs/cgroup/myrt/c3/pids.max' </dev/null 2>&1)
check cgroup-mount "inside: /sys/fs/cgroup type, options; pids.max" \
    "cgroup2 ro,nosuid,nodev,noexec,relatime"$'\n'"64" "$out"

# ---------------------------------------------------------------- devices ------
out=$(myrt exec c3 sh -c 'echo x >/dev/null && cat /dev/null && head -c 4 /dev/zero | wc -c' </dev/null 2>&1)
check devices "/dev/null write+read, 4 bytes from /dev/zero" 4 "$out"
# Control outside the container (the guest's devtmpfs): 8:0 has no disk here, so open gives
# ENXIO; inside, the device program must refuse it first (EPERM).
ctl=/dev/myrt-smoke-sda
rm -f "$ctl" && mknod "$ctl" b 8 0 && ctl_err=$(cat "$ctl" 2>&1 >/dev/null); rm -f "$ctl"
case $ctl_err in *"No such device"*) pass devices "control: opening b 8:0 outside the container: ${ctl_err##*: }" ;;
*) fail devices "control: opening b 8:0 outside the container: expected ENXIO, got: $ctl_err" ;; esac
out=$(myrt exec c3 sh -c 'mknod /tmp/sda b 8 0 && echo mknod-ok; cat /tmp/sda >/dev/null 2>/tmp/err; echo "open rc=$?: $(cat /tmp/err)"
    mknod /tmp/null c 1 3 && echo x >/tmp/null && echo null-copy-ok' </dev/null 2>&1)
# runc's AllowedDevices (which myrt adds after the spec's rules, like runc) hold "b *:* m": the
# node may be created, but not opened.
case $out in *mknod-ok*) pass devices "mknod b 8:0 allowed (runc's default rule \"b *:* m\")" ;;
*) fail devices "mknod b 8:0: $out" ;; esac
case $out in *"open rc=1"*"Operation not permitted"*) pass devices "open b 8:0 denied by the device program (EPERM)" ;;
*) fail devices "open b 8:0 inside: expected EPERM, got: $out" ;; esac
case $out in *null-copy-ok*) pass devices "a new c 1:3 node is usable (allowed rwm)" ;;
*) fail devices "mknod+write c 1:3: $out" ;; esac

# ---------------------------------------------------------------- kill/delete --
myrt exec -d c3 sleep 100000 </dev/null >/dev/null 2>&1
n=$(wc -l <"$D3/cgroup.procs" 2>/dev/null || echo 0)
[ "$n" -ge 2 ] && pass kill-all "$n processes in the cgroup before kill --all" ||
    fail kill-all "expected >= 2 processes in $D3 before kill --all, got $n"
myrt kill --all c3 KILL >"$WORK/c3.kill" 2>&1
rc=$?
check kill-all "exit status" 0 "$rc"
[ "$rc" = 0 ] || echo "  output: $(head -c 2000 "$WORK/c3.kill")"
check kill-all "state" stopped "$(wait_status c3 stopped)"
check kill-all "$D3/cgroup.procs" "" "$(cat "$D3/cgroup.procs" 2>&1)"
myrt delete c3 >"$WORK/c3.delete" 2>&1
rc=$?
check delete "exit status" 0 "$rc"
[ "$rc" = 0 ] || echo "  output: $(head -c 2000 "$WORK/c3.delete")"
[ ! -e "$D3" ] && pass delete "cgroup $D3 is gone" || fail delete "cgroup $D3 still exists"
[ ! -e "$STATE/c3" ] && pass delete "state dir $STATE/c3 is gone" || fail delete "$STATE/c3 still exists"

# delete --force of a running container (what a shim does on abnormal teardown)
myrt run -d -b "$WORK/c3" c3 </dev/null >"$WORK/c3.run" 2>&1
check force-delete "run -d: state" running "$(wait_status c3 running)"
myrt delete --force c3 >"$WORK/c3.fdelete" 2>&1
rc=$?
check force-delete "exit status" 0 "$rc"
[ "$rc" = 0 ] || echo "  output: $(head -c 2000 "$WORK/c3.fdelete")"
[ ! -e "$D3" ] && [ ! -e "$STATE/c3" ] && pass force-delete "cgroup $D3 and $STATE/c3 are gone" ||
    fail force-delete "left behind: $(find "$D3" "$STATE/c3" -maxdepth 0 2>/dev/null | tr "\n" " ")"

# ---------------------------------------------------------------- nested -------
D4=$CG/myrt/a/b
myrt create -b "$WORK/c4" c4 </dev/null >"$WORK/c4.out" 2>&1
rc=$?
check nested "create exit status" 0 "$rc"
[ "$rc" = 0 ] || echo "  output: $(head -c 2000 "$WORK/c4.out")"
myrt start c4 >/dev/null 2>&1
check nested "state" running "$(wait_status c4 running)"
pid=$(myrt state c4 2>/dev/null | jq -r .pid)
grep -qx "$pid" "$D4/cgroup.procs" 2>/dev/null &&
    pass nested "init pid $pid in $D4/cgroup.procs" ||
    fail nested "init pid $pid not in $D4/cgroup.procs"
sc=$(cat $CG/myrt/a/cgroup.subtree_control 2>&1)
case " $sc " in *" memory "*" pids "*) pass nested "$CG/myrt/a/cgroup.subtree_control: $sc" ;;
*) fail nested "$CG/myrt/a/cgroup.subtree_control lacks memory or pids: $sc" ;; esac
check nested "$D4/memory.max, pids.max" "67108864 64" "$(cat "$D4/memory.max" "$D4/pids.max" 2>&1 | tr '\n' ' ' | sed 's/ $//')"
# with a cgroup namespace the container's cgroup is its root, and its cgroup2 mount shows it
out=$(myrt exec c4 sh -c 'cat /proc/self/cgroup; cat /sys/fs/cgroup/pids.max
    grep -qx 1 /sys/fs/cgroup/cgroup.procs && echo "init (pid 1) listed"' </dev/null 2>&1)
check nested "inside (cgroupns): /proc/self/cgroup, pids.max, cgroup.procs" \
    "0::/"$'\n'"64"$'\n'"init (pid 1) listed" "$out"
# a process of the container moves itself into a child cgroup it made (allowed inside its
# cgroup namespace with nsdelegate); ps, pause, kill --all and delete must cover the subtree
myrt exec -d c4 sh -c 'mkdir /sys/fs/cgroup/inner && echo $$ >/sys/fs/cgroup/inner/cgroup.procs &&
    exec sleep 100000' </dev/null >"$WORK/c4.exec" 2>&1
n=0
for _ in $(seq 1 20); do
    n=$(grep -c . "$D4/inner/cgroup.procs" 2>/dev/null)
    [ "${n:-0}" -ge 1 ] && break
    sleep 0.5
done
check nested "processes in $D4/inner (made by the container)" 1 "${n:-0}"
[ "${n:-0}" = 1 ] || echo "  exec output: $(head -c 2000 "$WORK/c4.exec")"
check nested "myrt ps -f json: count (init + the one in inner)" 2 "$(myrt ps -f json c4 2>&1 | jq length 2>&1)"
# kill --all of a frozen container (cgroup.kill / SIGKILL reaches frozen tasks on v2)
myrt pause c4 >/dev/null 2>&1
check nested "state after pause" paused "$(status_of c4)"
check nested "$D4/inner/cgroup.events frozen (inherited)" 1 "$(flat_key "$D4/inner/cgroup.events" frozen)"
myrt kill --all c4 KILL >"$WORK/c4.kill" 2>&1
rc=$?
check nested "kill --all while paused: exit status" 0 "$rc"
[ "$rc" = 0 ] || echo "  output: $(head -c 2000 "$WORK/c4.kill")"
check nested "$D4/cgroup.procs, inner/cgroup.procs after kill --all" "" \
    "$(cat "$D4/cgroup.procs" "$D4/inner/cgroup.procs" 2>&1)"
st=$(wait_status c4 stopped)
check nested "state" stopped "$st"
myrt delete c4 >"$WORK/c4.delete" 2>&1
rc=$?
check nested "delete exit status" 0 "$rc"
[ "$rc" = 0 ] || echo "  output: $(head -c 2000 "$WORK/c4.delete")"
[ ! -e "$D4" ] && pass nested "cgroup $D4 and its child inner are gone" ||
    fail nested "cgroup $D4 still exists: $(find "$D4" -maxdepth 1 -type d | tr '\n' ' ')"

# ---------------------------------------------------------------- summary ------
left=$(myrt list -q 2>/dev/null | tr '\n' ' ')
check summary "containers left in $STATE" "" "$left"
echo "summary: $FAILS failure(s) in $SECONDS s on $(uname -r)"
[ "$FAILS" = 0 ]
