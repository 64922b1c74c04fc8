//! `checkpoint`: dump the container's process tree with CRIU (libcontainer's Checkpoint).
//!
//! CRIU freezes the container's cgroup itself (`freeze_cgroup`), dumps every process with its
//! namespaces, and then kills the tree or, with `leave_running`, thaws it. What CRIU cannot see
//! from inside the container is recorded as "external" and written next to the images, so that
//! `restore` can bind it again: bind mounts (their host source may differ on the restoring host),
//! runc-style cgroup v1 bind mounts, and a network or pid namespace joined by path.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use myrt_protos::criu::{CriuCgMode, CriuOpts, CriuReq, CriuReqType, ExtMountMap};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use serde::{Deserialize, Serialize};

use super::{io_err, Container, ContainerError, Op, Result};
use crate::cgroups::Hierarchy;
use crate::criu::{Criu, LogFile, MIN_VERSION};
use crate::utils::mountinfo::{self, MountInfo};
use crate::utils::Pid;

/// runc's file of the init's stdio targets at dump time ("pipe:[123]", "/dev/null", …).
pub(crate) const DESCRIPTORS_FILE: &str = "descriptors.json";
/// What else restore needs to know about the dumped container.
pub(crate) const META_FILE: &str = "myrt-checkpoint.json";
/// The keys under which a joined namespace travels as external (runc's names).
pub(crate) const EXT_NET_KEY: &str = "extRootNetNS";
pub(crate) const EXT_PID_KEY: &str = "extRootPidNS";

/// How CRIU treats cgroups (runc's --manage-cgroups-mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CgroupsMode {
    /// CRIU's default for dump: properties only for cgroups it creates.
    #[default]
    Soft,
    Full,
    Strict,
    Ignore,
}

impl CgroupsMode {
    pub fn parse(s: &str) -> std::result::Result<CgroupsMode, String> {
        match s {
            "soft" => Ok(CgroupsMode::Soft),
            "full" => Ok(CgroupsMode::Full),
            "strict" => Ok(CgroupsMode::Strict),
            "ignore" => Ok(CgroupsMode::Ignore),
            _ => Err(format!(
                "manage-cgroups-mode {s:?}: must be one of soft, full, strict, ignore"
            )),
        }
    }

    pub(crate) fn to_criu(self) -> CriuCgMode {
        match self {
            CgroupsMode::Soft => CriuCgMode::Soft,
            CgroupsMode::Full => CriuCgMode::Full,
            CgroupsMode::Strict => CriuCgMode::Strict,
            CgroupsMode::Ignore => CriuCgMode::Ignore,
        }
    }
}

/// runc's checkpoint flags.
#[derive(Debug, Clone, Default)]
pub struct CheckpointOpts {
    pub criu: Option<PathBuf>,
    /// Where the images go (created, mode 0700).
    pub image_path: PathBuf,
    /// CRIU's log and work files; the image path when unset.
    pub work_path: Option<PathBuf>,
    pub leave_running: bool,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub cgroups_mode: Option<CgroupsMode>,
    /// Namespaces (CLONE_NEW* bits) CRIU should not dump but restore empty (runc's --empty-ns).
    pub empty_ns: u32,
}

/// One mount CRIU must be told about, because its source lies outside the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub(crate) enum ExternalMount {
    /// A bind mount from the spec (or a submount of an rbind): restore binds the source that the
    /// restoring bundle's spec gives for `destination`, plus `below`.
    Bind {
        key: String,
        destination: String,
        #[serde(default)]
        below: String,
    },
    /// A cgroup v1 hierarchy bound in from the container's cgroup (no cgroup namespace):
    /// restore binds the new container's cgroup of the hierarchy with these options.
    CgroupV1 { key: String, hierarchy: String },
}

