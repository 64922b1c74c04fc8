//! The Kubernetes path: a pod's life through containerd's CRI plugin, driven the way kubelet
//! drives it (runtime.v1 over grpc), with the same assertions for handler `myrt`
//! (io.containerd.myrt.v1) and handler `runc` (io.containerd.runc.v2), on containerd 1.6, 1.7
//! and 2.1 (`MYRT_CONTAINERD=$(scripts/containerd-versions.sh fetch 2.1)`; where the versions
//! answer differently, e.g. 2.x's verbose sandbox info, the helpers below read both).
//!
//! Run as root: `cargo test -p myrt-tests --test cri_pod -- --nocapture --test-threads=1`
//! (one test at a time keeps the printed latencies comparable). `MYRT_CRI_HANDLERS=myrt` (a
//! comma list, default `myrt,runc`) picks the handlers; the tests of the others skip loudly.
//! Each test runs in a private mount + pid namespace, and its containerd in a private network
//! namespace (Containerd::start_cri), where the CNI bridge lives.

use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use myrt_tests::containerd::mount_points;
use myrt_tests::cri::api::{ContainerState, NamespaceMode, PodSandboxState};
use myrt_tests::cri::{
    container_config, info_json, is_not_found, pod_config, read_log, remove_cgroup_parent, Cri,
    CriResult,
};
use myrt_tests::{isolate, Containerd, IMAGE_REF, PAUSE_REF};

const SETTLE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(25);

/// The app: a line to stdout and one to stderr every 0.2 s; on SIGTERM it writes /share/term
/// and exits 0 (the trap runs once the current `sleep` ends).
const APP: &str = "trap 'echo term > /share/term; exit 0' TERM; i=0; \
                   while true; do echo \"out $i\"; echo \"err $i\" >&2; i=$((i+1)); sleep 0.2; done";

fn runtime_type(handler: &str) -> &'static str {
    match handler {
        "myrt" => "io.containerd.myrt.v1",
        "runc" => "io.containerd.runc.v2",
        other => panic!("no runtime type known for handler {other:?}"),
    }
}

/// One test per handler (`myrt`, `runc`) running the same check, each isolated and selectable.
macro_rules! per_handler {
    ($check:ident, $myrt:ident, $runc:ident) => {
        #[test]
        fn $myrt() {
            if isolate() && selected("myrt") {
                $check("myrt");
            }
        }

        #[test]
        fn $runc() {
            if isolate() && selected("runc") {
                $check("runc");
            }
        }
    };
}

/// False (after a loud SKIP) when `MYRT_CRI_HANDLERS` leaves `handler` out.
fn selected(handler: &str) -> bool {
    let list = std::env::var("MYRT_CRI_HANDLERS").unwrap_or_default();
    let on = list.trim().is_empty() || list.split(',').any(|h| h.trim() == handler);
    if !on {
        eprintln!("SKIP: handler {handler} is not in MYRT_CRI_HANDLERS={list}");
    }
    on
}

/// The latency of each CRI call of one pod's life, printed as one row of a table.
struct Timings {
    /// `handler/pod kind`, the row's label.
    handler: String,
    rows: Vec<(&'static str, Duration)>,
}

impl Timings {
    fn new(handler: &str, kind: &str) -> Timings {
        Timings {
            handler: format!("{handler}/{kind}"),
            rows: Vec::new(),
        }
    }

    /// Runs one call, keeps its latency, and panics with the call's name when it fails.
    #[track_caller]
    fn time<T>(&mut self, call: &'static str, f: impl FnOnce() -> CriResult<T>) -> T {
        let start = Instant::now();
        let result = f();
        self.rows.push((call, start.elapsed()));
        result.unwrap_or_else(|e| panic!("{call} with handler {}: {e}", self.handler))
    }

    fn print(&self) {
        let head: Vec<String> = self.rows.iter().map(|(c, _)| format!("{c:>16}")).collect();
        let vals: Vec<String> = self
            .rows
            .iter()
            .map(|(_, d)| format!("{:>13.1} ms", d.as_secs_f64() * 1000.0))
            .collect();
        eprintln!("CRI latency  {:>14} {}", "handler/pod", head.join(" "));
        eprintln!("CRI latency  {:>14} {}", self.handler, vals.join(" "));
    }
}

/// Removes the pod's cgroup parent when the test ends, passed or not.
struct CgroupParent(String);

impl Drop for CgroupParent {
    fn drop(&mut self) {
        remove_cgroup_parent(&self.0);
    }
}

fn ns_link(pid: u64, kind: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|e| panic!("readlink /proc/{pid}/ns/{kind}: {e}"))
}

