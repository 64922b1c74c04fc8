//! `delete`: libcontainer's destroy order — freeze, SIGKILL every process, thaw, wait until the
//! cgroup is empty, remove the cgroup and the state, then run the poststop hooks.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{Container, ContainerError, Result, Status};
use crate::hooks::HookKind;

/// How long delete waits for a killed init to be gone before unmounting what it mounted.
const INIT_EXIT_WAIT: Duration = Duration::from_secs(5);

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
        // Before anything is removed: if this fails, the state stays for another delete.
        self.release_runtime_ns_mounts()?;
        let mut state = self.oci_state();
        state.status = HookKind::Poststop.status().to_string();
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

    /// A container without a mount namespace of its own: unmounts what it mounted in the
    /// runtime's mount namespace, once its init is gone (a dying init could still be mounting).
    pub(super) fn release_runtime_ns_mounts(&self) -> Result<()> {
        let Some(mounts) = &self.state.runtime_ns_mounts else {
            return Ok(());
        };
        let deadline = Instant::now() + INIT_EXIT_WAIT;
        while self.init_pid().is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let n = mounts.release(&self.state.rootfs)?;
        log::debug!(
            "container {}: {n} mount(s) under {} unmounted",
            self.state.id,
            self.state.rootfs.display()
        );
        Ok(())
    }
}
