//! The cgroup manager: one [`Manager`] interface, two backends ([`v1`], [`v2`]) chosen by probing
//! the host, modeled on runc's `libcontainer/cgroups/fs{,2}` drivers.
//!
//! A manager is created from the spec's `linux.cgroupsPath` with [`new_manager`], saved in the
//! state file as a [`CgroupConfig`] and rebuilt by another process with [`load_manager`].
//! A new container's device rules should go through [`devices::rules_with_defaults`] first, as
//! runc's specconv does; on v2 they become an eBPF device program ([`bpf`]).

mod bpf;
pub mod devices;
mod fs;
mod mountinfo;
pub mod oom;
pub mod stats;
pub mod v1;
pub mod v2;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use crate::Pid;
use mountinfo::{CgroupMount, MountKind};
pub use validate::check_resources;

/// Where the host mounts its cgroup hierarchies.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Key of the single directory of a v2 manager in [`CgroupConfig::dirs`].
const UNIFIED_KEY: &str = "unified";

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// `op` is "read", "mkdir", "rmdir" or "read_dir".
    #[error("linux.resources.devices: {path}: {source}")]
    Bpf {
        path: PathBuf,
        source: bpf::BpfError,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("write {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        source: std::io::Error,
    },
    #[error("{path}: unexpected content {value:?}: {reason}")]
    Parse {
        path: PathBuf,
        value: String,
        reason: String,
    },
    /// The host (or myrt) cannot carry out `field`; the caller may drop the field and retry.
    #[error("{field}: {reason}")]
    Unsupported { field: String, reason: String },
    #[error("{field}: invalid value {value:?}: {reason}")]
    InvalidValue {
        field: String,
        value: String,
        reason: String,
    },
    #[error("cgroups path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },
    #[error("cgroups path {path:?}: systemd cgroup driver is not supported yet; use a path like /myrt/<id> (kubelet: cgroupDriver: cgroupfs)")]
    Systemd { path: String },
    #[error("probe {path}: {reason}")]
    Probe { path: PathBuf, reason: String },
    #[error("{path}: {what} did not settle within {timeout_ms} ms (last seen {last:?})")]
    Timeout {
        path: PathBuf,
        what: &'static str,
        last: String,
        timeout_ms: u128,
    },
    #[error("{path}: processes still present after kill: {pids:?}")]
    StillPopulated { path: PathBuf, pids: Vec<i32> },
    #[error("kill processes of {path}: {source}")]
    Kill {
        path: PathBuf,
        source: crate::utils::pid::PidError,
    },
}

impl CgroupError {
    /// True for [`CgroupError::Unsupported`]: a field this host or myrt cannot apply.
    pub fn is_unsupported(&self) -> bool {
        matches!(self, CgroupError::Unsupported { .. })
    }
}

fn unsupported(field: impl Into<String>, reason: impl Into<String>) -> CgroupError {
    CgroupError::Unsupported {
        field: field.into(),
        reason: reason.into(),
    }
}

