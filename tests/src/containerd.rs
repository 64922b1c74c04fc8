//! A private containerd for one test: own root, state, sockets, config and log in a temp dir.
//!
//! The config comes from `scripts/containerd.sh config DIR` (one generator for scripts and
//! tests); the daemon is this process's own child so it can be stopped and waited for. Every
//! containerd on a host shares /run/containerd/s (shim sockets) and /run/containerd/runc, so
//! each instance gets its own namespace, named after its unique temp dir, and the isolated test
//! process mounts a private tmpfs over /run/containerd first.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use myrt_runtime::Pid;
use nix::sys::signal::Signal;

use crate::command::{self, CmdOutput};
use crate::image::{image, pause_image, IMAGE_REF, PAUSE_REF};
use crate::isolation::{is_isolated, private_run_containerd, shout};
use crate::paths::{self, SHIM_BINARY};
use crate::{runtime, MYRT_RUNTIME};

/// Longest a single `ctr` call may take before the test fails.
pub const CTR_TIMEOUT: Duration = Duration::from_secs(60);
const START_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(25);

/// Where the container's root filesystem comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The imported image: containerd prepares an overlay snapshot and passes it as a mount.
    Image,
    /// `--rootfs <busybox-rootfs dir>`: the spec's root.path, no mounts. ctr sets no PATH in the
    /// process env then, so commands must be absolute paths.
    Rootfs,
}

/// One line of `ctr tasks ls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    pub id: String,
    pub pid: u32,
    /// RUNNING, STOPPED, PAUSED, CREATED, ...
    pub status: String,
}

/// A running private containerd; stopped and removed (with its tasks, shims and mounts) on drop.
pub struct Containerd {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    namespace: String,
    daemon: Option<Child>,
    /// Extra environment of the daemon (see [`Containerd::start_with_env`]).
    env: Vec<(OsString, OsString)>,
}

fn is_gone_or_zombie(pid: Pid) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the last ')' (the command name may hold spaces and parens).
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

fn cmdline(pid: &str) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn flag_value<'a>(argv: &'a [String], flag: &str) -> Option<&'a str> {
    argv.iter()
        .position(|a| a == flag)
        .and_then(|i| argv.get(i + 1))
        .map(String::as_str)
}

/// Mount points (field 5 of /proc/self/mountinfo), octal escapes decoded.
pub fn mount_points() -> Vec<String> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| {
            m.replace("\\040", " ")
                .replace("\\011", "\t")
                .replace("\\012", "\n")
                .replace("\\134", "\\")
        })
        .collect()
}

/// The mount points below `dir` (not `dir` itself). Tests that run at once share this mount
/// namespace, so each compares only its own containerd's mounts (the CRI configs put netns and
/// shm mounts under the state dir).
pub fn mounts_under(dir: &Path) -> BTreeSet<String> {
    let prefix = format!("{}/", dir.display());
    mount_points()
        .into_iter()
        .filter(|m| m.starts_with(&prefix))
        .collect()
}

impl Containerd {
    /// Starts a private containerd and imports the busybox image into its namespace.
    /// Panics (the test fails) when containerd, ctr or the myrt shim is missing.
    #[track_caller]
    pub fn start() -> Containerd {
        Containerd::start_with_env(|_| Vec::new())
    }

