//! The process/linux fields of config.json that reach the kernel through a single call each:
//! linux.sysctl, linux.personality, linux.timeOffsets, process.ioPriority, process.scheduler
//! and process.execCPUAffinity. Each is shown to take effect inside the container, and a bad
//! value of each is refused with an error naming the field, leaving nothing behind.
//! Each test runs as root in its own mount + pid namespace (see common::isolate).

mod common;

use std::fs;

use common::{isolate, Env};
use serde_json::{json, Value};

/// Runs the container, which must be refused with an error starting with `want` somewhere in
/// stderr; nothing of it may remain.
#[track_caller]
fn refused(env: &Env, want: &str) {
    let out = env.run(&[]);
    assert!(!out.success(), "{out:?}");
    assert!(out.stderr.contains(want), "want {want:?} in {out:?}");
    env.assert_gone();
}

fn drop_namespace(c: &mut Value, kind: &str) {
    if let Some(list) = c["linux"]["namespaces"].as_array_mut() {
        list.retain(|n| n["type"] != kind);
    }
}

#[test]
fn sysctl_is_written_in_the_containers_namespaces() {
    if !isolate() {
        return;
    }
    let host_forward = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let host_shmmax = fs::read_to_string("/proc/sys/kernel/shmmax").unwrap();
    // A value unlike the host's: a fresh network namespace starts with ip_forward 0.
    let env = Env::new(
        "sysctl",
        &[
            "sh",
            "-c",
            "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax",
        ],
    );
    env.edit(|c| {
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel/shmmax": "12345678"});
    });
    assert_eq!(env.run_ok(), "1\n12345678\n");
    assert_eq!(
        fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_forward
    );
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/shmmax").unwrap(),
        host_shmmax
    );
}

#[test]
fn sysctl_outside_a_namespace_is_refused() {
    if !isolate() {
        return;
    }
    let env = Env::new("sysctl-bad", &["true"]);
    env.edit(|c| c["linux"]["sysctl"] = json!({"vm.swappiness": "10"}));
    refused(
        &env,
        r#"linux.sysctl["vm.swappiness"]: not in a separate kernel namespace"#,
    );
    // A namespaced key, but the container shares the host's network namespace.
    env.edit(|c| {
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
        drop_namespace(c, "network");
    });
    refused(
        &env,
        r#"linux.sysctl["net.ipv4.ip_forward"]: needs a new network namespace"#,
    );
    env.edit(|c| c["linux"]["sysctl"] = json!({"net/../../kernel/x": "1"}));
    refused(
        &env,
        r#"linux.sysctl["net/../../kernel/x"]: not a sysctl name"#,
    );
}

#[test]
fn sysctl_value_the_kernel_rejects_names_key_and_value() {
    if !isolate() {
        return;
    }
    let env = Env::new("sysctl-val", &["true"]);
    env.edit(|c| c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "banana"}));
    refused(
        &env,
        r#"linux.sysctl["net.ipv4.ip_forward"] = "banana": the kernel refused the value"#,
    );
    env.edit(|c| c["linux"]["sysctl"] = json!({"net.ipv4.no_such_knob": "1"}));
    refused(
        &env,
        r#"linux.sysctl["net.ipv4.no_such_knob"]: open /proc/sys/net/ipv4/no_such_knob: this kernel has no such sysctl"#,
    );
}

#[test]
fn personality_linux32_reports_a_32_bit_machine() {
    if !isolate() {
        return;
    }
    if std::env::consts::ARCH != "x86_64" {
        eprintln!("skipped: LINUX32 shows as i686 only on x86_64");
        return;
    }
    let env = Env::new("persona", &["uname", "-m"]);
    assert_eq!(env.run_ok(), "x86_64\n");
    env.edit(|c| c["linux"]["personality"] = json!({"domain": "LINUX32"}));
    assert_eq!(env.run_ok(), "i686\n");
    env.edit(|c| {
        c["linux"]["personality"] = json!({"domain": "LINUX32", "flags": ["ADDR_NO_RANDOMIZE"]})
    });
    refused(&env, "linux.personality.flags");
    env.edit(|c| c["linux"]["personality"] = json!({"domain": "LINUX64"}));
    refused(
        &env,
        r#"linux.personality.domain "LINUX64": unknown; use one of LINUX, LINUX32"#,
    );
}

