//! The pods' cgroups on this host, cgroup v1 (one hierarchy per controller, as here) or a pure
//! cgroup v2 host (one unified hierarchy at /sys/fs/cgroup); containerd uses the cgroupfs
//! driver, so a container's cgroupsPath is a path under each hierarchy's root.

use std::fs;
use std::path::{Path, PathBuf};

use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};

use crate::Containerd;

/// A pod's cgroup parent, removed when the test ends, passed or not.
pub struct CgroupParent(pub String);

impl CgroupParent {
    /// The cgroup parent of the pods of containerd `cd`: `/myrt-cri/<its temp dir's name>`,
    /// unique to that instance.
    pub fn path_for(cd: &Containerd) -> String {
        let name = cd
            .dir()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!("/myrt-cri/{name}")
    }
}

impl Drop for CgroupParent {
    fn drop(&mut self) {
        remove_cgroup_parent(&self.0);
    }
}

/// True on a pure cgroup v2 host: /sys/fs/cgroup itself is the cgroup2 (unified) hierarchy.
/// A hybrid host (v1 controllers, cgroup2 at /sys/fs/cgroup/unified) is v1 for the runtimes.
pub fn is_unified() -> bool {
    statfs("/sys/fs/cgroup").is_ok_and(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC)
}

/// A cgroup file of cgroupsPath `path`, trimmed: `<v1 controller><path>/<v1 file>` on v1,
/// `<path>/<v2 file>` on a unified host. Panics when it cannot be read.
#[track_caller]
pub fn cgroup_value(path: &str, controller: &str, v1: &str, v2: &str) -> String {
    let rel = path.trim_start_matches('/');
    let root = Path::new("/sys/fs/cgroup");
    let p = if is_unified() {
        root.join(rel).join(v2)
    } else {
        root.join(controller).join(rel).join(v1)
    };
    fs::read_to_string(&p)
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// Removes a pod's cgroup parent (e.g. `/myrt-cri-x/pod0`) and its ancestors in every v1
/// hierarchy and the unified one, deepest first; rmdir only removes empty ones.
pub fn remove_cgroup_parent(parent: &str) {
    let root = Path::new("/sys/fs/cgroup");
    let mut hierarchies: Vec<PathBuf> = vec![root.to_path_buf()];
    if let Ok(entries) = fs::read_dir(root) {
        hierarchies.extend(entries.flatten().map(|e| e.path()));
    }
    let mut chain: Vec<&str> = Vec::new();
    let mut current = parent.trim_matches('/');
    while !current.is_empty() {
        chain.push(current);
        current = current.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
    }
    for rel in chain {
        for h in &hierarchies {
            let _ = fs::remove_dir(h.join(rel));
        }
    }
}
