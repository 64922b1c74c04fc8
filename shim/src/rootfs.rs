//! The container's root filesystem as containerd hands it over: the snapshotter's mounts (an
//! overlay, or a bind of a single layer) mounted on `<bundle>/rootfs` by the shim, in the host's
//! namespaces, before the engine creates the container.
//!
//! containerd 2.x adds `uidmap=C:H:S[,…]` and `gidmap=…` to those mounts for a user-namespaced
//! pod (Kubernetes `hostUsers: false`; the overlay snapshotter's remap labels). They are not
//! kernel options: like containerd's own mount code (core/mount/mount_linux.go) the shim makes a
//! user namespace holding that mapping and id-maps the layers with mount_setattr
//! (MOUNT_ATTR_IDMAP), so a file the image owns as 0 is seen as the pod's root:
//! - overlay: the common parent of the lowerdirs is cloned, id-mapped and read-only, attached on
//!   a private dir of the bundle; overlay is mounted with its lowerdirs through it; then that
//!   helper mount is detached (overlay keeps its own references to the layers). The upperdir is
//!   not mapped: the snapshotter has chowned it to the mapped root.
//! - any other type (the single-layer "bind"): mounted as usual, then an id-mapped clone of it
//!   is stacked on the same target.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use containerd_shim::protos::api::Mount;
use log::warn;
use myrt_runtime::rootfs::sys::{self as mount_sys, MountAttr};
use myrt_runtime::rootfs::{userns_for, IdRange, IdmapSource};
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;

use crate::task::TaskError;

/// Where an overlay's id-mapped layers are attached while it is mounted (under the bundle).
const IDMAPPED_LOWER: &str = "idmapped-layers";

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error(
        "rootfs mount option {option:?}: {why} (containerd writes containerID:hostID:size, \
         comma-separated)"
    )]
    BadMapping { option: String, why: String },
    #[error(
        "rootfs mount options: {0} without {1}: containerd sends uidmap and gidmap together; \
         give both or neither"
    )]
    HalfMapping(&'static str, &'static str),
    #[error(
        "rootfs overlay with uidmap/gidmap: {0}; the lowerdirs must share a parent directory \
         other than / (the snapshotter's snapshots dir)"
    )]
    Lowerdirs(String),
    #[error("rootfs id-mapping {what} {path}: {why}")]
    Idmap {
        what: &'static str,
        path: PathBuf,
        why: String,
    },
}

/// The `uidmap=`/`gidmap=` options of one rootfs mount.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Remap {
    uid: Vec<IdRange>,
    gid: Vec<IdRange>,
}

/// `C:H:S[,C:H:S…]` as containerd writes it (core/mount/mount_idmapped_linux.go).
fn parse_ranges(option: &str, value: &str) -> Result<Vec<IdRange>, RootfsError> {
    let bad = |why: String| RootfsError::BadMapping {
        option: option.to_string(),
        why,
    };
    value
        .split(',')
        .map(|m| {
            let n: Vec<&str> = m.split(':').collect();
            let [c, h, s] = n.as_slice() else {
                return Err(bad(format!("{m:?} is not containerID:hostID:size")));
            };
            let num = |x: &str, name: &str| {
                x.parse::<u32>()
                    .map_err(|e| bad(format!("{name} {x:?} in {m:?}: {e}")))
            };
            let r = IdRange {
                container: num(c, "containerID")?,
                host: num(h, "hostID")?,
                size: num(s, "size")?,
            };
            if !r.fits() {
                return Err(bad(format!(
                    "{m:?}: size must be at least 1 and the range must stay below 2^32"
                )));
            }
            Ok(r)
        })
        .collect()
}

/// Splits the id-mapping options off a mount's options: the kernel's options, and the mapping.
fn split_remap(options: &[String]) -> Result<(Vec<String>, Option<Remap>), RootfsError> {
    let (mut uid, mut gid, mut rest) = (None, None, Vec::new());
    for o in options {
        if let Some(v) = o.strip_prefix("uidmap=") {
            uid = Some(parse_ranges(o, v)?);
        } else if let Some(v) = o.strip_prefix("gidmap=") {
            gid = Some(parse_ranges(o, v)?);
        } else {
            rest.push(o.clone());
        }
    }
    match (uid, gid) {
        (None, None) => Ok((rest, None)),
        (Some(uid), Some(gid)) => Ok((rest, Some(Remap { uid, gid }))),
        (Some(_), None) => Err(RootfsError::HalfMapping("uidmap", "gidmap")),
        (None, Some(_)) => Err(RootfsError::HalfMapping("gidmap", "uidmap")),
    }
}

/// The deepest directory holding every lowerdir (compared by path components).
fn common_parent(lowers: &[&str]) -> Result<PathBuf, RootfsError> {
    let mut common: Option<Vec<Component>> = None;
    for l in lowers {
        let comps: Vec<Component> = Path::new(l).components().collect();
        common = Some(match common {
            None => comps,
            Some(c) => c
                .iter()
                .zip(&comps)
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| *a)
                .collect(),
        });
    }
    let dir: PathBuf = common.unwrap_or_default().into_iter().collect();
    if !dir.is_absolute() || dir == Path::new("/") {
        return Err(RootfsError::Lowerdirs(format!(
            "lowerdirs {lowers:?} have no common parent"
        )));
    }
    Ok(dir)
}

