//! A blocking Kubernetes CRI client (runtime.v1) for the tests: the calls kubelet makes, against
//! containerd's CRI plugin on a private containerd started by [`Containerd::start_cri`].
//!
//! Each [`Cri`] owns a current-thread tokio runtime and blocks on every call with a deadline, so
//! a hung shim fails one test instead of hanging the run. Calls return tonic's `Status` (the
//! CRI's own error) so tests can assert failures; set-up helpers panic with what to do.
//!
//! [`Containerd::start_cri`]: crate::Containerd::start_cri

use std::collections::HashMap;
use std::fs;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Code, Status};

use api::{
    ContainerConfig, ContainerFilter, ContainerMetadata, ContainerStats, ContainerStatsRequest,
    ContainerStatusRequest, ContainerStatusResponse, CreateContainerRequest, ExecSyncRequest,
    ExecSyncResponse, ImageSpec, ImageStatusRequest, KeyValue, LinuxContainerResources,
    LinuxPodSandboxConfig, LinuxSandboxSecurityContext, ListContainersRequest, NamespaceMode,
    NamespaceOption, PodSandboxConfig, PodSandboxMetadata, PodSandboxStats, PodSandboxStatsRequest,
    PodSandboxStatusRequest, PodSandboxStatusResponse, RemoveContainerRequest,
    RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest, StopContainerRequest,
    StopPodSandboxRequest, UpdateContainerResourcesRequest, VersionRequest, VersionResponse,
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
const POLL: Duration = Duration::from_millis(25);

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

/// A pod sandbox config as kubelet sends it, reduced to what the CRI plugin reads.
/// `network`: [`NamespaceMode::Pod`] for a netns of its own (CNI), [`NamespaceMode::Node`] for
/// the host's (here: containerd's) network. The pid namespace is the pod's.
pub fn pod_config(
    name: &str,
    uid: &str,
    log_dir: &Path,
    cgroup_parent: &str,
    network: NamespaceMode,
) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.to_string(),
            uid: uid.to_string(),
            namespace: "default".to_string(),
            attempt: 0,
        }),
        // kubelet sends no hostname for host-network pods: they keep the node's UTS namespace
        // (runc refuses a hostname without a private one).
        hostname: if network == NamespaceMode::Node {
            String::new()
        } else {
            name.to_string()
        },
        log_directory: log_dir.to_string_lossy().into_owned(),
        labels: HashMap::from([("myrt-test".to_string(), name.to_string())]),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.to_string(),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: network as i32,
                    pid: NamespaceMode::Pod as i32,
                    ipc: NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A container config: `image`, `command` (entrypoint replaced), log at `log_path` (relative
/// to the sandbox's log directory), and read-write binds `(host, container)`.
pub fn container_config(
    name: &str,
    image: &str,
    command: &[&str],
    log_path: &str,
    binds: &[(&Path, &str)],
) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.to_string(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: image.to_string(),
            ..Default::default()
        }),
        command: command.iter().map(|s| s.to_string()).collect(),
        envs: vec![KeyValue {
            key: "MYRT_TEST".to_string(),
            value: name.to_string(),
        }],
        mounts: binds
            .iter()
            .map(|(host, ctr)| api::Mount {
                container_path: ctr.to_string(),
                host_path: host.to_string_lossy().into_owned(),
                ..Default::default()
            })
            .collect(),
        log_path: log_path.to_string(),
        ..Default::default()
    }
}

/// One line of a CRI log file: `<RFC3339Nano time> <stdout|stderr> <P|F> <content>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub stream: String,
    /// `P`: a partial line (more follows), `F`: the line ends here.
    pub tag: String,
    pub content: String,
}

/// The lines of a CRI log file; panics on a line that is not in the CRI format.
#[track_caller]
pub fn read_log(path: &Path) -> Vec<LogLine> {
    let raw = fs::read_to_string(path).unwrap_or_default();
    raw.lines()
        .map(|line| {
            let mut parts = line.splitn(4, ' ');
            let (_time, stream, tag) = (parts.next(), parts.next(), parts.next());
            match (stream, tag) {
                (Some(stream @ ("stdout" | "stderr")), Some(tag @ ("P" | "F"))) => LogLine {
                    stream: stream.to_string(),
                    tag: tag.to_string(),
                    content: parts.next().unwrap_or("").to_string(),
                },
                _ => panic!("{}: not a CRI log line: {line:?}", path.display()),
            }
        })
        .collect()
}

