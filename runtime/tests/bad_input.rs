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
    // (linux.sysctl, memoryPolicy and netDevices are carried out now.)
    env.edit(|c| c["linux"]["intelRdt"] = json!({"schemata": ["L3:0=f"]}));
    create_fails_cleanly(&env, "linux.intelRdt.schemata: not supported");
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

/// A bad value in config.json fails `create` naming the field and the value, before anything
/// exists, and leaves nothing behind.
#[track_caller]
fn bad_value(tag: &str, edit: impl FnOnce(&mut serde_json::Value), want: &str) {
    let env = Env::new(tag, &["true"]);
    env.edit(edit);
    create_fails_cleanly(&env, want);
}

#[test]
fn negative_memory_limit_is_refused_but_minus_one_means_unlimited() {
    if !isolate() {
        return;
    }
    bad_value(
        "memneg",
        |c| c["linux"]["resources"]["memory"] = json!({"limit": -5}),
        r#"linux.resources.memory.limit: invalid value "-5": use a number of bytes, or -1 for no limit"#,
    );
    bad_value(
        "swapneg",
        |c| c["linux"]["resources"]["memory"] = json!({"limit": 67108864, "swap": -2}),
        r#"linux.resources.memory.swap: invalid value "-2""#,
    );
    // -1 is "no limit" for the limit too (runc writes -1 on v1, "max" on v2).
    let env = Env::new("memunl", &["true"]);
    env.edit(|c| c["linux"]["resources"]["memory"] = json!({"limit": -1, "swap": -1}));
    let out = env.run(&[]);
    assert!(out.success(), "{out:?}");
    env.assert_gone();
}

#[test]
fn unknown_capability_is_named_with_its_set() {
    if !isolate() {
        return;
    }
    bad_value(
        "capnope",
        |c| {
            c["process"]["capabilities"]["bounding"]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_NOPE"))
        },
        r#"process.capabilities.bounding["#,
    );
    let env = Env::new("capnope2", &["true"]);
    env.edit(|c| c["process"]["capabilities"]["ambient"] = json!(["CAP_NOPE"]));
    let err = create_fails_cleanly(
        &env,
        r#"process.capabilities.ambient[0] "CAP_NOPE": unknown capability"#,
    );
    assert!(
        !err.contains("line "),
        "serde's position, not the field: {err}"
    );
}

#[test]
fn misspelt_seccomp_syscall_is_refused_naming_field_and_value() {
    if !isolate() {
        return;
    }
    bad_value(
        "scnope",
        |c| {
            c["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                "syscalls": [{"names": ["mkdir", "mkdri"], "action": "SCMP_ACT_ERRNO"}]
            })
        },
        r#"linux.seccomp.syscalls[0].names[1] "mkdri": unknown syscall on every architecture"#,
    );
}

#[test]
fn unknown_mount_type_names_the_mount_and_the_type() {
    if !isolate() {
        return;
    }
    let env = Env::new("nofs", &["true"]);
    env.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/mnt", "type": "nofs", "source": "none"
        }))
    });
    let n = env.config()["mounts"].as_array().unwrap().len() - 1;
    let err = create_fails_cleanly(&env, &format!("mounts[{n}]"));
    assert!(
        err.contains(r#""/mnt""#) && err.contains(r#""nofs""#) && err.contains("ENODEV"),
        "{err}"
    );
}

#[test]
fn out_of_range_cpu_shares_are_refused() {
    if !isolate() {
        return;
    }
    for (tag, shares) in [("shares1", 1u64), ("shareshi", 99_999_999)] {
        bad_value(
            tag,
            |c| c["linux"]["resources"]["cpu"] = json!({"shares": shares}),
            &format!(r#"linux.resources.cpu.shares: invalid value "{shares}": use 2 to 262144"#),
        );
    }
}

#[test]
fn bad_cpuset_lists_are_refused() {
    if !isolate() {
        return;
    }
    bad_value(
        "cpusbad",
        |c| c["linux"]["resources"]["cpu"] = json!({"cpus": "0-abc"}),
        r#"linux.resources.cpu.cpus: invalid value "0-abc": "abc" is not a number"#,
    );
    bad_value(
        "cpusback",
        |c| c["linux"]["resources"]["cpu"] = json!({"cpus": "0", "mems": "3-1"}),
        r#"linux.resources.cpu.mems: invalid value "3-1": range "3-1" goes backwards"#,
    );
}

#[test]
fn unknown_rlimit_type_is_named_with_its_index() {
    if !isolate() {
        return;
    }
    bad_value(
        "rlnope",
        |c| {
            c["process"]["rlimits"] = json!([
                {"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024},
                {"type": "RLIMIT_NOPE", "hard": 1, "soft": 1}
            ])
        },
        r#"process.rlimits[1].type "RLIMIT_NOPE": unknown rlimit type"#,
    );
}
