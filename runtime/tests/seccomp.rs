//! linux.seccomp in real containers: errno and kill actions, argument conditions, both
//! noNewPrivileges orders, exec'd processes, the Docker and containerd default profiles, refused
//! profiles, and SCMP_ACT_NOTIFY handing its fd to an agent at listenerPath.
//! Each test runs as root in its own mount + pid namespace (see common::isolate).

mod common;

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;

use common::{isolate, Env};
use nix::sys::socket::{self, ControlMessageOwned, MsgFlags};
use serde_json::{json, Value};

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/seccomp/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_slice(&std::fs::read(&path).expect("read fixture")).expect("fixture JSON")
}

fn set_profile(env: &Env, profile: Value, no_new_privs: bool) {
    env.edit(|c| {
        c["linux"]["seccomp"] = profile;
        c["process"]["noNewPrivileges"] = json!(no_new_privs);
    });
}

/// mkdir (and mkdirat) fail with EPERM; everything else is allowed.
fn no_mkdir() -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]
    })
}

#[test]
fn errno_rule_fails_one_syscall_with_and_without_no_new_privileges() {
    if !isolate() {
        return;
    }
    for nnp in [true, false] {
        let env = Env::new("errno", &["sh", "-c", "mkdir /tmp/x; echo rc=$?; echo ok"]);
        set_profile(&env, no_mkdir(), nnp);
        let out = env.run(&[]);
        assert_eq!(out.code(), Some(0), "nnp={nnp}: {out:?}");
        assert_eq!(out.stdout, "rc=1\nok\n", "nnp={nnp}: {out:?}");
        assert!(
            out.stderr.contains("Operation not permitted"),
            "nnp={nnp}: {out:?}"
        );
        assert!(!env.bundle.join("rootfs/tmp/x").exists());
        env.assert_gone();
    }
    // The same container without the profile makes the directory: the refusal came from it.
    let env = Env::new("errno", &["sh", "-c", "mkdir /tmp/x; echo rc=$?"]);
    let out = env.run(&[]);
    assert_eq!(out.stdout, "rc=0\n", "{out:?}");
}

/// Docker's allow-list without `uname`, and KILL as the default action.
fn allow_list_without_uname() -> Value {
    let mut p = fixture("docker-default-amd64.json");
    p["defaultAction"] = json!("SCMP_ACT_KILL");
    let names = p["syscalls"][0]["names"].as_array_mut().expect("names");
    names.retain(|n| n != "uname");
    p
}

#[test]
fn default_kill_kills_a_process_calling_a_syscall_not_allowed() {
    if !isolate() {
        return;
    }
    for nnp in [true, false] {
        let env = Env::new("kill", &["uname", "-s"]);
        set_profile(&env, allow_list_without_uname(), nnp);
        let out = env.run(&[]);
        assert!(!out.success(), "nnp={nnp}: {out:?}");
        // Killed by SIGSYS (31): runc's 128 + signal.
        assert_eq!(out.code(), Some(128 + 31), "nnp={nnp}: {out:?}");
        assert!(!out.stdout.contains("Linux"), "nnp={nnp}: {out:?}");
        env.assert_gone();
    }
    // With uname on the list, the same process runs: what killed it was the missing rule.
    let env = Env::new("kill", &["uname", "-s"]);
    let mut p = allow_list_without_uname();
    p["syscalls"][0]["names"]
        .as_array_mut()
        .expect("names")
        .push(json!("uname"));
    set_profile(&env, p, true);
    let out = env.run(&[]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, "Linux\n");
}

#[test]
fn argument_conditions_select_the_call() {
    if !isolate() {
        return;
    }
    // kill(…, SIGUSR1) is refused; kill(…, 0) is not.
    let env = Env::new(
        "args",
        &[
            "sh",
            "-c",
            "kill -0 1; echo a=$?; kill -USR1 1; echo b=$?; kill -0 1; echo c=$?",
        ],
    );
    set_profile(
        &env,
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]}]
        }),
        true,
    );
    let out = env.run(&[]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, "a=0\nb=1\nc=0\n", "{out:?}");
    assert!(out.stderr.contains("Operation not permitted"), "{out:?}");
}

#[test]
fn exec_runs_under_the_containers_filter() {
    if !isolate() {
        return;
    }
    for nnp in [true, false] {
        let env = Env::new("exec", &["sleep", "1000"]);
        set_profile(&env, no_mkdir(), nnp);
        env.run(&["-d"]);
        let out = env.myrt(&["exec", &env.id, "sh", "-c", "mkdir /tmp/y; echo rc=$?"]);
        assert_eq!(out.code(), Some(0), "nnp={nnp}: {out:?}");
        assert_eq!(out.stdout, "rc=1\n", "nnp={nnp}: {out:?}");
        let status = env.ok(&["exec", &env.id, "grep", "Seccomp:", "/proc/self/status"]);
        assert_eq!(status.split_whitespace().nth(1), Some("2"), "{status}");
        env.ok(&["delete", "--force", &env.id]);
        env.assert_gone();
    }
}

