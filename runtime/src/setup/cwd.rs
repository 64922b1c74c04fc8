//! The container process' working directory (`process.cwd`).

use std::path::Path;

use nix::errno::Errno;

use super::{errno_text, SetupError};

/// The first of runc's two chdir attempts, made before `setup_user`: the runtime's user may
/// enter directories the container user cannot. `Ok(true)`: done and verified. `Ok(false)`:
/// permission denied, so call [`change_dir`] again after `setup_user` (a volume owned by the
/// container user may be closed to root in a user namespace). Any other failure is an error.
pub fn change_dir_early(cwd: &str) -> Result<bool, SetupError> {
    match chdir(cwd) {
        Ok(()) => verify(cwd).map(|()| true),
        Err(Some(Errno::EACCES | Errno::EPERM)) => Ok(false),
        Err(errno) => Err(chdir_error(cwd, errno)),
    }
}

/// chdir(cwd), then checks that the new cwd is inside the container's root.
///
/// CVE-2024-21626: with a leaked host fd, `cwd = /proc/self/fd/N` lands on a host directory. The
/// kernel's getcwd marks a cwd outside the current root "(unreachable)", which glibc reports as
/// ENOENT; either means the cwd escaped and the process must not run. The path getcwd returns
/// need not equal `cwd` (symlinks in it are resolved), so only its reachability is checked.
/// Call it after `setup_user` (or after [`change_dir_early`] said so), so the container user's
/// permissions apply.
pub fn change_dir(cwd: &str) -> Result<(), SetupError> {
    chdir(cwd).map_err(|errno| chdir_error(cwd, errno))?;
    verify(cwd)
}

fn cwd_err(cwd: &str, reason: String) -> SetupError {
    SetupError::Cwd {
        cwd: cwd.to_string(),
        reason,
    }
}

/// `Err(None)`: the path is not absolute.
fn chdir(cwd: &str) -> Result<(), Option<Errno>> {
    if !Path::new(cwd).is_absolute() {
        return Err(None);
    }
    nix::unistd::chdir(cwd).map_err(Some)
}

fn chdir_error(cwd: &str, errno: Option<Errno>) -> SetupError {
    cwd_err(
        cwd,
        match errno {
            None => "must be an absolute path".into(),
            Some(e @ (Errno::EACCES | Errno::EPERM)) => {
                format!("{}: the container user may not enter it", errno_text(e))
            }
            Some(e) => errno_text(e),
        },
    )
}

fn verify(cwd: &str) -> Result<(), SetupError> {
    match nix::unistd::getcwd() {
        Ok(wd) if wd.is_absolute() => Ok(()),
        Ok(wd) => Err(cwd_err(
            cwd,
            format!(
                "the working directory {wd:?} is outside the container root: possible container \
                 breakout (CVE-2024-21626), refusing to run"
            ),
        )),
        Err(Errno::ENOENT) => Err(cwd_err(
            cwd,
            "the working directory is outside the container root: possible container breakout \
             (CVE-2024-21626), refusing to run"
                .into(),
        )),
        // A seccomp profile may deny getcwd (it is loaded before this step when
        // noNewPrivileges is off): the kernel's /proc/self/cwd link tells the same, with
        // "(unreachable)" in front of a path outside the root.
        Err(e @ (Errno::EPERM | Errno::EACCES)) => match std::fs::read_link("/proc/self/cwd") {
            Ok(wd) if wd.is_absolute() => Ok(()),
            Ok(wd) => Err(cwd_err(
                cwd,
                format!(
                    "the working directory {wd:?} is outside the container root: possible \
                     container breakout (CVE-2024-21626), refusing to run"
                ),
            )),
            Err(_) => Err(cannot_verify(cwd, e)),
        },
        Err(e) => Err(cannot_verify(cwd, e)),
    }
}

