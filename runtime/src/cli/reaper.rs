//! Foreground `run` and `exec`: myrt becomes a child subreaper (the container's processes are
//! its grandchildren and get reparented to it), forwards the signals it receives to the process
//! and waits for its exit status, like runc's signalHandler.

use std::os::fd::AsFd;

use myrt_runtime::Pid;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};

use super::console::Relay;
use super::{CliError, Result};

/// Signals that are never forwarded: faults must keep their default action, SIGKILL/SIGSTOP cannot
/// be caught, and SIGPIPE stays ignored (Rust's runtime sets that up).
const NOT_FORWARDED: &[Signal] = &[
    Signal::SIGKILL,
    Signal::SIGSTOP,
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGFPE,
    Signal::SIGILL,
    Signal::SIGTRAP,
    Signal::SIGSYS,
    Signal::SIGPIPE,
];

/// The signals we take over. Create it before starting anything: the signals stay blocked (and
/// queued) in this thread and every thread created later, and are read from a signalfd.
pub struct Signals {
    fd: SignalFd,
}

impl Signals {
    pub fn take_over() -> Result<Signals> {
        nix::sys::prctl::set_child_subreaper(true).map_err(CliError::Signals)?;
        let mut mask = SigSet::empty();
        for sig in Signal::iterator() {
            if !NOT_FORWARDED.contains(&sig) {
                mask.add(sig);
            }
        }
        // std::process::Command resets the mask in its children, so the engine's processes and
        // hooks start with every signal unblocked.
        mask.thread_block().map_err(CliError::Signals)?;
        let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(CliError::Signals)?;
        Ok(Signals { fd })
    }

    /// Forwards signals to `pid` until it exits; returns its status as a shell reports it
    /// (the exit code, or 128 + the signal number).
    pub fn forward(&self, pid: Pid, relay: Option<&Relay>) -> Result<i32> {
        loop {
            if let Some(status) = reap(pid)? {
                return Ok(status);
            }
            // Wake up now and then: a process that is not our child sends no SIGCHLD.
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(1000u16)) {
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => {}
                Err(e) => return Err(CliError::Signals(e)),
            }
            let info = match self.fd.read_signal() {
                Ok(Some(info)) => info,
                Ok(None) | Err(Errno::EINTR) | Err(Errno::EAGAIN) => continue,
                Err(e) => return Err(CliError::Signals(e)),
            };
            let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                continue;
            };
            match sig {
                Signal::SIGCHLD => {}
                Signal::SIGWINCH => {
                    if let Some(r) = relay {
                        r.resize();
                    }
                }
                sig => {
                    log::debug!("forwarding signal {sig} to {pid}");
                    if let Err(e) = pid.signal(sig) {
                        log::warn!("{e}");
                    }
                }
            }
        }
    }
}

/// Reaps every exited child; returns `pid`'s status once it is among them. Other children are
/// the engine's helpers or container processes reparented to us: collected and dropped.
fn reap(pid: Pid) -> Result<Option<i32>> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, code)) if p == pid.as_nix() => return Ok(Some(code)),
            Ok(WaitStatus::Signaled(p, sig, _)) if p == pid.as_nix() => {
                return Ok(Some(128 + sig as i32))
            }
            Ok(WaitStatus::StillAlive) => return Ok(None),
            Ok(_) | Err(Errno::EINTR) => {}
            Err(Errno::ECHILD) => {
                // No child at all: the process is not ours to wait for (someone else reaped it).
                return if pid.exists() {
                    Ok(None)
                } else {
                    Err(CliError::State(format!(
                        "process {pid} exited, but its status went to another process"
                    )))
                };
            }
            Err(e) => return Err(CliError::Signals(e)),
        }
    }
}
