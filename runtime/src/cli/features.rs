//! `features`: the OCI runtime features document (runtime-spec features.md), stating what this
//! build of the engine actually carries out.

use myrt_runtime::namespaces::Kind;
use myrt_runtime::seccomp::features as seccomp;
use serde::Serialize;
use serde_json::{json, Value};

use super::{Result, SPEC_VERSION, VERSION};

/// The hooks the engine runs: the runtime runs four, the init createContainer/startContainer.
const HOOKS: &[&str] = &[
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// Every mount option the rootfs module recognizes (runtime/src/rootfs/options.rs: flags,
/// propagation, recursive attributes, tmpcopyup and idmap/ridmap for bind mounts).
const MOUNT_OPTIONS: &[&str] = &[
    "acl",
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "idmap",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noacl",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "remount",
    "rexec",
    "ridmap",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "tmpcopyup",
    "unbindable",
];

/// The OCI name of a namespace kind.
fn oci_namespace(kind: Kind) -> &'static str {
    match kind {
        Kind::User => "user",
        Kind::Ipc => "ipc",
        Kind::Uts => "uts",
        Kind::Net => "network",
        Kind::Pid => "pid",
        Kind::Cgroup => "cgroup",
        Kind::Time => "time",
        Kind::Mount => "mount",
    }
}

/// What `--criu` says about checkpoint/restore on this host: the version, or why not.
pub fn criu_status(criu: &std::path::Path) -> String {
    let c = myrt_runtime::criu::Criu::new(Some(criu));
    match c.check_version(myrt_runtime::criu::MIN_VERSION) {
        Ok(v) => format!("{v} ({})", criu.display()),
        Err(e) => format!("unavailable: {e}"),
    }
}

/// The features document; `criu` is [`criu_status`] when known.
pub fn document_with(criu: Option<String>) -> Value {
    let mut namespaces: Vec<&str> = Kind::ALL.iter().map(|k| oci_namespace(*k)).collect();
    namespaces.sort_unstable();
    let mut caps: Vec<caps::Capability> = caps::all().into_iter().collect();
    caps.sort_by_key(|c| c.index());
    let caps: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": SPEC_VERSION,
        "hooks": HOOKS,
        "mountOptions": MOUNT_OPTIONS,
        "linux": {
            "namespaces": namespaces,
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false},
            "seccomp": {
                "enabled": true,
                "actions": seccomp::ACTIONS,
                "operators": seccomp::OPERATORS,
                "archs": seccomp::ARCHS,
                "knownFlags": seccomp::known_flags(),
                "supportedFlags": seccomp::supported_flags()
            },
            // The runtime's support, whatever the host runs (features-linux.md); the host's
            // status is in the annotations.
            "apparmor": {"enabled": true},
            "selinux": {"enabled": true},
            "intelRdt": {"enabled": true},
            "memoryPolicy": {
                "modes": myrt_runtime::setup::MEMORY_POLICY_MODES,
                "flags": myrt_runtime::setup::MEMORY_POLICY_FLAGS
            },
            "mountExtensions": {"idmap": {"enabled": true}},
            "netDevices": {"enabled": true}
        },
        "annotations": annotations(criu)
    })
}

fn annotations(criu: Option<String>) -> Value {
    let mut a = json!({
        "io.containerd.myrt.version": VERSION,
        "io.containerd.myrt.checkpoint.enabled": "true",
    });
    let host = myrt_runtime::setup::lsm::HostLsm::detect();
    a["io.containerd.myrt.apparmor"] = json!(myrt_runtime::setup::lsm::describe(
        "apparmor",
        host.apparmor
    ));
    a["io.containerd.myrt.selinux"] =
        json!(myrt_runtime::setup::lsm::describe("selinux", host.selinux));
    if let Some(c) = criu {
        a["io.containerd.myrt.checkpoint.criu"] = json!(c);
    }
    a
}

pub fn features(criu: &std::path::Path) -> Result<i32> {
    // runc indents with four spaces.
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    // Serializing a Value into a Vec cannot fail.
    let _ = document_with(Some(criu_status(criu))).serialize(&mut ser);
    println!("{}", String::from_utf8_lossy(&buf));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_as_oci_features() {
        let f: oci_spec::runtime::Features = serde_json::from_value(document_with(None)).unwrap();
        let linux = f.linux().as_ref().unwrap();
        let sc = linux.seccomp().as_ref().unwrap();
        assert_eq!(sc.enabled(), &Some(true));
        assert!(sc
            .actions()
            .as_ref()
            .unwrap()
            .contains(&oci_spec::runtime::LinuxSeccompAction::ScmpActNotify));
        assert!(sc
            .supported_flags()
            .as_ref()
            .unwrap()
            .contains(&"SECCOMP_FILTER_FLAG_TSYNC".to_string()));
        assert_eq!(linux.intel_rdt().as_ref().unwrap().enabled(), &Some(true));
        assert!(linux
            .capabilities()
            .as_ref()
            .unwrap()
            .contains(&"CAP_SYS_ADMIN".to_string()));
        assert_eq!(linux.namespaces().as_ref().unwrap().len(), 8);
        assert!(f
            .mount_options()
            .as_ref()
            .unwrap()
            .contains(&"rbind".to_string()));
        let mp = linux.memory_policy().as_ref().unwrap();
        assert_eq!(mp.modes().as_ref().unwrap().len(), 7);
        assert!(mp
            .flags()
            .as_ref()
            .unwrap()
            .contains(&"MPOL_F_STATIC_NODES".to_string()));
        assert_eq!(linux.net_devices().as_ref().unwrap().enabled(), &Some(true));
        let idmap = linux.mount_extensions().as_ref().unwrap().idmap().clone();
        assert_eq!(idmap.unwrap().enabled(), &Some(true));
    }

    #[test]
    fn mount_options_are_sorted_and_unique() {
        let mut sorted = MOUNT_OPTIONS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, MOUNT_OPTIONS);
    }
}
