//! containerd-shim-myrt-v1: a containerd shim v2 (runtime type `io.containerd.myrt.v1`) that
//! runs containers in-process with myrt's engine. See shim/README.md.

mod container;
mod events;
mod info;
mod io;
mod logger;
mod metrics;
mod oom;
mod options;
mod process;
mod reaper;
mod rootfs;
mod service;
mod task;

use std::time::Duration;

const RUNTIME_ID: &str = "io.containerd.myrt.v1";

fn main() {
    // First, before any thread exists: the engine re-execs this binary as a container's init.
    myrt_runtime::init_main_if_requested();

    // The server's stderr is /dev/null: a panic must reach containerd's log through `log`.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        log::error!("panic: {info}");
        default_hook(info);
    }));

    if std::env::args()
        .skip(1)
        .any(|a| matches!(a.as_str(), "-v" | "-version" | "--version"))
    {
        println!(
            "containerd-shim-myrt-v1:\n  Runtime: {RUNTIME_ID}\n  Version: {}",
            env!("CARGO_PKG_VERSION")
        );
        return;
    }

    // containerd 2.x introspection: answered here, without the async runtime or the crate (whose
    // bootstrap would fail for want of TTRPC_ADDRESS).
    if info::is_requested(std::env::args().skip(1)) {
        std::process::exit(info::main());
    }

    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("containerd-shim-myrt-v1: start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    // The crate's reaper would waitpid(-1) and take exit statuses the engine waits for: the
    // shim's own reaper (reaper.rs) collects exits instead. The crate still makes the process
    // a child subreaper.
    let config = containerd_shim::Config {
        no_reaper: true,
        ..Default::default()
    };
    rt.block_on(containerd_shim::run::<service::Service>(
        RUNTIME_ID,
        Some(config),
    ));
    // Blocking engine calls of a container that is still being torn down must not keep the
    // shim alive; the stdout of `start`/`delete` is flushed by then.
    rt.shutdown_timeout(Duration::from_secs(2));
    std::process::exit(0);
}
