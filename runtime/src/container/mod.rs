//! A container: its state directory, its persisted state and the verbs of libcontainer's
//! `Container` (one file per verb: create, start, signal, pause, exec, destroy).

mod checkpoint;
mod create;
mod destroy;
mod exec;
pub mod host_mounts;
mod oom;
mod pause;
mod restore;
mod signal;
mod start;
mod stats;
pub mod status;
mod update;

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use crate::cgroups::{self, CgroupError, Manager};
use crate::hooks::{HookError, OciState};
use crate::namespaces::NamespaceError;
use crate::process::ProcessError;
use crate::utils::pid::{stat_of, PidError};
use crate::utils::{Pid, PidFd};
pub use checkpoint::{CgroupsMode, CheckpointOpts};
pub use create::CreateOpts;
pub use exec::ExecOpts;
pub use restore::RestoreOpts;
pub use status::{Op, Status};

pub(crate) const STATE_FILE: &str = "state.json";
pub(crate) const CONFIG_FILE: &str = "config.json";
pub(crate) const EXEC_FIFO: &str = "exec.fifo";

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("invalid container id {0}")]
    InvalidId(String),
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("container {id}: cannot {op} a {status} container{detail}")]
    InvalidState {
        id: String,
        op: Op,
        status: Status,
        /// Why a container that should be alive counts as stopped (empty otherwise).
        detail: String,
    },
    #[error("container {0} is still running: stop it first or delete with force")]
    StillRunning(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{0}")]
    Spec(String),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Hook(#[from] HookError),
    #[error(transparent)]
    Signal(#[from] PidError),
    #[error(transparent)]
    IntelRdt(#[from] crate::intelrdt::IntelRdtError),
    #[error(transparent)]
    Criu(#[from] crate::criu::CriuError),
    #[error(transparent)]
    HostMounts(#[from] host_mounts::HostMountError),
    #[error("container {id}: init process exited before start")]
    InitGone { id: String },
    #[error("container {id}: start failed: {reason}")]
    StartFailed { id: String, reason: String },
}

pub type Result<T> = std::result::Result<T, ContainerError>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ContainerError {
    let path = path.into();
    move |source| ContainerError::Io { path, source }
}

/// What `state.json` in the container's directory holds; enough for any process (CLI, shim,
/// restarted shim) to load the container again.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersistedState {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// The status as last written; [`Container::status`] refreshes it from the kernel.
    pub status: Status,
    pub init_pid: Option<Pid>,
    /// Start time of the init (clock ticks since boot): tells the init from a later process that
    /// reuses its pid.
    pub init_start_time: Option<u64>,
    /// RFC 3339, UTC.
    pub created: String,
    pub cgroup: cgroups::CgroupConfig,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    #[serde(default)]
    pub no_pivot: bool,
    /// The container's resctrl groups (linux.intelRdt), to remove on destroy.
    #[serde(default)]
    pub intel_rdt: Option<crate::intelrdt::RdtGroup>,
    /// Set when the container has no mount namespace of its own: its mounts are in the
    /// runtime's, and destroy unmounts them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_ns_mounts: Option<host_mounts::RuntimeNsMounts>,
}

/// A container loaded from (or just written to) its state directory.
#[derive(Debug)]
pub struct Container {
    dir: PathBuf,
    state: PersistedState,
    spec: Spec,
    cgroup: Box<dyn Manager>,
}

impl Container {
    pub(crate) fn load_from(dir: &Path) -> Result<Container> {
        let path = dir.join(STATE_FILE);
        let data = fs::read(&path).map_err(io_err(&path))?;
        let state: PersistedState =
            serde_json::from_slice(&data).map_err(|source| ContainerError::Json {
                path: path.clone(),
                source,
            })?;
        let cpath = dir.join(CONFIG_FILE);
        let data = fs::read(&cpath).map_err(io_err(&cpath))?;
        let spec: Spec = serde_json::from_slice(&data).map_err(|source| ContainerError::Json {
            path: cpath,
            source,
        })?;
        let cgroup = cgroups::load_manager(&state.cgroup)?;
        Ok(Container {
            dir: dir.to_path_buf(),
            state,
            spec,
            cgroup,
        })
    }

    pub fn id(&self) -> &str {
        &self.state.id
    }

    pub fn bundle(&self) -> &Path {
        &self.state.bundle
    }

    pub fn config(&self) -> &Spec {
        &self.spec
    }

    pub fn persisted(&self) -> &PersistedState {
        &self.state
    }

    pub fn state_dir(&self) -> &Path {
        &self.dir
    }

    pub fn cgroup(&self) -> &dyn Manager {
        self.cgroup.as_ref()
    }

    /// The init's pid while that very process is alive (not a zombie, not a reused pid).
    pub fn init_pid(&self) -> Option<Pid> {
        self.init_liveness().ok()
    }

    /// The live init, or why there is none (for error messages).
    fn init_liveness(&self) -> std::result::Result<Pid, String> {
        let pid = self
            .state
            .init_pid
            .ok_or_else(|| "no init was started".to_string())?;
        match stat_of(pid) {
            None => Err(format!("init pid {pid} has exited")),
            Some((_, true)) => Err(format!("init pid {pid} has exited (zombie)")),
            Some((start, false)) if Some(start) != self.state.init_start_time => Err(format!(
                "pid {pid} is now another process (start time {start}, the init's was {:?})",
                self.state.init_start_time
            )),
            Some(_) => Ok(pid),
        }
    }

    /// A race-free handle on the init, checked against its recorded start time.
    pub(crate) fn init_pidfd(&self) -> Option<PidFd> {
        let pid = self.init_pid()?;
        let fd = PidFd::open(pid).ok()?;
        // Check again after opening: the handle now pins the process we verified.
        self.init_pid().map(|_| fd)
    }

    /// The current status, read from the kernel (runc's `refreshState`).
    pub fn status(&self) -> Status {
        match self.state.status {
            Status::Creating | Status::Stopped if self.state.init_pid.is_none() => {
                return self.state.status
            }
            _ => {}
        }
        if self.init_pid().is_none() {
            return Status::Stopped;
        }
        if self.dir.join(EXEC_FIFO).exists() {
            return Status::Created;
        }
        match self.cgroup.freezer_state() {
            Ok(cgroups::FreezerState::Frozen) => Status::Paused,
            _ => Status::Running,
        }
    }

    /// The OCI state (runc's `state` output adds rootfs, created and owner).
    pub fn oci_state(&self) -> OciState {
        let status = self.status();
        let pid = match status {
            Status::Stopped => None,
            _ => self.init_pid(),
        };
        OciState {
            oci_version: self.spec.version().clone(),
            id: self.state.id.clone(),
            status: status.to_string(),
            pid: pid.map(Pid::as_raw),
            bundle: self.state.bundle.clone(),
            annotations: self.state.annotations.clone(),
        }
    }

    /// runc's `state` JSON: the OCI state plus rootfs, created and owner.
    pub fn state_json(&self) -> serde_json::Value {
        let oci = self.oci_state();
        serde_json::json!({
            "ociVersion": oci.oci_version,
            "id": oci.id,
            "pid": oci.pid.unwrap_or(0),
            "status": oci.status,
            "bundle": oci.bundle,
            "rootfs": self.state.rootfs,
            "created": self.state.created,
            "owner": "",
            "annotations": oci.annotations,
        })
    }

    /// Pids of every process in the container's cgroup.
    pub fn processes(&self) -> Result<Vec<Pid>> {
        Ok(self.cgroup.pids()?)
    }

    pub(crate) fn check(&self, op: Op) -> Result<Status> {
        let status = self.status();
        if status.allows(op) {
            Ok(status)
        } else {
            let detail = match (status, self.init_liveness()) {
                (Status::Stopped, Err(why)) => format!(" ({why})"),
                _ => String::new(),
            };
            Err(ContainerError::InvalidState {
                id: self.state.id.clone(),
                op,
                status,
                detail,
            })
        }
    }

    pub(crate) fn set_status(&mut self, status: Status) -> Result<()> {
        self.state.status = status;
        self.save()
    }

    /// Writes state.json atomically: a temp file in the same directory, fsync'd, renamed over.
    pub(crate) fn save(&self) -> Result<()> {
        write_atomic(
            &self.dir.join(STATE_FILE),
            &serde_json::to_vec(&self.state).map_err(|source| ContainerError::Json {
                path: self.dir.join(STATE_FILE),
                source,
            })?,
        )
    }
}

pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(data).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert!(!dir.path().join("state.tmp").exists());
    }
}
