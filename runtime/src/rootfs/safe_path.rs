//! Paths inside a container's rootfs, resolved so that nothing (a symlink, `..`, a swapped
//! directory) can lead outside it.
//!
//! Every lookup starts at an fd of the rootfs directory. The fast path is openat2(2) with
//! RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS: the kernel treats the fd as `/` for absolute
//! symlinks and `..`. Where openat2 is missing (ENOSYS), a walk resolves one component at a time
//! with O_NOFOLLOW and follows symlinks itself, clamped to the root; no path string with more
//! than one component is ever given to the kernel. Directory creation (`mkdir_all`) always
//! uses the walk, with mkdirat on each component's fd.
//!
//! Defends against CVE-2019-16884, CVE-2019-19921, CVE-2021-30465, CVE-2023-27561 and
//! the `rootfs/dev` symlink attacks: callers get fds, and mount onto `/proc/self/fd/N`.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

use nix::errno::Errno;
use nix::fcntl::{self, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{self, FileStat, Mode, SFlag};

use super::sys::{self, SysErr};

/// How many symlinks one lookup may follow (the kernel's limit, MAXSYMLINKS).
const MAX_SYMLINKS: usize = 40;
/// openat2 returns EAGAIN when a rename or mount raced the lookup; retry this often.
const OPENAT2_RETRIES: usize = 32;

/// Environment variable that makes every `RootDir` use the component walk instead of openat2,
/// so tests exercise the fallback the way an old kernel or a seccomp filter would.
pub const NO_OPENAT2_ENV: &str = "MYRT_NO_OPENAT2";

#[derive(Debug, thiserror::Error)]
pub enum SafePathError {
    #[error("{op} {path:?} in root {root:?}: {errno}")]
    Sys {
        op: &'static str,
        path: PathBuf,
        root: PathBuf,
        errno: SysErr,
    },
    #[error("{path:?} in root {root:?}: {reason}")]
    Unsafe {
        path: PathBuf,
        root: PathBuf,
        reason: String,
    },
    #[error("{path:?}: not on procfs (filesystem magic {magic:#x}); refusing to use it (CVE-2019-16884)")]
    NotProcfs { path: PathBuf, magic: u64 },
}

impl SafePathError {
    /// The errno behind the error, if a syscall failed.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            SafePathError::Sys { errno, .. } => Some(errno.0),
            _ => None,
        }
    }

    /// True when the path (or one of its parents) does not exist.
    pub fn is_not_found(&self) -> bool {
        self.errno() == Some(Errno::ENOENT)
    }
}

type Result<T> = std::result::Result<T, SafePathError>;

/// Which resolver a `RootDir` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolver {
    /// openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS), falling back to `Walk` on ENOSYS.
    Openat2,
    /// The component walk, always.
    Walk,
}

// 0 = unknown, 1 = openat2 works, 2 = openat2 is missing (ENOSYS) or disabled by env.
static OPENAT2_STATE: AtomicU8 = AtomicU8::new(0);

fn default_resolver() -> Resolver {
    match OPENAT2_STATE.load(Ordering::Relaxed) {
        1 => Resolver::Openat2,
        2 => Resolver::Walk,
        _ => {
            let disabled =
                std::env::var_os(NO_OPENAT2_ENV).is_some_and(|v| !v.is_empty() && v != "0");
            OPENAT2_STATE.store(if disabled { 2 } else { 1 }, Ordering::Relaxed);
            if disabled {
                Resolver::Walk
            } else {
                Resolver::Openat2
            }
        }
    }
}

/// True when paths are resolved with the component walk (forced by `MYRT_NO_OPENAT2` or
/// [`force_walk_resolver`], or openat2 answered ENOSYS): other openat2 users (the sysctl
/// writer) follow suit.
pub fn walk_is_forced() -> bool {
    default_resolver() == Resolver::Walk
}

/// The environment a re-exec'd copy of this binary (the container's init) needs to resolve
/// paths the way this process does: `MYRT_NO_OPENAT2=1` when the walk is forced. The spawner
/// clears the environment, so it must add this back.
pub fn resolver_env() -> Option<(&'static str, &'static str)> {
    walk_is_forced().then_some((NO_OPENAT2_ENV, "1"))
}

