//! OOM notification for a container's cgroup, as runc's `notify_linux.go` (v1) and
//! `notify_v2_linux.go` / containerd's cgroups v2 `EventChan` (v2) do it.
//!
//! - v1: an eventfd registered through `cgroup.event_control` with the fd of
//!   `memory.oom_control`; the kernel adds 1 for each OOM situation of the memcg (or of an
//!   ancestor whose limit is hit), and 1 more when the cgroup is removed.
//! - v2: inotify (IN_MODIFY) on `memory.events` and `cgroup.events`; the `oom_kill` counter of
//!   `memory.events` is compared with the last value seen.
//!
//! [`OomNotifier`] is a pollable fd (level-triggered readable while something is pending) and a
//! non-blocking [`OomNotifier::check`] that consumes what is pending. The kernel counts the kill
//! before it sends SIGKILL (mm/oom_kill.c: "Raise event before sending signal: task reaper must
//! see this"; v1 notifies before choosing a victim), so a `check()` made after a reaper saw the
//! victim's exit always includes that kill.

use std::ffi::CString;
use std::io::ErrorKind;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::eventfd::{EfdFlags, EventFd};

use super::fs::{self, io_err};
use super::{unsupported, CgroupConfig, CgroupError, Hierarchy, Manager, UNIFIED_KEY};

/// The field named when OOM notification cannot be set up.
const FIELD: &str = "oom notification";

/// Watches one cgroup for OOM kills. Poll [`AsFd::as_fd`] for readability, then call
/// [`OomNotifier::check`].
#[derive(Debug)]
pub struct OomNotifier {
    fd: OwnedFd,
    kind: Kind,
    /// No OOM can be reported any more: v1 the cgroup was removed; v2 it was removed or has no
    /// process left (what ends runc's watcher on each).
    closed: bool,
}

#[derive(Debug)]
enum Kind {
    V1 { dir: PathBuf },
    V2(V2Watch),
}

#[derive(Debug)]
struct V2Watch {
    dir: PathBuf,
    last_kills: u64,
    /// The inotify watch of cgroup.events.
    cgroup_wd: i32,
    /// cgroup.events said populated at the last look.
    was_populated: bool,
}

impl OomNotifier {
    /// Starts watching the cgroup of `manager`; OOM kills before this call are not reported.
    pub fn new(manager: &dyn Manager) -> Result<OomNotifier, CgroupError> {
        OomNotifier::from_config(&manager.config())
    }

    /// The same, from a saved [`CgroupConfig`].
    pub fn from_config(config: &CgroupConfig) -> Result<OomNotifier, CgroupError> {
        match config.hierarchy {
            Hierarchy::V1 => match config.dirs.get("memory") {
                Some(dir) => OomNotifier::v1(dir),
                None => Err(unsupported(FIELD, "the memory controller is not mounted")),
            },
            Hierarchy::V2 => match config.dirs.get(UNIFIED_KEY) {
                Some(dir) => OomNotifier::v2(dir),
                None => Err(unsupported(FIELD, "no cgroup v2 directory in the config")),
            },
        }
    }

    fn v1(dir: &Path) -> Result<OomNotifier, CgroupError> {
        let control = dir.join("memory.oom_control");
        let oom_control = std::fs::File::open(&control).map_err(|e| io_err("open", &control, e))?;
        let efd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(|e| io_err("eventfd", dir, e.into()))?;
        // "<eventfd> <fd of memory.oom_control>": the kernel keeps its own references, so
        // memory.oom_control may be closed afterwards; closing the eventfd unregisters.
        let line = format!("{} {}", efd.as_raw_fd(), oom_control.as_raw_fd());
        fs::write(&dir.join("cgroup.event_control"), &line)?;
        Ok(OomNotifier {
            fd: OwnedFd::from(efd),
            kind: Kind::V1 {
                dir: dir.to_path_buf(),
            },
            closed: false,
        })
    }

