//! Three OCI conformance points: the state each hook kind gets on stdin, every value of
//! linux.rootfsPropagation with a rootfs that is not a mount point, and containers without a
//! mount namespace of their own (they inherit the runtime's, and their mounts must neither
//! change the caller's "/" nor outlive `delete`).
//! Each test runs as root in its own mount + pid namespace (see common::isolate); the tests
//! that look at the caller's "/" make it rshared first, inside that private namespace only, so
//! that a change of its propagation would show.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{isolate, wait_for_file, Env};
use serde_json::{json, Value};

/// One line of /proc/<pid>/mountinfo: mount point, per-mount options, optional fields.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    mount_point: PathBuf,
    options: String,
    optional: Vec<String>,
}

fn parse_mountinfo(text: &str) -> Vec<Line> {
    text.lines()
        .filter_map(|line| {
            let (left, _) = line.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            Some(Line {
                mount_point: PathBuf::from(f.get(4)?.replace("\\040", " ")),
                options: f.get(5)?.to_string(),
                optional: f[6..]
                    .iter()
                    .filter(|s| !s.is_empty())
                    .map(|s| s.to_string())
                    .collect(),
            })
        })
        .collect()
}

fn own_mounts() -> Vec<Line> {
    parse_mountinfo(&fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo"))
}

/// The caller's "/" as mountinfo shows it (the last line for "/" is the one on top).
fn root_line() -> Line {
    own_mounts()
        .into_iter()
        .rfind(|l| l.mount_point == Path::new("/"))
        .expect("a mount on /")
}

/// Makes this (private, test-only) namespace's "/" rshared: a later change of its propagation
/// by the runtime then shows in its optional fields.
fn make_root_rshared() {
    use nix::mount::{mount, MsFlags};
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_SHARED | MsFlags::MS_REC,
        None::<&str>,
    )
    .expect("make / rshared in the test's namespace");
    assert!(
        root_line()
            .optional
            .iter()
            .any(|o| o.starts_with("shared:")),
        "/ is not shared: {:?}",
        root_line()
    );
}

/// Mounts at or under `dir` in the caller's mount namespace.
fn mounts_under(dir: &Path) -> Vec<Line> {
    own_mounts()
        .into_iter()
        .filter(|l| l.mount_point.starts_with(dir))
        .collect()
}

fn read_state(dir: &Path, name: &str) -> Value {
    let path = dir.join(format!("{name}.json"));
    let text = wait_for_file(&path, |t| t.trim_end().ends_with('}'));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("hook {name} wrote {text:?} to {}: {e}", path.display()))
}

#[test]
fn every_hook_kind_gets_the_state_of_its_lifecycle_step() {
    if !isolate() {
        return;
    }
    // "true" exits at once: poststart must still say "running" with the init's pid.
    let env = Env::new("hookstates", &["true"]);
    let out = env.share_out();
    let out_str = out.to_str().unwrap().to_string();
    // Hooks in the runtime's namespaces and createContainer (before pivot_root) see the host's
    // files; startContainer runs inside the container, where the same directory is /out.
    let hook = |dir: &str, name: &str| {
        json!({"path": "/bin/sh", "env": ["PATH=/bin:/usr/bin"],
               "args": ["sh", "-c", format!("cat > {dir}/{name}.json")]})
    };
    env.edit(|c| {
        c["annotations"] = json!({"org.example/test": "hook states"});
        c["hooks"] = json!({
            "prestart": [hook(&out_str, "prestart")],
            "createRuntime": [hook(&out_str, "createRuntime")],
            "createContainer": [hook(&out_str, "createContainer")],
            "startContainer": [hook("/out", "startContainer")],
            "poststart": [hook(&out_str, "poststart")],
            "poststop": [hook(&out_str, "poststop")],
        });
    });
    env.create(&[]);
    let pid = env.pid() as i64;
    let bundle = env.bundle.canonicalize().unwrap();
    let check = |name: &str, status: &str, with_pid: bool| {
        let s = read_state(&out, name);
        assert_eq!(s["id"], env.id.as_str(), "{name}: {s}");
        assert_eq!(s["status"], status, "{name}: {s}");
        assert_eq!(s["bundle"], bundle.to_str().unwrap(), "{name}: {s}");
        assert_eq!(
            s["annotations"]["org.example/test"], "hook states",
            "{name}: {s}"
        );
        if with_pid {
            assert_eq!(s["pid"], pid, "{name}: {s}");
        }
    };
    for name in ["createRuntime", "prestart", "createContainer"] {
        check(name, "created", true);
    }
    assert!(
        !out.join("startContainer.json").exists(),
        "ran before start"
    );
    env.ok(&["start", &env.id]);
    check("startContainer", "created", true);
    check("poststart", "running", true);
    env.wait_status("stopped");
    env.ok(&["delete", &env.id]);
    check("poststop", "stopped", false);
    env.assert_gone();
}

/// The line of mount point `at` in a container's mountinfo text.
fn line_at(text: &str, at: &str) -> Line {
    parse_mountinfo(text)
        .into_iter()
        .rfind(|l| l.mount_point == Path::new(at))
        .unwrap_or_else(|| panic!("no mount on {at} in:\n{text}"))
}

