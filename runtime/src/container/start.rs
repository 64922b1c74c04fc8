//! `start`: release the init waiting on the exec fifo so it execs the user's program.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};

use super::{io_err, Container, ContainerError, Op, Result, Status, EXEC_FIFO};
use crate::hooks::HookKind;

/// How long `start` waits for an init that is alive but has not reached the fifo yet.
const START_TIMEOUT: Duration = Duration::from_secs(60);

impl Container {
    pub fn start(&mut self) -> Result<()> {
        self.check(Op::Start)?;
        let path = self.dir.join(EXEC_FIFO);
        // Non-blocking open: a reader never blocks, and the init blocked in its open for writing
        // wakes up now. Linux reports no POLLHUP before the first writer, so poll() waits for
        // the init's byte, or for the init's death, which we check between polls.
        let fifo = nix::fcntl::open(
            &path,
            OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| io_err(&path)(e.into()))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
            let n = nix::poll::poll(&mut fds, PollTimeout::from(100u16))
                .map_err(|e| io_err(&path)(e.into()))?;
            if n > 0 {
                let mut buf = [0u8; 1];
                match nix::unistd::read(&fifo, &mut buf) {
                    Ok(1) => break,
                    Ok(_) | Err(nix::errno::Errno::EAGAIN) => {}
                    Err(e) => return Err(io_err(&path)(e.into())),
                }
            }
            if self.init_pid().is_none() {
                return Err(ContainerError::InitGone {
                    id: self.state.id.clone(),
                });
            }
            if Instant::now() > deadline {
                return Err(ContainerError::Spec(format!(
                    "container {}: init did not reach the start barrier in {}s",
                    self.state.id,
                    START_TIMEOUT.as_secs()
                )));
            }
        }
        std::fs::remove_file(&path).map_err(io_err(&path))?;
        if let Some(text) = read_init_error(&fifo) {
            return Err(ContainerError::StartFailed {
                id: self.state.id.clone(),
                reason: text,
            });
        }
        self.set_status(Status::Running)?;
        // As of "running" with the init's pid, even when the program already exited: the hook
        // describes the start that just happened, not what the kernel shows now.
        let mut state = self.oci_state();
        state.status = HookKind::Poststart.status().into();
        state.pid = self.state.init_pid.map(crate::utils::Pid::as_raw);
        if let Err(e) = crate::process::run_hooks_in_helper(
            HookKind::Poststart,
            self.spec
                .hooks()
                .as_ref()
                .and_then(|h| h.poststart().as_ref()),
            &state,
        ) {
            // The spec: a failing poststart hook is logged; the container keeps running.
            log::warn!("container {}: {e}", self.state.id);
        }
        Ok(())
    }
}

/// After the go-ahead byte the init keeps the fifo open (close-on-exec) while it runs the
/// startContainer hooks and execs: EOF means execve succeeded, text is the init's error.
fn read_init_error(fifo: &std::os::fd::OwnedFd) -> Option<String> {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut out = Vec::new();
    while Instant::now() < deadline {
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, PollTimeout::from(1000u16)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(_) => break,
        }
        let mut buf = [0u8; 4096];
        match nix::unistd::read(fifo, &mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => break,
        }
    }
    (!out.is_empty()).then(|| String::from_utf8_lossy(&out).into_owned())
}
