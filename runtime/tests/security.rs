//! Container-escape regression tests at the engine level (/work/shared/notes/security.md): each
//! builds the malicious bundle of one advisory, runs the `myrt` binary on it and asserts the
//! invariant, by the engine's error text or by the state of the host and the container.
//!
//! The path-resolution cases run three ways (see [`Resolver`]): as is (openat2), with
//! `MYRT_NO_OPENAT2=1` in myrt's environment, and under a seccomp filter that makes openat2
//! fail with ENOSYS in myrt and every process it starts (crun's trick), so the component walk
//! of `rootfs::safe_path` and of the sysctl writer is exercised too.
//! The race loops live in security_race.rs. CVE-2019-5736 is the shim's test.

mod common;
mod security_support;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use common::{isolate, Env};
use security_support::*;
use serde_json::json;

/// The spec's mounts without the one at `dest`.
fn drop_mount(env: &Env, dest: &str) {
    env.edit(|c| {
        c["mounts"]
            .as_array_mut()
            .expect("mounts")
            .retain(|m| m["destination"] != dest)
    });
}

fn push_mount(env: &Env, m: serde_json::Value) {
    env.edit(|c| c["mounts"].as_array_mut().expect("mounts").push(m));
}

/// CVE-2019-16884: a volume over /proc (or over /proc/self/attr, /proc/sys) carrying fake
/// files is refused before anything is written, with the /proc writes asked for (sysctl,
/// oomScoreAdj); the fake files stay as they were. (LSM labels are refused outright on a host
/// without SELinux/AppArmor, so no label write exists here to redirect.)
#[test]
fn cve_2019_16884_fake_proc_volumes_are_refused() {
    if !isolate() {
        return;
    }
    let env = Env::new("cve-2019-16884", &["sh", "-c", "echo RAN"]);
    let fake = env.path("fakeproc");
    for (file, text) in [
        ("self/attr/current", "fake-label"),
        ("self/attr/exec", "fake-label"),
        ("self/oom_score_adj", "0"),
        ("sys/net/ipv4/ip_forward", "0"),
    ] {
        fs::create_dir_all(fake.join(file).parent().expect("parent")).expect("mkdir fake");
        fs::write(fake.join(file), text).expect("write fake");
    }
    let before = snapshot(&fake);
    env.edit(|c| {
        c["process"]["oomScoreAdj"] = json!(123);
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    });
    let bind = |src: &Path, dest: &str| json!({"destination": dest, "type": "bind", "source": src, "options": ["rbind", "rw"]});
    let with_proc = env.config();
    let cases = [
        (
            "/proc",
            fake.clone(),
            r#"(destination "/proc"): "/proc" is /proc, and only a procfs may be mounted there"#,
        ),
        (
            "/proc/self/attr",
            fake.join("self/attr"),
            r#"(destination "/proc/self/attr"): "/proc/self/attr" cannot be mounted because it is inside /proc"#,
        ),
        (
            "/proc/sys",
            fake.join("sys"),
            r#"(destination "/proc/sys"): "/proc/sys" cannot be mounted because it is inside /proc"#,
        ),
    ];
    for (dest, src, want) in cases {
        env.edit(|c| *c = with_proc.clone());
        if dest == "/proc" {
            drop_mount(&env, "/proc");
        }
        push_mount(&env, bind(&src, dest));
        for r in RESOLVERS {
            let out = run_in(&env, r);
            assert_refused(&out, &[want], &format!("{dest} {r:?}"));
            assert_eq!(snapshot(&fake), before, "{dest} {r:?}: a fake file changed");
        }
    }
    // With the real procfs, oomScoreAdj lands on the container's own /proc/self, even where
    // the rootfs' (hidden) /proc directory holds a fake file of that name.
    env.edit(|c| {
        *c = with_proc;
        c["process"]["args"] = json!(["cat", "/proc/self/oom_score_adj"]);
    });
    let hidden = env.bundle.join("rootfs/proc/self");
    fs::create_dir_all(&hidden).expect("mkdir hidden");
    fs::write(hidden.join("oom_score_adj"), "0").expect("write hidden");
    let out = run_in(&env, Resolver::Openat2);
    assert!(out.success(), "{out:?}");
    assert_eq!(out.stdout, "123\n");
    assert_eq!(
        fs::read_to_string(hidden.join("oom_score_adj")).unwrap(),
        "0"
    );
}

