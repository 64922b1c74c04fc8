//! The container's terminal: a pty from the container's own devpts, its master handed to the
//! caller over the console socket, its slave bound over /dev/console and made the process'
//! controlling terminal and stdio.

mod pty;
mod socket;

#[cfg(test)]
mod tests;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{self, AtFlags, OFlag};
use nix::sys::stat::{self, Mode, SFlag};
use nix::unistd;

use crate::rootfs::safe_path::{open_procfs, RootDir, SafePathError};
use crate::rootfs::sys::{self, SysErr};

pub use socket::{recv_console, send_console};

#[derive(Debug, thiserror::Error)]
pub enum TtyError {
    #[error("console: {op} {path:?}: {errno}")]
    Sys {
        op: &'static str,
        path: PathBuf,
        errno: SysErr,
    },
    #[error("console: {0}")]
    Path(#[source] SafePathError),
    #[error("console: {path:?} is not on devpts (filesystem magic {magic:#x}); refusing to use it as a terminal (CVE-2025-52565)")]
    NotDevpts { path: PathBuf, magic: u64 },
    #[error("console: {0}")]
    Invalid(String),
    #[error("console socket: {op}: {errno}")]
    Socket { op: &'static str, errno: SysErr },
    #[error("console socket: {0}")]
    Protocol(String),
}

fn sys_err(op: &'static str, path: impl Into<PathBuf>, e: Errno) -> TtyError {
    TtyError::Sys {
        op,
        path: path.into(),
        errno: e.into(),
    }
}

/// In the container's init, after enter_rootfs (devpts already at /dev/pts): opens a pty in
/// the container's devpts, sends the master over `socket` (runc's console-socket protocol),
/// bind-mounts the slave over /dev/console (created safely, mounted from the fd:
/// CVE-2025-52565), then makes the slave the controlling terminal and stdin/stdout/stderr.
pub fn setup_console(socket: OwnedFd) -> Result<(), TtyError> {
    let root = RootDir::new(Path::new("/")).map_err(TtyError::Path)?;
    // Checked before the master leaves, so a refused /dev/console hands out no terminal.
    let console = console_target(&root)?;
    let pty = pty::open_pty(&root)?;
    send_console(socket.as_fd(), pty.master.as_fd(), &pty.name)?;
    drop(pty.master);
    drop(socket);
    mount_console(&console, pty.slave.as_fd())?;
    make_controlling(pty.slave)
}

/// For a process joining a running container (exec -t): the same pty and socket dance,
/// without /dev/console (the init's is already there).
pub fn setup_exec_console(socket: OwnedFd) -> Result<(), TtyError> {
    let root = RootDir::new(Path::new("/")).map_err(TtyError::Path)?;
    let pty = pty::open_pty(&root)?;
    send_console(socket.as_fd(), pty.master.as_fd(), &pty.name)?;
    drop(pty.master);
    drop(socket);
    make_controlling(pty.slave)
}

/// /dev/console, opened without following it: its directory, name and an O_PATH fd.
struct ConsoleTarget {
    dev: OwnedFd,
    name: std::ffi::OsString,
    fd: OwnedFd,
}

/// /dev/console: an existing regular file or device is used, a missing one is created as an
/// empty file; a symlink or directory is refused (CVE-2025-52565).
fn console_target(root: &RootDir) -> Result<ConsoleTarget, TtyError> {
    let path = Path::new("/dev/console");
    let (dev, name) = root.open_parent(path, true).map_err(TtyError::Path)?;
    match fcntl::openat(
        &dev,
        name.as_os_str(),
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    ) {
        Ok(_) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(sys_err("create", path, e)),
    }
    let fd = fcntl::openat(
        &dev,
        name.as_os_str(),
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| sys_err("open", path, e))?;
    let st = stat::fstat(&fd).map_err(|e| sys_err("stat", path, e))?;
    let kind = st.st_mode & SFlag::S_IFMT.bits();
    if kind == SFlag::S_IFLNK.bits() || kind == SFlag::S_IFDIR.bits() {
        return Err(TtyError::Invalid(
            "/dev/console in the container is a symlink or a directory: refusing to mount the terminal there (CVE-2025-52565)".into(),
        ));
    }
    Ok(ConsoleTarget { dev, name, fd })
}

/// Binds the slave over /dev/console from its fd, then checks /dev/console is that terminal.
fn mount_console(target: &ConsoleTarget, slave: BorrowedFd<'_>) -> Result<(), TtyError> {
    let path = Path::new("/dev/console");
    // The mount goes through /proc/self/fd: it must be the container's real procfs.
    open_procfs().map_err(TtyError::Path)?;
    sys::mount_on_fd(
        Some(&sys::proc_fd_path(slave)),
        target.fd.as_fd(),
        None,
        libc::MS_BIND,
        None,
    )
    .map_err(|e| sys_err("bind the terminal over", path, e))?;
    let slave_st = stat::fstat(slave).map_err(|e| sys_err("stat", "terminal", e))?;
    let now = stat::fstatat(
        &target.dev,
        target.name.as_os_str(),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| sys_err("stat", path, e))?;
    if now.st_rdev != slave_st.st_rdev
        || now.st_mode & SFlag::S_IFMT.bits() != SFlag::S_IFCHR.bits()
    {
        return Err(TtyError::Invalid(
            "/dev/console is not the terminal after mounting it (it changed while being set up)"
                .into(),
        ));
    }
    Ok(())
}

/// New session, `slave` as its controlling terminal, and as fds 0, 1 and 2.
fn make_controlling(slave: OwnedFd) -> Result<(), TtyError> {
    match unistd::setsid() {
        Ok(_) => {}
        // Already a session leader (the caller may have called setsid).
        Err(Errno::EPERM) if unistd::getsid(None).ok() == Some(unistd::getpid()) => {}
        Err(e) => return Err(sys_err("setsid", "", e)),
    }
    // SAFETY: TIOCSCTTY takes an int argument by value (0: do not steal from another session).
    let r = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&slave), libc::TIOCSCTTY, 0) };
    Errno::result(r).map_err(|e| sys_err("TIOCSCTTY", "terminal", e))?;
    unistd::dup2_stdin(&slave).map_err(|e| sys_err("dup2 to stdin", "terminal", e))?;
    unistd::dup2_stdout(&slave).map_err(|e| sys_err("dup2 to stdout", "terminal", e))?;
    unistd::dup2_stderr(&slave).map_err(|e| sys_err("dup2 to stderr", "terminal", e))?;
    Ok(())
}
