//! `linux.seccomp`: builds a libseccomp filter from the OCI profile (runc's `InitSeccomp`), loads
//! it in the container process, and hands a `SCMP_ACT_NOTIFY` listener fd to the seccomp agent
//! at `listenerPath` (runtime-spec config-linux.md, "seccomp").
//!
//! The filter is built (and so checked) at `create` time by [`validate`], and again in the
//! child before it drops privileges; see process/child.rs for where it is loaded.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext};
use libseccomp::{ScmpSyscall, ScmpVersion};
use nix::sys::socket::{self, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator,
};
use serde::Serialize;

use crate::hooks::OciState;

/// The kernel passes at most six syscall arguments.
const MAX_ARGS: usize = 6;

/// Syscalls the init itself makes between loading the filter and handing the listener fd to
/// the agent: a notify rule on them would block the init on its own agent forever (runc refuses
/// `write` for the same reason).
const NOTIFY_FORBIDDEN: &[&str] = &["write", "sendmsg", "connect", "socket"];

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("{field}: libseccomp: {reason}")]
    Library { field: String, reason: String },
    #[error("linux.seccomp: load the filter: {reason}")]
    Load { reason: String },
    #[error("linux.seccomp.listenerPath {path:?}: {op}: {reason}")]
    Listener {
        path: PathBuf,
        op: &'static str,
        reason: String,
    },
}

type Result<T> = std::result::Result<T, SeccompError>;

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> SeccompError {
    SeccompError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

fn lib(field: impl Into<String>) -> impl FnOnce(libseccomp::error::SeccompError) -> SeccompError {
    let field = field.into();
    move |e| SeccompError::Library {
        field,
        reason: e.to_string(),
    }
}

/// A compiled filter, ready to load in the container process.
pub struct Filter {
    ctx: ScmpFilterContext,
    notify: bool,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("notify", &self.notify)
            .finish()
    }
}

/// The runtime-spec "containerProcessState" sent to the seccomp agent with the listener fd.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ContainerProcessState {
    pub oci_version: String,
    pub fds: Vec<String>,
    pub pid: i32,
    pub metadata: String,
    pub state: OciState,
}

/// Checks the profile by building its filter, without loading anything.
pub fn validate(seccomp: &LinuxSeccomp) -> Result<()> {
    build(seccomp).map(drop)
}

/// Names the first unknown action, architecture, flag or operator of a raw `linux.seccomp`, for
/// a config.json that the typed spec could not read (serde only says "unknown variant").
pub fn check_names(raw: &serde_json::Value) -> Result<()> {
    let Some(sc) = raw.pointer("/linux/seccomp") else {
        return Ok(());
    };
    let check = |v: Option<&serde_json::Value>, field: String, known: &[&str], what: &str| match v
        .and_then(|v| v.as_str())
    {
        Some(name) if !known.contains(&name) => Err(invalid(
            format!("{field} {name:?}"),
            format!("unknown {what}: use one of {}", known.join(", ")),
        )),
        _ => Ok(()),
    };
    let list = |key: &str| -> Vec<serde_json::Value> {
        sc.get(key)
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default()
    };
    let f = "linux.seccomp";
    check(
        sc.get("defaultAction"),
        format!("{f}.defaultAction"),
        features::ACTIONS,
        "action",
    )?;
    let archs = [features::ARCHS, &["SCMP_ARCH_NATIVE"]].concat();
    for (i, a) in list("architectures").iter().enumerate() {
        let field = format!("{f}.architectures[{i}]");
        check(Some(a), field, &archs, "architecture")?;
    }
    let flags = features::known_flags();
    for (i, a) in list("flags").iter().enumerate() {
        check(Some(a), format!("{f}.flags[{i}]"), &flags, "flag")?;
    }
    for (i, call) in list("syscalls").iter().enumerate() {
        let field = format!("{f}.syscalls[{i}]");
        let action = call.get("action");
        check(
            action,
            format!("{field}.action"),
            features::ACTIONS,
            "action",
        )?;
        let args = call.get("args").and_then(|a| a.as_array());
        for (j, arg) in args.into_iter().flatten().enumerate() {
            let field = format!("{field}.args[{j}].op");
            check(arg.get("op"), field, features::OPERATORS, "operator")?;
        }
    }
    Ok(())
}

/// Real syscalls newer than libseccomp 2.5.4's table (Linux 6.6 and later): unknown to it on
/// every architecture, yet a current default profile may list them, so they are skipped with a
/// warning (as runc does) instead of being refused like a misspelt name.
const NEWER_THAN_LIBSECCOMP: &[&str] = &[
    "file_getattr",
    "file_setattr",
    "getxattrat",
    "listmount",
    "listxattrat",
    "lsm_get_self_attr",
    "lsm_list_modules",
    "lsm_set_self_attr",
    "mseal",
    "open_tree_attr",
    "removexattrat",
    "setxattrat",
    "statmount",
    "uretprobe",
];

