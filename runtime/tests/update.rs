//! `myrt update` on the real kernel: new limits land in the cgroup files and take effect, only
//! the given fields change, the saved config follows, a value the kernel refuses is reported with
//! its field and the previous limits stay in force. Each test runs as root in its own mount + pid
//! namespace (see common::isolate). Written for both hierarchies: the cgroup files are looked up
//! by their v1 or v2 name; the memory-below-usage refusal by the kernel is v1 only (on v2 the
//! kernel OOM-kills instead), its checkBeforeUpdate variant runs on both.

mod common;

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{is_v2, isolate, Env};
use serde_json::{json, Value};

const V1_UNLIMITED: &str = "9223372036854771712";

/// The container's cgroup file.
fn cg_path(env: &Env, controller: &str, v1: &str, v2: &str) -> PathBuf {
    common::cg_file(&env.cgroup, controller, v1, v2)
}

#[track_caller]
fn cg(env: &Env, controller: &str, v1: &str, v2: &str) -> String {
    let p = cg_path(env, controller, v1, v2);
    fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

fn pids_max(env: &Env) -> String {
    cg(env, "pids", "pids.max", "pids.max")
}

fn memory_limit(env: &Env) -> String {
    cg(env, "memory", "memory.limit_in_bytes", "memory.max")
}

/// "unlimited" as the memory limit file shows it.
fn unlimited() -> &'static str {
    if is_v2() {
        "max"
    } else {
        V1_UNLIMITED
    }
}

/// linux.resources of the container's saved config (the state dir's config.json).
fn saved(env: &Env) -> Value {
    let path = env.root.join(&env.id).join("config.json");
    let c: Value = serde_json::from_slice(&fs::read(&path).expect("saved config")).expect("json");
    c["linux"]["resources"].clone()
}

fn with_resources(env: &Env, r: Value) {
    env.edit(|c| {
        for (k, v) in r.as_object().expect("object") {
            c["linux"]["resources"][k] = v.clone();
        }
    });
}

/// `myrt exec` of a shell that starts 8 background sleeps: fails once pids.max is low.
fn fork_eight(env: &Env) -> common::Out {
    env.myrt(&[
        "exec",
        &env.id,
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait; echo forked",
    ])
}

