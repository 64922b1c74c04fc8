//! `restore`: a new container whose process tree CRIU brings back from a checkpoint
//! (libcontainer's Restore). The container's directory, config and cgroup are made as for
//! `create`; then CRIU, itself placed in the new cgroup, rebuilds namespaces, mounts and
//! processes under the bundle's rootfs. External mounts and namespaces recorded by `checkpoint`
//! are bound to what the restoring bundle's spec names, and the tree's stdio pipes to the new
//! stdio. The restored init is a child of the caller (`rst_sibling`), like one from `create`.

use std::collections::HashMap;
use std::fs;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use myrt_protos::criu::{CgroupRoot, CriuOpts, CriuReq, CriuReqType, ExtMountMap, InheritFd};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::checkpoint::{
    is_bind, joined_ns_path, open_dir, CgroupsMode, CheckpointMeta, ExternalMount,
    DESCRIPTORS_FILE, EXT_NET_KEY, EXT_PID_KEY, META_FILE,
};
use super::{io_err, Container, ContainerError, Result, Status};
use crate::criu::{Criu, LogFile, MIN_VERSION};
use crate::hooks::HookKind;
use crate::process::Stdio;
use crate::utils::mountinfo;
use crate::utils::pid::stat_of;
use crate::utils::Pid;

/// The fd number of the first `inherit` fd in CRIU (after its socket at 3).
const FIRST_INHERITED_FD: i32 = 4;

/// runc's restore flags, and the new stdio.
#[derive(Debug, Default)]
pub struct RestoreOpts {
    pub criu: Option<PathBuf>,
    pub image_path: PathBuf,
    /// CRIU's log and work files; the image path when unset.
    pub work_path: Option<PathBuf>,
    /// Replaces the dumped tree's stdio pipes; `None` entries use the caller's own fds.
    pub stdio: Stdio,
    /// Receives the restored terminal's master when the container had a terminal.
    pub console_socket: Option<OwnedFd>,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub cgroups_mode: Option<CgroupsMode>,
    pub no_pivot: bool,
    pub systemd_cgroup: bool,
}

impl Container {
    /// Restores container `id` from `opts.image_path` with the bundle at `bundle`, in the state
    /// directory `dir` (which must not exist). On failure nothing is left behind.
    pub(crate) fn restore(
        dir: &Path,
        id: &str,
        bundle: &Path,
        opts: RestoreOpts,
    ) -> Result<Container> {
        let image = &opts.image_path;
        if !image.join("inventory.img").is_file() {
            return Err(ContainerError::Spec(format!(
                "restore: {} is not a checkpoint image directory (no inventory.img); \
                 pass the --image-path a checkpoint wrote",
                image.display()
            )));
        }
        let meta: CheckpointMeta = read_json(&image.join(META_FILE))?;
        let descriptors: Vec<String> = read_json(&image.join(DESCRIPTORS_FILE))?;
        if meta.terminal && opts.console_socket.is_none() {
            return Err(ContainerError::Spec(
                "restore: the checkpointed container had a terminal: pass --console-socket \
                 to receive the restored terminal"
                    .into(),
            ));
        }
        let criu = Criu::new(opts.criu.as_deref());
        criu.check_version(MIN_VERSION)?;
        let (mut c, _) = Container::new_in(
            dir,
            id,
            bundle,
            opts.console_socket.is_some(),
            opts.no_pivot,
            opts.systemd_cgroup,
        )?;
        match c.restore_inner(&criu, &meta, &descriptors, opts) {
            Ok(()) => Ok(c),
            Err(e) => {
                c.cleanup_failed_create();
                Err(e)
            }
        }
    }

    fn restore_inner(
        &mut self,
        criu: &Criu,
        meta: &CheckpointMeta,
        descriptors: &[String],
        opts: RestoreOpts,
    ) -> Result<()> {
        refuse_unrestorable(&self.spec)?;
        self.set_up_cgroups()?;
        create_mount_points(&self.spec, &self.state.rootfs)?;

        let image = open_dir(&opts.image_path)?;
        let work_path = opts
            .work_path
            .clone()
            .unwrap_or_else(|| opts.image_path.clone());
        fs::create_dir_all(&work_path).map_err(io_err(&work_path))?;
        let work = open_dir(&work_path)?;

        // CRIU wants the root to be a mount point (runc binds it too).
        let root = self.dir.join("criu-root");
        fs::create_dir(&root).map_err(io_err(&root))?;
        mount(
            Some(&self.state.rootfs),
            &root,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| {
            ContainerError::Spec(format!(
                "restore: bind the rootfs on {}: {e}",
                root.display()
            ))
        })?;
        let result = self.run_restore(
            criu,
            meta,
            descriptors,
            &opts,
            &image,
            &work,
            &work_path,
            &root,
        );
        if let Err(e) = umount2(&root, MntFlags::MNT_DETACH) {
            log::warn!("restore: unmount {}: {e}", root.display());
        }
        let _ = fs::remove_dir(&root);
        let pid = result?;
        self.state.init_pid = Some(pid);
        self.state.init_start_time = stat_of(pid).map(|(t, _)| t);
        self.set_status(Status::Running)
    }

