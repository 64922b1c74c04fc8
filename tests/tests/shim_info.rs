//! `containerd-shim-myrt-v1 -info`, run the way containerd 2.x runs it (core/runtime/v2
//! task_manager.go `PluginInfo`): the runtime options as a serialized `google.protobuf.Any` on
//! stdin (or nothing), a serialized `containerd.types.RuntimeInfo` expected on stdout, exit 0.
//! containerd asks before every task with id-mapped mounts and refuses the task unless the
//! features say `mountExtensions.idmap.enabled`.
//!
//! Mounts nothing and starts no container, so it needs neither root nor namespace isolation.
//! Run: `cargo build -p myrt-shim && cargo test -p myrt-tests --test shim_info` (the binary is
//! taken from `$MYRT_BIN_DIR`, default target/debug).

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::oci::Options as RuncOptions;
use containerd_shim_protos::types::introspection::RuntimeInfo;
use myrt_tests::bin_dir;
use myrt_tests::paths::SHIM_BINARY;
use serde_json::Value;

const FEATURES_TYPE_URL: &str =
    "types.containerd.io/opencontainers/runtime-spec/1/features/Features";
const RUNC_OPTIONS: &str = "containerd.runc.v1.Options";
const RUNTIME_OPTIONS: &str = "runtimeoptions.v1.Options";
/// containerd's own deadline is its request context; a few seconds is plenty for `-info`.
const DEADLINE: Duration = Duration::from_secs(20);

