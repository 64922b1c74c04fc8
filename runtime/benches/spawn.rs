//! Measures the two process-creation designs DESIGN.md allows for starting a container's init
//! from the multi-threaded shim (see runtime/README.md for the numbers and the choice):
//!
//! A. re-exec: the threaded parent spawns (fork+exec, nothing else after fork) a copy of its own
//!    binary from a sealed memfd; the fresh, single-threaded child does the setup.
//! B. pre-forked helper: a single-threaded helper forked before any thread existed forks a child
//!    on request; the child may run arbitrary code because its parent is single-threaded.
//!
//! Each round trip ends when the new process has written one byte back to the requester, which
//! is the point where container setup would begin. Run: `cargo bench -p myrt-runtime --bench spawn`.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

const ROUNDS: usize = 200;

fn main() {
    // Child role of design A: report in and exit.
    if let Ok(fd) = std::env::var("_SPAWN_BENCH_FD") {
        let fd: i32 = fd.parse().expect("fd");
        // SAFETY: the parent passed this fd to us on purpose.
        let mut s = unsafe { UnixStream::from_raw_fd(fd) };
        let _ = s.write_all(b"x");
        std::process::exit(0);
    }
    if std::env::args().any(|a| a == "--list") {
        println!("spawn: bench");
        return;
    }
    // Design B's helper must be forked before any thread exists.
    let helper = start_helper();
    // Then become multi-threaded like the shim (tokio starts worker threads).
    let _threads: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(|| std::thread::sleep(Duration::from_secs(3600))))
        .collect();

    let t = Instant::now();
    let memfd = myrt_runtime::process::exe::SealedExe::get().expect("sealed copy");
    let copy_cost = t.elapsed();
    let size = std::fs::metadata("/proc/self/exe")
        .map(|m| m.len())
        .unwrap_or(0);

    let a = median(|| reexec_round_trip(&memfd.exec_path()));
    let plain = median(|| reexec_round_trip(&std::fs::read_link("/proc/self/exe").unwrap()));
    let b = median(|| helper_round_trip(&helper));
    println!("binary size: {:.1} MiB", size as f64 / (1 << 20) as f64);
    println!("sealed memfd copy (once per shim): {:.2} ms", ms(copy_cost));
    println!(
        "A re-exec from sealed memfd, per process: {:.3} ms (median of {ROUNDS})",
        ms(a)
    );
    println!(
        "A' re-exec from the on-disk binary (unprotected), per process: {:.3} ms",
        ms(plain)
    );
    println!(
        "B fork from pre-forked helper, per process: {:.3} ms",
        ms(b)
    );
    println!("ratio A/B: {:.2}", ms(a) / ms(b));
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut f: impl FnMut() -> Duration) -> Duration {
    for _ in 0..10 {
        f();
    }
    let mut v: Vec<Duration> = (0..ROUNDS).map(|_| f()).collect();
    v.sort();
    v[v.len() / 2]
}

fn reexec_round_trip(exe: &std::path::Path) -> Duration {
    let t = Instant::now();
    let (mut a, b) = UnixStream::pair().unwrap();
    let fd = b.as_raw_fd();
    let mut cmd = Command::new(exe);
    cmd.env_clear().env("_SPAWN_BENCH_FD", fd.to_string());
    // SAFETY: only fcntl (async-signal-safe) runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::fcntl(fd, libc::F_SETFD, 0);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(b);
    let mut buf = [0u8; 1];
    a.read_exact(&mut buf).unwrap();
    let d = t.elapsed();
    child.wait().unwrap();
    d
}

fn start_helper() -> UnixStream {
    let (parent, child) = UnixStream::pair().unwrap();
    // SAFETY: called before any thread exists, so the child may run any code.
    match unsafe { libc::fork() } {
        0 => {
            drop(parent);
            helper_loop(child);
        }
        pid if pid > 0 => {
            drop(child);
            parent
        }
        _ => panic!("fork failed"),
    }
}

fn helper_loop(mut s: UnixStream) -> ! {
    let mut buf = [0u8; 1];
    while s.read_exact(&mut buf).is_ok() {
        // SAFETY: the helper is single-threaded.
        match unsafe { libc::fork() } {
            0 => {
                let _ = s.write_all(b"x");
                // SAFETY: leave the forked child at once without running destructors.
                unsafe { libc::_exit(0) };
            }
            pid if pid > 0 => {
                let mut st = 0;
                // SAFETY: waiting for our own positive child pid.
                unsafe { libc::waitpid(pid, &mut st, 0) };
            }
            _ => unsafe { libc::_exit(1) },
        }
    }
    // SAFETY: the requester closed the socket; leave without unwinding.
    unsafe { libc::_exit(0) }
}

fn helper_round_trip(s: &UnixStream) -> Duration {
    let mut s = s.try_clone().unwrap();
    let t = Instant::now();
    s.write_all(b"g").unwrap();
    let mut buf = [0u8; 1];
    s.read_exact(&mut buf).unwrap();
    t.elapsed()
}
