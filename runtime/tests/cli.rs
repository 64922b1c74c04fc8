//! The `myrt` command line where no container is started: version, spec, features, errors and
//! the `--log` formats containerd's go-runc reads. These need neither root nor isolation.

use std::fs;
use std::process::{Command, Output};

use serde_json::Value;

fn myrt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_myrt"))
        .args(args)
        .output()
        .expect("run myrt")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn version_names_program_and_spec() {
    for flag in ["--version", "-v"] {
        let out = myrt(&[flag]);
        assert!(out.status.success());
        let stdout = text(&out.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            lines[0],
            format!("myrt version {}", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(lines[1], "spec: 1.2.0");
    }
}

#[test]
fn spec_writes_runc_default_once() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().to_str().unwrap();
    let out = myrt(&["spec", "--bundle", bundle]);
    assert!(out.status.success(), "{out:?}");
    let raw = fs::read_to_string(dir.path().join("config.json")).unwrap();
    assert!(
        raw.contains("\n\t\"process\""),
        "not tab-indented like runc"
    );
    let spec: oci_spec::runtime::Spec = serde_json::from_str(&raw).unwrap();
    let p = spec.process().as_ref().unwrap();
    assert_eq!(p.args().as_ref().unwrap(), &["sh"]);
    assert_eq!(p.terminal(), Some(true));
    assert_eq!(
        spec.root().as_ref().unwrap().path().to_str(),
        Some("rootfs")
    );
    let masked = spec
        .linux()
        .as_ref()
        .unwrap()
        .masked_paths()
        .as_ref()
        .unwrap();
    assert!(masked.contains(&"/proc/kcore".to_string()));

    let out = myrt(&["spec", "-b", bundle]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("config.json exists"), "{out:?}");
}

#[test]
fn spec_rootless_maps_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let out = myrt(&[
        "spec",
        "--rootless",
        "--bundle",
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let v: Value =
        serde_json::from_slice(&fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    let uid = nix::unistd::geteuid().as_raw();
    assert_eq!(v["linux"]["uidMappings"][0]["hostID"], uid);
    let types: Vec<&str> = v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"user") && !types.contains(&"network"),
        "{types:?}"
    );
}

#[test]
fn features_are_truthful() {
    let out = myrt(&["features"]);
    assert!(out.status.success(), "{out:?}");
    let f: oci_spec::runtime::Features = serde_json::from_slice(&out.stdout).unwrap();
    let linux = f.linux().as_ref().unwrap();
    let seccomp = linux.seccomp().as_ref().unwrap();
    assert_eq!(seccomp.enabled(), &Some(true));
    let actions = serde_json::to_string(seccomp.actions().as_ref().unwrap()).unwrap();
    for a in ["SCMP_ACT_ERRNO", "SCMP_ACT_NOTIFY", "SCMP_ACT_KILL_PROCESS"] {
        assert!(actions.contains(a), "{a} not in {actions}");
    }
    assert_eq!(linux.intel_rdt().as_ref().unwrap().enabled(), &Some(true));
    // features-linux.md: the runtime's support, whatever the host has; the host's status and
    // what happens without the LSM are in the annotations.
    assert_eq!(linux.apparmor().as_ref().unwrap().enabled(), &Some(true));
    assert_eq!(linux.selinux().as_ref().unwrap().enabled(), &Some(true));
    let notes = f.annotations().as_ref().unwrap();
    for lsm in ["apparmor", "selinux"] {
        let note = &notes[&format!("io.containerd.myrt.{lsm}")];
        let enabled = myrt_runtime::setup::lsm::HostLsm::detect();
        let on = if lsm == "apparmor" {
            enabled.apparmor
        } else {
            enabled.selinux
        };
        assert_eq!(
            note.starts_with("enabled on this host"),
            on,
            "{lsm}: {note}"
        );
    }
    let cg = linux.cgroup().as_ref().unwrap();
    assert_eq!(
        (cg.v1(), cg.v2(), cg.systemd()),
        (&Some(true), &Some(true), &Some(false))
    );
    let caps = linux.capabilities().as_ref().unwrap();
    assert!(caps.contains(&"CAP_SYS_ADMIN".to_string()) && caps.len() >= 38);
    assert!(f
        .hooks()
        .as_ref()
        .unwrap()
        .contains(&"createRuntime".to_string()));
    assert!(f
        .mount_options()
        .as_ref()
        .unwrap()
        .contains(&"rro".to_string()));
    // Checkpoint/restore is built in; whether CRIU works here is in the annotation.
    let ann = f.annotations().as_ref().unwrap();
    assert_eq!(
        ann.get("io.containerd.myrt.checkpoint.enabled")
            .map(String::as_str),
        Some("true")
    );
    let criu = myrt(&["--criu", "/nonexistent/criu", "features"]);
    let f: oci_spec::runtime::Features = serde_json::from_slice(&criu.stdout).unwrap();
    let says = &f.annotations().as_ref().unwrap()["io.containerd.myrt.checkpoint.criu"];
    assert!(
        says.starts_with("unavailable: ") && says.contains("/nonexistent/criu"),
        "{says}"
    );
}

#[test]
fn errors_are_one_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let out = myrt(&["--root", root.to_str().unwrap(), "state", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("nope") && err.contains("does not exist"),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    let out = myrt(&[
        "--root",
        root.to_str().unwrap(),
        "kill",
        "nope",
        "NOSUCHSIG",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("unknown signal"), "{out:?}");

    let out = myrt(&["--root", root.to_str().unwrap(), "no-such-command"]);
    assert_eq!(out.status.code(), Some(1));

    let out = myrt(&["--systemd-cgroup", "--root", root.to_str().unwrap(), "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("systemd cgroup driver not supported yet"),
        "{out:?}"
    );
}

#[test]
fn log_file_json_is_what_go_runc_reads() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.json");
    let root = dir.path().join("root");
    let out = myrt(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "--root",
        root.to_str().unwrap(),
        "delete",
        "ghost",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("ghost"), "{out:?}");
    let line = fs::read_to_string(&log).unwrap();
    assert_eq!(line.lines().count(), 1, "{line}");
    let v: Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(v["level"], "error");
    assert!(v["msg"].as_str().unwrap().contains("ghost"), "{v}");
    let time = v["time"].as_str().unwrap();
    assert!(
        time.len() == 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "{time}"
    );
}

#[test]
fn log_file_text_is_logrus_style() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.txt");
    let root = dir.path().join("root");
    // Go-style single-dash long flags, as runc's urfave/cli accepts them.
    let out = myrt(&[
        "-log",
        log.to_str().unwrap(),
        "-root",
        root.to_str().unwrap(),
        "state",
        "ghost",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let line = fs::read_to_string(&log).unwrap();
    assert!(
        line.starts_with("time=\"") && line.contains(" level=error msg=\""),
        "{line}"
    );
    assert!(line.contains("ghost"), "{line}");
}

#[test]
fn delete_force_of_a_missing_container_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let root = root.to_str().unwrap();
    let out = myrt(&["--root", root, "delete", "ghost"]);
    assert_eq!(out.status.code(), Some(1));
    let out = myrt(&["--root", root, "delete", "--force", "ghost"]);
    assert!(out.status.success(), "{out:?}");
    // What an aborted create leaves (a directory without state.json) is removed.
    fs::create_dir_all(dir.path().join("root/half")).unwrap();
    let out = myrt(&["--root", root, "delete", "half"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!dir.path().join("root/half").exists());
}

#[test]
fn list_of_an_empty_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let out = myrt(&["--root", root.to_str().unwrap(), "list"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        "ID          PID         STATUS      BUNDLE      CREATED     OWNER\n"
    );
    let out = myrt(&["--root", root.to_str().unwrap(), "list", "-q"]);
    assert_eq!(text(&out.stdout), "");
}