struct Answer {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

/// Runs the shim with `flag` and `stdin`, without TTRPC_ADDRESS (containerd sets none for
/// `-info`), and collects its binary stdout.
fn run_info(flag: &str, stdin: &[u8]) -> Answer {
    let bin = bin_dir().join(SHIM_BINARY);
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build -p myrt-shim` or set MYRT_BIN_DIR",
        bin.display()
    );
    let mut child = Command::new(&bin)
        .arg(flag)
        .env_remove("TTRPC_ADDRESS")
        .env_remove("GRPC_ADDRESS")
        .env_remove("NAMESPACE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
    let mut input = child.stdin.take().expect("piped stdin");
    let data = stdin.to_vec();
    // Written from a thread and closed, so that a shim that answers before reading cannot block.
    let writer = thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out = thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let err = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                // Child::kill signals exactly this child's (positive) pid.
                let _ = child.kill();
                let _ = child.wait();
                panic!("{SHIM_BINARY} {flag} did not exit within {DEADLINE:?}");
            }
            Err(e) => panic!("wait for {SHIM_BINARY}: {e}"),
        }
    };
    let _ = writer.join();
    Answer {
        code: status.code(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

fn any_bytes(type_url: &str, value: Vec<u8>) -> Vec<u8> {
    Any {
        type_url: type_url.into(),
        value,
        ..Default::default()
    }
    .write_to_bytes()
    .unwrap()
}

/// runtimeoptions.v1.Options with only config_body (field 3) set.
fn runtime_options(body: &str) -> Vec<u8> {
    assert!(body.len() < 128, "one-byte length only");
    let mut v = vec![0x1a, body.len() as u8];
    v.extend_from_slice(body.as_bytes());
    v
}

/// Asserts exit 0 and decodes the answer.
#[track_caller]
fn info_ok(flag: &str, stdin: &[u8]) -> RuntimeInfo {
    let a = run_info(flag, stdin);
    assert_eq!(
        a.code,
        Some(0),
        "{SHIM_BINARY} {flag}: stderr: {}",
        a.stderr
    );
    assert!(a.stderr.is_empty(), "stderr: {}", a.stderr);
    RuntimeInfo::parse_from_bytes(&a.stdout)
        .unwrap_or_else(|e| panic!("stdout is not a RuntimeInfo ({e}): {:?}", a.stdout))
}

/// Asserts exit 1, nothing on stdout and one stderr line naming every needle.
#[track_caller]
fn info_refused(stdin: &[u8], needles: &[&str]) -> String {
    let a = run_info("-info", stdin);
    assert_eq!(a.code, Some(1), "stderr: {}", a.stderr);
    assert!(a.stdout.is_empty(), "stdout: {:?}", a.stdout);
    for n in needles {
        assert!(a.stderr.contains(n), "{n:?} not in stderr: {}", a.stderr);
    }
    assert_eq!(a.stderr.trim_end().lines().count(), 1, "{}", a.stderr);
    a.stderr
}

/// The features JSON of an answer, checked for what containerd and kubelet read from it.
#[track_caller]
fn check_features(info: &RuntimeInfo) {
    assert_eq!(info.features.type_url, FEATURES_TYPE_URL);
    let f: Value = serde_json::from_slice(&info.features.value)
        .unwrap_or_else(|e| panic!("features value is not JSON: {e}"));
    assert_eq!(f["linux"]["mountExtensions"]["idmap"]["enabled"], true);
    let ns = f["linux"]["namespaces"]
        .as_array()
        .expect("linux.namespaces");
    assert!(ns.contains(&Value::from("user")), "{ns:?}");
    assert!(f["mountOptions"]
        .as_array()
        .expect("mountOptions")
        .contains(&Value::from("ridmap")));
    // `-info` does not run CRIU (it is on the path of every id-mapped task create).
    let annotations = f["annotations"].as_object().expect("annotations");
    assert!(!annotations.contains_key("io.containerd.myrt.checkpoint.criu"));
    // The same document as the library builds (and `myrt features` prints, less CRIU).
    assert_eq!(f, myrt_runtime::features::document_with(None));
}

#[test]
fn empty_stdin_answers_runtime_info() {
    for flag in ["-info", "--info"] {
        let info = info_ok(flag, &[]);
        assert_eq!(info.name, SHIM_BINARY);
        assert_eq!(info.version.version, env!("CARGO_PKG_VERSION"));
        assert!(info.options.is_none(), "no options were given");
        assert!(info.annotations.is_empty());
        check_features(&info);
    }
}

#[test]
fn runc_options_are_echoed() {
    let opts = RuncOptions {
        root: "/run/containerd/myrt-info-test".into(),
        no_pivot_root: true,
        io_uid: 1000,
        ..Default::default()
    };
    let value = opts.write_to_bytes().unwrap();
    let info = info_ok("-info", &any_bytes(RUNC_OPTIONS, value.clone()));
    assert_eq!(info.options.type_url, RUNC_OPTIONS);
    assert_eq!(info.options.value, value);
    let echoed = RuncOptions::parse_from_bytes(&info.options.value).unwrap();
    assert_eq!(echoed.root, "/run/containerd/myrt-info-test");
    check_features(&info);

    let body = runtime_options("NoPivotRoot = true\n");
    let info = info_ok("-info", &any_bytes(RUNTIME_OPTIONS, body.clone()));
    assert_eq!(
        (info.options.type_url.as_str(), &info.options.value),
        (RUNTIME_OPTIONS, &body)
    );
}

#[test]
fn options_the_shim_refuses_are_refused_by_info() {
    // containerd's runc shim would run BinaryName; myrt has its own engine and says so.
    let opts = RuncOptions {
        binary_name: "/usr/bin/runc".into(),
        root: "/run/containerd/myrt-info-test".into(),
        ..Default::default()
    };
    info_refused(
        &any_bytes(RUNC_OPTIONS, opts.write_to_bytes().unwrap()),
        &["binary_name", "/usr/bin/runc", "remove BinaryName"],
    );
    info_refused(
        &any_bytes(RUNTIME_OPTIONS, runtime_options("no_such_key = 1\n")),
        &["no_such_key"],
    );
    info_refused(&any_bytes("example.Other", vec![1]), &["example.Other"]);
}

#[test]
fn garbage_stdin_is_refused() {
    let stderr = info_refused(
        b"this is not protobuf\n",
        &[
            SHIM_BINARY,
            "-info",
            "not a serialized google.protobuf.Any",
            "containerd.runc.v1.Options",
        ],
    );
    eprintln!("garbage: {stderr}");
    info_refused(&[0xff, 0xfe, 0x20, 0x01], &["google.protobuf.Any"]);
}
