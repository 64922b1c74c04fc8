//! The engine's cgroup statistics as containerd's metrics: `io.containerd.cgroups.v1.Metrics` on
//! cgroup v1 and `io.containerd.cgroups.v2.Metrics` on v2, filled the way containerd's cgroups
//! library fills them from the same files (containerd's runc shim answers Stats with those).
//!
//! The Any's type URL is the message's full protobuf name without a prefix: what Go's
//! `typeurl.MarshalAny` writes for these unregistered gogo types, and what `ctr t metrics`
//! matches with `typeurl.Is`.

use std::collections::BTreeMap;

use containerd_shim::protos::cgroups::metrics as v1;
use containerd_shim::protos::cgroups_v2::metrics as v2;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{MessageField, MessageFull};
use myrt_runtime::cgroups::stats::{BlkioEntry, MemoryData, Psi, Stats};
use myrt_runtime::cgroups::Hierarchy;

#[derive(Debug, thiserror::Error)]
#[error("encode {type_url}: {source}")]
pub struct MetricsError {
    type_url: String,
    source: containerd_shim::protos::protobuf::Error,
}

/// The metrics for `hierarchy`, packed as containerd's shims pack them.
pub fn to_any(hierarchy: Hierarchy, stats: &Stats) -> Result<Any, MetricsError> {
    match hierarchy {
        Hierarchy::V1 => pack(&v1_metrics(stats)),
        Hierarchy::V2 => pack(&v2_metrics(stats)),
    }
}

fn pack<M: MessageFull>(m: &M) -> Result<Any, MetricsError> {
    let type_url = M::descriptor().full_name().to_string();
    let value = m.write_to_bytes().map_err(|source| MetricsError {
        type_url: type_url.clone(),
        source,
    })?;
    Ok(Any {
        type_url,
        value,
        ..Default::default()
    })
}

/// `/dev/<name>` of a block device from sysfs, as containerd names blkio entries ("" if none).
fn device_name(major: u64, minor: u64, cache: &mut BTreeMap<(u64, u64), String>) -> String {
    cache
        .entry((major, minor))
        .or_insert_with(|| {
            let uevent = std::fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/uevent"));
            uevent
                .ok()
                .and_then(|u| {
                    u.lines()
                        .find_map(|l| l.strip_prefix("DEVNAME="))
                        .map(|n| format!("/dev/{n}"))
                })
                .unwrap_or_default()
        })
        .clone()
}

fn memory_entry(m: &MemoryData) -> MessageField<v1::MemoryEntry> {
    MessageField::some(v1::MemoryEntry {
        limit: m.limit,
        usage: m.usage,
        max: m.max_usage,
        failcnt: m.failcnt,
        ..Default::default()
    })
}

