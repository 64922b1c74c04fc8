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
