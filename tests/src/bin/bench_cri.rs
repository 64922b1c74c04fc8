//! The Kubernetes benchmark behind `scripts/bench-cri.sh`: handlers `myrt`, `runc` and `crun`
//! driven through containerd's CRI plugin the way kubelet drives them, side by side in one run
//! on one private containerd; prints per-call medians and the runtime's memory per pod, each
//! with its ratio to myrt. Measures and prints; checks only that each call did its job.
//!
//! Must run inside a private mount + pid namespace (`is_isolated`): the script provides it.
//!
//! Usage: `bench_cri [N]`, N rounds (default 10) after one warm-up round. Environment:
//! `BENCH_CRI_PODS` (K pods per handler for memory, default 5), `BENCH_CRI_NETNS=0` (skip the
//! pods with a network namespace of their own), `BENCH_CRI_HANDLERS` (a comma list, default
//! `myrt,runc,crun`), `BENCH_CRUN` (crun's path, default `crun` on PATH), plus the harness's
//! `MYRT_BIN_DIR`, `MYRT_CONTAINERD`, `MYRT_IMAGE_DIR`.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use myrt_tests::cri::api::{ContainerConfig, NamespaceMode, PodSandboxConfig};
use myrt_tests::cri::{
    container_config, info_json, info_pid, pod_config, ppid, remove_cgroup_parent, CgroupParent,
    Cri, SETTLE,
};
use myrt_tests::{is_isolated, Containerd, IMAGE_REF, PAUSE_REF};
use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC};
use tonic::Status;

/// Rounds when no N is given.
const DEFAULT_ROUNDS: usize = 10;
/// Pods per handler running at once for the memory figure.
const DEFAULT_PODS: usize = 5;
/// How long ExecSync may run (`/bin/true` takes milliseconds).
const EXEC_TIMEOUT: Duration = Duration::from_secs(10);
/// StopContainer's grace period: `sleep` shares the pause's pid namespace (not its init), so
/// SIGTERM ends it at once; the grace is never waited out.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long the K pods run before their shims are measured (the shims' start-up allocations
/// settle; Go's runtime returns its start-up garbage).
const MEMORY_SETTLE: Duration = Duration::from_secs(2);
/// The app of every pod.
const APP: &[&str] = &["/bin/sleep", "3600"];

/// The rows of the latency table, in order; `NETNS_CALLS` follow when pods with a network
/// namespace of their own are measured too.
const HOST_CALLS: &[&str] = &[
    "RunPodSandbox",
    "CreateContainer",
    "StartContainer",
    "ExecSync",
    "StopContainer",
    "RemoveContainer",
    "StopPodSandbox",
    "RemovePodSandbox",
    "lifecycle (sum)",
];
const NETNS_CALLS: &[&str] = &[
    "RunPodSandbox netns",
    "StopPodSandbox netns",
    "RemovePodSandbox netns",
];

/// Why a handler stopped being measured.
#[derive(Debug, thiserror::Error)]
enum BenchError {
    /// A CRI call answered an error.
    #[error("{call}: {:?}: {}", status.code(), status.message())]
    Call { call: &'static str, status: Status },
    /// A call succeeded but did not do its job.
    #[error("{0}")]
    Check(String),
}

/// The settings of one run.
struct Bench {
    rounds: usize,
    pods: usize,
    netns: bool,
    handlers: Vec<String>,
    crun: PathBuf,
}

impl Bench {
    fn from_env() -> Result<Bench, String> {
        let rounds = match std::env::args().nth(1) {
            None => DEFAULT_ROUNDS,
            Some(n) => positive(&n).ok_or(format!("N must be a positive integer, not {n:?}"))?,
        };
        let pods = match std::env::var("BENCH_CRI_PODS") {
            Ok(k) if !k.is_empty() => {
                positive(&k).ok_or(format!("BENCH_CRI_PODS must be a positive integer: {k:?}"))?
            }
            _ => DEFAULT_PODS,
        };
        let netns = std::env::var("BENCH_CRI_NETNS").map_or(true, |v| v != "0");
        let handlers: Vec<String> = std::env::var("BENCH_CRI_HANDLERS")
            .ok()
            .filter(|h| !h.trim().is_empty())
            .unwrap_or_else(|| "myrt,runc,crun".to_string())
            .split(',')
            .map(|h| h.trim().to_string())
            .collect();
        if let Some(bad) = handlers
            .iter()
            .find(|h| !["myrt", "runc", "crun"].contains(&h.as_str()))
        {
            return Err(format!(
                "BENCH_CRI_HANDLERS: unknown handler {bad:?}; known: myrt, runc, crun"
            ));
        }
        let crun = std::env::var_os("BENCH_CRUN")
            .filter(|c| !c.is_empty())
            .map(PathBuf::from)
            .or_else(|| on_path("crun"))
            .unwrap_or_else(|| PathBuf::from("/usr/bin/crun"));
        Ok(Bench {
            rounds,
            pods,
            netns,
            handlers,
            crun,
        })
    }

