//! A process' stdio as containerd describes it: fifo paths ("" when unused), a `file://` or
//! `binary://` log URI, or a terminal. The shim owns pipes (or the pty master) and copies
//! between them and containerd's fifos, so the container never touches the fifos and a missing
//! reader never blocks the shim.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use log::{debug, warn};
use myrt_runtime::Pid;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::Signal;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::reaper::Reaper;

/// How long a `binary://` logger gets to say it is ready.
const LOGGER_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a logger gets to exit after SIGTERM before SIGKILL (containerd's value).
const LOGGER_TERM_TIMEOUT: Duration = Duration::from_secs(12);
const COPY_BUF: usize = 32 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    #[error("stdio {what} {uri:?}: {why}")]
    Uri {
        what: &'static str,
        uri: String,
        why: String,
    },
    #[error("stdio: {op} {path}: {source}")]
    Open {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("stdio: {op}: {source}")]
    Sys {
        op: &'static str,
        source: std::io::Error,
    },
    #[error("stdio: logging binary {path}: {why}")]
    Logger { path: PathBuf, why: String },
    #[error("stdio: receive the terminal from the container: {0}")]
    Console(String),
}

pub type Result<T> = std::result::Result<T, StdioError>;

fn sys(op: &'static str) -> impl FnOnce(std::io::Error) -> StdioError {
    move |source| StdioError::Sys { op, source }
}

/// containerd's description of a process' stdio.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StdioPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// Where an output stream goes, parsed from containerd's string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputUri {
    /// "" : nothing (the process gets /dev/null).
    Null,
    /// A plain path: containerd's fifo (or a regular file, appended to).
    Path(PathBuf),
    /// `file:///path`: appended to, created if missing.
    File(PathBuf),
    /// `binary:///path?k=v`: a logging binary reads the stream on fd 3 (stdout) / 4 (stderr).
    Binary { path: PathBuf, args: Vec<String> },
}

