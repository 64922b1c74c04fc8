//! A client for CRIU's RPC in swrk mode: `criu swrk 3` is started as our child with one end of a
//! SOCK_SEQPACKET socketpair as fd 3; each packet is one protobuf message (`CriuReq` from us,
//! `CriuResp` back). During a dump or restore CRIU sends NOTIFY responses at its action-script
//! points ("post-dump", "setup-namespaces", "post-restore", …) and waits for our NOTIFY answer.
//!
//! CRIU resolves `images_dir_fd` and `work_dir_fd` in the *caller's* fd table
//! (/proc/<peer pid>/fd/N), but `inherit_fd` descriptors in its own: those are handed to the child
//! at fixed numbers (4, 5, …) by [`Criu::call`].

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::utils::Pid;
use myrt_protos::criu::{CriuNotify, CriuReq, CriuReqType, CriuResp};
use myrt_protos::Message;
use nix::sys::socket::{
    recvmsg, send, socketpair, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};

/// The oldest CRIU myrt drives: 3.14 added cgroup v2 (freezing through `cgroup.freeze`, the
/// unified hierarchy's cgroup images).
pub const MIN_VERSION: u32 = 31400;
/// The fd number `criu swrk` gets its end of the socket at.
const SWRK_FD: RawFd = 3;
/// Largest message CRIU sends (runc reads 10 pages too).
const MAX_MSG: usize = 10 * 4096;

#[derive(Debug, thiserror::Error)]
pub enum CriuError {
    #[error(
        "criu: cannot run {path}: {source}; install CRIU >= 3.14 (scripts/install-criu.sh builds \
         4.x) or name the binary with --criu PATH"
    )]
    Spawn {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("criu {path}: version {have} is too old: myrt needs CRIU >= {need}")]
    TooOld {
        path: PathBuf,
        have: Version,
        need: Version,
    },
    #[error("criu swrk: {0}")]
    Protocol(String),
    #[error("criu {op} failed: {reason} (log: {log})")]
    Failed {
        op: &'static str,
        reason: String,
        log: String,
    },
    #[error("criu {op}: {hook} failed: {reason}")]
    Notify {
        op: &'static str,
        hook: String,
        reason: String,
    },
    #[error("criu: {op}: {source}")]
    Sys {
        op: &'static str,
        source: nix::Error,
    },
}

pub type Result<T> = std::result::Result<T, CriuError>;

fn sys(op: &'static str) -> impl FnOnce(nix::Error) -> CriuError {
    move |source| CriuError::Sys { op, source }
}

/// CRIU's version as the VERSION request reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub sublevel: u32,
}

impl Version {
    pub fn from_int(v: u32) -> Version {
        Version {
            major: v / 10000,
            minor: v / 100 % 100,
            sublevel: v % 100,
        }
    }

    /// runc's encoding: major * 10000 + minor * 100 + sublevel.
    pub fn as_int(self) -> u32 {
        self.major * 10000 + self.minor * 100 + self.sublevel
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.sublevel)
    }
}

/// Runs once `criu swrk` exists, before the request is sent: it may place the CRIU process
/// (e.g. into the container's cgroup) and complete the request from that.
pub type Prepare<'a> = &'a mut dyn FnMut(Pid, &mut CriuReq) -> std::result::Result<(), String>;

/// Serves one action-script notification: its name, CRIU's message and the fd sent with it.
pub type Notify<'a> =
    &'a mut dyn FnMut(&str, &CriuNotify, Option<OwnedFd>) -> std::result::Result<(), String>;

/// Where CRIU writes its log for one call, so a failure can quote it.
#[derive(Debug, Clone)]
pub struct LogFile {
    /// The directory CRIU writes `log_file` into (its work dir).
    pub dir: PathBuf,
    pub name: String,
}

impl LogFile {
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }
}

/// A CRIU binary.
#[derive(Debug, Clone)]
pub struct Criu {
    path: PathBuf,
}

