//! Usage statistics of a cgroup, read from its files: runc's `cgroups.Stats` (fs and fs2
//! drivers) with the same units and conventions, so that `myrt events --stats` can print runc's
//! JSON and the shim can fill containerd's metrics.
//!
//! Conventions taken from runc: times are nanoseconds (v2's `*_usec` are multiplied by 1000,
//! v1's `cpuacct.stat` ticks converted); "max" reads as `u64::MAX` except `pids.limit`, where
//! unlimited is 0; a negative number reads as 0; a file the kernel or a controller does not
//! provide leaves its fields at zero. A cgroup directory that is gone is an error naming it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::fs::{self, io_err};
use super::CgroupError;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    pub cpu: CpuStats,
    /// cgroup v1 only (runc's fs2 has no cpuset statistics).
    pub cpuset: CpusetStats,
    pub memory: MemoryStats,
    pub pids: PidsStats,
    pub blkio: BlkioStats,
    /// Page size ("2MB", "1GB") to its statistics.
    pub hugetlb: BTreeMap<String, HugetlbStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CpuStats {
    pub usage: CpuUsage,
    pub throttling: Throttling,
    pub burst: Burst,
    /// v2 `cpu.pressure`, when the kernel has PSI.
    pub psi: Option<Psi>,
}

