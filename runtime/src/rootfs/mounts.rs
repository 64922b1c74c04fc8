//! The spec's mounts, carried out one by one inside the rootfs (runc's mountToRootfs).
//!
//! Each target is created and opened through [`RootDir`], checked (not over /proc, resolved
//! inside the rootfs), mounted onto through `/proc/self/fd/N` (CVE-2021-30465) and re-opened
//! afterwards to verify that the new mount is really there.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{self, AtFlags, OFlag};
use nix::sys::stat::{self, Mode, SFlag};
use oci_spec::runtime::{LinuxNamespaceType, Mount};

use super::options::{parse_mount_options, MountOptions};
use super::safe_path::{clean_path, RootDir};
use super::sys::{self, ATIME_ENUM_FLAGS, LOCKED_FLAGS};
use super::{cgroup, copyup, RootfsConfig, RootfsError};

/// Files under /proc that may be overmounted (by lxcfs and the like), as runc allows.
const PROC_MOUNT_ALLOWED: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
];

/// One mount to carry out: a spec entry, or one the engine adds (cgroup v1 parts).
#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// "mounts[3]".
    pub field: String,
    /// Cleaned, absolute path inside the rootfs.
    pub dest: PathBuf,
    /// Filesystem type; "bind" for bind mounts.
    pub fstype: String,
    /// Host path for binds (bundle-relative ones already joined), free text otherwise.
    pub source: Option<PathBuf>,
    pub opts: MountOptions,
}

impl Entry {
    /// "mounts[3] (destination "/proc")".
    pub fn at(&self) -> String {
        format!("{} (destination {:?})", self.field, self.dest)
    }

    fn source_text(&self) -> String {
        match &self.source {
            Some(s) => s.display().to_string(),
            None => self.fstype.clone(),
        }
    }

    fn mount_err(&self, errno: Errno) -> RootfsError {
        RootfsError::Mount {
            field: self.field.clone(),
            dest: self.dest.clone(),
            fstype: self.fstype.clone(),
            src: self.source_text(),
            errno: errno.into(),
        }
    }

    pub(super) fn from_spec(
        cfg: &RootfsConfig,
        index: usize,
        m: &Mount,
    ) -> Result<Entry, RootfsError> {
        let field = format!("mounts[{index}]");
        let raw_dest = m.destination();
        let at = format!("{field} (destination {raw_dest:?})");
        if !raw_dest.is_absolute() {
            return Err(RootfsError::invalid(
                at,
                "destination must be an absolute path",
            ));
        }
        let dest = clean_path(raw_dest);
        if dest == Path::new("/") {
            return Err(RootfsError::invalid(
                at,
                "mounting over the root of the rootfs is not supported",
            ));
        }
        let mut opts = parse_mount_options(m.options().as_deref().unwrap_or(&[]))
            .map_err(|e| RootfsError::invalid(&at, e.to_string()))?;
        let typ = m.typ().clone().unwrap_or_default();
        if typ == "bind" {
            opts.flags |= libc::MS_BIND;
        }
        // uidMappings/gidMappings, "idmap", "ridmap": checked and completed (idmap.rs).
        super::idmap::resolve(cfg, &at, m, &mut opts)?;
        if !opts.is_bind() {
            if let Some(context) = mount_label_data(cfg, &typ) {
                opts.data.push(context);
            }
        }
        if opts.is_bind() {
            if !opts.data.is_empty() {
                // The kernel ignores data for MS_BIND; runc and crun pass it on the same way
                // (specs from the wild carry e.g. "mode=755" on binds). Said, not fatal.
                log::warn!(
                    "{at}: options {:?} are filesystem data, which a bind mount ignores",
                    opts.data
                );
                opts.data.clear();
            }
            let src = m
                .source()
                .as_ref()
                .filter(|s| !s.as_os_str().is_empty())
                .ok_or_else(|| RootfsError::invalid(&at, "a bind mount needs a source"))?;
            let src = if src.is_absolute() {
                src.clone()
            } else {
                cfg.bundle.join(src)
            };
            return Ok(Entry {
                field,
                dest,
                fstype: "bind".into(),
                source: Some(src),
                opts,
            });
        }
        if typ.is_empty() {
            return Err(RootfsError::invalid(
                at,
                "type is empty: give a filesystem type, or the \"bind\"/\"rbind\" option",
            ));
        }
        Ok(Entry {
            field,
            dest,
            fstype: typ,
            source: m.source().clone(),
            opts,
        })
    }
}

