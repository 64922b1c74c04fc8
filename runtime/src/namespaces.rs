//! Linux namespaces: which ones a container gets, created new or joined by path, and the order
//! in which the init joins them.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType, Spec};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("linux.namespaces: {kind} namespace listed twice")]
    Duplicate { kind: &'static str },
    #[error("linux.namespaces: {kind} namespace path {path:?}: {source}")]
    Open {
        kind: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "linux.namespaces: {kind} namespace path {path:?} is not a {kind} namespace (got {got})"
    )]
    WrongType {
        kind: &'static str,
        path: PathBuf,
        got: String,
    },
    #[error("linux.namespaces: join {kind} namespace {path:?}: {source}")]
    Setns {
        kind: &'static str,
        path: PathBuf,
        source: nix::Error,
    },
    #[error("linux.namespaces: unshare {what}: {source}")]
    Unshare { what: String, source: nix::Error },
    #[error(
        "linux.namespaces: a user namespace without a mount namespace of its own cannot mount \
         in the runtime's mount namespace: add {{\"type\": \"mount\"}}"
    )]
    UserWithoutMount,
    #[error(
        "linux.{field}: set, but the container shares the runtime's {kind} namespace: add \
         {{\"type\": \"{kind}\"}} to linux.namespaces"
    )]
    NeedsOwn {
        field: &'static str,
        kind: &'static str,
    },
}

/// The namespace kinds in the order the init joins them by path (after a first pass over the
/// others, see [`join_pending`]): user first (joining it grants the capabilities needed for the
/// rest), mount last so the other paths resolve on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    User,
    Ipc,
    Uts,
    Net,
    Pid,
    Cgroup,
    Time,
    Mount,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::User,
        Kind::Ipc,
        Kind::Uts,
        Kind::Net,
        Kind::Pid,
        Kind::Cgroup,
        Kind::Time,
        Kind::Mount,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Ipc => "ipc",
            Kind::Uts => "uts",
            Kind::Net => "net",
            Kind::Pid => "pid",
            Kind::Cgroup => "cgroup",
            Kind::Time => "time",
            Kind::Mount => "mnt",
        }
    }

    /// The name config.json uses (`type` in linux.namespaces).
    pub fn spec_name(self) -> &'static str {
        match self {
            Kind::Net => "network",
            Kind::Mount => "mount",
            k => k.name(),
        }
    }

    pub fn flag(self) -> CloneFlags {
        match self {
            Kind::User => CloneFlags::CLONE_NEWUSER,
            Kind::Ipc => CloneFlags::CLONE_NEWIPC,
            Kind::Uts => CloneFlags::CLONE_NEWUTS,
            Kind::Net => CloneFlags::CLONE_NEWNET,
            Kind::Pid => CloneFlags::CLONE_NEWPID,
            Kind::Cgroup => CloneFlags::CLONE_NEWCGROUP,
            Kind::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
            Kind::Mount => CloneFlags::CLONE_NEWNS,
        }
    }

    fn from_oci(t: LinuxNamespaceType) -> Kind {
        match t {
            LinuxNamespaceType::User => Kind::User,
            LinuxNamespaceType::Ipc => Kind::Ipc,
            LinuxNamespaceType::Uts => Kind::Uts,
            LinuxNamespaceType::Network => Kind::Net,
            LinuxNamespaceType::Pid => Kind::Pid,
            LinuxNamespaceType::Cgroup => Kind::Cgroup,
            LinuxNamespaceType::Time => Kind::Time,
            LinuxNamespaceType::Mount => Kind::Mount,
        }
    }
}

/// One namespace of the container: new (`path` None) or joined.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    pub kind: Kind,
    pub path: Option<PathBuf>,
}

/// The container's namespaces, one per kind at most, sorted in join order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespaces(pub Vec<Namespace>);

