//! Intel RDT (`linux.intelRdt`) through the kernel's resctrl filesystem, modeled on runc's
//! `libcontainer/intelrdt` and Documentation/arch/x86/resctrl.rst.
//!
//! resctrl is a single-level, cgroup-like filesystem (usually mounted at /sys/fs/resctrl):
//! `info/<resource>/` describes what the CPU can do (L3, L3CODE/L3DATA with CDP, MB, L3_MON);
//! every directory below the root is a CTRL_MON group with a `schemata` file (one line per
//! resource, `L3:0=ff;1=ff`, `MB:0=70`) and a `tasks` file, and `mon_groups/<name>/` inside a
//! group is a MON group (monitoring only). mkdir creates a group — the kernel fills it with its
//! files — and rmdir removes it, moving its tasks to the parent. A task written to `tasks` moves
//! there; fork/clone children inherit their parent's group.
//!
//! The container's place ([`RdtGroup::plan`]):
//! - `closID` set: the group `<root>/<closID>`. With a schema it is created if missing, or joined
//!   if its schemata match; with no schema it must exist (OCI runtime spec).
//! - no `closID`, a schema (or an empty `intelRdt`): the group `<root>/<container id>`, created.
//! - no `closID`, no schema, `enableCMT`/`enableMBM`: a MON group `<root>/mon_groups/<id>` in the
//!   default group (monitoring needs no CLOSID). With a `closID` and monitoring the container
//!   also gets a MON group `mon_groups/<id>` inside that shared group, so its data are its own.
//!
//! The filesystem is found in /proc/self/mountinfo (fstype `resctrl`), or taken from the
//! environment variable [`ROOT_ENV`] (`MYRT_RESCTRL_ROOT`): the test and injection hook. When
//! that names a plain directory instead of a resctrl mount (tests on hosts without RDT), the
//! module does the same reads and writes and imitates the two things only the kernel does, the
//! files mkdir creates in a new group and rmdir of a populated group ([`emulation`]); it logs a
//! warning that the settings have no effect. This code has been run only against such a
//! directory, never on RDT hardware.

mod emulation;
mod group;
mod schema;
mod stats;

use std::path::{Path, PathBuf};
use std::sync::Once;

use crate::utils::mountinfo::MountInfo;

pub use emulation::{lay_out_root, make_group};
pub use group::RdtGroup;
pub use schema::{fix_up_spec, Config};
pub use stats::{CmtNumaNodeStats, L3CacheInfo, MbmNumaNodeStats, MemBwInfo, Stats};

/// The environment variable that overrides where resctrl is mounted (tests, injection). Read by
/// the engine in-process: the shim inherits it from containerd's environment.
pub const ROOT_ENV: &str = "MYRT_RESCTRL_ROOT";

