//! POSIX resource limits (`process.rlimits`).

use nix::errno::Errno;
use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

use super::{errno_text, SetupError};
use crate::Pid;

/// Parses a limit name the way the spec writes it ("RLIMIT_NOFILE").
pub fn parse_rlimit_type(name: &str) -> Result<PosixRlimitType, SetupError> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).map_err(|_| {
        SetupError::UnknownRlimit {
            name: name.to_string(),
        }
    })
}

/// Names the first unknown `type` of a raw `process.rlimits` (`field` is the process object's
/// name in messages), for a config the typed spec could not read.
pub fn check_rlimit_names(
    process: Option<&serde_json::Value>,
    field: &str,
) -> Result<(), SetupError> {
    let list = process
        .and_then(|p| p.get("rlimits"))
        .and_then(|l| l.as_array());
    for (i, r) in list.into_iter().flatten().enumerate() {
        let typ = r.get("type").unwrap_or(&serde_json::Value::Null);
        if typ.as_str().is_some_and(|n| parse_rlimit_type(n).is_ok()) {
            continue;
        }
        return Err(SetupError::Field {
            field: format!("{field}.rlimits[{i}].type"),
            value: typ.to_string(),
            reason: "unknown rlimit type: use a name like RLIMIT_NOFILE (getrlimit(2))".into(),
        });
    }
    Ok(())
}

/// The spec's (and the kernel's) name of a limit: "RLIMIT_NOFILE".
pub fn rlimit_name(typ: PosixRlimitType) -> String {
    typ.to_string()
}

fn resource(typ: PosixRlimitType) -> libc::c_int {
    use PosixRlimitType::*;
    // The libc constants' type differs between glibc and musl; the values do not.
    (match typ {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }) as libc::c_int
}

/// Applies every limit to the calling process. Call it before the uid change and the capability
/// drop: raising a hard limit needs `CAP_SYS_RESOURCE`.
pub fn apply_rlimits(rlimits: &[PosixRlimit]) -> Result<(), SetupError> {
    apply(None, rlimits)
}

/// Applies every limit to process `pid` with prlimit(2): the parent uses this on the init, since
/// the init can no longer raise limits once it is in a user namespace (runc does the same).
pub fn apply_rlimits_to(pid: Pid, rlimits: &[PosixRlimit]) -> Result<(), SetupError> {
    apply(Some(pid), rlimits)
}

