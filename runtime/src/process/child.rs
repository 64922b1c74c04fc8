//! The child side: stage 1 joins and creates namespaces and forks; stage 2 becomes the container's
//! init (or the exec'd process), sets everything up and execs the user's program.
//!
//! Both run single-threaded in a fresh copy of this binary, so ordinary Rust (allocation, std) is
//! safe here. Every failure is sent to the parent as text and ends the process.

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::unistd::{ForkResult, Gid, Uid};

use super::channel::{Channel, ToChild, ToParent};
use super::{ChildConfig, Mode};
use crate::hooks::{self, HookKind};
use crate::namespaces::{self, Kind};
use crate::rootfs::{self, RootfsConfig};
use crate::seccomp::Pending as PendingSeccomp;
use crate::{setup, tty};

/// A failure in the child, already phrased for the user.
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

type Result<T> = std::result::Result<T, Failure>;

pub(super) fn main(fd: RawFd) -> i32 {
    // SAFETY: the parent passed this fd to us on purpose (INIT_ENV); nothing else owns it.
    let mut chan = Channel::from_fd(unsafe { OwnedFd::from_raw_fd(fd) });
    // The socket must not reach the user's program: mark it close-on-exec again.
    // SAFETY: fcntl on our own valid fd.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    let cfg = match chan.recv::<ToChild>() {
        Ok(Some(ToChild::Bootstrap(cfg))) => cfg,
        Ok(Some(ToChild::Hooks { kind, hooks, state })) => {
            return match hooks::run_hooks(kind, Some(&hooks), &state) {
                Ok(()) => chan.send(&ToParent::Ready).map_or(1, |_| 0),
                Err(e) => fail(&mut chan, e.into()),
            };
        }
        Ok(Some(other)) => {
            return fail(
                &mut chan,
                Failure(format!("expected bootstrap, got {other:?}")),
            )
        }
        Ok(None) => return 1,
        Err(e) => return fail(&mut chan, e.into()),
    };
    match stage1(&mut chan, &cfg) {
        Ok(code) => code,
        Err(e) => fail(&mut chan, e),
    }
}

fn fail(chan: &mut Channel, err: Failure) -> i32 {
    if chan.send(&ToParent::Error(err.0.clone())).is_err() {
        // The caller of `create` is gone (we failed after Ready): the container's stderr is the
        // only place left where someone will see why.
        eprintln!("myrt-init: {}", err.0);
    }
    1
}

fn expect(chan: &mut Channel, what: &str) -> Result<ToChild> {
    match chan.recv::<ToChild>()? {
        Some(msg) => Ok(msg),
        None => Err(Failure(format!(
            "parent went away while waiting for {what}"
        ))),
    }
}