/// Forces (or stops forcing) the component walk for every `RootDir` created afterwards in this
/// process. For tests; the `MYRT_NO_OPENAT2` environment variable does the same at start-up.
pub fn force_walk_resolver(on: bool) {
    OPENAT2_STATE.store(if on { 2 } else { 1 }, Ordering::Relaxed);
}

/// A directory treated as `/` for every path opened through it.
#[derive(Debug)]
pub struct RootDir {
    fd: OwnedFd,
    /// The path the fd was opened at (for messages).
    path: PathBuf,
    /// Where the fd really is, as /proc/self/fd shows it (to map fds back to in-root paths).
    real: PathBuf,
    resolver: Resolver,
}

impl RootDir {
    /// Opens `path` (a host path) as a root.
    pub fn new(path: &Path) -> Result<RootDir> {
        Self::with_resolver(path, default_resolver())
    }

    /// Opens `path` as a root that resolves with `resolver`.
    pub fn with_resolver(path: &Path, resolver: Resolver) -> Result<RootDir> {
        let fd = fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| SafePathError::Sys {
            op: "open root",
            path: path.to_path_buf(),
            root: path.to_path_buf(),
            errno: e.into(),
        })?;
        Self::from_fd_with_resolver(fd, path, resolver)
    }

    /// Uses `fd`, a directory already opened and checked by the caller (e.g. the container's
    /// /proc opened through another `RootDir`), as a root. `path` names it in messages.
    /// Lookups through it stay below it, like those of [`RootDir::new`].
    pub fn from_fd(fd: OwnedFd, path: &Path) -> Result<RootDir> {
        Self::from_fd_with_resolver(fd, path, default_resolver())
    }

    /// [`RootDir::from_fd`] resolving with `resolver`.
    pub fn from_fd_with_resolver(fd: OwnedFd, path: &Path, resolver: Resolver) -> Result<RootDir> {
        let err = |op, errno: Errno| SafePathError::Sys {
            op,
            path: path.to_path_buf(),
            root: path.to_path_buf(),
            errno: errno.into(),
        };
        let st = stat::fstat(&fd).map_err(|e| err("stat root", e))?;
        if !is_dir(&st) {
            return Err(err("open root", Errno::ENOTDIR));
        }
        let real = fd_real_path(fd.as_fd()).unwrap_or_else(|_| path.to_path_buf());
        Ok(RootDir {
            fd,
            path: path.to_path_buf(),
            real,
            resolver,
        })
    }

    /// The path this root was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn resolver(&self) -> Resolver {
        self.resolver
    }

    fn sys_err(&self, op: &'static str, path: &Path, errno: Errno) -> SafePathError {
        SafePathError::Sys {
            op,
            path: path.to_path_buf(),
            root: self.path.clone(),
            errno: errno.into(),
        }
    }

    fn walk_err(&self, op: &'static str, path: &Path, e: WalkErr) -> SafePathError {
        match e {
            WalkErr::Sys(errno) => self.sys_err(op, path, errno),
            WalkErr::MagicLink => self.unsafe_err(
                path,
                "a /proc magic link (fd/N, exe, cwd, root) is on the path: refusing to follow \
                 it, it could lead out of the root (CVE-2024-21626)",
            ),
        }
    }

    fn unsafe_err(&self, path: &Path, reason: impl Into<String>) -> SafePathError {
        SafePathError::Unsafe {
            path: path.to_path_buf(),
            root: self.path.clone(),
            reason: reason.into(),
        }
    }

    /// Opens `path` inside the root. Symlinks (also the last component unless `flags` has
    /// O_NOFOLLOW) are followed inside the root; magic links are refused. O_CLOEXEC is always
    /// added. O_CREAT is refused: use [`RootDir::create_file`].
    pub fn open(&self, path: &Path, flags: OFlag) -> Result<OwnedFd> {
        if flags.contains(OFlag::O_CREAT) {
            return Err(self.unsafe_err(path, "O_CREAT is not allowed here: use create_file"));
        }
        let rel = relative(path);
        let flags = flags | OFlag::O_CLOEXEC;
        if self.resolver == Resolver::Openat2 && OPENAT2_STATE.load(Ordering::Relaxed) != 2 {
            match self.openat2(&rel, flags) {
                Err(Errno::ENOSYS) => {
                    log::debug!(
                        "openat2 is not available: resolving paths with the component walk"
                    );
                    OPENAT2_STATE.store(2, Ordering::Relaxed);
                }
                other => return other.map_err(|e| self.sys_err("open", path, e)),
            }
        }
        self.open_walk(&rel, flags)
            .map_err(|e| self.walk_err("open", path, e))
    }

    fn openat2(&self, rel: &Path, flags: OFlag) -> std::result::Result<OwnedFd, Errno> {
        let how = OpenHow::new()
            .flags(flags)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let target: &Path = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let mut last = Errno::EAGAIN;
        for _ in 0..OPENAT2_RETRIES {
            match fcntl::openat2(self.fd.as_fd(), target, how) {
                Err(Errno::EAGAIN) => last = Errno::EAGAIN,
                other => return other,
            }
        }
        Err(last)
    }

    fn open_walk(&self, rel: &Path, flags: OFlag) -> std::result::Result<OwnedFd, WalkErr> {
        let follow_last = !flags.contains(OFlag::O_NOFOLLOW);
        let walked = self.walk(rel, None, follow_last)?;
        let want_path_only = flags.contains(OFlag::O_PATH);
        if flags.contains(OFlag::O_DIRECTORY) && !is_dir(&walked.stat) {
            return Err(Errno::ENOTDIR.into());
        }
        if is_symlink(&walked.stat) && !want_path_only {
            // What openat2 and open(2) return for O_NOFOLLOW on a symlink.
            return Err(Errno::ELOOP.into());
        }
        if want_path_only {
            return Ok(walked.fd);
        }
        // Re-open with the real flags relative to the parent, without following anything,
        // and make sure it is still the inode the walk found.
        let fd = match &walked.parent {
            Some(parent) => fcntl::openat(
                parent,
                walked.name.as_os_str(),
                flags | OFlag::O_NOFOLLOW,
                Mode::empty(),
            )?,
            None => fcntl::openat(&walked.fd, ".", flags, Mode::empty())?,
        };
        let st = stat::fstat(&fd)?;
        if st.st_dev != walked.stat.st_dev || st.st_ino != walked.stat.st_ino {
            return Err(Errno::EXDEV.into());
        }
        Ok(fd)
    }

    /// Resolves `rel` one component at a time. With `create`, missing directories are made
    /// with that mode. Returns the final O_PATH fd, its parent and its name.
    fn walk(
        &self,
        rel: &Path,
        create: Option<Mode>,
        follow_last: bool,
    ) -> std::result::Result<Walked, WalkErr> {
        let mut stack: Vec<OwnedFd> = vec![self.fd.try_clone().map_err(io_errno)?];
        let mut rest: VecDeque<OsString> = components(rel);
        let mut links = 0usize;
        let mut last: Option<(OsString, FileStat)> = None;
        while let Some(name) = rest.pop_front() {
            if name.as_bytes() == b".." {
                if stack.len() > 1 {
                    stack.pop();
                }
                last = None;
                continue;
            }
            let is_last = rest.is_empty();
            let cur = stack.last().ok_or(Errno::EINVAL)?;
            let opened = fcntl::openat(
                cur,
                name.as_os_str(),
                OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            );
            let fd = match (opened, create) {
                (Ok(fd), _) => fd,
                (Err(Errno::ENOENT), Some(mode)) => {
                    match stat::mkdirat(cur, name.as_os_str(), mode) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    fcntl::openat(
                        cur,
                        name.as_os_str(),
                        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                        Mode::empty(),
                    )?
                }
                (Err(e), _) => return Err(e.into()),
            };
            let st = stat::fstat(&fd)?;
            if is_symlink(&st) && (!is_last || follow_last) {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Errno::ELOOP.into());
                }
                let target = PathBuf::from(fcntl::readlinkat(&fd, "")?);
                if is_magic_link(fd.as_fd(), &target)? {
                    return Err(WalkErr::MagicLink);
                }
                if target.is_absolute() {
                    stack.truncate(1);
                }
                for c in components(&target).into_iter().rev() {
                    rest.push_front(c);
                }
                last = None;
                continue;
            }
            if !is_last && !is_dir(&st) {
                return Err(Errno::ENOTDIR.into());
            }
            stack.push(fd);
            last = Some((name, st));
        }
        match last {
            Some((name, st)) => {
                let fd = stack.pop().ok_or(Errno::EINVAL)?;
                Ok(Walked {
                    parent: stack.pop(),
                    name,
                    fd,
                    stat: st,
                })
            }
            None => {
                // Ended on a directory reached through ".." or a symlink (or the root itself).
                let top = stack.pop().ok_or(Errno::EINVAL)?;
                let st = stat::fstat(&top)?;
                Ok(Walked {
                    parent: None,
                    name: OsString::from("."),
                    fd: top,
                    stat: st,
                })
            }
        }
    }

    /// Creates every missing directory of `path` inside the root (mkdirat on each component's
    /// fd, symlinks followed inside the root) and returns an O_PATH fd of the last one.
    pub fn mkdir_all(&self, path: &Path, mode: u32) -> Result<OwnedFd> {
        let rel = relative(path);
        let walked = self
            .walk(&rel, Some(Mode::from_bits_truncate(mode)), true)
            .map_err(|e| self.walk_err("mkdir", path, e))?;
        if !is_dir(&walked.stat) {
            return Err(self.sys_err("mkdir", path, Errno::ENOTDIR));
        }
        Ok(walked.fd)
    }

    /// Opens the parent directory of `path` (creating missing directories with mode 0755 when
    /// `create` is set) and returns it with the last component's name. `path` is cleaned first,
    /// so the name is never `.` or `..`.
    pub fn open_parent(&self, path: &Path, create: bool) -> Result<(OwnedFd, OsString)> {
        let clean = clean_path(path);
        let name = clean
            .file_name()
            .map(OsStr::to_os_string)
            .ok_or_else(|| self.unsafe_err(path, "the root itself has no parent"))?;
        let parent = clean.parent().unwrap_or(Path::new("/"));
        let fd = if create {
            self.mkdir_all(parent, 0o755)?
        } else {
            self.open(parent, OFlag::O_PATH | OFlag::O_DIRECTORY)?
        };
        Ok((fd, name))
    }

    /// Makes sure a non-directory exists at `path`: an existing one is opened (following
    /// symlinks inside the root), a missing one is created as an empty regular file (parents
    /// too). Returns an O_PATH fd.
    pub fn create_file(&self, path: &Path, mode: u32) -> Result<OwnedFd> {
        match self.open(path, OFlag::O_PATH) {
            Ok(fd) => return Ok(fd),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        let (parent, name) = self.open_parent(path, true)?;
        match fcntl::openat(
            &parent,
            name.as_os_str(),
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        ) {
            Ok(_) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(self.sys_err("create", path, e)),
        }
        self.open(path, OFlag::O_PATH)
    }

    /// lstat of `path` inside the root: parents are resolved inside the root, the last
    /// component is not followed. `None` when it does not exist.
    pub fn lstat(&self, path: &Path) -> Result<Option<FileStat>> {
        if clean_path(path) == Path::new("/") {
            return stat::fstat(&self.fd)
                .map(Some)
                .map_err(|e| self.sys_err("stat", path, e));
        }
        let (parent, name) = match self.open_parent(path, false) {
            Ok(p) => p,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        match stat::fstatat(
            &parent,
            name.as_os_str(),
            fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(self.sys_err("stat", path, e)),
        }
    }

    /// The path of `fd` relative to this root (as an absolute in-root path), read back from
    /// /proc/self/fd. Fails if the fd is not below the root.
    pub fn in_root_path(&self, fd: BorrowedFd<'_>) -> Result<PathBuf> {
        let real = fd_real_path(fd)
            .map_err(|e| self.sys_err("readlink", Path::new("/proc/self/fd"), e))?;
        match real.strip_prefix(&self.real) {
            Ok(rest) => Ok(Path::new("/").join(rest)),
            Err(_) => Err(self.unsafe_err(&real, "resolved outside the root")),
        }
    }
}

impl AsFd for RootDir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Why a walk stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WalkErr {
    Sys(Errno),
    /// A /proc magic link (fd/N, exe, cwd, root, ns/...) was on the path: what openat2's
    /// RESOLVE_NO_MAGICLINKS refuses.
    MagicLink,
}

impl From<Errno> for WalkErr {
    fn from(e: Errno) -> Self {
        WalkErr::Sys(e)
    }
}

/// A symlink on procfs whose target is absolute or names an object ("socket:[123]",
/// "net:[4026531840]") is a magic link: the kernel jumps to the object, not to the text, so
/// following the text would be wrong, and following the object could leave the root
/// (CVE-2024-21626: cwd = /proc/self/fd/N). The plain procfs links (self, thread-self,
/// mounts, net) have relative, colon-free targets.
fn is_magic_link(link: BorrowedFd<'_>, target: &Path) -> std::result::Result<bool, Errno> {
    if sys::fs_type(link)? != sys::PROC_SUPER_MAGIC {
        return Ok(false);
    }
    Ok(target.is_absolute() || target.as_os_str().as_bytes().contains(&b':'))
}

struct Walked {
    parent: Option<OwnedFd>,
    name: OsString,
    fd: OwnedFd,
    stat: FileStat,
}

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

fn is_symlink(st: &FileStat) -> bool {
    st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFLNK.bits()
}

fn is_dir(st: &FileStat) -> bool {
    st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFDIR.bits()
}

/// The path components a walk handles: normal names and "..", nothing else.
fn components(p: &Path) -> VecDeque<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

/// `path` cleaned and made relative ("" for the root).
fn relative(path: &Path) -> PathBuf {
    let clean = clean_path(path);
    clean
        .strip_prefix("/")
        .map(Path::to_path_buf)
        .unwrap_or(clean)
}

/// Cleans a path lexically the way runc's CleanPath does for in-root paths: absolute, no `.`,
/// `..` applied (and clamped at `/`), no duplicate or trailing slashes.
pub fn clean_path(path: &Path) -> PathBuf {
    let mut out: Vec<&OsStr> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    let mut p = PathBuf::from("/");
    for c in out {
        p.push(c);
    }
    p
}

/// Where `fd` is, as the kernel names it in /proc/self/fd.
pub fn fd_real_path(fd: BorrowedFd<'_>) -> std::result::Result<PathBuf, Errno> {
    fcntl::readlink(&sys::proc_fd_path(fd)).map(PathBuf::from)
}

/// Checks that `fd` is on procfs before anything is written through it (CVE-2019-16884,
/// CVE-2025-52881).
pub fn check_procfs(fd: BorrowedFd<'_>, path: &Path) -> Result<()> {
    let fs = sys::fs_type(fd).map_err(|e| SafePathError::Sys {
        op: "statfs",
        path: path.to_path_buf(),
        root: PathBuf::from("/"),
        errno: e.into(),
    })?;
    if fs != sys::PROC_SUPER_MAGIC {
        return Err(SafePathError::NotProcfs {
            path: path.to_path_buf(),
            magic: sys::magic_number(fs),
        });
    }
    Ok(())
}

/// Opens the process' `/proc` (O_PATH directory) and checks it really is procfs.
pub fn open_procfs() -> Result<OwnedFd> {
    let path = Path::new("/proc");
    let fd = fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SafePathError::Sys {
        op: "open",
        path: path.to_path_buf(),
        root: PathBuf::from("/"),
        errno: e.into(),
    })?;
    check_procfs(fd.as_fd(), path)?;
    Ok(fd)
}

#[cfg(test)]
#[path = "safe_path_tests.rs"]
mod tests;
