//! Keeping the e2e tests inside a private mount + pid namespace.
//!
//! Containers, shims and their mounts must never leak onto the shared host. Every e2e test starts
//! with [`isolate`]: when the process already runs in a namespace made for it (scripts/test.sh
//! runs the whole `cargo test` under `unshare`), the test body runs here; otherwise the test
//! re-runs itself — only itself — in a fresh
//! `unshare --mount --pid --fork --kill-child --propagation private --mount-proc`, asserts that
//! run passed and skips its own body. When that namespace's init (the test process) exits, the
//! kernel kills everything left in it.
//!
//! "Made for it" is checked, not assumed: whoever creates the namespace exports the outer pid and
//! mount namespace ids (`readlink /proc/self/ns/{pid,mnt}`) as `MYRT_E2E_OUTER_PIDNS` and
//! `MYRT_E2E_OUTER_MNTNS`, and the test requires its own to differ and `/` not to be shared.

use std::env;
use std::fs;
use std::io::Write;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::command;
use crate::image;

pub const OUTER_PIDNS_ENV: &str = "MYRT_E2E_OUTER_PIDNS";
pub const OUTER_MNTNS_ENV: &str = "MYRT_E2E_OUTER_MNTNS";

/// How long one re-executed test may run.
const TEST_TIMEOUT: Duration = Duration::from_secs(600);

fn ns_id(kind: &str) -> Option<String> {
    fs::read_link(format!("/proc/self/ns/{kind}"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// True when `/` carries a `shared:` propagation tag, i.e. mounts made here would reach the host.
fn root_is_shared() -> bool {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return true;
    };
    info.lines().any(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        // Field 5 is the mount point; optional fields start at 7 and end with "-".
        fields.get(4) == Some(&"/")
            && fields
                .iter()
                .skip(6)
                .take_while(|f| **f != "-")
                .any(|f| f.starts_with("shared:"))
    })
}

/// Where a test may run its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// In any private namespace made for the tests (scripts/test.sh runs every test in one).
    Shared,
    /// Only as the init of a namespace of its own: the kernel kills whatever the test left
    /// behind, and "no process left" checks see this test's processes only (engine tests).
    OwnInit,
}

/// True when this process runs in a private mount + pid namespace made by `isolate` or
/// scripts/test.sh.
pub fn is_isolated() -> bool {
    is_isolated_in(Scope::Shared)
}

fn is_isolated_in(scope: Scope) -> bool {
    let outer = |var| env::var(var).ok().filter(|v| !v.is_empty());
    let private = match (outer(OUTER_PIDNS_ENV), outer(OUTER_MNTNS_ENV)) {
        (Some(pid), Some(mnt)) => {
            ns_id("pid").is_some_and(|own| own != pid)
                && ns_id("mnt").is_some_and(|own| own != mnt)
                && !root_is_shared()
        }
        _ => false,
    };
    private && (scope == Scope::Shared || std::process::id() == 1)
}

/// Mounts a tmpfs over /run/containerd in this (private) mount namespace, once per namespace.
///
/// Every containerd shares /run/containerd/{s,runc,fifo}; with a private tmpfs there, shim
/// sockets, runc state dirs and ctr's fifo dirs of the tests never reach the host's /run, and
/// vanish with the namespace. Panics unless the process is isolated.
#[track_caller]
pub fn private_run_containerd() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        assert!(
            is_isolated(),
            "refusing to mount over /run/containerd outside a private namespace"
        );
        let target = "/run/containerd";
        let mounted = fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(target));
        if mounted {
            // An earlier test binary of the same scripts/test.sh namespace made it.
            return;
        }
        fs::create_dir_all(target).unwrap_or_else(|e| panic!("cannot create {target}: {e}"));
        nix::mount::mount(
            Some("tmpfs"),
            target,
            Some("tmpfs"),
            nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
            Some("mode=0711"),
        )
        .unwrap_or_else(|e| panic!("cannot mount a tmpfs on {target}: {e}"));
    });
}

/// True when the effective uid is 0.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Writes past libtest's output capture, so a skip is seen even when the test "passes".
pub fn shout(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// Call first in every e2e test; run the body only when it returns true.
///
/// - not root: prints a loud SKIP and returns false (the only reason to skip);
/// - already isolated: returns true;
/// - otherwise: runs this one test again in a fresh private mount + pid namespace, panics if
///   that run failed (its output is shown with the failure), and returns false.
#[track_caller]
pub fn isolate() -> bool {
    isolate_in(Scope::Shared)
}

/// [`isolate`] with a choice of [`Scope`]; in a shared namespace a test that needs its own is
/// re-run alone, one level deeper.
#[track_caller]
pub fn isolate_in(scope: Scope) -> bool {
    let name = std::thread::current()
        .name()
        .unwrap_or("<unnamed>")
        .to_string();
    if !is_root() {
        shout(&format!(
            "SKIP {name}: e2e tests need root (containerd, mounts, namespaces); run as root \
             or through scripts/test.sh"
        ));
        return false;
    }
    if is_isolated_in(scope) {
        return true;
    }
    // A namespace was made for us but does not look private: never re-exec in a loop.
    assert!(
        is_isolated() || env::var_os(OUTER_PIDNS_ENV).is_none(),
        "{OUTER_PIDNS_ENV} is set but this process is not in a private mount + pid namespace \
         with a non-shared /: refusing to start containers here"
    );
    assert!(
        name != "main" && name != "<unnamed>",
        "isolate() needs the libtest thread name to re-run the test alone; got {name:?}"
    );
    let exe = env::current_exe().unwrap_or_else(|e| panic!("cannot find the test binary: {e}"));
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--pid",
        "--fork",
        "--kill-child",
        "--propagation",
        "private",
        "--mount-proc",
    ])
    .arg(&exe)
    .args([
        name.as_str(),
        "--exact",
        "--nocapture",
        "--include-ignored",
        "--test-threads=1",
    ])
    .env(OUTER_PIDNS_ENV, ns_id("pid").unwrap_or_default())
    .env(OUTER_MNTNS_ENV, ns_id("mnt").unwrap_or_default());
    if scope == Scope::Shared {
        // Build the image once out here instead of in every child.
        cmd.env("MYRT_IMAGE_DIR", &image::image().dir);
    }
    let out = command::run(&mut cmd, TEST_TIMEOUT);
    // Shown by libtest when this test fails (or with --nocapture).
    print!("{}", out.stdout);
    eprint!("{}", out.stderr);
    assert!(
        out.success() && out.stdout.contains("test result: ok. 1 passed"),
        "the isolated run of {name} failed (output above): {}",
        if out.timed_out {
            "timed out"
        } else {
            "see its panic message"
        }
    );
    false
}
