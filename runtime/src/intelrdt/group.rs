//! The container's resctrl groups: where they are, creating or joining them, moving tasks in,
//! rewriting the schemata, and removing what myrt created. Saved in the container's state so
//! that any later process (CLI, shim, restarted shim) finds the same groups.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use super::emulation::{self, Kind};
use super::schema::{self, Config};
use super::{io_err, IntelRdtError, Resctrl, Result};
use crate::utils::pid::stat_of;
use crate::utils::Pid;

/// Where a container sits in resctrl (see the module docs for the rules).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RdtGroup {
    /// The resctrl root when the container was created.
    pub root: PathBuf,
    /// The root was a resctrl mount (false: a plain directory given for tests).
    pub kernel: bool,
    /// The CTRL_MON group whose schemata apply to the container (the root itself when only
    /// monitoring was asked for).
    pub path: PathBuf,
    /// linux.intelRdt.closID: the group is a class other containers may share.
    pub clos_id: Option<String>,
    /// myrt made `path`: destroy removes it (unless a class still has other tasks).
    pub created: bool,
    /// The container's own MON group (`<path>/mon_groups/<id>`), when monitoring was asked for
    /// in a group it does not own alone.
    pub mon_path: Option<PathBuf>,
    /// myrt made `mon_path`.
    pub mon_created: bool,
}

impl RdtGroup {
    /// Checks linux.intelRdt against the host and says where the container goes; creates
    /// nothing. `None` when the spec has no linux.intelRdt.
    pub fn plan(spec: &Spec, id: &str) -> Result<Option<RdtGroup>> {
        let Some(cfg) = Config::from_spec(spec)? else {
            return Ok(None);
        };
        let rs = Resctrl::locate()?;
        rs.check(&cfg)?;
        Ok(Some(RdtGroup::place(&rs, &cfg, id)))
    }

    pub(crate) fn place(rs: &Resctrl, cfg: &Config, id: &str) -> RdtGroup {
        let root = rs.root().to_path_buf();
        let (path, mon_path) = match &cfg.clos_id {
            Some(clos) => {
                let path = root.join(clos);
                let mon = cfg.monitoring().then(|| path.join("mon_groups").join(id));
                (path, mon)
            }
            // Monitoring alone needs no CLOSID: a MON group in the default group.
            None if !cfg.has_schema() && cfg.monitoring() => {
                (root.clone(), Some(root.join("mon_groups").join(id)))
            }
            // The container's own CTRL_MON group monitors itself (its mon_data).
            None => (root.join(id), None),
        };
        RdtGroup {
            root,
            kernel: rs.is_kernel(),
            path,
            clos_id: cfg.clos_id.clone(),
            created: false,
            mon_path,
            mon_created: false,
        }
    }

    pub(crate) fn resctrl(&self) -> Result<Resctrl> {
        Resctrl::reopen(&self.root, self.kernel)
    }

    /// The group whose `mon_data` holds the container's monitoring data.
    pub(crate) fn monitored(&self) -> &Path {
        self.mon_path.as_deref().unwrap_or(&self.path)
    }

    /// Creates or joins the groups and writes the schemata, before any task is in them. On an
    /// error, what was created is recorded (`created`, `mon_created`) for [`RdtGroup::remove`].
    pub fn setup(&mut self, spec: &Spec) -> Result<()> {
        let Some(cfg) = Config::from_spec(spec)? else {
            return Ok(());
        };
        let rs = self.resctrl()?;
        if self.path != self.root {
            self.make_or_join(&rs, &cfg)?;
        }
        if let Some(mon) = self.mon_path.clone() {
            make_dir(&rs, &mon, Kind::Mon).map_err(|e| mkdir_error(&rs, &mon, e))?;
            self.mon_created = true;
        }
        Ok(())
    }

