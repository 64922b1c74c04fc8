//! CPU and I/O scheduling of a container process: `process.ioPriority` (ioprio_set(2)),
//! `process.scheduler` (sched_setattr(2)) and `process.execCPUAffinity` (sched_setaffinity(2)).
//!
//! The `check_*` functions need no kernel and run when config.json is validated; the others
//! change the calling process, in the init and in exec'd processes, before exec.

use nix::errno::Errno;
use nix::sched::CpuSet;
use nix::unistd::Pid;
use oci_spec::runtime::{
    IOPriorityClass, LinuxIOPriority, LinuxSchedulerFlag, LinuxSchedulerPolicy, Scheduler,
};

use super::{errno_text, SetupError};

fn field_err(field: &str, value: impl std::fmt::Display, reason: impl Into<String>) -> SetupError {
    SetupError::Field {
        field: field.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

// <linux/ioprio.h>
const IOPRIO_CLASS_SHIFT: u32 = 13;
const IOPRIO_WHO_PROCESS: libc::c_int = 1;

/// Priority 0..7 within the class (runc's range).
pub fn check_io_priority(p: &LinuxIOPriority) -> Result<(), SetupError> {
    if !(0..=7).contains(&p.priority()) {
        return Err(field_err(
            "process.ioPriority.priority",
            p.priority(),
            "out of range: use 0 (highest) to 7 (lowest)",
        ));
    }
    Ok(())
}

/// ioprio_set(IOPRIO_WHO_PROCESS, 0, class << 13 | priority) for the calling process.
pub fn set_io_priority(p: &LinuxIOPriority) -> Result<(), SetupError> {
    check_io_priority(p)?;
    let class: i64 = match p.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    let value = (class << IOPRIO_CLASS_SHIFT) | p.priority();
    // SAFETY: ioprio_set takes integers only and changes only the calling process.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) };
    Errno::result(rc).map(drop).map_err(|e| {
        field_err(
            "process.ioPriority",
            format!("{} {}", p.class(), p.priority()),
            errno_text(e),
        )
    })
}

/// The kernel's `struct sched_attr` (SCHED_ATTR_SIZE_VER1, 56 bytes).
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    sched_policy: u32,
    sched_flags: u64,
    sched_nice: i32,
    sched_priority: u32,
    sched_runtime: u64,
    sched_deadline: u64,
    sched_period: u64,
    sched_util_min: u32,
    sched_util_max: u32,
}

fn policy_number(p: LinuxSchedulerPolicy) -> Option<u32> {
    Some(match p {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        // Reserved in Linux, never implemented.
        LinuxSchedulerPolicy::SchedIso => return None,
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    })
}

fn flag_bit(f: LinuxSchedulerFlag) -> u64 {
    match f {
        LinuxSchedulerFlag::SchedResetOnFork => 0x01,
        LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
        LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
        LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
        LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
        LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
        LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
    }
}

/// runc's checks: nice -20..19, priority only (and 1..99) for FIFO/RR, runtime/deadline/period
/// only for DEADLINE (which needs a runtime), SCHED_ISO refused.
pub fn check_scheduler(s: &Scheduler) -> Result<(), SetupError> {
    let policy = *s.policy();
    if policy_number(policy).is_none() {
        return Err(field_err(
            "process.scheduler.policy",
            policy,
            "not implemented by Linux; use SCHED_OTHER, SCHED_BATCH, SCHED_IDLE, SCHED_FIFO, SCHED_RR or SCHED_DEADLINE",
        ));
    }
    if let Some(nice) = *s.nice() {
        if !(-20..=19).contains(&nice) {
            return Err(field_err(
                "process.scheduler.nice",
                nice,
                "out of range: use -20 to 19",
            ));
        }
    }
    let realtime = matches!(
        policy,
        LinuxSchedulerPolicy::SchedFifo | LinuxSchedulerPolicy::SchedRr
    );
    match (*s.priority(), realtime) {
        (Some(p), true) if !(1..=99).contains(&p) => {
            return Err(field_err(
                "process.scheduler.priority",
                p,
                format!("out of range for {policy}: use 1 to 99"),
            ))
        }
        (Some(p), false) if p != 0 => {
            return Err(field_err(
                "process.scheduler.priority",
                p,
                format!("only SCHED_FIFO and SCHED_RR take a priority, not {policy}"),
            ))
        }
        _ => {}
    }
    let deadline = policy == LinuxSchedulerPolicy::SchedDeadline;
    for (name, v) in [
        ("runtime", *s.runtime()),
        ("deadline", *s.deadline()),
        ("period", *s.period()),
    ] {
        if let Some(v) = v.filter(|v| *v != 0) {
            if !deadline {
                return Err(field_err(
                    &format!("process.scheduler.{name}"),
                    v,
                    format!("only SCHED_DEADLINE takes it, not {policy}"),
                ));
            }
        }
    }
    if deadline && s.runtime().unwrap_or(0) == 0 {
        return Err(field_err(
            "process.scheduler.runtime",
            s.runtime().unwrap_or(0),
            "SCHED_DEADLINE needs a runtime (nanoseconds) greater than 0",
        ));
    }
    Ok(())
}

/// sched_setattr(0, attr, 0) for the calling process.
pub fn set_scheduler(s: &Scheduler) -> Result<(), SetupError> {
    check_scheduler(s)?;
    let policy = *s.policy();
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        sched_policy: policy_number(policy).unwrap_or(0),
        sched_flags: s.flags().iter().flatten().map(|f| flag_bit(*f)).sum(),
        sched_nice: s.nice().unwrap_or(0),
        sched_priority: s.priority().unwrap_or(0).max(0) as u32,
        sched_runtime: s.runtime().unwrap_or(0),
        sched_deadline: s.deadline().unwrap_or(0),
        sched_period: s.period().unwrap_or(0),
        ..Default::default()
    };
    // SAFETY: attr is a valid, initialised sched_attr whose size field matches its layout;
    // the kernel only reads it during the call.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    Errno::result(rc).map(drop).map_err(|e| {
        let why = match e {
            Errno::EPERM => format!("{}: the runtime lacks CAP_SYS_NICE", errno_text(e)),
            Errno::EBUSY => format!("{}: not enough SCHED_DEADLINE bandwidth", errno_text(e)),
            e => errno_text(e),
        };
        field_err("process.scheduler", format!("{s:?}"), why)
    })
}