    /// `MYRT_CRI_EXTRA` of `scripts/containerd.sh config-cri`: handler `crun`, containerd's runc
    /// shim running crun instead of runc (headers relative to the CRI runtime plugin's table).
    fn crun_handler(&self) -> String {
        format!(
            "[containerd.runtimes.crun]\n  runtime_type = \"io.containerd.runc.v2\"\n\
             [containerd.runtimes.crun.options]\n  BinaryName = {:?}\n",
            self.crun.display().to_string()
        )
    }
}

fn positive(s: &str) -> Option<usize> {
    s.parse().ok().filter(|n| *n > 0)
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// What one pod needs: its log dir and cgroup parent (unique to this containerd).
struct Ctx<'a> {
    cri: &'a Cri,
    log_dir: PathBuf,
    parent: String,
}

impl Ctx<'_> {
    fn pod(&self, name: &str, network: NamespaceMode) -> PodSandboxConfig {
        pod_config(
            name,
            &format!("uid-{name}-{}", std::process::id()),
            &self.log_dir,
            &self.parent,
            network,
        )
    }
}

fn app() -> ContainerConfig {
    container_config("app", IMAGE_REF, APP, "app.log", &[])
}

/// Runs one CRI call and keeps its latency in `rows` when it succeeds.
fn timed<T>(
    rows: &mut Vec<(&'static str, f64)>,
    call: &'static str,
    f: impl FnOnce() -> Result<T, Status>,
) -> Result<T, BenchError> {
    let start = Instant::now();
    let result = f();
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    let value = result.map_err(|status| BenchError::Call { call, status })?;
    rows.push((call, ms));
    Ok(value)
}

/// Pods and containers not yet removed, so a failed round leaves nothing behind.
#[derive(Default)]
struct Live {
    pods: Vec<String>,
    containers: Vec<String>,
}

impl Live {
    fn forget(list: &mut Vec<String>, id: &str) {
        list.retain(|x| x != id);
    }

    /// Best effort: stop and remove what is left, containers first.
    fn clean(&mut self, cri: &Cri) {
        for id in self.containers.drain(..) {
            let _ = cri.stop_container(&id, Duration::ZERO);
            let _ = cri.remove_container(&id);
        }
        for id in self.pods.drain(..) {
            let _ = cri.stop_pod_sandbox(&id);
            let _ = cri.remove_pod_sandbox(&id);
        }
    }
}

/// One host-network pod's life, each call timed: run the pod, create + start the app, ExecSync
/// `/bin/true`, stop + remove the app, stop + remove the pod. `inspect` sees the running pod.
fn host_pod(
    ctx: &Ctx,
    handler: &str,
    name: &str,
    live: &mut Live,
    inspect: impl FnOnce(&str, &str) -> Result<(), BenchError>,
) -> Result<Vec<(&'static str, f64)>, BenchError> {
    let cri = ctx.cri;
    let mut rows = Vec::new();
    let pod = ctx.pod(name, NamespaceMode::Node);
    let pod_id = timed(&mut rows, "RunPodSandbox", || {
        cri.run_pod_sandbox(&pod, handler)
    })?;
    live.pods.push(pod_id.clone());
    let app = app();
    let ctr = timed(&mut rows, "CreateContainer", || {
        cri.create_container(&pod_id, &app, &pod)
    })?;
    live.containers.push(ctr.clone());
    timed(&mut rows, "StartContainer", || cri.start_container(&ctr))?;
    let r = timed(&mut rows, "ExecSync", || {
        cri.exec_sync(&ctr, &["/bin/true"], EXEC_TIMEOUT)
    })?;
    if r.exit_code != 0 {
        return Err(BenchError::Check(format!(
            "ExecSync /bin/true exited {}: {}",
            r.exit_code,
            String::from_utf8_lossy(&r.stderr)
        )));
    }
    inspect(&pod_id, &ctr)?;
    timed(&mut rows, "StopContainer", || {
        cri.stop_container(&ctr, STOP_GRACE)
    })?;
    timed(&mut rows, "RemoveContainer", || cri.remove_container(&ctr))?;
    Live::forget(&mut live.containers, &ctr);
    timed(&mut rows, "StopPodSandbox", || {
        cri.stop_pod_sandbox(&pod_id)
    })?;
    timed(&mut rows, "RemovePodSandbox", || {
        cri.remove_pod_sandbox(&pod_id)
    })?;
    Live::forget(&mut live.pods, &pod_id);
    let sum = rows.iter().map(|(_, ms)| ms).sum();
    rows.push(("lifecycle (sum)", sum));
    Ok(rows)
}

/// A pod with a network namespace of its own (CNI bridge), no app: run, stop, remove.
fn netns_pod(
    ctx: &Ctx,
    handler: &str,
    name: &str,
    live: &mut Live,
) -> Result<Vec<(&'static str, f64)>, BenchError> {
    let cri = ctx.cri;
    let mut rows = Vec::new();
    let pod = ctx.pod(name, NamespaceMode::Pod);
    let id = timed(&mut rows, "RunPodSandbox netns", || {
        cri.run_pod_sandbox(&pod, handler)
    })?;
    live.pods.push(id.clone());
    timed(&mut rows, "StopPodSandbox netns", || {
        cri.stop_pod_sandbox(&id)
    })?;
    timed(&mut rows, "RemovePodSandbox netns", || {
        cri.remove_pod_sandbox(&id)
    })?;
    Live::forget(&mut live.pods, &id);
    Ok(rows)
}

/// The warm-up's check that each handler runs what it claims: the verbose status names the
/// handler, and the app's state dir under the runc shim's root holds runc's `state.json` or
/// crun's `status` file (myrt keeps its state elsewhere).
fn check_engine(cri: &Cri, handler: &str, pod: &str, ctr: &str) -> Result<(), BenchError> {
    let st = cri
        .pod_sandbox_status(pod)
        .map_err(|status| BenchError::Call {
            call: "PodSandboxStatus",
            status,
        })?;
    let info = info_json(&st.info);
    let named = match &info["runtimeHandler"] {
        serde_json::Value::Null => &info["sandboxMetadata"]["Metadata"]["RuntimeHandler"],
        h => h,
    };
    if named.as_str() != Some(handler) {
        return Err(BenchError::Check(format!(
            "PodSandboxStatus names handler {named}, not {handler:?}"
        )));
    }
    let state = Path::new("/run/containerd/runc/k8s.io").join(ctr);
    let want = match handler {
        "runc" => "state.json",
        "crun" => "status",
        _ => return Ok(()),
    };
    if !state.join(want).is_file() {
        let seen: Vec<String> = fs::read_dir(&state)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        return Err(BenchError::Check(format!(
            "handler {handler}: no {want} in {} (holds {seen:?}): is {handler} really the engine?",
            state.display()
        )));
    }
    Ok(())
}

/// What a known failure means.
fn hint(e: &BenchError) -> &'static str {
    match e {
        BenchError::Call { status, .. }
            if status.message().contains("unknown version specified") =>
        {
            " (this crun refuses the config's ociVersion: containerd 2.x writes runtime-spec \
             1.2.x configs, `ctr oci spec` says 1.2.1; 1.6 writes 1.0.2-dev)"
        }
        _ => "",
    }
}

