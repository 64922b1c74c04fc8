//! Small helpers shared by the engine's modules.

pub mod pid;

pub use pid::{Pid, PidFd};
