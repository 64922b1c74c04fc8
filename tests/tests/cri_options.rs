//! myrt's runtime options as Kubernetes users give them: the `options` table of the handler in
//! containerd's CRI config, which the CRI plugin hands to the shim as `runtimeoptions.v1.Options`
//! (a runtime type other than runc's). containerd 1.6 sends only `ConfigPath` (the table's other
//! keys are dropped); 1.7 and 2.x send the whole table as TOML in `config_body` unless
//! `ConfigPath` is set (then only the path). These tests pin that, with myrt's `Root` option
//! (the engine's state root: visible as directories) and with bad keys, which must fail
//! RunPodSandbox with the key's name.
//!
//! Run as root: `cargo test -p myrt-tests --test cri_options -- --test-threads=1`; other
//! containerd versions with MYRT_CONTAINERD (scripts/containerd-versions.sh).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use myrt_tests::cri::api::NamespaceMode;
use myrt_tests::cri::{doc_snippet, pod_config, remove_cgroup_parent, CgroupParent, Cri};
use myrt_tests::paths::containerd_version;
use myrt_tests::{isolate, Containerd, IMAGE_REF, PAUSE_REF};

const SETTLE: Duration = Duration::from_secs(20);

/// A host-network pod (no CNI needed) with handler `myrt`; returns its id or the CRI error.
fn run_pod(cd: &Containerd, cri: &Cri, name: &str) -> Result<String, tonic::Status> {
    let config = pod_config(
        name,
        &format!("uid-{name}-{}", std::process::id()),
        &cd.dir().join("pod-logs"),
        &CgroupParent::path_for(cd),
        NamespaceMode::Node,
    );
    cri.run_pod_sandbox(&config, "myrt")
}

fn start(options: &str) -> (Containerd, Cri) {
    let cd = Containerd::start_cri_with_options(options);
    let cri = Cri::connect(&cd.address());
    cri.wait_images(&[PAUSE_REF, IMAGE_REF], SETTLE);
    (cd, cri)
}

/// Stops and removes the pod; its state dir under `root` must be gone then, and the shim.
#[track_caller]
fn remove_pod(cd: &Containerd, cri: &Cri, pod: &str, state: Option<&Path>) {
    cri.stop_pod_sandbox(pod)
        .unwrap_or_else(|e| panic!("StopPodSandbox: {e}"));
    cri.remove_pod_sandbox(pod)
        .unwrap_or_else(|e| panic!("RemovePodSandbox: {e}"));
    cd.wait_no_shims(SETTLE);
    if let Some(state) = state {
        assert!(
            !state.exists(),
            "{} is left after RemovePodSandbox",
            state.display()
        );
    }
    remove_cgroup_parent(&CgroupParent::path_for(cd));
}

/// A temp dir for option files and state roots, outside containerd's own dir so its path is
/// known before containerd's config is written.
fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("myrt-cri-opts-")
        .tempdir_in("/tmp")
        .unwrap_or_else(|e| panic!("temp dir: {e}"))
}

/// Where the engine keeps a container's state under a state root (`<root>/<namespace>/<id>`).
fn state_dir(root: &Path, id: &str) -> PathBuf {
    root.join(myrt_tests::cri::CRI_NAMESPACE).join(id)
}

/// `ConfigPath` works on every version: the file's keys reach the shim.
#[test]
fn options_file_from_config_path() {
    if !isolate() {
        return;
    }
    let tmp = scratch();
    let root = tmp.path().join("state");
    let file = tmp.path().join("myrt.toml");
    fs::write(
        &file,
        format!("Root = \"{}\"\nLogLevel = \"debug\"\n", root.display()),
    )
    .unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
    let (cd, cri) = start(&format!("ConfigPath = \"{}\"", file.display()));
    let pod = run_pod(&cd, &cri, "opts-file").unwrap_or_else(|e| panic!("RunPodSandbox: {e}"));
    let state = state_dir(&root, &pod);
    assert!(
        state.is_dir(),
        "the pod's state is not under the Root of {}: no {}",
        file.display(),
        state.display()
    );
    // LogLevel = "debug" from the same file: the shim's debug lines reach containerd's log
    // (containerd itself logs at info), one line per record, no blank line after it.
    let log = fs::read_to_string(cd.log_path()).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    let debug: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains("level=debug msg=\"Create\""))
        .collect();
    assert!(
        !debug.is_empty(),
        "no shim debug line (msg=\"Create\") in {}:\n{}",
        cd.log_path().display(),
        cd.log_tail(30)
    );
    for i in debug {
        assert!(
            lines.get(i + 1).is_none_or(|next| !next.trim().is_empty()),
            "a blank line follows the shim's log line {:?}",
            lines[i]
        );
    }
    remove_pod(&cd, &cri, &pod, Some(&state));
}

