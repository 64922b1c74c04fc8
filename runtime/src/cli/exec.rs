//! `exec`: a new process in a running container, from `--process FILE` or from the container's
//! own process with the command line's overrides (runc's getProcess).

use std::path::PathBuf;

use clap::Args;
use myrt_runtime::{Container, ExecOpts, Status};
use oci_spec::runtime::{Capability, LinuxCapabilities, Process};

use super::console::Relay;
use super::reaper::Signals;
use super::run::{check_terminal, console_for};
use super::{io_err, pidfile, CliError, Global, Result};

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// path to an AF_UNIX socket which will receive a file descriptor referencing the master end
    /// of the console's pseudoterminal
    #[arg(long = "console-socket", value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// current working directory in the container
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// set environment variables
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// UID (format: <uid>[:<gid>])
    #[arg(short = 'u', long, value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// additional gids
    #[arg(short = 'g', long = "additional-gids", value_name = "GID")]
    pub additional_gids: Vec<i64>,
    /// path to the process.json
    #[arg(short = 'p', long, value_name = "FILE")]
    pub process: Option<PathBuf>,
    /// detach from the container's process
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// specify the file to write the process id to
    #[arg(long = "pid-file", value_name = "PATH")]
    pub pid_file: Option<PathBuf>,
    /// set the asm process label for the process commonly used with selinux
    #[arg(long = "process-label", value_name = "LABEL")]
    pub process_label: Option<String>,
    /// set the apparmor profile for the process
    #[arg(long, value_name = "PROFILE")]
    pub apparmor: Option<String>,
    /// set the no new privileges value for the process
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// add a capability to the bounding set for the process
    #[arg(short = 'c', long = "cap", value_name = "CAP")]
    pub cap: Vec<String>,
    /// pass N additional file descriptors to the process (stdio + N in total)
    #[arg(long = "preserve-fds", value_name = "N", default_value_t = 0)]
    pub preserve_fds: u32,
    /// the container id
    #[arg(value_name = "container-id")]
    pub id: String,
    /// the command and its arguments (not with --process)
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
}

pub fn exec(g: &Global, a: ExecArgs) -> Result<i32> {
    let container = g.factory()?.load(&a.id)?;
    match container.status() {
        Status::Stopped => {
            return Err(CliError::State("cannot exec in a stopped container".into()))
        }
        Status::Paused => return Err(CliError::State("cannot exec in a paused container".into())),
        _ => {}
    }
    if a.process.is_none() && a.command.is_empty() {
        return Err(CliError::Usage("process args cannot be empty".into()));
    }
    let process = build_process(&container, &a)?;
    let terminal = process.terminal().unwrap_or(false);
    check_terminal(a.detach, terminal, a.console_socket.is_some())?;
    let signals = if a.detach {
        None
    } else {
        Some(Signals::take_over()?)
    };
    let (console_socket, relay_socket) =
        console_for(a.console_socket.as_ref(), !a.detach && terminal)?;
    let pid = container.exec(
        &process,
        ExecOpts {
            console_socket,
            preserve_fds: a.preserve_fds,
            ..ExecOpts::default()
        },
    )?;
    let relay = relay_socket.map(Relay::start).transpose()?;
    if let Some(p) = &a.pid_file {
        pidfile::write(p, pid)?;
    }
    let Some(signals) = signals else {
        return Ok(0);
    };
    let status = signals.forward(pid, relay.as_ref())?;
    if let Some(r) = relay {
        r.finish();
    }
    Ok(status)
}

/// The process to start: `--process FILE` as is, or the container's process with the overrides.
fn build_process(container: &Container, a: &ExecArgs) -> Result<Process> {
    if let Some(path) = &a.process {
        let data = std::fs::read(path).map_err(io_err(path))?;
        let p: Process = serde_json::from_slice(&data).map_err(|e| {
            CliError::Usage(format!("{}: invalid OCI process: {e}", path.display()))
        })?;
        validate(&p)?;
        return Ok(p);
    }
    let mut p = container.config().process().clone().ok_or_else(|| {
        CliError::State(format!(
            "container {}: its config.json has no process to start from",
            container.id()
        ))
    })?;
    p.set_args(Some(a.command.clone()));
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some(profile) = &a.apparmor {
        p.set_apparmor_profile(Some(profile.clone()));
    }
    if let Some(label) = &a.process_label {
        p.set_selinux_label(Some(label.clone()));
    }
    if !a.cap.is_empty() {
        add_capabilities(&mut p, &a.cap)?;
    }
    let mut env = p.env().clone().unwrap_or_default();
    env.extend(a.env.iter().cloned());
    p.set_env(Some(dedup_env(env)));
    p.set_terminal(Some(a.tty));
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    let mut user = p.user().clone();
    if let Some(spec) = &a.user {
        let (uid, gid) = parse_user(spec)?;
        user.set_uid(uid);
        if let Some(gid) = gid {
            user.set_gid(gid);
        }
    }
    if !a.additional_gids.is_empty() {
        let mut gids = user.additional_gids().clone().unwrap_or_default();
        for &gid in &a.additional_gids {
            let gid = u32::try_from(gid).map_err(|_| {
                CliError::Usage(format!("additional-gids must be a positive number {gid}"))
            })?;
            gids.push(gid);
        }
        user.set_additional_gids(Some(gids));
    }
    p.set_user(user);
    validate(&p)?;
    Ok(p)
}

