//! Interactive streaming through the CRI, the way `kubectl exec -it` and `kubectl attach` reach
//! a runtime: CRI `Exec` / `Attach` answer a URL on containerd's stream server, and the client
//! speaks Kubernetes' remotecommand protocol to it over a WebSocket (`v4.channel.k8s.io`; the
//! protocol facts are in tests/src/cri/stream.rs). The stream server copies between the socket
//! and the process's fifos, and forwards resizes and stdin's close to the shim (ResizePty,
//! CloseIO): that part is the shim's, and is asserted for handler `myrt` as for handler `runc`.
//!
//! Run as root: `cargo test -p myrt-tests --test cri_stream -- --test-threads=1 --nocapture`
//! after `cargo build -p myrt-shim -p myrt-runtime`. `MYRT_CRI_HANDLERS=myrt` picks handlers;
//! `MYRT_CONTAINERD=$(scripts/containerd-versions.sh path 2.1)` another containerd. Every pod
//! here uses the host network (containerd's private netns), where the stream server listens.

use myrt_tests::cri::api::{ContainerState, NamespaceMode};
use myrt_tests::cri::{
    container_config, container_status, pod_spec, run_pod, settle, setup, sh, start_app,
    start_keeper, teardown, Cri, Pod, Session, StreamOpts, SETTLE, V4, V5,
};
use myrt_tests::{per_handler, Containerd, IMAGE_REF};

/// A pod on the host network, for test `what` of `handler`.
#[track_caller]
fn host_pod(what: &str, handler: &str) -> (myrt_tests::cri::CgroupParent, Containerd, Cri, Pod) {
    let (parent, cd, cri) = setup();
    let config = pod_spec(
        &format!("{what}-{handler}"),
        &cd,
        &parent,
        NamespaceMode::Node,
    );
    let pod = run_pod(&cri, config, handler);
    (parent, cd, cri, pod)
}

/// Opens a session on `url` offering the protocols `offer` (preferred first); the server must
/// say it is ready.
#[track_caller]
fn open(url: &str, offer: &[&str]) -> Session {
    let mut s = Session::open(url, offer);
    assert!(
        s.read_until(SETTLE, |s| s.ready),
        "the stream server sent no ready message: {s:?}"
    );
    s
}

/// True when stdout holds the line `want` (a tty ends lines with "\r\n").
fn has_line(s: &Session, want: &str) -> bool {
    s.stdout_text()
        .lines()
        .any(|l| l.trim_end_matches('\r') == want)
}

// ---- 1. exec with a tty and stdin: `kubectl exec -it` ----

fn check_exec_tty(handler: &str) {
    let (_parent, cd, cri, pod) = host_pod("tty", handler);
    let (app, _) = start_keeper(&cri, &pod);
    let url = cri
        .exec(
            &app,
            &["/bin/sh"],
            StreamOpts {
                stdin: true,
                tty: true,
            },
        )
        .unwrap_or_else(|e| panic!("Exec with tty: {e}"));
    let mut s = open(&url, &[V4]);
    assert_eq!(s.protocol, V4, "{s:?}");

    // The size first, as kubectl sends it; it must reach the pty before `stty size` runs.
    s.resize(97, 31);
    // Arithmetic, so the tty's echo of the command line cannot pass for its output.
    s.stdin("echo hi-$((6*7)); echo err-$((1+1)) >&2\n");
    assert!(
        s.read_until(SETTLE, |s| has_line(s, "hi-42") && has_line(s, "err-2")),
        "the shell's output (stderr merged by the tty) did not come back: {s:?}"
    );
    s.stdin("stty size\n");
    assert!(
        s.read_until(SETTLE, |s| has_line(s, "31 97")),
        "the resize to 97x31 did not reach the pty: {s:?}"
    );
    s.stdin("exit 7\n");
    s.wait_closed(SETTLE);
    assert!(s.stderr.is_empty(), "a tty has no stderr channel: {s:?}");
    assert_eq!(s.exit_code(), 7, "{s:?}");
    teardown(&cd, &cri, &pod, &[&app]);
}

per_handler!(check_exec_tty, exec_tty_myrt, exec_tty_runc);

// ---- 2. exec without a tty: stdin in, stdout and stderr apart, stdin closed ----

