//! `myrt checkpoint` / `myrt restore` with the real CRIU on the real kernel: a counting process
//! continues where it stopped, with new stdio pipes; `--leave-running` keeps the original; a
//! restore into a cgroup in use is refused; state CRIU cannot dump fails with CRIU's reason and
//! the container runs on; a missing or damaged image leaves nothing behind. Each test runs as
//! root in its own mount + pid namespace (common::isolate). CRIU: $MYRT_TEST_CRIU, else
//! /usr/local/sbin/criu (scripts/install-criu.sh), else `criu` on PATH.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{isolate, Env};
use serde_json::json;

/// Counts 1, 2, 3 … every 0.1 s into /out/counter (a bind of a host dir) and onto stdout.
const COUNTER: &str =
    "i=0; while true; do i=$((i+1)); echo $i > /out/counter; echo $i; sleep 0.1; done";

fn criu() -> String {
    std::env::var("MYRT_TEST_CRIU").unwrap_or_else(|_| {
        if Path::new("/usr/local/sbin/criu").exists() {
            "/usr/local/sbin/criu".into()
        } else {
            "criu".into()
        }
    })
}

/// A counter container; returns the env and the host path of its counter file.
fn counter_env(tag: &str, script: &str) -> (Env, PathBuf) {
    let env = Env::new(tag, &["sh", "-c", script]);
    let out = env.share_out();
    (env, out.join("counter"))
}

/// What a quiet `myrt` call left: its status and stderr.
struct Quiet {
    status: std::process::ExitStatus,
    stderr: String,
}

/// `myrt <args>` with stdin/stdout on /dev/null (CRIU reopens it by path on restore) and stderr
/// into a file (a detached container keeps what it inherits open: a pipe would never end).
fn quiet(env: &Env, args: &[&str]) -> Quiet {
    let err = env.path("quiet.err");
    let mut cmd = env.command(&[&["--criu", &criu()], args].concat());
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    // The container's init inherits stdio: a host file there is one CRIU cannot dump ("Can't
    // lookup mount"), /dev/null it reopens by path.
    if args.first() == Some(&"run") {
        cmd.stderr(Stdio::null());
    } else {
        cmd.stderr(fs::File::create(&err).expect("stderr file"));
    }
    let status = cmd.status().expect("run myrt");
    Quiet {
        status,
        stderr: fs::read_to_string(&err).unwrap_or_default(),
    }
}

#[track_caller]
fn quiet_ok(env: &Env, args: &[&str]) {
    let out = quiet(env, args);
    assert!(out.status.success(), "myrt {args:?} failed: {}", out.stderr);
}

/// `myrt restore -d` of `id` from `image` with the env's bundle, stdio on /dev/null.
fn restore(env: &Env, image: &str, id: &str) -> Quiet {
    quiet(
        env,
        &[
            "restore",
            "-d",
            "--image-path",
            image,
            "--bundle",
            env.bundle_str(),
            id,
        ],
    )
}

