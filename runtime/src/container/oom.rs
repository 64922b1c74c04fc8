//! `oom_notifier`: OOM notification for the container's cgroup (runc's `NotifyOOM`).

use super::{Container, Result};
use crate::cgroups::oom::OomNotifier;

impl Container {
    /// Starts watching the container's cgroup for OOM kills; see [`OomNotifier`]. Kills before
    /// this call are not reported.
    pub fn oom_notifier(&self) -> Result<OomNotifier> {
        Ok(OomNotifier::new(self.cgroup())?)
    }
}
