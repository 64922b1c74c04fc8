//! The `myrt` command line: runc 1.1's commands, flags, output formats and exit codes over the
//! engine library. One file per command group; errors are one line on stderr (and a logrus-style
//! record in `--log`), exit code 1.

mod argv;
mod checkpoint;
mod console;
mod delete;
mod events;
mod exec;
mod features;
mod kill;
mod logger;
mod pidfile;
mod ps;
mod reaper;
mod run;
mod spec;
mod state;
mod update;

use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use myrt_runtime::{ContainerError, Factory};

/// What `--version` prints after the program name (runc prints the same two lines first), and
/// the newest OCI runtime spec version this build understands: the library's.
pub use myrt_runtime::{SPEC_VERSION, VERSION};

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Container(#[from] ContainerError),
    /// Bad flags or arguments, with runc's wording where runc has one.
    #[error("{0}")]
    Usage(String),
    /// The container or process is not in a state that allows the command.
    #[error("{0}")]
    State(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("console: {0}")]
    Console(String),
    #[error("signal handling: {0}")]
    Signals(nix::Error),
    #[error("ps: {0}")]
    Ps(String),
}

pub type Result<T> = std::result::Result<T, CliError>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> CliError {
    let path = path.into();
    move |source| CliError::Io { path, source }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

const ABOUT: &str = "Open Container Initiative runtime

myrt is a command line client for running applications packaged according to the Open \
Container Initiative (OCI) format; it accepts runc's commands and flags.

To start a new instance of a container:

    # myrt run [ -b bundle ] <container-id>";

#[derive(Debug, Parser)]
#[command(
    name = "myrt",
    about = ABOUT,
    disable_version_flag = true,
    arg_required_else_help = true,
    subcommand_required = false
)]
pub struct Cli {
    /// enable debug logging
    #[arg(long, global = true)]
    debug: bool,
    /// set the log file to write myrt logs to (default is '/dev/stderr')
    #[arg(long, value_name = "PATH", global = true)]
    log: Option<PathBuf>,
    /// set the log format ('text' (default), or 'json')
    #[arg(long = "log-format", value_enum, default_value = "text", global = true)]
    log_format: LogFormat,
    /// root directory for storage of container state (this should be located in tmpfs)
    #[arg(long, value_name = "DIR", default_value = myrt_runtime::factory::DEFAULT_ROOT, global = true)]
    root: PathBuf,
    /// path to the criu binary used for checkpoint and restore
    #[arg(long, value_name = "PATH", default_value = "criu", global = true)]
    criu: PathBuf,
    /// enable systemd cgroup support (not supported yet)
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    /// print the version
    #[arg(short = 'v', long = "version")]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// create a container
    Create(run::CreateArgs),
    /// executes the user defined process in a created container
    Start(IdArg),
    /// create and run a container
    Run(run::RunArgs),
    /// output the state of a container
    State(IdArg),
    /// kill sends the specified signal (default: SIGTERM) to the container's init process
    Kill(kill::KillArgs),
    /// delete any resources held by the container often used with detached container
    Delete(delete::DeleteArgs),
    /// execute new process inside the container
    Exec(Box<exec::ExecArgs>),
    /// ps displays the processes running inside a container
    Ps(ps::PsArgs),
    /// pause suspends all processes inside the container
    Pause(IdArg),
    /// resumes all processes that have been previously paused
    Resume(IdArg),
    /// lists containers started by myrt with the given root
    List(state::ListArgs),
    /// create a new specification file
    Spec(spec::SpecArgs),
    /// show the enabled features
    Features,
    /// display container events such as OOM notifications, cpu, memory, and IO usage statistics
    Events(events::EventsArgs),
    /// update container resource constraints
    Update(Box<update::UpdateArgs>),
    /// checkpoint a running container (with CRIU)
    Checkpoint(Box<checkpoint::CheckpointArgs>),
    /// restore a container from a previous checkpoint (with CRIU)
    Restore(Box<checkpoint::RestoreArgs>),
}