    fn v2(dir: &Path) -> Result<OomNotifier, CgroupError> {
        // SAFETY: inotify_init1 takes no pointers; a non-negative return is a new fd we own.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(io_err(
                "inotify_init1",
                dir,
                std::io::Error::last_os_error(),
            ));
        }
        // SAFETY: `raw` was just returned by inotify_init1 and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let events = dir.join("memory.events");
        if !events.exists() {
            let why = format!(
                "{} does not exist: the memory controller is not enabled for this cgroup",
                events.display()
            );
            return Err(unsupported(FIELD, why));
        }
        add_watch(&fd, &events)?;
        let cgroup_wd = add_watch(&fd, &dir.join("cgroup.events"))?;
        let was_populated = populated(&dir.join("cgroup.events"))?;
        let last_kills = oom_kills(&events)?;
        Ok(OomNotifier {
            fd,
            kind: Kind::V2(V2Watch {
                dir: dir.to_path_buf(),
                last_kills,
                cgroup_wd,
                was_populated,
            }),
            closed: false,
        })
    }

    /// Consumes pending notifications without blocking; returns how many OOM kills (v1: OOM
    /// events) happened since the last call. 0 when nothing is pending or once closed.
    pub fn check(&mut self) -> Result<u64, CgroupError> {
        if self.closed {
            return Ok(0);
        }
        match &mut self.kind {
            Kind::V1 { dir } => {
                let count = read_eventfd(&self.fd, dir)?;
                if count > 0 && !dir.join("cgroup.event_control").exists() {
                    // The kernel signals once more when the cgroup goes away (runc checks the
                    // same file to tell that from an OOM).
                    self.closed = true;
                    return Ok(count - 1);
                }
                Ok(count)
            }
            Kind::V2(w) => {
                let events_changed = drain(&self.fd, &w.dir, w.cgroup_wd)?;
                // populated first: once it reads 0, every kill is already counted.
                let (kills, populated) = match populated(&w.dir.join("cgroup.events"))
                    .and_then(|p| oom_kills(&w.dir.join("memory.events")).map(|k| (k, p)))
                {
                    Ok(v) => v,
                    Err(CgroupError::Io { source, .. }) if gone(&source) => {
                        self.closed = true;
                        return Ok(0);
                    }
                    Err(e) => return Err(e),
                };
                let new = kills.saturating_sub(w.last_kills);
                w.last_kills = kills;
                // Emptied since we last looked, not empty from the start (a process may join
                // later): what ends runc's v2 watcher.
                if !populated && (w.was_populated || events_changed) {
                    self.closed = true;
                }
                w.was_populated = populated;
                Ok(new)
            }
        }
    }

    /// True once no OOM can be reported any more (see the field's comment); a poll loop
    /// should stop then.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    pub fn hierarchy(&self) -> Hierarchy {
        match self.kind {
            Kind::V1 { .. } => Hierarchy::V1,
            Kind::V2(_) => Hierarchy::V2,
        }
    }
}