/// A `Name:` field of /proc/PID/status (e.g. PPid, NSpid), `None` once the process is gone.
fn status_field(pid: u64, name: &str) -> Option<String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(|v| v.trim().to_string())
}

fn alive(pid: u64) -> bool {
    status_field(pid, "State").is_some_and(|s| !s.starts_with('Z') && !s.starts_with('X'))
}

#[track_caller]
fn wait_gone(pid: u64, what: &str) {
    let deadline = Instant::now() + SETTLE;
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "{what} (pid {pid}) still runs {SETTLE:?} later"
        );
        thread::sleep(POLL);
    }
}

/// Live pids in pid namespace `pidns` (a `/proc/PID/ns/pid` link) whose argv is exactly `argv`
/// (this test's pid namespace holds every container's).
fn procs_with_argv(pidns: &str, argv: &[&str]) -> Vec<u64> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
                .filter(|pid| fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want))
                .filter(|pid| alive(*pid))
                .filter(|pid| {
                    fs::read_link(format!("/proc/{pid}/ns/pid"))
                        .is_ok_and(|l| l.to_string_lossy() == pidns)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The interfaces of this thread's network namespace (`ip -o link`), sorted.
fn own_interfaces() -> Vec<String> {
    let out = myrt_tests::command::run(
        std::process::Command::new("ip").args(["-o", "link"]),
        Duration::from_secs(10),
    )
    .ok();
    let mut names: Vec<String> = out
        .stdout
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect();
    names.sort();
    names
}

/// Waits until `/proc/PID/cmdline` is `want`: runc's `start` returns once `runc init` was told
/// to go on, a moment before it executes the container's process.
#[track_caller]
fn wait_cmdline(pid: u64, want: &[u8]) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let seen = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if seen == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "pid {pid} runs {:?}, not {:?}, {SETTLE:?} after its start",
            String::from_utf8_lossy(&seen),
            String::from_utf8_lossy(want)
        );
        thread::sleep(POLL);
    }
}

/// The handler in a verbose PodSandboxStatus: `info["runtimeHandler"]` (1.x), else
/// `info["sandboxMetadata"]["Metadata"]["RuntimeHandler"]` (2.x moved it there).
fn info_runtime_handler(info: &serde_json::Value) -> &serde_json::Value {
    match &info["runtimeHandler"] {
        serde_json::Value::Null => &info["sandboxMetadata"]["Metadata"]["RuntimeHandler"],
        h => h,
    }
}

/// `info["pid"]` of a verbose status.
#[track_caller]
fn info_pid(info: &serde_json::Value) -> u64 {
    let pid = info["pid"].as_u64().unwrap_or(0);
    assert!(pid > 0, "verbose info without a pid: {info}");
    pid
}

#[track_caller]
fn assert_no_mounts_under(dir: &Path) {
    let prefix = format!("{}/", dir.display());
    let left: Vec<String> = mount_points()
        .into_iter()
        .filter(|m| m.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "mounts left under {prefix}: {left:?}");
}

/// Waits until the CRI log holds at least `n` lines of each stream.
#[track_caller]
fn wait_log_lines(path: &Path, n: usize) -> Vec<myrt_tests::cri::LogLine> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let lines = read_log(path);
        let count = |s: &str| lines.iter().filter(|l| l.stream == s).count();
        if count("stdout") >= n && count("stderr") >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} holds {} stdout and {} stderr lines {SETTLE:?} after the start, want {n} each: {lines:?}",
            path.display(),
            count("stdout"),
            count("stderr")
        );
        thread::sleep(POLL);
    }
}

