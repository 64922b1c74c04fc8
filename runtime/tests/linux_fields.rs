//! runtime-spec 1.2 fields carried out on the real kernel: linux.memoryPolicy (set_mempolicy in
//! the init and in exec'd processes), linux.netDevices (host interfaces moved into the
//! container's network namespace) and id-mapped bind mounts ("idmap"/"ridmap" with
//! uidMappings/gidMappings); plus /dev of a container in a user namespace. Each shown to take
//! effect inside the container, each bad value refused with an error naming the field.
//! Each test runs as root in its own mount + pid namespace (see common::isolate).

mod common;

use std::fs;
use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{isolate, Env};
use serde_json::{json, Value};

/// `create` must fail with `want` in stderr, leaving nothing behind.
#[track_caller]
fn refused(env: &Env, want: &str) {
    let err = env.fails(&["create", "--bundle", env.bundle_str(), &env.id]);
    assert!(err.contains(want), "want {want:?} in {err:?}");
    env.assert_gone();
}

/// The policy part of the first /proc/self/numa_maps line ("bind=static:0"); the kernel shows
/// the task policy for mappings without one of their own.
const NUMA_POLICY: &str = "head -n 1 /proc/self/numa_maps | cut -d ' ' -f 2-";

/// The policy text of a numa_maps line tail: "prefer (many):0 anon=1 …" -> "prefer (many):0".
fn policy_of(line: &str) -> String {
    let line = line.trim();
    // Every field after the policy is key=value (or a file=/heap/stack word).
    let end = line
        .match_indices(' ')
        .map(|(i, _)| i)
        .find(|&i| {
            let rest = &line[i + 1..];
            rest.split(' ').next().is_some_and(|w| {
                w.contains('=') && !w.starts_with('=') || w == "heap" || w == "stack"
            })
        })
        .unwrap_or(line.len());
    line[..end].to_string()
}

#[test]
fn memory_policy_is_the_task_policy_of_the_init() {
    if !isolate() {
        return;
    }
    for (policy, want) in [
        (
            json!({"mode": "MPOL_INTERLEAVE", "nodes": "0"}),
            "interleave:0",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]}),
            "bind=static:0",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_NUMA_BALANCING"]}),
            "bind=balancing:0",
        ),
        (
            json!({"mode": "MPOL_PREFERRED_MANY", "nodes": "0"}),
            "prefer (many):0",
        ),
        (
            json!({"mode": "MPOL_WEIGHTED_INTERLEAVE", "nodes": "0"}),
            "weighted interleave:0",
        ),
        (json!({"mode": "MPOL_LOCAL"}), "local"),
        (json!({"mode": "MPOL_DEFAULT"}), "default"),
    ] {
        let env = Env::new("mpol", &["sh", "-c", NUMA_POLICY]);
        env.edit(|c| c["linux"]["memoryPolicy"] = policy.clone());
        let out = env.run_ok();
        assert_eq!(policy_of(&out), want, "{policy}: {out:?}");
    }
}

#[test]
fn memory_policy_applies_to_exec_too() {
    if !isolate() {
        return;
    }
    let env = Env::new("mpol-exec", &["sleep", "1000"]);
    env.edit(|c| {
        c["linux"]["memoryPolicy"] =
            json!({"mode": "MPOL_PREFERRED", "nodes": "0", "flags": ["MPOL_F_RELATIVE_NODES"]});
    });
    env.ok(&["run", "-d", "--bundle", env.bundle_str(), &env.id]);
    let out = env.ok(&["exec", &env.id, "sh", "-c", NUMA_POLICY]);
    assert_eq!(policy_of(&out), "prefer=relative:0", "{out:?}");
    // The init has it too (its own numa_maps, read from the host).
    let init = fs::read_to_string(format!("/proc/{}/numa_maps", env.pid())).unwrap();
    let first = init.lines().next().unwrap_or_default();
    let tail = first.split_once(' ').map(|(_, t)| t).unwrap_or_default();
    assert_eq!(policy_of(tail), "prefer=relative:0", "{first:?}");
    env.ok(&["delete", "--force", &env.id]);
    env.assert_gone();
}

