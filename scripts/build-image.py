#!/usr/bin/env python3
"""Builds the busybox test image twice over: a rootfs directory and an OCI image archive.

Usage: build-image.py OUTDIR [BUSYBOX]

  OUTDIR/busybox-rootfs   bin/busybox, one symlink per applet, /etc/passwd+group, /tmp /proc /sys /dev
  OUTDIR/busybox-oci.tar  an OCI image layout archive that `ctr images import` names
                          localhost/myrt/busybox:latest

Both come from one file list, so they hold the same tree. Every timestamp, owner and compression
header is fixed, so two runs over the same busybox give byte-identical archives; a run whose
result is already in place changes nothing (stamp file OUTDIR/busybox-rootfs.stamp). Python
standard library only: no network, no registry, no docker.
"""

import fcntl
import gzip
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile

IMAGE_NAME = "localhost/myrt/busybox:latest"
# 2020-01-01T00:00:00Z: any constant works; a non-zero one keeps tools that treat 0 as "unset" quiet.
MTIME = 1577836800
CREATED = "2020-01-01T00:00:00Z"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnobody:x:65534:\nnogroup:x:65534:\n"

MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"


def oci_arch():
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
            "s390x": "s390x", "riscv64": "riscv64"}.get(machine, machine)


def applets(busybox):
    out = subprocess.run([busybox, "--list"], check=True, capture_output=True, text=True).stdout
    names = sorted({n.strip() for n in out.split() if n.strip()} - {"busybox"})
    for n in names:
        if "/" in n or n in (".", ".."):
            raise SystemExit(f"build-image: unexpected applet name {n!r} from {busybox} --list")
    return names


def entries(busybox):
    """The tree as (path, kind, mode, payload): kind is dir, file or symlink."""
    with open(busybox, "rb") as f:
        binary = f.read()
    tree = [
        ("bin", "dir", 0o755, None),
        ("bin/busybox", "file", 0o755, binary),
        ("dev", "dir", 0o755, None),
        ("etc", "dir", 0o755, None),
        ("etc/group", "file", 0o644, GROUP.encode()),
        ("etc/passwd", "file", 0o644, PASSWD.encode()),
        ("proc", "dir", 0o555, None),
        ("root", "dir", 0o700, None),
        ("run", "dir", 0o755, None),
        ("sys", "dir", 0o555, None),
        ("tmp", "dir", 0o1777, None),
    ]
    tree += [(f"bin/{a}", "symlink", 0o777, "busybox") for a in applets(busybox)]
    return sorted(tree, key=lambda e: e[0])


def tar_bytes(members):
    """A ustar archive of (name, kind, mode, payload) with fixed owner and time."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, kind, mode, payload in members:
            info = tarfile.TarInfo(name)
            info.mode, info.mtime = mode, MTIME
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, payload
                tar.addfile(info)
            else:
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def gzip_bytes(data):
    buf = io.BytesIO()
    # mtime=0 and no file name: the gzip header would otherwise carry the build time.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return buf.getvalue()


def canonical_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def oci_archive(tree):
    layer_tar = tar_bytes(tree)
    layer = gzip_bytes(layer_tar)
    arch = oci_arch()
    config = canonical_json({
        "architecture": arch,
        "os": "linux",
        "created": CREATED,
        "config": {"Env": [PATH_ENV], "Cmd": ["sh"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [sha256(layer_tar)]},
        "history": [{"created": CREATED, "created_by": "myrt scripts/build-image.py"}],
    })
    manifest = canonical_json({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": MT_LAYER, "digest": sha256(layer), "size": len(layer)}],
    })
    # containerd 1.6's importer names an image from io.containerd.image.name first; the OCI
    # ref.name alone would need `ctr images import --base-name`.
    index = canonical_json({
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [{
            "mediaType": MT_MANIFEST,
            "digest": sha256(manifest),
            "size": len(manifest),
            "platform": {"architecture": arch, "os": "linux"},
            "annotations": {
                "io.containerd.image.name": IMAGE_NAME,
                "org.opencontainers.image.ref.name": "latest",
            },
        }],
    })
    blobs = sorted({sha256(b)[len("sha256:"):]: b for b in (layer, config, manifest)}.items())
    members = [
        ("blobs", "dir", 0o755, None),
        ("blobs/sha256", "dir", 0o755, None),
        *[(f"blobs/sha256/{hexd}", "file", 0o644, b) for hexd, b in blobs],
        ("index.json", "file", 0o644, index),
        ("oci-layout", "file", 0o644, canonical_json({"imageLayoutVersion": "1.0.0"})),
    ]
    return tar_bytes(members), sha256(manifest)


def write_rootfs(path, tree):
    os.mkdir(path, 0o755)
    for name, kind, mode, payload in tree:
        target = os.path.join(path, name)
        if kind == "dir":
            os.mkdir(target)
            os.chmod(target, mode)
        elif kind == "symlink":
            os.symlink(payload, target)
        else:
            with open(target, "wb") as f:
                f.write(payload)
            os.chmod(target, mode)
    # Deepest first, so setting a directory's time is not undone by writing into it.
    for name, kind, _, _ in sorted(tree, key=lambda e: e[0].count("/"), reverse=True):
        os.utime(os.path.join(path, name), (MTIME, MTIME), follow_symlinks=False)
    os.utime(path, (MTIME, MTIME))


def replace_file(path, data):
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return False
    except FileNotFoundError:
        pass
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return True


def main():
    if len(sys.argv) not in (2, 3):
        raise SystemExit("usage: build-image.py OUTDIR [BUSYBOX]")
    outdir = os.path.abspath(sys.argv[1])
    busybox = sys.argv[2] if len(sys.argv) == 3 else "/bin/busybox"
    if not os.access(busybox, os.X_OK):
        raise SystemExit(f"build-image: {busybox} is not an executable: install busybox-static")
    os.makedirs(outdir, exist_ok=True)
    # Test processes may build the same cache at once: one builder at a time.
    with open(os.path.join(outdir, ".build.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        tree = entries(busybox)
        archive, digest = oci_archive(tree)
        changed = replace_file(os.path.join(outdir, "busybox-oci.tar"), archive)

        rootfs = os.path.join(outdir, "busybox-rootfs")
        stamp = rootfs + ".stamp"
        try:
            with open(stamp) as f:
                current = f.read().strip() == digest and os.path.isdir(rootfs)
        except FileNotFoundError:
            current = False
        if not current:
            tmp = f"{rootfs}.tmp-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            write_rootfs(tmp, tree)
            if os.path.lexists(rootfs):
                old = f"{rootfs}.old-{os.getpid()}"
                os.rename(rootfs, old)
                os.rename(tmp, rootfs)
                shutil.rmtree(old)
            else:
                os.rename(tmp, rootfs)
            replace_file(stamp, (digest + "\n").encode())
            changed = True
        state = "built" if changed else "up to date"
        print(f"build-image: {IMAGE_NAME} {digest} {state} in {outdir}")


if __name__ == "__main__":
    main()
