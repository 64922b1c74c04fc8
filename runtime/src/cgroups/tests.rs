//! Tests on the real kernel, as root (skipped otherwise). They mount nothing: each creates
//! cgroups named myrt-test-<pid>-<nanos>-<n> directly under the hierarchy roots and a guard kills
//! its child and removes those cgroups whatever happens. They run on v1 here and on v2 in the
//! QEMU guest (/work/shared/vm).

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use oci_spec::runtime::LinuxResources;

use super::*;

fn is_root() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: cgroup kernel tests need root");
        return false;
    }
    true
}

fn unique() -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("myrt-test-{}-{nanos}-{n}", std::process::id())
}

/// Kills the child and removes every directory the test may have made, on success or panic.
struct Guard {
    mgr: Box<dyn Manager>,
    child: Option<Child>,
    extra_dirs: Vec<PathBuf>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.mgr.thaw();
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = Pid::new(child.id() as i32) {
                let _ = pid.signal(Signal::SIGKILL);
            }
            let _ = child.wait();
        }
        let _ = self.mgr.kill_all();
        if let Err(e) = self.mgr.remove() {
            eprintln!("cleanup: {e}");
        }
        for d in &self.extra_dirs {
            let _ = std::fs::remove_dir(d);
        }
    }
}

fn guard(path: &str) -> Guard {
    let mgr = new_manager(Some(path), "unused", false).unwrap();
    // the parents create() makes above the cgroup, deepest first
    let mut extra_dirs = Vec::new();
    for dir in mgr.config().dirs.values() {
        let mut d = dir.parent();
        while let Some(p) = d.filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("myrt-test-"))
        }) {
            extra_dirs.push(p.to_path_buf());
            d = p.parent();
        }
    }
    extra_dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    extra_dirs.dedup();
    Guard {
        mgr,
        child: None,
        extra_dirs,
    }
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.join(file).display()))
        .trim()
        .to_string()
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: Pid) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after_comm.split(' ').collect();
    // fields 14 and 15 of stat(5); after "pid (comm) " the state is field 3
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn cgroups_kernel_limits_freeze_kill_remove() {
    if !is_root() {
        return;
    }
    let name = unique();
    let mut g = guard(&format!("/{name}/ctr"));
    let mgr = &g.mgr;
    assert_eq!(mgr.path(), Path::new(&format!("/{name}/ctr")));
    assert!(!mgr.exists());
    mgr.create().unwrap();
    assert!(mgr.exists());
    let cfg = mgr.config();

    let r: LinuxResources = serde_json::from_str(
        r#"{"memory":{"limit":67108864},"cpu":{"shares":512,"quota":50000,"period":100000},"pids":{"limit":32}}"#,
    )
    .unwrap();
    mgr.apply(&r).unwrap();
    match mgr.hierarchy() {
        Hierarchy::V1 => {
            assert_eq!(
                read(&cfg.dirs["memory"], "memory.limit_in_bytes"),
                "67108864"
            );
            assert_eq!(read(&cfg.dirs["cpu"], "cpu.shares"), "512");
            assert_eq!(read(&cfg.dirs["cpu"], "cpu.cfs_quota_us"), "50000");
            assert_eq!(read(&cfg.dirs["cpu"], "cpu.cfs_period_us"), "100000");
            assert_eq!(read(&cfg.dirs["pids"], "pids.max"), "32");
            let cpuset = &cfg.dirs["cpuset"];
            let root_cpus = read(cpuset.parent().unwrap().parent().unwrap(), "cpuset.cpus");
            assert_eq!(
                read(cpuset, "cpuset.cpus"),
                root_cpus,
                "copied from the parent"
            );
            // raising memory with swap: memsw must be written first or the kernel refuses
            if cfg.dirs["memory"]
                .join("memory.memsw.limit_in_bytes")
                .exists()
            {
                let up: LinuxResources =
                    serde_json::from_str(r#"{"memory":{"limit":134217728,"swap":268435456}}"#)
                        .unwrap();
                mgr.apply(&up).unwrap();
                assert_eq!(
                    read(&cfg.dirs["memory"], "memory.memsw.limit_in_bytes"),
                    "268435456"
                );
                let down: LinuxResources =
                    serde_json::from_str(r#"{"memory":{"limit":33554432,"swap":33554432}}"#)
                        .unwrap();
                mgr.apply(&down).unwrap();
                assert_eq!(
                    read(&cfg.dirs["memory"], "memory.limit_in_bytes"),
                    "33554432"
                );
            }
            let bad: LinuxResources = serde_json::from_str(r#"{"cpu":{"shares":1}}"#).unwrap();
            let e = mgr.apply(&bad).unwrap_err().to_string();
            assert!(
                e.contains("linux.resources.cpu.shares") && e.contains("clamped"),
                "{e}"
            );
        }
        Hierarchy::V2 => {
            let dir = &cfg.dirs["unified"];
            assert_eq!(read(dir, "memory.max"), "67108864");
            assert_eq!(read(dir, "cpu.weight"), "59");
            assert_eq!(read(dir, "cpu.max"), "50000 100000");
            assert_eq!(read(dir, "pids.max"), "32");
        }
    }

    // The child waits for a line, so everything it forks afterwards starts in the cgroup.
    let child = Command::new("sh")
        .args(["-c", "read x; sleep 30 & while :; do :; done"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = Pid::new(child.id() as i32).unwrap();
    g.child = Some(child);
    let mgr = &g.mgr;
    mgr.add_task(pid).unwrap();
    let stdin = g.child.as_mut().and_then(|c| c.stdin.as_mut()).unwrap();
    stdin.write_all(b"go\n").unwrap();
    wait_for("sh and its sleep in the cgroup", || {
        mgr.pids().unwrap().len() == 2
    });
    assert!(mgr.pids().unwrap().contains(&pid));

    mgr.freeze().unwrap();
    assert_eq!(mgr.freezer_state().unwrap(), FreezerState::Frozen);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    if mgr.hierarchy() == Hierarchy::V1 {
        assert!(
            status.contains("State:\tD"),
            "v1 frozen tasks show D: {status}"
        );
    }
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(cpu_ticks(pid), before, "a frozen busy loop uses no cpu");

    mgr.thaw().unwrap();
    assert_eq!(mgr.freezer_state().unwrap(), FreezerState::Thawed);
    wait_for("the thawed loop to run", || cpu_ticks(pid) > before);

    // a manager rebuilt from the saved config, as the CLI or a restarted shim does
    let loaded = load_manager(&cfg).unwrap();
    assert_eq!(loaded.pids().unwrap(), mgr.pids().unwrap());
    loaded.kill_all().unwrap();
    assert!(mgr.pids().unwrap().is_empty());
    let status = g.child.take().unwrap().wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));

    g.mgr.remove().unwrap();
    assert!(!g.mgr.exists());
    for dir in cfg.dirs.values() {
        assert!(!dir.exists(), "{} still there", dir.display());
        assert!(
            dir.parent().unwrap().exists(),
            "only the cgroup itself is removed"
        );
    }
    g.mgr.remove().unwrap(); // already gone is fine
}

#[test]
fn cgroups_kernel_remove_nested_children() {
    if !is_root() {
        return;
    }
    let g = guard(&format!("/{}", unique()));
    g.mgr.create().unwrap();
    // cgroups a container makes below its own (e.g. a nested runtime)
    for dir in g.mgr.config().dirs.values() {
        std::fs::create_dir_all(dir.join("inner/deeper")).unwrap();
    }
    g.mgr.remove().unwrap();
    assert!(!g.mgr.exists());
    // kill_all on a removed cgroup has nothing to do
    g.mgr.kill_all().unwrap();
}

#[test]
fn cgroups_kernel_devices() {
    if !is_root() {
        return;
    }
    let g = guard(&format!("/{}", unique()));
    g.mgr.create().unwrap();
    let containerd: LinuxResources =
        serde_json::from_str(r#"{"devices":[{"allow":false,"access":"rwm"}]}"#).unwrap();
    let mut r = LinuxResources::default();
    r.set_devices(Some(devices::rules_with_defaults(
        containerd.devices().as_deref().unwrap_or_default(),
        &[],
    )));
    match g.mgr.hierarchy() {
        Hierarchy::V1 => {
            g.mgr.apply(&r).unwrap();
            let list = read(&g.mgr.config().dirs["devices"], "devices.list");
            assert!(list.lines().any(|l| l == "c 1:3 rwm"), "{list}");
            assert!(!list.lines().any(|l| l == "a *:* rwm"), "{list}");
        }
        // What the eBPF program allows and denies is checked in v2::tests.
        Hierarchy::V2 => g.mgr.apply(&r).unwrap(),
    }
}

#[test]
fn cgroups_kernel_unsupported_on_this_host() {
    if !is_root() {
        return;
    }
    let g = guard(&format!("/{}", unique()));
    g.mgr.create().unwrap();
    let hugetlb_mounted = g.mgr.config().dirs.contains_key("hugetlb");
    let r: LinuxResources =
        serde_json::from_str(r#"{"hugepageLimits":[{"pageSize":"2MB","limit":0}]}"#).unwrap();
    if g.mgr.hierarchy() == Hierarchy::V1 && !hugetlb_mounted {
        let e = g.mgr.apply(&r).unwrap_err().to_string();
        assert_eq!(
            e,
            "linux.resources.hugepageLimits: hugetlb controller not mounted"
        );
    }
}
