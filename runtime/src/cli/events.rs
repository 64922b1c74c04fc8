//! `events`: the container's statistics as runc's JSON events, one per line on stdout:
//! `{"type":"stats","id":ID,"data":{...}}` with runc's `types.Stats` field names. With `--stats`
//! one event and exit; otherwise one every `--interval` (Go duration, default 5s) until the
//! container stops, and `{"type":"oom","id":ID}` for each OOM kill in the container's cgroup.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use clap::Args;
use myrt_runtime::cgroups::oom::OomNotifier;
use myrt_runtime::cgroups::stats::{self, Stats};
use myrt_runtime::intelrdt::Stats as IntelRdtStats;
use myrt_runtime::{Container, Status};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde::{Serialize, Serializer};

use super::{CliError, Global, Result};

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// set the stats collection interval
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub interval: Duration,
    /// display the container's stats then exit
    #[arg(long)]
    pub stats: bool,
    /// the container id
    #[arg(value_name = "container-id")]
    pub id: String,
}

pub fn events(g: &Global, a: EventsArgs) -> Result<i32> {
    if a.interval.is_zero() {
        return Err(CliError::Usage(
            "duration interval must be greater than 0".into(),
        ));
    }
    let container = g.factory()?.load(&a.id)?;
    if container.status() == Status::Stopped {
        return Err(CliError::State(format!(
            "container with id {} is not running",
            a.id
        )));
    }
    if a.stats {
        let rdt = container.intel_rdt_stats()?;
        emit(&Event::stats(&a.id, &container.stats()?, rdt))?;
        return Ok(0);
    }
    watch(&container, a.interval)
}

/// What ended a wait in [`watch`].
enum Wake {
    Tick,
    Stopped,
    /// OOM kills the container's OomNotifier counted.
    Oom(u64),
}

/// Prints stats every `interval` and an oom line for each OOM kill until the container stops;
/// a failed read is logged and the next tick tries again (runc does the same).
fn watch(container: &Container, interval: Duration) -> Result<i32> {
    // before the first wait, so that no kill is missed; runc fails too when it cannot watch
    let mut oom = container.oom_notifier()?;
    let id = container.id();
    let mut next = Instant::now() + interval;
    loop {
        match wait(container, &mut oom, next) {
            Wake::Stopped => return Ok(0),
            Wake::Oom(kills) => {
                for _ in 0..kills {
                    emit(&Event::oom(id))?;
                }
            }
            Wake::Tick => {
                next += interval;
                match container
                    .stats()
                    .and_then(|s| Ok((s, container.intel_rdt_stats()?)))
                {
                    Ok((s, rdt)) => emit(&Event::stats(id, &s, rdt))?,
                    Err(e) => log::error!("{e}"),
                }
            }
        }
    }
}

/// How often a wait looks at the container's status: an exit ends `events` within this.
const STATUS_POLL: Duration = Duration::from_millis(100);

/// Waits on the OOM notifier until `deadline`, an OOM kill, or the container stops (the kill
/// that stopped it is reported first).
fn wait(container: &Container, oom: &mut OomNotifier, deadline: Instant) -> Wake {
    loop {
        let stopped = container.status() == Status::Stopped;
        match oom.check() {
            Ok(0) => {}
            Ok(kills) => return Wake::Oom(kills),
            Err(e) => log::error!("oom: {e}"),
        }
        if stopped {
            return Wake::Stopped;
        }
        let now = Instant::now();
        if now >= deadline {
            return Wake::Tick;
        }
        let timeout = (deadline - now).min(STATUS_POLL);
        let mut fds = [PollFd::new(oom.as_fd(), PollFlags::POLLIN)];
        let ms = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        if let Err(e) = poll(&mut fds, ms) {
            if e != nix::errno::Errno::EINTR {
                log::error!("oom: poll: {e}");
                std::thread::sleep(timeout);
            }
        }
    }
}

/// One JSON line on stdout; a closed stdout (the reader went away) ends the command.
fn emit(event: &Event<'_>) -> Result<()> {
    let line = match serde_json::to_string(event) {
        Ok(line) => line,
        Err(e) => {
            log::error!("encode event: {e}");
            return Ok(());
        }
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(super::io_err("stdout"))
}

/// runc's `types.Event`.
#[derive(Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<RuncStats>,
}

