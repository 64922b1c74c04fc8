//! The shim's lifecycle verbs containerd runs as commands: `start` (find or start the shim
//! server for this container's group and print its address) and `delete` (clean up after a
//! container whose shim is gone), plus the server's wait-for-exit.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use containerd_shim::api::DeleteResponse;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{Config, Error, ExitSignal, Flags, Shim, StartOpts};
use log::{error, info, warn};
use myrt_runtime::Factory;
use tokio::io::AsyncReadExt;
use tokio::signal::unix::{signal, SignalKind};

use crate::container::{self, read_exit_file, Env};
use crate::events::{timestamp, Events};
use crate::options::ShimOptions;
use crate::reaper::Reaper;
use crate::rootfs::unmount_rootfs_blocking;
use crate::task::TaskService;

/// Annotations that put containers into one shim, first match wins (runc's shim uses these).
const GROUP_ANNOTATIONS: &[&str] = &[
    "io.containerd.runc.v2.group",
    "io.kubernetes.cri.sandbox-id",
];
/// How `start` tells the server its log level (from the `log_level` option).
const LOG_LEVEL_ENV: &str = "MYRT_SHIM_LOG_LEVEL";
/// How long `start` waits for a new server to be up.
const SERVER_START_TIMEOUT: Duration = Duration::from_secs(10);
/// The exit status `delete` reports for a container it had to kill (128 + SIGKILL).
const KILLED_STATUS: u32 = 137;

pub struct Service {
    namespace: String,
    id: String,
    bundle: PathBuf,
    socket: String,
    exit: Arc<ExitSignal>,
}

/// The group a container's shim serves: the first grouping annotation, else the container id.
pub fn grouping_key(id: &str, annotations: &HashMap<String, String>) -> String {
    GROUP_ANNOTATIONS
        .iter()
        .find_map(|k| annotations.get(*k).filter(|v| !v.is_empty()))
        .cloned()
        .unwrap_or_else(|| id.to_string())
}

/// The annotations of the bundle's config.json (empty when it has none).
fn bundle_annotations(bundle: &Path) -> Result<HashMap<String, String>, Error> {
    let path = bundle.join("config.json");
    let data = std::fs::read(&path).map_err(|err| Error::IoError {
        context: format!("read {}", path.display()),
        err,
    })?;
    #[derive(serde::Deserialize)]
    struct Partial {
        #[serde(default)]
        annotations: Option<HashMap<String, String>>,
    }
    let p: Partial = serde_json::from_slice(&data)
        .map_err(|e| Error::InvalidArgument(format!("{}: {e}", path.display())))?;
    Ok(p.annotations.unwrap_or_default())
}

fn check_namespace(ns: &str) -> Result<(), Error> {
    if ns.is_empty() || ns == "." || ns == ".." || ns.contains('/') {
        return Err(Error::InvalidArgument(format!(
            "namespace {ns:?}: not usable as a directory name"
        )));
    }
    Ok(())
}

/// Writes `<bundle>/address` atomically (containerd reconnects through it after a restart).
fn write_address(bundle: &Path, address: &str) -> Result<(), Error> {
    let tmp = bundle.join(".address.tmp");
    let path = bundle.join("address");
    std::fs::write(&tmp, address)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|err| Error::IoError {
            context: format!("write {}", path.display()),
            err,
        })
}

/// The message of a failed `start`, without the crate's variant names.
fn start_error_message(e: Error) -> String {
    match e {
        Error::InvalidArgument(m) | Error::Other(m) => m,
        other => other.to_string(),
    }
}

fn socket_path(address: &str) -> &str {
    address.strip_prefix("unix://").unwrap_or(address)
}

impl Service {
    /// `start`: the address of the live server of this container's group, or of a new one.
    async fn start_group_server(&self, opts: StartOpts) -> Result<String, Error> {
        check_namespace(&opts.namespace)?;
        // Read stdin ourselves: the crate would decode runtimeoptions as runc options.
        let mut raw = Vec::new();
        std::io::stdin()
            .read_to_end(&mut raw)
            .map_err(|err| Error::IoError {
                context: "read options from stdin".into(),
                err,
            })?;
        let options =
            ShimOptions::from_any_bytes(&raw).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let group = grouping_key(&opts.id, &bundle_annotations(&self.bundle)?);
        let address = containerd_shim::socket_address(&opts.address, &opts.namespace, &group);
        if UnixStream::connect(socket_path(&address)).is_ok() {
            // A live shim already serves this group.
            write_address(&self.bundle, &address)?;
            return Ok(address);
        }
        spawn_server(&opts, &address, &self.bundle, &options).await?;
        write_address(&self.bundle, &address)?;
        Ok(address)
    }
}

