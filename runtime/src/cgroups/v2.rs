//! cgroup v2: one directory in the unified hierarchy (runc's `fs2` driver).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};

use super::bpf;

use super::devices::DevicePolicy;
use super::fs::{self, Knob};
use super::v1::{cpu_fields_set, hugetlb_file, pids_max, rdma_line, throttles, wanted_controllers};
use nix::errno::Errno;

use super::{cpu_shares_to_weight, invalid, unsupported};
use super::{CgroupConfig, CgroupError, FreezerState, Hierarchy, Manager};
use crate::Pid;

/// Files the unified map must not write: they move, kill or freeze processes, or change the
/// tree's shape, which is this manager's job.
const UNIFIED_DENY: &[&str] = &[
    "cgroup.procs",
    "cgroup.threads",
    "cgroup.kill",
    "cgroup.freeze",
    "cgroup.subtree_control",
    "cgroup.type",
];

#[derive(Debug)]
pub struct V2Manager {
    path: PathBuf,
    dir: PathBuf,
}

/// "max" for -1, nothing for 0 (unset), the number otherwise.
fn num_to_str(v: i64) -> Option<String> {
    match v {
        0 => None,
        -1 => Some("max".into()),
        v => Some(v.to_string()),
    }
}

/// The OCI swap value is memory+swap; memory.swap.max is swap alone (runc's conversion).
pub(super) fn swap_max(swap: i64, limit: i64) -> Result<Option<String>, CgroupError> {
    let bad = |why: &str| invalid("linux.resources.memory.swap", swap, why);
    match (swap, limit) {
        (0, -1) | (-1, _) => Ok(Some("max".into())),
        (0, _) => Ok(None),
        (_, 0 | -1) => Err(bad("a swap limit needs a memory limit")),
        (_, l) if l < 0 => Err(bad("the memory limit is negative")),
        (s, l) if s < l => Err(bad("memory+swap must be >= the memory limit")),
        (s, l) => Ok(Some((s - l).to_string())),
    }
}

/// io.max line; "max" lifts a limit, as 0 does in v1's blkio.throttle files.
fn io_max_line(major: i64, minor: i64, key: &str, rate: u64) -> String {
    let rate = if rate == 0 {
        "max".to_string()
    } else {
        rate.to_string()
    };
    format!("{major}:{minor} {key}={rate}")
}

impl V2Manager {
    pub(super) fn new(path: PathBuf, dir: PathBuf) -> V2Manager {
        V2Manager { path, dir }
    }

