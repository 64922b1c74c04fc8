//! What kubelet relies on beyond a pod's plain life (cri_pod.rs): its volumes (termination-log,
//! a read-only service account), the sandbox's /etc/hostname, /etc/hosts and /etc/resolv.conf,
//! the masked and read-only paths kubelet sends; the OOMKilled reason on the first EXITED
//! status, with the pod's other container still serving; and a containerd restart under a
//! running pod (same pause, same shim, the app answers ExecSync). The same assertions run for
//! handler `myrt` (io.containerd.myrt.v1) and handler `runc` (io.containerd.runc.v2); where
//! runc behaves differently by design, each handler's own behaviour is asserted and said so.
//! Bad input (pod specs that must fail one call) is cri_bad_input.rs.
//!
//! Run as root: `cargo test -p myrt-tests --test cri_kubelet -- --test-threads=1 --nocapture`
//! after `cargo build -p myrt-shim -p myrt-runtime`. `MYRT_CRI_HANDLERS=myrt` picks handlers;
//! `MYRT_CONTAINERD=$(scripts/containerd-versions.sh fetch 2.1)` another containerd.
//! `kubelet_mounts_*` and `containerd_restart_*` run pods with their own network namespace
//! (the CNI bridge); `oom_killed_*` runs a host-network pod.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use myrt_tests::cri::api::{
    DnsConfig, LinuxContainerResources, LinuxContainerSecurityContext, NamespaceMode,
    PodSandboxState,
};
use myrt_tests::cri::{
    assert_keeper_serves, assert_no_mounts_of, assert_pod_serves, container_config, info_json,
    info_pid, mount_at, mountinfo, pod_spec, run_pod, settle, setup, sh, start_app, start_keeper,
    teardown, volume, wait_exited, with_linux, write, Cri, KEEPER,
};
use myrt_tests::{per_handler, IMAGE_REF};

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

/// Runs `script`, which must fail with EROFS ("Read-only file system").
#[track_caller]
fn assert_erofs(cri: &Cri, id: &str, script: &str) {
    let r = sh(cri, id, script);
    assert!(
        r.code != 0 && r.err.contains("Read-only file system"),
        "{script:?} must fail with EROFS: {r:?}"
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
    // runc's shim watches for OOM only once its start returned: an OOM in the first moments
    // is then reported as "Error" (seen here, finished_at before started_at), so runc's hog
    // waits a little. myrt's shim watches from create on, so its hog allocates at once.
    let dd = "exec /bin/dd if=/dev/zero of=/dev/null bs=200M count=1";
    let script = if handler == "runc" {
        format!("sleep 0.5; {dd}")
    } else {
        dd.to_string()
    };
    let hog_config = with_linux(
        container_config(
            "hog",
            IMAGE_REF,
            &["/bin/sh", "-c", &script],
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
    let st = settle(|| {
        cri.pod_sandbox_status(&pod.id)
            .map_err(|e| format!("PodSandboxStatus after the restart: {e}"))
    });
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
