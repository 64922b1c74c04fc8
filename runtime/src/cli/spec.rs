//! `spec`: writes runc's default config.json (a busybox-friendly `sh` with a terminal) into the
//! bundle, or its rootless variant.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;
use serde_json::{json, Value};

use super::{io_err, CliError, Result, SPEC_VERSION};

#[derive(Debug, Args)]
pub struct SpecArgs {
    /// path to the root of the bundle directory
    #[arg(short = 'b', long, value_name = "DIR", default_value = ".")]
    pub bundle: PathBuf,
    /// generate a configuration for a rootless container
    #[arg(long)]
    pub rootless: bool,
}

pub fn spec(a: SpecArgs) -> Result<i32> {
    if !a.bundle.is_dir() {
        return Err(CliError::Usage(format!(
            "bundle {}: not a directory",
            a.bundle.display()
        )));
    }
    let mut spec = default_spec(cgroup_namespace_by_default());
    if a.rootless {
        to_rootless(
            &mut spec,
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        );
    }
    let path = a.bundle.join("config.json");
    let mut f = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o666)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(CliError::Usage(
                "File config.json exists. Remove it first".into(),
            ))
        }
        Err(e) => return Err(io_err(&path)(e)),
    };
    f.write_all(&to_tab_indented(&spec))
        .map_err(io_err(&path))?;
    Ok(0)
}

/// runc adds a cgroup namespace on a cgroup v2 host only.
fn cgroup_namespace_by_default() -> bool {
    matches!(
        myrt_runtime::cgroups::probe(),
        Ok(myrt_runtime::cgroups::Hierarchy::V2)
    )
}

/// runc's specconv.Example().
pub fn default_spec(cgroup_ns: bool) -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "network"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    if cgroup_ns {
        namespaces.push(json!({"type": "cgroup"}));
    }
    json!({
        "ociVersion": SPEC_VERSION,
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": caps,
                "effective": caps,
                "permitted": caps,
                "ambient": caps
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "myrt",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": namespaces,
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

/// runc's specconv.ToRootless: a user namespace mapping the caller to root, no network
/// namespace, /sys bind-mounted, no uid=/gid= mount options, no cgroup resources.
pub fn to_rootless(spec: &mut Value, uid: u32, gid: u32) {
    let linux = &mut spec["linux"];
    let mut namespaces: Vec<Value> = linux["namespaces"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|ns| !matches!(ns["type"].as_str(), Some("network" | "user")))
        .collect();
    namespaces.push(json!({"type": "user"}));
    linux["namespaces"] = namespaces.into();
    linux["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
    linux["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
    if let Some(obj) = linux.as_object_mut() {
        obj.remove("resources");
    }
    if let Some(mounts) = spec["mounts"].as_array_mut() {
        for m in mounts.iter_mut() {
            if m["destination"] == "/sys" {
                *m = json!({"destination": "/sys", "type": "none", "source": "/sys",
                            "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
                continue;
            }
            if let Some(opts) = m["options"].as_array_mut() {
                opts.retain(|o| {
                    o.as_str()
                        .is_some_and(|o| !o.starts_with("uid=") && !o.starts_with("gid="))
                });
            }
        }
    }
}

/// runc writes config.json with tabs (Go's MarshalIndent(spec, "", "\t")).
fn to_tab_indented(v: &Value) -> Vec<u8> {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    // Serializing a Value into a Vec cannot fail.
    let _ = v.serialize(&mut ser);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_a_valid_spec() {
        let spec: oci_spec::runtime::Spec =
            serde_json::from_value(default_spec(false)).expect("parses as an OCI spec");
        let p = spec.process().as_ref().unwrap();
        assert_eq!(p.terminal(), Some(true));
        assert_eq!(p.args().as_ref().unwrap(), &["sh"]);
        assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
        let ns = spec
            .linux()
            .as_ref()
            .unwrap()
            .namespaces()
            .as_ref()
            .unwrap();
        assert_eq!(ns.len(), 5);
        assert_eq!(
            default_spec(true)["linux"]["namespaces"][5]["type"],
            "cgroup"
        );
    }

    #[test]
    fn rootless_maps_the_caller() {
        let mut s = default_spec(false);
        to_rootless(&mut s, 1000, 1001);
        let spec: oci_spec::runtime::Spec = serde_json::from_value(s.clone()).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        assert_eq!(linux.uid_mappings().as_ref().unwrap()[0].host_id(), 1000);
        assert_eq!(linux.gid_mappings().as_ref().unwrap()[0].host_id(), 1001);
        let types: Vec<_> = s["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(types, ["pid", "ipc", "uts", "mount", "user"]);
        assert!(linux.resources().is_none());
        assert!(!s.to_string().contains("gid=5"));
        assert_eq!(s["mounts"][5]["type"], "none");
    }
}
