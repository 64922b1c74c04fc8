//! Switching the process' root to the rootfs: the propagation and self-bind that come first,
//! pivot_root the runc way, MS_MOVE + chroot for --no-pivot, and the read-only root.

use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{self, OFlag};
use nix::mount::MntFlags;
use nix::sys::stat::Mode;
use nix::unistd;

use super::{mountinfo, sys, RootfsError};

fn io_errno(err: &std::io::Error) -> Errno {
    Errno::from_raw(err.raw_os_error().unwrap_or(libc::EIO))
}

/// In the container's own mount namespace, before the spec's mounts: the propagation of "/"
/// (rslave by default so nothing we mount reaches the host, or linux.rootfsPropagation, which
/// finalize_rootfs applies again to the new "/"); the mount holding the rootfs made private if
/// it is shared (pivot_root refuses a shared parent and the self-bind would propagate); then
/// the rootfs bound onto itself so it is a mount.
///
/// (r)unbindable is the exception: here it would make the mount holding the rootfs unbindable,
/// so the self-bind of a rootfs that is not a mount point failed with EINVAL ("runbindable"
/// also every bind source of the host). Setup then runs with the default rslave and only
/// finalize_rootfs makes the new "/" unbindable. The other values keep runc's order: "rshared"
/// must hold from the start so that bind mounts with "rshared" stay peers of their host source
/// (Kubernetes' bidirectional mount propagation).
pub(super) fn prepare_root(
    rootfs: &Path,
    propagation: Option<libc::c_ulong>,
) -> Result<(), RootfsError> {
    let flag = match propagation {
        Some(f) if f & libc::MS_UNBINDABLE == 0 => f,
        _ => libc::MS_SLAVE | libc::MS_REC,
    };
    sys::mount(None, Path::new("/"), None, flag, None)
        .map_err(|e| RootfsError::sys("linux.rootfsPropagation", "set propagation of", "/", e))?;
    let infos = mountinfo::read_self()
        .map_err(|e| RootfsError::sys("root.path", "read", "/proc/self/mountinfo", io_errno(&e)))?;
    if let Some(parent) = mountinfo::parent_mount(&infos, rootfs) {
        if parent.optional.iter().any(|o| o.starts_with("shared:")) {
            sys::mount(None, &parent.mount_point, None, libc::MS_PRIVATE, None).map_err(|e| {
                RootfsError::sys("root.path", "make private", &parent.mount_point, e)
            })?;
        }
    }
    bind_onto_itself(rootfs)
}

/// Without a mount namespace of its own, in the runtime's: only the rootfs bound onto itself
/// and that new mount (with the copies of mounts under it) made private, so the container's
/// mounts stay out of other namespaces. The propagation of "/" and of every other mount is left
/// as it is. (If the rootfs' parent mount is shared, the bind itself still reaches its peers,
/// as with runc and crun.)
pub(super) fn prepare_root_in_runtime_ns(rootfs: &Path) -> Result<(), RootfsError> {
    bind_onto_itself(rootfs)?;
    sys::mount(None, rootfs, None, libc::MS_PRIVATE | libc::MS_REC, None)
        .map_err(|e| RootfsError::sys("root.path", "make private", rootfs, e))
}

fn bind_onto_itself(rootfs: &Path) -> Result<(), RootfsError> {
    sys::mount(
        Some(rootfs),
        rootfs,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )
    .map_err(|e| RootfsError::sys("root.path", "bind-mount onto itself", rootfs, e))
}

fn open_dir(path: &Path) -> Result<std::os::fd::OwnedFd, RootfsError> {
    fcntl::open(
        path,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RootfsError::sys("root.path", "open", path, e))
}