/// CPU time since the cgroup was created, in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CpuUsage {
    pub total: u64,
    /// v1 only: `cpuacct.usage_percpu`, and the split of `cpuacct.usage_all`.
    pub percpu: Vec<u64>,
    pub percpu_kernel: Vec<u64>,
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Throttling {
    pub periods: u64,
    pub throttled_periods: u64,
    /// Nanoseconds.
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Burst {
    pub periods: u64,
    /// Nanoseconds.
    pub time: u64,
}

/// One `*.pressure` file.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Psi {
    pub some: PsiData,
    pub full: PsiData,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PsiData {
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    /// Microseconds.
    pub total: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CpusetStats {
    pub cpus: Vec<u16>,
    pub cpu_exclusive: u64,
    pub mems: Vec<u16>,
    pub mem_hardwall: u64,
    pub mem_exclusive: u64,
    pub memory_migrate: u64,
    pub memory_spread_page: u64,
    pub memory_spread_slab: u64,
    pub memory_pressure: u64,
    pub sched_load_balance: u64,
    pub sched_relax_domain_level: i64,
}

/// Bytes (failcnt: a count). `limit` is `u64::MAX` for v2's "max"; v1 shows its own huge value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MemoryData {
    pub usage: u64,
    pub max_usage: u64,
    pub failcnt: u64,
    pub limit: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MemoryStats {
    /// Page cache: `cache` of v1's memory.stat, `file` of v2's.
    pub cache: u64,
    pub usage: MemoryData,
    /// Memory + swap, as v1 counts it (on v2 the sum of memory and swap, max_usage 0).
    pub swap_usage: MemoryData,
    /// Swap alone: v2 `memory.swap.*`; on v1 only `usage` (memsw minus memory).
    pub swap_only_usage: MemoryData,
    /// v1 only.
    pub kernel_usage: MemoryData,
    /// v1 only.
    pub kernel_tcp_usage: MemoryData,
    pub use_hierarchy: bool,
    /// Every key of memory.stat, as the kernel names it.
    pub stats: BTreeMap<String, u64>,
    /// v2 `memory.pressure`.
    pub psi: Option<Psi>,
    /// v2 `memory.events`.
    pub events: Option<MemoryEvents>,
    /// v1 `memory.oom_control`.
    pub oom_control: Option<OomControl>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MemoryEvents {
    pub low: u64,
    pub high: u64,
    pub max: u64,
    pub oom: u64,
    pub oom_kill: u64,
    pub oom_group_kill: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OomControl {
    pub oom_kill_disable: u64,
    pub under_oom: u64,
    pub oom_kill: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PidsStats {
    pub current: u64,
    /// 0 when unlimited ("max"), as runc reports it.
    pub limit: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    /// "Read", "Write", "Sync", "Async", "Discard", "Total", or "" for one-value files.
    pub op: String,
    pub value: u64,
}

/// v1 blkio files, or v2 io.stat mapped onto them as runc's fs2 does: rbytes/wbytes into
/// `io_service_bytes_recursive`, rios/wios into `io_serviced_recursive` (ops "Read"/"Write").
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BlkioStats {
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    pub io_serviced_recursive: Vec<BlkioEntry>,
    pub io_queued_recursive: Vec<BlkioEntry>,
    pub io_service_time_recursive: Vec<BlkioEntry>,
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    pub io_merged_recursive: Vec<BlkioEntry>,
    pub io_time_recursive: Vec<BlkioEntry>,
    pub sectors_recursive: Vec<BlkioEntry>,
    /// v2 `io.pressure`.
    pub psi: Option<Psi>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HugetlbStats {
    pub usage: u64,
    /// v1 only (max_usage_in_bytes).
    pub max_usage: u64,
    /// Allocations that failed at the limit (v1 failcnt, v2 `max` in hugetlb.<size>.events).
    pub failcnt: u64,
    /// Not in runc's stats; containerd's v2 metrics report it (v1 limit_in_bytes, v2 max).
    pub limit: u64,
}

/// Statistics of a v1 cgroup: `dirs` maps each mounted controller to the cgroup's directory.
pub(super) fn v1(dirs: &BTreeMap<String, PathBuf>) -> Result<Stats, CgroupError> {
    present(dirs.values())?;
    let mut s = Stats::default();
    if let Some(d) = dirs.get("cpu") {
        cpu_stat(d, &mut s.cpu, 1)?;
    }
    if let Some(d) = dirs.get("cpuacct") {
        v1_cpuacct(d, &mut s.cpu.usage)?;
    }
    if let Some(d) = dirs.get("cpuset") {
        v1_cpuset(d, &mut s.cpuset)?;
    }
    if let Some(d) = dirs.get("memory") {
        v1_memory(d, &mut s.memory)?;
    }
    if let Some(d) = dirs.get("pids") {
        pids(d, &mut s.pids)?;
    }
    if let Some(d) = dirs.get("blkio") {
        v1_blkio(d, &mut s.blkio)?;
    }
    if let Some(d) = dirs.get("hugetlb") {
        hugetlb(d, &mut s.hugetlb, Hugetlb::V1)?;
    }
    // A directory removed while we read shows as files that "do not exist": not zeros.
    present(dirs.values())?;
    Ok(s)
}

/// Statistics of a v2 cgroup (runc's fs2 `GetStats`).
pub(super) fn v2(dir: &Path) -> Result<Stats, CgroupError> {
    present([dir])?;
    let mut s = Stats::default();
    pids(dir, &mut s.pids)?;
    v2_memory(dir, &mut s.memory)?;
    v2_io(dir, &mut s.blkio)?;
    // cpu.stat exists even where the cpu controller is not enabled
    cpu_stat(dir, &mut s.cpu, 1000)?;
    s.cpu.psi = psi(dir, "cpu.pressure")?;
    hugetlb(dir, &mut s.hugetlb, Hugetlb::V2)?;
    present([dir])?;
    Ok(s)
}

fn present<P: AsRef<Path>>(dirs: impl IntoIterator<Item = P>) -> Result<(), CgroupError> {
    for dir in dirs {
        let dir = dir.as_ref();
        if let Err(e) = std::fs::metadata(dir) {
            return Err(io_err("read", dir, e));
        }
    }
    Ok(())
}

/// `dir/file`, or None when it does not exist (a knob this kernel or controller lacks).
fn read_opt(dir: &Path, file: &str) -> Result<Option<String>, CgroupError> {
    let path = dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", &path, e)),
    }
}

fn parse_err(path: &Path, value: &str, reason: &str) -> CgroupError {
    CgroupError::Parse {
        path: path.to_path_buf(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// runc's `ParseUint` + `GetCgroupParamUint`: "max" is `u64::MAX`, a negative number 0.
fn parse_u64(path: &Path, s: &str) -> Result<u64, CgroupError> {
    let s = s.trim();
    if s == "max" {
        return Ok(u64::MAX);
    }
    if let Ok(v) = s.parse::<u64>() {
        return Ok(v);
    }
    match s.strip_prefix('-') {
        Some(rest) if !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit()) => Ok(0),
        _ => Err(parse_err(path, s, "expected an unsigned number or \"max\"")),
    }
}

fn read_u64(dir: &Path, file: &str) -> Result<Option<u64>, CgroupError> {
    match read_opt(dir, file)? {
        Some(s) => parse_u64(&dir.join(file), &s).map(Some),
        None => Ok(None),
    }
}

/// "key value" lines (memory.stat, cpu.stat, memory.events, ...).
fn parse_flat(path: &Path, text: &str) -> Result<BTreeMap<String, u64>, CgroupError> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut it = line.split_whitespace();
        match (it.next(), it.next(), it.next()) {
            (Some(k), Some(v), None) => {
                out.insert(k.to_string(), parse_u64(path, v)?);
            }
            _ => return Err(parse_err(path, line, "expected \"key value\"")),
        }
    }
    Ok(out)
}

fn read_flat(dir: &Path, file: &str) -> Result<Option<BTreeMap<String, u64>>, CgroupError> {
    match read_opt(dir, file)? {
        Some(s) => parse_flat(&dir.join(file), &s).map(Some),
        None => Ok(None),
    }
}

/// A `*.pressure` file; None without PSI (no file, or EOPNOTSUPP with psi=0 on the command line).
fn psi(dir: &Path, file: &str) -> Result<Option<Psi>, CgroupError> {
    let path = dir.join(file);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => return Ok(None),
        Err(e) => return Err(io_err("read", &path, e)),
    };
    parse_psi(&path, &text).map(Some)
}

/// "some avg10=0.00 avg60=0.00 avg300=0.00 total=0" and the same for "full".
fn parse_psi(path: &Path, text: &str) -> Result<Psi, CgroupError> {
    let mut psi = Psi::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut it = line.split_whitespace();
        let data = match it.next() {
            Some("some") => &mut psi.some,
            Some("full") => &mut psi.full,
            _ => {
                return Err(parse_err(
                    path,
                    line,
                    "expected a \"some\" or \"full\" line",
                ))
            }
        };
        for kv in it {
            let bad = || parse_err(path, kv, "expected key=number");
            let (k, v) = kv.split_once('=').ok_or_else(bad)?;
            match k {
                "avg10" => data.avg10 = v.parse().map_err(|_| bad())?,
                "avg60" => data.avg60 = v.parse().map_err(|_| bad())?,
                "avg300" => data.avg300 = v.parse().map_err(|_| bad())?,
                "total" => data.total = v.parse().map_err(|_| bad())?,
                _ => {} // newer kernels may add keys
            }
        }
    }
    Ok(psi)
}

/// cpu.stat: throttling on v1 (nanoseconds) and v2 (`*_usec`, times `scale` = 1000), plus the
/// usage on v2.
fn cpu_stat(dir: &Path, cpu: &mut CpuStats, scale: u64) -> Result<(), CgroupError> {
    let Some(map) = read_flat(dir, "cpu.stat")? else {
        return Ok(());
    };
    for (k, &v) in &map {
        match k.as_str() {
            "usage_usec" => cpu.usage.total = v.saturating_mul(scale),
            "user_usec" => cpu.usage.user = v.saturating_mul(scale),
            "system_usec" => cpu.usage.kernel = v.saturating_mul(scale),
            "nr_periods" => cpu.throttling.periods = v,
            "nr_throttled" => cpu.throttling.throttled_periods = v,
            "throttled_time" | "throttled_usec" => {
                cpu.throttling.throttled_time = v.saturating_mul(scale)
            }
            "nr_bursts" => cpu.burst.periods = v,
            "burst_time" | "burst_usec" => cpu.burst.time = v.saturating_mul(scale),
            _ => {}
        }
    }
    Ok(())
}

/// USER_HZ, the unit of cpuacct.stat.
fn clock_ticks() -> u64 {
    use nix::unistd::{sysconf, SysconfVar};
    match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as u64,
        _ => 100,
    }
}

fn v1_cpuacct(dir: &Path, usage: &mut CpuUsage) -> Result<(), CgroupError> {
    if let Some(map) = read_flat(dir, "cpuacct.stat")? {
        let ns = |ticks: u64| (ticks as u128 * 1_000_000_000 / clock_ticks() as u128) as u64;
        usage.user = ns(map.get("user").copied().unwrap_or(0));
        usage.kernel = ns(map.get("system").copied().unwrap_or(0));
    }
    usage.total = read_u64(dir, "cpuacct.usage")?.unwrap_or(0);
    if let Some(text) = read_opt(dir, "cpuacct.usage_percpu")? {
        let path = dir.join("cpuacct.usage_percpu");
        usage.percpu = text
            .split_whitespace()
            .map(|v| parse_u64(&path, v))
            .collect::<Result<_, _>>()?;
    }
    // "cpu user system" then one line per cpu, in nanoseconds
    if let Some(text) = read_opt(dir, "cpuacct.usage_all")? {
        let path = dir.join("cpuacct.usage_all");
        for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() != 3 {
                return Err(parse_err(&path, line, "expected \"cpu user system\""));
            }
            usage.percpu_user.push(parse_u64(&path, f[1])?);
            usage.percpu_kernel.push(parse_u64(&path, f[2])?);
        }
    }
    Ok(())
}

/// "0-3,5" as [0, 1, 2, 3, 5].
fn parse_list(path: &Path, text: &str) -> Result<Vec<u16>, CgroupError> {
    let mut out = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let bad = || parse_err(path, part, "expected a list like 0-3,5");
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let lo: u16 = lo.parse().map_err(|_| bad())?;
        let hi: u16 = hi.parse().map_err(|_| bad())?;
        if lo > hi {
            return Err(bad());
        }
        out.extend(lo..=hi);
    }
    Ok(out)
}

