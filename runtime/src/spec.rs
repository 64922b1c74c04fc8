//! Reading and checking a bundle's config.json before anything is created.
//!
//! Every field is either carried out by the engine or refused here with an error that names it
//! (LSM labels on a host without that LSM too, as runc fails on them: setup/lsm.rs).

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::container::ContainerError;
use crate::namespaces::{Kind, Namespaces};

type Result<T> = std::result::Result<T, ContainerError>;

fn bad(msg: impl Into<String>) -> ContainerError {
    ContainerError::Spec(msg.into())
}

/// Loads `<bundle>/config.json`; the error names the file and, for JSON errors, line and column.
pub fn load(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    let data = std::fs::read(&path).map_err(|e| {
        bad(format!(
            "{}: {e} (a bundle needs a config.json; `myrt spec` writes a default one)",
            path.display()
        ))
    })?;
    let invalid =
        |e: serde_json::Error| bad(format!("{}: invalid OCI runtime spec: {e}", path.display()));
    let mut spec: Spec = match serde_json::from_slice(&data) {
        Ok(spec) => spec,
        Err(e) => match serde_json::from_slice::<serde_json::Value>(&data) {
            Ok(mut raw) => {
                // An unknown seccomp name: say which field holds it (serde only names the value).
                crate::seccomp::check_names(&raw).map_err(|e| bad(e.to_string()))?;
                let process = raw.get("process");
                crate::setup::check_capability_names(process, "process")
                    .and_then(|()| crate::setup::check_rlimit_names(process, "process"))
                    .map_err(|e| bad(e.to_string()))?;
                check_enum_names(&raw)?;
                if !fix_scheduler_flags(&mut raw) {
                    return Err(invalid(e));
                }
                // From bytes again: oci-spec reads a few fields differently from a Value.
                serde_json::to_vec(&raw)
                    .ok()
                    .and_then(|fixed| serde_json::from_slice(&fixed).ok())
                    .ok_or_else(|| invalid(e))?
            }
            Err(_) => return Err(invalid(e)),
        },
    };
    if spec
        .linux()
        .as_ref()
        .is_some_and(|l| l.intel_rdt().is_some())
    {
        // oci-spec 0.9 misreads enableCMT/enableMBM and drops unknown keys: read them raw.
        let raw: serde_json::Value = serde_json::from_slice(&data).map_err(invalid)?;
        crate::intelrdt::fix_up_spec(&raw, &mut spec)?;
    }
    Ok(spec)
}

/// The rootfs as an absolute path (root.path is relative to the bundle when not absolute).
pub fn rootfs_path(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| bad("root: missing in config.json"))?;
    let path = root.path();
    if path.as_os_str().is_empty() {
        return Err(bad("root.path: empty"));
    }
    let full = if path.is_absolute() {
        path.clone()
    } else {
        bundle.join(path)
    };
    let canon = std::fs::canonicalize(&full)
        .map_err(|e| bad(format!("root.path {:?}: {e}", full.display())))?;
    if !canon.is_dir() {
        return Err(bad(format!(
            "root.path {:?}: not a directory",
            full.display()
        )));
    }
    Ok(canon)
}

