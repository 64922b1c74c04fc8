//! Tests of [`super`]: temp dirs laid out like cgroupfs v1 and v2 (file formats as the kernel
//! writes them), and, as root, a live cgroup with a process in it on this host's hierarchy.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::*;
use crate::cgroups::{new_manager, Hierarchy, Manager};
use crate::Pid;

fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (f, v) in files {
        let path = dir.join(f);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, v).unwrap();
    }
}

const V1_MEMORY_STAT: &str = "cache 8192\nrss 49152\nrss_huge 0\nshmem 0\nmapped_file 4096\n\
dirty 0\nwriteback 0\nswap 0\npgpgin 473\npgpgout 461\npgfault 778\npgmajfault 1\n\
inactive_anon 45056\nactive_anon 4096\ninactive_file 8192\nactive_file 0\nunevictable 0\n\
hierarchical_memory_limit 67108864\nhierarchical_memsw_limit 9223372036854771712\n\
total_cache 8192\ntotal_rss 49152\n";

/// A v1 layout: one directory per controller, each holding the cgroup "ctr".
fn v1_fixture() -> (tempfile::TempDir, BTreeMap<String, PathBuf>) {
    let tmp = tempfile::tempdir().unwrap();
    let mut dirs = BTreeMap::new();
    for c in [
        "cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "hugetlb",
    ] {
        let d = tmp.path().join(c).join("ctr");
        std::fs::create_dir_all(&d).unwrap();
        dirs.insert(c.to_string(), d);
    }
    write_files(
        tmp.path(),
        &[
            (
                "cpu/ctr/cpu.stat",
                "nr_periods 10\nnr_throttled 3\nthrottled_time 4500\nnr_bursts 2\nburst_time 700\n",
            ),
            ("cpuacct/ctr/cpuacct.stat", "user 25\nsystem 100\n"),
            ("cpuacct/ctr/cpuacct.usage", "22302198\n"),
            ("cpuacct/ctr/cpuacct.usage_percpu", "2823455 19478743 \n"),
            (
                "cpuacct/ctr/cpuacct.usage_all",
                "cpu user system\n0 100 2000\n1 300 4000\n",
            ),
            ("cpuset/ctr/cpuset.cpus", "0-2,5\n"),
            ("cpuset/ctr/cpuset.mems", "0\n"),
            ("cpuset/ctr/cpuset.cpu_exclusive", "0\n"),
            ("cpuset/ctr/cpuset.sched_load_balance", "1\n"),
            ("cpuset/ctr/cpuset.sched_relax_domain_level", "-1\n"),
            ("memory/ctr/memory.stat", V1_MEMORY_STAT),
            ("memory/ctr/memory.usage_in_bytes", "733184\n"),
            ("memory/ctr/memory.max_usage_in_bytes", "2510848\n"),
            ("memory/ctr/memory.failcnt", "4\n"),
            ("memory/ctr/memory.limit_in_bytes", "67108864\n"),
            ("memory/ctr/memory.memsw.usage_in_bytes", "833184\n"),
            ("memory/ctr/memory.memsw.max_usage_in_bytes", "2610848\n"),
            ("memory/ctr/memory.memsw.failcnt", "0\n"),
            (
                "memory/ctr/memory.memsw.limit_in_bytes",
                "9223372036854771712\n",
            ),
            ("memory/ctr/memory.kmem.usage_in_bytes", "245760\n"),
            (
                "memory/ctr/memory.kmem.limit_in_bytes",
                "9223372036854771712\n",
            ),
            ("memory/ctr/memory.use_hierarchy", "1\n"),
            (
                "memory/ctr/memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
            ),
            ("pids/ctr/pids.current", "3\n"),
            ("pids/ctr/pids.max", "max\n"),
            // BFQ is there but has seen no IO: runc moves on to the throttle files
            ("blkio/ctr/blkio.bfq.io_serviced_recursive", ""),
            (
                "blkio/ctr/blkio.throttle.io_serviced_recursive",
                "8:0 Read 10\n8:0 Write 2\n8:0 Sync 12\nTotal 12\n",
            ),
            (
                "blkio/ctr/blkio.throttle.io_service_bytes_recursive",
                "8:0 Read 40960\n8:0 Write 8192\nTotal 49152\n",
            ),
            ("hugetlb/ctr/hugetlb.2MB.usage_in_bytes", "4194304\n"),
            ("hugetlb/ctr/hugetlb.2MB.max_usage_in_bytes", "6291456\n"),
            ("hugetlb/ctr/hugetlb.2MB.failcnt", "1\n"),
            ("hugetlb/ctr/hugetlb.2MB.limit_in_bytes", "8388608\n"),
            ("hugetlb/ctr/hugetlb.1GB.usage_in_bytes", "0\n"),
            ("hugetlb/ctr/hugetlb.1GB.limit_in_bytes", "0\n"),
        ],
    );
    (tmp, dirs)
}

