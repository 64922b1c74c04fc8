//! `kill`: a signal (name with or without SIG, or number; SIGTERM by default) to the init, or
//! with `--all` to every process of the container.

use std::str::FromStr;

use clap::Args;
use nix::sys::signal::Signal;

use super::{CliError, Global, Result};

#[derive(Debug, Args)]
pub struct KillArgs {
    /// send the specified signal to all processes inside the container
    #[arg(short = 'a', long)]
    pub all: bool,
    /// the container id
    #[arg(value_name = "container-id")]
    pub id: String,
    /// the signal, e.g. KILL, SIGKILL or 9
    #[arg(value_name = "signal", default_value = "SIGTERM")]
    pub signal: String,
}

pub fn kill(g: &Global, a: KillArgs) -> Result<i32> {
    let signal = parse_signal(&a.signal)?;
    let container = g.factory()?.load(&a.id)?;
    container.signal(signal, a.all)?;
    Ok(0)
}

/// runc's parseSignal: a number, or a name in any case with or without the SIG prefix.
pub fn parse_signal(raw: &str) -> Result<Signal> {
    let unknown = || CliError::Usage(format!("unknown signal {raw:?}"));
    if let Ok(n) = raw.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| unknown());
    }
    let upper = raw.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| unknown())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("KILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("sigterm").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("SIGUSR1").unwrap(), Signal::SIGUSR1);
        assert_eq!(parse_signal("hup").unwrap(), Signal::SIGHUP);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("-1").is_err());
    }
}