    #[allow(clippy::too_many_arguments)]
    fn run_restore(
        &mut self,
        criu: &Criu,
        meta: &CheckpointMeta,
        descriptors: &[String],
        opts: &RestoreOpts,
        image: &OwnedFd,
        work: &OwnedFd,
        work_path: &Path,
        root: &Path,
    ) -> Result<Pid> {
        let mut criu_opts = CriuOpts {
            images_dir_fd: image.as_raw_fd(),
            work_dir_fd: Some(work.as_raw_fd()),
            log_level: Some(4),
            log_file: Some("restore.log".into()),
            root: Some(root.to_string_lossy().into_owned()),
            manage_cgroups: Some(true),
            manage_cgroups_mode: opts.cgroups_mode.map(|m| m.to_criu() as i32),
            notify_scripts: Some(true),
            rst_sibling: Some(true),
            // What the dump was allowed to take, the restore must be allowed to bring back.
            tcp_established: Some(opts.tcp_established || meta.tcp_established),
            ext_unix_sk: Some(opts.ext_unix_sk || meta.ext_unix_sk),
            shell_job: Some(opts.shell_job || meta.shell_job),
            file_locks: Some(opts.file_locks || meta.file_locks),
            orphan_pts_master: Some(meta.terminal),
            ..Default::default()
        };
        let binds = bind_sources(&self.spec, &self.state.bundle);
        let mut cgroup_mounts = Vec::new();
        for m in &meta.external_mounts {
            match m {
                ExternalMount::Bind {
                    key,
                    destination,
                    below,
                } => {
                    let source = binds.get(destination).ok_or_else(|| {
                        ContainerError::Spec(format!(
                            "restore: the checkpoint has a bind mount at {destination}, but the \
                             bundle's config.json mounts nothing there: add the mount"
                        ))
                    })?;
                    let val = if below.is_empty() {
                        source.clone()
                    } else {
                        source.join(below)
                    };
                    criu_opts.ext_mnt.push(ExtMountMap {
                        key: key.clone(),
                        val: val.to_string_lossy().into_owned(),
                    });
                }
                ExternalMount::CgroupV1 { key, hierarchy } => {
                    cgroup_mounts.push((key.clone(), hierarchy.clone()))
                }
            }
        }

        // The fds CRIU inherits: the new stdio where the dumped tree had pipes, and joined
        // namespaces. Their numbers in CRIU are 4, 5, … in this order.
        let mut inherit: Vec<BorrowedFd<'_>> = Vec::new();
        let (si, so, se) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
        let own = [si.as_fd(), so.as_fd(), se.as_fd()];
        let new_stdio = [&opts.stdio.stdin, &opts.stdio.stdout, &opts.stdio.stderr];
        for (i, d) in descriptors.iter().enumerate().take(3) {
            if !d.starts_with("pipe:") {
                continue; // files (e.g. /dev/null) are reopened by path by CRIU
            }
            let fd = new_stdio[i].as_ref().map_or(own[i], |f| f.as_fd());
            criu_opts.inherit_fd.push(InheritFd {
                key: d.clone(),
                fd: FIRST_INHERITED_FD + inherit.len() as i32,
            });
            inherit.push(fd);
        }
        let mut ns_fds = Vec::new();
        for (wanted, kind, key) in [
            (meta.external_net, LinuxNamespaceType::Network, EXT_NET_KEY),
            (meta.external_pid, LinuxNamespaceType::Pid, EXT_PID_KEY),
        ] {
            if !wanted {
                continue;
            }
            let path = joined_ns_path(&self.spec, kind).ok_or_else(|| {
                ContainerError::Spec(format!(
                    "restore: the checkpointed container joined a {kind:?} namespace by path; \
                     the bundle's config.json must name one to join (linux.namespaces)"
                ))
            })?;
            let fd = open_dir_or_file(&path)?;
            criu_opts.inherit_fd.push(InheritFd {
                key: key.to_string(),
                fd: FIRST_INHERITED_FD + (inherit.len() + ns_fds.len()) as i32,
            });
            ns_fds.push(fd);
        }
        inherit.extend(ns_fds.iter().map(|f| f.as_fd()));

        let req = CriuReq {
            r#type: CriuReqType::Restore as i32,
            opts: Some(criu_opts),
            ..Default::default()
        };
        let log = LogFile {
            dir: work_path.to_path_buf(),
            name: "restore.log".into(),
        };
        let cgroup = &self.cgroup;
        let rdt = self.state.intel_rdt.as_ref();
        let id = self.state.id.clone();
        // runc's criuApplyCgroups: CRIU runs in the new cgroup, whose paths become the roots
        // the dumped cgroups are restored under.
        let mut prepare = |criu_pid: Pid, req: &mut CriuReq| -> std::result::Result<(), String> {
            cgroup.add_task(criu_pid).map_err(|e| e.to_string())?;
            // The restored tasks are forked by CRIU: they inherit its resctrl group.
            if let Some(rdt) = rdt {
                rdt.add_task(criu_pid).map_err(|e| e.to_string())?;
            }
            let own = fs::read_to_string(format!("/proc/{}/cgroup", criu_pid.as_raw()))
                .map_err(|e| format!("read the cgroups of criu: {e}"))?;
            let paths = proc_cgroups(&own);
            let o = req.opts.as_mut().ok_or("no options")?;
            for (ctrl, path) in &paths {
                o.cg_root.push(CgroupRoot {
                    ctrl: (!ctrl.is_empty()).then(|| ctrl.clone()),
                    path: path.clone(),
                });
            }
            for (key, hierarchy) in &cgroup_mounts {
                let val = cgroup_v1_dir(hierarchy, &paths)?;
                o.ext_mnt.push(ExtMountMap {
                    key: key.clone(),
                    val: val.to_string_lossy().into_owned(),
                });
            }
            Ok(())
        };
        let state_for_hooks = self.create_hooks_state();
        let hooks = self.spec.hooks().clone();
        let console = opts.console_socket.as_ref();
        let mut restored: Option<Pid> = None;
        let resp = criu.call(
            "restore",
            req,
            &inherit,
            Some(&log),
            Some(&mut prepare),
            &mut |script, n, fd| {
                log::debug!("container {id}: criu restore: {script}");
                match script {
                    "setup-namespaces" => {
                        // runc runs the prestart hooks here, with the restored init's pid.
                        let mut st = state_for_hooks.clone();
                        st.pid = n.pid;
                        let h = hooks.as_ref();
                        crate::process::run_hooks_in_helper(
                            HookKind::CreateRuntime,
                            h.and_then(|h| h.create_runtime().as_ref()),
                            &st,
                        )
                        .and_then(|_| {
                            #[allow(deprecated)]
                            crate::process::run_hooks_in_helper(
                                HookKind::Prestart,
                                h.and_then(|h| h.prestart().as_ref()),
                                &st,
                            )
                        })
                        .map_err(|e| e.to_string())
                    }
                    "post-restore" => {
                        restored = n.pid.and_then(Pid::new);
                        Ok(())
                    }
                    "orphan-pts-master" => {
                        let (Some(master), Some(sock)) = (fd, console) else {
                            return Err("no terminal master or no console socket".into());
                        };
                        // A stream socket drops ancillary data sent with no bytes: name it
                        // as runc does.
                        crate::tty::send_console(sock.as_fd(), master.as_fd(), "orphan-pts-master")
                            .map_err(|e| e.to_string())
                    }
                    _ => Ok(()),
                }
            },
        )?;
        resp.restore
            .and_then(|r| Pid::new(r.pid))
            .or(restored)
            .ok_or_else(|| {
                ContainerError::Spec("restore: CRIU reported no pid for the restored init".into())
            })
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let data = fs::read(path).map_err(|source| {
        ContainerError::Spec(format!(
            "restore: {}: {source} (was the checkpoint written by myrt?)",
            path.display()
        ))
    })?;
    serde_json::from_slice(&data).map_err(|source| ContainerError::Json {
        path: path.to_path_buf(),
        source,
    })
}

fn open_dir_or_file(path: &Path) -> Result<OwnedFd> {
    fs::File::open(path)
        .map(OwnedFd::from)
        .map_err(io_err(path))
}

/// controller list ("cpu,cpuacct"; "" on v2) → cgroup path, from /proc/<pid>/cgroup.
fn proc_cgroups(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let _n = parts.next()?;
            let ctrl = parts.next()?.to_string();
            let path = parts.next()?.to_string();
            Some((ctrl, path))
        })
        .collect()
}

