//! Specs as containerd's CRI plugin writes them (/work/shared/fixtures, copied from a real
//! node) run unchanged through the engine: a pod sandbox (pause) and an app container that
//! joins its network, IPC and UTS namespaces.
//!
//! Only what points outside the test is adjusted: root.path, the namespace paths (a CNI netns
//! file made here, the sandbox init's /proc/<pid>/ns/*), cgroupsPath (under a parent private
//! to the test), the mount sources under kubelet's and containerd's directories (temp files),
//! and the sandbox's `/pause` (busybox sleep). Everything else is read back from the kernel:
//! namespaces, masked and read-only paths, mounts, capabilities, no_new_privs and the cgroup
//! limits. Each test runs as root in its own mount + pid namespace (see common::isolate).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{is_v2, isolate, Env};
use serde_json::{json, Value};

/// Copies of /work/shared/fixtures/oci-spec-{sandbox,container}.json.
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cri");
const SANDBOX_ID: &str = "1735d370d9023d58bab9b326be295a5b289dff813141d4fa1b1a29c78327c5f0";
const APP_ID: &str = "b606268ca3577938ee3cd801818e068ce5bcd85f0f3eb1cfc9168ef10ab40fde";

fn fixture(name: &str) -> Value {
    let path = Path::new(FIXTURES).join(name);
    let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&data).expect("fixture is JSON")
}

/// One container is gone (state, cgroup, `state` answer) while others of the test still run.
#[track_caller]
fn assert_container_gone(env: &Env) {
    assert!(!env.root.join(&env.id).exists(), "state dir left behind");
    assert_eq!(env.cgroup_dirs(), Vec::<PathBuf>::new(), "cgroup dirs left");
    assert!(env.state().is_none(), "state still answers");
}

/// A file of the cgroup at `path` (a cgroupsPath): v1 controller file or v2 file.
fn cg_read(path: &str, controller: &str, v1: &str, v2: &str) -> Option<String> {
    let p = common::cg_file(path, controller, v1, v2);
    fs::read_to_string(p).ok().map(|s| s.trim().to_string())
}

/// Rewrites a mount source under kubelet's or containerd's directories to a file or directory
/// made under `dir` (named after its destination).
fn redirect_mounts(spec: &mut Value, dir: &Path, files: &[(&str, &str)], dirs: &[&str]) {
    for m in spec["mounts"].as_array_mut().expect("mounts") {
        let src = m["source"].as_str().unwrap_or_default().to_string();
        if !["/var/lib/kubelet", "/var/lib/containerd", "/run/containerd"]
            .iter()
            .any(|p| src.starts_with(p))
        {
            continue;
        }
        let dest = m["destination"].as_str().expect("destination").to_string();
        let local = dir.join(dest.trim_start_matches('/').replace('/', "_"));
        if let Some((_, content)) = files.iter().find(|(d, _)| *d == dest) {
            fs::write(&local, content).expect("write mount source");
        } else if dirs.contains(&dest.as_str()) {
            fs::create_dir_all(&local).expect("mkdir mount source");
        } else {
            panic!("fixture mount {dest} from {src}: the test does not know what to put there");
        }
        m["source"] = json!(local);
    }
}

/// The namespace entry of `typ` in a spec.
fn namespace<'a>(spec: &'a mut Value, typ: &str) -> &'a mut Value {
    spec["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
        .iter_mut()
        .find(|n| n["type"] == typ)
        .unwrap_or_else(|| panic!("no {typ} namespace in the fixture"))
}

/// A persistent network namespace bound on a file, as CNI makes for a pod (this test's mount
/// namespace is private, so the bind mount goes away with it).
fn make_netns(path: &Path) -> bool {
    fs::write(path, "").expect("create netns file");
    let ok = Command::new("unshare")
        .arg(format!("--net={}", path.display()))
        .arg("true")
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("!!! unshare --net=FILE failed: the sandbox gets a new network namespace");
    }
    ok
}

