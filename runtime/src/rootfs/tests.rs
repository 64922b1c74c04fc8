//! prepare/enter/finalize on real rootfs directories, each in a child process with private
//! mount and pid namespaces (see test_support::ns_child), plus the spec checks that need no
//! mounts.

use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use nix::sys::stat::{major, minor};
use nix::sys::statvfs::{statvfs, FsFlags};
use serde_json::json;

use super::test_support::{
    busybox_rootfs, config, default_mounts, empty_rootfs, mount_points, ns_child, spec, MARKER,
};
use super::*;

fn is_char(path: &str, maj: u64, min: u64) -> bool {
    match std::fs::metadata(path) {
        Ok(m) => {
            m.mode() & libc::S_IFMT == libc::S_IFCHR
                && major(m.rdev()) == maj
                && minor(m.rdev()) == min
        }
        Err(_) => false,
    }
}

fn fs_magic_of(path: &Path) -> sys::FsType {
    nix::sys::statfs::statfs(path)
        .expect("statfs")
        .filesystem_type()
}

/// From inside: "/" is the busybox rootfs, with /proc, /dev and busybox working.
fn assert_inside_busybox(host_dir: &Path) {
    assert_eq!(
        std::fs::read_to_string("/etc/marker").expect("read /etc/marker"),
        MARKER
    );
    assert!(
        !host_dir.exists(),
        "the host's test directory is visible: / is not the rootfs"
    );
    assert_eq!(std::env::current_dir().expect("cwd"), Path::new("/"));
    assert_eq!(fs_magic_of(Path::new("/proc")), sys::PROC_SUPER_MAGIC);
    assert!(is_char("/dev/null", 1, 3), "/dev/null");
    assert!(is_char("/dev/urandom", 1, 9), "/dev/urandom");
    assert_eq!(
        std::fs::read_link("/dev/ptmx").expect("readlink"),
        Path::new("pts/ptmx")
    );
    assert_eq!(
        std::fs::read_link("/dev/fd").expect("readlink"),
        Path::new("/proc/self/fd")
    );
    let out = Command::new("/bin/sh")
        .args([
            "-c",
            "cat /etc/marker && ls /dev/pts && readlink /proc/self/root",
        ])
        .output()
        .expect("run busybox sh in the rootfs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "sh failed: {out:?}");
    assert!(text.starts_with(MARKER.trim_end()), "{text}");
    assert!(text.contains("ptmx"), "{text}");
    assert!(text.trim_end().ends_with('/'), "{text}");
    // The old root is gone from the mount table.
    assert!(mount_points().iter().all(|p| !p.starts_with(host_dir)));
}

#[test]
fn prepare_and_pivot_into_a_busybox_rootfs() {
    let Some(dir) = ns_child(
        module_path!(),
        "prepare_and_pivot_into_a_busybox_rootfs",
        &[],
    ) else {
        return;
    };
    let rootfs = busybox_rootfs(&dir);
    let spec = spec(default_mounts(), json!({}), false);
    let cfg = config(&spec, &rootfs, &dir);
    prepare_rootfs(&cfg).expect("prepare_rootfs");
    enter_rootfs(&cfg).expect("enter_rootfs");
    assert_inside_busybox(&dir);
    finalize_rootfs(&cfg).expect("finalize_rootfs");
}

#[test]
fn no_pivot_moves_the_rootfs_onto_root() {
    let Some(dir) = ns_child(module_path!(), "no_pivot_moves_the_rootfs_onto_root", &[]) else {
        return;
    };
    let rootfs = busybox_rootfs(&dir);
    let spec = spec(default_mounts(), json!({}), false);
    let mut cfg = config(&spec, &rootfs, &dir);
    cfg.no_pivot = true;
    prepare_rootfs(&cfg).expect("prepare_rootfs");
    enter_rootfs(&cfg).expect("enter_rootfs");
    assert_eq!(
        std::fs::read_to_string("/etc/marker").expect("read /etc/marker"),
        MARKER
    );
    assert!(!dir.exists(), "the host's test directory is visible");
    assert!(is_char("/dev/null", 1, 3));
}

/// CVE-2019-19921, CVE-2023-27561, CVE-2023-28642: /proc or /sys as a symlink to a host
/// directory must fail, with nothing mounted there.
#[test]
fn proc_or_sys_as_a_symlink_is_refused() {
    let Some(dir) = ns_child(module_path!(), "proc_or_sys_as_a_symlink_is_refused", &[]) else {
        return;
    };
    for (name, typ) in [("proc", "proc"), ("sys", "sysfs")] {
        let rootfs = empty_rootfs(&dir.join(name));
        let outside = dir.join(format!("outside-{name}"));
        std::fs::create_dir(&outside).expect("mkdir outside");
        symlink(&outside, rootfs.join(name)).expect("symlink");
        let dest = format!("/{name}");
        let spec = spec(
            vec![json!({"destination": dest, "type": typ, "source": typ})],
            json!({}),
            false,
        );
        let cfg = config(&spec, &rootfs, &dir);
        let err = prepare_rootfs(&cfg)
            .expect_err("a symlinked target must be refused")
            .to_string();
        assert!(
            err.starts_with(&format!(
                "mounts[0] (destination \"/{name}\"): target is a symlink"
            )),
            "{err}"
        );
        assert!(err.contains("CVE-2019-19921"), "{err}");
        assert!(
            !mount_points().contains(&outside),
            "{typ} was mounted outside the rootfs"
        );
        assert_eq!(
            std::fs::read_dir(&outside).expect("read outside").count(),
            0
        );
    }
}

/// A bind target that is a symlink to /etc lands on the rootfs' /etc, with openat2 and with
/// the walk (CVE-2021-30465). Relative sources are bundle-relative.
fn bind_through_symlink(dir: &Path, expect: safe_path::Resolver) {
    let rootfs = empty_rootfs(dir);
    std::fs::create_dir(rootfs.join("etc")).expect("mkdir etc");
    symlink("/etc", rootfs.join("data")).expect("symlink");
    let src = dir.join("src");
    std::fs::create_dir(&src).expect("mkdir src");
    std::fs::write(src.join("from-bind"), "bound").expect("write");
    let spec = spec(
        vec![
            json!({"destination": "/data", "type": "bind", "source": src, "options": ["rbind", "ro"]}),
            json!({"destination": "/rel", "type": "none", "source": "src", "options": ["bind"]}),
        ],
        json!({}),
        false,
    );
    let cfg = config(&spec, &rootfs, dir);
    prepare_rootfs(&cfg).expect("prepare_rootfs");
    assert_eq!(RootDir::new(&rootfs).expect("root").resolver(), expect);
    assert_eq!(
        std::fs::read_to_string(rootfs.join("etc/from-bind")).expect("read"),
        "bound"
    );
    assert!(
        !Path::new("/etc/from-bind").exists(),
        "the bind landed on the host's /etc"
    );
    let mounts = mount_points();
    assert!(mounts.contains(&rootfs.join("etc")));
    assert!(!mounts.contains(&Path::new("/etc").to_path_buf()));
    let err = std::fs::write(rootfs.join("etc/new"), "x").expect_err("ro bind");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    assert_eq!(
        std::fs::read_to_string(rootfs.join("rel/from-bind")).expect("read"),
        "bound"
    );
}

#[test]
fn bind_through_symlink_lands_inside_rootfs() {
    let env = [(safe_path::NO_OPENAT2_ENV, "0")];
    let Some(dir) = ns_child(
        module_path!(),
        "bind_through_symlink_lands_inside_rootfs",
        &env,
    ) else {
        return;
    };
    bind_through_symlink(&dir, safe_path::Resolver::Openat2);
}

#[test]
fn bind_through_symlink_lands_inside_rootfs_without_openat2() {
    let env = [(safe_path::NO_OPENAT2_ENV, "1")];
    let Some(dir) = ns_child(
        module_path!(),
        "bind_through_symlink_lands_inside_rootfs_without_openat2",
        &env,
    ) else {
        return;
    };
    bind_through_symlink(&dir, safe_path::Resolver::Walk);
}

/// openat2 failing with ENOSYS (seccomp) switches to the walk, which still stays inside.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[test]
fn bind_through_symlink_lands_inside_rootfs_when_openat2_is_enosys() {
    let env = [(safe_path::NO_OPENAT2_ENV, "0")];
    let name = "bind_through_symlink_lands_inside_rootfs_when_openat2_is_enosys";
    let Some(dir) = ns_child(module_path!(), name, &env) else {
        return;
    };
    super::test_support::deny_openat2_with_enosys();
    bind_through_symlink(&dir, safe_path::Resolver::Walk);
}

/// CVE-2021-30465: a bind target swapped with a symlink to a host directory while mounts run
/// (renameat2 RENAME_EXCHANGE in a loop) never gets a mount outside the rootfs.
#[test]
fn bind_target_swap_race_never_mounts_outside() {
    let name = "bind_target_swap_race_never_mounts_outside";
    let Some(dir) = ns_child(module_path!(), name, &[]) else {
        return;
    };
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let rootfs = empty_rootfs(&dir);
    let outside = dir.join("outside");
    std::fs::create_dir_all(outside.join("target")).expect("mkdir outside");
    // The swapped entry is the target's parent: a mount point itself cannot be renamed.
    std::fs::create_dir_all(rootfs.join("data/target")).expect("mkdir data");
    symlink(&outside, rootfs.join("alt")).expect("symlink");
    let src = dir.join("src");
    std::fs::create_dir(&src).expect("mkdir src");
    let spec = spec(
        vec![
            json!({"destination": "/data/target", "type": "bind", "source": src, "options": ["bind"]}),
        ],
        json!({}),
        false,
    );
    let cfg = config(&spec, &rootfs, &dir);
    let root = RootDir::new(&rootfs).expect("root");
    let mounter = mounts::Mounter::new(&cfg, &root);
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, rootfs) = (stop.clone(), rootfs.clone());
        std::thread::spawn(move || {
            let dirfd = std::fs::File::open(&rootfs).expect("open rootfs");
            while !stop.load(Ordering::Relaxed) {
                let _ = nix::fcntl::renameat2(
                    &dirfd,
                    "data",
                    &dirfd,
                    "alt",
                    nix::fcntl::RenameFlags::RENAME_EXCHANGE,
                );
            }
        })
    };
    let mut mounted = 0;
    for _ in 0..300 {
        if mounter
            .mount_spec(0, &spec.mounts().as_ref().expect("mounts")[0])
            .is_ok()
        {
            mounted += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().expect("swapper");
    assert!(mounted > 0, "no mount succeeded at all");
    let points = mount_points();
    assert!(
        points.iter().all(|p| !p.starts_with(&outside)),
        "a mount landed outside the rootfs"
    );
    assert!(points
        .iter()
        .filter(|p| p.starts_with(&dir))
        .all(|p| p.starts_with(&rootfs)));
}

#[test]
fn mount_errors_name_the_mount() {
    let Some(dir) = ns_child(module_path!(), "mount_errors_name_the_mount", &[]) else {
        return;
    };
    let rootfs = empty_rootfs(&dir);
    let nope = dir.join("nope");
    let spec1 = spec(
        vec![json!({"destination": "/data", "type": "bind", "source": nope, "options": ["rbind"]})],
        json!({}),
        false,
    );
    let err = prepare_rootfs(&config(&spec1, &rootfs, &dir)).expect_err("missing source");
    assert_eq!(
        err.to_string(),
        format!("mounts[0]: mount \"/data\" type \"bind\" source {:?}: no such file or directory (ENOENT)", nope.display().to_string())
    );
    let spec2 = spec(
        vec![json!({"destination": "/x", "type": "myrtfs", "source": "none"})],
        json!({}),
        false,
    );
    let err = prepare_rootfs(&config(&spec2, &rootfs, &dir))
        .expect_err("unknown type")
        .to_string();
    assert!(
        err.contains("type \"myrtfs\"") && err.contains("(ENODEV)"),
        "{err}"
    );
    let spec3 = spec(
        vec![json!({"destination": "/proc/sys/x", "type": "tmpfs", "source": "tmpfs"})],
        json!({}),
        false,
    );
    let err = prepare_rootfs(&config(&spec3, &rootfs, &dir))
        .expect_err("inside /proc")
        .to_string();
    assert!(err.contains("inside /proc"), "{err}");
}

#[test]
fn masked_readonly_and_readonly_root() {
    let Some(dir) = ns_child(module_path!(), "masked_readonly_and_readonly_root", &[]) else {
        return;
    };
    let rootfs = busybox_rootfs(&dir);
    std::fs::write(rootfs.join("etc/secret"), "s3cret").expect("write");
    std::fs::create_dir_all(rootfs.join("secretdir")).expect("mkdir");
    std::fs::write(rootfs.join("secretdir/file"), "x").expect("write");
    std::fs::create_dir_all(rootfs.join("rodir")).expect("mkdir");
    let mut mounts = default_mounts();
    mounts.push(
        json!({"destination": "/rotmp", "type": "tmpfs", "source": "tmpfs", "options": ["ro"]}),
    );
    let linux = json!({
        "maskedPaths": ["/etc/secret", "/secretdir", "/proc/kcore", "/does/not/exist"],
        "readonlyPaths": ["/rodir", "/proc/sys"],
    });
    let spec = spec(mounts, linux, true);
    let cfg = config(&spec, &rootfs, &dir);
    prepare_rootfs(&cfg).expect("prepare_rootfs");
    enter_rootfs(&cfg).expect("enter_rootfs");
    finalize_rootfs(&cfg).expect("finalize_rootfs");
    assert!(is_char("/etc/secret", 1, 3), "masked file is not /dev/null");
    assert_eq!(std::fs::read_to_string("/etc/secret").expect("read"), "");
    assert_eq!(
        std::fs::read_dir("/secretdir").expect("read dir").count(),
        0
    );
    let err = std::fs::write("/secretdir/new", "x").expect_err("masked dir is ro");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    if Path::new("/proc/kcore").exists() {
        assert!(is_char("/proc/kcore", 1, 3));
    }
    let err = std::fs::write("/rodir/new", "x").expect_err("read-only path");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    assert!(statvfs("/proc/sys")
        .expect("statvfs")
        .flags()
        .contains(FsFlags::ST_RDONLY));
    assert!(statvfs("/rotmp")
        .expect("statvfs")
        .flags()
        .contains(FsFlags::ST_RDONLY));
    let err = std::fs::write("/newfile", "x").expect_err("read-only root");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    // /dev is still writable.
    std::fs::write("/dev/shm/x", "x").expect("write to /dev/shm");
}

/// CVE-2025-31133: /dev/null swapped for a symlink to a procfs file must stop masking.
#[test]
fn masking_with_a_fake_dev_null_is_refused() {
    let Some(dir) = ns_child(
        module_path!(),
        "masking_with_a_fake_dev_null_is_refused",
        &[],
    ) else {
        return;
    };
    let rootfs = busybox_rootfs(&dir);
    std::fs::write(rootfs.join("etc/secret"), "s3cret").expect("write");
    let devsrc = dir.join("devsrc");
    std::fs::create_dir(&devsrc).expect("mkdir");
    symlink("/proc/sys/kernel/core_pattern", devsrc.join("null")).expect("symlink");
    let mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "bind", "source": devsrc, "options": ["rbind"]}),
    ];
    let spec = spec(mounts, json!({"maskedPaths": ["/etc/secret"]}), false);
    let cfg = config(&spec, &rootfs, &dir);
    prepare_rootfs(&cfg).expect("prepare_rootfs");
    enter_rootfs(&cfg).expect("enter_rootfs");
    let err = finalize_rootfs(&cfg)
        .expect_err("fake /dev/null")
        .to_string();
    assert!(err.contains("CVE-2025-31133"), "{err}");
    assert_eq!(
        std::fs::read_to_string("/etc/secret").expect("read"),
        "s3cret"
    );
}

