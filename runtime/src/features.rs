//! The OCI runtime features document (runtime-spec features.md): what this build of the engine
//! actually carries out. `myrt features` prints it; the shim hands it to containerd in its
//! `-info` answer.

use std::path::Path;

use serde_json::{json, Value};

use crate::namespaces::Kind;
use crate::seccomp::features as seccomp;
use crate::{SPEC_VERSION, VERSION};

/// The hooks the engine runs: the runtime runs four, the init createContainer/startContainer.
pub const HOOKS: &[&str] = &[
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// Every mount option the rootfs module recognizes (runtime/src/rootfs/options.rs: flags,
/// propagation, recursive attributes, tmpcopyup and idmap/ridmap for bind mounts).
pub const MOUNT_OPTIONS: &[&str] = &[
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
pub fn criu_status(criu: &Path) -> String {
    let c = crate::criu::Criu::new(Some(criu));
    match c.check_version(crate::criu::MIN_VERSION) {
        Ok(v) => format!("{v} ({})", criu.display()),
        Err(e) => format!("unavailable: {e}"),
    }
}

/// The features document; `criu` is [`criu_status`] when known (the
/// `io.containerd.myrt.checkpoint.criu` annotation), left out when `None`.
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
                "modes": crate::setup::MEMORY_POLICY_MODES,
                "flags": crate::setup::MEMORY_POLICY_FLAGS
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
    let host = crate::setup::lsm::HostLsm::detect();
    a["io.containerd.myrt.apparmor"] =
        json!(crate::setup::lsm::describe("apparmor", host.apparmor));
    a["io.containerd.myrt.selinux"] = json!(crate::setup::lsm::describe("selinux", host.selinux));
    if let Some(c) = criu {
        a["io.containerd.myrt.checkpoint.criu"] = json!(c);
    }
    a
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
    fn criu_annotation_only_when_given() {
        let without = document_with(None);
        let a = without["annotations"].as_object().unwrap();
        assert!(!a.contains_key("io.containerd.myrt.checkpoint.criu"));
        assert_eq!(a["io.containerd.myrt.version"], VERSION);
        assert!(a.contains_key("io.containerd.myrt.apparmor"));
        let with = document_with(Some("4.2.1 (criu)".into()));
        assert_eq!(
            with["annotations"]["io.containerd.myrt.checkpoint.criu"],
            "4.2.1 (criu)"
        );
        assert_eq!(with["ociVersionMax"], SPEC_VERSION);
    }

    #[test]
    fn namespaces_are_oci_names_sorted() {
        let doc = document_with(None);
        let ns: Vec<&str> = doc["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(
            ns,
            ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"]
        );
    }

    #[test]
    fn mount_options_are_sorted_and_unique() {
        let mut sorted = MOUNT_OPTIONS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, MOUNT_OPTIONS);
    }
}
