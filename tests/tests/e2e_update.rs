//! Live resource updates of a running task, through the shim's Task.Update, with the runtime
//! from `MYRT_E2E_RUNTIME` (default io.containerd.myrt.v1).
//!
//! ctr 1.6.20 has no `tasks update` command and containerd's own API is gRPC (no client in this
//! workspace), so the tests send `containerd.task.v2.Task/Update` (v3 with containerd 2.x's own
//! shims) to the shim's ttrpc socket (`<bundle>/address`) themselves: the same request
//! containerd's Tasks.Update forwards. The containers are created, exec'd into, paused and
//! removed through `ctr` as usual.
//!
//! Run as root: `cargo test -p myrt-tests --test e2e_update`. Validated against containerd's runc
//! shim too (MYRT_E2E_RUNTIME=io.containerd.runc.v2); the checks of myrt's own error wording and
//! request validation run for myrt only.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use myrt_tests::{args, isolate, runtime, Containerd, Source, MYRT_RUNTIME};

const SETTLE: Duration = Duration::from_secs(20);
const LINUX_RESOURCES: &str = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";

/// A minimal ttrpc client: one unary call per connection, protobuf encoded by hand (the few
/// fields of Request, UpdateTaskRequest, Any, Response and Status).
mod ttrpc {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn field_bytes(field: u32, data: &[u8], out: &mut Vec<u8>) {
        varint(u64::from(field << 3 | 2), out);
        varint(data.len() as u64, out);
        out.extend_from_slice(data);
    }

    /// UpdateTaskRequest{id, resources: Any{type_url, value}, annotations}.
    pub fn update_request(
        id: &str,
        type_url: &str,
        json: &str,
        annotations: &[(&str, &str)],
    ) -> Vec<u8> {
        let mut any = Vec::new();
        field_bytes(1, type_url.as_bytes(), &mut any);
        field_bytes(2, json.as_bytes(), &mut any);
        let mut req = Vec::new();
        field_bytes(1, id.as_bytes(), &mut req);
        field_bytes(2, &any, &mut req);
        for (k, v) in annotations {
            let mut entry = Vec::new();
            field_bytes(1, k.as_bytes(), &mut entry);
            field_bytes(2, v.as_bytes(), &mut entry);
            field_bytes(3, &entry, &mut req);
        }
        req
    }

    /// (field, wire type 0 value or wire type 2 bytes) of a message; other wire types panic.
    fn fields(mut buf: &[u8]) -> Vec<(u32, Result<u64, Vec<u8>>)> {
        fn read_varint(buf: &mut &[u8]) -> u64 {
            let (mut v, mut shift) = (0u64, 0);
            loop {
                let b = buf[0];
                *buf = &buf[1..];
                v |= u64::from(b & 0x7f) << shift;
                if b < 0x80 {
                    return v;
                }
                shift += 7;
            }
        }
        let mut out = Vec::new();
        while !buf.is_empty() {
            let key = read_varint(&mut buf);
            let (field, wire) = ((key >> 3) as u32, key & 7);
            match wire {
                0 => out.push((field, Ok(read_varint(&mut buf)))),
                2 => {
                    let len = read_varint(&mut buf) as usize;
                    out.push((field, Err(buf[..len].to_vec())));
                    buf = &buf[len..];
                }
                w => panic!("unexpected protobuf wire type {w}"),
            }
        }
        out
    }

    /// Calls `service/method` on the ttrpc server at `socket`; Err((code, message)) when the
    /// response carries a non-OK status.
    pub fn call(
        socket: &PathBuf,
        service: &str,
        method: &str,
        payload: &[u8],
    ) -> Result<(), (u64, String)> {
        let mut req = Vec::new();
        field_bytes(1, service.as_bytes(), &mut req);
        field_bytes(2, method.as_bytes(), &mut req);
        field_bytes(3, payload, &mut req);
        varint(4 << 3, &mut req); // field 4 (timeout_nano), wire type 0
        varint(30_000_000_000, &mut req);
        let mut s = UnixStream::connect(socket)
            .unwrap_or_else(|e| panic!("connect {}: {e}", socket.display()));
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut msg = (req.len() as u32).to_be_bytes().to_vec();
        msg.extend_from_slice(&1u32.to_be_bytes()); // stream id
        msg.extend_from_slice(&[1, 0]); // request, no flags
        msg.extend_from_slice(&req);
        s.write_all(&msg).expect("send ttrpc request");
        let mut header = [0u8; 10];
        s.read_exact(&mut header).expect("ttrpc response header");
        let len = u32::from_be_bytes(header[..4].try_into().unwrap()) as usize;
        assert_eq!(header[8], 2, "not a ttrpc response: {header:?}");
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).expect("ttrpc response body");
        for (field, v) in fields(&body) {
            if let (1, Err(status)) = (field, v) {
                let (mut code, mut message) = (0, String::new());
                for (f, v) in fields(&status) {
                    match (f, v) {
                        (1, Ok(c)) => code = c,
                        (2, Err(m)) => message = String::from_utf8_lossy(&m).into_owned(),
                        _ => {}
                    }
                }
                if code != 0 {
                    return Err((code, message));
                }
            }
        }
        Ok(())
    }
}

