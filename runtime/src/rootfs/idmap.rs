//! Id-mapped bind mounts: a mount's `uidMappings`/`gidMappings` with the "idmap" or "ridmap"
//! option (runtime-spec config.md, mount_setattr(2) MOUNT_ATTR_IDMAP).
//!
//! An id-mapped mount shows a file whose owner on disk is X as owned by the host id that X maps
//! to in the mapping (`containerID` X → `hostID`), so a container whose user namespace maps that
//! host id sees its own id there, and what it creates lands on disk as X.
//!
//! The mapping is applied with mount_setattr, which needs CAP_SYS_ADMIN over the source
//! filesystem's user namespace (the host's), something a container init in a user namespace no
//! longer has. So the work is split like runc's: stage 1, still in the host's user namespace,
//! [`prepare_bind_trees`]: for each such mount, open_tree(OPEN_TREE_CLONE) of the source
//! (with AT_RECURSIVE for "rbind"), a short-lived child in a new user namespace holding the
//! mapping (or the container's joined user namespace), and mount_setattr on the detached tree
//! (AT_RECURSIVE for "ridmap"). Stage 2, its forked child, attaches the tree at its turn among
//! the mounts with move_mount onto the target fd resolved inside the rootfs ([`attach`], called
//! by the mount code instead of mount(2)). The trees wait in a process-wide slot between the two:
//! stage 2 is a fork of stage 1 and shares its memory image and fds.
//!
//! "idmap" or "ridmap" without mappings takes the container's own mapping (linux.uidMappings
//! and gidMappings, or the user namespace joined by path); mappings without either option mean
//! "idmap", as in runc. Only bind mounts can be id-mapped here.
//!
//! The same two stages carry every other bind mount of a container with a user namespace: its
//! source is cloned (unmapped) in stage 1, because from inside the container's root may not
//! reach it by path.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::errno::Errno;
use nix::unistd::ForkResult;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Mount, Spec};

use super::mounts::Entry;
use super::options::MountOptions;
use super::{sys, RootfsConfig, RootfsError};

/// The kernel's limit on the lines of a uid_map or gid_map.
const MAX_MAP_LINES: usize = 340;

/// One line of a uid_map or gid_map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdRange {
    pub container: u32,
    pub host: u32,
    pub size: u32,
}

impl IdRange {
    /// Whether the kernel takes this line: at least one id, both ranges below 2^32.
    pub fn fits(&self) -> bool {
        self.size > 0
            && self.container.checked_add(self.size - 1).is_some()
            && self.host.checked_add(self.size - 1).is_some()
    }
}

/// Where the id-mapping's user namespace comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdmapSource {
    /// A new user namespace with these uid and gid maps.
    Maps {
        uid: Vec<IdRange>,
        gid: Vec<IdRange>,
    },
    /// The user namespace the container joins (linux.namespaces path).
    Joined(PathBuf),
}

/// A mount's id-mapping, as the options and mappings ask for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idmap {
    /// "ridmap": every mount of an "rbind" tree is mapped, not only the top one.
    pub recursive: bool,
    /// The option that asked for it, for messages: "idmap", "ridmap" or "uidMappings".
    pub option: &'static str,
    /// Filled in by [`resolve`]; `None` straight after option parsing.
    pub source: Option<IdmapSource>,
}

/// Detached, id-mapped trees made by stage 1, by mount field ("mounts[3]").
static PREPARED: Mutex<Vec<(String, OwnedFd)>> = Mutex::new(Vec::new());

fn ranges(at: &str, name: &str, maps: &[LinuxIdMapping]) -> Result<Vec<IdRange>, RootfsError> {
    if maps.is_empty() || maps.len() > MAX_MAP_LINES {
        return Err(RootfsError::invalid(
            at,
            format!("{name}: give 1 to {MAX_MAP_LINES} mappings"),
        ));
    }
    maps.iter()
        .map(|m| {
            let r = IdRange {
                container: m.container_id(),
                host: m.host_id(),
                size: m.size(),
            };
            if r.fits() {
                Ok(r)
            } else {
                Err(RootfsError::invalid(
                    at,
                    format!(
                        "{name} {{containerID {}, hostID {}, size {}}}: size must be at least 1 \
                         and the range must stay below 2^32",
                        r.container, r.host, r.size
                    ),
                ))
            }
        })
        .collect()
}