/// runc's validateProcessSpec.
fn validate(p: &Process) -> Result<()> {
    if p.cwd().as_os_str().is_empty() {
        return Err(CliError::Usage("Cwd property must not be empty".into()));
    }
    if !p.cwd().is_absolute() {
        return Err(CliError::Usage("Cwd must be an absolute path".into()));
    }
    if p.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(CliError::Usage("args must not be empty".into()));
    }
    Ok(())
}

/// `<uid>[:<gid>]`, numeric, as runc parses `--user`.
fn parse_user(spec: &str) -> Result<(u32, Option<u32>)> {
    let (uid, gid) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let gid = gid
        .map(|g| {
            g.parse::<u32>()
                .map_err(|e| CliError::Usage(format!("parsing {g} as int for gid failed: {e}")))
        })
        .transpose()?;
    let uid = uid
        .parse::<u32>()
        .map_err(|e| CliError::Usage(format!("parsing {uid} as int for uid failed: {e}")))?;
    Ok((uid, gid))
}

/// Later values win, at the position of the first (the process sees each variable once).
fn dedup_env(env: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(env.len());
    for kv in env {
        let key = kv.split('=').next().unwrap_or("");
        match out
            .iter_mut()
            .find(|e| e.split('=').next().unwrap_or("") == key)
        {
            Some(slot) => *slot = kv,
            None => out.push(kv),
        }
    }
    out
}

/// runc 1.1's `--cap`: the capability goes into every set of the process.
fn add_capabilities(p: &mut Process, names: &[String]) -> Result<()> {
    let mut caps = p.capabilities().clone().unwrap_or_else(empty_capabilities);
    for name in names {
        let cap: Capability = serde_json::from_value(serde_json::Value::from(name.as_str()))
            .map_err(|_| CliError::Usage(format!("--cap {name}: unknown capability")))?;
        let add = |set: &Option<oci_spec::runtime::Capabilities>| {
            let mut s = set.clone().unwrap_or_default();
            s.insert(cap);
            Some(s)
        };
        let (b, e, i, pm, am) = (
            add(caps.bounding()),
            add(caps.effective()),
            add(caps.inheritable()),
            add(caps.permitted()),
            add(caps.ambient()),
        );
        caps.set_bounding(b)
            .set_effective(e)
            .set_inheritable(i)
            .set_permitted(pm)
            .set_ambient(am);
    }
    p.set_capabilities(Some(caps));
    Ok(())
}

fn empty_capabilities() -> LinuxCapabilities {
    let none = || Some(Default::default());
    let mut c = LinuxCapabilities::default();
    c.set_bounding(none())
        .set_effective(none())
        .set_inheritable(none())
        .set_permitted(none())
        .set_ambient(none());
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_later_wins() {
        let env = dedup_env(vec!["A=1".into(), "B=2".into(), "A=3".into(), "C".into()]);
        assert_eq!(env, ["A=3", "B=2", "C"]);
    }

    #[test]
    fn users() {
        assert_eq!(parse_user("1000").unwrap(), (1000, None));
        assert_eq!(parse_user("1000:50").unwrap(), (1000, Some(50)));
        assert!(parse_user("root").unwrap_err().to_string().contains("uid"));
        assert!(parse_user("1:x").unwrap_err().to_string().contains("gid"));
    }

    #[test]
    fn cap_goes_into_every_set() {
        let mut p = Process::default();
        p.set_capabilities(None);
        add_capabilities(&mut p, &["CAP_SYS_ADMIN".into()]).unwrap();
        let c = p.capabilities().clone().unwrap();
        for set in [
            c.bounding(),
            c.effective(),
            c.inheritable(),
            c.permitted(),
            c.ambient(),
        ] {
            assert!(set.as_ref().unwrap().contains(&Capability::SysAdmin));
        }
        assert!(add_capabilities(&mut p, &["CAP_NOPE".into()]).is_err());
    }
}
