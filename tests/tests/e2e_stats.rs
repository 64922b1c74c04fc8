//! Stats through containerd: `ctr tasks metrics` (the shim's Stats RPC) on a running container,
//! in both of ctr's formats, and Stats after the container's cgroup was removed behind the
//! shim's back; and `myrt events` (runc's stats JSON, compared with runc's own when installed). Runs on either cgroup hierarchy: the metrics are containerd's cgroup v1 or v2
//! ones, as the host has.
//!
//! Run as root: `cargo test -p myrt-tests --test e2e_stats` (each test re-runs itself in a
//! private mount + pid namespace unless scripts/test.sh made one).
//!
//! containerd's Metrics API drops a shim's Stats error (it logs "collecting metrics for ID" and
//! ctr says "no metrics received"), so the error text is read from containerd's log.
//!
//! Validated against containerd's runc shim (MYRT_E2E_RUNTIME=io.containerd.runc.v2): all pass;
//! for a removed cgroup runc's shim answers empty metrics instead of an error, so that test
//! checks the error only for myrt.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use myrt_runtime::cgroups::{self, Hierarchy};
use myrt_tests::{bin_dir, command, image, isolate, runtime, Containerd, MYRT_RUNTIME};
use serde_json::Value;

const SETTLE: Duration = Duration::from_secs(20);
/// Two processes: the shell's background sleep and the shell itself, exec'd into a sleep.
const TWO_SLEEPS: &[&str] = &["/bin/sh", "-c", "/bin/sleep 1000 & exec /bin/sleep 1001"];
const LIMIT: u64 = 64 << 20;

fn hierarchy() -> Hierarchy {
    cgroups::probe().unwrap_or_else(|e| panic!("probe the cgroup hierarchy: {e}"))
}

fn remove(cd: &Containerd, id: &str) {
    cd.ctr(["tasks", "kill", "-s", "SIGKILL", id]).ok();
    cd.wait_task_status(id, "STOPPED", SETTLE);
    cd.ctr(["tasks", "delete", id]).ok();
    cd.ctr(["containers", "delete", id]).ok();
}

/// `ctr t metrics ID` in table form: metric name to value (the ID/TIMESTAMP header skipped).
fn metrics_table(cd: &Containerd, id: &str) -> Vec<(String, String)> {
    let out = cd.ctr(["tasks", "metrics", id]).ok();
    eprintln!("ctr tasks metrics {id}:\n{}", out.stdout); // a sample for the notes (--nocapture)
    let mut rows = Vec::new();
    let mut in_metrics = false;
    for line in out.stdout.lines() {
        let mut cols = line.split_whitespace();
        match (cols.next(), cols.next()) {
            (Some("METRIC"), Some("VALUE")) => in_metrics = true,
            (Some(k), Some(v)) if in_metrics => rows.push((k.to_string(), v.to_string())),
            _ => {}
        }
    }
    assert!(!rows.is_empty(), "no metrics in the table: {out}");
    rows
}

