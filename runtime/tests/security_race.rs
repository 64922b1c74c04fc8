//! Race loops of the container-escape regression tests (see security.rs): a thread swaps a
//! directory of the rootfs with a symlink to a host directory (renameat2 RENAME_EXCHANGE)
//! while `myrt run` sets the container up, again and again, for a bounded count and time.
//! Each run must either fail with a named error or give the container its mounts inside the
//! rootfs; nothing may ever be mounted outside, neither in the test's mount namespace nor in
//! the container's (a createContainer hook records the container's mount table after every
//! mount, before pivot_root, while the host's paths are still visible).

mod common;
mod security_support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{isolate, Env};
use security_support::*;

/// At most this many runs per loop...
const ITERATIONS: usize = 200;
/// ...and at most this long.
const TIME_LIMIT: Duration = Duration::from_secs(30);

/// Swaps `a` and `b` in `dir` until dropped; counts the swaps.
struct Swapper {
    stop: Arc<AtomicBool>,
    swaps: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Swapper {
    fn start(dir: &Path, a: &'static str, b: &'static str) -> Swapper {
        let stop = Arc::new(AtomicBool::new(false));
        let swaps = Arc::new(AtomicU64::new(0));
        let dirfd = fs::File::open(dir).expect("open swap dir");
        let (s, n) = (stop.clone(), swaps.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if nix::fcntl::renameat2(
                    &dirfd,
                    a,
                    &dirfd,
                    b,
                    nix::fcntl::RenameFlags::RENAME_EXCHANGE,
                )
                .is_ok()
                {
                    n.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Swapper {
            stop,
            swaps,
            thread: Some(thread),
        }
    }

    fn swaps(&self) -> u64 {
        self.swaps.load(Ordering::Relaxed)
    }
}

impl Drop for Swapper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a race loop saw: runs that went through, and failures by first error line.
#[derive(Default, Debug)]
struct Tally {
    runs: usize,
    ok: usize,
    refused: BTreeMap<String, usize>,
}

/// Runs the env's container in a loop (resolvers in turn) while `swapper` swaps; `check` gets
/// each result and the container's mount table as the hook saw it ("" when it did not run).
fn race(
    env: &Env,
    hook_out: &Path,
    swapper: &Swapper,
    mut check: impl FnMut(&common::Out, &str, &str),
) -> Tally {
    let mut tally = Tally::default();
    let start = Instant::now();
    while tally.runs < ITERATIONS && start.elapsed() < TIME_LIMIT {
        let r = RESOLVERS[tally.runs % RESOLVERS.len()];
        let _ = fs::remove_file(hook_out);
        let out = run_in(env, r);
        let inner = fs::read_to_string(hook_out).unwrap_or_default();
        let what = format!("run {} ({r:?})", tally.runs);
        check(&out, &inner, &what);
        tally.runs += 1;
        if out.success() {
            tally.ok += 1;
        } else {
            let first = out.stderr.lines().next().unwrap_or("").to_string();
            *tally.refused.entry(first).or_default() += 1;
        }
    }
    eprintln!(
        "{} runs in {:?} while {} swaps: {} ran, refused: {:#?}",
        tally.runs,
        start.elapsed(),
        swapper.swaps(),
        tally.ok,
        tally.refused
    );
    tally
}

fn hook_env(env: &Env) -> PathBuf {
    let hook_out = env.path("hook-mountinfo");
    add_hook(
        env,
        &format!("cat /proc/self/mountinfo > {}", hook_out.display()),
    );
    hook_out
}

/// CVE-2019-19921, CVE-2023-27561: rootfs/proc swapped between a directory and a symlink into
/// a shared volume while containers are created. procfs is never mounted in the volume (in
/// either mount namespace), and every container that starts has its masks (char 1:3).
#[test]
fn cve_2019_19921_cve_2023_27561_proc_swap_race() {
    if !isolate() {
        return;
    }
    // The swap may go on after setup: then the procfs mount is at /proc-alt in the container.
    let env = Env::new(
        "race-proc",
        &[
            "sh",
            "-c",
            "for p in /proc /proc-alt; do stat -c '%n %t:%T' $p/keys $p/timer_list 2>/dev/null; done; exit 0",
        ],
    );
    let vol = env.path("volume");
    fs::create_dir_all(&vol).expect("mkdir volume");
    let before = snapshot(&vol);
    let rootfs = env.bundle.join("rootfs");
    symlink(&vol, rootfs.join("proc-alt")).expect("symlink");
    let hook_out = hook_env(&env);
    let swapper = Swapper::start(&rootfs, "proc", "proc-alt");
    let tally = race(&env, &hook_out, &swapper, |out, inner, what| {
        if out.success() {
            // (The swap may still run while the container looks, so a look may find nothing;
            // what it finds must be masked.)
            assert!(
                out.stdout.lines().all(|l| l.ends_with(" 1:3")),
                "{what}: started without its masks: {out:?}"
            );
        } else {
            // Refused while mounting, or later (masking) because /proc was a symlink by then.
            assert!(
                out.stderr.contains("\"/proc"),
                "{what}: failed for another reason: {}",
                out.stderr
            );
        }
        assert_eq!(mounts_under(&vol), Vec::<String>::new(), "{what}");
        assert_eq!(
            mount_points_under(inner, &vol),
            Vec::<String>::new(),
            "{what}: procfs mounted in the volume in the container's namespace"
        );
        assert_eq!(snapshot(&vol), before, "{what}: the volume changed");
    });
    drop(swapper);
    assert!(tally.runs >= 20, "too few runs to mean anything: {tally:?}");
}

/// CVE-2021-30465: a bind mount's destination (/data/target) has its parent swapped with a
/// symlink to a host directory while containers are created. No mount ever appears in that
/// directory (in either mount namespace, nor any change to its contents); every container
/// that starts sees the bind source inside its rootfs.
#[test]
fn cve_2021_30465_bind_destination_swap_race() {
    if !isolate() {
        return;
    }
    // The swap may go on after setup: the mount then shows through the other name.
    let env = Env::new(
        "race-bind",
        &[
            "sh",
            "-c",
            "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do grep -h bound /data/target/marker /alt/target/marker 2>/dev/null && break; done; exit 0",
        ],
    );
    let outside = env.path("outside");
    fs::create_dir_all(outside.join("target")).expect("mkdir outside");
    let before = snapshot(&outside);
    let src = env.path("src");
    fs::create_dir_all(&src).expect("mkdir src");
    fs::write(src.join("marker"), "bound\n").expect("marker");
    let rootfs = env.bundle.join("rootfs");
    fs::create_dir_all(rootfs.join("data/target")).expect("mkdir data");
    symlink(&outside, rootfs.join("alt")).expect("symlink");
    env.edit(|c| {
        c["mounts"]
            .as_array_mut()
            .expect("mounts")
            .push(serde_json::json!({
                "destination": "/data/target", "type": "bind", "source": src, "options": ["rbind"]
            }))
    });
    let hook_out = hook_env(&env);
    let swapper = Swapper::start(&rootfs, "data", "alt");
    let tally = race(&env, &hook_out, &swapper, |out, inner, what| {
        if out.success() {
            // In the container's table after setup: the bind is below the rootfs.
            assert!(
                mount_points_under(inner, &rootfs)
                    .iter()
                    .any(|p| p.ends_with("/target")),
                "{what}: the bind is not in the rootfs: {inner}"
            );
            assert!(
                out.stdout.contains("bound\n"),
                "{what}: the container does not see the bind: {out:?}"
            );
        } else {
            assert!(
                out.stderr.contains("(destination \"/data/target\")")
                    || out.stderr.contains("CVE-"),
                "{what}: failed for another reason: {}",
                out.stderr
            );
        }
        assert_eq!(mounts_under(&outside), Vec::<String>::new(), "{what}");
        assert_eq!(
            mount_points_under(inner, &outside),
            Vec::<String>::new(),
            "{what}: mounted outside the rootfs in the container's namespace"
        );
        assert_eq!(
            snapshot(&outside),
            before,
            "{what}: the host directory changed"
        );
    });
    drop(swapper);
    assert!(tally.runs >= 20, "too few runs to mean anything: {tally:?}");
}