/// The memory of one pod's runtime processes, in KiB (from /proc/PID/smaps_rollup).
#[derive(Debug, Default, Clone, Copy)]
struct Mem {
    procs: u64,
    threads: u64,
    rss: u64,
    pss: u64,
    /// Private_Clean + Private_Dirty: pages no other process maps (USS).
    uss: u64,
}

impl Mem {
    fn add(&mut self, o: Mem) {
        self.procs += o.procs;
        self.threads += o.threads;
        self.rss += o.rss;
        self.pss += o.pss;
        self.uss += o.uss;
    }
}

fn smaps(pid: u64) -> Option<Mem> {
    let raw = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let kib = |key: &str| -> u64 {
        raw.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let threads = myrt_tests::cri::status_field(pid, "Threads")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    Some(Mem {
        procs: 1,
        threads,
        rss: kib("Rss"),
        pss: kib("Pss"),
        uss: kib("Private_Clean") + kib("Private_Dirty"),
    })
}

/// The runtime's processes of one pod: the shim (the pause's parent) and every descendant of
/// it that is not a container process (the pause, the app and their descendants).
fn runtime_pids(shim: u64, containers: &[u64]) -> Vec<u64> {
    let parent: HashMap<u64, u64> = myrt_tests::cri::pids()
        .into_iter()
        .filter_map(|p| Some((p, ppid(p)?)))
        .collect();
    let mut out = vec![shim];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(
            parent
                .iter()
                .filter(|(c, pp)| **pp == p && !containers.contains(c))
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    out
}

/// K host-network pods of `handler` (pause + app each) running at once: the summed memory of
/// their runtime processes divided by K.
fn memory(ctx: &Ctx, handler: &str, k: usize, live: &mut Live) -> Result<Mem, BenchError> {
    let cri = ctx.cri;
    let mut pods = Vec::new();
    for i in 0..k {
        let mut rows = Vec::new();
        let pod = ctx.pod(&format!("mem-{handler}-{i}"), NamespaceMode::Node);
        let id = timed(&mut rows, "RunPodSandbox", || {
            cri.run_pod_sandbox(&pod, handler)
        })?;
        live.pods.push(id.clone());
        let ctr = timed(&mut rows, "CreateContainer", || {
            cri.create_container(&id, &app(), &pod)
        })?;
        live.containers.push(ctr.clone());
        timed(&mut rows, "StartContainer", || cri.start_container(&ctr))?;
        pods.push((id, ctr));
    }
    thread::sleep(MEMORY_SETTLE);
    let mut total = Mem::default();
    for (id, ctr) in &pods {
        let status = |call: &'static str| move |status| BenchError::Call { call, status };
        let pause = info_pid(&info_json(
            &cri.pod_sandbox_status(id)
                .map_err(status("PodSandboxStatus"))?
                .info,
        ));
        let app = info_pid(&info_json(
            &cri.container_status(ctr)
                .map_err(status("ContainerStatus"))?
                .info,
        ));
        let shim = ppid(pause)
            .ok_or_else(|| BenchError::Check(format!("the pause (pid {pause}) has no parent")))?;
        if ppid(app) != Some(shim) {
            return Err(BenchError::Check(format!(
                "pod {id}: the app (pid {app}) is not a child of the pause's shim (pid {shim})"
            )));
        }
        for pid in runtime_pids(shim, &[pause, app]) {
            total.add(smaps(pid).ok_or_else(|| {
                BenchError::Check(format!("cannot read /proc/{pid}/smaps_rollup"))
            })?);
        }
    }
    live.clean(cri);
    let k = k as u64;
    Ok(Mem {
        procs: total.procs / k,
        threads: total.threads / k,
        rss: total.rss / k,
        pss: total.pss / k,
        uss: total.uss / k,
    })
}

/// One handler's results.
#[derive(Default)]
struct Results {
    samples: BTreeMap<&'static str, Vec<f64>>,
    memory: Option<Mem>,
    failure: Option<String>,
}

fn median(v: &[f64]) -> Option<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(s[n / 2]),
        _ => Some((s[n / 2 - 1] + s[n / 2]) / 2.0),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "-".to_string(),
    }
}