fn metrics_json(cd: &Containerd, id: &str) -> Value {
    let out = cd.ctr(["tasks", "metrics", "--format", "json", id]).ok();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn num(v: &Value, path: &[&str]) -> u64 {
    let mut cur = v;
    for key in path {
        cur = &cur[key];
    }
    // Go's JSON omits zero values: a missing number is 0.
    cur.as_u64().unwrap_or(0)
}

fn table_value(rows: &[(String, String)], name: &str) -> String {
    rows.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no {name} in {rows:?}"))
}

#[test]
fn metrics_show_real_numbers() {
    if !isolate() {
        return;
    }
    let cd = Containerd::start();
    let limit = LIMIT.to_string();
    cd.run_image_detached(&["--memory-limit", &limit], "m1", TWO_SLEEPS);
    let ps = cd.ctr(["tasks", "ps", "m1"]).ok();
    let procs = ps.stdout.lines().skip(1).filter(|l| !l.trim().is_empty());
    assert_eq!(procs.count(), 2, "{ps}");

    let json = metrics_json(&cd, "m1");
    let rows = metrics_table(&cd, "m1");
    match hierarchy() {
        Hierarchy::V1 => {
            assert_eq!(num(&json, &["pids", "current"]), 2, "{json:#}");
            assert!(num(&json, &["memory", "usage", "usage"]) > 0, "{json:#}");
            assert_eq!(num(&json, &["memory", "usage", "limit"]), LIMIT, "{json:#}");
            assert!(num(&json, &["cpu", "usage", "total"]) > 0, "{json:#}");
            let per_cpu = json["cpu"]["usage"]["per_cpu"].as_array();
            assert!(per_cpu.is_some_and(|p| !p.is_empty()), "{json:#}");
            assert!(
                json["memory"]["rss"].is_u64() || json["memory"]["total_rss"].is_u64(),
                "memory.stat fields: {json:#}"
            );
            assert_eq!(table_value(&rows, "memory.limit_in_bytes"), limit);
            assert_eq!(table_value(&rows, "pids.current"), "2");
            assert_ne!(table_value(&rows, "memory.usage_in_bytes"), "0");
        }
        Hierarchy::V2 => {
            assert_eq!(num(&json, &["pids", "current"]), 2, "{json:#}");
            assert!(num(&json, &["memory", "usage"]) > 0, "{json:#}");
            assert_eq!(num(&json, &["memory", "usage_limit"]), LIMIT, "{json:#}");
            assert!(num(&json, &["cpu", "usage_usec"]) > 0, "{json:#}");
            assert!(
                json["memory"]["anon"].is_u64(),
                "memory.stat fields: {json:#}"
            );
            assert_eq!(table_value(&rows, "memory.usage_limit"), limit);
            assert_eq!(table_value(&rows, "pids.current"), "2");
            assert_ne!(table_value(&rows, "memory.usage"), "0");
        }
    }

    // Without a limit the cgroup's "unlimited" shows, and a third process counts.
    cd.run_image_detached(&[], "m2", &["/bin/sleep", "1000"]);
    cd.ctr([
        "tasks",
        "exec",
        "-d",
        "--exec-id",
        "e",
        "m2",
        "/bin/sleep",
        "500",
    ])
    .ok();
    let json = metrics_json(&cd, "m2");
    assert_eq!(num(&json, &["pids", "current"]), 2, "{json:#}");
    let unlimited = match hierarchy() {
        Hierarchy::V1 => num(&json, &["memory", "usage", "limit"]),
        Hierarchy::V2 => num(&json, &["memory", "usage_limit"]),
    };
    assert!(unlimited > 1 << 60, "no limit: {json:#}");
    remove(&cd, "m1");
    remove(&cd, "m2");
}

/// The cgroup directories of `pid` that a runtime made (not the root of a hierarchy).
fn cgroup_dirs(pid: u32) -> Vec<PathBuf> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let v2 = hierarchy() == Hierarchy::V2;
    let mut dirs = Vec::new();
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, controllers, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or("/"));
        if path == "/" || (controllers.is_empty() != v2) {
            continue; // a root, or the other hierarchy of a hybrid host
        }
        let mount = controllers.strip_prefix("name=").unwrap_or(controllers);
        let dir = PathBuf::from("/sys/fs/cgroup")
            .join(mount)
            .join(path.trim_start_matches('/'));
        if dir.is_dir() && !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    assert!(!dirs.is_empty(), "no cgroup of {pid}: {text}");
    dirs
}

/// The root of the hierarchy holding `dir`: `/sys/fs/cgroup[/<mount>]`.
fn hierarchy_root(dir: &Path) -> PathBuf {
    let rel = dir.strip_prefix("/sys/fs/cgroup").unwrap();
    match hierarchy() {
        Hierarchy::V2 => PathBuf::from("/sys/fs/cgroup"),
        Hierarchy::V1 => PathBuf::from("/sys/fs/cgroup").join(rel.components().next().unwrap()),
    }
}

