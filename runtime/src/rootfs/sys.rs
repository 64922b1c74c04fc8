//! Thin wrappers over the mount-related syscalls the rootfs code needs: mount(2) onto an fd,
//! mount_setattr(2), statx(2) for mount ids, statfs magic checks. Errors are bare `Errno`s; the
//! callers add the spec field and path.

use std::ffi::CString;
use std::fmt;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;

/// An errno shown the way people read it: `no such file or directory (ENOENT)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysErr(pub Errno);

impl fmt::Display for SysErr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let desc = self.0.desc();
        let mut chars = desc.chars();
        let lower: String = match chars.next() {
            Some(c) => c.to_lowercase().chain(chars).collect(),
            None => String::new(),
        };
        write!(f, "{lower} ({:?})", self.0)
    }
}

impl From<Errno> for SysErr {
    fn from(e: Errno) -> Self {
        SysErr(e)
    }
}

/// The magic-link path of an fd, used as a mount(2) source or target so the kernel acts on the
/// exact inode we opened and checked instead of re-resolving a path (CVE-2021-30465).
pub fn proc_fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// mount(2) with raw flags (so flags nix does not name, like MS_NOSYMFOLLOW, pass through).
pub fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<(), Errno> {
    nix::mount::mount(
        source,
        target,
        fstype,
        MsFlags::from_bits_retain(flags),
        data,
    )
}

/// mount(2) onto the inode `target` refers to (through /proc/self/fd/N).
pub fn mount_on_fd(
    source: Option<&Path>,
    target: BorrowedFd<'_>,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<(), Errno> {
    mount(source, &proc_fd_path(target), fstype, flags, data)
}

/// Attributes for mount_setattr(2) (the "rro", "rnosuid"… options).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MountAttr {
    pub set: u64,
    pub clear: u64,
}

impl MountAttr {
    pub fn is_empty(&self) -> bool {
        self.set == 0 && self.clear == 0
    }
}

/// mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, attr): changes the mount `fd` is on and
/// every mount below it.
pub fn mount_setattr_recursive(fd: BorrowedFd<'_>, attr: MountAttr) -> Result<(), Errno> {
    mount_setattr(fd, attr, true, None)
}

/// mount_setattr(fd, "", AT_EMPTY_PATH [| AT_RECURSIVE], attr): changes the mount `fd` is on
/// (and every mount below it when `recursive`); `userns` goes with MOUNT_ATTR_IDMAP.
pub fn mount_setattr(
    fd: BorrowedFd<'_>,
    attr: MountAttr,
    recursive: bool,
    userns: Option<BorrowedFd<'_>>,
) -> Result<(), Errno> {
    let mut raw = libc::mount_attr {
        attr_set: attr.set,
        attr_clr: attr.clear,
        propagation: 0,
        userns_fd: userns.map_or(0, |u| u.as_raw_fd() as u64),
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    let empty = CString::default();
    // SAFETY: `empty` is a valid NUL-terminated string, `raw` a valid mount_attr whose size we
    // pass; the kernel only reads both. The fds are borrowed, so they stay open for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            empty.as_ptr(),
            flags,
            &mut raw as *mut libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    Errno::result(ret).map(drop)
}

/// move_mount(tree, "", target, "", F_EMPTY_PATH | T_EMPTY_PATH): attaches the detached mount
/// `tree` (from [`open_tree_clone`]) on the directory `target` is open on.
pub fn move_mount(tree: BorrowedFd<'_>, target: BorrowedFd<'_>) -> Result<(), Errno> {
    let empty = CString::default();
    // SAFETY: two valid fds and C strings for the call; nothing is written to our memory.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            target.as_raw_fd(),
            empty.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    Errno::result(rc).map(drop)
}

/// open_tree(dirfd or AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | `extra`): a
/// detached copy of the mount at `path` (AT_RECURSIVE in `extra`: with the mounts below it;
/// AT_EMPTY_PATH with an empty `path`: of `dirfd` itself).
pub fn open_tree_clone(
    dirfd: Option<BorrowedFd<'_>>,
    path: &Path,
    extra: libc::c_uint,
) -> Result<OwnedFd, Errno> {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| Errno::EINVAL)?;
    let flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | extra;
    let dirfd = dirfd.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: `c` is a valid C string for the call; the kernel returns a new fd we then own.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, dirfd, c.as_ptr(), flags) };
    let fd = Errno::result(fd)?;
    // SAFETY: open_tree succeeded, so `fd` is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The id of the mount `fd` is on (statx STATX_MNT_ID, Linux 5.8+); `None` if the kernel does
