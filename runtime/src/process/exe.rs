//! A sealed, read-only in-memory copy of our own binary to re-exec as the container's init.
//!
//! CVE-2019-5736: while our binary runs inside the container's namespaces (stage 1 and 2, before
//! the user's program is exec'd), a process in the container can open `/proc/<pid>/exe`. If that
//! resolved to the host's binary it could rewrite the shim or `myrt` on the host. We exec a memfd
//! copy instead, sealed against every write (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE | SHRINK | GROW |
//! SEAL), so the handle the container can reach is an immutable anonymous file.
//!
//! The long-lived shim makes the copy once and reuses it for every init and exec, so the copy is
//! paid once per shim, not per container.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::OnceLock;

use super::ProcessError;

const SEALS: libc::c_int = libc::F_SEAL_SEAL
    | libc::F_SEAL_SHRINK
    | libc::F_SEAL_GROW
    | libc::F_SEAL_WRITE
    | libc::F_SEAL_FUTURE_WRITE;

/// The sealed copy of the running binary, made on first use.
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
        if is_sealed(src.as_raw_fd()) {
            return Ok(SealedExe {
                fd: OwnedFd::from(src),
            });
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

    #[test]
    fn copy_is_sealed_and_identical() {
        let exe = SealedExe::get().unwrap();
        assert!(is_sealed(exe.fd().as_raw_fd()));
        let copy = std::fs::read(exe.exec_path()).unwrap();
        let orig = std::fs::read("/proc/self/exe").unwrap();
        assert_eq!(copy, orig);
        // No write through any path: a new writable open is refused by the seals.
        let w = std::fs::OpenOptions::new()
            .write(true)
            .open(exe.exec_path());
        match w {
            Err(_) => {}
            Ok(mut f) => assert!(f.write_all(b"x").is_err()),
        }
    }
}
