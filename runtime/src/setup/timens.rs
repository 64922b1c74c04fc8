//! `linux.timeOffsets`: the offsets of CLOCK_MONOTONIC and CLOCK_BOOTTIME in the container's
//! new time namespace.
//!
//! The kernel takes them through /proc/self/timens_offsets only after unshare(CLONE_NEWTIME)
//! and before any process has entered the namespace: stage 1 writes them between its unshare
//! and the fork of stage 2 (the first process inside).

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::AsFd;

use nix::fcntl::{self, OFlag};
use nix::sys::stat::Mode;
use oci_spec::runtime::LinuxTimeOffset;

use super::{errno_text, SetupError};
use crate::namespaces::{Kind, Namespaces};
use crate::rootfs::safe_path::open_procfs;

fn field_err(field: &str, value: impl Into<String>, reason: impl Into<String>) -> SetupError {
    SetupError::Field {
        field: field.to_string(),
        value: value.into(),
        reason: reason.into(),
    }
}

/// Clock names the kernel takes; nanosecs below one second; a new time namespace; a kernel
/// that has time namespaces.
pub fn check_time_offsets(
    offsets: &HashMap<String, LinuxTimeOffset>,
    ns: &Namespaces,
) -> Result<(), SetupError> {
    if offsets.is_empty() {
        return Ok(());
    }
    if !ns.is_new(Kind::Time) {
        return Err(SetupError::Needs {
            field: "linux.timeOffsets".into(),
            reason: "needs a new time namespace: add {\"type\": \"time\"} to linux.namespaces"
                .into(),
        });
    }
    if !std::path::Path::new("/proc/self/ns/time").exists() {
        return Err(SetupError::Needs {
            field: "linux.timeOffsets".into(),
            reason: "this kernel has no time namespaces (CONFIG_TIME_NS)".into(),
        });
    }
    for (clock, off) in offsets {
        if clock != "monotonic" && clock != "boottime" {
            return Err(field_err(
                "linux.timeOffsets",
                format!("{clock:?}"),
                "unknown clock: use \"monotonic\" or \"boottime\"",
            ));
        }
        if let Some(ns) = off.nanosecs().filter(|n| *n >= 1_000_000_000) {
            return Err(field_err(
                &format!("linux.timeOffsets[{clock:?}].nanosecs"),
                ns.to_string(),
                "out of range: use 0 to 999999999",
            ));
        }
    }
    Ok(())
}

/// Writes the offsets; call after unshare(CLONE_NEWTIME), before the first fork.
pub fn write_time_offsets(offsets: &HashMap<String, LinuxTimeOffset>) -> Result<(), SetupError> {
    if offsets.is_empty() {
        return Ok(());
    }
    let mut text = String::new();
    let mut clocks: Vec<&String> = offsets.keys().collect();
    clocks.sort();
    for clock in clocks {
        let off = &offsets[clock];
        text.push_str(&format!(
            "{clock} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    let fail =
        |reason: String| field_err("linux.timeOffsets", text.trim().replace('\n', ", "), reason);
    // Still the host's /proc here (stage 1, before pivot_root); checked to be procfs anyway.
    let procfs = open_procfs().map_err(|e| fail(e.to_string()))?;
    let fd = fcntl::openat(
        procfs.as_fd(),
        "self/timens_offsets",
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| fail(format!("open /proc/self/timens_offsets: {}", errno_text(e))))?;
    // One write: the kernel parses every line of it or none.
    std::fs::File::from(fd)
        .write_all(text.as_bytes())
        .map_err(|e| fail(format!("the kernel refused them: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(json: &str) -> HashMap<String, LinuxTimeOffset> {
        serde_json::from_str(json).unwrap()
    }

    use crate::setup::testutil::namespaces as ns;

    #[test]
    fn offsets_are_checked() {
        let time = ns(r#"[{"type":"mount"},{"type":"time"}]"#);
        let good = offsets(r#"{"monotonic":{"secs":86400},"boottime":{"secs":1,"nanosecs":5}}"#);
        check_time_offsets(&good, &time).unwrap();
        let err = check_time_offsets(&good, &ns(r#"[{"type":"mount"}]"#))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("linux.timeOffsets") && err.contains("new time namespace"),
            "{err}"
        );
        let err = check_time_offsets(&offsets(r#"{"realtime":{"secs":1}}"#), &time)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(r#"linux.timeOffsets "realtime": unknown clock"#),
            "{err}"
        );
        let err = check_time_offsets(&offsets(r#"{"boottime":{"nanosecs":1000000000}}"#), &time)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(r#"linux.timeOffsets["boottime"].nanosecs 1000000000: out of range"#),
            "{err}"
        );
    }
}