/// CVE-2019-19921, CVE-2023-27561, CVE-2023-28642: /proc or /sys of the rootfs as a symlink
/// (into a shared volume, absolute or relative, or even inside the rootfs) makes create fail;
/// nothing is mounted in the volume.
#[test]
fn cve_2019_19921_cve_2023_27561_cve_2023_28642_symlinked_proc_and_sys_are_refused() {
    if !isolate() {
        return;
    }
    let env = Env::new("cve-2023-28642", &["sh", "-c", "echo RAN"]);
    let vol = env.path("volume");
    fs::create_dir_all(vol.join("data")).expect("mkdir volume");
    let before = snapshot(&vol);
    let rootfs = env.bundle.join("rootfs");
    fs::create_dir_all(rootfs.join("inside")).expect("mkdir inside");
    for (name, fstype) in [("proc", "proc"), ("sys", "sysfs")] {
        let links = [
            vol.to_str().expect("utf-8").to_string(),
            "../../volume".to_string(),
            "/inside".to_string(),
        ];
        for target in &links {
            fs::remove_dir_all(rootfs.join(name))
                .or_else(|_| fs::remove_file(rootfs.join(name)))
                .expect("remove");
            symlink(target, rootfs.join(name)).expect("symlink");
            let want = format!(
                "(destination \"/{name}\"): target is a symlink: refusing to mount {fstype} (CVE-2019-19921, CVE-2023-27561, CVE-2023-28642); it must be mounted on an ordinary directory"
            );
            for r in RESOLVERS {
                let out = run_in(&env, r);
                let what = format!("{name} -> {target} {r:?}");
                assert_refused(&out, &[&want], &what);
                assert_eq!(snapshot(&vol), before, "{what}: the volume changed");
                assert_eq!(mounts_under(&vol), Vec::<String>::new(), "{what}");
            }
        }
        fs::remove_file(rootfs.join(name)).expect("rm link");
        fs::create_dir(rootfs.join(name)).expect("mkdir back");
    }
}

/// CVE-2024-21626: process.cwd = /proc/self/fd/N fails for every N in 3..=64, with an error
/// about process.cwd, and the program never runs; the same for `myrt exec --cwd`.
#[test]
fn cve_2024_21626_cwd_through_proc_self_fd_always_fails() {
    if !isolate() {
        return;
    }
    let env = Env::new("cve-2024-21626", &["sh", "-c", "echo ESCAPED; pwd"]);
    let rootfs = env.bundle.join("rootfs");
    let before: Vec<String> = snapshot(&rootfs).into_keys().collect();
    let mut kinds = std::collections::BTreeMap::<String, Vec<i32>>::new();
    for n in 3..=64 {
        let cwd = format!("/proc/self/fd/{n}");
        env.edit(|c| c["process"]["cwd"] = json!(cwd));
        // The walk resolves process.cwd in every mode: the ENOSYS run for a few fds is enough.
        let modes: &[Resolver] = if n <= 8 {
            &RESOLVERS
        } else {
            &[Resolver::Openat2]
        };
        for &r in modes {
            let out = run_in(&env, r);
            let what = format!("cwd {cwd} {r:?}");
            assert!(!out.success(), "{what}: ran: {out:?}");
            assert!(!out.stdout.contains("ESCAPED"), "{what}: {out:?}");
            let kind = cwd_error_kind(&out.stderr, &cwd)
                .unwrap_or_else(|| panic!("{what}: not the cwd error: {}", out.stderr));
            kinds.entry(kind).or_default().push(n);
        }
    }
    eprintln!("create with cwd /proc/self/fd/N: {kinds:?}");
    // Nothing was made in the rootfs by following a magic link's text (the walk once created
    // the host path of a leaked directory fd inside the rootfs).
    let after: Vec<String> = snapshot(&rootfs).into_keys().collect();
    assert_eq!(
        after, before,
        "process.cwd setup created paths in the rootfs"
    );
    // exec --cwd into a running container.
    env.edit(|c| {
        c["process"]["cwd"] = json!("/");
        c["process"]["args"] = json!(["sleep", "1000"]);
    });
    env.create(&[]);
    env.ok(&["start", &env.id]);
    let mut kinds = std::collections::BTreeMap::<String, Vec<i32>>::new();
    for n in 3..=64 {
        let cwd = format!("/proc/self/fd/{n}");
        let out = env.myrt(&[
            "exec",
            "--cwd",
            &cwd,
            &env.id,
            "sh",
            "-c",
            "echo ESCAPED; pwd",
        ]);
        assert!(!out.success(), "exec --cwd {cwd}: ran: {out:?}");
        assert!(!out.stdout.contains("ESCAPED"), "exec --cwd {cwd}: {out:?}");
        let kind = cwd_error_kind(&out.stderr, &cwd)
            .unwrap_or_else(|| panic!("exec --cwd {cwd}: not the cwd error: {}", out.stderr));
        kinds.entry(kind).or_default().push(n);
    }
    eprintln!("exec --cwd /proc/self/fd/N: {kinds:?}");
    env.ok(&["delete", "--force", &env.id]);
}

