//! The Kubernetes path: a pod's life through containerd's CRI plugin, driven the way kubelet
//! drives it (runtime.v1 over grpc), with the same assertions for handler `myrt`
//! (io.containerd.myrt.v1) and handler `runc` (io.containerd.runc.v2), on containerd 1.6, 1.7
//! and 2.1 (`MYRT_CONTAINERD=$(scripts/containerd-versions.sh fetch 2.1)`; where the versions
//! answer differently, e.g. 2.x's verbose sandbox info, the helpers below read both), on a
//! cgroup v1 host and on a pure cgroup v2 one.
//!
//! Run as root: `cargo test -p myrt-tests --test cri_pod -- --nocapture --test-threads=1`
//! (one test at a time keeps the printed latencies comparable). `MYRT_CRI_HANDLERS=myrt` (a
//! comma list, default `myrt,runc`) picks the handlers; the tests of the others skip loudly.
//! Each test runs in a private mount + pid namespace, and its containerd in a private network
//! namespace (Containerd::start_cri), where the CNI bridge lives (`lifecycle_*` needs it; the
//! host-network tests do not).

use std::fs;
use std::path::Path;
use std::time::Duration;

use myrt_runtime::cgroups::cpu_shares_to_weight;
use myrt_tests::cri::api::{ContainerState, LinuxContainerResources, NamespaceMode};
use myrt_tests::cri::{
    alive, cgroup_value, container_config, container_status, info_json, info_pid, is_unified,
    ns_link, pids, pod_spec, read_log, run_pod, settle, setup, start_app, status_field, teardown,
    wait_gone, Cri, LogLine, Pod, KEEPER,
};
use myrt_tests::{per_handler, IMAGE_REF};

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

/// Live pids in pid namespace `pidns` (a `/proc/PID/ns/pid` link) whose argv is exactly `argv`
/// (this test's pid namespace holds every container's).
fn procs_with_argv(pidns: &str, argv: &[&str]) -> Vec<u64> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    pids()
        .into_iter()
        .filter(|pid| fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want))
        .filter(|pid| alive(*pid))
        .filter(|pid| {
            fs::read_link(format!("/proc/{pid}/ns/pid")).is_ok_and(|l| l.to_string_lossy() == pidns)
        })
        .collect()
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
    settle(
        || match fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default() {
            seen if seen == want => Ok(()),
            seen => Err(format!(
                "pid {pid} runs {:?}, not {:?}",
                String::from_utf8_lossy(&seen),
                String::from_utf8_lossy(want)
            )),
        },
    )
}

/// The handler in a verbose PodSandboxStatus: `info["runtimeHandler"]` (1.x), else
/// `info["sandboxMetadata"]["Metadata"]["RuntimeHandler"]` (2.x moved it there).
fn info_runtime_handler(info: &serde_json::Value) -> &serde_json::Value {
    match &info["runtimeHandler"] {
        serde_json::Value::Null => &info["sandboxMetadata"]["Metadata"]["RuntimeHandler"],
        h => h,
    }
}

/// Waits until the CRI log holds at least `n` lines of each stream.
#[track_caller]
fn wait_log_lines(path: &Path, n: usize) -> Vec<LogLine> {
    settle(|| {
        let lines = read_log(path);
        let count = |s: &str| lines.iter().filter(|l| l.stream == s).count();
        if count("stdout") >= n && count("stderr") >= n {
            return Ok(lines);
        }
        Err(format!(
            "{} holds {} stdout and {} stderr lines after the start, want {n} each: {lines:?}",
            path.display(),
            count("stdout"),
            count("stderr")
        ))
    })
}

/// StopContainer (timed) with 10 s of grace: the container is EXITED with `code` at once.
#[track_caller]
fn stop_exits(cri: &Cri, pod: &Pod, id: &str, code: i32, why: &str) {
    pod.time("StopContainer", || {
        cri.stop_container(id, Duration::from_secs(10))
    });
    let s = container_status(cri, id);
    assert_eq!(
        (s.state, s.exit_code),
        (ContainerState::ContainerExited as i32, code),
        "{why}: {s:?}"
    );
}

