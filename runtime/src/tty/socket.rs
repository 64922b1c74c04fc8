//! runc's console-socket protocol: one message whose payload is the pty's name and whose
//! SCM_RIGHTS control message carries the pty master, over a connected AF_UNIX stream socket.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{self, ControlMessage, ControlMessageOwned, MsgFlags};

use super::TtyError;

/// runc's limit for the name part of the message.
const MAX_NAME_LEN: usize = 4096;
/// Room for more fds than the protocol allows, so extra ones are seen (and closed).
const MAX_FDS: usize = 8;

/// Sends `fd` with `name` as the payload.
pub fn send_console(
    socket: BorrowedFd<'_>,
    fd: BorrowedFd<'_>,
    name: &str,
) -> Result<(), TtyError> {
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(name.as_bytes())];
    socket::sendmsg::<()>(
        socket.as_raw_fd(),
        &iov,
        &cmsg,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(|e| TtyError::Socket {
        op: "send the console fd",
        errno: e.into(),
    })?;
    Ok(())
}

/// Receives one fd (close-on-exec) and the name sent with it.
pub fn recv_console(socket: BorrowedFd<'_>) -> Result<(OwnedFd, String), TtyError> {
    let mut buf = vec![0u8; MAX_NAME_LEN];
    let mut cmsg_buf = nix::cmsg_space!([RawFd; MAX_FDS]);
    let (bytes, fds, truncated) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = socket::recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg_buf),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| TtyError::Socket {
            op: "receive the console fd",
            errno: e.into(),
        })?;
        let mut fds: Vec<OwnedFd> = Vec::new();
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::ScmRights(raw) = c {
                    for r in raw {
                        // SAFETY: the kernel just installed this fd in our table for us; nothing
                        // else owns it.
                        fds.push(unsafe { OwnedFd::from_raw_fd(r) });
                    }
                }
            }
        }
        (msg.bytes, fds, msg.flags.contains(MsgFlags::MSG_CTRUNC))
    };
    if truncated {
        return Err(TtyError::Protocol(format!(
            "control message truncated: more than {MAX_FDS} fds were sent, expected one"
        )));
    }
    let mut fds = fds.into_iter();
    let fd = match (fds.next(), fds.next()) {
        (Some(fd), None) => fd,
        (None, _) if bytes == 0 => {
            return Err(TtyError::Protocol(
                "the socket was closed before a console fd arrived".into(),
            ))
        }
        (None, _) => {
            return Err(TtyError::Protocol(
                "message without a file descriptor".into(),
            ))
        }
        (Some(_), Some(_)) => {
            return Err(TtyError::Protocol(
                "more than one file descriptor in the message".into(),
            ))
        }
    };
    let name = String::from_utf8_lossy(&buf[..bytes]).into_owned();
    Ok((fd, name))
}
