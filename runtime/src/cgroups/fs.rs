//! File helpers shared by both backends: every error names the file and the value.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{CgroupError, FreezerState};
use crate::utils::pid::PidError;
use crate::Pid;

/// How long freeze, thaw and kill_all wait for the kernel before giving up.
pub(super) const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) fn io_err(op: &'static str, path: &Path, source: std::io::Error) -> CgroupError {
    CgroupError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

pub(super) fn read(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|source| io_err("read", path, source))
}

pub(super) fn read_trimmed(path: &Path) -> Result<String, CgroupError> {
    read(path).map(|s| s.trim().to_string())
}

/// One write(2) of `value` to an existing file: cgroupfs takes each write as one command.
pub(super) fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|source| CgroupError::Write {
            path: path.to_path_buf(),
            value: value.to_string(),
            source,
        })
}

/// A cgroup directory and the OCI field (e.g. "linux.resources.memory") its files carry out.
#[derive(Clone, Copy)]
pub(super) struct Knob<'a> {
    pub dir: &'a Path,
    pub field: &'static str,
}

impl Knob<'_> {
    /// The field name with `sub` appended: "linux.resources.memory.limit".
    pub fn name(&self, sub: &str) -> String {
        match sub {
            "" => self.field.to_string(),
            s => format!("{}.{s}", self.field),
        }
    }

    /// Writes `value` to `file`; a missing file (the kernel or controller lacks the knob) is an
    /// error naming the field.
    pub fn set(
        &self,
        file: &str,
        sub: &str,
        value: impl std::fmt::Display,
    ) -> Result<(), CgroupError> {
        let path = self.dir.join(file);
        if !path.exists() {
            let why = format!("{} does not exist on this host", path.display());
            return Err(super::unsupported(self.name(sub), why));
        }
        write(&path, &value.to_string())
    }

    pub fn set_opt(
        &self,
        file: &str,
        sub: &str,
        v: Option<impl std::fmt::Display>,
    ) -> Result<(), CgroupError> {
        v.map_or(Ok(()), |v| self.set(file, sub, v))
    }

    pub fn read_u64(&self, file: &str) -> Result<u64, CgroupError> {
        let path = self.dir.join(file);
        let s = read_trimmed(&path)?;
        s.parse().map_err(|_| CgroupError::Parse {
            path,
            value: s,
            reason: "expected a number".into(),
        })
    }

    /// checkBeforeUpdate: refuse a memory limit below the current usage in `usage_file`.
    pub fn check_usage(&self, usage_file: &str, limit: i64) -> Result<(), CgroupError> {
        let usage = self.read_u64(usage_file)?;
        if limit > 0 && usage > limit as u64 {
            let why = format!("below the current usage {usage} (checkBeforeUpdate)");
            return Err(super::invalid(self.name("limit"), limit, why));
        }
        Ok(())
    }
}

pub(super) fn mkdir(dir: &Path) -> Result<(), CgroupError> {
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() != ErrorKind::AlreadyExists => Err(io_err("mkdir", dir, e)),
        _ => Ok(()),
    }
}

/// `dir` and every cgroup below it, parents before children.
fn tree(dir: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let entries = match std::fs::read_dir(&out[i]) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                i += 1;
                continue;
            }
            Err(e) => return Err(io_err("read_dir", &out[i], e)),
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                out.push(entry.path());
            }
        }
        i += 1;
    }
    Ok(out)
}

/// Pids in `cgroup.procs` of `dir` and all its descendants; a missing dir has none.
pub(super) fn procs_recursive(dir: &Path) -> Result<Vec<Pid>, CgroupError> {
    let mut pids = Vec::new();
    for d in tree(dir)? {
        let path = d.join("cgroup.procs");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            // a child cgroup removed while we walk
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err("read", &path, e)),
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let pid = line
                .trim()
                .parse::<i32>()
                .ok()
                .and_then(Pid::new)
                .ok_or_else(|| CgroupError::Parse {
                    path: path.clone(),
                    value: line.into(),
                    reason: "expected one positive pid per line".into(),
                })?;
            pids.push(pid);
        }
    }
    pids.sort();
    pids.dedup();
    Ok(pids)
}

/// rmdir `dir` and its descendants, deepest first. EBUSY (tasks still leaving) is retried with
/// backoff for about a second; a missing directory is fine.
pub(super) fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    for d in tree(dir)?.iter().rev() {
        let mut delay = Duration::from_millis(10);
        let start = Instant::now();
        loop {
            match std::fs::remove_dir(d) {
                Ok(()) => break,
                Err(e) if e.kind() == ErrorKind::NotFound => break,
                Err(e)
                    if e.raw_os_error() == Some(libc::EBUSY)
                        && start.elapsed() < Duration::from_secs(1) =>
                {
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_millis(200));
                }
                Err(e) => return Err(io_err("rmdir", d, e)),
            }
        }
    }
    Ok(())
}

