#!/bin/bash
# conformance.sh - the OCI runtime-tools validation suite against myrt, through the kit in
# ../shared/conformance (builds the suite from Debian's source package, runs every program
# isolated in its own mount + pid namespace). Prints the per-program results that are not PASS,
# the comparison with crun 1.8.1's and runc 1.1.5's baselines on this machine kind, and last the
# summary line `conformance: PASS=… FAIL=… ERROR=… EMPTY=… ok=… not_ok=… skipped=…`.
#
#   scripts/conformance.sh [OUTDIR]     (default target/conformance; replaced on each run)
#
# MYRT: the binary (default target/release/myrt). Exit status: non-zero when the kit cannot be
# set up or the run did not complete; the results themselves are reported, not judged (the
# remaining failures and their causes are listed in docs/conformance.md).
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
kit=$repo/../shared/conformance
bin=${MYRT:-$repo/target/release/myrt}
out=${1:-$repo/target/conformance}

[ -x "$kit/run.sh" ] || { echo "conformance: the kit $kit is missing" >&2; exit 1; }
[ -x "$bin" ] || { echo "conformance: $bin missing: cargo build --release -p myrt-runtime" >&2; exit 1; }
"$kit/setup.sh" </dev/null || { echo "conformance: kit set-up failed" >&2; exit 1; }
rm -rf "$out"
"$kit/run.sh" "$bin" "$out" </dev/null >"$out.log" 2>&1
rc=$?
grep -E '^\s+\S+\s+(FAIL|ERROR|EMPTY)\b' "$out.log" || true
if [ "$rc" -ne 0 ] || [ ! -f "$out/summary.txt" ]; then
    tail -n 30 "$out.log"
    echo "conformance: the run did not complete (exit $rc)" >&2
    exit 1
fi
for base in crun-1.8.1 runc-1.1.5; do
    echo "--- against $base:"
    "$kit/compare.sh" "$kit/baselines/$base" "$out" | grep -E '^conformance:|REGRESSION|improved' || true
done
grep '^conformance:' "$out/summary.txt"
