//! The container lifecycle through `myrt`: run, create/start/kill/delete, illegal transitions,
//! pause/resume, exec, kill --all, ps, list, pid files and signal forwarding.
//! Each test runs as root in its own mount + pid namespace (see common::isolate).

mod common;

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{isolate, wait_for_file, wait_timeout, Env};
use serde_json::{json, Value};

#[test]
fn run_prints_and_exits_zero_then_is_gone() {
    if !isolate() {
        return;
    }
    let env = Env::new("echo", &["echo", "hello from myrt"]);
    let out = env.run(&[]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, "hello from myrt\n");
    env.assert_gone();
}

#[test]
fn run_exits_with_the_container_status() {
    if !isolate() {
        return;
    }
    let env = Env::new("exit3", &["sh", "-c", "exit 3"]);
    let out = env.run(&[]);
    assert_eq!(out.code(), Some(3), "{out:?}");
    env.assert_gone();
}

#[test]
fn run_keep_leaves_a_stopped_container() {
    if !isolate() {
        return;
    }
    let env = Env::new("keep", &["true"]);
    let out = env.run(&["--keep"]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(env.status(), "stopped");
    env.ok(&["delete", &env.id]);
    env.assert_gone();
}

#[test]
fn create_start_kill_delete() {
    if !isolate() {
        return;
    }
    let env = Env::new("life", &["sleep", "1000"]);
    let pid_file = env.path("init.pid");
    env.create(&["--pid-file", pid_file.to_str().unwrap()]);

    let state = env.state().expect("state after create");
    assert_eq!(state["status"], "created");
    assert_eq!(state["id"], env.id.as_str());
    assert_eq!(
        state["bundle"],
        env.bundle.canonicalize().unwrap().to_str().unwrap()
    );
    let pid = state["pid"].as_i64().unwrap();
    assert!(pid > 1, "pid {pid}");
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(fs::read_to_string(&pid_file).unwrap(), pid.to_string());
    // The init waits for start: it has not exec'd `sleep` yet.
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_ne!(comm.trim(), "sleep");
    assert!(
        !env.cgroup_dirs().is_empty(),
        "no cgroup for a created container"
    );

    env.ok(&["start", &env.id]);
    assert_eq!(env.status(), "running");
    let comm = wait_for_file(Path::new(&format!("/proc/{pid}/comm")), |c| {
        c.trim() == "sleep"
    });
    assert_eq!(comm.trim(), "sleep");
    assert_eq!(env.pid() as i64, pid);

    env.ok(&["kill", &env.id, "SIGKILL"]);
    env.wait_status("stopped");
    assert_eq!(env.state().unwrap()["pid"], 0);

    env.ok(&["delete", &env.id]);
    let err = env.fails(&["state", &env.id]);
    assert!(err.contains("does not exist"), "{err}");
    env.assert_gone();
}

#[test]
fn illegal_transitions_name_the_state() {
    if !isolate() {
        return;
    }
    let env = Env::new("illegal", &["sleep", "1000"]);
    env.create(&[]);
    let err = env.fails(&["pause", &env.id]);
    assert!(err.contains("created"), "{err}");
    let err = env.fails(&["resume", &env.id]);
    assert!(err.contains("created"), "{err}");

    env.ok(&["start", &env.id]);
    let err = env.fails(&["start", &env.id]);
    assert!(err.contains("running"), "{err}");
    let err = env.fails(&["resume", &env.id]);
    assert!(err.contains("running"), "{err}");
    let err = env.fails(&["delete", &env.id]);
    assert!(err.contains("running"), "{err}");
    assert_eq!(env.status(), "running", "a refused verb changed the state");

    env.ok(&["pause", &env.id]);
    let err = env.fails(&["pause", &env.id]);
    assert!(err.contains("paused"), "{err}");
    let err = env.fails(&["exec", &env.id, "true"]);
    assert!(err.contains("paused"), "{err}");

    env.ok(&["delete", "--force", &env.id]);
    env.assert_gone();
    let err = env.fails(&["start", &env.id]);
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn delete_of_a_missing_container() {
    if !isolate() {
        return;
    }
    let env = Env::new("nodelete", &["true"]);
    let err = env.fails(&["delete", &env.id]);
    assert!(err.contains("does not exist"), "{err}");
    env.ok(&["delete", "--force", &env.id]);
}

#[test]
fn delete_of_a_created_container_kills_its_init() {
    if !isolate() {
        return;
    }
    let env = Env::new("delcreated", &["sleep", "1000"]);
    env.create(&[]);
    let pid = env.pid();
    env.ok(&["delete", &env.id]);
    env.assert_gone();
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
}

/// Reads the freezer state of the container's cgroup (v1 freezer.state or v2 cgroup.freeze).
fn frozen(env: &Env) -> bool {
    for dir in env.cgroup_dirs() {
        if let Ok(s) = fs::read_to_string(dir.join("freezer.state")) {
            return s.trim() == "FROZEN";
        }
        if let Ok(s) = fs::read_to_string(dir.join("cgroup.freeze")) {
            return s.trim() == "1";
        }
    }
    panic!("no freezer for {:?}", env.cgroup_dirs());
}

#[test]
fn pause_freezes_and_resume_thaws() {
    if !isolate() {
        return;
    }
    let env = Env::new("pause", &[]);
    let shared = env.share_out();
    env.edit(|c| {
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i > /out/count; sleep 0.02; done"
        ]);
    });
    env.run(&["-d"]);
    let count = shared.join("count");
    let read = || {
        fs::read_to_string(&count)
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    wait_for_file(&count, |c| c.trim().parse::<u32>().is_ok_and(|n| n > 2));

    env.ok(&["pause", &env.id]);
    assert_eq!(env.status(), "paused");
    assert!(frozen(&env), "cgroup not frozen");
    let before = read();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(read(), before, "a paused container kept running");

    env.ok(&["resume", &env.id]);
    assert_eq!(env.status(), "running");
    assert!(!frozen(&env));
    let after = wait_for_file(&count, |c| c.trim() != before);
    assert_ne!(after.trim(), before, "a resumed container did not run");

    env.ok(&["delete", "--force", &env.id]);
    env.assert_gone();
}

#[test]
fn exec_applies_its_process_settings() {
    if !isolate() {
        return;
    }
    let env = Env::new("exec", &["sleep", "1000"]);
    env.run(&["-d"]);
    let id = env.id.as_str();

    let out = env.myrt(&["exec", id, "sh", "-c", "exit 5"]);
    assert_eq!(out.code(), Some(5), "{out:?}");

    let out = env.ok(&[
        "exec",
        "--env",
        "FOO=bar",
        "-e",
        "PATH=/bin",
        id,
        "sh",
        "-c",
        "echo $FOO:$PATH",
    ]);
    assert_eq!(out, "bar:/bin\n");

    let out = env.ok(&["exec", "--cwd", "/tmp", id, "pwd"]);
    assert_eq!(out, "/tmp\n");

    let out = env.ok(&[
        "exec",
        "--user",
        "1000:1001",
        id,
        "sh",
        "-c",
        "id -u; id -g",
    ]);
    assert_eq!(out, "1000\n1001\n");

    let out = env.ok(&["exec", "-u", "7", "--additional-gids", "50", id, "id", "-G"]);
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["0", "50"]);

    // The exec'd process shares the init's namespaces: same pid namespace, so it sees pid 1.
    let out = env.ok(&["exec", id, "cat", "/proc/1/cmdline"]);
    assert!(out.starts_with("sleep"), "{out:?}");

    let err = env.fails(&["exec", id, "no-such-program"]);
    assert!(err.contains("executable file not found in $PATH"), "{err}");

    let process = env.path("process.json");
    fs::write(
        &process,
        json!({"args": ["sh", "-c", "echo from-file $X; exit 4"], "cwd": "/",
               "env": ["X=y", "PATH=/bin"], "user": {"uid": 0, "gid": 0}})
        .to_string(),
    )
    .unwrap();
    let out = env.myrt(&["exec", "--process", process.to_str().unwrap(), id]);
    assert_eq!(out.code(), Some(4), "{out:?}");
    assert_eq!(out.stdout, "from-file y\n");

    let err = env.fails(&["exec", id]);
    assert!(err.contains("process args cannot be empty"), "{err}");

    // Detached: returns at once; the pid file names the process, which is in the container.
    let pid_file = env.path("exec.pid");
    env.ok(&[
        "exec",
        "-d",
        "--pid-file",
        pid_file.to_str().unwrap(),
        id,
        "sleep",
        "500",
    ]);
    let pid: i32 = fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    let ps: Vec<i64> = serde_json::from_str(&env.ok(&["ps", "--format", "json", id])).unwrap();
    assert!(ps.contains(&(pid as i64)), "{pid} not in {ps:?}");

    env.ok(&["delete", "--force", id]);
    env.assert_gone();
}