pub(super) struct Mounter<'a> {
    pub cfg: &'a RootfsConfig<'a>,
    pub root: &'a RootDir,
    pub cgroupns: bool,
}

impl<'a> Mounter<'a> {
    pub fn new(cfg: &'a RootfsConfig<'a>, root: &'a RootDir) -> Self {
        Mounter {
            cfg,
            root,
            cgroupns: cfg.has_namespace(LinuxNamespaceType::Cgroup),
        }
    }

    pub fn mount_spec(&self, index: usize, m: &Mount) -> Result<(), RootfsError> {
        let e = Entry::from_spec(self.cfg, index, m)?;
        log::debug!("{}: mounting {} type {}", e.at(), e.source_text(), e.fstype);
        self.mount_entry(&e)
    }

    pub fn mount_entry(&self, e: &Entry) -> Result<(), RootfsError> {
        if e.opts.is_bind() {
            return self.mount_bind(e);
        }
        match e.fstype.as_str() {
            "proc" | "sysfs" => self.mount_special(e),
            "tmpfs" => self.mount_tmpfs(e),
            "cgroup" => cgroup::mount_cgroup(self, e),
            _ => self.mount_generic(e),
        }
    }

    /// Any other filesystem (devpts, mqueue, cgroup2, overlay…): an unknown type fails here
    /// with the kernel's error.
    pub fn mount_generic(&self, e: &Entry) -> Result<(), RootfsError> {
        check_proc_dest(e, &e.dest, false)?;
        let target = self
            .root
            .mkdir_all(&e.dest, 0o755)
            .map_err(|err| RootfsError::path(e.at(), err))?;
        self.check_resolved(e, target.as_fd(), false)?;
        let source = e.source.clone().unwrap_or_else(|| PathBuf::from(&e.fstype));
        let after = self.mount_onto(
            e,
            target,
            Src::Path(&source),
            Some(&e.fstype),
            e.opts.flags,
            e.opts.data_string().as_deref(),
        )?;
        self.apply_rec_attr(e, after.as_fd())
    }

