//! `linux.sysctl`: kernel parameters written under `/proc/sys` in the container's namespaces.
//!
//! Checked before anything is created ([`check_sysctl`], runc's `validateSysctl`): only keys
//! that belong to a namespace the container has its own copy of are allowed, so a container
//! can never change the host. Written by the init after `pivot_root`, before the masked and
//! read-only paths (runc's `standard_init_linux.go` order), through the container's procfs.

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{self, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use super::{errno_text, SetupError};
use crate::namespaces::{Kind, Namespaces};
use crate::rootfs::safe_path::{check_procfs, open_procfs, walk_is_forced};
use crate::rootfs::sys;

fn refuse(key: &str, reason: impl Into<String>) -> SetupError {
    SetupError::Sysctl {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// The file for `key` relative to `/proc/sys`. Like runc, `.` and `/` both separate
/// components; a key with a `/` keeps its dots (an interface name like `eth0.100`).
pub fn sysctl_path(key: &str) -> Result<PathBuf, SetupError> {
    let parts: Vec<&str> = if key.contains('/') {
        key.split('/').collect()
    } else {
        key.split('.').collect()
    };
    if key.contains('\0')
        || parts
            .iter()
            .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return Err(refuse(
            key,
            "not a sysctl name: use components like net.ipv4.ip_forward, without empty, \".\" or \"..\" parts",
        ));
    }
    Ok(parts.iter().collect())
}

/// The namespace whose copy of `key` the kernel keeps, or None where the key is global.
fn namespace_of(key: &str) -> Option<Kind> {
    // Compare in the dotted form whatever separator the config used.
    let dotted = key.replace('/', ".");
    const IPC: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&dotted.as_str()) || dotted.starts_with("fs.mqueue.") {
        Some(Kind::Ipc)
    } else if dotted.starts_with("net.") {
        Some(Kind::Net)
    } else if dotted == "kernel.hostname" || dotted == "kernel.domainname" {
        Some(Kind::Uts)
    } else {
        None
    }
}

/// True when `path` is the namespace this process (the runtime, on the host) is in.
fn is_host_namespace(kind: Kind, path: &Path) -> bool {
    let own = format!("/proc/self/ns/{}", kind.name());
    match (std::fs::metadata(path), std::fs::metadata(own)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Refuses a key the container could use to change the host (runc's `validateSysctl`).
pub fn check_sysctl(key: &str, ns: &Namespaces) -> Result<(), SetupError> {
    sysctl_path(key)?;
    let Some(kind) = namespace_of(key) else {
        return Err(refuse(
            key,
            "not in a separate kernel namespace: only net.*, fs.mqueue.*, the IPC kernel.* keys \
             (shm*, msg*, sem) and kernel.hostname/domainname can be set for a container",
        ));
    };
    match ns.get(kind) {
        None => Err(refuse(
            key,
            format!(
                "needs a new {} namespace: add {{\"type\": \"{}\"}} to linux.namespaces",
                kind.spec_name(),
                kind.spec_name()
            ),
        )),
        Some(n)
            if n.path
                .as_deref()
                .is_some_and(|p| is_host_namespace(kind, p)) =>
        {
            Err(refuse(
                key,
                format!(
                "linux.namespaces joins the host's {} namespace: the write would change the host",
                kind.spec_name()
            ),
            ))
        }
        Some(_) => Ok(()),
    }
}

/// Opens `/proc/sys/<rel>` for writing so that nothing in the container's rootfs can redirect
/// the write (CVE-2019-16884, CVE-2019-19921): `/proc` must be procfs, the lookup refuses
/// symlinks, `..` and mount crossings (CVE-2025-52881: a file mounted over the knob, even
/// another procfs file, gives EXDEV), and the file itself is checked to be on procfs.
/// `walk` skips openat2 (as a kernel without it does) so tests reach the fallback.
fn open_sysctl(procfs: &OwnedFd, rel: &Path, walk: bool) -> Result<OwnedFd, Errno> {
    let full = Path::new("sys").join(rel);
    let flags = OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
    let how = OpenHow::new().flags(flags).resolve(
        ResolveFlag::RESOLVE_BENEATH
            | ResolveFlag::RESOLVE_NO_SYMLINKS
            | ResolveFlag::RESOLVE_NO_MAGICLINKS
            | ResolveFlag::RESOLVE_NO_XDEV,
    );
    let fast = if walk {
        Err(Errno::ENOSYS)
    } else {
        fcntl::openat2(procfs.as_fd(), &full, how)
    };
    match fast {
        Err(Errno::ENOSYS) => {}
        other => return other,
    }
    // No openat2: one component at a time, never following a symlink, and every component
    // on the procfs mount itself (RESOLVE_NO_XDEV by hand).
    let base = same_mount_key(procfs.as_fd())?;
    let mut dir: Option<OwnedFd> = None;
    let comps: Vec<_> = full.components().collect();
    for (i, c) in comps.iter().enumerate() {
        let last = i + 1 == comps.len();
        let f = if last {
            flags
        } else {
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
        };
        let at = dir.as_ref().unwrap_or(procfs);
        let next = fcntl::openat(at.as_fd(), c.as_os_str(), f, Mode::empty())?;
        if same_mount_key(next.as_fd())? != base {
            return Err(Errno::EXDEV);
        }
        dir = Some(next);
    }
    dir.ok_or(Errno::ENOENT)
}

/// What tells mounts apart: the mount id where statx has it, else the device (a mount of
/// another filesystem, or of another procfs instance, has another one).
fn same_mount_key(fd: BorrowedFd<'_>) -> Result<(Option<u64>, u64), Errno> {
    let id = sys::mount_id(fd)?;
    let dev = if id.is_none() {
        nix::sys::stat::fstat(fd)?.st_dev
    } else {
        0
    };
    Ok((id, dev))
}

/// Writes every `linux.sysctl` entry through the container's `/proc` (call after pivot_root).
pub fn write_sysctls(sysctl: &HashMap<String, String>) -> Result<(), SetupError> {
    if sysctl.is_empty() {
        return Ok(());
    }
    let procfs = open_procfs().map_err(|e| SetupError::Sysctl {
        key: sysctl.keys().next().cloned().unwrap_or_default(),
        reason: format!("needs procfs mounted at /proc in the container: {e}"),
    })?;
    // Sorted, so a failure names the same key every run.
    let mut keys: Vec<&String> = sysctl.keys().collect();
    keys.sort();
    for key in keys {
        let value = &sysctl[key];
        let bad_value = |reason: String| SetupError::SysctlValue {
            key: key.clone(),
            value: value.clone(),
            reason,
        };
        let rel = sysctl_path(key)?;
        let fd = open_sysctl(&procfs, &rel, walk_is_forced()).map_err(|e| {
            let why = match e {
                Errno::ENOENT => "this kernel has no such sysctl".to_string(),
                Errno::ELOOP | Errno::EXDEV => {
                    "something in the container's /proc redirects it (CVE-2019-19921, CVE-2025-52881)"
                        .into()
                }
                e => errno_text(e),
            };
            refuse(key, format!("open /proc/sys/{}: {why}", rel.display()))
        })?;
        check_procfs(fd.as_fd(), &Path::new("/proc/sys").join(&rel))
            .map_err(|e| refuse(key, e.to_string()))?;
        let mut file = std::fs::File::from(fd);
        file.write_all(value.as_bytes()).map_err(|e| {
            bad_value(match e.raw_os_error() {
                Some(libc::EINVAL) => "the kernel refused the value: invalid argument".into(),
                _ => e.to_string(),
            })
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::setup::testutil::namespaces as ns;

    #[test]
    fn key_paths() {
        assert_eq!(
            sysctl_path("net.ipv4.ip_forward").unwrap(),
            Path::new("net/ipv4/ip_forward")
        );
        assert_eq!(
            sysctl_path("net/ipv4/conf/eth0.100/forwarding").unwrap(),
            Path::new("net/ipv4/conf/eth0.100/forwarding")
        );
        for bad in [
            "net..x",
            "net/../../etc",
            "",
            ".net",
            "net.",
            "/net/x",
            "a\0b",
        ] {
            let err = sysctl_path(bad).unwrap_err().to_string();
            assert!(err.starts_with("linux.sysctl["), "{bad:?}: {err}");
        }
    }

    #[test]
    fn open_refuses_symlinks_both_ways() {
        let procfs = open_procfs().unwrap();
        let rel = Path::new("net/ipv4/ip_forward");
        for walk in [false, true] {
            // Opened (not written): the host's value stays as it is.
            let fd = open_sysctl(&procfs, rel, walk).unwrap();
            check_procfs(fd.as_fd(), rel).unwrap();
            assert_eq!(
                open_sysctl(&procfs, Path::new("net/ipv4/no_such_knob"), walk).unwrap_err(),
                Errno::ENOENT
            );
        }
        // A fake /proc whose sys is a symlink to a writable place (CVE-2019-19921 class).
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere/net/ipv4");
        std::fs::create_dir_all(&target).unwrap();
        std::fs::write(target.join("ip_forward"), "x").unwrap();
        std::fs::create_dir(dir.path().join("proc")).unwrap();
        std::os::unix::fs::symlink("../elsewhere", dir.path().join("proc/sys")).unwrap();
        let fake: OwnedFd = std::fs::File::open(dir.path().join("proc")).unwrap().into();
        for walk in [false, true] {
            // openat2 says ELOOP; the walk's O_NOFOLLOW|O_DIRECTORY on the link says ENOTDIR.
            let err = open_sysctl(&fake, rel, walk).unwrap_err();
            assert!(
                matches!(err, Errno::ELOOP | Errno::ENOTDIR),
                "walk {walk}: {err}"
            );
        }
    }

    #[test]
    fn keys_need_their_namespace() {
        let all = ns(r#"[{"type":"mount"},{"type":"network"},{"type":"ipc"},{"type":"uts"}]"#);
        let none = ns(r#"[{"type":"mount"}]"#);
        for key in [
            "net.ipv4.ip_forward",
            "net/ipv4/ip_forward",
            "kernel.shmmax",
            "kernel.sem",
            "fs.mqueue.msg_max",
            "kernel.domainname",
        ] {
            check_sysctl(key, &all).unwrap();
            let err = check_sysctl(key, &none).unwrap_err().to_string();
            assert!(err.contains(&format!("linux.sysctl[{key:?}]")), "{err}");
            assert!(err.contains("needs a new"), "{err}");
        }
        for key in ["vm.swappiness", "kernel.pid_max", "kernel.shm_next_id"] {
            let err = check_sysctl(key, &all).unwrap_err().to_string();
            assert!(err.contains("not in a separate kernel namespace"), "{err}");
        }
        // Joining the host's own network namespace by path is the host.
        let host = ns(r#"[{"type":"mount"},{"type":"network","path":"/proc/self/ns/net"}]"#);
        let err = check_sysctl("net.ipv4.ip_forward", &host)
            .unwrap_err()
            .to_string();
        assert!(err.contains("host's network namespace"), "{err}");
    }
}