fn read_counter(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Waits (bounded) until the counter file shows at least `min`.
#[track_caller]
fn wait_counter(path: &Path, min: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(n) = read_counter(path).filter(|n| *n >= min) {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "counter {} stayed below {min}: {:?}",
            path.display(),
            read_counter(path)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn cgroup_of(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default()
}

#[test]
fn checkpoint_and_restore_continue_the_counter() {
    if !isolate() {
        return;
    }
    let (env, counter) = counter_env("ckpt", COUNTER);
    let image = env.path("image");
    let image_s = image.to_str().unwrap();
    quiet_ok(&env, &["run", "-d", "--bundle", env.bundle_str(), &env.id]);
    wait_counter(&counter, 5);

    quiet_ok(&env, &["checkpoint", "--image-path", image_s, &env.id]);
    // Without --leave-running the tree is gone and so is the container (runc deletes it).
    assert!(
        env.state().is_none(),
        "the container outlived its checkpoint"
    );
    common::assert_no_processes();
    let n1 = read_counter(&counter).expect("counter");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(read_counter(&counter), Some(n1), "something still counts");
    for f in ["inventory.img", "myrt-checkpoint.json", "descriptors.json"] {
        assert!(image.join(f).is_file(), "{f} missing in the image dir");
    }

    {
        let out = restore(&env, image_s, &env.id);
        assert!(out.status.success(), "restore failed: {}", out.stderr);
    };
    assert_eq!(env.status(), "running");
    let n2 = wait_counter(&counter, n1 + 1);
    assert!(
        n2 <= n1 + 20,
        "the counter restarted or jumped: {n1} then {n2}"
    );
    let n3 = wait_counter(&counter, n2 + 3);
    assert!(n3 > n2);
    // The restored tree is a container like any other: own cgroup, exec, pause, kill, delete.
    let pid = env.pid();
    assert!(
        cgroup_of(pid).contains(&env.cgroup),
        "restored init not in {}: {}",
        env.cgroup,
        cgroup_of(pid)
    );
    // The counter file may be caught between the shell's truncate and its write: exec is shown
    // to work by the file being there and a line of its own.
    let out = env.ok(&[
        "exec",
        &env.id,
        "sh",
        "-c",
        "test -f /out/counter && echo exec-ok",
    ]);
    assert_eq!(out, "exec-ok\n");
    env.ok(&["pause", &env.id]);
    assert_eq!(env.status(), "paused");
    let frozen = read_counter(&counter);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(read_counter(&counter), frozen, "counts while paused");
    env.ok(&["resume", &env.id]);
    wait_counter(&counter, frozen.unwrap_or(0) + 2);
    env.ok(&["kill", &env.id, "KILL"]);
    env.wait_status("stopped");
    env.ok(&["delete", &env.id]);
    env.assert_gone();
}

#[test]
fn restore_gives_the_tree_new_stdio_pipes() {
    if !isolate() {
        return;
    }
    let (env, counter) = counter_env("pipes", COUNTER);
    let image = env.path("image");
    let image_s = image.to_str().unwrap();
    // The init's stdout is a pipe we read; CRIU records it as "pipe:[inode]".
    let mut run = env.command(&["run", "-d", "--bundle", env.bundle_str(), &env.id]);
    let mut child = run
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("myrt run");
    let mut first = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    first.read_line(&mut line).expect("first line");
    assert_eq!(line.trim(), "1");
    let _ = child.wait();
    wait_counter(&counter, 3);
    quiet_ok(&env, &["checkpoint", "--image-path", image_s, &env.id]);
    let desc = fs::read_to_string(image.join("descriptors.json")).expect("descriptors.json");
    assert!(
        desc.contains("pipe:["),
        "stdout was not recorded as a pipe: {desc}"
    );
    let n1 = read_counter(&counter).expect("counter");
    drop(first);

    let mut restore = env.command(&[
        "--criu",
        &criu(),
        "restore",
        "-d",
        "--image-path",
        image_s,
        "--bundle",
        env.bundle_str(),
        &env.id,
    ]);
    let mut child = restore
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("myrt restore");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    lines
        .read_line(&mut line)
        .expect("a line from the restored tree");
    let n: u64 = line.trim().parse().unwrap_or_else(|_| {
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err);
        panic!("restored output {line:?}; myrt restore said: {err}")
    });
    // The dump may fall between the file write and the echo of one number: n1 may come again.
    assert!(
        n >= n1 && n <= n1 + 20,
        "the restored tree printed {n} on its new stdout after {n1}"
    );
    let status = child.wait().expect("wait restore");
    assert!(status.success(), "restore failed");
    env.ok(&["delete", "--force", &env.id]);
    env.assert_gone();
}

#[test]
fn leave_running_keeps_the_original_and_a_copy_needs_its_own_cgroup() {
    if !isolate() {
        return;
    }
    let (env, counter) = counter_env("leave", COUNTER);
    let image = env.path("image");
    let image_s = image.to_str().unwrap();
    quiet_ok(&env, &["run", "-d", "--bundle", env.bundle_str(), &env.id]);
    let n1 = wait_counter(&counter, 3);
    let pid = env.pid();
    quiet_ok(
        &env,
        &[
            "checkpoint",
            "--leave-running",
            "--image-path",
            image_s,
            &env.id,
        ],
    );
    assert_eq!(env.status(), "running");
    assert_eq!(env.pid(), pid, "the original init changed");
    wait_counter(&counter, n1 + 3);

    // The same bundle names the original's cgroup: a copy there would share (and, on delete,
    // kill) it, so the restore is refused before anything is made.
    let copy = format!("{}-copy", env.id);
    let out = restore(&env, image_s, &copy);
    let err = &out.stderr;
    assert!(
        !out.status.success(),
        "restore into a busy cgroup succeeded"
    );
    assert!(
        err.contains("linux.cgroupsPath") && err.contains(&env.cgroup),
        "{err}"
    );
    assert!(
        !env.root.join(&copy).exists(),
        "state of the refused copy left"
    );
    assert_eq!(env.status(), "running");

    // With a cgroup of its own the copy runs next to the original.
    let own = format!("{}-copy", env.cgroup);
    env.edit(|c| c["linux"]["cgroupsPath"] = json!(own));
    {
        let out = restore(&env, image_s, &copy);
        assert!(out.status.success(), "restore failed: {}", out.stderr);
    };
    let copy_state: serde_json::Value =
        serde_json::from_str(&env.ok(&["state", &copy])).expect("state json");
    let copy_pid = copy_state["pid"].as_i64().expect("pid") as i32;
    assert!(
        cgroup_of(copy_pid).contains(&own),
        "{}",
        cgroup_of(copy_pid)
    );
    env.ok(&["delete", "--force", &copy]);
    let before = wait_counter(&counter, 0);
    wait_counter(&counter, before + 3);
    assert_eq!(
        env.status(),
        "running",
        "deleting the copy hurt the original"
    );
    env.ok(&["delete", "--force", &env.id]);
    env.edit(|c| c["linux"]["cgroupsPath"] = json!(env.cgroup.clone()));
    env.assert_gone();
}

#[test]
fn undumpable_socket_fails_with_criu_reason_and_the_container_runs_on() {
    if !isolate() {
        return;
    }
    // busybox crond logs through syslog(): /dev/log → a datagram socket bound on the host,
    // so the container holds a unix socket whose peer CRIU cannot dump.
    let script = format!("ln -s /out/log /dev/log; crond -f -c /tmp -l 8 & {COUNTER}");
    let (env, counter) = counter_env("extsk", &script);
    let sock = counter.with_file_name("log");
    let host = UnixDatagram::bind(&sock).expect("bind the host socket");
    host.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    quiet_ok(&env, &["run", "-d", "--bundle", env.bundle_str(), &env.id]);
    let mut buf = [0u8; 512];
    let n = host.recv(&mut buf).expect("crond's first log line");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("crond"));
    let n1 = wait_counter(&counter, 3);

    let image = env.path("image");
    let out = quiet(
        &env,
        &[
            "checkpoint",
            "--image-path",
            image.to_str().unwrap(),
            &env.id,
        ],
    );
    let err = &out.stderr;
    assert!(
        !out.status.success(),
        "the dump of an external socket succeeded"
    );
    assert!(err.contains("criu dump failed"), "{err}");
    assert!(
        err.contains("without peer") || err.contains("External socket"),
        "CRIU's reason is missing: {err}"
    );
    assert!(err.contains("dump.log"), "the log is not named: {err}");
    assert_eq!(env.status(), "running");
    wait_counter(&counter, n1 + 3);
    env.ok(&["delete", "--force", &env.id]);
    env.assert_gone();
}

#[test]
fn restore_from_a_missing_or_damaged_image_leaves_nothing() {
    if !isolate() {
        return;
    }
    let (env, counter) = counter_env("badimg", COUNTER);
    let missing = env.path("no-such-image");
    let out = restore(&env, missing.to_str().unwrap(), &env.id);
    let err = &out.stderr;
    assert!(!out.status.success());
    assert!(
        err.contains(missing.to_str().unwrap()) && err.contains("inventory.img"),
        "{err}"
    );
    env.assert_gone();

    // A real checkpoint whose process images are then overwritten with junk.
    let image = env.path("image");
    let image_s = image.to_str().unwrap();
    quiet_ok(&env, &["run", "-d", "--bundle", env.bundle_str(), &env.id]);
    wait_counter(&counter, 3);
    quiet_ok(&env, &["checkpoint", "--image-path", image_s, &env.id]);
    let mut damaged = 0;
    for e in fs::read_dir(&image).expect("image dir") {
        let p = e.expect("entry").path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("core-") || name == "pstree.img" {
            fs::write(&p, b"not a CRIU image").expect("damage");
            damaged += 1;
        }
    }
    assert!(damaged >= 2, "nothing to damage in {}", image.display());
    let out = restore(&env, image_s, &env.id);
    let err = &out.stderr;
    assert!(!out.status.success(), "restore from junk succeeded");
    assert!(
        err.contains("criu restore failed") && err.contains("restore.log"),
        "{err}"
    );
    env.assert_gone();
}

#[test]
fn only_a_live_container_can_be_checkpointed() {
    if !isolate() {
        return;
    }
    let env = Env::new("created", &["sleep", "30"]);
    env.create(&[]);
    let err = env.fails(&[
        "--criu",
        &criu(),
        "checkpoint",
        "--image-path",
        env.path("image").to_str().unwrap(),
        &env.id,
    ]);
    assert!(
        err.contains("cannot checkpoint a created container"),
        "{err}"
    );
    assert_eq!(env.status(), "created");
    env.ok(&["start", &env.id]);
    let err = env.fails(&[
        "--criu",
        "/nonexistent/criu",
        "checkpoint",
        "--image-path",
        env.path("image").to_str().unwrap(),
        &env.id,
    ]);
    assert!(
        err.contains("/nonexistent/criu") && err.contains("install CRIU"),
        "{err}"
    );
    assert_eq!(env.status(), "running");
    // Flags for what is not supported are refused by name, not ignored.
    for flag in ["--parent-path", "--pre-dump", "--lazy-pages"] {
        let mut args = vec!["checkpoint", flag];
        if flag == "--parent-path" {
            args.push("/tmp");
        }
        args.push(&env.id);
        let err = env.fails(&args);
        assert!(err.contains(flag) && err.contains("not supported"), "{err}");
    }
    assert_eq!(env.status(), "running");
    env.ok(&["delete", "--force", &env.id]);
    env.assert_gone();
}

/// The first whole number the terminal shows after `after` (bounded).
fn number_from(master: std::os::fd::OwnedFd, after: u64) -> u64 {
    let mut r = BufReader::new(fs::File::from(master));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            Instant::now() < deadline,
            "no number above {after} on the terminal"
        );
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            panic!("the terminal closed before a number above {after}");
        }
        if let Ok(n) = line.trim().parse::<u64>() {
            if n > after {
                return n;
            }
        }
    }
}