fn v1_cpuset(dir: &Path, c: &mut CpusetStats) -> Result<(), CgroupError> {
    if let Some(t) = read_opt(dir, "cpuset.cpus")? {
        c.cpus = parse_list(&dir.join("cpuset.cpus"), &t)?;
    }
    if let Some(t) = read_opt(dir, "cpuset.mems")? {
        c.mems = parse_list(&dir.join("cpuset.mems"), &t)?;
    }
    let flags: [(&str, &mut u64); 8] = [
        ("cpuset.cpu_exclusive", &mut c.cpu_exclusive),
        ("cpuset.mem_hardwall", &mut c.mem_hardwall),
        ("cpuset.mem_exclusive", &mut c.mem_exclusive),
        ("cpuset.memory_migrate", &mut c.memory_migrate),
        ("cpuset.memory_spread_page", &mut c.memory_spread_page),
        ("cpuset.memory_spread_slab", &mut c.memory_spread_slab),
        ("cpuset.memory_pressure", &mut c.memory_pressure),
        ("cpuset.sched_load_balance", &mut c.sched_load_balance),
    ];
    for (file, slot) in flags {
        *slot = read_u64(dir, file)?.unwrap_or(0);
    }
    // the one signed value: -1 means the system default
    if let Some(t) = read_opt(dir, "cpuset.sched_relax_domain_level")? {
        let path = dir.join("cpuset.sched_relax_domain_level");
        c.sched_relax_domain_level = t
            .trim()
            .parse()
            .map_err(|_| parse_err(&path, t.trim(), "expected an integer"))?;
    }
    Ok(())
}