/// The shared start of every test: a cgroup parent, containerd with CRI and dirs of this
/// instance, a client that sees both images. Bind them in this order so the parent is removed
/// last, after Containerd's drop has killed whatever a failed test left.
fn setup() -> (CgroupParent, Containerd, Cri) {
    let cd = Containerd::start_cri();
    let cri = Cri::connect(&cd.address());
    cri.wait_images(&[PAUSE_REF, IMAGE_REF], SETTLE);
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

/// Stops and removes the sandbox; checks the pause process, the shim and every mount are gone.
#[track_caller]
/// RunPodSandbox (timed), then PodSandboxStatus, which must say READY: the pod's id, the verbose
/// response and its status.
fn run_ready_pod(
    cri: &Cri,
    t: &mut Timings,
    config: &myrt_tests::cri::api::PodSandboxConfig,
    handler: &str,
) -> (
    String,
    myrt_tests::cri::api::PodSandboxStatusResponse,
    myrt_tests::cri::api::PodSandboxStatus,
) {
    let pod = t.time("RunPodSandbox", || cri.run_pod_sandbox(config, handler));
    let st = cri
        .pod_sandbox_status(&pod)
        .unwrap_or_else(|e| panic!("PodSandboxStatus: {e}"));
    let status = st.status.clone().expect("PodSandboxStatus without status");
    assert_eq!(
        status.state,
        PodSandboxState::SandboxReady as i32,
        "{status:?}"
    );
    (pod, st, status)
}

fn teardown_pod(cd: &Containerd, cri: &Cri, t: &mut Timings, pod: &str, pause_pid: u64) {
    t.time("StopPodSandbox", || cri.stop_pod_sandbox(pod));
    let st = cri
        .pod_sandbox_status(pod)
        .unwrap_or_else(|e| panic!("PodSandboxStatus after stop: {e}"));
    let state = st.status.as_ref().map(|s| s.state);
    assert_eq!(
        state,
        Some(PodSandboxState::SandboxNotready as i32),
        "sandbox not NOTREADY after StopPodSandbox: {st:?}"
    );
    wait_gone(pause_pid, "the pause process after StopPodSandbox");
    t.time("RemovePodSandbox", || cri.remove_pod_sandbox(pod));
    match cri.pod_sandbox_status(pod) {
        Err(e) if is_not_found(&e) => {}
        other => panic!("PodSandboxStatus of a removed sandbox must be NotFound: {other:?}"),
    }
    cd.wait_no_shims(SETTLE);
    assert_no_mounts_under(cd.dir());
}

// ---- a pod with its own network namespace: the whole life ----

fn check_lifecycle(handler: &str) {
    let (parent, cd, cri) = setup();
    let mut t = Timings::new(handler, "netns");
    let share = cd.dir().join("share");
    let log_dir = cd.dir().join("pod-logs");
    let pod_name = format!("pod-{handler}");
    let config = pod_config(
        &pod_name,
        &format!("uid-{handler}-{}", std::process::id()),
        &log_dir,
        &parent.0,
        NamespaceMode::Pod,
    );

    // RunPodSandbox: READY, run by the handler asked for, with the CNI's address.
    let (pod, st, status) = run_ready_pod(&cri, &mut t, &config, handler);
    // containerd 1.6 predates the status field (CRI 1.27); later versions must set it.
    let version = cri
        .version()
        .unwrap_or_else(|e| panic!("Version: {e}"))
        .runtime_version;
    if !version.trim_start_matches('v').starts_with("1.6.") {
        assert_eq!(status.runtime_handler, handler, "{version}: {status:?}");
    }
    let info = info_json(&st.info);
    assert_eq!(info_runtime_handler(&info), handler, "{info}");
    assert_eq!(info["runtimeType"], runtime_type(handler), "{info}");
    let pause = info_pid(&info);
    let ip = status
        .network
        .as_ref()
        .map(|n| n.ip.clone())
        .unwrap_or_default();
    assert!(
        ip.starts_with("10.88.77."),
        "the pod has no address of the CNI range 10.88.77.0/24: {ip:?}"
    );
    let daemon = cd.daemon_pid().expect("containerd runs").as_raw() as u64;
    assert_ne!(
        ns_link(pause, "net"),
        ns_link(daemon, "net"),
        "the pod shares containerd's network namespace"
    );
    wait_cmdline(pause, b"/pause\0");
    let nspid = status_field(pause, "NSpid").unwrap_or_default();
    assert!(
        nspid.ends_with("\t1") || nspid.ends_with(" 1"),
        "pause is not pid 1 of the pod's pid namespace: NSpid {nspid:?}"
    );

    // CreateContainer + StartContainer: it runs in the pod's namespaces.
    let app_config = container_config(
        "app",
        IMAGE_REF,
        &["/bin/sh", "-c", APP],
        "app.log",
        &[(&share, "/share")],
    );
    let app = t.time("CreateContainer", || {
        cri.create_container(&pod, &app_config, &config)
    });
    t.time("StartContainer", || cri.start_container(&app));
    let cs = cri
        .container_status(&app)
        .unwrap_or_else(|e| panic!("ContainerStatus: {e}"));
    let cstatus = cs.status.clone().expect("ContainerStatus without status");
    assert_eq!(
        cstatus.state,
        ContainerState::ContainerRunning as i32,
        "{cstatus:?}"
    );
    let cinfo = info_json(&cs.info);
    assert_eq!(cinfo["sandboxID"], pod.as_str(), "{cinfo}");
    assert_eq!(cinfo["runtimeType"], runtime_type(handler), "{cinfo}");
    let app_pid = info_pid(&cinfo);
    for kind in ["net", "ipc", "uts", "pid"] {
        assert_eq!(
            ns_link(app_pid, kind),
            ns_link(pause, kind),
            "the app is not in the pod's {kind} namespace"
        );
    }
    assert_ne!(ns_link(app_pid, "mnt"), ns_link(pause, "mnt"));

    // One shim serves the pod: it is the parent of the pause and of the app.
    let shims = cd.shim_pids();
    assert_eq!(
        shims.len(),
        1,
        "want one shim for the pod (sandbox + app), found {shims:?}"
    );
    let shim = shims[0].as_raw().to_string();
    assert_eq!(
        status_field(pause, "PPid"),
        Some(shim.clone()),
        "pause's parent"
    );
    assert_eq!(
        status_field(app_pid, "PPid"),
        Some(shim),
        "the app's parent"
    );

    // The CRI log keeps stdout and stderr apart, whole lines.
    let lines = wait_log_lines(&log_dir.join("app.log"), 3);
    for l in &lines {
        assert_eq!(l.tag, "F", "{l:?}");
        let want = if l.stream == "stdout" { "out " } else { "err " };
        assert!(
            l.content.starts_with(want),
            "a line on the wrong stream: {l:?}"
        );
    }

    // ExecSync: exit code and both streams; it sees the pod's hostname and the app's env.
    let r = t.time("ExecSync", || {
        cri.exec_sync(
            &app,
            &["/bin/sh", "-c", "echo hello; echo oops >&2; exit 3"],
            Duration::from_secs(10),
        )
    });
    assert_eq!(
        (r.exit_code, r.stdout.as_slice(), r.stderr.as_slice()),
        (3, &b"hello\n"[..], &b"oops\n"[..]),
        "ExecSync: {r:?}"
    );
    let r = cri
        .exec_sync(
            &app,
            &["/bin/sh", "-c", "hostname; echo $MYRT_TEST"],
            Duration::from_secs(10),
        )
        .unwrap_or_else(|e| panic!("ExecSync hostname: {e}"));
    assert_eq!(
        String::from_utf8_lossy(&r.stdout),
        format!("{pod_name}\napp\n"),
        "{r:?}"
    );

    // ExecSync past its timeout: an error, and the exec's process is killed.
    let err = cri
        .exec_sync(
            &app,
            &["/bin/sh", "-c", "echo $$ > /share/exec.pid; exec sleep 317"],
            Duration::from_secs(1),
        )
        .expect_err("ExecSync of `sleep 317` with a 1 s timeout must fail");
    assert!(err.message().contains("timeout"), "{err:?}");
    assert!(
        share.join("exec.pid").is_file(),
        "the timed-out exec never ran"
    );
    let deadline = Instant::now() + SETTLE;
    let pod_pidns = ns_link(pause, "pid");
    while !procs_with_argv(&pod_pidns, &["sleep", "317"]).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the timed-out exec's `sleep 317` still runs {SETTLE:?} later"
        );
        thread::sleep(POLL);
    }
    let running = cri
        .container_status(&app)
        .ok()
        .and_then(|s| s.status)
        .map(|s| s.state);
    assert_eq!(running, Some(ContainerState::ContainerRunning as i32));

    // StopContainer: SIGTERM reaches the app's trap well within the grace period.
    t.time("StopContainer", || {
        cri.stop_container(&app, Duration::from_secs(10))
    });
    let cstatus = cri
        .container_status(&app)
        .unwrap_or_else(|e| panic!("ContainerStatus after stop: {e}"))
        .status
        .expect("ContainerStatus without status");
    assert_eq!(
        (cstatus.state, cstatus.exit_code),
        (ContainerState::ContainerExited as i32, 0),
        "the app must have exited 0 from its TERM trap: {cstatus:?}"
    );
    assert_eq!(
        fs::read_to_string(share.join("term")).unwrap_or_default(),
        "term\n",
        "the TERM trap did not run"
    );
    wait_gone(app_pid, "the app after StopContainer");

    t.time("RemoveContainer", || cri.remove_container(&app));
    let left = cri
        .list_containers(Some(&pod))
        .unwrap_or_else(|e| panic!("ListContainers: {e}"));
    assert!(
        left.is_empty(),
        "containers left after RemoveContainer: {left:?}"
    );

    teardown_pod(&cd, &cri, &mut t, &pod, pause);
    t.print();
}

