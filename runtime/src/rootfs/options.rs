//! Mount options of the OCI spec turned into mount(2) flags, data, propagation changes and
//! mount_setattr(2) attributes, with the same table runc uses (libcontainer/specconv), plus
//! the "idmap"/"ridmap" request (carried out by `idmap.rs`).

use libc::c_ulong;

use super::idmap::Idmap;
use super::sys::MountAttr;

/// One spec mount's options, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountOptions {
    /// MS_* flags to set.
    pub flags: c_ulong,
    /// MS_* flags the options explicitly clear ("rw", "suid", "dev"…).
    pub cleared: c_ulong,
    /// Propagation changes, applied in order after the mount.
    pub propagation: Vec<c_ulong>,
    /// Recursive attributes ("rro", "rnosuid"…), applied with mount_setattr(AT_RECURSIVE).
    pub rec_attr: MountAttr,
    /// Options the kernel gets as the data string ("mode=755", "size=65536k"…).
    pub data: Vec<String>,
    /// "tmpcopyup": copy the directory's old content into the new tmpfs.
    pub tmpcopyup: bool,
    /// "idmap" or "ridmap" (the mapping itself is added when the spec mount is read).
    pub idmap: Option<Idmap>,
}

impl MountOptions {
    /// The data string for mount(2), `None` when there is none.
    pub fn data_string(&self) -> Option<String> {
        if self.data.is_empty() {
            None
        } else {
            Some(self.data.join(","))
        }
    }