#[derive(Debug, Args)]
struct IdArg {
    /// the container id
    #[arg(value_name = "container-id")]
    id: String,
}

/// The global flags every command needs.
#[derive(Debug)]
pub struct Global {
    root: PathBuf,
    systemd_cgroup: bool,
    criu: PathBuf,
}

impl Global {
    /// The factory over `--root` (made absolute, as runc does).
    pub fn factory(&self) -> Result<Factory> {
        if self.systemd_cgroup {
            return Err(CliError::Usage(
                "systemd cgroup driver not supported yet (drop --systemd-cgroup)".into(),
            ));
        }
        Ok(Factory::new(&self.root)?)
    }
}

fn absolute(path: &Path) -> Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    let cwd = std::env::current_dir().map_err(io_err("."))?;
    Ok(cwd.join(path))
}

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
    let args = argv::normalize(std::env::args_os().collect());
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // runc exits 1 on usage errors; help output (also for no arguments) is not an error.
            let help = e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand;
            return if e.use_stderr() && !help { 1 } else { 0 };
        }
    };
    if cli.version {
        println!("myrt version {VERSION}\nspec: {SPEC_VERSION}");
        return 0;
    }
    if let Err(e) = logger::init(cli.log.as_deref(), cli.log_format, cli.debug) {
        eprintln!("{e}");
        return 1;
    }
    let Some(command) = cli.command else {
        let _ = Cli::command().print_help();
        return 0;
    };
    let result = absolute(&cli.root).and_then(|root| {
        let global = Global {
            root,
            systemd_cgroup: cli.systemd_cgroup,
            criu: cli.criu,
        };
        dispatch(&global, command)
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            logger::report_error(&e);
            1
        }
    }
}

fn dispatch(g: &Global, command: Command) -> Result<i32> {
    match command {
        Command::Create(a) => run::create(g, a),
        Command::Run(a) => run::run(g, a),
        Command::Start(a) => {
            g.factory()?.load(&a.id)?.start()?;
            Ok(0)
        }
        Command::State(a) => state::state(g, &a.id),
        Command::Kill(a) => kill::kill(g, a),
        Command::Delete(a) => delete::delete(g, a),
        Command::Exec(a) => exec::exec(g, *a),
        Command::Ps(a) => ps::ps(g, a),
        Command::Pause(a) => {
            g.factory()?.load(&a.id)?.pause()?;
            Ok(0)
        }
        Command::Resume(a) => {
            g.factory()?.load(&a.id)?.resume()?;
            Ok(0)
        }
        Command::List(a) => state::list(g, a),
        Command::Spec(a) => spec::spec(a),
        Command::Features => features::features(&g.criu),
        Command::Events(a) => events::events(g, a),
        Command::Update(a) => update::update(g, *a),
        Command::Checkpoint(a) => checkpoint::checkpoint(g, *a),
        Command::Restore(a) => checkpoint::restore(g, *a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn exec_takes_the_command_with_its_flags() {
        let cli = Cli::try_parse_from(["myrt", "exec", "-t", "c1", "sh", "-c", "exit 3"]).unwrap();
        let Some(Command::Exec(a)) = cli.command else {
            panic!("not exec")
        };
        assert!(a.tty);
        assert_eq!(a.id, "c1");
        assert_eq!(a.command, ["sh", "-c", "exit 3"]);
    }

    #[test]
    fn global_flags_parse() {
        let cli = Cli::try_parse_from([
            "myrt",
            "--root",
            "/tmp/r",
            "--log",
            "/tmp/l",
            "--log-format",
            "json",
            "state",
            "x",
        ])
        .unwrap();
        assert_eq!(cli.root, Path::new("/tmp/r"));
        assert_eq!(cli.log_format, LogFormat::Json);
        let cli = Cli::try_parse_from(["myrt", "list"]).unwrap();
        assert_eq!(cli.root, Path::new("/run/myrt"));
    }
}