/// The kind of process.cwd error `stderr` holds for `cwd`, or None when it is another error.
fn cwd_error_kind(stderr: &str, cwd: &str) -> Option<String> {
    let line = stderr.lines().find(|l| l.contains("process.cwd"))?;
    if !line.contains(cwd) {
        return None;
    }
    [
        "magic link",
        "CVE-2024-21626",
        "no such file or directory",
        "not a directory",
    ]
    .into_iter()
    .find(|k| line.contains(k))
    .map(str::to_string)
}

/// CVE-2024-21626: the running container's fd table holds only 0, 1, 2 and the fds passed
/// with --preserve-fds; the same for a process started with exec.
#[test]
fn cve_2024_21626_container_fd_table_holds_only_stdio_and_passed_fds() {
    if !isolate() {
        return;
    }
    let env = Env::new("cve-2024-21626-fds", &["sleep", "1000"]);
    env.create(&[]);
    env.ok(&["start", &env.id]);
    assert_eq!(fd_table(env.pid()), vec![0, 1, 2], "init");
    let pid_file = env.path("exec.pid");
    env.ok(&[
        "exec",
        "-d",
        "--pid-file",
        pid_file.to_str().expect("utf-8"),
        &env.id,
        "sleep",
        "1000",
    ]);
    let exec_pid: i32 = fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert_eq!(fd_table(exec_pid), vec![0, 1, 2], "exec'd process");
    env.ok(&["delete", "--force", &env.id]);
    // Two fds passed on purpose: exactly 0..=4.
    let passed = [env.path("fd3"), env.path("fd4")];
    let files: Vec<fs::File> = passed
        .iter()
        .map(|p| fs::File::create(p).expect("create passed file"))
        .collect();
    let out = spawn_with_fds(&env, &files, &["run", "-d", "--preserve-fds", "2"]);
    assert!(out.success(), "{out:?}");
    assert_eq!(
        fd_table(env.pid()),
        vec![0, 1, 2, 3, 4],
        "init with --preserve-fds 2"
    );
    env.ok(&["delete", "--force", &env.id]);
}