    /// proc and sysfs go only onto a real directory, never through a symlink (CVE-2019-19921,
    /// CVE-2023-27561, CVE-2023-28642).
    fn mount_special(&self, e: &Entry) -> Result<(), RootfsError> {
        let (parent, name) = self
            .root
            .open_parent(&e.dest, true)
            .map_err(|err| RootfsError::path(e.at(), err))?;
        let refuse = |what: &str| {
            RootfsError::invalid(
                e.at(),
                format!("target is {what}: refusing to mount {} (CVE-2019-19921, CVE-2023-27561, CVE-2023-28642); it must be mounted on an ordinary directory", e.fstype),
            )
        };
        match stat::fstatat(&parent, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if file_type(st.st_mode) == SFlag::S_IFLNK => return Err(refuse("a symlink")),
            Ok(st) if file_type(st.st_mode) != SFlag::S_IFDIR => {
                return Err(refuse("not a directory"))
            }
            Ok(_) => {}
            Err(Errno::ENOENT) => {
                match stat::mkdirat(&parent, name.as_os_str(), Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(err) => return Err(RootfsError::sys(e.at(), "mkdir", &e.dest, err)),
                }
            }
            Err(err) => return Err(RootfsError::sys(e.at(), "stat", &e.dest, err)),
        }
        let target = match fcntl::openat(
            &parent,
            name.as_os_str(),
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOTDIR | Errno::ELOOP) => {
                return Err(refuse("not a directory (it changed while being set up)"))
            }
            Err(err) => return Err(RootfsError::sys(e.at(), "open", &e.dest, err)),
        };
        if file_type(
            stat::fstat(&target)
                .map_err(|err| RootfsError::sys(e.at(), "stat", &e.dest, err))?
                .st_mode,
        ) != SFlag::S_IFDIR
        {
            return Err(refuse("not a directory"));
        }
        self.check_resolved(e, target.as_fd(), e.fstype == "proc")?;
        let source = e.source.clone().unwrap_or_else(|| PathBuf::from(&e.fstype));
        let result = self.mount_onto(
            e,
            target,
            Src::Path(&source),
            Some(&e.fstype),
            e.opts.flags,
            e.opts.data_string().as_deref(),
        );
        match result {
            Ok(after) => self.apply_rec_attr(e, after.as_fd()),
            // Without its own network namespace a user namespace may not mount sysfs: bind the
            // host's /sys instead, as runc and crun do.
            Err(err)
                if e.fstype == "sysfs"
                    && self.cfg.in_user_ns
                    && matches!(err.errno(), Some(Errno::EPERM | Errno::EBUSY)) =>
            {
                log::debug!(
                    "{}: sysfs mount refused ({err}); binding /sys instead",
                    e.at()
                );
                let mut bind = e.clone();
                bind.fstype = "bind".into();
                bind.source = Some(PathBuf::from("/sys"));
                bind.opts.flags |= libc::MS_BIND | libc::MS_REC;
                bind.opts.data.clear();
                self.mount_bind(&bind)
            }
            Err(err) => Err(err),
        }
    }

    pub fn mount_tmpfs(&self, e: &Entry) -> Result<(), RootfsError> {
        check_proc_dest(e, &e.dest, false)?;
        // Keep the mode of an existing directory (runc adds mode= to the data).
        let mut data = Vec::new();
        match self.root.open(&e.dest, OFlag::O_PATH) {
            Ok(fd) => {
                let st = stat::fstat(&fd)
                    .map_err(|err| RootfsError::sys(e.at(), "stat", &e.dest, err))?;
                if file_type(st.st_mode) == SFlag::S_IFDIR {
                    data.push(format!("mode={:04o}", st.st_mode & 0o7777));
                }
            }
            Err(err) if err.is_not_found() => {}
            Err(err) => return Err(RootfsError::path(e.at(), err)),
        }
        data.extend(e.opts.data.iter().cloned());
        let target = self
            .root
            .mkdir_all(&e.dest, 0o755)
            .map_err(|err| RootfsError::path(e.at(), err))?;
        self.check_resolved(e, target.as_fd(), false)?;
        let old_content = if e.opts.tmpcopyup {
            Some(
                self.root
                    .open(&e.dest, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
                    .map_err(|err| RootfsError::path(e.at(), err))?,
            )
        } else {
            None
        };
        let source = e.source.clone().unwrap_or_else(|| PathBuf::from("tmpfs"));
        let data = if data.is_empty() {
            None
        } else {
            Some(data.join(","))
        };
        // Read-only comes later (finalize_rootfs): the tmpfs may still be written to (/dev).
        let after = self.mount_onto(
            e,
            target,
            Src::Path(&source),
            Some("tmpfs"),
            e.opts.flags & !libc::MS_RDONLY,
            data.as_deref(),
        )?;
        if let Some(old) = old_content {
            let new = self
                .root
                .open(&e.dest, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
                .map_err(|err| RootfsError::path(e.at(), err))?;
            copyup::copy_tree(old.as_fd(), new.as_fd()).map_err(|err| {
                RootfsError::sys(format!("{} tmpcopyup", e.at()), "copy", &e.dest, err)
            })?;
        }
        self.apply_rec_attr(e, after.as_fd())
    }

    pub fn mount_bind(&self, e: &Entry) -> Result<(), RootfsError> {
        // A tree stage 1 cloned stands for the source; else the source is opened by path here.
        let tree = super::idmap::take(e)?;
        let opened;
        let src = match &tree {
            Some(t) => t.as_fd(),
            None => {
                let src_path = e.source.clone().unwrap_or_default();
                opened = fcntl::open(&src_path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
                    .map_err(|err| e.mount_err(err))?;
                opened.as_fd()
            }
        };
        let src_stat = stat::fstat(src).map_err(|err| e.mount_err(err))?;
        let src_is_proc =
            sys::fs_type(src.as_fd()).map_err(|err| e.mount_err(err))? == sys::PROC_SUPER_MAGIC;
        check_proc_dest(e, &e.dest, src_is_proc)?;
        let target = if file_type(src_stat.st_mode) == SFlag::S_IFDIR {
            self.root.mkdir_all(&e.dest, 0o755)
        } else {
            self.root.create_file(&e.dest, 0o755)
        }
        .map_err(|err| RootfsError::path(e.at(), err))?;
        self.check_resolved(e, target.as_fd(), src_is_proc)?;
        let mut flags = e.opts.flags;
        if e.dest == Path::new("/dev") {
            flags &= !libc::MS_RDONLY;
        }
        let src_path = sys::proc_fd_path(src);
        let source = match &tree {
            Some(t) if flags & libc::MS_REMOUNT == 0 => Src::Tree(t.as_fd()),
            _ => Src::Path(&src_path),
        };
        let after = self.mount_onto(e, target, source, None, flags, None)?;
        // A bind mount ignores the other flags: apply them with a remount, if any were given.
        if e.opts.flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT) != 0
            || e.opts.cleared != 0
        {
            self.remount_bind(e, after.as_fd(), src)?;
        }
        self.apply_rec_attr(e, after.as_fd())
    }

    /// MS_BIND|MS_REMOUNT with the requested flags; if the kernel refuses because the source
    /// mount has locked flags (user namespaces), retry keeping them, unless the user asked to
    /// clear one of them (runc's behaviour).
    fn remount_bind(
        &self,
        e: &Entry,
        target: BorrowedFd<'_>,
        src: BorrowedFd<'_>,
    ) -> Result<(), RootfsError> {
        let flags = e.opts.flags | libc::MS_BIND | libc::MS_REMOUNT;
        let first = match sys::mount_on_fd(None, target, None, flags, None) {
            Ok(()) => return Ok(()),
            Err(err) => err,
        };
        let src_flags = sys::mount_flags_of(src).map_err(|err| e.mount_err(err))?;
        let atime = ATIME_ENUM_FLAGS | libc::MS_NODIRATIME;
        if src_flags & e.opts.cleared & LOCKED_FLAGS != 0
            || (e.opts.flags & atime != 0 && e.opts.flags & atime != src_flags & atime)
        {
            return Err(e.mount_err(first));
        }
        sys::mount_on_fd(None, target, None, flags | (src_flags & LOCKED_FLAGS), None)
            .map_err(|err| e.mount_err(err))
    }

    fn apply_rec_attr(&self, e: &Entry, fd: BorrowedFd<'_>) -> Result<(), RootfsError> {
        if e.opts.rec_attr.is_empty() {
            return Ok(());
        }
        sys::mount_setattr_recursive(fd, e.opts.rec_attr)
            .map_err(|err| RootfsError::sys(e.at(), "mount_setattr", &e.dest, err))
    }

    /// Mounts onto `target`'s /proc/self/fd path, re-opens the destination and checks that
    /// the new mount is what the path now shows (CVE-2021-30465), then applies the propagation
    /// options. Returns the re-opened destination (an O_PATH fd on the new mount).
    pub fn mount_onto(
        &self,
        e: &Entry,
        target: OwnedFd,
        source: Src<'_>,
        fstype: Option<&str>,
        flags: libc::c_ulong,
        data: Option<&str>,
    ) -> Result<OwnedFd, RootfsError> {
        let before = sys::mount_id(target.as_fd())
            .map_err(|err| RootfsError::sys(e.at(), "statx", &e.dest, err))?;
        match source {
            Src::Tree(t) => sys::move_mount(t, target.as_fd()).map_err(|err| e.mount_err(err))?,
            Src::Path(p) => sys::mount_on_fd(Some(p), target.as_fd(), fstype, flags, data)
                .map_err(|err| e.mount_err(err))?,
        }
        drop(target);
        let after = self
            .root
            .open(&e.dest, OFlag::O_PATH)
            .map_err(|err| RootfsError::path(e.at(), err))?;
        let now = sys::mount_id(after.as_fd())
            .map_err(|err| RootfsError::sys(e.at(), "statx", &e.dest, err))?;
        // A remount changes an existing mount; everything else must add a new one.
        if flags & libc::MS_REMOUNT == 0 && before.is_some() && before == now {
            return Err(RootfsError::invalid(
                e.at(),
                "the new mount is not at the destination: the target changed while it was mounted (CVE-2021-30465)",
            ));
        }
        for &p in &e.opts.propagation {
            sys::mount_on_fd(None, after.as_fd(), None, p, None)
                .map_err(|err| RootfsError::sys(e.at(), "set propagation of", &e.dest, err))?;
        }
        Ok(after)
    }

    /// The target fd must be inside the rootfs and, resolved, not under /proc.
    fn check_resolved(
        &self,
        e: &Entry,
        target: BorrowedFd<'_>,
        src_is_proc: bool,
    ) -> Result<(), RootfsError> {
        let resolved = self
            .root
            .in_root_path(target)
            .map_err(|err| RootfsError::path(e.at(), err))?;
        check_proc_dest(e, &resolved, src_is_proc)
    }
}

/// What [`Mounter::mount_onto`] mounts: a source path for mount(2), or a detached tree stage 1
/// prepared (id-mapped, or a bind cloned before the user namespace), attached with move_mount.
pub enum Src<'a> {
    Path(&'a Path),
    Tree(BorrowedFd<'a>),
}

/// runc's checkProcMount: nothing may be mounted under /proc except a few files lxcfs
/// emulates, and only a procfs may go on /proc itself.
fn check_proc_dest(e: &Entry, dest: &Path, src_is_proc: bool) -> Result<(), RootfsError> {
    if !dest.starts_with("/proc") {
        return Ok(());
    }
    if dest == Path::new("/proc") {
        if e.fstype == "proc" || src_is_proc {
            return Ok(());
        }
        return Err(RootfsError::invalid(
            e.at(),
            format!("{dest:?} is /proc, and only a procfs may be mounted there"),
        ));
    }
    if PROC_MOUNT_ALLOWED.iter().any(|p| dest == Path::new(p)) {
        return Ok(());
    }
    Err(RootfsError::invalid(
        e.at(),
        format!("{dest:?} cannot be mounted because it is inside /proc"),
    ))
}

fn file_type(mode: libc::mode_t) -> SFlag {
    SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits())
}

/// The spec mounts finalize_rootfs remounts read-only: tmpfs and /dev mounts with "ro" (they
/// were mounted read-write so /dev nodes could be made and modes set).
pub(super) fn readonly_remounts(
    cfg: &RootfsConfig,
) -> Result<Vec<(String, PathBuf, libc::c_ulong)>, RootfsError> {
    let mut out = Vec::new();
    for (index, m) in cfg.mounts().iter().enumerate() {
        let e = Entry::from_spec(cfg, index, m)?;
        if e.opts.flags & libc::MS_RDONLY == 0 {
            continue;
        }
        if (e.fstype == "tmpfs" && !e.opts.is_bind()) || e.dest == Path::new("/dev") {
            out.push((e.at(), e.dest, e.opts.flags));
        }
    }
    Ok(out)
}

/// MS_BIND|MS_REMOUNT|MS_RDONLY with the mount's other flags; retried on EBUSY like runc.
pub(super) fn remount_readonly(
    root: &RootDir,
    field: &str,
    dest: &Path,
    flags: libc::c_ulong,
) -> Result<(), RootfsError> {
    let fd = root
        .open(dest, OFlag::O_PATH | OFlag::O_DIRECTORY)
        .map_err(|err| RootfsError::path(field, err))?;
    let flags = (flags & !(libc::MS_BIND | libc::MS_REC))
        | libc::MS_REMOUNT
        | libc::MS_BIND
        | libc::MS_RDONLY;
    let mut last = Errno::EBUSY;
    for _ in 0..5 {
        match sys::mount_on_fd(None, fd.as_fd(), None, flags, None) {
            Ok(()) => return Ok(()),
            Err(Errno::EBUSY) => {
                last = Errno::EBUSY;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(err) => return Err(RootfsError::sys(field, "remount read-only", dest, err)),
        }
    }
    Err(RootfsError::sys(field, "remount read-only", dest, last))
}

/// linux.mountLabel as the `context=` data of a filesystem the runtime mounts, where SELinux is
/// on (without it the label is ignored: crate::setup::lsm::check).
fn mount_label_data(cfg: &RootfsConfig, typ: &str) -> Option<String> {
    let label = cfg.spec.linux().as_ref()?.mount_label().as_deref()?;
    let context = crate::setup::lsm::mount_label_option(typ, Some(label))?;
    crate::setup::lsm::HostLsm::detect()
        .selinux
        .then_some(context)
}
