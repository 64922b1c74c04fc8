//! `stats`: the container's cgroup statistics (libcontainer's `Stats`, without network
//! interfaces) and its Intel RDT statistics.

use super::{Container, Result};
use crate::cgroups::stats::Stats;

impl Container {
    /// Reads the statistics of the container's cgroup in any status (runc does not check it
    /// either); a cgroup that is gone (a stopped and destroyed container, or removed behind the
    /// engine's back) is an error naming its directory.
    pub fn stats(&self) -> Result<Stats> {
        Ok(self.cgroup.stats()?)
    }

    /// Intel RDT statistics of the container's resctrl group (runc's `intelrdt.Stats`), or
    /// `None` when config.json has no linux.intelRdt.
    pub fn intel_rdt_stats(&self) -> Result<Option<crate::intelrdt::Stats>> {
        match &self.state.intel_rdt {
            Some(rdt) => Ok(Some(rdt.stats()?)),
            None => Ok(None),
        }
    }
}
