#!/bin/bash
# The project's test command, and what CI runs after scripts/setup.sh:
#   build (workspace + test binaries), cargo fmt --check, cargo clippy -D warnings, then
#   `cargo test --workspace` inside a private mount + pid namespace, with the busybox image built
#   first and MYRT_IMAGE_DIR / MYRT_BIN_DIR telling the tests where it and the binaries are.
# Prints every step's verdict and cargo test's summaries; exits non-zero if anything failed.
#
# Environment: MYRT_E2E_RUNTIME (runtime the e2e tests drive, default io.containerd.myrt.v1),
# MYRT_BIN_DIR (default target/debug), CARGO_TEST_ARGS (extra args after `cargo test --workspace`,
# e.g. "-p myrt-tests --test e2e_ctr").
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo" || exit 1
# A root shell from `su`/CI may lack the rustup dir on PATH.
[ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH"
export PATH
logs=$repo/target/test-logs
mkdir -p "$logs"
failed=()

step() {
    local name=$1
    shift
    echo "==> $name: $*"
    local t0=$SECONDS
    if "$@"; then
        echo "==> $name: ok ($((SECONDS - t0)) s)"
    else
        echo "==> $name: FAILED ($((SECONDS - t0)) s)"
        failed+=("$name")
        return 1
    fi
}

finish() {
    echo
    echo "==> summary"
    if [ -f "$logs/cargo-test.log" ]; then
        grep -E '^\s+Running |^\s+Doc-tests |^test result:|^SKIP ' "$logs/cargo-test.log" || true
    fi
    if [ "${#failed[@]}" -gt 0 ]; then
        echo "==> FAILED: ${failed[*]}"
        exit 1
    fi
    echo "==> all steps passed"
    exit 0
}

# cargo test, in one private mount + pid namespace when root (called through `step`).
# shellcheck disable=SC2317
run_tests() {
    local extra rc
    read -ra extra <<<"${CARGO_TEST_ARGS:-}"
    if [ "$(id -u)" -eq 0 ]; then
        # One private mount + pid namespace for the whole run: nothing the tests mount or start
        # reaches the host, and everything left dies with the namespace. The outer namespace ids
        # let the tests verify they are inside (tests/src/isolation.rs).
        unshare --mount --pid --fork --kill-child --propagation private --mount-proc \
            env MYRT_E2E_OUTER_PIDNS="$(readlink /proc/self/ns/pid)" \
            MYRT_E2E_OUTER_MNTNS="$(readlink /proc/self/ns/mnt)" \
            cargo test --workspace --no-fail-fast "${extra[@]}" 2>&1 | tee "$logs/cargo-test.log"
        rc=${PIPESTATUS[0]}
    else
        echo "test.sh: not root: tests that need root will SKIP" >&2
        cargo test --workspace --no-fail-fast "${extra[@]}" 2>&1 | tee "$logs/cargo-test.log"
        rc=${PIPESTATUS[0]}
    fi
    return "$rc"
}

step fmt cargo fmt --all -- --check
if ! step build cargo build --workspace || ! step build-tests cargo test --workspace --no-run; then
    finish
fi
step clippy cargo clippy --workspace --all-targets -- -D warnings

export MYRT_IMAGE_DIR=${MYRT_IMAGE_DIR:-$repo/target/myrt-e2e-image}
export MYRT_BIN_DIR=${MYRT_BIN_DIR:-$repo/target/debug}
step image scripts/build-image.sh "$MYRT_IMAGE_DIR" || finish

rm -f "$logs/cargo-test.log"
step test run_tests
finish
