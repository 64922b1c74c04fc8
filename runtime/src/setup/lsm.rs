//! Linux security modules: `process.apparmorProfile`, `process.selinuxLabel` and
//! `linux.mountLabel`, as runc applies them.
//!
//! - AppArmor (runc `libcontainer/apparmor`): "exec <profile>" is written to
//!   `/proc/thread-self/attr/apparmor/exec` (older kernels: `attr/exec`), so the profile takes
//!   over at the next execve.
//! - SELinux (runc via go-selinux `SetExecLabel`): the label is written to
//!   `/proc/thread-self/attr/exec`; `linux.mountLabel` becomes the `context="…"` option of the
//!   filesystems the runtime mounts (go-selinux `label.FormatMountLabel`).
//!
//! Both writes go through the container's procfs, checked to be procfs and not redirected by a
//! mount (CVE-2019-16884: an image that mounts over /proc would make the write a no-op and the
//! container unconfined). They happen in the container process right before the seccomp filter
//! without no_new_privs and the capability drop (runc's `SetExecLabel` place; runc applies
//! AppArmor a little earlier in the init, which changes nothing: both only act at execve).
//!
//! On a host without the LSM, runc fails: an AppArmor profile cannot be written (EINVAL), a
//! SELinux process label is refused by its config validation ("selinux label is specified in
//! config, but selinux is disabled or not supported"), and a mount label makes the kernel
//! refuse the mount (`context=` is unknown, EINVAL). [`check`] refuses all three at `create`,
//! before anything exists, naming the field and the value.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{self, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use crate::rootfs::safe_path::{check_procfs, open_procfs};

#[derive(Debug, thiserror::Error)]
pub enum LsmError {
    #[error("{field} {value:?}: {reason}")]
    Unavailable {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("{field} {value:?}: write {path}: {reason}")]
    Apply {
        field: &'static str,
        value: String,
        path: String,
        reason: String,
    },
}

/// Which LSMs this host runs, as runc and go-selinux detect them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLsm {
    pub apparmor: bool,
    pub selinux: bool,
}

impl HostLsm {
    /// Probes the host (call before entering the container: its /sys has no securityfs).
    pub fn detect() -> HostLsm {
        let aa_param = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled");
        let apparmor = Path::new("/sys/kernel/security/apparmor").exists()
            && aa_param.is_ok_and(|t| parse_enabled(&t));
        let selinux = std::fs::read_to_string("/proc/self/mountinfo")
            .ok()
            .and_then(|m| selinuxfs_mount(&m))
            .is_some_and(|mnt| mnt.join("enforce").exists());
        HostLsm { apparmor, selinux }
    }
}

/// `/sys/module/apparmor/parameters/enabled` says "Y" when AppArmor is on.
pub fn parse_enabled(text: &str) -> bool {
    text.starts_with('Y')
}

/// Where selinuxfs is mounted, from a mountinfo text (go-selinux's fallback search).
pub fn selinuxfs_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (pre, post) = line.split_once(" - ")?;
        if post.split(' ').next()? != "selinuxfs" {
            return None;
        }
        pre.split(' ').nth(4).map(PathBuf::from)
    })
}

