//! Go-style single-dash long flags (`-root /x`, `-bundle=.`), which runc's urfave/cli accepts,
//! rewritten to clap's `--root`. Only flags before the container id are touched, so a command
//! given to `exec` (`exec c1 ls -all`) keeps its own arguments.

use std::ffi::OsString;

/// Long flags without a value; with [`VALUE_FLAGS`] these are every long flag myrt knows (all
/// commands), whose single-dash spelling is rewritten.
const SWITCH_FLAGS: &[&str] = &[
    "all",
    "debug",
    "detach",
    "force",
    "help",
    "keep",
    "no-new-keyring",
    "no-new-privs",
    "no-pivot",
    "quiet",
    "rootless",
    "stats",
    "systemd-cgroup",
    "tty",
    "version",
];

/// Long flags that take a value in the next argument (when not written `--flag=value`).
const VALUE_FLAGS: &[&str] = &[
    "additional-gids",
    "apparmor",
    "blkio-weight",
    "bundle",
    "cap",
    "console-socket",
    "cpu-burst",
    "cpu-idle",
    "cpu-period",
    "cpu-quota",
    "cpu-rt-period",
    "cpu-rt-runtime",
    "cpu-share",
    "cpuset-cpus",
    "cpuset-mems",
    "cwd",
    "env",
    "format",
    "interval",
    "kernel-memory",
    "kernel-memory-tcp",
    "l3-cache-schema",
    "log",
    "log-format",
    "mem-bw-schema",
    "memory",
    "memory-reservation",
    "memory-swap",
    "pid-file",
    "pids-limit",
    "preserve-fds",
    "process",
    "process-label",
    "resources",
    "root",
    "user",
];

/// Short flags that take a value; `-f` does only for `ps` and `list` (it is `--force` for delete).
fn short_takes_value(flag: char, command: Option<&str>) -> bool {
    match flag {
        'b' | 'e' | 'u' | 'g' | 'p' | 'c' => true,
        'f' => matches!(command, Some("ps" | "list")),
        'r' => matches!(command, Some("update")),
        _ => false,
    }
}

/// Rewrites single-dash long flags up to the first positional argument of the subcommand.
pub fn normalize(args: Vec<OsString>) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len());
    let mut iter = args.into_iter();
    if let Some(arg0) = iter.next() {
        out.push(arg0);
    }
    let mut command: Option<String> = None;
    let mut value_next = false;
    let mut rest_verbatim = false;
    for arg in iter {
        if rest_verbatim {
            out.push(arg);
            continue;
        }
        if value_next {
            value_next = false;
            out.push(arg);
            continue;
        }
        let Some(s) = arg.to_str().map(str::to_owned) else {
            out.push(arg);
            continue;
        };
        if s == "--" {
            rest_verbatim = true;
            out.push(arg);
            continue;
        }
        if let Some(long) = s.strip_prefix("--") {
            value_next = !long.contains('=') && VALUE_FLAGS.contains(&long);
            out.push(arg);
            continue;
        }
        if let Some(flag) = s.strip_prefix('-').filter(|f| !f.is_empty()) {
            let name = flag.split('=').next().unwrap_or(flag);
            if name.len() > 1 && (SWITCH_FLAGS.contains(&name) || VALUE_FLAGS.contains(&name)) {
                value_next = !flag.contains('=') && VALUE_FLAGS.contains(&name);
                out.push(OsString::from(format!("-{s}")));
            } else {
                let mut chars = flag.chars();
                value_next = match (chars.next(), chars.next()) {
                    (Some(c), None) => short_takes_value(c, command.as_deref()),
                    _ => false,
                };
                out.push(arg);
            }
            continue;
        }
        // A positional: the subcommand first, then the container id, after which nothing is
        // rewritten any more.
        if command.is_none() {
            command = Some(s);
        } else {
            rest_verbatim = true;
        }
        out.push(arg);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(args: &[&str]) -> Vec<String> {
        normalize(args.iter().map(OsString::from).collect())
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn rewrites_go_style_flags() {
        assert_eq!(
            norm(&[
                "myrt",
                "-root",
                "/r",
                "-log-format=json",
                "run",
                "-bundle",
                "/b",
                "-d",
                "c1"
            ]),
            [
                "myrt",
                "--root",
                "/r",
                "--log-format=json",
                "run",
                "--bundle",
                "/b",
                "-d",
                "c1"
            ]
        );
    }

    #[test]
    fn leaves_exec_command_alone() {
        assert_eq!(
            norm(&["myrt", "exec", "-tty", "c1", "ls", "-all", "-root"]),
            ["myrt", "exec", "--tty", "c1", "ls", "-all", "-root"]
        );
        assert_eq!(
            norm(&["myrt", "exec", "-e", "A=1", "c1", "env", "-debug"]),
            ["myrt", "exec", "-e", "A=1", "c1", "env", "-debug"]
        );
    }

    #[test]
    fn value_of_a_flag_is_not_the_subcommand() {
        assert_eq!(
            norm(&["myrt", "--root", "list", "list", "-quiet"]),
            ["myrt", "--root", "list", "list", "--quiet"]
        );
        assert_eq!(
            norm(&["myrt", "ps", "-f", "json", "c1", "-ef"]),
            ["myrt", "ps", "-f", "json", "c1", "-ef"]
        );
    }
}
