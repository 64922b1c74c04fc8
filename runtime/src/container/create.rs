//! `create`: the container's directory, cgroup and init, up to the point where the init waits
//! on the exec fifo for `start` (libcontainer's initProcess.start).

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::{LinuxIdMapping, Spec};

use super::host_mounts::RuntimeNsMounts;
use super::{io_err, Container, ContainerError, PersistedState, Result, Status};
use super::{CONFIG_FILE, EXEC_FIFO};
use crate::cgroups;
use crate::hooks::HookKind;
use crate::namespaces::{Kind, Namespaces};
use crate::process::channel::{ToChild, ToParent};
use crate::process::{ChildConfig, Mode, ParentProcess, ProcessError, Stdio};
use crate::utils::pid::stat_of;
use crate::utils::{Pid, PidFd};

/// How long `create` waits for the init between two messages; hooks have their own timeouts.
const SETUP_TIMEOUT: Duration = Duration::from_secs(120);

/// How the caller wants the container's init started.
#[derive(Debug, Default)]
pub struct CreateOpts {
    /// The init's stdio; `None` entries inherit the caller's.
    pub stdio: Stdio,
    /// A connected unix socket to send the pty master over, when process.terminal is true.
    pub console_socket: Option<OwnedFd>,
    /// Keep the caller's fds 3..3+N open in the container.
    pub preserve_fds: u32,
    /// Move the root instead of pivot_root (for ramdisk roots).
    pub no_pivot: bool,
    /// Use systemd's cgroup path syntax (not supported yet: refused by the cgroup manager).
    pub systemd_cgroup: bool,
}

impl Container {
    /// Creates the container `id` from the bundle at `bundle` in the state directory `dir`
    /// (which must not exist). On any failure nothing is left behind: no process, cgroup or
    /// directory.
    pub(crate) fn create(
        dir: &Path,
        id: &str,
        bundle: &Path,
        opts: CreateOpts,
    ) -> Result<Container> {
        let console = opts.console_socket.is_some();
        let (mut c, namespaces) =
            Container::new_in(dir, id, bundle, console, opts.no_pivot, opts.systemd_cgroup)?;
        match c.create_inner(namespaces, opts) {
            Ok(()) => Ok(c),
            Err(e) => {
                c.cleanup_failed_create();
                Err(e)
            }
        }
    }

