//! One container the shim serves: the engine's container, its init and its execs, the rootfs
//! the shim mounted for it, and the exit path of each of its processes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, UNIX_EPOCH};

use containerd_shim::api::{CreateTaskRequest, StateResponse};
use containerd_shim::protos::api::{ProcessInfo, Status};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use log::{info, warn};
use myrt_protos::runc::v1::{CheckpointOptions, ProcessDetails};
use myrt_protos::{type_url, Message};
use myrt_runtime::container::status::Status as EngineStatus;
use myrt_runtime::{
    CgroupsMode, CheckpointOpts, ContainerError, CreateOpts, ExecOpts, Factory, RestoreOpts,
};
use nix::sys::signal::Signal;
use oci_spec::runtime::LinuxNamespaceType;
use tokio::sync::oneshot;

use crate::events::{timestamp, Events};
use crate::io::{wait_outputs, IoContext, ProcessIo, StdioPaths};
use crate::oom::OomWatch;
use crate::options::ShimOptions;
use crate::process::{lock, Exit, Process};
use crate::reaper::{Reaper, UNKNOWN_STATUS};
use crate::rootfs::{mount_rootfs, unmount_rootfs};
use crate::task::TaskError;

/// How long the exit event waits for the process' output to be copied out.
const OUTPUT_WAIT: Duration = Duration::from_secs(2);
/// How long Delete of a never-started container waits for its killed init to be reported.
const KILLED_INIT_WAIT: Duration = Duration::from_secs(5);
/// Written in the bundle when the init exits, for the `delete` action.
pub const EXIT_FILE: &str = "init.exit";
/// CRIU's work dir (its logs) in the bundle: never the image dir, which containerd archives.
const CRIU_WORK_DIR: &str = "criu-work";
const EXEC_SPEC_TYPE: &str = "opencontainers/runtime-spec/1/Process";
const RESOURCES_TYPE: &str = "opencontainers/runtime-spec/1/LinuxResources";

type EngineContainer = myrt_runtime::Container;

/// What every container of this shim shares.
#[derive(Clone)]
pub struct Env {
    pub namespace: String,
    pub events: Events,
    pub reaper: Reaper,
}

pub struct Container {
    pub id: String,
    pub bundle: PathBuf,
    pub init: Arc<Process>,
    execs: Mutex<HashMap<String, Arc<Process>>>,
    engine: Arc<RwLock<EngineContainer>>,
    /// The shim mounted containerd's rootfs mounts on `<bundle>/rootfs`.
    rootfs_mounted: bool,
    /// No pid namespace of its own: the init's exit does not end the others (runc's
    /// ShouldKillAllOnExit).
    kill_all_on_exit: bool,
    io_ctx: IoContext,
    env: Env,
    /// Publishes TaskOOM; None when the cgroup cannot be watched (logged).
    oom: Option<OomWatch>,
    /// Restored from a checkpoint at Create and not yet reported started: Start only
    /// publishes TaskStart.
    restored: AtomicBool,
}