fn apply(pid: Option<Pid>, rlimits: &[PosixRlimit]) -> Result<(), SetupError> {
    for rl in rlimits {
        let err = |reason: String| SetupError::Rlimit {
            name: rlimit_name(rl.typ()),
            soft: rl.soft(),
            hard: rl.hard(),
            reason,
        };
        if rl.soft() > rl.hard() {
            return Err(err("the soft limit is above the hard limit".into()));
        }
        let new = libc::rlimit {
            rlim_cur: rl.soft() as libc::rlim_t,
            rlim_max: rl.hard() as libc::rlim_t,
        };
        // 0 is "the calling process" for prlimit, not a process group: no signal is involved.
        let raw_pid = pid.map_or(0, Pid::as_raw);
        // SAFETY: `new` is a valid rlimit that outlives the call; the old-limit pointer is null,
        // which prlimit accepts as "do not report".
        let ret =
            unsafe { libc::prlimit(raw_pid, resource(rl.typ()) as _, &new, std::ptr::null_mut()) };
        Errno::result(ret).map_err(|e| {
            err(match e {
                Errno::EPERM => format!(
                    "{}: raising a hard limit needs CAP_SYS_RESOURCE, which the runtime lacks here; \
                     lower the hard limit",
                    errno_text(e)
                ),
                _ => errno_text(e),
            })
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::setup::testutil::*;
    use oci_spec::runtime::PosixRlimitBuilder;

    #[test]
    fn rlimit_names_map_both_ways() {
        assert_eq!(
            parse_rlimit_type("RLIMIT_NOFILE").unwrap(),
            PosixRlimitType::RlimitNofile
        );
        assert_eq!(rlimit_name(PosixRlimitType::RlimitRttime), "RLIMIT_RTTIME");
        assert_eq!(
            resource(PosixRlimitType::RlimitNofile),
            libc::RLIMIT_NOFILE as libc::c_int
        );
        assert_eq!(
            resource(PosixRlimitType::RlimitRttime),
            libc::RLIMIT_RTTIME as libc::c_int
        );
        let err = parse_rlimit_type("RLIMIT_FOO").unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown rlimit type \"RLIMIT_FOO\" in process.rlimits: use a name like RLIMIT_NOFILE"
        );
    }

    #[test]
    fn unknown_type_in_raw_json_is_named_with_its_index() {
        let raw = serde_json::json!({"rlimits": [
            {"type": "RLIMIT_NOFILE", "hard": 1, "soft": 1},
            {"type": "RLIMIT_NOPE", "hard": 1, "soft": 1}]});
        let e = check_rlimit_names(Some(&raw), "process")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(r#"process.rlimits[1].type "RLIMIT_NOPE": unknown rlimit type"#),
            "{e}"
        );
        let ok = serde_json::json!({"rlimits": [{"type": "RLIMIT_CORE", "hard": 0, "soft": 0}]});
        check_rlimit_names(Some(&ok), "process").unwrap();
    }

    #[test]
    fn soft_above_hard_is_refused_before_any_change() {
        let rl = PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .soft(10u64)
            .hard(5u64)
            .build()
            .unwrap();
        let err = apply_rlimits(&[rl]).unwrap_err().to_string();
        assert!(err.contains("RLIMIT_NOFILE (soft 10, hard 5)"), "{err}");
    }

    #[test]
    fn nofile_child() {
        if !in_child() {
            assert_child_ok(&run_child(module_path!(), "nofile_child"));
            return;
        }
        let rl = |typ, soft: u64, hard: u64| {
            PosixRlimitBuilder::default()
                .typ(typ)
                .soft(soft)
                .hard(hard)
                .build()
                .unwrap()
        };
        apply_rlimits(&[
            rl(PosixRlimitType::RlimitNofile, 1024, 2048),
            rl(PosixRlimitType::RlimitCore, 0, 4096),
        ])
        .unwrap();
        use nix::sys::resource::{getrlimit, Resource};
        assert_eq!(getrlimit(Resource::RLIMIT_NOFILE).unwrap(), (1024, 2048));
        assert_eq!(getrlimit(Resource::RLIMIT_CORE).unwrap(), (0, 4096));

        // Raising a hard limit again needs CAP_SYS_RESOURCE: drop it from the effective set.
        let mut eff = caps::read(None, caps::CapSet::Effective).unwrap();
        eff.remove(&caps::Capability::CAP_SYS_RESOURCE);
        caps::set(None, caps::CapSet::Effective, &eff).unwrap();
        let err = apply_rlimits(&[rl(PosixRlimitType::RlimitNofile, 1024, 4096)])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("RLIMIT_NOFILE (soft 1024, hard 4096)")
                && err.contains("CAP_SYS_RESOURCE"),
            "{err}"
        );
        assert_eq!(getrlimit(Resource::RLIMIT_NOFILE).unwrap(), (1024, 2048));
    }

    #[test]
    fn prlimit_on_another_process() {
        let mut sleeper = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .unwrap();
        let pid = Pid::new(sleeper.id() as i32).unwrap();
        let rl = PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .soft(100u64)
            .hard(200u64)
            .build()
            .unwrap();
        let result = apply_rlimits_to(pid, &[rl]);
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
        pid.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
        sleeper.wait().unwrap();
        result.unwrap();
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap();
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(&fields[3..5], ["100", "200"], "{line}");
    }
}
