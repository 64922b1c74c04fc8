//! `exec`: a new process inside a running container (libcontainer's setnsProcess).

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use oci_spec::runtime::Process;

use super::{Container, ContainerError, Op, Result};
use crate::namespaces::Namespaces;
use crate::process::channel::{ToChild, ToParent};
use crate::process::{ChildConfig, Mode, ParentProcess, ProcessError, Stdio};
use crate::utils::{Pid, PidFd};

const EXEC_TIMEOUT: Duration = Duration::from_secs(60);

/// How the caller wants the exec'd process started.
#[derive(Debug, Default)]
pub struct ExecOpts {
    pub stdio: Stdio,
    /// A connected unix socket to send the pty master over, when process.terminal is true.
    pub console_socket: Option<OwnedFd>,
    pub preserve_fds: u32,
}

impl Container {
    /// Starts `process` in the container's namespaces and cgroup; returns once it has exec'd
    /// (or with the reason it could not). The pid is in the caller's pid namespace.
    pub fn exec(&self, process: &Process, opts: ExecOpts) -> Result<Pid> {
        self.check(Op::Exec)?;
        let init = self.init_pid().ok_or_else(|| ContainerError::InitGone {
            id: self.state.id.clone(),
        })?;
        match process.args().as_deref() {
            Some([first, ..]) if !first.is_empty() => {}
            _ => {
                return Err(ContainerError::Spec(
                    "process.args: must name the program to run".into(),
                ))
            }
        }
        let terminal = process.terminal().unwrap_or(false);
        if terminal != opts.console_socket.is_some() {
            return Err(ContainerError::Spec(if terminal {
                "process.terminal: true, but no console socket was given".into()
            } else {
                "a console socket was given, but process.terminal is false".into()
            }));
        }
        let namespaces = Namespaces::from_spec(&self.spec)?.of_process(init);
        let mut pass = Vec::new();
        if let Some(c) = &opts.console_socket {
            pass.push(c.as_raw_fd());
        }
        let cfg = ChildConfig {
            mode: Mode::Setns,
            id: self.state.id.clone(),
            spec: self.spec.clone(),
            process: process.clone(),
            rootfs: self.state.rootfs.clone(),
            bundle: self.state.bundle.clone(),
            namespaces,
            no_pivot: self.state.no_pivot,
            preserve_fds: opts.preserve_fds,
            console_fd: opts.console_socket.as_ref().map(|c| c.as_raw_fd()),
            state_dir_fd: None,
            init_pid: Some(init.as_raw()),
        };
        let mut parent = ParentProcess::spawn(opts.stdio, &pass)?;
        drop(opts.console_socket);
        let res = self.drive_exec(&mut parent, cfg);
        if res.is_err() {
            parent.kill_stage1();
        }
        res
    }

    fn drive_exec(&self, parent: &mut ParentProcess, cfg: ChildConfig) -> Result<Pid> {
        self.cgroup.add_task(parent.stage1_pid())?;
        // Intel RDT: into the container's resctrl group too; the exec'd process inherits it.
        if let Some(rdt) = &self.state.intel_rdt {
            rdt.add_task(parent.stage1_pid())?;
        }
        parent.chan.set_timeout(Some(EXEC_TIMEOUT))?;
        parent.chan.send(&ToChild::Bootstrap(Box::new(cfg)))?;
        let mut child: Option<(Pid, Option<PidFd>)> = None;
        loop {
            match parent.chan.recv::<ToParent>()? {
                Some(ToParent::Stage2Pid(raw)) => {
                    let pid = Pid::new(raw).ok_or_else(|| {
                        ProcessError::Protocol(format!("stage 1 reported pid {raw}"))
                    })?;
                    // The process may already have exec'd and exited: then there is no handle
                    // to take, and the caller's reaper has its status.
                    let fd = PidFd::open(pid).ok();
                    parent.reap_stage1();
                    child = Some((pid, fd));
                }
                Some(ToParent::Error(text)) => {
                    if let Some((_, Some(fd))) = &child {
                        let _ = fd.signal(nix::sys::signal::Signal::SIGKILL);
                    }
                    return Err(ProcessError::Child(text).into());
                }
                Some(other) => {
                    return Err(ProcessError::Protocol(format!("{other:?} during exec")).into())
                }
                // The socket is close-on-exec: EOF after the pid means execve succeeded.
                None => {
                    return child
                        .map(|(pid, _)| pid)
                        .ok_or_else(|| ProcessError::ExitedEarly.into())
                }
            }
        }
    }
}
