//! Values of `linux.resources` checked for form before any cgroup file is written, so a bad
//! value fails `create` (or `update`) with the field and the value named, instead of the
//! kernel's bare EINVAL from a half-written cgroup.
//!
//! Only what no host could accept is refused here; what depends on the host (a CPU that is
//! not there, a missing controller) is left to the write and its error.

use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxResources};

use super::{invalid, CgroupError};

/// cpu.shares bounds of the kernel (MIN_SHARES, MAX_SHARES); 0 leaves the value unset.
const SHARES: std::ops::RangeInclusive<u64> = 2..=262_144;
/// cgroup v2 cpu.weight bounds (CGROUP_WEIGHT_MIN, CGROUP_WEIGHT_MAX).
const WEIGHT: std::ops::RangeInclusive<u64> = 1..=10_000;

/// Checks every field of `r` that has a host-independent valid range or syntax.
pub fn check_resources(r: &LinuxResources) -> Result<(), CgroupError> {
    if let Some(m) = r.memory() {
        check_memory(m)?;
    }
    if let Some(c) = r.cpu() {
        check_cpu(c)?;
    }
    if let Some(w) = r.unified().as_ref().and_then(|u| u.get("cpu.weight")) {
        let ok = w.trim().parse::<u64>().is_ok_and(|v| WEIGHT.contains(&v));
        if !ok {
            return Err(invalid(
                r#"linux.resources.unified["cpu.weight"]"#,
                w,
                "use 1 to 10000 (100 is the default)",
            ));
        }
    }
    Ok(())
}

/// Byte counts: -1 means "no limit" (runc writes it as is on v1, as "max" on v2), below that
/// nothing is valid.
fn check_memory(m: &LinuxMemory) -> Result<(), CgroupError> {
    let fields = [
        ("limit", m.limit()),
        ("reservation", m.reservation()),
        ("swap", m.swap()),
        ("kernel", m.kernel()),
        ("kernelTCP", m.kernel_tcp()),
    ];
    for (name, value) in fields {
        if let Some(v) = value.filter(|&v| v < -1) {
            return Err(invalid(
                format!("linux.resources.memory.{name}"),
                v,
                "use a number of bytes, or -1 for no limit",
            ));
        }
    }
    if let Some(v) = m.swappiness().filter(|&v| v > 100) {
        return Err(invalid(
            "linux.resources.memory.swappiness",
            v,
            "use 0 to 100",
        ));
    }
    Ok(())
}

fn check_cpu(c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(s) = c.shares().filter(|&s| s != 0 && !SHARES.contains(&s)) {
        return Err(invalid(
            "linux.resources.cpu.shares",
            s,
            "use 2 to 262144 (1024 is the default weight)",
        ));
    }
    for (name, list) in [("cpus", c.cpus()), ("mems", c.mems())] {
        if let Some(list) = list.as_deref().filter(|l| !l.trim().is_empty()) {
            check_list(list)
                .map_err(|why| invalid(format!("linux.resources.cpu.{name}"), list, why))?;
        }
    }
    Ok(())
}

/// The kernel's list syntax for cpuset.cpus and cpuset.mems (bitmap_parselist): comma-separated
/// numbers or ranges "a-b", a range optionally strided as "a-b:used/group".
fn check_list(list: &str) -> Result<(), String> {
    let num = |s: &str| -> Result<u64, String> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{s:?} is not a number"));
        }
        s.parse().map_err(|_| format!("{s:?} is too large"))
    };
    for part in list.trim().split(',') {
        let (range, stride) = match part.split_once(':') {
            Some((r, s)) => (r, Some(s)),
            None => (part, None),
        };
        let (lo, hi) = match range.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None if stride.is_some() => return Err(format!("{part:?}: a stride needs a range")),
            None => (num(range)?, 0),
        };
        if range.contains('-') && lo > hi {
            return Err(format!("range {range:?} goes backwards"));
        }
        if let Some(stride) = stride {
            let (used, group) = stride
                .split_once('/')
                .ok_or_else(|| format!("{part:?}: write a stride as used/group"))?;
            let (used, group) = (num(used)?, num(group)?);
            if used == 0 || group == 0 || used > group {
                return Err(format!("{part:?}: stride {used}/{group} is not valid"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    fn err(json: &str) -> String {
        check_resources(&res(json)).unwrap_err().to_string()
    }

    #[test]
    fn memory_below_minus_one_is_refused_naming_field_and_value() {
        let e = err(r#"{"memory":{"limit":-5}}"#);
        assert_eq!(
            e,
            r#"linux.resources.memory.limit: invalid value "-5": use a number of bytes, or -1 for no limit"#
        );
        let e = err(r#"{"memory":{"limit":1048576,"swap":-2}}"#);
        assert!(
            e.starts_with(r#"linux.resources.memory.swap: invalid value "-2""#),
            "{e}"
        );
        let e = err(r#"{"memory":{"swappiness":101}}"#);
        assert!(e.starts_with("linux.resources.memory.swappiness"), "{e}");
        // -1 is "no limit" (runc: "max" on v2), 0 leaves it unset
        check_resources(&res(r#"{"memory":{"limit":-1,"swap":-1,"reservation":0}}"#)).unwrap();
    }

    #[test]
    fn shares_outside_the_kernel_range_are_refused() {
        for bad in ["1", "262145", "99999999"] {
            let e = err(&format!(r#"{{"cpu":{{"shares":{bad}}}}}"#));
            assert!(
                e.starts_with(&format!(
                    r#"linux.resources.cpu.shares: invalid value "{bad}": use 2 to 262144"#
                )),
                "{e}"
            );
        }
        for ok in ["0", "2", "1024", "262144"] {
            check_resources(&res(&format!(r#"{{"cpu":{{"shares":{ok}}}}}"#))).unwrap();
        }
    }

    #[test]
    fn cpuset_lists_are_checked_for_the_kernels_syntax() {
        for ok in ["0", "0-3", "0,2,4-7", "0-7:2/4", " 1 ", ""] {
            check_resources(&res(&format!(r#"{{"cpu":{{"cpus":"{ok}","mems":"0"}}}}"#)))
                .unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
        for (bad, why) in [
            ("0-abc", r#""abc" is not a number"#),
            ("5-2", r#"range "5-2" goes backwards"#),
            ("1,,2", r#""" is not a number"#),
            ("-1", r#""" is not a number"#),
            ("0-3:5/4", "stride 5/4"),
        ] {
            let e = err(&format!(r#"{{"cpu":{{"cpus":"{bad}"}}}}"#));
            assert!(
                e.starts_with(&format!(
                    r#"linux.resources.cpu.cpus: invalid value "{bad}": "#
                )) && e.contains(why),
                "{bad}: {e}"
            );
        }
        let e = err(r#"{"cpu":{"mems":"x"}}"#);
        assert!(e.starts_with("linux.resources.cpu.mems"), "{e}");
    }

    #[test]
    fn unified_cpu_weight_is_range_checked() {
        let e = err(r#"{"unified":{"cpu.weight":"0"}}"#);
        assert!(
            e.starts_with(r#"linux.resources.unified["cpu.weight"]: invalid value "0""#),
            "{e}"
        );
        check_resources(&res(r#"{"unified":{"cpu.weight":"100"}}"#)).unwrap();
    }
}
