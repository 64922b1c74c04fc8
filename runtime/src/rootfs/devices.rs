//! /dev inside the container: the default nodes (null zero full random urandom tty) plus
//! linux.devices, /dev/ptmx -> pts/ptmx and the fd/stdin/stdout/stderr/core symlinks. Every
//! node is made with mknodat/symlinkat on a /dev fd resolved inside the rootfs, so a rootfs
//! whose /dev is a symlink cannot make us write on the host.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{self, AtFlags, OFlag};
use nix::sys::stat::{self, Mode, SFlag};
use nix::unistd::{self, Gid, Uid, UnlinkatFlags};
use oci_spec::runtime::LinuxDeviceType;

use super::safe_path::{clean_path, RootDir};
use super::sys;
use super::{RootfsConfig, RootfsError};

/// A device node to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DevNode {
    pub field: String,
    pub path: PathBuf,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The nodes every container gets (runc's AllowedDevices that have a path).
fn default_nodes() -> Vec<DevNode> {
    [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .into_iter()
    .map(|(name, major, minor)| DevNode {
        field: format!("default device \"/dev/{name}\""),
        path: PathBuf::from("/dev").join(name),
        kind: SFlag::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

/// Default nodes plus linux.devices; a spec device replaces a default one with the same path.
pub(super) fn wanted_nodes(cfg: &RootfsConfig) -> Result<Vec<DevNode>, RootfsError> {
    let mut spec_nodes = Vec::new();
    let devices = cfg
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_deref())
        .unwrap_or(&[]);
    for (i, d) in devices.iter().enumerate() {
        let field = format!("linux.devices[{i}] ({:?})", d.path());
        let path = clean_path(d.path());
        if !d.path().is_absolute() || !path.starts_with("/dev") || path == Path::new("/dev") {
            return Err(RootfsError::invalid(
                field,
                "path must be an absolute path under /dev",
            ));
        }
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(RootfsError::invalid(
                    field,
                    "type \"a\" is not a device node type: use c, u, b or p",
                ))
            }
        };
        let (major, minor) = match (u64::try_from(d.major()), u64::try_from(d.minor())) {
            (Ok(ma), Ok(mi)) => (ma, mi),
            _ => {
                return Err(RootfsError::invalid(
                    field,
                    "major and minor must not be negative",
                ))
            }
        };
        spec_nodes.push(DevNode {
            field,
            path,
            kind,
            major,
            minor,
            mode: d.file_mode().map(|m| m & 0o7777).unwrap_or(0o666),
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        });
    }
    let mut nodes: Vec<DevNode> = default_nodes()
        .into_iter()
        .filter(|n| !spec_nodes.iter().any(|s| s.path == n.path))
        .collect();
    nodes.extend(spec_nodes);
    Ok(nodes)
}

pub(super) fn setup_dev(cfg: &RootfsConfig, root: &RootDir) -> Result<(), RootfsError> {
    for node in wanted_nodes(cfg)? {
        // /dev/ptmx is the devpts one, set up below.
        if node.path == Path::new("/dev/ptmx") {
            continue;
        }
        create_node(root, &node, cfg.in_user_ns)?;
    }
    let dev = root
        .mkdir_all(Path::new("/dev"), 0o755)
        .map_err(|e| RootfsError::path("/dev", e))?;
    match unistd::unlinkat(&dev, "ptmx", UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(RootfsError::sys("/dev/ptmx", "unlink", "/dev/ptmx", e)),
    }
    unistd::symlinkat("pts/ptmx", &dev, "ptmx")
        .map_err(|e| RootfsError::sys("/dev/ptmx", "symlink", "/dev/ptmx", e))?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    // CONFIG_PROC_KCORE may be off: link /dev/core only when the host has it.
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        match unistd::symlinkat(target, &dev, name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => {
                return Err(RootfsError::sys(
                    "/dev symlinks",
                    "symlink",
                    Path::new("/dev").join(name),
                    e,
                ))
            }
        }
    }
    Ok(())
}

fn create_node(root: &RootDir, node: &DevNode, in_user_ns: bool) -> Result<(), RootfsError> {
    let (parent, name) = root
        .open_parent(&node.path, true)
        .map_err(|e| RootfsError::path(&node.field, e))?;
    if in_user_ns {
        // mknod is not allowed in a user namespace: bind the host's node instead.
        return bind_node(root, node);
    }
    // The node's mode must not be cut by the umask (single-threaded process: safe to flip).
    let old = stat::umask(Mode::empty());
    let made = stat::mknodat(
        &parent,
        name.as_os_str(),
        node.kind,
        Mode::from_bits_truncate(node.mode as libc::mode_t),
        stat::makedev(node.major, node.minor),
    );
    stat::umask(old);
    match made {
        Ok(()) => unistd::fchownat(
            &parent,
            name.as_os_str(),
            Some(Uid::from_raw(node.uid)),
            Some(Gid::from_raw(node.gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| RootfsError::sys(&node.field, "chown", &node.path, e)),
        // Keep what the image has, as runc does.
        Err(Errno::EEXIST) => Ok(()),
        Err(Errno::EPERM) => bind_node(root, node),
        Err(e) => Err(RootfsError::sys(&node.field, "mknod", &node.path, e)),
    }
}

/// Bind-mounts the host's node at the same path onto an empty file in the rootfs.
fn bind_node(root: &RootDir, node: &DevNode) -> Result<(), RootfsError> {
    let (parent, name) = root
        .open_parent(&node.path, true)
        .map_err(|e| RootfsError::path(&node.field, e))?;
    match fcntl::openat(
        &parent,
        name.as_os_str(),
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    ) {
        Ok(_) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(RootfsError::sys(&node.field, "create", &node.path, e)),
    }
    let target = fcntl::openat(
        &parent,
        name.as_os_str(),
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RootfsError::sys(&node.field, "open", &node.path, e))?;
    let st =
        stat::fstat(&target).map_err(|e| RootfsError::sys(&node.field, "stat", &node.path, e))?;
    let ft = st.st_mode & SFlag::S_IFMT.bits();
    if ft == SFlag::S_IFLNK.bits() || ft == SFlag::S_IFDIR.bits() {
        return Err(RootfsError::invalid(
            &node.field,
            "the rootfs has a symlink or directory there: refusing to bind a device onto it",
        ));
    }
    let src = fcntl::open(&node.path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| RootfsError::sys(&node.field, "open host device", &node.path, e))?;
    sys::mount_on_fd(
        Some(&sys::proc_fd_path(src.as_fd())),
        target.as_fd(),
        None,
        libc::MS_BIND,
        None,
    )
    .map_err(|e| RootfsError::Mount {
        field: node.field.clone(),
        dest: node.path.clone(),
        fstype: "bind".into(),
        src: node.path.display().to_string(),
        errno: e.into(),
    })
}

/// True when `st` is the null device (char 1:3).
pub(super) fn is_dev_null(st: &stat::FileStat) -> bool {
    st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFCHR.bits() && st.st_rdev == stat::makedev(1, 3)
}

/// After pivot_root: stdio fds that are the host's /dev/null now point at the container's.
pub(super) fn reopen_dev_null(root: &RootDir) -> Result<(), RootfsError> {
    let field = "/dev/null";
    let null = root
        .open(Path::new("/dev/null"), OFlag::O_RDWR)
        .map_err(|e| RootfsError::path(field, e))?;
    let st = stat::fstat(&null).map_err(|e| RootfsError::sys(field, "stat", field, e))?;
    if !is_dev_null(&st) {
        return Err(RootfsError::invalid(
            field,
            "the container's /dev/null is not the null device (char 1:3)",
        ));
    }
    for raw in 0..3 {
        let mut buf = std::mem::MaybeUninit::<libc::stat>::zeroed();
        // SAFETY: fstat on any fd number is memory-safe (a closed one gives EBADF); the buffer
        // is valid for writes.
        if unsafe { libc::fstat(raw, buf.as_mut_ptr()) } != 0 {
            continue;
        }
        // SAFETY: fstat succeeded and filled the (already zeroed) buffer.
        let s = unsafe { buf.assume_init() };
        if s.st_mode & libc::S_IFMT == libc::S_IFCHR && s.st_rdev == st.st_rdev {
            match raw {
                0 => unistd::dup2_stdin(&null),
                1 => unistd::dup2_stdout(&null),
                _ => unistd::dup2_stderr(&null),
            }
            .map_err(|e| RootfsError::sys(field, "dup", format!("fd {raw}"), e))?;
        }
    }
    Ok(())
}
