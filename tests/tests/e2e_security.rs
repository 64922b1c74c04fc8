//! Security proofs through the long-lived shim, end to end through a real containerd, with the
//! runtime from `MYRT_E2E_RUNTIME` (default io.containerd.myrt.v1).
//!
//! - CVE-2019-5736: the shim re-execs itself for every container init and exec through an
//!   unwritable handle (runtime/src/process/exe.rs: a detached read-only bind mount of its
//!   binary, whose exe reads "/"; a sealed memfd where that is refused), so the shim binary on
//!   the host is the asset. A static
//!   attacker (C, compiled here, bind-mounted into the container) scans `/proc/*/exe` while the
//!   test runs execs, tries `open(O_WRONLY)` and `open(O_PATH)` + reopen through
//!   `/proc/self/fd/N` for writing, and records what it saw. It never writes a host file: a write
//!   is tried only on a memfd (the byte that is already there), to prove the seals hold.
//! - fd hygiene: the init and an exec'd process hold only fds 0-2, pointing at the shim's pipes
//!   or the pty, and no open file of the shim (compared with kcmp(KCMP_FILE)).
//!
//! Run as root: `cargo test -p myrt-tests --test e2e_security`. Needs a C compiler with a static
//! libc (gcc + libc6-dev) for the attacker.
//!
//! With MYRT_E2E_RUNTIME=io.containerd.runc.v2 (Debian's runc 1.1.5) the CVE tests pass: runc
//! also execs itself from a detached read-only bind mount (its exe reads "/", write opens give
//! EROFS, or ETXTBSY while it runs). `fd_hygiene_without_terminal` fails there on purpose: runc's shim keeps
//! the container's own stdin read end open (the same open file description, per kcmp); myrt's
//! shim closes its copy.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use myrt_tests::command::{self, Running};
use myrt_tests::paths::SHIM_BINARY;
use myrt_tests::{args, bin_dir, isolate, runtime, Containerd, Source, MYRT_RUNTIME};

const SETTLE: Duration = Duration::from_secs(20);
const SLEEP: &[&str] = &["/bin/sleep", "1000"];
/// Bit of CAP_SYS_PTRACE in /proc/PID/status CapEff.
const CAP_SYS_PTRACE: u32 = 19;

/// The attacker (C): `attack OUT STOPFILE MAXSECS all|runtime [PID...]`; see its comment.
const ATTACK_C: &str = include_str!("e2e_security_attack.c");

// ---- helpers ----

/// Compiles the attacker statically into `<containerd dir>/attack/attack`; returns that dir
/// (bind-mounted read-write at /attack in the container, where the report lands).
#[track_caller]
fn attacker(cd: &Containerd) -> PathBuf {
    let dir = cd.dir().join("attack");
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let src = dir.join("attack.c");
    fs::write(&src, ATTACK_C).unwrap_or_else(|e| panic!("write {}: {e}", src.display()));
    let out = command::run(
        Command::new("cc")
            .args(["-static", "-O2", "-o"])
            .arg(dir.join("attack"))
            .arg(&src),
        Duration::from_secs(120),
    );
    assert!(
        out.success(),
        "cannot build the static attacker: install gcc and libc6-dev (static libc): {out}"
    );
    dir
}

/// The attacker's report: capabilities, counters and `class op result -> count`.
#[derive(Debug, Default)]
struct Report {
    capeff: u64,
    iterations: u64,
    pids: u64,
    rt_pids: u64,
    /// (class, op, result) -> count, e.g. ("rt", "readlink", "err:EACCES").
    counts: BTreeMap<(String, String, String), u64>,
}

