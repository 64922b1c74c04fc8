//! `checkpoint` and `restore`: runc's commands over CRIU (the global `--criu` names the binary).

use std::path::{Path, PathBuf};

use clap::Args;
use myrt_runtime::{CgroupsMode, CheckpointOpts, RestoreOpts};

use super::reaper::Signals;
use super::{absolute, pidfile, run, CliError, Global, Result};

/// The flags both commands share.
#[derive(Debug, Args)]
pub struct CriuFlags {
    /// path for saving criu image files
    #[arg(long = "image-path", value_name = "DIR")]
    pub image_path: Option<PathBuf>,
    /// path for saving work files and logs
    #[arg(long = "work-path", value_name = "DIR")]
    pub work_path: Option<PathBuf>,
    /// allow open tcp connections
    #[arg(long = "tcp-established")]
    pub tcp_established: bool,
    /// allow external unix sockets
    #[arg(long = "ext-unix-sk")]
    pub ext_unix_sk: bool,
    /// allow shell jobs
    #[arg(long = "shell-job")]
    pub shell_job: bool,
    /// handle file locks, for safety
    #[arg(long = "file-locks")]
    pub file_locks: bool,
    /// cgroups mode: 'soft' (default), 'full', 'strict' or 'ignore'
    #[arg(long = "manage-cgroups-mode", value_name = "MODE")]
    pub manage_cgroups_mode: Option<String>,
    /// create a namespace, but don't restore its properties (only "network")
    #[arg(long = "empty-ns", value_name = "NS")]
    pub empty_ns: Vec<String>,
    /// enable auto deduplication of memory images (not supported)
    #[arg(long = "auto-dedup")]
    pub auto_dedup: bool,
    /// use userfaultfd to lazily restore memory pages (not supported)
    #[arg(long = "lazy-pages")]
    pub lazy_pages: bool,
}

#[derive(Debug, Args)]
pub struct CheckpointArgs {
    #[command(flatten)]
    pub criu: CriuFlags,
    /// path for previous criu image files in pre-dump (not supported: there is no pre-dump)
    #[arg(long = "parent-path", value_name = "DIR")]
    pub parent_path: Option<PathBuf>,
    /// leave the process running after checkpointing
    #[arg(long = "leave-running")]
    pub leave_running: bool,
    /// ADDRESS:PORT of the page server (not supported)
    #[arg(long = "page-server", value_name = "ADDRESS:PORT")]
    pub page_server: Option<String>,
    /// dump container's memory information only, leave the container running after this
    /// (not supported: needs CRIU's soft-dirty memory tracking)
    #[arg(long = "pre-dump")]
    pub pre_dump: bool,
    /// criu writes \0 to this FD once lazy-pages is ready (not supported)
    #[arg(long = "status-fd", value_name = "FD")]
    pub status_fd: Option<i32>,
    /// the container id
    #[arg(value_name = "container-id")]
    pub id: String,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub criu: CriuFlags,
    /// path to an AF_UNIX socket which will receive a file descriptor referencing the master end
    /// of the console's pseudoterminal
    #[arg(long = "console-socket", value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// path to the root of the bundle directory
    #[arg(short = 'b', long, value_name = "DIR", default_value = ".")]
    pub bundle: PathBuf,
    /// detach from the container's process
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// specify the file to write the process id to
    #[arg(long = "pid-file", value_name = "PATH")]
    pub pid_file: Option<PathBuf>,
    /// disable the use of the subreaper used to reap reparented processes
    #[arg(long = "no-subreaper")]
    pub no_subreaper: bool,
    /// do not use pivot root to jail process inside rootfs
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// label to restore the process with (no LSM on this build: refused when set)
    #[arg(long = "lsm-profile", value_name = "LABEL")]
    pub lsm_profile: Option<String>,
    /// label to restore mounts with (no LSM on this build: refused when set)
    #[arg(long = "lsm-mount-context", value_name = "CONTEXT")]
    pub lsm_mount_context: Option<String>,
    /// the container id
    #[arg(value_name = "container-id")]
    pub id: String,
}

fn unsupported(flag: &str, why: &str) -> CliError {
    CliError::Usage(format!("{flag} is not supported by myrt: {why}"))
}

impl CriuFlags {
    fn check(&self) -> Result<()> {
        if self.lazy_pages {
            return Err(unsupported(
                "--lazy-pages",
                "restore memory in full instead (drop the flag)",
            ));
        }
        if self.auto_dedup {
            return Err(unsupported("--auto-dedup", "drop the flag"));
        }
        Ok(())
    }