#[test]
fn cgroups_stats_v1_files() {
    let (_tmp, dirs) = v1_fixture();
    let s = v1(&dirs).unwrap();
    let tick_ns = 1_000_000_000 / clock_ticks();
    assert_eq!(s.cpu.usage.total, 22302198);
    assert_eq!(s.cpu.usage.percpu, [2823455, 19478743]);
    assert_eq!(s.cpu.usage.percpu_user, [100, 300]);
    assert_eq!(s.cpu.usage.percpu_kernel, [2000, 4000]);
    assert_eq!(s.cpu.usage.user, 25 * tick_ns);
    assert_eq!(s.cpu.usage.kernel, 100 * tick_ns);
    assert_eq!(
        s.cpu.throttling,
        Throttling {
            periods: 10,
            throttled_periods: 3,
            throttled_time: 4500
        }
    );
    assert_eq!(
        s.cpu.burst,
        Burst {
            periods: 2,
            time: 700
        }
    );
    assert_eq!(s.cpu.psi, None);

    assert_eq!(s.cpuset.cpus, [0, 1, 2, 5]);
    assert_eq!(s.cpuset.mems, [0]);
    assert_eq!(s.cpuset.sched_load_balance, 1);
    assert_eq!(s.cpuset.sched_relax_domain_level, -1);

    let m = &s.memory;
    assert_eq!(m.cache, 8192);
    assert_eq!(
        m.usage,
        MemoryData {
            usage: 733184,
            max_usage: 2510848,
            failcnt: 4,
            limit: 67108864
        }
    );
    assert_eq!(m.swap_usage.usage, 833184);
    assert_eq!(m.swap_usage.limit, 9223372036854771712);
    assert_eq!(m.swap_only_usage.usage, 100000);
    assert_eq!(m.kernel_usage.usage, 245760);
    assert_eq!(
        m.kernel_tcp_usage,
        MemoryData::default(),
        "no kmem.tcp files"
    );
    assert!(m.use_hierarchy);
    assert_eq!(m.stats["pgfault"], 778);
    assert_eq!(m.stats["hierarchical_memsw_limit"], 9223372036854771712);
    assert_eq!(m.stats.len(), 21);
    assert_eq!(m.oom_control.as_ref().map(|o| o.oom_kill), Some(2));
    assert_eq!(m.events, None);

    assert_eq!(
        s.pids,
        PidsStats {
            current: 3,
            limit: 0
        },
        "max is 0"
    );

    let e = |op: &str, value| BlkioEntry {
        major: 8,
        minor: 0,
        op: op.into(),
        value,
    };
    assert_eq!(
        s.blkio.io_serviced_recursive,
        [e("Read", 10), e("Write", 2), e("Sync", 12)]
    );
    assert_eq!(
        s.blkio.io_service_bytes_recursive,
        [e("Read", 40960), e("Write", 8192)]
    );
    assert!(s.blkio.sectors_recursive.is_empty());

    assert_eq!(
        s.hugetlb["2MB"],
        HugetlbStats {
            usage: 4194304,
            max_usage: 6291456,
            failcnt: 1,
            limit: 8388608
        }
    );
    assert_eq!(s.hugetlb["1GB"].usage, 0);
    assert_eq!(s.hugetlb.len(), 2);
}

#[test]
fn cgroups_stats_v1_blkio_source_order() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // CFQ files with data win over the throttle files
    write_files(
        d,
        &[
            ("blkio.sectors_recursive", "8:16 80\n"),
            ("blkio.io_serviced_recursive", "8:16 Read 1\nTotal 1\n"),
            (
                "blkio.throttle.io_serviced_recursive",
                "8:16 Read 99\nTotal 99\n",
            ),
        ],
    );
    let mut b = BlkioStats::default();
    v1_blkio(d, &mut b).unwrap();
    assert_eq!(b.sectors_recursive.len(), 1);
    assert_eq!(b.sectors_recursive[0].op, "");
    assert_eq!(b.sectors_recursive[0].value, 80);
    assert_eq!(b.io_serviced_recursive[0].value, 1, "CFQ, not throttle");
    // nothing anywhere: all empty, no error
    let empty = tempfile::tempdir().unwrap();
    let mut b = BlkioStats::default();
    v1_blkio(empty.path(), &mut b).unwrap();
    assert_eq!(b, BlkioStats::default());
    // a malformed line names the file and the line
    write_files(d, &[("blkio.sectors_recursive", "8:16 x y z w\n")]);
    let e = v1_blkio(d, &mut b).unwrap_err().to_string();
    assert!(
        e.contains("blkio.sectors_recursive") && e.contains("8:16 x y z w"),
        "{e}"
    );
}