#[derive(Debug, thiserror::Error)]
pub enum IntelRdtError {
    /// The detail says what was looked at (empty when mountinfo simply has no resctrl).
    #[error(
        "linux.intelRdt: this host has no resctrl filesystem mounted (Intel RDT needs a CPU with \
         RDT and \"mount -t resctrl resctrl /sys/fs/resctrl\"){detail}"
    )]
    NoResctrl { detail: String },
    #[error(
        "linux.intelRdt.{key}: not supported by this version of myrt; remove it from config.json \
         (supported: closID, l3CacheSchema, memBwSchema, enableCMT, enableMBM)"
    )]
    UnknownKey { key: String },
    #[error("linux.intelRdt.{field} {value:?}: {reason}")]
    Invalid {
        field: &'static str,
        value: String,
        reason: String,
    },
    /// The host's resctrl lacks what the field needs.
    #[error("linux.intelRdt.{field}: {reason}")]
    Unsupported { field: &'static str, reason: String },
    #[error(
        "linux.intelRdt.closID {clos_id:?}: the existing group {path} does not match the schema \
         given ({reason}); its schemata are {existing:?}: give matching l3CacheSchema/memBwSchema \
         values, none (to join it as it is), or another closID"
    )]
    Mismatch {
        clos_id: String,
        path: PathBuf,
        reason: String,
        existing: String,
    },
    #[error(
        "linux.intelRdt.closID {clos_id:?}: no resctrl group {path}; with neither l3CacheSchema \
         nor memBwSchema the group must exist beforehand (create it with mkdir and write its \
         schemata, or give a schema)"
    )]
    GroupMissing { clos_id: String, path: PathBuf },
    #[error(
        "linux.intelRdt: resctrl group {path} already exists, though it is named after this \
         container: a leftover of an earlier container with the same id (remove it with rmdir) \
         or someone else's group"
    )]
    GroupExists { path: PathBuf },
    #[error("linux.intelRdt: cannot change the schemata of {path}: {why}")]
    Shared { path: PathBuf, why: &'static str },
    #[error("linux.intelRdt: cannot create resctrl group {path}: {source}{hint}")]
    Mkdir {
        path: PathBuf,
        source: std::io::Error,
        /// Why, where the errno alone does not say, and the kernel's last_cmd_status.
        hint: String,
    },
    #[error("linux.intelRdt: the kernel refused {what} {value:?} in {path}: {source}{hint}")]
    Refused {
        what: &'static str,
        value: String,
        path: PathBuf,
        source: std::io::Error,
        hint: String,
    },
    #[error("linux.intelRdt: {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("linux.intelRdt: {path}: unexpected content {value:?}: {reason}")]
    Parse {
        path: PathBuf,
        value: String,
        reason: &'static str,
    },
}

pub type Result<T> = std::result::Result<T, IntelRdtError>;

pub(crate) fn io_err(
    op: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> IntelRdtError {
    let path = path.to_path_buf();
    move |source| IntelRdtError::Io { op, path, source }
}

/// A resctrl filesystem found on this host (or given by [`ROOT_ENV`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resctrl {
    root: PathBuf,
    /// The root is a resctrl mount; false for a plain directory given by [`ROOT_ENV`].
    kernel: bool,
}

impl Resctrl {
    /// `$MYRT_RESCTRL_ROOT` when set and not empty, else the first resctrl mount in
    /// /proc/self/mountinfo; the error says the host has none.
    pub fn locate() -> Result<Resctrl> {
        Resctrl::locate_with(
            std::env::var_os(ROOT_ENV),
            crate::utils::mountinfo::read_self,
        )
    }

    /// [`Resctrl::locate`] with the variable's value and the mount table given.
    fn locate_with(
        env: Option<std::ffi::OsString>,
        mounts: impl FnOnce() -> std::io::Result<Vec<MountInfo>>,
    ) -> Result<Resctrl> {
        if let Some(root) = env.filter(|v| !v.is_empty()) {
            let root = PathBuf::from(root);
            if !root.is_dir() {
                return Err(IntelRdtError::NoResctrl {
                    detail: format!("; {ROOT_ENV}={} is not a directory", root.display()),
                });
            }
            return Ok(Resctrl::at(root));
        }
        let mounts = mounts().map_err(io_err("read", Path::new("/proc/self/mountinfo")))?;
        let Some(m) = mounts.into_iter().find(|m| m.fs_type == "resctrl") else {
            return Err(IntelRdtError::NoResctrl {
                detail: String::new(),
            });
        };
        let rs = Resctrl::at(m.mount_point);
        if !rs.kernel {
            // Never fall back to writing plain files under a covered mount point.
            return Err(IntelRdtError::NoResctrl {
                detail: format!(
                    "; {} is listed as resctrl in /proc/self/mountinfo but another filesystem \
                     covers it",
                    rs.root.display()
                ),
            });
        }
        Ok(rs)
    }

