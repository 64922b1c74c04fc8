//! scripts/build-image.sh: deterministic, idempotent, and the shape the e2e tests rely on.
//! Needs no root (it only writes files); importing into containerd is checked by every
//! e2e_ctr test at start (`Containerd::import_image`).

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use myrt_tests::command::run;
use myrt_tests::{workspace_dir, IMAGE_REF};

const TIMEOUT: Duration = Duration::from_secs(120);

fn build(out: &Path) -> String {
    let script = workspace_dir().join("scripts/build-image.sh");
    run(Command::new(script).arg(out), TIMEOUT).ok().stdout
}

fn sha256(path: &Path) -> String {
    let out = run(Command::new("sha256sum").arg(path), TIMEOUT).ok();
    out.stdout
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn json(path: &Path) -> serde_json::Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn blob(layout: &Path, digest: &serde_json::Value) -> std::path::PathBuf {
    let digest = digest.as_str().unwrap_or_default();
    let hex = digest
        .strip_prefix("sha256:")
        .unwrap_or_else(|| panic!("digest {digest:?}"));
    let path = layout.join("blobs/sha256").join(hex);
    assert_eq!(
        sha256(&path),
        hex,
        "blob {} does not match its digest",
        path.display()
    );
    path
}

fn applets() -> BTreeSet<String> {
    let out = run(Command::new("/bin/busybox").arg("--list"), TIMEOUT).ok();
    out.stdout
        .split_whitespace()
        .filter(|a| *a != "busybox")
        .map(str::to_string)
        .collect()
}

#[test]
fn build_is_deterministic_and_idempotent() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    assert!(build(&a).contains(" built in "));
    build(&b);
    let archive = |d: &Path| d.join("busybox-oci.tar");
    assert_eq!(
        sha256(&archive(&a)),
        sha256(&archive(&b)),
        "two builds differ"
    );

    let before = fs::metadata(archive(&a)).map(|m| (m.ino(), m.mtime_nsec(), m.mtime()));
    let again = build(&a);
    assert!(again.contains(" up to date in "), "{again}");
    let after = fs::metadata(archive(&a)).map(|m| (m.ino(), m.mtime_nsec(), m.mtime()));
    assert_eq!(
        before.ok(),
        after.ok(),
        "an up-to-date build rewrote the archive"
    );
}

#[test]
fn archive_is_an_oci_layout_named_for_containerd() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let out = tmp.path().join("img");
    build(&out);
    let layout = tmp.path().join("layout");
    fs::create_dir(&layout).unwrap_or_else(|e| panic!("mkdir: {e}"));
    run(
        Command::new("tar")
            .arg("-xf")
            .arg(out.join("busybox-oci.tar"))
            .arg("-C")
            .arg(&layout),
        TIMEOUT,
    )
    .ok();

    assert_eq!(
        json(&layout.join("oci-layout"))["imageLayoutVersion"],
        "1.0.0"
    );
    let index = json(&layout.join("index.json"));
    let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
    assert_eq!(manifests.len(), 1, "{index}");
    let desc = &manifests[0];
    assert_eq!(desc["annotations"]["io.containerd.image.name"], IMAGE_REF);
    assert_eq!(
        desc["annotations"]["org.opencontainers.image.ref.name"],
        "latest"
    );
    assert_eq!(
        desc["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );

    let manifest = json(&blob(&layout, &desc["digest"]));
    let config = json(&blob(&layout, &manifest["config"]["digest"]));
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["sh"]));
    let env = config["config"]["Env"].to_string();
    assert!(
        env.contains("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        "{env}"
    );
    assert_eq!(config["os"], "linux");

    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    assert_eq!(layers.len(), 1);
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let layer = blob(&layout, &layers[0]["digest"]);
    // diff_id is the digest of the uncompressed tar.
    let listing = run(Command::new("tar").arg("-tvzf").arg(&layer), TIMEOUT)
        .ok()
        .stdout;
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("-rwxr-xr-x root/root") && l.ends_with(" bin/busybox")),
        "{listing}"
    );
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("drwxrwxrwt") && l.ends_with(" tmp/")),
        "{listing}"
    );
    assert!(listing.contains("bin/sh -> busybox"), "{listing}");
    let unzipped = tmp.path().join("layer.tar");
    let gz = run(
        Command::new("sh").arg("-c").arg(format!(
            "gzip -dc {} > {}",
            layer.display(),
            unzipped.display()
        )),
        TIMEOUT,
    );
    gz.ok();
    assert_eq!(
        config["rootfs"]["diff_ids"][0],
        format!("sha256:{}", sha256(&unzipped))
    );
}

#[test]
fn rootfs_has_every_applet_and_the_base_files() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    build(tmp.path());
    let root = tmp.path().join("busybox-rootfs");
    let busybox =
        fs::metadata(root.join("bin/busybox")).unwrap_or_else(|e| panic!("bin/busybox: {e}"));
    assert_eq!(busybox.permissions().mode() & 0o7777, 0o755);
    for applet in applets() {
        let link = root.join("bin").join(&applet);
        let target = fs::read_link(&link).unwrap_or_else(|e| panic!("{}: {e}", link.display()));
        assert_eq!(target, Path::new("busybox"), "{}", link.display());
    }
    let passwd = fs::read_to_string(root.join("etc/passwd")).unwrap_or_default();
    assert!(
        passwd.starts_with("root:x:0:0:") && passwd.contains("\nnobody:x:65534:65534:"),
        "{passwd}"
    );
    let group = fs::read_to_string(root.join("etc/group")).unwrap_or_default();
    assert!(
        group.starts_with("root:x:0:") && group.contains("\nnobody:x:65534:"),
        "{group}"
    );
    for dir in ["proc", "sys", "dev", "run", "root"] {
        assert!(root.join(dir).is_dir(), "{dir} missing");
    }
    let tmp_mode = fs::metadata(root.join("tmp")).map(|m| m.permissions().mode() & 0o7777);
    assert_eq!(tmp_mode.ok(), Some(0o1777));
    // Fixed times: 2020-01-01T00:00:00Z.
    let mtime = fs::symlink_metadata(root.join("bin/sh")).map(|m| m.mtime());
    assert_eq!(mtime.ok(), Some(1_577_836_800));
}
