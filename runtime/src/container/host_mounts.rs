//! A container without a mount namespace of its own (linux.namespaces lists none, so it inherits
//! the runtime's) makes its mounts in the runtime's mount namespace: the rootfs bound onto
//! itself, the spec's mounts, masked and read-only paths under it, and whatever its processes
//! mount there later. `create` notes which mount the rootfs path showed before; `delete` (and a
//! failed `create`) detaches everything stacked there since, deepest first, so nothing stays
//! behind in the runtime's namespace (runc leaves these mounts there).

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MntFlags;
use nix::sys::stat::Mode;
use serde::{Deserialize, Serialize};

use crate::rootfs::{mountinfo, sys, RootDir};

/// Rounds of unmounting before giving up: each round detaches the top mount on the rootfs with
/// everything under it, so more than one is only needed for mounts stacked on the rootfs.
const MAX_ROUNDS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum HostMountError {
    #[error("root.path {path:?}: {op}: {source}")]
    Sys {
        op: &'static str,
        path: PathBuf,
        source: Errno,
    },
    #[error("root.path {path:?}: {op}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("root.path {path:?}: {source}")]
    Root {
        path: PathBuf,
        source: crate::rootfs::SafePathError,
    },
    #[error(
        "root.path {0:?}: the kernel does not report mount ids (statx STATX_MNT_ID, Linux 5.8+), \
         which a container without a mount namespace needs so delete can unmount its mounts; \
         add {{\"type\": \"mount\"}} to linux.namespaces"
    )]
    NoMountId(PathBuf),
    #[error(
        "root.path {path:?}: still shows mount {top} after {MAX_ROUNDS} rounds of unmounting \
         (the rootfs showed mount {base} before create); unmount it by hand"
    )]
    StillMounted { path: PathBuf, top: u64, base: u64 },
}

type Result<T> = std::result::Result<T, HostMountError>;

/// What `delete` needs to take a container's mounts out of the runtime's mount namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeNsMounts {
    /// Inode of the runtime's mount namespace at create (/proc/self/ns/mnt): mount ids of
    /// another namespace mean nothing.
    pub mnt_ns: u64,
    /// The id of the mount the rootfs path showed before create; it stays.
    pub base_mount_id: u64,
}

impl RuntimeNsMounts {
    /// Notes the mount namespace and the mount the rootfs shows now, before anything is mounted.
    pub fn note(rootfs: &Path) -> Result<RuntimeNsMounts> {
        let fd = open_path(rootfs)?;
        let base_mount_id = mount_id_of(&fd, rootfs)?;
        Ok(RuntimeNsMounts {
            mnt_ns: current_mnt_ns()?,
            base_mount_id,
        })
    }

    /// Detaches every mount stacked on or under `rootfs` since [`RuntimeNsMounts::note`]:
    /// the submounts of the top one deepest first, then the top one, until the rootfs shows the
    /// noted mount again. Each is resolved inside the rootfs and unmounted through its fd only
    /// if it is the very mount mountinfo lists (MNT_DETACH: busy ones go once unused). Returns
    /// how many were unmounted. From another mount namespace nothing can be done: says so in
    /// the log and returns 0.
    pub fn release(&self, rootfs: &Path) -> Result<usize> {
        let ns = current_mnt_ns()?;
        if ns != self.mnt_ns {
            log::warn!(
                "{}: the container's mounts were made in mount namespace {}, this is {ns}: \
                 they are left for that namespace",
                rootfs.display(),
                self.mnt_ns
            );
            return Ok(0);
        }
        let mut count = 0;
        for _ in 0..MAX_ROUNDS {
            let top_fd = match open_path(rootfs) {
                Ok(fd) => fd,
                // The rootfs is gone: so is anything that was mounted on it.
                Err(HostMountError::Sys {
                    source: Errno::ENOENT,
                    ..
                }) => return Ok(count),
                Err(e) => return Err(e),
            };
            let top = mount_id_of(&top_fd, rootfs)?;
            if top == self.base_mount_id {
                return Ok(count);
            }
            count += detach_submounts(rootfs, top)?;
            detach(&top_fd, rootfs)?;
            count += 1;
        }
        let top = mount_id_of(&open_path(rootfs)?, rootfs)?;
        if top == self.base_mount_id {
            return Ok(count);
        }
        Err(HostMountError::StillMounted {
            path: rootfs.to_path_buf(),
            top,
            base: self.base_mount_id,
        })
    }
}

/// The mounts under mount `top` (not `top` itself), deepest first, each unmounted if the path
/// mountinfo gives still leads to it inside the rootfs. Failures are logged: detaching `top`
/// afterwards takes whatever is left with it.
fn detach_submounts(rootfs: &Path, top: u64) -> Result<usize> {
    let table = mount_table()?;
    let mut subtree = subtree_of(&table, top);
    subtree.sort_by_key(|s| std::cmp::Reverse(s.depth));
    let root = RootDir::new(rootfs).map_err(|source| HostMountError::Root {
        path: rootfs.to_path_buf(),
        source,
    })?;
    let mut count = 0;
    for m in subtree {
        let Ok(rel) = m.mount_point.strip_prefix(rootfs) else {
            continue;
        };
        let Ok(fd) = root.open(rel, OFlag::O_PATH | OFlag::O_NOFOLLOW) else {
            continue;
        };
        // Hidden by a mount over a parent directory, or already gone with one: not this path.
        if sys::mount_id(fd.as_fd()).ok().flatten() != Some(m.id) {
            continue;
        }
        match detach(&fd, &m.mount_point) {
            Ok(()) => count += 1,
            Err(e) => log::warn!("unmount a container mount: {e}"),
        }
    }
    Ok(count)
}