/// Refuses what the engine cannot carry out, naming the field.
pub fn validate(spec: &Spec, ns: &Namespaces, has_console: bool) -> Result<()> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| bad("process: missing in config.json"))?;
    match process.args().as_deref() {
        Some([first, ..]) if !first.is_empty() => {}
        _ => return Err(bad("process.args: must name the program to run")),
    }
    if !process.cwd().is_absolute() {
        return Err(bad(format!(
            "process.cwd {:?}: must be an absolute path",
            process.cwd().display()
        )));
    }
    let terminal = process.terminal().unwrap_or(false);
    if terminal && !has_console {
        return Err(bad(
            "process.terminal: true, but no console socket was given (use --console-socket)",
        ));
    }
    if !terminal && has_console {
        return Err(bad(
            "--console-socket given, but process.terminal is false in config.json",
        ));
    }
    // AppArmor/SELinux fields the host cannot carry out are refused, as runc fails on them.
    let mount_label = spec.linux().as_ref().and_then(|l| l.mount_label().clone());
    let host = crate::setup::lsm::HostLsm::detect();
    crate::setup::lsm::check(host, process, &mount_label).map_err(|e| bad(e.to_string()))?;
    check_process_sched(process)?;

    // No mount namespace listed: the runtime's is inherited (the spec says so) and the mounts
    // are made there; a user namespace could not mount in it.
    if ns.get(Kind::Mount).is_none() && ns.get(Kind::User).is_some() {
        return Err(crate::namespaces::NamespaceError::UserWithoutMount.into());
    }
    // A joined uts namespace (by path) takes the hostname too, as with runc; the runtime's own
    // never does.
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty()) && ns.get(Kind::Uts).is_none() {
        return Err(crate::namespaces::NamespaceError::NeedsOwn {
            field: "hostname",
            kind: "uts",
        }
        .into());
    }
    if let Some(linux) = spec.linux() {
        if let Some(seccomp) = linux.seccomp() {
            // Built (not loaded) here, so a bad profile fails create before anything exists.
            crate::seccomp::validate(seccomp).map_err(|e| bad(e.to_string()))?;
        }
        if let Some(r) = linux.resources() {
            // Values no host accepts, before any cgroup exists (the rest fails at the write).
            crate::cgroups::check_resources(r)?;
        }
        // linux.sysctl: only keys of a namespace the container has its own copy of.
        for key in linux.sysctl().iter().flat_map(|s| s.keys()) {
            crate::setup::check_sysctl(key, ns).map_err(|e| bad(e.to_string()))?;
        }
        // linux.intelRdt: its form here; the host's resctrl is checked when the container is
        // created (crate::intelrdt::RdtGroup::plan).
        crate::intelrdt::Config::from_spec(spec)?;
        if let Some(persona) = linux.personality() {
            crate::setup::check_personality(persona).map_err(|e| bad(e.to_string()))?;
        }
        if let Some(offsets) = linux.time_offsets() {
            crate::setup::check_time_offsets(offsets, ns).map_err(|e| bad(e.to_string()))?;
        }
        if let Some(policy) = linux.memory_policy() {
            crate::setup::check_memory_policy(policy).map_err(|e| bad(e.to_string()))?;
        }
        if let Some(devices) = linux.net_devices() {
            crate::setup::check_net_devices(devices, ns).map_err(|e| bad(e.to_string()))?;
        }
        if ns.get(Kind::User).is_none()
            && (linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
                || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty()))
        {
            return Err(bad(
                "linux.uidMappings/gidMappings: set, but there is no user namespace in linux.namespaces",
            ));
        }
    }
    Ok(())
}

/// oci-spec 0.9 spells two process.scheduler.flags unlike the runtime spec
/// (SCHED_RESET_ON_FORK, SCHED_FLAG_D_L_OVERRUN): rewrites the spec's names to its own.
/// Returns whether anything changed.
fn fix_scheduler_flags(raw: &mut serde_json::Value) -> bool {
    let Some(flags) = raw
        .pointer_mut("/process/scheduler/flags")
        .and_then(|f| f.as_array_mut())
    else {
        return false;
    };
    let mut changed = false;
    for flag in flags {
        let ours = match flag.as_str() {
            Some("SCHED_FLAG_RESET_ON_FORK") => "SCHED_RESET_ON_FORK",
            Some("SCHED_FLAG_DL_OVERRUN") => "SCHED_FLAG_D_L_OVERRUN",
            _ => continue,
        };
        *flag = serde_json::Value::from(ours);
        changed = true;
    }
    changed
}

/// The names serde would refuse without saying where: an unknown one is named with its field.
fn check_enum_names(raw: &serde_json::Value) -> Result<()> {
    const FIELDS: [(&str, &[&str]); 6] = [
        ("/linux/personality/domain", &["LINUX", "LINUX32"]),
        (
            "/linux/memoryPolicy/mode",
            crate::setup::MEMORY_POLICY_MODES,
        ),
        (
            "/linux/memoryPolicy/flags",
            crate::setup::MEMORY_POLICY_FLAGS,
        ),
        (
            "/process/ioPriority/class",
            &["IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE", "IOPRIO_CLASS_IDLE"],
        ),
        (
            "/process/scheduler/policy",
            &[
                "SCHED_OTHER",
                "SCHED_FIFO",
                "SCHED_RR",
                "SCHED_BATCH",
                "SCHED_ISO",
                "SCHED_IDLE",
                "SCHED_DEADLINE",
            ],
        ),
        (
            "/process/scheduler/flags",
            &[
                "SCHED_FLAG_RESET_ON_FORK",
                "SCHED_FLAG_RECLAIM",
                "SCHED_FLAG_DL_OVERRUN",
                "SCHED_FLAG_KEEP_POLICY",
                "SCHED_FLAG_KEEP_PARAMS",
                "SCHED_FLAG_UTIL_CLAMP_MIN",
                "SCHED_FLAG_UTIL_CLAMP_MAX",
                // oci-spec's spellings (a config it wrote)
                "SCHED_RESET_ON_FORK",
                "SCHED_FLAG_D_L_OVERRUN",
            ],
        ),
    ];
    for (pointer, known) in FIELDS {
        let values: Vec<&serde_json::Value> = match raw.pointer(pointer) {
            Some(serde_json::Value::Array(list)) => list.iter().collect(),
            Some(v) => vec![v],
            None => continue,
        };
        for v in values {
            if !v.as_str().is_some_and(|name| known.contains(&name)) {
                let field = pointer.trim_start_matches('/').replace('/', ".");
                return Err(bad(format!(
                    "{field} {v}: unknown; use one of {}",
                    known.join(", ")
                )));
            }
        }
    }
    Ok(())
}

