//! `update`: new resource limits for a container, from runc's flags or, with `-r`, from a JSON
//! LinuxResources (file or `-` for stdin; the other flags are then ignored, as in runc).

use std::io::Read;
use std::path::PathBuf;

use clap::Args;
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

use super::{io_err, CliError, Global, Result};

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// path to the file containing the resources to update or '-' to read from the standard
    /// input (JSON LinuxResources; unchanged values can be omitted); other options are then
    /// ignored
    #[arg(short = 'r', long, value_name = "FILE")]
    pub resources: Option<PathBuf>,
    /// Specifies per cgroup weight, range is from 10 to 1000
    #[arg(long = "blkio-weight", value_name = "N")]
    pub blkio_weight: Option<u16>,
    /// CPU CFS period to be used for hardcapping (in usecs). 0 to use system default
    #[arg(long = "cpu-period", value_name = "N")]
    pub cpu_period: Option<u64>,
    /// CPU CFS hardcap limit (in usecs). Allowed cpu time in a given period
    #[arg(long = "cpu-quota", value_name = "N", allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    /// CPU CFS hardcap burst limit (in usecs). Allowed accumulated cpu time additionally for
    /// burst a given period
    #[arg(long = "cpu-burst", value_name = "N")]
    pub cpu_burst: Option<u64>,
    /// CPU shares (relative weight vs. other containers)
    #[arg(long = "cpu-share", value_name = "N")]
    pub cpu_share: Option<u64>,
    /// CPU realtime period to be used for hardcapping (in usecs). 0 to use system default
    #[arg(long = "cpu-rt-period", value_name = "N")]
    pub cpu_rt_period: Option<u64>,
    /// CPU realtime hardcap limit (in usecs). Allowed cpu time in a given period
    #[arg(
        long = "cpu-rt-runtime",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub cpu_rt_runtime: Option<i64>,
    /// CPU(s) to use
    #[arg(long = "cpuset-cpus", value_name = "LIST")]
    pub cpuset_cpus: Option<String>,
    /// Memory node(s) to use
    #[arg(long = "cpuset-mems", value_name = "LIST")]
    pub cpuset_mems: Option<String>,
    /// set cgroup SCHED_IDLE or not, 0: default behavior, 1: SCHED_IDLE
    #[arg(long = "cpu-idle", value_name = "N")]
    pub cpu_idle: Option<i64>,
    /// Memory limit (in bytes; units like 100m or 1g are accepted)
    #[arg(long, value_name = "SIZE", value_parser = parse_memory, allow_negative_numbers = true)]
    pub memory: Option<i64>,
    /// Memory reservation or soft_limit (in bytes)
    #[arg(long = "memory-reservation", value_name = "SIZE", value_parser = parse_memory,
          allow_negative_numbers = true)]
    pub memory_reservation: Option<i64>,
    /// Total memory usage (memory + swap); set '-1' to enable unlimited swap
    #[arg(long = "memory-swap", value_name = "SIZE", value_parser = parse_memory,
          allow_negative_numbers = true)]
    pub memory_swap: Option<i64>,
    /// Maximum number of pids allowed in the container (-1: no limit)
    #[arg(long = "pids-limit", value_name = "N", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// (obsoleted; do not use)
    #[arg(long = "kernel-memory", value_name = "SIZE", hide = true)]
    pub kernel_memory: Option<String>,
    /// (obsoleted; do not use)
    #[arg(long = "kernel-memory-tcp", value_name = "SIZE", hide = true)]
    pub kernel_memory_tcp: Option<String>,
    /// The string of Intel RDT/CAT L3 cache schema
    #[arg(long = "l3-cache-schema", value_name = "SCHEMA")]
    pub l3_cache_schema: Option<String>,
    /// The string of Intel RDT/MBA memory bandwidth schema
    #[arg(long = "mem-bw-schema", value_name = "SCHEMA")]
    pub mem_bw_schema: Option<String>,
    /// the container id
    #[arg(value_name = "container-id")]
    pub id: String,
}

pub fn update(g: &Global, a: UpdateArgs) -> Result<i32> {
    let resources = match &a.resources {
        Some(path) => read_resources(path)?,
        None => from_flags(&a)?,
    };
    let rdt = a.l3_cache_schema.is_some() || a.mem_bw_schema.is_some();
    let mut container = g.factory()?.load(&a.id)?;
    // Only the Intel RDT flags: the cgroup is left alone.
    if !rdt || a.resources.is_some() || resources != LinuxResources::default() {
        container.update(&resources)?;
    }
    if rdt {
        container.update_intel_rdt(a.l3_cache_schema.as_deref(), a.mem_bw_schema.as_deref())?;
    }
    Ok(0)
}

fn read_resources(path: &PathBuf) -> Result<LinuxResources> {
    let mut data = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut data)
            .map_err(io_err("<stdin>"))?;
    } else {
        data = std::fs::read(path).map_err(io_err(path))?;
    }
    serde_json::from_slice(&data).map_err(|e| {
        CliError::Usage(format!(
            "--resources {}: not a JSON LinuxResources: {e}",
            path.display()
        ))
    })
}

