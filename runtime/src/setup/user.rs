//! The container user: supplementary groups, gid, uid, and the umask.

use nix::errno::Errno;
use nix::sys::stat::{umask, Mode};
use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::User;

use super::{errno_text, SetupError};

/// The umask when `process.user.umask` is absent (runc's).
pub const DEFAULT_UMASK: u32 = 0o022;

/// Sets the process umask to `process.user.umask`, or 0022 when it is absent.
pub fn set_umask(mask: Option<u32>) -> Result<(), SetupError> {
    let mask = mask.unwrap_or(DEFAULT_UMASK);
    let mode = Mode::from_bits(mask)
        .filter(|_| mask <= 0o777)
        .ok_or_else(|| SetupError::Umask {
            umask: mask,
            reason: "a umask holds permission bits only (at most 0777)".into(),
        })?;
    umask(mode);
    Ok(())
}

/// What /proc/self/setgroups says: false when this user namespace denies setgroups(2).
fn setgroups_allowed() -> bool {
    // The file is missing on kernels without user namespaces: setgroups is allowed there.
    match std::fs::read_to_string("/proc/self/setgroups") {
        Ok(text) => text.trim() != "deny",
        Err(_) => true,
    }
}

/// Switches to `process.user`: supplementary groups (exactly `additionalGids`, so root's groups
/// do not leak in), then gid, then uid (in that order: after the uid change the process may no
/// longer change its gid).
///
/// In a user namespace whose setgroups is "deny" the groups are left alone (the kernel refuses
/// any change), and asking for additional gids there is an error. The permitted capability set
/// survives the uid change (PR_SET_KEEPCAPS) so `apply_capabilities` can run afterwards; the
/// effective set is empty after switching to a non-zero uid until then.
pub fn setup_user(user: &User) -> Result<(), SetupError> {
    let additional: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    if setgroups_allowed() {
        setgroups(&additional).map_err(|e| SetupError::User {
            field: "additionalGids",
            value: format!("{:?}", user.additional_gids().clone().unwrap_or_default()),
            reason: format!("setgroups: {}", errno_text(e)),
        })?;
    } else if !additional.is_empty() {
        return Err(SetupError::User {
            field: "additionalGids",
            value: format!("{:?}", user.additional_gids().clone().unwrap_or_default()),
            reason: "this user namespace denies setgroups (/proc/self/setgroups is \"deny\"): \
                     remove the additional gids or allow setgroups"
                .into(),
        });
    }

    fix_stdio_owner(user.uid())?;

    nix::sys::prctl::set_keepcaps(true).map_err(|e| SetupError::User {
        field: "uid",
        value: user.uid().to_string(),
        reason: format!("prctl(PR_SET_KEEPCAPS): {}", errno_text(e)),
    })?;

    let gid = Gid::from_raw(user.gid());
    setresgid(gid, gid, gid).map_err(|e| SetupError::User {
        field: "gid",
        value: user.gid().to_string(),
        reason: id_reason("setresgid", e),
    })?;
    let uid = Uid::from_raw(user.uid());
    setresuid(uid, uid, uid).map_err(|e| SetupError::User {
        field: "uid",
        value: user.uid().to_string(),
        reason: id_reason("setresuid", e),
    })?;

    // KEEPCAPS matters only at the moment of the uid change; the exec clears it anyway.
    nix::sys::prctl::set_keepcaps(false).map_err(|e| SetupError::User {
        field: "uid",
        value: user.uid().to_string(),
        reason: format!("prctl(PR_SET_KEEPCAPS, 0): {}", errno_text(e)),
    })?;
    Ok(())
}

