//! Shared helpers of the engine tests: isolation in a private mount + pid namespace, a busybox
//! bundle per test, and running the `myrt` binary.
//!
//! Every test that starts containers calls [`isolate`] first: the test then runs as the init of
//! a private mount + pid namespace of its own, so no mount leaks to the host, no signal reaches
//! a host process, and every process it left behind dies with it.

#![allow(dead_code)]

use std::cell::Cell;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long one `myrt` command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

pub const BUSYBOX: &str = "/bin/busybox";

pub fn myrt_bin() -> &'static str {
    env!("CARGO_BIN_EXE_myrt")
}

/// Call first in every test that starts containers; run the body only when it returns true.
/// The test runs as the init of a private mount + pid namespace of its own (see
/// `myrt_tests::isolation`), so no mount or signal reaches the host and nothing outlives it.
#[track_caller]
pub fn isolate() -> bool {
    myrt_tests::isolate_in(myrt_tests::Scope::OwnInit)
}

/// Runs `cmd` with stdin from /dev/null and stdout/stderr into files (a detached container keeps
/// them open, so pipes would never reach EOF); kills it after `timeout`.
fn run_to_files(
    cmd: &mut Command,
    out: &Path,
    err: &Path,
    timeout: Duration,
) -> (ExitStatus, bool) {
    cmd.stdin(Stdio::null())
        .stdout(fs::File::create(out).expect("create stdout file"))
        .stderr(fs::File::create(err).expect("create stderr file"));
    let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    wait_timeout(child, timeout)
}

/// Waits for `child`, SIGKILLing it after `timeout`; returns its status and whether it timed out.
pub fn wait_timeout(mut child: Child, timeout: Duration) -> (ExitStatus, bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            return (status, false);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return (child.wait().expect("wait for killed child"), true);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What a `myrt` command did.
#[derive(Debug)]
pub struct Out {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn success(&self) -> bool {
        self.status.success()
    }
}

/// One test's world: a state root, a busybox bundle, a container id and a cgroup path of its own.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub bundle: PathBuf,
    pub id: String,
    /// linux.cgroupsPath, absolute, so its directories are known: /sys/fs/cgroup/*/<name>.
    pub cgroup: String,
    calls: Cell<u32>,
}

impl Env {
    /// A bundle whose config is `myrt spec`'s, with terminal off, a writable root, the given
    /// args and a cgroup path unique to this test.
    pub fn new(tag: &str, args: &[&str]) -> Env {
        let dir = tempfile::Builder::new()
            .prefix("myrt-test-")
            .tempdir()
            .expect("temp dir");
        // A container in a user namespace must be able to reach its rootfs.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let suffix: String = dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        let id = format!("{tag}-{suffix}");
        let env = Env {
            root: dir.path().join("state"),
            bundle: dir.path().join("bundle"),
            cgroup: format!("/myrt-test-{id}"),
            id,
            dir,
            calls: Cell::new(0),
        };
        make_rootfs(&env.bundle.join("rootfs"));
        let out = env.myrt(&["spec", "--bundle", env.bundle.to_str().expect("utf-8 path")]);
        assert!(out.success(), "myrt spec failed: {out:?}");
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let cgroup = env.cgroup.clone();
        env.edit(|c| {
            c["process"]["terminal"] = json!(false);
            c["process"]["args"] = json!(args);
            c["root"]["readonly"] = json!(false);
            c["linux"]["cgroupsPath"] = json!(cgroup);
        });
        env
    }