impl<'a> Event<'a> {
    /// `rdt`: the container's Intel RDT statistics, when it has linux.intelRdt.
    fn stats(id: &'a str, s: &Stats, rdt: Option<IntelRdtStats>) -> Event<'a> {
        let mut data = RuncStats::from(s);
        data.intel_rdt = rdt.unwrap_or_default();
        Event {
            kind: "stats",
            id,
            data: Some(data),
        }
    }

    /// `{"type":"oom","id":ID}`, for the OOM lines.
    fn oom(id: &'a str) -> Event<'a> {
        Event {
            kind: "oom",
            id,
            data: None,
        }
    }
}

// runc's types.Stats, field for field in its order; `skip_serializing_if` where runc's tag says
// omitempty (Go omits zero numbers, empty slices and maps, nil pointers, never structs).

fn zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Serialize)]
struct RuncStats {
    cpu: Cpu,
    cpuset: CpuSet,
    memory: Memory,
    pids: Pids,
    blkio: Blkio,
    hugetlb: BTreeMap<String, Hugetlb>,
    /// runc's types.IntelRdt: its intelrdt.Stats with the same JSON names; `{}` without
    /// linux.intelRdt.
    intel_rdt: IntelRdtStats,
    /// Not collected (runc reads them from the container's network namespace): null.
    network_interfaces: Option<Vec<()>>,
}

#[derive(Serialize)]
struct Cpu {
    usage: CpuUsage,
    throttling: Throttling,
    #[serde(skip_serializing_if = "Option::is_none")]
    psi: Option<Psi>,
}

#[derive(Serialize)]
struct CpuUsage {
    #[serde(skip_serializing_if = "zero")]
    total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    percpu_user: Vec<u64>,
    kernel: u64,
    user: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Throttling {
    #[serde(skip_serializing_if = "zero")]
    periods: u64,
    #[serde(skip_serializing_if = "zero")]
    throttled_periods: u64,
    #[serde(skip_serializing_if = "zero")]
    throttled_time: u64,
}

#[derive(Serialize)]
struct Psi {
    some: PsiData,
    full: PsiData,
}

#[derive(Serialize)]
struct PsiData {
    #[serde(serialize_with = "go_float")]
    avg10: f64,
    #[serde(serialize_with = "go_float")]
    avg60: f64,
    #[serde(serialize_with = "go_float")]
    avg300: f64,
    total: u64,
}

/// Go's encoding/json writes a whole float64 without a fraction ("0", not "0.0").
fn go_float<S: Serializer>(v: &f64, s: S) -> std::result::Result<S::Ok, S::Error> {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f64(*v)
    }
}

#[derive(Serialize)]
struct CpuSet {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cpus: Vec<u16>,
    cpu_exclusive: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    mems: Vec<u16>,
    mem_hardwall: u64,
    mem_exclusive: u64,
    memory_migrate: u64,
    memory_spread_page: u64,
    memory_spread_slab: u64,
    memory_pressure: u64,
    sched_load_balance: u64,
    sched_relax_domain_level: i64,
}

#[derive(Serialize)]
struct MemoryEntry {
    limit: u64,
    #[serde(skip_serializing_if = "zero")]
    usage: u64,
    #[serde(skip_serializing_if = "zero")]
    max: u64,
    failcnt: u64,
}

#[derive(Serialize)]
struct Memory {
    #[serde(skip_serializing_if = "zero")]
    cache: u64,
    usage: MemoryEntry,
    swap: MemoryEntry,
    kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    raw: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    psi: Option<Psi>,
}

#[derive(Serialize)]
struct Pids {
    #[serde(skip_serializing_if = "zero")]
    current: u64,
    #[serde(skip_serializing_if = "zero")]
    limit: u64,
}

