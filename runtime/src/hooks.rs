//! OCI lifecycle hooks and the container state JSON they get on stdin.
//!
//! The runtime parent runs prestart, createRuntime, poststart and poststop hooks; the container's
//! init runs createContainer and startContainer. Each hook gets exactly its own `env` (nothing is
//! inherited), the state JSON on stdin, and its stdout/stderr captured for the error message.
//!
//! Hooks are started with `std::process::Command` and no `pre_exec` closure, so running them
//! from a multi-threaded process (the shim) is safe. They are waited for by pid, so a
//! process-wide reaper calling waitpid(-1) at the same time would take their exit status away:
//! such a reaper must leave the pids of running hooks alone.

use std::collections::HashMap;
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use oci_spec::runtime::Hook;
use serde::{Deserialize, Serialize};

use crate::Pid;

/// The most of a hook's stdout/stderr kept for the error message, and the most shown.
const KEEP_OUTPUT: usize = 64 * 1024;
const SHOW_OUTPUT: usize = 1024;
/// How long to wait for a hook's output after it exited: a background child of the hook may
/// hold its stdout open forever, and that must not hang the runtime.
const OUTPUT_GRACE: Duration = Duration::from_millis(200);

/// Which lifecycle point a hook list belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HookKind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl HookKind {
    /// The field name in the spec's `hooks` object.
    pub fn name(self) -> &'static str {
        match self {
            HookKind::Prestart => "prestart",
            HookKind::CreateRuntime => "createRuntime",
            HookKind::CreateContainer => "createContainer",
            HookKind::StartContainer => "startContainer",
            HookKind::Poststart => "poststart",
            HookKind::Poststop => "poststop",
        }
    }

    /// True for the hooks the spec runs in the runtime's namespaces (by the parent).
    pub fn runs_in_runtime_namespace(self) -> bool {
        !matches!(self, HookKind::CreateContainer | HookKind::StartContainer)
    }

    /// The `status` of the state these hooks get on stdin.
    ///
    /// runtime.md: "creating" is lifecycle step 2 (the environment being built); "created" is
    /// "after step 2" until the user's program runs. prestart, createRuntime and
    /// createContainer are steps 3-5 and startContainer step 7: all after the environment
    /// exists and before the program runs, so "created" (as crun and the runtime-tools suite
    /// have it; runc passes "creating" to the first three). poststart comes after the program
    /// started, so "running" even if it already exited; poststop "stopped".
    pub fn status(self) -> &'static str {
        match self {
            HookKind::Prestart
            | HookKind::CreateRuntime
            | HookKind::CreateContainer
            | HookKind::StartContainer => "created",
            HookKind::Poststart => "running",
            HookKind::Poststop => "stopped",
        }
    }
}

impl fmt::Display for HookKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The OCI runtime state (runtime-spec "state"), as hooks and `myrt state` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    pub oci_version: String,
    pub id: String,
    /// "creating", "created", "running", "paused" or "stopped".
    pub status: String,
    /// The container's init pid; absent once it is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    pub bundle: PathBuf,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