    /// [`Containerd::start`] with extra environment variables for the daemon (and so for the
    /// shims it starts), computed from this instance's temp dir before the daemon starts.
    /// E.g. containerd 1.6 unpacks every checkpoint it restores into
    /// `$XDG_RUNTIME_DIR/ctrd-checkpointNNN` (else the host's /tmp) and never removes it.
    #[track_caller]
    pub fn start_with_env(env: impl FnOnce(&Path) -> Vec<(OsString, OsString)>) -> Containerd {
        assert!(
            is_isolated(),
            "Containerd::start() outside a private mount + pid namespace: \
             begin the test with `if !myrt_tests::isolate() {{ return; }}`"
        );
        private_run_containerd();
        let bins = paths::bin_dir();
        if runtime() == MYRT_RUNTIME {
            assert!(
                bins.join(SHIM_BINARY).is_file(),
                "{} not found in {}: build it (cargo build -p myrt-shim), set MYRT_BIN_DIR, or \
                 test another runtime with MYRT_E2E_RUNTIME=io.containerd.runc.v2",
                SHIM_BINARY,
                bins.display()
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("myrt-e2e-")
            .tempdir_in("/tmp")
            .unwrap_or_else(|e| panic!("cannot create a temp dir in /tmp: {e}"));
        let path = dir.path().to_path_buf();
        // tempfile's random suffix is alphanumeric: a valid, host-unique containerd namespace.
        let namespace = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("myrt-e2e-{}", std::process::id()));
        command::run(
            Command::new(paths::scripts_dir().join("containerd.sh"))
                .arg("config")
                .arg(&path)
                // The config differs per major version.
                .env("MYRT_CONTAINERD", paths::containerd_binary()),
            CTR_TIMEOUT,
        )
        .ok();
        let env = env(&path);
        let mut cd = Containerd {
            dir: Some(dir),
            path,
            namespace,
            daemon: None,
            env,
        };
        cd.start_daemon();
        cd.import_image();
        cd
    }

    /// The temp dir holding root/, state/, the sockets, config.toml and containerd.log.
    pub fn dir(&self) -> &Path {
        &self.path
    }

    /// The grpc socket (`ctr --address`).
    pub fn address(&self) -> PathBuf {
        self.path.join("containerd.sock")
    }

    /// This instance's containerd namespace (unique on the host).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn log_path(&self) -> PathBuf {
        self.path.join("containerd.log")
    }

    /// `<state>/io.containerd.runtime.v2.task/<ns>/<id>`: the bundle containerd gives the shim.
    pub fn bundle_dir(&self, id: &str) -> PathBuf {
        self.bundles_dir().join(id)
    }

    /// The ttrpc socket of the shim serving task `id` (see [`Containerd::shim_address`]): for
    /// calls ctr 1.6 has no command for.
    #[track_caller]
    pub fn shim_socket(&self, id: &str) -> PathBuf {
        let address = self.shim_address(id);
        PathBuf::from(address.trim_start_matches("unix://"))
    }

    /// The address of the shim serving task `id` (`unix:///run/containerd/s/…`): from
    /// `<bundle>/address` (written by the shim), else from the `address` field of
    /// `<bundle>/bootstrap.json`, where containerd 2.x keeps the shim's start answer (2.x's own
    /// runc shim writes no `address` file).
    #[track_caller]
    pub fn shim_address(&self, id: &str) -> String {
        let bundle = self.bundle_dir(id);
        if let Ok(address) = fs::read_to_string(bundle.join("address")) {
            return address.trim().to_string();
        }
        let file = bundle.join("bootstrap.json");
        let raw = fs::read_to_string(&file).unwrap_or_else(|e| {
            panic!(
                "neither {}/address nor {}: {e}",
                bundle.display(),
                file.display()
            )
        });
        serde_json::from_str::<serde_json::Value>(&raw)
            .ok()
            .and_then(|v| v.get("address")?.as_str().map(str::to_string))
            .unwrap_or_else(|| panic!("no string \"address\" in {}: {raw}", file.display()))
    }