/// Refuses a syscall name that libseccomp knows on none of `archs`, the profile's
/// architectures: a misspelt name would otherwise leave a deny rule silently out. A name known
/// on another listed architecture only, or a real syscall newer than libseccomp
/// ([`NEWER_THAN_LIBSECCOMP`]), is left for [`build`] to skip with a warning, as runc does.
fn check_syscall_name(name: &str, archs: &[ScmpArch], field: &str) -> Result<()> {
    if NEWER_THAN_LIBSECCOMP.contains(&name)
        || archs
            .iter()
            .any(|a| ScmpSyscall::from_name_by_arch(name, *a).is_ok())
    {
        return Ok(());
    }
    let v = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_else(|_| "?".into());
    Err(invalid(
        field,
        format!(
            "unknown syscall on every architecture of the profile (libseccomp {v}): check the spelling"
        ),
    ))
}

/// The action libseccomp takes for an OCI action; `errno_ret` is used by ERRNO and TRACE.
fn action(a: LinuxSeccompAction, errno_ret: Option<u32>, field: &str) -> Result<ScmpAction> {
    let ret = || -> Result<u16> {
        match errno_ret {
            // runc's default return code for ERRNO and TRACE.
            None => Ok(libc::EPERM as u16),
            Some(v) => u16::try_from(v).map_err(|_| {
                invalid(
                    field,
                    format!("errno return {v} is out of range: use 0 to 65535"),
                )
            }),
        }
    };
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(i32::from(ret()?)),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(ret()?),
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
    })
}

/// libseccomp's architecture for an OCI one.
pub fn arch(a: Arch) -> ScmpArch {
    match a {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
    }
}

/// The JSON name of a serde enum value, for messages.
fn json_name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn condition(a: &LinuxSeccompArg, field: &str) -> Result<ScmpArgCompare> {
    if a.index() >= MAX_ARGS {
        return Err(invalid(
            format!("{field}.index"),
            format!(
                "{} is out of range: a syscall has arguments 0 to {}",
                a.index(),
                MAX_ARGS - 1
            ),
        ));
    }
    let value_two = a.value_two().unwrap_or(0);
    let (op, datum) = match a.op() {
        LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, a.value()),
        LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, a.value()),
        LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, a.value()),
        LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, a.value()),
        LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, a.value()),
        LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, a.value()),
        // As in runc: value is the mask, valueTwo the value compared with.
        LinuxSeccompOperator::ScmpCmpMaskedEq => (ScmpCompareOp::MaskedEqual(a.value()), value_two),
    };
    // index < MAX_ARGS, so it fits.
    Ok(ScmpArgCompare::new(a.index() as u32, op, datum))
}