/// Parses containerd's stdout/stderr string (a fifo path or a log URI).
pub fn parse_output(what: &'static str, s: &str) -> Result<OutputUri> {
    if s.is_empty() {
        return Ok(OutputUri::Null);
    }
    let bad = |why: &str| StdioError::Uri {
        what,
        uri: s.to_string(),
        why: why.to_string(),
    };
    let Some((scheme, rest)) = s.split_once("://").filter(|_| !s.starts_with('/')) else {
        return Ok(OutputUri::Path(PathBuf::from(s)));
    };
    // authority (ignored, as containerd does) / path ? query # fragment
    let rest = rest.split('#').next().unwrap_or_default();
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = match before_query.find('/') {
        Some(i) => &before_query[i..],
        None => "",
    };
    let path = percent_decode(path).ok_or_else(|| bad("bad percent-encoding in the path"))?;
    if path.is_empty() || !path.starts_with('/') {
        return Err(bad("the path must be absolute, e.g. file:///var/log/c.log"));
    }
    match scheme {
        "file" => Ok(OutputUri::File(PathBuf::from(path))),
        "binary" => {
            let mut args = Vec::new();
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                let k = query_decode(k).ok_or_else(|| bad("bad percent-encoding in the query"))?;
                let v = query_decode(v).ok_or_else(|| bad("bad percent-encoding in the query"))?;
                args.push(k);
                args.push(v);
            }
            Ok(OutputUri::Binary {
                path: PathBuf::from(path),
                args,
            })
        }
        "fifo" => Ok(OutputUri::Path(PathBuf::from(path))),
        other => Err(bad(&format!(
            "unknown scheme {other:?}: use a fifo path, file:// or binary://"
        ))),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Query decoding as Go's url.ParseQuery does it: '+' is a space.
fn query_decode(s: &str) -> Option<String> {
    percent_decode(&s.replace('+', " "))
}

/// What the engine gets for the process.
#[derive(Debug, Default)]
pub struct EngineStdio {
    pub stdio: myrt_runtime::Stdio,
    pub console_socket: Option<OwnedFd>,
}

/// Identity and options for setting up stdio.
#[derive(Clone)]
pub struct IoContext {
    pub container_id: String,
    pub namespace: String,
    pub io_uid: Option<u32>,
    pub io_gid: Option<u32>,
    pub reaper: Reaper,
}

/// The shim's side of a process' stdio.
#[derive(Default)]
pub struct ProcessIo {
    stdin_path: Option<PathBuf>,
    stdin_close: Option<Arc<Notify>>,
    stdin_task: Option<JoinHandle<()>>,
    /// Our end of the console socket until the master arrives.
    console_socket: Option<UnixStream>,
    /// The pty master (for resize); the copies use duplicates of it.
    master: Option<Arc<OwnedFd>>,
    /// Where the terminal's output goes.
    tty_out: Option<Sink>,
    outputs: Vec<JoinHandle<()>>,
    logger: Option<Pid>,
    logger_exit: Option<tokio::sync::oneshot::Receiver<i32>>,
}

/// An output destination.
enum Sink {
    Null,
    Fifo(PathBuf),
    /// A file or the logger's pipe: the process writes to it directly.
    Fd(OwnedFd),
}

impl ProcessIo {
    /// Prepares stdio for a process: pipes and copies for fifos, files, a logging binary, or a
    /// console socket for a terminal (then call [`ProcessIo::attach_console`] after the engine
    /// call). Nothing here blocks on a fifo.
    pub async fn open(paths: &StdioPaths, ctx: &IoContext) -> Result<(EngineStdio, ProcessIo)> {
        let mut pio = ProcessIo::default();
        pio.stdin_path = (!paths.stdin.is_empty()).then(|| PathBuf::from(&paths.stdin));
        let stdout = parse_output("stdout", &paths.stdout)?;
        let stderr = if paths.terminal {
            OutputUri::Null
        } else {
            parse_output("stderr", &paths.stderr)?
        };
        let (out_sink, err_sink) = pio.sinks(&stdout, &stderr, ctx).await?;
        let mut engine = EngineStdio::default();

        if paths.terminal {
            let (ours, theirs) = UnixStream::pair().map_err(sys("create console socket"))?;
            engine.console_socket = Some(OwnedFd::from(theirs));
            pio.console_socket = Some(ours);
            pio.tty_out = Some(out_sink);
            return Ok((engine, pio));
        }

        engine.stdio.stdin = Some(match &pio.stdin_path {
            Some(path) => {
                let (r, w) = pipe_pair()?;
                chown_io(&r, ctx)?;
                let sender = pipe::Sender::from_owned_fd(w).map_err(sys("stdin pipe"))?;
                pio.spawn_stdin(path.clone(), Box::new(sender));
                r
            }
            None => dev_null(false)?,
        });
        engine.stdio.stdout = Some(pio.output_fd(out_sink, "stdout", ctx)?);
        engine.stdio.stderr = Some(pio.output_fd(err_sink, "stderr", ctx)?);
        Ok((engine, pio))
    }

    /// Builds the two sinks; starts the logging binary when one is asked for.
    async fn sinks(
        &mut self,
        stdout: &OutputUri,
        stderr: &OutputUri,
        ctx: &IoContext,
    ) -> Result<(Sink, Sink)> {
        if let (OutputUri::Binary { .. }, OutputUri::Binary { .. }) = (stdout, stderr) {
            if stdout != stderr {
                return Err(StdioError::Uri {
                    what: "stderr",
                    uri: format!("{stderr:?}"),
                    why: "names another logging binary than stdout; one logger serves both".into(),
                });
            }
        }
        let binary = [stdout, stderr]
            .into_iter()
            .find(|u| matches!(u, OutputUri::Binary { .. }));
        let (mut log_out, mut log_err) = (None, None);
        if let Some(OutputUri::Binary { path, args }) = binary {
            let (out, err) = self.start_logger(path, args, ctx).await?;
            (log_out, log_err) = (Some(out), Some(err));
        }
        let mut shared_file: Option<(PathBuf, OwnedFd)> = None;
        let mut sink = |uri: &OutputUri, logger: Option<OwnedFd>| -> Result<Sink> {
            Ok(match uri {
                OutputUri::Null => Sink::Null,
                OutputUri::Binary { .. } => match logger {
                    Some(fd) => Sink::Fd(fd),
                    None => Sink::Null,
                },
                OutputUri::File(path) => {
                    if let Some((p, fd)) = &shared_file {
                        if p == path {
                            return Ok(Sink::Fd(fd.try_clone().map_err(sys("dup log file"))?));
                        }
                    }
                    let fd = open_log_file(path, true)?;
                    shared_file =
                        Some((path.clone(), fd.try_clone().map_err(sys("dup log file"))?));
                    Sink::Fd(fd)
                }
                OutputUri::Path(path) => match std::fs::metadata(path) {
                    Ok(m) if m.file_type().is_fifo() => Sink::Fifo(path.clone()),
                    Ok(_) => Sink::Fd(open_log_file(path, false)?),
                    Err(source) => {
                        return Err(StdioError::Open {
                            op: "stat",
                            path: path.clone(),
                            source,
                        })
                    }
                },
            })
        };
        let out = sink(stdout, log_out.take())?;
        let err = sink(stderr, log_err.take())?;
        Ok((out, err))
    }

    /// The fd the process writes `what` to; starts the copy for a fifo.
    fn output_fd(&mut self, sink: Sink, what: &'static str, ctx: &IoContext) -> Result<OwnedFd> {
        match sink {
            Sink::Null => dev_null(true),
            Sink::Fd(fd) => Ok(fd),
            Sink::Fifo(path) => {
                let (r, w) = pipe_pair()?;
                chown_io(&w, ctx)?;
                let from = pipe::Receiver::from_owned_fd(r).map_err(sys("output pipe"))?;
                let to = open_fifo_writer(&path)?;
                self.outputs
                    .push(tokio::spawn(copy_output(Box::new(from), to, what)));
                Ok(w)
            }
        }
    }

    /// After the engine call of a terminal process: receives the pty master and starts copying
    /// stdin → master → stdout.
    pub async fn attach_console(&mut self) -> Result<()> {
        let Some(sock) = self.console_socket.take() else {
            return Ok(());
        };
        let (master, _name) =
            tokio::task::spawn_blocking(move || myrt_runtime::tty::recv_console(sock.as_fd()))
                .await
                .map_err(|e| StdioError::Console(e.to_string()))?
                .map_err(|e| StdioError::Console(e.to_string()))?;
        fcntl(&master, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
            .map_err(|e| sys("set the terminal non-blocking")(e.into()))?;
        let reader = pipe::Receiver::from_owned_fd_unchecked(
            master.try_clone().map_err(sys("dup terminal"))?,
        )
        .map_err(sys("terminal reader"))?;
        let out: Box<dyn AsyncWrite + Unpin + Send> = match self.tty_out.take() {
            Some(Sink::Fifo(path)) => open_fifo_writer(&path)?,
            Some(Sink::Fd(fd)) => async_writer(fd)?,
            Some(Sink::Null) | None => Box::new(tokio::io::sink()),
        };
        self.outputs
            .push(tokio::spawn(copy_output(Box::new(reader), out, "terminal")));
        if let Some(path) = self.stdin_path.clone() {
            let writer = pipe::Sender::from_owned_fd_unchecked(
                master.try_clone().map_err(sys("dup terminal"))?,
            )
            .map_err(sys("terminal writer"))?;
            self.spawn_stdin(path, Box::new(writer));
        }
        self.master = Some(Arc::new(master));
        Ok(())
    }

    fn spawn_stdin(&mut self, path: PathBuf, to: Box<dyn AsyncWrite + Unpin + Send>) {
        let close = Arc::new(Notify::new());
        self.stdin_close = Some(close.clone());
        self.stdin_task = Some(tokio::spawn(copy_stdin(path, to, close)));
    }

    /// Sets the terminal's window size; a process without a terminal has nothing to resize.
    pub fn resize(&self, width: u32, height: u32) -> Result<()> {
        let Some(master) = &self.master else {
            return Ok(());
        };
        let ws = libc::winsize {
            ws_row: height.min(u16::MAX as u32) as u16,
            ws_col: width.min(u16::MAX as u32) as u16,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize from the pointer, which lives across the call;
        // the fd is the pty master we own.
        let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        if rc < 0 {
            return Err(sys("resize the terminal (TIOCSWINSZ)")(
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// Closes the process' stdin once what containerd already wrote has been passed on.
    pub fn close_stdin(&mut self) {
        match &self.stdin_close {
            Some(close) => close.notify_one(),
            // Not started yet: the process gets no stdin.
            None => self.stdin_path = None,
        }
    }

    /// Hands out the output copies so that the caller can wait for them without a lock.
    pub fn take_outputs(&mut self) -> Vec<JoinHandle<()>> {
        std::mem::take(&mut self.outputs)
    }

    /// Takes back copies that had not finished (so [`ProcessIo::close`] can stop them).
    pub fn put_back_outputs(&mut self, outputs: Vec<JoinHandle<()>>) {
        self.outputs.extend(outputs);
    }

    /// Stops every copy and the logging binary (SIGTERM, then SIGKILL after a grace time).
    pub fn close(&mut self) {
        if let Some(t) = self.stdin_task.take() {
            t.abort();
        }
        for h in self.outputs.drain(..) {
            h.abort();
        }
        self.master = None;
        self.console_socket = None;
        if let (Some(pid), Some(exit)) = (self.logger.take(), self.logger_exit.take()) {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(stop_logger(pid, exit));
                }
                Err(_) => {
                    let _ = pid.signal(Signal::SIGTERM);
                }
            }
        }
    }

    /// Starts the logging binary with fd 3 = stdout pipe, fd 4 = stderr pipe, fd 5 = the ready
    /// pipe, and waits until it closes (or writes to) the ready pipe. Returns the write ends.
    async fn start_logger(
        &mut self,
        path: &Path,
        args: &[String],
        ctx: &IoContext,
    ) -> Result<(OwnedFd, OwnedFd)> {
        let err = |why: String| StdioError::Logger {
            path: path.to_path_buf(),
            why,
        };
        let (out_r, out_w) = pipe_pair()?;
        let (err_r, err_w) = pipe_pair()?;
        let (ready_r, ready_w) = pipe_pair()?;
        chown_io(&out_w, ctx)?;
        chown_io(&err_w, ctx)?;
        // Above fd 5, so the dup2s in the child cannot clobber one another.
        let high: Vec<OwnedFd> = [&out_r, &err_r, &ready_w]
            .iter()
            .map(|fd| dup_above(fd, 10))
            .collect::<Result<_>>()?;
        let raw: [RawFd; 3] = [
            high[0].as_raw_fd(),
            high[1].as_raw_fd(),
            high[2].as_raw_fd(),
        ];
        let mut cmd = std::process::Command::new(path);
        cmd.args(args)
            .env_clear()
            .env("CONTAINER_ID", &ctx.container_id)
            .env("CONTAINER_NAMESPACE", &ctx.namespace)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        // SAFETY: runs between fork and exec and only calls dup2, which is async-signal-safe;
        // `raw` was built before the fork. dup2 clears close-on-exec on fds 3, 4 and 5.
        unsafe {
            cmd.pre_exec(move || {
                for (i, fd) in raw.iter().enumerate() {
                    if libc::dup2(*fd, 3 + i as RawFd) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| err(format!("start: {e}")))?;
        drop((high, out_r, err_r, ready_w));
        let pid = Pid::new(child.id() as i32).ok_or_else(|| err("no pid".into()))?;
        // The reaper collects it; `child` must not wait for it.
        std::mem::forget(child);
        self.logger_exit = Some(ctx.reaper.watch(pid));
        self.logger = Some(pid);

        let mut ready = pipe::Receiver::from_owned_fd(ready_r).map_err(sys("ready pipe"))?;
        let mut b = [0u8; 1];
        match tokio::time::timeout(LOGGER_READY_TIMEOUT, ready.read(&mut b)).await {
            Ok(Ok(_)) => Ok((out_w, err_w)),
            Ok(Err(e)) => Err(err(format!("wait until ready: {e}"))),
            Err(_) => {
                let _ = pid.signal(Signal::SIGKILL);
                Err(err(format!(
                    "not ready after {LOGGER_READY_TIMEOUT:?}: it must close fd 5 when ready"
                )))
            }
        }
    }
}

impl Drop for ProcessIo {
    fn drop(&mut self) {
        if self.logger.is_some() || !self.outputs.is_empty() || self.stdin_task.is_some() {
            self.close();
        }
    }
}

/// Waits until the output copies hit EOF, at most `limit` (a background child holding the
/// pipe must not hold up the exit event); returns the copies that are still running.
pub async fn wait_outputs(
    mut outputs: Vec<JoinHandle<()>>,
    limit: Duration,
) -> Vec<JoinHandle<()>> {
    let all = async {
        for h in outputs.iter_mut() {
            let _ = h.await;
        }
    };
    if tokio::time::timeout(limit, all).await.is_err() {
        warn!("output still open {limit:?} after the exit (a background process holds it?)");
    }
    outputs.into_iter().filter(|h| !h.is_finished()).collect()
}

async fn stop_logger(pid: Pid, exit: tokio::sync::oneshot::Receiver<i32>) {
    let _ = pid.signal(Signal::SIGTERM);
    match tokio::time::timeout(LOGGER_TERM_TIMEOUT, exit).await {
        Ok(status) => debug!("logging binary {pid} exited: {status:?}"),
        Err(_) => {
            warn!("logging binary {pid} ignored SIGTERM for {LOGGER_TERM_TIMEOUT:?}: killing it");
            let _ = pid.signal(Signal::SIGKILL);
        }
    }
}

/// Copies a process' output to its destination until EOF (EIO on a terminal whose last slave
/// closed). A failing destination does not stop the reading, so the process never blocks.
async fn copy_output(
    mut from: Box<dyn AsyncRead + Unpin + Send>,
    mut to: Box<dyn AsyncWrite + Unpin + Send>,
    what: &'static str,
) {
    let mut buf = vec![0u8; COPY_BUF];
    let mut broken = false;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.raw_os_error() == Some(libc::EIO) => break,
            Err(e) => {
                warn!("copy {what}: read: {e}");
                break;
            }
        };
        if !broken {
            if let Err(e) = to.write_all(&buf[..n]).await {
                warn!("copy {what}: write: {e}; discarding the rest");
                broken = true;
            }
        }
    }
    let _ = to.flush().await;
}

/// Copies containerd's stdin fifo to the process until the writer closes it or CloseIO asks;
/// then what was already written is passed on and the process' stdin is closed.
async fn copy_stdin(path: PathBuf, mut to: Box<dyn AsyncWrite + Unpin + Send>, close: Arc<Notify>) {
    // Read-only and non-blocking: opening never waits for a writer, and reads wait until one
    // has come and report EOF once it has gone.
    let mut from = match pipe::OpenOptions::new().open_receiver(&path) {
        Ok(r) => r,
        Err(e) => {
            warn!("stdin {}: {e}", path.display());
            return;
        }
    };
    let mut buf = vec![0u8; COPY_BUF];
    loop {
        tokio::select! {
            biased;
            r = from.read(&mut buf) => match r {
                Ok(0) => break,
                Ok(n) => if to.write_all(&buf[..n]).await.is_err() { break },
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            },
            _ = close.notified() => {
                // Pass on what is already in the fifo. tokio's try_read trusts its cached
                // readiness, which may not have seen the client's last write yet: read the
                // (non-blocking) fd itself until it is empty.
                loop {
                    match nix::unistd::read(&from, &mut buf) {
                        Ok(n) if n > 0 => if to.write_all(&buf[..n]).await.is_err() { break },
                        Err(nix::errno::Errno::EINTR) => {}
                        _ => break,
                    }
                }
                break;
            }
        }
    }
    let _ = to.flush().await;
}

/// Opens containerd's fifo for writing without waiting for a reader (read-write open).
fn open_fifo_writer(path: &Path) -> Result<Box<dyn AsyncWrite + Unpin + Send>> {
    let tx = pipe::OpenOptions::new()
        .read_write(true)
        .open_sender(path)
        .map_err(|source| StdioError::Open {
            op: "open fifo",
            path: path.to_path_buf(),
            source,
        })?;
    Ok(Box::new(tx))
}

/// An async writer over a file or pipe fd.
fn async_writer(fd: OwnedFd) -> Result<Box<dyn AsyncWrite + Unpin + Send>> {
    let st = nix::sys::stat::fstat(&fd).map_err(|e| sys("fstat")(e.into()))?;
    if st.st_mode & libc::S_IFMT == libc::S_IFIFO {
        return Ok(Box::new(
            pipe::Sender::from_owned_fd(fd).map_err(sys("pipe writer"))?,
        ));
    }
    Ok(Box::new(tokio::fs::File::from_std(std::fs::File::from(fd))))
}

/// A log file opened for appending; `create` also makes it and its directory.
fn open_log_file(path: &Path, create: bool) -> Result<OwnedFd> {
    if create {
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(|source| StdioError::Open {
                    op: "create directory for",
                    path: path.to_path_buf(),
                    source,
                })?;
        }
    }
    std::fs::OpenOptions::new()
        .append(true)
        .create(create)
        .mode(0o644)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map(OwnedFd::from)
        .map_err(|source| StdioError::Open {
            op: "open log file",
            path: path.to_path_buf(),
            source,
        })
}

fn dev_null(write: bool) -> Result<OwnedFd> {
    std::fs::OpenOptions::new()
        .read(!write)
        .write(write)
        .open("/dev/null")
        .map(OwnedFd::from)
        .map_err(|source| StdioError::Open {
            op: "open",
            path: PathBuf::from("/dev/null"),
            source,
        })
}

/// A close-on-exec pipe: (read end, write end). Close-on-exec keeps the ends out of processes
/// other threads spawn meanwhile; the engine places them at 0–2 for its own child only.
fn pipe_pair() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| sys("create pipe")(e.into()))
}

fn dup_above(fd: &OwnedFd, min: RawFd) -> Result<OwnedFd> {
    let raw = fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(min)).map_err(|e| sys("dup")(e.into()))?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Gives the container's end of a pipe to io_uid/io_gid (runc's options), so a non-root
/// process can reopen it through /proc/self/fd.
fn chown_io(fd: &OwnedFd, ctx: &IoContext) -> Result<()> {
    if ctx.io_uid.is_none() && ctx.io_gid.is_none() {
        return Ok(());
    }
    nix::unistd::fchown(
        fd,
        ctx.io_uid.map(nix::unistd::Uid::from_raw),
        ctx.io_gid.map(nix::unistd::Gid::from_raw),
    )
    .map_err(|e| sys("chown pipe to io_uid/io_gid")(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_uris() {
        assert_eq!(parse_output("stdout", "").unwrap(), OutputUri::Null);
        assert_eq!(
            parse_output("stdout", "/run/containerd/fifo/1/c-stdout").unwrap(),
            OutputUri::Path("/run/containerd/fifo/1/c-stdout".into())
        );
        assert_eq!(
            parse_output("stdout", "file:///var/log/c%20one.log").unwrap(),
            OutputUri::File("/var/log/c one.log".into())
        );
        assert_eq!(
            parse_output("stdout", "binary:///usr/bin/logger?id=c1&tag=a+b&x").unwrap(),
            OutputUri::Binary {
                path: "/usr/bin/logger".into(),
                args: vec![
                    "id".into(),
                    "c1".into(),
                    "tag".into(),
                    "a b".into(),
                    "x".into(),
                    "".into()
                ],
            }
        );
        assert_eq!(
            parse_output("stdout", "binary://host/bin/l").unwrap(),
            OutputUri::Binary {
                path: "/bin/l".into(),
                args: vec![]
            }
        );
        for bad in ["ftp:///x", "file://", "file://relative", "binary:///a%zz"] {
            let e = parse_output("stdout", bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }

    fn ctx() -> IoContext {
        IoContext {
            container_id: "c1".into(),
            namespace: "ns".into(),
            io_uid: None,
            io_gid: None,
            reaper: Reaper::detached(),
        }
    }

    fn mkfifo(path: &Path) {
        nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fifo_stdio_copies_both_ways_and_never_blocks_without_reader() {
        let dir = tempfile::tempdir().unwrap();
        let (sin, sout) = (dir.path().join("in"), dir.path().join("out"));
        mkfifo(&sin);
        mkfifo(&sout);
        let paths = StdioPaths {
            stdin: sin.to_str().unwrap().into(),
            stdout: sout.to_str().unwrap().into(),
            stderr: String::new(),
            terminal: false,
        };
        // No reader on the stdout fifo and no writer on the stdin fifo yet: must not block.
        let (engine, mut pio) = ProcessIo::open(&paths, &ctx()).await.unwrap();
        // Play the process: `cat` from the stdin pipe to the stdout pipe.
        let mut cat = std::process::Command::new("cat")
            .stdin(std::process::Stdio::from(engine.stdio.stdin.unwrap()))
            .stdout(std::process::Stdio::from(engine.stdio.stdout.unwrap()))
            .stderr(std::process::Stdio::from(engine.stdio.stderr.unwrap()))
            .spawn()
            .unwrap();
        // Play containerd: read stdout, write stdin, then CloseIO. The reader opens the fifo
        // now (the shim holds its write end, so this does not block), as containerd opens it
        // before Create: output written before any reader exists is not kept.
        let mut out_fifo = std::fs::File::open(&sout).unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            std::io::Read::read_to_end(&mut out_fifo, &mut got).unwrap();
            got
        });
        tokio::task::spawn_blocking(move || {
            std::fs::write(&sin, b"hello through the shim\n").unwrap()
        })
        .await
        .unwrap();
        pio.close_stdin();
        tokio::task::spawn_blocking(move || cat.wait().unwrap())
            .await
            .unwrap();
        let left = wait_outputs(pio.take_outputs(), Duration::from_secs(5)).await;
        assert!(left.is_empty(), "the stdout copy finished at EOF");
        // The reader sees EOF once the shim's copy closed the fifo.
        drop(pio);
        let got = reader.join().unwrap();
        assert_eq!(got, b"hello through the shim\n");
    }

    #[tokio::test]
    async fn file_uri_is_passed_directly_and_appended() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("sub/c.log");
        std::fs::create_dir_all(log.parent().unwrap()).unwrap();
        std::fs::write(&log, b"old\n").unwrap();
        let uri = format!("file://{}", log.display());
        let paths = StdioPaths {
            stdin: String::new(),
            stdout: uri.clone(),
            stderr: uri,
            terminal: false,
        };
        let (engine, _pio) = ProcessIo::open(&paths, &ctx()).await.unwrap();
        let status = std::process::Command::new("sh")
            .args(["-c", "echo out; echo err >&2"])
            .stdin(std::process::Stdio::from(engine.stdio.stdin.unwrap()))
            .stdout(std::process::Stdio::from(engine.stdio.stdout.unwrap()))
            .stderr(std::process::Stdio::from(engine.stdio.stderr.unwrap()))
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "old\nout\nerr\n");
    }
}