/// Lazily unmounts the mount `fd` is the root of, through /proc/self/fd so no path is walked
/// again.
fn detach(fd: &OwnedFd, path: &Path) -> Result<()> {
    let proc_path = sys::proc_fd_path(fd.as_fd());
    nix::mount::umount2(&proc_path, MntFlags::MNT_DETACH).map_err(|source| HostMountError::Sys {
        op: "unmount",
        path: path.to_path_buf(),
        source,
    })
}

fn open_path(path: &Path) -> Result<OwnedFd> {
    nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|source| HostMountError::Sys {
        op: "open",
        path: path.to_path_buf(),
        source,
    })
}

fn mount_id_of(fd: &OwnedFd, path: &Path) -> Result<u64> {
    sys::mount_id(fd.as_fd())
        .map_err(|source| HostMountError::Sys {
            op: "statx",
            path: path.to_path_buf(),
            source,
        })?
        .ok_or_else(|| HostMountError::NoMountId(path.to_path_buf()))
}

fn current_mnt_ns() -> Result<u64> {
    let path = Path::new("/proc/self/ns/mnt");
    std::fs::metadata(path)
        .map(|m| m.ino())
        .map_err(|source| HostMountError::Io {
            op: "stat",
            path: path.to_path_buf(),
            source,
        })
}

/// One line of /proc/self/mountinfo: the ids and where it is mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    id: u64,
    parent: u64,
    mount_point: PathBuf,
}

/// A mount under the top one, with its distance from it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sub {
    id: u64,
    depth: usize,
    mount_point: PathBuf,
}

fn mount_table() -> Result<Vec<Entry>> {
    let path = Path::new("/proc/self/mountinfo");
    let text = std::fs::read_to_string(path).map_err(|source| HostMountError::Io {
        op: "read",
        path: path.to_path_buf(),
        source,
    })?;
    Ok(parse_table(&text))
}

fn parse_table(text: &str) -> Vec<Entry> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let id = fields.next()?.parse().ok()?;
            let parent = fields.next()?.parse().ok()?;
            // The mount point unescaped the way the shared parser does it.
            let mount_point = mountinfo::parse(line).pop()?.mount_point;
            Some(Entry {
                id,
                parent,
                mount_point,
            })
        })
        .collect()
}

/// Every mount below `top` in the mount tree (children, their children…), with depths.
fn subtree_of(table: &[Entry], top: u64) -> Vec<Sub> {
    let mut children: HashMap<u64, Vec<&Entry>> = HashMap::new();
    for e in table.iter().filter(|e| e.id != e.parent) {
        children.entry(e.parent).or_default().push(e);
    }
    let mut out = Vec::new();
    let mut queue = vec![(top, 0usize)];
    while let Some((id, depth)) = queue.pop() {
        for c in children.get(&id).into_iter().flatten() {
            // mountinfo cannot hold a cycle, but a bound walk costs nothing.
            if out.len() > table.len() {
                return out;
            }
            out.push(Sub {
                id: c.id,
                depth: depth + 1,
                mount_point: c.mount_point.clone(),
            });
            queue.push((c.id, depth + 1));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
100 27 254:0 /b/rootfs /b/rootfs rw,relatime - ext4 /dev/vda rw
101 100 0:50 / /b/rootfs/proc rw - proc proc rw
102 100 0:51 / /b/rootfs/dev rw - tmpfs tmpfs rw
103 102 0:52 / /b/rootfs/dev/pts rw - devpts devpts rw
104 101 0:3 /null /b/rootfs/proc/kcore rw - devtmpfs udev rw
200 27 0:60 / /other\\040dir rw - tmpfs tmpfs rw
";

    #[test]
    fn table_has_ids_and_unescaped_mount_points() {
        let t = parse_table(TABLE);
        assert_eq!(t.len(), 7);
        assert_eq!((t[1].id, t[1].parent), (100, 27));
        assert_eq!(t[6].mount_point, Path::new("/other dir"));
    }

    #[test]
    fn subtree_holds_only_mounts_below_the_top_with_depths() {
        let t = parse_table(TABLE);
        let mut sub = subtree_of(&t, 100);
        sub.sort_by_key(|s| s.id);
        let got: Vec<(u64, usize)> = sub.iter().map(|s| (s.id, s.depth)).collect();
        assert_eq!(got, [(101, 1), (102, 1), (103, 2), (104, 2)]);
        assert!(subtree_of(&t, 200).is_empty());
    }
}