    fn knob(&self, field: &'static str) -> Knob<'_> {
        Knob {
            dir: &self.dir,
            field,
        }
    }

    /// Turns on in `d`'s subtree_control every controller `d` has. All at once first, then one
    /// by one ignoring failures (as runc): a controller we do not get fails later, in apply,
    /// with the field that needed it.
    fn enable_controllers(d: &Path) -> Result<(), CgroupError> {
        let available = fs::read(&d.join("cgroup.controllers"))?;
        let wanted: Vec<String> = available
            .split_whitespace()
            .map(|c| format!("+{c}"))
            .collect();
        let control = d.join("cgroup.subtree_control");
        if wanted.is_empty() || fs::write(&control, &wanted.join(" ")).is_ok() {
            return Ok(());
        }
        for c in &wanted {
            if let Err(e) = fs::write(&control, c) {
                log::debug!("{e}");
            }
        }
        Ok(())
    }

    /// Fields myrt or cgroup v2 cannot apply, refused before anything is written.
    fn check(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        let none = "has no cgroup v2 equivalent";
        if let Some(m) = r.memory() {
            let refused = [
                (m.swappiness().is_some(), "swappiness", none),
                (
                    m.disable_oom_killer() == Some(true),
                    "disableOOMKiller",
                    none,
                ),
                (m.kernel_tcp().is_some(), "kernelTCP", none),
                (
                    m.use_hierarchy() == Some(false),
                    "useHierarchy",
                    "cgroup v2 is always hierarchical",
                ),
            ];
            if let Some((_, f, why)) = refused.iter().find(|r| r.0) {
                return Err(unsupported(format!("linux.resources.memory.{f}"), *why));
            }
        }
        if let Some(c) = r.cpu() {
            if c.realtime_runtime().is_some_and(|v| v != 0) {
                return Err(unsupported("linux.resources.cpu.realtimeRuntime", none));
            }
            if c.realtime_period().is_some_and(|v| v != 0) {
                return Err(unsupported("linux.resources.cpu.realtimePeriod", none));
            }
        }
        if let Some(b) = r.block_io() {
            if b.leaf_weight().is_some()
                || b.weight_device()
                    .iter()
                    .flatten()
                    .any(|w| w.leaf_weight().is_some())
            {
                return Err(unsupported("linux.resources.blockIO.leafWeight", none));
            }
        }
        let available_file = self.dir.join("cgroup.controllers");
        let available = fs::read(&available_file)?;
        for (field, v1_name) in wanted_controllers(r) {
            let controller = match v1_name {
                "blkio" => "io",
                "devices" => continue,
                "net_cls" | "net_prio" => {
                    return Err(unsupported(field, "no such controller on cgroup v2"))
                }
                c => c,
            };
            if !available.split_whitespace().any(|c| c == controller) {
                let why = format!(
                    "{controller} controller not available in {}",
                    available_file.display()
                );
                return Err(unsupported(field, why));
            }
        }
        Ok(())
    }

    /// The policy of `linux.resources.devices`; `None` when the list is absent or empty, which
    /// leaves the device program as it is (the v1 backend writes nothing for it either).
    fn device_policy(r: &LinuxResources) -> Result<Option<DevicePolicy>, CgroupError> {
        match r.devices().as_deref() {
            None | Some([]) => Ok(None),
            Some(rules) => DevicePolicy::from_rules(rules).map(Some),
        }
    }

    /// Replaces the cgroup's device program with one for `policy`; an allow-all policy gets an
    /// allow-all program too, so that an update can lift earlier restrictions (runc).
    fn apply_devices(&self, policy: &DevicePolicy) -> Result<(), CgroupError> {
        let insns = bpf::device_program(policy);
        match bpf::install(&self.dir, &insns) {
            Ok(()) => Ok(()),
            // runc's canSkipEBPFError: where bpf(2) is denied (e.g. in a user namespace) a
            // policy that restricts nothing loses nothing
            Err(e) if policy.allows_everything() && e.errno() == Some(Errno::EPERM) => {
                log::warn!("linux.resources.devices: allow-all program not installed: {e}");
                Ok(())
            }
            Err(source) => Err(CgroupError::Bpf {
                path: self.dir.clone(),
                source,
            }),
        }
    }

    fn apply_memory(&self, m: &LinuxMemory) -> Result<(), CgroupError> {
        let k = self.knob("linux.resources.memory");
        let limit = m.limit().unwrap_or(0);
        if m.check_before_update() == Some(true) {
            k.check_usage("memory.current", limit)?;
        }
        if let Some(swap) = swap_max(m.swap().unwrap_or(0), limit)? {
            match k.set("memory.swap.max", "swap", &swap) {
                // no swap accounting: "no limit" and "no swap" already hold (runc agrees)
                Err(CgroupError::Unsupported { .. }) if swap == "max" || swap == "0" => {}
                other => other?,
            }
        }
        k.set_opt("memory.max", "limit", num_to_str(limit))?;
        k.set_opt(
            "memory.low",
            "reservation",
            m.reservation().and_then(num_to_str),
        )?;
        if let Some(v) = m.kernel() {
            log::warn!(
                "linux.resources.memory.kernel={v} ignored: kernel memory limits are deprecated"
            );
        }
        Ok(())
    }

    fn apply_cpu(&self, c: &LinuxCpu) -> Result<(), CgroupError> {
        let k = self.knob("linux.resources.cpu");
        k.set_opt("cpuset.cpus", "cpus", c.cpus().as_ref())?;
        k.set_opt("cpuset.mems", "mems", c.mems().as_ref())?;
        if !cpu_fields_set(c) {
            return Ok(());
        }
        let weight = c.shares().map(cpu_shares_to_weight).filter(|&w| w != 0);
        k.set_opt("cpu.weight", "shares", weight)?;
        k.set_opt("cpu.idle", "idle", c.idle())?;
        let quota = c.quota().filter(|&q| q != 0);
        let period = c.period().filter(|&p| p != 0);
        if quota.is_some() || period.is_some() {
            let quota = match quota {
                Some(q) if q > 0 => q.to_string(),
                Some(_) => "max".into(),
                // only the period changes: keep the quota in force
                None => {
                    let now = fs::read_trimmed(&self.dir.join("cpu.max"))?;
                    now.split_whitespace().next().unwrap_or("max").to_string()
                }
            };
            let value = period.map_or(quota.clone(), |p| format!("{quota} {p}"));
            k.set("cpu.max", "quota", value)?;
        }
        k.set_opt("cpu.max.burst", "burst", c.burst())
    }

    fn apply_io(&self, b: &LinuxBlockIo) -> Result<(), CgroupError> {
        let k = self.knob("linux.resources.blockIO");
        if let Some(w) = b.weight() {
            if self.dir.join("io.bfq.weight").exists() {
                k.set("io.bfq.weight", "weight", w)?;
            } else if (10..=1000).contains(&w) {
                // blkio [10, 1000] onto io.weight [1, 10000], linearly (runc, crun)
                k.set("io.weight", "weight", 1 + (u64::from(w) - 10) * 9999 / 990)?;
            } else {
                return Err(invalid(k.name("weight"), w, "must be 10..=1000"));
            }
        }
        for wd in b.weight_device().iter().flatten() {
            let w = wd
                .weight()
                .map(|w| format!("{}:{} {w}", wd.major(), wd.minor()));
            k.set_opt("io.bfq.weight_device", "weightDevice", w)?;
        }
        for (list, stem, sub) in throttles(b) {
            let key = match stem {
                "read_bps" => "rbps",
                "write_bps" => "wbps",
                "read_iops" => "riops",
                _ => "wiops",
            };
            for t in list {
                k.set(
                    "io.max",
                    sub,
                    io_max_line(t.major(), t.minor(), key, t.rate()),
                )?;
            }
        }
        Ok(())
    }

    fn apply_unified(&self, unified: &HashMap<String, String>) -> Result<(), CgroupError> {
        let mut keys: Vec<&String> = unified.keys().collect();
        keys.sort();
        for key in keys {
            let field = format!("linux.resources.unified.{key}");
            let controller = key.split_once('.').map(|(c, _)| c).unwrap_or_default();
            let bad =
                controller.is_empty() || key.contains('/') || UNIFIED_DENY.contains(&key.as_str());
            if bad {
                return Err(invalid(
                    field,
                    key,
                    "not a cgroup file the unified map may write",
                ));
            }
            let path = self.dir.join(key);
            if !path.exists() {
                let why = format!(
                    "{} does not exist: is the {controller} controller available?",
                    path.display()
                );
                return Err(unsupported(field, why));
            }
            fs::write(&path, &unified[key])?;
        }
        Ok(())
    }

    fn events(&self) -> PathBuf {
        self.dir.join("cgroup.events")
    }

    /// Writes `value` to cgroup.freeze and waits until cgroup.events shows "frozen <value>".
    fn set_frozen(&self, value: &'static str, what: &'static str) -> Result<(), CgroupError> {
        let freeze = self.dir.join("cgroup.freeze");
        if !freeze.exists() {
            let why = format!(
                "{} does not exist (the root cgroup, or Linux < 5.2)",
                freeze.display()
            );
            return Err(unsupported("freezer", why));
        }
        fs::write(&freeze, value)?;
        let events = self.events();
        fs::wait_until(&events, what, || {
            let text = fs::read(&events)?;
            Ok((
                fs::flat_key(&text, "frozen").as_deref() == Some(value),
                text,
            ))
        })
    }
}

impl Manager for V2Manager {
    fn hierarchy(&self) -> Hierarchy {
        Hierarchy::V2
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn config(&self) -> CgroupConfig {
        let (hierarchy, path) = (Hierarchy::V2, self.path.display().to_string());
        let dirs = [(super::UNIFIED_KEY.to_string(), self.dir.clone())].into();
        CgroupConfig {
            hierarchy,
            path,
            dirs,
        }
    }

    /// Enables the controllers in every ancestor's cgroup.subtree_control from the root down,
    /// creating missing levels, then creates the cgroup itself.
    fn create(&self) -> Result<(), CgroupError> {
        let not_cgroup = |d: &Path| {
            let why = format!("{} is not inside a cgroup2 hierarchy", d.display());
            super::invalid_path(self.path.display().to_string(), why)
        };
        let mut missing = Vec::new();
        let mut cur = self.dir.as_path();
        while !cur.exists() {
            missing.push(cur);
            cur = cur.parent().ok_or_else(|| not_cgroup(cur))?;
        }
        if !cur.join("cgroup.controllers").exists() {
            return Err(not_cgroup(cur));
        }
        let mut existing = vec![cur];
        while let Some(p) = existing.last().and_then(|d| d.parent()) {
            if !p.join("cgroup.controllers").exists() {
                break;
            }
            existing.push(p);
        }
        for d in existing.into_iter().rev().filter(|d| *d != self.dir) {
            Self::enable_controllers(d)?;
        }
        for d in missing.into_iter().rev() {
            fs::mkdir(d)?;
            if d != self.dir {
                Self::enable_controllers(d)?;
            }
        }
        Ok(())
    }

    fn add_task(&self, pid: Pid) -> Result<(), CgroupError> {
        fs::write(&self.dir.join("cgroup.procs"), &pid.to_string())
    }

    fn apply(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        self.check(r)?;
        // first: a rule list the program cannot carry out fails before any file is written
        if let Some(policy) = Self::device_policy(r)? {
            self.apply_devices(&policy)?;
        }
        if let Some(p) = r.pids() {
            self.knob("linux.resources.pids")
                .set_opt("pids.max", "limit", pids_max(p.limit()))?;
        }
        if let Some(m) = r.memory() {
            self.apply_memory(m)?;
        }
        if let Some(b) = r.block_io() {
            self.apply_io(b)?;
        }
        if let Some(c) = r.cpu() {
            self.apply_cpu(c)?;
        }
        for h in r.hugepage_limits().iter().flatten() {
            let k = self.knob("linux.resources.hugepageLimits");
            k.set(&hugetlb_file(h, "max")?, "", h.limit())?;
        }
        for (dev, l) in r.rdma().iter().flatten() {
            self.knob("linux.resources.rdma")
                .set_opt("rdma.max", "", rdma_line(dev, l)?)?;
        }
        // last, so that it overrides the fields above (runc's order)
        r.unified()
            .as_ref()
            .map_or(Ok(()), |u| self.apply_unified(u))
    }

    fn freeze(&self) -> Result<(), CgroupError> {
        let res = self.set_frozen("1", "freeze");
        if res.is_err() {
            // never leave a cgroup stuck half-frozen
            let _ = fs::write(&self.dir.join("cgroup.freeze"), "0");
        }
        res
    }

    fn thaw(&self) -> Result<(), CgroupError> {
        self.set_frozen("0", "thaw")
    }

    fn freezer_state(&self) -> Result<FreezerState, CgroupError> {
        let path = self.dir.join("cgroup.freeze");
        match fs::read_trimmed(&path)?.as_str() {
            "0" => Ok(FreezerState::Thawed),
            "1" => match fs::flat_key(&fs::read(&self.events())?, "frozen").as_deref() {
                Some("1") => Ok(FreezerState::Frozen),
                _ => Ok(FreezerState::Freezing),
            },
            other => {
                let (value, reason) = (other.into(), "expected 0 or 1".into());
                Err(CgroupError::Parse {
                    path,
                    value,
                    reason,
                })
            }
        }
    }

    fn pids(&self) -> Result<Vec<Pid>, CgroupError> {
        fs::procs_recursive(&self.dir)
    }

    fn kill_all(&self) -> Result<(), CgroupError> {
        let kill = self.dir.join("cgroup.kill");
        if kill.exists() {
            // Linux >= 5.14: the kernel kills the whole subtree, forks included
            fs::write(&kill, "1")?;
        } else if self.dir.exists() {
            let frozen = self.freeze().is_ok();
            let killed = self.pids().and_then(|pids| fs::kill_pids(&self.dir, &pids));
            if frozen {
                self.thaw()?;
            }
            killed?;
        }
        fs::wait_empty(&self.dir, || self.pids())
    }

    fn remove(&self) -> Result<(), CgroupError> {
        fs::remove_tree(&self.dir)
    }

    fn exists(&self) -> bool {
        self.dir.exists()
    }

    fn stats(&self) -> Result<super::stats::Stats, CgroupError> {
        super::stats::v2(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake() -> (tempfile::TempDir, V2Manager) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ctr");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(
            dir.join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .unwrap();
        for f in [
            "memory.max",
            "memory.swap.max",
            "memory.low",
            "cpu.weight",
            "cpu.max",
            "pids.max",
            "io.max",
            "io.weight",
            "memory.high",
        ] {
            std::fs::write(dir.join(f), "").unwrap();
        }
        std::fs::write(dir.join("cpu.max"), "max 100000\n").unwrap();
        let m = V2Manager::new("/ctr".into(), dir);
        (tmp, m)
    }

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    fn get(m: &V2Manager, f: &str) -> String {
        std::fs::read_to_string(m.dir.join(f)).unwrap()
    }

    #[test]
    fn cgroups_v2_swap_conversion() {
        assert_eq!(swap_max(0, -1).unwrap().as_deref(), Some("max"));
        assert_eq!(swap_max(-1, 100).unwrap().as_deref(), Some("max"));
        assert_eq!(swap_max(0, 100).unwrap(), None);
        assert_eq!(swap_max(300, 100).unwrap().as_deref(), Some("200"));
        assert_eq!(swap_max(100, 100).unwrap().as_deref(), Some("0"));
        assert!(swap_max(50, 100).is_err());
        assert!(swap_max(50, 0).is_err());
    }

    #[test]
    fn cgroups_v2_files() {
        let (_tmp, m) = fake();
        m.apply(&res(
            r#"{"memory":{"limit":100663296,"swap":100663296,"reservation":-1},
            "cpu":{"shares":1024,"quota":50000},"pids":{"limit":0},
            "blockIO":{"weight":500,"throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1048576}]},
            "unified":{"memory.high":"50000000"}}"#,
        ))
        .unwrap();
        assert_eq!(get(&m, "memory.max"), "100663296");
        assert_eq!(get(&m, "memory.swap.max"), "0");
        assert_eq!(get(&m, "memory.low"), "max");
        assert_eq!(get(&m, "cpu.weight"), "100");
        assert_eq!(get(&m, "cpu.max"), "50000");
        assert_eq!(get(&m, "pids.max"), "");
        assert_eq!(get(&m, "io.weight"), "4950");
        assert_eq!(get(&m, "io.max"), "8:0 rbps=1048576");
        assert_eq!(get(&m, "memory.high"), "50000000");
        m.apply(&res(
            r#"{"cpu":{"period":20000},"pids":{"limit":-1},"memory":{"limit":-1}}"#,
        ))
        .unwrap();
        assert_eq!(get(&m, "cpu.max"), "50000 20000");
        assert_eq!(get(&m, "pids.max"), "max");
        assert_eq!(get(&m, "memory.swap.max"), "max");
        assert_eq!(get(&m, "memory.max"), "max");
    }

    #[test]
    fn cgroups_v2_refusals_name_the_field() {
        let (_tmp, m) = fake();
        // a plain directory is no cgroup2: the kernel refuses the device program (EBADF from
        // BPF_PROG_QUERY as root, EPERM from BPF_PROG_LOAD otherwise), before any file is written
        let e = m
            .apply(&res(
                r#"{"devices":[{"allow":false,"access":"rwm"}],"pids":{"limit":5}}"#,
            ))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("linux.resources.devices: {}: ", m.dir.display())),
            "{e}"
        );
        assert!(e.contains("eBPF device program"), "{e}");
        assert_eq!(
            get(&m, "pids.max"),
            "",
            "nothing is written before a refusal"
        );
        // a rule the device cgroup cannot express fails before bpf(2)
        let e = m
            .apply(&res(
                r#"{"devices":[{"allow":false},{"allow":true,"type":"c","major":1,"access":"rw"},
                {"allow":false,"type":"c","major":1,"minor":3,"access":"w"}]}"#,
            ))
            .unwrap_err();
        assert!(matches!(e, CgroupError::InvalidValue { .. }), "{e}");
        // an empty list leaves the device program alone, as v1 leaves devices.list
        m.apply(&res(r#"{"devices":[],"pids":{"limit":5}}"#))
            .unwrap();
        assert_eq!(get(&m, "pids.max"), "5");
        for (json, field) in [
            (
                r#"{"hugepageLimits":[{"pageSize":"2MB","limit":1}]}"#,
                "linux.resources.hugepageLimits",
            ),
            (
                r#"{"memory":{"swappiness":10}}"#,
                "linux.resources.memory.swappiness",
            ),
            (
                r#"{"network":{"classID":1}}"#,
                "linux.resources.network.classID",
            ),
            (
                r#"{"cpu":{"realtimeRuntime":1000}}"#,
                "linux.resources.cpu.realtimeRuntime",
            ),
            (
                r#"{"unified":{"hugetlb.2MB.max":"1"}}"#,
                "linux.resources.unified.hugetlb.2MB.max",
            ),
        ] {
            let e = m.apply(&res(json)).unwrap_err().to_string();
            assert!(e.starts_with(&format!("{field}: ")), "{e}");
        }
        for key in ["cgroup.procs", "../x.y", "nodot"] {
            let json = format!(r#"{{"unified":{{"{key}":"1"}}}}"#);
            assert!(m.apply(&res(&json)).is_err(), "{key}");
        }
    }

    #[test]
    fn cgroups_v2_create_enables_controllers_top_down() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, mid) = (tmp.path().join("root"), tmp.path().join("root/mid"));
        std::fs::create_dir_all(&mid).unwrap();
        for (d, c) in [(&root, "cpu memory pids\n"), (&mid, "memory pids\n")] {
            std::fs::write(d.join("cgroup.controllers"), c).unwrap();
            std::fs::write(d.join("cgroup.subtree_control"), "").unwrap();
        }
        let m = V2Manager::new("/mid/ctr".into(), mid.join("ctr"));
        m.create().unwrap();
        assert!(mid.join("ctr").is_dir());
        assert_eq!(
            std::fs::read_to_string(root.join("cgroup.subtree_control")).unwrap(),
            "+cpu +memory +pids"
        );
        assert_eq!(
            std::fs::read_to_string(mid.join("cgroup.subtree_control")).unwrap(),
            "+memory +pids"
        );
        let outside = V2Manager::new("/x".into(), tmp.path().join("plain/x"));
        assert!(matches!(
            outside.create(),
            Err(CgroupError::InvalidPath { .. })
        ));
    }