/// A v2 cgroup directory as Linux 6.x fills it.
fn v2_fixture() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    write_files(
        tmp.path(),
        &[
            ("cgroup.controllers", "cpu io memory pids hugetlb\n"),
            ("cgroup.procs", "42\n"),
            (
                "cpu.stat",
                "usage_usec 5000\nuser_usec 3000\nsystem_usec 2000\nnr_periods 7\n\
                 nr_throttled 2\nthrottled_usec 300\nnr_bursts 1\nburst_usec 40\n",
            ),
            (
                "cpu.pressure",
                "some avg10=1.50 avg60=0.25 avg300=0.00 total=12345\n\
                 full avg10=0.00 avg60=0.00 avg300=0.00 total=6\n",
            ),
            (
                "memory.stat",
                "anon 4096\nfile 8192\nkernel_stack 16384\nslab 1000\nsock 0\nshmem 0\n\
                 file_mapped 0\npgfault 100\npgmajfault 2\nworkingset_refault_anon 0\n",
            ),
            ("memory.current", "1048576\n"),
            ("memory.max", "67108864\n"),
            ("memory.peak", "2097152\n"),
            ("memory.swap.current", "4096\n"),
            ("memory.swap.max", "max\n"),
            (
                "memory.events",
                "low 0\nhigh 5\nmax 9\noom 1\noom_kill 1\noom_group_kill 0\n",
            ),
            (
                "memory.pressure",
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n\
                 full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
            ),
            (
                "io.stat",
                "8:0 rbytes=40960 wbytes=8192 rios=10 wios=2 dbytes=0 dios=0\n\
                 253:1 rbytes=1 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n",
            ),
            ("pids.current", "2\n"),
            ("pids.max", "50\n"),
            ("hugetlb.2MB.current", "2097152\n"),
            ("hugetlb.2MB.rsvd.current", "4194304\n"),
            ("hugetlb.2MB.max", "max\n"),
            ("hugetlb.2MB.rsvd.max", "max\n"),
            ("hugetlb.2MB.events", "max 3\n"),
            ("hugetlb.2MB.events.local", "max 3\n"),
            ("hugetlb.2MB.numa_stat", "total=0 N0=0\n"),
        ],
    );
    tmp
}

#[test]
fn cgroups_stats_v2_files() {
    let tmp = v2_fixture();
    let s = v2(tmp.path()).unwrap();
    assert_eq!(s.cpu.usage.total, 5_000_000);
    assert_eq!(s.cpu.usage.user, 3_000_000);
    assert_eq!(s.cpu.usage.kernel, 2_000_000);
    assert!(s.cpu.usage.percpu.is_empty());
    assert_eq!(
        s.cpu.throttling,
        Throttling {
            periods: 7,
            throttled_periods: 2,
            throttled_time: 300_000
        }
    );
    assert_eq!(
        s.cpu.burst,
        Burst {
            periods: 1,
            time: 40_000
        }
    );
    let psi = s.cpu.psi.as_ref().unwrap();
    assert_eq!(psi.some.avg10, 1.5);
    assert_eq!(psi.some.avg60, 0.25);
    assert_eq!(psi.some.total, 12345);
    assert_eq!(psi.full.total, 6);
    assert_eq!(s.cpuset, CpusetStats::default());

    let m = &s.memory;
    assert_eq!(m.cache, 8192, "v2 cache is memory.stat's file");
    assert_eq!(
        m.usage,
        MemoryData {
            usage: 1048576,
            max_usage: 2097152,
            failcnt: 0,
            limit: 67108864
        }
    );
    assert_eq!(
        m.swap_only_usage,
        MemoryData {
            usage: 4096,
            max_usage: 0,
            failcnt: 0,
            limit: u64::MAX
        }
    );
    assert_eq!(m.swap_usage.usage, 1048576 + 4096, "memory + swap, as v1");
    assert_eq!(m.swap_usage.limit, u64::MAX);
    assert!(m.use_hierarchy);
    assert_eq!(m.stats["kernel_stack"], 16384);
    assert_eq!(
        m.events,
        Some(MemoryEvents {
            low: 0,
            high: 5,
            max: 9,
            oom: 1,
            oom_kill: 1,
            oom_group_kill: 0
        })
    );
    assert!(m.psi.is_some());
    assert_eq!(m.oom_control, None);

    assert_eq!(
        s.pids,
        PidsStats {
            current: 2,
            limit: 50
        }
    );

    let e = |major, minor, op: &str, value| BlkioEntry {
        major,
        minor,
        op: op.into(),
        value,
    };
    assert_eq!(
        s.blkio.io_service_bytes_recursive,
        [
            e(8, 0, "Read", 40960),
            e(8, 0, "Write", 8192),
            e(253, 1, "Read", 1),
            e(253, 1, "Write", 0)
        ]
    );
    assert_eq!(
        s.blkio.io_serviced_recursive,
        [
            e(8, 0, "Read", 10),
            e(8, 0, "Write", 2),
            e(253, 1, "Read", 1),
            e(253, 1, "Write", 0)
        ]
    );
    assert_eq!(s.blkio.psi, None, "no io.pressure in the fixture");

    assert_eq!(
        s.hugetlb["2MB"],
        HugetlbStats {
            usage: 4194304, // the reservation counter, as runc reads it
            max_usage: 0,
            failcnt: 3,
            limit: u64::MAX
        }
    );
    assert_eq!(s.hugetlb.len(), 1);
}

