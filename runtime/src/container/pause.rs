//! `pause` and `resume` through the cgroup freezer.

use super::{Container, Op, Result, Status};

impl Container {
    pub fn pause(&mut self) -> Result<()> {
        self.check(Op::Pause)?;
        self.cgroup.freeze()?;
        self.set_status(Status::Paused)
    }

    pub fn resume(&mut self) -> Result<()> {
        self.check(Op::Resume)?;
        self.cgroup.thaw()?;
        self.set_status(Status::Running)
    }
}