/// `<prefix>.usage_in_bytes` and friends; None when the counter does not exist (no swap
/// accounting, no kmem).
fn v1_memory_data(dir: &Path, prefix: &str) -> Result<Option<MemoryData>, CgroupError> {
    let Some(usage) = read_u64(dir, &format!("{prefix}.usage_in_bytes"))? else {
        return Ok(None);
    };
    let get = |f: &str| read_u64(dir, &format!("{prefix}.{f}")).map(Option::unwrap_or_default);
    Ok(Some(MemoryData {
        usage,
        max_usage: get("max_usage_in_bytes")?,
        failcnt: get("failcnt")?,
        limit: get("limit_in_bytes")?,
    }))
}

fn v1_memory(dir: &Path, m: &mut MemoryStats) -> Result<(), CgroupError> {
    let Some(stats) = read_flat(dir, "memory.stat")? else {
        return Ok(());
    };
    m.cache = stats.get("cache").copied().unwrap_or(0);
    m.stats = stats;
    m.usage = v1_memory_data(dir, "memory")?.ok_or_else(|| {
        let path = dir.join("memory.usage_in_bytes");
        io_err("read", &path, ErrorKind::NotFound.into())
    })?;
    if let Some(memsw) = v1_memory_data(dir, "memory.memsw")? {
        m.swap_usage = memsw;
        m.swap_only_usage.usage = memsw.usage.saturating_sub(m.usage.usage);
    }
    m.kernel_usage = v1_memory_data(dir, "memory.kmem")?.unwrap_or_default();
    m.kernel_tcp_usage = v1_memory_data(dir, "memory.kmem.tcp")?.unwrap_or_default();
    m.use_hierarchy = read_u64(dir, "memory.use_hierarchy")? == Some(1);
    m.oom_control = read_flat(dir, "memory.oom_control")?.map(|o| OomControl {
        oom_kill_disable: o.get("oom_kill_disable").copied().unwrap_or(0),
        under_oom: o.get("under_oom").copied().unwrap_or(0),
        oom_kill: o.get("oom_kill").copied().unwrap_or(0),
    });
    Ok(())
}

