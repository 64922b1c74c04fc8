#!/bin/bash
# Runs the end-to-end ctr suites against several containerd versions and prints a table
# suite x version of passed/total tests (F = that suite failed).
#
#   test-matrix.sh [VERSION...]        VERSION: 1.6 (installed), 1.7 (trixie), 2.1 (sid); default all
#
# Versions other than 1.6 are downloaded and unpacked once by scripts/containerd-versions.sh
# (no network afterwards); each test starts its own private containerd from MYRT_CONTAINERD and
# uses the ctr of the same version. Builds the myrt binaries and the test binaries once first.
# Exits non-zero when any suite failed or did not run; the full cargo output per version is in
# LOG_DIR/<version>.log.
#
# Environment:
#   MYRT_E2E_RUNTIME      runtime the suites drive (default io.containerd.myrt.v1; set
#                         io.containerd.runc.v2 to check the suites themselves)
#   MYRT_MATRIX_SUITES    the test targets (default: the list below)
#   MYRT_MATRIX_LOG_DIR   LOG_DIR (default target/test-matrix)
#   CARGO_TEST_ARGS       extra args after `--`, e.g. a test name filter
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo" || exit 1
[ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH"
export PATH

SUITES=${MYRT_MATRIX_SUITES:-e2e_ctr e2e_stats e2e_update e2e_oom e2e_shim_cgroup e2e_image e2e_checkpoint e2e_rdt e2e_security}
read -ra suites <<<"$SUITES"
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(1.6 1.7 2.1)
logs=${MYRT_MATRIX_LOG_DIR:-$repo/target/test-matrix}
mkdir -p "$logs"
read -ra extra <<<"${CARGO_TEST_ARGS:-}"

say() { printf '==> %s\n' "$*"; }
t_start=$SECONDS

# containerd binary per version.
declare -A bin
for v in "${versions[@]}"; do
    case $v in
    1.6) bin[$v]=$(scripts/containerd-versions.sh path 1.6) || exit 1 ;;
    1.7 | 2.1) bin[$v]=$(scripts/containerd-versions.sh fetch "$v") || exit 1 ;;
    *)
        echo "test-matrix.sh: unknown version '$v' (1.6, 1.7, 2.1)" >&2
        exit 2
        ;;
    esac
    say "$v: ${bin[$v]} ($("${bin[$v]}" --version | awk '{ print $3 }'))"
done

test_args=()
for s in "${suites[@]}"; do test_args+=(--test "$s"); done

# --workspace, like scripts/test.sh: the same feature unification, so nothing test.sh built is
# built again (selecting packages with -p resolves features differently and rebuilds).
say "build: cargo build --workspace; cargo test --workspace ${test_args[*]} --no-run"
if ! cargo build -q --workspace ||
    ! cargo test -q --workspace "${test_args[@]}" --no-run 2>/dev/null; then
    echo "test-matrix.sh: build failed" >&2
    exit 1
fi
export MYRT_BIN_DIR=${MYRT_BIN_DIR:-$repo/target/debug}
export MYRT_IMAGE_DIR=${MYRT_IMAGE_DIR:-$repo/target/myrt-e2e-image}
scripts/build-image.sh "$MYRT_IMAGE_DIR" >/dev/null || {
    echo "test-matrix.sh: scripts/build-image.sh failed" >&2
    exit 1
}

# result[suite,version] = "passed/total" or "F passed/total" or "-" (did not run).
declare -A result
failed=0
for v in "${versions[@]}"; do
    log=$logs/$v.log
    say "$v: cargo test --workspace ${test_args[*]} (log: $log)"
    t0=$SECONDS
    MYRT_CONTAINERD=${bin[$v]} cargo test --workspace --no-fail-fast "${test_args[@]}" \
        -- "${extra[@]}" >"$log" 2>&1
    say "$v: done in $((SECONDS - t0)) s"
    # "Running tests/e2e_ctr.rs (...)", then that binary's output ending in its own
    # "test result: ok. 12 passed; 0 failed; ...". A failed test's output (shown before that line)
    # holds the "test result:" of its re-run in a private namespace: the last line counts.
    while read -r suite status passed failedn; do
        total=$((passed + failedn))
        if [ "$status" = ok ]; then
            result[$suite,$v]="$passed/$total"
        else
            result[$suite,$v]="F $passed/$total"
        fi
    done < <(awk '
        function flush() { if (s != "" && r != "") print s, r; r = "" }
        /^ *Running / { flush(); s = $2; sub(/^tests\//, "", s); sub(/\.rs$/, "", s); next }
        /^test result:/ { r = (($3 == "ok.") ? "ok" : "FAILED") " " $4 " " $6 }
        END { flush() }' "$log")
done

# The table.
printf '\n%-18s' "suite \\ containerd"
for v in "${versions[@]}"; do printf ' %12s' "$v"; done
printf '\n'
for s in "${suites[@]}"; do
    printf '%-18s' "$s"
    for v in "${versions[@]}"; do
        r=${result[$s,$v]:--}
        case $r in F* | -) failed=1 ;; esac
        printf ' %12s' "$r"
    done
    printf '\n'
done
printf '(passed/total; F: the suite failed; -: it did not run; runtime %s; %d s)\n' \
    "${MYRT_E2E_RUNTIME:-io.containerd.myrt.v1}" $((SECONDS - t_start))
exit "$failed"