impl OciState {
    /// A state with the runtime-spec version this crate implements and no annotations.
    pub fn new(id: &str, status: &str, pid: Option<i32>, bundle: &Path) -> OciState {
        OciState {
            oci_version: oci_spec::runtime::VERSION.to_string(),
            id: id.to_string(),
            status: status.to_string(),
            pid,
            bundle: bundle.to_path_buf(),
            annotations: HashMap::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("serialize the container state for the {kind} hooks: {source}")]
    State {
        kind: HookKind,
        source: serde_json::Error,
    },
    #[error("hooks.{kind}[{index}] {path:?}: {reason}")]
    Invalid {
        kind: HookKind,
        index: usize,
        path: PathBuf,
        reason: String,
    },
    #[error("hooks.{kind}[{index}] {path:?}: start: {source}")]
    Spawn {
        kind: HookKind,
        index: usize,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("hooks.{kind}[{index}] {path:?}: wait: {source}")]
    Wait {
        kind: HookKind,
        index: usize,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("hooks.{kind}[{index}] {path:?}: timed out after {secs}s (killed)")]
    Timeout {
        kind: HookKind,
        index: usize,
        path: PathBuf,
        secs: i64,
    },
    #[error("hooks.{kind}[{index}] {path:?}: {status}{output}")]
    Failed {
        kind: HookKind,
        index: usize,
        path: PathBuf,
        /// "exit status 3" or "killed by signal 9 (SIGKILL)".
        status: String,
        /// ": stderr: …" (or stdout when stderr is empty), trimmed and bounded; may be empty.
        output: String,
    },
}

/// Runs `hooks` of `kind` one after the other, stopping at the first that fails.
///
/// Each hook gets `state` as JSON on stdin, exactly its own env, and, for hooks run in the
/// runtime namespace, the bundle as its working directory (runc's cwd is the bundle too).
/// `timeout` seconds, when set, bound a hook's run time: past it the hook is killed (SIGKILL to
/// its pid), reaped, and an error returned. Processes the hook started in the background are
/// not tracked.
pub fn run_hooks(
    kind: HookKind,
    hooks: Option<&Vec<Hook>>,
    state: &OciState,
) -> Result<(), HookError> {
    let Some(hooks) = hooks.filter(|h| !h.is_empty()) else {
        return Ok(());
    };
    let json = serde_json::to_vec(state).map_err(|source| HookError::State { kind, source })?;
    for (index, hook) in hooks.iter().enumerate() {
        log::debug!("running hooks.{kind}[{index}] {:?}", hook.path());
        run_hook(kind, index, hook, &json, &state.bundle)?;
    }
    Ok(())
}

fn command(kind: HookKind, index: usize, hook: &Hook, bundle: &Path) -> Result<Command, HookError> {
    let invalid = |reason: String| HookError::Invalid {
        kind,
        index,
        path: hook.path().clone(),
        reason,
    };
    if !hook.path().is_absolute() {
        return Err(invalid("the path must be absolute".into()));
    }
    if let Some(t) = hook.timeout() {
        if t <= 0 {
            return Err(invalid(format!(
                "timeout {t}: must be greater than zero seconds"
            )));
        }
    }
    let mut cmd = Command::new(hook.path());
    if let Some((arg0, rest)) = hook.args().as_deref().and_then(|a| a.split_first()) {
        cmd.arg0(arg0).args(rest);
    }
    cmd.env_clear();
    for (i, kv) in hook.env().iter().flatten().enumerate() {
        let (key, value) = kv
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| invalid(format!("env[{i}] {kv:?}: must be KEY=value")))?;
        cmd.env(key, value);
    }
    if kind.runs_in_runtime_namespace() && bundle.is_dir() {
        cmd.current_dir(bundle);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Ok(cmd)
}

/// Reads a pipe to its end in a thread, keeping the first KEEP_OUTPUT bytes.
fn collect(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let room = KEEP_OUTPUT.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = tx.send(kept);
    });
    rx
}

