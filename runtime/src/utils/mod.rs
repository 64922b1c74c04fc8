//! Small helpers shared by the engine's modules.

pub mod mountinfo;
pub mod pid;
pub mod time;

pub use pid::{Pid, PidFd};