/// Parses a CPU list like "0-3,7" (what the kernel prints in Cpus_allowed_list).
pub fn parse_cpu_list(field: &str, list: &str) -> Result<CpuSet, SetupError> {
    let bad = |why: String| field_err(field, format!("{list:?}"), why);
    let mut set = CpuSet::new();
    let cpu = |s: &str| -> Result<usize, SetupError> {
        let n: usize = s
            .trim()
            .parse()
            .map_err(|_| bad(format!("{s:?} is not a CPU number")))?;
        if n >= CpuSet::count() {
            return Err(bad(format!("CPU {n} is beyond {}", CpuSet::count() - 1)));
        }
        Ok(n)
    };
    if list.trim().is_empty() {
        return Err(bad("empty: use a list like \"0-3,7\"".into()));
    }
    for part in list.split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (cpu(a)?, cpu(b)?),
            None => {
                let n = cpu(part)?;
                (n, n)
            }
        };
        if lo > hi {
            return Err(bad(format!("range {part:?} goes backwards")));
        }
        for n in lo..=hi {
            set.set(n).map_err(|e| bad(errno_text(e)))?;
        }
    }
    Ok(set)
}

/// sched_setaffinity(0, cpus) for the calling process; `field` names the spec field.
pub fn set_cpu_affinity(field: &str, list: &str) -> Result<(), SetupError> {
    let set = parse_cpu_list(field, list)?;
    nix::sched::sched_setaffinity(Pid::from_raw(0), &set).map_err(|e| {
        let why = match e {
            Errno::EINVAL => format!(
                "{}: none of these CPUs is online or allowed by the cgroup",
                errno_text(e)
            ),
            e => errno_text(e),
        };
        field_err(field, format!("{list:?}"), why)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(json: &str) -> Scheduler {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn sched_attr_is_the_kernels_size() {
        assert_eq!(std::mem::size_of::<SchedAttr>(), 56);
    }

    #[test]
    fn io_priority_range() {
        for p in 0..=7 {
            let io: LinuxIOPriority =
                serde_json::from_str(&format!(r#"{{"class":"IOPRIO_CLASS_BE","priority":{p}}}"#))
                    .unwrap();
            check_io_priority(&io).unwrap();
        }
        for p in [-1, 8] {
            let io: LinuxIOPriority =
                serde_json::from_str(&format!(r#"{{"class":"IOPRIO_CLASS_RT","priority":{p}}}"#))
                    .unwrap();
            let err = check_io_priority(&io).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("process.ioPriority.priority {p}: out of range")),
                "{err}"
            );
        }
    }

    #[test]
    fn scheduler_combinations() {
        for ok in [
            r#"{"policy":"SCHED_OTHER","nice":5}"#,
            r#"{"policy":"SCHED_BATCH"}"#,
            r#"{"policy":"SCHED_FIFO","priority":10}"#,
            r#"{"policy":"SCHED_RR","priority":99,"flags":["SCHED_RESET_ON_FORK"]}"#,
            r#"{"policy":"SCHED_DEADLINE","runtime":1000000,"deadline":2000000,"period":2000000}"#,
        ] {
            check_scheduler(&sched(ok)).unwrap();
        }
        for (bad, want) in [
            (
                r#"{"policy":"SCHED_ISO"}"#,
                "process.scheduler.policy SCHED_ISO",
            ),
            (
                r#"{"policy":"SCHED_OTHER","nice":20}"#,
                "process.scheduler.nice 20",
            ),
            (
                r#"{"policy":"SCHED_OTHER","priority":5}"#,
                "process.scheduler.priority 5",
            ),
            (
                r#"{"policy":"SCHED_FIFO","priority":0}"#,
                "process.scheduler.priority 0",
            ),
            (
                r#"{"policy":"SCHED_RR","priority":100}"#,
                "process.scheduler.priority 100",
            ),
            (
                r#"{"policy":"SCHED_BATCH","runtime":5}"#,
                "process.scheduler.runtime 5",
            ),
            (
                r#"{"policy":"SCHED_DEADLINE","period":5}"#,
                "process.scheduler.runtime 0",
            ),
        ] {
            let err = check_scheduler(&sched(bad)).unwrap_err().to_string();
            assert!(err.starts_with(want), "{bad}: {err}");
        }
    }

    #[test]
    fn cpu_lists() {
        let set = parse_cpu_list("f", "0-3,7").unwrap();
        for n in 0..10 {
            assert_eq!(set.is_set(n).unwrap(), n <= 3 || n == 7, "cpu {n}");
        }
        assert!(parse_cpu_list("f", " 1 ").unwrap().is_set(1).unwrap());
        for bad in ["", "a", "3-1", "0,,1", "-1", "0-", "99999"] {
            let err = parse_cpu_list("process.execCPUAffinity.final", bad)
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("process.execCPUAffinity.final {bad:?}: ")),
                "{bad:?}: {err}"
            );
        }
    }
}