#[test]
fn every_rootfs_propagation_works_on_a_rootfs_that_is_not_a_mount_point() {
    if !isolate() {
        return;
    }
    // Shared here, so the container's "/" (a slave of it) can show master/shared fields.
    make_root_rshared();
    for value in [
        "shared",
        "slave",
        "private",
        "unbindable",
        "rshared",
        "rslave",
        "rprivate",
        "runbindable",
    ] {
        let env = Env::new(&format!("prop{value}"), &["cat", "/proc/self/mountinfo"]);
        let rootfs = env.bundle.join("rootfs").canonicalize().unwrap();
        assert!(
            mounts_under(&rootfs).is_empty(),
            "the rootfs must not be a mount point for this test"
        );
        env.edit(|c| c["linux"]["rootfsPropagation"] = json!(value));
        let out = env.run(&[]);
        assert_eq!(out.code(), Some(0), "{value}: {out:?}");
        let root = line_at(&out.stdout, "/");
        let has = |l: &Line, tag: &str| l.optional.iter().any(|o| o.starts_with(tag));
        let base = match value {
            "rshared" => "shared",
            "rslave" => "slave",
            "rprivate" => "private",
            "runbindable" => "unbindable",
            v => v,
        };
        match base {
            "shared" => assert!(has(&root, "shared:"), "{value}: {root:?}"),
            "slave" => assert!(
                has(&root, "master:") && !has(&root, "shared:"),
                "{value}: {root:?}"
            ),
            "private" => assert!(root.optional.is_empty(), "{value}: {root:?}"),
            "unbindable" => assert!(has(&root, "unbindable"), "{value}: {root:?}"),
            other => unreachable!("{other}"),
        }
        // The r-forms reach the mounts under "/" too; the plain ones leave /proc private.
        let proc_line = line_at(&out.stdout, "/proc");
        match value {
            "rshared" => assert!(has(&proc_line, "shared:"), "{value}: {proc_line:?}"),
            "runbindable" => assert!(has(&proc_line, "unbindable"), "{value}: {proc_line:?}"),
            _ => assert!(
                !has(&proc_line, "shared:") && !has(&proc_line, "unbindable"),
                "{value}: {proc_line:?}"
            ),
        }
        env.assert_gone();
        assert!(mounts_under(&rootfs).is_empty(), "{value}: mounts left");
    }
}

#[test]
fn rshared_root_keeps_rshared_binds_bidirectional() {
    if !isolate() {
        return;
    }
    // Kubernetes' Bidirectional volumes: rootfsPropagation rshared plus an "rshared" bind of a
    // shared host directory; what the container mounts under it must reach the host.
    make_root_rshared();
    let env = Env::new(
        "bidir",
        &[
            "sh",
            "-c",
            "mkdir -p /vol/sub && mount -t tmpfs tmpfs /vol/sub && echo hi > /vol/sub/hello",
        ],
    );
    // On a shared mount of its own: the mount holding the rootfs is made private (pivot_root
    // needs that, as in runc), so a source on the same mount could not stay a peer.
    let volmnt = env.path("volmnt");
    fs::create_dir(&volmnt).unwrap();
    {
        use nix::mount::{mount, MsFlags};
        mount(
            Some("tmpfs"),
            &volmnt,
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        mount(
            None::<&str>,
            &volmnt,
            None::<&str>,
            MsFlags::MS_SHARED,
            None::<&str>,
        )
        .unwrap();
    }
    let vol = volmnt.join("vol");
    fs::create_dir(&vol).unwrap();
    let vol_str = vol.to_str().unwrap().to_string();
    env.edit(|c| {
        c["linux"]["rootfsPropagation"] = json!("rshared");
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/vol", "type": "bind", "source": vol_str,
            "options": ["rbind", "rshared"]
        }));
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_SYS_ADMIN"));
        }
    });
    let out = env.run(&[]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    let hello = vol.join("sub/hello");
    assert_eq!(
        fs::read_to_string(&hello).unwrap_or_default(),
        "hi\n",
        "the container's mount under the rshared bind did not reach the host"
    );
    nix::mount::umount2(&vol.join("sub"), nix::mount::MntFlags::MNT_DETACH).unwrap();
    env.assert_gone();
}

const NS_KINDS: [&str; 8] = ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"];

fn ns_link(pid: &str, kind: &str) -> PathBuf {
    fs::read_link(format!("/proc/{pid}/ns/{kind}")).unwrap_or_else(|e| panic!("{pid}/{kind}: {e}"))
}