#[test]
fn cgroups_stats_v2_without_controllers() {
    // A cgroup with no controller enabled: cpu.stat alone, pids counted from cgroup.procs.
    let tmp = tempfile::tempdir().unwrap();
    write_files(
        tmp.path(),
        &[
            ("cgroup.controllers", ""),
            ("cgroup.procs", "10\n11\n"),
            ("child/cgroup.procs", "12\n"),
            ("cpu.stat", "usage_usec 1\nuser_usec 1\nsystem_usec 0\n"),
        ],
    );
    let s = v2(tmp.path()).unwrap();
    assert_eq!(
        s.pids,
        PidsStats {
            current: 3,
            limit: 0
        }
    );
    assert_eq!(s.cpu.usage.total, 1000);
    assert_eq!(s.memory.usage, MemoryData::default());
    assert!(s.memory.stats.is_empty());
    assert!(s.blkio.io_service_bytes_recursive.is_empty());
}

#[test]
fn cgroups_stats_vanished_cgroup_names_the_path() {
    let tmp = v2_fixture();
    let gone = tmp.path().join("gone");
    let e = v2(&gone).unwrap_err().to_string();
    assert!(
        e.contains(&gone.display().to_string()) && e.contains("No such file"),
        "{e}"
    );

    let (_tmp, mut dirs) = v1_fixture();
    let memory = dirs["memory"].clone();
    std::fs::remove_dir_all(&memory).unwrap();
    let e = v1(&dirs).unwrap_err().to_string();
    assert!(e.contains(&memory.display().to_string()), "{e}");
    dirs.insert("memory".into(), memory);
}

#[test]
fn cgroups_stats_bad_content_names_file_and_value() {
    let tmp = v2_fixture();
    write_files(tmp.path(), &[("memory.current", "lots\n")]);
    let e = v2(tmp.path()).unwrap_err().to_string();
    assert!(
        e.contains("memory.current") && e.contains("\"lots\""),
        "{e}"
    );

    let tmp = v2_fixture();
    write_files(tmp.path(), &[("cpu.pressure", "some avg10=x\n")]);
    let e = v2(tmp.path()).unwrap_err().to_string();
    assert!(e.contains("cpu.pressure") && e.contains("avg10=x"), "{e}");

    let (_tmp, dirs) = v1_fixture();
    write_files(&dirs["cpuset"], &[("cpuset.cpus", "3-1\n")]);
    let e = v1(&dirs).unwrap_err().to_string();
    assert!(e.contains("cpuset.cpus") && e.contains("3-1"), "{e}");
}

#[test]
fn cgroups_stats_number_rules() {
    let p = Path::new("/x");
    assert_eq!(parse_u64(p, "max\n").unwrap(), u64::MAX);
    assert_eq!(parse_u64(p, "-1").unwrap(), 0, "negative reads as 0 (runc)");
    assert_eq!(parse_u64(p, " 42 ").unwrap(), 42);
    assert!(parse_u64(p, "-").is_err());
    assert!(parse_u64(p, "4k").is_err());
    assert_eq!(parse_list(p, "").unwrap(), Vec::<u16>::new());
    assert_eq!(parse_list(p, "0\n").unwrap(), [0]);
    assert_eq!(parse_list(p, "1,3-4").unwrap(), [1, 3, 4]);
    assert!(parse_list(p, "a").is_err());
    let f = parse_flat(p, "a 1\n\nb max\n").unwrap();
    assert_eq!(f["a"], 1);
    assert_eq!(f["b"], u64::MAX);
    assert!(parse_flat(p, "a 1 2\n").is_err());
}