    /// The ttrpc service of the task API the shim of `id` serves, for [`crate::ttrpc::call`]:
    /// `containerd.task.v3.Task` when containerd 2.x recorded a version 3 shim in
    /// `<bundle>/bootstrap.json` (its own runc shim), else `containerd.task.v2.Task` (myrt, and
    /// every shim under containerd 1.x). v3 has the same messages under another package name.
    pub fn task_service(&self, id: &str) -> &'static str {
        let version = fs::read_to_string(self.bundle_dir(id).join("bootstrap.json"))
            .ok()
            .and_then(|raw| serde_json::from_str::<serde_json::Value>(&raw).ok())
            .and_then(|v| v.get("version")?.as_u64());
        if version == Some(3) {
            "containerd.task.v3.Task"
        } else {
            "containerd.task.v2.Task"
        }
    }

    /// `<root>/io.containerd.content.v1.content/blobs/<alg>/<hex>`: the file of content
    /// `digest` (`sha256:…`) in this instance's content store.
    pub fn content_blob(&self, digest: &str) -> PathBuf {
        let (alg, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
        self.path
            .join("root/io.containerd.content.v1.content/blobs")
            .join(alg)
            .join(hex)
    }

    /// `<state>/io.containerd.runtime.v2.task/<ns>`: the parent of this namespace's bundles.
    pub fn bundles_dir(&self) -> PathBuf {
        self.path
            .join("state/io.containerd.runtime.v2.task")
            .join(&self.namespace)
    }

    /// Starts the daemon on this instance's dirs (again, after [`Containerd::stop_daemon`]) and
    /// waits until it answers.
    #[track_caller]
    pub fn start_daemon(&mut self) {
        assert!(self.daemon.is_none(), "containerd is already running");
        let containerd = paths::containerd_binary();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", self.log_path().display()));
        let log2 = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot dup the log fd: {e}"));
        // containerd finds shims on PATH (1.6.20 ignores runtime_path): the myrt binaries first.
        let path_env = std::env::join_paths(paths::daemon_path())
            .unwrap_or_else(|e| panic!("cannot build containerd's PATH: {e}"));
        let child = Command::new(&containerd)
            .arg("--config")
            .arg(self.config_path())
            .env("PATH", path_env)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e}; install containerd (scripts/setup.sh) or fix \
                     MYRT_CONTAINERD (scripts/containerd-versions.sh)",
                    containerd.display()
                )
            });
        self.daemon = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self
                .ctr_timeout(["version"], Duration::from_secs(5))
                .success()
            {
                return;
            }
            if let Some(status) = self
                .daemon
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.daemon = None;
                panic!(
                    "containerd exited at start ({status}); log:\n{}",
                    self.log_tail(30)
                );
            }
            assert!(
                Instant::now() < deadline,
                "containerd did not answer on {} within {START_TIMEOUT:?}; log:\n{}",
                self.address().display(),
                self.log_tail(30)
            );
            thread::sleep(POLL);
        }
    }

    /// Stops the daemon (SIGTERM, SIGKILL after 10 s) and waits for it. Shims and their
    /// containers keep running, as they do when the real containerd restarts.
    pub fn stop_daemon(&mut self) {
        let Some(mut child) = self.daemon.take() else {
            return;
        };
        if let Some(pid) = i32::try_from(child.id()).ok().and_then(Pid::new) {
            let _ = pid.signal(Signal::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            thread::sleep(POLL);
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Stops and starts the daemon on the same dirs.
    #[track_caller]
    pub fn restart(&mut self) {
        self.stop_daemon();
        self.start_daemon();
    }

    /// A `ctr` command bound to this containerd and namespace, for callers that spawn it.
    pub fn ctr_command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(paths::ctr_binary());
        cmd.arg("--address")
            .arg(self.address())
            .arg("--namespace")
            .arg(&self.namespace)
            .args(args)
            .env_remove("CONTAINERD_NAMESPACE")
            .env_remove("CONTAINERD_ADDRESS")
            .env_remove("CONTAINERD_SNAPSHOTTER");
        cmd
    }

    /// Runs `ctr ARGS` to the end (at most [`CTR_TIMEOUT`]).
    #[track_caller]
    pub fn ctr<I, S>(&self, args: I) -> CmdOutput
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.ctr_timeout(args, CTR_TIMEOUT)
    }

    #[track_caller]
    pub fn ctr_timeout<I, S>(&self, args: I, timeout: Duration) -> CmdOutput
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        command::run(&mut self.ctr_command(args), timeout)
    }

    /// Imports the busybox archive; panics unless it is then listed as [`IMAGE_REF`].
    #[track_caller]
    pub fn import_image(&self) {
        let archive = image().archive.to_string_lossy().into_owned();
        self.ctr(["images", "import", archive.as_str()]).ok();
        let list = self.ctr(["images", "ls", "-q"]).ok();
        assert!(
            list.stdout.lines().any(|l| l.trim() == IMAGE_REF),
            "importing {archive} did not create {IMAGE_REF}: {list}"
        );
    }

    /// `ctr run -d FLAGS IMAGE ID CMD` from the imported image; the init's pid once the task is
    /// RUNNING.
    pub fn run_image_detached(&self, flags: &[&str], id: &str, cmd: &[&str]) -> u32 {
        let mut f = vec!["-d"];
        f.extend_from_slice(flags);
        self.ctr(crate::args(
            &["run"],
            self.container_args(Source::Image, &f, id, cmd),
        ))
        .ok();
        self.wait_task_status(id, "RUNNING", START_TIMEOUT).pid
    }

    /// The arguments after `ctr run`:
    /// `--runtime RT FLAGS... (IMAGE | --rootfs DIR) ID CMD...`.
    pub fn container_args(
        &self,
        source: Source,
        flags: &[&str],
        id: &str,
        cmd: &[&str],
    ) -> Vec<String> {
        let mut args = vec!["--runtime".to_string(), runtime()];
        args.extend(flags.iter().map(|f| f.to_string()));
        match source {
            Source::Image => args.push(IMAGE_REF.to_string()),
            Source::Rootfs => {
                args.push("--rootfs".to_string());
                args.push(image().rootfs.to_string_lossy().into_owned());
            }
        }
        args.push(id.to_string());
        args.extend(cmd.iter().map(|c| c.to_string()));
        args
    }

    /// `ctr containers create --runtime RT FLAGS... (IMAGE | --rootfs DIR) ID [--] CMD...`.
    ///
    /// ctr 1.6's `containers create` reorders flags after the positionals (`sh -c` would be its
    /// `--config`); `--` stops that for an image, but with `--rootfs` ctr then takes `--` as the
    /// id. So with [`Source::Rootfs`] no argument of CMD may start with `-`.
    #[track_caller]
    pub fn create_container(
        &self,
        source: Source,
        flags: &[&str],
        id: &str,
        cmd: &[&str],
    ) -> CmdOutput {
        let mut args = vec!["containers".to_string(), "create".to_string()];
        args.extend(self.container_args(source, flags, id, &[]));
        match source {
            Source::Image if !cmd.is_empty() => args.push("--".to_string()),
            Source::Rootfs => assert!(
                !cmd.iter().any(|a| a.starts_with('-')),
                "ctr 1.6 `containers create --rootfs` misparses arguments that start with '-': {cmd:?}"
            ),
            Source::Image => {}
        }
        args.extend(cmd.iter().map(|c| c.to_string()));
        self.ctr(args)
    }

    /// The tasks `ctr tasks ls` lists in this namespace.
    #[track_caller]
    pub fn tasks(&self) -> Vec<TaskInfo> {
        let out = self.ctr(["tasks", "ls"]).ok();
        out.stdout
            .lines()
            .skip(1)
            .filter_map(|line| {
                let mut cols = line.split_whitespace();
                Some(TaskInfo {
                    id: cols.next()?.to_string(),
                    pid: cols.next()?.parse().ok()?,
                    status: cols.next()?.to_string(),
                })
            })
            .collect()
    }

    #[track_caller]
    pub fn task(&self, id: &str) -> Option<TaskInfo> {
        self.tasks().into_iter().find(|t| t.id == id)
    }

    /// Polls `ctr tasks ls` until task `id` has `status`; panics after `timeout`.
    #[track_caller]
    pub fn wait_task_status(&self, id: &str, status: &str, timeout: Duration) -> TaskInfo {
        let deadline = Instant::now() + timeout;
        loop {
            let task = self.task(id);
            if let Some(t) = task.as_ref().filter(|t| t.status == status) {
                return t.clone();
            }
            assert!(
                Instant::now() < deadline,
                "task {id} did not reach {status} within {timeout:?}; last seen: {task:?}"
            );
            thread::sleep(POLL);
        }
    }

    /// Live shim processes of this containerd and namespace, found by their argv
    /// (`-namespace NS ... -address <this instance's socket>`): no other shim on the host matches.
    pub fn shim_pids(&self) -> Vec<Pid> {
        let address = self.address().to_string_lossy().into_owned();
        let Ok(entries) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter_map(|name| {
                let pid = Pid::new(name.parse().ok()?)?;
                let argv = cmdline(&name);
                (flag_value(&argv, "-address") == Some(address.as_str())
                    && flag_value(&argv, "-namespace") == Some(self.namespace.as_str()))
                .then_some(pid)
            })
            .collect()
    }

    /// Pids from `<bundle>/shim.pid` files of this namespace (shims that write one), kept only
    /// while that process's argv still names this instance's socket: a stale file whose pid was
    /// reused by another process yields nothing.
    pub fn bundle_shim_pids(&self) -> Vec<Pid> {
        let address = self.address().to_string_lossy().into_owned();
        let Ok(entries) = fs::read_dir(self.bundles_dir()) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| fs::read_to_string(e.path().join("shim.pid")).ok())
            .filter_map(|raw| Pid::new(raw.trim().parse().ok()?))
            .filter(|pid| cmdline(&pid.to_string()).contains(&address))
            .collect()
    }

    /// Waits until no shim of this instance is left; panics after `timeout`.
    #[track_caller]
    pub fn wait_no_shims(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let pids = self.shim_pids();
            if pids.iter().all(|p| is_gone_or_zombie(*p)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "shims {pids:?} still running {timeout:?} after their containers were deleted"
            );
            thread::sleep(POLL);
        }
    }

    /// The last `n` lines of containerd's log (shim logs land there too), without the
    /// start-up "loading plugin" chatter.
    pub fn log_tail(&self, n: usize) -> String {
        let log = fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| !l.contains("msg=\"loading plugin"))
            .collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Kills and deletes every task and container of this namespace (best effort).
    fn remove_all(&self) {
        let quick = Duration::from_secs(15);
        let ctr = |args: &[&str]| command::try_run(&mut self.ctr_command(args), quick).ok();
        let ids = |args: &[&str]| -> Vec<String> {
            ctr(args)
                .map(|o| o.stdout.lines().map(|l| l.trim().to_string()).collect())
                .unwrap_or_default()
        };
        for id in ids(&["tasks", "ls", "-q"]).iter().filter(|i| !i.is_empty()) {
            ctr(&["tasks", "kill", "-a", "-s", "SIGKILL", id]);
            ctr(&["tasks", "delete", "-f", id]);
        }
        for id in ids(&["containers", "ls", "-q"])
            .iter()
            .filter(|i| !i.is_empty())
        {
            ctr(&["containers", "delete", id]);
        }
    }

    fn kill_shims(&self) {
        let mut pids = self.shim_pids();
        pids.extend(self.bundle_shim_pids());
        pids.sort();
        pids.dedup();
        for pid in &pids {
            let _ = pid.signal(Signal::SIGKILL);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while !pids.iter().all(|p| is_gone_or_zombie(*p)) && Instant::now() < deadline {
            thread::sleep(POLL);
        }
    }

    fn unmount_all(&self) {
        let mut points: Vec<String> = mounts_under(&self.path).into_iter().collect();
        // Deepest first.
        points.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in points {
            if let Err(e) = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH) {
                shout(&format!("myrt-tests: cannot unmount {m}: {e}"));
            }
        }
    }
}