impl Container {
    /// Mounts the rootfs, sets up stdio and creates the container with the engine. On error
    /// nothing is left: no mount, no process, no state.
    pub async fn create(req: &CreateTaskRequest, env: &Env) -> Result<Arc<Container>, TaskError> {
        let id = req.id.as_str();
        myrt_runtime::factory::validate_id(id)?;
        if !req.parent_checkpoint.is_empty() {
            return Err(TaskError::Unimplemented(format!(
                "parent_checkpoint {:?}: restoring a chain of pre-dumps is not supported; \
                 restore from a full checkpoint",
                req.parent_checkpoint
            )));
        }
        let checkpoint = (!req.checkpoint.is_empty()).then(|| PathBuf::from(&req.checkpoint));
        let bundle = PathBuf::from(&req.bundle);
        if !bundle.is_absolute() {
            return Err(TaskError::InvalidArgument(format!(
                "bundle {:?}: must be an absolute path",
                req.bundle
            )));
        }
        let opts = ShimOptions::from_any(req.options.as_ref())?;
        opts.save(&bundle)?;
        let rootfs_mounted = mount_rootfs(&bundle, &req.rootfs).await?;
        let stdio = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let io_ctx = IoContext {
            container_id: id.to_string(),
            namespace: env.namespace.clone(),
            io_uid: opts.io_uid,
            io_gid: opts.io_gid,
            reaper: env.reaper.clone(),
        };
        // A checkpoint is restored here, at Create (runc's shim waits for Start): errors then
        // reach the caller of NewTask, and a failed restore leaves no half-made task.
        let image = checkpoint
            .as_ref()
            .map(|c| opts.criu_image_path.clone().unwrap_or_else(|| c.clone()));
        let created =
            start_engine(id, &bundle, &opts, &stdio, &io_ctx, &env.namespace, image).await;
        let (engine, pio) = match created {
            Ok(c) => c,
            Err(e) => {
                if rootfs_mounted {
                    unmount_rootfs(&bundle).await;
                }
                return Err(e);
            }
        };
        let kill_all_on_exit = !engine
            .config()
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|nss| {
                nss.iter()
                    .any(|ns| ns.typ() == LinuxNamespaceType::Pid && ns.path().is_none())
            });
        let init_pid = engine.persisted().init_pid;
        // before Start: no kill of the container's own process can be missed
        let oom = OomWatch::start(id, engine.cgroup().config(), &env.events).await;
        let init = Arc::new(Process::new(id, None, stdio));
        init.set_io(pio);
        let c = Arc::new(Container {
            id: id.to_string(),
            bundle,
            init: init.clone(),
            execs: Mutex::new(HashMap::new()),
            engine: Arc::new(RwLock::new(engine)),
            rootfs_mounted,
            kill_all_on_exit,
            io_ctx,
            env: env.clone(),
            oom,
            restored: AtomicBool::new(checkpoint.is_some()),
        });
        // TaskCreate goes out before any TaskExit of this init.
        let _order = init.lifecycle.lock().await;
        let pid = match init_pid {
            Some(pid) => {
                init.set_pid(pid);
                c.watch_exit(init.clone(), env.reaper.watch(pid));
                pid.as_raw() as u32
            }
            None => 0,
        };
        env.events
            .create(id, &req.bundle, req.rootfs.clone(), &init.stdio, pid);
        info!("container {id} created, init pid {pid}");
        Ok(c)
    }

    /// Starts the init (empty `exec_id`) or an exec; returns its pid.
    pub async fn start(self: &Arc<Self>, exec_id: &str) -> Result<u32, TaskError> {
        if exec_id.is_empty() {
            let _order = self.init.lifecycle.lock().await;
            if !self.restored.swap(false, Ordering::SeqCst) {
                self.engine_mut(|e| e.start()).await?;
            }
            let pid = self.init.pid();
            self.env.events.start(&self.id, pid);
            return Ok(pid);
        }
        let p = self.exec(exec_id)?;
        let _order = p.lifecycle.lock().await;
        if p.pid() != 0 || p.exited().is_some() {
            return Err(TaskError::FailedPrecondition(format!(
                "exec {exec_id} was started already"
            )));
        }
        let (stdio, mut pio) = ProcessIo::open(&p.stdio, &self.io_ctx).await?;
        let mut spec = p.spec.clone().unwrap_or_default();
        spec.set_terminal(Some(p.stdio.terminal));
        let opts = ExecOpts {
            stdio: stdio.stdio,
            console_socket: stdio.console_socket,
            preserve_fds: 0,
        };
        let pid = match self.engine(move |e| e.exec(&spec, opts)).await {
            Ok(pid) => pid,
            Err(e) => {
                pio.close();
                // Waiters (ExecSync waits before it starts) must not hang on a process that
                // never ran.
                p.abandon();
                return Err(e);
            }
        };
        p.set_pid(pid);
        self.watch_exit(p.clone(), self.env.reaper.watch(pid));
        if let Err(e) = pio.attach_console().await {
            let _ = pid.signal(Signal::SIGKILL);
            pio.close();
            return Err(e.into());
        }
        p.set_io(pio);
        let raw = pid.as_raw() as u32;
        self.env.events.exec_started(&self.id, exec_id, raw);
        Ok(raw)
    }

    /// Reports the exit of `p` once the reaper has it: after its output is copied, exactly
    /// once, and never before its start event.
    fn watch_exit(self: &Arc<Self>, p: Arc<Process>, exit: oneshot::Receiver<i32>) {
        let c = self.clone();
        tokio::spawn(async move {
            let status = exit.await.unwrap_or(UNKNOWN_STATUS);
            p.mark_reaped();
            if p.is_init() && c.kill_all_on_exit {
                // The container shares a pid namespace: its other processes outlive the init.
                let r = c.engine(|e| Ok(e.cgroup().kill_all()?)).await;
                if let Err(e) = r {
                    warn!("container {}: kill the init's leftovers: {e}", c.id);
                }
            }
            let _order = p.lifecycle.lock().await;
            let outputs = p.io().take_outputs();
            let left = wait_outputs(outputs, OUTPUT_WAIT).await;
            p.io().put_back_outputs(left);
            let exit = p.set_exited(status as u32);
            if p.is_init() {
                write_exit_file(&c.bundle, &exit);
            }
            // TaskOOM before TaskExit: CRI sets OOMKilled only from an OOM event it has seen
            if let Some(oom) = &c.oom {
                oom.flush();
            }
            info!(
                "container {}: process {} exited with {}",
                c.id, p.id, exit.status
            );
            c.env
                .events
                .exit(&c.id, &p.id, p.pid(), exit.status, exit.at);
        });
    }

    /// The init (empty id) or an exec.
    pub fn process(&self, exec_id: &str) -> Result<Arc<Process>, TaskError> {
        if exec_id.is_empty() {
            Ok(self.init.clone())
        } else {
            self.exec(exec_id)
        }
    }

    fn exec(&self, exec_id: &str) -> Result<Arc<Process>, TaskError> {
        lock(&self.execs).get(exec_id).cloned().ok_or_else(|| {
            TaskError::NotFound(format!(
                "exec {exec_id:?} of container {} does not exist",
                self.id
            ))
        })
    }

    /// Records an exec (started later by Start); `spec` is containerd's Any of the OCI process.
    pub fn add_exec(
        &self,
        exec_id: &str,
        spec: Option<&Any>,
        stdio: StdioPaths,
    ) -> Result<(), TaskError> {
        myrt_runtime::factory::validate_id(exec_id)
            .map_err(|e| TaskError::InvalidArgument(format!("exec id: {e}")))?;
        let spec = parse_exec_spec(spec)?;
        if self.init.exited().is_some() {
            return Err(TaskError::FailedPrecondition(format!(
                "container {} has exited: cannot exec in it",
                self.id
            )));
        }
        let mut execs = lock(&self.execs);
        if execs.contains_key(exec_id) {
            return Err(TaskError::AlreadyExists(format!(
                "exec {exec_id} already exists in container {}",
                self.id
            )));
        }
        let p = Process::new(exec_id, Some(spec), stdio);
        execs.insert(exec_id.to_string(), Arc::new(p));
        self.env.events.exec_added(&self.id, exec_id);
        Ok(())
    }

    /// The container's status (the init's), from the kernel unless the exit is recorded.
    pub async fn status(&self) -> Status {
        if self.init.exited().is_some() {
            return Status::STOPPED;
        }
        match self.engine(|e| Ok(e.status())).await {
            Ok(s) => task_status(s),
            Err(_) => Status::UNKNOWN,
        }
    }

    pub async fn state(&self, exec_id: &str) -> Result<StateResponse, TaskError> {
        let p = self.process(exec_id)?;
        let container = self.status().await;
        let status = if p.is_init() {
            container
        } else {
            p.exec_status(container)
        };
        let exit = p.exited();
        Ok(StateResponse {
            id: p.id.clone(),
            bundle: self.bundle.to_string_lossy().into_owned(),
            pid: p.pid(),
            status: status.into(),
            stdin: p.stdio.stdin.clone(),
            stdout: p.stdio.stdout.clone(),
            stderr: p.stdio.stderr.clone(),
            terminal: p.stdio.terminal,
            exit_status: exit.map_or(0, |e| e.status),
            exited_at: exit.map(|e| timestamp(e.at)).into(),
            exec_id: exec_id.to_string(),
            ..Default::default()
        })
    }

    pub async fn kill(&self, exec_id: &str, signal: u32, all: bool) -> Result<(), TaskError> {
        let sig = i32::try_from(signal)
            .ok()
            .and_then(|s| Signal::try_from(s).ok())
            .ok_or_else(|| TaskError::InvalidArgument(format!("signal {signal}: not a signal")))?;
        if !exec_id.is_empty() {
            return self.exec(exec_id)?.signal(sig);
        }
        if self.init.exited().is_some() {
            if all {
                // runc allows `kill --all` after the init is gone: leftovers of a shared pid
                // namespace.
                return self.engine(|e| Ok(e.cgroup().kill_all()?)).await;
            }
            return Err(TaskError::NotFound(format!(
                "container {}: process already finished",
                self.id
            )));
        }
        self.engine(move |e| e.signal(sig, all)).await
    }

    pub async fn pause(&self) -> Result<(), TaskError> {
        self.engine_mut(|e| e.pause()).await?;
        self.env.events.paused(&self.id);
        Ok(())
    }

    pub async fn resume(&self) -> Result<(), TaskError> {
        self.engine_mut(|e| e.resume()).await?;
        self.env.events.resumed(&self.id);
        Ok(())
    }

    /// Dumps the container with CRIU into `path` (containerd's directory, unless the options
    /// name another); leaves it running unless the options say exit. Options are runc's
    /// CheckpointOptions (ctr sends them for any runtime) or none (the defaults).
    pub async fn checkpoint(&self, path: &str, options: Option<&Any>) -> Result<(), TaskError> {
        let o = parse_checkpoint_options(options)?;
        let shim = ShimOptions::load(&self.bundle)?;
        let image = non_empty_path(&o.image_path)
            .or_else(|| non_empty_path(path))
            .or(shim.criu_image_path.clone())
            .ok_or_else(|| {
                TaskError::InvalidArgument("checkpoint: no path for the images".into())
            })?;
        let work = non_empty_path(&o.work_path)
            .or(shim.criu_work_path.clone())
            .unwrap_or_else(|| self.bundle.join(CRIU_WORK_DIR));
        let cgroups_mode = match o.cgroups_mode.as_str() {
            "" => None,
            m => Some(CgroupsMode::parse(m).map_err(TaskError::InvalidArgument)?),
        };
        let mut empty_ns = 0;
        for ns in &o.empty_namespaces {
            match ns.as_str() {
                "network" => empty_ns |= libc::CLONE_NEWNET as u32,
                other => {
                    return Err(TaskError::InvalidArgument(format!(
                        "checkpoint: empty_namespaces {other:?}: only \"network\" can be left \
                         empty"
                    )))
                }
            }
        }
        let opts = CheckpointOpts {
            criu: shim.criu_path.clone(),
            image_path: image.clone(),
            work_path: Some(work),
            leave_running: !o.exit,
            tcp_established: o.open_tcp,
            ext_unix_sk: o.external_unix_sockets,
            shell_job: o.terminal,
            file_locks: o.file_locks,
            cgroups_mode,
            empty_ns,
        };
        self.engine_mut(move |e| e.checkpoint(&opts)).await?;
        info!("container {}: checkpointed to {}", self.id, image.display());
        self.env
            .events
            .checkpointed(&self.id, &image.to_string_lossy());
        Ok(())
    }

    /// New cgroup limits from an Update request's JSON LinuxResources; the engine merges them
    /// over the current ones and restores those when the kernel refuses a value.
    pub async fn update(&self, resources: Option<&Any>) -> Result<(), TaskError> {
        let resources = parse_resources(resources)?;
        self.engine_mut(move |e| e.update(&resources)).await
    }

    /// The cgroup's statistics as containerd's v1 or v2 metrics (see metrics.rs); an error, not
    /// empty metrics, when the cgroup is gone.
    pub async fn stats(&self) -> Result<Any, TaskError> {
        let (hierarchy, stats) = self
            .engine(|e| Ok((e.cgroup().hierarchy(), e.stats()?)))
            .await?;
        crate::metrics::to_any(hierarchy, &stats).map_err(|e| TaskError::Internal(e.to_string()))
    }

    /// Every process in the container's cgroup; execs carry their exec id.
    pub async fn pids(&self) -> Result<Vec<ProcessInfo>, TaskError> {
        let pids = self.engine(|e| e.processes()).await?;
        let execs: HashMap<u32, String> = lock(&self.execs)
            .values()
            .filter(|p| p.pid() != 0)
            .map(|p| (p.pid(), p.id.clone()))
            .collect();
        Ok(pids
            .into_iter()
            .map(|pid| {
                let pid = pid.as_raw() as u32;
                let info = execs.get(&pid).map(|exec_id| Any {
                    type_url: type_url::PROCESS_DETAILS.to_string(),
                    value: ProcessDetails {
                        exec_id: exec_id.clone(),
                    }
                    .encode_to_vec(),
                    ..Default::default()
                });
                ProcessInfo {
                    pid,
                    info: info.into(),
                    ..Default::default()
                }
            })
            .collect())
    }

    pub fn close_stdin(&self, exec_id: &str) -> Result<(), TaskError> {
        self.process(exec_id)?.io().close_stdin();
        Ok(())
    }

    pub fn resize(&self, exec_id: &str, width: u32, height: u32) -> Result<(), TaskError> {
        Ok(self.process(exec_id)?.io().resize(width, height)?)
    }

    /// Deletes an exec that is not running; returns its pid and exit.
    pub fn delete_exec(&self, exec_id: &str) -> Result<(u32, Option<Exit>), TaskError> {
        let p = self.exec(exec_id)?;
        if p.pid() != 0 && p.exited().is_none() {
            return Err(TaskError::FailedPrecondition(format!(
                "exec {exec_id} is still running: kill it first"
            )));
        }
        lock(&self.execs).remove(exec_id);
        p.io().close();
        p.abandon();
        Ok((p.pid(), p.exited()))
    }

    /// Deletes the container (its init must not be running): destroys it with the engine,
    /// unmounts the rootfs, drops every exec and sends TaskDelete.
    pub async fn delete(&self) -> Result<(u32, Option<Exit>), TaskError> {
        let status = self.status().await;
        if matches!(status, Status::RUNNING | Status::PAUSED | Status::PAUSING) {
            return Err(TaskError::FailedPrecondition(format!(
                "container {} is still running: kill it first",
                self.id
            )));
        }
        self.engine_mut(|e| e.destroy(true)).await?;
        if let Some(oom) = &self.oom {
            oom.stop();
        }
        if self.init.pid() != 0 && self.init.exited().is_none() {
            // A created container's init was just killed: report its exit first.
            let wait = tokio::time::timeout(KILLED_INIT_WAIT, self.init.wait()).await;
            if wait.is_err() {
                warn!(
                    "container {}: killed init not reaped in {KILLED_INIT_WAIT:?}",
                    self.id
                );
            }
        }
        if self.rootfs_mounted {
            unmount_rootfs(&self.bundle).await;
        }
        let execs: Vec<Arc<Process>> = lock(&self.execs).drain().map(|(_, p)| p).collect();
        for p in execs {
            p.io().close();
            p.abandon();
        }
        self.init.io().close();
        let exit = self.init.exited();
        let (pid, status) = (self.init.pid(), exit.map_or(0, |e| e.status));
        self.env
            .events
            .delete(&self.id, pid, status, exit.map(|e| e.at));
        info!("container {} deleted", self.id);
        Ok((pid, exit))
    }

    /// Runs `f` on the engine's container in a blocking thread (engine calls block).
    async fn engine<T, F>(&self, f: F) -> Result<T, TaskError>
    where
        T: Send + 'static,
        F: FnOnce(&EngineContainer) -> Result<T, ContainerError> + Send + 'static,
    {
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || {
            let guard = engine.read().unwrap_or_else(|p| p.into_inner());
            f(&guard)
        })
        .await
        .map_err(|e| TaskError::Internal(format!("engine call failed: {e}")))?
        .map_err(TaskError::from)
    }

    async fn engine_mut<T, F>(&self, f: F) -> Result<T, TaskError>
    where
        T: Send + 'static,
        F: FnOnce(&mut EngineContainer) -> Result<T, ContainerError> + Send + 'static,
    {
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = engine.write().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| TaskError::Internal(format!("engine call failed: {e}")))?
        .map_err(TaskError::from)
    }
}

