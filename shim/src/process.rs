//! A process the shim reports on: a container's init or an exec. It keeps the pid, the stdio,
//! and the exit status (until Delete), and lets any number of Wait calls wait for the exit.

use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use containerd_shim::protos::api::Status;
use myrt_runtime::Pid;
use nix::sys::signal::Signal;
use tokio::sync::watch;

use crate::io::{ProcessIo, StdioPaths};
use crate::task::TaskError;

/// How a process ended: containerd's exit status (code, or 128 + signal) and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    pub status: u32,
    pub at: SystemTime,
}

/// What Wait waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Pending,
    Exited(Exit),
    /// Deleted without ever running: waiters get an error.
    Abandoned,
}

#[derive(Debug, Default)]
struct ProcState {
    pid: Option<Pid>,
    /// Set as soon as the reaper collected the pid: from then on the number may name
    /// another process, so nothing is signalled through it.
    reaped: bool,
}

pub struct Process {
    /// The container id for an init, the exec id for an exec.
    pub id: String,
    /// The exec'd process' spec (None for an init).
    pub spec: Option<oci_spec::runtime::Process>,
    pub stdio: StdioPaths,
    /// Held while a create/start call publishes its event and while the exit is reported, so
    /// TaskCreate/TaskStart/TaskExecStarted always go out before TaskExit.
    pub lifecycle: tokio::sync::Mutex<()>,
    state: Mutex<ProcState>,
    fate: watch::Sender<Fate>,
    io: Mutex<ProcessIo>,
}

impl Process {
    pub fn new(id: &str, spec: Option<oci_spec::runtime::Process>, stdio: StdioPaths) -> Process {
        Process {
            id: id.to_string(),
            spec,
            stdio,
            lifecycle: tokio::sync::Mutex::new(()),
            state: Mutex::new(ProcState::default()),
            fate: watch::channel(Fate::Pending).0,
            io: Mutex::new(ProcessIo::default()),
        }
    }

    pub fn is_init(&self) -> bool {
        self.spec.is_none()
    }

    fn state(&self) -> MutexGuard<'_, ProcState> {
        lock(&self.state)
    }

    /// The process' stdio (copies, terminal, logger).
    pub fn io(&self) -> MutexGuard<'_, ProcessIo> {
        lock(&self.io)
    }

    pub fn set_io(&self, io: ProcessIo) {
        *self.io() = io;
    }

    pub fn set_pid(&self, pid: Pid) {
        self.state().pid = Some(pid);
    }

    /// The pid as containerd sees it (0 before the process exists).
    pub fn pid(&self) -> u32 {
        self.state().pid.map_or(0, |p| p.as_raw() as u32)
    }

    pub fn mark_reaped(&self) {
        self.state().reaped = true;
    }

    pub fn exited(&self) -> Option<Exit> {
        match *self.fate.borrow() {
            Fate::Exited(e) => Some(e),
            _ => None,
        }
    }

    /// Records the exit (the first report wins) and wakes every Wait.
    pub fn set_exited(&self, status: u32) -> Exit {
        let mut exit = Exit {
            status,
            at: SystemTime::now(),
        };
        self.fate.send_if_modified(|f| match f {
            Fate::Exited(first) => {
                exit = *first;
                false
            }
            _ => {
                *f = Fate::Exited(exit);
                true
            }
        });
        exit
    }

    /// Waits for the exit; an error when the process was deleted before it ran.
    pub async fn wait(&self) -> Result<Exit, TaskError> {
        let mut rx = self.fate.subscribe();
        let fate = *rx
            .wait_for(|f| *f != Fate::Pending)
            .await
            .map_err(|_| TaskError::Internal(format!("process {}: exit lost", self.id)))?;
        match fate {
            Fate::Exited(e) => Ok(e),
            _ => Err(TaskError::NotFound(format!(
                "process {} was deleted before it ran",
                self.id
            ))),
        }
    }

    /// Wakes the waiters of a process that will never run with an error.
    pub fn abandon(&self) {
        self.fate.send_if_modified(|f| {
            let pending = *f == Fate::Pending;
            if pending {
                *f = Fate::Abandoned;
            }
            pending
        });
    }

    /// containerd's status of an exec; `container` is the container's own status, which a
    /// paused container passes on to its processes (as runc's shim does).
    pub fn exec_status(&self, container: Status) -> Status {
        if self.exited().is_some() {
            return Status::STOPPED;
        }
        if matches!(container, Status::PAUSED | Status::PAUSING) {
            return container;
        }
        if self.state().pid.is_some() {
            Status::RUNNING
        } else {
            Status::CREATED
        }
    }

    /// Signals this one process (an exec), never a pid that was reaped already.
    pub fn signal(&self, signal: Signal) -> Result<(), TaskError> {
        let st = self.state();
        if st.reaped || self.exited().is_some() {
            return Err(TaskError::NotFound(format!(
                "process {} already finished",
                self.id
            )));
        }
        let pid = st.pid.ok_or_else(|| {
            TaskError::FailedPrecondition(format!("process {} is not started yet", self.id))
        })?;
        pid.signal(signal)
            .map_err(|e| TaskError::Internal(format!("process {}: {e}", self.id)))
    }
}

/// Locks a std mutex, also after a panic elsewhere poisoned it: the shim keeps serving.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn exec() -> Process {
        Process::new(
            "e1",
            Some(oci_spec::runtime::Process::default()),
            StdioPaths::default(),
        )
    }

    #[tokio::test]
    async fn wait_returns_at_once_after_exit_and_keeps_the_status() {
        let p = Arc::new(exec());
        let waiter = {
            let p = p.clone();
            tokio::spawn(async move { p.wait().await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        let first = p.set_exited(137);
        // A second report does not change the recorded exit.
        assert_eq!(p.set_exited(1), first);
        assert_eq!(waiter.await.unwrap().unwrap().status, 137);
        // Wait after the exit returns at once with the same status.
        assert_eq!(p.wait().await.unwrap(), first);
    }

    #[test]
    fn exec_status_and_signal_rules() {
        let p = exec();
        assert_eq!(p.exec_status(Status::RUNNING), Status::CREATED);
        assert!(matches!(
            p.signal(Signal::SIGTERM),
            Err(TaskError::FailedPrecondition(_))
        ));
        p.set_pid(Pid::new(1_000_000_000).unwrap_or(Pid::this()));
        assert_eq!(p.exec_status(Status::RUNNING), Status::RUNNING);
        assert_eq!(p.exec_status(Status::PAUSED), Status::PAUSED);
        p.mark_reaped();
        // Reaped: the pid may be reused, so it is never signalled.
        assert!(matches!(
            p.signal(Signal::SIGKILL),
            Err(TaskError::NotFound(_))
        ));
        p.set_exited(0);
        assert_eq!(p.exec_status(Status::PAUSED), Status::STOPPED);
    }
}
