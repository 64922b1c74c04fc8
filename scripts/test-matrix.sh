#!/bin/bash
# Runs the end-to-end suites (ctr and Kubernetes CRI) against several containerd versions and
# prints a table suite x version of passed/total tests and seconds (F = that suite failed).
#
#   test-matrix.sh [VERSION...]        VERSION: 1.6 (installed), 1.7 (trixie), 2.1 (sid); default all
#
# Versions other than 1.6 are downloaded and unpacked once by scripts/containerd-versions.sh
# (no network afterwards); each test starts its own private containerd from MYRT_CONTAINERD and
# uses the ctr of the same version. Builds the myrt binaries and the test binaries once first.
# The CRI suites (cri_*: pods through containerd's CRI plugin, handlers myrt and runc side by
# side) run in a second cargo call with --test-threads=1: each test starts a containerd with
# the CRI plugin, and their latency rows stay comparable; those rows ("CRI latency", per call,
# myrt next to runc) are printed per version after the table.
# Exits non-zero when any suite failed or did not run; the full cargo output per version is in
# LOG_DIR/<version>.log.
#
# Environment:
#   MYRT_E2E_RUNTIME      runtime the ctr suites drive (default io.containerd.myrt.v1; set
#                         io.containerd.runc.v2 to check the suites themselves); the CRI suites
#                         always run both handlers (MYRT_CRI_HANDLERS=myrt|runc narrows them)
#   MYRT_MATRIX_SUITES    the test targets (default: the lists below; cri_* suites whose
#                         tests/tests/<suite>.rs exists)
#   MYRT_MATRIX_LOG_DIR   LOG_DIR (default target/test-matrix)
#   CARGO_TEST_ARGS       extra args after `--`, e.g. a test name filter
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo" || exit 1
[ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH"
export PATH

default_suites="e2e_ctr e2e_stats e2e_update e2e_oom e2e_shim_cgroup e2e_image e2e_checkpoint e2e_rdt e2e_security"
for s in cri_pod cri_kubelet cri_bad_input cri_options cri_stream cri_userns; do
    [ -f "tests/tests/$s.rs" ] && default_suites+=" $s"
done
SUITES=${MYRT_MATRIX_SUITES:-$default_suites}
read -ra suites <<<"$SUITES"
# The CRI suites run apart (one test at a time), after the ctr suites.
ctr_args=()
cri_args=()
for s in "${suites[@]}"; do
    case $s in
    cri_*) cri_args+=(--test "$s") ;;
    *) ctr_args+=(--test "$s") ;;
    esac
done
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

test_args=("${ctr_args[@]}" "${cri_args[@]}")

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

# result[suite,version] = "passed/total Ns" or "F passed/total Ns" or "-" (did not run).
declare -A result
failed=0
for v in "${versions[@]}"; do
    log=$logs/$v.log
    : >"$log"
    t0=$SECONDS
    if [ ${#ctr_args[@]} -gt 0 ]; then
        say "$v: cargo test --workspace ${ctr_args[*]} (log: $log)"
        MYRT_CONTAINERD=${bin[$v]} cargo test --workspace --no-fail-fast "${ctr_args[@]}" \
            -- "${extra[@]}" >>"$log" 2>&1
    fi
    if [ ${#cri_args[@]} -gt 0 ]; then
        say "$v: cargo test --workspace ${cri_args[*]} -- --test-threads=1 --nocapture (log: $log)"
        MYRT_CONTAINERD=${bin[$v]} cargo test --workspace --no-fail-fast "${cri_args[@]}" \
            -- --test-threads=1 --nocapture "${extra[@]}" >>"$log" 2>&1
    fi
    say "$v: done in $((SECONDS - t0)) s"
    # "Running tests/e2e_ctr.rs (...)", then that binary's output ending in its own
    # "test result: ok. 12 passed; 0 failed; ...; finished in 17.51s". A failed test's output
    # (shown before that line) holds the "test result:" of its re-run in a private namespace:
    # the last line counts.
    while read -r suite status passed failedn secs; do
        total=$((passed + failedn))
        if [ "$status" = ok ]; then
            result[$suite,$v]="$passed/$total ${secs}s"
        else
            result[$suite,$v]="F $passed/$total ${secs}s"
        fi
    done < <(awk '
        function flush() { if (s != "" && r != "") print s, r; r = "" }
        /^ *Running / { flush(); s = $2; sub(/^tests\//, "", s); sub(/\.rs$/, "", s); next }
        /^test result:/ {
            t = $NF; sub(/s$/, "", t)
            r = (($3 == "ok.") ? "ok" : "FAILED") " " $4 " " $6 " " int(t + 0.5)
        }
        END { flush() }' "$log")
done

# The table.
printf '\n%-18s' "suite \\ containerd"
for v in "${versions[@]}"; do printf ' %16s' "$v"; done
printf '\n'
for s in "${suites[@]}"; do
    printf '%-18s' "$s"
    for v in "${versions[@]}"; do
        r=${result[$s,$v]:--}
        case $r in F* | -) failed=1 ;; esac
        printf ' %16s' "$r"
    done
    printf '\n'
done
printf '(passed/total and seconds; F: the suite failed; -: it did not run; ctr suites: runtime %s; %d s)\n' \
    "${MYRT_E2E_RUNTIME:-io.containerd.myrt.v1}" $((SECONDS - t_start))
if [ ${#cri_args[@]} -gt 0 ]; then
    for v in "${versions[@]}"; do
        printf '\nCRI call latencies, containerd %s:\n' "$v"
        # Each test prints a header and its row: keep a header only where it changes.
        awk '/^CRI latency/ { if ($0 ~ /handler\/pod/) { if ($0 == head) next; head = $0 } print }' \
            "$logs/$v.log"
    done
fi
exit "$failed"