// ---- the real kernel (root) ----

/// Kills the child and removes the cgroup and its parent, whatever happens.
struct Live {
    mgr: Box<dyn Manager>,
    parent_dirs: Vec<PathBuf>,
    child: Option<Child>,
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = Pid::new(child.id() as i32) {
                let _ = pid.signal(Signal::SIGKILL);
            }
            let _ = child.wait();
        }
        let _ = self.mgr.kill_all();
        let _ = self.mgr.remove();
        for d in &self.parent_dirs {
            let _ = std::fs::remove_dir(d);
        }
    }
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn cgroups_stats_kernel_live_cgroup() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: the live cgroup test needs root");
        return;
    }
    let name = format!("myrt-test-{}-stats", std::process::id());
    let mgr = new_manager(Some(&format!("/{name}/ctr")), "unused", false).unwrap();
    let parent_dirs = mgr
        .config()
        .dirs
        .values()
        .filter_map(|d| d.parent().map(Path::to_path_buf))
        .collect();
    let mut live = Live {
        mgr,
        parent_dirs,
        child: None,
    };
    live.mgr.create().unwrap();
    let r: oci_spec::runtime::LinuxResources =
        serde_json::from_str(r#"{"memory":{"limit":67108864},"pids":{"limit":50}}"#).unwrap();
    live.mgr.apply(&r).unwrap();

    // Joins the cgroup before it goes on: it burns some cpu, touches memory, forks a sleeper.
    let child = Command::new("sh")
        .args([
            "-c",
            "read x; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 60 & wait",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = Pid::new(child.id() as i32).unwrap();
    live.child = Some(child);
    live.mgr.add_task(pid).unwrap();
    let stdin = live.child.as_mut().and_then(|c| c.stdin.as_mut()).unwrap();
    stdin.write_all(b"go\n").unwrap();
    wait_for("sh and its sleep in the cgroup", || {
        live.mgr.pids().unwrap().len() == 2
    });

    let s = live.mgr.stats().unwrap();
    assert_eq!(s.pids.current, 2, "{s:#?}");
    assert_eq!(s.pids.limit, 50);
    assert_eq!(s.memory.usage.limit, 67108864);
    assert!(s.memory.usage.usage > 0, "{:#?}", s.memory);
    assert!(!s.memory.stats.is_empty());
    // the loop ran to its end before the sleep was forked
    assert!(s.cpu.usage.total > 0, "{:#?}", s.cpu);
    assert!(s.memory.use_hierarchy);
    match live.mgr.hierarchy() {
        Hierarchy::V1 => {
            assert!(!s.cpu.usage.percpu.is_empty());
            let sum: u64 = s.cpu.usage.percpu.iter().sum();
            // the same counter read a moment later: never smaller, and close
            assert!(sum <= s.cpu.usage.total || sum - s.cpu.usage.total < 10_000_000);
            assert!(!s.cpuset.cpus.is_empty(), "{:#?}", s.cpuset);
            assert!(s.memory.oom_control.is_some());
        }
        Hierarchy::V2 => {
            assert!(s.memory.events.is_some());
            assert!(s.cpu.usage.user + s.cpu.usage.kernel > 0);
        }
    }
    // the numbers are the kernel's own
    let dirs = live.mgr.config().dirs;
    let (dir, file) = match live.mgr.hierarchy() {
        Hierarchy::V1 => (&dirs["memory"], "memory.limit_in_bytes"),
        Hierarchy::V2 => (&dirs["unified"], "memory.max"),
    };
    let limit = std::fs::read_to_string(dir.join(file)).unwrap();
    assert_eq!(limit.trim(), "67108864");

    // Removed out of band: an error that names a directory of the cgroup, no panic.
    let mut child = live.child.take().unwrap();
    live.mgr.kill_all().unwrap();
    let _ = child.wait();
    live.mgr.remove().unwrap();
    let e = live.mgr.stats().unwrap_err().to_string();
    assert!(
        dirs.values().any(|d| e.contains(&d.display().to_string())),
        "{e}"
    );
}
