//! The scaffolding of the CRI suites (tests/tests/cri_*.rs): one test per handler, a private
//! containerd with CRI per test, a pod run the way kubelet runs it (timed, call by call), its
//! containers, ExecSync, and a teardown that leaves no process, shim or mount behind.

use std::cell::RefCell;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use super::api::{
    ContainerConfig, ContainerState, ContainerStatus, NamespaceMode, PodSandboxConfig,
    PodSandboxState, PodSandboxStatus,
};
use super::{
    alive, assert_no_mounts_under, container_config, info_json, info_pid, is_not_found, ppid,
    settle, wait_children, wait_gone, CgroupParent, Cri, CriResult, SETTLE,
};
use crate::{Containerd, IMAGE_REF, PAUSE_REF};

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

/// The shared start of a CRI test: a cgroup parent, containerd with CRI (dirs `pod-logs/` and
/// `share/` made in its temp dir), a client that sees both images. Bind them in this order so
/// the parent is removed last, after Containerd's drop has killed whatever a failed test left.
#[track_caller]
pub fn setup() -> (CgroupParent, Containerd, Cri) {
    setup_with_config_env(&[])
}

/// [`setup`] with environment variables for `scripts/containerd.sh config-cri` (see
/// [`Containerd::start_cri_with_config_env`]), e.g. `MYRT_CRI_EXTRA` for another handler.
#[track_caller]
pub fn setup_with_config_env(vars: &[(&str, &str)]) -> (CgroupParent, Containerd, Cri) {
    let cd = Containerd::start_cri_with_config_env(vars);
    let cri = Cri::connect(&cd.address());
    cri.wait_images(&[PAUSE_REF, IMAGE_REF], SETTLE);
    let v = cri.version().unwrap_or_else(|e| panic!("Version: {e}"));
    assert_eq!(v.runtime_name, "containerd", "{v:?}");
    assert_eq!(v.runtime_api_version, "v1", "{v:?}");
    let parent = CgroupParent(CgroupParent::path_for(&cd));
    for sub in ["pod-logs", "share"] {
        fs::create_dir_all(cd.dir().join(sub))
            .unwrap_or_else(|e| panic!("create {}: {e}", cd.dir().join(sub).display()));
    }
    (parent, cd, cri)
}

/// The latency of each CRI call of one pod's life, printed as one row of a table.
struct Timings {
    /// `handler/pod kind`, the row's label.
    label: String,
    rows: Vec<(&'static str, Duration)>,
}

/// A running pod: its id, the config kubelet sends again, its READY status (verbose `info`
/// parsed), the pause pid and its shim's pid, and the latency of each call made through it.
pub struct Pod {
    pub id: String,
    pub config: PodSandboxConfig,
    pub status: PodSandboxStatus,
    pub info: serde_json::Value,
    pub pause: u64,
    pub shim: u64,
    timings: RefCell<Timings>,
}

impl Pod {
    /// Runs one CRI call, keeps its latency, and panics with the call's name when it fails.
    #[track_caller]
    pub fn time<T>(&self, call: &'static str, f: impl FnOnce() -> CriResult<T>) -> T {
        let start = Instant::now();
        let result = f();
        let mut t = self.timings.borrow_mut();
        t.rows.push((call, start.elapsed()));
        result.unwrap_or_else(|e| panic!("{call} with handler {}: {e}", t.label))
    }

    /// Prints the latencies kept by [`Pod::time`] as a table of two lines.
    pub fn print_timings(&self) {
        let t = self.timings.borrow();
        let head: Vec<String> = t.rows.iter().map(|(c, _)| format!("{c:>16}")).collect();
        let vals: Vec<String> = t
            .rows
            .iter()
            .map(|(_, d)| format!("{:>13.1} ms", d.as_secs_f64() * 1000.0))
            .collect();
        eprintln!("CRI latency  {:>14} {}", "handler/pod", head.join(" "));
        eprintln!("CRI latency  {:>14} {}", t.label, vals.join(" "));
    }
}

/// RunPodSandbox (timed); the pod must be READY, its pause a child of a shim.
#[track_caller]
pub fn run_pod(cri: &Cri, config: PodSandboxConfig, handler: &str) -> Pod {
    let host_net = config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.as_ref())
        .is_some_and(|n| n.network == NamespaceMode::Node as i32);
    let label = format!("{handler}/{}", if host_net { "host-net" } else { "netns" });
    let start = Instant::now();
    let id = cri
        .run_pod_sandbox(&config, handler)
        .unwrap_or_else(|e| panic!("RunPodSandbox with handler {handler}: {e}"));
    let timings = RefCell::new(Timings {
        label,
        rows: vec![("RunPodSandbox", start.elapsed())],
    });
    let st = cri
        .pod_sandbox_status(&id)
        .unwrap_or_else(|e| panic!("PodSandboxStatus: {e}"));
    let status = st
        .status
        .clone()
        .unwrap_or_else(|| panic!("PodSandboxStatus without status: {st:?}"));
    assert_eq!(
        status.state,
        PodSandboxState::SandboxReady as i32,
        "{status:?}"
    );
    let info = info_json(&st.info);
    let pause = info_pid(&info);
    let shim = ppid(pause).unwrap_or_else(|| panic!("the pause (pid {pause}) has no parent"));
    Pod {
        id,
        config,
        status,
        info,
        pause,
        shim,
        timings,
    }
}