#[test]
fn a_terminal_comes_back_over_a_new_console_socket() {
    if !isolate() {
        return;
    }
    let (env, counter) = counter_env("tty", COUNTER);
    env.edit(|c| c["process"]["terminal"] = json!(true));
    let image = env.path("image");
    let image_s = image.to_str().unwrap();
    let sock = env.path("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
    let mut run = env.command(&[
        "run",
        "-d",
        "--console-socket",
        sock.to_str().unwrap(),
        "--bundle",
        env.bundle_str(),
        &env.id,
    ]);
    let child = run
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("myrt run");
    let master = common::accept_console(&listener).expect("pty master");
    let (status, _) = common::wait_timeout(child, Duration::from_secs(30));
    assert!(status.success(), "run -d with a terminal failed");
    let first = number_from(master.try_clone().expect("dup"), 0);
    assert!(first >= 1);
    wait_counter(&counter, 3);
    quiet_ok(&env, &["checkpoint", "--image-path", image_s, &env.id]);
    let n1 = read_counter(&counter).expect("counter");
    drop(master);

    let sock2 = env.path("console2.sock");
    let listener2 = std::os::unix::net::UnixListener::bind(&sock2).expect("bind");
    let mut restore = env.command(&[
        "--criu",
        &criu(),
        "restore",
        "-d",
        "--console-socket",
        sock2.to_str().unwrap(),
        "--image-path",
        image_s,
        "--bundle",
        env.bundle_str(),
        &env.id,
    ]);
    let err = env.path("restore.err");
    let child = restore
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&err).expect("err file"))
        .spawn()
        .expect("myrt restore");
    let master = common::accept_console(&listener2);
    let (status, _) = common::wait_timeout(child, Duration::from_secs(60));
    let said = fs::read_to_string(&err).unwrap_or_default();
    assert!(status.success(), "restore with a terminal failed: {said}");
    let master = master.unwrap_or_else(|e| panic!("no pty master: {e}; restore said: {said}"));
    let n = number_from(master, n1);
    assert!(n <= n1 + 30, "the restored tree printed {n} after {n1}");
    env.ok(&["delete", "--force", &env.id]);
    env.assert_gone();
}