#[async_trait]
impl Shim for Service {
    type T = TaskService;

    async fn new(_runtime_id: &str, args: &Flags, config: &mut Config) -> Self {
        if let Ok(level) = std::env::var(LOG_LEVEL_ENV) {
            config.default_log_level = level;
        }
        if !args.socket.is_empty() {
            // The server: our own logger on the bundle's fifo instead of the crate's.
            config.no_setup_logger = true;
            // Without the fifo there is nowhere to say so (stderr is /dev/null); serve anyway.
            let _ = crate::logger::init(args.debug, &config.default_log_level);
        }
        let bundle = if args.bundle.is_empty() {
            std::env::current_dir().unwrap_or_default()
        } else {
            PathBuf::from(&args.bundle)
        };
        Service {
            namespace: args.namespace.clone(),
            id: args.id.clone(),
            bundle,
            socket: args.socket.clone(),
            exit: Arc::new(ExitSignal::default()),
        }
    }

    async fn start_shim(&mut self, opts: StartOpts) -> Result<String, Error> {
        match self.start_group_server(opts).await {
            Ok(address) => Ok(address),
            Err(e) => {
                // containerd shows this output as the reason (the crate would print Debug).
                eprintln!("{}", start_error_message(e));
                std::process::exit(1);
            }
        }
    }

    async fn delete_shim(&mut self) -> Result<DeleteResponse, Error> {
        check_namespace(&self.namespace)?;
        let (ns, id, bundle) = (self.namespace.clone(), self.id.clone(), self.bundle.clone());
        tokio::task::spawn_blocking(move || delete_leftovers(&ns, &id, &bundle))
            .await
            .map_err(|e| Error::Other(format!("delete: {e}")))
    }

    async fn wait(&mut self) {
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = self.exit.wait() => info!("no container left: shutting down"),
                _ = term.recv() => info!("SIGTERM: shutting down, containers keep running"),
                _ = int.recv() => info!("SIGINT: shutting down, containers keep running"),
            },
            _ => self.exit.wait().await,
        }
        // The crate removes the socket named in ./address, which is gone with a deleted
        // bundle: remove ours by name.
        let path = socket_path(&self.socket);
        if !path.is_empty() {
            let _ = std::fs::remove_file(path);
        }
    }

    async fn create_task_service(&self, publisher: RemotePublisher) -> TaskService {
        let reaper = match Reaper::start() {
            Ok(r) => r,
            Err(e) => {
                error!("cannot watch SIGCHLD: {e}");
                std::process::exit(1);
            }
        };
        let env = Env {
            namespace: self.namespace.clone(),
            events: Events::spawn(publisher, self.namespace.clone()),
            reaper,
        };
        TaskService::new(env, self.exit.clone())
    }
}

/// Starts the server (this binary with `-socket`) in the bundle directory and waits until it
/// serves: it closes its stdout then.
async fn spawn_server(
    opts: &StartOpts,
    address: &str,
    bundle: &Path,
    options: &ShimOptions,
) -> Result<(), Error> {
    let exe = std::env::current_exe().map_err(|err| Error::IoError {
        context: "find own binary".into(),
        err,
    })?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.current_dir(bundle)
        .args(["-namespace", &opts.namespace, "-id", &opts.id])
        .args(["-address", &opts.address, "-socket", address])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    if opts.debug {
        cmd.arg("-debug");
    }
    if let Some(level) = &options.log_level {
        cmd.env(LOG_LEVEL_ENV, level);
    }
    let mut child = cmd.spawn().map_err(|err| Error::IoError {
        context: "start the shim server".into(),
        err,
    })?;
    let pid = child.id().unwrap_or(0);
    if let Some(cg) = &options.shim_cgroup {
        if let Err(e) = containerd_shim::cgroup::add_task_to_cgroup(cg, pid) {
            let _ = child.start_kill();
            return Err(Error::Other(format!("shim_cgroup {cg:?}: {e}")));
        }
    }
    // Lowering a score needs CAP_SYS_RESOURCE; raising it by one never does. Best effort.
    let _ = containerd_shim::cgroup::adjust_oom_score(pid);
    let mut out = child
        .stdout
        .take()
        .ok_or_else(|| Error::Other("shim server has no stdout pipe".into()))?;
    let mut sink = Vec::new();
    let ready = tokio::time::timeout(SERVER_START_TIMEOUT, out.read_to_end(&mut sink)).await;
    if ready.is_err() {
        let _ = child.start_kill();
        return Err(Error::Other(format!(
            "shim server did not come up in {SERVER_START_TIMEOUT:?}"
        )));
    }
    if let Ok(Some(status)) = child.try_wait() {
        if !status.success() {
            return Err(Error::Other(format!(
                "shim server exited during start ({status}); see containerd's log"
            )));
        }
    }
    Ok(())
}

