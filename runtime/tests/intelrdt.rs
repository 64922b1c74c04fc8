//! linux.intelRdt through `myrt`: the container's resctrl group is created with its schemata, the
//! init (and exec'd processes) are written to its tasks, `events --stats` reports it, `update`
//! rewrites it and `delete` removes it — or joins and keeps a class that existed before; a host
//! without resctrl fails `create` with an error that says so and leaves nothing behind.
//!
//! No host here has RDT hardware: MYRT_RESCTRL_ROOT points the engine at a directory laid out
//! like resctrl (`myrt_runtime::intelrdt::lay_out_root`), whose kernel side (mkdir filling a
//! group, rmdir) the engine imitates on a plain directory. Each test runs as root in its own
//! mount + pid namespace (see common::isolate).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{isolate, wait_timeout, Env, Out};
use myrt_runtime::intelrdt::{lay_out_root, make_group, ROOT_ENV};
use serde_json::{json, Value};

const NO_RESCTRL: &str = "linux.intelRdt: this host has no resctrl filesystem mounted (Intel RDT \
                          needs a CPU with RDT and \"mount -t resctrl resctrl /sys/fs/resctrl\")";

/// A resctrl-shaped directory in the test's temp dir.
fn mock_root(env: &Env) -> PathBuf {
    let root = env.path("resctrl");
    fs::create_dir(&root).expect("mkdir resctrl");
    lay_out_root(&root).expect("lay out resctrl");
    root
}

/// `myrt --root <root> ARGS` with MYRT_RESCTRL_ROOT set to `resctrl` (removed when `None`).
fn myrt(env: &Env, resctrl: Option<&Path>, args: &[&str]) -> Out {
    let (out, err) = (env.path("rdt.out"), env.path("rdt.err"));
    let mut cmd = env.command(args);
    match resctrl {
        Some(r) => cmd.env(ROOT_ENV, r),
        None => cmd.env_remove(ROOT_ENV),
    };
    cmd.stdin(Stdio::null())
        .stdout(fs::File::create(&out).expect("stdout file"))
        .stderr(fs::File::create(&err).expect("stderr file"));
    let child = cmd.spawn().expect("spawn myrt");
    let (status, timed_out) = wait_timeout(child, Duration::from_secs(60));
    let res = Out {
        status,
        stdout: fs::read_to_string(&out).unwrap_or_default(),
        stderr: fs::read_to_string(&err).unwrap_or_default(),
    };
    assert!(!timed_out, "myrt {args:?} timed out: {res:?}");
    res
}

#[track_caller]
fn ok(env: &Env, resctrl: &Path, args: &[&str]) -> String {
    let out = myrt(env, Some(resctrl), args);
    assert!(out.success(), "myrt {args:?} failed: {out:?}");
    out.stdout
}

#[track_caller]
fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn tasks(group: &Path) -> Vec<String> {
    read(&group.join("tasks"))
        .lines()
        .map(str::to_string)
        .collect()
}

/// The saved config's linux.intelRdt (the state dir's config.json).
fn saved_rdt(env: &Env) -> Value {
    let path = env.root.join(&env.id).join("config.json");
    let c: Value = serde_json::from_slice(&fs::read(path).expect("saved config")).expect("json");
    c["linux"]["intelRdt"].clone()
}