/// Removes a pod's cgroup parent (e.g. `/myrt-cri-x/pod0`) and its ancestors in every v1
/// hierarchy and the unified one, deepest first; rmdir only removes empty ones.
pub fn remove_cgroup_parent(parent: &str) {
    let root = Path::new("/sys/fs/cgroup");
    let mut hierarchies: Vec<PathBuf> = vec![root.to_path_buf()];
    if let Ok(entries) = fs::read_dir(root) {
        hierarchies.extend(entries.flatten().map(|e| e.path()));
    }
    let mut chain: Vec<&str> = Vec::new();
    let mut current = parent.trim_matches('/');
    while !current.is_empty() {
        chain.push(current);
        current = current.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
    }
    for rel in chain {
        for h in &hierarchies {
            let _ = fs::remove_dir(h.join(rel));
        }
    }
}

// ---- scaffolding shared by the CRI suites (tests/tests/cri_*.rs) ----

/// How long the CRI suites wait for something to settle (an exit, a status, a shim to go).
pub const SETTLE: Duration = Duration::from_secs(20);

/// One test per handler (`myrt`, `runc`) running the same check, each isolated (private mount +
/// pid namespace) and selectable with `MYRT_CRI_HANDLERS` (see [`selected`]).
#[macro_export]
macro_rules! per_handler {
    ($check:ident, $myrt:ident, $runc:ident) => {
        #[test]
        fn $myrt() {
            if $crate::isolate() && $crate::cri::selected("myrt") {
                $check("myrt");
            }
        }

        #[test]
        fn $runc() {
            if $crate::isolate() && $crate::cri::selected("runc") {
                $check("runc");
            }
        }
    };
}

/// False (after a loud SKIP) when `MYRT_CRI_HANDLERS` (a comma list, default `myrt,runc`)
/// leaves `handler` out.
pub fn selected(handler: &str) -> bool {
    let list = std::env::var("MYRT_CRI_HANDLERS").unwrap_or_default();
    let on = list.trim().is_empty() || list.split(',').any(|h| h.trim() == handler);
    if !on {
        eprintln!("SKIP: handler {handler} is not in MYRT_CRI_HANDLERS={list}");
    }
    on
}

/// A pod's cgroup parent, removed when the test ends, passed or not.
pub struct CgroupParent(pub String);

impl Drop for CgroupParent {
    fn drop(&mut self) {
        remove_cgroup_parent(&self.0);
    }
}

/// The shared start of a CRI test: a cgroup parent, containerd with CRI (dirs `pod-logs/` and
/// `share/` made in its temp dir), a client that sees both images. Bind them in this order so
/// the parent is removed last, after Containerd's drop has killed whatever a failed test left.
#[track_caller]
pub fn setup() -> (CgroupParent, crate::Containerd, Cri) {
    let cd = crate::Containerd::start_cri();
    let cri = Cri::connect(&cd.address());
    cri.wait_images(&[crate::PAUSE_REF, crate::IMAGE_REF], SETTLE);
    let v = cri.version().unwrap_or_else(|e| panic!("Version: {e}"));
    assert_eq!(v.runtime_name, "containerd", "{v:?}");
    assert_eq!(v.runtime_api_version, "v1", "{v:?}");
    let name = cd
        .dir()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parent = CgroupParent(format!("/myrt-cri/{name}"));
    for sub in ["pod-logs", "share"] {
        fs::create_dir_all(cd.dir().join(sub))
            .unwrap_or_else(|e| panic!("create {}: {e}", cd.dir().join(sub).display()));
    }
    (parent, cd, cri)
}

/// `info["pid"]` of a verbose status (see [`info_json`]).
#[track_caller]
pub fn info_pid(info: &serde_json::Value) -> u64 {
    let pid = info["pid"].as_u64().unwrap_or(0);
    assert!(pid > 0, "verbose info without a pid: {info}");
    pid
}

/// A `Name:` field of /proc/PID/status (e.g. PPid, NSpid), `None` once the process is gone.
pub fn status_field(pid: u64, name: &str) -> Option<String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(|v| v.trim().to_string())
}

/// Whether PID runs (exists and is no zombie).
pub fn alive(pid: u64) -> bool {
    status_field(pid, "State").is_some_and(|s| !s.starts_with('Z') && !s.starts_with('X'))
}

