//! Intel RDT through containerd: `ctr run --rdt-class CLASS` (linux.intelRdt.closID) puts the
//! container's processes into the resctrl group CLASS and leaves that pre-configured class in
//! place afterwards; on a host without resctrl the run fails with an error that says so and
//! leaves no task.
//!
//! No host here has RDT hardware: containerd (and so the shim, which runs the engine
//! in-process) gets MYRT_RESCTRL_ROOT pointing at a directory laid out like resctrl
//! (`myrt_runtime::intelrdt::lay_out_root`). Only myrt reads that variable, so with another
//! runtime (MYRT_E2E_RUNTIME) the tests skip, saying so.
//!
//! Run as root: `cargo test -p myrt-tests --test e2e_rdt` (each test re-runs itself in a private
//! mount + pid namespace unless scripts/test.sh made one).

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use myrt_runtime::intelrdt::{lay_out_root, make_group, ROOT_ENV};
use myrt_tests::{args, isolate, runtime, Containerd, Source, MYRT_RUNTIME};

const SETTLE: Duration = Duration::from_secs(20);

/// True when the runtime under test is myrt (the only one that reads MYRT_RESCTRL_ROOT).
fn is_myrt() -> bool {
    if runtime() == MYRT_RUNTIME {
        return true;
    }
    eprintln!(
        "SKIP: {} does not read {ROOT_ENV}; these tests need myrt",
        runtime()
    );
    false
}

/// A containerd whose environment points myrt at `<its dir>/<name>`, made by `prepare`.
fn containerd_with_resctrl(name: &str, prepare: fn(&Path)) -> (Containerd, PathBuf) {
    let mut root = PathBuf::new();
    let cd = Containerd::start_with_env(|dir| {
        root = dir.join(name);
        prepare(&root);
        vec![(OsString::from(ROOT_ENV), root.clone().into_os_string())]
    });
    (cd, root)
}

fn tasks(group: &Path) -> Vec<String> {
    fs::read_to_string(group.join("tasks"))
        .unwrap_or_else(|e| panic!("read {}/tasks: {e}", group.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn rdt_class_puts_the_container_into_the_group() {
    if !isolate() || !is_myrt() {
        return;
    }
    let (cd, root) = containerd_with_resctrl("resctrl", |root| {
        fs::create_dir(root).expect("mkdir resctrl");
        lay_out_root(root).expect("lay out resctrl");
        // a class the admin configured beforehand, as --rdt-class (closID alone) requires
        make_group(root, "myclass").expect("make class");
        fs::write(root.join("myclass/schemata"), "L3:0=f;1=f\nMB:0=50;1=50\n").expect("schemata");
    });
    let class = root.join("myclass");
    cd.ctr(args(
        &["run"],
        cd.container_args(
            Source::Image,
            &["-d", "--rdt-class", "myclass"],
            "r1",
            &["/bin/sleep", "1000"],
        ),
    ))
    .ok();
    let task = cd.wait_task_status("r1", "RUNNING", SETTLE);
    assert!(
        tasks(&class).contains(&task.pid.to_string()),
        "init {} not in {}: {:?}",
        task.pid,
        class.display(),
        tasks(&class)
    );
    assert!(tasks(&root).is_empty(), "the default group got tasks");
    // an exec'd process joins the class too (one more task id through its stage 1)
    let before = tasks(&class).len();
    cd.ctr(["tasks", "exec", "--exec-id", "e1", "r1", "/bin/true"])
        .ok();
    assert_eq!(tasks(&class).len(), before + 1, "{:?}", tasks(&class));

    cd.ctr(["tasks", "kill", "-a", "-s", "SIGKILL", "r1"]).ok();
    cd.wait_task_status("r1", "STOPPED", SETTLE);
    cd.ctr(["tasks", "delete", "r1"]).ok();
    cd.ctr(["containers", "delete", "r1"]).ok();
    // the pre-configured class stays, as it was
    assert_eq!(
        fs::read_to_string(class.join("schemata")).expect("schemata"),
        "L3:0=f;1=f\nMB:0=50;1=50\n"
    );
    cd.wait_no_shims(SETTLE);
}

#[test]
fn rdt_class_without_resctrl_fails_and_leaves_no_task() {
    if !isolate() || !is_myrt() {
        return;
    }
    // the variable names a directory that does not exist: no resctrl (as on this host anyway)
    let (cd, root) = containerd_with_resctrl("no-resctrl", |_| {});
    let out = cd
        .ctr(args(
            &["run"],
            cd.container_args(
                Source::Image,
                &["--rm", "--rdt-class", "x"],
                "r2",
                &["/bin/true"],
            ),
        ))
        .failed();
    eprintln!("{out}"); // what ctr shows (--nocapture)
    assert!(
        out.all_output().contains(&format!(
            "linux.intelRdt: this host has no resctrl filesystem mounted (Intel RDT needs a CPU \
             with RDT and \"mount -t resctrl resctrl /sys/fs/resctrl\"); {ROOT_ENV}={} is not a \
             directory",
            root.display()
        )),
        "{out}"
    );
    assert!(cd.task("r2").is_none(), "a failed create left a task");
    assert!(!cd.bundle_dir("r2").exists(), "bundle dir left behind");
    cd.wait_no_shims(SETTLE);
}
