//! Helpers of the security tests (security.rs, security_race.rs): running `myrt` with each
//! path resolver, snapshots of host directories and mount tables, hooks and consoles.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{self, wait_timeout, Env, Out};

/// How `myrt` resolves paths inside the rootfs in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolver {
    /// As it comes: openat2(RESOLVE_IN_ROOT).
    Openat2,
    /// `MYRT_NO_OPENAT2=1` in myrt's environment (rootfs::safe_path::NO_OPENAT2_ENV).
    EnvWalk,
    /// A seccomp filter makes openat2 fail with ENOSYS in myrt and everything it starts (the
    /// re-exec'd init too), as on a kernel without it: the component walk everywhere.
    Enosys,
}

pub const RESOLVERS: [Resolver; 3] = [Resolver::Openat2, Resolver::EnvWalk, Resolver::Enosys];

const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

static CALLS: AtomicUsize = AtomicUsize::new(0);

/// BPF: openat2 → ENOSYS, everything else allowed (x86_64 and aarch64).
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;

const fn bpf(code: u32, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

const LOAD: u32 = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
const JEQ: u32 = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
const RET: u32 = libc::BPF_RET | libc::BPF_K;

static DENY_OPENAT2: [libc::sock_filter; 7] = [
    bpf(LOAD, 0, 0, 4),
    bpf(JEQ, 1, 0, AUDIT_ARCH),
    bpf(RET, 0, 0, libc::SECCOMP_RET_ALLOW),
    bpf(LOAD, 0, 0, 0),
    bpf(JEQ, 0, 1, libc::SYS_openat2 as u32),
    bpf(RET, 0, 0, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
    bpf(RET, 0, 0, libc::SECCOMP_RET_ALLOW),
];

/// `myrt --root <root> <args>` set up to resolve paths the `r` way.
pub fn command_in(env: &Env, r: Resolver, args: &[&str]) -> Command {
    let mut cmd = env.command(args);
    match r {
        Resolver::Openat2 => {}
        Resolver::EnvWalk => {
            cmd.env("MYRT_NO_OPENAT2", "1");
        }
        Resolver::Enosys => {
            // SAFETY: between fork and exec only prctl runs (async-signal-safe); the filter is
            // a static the kernel copies, the sock_fprog lives on the stack across the call.
            // The test runs as root, so CAP_SYS_ADMIN stands in for no_new_privs.
            unsafe {
                cmd.pre_exec(|| {
                    let prog = libc::sock_fprog {
                        len: DENY_OPENAT2.len() as u16,
                        filter: DENY_OPENAT2.as_ptr() as *mut libc::sock_filter,
                    };
                    if libc::prctl(
                        libc::PR_SET_SECCOMP,
                        libc::SECCOMP_MODE_FILTER,
                        &prog as *const libc::sock_fprog,
                    ) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
    }
    cmd
}

/// Runs `cmd` with stdout/stderr in files of `env`, 60 s at most.
pub fn output(env: &Env, mut cmd: Command) -> Out {
    let n = CALLS.fetch_add(1, Ordering::Relaxed);
    let (out, err) = (
        env.path(&format!("sec.out.{n}")),
        env.path(&format!("sec.err.{n}")),
    );
    cmd.stdin(Stdio::null())
        .stdout(fs::File::create(&out).expect("stdout file"))
        .stderr(fs::File::create(&err).expect("stderr file"));
    let child = cmd.spawn().expect("spawn myrt");
    let (status, timed_out) = wait_timeout(child, COMMAND_TIMEOUT);
    let res = Out {
        status,
        stdout: fs::read_to_string(&out).unwrap_or_default(),
        stderr: fs::read_to_string(&err).unwrap_or_default(),
    };
    let _ = (fs::remove_file(out), fs::remove_file(err));
    assert!(!timed_out, "myrt timed out: {res:?}");
    res
}

pub fn myrt_in(env: &Env, r: Resolver, args: &[&str]) -> Out {
    output(env, command_in(env, r, args))
}

/// `myrt run` (foreground) of the env's container with resolver `r`; the container is
/// deleted afterwards whatever happened.
pub fn run_in(env: &Env, r: Resolver) -> Out {
    let out = myrt_in(env, r, &["run", "--bundle", env.bundle_str(), &env.id]);
    let _ = env.myrt(&["delete", "--force", &env.id]);
    out
}

/// The command failed, saying every one of `want`, and left no container behind.
#[track_caller]
pub fn assert_refused(out: &Out, want: &[&str], what: &str) {
    assert!(!out.success(), "{what}: succeeded: {out:?}");
    for w in want {
        assert!(
            out.stderr.contains(w),
            "{what}: stderr lacks {w:?}: {}",
            out.stderr
        );
    }
}

/// Every entry under `dir` (itself included): type+mode, size, mtime and content of files,
/// link targets. Equal snapshots: nothing was created, changed or removed.
pub fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(p) = todo.pop() {
        let Ok(md) = fs::symlink_metadata(&p) else {
            continue;
        };
        let mut desc = format!(
            "mode {:o} size {} mtime {}.{} dev {:x}",
            md.mode(),
            md.size(),
            md.mtime(),
            md.mtime_nsec(),
            md.rdev()
        );
        if md.file_type().is_symlink() {
            desc += &format!(" -> {:?}", fs::read_link(&p).ok());
        } else if md.is_file() {
            desc += &format!(" {:?}", fs::read(&p).ok());
        } else if md.is_dir() {
            for e in fs::read_dir(&p).into_iter().flatten().flatten() {
                todo.push(e.path());
            }
        }
        out.insert(p.display().to_string(), desc);
    }
    out
}

/// Mount points in a mountinfo text that are `dir` or below it.
pub fn mount_points_under(mountinfo: &str, dir: &Path) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(dir))
        .map(str::to_string)
        .collect()
}

/// Mount points of the test's own namespace at or below `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    mount_points_under(
        &fs::read_to_string("/proc/self/mountinfo").expect("mountinfo"),
        dir,
    )
}

/// Appends a createContainer hook running `script` with /bin/sh: it runs in the container's
/// namespaces after every mount, before pivot_root, with the host's paths still visible.
pub fn add_hook(env: &Env, script: &str) {
    env.edit(|c| {
        let hooks = &mut c["hooks"];
        if hooks.is_null() {
            *hooks = json!({});
        }
        let list = &mut hooks["createContainer"];
        if list.is_null() {
            *list = json!([]);
        }
        list.as_array_mut().expect("hook list").push(json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", script],
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
        }));
    });
}

