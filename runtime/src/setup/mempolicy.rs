//! `linux.memoryPolicy`: the NUMA memory policy of the container's processes (set_mempolicy(2)).
//!
//! [`check_memory_policy`] runs when config.json is validated (on the host, so it can compare the
//! nodes with the host's); [`set_memory_policy`] runs in the init and in every exec'd process,
//! next to the scheduler settings and before the seccomp filter (runc's setupMemoryPolicy), so a
//! profile that denies set_mempolicy does not stop the runtime. The policy is the task policy:
//! /proc/<pid>/numa_maps shows it for every mapping without a policy of its own.

use std::path::Path;

use nix::errno::Errno;
use oci_spec::runtime::{LinuxMemoryPolicy, MemoryPolicyFlagType, MemoryPolicyModeType};

use super::{errno_text, SetupError};

// <linux/mempolicy.h>
const MPOL_DEFAULT: i32 = 0;
const MPOL_PREFERRED: i32 = 1;
const MPOL_BIND: i32 = 2;
const MPOL_INTERLEAVE: i32 = 3;
const MPOL_LOCAL: i32 = 4;
const MPOL_PREFERRED_MANY: i32 = 5;
const MPOL_WEIGHTED_INTERLEAVE: i32 = 6;
const MPOL_F_STATIC_NODES: i32 = 1 << 15;
const MPOL_F_RELATIVE_NODES: i32 = 1 << 14;
const MPOL_F_NUMA_BALANCING: i32 = 1 << 13;

/// The largest node count any kernel configuration has (NODES_SHIFT 10).
const MAX_NODES: usize = 1024;

/// The host's possible NUMA nodes (a kernel without NUMA has node 0 only).
const POSSIBLE_NODES: &str = "/sys/devices/system/node/possible";

/// The modes the engine knows, in the spec's spelling (for `features`).
pub const MEMORY_POLICY_MODES: &[&str] = &[
    "MPOL_DEFAULT",
    "MPOL_BIND",
    "MPOL_INTERLEAVE",
    "MPOL_WEIGHTED_INTERLEAVE",
    "MPOL_PREFERRED",
    "MPOL_PREFERRED_MANY",
    "MPOL_LOCAL",
];

/// The mode flags the engine knows (for `features`).
pub const MEMORY_POLICY_FLAGS: &[&str] = &[
    "MPOL_F_NUMA_BALANCING",
    "MPOL_F_RELATIVE_NODES",
    "MPOL_F_STATIC_NODES",
];

fn field_err(field: &str, value: impl std::fmt::Display, reason: impl Into<String>) -> SetupError {
    SetupError::Field {
        field: field.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn mode_number(mode: MemoryPolicyModeType) -> i32 {
    match mode {
        MemoryPolicyModeType::MpolDefault => MPOL_DEFAULT,
        MemoryPolicyModeType::MpolPreferred => MPOL_PREFERRED,
        MemoryPolicyModeType::MpolBind => MPOL_BIND,
        MemoryPolicyModeType::MpolInterleave => MPOL_INTERLEAVE,
        MemoryPolicyModeType::MpolLocal => MPOL_LOCAL,
        MemoryPolicyModeType::MpolPreferredMany => MPOL_PREFERRED_MANY,
        MemoryPolicyModeType::MpolWeightedInterleave => MPOL_WEIGHTED_INTERLEAVE,
    }
}

fn flag_bits(flags: &[MemoryPolicyFlagType]) -> i32 {
    flags.iter().fold(0, |acc, f| {
        acc | match f {
            MemoryPolicyFlagType::MpolFNumaBalancing => MPOL_F_NUMA_BALANCING,
            MemoryPolicyFlagType::MpolFRelativeNodes => MPOL_F_RELATIVE_NODES,
            MemoryPolicyFlagType::MpolFStaticNodes => MPOL_F_STATIC_NODES,
        }
    })
}

/// Parses a node list like "0-1,3" into sorted, distinct node numbers below [`MAX_NODES`].
pub fn parse_node_list(field: &str, list: &str) -> Result<Vec<usize>, SetupError> {
    let bad = |why: String| field_err(field, format!("{list:?}"), why);
    let node = |s: &str| -> Result<usize, SetupError> {
        let n: usize = s
            .trim()
            .parse()
            .map_err(|_| bad(format!("{s:?} is not a node number")))?;
        if n >= MAX_NODES {
            return Err(bad(format!(
                "node {n} is beyond the kernel's limit of {MAX_NODES} nodes"
            )));
        }
        Ok(n)
    };
    let mut nodes = Vec::new();
    for part in list.split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (node(a)?, node(b)?),
            None => {
                let n = node(part)?;
                (n, n)
            }
        };
        if lo > hi {
            return Err(bad(format!("range {part:?} goes backwards")));
        }
        nodes.extend(lo..=hi);
    }
    nodes.sort_unstable();
    nodes.dedup();
    Ok(nodes)
}

