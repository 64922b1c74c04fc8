//! Linux capabilities: the bounding set, effective/permitted/inheritable, and ambient.
//!
//! Call order (runc's): [`drop_bounding`] before `setup_user` (dropping from the bounding set
//! needs `CAP_SETPCAP`, which a non-root uid no longer has in its effective set), then
//! `setup_user` (keeps the permitted set across the uid change), then [`apply_capabilities`].
//! A set the spec leaves out is empty, as in runc: the process gets no capability from it.
//!
//! Capabilities are per thread; the init and setns processes are single-threaded when they call
//! these. Capabilities newer than the running kernel (index above its `CAP_LAST_CAP`) are
//! skipped with a warning, like runc does; names that are no capability at all are an error.

use std::sync::OnceLock;

use nix::errno::Errno;
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

use super::{errno_text, SetupError};

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAP_VERSION_3: u32 = 0x2008_0522;

/// Parses a capability name as the OCI spec writes it ("CAP_CHOWN"; the `CAP_` prefix and case
/// are as lenient as oci-spec's own parser, so a spec that loads gives the same result).
pub fn parse_capability(name: &str) -> Result<Capability, SetupError> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).map_err(|_| {
        SetupError::UnknownCapability {
            name: name.to_string(),
        }
    })
}

/// Names the first unknown capability of a raw `process` object (`field` is its name in
/// messages, e.g. "process"), for a config the typed spec could not read: serde would only say
/// "no variant", without the set or the index.
pub fn check_capability_names(
    process: Option<&serde_json::Value>,
    field: &str,
) -> Result<(), SetupError> {
    let Some(caps) = process.and_then(|p| p.get("capabilities")) else {
        return Ok(());
    };
    for set in [
        "bounding",
        "effective",
        "inheritable",
        "permitted",
        "ambient",
    ] {
        let list = caps.get(set).and_then(|l| l.as_array());
        for (i, v) in list.into_iter().flatten().enumerate() {
            if v.as_str().is_some_and(|n| parse_capability(n).is_ok()) {
                continue;
            }
            return Err(SetupError::Field {
                field: format!("{field}.capabilities.{set}[{i}]"),
                value: v.to_string(),
                reason: "unknown capability: use a Linux capability name like CAP_CHOWN \
                         (`myrt features` lists them)"
                    .into(),
            });
        }
    }
    Ok(())
}

/// The capabilities for a spec without `process.capabilities`: every set empty, as in runc.
/// (`LinuxCapabilities::default()` is oci-spec's default set of three, not this.)
pub fn no_capabilities() -> LinuxCapabilities {
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(None)
        .set_effective(None)
        .set_inheritable(None)
        .set_permitted(None)
        .set_ambient(None);
    caps
}

/// The kernel's name for a capability: "CAP_CHOWN".
pub fn capability_name(cap: Capability) -> String {
    format!("CAP_{cap}")
}

/// The kernel's number for a capability (linux/capability.h).
pub fn capability_index(cap: Capability) -> u8 {
    use Capability::*;
    match cap {
        Chown => 0,
        DacOverride => 1,
        DacReadSearch => 2,
        Fowner => 3,
        Fsetid => 4,
        Kill => 5,
        Setgid => 6,
        Setuid => 7,
        Setpcap => 8,
        LinuxImmutable => 9,
        NetBindService => 10,
        NetBroadcast => 11,
        NetAdmin => 12,
        NetRaw => 13,
        IpcLock => 14,
        IpcOwner => 15,
        SysModule => 16,
        SysRawio => 17,
        SysChroot => 18,
        SysPtrace => 19,
        SysPacct => 20,
        SysAdmin => 21,
        SysBoot => 22,
        SysNice => 23,
        SysResource => 24,
        SysTime => 25,
        SysTtyConfig => 26,
        Mknod => 27,
        Lease => 28,
        AuditWrite => 29,
        AuditControl => 30,
        Setfcap => 31,
        MacOverride => 32,
        MacAdmin => 33,
        Syslog => 34,
        WakeAlarm => 35,
        BlockSuspend => 36,
        AuditRead => 37,
        Perfmon => 38,
        Bpf => 39,
        CheckpointRestore => 40,
    }
}

/// The highest capability number the running kernel knows (`CAP_LAST_CAP`).
///
/// Probed with `PR_CAPBSET_READ`, which fails with EINVAL past the last one: this works after
/// `pivot_root` without a /proc in the container.
pub fn last_cap() -> u8 {
    static LAST: OnceLock<u8> = OnceLock::new();
    *LAST.get_or_init(|| {
        let mut last = 0;
        for cap in 0..64u8 {
            if bounding_has(cap).is_err() {
                break;
            }
            last = cap;
        }
        last
    })
}

