//! `state` (runc's state JSON of one container) and `list` (all containers under the root).

use std::os::unix::fs::MetadataExt;

use clap::Args;
use myrt_runtime::Container;

use super::{Global, OutputFormat, Result};

#[derive(Debug, Args)]
pub struct ListArgs {
    /// select one of: table or json
    #[arg(short = 'f', long, value_enum, default_value = "table")]
    pub format: OutputFormat,
    /// display only container IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

pub fn state(g: &Global, id: &str) -> Result<i32> {
    let container = g.factory()?.load(id)?;
    let json = serde_json::to_string_pretty(&container.state_json())
        .unwrap_or_else(|e| format!("{{\"error\": {:?}}}", e.to_string()));
    println!("{json}");
    Ok(0)
}

pub fn list(g: &Global, a: ListArgs) -> Result<i32> {
    let factory = g.factory()?;
    let mut states = Vec::new();
    for id in factory.list()? {
        // A container being deleted right now, or a broken one, must not fail the whole list.
        match factory.load(&id) {
            Ok(c) => states.push(list_state(&c)),
            Err(e) => log::warn!("list: skip {id}: {e}"),
        }
    }
    if a.quiet {
        for s in &states {
            println!("{}", s["id"].as_str().unwrap_or(""));
        }
        return Ok(0);
    }
    match a.format {
        // runc prints Go's encoding of a nil slice when there is nothing: `null`.
        OutputFormat::Json if states.is_empty() => println!("null"),
        OutputFormat::Json => println!("{}", serde_json::Value::from(states)),
        OutputFormat::Table => print!("{}", table(&states)),
    }
    Ok(0)
}

/// The state JSON with the owner filled in (the user owning the state directory).
fn list_state(c: &Container) -> serde_json::Value {
    let mut s = c.state_json();
    let owner = std::fs::metadata(c.state_dir())
        .map(|m| m.uid())
        .map(|uid| {
            nix::unistd::User::from_uid(uid.into())
                .ok()
                .flatten()
                .map(|u| u.name)
                .unwrap_or_else(|| format!("#{uid}"))
        })
        .unwrap_or_default();
    s["owner"] = owner.into();
    s
}

/// runc's tabwriter layout: columns padded to max(12, widest + 3); the last one is not padded.
fn table(states: &[serde_json::Value]) -> String {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut rows = vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from)];
    for s in states {
        rows.push(["id", "pid", "status", "bundle", "created", "owner"].map(|k| text(&s[k])));
    }
    let widths: Vec<usize> = (0..5)
        .map(|col| {
            let widest = rows.iter().map(|r| r[col].len()).max().unwrap_or(0);
            (widest + 3).max(12)
        })
        .collect();
    let mut out = String::new();
    for row in &rows {
        for (col, width) in widths.iter().enumerate() {
            out.push_str(&format!("{:<width$}", row[col], width = width));
        }
        out.push_str(&row[5]);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_like_runc() {
        assert_eq!(
            table(&[]),
            "ID          PID         STATUS      BUNDLE      CREATED     OWNER\n"
        );
        let s = serde_json::json!({"id": "c1", "pid": 42, "status": "running",
            "bundle": "/some/long/bundle/path", "created": "2024-01-01T00:00:00Z", "owner": "root"});
        let t = table(&[s]);
        let line = t.lines().nth(1).unwrap();
        assert!(
            line.starts_with("c1          42          running     /some/long/bundle/path   2024")
        );
        assert!(line.ends_with("root"));
    }
}