    pub fn is_bind(&self) -> bool {
        self.flags & libc::MS_BIND != 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    #[error("options \"idmap\" and \"ridmap\" exclude each other: keep one")]
    IdmapTwice,
}

/// (name, clears?, MS_* flag), as runc's mountFlags table.
const FLAGS: &[(&str, bool, c_ulong)] = &[
    ("acl", false, libc::MS_POSIXACL),
    ("async", true, libc::MS_SYNCHRONOUS),
    ("atime", true, libc::MS_NOATIME),
    ("bind", false, libc::MS_BIND),
    ("defaults", false, 0),
    ("dev", true, libc::MS_NODEV),
    ("diratime", true, libc::MS_NODIRATIME),
    ("dirsync", false, libc::MS_DIRSYNC),
    ("exec", true, libc::MS_NOEXEC),
    ("iversion", false, libc::MS_I_VERSION),
    ("lazytime", false, libc::MS_LAZYTIME),
    ("loud", true, libc::MS_SILENT),
    ("mand", false, libc::MS_MANDLOCK),
    ("noacl", true, libc::MS_POSIXACL),
    ("noatime", false, libc::MS_NOATIME),
    ("nodev", false, libc::MS_NODEV),
    ("nodiratime", false, libc::MS_NODIRATIME),
    ("noexec", false, libc::MS_NOEXEC),
    ("noiversion", true, libc::MS_I_VERSION),
    ("nolazytime", true, libc::MS_LAZYTIME),
    ("nomand", true, libc::MS_MANDLOCK),
    ("norelatime", true, libc::MS_RELATIME),
    ("nostrictatime", true, libc::MS_STRICTATIME),
    ("nosuid", false, libc::MS_NOSUID),
    ("nosymfollow", false, libc::MS_NOSYMFOLLOW),
    ("rbind", false, libc::MS_BIND | libc::MS_REC),
    ("relatime", false, libc::MS_RELATIME),
    ("remount", false, libc::MS_REMOUNT),
    ("ro", false, libc::MS_RDONLY),
    ("rw", true, libc::MS_RDONLY),
    ("silent", false, libc::MS_SILENT),
    ("strictatime", false, libc::MS_STRICTATIME),
    ("suid", true, libc::MS_NOSUID),
    ("symfollow", true, libc::MS_NOSYMFOLLOW),
    ("sync", false, libc::MS_SYNCHRONOUS),
];

/// (name, MS_* propagation flags), as runc's mountPropagationMapping.
const PROPAGATION: &[(&str, c_ulong)] = &[
    ("private", libc::MS_PRIVATE),
    ("rprivate", libc::MS_PRIVATE | libc::MS_REC),
    ("shared", libc::MS_SHARED),
    ("rshared", libc::MS_SHARED | libc::MS_REC),
    ("slave", libc::MS_SLAVE),
    ("rslave", libc::MS_SLAVE | libc::MS_REC),
    ("unbindable", libc::MS_UNBINDABLE),
    ("runbindable", libc::MS_UNBINDABLE | libc::MS_REC),
];

/// (name, clears?, MOUNT_ATTR_*), as runc's recAttrFlags.
const REC_ATTRS: &[(&str, bool, u64)] = &[
    ("rro", false, libc::MOUNT_ATTR_RDONLY),
    ("rrw", true, libc::MOUNT_ATTR_RDONLY),
    ("rnosuid", false, libc::MOUNT_ATTR_NOSUID),
    ("rsuid", true, libc::MOUNT_ATTR_NOSUID),
    ("rnodev", false, libc::MOUNT_ATTR_NODEV),
    ("rdev", true, libc::MOUNT_ATTR_NODEV),
    ("rnoexec", false, libc::MOUNT_ATTR_NOEXEC),
    ("rexec", true, libc::MOUNT_ATTR_NOEXEC),
    ("rnodiratime", false, libc::MOUNT_ATTR_NODIRATIME),
    ("rdiratime", true, libc::MOUNT_ATTR_NODIRATIME),
    ("rrelatime", false, libc::MOUNT_ATTR_RELATIME),
    ("rnorelatime", true, libc::MOUNT_ATTR_RELATIME),
    ("rnoatime", false, libc::MOUNT_ATTR_NOATIME),
    ("ratime", true, libc::MOUNT_ATTR_NOATIME),
    ("rstrictatime", false, libc::MOUNT_ATTR_STRICTATIME),
    ("rnostrictatime", true, libc::MOUNT_ATTR_STRICTATIME),
    ("rnosymfollow", false, libc::MOUNT_ATTR_NOSYMFOLLOW),
    ("rsymfollow", true, libc::MOUNT_ATTR_NOSYMFOLLOW),
];

/// Parses a spec mount's options. Options that are not flags, propagation, recursive attributes
/// or extensions become filesystem data, as in runc.
pub fn parse_mount_options(options: &[String]) -> Result<MountOptions, OptionError> {
    let mut out = MountOptions::default();
    for opt in options {
        let o = opt.as_str();
        if let Some(&(_, clear, flag)) = FLAGS.iter().find(|(n, _, _)| *n == o) {
            if clear {
                out.flags &= !flag;
                out.cleared |= flag;
            } else {
                out.flags |= flag;
                out.cleared &= !flag;
            }
        } else if let Some(&(_, flag)) = PROPAGATION.iter().find(|(n, _)| *n == o) {
            out.propagation.push(flag);
        } else if let Some(&(_, clear, attr)) = REC_ATTRS.iter().find(|(n, _, _)| *n == o) {
            if clear {
                out.rec_attr.clear |= attr;
            } else {
                out.rec_attr.set |= attr;
                // An atime mode must also be cleared as a whole to be set (mount_setattr(2)).
                if attr & libc::MOUNT_ATTR__ATIME == attr {
                    out.rec_attr.clear |= libc::MOUNT_ATTR__ATIME;
                }
            }
        } else if o == "tmpcopyup" {
            out.tmpcopyup = true;
        } else if o == "idmap" || o == "ridmap" {
            let recursive = o == "ridmap";
            if out.idmap.as_ref().is_some_and(|i| i.recursive != recursive) {
                return Err(OptionError::IdmapTwice);
            }
            out.idmap = Some(Idmap {
                recursive,
                option: if recursive { "ridmap" } else { "idmap" },
                source: None,
            });
        } else {
            out.data.push(o.to_string());
        }
    }
    Ok(out)
}

/// linux.rootfsPropagation to MS_* flags; `None` for an unknown value.
pub fn parse_propagation(value: &str) -> Option<c_ulong> {
    PROPAGATION
        .iter()
        .find(|(n, _)| *n == value)
        .map(|&(_, flag)| flag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(opts: &[&str]) -> MountOptions {
        let owned: Vec<String> = opts.iter().map(|s| s.to_string()).collect();
        parse_mount_options(&owned).expect("options parse")
    }

    #[test]
    fn flags_and_data() {
        let o = parse(&["nosuid", "noexec", "nodev", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, libc::MS_NOSUID | libc::MS_NOEXEC | libc::MS_NODEV);
        assert_eq!(o.data_string().as_deref(), Some("mode=755,size=65536k"));
        assert!(!o.is_bind());
    }

    #[test]
    fn rbind_is_bind_and_recursive() {
        let o = parse(&["rbind", "ro"]);
        assert_eq!(o.flags, libc::MS_BIND | libc::MS_REC | libc::MS_RDONLY);
        assert!(o.is_bind());
        assert_eq!(o.data_string(), None);
    }

    #[test]
    fn later_option_wins_and_clears_are_recorded() {
        let o = parse(&["ro", "rw"]);
        assert_eq!(o.flags & libc::MS_RDONLY, 0);
        assert_eq!(o.cleared, libc::MS_RDONLY);
        let o = parse(&["rw", "ro"]);
        assert_eq!(o.flags, libc::MS_RDONLY);
        assert_eq!(o.cleared, 0);
    }

    #[test]
    fn atime_options() {
        let o = parse(&["strictatime"]);
        assert_eq!(o.flags, libc::MS_STRICTATIME);
        let o = parse(&["noatime", "atime"]);
        assert_eq!(o.flags, 0);
        assert_eq!(o.cleared, libc::MS_NOATIME);
    }

    #[test]
    fn propagation_in_order() {
        let o = parse(&["rprivate", "shared"]);
        assert_eq!(
            o.propagation,
            vec![libc::MS_PRIVATE | libc::MS_REC, libc::MS_SHARED]
        );
        assert_eq!(o.flags, 0);
    }

    #[test]
    fn recursive_attributes() {
        let o = parse(&["rbind", "rro", "rnosuid", "rdev"]);
        assert_eq!(
            o.rec_attr.set,
            libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID
        );
        assert_eq!(o.rec_attr.clear, libc::MOUNT_ATTR_NODEV);
        let o = parse(&["rnoatime"]);
        assert_eq!(o.rec_attr.set, libc::MOUNT_ATTR_NOATIME);
        assert_eq!(o.rec_attr.clear, libc::MOUNT_ATTR__ATIME);
    }

    #[test]
    fn tmpcopyup_is_an_extension_not_data() {
        let o = parse(&["tmpcopyup", "mode=1777"]);
        assert!(o.tmpcopyup);
        assert_eq!(o.data, vec!["mode=1777".to_string()]);
    }

    #[test]
    fn idmap_options_are_not_data() {
        let o = parse(&["rbind", "ridmap"]);
        let idmap = o.idmap.expect("ridmap parsed");
        assert!(idmap.recursive);
        assert_eq!(idmap.option, "ridmap");
        assert!(o.data.is_empty());
        let o = parse(&["bind", "idmap", "idmap"]);
        assert!(!o.idmap.expect("idmap parsed").recursive);
        let err = parse_mount_options(&["idmap".to_string(), "ridmap".to_string()]).unwrap_err();
        assert_eq!(err, OptionError::IdmapTwice);
    }

    #[test]
    fn rootfs_propagation_values() {
        assert_eq!(
            parse_propagation("rslave"),
            Some(libc::MS_SLAVE | libc::MS_REC)
        );
        assert_eq!(parse_propagation("shared"), Some(libc::MS_SHARED));
        assert_eq!(parse_propagation("sideways"), None);
    }
}
