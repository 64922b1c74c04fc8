//! myrt-runtime: an OCI runtime engine modeled on runc's libcontainer.
//!
//! [`Factory`] creates and loads containers; [`Container`] carries out the verbs (start, exec,
//! signal, pause, resume, destroy); [`process`] starts the container's init (a re-exec of this
//! binary from a sealed memfd) and setns processes; [`rootfs`], [`cgroups`], [`namespaces`],
//! [`setup`], [`hooks`] and [`tty`] are the pieces they use.

pub mod cgroups;
pub mod container;
pub mod criu;
pub mod factory;
pub mod features;
pub mod hooks;
pub mod intelrdt;
pub mod namespaces;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod setup;
pub mod spec;
pub mod tty;
pub mod utils;

pub use container::{
    CgroupsMode, CheckpointOpts, Container, ContainerError, CreateOpts, ExecOpts, RestoreOpts,
    Status,
};
pub use factory::Factory;
pub use process::{init_main_if_requested, Stdio};
pub use utils::{Pid, PidFd};

/// This build's version (`myrt --version`, the features document's annotations).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The newest OCI runtime spec version this build understands.
pub const SPEC_VERSION: &str = "1.2.0";