#[test]
fn stats_after_cgroup_removed_is_an_error_and_the_shim_serves_on() {
    if !isolate() {
        return;
    }
    let cd = Containerd::start();
    let group = ["--annotation", "io.containerd.runc.v2.group=stats"];
    let pid = cd.run_image_detached(&group, "gone", &["/bin/sleep", "1000"]);
    cd.run_image_detached(&group, "neighbour", &["/bin/sleep", "1000"]);
    assert_eq!(cd.shim_pids().len(), 1, "one shim serves both");

    // Move the init to the hierarchy's root, then remove the container's cgroup.
    let dirs = cgroup_dirs(pid);
    for dir in &dirs {
        let procs = hierarchy_root(dir).join("cgroup.procs");
        fs::write(&procs, pid.to_string())
            .unwrap_or_else(|e| panic!("move {pid} to {}: {e}", procs.display()));
    }
    for dir in &dirs {
        fs::remove_dir(dir).unwrap_or_else(|e| panic!("rmdir {}: {e}", dir.display()));
    }

    let out = cd.ctr(["tasks", "metrics", "gone"]);
    if runtime() == MYRT_RUNTIME {
        // containerd logs the shim's error and tells ctr only that nothing came back
        let out = out.failed();
        assert!(out.stderr.contains("no metrics received"), "{out}");
        let log = fs::read_to_string(cd.log_path()).unwrap_or_default();
        let line = log
            .lines()
            .find(|l| l.contains("collecting metrics for gone"))
            .unwrap_or_else(|| panic!("no Stats error in containerd's log:\n{log}"));
        assert!(
            dirs.iter().any(|d| line.contains(&d.display().to_string())),
            "the error names the missing cgroup: {line}"
        );
    }
    // The shim still answers for both containers.
    assert_eq!(
        cd.task("gone").map(|t| t.status).as_deref(),
        Some("RUNNING")
    );
    let json = metrics_json(&cd, "neighbour");
    assert_eq!(num(&json, &["pids", "current"]), 1, "{json:#}");
    cd.ctr(["tasks", "exec", "--exec-id", "e", "neighbour", "/bin/true"])
        .ok();
    remove(&cd, "gone");
    remove(&cd, "neighbour");
    cd.wait_no_shims(SETTLE);
}

// ---- `myrt events`, the command line (no containerd) ----

/// A bundle in `dir` for `myrt`/`runc`: the busybox rootfs read-only, `sleep 1000`, a memory and
/// a pids limit.
fn write_bundle(dir: &Path) {
    let myrt = bin_dir().join("myrt");
    let out = command::run(Command::new(&myrt).arg("spec").current_dir(dir), SETTLE);
    let out = out.ok();
    assert!(dir.join("config.json").is_file(), "{out}");
    let mut spec: Value =
        serde_json::from_slice(&fs::read(dir.join("config.json")).unwrap()).unwrap();
    spec["root"] = serde_json::json!({"path": image().rootfs, "readonly": true});
    spec["process"]["terminal"] = false.into();
    spec["process"]["args"] = serde_json::json!(["/bin/sleep", "1000"]);
    spec["linux"]["resources"]["memory"] = serde_json::json!({ "limit": LIMIT });
    spec["linux"]["resources"]["pids"] = serde_json::json!({ "limit": 50 });
    fs::write(dir.join("config.json"), spec.to_string()).unwrap();
}

/// `BIN --root ROOT ARGS...` with stdio on /dev/null (a detached container keeps what it gets).
fn runtime_cmd(bin: &Path, root: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("--root").arg(root).args(args);
    cmd
}

fn run_detached_cli(bin: &Path, root: &Path, bundle: &Path, id: &str) {
    let status = runtime_cmd(bin, root, &["run", "-d", "-b"])
        .arg(bundle)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "{} run -d {id}: {status}", bin.display());
}