/// Creates container `id` with the engine, or restores it from the CRIU images in
/// `checkpoint`; the init's stdio (for a restore: what replaces the dumped tree's stdio pipes)
/// come from containerd's paths. On error nothing is left.
async fn start_engine(
    id: &str,
    bundle: &Path,
    opts: &ShimOptions,
    stdio: &StdioPaths,
    io_ctx: &IoContext,
    namespace: &str,
    checkpoint: Option<PathBuf>,
) -> Result<(EngineContainer, ProcessIo), TaskError> {
    let (engine_stdio, mut pio) = ProcessIo::open(stdio, io_ctx).await?;
    let root = opts.state_root(namespace);
    let (id_owned, bundle_owned) = (id.to_string(), bundle.to_path_buf());
    let work = opts
        .criu_work_path
        .clone()
        .unwrap_or_else(|| bundle.join(CRIU_WORK_DIR));
    let (no_pivot, criu) = (opts.no_pivot_root, opts.criu_path.clone());
    let made = tokio::task::spawn_blocking(move || {
        let factory = Factory::new(root)?;
        match checkpoint {
            None => factory.create(
                &id_owned,
                &bundle_owned,
                CreateOpts {
                    stdio: engine_stdio.stdio,
                    console_socket: engine_stdio.console_socket,
                    preserve_fds: 0,
                    no_pivot,
                    systemd_cgroup: false,
                },
            ),
            Some(image) => factory.restore(
                &id_owned,
                &bundle_owned,
                RestoreOpts {
                    criu,
                    image_path: image,
                    work_path: Some(work),
                    stdio: engine_stdio.stdio,
                    console_socket: engine_stdio.console_socket,
                    no_pivot,
                    ..RestoreOpts::default()
                },
            ),
        }
    })
    .await
    .map_err(|e| TaskError::Internal(format!("engine create failed: {e}")));
    let mut engine = match made {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            pio.close();
            return Err(e.into());
        }
        Err(e) => {
            pio.close();
            return Err(e);
        }
    };
    if let Err(e) = pio.attach_console().await {
        pio.close();
        let _ = tokio::task::spawn_blocking(move || engine.destroy(true)).await;
        return Err(e.into());
    }
    Ok((engine, pio))
}