/// Creates the container (with `extra` create options), checks what it shares with us, execs
/// into it, deletes it, and checks the caller's "/" and that nothing stays mounted.
fn no_mount_ns_round(env: &Env, extra: &[&str], shared_kinds: &[&str]) {
    let rootfs = env.bundle.join("rootfs").canonicalize().unwrap();
    let before = root_line();
    env.create(extra);
    let pid = env.pid().to_string();
    for kind in NS_KINDS {
        let same = ns_link(&pid, kind) == ns_link("self", kind);
        assert_eq!(
            same,
            shared_kinds.contains(&kind),
            "namespace {kind} of the container"
        );
    }
    let after_create = root_line();
    assert_eq!(
        after_create.optional, before.optional,
        "/ changed by create"
    );
    assert_eq!(after_create.options, before.options, "/ changed by create");
    // The spec's mounts are in our namespace, under the rootfs only.
    let mine = mounts_under(&rootfs);
    for dest in ["", "/proc", "/dev", "/sys"] {
        let p = PathBuf::from(format!("{}{dest}", rootfs.display()));
        assert!(
            mine.iter().any(|l| l.mount_point == p),
            "{} not mounted: {mine:?}",
            p.display()
        );
    }
    // root.readonly made only the rootfs' own mount read-only.
    let top = mine.iter().rfind(|l| l.mount_point == rootfs).unwrap();
    assert!(top.options.split(',').any(|o| o == "ro"), "{top:?}");
    assert!(root_line().options.split(',').any(|o| o == "rw"));
    env.ok(&["start", &env.id]);
    // An exec'd process is in the container's root, not ours.
    let ls = env.ok(&["exec", &env.id, "ls", "/"]);
    assert!(ls.contains("bin") && !ls.contains("work"), "{ls}");
    env.ok(&["delete", "--force", &env.id]);
    env.assert_gone();
    let after = root_line();
    assert_eq!(after.optional, before.optional, "/ changed by delete");
    assert_eq!(
        mounts_under(&rootfs),
        Vec::<Line>::new(),
        "mounts left under the rootfs after delete"
    );
}

#[test]
fn a_container_without_any_namespace_shares_the_callers_and_leaves_no_mount() {
    if !isolate() {
        return;
    }
    make_root_rshared();
    for (tag, extra) in [("nons", &[][..]), ("nonspivot", &["--no-pivot"][..])] {
        let env = Env::new(tag, &["sleep", "1000"]);
        env.edit(|c| {
            c["linux"]["namespaces"] = json!([]);
            c["hostname"] = Value::Null;
            c["root"]["readonly"] = json!(true);
        });
        no_mount_ns_round(&env, extra, &NS_KINDS);
    }
}

#[test]
fn a_container_with_a_pid_but_no_mount_namespace_works() {
    if !isolate() {
        return;
    }
    make_root_rshared();
    let env = Env::new(
        "nomnt",
        &["sh", "-c", "echo $$ > /tmp/pid; exec sleep 1000"],
    );
    env.edit(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "mount");
        assert!(ns.iter().any(|n| n["type"] == "pid"));
        c["root"]["readonly"] = json!(true);
        // /tmp stays writable for the pid file.
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
    });
    let rootfs = env.bundle.join("rootfs").canonicalize().unwrap();
    let config = env.config();
    let listed: Vec<&str> = config["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["type"].as_str())
        .map(|t| match t {
            "network" => "net",
            "mount" => "mnt",
            t => t,
        })
        .collect();
    let shared: Vec<&str> = NS_KINDS
        .iter()
        .copied()
        .filter(|k| !listed.contains(k))
        .collect();
    assert!(shared.contains(&"mnt") && !shared.contains(&"pid"));

    // Check inside before the round deletes it: the init is pid 1 of its own pid namespace,
    // and the container's /proc (in our mount namespace) belongs to that namespace.
    let probe = Env::new(
        "nomntprobe",
        &["sh", "-c", "echo $$ > /tmp/pid; exec sleep 1000"],
    );
    probe.edit(|c| *c = config.clone());
    probe.edit(|c| c["linux"]["cgroupsPath"] = json!(probe.cgroup.clone()));
    let probe_rootfs = probe.bundle.join("rootfs").canonicalize().unwrap();
    probe.create(&[]);
    probe.ok(&["start", &probe.id]);
    let pid_in_ns = wait_for_file(&probe_rootfs.join("tmp/pid"), |t| !t.trim().is_empty());
    assert_eq!(pid_in_ns.trim(), "1");
    let cmdline = fs::read(probe_rootfs.join("proc/1/cmdline")).expect("container /proc/1");
    assert!(
        String::from_utf8_lossy(&cmdline).starts_with("sleep"),
        "{cmdline:?}"
    );
    probe.ok(&["delete", "--force", &probe.id]);
    probe.assert_gone();
    assert_eq!(mounts_under(&probe_rootfs), Vec::<Line>::new());

    no_mount_ns_round(&env, &[], &shared);
    assert_eq!(mounts_under(&rootfs), Vec::<Line>::new());
}

#[test]
fn a_user_namespace_without_a_mount_namespace_is_refused() {
    if !isolate() {
        return;
    }
    let env = Env::new("usernomnt", &["true"]);
    env.edit(|c| {
        c["linux"]["namespaces"] = json!([{"type": "user"}, {"type": "pid"}]);
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["hostname"] = Value::Null;
    });
    let err = env.fails(&["create", "--bundle", env.bundle_str(), &env.id]);
    assert!(
        err.contains("linux.namespaces: a user namespace without a mount namespace"),
        "{err}"
    );
    env.assert_gone();
}