impl Namespaces {
    pub fn from_spec(spec: &Spec) -> Result<Namespaces, NamespaceError> {
        let list: &[LinuxNamespace] = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_deref())
            .unwrap_or(&[]);
        let mut out: Vec<Namespace> = Vec::with_capacity(list.len());
        for ns in list {
            let kind = Kind::from_oci(ns.typ());
            if out.iter().any(|n| n.kind == kind) {
                return Err(NamespaceError::Duplicate {
                    kind: kind.spec_name(),
                });
            }
            let path = ns
                .path()
                .as_ref()
                .filter(|p| !p.as_os_str().is_empty())
                .cloned();
            out.push(Namespace { kind, path });
        }
        out.sort_by_key(|n| Kind::ALL.iter().position(|k| *k == n.kind));
        Ok(Namespaces(out))
    }

    pub fn get(&self, kind: Kind) -> Option<&Namespace> {
        self.0.iter().find(|n| n.kind == kind)
    }

    /// True when the container gets a fresh namespace of this kind.
    pub fn is_new(&self, kind: Kind) -> bool {
        self.get(kind).is_some_and(|n| n.path.is_none())
    }

    /// Flags of every namespace to create, except user (created first, on its own).
    pub fn new_flags_except_user(&self) -> CloneFlags {
        self.0
            .iter()
            .filter(|n| n.path.is_none() && n.kind != Kind::User)
            .fold(CloneFlags::empty(), |acc, n| acc | n.kind.flag())
    }

    /// The namespaces to join for `exec` into a running container: every kind the container has,
    /// taken from its init's /proc entry (so joined and new ones are treated alike).
    pub fn of_process(&self, pid: crate::Pid) -> Namespaces {
        Namespaces(
            self.0
                .iter()
                .map(|n| Namespace {
                    kind: n.kind,
                    path: Some(PathBuf::from(format!(
                        "/proc/{}/ns/{}",
                        pid.as_raw(),
                        n.kind.name()
                    ))),
                })
                .collect(),
        )
    }

    /// Checks early, in the caller, that every path names a namespace of the right kind, so a
    /// typo fails `create` with the field and path instead of deep inside the init.
    pub fn validate_paths(&self) -> Result<(), NamespaceError> {
        for ns in &self.0 {
            if let Some(path) = &ns.path {
                open_ns(ns.kind, path)?;
            }
        }
        Ok(())
    }
}

fn open_ns(kind: Kind, path: &Path) -> Result<File, NamespaceError> {
    let file = File::open(path).map_err(|source| NamespaceError::Open {
        kind: kind.spec_name(),
        path: path.to_path_buf(),
        source,
    })?;
    // The magic link of a namespace file reads "<kind>:[inode]"; a bind-mounted nsfs file is
    // checked by joining it with the kind's flag, which the kernel refuses for the wrong type.
    if let Ok(target) = std::fs::read_link(path) {
        let got = target.to_string_lossy().to_string();
        if let Some((prefix, _)) = got.split_once(':') {
            let want = match kind {
                Kind::Time => "time",
                k => k.name(),
            };
            if prefix != want && !(kind == Kind::Time && prefix == "time_for_children") {
                return Err(NamespaceError::WrongType {
                    kind: kind.spec_name(),
                    path: path.to_path_buf(),
                    got,
                });
            }
        }
    }
    Ok(file)
}

/// A namespace given by path, opened and not joined yet.
#[derive(Debug)]
pub struct Opened {
    pub kind: Kind,
    path: PathBuf,
    file: File,
}

impl Namespaces {
    /// Opens every namespace path before any is joined: once the init is in the container's user
    /// or mount namespace, a path may be out of its reach (a 0700 state dir of containerd).
    pub fn open_paths(&self) -> Result<Vec<Opened>, NamespaceError> {
        self.0
            .iter()
            .filter_map(|n| n.path.as_ref().map(|p| (n.kind, p)))
            .map(|(kind, path)| {
                Ok(Opened {
                    kind,
                    path: path.clone(),
                    file: open_ns(kind, path)?,
                })
            })
            .collect()
    }
}