#[test]
fn bad_memory_policies_are_refused_naming_the_field() {
    if !isolate() {
        return;
    }
    for (policy, want) in [
        (
            json!({"mode": "MPOL_FOO", "nodes": "0"}),
            r#"linux.memoryPolicy.mode "MPOL_FOO": unknown"#,
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_NOPE"]}),
            r#"linux.memoryPolicy.flags "MPOL_F_NOPE": unknown"#,
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0-x"}),
            r#"linux.memoryPolicy.nodes "0-x": "x" is not a node number"#,
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0-9876543210"}),
            r#"linux.memoryPolicy.nodes "0-9876543210": "#,
        ),
        (
            json!({"mode": "MPOL_LOCAL", "nodes": "0"}),
            r#"linux.memoryPolicy.nodes "0": mode MPOL_LOCAL takes no nodes"#,
        ),
        (
            json!({"mode": "MPOL_INTERLEAVE"}),
            "mode MPOL_INTERLEAVE needs nodes",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0,7"}),
            r#"linux.memoryPolicy.nodes "0,7": node 7 does not exist on this host"#,
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0",
                   "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]}),
            "linux.memoryPolicy.flags",
        ),
    ] {
        let env = Env::new("mpol-bad", &["true"]);
        env.edit(|c| c["linux"]["memoryPolicy"] = policy.clone());
        refused(&env, want);
    }
}

#[test]
fn features_list_the_new_fields() {
    let env = Env::new("features", &["true"]);
    let out = env.ok(&["features"]);
    let f: Value = serde_json::from_str(&out).expect("features is JSON");
    let linux = &f["linux"];
    let modes: Vec<&str> = linux["memoryPolicy"]["modes"]
        .as_array()
        .expect("memoryPolicy.modes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        modes.contains(&"MPOL_WEIGHTED_INTERLEAVE") && modes.len() == 7,
        "{modes:?}"
    );
    assert_eq!(
        linux["memoryPolicy"]["flags"].as_array().map(Vec::len),
        Some(3)
    );
    assert_eq!(linux["netDevices"]["enabled"], json!(true));
    assert_eq!(linux["mountExtensions"]["idmap"]["enabled"], json!(true));
    let opts = f["mountOptions"].as_array().expect("mountOptions");
    assert!(opts.contains(&json!("idmap")) && opts.contains(&json!("ridmap")));
}

fn ip(args: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args(args)
        .output()
        .expect("run ip (iproute2)")
}

#[track_caller]
fn ip_ok(args: &[&str]) {
    let out = ip(args);
    assert!(out.status.success(), "ip {args:?}: {out:?}");
}

fn link_exists(name: &str) -> bool {
    ip(&["link", "show", "dev", name]).status.success()
}

#[test]
fn net_devices_move_into_the_container_with_their_addresses() {
    if !isolate() {
        return;
    }
    // The devices live in a network namespace of this test's own, not the host's. (This kernel
    // has no dummy driver: veth pairs, whose peers stay here, serve instead.)
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
    ip_ok(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
    ip_ok(&["link", "add", "w0", "type", "veth", "peer", "name", "w1"]);
    ip_ok(&["addr", "add", "169.254.169.13/32", "dev", "v0"]);
    ip_ok(&["addr", "add", "fd00::13/128", "dev", "v0", "nodad"]);

    let env = Env::new(
        "netdev",
        &[
            "sh",
            "-c",
            "ip -o link show eth5 > /out/link; ip -o addr show dev eth5 > /out/addr; \
             ip -o link show net0 > /out/net0",
        ],
    );
    let out = env.share_out();
    env.edit(|c| {
        c["linux"]["netDevices"] = json!({"v0": {"name": "eth5"}, "w0": {"name": "net%d"}});
    });
    env.create(&[]);
    // Moved: gone from here while the container's namespace holds them.
    assert!(!link_exists("v0") && !link_exists("w0"));
    assert!(link_exists("v1") && link_exists("w1"));
    env.ok(&["start", &env.id]);
    env.wait_status("stopped");
    let link = fs::read_to_string(out.join("link")).unwrap();
    assert!(link.contains("eth5") && link.contains(",UP"), "{link:?}");
    let addr = fs::read_to_string(out.join("addr")).unwrap();
    assert!(addr.contains("169.254.169.13/32"), "{addr:?}");
    assert!(addr.contains("fd00::13/128"), "{addr:?}");
    let net0 = fs::read_to_string(out.join("net0")).unwrap();
    assert!(net0.contains("net0"), "{net0:?}");
    env.ok(&["delete", &env.id]);
    env.assert_gone();
    // Not moved back (the spec forbids it): the kernel destroys virtual devices with their
    // namespace, a veth pair as a whole, so the peers left here go too.
    let deadline = Instant::now() + Duration::from_secs(10);
    while (link_exists("v1") || link_exists("w1")) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!link_exists("v1") && !link_exists("w1") && !link_exists("v0"));
}

