//! Hostname and NIS domain name of the container's UTS namespace.

use std::ffi::CString;

use nix::errno::Errno;

use super::{errno_text, SetupError};

fn reason(e: Errno) -> String {
    match e {
        Errno::EINVAL => format!("{}: the name is longer than 64 bytes", errno_text(e)),
        Errno::EPERM => format!(
            "{}: the runtime lacks CAP_SYS_ADMIN in this UTS namespace",
            errno_text(e)
        ),
        _ => errno_text(e),
    }
}

/// Sets the hostname. Only meaningful in a private UTS namespace: the caller checks that the
/// spec has one (runc refuses `hostname` without it), since here it would rename the host.
pub fn set_hostname(name: &str) -> Result<(), SetupError> {
    nix::unistd::sethostname(name).map_err(|e| SetupError::Hostname {
        name: name.to_string(),
        reason: reason(e),
    })
}

/// Sets the NIS domain name, with the same caveat as [`set_hostname`].
pub fn set_domainname(name: &str) -> Result<(), SetupError> {
    let err = |reason: String| SetupError::Domainname {
        name: name.to_string(),
        reason,
    };
    let c_name = CString::new(name).map_err(|_| err("the name holds a NUL byte".into()))?;
    // SAFETY: c_name is valid for name.len() bytes for the whole call; the kernel only reads it.
    let ret = unsafe { libc::setdomainname(c_name.as_ptr(), name.len()) };
    Errno::result(ret).map(drop).map_err(|e| err(reason(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::setup::testutil::*;

    #[test]
    fn uts_child() {
        if !in_child() {
            assert_child_ok(&run_child(module_path!(), "uts_child"));
            return;
        }
        // A private UTS namespace for this thread only, so the host keeps its names.
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUTS).unwrap();
        set_hostname("myrt-test-host").unwrap();
        set_domainname("myrt.test").unwrap();
        // These files show the UTS namespace of the reading thread.
        let read = |f: &str| std::fs::read_to_string(f).unwrap().trim().to_string();
        assert_eq!(read("/proc/sys/kernel/hostname"), "myrt-test-host");
        assert_eq!(read("/proc/sys/kernel/domainname"), "myrt.test");
        let err = set_hostname(&"x".repeat(65)).unwrap_err().to_string();
        assert!(err.contains("longer than 64 bytes"), "{err}");
    }
}