#[test]
fn devices_are_created_inside_even_through_a_dev_symlink() {
    let Some(dir) = ns_child(
        module_path!(),
        "devices_are_created_inside_even_through_a_dev_symlink",
        &[],
    ) else {
        return;
    };
    let rootfs = empty_rootfs(&dir);
    let hostdev = dir.join("hostdev");
    std::fs::create_dir(&hostdev).expect("mkdir");
    // rootfs/dev -> <host dir>: nothing may be created in the host directory.
    symlink(&hostdev, rootfs.join("dev")).expect("symlink");
    let devices = json!({"devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                                      "fileMode": 0o600, "uid": 1000, "gid": 1001}]});
    let spec = spec(
        vec![json!({"destination": "/proc", "type": "proc", "source": "proc"})],
        devices,
        false,
    );
    let cfg = config(&spec, &rootfs, &dir);
    prepare_rootfs(&cfg).expect("prepare_rootfs");
    assert_eq!(
        std::fs::read_dir(&hostdev).expect("read").count(),
        0,
        "wrote into the host directory"
    );
    let inside = rootfs.join(hostdev.strip_prefix("/").expect("absolute"));
    let null = std::fs::metadata(inside.join("null")).expect("null inside");
    assert_eq!((major(null.rdev()), minor(null.rdev())), (1, 3));
    assert_eq!(null.permissions().mode() & 0o7777, 0o666);
    let fuse = std::fs::metadata(inside.join("fuse")).expect("fuse inside");
    assert_eq!((major(fuse.rdev()), minor(fuse.rdev())), (10, 229));
    assert_eq!(fuse.permissions().mode() & 0o7777, 0o600);
    assert_eq!((fuse.uid(), fuse.gid()), (1000, 1001));
    assert_eq!(
        std::fs::read_link(inside.join("ptmx")).expect("ptmx"),
        Path::new("pts/ptmx")
    );
    assert_eq!(
        std::fs::read_link(inside.join("stdin")).expect("stdin"),
        Path::new("/proc/self/fd/0")
    );
}

/// "rro" makes submounts read-only too (mount_setattr), "shared" is applied after the mount.
#[test]
fn recursive_read_only_bind_and_propagation() {
    let name = "recursive_read_only_bind_and_propagation";
    let Some(dir) = ns_child(module_path!(), name, &[]) else {
        return;
    };
    let rootfs = empty_rootfs(&dir);
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("sub")).expect("mkdir");
    sys::mount(
        Some(Path::new("tmpfs")),
        &src.join("sub"),
        Some("tmpfs"),
        0,
        None,
    )
    .expect("tmpfs in source");
    let spec = spec(
        vec![
            json!({"destination": "/data", "type": "bind", "source": src, "options": ["rbind", "rro", "shared"]}),
        ],
        json!({}),
        false,
    );
    prepare_rootfs(&config(&spec, &rootfs, &dir)).expect("prepare_rootfs");
    for p in ["data/x", "data/sub/x"] {
        let err = std::fs::write(rootfs.join(p), "x").expect_err("recursively read-only");
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{p}");
    }
    let infos = mountinfo::read_self().expect("mountinfo");
    let data = mountinfo::parent_mount(&infos, &rootfs.join("data")).expect("data mount");
    assert_eq!(data.mount_point, rootfs.join("data"));
    assert!(
        data.optional.iter().any(|o| o.starts_with("shared:")),
        "{:?}",
        data.optional
    );
}

/// In a user namespace nodes are bound from the host instead of made with mknod.
#[test]
fn devices_are_bound_from_the_host_in_a_user_namespace() {
    let name = "devices_are_bound_from_the_host_in_a_user_namespace";
    let Some(dir) = ns_child(module_path!(), name, &[]) else {
        return;
    };
    let rootfs = empty_rootfs(&dir);
    let spec = spec(
        vec![
            json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]}),
        ],
        json!({}),
        false,
    );
    let mut cfg = config(&spec, &rootfs, &dir);
    cfg.in_user_ns = true;
    prepare_rootfs(&cfg).expect("prepare_rootfs");
    let null = std::fs::metadata(rootfs.join("dev/null")).expect("stat");
    assert_eq!((major(null.rdev()), minor(null.rdev())), (1, 3));
    assert!(
        mount_points().contains(&rootfs.join("dev/null")),
        "/dev/null is not a bind mount"
    );
}