/// CVE-2025-31133: the rootfs' /dev/null is a symlink to a procfs file, /dev is the rootfs'
/// own (no tmpfs) and maskedPaths are set: create fails naming /dev/null; the host's target
/// file is unchanged. With a sound /dev/null, masked files are char 1:3 and masked
/// directories read-only.
#[test]
fn cve_2025_31133_dev_null_symlink_is_refused_and_masks_are_null() {
    if !isolate() {
        return;
    }
    let env = Env::new("cve-2025-31133", &["sh", "-c", "echo RAN"]);
    // The sound case first (default config: /dev is a tmpfs).
    env.edit(|c| {
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "stat -c '%n %t:%T' /proc/keys /proc/timer_list; touch /sys/firmware/x 2>/dev/null || echo RO"
        ])
    });
    let out = run_in(&env, Resolver::Openat2);
    assert!(out.success(), "{out:?}");
    assert_eq!(out.stdout, "/proc/keys 1:3\n/proc/timer_list 1:3\nRO\n");
    drop_mount(&env, "/dev");
    env.edit(|c| c["process"]["args"] = json!(["sh", "-c", "echo RAN"]));
    let core_pattern = Path::new("/proc/sys/kernel/core_pattern");
    let host_before = fs::read(core_pattern).expect("read core_pattern");
    let null = env.bundle.join("rootfs/dev/null");
    for target in [
        "/proc/sys/kernel/core_pattern",
        "../proc/sys/kernel/core_pattern",
        "/etc/hostname",
    ] {
        let _ = fs::remove_file(&null);
        symlink(target, &null).expect("symlink /dev/null");
        for r in RESOLVERS {
            let out = run_in(&env, r);
            let what = format!("/dev/null -> {target} {r:?}");
            assert_refused(
                &out,
                &["/dev/null: the container's /dev/null is not the null device (char 1:3)"],
                &what,
            );
            assert_eq!(fs::read(core_pattern).unwrap(), host_before, "{what}");
        }
    }
}