/// containerd's cgroup1 `Stat`: memory.stat keys by name, memsw as `swap`.
fn v1_metrics(s: &Stats) -> v1::Metrics {
    let raw = |k: &str| s.memory.stats.get(k).copied().unwrap_or(0);
    let m = &s.memory;
    let memory = v1::MemoryStat {
        cache: raw("cache"),
        rss: raw("rss"),
        rss_huge: raw("rss_huge"),
        mapped_file: raw("mapped_file"),
        dirty: raw("dirty"),
        writeback: raw("writeback"),
        pg_pg_in: raw("pgpgin"),
        pg_pg_out: raw("pgpgout"),
        pg_fault: raw("pgfault"),
        pg_maj_fault: raw("pgmajfault"),
        inactive_anon: raw("inactive_anon"),
        active_anon: raw("active_anon"),
        inactive_file: raw("inactive_file"),
        active_file: raw("active_file"),
        unevictable: raw("unevictable"),
        hierarchical_memory_limit: raw("hierarchical_memory_limit"),
        hierarchical_swap_limit: raw("hierarchical_memsw_limit"),
        total_cache: raw("total_cache"),
        total_rss: raw("total_rss"),
        total_rss_huge: raw("total_rss_huge"),
        total_mapped_file: raw("total_mapped_file"),
        total_dirty: raw("total_dirty"),
        total_writeback: raw("total_writeback"),
        total_pg_pg_in: raw("total_pgpgin"),
        total_pg_pg_out: raw("total_pgpgout"),
        total_pg_fault: raw("total_pgfault"),
        total_pg_maj_fault: raw("total_pgmajfault"),
        total_inactive_anon: raw("total_inactive_anon"),
        total_active_anon: raw("total_active_anon"),
        total_inactive_file: raw("total_inactive_file"),
        total_active_file: raw("total_active_file"),
        total_unevictable: raw("total_unevictable"),
        usage: memory_entry(&m.usage),
        swap: memory_entry(&m.swap_usage),
        kernel: memory_entry(&m.kernel_usage),
        kernel_tcp: memory_entry(&m.kernel_tcp_usage),
        ..Default::default()
    };
    let u = &s.cpu.usage;
    let t = &s.cpu.throttling;
    let cpu = v1::CPUStat {
        usage: MessageField::some(v1::CPUUsage {
            total: u.total,
            kernel: u.kernel,
            user: u.user,
            per_cpu: u.percpu.clone(),
            ..Default::default()
        }),
        throttling: MessageField::some(v1::Throttle {
            periods: t.periods,
            throttled_periods: t.throttled_periods,
            throttled_time: t.throttled_time,
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut names = BTreeMap::new();
    let mut blk = |list: &[BlkioEntry]| -> Vec<v1::BlkIOEntry> {
        list.iter()
            .map(|e| v1::BlkIOEntry {
                op: e.op.clone(),
                device: device_name(e.major, e.minor, &mut names),
                major: e.major,
                minor: e.minor,
                value: e.value,
                ..Default::default()
            })
            .collect()
    };
    let b = &s.blkio;
    let blkio = v1::BlkIOStat {
        io_service_bytes_recursive: blk(&b.io_service_bytes_recursive),
        io_serviced_recursive: blk(&b.io_serviced_recursive),
        io_queued_recursive: blk(&b.io_queued_recursive),
        io_service_time_recursive: blk(&b.io_service_time_recursive),
        io_wait_time_recursive: blk(&b.io_wait_time_recursive),
        io_merged_recursive: blk(&b.io_merged_recursive),
        io_time_recursive: blk(&b.io_time_recursive),
        sectors_recursive: blk(&b.sectors_recursive),
        ..Default::default()
    };
    v1::Metrics {
        hugetlb: s
            .hugetlb
            .iter()
            .map(|(size, h)| v1::HugetlbStat {
                usage: h.usage,
                max: h.max_usage,
                failcnt: h.failcnt,
                pagesize: size.clone(),
                ..Default::default()
            })
            .collect(),
        pids: MessageField::some(v1::PidsStat {
            current: s.pids.current,
            limit: s.pids.limit, // 0 for "max", as containerd's cgroup1 reports it
            ..Default::default()
        }),
        cpu: MessageField::some(cpu),
        memory: MessageField::some(memory),
        blkio: MessageField::some(blkio),
        memory_oom_control: m
            .oom_control
            .as_ref()
            .map(|o| v1::MemoryOomControl {
                oom_kill_disable: o.oom_kill_disable,
                under_oom: o.under_oom,
                oom_kill: o.oom_kill,
                ..Default::default()
            })
            .into(),
        ..Default::default()
    }
}

fn psi(p: &Option<Psi>) -> MessageField<v2::PSIStats> {
    let data = |d: &myrt_runtime::cgroups::stats::PsiData| {
        MessageField::some(v2::PSIData {
            avg10: d.avg10,
            avg60: d.avg60,
            avg300: d.avg300,
            total: d.total,
            ..Default::default()
        })
    };
    p.as_ref()
        .map(|p| v2::PSIStats {
            some: data(&p.some),
            full: data(&p.full),
            ..Default::default()
        })
        .into()
}

/// io.stat again, one entry per device: runc's layout spreads it over two v1-style tables.
fn io_entries(b: &myrt_runtime::cgroups::stats::BlkioStats) -> Vec<v2::IOEntry> {
    let mut order: Vec<(u64, u64)> = Vec::new();
    let mut by_dev: BTreeMap<(u64, u64), v2::IOEntry> = BTreeMap::new();
    let tables = [
        (&b.io_service_bytes_recursive, true),
        (&b.io_serviced_recursive, false),
    ];
    for (list, bytes) in tables {
        for e in list.iter() {
            let key = (e.major, e.minor);
            let entry = by_dev.entry(key).or_insert_with(|| {
                order.push(key);
                v2::IOEntry {
                    major: e.major,
                    minor: e.minor,
                    ..Default::default()
                }
            });
            match (bytes, e.op.as_str()) {
                (true, "Read") => entry.rbytes = e.value,
                (true, "Write") => entry.wbytes = e.value,
                (false, "Read") => entry.rios = e.value,
                (false, "Write") => entry.wios = e.value,
                _ => {}
            }
        }
    }
    order
        .into_iter()
        .filter_map(|k| by_dev.remove(&k))
        .collect()
}

/// containerd's cgroup2 `Manager.Stat`: usec counters, memory.stat keys by name, swap alone,
/// "max" as u64::MAX.
fn v2_metrics(s: &Stats) -> v2::Metrics {
    let raw = |k: &str| s.memory.stats.get(k).copied().unwrap_or(0);
    let m = &s.memory;
    let memory = v2::MemoryStat {
        anon: raw("anon"),
        file: raw("file"),
        kernel_stack: raw("kernel_stack"),
        slab: raw("slab"),
        sock: raw("sock"),
        shmem: raw("shmem"),
        file_mapped: raw("file_mapped"),
        file_dirty: raw("file_dirty"),
        file_writeback: raw("file_writeback"),
        anon_thp: raw("anon_thp"),
        inactive_anon: raw("inactive_anon"),
        active_anon: raw("active_anon"),
        inactive_file: raw("inactive_file"),
        active_file: raw("active_file"),
        unevictable: raw("unevictable"),
        slab_reclaimable: raw("slab_reclaimable"),
        slab_unreclaimable: raw("slab_unreclaimable"),
        pgfault: raw("pgfault"),
        pgmajfault: raw("pgmajfault"),
        workingset_refault: raw("workingset_refault"),
        workingset_activate: raw("workingset_activate"),
        workingset_nodereclaim: raw("workingset_nodereclaim"),
        pgrefill: raw("pgrefill"),
        pgscan: raw("pgscan"),
        pgsteal: raw("pgsteal"),
        pgactivate: raw("pgactivate"),
        pgdeactivate: raw("pgdeactivate"),
        pglazyfree: raw("pglazyfree"),
        pglazyfreed: raw("pglazyfreed"),
        thp_fault_alloc: raw("thp_fault_alloc"),
        thp_collapse_alloc: raw("thp_collapse_alloc"),
        usage: m.usage.usage,
        usage_limit: m.usage.limit,
        swap_usage: m.swap_only_usage.usage,
        swap_limit: m.swap_only_usage.limit,
        max_usage: m.usage.max_usage,
        swap_max_usage: m.swap_only_usage.max_usage,
        psi: psi(&m.psi),
        ..Default::default()
    };
    let u = &s.cpu.usage;
    let cpu = v2::CPUStat {
        usage_usec: u.total / 1000,
        user_usec: u.user / 1000,
        system_usec: u.kernel / 1000,
        nr_periods: s.cpu.throttling.periods,
        nr_throttled: s.cpu.throttling.throttled_periods,
        throttled_usec: s.cpu.throttling.throttled_time / 1000,
        psi: psi(&s.cpu.psi),
        nr_bursts: s.cpu.burst.periods,
        burst_usec: s.cpu.burst.time / 1000,
        ..Default::default()
    };
    v2::Metrics {
        pids: MessageField::some(v2::PidsStat {
            current: s.pids.current,
            // the engine reports "max" as 0 (runc); containerd's cgroup2 as u64::MAX
            limit: match s.pids.limit {
                0 => u64::MAX,
                l => l,
            },
            ..Default::default()
        }),
        cpu: MessageField::some(cpu),
        memory: MessageField::some(memory),
        io: MessageField::some(v2::IOStat {
            usage: io_entries(&s.blkio),
            psi: psi(&s.blkio.psi),
            ..Default::default()
        }),
        hugetlb: s
            .hugetlb
            .iter()
            .map(|(size, h)| v2::HugeTlbStat {
                current: h.usage,
                max: h.limit,
                pagesize: size.clone(),
                failcnt: h.failcnt,
                ..Default::default()
            })
            .collect(),
        memory_events: m
            .events
            .as_ref()
            .map(|e| v2::MemoryEvents {
                low: e.low,
                high: e.high,
                max: e.max,
                oom: e.oom,
                oom_kill: e.oom_kill,
                oom_group_kill: e.oom_group_kill,
                ..Default::default()
            })
            .into(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim::protos::protobuf::Message;
    use myrt_runtime::cgroups::stats::{HugetlbStats, MemoryEvents, OomControl, PsiData};

    fn sample() -> Stats {
        let mut s = Stats::default();
        s.cpu.usage.total = 5_000_000;
        s.cpu.usage.user = 3_000_000;
        s.cpu.usage.kernel = 2_000_000;
        s.cpu.usage.percpu = vec![1, 2];
        s.cpu.throttling.periods = 7;
        s.cpu.throttling.throttled_periods = 2;
        s.cpu.throttling.throttled_time = 300_000;
        s.memory.usage = MemoryData {
            usage: 1 << 20,
            max_usage: 2 << 20,
            failcnt: 1,
            limit: 64 << 20,
        };
        s.memory.swap_only_usage = MemoryData {
            usage: 4096,
            max_usage: 8192,
            failcnt: 0,
            limit: u64::MAX,
        };
        for (k, v) in [("rss", 11), ("total_pgfault", 12), ("anon", 13)] {
            s.memory.stats.insert(k.into(), v);
        }
        s.pids.current = 2;
        let e = |op: &str, value| BlkioEntry {
            major: 8,
            minor: 0,
            op: op.into(),
            value,
        };
        s.blkio.io_service_bytes_recursive = vec![e("Read", 100), e("Write", 200)];
        s.blkio.io_serviced_recursive = vec![e("Read", 3), e("Write", 4)];
        s.hugetlb.insert(
            "2MB".into(),
            HugetlbStats {
                usage: 5,
                max_usage: 6,
                failcnt: 7,
                limit: 8,
            },
        );
        s
    }

    #[test]
    fn type_urls_are_containerds() {
        let s = sample();
        let a = to_any(Hierarchy::V1, &s).unwrap();
        assert_eq!(a.type_url, "io.containerd.cgroups.v1.Metrics");
        let a = to_any(Hierarchy::V2, &s).unwrap();
        assert_eq!(a.type_url, "io.containerd.cgroups.v2.Metrics");
    }

    #[test]
    fn v1_like_containerd() {
        let mut s = sample();
        s.memory.oom_control = Some(OomControl {
            oom_kill_disable: 0,
            under_oom: 0,
            oom_kill: 3,
        });
        let any = to_any(Hierarchy::V1, &s).unwrap();
        let m = v1::Metrics::parse_from_bytes(&any.value).unwrap();
        assert_eq!(m.pids.current, 2);
        assert_eq!(m.pids.limit, 0);
        assert_eq!(m.cpu.usage.total, 5_000_000);
        assert_eq!(m.cpu.usage.per_cpu, [1, 2]);
        assert_eq!(m.cpu.throttling.throttled_time, 300_000);
        assert_eq!(m.memory.usage.usage, 1 << 20);
        assert_eq!(m.memory.usage.limit, 64 << 20);
        assert_eq!(m.memory.usage.max, 2 << 20);
        assert_eq!(m.memory.rss, 11);
        assert_eq!(m.memory.total_pg_fault, 12);
        assert_eq!(m.memory_oom_control.oom_kill, 3);
        let b = &m.blkio.io_service_bytes_recursive;
        assert_eq!((b[0].op.as_str(), b[0].value), ("Read", 100));
        assert_eq!((b[1].major, b[1].minor), (8, 0));
        assert_eq!(m.hugetlb[0].pagesize, "2MB");
        assert_eq!((m.hugetlb[0].usage, m.hugetlb[0].max), (5, 6));
    }

    #[test]
    fn v2_like_containerd() {
        let mut s = sample();
        s.memory.events = Some(MemoryEvents {
            oom_kill: 1,
            max: 9,
            ..Default::default()
        });
        s.cpu.psi = Some(Psi {
            some: PsiData {
                avg10: 1.5,
                total: 10,
                ..Default::default()
            },
            full: PsiData::default(),
        });
        let any = to_any(Hierarchy::V2, &s).unwrap();
        let m = v2::Metrics::parse_from_bytes(&any.value).unwrap();
        assert_eq!(m.pids.current, 2);
        assert_eq!(m.pids.limit, u64::MAX, "max");
        assert_eq!(
            (m.cpu.usage_usec, m.cpu.user_usec, m.cpu.system_usec),
            (5000, 3000, 2000)
        );
        assert_eq!((m.cpu.nr_throttled, m.cpu.throttled_usec), (2, 300));
        assert_eq!(m.cpu.psi.some.avg10, 1.5);
        assert!(m.memory.psi.is_none());
        assert_eq!(m.memory.usage, 1 << 20);
        assert_eq!(m.memory.usage_limit, 64 << 20);
        assert_eq!(m.memory.max_usage, 2 << 20);
        assert_eq!((m.memory.swap_usage, m.memory.swap_limit), (4096, u64::MAX));
        assert_eq!(m.memory.swap_max_usage, 8192);
        assert_eq!(m.memory.anon, 13);
        assert_eq!(m.memory_events.oom_kill, 1);
        assert_eq!(m.memory_events.max, 9);
        let io = &m.io.usage;
        assert_eq!(io.len(), 1);
        assert_eq!(
            (io[0].rbytes, io[0].wbytes, io[0].rios, io[0].wios),
            (100, 200, 3, 4)
        );
        assert_eq!(m.hugetlb[0].pagesize, "2MB");
        assert_eq!(
            (m.hugetlb[0].current, m.hugetlb[0].max, m.hugetlb[0].failcnt),
            (5, 8, 7)
        );
    }
}