#[test]
fn a_new_class_is_created_used_reported_updated_and_removed() {
    if !isolate() {
        return;
    }
    let env = Env::new("rdt", &["sleep", "1000"]);
    let root = mock_root(&env);
    // enableCMT with the spec's capitals (oci-spec reads them only through the engine's fix-up)
    env.edit(|c| {
        c["linux"]["intelRdt"] = json!({"closID": "gold", "l3CacheSchema": "L3:0=ff;1=ff",
            "memBwSchema": "MB:0=70;1=50", "enableCMT": true});
    });
    let bundle = env.bundle_str().to_string();
    ok(&env, &root, &["create", "--bundle", &bundle, &env.id]);
    let gold = root.join("gold");
    let mon = gold.join("mon_groups").join(&env.id);
    assert_eq!(read(&gold.join("schemata")), "L3:0=ff;1=ff\nMB:0=70;1=50\n");
    // the init is in the class and in the container's own MON group before it runs
    let pid = env.pid().to_string();
    assert!(
        tasks(&gold).contains(&pid),
        "{:?} lacks {pid}",
        tasks(&gold)
    );
    assert!(tasks(&mon).contains(&pid), "{:?} lacks {pid}", tasks(&mon));
    assert_eq!(
        read(&root.join("tasks")),
        "",
        "the default group is untouched"
    );
    ok(&env, &root, &["start", &env.id]);
    env.wait_status("running");

    // an exec'd process joins too (through its stage 1, whose child it is)
    let before = tasks(&mon).len();
    ok(&env, &root, &["exec", &env.id, "true"]);
    assert_eq!(tasks(&mon).len(), before + 1, "{:?}", tasks(&mon));

    // events: runc's intel_rdt object, the counters from the container's MON group
    fs::write(mon.join("mon_data/mon_L3_01/llc_occupancy"), "8192\n").expect("write counter");
    let out = ok(&env, &root, &["events", "--stats", &env.id]);
    let ev: Value = serde_json::from_str(out.trim()).expect("events JSON");
    let rdt = &ev["data"]["intel_rdt"];
    assert_eq!(rdt["l3_cache_schema"], "L3:0=ff;1=ff", "{rdt}");
    assert_eq!(rdt["l3_cache_schema_root"], "L3:0=fffff;1=fffff", "{rdt}");
    assert_eq!(rdt["mem_bw_schema"], "MB:0=70;1=50", "{rdt}");
    assert_eq!(rdt["l3_cache_info"]["cbm_mask"], "fffff", "{rdt}");
    assert_eq!(rdt["mem_bw_info"]["min_bandwidth"], 10, "{rdt}");
    assert_eq!(
        rdt["cmt_stats"],
        json!([{"llc_occupancy": 0}, {"llc_occupancy": 8192}])
    );

    // update: the given schema replaces its line, the other stays; the saved config follows
    ok(
        &env,
        &root,
        &["update", "--l3-cache-schema", "L3:0=f0", &env.id],
    );
    assert_eq!(read(&gold.join("schemata")), "L3:0=f0\nMB:0=70;1=50\n");
    let saved = saved_rdt(&env);
    assert_eq!(
        (&saved["l3CacheSchema"], &saved["memBwSchema"]),
        (&json!("L3:0=f0"), &json!("MB:0=70;1=50"))
    );
    let out = myrt(
        &env,
        Some(&root),
        &["update", "--mem-bw-schema", "MB:0=7x", &env.id],
    );
    assert!(!out.success(), "{out:?}");
    assert!(
        out.stderr
            .contains("linux.intelRdt.memBwSchema \"MB:0=7x\": line \"MB:0=7x\": MB value \"7x\""),
        "{out:?}"
    );
    assert_eq!(read(&gold.join("schemata")), "L3:0=f0\nMB:0=70;1=50\n");

    // delete: the class myrt created goes (its tasks are gone), its MON group with it; the
    // state records the root, so no MYRT_RESCTRL_ROOT is needed any more
    let out = myrt(&env, None, &["delete", "--force", &env.id]);
    assert!(out.success(), "{out:?}");
    assert!(!gold.exists(), "class left behind");
    assert!(root.join("schemata").exists());
    env.assert_gone();
}

#[test]
fn a_preexisting_class_is_joined_and_kept() {
    if !isolate() {
        return;
    }
    let env = Env::new("rdtjoin", &["sleep", "1000"]);
    let root = mock_root(&env);
    make_group(&root, "shared").expect("make class");
    fs::write(root.join("shared/schemata"), "L3:0=3;1=3\nMB:0=20;1=20\n").expect("schemata");
    env.edit(|c| c["linux"]["intelRdt"] = json!({"closID": "shared"}));
    ok(
        &env,
        &root,
        &["run", "-d", "--bundle", env.bundle_str(), &env.id],
    );
    let pid = env.pid().to_string();
    assert!(tasks(&root.join("shared")).contains(&pid));
    // a joined class cannot be rewritten through one of its containers
    let out = myrt(
        &env,
        Some(&root),
        &["update", "--mem-bw-schema", "MB:0=90", &env.id],
    );
    assert!(
        !out.success() && out.stderr.contains("it is a class this container joined"),
        "{out:?}"
    );
    ok(&env, &root, &["delete", "--force", &env.id]);
    env.assert_gone();
    assert_eq!(
        read(&root.join("shared/schemata")),
        "L3:0=3;1=3\nMB:0=20;1=20\n",
        "a joined class must stay as it was"
    );
}

