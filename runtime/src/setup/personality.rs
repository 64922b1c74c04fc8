//! `linux.personality`: the execution domain of the container's init (personality(2)), e.g.
//! LINUX32 so that `uname -m` reports a 32-bit machine.

use nix::errno::Errno;
use oci_spec::runtime::{LinuxPersonality, LinuxPersonalityDomain};

use super::{errno_text, SetupError};

// <linux/personality.h>
const PER_LINUX: libc::c_ulong = 0x0000;
const PER_LINUX32: libc::c_ulong = 0x0008;

/// Refuses what personality(2) is not asked to do here: flags have no agreed names in the
/// spec (runc ignores them with a warning; we refuse rather than ignore).
pub fn check_personality(p: &LinuxPersonality) -> Result<(), SetupError> {
    match p.flags().as_deref() {
        Some(flags) if !flags.is_empty() => Err(SetupError::Field {
            field: "linux.personality.flags".into(),
            value: format!("{flags:?}"),
            reason: "not supported yet; remove them (only domain LINUX or LINUX32 is)".into(),
        }),
        _ => Ok(()),
    }
}

/// Sets the domain for this process and what it execs (init only, before exec).
pub fn set_personality(p: &LinuxPersonality) -> Result<(), SetupError> {
    check_personality(p)?;
    let persona = match p.domain() {
        LinuxPersonalityDomain::PerLinux => PER_LINUX,
        LinuxPersonalityDomain::PerLinux32 => PER_LINUX32,
    };
    // SAFETY: personality(2) takes an integer and changes only this process' domain.
    let rc = unsafe { libc::personality(persona) };
    Errno::result(rc).map(drop).map_err(|e| SetupError::Field {
        field: "linux.personality.domain".into(),
        value: p.domain().to_string(),
        reason: errno_text(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_refused() {
        let p: LinuxPersonality =
            serde_json::from_str(r#"{"domain":"LINUX32","flags":["ADDR_NO_RANDOMIZE"]}"#).unwrap();
        let err = check_personality(&p).unwrap_err().to_string();
        assert!(err.starts_with("linux.personality.flags"), "{err}");
        let p: LinuxPersonality = serde_json::from_str(r#"{"domain":"LINUX"}"#).unwrap();
        check_personality(&p).unwrap();
    }
}