/// not report it.
pub fn mount_id(fd: BorrowedFd<'_>) -> Result<Option<u64>, Errno> {
    let empty = CString::default();
    let mut buf = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: `buf` is a properly sized, zeroed statx buffer the kernel writes into; `empty`
    // is a valid C string; the fd is borrowed for the duration of the call.
    let ret = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_MNT_ID,
            buf.as_mut_ptr(),
        )
    };
    Errno::result(ret)?;
    // SAFETY: statx returned success, so it filled the buffer (it was zeroed before anyway).
    let stx = unsafe { buf.assume_init() };
    if stx.stx_mask & libc::STATX_MNT_ID != 0 {
        Ok(Some(stx.stx_mnt_id))
    } else {
        Ok(None)
    }
}

pub use nix::sys::statfs::{FsType, CGROUP2_SUPER_MAGIC, DEVPTS_SUPER_MAGIC, PROC_SUPER_MAGIC};

/// The type (magic) of the filesystem `fd` is on.
pub fn fs_type(fd: BorrowedFd<'_>) -> Result<FsType, Errno> {
    Ok(nix::sys::statfs::fstatfs(fd)?.filesystem_type())
}

/// A filesystem magic as a number, for messages.
pub fn magic_number(t: FsType) -> u64 {
    t.0 as u64
}

/// The per-mount flags of the mount `fd` is on, as MS_* bits (statfs f_flags translated the way
/// runc's statfsToMountFlags does).
pub fn mount_flags_of(fd: BorrowedFd<'_>) -> Result<libc::c_ulong, Errno> {
    let st = nix::sys::statvfs::fstatvfs(fd)?;
    let f = st.flags().bits();
    const ST_NOSYMFOLLOW: libc::c_ulong = 0x2000;
    let pairs: [(libc::c_ulong, libc::c_ulong); 10] = [
        (libc::ST_RDONLY, libc::MS_RDONLY),
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_MANDLOCK, libc::MS_MANDLOCK),
        (libc::ST_SYNCHRONOUS, libc::MS_SYNCHRONOUS),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
        (ST_NOSYMFOLLOW, libc::MS_NOSYMFOLLOW),
    ];
    let mut flags = 0;
    for (st_bit, ms_bit) in pairs {
        if f & st_bit == st_bit {
            flags |= ms_bit;
        }
    }
    // MS_STRICTATIME is not stored per mount: a mount with none of the other atime modes is
    // strictatime.
    if flags & ATIME_ENUM_FLAGS == 0 {
        flags |= libc::MS_STRICTATIME;
    }
    Ok(flags)
}

/// The mutually exclusive atime modes.
pub const ATIME_ENUM_FLAGS: libc::c_ulong =
    libc::MS_NOATIME | libc::MS_RELATIME | libc::MS_STRICTATIME;
/// Flags the kernel locks on mounts inherited into a user namespace (MNT_LOCK_*).
pub const LOCKED_FLAGS: libc::c_ulong = libc::MS_RDONLY
    | libc::MS_NODEV
    | libc::MS_NOEXEC
    | libc::MS_NOSUID
    | ATIME_ENUM_FLAGS
    | libc::MS_NODIRATIME;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_text_is_lowercase_with_name() {
        assert_eq!(
            SysErr(Errno::ENOENT).to_string(),
            "no such file or directory (ENOENT)"
        );
        assert_eq!(SysErr(Errno::ENODEV).to_string(), "no such device (ENODEV)");
    }
}
