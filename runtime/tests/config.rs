//! What config.json asks for is what the container gets: hostname, read-only root, masked
//! paths, capabilities, rlimits, user and groups, user namespace mappings, a joined network
//! namespace, a terminal over --console-socket, and lifecycle hooks.
//! Each test runs as root in its own mount + pid namespace (see common::isolate).

mod common;

use std::fs;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{isolate, wait_timeout, Env};
use serde_json::{json, Value};

#[test]
fn hostname_is_set_in_a_new_uts_namespace() {
    if !isolate() {
        return;
    }
    let env = Env::new("host", &["hostname"]);
    env.edit(|c| c["hostname"] = json!("inside-box"));
    assert_eq!(env.run_ok(), "inside-box\n");
    assert_ne!(
        nix::unistd::gethostname().unwrap().to_string_lossy(),
        "inside-box",
        "the host's name changed"
    );
}

#[test]
fn readonly_root_refuses_writes() {
    if !isolate() {
        return;
    }
    let env = Env::new(
        "ro",
        &["sh", "-c", "touch /newfile && echo wrote; echo rc=$?"],
    );
    env.edit(|c| c["root"]["readonly"] = json!(true));
    let out = env.run(&[]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(!out.stdout.contains("wrote"), "{out:?}");
    assert!(out.stdout.contains("rc=1"), "{out:?}");
    assert!(out.stderr.contains("Read-only file system"), "{out:?}");
    assert!(!env.bundle.join("rootfs/newfile").exists());
    // The same bundle writable: the file appears, so the refusal above came from readonly.
    env.edit(|c| c["root"]["readonly"] = json!(false));
    let out = env.run(&[]);
    assert!(out.stdout.contains("wrote"), "{out:?}");
    assert!(env.bundle.join("rootfs/newfile").exists());
}

#[test]
fn masked_paths_read_as_null_device() {
    if !isolate() {
        return;
    }
    // /proc/kcore only exists with CONFIG_PROC_KCORE: mask whichever of these this kernel has.
    let file = ["/proc/kcore", "/proc/timer_list", "/proc/keys"]
        .into_iter()
        .find(|f| std::path::Path::new(f).exists())
        .expect("a maskable /proc file");
    assert!(
        fs::read_dir("/sys/firmware").unwrap().count() > 0,
        "host /sys/firmware is empty"
    );
    let script = format!("stat -c %t:%T {file}; wc -c < {file}; ls /sys/firmware | wc -l");
    let env = Env::new("mask", &["sh", "-c", &script]);
    env.edit(|c| {
        let masked = c["linux"]["maskedPaths"].as_array_mut().unwrap();
        if !masked.contains(&json!(file)) {
            masked.push(json!(file));
        }
    });
    let out = env.run_ok();
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(lines, ["1:3", "0", "0"], "{out:?}");
}

/// The capability mask of `names` (bit = capability number).
fn cap_mask(names: &[&str]) -> u64 {
    names
        .iter()
        .map(|n| {
            let c: caps::Capability = n.parse().unwrap();
            1u64 << c.index()
        })
        .fold(0, |a, b| a | b)
}

fn status_field(text: &str, field: &str) -> u64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} missing in {text}"));
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

#[test]
fn capabilities_match_the_spec() {
    if !isolate() {
        return;
    }
    let env = Env::new("caps", &["cat", "/proc/self/status"]);
    env.edit(|c| {
        c["process"]["capabilities"] = json!({
            "bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"],
            "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        });
    });
    let out = env.run_ok();
    assert_eq!(
        status_field(&out, "CapEff:"),
        cap_mask(&["CAP_KILL", "CAP_NET_BIND_SERVICE"])
    );
    assert_eq!(
        status_field(&out, "CapPrm:"),
        cap_mask(&["CAP_KILL", "CAP_NET_BIND_SERVICE"])
    );
    assert_eq!(
        status_field(&out, "CapBnd:"),
        cap_mask(&["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"])
    );
    assert_eq!(status_field(&out, "CapAmb:"), 0);
    assert_eq!(status_field(&out, "NoNewPrivs:"), 1);
}

#[test]
fn rlimit_nofile_is_applied() {
    if !isolate() {
        return;
    }
    let env = Env::new("rlimit", &["sh", "-c", "ulimit -n; ulimit -Hn"]);
    env.edit(|c| {
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456}]);
    });
    assert_eq!(env.run_ok(), "123\n456\n");
}

#[test]
fn user_and_additional_groups() {
    if !isolate() {
        return;
    }
    let env = Env::new("user", &["sh", "-c", "id -u; id -g; id -G"]);
    env.edit(|c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1001, "additionalGids": [2000, 3000]});
    });
    let out = env.run_ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1000");
    assert_eq!(lines[1], "1001");
    let mut groups: Vec<&str> = lines[2].split_whitespace().collect();
    groups.sort();
    assert_eq!(groups, ["1001", "2000", "3000"], "{out:?}");
}