/// Joins namespaces by path, creates the new ones, then forks the process that lives in them
/// (a new pid namespace only applies to children).
fn stage1(chan: &mut Channel, cfg: &ChildConfig) -> Result<i32> {
    if let Some(score) = cfg.process.oom_score_adj() {
        // Before entering a user namespace: raising the score needs no privilege, but the file
        // must be written with the host's credentials.
        setup::set_oom_score_adj(None, score)?;
    }
    // setns: the init's root, taken before joining anything. Joining the mount namespace puts
    // us at the namespace's root, which is the host's old root for a --no-pivot container.
    let init_root = match cfg.init_pid {
        Some(pid) => Some(
            nix::fcntl::open(
                format!("/proc/{pid}/root").as_str(),
                nix::fcntl::OFlag::O_PATH
                    | nix::fcntl::OFlag::O_DIRECTORY
                    | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|e| Failure(format!("open the root of container init {pid}: {e}")))?,
        ),
        None => None,
    };
    // linux.seccomp: built and its agent's socket connected here, while the host's root is still
    // ours (listenerPath is a host path); stage 2 loads it (finish_process).
    let seccomp = PendingSeccomp::from_spec(&cfg.spec)?;
    // Id-mapped mounts: their trees are made now, while this process still holds CAP_SYS_ADMIN
    // in the host's user namespace (mount_setattr needs it), and in a user namespace every bind
    // source is cloned now, while its path is in reach; stage 2 attaches them.
    if matches!(cfg.mode, Mode::Init) {
        rootfs::prepare_bind_trees(
            &cfg.spec,
            &cfg.rootfs,
            &cfg.bundle,
            cfg.namespaces.get(Kind::User).is_some(),
        )?;
    }
    let ns = &cfg.namespaces;
    // runc's order (nsexec.c join_namespaces): every path opened first; the namespaces joined by
    // path before the user namespace is entered or made, those refused (EPERM) again after.
    let mut pending = ns.open_paths()?;
    namespaces::join_pending(&mut pending, |k| k != Kind::User)?;
    if let Some(user) = ns.get(Kind::User) {
        match &user.path {
            Some(_) => {
                namespaces::join_pending(&mut pending, |k| k == Kind::User)?;
                namespaces::check_joined(&pending, |k| k == Kind::User)?;
            }
            None => {
                namespaces::unshare(Kind::User.flag())?;
                chan.send(&ToParent::UserNsCreated)?;
                match expect(chan, "id maps")? {
                    ToChild::IdMapsWritten => {}
                    other => return Err(Failure(format!("expected id maps, got {other:?}"))),
                }
            }
        }
        // Become root of the user namespace so the rest of setup has its capabilities.
        nix::unistd::setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
            .map_err(|e| Failure(format!("setresgid(0) in the user namespace: {e}")))?;
        nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
            .map_err(|e| Failure(format!("setresuid(0) in the user namespace: {e}")))?;
    }
    namespaces::join_pending(&mut pending, |_| true)?;
    namespaces::check_joined(&pending, |_| true)?;
    namespaces::unshare(ns.new_flags_except_user())?;
    // linux.timeOffsets: only possible before any process enters the new time namespace, and
    // stage 2 (forked below) is the first.
    if let Some(offsets) = cfg
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
    {
        setup::write_time_offsets(offsets)?;
    }

    // Stage 1 and stage 2 write to the same socket: stage 2 waits on this pipe until stage 1
    // has sent its pid, so the parent never sees stage 2's messages (RunHooks, Ready) first.
    let (gate_r, gate_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Failure(format!("pipe: {e}")))?;
    // SAFETY: this process is single-threaded (a fresh exec that started no thread), so the
    // child may run arbitrary code after fork.
    match unsafe { nix::unistd::fork() }.map_err(|e| Failure(format!("fork: {e}")))? {
        ForkResult::Parent { child } => {
            drop(gate_r);
            chan.send(&ToParent::Stage2Pid(child.as_raw()))?;
            // The gate carries stage 2's pid as the host sees it (the seccomp agent needs it).
            nix::unistd::write(&gate_w, &child.as_raw().to_ne_bytes())
                .map_err(|e| Failure(format!("release stage 2: {e}")))?;
            Ok(0)
        }
        ForkResult::Child => {
            drop(gate_w);
            let mut go = [0u8; 4];
            loop {
                // 4 bytes written at once into a pipe arrive at once (atomic below PIPE_BUF).
                match nix::unistd::read(&gate_r, &mut go) {
                    Ok(4) => break,
                    Err(nix::errno::Errno::EINTR) => continue,
                    // Stage 1 died before reporting us: nobody knows our pid, so give up.
                    _ => return Ok(1),
                }
            }
            drop(gate_r);
            let host_pid = i32::from_ne_bytes(go);
            let err = match cfg.mode {
                Mode::Init => stage2_init(chan, cfg, seccomp, host_pid),
                Mode::Setns => stage2_setns(chan, cfg, init_root, seccomp, host_pid),
            };
            let Err(e) = err;
            Ok(fail(chan, e))
        }
    }
}