/// CVE-2025-52565: with a terminal, a symlinked /dev/console or a /dev/pts/ptmx that is not on
/// devpts is refused; otherwise /dev/console in the container is a devpts pty (major 136).
#[test]
fn cve_2025_52565_console_is_a_devpts_pty_or_refused() {
    if !isolate() {
        return;
    }
    let env = Env::new(
        "cve-2025-52565",
        &[
            "sh",
            "-c",
            "stat -c 'console %t' /dev/console; stat -f -c 'fs %t' /dev/console",
        ],
    );
    env.edit(|c| c["process"]["terminal"] = json!(true));
    let text = run_with_console(&env, Resolver::Openat2).expect("sound console");
    assert!(text.contains("console 88\r\n"), "{text:?}");
    assert!(text.contains("fs 1cd1\r\n"), "{text:?}");
    env.ok(&["delete", "--force", &env.id]);
    // The rootfs' own /dev from here on.
    drop_mount(&env, "/dev");
    let dev = env.bundle.join("rootfs/dev");
    for target in ["pts/0", "/proc/sys/kernel/core_pattern", "../etc/hostname"] {
        let _ = fs::remove_file(dev.join("console"));
        symlink(target, dev.join("console")).expect("symlink console");
        for r in RESOLVERS {
            let out = create_with_console(&env, r);
            assert_refused(
                &out,
                &["/dev/console in the container is a symlink or a directory: refusing to mount the terminal there (CVE-2025-52565)"],
                &format!("/dev/console -> {target} {r:?}"),
            );
        }
    }
    fs::remove_file(dev.join("console")).expect("rm console");
    // No devpts: /dev/pts/ptmx is a ptmx node on the rootfs' filesystem (the kernel finds no
    // devpts next to it), or a plain file (the engine's devpts check).
    drop_mount(&env, "/dev/pts");
    fs::create_dir_all(dev.join("pts")).expect("mkdir pts");
    let ptmx = dev.join("pts/ptmx");
    nix::sys::stat::mknod(
        &ptmx,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(5, 2),
    )
    .expect("mknod ptmx");
    for r in RESOLVERS {
        let out = create_with_console(&env, r);
        assert_refused(
            &out,
            &[r#"console: open "/dev/pts/ptmx" in root "/": no such file or directory"#],
            &format!("ptmx node {r:?}"),
        );
    }
    fs::remove_file(&ptmx).expect("rm ptmx");
    fs::write(&ptmx, "").expect("plain ptmx");
    for r in RESOLVERS {
        let out = create_with_console(&env, r);
        assert_refused(
            &out,
            &[
                r#"console: "/dev/pts/ptmx" is not on devpts"#,
                "(CVE-2025-52565)",
            ],
            &format!("ptmx file {r:?}"),
        );
    }
}

/// CVE-2025-52881: a mount over a /proc/sys file plus a sysctl for that key never makes the
/// write succeed into the overmount: config mounts there are refused, and one made behind the
/// engine's back (a createContainer hook, standing in for a racing container) makes the sysctl
/// fail naming the path, whether the overmount is a plain file or another procfs file.
#[test]
fn cve_2025_52881_overmounted_sysctl_fails_loudly() {
    if !isolate() {
        return;
    }
    let env = Env::new("cve-2025-52881", &["hostname"]);
    let fake = env.path("fake-domainname");
    fs::write(&fake, "fake\n").expect("write fake");
    let base = env.config();
    for dest in ["/proc/sys/kernel/domainname", "/proc/self/sched"] {
        env.edit(|c| {
            *c = base.clone();
            c["linux"]["sysctl"] = json!({"kernel.domainname": "evil.example"});
            c["mounts"].as_array_mut().expect("mounts").push(
                json!({"destination": dest, "type": "bind", "source": fake, "options": ["bind"]}),
            );
        });
        let want = format!(
            "(destination \"{dest}\"): \"{dest}\" cannot be mounted because it is inside /proc"
        );
        for r in RESOLVERS {
            assert_refused(
                &run_in(&env, r),
                &[&want],
                &format!("mount over {dest} {r:?}"),
            );
        }
    }
    let target = env.bundle.join("rootfs/proc/sys/kernel/domainname");
    for src in [fake.as_path(), Path::new("/proc/sys/kernel/hostname")] {
        env.edit(|c| {
            *c = base.clone();
            c["hostname"] = json!("box");
            c["linux"]["sysctl"] = json!({"kernel.domainname": "evil.example"});
        });
        add_hook(
            &env,
            &format!("mount --bind {} {}", src.display(), target.display()),
        );
        for r in RESOLVERS {
            let out = run_in(&env, r);
            let what = format!("hook binds {} {r:?}", src.display());
            assert!(
                !out.stdout.contains("evil"),
                "{what}: the write went into the overmount: {out:?}"
            );
            assert!(!out.success(), "{what}: succeeded: {out:?}");
            // A plain file fails the procfs check if the lookup lets it through; another
            // procfs file only the mount-crossing check catches.
            let redirected = r#"linux.sysctl["kernel.domainname"]: open /proc/sys/kernel/domainname: something in the container's /proc redirects it"#;
            let not_procfs = r#"linux.sysctl["kernel.domainname"]: "/proc/sys/kernel/domainname": not on procfs"#;
            assert!(
                out.stderr.contains(redirected)
                    || (src == fake.as_path() && out.stderr.contains(not_procfs)),
                "{what}: {}",
                out.stderr
            );
            assert_eq!(fs::read_to_string(&fake).unwrap(), "fake\n", "{what}");
        }
    }
}

/// The `rootfs/dev` symlink family (runc and crun 2026): /dev of the rootfs is a symlink to a
/// host directory (absolute or ../../ relative). Nothing in that directory is created, changed
/// or removed, nothing is mounted there (on the host or in the container's namespace), and
/// the container gets a sound /dev inside its rootfs or create fails with a named error.
#[test]
fn dev_symlink_to_host_dir_touches_nothing_outside() {
    if !isolate() {
        return;
    }
    let env = Env::new(
        "dev-symlink",
        &[
            "sh",
            "-c",
            "test -c /dev/null && test -L /dev/ptmx && echo DEVOK",
        ],
    );
    let host = env.path("hostdev");
    fs::create_dir_all(host.join("pts")).expect("mkdir hostdev");
    for f in ["null", "ptmx", "console", "zero"] {
        fs::write(host.join(f), format!("host {f}\n")).expect("seed hostdev");
    }
    let before = snapshot(&host);
    let dev = env.bundle.join("rootfs/dev");
    fs::remove_dir_all(&dev).expect("rm rootfs/dev");
    let base = env.config();
    let hook_out = env.path("hook-mountinfo");
    let mut outcomes = Vec::new();
    for link in [
        host.to_str().expect("utf-8").to_string(),
        "../../hostdev".to_string(),
    ] {
        let _ = fs::remove_file(&dev);
        symlink(&link, &dev).expect("symlink dev");
        for tmpfs in [true, false] {
            env.edit(|c| *c = base.clone());
            if !tmpfs {
                drop_mount(&env, "/dev");
            }
            add_hook(
                &env,
                &format!("cat /proc/self/mountinfo > {}", hook_out.display()),
            );
            for r in RESOLVERS {
                let _ = fs::remove_file(&hook_out);
                let out = run_in(&env, r);
                let what = format!("dev -> {link}, /dev tmpfs {tmpfs}, {r:?}");
                if out.success() {
                    assert_eq!(out.stdout, "DEVOK\n", "{what}");
                } else {
                    assert!(
                        out.stderr.contains("/dev"),
                        "{what}: failed without naming /dev: {out:?}"
                    );
                }
                outcomes.push(format!(
                    "{what}: {}",
                    if out.success() { "ran" } else { "refused" }
                ));
                assert_eq!(
                    snapshot(&host),
                    before,
                    "{what}: the host directory changed"
                );
                assert_eq!(mounts_under(&host), Vec::<String>::new(), "{what}");
                let inner = fs::read_to_string(&hook_out).unwrap_or_default();
                assert!(
                    !inner.is_empty() || !out.success(),
                    "{what}: the hook did not run"
                );
                assert_eq!(
                    mount_points_under(&inner, &host),
                    Vec::<String>::new(),
                    "{what}: mounted outside the rootfs in the container's namespace"
                );
            }
        }
    }
    eprintln!("{outcomes:#?}");
}

/// CVE-2019-19921, CVE-2023-27561: the /proc/... masks and read-only paths go through one fd
/// of the procfs mounted for the container. They hold on the normal path (char 1:3, a
/// read-only /proc/sys). When that procfs is no longer at /proc at masking time — a
/// createContainer hook moves the mount away, standing in for a rename of rootfs/proc from
/// another mount namespace, and leaves an empty directory, a symlink to the moved procfs or
/// another procfs there — create fails naming /proc, instead of masking the wrong place and
/// leaving the container's procfs reachable, unmasked, under its new name.
#[test]
fn cve_2019_19921_proc_moved_before_masking_is_refused() {
    if !isolate() {
        return;
    }
    let env = Env::new(
        "proc-moved",
        &[
            "sh",
            "-c",
            "stat -c '%n %t:%T' /proc/keys /proc/timer_list; \
             (echo x > /proc/sys/kernel/domainname) 2>/dev/null && echo RW || echo RO",
        ],
    );
    let rootfs = env.bundle.join("rootfs");
    let (proc, moved) = (rootfs.join("proc"), rootfs.join("proc.moved"));
    let base = env.config();
    for r in RESOLVERS {
        let out = run_in(&env, r);
        assert!(out.success(), "{r:?}: {out:?}");
        assert_eq!(
            out.stdout, "/proc/keys 1:3\n/proc/timer_list 1:3\nRO\n",
            "{r:?}: the /proc masks or read-only paths are missing"
        );
    }
    let mv = format!(
        "mkdir -p {m} && mount --move {p} {m}",
        p = proc.display(),
        m = moved.display()
    );
    for (case, extra, why) in [
        ("empty directory", String::new(), "not on procfs"),
        (
            "symlink to the moved procfs",
            format!(" && rmdir {p} && ln -s /proc.moved {p}", p = proc.display()),
            "not a directory",
        ),
        (
            "another procfs",
            format!(" && mount -t proc proc {}", proc.display()),
            "the one mounted was mount",
        ),
    ] {
        env.edit(|c| *c = base.clone());
        add_hook(&env, &format!("{mv}{extra}"));
        for r in RESOLVERS {
            // Undo the last run's move on the host's side: a plain, empty rootfs/proc again.
            if fs::symlink_metadata(&proc).is_ok_and(|m| m.file_type().is_symlink()) {
                fs::remove_file(&proc).expect("rm proc symlink");
            }
            let _ = fs::remove_dir(&moved);
            fs::create_dir_all(&proc).expect("mkdir proc");
            let out = run_in(&env, r);
            let what = format!("/proc moved away, {case} left, {r:?}");
            assert_refused(
                &out,
                &[
                    r#"linux.maskedPaths/readonlyPaths ("/proc"): "/proc" in the container is not the procfs mounted for it"#,
                    why,
                    "CVE-2019-19921",
                ],
                &what,
            );
            assert!(out.stdout.is_empty(), "{what}: the container ran: {out:?}");
            assert!(moved.is_dir(), "{what}: the hook did not run: {out:?}");
        }
    }
}