/// The nodes this host can ever have (read from sysfs; node 0 where NUMA is off).
fn possible_nodes(path: &Path) -> Vec<usize> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| parse_node_list("host nodes", text.trim()).ok())
        .unwrap_or_else(|| vec![0])
}

/// The policy's form, and its nodes against the host's: unknown names were refused when the
/// spec was read; here a node list must be well formed, present for the modes that take nodes
/// and absent for MPOL_DEFAULT and MPOL_LOCAL, and name only nodes the host has (except with
/// MPOL_F_RELATIVE_NODES, whose numbers are positions within the allowed nodes).
pub fn check_memory_policy(p: &LinuxMemoryPolicy) -> Result<(), SetupError> {
    check_with_host(p, Path::new(POSSIBLE_NODES))
}

fn check_with_host(p: &LinuxMemoryPolicy, possible: &Path) -> Result<(), SetupError> {
    let nodes_text = p.nodes().as_deref().unwrap_or("").trim();
    let flags = flag_bits(p.flags().as_deref().unwrap_or(&[]));
    let mode = p.mode();
    if flags & MPOL_F_STATIC_NODES != 0 && flags & MPOL_F_RELATIVE_NODES != 0 {
        return Err(field_err(
            "linux.memoryPolicy.flags",
            "[MPOL_F_STATIC_NODES, MPOL_F_RELATIVE_NODES]",
            "these two exclude each other: keep one",
        ));
    }
    match mode {
        MemoryPolicyModeType::MpolDefault | MemoryPolicyModeType::MpolLocal => {
            if !nodes_text.is_empty() {
                return Err(field_err(
                    "linux.memoryPolicy.nodes",
                    format!("{nodes_text:?}"),
                    format!("mode {mode} takes no nodes: remove them"),
                ));
            }
            if flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES) != 0 {
                return Err(field_err(
                    "linux.memoryPolicy.flags",
                    format!("{:?}", p.flags().as_deref().unwrap_or(&[])),
                    format!(
                        "mode {mode} has no nodes for MPOL_F_STATIC_NODES or \
                         MPOL_F_RELATIVE_NODES to apply to"
                    ),
                ));
            }
            return Ok(());
        }
        _ => {}
    }
    if nodes_text.is_empty() {
        return Err(field_err(
            "linux.memoryPolicy.nodes",
            "\"\"",
            format!("mode {mode} needs nodes, e.g. \"0\" or \"0-1,3\""),
        ));
    }
    let nodes = parse_node_list("linux.memoryPolicy.nodes", nodes_text)?;
    if flags & MPOL_F_RELATIVE_NODES == 0 {
        let host = possible_nodes(possible);
        if let Some(n) = nodes.iter().find(|n| !host.contains(n)) {
            return Err(field_err(
                "linux.memoryPolicy.nodes",
                format!("{nodes_text:?}"),
                format!(
                    "node {n} does not exist on this host (its nodes: {})",
                    host.iter()
                        .map(|n| n.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            ));
        }
    }
    Ok(())
}

/// set_mempolicy(mode | flags, nodemask) for the calling process (and what it forks and execs).
pub fn set_memory_policy(p: &LinuxMemoryPolicy) -> Result<(), SetupError> {
    let nodes_text = p.nodes().as_deref().unwrap_or("").trim();
    let nodes = if nodes_text.is_empty() {
        Vec::new()
    } else {
        parse_node_list("linux.memoryPolicy.nodes", nodes_text)?
    };
    let bits = usize::BITS as usize;
    let mut mask = vec![0 as libc::c_ulong; nodes.last().map_or(0, |n| n / bits + 1)];
    for n in &nodes {
        mask[n / bits] |= 1 << (n % bits);
    }
    let mode = mode_number(p.mode()) | flag_bits(p.flags().as_deref().unwrap_or(&[]));
    // The kernel reads maxnode - 1 bits (get_nodes() decrements it first).
    let maxnode = if mask.is_empty() {
        0
    } else {
        mask.len() * bits + 1
    };
    let ptr = if mask.is_empty() {
        std::ptr::null()
    } else {
        mask.as_ptr()
    };
    // SAFETY: `ptr` is null or points at `mask`, which holds maxnode - 1 bits and outlives the
    // call; set_mempolicy only reads it and changes only the calling thread's policy.
    let rc = unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, ptr, maxnode) };
    Errno::result(rc).map(drop).map_err(|e| {
        let flags: Vec<String> = p.flags().iter().flatten().map(|f| f.to_string()).collect();
        let why = match e {
            Errno::EINVAL => format!(
                "set_mempolicy: {}: the kernel refuses this mode, flag and node combination, or \
                 none of the nodes is allowed by the container's cpuset",
                errno_text(e)
            ),
            _ => format!("set_mempolicy: {}", errno_text(e)),
        };
        field_err(
            "linux.memoryPolicy",
            format!(
                "{{mode {}, nodes {nodes_text:?}, flags [{}]}}",
                p.mode(),
                flags.join(", ")
            ),
            why,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: &str) -> LinuxMemoryPolicy {
        serde_json::from_str(json).unwrap()
    }

    fn check(json: &str) -> Result<(), String> {
        let dir = tempfile::tempdir().unwrap();
        let possible = dir.path().join("possible");
        std::fs::write(&possible, "0-1\n").unwrap();
        check_with_host(&policy(json), &possible).map_err(|e| e.to_string())
    }

    #[test]
    fn node_lists() {
        let f = "linux.memoryPolicy.nodes";
        assert_eq!(parse_node_list(f, "0-1,3").unwrap(), vec![0, 1, 3]);
        assert_eq!(parse_node_list(f, " 2 , 0-1,1").unwrap(), vec![0, 1, 2]);
        for bad in ["", "x", "1-", "3-1", "0,,1", "0-9876543210", "1024"] {
            let err = parse_node_list(f, bad).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("linux.memoryPolicy.nodes {bad:?}: ")),
                "{err}"
            );
        }
    }

    #[test]
    fn checks_modes_nodes_and_flags() {
        check(r#"{"mode":"MPOL_BIND","nodes":"0-1"}"#).unwrap();
        check(r#"{"mode":"MPOL_DEFAULT"}"#).unwrap();
        check(r#"{"mode":"MPOL_LOCAL"}"#).unwrap();
        check(r#"{"mode":"MPOL_PREFERRED","nodes":"7","flags":["MPOL_F_RELATIVE_NODES"]}"#)
            .unwrap();
        let err = check(r#"{"mode":"MPOL_LOCAL","nodes":"0"}"#).unwrap_err();
        assert!(
            err.starts_with(r#"linux.memoryPolicy.nodes "0": mode MPOL_LOCAL takes no nodes"#),
            "{err}"
        );
        let err = check(r#"{"mode":"MPOL_INTERLEAVE"}"#).unwrap_err();
        assert!(err.contains("mode MPOL_INTERLEAVE needs nodes"), "{err}");
        let err = check(r#"{"mode":"MPOL_BIND","nodes":"0-2"}"#).unwrap_err();
        assert!(
            err.starts_with(r#"linux.memoryPolicy.nodes "0-2": node 2 does not exist on this host (its nodes: 0,1)"#),
            "{err}"
        );
        let err = check(
            r#"{"mode":"MPOL_BIND","nodes":"0","flags":["MPOL_F_STATIC_NODES","MPOL_F_RELATIVE_NODES"]}"#,
        )
        .unwrap_err();
        assert!(err.starts_with("linux.memoryPolicy.flags"), "{err}");
        let err = check(r#"{"mode":"MPOL_DEFAULT","flags":["MPOL_F_STATIC_NODES"]}"#).unwrap_err();
        assert!(err.starts_with("linux.memoryPolicy.flags"), "{err}");
    }

    #[test]
    fn feature_lists_match_the_spec_types() {
        for m in MEMORY_POLICY_MODES {
            let mode: MemoryPolicyModeType = m.parse().unwrap();
            assert_eq!(mode.to_string(), *m);
        }
        for f in MEMORY_POLICY_FLAGS {
            let flag: MemoryPolicyFlagType = f.parse().unwrap();
            assert_eq!(flag.to_string(), *f);
        }
    }
}
