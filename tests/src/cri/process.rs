//! What the CRI tests read of processes and mounts in /proc: a container's pid, parent,
//! liveness and children, its mount table, and the mounts a containerd left behind.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::thread;
use std::time::Instant;

use super::{POLL, SETTLE};
use crate::Containerd;

/// `info["pid"]` of a verbose status (see [`info_json`](super::info_json)).
#[track_caller]
pub fn info_pid(info: &serde_json::Value) -> u64 {
    let pid = info["pid"].as_u64().unwrap_or(0);
    assert!(pid > 0, "verbose info without a pid: {info}");
    pid
}

/// A `Name:` field of /proc/PID/status (e.g. PPid, NSpid), `None` once the process is gone.
pub fn status_field(pid: u64, name: &str) -> Option<String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(|v| v.trim().to_string())
}

/// Whether PID runs (exists and is no zombie).
pub fn alive(pid: u64) -> bool {
    status_field(pid, "State").is_some_and(|s| !s.starts_with('Z') && !s.starts_with('X'))
}

/// The parent pid of PID, `None` once it is gone.
pub fn ppid(pid: u64) -> Option<u64> {
    status_field(pid, "PPid")?.parse().ok()
}

/// The link `/proc/PID/ns/<kind>` (e.g. `net:[4026531840]`).
#[track_caller]
pub fn ns_link(pid: u64, kind: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|e| panic!("readlink /proc/{pid}/ns/{kind}: {e}"))
}

/// Polls `probe` every 25 ms until it answers `Ok`; after `SETTLE` panics with its last `Err`.
#[track_caller]
pub fn settle<T>(mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + SETTLE;
    loop {
        match probe() {
            Ok(v) => return v,
            Err(why) => assert!(Instant::now() < deadline, "{SETTLE:?} later: {why}"),
        }
        thread::sleep(POLL);
    }
}

/// Waits until PID is gone or a zombie; panics naming `what` after [`SETTLE`].
#[track_caller]
pub fn wait_gone(pid: u64, what: &str) {
    settle(|| match alive(pid) {
        true => Err(format!("{what} (pid {pid}) still runs")),
        false => Ok(()),
    })
}

/// The pids of this pid namespace's /proc.
pub fn pids() -> Vec<u64> {
    fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Live children of `pid` (no zombies).
pub fn children(pid: u64) -> BTreeSet<u64> {
    pids()
        .into_iter()
        .filter(|p| ppid(*p) == Some(pid) && alive(*p))
        .collect()
}

/// Waits until the shim's children are exactly `want` (a failed container's processes gone).
#[track_caller]
pub fn wait_children(shim: u64, want: &[u64]) {
    let want: BTreeSet<u64> = want.iter().copied().collect();
    settle(|| match children(shim) {
        seen if seen == want => Ok(()),
        seen => Err(format!(
            "the shim (pid {shim}) has children {seen:?}, want {want:?}"
        )),
    })
}

/// One line of /proc/PID/mountinfo.
#[derive(Debug)]
pub struct MountEntry {
    pub point: String,
    /// Per-mount options (`rw`/`ro`, nosuid, ...).
    pub opts: Vec<String>,
    pub fstype: String,
}

/// The mount table of PID (its mount namespace's); panics when it cannot be read.
#[track_caller]
pub fn mountinfo(pid: u64) -> Vec<MountEntry> {
    let raw = fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/mountinfo: {e}"));
    raw.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            Some(MountEntry {
                point: f.get(4)?.replace("\\040", " "),
                opts: f.get(5)?.split(',').map(str::to_string).collect(),
                fstype: f.get(sep + 1)?.to_string(),
            })
        })
        .collect()
}

/// The topmost mount at `point`; panics when there is none.
#[track_caller]
pub fn mount_at<'a>(mounts: &'a [MountEntry], point: &str) -> &'a MountEntry {
    mounts
        .iter()
        .rev()
        .find(|m| m.point == point)
        .unwrap_or_else(|| panic!("no mount at {point} in the container: {mounts:#?}"))
}

/// Panics listing the mounts left under `dir` (e.g. a containerd's temp dir).
#[track_caller]
pub fn assert_no_mounts_under(dir: &Path) {
    assert_no_mounts_where(dir, "");
}

/// No mount of container `id` is left (its rootfs lives at `<state>/…/k8s.io/<id>/rootfs`).
#[track_caller]
pub fn assert_no_mounts_of(cd: &Containerd, id: &str) {
    assert_no_mounts_where(cd.dir(), id);
}

/// The mount points under `dir` whose path holds `part` ("" for all) must be gone.
#[track_caller]
fn assert_no_mounts_where(dir: &Path, part: &str) {
    let prefix = format!("{}/", dir.display());
    let left: Vec<String> = crate::containerd::mounts_under(dir)
        .into_iter()
        .filter(|m| m.contains(part))
        .collect();
    assert!(
        left.is_empty(),
        "mounts left under {prefix} (of {part:?}): {left:?}"
    );
}