fn print_latency(bench: &Bench, results: &BTreeMap<String, Results>, calls: &[&str]) {
    println!(
        "{:<24} {:<5} {:>3} {:>10} {:>8}",
        "call", "rt", "n", "median_ms", "vs_myrt"
    );
    for call in calls {
        let myrt = results
            .get("myrt")
            .and_then(|r| median(r.samples.get(call)?));
        for h in &bench.handlers {
            let r = &results[h];
            let v = r.samples.get(call).map(Vec::as_slice).unwrap_or(&[]);
            let m = median(v);
            println!(
                "{:<24} {:<5} {:>3} {:>10} {:>8}",
                call,
                h,
                v.len(),
                m.map_or("FAILED".to_string(), |m| format!("{m:.1}")),
                ratio(m, myrt)
            );
        }
    }
}

fn print_memory(bench: &Bench, results: &BTreeMap<String, Results>) {
    println!(
        "{:<5} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "rt", "procs", "threads", "rss_kib", "pss_kib", "uss_kib", "pss_vs", "uss_vs"
    );
    let myrt = results.get("myrt").and_then(|r| r.memory);
    for h in &bench.handlers {
        match results[h].memory {
            None => println!("{h:<5} {:>6}", "FAILED"),
            Some(m) => println!(
                "{:<5} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
                h,
                m.procs,
                m.threads,
                m.rss,
                m.pss,
                m.uss,
                ratio(Some(m.pss as f64), myrt.map(|x| x.pss as f64)),
                ratio(Some(m.uss as f64), myrt.map(|x| x.uss as f64)),
            ),
        }
    }
}