/// The table's keys without `ConfigPath`: 1.7+ pass them as `config_body`; 1.6 drops them, so
/// the engine uses its default root there (documented in docs/kubernetes.md).
#[test]
fn options_table_as_config_body() {
    if !isolate() {
        return;
    }
    let tmp = scratch();
    let root = tmp.path().join("state");
    let (cd, cri) = start(&format!(
        "Root = \"{}\"\nLogLevel = \"info\"",
        root.display()
    ));
    let pod = run_pod(&cd, &cri, "opts-body").unwrap_or_else(|e| panic!("RunPodSandbox: {e}"));
    let ours = state_dir(&root, &pod);
    let default = state_dir(Path::new("/run/containerd/myrt"), &pod);
    let version = containerd_version();
    if version >= (1, 7) {
        assert!(
            ours.is_dir() && !default.exists(),
            "containerd {version:?} sends the options table as config_body: the state must be \
             in {}, not {}",
            ours.display(),
            default.display()
        );
        remove_pod(&cd, &cri, &pod, Some(&ours));
    } else {
        assert!(
            default.is_dir() && !ours.exists(),
            "containerd 1.6 sends no config_body: the state must stay in {}, not {}",
            default.display(),
            ours.display()
        );
        remove_pod(&cd, &cri, &pod, Some(&default));
    }
}

/// A bad key fails RunPodSandbox with its name (kubelet shows this message in the pod's
/// events), and leaves no shim behind. Through ConfigPath, so every version sends it.
#[test]
fn bad_options_fail_the_pod_with_the_key_named() {
    if !isolate() {
        return;
    }
    let tmp = scratch();
    let file = tmp.path().join("myrt.toml");
    let (cd, cri) = start(&format!("ConfigPath = \"{}\"", file.display()));
    let cases = [
        ("Bogus = 1\n", "Bogus"),
        (
            "SystemdCgroup = true\n",
            "systemd cgroup driver is not supported",
        ),
        ("LogLevel = \"loud\"\n", "log_level \"loud\""),
        ("Root = 7\n", "line 1, column 8"),
    ];
    // No file at ConfigPath yet: the error names the path.
    let err =
        run_pod(&cd, &cri, "opts-nofile").expect_err("RunPodSandbox without the options file");
    assert!(
        err.message().contains(&file.display().to_string()),
        "the error must name {}: {err:?}",
        file.display()
    );
    cd.wait_no_shims(SETTLE);
    for (i, (body, want)) in cases.iter().enumerate() {
        fs::write(&file, body).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
        let err = run_pod(&cd, &cri, &format!("opts-bad-{i}"))
            .expect_err(&format!("RunPodSandbox must fail with options {body:?}"));
        eprintln!("RunPodSandbox with {body:?}: {}", err.message());
        assert!(
            err.message().contains(want) && err.message().contains("options"),
            "options {body:?}: the error must name {want:?}: {err:?}"
        );
        cd.wait_no_shims(SETTLE);
    }
    // The file fixed, the next pod runs: nothing of the failures is in the way.
    fs::write(&file, "LogLevel = \"warn\"\n").unwrap_or_else(|e| panic!("write: {e}"));
    let pod = run_pod(&cd, &cri, "opts-good").unwrap_or_else(|e| panic!("RunPodSandbox: {e}"));
    remove_pod(&cd, &cri, &pod, None);
}

/// docs/kubernetes.md's config snippets for this containerd version and its myrt.toml, put into
/// a containerd config verbatim (only the options file's path changed): a pod runs with handler
/// `myrt`, and the file at the snippet's `ConfigPath` is what the shim reads (its `Root`).
#[test]
fn docs_config_snippets_work_as_written() {
    if !isolate() {
        return;
    }
    let doc_path = myrt_tests::paths::workspace_dir().join("docs/kubernetes.md");
    let name = if containerd_version() >= (2, 0) {
        "containerd-2.x"
    } else {
        "containerd-1.x"
    };
    let tmp = scratch();
    let file = tmp.path().join("myrt.toml");
    let root = tmp.path().join("state");
    let section = doc_snippet(name);
    assert!(
        section.contains("/etc/containerd/myrt.toml"),
        "{name} does not point at /etc/containerd/myrt.toml: {section}"
    );
    let section = section.replace("/etc/containerd/myrt.toml", &file.to_string_lossy());
    let options = format!(
        "{}\nRoot = \"{}\"\n",
        doc_snippet("myrt.toml"),
        root.display()
    );
    fs::write(&file, options).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
    let cd = Containerd::start_cri_with_config_env(&[("MYRT_CRI_MYRT_SECTION", &section)]);
    let cri = Cri::connect(&cd.address());
    cri.wait_images(&[PAUSE_REF, IMAGE_REF], SETTLE);
    let pod = run_pod(&cd, &cri, "opts-doc").unwrap_or_else(|e| {
        panic!(
            "RunPodSandbox with the {name} snippet of {}: {e}",
            doc_path.display()
        )
    });
    let info = myrt_tests::cri::info_json(
        &cri.pod_sandbox_status(&pod)
            .unwrap_or_else(|e| panic!("PodSandboxStatus: {e}"))
            .info,
    );
    assert_eq!(info["runtimeType"], "io.containerd.myrt.v1", "{info}");
    let state = state_dir(&root, &pod);
    assert!(
        state.is_dir(),
        "the snippet's ConfigPath file did not reach the shim: no {}",
        state.display()
    );
    remove_pod(&cd, &cri, &pod, Some(&state));
}