fn invalid(
    field: impl Into<String>,
    value: impl ToString,
    reason: impl Into<String>,
) -> CgroupError {
    CgroupError::InvalidValue {
        field: field.into(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn invalid_path(path: impl Into<String>, reason: impl Into<String>) -> CgroupError {
    CgroupError::InvalidPath {
        path: path.into(),
        reason: reason.into(),
    }
}

/// Which cgroup hierarchy the host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hierarchy {
    /// Per-controller hierarchies (also hybrid hosts: their cgroup2 mount is left alone).
    V1,
    /// The unified hierarchy alone.
    V2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FreezerState {
    Thawed,
    /// Freezing was requested but some task has not stopped yet.
    Freezing,
    Frozen,
}

/// All another process needs to rebuild a manager: stored in the container's state file.
/// `dirs` holds the resolved directories (v1: one per controller; v2: the key "unified"), because
/// a relative cgroupsPath resolves differently from another process' own cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupConfig {
    pub hierarchy: Hierarchy,
    pub path: String,
    pub dirs: BTreeMap<String, PathBuf>,
}

pub trait Manager: Send + Sync + std::fmt::Debug {
    fn hierarchy(&self) -> Hierarchy;
    /// The cgroupsPath as resolved inside the hierarchy, e.g. "/default/ctr1".
    fn path(&self) -> &Path;
    /// What to save so that [`load_manager`] can rebuild this manager.
    fn config(&self) -> CgroupConfig;
    fn create(&self) -> Result<(), CgroupError>;
    fn add_task(&self, pid: Pid) -> Result<(), CgroupError>;
    /// Writes the limits. Fields this host cannot apply fail with an error naming the field;
    /// on v2 the device rules are checked and installed (eBPF) before anything else is written.
    fn apply(&self, resources: &LinuxResources) -> Result<(), CgroupError>;
    fn freeze(&self) -> Result<(), CgroupError>;
    fn thaw(&self) -> Result<(), CgroupError>;
    fn freezer_state(&self) -> Result<FreezerState, CgroupError>;
    /// Processes of the cgroup and all its descendants.
    fn pids(&self) -> Result<Vec<Pid>, CgroupError>;
    /// SIGKILLs every process and waits (bounded) until the cgroup is empty.
    fn kill_all(&self) -> Result<(), CgroupError>;
    /// Removes the cgroup and its descendants, deepest first; a missing cgroup is fine.
    fn remove(&self) -> Result<(), CgroupError>;
    fn exists(&self) -> bool;
    /// Usage statistics from the cgroup's files (runc's `GetStats`); a cgroup that is gone is
    /// an error naming its directory.
    fn stats(&self) -> Result<stats::Stats, CgroupError>;
}

/// Probes the host's hierarchy at [`CGROUP_ROOT`].
pub fn probe() -> Result<Hierarchy, CgroupError> {
    probe_at(Path::new(CGROUP_ROOT))
}

/// cgroup2 mounted at `root` is v2; a tmpfs holding cgroup v1 mounts is v1 (a hybrid host's
/// cgroup2 at `root/unified` does not change that).
pub fn probe_at(root: &Path) -> Result<Hierarchy, CgroupError> {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC, TMPFS_MAGIC};
    let probe_err = |reason: String| CgroupError::Probe {
        path: root.to_path_buf(),
        reason,
    };
    let fs_type = statfs(root)
        .map_err(|e| probe_err(format!("statfs: {e}")))?
        .filesystem_type();
    if fs_type == CGROUP2_SUPER_MAGIC {
        return Ok(Hierarchy::V2);
    }
    if fs_type != TMPFS_MAGIC {
        return Err(probe_err(format!(
            "neither cgroup2 nor a tmpfs of cgroup v1 mounts (filesystem type {:#x})",
            fs_type.0
        )));
    }
    let entries = std::fs::read_dir(root).map_err(|e| probe_err(format!("read_dir: {e}")))?;
    for entry in entries.flatten() {
        if statfs(&entry.path()).is_ok_and(|s| s.filesystem_type() == CGROUP_SUPER_MAGIC) {
            return Ok(Hierarchy::V1);
        }
    }
    Err(probe_err(
        "tmpfs without any cgroup v1 controller mounted".into(),
    ))
}

/// What this process sees of the cgroup filesystem: the hierarchy, its mounts, and its own
/// cgroup in each. [`Layout::host`] reads the host; tests build one from fixture text.
#[derive(Debug, Clone)]
pub struct Layout {
    hierarchy: Hierarchy,
    mounts: Vec<CgroupMount>,
    /// controller ("" on v2) -> own cgroup path, from /proc/self/cgroup
    own: HashMap<String, String>,
}

impl Layout {
    pub fn host() -> Result<Layout, CgroupError> {
        let hierarchy = probe()?;
        let mountinfo = fs::read(Path::new("/proc/self/mountinfo"))?;
        let own = fs::read(Path::new("/proc/self/cgroup"))?;
        Ok(Layout::parse(
            hierarchy,
            Path::new(CGROUP_ROOT),
            &mountinfo,
            &own,
        ))
    }

    /// Keeps the mounts of `hierarchy` under `root` (v1) or at `root` (v2).
    pub fn parse(hierarchy: Hierarchy, root: &Path, mountinfo: &str, proc_cgroup: &str) -> Layout {
        let mounts = mountinfo::parse_mountinfo(mountinfo)
            .into_iter()
            .filter(|m| match (&m.kind, hierarchy) {
                (MountKind::V1(_), Hierarchy::V1) => m.mountpoint.starts_with(root),
                // Hybrid: the cgroup2 mount beside the v1 ones (/sys/fs/cgroup/unified) is
                // joined too, as runc does; left in its root, a container shares the host's
                // unified cgroup (and CRIU dumps every cgroup under it).
                (MountKind::V2, Hierarchy::V1) => {
                    m.mountpoint.starts_with(root) && m.mountpoint != root
                }
                (MountKind::V2, Hierarchy::V2) => m.mountpoint == root,
                _ => false,
            })
            .collect();
        Layout {
            hierarchy,
            mounts,
            own: mountinfo::parse_proc_cgroup(proc_cgroup),
        }
    }
}

/// Builds the manager for `linux.cgroupsPath` on this host; see [`new_manager_in`].
pub fn new_manager(
    cgroups_path: Option<&str>,
    container_id: &str,
    systemd: bool,
) -> Result<Box<dyn Manager>, CgroupError> {
    new_manager_in(&Layout::host()?, cgroups_path, container_id, systemd)
}

/// Resolves the path like runc's fs drivers: absolute = under the root of each hierarchy (below
/// the visible mount, whatever its root); relative = under this process' own cgroup (v2: its
/// parent, which can hold children because it has no processes of its own); none or empty = the
/// container id as a relative path (runc 1.1 sets `Name = id` with an empty `Path`, which its fs
/// drivers resolve the same way).
pub fn new_manager_in(
    layout: &Layout,
    cgroups_path: Option<&str>,
    container_id: &str,
    systemd: bool,
) -> Result<Box<dyn Manager>, CgroupError> {
    let inner = clean_cgroups_path(cgroups_path, container_id, systemd)?;
    let shown = cgroups_path.unwrap_or(container_id);
    let mut dirs = BTreeMap::new();
    let mut paths = BTreeMap::new(); // the same keys, to the path inside the hierarchy
    for mount in &layout.mounts {
        let controllers = match &mount.kind {
            MountKind::V1(c) => c.clone(),
            MountKind::V2 => vec![String::new()],
        };
        for controller in controllers {
            let full = match inner.strip_prefix('/') {
                Some(_) => inner.clone(),
                None => {
                    let own = layout.own.get(&controller).ok_or_else(|| {
                        invalid_path(
                            shown,
                            format!("no {controller:?} line in /proc/self/cgroup"),
                        )
                    })?;
                    let own = match layout.hierarchy {
                        Hierarchy::V2 => Path::new(own).parent().unwrap_or(Path::new("/")),
                        Hierarchy::V1 => Path::new(own),
                    };
                    format!(
                        "{}/{inner}",
                        own.display().to_string().trim_end_matches('/')
                    )
                }
            };
            let mount_root = if inner.starts_with('/') {
                "/"
            } else {
                mount.root.as_str()
            };
            let below = Path::new(&full).strip_prefix(mount_root).map_err(|_| {
                let at = mount.mountpoint.display();
                let why = format!(
                    "{full} is outside the cgroup mounted at {at} ({})",
                    mount.root
                );
                invalid_path(shown, why)
            })?;
            let key = if controller.is_empty() {
                UNIFIED_KEY
            } else {
                &controller
            };
            if dirs.contains_key(key) {
                continue; // mounted twice: the first mount wins
            }
            dirs.insert(key.to_string(), mount.mountpoint.join(below));
            paths.insert(key.to_string(), full);
        }
    }
    // path() shows the hierarchy that pids() reads
    let path = ["pids", "freezer", UNIFIED_KEY]
        .iter()
        .find_map(|k| paths.get(*k));
    let path = path
        .or(paths.values().next())
        .cloned()
        .ok_or_else(|| CgroupError::Probe {
            path: PathBuf::from(CGROUP_ROOT),
            reason: "no cgroup hierarchy mounted".into(),
        })?;
    let hierarchy = layout.hierarchy;
    load_manager(&CgroupConfig {
        hierarchy,
        path,
        dirs,
    })
}

/// Rebuilds a manager from its saved [`CgroupConfig`].
pub fn load_manager(config: &CgroupConfig) -> Result<Box<dyn Manager>, CgroupError> {
    let bad = |reason: String| invalid_path(&config.path, reason);
    if config.dirs.is_empty() {
        return Err(bad("no cgroup directories in the saved config".into()));
    }
    for dir in config.dirs.values() {
        if !dir.is_absolute() || dir.components().any(|c| c.as_os_str() == "..") {
            return Err(bad(format!(
                "saved dir {} must be absolute without '..'",
                dir.display()
            )));
        }
    }
    let path = PathBuf::from(&config.path);
    match config.hierarchy {
        Hierarchy::V1 => Ok(Box::new(v1::V1Manager::new(path, config.dirs.clone()))),
        Hierarchy::V2 => match config.dirs.get(UNIFIED_KEY) {
            Some(dir) => Ok(Box::new(v2::V2Manager::new(path, dir.clone()))),
            None => Err(bad("v2 config without a \"unified\" directory".into())),
        },
    }
}

/// Validates and normalises `linux.cgroupsPath`: "/a/b" stays absolute, "a/b" stays relative.
fn clean_cgroups_path(
    path: Option<&str>,
    container_id: &str,
    systemd: bool,
) -> Result<String, CgroupError> {
    let raw = path.filter(|p| !p.is_empty());
    let shown = raw.unwrap_or(container_id).to_string();
    // "slice:prefix:name" is the systemd driver's syntax.
    if systemd || raw.is_some_and(|p| p.contains(':')) {
        return Err(CgroupError::Systemd { path: shown });
    }
    let raw = match raw {
        Some(p) => p,
        None if container_id.is_empty() || container_id.contains('/') => {
            return Err(invalid_path(
                shown,
                "empty, and the container id is not a plain name",
            ))
        }
        None => container_id,
    };
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            // runc's CleanPath would fold "..", we refuse it: it can only aim outside the root.
            ".." => return Err(invalid_path(shown, "'..' components are not allowed")),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(invalid_path(shown, "refusing to manage the root cgroup"));
    }
    let lead = if raw.starts_with('/') { "/" } else { "" };
    Ok(format!("{lead}{}", parts.join("/")))
}