/// pivot_root(".", ".") from inside the rootfs: the old root ends up stacked under the new
/// one; it is made rslave (so the unmount cannot propagate to the host) and lazily unmounted.
pub(super) fn pivot_root(rootfs: &Path) -> Result<(), RootfsError> {
    let old_root = open_dir(Path::new("/"))?;
    let new_root = open_dir(rootfs)?;
    unistd::fchdir(&new_root).map_err(|e| RootfsError::sys("root.path", "chdir", rootfs, e))?;
    unistd::pivot_root(".", ".")
        .map_err(|e| RootfsError::sys("root.path", "pivot_root", rootfs, e))?;
    // The kernel leaves "." as the old root, but only the fd says so for sure.
    unistd::fchdir(&old_root)
        .map_err(|e| RootfsError::sys("root.path", "chdir to old root", "/", e))?;
    sys::mount(
        None,
        Path::new("."),
        None,
        libc::MS_SLAVE | libc::MS_REC,
        None,
    )
    .map_err(|e| RootfsError::sys("root.path", "make old root rslave", "/", e))?;
    nix::mount::umount2(".", MntFlags::MNT_DETACH)
        .map_err(|e| RootfsError::sys("root.path", "unmount old root", "/", e))?;
    unistd::chdir("/").map_err(|e| RootfsError::sys("root.path", "chdir", "/", e))
}

/// --no-pivot: move the rootfs mount onto "/" and chroot. Full proc and sysfs mounts outside
/// the rootfs are unmounted (or covered) first: otherwise they would stay reachable and let
/// the container mount a fresh procfs despite masks (runc's msMoveRoot).
pub(super) fn ms_move_root(rootfs: &Path) -> Result<(), RootfsError> {
    unistd::chdir(rootfs).map_err(|e| RootfsError::sys("root.path", "chdir", rootfs, e))?;
    let infos = mountinfo::read_self()
        .map_err(|e| RootfsError::sys("root.path", "read", "/proc/self/mountinfo", io_errno(&e)))?;
    for mi in infos.iter().filter(|mi| {
        mi.root == Path::new("/")
            && (mi.fs_type == "proc" || mi.fs_type == "sysfs")
            && !mi.mount_point.starts_with(rootfs)
    }) {
        let p = &mi.mount_point;
        match sys::mount(None, p, None, libc::MS_SLAVE | libc::MS_REC, None) {
            Ok(()) => {}
            // A parent was already unmounted.
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(RootfsError::sys("root.path", "make rslave", p, e)),
        }
        match nix::mount::umount2(p, MntFlags::MNT_DETACH) {
            Ok(()) => {}
            Err(Errno::EINVAL | Errno::EPERM) => {
                sys::mount(Some(Path::new("tmpfs")), p, Some("tmpfs"), 0, None)
                    .map_err(|e| RootfsError::sys("root.path", "cover with tmpfs", p, e))?;
            }
            Err(e) => return Err(RootfsError::sys("root.path", "unmount", p, e)),
        }
    }
    sys::mount(Some(rootfs), Path::new("/"), None, libc::MS_MOVE, None)
        .map_err(|e| RootfsError::sys("root.path", "move mount onto /", rootfs, e))?;
    unistd::chroot(".").map_err(|e| RootfsError::sys("root.path", "chroot", rootfs, e))?;
    unistd::chdir("/").map_err(|e| RootfsError::sys("root.path", "chdir", "/", e))
}

/// Without a mount namespace: chroot into the rootfs (its self-bind), as runc and crun do;
/// pivot_root or MS_MOVE would change the runtime's own root.
pub(super) fn chroot_root(rootfs: &Path) -> Result<(), RootfsError> {
    let new_root = open_dir(rootfs)?;
    unistd::fchdir(&new_root).map_err(|e| RootfsError::sys("root.path", "chdir", rootfs, e))?;
    unistd::chroot(".").map_err(|e| RootfsError::sys("root.path", "chroot", rootfs, e))?;
    unistd::chdir("/").map_err(|e| RootfsError::sys("root.path", "chdir", "/", e))
}

/// root.readonly: remount "/" read-only, keeping its other flags when the kernel insists.
pub(super) fn set_readonly_root() -> Result<(), RootfsError> {
    let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY;
    let first = match sys::mount(None, Path::new("/"), None, flags, None) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    let root = open_dir(Path::new("/"))?;
    let current = sys::mount_flags_of(std::os::fd::AsFd::as_fd(&root))
        .map_err(|e| RootfsError::sys("root.readonly", "statfs", "/", e))?;
    sys::mount(None, Path::new("/"), None, flags | current, None).map_err(|e| {
        log::debug!("read-only remount of / failed ({first}), and with the current flags too");
        RootfsError::sys("root.readonly", "remount read-only", "/", e)
    })
}