/// runc's CheckpointOptions from an Any (ctr sends them whatever the runtime), or defaults.
fn parse_checkpoint_options(any: Option<&Any>) -> Result<CheckpointOptions, TaskError> {
    let Some(any) = any.filter(|a| !(a.type_url.is_empty() && a.value.is_empty())) else {
        return Ok(CheckpointOptions::default());
    };
    if !any.type_url.ends_with(type_url::RUNC_CHECKPOINT_OPTIONS) {
        return Err(TaskError::InvalidArgument(format!(
            "checkpoint: options of type {:?}: expected {}",
            any.type_url,
            type_url::RUNC_CHECKPOINT_OPTIONS
        )));
    }
    CheckpointOptions::decode(any.value.as_slice()).map_err(|e| {
        TaskError::InvalidArgument(format!("checkpoint: undecodable CheckpointOptions: {e}"))
    })
}

fn non_empty_path(s: &str) -> Option<PathBuf> {
    (!s.is_empty()).then(|| PathBuf::from(s))
}

fn parse_resources(any: Option<&Any>) -> Result<oci_spec::runtime::LinuxResources, TaskError> {
    let any =
        any.ok_or_else(|| TaskError::InvalidArgument("update: resources are missing".into()))?;
    if !any.type_url.ends_with(RESOURCES_TYPE) {
        return Err(TaskError::InvalidArgument(format!(
            "update: resources have type {:?}, expected types.containerd.io/{RESOURCES_TYPE}",
            any.type_url
        )));
    }
    serde_json::from_slice(&any.value).map_err(|e| {
        TaskError::InvalidArgument(format!("update: resources are not OCI LinuxResources: {e}"))
    })
}