impl Criu {
    /// `path` as given (`--criu`), or `criu` from PATH.
    pub fn new(path: Option<&Path>) -> Criu {
        Criu {
            path: path.map_or_else(|| PathBuf::from("criu"), Path::to_path_buf),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Asks CRIU for its version (CRIU >= 3.0 answers VERSION requests).
    pub fn version(&self) -> Result<Version> {
        let req = CriuReq {
            r#type: CriuReqType::Version as i32,
            ..Default::default()
        };
        let resp = self.call("version", req, &[], None, None, &mut |_, _, _| Ok(()))?;
        let v = resp
            .version
            .ok_or_else(|| CriuError::Protocol("VERSION answer without a version".into()))?;
        let n = |x: i32| u32::try_from(x).unwrap_or(0);
        Ok(Version {
            major: n(v.major_number),
            minor: n(v.minor_number),
            sublevel: n(v.sublevel.unwrap_or(0)),
        })
    }

    /// The version, or an error when it is older than `min` (as [`Version::as_int`]).
    pub fn check_version(&self, min: u32) -> Result<Version> {
        let have = self.version()?;
        if have.as_int() < min {
            return Err(CriuError::TooOld {
                path: self.path.clone(),
                have,
                need: Version::from_int(min),
            });
        }
        Ok(have)
    }

    /// Sends `req` to a fresh `criu swrk` and serves its notifications until the answer to
    /// `req` arrives. `inherit` fds appear in CRIU at 4, 5, … in that order (the numbers to put
    /// in `inherit_fd`). `notify(script, notification)` runs at each action-script point; an
    /// error from it fails the call (CRIU then rolls back). The fd is one CRIU sent along with the
    /// notification: only "orphan-pts-master" carries one (the restored terminal's master).
    pub fn call(
        &self,
        op: &'static str,
        mut req: CriuReq,
        inherit: &[BorrowedFd<'_>],
        log: Option<&LogFile>,
        prepare: Option<Prepare<'_>>,
        notify: Notify<'_>,
    ) -> Result<CriuResp> {
        let want = req.r#type;
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(sys("socketpair"))?;
        let mut child = self.spawn(&theirs, inherit, log)?;
        drop(theirs);
        let prepared = match (prepare, Pid::new(child.id() as i32)) {
            (Some(f), Some(pid)) => f(pid, &mut req).map_err(|reason| CriuError::Notify {
                op,
                hook: "prepare".into(),
                reason,
            }),
            _ => Ok(()),
        };
        let result = prepared.and_then(|()| exchange(op, &ours, req, want, notify));
        drop(ours);
        // CRIU exits once it answered (or when it sees the socket closed).
        let status = child.wait();
        let resp = match result {
            Ok(resp) => resp,
            Err(CriuError::Protocol(why)) => {
                // CRIU died mid-conversation: its log says why better than the socket does.
                let reason = log
                    .and_then(|l| reason_from_log(&l.path()))
                    .unwrap_or_else(|| format!("{why} (criu exited: {status:?})"));
                return Err(self.failed(op, reason, log));
            }
            Err(e) => {
                log::debug!("criu {op}: {e} (criu exited: {status:?})");
                return Err(e);
            }
        };
        if !resp.success {
            let mut reason = log
                .and_then(|l| reason_from_log(&l.path()))
                .or_else(|| resp.cr_errmsg.clone().filter(|m| !m.is_empty()))
                .unwrap_or_else(|| "no reason given".into());
            if let Some(errno) = resp.cr_errno.filter(|e| *e != 0) {
                reason.push_str(&format!(" ({})", nix::errno::Errno::from_raw(errno).desc()));
            }
            return Err(self.failed(op, reason, log));
        }
        Ok(resp)
    }

    fn failed(&self, op: &'static str, reason: String, log: Option<&LogFile>) -> CriuError {
        CriuError::Failed {
            op,
            reason,
            log: log.map_or_else(
                || "none".into(),
                |l| l.path().to_string_lossy().into_owned(),
            ),
        }
    }

    /// `criu swrk 3` with the socket at 3, `inherit` at 4.., stdout/stderr into the log file.
    fn spawn(
        &self,
        sock: &OwnedFd,
        inherit: &[BorrowedFd<'_>],
        log: Option<&LogFile>,
    ) -> Result<std::process::Child> {
        let mut cmd = Command::new(&self.path);
        cmd.arg("swrk")
            .arg(SWRK_FD.to_string())
            .stdin(Stdio::null());
        // CRIU's own output (not its log) goes to the same log file, appended.
        match log.map(|l| {
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(l.path())
        }) {
            Some(Ok(f)) => {
                let f2 = f.try_clone().map_err(|source| CriuError::Spawn {
                    path: self.path.clone(),
                    source,
                })?;
                cmd.stdout(f).stderr(f2);
            }
            _ => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        // Duplicates (numbered >= 3): the child's own stdio is set up before pre_exec runs, so
        // a caller's fd 0-2 would be CRIU's log file by then.
        let dups = inherit
            .iter()
            .map(|f| f.try_clone_to_owned())
            .collect::<std::io::Result<Vec<OwnedFd>>>()
            .map_err(|source| CriuError::Spawn {
                path: self.path.clone(),
                source,
            })?;
        let mut fds: Vec<RawFd> = vec![sock.as_raw_fd()];
        fds.extend(dups.iter().map(|f| f.as_raw_fd()));
        // SAFETY: the closure runs in the forked child before exec and calls only dup/dup2/fcntl,
        // which are async-signal-safe; it allocates nothing (fds is moved in, read only).
        unsafe {
            cmd.pre_exec(move || place_fds(&fds));
        }
        let child = cmd.spawn().map_err(|source| CriuError::Spawn {
            path: self.path.clone(),
            source,
        });
        drop(dups);
        child
    }
}

/// In the child: puts `fds[i]` at fd `SWRK_FD + i` without CLOEXEC. Sources first go above the
/// target range so that one dup2 cannot clobber a source still to be placed.
fn place_fds(fds: &[RawFd]) -> std::io::Result<()> {
    let top = SWRK_FD + fds.len() as RawFd;
    let mut moved = [0 as RawFd; 64];
    if fds.len() > moved.len() {
        return Err(std::io::Error::from_raw_os_error(libc::EMFILE));
    }
    for (i, &fd) in fds.iter().enumerate() {
        // SAFETY: fcntl(F_DUPFD_CLOEXEC) on an fd we own in this child; no memory is touched.
        let r = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, top) };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        moved[i] = r;
    }
    for (i, &fd) in moved[..fds.len()].iter().enumerate() {
        // SAFETY: dup2 onto a target fd number in this child; dup2 clears CLOEXEC on the target.
        if unsafe { libc::dup2(fd, SWRK_FD + i as RawFd) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The conversation: our request, then notifications until the answer of type `want`.
fn exchange(
    op: &'static str,
    sock: &OwnedFd,
    req: CriuReq,
    want: i32,
    notify: Notify<'_>,
) -> Result<CriuResp> {
    send_msg(sock, &req)?;
    let mut failed_hook: Option<(String, String)> = None;
    loop {
        let (resp, fd) = recv_msg(sock)?;
        if resp.r#type == CriuReqType::Notify as i32 {
            let n = resp.notify.clone().unwrap_or_default();
            let script = n.script.clone().unwrap_or_default();
            let ok = match notify(&script, &n, fd) {
                Ok(()) => true,
                Err(reason) => {
                    log::warn!("criu {op}: {script}: {reason}");
                    failed_hook.get_or_insert((script.clone(), reason));
                    false
                }
            };
            send_msg(
                sock,
                &CriuReq {
                    r#type: CriuReqType::Notify as i32,
                    notify_success: Some(ok),
                    ..Default::default()
                },
            )?;
            continue;
        }
        if let Some((hook, reason)) = failed_hook {
            return Err(CriuError::Notify { op, hook, reason });
        }
        if resp.r#type != want {
            return Err(CriuError::Protocol(format!(
                "expected an answer of type {want}, got type {} (success {})",
                resp.r#type, resp.success
            )));
        }
        return Ok(resp);
    }
}

fn send_msg(sock: &OwnedFd, req: &CriuReq) -> Result<()> {
    let buf = req.encode_to_vec();
    let n = send(sock.as_raw_fd(), &buf, MsgFlags::MSG_NOSIGNAL).map_err(sys("send to criu"))?;
    if n != buf.len() {
        return Err(CriuError::Protocol(format!(
            "sent {n} of {} bytes",
            buf.len()
        )));
    }
    Ok(())
}

/// One answer, and the fd that came with it (SCM_RIGHTS), if any.
fn recv_msg(sock: &OwnedFd) -> Result<(CriuResp, Option<OwnedFd>)> {
    let mut buf = vec![0u8; MAX_MSG];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(sys("receive from criu"))?;
    let mut fd = None;
    for c in msg.cmsgs().map_err(sys("receive from criu"))? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for raw in fds {
                // SAFETY: the kernel just installed this fd in our table for us; we own it now.
                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                fd.get_or_insert(owned);
            }
        }
    }
    let n = msg.bytes;
    if n == 0 {
        return Err(CriuError::Protocol(
            "criu closed the connection without an answer".into(),
        ));
    }
    let resp = CriuResp::decode(&buf[..n])
        .map_err(|e| CriuError::Protocol(format!("undecodable answer ({n} bytes): {e}")))?;
    Ok((resp, fd))
}

/// The last error lines of a CRIU log, joined: what a user needs to see. CRIU logs
/// `(00.053) Error (criu/file.c:123): text`.
pub fn reason_from_log(path: &Path) -> Option<String> {
    let f = fs::File::open(path).ok()?;
    let errors: Vec<String> = BufReader::new(f)
        .lines()
        .map_while(|l| l.ok())
        .filter(|l| l.contains(") Error (") || l.starts_with("Error ("))
        // Without CAP_SYS_RESOURCE CRIU cannot raise its own fd limit; harmless, logged always.
        .filter(|l| !l.contains("Can't setup RLIMIT_NOFILE"))
        .map(|l| match l.find("): ") {
            Some(i) => l[i + 3..].trim().to_string(),
            None => l.trim().to_string(),
        })
        .filter(|l| !l.is_empty())
        .collect();
    if errors.is_empty() {
        return None;
    }
    let tail = &errors[errors.len().saturating_sub(4)..];
    Some(tail.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_encoding() {
        let v = Version::from_int(40201);
        assert_eq!(
            v,
            Version {
                major: 4,
                minor: 2,
                sublevel: 1
            }
        );
        assert_eq!(v.to_string(), "4.2.1");
        assert_eq!(v.as_int(), 40201);
        assert!(Version::from_int(31700) < v);
    }

    #[test]
    fn reason_is_the_last_errors_without_the_rlimit_noise() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dump.log");
        fs::write(
            &p,
            "(00.05) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: \
             Operation not permitted\n(00.06) Info: fine\n(00.07) Error (criu/sk-unix.c:862): \
             unix: Can't dump half of stream unix connection.\n(00.08) Error \
             (criu/cr-dump.c:1975): Dumping FAILED.\n",
        )
        .unwrap();
        assert_eq!(
            reason_from_log(&p).unwrap(),
            "unix: Can't dump half of stream unix connection.; Dumping FAILED."
        );
        assert!(reason_from_log(&dir.path().join("missing")).is_none());
    }

    #[test]
    fn missing_binary_is_named() {
        let c = Criu::new(Some(Path::new("/nonexistent/criu")));
        let e = c.version().unwrap_err().to_string();
        assert!(e.contains("/nonexistent/criu"), "{e}");
        assert!(e.contains("--criu"), "{e}");
    }

    #[test]
    fn version_of_the_installed_criu() {
        // Only where set-up installed CRIU (scripts/install-criu.sh); the test image always has it.
        let Ok(path) = std::env::var("MYRT_TEST_CRIU").or_else(|_| {
            ["/usr/local/sbin/criu", "/usr/sbin/criu"]
                .iter()
                .find(|p| Path::new(p).exists())
                .map(|p| p.to_string())
                .ok_or(())
        }) else {
            eprintln!("SKIP version_of_the_installed_criu: no criu installed");
            return;
        };
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIP version_of_the_installed_criu: criu swrk needs root");
            return;
        }
        let c = Criu::new(Some(Path::new(&path)));
        let v = c.version().unwrap();
        assert!(v.major >= 3, "{v}");
        let e = c.check_version(990000).unwrap_err().to_string();
        assert!(e.contains("too old") && e.contains(&v.to_string()), "{e}");
    }
}