/// Joins the opened namespaces of the kinds `which` accepts, in order, and drops them from
/// `pending`. EPERM leaves one pending: as in runc (nsexec.c join_namespaces), the non-user
/// namespaces are tried before the user namespace is joined or made (containerd 2.x gives a
/// user-namespaced pod a netns owned by a user namespace of its own, which only the host's root
/// may enter) and again after (namespaces owned by a joined user namespace may need its
/// capabilities). Any other error fails at once. Runs in the single-threaded init.
pub fn join_pending(
    pending: &mut Vec<Opened>,
    which: impl Fn(Kind) -> bool,
) -> Result<(), NamespaceError> {
    let mut left = Vec::with_capacity(pending.len());
    for ns in pending.drain(..) {
        if !which(ns.kind) {
            left.push(ns);
            continue;
        }
        match nix::sched::setns(ns.file.as_fd(), ns.kind.flag()) {
            Ok(()) => {}
            Err(nix::errno::Errno::EPERM) => left.push(ns),
            Err(source) => {
                return Err(NamespaceError::Setns {
                    kind: ns.kind.spec_name(),
                    path: ns.path,
                    source,
                })
            }
        }
    }
    *pending = left;
    Ok(())
}

/// After a pass of [`join_pending`]: an error for the first namespace of the kinds `which`
/// accepts that is still not joined.
pub fn check_joined(
    pending: &[Opened],
    which: impl Fn(Kind) -> bool,
) -> Result<(), NamespaceError> {
    match pending.iter().find(|ns| which(ns.kind)) {
        None => Ok(()),
        Some(ns) => Err(NamespaceError::Setns {
            kind: ns.kind.spec_name(),
            path: ns.path.clone(),
            source: nix::errno::Errno::EPERM,
        }),
    }
}

pub fn unshare(flags: CloneFlags) -> Result<(), NamespaceError> {
    if flags.is_empty() {
        return Ok(());
    }
    nix::sched::unshare(flags).map_err(|source| NamespaceError::Unshare {
        what: format!("{flags:?}"),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_with(ns: &str) -> Spec {
        let json = format!(
            r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}},"linux":{{"namespaces":{ns}}}}}"#
        );
        serde_json::from_str(&json).unwrap()
    }

    #[test]
    fn sorted_in_join_order_with_paths() {
        let s = spec_with(
            r#"[{"type":"mount"},{"type":"network","path":"/proc/1/ns/net"},{"type":"user"},{"type":"pid"}]"#,
        );
        let ns = Namespaces::from_spec(&s).unwrap();
        let kinds: Vec<Kind> = ns.0.iter().map(|n| n.kind).collect();
        assert_eq!(kinds, vec![Kind::User, Kind::Net, Kind::Pid, Kind::Mount]);
        assert!(ns.is_new(Kind::Mount));
        assert!(!ns.is_new(Kind::Net));
        let flags = ns.new_flags_except_user();
        assert!(flags.contains(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID));
        assert!(!flags.contains(CloneFlags::CLONE_NEWUSER));
        assert!(!flags.contains(CloneFlags::CLONE_NEWNET));
    }

    #[test]
    fn duplicate_is_refused() {
        let s = spec_with(r#"[{"type":"pid"},{"type":"pid"}]"#);
        assert!(matches!(
            Namespaces::from_spec(&s),
            Err(NamespaceError::Duplicate { kind: "pid" })
        ));
    }

    #[test]
    fn wrong_or_missing_path_names_the_path() {
        let s = spec_with(r#"[{"type":"network","path":"/proc/self/ns/uts"}]"#);
        let err = Namespaces::from_spec(&s)
            .unwrap()
            .validate_paths()
            .unwrap_err()
            .to_string();
        assert!(err.contains("/proc/self/ns/uts"), "{err}");
        let s = spec_with(r#"[{"type":"ipc","path":"/nonexistent/ns"}]"#);
        let err = Namespaces::from_spec(&s)
            .unwrap()
            .validate_paths()
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/ns"), "{err}");
    }
}
