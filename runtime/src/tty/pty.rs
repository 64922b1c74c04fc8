//! A new pty pair from the container's devpts: the master from /dev/pts/ptmx (checked to be
//! on devpts), the slave through TIOCGPTPEER so no path is looked up for it (CVE-2025-52565).

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{self, SFlag};

use super::TtyError;
use crate::rootfs::safe_path::RootDir;
use crate::rootfs::sys;

pub(super) struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
    /// "/dev/pts/N".
    pub name: String,
}

fn sys_err(op: &'static str, path: impl Into<PathBuf>, e: Errno) -> TtyError {
    TtyError::Sys {
        op,
        path: path.into(),
        errno: e.into(),
    }
}

/// Fails unless `fd` is on a devpts filesystem.
pub(super) fn check_devpts(fd: BorrowedFd<'_>, path: &Path) -> Result<(), TtyError> {
    let fs = sys::fs_type(fd).map_err(|e| sys_err("statfs", path, e))?;
    if fs != sys::DEVPTS_SUPER_MAGIC {
        return Err(TtyError::NotDevpts {
            path: path.to_path_buf(),
            magic: sys::magic_number(fs),
        });
    }
    Ok(())
}

/// Opens a pty pair in the devpts mounted at /dev/pts of `root`.
pub(super) fn open_pty(root: &RootDir) -> Result<Pty, TtyError> {
    let ptmx = Path::new("/dev/pts/ptmx");
    let master = root
        .open(ptmx, OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_NOFOLLOW)
        .map_err(TtyError::Path)?;
    check_devpts(std::os::fd::AsFd::as_fd(&master), ptmx)?;
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from the pointer, which is valid for the call.
    let r = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCSPTLCK,
            &unlock as *const libc::c_int,
        )
    };
    Errno::result(r).map_err(|e| sys_err("unlockpt", ptmx, e))?;
    let mut index: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int through the pointer, which is valid for writes.
    let r = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTN,
            &mut index as *mut libc::c_uint,
        )
    };
    Errno::result(r).map_err(|e| sys_err("ptsname", ptmx, e))?;
    let name = format!("/dev/pts/{index}");
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes the open flags by value and returns a new fd or -1.
    let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    let slave = match Errno::result(r) {
        // SAFETY: the ioctl returned a new fd that nothing else owns.
        Ok(fd) => unsafe { OwnedFd::from_raw_fd(fd) },
        // Kernels before 4.13: open the slave by name, without following symlinks.
        Err(Errno::EINVAL | Errno::ENOTTY) => root
            .open(
                Path::new(&name),
                OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_NOFOLLOW,
            )
            .map_err(TtyError::Path)?,
        Err(e) => return Err(sys_err("TIOCGPTPEER", ptmx, e)),
    };
    check_devpts(std::os::fd::AsFd::as_fd(&slave), Path::new(&name))?;
    let st = stat::fstat(&slave).map_err(|e| sys_err("stat", &name, e))?;
    if st.st_mode & SFlag::S_IFMT.bits() != SFlag::S_IFCHR.bits() {
        return Err(TtyError::Invalid(format!(
            "{name} is not a character device"
        )));
    }
    Ok(Pty {
        master,
        slave,
        name,
    })
}