fn stage2_init(
    chan: &mut Channel,
    cfg: &ChildConfig,
    seccomp: Option<PendingSeccomp>,
    host_pid: i32,
) -> Result<std::convert::Infallible> {
    let ns = &cfg.namespaces;
    // Keep other container processes from ptrace or /proc access to us until exec (CVE-2019-5736).
    set_dumpable(false)?;
    if cfg.console_fd.is_none() {
        nix::unistd::setsid().map_err(|e| Failure(format!("setsid: {e}")))?;
    }
    let in_user_ns = ns.get(Kind::User).is_some();
    let rcfg = RootfsConfig {
        spec: &cfg.spec,
        rootfs: &cfg.rootfs,
        bundle: &cfg.bundle,
        no_pivot: cfg.no_pivot,
        in_user_ns,
    };
    rootfs::prepare_rootfs(&rcfg)?;

    chan.send(&ToParent::RunHooks)?;
    let state = match expect(chan, "hooks")? {
        ToChild::HooksDone(state) => state,
        other => return Err(Failure(format!("expected hooks done, got {other:?}"))),
    };
    let spec_hooks = cfg.spec.hooks().as_ref();
    hooks::run_hooks(
        HookKind::CreateContainer,
        spec_hooks.and_then(|h| h.create_container().as_ref()),
        &state,
    )?;

    rootfs::enter_rootfs(&rcfg)?;
    if let Some(fd) = cfg.console_fd {
        // SAFETY: the parent passed this fd for us to own.
        tty::setup_console(unsafe { OwnedFd::from_raw_fd(fd) })?;
    }
    if let Some(hostname) = cfg.spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        setup::set_hostname(hostname)?;
    }
    if let Some(domain) = cfg.spec.domainname().as_deref().filter(|h| !h.is_empty()) {
        setup::set_domainname(domain)?;
    }
    // linux.sysctl: in the container's /proc, before finalize_rootfs makes /proc/sys read-only
    // (runc's standard_init order).
    if let Some(sysctl) = cfg.spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
        setup::write_sysctls(sysctl)?;
    }
    rootfs::finalize_rootfs(&rcfg)?;
    // linux.personality: the init's execution domain, inherited by what it execs.
    if let Some(persona) = cfg
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.personality().as_ref())
    {
        setup::set_personality(persona)?;
    }

    let exe = finish_process(cfg, seccomp, host_pid, &state)?;
    chan.send(&ToParent::Ready)?;
    let fifo = wait_for_start(cfg)?;
    // From here on the caller of `create` is gone; `start` reads the fifo until EOF, so an
    // error written there reaches it, and a successful execve closes the (close-on-exec) fifo.
    let mut state = *state;
    state.status = HookKind::StartContainer.status().into();
    let err = match hooks::run_hooks(
        HookKind::StartContainer,
        spec_hooks.and_then(|h| h.start_container().as_ref()),
        &state,
    ) {
        Ok(()) => exec(&exe, cfg),
        Err(e) => e.to_string(),
    };
    let _ = nix::unistd::write(&fifo, err.as_bytes());
    Err(Failure(err))
}

fn stage2_setns(
    chan: &mut Channel,
    cfg: &ChildConfig,
    init_root: Option<OwnedFd>,
    seccomp: Option<PendingSeccomp>,
    host_pid: i32,
) -> Result<std::convert::Infallible> {
    set_dumpable(false)?;
    // process.execCPUAffinity.initial: the CPUs the rest of this setup runs on.
    if let Some(list) = cfg
        .process
        .exec_cpu_affinity()
        .as_ref()
        .and_then(|a| a.initial().as_deref())
    {
        setup::set_cpu_affinity("process.execCPUAffinity.initial", list)?;
    }
    if let Some(root) = init_root {
        nix::unistd::fchdir(&root).map_err(|e| Failure(format!("enter container root: {e}")))?;
        nix::unistd::chroot(".")
            .map_err(|e| Failure(format!("chroot into container root: {e}")))?;
        nix::unistd::chdir("/").map_err(|e| Failure(format!("chdir /: {e}")))?;
    }
    if let Some(fd) = cfg.console_fd {
        // SAFETY: the parent passed this fd for us to own.
        tty::setup_exec_console(unsafe { OwnedFd::from_raw_fd(fd) })?;
    } else {
        nix::unistd::setsid().map_err(|e| Failure(format!("setsid: {e}")))?;
    }
    // The container's state as the seccomp agent sees it for an exec'd process.
    let state = hooks::OciState::new(&cfg.id, "running", cfg.init_pid, &cfg.bundle);
    let exe = finish_process(cfg, seccomp, host_pid, &state)?;
    // No message on success: the socket is close-on-exec, so the parent reads EOF once execve
    // has replaced us, and an error message otherwise.
    let _ = chan;
    Err(Failure(exec(&exe, cfg)))
}