    /// What `create` and `restore` share before any process: the bundle's spec checked, the
    /// state directory made (it must not exist), the cgroup manager (refused when the cgroup is
    /// in use) and the Intel RDT plan. On error nothing is left.
    pub(super) fn new_in(
        dir: &Path,
        id: &str,
        bundle: &Path,
        console: bool,
        no_pivot: bool,
        systemd_cgroup: bool,
    ) -> Result<(Container, Namespaces)> {
        let bundle = fs::canonicalize(bundle).map_err(io_err(bundle))?;
        let spec = crate::spec::load(&bundle)?;
        let rootfs = crate::spec::rootfs_path(&spec, &bundle)?;
        let namespaces = Namespaces::from_spec(&spec)?;
        crate::spec::validate(&spec, &namespaces, console)?;
        namespaces.validate_paths()?;
        // Intel RDT: find resctrl and check what linux.intelRdt needs before anything exists.
        let intel_rdt = crate::intelrdt::RdtGroup::plan(&spec, id)?;

        fs::create_dir(dir).map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => {
                ContainerError::Spec(format!("container with id {id:?} already exists"))
            }
            _ => ContainerError::Io {
                path: dir.to_path_buf(),
                source,
            },
        })?;
        let linux = spec.linux().as_ref();
        let cgroups_path = linux.and_then(|l| l.cgroups_path().as_ref());
        let cgroup = match cgroups::new_manager(
            cgroups_path.map(|p| p.to_string_lossy()).as_deref(),
            id,
            systemd_cgroup,
        )
        .map_err(ContainerError::from)
        .and_then(|m| check_cgroup_unused(m.as_ref()).map(|()| m))
        {
            Ok(m) => m,
            Err(e) => {
                let _ = fs::remove_dir_all(dir);
                return Err(e);
            }
        };
        let c = Container {
            dir: dir.to_path_buf(),
            state: PersistedState {
                id: id.to_string(),
                bundle,
                rootfs,
                status: Status::Creating,
                init_pid: None,
                init_start_time: None,
                created: crate::utils::time::now_rfc3339(true),
                cgroup: cgroup.config(),
                annotations: spec.annotations().clone().unwrap_or_default(),
                no_pivot,
                intel_rdt,
                runtime_ns_mounts: None,
            },
            spec,
            cgroup,
        };
        Ok((c, namespaces))
    }

    /// config.json and state.json written, the cgroup made with its limits, the Intel RDT
    /// group set up: all before any task is in them.
    pub(super) fn set_up_cgroups(&mut self) -> Result<()> {
        let spec_json =
            serde_json::to_vec_pretty(&self.spec).map_err(|source| ContainerError::Json {
                path: self.dir.join(CONFIG_FILE),
                source,
            })?;
        super::write_atomic(&self.dir.join(CONFIG_FILE), &spec_json)?;
        self.save()?;

        self.cgroup.create()?;
        self.cgroup.apply(&self.resources_with_default_devices())?;
        // Intel RDT: create or join the resctrl group and write its schemata before any task
        // is in it; saved so that a later delete removes what was created.
        if let Some(rdt) = self.state.intel_rdt.as_mut() {
            rdt.setup(&self.spec)?;
            self.save()?;
        }
        Ok(())
    }

    fn create_inner(&mut self, namespaces: Namespaces, opts: CreateOpts) -> Result<()> {
        if namespaces.get(Kind::Mount).is_none() {
            // Noted (and saved below) before the init mounts anything, so that a delete, or
            // the cleanup of this create if it fails, can take the mounts away again.
            log::warn!(
                "container {}: no mount namespace in linux.namespaces: its mounts are made in \
                 the runtime's mount namespace under {}",
                self.state.id,
                self.state.rootfs.display()
            );
            self.state.runtime_ns_mounts = Some(RuntimeNsMounts::note(&self.state.rootfs)?);
        }
        self.set_up_cgroups()?;
        let fifo = self.dir.join(EXEC_FIFO);
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o622))
            .map_err(|e| io_err(&fifo)(e.into()))?;
        // mkfifo applies the umask; the init may run as any user, and must be able to open it
        // for writing after dropping privileges (runc uses 0622 too).
        fs::set_permissions(&fifo, std::os::unix::fs::PermissionsExt::from_mode(0o622))
            .map_err(io_err(&fifo))?;
        let dir_fd: OwnedFd = nix::fcntl::open(
            &self.dir,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| io_err(&self.dir)(e.into()))?;

        let process = self
            .spec
            .process()
            .clone()
            .ok_or_else(|| ContainerError::Spec("process: missing in config.json".into()))?;
        let mut pass = vec![dir_fd.as_raw_fd()];
        if let Some(c) = &opts.console_socket {
            pass.push(c.as_raw_fd());
        }
        let cfg = ChildConfig {
            mode: Mode::Init,
            id: self.state.id.clone(),
            spec: self.spec.clone(),
            process,
            rootfs: self.state.rootfs.clone(),
            bundle: self.state.bundle.clone(),
            namespaces,
            no_pivot: opts.no_pivot,
            preserve_fds: opts.preserve_fds,
            console_fd: opts.console_socket.as_ref().map(|c| c.as_raw_fd()),
            state_dir_fd: Some(dir_fd.as_raw_fd()),
            init_pid: None,
        };
        let mut parent = ParentProcess::spawn(opts.stdio, &pass)?;
        drop(dir_fd);
        drop(opts.console_socket);
        let result = self.drive_init(&mut parent, cfg);
        if result.is_err() {
            parent.kill_stage1();
        }
        result
    }

    /// The parent's half of the sync protocol for a new container.
    fn drive_init(&mut self, parent: &mut ParentProcess, cfg: ChildConfig) -> Result<()> {
        // Into the cgroup before any namespace exists, so a new cgroup namespace is rooted there.
        self.cgroup.add_task(parent.stage1_pid())?;
        // Intel RDT: likewise into the resctrl group; the init forked by stage 1 inherits it.
        if let Some(rdt) = &self.state.intel_rdt {
            rdt.add_task(parent.stage1_pid())?;
        }
        parent.chan.set_timeout(Some(SETUP_TIMEOUT))?;
        parent.chan.send(&ToChild::Bootstrap(Box::new(cfg)))?;
        let mut init: Option<(Pid, PidFd)> = None;
        loop {
            let msg = match parent.chan.recv::<ToParent>() {
                Ok(Some(msg)) => msg,
                Ok(None) => return Err(ProcessError::ExitedEarly.into()),
                Err(e) => {
                    kill_init(&init);
                    return Err(e.into());
                }
            };
            match msg {
                ToParent::UserNsCreated => {
                    write_id_maps(parent.stage1_pid(), &self.spec)?;
                    parent.chan.send(&ToChild::IdMapsWritten)?;
                }
                ToParent::Stage2Pid(raw) => {
                    let pid = Pid::new(raw).ok_or_else(|| {
                        ProcessError::Protocol(format!("stage 1 reported pid {raw}"))
                    })?;
                    let fd = PidFd::open(pid).map_err(ProcessError::Spawn)?;
                    self.state.init_pid = Some(pid);
                    self.state.init_start_time = stat_of(pid).map(|(t, _)| t);
                    parent.reap_stage1();
                    init = Some((pid, fd));
                    // linux.netDevices: into the init's network namespace before any hook runs.
                    if let Some(devices) = self
                        .spec
                        .linux()
                        .as_ref()
                        .and_then(|l| l.net_devices().as_ref())
                    {
                        if let Err(e) = crate::setup::move_net_devices(devices, pid.as_raw()) {
                            kill_init(&init);
                            return Err(ContainerError::Spec(e.to_string()));
                        }
                    }
                }
                ToParent::RunHooks => {
                    let state = self.create_hooks_state();
                    let hooks = self.spec.hooks().as_ref();
                    let res = crate::process::run_hooks_in_helper(
                        HookKind::CreateRuntime,
                        hooks.and_then(|h| h.create_runtime().as_ref()),
                        &state,
                    )
                    .and_then(|_| {
                        #[allow(deprecated)]
                        crate::process::run_hooks_in_helper(
                            HookKind::Prestart,
                            hooks.and_then(|h| h.prestart().as_ref()),
                            &state,
                        )
                    });
                    if let Err(e) = res {
                        kill_init(&init);
                        return Err(e.into());
                    }
                    parent.chan.send(&ToChild::HooksDone(Box::new(state)))?;
                }
                ToParent::Ready if init.is_some() => {
                    // Intel RDT: the init itself, named in `tasks` before it runs the user's
                    // process (already in the group through stage 1; this checks it is).
                    if let (Some(rdt), Some((pid, _))) = (&self.state.intel_rdt, &init) {
                        if let Err(e) = rdt.add_task(*pid) {
                            kill_init(&init);
                            return Err(e.into());
                        }
                    }
                    break;
                }
                ToParent::Ready => {
                    return Err(ProcessError::Protocol(
                        "the init reported ready before its pid was known".into(),
                    )
                    .into())
                }
                ToParent::Error(text) => {
                    kill_init(&init);
                    return Err(ProcessError::Child(text).into());
                }
            }
        }
        self.set_status(Status::Created)
    }

    /// The spec's resources plus the devices every container gets (null, zero, full, tty,
    /// random, urandom, ptys) and those of linux.devices, as runc's specconv adds them.
    pub(super) fn resources_with_default_devices(&self) -> oci_spec::runtime::LinuxResources {
        let linux = self.spec.linux().as_ref();
        let mut res = linux
            .and_then(|l| l.resources().clone())
            .unwrap_or_default();
        let rules = cgroups::devices::rules_with_defaults(
            res.devices().as_deref().unwrap_or_default(),
            linux
                .and_then(|l| l.devices().as_deref())
                .unwrap_or_default(),
        );
        res.set_devices(Some(rules));
        res
    }

    /// The state prestart, createRuntime and createContainer get: status "created" (see
    /// [`HookKind::status`]) and the init's pid.
    pub(super) fn create_hooks_state(&self) -> crate::hooks::OciState {
        let mut s = self.oci_state();
        s.status = HookKind::Prestart.status().into();
        s.pid = self.state.init_pid.map(Pid::as_raw);
        s
    }

    /// Undo a failed create: kill what started, remove the cgroup, the resctrl groups made for
    /// it and the directory.
    pub(super) fn cleanup_failed_create(&mut self) {
        if let Some(fd) = self.init_pidfd() {
            let _ = fd.signal(nix::sys::signal::Signal::SIGKILL);
        }
        if let Err(e) = self.release_runtime_ns_mounts() {
            log::warn!("container {}: after failed create: {e}", self.state.id);
        }
        if self.cgroup.exists() {
            if let Err(e) = self.cgroup.kill_all() {
                log::warn!("container {}: kill after failed create: {e}", self.state.id);
            }
            if let Err(e) = self.cgroup.remove() {
                log::warn!(
                    "container {}: remove cgroup after failed create: {e}",
                    self.state.id
                );
            }
        }
        if let Some(rdt) = self.state.intel_rdt.as_mut() {
            if let Err(e) = rdt.remove() {
                log::warn!("container {}: after failed create: {e}", self.state.id);
            }
        }
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            log::warn!("remove {}: {e}", self.dir.display());
        }
    }
}