fn idmap_err(what: &'static str, path: &Path, why: impl ToString) -> RootfsError {
    RootfsError::Idmap {
        what,
        path: path.to_path_buf(),
        why: why.to_string(),
    }
}

/// Attaches an id-mapped clone of `source` (with the mounts below it when `recursive`) on the
/// directory `target`; `read_only` makes the clone read-only too.
fn attach_idmapped(
    source: &Path,
    target: &Path,
    userns: &OwnedFd,
    recursive: bool,
    read_only: bool,
) -> Result<(), RootfsError> {
    let rec = if recursive {
        libc::AT_RECURSIVE as libc::c_uint
    } else {
        0
    };
    let tree = mount_sys::open_tree_clone(None, source, rec)
        .map_err(|e| idmap_err("open_tree", source, mount_sys::SysErr(e)))?;
    let attr = MountAttr {
        set: libc::MOUNT_ATTR_IDMAP
            | if read_only {
                libc::MOUNT_ATTR_RDONLY
            } else {
                0
            },
        clear: 0,
    };
    mount_sys::mount_setattr(tree.as_fd(), attr, recursive, Some(userns.as_fd())).map_err(|e| {
        let why = match e {
            nix::errno::Errno::EINVAL => format!(
                "{}: its filesystem (or this kernel) does not support id-mapped mounts",
                mount_sys::SysErr(e)
            ),
            e => mount_sys::SysErr(e).to_string(),
        };
        idmap_err("mount_setattr(MOUNT_ATTR_IDMAP) on", source, why)
    })?;
    let dir = open(
        target,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )
    .map_err(|e| idmap_err("open", target, mount_sys::SysErr(e)))?;
    mount_sys::move_mount(tree.as_fd(), dir.as_fd())
        .map_err(|e| idmap_err("move_mount onto", target, mount_sys::SysErr(e)))
}

/// One mount through the containerd-shim crate (flags, data, long overlay options).
fn plain_mount(ty: &str, source: &str, options: &[String], target: &Path) -> Result<(), String> {
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let (ty, src, options, t) = (opt(ty), opt(source), options.to_vec(), target.to_path_buf());
    // A thread of its own: for long overlay options the crate unshares CLONE_FS and chdirs,
    // which must not stick to a pool thread of the shim.
    std::thread::spawn(move || {
        containerd_shim::mount::mount_rootfs(ty.as_deref(), src.as_deref(), &options, &t)
            .map_err(|e| e.to_string())
    })
    .join()
    .map_err(|_| "mount thread panicked".to_string())?
}

/// An overlay whose lowerdirs are seen through one id-mapped, read-only clone of their common
/// parent, attached on `<bundle>/idmapped-layers` for the time of the mount.
fn mount_overlay_remapped(
    m: &Mount,
    options: &[String],
    userns: &OwnedFd,
    target: &Path,
    bundle: &Path,
) -> Result<(), TaskError> {
    let at = options.iter().position(|o| o.starts_with("lowerdir="));
    let Some(at) = at else {
        return Err(RootfsError::Lowerdirs("no lowerdir= option".into()).into());
    };
    let lowers: Vec<&str> = options[at]["lowerdir=".len()..].split(':').collect();
    let parent = common_parent(&lowers)?;
    let helper = bundle.join(IDMAPPED_LOWER);
    std::fs::create_dir_all(&helper).map_err(|e| idmap_err("create", &helper, e))?;
    let mapped = attach_idmapped(&parent, &helper, userns, false, true).map(|()| {
        let rewritten: Vec<String> = lowers
            .iter()
            .map(|l| {
                let rel = Path::new(l).strip_prefix(&parent).unwrap_or(Path::new(""));
                helper.join(rel).to_string_lossy().into_owned()
            })
            .collect();
        let mut opts = options.to_vec();
        opts[at] = format!("lowerdir={}", rewritten.join(":"));
        opts
    });
    let result = match mapped {
        Ok(opts) => plain_mount(&m.type_, &m.source, &opts, target).map_err(|e| {
            TaskError::Mount(format!(
                "{} {:?} on {} (lowerdirs id-mapped through {}): {e}",
                m.type_,
                m.source,
                target.display(),
                helper.display()
            ))
        }),
        Err(e) => Err(e.into()),
    };
    // The overlay holds its own references to the layers: the helper mount can go at once.
    if let Err(e) = nix::mount::umount2(&helper, nix::mount::MntFlags::MNT_DETACH) {
        if e != nix::errno::Errno::EINVAL {
            warn!("detach {}: {e}", helper.display());
        }
    }
    if let Err(e) = std::fs::remove_dir(&helper) {
        warn!("remove {}: {e}", helper.display());
    }
    result
}