/// memory.{current,max,peak} or memory.swap.*; None when `<prefix>.current` does not exist.
fn v2_memory_data(dir: &Path, prefix: &str) -> Result<Option<MemoryData>, CgroupError> {
    let Some(usage) = read_u64(dir, &format!("{prefix}.current"))? else {
        return Ok(None);
    };
    let get = |f: &str| read_u64(dir, &format!("{prefix}.{f}"));
    Ok(Some(MemoryData {
        usage,
        // memory.peak: Linux >= 5.19
        max_usage: get("peak")?.unwrap_or(0),
        failcnt: 0,
        limit: get("max")?.unwrap_or(u64::MAX),
    }))
}

fn v2_memory(dir: &Path, m: &mut MemoryStats) -> Result<(), CgroupError> {
    m.use_hierarchy = true; // v2 is always hierarchical
    m.psi = psi(dir, "memory.pressure")?;
    m.events = read_flat(dir, "memory.events")?.map(|e| {
        let g = |k: &str| e.get(k).copied().unwrap_or(0);
        MemoryEvents {
            low: g("low"),
            high: g("high"),
            max: g("max"),
            oom: g("oom"),
            oom_kill: g("oom_kill"),
            oom_group_kill: g("oom_group_kill"),
        }
    });
    // the memory controller is not enabled for this cgroup
    let Some(stats) = read_flat(dir, "memory.stat")? else {
        return Ok(());
    };
    m.cache = stats.get("file").copied().unwrap_or(0);
    m.stats = stats;
    m.usage = v2_memory_data(dir, "memory")?.unwrap_or_default();
    let swap = v2_memory_data(dir, "memory.swap")?.unwrap_or_default();
    m.swap_only_usage = swap;
    // v1 compatibility (runc): memory + swap, no max_usage
    m.swap_usage = MemoryData {
        usage: swap.usage.saturating_add(m.usage.usage),
        max_usage: 0,
        failcnt: swap.failcnt,
        limit: match swap.limit {
            u64::MAX => u64::MAX,
            l => l.saturating_add(m.usage.limit),
        },
    };
    Ok(())
}