/// The process-level settings common to init and exec, in runc's order (finalizeNamespace):
/// close-on-exec for every extra fd, rlimits, no_new_privs, cwd (tried as root first), bounding
/// set, user, capabilities, umask; seccomp as runc places it (see below).
fn finish_process(
    cfg: &ChildConfig,
    mut seccomp: Option<PendingSeccomp>,
    host_pid: i32,
    state: &hooks::OciState,
) -> Result<CString> {
    let p = &cfg.process;
    // process.scheduler and process.ioPriority: while CAP_SYS_NICE is still held (runc's
    // setupScheduler/setupIOPriority, in both init and setns).
    if let Some(sched) = p.scheduler() {
        setup::set_scheduler(sched)?;
    }
    if let Some(io) = p.io_priority() {
        setup::set_io_priority(io)?;
    }
    // linux.memoryPolicy: in init and exec'd processes alike, before any seccomp filter
    // (runc's setupMemoryPolicy sits with the scheduler settings).
    if let Some(policy) = cfg
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.memory_policy().as_ref())
    {
        setup::set_memory_policy(policy)?;
    }
    setup::cloexec_from(3 + cfg.preserve_fds as i32)?;
    if let Some(rlimits) = p.rlimits() {
        setup::apply_rlimits(rlimits)?;
    }
    // AppArmor profile and SELinux label for the execve (runc: before seccomp and the
    // capability drop), through the container's procfs.
    setup::lsm::apply(p)?;
    let no_new_privs = p.no_new_privileges().unwrap_or(false);
    if no_new_privs {
        setup::set_no_new_privileges()?;
    } else if let Some(s) = seccomp.take() {
        // seccomp without no_new_privs needs CAP_SYS_ADMIN: load it before capabilities are
        // dropped (runc's standard_init/setns_init order).
        s.apply(&cfg.spec, host_pid, state.clone())?;
    }
    let cwd = p.cwd().to_string_lossy();
    let cwd_done = setup::change_dir_early(&cwd)?;
    // No capabilities object means none at all, as in runc's finalizeNamespace.
    let caps = p
        .capabilities()
        .clone()
        .unwrap_or_else(setup::no_capabilities);
    setup::drop_bounding(&caps)?;
    setup::setup_user(p.user())?;
    if !cwd_done {
        setup::change_dir(&cwd)?;
    }
    setup::apply_capabilities(&caps)?;
    setup::set_umask(p.user().umask())?;
    let env: Vec<String> = p.env().clone().unwrap_or_default();
    let args: Vec<String> = p.args().clone().unwrap_or_default();
    let arg0 = args
        .first()
        .ok_or_else(|| Failure("process.args: must name the program to run".into()))?;
    let exe = setup::find_executable(arg0, &env)?;
    // process.execCPUAffinity.final, for exec'd processes only (the spec leaves out the init):
    // as late as possible, but before the no_new_privs seccomp filter (which may deny
    // sched_setaffinity).
    if let (Mode::Setns, Some(list)) = (
        &cfg.mode,
        p.exec_cpu_affinity()
            .as_ref()
            .and_then(|a| a.cpu_affinity_final().as_deref()),
    ) {
        setup::set_cpu_affinity("process.execCPUAffinity.final", list)?;
    }
    if let Some(s) = seccomp {
        // With no_new_privs: as late as possible (runc: right before the init signals its parent),
        // so the profile need not allow the runtime's own setup syscalls.
        s.apply(&cfg.spec, host_pid, state.clone())?;
    }
    Ok(exe)
}

fn exec(exe: &CString, cfg: &ChildConfig) -> String {
    let p = &cfg.process;
    let env: Vec<String> = p.env().clone().unwrap_or_default();
    let args: Vec<String> = p.args().clone().unwrap_or_default();
    setup::exec(exe, &args, &env).to_string()
}

/// Blocks until `start` opens the exec fifo for reading, then tells it we are going ahead.
/// Returns the fifo (close-on-exec) for reporting a failure of the last steps.
fn wait_for_start(cfg: &ChildConfig) -> Result<OwnedFd> {
    let dir = cfg
        .state_dir_fd
        .ok_or_else(|| Failure("no state directory for the exec fifo".into()))?;
    // SAFETY: the parent passed this O_PATH dir fd for us to own.
    let dir = unsafe { OwnedFd::from_raw_fd(dir) };
    // Opening for writing blocks until a reader (`start`) opens the fifo: that is the wait.
    let fifo = nix::fcntl::openat(
        &dir,
        "exec.fifo",
        nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Failure(format!("open exec fifo: {e}")))?;
    nix::unistd::write(&fifo, b"0").map_err(|e| Failure(format!("write exec fifo: {e}")))?;
    Ok(fifo)
}

fn set_dumpable(on: bool) -> Result<()> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, libc::c_ulong::from(on), 0, 0, 0) };
    if rc < 0 {
        return Err(Failure(format!(
            "prctl(PR_SET_DUMPABLE): {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}