#[test]
fn docker_and_containerd_default_profiles_run_a_shell() {
    if !isolate() {
        return;
    }
    for name in ["docker-default-amd64.json", "containerd-default-amd64.json"] {
        for nnp in [true, false] {
            let env = Env::new(
                "default",
                &["sh", "-c", "echo ok; grep Seccomp: /proc/self/status"],
            );
            set_profile(&env, fixture(name), nnp);
            let out = env.run(&[]);
            assert_eq!(out.code(), Some(0), "{name} nnp={nnp}: {out:?}");
            assert!(out.stdout.starts_with("ok\nSeccomp:\t2"), "{name}: {out:?}");
            env.assert_gone();
        }
    }
}

#[test]
fn bad_profiles_fail_create_naming_the_field_and_leave_nothing() {
    if !isolate() {
        return;
    }
    let cases = [
        (
            json!({"defaultAction": "SCMP_ACT_FOO"}),
            r#"linux.seccomp.defaultAction "SCMP_ACT_FOO": unknown action"#,
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"]}),
            r#"linux.seccomp.architectures[0] "SCMP_ARCH_VAX": unknown architecture"#,
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["kill"],
                "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}]}),
            "linux.seccomp.syscalls[0].errnoRet: errno return 70000 is out of range",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["kill"],
                "action": "SCMP_ACT_ERRNO", "args": [{"index": 7, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
            "linux.seccomp.syscalls[0].args[0].index: 7",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"],
                "action": "SCMP_ACT_NOTIFY"}]}),
            "linux.seccomp.listenerPath: missing",
        ),
    ];
    for (profile, want) in cases {
        let env = Env::new("bad", &["true"]);
        set_profile(&env, profile, true);
        let err = env.fails(&["create", "--bundle", env.bundle_str(), &env.id]);
        assert!(err.contains(want), "{want}: {err}");
        env.assert_gone();
    }
}

/// Receives one message with one fd (runtime-spec seccomp agent protocol).
fn recv_fd_and_payload(sock: RawFd) -> (OwnedFd, Value) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut cmsg_buf = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = socket::recvmsg::<()>(sock, &mut iov, Some(&mut cmsg_buf), MsgFlags::empty())
        .expect("recvmsg from the runtime");
    let mut fds = Vec::new();
    for c in msg.cmsgs().expect("cmsgs") {
        if let ControlMessageOwned::ScmRights(raw) = c {
            fds.extend(raw);
        }
    }
    let n = msg.bytes;
    assert_eq!(fds.len(), 1, "one fd expected, got {fds:?}");
    // SAFETY: the kernel just installed this fd for us.
    let fd = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    let payload = serde_json::from_slice(&buf[..n]).expect("payload is JSON");
    (fd, payload)
}

#[test]
fn notify_hands_the_listener_to_the_agent_which_answers() {
    if !isolate() {
        return;
    }
    let env = Env::new("notify", &["sh", "-c", "mkdir /tmp/n; echo rc=$?; echo ok"]);
    let sock_path = env.path("agent.sock");
    let listener = UnixListener::bind(&sock_path).expect("bind agent socket");
    let mut profile = no_mkdir();
    profile["syscalls"][0]["action"] = json!("SCMP_ACT_NOTIFY");
    profile["listenerPath"] = json!(sock_path);
    profile["listenerMetadata"] = json!("meta-x");
    set_profile(&env, profile, true);

    let agent = std::thread::spawn(move || {
        let (conn, _) = listener.accept().expect("accept the runtime");
        let (fd, payload) = recv_fd_and_payload(conn.as_raw_fd());
        let req = libseccomp::ScmpNotifReq::receive(fd.as_raw_fd()).expect("a notification");
        let name = req.data.syscall.get_name().unwrap_or_default();
        // Answer ENOSPC, which no real mkdir here would give.
        libseccomp::ScmpNotifResp::new_error(
            req.id,
            -libc::ENOSPC,
            libseccomp::ScmpNotifRespFlags::empty(),
        )
        .respond(fd.as_raw_fd())
        .expect("respond");
        (payload, name, req.pid)
    });
    let out = env.run(&[]);
    let (payload, name, pid) = agent.join().expect("agent thread");
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, "rc=1\nok\n", "{out:?}");
    assert!(out.stderr.contains("No space left on device"), "{out:?}");
    assert!(name.starts_with("mkdir"), "{name}");
    assert_eq!(payload["fds"], json!(["seccompFd"]), "{payload}");
    assert_eq!(payload["metadata"], json!("meta-x"), "{payload}");
    assert_eq!(payload["state"]["id"], json!(env.id), "{payload}");
    assert_eq!(
        payload["state"]["bundle"],
        json!(env.bundle_str()),
        "{payload}"
    );
    // The process the agent is told about is the container's init, by the agent's pid.
    let init = payload["pid"].as_i64().expect("pid");
    assert!(init > 1, "{payload}");
    assert_eq!(payload["state"]["pid"].as_i64(), Some(init), "{payload}");
    // The notification came from the shell's mkdir, a child of the init or the init itself.
    assert!(pid as i64 >= init, "{pid} vs {init}");
    env.assert_gone();
}