/// Waits until PID is gone or a zombie; panics naming `what` after [`SETTLE`].
#[track_caller]
pub fn wait_gone(pid: u64, what: &str) {
    let deadline = Instant::now() + SETTLE;
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "{what} (pid {pid}) still runs {SETTLE:?} later"
        );
        thread::sleep(POLL);
    }
}

/// Panics listing the mounts left under `dir` (e.g. a containerd's temp dir).
#[track_caller]
pub fn assert_no_mounts_under(dir: &Path) {
    let prefix = format!("{}/", dir.display());
    let left: Vec<String> = crate::containerd::mount_points()
        .into_iter()
        .filter(|m| m.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "mounts left under {prefix}: {left:?}");
}

/// A kubelet-style volume: `host` at `container`, private propagation, read-only or not.
pub fn volume(host: &Path, container: &str, readonly: bool) -> api::Mount {
    api::Mount {
        container_path: container.to_string(),
        host_path: host.to_string_lossy().into_owned(),
        readonly,
        propagation: api::MountPropagation::PropagationPrivate as i32,
        ..Default::default()
    }
}

// ---- pods and containers for the CRI suites: running, waiting, inspecting, removing ----

/// How long an ExecSync of the suites may run.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(10);

/// The outcome of one ExecSync, streams as text.
#[derive(Debug)]
pub struct Exec {
    pub code: i32,
    pub out: String,
    pub err: String,
}

/// ExecSync `sh -c script` in container `id`; panics when the call itself fails.
#[track_caller]
pub fn sh(cri: &Cri, id: &str, script: &str) -> Exec {
    let r = cri
        .exec_sync(id, &["/bin/sh", "-c", script], EXEC_TIMEOUT)
        .unwrap_or_else(|e| panic!("ExecSync {script:?} in {id}: {e}"));
    Exec {
        code: r.exit_code,
        out: String::from_utf8_lossy(&r.stdout).into_owned(),
        err: String::from_utf8_lossy(&r.stderr).into_owned(),
    }
}

/// A running pod: its id, the config kubelet sends again, the pause pid and its shim's pid.
pub struct Pod {
    pub id: String,
    pub config: api::PodSandboxConfig,
    pub pause: u64,
    pub shim: u64,
}

/// RunPodSandbox; the pod must be READY, its pause a child of a shim.
#[track_caller]
pub fn run_pod(cri: &Cri, config: api::PodSandboxConfig, handler: &str) -> Pod {
    let id = cri
        .run_pod_sandbox(&config, handler)
        .unwrap_or_else(|e| panic!("RunPodSandbox with handler {handler}: {e}"));
    let st = cri
        .pod_sandbox_status(&id)
        .unwrap_or_else(|e| panic!("PodSandboxStatus: {e}"));
    assert_eq!(
        st.status.as_ref().map(|s| s.state),
        Some(api::PodSandboxState::SandboxReady as i32),
        "{st:?}"
    );
    let pause = info_pid(&info_json(&st.info));
    let shim = ppid(pause).unwrap_or_else(|| panic!("the pause (pid {pause}) has no parent"));
    Pod {
        id,
        config,
        pause,
        shim,
    }
}

/// The parent pid of PID, `None` once it is gone.
pub fn ppid(pid: u64) -> Option<u64> {
    status_field(pid, "PPid")?.parse().ok()
}

/// CreateContainer + StartContainer; the container's id and pid.
#[track_caller]
pub fn start_app(cri: &Cri, pod: &Pod, config: &api::ContainerConfig) -> (String, u64) {
    let id = cri
        .create_container(&pod.id, config, &pod.config)
        .unwrap_or_else(|e| panic!("CreateContainer: {e}"));
    cri.start_container(&id)
        .unwrap_or_else(|e| panic!("StartContainer: {e}"));
    let cs = cri
        .container_status(&id)
        .unwrap_or_else(|e| panic!("ContainerStatus: {e}"));
    (id, info_pid(&info_json(&cs.info)))
}

/// ContainerStatus of `id` (its status part); panics when the call fails.
#[track_caller]
pub fn container_status(cri: &Cri, id: &str) -> api::ContainerStatus {
    cri.container_status(id)
        .unwrap_or_else(|e| panic!("ContainerStatus {id}: {e}"))
        .status
        .unwrap_or_else(|| panic!("ContainerStatus {id} without status"))
}

