//! Runs one test in a fresh copy of the test binary, for tests that change process-wide state
//! (uid, capabilities, rlimits, cwd, umask, fds) which must not leak into the other tests.

use std::process::{Command, Output};

/// Set in the child: the test body does the risky part when it sees this.
pub const CHILD_ENV: &str = "MYRT_SETUP_TEST_CHILD";

/// True inside the re-exec'd child.
pub fn in_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// The test's name as libtest knows it: `module_path!()` without the crate name, plus `name`.
pub fn test_name(module_path: &str, name: &str) -> String {
    let module = module_path
        .split_once("::")
        .map_or(module_path, |(_, rest)| rest);
    format!("{module}::{name}")
}

fn child_command(module_path: &str, name: &str) -> Command {
    let exe = std::env::current_exe().expect("current_exe of the test binary");
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        &test_name(module_path, name),
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, "1");
    cmd
}

/// Re-runs test `name` of `module_path` in a child process and returns its output.
pub fn run_child(module_path: &str, name: &str) -> Output {
    child_command(module_path, name)
        .output()
        .expect("start the test binary again")
}

/// Like [`run_child`], in a private mount and pid namespace (for tests that mount or chroot).
pub fn run_child_unshared(module_path: &str, name: &str) -> Output {
    let inner = child_command(module_path, name);
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--pid", "--fork", "--propagation", "private"])
        .arg(inner.get_program())
        .args(inner.get_args())
        .env(CHILD_ENV, "1");
    cmd.output().expect("start unshare with the test binary")
}

/// Both streams as text, for assertions and failure messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts that the child ran its test and succeeded.
pub fn assert_child_ok(out: &Output) {
    assert!(
        out.status.success(),
        "child test failed:\n{}",
        describe(out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1 passed"),
        "child ran no test (wrong name?):\n{}",
        describe(out)
    );
}

/// A line `Key:\tvalue` of /proc/thread-self/status (per-thread: capabilities are per thread and
/// libtest runs a test on its own thread).
pub fn thread_status(key: &str) -> String {
    let status =
        std::fs::read_to_string("/proc/thread-self/status").expect("read /proc/thread-self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("{key} not in /proc/thread-self/status"))
}

/// The namespaces of a spec whose linux.namespaces is `json` (a JSON array).
pub fn namespaces(json: &str) -> crate::namespaces::Namespaces {
    let spec: oci_spec::runtime::Spec = serde_json::from_str(&format!(
        r#"{{"ociVersion":"1.0.2","linux":{{"namespaces":{json}}}}}"#
    ))
    .expect("spec");
    crate::namespaces::Namespaces::from_spec(&spec).expect("namespaces")
}
