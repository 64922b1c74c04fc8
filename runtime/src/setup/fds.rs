//! File descriptors the container process must not inherit.
//!
//! CVE-2024-21626: runc leaked a directory fd of the host (/sys/fs/cgroup) into the container;
//! `process.cwd = /proc/self/fd/N` then gave the container a cwd on the host. Every fd above the
//! ones the container is meant to get (stdio and `preserve_fds`) is marked close-on-exec, so no
//! host fd survives the execve, whoever opened it and however.

use std::os::fd::RawFd;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};

use super::{errno_text, SetupError};

/// Marks every fd >= `first` close-on-exec. `first` is 3 + the number of preserved fds.
///
/// Uses close_range(first, ~0, CLOSE_RANGE_CLOEXEC) (Linux 5.11) and falls back to walking
/// /proc/self/fd on older kernels.
pub fn cloexec_from(first: i32) -> Result<(), SetupError> {
    if first < 0 {
        return Err(SetupError::Cloexec {
            first,
            reason: "the first fd must not be negative".into(),
        });
    }
    match close_range_cloexec(first) {
        Ok(()) => Ok(()),
        Err(Errno::ENOSYS | Errno::EINVAL) => cloexec_from_procfs(first),
        Err(e) => Err(SetupError::Cloexec {
            first,
            reason: format!("close_range: {}", errno_text(e)),
        }),
    }
}

fn close_range_cloexec(first: i32) -> Result<(), Errno> {
    // SAFETY: close_range takes plain integers; with CLOSE_RANGE_CLOEXEC it only sets a flag on
    // the fds and closes none, so no owned fd of this process is invalidated.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    Errno::result(ret).map(drop)
}

/// The fallback: set FD_CLOEXEC on each fd listed in /proc/self/fd.
fn cloexec_from_procfs(first: i32) -> Result<(), SetupError> {
    let err = |reason: String| SetupError::Cloexec { first, reason };
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| err(format!("list /proc/self/fd: {e}")))?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd >= first)
        .collect();
    for fd in fds {
        // SAFETY: only the fd flag is read and set; the fd is not closed nor taken ownership of.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        match fcntl(borrowed, FcntlArg::F_GETFD) {
            Ok(flags) => {
                let flags = FdFlag::from_bits_truncate(flags) | FdFlag::FD_CLOEXEC;
                fcntl(borrowed, FcntlArg::F_SETFD(flags))
                    .map_err(|e| err(format!("fcntl(F_SETFD) on fd {fd}: {}", errno_text(e))))?;
            }
            // The directory fd read_dir used is closed by now.
            Err(Errno::EBADF) => {}
            Err(e) => return Err(err(format!("fcntl(F_GETFD) on fd {fd}: {}", errno_text(e)))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::setup::testutil::*;
    use std::os::fd::{AsFd, AsRawFd, OwnedFd};

    fn open_inheritable() -> OwnedFd {
        // No O_CLOEXEC: the kind of fd a careless library would leak.
        nix::fcntl::open(
            "/dev/null",
            nix::fcntl::OFlag::O_RDONLY,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap()
    }

    fn is_cloexec(fd: &OwnedFd) -> bool {
        let flags = fcntl(fd.as_fd(), FcntlArg::F_GETFD).unwrap();
        FdFlag::from_bits_truncate(flags).contains(FdFlag::FD_CLOEXEC)
    }

    fn check(mark: fn(i32) -> Result<(), SetupError>) {
        let low = open_inheritable();
        let high = open_inheritable();
        assert!(low.as_raw_fd() < high.as_raw_fd());
        assert!(!is_cloexec(&low) && !is_cloexec(&high));
        mark(high.as_raw_fd()).unwrap();
        assert!(!is_cloexec(&low), "fd below `first` must stay inheritable");
        assert!(is_cloexec(&high));
        mark(low.as_raw_fd()).unwrap();
        assert!(is_cloexec(&low));
    }

    #[test]
    fn negative_first_is_refused() {
        let err = cloexec_from(-1).unwrap_err().to_string();
        assert_eq!(
            err,
            "mark fds >= -1 close-on-exec: the first fd must not be negative"
        );
    }

    #[test]
    fn close_range_child() {
        if !in_child() {
            assert_child_ok(&run_child(module_path!(), "close_range_child"));
            return;
        }
        check(cloexec_from);
    }

    #[test]
    fn procfs_fallback_child() {
        if !in_child() {
            assert_child_ok(&run_child(module_path!(), "procfs_fallback_child"));
            return;
        }
        check(cloexec_from_procfs);
    }

    /// CVE-2024-21626: after cloexec_from(3) the exec'd program sees only stdio (and the fd
    /// `ls` itself opens for /proc/self/fd).
    #[test]
    fn exec_inherits_only_stdio_child() {
        if !in_child() {
            let out = run_child(module_path!(), "exec_inherits_only_stdio_child");
            assert!(out.status.success(), "{}", describe(&out));
            let stdout = String::from_utf8_lossy(&out.stdout);
            let listing = stdout
                .split_once("FD-LIST\n")
                .and_then(|(_, t)| t.lines().next())
                .unwrap_or_else(|| panic!("no fd listing:\n{}", describe(&out)));
            assert_eq!(listing, "0 1 2 3", "{}", describe(&out));
            return;
        }
        let leaked: Vec<OwnedFd> = (0..5).map(|_| open_inheritable()).collect();
        assert!(leaked.iter().all(|fd| !is_cloexec(fd)));
        cloexec_from(3).unwrap();
        println!("FD-LIST");
        let env = ["PATH=/usr/bin:/bin".to_string()];
        let sh = crate::setup::find_executable("sh", &env).unwrap();
        let args = ["sh", "-c", "cd /proc/self/fd && echo *"].map(String::from);
        let err = crate::setup::exec(&sh, &args, &env);
        panic!("exec returned: {err}");
    }
}