/// pids.current and pids.max; on v2 without the pids controller, the processes are counted.
fn pids(dir: &Path, p: &mut PidsStats) -> Result<(), CgroupError> {
    let Some(current) = read_u64(dir, "pids.current")? else {
        if dir.join("cgroup.controllers").exists() {
            p.current = fs::procs_recursive(dir)?.len() as u64;
        }
        return Ok(());
    };
    p.current = current;
    p.limit = match read_u64(dir, "pids.max")? {
        Some(u64::MAX) | None => 0,
        Some(l) => l,
    };
    Ok(())
}

#[derive(Clone, Copy)]
enum Blk {
    ServiceBytes,
    Serviced,
    Queued,
    ServiceTime,
    WaitTime,
    Merged,
    Time,
    Sectors,
}

impl Blk {
    fn slot(self, b: &mut BlkioStats) -> &mut Vec<BlkioEntry> {
        match self {
            Blk::ServiceBytes => &mut b.io_service_bytes_recursive,
            Blk::Serviced => &mut b.io_serviced_recursive,
            Blk::Queued => &mut b.io_queued_recursive,
            Blk::ServiceTime => &mut b.io_service_time_recursive,
            Blk::WaitTime => &mut b.io_wait_time_recursive,
            Blk::Merged => &mut b.io_merged_recursive,
            Blk::Time => &mut b.io_time_recursive,
            Blk::Sectors => &mut b.sectors_recursive,
        }
    }
}

/// runc's order of v1 blkio sources: BFQ debug, BFQ, CFQ, throttle (recursive), throttle. A
/// group whose first file is missing or empty gives way to the next; the first complete group
/// wins.
const V1_BLKIO: &[&[(&str, Blk)]] = &[
    &[
        ("blkio.bfq.sectors_recursive", Blk::Sectors),
        ("blkio.bfq.io_service_time_recursive", Blk::ServiceTime),
        ("blkio.bfq.io_wait_time_recursive", Blk::WaitTime),
        ("blkio.bfq.io_merged_recursive", Blk::Merged),
        ("blkio.bfq.io_queued_recursive", Blk::Queued),
        ("blkio.bfq.time_recursive", Blk::Time),
        ("blkio.bfq.io_serviced_recursive", Blk::Serviced),
        ("blkio.bfq.io_service_bytes_recursive", Blk::ServiceBytes),
    ],
    &[
        ("blkio.bfq.io_serviced_recursive", Blk::Serviced),
        ("blkio.bfq.io_service_bytes_recursive", Blk::ServiceBytes),
    ],
    &[
        ("blkio.sectors_recursive", Blk::Sectors),
        ("blkio.io_service_time_recursive", Blk::ServiceTime),
        ("blkio.io_wait_time_recursive", Blk::WaitTime),
        ("blkio.io_merged_recursive", Blk::Merged),
        ("blkio.io_queued_recursive", Blk::Queued),
        ("blkio.time_recursive", Blk::Time),
        ("blkio.io_serviced_recursive", Blk::Serviced),
        ("blkio.io_service_bytes_recursive", Blk::ServiceBytes),
    ],
    &[
        ("blkio.throttle.io_serviced_recursive", Blk::Serviced),
        (
            "blkio.throttle.io_service_bytes_recursive",
            Blk::ServiceBytes,
        ),
    ],
    &[
        ("blkio.throttle.io_serviced", Blk::Serviced),
        ("blkio.throttle.io_service_bytes", Blk::ServiceBytes),
    ],
];