/// Completes `opts.idmap` for the mount `m` (called while the spec mount is read): mappings
/// alone mean "idmap"; uid and gid mappings go together; an option without mappings takes the
/// container's user namespace mapping; only bind mounts qualify.
pub(super) fn resolve(
    cfg: &RootfsConfig,
    at: &str,
    m: &Mount,
    opts: &mut MountOptions,
) -> Result<(), RootfsError> {
    let (uid, gid) = (m.uid_mappings().as_deref(), m.gid_mappings().as_deref());
    if opts.idmap.is_none() && uid.is_none() && gid.is_none() {
        return Ok(());
    }
    if uid.is_some() != gid.is_some() {
        return Err(RootfsError::invalid(
            at,
            "uidMappings and gidMappings go together: give both or neither",
        ));
    }
    let mut idmap = opts.idmap.take().unwrap_or(Idmap {
        recursive: false,
        option: "uidMappings",
        source: None,
    });
    if !opts.is_bind() {
        return Err(RootfsError::invalid(
            at,
            format!(
                "option {:?}: id-mapped mounts are supported for bind mounts only (add \"bind\" \
                 or \"rbind\")",
                idmap.option
            ),
        ));
    }
    idmap.source = Some(match (uid, gid) {
        (Some(u), Some(g)) => IdmapSource::Maps {
            uid: ranges(at, "uidMappings", u)?,
            gid: ranges(at, "gidMappings", g)?,
        },
        _ => container_source(cfg, at, idmap.option)?,
    });
    opts.idmap = Some(idmap);
    Ok(())
}

/// The container's own mapping, for "idmap"/"ridmap" without mappings of their own.
fn container_source(
    cfg: &RootfsConfig,
    at: &str,
    option: &str,
) -> Result<IdmapSource, RootfsError> {
    let linux = cfg.spec.linux().as_ref();
    let userns = linux
        .and_then(|l| l.namespaces().as_ref())
        .and_then(|ns| ns.iter().find(|n| n.typ() == LinuxNamespaceType::User));
    let Some(userns) = userns else {
        return Err(RootfsError::invalid(
            at,
            format!(
                "option {option:?} without uidMappings/gidMappings takes the container's user \
                 namespace mapping, and the container has no user namespace: give the mount \
                 its own uidMappings and gidMappings"
            ),
        ));
    };
    if let Some(path) = userns.path() {
        return Ok(IdmapSource::Joined(path.clone()));
    }
    let maps = |m: Option<&Vec<LinuxIdMapping>>, name| -> Result<Vec<IdRange>, RootfsError> {
        ranges(
            &format!("{at}: linux.{name}"),
            name,
            m.map_or(&[], Vec::as_slice),
        )
    };
    Ok(IdmapSource::Maps {
        uid: maps(linux.and_then(|l| l.uid_mappings().as_ref()), "uidMappings")?,
        gid: maps(linux.and_then(|l| l.gid_mappings().as_ref()), "gidMappings")?,
    })
}