/// The resources the flags give; an absent flag leaves the field out (unchanged).
fn from_flags(a: &UpdateArgs) -> Result<LinuxResources> {
    for (flag, v) in [
        ("kernel-memory", &a.kernel_memory),
        ("kernel-memory-tcp", &a.kernel_memory_tcp),
    ] {
        if v.is_some() {
            log::warn!("Setting --{flag} is ignored and will be removed");
        }
    }
    let mut r = LinuxResources::default();
    let mut mem = LinuxMemory::default();
    mem.set_limit(a.memory);
    mem.set_reservation(a.memory_reservation);
    mem.set_swap(a.memory_swap);
    if mem != LinuxMemory::default() {
        r.set_memory(Some(mem));
    }
    let mut cpu = LinuxCpu::default();
    cpu.set_shares(a.cpu_share);
    cpu.set_quota(a.cpu_quota);
    cpu.set_period(a.cpu_period);
    cpu.set_burst(a.cpu_burst);
    cpu.set_idle(a.cpu_idle);
    cpu.set_realtime_period(a.cpu_rt_period);
    cpu.set_realtime_runtime(a.cpu_rt_runtime);
    cpu.set_cpus(a.cpuset_cpus.clone());
    cpu.set_mems(a.cpuset_mems.clone());
    if cpu != LinuxCpu::default() {
        r.set_cpu(Some(cpu));
    }
    if let Some(w) = a.blkio_weight {
        let mut b = LinuxBlockIo::default();
        b.set_weight(Some(w));
        r.set_block_io(Some(b));
    }
    if let Some(limit) = a.pids_limit {
        let mut p = LinuxPids::default();
        p.set_limit(limit);
        r.set_pids(Some(p));
    }
    Ok(r)
}

/// docker/go-units' RAMInBytes, which runc uses: a number (may have a fraction) with an optional
/// binary unit k, m, g, t or p (any case, optionally followed by "i" and/or "b"); "-1" means no
/// limit.
pub fn parse_memory(raw: &str) -> std::result::Result<i64, String> {
    if raw == "-1" {
        return Ok(-1);
    }
    let invalid = || format!("invalid size: '{raw}'");
    let num_end = raw
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(raw.len());
    let (num, rest) = raw.split_at(num_end);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
        return Err(invalid());
    }
    let value: f64 = num.parse().map_err(|_| invalid())?;
    let rest = rest.strip_prefix(' ').unwrap_or(rest).to_ascii_lowercase();
    let mut chars = rest.chars();
    let shift = match chars.next() {
        None => 0,
        Some('b') if rest.len() == 1 => 0,
        Some('k') => 10,
        Some('m') => 20,
        Some('g') => 30,
        Some('t') => 40,
        Some('p') => 50,
        Some(_) => return Err(invalid()),
    };
    let suffix: String = chars.collect();
    if shift != 0 && !matches!(suffix.as_str(), "" | "i" | "b" | "ib") {
        return Err(invalid());
    }
    let bytes = value * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes >= i64::MAX as f64 {
        return Err(invalid());
    }
    Ok(bytes as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        a: UpdateArgs,
    }

    fn flags(args: &[&str]) -> LinuxResources {
        let mut argv = vec!["update"];
        argv.extend_from_slice(args);
        argv.push("c1");
        from_flags(&T::try_parse_from(argv).unwrap().a).unwrap()
    }

    #[test]
    fn memory_units_like_go_units() {
        assert_eq!(parse_memory("100").unwrap(), 100);
        assert_eq!(parse_memory("100m").unwrap(), 100 << 20);
        assert_eq!(parse_memory("100M").unwrap(), 100 << 20);
        assert_eq!(parse_memory("1g").unwrap(), 1 << 30);
        assert_eq!(parse_memory("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_memory("1gb").unwrap(), 1 << 30);
        assert_eq!(parse_memory("2 k").unwrap(), 2048);
        assert_eq!(parse_memory("1.5k").unwrap(), 1536);
        assert_eq!(parse_memory("10b").unwrap(), 10);
        assert_eq!(parse_memory("-1").unwrap(), -1);
        for bad in [
            "",
            "m",
            "-2",
            "1x",
            "1mm",
            "1.",
            ".5",
            "1.2.3",
            "99999999999p",
        ] {
            let e = parse_memory(bad).unwrap_err();
            assert_eq!(e, format!("invalid size: '{bad}'"), "{bad}");
        }
    }

    #[test]
    fn flags_become_resources_and_absent_flags_stay_out() {
        let r = flags(&[
            "--memory",
            "100m",
            "--pids-limit",
            "-1",
            "--cpu-quota",
            "-1",
        ]);
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"memory":{"limit":104857600},"cpu":{"quota":-1},"pids":{"limit":-1}})
        );
        let r = flags(&[
            "--memory-swap",
            "-1",
            "--memory-reservation",
            "1k",
            "--cpu-share",
            "512",
            "--cpu-period",
            "100000",
            "--cpuset-cpus",
            "0",
            "--cpuset-mems",
            "0",
            "--cpu-rt-period",
            "1000",
            "--cpu-rt-runtime",
            "500",
            "--blkio-weight",
            "300",
        ]);
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"memory":{"swap":-1,"reservation":1024},
                "cpu":{"shares":512,"period":100000,"realtimePeriod":1000,
                    "realtimeRuntime":500,"cpus":"0","mems":"0"},
                "blockIO":{"weight":300}})
        );
        assert_eq!(
            serde_json::to_value(flags(&[])).unwrap(),
            serde_json::json!({})
        );
        let e = T::try_parse_from(["update", "--memory", "1x", "c1"]).unwrap_err();
        assert!(e.to_string().contains("invalid size: '1x'"), "{e}");
    }
}