/// Builds the filter the way runc's `InitSeccomp` does.
pub fn build(seccomp: &LinuxSeccomp) -> Result<Filter> {
    let default = action(
        seccomp.default_action(),
        seccomp.default_errno_ret(),
        "linux.seccomp.defaultErrnoRet",
    )?;
    if default == ScmpAction::Notify {
        return Err(invalid(
            "linux.seccomp.defaultAction",
            "SCMP_ACT_NOTIFY cannot be the default action (the runtime itself would be stopped): use it on single syscalls",
        ));
    }
    let mut ctx = ScmpFilterContext::new(default).map_err(lib("linux.seccomp.defaultAction"))?;
    // The runtime sets no_new_privs itself when process.noNewPrivileges asks for it.
    ctx.set_ctl_nnp(false)
        .map_err(lib("linux.seccomp (no_new_privs attribute)"))?;

    for (i, a) in seccomp.architectures().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.architectures[{i}] {}", json_name(a));
        let sa = arch(*a);
        if !ctx.is_arch_present(sa).map_err(lib(field.clone()))? {
            ctx.add_arch(sa).map_err(lib(field))?;
        }
    }

    for (i, f) in seccomp.flags().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.flags[{i}] {}", json_name(f));
        match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => ctx.set_ctl_tsync(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => ctx.set_ctl_log(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => ctx.set_ctl_ssb(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => ctx.set_ctl_waitkill(true),
        }
        .map_err(lib(field))?;
    }

    // The architectures a name may belong to: the listed ones, else the native one.
    let mut archs: Vec<ScmpArch> = seccomp
        .architectures()
        .iter()
        .flatten()
        .map(|a| arch(*a))
        .collect();
    if archs.is_empty() {
        archs.push(ScmpArch::Native);
    }
    let mut notify = false;
    for (i, call) in seccomp.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let act = action(
            call.action(),
            call.errno_ret(),
            &format!("{field}.errnoRet"),
        )?;
        if act == default {
            // libseccomp refuses a rule that repeats the default action; runc skips it too.
            log::debug!("{field}: same action as the default, skipped");
            continue;
        }
        let conds = call
            .args()
            .iter()
            .flatten()
            .enumerate()
            .map(|(j, a)| condition(a, &format!("{field}.args[{j}]")))
            .collect::<Result<Vec<_>>>()?;
        // runc: when two conditions test the same argument, each becomes its own rule (an OR);
        // otherwise they form one rule (an AND).
        let mut seen = [0u32; MAX_ARGS];
        for a in call.args().iter().flatten() {
            seen[a.index()] += 1;
        }
        let separate = seen.iter().any(|n| *n > 1);
        for (j, name) in call.names().iter().enumerate() {
            let nfield = format!("{field}.names[{j}] {name:?}");
            if act == ScmpAction::Notify {
                if NOTIFY_FORBIDDEN.contains(&name.as_str()) {
                    return Err(invalid(
                        nfield,
                        "SCMP_ACT_NOTIFY cannot be used for this syscall: the runtime needs it to hand the listener to the agent",
                    ));
                }
                notify = true;
            }
            check_syscall_name(name, &archs, &nfield)?;
            // A name of another listed architecture only (or a newer kernel): skipped, as runc.
            let Ok(sys) = ScmpSyscall::from_name(name) else {
                log::warn!("{nfield}: unknown syscall on this architecture, ignored");
                continue;
            };
            if conds.is_empty() {
                ctx.add_rule(act, sys).map_err(lib(nfield))?;
            } else if separate {
                for c in &conds {
                    ctx.add_rule_conditional(act, sys, std::slice::from_ref(c))
                        .map_err(lib(nfield.clone()))?;
                }
            } else {
                ctx.add_rule_conditional(act, sys, &conds)
                    .map_err(lib(nfield))?;
            }
        }
    }

    let has_listener = seccomp
        .listener_path()
        .as_ref()
        .is_some_and(|p| !p.as_os_str().is_empty());
    if notify {
        if !has_listener {
            return Err(invalid(
                "linux.seccomp.listenerPath",
                "missing: SCMP_ACT_NOTIFY is used, so a seccomp agent's unix socket must be named",
            ));
        }
        let api6 = libseccomp::check_api(6, ScmpVersion::from((2, 5, 0))).unwrap_or(false);
        if !api6 {
            return Err(invalid(
                "linux.seccomp",
                "SCMP_ACT_NOTIFY needs libseccomp >= 2.5 and a kernel with seccomp user notification",
            ));
        }
    } else if has_listener {
        log::warn!("linux.seccomp.listenerPath: set, but no syscall uses SCMP_ACT_NOTIFY; ignored");
    }
    // Compile now, so a profile the kernel would refuse fails here rather than in the init.
    let sink = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .map_err(|e| invalid("linux.seccomp", format!("open /dev/null: {e}")))?;
    ctx.export_bpf(&sink)
        .map_err(lib("linux.seccomp (compiling the filter)"))?;
    Ok(Filter { ctx, notify })
}

impl Filter {
    /// Whether the profile uses `SCMP_ACT_NOTIFY` (and so needs [`connect_listener`]).
    pub fn uses_notify(&self) -> bool {
        self.notify
    }

    /// Loads the filter into the calling process; returns the notify fd when the profile has
    /// `SCMP_ACT_NOTIFY` rules.
    pub fn load(&self) -> Result<Option<OwnedFd>> {
        self.ctx.load().map_err(|e| SeccompError::Load {
            reason: e.to_string(),
        })?;
        if !self.notify {
            return Ok(None);
        }
        let fd = self.ctx.get_notify_fd().map_err(|e| SeccompError::Load {
            reason: format!("get the notify fd: {e}"),
        })?;
        // SAFETY: libseccomp hands us the listener fd the kernel created for this filter;
        // nothing else in this process closes it.
        Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
    }
}

/// Connects to the agent's socket at `listenerPath`, when the profile needs one. Done before the
/// process enters the container's root, where the host path is no longer reachable.
pub fn connect_listener(seccomp: &LinuxSeccomp) -> Result<Option<OwnedFd>> {
    let uses_notify = seccomp
        .syscalls()
        .iter()
        .flatten()
        .any(|c| c.action() == LinuxSeccompAction::ScmpActNotify);
    let path = match seccomp.listener_path() {
        Some(p) if uses_notify && !p.as_os_str().is_empty() => p,
        _ => return Ok(None),
    };
    let err = |op: &'static str| {
        move |e: nix::errno::Errno| SeccompError::Listener {
            path: path.to_path_buf(),
            op,
            reason: e.desc().to_lowercase(),
        }
    };
    let sock = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(err("socket"))?;
    let addr = socket::UnixAddr::new(path.as_path()).map_err(err("address"))?;
    socket::connect(sock.as_raw_fd(), &addr).map_err(err("connect"))?;
    Ok(Some(sock))
}