/// Stage 1, before it leaves the host's user namespace: a detached id-mapped tree for every
/// id-mapped spec mount, kept for [`take`]. Mounts without a mapping cost nothing here, except
/// in a container with a user namespace: there every bind source is cloned now too (a plain
/// open_tree clone), because the container's root may not be allowed to reach it by path from
/// inside (a 0700 state dir of containerd, kubelet's 0750 pod volume dirs), as runc does. A
/// plain bind whose source cannot be cloned here is left to stage 2 and its path.
pub fn prepare_bind_trees(
    spec: &Spec,
    rootfs: &Path,
    bundle: &Path,
    in_user_ns: bool,
) -> Result<(), RootfsError> {
    let mounts = spec.mounts().as_deref().unwrap_or(&[]);
    let idmapped = |m: &Mount| {
        m.uid_mappings().is_some()
            || m.gid_mappings().is_some()
            || m.options()
                .iter()
                .flatten()
                .any(|o| o == "idmap" || o == "ridmap")
    };
    let bind = |m: &Mount| {
        m.typ().as_deref() == Some("bind")
            || m.options()
                .iter()
                .flatten()
                .any(|o| o == "bind" || o == "rbind")
    };
    let wanted = |m: &Mount| idmapped(m) || (in_user_ns && bind(m));
    if !mounts.iter().any(wanted) {
        return Ok(());
    }
    let cfg = RootfsConfig {
        spec,
        rootfs,
        bundle,
        no_pivot: false,
        in_user_ns,
    };
    let mut usernses: HashMap<IdmapSource, OwnedFd> = HashMap::new();
    let mut prepared = Vec::new();
    for (index, m) in mounts.iter().enumerate() {
        if !wanted(m) {
            continue;
        }
        let e = Entry::from_spec(&cfg, index, m)?;
        let rec = if e.opts.flags & libc::MS_REC != 0 {
            libc::AT_RECURSIVE as libc::c_uint
        } else {
            0
        };
        let src = e.source.clone().unwrap_or_default();
        let Some(Idmap {
            recursive,
            option,
            source: Some(source),
        }) = &e.opts.idmap
        else {
            if e.opts.is_bind() {
                match sys::open_tree_clone(None, &src, rec) {
                    Ok(tree) => prepared.push((e.field.clone(), tree)),
                    Err(err) => log::debug!(
                        "{}: clone of {} not made before the user namespace ({}); \
                         stage 2 binds the path",
                        e.at(),
                        src.display(),
                        super::sys::SysErr(err)
                    ),
                }
            }
            continue;
        };
        if !usernses.contains_key(source) {
            let fd = userns_for(source)
                .map_err(|why| RootfsError::invalid(e.at(), format!("option {option:?}: {why}")))?;
            usernses.insert(source.clone(), fd);
        }
        let userns = &usernses[source];
        let tree = sys::open_tree_clone(None, &src, rec)
            .map_err(|err| e_sys(&e, option, "open_tree", &src, err))?;
        let idmap = sys::MountAttr {
            set: libc::MOUNT_ATTR_IDMAP,
            clear: 0,
        };
        sys::mount_setattr(tree.as_fd(), idmap, *recursive, Some(userns.as_fd())).map_err(
            |err| match err {
                Errno::EINVAL => RootfsError::invalid(
                    e.at(),
                    format!(
                    "option {option:?}: the filesystem of source {:?} does not support id-mapped \
                     mounts (mount_setattr MOUNT_ATTR_IDMAP: {})",
                    src.display(),
                    super::sys::SysErr(err)
                ),
                ),
                err => e_sys(&e, option, "mount_setattr(MOUNT_ATTR_IDMAP) on", &src, err),
            },
        )?;
        prepared.push((e.field.clone(), tree));
    }
    PREPARED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend(prepared);
    Ok(())
}

fn e_sys(e: &Entry, option: &str, op: &str, src: &Path, err: Errno) -> RootfsError {
    RootfsError::invalid(
        e.at(),
        format!(
            "option {option:?}: {op} {:?}: {}",
            src.display(),
            super::sys::SysErr(err)
        ),
    )
}

/// Stage 2: the tree stage 1 made for `e` (id-mapped, or a plain clone in a container with a
/// user namespace), to attach in place of the bind mount; `None` when none was made. An
/// id-mapped mount without its tree is an error.
pub(super) fn take(e: &Entry) -> Result<Option<OwnedFd>, RootfsError> {
    let tree = {
        let mut slot = PREPARED.lock().unwrap_or_else(|p| p.into_inner());
        let pos = slot.iter().position(|(f, _)| *f == e.field);
        pos.map(|i| slot.remove(i).1)
    };
    if tree.is_none() && e.opts.idmap.is_some() {
        return Err(RootfsError::invalid(
            e.at(),
            "the id-mapped mount was not prepared before the namespaces were entered",
        ));
    }
    Ok(tree)
}

