//! The Task service containerd calls over ttrpc. Every method is implemented here (none falls
//! back to the generated NOT_FOUND); unsupported ones answer UNIMPLEMENTED and say so. Each call
//! runs in a task of its own, so a panic answers INTERNAL and the shim keeps serving.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use containerd_shim::api::{
    CloseIORequest, ConnectRequest, ConnectResponse, CreateTaskRequest, CreateTaskResponse,
    DeleteRequest, DeleteResponse, Empty, ExecProcessRequest, KillRequest, PauseRequest,
    PidsRequest, PidsResponse, ResizePtyRequest, ResumeRequest, ShutdownRequest, StartRequest,
    StartResponse, StateRequest, StateResponse, StatsRequest, StatsResponse, UpdateTaskRequest,
    WaitRequest, WaitResponse,
};
use containerd_shim::protos::api::CheckpointTaskRequest;
use containerd_shim::protos::ttrpc::{self, r#async::TtrpcContext, Code};
use containerd_shim::{ExitSignal, Task, TtrpcResult};
use log::{debug, error, warn};
use myrt_runtime::ContainerError;

use crate::container::{self, Container, Env};
use crate::events::timestamp;
use crate::io::{StdioError, StdioPaths};
use crate::options::OptionsError;
use crate::process::lock;
use crate::rootfs::RootfsError;

/// What a Task call can fail with; each maps to the ttrpc code containerd expects.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Unimplemented(String),
    #[error("{0}")]
    Internal(String),
    #[error("mount rootfs: {0}")]
    Mount(String),
    #[error(transparent)]
    Engine(#[from] ContainerError),
    #[error(transparent)]
    Options(#[from] OptionsError),
    #[error(transparent)]
    Stdio(#[from] StdioError),
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
}

impl TaskError {
    pub fn code(&self) -> Code {
        match self {
            TaskError::NotFound(_) => Code::NOT_FOUND,
            TaskError::AlreadyExists(_) => Code::ALREADY_EXISTS,
            TaskError::InvalidArgument(_) | TaskError::Options(_) => Code::INVALID_ARGUMENT,
            TaskError::FailedPrecondition(_) => Code::FAILED_PRECONDITION,
            TaskError::Unimplemented(_) => Code::UNIMPLEMENTED,
            TaskError::Internal(_) => Code::INTERNAL,
            TaskError::Mount(_) | TaskError::Stdio(_) => Code::UNKNOWN,
            TaskError::Rootfs(RootfsError::Idmap { .. }) => Code::UNKNOWN,
            TaskError::Rootfs(_) => Code::INVALID_ARGUMENT,
            TaskError::Engine(e) => match e {
                ContainerError::NotFound(_) => Code::NOT_FOUND,
                ContainerError::InvalidId(_) | ContainerError::Spec(_) => Code::INVALID_ARGUMENT,
                ContainerError::InvalidState { .. }
                | ContainerError::StillRunning(_)
                | ContainerError::InitGone { .. } => Code::FAILED_PRECONDITION,
                _ => Code::UNKNOWN,
            },
        }
    }
}

impl From<TaskError> for ttrpc::Error {
    fn from(e: TaskError) -> ttrpc::Error {
        ttrpc::Error::RpcStatus(ttrpc::get_status(e.code(), e.to_string()))
    }
}

/// The state behind the service.
pub struct Shared {
    env: Env,
    containers: Mutex<HashMap<String, Arc<Container>>>,
    /// Creates run one at a time (as in runc's shim): an id is checked and taken atomically.
    create_lock: tokio::sync::Mutex<()>,
    exit: Arc<ExitSignal>,
}

#[derive(Clone)]
pub struct TaskService {
    shared: Arc<Shared>,
}

impl TaskService {
    pub fn new(env: Env, exit: Arc<ExitSignal>) -> TaskService {
        TaskService {
            shared: Arc::new(Shared {
                env,
                containers: Mutex::new(HashMap::new()),
                create_lock: tokio::sync::Mutex::new(()),
                exit,
            }),
        }
    }

    /// Runs one call in its own task: a panic becomes an INTERNAL error, not a dead shim.
    async fn call<T, F, Fut>(&self, method: &'static str, f: F) -> TtrpcResult<T>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Shared>) -> Fut,
        Fut: Future<Output = Result<T, TaskError>> + Send + 'static,
    {
        debug!("{method}");
        match tokio::spawn(f(self.shared.clone())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                // containerd kills every finished exec (ExecSync) and expects NOT_FOUND: routine.
                if e.code() == Code::NOT_FOUND {
                    debug!("{method}: {e}");
                } else {
                    warn!("{method}: {e}");
                }
                Err(e.into())
            }
            Err(join) => {
                error!("{method}: the call panicked: {join}");
                Err(TaskError::Internal(format!(
                    "{method} failed inside the shim ({join}); the shim keeps running"
                ))
                .into())
            }
        }
    }
}

impl Shared {
    fn get(&self, id: &str) -> Result<Arc<Container>, TaskError> {
        lock(&self.containers).get(id).cloned().ok_or_else(|| {
            TaskError::NotFound(format!("container {id:?} does not exist in this shim"))
        })
    }

    async fn create(&self, req: CreateTaskRequest) -> Result<CreateTaskResponse, TaskError> {
        let _one = self.create_lock.lock().await;
        if lock(&self.containers).contains_key(&req.id) {
            return Err(TaskError::AlreadyExists(format!(
                "container {} already exists",
                req.id
            )));
        }
        let c = Container::create(&req, &self.env).await?;
        let pid = c.init.pid();
        lock(&self.containers).insert(req.id.clone(), c);
        Ok(CreateTaskResponse {
            pid,
            ..Default::default()
        })
    }

    async fn delete(&self, req: DeleteRequest) -> Result<DeleteResponse, TaskError> {
        let c = self.get(&req.id)?;
        let (pid, exit) = if req.exec_id.is_empty() {
            let r = c.delete().await?;
            lock(&self.containers).remove(&req.id);
            r
        } else {
            c.delete_exec(&req.exec_id)?
        };
        Ok(DeleteResponse {
            pid,
            exit_status: exit.map_or(0, |e| e.status),
            exited_at: exit.map(|e| timestamp(e.at)).into(),
            ..Default::default()
        })
    }

    /// With grouping, Shutdown comes once per container: exit only when none is left.
    fn shutdown(&self) {
        if lock(&self.containers).is_empty() {
            self.exit.signal();
        }
    }

    async fn wait(&self, req: WaitRequest) -> Result<WaitResponse, TaskError> {
        let p = self.get(&req.id)?.process(&req.exec_id)?;
        let exit = p.wait().await?;
        Ok(WaitResponse {
            exit_status: exit.status,
            exited_at: Some(timestamp(exit.at)).into(),
            ..Default::default()
        })
    }
}

#[async_trait]
impl Task for TaskService {
    async fn state(&self, _: &TtrpcContext, req: StateRequest) -> TtrpcResult<StateResponse> {
        self.call("State", |s| async move {
            s.get(&req.id)?.state(&req.exec_id).await
        })
        .await
    }

    async fn create(
        &self,
        _: &TtrpcContext,
        req: CreateTaskRequest,
    ) -> TtrpcResult<CreateTaskResponse> {
        self.call("Create", |s| async move { s.create(req).await })
            .await
    }

    async fn start(&self, _: &TtrpcContext, req: StartRequest) -> TtrpcResult<StartResponse> {
        self.call("Start", |s| async move {
            let pid = s.get(&req.id)?.start(&req.exec_id).await?;
            Ok(StartResponse {
                pid,
                ..Default::default()
            })
        })
        .await
    }

    async fn delete(&self, _: &TtrpcContext, req: DeleteRequest) -> TtrpcResult<DeleteResponse> {
        self.call("Delete", |s| async move { s.delete(req).await })
            .await
    }

    async fn pids(&self, _: &TtrpcContext, req: PidsRequest) -> TtrpcResult<PidsResponse> {
        self.call("Pids", |s| async move {
            let processes = s.get(&req.id)?.pids().await?;
            Ok(PidsResponse {
                processes,
                ..Default::default()
            })
        })
        .await
    }

    async fn pause(&self, _: &TtrpcContext, req: PauseRequest) -> TtrpcResult<Empty> {
        self.call("Pause", |s| async move {
            s.get(&req.id)?.pause().await?;
            Ok(Empty::new())
        })
        .await
    }

    async fn resume(&self, _: &TtrpcContext, req: ResumeRequest) -> TtrpcResult<Empty> {
        self.call("Resume", |s| async move {
            s.get(&req.id)?.resume().await?;
            Ok(Empty::new())
        })
        .await
    }

    async fn checkpoint(&self, _: &TtrpcContext, req: CheckpointTaskRequest) -> TtrpcResult<Empty> {
        self.call("Checkpoint", |s| async move {
            s.get(&req.id)?
                .checkpoint(&req.path, req.options.as_ref())
                .await?;
            Ok(Empty::new())
        })
        .await
    }

    async fn kill(&self, _: &TtrpcContext, req: KillRequest) -> TtrpcResult<Empty> {
        self.call("Kill", |s| async move {
            s.get(&req.id)?
                .kill(&req.exec_id, req.signal, req.all)
                .await?;
            Ok(Empty::new())
        })
        .await
    }

    async fn exec(&self, _: &TtrpcContext, req: ExecProcessRequest) -> TtrpcResult<Empty> {
        self.call("Exec", |s| async move {
            let stdio = StdioPaths {
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                terminal: req.terminal,
            };
            s.get(&req.id)?
                .add_exec(&req.exec_id, req.spec.as_ref(), stdio)?;
            Ok(Empty::new())
        })
        .await
    }

    async fn resize_pty(&self, _: &TtrpcContext, req: ResizePtyRequest) -> TtrpcResult<Empty> {
        self.call("ResizePty", |s| async move {
            s.get(&req.id)?
                .resize(&req.exec_id, req.width, req.height)?;
            Ok(Empty::new())
        })
        .await
    }

    async fn close_io(&self, _: &TtrpcContext, req: CloseIORequest) -> TtrpcResult<Empty> {
        self.call("CloseIO", |s| async move {
            let c = s.get(&req.id)?;
            if req.stdin {
                c.close_stdin(&req.exec_id)?;
            }
            Ok(Empty::new())
        })
        .await
    }

    async fn update(&self, _: &TtrpcContext, req: UpdateTaskRequest) -> TtrpcResult<Empty> {
        self.call("Update", |s| async move {
            let c = s.get(&req.id)?;
            if !req.annotations.is_empty() {
                // runc's shim passes only the resources on, too
                debug!(
                    "Update {}: annotations ignored: {:?}",
                    req.id, req.annotations
                );
            }
            c.update(req.resources.as_ref()).await?;
            Ok(Empty::new())
        })
        .await
    }

    async fn wait(&self, _: &TtrpcContext, req: WaitRequest) -> TtrpcResult<WaitResponse> {
        self.call("Wait", |s| async move { s.wait(req).await })
            .await
    }

    async fn stats(&self, _: &TtrpcContext, req: StatsRequest) -> TtrpcResult<StatsResponse> {
        self.call("Stats", |s| async move {
            let stats = s.get(&req.id)?.stats().await?;
            Ok(StatsResponse {
                stats: Some(stats).into(),
                ..Default::default()
            })
        })
        .await
    }

    async fn connect(&self, _: &TtrpcContext, req: ConnectRequest) -> TtrpcResult<ConnectResponse> {
        self.call("Connect", |s| async move {
            let c = lock(&s.containers).get(&req.id).cloned();
            Ok(ConnectResponse {
                shim_pid: std::process::id(),
                task_pid: container::task_pid(c.as_ref()),
                ..Default::default()
            })
        })
        .await
    }

    async fn shutdown(&self, _: &TtrpcContext, _req: ShutdownRequest) -> TtrpcResult<Empty> {
        self.call("Shutdown", |s| async move {
            s.shutdown();
            Ok(Empty::new())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Events;
    use crate::reaper::Reaper;

    fn service() -> TaskService {
        let (events, _rx) = Events::detached();
        let env = Env {
            namespace: "test".into(),
            events,
            reaper: Reaper::detached(),
        };
        TaskService::new(env, Arc::new(ExitSignal::default()))
    }

    #[tokio::test]
    async fn a_panicking_call_answers_internal_and_the_service_goes_on() {
        let svc = service();
        let r: TtrpcResult<()> = svc
            .call("Boom", |_| async { panic!("deliberate test panic") })
            .await;
        match r {
            Err(ttrpc::Error::RpcStatus(st)) => {
                assert_eq!(st.code(), Code::INTERNAL);
                assert!(
                    st.message().contains("Boom failed inside the shim"),
                    "{}",
                    st.message()
                );
            }
            other => panic!("{other:?}"),
        }
        // Unknown containers are NOT_FOUND with the id, and unsupported calls UNIMPLEMENTED.
        let ctx_less = svc
            .call("State", |s| async move { s.get("nope").map(|_| ()) })
            .await;
        match ctx_less {
            Err(ttrpc::Error::RpcStatus(st)) => {
                assert_eq!(st.code(), Code::NOT_FOUND);
                assert!(st.message().contains("\"nope\""));
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn shutdown_exits_only_without_containers() {
        let svc = service();
        let exit = svc.shared.exit.clone();
        svc.shared.shutdown();
        tokio::time::timeout(std::time::Duration::from_secs(1), exit.wait())
            .await
            .unwrap();
    }

    #[test]
    fn codes() {
        assert_eq!(TaskError::NotFound("x".into()).code(), Code::NOT_FOUND);
        let e = TaskError::Unimplemented("parent_checkpoint: not supported".into());
        assert_eq!(e.code(), Code::UNIMPLEMENTED);
        let e: TaskError = ContainerError::NotFound("c".into()).into();
        assert_eq!(e.code(), Code::NOT_FOUND);
        let e: TaskError = ContainerError::Spec("process.args: empty".into()).into();
        assert_eq!(e.code(), Code::INVALID_ARGUMENT);
        match ttrpc::Error::from(e) {
            ttrpc::Error::RpcStatus(st) => {
                assert_eq!(st.code(), Code::INVALID_ARGUMENT);
                assert_eq!(st.message(), "process.args: empty");
            }
            other => panic!("{other:?}"),
        }
    }
}
