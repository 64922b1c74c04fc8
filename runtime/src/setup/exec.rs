//! Finding the container's program and executing it.

use std::ffi::{CStr, CString};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::errno::Errno;
use nix::sys::signal::{signal, sigprocmask, SigHandler, SigSet, SigmaskHow, Signal};

use super::{errno_text, SetupError};

/// The value of `PATH` in `env` ("KEY=value" entries); the last one wins, as when runc puts
/// the process env into its own before looking the program up.
fn path_var(env: &[String]) -> Option<&str> {
    env.iter().rev().find_map(|kv| kv.strip_prefix("PATH="))
}

fn lookup_err(name: &str, reason: impl Into<String>) -> SetupError {
    SetupError::LookPath {
        name: name.to_string(),
        reason: reason.into(),
    }
}

/// Go's `findExecutable`: a regular (non-directory) file the caller may execute.
fn check_executable(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| {
        let errno = Errno::from_raw(e.raw_os_error().unwrap_or(0));
        format!("stat {}: {}", path.display(), errno_text(errno))
    })?;
    if meta.is_dir() {
        return Err(errno_text(Errno::EISDIR));
    }
    let c_path = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| "the path holds a NUL byte".to_string())?;
    // SAFETY: c_path is a valid NUL-terminated string for the whole call.
    let ret = unsafe {
        libc::faccessat(
            libc::AT_FDCWD,
            c_path.as_ptr(),
            libc::X_OK,
            libc::AT_EACCESS,
        )
    };
    match Errno::result(ret) {
        Ok(_) => Ok(()),
        // Like Go: where the kernel cannot answer, any execute bit will do.
        Err(Errno::ENOSYS | Errno::EPERM) if meta.mode() & 0o111 != 0 => Ok(()),
        Err(Errno::ENOSYS | Errno::EPERM) => Err(errno_text(Errno::EACCES)),
        Err(e) => Err(errno_text(e)),
    }
}

/// Resolves `args0` the way Go's `exec.LookPath` does, with `PATH` taken from the container
/// process' `env` (not the runtime's). A name with a slash is checked as is; otherwise each PATH
/// entry is tried in order (an empty entry means "."). Error texts are Go's, which runc shows:
/// `exec: "foo": executable file not found in $PATH`, `exec: "/etc": is a directory`,
/// `exec: "/etc/passwd": permission denied`.
///
/// Runs inside the container (after pivot_root, as the container user), so paths are plain
/// paths and permissions are the container user's.
pub fn find_executable(args0: &str, env: &[String]) -> Result<CString, SetupError> {
    let to_c = |p: &str| {
        CString::new(p).map_err(|_| SetupError::NulByte {
            field: "args[0]".into(),
            value: args0.to_string(),
        })
    };
    if args0.contains('/') {
        check_executable(Path::new(args0)).map_err(|reason| lookup_err(args0, reason))?;
        return to_c(args0);
    }
    // Like Go's filepath.SplitList, an empty or absent PATH has no entries at all.
    let path = path_var(env).unwrap_or("");
    if !args0.is_empty() && !path.is_empty() {
        for dir in path.split(':') {
            // An empty PATH element "" is the current directory (Unix shell semantics).
            let dir = if dir.is_empty() { "." } else { dir };
            let candidate = Path::new(dir).join(args0);
            if check_executable(&candidate).is_ok() {
                if !candidate.is_absolute() {
                    // Go refuses programs found relative to the cwd (ErrDot).
                    return Err(lookup_err(
                        args0,
                        "cannot run executable found relative to current directory",
                    ));
                }
                return to_c(&candidate.to_string_lossy());
            }
        }
    }
    Err(lookup_err(args0, "executable file not found in $PATH"))
}

fn to_cstrings(field: &str, values: &[String]) -> Result<Vec<CString>, SetupError> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            CString::new(v.as_str()).map_err(|_| SetupError::NulByte {
                field: format!("{field}[{i}]"),
                value: v.clone(),
            })
        })
        .collect()
}