per_handler!(check_lifecycle, lifecycle_myrt, lifecycle_runc);

// ---- a host-network pod: no netns of its own, containerd's network and UTS ----

fn check_host_network(handler: &str) {
    let (parent, cd, cri) = setup();
    let mut t = Timings::new(handler, "host-net");
    let config = pod_config(
        &format!("hostnet-{handler}"),
        &format!("uid-hostnet-{handler}-{}", std::process::id()),
        &cd.dir().join("pod-logs"),
        &parent.0,
        NamespaceMode::Node,
    );
    let (pod, st, _) = run_ready_pod(&cri, &mut t, &config, handler);
    let pause = info_pid(&info_json(&st.info));
    let daemon = cd.daemon_pid().expect("containerd runs").as_raw() as u64;
    for kind in ["net", "uts"] {
        assert_eq!(
            ns_link(pause, kind),
            ns_link(daemon, kind),
            "a host-network pause must stay in containerd's {kind} namespace"
        );
    }
    assert_ne!(ns_link(pause, "pid"), ns_link(daemon, "pid"));

    let app_config = container_config("app", IMAGE_REF, &["/bin/sleep", "1000"], "app.log", &[]);
    let app = t.time("CreateContainer", || {
        cri.create_container(&pod, &app_config, &config)
    });
    t.time("StartContainer", || cri.start_container(&app));
    let app_pid = info_pid(&info_json(
        &cri.container_status(&app)
            .unwrap_or_else(|e| panic!("ContainerStatus: {e}"))
            .info,
    ));
    for kind in ["net", "uts"] {
        assert_eq!(ns_link(app_pid, kind), ns_link(daemon, kind), "{kind}");
    }
    assert_eq!(ns_link(app_pid, "pid"), ns_link(pause, "pid"));
    // The container sees containerd's interfaces, which this thread's namespace holds too.
    let r = t.time("ExecSync", || {
        cri.exec_sync(
            &app,
            &["/bin/ls", "/sys/class/net"],
            Duration::from_secs(10),
        )
    });
    assert_eq!(r.exit_code, 0, "{r:?}");
    let mut seen: Vec<String> = String::from_utf8_lossy(&r.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    seen.sort();
    assert_eq!(seen, own_interfaces(), "the container's /sys/class/net");
    // `sleep` has no handler for TERM: the default action ends it well within the grace.
    t.time("StopContainer", || {
        cri.stop_container(&app, Duration::from_secs(10))
    });
    let cstatus = cri
        .container_status(&app)
        .unwrap_or_else(|e| panic!("ContainerStatus after stop: {e}"))
        .status
        .expect("ContainerStatus without status");
    assert_eq!(
        (cstatus.state, cstatus.exit_code),
        (ContainerState::ContainerExited as i32, 143),
        "{cstatus:?}"
    );
    t.time("RemoveContainer", || cri.remove_container(&app));
    teardown_pod(&cd, &cri, &mut t, &pod, pause);
    t.print();
}

per_handler!(check_host_network, host_network_myrt, host_network_runc);

// ---- stats and live resource updates through the shim ----

/// `/sys/fs/cgroup/<controller><cgroupsPath>/<file>`, trimmed.
fn cgroup_value(controller: &str, path: &str, file: &str) -> String {
    let p = format!("/sys/fs/cgroup/{controller}{path}/{file}");
    fs::read_to_string(&p)
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|e| panic!("read {p}: {e}"))
}