// ---- a pod with its own network namespace: the whole life ----

fn check_lifecycle(handler: &str) {
    let (parent, cd, cri) = setup();
    let share = cd.dir().join("share");
    let log_dir = cd.dir().join("pod-logs");
    let pod_name = format!("pod-{handler}");

    // RunPodSandbox: READY, run by the handler asked for, with the CNI's address.
    let pod = run_pod(
        &cri,
        pod_spec(&pod_name, &cd, &parent, NamespaceMode::Pod),
        handler,
    );
    // containerd 1.6 predates the status field (CRI 1.27); later versions must set it.
    let version = cri
        .version()
        .unwrap_or_else(|e| panic!("Version: {e}"))
        .runtime_version;
    if !version.trim_start_matches('v').starts_with("1.6.") {
        assert_eq!(
            pod.status.runtime_handler, handler,
            "{version}: {:?}",
            pod.status
        );
    }
    let info = &pod.info;
    assert_eq!(info_runtime_handler(info), handler, "{info}");
    assert_eq!(info["runtimeType"], runtime_type(handler), "{info}");
    let pause = pod.pause;
    let ip = pod
        .status
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
    let (app, app_pid) = start_app(&cri, &pod, &app_config);
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
    assert_eq!(cinfo["sandboxID"], pod.id.as_str(), "{cinfo}");
    assert_eq!(cinfo["runtimeType"], runtime_type(handler), "{cinfo}");
    assert_eq!(info_pid(&cinfo), app_pid, "{cinfo}");
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
    let r = pod.time("ExecSync", || {
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
    let pod_pidns = ns_link(pause, "pid");
    settle(|| match procs_with_argv(&pod_pidns, &["sleep", "317"]) {
        left if left.is_empty() => Ok(()),
        left => Err(format!(
            "the timed-out exec's `sleep 317` still runs: {left:?}"
        )),
    });
    let running = cri
        .container_status(&app)
        .ok()
        .and_then(|s| s.status)
        .map(|s| s.state);
    assert_eq!(running, Some(ContainerState::ContainerRunning as i32));

    // StopContainer: SIGTERM reaches the app's trap well within the grace period.
    stop_exits(
        &cri,
        &pod,
        &app,
        0,
        "the app must have exited 0 from its TERM trap",
    );
    assert_eq!(
        fs::read_to_string(share.join("term")).unwrap_or_default(),
        "term\n",
        "the TERM trap did not run"
    );
    wait_gone(app_pid, "the app after StopContainer");

    pod.time("RemoveContainer", || cri.remove_container(&app));
    let left = cri
        .list_containers(Some(&pod.id))
        .unwrap_or_else(|e| panic!("ListContainers: {e}"));
    assert!(
        left.is_empty(),
        "containers left after RemoveContainer: {left:?}"
    );

    teardown(&cd, &cri, &pod, &[]);
    pod.print_timings();
}

per_handler!(check_lifecycle, lifecycle_myrt, lifecycle_runc);

// ---- a host-network pod: no netns of its own, containerd's network and UTS ----

fn check_host_network(handler: &str) {
    let (parent, cd, cri) = setup();
    let pod = run_pod(
        &cri,
        pod_spec(
            &format!("hostnet-{handler}"),
            &cd,
            &parent,
            NamespaceMode::Node,
        ),
        handler,
    );
    let pause = pod.pause;
    let daemon = cd.daemon_pid().expect("containerd runs").as_raw() as u64;
    for kind in ["net", "uts"] {
        assert_eq!(
            ns_link(pause, kind),
            ns_link(daemon, kind),
            "a host-network pause must stay in containerd's {kind} namespace"
        );
    }
    assert_ne!(ns_link(pause, "pid"), ns_link(daemon, "pid"));

    let app_config = container_config("app", IMAGE_REF, KEEPER, "app.log", &[]);
    let (app, app_pid) = start_app(&cri, &pod, &app_config);
    for kind in ["net", "uts"] {
        assert_eq!(ns_link(app_pid, kind), ns_link(daemon, kind), "{kind}");
    }
    assert_eq!(ns_link(app_pid, "pid"), ns_link(pause, "pid"));
    // The container sees containerd's interfaces, which this thread's namespace holds too.
    let r = pod.time("ExecSync", || {
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
    stop_exits(&cri, &pod, &app, 143, "sleep must have died of SIGTERM");
    pod.time("RemoveContainer", || cri.remove_container(&app));
    teardown(&cd, &cri, &pod, &[]);
    pod.print_timings();
}

per_handler!(check_host_network, host_network_myrt, host_network_runc);

// ---- stats and live resource updates through the shim ----

/// The cpu.weight that handler `handler` writes for cpu.shares `shares` on a unified host.
/// There is no cpu.shares on cgroup v2, so each runtime converts: myrt with the quadratic fit
/// of crun >= 1.23 and runc >= 1.3.2 (cgroups::cpu_shares_to_weight: 512 -> 59), older runc
/// (Debian's 1.1.5 here) with the linear map 1 + ((shares - 2) * 9999) / 262142 (512 -> 20).
fn cpu_weight_of(handler: &str, shares: u64) -> u64 {
    if handler == "myrt" || runc_version() >= (1, 3, 2) {
        cpu_shares_to_weight(shares)
    } else {
        1 + ((shares - 2) * 9999) / 262_142
    }
}

/// `runc --version`'s "runc version 1.1.5+ds1" as (1, 1, 5): the runc the runc shim runs.
fn runc_version() -> (u32, u32, u32) {
    let out = myrt_tests::command::run(
        std::process::Command::new("runc").arg("--version"),
        Duration::from_secs(10),
    )
    .ok();
    let first = out.stdout.lines().next().unwrap_or_default().to_string();
    let nums: Vec<u32> = first
        .trim_start_matches("runc version ")
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|n| n.parse().unwrap_or(0))
        .collect();
    match nums[..] {
        [major, minor, patch] => (major, minor, patch),
        _ => panic!("no runc version in {first:?}"),
    }
}

fn check_stats_and_update(handler: &str) {
    let (parent, cd, cri) = setup();
    let pod = run_pod(
        &cri,
        pod_spec(
            &format!("stats-{handler}"),
            &cd,
            &parent,
            NamespaceMode::Node,
        ),
        handler,
    );
    let app_config = container_config("app", IMAGE_REF, KEEPER, "app.log", &[]);
    let (app, _) = start_app(&cri, &pod, &app_config);
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
        .pod_sandbox_stats(&pod.id)
        .unwrap_or_else(|e| panic!("PodSandboxStats: {e}"));
    assert_eq!(
        pod_stats.attributes.as_ref().map(|a| a.id.as_str()),
        Some(pod.id.as_str()),
        "{pod_stats:?}"
    );

    // UpdateContainerResources: the shim writes the app's live cgroup.
    let resources = LinuxContainerResources {
        memory_limit_in_bytes: 64 << 20,
        cpu_shares: 512,
        ..Default::default()
    };
    cri.update_container_resources(&app, &resources)
        .unwrap_or_else(|e| panic!("UpdateContainerResources: {e}"));
    assert_eq!(
        cgroup_value(&cgroup, "memory", "memory.limit_in_bytes", "memory.max"),
        (64u64 << 20).to_string()
    );
    let cpu = cgroup_value(&cgroup, "cpu", "cpu.shares", "cpu.weight");
    if is_unified() {
        let want = cpu_weight_of(handler, 512);
        if handler == "myrt" {
            assert_eq!(want, 59, "cgroups::cpu_shares_to_weight(512)");
        }
        assert_eq!(cpu, want.to_string(), "cpu.weight of cpu.shares 512");
    } else {
        assert_eq!(cpu, "512");
    }

    cri.stop_container(&app, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("StopContainer: {e}"));
    cri.remove_container(&app)
        .unwrap_or_else(|e| panic!("RemoveContainer: {e}"));
    teardown(&cd, &cri, &pod, &[]);
}

per_handler!(
    check_stats_and_update,
    stats_and_update_myrt,
    stats_and_update_runc
);
