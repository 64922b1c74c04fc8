//! Running a command with a deadline and keeping what it printed.
//!
//! Every `ctr` call of the e2e tests goes through here, so a hung shim fails one test after a
//! timeout instead of hanging the whole run.

use std::fmt;
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// What a finished command printed and how it ended.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// The command line, for messages.
    pub command: String,
    /// The exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    /// True when the deadline passed and the harness killed it.
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Returns self when the command exited 0, else panics with the whole output.
    #[track_caller]
    pub fn ok(self) -> CmdOutput {
        assert!(self.success(), "command failed: {self}");
        self
    }

    /// Returns self when the command failed (non-zero exit or signal), else panics.
    #[track_caller]
    pub fn failed(self) -> CmdOutput {
        assert!(
            !self.success(),
            "command succeeded but should have failed: {self}"
        );
        self
    }

    /// stdout and stderr together, for searching an error message wherever ctr printed it.
    pub fn all_output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl fmt::Display for CmdOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` ", self.command)?;
        match (self.code, self.signal, self.timed_out) {
            (_, _, true) => write!(f, "timed out and was killed")?,
            (Some(code), _, _) => write!(f, "exited with code {code}")?,
            (None, Some(sig), _) => write!(f, "was killed by signal {sig}")?,
            (None, None, _) => write!(f, "ended without a status")?,
        }
        write!(
            f,
            "\n--- stdout\n{}\n--- stderr\n{}\n---",
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// A started command whose output is being collected.
pub struct Running {
    command: String,
    child: Option<Child>,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
}

fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

fn collect(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        // A read error only truncates what the message shows; the exit status still decides.
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Starts `cmd` with stdin from /dev/null and stdout/stderr collected.
pub fn try_spawn(cmd: &mut Command) -> std::io::Result<Running> {
    let command = describe(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot start `{command}`: {e}")))?;
    let stdout = child.stdout.take().map(collect);
    let stderr = child.stderr.take().map(collect);
    Ok(Running {
        command,
        child: Some(child),
        stdout,
        stderr,
    })
}

/// [`try_spawn`], panicking when the command cannot start (a missing tool fails the test).
#[track_caller]
pub fn spawn(cmd: &mut Command) -> Running {
    try_spawn(cmd).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `cmd` to the end, killing it after `timeout`. Panics when it cannot start.
#[track_caller]
pub fn run(cmd: &mut Command, timeout: Duration) -> CmdOutput {
    spawn(cmd).wait(timeout)
}

/// [`run`] without the panic, for clean-up paths (Drop must not panic).
pub fn try_run(cmd: &mut Command, timeout: Duration) -> std::io::Result<CmdOutput> {
    Ok(try_spawn(cmd)?.wait(timeout))
}

impl Running {
    /// The child's pid (always > 0: it comes from a successful spawn).
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True while the command has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Waits up to `timeout` for the exit, then kills the command.
    pub fn wait(mut self, timeout: Duration) -> CmdOutput {
        let deadline = Instant::now() + timeout;
        let mut timed_out = false;
        let mut status: Option<ExitStatus> = None;
        if let Some(mut child) = self.child.take() {
            loop {
                match child.try_wait() {
                    Ok(Some(s)) => {
                        status = Some(s);
                        break;
                    }
                    Ok(None) if Instant::now() < deadline => {
                        thread::sleep(Duration::from_millis(10))
                    }
                    Ok(None) | Err(_) => {
                        timed_out = Instant::now() >= deadline;
                        // Child::kill signals exactly this child's (positive) pid.
                        let _ = child.kill();
                        status = child.wait().ok();
                        break;
                    }
                }
            }
        }
        let join =
            |h: Option<JoinHandle<String>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
        use std::os::unix::process::ExitStatusExt;
        CmdOutput {
            command: std::mem::take(&mut self.command),
            code: status.and_then(|s| s.code()),
            signal: status.and_then(|s| s.signal()),
            timed_out,
            stdout: join(self.stdout.take()),
            stderr: join(self.stderr.take()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