#[test]
fn io_priority_is_set() {
    if !isolate() {
        return;
    }
    let env = Env::new("ioprio", &["sh", "-c", "ionice -p $$"]);
    env.edit(|c| c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0}));
    assert_eq!(env.run_ok(), "idle\n");
    env.edit(|c| c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 3}));
    assert_eq!(env.run_ok(), "best-effort: prio 3\n");
    env.edit(|c| c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 8}));
    refused(&env, "process.ioPriority.priority 8: out of range");
}

#[test]
fn scheduler_policy_and_nice_are_set() {
    if !isolate() {
        return;
    }
    // /proc/<pid>/stat: field 19 is nice, field 41 the policy (SCHED_BATCH 3, SCHED_IDLE 5).
    let env = Env::new("sched", &["sh", "-c", "cut -d' ' -f19,41 /proc/self/stat"]);
    env.edit(|c| c["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 5}));
    assert_eq!(env.run_ok(), "5 3\n");
    env.edit(|c| {
        c["process"]["args"] = json!(["cut", "-d ", "-f41", "/proc/self/stat"]);
        c["process"]["scheduler"] = json!({"policy": "SCHED_IDLE"});
    });
    assert_eq!(env.run_ok(), "5\n");
    // The spec's flag name (oci-spec spells it otherwise): a forked child does not keep the
    // negative nice of the shell (nice of the shell, then of `cat`, forked as part
    // of a pipe: busybox would run a lone cut in the shell's own process).
    env.edit(|c| {
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "cut -d' ' -f19 /proc/$$/stat; cat /proc/self/stat | cut -d' ' -f19"
        ]);
        c["process"]["scheduler"] =
            json!({"policy": "SCHED_OTHER", "nice": -5, "flags": ["SCHED_FLAG_RESET_ON_FORK"]});
    });
    assert_eq!(env.run_ok(), "-5\n0\n");
    env.edit(|c| c["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "priority": 5}));
    refused(
        &env,
        "process.scheduler.priority 5: only SCHED_FIFO and SCHED_RR",
    );
    env.edit(|c| c["process"]["scheduler"] = json!({"policy": "SCHED_OTHER", "nice": 42}));
    refused(&env, "process.scheduler.nice 42: out of range");
}

#[test]
fn exec_cpu_affinity_applies_to_exec() {
    if !isolate() {
        return;
    }
    let env = Env::new("affinity", &["sleep", "1000"]);
    env.edit(|c| c["process"]["execCPUAffinity"] = json!({"initial": "0", "final": "0"}));
    env.run(&["-d"]);
    let id = env.id.as_str();
    let out = env.ok(&["exec", id, "grep", "Cpus_allowed_list", "/proc/self/status"]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["Cpus_allowed_list:", "0"]
    );
    // A CPU that cannot exist here: exec fails, naming the field.
    let process = env.path("process.json");
    fs::write(
        &process,
        json!({"args": ["/bin/true"], "cwd": "/", "user": {"uid": 0, "gid": 0},
               "execCPUAffinity": {"final": "1000"}})
        .to_string(),
    )
    .unwrap();
    let err = env.fails(&["exec", "--process", process.to_str().unwrap(), id]);
    assert!(
        err.contains("process.execCPUAffinity.final \"1000\""),
        "{err}"
    );
    // An exec'd process' ioPriority and scheduler are checked too (in the process itself).
    fs::write(
        &process,
        json!({"args": ["/bin/true"], "cwd": "/", "user": {"uid": 0, "gid": 0},
               "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 9}})
        .to_string(),
    )
    .unwrap();
    let err = env.fails(&["exec", "--process", process.to_str().unwrap(), id]);
    assert!(
        err.contains("process.ioPriority.priority 9: out of range"),
        "{err}"
    );
    fs::write(
        &process,
        json!({"args": ["sh", "-c", "ionice -p $$; cut -d' ' -f41 /proc/self/stat"],
               "cwd": "/", "user": {"uid": 0, "gid": 0}, "env": ["PATH=/bin"],
               "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 6},
               "scheduler": {"policy": "SCHED_BATCH"}})
        .to_string(),
    )
    .unwrap();
    let out = env.ok(&["exec", "--process", process.to_str().unwrap(), id]);
    assert_eq!(out, "best-effort: prio 6\n3\n");
    env.ok(&["delete", "--force", id]);
    env.assert_gone();
    // A list that is not one is refused at create.
    env.edit(|c| c["process"]["execCPUAffinity"] = json!({"final": "3-1"}));
    refused(&env, "3-1");
}

#[test]
fn time_offsets_shift_the_containers_clocks() {
    if !isolate() {
        return;
    }
    let env = Env::new(
        "timens",
        &[
            "sh",
            "-c",
            "cat /proc/self/timens_offsets; cut -d. -f1 /proc/uptime",
        ],
    );
    env.edit(|c| {
        common::add_namespace(c, "time");
        c["linux"]["timeOffsets"] =
            json!({"boottime": {"secs": 86400}, "monotonic": {"secs": 3600, "nanosecs": 7}});
    });
    let out = env.run_ok();
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[..2],
        [["monotonic", "3600", "7"], ["boottime", "86400", "0"]],
        "{out}"
    );
    let uptime: u64 = lines[2][0].parse().unwrap();
    let host: u64 = fs::read_to_string("/proc/uptime")
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(uptime >= host + 86400 - 5, "uptime {uptime}, host {host}");
    // Without a new time namespace, or with an unknown clock: refused.
    env.edit(|c| drop_namespace(c, "time"));
    refused(&env, "linux.timeOffsets: needs a new time namespace");
    env.edit(|c| {
        common::add_namespace(c, "time");
        c["linux"]["timeOffsets"] = json!({"realtime": {"secs": 1}});
    });
    refused(&env, r#"linux.timeOffsets "realtime": unknown clock"#);
}

#[test]
fn sysctl_is_not_redirected_by_the_rootfs() {
    if !isolate() {
        return;
    }
    // CVE-2019-19921 class: /proc in the container is not procfs, so the write must not
    // happen (the symlink cases of the lookup itself: setup::sysctl's unit tests).
    let env = Env::new("sysctl-proc", &["true"]);
    env.edit(|c| {
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| m["destination"] != "/proc");
        c["linux"]["maskedPaths"] = json!([]);
        c["linux"]["readonlyPaths"] = json!([]);
    });
    // No procfs: the rootfs' own /proc holds a writable file where the knob would be.
    let fake = env.bundle.join("rootfs/proc/sys/net/ipv4");
    fs::create_dir_all(&fake).unwrap();
    fs::write(fake.join("ip_forward"), "untouched").unwrap();
    refused(
        &env,
        r#"linux.sysctl["net.ipv4.ip_forward"]: needs procfs mounted at /proc in the container"#,
    );
    assert_eq!(
        fs::read_to_string(fake.join("ip_forward")).unwrap(),
        "untouched"
    );
    fs::remove_dir_all(env.bundle.join("rootfs/proc/sys")).unwrap();
    // And with the real procfs, the walk writes as openat2 does.
    env.edit(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/proc", "type": "proc", "source": "proc"}));
        c["process"]["args"] = json!(["cat", "/proc/sys/net/ipv4/ip_forward"]);
    });
    assert_eq!(env.run_ok(), "1\n");
}

#[test]
fn domainname_and_umask_are_set() {
    if !isolate() {
        return;
    }
    let env = Env::new(
        "uts-umask",
        &["sh", "-c", "cat /proc/sys/kernel/domainname; umask"],
    );
    env.edit(|c| {
        c["domainname"] = json!("myrt.example");
        c["process"]["user"]["umask"] = json!(0o027);
    });
    assert_eq!(env.run_ok(), "myrt.example\n0027\n");
    assert_ne!(
        fs::read_to_string("/proc/sys/kernel/domainname").unwrap(),
        "myrt.example\n",
        "the host's domain name changed"
    );
}
