//! `create` and `run`: runc's runner — create the container, hand over the console, write the
//! pid file, start it, and for a foreground `run` forward signals, wait, delete it and exit with
//! the container's status.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use clap::Args;
use myrt_runtime::{Container, CreateOpts, Pid};

use super::console::{self, Relay};
use super::reaper::Signals;
use super::{pidfile, CliError, Global, Result};

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// path to the root of the bundle directory, defaults to the current directory
    #[arg(short = 'b', long, value_name = "DIR", default_value = ".")]
    pub bundle: PathBuf,
    /// path to an AF_UNIX socket which will receive a file descriptor referencing the master end
    /// of the console's pseudoterminal
    #[arg(long = "console-socket", value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// specify the file to write the process id to
    #[arg(long = "pid-file", value_name = "PATH")]
    pub pid_file: Option<PathBuf>,
    /// do not use pivot root to jail process inside rootfs; use it when the rootfs is on a ramdisk
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// do not create a new session keyring for the container (myrt never creates one)
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// pass N additional file descriptors to the container (stdio + N in total)
    #[arg(long = "preserve-fds", value_name = "N", default_value_t = 0)]
    pub preserve_fds: u32,
    /// the container id
    #[arg(value_name = "container-id")]
    pub id: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// detach from the container's process
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// do not delete the container after it exits
    #[arg(long)]
    pub keep: bool,
}

pub fn create(g: &Global, a: CreateArgs) -> Result<i32> {
    launch(g, &a, Launch::Create)
}

pub fn run(g: &Global, a: RunArgs) -> Result<i32> {
    let how = if a.detach {
        Launch::Detached
    } else {
        Launch::Foreground { keep: a.keep }
    };
    launch(g, &a.create, how)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Launch {
    Create,
    Detached,
    Foreground { keep: bool },
}

/// runc's checkTerminal: a detached terminal needs a console socket, and a console socket is only
/// for a detached terminal.
pub fn check_terminal(detach: bool, terminal: bool, console_socket: bool) -> Result<()> {
    if detach && terminal && !console_socket {
        return Err(CliError::Usage(
            "cannot allocate tty if myrt will detach without setting console socket".into(),
        ));
    }
    if (!detach || !terminal) && console_socket {
        return Err(CliError::Usage(
            "cannot use console socket if myrt will not detach or allocate tty".into(),
        ));
    }
    Ok(())
}

/// The console socket for the engine, and our end of it when we relay the terminal ourselves.
pub fn console_for(
    path: Option<&PathBuf>,
    foreground_terminal: bool,
) -> Result<(Option<OwnedFd>, Option<OwnedFd>)> {
    match path {
        Some(p) => Ok((Some(console::connect(p)?), None)),
        None if foreground_terminal => {
            let (ours, theirs) = console::pair()?;
            Ok((Some(theirs), Some(ours)))
        }
        None => Ok((None, None)),
    }
}

fn launch(g: &Global, a: &CreateArgs, how: Launch) -> Result<i32> {
    myrt_runtime::factory::validate_id(&a.id)?;
    let factory = g.factory()?;
    // The terminal setting decides how stdio is set up before anything is created.
    let spec = myrt_runtime::spec::load(&a.bundle)?;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let foreground = matches!(how, Launch::Foreground { .. });
    check_terminal(!foreground, terminal, a.console_socket.is_some())?;
    let signals = if foreground {
        Some(Signals::take_over()?)
    } else {
        None
    };
    let (console_socket, relay_socket) =
        console_for(a.console_socket.as_ref(), foreground && terminal)?;
    let opts = CreateOpts {
        console_socket,
        preserve_fds: a.preserve_fds,
        no_pivot: a.no_pivot,
        ..CreateOpts::default()
    };
    let mut container = factory.create(&a.id, &a.bundle, opts)?;
    match finish_launch(&mut container, a, how, signals.as_ref(), relay_socket) {
        Ok(code) => Ok(code),
        Err(e) => {
            // runc's r.destroy(): a container that failed after create is not left behind.
            if let Err(d) = container.destroy(true) {
                log::warn!("delete container {} after error: {d}", a.id);
            }
            Err(e)
        }
    }
}

fn finish_launch(
    container: &mut Container,
    a: &CreateArgs,
    how: Launch,
    signals: Option<&Signals>,
    relay_socket: Option<OwnedFd>,
) -> Result<i32> {
    let relay = relay_socket.map(Relay::start).transpose()?;
    let pid = init_pid(container)?;
    if how == Launch::Create {
        if let Some(p) = &a.pid_file {
            pidfile::write(p, pid)?;
        }
        return Ok(0);
    }
    container.start()?;
    if let Some(p) = &a.pid_file {
        pidfile::write(p, pid)?;
    }
    let (Launch::Foreground { keep }, Some(signals)) = (how, signals) else {
        return Ok(0);
    };
    let status = signals.forward(pid, relay.as_ref())?;
    if !keep {
        if let Err(e) = container.destroy(true) {
            log::warn!("delete container {}: {e}", a.id);
        }
    }
    if let Some(r) = relay {
        r.finish();
    }
    Ok(status)
}

/// The init's pid as recorded at create (it may already have exited, as a zombie of ours).
fn init_pid(container: &Container) -> Result<Pid> {
    container
        .init_pid()
        .or(container.persisted().init_pid)
        .ok_or_else(|| {
            CliError::State(format!(
                "container {}: created without an init pid",
                container.id()
            ))
        })
}