/// Mounts one of containerd's rootfs mounts on `target`, id-mapped when it asks for it.
fn mount_one(m: &Mount, target: &Path, bundle: &Path) -> Result<(), TaskError> {
    let (options, remap) = split_remap(&m.options)?;
    let mount_err = |e: String| {
        TaskError::Mount(format!(
            "{} {:?} on {}: {e}",
            m.type_,
            m.source,
            target.display()
        ))
    };
    let Some(remap) = remap else {
        return plain_mount(&m.type_, &m.source, &options, target).map_err(mount_err);
    };
    let userns = userns_for(&IdmapSource::Maps {
        uid: remap.uid,
        gid: remap.gid,
    })
    .map_err(|why| idmap_err("make a user namespace for", target, why))?;
    if m.type_ == "overlay" {
        return mount_overlay_remapped(m, &options, &userns, target, bundle);
    }
    plain_mount(&m.type_, &m.source, &options, target).map_err(mount_err)?;
    let recursive = options.iter().any(|o| o == "rbind");
    // The clone keeps the flags of the mount it copies ("ro" stays read-only).
    attach_idmapped(target, target, &userns, recursive, false).map_err(TaskError::from)
}

/// Mounts containerd's rootfs mounts (e.g. an overlay) on `<bundle>/rootfs`, in order.
/// Returns whether anything was mounted.
pub async fn mount_rootfs(bundle: &Path, mounts: &[Mount]) -> Result<bool, TaskError> {
    if mounts.is_empty() {
        return Ok(false);
    }
    let target = bundle.join("rootfs");
    let (mounts, t, b) = (mounts.to_vec(), target.clone(), bundle.to_path_buf());
    let result = tokio::task::spawn_blocking(move || -> Result<(), TaskError> {
        use std::os::unix::fs::DirBuilderExt;
        if !t.is_dir() {
            std::fs::DirBuilder::new()
                .mode(0o711)
                .create(&t)
                .map_err(|e| TaskError::Mount(format!("create {}: {e}", t.display())))?;
        }
        mounts.iter().try_for_each(|m| mount_one(m, &t, &b))
    })
    .await
    .map_err(|e| TaskError::Internal(format!("mount rootfs: {e}")))?;
    if let Err(e) = result {
        unmount_rootfs(bundle).await;
        return Err(e);
    }
    Ok(true)
}

/// Unmounts everything on `<bundle>/rootfs` (lazily when busy); logs failures.
pub async fn unmount_rootfs(bundle: &Path) {
    let target = bundle.join("rootfs");
    let _ = tokio::task::spawn_blocking(move || unmount_rootfs_blocking(&target)).await;
}

/// Unmounts everything on `target`, stacked mounts included (lazily when busy).
pub fn unmount_rootfs_blocking(target: &Path) {
    let Some(t) = target.to_str() else {
        warn!("rootfs {}: not UTF-8, left mounted", target.display());
        return;
    };
    if let Err(e) = containerd_shim::mount::umount_recursive(Some(t), 0) {
        warn!("unmount {t}: {e}; detaching it");
        if let Err(e) = containerd_shim::mount::umount_recursive(Some(t), libc::MNT_DETACH) {
            warn!("detach {t}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn remap_options_are_split_off() {
        let (rest, remap) = split_remap(&opts(&[
            "index=off",
            "uidmap=0:524288:65536",
            "gidmap=0:524288:65536,65536:10:1",
            "lowerdir=/a:/b",
        ]))
        .unwrap();
        assert_eq!(rest, opts(&["index=off", "lowerdir=/a:/b"]));
        let r = |container, host, size| IdRange {
            container,
            host,
            size,
        };
        assert_eq!(
            remap,
            Some(Remap {
                uid: vec![r(0, 524288, 65536)],
                gid: vec![r(0, 524288, 65536), r(65536, 10, 1)],
            })
        );
        let (rest, remap) = split_remap(&opts(&["ro", "rbind"])).unwrap();
        assert_eq!((rest, remap), (opts(&["ro", "rbind"]), None));
    }

    #[test]
    fn bad_mappings_are_named() {
        for (o, want) in [
            ("uidmap=0:1", "\"0:1\" is not containerID:hostID:size"),
            ("uidmap=0:x:1", "hostID \"x\""),
            ("uidmap=0:1:0", "size must be at least 1"),
            ("uidmap=4294967295:1:2", "below 2^32"),
        ] {
            let err = split_remap(&opts(&[o, "gidmap=0:1:1"]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(o) && err.contains(want), "{o}: {err}");
        }
        let err = split_remap(&opts(&["uidmap=0:1:1"])).unwrap_err();
        assert!(err.to_string().contains("uidmap without gidmap"), "{err}");
    }

    #[test]
    fn lowerdirs_share_the_snapshots_dir() {
        let p = common_parent(&["/s/snapshots/12/fs", "/s/snapshots/1/fs"]).unwrap();
        assert_eq!(p, Path::new("/s/snapshots"));
        let p = common_parent(&["/s/snapshots/12/fs"]).unwrap();
        assert_eq!(p, Path::new("/s/snapshots/12/fs"));
        let err = common_parent(&["/a/fs", "/b/fs"]).unwrap_err();
        assert!(err.to_string().contains("no common parent"), "{err}");
    }
}