/// The dirs of cgroup `rel` (and of its children) still present in a cgroup hierarchy under
/// /sys/fs/cgroup. Only cgroup file systems count: the private tmpfs that hides the cgroup2
/// mount gets crun's stray `cgroup.procs` files and goes with the namespace.
fn cgroups_left(rel: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let rel = rel.trim_start_matches('/');
    let mut hierarchies = vec![root.to_path_buf()];
    if let Ok(entries) = fs::read_dir(root) {
        hierarchies.extend(entries.flatten().map(|e| e.path()));
    }
    hierarchies.retain(|h| {
        statfs(h)
            .is_ok_and(|s| [CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC].contains(&s.filesystem_type()))
    });
    let mut left = Vec::new();
    for dir in hierarchies
        .iter()
        .map(|h| h.join(rel))
        .filter(|d| d.is_dir())
    {
        left.extend(
            fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir()),
        );
        left.push(dir);
    }
    left
}

fn run(bench: &Bench) -> bool {
    // Bound in this order: the cgroup parent goes after containerd's drop killed what is left.
    let (parent, cd) = {
        let extra = bench.crun_handler();
        let cd = Containerd::start_cri_with_config_env(&[("MYRT_CRI_EXTRA", extra.as_str())]);
        (CgroupParent(CgroupParent::path_for(&cd)), cd)
    };
    let cri = Cri::connect(&cd.address());
    cri.wait_images(&[PAUSE_REF, IMAGE_REF], SETTLE);
    let version = cri
        .version()
        .map(|v| v.runtime_version)
        .unwrap_or_else(|e| format!("unknown ({e})"));
    let log_dir = cd.dir().join("pod-logs");
    if let Err(e) = fs::create_dir_all(&log_dir) {
        eprintln!("bench_cri: cannot create {}: {e}", log_dir.display());
        return false;
    }
    let ctx = Ctx {
        cri: &cri,
        log_dir,
        parent: parent.0.clone(),
    };
    let mut results: BTreeMap<String, Results> = bench
        .handlers
        .iter()
        .map(|h| (h.clone(), Results::default()))
        .collect();
    let mut live = Live::default();
    let started = Instant::now();
    // Round 0 warms up (page cache, first shim start) and checks each handler's engine.
    for round in 0..=bench.rounds {
        // Rotate who goes first, so no handler always follows the same one's teardown.
        let n = bench.handlers.len();
        for i in 0..n {
            let h = &bench.handlers[(round + i) % n];
            let res = results.get_mut(h).filter(|r| r.failure.is_none());
            let Some(res) = res else { continue };
            let outcome = host_pod(&ctx, h, &format!("lat-{h}-{round}"), &mut live, |p, c| {
                if round == 0 {
                    check_engine(&cri, h, p, c)
                } else {
                    Ok(())
                }
            })
            .and_then(|mut rows| {
                if bench.netns {
                    rows.extend(netns_pod(&ctx, h, &format!("net-{h}-{round}"), &mut live)?);
                }
                Ok(rows)
            });
            match outcome {
                Ok(rows) if round > 0 => {
                    for (call, ms) in rows {
                        res.samples.entry(call).or_default().push(ms);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let e = format!("{e}{}", hint(&e));
                    eprintln!("bench_cri: handler {h} failed in round {round}: {e}");
                    res.failure = Some(format!("round {round}: {e}"));
                    live.clean(&cri);
                }
            }
        }
    }
    let latency_s = started.elapsed().as_secs_f64();
    for h in &bench.handlers {
        let res = results.get_mut(h).filter(|r| r.failure.is_none());
        let Some(res) = res else { continue };
        match memory(&ctx, h, bench.pods, &mut live) {
            Ok(m) => res.memory = Some(m),
            Err(e) => {
                eprintln!("bench_cri: handler {h} failed in the memory run: {e}");
                res.failure = Some(format!("memory: {e}"));
                live.clean(&cri);
            }
        }
        // The next handler's pods start with no shim of this one left.
        cd.wait_no_shims(SETTLE);
    }

    println!(
        "CRI latency: containerd {version}, {} rounds (+1 warm-up) of each handler, interleaved \
         ({:.0} s)",
        bench.rounds, latency_s
    );
    println!(
        "host-network pods: RunPodSandbox .. RemovePodSandbox of a pause + one busybox app \
         (`sleep 3600`), ExecSync /bin/true, StopContainer with a {}s grace (SIGTERM ends it)",
        STOP_GRACE.as_secs()
    );
    print_latency(bench, &results, HOST_CALLS);
    if bench.netns {
        println!();
        println!(
            "pods with a network namespace of their own (CNI bridge + host-local IPAM), no app:"
        );
        print_latency(bench, &results, NETNS_CALLS);
    }
    println!("(median of n rounds; vs_myrt = handler median / myrt median, > 1: myrt is faster)");
    println!();
    println!(
        "runtime memory per pod: {} host-network pods per handler running at once (pause + one \
         app each),",
        bench.pods
    );
    println!(
        "summed over each pod's shim and its non-container descendants (the pause and app \
         processes are the same for every handler and not counted), divided by {}:",
        bench.pods
    );
    print_memory(bench, &results);
    println!(
        "(KiB from /proc/PID/smaps_rollup: pss = shared pages split among the processes mapping \
         them, uss = Private_Clean + Private_Dirty; *_vs = handler / myrt, > 1: myrt uses less)"
    );

    // Clean-up: every pod removed, no shim left, the cgroup parent gone.
    live.clean(&cri);
    cd.wait_no_shims(SETTLE);
    remove_cgroup_parent(&parent.0);
    let left = cgroups_left(&parent.0);
    println!();
    if left.is_empty() {
        println!(
            "clean-up: pods removed, no shim left, cgroup parent {} removed",
            parent.0
        );
    } else {
        println!("clean-up: pods removed, no shim left, but cgroups LEFT: {left:?}");
    }
    let mut ok = left.is_empty();
    for h in &bench.handlers {
        if let Some(f) = &results[h].failure {
            println!("FAILED {h}: {f}");
            ok = false;
        }
    }
    ok
}

fn main() -> ExitCode {
    let bench = match Bench::from_env() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("bench_cri: {e}");
            return ExitCode::from(2);
        }
    };
    if !is_isolated() {
        eprintln!(
            "bench_cri: not in a private mount + pid namespace made for it: run \
             scripts/bench-cri.sh"
        );
        return ExitCode::from(2);
    }
    if bench.handlers.iter().any(|h| h == "crun") && !bench.crun.is_file() {
        eprintln!(
            "bench_cri: crun not found at {} (set BENCH_CRUN, or leave crun out of \
             BENCH_CRI_HANDLERS)",
            bench.crun.display()
        );
        return ExitCode::from(2);
    }
    if run(&bench) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
