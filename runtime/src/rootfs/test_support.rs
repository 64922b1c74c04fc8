//! Helpers for tests that mount things: run the test body in a child process in private mount
//! and pid namespaces, build a busybox rootfs, write specs.

use std::path::{Path, PathBuf};
use std::process::Command;

use oci_spec::runtime::Spec;
use serde_json::{json, Value};

use super::RootfsConfig;

const CHILD_ENV: &str = "MYRT_TEST_NS_CHILD";
const DIR_ENV: &str = "MYRT_TEST_DIR";
pub(crate) const MARKER: &str = "myrt busybox rootfs\n";

/// Runs the calling test again, alone, in a child made by `unshare --mount --pid --fork
/// --propagation private --mount-proc`, with a fresh temporary directory. Returns that
/// directory in the child (run the body there) and `None` in the parent once the child passed.
/// Everything mounted in the child goes away with its namespace; the directory is removed by
/// the parent. `module` is `module_path!()`, `name` the test function's name.
pub(crate) fn ns_child(module: &str, name: &str, env: &[(&str, &str)]) -> Option<PathBuf> {
    let module = module
        .split_once("::")
        .map(|(_, rest)| rest)
        .unwrap_or(module);
    let test = format!("{module}::{name}");
    if std::env::var(CHILD_ENV).ok().as_deref() == Some(test.as_str()) {
        let dir = std::env::var(DIR_ENV).expect("the parent sets the test directory");
        return Some(PathBuf::from(dir));
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping {test}: it needs root to create namespaces and mount");
        return None;
    }
    let dir = tempfile::Builder::new()
        .prefix("myrt-rootfs-test")
        .tempdir()
        .expect("tempdir");
    let dir_path = dir.path().canonicalize().expect("canonical tempdir");
    let exe = std::env::current_exe().expect("current exe");
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--pid",
            "--fork",
            "--propagation",
            "private",
            "--mount-proc",
            "--",
        ])
        .arg(&exe)
        .args([test.as_str(), "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD_ENV, &test)
        .env(DIR_ENV, &dir_path)
        .envs(env.iter().copied())
        .output()
        .expect("run unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "namespaced child for {test} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    None
}

/// A rootfs with a static busybox and a few applets, plus /etc/marker.
pub(crate) fn busybox_rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    for d in ["bin", "proc", "sys", "dev", "etc", "tmp"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir rootfs dir");
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .expect("copy /bin/busybox (busybox-static)");
    for applet in [
        "sh", "ls", "cat", "stat", "readlink", "touch", "echo", "mkdir", "test",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))
            .expect("applet symlink");
    }
    std::fs::write(root.join("etc/marker"), MARKER).expect("write marker");
    root.canonicalize().expect("canonical rootfs")
}

/// An empty rootfs directory.
pub(crate) fn empty_rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    std::fs::create_dir_all(&root).expect("mkdir rootfs");
    root.canonicalize().expect("canonical rootfs")
}

/// The mounts `runc spec` writes.
pub(crate) fn default_mounts() -> Vec<Value> {
    vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
    ]
}

/// A spec with these mounts, mount + pid namespaces and `linux_extra` merged into "linux".
pub(crate) fn spec(mounts: Vec<Value>, linux_extra: Value, readonly_root: bool) -> Spec {
    let mut linux = json!({"namespaces": [{"type": "mount"}, {"type": "pid"}]});
    if let (Some(l), Some(extra)) = (linux.as_object_mut(), linux_extra.as_object()) {
        for (k, v) in extra {
            l.insert(k.clone(), v.clone());
        }
    }
    let v = json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs", "readonly": readonly_root},
        "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}},
        "mounts": mounts,
        "linux": linux,
    });
    serde_json::from_value(v).expect("valid test spec")
}

pub(crate) fn config<'a>(spec: &'a Spec, rootfs: &'a Path, bundle: &'a Path) -> RootfsConfig<'a> {
    RootfsConfig {
        spec,
        rootfs,
        bundle,
        no_pivot: false,
        in_user_ns: false,
    }
}

/// Mount points of this process' mount namespace.
pub(crate) fn mount_points() -> Vec<PathBuf> {
    super::mountinfo::read_self()
        .expect("read mountinfo")
        .into_iter()
        .map(|m| m.mount_point)
        .collect()
}

/// Installs a seccomp filter on this (child) process that makes openat2 fail with ENOSYS, the
/// way an old kernel or a container runtime's default profile would (crun tests the same way).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) fn deny_openat2_with_enosys() {
    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: u32 = 0xc000_003e;
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: u32 = 0xc000_00b7;
    const OFFSET_NR: u32 = 0;
    const OFFSET_ARCH: u32 = 4;
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let load = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let ret = libc::BPF_RET | libc::BPF_K;
    let mut prog = [
        stmt(load, OFFSET_ARCH),
        jump(AUDIT_ARCH, 1, 0),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
        stmt(load, OFFSET_NR),
        jump(libc::SYS_openat2 as u32, 0, 1),
        stmt(ret, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
    ];
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: plain prctl calls; `fprog` points at a filter program that lives across the call
    // (the kernel copies it).
    unsafe {
        assert_eq!(
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
            0,
            "no_new_privs"
        );
        assert_eq!(
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &fprog as *const libc::sock_fprog
            ),
            0,
            "install seccomp filter"
        );
    }
}