/// Polls api::ContainerStatus until the container has exited; its first EXITED status.
#[track_caller]
pub fn wait_exited(cri: &Cri, id: &str) -> api::ContainerStatus {
    let deadline = Instant::now() + SETTLE;
    loop {
        let s = container_status(cri, id);
        if s.state == api::ContainerState::ContainerExited as i32 {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "container {id} has not exited {SETTLE:?} later: {s:?}"
        );
        thread::sleep(POLL);
    }
}

/// Live children of `pid` (no zombies).
pub fn children(pid: u64) -> std::collections::BTreeSet<u64> {
    let want = pid.to_string();
    fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
                .filter(|p| status_field(*p, "PPid").as_deref() == Some(want.as_str()))
                .filter(|p| alive(*p))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until the shim's children are exactly `want` (a failed container's processes gone).
#[track_caller]
pub fn wait_children(shim: u64, want: &[u64]) {
    let want: std::collections::BTreeSet<u64> = want.iter().copied().collect();
    let deadline = Instant::now() + SETTLE;
    loop {
        let seen = children(shim);
        if seen == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the shim (pid {shim}) has children {seen:?} {SETTLE:?} later, want {want:?}"
        );
        thread::sleep(POLL);
    }
}

/// Stops and removes the containers and the pod; no shim and no mount of this containerd left.
#[track_caller]
pub fn teardown(cd: &crate::Containerd, cri: &Cri, pod: &Pod, containers: &[&str]) {
    teardown_pod(cri, pod, containers);
    cd.wait_no_shims(SETTLE);
    assert_no_mounts_under(cd.dir());
}

/// StopContainer (no grace: SIGKILL at once) + RemoveContainer of `containers`, then
/// StopPodSandbox + RemovePodSandbox.
#[track_caller]
pub fn teardown_pod(cri: &Cri, pod: &Pod, containers: &[&str]) {
    for id in containers {
        cri.stop_container(id, Duration::ZERO)
            .unwrap_or_else(|e| panic!("StopContainer {id}: {e}"));
        cri.remove_container(id)
            .unwrap_or_else(|e| panic!("RemoveContainer {id}: {e}"));
    }
    cri.stop_pod_sandbox(&pod.id)
        .unwrap_or_else(|e| panic!("StopPodSandbox: {e}"));
    wait_gone(pod.pause, "the pause after StopPodSandbox");
    cri.remove_pod_sandbox(&pod.id)
        .unwrap_or_else(|e| panic!("RemovePodSandbox: {e}"));
}

/// The major version of the containerd behind `cri` (`runtime_version` "v2.1.9" or "1.6.20").
#[track_caller]
pub fn containerd_major(cri: &Cri) -> u32 {
    let v = cri
        .version()
        .unwrap_or_else(|e| panic!("Version: {e}"))
        .runtime_version;
    v.trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("containerd version {v:?} has no major number"))
}

/// A container config with a Linux section (resources, security context).
pub fn with_linux(
    mut c: api::ContainerConfig,
    resources: Option<api::LinuxContainerResources>,
    security: Option<api::LinuxContainerSecurityContext>,
) -> api::ContainerConfig {
    c.linux = Some(api::LinuxContainerConfig {
        resources,
        security_context: security,
    });
    c
}

/// One line of /proc/PID/mountinfo.
#[derive(Debug)]
pub struct MountEntry {
    pub point: String,
    /// Per-mount options (`rw`/`ro`, nosuid, ...).
    pub opts: Vec<String>,
    pub fstype: String,
}

pub fn mountinfo(pid: u64) -> Vec<MountEntry> {
    let raw = fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/mountinfo: {e}"));
    raw.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            Some(MountEntry {
                point: f.get(4)?.replace("\\040", " "),
                opts: f.get(5)?.split(',').map(str::to_string).collect(),
                fstype: f.get(sep + 1)?.to_string(),
            })
        })
        .collect()
}

/// The topmost mount at `point`; panics when there is none.
#[track_caller]
pub fn mount_at<'a>(mounts: &'a [MountEntry], point: &str) -> &'a MountEntry {
    mounts
        .iter()
        .rev()
        .find(|m| m.point == point)
        .unwrap_or_else(|| panic!("no mount at {point} in the container: {mounts:#?}"))
}
