#!/bin/bash
# vm-tests.sh - the project's Rust tests (engine and end-to-end through containerd) on a pure
# cgroup v2 host.
#
#   scripts/vm-tests.sh --vm    on this (cgroup v1 hybrid) host: builds the test binaries here
#                               (cargo test --no-run), then boots the QEMU guest of
#                               ../shared/vm/vm-run.sh (Debian's 6.1 kernel, cgroup2 alone at
#                               /sys/fs/cgroup) and runs this script inside it
#   scripts/vm-tests.sh         as root on a cgroup v2 host (inside that guest, or a real one),
#                               with the binaries already built
#
# The guest is emulated (fork+exec ~60 ms, CPU ~20x slower), so it runs the focused set in PLAN
# below: what reads or writes cgroups or differs between the hierarchies. Every test binary runs
# in its own private mount + pid namespace (as scripts/test.sh does), with /tmp a tmpfs (the
# guest's root is an overlay, which cannot hold containerd's overlay snapshots).
# Prints each binary's `test result:` line and a summary; exits non-zero if any test failed,
# if no test ran, or (with --vm) 125 when the VM itself did not run.
#
# Environment: MYRT_IMAGE_DIR (busybox image; built with scripts/build-image.sh when missing),
# VM_TIMEOUT (--vm only; default 1800 s), VM_MEM (default 3072 MiB here), VM_TESTS_ONLY (--vm
# only: space-separated target names of PLAN to run, e.g. "lsm cri_fixtures"; default all).
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
[ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH"
export PATH
PLAN_FILE=$REPO/target/vm-tests/plan

# target  test-filter arguments (libtest: names are substrings; --skip drops; --exact for one).
# Engine: the cgroup manager's kernel tests, then every engine test binary whole (lifecycle has
# pause/resume through cgroup.freeze, kill --all through cgroup.kill, exec joining the cgroup;
# checkpoint has CRIU freezing through cgroup.freeze and restoring into the v2 cgroup).
# e2e through a private containerd 1.6: the cgroup-facing suites whole, and from e2e_ctr the
# cases that touch the cgroup (pause/resume, kill -a, ps, exec, exit codes); from e2e_checkpoint
# the ctr round trip, leave-running with a copy, and the Checkpoint call's defaults and exit.
# cri_fixtures: kubelet's specs with their cgroup limits converted for v2. lsm: the guest's
# kernel has AppArmor on (this host has no LSM), so a profile is loaded and enforced there.
# cri_*: pods through containerd 1.6's CRI plugin with handler myrt: the lifecycle (pod netns on
# the CNI bridge), stats and update (memory.max, cpu.weight), OOMKilled from the v2 memory
# events. ~70 s per test emulated; host_network, kubelet_mounts and containerd_restart passed
# there too (VM_TESTS_ONLY="cri_pod cri_kubelet" with those names added) but are not v2-specific.
PLAN=(
    "myrt_runtime cgroups::"
    "lifecycle"
    "update"
    "oom"
    "config"
    "bad_input"
    "checkpoint"
    "cri_fixtures"
    "lsm"
    "e2e_stats"
    "e2e_update"
    "e2e_oom"
    "e2e_shim_cgroup"
    "e2e_checkpoint restore_continues_the_counter leave_running_checkpoint shim_checkpoint_without_options"
    "e2e_ctr pause_and_resume kill_all ps_lists exec_from_image exit_codes_from_image echo_from_rootfs bad_input_in_a_shared_shim"
    "cri_pod lifecycle_myrt stats_and_update_myrt"
    "cri_kubelet oom_killed_myrt"
)

if [ "${1:-}" = --vm ]; then
    vm=$REPO/../shared/vm/vm-run.sh
    [ -x "$vm" ] || { echo "vm-tests: $vm not found" >&2; exit 125; }
    cd "$REPO" || exit 1
    mkdir -p "$(dirname "$PLAN_FILE")"
    # target name -> test executable, from cargo's own build messages
    cargo test --workspace --no-run --message-format=json 2>"$REPO/target/vm-tests/build.log" |
        jq -r 'select(.reason == "compiler-artifact" and .executable != null and .profile.test)
               | "\(.target.name) \(.executable) \(.manifest_path | rtrimstr("/Cargo.toml"))"' \
            >"$REPO/target/vm-tests/executables" ||
        { cat "$REPO/target/vm-tests/build.log" >&2; echo "vm-tests: build failed" >&2; exit 1; }
    : >"$PLAN_FILE"
    for entry in "${PLAN[@]}"; do
        read -r name filters <<<"$entry"
        if [ -n "${VM_TESTS_ONLY:-}" ] && [[ " $VM_TESTS_ONLY " != *" $name "* ]]; then
            continue
        fi
        line=$(awk -v n="$name" '$1 == n { print $2, $3; exit }' "$REPO/target/vm-tests/executables")
        [ -n "$line" ] || { echo "vm-tests: no test executable for target $name" >&2; exit 1; }
        echo "$name $line $filters" >>"$PLAN_FILE"
    done
    cargo build --workspace --bins 2>>"$REPO/target/vm-tests/build.log" ||
        { echo "vm-tests: cargo build failed" >&2; exit 1; }
    export MYRT_IMAGE_DIR=${MYRT_IMAGE_DIR:-$REPO/target/myrt-e2e-image}
    [ -f "$MYRT_IMAGE_DIR/busybox-rootfs.stamp" ] ||
        "$HERE/build-image.sh" "$MYRT_IMAGE_DIR" || { echo "vm-tests: image build failed" >&2; exit 1; }
    export MYRT_BIN_DIR=${MYRT_BIN_DIR:-$REPO/target/debug}
    export VM_TIMEOUT=${VM_TIMEOUT:-1800} VM_MEM=${VM_MEM:-3072}
    export VM_PASS_ENV="MYRT_IMAGE_DIR MYRT_BIN_DIR RUST_BACKTRACE RUST_LOG"
    t0=$(date +%s)
    "$vm" "$(printf '%q' "$HERE/vm-tests.sh")"
    rc=$?
    echo "vm-tests: VM run (boot to power-off) took $(($(date +%s) - t0)) s, exit $rc" >&2
    exit "$rc"
fi

# --- inside the cgroup v2 host ---
[ "$(id -u)" -eq 0 ] || { echo "vm-tests: run as root" >&2; exit 1; }
fstype=$(stat -f -c %T /sys/fs/cgroup)
[ "$fstype" = cgroup2fs ] || { echo "vm-tests: /sys/fs/cgroup is $fstype, not cgroup2: not a pure v2 host" >&2; exit 1; }
[ -f "$PLAN_FILE" ] || { echo "vm-tests: $PLAN_FILE missing: run with --vm first (it builds)" >&2; exit 1; }
echo "vm-tests: kernel $(uname -r), cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"

# The guest's / is an overlay: containerd's snapshots and the tests' temp dirs need a tmpfs.
# A checkout under /tmp (CI clones there) would vanish under it: keep it reachable at its path
# (the test binaries have their own and myrt's paths compiled in).
if [ "$(stat -f -c %T /tmp)" != tmpfs ]; then
    keep=/run/vm-tests-repo
    mkdir -p "$keep" && mount --bind "$REPO" "$keep" ||
        { echo "vm-tests: cannot bind $REPO" >&2; exit 1; }
    mount -t tmpfs -o size=1536m tmpfs /tmp || { echo "vm-tests: cannot mount a tmpfs on /tmp" >&2; exit 1; }
    if [ ! -f "$PLAN_FILE" ]; then
        mkdir -p "$REPO" && mount --bind "$keep" "$REPO" ||
            { echo "vm-tests: cannot bind $REPO back under the new /tmp" >&2; exit 1; }
    fi
fi
[ -f "$PLAN_FILE" ] || { echo "vm-tests: $PLAN_FILE unreachable after mounting /tmp" >&2; exit 1; }
export TMPDIR=/tmp

failed=()
total_passed=0
while read -r name exe dir filters; do
    read -ra args <<<"$filters"
    log=/tmp/vm-tests-$name.log
    echo "==> $name ${args[*]}"
    t0=$SECONDS
    # shellcheck disable=SC2016
    (cd "$dir" && unshare --mount --pid --fork --kill-child --propagation private --mount-proc \
        env MYRT_E2E_OUTER_PIDNS="$(readlink /proc/self/ns/pid)" \
        MYRT_E2E_OUTER_MNTNS="$(readlink /proc/self/ns/mnt)" \
        "$exe" --test-threads=1 "${args[@]}") >"$log" 2>&1
    rc=$?
    result=$(grep -E '^test result:' "$log" | tail -1)
    passed=$(sed -nE 's/.* ([0-9]+) passed.*/\1/p' <<<"$result")
    total_passed=$((total_passed + ${passed:-0}))
    grep -E '^test .* \.\.\. (FAILED|ignored)|^SKIP ' "$log"
    echo "==> $name: ${result:-no result line} (exit $rc, $((SECONDS - t0)) s)"
    if [ "$rc" -ne 0 ] || [ "${passed:-0}" -eq 0 ]; then
        failed+=("$name")
        tail -n 80 "$log"
    fi
done <"$PLAN_FILE"

echo
if [ "$total_passed" -eq 0 ]; then
    echo "vm-tests: FAILED on cgroup v2: no test ran"
    exit 1
fi
if [ "${#failed[@]}" -gt 0 ]; then
    echo "vm-tests: FAILED on cgroup v2: ${failed[*]} ($total_passed tests passed)"
    exit 1
fi
echo "vm-tests: all passed on cgroup v2 ($total_passed tests)"