    fn make_or_join(&mut self, rs: &Resctrl, cfg: &Config) -> Result<()> {
        if let (Some(clos), false) = (&cfg.clos_id, cfg.has_schema()) {
            // OCI: a closID without a schema names a group configured beforehand.
            if !is_group(&self.path) {
                return Err(IntelRdtError::GroupMissing {
                    clos_id: clos.clone(),
                    path: self.path.clone(),
                });
            }
            return Ok(());
        }
        match make_dir(rs, &self.path, Kind::Ctrl) {
            Ok(()) => {
                self.created = true;
                if let Some(text) = cfg.schemata() {
                    write_schemata(rs, &self.path, &text)?;
                }
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let Some(clos) = &cfg.clos_id else {
                    return Err(IntelRdtError::GroupExists {
                        path: self.path.clone(),
                    });
                };
                if !is_group(&self.path) {
                    return Err(IntelRdtError::Invalid {
                        field: "closID",
                        value: clos.clone(),
                        reason: format!(
                            "{} exists but is not a resctrl group",
                            self.path.display()
                        ),
                    });
                }
                // OCI: joining a class with a schema requires that the class has that schema.
                let file = self.path.join("schemata");
                let existing = fs::read_to_string(&file).map_err(io_err("read", &file))?;
                match schema::mismatch(&existing, cfg.lines()) {
                    None => Ok(()),
                    Some(reason) => Err(IntelRdtError::Mismatch {
                        clos_id: clos.clone(),
                        path: self.path.clone(),
                        reason,
                        existing: existing.trim_end().to_string(),
                    }),
                }
            }
            Err(e) => Err(mkdir_error(rs, &self.path, e)),
        }
    }

    /// Moves the task `pid` into the group (and then into the container's MON group: the kernel
    /// takes a task into a MON group only from its parent). Children forked later follow it.
    pub fn add_task(&self, pid: Pid) -> Result<()> {
        let rs = self.resctrl()?;
        write_tasks(&rs, &self.path, pid)?;
        if let Some(mon) = &self.mon_path {
            write_tasks(&rs, mon, pid)?;
        }
        Ok(())
    }