impl ExternalMount {
    pub(crate) fn key(&self) -> &str {
        match self {
            ExternalMount::Bind { key, .. } | ExternalMount::CgroupV1 { key, .. } => key,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CheckpointMeta {
    pub id: String,
    pub external_mounts: Vec<ExternalMount>,
    pub terminal: bool,
    pub external_net: bool,
    pub external_pid: bool,
    pub criu_version: String,
    /// The dump's flags: a restore needs the same ones for what they let CRIU dump.
    #[serde(default)]
    pub tcp_established: bool,
    #[serde(default)]
    pub ext_unix_sk: bool,
    #[serde(default)]
    pub shell_job: bool,
    #[serde(default)]
    pub file_locks: bool,
}

impl Container {
    /// Dumps the container into `opts.image_path`. Without `leave_running` CRIU kills the
    /// tree afterwards (the caller then deletes the container, as runc does); on failure CRIU
    /// thaws it and the container goes on running.
    pub fn checkpoint(&mut self, opts: &CheckpointOpts) -> Result<()> {
        self.check(Op::Checkpoint)?;
        let pid = self.init_pid().ok_or_else(|| {
            ContainerError::Spec(format!("container {}: no live init to dump", self.id()))
        })?;
        let criu = Criu::new(opts.criu.as_deref());
        let version = criu.check_version(MIN_VERSION)?;

        let image = make_dir(&opts.image_path)?;
        let work_path = opts.work_path.as_deref().unwrap_or(&opts.image_path);
        let work = make_dir(work_path)?;

        let mounts = container_mounts(pid)?;
        let external_mounts = external_mounts(&self.spec, &mounts, self.has_cgroupns());
        let mut criu_opts = CriuOpts {
            images_dir_fd: image.as_raw_fd(),
            work_dir_fd: Some(work.as_raw_fd()),
            log_level: Some(4),
            log_file: Some("dump.log".into()),
            root: Some(self.state.rootfs.to_string_lossy().into_owned()),
            pid: Some(pid.as_raw()),
            manage_cgroups: Some(true),
            manage_cgroups_mode: opts.cgroups_mode.map(|m| m.to_criu() as i32),
            notify_scripts: Some(true),
            leave_running: Some(opts.leave_running),
            tcp_established: Some(opts.tcp_established),
            ext_unix_sk: Some(opts.ext_unix_sk),
            shell_job: Some(opts.shell_job),
            file_locks: Some(opts.file_locks),
            orphan_pts_master: Some(self.terminal()),
            empty_ns: (opts.empty_ns != 0).then_some(opts.empty_ns),
            freeze_cgroup: Some(self.freezer_dir()?.to_string_lossy().into_owned()),
            ..Default::default()
        };
        for m in &external_mounts {
            criu_opts.ext_mnt.push(ExtMountMap {
                key: m.key().to_string(),
                val: m.key().to_string(),
            });
        }
        let external_net = self.joined_ns(LinuxNamespaceType::Network);
        let external_pid = self.joined_ns(LinuxNamespaceType::Pid);
        for (joined, kind, key) in [
            (external_net, "net", EXT_NET_KEY),
            (external_pid, "pid", EXT_PID_KEY),
        ] {
            if joined {
                let ino = ns_inode(pid, kind)?;
                criu_opts.external.push(format!("{kind}[{ino}]:{key}"));
            }
        }

        let meta = CheckpointMeta {
            id: self.id().to_string(),
            external_mounts,
            terminal: self.terminal(),
            external_net,
            external_pid,
            criu_version: version.to_string(),
            tcp_established: opts.tcp_established,
            ext_unix_sk: opts.ext_unix_sk,
            shell_job: opts.shell_job,
            file_locks: opts.file_locks,
        };
        write_json(&opts.image_path.join(META_FILE), &meta)?;
        write_json(
            &opts.image_path.join(DESCRIPTORS_FILE),
            &stdio_descriptors(pid),
        )?;

        let req = CriuReq {
            r#type: CriuReqType::Dump as i32,
            opts: Some(criu_opts),
            ..Default::default()
        };
        let log = LogFile {
            dir: work_path.to_path_buf(),
            name: "dump.log".into(),
        };
        let id = self.id().to_string();
        criu.call("dump", req, &[], Some(&log), None, &mut |script, _, _| {
            log::debug!("container {id}: criu dump: {script}");
            Ok(())
        })?;
        if !opts.leave_running {
            // CRIU killed the tree; status() sees the dead init from now on.
            log::debug!(
                "container {id}: checkpointed to {}",
                opts.image_path.display()
            );
        }
        Ok(())
    }

    pub(crate) fn terminal(&self) -> bool {
        self.spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false)
    }

    /// Whether the spec joins an existing namespace of `kind` by path.
    pub(crate) fn joined_ns(&self, kind: LinuxNamespaceType) -> bool {
        joined_ns_path(&self.spec, kind).is_some()
    }

    fn has_cgroupns(&self) -> bool {
        self.spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::Cgroup))
    }

