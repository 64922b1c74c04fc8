//! linux.maskedPaths and linux.readonlyPaths, applied after pivot_root inside the container's
//! root. Masked files get the container's /dev/null bound over them, masked directories a
//! read-only tmpfs; read-only paths are bound onto themselves and remounted read-only.
//!
//! Paths below /proc are resolved from one fd of the container's /proc, opened once and checked
//! to be the procfs mounted for the container (CVE-2019-19921, CVE-2023-27561): a process
//! outside the container's mount namespace can rename the rootfs' /proc (a mount point only in
//! ours) and put a symlink or a directory in its place; resolving each `/proc/...` by name
//! would then mask the wrong files, or skip them as missing, and leave procfs unmasked under
//! its new name.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::fcntl::OFlag;
use nix::sys::stat::{self, SFlag};

use super::devices::is_dev_null;
use super::safe_path::{check_procfs, clean_path, RootDir};
use super::sys;
use super::{RootfsConfig, RootfsError};

const PROC: &str = "/proc";
const PROC_FIELD: &str = "linux.maskedPaths/readonlyPaths (\"/proc\")";

/// The mount id of the container's /proc right after the spec's mounts (`None`: not recorded,
/// or the kernel does not report mount ids). Each container init sets up one rootfs.
static PROC_MOUNT_ID: Mutex<Option<u64>> = Mutex::new(None);

fn set_proc_mount_id(id: Option<u64>) {
    *PROC_MOUNT_ID.lock().unwrap_or_else(|e| e.into_inner()) = id;
}

fn proc_mount_id() -> Option<u64> {
    *PROC_MOUNT_ID.lock().unwrap_or_else(|e| e.into_inner())
}

/// True when the spec mounts something (a procfs: mounts.rs allows nothing else) at /proc.
fn spec_mounts_proc(cfg: &RootfsConfig) -> bool {
    cfg.mounts()
        .iter()
        .any(|m| clean_path(m.destination()) == Path::new(PROC))
}

/// Opens `/proc` in `root` without following a symlink there and checks it is procfs.
fn open_proc_dir(root: &RootDir) -> Result<OwnedFd, String> {
    let fd = root
        .open(
            Path::new(PROC),
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
        )
        .map_err(|e| e.to_string())?;
    check_procfs(fd.as_fd(), Path::new(PROC)).map_err(|e| e.to_string())?;
    Ok(fd)
}

/// Records which mount is the container's /proc, right after the spec's mounts (before
/// pivot_root; `root` is the rootfs), so [`open_proc_root`] can tell it from a look-alike.
pub(super) fn record_proc_mount(cfg: &RootfsConfig, root: &RootDir) -> Result<(), RootfsError> {
    set_proc_mount_id(None);
    if !spec_mounts_proc(cfg) {
        return Ok(());
    }
    let fd = open_proc_dir(root).map_err(|e| {
        RootfsError::invalid(
            "mounts (destination \"/proc\")",
            format!(
                "the procfs just mounted is no longer at \"/proc\" in the rootfs ({e}): \
                 something moved or replaced it (CVE-2019-19921, CVE-2023-27561)"
            ),
        )
    })?;
    let id = sys::mount_id(fd.as_fd()).map_err(|e| RootfsError::sys("mounts", "statx", PROC, e))?;
    set_proc_mount_id(id);
    Ok(())
}

/// After pivot_root: the container's /proc as a root for the `/proc/...` entries of
/// linux.maskedPaths and linux.readonlyPaths. `None` when the spec mounts nothing at /proc
/// (then those paths are resolved from "/" like the others). Fails when /proc is not a
/// directory on procfs, or not the mount [`record_proc_mount`] saw.
pub(super) fn open_proc_root(
    cfg: &RootfsConfig,
    root: &RootDir,
) -> Result<Option<RootDir>, RootfsError> {
    if !spec_mounts_proc(cfg) {
        return Ok(None);
    }
    let refuse = |why: String| {
        RootfsError::invalid(
            PROC_FIELD,
            format!(
                "\"/proc\" in the container is not the procfs mounted for it ({why}): something \
                 moved or replaced it; refusing to mask or make read-only paths elsewhere \
                 (CVE-2019-19921, CVE-2023-27561)"
            ),
        )
    };
    let fd = open_proc_dir(root).map_err(refuse)?;
    let now =
        sys::mount_id(fd.as_fd()).map_err(|e| RootfsError::sys(PROC_FIELD, "statx", PROC, e))?;
    if let (Some(want), Some(got)) = (proc_mount_id(), now) {
        if want != got {
            return Err(refuse(format!(
                "it is mount {got}, the one mounted was mount {want}"
            )));
        }
    }
    RootDir::from_fd(fd, Path::new(PROC))
        .map(Some)
        .map_err(|e| RootfsError::path(PROC_FIELD, e))
}

/// The root to resolve `path` in and the path inside it: paths below /proc go through `proc`
/// when there is one.
fn pick<'a>(root: &'a RootDir, proc: Option<&'a RootDir>, path: &Path) -> (&'a RootDir, PathBuf) {
    let clean = clean_path(path);
    if let Some(proc) = proc {
        if let Ok(rest) = clean.strip_prefix(PROC) {
            if !rest.as_os_str().is_empty() {
                return (proc, Path::new("/").join(rest));
            }
        }
    }
    (root, clean)
}

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

/// The error of a mount made through `/proc/self/fd/N` (`fd` is open, so that path always
/// exists on the container's procfs): ENOENT/ENOTDIR means the container's /proc stopped being
/// that procfs during setup (moved or swapped for a symlink), said as such.
fn fd_mount_err(field: &str, op: &'static str, path: &Path, e: nix::errno::Errno) -> RootfsError {
    match e {
        nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR => RootfsError::invalid(
            field,
            format!(
                "{op} {path:?}: the container's \"/proc\" no longer resolves /proc/self/fd \
                 ({e}): it was moved or replaced during setup; refusing (CVE-2019-19921, \
                 CVE-2023-27561)"
            ),
        ),
        e => RootfsError::sys(field, op, path, e),
    }
}

pub(super) fn readonly_paths(
    root: &RootDir,
    proc: Option<&RootDir>,
    paths: &[String],
) -> Result<(), RootfsError> {
    for (i, p) in paths.iter().enumerate() {
        let field = format!("linux.readonlyPaths[{i}] ({p:?})");
        let (root, path) = pick(root, proc, Path::new(p));
        let path = path.as_path();
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
        .map_err(|e| fd_mount_err(&field, "bind-mount", path, e))?;
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
        .map_err(|e| fd_mount_err(&field, "remount read-only", path, e))?;
    }
    Ok(())
}

pub(super) fn mask_paths(
    root: &RootDir,
    proc: Option<&RootDir>,
    paths: &[String],
) -> Result<(), RootfsError> {
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
        let (root, path) = pick(root, proc, Path::new(p));
        let path = path.as_path();
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
            .map_err(|e| fd_mount_err(&field, "mount read-only tmpfs over", path, e))?;
            reopen_mounted(root, &field, path, fd.as_fd())?;
        } else {
            sys::mount_on_fd(Some(&null_src), fd.as_fd(), None, libc::MS_BIND, None)
                .map_err(|e| fd_mount_err(&field, "bind /dev/null over", path, e))?;
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
