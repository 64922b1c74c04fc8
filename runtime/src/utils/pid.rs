//! A process id that is always a real, positive pid.
//!
//! `kill(0, …)` signals the caller's process group and `kill(-1, …)` signals every process the
//! caller may signal: as root that is the whole machine. CRIU reports pid -1 on failure and a
//! zeroed state file reads as pid 0, so every signal in myrt goes through this type, which
//! cannot hold a pid ≤ 0.

use std::fmt;
use std::num::NonZeroI32;

use nix::sys::signal::Signal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, thiserror::Error)]
pub enum PidError {
    #[error("invalid pid {0}: a pid must be a positive number")]
    Invalid(i64),
    #[error("signal {signal} to pid {pid}: {source}")]
    Signal {
        pid: i32,
        signal: Signal,
        source: nix::Error,
    },
}

/// A pid that is > 0. Construct with [`Pid::new`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid(NonZeroI32);

impl Pid {
    /// Returns `None` for 0 and negative values.
    pub fn new(raw: i32) -> Option<Pid> {
        if raw > 0 {
            NonZeroI32::new(raw).map(Pid)
        } else {
            None
        }
    }

    pub fn try_from_raw(raw: i64) -> Result<Pid, PidError> {
        i32::try_from(raw)
            .ok()
            .and_then(Pid::new)
            .ok_or(PidError::Invalid(raw))
    }

    pub fn this() -> Pid {
        Pid::new(std::process::id() as i32).expect("own pid is positive")
    }

    pub fn as_raw(self) -> i32 {
        self.0.get()
    }

    pub fn as_nix(self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.as_raw())
    }

    /// Sends `signal` to this one process (never a group: the value is always > 0).
    pub fn signal(self, signal: Signal) -> Result<(), PidError> {
        nix::sys::signal::kill(self.as_nix(), signal).map_err(|source| PidError::Signal {
            pid: self.as_raw(),
            signal,
            source,
        })
    }

    /// True while a process with this pid exists (it may be a zombie).
    pub fn exists(self) -> bool {
        !matches!(
            nix::sys::signal::kill(self.as_nix(), None),
            Err(nix::errno::Errno::ESRCH)
        )
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pid({})", self.0)
    }
}

impl Serialize for Pid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(self.as_raw())
    }
}

impl<'de> Deserialize<'de> for Pid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = i64::deserialize(d)?;
        Pid::try_from_raw(raw).map_err(serde::de::Error::custom)
    }
}

/// A pidfd: a handle on one process that cannot be confused with a later process that reuses
/// the same number, so signalling through it is race-free.
#[derive(Debug)]
pub struct PidFd {
    pid: Pid,
    fd: std::os::fd::OwnedFd,
}

impl PidFd {
    /// Opens a handle on `pid`; fails with ESRCH when the process is gone.
    pub fn open(pid: Pid) -> std::io::Result<PidFd> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; checked below.
        let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the syscall returned a fresh fd that nothing else owns (it is O_CLOEXEC).
        let fd =
            unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw as i32) };
        Ok(PidFd { pid, fd })
    }

    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Sends `signal` to exactly the process this handle was opened on.
    pub fn signal(&self, signal: Signal) -> Result<(), PidError> {
        use std::os::fd::AsRawFd;
        // SAFETY: pidfd_send_signal with a valid pidfd, no siginfo and no flags.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                signal as libc::c_int,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc < 0 {
            return Err(PidError::Signal {
                pid: self.pid.as_raw(),
                signal,
                source: nix::errno::Errno::last(),
            });
        }
        Ok(())
    }
}

/// The start time of `pid` (field 22 of /proc/<pid>/stat, clock ticks since boot) and whether it
/// is a zombie. Together with the pid this names one process across pid reuse.
pub fn stat_of(pid: Pid) -> Option<(u64, bool)> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw())).ok()?;
    // The command name (field 2) may hold spaces and parentheses: parse after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    // `rest` starts at field 3; field 22 is 19 further on.
    let start = fields.nth(18)?.parse().ok()?;
    Some((start, state == "Z" || state == "X"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_zero_and_negative() {
        assert!(Pid::new(0).is_none());
        assert!(Pid::new(-1).is_none());
        assert!(Pid::try_from_raw(i64::from(i32::MAX) + 1).is_err());
        assert_eq!(Pid::new(42).map(Pid::as_raw), Some(42));
    }

    #[test]
    fn stat_of_self_is_alive_and_stable() {
        let (t1, zombie) = stat_of(Pid::this()).unwrap();
        assert!(!zombie);
        assert_eq!(stat_of(Pid::this()).unwrap().0, t1);
    }

    #[test]
    fn pidfd_signals_only_its_process() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = Pid::new(child.id() as i32).unwrap();
        let fd = PidFd::open(pid).unwrap();
        fd.signal(Signal::SIGKILL).unwrap();
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        // The process is reaped: the handle now reports it gone instead of hitting a reused pid.
        assert!(fd.signal(Signal::SIGKILL).is_err());
    }

    #[test]
    fn deserialize_refuses_minus_one() {
        assert!(serde_json::from_str::<Pid>("-1").is_err());
        assert!(serde_json::from_str::<Pid>("0").is_err());
        assert_eq!(serde_json::from_str::<Pid>("7").unwrap().as_raw(), 7);
    }
}