fn cannot_verify(cwd: &str, e: Errno) -> SetupError {
    cwd_err(
        cwd,
        format!(
            "cannot verify the working directory is inside the container root: getcwd: {}",
            errno_text(e)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::setup::testutil::*;
    use std::os::fd::AsRawFd;

    // These fail before chdir, so they leave this process' cwd alone.
    #[test]
    fn relative_cwd_is_refused() {
        let err = change_dir("tmp").unwrap_err().to_string();
        assert_eq!(err, "process.cwd \"tmp\": must be an absolute path");
    }

    #[test]
    fn file_cwd_is_not_a_directory() {
        let err = change_dir("/etc/passwd").unwrap_err().to_string();
        assert_eq!(err, "process.cwd \"/etc/passwd\": not a directory");
        let err = change_dir("/nonexistent-myrt").unwrap_err().to_string();
        assert_eq!(
            err,
            "process.cwd \"/nonexistent-myrt\": no such file or directory"
        );
    }

    #[test]
    fn change_dir_child() {
        if !in_child() {
            assert_child_ok(&run_child(module_path!(), "change_dir_child"));
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        std::os::unix::fs::symlink(&real, real.join("link")).unwrap();
        change_dir(real.join("link").to_str().unwrap()).unwrap();
        assert_eq!(nix::unistd::getcwd().unwrap(), real);
    }

    /// A directory only the container user may enter: the early attempt as root (without
    /// CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH, like root in a user namespace) says "later", and
    /// the chdir after the uid change works.
    #[test]
    fn change_dir_after_user_switch_child() {
        if !in_child() {
            assert_child_ok(&run_child(
                module_path!(),
                "change_dir_after_user_switch_child",
            ));
            return;
        }
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("private");
        std::fs::create_dir(&dir).unwrap();
        nix::unistd::chown(&dir, Some(nix::unistd::Uid::from_raw(1000)), None).unwrap();
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        let mut eff = caps::read(None, caps::CapSet::Effective).unwrap();
        eff.remove(&caps::Capability::CAP_DAC_OVERRIDE);
        eff.remove(&caps::Capability::CAP_DAC_READ_SEARCH);
        caps::set(None, caps::CapSet::Effective, &eff).unwrap();

        let cwd = dir.to_str().unwrap();
        assert!(!change_dir_early(cwd).unwrap());
        let err = change_dir(cwd).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("process.cwd {cwd:?}: permission denied: the container user may not enter it")
        );
        let user = oci_spec::runtime::UserBuilder::default()
            .uid(1000u32)
            .gid(1000u32)
            .build()
            .unwrap();
        crate::setup::setup_user(&user).unwrap();
        change_dir(cwd).unwrap();
        assert_eq!(nix::unistd::getcwd().unwrap(), dir.canonicalize().unwrap());
        // And the early attempt that works is the whole job.
        assert!(change_dir_early("/").unwrap());
        assert_eq!(nix::unistd::getcwd().unwrap(), Path::new("/"));
    }

    /// CVE-2024-21626: a directory fd from outside the root, reached through
    /// /proc/self/fd/N as the cwd, is refused. Runs chrooted in a private mount + pid namespace.
    #[test]
    fn cwd_through_leaked_fd_is_refused_child() {
        if !in_child() {
            assert_child_ok(&run_child_unshared(
                module_path!(),
                "cwd_through_leaked_fd_is_refused_child",
            ));
            return;
        }
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("root");
        let outside = base.path().join("outside");
        std::fs::create_dir_all(root.join("proc")).unwrap();
        std::fs::create_dir(&outside).unwrap();
        // This child runs in its own mount namespace (unshare --propagation private).
        nix::mount::mount(
            Some("proc"),
            &root.join("proc"),
            Some("proc"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        let leaked = std::fs::File::open(&outside).unwrap();
        nix::unistd::chroot(&root).unwrap();
        change_dir("/").unwrap();
        change_dir("/proc").unwrap();
        let cwd = format!("/proc/self/fd/{}", leaked.as_raw_fd());
        let early = change_dir_early(&cwd).unwrap_err().to_string();
        let err = change_dir(&cwd).unwrap_err().to_string();
        assert_eq!(early, err);
        assert_eq!(
            err,
            format!(
                "process.cwd \"{cwd}\": the working directory is outside the container root: \
                 possible container breakout (CVE-2024-21626), refusing to run"
            )
        );
    }
}