impl Report {
    fn parse(text: &str) -> Report {
        let mut r = Report::default();
        for line in text.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            match f.as_slice() {
                ["capeff", hex] => r.capeff = u64::from_str_radix(hex.trim(), 16).unwrap_or(0),
                ["iterations", n] => r.iterations = n.parse().unwrap_or(0),
                ["pids", n] => r.pids = n.parse().unwrap_or(0),
                ["rt_pids", n] => r.rt_pids = n.parse().unwrap_or(0),
                ["count", n, class, op, result] => {
                    let key = (class.to_string(), op.to_string(), result.to_string());
                    r.counts.insert(key, n.parse().unwrap_or(0));
                }
                _ => {}
            }
        }
        r
    }

    /// Every `ok:` result of `op`, as (class, target).
    fn targets(&self, op: &str) -> Vec<(String, String)> {
        self.counts
            .keys()
            .filter(|(_, o, _)| o == op)
            .filter_map(|(c, _, r)| Some((c.clone(), r.strip_prefix("ok:")?.to_string())))
            .collect()
    }

    fn count(&self, class: &str, op: &str) -> u64 {
        self.counts
            .iter()
            .filter(|((c, o, _), _)| c == class && o == op)
            .map(|(_, n)| n)
            .sum()
    }
}

/// Waits for the attacker's report (written once the stop file appears).
#[track_caller]
fn read_report(dir: &Path) -> (Report, String) {
    fs::write(dir.join("stop"), "").unwrap_or_else(|e| panic!("write the stop file: {e}"));
    let out = dir.join("out");
    let deadline = Instant::now() + SETTLE;
    loop {
        if let Ok(text) = fs::read_to_string(&out) {
            if text.ends_with("done\n") {
                return (Report::parse(&text), text);
            }
        }
        assert!(
            Instant::now() < deadline,
            "the attacker wrote no report to {} within {SETTLE:?}",
            out.display()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// `io.containerd.runc.v2` -> `containerd-shim-runc-v2`, as containerd names shim binaries.
fn shim_binary_name(rt: &str) -> String {
    let parts: Vec<&str> = rt.split('.').collect();
    match parts.as_slice() {
        [.., name, version] => format!("containerd-shim-{name}-{version}"),
        _ => SHIM_BINARY.to_string(),
    }
}

/// The shim binary containerd runs for the runtime under test: the first on containerd's PATH
/// (the myrt bin dir first, see Containerd::start_daemon), canonicalized.
#[track_caller]
fn shim_binary() -> PathBuf {
    let name = if runtime() == MYRT_RUNTIME {
        SHIM_BINARY.to_string()
    } else {
        shim_binary_name(&runtime())
    };
    myrt_tests::paths::daemon_path()
        .into_iter()
        .map(|d| d.join(&name))
        .find(|p| p.is_file())
        .and_then(|p| p.canonicalize().ok())
        .unwrap_or_else(|| panic!("{name} is not in {} nor on PATH", bin_dir().display()))
}

/// The files an attack would target: the shim binary, and for runc's shim the runc binary too.
#[track_caller]
fn assets() -> Vec<PathBuf> {
    let mut files = vec![shim_binary()];
    if runtime() != MYRT_RUNTIME {
        let out = command::run(Command::new("sh").args(["-c", "command -v runc"]), SETTLE);
        if let Some(p) = out.success().then(|| PathBuf::from(out.stdout.trim())) {
            files.extend(p.canonicalize().ok());
        }
    }
    files
}

/// sha256 of each file (`sha256sum`, coreutils).
#[track_caller]
fn sha256(files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .map(|f| {
            let out = command::run(Command::new("sha256sum").arg(f), SETTLE).ok();
            out.stdout
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// The one shim serving this containerd's containers; its exe must be the host binary.
#[track_caller]
fn the_shim(cd: &Containerd) -> u32 {
    let shims = cd.shim_pids();
    assert_eq!(shims.len(), 1, "one shim expected: {shims:?}");
    let pid = shims[0].as_raw() as u32;
    let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    assert_eq!(
        exe,
        shim_binary(),
        "the shim process must run the host binary the test hashes"
    );
    pid
}

fn remove(cd: &Containerd, id: &str) {
    cd.ctr(["tasks", "kill", "-a", "-s", "SIGKILL", id]).ok();
    cd.wait_task_status(id, "STOPPED", SETTLE);
    cd.ctr(["tasks", "delete", id]).ok();
    cd.ctr(["containers", "delete", id]).ok();
}

/// `ctr tasks exec --exec-id EXEC_ID ID CMD...`, retried while it fails with ETXTBSY: the
/// attacker opens the container's own busybox for writing whenever no process runs it (its right
/// in its own layer), and an execve of busybox at that instant fails with "text file busy".
/// Returns how many tries ETXTBSY cost.
#[track_caller]
fn exec_retrying(cd: &Containerd, id: &str, exec_id: &str, cmd: &[&str]) -> u32 {
    let mut argv = vec!["tasks", "exec", "--exec-id", exec_id, id];
    argv.extend_from_slice(cmd);
    for busy in 0..10 {
        let out = cd.ctr(&argv);
        if out.success() {
            return busy;
        }
        assert!(out.stderr.contains("text file busy"), "{out}");
        thread::sleep(Duration::from_millis(20));
    }
    panic!("exec {exec_id} in {id} got ETXTBSY 10 times in a row");
}

/// The exe of a runtime process as a container sees it: the binary on a detached read-only bind
/// mount, whose path reads "/" (myrt, runc 1.1's bindfd), or myrt's sealed memfd fallback.
fn is_runtime_copy(target: &str) -> bool {
    target.starts_with("/memfd:") || target == "/"
}

fn has_cap(capeff: u64, bit: u32) -> bool {
    capeff & (1u64 << bit) != 0
}

// ---- CVE-2019-5736 ----

/// A container in its own pid namespace attacks every exe it can see while ~30 execs run
/// through the shim: no write open of anything but a memfd, no write at all, and every exe it
/// resolves is the sealed copy or the container's own busybox, never the host binary.
#[test]
fn cve_2019_5736_exec_storm_cannot_reach_the_shim_binary() {
    if isolate() {
        exec_storm(false);
    }
}

/// The same attack from a privileged container (all capabilities, CAP_SYS_PTRACE included):
/// the runtime processes' exe is now reachable, and it is the read-only handle (or the sealed
/// memfd fallback), which refuses every write open. This is where the handle, not the ptrace
/// checks, is the defence.
#[test]
fn cve_2019_5736_privileged_exec_storm_meets_an_unwritable_handle() {
    if isolate() {
        exec_storm(true);
    }
}

fn exec_storm(privileged: bool) {
    let cd = Containerd::start();
    let assets = assets();
    let before = sha256(&assets);
    let dir = attacker(&cd);
    let mount = format!(
        "type=bind,src={},dst=/attack,options=rbind:rw",
        dir.display()
    );
    let mut flags = vec!["--mount", mount.as_str()];
    if privileged {
        flags.push("--privileged");
    }
    cd.run_image_detached(
        &flags,
        "att",
        &[
            "/attack/attack",
            "/attack/out",
            "/attack/stop",
            "120",
            "all",
        ],
    );
    let shim = the_shim(&cd);
    let busy: u32 = (0..30)
        .map(|i| exec_retrying(&cd, "att", &format!("e{i}"), &["/bin/sleep", "0.05"]))
        .sum();
    let (report, text) = read_report(&dir);
    eprintln!("execs retried after ETXTBSY: {busy}");
    eprintln!("attacker report (own pid namespace, privileged: {privileged}):\n{text}");

    assert_eq!(has_cap(report.capeff, CAP_SYS_PTRACE), privileged, "{text}");
    assert!(report.iterations > 0, "{text}");
    // It saw the exec'd processes: the attack ran while the shim started them.
    assert!(
        report.pids >= 10,
        "the attacker saw too few processes: {text}"
    );
    let shim_name = shim_binary()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for op in [
        "readlink",
        "open-opath",
        "open-wronly",
        "reopen-wronly",
        "late-reopen-wronly",
    ] {
        for (class, target) in report.targets(op) {
            assert!(
                !target.contains(&shim_name) && !target.contains("/target/"),
                "{class} {op} resolved a host binary {target}: {text}"
            );
            // What a container may see: the runtime's copy, or its own binary (busybox).
            assert!(
                is_runtime_copy(&target) || target == "/bin/busybox",
                "{class} {op} resolved {target}, neither the sealed copy nor busybox: {text}"
            );
        }
    }
    // Write opens can succeed on two things only, checked above: the sealed copy (the kernel
    // lets a sealed memfd be opened for writing; its seals refuse the write, checked below) and
    // the container's own busybox once its exec'd `sleep` is gone (no ETXTBSY then; the image's
    // overlay copies it up into the container's own layer). Runtime processes give nothing.
    for op in ["open-wronly", "reopen-wronly", "late-reopen-wronly"] {
        for (class, target) in report.targets(op) {
            assert!(
                class == "other" || target.starts_with("/memfd:"),
                "{class} {op} opened {target} for writing: {text}"
            );
        }
    }
    assert!(
        !report
            .counts
            .keys()
            .any(|(_, op, r)| op == "memfd-write" && r == "ok"),
        "a write to the sealed copy succeeded: {text}"
    );
    if privileged {
        // Non-vacuous: the attacker did reach the runtime's copy and, once no exec ran it any
        // more, tried to open it for writing (and to write, if that open succeeded).
        assert!(
            report
                .targets("open-opath")
                .iter()
                .any(|(c, t)| c == "rt" && is_runtime_copy(t))
                && report.count("rt", "late-reopen-wronly") > 0,
            "the privileged attacker never reached a runtime process' exe: {text}"
        );
    }
    assert_eq!(sha256(&assets), before, "{assets:?} changed");
    assert!(
        fs::metadata(format!("/proc/{shim}")).is_ok(),
        "the shim died during the attack"
    );
    remove(&cd, "att");
}

/// A container in the host's (here: the test's) pid namespace, default capabilities: it sees
/// the shim and the runtime processes of execs but cannot resolve, open or write their exe.
#[test]
fn cve_2019_5736_host_pid_namespace_cannot_open_the_shim_exe() {
    if !isolate() {
        return;
    }
    let cd = Containerd::start();
    let assets = assets();
    let before = sha256(&assets);
    let dir = attacker(&cd);
    let mount = format!(
        "type=bind,src={},dst=/attack,options=rbind:rw",
        dir.display()
    );
    let pidns = format!("pid:/proc/{}/ns/pid", std::process::id());
    cd.run_image_detached(
        &["--mount", &mount, "--with-ns", &pidns],
        "hostpid",
        &[
            "/attack/attack",
            "/attack/out",
            "/attack/stop",
            "120",
            "runtime",
        ],
    );
    let shim = the_shim(&cd);
    // busybox alone, as an attacker without a compiler would try it: resolve the link, open it
    // for reading, and for read-write (`<>`: no O_TRUNC, so nothing is written if it opened).
    let probe = format!(
        "readlink /proc/{shim}/exe; echo readlink=$?; \
         (exec 3</proc/{shim}/exe) 2>&1; echo read=$?; \
         (exec 3<>/proc/{shim}/exe) 2>&1; echo rdwr=$?; \
         cat /proc/{shim}/cmdline | tr '\\0' ' '; echo"
    );
    let out = cd
        .ctr([
            "tasks",
            "exec",
            "--exec-id",
            "sh",
            "hostpid",
            "/bin/sh",
            "-c",
            &probe,
        ])
        .ok();
    eprintln!("busybox probe of shim pid {shim}:\n{}", out.stdout);
    let shim_name = shim_binary()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    assert!(
        out.stdout.contains(&shim_name),
        "the container must see the shim (host pid namespace): {out}"
    );
    for step in ["readlink", "read", "rdwr"] {
        assert!(
            !out.stdout.contains(&format!("{step}=0")),
            "`{step}` of /proc/{shim}/exe succeeded from the container: {out}"
        );
    }
    assert!(
        out.stdout.contains("Permission denied"),
        "expected EACCES: {out}"
    );
    // Execs while the attacker loops: their runtime processes (in this pid namespace from the
    // start, with the host's capabilities) are targets too.
    for i in 0..10 {
        exec_retrying(&cd, "hostpid", &format!("e{i}"), &["/bin/true"]);
    }
    let (report, text) = read_report(&dir);
    eprintln!("attacker report (host pid namespace):\n{text}");
    assert!(!has_cap(report.capeff, CAP_SYS_PTRACE), "{text}");
    assert!(
        report.rt_pids >= 1,
        "the attacker never saw the shim: {text}"
    );
    assert!(report.count("rt", "readlink") > 0, "{text}");
    // A process seen as runtime (argv0 myrt-init) may have exec'd the container's /bin/true by
    // the time its exe is read: the container's own busybox is the only other target allowed.
    for op in ["readlink", "open-opath", "open-wronly", "reopen-wronly"] {
        let opened = report.targets(op);
        assert!(
            opened
                .iter()
                .all(|(_, t)| is_runtime_copy(t) || t == "/bin/busybox"),
            "{op} of a runtime process' exe succeeded from the container: {opened:?}\n{text}"
        );
    }
    let denied = |op: &str| {
        report
            .counts
            .iter()
            .filter(|((c, o, r), _)| {
                c == "rt" && o == op && (r == "err:EACCES" || r == "err:EPERM")
            })
            .map(|(_, n)| n)
            .sum::<u64>()
    };
    assert!(
        denied("readlink") > 0 && denied("open-wronly") > 0,
        "{text}"
    );
    assert!(
        !report
            .counts
            .keys()
            .any(|(_, op, r)| op == "memfd-write" && r == "ok"),
        "{text}"
    );
    assert_eq!(sha256(&assets), before, "{assets:?} changed");
    remove(&cd, "hostpid");
}

// ---- fd hygiene ----

/// One open fd of a process, as the host sees it.
#[derive(Debug, Clone)]
struct Fd {
    num: i32,
    target: String,
    dev: u64,
    ino: u64,
    rdev: u64,
    is_char: bool,
}

fn fds(pid: u32) -> Vec<Fd> {
    let dir = format!("/proc/{pid}/fd");
    let mut out: Vec<Fd> = fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let num: i32 = e.file_name().to_str()?.parse().ok()?;
            let target = fs::read_link(e.path()).ok()?.to_string_lossy().into_owned();
            // stat follows the magic link: the open file's own inode (pipes and sockets too).
            let m = fs::metadata(e.path()).ok()?;
            Some(Fd {
                num,
                target,
                dev: m.dev(),
                ino: m.ino(),
                rdev: m.rdev(),
                is_char: m.file_type().is_char_device(),
            })
        })
        .collect();
    out.sort_by_key(|f| f.num);
    out
}

/// kcmp(KCMP_FILE): whether two fds of two processes are one open file description.
/// None when the kernel cannot tell (an fd closed meanwhile).
fn same_description(a: u32, fd_a: i32, b: u32, fd_b: i32) -> Option<bool> {
    const KCMP_FILE: libc::c_long = 0;
    // SAFETY: kcmp takes only integers and compares kernel objects; no memory is shared.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            a as libc::pid_t,
            b as libc::pid_t,
            KCMP_FILE,
            fd_a as libc::c_ulong,
            fd_b as libc::c_ulong,
        )
    };
    match rc {
        0 => Some(true),
        r if r > 0 => Some(false),
        _ => None,
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Stdio {
    /// The shim's pipes (or /dev/null for an unused stream).
    Pipes,
    /// One pty slave on 0, 1 and 2.
    Pty,
    /// `file://` log URI: /dev/null in, this file on 1 and 2.
    LogFile(PathBuf),
}

/// Waits until `pid` runs the user's program (not the runtime's setup any more).
#[track_caller]
fn wait_user_program(pid: u32) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmdline.starts_with(b"/bin/sleep\0") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "pid {pid} does not run /bin/sleep: {:?}",
            String::from_utf8_lossy(&cmdline)
        );
        thread::sleep(Duration::from_millis(25));
    }
}

/// The container process `pid` holds exactly fds 0, 1, 2 of the expected kind, none of them a
/// socket, epoll, eventfd, cgroup dir or other file of the shim.
#[track_caller]
fn assert_only_stdio(what: &str, pid: u32, shim: u32, want: &Stdio) {
    wait_user_program(pid);
    let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    assert!(
        exe.ends_with("bin/busybox"),
        "{what}: pid {pid} runs {exe:?}"
    );
    let theirs = fds(pid);
    let ours = fds(shim);
    eprintln!(
        "{what}: pid {pid} fds {:?}; shim {shim} fds {:?}",
        theirs
            .iter()
            .map(|f| (f.num, &f.target))
            .collect::<Vec<_>>(),
        ours.iter().map(|f| (f.num, &f.target)).collect::<Vec<_>>()
    );
    let nums: Vec<i32> = theirs.iter().map(|f| f.num).collect();
    assert_eq!(nums, vec![0, 1, 2], "{what}: pid {pid} holds {theirs:#?}");
    for f in &theirs {
        match want {
            Stdio::Pipes => assert!(
                f.target.starts_with("pipe:[") || f.target == "/dev/null",
                "{what}: fd {} is {} (want a pipe of the shim or /dev/null)",
                f.num,
                f.target
            ),
            Stdio::Pty => {
                assert!(
                    f.is_char && libc::major(f.rdev) == 136 && f.rdev == theirs[0].rdev,
                    "{what}: fd {} is {} (rdev {:#x}), want one pty slave: {theirs:#?}",
                    f.num,
                    f.target,
                    f.rdev
                );
                assert!(
                    f.target.contains("/dev/pts/") || f.target.ends_with("/dev/console"),
                    "{what}: fd {} is {}",
                    f.num,
                    f.target
                );
            }
            Stdio::LogFile(log) => {
                let want = if f.num == 0 {
                    "/dev/null".to_string()
                } else {
                    log.display().to_string()
                };
                assert_eq!(f.target, want, "{what}: fd {}", f.num);
            }
        }
    }
    if *want == Stdio::Pipes {
        assert!(
            theirs[1].target.starts_with("pipe:["),
            "{what}: stdout must be the shim's pipe: {theirs:#?}"
        );
    }
    // Non-vacuous: the shim does hold the kinds of fds that must not leak.
    assert!(
        ours.iter().any(|f| f.target.starts_with("socket:"))
            && ours.iter().any(|f| f.target.starts_with("anon_inode:")),
        "the shim holds no socket or anon inode? {ours:#?}"
    );
    let mut compared = 0;
    let mut shared = Vec::new();
    for f in &theirs {
        for s in &ours {
            // The other end of a stdio pipe shares the inode, never the open file description.
            if f.dev == s.dev && f.ino == s.ino && !f.target.starts_with("pipe:[") {
                shared.push(format!(
                    "fd {} ({}) is the inode of shim fd {}",
                    f.num, f.target, s.num
                ));
            }
            if let Some(same) = same_description(pid, f.num, shim, s.num) {
                compared += 1;
                if same {
                    shared.push(format!(
                        "fd {} ({}) is the shim's own open file fd {} ({})",
                        f.num, f.target, s.num, s.target
                    ));
                }
            }
        }
    }
    assert!(
        compared > 0,
        "kcmp(KCMP_FILE) compared nothing: is CONFIG_KCMP off?"
    );
    assert!(shared.is_empty(), "{what}: {shared:#?}");
}

/// Pid of the one process of task `id` that is not its init (an exec), polled from `ctr t ps`.
#[track_caller]
fn exec_pid(cd: &Containerd, id: &str, init: u32) -> u32 {
    let deadline = Instant::now() + SETTLE;
    loop {
        let out = cd.ctr(["tasks", "ps", id]).ok();
        let pids: Vec<u32> = out
            .stdout
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .filter(|p| *p != init)
            .collect();
        if let [pid] = pids.as_slice() {
            return *pid;
        }
        assert!(Instant::now() < deadline, "no single exec in {out}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// `script` gives ctr the terminal `-t` needs; the returned command runs until the task ends.
fn with_terminal(cd: &Containerd, ctr_args: Vec<String>) -> Running {
    let ctr = cd.ctr_command(ctr_args);
    let line: Vec<String> = std::iter::once(ctr.get_program())
        .chain(ctr.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    command::spawn(Command::new("script").args(["-qec", &line.join(" "), "/dev/null"]))
}

#[test]
fn fd_hygiene_without_terminal() {
    if !isolate() {
        return;
    }
    let cd = Containerd::start();
    let init = cd.run_image_detached(&[], "fdp", SLEEP);
    let shim = the_shim(&cd);
    assert_only_stdio("init", init, shim, &Stdio::Pipes);
    let mut exec = vec!["tasks", "exec", "-d", "--exec-id", "x", "fdp"];
    exec.extend_from_slice(SLEEP);
    cd.ctr(exec).ok();
    let pid = exec_pid(&cd, "fdp", init);
    assert_only_stdio("exec", pid, shim, &Stdio::Pipes);
    remove(&cd, "fdp");

    // With a `file://` log URI the process writes to the file itself: still only 0-2, and the
    // shim keeps no handle on that open file. (Neither containerd's task API nor the OCI process
    // can ask for extra fds; the shim passes preserve_fds 0, so 0-2 is the whole expected set.)
    let log = cd.dir().join("fdlog.log");
    let uri = format!("file://{}", log.display());
    let init = cd.run_image_detached(&["--log-uri", &uri], "fdl", SLEEP);
    let shim = the_shim(&cd);
    assert_only_stdio("init with a log file", init, shim, &Stdio::LogFile(log));
    remove(&cd, "fdl");
}

#[test]
fn fd_hygiene_with_terminal() {
    if !isolate() {
        return;
    }
    let cd = Containerd::start();
    let run = with_terminal(
        &cd,
        args(
            &["run", "--rm", "-t"],
            cd.container_args(Source::Image, &[], "fdt", SLEEP),
        ),
    );
    let init = cd.wait_task_status("fdt", "RUNNING", SETTLE).pid;
    let shim = the_shim(&cd);
    assert_only_stdio("init with a terminal", init, shim, &Stdio::Pty);
    let mut exec = vec!["tasks", "exec", "-t", "--exec-id", "xt", "fdt"];
    exec.extend_from_slice(SLEEP);
    let exec_run = with_terminal(&cd, exec.iter().map(|s| s.to_string()).collect());
    let pid = exec_pid(&cd, "fdt", init);
    assert_only_stdio("exec with a terminal", pid, shim, &Stdio::Pty);
    let init_tty = fds(init)[0].rdev;
    assert_ne!(fds(pid)[0].rdev, init_tty, "the exec must get its own pty");
    cd.ctr(["tasks", "kill", "-a", "-s", "SIGKILL", "fdt"]).ok();
    let out = exec_run.wait(SETTLE);
    assert!(!out.timed_out, "{out}");
    let out = run.wait(SETTLE);
    assert!(!out.timed_out, "{out}");
    cd.wait_no_shims(SETTLE);
}