/// (mount point, mount options, fs type) of each mount a process sees.
fn mounts_of(pid: i32) -> Vec<(String, String, String)> {
    let info = fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("mountinfo");
    info.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let f: Vec<&str> = pre.split(' ').collect();
            let fstype = post.split(' ').next()?;
            Some((f[4].to_string(), f[5].to_string(), fstype.to_string()))
        })
        .collect()
}

/// The last (topmost) mount at `point`: its options and type.
#[track_caller]
fn mount_at(mounts: &[(String, String, String)], point: &str) -> (String, String) {
    let (_, opts, fstype) = mounts
        .iter()
        .rev()
        .find(|(p, _, _)| p == point)
        .unwrap_or_else(|| panic!("nothing mounted at {point}: {mounts:#?}"));
    (opts.clone(), fstype.clone())
}

fn is_ro(opts: &str) -> bool {
    opts.split(',').any(|o| o == "ro")
}

fn ns_link(pid: i32, ns: &str) -> PathBuf {
    fs::read_link(format!("/proc/{pid}/ns/{ns}")).expect("read ns link")
}

/// A field of /proc/<pid>/status, e.g. "CapBnd".
fn status_field(pid: i32, key: &str) -> String {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    s.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in status"))
        .trim()
        .to_string()
}

/// The capability mask of a list of names, as /proc/<pid>/status prints it.
fn cap_mask(names: &Value) -> String {
    let mut mask = 0u64;
    for n in names.as_array().expect("capability list") {
        let cap = myrt_runtime::setup::parse_capability(n.as_str().expect("name"))
            .expect("known capability");
        mask |= 1 << myrt_runtime::setup::capability_index(cap);
    }
    format!("{mask:016x}")
}

/// The masked and read-only paths of a spec that exist here (the engine skips missing ones).
fn existing(spec: &Value, key: &str) -> Vec<String> {
    spec["linux"][key]
        .as_array()
        .expect("path list")
        .iter()
        .map(|p| p.as_str().expect("path").to_string())
        .filter(|p| Path::new(p).exists())
        .collect()
}

#[track_caller]
fn check_masked_and_readonly(pid: i32, spec: &Value) {
    let mounts = mounts_of(pid);
    for p in existing(spec, "maskedPaths") {
        let (opts, _) = mount_at(&mounts, &p);
        assert!(
            is_ro(&opts) || Path::new(&p).is_file(),
            "{p} masked rw: {opts}"
        );
    }
    for p in existing(spec, "readonlyPaths") {
        let (opts, _) = mount_at(&mounts, &p);
        assert!(is_ro(&opts), "{p} not read-only: {opts}");
    }
    // A masked file reads empty from inside.
    let kcore = format!("/proc/{pid}/root/proc/kcore");
    if Path::new("/proc/kcore").exists() {
        assert_eq!(fs::metadata(&kcore).expect("kcore").len(), 0, "{kcore}");
    }
}