/// `delete`: destroys what is left of the container (killing it if needed), unmounts the
/// rootfs, and reports its exit. Idempotent.
fn delete_leftovers(ns: &str, id: &str, bundle: &Path) -> DeleteResponse {
    let options = ShimOptions::load(bundle).unwrap_or_else(|e| {
        warn!("{e}; using the default state root");
        ShimOptions::default()
    });
    let root = options.state_root(ns);
    let (mut pid, mut killed) = (0, false);
    if root.join(id).is_dir() {
        match Factory::new(&root).and_then(|f| f.load(id)) {
            Ok(mut c) => {
                pid = c.persisted().init_pid.map_or(0, |p| p.as_raw() as u32);
                killed = c.init_pid().is_some();
                if let Err(e) = c.destroy(true) {
                    warn!("delete {id}: {e}");
                }
            }
            Err(e) => warn!("delete {id}: load: {e}"),
        }
    }
    unmount_rootfs_blocking(&bundle.join("rootfs"));
    let (status, at) = match read_exit_file(bundle) {
        Some(exit) if !killed => (exit.status, exit.at),
        _ => (KILLED_STATUS, SystemTime::now()),
    };
    let _ = std::fs::remove_file(bundle.join(container::EXIT_FILE));
    DeleteResponse {
        pid,
        exit_status: status,
        exited_at: Some(timestamp(at)).into(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping() {
        let mut a = HashMap::new();
        assert_eq!(grouping_key("c1", &a), "c1");
        a.insert(
            "io.kubernetes.cri.sandbox-id".to_string(),
            "pod1".to_string(),
        );
        assert_eq!(grouping_key("c1", &a), "pod1");
        a.insert("io.containerd.runc.v2.group".to_string(), "g".to_string());
        assert_eq!(grouping_key("c1", &a), "g");
        a.insert("io.containerd.runc.v2.group".to_string(), String::new());
        assert_eq!(grouping_key("c1", &a), "pod1");
    }

    #[test]
    fn annotations_from_bundle() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"ociVersion":"1.0.2","annotations":{"io.kubernetes.cri.sandbox-id":"p"}}"#,
        )
        .unwrap();
        let a = bundle_annotations(dir.path()).unwrap();
        assert_eq!(grouping_key("c", &a), "p");
        std::fs::write(dir.path().join("config.json"), r#"{"ociVersion":"1.0.2"}"#).unwrap();
        assert!(bundle_annotations(dir.path()).unwrap().is_empty());
        std::fs::write(dir.path().join("config.json"), "{").unwrap();
        assert!(bundle_annotations(dir.path()).is_err());
    }

    #[test]
    fn namespaces_must_be_directory_names() {
        for ns in ["default", "k8s.io", "moby"] {
            check_namespace(ns).unwrap();
        }
        for ns in ["", "..", "a/b"] {
            assert!(check_namespace(ns).is_err());
        }
    }

    #[test]
    fn delete_without_a_container_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("state");
        ShimOptions {
            root: Some(root.clone()),
            ..Default::default()
        }
        .save(dir.path())
        .unwrap();
        // A recorded exit is what `delete` reports when it killed nothing.
        std::fs::write(dir.path().join(container::EXIT_FILE), "3 1700000000 5\n").unwrap();
        let r = delete_leftovers("default", "gone", dir.path());
        assert_eq!((r.pid, r.exit_status), (0, 3));
        assert_eq!(r.exited_at.seconds, 1_700_000_000);
        // Again: nothing is known any more, runc's convention is 128 + SIGKILL.
        let r = delete_leftovers("default", "gone", dir.path());
        assert_eq!(r.exit_status, 137);
        assert!(
            !root.join("default").exists(),
            "delete created no state root"
        );
    }
}