/// Makes the container user the owner of stdin/stdout/stderr (a terminal the runtime created
/// is root's), so a non-root program can use its console, as runc does. Only the uid changes;
/// /dev/null, fds that are not open, and owners this namespace cannot change are left alone.
fn fix_stdio_owner(uid: u32) -> Result<(), SetupError> {
    let null = nix::sys::stat::stat("/dev/null").ok().map(|s| s.st_rdev);
    for fd in 0..=2 {
        // SAFETY: the fd is only fstat'ed and fchown'ed here, never closed or owned.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let st = match nix::sys::stat::fstat(borrowed) {
            Ok(st) => st,
            Err(Errno::EBADF) => continue,
            Err(e) => {
                return Err(SetupError::User {
                    field: "uid",
                    value: uid.to_string(),
                    reason: format!("fstat stdio fd {fd}: {}", errno_text(e)),
                })
            }
        };
        let is_null = st.st_rdev != 0 && Some(st.st_rdev) == null;
        if st.st_uid == uid || is_null {
            continue;
        }
        match nix::unistd::fchown(borrowed, Some(Uid::from_raw(uid)), None) {
            // Unmapped owner or gid, a foreign inode, a read-only /dev: better to leave the
            // stdio as it is than to fail the container.
            Ok(()) | Err(Errno::EINVAL | Errno::EPERM | Errno::EROFS) => {}
            Err(e) => {
                return Err(SetupError::User {
                    field: "uid",
                    value: uid.to_string(),
                    reason: format!("chown stdio fd {fd}: {}", errno_text(e)),
                })
            }
        }
    }
    Ok(())
}

fn id_reason(call: &str, e: Errno) -> String {
    match e {
        Errno::EINVAL => format!(
            "{call}: {}: the id is not mapped in the container's user namespace; add it to \
             linux.uidMappings/linux.gidMappings",
            errno_text(e)
        ),
        Errno::EPERM => format!(
            "{call}: {}: the runtime lacks CAP_SETUID/CAP_SETGID for this change",
            errno_text(e)
        ),
        _ => format!("{call}: {}", errno_text(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::setup::testutil::*;

    #[test]
    fn umask_out_of_range_names_field() {
        let err = set_umask(Some(0o1022)).unwrap_err().to_string();
        assert!(err.contains("process.user.umask 0o1022"), "{err}");
    }

    #[test]
    fn umask_child() {
        if !in_child() {
            assert_child_ok(&run_child(module_path!(), "umask_child"));
            return;
        }
        set_umask(Some(0o027)).unwrap();
        assert_eq!(umask(Mode::from_bits_truncate(0o027)).bits(), 0o027);
        set_umask(None).unwrap();
        assert_eq!(umask(Mode::from_bits_truncate(0o022)).bits(), 0o022);
        set_umask(Some(0)).unwrap();
        assert_eq!(umask(Mode::from_bits_truncate(0o022)).bits(), 0);
    }

    #[test]
    fn user_switch_child() {
        if !in_child() {
            assert_child_ok(&run_child(module_path!(), "user_switch_child"));
            return;
        }
        let user = oci_spec::runtime::UserBuilder::default()
            .uid(1000u32)
            .gid(1001u32)
            .additional_gids(vec![2000u32, 2001])
            .build()
            .unwrap();
        // A root-owned file as stdin, like a terminal the runtime made: it goes to uid 1000.
        let tmp = tempfile::NamedTempFile::new().unwrap();
        nix::unistd::dup2_stdin(tmp.as_file()).unwrap();
        setup_user(&user).unwrap();
        assert_eq!(
            nix::sys::stat::fstat(std::io::stdin()).unwrap().st_uid,
            1000
        );
        assert_eq!(thread_status("Uid"), "1000\t1000\t1000\t1000");
        assert_eq!(thread_status("Gid"), "1001\t1001\t1001\t1001");
        assert_eq!(thread_status("Groups"), "2000 2001");
        // KEEPCAPS kept the permitted set; the uid change emptied the effective set.
        assert_ne!(thread_status("CapPrm"), "0000000000000000");
        assert_eq!(thread_status("CapEff"), "0000000000000000");
        assert!(!nix::sys::prctl::get_keepcaps().unwrap());
    }
}