/// The fd numbers open in process `pid` (as the test, on the host, sees them).
pub fn fd_table(pid: i32) -> Vec<i32> {
    let mut fds: Vec<i32> = fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read fd table")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    fds
}

/// `myrt <args> --bundle B id` with `files` at fds 3, 4, ... of myrt.
pub fn spawn_with_fds(env: &Env, files: &[fs::File], args: &[&str]) -> Out {
    use std::os::fd::AsRawFd;
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--bundle", env.bundle_str(), &env.id]);
    let mut cmd = env.command(&all);
    // Move them high first, so dup2 onto 3.. never clobbers one not yet moved.
    let raw: Vec<i32> = files.iter().map(|f| f.as_raw_fd()).collect();
    // SAFETY: only dup2/fcntl run between fork and exec (async-signal-safe), on fds that are
    // open in the child; the Vec was built before the fork and is only read.
    unsafe {
        cmd.pre_exec(move || {
            for (i, fd) in raw.iter().enumerate() {
                if libc::dup2(*fd, 100 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for i in 0..raw.len() as i32 {
                if libc::dup2(100 + i, 3 + i) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(100 + i);
            }
            Ok(())
        });
    }
    output(env, cmd)
}

/// `myrt create --console-socket SOCK` with resolver `r`; the listener on SOCK comes back with
/// the result so the caller decides whether to accept.
fn create_on_console(env: &Env, r: Resolver) -> (Out, UnixListener) {
    let sock = env.path("console.sock");
    let _ = fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).expect("bind console socket");
    let sock = sock.to_str().expect("utf-8");
    let args = [
        "create",
        "--console-socket",
        sock,
        "--bundle",
        env.bundle_str(),
        &env.id,
    ];
    (myrt_in(env, r, &args), listener)
}

/// `myrt create --console-socket` with resolver `r` (nobody accepts: a refused console must
/// fail before connecting). The container is deleted afterwards.
pub fn create_with_console(env: &Env, r: Resolver) -> Out {
    let (out, _listener) = create_on_console(env, r);
    let _ = env.myrt(&["delete", "--force", &env.id]);
    out
}

/// Creates and starts the container with a terminal; returns what it wrote to the terminal.
pub fn run_with_console(env: &Env, r: Resolver) -> Result<String, String> {
    let (out, listener) = create_on_console(env, r);
    if !out.success() {
        return Err(out.stderr);
    }
    let master = common::accept_console(&listener)?;
    env.ok(&["start", &env.id]);
    Ok(read_until_closed(
        fs::File::from(master),
        Duration::from_secs(20),
    ))
}

/// Reads a pty master until the slave side is closed (EIO) or `limit` passes.
fn read_until_closed(mut f: fs::File, limit: Duration) -> String {
    use std::io::Read;
    use std::os::fd::AsFd;
    let deadline = Instant::now() + limit;
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        let mut pfd = [nix::poll::PollFd::new(
            f.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        match nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(200u16)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(_) => break,
        }
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}
