//! The `shim_cgroup` runtime option: the shim server goes into the named cgroup, and stays out of
//! the container's own cgroup (issue 3). The option reaches the shim the way CRI sends it to a
//! non-runc runtime: `runtimeoptions.v1.Options` with a TOML file (`ctr --runtime-config-path`).
//!
//! Run as root: `cargo test -p myrt-tests --test e2e_shim_cgroup`. myrt only: runc's shim reads
//! runc options, not a TOML file.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use myrt_tests::{args, isolate, runtime, Containerd, Source, MYRT_RUNTIME};

const SETTLE: Duration = Duration::from_secs(20);

/// The cgroup path of `pid` in the hierarchy whose controllers include `ctrl` (v1), or the
/// unified one (v2: line "0::").
fn cgroup_of(pid: u32, ctrl: &str) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (id, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let hit = if ctrl.is_empty() {
            id == "0" && ctrls.is_empty()
        } else {
            ctrls.split(',').any(|c| c == ctrl)
        };
        hit.then(|| path.to_string())
    })
}

/// The directories to create for a cgroup at `path` on this host: one per mounted v1
/// hierarchy (named ones too, as the shim joins them all), or the one v2 directory.
fn cgroup_dirs(path: &str) -> Vec<PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split(' ').collect();
            let sep = fields.iter().position(|f| *f == "-")?;
            let fstype = fields.get(sep + 1)?;
            let point = fields.get(4)?;
            let v1_controllers = *fstype == "cgroup";
            let v2_alone = *fstype == "cgroup2" && *point == "/sys/fs/cgroup";
            (v1_controllers || v2_alone).then(|| PathBuf::from(format!("{point}{path}")))
        })
        .collect()
}

#[test]
fn shim_cgroup_option_places_the_shim_outside_the_container() {
    if !isolate() {
        return;
    }
    if runtime() != MYRT_RUNTIME {
        eprintln!("SKIP: the TOML runtime options are myrt's; runc's shim takes runc options");
        return;
    }
    let cd = Containerd::start();
    let shim_cg = format!("/myrt-shims-{}", cd.namespace());
    let dirs = cgroup_dirs(&shim_cg);
    assert!(!dirs.is_empty(), "no cgroup hierarchy found");
    for d in &dirs {
        fs::create_dir_all(d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        // A v1 cpuset cgroup takes no process until its cpus and mems are set.
        for f in ["cpuset.cpus", "cpuset.mems"] {
            if let Ok(v) = fs::read_to_string(d.parent().unwrap().join(f)) {
                fs::write(d.join(f), v.trim()).unwrap_or_else(|e| panic!("{f}: {e}"));
            }
        }
    }
    let opts = cd.dir().join("myrt.toml");
    fs::write(&opts, format!("shim_cgroup = \"{shim_cg}\"\n")).unwrap();
    let opts = opts.display().to_string();
    let flags = ["-d", "--runtime-config-path", opts.as_str()];
    cd.ctr(args(
        &["run"],
        cd.container_args(Source::Image, &flags, "sc", &["/bin/sleep", "1000"]),
    ))
    .ok();
    let task = cd.wait_task_status("sc", "RUNNING", SETTLE);
    let shims = cd.shim_pids();
    assert_eq!(shims.len(), 1, "{shims:?}");
    let shim = shims[0].as_raw() as u32;
    // v1: the pids hierarchy stands for all; v2: the unified one.
    let ctrl = if cgroup_of(shim, "pids").is_some() {
        "pids"
    } else {
        ""
    };
    assert_eq!(
        cgroup_of(shim, ctrl).as_deref(),
        Some(shim_cg.as_str()),
        "the shim server must be in shim_cgroup"
    );
    let container_cg = cgroup_of(task.pid, ctrl).unwrap_or_default();
    assert!(
        container_cg.ends_with("/sc") && container_cg != shim_cg,
        "the container has its own cgroup ({container_cg}), not the shim's"
    );

    // A shim_cgroup that does not exist fails the start with the path in the error.
    let bad = cd.dir().join("bad.toml");
    fs::write(&bad, "shim_cgroup = \"/myrt-no-such-cgroup/x\"\n").unwrap();
    let bad = bad.display().to_string();
    let out = cd
        .ctr(args(
            &["run"],
            cd.container_args(
                Source::Image,
                &["--rm", "--runtime-config-path", bad.as_str()],
                "sc-bad",
                &["/bin/true"],
            ),
        ))
        .failed();
    assert!(
        out.all_output().contains("/myrt-no-such-cgroup/x"),
        "the error must name the cgroup: {out}"
    );

    cd.ctr(["tasks", "kill", "-s", "SIGKILL", "sc"]).ok();
    cd.wait_task_status("sc", "STOPPED", SETTLE);
    cd.ctr(["tasks", "delete", "sc"]).ok();
    cd.ctr(["containers", "delete", "sc"]).ok();
    cd.wait_no_shims(SETTLE);
    for d in dirs.iter().rev() {
        let _ = fs::remove_dir(d);
    }
}
