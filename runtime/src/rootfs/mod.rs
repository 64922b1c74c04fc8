//! The container's root filesystem: mounts, /dev, pivot_root, masked and read-only paths.
//!
//! Runs inside the container's init ("stage 2"): a single-threaded process already in the
//! container's mount namespace (and its other namespaces and cgroup). The order follows runc's
//! libcontainer/rootfs_linux.go:
//!
//! 1. [`prepare_rootfs`]: propagation of `/`, the rootfs bound onto itself, every spec mount in
//!    order, then /dev nodes and symlinks (unless /dev is a bind mount).
//! 2. (the caller runs createContainer hooks here, with the host's root still visible)
//! 3. [`enter_rootfs`]: pivot_root (or MS_MOVE + chroot), then chdir("/").
//! 4. (the caller sets up the console, hostname, sysctls)
//! 5. [`finalize_rootfs`]: read-only and masked paths, read-only remounts, read-only root,
//!    linux.rootfsPropagation on the new `/`.
//!
//! A container without a mount namespace of its own (the spec lists none, so it inherits the
//! runtime's, as runc and crun allow) gets its mounts in the runtime's namespace: there only the
//! rootfs' self-bind and what lies under it are touched (never the propagation of `/`), step 3
//! is a chroot, and `delete` unmounts them again (container/host_mounts.rs).
//!
//! Every path inside the rootfs goes through [`RootDir`] (openat2 RESOLVE_IN_ROOT or a checked
//! walk) and every mount targets `/proc/self/fd/N` of a checked fd.

mod cgroup;
mod copyup;
mod devices;
mod error;
mod idmap;
mod masked;
pub use crate::utils::mountinfo;
mod mounts;
mod options;
mod pivot;
pub mod safe_path;
pub mod sys;

#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;

use std::path::Path;

use oci_spec::runtime::{LinuxNamespaceType, Mount, Spec};

pub use error::RootfsError;
pub use idmap::{prepare_bind_trees, userns_for, IdRange, IdmapSource};
pub use options::{parse_mount_options, parse_propagation, MountOptions, OptionError};
pub use safe_path::{check_procfs, clean_path, open_procfs, RootDir, SafePathError};

/// What the rootfs functions need to know.
pub struct RootfsConfig<'a> {
    pub spec: &'a Spec,
    /// Absolute, canonical host path of the rootfs directory.
    pub rootfs: &'a Path,
    /// Absolute bundle directory: relative bind-mount sources are resolved against it (runc
    /// runs in the bundle directory, so its relative sources are bundle-relative too).
    pub bundle: &'a Path,
    /// MS_MOVE + chroot instead of pivot_root (runc --no-pivot).
    pub no_pivot: bool,
    /// The container has its own user namespace: devices are bind-mounted from the host
    /// instead of created with mknod.
    pub in_user_ns: bool,
}

impl RootfsConfig<'_> {
    fn mounts(&self) -> &[Mount] {
        self.spec.mounts().as_deref().unwrap_or(&[])
    }

    /// False when the container shares the runtime's mount namespace (none listed).
    fn own_mount_ns(&self) -> bool {
        self.has_namespace(LinuxNamespaceType::Mount)
    }

    fn has_namespace(&self, typ: LinuxNamespaceType) -> bool {
        self.spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|ns| ns.iter().any(|n| n.typ() == typ))
    }

    /// linux.rootfsPropagation as MS_* flags (`None` when unset).
    fn rootfs_propagation(&self) -> Result<Option<libc::c_ulong>, RootfsError> {
        let value = match self
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.rootfs_propagation().as_ref())
        {
            Some(v) if !v.is_empty() => v,
            _ => return Ok(None),
        };
        parse_propagation(value).map(Some).ok_or_else(|| {
            RootfsError::invalid(
                "linux.rootfsPropagation",
                format!("unknown value {value:?}: use one of private, rprivate, slave, rslave, shared, rshared, unbindable, runbindable"),
            )
        })
    }

    /// /dev is set up by us unless a spec mount binds something onto it.
    fn needs_dev_setup(&self) -> bool {
        !self.mounts().iter().any(|m| {
            let bind = m.typ().as_deref() == Some("bind")
                || m.options()
                    .as_ref()
                    .is_some_and(|o| o.iter().any(|x| x == "bind" || x == "rbind"));
            bind && clean_path(m.destination()) == Path::new("/dev")
        })
    }
}