/// process.ioPriority, process.scheduler and process.execCPUAffinity, checked for form.
fn check_process_sched(process: &oci_spec::runtime::Process) -> Result<()> {
    let err = |e: crate::setup::SetupError| bad(e.to_string());
    if let Some(io) = process.io_priority() {
        crate::setup::check_io_priority(io).map_err(err)?;
    }
    if let Some(sched) = process.scheduler() {
        crate::setup::check_scheduler(sched).map_err(err)?;
    }
    if let Some(aff) = process.exec_cpu_affinity() {
        if let Some(list) = aff.initial() {
            crate::setup::parse_cpu_list("process.execCPUAffinity.initial", list).map_err(err)?;
        }
        if let Some(list) = aff.cpu_affinity_final() {
            crate::setup::parse_cpu_list("process.execCPUAffinity.final", list).map_err(err)?;
        }
        // The spec applies it to exec'd processes only: the init runs where its cgroup allows.
        log::info!("process.execCPUAffinity: applies to processes started by exec, not the init");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: &str) -> Spec {
        let json = format!(
            r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}},
                "process":{{"args":["sh"],"cwd":"/","user":{{"uid":0,"gid":0}}}},
                "linux":{{"namespaces":[{{"type":"mount"}},{{"type":"pid"}}]{extra}}}}}"#
        );
        serde_json::from_str(&json).unwrap()
    }

    fn check(s: &Spec, console: bool) -> std::result::Result<(), String> {
        let ns = Namespaces::from_spec(s).unwrap();
        validate(s, &ns, console).map_err(|e| e.to_string())
    }

    #[test]
    fn hostname_needs_a_uts_namespace_new_or_joined() {
        let with_ns = |ns: &str| -> Spec {
            serde_json::from_value(serde_json::json!({
                "ociVersion": "1.0.2", "root": {"path": "rootfs"}, "hostname": "box",
                "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
                "linux": {"namespaces": serde_json::from_str::<serde_json::Value>(ns).unwrap()}
            }))
            .unwrap()
        };
        let err = check(&with_ns(r#"[{"type":"mount"}]"#), false).unwrap_err();
        assert!(
            err.contains("linux.hostname") && err.contains("\"uts\""),
            "{err}"
        );
        check(&with_ns(r#"[{"type":"mount"},{"type":"uts"}]"#), false).unwrap();
        check(
            &with_ns(r#"[{"type":"mount"},{"type":"uts","path":"/proc/1/ns/uts"}]"#),
            false,
        )
        .unwrap();
    }

    #[test]
    fn accepts_minimal() {
        check(&spec(""), false).unwrap();
    }

    #[test]
    fn names_unsupported_fields() {
        let err = check(
            &spec(r#","seccomp":{"defaultAction":"SCMP_ACT_NOTIFY"}"#),
            false,
        )
        .unwrap_err();
        assert!(err.contains("linux.seccomp.defaultAction"), "{err}");
        check(
            &spec(r#","seccomp":{"defaultAction":"SCMP_ACT_ALLOW"}"#),
            false,
        )
        .unwrap();
        let err = check(&spec(r#","sysctl":{"net.ipv4.ip_forward":"1"}"#), false).unwrap_err();
        assert!(
            err.starts_with(r#"linux.sysctl["net.ipv4.ip_forward"]: needs a new network"#),
            "{err}"
        );
        let err = check(&spec(r#","memoryPolicy":{"mode":"MPOL_BIND"}"#), false).unwrap_err();
        assert!(
            err.starts_with("linux.memoryPolicy.nodes \"\": mode MPOL_BIND needs nodes"),
            "{err}"
        );
        let err = check(&spec(r#","netDevices":{"lo":{"name":"eth0"}}"#), false).unwrap_err();
        assert!(
            err.starts_with("linux.netDevices: the container has no network namespace"),
            "{err}"
        );
    }

    #[test]
    fn terminal_needs_console() {
        let mut s = spec("");
        let mut p = s.process().clone().unwrap();
        p.set_terminal(Some(true));
        s.set_process(Some(p));
        assert!(check(&s, false).unwrap_err().contains("process.terminal"));
        check(&s, true).unwrap();
        assert!(check(&spec(""), true).unwrap_err().contains("console"));
    }

    #[test]
    fn hostname_needs_uts() {
        let mut s = spec("");
        s.set_hostname(Some("box".into()));
        assert!(check(&s, false).unwrap_err().contains("hostname"));
    }

    #[test]
    fn intel_rdt_is_checked_for_form_and_read_with_the_spec_capitals() {
        let err = check(&spec(r#","intelRdt":{"l3CacheSchema":"L3:0=xyz"}"#), false).unwrap_err();
        assert!(
            err.starts_with("linux.intelRdt.l3CacheSchema \"L3:0=xyz\": "),
            "{err}"
        );
        check(
            &spec(r#","intelRdt":{"closID":"gold","memBwSchema":"MB:0=50"}"#),
            false,
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let with = |rdt: &str| {
            let json = serde_json::to_string(&spec(&format!(r#","intelRdt":{rdt}"#))).unwrap();
            // oci-spec writes enableCmt; config.json from containerd says enableCMT
            std::fs::write(&path, json.replace(r#""enableCmt""#, r#""enableCMT""#)).unwrap();
            load(dir.path())
        };
        let loaded = with(r#"{"enableCmt":true}"#).unwrap();
        let rdt = loaded
            .linux()
            .as_ref()
            .unwrap()
            .intel_rdt()
            .clone()
            .unwrap();
        assert_eq!(rdt.enable_cmt(), &Some(true));
        // runtime-spec 1.3's schemata, which oci-spec 0.9 would drop, is refused
        let raw = r#"{"ociVersion":"1.0.2","linux":{"intelRdt":{"schemata":["L3:0=f"]}}}"#;
        std::fs::write(&path, raw).unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(
            err.starts_with("linux.intelRdt.schemata: not supported"),
            "{err}"
        );
    }

    #[test]
    fn unknown_names_are_refused_with_their_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        for (extra, want) in [
            (
                r#""linux":{"personality":{"domain":"LINUX64"}}"#,
                r#"linux.personality.domain "LINUX64": unknown"#,
            ),
            (
                r#""process":{"cwd":"/","ioPriority":{"class":"RT","priority":1}}"#,
                r#"process.ioPriority.class "RT": unknown"#,
            ),
            (
                r#""process":{"cwd":"/","scheduler":{"policy":"SCHED_X"}}"#,
                r#"process.scheduler.policy "SCHED_X": unknown"#,
            ),
            (
                r#""process":{"cwd":"/","scheduler":{"policy":"SCHED_RR","flags":["NOPE"]}}"#,
                r#"process.scheduler.flags "NOPE": unknown"#,
            ),
        ] {
            std::fs::write(&path, format!(r#"{{"ociVersion":"1.0.2",{extra}}}"#)).unwrap();
            let err = load(dir.path()).unwrap_err().to_string();
            assert!(err.starts_with(want), "{err}");
        }
        // The runtime spec's flag names, which oci-spec 0.9 spells otherwise, are read.
        let flags = r#"["SCHED_FLAG_RESET_ON_FORK","SCHED_FLAG_DL_OVERRUN","SCHED_FLAG_RECLAIM"]"#;
        std::fs::write(
            &path,
            format!(
                r#"{{"ociVersion":"1.0.2","process":{{"cwd":"/","user":{{"uid":0,"gid":0}},"scheduler":{{"policy":"SCHED_RR","flags":{flags}}}}}}}"#
            ),
        )
        .unwrap();
        let spec = load(dir.path()).unwrap();
        let sched = spec
            .process()
            .as_ref()
            .unwrap()
            .scheduler()
            .clone()
            .unwrap();
        use oci_spec::runtime::LinuxSchedulerFlag as F;
        assert_eq!(
            sched.flags().as_deref().unwrap(),
            [
                F::SchedResetOnFork,
                F::SchedFlagDLOverrun,
                F::SchedFlagReclaim
            ]
        );
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("config.json"), "{err}");
        std::fs::write(dir.path().join("config.json"), "{not json").unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("invalid OCI runtime spec"), "{err}");
    }
}