fn parse_exec_spec(spec: Option<&Any>) -> Result<oci_spec::runtime::Process, TaskError> {
    let any = spec.ok_or_else(|| TaskError::InvalidArgument("exec: spec is missing".into()))?;
    if !any.type_url.ends_with(EXEC_SPEC_TYPE) {
        return Err(TaskError::InvalidArgument(format!(
            "exec: spec has type {:?}, expected types.containerd.io/{EXEC_SPEC_TYPE}",
            any.type_url
        )));
    }
    serde_json::from_slice(&any.value)
        .map_err(|e| TaskError::InvalidArgument(format!("exec: spec is not an OCI process: {e}")))
}

pub fn task_status(s: EngineStatus) -> Status {
    match s {
        EngineStatus::Creating => Status::UNKNOWN,
        EngineStatus::Created => Status::CREATED,
        EngineStatus::Running => Status::RUNNING,
        EngineStatus::Paused => Status::PAUSED,
        EngineStatus::Stopped => Status::STOPPED,
    }
}

/// Records the init's exit in the bundle ("<status> <seconds> <nanos>").
fn write_exit_file(bundle: &Path, exit: &Exit) {
    let d = exit.at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let body = format!("{} {} {}\n", exit.status, d.as_secs(), d.subsec_nanos());
    if let Err(e) = std::fs::write(bundle.join(EXIT_FILE), body) {
        warn!("record exit in {}: {e}", bundle.display());
    }
}

