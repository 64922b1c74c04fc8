#!/bin/sh
# Builds the busybox test image: OUTDIR/busybox-rootfs (a directory for `ctr run --rootfs`) and
# OUTDIR/busybox-oci.tar (an OCI archive `ctr images import` names localhost/myrt/busybox:latest).
# Deterministic and idempotent; see build-image.py.
set -eu
if [ "$#" -lt 1 ] || [ "$#" -gt 2 ]; then
    echo "usage: $0 OUTDIR [BUSYBOX]   (BUSYBOX defaults to /bin/busybox from busybox-static)" >&2
    exit 2
fi
exec python3 "$(dirname "$0")/build-image.py" "$@"