/// cpu.shares [2, 262144] to cpu.weight [1, 10000] with the quadratic fit on log2(shares) of
/// crun >= 1.23 and runc >= 1.3.2: it maps 2 -> 1, 1024 (the v1 default) -> 100 (the v2
/// default) and 262144 -> 10000. 0 means unset.
pub fn cpu_shares_to_weight(shares: u64) -> u64 {
    match shares {
        0 => 0,
        1..=2 => 1,
        262_144.. => 10_000,
        _ => {
            let l = (shares as f64).log2();
            let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
            10f64.powf(exponent).ceil() as u64
        }
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn cgroups_shares_to_weight_matches_crun() {
        assert_eq!(cpu_shares_to_weight(0), 0);
        assert_eq!(cpu_shares_to_weight(2), 1);
        assert_eq!(cpu_shares_to_weight(3), 2);
        assert_eq!(cpu_shares_to_weight(512), 59);
        assert_eq!(cpu_shares_to_weight(1024), 100);
        assert_eq!(cpu_shares_to_weight(2048), 174);
        assert_eq!(cpu_shares_to_weight(262_143), 10_000);
        assert_eq!(cpu_shares_to_weight(1 << 20), 10_000);
    }

    #[test]
    fn cgroups_path_cleaning() {
        let c = |p: Option<&str>| clean_cgroups_path(p, "ctr1", false);
        assert_eq!(c(Some("/default/ctr1")).unwrap(), "/default/ctr1");
        assert_eq!(c(Some("//a/./b/")).unwrap(), "/a/b");
        assert_eq!(c(Some("a/b")).unwrap(), "a/b");
        assert_eq!(c(None).unwrap(), "ctr1");
        assert_eq!(c(Some("")).unwrap(), "ctr1");
        for bad in ["/a/../../etc", "..", "a/..", "/", "/./"] {
            assert!(
                matches!(c(Some(bad)), Err(CgroupError::InvalidPath { .. })),
                "{bad}"
            );
        }
        let e = c(Some("system.slice:myrt:ctr1")).unwrap_err();
        assert!(
            e.to_string()
                .contains("systemd cgroup driver is not supported yet"),
            "{e}"
        );
        assert!(matches!(
            clean_cgroups_path(Some("/a"), "x", true),
            Err(CgroupError::Systemd { .. })
        ));
        assert!(clean_cgroups_path(None, "a/b", false).is_err());
    }

    const HYBRID_CGROUP: &str =
        "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/ff1d\n2:cpu,cpuacct:/user\n0::/\n";

    fn hybrid(root: &Path) -> Layout {
        let r = root.display();
        let mi = format!(
            "31 23 0:28 / {r} rw,relatime - tmpfs tmpfs rw,mode=755\n\
             32 31 0:29 / {r}/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n\
             35 31 0:32 / {r}/memory rw,relatime - cgroup cgroup rw,memory\n\
             39 31 0:36 / {r}/pids rw,relatime - cgroup cgroup rw,pids\n\
             40 31 0:37 / {r}/systemd rw,relatime - cgroup cgroup rw,name=systemd\n\
             41 31 0:38 / {r}/unified rw,relatime - cgroup2 cgroup2 rw\n\
             50 23 0:40 / /elsewhere/memory rw - cgroup cgroup rw,memory\n"
        );
        Layout::parse(Hierarchy::V1, root, &mi, HYBRID_CGROUP)
    }

    #[test]
    fn cgroups_resolve_v1_absolute_and_relative() {
        let root = Path::new("/fake/cg");
        let m = new_manager_in(&hybrid(root), Some("/default/ctr1"), "ctr1", false).unwrap();
        let cfg = m.config();
        assert_eq!(m.path(), Path::new("/default/ctr1"));
        assert_eq!(cfg.dirs["memory"], root.join("memory/default/ctr1"));
        assert_eq!(cfg.dirs["cpu"], root.join("cpu,cpuacct/default/ctr1"));
        assert_eq!(cfg.dirs["cpuacct"], cfg.dirs["cpu"]);
        // The hybrid cgroup2 mount and name=systemd are joined too (as runc does); not
        // /elsewhere (outside the root).
        assert_eq!(cfg.dirs["unified"], root.join("unified/default/ctr1"));
        assert_eq!(cfg.dirs["name=systemd"], root.join("systemd/default/ctr1"));
        assert_eq!(cfg.dirs.len(), 6, "{cfg:?}");

        let m = new_manager_in(&hybrid(root), Some("sub/c"), "c", false).unwrap();
        let cfg = m.config();
        assert_eq!(m.path(), Path::new("/sub/c"));
        assert_eq!(
            cfg.dirs["memory"],
            root.join("memory/process_api/ff1d/sub/c")
        );
        assert_eq!(cfg.dirs["cpu"], root.join("cpu,cpuacct/user/sub/c"));
        let m = new_manager_in(&hybrid(root), None, "ctr9", false).unwrap();
        assert_eq!(m.path(), Path::new("/ctr9"));

        let back = serde_json::to_string(&cfg).unwrap();
        let loaded = load_manager(&serde_json::from_str(&back).unwrap()).unwrap();
        assert_eq!(loaded.config(), cfg);
    }

    #[test]
    fn cgroups_resolve_v2_and_mount_root() {
        let mi = "30 23 0:26 /kubepods /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let layout = Layout::parse(
            Hierarchy::V2,
            Path::new("/sys/fs/cgroup"),
            mi,
            "0::/kubepods/pod1/shim\n",
        );
        let m = new_manager_in(&layout, Some("ctr"), "ctr", false).unwrap();
        // relative: under the parent of our own cgroup, below the mount's root
        assert_eq!(m.path(), Path::new("/kubepods/pod1/ctr"));
        assert_eq!(
            m.config().dirs["unified"],
            Path::new("/sys/fs/cgroup/pod1/ctr")
        );
        let m = new_manager_in(&layout, Some("/default/x"), "x", false).unwrap();
        assert_eq!(
            m.config().dirs["unified"],
            Path::new("/sys/fs/cgroup/default/x")
        );
        let other = Layout::parse(
            Hierarchy::V2,
            Path::new("/sys/fs/cgroup"),
            mi,
            "0::/elsewhere/shim\n",
        );
        let e = new_manager_in(&other, Some("x"), "x", false).unwrap_err();
        assert!(
            e.to_string().contains("is outside the cgroup mounted at"),
            "{e}"
        );
    }

    #[test]
    fn cgroups_load_rejects_bad_config() {
        let mut cfg = CgroupConfig {
            hierarchy: Hierarchy::V2,
            path: "/a".into(),
            dirs: BTreeMap::new(),
        };
        assert!(load_manager(&cfg).is_err());
        cfg.dirs
            .insert("unified".into(), "/sys/fs/cgroup/../../etc".into());
        assert!(load_manager(&cfg).is_err());
        cfg.dirs.insert("unified".into(), "/sys/fs/cgroup/a".into());
        assert_eq!(load_manager(&cfg).unwrap().hierarchy(), Hierarchy::V2);
    }

    #[test]
    fn cgroups_probe_real_host_agrees_with_mountinfo() {
        let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let v2_at_root = mi
            .lines()
            .any(|l| l.contains(" /sys/fs/cgroup ") && l.contains(" - cgroup2 "));
        let expected = if v2_at_root {
            Hierarchy::V2
        } else {
            Hierarchy::V1
        };
        assert_eq!(probe().unwrap(), expected);
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            probe_at(dir.path()),
            Err(CgroupError::Probe { .. })
        ));
    }
}