/// The comms of the processes in the app's pid namespace (ExecSync, shell builtins only, so
/// the listing does not list itself but as `sh`).
#[track_caller]
fn comms(cri: &Cri, app: &str) -> Vec<String> {
    let r = sh(
        cri,
        app,
        "for f in /proc/[0-9]*/comm; do read -r c < $f && echo $c; done",
    );
    assert_eq!(r.code, 0, "{r:?}");
    r.out.lines().map(str::to_string).collect()
}

fn check_exec_pipes(handler: &str) {
    let (_parent, cd, cri, pod) = host_pod("pipes", handler);
    let (app, _) = start_keeper(&cri, &pod);
    let piped = StreamOpts {
        stdin: true,
        tty: false,
    };

    // `cat` ends only when stdin closes. v5 can close stdin alone; containerd's stream server
    // offers up to v4, where the only way is to close the connection: the server then closes
    // the fifo and containerd sends CloseIO to the shim, and `cat` must end.
    let url = cri
        .exec(&app, &["/bin/sh", "-c", "cat; echo done >&2"], piped)
        .unwrap_or_else(|e| panic!("Exec cat: {e}"));
    let mut s = open(&url, &[V5, V4]);
    s.stdin("data-1\n");
    assert!(
        s.read_until(SETTLE, |s| s.stdout == b"data-1\n"),
        "stdin did not come back on stdout: {s:?}"
    );
    eprintln!("stdin close: the stream server speaks {}", s.protocol);
    if s.protocol == V5 {
        s.close_stdin();
        s.wait_closed(SETTLE);
        assert_eq!(
            (s.stdout_text(), s.stderr_text()),
            ("data-1\n".into(), "done\n".into())
        );
        assert_eq!(s.exit_code(), 0, "{s:?}");
    } else {
        assert_eq!(s.protocol, V4, "{s:?}");
        assert!(comms(&cri, &app).contains(&"cat".to_string()));
        s.close();
        settle(|| match comms(&cri, &app) {
            c if c.contains(&"cat".to_string()) => Err(format!(
                "`cat` still runs after its stdin was closed (CloseIO): {c:?}"
            )),
            _ => Ok(()),
        });
    }

    // stdout and stderr on their own channels, and the exit code in the status. Under v4 the
    // command reads one line instead of reading to EOF.
    let url = cri
        .exec(
            &app,
            &[
                "/bin/sh",
                "-c",
                "read -r l; echo \"out:$l\"; echo \"err:$l\" >&2; exit 3",
            ],
            piped,
        )
        .unwrap_or_else(|e| panic!("Exec read: {e}"));
    let mut s = open(&url, &[V4]);
    s.stdin("data-2\n");
    s.wait_closed(SETTLE);
    assert_eq!(
        (s.stdout_text().as_str(), s.stderr_text().as_str()),
        ("out:data-2\n", "err:data-2\n"),
        "{s:?}"
    );
    assert_eq!(s.exit_code(), 3, "{s:?}");
    teardown(&cd, &cri, &pod, &[&app]);
}

per_handler!(check_exec_pipes, exec_pipes_myrt, exec_pipes_runc);

// ---- 3. attach to a container started with a tty and stdin: `kubectl attach -it` ----

fn check_attach_tty(handler: &str) {
    let (_parent, cd, cri, pod) = host_pod("attach", handler);
    let mut config = container_config("shell", IMAGE_REF, &["/bin/sh"], "shell.log", &[]);
    config.tty = true;
    config.stdin = true;
    let (shell, _) = start_app(&cri, &pod, &config);
    let tty = StreamOpts {
        stdin: true,
        tty: true,
    };
    for round in 1..=2 {
        let url = cri
            .attach(&shell, tty)
            .unwrap_or_else(|e| panic!("Attach (round {round}): {e}"));
        let mut s = open(&url, &[V4]);
        assert_eq!(s.protocol, V4, "{s:?}");
        s.stdin(&format!("echo attach-$(({round}+40))\n"));
        let want = format!("attach-{}", round + 40);
        assert!(
            s.read_until(SETTLE, |s| has_line(s, &want)),
            "the container's shell did not answer the attached client (round {round}): {s:?}"
        );
        // Detaching leaves the container running, ready for the next attach.
        s.close();
        let st = container_status(&cri, &shell);
        assert_eq!(
            st.state,
            ContainerState::ContainerRunning as i32,
            "after detaching: {st:?}"
        );
    }
    teardown(&cd, &cri, &pod, &[&shell]);
}

per_handler!(check_attach_tty, attach_tty_myrt, attach_tty_runc);
