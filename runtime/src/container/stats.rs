//! `stats`: the container's cgroup statistics (libcontainer's `Stats`, without network
//! interfaces and Intel RDT, which myrt does not manage).

use super::{Container, Result};
use crate::cgroups::stats::Stats;

impl Container {
    /// Reads the statistics of the container's cgroup in any status (runc does not check it
    /// either); a cgroup that is gone (a stopped and destroyed container, or removed behind the
    /// engine's back) is an error naming its directory.
    pub fn stats(&self) -> Result<Stats> {
        Ok(self.cgroup.stats()?)
    }
}