/// The bit mask of `set` for a kernel whose last capability is `last`, and the names skipped
/// because the kernel is older than they are.
fn mask_for(set: Option<&Capabilities>, last: u8) -> (u64, Vec<String>) {
    let mut mask = 0u64;
    let mut skipped = Vec::new();
    for cap in set.into_iter().flatten() {
        let index = capability_index(*cap);
        if index > last {
            skipped.push(capability_name(*cap));
        } else {
            mask |= 1u64 << index;
        }
    }
    skipped.sort();
    (mask, skipped)
}

fn mask_or_warn(set: Option<&Capabilities>, which: &str) -> u64 {
    let (mask, skipped) = mask_for(set, last_cap());
    if !skipped.is_empty() {
        log::warn!(
            "ignoring capabilities this kernel does not know (CAP_LAST_CAP {}) in process.capabilities.{which}: {}",
            last_cap(),
            skipped.join(", ")
        );
    }
    mask
}

fn bounding_has(cap: u8) -> Result<bool, Errno> {
    // SAFETY: PR_CAPBSET_READ takes a capability number and reads no memory.
    let ret = unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(cap), 0, 0, 0) };
    Errno::result(ret).map(|r| r == 1)
}

/// Drops from the bounding set every capability not in `caps.bounding` (all of them when it is
/// absent). Needs `CAP_SETPCAP`, so call it before the uid change; a capability already gone is
/// not dropped again, so a process that already has the right set needs no privilege.
pub fn drop_bounding(caps: &LinuxCapabilities) -> Result<(), SetupError> {
    let keep = mask_or_warn(caps.bounding().as_ref(), "bounding");
    for cap in 0..=last_cap() {
        if keep & (1u64 << cap) != 0 {
            continue;
        }
        let present = bounding_has(cap).map_err(|e| SetupError::Capabilities {
            op: format!("read bounding set for capability {cap}"),
            reason: errno_text(e),
        })?;
        if !present {
            continue;
        }
        // SAFETY: PR_CAPBSET_DROP takes a capability number and reads no memory.
        let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
        Errno::result(ret).map_err(|e| SetupError::Capabilities {
            op: format!("drop capability {cap} from the bounding set"),
            reason: hint(e),
        })?;
    }
    Ok(())
}