#[test]
fn bad_net_devices_are_refused_naming_the_field() {
    if !isolate() {
        return;
    }
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
    ip_ok(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
    let env = Env::new("netdev-bad", &["true"]);
    env.edit(|c| c["linux"]["netDevices"] = json!({"nosuch0": {"name": "eth0"}}));
    refused(
        &env,
        r#"linux.netDevices["nosuch0"]: no such network device in the runtime's network namespace"#,
    );
    env.edit(|c| c["linux"]["netDevices"] = json!({"v0": {"name": "bad/name"}}));
    refused(&env, r#"linux.netDevices["v0"]: name "bad/name""#);
    env.edit(|c| {
        c["linux"]["netDevices"] = json!({"v0": {"name": "eth0"}});
        if let Some(list) = c["linux"]["namespaces"].as_array_mut() {
            list.retain(|n| n["type"] != "network");
        }
    });
    refused(
        &env,
        "linux.netDevices: the container has no network namespace",
    );
    // Nothing was moved by the refused creates.
    assert!(link_exists("v0"));
}

/// A directory (mode 0777) owned by `uid`:`gid` with a file `name` owned the same.
fn owned_dir(dir: &Path, uid: u32, name: &str) {
    fs::create_dir_all(dir).unwrap();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o777)).unwrap();
    chown(dir, Some(uid), Some(uid)).unwrap();
    fs::write(dir.join(name), "x").unwrap();
    chown(dir.join(name), Some(uid), Some(uid)).unwrap();
}

fn owner(path: &Path) -> (u32, u32) {
    let m = fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (m.uid(), m.gid())
}

fn with_userns(c: &mut Value) {
    common::add_namespace(c, "user");
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
}

#[test]
fn idmapped_bind_mounts_map_owners_both_ways() {
    if !isolate() {
        return;
    }
    let env = Env::new(
        "idmap",
        &[
            "sh",
            "-c",
            "stat -c '%n %u:%g' /m1/f /m1/g /m2/f /m3/sub/h /m4/top /m4/sub/h && \
             touch /m1/new1 /m2/new2",
        ],
    );
    let src = env.path("src");
    owned_dir(&src, 1000, "f");
    fs::write(src.join("g"), "x").unwrap();
    chown(src.join("g"), Some(1001), Some(1001)).unwrap();
    // A tree with a tmpfs below it, for "ridmap" against "idmap" on an rbind.
    let tree = env.path("tree");
    owned_dir(&tree, 1000, "top");
    let sub = tree.join("sub");
    fs::create_dir(&sub).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &sub,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("mode=0777"),
    )
    .expect("mount a tmpfs in the test's mount namespace");
    fs::write(sub.join("h"), "x").unwrap();
    chown(sub.join("h"), Some(1000), Some(1000)).unwrap();

    // The container's root (host 100000) may not write the rootfs: the targets exist already.
    for d in ["m1", "m2", "m3", "m4"] {
        fs::create_dir(env.bundle.join("rootfs").join(d)).unwrap();
    }
    let one = json!([{"containerID": 1000, "hostID": 100000, "size": 1}]);
    let (src_s, tree_s) = (src.to_str().unwrap(), tree.to_str().unwrap());
    env.edit(|c| {
        with_userns(c);
        let mounts = c["mounts"].as_array_mut().unwrap();
        // Host 1000 is the container's root through this mount, and only it is mapped.
        mounts.push(
            json!({"destination": "/m1", "type": "bind", "source": src_s,
            "options": ["bind", "idmap"], "uidMappings": one, "gidMappings": one}),
        );
        // No mappings: the container's own (0 -> 100000), so host 1000 is container 1000.
        mounts.push(
            json!({"destination": "/m2", "type": "bind", "source": src_s,
            "options": ["bind", "idmap"]}),
        );
        mounts.push(
            json!({"destination": "/m3", "type": "bind", "source": tree_s,
            "options": ["rbind", "ridmap"], "uidMappings": one, "gidMappings": one}),
        );
        mounts.push(
            json!({"destination": "/m4", "type": "bind", "source": tree_s,
            "options": ["rbind", "idmap"], "uidMappings": one, "gidMappings": one}),
        );
    });
    let out = env.run_ok();
    assert_eq!(
        out,
        "/m1/f 0:0\n/m1/g 65534:65534\n/m2/f 1000:1000\n/m3/sub/h 0:0\n/m4/top 0:0\n\
         /m4/sub/h 65534:65534\n",
    );
    // What the container's root made lands as the id each mount maps it to.
    assert_eq!(owner(&src.join("new1")), (1000, 1000));
    assert_eq!(owner(&src.join("new2")), (0, 0));
}