fn set(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// Refuses, at `create`, the LSM fields this host cannot carry out (see the module text).
pub fn check(
    host: HostLsm,
    process: &oci_spec::runtime::Process,
    mount_label: &Option<String>,
) -> Result<(), LsmError> {
    let unavailable = |field, value: &str, reason: &str| LsmError::Unavailable {
        field,
        value: value.to_string(),
        reason: reason.to_string(),
    };
    if let (Some(p), false) = (set(process.apparmor_profile()), host.apparmor) {
        return Err(unavailable(
            "process.apparmorProfile",
            p,
            "AppArmor is not enabled on this host (/sys/module/apparmor/parameters/enabled is \
             not Y or securityfs is missing), so the profile cannot be applied (runc fails too); \
             remove the field",
        ));
    }
    if let (Some(l), false) = (set(process.selinux_label()), host.selinux) {
        return Err(unavailable(
            "process.selinuxLabel",
            l,
            "SELinux is not enabled on this host (no selinuxfs), so the label cannot be applied \
             (runc refuses it too); remove the field",
        ));
    }
    if let Some(l) = set(mount_label) {
        // A file label confines nothing where SELinux is off (the process fields above do):
        // ignored, as go-selinux's label stubs do. runc 1.1.5 fails here only because it appends
        // context= unconditionally and the kernel refuses it.
        if !host.selinux {
            log::info!("linux.mountLabel {l:?} ignored: SELinux is not enabled on this host");
        }
    }
    Ok(())
}

/// The mount data option that labels a filesystem the runtime mounts (go-selinux
/// `FormatMountLabel`), `None` for types runc does not label this way: binds keep their
/// source's labels; proc, sysfs and cgroup have their own; mqueue is labelled with setxattr.
pub fn mount_label_option(typ: &str, mount_label: Option<&str>) -> Option<String> {
    let label = mount_label.filter(|l| !l.is_empty())?;
    match typ {
        "bind" | "proc" | "sysfs" | "mqueue" | "cgroup" | "cgroup2" => None,
        _ => Some(format!("context={label:?}")),
    }
}

/// Writes the AppArmor profile and the SELinux process label of `process` for the next execve.
/// Call in the container process, with the container's /proc mounted.
pub fn apply(process: &oci_spec::runtime::Process) -> Result<(), LsmError> {
    if let Some(profile) = set(process.apparmor_profile()) {
        let field = "process.apparmorProfile";
        // The AppArmor-specific directory when the kernel has it (several LSMs stacked).
        let path = match write_attr("apparmor/exec", &format!("exec {profile}")) {
            Err((_, Errno::ENOENT)) => write_attr("exec", &format!("exec {profile}")),
            other => other,
        };
        path.map_err(|(path, e)| apply_err(field, profile, path, e))?;
    }
    if let Some(label) = set(process.selinux_label()) {
        write_attr("exec", label)
            .map_err(|(path, e)| apply_err("process.selinuxLabel", label, path, e))?;
    }
    Ok(())
}

fn apply_err(field: &'static str, value: &str, path: String, e: Errno) -> LsmError {
    let reason = match e {
        Errno::EINVAL => {
            "invalid argument: is the LSM enabled and the profile or label loaded?".to_string()
        }
        Errno::ENOENT => "no such file: does the kernel have this LSM?".into(),
        Errno::EXDEV | Errno::ELOOP => {
            "something in the container's /proc redirects it (CVE-2019-16884)".into()
        }
        e => super::errno_text(e),
    };
    LsmError::Apply {
        field,
        value: value.to_string(),
        path,
        reason,
    }
}

/// Writes `value` to `/proc/thread-self/attr/<attr>`; the error carries the path shown.
fn write_attr(attr: &str, value: &str) -> Result<(), (String, Errno)> {
    let rel = format!("thread-self/attr/{attr}");
    let shown = format!("/proc/{rel}");
    let fail = |e: Errno| (shown.clone(), e);
    let procfs = open_procfs().map_err(|e| fail(e.errno().unwrap_or(Errno::EINVAL)))?;
    let fd = open_attr(&procfs, &rel).map_err(fail)?;
    // CVE-2019-16884: the file written must be procfs's, not one mounted over it.
    check_procfs(fd.as_fd(), Path::new(&shown))
        .map_err(|e| fail(e.errno().unwrap_or(Errno::EXDEV)))?;
    std::fs::File::from(fd)
        .write_all(value.as_bytes())
        .map_err(|e| fail(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))))
}