/// runc's order: with noNewPrivileges the filter is loaded after the runtime's own setup (so a
/// profile may deny capset), without it before the capabilities are dropped (so capset runs
/// under the filter and is refused).
#[test]
fn no_new_privileges_decides_whether_setup_runs_under_the_filter() {
    if !isolate() {
        return;
    }
    let deny_capset = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["capset"], "action": "SCMP_ACT_ERRNO"}]
    });
    let env = Env::new("order", &["echo", "ran"]);
    set_profile(&env, deny_capset.clone(), true);
    let out = env.run(&[]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, "ran\n");
    env.assert_gone();

    let env = Env::new("order", &["echo", "ran"]);
    set_profile(&env, deny_capset, false);
    let out = env.run(&[]);
    assert!(!out.success(), "{out:?}");
    assert!(out.stderr.contains("process.capabilities"), "{out:?}");
    assert!(!out.stdout.contains("ran"), "{out:?}");
    env.assert_gone();
}

/// An exec'd process loads the container's filter too, and its own listener fd reaches the agent
/// with the exec'd process's pid and the container's state.
#[test]
fn exec_hands_its_own_listener_to_the_agent() {
    if !isolate() {
        return;
    }
    let env = Env::new("notifyexec", &["sleep", "1000"]);
    let sock_path = env.path("agent.sock");
    let listener = UnixListener::bind(&sock_path).expect("bind agent socket");
    let mut profile = no_mkdir();
    profile["syscalls"][0]["action"] = json!("SCMP_ACT_NOTIFY");
    profile["listenerPath"] = json!(sock_path);
    set_profile(&env, profile, false);

    let agent = std::thread::spawn(move || {
        let mut got = Vec::new();
        for _ in 0..2 {
            let (conn, _) = listener.accept().expect("accept the runtime");
            got.push(recv_fd_and_payload(conn.as_raw_fd()));
        }
        let fd = got[1].0.as_raw_fd();
        let req = libseccomp::ScmpNotifReq::receive(fd).expect("a notification");
        libseccomp::ScmpNotifResp::new_error(
            req.id,
            -libc::ENOSPC,
            libseccomp::ScmpNotifRespFlags::empty(),
        )
        .respond(fd)
        .expect("respond");
        got.into_iter().map(|(_, p)| p).collect::<Vec<_>>()
    });
    env.run(&["-d"]);
    let init = env.pid();
    let out = env.myrt(&["exec", &env.id, "sh", "-c", "mkdir /tmp/e; echo rc=$?"]);
    let payloads = agent.join().expect("agent thread");
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, "rc=1\n", "{out:?}");
    assert!(out.stderr.contains("No space left on device"), "{out:?}");
    assert_eq!(payloads[0]["pid"].as_i64(), Some(i64::from(init)));
    let exec = &payloads[1];
    assert_eq!(
        exec["state"]["pid"].as_i64(),
        Some(i64::from(init)),
        "{exec}"
    );
    assert_eq!(exec["state"]["status"], json!("running"), "{exec}");
    let pid = exec["pid"].as_i64().expect("pid");
    assert!(pid > 1 && pid != i64::from(init), "{exec}");
    env.ok(&["delete", "--force", &env.id]);
    env.assert_gone();
}

/// A profile that denies getcwd, loaded before the cwd check (noNewPrivileges off): the
/// CVE-2024-21626 check falls back to /proc/self/cwd and the container runs, in the right cwd.
#[test]
fn a_profile_denying_getcwd_does_not_stop_the_cwd_check() {
    if !isolate() {
        return;
    }
    for nnp in [false, true] {
        let env = Env::new("getcwd", &["sh", "-c", "cd . ; echo ok"]);
        env.edit(|c| c["process"]["cwd"] = json!("/tmp"));
        set_profile(
            &env,
            json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]
            }),
            nnp,
        );
        let out = env.run(&[]);
        assert_eq!(out.code(), Some(0), "nnp={nnp}: {out:?}");
        assert_eq!(out.stdout, "ok\n", "nnp={nnp}: {out:?}");
        env.assert_gone();
    }
}
