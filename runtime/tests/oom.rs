//! OOM notification through the `myrt` binary on the real kernel: `myrt events` prints runc's
//! `{"type":"oom","id":ID}` when the OOM killer hits the container, then ends as the container
//! stops. Runs as root in its own mount + pid namespace (see common::isolate), on either
//! hierarchy (v1 here, v2 in the QEMU guest).

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::{isolate, wait_timeout, Env};
use serde_json::{json, Value};

const LIMIT: u64 = 16 << 20;

fn lines(path: &std::path::Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect()
}

#[test]
fn events_reports_the_oom_kill() {
    if !isolate() {
        return;
    }
    // waits for /go, then grows without bound: tail keeps /dev/zero's one endless line
    let env = Env::new(
        "oom",
        &[
            "sh",
            "-c",
            "while [ ! -e /go ]; do sleep 0.05; done; exec tail /dev/zero",
        ],
    );
    env.edit(|c| {
        // memory+swap too: no swap escape where the host has swap
        c["linux"]["resources"]["memory"] = json!({"limit": LIMIT, "swap": LIMIT});
    });
    env.create(&[]);
    env.ok(&["start", &env.id]);

    let (out, err) = (env.path("events.out"), env.path("events.err"));
    let events = env
        .command(&["events", "--interval", "100ms", &env.id])
        .stdin(std::process::Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    // A stats line means the notifier is set up: `events` makes it before its first wait.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !lines(&out).iter().any(|e| e["type"] == "stats") {
        assert!(
            Instant::now() < deadline,
            "no stats line from events: {:?}",
            fs::read_to_string(&err)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !lines(&out).iter().any(|e| e["type"] == "oom"),
        "no OOM before the allocation"
    );
    fs::write(env.bundle.join("rootfs/go"), "").unwrap();

    let (status, timed_out) = wait_timeout(events, Duration::from_secs(60));
    let stderr = fs::read_to_string(&err).unwrap_or_default();
    assert!(!timed_out, "events did not end when the container stopped");
    assert!(status.success(), "events: {status:?}: {stderr}");
    let all = lines(&out);
    let ooms: Vec<&Value> = all.iter().filter(|e| e["type"] == "oom").collect();
    assert!(!ooms.is_empty(), "no oom line: {all:?} {stderr}");
    for e in &ooms {
        assert_eq!(**e, json!({"type": "oom", "id": env.id}), "runc's shape");
    }
    assert_eq!(env.status(), "stopped");
    env.ok(&["delete", &env.id]);
    env.assert_gone();
}