/// Sends the notify fd with the container process state to the agent (runtime-spec: one
/// message, the state as JSON payload, the fd as SCM_RIGHTS), then closes both.
pub fn send_listener(
    sock: OwnedFd,
    notify_fd: OwnedFd,
    state: &ContainerProcessState,
    path: &Path,
) -> Result<()> {
    let fail = |op: &'static str, reason: String| SeccompError::Listener {
        path: path.to_path_buf(),
        op,
        reason,
    };
    let payload = serde_json::to_vec(state).map_err(|e| fail("encode the state", e.to_string()))?;
    let fds = [notify_fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(&payload)];
    let sent = socket::sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None)
        .map_err(|e| fail("send the listener fd", e.desc().to_lowercase()))?;
    if sent != payload.len() {
        return Err(fail(
            "send the listener fd",
            format!("short write ({sent} of {} bytes)", payload.len()),
        ));
    }
    Ok(())
}

/// The filter a container process loads, with the agent connection when it uses notify.
pub struct Pending {
    pub filter: Filter,
    pub listener: Option<OwnedFd>,
}

impl Pending {
    /// Builds the profile of `spec` (if any) and connects to its agent; `None` without
    /// `linux.seccomp`.
    pub fn from_spec(spec: &oci_spec::runtime::Spec) -> Result<Option<Pending>> {
        let Some(seccomp) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else {
            return Ok(None);
        };
        let filter = build(seccomp)?;
        let listener = if filter.uses_notify() {
            connect_listener(seccomp)?
        } else {
            None
        };
        Ok(Some(Pending { filter, listener }))
    }

    /// Loads the filter, then hands the notify fd to the agent with `state`.
    pub fn apply(self, spec: &oci_spec::runtime::Spec, pid: i32, state: OciState) -> Result<()> {
        let notify_fd = self.filter.load()?;
        let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
        if let (Some(fd), Some(sock), Some(sc)) = (notify_fd, self.listener, seccomp) {
            let path = sc.listener_path().clone().unwrap_or_default();
            let cps = ContainerProcessState {
                oci_version: oci_spec::runtime::VERSION.to_string(),
                fds: vec!["seccompFd".into()],
                pid,
                metadata: sc.listener_metadata().clone().unwrap_or_default(),
                state,
            };
            send_listener(sock, fd, &cps, &path)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

/// What `myrt features` reports under `linux.seccomp` (runc's names and layout).
pub mod features {
    /// The actions a profile may use.
    pub const ACTIONS: &[&str] = &[
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_LOG",
        "SCMP_ACT_NOTIFY",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_TRAP",
    ];
    /// The argument comparison operators.
    pub const OPERATORS: &[&str] = &[
        "SCMP_CMP_EQ",
        "SCMP_CMP_GE",
        "SCMP_CMP_GT",
        "SCMP_CMP_LE",
        "SCMP_CMP_LT",
        "SCMP_CMP_MASKED_EQ",
        "SCMP_CMP_NE",
    ];
    /// Every architecture the OCI spec names; libseccomp knows them all.
    pub const ARCHS: &[&str] = &[
        "SCMP_ARCH_AARCH64",
        "SCMP_ARCH_ARM",
        "SCMP_ARCH_MIPS",
        "SCMP_ARCH_MIPS64",
        "SCMP_ARCH_MIPS64N32",
        "SCMP_ARCH_MIPSEL",
        "SCMP_ARCH_MIPSEL64",
        "SCMP_ARCH_MIPSEL64N32",
        "SCMP_ARCH_PPC",
        "SCMP_ARCH_PPC64",
        "SCMP_ARCH_PPC64LE",
        "SCMP_ARCH_RISCV64",
        "SCMP_ARCH_S390",
        "SCMP_ARCH_S390X",
        "SCMP_ARCH_X32",
        "SCMP_ARCH_X86",
        "SCMP_ARCH_X86_64",
    ];
    /// The filter flags this engine recognizes, with the libseccomp API level each needs.
    const FLAGS: &[(&str, u32)] = &[
        ("SECCOMP_FILTER_FLAG_TSYNC", 2),
        ("SECCOMP_FILTER_FLAG_LOG", 3),
        ("SECCOMP_FILTER_FLAG_SPEC_ALLOW", 4),
        ("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", 7),
    ];

    pub fn known_flags() -> Vec<&'static str> {
        FLAGS.iter().map(|(f, _)| *f).collect()
    }

    /// The flags the linked libseccomp (and so this build) can set.
    pub fn supported_flags() -> Vec<&'static str> {
        let api = libseccomp::get_api();
        FLAGS
            .iter()
            .filter(|(_, level)| api >= *level)
            .map(|(f, _)| *f)
            .collect()
    }
}