impl Containerd {
    /// containerd's default cgroupsPath is /<namespace>/<id>: the engines remove the container's
    /// cgroup, the namespace's parent stays. rmdir removes it only when empty.
    fn remove_namespace_cgroups(&self) {
        let root = Path::new("/sys/fs/cgroup");
        let mut parents = vec![root.join(self.namespace())];
        if let Ok(entries) = std::fs::read_dir(root) {
            for e in entries.flatten() {
                parents.push(e.path().join(self.namespace()));
            }
        }
        for p in parents {
            let _ = std::fs::remove_dir(&p);
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if thread::panicking() {
            // Captured by libtest and shown with the failure.
            eprintln!(
                "--- last lines of {}:\n{}",
                self.log_path().display(),
                self.log_tail(40)
            );
        }
        if self.daemon.is_some() {
            self.remove_all();
        }
        self.stop_daemon();
        self.kill_shims();
        self.unmount_all();
        self.remove_namespace_cgroups();
        let Some(dir) = self.dir.take() else { return };
        if std::env::var_os("MYRT_E2E_KEEP").is_some() {
            shout(&format!(
                "myrt-tests: MYRT_E2E_KEEP set, keeping {}",
                dir.keep().display()
            ));
        } else if let Err(e) = dir.close() {
            shout(&format!(
                "myrt-tests: cannot remove {}: {e}",
                self.path.display()
            ));
        }
    }
}

/// The Kubernetes path: a private containerd with the CRI plugin (see tests/src/cri.rs).
impl Containerd {
    /// Starts a private containerd from `scripts/containerd.sh config-cri` (CRI plugin on,
    /// handlers `runc` and `myrt`, CNI bridge with host-local IPAM) and imports the busybox
    /// ([`IMAGE_REF`]) and pause ([`PAUSE_REF`]) images into namespace `k8s.io`.
    ///
    /// The calling thread first moves into a new network namespace (with `lo` up): containerd,
    /// its CNI plugins and shims inherit it, so the CNI bridge and host-network pods live there
    /// and never on the host. containerd 1.6's CRI namespace is always `k8s.io`; the ids it
    /// makes are random, so parallel instances under one /run/containerd tmpfs do not collide.
    #[track_caller]
    pub fn start_cri() -> Containerd {
        Containerd::start_cri_with_options("")
    }