#[test]
fn tmpfs_keeps_the_mode_and_copies_up() {
    let Some(dir) = ns_child(module_path!(), "tmpfs_keeps_the_mode_and_copies_up", &[]) else {
        return;
    };
    let rootfs = empty_rootfs(&dir);
    std::fs::create_dir_all(rootfs.join("data/sub")).expect("mkdir");
    std::fs::write(rootfs.join("data/sub/keep"), "k").expect("write");
    std::fs::set_permissions(rootfs.join("data"), std::fs::Permissions::from_mode(0o1770))
        .expect("chmod");
    let spec = spec(
        vec![
            json!({"destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup", "nodev"]}),
        ],
        json!({}),
        false,
    );
    prepare_rootfs(&config(&spec, &rootfs, &dir)).expect("prepare_rootfs");
    assert_eq!(
        fs_magic_of(&rootfs.join("data")),
        nix::sys::statfs::TMPFS_MAGIC
    );
    let mode = std::fs::metadata(rootfs.join("data"))
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o1770);
    assert_eq!(
        std::fs::read_to_string(rootfs.join("data/sub/keep")).expect("copied"),
        "k"
    );
}

#[test]
fn cgroup_mount_shows_the_own_cgroup() {
    let Some(dir) = ns_child(module_path!(), "cgroup_mount_shows_the_own_cgroup", &[]) else {
        return;
    };
    let rootfs = empty_rootfs(&dir);
    let spec = spec(
        vec![
            json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
            json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                   "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
        ],
        json!({}),
        false,
    );
    prepare_rootfs(&config(&spec, &rootfs, &dir)).expect("prepare_rootfs");
    let cg = rootfs.join("sys/fs/cgroup");
    let own =
        cgroup::parse_proc_cgroup(&std::fs::read_to_string("/proc/self/cgroup").expect("read"));
    if fs_magic_of(Path::new("/sys/fs/cgroup")) == sys::CGROUP2_SUPER_MAGIC {
        assert_eq!(fs_magic_of(&cg), sys::CGROUP2_SUPER_MAGIC);
        return;
    }
    assert_eq!(fs_magic_of(&cg), nix::sys::statfs::TMPFS_MAGIC);
    let mem = own
        .iter()
        .find(|c| c.controllers.iter().any(|x| x == "memory"))
        .expect("memory cgroup");
    let host =
        Path::new("/sys/fs/cgroup/memory").join(mem.path.strip_prefix("/").expect("absolute"));
    let (inside, outside) = (
        std::fs::metadata(cg.join("memory")).expect("stat"),
        std::fs::metadata(&host).expect("stat"),
    );
    assert_eq!(
        (inside.dev(), inside.ino()),
        (outside.dev(), outside.ino()),
        "not the own memory cgroup"
    );
    let err = std::fs::create_dir(cg.join("memory/child")).expect_err("read-only cgroup");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    let err = std::fs::create_dir(cg.join("new")).expect_err("read-only tmpfs");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
}

