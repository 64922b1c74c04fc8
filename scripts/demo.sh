#!/bin/bash
# The main job, end to end: set the machine up (scripts/setup.sh), start a private containerd
# under /run/myrt-demo, import the busybox image and run
#   ctr run --rm --runtime io.containerd.myrt.v1 localhost/myrt/busybox:latest demo echo hello from myrt
# through containerd-shim-myrt-v1, then stop that containerd and remove its dir.
#
# Environment: DEMO_SKIP_SETUP=1 skips setup.sh (binaries already in /usr/local/bin);
# MYRT_BIN_DIR picks another shim dir (default /usr/local/bin); DEMO_RUNTIME runs the same demo
# with another runtime (e.g. io.containerd.runc.v2, to check the machine apart from myrt).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dir=/run/myrt-demo
ns=myrt-demo
image=/var/lib/myrt-demo/image/busybox-oci.tar
export MYRT_BIN_DIR=${MYRT_BIN_DIR:-/usr/local/bin}

if [ "${DEMO_SKIP_SETUP:-0}" != 1 ]; then
    "$repo/scripts/setup.sh"
fi
if [ ! -f "$image" ]; then
    "$repo/scripts/build-image.sh" "$(dirname "$image")"
fi

# A previous demo that was interrupted leaves its containerd: start clean.
"$repo/scripts/containerd.sh" clean "$dir" >/dev/null
trap '"$repo/scripts/containerd.sh" clean "$dir" >/dev/null' EXIT
"$repo/scripts/containerd.sh" start "$dir"

ctr=(ctr --address "$dir/containerd.sock" --namespace "$ns")
"${ctr[@]}" images import "$image"
cmd=(run --rm --runtime "${DEMO_RUNTIME:-io.containerd.myrt.v1}" localhost/myrt/busybox:latest demo echo hello from myrt)
echo "+ ctr ${cmd[*]}"
"${ctr[@]}" "${cmd[@]}"
