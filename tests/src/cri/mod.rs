//! A blocking Kubernetes CRI client (runtime.v1) for the tests: the calls kubelet makes, against
//! containerd's CRI plugin on a private containerd started by [`Containerd::start_cri`].
//!
//! Each [`Cri`] owns a current-thread tokio runtime and blocks on every call with a deadline, so
//! a hung shim fails one test instead of hanging the run. Calls return tonic's `Status` (the
//! CRI's own error) so tests can assert failures; set-up helpers panic with what to do.
//!
//! The test scaffolding around it lives in the submodules, all re-exported here: [`config`]
//! (the messages kubelet sends), [`pod`] (one test per handler, pods and containers run and
//! torn down), [`process`] (/proc: pids, namespaces, mounts) and [`cgroup`] (v1 or unified).
//!
//! [`Containerd::start_cri`]: crate::Containerd::start_cri

pub mod cgroup;
pub mod config;
pub mod pod;
pub mod process;
pub mod stream;

pub use cgroup::{cgroup_value, is_unified, remove_cgroup_parent, CgroupParent};
pub use config::{
    container_config, doc_snippet, pod_config, pod_spec, read_log, volume, with_linux, LogLine,
};
pub use pod::{
    assert_keeper_serves, assert_pod_serves, assert_pod_state, container_status, run_pod, selected,
    setup, setup_with_config_env, sh, start_app, start_keeper, teardown, teardown_pod, wait_exited,
    write, Exec, Pod, EXEC_TIMEOUT, KEEPER,
};
pub use process::{
    alive, assert_no_mounts_of, assert_no_mounts_under, children, info_pid, mount_at, mountinfo,
    ns_link, pids, ppid, settle, status_field, wait_children, wait_gone, MountEntry,
};
pub use stream::{Session, StreamOpts, V4, V5};

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Code, Status};

use api::{
    ContainerConfig, ContainerFilter, ContainerStats, ContainerStatsRequest,
    ContainerStatusRequest, ContainerStatusResponse, CreateContainerRequest, ExecSyncRequest,
    ExecSyncResponse, ImageSpec, ImageStatusRequest, LinuxContainerResources,
    ListContainersRequest, PodSandboxConfig, PodSandboxStats, PodSandboxStatsRequest,
    PodSandboxStatusRequest, PodSandboxStatusResponse, RemoveContainerRequest,
    RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest, StatusRequest,
    StatusResponse, StopContainerRequest, StopPodSandboxRequest, UpdateContainerResourcesRequest,
    VersionRequest, VersionResponse,
};
pub use k8s_cri::v1 as api;

/// What a CRI call returns: the value, or containerd's `Status` (code and message).
pub type CriResult<T> = Result<T, Status>;

/// The containerd namespace of every CRI object (fixed in containerd 1.6).
pub const CRI_NAMESPACE: &str = "k8s.io";
/// The CRI API version kubelet sends with Version.
pub const API_VERSION: &str = "v1";
/// Longest one CRI call may take (ExecSync: its own timeout on top).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the suites look again while they wait.
const POLL: Duration = Duration::from_millis(25);
/// How long the CRI suites wait for something to settle (an exit, a status, a shim to go).
pub const SETTLE: Duration = Duration::from_secs(20);

/// A connection to one containerd's CRI services.
pub struct Cri {
    rt: tokio::runtime::Runtime,
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
}

