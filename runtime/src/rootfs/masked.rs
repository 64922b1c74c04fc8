//! linux.maskedPaths and linux.readonlyPaths, applied after pivot_root inside the container's
//! root. Masked files get the container's /dev/null bound over them, masked directories a
//! read-only tmpfs; read-only paths are bound onto themselves and remounted read-only.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::stat::{self, SFlag};

use super::devices::is_dev_null;
use super::safe_path::RootDir;
use super::sys;
use super::RootfsError;

/// Opens `path` in `root` as O_PATH; `None` when it does not exist (such paths are skipped).
fn open_existing(root: &RootDir, field: &str, path: &Path) -> Result<Option<OwnedFd>, RootfsError> {
    match root.open(path, OFlag::O_PATH) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(RootfsError::path(field, e)),
    }
}

/// Re-opens `path` after a mount and checks that it shows a new mount (CVE-2021-30465).
fn reopen_mounted(
    root: &RootDir,
    field: &str,
    path: &Path,
    before: BorrowedFd<'_>,
) -> Result<OwnedFd, RootfsError> {
    let old = sys::mount_id(before).map_err(|e| RootfsError::sys(field, "statx", path, e))?;
    let fd = root
        .open(path, OFlag::O_PATH)
        .map_err(|e| RootfsError::path(field, e))?;
    let new = sys::mount_id(fd.as_fd()).map_err(|e| RootfsError::sys(field, "statx", path, e))?;
    if old.is_some() && old == new {
        return Err(RootfsError::invalid(
            field,
            "the new mount is not at the path: it changed while it was mounted (CVE-2021-30465)",
        ));
    }
    Ok(fd)
}

pub(super) fn readonly_paths(root: &RootDir, paths: &[String]) -> Result<(), RootfsError> {
    for (i, p) in paths.iter().enumerate() {
        let field = format!("linux.readonlyPaths[{i}] ({p:?})");
        let path = Path::new(p);
        let Some(fd) = open_existing(root, &field, path)? else {
            continue;
        };
        let src = sys::proc_fd_path(fd.as_fd());
        sys::mount_on_fd(
            Some(&src),
            fd.as_fd(),
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
        )
        .map_err(|e| RootfsError::sys(&field, "bind-mount", path, e))?;
        let bound = reopen_mounted(root, &field, path, fd.as_fd())?;
        // Keep the flags the kernel may have locked (nosuid, nodev, noexec, atime).
        let keep = sys::mount_flags_of(bound.as_fd())
            .map_err(|e| RootfsError::sys(&field, "statfs", path, e))?
            & (libc::MS_NOSUID
                | libc::MS_NODEV
                | libc::MS_NOEXEC
                | sys::ATIME_ENUM_FLAGS
                | libc::MS_NODIRATIME);
        sys::mount_on_fd(
            None,
            bound.as_fd(),
            None,
            keep | libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
            None,
        )
        .map_err(|e| RootfsError::sys(&field, "remount read-only", path, e))?;
    }
    Ok(())
}

pub(super) fn mask_paths(root: &RootDir, paths: &[String]) -> Result<(), RootfsError> {
    if paths.is_empty() {
        return Ok(());
    }
    // The container's /dev/null could be a symlink to, or a bind of, a procfs file; binding
    // that over a masked path would make it writable (CVE-2025-31133). Open it without
    // following anything out of the root and check it is the null device.
    let null = root
        .open(Path::new("/dev/null"), OFlag::O_PATH)
        .map_err(|e| RootfsError::path("linux.maskedPaths (/dev/null)", e))?;
    let st = stat::fstat(&null)
        .map_err(|e| RootfsError::sys("linux.maskedPaths", "stat", "/dev/null", e))?;
    if !is_dev_null(&st) {
        return Err(RootfsError::invalid(
            "linux.maskedPaths",
            "invalid /dev/null in the container: it is not the null device (char 1:3); refusing to mask with it (CVE-2025-31133)",
        ));
    }
    let null_src = sys::proc_fd_path(null.as_fd());
    for (i, p) in paths.iter().enumerate() {
        let field = format!("linux.maskedPaths[{i}] ({p:?})");
        let path = Path::new(p);
        let Some(fd) = open_existing(root, &field, path)? else {
            continue;
        };
        let st = stat::fstat(&fd).map_err(|e| RootfsError::sys(&field, "stat", path, e))?;
        if st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFDIR.bits() {
            sys::mount_on_fd(
                Some(Path::new("tmpfs")),
                fd.as_fd(),
                Some("tmpfs"),
                libc::MS_RDONLY,
                None,
            )
            .map_err(|e| RootfsError::sys(&field, "mount read-only tmpfs over", path, e))?;
            reopen_mounted(root, &field, path, fd.as_fd())?;
        } else {
            sys::mount_on_fd(Some(&null_src), fd.as_fd(), None, libc::MS_BIND, None)
                .map_err(|e| RootfsError::sys(&field, "bind /dev/null over", path, e))?;
            let masked = reopen_mounted(root, &field, path, fd.as_fd())?;
            let st = stat::fstat(&masked).map_err(|e| RootfsError::sys(&field, "stat", path, e))?;
            if !is_dev_null(&st) {
                return Err(RootfsError::invalid(
                    &field,
                    "after masking, the path is not the null device",
                ));
            }
        }
    }
    Ok(())
}