#[test]
fn update_gives_a_container_without_intel_rdt_a_group_of_its_own() {
    if !isolate() {
        return;
    }
    let env = Env::new("rdtupd", &["sh", "-c", "sleep 1000 & exec sleep 1001"]);
    let root = mock_root(&env);
    ok(
        &env,
        &root,
        &["run", "-d", "--bundle", env.bundle_str(), &env.id],
    );
    assert!(!root.join(&env.id).exists());
    ok(
        &env,
        &root,
        &["update", "--mem-bw-schema", "MB:0=40", &env.id],
    );
    let group = root.join(&env.id);
    assert_eq!(read(&group.join("schemata")), "MB:0=40\n");
    // every process of the container moved in, not only the init (runc moves the init only)
    let out = ok(&env, &root, &["ps", "--format", "json", &env.id]);
    let pids: Vec<i64> = serde_json::from_str(out.trim()).expect("ps json");
    assert_eq!(pids.len(), 2, "{pids:?}");
    for pid in pids {
        assert!(
            tasks(&group).contains(&pid.to_string()),
            "{pid} not in {:?}",
            tasks(&group)
        );
    }
    assert_eq!(saved_rdt(&env), json!({"memBwSchema": "MB:0=40"}));
    ok(&env, &root, &["delete", "--force", &env.id]);
    assert!(!group.exists(), "group left behind");
    env.assert_gone();
}

#[test]
fn a_class_with_other_schemata_fails_create_and_leaves_nothing() {
    if !isolate() {
        return;
    }
    let env = Env::new("rdtbad", &["true"]);
    let root = mock_root(&env);
    make_group(&root, "shared").expect("make class");
    fs::write(root.join("shared/schemata"), "L3:0=3;1=3\n").expect("schemata");
    env.edit(|c| c["linux"]["intelRdt"] = json!({"closID": "shared", "l3CacheSchema": "L3:0=ff"}));
    let out = myrt(
        &env,
        Some(&root),
        &["create", "--bundle", env.bundle_str(), &env.id],
    );
    assert!(!out.success(), "{out:?}");
    assert!(
        out.stderr.contains(
            "linux.intelRdt.closID \"shared\": the existing group {} does not match"
                .replace("{}", &root.join("shared").display().to_string())
                .as_str()
        ) && out.stderr.contains("L3 cache id 0 is 3 there, not ff"),
        "{out:?}"
    );
    env.assert_gone();
    assert!(root.join("shared").is_dir());
    assert_eq!(read(&root.join("shared/tasks")), "");
}

#[test]
fn no_resctrl_fails_create_and_leaves_nothing() {
    if !isolate() {
        return;
    }
    let env = Env::new("rdtnone", &["true"]);
    env.edit(|c| c["linux"]["intelRdt"] = json!({"l3CacheSchema": "L3:0=ff"}));
    let missing = env.path("no-resctrl-here");
    let out = myrt(
        &env,
        Some(&missing),
        &["run", "--bundle", env.bundle_str(), &env.id],
    );
    assert!(!out.success(), "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "{NO_RESCTRL}; MYRT_RESCTRL_ROOT={} is not a directory",
            missing.display()
        )),
        "{out:?}"
    );
    env.assert_gone();

    // this host's own mount table: no resctrl on these machines (checked, not assumed)
    let host_has_resctrl = fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .any(|l| {
            l.split(" - ")
                .nth(1)
                .is_some_and(|r| r.starts_with("resctrl "))
        });
    if host_has_resctrl {
        eprintln!("SKIP the unset-variable half: this host has resctrl mounted");
        return;
    }
    let out = myrt(
        &env,
        None,
        &["create", "--bundle", env.bundle_str(), &env.id],
    );
    assert!(!out.success(), "{out:?}");
    assert!(out.stderr.contains(NO_RESCTRL), "{out:?}");
    env.assert_gone();
}

#[test]
fn a_capability_the_host_lacks_fails_create_naming_the_field() {
    if !isolate() {
        return;
    }
    let env = Env::new("rdtcap", &["true"]);
    let root = mock_root(&env);
    fs::remove_dir_all(root.join("info/MB")).expect("rm info/MB");
    env.edit(|c| c["linux"]["intelRdt"] = json!({"memBwSchema": "MB:0=50"}));
    let out = myrt(
        &env,
        Some(&root),
        &["create", "--bundle", env.bundle_str(), &env.id],
    );
    assert!(
        !out.success()
            && out.stderr.contains(&format!(
                "linux.intelRdt.memBwSchema: this host's resctrl ({}) has no memory bandwidth \
                 allocation (MBA) for MB lines (no info/MB)",
                root.display()
            )),
        "{out:?}"
    );
    env.assert_gone();
    assert!(!root.join(&env.id).exists());
}

#[test]
fn features_say_intel_rdt_is_supported() {
    let out = std::process::Command::new(common::myrt_bin())
        .arg("features")
        .output()
        .expect("myrt features");
    let f: Value = serde_json::from_slice(&out.stdout).expect("features JSON");
    assert_eq!(f["linux"]["intelRdt"]["enabled"], true, "{f}");
}
