//! Bad input kubelet may send, which must fail one CRI call with a message naming what is
//! wrong, leave nothing of the failed container or pod behind (process, shim, mount), and keep
//! the pod's other containers and its shim serving: a missing entrypoint, seccomp profiles that
//! do not load (an unknown action; a syscall no architecture knows: myrt refuses it, runc skips
//! it), namespace paths of a dead sandbox or a gone debug target, and RunPodSandbox with a
//! sysctl the kernel does not have. The same assertions run for handler `myrt`
//! (io.containerd.myrt.v1) and handler `runc` (io.containerd.runc.v2); where runc behaves
//! differently by design, each handler's own behaviour is asserted and said so.
//!
//! Run as root: `cargo test -p myrt-tests --test cri_bad_input -- --test-threads=1 --nocapture`
//! after `cargo build -p myrt-shim -p myrt-runtime`. `MYRT_CRI_HANDLERS=myrt` picks handlers;
//! `MYRT_CONTAINERD=$(scripts/containerd-versions.sh fetch 2.1)` another containerd.
//! `dead_sandbox_*` and `unknown_sysctl_*` (its failing pods) need the CNI bridge (a network
//! namespace of the pod's own); the others run host-network pods.

use std::path::Path;
use std::time::Duration;

use myrt_runtime::Pid;
use myrt_tests::containerd::mounts_under;
use myrt_tests::cri::api::security_profile::ProfileType;
use myrt_tests::cri::api::{
    ContainerConfig, ContainerState, LinuxContainerSecurityContext, NamespaceMode, NamespaceOption,
    PodSandboxConfig, PodSandboxState, SecurityProfile,
};
use myrt_tests::cri::{
    assert_keeper_serves, assert_no_mounts_of, assert_no_mounts_under, assert_pod_serves,
    container_config, container_status, info_json, info_pid, pod_spec, run_pod, settle, setup, sh,
    start_app, start_keeper, teardown, teardown_pod, wait_children, wait_gone, with_linux, write,
    Cri, Pod, KEEPER,
};
use myrt_tests::{per_handler, IMAGE_REF};
use nix::sys::signal::Signal;

// ---- helpers ----

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

/// Runs pod `config` with pid mode CONTAINER (kubelet's default unless the pod shares its pid
/// namespace: each container has its own) and starts `keeper` in it, namespace options as
/// kubelet sends them; the pod, keeper's id and pid.
#[track_caller]
fn run_pod_pid_container(
    cri: &Cri,
    mut config: PodSandboxConfig,
    handler: &str,
) -> (Pod, String, u64) {
    if let Some(opts) = config
        .linux
        .as_mut()
        .and_then(|l| l.security_context.as_mut())
        .and_then(|s| s.namespace_options.as_mut())
    {
        opts.pid = NamespaceMode::Container as i32;
    }
    let pod = run_pod(cri, config, handler);
    let (keeper, keeper_pid) = start_app(
        cri,
        &pod,
        &ns_config("keeper", NamespaceMode::Container, ""),
    );
    (pod, keeper, keeper_pid)
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

/// Asserts a failed call's message names `what`.
#[track_caller]
fn assert_names(err: &tonic::Status, what: &str, call: &str) {
    assert!(
        err.message().contains(what),
        "{call} failed without naming {what:?}: {err:?}"
    );
}

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
    let config = pod_spec(
        &format!("deadpause-{handler}"),
        &cd,
        &parent,
        NamespaceMode::Pod,
    );
    let (pod, keeper, keeper_pid) = run_pod_pid_container(&cri, config, handler);
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
    settle(|| {
        let st = cri
            .pod_sandbox_status(&pod.id)
            .unwrap_or_else(|e| panic!("PodSandboxStatus: {e}"));
        match st.status.as_ref().map(|s| s.state) {
            Some(s) if s == PodSandboxState::SandboxNotready as i32 => Ok(()),
            _ => Err(format!(
                "the pod is not NOTREADY after its pause died: {st:?}"
            )),
        }
    });
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
    if handler == "runc" && myrt_tests::paths::containerd_version().0 >= 2 {
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
    let config = pod_spec(
        &format!("target-{handler}"),
        &cd,
        &parent,
        NamespaceMode::Node,
    );
    let (pod, keeper, keeper_pid) = run_pod_pid_container(&cri, config, handler);
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
    let mounts_before = mounts_under(cd.dir());

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
        settle(|| {
            let shims = cd.shim_pids();
            let mounts = mounts_under(cd.dir());
            if shims == shims_before && mounts == mounts_before {
                return Ok(());
            }
            Err(format!(
                "after the failed RunPodSandbox ({knob}): shims {shims:?} (before \
                 {shims_before:?}), new mounts {:?}, gone mounts {:?}",
                mounts.difference(&mounts_before).collect::<Vec<_>>(),
                mounts_before.difference(&mounts).collect::<Vec<_>>()
            ))
        });
    }
    assert_pod_serves(&cri, &good, &keeper, keeper_pid, &[good.pause, keeper_pid]);
    teardown(&cd, &cri, &good, &[&keeper]);
}

per_handler!(
    check_unknown_sysctl,
    unknown_sysctl_myrt,
    unknown_sysctl_runc
);