impl Cri {
    /// Connects to the grpc socket of a containerd whose CRI plugin is enabled. Panics (the test
    /// fails) when the runtime cannot be built or the socket does not answer.
    #[track_caller]
    pub fn connect(socket: &Path) -> Cri {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot build a tokio runtime for the CRI client: {e}"));
        let path = socket.to_path_buf();
        let channel = rt
            .block_on(async move {
                // The URI is a placeholder: every connection goes to the unix socket.
                Endpoint::from_static("http://localhost")
                    .connect_timeout(Duration::from_secs(10))
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let path = path.clone();
                        async move {
                            Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?))
                        }
                    }))
                    .await
            })
            .unwrap_or_else(|e| panic!("cannot connect to the CRI at {}: {e}", socket.display()));
        Cri {
            rt,
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
        }
    }

    /// Runs one call to its end, or fails it with DEADLINE_EXCEEDED after `limit`.
    fn call<T>(
        &self,
        what: &str,
        limit: Duration,
        fut: impl Future<Output = CriResult<T>>,
    ) -> CriResult<T> {
        self.rt.block_on(async {
            match tokio::time::timeout(limit, fut).await {
                Ok(result) => result,
                Err(_) => Err(Status::deadline_exceeded(format!(
                    "the test's deadline: {what} did not answer within {limit:?}"
                ))),
            }
        })
    }

    pub fn version(&self) -> CriResult<VersionResponse> {
        let mut c = self.runtime.clone();
        let req = VersionRequest {
            version: API_VERSION.to_string(),
        };
        self.call("Version", CALL_TIMEOUT, async move {
            Ok(c.version(req).await?.into_inner())
        })
    }

    /// Status (not verbose): the runtime's conditions and, on containerd 2.x, each runtime
    /// handler's features (what kubelet reads before it runs a `hostUsers: false` pod).
    pub fn status(&self) -> CriResult<StatusResponse> {
        let mut c = self.runtime.clone();
        let req = StatusRequest { verbose: false };
        self.call("Status", CALL_TIMEOUT, async move {
            Ok(c.status(req).await?.into_inner())
        })
    }

    /// RunPodSandbox with runtime handler `handler` (a key of the CRI config's runtimes);
    /// returns the sandbox id.
    pub fn run_pod_sandbox(&self, config: &PodSandboxConfig, handler: &str) -> CriResult<String> {
        let mut c = self.runtime.clone();
        let req = RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: handler.to_string(),
        };
        self.call("RunPodSandbox", CALL_TIMEOUT, async move {
            Ok(c.run_pod_sandbox(req).await?.into_inner().pod_sandbox_id)
        })
    }

    /// PodSandboxStatus, verbose: `info["info"]` holds containerd's JSON (pid, runtimeHandler,
    /// runtimeType, runtimeSpec, cniResult); see [`info_json`].
    pub fn pod_sandbox_status(&self, id: &str) -> CriResult<PodSandboxStatusResponse> {
        let mut c = self.runtime.clone();
        let req = PodSandboxStatusRequest {
            pod_sandbox_id: id.to_string(),
            verbose: true,
        };
        self.call("PodSandboxStatus", CALL_TIMEOUT, async move {
            Ok(c.pod_sandbox_status(req).await?.into_inner())
        })
    }

    pub fn stop_pod_sandbox(&self, id: &str) -> CriResult<()> {
        let mut c = self.runtime.clone();
        let req = StopPodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        };
        self.call("StopPodSandbox", CALL_TIMEOUT, async move {
            c.stop_pod_sandbox(req).await.map(|_| ())
        })
    }

    pub fn remove_pod_sandbox(&self, id: &str) -> CriResult<()> {
        let mut c = self.runtime.clone();
        let req = RemovePodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        };
        self.call("RemovePodSandbox", CALL_TIMEOUT, async move {
            c.remove_pod_sandbox(req).await.map(|_| ())
        })
    }

    /// CreateContainer in sandbox `pod_id` (whose config kubelet sends again); returns the id.
    pub fn create_container(
        &self,
        pod_id: &str,
        config: &ContainerConfig,
        sandbox: &PodSandboxConfig,
    ) -> CriResult<String> {
        let mut c = self.runtime.clone();
        let req = CreateContainerRequest {
            pod_sandbox_id: pod_id.to_string(),
            config: Some(config.clone()),
            sandbox_config: Some(sandbox.clone()),
        };
        self.call("CreateContainer", CALL_TIMEOUT, async move {
            Ok(c.create_container(req).await?.into_inner().container_id)
        })
    }

    pub fn start_container(&self, id: &str) -> CriResult<()> {
        let mut c = self.runtime.clone();
        let req = StartContainerRequest {
            container_id: id.to_string(),
        };
        self.call("StartContainer", CALL_TIMEOUT, async move {
            c.start_container(req).await.map(|_| ())
        })
    }

    /// ContainerStatus, verbose: `info["info"]` holds containerd's JSON (pid, sandboxID,
    /// runtimeType, runtimeSpec).
    pub fn container_status(&self, id: &str) -> CriResult<ContainerStatusResponse> {
        let mut c = self.runtime.clone();
        let req = ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: true,
        };
        self.call("ContainerStatus", CALL_TIMEOUT, async move {
            Ok(c.container_status(req).await?.into_inner())
        })
    }

    /// ExecSync `cmd` in container `id`; containerd kills the process after `timeout` (whole
    /// seconds, at least 1; zero would mean none) and answers an error.
    pub fn exec_sync(
        &self,
        id: &str,
        cmd: &[&str],
        timeout: Duration,
    ) -> CriResult<ExecSyncResponse> {
        let mut c = self.runtime.clone();
        let secs = timeout.as_secs().max(1);
        let req = ExecSyncRequest {
            container_id: id.to_string(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: i64::try_from(secs).unwrap_or(i64::MAX),
        };
        let limit = CALL_TIMEOUT + Duration::from_secs(secs);
        self.call("ExecSync", limit, async move {
            Ok(c.exec_sync(req).await?.into_inner())
        })
    }

    /// StopContainer: the stop signal, then SIGKILL after `grace` (whole seconds).
    pub fn stop_container(&self, id: &str, grace: Duration) -> CriResult<()> {
        let mut c = self.runtime.clone();
        let req = StopContainerRequest {
            container_id: id.to_string(),
            timeout: i64::try_from(grace.as_secs()).unwrap_or(i64::MAX),
        };
        self.call("StopContainer", CALL_TIMEOUT + grace, async move {
            c.stop_container(req).await.map(|_| ())
        })
    }

    pub fn remove_container(&self, id: &str) -> CriResult<()> {
        let mut c = self.runtime.clone();
        let req = RemoveContainerRequest {
            container_id: id.to_string(),
        };
        self.call("RemoveContainer", CALL_TIMEOUT, async move {
            c.remove_container(req).await.map(|_| ())
        })
    }

    /// The containers of sandbox `pod_id`, or of every sandbox.
    pub fn list_containers(&self, pod_id: Option<&str>) -> CriResult<Vec<api::Container>> {
        let mut c = self.runtime.clone();
        let req = ListContainersRequest {
            filter: pod_id.map(|p| ContainerFilter {
                pod_sandbox_id: p.to_string(),
                ..Default::default()
            }),
        };
        self.call("ListContainers", CALL_TIMEOUT, async move {
            Ok(c.list_containers(req).await?.into_inner().containers)
        })
    }

    pub fn container_stats(&self, id: &str) -> CriResult<ContainerStats> {
        let mut c = self.runtime.clone();
        let req = ContainerStatsRequest {
            container_id: id.to_string(),
        };
        self.call("ContainerStats", CALL_TIMEOUT, async move {
            c.container_stats(req)
                .await?
                .into_inner()
                .stats
                .ok_or_else(|| Status::internal("ContainerStats answered without stats"))
        })
    }

    pub fn pod_sandbox_stats(&self, id: &str) -> CriResult<PodSandboxStats> {
        let mut c = self.runtime.clone();
        let req = PodSandboxStatsRequest {
            pod_sandbox_id: id.to_string(),
        };
        self.call("PodSandboxStats", CALL_TIMEOUT, async move {
            c.pod_sandbox_stats(req)
                .await?
                .into_inner()
                .stats
                .ok_or_else(|| Status::internal("PodSandboxStats answered without stats"))
        })
    }

    pub fn update_container_resources(
        &self,
        id: &str,
        linux: &LinuxContainerResources,
    ) -> CriResult<()> {
        let mut c = self.runtime.clone();
        let req = UpdateContainerResourcesRequest {
            container_id: id.to_string(),
            linux: Some(linux.clone()),
            ..Default::default()
        };
        self.call("UpdateContainerResources", CALL_TIMEOUT, async move {
            c.update_container_resources(req).await.map(|_| ())
        })
    }

    /// ImageStatus: the image's id when the CRI knows `reference`, `None` when it does not.
    pub fn image_id(&self, reference: &str) -> CriResult<Option<String>> {
        let mut c = self.images.clone();
        let req = ImageStatusRequest {
            image: Some(ImageSpec {
                image: reference.to_string(),
                ..Default::default()
            }),
            verbose: false,
        };
        self.call("ImageStatus", CALL_TIMEOUT, async move {
            Ok(c.image_status(req).await?.into_inner().image.map(|i| i.id))
        })
    }

    /// Waits until the CRI's image store lists every reference: it learns of `ctr images
    /// import` from containerd's events, a moment after the import returns, and a sandbox image
    /// it does not know yet would be pulled (there is no registry here). Panics after `timeout`.
    #[track_caller]
    pub fn wait_images(&self, references: &[&str], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for reference in references {
            loop {
                match self.image_id(reference) {
                    Ok(Some(_)) => break,
                    Ok(None) => {}
                    Err(e) => panic!("ImageStatus {reference}: {e}"),
                }
                assert!(
                    Instant::now() < deadline,
                    "the CRI does not list {reference} {timeout:?} after its import"
                );
                thread::sleep(POLL);
            }
        }
    }
}

/// True when a call failed with NOT_FOUND (e.g. the status of a removed sandbox).
pub fn is_not_found(status: &Status) -> bool {
    status.code() == Code::NotFound
}

/// `info["info"]` of a verbose status, parsed. Panics when it is missing or not JSON.
#[track_caller]
pub fn info_json(info: &HashMap<String, String>) -> serde_json::Value {
    let raw = info
        .get("info")
        .unwrap_or_else(|| panic!("verbose status without info[\"info\"]: {info:?}"));
    serde_json::from_str(raw).unwrap_or_else(|e| panic!("info[\"info\"] is not JSON ({e}): {raw}"))
}