/// The exit recorded by [`write_exit_file`], if any.
pub fn read_exit_file(bundle: &Path) -> Option<Exit> {
    let body = std::fs::read_to_string(bundle.join(EXIT_FILE)).ok()?;
    let mut f = body.split_whitespace().map(|s| s.parse::<u64>().ok());
    let (status, secs, nanos) = (f.next()??, f.next()??, f.next()??);
    Some(Exit {
        status: u32::try_from(status).ok()?,
        at: UNIX_EPOCH + Duration::new(secs, u32::try_from(nanos).ok()?),
    })
}

/// Used by `Connect`: the init's pid.
pub fn task_pid(c: Option<&Arc<Container>>) -> u32 {
    c.map_or(0, |c| c.init.pid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_file_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_exit_file(dir.path()), None);
        let exit = Exit {
            status: 137,
            at: UNIX_EPOCH + Duration::new(1_700_000_000, 123),
        };
        write_exit_file(dir.path(), &exit);
        assert_eq!(read_exit_file(dir.path()), Some(exit));
        std::fs::write(dir.path().join(EXIT_FILE), "garbage").unwrap();
        assert_eq!(read_exit_file(dir.path()), None);
    }

    #[test]
    fn exec_spec_parsing() {
        let any = |t: &str, v: &str| Any {
            type_url: t.into(),
            value: v.as_bytes().to_vec(),
            ..Default::default()
        };
        let ok = any(
            "types.containerd.io/opencontainers/runtime-spec/1/Process",
            r#"{"args":["sh"],"cwd":"/","user":{"uid":0,"gid":0}}"#,
        );
        let p = parse_exec_spec(Some(&ok)).unwrap();
        assert_eq!(p.args().as_deref(), Some(&["sh".to_string()][..]));
        assert!(parse_exec_spec(None).is_err());
        let wrong = any("example.Foo", "{}");
        assert!(parse_exec_spec(Some(&wrong))
            .unwrap_err()
            .to_string()
            .contains("example.Foo"));
        let bad = any(
            "types.containerd.io/opencontainers/runtime-spec/1/Process",
            "{",
        );
        assert!(matches!(
            parse_exec_spec(Some(&bad)),
            Err(TaskError::InvalidArgument(_))
        ));
    }

    #[test]
    fn update_resources_parsing() {
        let any = |t: &str, v: &str| Any {
            type_url: t.into(),
            value: v.as_bytes().to_vec(),
            ..Default::default()
        };
        let url = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";
        let r = parse_resources(Some(&any(url, r#"{"pids":{"limit":5}}"#))).unwrap();
        assert_eq!(r.pids().unwrap().limit(), 5);
        for bad in [
            None,
            Some(any("example.Foo", "{}")),
            Some(any(url, r#"{"pids":{"limit":"x"}}"#)),
        ] {
            let e = parse_resources(bad.as_ref()).unwrap_err();
            assert!(matches!(e, TaskError::InvalidArgument(_)), "{e}");
            assert!(e.to_string().starts_with("update: resources"), "{e}");
        }
    }

    #[test]
    fn status_mapping() {
        assert_eq!(task_status(EngineStatus::Paused), Status::PAUSED);
        assert_eq!(task_status(EngineStatus::Created), Status::CREATED);
        assert_eq!(task_status(EngineStatus::Stopped), Status::STOPPED);
        assert_eq!(task_status(EngineStatus::Creating), Status::UNKNOWN);
    }
}