#[test]
fn bad_idmapped_mounts_are_refused_naming_the_mount() {
    if !isolate() {
        return;
    }
    let env = Env::new("idmap-bad", &["true"]);
    let src = env.path("src");
    owned_dir(&src, 1000, "f");
    let one = json!([{"containerID": 0, "hostID": 100000, "size": 1}]);
    let base = env.config();
    let src_s = src.to_str().unwrap().to_string();
    let with_mount = |extra: Value, userns: bool| {
        let mut c = base.clone();
        if userns {
            with_userns(&mut c);
        }
        c["mounts"].as_array_mut().unwrap().push(extra);
        fs::write(
            env.bundle.join("config.json"),
            serde_json::to_vec_pretty(&c).unwrap(),
        )
        .unwrap();
    };
    // sysfs has no id-mapped mount support.
    with_mount(
        json!({"destination": "/bad", "type": "bind", "source": "/sys/kernel",
            "options": ["rbind", "idmap"], "uidMappings": one, "gidMappings": one}),
        true,
    );
    refused(
        &env,
        r#"(destination "/bad"): option "idmap": the filesystem of source "/sys/kernel" does not support id-mapped mounts"#,
    );
    with_mount(
        json!({"destination": "/m", "type": "bind", "source": src_s,
            "options": ["bind", "ridmap"]}),
        false,
    );
    refused(
        &env,
        r#"(destination "/m"): option "ridmap" without uidMappings/gidMappings takes the container's user namespace mapping, and the container has no user namespace"#,
    );
    with_mount(
        json!({"destination": "/m", "type": "tmpfs", "source": "tmpfs",
            "options": ["idmap"], "uidMappings": one, "gidMappings": one}),
        true,
    );
    refused(&env, "id-mapped mounts are supported for bind mounts only");
    with_mount(
        json!({"destination": "/m", "type": "bind", "source": src_s,
            "options": ["bind"], "uidMappings": one}),
        true,
    );
    refused(&env, "uidMappings and gidMappings go together");
}

#[test]
fn user_namespace_gets_bound_devices_and_its_own_dev_mounts() {
    if !isolate() {
        return;
    }
    let env = Env::new(
        "userns-dev",
        &[
            "sh",
            "-c",
            "stat -c '%n %F %t:%T' /dev/null /dev/zero /dev/full /dev/random /dev/urandom \
             /dev/tty; stat -c '%n %u:%g' /dev /dev/shm /dev/mqueue /dev/pts; \
             echo x > /dev/null && head -c 4 /dev/zero | wc -c; \
             grep -c -E ' /dev/(null|zero|full|random|urandom|tty) ' /proc/self/mountinfo",
        ],
    );
    env.edit(with_userns);
    let out = env.run_ok();
    let want = "/dev/null character special file 1:3\n\
                /dev/zero character special file 1:5\n\
                /dev/full character special file 1:7\n\
                /dev/random character special file 1:8\n\
                /dev/urandom character special file 1:9\n\
                /dev/tty character special file 5:0\n\
                /dev 0:0\n/dev/shm 0:0\n/dev/mqueue 0:0\n/dev/pts 0:0\n4\n6\n";
    assert_eq!(out, want);
}
