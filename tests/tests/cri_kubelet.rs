//! What kubelet relies on beyond a pod's plain life (cri_pod.rs): its volumes and the CRI's
//! masked and read-only paths, the OOMKilled reason, a containerd restart under a running pod,
//! and bad pod specs that must fail one call with a message naming what is wrong while the
//! pod's other containers and its shim keep serving. The same assertions run for handler
//! `myrt` (io.containerd.myrt.v1) and handler `runc` (io.containerd.runc.v2); where runc
//! behaves differently by design, each handler's own behaviour is asserted and said so.
//!
//! Run as root: `cargo test -p myrt-tests --test cri_kubelet -- --test-threads=1 --nocapture`
//! after `cargo build -p myrt-shim -p myrt-runtime`. `MYRT_CRI_HANDLERS=myrt` picks handlers.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use myrt_runtime::Pid;
use myrt_tests::containerd::mount_points;
use myrt_tests::cri::api::security_profile::ProfileType;
use myrt_tests::cri::api::{
    ContainerConfig, ContainerState, DnsConfig, LinuxContainerResources,
    LinuxContainerSecurityContext, NamespaceMode, NamespaceOption, PodSandboxConfig,
    PodSandboxState, SecurityProfile,
};
use myrt_tests::cri::{
    alive, assert_no_mounts_under, container_config, container_status, containerd_major, info_json,
    info_pid, mount_at, mountinfo, pod_config, run_pod, setup, sh, start_app, teardown,
    teardown_pod, volume, wait_children, wait_exited, wait_gone, with_linux, CgroupParent, Cri,
    Pod, SETTLE,
};
use myrt_tests::{per_handler, Containerd, IMAGE_REF};
use nix::sys::signal::Signal;

const POLL: Duration = Duration::from_millis(25);
const KEEPER: &[&str] = &["/bin/sleep", "1000"];

/// kubelet's default masked and read-only paths, sent in every unprivileged container's
/// security context (the CRI plugin sets none of its own: containerd issue 5029).
const MASKED: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
const READONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

// ---- helpers ----

/// Runs `script`, which must fail with EROFS ("Read-only file system").
#[track_caller]
fn assert_erofs(cri: &Cri, id: &str, script: &str) {
    let r = sh(cri, id, script);
    assert!(
        r.code != 0 && r.err.contains("Read-only file system"),
        "{script:?} must fail with EROFS: {r:?}"
    );
}

/// A pod config (see `pod_config`) with network mode `net`, its logs and cgroup of this test.
fn pod_spec(
    name: &str,
    cd: &Containerd,
    parent: &CgroupParent,
    net: NamespaceMode,
) -> PodSandboxConfig {
    pod_config(
        name,
        &format!("uid-{name}-{}", std::process::id()),
        &cd.dir().join("pod-logs"),
        &parent.0,
        net,
    )
}

/// The `keeper` app, a plain `sleep`: the pod's other container in the bad-input checks.
#[track_caller]
fn start_keeper(cri: &Cri, pod: &Pod) -> (String, u64) {
    start_app(
        cri,
        pod,
        &container_config("keeper", IMAGE_REF, KEEPER, "keeper.log", &[]),
    )
}

/// The pod still serves: READY, the same shim runs, `keeper` RUNNING with the same pid answers
/// ExecSync, and the shim has no children but `kids` (pause, keeper, ...).
#[track_caller]
fn assert_pod_serves(cri: &Cri, pod: &Pod, keeper: &str, keeper_pid: u64, kids: &[u64]) {
    let st = cri
        .pod_sandbox_status(&pod.id)
        .unwrap_or_else(|e| panic!("PodSandboxStatus: {e}"));
    assert_eq!(
        st.status.as_ref().map(|s| s.state),
        Some(PodSandboxState::SandboxReady as i32),
        "the pod is no longer READY: {st:?}"
    );
    assert_keeper_serves(cri, pod, keeper, keeper_pid);
    wait_children(pod.shim, kids);
}

