//! Shared helpers of the end-to-end tests: a private containerd per test, `ctr` calls with
//! deadlines, the busybox test image, `ctr events`, and the namespace isolation every e2e test
//! needs.
//!
//! An e2e test looks like this:
//!
//! ```no_run
//! #[test]
//! fn echo() {
//!     if !myrt_tests::isolate() {
//!         return; // not root (skipped loudly), or it just ran in its own namespace
//!     }
//!     let cd = myrt_tests::Containerd::start();
//!     let args = cd.container_args(myrt_tests::Source::Image, &["--rm"], "c1", &["/bin/echo", "hi"]);
//!     let out = cd.ctr(myrt_tests::args(&["run"], args)).ok();
//!     assert_eq!(out.stdout, "hi\n");
//! }
//! ```
//!
//! Environment:
//! - `MYRT_E2E_RUNTIME`: the runtime under test (default `io.containerd.myrt.v1`); set
//!   `io.containerd.runc.v2` to check the tests themselves against containerd's runc shim.
//! - `MYRT_BIN_DIR`: where `containerd-shim-myrt-v1` and `myrt` are (default `target/debug`).
//! - `MYRT_IMAGE_DIR`: a dir built by scripts/build-image.sh (default: built into
//!   `target/myrt-e2e-image`).
//! - `MYRT_CONTAINERD`: the containerd binary (default `containerd` on PATH);
//!   `scripts/containerd-versions.sh fetch 1.7|2.1` unpacks Debian's 1.7.24/2.1.9 and prints one.
//! - `MYRT_CTR`: the ctr binary (default: the one next to `MYRT_CONTAINERD`, else on PATH).
//! - `MYRT_E2E_KEEP`: keep each test's containerd dir (log, state) instead of removing it.

pub mod command;
pub mod containerd;
pub mod cri;
pub mod events;
pub mod image;
pub mod isolation;
pub mod paths;
pub mod ttrpc;

pub use command::CmdOutput;
pub use containerd::{Containerd, Source, TaskInfo};
pub use events::{Event, EventWatcher};
pub use image::{image, pause_image, Image, IMAGE_REF, PAUSE_REF};
pub use isolation::{is_isolated, is_root, isolate, isolate_in, Scope};
pub use paths::{bin_dir, workspace_dir};

/// The runtime type of myrt's shim.
pub const MYRT_RUNTIME: &str = "io.containerd.myrt.v1";

/// The runtime under test: `$MYRT_E2E_RUNTIME`, default [`MYRT_RUNTIME`].
pub fn runtime() -> String {
    std::env::var("MYRT_E2E_RUNTIME")
        .ok()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| MYRT_RUNTIME.to_string())
}

/// `["run", args...]`-style concatenation for [`Containerd::container_args`] results.
pub fn args(head: &[&str], tail: Vec<String>) -> Vec<String> {
    head.iter().map(|s| s.to_string()).chain(tail).collect()
}
