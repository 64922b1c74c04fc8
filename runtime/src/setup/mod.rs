//! The last steps of a container process before `execve`: hostname, rlimits, OOM score, user,
//! capabilities, fds, cwd, umask, then the exec itself.
//!
//! These functions run in the container's init ("stage 2", a fresh single-threaded process in
//! the container's namespaces, after `pivot_root`) and in every exec'd ("setns") process. They
//! change the calling process (or thread, for capabilities) and are meant to be called once, in
//! this order, which is runc's (`standard_init_linux.go`, `finalizeNamespace`):
//!
//! 1. [`set_hostname`], [`set_domainname`] (only with a private UTS namespace), then
//!    [`write_sysctls`] (init only, after pivot_root, before the masked/read-only paths)
//! 2. [`set_scheduler`], [`set_io_priority`] (while CAP_SYS_NICE is held), then
//!    [`apply_rlimits`] while the process still holds `CAP_SYS_RESOURCE` (the parent may do it
//!    instead with [`apply_rlimits_to`], which also works once the child is in a user namespace)
//! 3. [`set_oom_score_adj`], [`set_umask`]
//! 4. [`set_no_new_privileges`] when `process.noNewPrivileges`
//! 5. [`cloexec_from`]`(3 + preserve_fds)`
//! 6. [`change_dir_early`]: the first chdir, as the runtime's user
//! 7. [`drop_bounding`]: needs `CAP_SETPCAP`, so before the uid change
//! 8. [`setup_user`]: stdio owner, groups, gid, uid; keeps the permitted set across the change
//! 9. [`change_dir`] when step 6 was denied: the second chdir, as the container user
//! 10. [`apply_capabilities`]: effective, permitted, inheritable, then ambient. A spec without
//!     `process.capabilities` gets [`no_capabilities`] (every set empty), as in runc.
//! 11. [`find_executable`] (as the container user, with the container's `PATH`), then
//!     [`exec`]. The seccomp filter (`crate::seccomp`) is loaded by `process::child`: right
//!     after step 4 without `noNewPrivileges` (loading then needs CAP_SYS_ADMIN), else last,
//!     after step 11's lookup, as runc does.
//!
//! [`set_memory_policy`] (linux.memoryPolicy) goes with step 2, in init and exec alike, before
//! any seccomp filter. [`move_net_devices`] (linux.netDevices) is the runtime's own step, done
//! by the parent once the init's network namespace exists.
//!
//! Elsewhere: [`write_time_offsets`] in stage 1, between unshare and fork; [`set_personality`]
//! in the init after the rootfs is final; in exec'd processes `execCPUAffinity.initial`
//! ([`set_cpu_affinity`]) first and `.final` right before the no_new_privs seccomp filter.

mod capabilities;
mod cwd;
mod exec;
mod fds;
pub mod lsm;
mod mempolicy;
mod netdev;
mod no_new_privs;
mod oom;
mod personality;
mod rlimits;
mod sched;
mod sysctl;
mod timens;
mod user;
mod uts;

#[cfg(test)]
pub(crate) mod testutil;

pub use capabilities::{
    apply_capabilities, capability_index, capability_name, check_capability_names, drop_bounding,
    last_cap, no_capabilities, parse_capability,
};
pub use cwd::{change_dir, change_dir_early};
pub use exec::{exec, find_executable};
pub use fds::cloexec_from;
pub use mempolicy::{
    check_memory_policy, set_memory_policy, MEMORY_POLICY_FLAGS, MEMORY_POLICY_MODES,
};
pub use netdev::{check_net_devices, move_net_devices};
pub use no_new_privs::set_no_new_privileges;
pub use oom::set_oom_score_adj;
pub use personality::{check_personality, set_personality};
pub use rlimits::{
    apply_rlimits, apply_rlimits_to, check_rlimit_names, parse_rlimit_type, rlimit_name,
};
pub use sched::{
    check_io_priority, check_scheduler, parse_cpu_list, set_cpu_affinity, set_io_priority,
    set_scheduler,
};
pub use sysctl::{check_sysctl, sysctl_path, write_sysctls};
pub use timens::{check_time_offsets, write_time_offsets};
pub use user::{set_umask, setup_user, DEFAULT_UMASK};
pub use uts::{set_domainname, set_hostname};

use nix::errno::Errno;

/// Everything that can go wrong while preparing a container process for `execve`.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("set hostname {name:?} (spec field hostname): {reason}")]
    Hostname { name: String, reason: String },
    #[error("set domainname {name:?} (spec field domainname): {reason}")]
    Domainname { name: String, reason: String },
    #[error("unknown rlimit type {name:?} in process.rlimits: use a name like RLIMIT_NOFILE")]
    UnknownRlimit { name: String },
    #[error("process.rlimits {name} (soft {soft}, hard {hard}): {reason}")]
    Rlimit {
        name: String,
        soft: u64,
        hard: u64,
        reason: String,
    },
    #[error("process.oomScoreAdj {score}: {reason}")]
    OomScoreAdj { score: i32, reason: String },
    #[error("process.noNewPrivileges: prctl(PR_SET_NO_NEW_PRIVS): {reason}")]
    NoNewPrivileges { reason: String },
    #[error("process.user.umask {umask:#o}: {reason}")]
    Umask { umask: u32, reason: String },
    #[error("process.user.{field} {value}: {reason}")]
    User {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error(
        "unknown capability {name:?} in process.capabilities: use a Linux capability name like CAP_CHOWN"
    )]
    UnknownCapability { name: String },
    #[error("process.capabilities: {op}: {reason}")]
    Capabilities { op: String, reason: String },
    #[error("mark fds >= {first} close-on-exec: {reason}")]
    Cloexec { first: i32, reason: String },
    #[error("process.cwd {cwd:?}: {reason}")]
    Cwd { cwd: String, reason: String },
    /// Go's `exec.LookPath` text, which runc shows as is: `exec: "foo": …`.
    #[error("exec: {name:?}: {reason}")]
    LookPath { name: String, reason: String },
    #[error("process.{field} holds a NUL byte: {value:?}")]
    NulByte { field: String, value: String },
    #[error("exec {path:?}: {reason}")]
    Exec { path: String, reason: String },
    #[error("linux.sysctl[{key:?}]: {reason}")]
    Sysctl { key: String, reason: String },
    #[error("linux.sysctl[{key:?}] = {value:?}: {reason}")]
    SysctlValue {
        key: String,
        value: String,
        reason: String,
    },
    /// A spec field that cannot be carried out as configured, whatever its value.
    #[error("{field}: {reason}")]
    Needs { field: String, reason: String },
    /// A spec field and the value that cannot be carried out (scheduling, personality, time).
    #[error("{field} {value}: {reason}")]
    Field {
        field: String,
        value: String,
        reason: String,
    },
}

/// The errno text the way Go (and so runc) prints it: "no such file or directory".
pub(crate) fn errno_text(errno: Errno) -> String {
    let desc = errno.desc();
    let mut chars = desc.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => format!("errno {}", errno as i32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_text_is_go_style() {
        assert_eq!(errno_text(Errno::ENOTDIR), "not a directory");
        assert_eq!(errno_text(Errno::ENOENT), "no such file or directory");
        assert_eq!(errno_text(Errno::EACCES), "permission denied");
    }
}