    /// [`Containerd::start_cri`] with `myrt_options`, TOML `key = value` lines (e.g.
    /// `ConfigPath = "/x/myrt.toml"`), as the `options` table of handler `myrt`
    /// (`MYRT_CRI_MYRT_OPTIONS` of `scripts/containerd.sh config-cri`). CRI sends them to the
    /// shim as `runtimeoptions.v1.Options`: containerd 1.6 only its `ConfigPath` (and
    /// `TypeUrl`), 1.7+ also the whole table as `config_body` when there is no `ConfigPath`.
    /// Empty: no table, no options.
    #[track_caller]
    pub fn start_cri_with_options(myrt_options: &str) -> Containerd {
        Containerd::start_cri_with_config_env(&[("MYRT_CRI_MYRT_OPTIONS", myrt_options)])
    }

    /// [`Containerd::start_cri`] with environment variables for `scripts/containerd.sh
    /// config-cri` (`MYRT_CRI_MYRT_OPTIONS`, `MYRT_CRI_MYRT_SECTION`: see that script).
    #[track_caller]
    pub fn start_cri_with_config_env(vars: &[(&str, &str)]) -> Containerd {
        assert!(
            is_isolated(),
            "Containerd::start_cri() outside a private mount + pid namespace: \
             begin the test with `if !myrt_tests::isolate() {{ return; }}`"
        );
        private_run_containerd();
        let bins = paths::bin_dir();
        assert!(
            bins.join(SHIM_BINARY).is_file(),
            "{SHIM_BINARY} not found in {}: build it (cargo build -p myrt-shim) or set \
             MYRT_BIN_DIR; the CRI tests run handler `myrt` next to `runc`",
            bins.display()
        );
        enter_private_netns();
        let dir = tempfile::Builder::new()
            .prefix("myrt-cri-")
            .tempdir_in("/tmp")
            .unwrap_or_else(|e| panic!("cannot create a temp dir in /tmp: {e}"));
        let path = dir.path().to_path_buf();
        command::run(
            Command::new(paths::scripts_dir().join("containerd.sh"))
                .arg("config-cri")
                .arg(&path)
                .env("MYRT_CONTAINERD", paths::containerd_binary())
                .envs(vars.iter().copied()),
            CTR_TIMEOUT,
        )
        .ok();
        let mut cd = Containerd {
            dir: Some(dir),
            path,
            namespace: crate::cri::CRI_NAMESPACE.to_string(),
            daemon: None,
            env: Vec::new(),
        };
        cd.start_daemon();
        cd.import_image();
        cd.import_archive(pause_image(), PAUSE_REF);
        cd
    }