/// Opens an attr file below procfs without crossing a mount or following a magic link
/// (openat2); kernels before 5.6 fall back to openat plus the procfs check.
fn open_attr(procfs: &OwnedFd, rel: &str) -> Result<OwnedFd, Errno> {
    let flags = OFlag::O_WRONLY | OFlag::O_CLOEXEC;
    let how = OpenHow::new()
        .flags(flags)
        .resolve(ResolveFlag::RESOLVE_NO_XDEV | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    match fcntl::openat2(procfs, rel, how) {
        Err(Errno::ENOSYS) => fcntl::openat(procfs, rel, flags, Mode::empty()),
        other => other,
    }
}

/// What `myrt features` says about an LSM on this host, for its annotations.
pub fn describe(name: &str, enabled: bool) -> String {
    match (name, enabled) {
        ("apparmor", true) => "enabled on this host: process.apparmorProfile is applied \
             (\"exec <profile>\" to /proc/thread-self/attr/apparmor/exec)"
            .into(),
        ("apparmor", false) => "not enabled on this host: a config with \
             process.apparmorProfile is refused at create, as runc fails to apply it"
            .into(),
        (_, true) => "enabled on this host: process.selinuxLabel is applied \
             (/proc/thread-self/attr/exec); linux.mountLabel is applied as context= on the \
             mounts the runtime makes"
            .into(),
        (_, false) => "not enabled on this host: a config with process.selinuxLabel is \
             refused at create, as runc refuses it; linux.mountLabel is ignored (it labels \
             files, which confines nothing without SELinux)"
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(extra: &str) -> oci_spec::runtime::Process {
        serde_json::from_str(&format!(
            r#"{{"cwd":"/","user":{{"uid":0,"gid":0}},"args":["sh"]{extra}}}"#
        ))
        .unwrap()
    }

    const NONE: HostLsm = HostLsm {
        apparmor: false,
        selinux: false,
    };
    const BOTH: HostLsm = HostLsm {
        apparmor: true,
        selinux: true,
    };

    #[test]
    fn parses_the_apparmor_parameter_and_finds_selinuxfs() {
        assert!(parse_enabled("Y\n"));
        assert!(!parse_enabled("N\n"));
        assert!(!parse_enabled(""));
        let mi = "22 1 0:21 / /proc rw,nosuid - proc proc rw\n\
                  30 22 0:27 / /sys/fs/selinux rw,relatime - selinuxfs selinuxfs rw\n";
        assert_eq!(
            selinuxfs_mount(mi).as_deref(),
            Some(Path::new("/sys/fs/selinux"))
        );
        assert_eq!(
            selinuxfs_mount("22 1 0:21 / /proc rw - proc proc rw\n"),
            None
        );
    }

    #[test]
    fn without_the_lsm_each_field_is_refused_naming_it_and_its_value() {
        let e = check(NONE, &process(r#","apparmorProfile":"myprof""#), &None)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(r#"process.apparmorProfile "myprof": AppArmor is not enabled"#),
            "{e}"
        );
        let e = check(
            NONE,
            &process(r#","selinuxLabel":"system_u:system_r:container_t:s0""#),
            &None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with(
                r#"process.selinuxLabel "system_u:system_r:container_t:s0": SELinux is not enabled"#
            ),
            "{e}"
        );
        // A mount label alone is ignored without SELinux (it confines nothing there).
        check(
            NONE,
            &process(""),
            &Some("system_u:object_r:container_file_t:s0".into()),
        )
        .unwrap();
        // Empty strings are unset (CRI writes "" for "no profile").
        check(
            NONE,
            &process(r#","apparmorProfile":"","selinuxLabel":"""#),
            &Some(String::new()),
        )
        .unwrap();
    }

    #[test]
    fn with_the_lsm_the_process_fields_are_accepted() {
        check(
            BOTH,
            &process(r#","apparmorProfile":"p","selinuxLabel":"u:r:t:s0""#),
            &None,
        )
        .unwrap();
        let only_aa = HostLsm {
            apparmor: true,
            selinux: false,
        };
        check(only_aa, &process(r#","apparmorProfile":"p""#), &None).unwrap();
        assert!(check(only_aa, &process(r#","selinuxLabel":"u:r:t:s0""#), &None).is_err());
        check(BOTH, &process(""), &Some("u:object_r:t:s0".into())).unwrap();
    }

    #[test]
    fn mount_label_becomes_context_like_format_mount_label() {
        let l = Some("system_u:object_r:container_file_t:s0:c1,c2");
        assert_eq!(
            mount_label_option("tmpfs", l).as_deref(),
            Some(r#"context="system_u:object_r:container_file_t:s0:c1,c2""#)
        );
        assert!(mount_label_option("devpts", l).is_some());
        for typ in ["bind", "proc", "sysfs", "mqueue", "cgroup", "cgroup2"] {
            assert_eq!(mount_label_option(typ, l), None, "{typ}");
        }
        assert_eq!(mount_label_option("tmpfs", None), None);
        assert_eq!(mount_label_option("tmpfs", Some("")), None);
    }

    #[test]
    fn applying_without_the_lsm_fails_naming_field_value_and_file() {
        // This host (and CI) has neither LSM: the write is refused, never silently skipped.
        if HostLsm::detect() != NONE {
            eprintln!("!!! SKIPPED: this host runs AppArmor or SELinux (see tests/lsm.rs)");
            return;
        }
        let e = apply(&process(r#","apparmorProfile":"myprof""#))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(r#"process.apparmorProfile "myprof": write /proc/thread-self/attr/"#),
            "{e}"
        );
        let e = apply(&process(r#","selinuxLabel":"u:r:t:s0""#))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                r#"process.selinuxLabel "u:r:t:s0": write /proc/thread-self/attr/exec: "#
            ),
            "{e}"
        );
        apply(&process("")).unwrap();
    }

    #[test]
    fn describe_says_what_happens_on_this_host() {
        assert!(describe("apparmor", false).contains("refused at create"));
        assert!(describe("apparmor", true).starts_with("enabled on this host"));
        assert!(describe("selinux", false).contains("linux.mountLabel"));
    }
}