    fn mode(&self) -> Result<Option<CgroupsMode>> {
        self.manage_cgroups_mode
            .as_deref()
            .map(CgroupsMode::parse)
            .transpose()
            .map_err(CliError::Usage)
    }

    /// runc: --empty-ns takes namespace names; only the network one can be left empty.
    fn empty_ns(&self) -> Result<u32> {
        let mut bits = 0;
        for ns in &self.empty_ns {
            match ns.as_str() {
                "network" => bits |= libc::CLONE_NEWNET as u32,
                other => {
                    return Err(CliError::Usage(format!(
                        "--empty-ns {other:?}: only \"network\" can be left empty"
                    )))
                }
            }
        }
        Ok(bits)
    }

    /// runc's default: ./checkpoint.
    fn image_path(&self) -> Result<PathBuf> {
        absolute(
            self.image_path
                .as_deref()
                .unwrap_or_else(|| Path::new("checkpoint")),
        )
    }

    fn work_path(&self) -> Result<Option<PathBuf>> {
        self.work_path.as_deref().map(absolute).transpose()
    }
}

pub fn checkpoint(g: &Global, a: CheckpointArgs) -> Result<i32> {
    a.criu.check()?;
    if a.pre_dump {
        return Err(unsupported(
            "--pre-dump",
            "CRIU's pre-dump needs soft-dirty memory tracking; dump in one step",
        ));
    }
    if a.parent_path.is_some() {
        return Err(unsupported(
            "--parent-path",
            "it names a pre-dump, and pre-dumps are not supported; dump in one step",
        ));
    }
    if a.page_server.is_some() {
        return Err(unsupported("--page-server", "write the images locally"));
    }
    if a.status_fd.is_some() {
        return Err(unsupported("--status-fd", "it only serves --lazy-pages"));
    }
    let opts = CheckpointOpts {
        criu: Some(g.criu.clone()),
        image_path: a.criu.image_path()?,
        work_path: a.criu.work_path()?,
        leave_running: a.leave_running,
        tcp_established: a.criu.tcp_established,
        ext_unix_sk: a.criu.ext_unix_sk,
        shell_job: a.criu.shell_job,
        file_locks: a.criu.file_locks,
        cgroups_mode: a.criu.mode()?,
        empty_ns: a.criu.empty_ns()?,
    };
    let factory = g.factory()?;
    let mut container = factory.load(&a.id)?;
    container.checkpoint(&opts)?;
    if !a.leave_running {
        // runc destroys a container whose tree CRIU killed after the dump.
        container.destroy(true)?;
    }
    Ok(0)
}

pub fn restore(g: &Global, a: RestoreArgs) -> Result<i32> {
    a.criu.check()?;
    if a.lsm_profile.is_some() || a.lsm_mount_context.is_some() {
        return Err(unsupported(
            "--lsm-profile/--lsm-mount-context",
            "this host has no AppArmor or SELinux",
        ));
    }
    myrt_runtime::factory::validate_id(&a.id)?;
    let factory = g.factory()?;
    let spec = myrt_runtime::spec::load(&a.bundle)?;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    run::check_terminal(a.detach, terminal, a.console_socket.is_some())?;
    let signals = if a.detach {
        None
    } else {
        Some(Signals::take_over()?)
    };
    let (console_socket, _relay) = run::console_for(a.console_socket.as_ref(), false)?;
    let opts = RestoreOpts {
        criu: Some(g.criu.clone()),
        image_path: a.criu.image_path()?,
        work_path: a.criu.work_path()?,
        console_socket,
        tcp_established: a.criu.tcp_established,
        ext_unix_sk: a.criu.ext_unix_sk,
        shell_job: a.criu.shell_job,
        file_locks: a.criu.file_locks,
        cgroups_mode: a.criu.mode()?,
        no_pivot: a.no_pivot,
        ..RestoreOpts::default()
    };
    if a.criu.empty_ns()? != 0 {
        log::debug!("restore: --empty-ns is a dump option; ignored as runc does");
    }
    let mut container = factory.restore(&a.id, &a.bundle, opts)?;
    let pid = container
        .init_pid()
        .ok_or_else(|| CliError::State(format!("container {}: restored init is gone", a.id)))?;
    if let Some(p) = &a.pid_file {
        pidfile::write(p, pid)?;
    }
    let Some(signals) = signals else {
        return Ok(0);
    };
    let status = signals.forward(pid, None)?;
    if let Err(e) = container.destroy(true) {
        log::warn!("delete container {}: {e}", a.id);
    }
    Ok(status)
}