    /// Imports an OCI archive into this instance's namespace; panics unless `reference` is
    /// then listed.
    #[track_caller]
    pub fn import_archive(&self, archive: &Path, reference: &str) {
        let archive = archive.to_string_lossy().into_owned();
        self.ctr(["images", "import", archive.as_str()]).ok();
        let list = self.ctr(["images", "ls", "-q"]).ok();
        assert!(
            list.stdout.lines().any(|l| l.trim() == reference),
            "importing {archive} did not create {reference}: {list}"
        );
    }

    /// The config.toml the daemon runs with (for a CRI instance: the plugin tables of
    /// `scripts/containerd.sh config-cri`, which differ between 1.x and 2.x).
    pub fn config_path(&self) -> PathBuf {
        self.path.join("config.toml")
    }

    /// The daemon's pid while it runs (e.g. to compare a pod's namespaces with its own).
    pub fn daemon_pid(&self) -> Option<Pid> {
        self.daemon
            .as_ref()
            .and_then(|c| i32::try_from(c.id()).ok())
            .and_then(Pid::new)
    }
}

/// Moves the calling thread into a new network namespace and brings its `lo` up (the CRI's
/// stream server binds 127.0.0.1). Namespaces are per thread: the rest of the test process
/// keeps its own, and children spawned from this thread inherit the new one.
#[track_caller]
fn enter_private_netns() {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .unwrap_or_else(|e| panic!("cannot unshare a network namespace: {e}"));
    command::run(
        Command::new("ip").args(["link", "set", "lo", "up"]),
        CTR_TIMEOUT,
    )
    .ok();
}