/// Polls `check` (which returns whether the state is reached and what it saw) until it holds
/// or [`SETTLE_TIMEOUT`] passes.
pub(super) fn wait_until(
    path: &Path,
    what: &'static str,
    mut check: impl FnMut() -> Result<(bool, String), CgroupError>,
) -> Result<(), CgroupError> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(1);
    loop {
        let (done, last) = check()?;
        if done {
            return Ok(());
        }
        if start.elapsed() >= SETTLE_TIMEOUT {
            return Err(CgroupError::Timeout {
                path: path.to_path_buf(),
                what,
                last,
                timeout_ms: SETTLE_TIMEOUT.as_millis(),
            });
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(50));
    }
}

/// SIGKILLs each pid, never our own (the caller must not be inside the cgroup it kills).
pub(super) fn kill_pids(dir: &Path, pids: &[Pid]) -> Result<(), CgroupError> {
    let me = Pid::this();
    for &pid in pids.iter().filter(|&&p| p != me) {
        match pid.signal(Signal::SIGKILL) {
            Ok(())
            | Err(PidError::Signal {
                source: nix::errno::Errno::ESRCH,
                ..
            }) => {}
            Err(source) => {
                return Err(CgroupError::Kill {
                    path: dir.to_path_buf(),
                    source,
                })
            }
        }
    }
    Ok(())
}

/// Waits until `list` is empty, SIGKILLing whatever it still shows (a process that forked
/// between the first listing and its kill).
pub(super) fn wait_empty(
    dir: &Path,
    list: impl Fn() -> Result<Vec<Pid>, CgroupError>,
) -> Result<(), CgroupError> {
    let mut last = Vec::new();
    let res = wait_until(dir, "kill_all", || {
        last = list()?;
        kill_pids(dir, &last)?;
        Ok((last.is_empty(), format!("{} processes", last.len())))
    });
    match res {
        Err(CgroupError::Timeout { .. }) => Err(CgroupError::StillPopulated {
            path: dir.to_path_buf(),
            pids: last.iter().map(|p| p.as_raw()).collect(),
        }),
        other => other,
    }
}

pub(super) fn parse_freezer_state(path: &Path, s: &str) -> Result<FreezerState, CgroupError> {
    match s.trim() {
        "THAWED" => Ok(FreezerState::Thawed),
        "FREEZING" => Ok(FreezerState::Freezing),
        "FROZEN" => Ok(FreezerState::Frozen),
        other => Err(CgroupError::Parse {
            path: path.to_path_buf(),
            value: other.into(),
            reason: "expected THAWED, FREEZING or FROZEN".into(),
        }),
    }
}

/// The value of `key` in a flat-keyed file such as cgroup.events ("populated 1\nfrozen 0\n").
pub(super) fn flat_key(s: &str, key: &str) -> Option<String> {
    s.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroups_freezer_state_parse() {
        let p = Path::new("/x/freezer.state");
        assert_eq!(
            parse_freezer_state(p, "THAWED\n").unwrap(),
            FreezerState::Thawed
        );
        assert_eq!(
            parse_freezer_state(p, "FREEZING").unwrap(),
            FreezerState::Freezing
        );
        assert_eq!(
            parse_freezer_state(p, "FROZEN\n").unwrap(),
            FreezerState::Frozen
        );
        let e = parse_freezer_state(p, "frozen").unwrap_err().to_string();
        assert!(
            e.contains("/x/freezer.state") && e.contains("frozen"),
            "{e}"
        );
    }

    #[test]
    fn cgroups_events_parse() {
        let ev = "populated 1\nfrozen 0\n";
        assert_eq!(flat_key(ev, "frozen").as_deref(), Some("0"));
        assert_eq!(flat_key(ev, "populated").as_deref(), Some("1"));
        assert_eq!(flat_key("frozen 1", "frozen").as_deref(), Some("1"));
        assert_eq!(flat_key(ev, "froze"), None);
    }

    #[test]
    fn cgroups_procs_tree_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("c");
        std::fs::create_dir_all(top.join("a/b")).unwrap();
        std::fs::write(top.join("cgroup.procs"), "12\n7\n").unwrap();
        std::fs::write(top.join("a/b/cgroup.procs"), "7\n99\n").unwrap();
        let pids: Vec<i32> = procs_recursive(&top)
            .unwrap()
            .iter()
            .map(|p| p.as_raw())
            .collect();
        assert_eq!(pids, vec![7, 12, 99]);
        std::fs::write(top.join("a/cgroup.procs"), "0\n").unwrap();
        assert!(procs_recursive(&top).is_err());
        assert!(procs_recursive(&dir.path().join("missing"))
            .unwrap()
            .is_empty());
        // plain directories (unlike cgroupfs) keep files, so rmdir fails and names the dir
        let e = remove_tree(&top).unwrap_err().to_string();
        assert!(e.contains("rmdir") && e.contains("/c/a/b"), "{e}");
        for f in ["cgroup.procs", "a/cgroup.procs", "a/b/cgroup.procs"] {
            std::fs::remove_file(top.join(f)).unwrap();
        }
        remove_tree(&top).unwrap();
        assert!(!top.exists());
        remove_tree(&top).unwrap();
    }
}
