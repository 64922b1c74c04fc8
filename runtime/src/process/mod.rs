//! Starting processes in a container: the init of a new container (`initProcess`) and a process
//! joining a running one (`setnsProcess`), with one code path for both.
//!
//! The caller may be the multi-threaded shim. After `fork` in a threaded process only
//! async-signal-safe calls are allowed until `execve`, so the caller never sets anything up in a
//! forked child: it spawns a fresh copy of this binary (from a sealed memfd, see [`exe`]) that
//! starts in [`init_main_if_requested`] before any thread exists, reads its job over a socket
//! ([`channel`]) and does the work single-threaded ([`child`]). runtime/README.md has the
//! measurements behind this choice.

pub mod channel;
mod child;
pub mod exe;

use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio as StdStdio};

use oci_spec::runtime::{Process, Spec};
use serde::{Deserialize, Serialize};

use crate::namespaces::Namespaces;
use crate::utils::{Pid, PidFd};
use channel::Channel;

/// The variable that switches a re-exec of this binary into init mode; its value is the fd of
/// the sync socket.
const INIT_ENV: &str = "_MYRT_INIT_SOCK";

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("create sync socketpair: {0}")]
    Socketpair(std::io::Error),
    #[error("sync with container process: {0}")]
    Channel(std::io::Error),
    #[error("sync with container process: timed out waiting for it")]
    Timeout,
    #[error("sync message of {0} bytes is too large")]
    MessageTooLarge(usize),
    #[error("encode sync message: {0}")]
    Encode(serde_json::Error),
    #[error("decode sync message: {0}")]
    Decode(serde_json::Error),
    #[error("copy own binary into a sealed memfd: {0}")]
    SelfExe(std::io::Error),
    #[error("start container process: {0}")]
    Spawn(std::io::Error),
    #[error("container process exited during setup without a message")]
    ExitedEarly,
    #[error("unexpected sync message from container process: {0}")]
    Protocol(String),
    /// The child's own report of what failed.
    #[error("{0}")]
    Child(String),
}

/// Whether the child becomes a new container's init or joins a running container.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Mode {
    Init,
    Setns,
}

/// Everything the child needs, sent once over the sync socket.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChildConfig {
    pub mode: Mode,
    pub id: String,
    /// The container's spec (namespaces, rootfs, mounts, hooks, sysctls…).
    pub spec: Spec,
    /// The process to run: `spec.process` for the init, the exec'd process for setns.
    pub process: Process,
    pub rootfs: PathBuf,
    pub bundle: PathBuf,
    pub namespaces: Namespaces,
    pub no_pivot: bool,
    pub preserve_fds: u32,
    /// fd number (in the child) of the connected console socket, when a terminal is wanted.
    pub console_fd: Option<RawFd>,
    /// fd number (in the child) of the state dir (O_PATH) that holds `exec.fifo` (init only).
    pub state_dir_fd: Option<RawFd>,
    /// setns only: the container's init, whose root the new process enters.
    pub init_pid: Option<i32>,
}

/// The three standard streams of the new process; `None` inherits the caller's.
#[derive(Debug, Default)]
pub struct Stdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// The caller's side of a child being set up.
#[derive(Debug)]
pub struct ParentProcess {
    pub chan: Channel,
    child: Child,
    stage1: Pid,
    /// Handle on stage 1, taken at once (it waits for Bootstrap, so it is still there): the
    /// shim's reaper may collect stage 1 behind std's back, and a kill by pid could then hit a
    /// process that reused the number.
    stage1_fd: Option<PidFd>,
}