/// The host directory of the new container's cgroup in the v1 hierarchy `hierarchy`.
fn cgroup_v1_dir(
    hierarchy: &str,
    paths: &[(String, String)],
) -> std::result::Result<PathBuf, String> {
    let mounts = mountinfo::read_self().map_err(|e| format!("read mountinfo: {e}"))?;
    let same = |opts: &str| {
        let mut a: Vec<&str> = opts.split(',').collect();
        let mut b: Vec<&str> = hierarchy.split(',').collect();
        a.sort_unstable();
        b.sort_unstable();
        a == b
    };
    let mount = mounts
        .iter()
        .filter(|m| m.fs_type == "cgroup")
        .find(|m| {
            same(
                &m.super_options
                    .iter()
                    .filter(|o| !matches!(o.as_str(), "rw" | "ro"))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(","),
            )
        })
        .ok_or_else(|| format!("this host has no cgroup v1 hierarchy {hierarchy:?} mounted"))?;
    let path = paths
        .iter()
        .find(|(c, _)| same(c))
        .map(|(_, p)| p.as_str())
        .ok_or_else(|| format!("criu has no cgroup in the hierarchy {hierarchy:?}"))?;
    // A hierarchy mounted from below its root (mountinfo root) shows paths relative to it.
    let below = Path::new(path)
        .strip_prefix(&mount.root)
        .unwrap_or(Path::new(path));
    Ok(mount.mount_point.join(below))
}