    /// The cgroup directory CRIU freezes: the freezer hierarchy's on v1, the cgroup on v2.
    pub(crate) fn freezer_dir(&self) -> Result<PathBuf> {
        let cfg = self.cgroup.config();
        let key = match cfg.hierarchy {
            Hierarchy::V1 => "freezer",
            Hierarchy::V2 => "unified",
        };
        cfg.dirs.get(key).cloned().ok_or_else(|| {
            ContainerError::Spec(format!(
                "container {}: no {key} cgroup to freeze for CRIU",
                self.id()
            ))
        })
    }
}

/// The path of a namespace of `kind` the spec joins, if any.
pub(crate) fn joined_ns_path(spec: &Spec, kind: LinuxNamespaceType) -> Option<PathBuf> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .and_then(|ns| ns.iter().find(|n| n.typ() == kind))
        .and_then(|n| n.path().clone())
        .filter(|p| !p.as_os_str().is_empty())
}

fn make_dir(path: &Path) -> Result<OwnedFd> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io_err(path))?;
    open_dir(path)
}

pub(crate) fn open_dir(path: &Path) -> Result<OwnedFd> {
    nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| io_err(path)(e.into()))
}

pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let data = serde_json::to_vec_pretty(value).map_err(|source| ContainerError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    fs::write(path, data).map_err(io_err(path))
}

/// The container's mounts as its init sees them (mount points relative to its root).
fn container_mounts(pid: Pid) -> Result<Vec<MountInfo>> {
    let path = PathBuf::from(format!("/proc/{}/mountinfo", pid.as_raw()));
    let text = fs::read_to_string(&path).map_err(io_err(&path))?;
    Ok(mountinfo::parse(&text))
}

fn ns_inode(pid: Pid, kind: &str) -> Result<u64> {
    let path = PathBuf::from(format!("/proc/{}/ns/{kind}", pid.as_raw()));
    let st = nix::sys::stat::stat(&path).map_err(|e| io_err(&path)(e.into()))?;
    Ok(st.st_ino)
}

