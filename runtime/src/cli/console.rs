//! Terminals: `--console-socket PATH` (the caller receives the pty master) and, for foreground
//! `run`/`exec` with a terminal, myrt's own relay between its stdio and the pty master, like runc's
//! tty.go (raw mode on a terminal stdin, window size follows SIGWINCH).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::termios::{self, SetArg, Termios};

use super::{io_err, CliError, Result};

/// How long to wait for the last output after the process exited and the container is gone.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Connects to the caller's console socket; the connected fd goes to the engine.
pub fn connect(path: &Path) -> Result<OwnedFd> {
    let stream = UnixStream::connect(path).map_err(io_err(path))?;
    Ok(stream.into())
}

/// A connected pair: ours receives the master, theirs goes to the engine.
pub fn pair() -> Result<(OwnedFd, OwnedFd)> {
    let (ours, theirs) =
        UnixStream::pair().map_err(|e| CliError::Console(format!("socketpair: {e}")))?;
    Ok((ours.into(), theirs.into()))
}

/// Copies stdin to the pty master and the master to stdout until the container is gone.
pub struct Relay {
    master: File,
    output_done: mpsc::Receiver<()>,
    /// The terminal settings of our stdin before raw mode, restored on drop.
    saved: Option<Termios>,
}

impl Relay {
    /// Receives the master over `socket` and starts copying.
    pub fn start(socket: OwnedFd) -> Result<Relay> {
        let (master, _name) = myrt_runtime::tty::recv_console(socket.as_fd())
            .map_err(|e| CliError::Console(format!("receive the pty master: {e}")))?;
        let master = File::from(master);
        let stdin = std::io::stdin();
        let saved = if nix::unistd::isatty(stdin.as_fd()).unwrap_or(false) {
            let saved = termios::tcgetattr(stdin.as_fd())
                .map_err(|e| CliError::Console(format!("read terminal settings: {e}")))?;
            let mut raw = saved.clone();
            termios::cfmakeraw(&mut raw);
            termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)
                .map_err(|e| CliError::Console(format!("set raw mode: {e}")))?;
            Some(saved)
        } else {
            None
        };
        let relay_input = master
            .try_clone()
            .map_err(|e| CliError::Console(format!("dup pty master: {e}")))?;
        let relay_output = master
            .try_clone()
            .map_err(|e| CliError::Console(format!("dup pty master: {e}")))?;
        let stdin_copy = File::from(
            stdin
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| CliError::Console(format!("dup stdin: {e}")))?,
        );
        let stdout_copy = File::from(
            std::io::stdout()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| CliError::Console(format!("dup stdout: {e}")))?,
        );
        let relay = Relay {
            master,
            output_done: spawn_output(relay_output, stdout_copy),
            saved,
        };
        relay.resize();
        // Input stops at EOF on stdin; the thread dies with the process otherwise.
        std::thread::spawn(move || copy(stdin_copy, relay_input));
        Ok(relay)
    }

    /// Gives the pty our terminal's window size (on start and on SIGWINCH).
    pub fn resize(&self) {
        if self.saved.is_some() {
            if let Err(e) = copy_winsize(std::io::stdin().as_fd(), self.master.as_fd()) {
                log::debug!("resize the container's terminal: {e}");
            }
        }
    }

    /// Waits (bounded) until the output is copied: the master reads EIO once every process
    /// holding the pty is gone.
    pub fn finish(self) {
        if self.output_done.recv_timeout(DRAIN_TIMEOUT).is_err() {
            log::debug!("terminal output still open after the process exited");
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, saved);
        }
    }
}

fn spawn_output(master: File, stdout: File) -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        copy(master, stdout);
        let _ = tx.send(());
    });
    rx
}

/// Copies until EOF or an error (EIO on the master when the slave side is closed).
fn copy(mut from: File, mut to: File) {
    let mut buf = [0u8; 8192];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

fn copy_winsize(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> std::io::Result<()> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into the struct we pass; the fd is borrowed and open.
    if unsafe { libc::ioctl(from.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: TIOCSWINSZ only reads the winsize we pass; the fd is borrowed and open.
    if unsafe { libc::ioctl(to.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