impl ParentProcess {
    /// Spawns stage 1 (a fresh copy of this binary). `pass` are fds the child needs at known
    /// numbers (console socket, state dir): their close-on-exec flag is cleared in the child only,
    /// so a concurrent spawn in another thread never inherits them.
    pub fn spawn(stdio: Stdio, pass: &[RawFd]) -> Result<ParentProcess, ProcessError> {
        let exe = exe::SealedExe::get()?;
        let (parent, child_end) = Channel::pair()?;
        let mut cmd = Command::new(exe.exec_path());
        cmd.arg0("myrt-init")
            .env_clear()
            .env(INIT_ENV, child_end.raw_fd().to_string());
        // The init must resolve rootfs paths the way this process does (the forced walk).
        if let Some((key, value)) = crate::rootfs::safe_path::resolver_env() {
            cmd.env(key, value);
        }
        cmd.stdin(stdio.stdin.map_or_else(StdStdio::inherit, StdStdio::from));
        cmd.stdout(stdio.stdout.map_or_else(StdStdio::inherit, StdStdio::from));
        cmd.stderr(stdio.stderr.map_or_else(StdStdio::inherit, StdStdio::from));
        let mut keep: Vec<RawFd> = pass.to_vec();
        keep.push(child_end.raw_fd());
        // SAFETY: the closure runs between fork and exec and only calls fcntl, which is
        // async-signal-safe; it allocates nothing (the Vec was built before fork).
        unsafe {
            cmd.pre_exec(move || {
                for fd in &keep {
                    if libc::fcntl(*fd, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(ProcessError::Spawn)?;
        drop(child_end);
        let stage1 = Pid::new(child.id() as i32)
            .ok_or_else(|| ProcessError::Protocol("spawned child has no pid".into()))?;
        Ok(ParentProcess {
            chan: parent,
            child,
            stage1,
            stage1_fd: PidFd::open(stage1).ok(),
        })
    }

    pub fn stage1_pid(&self) -> Pid {
        self.stage1
    }

    /// Collects stage 1 once it has forked stage 2. The shim's reaper may have collected it
    /// already; that is fine.
    pub fn reap_stage1(&mut self) {
        let _ = self.child.wait();
    }

    /// Kills stage 1 on a failed setup (it waits on the socket otherwise).
    pub fn kill_stage1(&mut self) {
        if let Some(fd) = &self.stage1_fd {
            let _ = fd.signal(nix::sys::signal::Signal::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// Runs hooks that belong in the runtime's namespaces (createRuntime, prestart, poststart,
/// poststop) in a fresh copy of this binary instead of in the caller. The shim reaps every child
/// exit with `waitpid(-1)`; a hook forked by the shim itself could lose its exit status to that
/// reaper. Forked by the helper, hooks are the helper's children and the shim only sees the
/// helper go, while the result travels over the socket.
pub fn run_hooks_in_helper(
    kind: crate::hooks::HookKind,
    hooks: Option<&Vec<oci_spec::runtime::Hook>>,
    state: &crate::hooks::OciState,
) -> Result<(), ProcessError> {
    let Some(hooks) = hooks.filter(|h| !h.is_empty()) else {
        return Ok(());
    };
    let mut helper = ParentProcess::spawn(Stdio::default(), &[])?;
    helper.chan.send(&channel::ToChild::Hooks {
        kind,
        hooks: hooks.clone(),
        state: Box::new(state.clone()),
    })?;
    let res = match helper.chan.recv::<channel::ToParent>()? {
        Some(channel::ToParent::Ready) => Ok(()),
        Some(channel::ToParent::Error(text)) => Err(ProcessError::Child(text)),
        Some(other) => Err(ProcessError::Protocol(format!(
            "{other:?} from hook runner"
        ))),
        None => Err(ProcessError::ExitedEarly),
    };
    helper.reap_stage1();
    res
}

/// Entry point of the re-exec'd child. Call first thing in `main` of every binary that links the
/// engine (before any thread is started); returns at once in a normal run.
pub fn init_main_if_requested() {
    let Some(fd) = std::env::var_os(INIT_ENV) else {
        return;
    };
    let fd: Option<RawFd> = fd.to_str().and_then(|s| s.parse().ok());
    let code = match fd {
        Some(fd) if fd > 2 => child::main(fd),
        _ => {
            eprintln!("myrt-init: {INIT_ENV} does not hold a file descriptor");
            1
        }
    };
    std::process::exit(code);
}