/// Task.Update of `id` with the JSON LinuxResources `json`, to the shim that serves it.
fn update(cd: &Containerd, id: &str, json: &str) -> Result<(), (u64, String)> {
    update_typed(cd, id, LINUX_RESOURCES, json)
}

fn update_typed(
    cd: &Containerd,
    id: &str,
    type_url: &str,
    json: &str,
) -> Result<(), (u64, String)> {
    let socket = cd.shim_socket(id);
    let req = ttrpc::update_request(id, type_url, json, &[("io.example/note", "ignored")]);
    ttrpc::call(&socket, cd.task_service(id), "Update", &req)
}

fn is_v2() -> bool {
    !std::path::Path::new("/sys/fs/cgroup/pids").exists()
}

/// The task's cgroup file, by its v1 (`<controller>/<path>/<v1>`) or v2 (`<path>/<v2>`) name.
fn cg(cd: &Containerd, id: &str, controller: &str, v1: &str, v2: &str) -> String {
    let config: serde_json::Value = serde_json::from_slice(
        &fs::read(cd.bundle_dir(id).join("config.json")).expect("config.json"),
    )
    .expect("config.json is JSON");
    let rel = config["linux"]["cgroupsPath"]
        .as_str()
        .expect("cgroupsPath")
        .trim_start_matches('/')
        .to_string();
    let path = if is_v2() {
        PathBuf::from("/sys/fs/cgroup").join(rel).join(v2)
    } else {
        PathBuf::from("/sys/fs/cgroup")
            .join(controller)
            .join(rel)
            .join(v1)
    };
    fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_string()
}

fn pids_max(cd: &Containerd, id: &str) -> String {
    cg(cd, id, "pids", "pids.max", "pids.max")
}

fn memory_limit(cd: &Containerd, id: &str) -> String {
    cg(cd, id, "memory", "memory.limit_in_bytes", "memory.max")
}

/// `ctr tasks exec` of a shell that starts 8 background sleeps.
fn fork_eight(cd: &Containerd, id: &str, exec_id: &str) -> myrt_tests::CmdOutput {
    cd.ctr([
        "tasks",
        "exec",
        "--exec-id",
        exec_id,
        id,
        "/bin/sh",
        "-c",
        "for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait; echo forked",
    ])
}

