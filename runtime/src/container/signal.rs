//! `kill`: a signal to the init, or to every process of the container.

use nix::sys::signal::Signal;

use super::{Container, ContainerError, Op, Result, Status};

impl Container {
    /// Sends `signal` to the init, or with `all` to every process in the container's cgroup.
    /// With `all` a stopped container is accepted too (as runc does): its init is gone, but
    /// processes it left behind may still sit in the cgroup.
    pub fn signal(&self, signal: Signal, all: bool) -> Result<()> {
        if all {
            let status = self.status();
            if status == Status::Stopped && !self.cgroup.exists() {
                return Ok(());
            }
            return self.signal_all(signal, status);
        }
        self.check(Op::Signal)?;
        let init = self.init_pidfd().ok_or_else(|| ContainerError::InitGone {
            id: self.state.id.clone(),
        })?;
        Ok(init.signal(signal)?)
    }

    /// Signals every process, frozen while it happens so none can fork away from the list
    /// (libcontainer's signalAllProcesses). A paused container stays frozen.
    fn signal_all(&self, signal: Signal, status: Status) -> Result<()> {
        if signal == Signal::SIGKILL {
            return Ok(self.cgroup.kill_all()?);
        }
        let was_paused = status == Status::Paused;
        if !was_paused {
            self.cgroup.freeze()?;
        }
        let pids = self.cgroup.pids();
        if let Ok(pids) = &pids {
            for pid in pids {
                if let Err(e) = pid.signal(signal) {
                    log::debug!("container {}: {e}", self.state.id);
                }
            }
        }
        if !was_paused {
            self.cgroup.thaw()?;
        }
        pids?;
        Ok(())
    }
}