/// execve(path, args, env). Returns only on error.
///
/// Before the call, SIGPIPE goes back to its default action and the signal mask is emptied:
/// Rust programs ignore SIGPIPE and an ignored signal stays ignored across execve, which would
/// change how the container's program behaves (e.g. `yes | head` never ending on EPIPE).
pub fn exec(path: &CStr, args: &[String], env: &[String]) -> SetupError {
    let err = |reason: String| SetupError::Exec {
        path: path.to_string_lossy().into_owned(),
        reason,
    };
    let args = match to_cstrings("args", args) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let env = match to_cstrings("env", env) {
        Ok(e) => e,
        Err(e) => return e,
    };
    // SAFETY: SIG_DFL installs no handler code, so no Rust code can run in a signal context;
    // the process is single-threaded here (init or setns process right before execve).
    if let Err(e) = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) } {
        return err(format!("reset SIGPIPE: {}", errno_text(e)));
    }
    if let Err(e) = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None) {
        return err(format!("clear the signal mask: {}", errno_text(e)));
    }
    match nix::unistd::execve(path, &args, &env) {
        Ok(never) => match never {},
        Err(e) => err(match e {
            Errno::ENOENT => format!(
                "{}: the program or its interpreter (#! line or ELF loader) is missing",
                errno_text(e)
            ),
            _ => errno_text(e),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::setup::testutil::*;
    use std::os::unix::fs::PermissionsExt;

    struct Dirs {
        _tmp: tempfile::TempDir,
        bin1: String,
        bin2: String,
    }

    fn make_dirs() -> Dirs {
        let tmp = tempfile::tempdir().unwrap();
        let bin1 = tmp.path().join("bin1");
        let bin2 = tmp.path().join("bin2");
        std::fs::create_dir(&bin1).unwrap();
        std::fs::create_dir(&bin2).unwrap();
        let file = |p: std::path::PathBuf, mode| {
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        file(bin1.join("noexec"), 0o644);
        file(bin2.join("noexec"), 0o755);
        file(bin1.join("onlyone"), 0o644);
        file(bin2.join("tool"), 0o755);
        file(bin1.join("tool"), 0o700);
        std::fs::create_dir(bin1.join("adir")).unwrap();
        Dirs {
            bin1: bin1.to_str().unwrap().to_string(),
            bin2: bin2.to_str().unwrap().to_string(),
            _tmp: tmp,
        }
    }

    fn env(d: &Dirs) -> Vec<String> {
        vec![
            "HOME=/root".into(),
            "PATH=/nonexistent".into(),
            format!("PATH={}:{}", d.bin1, d.bin2),
        ]
    }

    fn found(args0: &str, env: &[String]) -> String {
        find_executable(args0, env).unwrap().into_string().unwrap()
    }

    fn error(args0: &str, env: &[String]) -> String {
        find_executable(args0, env).unwrap_err().to_string()
    }

    #[test]
    fn path_lookup_takes_first_executable() {
        let d = make_dirs();
        let env = env(&d);
        assert_eq!(found("tool", &env), format!("{}/tool", d.bin1));
        // bin1's copy is not executable: skipped.
        assert_eq!(found("noexec", &env), format!("{}/noexec", d.bin2));
    }

    #[test]
    fn path_lookup_errors_are_gos() {
        let d = make_dirs();
        let env = env(&d);
        assert_eq!(
            error("missing", &env),
            r#"exec: "missing": executable file not found in $PATH"#
        );
        assert_eq!(
            error("onlyone", &env),
            r#"exec: "onlyone": executable file not found in $PATH"#
        );
        assert_eq!(
            error("adir", &env),
            r#"exec: "adir": executable file not found in $PATH"#
        );
        assert_eq!(
            error("", &env),
            r#"exec: "": executable file not found in $PATH"#
        );
        // No PATH in the process env: the runtime's own PATH must not be used.
        assert_eq!(
            error("sh", &["HOME=/".to_string()]),
            r#"exec: "sh": executable file not found in $PATH"#
        );
    }

    #[test]
    fn paths_with_slash_are_checked_directly() {
        let d = make_dirs();
        let env = env(&d);
        let p = format!("{}/tool", d.bin2);
        assert_eq!(found(&p, &[]), p);
        let p = format!("{}/onlyone", d.bin1);
        assert_eq!(error(&p, &env), format!("exec: {p:?}: permission denied"));
        let p = format!("{}/adir", d.bin1);
        assert_eq!(error(&p, &env), format!("exec: {p:?}: is a directory"));
        let p = format!("{}/missing", d.bin1);
        assert_eq!(
            error(&p, &env),
            format!("exec: {p:?}: stat {p}: no such file or directory")
        );
    }

    #[test]
    fn nul_in_args_names_the_field() {
        let err = exec(c"/bin/true", &["a\0b".to_string()], &[]).to_string();
        assert_eq!(err, "process.args[0] holds a NUL byte: \"a\\0b\"");
        let err = exec(c"/bin/true", &[], &["X=\0".to_string()]).to_string();
        assert_eq!(err, "process.env[0] holds a NUL byte: \"X=\\0\"");
    }

    #[test]
    fn exec_missing_program_reports_path() {
        // execve fails before replacing anything: safe in this process.
        let err = exec(c"/nonexistent-myrt/prog", &["prog".into()], &[]).to_string();
        assert!(
            err.starts_with("exec \"/nonexistent-myrt/prog\": no such file or directory"),
            "{err}"
        );
    }

    #[test]
    fn relative_path_entry_is_refused_child() {
        if !in_child() {
            assert_child_ok(&run_child(
                module_path!(),
                "relative_path_entry_is_refused_child",
            ));
            return;
        }
        let d = make_dirs();
        std::env::set_current_dir(&d.bin2).unwrap();
        assert_eq!(
            error("tool", &["PATH=".to_string()]),
            r#"exec: "tool": executable file not found in $PATH"#
        );
        for path in [
            "PATH=.",
            "PATH=/nonexistent::/bin",
            "PATH=bin2-is-cwd:../bin2",
        ] {
            assert_eq!(
                error("tool", &[path.to_string()]),
                r#"exec: "tool": cannot run executable found relative to current directory"#,
                "{path}"
            );
        }
    }

    fn sigpipe_bit(sig_ign_hex: &str) -> u64 {
        u64::from_str_radix(sig_ign_hex, 16).unwrap() & (1 << (libc::SIGPIPE - 1))
    }

    /// The exec'd program gets exactly args and env, and SIGPIPE back at its default.
    #[test]
    fn exec_passes_args_env_and_default_sigpipe_child() {
        if !in_child() {
            let out = run_child(
                module_path!(),
                "exec_passes_args_env_and_default_sigpipe_child",
            );
            assert!(out.status.success(), "{}", describe(&out));
            let stdout = String::from_utf8_lossy(&out.stdout);
            let tail: Vec<&str> = stdout
                .split_once("EXEC\n")
                .map(|(_, t)| t.lines().collect())
                .unwrap_or_default();
            assert_eq!(tail.len(), 3, "{}", describe(&out));
            assert_eq!(
                &tail[..2],
                ["arg1=one two", "FOO=bar"],
                "{}",
                describe(&out)
            );
            let ignored = tail[2].strip_prefix("SigIgn:\t").unwrap();
            assert_eq!(
                sigpipe_bit(ignored),
                0,
                "SIGPIPE still ignored after exec: {}",
                describe(&out)
            );
            return;
        }
        // Rust ignores SIGPIPE in every program, this test binary included: exec must undo it.
        assert_ne!(sigpipe_bit(&thread_status("SigIgn")), 0);
        let env = ["FOO=bar".to_string(), "PATH=/usr/bin:/bin".to_string()];
        let sh = find_executable("sh", &env).unwrap();
        let script =
            "echo \"arg1=$1\"; env | grep -v '^PWD=' | grep FOO; grep SigIgn /proc/self/status";
        let args = ["sh", "-c", script, "sh", "one two"].map(String::from);
        println!("EXEC");
        panic!("exec returned: {}", exec(&sh, &args, &env));
    }
}