/// A user namespace fd for `source`: the joined one, or one made for the maps by a child that
/// unshares and waits while the maps are written, then exits (the fd keeps the namespace).
pub fn userns_for(source: &IdmapSource) -> Result<OwnedFd, String> {
    let (uid, gid) = match source {
        IdmapSource::Joined(path) => {
            return nix::fcntl::open(
                path,
                nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|e| {
                format!(
                    "open the container's user namespace {}: {}",
                    path.display(),
                    super::sys::SysErr(e)
                )
            });
        }
        IdmapSource::Maps { uid, gid } => (uid, gid),
    };
    let text = |maps: &[IdRange]| -> String {
        maps.iter()
            .map(|r| format!("{} {} {}\n", r.container, r.host, r.size))
            .collect()
    };
    let (uid_text, gid_text) = (text(uid), text(gid));
    let flags = nix::fcntl::OFlag::O_CLOEXEC;
    let (ready_r, ready_w) = nix::unistd::pipe2(flags).map_err(|e| format!("pipe: {e}"))?;
    let (go_r, go_w) = nix::unistd::pipe2(flags).map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: the child only makes raw syscalls (unshare, write, read, _exit): it allocates
    // nothing and takes no lock, so forking from a threaded process (unit tests) is fine too.
    match unsafe { nix::unistd::fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            // Our copy of the write end would keep the wait below from ever seeing EOF.
            drop(go_w);
            drop(ready_r);
            let ok = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER).is_ok();
            let _ = nix::unistd::write(&ready_w, &[u8::from(ok)]);
            let mut b = [0u8; 1];
            let _ = nix::unistd::read(&go_r, &mut b);
            // SAFETY: _exit ends the child without running the parent's atexit handlers.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(ready_w);
            drop(go_r);
            let result = (|| {
                let mut b = [0u8; 1];
                match nix::unistd::read(&ready_r, &mut b) {
                    Ok(1) if b[0] == 1 => {}
                    _ => return Err("could not make a user namespace for the mapping".to_string()),
                }
                let pid = child.as_raw();
                for (file, content) in [("uid_map", &uid_text), ("gid_map", &gid_text)] {
                    let path = format!("/proc/{pid}/{file}");
                    std::fs::write(&path, content)
                        .map_err(|e| format!("write {content:?} to {path}: {e}"))?;
                }
                nix::fcntl::open(
                    format!("/proc/{pid}/ns/user").as_str(),
                    nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                )
                .map_err(|e| format!("open the mapping's user namespace: {e}"))
            })();
            // Closing the pipe lets the child exit; it is ours to reap.
            drop(go_w);
            let _ = nix::sys::wait::waitpid(child, None);
            result
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked() {
        let m = |c, h, s| -> LinuxIdMapping {
            serde_json::from_value(serde_json::json!({"containerID": c, "hostID": h, "size": s}))
                .unwrap()
        };
        assert_eq!(
            ranges("m", "uidMappings", &[m(0, 100000, 65536)]).unwrap(),
            vec![IdRange {
                container: 0,
                host: 100000,
                size: 65536
            }]
        );
        for bad in [vec![], vec![m(0, 1, 0)], vec![m(u32::MAX, 1, 2)]] {
            let err = ranges("mounts[0]", "uidMappings", &bad)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("mounts[0]: uidMappings"), "{err}");
        }
    }

    #[test]
    fn makes_a_user_namespace_with_the_maps() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let maps = vec![IdRange {
            container: 0,
            host: 100000,
            size: 10,
        }];
        let fd = userns_for(&IdmapSource::Maps {
            uid: maps.clone(),
            gid: maps,
        })
        .unwrap();
        let own = std::fs::metadata("/proc/self/ns/user").unwrap();
        let st = nix::sys::stat::fstat(&fd).unwrap();
        assert_ne!(st.st_ino, std::os::unix::fs::MetadataExt::ino(&own));
    }
}