/// Targets of the init's fds 0-2 ("pipe:[123]", "/dev/null", …); "" for a closed one.
fn stdio_descriptors(pid: Pid) -> Vec<String> {
    (0..3)
        .map(|fd| {
            fs::read_link(format!("/proc/{}/fd/{fd}", pid.as_raw()))
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect()
}

/// A bind mount of the spec: type "bind" or a bind/rbind option (runc's rule).
pub(crate) fn is_bind(m: &oci_spec::runtime::Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|o| o == "bind" || o == "rbind")
}

/// Bind mounts of the spec — and every mount at or below one of them, for rbinds — plus, on a
/// v1 host without a cgroup namespace, the hierarchies the engine bound under a "cgroup" mount.
/// The root mount is CRIU's `root` and never external.
pub(crate) fn external_mounts(
    spec: &Spec,
    mounts: &[MountInfo],
    cgroupns: bool,
) -> Vec<ExternalMount> {
    let binds: Vec<String> = spec
        .mounts()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|m| is_bind(m))
        .map(|m| crate::rootfs::safe_path::clean_path(m.destination()))
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let mut out = Vec::new();
    for mi in mounts {
        let point = mi.mount_point.to_string_lossy().into_owned();
        if point == "/" {
            continue;
        }
        // The innermost spec bind this mount sits at or under.
        let bind = binds
            .iter()
            .filter(|d| point == **d || point.starts_with(&format!("{d}/")))
            .max_by_key(|d| d.len());
        if let Some(dest) = bind {
            out.push(ExternalMount::Bind {
                key: point.clone(),
                destination: dest.clone(),
                below: point[dest.len()..].trim_start_matches('/').to_string(),
            });
        } else if mi.fs_type == "cgroup" && !cgroupns {
            let hierarchy = mi
                .super_options
                .iter()
                .filter(|o| !matches!(o.as_str(), "rw" | "ro"))
                .cloned()
                .collect::<Vec<_>>()
                .join(",");
            out.push(ExternalMount::CgroupV1 {
                key: point,
                hierarchy,
            });
        }
    }
    // A mount seen twice (stacked on one point) is one key for CRIU.
    out.dedup_by(|a, b| a.key() == b.key());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_with(mounts: serde_json::Value) -> Spec {
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.2.0",
            "root": {"path": "rootfs"},
            "mounts": mounts,
        }))
        .unwrap()
    }

    #[test]
    fn externals_are_spec_binds_their_submounts_and_v1_cgroups() {
        let spec = spec_with(serde_json::json!([
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/data", "type": "none", "source": "/srv/data", "options": ["rbind"]},
            {"destination": "/etc/hosts", "type": "bind", "source": "/etc/hosts"},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"},
        ]));
        let info = mountinfo::parse(
            "87 64 254:0 /b/rootfs / ro - ext4 /dev/vda rw\n\
             88 87 0:41 / /proc rw - proc proc rw\n\
             89 87 254:0 /srv/data /data rw - ext4 /dev/vda rw\n\
             90 89 0:50 / /data/sub rw - tmpfs tmpfs rw\n\
             91 87 254:0 /etc/hosts /etc/hosts rw - ext4 /dev/vda rw\n\
             94 87 0:46 / /sys/fs/cgroup ro - tmpfs tmpfs rw\n\
             95 94 0:29 /c1 /sys/fs/cgroup/cpu,cpuacct ro - cgroup cgroup rw,cpu,cpuacct\n\
             96 94 0:37 / /sys/fs/cgroup/systemd ro - cgroup cgroup rw,name=systemd\n",
        );
        let ext = external_mounts(&spec, &info, false);
        assert_eq!(
            ext,
            vec![
                ExternalMount::Bind {
                    key: "/data".into(),
                    destination: "/data".into(),
                    below: "".into()
                },
                ExternalMount::Bind {
                    key: "/data/sub".into(),
                    destination: "/data".into(),
                    below: "sub".into()
                },
                ExternalMount::Bind {
                    key: "/etc/hosts".into(),
                    destination: "/etc/hosts".into(),
                    below: "".into()
                },
                ExternalMount::CgroupV1 {
                    key: "/sys/fs/cgroup/cpu,cpuacct".into(),
                    hierarchy: "cpu,cpuacct".into()
                },
                ExternalMount::CgroupV1 {
                    key: "/sys/fs/cgroup/systemd".into(),
                    hierarchy: "name=systemd".into()
                },
            ]
        );
        // With a cgroup namespace the hierarchies are fresh mounts CRIU dumps itself.
        assert_eq!(external_mounts(&spec, &info, true).len(), 3);
        let json = serde_json::to_string(&ext[3]).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"cgroupV1","key":"/sys/fs/cgroup/cpu,cpuacct","hierarchy":"cpu,cpuacct"}"#
        );
    }

    #[test]
    fn cgroups_mode_names() {
        assert_eq!(CgroupsMode::parse("full").unwrap(), CgroupsMode::Full);
        let e = CgroupsMode::parse("hard").unwrap_err();
        assert!(e.contains("\"hard\"") && e.contains("soft"), "{e}");
    }
}
