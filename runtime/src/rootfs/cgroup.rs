//! The "cgroup" mount type. On a cgroup v2 host: a cgroup2 mount (a bind of the hierarchy when
//! the kernel refuses, as in a user namespace without a cgroup namespace). On a v1 host: runc's
//! mountCgroupV1, a tmpfs with one entry per v1 hierarchy, each a bind of the container's own
//! cgroup directory (or, with a cgroup namespace, a fresh cgroup mount of that hierarchy), plus
//! symlinks for co-mounted controllers ("cpu" -> "cpu,cpuacct").

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;

use super::mounts::{remount_readonly, Entry, Mounter};
use super::options::MountOptions;
use super::{mountinfo, sys, RootfsError};

/// nosuid, noexec, nodev: what runc gives the cgroup tmpfs and cgroup mounts.
const DEFAULT_FLAGS: libc::c_ulong = libc::MS_NOEXEC | libc::MS_NOSUID | libc::MS_NODEV;

/// One line of /proc/self/cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct OwnCgroup {
    /// "cpu", "cpuacct", "name=systemd"; empty for the v2 line.
    pub controllers: Vec<String>,
    pub path: PathBuf,
}

/// Parses /proc/<pid>/cgroup ("4:cpu,cpuacct:/a/b", "0::/c").
pub(super) fn parse_proc_cgroup(text: &str) -> Vec<OwnCgroup> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            let ctls = parts.next()?;
            let path = parts.next()?;
            Some(OwnCgroup {
                controllers: ctls
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect(),
                path: PathBuf::from(path),
            })
        })
        .collect()
}

fn read_own(field: &str) -> Result<Vec<OwnCgroup>, RootfsError> {
    std::fs::read_to_string("/proc/self/cgroup")
        .map(|t| parse_proc_cgroup(&t))
        .map_err(|err| RootfsError::sys(field, "read", "/proc/self/cgroup", io_errno(&err)))
}

fn io_errno(err: &std::io::Error) -> Errno {
    Errno::from_raw(err.raw_os_error().unwrap_or(libc::EIO))
}

pub(super) fn mount_cgroup(m: &Mounter, e: &Entry) -> Result<(), RootfsError> {
    let fs = nix::sys::statfs::statfs("/sys/fs/cgroup")
        .map_err(|err| RootfsError::sys(e.at(), "statfs", "/sys/fs/cgroup", err))?
        .filesystem_type();
    if fs == sys::CGROUP2_SUPER_MAGIC {
        mount_v2(m, e)
    } else {
        mount_v1(m, e)
    }
}

fn mount_v2(m: &Mounter, e: &Entry) -> Result<(), RootfsError> {
    let mut v2 = e.clone();
    v2.fstype = "cgroup2".into();
    match m.mount_generic(&v2) {
        Err(err) if matches!(err.errno(), Some(Errno::EPERM | Errno::EBUSY)) => {
            // A user namespace without its own cgroup namespace may not mount cgroup2.
            let source = if m.cgroupns {
                let own = read_own(&e.at())?;
                let path = own
                    .iter()
                    .find(|c| c.controllers.is_empty())
                    .map(|c| c.path.clone())
                    .unwrap_or_else(|| PathBuf::from("/"));
                Path::new("/sys/fs/cgroup").join(path.strip_prefix("/").unwrap_or(&path))
            } else {
                PathBuf::from("/sys/fs/cgroup")
            };
            log::debug!(
                "{}: cgroup2 mount refused ({err}); binding {source:?}",
                e.at()
            );
            let mut bind = e.clone();
            bind.fstype = "bind".into();
            bind.source = Some(source);
            bind.opts.flags |= libc::MS_BIND;
            bind.opts.data.clear();
            m.mount_bind(&bind)
        }
        other => other,
    }
}

