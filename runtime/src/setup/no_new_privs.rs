//! `process.noNewPrivileges`: execve can no longer grant privileges (setuid bits, file caps).

use super::{errno_text, SetupError};

/// Sets PR_SET_NO_NEW_PRIVS on the calling thread; it is inherited by children and kept across
/// execve, and cannot be unset.
pub fn set_no_new_privileges() -> Result<(), SetupError> {
    nix::sys::prctl::set_no_new_privs().map_err(|e| SetupError::NoNewPrivileges {
        reason: errno_text(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::setup::testutil::*;

    #[test]
    fn no_new_privs_child() {
        if !in_child() {
            assert_child_ok(&run_child(module_path!(), "no_new_privs_child"));
            return;
        }
        assert_eq!(thread_status("NoNewPrivs"), "0");
        set_no_new_privileges().unwrap();
        assert_eq!(thread_status("NoNewPrivs"), "1");
    }
}
