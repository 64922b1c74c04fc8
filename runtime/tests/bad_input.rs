//! Bad bundles fail `create` with a message that names the problem, and leave nothing behind:
//! no state directory, no cgroup directory, no process.
//! Each test runs as root in its own mount + pid namespace (see common::isolate).

mod common;

use std::fs;

use common::{isolate, Env};
use serde_json::json;

/// `create` must fail with `want` in its message and leave nothing behind.
#[track_caller]
fn create_fails_cleanly(env: &Env, want: &str) -> String {
    let err = env.fails(&["create", "--bundle", env.bundle_str(), &env.id]);
    assert!(err.contains(want), "expected {want:?} in: {err}");
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
    env.assert_gone();
    err
}

#[test]
fn missing_config_json() {
    if !isolate() {
        return;
    }
    let env = Env::new("noconfig", &["true"]);
    fs::remove_file(env.bundle.join("config.json")).unwrap();
    create_fails_cleanly(&env, "config.json");
}

#[test]
fn malformed_config_json() {
    if !isolate() {
        return;
    }
    let env = Env::new("badjson", &["true"]);
    fs::write(
        env.bundle.join("config.json"),
        "{\"ociVersion\": \"1.0.2\", not json",
    )
    .unwrap();
    create_fails_cleanly(&env, "config.json");
}

#[test]
fn missing_executable() {
    if !isolate() {
        return;
    }
    let env = Env::new("noexe", &["no-such-program", "arg"]);
    create_fails_cleanly(&env, "executable file not found in $PATH");
    // Foreground run reports the same and exits non-zero.
    let out = env.run(&[]);
    assert!(!out.success(), "{out:?}");
    assert!(
        out.stderr.contains("executable file not found in $PATH"),
        "{out:?}"
    );
    env.assert_gone();
}

#[test]
fn cwd_that_is_a_file() {
    if !isolate() {
        return;
    }
    let env = Env::new("cwdfile", &["true"]);
    env.edit(|c| c["process"]["cwd"] = json!("/bin/busybox"));
    create_fails_cleanly(&env, "/bin/busybox");
}

#[test]
fn unknown_namespace_path() {
    if !isolate() {
        return;
    }
    let env = Env::new("nsbad", &["true"]);
    env.edit(|c| {
        for ns in c["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "network" {
                ns["path"] = json!("/proc/999999/ns/net");
            }
        }
    });
    create_fails_cleanly(&env, "/proc/999999/ns/net");
}

#[test]
fn namespace_path_of_the_wrong_type() {
    if !isolate() {
        return;
    }
    let env = Env::new("nswrong", &["true"]);
    env.edit(|c| {
        for ns in c["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "network" {
                ns["path"] = json!("/proc/self/ns/uts");
            }
        }
    });
    let err = create_fails_cleanly(&env, "/proc/self/ns/uts");
    assert!(
        err.contains("linux.namespaces") && err.contains("is not a"),
        "{err}"
    );
}

#[test]
fn bind_mount_of_a_missing_source() {
    if !isolate() {
        return;
    }
    let env = Env::new("badmount", &["true"]);
    let src = env.path("does-not-exist");
    env.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/mnt", "type": "bind", "source": src, "options": ["rbind"]
        }));
    });
    create_fails_cleanly(&env, "does-not-exist");
}

#[test]
fn unsupported_field_is_named() {
    if !isolate() {
        return;
    }
    let env = Env::new("unsup", &["true"]);
    // (linux.sysctl is carried out now: tests/spec_fields.rs.)
    env.edit(|c| c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "0"}));
    create_fails_cleanly(&env, "linux.memoryPolicy: not supported");
}

#[test]
fn duplicate_id_is_refused_and_keeps_the_first() {
    if !isolate() {
        return;
    }
    let env = Env::new("dup", &["sleep", "1000"]);
    env.create(&[]);
    let pid = env.pid();
    let err = env.fails(&["create", "--bundle", env.bundle_str(), &env.id]);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(env.status(), "created");
    assert_eq!(env.pid(), pid);
    env.ok(&["delete", &env.id]);
    env.assert_gone();
}

#[test]
fn invalid_ids_are_refused() {
    if !isolate() {
        return;
    }
    let env = Env::new("ids", &["true"]);
    for bad in ["../escape", "a/b", "..", "with space"] {
        let err = env.fails(&["create", "--bundle", env.bundle_str(), bad]);
        assert!(err.contains("invalid container id"), "{bad}: {err}");
    }
    assert!(!env.dir.path().join("escape").exists());
    common::assert_no_processes();
}