impl AsFd for OomNotifier {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for OomNotifier {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// ENOENT, or ENODEV that a file of a removed cgroup may give on read.
fn gone(e: &std::io::Error) -> bool {
    e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENODEV)
}

/// Watches `file` for IN_MODIFY; returns the watch descriptor.
fn add_watch(fd: &OwnedFd, file: &Path) -> Result<i32, CgroupError> {
    let c = CString::new(file.as_os_str().as_bytes()).map_err(|_| CgroupError::InvalidPath {
        path: file.display().to_string(),
        reason: "contains a NUL byte".into(),
    })?;
    // SAFETY: `fd` is a live inotify fd and `c` a NUL-terminated string that outlives the call.
    let wd = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), libc::IN_MODIFY) };
    if wd < 0 {
        return Err(io_err(
            "inotify_add_watch",
            file,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(wd)
}

/// The eventfd's counter (reset to 0), or 0 when nothing is pending.
fn read_eventfd(fd: &OwnedFd, dir: &Path) -> Result<u64, CgroupError> {
    let mut buf = [0u8; 8];
    match nix::unistd::read(fd, &mut buf) {
        Ok(8) => Ok(u64::from_ne_bytes(buf)),
        Ok(n) => Err(CgroupError::Parse {
            path: dir.join("cgroup.event_control"),
            value: format!("{n} bytes"),
            reason: "an eventfd read gives 8 bytes".into(),
        }),
        Err(Errno::EAGAIN) => Ok(0),
        Err(e) => Err(io_err("read eventfd of", dir, e.into())),
    }
}

/// Reads inotify events until none is left; returns whether one was IN_MODIFY of `watch` (the
/// files are read again, so what else they say does not matter).
fn drain(fd: &OwnedFd, dir: &Path, watch: i32) -> Result<bool, CgroupError> {
    // struct inotify_event: i32 wd, u32 mask, u32 cookie, u32 len, then len bytes of name
    const HEADER: usize = 16;
    let mut buf = [0u8; 4096];
    let mut seen = false;
    loop {
        let n = match nix::unistd::read(fd, &mut buf) {
            Ok(0) | Err(Errno::EAGAIN) => return Ok(seen),
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(io_err("read inotify events of", dir, e.into())),
        };
        let mut at = 0;
        while at + HEADER <= n {
            let word = |i: usize| {
                let b = [
                    buf[at + i],
                    buf[at + i + 1],
                    buf[at + i + 2],
                    buf[at + i + 3],
                ];
                u32::from_ne_bytes(b)
            };
            let (wd, mask, len) = (word(0) as i32, word(4), word(12) as usize);
            seen |= wd == watch && mask & libc::IN_MODIFY != 0;
            at += HEADER + len;
        }
    }
}

/// `populated` of a v2 `cgroup.events` file (a missing key counts as populated).
fn populated(events: &Path) -> Result<bool, CgroupError> {
    Ok(fs::flat_key(&fs::read(events)?, "populated").is_none_or(|v| v != "0"))
}

/// The `oom_kill` counter of a v2 `memory.events` file.
fn oom_kills(events: &Path) -> Result<u64, CgroupError> {
    let text = fs::read(events)?;
    let value = fs::flat_key(&text, "oom_kill");
    value
        .as_deref()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| CgroupError::Parse {
            path: events.to_path_buf(),
            value: value.unwrap_or_else(|| text.trim().replace('\n', " ")),
            reason: "expected an \"oom_kill <number>\" line (Linux >= 4.13)".into(),
        })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Write;
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};

    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use oci_spec::runtime::LinuxResources;

    use super::*;
    use crate::Pid;

    fn readable(n: &OomNotifier, ms: u16) -> bool {
        let mut fds = [PollFd::new(n.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::from(ms)).unwrap() == 1
    }

    #[test]
    fn cgroups_oom_notifier_setup_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let mut cfg = CgroupConfig {
            hierarchy: Hierarchy::V1,
            path: "/x".into(),
            dirs: BTreeMap::from([("pids".to_string(), tmp.path().join("pids"))]),
        };
        let e = OomNotifier::from_config(&cfg).unwrap_err();
        assert!(e.is_unsupported(), "{e}");
        assert!(e.to_string().contains("memory controller"), "{e}");
        // not a memcg: memory.oom_control is missing and named
        cfg.dirs.insert("memory".into(), tmp.path().to_path_buf());
        let e = OomNotifier::from_config(&cfg).unwrap_err().to_string();
        assert!(e.contains("memory.oom_control"), "{e}");
        cfg.hierarchy = Hierarchy::V2;
        cfg.dirs = BTreeMap::from([(UNIFIED_KEY.to_string(), tmp.path().to_path_buf())]);
        let e = OomNotifier::from_config(&cfg).unwrap_err().to_string();
        assert!(e.contains("memory.events does not exist"), "{e}");
    }

    #[test]
    fn cgroups_oom_counter_parse() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("memory.events");
        std::fs::write(
            &f,
            "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n",
        )
        .unwrap();
        assert_eq!(oom_kills(&f).unwrap(), 2);
        std::fs::write(&f, "low 0\nmax 1\noom 1\n").unwrap();
        let e = oom_kills(&f).unwrap_err().to_string();
        assert!(e.contains("oom_kill") && e.contains("memory.events"), "{e}");
    }

    fn unique() -> String {
        let nanos = std::time::UNIX_EPOCH
            .elapsed()
            .map_or(0, |d| d.subsec_nanos());
        format!("myrt-test-oom-{}-{nanos}", std::process::id())
    }

    /// Kills what is left and removes the cgroup, whatever happens.
    struct Guard(Box<dyn Manager>);

    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.kill_all();
            let _ = self.0.remove();
        }
    }

    /// A process that allocates past a 16 MiB limit (memory+swap too) is OOM-killed: the fd
    /// turns readable, check() counts it, even right after the reap without polling, and the
    /// notifier closes when the cgroup empties (v2) or goes away (v1).
    #[test]
    fn cgroups_kernel_oom_notifier() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping: the OOM notifier test needs root");
            return;
        }
        let name = unique();
        let g =
            Guard(super::super::new_manager(Some(&format!("/{name}")), "unused", false).unwrap());
        let mgr = g.0.as_ref();
        mgr.create().unwrap();
        let limit = 16 << 20;
        let r: LinuxResources = serde_json::from_str(&format!(
            r#"{{"memory":{{"limit":{limit},"swap":{limit}}}}}"#
        ))
        .unwrap();
        if let Err(e) = mgr.apply(&r) {
            // v1 without swap accounting has no memsw file: the limit alone is all there is
            assert!(e.is_unsupported(), "{e}");
            let r: LinuxResources =
                serde_json::from_str(&format!(r#"{{"memory":{{"limit":{limit}}}}}"#)).unwrap();
            mgr.apply(&r).unwrap();
        }

        let mut n = OomNotifier::new(mgr).unwrap();
        assert_eq!(n.hierarchy(), mgr.hierarchy());
        assert!(!readable(&n, 0), "nothing pending yet");
        assert_eq!(n.check().unwrap(), 0);
        assert!(!n.is_closed());

        // tail keeps the last lines of /dev/zero, one endless line: it grows until killed
        let mut child = Command::new("sh")
            .args(["-c", "read x; exec tail /dev/zero"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = Pid::new(child.id() as i32).unwrap();
        mgr.add_task(pid).unwrap();
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
        // What the shim relies on: the kill is counted by the time its victim is reaped, even
        // where the fd's wakeup comes later (v2: kernfs notifies from a work queue).
        let kills = n.check().unwrap();
        assert!(
            kills >= 1,
            "check() right after the OOM kill's reap gave {kills}"
        );
        assert_eq!(n.check().unwrap(), 0, "consumed");

        match mgr.hierarchy() {
            Hierarchy::V2 => {
                // the cgroup emptied: the notifier closes, as runc's v2 watcher ends
                let start = std::time::Instant::now();
                while !n.is_closed() && start.elapsed().as_secs() < 5 {
                    if readable(&n, 100) {
                        assert_eq!(n.check().unwrap(), 0, "no second kill");
                    }
                }
                assert!(
                    n.is_closed(),
                    "v2: closed once the cgroup has no process left"
                );
            }
            Hierarchy::V1 => {
                assert!(!readable(&n, 0), "nothing pending after check()");
                assert!(!n.is_closed());
                mgr.remove().unwrap();
                // the kernel signals the removal asynchronously (css offline)
                assert!(readable(&n, 5000), "v1: removal signals the eventfd");
                assert_eq!(n.check().unwrap(), 0, "a removal is not an OOM");
                assert!(n.is_closed());
            }
        }
        assert_eq!(n.check().unwrap(), 0);
    }
}
