//! The handle on our own binary that container inits and execs are re-exec'd from, one that no
//! one can ever write through.
//!
//! CVE-2019-5736: while our binary runs inside the container's namespaces (stage 1 and 2, before
//! the user's program is exec'd), a process in the container can open `/proc/<pid>/exe`. If that
//! resolved to a writable handle on the host's binary it could rewrite the shim or `myrt`.
//!
//! First choice (runc 1.1's "bindfd", without its mount-table entries): a detached, read-only
//! bind mount of the binary (open_tree(OPEN_TREE_CLONE) + mount_setattr(MOUNT_ATTR_RDONLY)).
//! `/proc/<pid>/exe` then leads into a mount no one can make writable (it is in no namespace's
//! mount table), so every write open fails with EROFS, and nothing is copied: no start-up cost,
//! no memory held. A binary already on a read-only mount is used as it is.
//! Fallback (no CAP_SYS_ADMIN, kernel < 5.12): a memfd copy sealed against every write
//! (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE | SHRINK | GROW | SEAL). The memfd is second choice
//! because a process with CAP_SYS_PTRACE can hold a write-open fd on it (writes still fail on the
//! seals), which makes the next exec of it fail with ETXTBSY: a container could block its
//! shim's starts.
//!
//! The long-lived shim makes the handle once and reuses it for every init and exec.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::ProcessError;

const SEALS: libc::c_int = libc::F_SEAL_SEAL
    | libc::F_SEAL_SHRINK
    | libc::F_SEAL_GROW
    | libc::F_SEAL_WRITE
    | libc::F_SEAL_FUTURE_WRITE;

/// The unwritable handle on the running binary, made on first use.
#[derive(Debug)]
pub struct SealedExe {
    fd: OwnedFd,
}

static SELF_EXE: OnceLock<SealedExe> = OnceLock::new();

impl SealedExe {
    /// The process-wide copy; made once. If we already run from a sealed memfd (we are a
    /// re-exec'd init), that file is reused as it is.
    pub fn get() -> Result<&'static SealedExe, ProcessError> {
        if let Some(exe) = SELF_EXE.get() {
            return Ok(exe);
        }
        let exe = SealedExe::copy_self()?;
        Ok(SELF_EXE.get_or_init(|| exe))
    }

    fn copy_self() -> Result<SealedExe, ProcessError> {
        let src = File::open("/proc/self/exe").map_err(ProcessError::SelfExe)?;
        if is_sealed(src.as_raw_fd()) || on_readonly_mount(src.as_fd()) {
            return Ok(SealedExe {
                fd: OwnedFd::from(src),
            });
        }
        match readonly_bind(src.as_fd()) {
            Ok(fd) => return Ok(SealedExe { fd }),
            Err(e) => log::debug!("read-only bind of our binary: {e}; using a sealed memfd copy"),
        }
        // SAFETY: memfd_create with a static NUL-terminated name; the result is checked.
        let raw = unsafe {
            libc::memfd_create(
                c"myrt-init".as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            )
        };
        if raw < 0 {
            return Err(ProcessError::SelfExe(std::io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh fd we own.
        let mut dst = unsafe { File::from_raw_fd(raw) };
        let size = src.metadata().map_err(ProcessError::SelfExe)?.len();
        let mut copied = 0u64;
        while copied < size {
            // SAFETY: both fds are valid for the duration of the call; null offsets use and
            // advance the file positions.
            let n = unsafe {
                libc::sendfile(
                    dst.as_raw_fd(),
                    src.as_raw_fd(),
                    std::ptr::null_mut(),
                    (size - copied) as usize,
                )
            };
            if n < 0 {
                let err = std::io::Error::last_os_error();
                if err.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                // Some filesystems refuse sendfile: fall back to a plain copy.
                let mut src = File::open("/proc/self/exe").map_err(ProcessError::SelfExe)?;
                dst.set_len(0).map_err(ProcessError::SelfExe)?;
                std::io::copy(&mut src, &mut dst).map_err(ProcessError::SelfExe)?;
                break;
            }
            if n == 0 {
                break;
            }
            copied += n as u64;
        }
        // SAFETY: F_ADD_SEALS on our memfd with a constant mask.
        if unsafe { libc::fcntl(dst.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } < 0 {
            return Err(ProcessError::SelfExe(std::io::Error::last_os_error()));
        }
        Ok(SealedExe {
            fd: OwnedFd::from(dst),
        })
    }

    /// A path that execs the copy from a child (`/proc/self/fd/N`): the fd is close-on-exec, but
    /// the kernel opens the path before it closes such fds, so the child can exec it.
    pub fn exec_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }

    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A detached read-only bind mount of the file `src` (an fd on it, O_PATH).
fn readonly_bind(src: BorrowedFd<'_>) -> Result<OwnedFd, nix::errno::Errno> {
    use crate::rootfs::sys;
    let tree = sys::open_tree_clone(
        Some(src),
        Path::new(""),
        libc::AT_EMPTY_PATH as libc::c_uint,
    )?;
    let attr = sys::MountAttr {
        set: libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV,
        clear: 0,
    };
    sys::mount_setattr(tree.as_fd(), attr, false, None)?;
    // Never hand out a handle that is not read-only after all.
    if !on_readonly_mount(tree.as_fd()) {
        return Err(nix::errno::Errno::EROFS);
    }
    Ok(tree)
}

/// True when the mount `fd` is on is read-only.
fn on_readonly_mount(fd: BorrowedFd<'_>) -> bool {
    nix::sys::statvfs::fstatvfs(fd)
        .is_ok_and(|st| st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

/// True when `fd` carries the write seals (a file nobody can modify).
pub fn is_sealed(fd: i32) -> bool {
    // SAFETY: F_GET_SEALS only reads flags of a valid fd; an error returns -1.
    let seals = unsafe { libc::fcntl(fd, libc::F_GET_SEALS) };
    seals >= 0
        && seals & (libc::F_SEAL_WRITE | libc::F_SEAL_SEAL)
            == libc::F_SEAL_WRITE | libc::F_SEAL_SEAL
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    /// Whatever the kind of handle, it holds our bytes and nothing can be written through it.
    #[test]
    fn handle_is_unwritable_and_identical() {
        let exe = SealedExe::get().unwrap();
        let fd = exe.fd().as_raw_fd();
        assert!(is_sealed(fd) || on_readonly_mount(exe.fd()));
        let copy = std::fs::read(exe.exec_path()).unwrap();
        let orig = std::fs::read("/proc/self/exe").unwrap();
        assert_eq!(copy, orig);
        let w = std::fs::OpenOptions::new()
            .write(true)
            .open(exe.exec_path());
        match w {
            Err(_) => {}
            Ok(mut f) => assert!(f.write_all(b"x").is_err()),
        }
    }

    /// As root with CAP_SYS_ADMIN (the tests and the shim) the read-only bind is used: no copy,
    /// and a write open fails with EROFS, so no writer can block the next exec (ETXTBSY).
    #[test]
    fn root_gets_the_readonly_bind() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        // A file nobody executes, so the refusal is the mount's (EROFS), not ETXTBSY.
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"binary").unwrap();
        let src = File::open(file.path()).unwrap();
        let tree = readonly_bind(src.as_fd()).unwrap();
        assert!(!is_sealed(tree.as_raw_fd()));
        let path = format!("/proc/self/fd/{}", tree.as_raw_fd());
        let err = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"binary");
        // The file stays writable where it is: only the handle we exec from is read-only.
        std::fs::OpenOptions::new()
            .write(true)
            .open(file.path())
            .unwrap();
    }
}