#[test]
fn update_pids_limit_stops_the_next_fork() {
    if !isolate() {
        return;
    }
    let env = Env::new("upids", &["sleep", "1000"]);
    env.ok(&["run", "-d", "--bundle", env.bundle_str(), &env.id]);
    assert_eq!(pids_max(&env), "max");
    let out = fork_eight(&env);
    assert!(out.success() && out.stdout.contains("forked"), "{out:?}");

    env.ok(&["update", "--pids-limit", "4", &env.id]);
    assert_eq!(pids_max(&env), "4");
    assert_eq!(saved(&env)["pids"]["limit"], 4);
    let out = fork_eight(&env);
    assert!(!out.success(), "forks beyond pids.max=4 succeeded: {out:?}");
    assert!(out.stderr.contains("fork"), "{out:?}");
    assert!(!out.stdout.contains("forked"), "{out:?}");

    // raised again, from a JSON file: the forks work again; other fields untouched
    let file = env.path("pids.json");
    fs::write(&file, r#"{"pids":{"limit":64}}"#).unwrap();
    env.ok(&["update", "-r", file.to_str().unwrap(), &env.id]);
    assert_eq!(pids_max(&env), "64");
    let out = fork_eight(&env);
    assert!(out.success() && out.stdout.contains("forked"), "{out:?}");
    assert_eq!(memory_limit(&env), unlimited());

    env.ok(&["update", "--pids-limit", "-1", &env.id]);
    assert_eq!(pids_max(&env), "max");
    env.ok(&["delete", "--force", &env.id]);
    env.assert_gone();
}

#[test]
fn update_memory_raise_lower_and_saved() {
    if !isolate() {
        return;
    }
    let env = Env::new("umem", &["sleep", "1000"]);
    with_resources(
        &env,
        json!({"memory": {"limit": 100 << 20}, "pids": {"limit": 50}}),
    );
    env.ok(&["run", "-d", "--bundle", env.bundle_str(), &env.id]);
    assert_eq!(memory_limit(&env), (100u64 << 20).to_string());

    env.ok(&["update", "--memory", "200m", &env.id]);
    assert_eq!(memory_limit(&env), (200u64 << 20).to_string());
    env.ok(&["update", "--memory", "50M", &env.id]);
    assert_eq!(memory_limit(&env), (50u64 << 20).to_string());
    // only memory changed; the saved config has the new limit and the old pids limit
    assert_eq!(pids_max(&env), "50");
    assert_eq!(saved(&env)["memory"]["limit"], 50 << 20);
    assert_eq!(saved(&env)["pids"]["limit"], 50);

    if !is_v2() {
        // memory+swap: raised above the limit, then both lowered below the old limit (the
        // limit must go first), then both raised above the old memory+swap (swap first)
        env.ok(&[
            "update",
            "--memory",
            "50m",
            "--memory-swap",
            "300m",
            &env.id,
        ]);
        let memsw = || cg(&env, "memory", "memory.memsw.limit_in_bytes", "");
        assert_eq!(memsw(), (300u64 << 20).to_string());
        env.ok(&["update", "--memory", "20m", "--memory-swap", "30m", &env.id]);
        assert_eq!(memory_limit(&env), (20u64 << 20).to_string());
        assert_eq!(memsw(), (30u64 << 20).to_string());
        env.ok(&[
            "update",
            "--memory",
            "400m",
            "--memory-swap",
            "500m",
            &env.id,
        ]);
        assert_eq!(memory_limit(&env), (400u64 << 20).to_string());
        assert_eq!(memsw(), (500u64 << 20).to_string());
        // a limit above memory+swap is the kernel's EINVAL, named
        let err = env.fails(&["update", "--memory", "600m", &env.id]);
        assert!(
            err.contains("linux.resources.memory.limit") && err.contains("629145600"),
            "{err}"
        );
        assert_eq!(memory_limit(&env), (400u64 << 20).to_string());
        // -1 without a swap value lifts both (runc)
        env.ok(&["update", "--memory", "-1", &env.id]);
        assert_eq!(memory_limit(&env), V1_UNLIMITED);
        assert_eq!(memsw(), V1_UNLIMITED);
    }
    env.ok(&["delete", "--force", &env.id]);
    env.assert_gone();
}

/// A container holding ~40 MB of shmem (not reclaimable without swap) under a 100 MB limit.
fn memory_hog(tag: &str) -> Env {
    let env = Env::new(
        tag,
        &[
            "sh",
            "-c",
            "head -c 41943040 /dev/zero > /dev/shm/fill && touch /dev/shm/ready; sleep 1000",
        ],
    );
    with_resources(&env, json!({"memory": {"limit": 100 << 20}}));
    env.ok(&["run", "-d", "--bundle", env.bundle_str(), &env.id]);
    let usage = || {
        cg(&env, "memory", "memory.usage_in_bytes", "memory.current")
            .parse::<u64>()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while usage() < 40 << 20 {
        assert!(Instant::now() < deadline, "usage stayed at {}", usage());
        std::thread::sleep(Duration::from_millis(50));
    }
    env
}

#[test]
fn update_memory_below_usage_is_refused_and_the_old_limit_stays() {
    if !isolate() {
        return;
    }
    let env = memory_hog("ubelow");
    let old = (100u64 << 20).to_string();
    // refused before any write with checkBeforeUpdate (both hierarchies)
    let file = env.path("check.json");
    fs::write(
        &file,
        r#"{"memory":{"limit":10485760,"checkBeforeUpdate":true}}"#,
    )
    .unwrap();
    let err = env.fails(&["update", "-r", file.to_str().unwrap(), &env.id]);
    assert!(
        err.contains("linux.resources.memory.limit")
            && err.contains("10485760")
            && err.contains("below the current usage"),
        "{err}"
    );
    assert_eq!(memory_limit(&env), old);
    assert_eq!(saved(&env)["memory"]["limit"], 100 << 20);

    if !is_v2() {
        // the kernel itself refuses (EBUSY) what it cannot reclaim
        let err = env.fails(&["update", "--memory", "10m", &env.id]);
        assert!(
            err.contains("linux.resources.memory.limit")
                && err.contains("10485760")
                && err.contains("memory.limit_in_bytes")
                && err.contains("the previous limits are in force again"),
            "{err}"
        );
        assert_eq!(memory_limit(&env), old);
        assert_eq!(saved(&env)["memory"]["limit"], 100 << 20);
        assert_eq!(env.status(), "running");
    }
    env.ok(&["delete", "--force", &env.id]);
    env.assert_gone();
}

#[test]
fn update_refused_value_rolls_back_what_was_written_before_it() {
    if !isolate() {
        return;
    }
    let env = Env::new("uroll", &["sleep", "1000"]);
    with_resources(&env, json!({"memory": {"limit": 100 << 20}}));
    env.ok(&["run", "-d", "--bundle", env.bundle_str(), &env.id]);
    let before_saved = saved(&env);

    // memory is written before pids: the invalid pids limit must bring the old memory back
    let file = env.path("bad.json");
    fs::write(
        &file,
        r#"{"memory":{"limit":52428800},"pids":{"limit":99999999}}"#,
    )
    .unwrap();
    let err = env.fails(&["update", "-r", file.to_str().unwrap(), &env.id]);
    assert!(
        err.contains("linux.resources.pids.limit") && err.contains("99999999"),
        "{err}"
    );
    assert_eq!(memory_limit(&env), (100u64 << 20).to_string());
    assert_eq!(pids_max(&env), "max");
    assert_eq!(saved(&env), before_saved);

    // a limit the config never had goes back to the kernel's default: cpu.shares is written
    // before pids
    env.ok(&["update", "--memory", "-1", &env.id]);
    let err = env.fails(&[
        "update",
        "--cpu-share",
        "512",
        "--pids-limit",
        "99999999",
        &env.id,
    ]);
    assert!(err.contains("linux.resources.pids.limit"), "{err}");
    assert_eq!(
        cg(&env, "cpu", "cpu.shares", "cpu.weight"),
        if is_v2() { "100" } else { "1024" }
    );
    assert_eq!(memory_limit(&env), unlimited());

    // a cpuset outside the online cpus
    let cpus = cg(&env, "cpuset", "cpuset.cpus", "cpuset.cpus");
    let err = env.fails(&["update", "--cpuset-cpus", "0-1023", &env.id]);
    assert!(
        err.contains("linux.resources.cpu.cpus") && err.contains("0-1023"),
        "{err}"
    );
    assert_eq!(cg(&env, "cpuset", "cpuset.cpus", "cpuset.cpus"), cpus);
    assert!(saved(&env)["cpu"].get("cpus").is_none(), "{}", saved(&env));

    // a value create refuses is named before anything is written
    let shares = cg(&env, "cpu", "cpu.shares", "cpu.weight");
    let err = env.fails(&["update", "--cpu-share", "1", "--pids-limit", "7", &env.id]);
    assert!(
        err.contains("linux.resources.cpu.shares") && err.contains('1'),
        "{err}"
    );
    assert_eq!(cg(&env, "cpu", "cpu.shares", "cpu.weight"), shares);
    assert_eq!(pids_max(&env), "max");

    // a stopped container cannot be updated
    env.ok(&["kill", &env.id, "KILL"]);
    env.wait_status("stopped");
    let err = env.fails(&["update", "--pids-limit", "5", &env.id]);
    assert!(err.contains("cannot update a stopped container"), "{err}");
    env.ok(&["delete", &env.id]);
    env.assert_gone();
}

#[test]
fn update_created_and_paused_containers_keep_their_status() {
    if !isolate() {
        return;
    }
    let env = Env::new("ustate", &["sleep", "1000"]);
    env.create(&[]);
    env.ok(&["update", "--pids-limit", "40", &env.id]);
    assert_eq!(pids_max(&env), "40");
    assert_eq!(env.status(), "created");
    env.ok(&["start", &env.id]);
    env.wait_status("running");

    env.ok(&["pause", &env.id]);
    env.ok(&["update", "--pids-limit", "30", "--memory", "64m", &env.id]);
    assert_eq!(env.status(), "paused");
    assert_eq!(pids_max(&env), "30");
    assert_eq!(memory_limit(&env), (64u64 << 20).to_string());
    env.ok(&["resume", &env.id]);
    assert_eq!(env.status(), "running");

    // devices can be repeated (CRI does) but not changed
    let file = env.path("dev.json");
    fs::write(&file, r#"{"devices":[{"allow":true,"access":"rwm"}]}"#).unwrap();
    let err = env.fails(&["update", "-r", file.to_str().unwrap(), &env.id]);
    assert!(err.contains("linux.resources.devices"), "{err}");
    fs::write(&file, r#"{"devices":[{"allow":false,"access":"rwm"}]}"#).unwrap();
    env.ok(&["update", "-r", file.to_str().unwrap(), &env.id]);
    env.ok(&["delete", "--force", &env.id]);
    env.assert_gone();
}