/// A cgroup that already holds processes belongs to another container (e.g. a copy restored
/// from a checkpoint whose spec names the original's cgroupsPath): sharing it would let one
/// container's delete kill and remove the other. Checked before anything is made, since the
/// cleanup of a failed create kills and removes the cgroup (runc 1.2 refuses this too).
pub(super) fn check_cgroup_unused(cgroup: &dyn cgroups::Manager) -> Result<()> {
    if !cgroup.exists() {
        return Ok(());
    }
    let pids = cgroup.pids().unwrap_or_default();
    if pids.is_empty() {
        return Ok(());
    }
    Err(ContainerError::Spec(format!(
        "linux.cgroupsPath {}: the cgroup already holds {} process(es) (pid {}), of another \
         container; give this container a cgroupsPath of its own",
        cgroup.path().display(),
        pids.len(),
        pids[0]
    )))
}

fn kill_init(init: &Option<(Pid, PidFd)>) {
    if let Some((_, fd)) = init {
        let _ = fd.signal(nix::sys::signal::Signal::SIGKILL);
    }
}

/// Writes uid_map and gid_map of stage 1's new user namespace from the spec.
fn write_id_maps(pid: Pid, spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    let write = |file: &str, maps: Option<&Vec<LinuxIdMapping>>, field: &str| -> Result<()> {
        let maps = maps.filter(|m| !m.is_empty()).ok_or_else(|| {
            ContainerError::Spec(format!(
                "linux.{field}: a new user namespace needs at least one mapping"
            ))
        })?;
        let text: String = maps
            .iter()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect();
        let path = PathBuf::from(format!("/proc/{}/{file}", pid.as_raw()));
        fs::write(&path, text.as_bytes()).map_err(|source| {
            ContainerError::Spec(format!(
                "linux.{field}: write {text:?} to {}: {source}",
                path.display()
            ))
        })
    };
    write(
        "uid_map",
        linux.and_then(|l| l.uid_mappings().as_ref()),
        "uidMappings",
    )?;
    write(
        "gid_map",
        linux.and_then(|l| l.gid_mappings().as_ref()),
        "gidMappings",
    )?;
    Ok(())
}