/// A running task holding ~40 MB of shmem (not reclaimable without swap) under a 100 MB limit.
fn start_hog(cd: &Containerd, id: &str) {
    let flags = ["-d", "--memory-limit", "104857600"];
    let cmd = [
        "/bin/sh",
        "-c",
        "head -c 41943040 /dev/zero > /dev/shm/fill; exec sleep 1000",
    ];
    cd.ctr(args(
        &["run"],
        cd.container_args(Source::Image, &flags, id, &cmd),
    ))
    .ok();
    cd.wait_task_status(id, "RUNNING", SETTLE);
    let deadline = Instant::now() + SETTLE;
    loop {
        let usage: u64 = cg(cd, id, "memory", "memory.usage_in_bytes", "memory.current")
            .parse()
            .expect("memory usage");
        if usage >= 40 << 20 {
            return;
        }
        assert!(Instant::now() < deadline, "usage stayed at {usage}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn remove(cd: &Containerd, id: &str) {
    cd.ctr(["tasks", "kill", "-a", "-s", "SIGKILL", id]).ok();
    cd.wait_task_status(id, "STOPPED", SETTLE);
    cd.ctr(["tasks", "delete", id]).ok();
    cd.ctr(["containers", "delete", id]).ok();
}

#[test]
fn update_pids_and_memory_of_a_running_task() {
    if !isolate() {
        return;
    }
    let cd = Containerd::start();
    let id = "upd";
    start_hog(&cd, id);
    assert_eq!(memory_limit(&cd, id), "104857600");
    assert_eq!(pids_max(&cd, id), "max");
    let out = fork_eight(&cd, id, "f1").ok();
    assert!(out.stdout.contains("forked"), "{out}");

    // a lower pids limit stops the next forks inside the container
    update(&cd, id, r#"{"pids":{"limit":5}}"#).expect("update pids");
    assert_eq!(pids_max(&cd, id), "5");
    let out = fork_eight(&cd, id, "f2").failed();
    if runtime() == MYRT_RUNTIME {
        // the shell itself runs and its forks fail ("can't fork")
        assert!(out.all_output().contains("fork"), "{out}");
    }
    // (runc's exec on cgroup v2 may fail earlier: its Go init's threads count against pids.max)
    assert!(!out.stdout.contains("forked"), "{out}");

    // memory alone: the pids limit stays
    update(&cd, id, r#"{"memory":{"limit":209715200}}"#).expect("update memory");
    assert_eq!(memory_limit(&cd, id), "209715200");
    assert_eq!(pids_max(&cd, id), "5");

    // raised again: forks work
    update(&cd, id, r#"{"pids":{"limit":64}}"#).expect("raise pids");
    assert_eq!(pids_max(&cd, id), "64");
    let out = fork_eight(&cd, id, "f3").ok();
    assert!(out.stdout.contains("forked"), "{out}");

    // paused: updated, and still paused
    cd.ctr(["tasks", "pause", id]).ok();
    cd.wait_task_status(id, "PAUSED", SETTLE);
    update(&cd, id, r#"{"pids":{"limit":32}}"#).expect("update while paused");
    assert_eq!(pids_max(&cd, id), "32");
    assert_eq!(cd.task(id).map(|t| t.status).as_deref(), Some("PAUSED"));
    cd.ctr(["tasks", "resume", id]).ok();
    cd.wait_task_status(id, "RUNNING", SETTLE);

    // a container the shim does not serve
    let (code, msg) = update_typed_to(&cd, id, "nope", LINUX_RESOURCES, "{}").unwrap_err();
    assert_eq!(code, 5, "NOT_FOUND expected: {msg}");
    remove(&cd, id);
}

/// Like [`update_typed`] but for container `target` through `via`'s shim.
fn update_typed_to(
    cd: &Containerd,
    via: &str,
    target: &str,
    type_url: &str,
    json: &str,
) -> Result<(), (u64, String)> {
    let socket = cd.shim_socket(via);
    let req = ttrpc::update_request(target, type_url, json, &[]);
    ttrpc::call(&socket, cd.task_service(via), "Update", &req)
}

#[test]
fn update_refused_by_the_kernel_keeps_the_old_limits() {
    if !isolate() {
        return;
    }
    let cd = Containerd::start();
    let id = "refuse";
    start_hog(&cd, id);
    let myrt = runtime() == MYRT_RUNTIME;

    // an invalid pids limit, after a memory limit that was written first: both stay as before
    let (_, msg) = update(
        &cd,
        id,
        r#"{"memory":{"limit":52428800},"pids":{"limit":99999999}}"#,
    )
    .expect_err("pids.max=99999999 is out of the kernel's range");
    assert!(!msg.is_empty());
    if myrt {
        assert!(
            msg.contains("linux.resources.pids.limit") && msg.contains("99999999"),
            "{msg}"
        );
    }
    assert_eq!(pids_max(&cd, id), "max");
    if myrt {
        // runc 1.1 leaves the memory limit written before the failure: its rollback writes
        // the config it has just changed (update.go edits Cgroups through a shared pointer)
        assert_eq!(memory_limit(&cd, id), "104857600");
    }

    if !is_v2() {
        // below the usage: the v1 kernel cannot reclaim shmem without swap and refuses
        let before = memory_limit(&cd, id);
        let (_, msg) = update(&cd, id, r#"{"memory":{"limit":10485760}}"#)
            .expect_err("a memory limit below the usage");
        if myrt {
            assert!(
                msg.contains("linux.resources.memory.limit") && msg.contains("10485760"),
                "{msg}"
            );
        }
        assert_eq!(memory_limit(&cd, id), before);
        assert_eq!(cd.task(id).map(|t| t.status).as_deref(), Some("RUNNING"));
    }
    // a cpuset beyond the machine's cpus
    let cpus = cg(&cd, id, "cpuset", "cpuset.cpus", "cpuset.cpus");
    let (_, msg) = update(&cd, id, r#"{"cpu":{"cpus":"0-1023"}}"#).expect_err("cpus 0-1023");
    if myrt {
        assert!(
            msg.contains("linux.resources.cpu.cpus") && msg.contains("0-1023"),
            "{msg}"
        );
        // myrt checks what it is given; runc's shim decodes any type as JSON
        let (code, msg) = update_typed(&cd, id, "example.Foo", "{}").unwrap_err();
        assert_eq!(code, 3, "INVALID_ARGUMENT expected: {msg}");
        assert!(msg.contains("example.Foo"), "{msg}");
        let (code, msg) = update(&cd, id, "{").unwrap_err();
        assert_eq!(code, 3, "INVALID_ARGUMENT expected: {msg}");
    }
    assert_eq!(cg(&cd, id, "cpuset", "cpuset.cpus", "cpuset.cpus"), cpus);
    // still usable: a valid update goes through
    update(&cd, id, r#"{"pids":{"limit":100}}"#).expect("valid update after refusals");
    assert_eq!(pids_max(&cd, id), "100");
    remove(&cd, id);

    // a stopped task cannot be updated
    let cmd = ["/bin/true"];
    cd.ctr(args(
        &["run"],
        cd.container_args(Source::Image, &["-d"], "done", &cmd),
    ))
    .ok();
    cd.wait_task_status("done", "STOPPED", SETTLE);
    let (_, msg) = update(&cd, "done", r#"{"pids":{"limit":10}}"#).expect_err("stopped task");
    if myrt {
        assert!(msg.contains("cannot update a stopped container"), "{msg}");
    }
    cd.ctr(["tasks", "delete", "done"]).ok();
    cd.ctr(["containers", "delete", "done"]).ok();
}
