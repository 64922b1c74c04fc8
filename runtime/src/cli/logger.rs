//! Logging for the `log` crate in runc's logrus formats, because containerd's go-runc reads
//! runc's `--log` file (`--log-format json`: `{"level":"error","msg":"...","time":"..."}` per line)
//! to explain a failed command.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use log::{Level, LevelFilter, Log, Metadata, Record};

use super::{io_err, CliError, LogFormat, Result};

/// Set once `init` has installed the logger: whether records go to a `--log` file.
static TO_FILE: OnceLock<bool> = OnceLock::new();

struct Logger {
    out: Mutex<Output>,
    format: LogFormat,
}

enum Output {
    File(File),
    Stderr,
}

/// Installs the logger: records go to `path` (created, appended, synced like runc's) or to
/// stderr; debug records only with `debug`.
pub fn init(path: Option<&Path>, format: LogFormat, debug: bool) -> Result<()> {
    let out = match path {
        Some(p) => Output::File(
            OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o644)
                .custom_flags(libc::O_SYNC)
                .open(p)
                .map_err(io_err(p))?,
        ),
        None => Output::Stderr,
    };
    let to_file = matches!(out, Output::File(_));
    let logger = Logger {
        out: Mutex::new(out),
        format,
    };
    // Lives for the rest of the process (the `log` crate's std feature is not enabled here).
    log::set_logger(Box::leak(Box::new(logger)))
        .map_err(|e| CliError::Usage(format!("install logger: {e}")))?;
    log::set_max_level(if debug {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    });
    let _ = TO_FILE.set(to_file);
    Ok(())
}

/// Reports a failed command: one plain line on stderr, and a record in the `--log` file.
pub fn report_error(err: &CliError) {
    let msg = one_line(&err.to_string());
    if TO_FILE.get().copied().unwrap_or(false) {
        log::error!("{msg}");
    }
    eprintln!("{msg}");
}

/// Joins a multi-line message (a hook's captured output, say) into one line.
fn one_line(msg: &str) -> String {
    msg.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format_record(
            self.format,
            record.level(),
            &record.args().to_string(),
            &myrt_runtime::utils::time::now_rfc3339(false),
        );
        let Ok(mut out) = self.out.lock() else {
            return;
        };
        // A failing log write has nowhere better to go.
        let _ = match &mut *out {
            Output::File(f) => f.write_all(line.as_bytes()),
            Output::Stderr => std::io::stderr().write_all(line.as_bytes()),
        };
    }

    fn flush(&self) {}
}

/// logrus' level names.
fn level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "error",
        Level::Warn => "warning",
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
    }
}

/// One line in logrus' JSON formatter (keys sorted) or text formatter layout.
fn format_record(format: LogFormat, level: Level, msg: &str, time: &str) -> String {
    match format {
        LogFormat::Json => {
            let mut v = serde_json::Map::new();
            v.insert("level".into(), level_name(level).into());
            v.insert("msg".into(), msg.into());
            v.insert("time".into(), time.into());
            format!("{}\n", serde_json::Value::Object(v))
        }
        LogFormat::Text => format!(
            "time={} level={} msg={}\n",
            logfmt_value(time),
            level_name(level),
            logfmt_value(msg)
        ),
    }
}

/// logrus quotes a value unless it only holds "safe" characters.
fn logfmt_value(v: &str) -> String {
    let safe = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._/@^+".contains(c));
    if safe {
        return v.to_string();
    }
    // A JSON string is a close match for Go's %q for the text we log.
    serde_json::Value::from(v).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_matches_logrus() {
        assert_eq!(
            format_record(
                LogFormat::Json,
                Level::Error,
                "container \"x\" does not exist",
                "2024-01-02T03:04:05Z"
            ),
            "{\"level\":\"error\",\"msg\":\"container \\\"x\\\" does not exist\",\"time\":\"2024-01-02T03:04:05Z\"}\n"
        );
    }

    #[test]
    fn text_matches_logrus() {
        assert_eq!(
            format_record(LogFormat::Text, Level::Warn, "a b", "2024-01-02T03:04:05Z"),
            "time=\"2024-01-02T03:04:05Z\" level=warning msg=\"a b\"\n"
        );
        assert_eq!(logfmt_value("plain-word"), "plain-word");
    }

    #[test]
    fn errors_become_one_line() {
        assert_eq!(
            one_line("hook failed:\n  out: x\n\n  err: y\n"),
            "hook failed:; out: x; err: y"
        );
        assert_eq!(one_line("plain"), "plain");
    }
}