#[derive(Serialize)]
struct BlkioEntry {
    #[serde(skip_serializing_if = "zero")]
    major: u64,
    #[serde(skip_serializing_if = "zero")]
    minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    op: String,
    #[serde(skip_serializing_if = "zero")]
    value: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Blkio {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    io_serviced_recursive: Vec<BlkioEntry>,
    /// runc's tag really says "ioQueueRecursive".
    #[serde(rename = "ioQueueRecursive", skip_serializing_if = "Vec::is_empty")]
    io_queued_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    io_service_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    io_wait_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    io_merged_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    io_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    sectors_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    psi: Option<Psi>,
}

#[derive(Serialize)]
struct Hugetlb {
    #[serde(skip_serializing_if = "zero")]
    usage: u64,
    #[serde(skip_serializing_if = "zero")]
    max: u64,
    failcnt: u64,
}

impl From<&stats::Psi> for Psi {
    fn from(p: &stats::Psi) -> Psi {
        let d = |d: &stats::PsiData| PsiData {
            avg10: d.avg10,
            avg60: d.avg60,
            avg300: d.avg300,
            total: d.total,
        };
        Psi {
            some: d(&p.some),
            full: d(&p.full),
        }
    }
}

impl From<&stats::MemoryData> for MemoryEntry {
    fn from(m: &stats::MemoryData) -> MemoryEntry {
        MemoryEntry {
            limit: m.limit,
            usage: m.usage,
            max: m.max_usage,
            failcnt: m.failcnt,
        }
    }
}

fn blkio_entries(list: &[stats::BlkioEntry]) -> Vec<BlkioEntry> {
    list.iter()
        .map(|e| BlkioEntry {
            major: e.major,
            minor: e.minor,
            op: e.op.clone(),
            value: e.value,
        })
        .collect()
}

/// runc's `convertLibcontainerStats`.
impl From<&Stats> for RuncStats {
    fn from(s: &Stats) -> RuncStats {
        let u = &s.cpu.usage;
        let c = &s.cpuset;
        let m = &s.memory;
        let b = &s.blkio;
        RuncStats {
            cpu: Cpu {
                usage: CpuUsage {
                    total: u.total,
                    percpu: u.percpu.clone(),
                    percpu_kernel: u.percpu_kernel.clone(),
                    percpu_user: u.percpu_user.clone(),
                    kernel: u.kernel,
                    user: u.user,
                },
                throttling: Throttling {
                    periods: s.cpu.throttling.periods,
                    throttled_periods: s.cpu.throttling.throttled_periods,
                    throttled_time: s.cpu.throttling.throttled_time,
                },
                psi: s.cpu.psi.as_ref().map(Psi::from),
            },
            cpuset: CpuSet {
                cpus: c.cpus.clone(),
                cpu_exclusive: c.cpu_exclusive,
                mems: c.mems.clone(),
                mem_hardwall: c.mem_hardwall,
                mem_exclusive: c.mem_exclusive,
                memory_migrate: c.memory_migrate,
                memory_spread_page: c.memory_spread_page,
                memory_spread_slab: c.memory_spread_slab,
                memory_pressure: c.memory_pressure,
                sched_load_balance: c.sched_load_balance,
                sched_relax_domain_level: c.sched_relax_domain_level,
            },
            memory: Memory {
                cache: m.cache,
                usage: (&m.usage).into(),
                swap: (&m.swap_usage).into(),
                kernel: (&m.kernel_usage).into(),
                kernel_tcp: (&m.kernel_tcp_usage).into(),
                raw: m.stats.clone(),
                psi: m.psi.as_ref().map(Psi::from),
            },
            pids: Pids {
                current: s.pids.current,
                limit: s.pids.limit,
            },
            blkio: Blkio {
                io_service_bytes_recursive: blkio_entries(&b.io_service_bytes_recursive),
                io_serviced_recursive: blkio_entries(&b.io_serviced_recursive),
                io_queued_recursive: blkio_entries(&b.io_queued_recursive),
                io_service_time_recursive: blkio_entries(&b.io_service_time_recursive),
                io_wait_time_recursive: blkio_entries(&b.io_wait_time_recursive),
                io_merged_recursive: blkio_entries(&b.io_merged_recursive),
                io_time_recursive: blkio_entries(&b.io_time_recursive),
                sectors_recursive: blkio_entries(&b.sectors_recursive),
                psi: b.psi.as_ref().map(Psi::from),
            },
            hugetlb: s
                .hugetlb
                .iter()
                .map(|(size, h)| {
                    let h = Hugetlb {
                        usage: h.usage,
                        max: h.max_usage,
                        failcnt: h.failcnt,
                    };
                    (size.clone(), h)
                })
                .collect(),
            intel_rdt: IntelRdtStats::default(),
            network_interfaces: None,
        }
    }
}

/// A Go duration ("5s", "1m30s", "1.5h", "300ms", "10us"/"10µs", "20ns"), as runc's
/// `--interval` takes it; a bare "0" is zero.
pub fn parse_duration(raw: &str) -> std::result::Result<Duration, String> {
    let bad = || format!("invalid duration {raw:?}: expected e.g. 5s, 500ms, 1m30s");
    if raw == "0" {
        return Ok(Duration::ZERO);
    }
    if raw.starts_with('-') {
        return Err(format!("invalid duration {raw:?}: must not be negative"));
    }
    let mut rest = raw.strip_prefix('+').unwrap_or(raw);
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += value * nanos_per;
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(Duration::from_nanos(total as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let d = |s: &str| parse_duration(s).unwrap();
        assert_eq!(d("5s"), Duration::from_secs(5));
        assert_eq!(d("1m30s"), Duration::from_secs(90));
        assert_eq!(d("1.5h"), Duration::from_secs(5400));
        assert_eq!(d("300ms"), Duration::from_millis(300));
        assert_eq!(d("10us"), Duration::from_micros(10));
        assert_eq!(d("10µs"), Duration::from_micros(10));
        assert_eq!(d("20ns"), Duration::from_nanos(20));
        assert_eq!(d("0"), Duration::ZERO);
        assert_eq!(d("0s"), Duration::ZERO);
        for bad in ["", "5", "s", "5x", "-1s", "1..5s", "5s3"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_like_runc() {
        let mut s = Stats::default();
        s.cpu.usage.total = 22302198;
        s.cpu.usage.percpu = vec![2823455, 19478743];
        s.cpuset.cpus = vec![0, 1];
        s.cpuset.sched_relax_domain_level = -1;
        s.memory.usage = stats::MemoryData {
            usage: 733184,
            max_usage: 2510848,
            failcnt: 0,
            limit: 67108864,
        };
        s.memory.stats.insert("cache".into(), 0);
        s.pids.current = 1;
        s.blkio.io_serviced_recursive.push(stats::BlkioEntry {
            major: 8,
            minor: 0,
            op: "Read".into(),
            value: 3,
        });
        let line = serde_json::to_string(&Event::stats("c1", &s, None)).unwrap();
        // the shape of runc 1.1's `events --stats` output
        assert!(
            line.starts_with(
                r#"{"type":"stats","id":"c1","data":{"cpu":{"usage":{"total":22302198,"percpu":[2823455,19478743],"kernel":0,"user":0},"throttling":{}},"cpuset":{"cpus":[0,1],"cpu_exclusive":0,"mem_hardwall":0,"#
            ),
            "{line}"
        );
        assert!(
            line.contains(r#""memory":{"usage":{"limit":67108864,"usage":733184,"max":2510848,"failcnt":0},"swap":{"limit":0,"failcnt":0},"#),
            "{line}"
        );
        assert!(line.contains(r#""kernelTCP":{"limit":0,"failcnt":0},"raw":{"cache":0}},"pids":{"current":1},"blkio":{"ioServicedRecursive":[{"major":8,"op":"Read","value":3}]},"hugetlb":{},"intel_rdt":{},"network_interfaces":null}}"#), "{line}");
        let oom = serde_json::to_string(&Event::oom("c1")).unwrap();
        assert_eq!(oom, r#"{"type":"oom","id":"c1"}"#);

        s.cpu.psi = Some(stats::Psi {
            some: stats::PsiData {
                avg10: 1.5,
                avg60: 0.0,
                avg300: 0.0,
                total: 7,
            },
            full: stats::PsiData::default(),
        });
        let line = serde_json::to_string(&Event::stats("c1", &s, None)).unwrap();
        assert!(
            line.contains(r#""psi":{"some":{"avg10":1.5,"avg60":0,"avg300":0,"total":7},"full":{"avg10":0,"avg60":0,"avg300":0,"total":0}}"#),
            "{line}"
        );

        // runc's types.IntelRdt: only what was read, with runc's names
        let rdt = IntelRdtStats {
            l3_cache_schema: "L3:0=ff".into(),
            cmt_stats: Some(vec![myrt_runtime::intelrdt::CmtNumaNodeStats {
                llc_occupancy: 4096,
            }]),
            ..Default::default()
        };
        let line = serde_json::to_string(&Event::stats("c1", &s, Some(rdt))).unwrap();
        assert!(
            line.contains(r#""intel_rdt":{"l3_cache_schema":"L3:0=ff","cmt_stats":[{"llc_occupancy":4096}]},"network_interfaces":null"#),
            "{line}"
        );
    }
}