fn mount_v1(m: &Mounter, e: &Entry) -> Result<(), RootfsError> {
    let infos = mountinfo::read_self()
        .map_err(|err| RootfsError::sys(e.at(), "read", "/proc/self/mountinfo", io_errno(&err)))?;
    let own = read_own(&e.at())?;
    let base = Entry {
        field: e.field.clone(),
        dest: e.dest.clone(),
        fstype: "tmpfs".into(),
        source: Some(PathBuf::from("tmpfs")),
        opts: MountOptions {
            flags: DEFAULT_FLAGS,
            data: vec!["mode=755".into()],
            propagation: e.opts.propagation.clone(),
            ..MountOptions::default()
        },
    };
    m.mount_tmpfs(&base)?;

    let mut seen = HashSet::new();
    let mut merged = Vec::new();
    for mi in infos.iter().filter(|mi| mi.fs_type == "cgroup") {
        let Some(name) = mi.mount_point.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !seen.insert(name.to_string()) {
            continue;
        }
        let hier = own
            .iter()
            .find(|c| {
                c.controllers
                    .iter()
                    .any(|ctl| mi.super_options.contains(ctl))
            })
            .ok_or_else(|| {
                RootfsError::invalid(
                    e.at(),
                    format!(
                        "the cgroup v1 hierarchy at {:?} has no line in /proc/self/cgroup",
                        mi.mount_point
                    ),
                )
            })?;
        let dest = e.dest.join(name);
        let sub = if m.cgroupns {
            let named = hier.controllers.iter().any(|c| c.starts_with("name="));
            Entry {
                field: e.field.clone(),
                dest,
                fstype: "cgroup".into(),
                source: Some(PathBuf::from(if named { "systemd" } else { "cgroup" })),
                opts: MountOptions {
                    flags: DEFAULT_FLAGS | (e.opts.flags & libc::MS_RDONLY),
                    data: vec![hier.controllers.join(",")],
                    propagation: e.opts.propagation.clone(),
                    ..MountOptions::default()
                },
            }
        } else {
            let rel = hier.path.strip_prefix(&mi.root).map_err(|_| {
                RootfsError::invalid(
                    e.at(),
                    format!(
                        "the container's cgroup {:?} is outside the hierarchy root {:?} mounted at {:?}",
                        hier.path, mi.root, mi.mount_point
                    ),
                )
            })?;
            Entry {
                field: e.field.clone(),
                dest,
                fstype: "bind".into(),
                source: Some(mi.mount_point.join(rel)),
                opts: MountOptions {
                    flags: libc::MS_BIND | libc::MS_REC | e.opts.flags,
                    cleared: e.opts.cleared,
                    propagation: e.opts.propagation.clone(),
                    ..MountOptions::default()
                },
            }
        };
        if sub.fstype == "bind" {
            m.mount_bind(&sub)?;
        } else {
            m.mount_generic(&sub)?;
        }
        if name.contains(',') {
            merged.push(name.to_string());
        }
    }
    if !merged.is_empty() {
        let dir = m
            .root
            .open(&e.dest, OFlag::O_PATH | OFlag::O_DIRECTORY)
            .map_err(|err| RootfsError::path(e.at(), err))?;
        for mc in &merged {
            for ctl in mc.split(',') {
                match nix::unistd::symlinkat(mc.as_str(), &dir, ctl) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(err) => {
                        return Err(RootfsError::sys(e.at(), "symlink", e.dest.join(ctl), err))
                    }
                }
            }
        }
    }
    if e.opts.flags & libc::MS_RDONLY != 0 {
        remount_readonly(m.root, &e.at(), &e.dest, DEFAULT_FLAGS)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_self_cgroup() {
        let own = parse_proc_cgroup("9:name=systemd:/\n4:cpu,cpuacct:/a/b\n0::/c\n");
        assert_eq!(own.len(), 3);
        assert_eq!(own[0].controllers, vec!["name=systemd"]);
        assert_eq!(own[1].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(own[1].path, Path::new("/a/b"));
        assert!(own[2].controllers.is_empty());
        assert_eq!(own[2].path, Path::new("/c"));
    }
}