    /// The same env with another state root (to put several containers under one root).
    pub fn with_root(mut self, root: PathBuf) -> Env {
        self.root = root;
        self
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn bundle_str(&self) -> &str {
        self.bundle.to_str().expect("utf-8 path")
    }

    pub fn config(&self) -> Value {
        let data = fs::read(self.bundle.join("config.json")).expect("read config.json");
        serde_json::from_slice(&data).expect("config.json is JSON")
    }

    pub fn edit(&self, f: impl FnOnce(&mut Value)) {
        let mut c = self.config();
        f(&mut c);
        fs::write(
            self.bundle.join("config.json"),
            serde_json::to_vec_pretty(&c).expect("serialize config"),
        )
        .expect("write config.json");
    }

    /// Runs `myrt --root <root> <args>`.
    pub fn myrt(&self, args: &[&str]) -> Out {
        self.myrt_timeout(args, COMMAND_TIMEOUT)
    }

    pub fn myrt_timeout(&self, args: &[&str], timeout: Duration) -> Out {
        let n = self.calls.get();
        self.calls.set(n + 1);
        let (out, err) = (
            self.path(&format!("out.{n}")),
            self.path(&format!("err.{n}")),
        );
        let mut cmd = self.command(args);
        let (status, timed_out) = run_to_files(&mut cmd, &out, &err, timeout);
        let res = Out {
            status,
            stdout: fs::read_to_string(&out).unwrap_or_default(),
            stderr: fs::read_to_string(&err).unwrap_or_default(),
        };
        assert!(!timed_out, "myrt {args:?} timed out: {res:?}");
        res
    }

    /// A `myrt --root <root> <args>` command to spawn by hand.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(myrt_bin());
        cmd.arg("--root").arg(&self.root).args(args);
        cmd
    }