/// destination → host source of every bind mount of the spec (relative sources are relative
/// to the bundle).
fn bind_sources(spec: &Spec, bundle: &Path) -> HashMap<String, PathBuf> {
    spec.mounts()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|m| is_bind(m))
        .filter_map(|m| {
            let src = m.source().as_ref()?;
            let dest = crate::rootfs::safe_path::clean_path(m.destination());
            Some((dest.to_string_lossy().into_owned(), bundle.join(src)))
        })
        .collect()
}

/// Mount points on the rootfs that a fresh rootfs (e.g. a new snapshot) may lack: bind
/// destinations, made as the engine makes them at create (a file for a file source).
fn create_mount_points(spec: &Spec, rootfs: &Path) -> Result<()> {
    let root = crate::rootfs::RootDir::new(rootfs)
        .map_err(|e| ContainerError::Spec(format!("restore: rootfs {}: {e}", rootfs.display())))?;
    for m in spec.mounts().as_deref().unwrap_or_default() {
        if !is_bind(m) {
            continue;
        }
        let dest = m.destination();
        if matches!(root.lstat(dest), Ok(Some(_))) {
            continue;
        }
        let file = m
            .source()
            .as_ref()
            .and_then(|s| fs::metadata(s).ok())
            .is_some_and(|md| !md.is_dir());
        let made = if file {
            root.create_file(dest, 0o644).map(drop)
        } else {
            root.mkdir_all(dest, 0o755).map(drop)
        };
        // A destination under a tmpfs of the spec is CRIU's to make; only log.
        if let Err(e) = made {
            log::debug!("restore: mount point {}: {e}", dest.display());
        }
    }
    Ok(())
}

/// Fields a restore cannot carry out yet: said, never skipped (the checkpoint's CRIU images
/// hold neither moved devices nor the id-mapped trees).
fn refuse_unrestorable(spec: &oci_spec::runtime::Spec) -> Result<()> {
    let net = spec
        .linux()
        .as_ref()
        .and_then(|l| l.net_devices().as_ref())
        .is_some_and(|d| !d.is_empty());
    if net {
        return Err(ContainerError::Spec(
            "restore: linux.netDevices is not supported on restore by myrt; remove it from the \
             restoring bundle's config.json"
                .into(),
        ));
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let opts = m.options().as_deref().unwrap_or(&[]);
        if m.uid_mappings().is_some()
            || m.gid_mappings().is_some()
            || opts.iter().any(|o| o == "idmap" || o == "ridmap")
        {
            return Err(ContainerError::Spec(format!(
                "restore: mounts[{i}] ({}): id-mapped mounts are not supported on restore by \
                 myrt; drop the mapping from the restoring bundle's config.json",
                m.destination().display()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_cgroup_lines() {
        let p = proc_cgroups("9:name=systemd:/\n4:cpu,cpuacct:/a/b\n0::/c\n");
        assert_eq!(
            p,
            vec![
                ("name=systemd".into(), "/".into()),
                ("cpu,cpuacct".into(), "/a/b".into()),
                ("".into(), "/c".into())
            ]
        );
    }
}