/// The shim runs and `keeper` is RUNNING with the same pid and answers ExecSync.
#[track_caller]
fn assert_keeper_serves(cri: &Cri, pod: &Pod, keeper: &str, keeper_pid: u64) {
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

/// No mount of container `id` is left (its rootfs lives at `<state>/…/k8s.io/<id>/rootfs`).
#[track_caller]
fn assert_no_mounts_of(cd: &Containerd, id: &str) {
    let prefix = format!("{}/", cd.dir().display());
    let left: Vec<String> = mount_points()
        .into_iter()
        .filter(|m| m.starts_with(&prefix) && m.contains(id))
        .collect();
    assert!(left.is_empty(), "mounts of container {id} left: {left:?}");
}

/// Only `running` containers of the pod are RUNNING.
#[track_caller]
fn assert_running_only(cri: &Cri, pod: &Pod, running: &[&str]) {
    let mut seen: Vec<String> = cri
        .list_containers(Some(&pod.id))
        .unwrap_or_else(|e| panic!("ListContainers: {e}"))
        .into_iter()
        .filter(|c| c.state == ContainerState::ContainerRunning as i32)
        .map(|c| c.id)
        .collect();
    seen.sort();
    let mut want: Vec<String> = running.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(seen, want, "RUNNING containers of the pod");
}

/// Sets the pid namespace mode of a pod (kubelet sends CONTAINER unless the pod shares it).
fn with_pod_pid(mut config: PodSandboxConfig, mode: NamespaceMode) -> PodSandboxConfig {
    if let Some(opts) = config
        .linux
        .as_mut()
        .and_then(|l| l.security_context.as_mut())
        .and_then(|s| s.namespace_options.as_mut())
    {
        opts.pid = mode as i32;
    }
    config
}

/// A container security context with these namespace options, as kubelet sends them.
fn ns_context(pid: NamespaceMode, target: &str) -> LinuxContainerSecurityContext {
    LinuxContainerSecurityContext {
        namespace_options: Some(NamespaceOption {
            network: NamespaceMode::Pod as i32,
            pid: pid as i32,
            ipc: NamespaceMode::Pod as i32,
            target_id: target.to_string(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[track_caller]
fn write(path: &Path, content: &str) {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    }
    fs::write(path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Asserts a failed call's message names `what`.
#[track_caller]
fn assert_names(err: &tonic::Status, what: &str, call: &str) {
    assert!(
        err.message().contains(what),
        "{call} failed without naming {what:?}: {err:?}"
    );
}

// ---- 1. kubelet's volumes, the CRI's files, masked and read-only paths ----

/// A regular file at or under `path` on this host (the container's /proc and /sys show the
/// same kernel's), searched three levels deep.
fn some_file(path: &Path) -> Option<PathBuf> {
    let mut level = vec![path.to_path_buf()];
    for _ in 0..4 {
        let mut next = Vec::new();
        for p in level {
            let meta = fs::symlink_metadata(&p).ok()?;
            if meta.is_file() {
                return Some(p);
            }
            if meta.is_dir() {
                let mut entries: Vec<PathBuf> = fs::read_dir(&p)
                    .map(|e| e.flatten().map(|e| e.path()).collect())
                    .unwrap_or_default();
                entries.sort();
                next.extend(entries);
            }
        }
        level = next;
    }
    None
}

fn string_list(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn check_kubelet_mounts(handler: &str) {
    let (parent, cd, cri) = setup();
    let name = format!("mounts-{handler}");
    let mut config = pod_spec(&name, &cd, &parent, NamespaceMode::Pod);
    config.dns_config = Some(DnsConfig {
        servers: vec!["10.96.0.10".to_string()],
        searches: vec!["default.svc.cluster.local".to_string()],
        options: vec!["ndots:5".to_string()],
    });
    let pod = run_pod(&cri, config, handler);

    // The volumes as kubelet prepares them under its pod dir.
    let kubelet = cd.dir().join("kubelet/pods/uid/");
    let term_log = kubelet.join("containers/app/termination-log");
    let sa = kubelet.join("volumes/kubernetes.io~projected/sa");
    write(&term_log, "");
    let token = format!("token-of-{handler}");
    write(&sa.join("token"), &token);
    write(&sa.join("namespace"), "default");
    let sa_dir = "/var/run/secrets/kubernetes.io/serviceaccount";
    let mut app_config = with_linux(
        container_config("app", IMAGE_REF, KEEPER, "app.log", &[]),
        None,
        Some(LinuxContainerSecurityContext {
            masked_paths: MASKED.iter().map(|p| p.to_string()).collect(),
            readonly_paths: READONLY.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        }),
    );
    app_config.mounts = vec![
        volume(&term_log, "/dev/termination-log", false),
        volume(&sa, sa_dir, true),
    ];
    let (app, pid) = start_app(&cri, &pod, &app_config);
    let mounts = mountinfo(pid);

    // termination-log: read-write, what the container writes reaches kubelet's file.
    let r = sh(&cri, &app, "echo 'all done' > /dev/termination-log");
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        fs::read_to_string(&term_log).unwrap_or_default(),
        "all done\n"
    );
    assert!(mount_at(&mounts, "/dev/termination-log")
        .opts
        .contains(&"rw".to_string()));

    // The service account: readable, read-only.
    let r = sh(&cri, &app, &format!("cat {sa_dir}/token"));
    assert_eq!((r.code, r.out.as_str()), (0, token.as_str()), "{r:?}");
    assert_erofs(&cri, &app, &format!(": > {sa_dir}/token"));
    assert_erofs(&cri, &app, &format!("touch {sa_dir}/new"));
    assert_eq!(
        fs::read_to_string(sa.join("token")).unwrap_or_default(),
        token
    );
    assert!(mount_at(&mounts, sa_dir).opts.contains(&"ro".to_string()));

    // /etc/hostname, /etc/hosts, /etc/resolv.conf: the sandbox's files, bound read-write.
    let r = sh(&cri, &app, "cat /etc/hostname");
    assert_eq!(r.out, format!("{name}\n"), "{r:?}");
    let r = sh(&cri, &app, "cat /etc/hosts");
    let host_hosts = fs::read_to_string("/etc/hosts").unwrap_or_default();
    assert_eq!(
        r.out, host_hosts,
        "/etc/hosts is not the host's copy: {r:?}"
    );
    let r = sh(&cri, &app, "cat /etc/resolv.conf");
    for line in [
        "search default.svc.cluster.local",
        "nameserver 10.96.0.10",
        "options ndots:5",
    ] {
        assert!(
            r.out.lines().any(|l| l == line),
            "no {line:?} in resolv.conf: {r:?}"
        );
    }
    for f in ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"] {
        assert!(mount_at(&mounts, f).opts.contains(&"rw".to_string()), "{f}");
    }

    // The spec holds kubelet's masked and read-only paths as sent.
    let spec = info_json(
        &cri.container_status(&app)
            .unwrap_or_else(|e| panic!("ContainerStatus: {e}"))
            .info,
    )["runtimeSpec"]["linux"]
        .clone();
    assert_eq!(string_list(&spec["maskedPaths"]), MASKED, "{spec}");
    assert_eq!(string_list(&spec["readonlyPaths"]), READONLY, "{spec}");

    // Masked files are /dev/null (char 1:3, empty); masked dirs an empty read-only tmpfs.
    // Paths this kernel lacks are skipped by the runtimes (as runc); at least one of each kind
    // exists here, else this check would check nothing.
    let (mut files, mut dirs) = (0, 0);
    for path in MASKED {
        let Ok(meta) = fs::metadata(path) else {
            continue;
        };
        if meta.is_dir() {
            dirs += 1;
            let m = mount_at(&mounts, path);
            assert!(
                m.fstype == "tmpfs" && m.opts.contains(&"ro".to_string()),
                "{path}: {m:?}"
            );
            let r = sh(&cri, &app, &format!("ls -A {path}"));
            assert_eq!(
                (r.code, r.out.as_str()),
                (0, ""),
                "{path} is not empty: {r:?}"
            );
            assert_erofs(&cri, &app, &format!("touch {path}/myrt-probe"));
        } else {
            files += 1;
            mount_at(&mounts, path);
            let seen = fs::metadata(format!("/proc/{pid}/root{path}"))
                .unwrap_or_else(|e| panic!("stat {path} in the container: {e}"));
            assert!(
                seen.file_type().is_char_device() && seen.rdev() == libc::makedev(1, 3),
                "{path} in the container is not /dev/null: {seen:?}"
            );
            let r = sh(&cri, &app, &format!("stat -c %t:%T {path}; wc -c < {path}"));
            assert_eq!(r.out, "1:3\n0\n", "{path}: {r:?}");
        }
    }
    assert!(
        files > 0 && dirs > 0,
        "no masked file or dir exists on this kernel"
    );

    // Read-only paths: a read-only mount, a write fails. The probe `: > FILE` opens for writing
    // and writes nothing, so even a missing read-only mount changes no kernel setting.
    let mut probed = 0;
    for path in READONLY {
        if fs::symlink_metadata(path).is_err() {
            continue;
        }
        let m = mount_at(&mounts, path);
        assert!(m.opts.contains(&"ro".to_string()), "{path}: {m:?}");
        if let Some(file) = some_file(Path::new(path)) {
            assert_erofs(&cri, &app, &format!(": > {}", file.display()));
            probed += 1;
        }
    }
    assert!(probed > 0, "no read-only path with a file on this kernel");
    assert_erofs(
        &cri,
        &app,
        &format!("echo {name} > /proc/sys/kernel/hostname"),
    );

    teardown(&cd, &cri, &pod, &[&app]);
}

per_handler!(
    check_kubelet_mounts,
    kubelet_mounts_myrt,
    kubelet_mounts_runc
);

// ---- 2. OOMKilled ----

fn check_oom_killed(handler: &str) {
    let (parent, cd, cri) = setup();
    let pod = run_pod(
        &cri,
        pod_spec(&format!("oom-{handler}"), &cd, &parent, NamespaceMode::Node),
        handler,
    );
    let (keeper, keeper_pid) = start_keeper(&cri, &pod);
    // busybox dd allocates its whole block: 200 MiB of zeroes, read into a 32 MiB cgroup.
    let hog_config = with_linux(
        container_config(
            "hog",
            IMAGE_REF,
            &[
                "/bin/dd",
                "if=/dev/zero",
                "of=/dev/null",
                "bs=200M",
                "count=1",
            ],
            "hog.log",
            &[],
        ),
        Some(LinuxContainerResources {
            memory_limit_in_bytes: 32 << 20,
            ..Default::default()
        }),
        None,
    );
    let (hog, _) = start_app(&cri, &pod, &hog_config);
    // The first EXITED status must already say why: kubelet may read it only once.
    let s = wait_exited(&cri, &hog);
    assert_eq!(
        (s.reason.as_str(), s.exit_code),
        ("OOMKilled", 137),
        "the hog must end OOMKilled: {s:?}"
    );
    assert_pod_serves(&cri, &pod, &keeper, keeper_pid, &[pod.pause, keeper_pid]);
    assert_no_mounts_of(&cd, &hog);
    cri.remove_container(&hog)
        .unwrap_or_else(|e| panic!("RemoveContainer hog: {e}"));
    teardown(&cd, &cri, &pod, &[&keeper]);
}

per_handler!(check_oom_killed, oom_killed_myrt, oom_killed_runc);

// ---- 3. containerd restarts under a running pod ----

fn check_containerd_restart(handler: &str) {
    let (parent, mut cd, cri) = setup();
    let pod = run_pod(
        &cri,
        pod_spec(
            &format!("restart-{handler}"),
            &cd,
            &parent,
            NamespaceMode::Pod,
        ),
        handler,
    );
    let (app, app_pid) = start_keeper(&cri, &pod);
    drop(cri);
    // Same thread, so the new daemon starts in the same private netns.
    cd.restart();
    let cri = Cri::connect(&cd.address());
    // The CRI plugin answers once it has loaded its sandboxes and containers again.
    let deadline = Instant::now() + SETTLE;
    let st = loop {
        match cri.pod_sandbox_status(&pod.id) {
            Ok(st) => break st,
            Err(e) => assert!(
                Instant::now() < deadline,
                "PodSandboxStatus {SETTLE:?} after the restart: {e}"
            ),
        }
        thread::sleep(POLL);
    };
    assert_eq!(
        st.status.as_ref().map(|s| s.state),
        Some(PodSandboxState::SandboxReady as i32),
        "the pod is not READY after containerd's restart: {st:?}"
    );
    assert_eq!(info_pid(&info_json(&st.info)), pod.pause);
    let shims: Vec<u64> = cd.shim_pids().iter().map(|p| p.as_raw() as u64).collect();
    assert_eq!(shims, [pod.shim], "the pod's shim after the restart");
    assert_keeper_serves(&cri, &pod, &app, app_pid);
    let r = sh(&cri, &app, "echo out; echo err >&2; exit 4");
    assert_eq!(
        (r.code, r.out.as_str(), r.err.as_str()),
        (4, "out\n", "err\n")
    );
    teardown(&cd, &cri, &pod, &[&app]);
}

per_handler!(
    check_containerd_restart,
    containerd_restart_myrt,
    containerd_restart_runc
);

// ---- 4a. a missing entrypoint ----

fn check_missing_entrypoint(handler: &str) {
    let (parent, cd, cri) = setup();
    let pod = run_pod(
        &cri,
        pod_spec(
            &format!("noentry-{handler}"),
            &cd,
            &parent,
            NamespaceMode::Node,
        ),
        handler,
    );
    let (keeper, keeper_pid) = start_keeper(&cri, &pod);
    let bad_config = container_config("bad", IMAGE_REF, &["/no/such/entrypoint"], "bad.log", &[]);
    // CreateContainer only records the container: the CRI creates the task (and so calls the
    // runtime) in StartContainer, for either handler.
    let bad = cri
        .create_container(&pod.id, &bad_config, &pod.config)
        .unwrap_or_else(|e| panic!("CreateContainer: {e}"));
    let err = cri
        .start_container(&bad)
        .expect_err("StartContainer of a missing entrypoint must fail");
    assert_names(&err, "/no/such/entrypoint", "StartContainer");
    let s = container_status(&cri, &bad);
    assert_eq!(s.state, ContainerState::ContainerExited as i32, "{s:?}");
    assert_pod_serves(&cri, &pod, &keeper, keeper_pid, &[pod.pause, keeper_pid]);
    assert_running_only(&cri, &pod, &[&keeper]);
    assert_no_mounts_of(&cd, &bad);
    cri.remove_container(&bad)
        .unwrap_or_else(|e| panic!("RemoveContainer bad: {e}"));
    teardown(&cd, &cri, &pod, &[&keeper]);
}

per_handler!(
    check_missing_entrypoint,
    missing_entrypoint_myrt,
    missing_entrypoint_runc
);

// ---- 4b. seccomp profiles that do not load ----

/// A container whose seccomp profile is the Localhost file `profile`.
fn seccomp_config(name: &str, profile: &Path) -> ContainerConfig {
    with_linux(
        container_config(name, IMAGE_REF, KEEPER, &format!("{name}.log"), &[]),
        None,
        Some(LinuxContainerSecurityContext {
            seccomp: Some(SecurityProfile {
                profile_type: ProfileType::Localhost as i32,
                localhost_ref: profile.to_string_lossy().into_owned(),
            }),
            ..Default::default()
        }),
    )
}

fn check_bad_seccomp(handler: &str) {
    let (parent, cd, cri) = setup();
    let pod = run_pod(
        &cri,
        pod_spec(
            &format!("seccomp-{handler}"),
            &cd,
            &parent,
            NamespaceMode::Node,
        ),
        handler,
    );
    let (keeper, keeper_pid) = start_keeper(&cri, &pod);
    let kids = [pod.pause, keeper_pid];

    // An action that is no seccomp action. containerd reads the file into the spec at
    // CreateContainer without checking actions; the runtime refuses it at StartContainer.
    let bogus = cd.dir().join("seccomp/bogus-action.json");
    write(
        &bogus,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_BOGUS"}]}"#,
    );
    let bad = cri
        .create_container(&pod.id, &seccomp_config("bogus", &bogus), &pod.config)
        .unwrap_or_else(|e| panic!("CreateContainer: {e}"));
    let err = cri
        .start_container(&bad)
        .expect_err("StartContainer with seccomp action SCMP_ACT_BOGUS must fail");
    assert_names(&err, "SCMP_ACT_BOGUS", "StartContainer");
    assert_pod_serves(&cri, &pod, &keeper, keeper_pid, &kids);
    assert_running_only(&cri, &pod, &[&keeper]);
    assert_no_mounts_of(&cd, &bad);
    cri.remove_container(&bad)
        .unwrap_or_else(|e| panic!("RemoveContainer: {e}"));

    // A rule whose only syscall no architecture knows.
    let unknown = cd.dir().join("seccomp/unknown-syscall.json");
    write(
        &unknown,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["myrt_no_such_syscall"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    let c = cri
        .create_container(&pod.id, &seccomp_config("unknown", &unknown), &pod.config)
        .unwrap_or_else(|e| panic!("CreateContainer: {e}"));
    match handler {
        // myrt refuses a name that is a syscall on no architecture: a typo would otherwise
        // silently leave the syscall allowed.
        "myrt" => {
            let err = cri
                .start_container(&c)
                .expect_err("StartContainer with syscall myrt_no_such_syscall must fail");
            assert_names(&err, "linux.seccomp.syscalls[0].names[0]", "StartContainer");
            assert_names(&err, "myrt_no_such_syscall", "StartContainer");
            assert_pod_serves(&cri, &pod, &keeper, keeper_pid, &kids);
            assert_running_only(&cri, &pod, &[&keeper]);
            assert_no_mounts_of(&cd, &c);
            cri.remove_container(&c)
                .unwrap_or_else(|e| panic!("RemoveContainer: {e}"));
            teardown(&cd, &cri, &pod, &[&keeper]);
        }
        // runc skips names libseccomp does not know (so profiles can list newer syscalls):
        // the container starts, with the rest of its profile in force.
        _ => {
            cri.start_container(&c)
                .unwrap_or_else(|e| panic!("runc ignores unknown syscall names: {e}"));
            let c_pid = info_pid(&info_json(
                &cri.container_status(&c)
                    .unwrap_or_else(|e| panic!("ContainerStatus: {e}"))
                    .info,
            ));
            let r = sh(&cri, &c, "grep Seccomp: /proc/self/status");
            assert_eq!(r.out, "Seccomp:\t2\n", "a seccomp filter in force: {r:?}");
            assert_pod_serves(
                &cri,
                &pod,
                &keeper,
                keeper_pid,
                &[pod.pause, keeper_pid, c_pid],
            );
            teardown(&cd, &cri, &pod, &[&c, &keeper]);
        }
    }
}

per_handler!(check_bad_seccomp, bad_seccomp_myrt, bad_seccomp_runc);

// ---- 4c. namespace paths that do not exist ----

/// A failed StartContainer/CreateContainer whose spec named namespace `path` of a process that
/// is gone: either containerd refuses first, naming `owner` (the dead sandbox or target) and
/// that it is not running, or the runtime's error names the path. containerd 1.6 checks
/// before it creates the task, so there the runtime never sees such a path through the CRI
/// (the runtime's own refusal is tested through ctr in e2e_ctr.rs).
#[track_caller]
fn assert_refused(err: &tonic::Status, owner: &str, path: &str, call: &str) {
    let msg = err.message();
    assert!(
        (msg.contains(owner) && (msg.contains("not running") || msg.contains("not found")))
            || msg.contains(path),
        "{call} failed naming neither {owner} as not running nor {path}: {err:?}"
    );
}

fn ns_config(name: &str, pid: NamespaceMode, target: &str) -> ContainerConfig {
    with_linux(
        container_config(name, IMAGE_REF, KEEPER, &format!("{name}.log"), &[]),
        None,
        Some(ns_context(pid, target)),
    )
}

/// The pause dies under a running app (pid mode CONTAINER, kubelet's default, so the app lives
/// on). A container created before, started after, and one created after would join
/// /proc/<dead pause>/ns/{net,ipc,uts}; containerd refuses both itself, and the shim keeps
/// serving the app.
fn check_dead_sandbox(handler: &str) {
    let (parent, cd, cri) = setup();
    let config = with_pod_pid(
        pod_spec(
            &format!("deadpause-{handler}"),
            &cd,
            &parent,
            NamespaceMode::Pod,
        ),
        NamespaceMode::Container,
    );
    let pod = run_pod(&cri, config, handler);
    let (keeper, keeper_pid) = start_app(
        &cri,
        &pod,
        &ns_config("keeper", NamespaceMode::Container, ""),
    );
    let early = cri
        .create_container(
            &pod.id,
            &ns_config("early", NamespaceMode::Container, ""),
            &pod.config,
        )
        .unwrap_or_else(|e| panic!("CreateContainer early: {e}"));
    let pause = Pid::new(pod.pause as i32).expect("the pause's pid is positive");
    pause
        .signal(Signal::SIGKILL)
        .unwrap_or_else(|e| panic!("kill the pause (pid {pause}): {e}"));
    wait_gone(pod.pause, "the killed pause");
    let deadline = Instant::now() + SETTLE;
    loop {
        let st = cri
            .pod_sandbox_status(&pod.id)
            .unwrap_or_else(|e| panic!("PodSandboxStatus: {e}"));
        if st.status.as_ref().map(|s| s.state) == Some(PodSandboxState::SandboxNotready as i32) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pod is not NOTREADY {SETTLE:?} after its pause died: {st:?}"
        );
        thread::sleep(POLL);
    }
    let netns = format!("/proc/{}/ns/", pod.pause);
    let err = cri
        .start_container(&early)
        .expect_err("StartContainer in a sandbox whose pause is dead must fail");
    assert_refused(&err, &pod.id, &netns, "StartContainer");
    let err = match cri.create_container(
        &pod.id,
        &ns_config("late", NamespaceMode::Container, ""),
        &pod.config,
    ) {
        Err(e) => e,
        Ok(id) => cri
            .start_container(&id)
            .expect_err("StartContainer in a sandbox whose pause is dead must fail"),
    };
    assert_refused(&err, &pod.id, &netns, "CreateContainer");
    assert_keeper_serves(&cri, &pod, &keeper, keeper_pid);
    wait_children(pod.shim, &[keeper_pid]);
    assert_no_mounts_of(&cd, &early);
    if handler == "runc" && containerd_major(&cri) >= 2 {
        // containerd 2.x drops its connection to the runc shim when the pause dies ("cleaning
        // up dead shim") and never asks that shim to shut down: it outlives the pod, idle.
        // Everything else must still go.
        teardown_pod(&cri, &pod, &[&keeper]);
        wait_children(pod.shim, &[]);
        assert_no_mounts_under(cd.dir());
    } else {
        teardown(&cd, &cri, &pod, &[&keeper]);
    }
}

per_handler!(check_dead_sandbox, dead_sandbox_myrt, dead_sandbox_runc);

/// A debug container targets another container's pid namespace (NamespaceMode TARGET, as
/// `kubectl debug --target`); the target stops before the debug container starts, so its spec
/// names /proc/<dead pid>/ns/pid.
fn check_gone_target(handler: &str) {
    let (parent, cd, cri) = setup();
    let config = with_pod_pid(
        pod_spec(
            &format!("target-{handler}"),
            &cd,
            &parent,
            NamespaceMode::Node,
        ),
        NamespaceMode::Container,
    );
    let pod = run_pod(&cri, config, handler);
    let (keeper, keeper_pid) = start_app(
        &cri,
        &pod,
        &ns_config("keeper", NamespaceMode::Container, ""),
    );
    let (target, target_pid) = start_app(
        &cri,
        &pod,
        &ns_config("target", NamespaceMode::Container, ""),
    );
    let debug = cri
        .create_container(
            &pod.id,
            &ns_config("debug", NamespaceMode::Target, &target),
            &pod.config,
        )
        .unwrap_or_else(|e| panic!("CreateContainer debug: {e}"));
    let spec = info_json(
        &cri.container_status(&debug)
            .unwrap_or_else(|e| panic!("ContainerStatus debug: {e}"))
            .info,
    );
    let pidns = format!("/proc/{target_pid}/ns/pid");
    let namespaces = &spec["runtimeSpec"]["linux"]["namespaces"];
    assert!(
        namespaces.as_array().is_some_and(|a| a
            .iter()
            .any(|n| n["type"] == "pid" && n["path"] == pidns.as_str())),
        "the debug container does not target {pidns}: {namespaces}"
    );
    // No grace: `sleep` is pid 1 of its own pid namespace and ignores SIGTERM.
    cri.stop_container(&target, Duration::ZERO)
        .unwrap_or_else(|e| panic!("StopContainer target: {e}"));
    wait_gone(target_pid, "the target");
    let err = cri
        .start_container(&debug)
        .expect_err("StartContainer joining a gone pid namespace must fail");
    assert_refused(&err, &target, &pidns, "StartContainer");
    assert_pod_serves(&cri, &pod, &keeper, keeper_pid, &[pod.pause, keeper_pid]);
    assert_running_only(&cri, &pod, &[&keeper]);
    assert_no_mounts_of(&cd, &debug);
    assert_no_mounts_of(&cd, &target);
    for id in [&debug, &target] {
        cri.remove_container(id)
            .unwrap_or_else(|e| panic!("RemoveContainer {id}: {e}"));
    }
    teardown(&cd, &cri, &pod, &[&keeper]);
}

per_handler!(check_gone_target, gone_target_myrt, gone_target_runc);

// ---- 4d. RunPodSandbox with a sysctl the kernel does not have ----

fn check_unknown_sysctl(handler: &str) {
    let (parent, cd, cri) = setup();
    let good = run_pod(
        &cri,
        pod_spec(
            &format!("good-{handler}"),
            &cd,
            &parent,
            NamespaceMode::Node,
        ),
        handler,
    );
    let (keeper, keeper_pid) = start_keeper(&cri, &good);
    let shims_before = cd.shim_pids();
    let mounts_before: BTreeSet<String> = mount_points().into_iter().collect();

    // kernel.*: outside every namespace the pod has, refused before anything is written.
    // net.ipv4.*: in the pod's own netns, so it passes that check and the write fails.
    for knob in ["kernel.myrt_no_such_knob", "net.ipv4.myrt_no_such_knob"] {
        let mut bad = pod_spec(&format!("bad-{handler}"), &cd, &parent, NamespaceMode::Pod);
        if let Some(linux) = bad.linux.as_mut() {
            linux.sysctls.insert(knob.to_string(), "1".to_string());
        }
        let err = cri
            .run_pod_sandbox(&bad, handler)
            .expect_err("RunPodSandbox with an unknown sysctl must fail");
        // runc names a sysctl it failed to write only by its file under /proc/sys.
        let named = if handler == "runc" && knob.starts_with("net.") {
            format!("/proc/sys/{}", knob.replace('.', "/"))
        } else {
            knob.to_string()
        };
        assert_names(&err, &named, "RunPodSandbox");

        // Nothing of the failed pod is left: its shim exits, its netns and shm mounts go.
        let deadline = Instant::now() + SETTLE;
        loop {
            let shims = cd.shim_pids();
            let mounts: BTreeSet<String> = mount_points().into_iter().collect();
            if shims == shims_before && mounts == mounts_before {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{SETTLE:?} after the failed RunPodSandbox ({knob}): shims {shims:?} (before \
                 {shims_before:?}), new mounts {:?}, gone mounts {:?}",
                mounts.difference(&mounts_before).collect::<Vec<_>>(),
                mounts_before.difference(&mounts).collect::<Vec<_>>()
            );
            thread::sleep(POLL);
        }
    }
    assert_pod_serves(&cri, &good, &keeper, keeper_pid, &[good.pause, keeper_pid]);
    teardown(&cd, &cri, &good, &[&keeper]);
}

per_handler!(
    check_unknown_sysctl,
    unknown_sysctl_myrt,
    unknown_sysctl_runc
);