    /// The filesystem at `root`, which must exist; a plain directory is emulated (see the
    /// module docs).
    pub fn at(root: PathBuf) -> Resctrl {
        let kernel = nix::sys::statfs::statfs(&root)
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::RDTGROUP_SUPER_MAGIC);
        if !kernel {
            static WARN: Once = Once::new();
            WARN.call_once(|| {
                log::warn!(
                    "{} is not a resctrl filesystem ({ROOT_ENV} for tests): Intel RDT settings \
                     go to plain files and have no effect",
                    root.display()
                )
            });
        }
        Resctrl { root, kernel }
    }

    /// A filesystem recorded in a container's state; `kernel` is what it was then. A resctrl
    /// mount that is gone is an error, not a plain directory to write into.
    pub(crate) fn reopen(root: &Path, kernel: bool) -> Result<Resctrl> {
        let rs = Resctrl::at(root.to_path_buf());
        if kernel && !rs.kernel {
            return Err(IntelRdtError::NoResctrl {
                detail: format!(
                    "; {} was a resctrl mount when the container was created and is not one now",
                    root.display()
                ),
            });
        }
        Ok(rs)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// True on a real resctrl mount, false for an emulated plain directory.
    pub fn is_kernel(&self) -> bool {
        self.kernel
    }

    fn info(&self, resource: &str) -> PathBuf {
        self.root.join("info").join(resource)
    }

    fn has_resource(&self, resource: &str) -> bool {
        self.info(resource).is_dir()
    }

    /// The events of `info/L3_MON/mon_features` (empty without monitoring).
    pub fn mon_features(&self) -> Vec<String> {
        std::fs::read_to_string(self.info("L3_MON").join("mon_features"))
            .map(|t| t.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// `info/last_cmd_status` as a suffix for error messages (the kernel's reason for the last
    /// refused operation), or "" when it says "ok" or cannot be read.
    pub(crate) fn last_cmd_status(&self) -> String {
        match std::fs::read_to_string(self.root.join("info/last_cmd_status")) {
            Ok(s) if !s.trim().is_empty() && s.trim() != "ok" => {
                format!("; info/last_cmd_status: {:?}", s.trim())
            }
            _ => String::new(),
        }
    }

    /// Whether this host can do what `cfg` asks for; the error names the field.
    pub fn check(&self, cfg: &Config) -> Result<()> {
        for (field, resource) in cfg.resources() {
            if self.has_resource(resource) {
                continue;
            }
            let what = if resource == "MB" {
                "memory bandwidth allocation (MBA)"
            } else {
                "L3 cache allocation (CAT)"
            };
            let hint = match resource {
                "L3" if self.has_resource("L3CODE") => {
                    "; resctrl is mounted with cdp: give L3CODE: and L3DATA: lines instead"
                }
                "L3CODE" | "L3DATA" if self.has_resource("L3") => {
                    "; resctrl is mounted without cdp: give an L3: line instead"
                }
                _ => "",
            };
            return Err(IntelRdtError::Unsupported {
                field,
                reason: format!(
                    "this host's resctrl ({}) has no {what} for {resource} lines (no \
                     info/{resource}){hint}",
                    self.root.display()
                ),
            });
        }
        let features = self.mon_features();
        let has = |f: &str| features.iter().any(|x| x == f);
        if cfg.enable_cmt && !has("llc_occupancy") {
            return Err(IntelRdtError::Unsupported {
                field: "enableCMT",
                reason: format!(
                    "this host's resctrl ({}) has no cache occupancy monitoring (CMT): \
                     info/L3_MON/mon_features lacks llc_occupancy",
                    self.root.display()
                ),
            });
        }
        if cfg.enable_mbm && !has("mbm_total_bytes") && !has("mbm_local_bytes") {
            return Err(IntelRdtError::Unsupported {
                field: "enableMBM",
                reason: format!(
                    "this host's resctrl ({}) has no memory bandwidth monitoring (MBM): \
                     info/L3_MON/mon_features lacks mbm_total_bytes and mbm_local_bytes",
                    self.root.display()
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