fn run_hook(
    kind: HookKind,
    index: usize,
    hook: &Hook,
    state: &[u8],
    bundle: &Path,
) -> Result<(), HookError> {
    let path = || hook.path().clone();
    let mut child = command(kind, index, hook, bundle)?
        .spawn()
        .map_err(|source| HookError::Spawn {
            kind,
            index,
            path: path(),
            source,
        })?;

    if let Some(mut stdin) = child.stdin.take() {
        let state = state.to_vec();
        // A thread, so a hook that does not read stdin cannot block us on a full pipe; a hook
        // that exits without reading makes the write fail with EPIPE, which is fine.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&state);
        });
    }
    let stdout = child.stdout.take().map(collect);
    let stderr = child.stderr.take().map(collect);

    let deadline = hook.timeout().map(|secs| {
        (
            secs,
            Instant::now() + Duration::from_secs(secs.unsigned_abs()),
        )
    });
    let status = match wait(&mut child, deadline.map(|(_, d)| d)) {
        Ok(Some(status)) => status,
        Ok(None) => {
            kill(&mut child);
            return Err(HookError::Timeout {
                kind,
                index,
                path: path(),
                secs: deadline.map_or(0, |(s, _)| s),
            });
        }
        Err(source) => {
            kill(&mut child);
            return Err(HookError::Wait {
                kind,
                index,
                path: path(),
                source,
            });
        }
    };

    let grace = Instant::now() + OUTPUT_GRACE;
    let take = |rx: Option<mpsc::Receiver<Vec<u8>>>| {
        rx.and_then(|rx| {
            rx.recv_timeout(grace.saturating_duration_since(Instant::now()))
                .ok()
        })
        .unwrap_or_default()
    };
    let out = take(stdout);
    let err = take(stderr);
    if status.success() {
        if !out.is_empty() {
            log::debug!(
                "hooks.{kind}[{index}] stdout: {}",
                String::from_utf8_lossy(&out).trim()
            );
        }
        return Ok(());
    }
    Err(HookError::Failed {
        kind,
        index,
        path: path(),
        status: describe_status(status),
        output: describe_output(&out, &err),
    })
}

/// Waits for the child until `deadline`; `Ok(None)` when the deadline passed first.
fn wait(child: &mut Child, deadline: Option<Instant>) -> std::io::Result<Option<ExitStatus>> {
    let Some(deadline) = deadline else {
        return child.wait().map(Some);
    };
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// SIGKILL to the hook's own pid (never a group), then reap it.
fn kill(child: &mut Child) {
    match Pid::new(child.id() as i32) {
        Some(pid) => {
            if let Err(e) = pid.signal(Signal::SIGKILL) {
                log::warn!("kill hook: {e}");
            }
        }
        None => log::warn!("hook has no valid pid ({}), not signalling", child.id()),
    }
    if let Err(e) = child.wait() {
        log::warn!("reap hook pid {}: {e}", child.id());
    }
}

fn describe_status(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        format!("exit status {code}")
    } else if let Some(sig) = status.signal() {
        match Signal::try_from(sig) {
            Ok(s) => format!("killed by signal {sig} ({s})"),
            Err(_) => format!("killed by signal {sig}"),
        }
    } else {
        status.to_string()
    }
}