#[test]
fn user_namespace_with_mappings() {
    if !isolate() {
        return;
    }
    let env = Env::new(
        "userns",
        &[
            "sh",
            "-c",
            "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map",
        ],
    );
    env.edit(with_userns);
    let out = env.run_ok();
    let lines: Vec<String> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        lines,
        ["0", "0", "0 100000 65536", "0 100000 65536"],
        "{out:?}"
    );
}

/// A user namespace mapping container 0..65535 to host 100000.., as runc's rootless spec: sysfs
/// of the host's network namespace cannot be mounted from a user namespace, so it is bound.
fn with_userns(c: &mut Value) {
    common::add_namespace(c, "user");
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    for m in c["mounts"].as_array_mut().unwrap() {
        if m["destination"] == "/sys" {
            *m = json!({"destination": "/sys", "type": "none", "source": "/sys",
                        "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
        }
    }
    c["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["destination"] != "/sys/fs/cgroup");
}

/// A process holding a fresh network namespace (`unshare` with `args` before `--net`), once its
/// namespace differs from ours; and that namespace's link (`net:[…]`).
/// The caller kills and waits for the holder.
#[allow(clippy::zombie_processes)]
fn netns_holder(args: &[&str]) -> (std::process::Child, String) {
    let holder = Command::new("unshare")
        .args(args)
        .args(["--net", "sleep", "300"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let ns_path = format!("/proc/{}/ns/net", holder.id());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let link = fs::read_link(&ns_path).unwrap();
        if link != fs::read_link("/proc/self/ns/net").unwrap() {
            return (holder, link.to_string_lossy().into_owned());
        }
        assert!(
            Instant::now() < deadline,
            "unshare --net did not take effect"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sets the network namespace's path.
fn with_netns_path(c: &mut Value, path: &str) {
    for ns in c["linux"]["namespaces"].as_array_mut().unwrap() {
        if ns["type"] == "network" {
            ns["path"] = json!(path);
        }
    }
}

/// What containerd 2.x does for a `hostUsers: false` pod: a netns owned by a user namespace of
/// its own, under a 0700 dir, for a container with a new user namespace, and binds from 0700
/// dirs. Only the host's root may enter that netns and read those dirs, so the engine opens
/// the paths, joins the netns and clones the bind sources before it makes the user namespace.
#[test]
fn user_namespace_joins_a_foreign_netns_and_binds_hidden_dirs() {
    if !isolate() {
        return;
    }
    let (mut holder, want) = netns_holder(&["--user", "--map-root-user"]);
    let env = Env::new(
        "userns-netns",
        &[
            "sh",
            "-c",
            "readlink /proc/self/ns/net; cat /out/hello; id -u",
        ],
    );
    // The bind source is readable by anyone, but under a 0700 dir: out of the container root's
    // reach by path.
    let locked = env.path("locked");
    let hidden = locked.join("shared");
    fs::create_dir_all(&hidden).unwrap();
    fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    fs::write(hidden.join("hello"), "from a 0700 dir\n").unwrap();
    // The netns pinned by a bind mount in the locked dir (this test's private mount namespace).
    let pinned = locked.join("netns");
    fs::write(&pinned, "").unwrap();
    let status = Command::new("mount")
        .args(["--bind", &format!("/proc/{}/ns/net", holder.id())])
        .arg(&pinned)
        .status()
        .unwrap();
    assert!(status.success(), "bind the holder's netns");
    let _ = holder.kill();
    let _ = holder.wait();
    let (pinned_s, hidden_s) = (pinned.display().to_string(), hidden.display().to_string());
    env.edit(|c| {
        with_userns(c);
        with_netns_path(c, &pinned_s);
        c["mounts"].as_array_mut().unwrap().push(json!({
            // /out exists in the test rootfs: the container's root may not mkdir in it.
            "destination": "/out", "type": "bind", "source": hidden_s,
            "options": ["rbind", "ro"]
        }));
    });
    let out = env.run(&[]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(
        out.stdout,
        format!("{want}\nfrom a 0700 dir\n0\n"),
        "{out:?}"
    );
    env.assert_gone();
}

#[test]
fn joins_a_network_namespace_by_path() {
    if !isolate() {
        return;
    }
    // A process holding a fresh network namespace; the container joins it by /proc path.
    let (holder, want) = netns_holder(&[]);
    let ns_path = format!("/proc/{}/ns/net", holder.id());
    let env = Env::new("netns", &["readlink", "/proc/self/ns/net"]);
    env.edit(|c| with_netns_path(c, &ns_path));
    let out = env.run(&[]);
    let mut holder = holder;
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout.trim(), want);
    env.assert_gone();
}

#[test]
fn terminal_goes_over_the_console_socket() {
    if !isolate() {
        return;
    }
    let env = Env::new("tty", &["sh", "-c", "tty; echo hello-tty; exit 0"]);
    env.edit(|c| c["process"]["terminal"] = json!(true));
    let sock = env.path("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let create = env
        .command(&[
            "create",
            "--console-socket",
            sock.to_str().unwrap(),
            "--bundle",
            env.bundle_str(),
            &env.id,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let master = common::accept_console(&listener).unwrap();
    let (status, timed_out) = wait_timeout(create, Duration::from_secs(30));
    assert!(!timed_out && status.success(), "create failed: {status:?}");
    // The created init holds its stdio on the pty; it reads nothing before start.
    env.ok(&["start", &env.id]);
    let text = read_until_closed(fs::File::from(master), Duration::from_secs(20));
    assert!(text.contains("/dev/pts/0"), "{text:?}");
    assert!(text.contains("hello-tty\r\n"), "{text:?}");
    env.wait_status("stopped");
    env.ok(&["delete", &env.id]);
    env.assert_gone();
}

#[test]
fn console_socket_without_terminal_is_refused() {
    if !isolate() {
        return;
    }
    let env = Env::new("notty", &["true"]);
    let sock = env.path("console.sock");
    let _listener = UnixListener::bind(&sock).unwrap();
    let err = env.fails(&[
        "create",
        "--console-socket",
        sock.to_str().unwrap(),
        "--bundle",
        env.bundle_str(),
        &env.id,
    ]);
    assert!(err.contains("console socket"), "{err}");
    env.edit(|c| c["process"]["terminal"] = json!(true));
    let err = env.fails(&["run", "-d", "--bundle", env.bundle_str(), &env.id]);
    assert!(err.contains("tty"), "{err}");
    env.assert_gone();
}

/// Reads a pty master until EIO (the container's last process closed the pty), bounded.
fn read_until_closed(mut master: fs::File, timeout: Duration) -> String {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let deadline = Instant::now() + timeout;
    let mut text = String::new();
    let mut buf = [0u8; 1024];
    while Instant::now() < deadline {
        let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::from(100u16)).unwrap_or(0) == 0 {
            continue;
        }
        match master.read(&mut buf) {
            Ok(n) if n > 0 => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => return text,
        }
    }
    panic!("the pty stayed open for {timeout:?}; read so far: {text:?}");
}

fn read_hook(dir: &std::path::Path, name: &str) -> Value {
    let text = fs::read_to_string(dir.join(format!("{name}.json")))
        .unwrap_or_else(|e| panic!("hook {name} did not run: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("hook {name} got {text:?}: {e}"))
}

#[test]
fn hooks_get_the_state() {
    if !isolate() {
        return;
    }
    let env = Env::new("hooks", &["sleep", "1000"]);
    let out = env.path("hooks");
    fs::create_dir(&out).unwrap();
    let hook = |name: &str| {
        json!({"path": "/bin/sh",
               "args": ["sh", "-c", format!("cat > {}/{name}.json", out.display())]})
    };
    env.edit(|c| {
        c["hooks"] = json!({
            "prestart": [hook("prestart")],
            "createRuntime": [hook("createRuntime")],
            "poststart": [hook("poststart")],
            "poststop": [hook("poststop")],
        });
    });
    env.create(&[]);
    let pid = env.pid() as i64;
    let bundle = env.bundle.canonicalize().unwrap();
    for name in ["createRuntime", "prestart"] {
        let s = read_hook(&out, name);
        assert_eq!(s["id"], env.id.as_str(), "{name}: {s}");
        // After step 2 of the lifecycle: "created" (runtime.md; crun, runtime-tools).
        assert_eq!(s["status"], "created", "{name}: {s}");
        assert_eq!(s["pid"], pid, "{name}: {s}");
        assert_eq!(s["bundle"], bundle.to_str().unwrap(), "{name}: {s}");
    }
    assert!(
        !out.join("poststart.json").exists(),
        "poststart ran before start"
    );

    env.ok(&["start", &env.id]);
    let s = read_hook(&out, "poststart");
    assert_eq!(s["status"], "running", "{s}");
    assert_eq!(s["pid"], pid, "{s}");
    assert!(
        !out.join("poststop.json").exists(),
        "poststop ran before delete"
    );

    env.ok(&["delete", "--force", &env.id]);
    let s = read_hook(&out, "poststop");
    assert_eq!(s["id"], env.id.as_str(), "{s}");
    assert_eq!(s["status"], "stopped", "{s}");
    env.assert_gone();
}

#[test]
fn failing_prestart_hook_fails_create_and_cleans_up() {
    if !isolate() {
        return;
    }
    let env = Env::new("badhook", &["sleep", "1000"]);
    env.edit(|c| {
        c["hooks"] = json!({"prestart": [{"path": "/bin/sh",
            "args": ["sh", "-c", "echo hook-says-no >&2; exit 9"]}]});
    });
    let err = env.fails(&["create", "--bundle", env.bundle_str(), &env.id]);
    assert!(err.contains("prestart"), "{err}");
    env.assert_gone();
}