    /// Runs a command that must succeed; returns its stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.myrt(args);
        assert!(out.success(), "myrt {args:?} failed: {out:?}");
        out.stdout
    }

    /// Runs a command that must fail; returns its stderr.
    #[track_caller]
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.myrt(args);
        assert!(!out.success(), "myrt {args:?} succeeded: {out:?}");
        assert!(
            !out.stderr.trim().is_empty(),
            "myrt {args:?} failed silently"
        );
        out.stderr
    }

    /// `myrt create` of this env's container; `extra` goes before the id.
    #[track_caller]
    pub fn create(&self, extra: &[&str]) {
        let mut args = vec!["create", "--bundle", self.bundle_str()];
        args.extend_from_slice(extra);
        args.push(&self.id);
        self.ok(&args);
    }

    /// `myrt run` (foreground unless `extra` says -d) of this env's container.
    pub fn run(&self, extra: &[&str]) -> Out {
        let mut args = vec!["run", "--bundle", self.bundle_str()];
        args.extend_from_slice(extra);
        args.push(&self.id);
        self.myrt(&args)
    }

    /// Runs the container in the foreground; it must exit 0 and leave nothing; returns stdout.
    #[track_caller]
    pub fn run_ok(&self) -> String {
        let out = self.run(&[]);
        assert_eq!(out.code(), Some(0), "{out:?}");
        self.assert_gone();
        out.stdout
    }

    /// `myrt state`, parsed; `None` when the command fails.
    pub fn state(&self) -> Option<Value> {
        let out = self.myrt(&["state", &self.id]);
        if !out.success() {
            return None;
        }
        Some(
            serde_json::from_str(&out.stdout)
                .unwrap_or_else(|e| panic!("state output is not JSON ({e}): {:?}", out.stdout)),
        )
    }

    #[track_caller]
    pub fn status(&self) -> String {
        let s = self.state().expect("container exists");
        s["status"]
            .as_str()
            .expect("status is a string")
            .to_string()
    }

    #[track_caller]
    pub fn pid(&self) -> i32 {
        let s = self.state().expect("container exists");
        s["pid"].as_i64().expect("pid is a number") as i32
    }

    /// Waits (bounded) until the container reports `status`.
    #[track_caller]
    pub fn wait_status(&self, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = self.status();
            if now == status {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "status stayed {now}, expected {status}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// This container's cgroup directories that exist now.
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        cgroup_mounts()
            .into_iter()
            .map(|m| m.join(self.cgroup.trim_start_matches('/')))
            .filter(|p| p.exists())
            .collect()
    }

    /// Nothing of the container is left: no state dir, no cgroup dir, no process.
    #[track_caller]
    pub fn assert_gone(&self) {
        assert!(
            !self.root.join(&self.id).exists(),
            "state dir {} left behind",
            self.root.join(&self.id).display()
        );
        assert_eq!(
            self.cgroup_dirs(),
            Vec::<PathBuf>::new(),
            "cgroup dirs left behind"
        );
        assert_no_processes();
        assert!(self.state().is_none(), "state still answers");
    }

    /// Bind-mounts a fresh host directory (mode 0777) at /out in the container; returns its path.
    pub fn share_out(&self) -> PathBuf {
        let out = self.path("shared");
        fs::create_dir_all(&out).expect("mkdir shared");
        fs::set_permissions(&out, fs::Permissions::from_mode(0o777)).expect("chmod shared");
        let src = out.to_str().expect("utf-8").to_string();
        self.edit(|c| {
            c["mounts"].as_array_mut().expect("mounts").push(json!({
                "destination": "/out", "type": "bind", "source": src,
                "options": ["rbind", "rw"]
            }));
        });
        out
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Best effort: a failed test must not leave a cgroup on the host.
        let _ = self
            .command(&["delete", "--force", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// True on a pure cgroup v2 host (the QEMU guest), false on this v1 hybrid host.
pub fn is_v2() -> bool {
    !Path::new("/sys/fs/cgroup/pids").exists()
        && Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// A cgroup file of the cgroupsPath `cgroup`: `<v1 controller>/<cgroup>/<v1 file>` on v1,
/// `<cgroup>/<v2 file>` on v2.
pub fn cg_file(cgroup: &str, controller: &str, v1: &str, v2: &str) -> PathBuf {
    let rel = cgroup.trim_start_matches('/');
    if is_v2() {
        Path::new("/sys/fs/cgroup").join(rel).join(v2)
    } else {
        Path::new("/sys/fs/cgroup")
            .join(controller)
            .join(rel)
            .join(v1)
    }
}

/// The cgroup mount points of this host (v1 controllers, the v2 or hybrid unified mount).
pub fn cgroup_mounts() -> Vec<PathBuf> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    info.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let fstype = post.split(' ').next()?;
            let mountpoint = pre.split(' ').nth(4)?;
            (fstype == "cgroup" || fstype == "cgroup2").then(|| PathBuf::from(mountpoint))
        })
        .collect()
}

/// Reaps zombies (the test is the namespace's init) and asserts that no other process is left
/// in the test's pid namespace, waiting a little for processes being killed.
#[track_caller]
pub fn assert_no_processes() {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        reap_zombies();
        let others = other_processes();
        if others.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "processes left behind: {others:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn reap_zombies() {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    // Only in the isolated test process, which has no child it still waits for here.
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

/// Every process of this pid namespace except the test itself: (pid, cmdline).
pub fn other_processes() -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .map(|pid| {
            let cmd = fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                .unwrap_or_default();
            (pid, cmd)
        })
        .collect()
}

/// A busybox root: /bin/busybox with a symlink per applet, and the usual empty directories.
pub fn make_rootfs(rootfs: &Path) {
    let bin = rootfs.join("bin");
    fs::create_dir_all(&bin).expect("mkdir rootfs/bin");
    fs::copy(BUSYBOX, bin.join("busybox")).expect("copy busybox (install busybox-static)");
    let list = Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" && !applet.is_empty() {
            symlink("busybox", bin.join(applet)).expect("applet symlink");
        }
    }
    for d in ["proc", "sys", "dev", "tmp", "etc", "root", "out"] {
        fs::create_dir_all(rootfs.join(d)).expect("mkdir in rootfs");
    }
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777)).expect("chmod");
    fs::write(rootfs.join("etc/hostname"), "").expect("etc/hostname");
}

/// Reads a file until it holds `want` (bounded); returns its last content.
pub fn wait_for_file(path: &Path, want: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = fs::read_to_string(path).unwrap_or_default();
        if want(&text) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Accepts one connection on `listener` (30 s at most) and receives the pty master the
/// runtime sends over it.
pub fn accept_console(
    listener: &std::os::unix::net::UnixListener,
) -> Result<std::os::fd::OwnedFd, String> {
    use std::os::fd::AsFd;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let conn = loop {
        match listener.accept() {
            Ok((conn, _)) => break conn,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    return Err("nobody connected to the console socket".into());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(format!("accept: {e}")),
        }
    };
    conn.set_nonblocking(false).map_err(|e| e.to_string())?;
    myrt_runtime::tty::recv_console(conn.as_fd())
        .map(|(fd, _)| fd)
        .map_err(|e| e.to_string())
}

/// Adds a new namespace of `typ` to a config.json being edited (see [`Env::edit`]).
pub fn add_namespace(config: &mut Value, typ: &str) {
    config["linux"]["namespaces"]
        .as_array_mut()
        .expect("linux.namespaces is an array")
        .push(json!({ "type": typ }));
}
