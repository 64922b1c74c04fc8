//! The OOM killer's score adjustment (`process.oomScoreAdj`).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use nix::errno::Errno;
use nix::sys::statfs::{fstatfs, PROC_SUPER_MAGIC};

use super::{errno_text, SetupError};
use crate::Pid;

/// Writes `score` to /proc/<pid>/oom_score_adj (`None`: the calling process).
///
/// Lowering the score below the lowest value a privileged writer set for this process (usually
/// its current value) needs CAP_SYS_RESOURCE; without it the kernel answers EACCES and the error
/// says so. The file must be on procfs: a fake /proc (a bind mount or a plain directory in the
/// rootfs) would otherwise take the write silently (CVE-2019-16884 class).
pub fn set_oom_score_adj(pid: Option<Pid>, score: i32) -> Result<(), SetupError> {
    let err = |reason: String| SetupError::OomScoreAdj { score, reason };
    if !(-1000..=1000).contains(&score) {
        return Err(err("the score must be between -1000 and 1000".into()));
    }
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/oom_score_adj"),
        None => "/proc/self/oom_score_adj".to_string(),
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| err(format!("open {path}: {e}")))?;
    let fs = fstatfs(&file).map_err(|e| err(format!("statfs {path}: {}", errno_text(e))))?;
    if fs.filesystem_type() != PROC_SUPER_MAGIC {
        return Err(err(format!(
            "{path} is not on procfs: refusing to write (is /proc mounted in the container?)"
        )));
    }
    file.write_all(score.to_string().as_bytes()).map_err(|e| {
        let errno = Errno::from_raw(e.raw_os_error().unwrap_or(0));
        err(match errno {
            Errno::EACCES => format!(
                "write {path}: {}: lowering the OOM score adjustment needs CAP_SYS_RESOURCE, \
                 which the runtime lacks here; use a value no lower than the runtime's own",
                errno_text(errno)
            ),
            _ => format!("write {path}: {e}"),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::setup::testutil::*;

    #[test]
    fn out_of_range_names_value() {
        let err = set_oom_score_adj(None, 1001).unwrap_err().to_string();
        assert_eq!(
            err,
            "process.oomScoreAdj 1001: the score must be between -1000 and 1000"
        );
    }

    #[test]
    fn oom_score_adj_child() {
        if !in_child() {
            assert_child_ok(&run_child(module_path!(), "oom_score_adj_child"));
            return;
        }
        let read = || {
            std::fs::read_to_string("/proc/self/oom_score_adj")
                .unwrap()
                .trim()
                .to_string()
        };
        // The kernel keeps the score per process, not per thread.
        set_oom_score_adj(None, 500).unwrap();
        assert_eq!(read(), "500");

        let mut eff = caps::read(None, caps::CapSet::Effective).unwrap();
        eff.remove(&caps::Capability::CAP_SYS_RESOURCE);
        caps::set(None, caps::CapSet::Effective, &eff).unwrap();
        let err = set_oom_score_adj(None, -1000).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "process.oomScoreAdj -1000: write /proc/self/oom_score_adj: permission denied"
            ) && err.contains("CAP_SYS_RESOURCE"),
            "{err}"
        );
        assert_eq!(read(), "500");

        // Another process by pid.
        let mut sleeper = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .unwrap();
        let pid = Pid::new(sleeper.id() as i32).unwrap();
        let result = set_oom_score_adj(Some(pid), 700);
        let value = std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).unwrap();
        pid.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
        sleeper.wait().unwrap();
        result.unwrap();
        assert_eq!(value.trim(), "700");
    }
}