fn check_stats_and_update(handler: &str) {
    let (parent, cd, cri) = setup();
    let config = pod_config(
        &format!("stats-{handler}"),
        &format!("uid-stats-{handler}-{}", std::process::id()),
        &cd.dir().join("pod-logs"),
        &parent.0,
        NamespaceMode::Node,
    );
    let pod = cri
        .run_pod_sandbox(&config, handler)
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}"));
    let pause = info_pid(&info_json(
        &cri.pod_sandbox_status(&pod)
            .unwrap_or_else(|e| panic!("PodSandboxStatus: {e}"))
            .info,
    ));
    let app_config = container_config("app", IMAGE_REF, &["/bin/sleep", "1000"], "app.log", &[]);
    let app = cri
        .create_container(&pod, &app_config, &config)
        .unwrap_or_else(|e| panic!("CreateContainer: {e}"));
    cri.start_container(&app)
        .unwrap_or_else(|e| panic!("StartContainer: {e}"));
    let cinfo = info_json(
        &cri.container_status(&app)
            .unwrap_or_else(|e| panic!("ContainerStatus: {e}"))
            .info,
    );
    let cgroup = cinfo["runtimeSpec"]["linux"]["cgroupsPath"]
        .as_str()
        .unwrap_or_else(|| panic!("no runtimeSpec.linux.cgroupsPath in {cinfo}"))
        .to_string();
    assert!(
        cgroup.starts_with(&parent.0),
        "{cgroup} is not under the pod's parent {}",
        parent.0
    );

    // ContainerStats: the shim's metrics of the app's cgroup.
    let stats = cri
        .container_stats(&app)
        .unwrap_or_else(|e| panic!("ContainerStats: {e}"));
    assert_eq!(
        stats.attributes.as_ref().map(|a| a.id.as_str()),
        Some(app.as_str())
    );
    let memory = stats
        .memory
        .as_ref()
        .and_then(|m| m.working_set_bytes.as_ref())
        .map(|v| v.value);
    assert!(
        memory.is_some_and(|m| m > 0),
        "no memory working set: {stats:?}"
    );
    let cpu = stats
        .cpu
        .as_ref()
        .and_then(|c| c.usage_core_nano_seconds.as_ref())
        .map(|v| v.value);
    assert!(cpu.is_some_and(|c| c > 0), "no cpu usage: {stats:?}");
    let pod_stats = cri
        .pod_sandbox_stats(&pod)
        .unwrap_or_else(|e| panic!("PodSandboxStats: {e}"));
    assert_eq!(
        pod_stats.attributes.as_ref().map(|a| a.id.as_str()),
        Some(pod.as_str()),
        "{pod_stats:?}"
    );

    // UpdateContainerResources: the shim writes the app's live cgroup.
    let resources = myrt_tests::cri::api::LinuxContainerResources {
        memory_limit_in_bytes: 64 << 20,
        cpu_shares: 512,
        ..Default::default()
    };
    cri.update_container_resources(&app, &resources)
        .unwrap_or_else(|e| panic!("UpdateContainerResources: {e}"));
    assert_eq!(
        cgroup_value("memory", &cgroup, "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    assert_eq!(cgroup_value("cpu", &cgroup, "cpu.shares"), "512");

    cri.stop_container(&app, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("StopContainer: {e}"));
    cri.remove_container(&app)
        .unwrap_or_else(|e| panic!("RemoveContainer: {e}"));
    teardown_pod(&cd, &cri, &mut Timings::new(handler, "stats"), &pod, pause);
}

per_handler!(
    check_stats_and_update,
    stats_and_update_myrt,
    stats_and_update_runc
);