#[test]
fn cri_sandbox_and_app_container_run_unchanged() {
    if !isolate() {
        return;
    }
    let mut sb_spec = fixture("oci-spec-sandbox.json");
    let mut app_spec = fixture("oci-spec-container.json");
    let mut sandbox = Env::new("crisb", &["true"]);
    let mut app = Env::new("criapp", &["true"]).with_root(sandbox.root.clone());
    let files = sandbox.path("kube");
    fs::create_dir_all(&files).expect("mkdir");
    let pod = format!("/myrt-test-cri-{}", sandbox.id);

    // --- the sandbox: only paths and /pause change
    let netns = files.join("cni-netns");
    let have_netns = make_netns(&netns);
    sb_spec["process"]["args"] = json!(["sleep", "100000"]);
    sb_spec["linux"]["cgroupsPath"] = json!(format!("{pod}/{SANDBOX_ID}"));
    sandbox.cgroup = format!("{pod}/{SANDBOX_ID}");
    if have_netns {
        namespace(&mut sb_spec, "network")["path"] = json!(netns);
    } else {
        namespace(&mut sb_spec, "network")
            .as_object_mut()
            .expect("object")
            .remove("path");
    }
    redirect_mounts(
        &mut sb_spec,
        &files,
        &[("/etc/resolv.conf", "nameserver 10.96.0.10\n")],
        &["/dev/shm"],
    );
    let sb_config = sb_spec.clone();
    sandbox.edit(|c| *c = sb_config);
    sandbox.create(&[]);
    sandbox.ok(&["start", &sandbox.id]);
    sandbox.wait_status("running");
    let sb_pid = sandbox.pid();

    if have_netns {
        let want = fs::metadata(&netns).expect("netns file");
        let got = fs::metadata(format!("/proc/{sb_pid}/ns/net")).expect("ns/net");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(got.ino(), want.ino(), "sandbox is not in the CNI netns");
    }
    let sb_mounts = mounts_of(sb_pid);
    assert!(
        is_ro(&mount_at(&sb_mounts, "/").0),
        "root.readonly: / is rw"
    );
    assert!(
        is_ro(&mount_at(&sb_mounts, "/dev/shm").0),
        "sandbox /dev/shm bind is rw"
    );
    assert!(is_ro(&mount_at(&sb_mounts, "/etc/resolv.conf").0));
    check_masked_and_readonly(sb_pid, &sb_spec);
    assert_eq!(status_field(sb_pid, "NoNewPrivs"), "1");
    let caps = &sb_spec["process"]["capabilities"];
    assert_eq!(status_field(sb_pid, "CapBnd"), cap_mask(&caps["bounding"]));
    assert_eq!(status_field(sb_pid, "CapEff"), cap_mask(&caps["effective"]));
    assert_eq!(status_field(sb_pid, "CapInh"), "0000000000000000");
    let hostname = sandbox.ok(&["exec", &sandbox.id, "hostname"]);
    assert_eq!(hostname.trim(), "crt-pod-0");
    assert_eq!(
        cg_read(&sandbox.cgroup, "cpu", "cpu.shares", "cpu.weight").as_deref(),
        Some(if is_v2() { "1" } else { "2" })
    );

    // --- the app container: joins the sandbox's net, ipc and uts namespaces
    for ns in ["ipc", "uts", "network"] {
        let link = if ns == "network" { "net" } else { ns };
        namespace(&mut app_spec, ns)["path"] = json!(format!("/proc/{sb_pid}/ns/{link}"));
    }
    app_spec["linux"]["cgroupsPath"] = json!(format!("{pod}/{APP_ID}"));
    app.cgroup = format!("{pod}/{APP_ID}");
    let hosts = "127.0.0.1 localhost\n10.244.0.7 crt-pod-0\n";
    redirect_mounts(
        &mut app_spec,
        &files,
        &[
            ("/dev/termination-log", ""),
            ("/etc/hostname", "crt-pod-0\n"),
            ("/etc/hosts", hosts),
            ("/etc/resolv.conf", "nameserver 10.96.0.10\n"),
        ],
        &["/dev/shm", "/var/run/secrets/kubernetes.io/serviceaccount"],
    );
    let sa = files.join("var_run_secrets_kubernetes.io_serviceaccount");
    fs::write(sa.join("token"), "t0ken").expect("token");
    // The fixture's own program (busybox sh) runs as is.
    assert!(app.bundle.join("rootfs/bin/sh").exists());
    let app_config = app_spec.clone();
    app.edit(|c| *c = app_config);
    app.create(&[]);
    app.ok(&["start", &app.id]);
    app.wait_status("running");
    let pid = app.pid();

    for ns in ["net", "ipc", "uts"] {
        assert_eq!(ns_link(pid, ns), ns_link(sb_pid, ns), "{ns} not shared");
    }
    for ns in ["pid", "mnt"] {
        assert_ne!(ns_link(pid, ns), ns_link(sb_pid, ns), "{ns} shared");
    }
    let mounts = mounts_of(pid);
    check_masked_and_readonly(pid, &app_spec);
    for rw in [
        "/etc/hosts",
        "/dev/termination-log",
        "/etc/hostname",
        "/dev/shm",
    ] {
        assert!(!is_ro(&mount_at(&mounts, rw).0), "{rw} is read-only");
    }
    let sa_point = "/var/run/secrets/kubernetes.io/serviceaccount";
    assert!(
        is_ro(&mount_at(&mounts, sa_point).0),
        "service account dir is rw"
    );
    assert!(is_ro(&mount_at(&mounts, "/sys").0));
    assert!(is_ro(&mount_at(&mounts, "/sys/fs/cgroup").0));
    let script = "cat /etc/hosts; hostname; echo done > /dev/termination-log && echo tl-ok; \
                  cat /var/run/secrets/kubernetes.io/serviceaccount/token; echo; \
                  touch /var/run/secrets/kubernetes.io/serviceaccount/x 2>/dev/null || echo sa-ro; \
                  echo $FOO";
    let out = app.ok(&["exec", &app.id, "sh", "-c", script]);
    assert_eq!(
        out,
        format!("{hosts}crt-pod-0\ntl-ok\nt0ken\nsa-ro\nbar\n"),
        "inside the app container"
    );
    assert_eq!(
        fs::read_to_string(files.join("dev_termination-log")).expect("termination-log"),
        "done\n"
    );
    let caps = &app_spec["process"]["capabilities"];
    assert_eq!(status_field(pid, "CapBnd"), cap_mask(&caps["bounding"]));
    assert_eq!(status_field(pid, "CapEff"), cap_mask(&caps["effective"]));
    assert_eq!(status_field(pid, "NoNewPrivs"), "0");
    // Resources of the fixture, read back.
    let limit = "100663296";
    let mem = cg_read(&app.cgroup, "memory", "memory.limit_in_bytes", "memory.max");
    assert_eq!(mem.as_deref(), Some(limit));
    if let Some(memsw) = cg_read(&app.cgroup, "memory", "memory.memsw.limit_in_bytes", "x") {
        assert_eq!(memsw, limit, "memory.swap");
    }
    let shares = cg_read(&app.cgroup, "cpu", "cpu.shares", "cpu.weight");
    // v2: crun >= 1.23 / runc >= 1.3.2's conversion (cgroups::cpu_shares_to_weight), 512 -> 59.
    let weight = myrt_runtime::cgroups::cpu_shares_to_weight(512).to_string();
    assert_eq!(weight, "59");
    assert_eq!(
        shares.as_deref(),
        Some(if is_v2() { weight.as_str() } else { "512" })
    );
    if let Some(list) = cg_read(&app.cgroup, "devices", "devices.list", "x") {
        assert!(
            !list.contains("a *:* rwm"),
            "devices not restricted: {list}"
        );
        assert!(list.contains("c 1:3 rwm"), "/dev/null not allowed: {list}");
    }
    // The app is in its own cgroup under the pod's, not the sandbox's.
    let procs = cg_read(&sandbox.cgroup, "pids", "cgroup.procs", "cgroup.procs").unwrap();
    assert!(!procs.lines().any(|p| p.trim() == pid.to_string()));

    // --- teardown as the kubelet does it: the app, then the sandbox, then the pod's cgroup
    app.ok(&["kill", &app.id, "TERM"]);
    app.wait_status("stopped");
    app.ok(&["delete", &app.id]);
    assert_container_gone(&app);
    sandbox.ok(&["delete", "--force", &sandbox.id]);
    for dir in common::cgroup_mounts() {
        let parent = dir.join(pod.trim_start_matches('/'));
        if parent.exists() {
            fs::remove_dir(&parent)
                .unwrap_or_else(|e| panic!("pod cgroup {} not empty: {e}", parent.display()));
        }
    }
    sandbox.assert_gone();
    app.assert_gone();
}