fn hint(e: Errno) -> String {
    match e {
        Errno::EPERM => format!(
            "{}: the runtime itself lacks a capability the spec asks for, or CAP_SETPCAP",
            errno_text(e)
        ),
        _ => errno_text(e),
    }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Sets effective, permitted and inheritable in one `capset`, so no intermediate state (say,
/// effective not within permitted) is ever rejected.
fn capset(effective: u64, permitted: u64, inheritable: u64) -> Result<(), Errno> {
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        CapData {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: header and data are repr(C) layouts of the kernel's v3 structs (one header, two
    // data words); both outlive the call and the kernel only reads data.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    };
    Errno::result(ret).map(drop)
}

fn ambient(op: libc::c_ulong, cap: libc::c_ulong) -> Result<(), Errno> {
    // SAFETY: PR_CAP_AMBIENT takes plain integers and reads no memory.
    let ret = unsafe { libc::prctl(libc::PR_CAP_AMBIENT, op, cap, 0, 0) };
    Errno::result(ret).map(drop)
}

/// Sets effective, permitted and inheritable to exactly the spec's sets, then the ambient set:
/// cleared, then raised for each capability that is also in permitted and inheritable (the
/// kernel refuses the others; they are skipped with a warning, as runc does).
pub fn apply_capabilities(caps: &LinuxCapabilities) -> Result<(), SetupError> {
    let effective = mask_or_warn(caps.effective().as_ref(), "effective");
    let permitted = mask_or_warn(caps.permitted().as_ref(), "permitted");
    let inheritable = mask_or_warn(caps.inheritable().as_ref(), "inheritable");
    let wanted_ambient = mask_or_warn(caps.ambient().as_ref(), "ambient");
    if effective & !permitted != 0 {
        return Err(SetupError::Capabilities {
            op: "set effective".into(),
            reason: format!(
                "effective holds {} which permitted lacks: effective must be a subset of permitted",
                names(effective & !permitted)
            ),
        });
    }
    capset(effective, permitted, inheritable).map_err(|e| SetupError::Capabilities {
        op: "capset effective/permitted/inheritable".into(),
        reason: hint(e),
    })?;

    ambient(libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0).map_err(|e| {
        SetupError::Capabilities {
            op: "clear the ambient set".into(),
            reason: errno_text(e),
        }
    })?;
    let unreachable = wanted_ambient & !(permitted & inheritable);
    if unreachable != 0 {
        log::warn!(
            "not raising ambient capabilities missing from permitted or inheritable: {}",
            names(unreachable)
        );
    }
    let raise = wanted_ambient & permitted & inheritable;
    for cap in (0..64u8).filter(|c| raise & (1u64 << c) != 0) {
        ambient(
            libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
            libc::c_ulong::from(cap),
        )
        .map_err(|e| SetupError::Capabilities {
            op: format!("raise ambient capability {}", index_name(cap)),
            reason: errno_text(e),
        })?;
    }
    Ok(())
}

fn index_name(index: u8) -> String {
    ALL.get(usize::from(index))
        .map_or_else(|| format!("capability {index}"), |c| capability_name(*c))
}

fn names(mask: u64) -> String {
    (0..64u8)
        .filter(|c| mask & (1u64 << c) != 0)
        .map(index_name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every capability oci-spec knows, in kernel order (a test checks position == index).
const ALL: [Capability; 41] = {
    use Capability::*;
    [
        Chown,
        DacOverride,
        DacReadSearch,
        Fowner,
        Fsetid,
        Kill,
        Setgid,
        Setuid,
        Setpcap,
        LinuxImmutable,
        NetBindService,
        NetBroadcast,
        NetAdmin,
        NetRaw,
        IpcLock,
        IpcOwner,
        SysModule,
        SysRawio,
        SysChroot,
        SysPtrace,
        SysPacct,
        SysAdmin,
        SysBoot,
        SysNice,
        SysResource,
        SysTime,
        SysTtyConfig,
        Mknod,
        Lease,
        AuditWrite,
        AuditControl,
        Setfcap,
        MacOverride,
        MacAdmin,
        Syslog,
        WakeAlarm,
        BlockSuspend,
        AuditRead,
        Perfmon,
        Bpf,
        CheckpointRestore,
    ]
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::setup::testutil::*;
    use std::str::FromStr;

    fn set(caps: &[Capability]) -> Capabilities {
        caps.iter().copied().collect()
    }

    #[test]
    fn table_matches_kernel_numbers() {
        for (i, cap) in ALL.iter().enumerate() {
            assert_eq!(usize::from(capability_index(*cap)), i, "{cap}");
            let name = capability_name(*cap);
            // The caps crate has its own table from linux/capability.h: cross-check.
            let theirs = caps::Capability::from_str(&name).unwrap();
            assert_eq!(usize::from(theirs.index()), i, "{name}");
            assert_eq!(parse_capability(&name).unwrap(), *cap);
        }
        assert_eq!(
            capability_name(Capability::NetBindService),
            "CAP_NET_BIND_SERVICE"
        );
        assert_eq!(names(0b10_0001), "CAP_CHOWN, CAP_KILL");
        assert_eq!(names(1 << 63), "capability 63");
    }

    #[test]
    fn unknown_capability_in_raw_json_is_named_with_its_set_and_index() {
        let raw = serde_json::json!({"capabilities": {
            "bounding": ["CAP_CHOWN", "CAP_NOPE"], "effective": ["CAP_CHOWN"]}});
        let e = check_capability_names(Some(&raw), "process")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(r#"process.capabilities.bounding[1] "CAP_NOPE": unknown capability"#),
            "{e}"
        );
        let e = check_capability_names(
            Some(&serde_json::json!({"capabilities": {"ambient": [7]}})),
            "process",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("process.capabilities.ambient[0] 7: "), "{e}");
        let ok = serde_json::json!({"capabilities": {"bounding": ["CAP_CHOWN", "CAP_BPF"]}});
        check_capability_names(Some(&ok), "process").unwrap();
        check_capability_names(None, "process").unwrap();
    }

    #[test]
    fn unknown_capability_name_is_an_error() {
        let err = parse_capability("CAP_FOO").unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown capability \"CAP_FOO\" in process.capabilities: use a Linux capability name like CAP_CHOWN"
        );
    }

    #[test]
    fn capabilities_newer_than_the_kernel_are_skipped() {
        use Capability::*;
        let wanted = set(&[Chown, Perfmon, Bpf, CheckpointRestore, AuditRead]);
        // A kernel whose CAP_LAST_CAP is CAP_AUDIT_READ (37), like Linux 5.7.
        let (mask, skipped) = mask_for(Some(&wanted), 37);
        assert_eq!(mask, 1 | 1 << 37);
        assert_eq!(
            skipped,
            ["CAP_BPF", "CAP_CHECKPOINT_RESTORE", "CAP_PERFMON"]
        );
        let (mask, skipped) = mask_for(None, 40);
        assert_eq!((mask, skipped.len()), (0, 0));
    }

    #[test]
    fn last_cap_matches_procfs() {
        let proc: u8 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(last_cap(), proc);
    }

    #[test]
    fn effective_outside_permitted_is_refused() {
        // Refused before any capset: safe in this process.
        let caps = oci_spec::runtime::LinuxCapabilitiesBuilder::default()
            .effective(set(&[Capability::Kill, Capability::Chown]))
            .permitted(set(&[Capability::Kill]))
            .build()
            .unwrap();
        let err = apply_capabilities(&caps).unwrap_err().to_string();
        assert_eq!(
            err,
            "process.capabilities: set effective: effective holds CAP_CHOWN which permitted lacks: \
             effective must be a subset of permitted"
        );
    }

    /// Bounding drop, uid change to 1000, capabilities: exactly CAP_CHOWN + CAP_KILL remain, and
    /// after execve the ambient CAP_KILL is what a non-root program keeps.
    #[test]
    fn caps_after_user_switch_child() {
        if !in_child() {
            let out = run_child(module_path!(), "caps_after_user_switch_child");
            assert!(out.status.success(), "{}", describe(&out));
            let stdout = String::from_utf8_lossy(&out.stdout);
            let after: Vec<&str> = stdout
                .split_once("EXEC\n")
                .map(|(_, t)| t.lines().collect())
                .unwrap_or_default();
            assert_eq!(
                after,
                [
                    "CapInh:\t0000000000000021",
                    "CapPrm:\t0000000000000020",
                    "CapEff:\t0000000000000020",
                    "CapBnd:\t0000000000000021",
                    "CapAmb:\t0000000000000020",
                ],
                "{}",
                describe(&out)
            );
            return;
        }
        use Capability::*;
        let two = set(&[Chown, Kill]);
        let caps = oci_spec::runtime::LinuxCapabilitiesBuilder::default()
            .bounding(two.clone())
            .effective(two.clone())
            .permitted(two.clone())
            .inheritable(two)
            // CAP_NET_RAW is not permitted: skipped with a warning, not an error.
            .ambient(set(&[Kill, NetRaw]))
            .build()
            .unwrap();
        let user = oci_spec::runtime::UserBuilder::default()
            .uid(1000u32)
            .gid(1000u32)
            .build()
            .unwrap();
        drop_bounding(&caps).unwrap();
        crate::setup::setup_user(&user).unwrap();
        apply_capabilities(&caps).unwrap();
        assert_eq!(thread_status("CapEff"), "0000000000000021");
        assert_eq!(thread_status("CapPrm"), "0000000000000021");
        assert_eq!(thread_status("CapInh"), "0000000000000021");
        assert_eq!(thread_status("CapBnd"), "0000000000000021");
        assert_eq!(thread_status("CapAmb"), "0000000000000020");
        assert_eq!(thread_status("Uid"), "1000\t1000\t1000\t1000");
        // Nothing left to drop: works without CAP_SETPCAP.
        drop_bounding(&caps).unwrap();

        let env = ["PATH=/usr/bin:/bin".to_string()];
        let grep = crate::setup::find_executable("grep", &env).unwrap();
        let args = ["grep", "^Cap", "/proc/self/status"].map(String::from);
        println!("EXEC");
        panic!("exec returned: {}", crate::setup::exec(&grep, &args, &env));
    }

    /// A spec without any capability set leaves a root process with none at all.
    #[test]
    fn absent_sets_mean_no_capabilities_child() {
        if !in_child() {
            assert_child_ok(&run_child(
                module_path!(),
                "absent_sets_mean_no_capabilities_child",
            ));
            return;
        }
        let none = no_capabilities();
        assert_eq!(none.bounding(), &None);
        assert_eq!(none.ambient(), &None);
        drop_bounding(&none).unwrap();
        apply_capabilities(&none).unwrap();
        for key in ["CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"] {
            assert_eq!(thread_status(key), "0000000000000000", "{key}");
        }
    }
}
