//! The shim server's log: logfmt lines into the `log` fifo containerd opens in the bundle, which
//! containerd copies to its own log. Replaces the containerd-shim crate's logger, which writes
//! an empty line after every record and leaves quotes and newlines in messages unescaped (a
//! panic's multi-line message broke the line format).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::str::FromStr;
use std::sync::Mutex;

use log::{LevelFilter, Log, Metadata, Record};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Overrides every other level setting, as in the crate and runc's shim.
const LEVEL_ENV: &str = "RUST_LOG";

#[derive(Debug, thiserror::Error)]
pub enum LoggerError {
    #[error("open the shim log fifo {path:?} in the bundle: {source}")]
    Open {
        path: &'static str,
        source: std::io::Error,
    },
    #[error("install the shim logger: {0}")]
    Install(#[from] log::SetLoggerError),
}

struct FifoLogger {
    fifo: Mutex<File>,
}

impl Log for FifoLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format_line(&timestamp(), record.level(), &record.args().to_string());
        if let Ok(mut fifo) = self.fifo.lock() {
            // EPIPE while containerd restarts (no reader) is not worth failing a call for;
            // containerd reopens the same fifo when it reconnects.
            let _ = fifo.write_all(line.as_bytes());
        }
    }

    fn flush(&self) {
        if let Ok(mut fifo) = self.fifo.lock() {
            let _ = fifo.flush();
        }
    }
}

fn timestamp() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// One logfmt line like containerd's own: `time="…" level=info msg="…"\n`, with `"`, `\` and
/// control characters in the message escaped so that a record is always exactly one line.
fn format_line(time: &str, level: log::Level, msg: &str) -> String {
    let mut escaped = String::with_capacity(msg.len());
    for c in msg.chars() {
        match c {
            '"' => escaped.push_str("\\\""),
            '\\' => escaped.push_str("\\\\"),
            '\n' => escaped.push_str("\\n"),
            '\t' => escaped.push_str("\\t"),
            c if c.is_control() => escaped.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => escaped.push(c),
        }
    }
    format!(
        "time=\"{time}\" level={} msg=\"{escaped}\"\n",
        level.as_str().to_lowercase()
    )
}

/// The level: `RUST_LOG` if set and valid, else `default` (the `log_level` option or info);
/// `-debug` from containerd raises it to at least debug.
fn level(debug: bool, default: &str) -> LevelFilter {
    let chosen = std::env::var(LEVEL_ENV)
        .ok()
        .and_then(|v| LevelFilter::from_str(&v).ok())
        .or_else(|| LevelFilter::from_str(default).ok())
        .unwrap_or(LevelFilter::Info);
    if debug {
        chosen.max(LevelFilter::Debug)
    } else {
        chosen
    }
}

/// Installs the logger on the bundle's `log` fifo (the server runs in the bundle directory).
pub fn init(debug: bool, default_level: &str) -> Result<(), LoggerError> {
    const FIFO: &str = "log";
    let fifo = OpenOptions::new()
        .write(true)
        .open(FIFO)
        .map_err(|source| LoggerError::Open { path: FIFO, source })?;
    log::set_boxed_logger(Box::new(FifoLogger {
        fifo: Mutex::new(fifo),
    }))?;
    log::set_max_level(level(debug, default_level));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_record_with_the_message_escaped() {
        let line = format_line(
            "2026-11-28T00:00:00Z",
            log::Level::Warn,
            "panic: \"x\"\n at a\\b\tc\u{7}",
        );
        assert_eq!(
            line,
            "time=\"2026-11-28T00:00:00Z\" level=warn msg=\"panic: \\\"x\\\"\\n at a\\\\b\\tc\\u{7}\"\n"
        );
        assert_eq!(line.matches('\n').count(), 1);
    }

    #[test]
    fn debug_flag_raises_but_never_lowers() {
        // RUST_LOG is not set in the test environment of this crate's CI.
        if std::env::var_os(LEVEL_ENV).is_some() {
            eprintln!("SKIP: {LEVEL_ENV} is set and would decide the level");
            return;
        }
        assert_eq!(level(false, "warn"), LevelFilter::Warn);
        assert_eq!(level(true, "warn"), LevelFilter::Debug);
        assert_eq!(level(true, "trace"), LevelFilter::Trace);
        assert_eq!(level(false, "off"), LevelFilter::Off);
        assert_eq!(level(false, "nonsense"), LevelFilter::Info);
    }
}
