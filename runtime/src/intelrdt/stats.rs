//! Intel RDT statistics of a container: runc's `intelrdt.Stats`, serialized with the field names
//! and omissions of runc's `types.IntelRdt` (the `intel_rdt` object of `runc events`). As in
//! runc, each part is read when the host has the feature: the allocation info and schemata
//! lines with CAT (info/L3) or MBA (info/MB), the per-domain counters of `mon_data` with CMT
//! (llc_occupancy) or MBM (mbm_total_bytes, mbm_local_bytes).

use std::fs;
use std::path::Path;

use serde::Serialize;

use super::group::RdtGroup;
use super::{io_err, IntelRdtError, Result};

fn zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct L3CacheInfo {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cbm_mask: String,
    #[serde(skip_serializing_if = "zero")]
    pub min_cbm_bits: u64,
    #[serde(skip_serializing_if = "zero")]
    pub num_closids: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MemBwInfo {
    #[serde(skip_serializing_if = "zero")]
    pub bandwidth_gran: u64,
    #[serde(skip_serializing_if = "zero")]
    pub delay_linear: u64,
    #[serde(skip_serializing_if = "zero")]
    pub min_bandwidth: u64,
    #[serde(skip_serializing_if = "zero")]
    pub num_closids: u64,
}

/// Memory bandwidth counters of one cache domain (`mon_data/mon_L3_XX`), in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MbmNumaNodeStats {
    pub mbm_total_bytes: u64,
    pub mbm_local_bytes: u64,
}

/// Last-level cache occupancy of one cache domain, in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CmtNumaNodeStats {
    pub llc_occupancy: u64,
}

/// runc's `intelrdt.Stats`; the default (nothing read) serializes as `{}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l3_cache_info: Option<L3CacheInfo>,
    /// The root's L3 line: the host's default allocation.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub l3_cache_schema_root: String,
    /// The container's group's L3 line.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub l3_cache_schema: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_bw_info: Option<MemBwInfo>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mem_bw_schema_root: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mem_bw_schema: String,
    /// One entry per cache domain, in the order of their names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mbm_stats: Option<Vec<MbmNumaNodeStats>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmt_stats: Option<Vec<CmtNumaNodeStats>>,
}

fn read_trimmed(path: &Path) -> Result<String> {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(io_err("read", path))
}

fn read_u64(path: &Path) -> Result<u64> {
    let text = read_trimmed(path)?;
    text.parse().map_err(|_| IntelRdtError::Parse {
        path: path.to_path_buf(),
        value: text,
        reason: "not a number (a counter reads \"Unavailable\" while the kernel cannot count)",
    })
}

/// The last line of `schemata` for a resource `want` accepts, trimmed (runc keeps the last).
fn schema_line(schemata: &str, want: impl Fn(&str) -> bool) -> String {
    schemata
        .lines()
        .map(str::trim)
        .filter(|l| l.split_once(':').is_some_and(|(r, _)| want(r.trim())))
        .last()
        .unwrap_or_default()
        .to_string()
}

impl RdtGroup {
    /// Reads the container's RDT statistics (see the module docs).
    pub fn stats(&self) -> Result<Stats> {
        let rs = self.resctrl()?;
        let info = rs.root().join("info");
        let (cat, mba) = (info.join("L3").is_dir(), info.join("MB").is_dir());
        let mut s = Stats::default();
        if cat || mba {
            let root = read_trimmed(&rs.root().join("schemata"))?;
            let own = read_trimmed(&self.path.join("schemata"))?;
            if cat {
                let dir = info.join("L3");
                s.l3_cache_info = Some(L3CacheInfo {
                    cbm_mask: read_trimmed(&dir.join("cbm_mask"))?,
                    min_cbm_bits: read_u64(&dir.join("min_cbm_bits"))?,
                    num_closids: read_u64(&dir.join("num_closids"))?,
                });
                let l3 = |r: &str| r.starts_with("L3");
                s.l3_cache_schema_root = schema_line(&root, l3);
                s.l3_cache_schema = schema_line(&own, l3);
            }
            if mba {
                let dir = info.join("MB");
                s.mem_bw_info = Some(MemBwInfo {
                    bandwidth_gran: read_u64(&dir.join("bandwidth_gran"))?,
                    delay_linear: read_u64(&dir.join("delay_linear"))?,
                    min_bandwidth: read_u64(&dir.join("min_bandwidth"))?,
                    num_closids: read_u64(&dir.join("num_closids"))?,
                });
                s.mem_bw_schema_root = schema_line(&root, |r| r == "MB");
                s.mem_bw_schema = schema_line(&own, |r| r == "MB");
            }
        }
        let features = rs.mon_features();
        let has = |f: &str| features.iter().any(|x| x == f);
        let (total, local, cmt) = (
            has("mbm_total_bytes"),
            has("mbm_local_bytes"),
            has("llc_occupancy"),
        );
        if total || local || cmt {
            let data = self.monitored().join("mon_data");
            let mut domains: Vec<_> = fs::read_dir(&data)
                .map_err(io_err("read", &data))?
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect();
            domains.sort();
            let (mut mbm_stats, mut cmt_stats) = (Vec::new(), Vec::new());
            for d in &domains {
                if total || local {
                    let mut m = MbmNumaNodeStats::default();
                    if total {
                        m.mbm_total_bytes = read_u64(&d.join("mbm_total_bytes"))?;
                    }
                    if local {
                        m.mbm_local_bytes = read_u64(&d.join("mbm_local_bytes"))?;
                    }
                    mbm_stats.push(m);
                }
                if cmt {
                    cmt_stats.push(CmtNumaNodeStats {
                        llc_occupancy: read_u64(&d.join("llc_occupancy"))?,
                    });
                }
            }
            s.mbm_stats = (total || local).then_some(mbm_stats);
            s.cmt_stats = cmt.then_some(cmt_stats);
        }
        Ok(s)
    }
}