fn entry(m: serde_json::Value) -> Result<mounts::Entry, RootfsError> {
    let mount: Mount = serde_json::from_value(m).expect("mount json");
    let spec = spec(vec![], json!({}), false);
    let cfg = config(&spec, Path::new("/r"), Path::new("/bundle"));
    mounts::Entry::from_spec(&cfg, 4, &mount)
}

#[test]
fn spec_mount_entries_are_checked() {
    let e = entry(
        json!({"destination": "/a/../b/", "source": "data", "options": ["rbind", "rprivate"]}),
    )
    .expect("bind");
    assert_eq!(e.dest, Path::new("/b"));
    assert_eq!(e.fstype, "bind");
    assert_eq!(e.source.as_deref(), Some(Path::new("/bundle/data")));
    assert_eq!(e.opts.propagation, vec![libc::MS_PRIVATE | libc::MS_REC]);
    let e = entry(json!({"destination": "/x", "type": "bind", "source": "/s"})).expect("type bind");
    assert!(e.opts.is_bind());
    for (m, want) in [
        (
            json!({"destination": "rel", "type": "tmpfs"}),
            "mounts[4] (destination \"rel\"): destination must be an absolute path",
        ),
        (
            json!({"destination": "/", "type": "tmpfs"}),
            "mounting over the root",
        ),
        (
            json!({"destination": "/x", "options": ["bind"]}),
            "a bind mount needs a source",
        ),
        (
            json!({"destination": "/x", "source": "/s", "options": ["bind", "idmap"]}),
            "takes the container's user namespace mapping",
        ),
        (
            json!({"destination": "/x", "source": "/s"}),
            "type is empty",
        ),
    ] {
        let err = entry(m).expect_err(want).to_string();
        assert!(err.contains(want), "{err} does not contain {want}");
    }
}

#[test]
fn dev_setup_is_skipped_only_for_a_dev_bind() {
    let s = spec(default_mounts(), json!({}), false);
    assert!(config(&s, Path::new("/r"), Path::new("/b")).needs_dev_setup());
    let s = spec(
        vec![
            json!({"destination": "/dev/", "type": "bind", "source": "/dev", "options": ["rbind"]}),
        ],
        json!({}),
        false,
    );
    assert!(!config(&s, Path::new("/r"), Path::new("/b")).needs_dev_setup());
}