/// CreateContainer + StartContainer (timed); the container's id and pid.
#[track_caller]
pub fn start_app(cri: &Cri, pod: &Pod, config: &ContainerConfig) -> (String, u64) {
    let id = pod.time("CreateContainer", || {
        cri.create_container(&pod.id, config, &pod.config)
    });
    pod.time("StartContainer", || cri.start_container(&id));
    let cs = cri
        .container_status(&id)
        .unwrap_or_else(|e| panic!("ContainerStatus: {e}"));
    (id, info_pid(&info_json(&cs.info)))
}

/// Asserts that PodSandboxStatus of pod `id` answers state `want`; `when` ends the message
/// ("after StopPodSandbox": "pod X is not SANDBOX_NOTREADY after StopPodSandbox").
#[track_caller]
pub fn assert_pod_state(cri: &Cri, id: &str, want: PodSandboxState, when: &str) {
    let st = cri
        .pod_sandbox_status(id)
        .unwrap_or_else(|e| panic!("PodSandboxStatus {id} {when}: {e}"));
    assert_eq!(
        st.status.as_ref().map(|s| s.state),
        Some(want as i32),
        "pod {id} is not {} {when}: {st:?}",
        want.as_str_name()
    );
}

/// ContainerStatus of `id` (its status part); panics when the call fails.
#[track_caller]
pub fn container_status(cri: &Cri, id: &str) -> ContainerStatus {
    cri.container_status(id)
        .unwrap_or_else(|e| panic!("ContainerStatus {id}: {e}"))
        .status
        .unwrap_or_else(|| panic!("ContainerStatus {id} without status"))
}

/// Polls ContainerStatus until the container has exited; its first EXITED status.
#[track_caller]
pub fn wait_exited(cri: &Cri, id: &str) -> ContainerStatus {
    settle(|| match container_status(cri, id) {
        s if s.state == ContainerState::ContainerExited as i32 => Ok(s),
        s => Err(format!("container {id} has not exited: {s:?}")),
    })
}

/// Stops and removes the containers and the pod (see [`teardown_pod`]); then no shim and no
/// mount of this containerd is left.
#[track_caller]
pub fn teardown(cd: &Containerd, cri: &Cri, pod: &Pod, containers: &[&str]) {
    teardown_pod(cri, pod, containers);
    cd.wait_no_shims(SETTLE);
    assert_no_mounts_under(cd.dir());
}

/// StopContainer (no grace: SIGKILL at once) + RemoveContainer of `containers`, then
/// StopPodSandbox (timed; the pod is NOTREADY, its pause gone) and RemovePodSandbox (timed;
/// the pod's status is NOT_FOUND).
#[track_caller]
pub fn teardown_pod(cri: &Cri, pod: &Pod, containers: &[&str]) {
    for id in containers {
        cri.stop_container(id, Duration::ZERO)
            .unwrap_or_else(|e| panic!("StopContainer {id}: {e}"));
        cri.remove_container(id)
            .unwrap_or_else(|e| panic!("RemoveContainer {id}: {e}"));
    }
    pod.time("StopPodSandbox", || cri.stop_pod_sandbox(&pod.id));
    assert_pod_state(
        cri,
        &pod.id,
        PodSandboxState::SandboxNotready,
        "after StopPodSandbox",
    );
    wait_gone(pod.pause, "the pause after StopPodSandbox");
    pod.time("RemovePodSandbox", || cri.remove_pod_sandbox(&pod.id));
    match cri.pod_sandbox_status(&pod.id) {
        Err(e) if is_not_found(&e) => {}
        other => panic!("PodSandboxStatus of a removed sandbox must be NotFound: {other:?}"),
    }
}

// ---- ExecSync, and a pod that must keep serving after a failed call ----

/// How long an ExecSync of the suites may run.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(10);

/// The `keeper` app's command, a plain `sleep`.
pub const KEEPER: &[&str] = &["/bin/sleep", "1000"];

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

/// Starts the `keeper` app ([`KEEPER`]): the pod's other container, which must outlive what a
/// check does to the pod.
#[track_caller]
pub fn start_keeper(cri: &Cri, pod: &Pod) -> (String, u64) {
    start_app(
        cri,
        pod,
        &container_config("keeper", IMAGE_REF, KEEPER, "keeper.log", &[]),
    )
}

/// The pod still serves: READY, the same shim runs, `keeper` RUNNING with the same pid answers
/// ExecSync, and the shim has no children but `kids` (pause, keeper, ...).
#[track_caller]
pub fn assert_pod_serves(cri: &Cri, pod: &Pod, keeper: &str, keeper_pid: u64, kids: &[u64]) {
    assert_pod_state(cri, &pod.id, PodSandboxState::SandboxReady, "no longer");
    assert_keeper_serves(cri, pod, keeper, keeper_pid);
    wait_children(pod.shim, kids);
}

/// The shim runs and `keeper` is RUNNING with the same pid and answers ExecSync.
#[track_caller]
pub fn assert_keeper_serves(cri: &Cri, pod: &Pod, keeper: &str, keeper_pid: u64) {
    assert!(alive(pod.shim), "the pod's shim (pid {}) is gone", pod.shim);
    let cs = cri
        .container_status(keeper)
        .unwrap_or_else(|e| panic!("ContainerStatus keeper: {e}"));
    assert_eq!(
        cs.status.as_ref().map(|s| s.state),
        Some(ContainerState::ContainerRunning as i32),
        "{cs:?}"
    );
    assert_eq!(info_pid(&info_json(&cs.info)), keeper_pid);
    let r = sh(cri, keeper, "echo alive");
    assert_eq!((r.code, r.out.as_str()), (0, "alive\n"), "{r:?}");
}

/// Writes `content` to `path`, making its parent dirs.
#[track_caller]
pub fn write(path: &Path, content: &str) {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    }
    fs::write(path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}