/// ": stderr: <text>" (stdout when stderr is empty), trimmed, its last SHOW_OUTPUT bytes.
fn describe_output(stdout: &[u8], stderr: &[u8]) -> String {
    let (name, bytes) = if String::from_utf8_lossy(stderr).trim().is_empty() {
        ("stdout", stdout)
    } else {
        ("stderr", stderr)
    };
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    if text.len() <= SHOW_OUTPUT {
        return format!(": {name}: {text}");
    }
    let mut start = text.len() - SHOW_OUTPUT;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!(": {name}: …{}", &text[start..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::HookBuilder;

    fn sh(script: &str, env: &[String], timeout: Option<i64>) -> Hook {
        let mut b = HookBuilder::default()
            .path("/bin/sh")
            .args(vec!["sh".to_string(), "-c".to_string(), script.to_string()])
            .env(env.to_vec());
        if let Some(t) = timeout {
            b = b.timeout(t);
        }
        b.build().unwrap()
    }

    fn state(bundle: &Path) -> OciState {
        let mut s = OciState::new("ctr-1", "creating", Some(4242), bundle);
        s.annotations
            .insert("org.example/key".into(), "value".into());
        s
    }

    #[test]
    fn state_json_uses_spec_field_names() {
        let s = state(Path::new("/run/bundle"));
        let v = serde_json::to_value(&s).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            ["annotations", "bundle", "id", "ociVersion", "pid", "status"]
        );
        assert_eq!(v["ociVersion"], oci_spec::runtime::VERSION);
        assert_eq!(v["pid"], 4242);
        assert_eq!(v["bundle"], "/run/bundle");
        assert_eq!(v["annotations"]["org.example/key"], "value");

        // Absent pid and no annotations are left out, like runc's omitempty.
        let bare = OciState::new("c", "stopped", None, Path::new("/b"));
        let text = serde_json::to_string(&bare).unwrap();
        assert!(
            !text.contains("pid") && !text.contains("annotations"),
            "{text}"
        );
        let back: OciState = serde_json::from_str(&text).unwrap();
        assert_eq!(back, bare);
        // oci-spec's own State type reads what we write.
        let theirs: oci_spec::runtime::State = serde_json::from_value(v).unwrap();
        assert_eq!(theirs.pid(), &Some(4242));
    }

    #[test]
    fn kind_names_are_spec_fields() {
        assert_eq!(HookKind::CreateRuntime.to_string(), "createRuntime");
        assert_eq!(HookKind::StartContainer.name(), "startContainer");
        assert!(HookKind::Poststop.runs_in_runtime_namespace());
        assert!(!HookKind::CreateContainer.runs_in_runtime_namespace());
    }

    #[test]
    fn hook_status_follows_the_lifecycle() {
        for kind in [
            HookKind::Prestart,
            HookKind::CreateRuntime,
            HookKind::CreateContainer,
            HookKind::StartContainer,
        ] {
            assert_eq!(kind.status(), "created", "{kind}");
        }
        assert_eq!(HookKind::Poststart.status(), "running");
        assert_eq!(HookKind::Poststop.status(), "stopped");
    }

    #[test]
    fn no_hooks_is_ok() {
        let s = state(Path::new("/"));
        run_hooks(HookKind::Prestart, None, &s).unwrap();
        run_hooks(HookKind::Prestart, Some(&vec![]), &s).unwrap();
    }

    #[test]
    fn hook_gets_state_on_stdin_and_only_its_env() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("state.json");
        let env_out = dir.path().join("env");
        let cwd_out = dir.path().join("cwd");
        let hooks = vec![
            sh(
                "cat > \"$OUT\"",
                &[format!("OUT={}", out.display())],
                Some(5),
            ),
            sh(
                "env > \"$OUT\"; pwd > \"$CWD\"",
                &[
                    format!("OUT={}", env_out.display()),
                    format!("CWD={}", cwd_out.display()),
                    "A=b=c".to_string(),
                ],
                None,
            ),
        ];
        let s = state(dir.path());
        run_hooks(HookKind::CreateRuntime, Some(&hooks), &s).unwrap();

        let got: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        assert_eq!(got, serde_json::to_value(&s).unwrap());

        let env = std::fs::read_to_string(&env_out).unwrap();
        let mut vars: Vec<&str> = env
            .lines()
            // dash exports PWD itself.
            .filter(|l| !l.starts_with("PWD="))
            .collect();
        vars.sort();
        assert_eq!(
            vars,
            [
                "A=b=c",
                format!("CWD={}", cwd_out.display()).as_str(),
                format!("OUT={}", env_out.display()).as_str()
            ]
        );
        // Runtime-namespace hooks run in the bundle, as with runc.
        let cwd = std::fs::read_to_string(&cwd_out).unwrap();
        assert_eq!(cwd.trim(), dir.path().to_str().unwrap());
    }

    #[test]
    fn args_zero_is_passed() {
        // busybox picks its applet by argv[0]: "false" must fail, "true" must succeed.
        let bb = |applet: &str| {
            HookBuilder::default()
                .path("/usr/bin/busybox")
                .args(vec![applet.to_string()])
                .build()
                .unwrap()
        };
        let s = state(Path::new("/"));
        run_hooks(HookKind::Poststart, Some(&vec![bb("true")]), &s).unwrap();
        let err = run_hooks(HookKind::Poststart, Some(&vec![bb("false")]), &s)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "hooks.poststart[0] \"/usr/bin/busybox\": exit status 1"
        );
    }

    #[test]
    fn failing_hook_reports_status_and_stderr_and_stops_the_list() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let env = [format!("LOG={}", log.display())];
        let hooks = vec![
            sh("echo first >> \"$LOG\"", &env, None),
            sh(
                "echo to-stdout; echo '  oops: bad thing  ' >&2; exit 3",
                &env,
                Some(5),
            ),
            sh("echo third >> \"$LOG\"", &env, None),
        ];
        let err = run_hooks(HookKind::Prestart, Some(&hooks), &state(dir.path()))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "hooks.prestart[1] \"/bin/sh\": exit status 3: stderr: oops: bad thing"
        );
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "first\n");

        let hooks = vec![sh("echo only-stdout; kill -9 $$", &[], None)];
        let err = run_hooks(HookKind::Poststop, Some(&hooks), &state(dir.path()))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "hooks.poststop[0] \"/bin/sh\": killed by signal 9 (SIGKILL): stdout: only-stdout"
        );
    }

    #[test]
    fn long_stderr_is_bounded() {
        let hooks = vec![sh(
            "i=0; while [ $i -lt 3000 ]; do printf 'x' >&2; i=$((i+1)); done; printf END >&2; exit 1",
            &[],
            None,
        )];
        let err = run_hooks(HookKind::Prestart, Some(&hooks), &state(Path::new("/")))
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("xxxEND"), "{err}");
        assert!(err.len() < SHOW_OUTPUT + 100, "{} bytes", err.len());
    }

    #[test]
    fn hook_past_timeout_is_killed_and_reaped() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let hooks = vec![sh(
            "echo $$ > \"$PIDF\"; exec sleep 30",
            &[format!("PIDF={}", pid_file.display())],
            Some(1),
        )];
        let started = Instant::now();
        let err = run_hooks(HookKind::StartContainer, Some(&hooks), &state(dir.path()))
            .unwrap_err()
            .to_string();
        let took = started.elapsed();
        assert_eq!(
            err,
            "hooks.startContainer[0] \"/bin/sh\": timed out after 1s (killed)"
        );
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_secs(2),
            "took {took:?}"
        );
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Reaped: not even a zombie is left.
        assert!(
            !Pid::new(pid).unwrap().exists(),
            "hook pid {pid} still exists"
        );
    }

    #[test]
    fn background_child_holding_stdout_does_not_hang() {
        let hooks = vec![sh("sleep 5 & echo started", &[], Some(3))];
        let started = Instant::now();
        run_hooks(HookKind::Poststart, Some(&hooks), &state(Path::new("/"))).unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn hook_that_ignores_big_stdin_still_runs() {
        let mut s = state(Path::new("/"));
        s.annotations.insert("big".into(), "y".repeat(1 << 20));
        let hooks = vec![sh("exit 0", &[], Some(5))];
        run_hooks(HookKind::Poststart, Some(&hooks), &s).unwrap();
    }

    #[test]
    fn invalid_hooks_name_the_field() {
        let s = state(Path::new("/"));
        let rel = HookBuilder::default().path("bin/hook").build().unwrap();
        let err = run_hooks(HookKind::Prestart, Some(&vec![rel]), &s)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "hooks.prestart[0] \"bin/hook\": the path must be absolute"
        );
        let zero = sh("true", &[], Some(0));
        let err = run_hooks(HookKind::Prestart, Some(&vec![zero]), &s)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "hooks.prestart[0] \"/bin/sh\": timeout 0: must be greater than zero seconds"
        );
        let bad_env = sh("true", &["NOEQUALS".to_string()], None);
        let err = run_hooks(HookKind::Prestart, Some(&vec![bad_env]), &s)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "hooks.prestart[0] \"/bin/sh\": env[0] \"NOEQUALS\": must be KEY=value"
        );
        let missing = HookBuilder::default()
            .path("/nonexistent/hook")
            .build()
            .unwrap();
        let err = run_hooks(HookKind::Prestart, Some(&vec![missing]), &s)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("hooks.prestart[0] \"/nonexistent/hook\": start: "),
            "{err}"
        );
    }
}
