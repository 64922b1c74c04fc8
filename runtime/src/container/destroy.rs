//! `delete`: libcontainer's destroy order — freeze, SIGKILL every process, thaw, wait until the
//! cgroup is empty, remove the cgroup and the state, then run the poststop hooks.

use nix::sys::signal::Signal;

use super::{Container, ContainerError, Result, Status};
use crate::hooks::HookKind;

impl Container {
    /// Destroys the container. A running or paused one needs `force`.
    pub fn destroy(&mut self, force: bool) -> Result<()> {
        let status = self.status();
        if matches!(status, Status::Running | Status::Paused) && !force {
            return Err(ContainerError::StillRunning(self.state.id.clone()));
        }
        if self.cgroup.exists() {
            self.cgroup.kill_all()?;
        }
        // The init may sit outside the cgroup if its cgroup vanished: kill it by its handle.
        if let Some(init) = self.init_pidfd() {
            let _ = init.signal(Signal::SIGKILL);
        }
        let mut state = self.oci_state();
        state.status = Status::Stopped.to_string();
        self.cgroup.remove()?;
        // Intel RDT: remove the resctrl groups myrt made (never a class it only joined).
        if let Some(rdt) = self.state.intel_rdt.as_mut() {
            rdt.remove()?;
        }
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(super::io_err(&self.dir)(e)),
        }
        self.state.status = Status::Stopped;
        if let Err(e) = crate::process::run_hooks_in_helper(
            HookKind::Poststop,
            self.spec
                .hooks()
                .as_ref()
                .and_then(|h| h.poststop().as_ref()),
            &state,
        ) {
            // The spec: a failing poststop hook is logged; deletion goes on.
            log::warn!("container {}: {e}", self.state.id);
        }
        Ok(())
    }
}
