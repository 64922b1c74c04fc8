//! The parent ↔ child sync protocol: length-prefixed JSON over a unix stream socketpair.
//!
//! The child's errors travel back to the parent as text, so `create` and `exec` fail with the
//! child's own words ("exec: \"foo\": executable file not found in $PATH").

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::ProcessError;

/// Upper bound for one message; a spec is tens of KiB, this leaves room and stops a runaway peer.
const MAX_MESSAGE: u32 = 16 << 20;

/// Parent → child.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToChild {
    /// The whole job description (sent once, first).
    Bootstrap(Box<super::ChildConfig>),
    /// Instead of a bootstrap: run these hooks and report (see `run_hooks_in_helper`).
    Hooks {
        kind: crate::hooks::HookKind,
        hooks: Vec<oci_spec::runtime::Hook>,
        state: Box<crate::hooks::OciState>,
    },
    /// The parent wrote uid_map/gid_map for the new user namespace.
    IdMapsWritten,
    /// The parent ran the prestart and createRuntime hooks; the state is what the init's own
    /// hooks (createContainer, startContainer) get on stdin.
    HooksDone(Box<crate::hooks::OciState>),
}

/// Child → parent.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToParent {
    /// Stage 1 unshared a user namespace: write its id maps now.
    UserNsCreated,
    /// Stage 1 forked the process that becomes the container's init (or exec'd process); this is
    /// its pid in the parent's pid namespace.
    Stage2Pid(i32),
    /// Mounts are done, pivot_root is not: run prestart/createRuntime hooks.
    RunHooks,
    /// The init finished setting up and waits for `start` on the exec fifo.
    Ready,
    /// Something failed; the text names what and where.
    Error(String),
}

/// One end of the socketpair.
#[derive(Debug)]
pub struct Channel {
    sock: UnixStream,
}

impl Channel {
    /// A connected pair; both ends are close-on-exec (the child's end is handed over explicitly).
    pub fn pair() -> Result<(Channel, Channel), ProcessError> {
        let (a, b) = UnixStream::pair().map_err(ProcessError::Socketpair)?;
        Ok((Channel { sock: a }, Channel { sock: b }))
    }

    pub fn from_fd(fd: OwnedFd) -> Channel {
        Channel {
            sock: UnixStream::from(fd),
        }
    }

    pub fn into_fd(self) -> OwnedFd {
        OwnedFd::from(self.sock)
    }

    pub fn raw_fd(&self) -> i32 {
        self.sock.as_raw_fd()
    }

    /// Bounds every receive so a stuck child cannot hang the caller forever.
    pub fn set_timeout(&self, timeout: Option<Duration>) -> Result<(), ProcessError> {
        self.sock
            .set_read_timeout(timeout)
            .map_err(ProcessError::Channel)
    }

    pub fn send<T: Serialize>(&mut self, msg: &T) -> Result<(), ProcessError> {
        let body = serde_json::to_vec(msg).map_err(ProcessError::Encode)?;
        let len = u32::try_from(body.len())
            .ok()
            .filter(|l| *l <= MAX_MESSAGE)
            .ok_or(ProcessError::MessageTooLarge(body.len()))?;
        let mut frame = Vec::with_capacity(body.len() + 4);
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(&body);
        self.sock.write_all(&frame).map_err(ProcessError::Channel)
    }

    /// Receives one message; `Ok(None)` when the peer closed its end (for an exec'd process:
    /// the close-on-exec socket closing means execve succeeded).
    pub fn recv<T: DeserializeOwned>(&mut self) -> Result<Option<T>, ProcessError> {
        let mut len = [0u8; 4];
        match self.sock.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(None),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(ProcessError::Timeout)
            }
            Err(e) => return Err(ProcessError::Channel(e)),
        }
        let len = u32::from_le_bytes(len);
        if len > MAX_MESSAGE {
            return Err(ProcessError::MessageTooLarge(len as usize));
        }
        let mut body = vec![0u8; len as usize];
        self.sock
            .read_exact(&mut body)
            .map_err(ProcessError::Channel)?;
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(ProcessError::Decode)
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_eof() {
        let (mut a, mut b) = Channel::pair().unwrap();
        a.send(&ToParent::Stage2Pid(42)).unwrap();
        a.send(&ToParent::Error("boom".into())).unwrap();
        match b.recv::<ToParent>().unwrap() {
            Some(ToParent::Stage2Pid(42)) => {}
            other => panic!("unexpected {other:?}"),
        }
        match b.recv::<ToParent>().unwrap() {
            Some(ToParent::Error(m)) => assert_eq!(m, "boom"),
            other => panic!("unexpected {other:?}"),
        }
        drop(a);
        assert!(b.recv::<ToParent>().unwrap().is_none());
    }

    #[test]
    fn timeout_is_reported() {
        let (_a, mut b) = Channel::pair().unwrap();
        b.set_timeout(Some(Duration::from_millis(20))).unwrap();
        assert!(matches!(b.recv::<ToParent>(), Err(ProcessError::Timeout)));
    }
}
