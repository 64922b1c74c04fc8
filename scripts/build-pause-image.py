#!/usr/bin/env python3
"""Builds the pod sandbox ("pause") image for the CRI tests.

Usage: build-pause-image.py OUTDIR

  OUTDIR/pause             scripts/pause.c compiled static (cc -static)
  OUTDIR/pause-oci.tar     an OCI image layout archive holding only /pause, entrypoint ["/pause"],
                           that `ctr -n k8s.io images import` names localhost/myrt/pause:latest

Like Kubernetes' own pause image the rootfs is that one file: the runtime has to create every
mount point itself. Archive building is build-image.py's (fixed times, owners and gzip header);
a run whose result is already in place changes nothing.
"""

import fcntl
import importlib.util
import os
import subprocess
import sys

IMAGE_NAME = "localhost/myrt/pause:latest"
HERE = os.path.dirname(os.path.abspath(__file__))


def build_image_module():
    spec = importlib.util.spec_from_file_location("build_image", os.path.join(HERE, "build-image.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compile_pause(out):
    tmp = f"{out}.tmp-{os.getpid()}"
    cmd = ["cc", "-static", "-Os", "-s", "-o", tmp, os.path.join(HERE, "pause.c")]
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise SystemExit("build-pause-image: no cc: install gcc and libc6-dev (static libc)")
    except subprocess.CalledProcessError as e:
        raise SystemExit(f"build-pause-image: {' '.join(cmd)} failed: {e.stderr.strip()} "
                         "(a static libc is needed: libc6-dev)")
    with open(tmp, "rb") as f:
        binary = f.read()
    os.unlink(tmp)
    return binary


def oci_archive(bi, binary):
    layer_tar = bi.tar_bytes([("pause", "file", 0o755, binary)])
    layer = bi.gzip_bytes(layer_tar)
    arch = bi.oci_arch()
    config = bi.canonical_json({
        "architecture": arch,
        "os": "linux",
        "created": bi.CREATED,
        "config": {"Env": [bi.PATH_ENV], "Entrypoint": ["/pause"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [bi.sha256(layer_tar)]},
        "history": [{"created": bi.CREATED, "created_by": "myrt scripts/build-pause-image.py"}],
    })
    manifest = bi.canonical_json({
        "schemaVersion": 2,
        "mediaType": bi.MT_MANIFEST,
        "config": {"mediaType": bi.MT_CONFIG, "digest": bi.sha256(config), "size": len(config)},
        "layers": [{"mediaType": bi.MT_LAYER, "digest": bi.sha256(layer), "size": len(layer)}],
    })
    index = bi.canonical_json({
        "schemaVersion": 2,
        "mediaType": bi.MT_INDEX,
        "manifests": [{
            "mediaType": bi.MT_MANIFEST,
            "digest": bi.sha256(manifest),
            "size": len(manifest),
            "platform": {"architecture": arch, "os": "linux"},
            "annotations": {
                "io.containerd.image.name": IMAGE_NAME,
                "org.opencontainers.image.ref.name": "latest",
            },
        }],
    })
    blobs = sorted({bi.sha256(b)[len("sha256:"):]: b for b in (layer, config, manifest)}.items())
    members = [
        ("blobs", "dir", 0o755, None),
        ("blobs/sha256", "dir", 0o755, None),
        *[(f"blobs/sha256/{hexd}", "file", 0o644, b) for hexd, b in blobs],
        ("index.json", "file", 0o644, index),
        ("oci-layout", "file", 0o644, bi.canonical_json({"imageLayoutVersion": "1.0.0"})),
    ]
    return bi.tar_bytes(members), bi.sha256(manifest)


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: build-pause-image.py OUTDIR")
    outdir = os.path.abspath(sys.argv[1])
    os.makedirs(outdir, exist_ok=True)
    bi = build_image_module()
    # Test processes may build the same cache at once: one builder at a time.
    with open(os.path.join(outdir, ".build.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        binary = compile_pause(os.path.join(outdir, "pause"))
        changed = bi.replace_file(os.path.join(outdir, "pause"), binary)
        os.chmod(os.path.join(outdir, "pause"), 0o755)
        archive, digest = oci_archive(bi, binary)
        changed |= bi.replace_file(os.path.join(outdir, "pause-oci.tar"), archive)
        state = "built" if changed else "up to date"
        print(f"build-pause-image: {IMAGE_NAME} {digest} {state} in {outdir}")


if __name__ == "__main__":
    main()