fn events_stats(bin: &Path, root: &Path, id: &str) -> Value {
    let out = command::run(
        &mut runtime_cmd(bin, root, &["events", "--stats", id]),
        SETTLE,
    )
    .ok();
    assert_eq!(out.stdout.lines().count(), 1, "one event: {out}");
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// The paths of every object and array in `v`, array indices folded ("data.blkio.x.[]"), PSI
/// left out (runc 1.1 has none). Numbers are left out too: Go omits zero values of most fields,
/// and two containers differ in which counters are still zero.
fn shape(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            out.insert(prefix.to_string());
            for (k, v) in map.iter().filter(|(k, _)| k.as_str() != "psi") {
                shape(v, &format!("{prefix}.{k}"), out);
            }
        }
        Value::Array(items) => {
            out.insert(prefix.to_string());
            for v in items {
                shape(v, &format!("{prefix}.[]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn myrt_events_prints_runc_stats_json() {
    if !isolate() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (bundle, root) = (tmp.path().join("bundle"), tmp.path().join("myrt"));
    fs::create_dir_all(&bundle).unwrap();
    write_bundle(&bundle);
    let myrt = bin_dir().join("myrt");
    run_detached_cli(&myrt, &root, &bundle, "ev1");

    let ev = events_stats(&myrt, &root, "ev1");
    assert_eq!(ev["type"], "stats", "{ev:#}");
    assert_eq!(ev["id"], "ev1", "{ev:#}");
    let data = &ev["data"];
    assert_eq!(num(data, &["pids", "current"]), 1, "{data:#}");
    assert_eq!(num(data, &["pids", "limit"]), 50, "{data:#}");
    assert_eq!(num(data, &["memory", "usage", "limit"]), LIMIT, "{data:#}");
    assert!(num(data, &["memory", "usage", "usage"]) > 0, "{data:#}");
    assert!(num(data, &["cpu", "usage", "total"]) > 0, "{data:#}");
    assert!(data["memory"]["raw"]
        .as_object()
        .is_some_and(|r| !r.is_empty()));
    assert!(data["network_interfaces"].is_null(), "{data:#}");

    // The same container under runc (when installed) prints the same fields.
    let runc_root = tmp.path().join("runc");
    let runc = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("runc"))
            .find(|r| r.is_file())
    });
    if let Some(runc) = runc.as_deref() {
        // another id: without a cgroupsPath both runtimes would pick the cgroup "ev1"
        run_detached_cli(runc, &runc_root, &bundle, "ev1-runc");
        let mut theirs = events_stats(runc, &runc_root, "ev1-runc");
        assert_eq!(num(&theirs["data"], &["pids", "current"]), 1, "{theirs:#}");
        theirs["id"] = "ev1".into();
        let (mut a, mut b) = (BTreeSet::new(), BTreeSet::new());
        shape(&ev, "", &mut a);
        shape(&theirs, "", &mut b);
        assert_eq!(
            a, b,
            "myrt's JSON shape differs from runc's:\n{ev}\n{theirs}"
        );
        command::run(
            &mut runtime_cmd(runc, &runc_root, &["delete", "-f", "ev1-runc"]),
            SETTLE,
        )
        .ok();
    }

    // Without --stats: an event per interval until the container stops, then exit 0.
    let start = Instant::now();
    let watch = command::spawn(&mut runtime_cmd(
        &myrt,
        &root,
        &["events", "--interval", "200ms", "ev1"],
    ));
    std::thread::sleep(Duration::from_millis(1500));
    command::run(
        &mut runtime_cmd(&myrt, &root, &["kill", "ev1", "KILL"]),
        SETTLE,
    )
    .ok();
    let out = watch.wait(SETTLE);
    let ticks = (start.elapsed().as_millis() / 200) as usize;
    assert_eq!(out.code, Some(0), "{out}");
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    // the first events come within 1.5 s; none comes after the stop
    assert!(
        (2..=ticks).contains(&lines.len()),
        "2 to {ticks} events expected: {out}"
    );
    assert!(
        lines
            .iter()
            .all(|e| e["type"] == "stats" && e["id"] == "ev1"),
        "{out}"
    );

    let out = command::run(
        &mut runtime_cmd(&myrt, &root, &["events", "--stats", "ev1"]),
        SETTLE,
    );
    let out = out.failed();
    assert!(
        out.stderr.contains("container with id ev1 is not running"),
        "{out}"
    );
    let out = command::run(
        &mut runtime_cmd(&myrt, &root, &["events", "--interval", "0s", "ev1"]),
        SETTLE,
    );
    assert!(out
        .failed()
        .stderr
        .contains("duration interval must be greater than 0"));
    command::run(&mut runtime_cmd(&myrt, &root, &["delete", "ev1"]), SETTLE).ok();
}