/// Mounts and devices, in runc's order, before pivot_root: root propagation (rslave by
/// default, or linux.rootfsPropagation except the unbindable ones, see pivot::prepare_root),
/// the rootfs bound onto itself, every spec mount, then /dev nodes, /dev/ptmx and the /dev
/// symlinks (unless /dev is bind-mounted). Without a mount namespace of its own only the
/// rootfs' self-bind is made private and "/" is left alone.
pub fn prepare_rootfs(cfg: &RootfsConfig) -> Result<(), RootfsError> {
    let propagation = cfg.rootfs_propagation()?;
    if cfg.own_mount_ns() {
        pivot::prepare_root(cfg.rootfs, propagation)?;
    } else {
        // (create warns about it; here it would reach the container's stderr)
        log::debug!(
            "no mount namespace: mounting in the runtime's, under {}",
            cfg.rootfs.display()
        );
        pivot::prepare_root_in_runtime_ns(cfg.rootfs)?;
    }
    // Mount targets are /proc/self/fd/N paths: make sure /proc is the real thing.
    open_procfs().map_err(|e| RootfsError::path("/proc", e))?;
    // Opened after the self-bind, so paths through it land on the new mount.
    let root = RootDir::new(cfg.rootfs).map_err(|e| RootfsError::path("root.path", e))?;
    let mounter = mounts::Mounter::new(cfg, &root);
    for (index, m) in cfg.mounts().iter().enumerate() {
        mounter.mount_spec(index, m)?;
    }
    // Which mount /proc is, for finalize_rootfs (CVE-2019-19921, CVE-2023-27561).
    masked::record_proc_mount(cfg, &root)?;
    if cfg.needs_dev_setup() {
        devices::setup_dev(cfg, &root)?;
    }
    Ok(())
}

/// Makes the rootfs the process' root: pivot_root(".", ".") and a lazy unmount of the old
/// root (made rslave first), or with `no_pivot` MS_MOVE + chroot, or without a mount
/// namespace of its own a chroot (whatever `no_pivot` says: both others would change the
/// runtime's root). Ends in "/". Then, as runc does, points stdio that was the host's
/// /dev/null at the container's one and creates process.cwd.
pub fn enter_rootfs(cfg: &RootfsConfig) -> Result<(), RootfsError> {
    if !cfg.own_mount_ns() {
        pivot::chroot_root(cfg.rootfs)?;
    } else if cfg.no_pivot {
        pivot::ms_move_root(cfg.rootfs)?;
    } else {
        pivot::pivot_root(cfg.rootfs)?;
    }
    let root = RootDir::new(Path::new("/")).map_err(|e| RootfsError::path("root.path", e))?;
    if cfg.needs_dev_setup() {
        devices::reopen_dev_null(&root)?;
    }
    if let Some(cwd) = cfg.spec.process().as_ref().map(|p| p.cwd()) {
        if !cwd.as_os_str().is_empty() {
            root.mkdir_all(cwd, 0o755)
                .map_err(|e| RootfsError::path("process.cwd", e))?;
        }
    }
    Ok(())
}

/// After pivot_root: read-only paths, masked paths (/dev/null checked to be char 1:3 first,
/// CVE-2025-31133), read-only remounts of tmpfs and /dev mounts that asked for "ro", the
/// read-only root and linux.rootfsPropagation on "/". (The umask is the process setup's job.)
/// "/" is the rootfs' mount here, also after the chroot of a container without a mount
/// namespace (its self-bind), so nothing outside the rootfs changes.
pub fn finalize_rootfs(cfg: &RootfsConfig) -> Result<(), RootfsError> {
    let root = RootDir::new(Path::new("/")).map_err(|e| RootfsError::path("root.path", e))?;
    let linux = cfg.spec.linux().as_ref();
    let readonly = linux
        .and_then(|l| l.readonly_paths().as_deref())
        .unwrap_or(&[]);
    let masked = linux
        .and_then(|l| l.masked_paths().as_deref())
        .unwrap_or(&[]);
    let ro_mounts = mounts::readonly_remounts(cfg)?;
    // /proc/... paths are resolved from one checked fd of the container's procfs.
    let proc_root = if readonly.is_empty() && masked.is_empty() {
        None
    } else {
        masked::open_proc_root(cfg, &root)?
    };
    if !readonly.is_empty() || !masked.is_empty() || !ro_mounts.is_empty() {
        // These mounts go through /proc/self/fd: it must be the container's real procfs.
        open_procfs().map_err(|e| {
            RootfsError::invalid(
                "linux.maskedPaths/readonlyPaths",
                format!(
                    "they need procfs mounted at /proc in the container (add a proc mount): {e}"
                ),
            )
        })?;
    }
    masked::readonly_paths(&root, proc_root.as_ref(), readonly)?;
    masked::mask_paths(&root, proc_root.as_ref(), masked)?;
    for (field, dest, flags) in &ro_mounts {
        mounts::remount_readonly(&root, field, dest, *flags)?;
    }
    if cfg.spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        pivot::set_readonly_root()?;
    }
    if let Some(flag) = cfg.rootfs_propagation()? {
        sys::mount(None, Path::new("/"), None, flag, None)
            .map_err(|e| RootfsError::sys("linux.rootfsPropagation", "mount", "/", e))?;
    }
    Ok(())
}
