//! OOM kills end to end through `ctr` against a private containerd, with the runtime from
//! `MYRT_E2E_RUNTIME` (default io.containerd.myrt.v1): a container that allocates past its
//! `--memory-limit` exits 137, and `ctr events` shows its `/tasks/oom` before its `/tasks/exit`
//! (CRI marks a container OOMKilled only from an OOM event that came first).
//!
//! Run as root: `cargo test -p myrt-tests --test e2e_oom`; see e2e_ctr.rs for the isolation.
//! Validated against containerd's runc shim (MYRT_E2E_RUNTIME=io.containerd.runc.v2) too.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use myrt_tests::{args, isolate, Containerd, EventWatcher, Source};

const SETTLE: Duration = Duration::from_secs(20);
const LIMIT: u64 = 16 << 20;

/// The memory cgroup directory of `pid`, from /proc/PID/cgroup (the test's /proc is its own
/// pid namespace's, like containerd's).
fn memory_cgroup(pid: u32) -> PathBuf {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read /proc/PID/cgroup");
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        if ctrls.split(',').any(|c| c == "memory") {
            return PathBuf::from("/sys/fs/cgroup/memory").join(path.trim_start_matches('/'));
        }
    }
    let unified = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("a memory or a 0:: line in /proc/PID/cgroup");
    PathBuf::from("/sys/fs/cgroup").join(unified.trim_start_matches('/'))
}

#[test]
fn oom_kill_is_reported_before_the_exit() {
    if !isolate() {
        return;
    }
    let cd = Containerd::start();
    let mut events = EventWatcher::start(&cd);
    let limit = LIMIT.to_string();
    let flags = ["--rm", "--memory-limit", limit.as_str()];
    // waits for a line on stdin, then grows without bound: tail keeps /dev/zero's endless line
    let cmd = ["/bin/sh", "-c", "read x; exec tail /dev/zero"];
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut run = cd
        .ctr_command(args(
            &["run"],
            cd.container_args(Source::Image, &flags, "oom", &cmd),
        ))
        .stdin(Stdio::piped())
        .stdout(out.reopen().unwrap())
        .stderr(out.reopen().unwrap())
        .spawn()
        .expect("start ctr run");
    let task = cd.wait_task_status("oom", "RUNNING", SETTLE);

    // the limit reached the cgroup; make memory+swap the same where the host accounts swap
    let dir = memory_cgroup(task.pid);
    let v1 = dir.join("memory.limit_in_bytes");
    if v1.exists() {
        assert_eq!(fs::read_to_string(&v1).unwrap().trim(), limit);
        let memsw = dir.join("memory.memsw.limit_in_bytes");
        if memsw.exists() {
            fs::write(&memsw, &limit).unwrap();
        }
    } else {
        let max = fs::read_to_string(dir.join("memory.max")).unwrap();
        assert_eq!(max.trim(), limit, "{}", dir.display());
        let swap = dir.join("memory.swap.max");
        if swap.exists() {
            fs::write(&swap, "0").unwrap();
        }
    }

    let mut stdin = run.stdin.take().unwrap();
    stdin.write_all(b"go\n").unwrap();
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = run.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = run.kill();
            panic!("ctr run did not end: {:?}", fs::read_to_string(out.path()));
        }
        thread::sleep(Duration::from_millis(50));
    };
    let output = fs::read_to_string(out.path()).unwrap_or_default();
    assert_eq!(status.code(), Some(137), "ctr run: {output}");

    let seen = events.wait_for(
        |e| e.topic == "/tasks/delete" && e.field("container_id") == "oom",
        SETTLE,
    );
    let exit = seen
        .iter()
        .find(|e| e.topic == "/tasks/exit" && e.field("container_id") == "oom")
        .expect("a /tasks/exit");
    assert_eq!(exit.exit_status(), 137);
    let topics = events.topics();
    let at = |want: &str| topics.iter().position(|t| t == want);
    let (oom, exit) = (at("/tasks/oom oom"), at("/tasks/exit oom"));
    assert!(oom.is_some(), "no /tasks/oom: {topics:#?}");
    assert!(oom < exit, "/tasks/oom after /tasks/exit: {topics:#?}");
}