    /// Moves every thread of process `pid` (the `tasks` file takes thread ids); threads that
    /// exit meanwhile are skipped.
    pub fn add_process(&self, pid: Pid) -> Result<()> {
        let dir = PathBuf::from(format!("/proc/{pid}/task"));
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("read", &dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err("read", &dir))?;
            let Some(tid) = entry
                .file_name()
                .to_str()
                .and_then(|t| t.parse().ok())
                .and_then(Pid::new)
            else {
                continue;
            };
            match self.add_task(tid) {
                Err(IntelRdtError::Refused { source, .. })
                    if source.raw_os_error() == Some(libc::ESRCH) => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// Writes the schema lines of `cfg` into the container's group (update). Only a group myrt
    /// created for the container is changed, never a class it joined or the default group.
    pub fn set_schemata(&self, cfg: &Config) -> Result<()> {
        let rs = self.resctrl()?;
        rs.check(cfg)?;
        if !self.created {
            let why = if self.path == self.root {
                "it is the default group (the container has only a monitoring group); a schema \
                 needs a group of its own, given when the container is created"
            } else {
                "it is a class this container joined and other tasks may share: change its \
                 schemata in resctrl directly"
            };
            return Err(IntelRdtError::Shared {
                path: self.path.clone(),
                why,
            });
        }
        match cfg.schemata() {
            Some(text) => write_schemata(&rs, &self.path, &text),
            None => Ok(()),
        }
    }

    /// Removes the MON group and the group myrt created (rmdir: the kernel moves any task left
    /// to the parent group). A class myrt created is kept while other live tasks are in it; a
    /// class it only joined is never removed. Groups already gone are fine.
    pub fn remove(&mut self) -> Result<()> {
        if !self.created && !self.mon_created {
            return Ok(());
        }
        let rs = match self.resctrl() {
            Ok(rs) => rs,
            // Unmounting resctrl removed every group with it.
            Err(IntelRdtError::NoResctrl { .. }) => {
                self.created = false;
                self.mon_created = false;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if let (true, Some(mon)) = (self.mon_created, &self.mon_path) {
            remove_dir(&rs, mon)?;
            self.mon_created = false;
        }
        if self.created {
            if self.clos_id.is_some() {
                let others = live_tasks(&self.path);
                if !others.is_empty() {
                    log::info!(
                        "keeping resctrl group {}: other tasks still use it ({others:?})",
                        self.path.display()
                    );
                    self.created = false;
                    return Ok(());
                }
            }
            remove_dir(&rs, &self.path)?;
            self.created = false;
        }
        Ok(())
    }
}

/// A directory holding a `tasks` file: a resctrl group (CTRL_MON or MON).
fn is_group(path: &Path) -> bool {
    path.is_dir() && path.join("tasks").is_file()
}

/// mkdir of a group; on a plain directory also what the kernel would put into it.
fn make_dir(rs: &Resctrl, path: &Path, kind: Kind) -> std::io::Result<()> {
    fs::create_dir(path)?;
    if !rs.is_kernel() {
        if let Err(e) = emulation::populate(rs.root(), path, kind) {
            let _ = emulation::remove(path);
            return Err(e);
        }
    }
    Ok(())
}

fn mkdir_error(rs: &Resctrl, path: &Path, source: std::io::Error) -> IntelRdtError {
    if source.kind() == ErrorKind::AlreadyExists {
        return IntelRdtError::GroupExists {
            path: path.to_path_buf(),
        };
    }
    let why = match source.raw_os_error() {
        Some(libc::ENOSPC) => {
            " (no free CLOSID or RMID: see info/L3/num_closids and info/L3_MON/num_rmids)"
        }
        _ => "",
    };
    IntelRdtError::Mkdir {
        path: path.to_path_buf(),
        source,
        hint: format!("{why}{}", rs.last_cmd_status()),
    }
}

fn remove_dir(rs: &Resctrl, path: &Path) -> Result<()> {
    let res = if rs.is_kernel() {
        fs::remove_dir(path)
    } else {
        emulation::remove(path)
    };
    match res {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("rmdir", path)(e)),
    }
}

/// One write(2) of `data` to an existing file: resctrl parses each write on its own, and its
/// files exist from the group's mkdir, so nothing is ever created here (no O_CREAT).
fn write_once(path: &Path, data: &str, append: bool) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .append(append)
        .truncate(!append)
        .open(path)?;
    let n = f.write(data.as_bytes())?;
    if n != data.len() {
        return Err(std::io::Error::new(
            ErrorKind::WriteZero,
            format!("short write: {n} of {} bytes", data.len()),
        ));
    }
    Ok(())
}

fn write_schemata(rs: &Resctrl, group: &Path, text: &str) -> Result<()> {
    let path = group.join("schemata");
    write_once(&path, text, false).map_err(|source| IntelRdtError::Refused {
        what: "schemata",
        value: text.trim_end().to_string(),
        hint: rs.last_cmd_status(),
        path,
        source,
    })
}

/// Appends (so that a plain file collects one id per line, as the kernel's file reads).
fn write_tasks(rs: &Resctrl, group: &Path, pid: Pid) -> Result<()> {
    let path = group.join("tasks");
    write_once(&path, &format!("{pid}\n"), true).map_err(|source| IntelRdtError::Refused {
        what: "task",
        value: pid.to_string(),
        hint: rs.last_cmd_status(),
        path,
        source,
    })
}

/// Ids in the group's `tasks` that belong to live processes (not zombies; a plain directory's
/// file also keeps ids of tasks long gone).
fn live_tasks(group: &Path) -> Vec<Pid> {
    fs::read_to_string(group.join("tasks"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|t| t.parse().ok().and_then(Pid::new))
        .filter(|p| stat_of(*p).is_some_and(|(_, zombie)| !zombie))
        .collect()
}
