//! The rootfs module's error: every message names the spec field (and index) and the path.

use std::path::PathBuf;

use nix::errno::Errno;

use super::safe_path::SafePathError;
use super::sys::SysErr;

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// The spec asks for something invalid, unsafe or unsupported.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// mount(2) failed.
    #[error("{field}: mount {dest:?} type {fstype:?} source {src:?}: {errno}")]
    Mount {
        field: String,
        dest: PathBuf,
        fstype: String,
        src: String,
        errno: SysErr,
    },
    /// Another syscall failed.
    #[error("{field}: {op} {path:?}: {errno}")]
    Sys {
        field: String,
        op: &'static str,
        path: PathBuf,
        errno: SysErr,
    },
    /// Resolving a path inside the rootfs failed or was refused.
    #[error("{field}: {source}")]
    Path {
        field: String,
        #[source]
        source: SafePathError,
    },
}

impl RootfsError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        RootfsError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn sys(
        field: impl Into<String>,
        op: &'static str,
        path: impl Into<PathBuf>,
        errno: Errno,
    ) -> Self {
        RootfsError::Sys {
            field: field.into(),
            op,
            path: path.into(),
            errno: errno.into(),
        }
    }

    pub(crate) fn path(field: impl Into<String>, source: SafePathError) -> Self {
        RootfsError::Path {
            field: field.into(),
            source,
        }
    }

    /// The errno behind the error, when a syscall failed.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            RootfsError::Mount { errno, .. } | RootfsError::Sys { errno, .. } => Some(errno.0),
            RootfsError::Path { source, .. } => source.errno(),
            RootfsError::Invalid { .. } => None,
        }
    }
}