fn v1_blkio(dir: &Path, b: &mut BlkioStats) -> Result<(), CgroupError> {
    for group in V1_BLKIO {
        for (i, (file, slot)) in group.iter().enumerate() {
            let entries = match read_opt(dir, file)? {
                Some(text) => parse_blkio(&dir.join(file), &text)?,
                None => Vec::new(),
            };
            if entries.is_empty() && i == 0 {
                break; // this source has nothing: try the next
            }
            *slot.slot(b) = entries;
            if i == group.len() - 1 {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// "8:0 Read 4096" or "8:0 4096" lines; "Total N" is skipped.
fn parse_blkio(path: &Path, text: &str) -> Result<Vec<BlkioEntry>, CgroupError> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split([' ', ':']).filter(|s| !s.is_empty()).collect();
        let bad = || parse_err(path, line, "expected \"major:minor [op] value\"");
        let (op, value) = match f.len() {
            2 if f[0] == "Total" => continue,
            3 => ("", f[2]),
            4 => (f[2], f[3]),
            _ => return Err(bad()),
        };
        out.push(BlkioEntry {
            major: f[0].parse().map_err(|_| bad())?,
            minor: f[1].parse().map_err(|_| bad())?,
            op: op.to_string(),
            value: value.parse().map_err(|_| bad())?,
        });
    }
    Ok(out)
}

fn v2_io(dir: &Path, b: &mut BlkioStats) -> Result<(), CgroupError> {
    b.psi = psi(dir, "io.pressure")?;
    let Some(text) = read_opt(dir, "io.stat")? else {
        return Ok(());
    };
    let path = dir.join("io.stat");
    // "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0"
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut it = line.split_whitespace();
        let bad = || parse_err(&path, line, "expected \"major:minor key=value...\"");
        let (major, minor) = it.next().and_then(|d| d.split_once(':')).ok_or_else(bad)?;
        let (major, minor): (u64, u64) = (
            major.parse().map_err(|_| bad())?,
            minor.parse().map_err(|_| bad())?,
        );
        for kv in it {
            let (k, v) = kv.split_once('=').ok_or_else(bad)?;
            let (slot, op) = match k {
                "rbytes" => (&mut b.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut b.io_service_bytes_recursive, "Write"),
                "rios" => (&mut b.io_serviced_recursive, "Read"),
                "wios" => (&mut b.io_serviced_recursive, "Write"),
                _ => continue, // no v1 equivalent (runc skips them too)
            };
            slot.push(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value: v.parse().map_err(|_| bad())?,
            });
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Hugetlb {
    V1,
    V2,
}

/// Page sizes with a `hugetlb.<size>.*` file in `dir`.
fn hugetlb_sizes(dir: &Path) -> Result<BTreeSet<String>, CgroupError> {
    let entries = std::fs::read_dir(dir).map_err(|e| io_err("read_dir", dir, e))?;
    let mut sizes = BTreeSet::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(size) = name
            .strip_prefix("hugetlb.")
            .and_then(|r| r.split_once('.'))
            .map(|(size, _)| size)
        {
            sizes.insert(size.to_string());
        }
    }
    Ok(sizes)
}

fn hugetlb(
    dir: &Path,
    out: &mut BTreeMap<String, HugetlbStats>,
    version: Hugetlb,
) -> Result<(), CgroupError> {
    let (usage, limit) = match version {
        Hugetlb::V1 => ("usage_in_bytes", "limit_in_bytes"),
        Hugetlb::V2 => ("current", "max"),
    };
    for size in hugetlb_sizes(dir)? {
        // runc counts reservations (".rsvd", Linux >= 5.7) where the kernel has them
        let rsvd = format!("hugetlb.{size}.rsvd");
        let plain = format!("hugetlb.{size}");
        let prefix = if dir.join(format!("{rsvd}.{usage}")).exists() {
            rsvd
        } else {
            plain.clone()
        };
        let Some(used) = read_u64(dir, &format!("{prefix}.{usage}"))? else {
            continue;
        };
        let mut h = HugetlbStats {
            usage: used,
            limit: read_u64(dir, &format!("{plain}.{limit}"))?.unwrap_or(u64::MAX),
            ..Default::default()
        };
        match version {
            Hugetlb::V1 => {
                h.max_usage = read_u64(dir, &format!("{prefix}.max_usage_in_bytes"))?.unwrap_or(0);
                h.failcnt = read_u64(dir, &format!("{prefix}.failcnt"))?.unwrap_or(0);
            }
            Hugetlb::V2 => {
                let events = read_flat(dir, &format!("{plain}.events"))?;
                h.failcnt = events.and_then(|e| e.get("max").copied()).unwrap_or(0);
            }
        }
        out.insert(size, h);
    }
    Ok(())
}

#[cfg(test)]
#[path = "stats_tests.rs"]
mod tests;
