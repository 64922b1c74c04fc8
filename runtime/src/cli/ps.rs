//! `ps`: the container's pids as JSON, or the host's `ps` output (`-ef` unless other ps options
//! follow the id) filtered to the container's processes, as runc prints it.

use std::process::Command;

use clap::Args;

use super::{CliError, Global, OutputFormat, Result};

#[derive(Debug, Args)]
pub struct PsArgs {
    /// select one of: table or json
    #[arg(short = 'f', long, value_enum, default_value = "table")]
    pub format: OutputFormat,
    /// the container id
    #[arg(value_name = "container-id")]
    pub id: String,
    /// options for ps(1)
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ps options"
    )]
    pub ps_args: Vec<String>,
}

pub fn ps(g: &Global, a: PsArgs) -> Result<i32> {
    let container = g.factory()?.load(&a.id)?;
    let pids: Vec<i32> = container.processes()?.iter().map(|p| p.as_raw()).collect();
    if a.format == OutputFormat::Json {
        println!("{}", serde_json::Value::from(pids));
        return Ok(0);
    }
    let args = if a.ps_args.is_empty() {
        vec!["-ef".to_string()]
    } else {
        a.ps_args
    };
    let out = Command::new("ps")
        .args(&args)
        .output()
        .map_err(|e| CliError::Ps(format!("run ps: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(CliError::Ps(format!(
            "{}: {}{}",
            out.status,
            text,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    print!("{}", filter(&text, &pids)?);
    Ok(0)
}

/// The header and the lines whose PID column is one of `pids`.
fn filter(text: &str, pids: &[i32]) -> Result<String> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let index = header
        .split_whitespace()
        .position(|f| f == "PID")
        .ok_or_else(|| CliError::Ps("couldn't find PID field in ps output".into()))?;
    let mut out = format!("{header}\n");
    for line in lines.filter(|l| !l.is_empty()) {
        let pid = line
            .split_whitespace()
            .nth(index)
            .and_then(|f| f.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_header_and_container_lines() {
        let text = "UID          PID    PPID  C STIME TTY          TIME CMD\n\
                    root           1       0  0 10:00 ?        00:00:01 /sbin/init\n\
                    root         120       1  0 10:01 ?        00:00:00 sleep 100\n";
        let out = filter(text, &[120]).unwrap();
        assert_eq!(out.lines().count(), 2);
        assert!(out.contains("sleep 100") && !out.contains("init"));
        assert!(filter("USER CMD\n", &[1]).is_err());
    }
}