#[test]
fn exec_with_a_terminal_relays_output() {
    if !isolate() {
        return;
    }
    let env = Env::new("exectty", &["sleep", "1000"]);
    env.run(&["-d"]);
    let out = env.myrt(&["exec", "-t", &env.id, "sh", "-c", "tty; echo on-the-pty"]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    let lines: Vec<&str> = out
        .stdout
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .collect();
    assert!(lines[0].starts_with("/dev/pts/"), "{:?}", out.stdout);
    assert_eq!(lines[1], "on-the-pty");
    // The pty turns \n into \r\n: the output really went through a terminal.
    assert!(out.stdout.contains("\r\n"));
    env.ok(&["delete", "--force", &env.id]);
}

#[test]
fn foreground_run_with_a_terminal_relays_output() {
    if !isolate() {
        return;
    }
    let env = Env::new("runtty", &["sh", "-c", "tty; echo on-the-pty; exit 6"]);
    env.edit(|c| c["process"]["terminal"] = json!(true));
    let out = env.run(&[]);
    assert_eq!(out.code(), Some(6), "{out:?}");
    assert!(out.stdout.starts_with("/dev/pts/0\r\n"), "{:?}", out.stdout);
    assert!(out.stdout.contains("on-the-pty\r\n"), "{:?}", out.stdout);
    env.assert_gone();
}

fn ps_json(env: &Env) -> Vec<i64> {
    serde_json::from_str(&env.ok(&["ps", "-f", "json", &env.id])).unwrap()
}

fn wait_pids(env: &Env, n: usize) -> Vec<i64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = ps_json(env);
        if pids.len() == n || Instant::now() > deadline {
            return pids;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn kill_all_reaches_every_process_and_ps_lists_them() {
    if !isolate() {
        return;
    }
    // Once the sleeps are gone the init execs a sleep of its own, so it stays the only process.
    let env = Env::new(
        "killall",
        &[
            "sh",
            "-c",
            "sleep 1001 & sleep 1002 & wait; exec sleep 1003",
        ],
    );
    env.run(&["-d"]);
    let pids = wait_pids(&env, 3);
    assert_eq!(pids.len(), 3, "{pids:?}");
    assert!(pids.contains(&(env.pid() as i64)));

    let table = env.ok(&["ps", &env.id]);
    let mut lines = table.lines();
    assert!(lines.next().unwrap().contains("PID"), "{table}");
    let body: Vec<&str> = lines.collect();
    assert_eq!(body.len(), 3, "{table}");
    assert!(
        table.contains("sleep 1001") && table.contains("sleep 1002"),
        "{table}"
    );

    // SIGTERM to the init alone: sh as pid 1 of its namespace ignores it, nothing changes.
    env.ok(&["kill", &env.id, "TERM"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(ps_json(&env).len(), 3);
    // --all reaches the sleeps, which die; the init survives.
    env.ok(&["kill", "--all", &env.id, "15"]);
    let left = wait_pids(&env, 1);
    assert_eq!(left, [env.pid() as i64]);
    assert_eq!(env.status(), "running");

    env.ok(&["kill", "-a", &env.id, "KILL"]);
    env.wait_status("stopped");
    assert!(ps_json(&env).is_empty());
    env.ok(&["delete", &env.id]);
    env.assert_gone();
}

#[test]
fn list_shows_containers() {
    if !isolate() {
        return;
    }
    let a = Env::new("lista", &["sleep", "1000"]);
    a.run(&["-d"]);
    // A second container under the same root.
    let b = Env::new("listb", &["sleep", "1000"]).with_root(a.root.clone());
    b.create(&[]);

    let quiet = a.ok(&["list", "-q"]);
    let mut ids: Vec<&str> = quiet.lines().collect();
    ids.sort();
    let mut want = vec![a.id.as_str(), b.id.as_str()];
    want.sort();
    assert_eq!(ids, want);

    let table = a.ok(&["list"]);
    let header = table.lines().next().unwrap();
    assert!(header.starts_with("ID") && header.contains("STATUS") && header.ends_with("OWNER"));
    let row_a = table
        .lines()
        .find(|l| l.starts_with(&a.id))
        .expect("row of a");
    assert!(
        row_a.contains("running") && row_a.ends_with("root"),
        "{row_a}"
    );
    let row_b = table
        .lines()
        .find(|l| l.starts_with(&b.id))
        .expect("row of b");
    assert!(row_b.contains("created"), "{row_b}");

    let json: Value = serde_json::from_str(&a.ok(&["list", "--format", "json"])).unwrap();
    let arr = json.as_array().unwrap();
    assert_eq!(arr.len(), 2);
    let ja = arr.iter().find(|s| s["id"] == a.id.as_str()).unwrap();
    assert_eq!(ja["status"], "running");
    assert_eq!(ja["pid"].as_i64().unwrap(), a.pid() as i64);

    a.ok(&["delete", "-f", &a.id]);
    a.ok(&["delete", "-f", &b.id]);
    assert_eq!(a.ok(&["list", "-q"]), "");
    assert_eq!(a.ok(&["list", "-f", "json"]).trim(), "null");
}

#[test]
fn foreground_run_forwards_signals() {
    if !isolate() {
        return;
    }
    let env = Env::new(
        "fwd",
        &[
            "sh",
            "-c",
            "trap 'echo got-term; exit 7' TERM; echo ready; while true; do sleep 0.05; done",
        ],
    );
    let out_path = env.path("fg.out");
    let child = env
        .command(&["run", "--bundle", env.bundle_str(), &env.id])
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    wait_for_file(&out_path, |t| t.contains("ready"));
    let pid = myrt_runtime::Pid::new(child.id() as i32).unwrap();
    pid.signal(nix::sys::signal::Signal::SIGTERM).unwrap();
    let (status, timed_out) = wait_timeout(child, Duration::from_secs(20));
    assert!(!timed_out);
    assert_eq!(status.code(), Some(7));
    assert!(fs::read_to_string(&out_path).unwrap().contains("got-term"));
    env.assert_gone();
}

#[test]
fn foreground_run_reports_death_by_signal() {
    if !isolate() {
        return;
    }
    let env = Env::new("sigkill", &["sleep", "1000"]);
    let child = env
        .command(&["run", "--bundle", env.bundle_str(), &env.id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.state().is_none_or(|s| s["status"] != "running") {
        assert!(Instant::now() < deadline, "never running");
        std::thread::sleep(Duration::from_millis(50));
    }
    env.ok(&["kill", &env.id, "KILL"]);
    let (status, timed_out) = wait_timeout(child, Duration::from_secs(20));
    assert!(!timed_out);
    assert_eq!(status.code(), Some(128 + 9));
    env.assert_gone();
}

#[test]
fn preserve_fds_passes_extra_descriptors() {
    if !isolate() {
        return;
    }
    let env = Env::new("fds", &["sh", "-c", "cat <&3"]);
    let data = env.path("fd3.txt");
    fs::write(&data, "through fd 3\n").unwrap();
    let file = fs::File::open(&data).unwrap();
    let out_path = env.path("fds.out");
    let mut cmd = env.command(&[
        "run",
        "--preserve-fds",
        "1",
        "--bundle",
        env.bundle_str(),
        &env.id,
    ]);
    cmd.stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(Stdio::inherit());
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    // SAFETY: dup2 and fcntl between fork and exec are async-signal-safe; both fds are open.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            // dup2 onto itself keeps close-on-exec: clear it by hand then.
            let res = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if res < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (status, timed_out) = wait_timeout(cmd.spawn().unwrap(), Duration::from_secs(30));
    assert!(!timed_out);
    assert_eq!(status.code(), Some(0));
    assert_eq!(fs::read_to_string(&out_path).unwrap(), "through fd 3\n");
    env.assert_gone();
}
