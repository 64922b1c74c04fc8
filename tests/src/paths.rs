//! Where the workspace, the built binaries and the scripts are.

use std::env;
use std::path::{Path, PathBuf};

/// Name of the myrt shim binary containerd looks up on PATH for `io.containerd.myrt.v1`.
pub const SHIM_BINARY: &str = "containerd-shim-myrt-v1";

/// The cargo workspace root (the parent of this crate).
pub fn workspace_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The project's scripts/ directory.
pub fn scripts_dir() -> PathBuf {
    workspace_dir().join("scripts")
}

/// The cargo target directory: `$CARGO_TARGET_DIR`, else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_dir().join("target"),
    }
}

/// The directory holding `myrt` and `containerd-shim-myrt-v1`: `$MYRT_BIN_DIR`, else
/// `<target>/debug`. It goes first on the PATH of every containerd the tests start.
pub fn bin_dir() -> PathBuf {
    match env::var_os("MYRT_BIN_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => target_dir().join("debug"),
    }
}

/// The containerd every e2e test starts: `$MYRT_CONTAINERD`, else `containerd` on PATH.
/// Other versions: `scripts/containerd-versions.sh fetch 1.7|2.1` prints such a path.
pub fn containerd_binary() -> PathBuf {
    match env::var_os("MYRT_CONTAINERD") {
        Some(bin) if !bin.is_empty() => PathBuf::from(bin),
        _ => PathBuf::from("containerd"),
    }
}

/// The directory of [`containerd_binary`] when it is given as a path (an unpacked package's
/// `usr/bin`): it also holds the matching `ctr` and `containerd-shim-runc-v2`.
pub fn containerd_dir() -> Option<PathBuf> {
    let bin = containerd_binary();
    bin.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map(Path::to_path_buf)
}

/// The `ctr` of the tests: `$MYRT_CTR`, else the `ctr` next to [`containerd_binary`] (client
/// and server of one version), else `ctr` on PATH.
pub fn ctr_binary() -> PathBuf {
    if let Some(bin) = env::var_os("MYRT_CTR").filter(|b| !b.is_empty()) {
        return PathBuf::from(bin);
    }
    containerd_dir()
        .map(|d| d.join("ctr"))
        .filter(|c| c.is_file())
        .unwrap_or_else(|| PathBuf::from("ctr"))
}

/// The PATH of the tests' containerd, where it finds shims (1.6.20 ignores runtime_path):
/// [`bin_dir`] first, then [`containerd_dir`] (its own runc shim), then the inherited PATH.
pub fn daemon_path() -> Vec<PathBuf> {
    let mut dirs = vec![bin_dir()];
    dirs.extend(containerd_dir());
    if let Some(p) = env::var_os("PATH") {
        dirs.extend(env::split_paths(&p));
    }
    dirs
}

/// `(major, minor)` of [`containerd_binary`], from `containerd --version`
/// ("containerd github.com/containerd/containerd/v2 2.1.9~ds1 ..."). Panics when it cannot be
/// run or read: every e2e test needs that binary anyway.
#[track_caller]
pub fn containerd_version() -> (u32, u32) {
    let bin = containerd_binary();
    let out = std::process::Command::new(&bin)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} --version: {e}", bin.display()));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let version = text.split_whitespace().nth(2).unwrap_or_default();
    let mut parts = version.trim_start_matches('v').split(['.', '~', '-']);
    let mut next = || parts.next().and_then(|p| p.parse::<u32>().ok());
    match (next(), next()) {
        (Some(major), Some(minor)) => (major, minor),
        _ => panic!("cannot read the version of {} from {text:?}", bin.display()),
    }
}