    #[test]
    fn cgroups_v2_freezer_state_from_files() {
        let (_tmp, m) = fake();
        std::fs::write(m.dir.join("cgroup.freeze"), "1\n").unwrap();
        std::fs::write(m.events(), "populated 1\nfrozen 0\n").unwrap();
        assert_eq!(m.freezer_state().unwrap(), FreezerState::Freezing);
        std::fs::write(m.events(), "populated 1\nfrozen 1\n").unwrap();
        assert_eq!(m.freezer_state().unwrap(), FreezerState::Frozen);
        std::fs::write(m.dir.join("cgroup.freeze"), "0\n").unwrap();
        assert_eq!(m.freezer_state().unwrap(), FreezerState::Thawed);
    }

    /// A cgroup2 hierarchy to test in: /sys/fs/cgroup on a v2 host; on a hybrid host its
    /// cgroup2 mount, because the kernel runs the device programs of a task's cgroup2 cgroup
    /// there too (before the v1 devices controller).
    fn cgroup2_root() -> Option<PathBuf> {
        use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
        let root = Path::new(super::super::CGROUP_ROOT);
        [root.to_path_buf(), root.join("unified")]
            .into_iter()
            .find(|p| statfs(p).is_ok_and(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC))
    }

    /// Kills the probe child (if still held) and removes the test cgroup, on success or panic.
    struct Cleanup<'a>(&'a V2Manager, Option<std::process::Child>);

    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            if let Some(mut child) = self.1.take() {
                if let Some(pid) = Pid::new(child.id() as i32) {
                    let _ = pid.signal(nix::sys::signal::Signal::SIGKILL);
                }
                let _ = child.wait();
            }
            let _ = self.0.kill_all();
            if let Err(e) = self.0.remove() {
                eprintln!("cleanup: {e}");
            }
        }
    }

    /// Runs the device probes in a shell that joins the cgroup before it touches any device.
    fn probe_devices(c: &mut Cleanup<'_>, scratch: &Path) -> Vec<String> {
        use std::io::Write;
        let script = r#"read go; exec 2>&1
            # not ":": a failed redirection of a special builtin ends the shell
            for d in null zero full; do true <"/dev/$d" && echo "read $d ok"; done
            echo x >/dev/null && echo "write null ok"
            mknod "$1/n3" c 1 3 && echo "mknod 1:3 ok"
            mknod "$1/n5" c 1 5 && echo "mknod 1:5 ok"
            rm -f "$1/n3" "$1/n5""#;
        let child = std::process::Command::new("/bin/sh")
            .args(["-c", script, "probe"])
            .arg(scratch)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = Pid::new(child.id() as i32).unwrap();
        c.1 = Some(child);
        c.0.add_task(pid).unwrap();
        let mut child = c.1.take().unwrap();
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        eprintln!("probe in {}:\n{text}", c.0.dir.display());
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn cgroups_v2_kernel_device_program() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping: the eBPF device program test needs root");
            return;
        }
        let Some(root) = cgroup2_root() else {
            eprintln!("skipping: no cgroup2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified");
            return;
        };
        let nanos = std::time::UNIX_EPOCH
            .elapsed()
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("myrt-test-dev-{}-{nanos}", std::process::id());
        let dir = root.join(&name);
        // no create(): on a hybrid host it would enable controllers in the host's cgroup2 root
        std::fs::create_dir(&dir).unwrap();
        let m = V2Manager::new(PathBuf::from(format!("/{name}")), dir.clone());
        let mut c = Cleanup(&m, None);
        let scratch = tempfile::tempdir().unwrap();
        let restricted = res(r#"{"devices":[{"allow":false,"access":"rwm"},
            {"allow":true,"type":"c","major":1,"minor":3,"access":"rw"},
            {"allow":true,"type":"c","major":1,"minor":5}]}"#);
        m.apply(&restricted).unwrap();
        assert_eq!(bpf::attached(&dir).unwrap().len(), 1);
        let first = bpf::attached(&dir).unwrap();

        let out = probe_devices(&mut c, scratch.path());
        let has = |o: &[String], l: &str| o.iter().any(|x| x == l);
        let eperm = |o: &[String], what: &str| {
            o.iter()
                .any(|x| x.contains(what) && x.contains("Operation not permitted"))
        };
        for ok in [
            "read null ok",
            "read zero ok",
            "write null ok",
            "mknod 1:5 ok",
        ] {
            assert!(has(&out, ok), "{ok:?} missing: {out:?}");
        }
        assert!(!has(&out, "read full ok"), "{out:?}");
        assert!(eperm(&out, "/dev/full"), "c 1:7 must give EPERM: {out:?}");
        assert!(!has(&out, "mknod 1:3 ok"), "{out:?}");
        assert!(eperm(&out, "n3"), "c 1:3 has no m: {out:?}");

        // an update replaces the program (BPF_F_REPLACE), it does not add one
        m.apply(&restricted).unwrap();
        let second = bpf::attached(&dir).unwrap();
        assert_eq!(second.len(), 1);
        assert_ne!(second, first, "a new program replaced the old one");
        // several programs (another runtime's) are all replaced too
        bpf::attach_beside(
            &dir,
            &bpf::device_program(&DevicePolicy::from_rules(&[]).unwrap()),
        )
        .unwrap();
        assert_eq!(bpf::attached(&dir).unwrap().len(), 2);

        m.apply(&res(r#"{"devices":[{"allow":true,"access":"rwm"}]}"#))
            .unwrap();
        assert_eq!(bpf::attached(&dir).unwrap().len(), 1);
        let out = probe_devices(&mut c, scratch.path());
        for ok in [
            "read null ok",
            "read zero ok",
            "read full ok",
            "mknod 1:3 ok",
            "mknod 1:5 ok",
        ] {
            assert!(has(&out, ok), "{ok:?} missing after allow-all: {out:?}");
        }
        drop(c);
        assert!(!dir.exists(), "{} still there", dir.display());
    }
}
