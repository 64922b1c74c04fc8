//! cgroup v1: one directory per mounted controller (runc's `fs` driver).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxHugepageLimit, LinuxMemory, LinuxNetwork,
    LinuxRdma, LinuxResources, LinuxThrottleDevice,
};

use super::fs::{self, Knob};
use super::{devices, invalid, unsupported};
use super::{CgroupConfig, CgroupError, FreezerState, Hierarchy, Manager};
use crate::Pid;

#[derive(Debug)]
pub struct V1Manager {
    path: PathBuf,
    /// controller -> directory; controllers mounted together share one directory
    dirs: BTreeMap<String, PathBuf>,
}

impl V1Manager {
    pub(super) fn new(path: PathBuf, dirs: BTreeMap<String, PathBuf>) -> V1Manager {
        V1Manager { path, dirs }
    }

    fn knob(&self, controller: &str, field: &'static str) -> Result<Knob<'_>, CgroupError> {
        match self.dirs.get(controller) {
            Some(dir) => Ok(Knob { dir, field }),
            None => Err(unsupported(
                field,
                format!("{controller} controller not mounted"),
            )),
        }
    }

    fn unique_dirs(&self) -> BTreeSet<&Path> {
        self.dirs.values().map(PathBuf::as_path).collect()
    }

    /// The hierarchy pids() reads: pids, else freezer, else the first one.
    fn primary(&self) -> Result<&Path, CgroupError> {
        let dir = ["pids", "freezer"].iter().find_map(|c| self.dirs.get(*c));
        let dir = dir
            .or_else(|| self.dirs.values().next())
            .map(PathBuf::as_path);
        dir.ok_or_else(|| super::invalid_path(self.path.display().to_string(), "no hierarchy"))
    }

    /// mkdir `dir` and any missing parents, copying cpuset.cpus/mems from the parent into each
    /// new level whose value is empty: the kernel refuses tasks in a cpuset without them.
    fn create_cpuset(dir: &Path) -> Result<(), CgroupError> {
        const FILES: [&str; 2] = ["cpuset.cpus", "cpuset.mems"];
        let filled = |d: &Path| {
            FILES
                .iter()
                .all(|f| fs::read_trimmed(&d.join(f)).is_ok_and(|v| !v.is_empty()))
        };
        let mut chain = vec![dir];
        while let Some(parent) = chain.last().and_then(|d| d.parent()) {
            if filled(parent) || parent.exists() && !parent.join(FILES[0]).exists() {
                break;
            }
            chain.push(parent);
        }
        for d in chain.into_iter().rev() {
            fs::mkdir(d)?;
            let Some(parent) = d.parent() else { continue };
            for f in FILES {
                if fs::read_trimmed(&d.join(f))?.is_empty() {
                    fs::write(&d.join(f), &fs::read_trimmed(&parent.join(f))?)?;
                }
            }
        }
        Ok(())
    }

    fn apply_devices(&self, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
        let k = self.knob("devices", "linux.resources.devices")?;
        let lines = rules
            .iter()
            .map(devices::rule_string)
            .collect::<Result<Vec<_>, _>>()?;
        // runc order: deny everything, then each rule in turn. A live update briefly denies
        // all devices; runc avoids that with an emulator, updates here rarely carry devices.
        k.set("devices.deny", "", "a")?;
        for (rule, line) in rules.iter().zip(&lines) {
            k.set(
                if rule.allow() {
                    "devices.allow"
                } else {
                    "devices.deny"
                },
                "",
                line,
            )?;
        }
        Ok(())
    }

    fn apply_memory(&self, m: &LinuxMemory) -> Result<(), CgroupError> {
        let k = self.knob("memory", "linux.resources.memory")?;
        let (limit, mut swap) = (m.limit().unwrap_or(0), m.swap().unwrap_or(0));
        let memsw = "memory.memsw.limit_in_bytes";
        // runc: unlimited memory without a swap value means unlimited swap too
        if limit == -1 && swap == 0 && k.dir.join(memsw).exists() {
            swap = -1;
        }
        if m.check_before_update() == Some(true) {
            k.check_usage("memory.usage_in_bytes", limit)?;
        }
        let set_limit = || {
            k.set_opt(
                "memory.limit_in_bytes",
                "limit",
                Some(limit).filter(|&v| v != 0),
            )
        };
        let set_swap = || k.set_opt(memsw, "swap", Some(swap).filter(|&v| v != 0));
        // memsw must stay >= the limit at every step: when raising, write swap first
        if limit != 0
            && swap != 0
            && (swap == -1 || k.read_u64("memory.limit_in_bytes")? < swap as u64)
        {
            set_swap()?;
            set_limit()?;
        } else {
            set_limit()?;
            set_swap()?;
        }
        k.set_opt("memory.soft_limit_in_bytes", "reservation", m.reservation())?;
        if let Some(v) = m.kernel() {
            // runtime-spec marks it NOT RECOMMENDED, Linux >= 5.16 has no kmem limit; runc 1.1
            // ignores it too.
            log::warn!(
                "linux.resources.memory.kernel={v} ignored: kernel memory limits are deprecated"
            );
        }
        k.set_opt(
            "memory.kmem.tcp.limit_in_bytes",
            "kernelTCP",
            m.kernel_tcp(),
        )?;
        if let Some(v) = m.swappiness().filter(|&v| v > 100) {
            return Err(invalid(k.name("swappiness"), v, "must be 0..=100"));
        }
        k.set_opt("memory.swappiness", "swappiness", m.swappiness())?;
        k.set_opt(
            "memory.oom_control",
            "disableOOMKiller",
            m.disable_oom_killer().map(u8::from),
        )?;
        k.set_opt(
            "memory.use_hierarchy",
            "useHierarchy",
            m.use_hierarchy().map(u8::from),
        )
    }

    fn apply_cpu(&self, c: &LinuxCpu) -> Result<(), CgroupError> {
        if c.cpus().is_some() || c.mems().is_some() {
            let k = self.knob("cpuset", "linux.resources.cpu")?;
            k.set_opt("cpuset.cpus", "cpus", c.cpus().as_ref())?;
            k.set_opt("cpuset.mems", "mems", c.mems().as_ref())?;
        }
        if !cpu_fields_set(c) {
            return Ok(());
        }
        let k = self.knob("cpu", "linux.resources.cpu")?;
        let nonzero = |v: Option<i64>| v.filter(|&v| v != 0);
        // realtime first, as runc does
        k.set_opt(
            "cpu.rt_period_us",
            "realtimePeriod",
            c.realtime_period().filter(|&v| v != 0),
        )?;
        k.set_opt(
            "cpu.rt_runtime_us",
            "realtimeRuntime",
            nonzero(c.realtime_runtime()),
        )?;
        if let Some(shares) = c.shares().filter(|&s| s != 0) {
            k.set("cpu.shares", "shares", shares)?;
            let got = k.read_u64("cpu.shares")?;
            if got != shares {
                let why = format!("the kernel clamped it to {got} (range 2..=262144)");
                return Err(invalid(k.name("shares"), shares, why));
            }
        }
        let quota = nonzero(c.quota());
        if let Some(period) = c.period().filter(|&p| p != 0) {
            match k.set("cpu.cfs_period_us", "period", period) {
                // A shorter period can exceed the parent's quota until the quota is lowered:
                // write the quota, then the period again (runc does the same).
                Err(CgroupError::Write { ref source, .. })
                    if source.raw_os_error() == Some(libc::EINVAL) && quota.is_some() =>
                {
                    k.set_opt("cpu.cfs_quota_us", "quota", quota)?;
                    k.set("cpu.cfs_period_us", "period", period)?;
                }
                other => other?,
            }
        }
        k.set_opt("cpu.cfs_quota_us", "quota", quota)?;
        k.set_opt("cpu.cfs_burst_us", "burst", c.burst())?;
        k.set_opt("cpu.idle", "idle", c.idle())
    }

    fn apply_block_io(&self, b: &LinuxBlockIo) -> Result<(), CgroupError> {
        let k = self.knob("blkio", "linux.resources.blockIO")?;
        // blkio.weight is CFQ's; with BFQ only blkio.bfq.weight exists (runc picks the same)
        let bfq = !k.dir.join("blkio.weight").exists() && k.dir.join("blkio.bfq.weight").exists();
        let p = if bfq { "blkio.bfq." } else { "blkio." };
        k.set_opt(&format!("{p}weight"), "weight", b.weight())?;
        k.set_opt("blkio.leaf_weight", "leafWeight", b.leaf_weight())?;
        for wd in b.weight_device().iter().flatten() {
            let dev = format!("{}:{}", wd.major(), wd.minor());
            let w = wd.weight().map(|w| format!("{dev} {w}"));
            k.set_opt(&format!("{p}weight_device"), "weightDevice", w)?;
            let w = wd.leaf_weight().map(|w| format!("{dev} {w}"));
            k.set_opt("blkio.leaf_weight_device", "weightDevice", w)?;
        }
        for (list, file, sub) in throttles(b) {
            for t in list {
                let line = format!("{}:{} {}", t.major(), t.minor(), t.rate());
                k.set(&format!("blkio.throttle.{file}_device"), sub, line)?;
            }
        }
        Ok(())
    }

    fn apply_network(&self, n: &LinuxNetwork) -> Result<(), CgroupError> {
        if let Some(id) = n.class_id() {
            self.knob("net_cls", "linux.resources.network.classID")?
                .set("net_cls.classid", "", id)?;
        }
        for p in n.priorities().iter().flatten() {
            let k = self.knob("net_prio", "linux.resources.network.priorities")?;
            check_token(&k.name(""), p.name())?;
            k.set(
                "net_prio.ifpriomap",
                "",
                format!("{} {}", p.name(), p.priority()),
            )?;
        }
        Ok(())
    }
}

impl Manager for V1Manager {
    fn hierarchy(&self) -> Hierarchy {
        Hierarchy::V1
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn config(&self) -> CgroupConfig {
        let (hierarchy, path) = (Hierarchy::V1, self.path.display().to_string());
        CgroupConfig {
            hierarchy,
            path,
            dirs: self.dirs.clone(),
        }
    }

    fn create(&self) -> Result<(), CgroupError> {
        for (controller, dir) in &self.dirs {
            if controller == "cpuset" {
                Self::create_cpuset(dir)?;
            } else {
                std::fs::create_dir_all(dir).map_err(|e| fs::io_err("mkdir", dir, e))?;
            }
        }
        Ok(())
    }

    fn add_task(&self, pid: Pid) -> Result<(), CgroupError> {
        for dir in self.unique_dirs() {
            fs::write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    fn apply(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
            let why = "needs cgroup v2; this host runs cgroup v1";
            return Err(unsupported("linux.resources.unified", why));
        }
        // Refuse before writing anything when a needed controller is missing.
        for (field, controller) in wanted_controllers(r) {
            self.knob(controller, field)?;
        }
        if let Some(d) = r.devices().as_ref().filter(|d| !d.is_empty()) {
            self.apply_devices(d)?;
        }
        if let Some(m) = r.memory() {
            self.apply_memory(m)?;
        }
        if let Some(c) = r.cpu() {
            self.apply_cpu(c)?;
        }
        if let Some(p) = r.pids() {
            let k = self.knob("pids", "linux.resources.pids")?;
            k.set_opt("pids.max", "limit", pids_max(p.limit()))?;
        }
        if let Some(b) = r.block_io() {
            self.apply_block_io(b)?;
        }
        for h in r.hugepage_limits().iter().flatten() {
            let k = self.knob("hugetlb", "linux.resources.hugepageLimits")?;
            k.set(&hugetlb_file(h, "limit_in_bytes")?, "", h.limit())?;
        }
        if let Some(n) = r.network() {
            self.apply_network(n)?;
        }
        for (dev, l) in r.rdma().iter().flatten() {
            let k = self.knob("rdma", "linux.resources.rdma")?;
            k.set_opt("rdma.max", "", rdma_line(dev, l)?)?;
        }
        Ok(())
    }

    fn freeze(&self) -> Result<(), CgroupError> {
        let state = self.knob("freezer", "freezer")?.dir.join("freezer.state");
        let mut tries = 0u32;
        let res = fs::wait_until(&state, "freeze", || {
            tries += 1;
            // As runc: a short thaw now and then lets tasks caught mid-fork settle.
            if tries == 20 {
                tries = 0;
                fs::write(&state, "THAWED")?;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            fs::write(&state, "FROZEN")?;
            let now = fs::read_trimmed(&state)?;
            Ok((now == "FROZEN", now))
        });
        if res.is_err() {
            // never leave a cgroup stuck half-frozen
            let _ = fs::write(&state, "THAWED");
        }
        res
    }

    fn thaw(&self) -> Result<(), CgroupError> {
        let state = self.knob("freezer", "freezer")?.dir.join("freezer.state");
        fs::wait_until(&state, "thaw", || {
            fs::write(&state, "THAWED")?;
            let now = fs::read_trimmed(&state)?;
            Ok((now == "THAWED", now))
        })
    }

    fn freezer_state(&self) -> Result<FreezerState, CgroupError> {
        // Without a freezer hierarchy nothing can be frozen.
        let Some(dir) = self.dirs.get("freezer") else {
            return Ok(FreezerState::Thawed);
        };
        let path = dir.join("freezer.state");
        fs::parse_freezer_state(&path, &fs::read(&path)?)
    }

    fn pids(&self) -> Result<Vec<Pid>, CgroupError> {
        fs::procs_recursive(self.primary()?)
    }

    fn kill_all(&self) -> Result<(), CgroupError> {
        let dir = self.primary()?;
        // Frozen first, so nothing forks between listing and killing.
        let frozen = self.dirs.contains_key("freezer") && dir.exists() && self.freeze().is_ok();
        let killed = self.pids().and_then(|pids| fs::kill_pids(dir, &pids));
        if frozen {
            self.thaw()?;
        }
        killed?;
        fs::wait_empty(dir, || self.pids())
    }

    fn remove(&self) -> Result<(), CgroupError> {
        let mut first_err = None;
        for dir in self.unique_dirs() {
            if let Err(e) = fs::remove_tree(dir) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn exists(&self) -> bool {
        self.unique_dirs().iter().any(|d| d.exists())
    }

    fn stats(&self) -> Result<super::stats::Stats, CgroupError> {
        super::stats::v1(&self.dirs)
    }
}

/// (field, v1 controller) for each resource group that is set.
pub(super) fn wanted_controllers(r: &LinuxResources) -> Vec<(&'static str, &'static str)> {
    let cpu = r.cpu().as_ref();
    let net = r.network().as_ref();
    let table = [
        (
            r.devices().as_ref().is_some_and(|d| !d.is_empty()),
            "linux.resources.devices",
            "devices",
        ),
        (r.memory().is_some(), "linux.resources.memory", "memory"),
        (
            cpu.is_some_and(|c| c.cpus().is_some() || c.mems().is_some()),
            "linux.resources.cpu.cpus",
            "cpuset",
        ),
        (
            cpu.is_some_and(cpu_fields_set),
            "linux.resources.cpu",
            "cpu",
        ),
        (r.pids().is_some(), "linux.resources.pids", "pids"),
        (r.block_io().is_some(), "linux.resources.blockIO", "blkio"),
        (
            r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()),
            "linux.resources.hugepageLimits",
            "hugetlb",
        ),
        (
            r.rdma().as_ref().is_some_and(|h| !h.is_empty()),
            "linux.resources.rdma",
            "rdma",
        ),
        (
            net.is_some_and(|n| n.class_id().is_some()),
            "linux.resources.network.classID",
            "net_cls",
        ),
        (
            net.is_some_and(|n| n.priorities().as_ref().is_some_and(|p| !p.is_empty())),
            "linux.resources.network.priorities",
            "net_prio",
        ),
    ];
    table
        .into_iter()
        .filter(|t| t.0)
        .map(|(_, f, c)| (f, c))
        .collect()
}

/// Whether any field of the cpu controller proper (not cpuset) is set.
pub(super) fn cpu_fields_set(c: &LinuxCpu) -> bool {
    c.shares().is_some()
        || c.quota().is_some()
        || c.period().is_some()
        || c.burst().is_some()
        || c.idle().is_some()
        || c.realtime_period().is_some()
        || c.realtime_runtime().is_some()
}

/// The four throttle lists with their v1 file stem and OCI field name.
pub(super) fn throttles(
    b: &LinuxBlockIo,
) -> [(&[LinuxThrottleDevice], &'static str, &'static str); 4] {
    fn l(v: &Option<Vec<LinuxThrottleDevice>>) -> &[LinuxThrottleDevice] {
        v.as_deref().unwrap_or_default()
    }
    [
        (
            l(b.throttle_read_bps_device()),
            "read_bps",
            "throttleReadBpsDevice",
        ),
        (
            l(b.throttle_write_bps_device()),
            "write_bps",
            "throttleWriteBpsDevice",
        ),
        (
            l(b.throttle_read_iops_device()),
            "read_iops",
            "throttleReadIOPSDevice",
        ),
        (
            l(b.throttle_write_iops_device()),
            "write_iops",
            "throttleWriteIOPSDevice",
        ),
    ]
}

/// pids.max for `linux.resources.pids.limit`: 0 leaves it alone, < 0 is unlimited (runc).
pub(super) fn pids_max(limit: i64) -> Option<String> {
    match limit {
        0 => None,
        l if l < 0 => Some("max".into()),
        l => Some(l.to_string()),
    }
}

/// "hugetlb.2MB.<suffix>"; the page size must look like "2MB" or "1GB" (it becomes a file name).
pub(super) fn hugetlb_file(h: &LinuxHugepageLimit, suffix: &str) -> Result<String, CgroupError> {
    let size = h.page_size();
    let digits = size
        .strip_suffix("KB")
        .or(size.strip_suffix("MB"))
        .or(size.strip_suffix("GB"));
    if !digits.is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit())) {
        let field = "linux.resources.hugepageLimits.pageSize";
        return Err(invalid(field, size, "expected a size like 2MB or 1GB"));
    }
    Ok(format!("hugetlb.{size}.{suffix}"))
}

/// "mlx5_0 hca_handle=2 hca_object=2000" for rdma.max, or None when no limit is given.
pub(super) fn rdma_line(dev: &str, l: &LinuxRdma) -> Result<Option<String>, CgroupError> {
    check_token("linux.resources.rdma", dev)?;
    let handles = l.hca_handles().map(|v| format!(" hca_handle={v}"));
    let objects = l.hca_objects().map(|v| format!(" hca_object={v}"));
    if handles.is_none() && objects.is_none() {
        return Ok(None);
    }
    Ok(Some(format!(
        "{dev}{}{}",
        handles.unwrap_or_default(),
        objects.unwrap_or_default()
    )))
}

/// A name written into a cgroup file must be one token: no spaces, newlines, '=' or '/'.
pub(super) fn check_token(field: &str, name: &str) -> Result<(), CgroupError> {
    if name.is_empty()
        || name
            .chars()
            .any(|c| c.is_whitespace() || c == '=' || c == '/')
    {
        return Err(invalid(field, name, "must be a single word"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A temp dir laid out like cgroupfs v1, holding the files the tests touch.
    fn fake(controllers: &[&str], files: &[(&str, &str)]) -> (tempfile::TempDir, V1Manager) {
        let tmp = tempfile::tempdir().unwrap();
        let mut dirs = BTreeMap::new();
        for c in controllers {
            std::fs::create_dir_all(tmp.path().join(c).join("ctr")).unwrap();
            dirs.insert(c.to_string(), tmp.path().join(c).join("ctr"));
        }
        for (f, v) in files {
            let path = tmp.path().join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, v).unwrap();
        }
        (tmp, V1Manager::new("/ctr".into(), dirs))
    }

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    fn get(tmp: &tempfile::TempDir, f: &str) -> String {
        std::fs::read_to_string(tmp.path().join(f)).unwrap()
    }

    #[test]
    fn cgroups_v1_memory_cpu_pids_files() {
        let unlimited = "9223372036854771712";
        let mut files = vec![
            ("memory/ctr/memory.limit_in_bytes", unlimited),
            ("memory/ctr/memory.memsw.limit_in_bytes", unlimited),
        ];
        for f in [
            "memory/ctr/memory.soft_limit_in_bytes",
            "memory/ctr/memory.swappiness",
            "memory/ctr/memory.oom_control",
            "cpu/ctr/cpu.shares",
            "cpu/ctr/cpu.cfs_period_us",
            "cpu/ctr/cpu.cfs_quota_us",
            "pids/ctr/pids.max",
        ] {
            files.push((f, ""));
        }
        let (tmp, m) = fake(&["memory", "cpu", "pids"], &files);
        m.apply(&res(r#"{"memory":{"limit":104857600,"swap":209715200,"reservation":1000,"swappiness":10,
            "disableOOMKiller":true},"cpu":{"shares":512,"quota":50000,"period":100000},"pids":{"limit":64}}"#))
            .unwrap();
        for (f, v) in [
            ("memory/ctr/memory.limit_in_bytes", "104857600"),
            ("memory/ctr/memory.memsw.limit_in_bytes", "209715200"),
            ("memory/ctr/memory.soft_limit_in_bytes", "1000"),
            ("memory/ctr/memory.swappiness", "10"),
            ("memory/ctr/memory.oom_control", "1"),
            ("cpu/ctr/cpu.shares", "512"),
            ("cpu/ctr/cpu.cfs_quota_us", "50000"),
            ("cpu/ctr/cpu.cfs_period_us", "100000"),
            ("pids/ctr/pids.max", "64"),
        ] {
            assert_eq!(get(&tmp, f), v, "{f}");
        }
        // unlimited memory without swap means unlimited swap too (runc)
        m.apply(&res(r#"{"memory":{"limit":-1},"pids":{"limit":-1}}"#))
            .unwrap();
        assert_eq!(get(&tmp, "memory/ctr/memory.memsw.limit_in_bytes"), "-1");
        assert_eq!(get(&tmp, "pids/ctr/pids.max"), "max");
        let e = m
            .apply(&res(r#"{"memory":{"swappiness":101}}"#))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("linux.resources.memory.swappiness") && e.contains("101"),
            "{e}"
        );
        let e = m
            .apply(&res(r#"{"memory":{"kernelTCP":1}}"#))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("kernelTCP") && e.contains("memory.kmem.tcp.limit_in_bytes"),
            "{e}"
        );
    }

    #[test]
    fn cgroups_v1_missing_controller_names_field() {
        let (_tmp, m) = fake(&["memory"], &[]);
        let e = m
            .apply(&res(r#"{"hugepageLimits":[{"pageSize":"2MB","limit":1}]}"#))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.resources.hugepageLimits: hugetlb controller not mounted"
        );
        assert!(e.is_unsupported());
        let e = m
            .apply(&res(r#"{"unified":{"memory.high":"1"}}"#))
            .unwrap_err();
        assert!(
            e.to_string().starts_with("linux.resources.unified: "),
            "{e}"
        );
        let e = m.apply(&res(r#"{"network":{"classID":1}}"#)).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("linux.resources.network.classID: "),
            "{e}"
        );
    }

    #[test]
    fn cgroups_v1_devices_deny_all_then_rules() {
        let files = [
            ("devices/ctr/devices.allow", ""),
            ("devices/ctr/devices.deny", ""),
        ];
        let (tmp, m) = fake(&["devices"], &files);
        m.apply(&res(r#"{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rw"}]}"#))
            .unwrap();
        // each write replaces a plain file's content: the last write to each file remains
        assert_eq!(get(&tmp, "devices/ctr/devices.deny"), "a *:* rwm");
        assert_eq!(get(&tmp, "devices/ctr/devices.allow"), "c 1:3 rw");
    }

    #[test]
    fn cgroups_v1_cpuset_copied_from_parent() {
        let files = [
            ("cpuset/cpuset.cpus", "0-3\n"),
            ("cpuset/cpuset.mems", "0\n"),
        ];
        let (tmp, _m) = fake(&[], &files);
        // plain dirs lack cgroupfs' auto-created files: pre-create them empty
        for d in ["cpuset/a", "cpuset/a/b"] {
            std::fs::create_dir_all(tmp.path().join(d)).unwrap();
            std::fs::write(tmp.path().join(d).join("cpuset.cpus"), "").unwrap();
            std::fs::write(tmp.path().join(d).join("cpuset.mems"), "\n").unwrap();
        }
        V1Manager::create_cpuset(&tmp.path().join("cpuset/a/b")).unwrap();
        assert_eq!(get(&tmp, "cpuset/a/cpuset.cpus"), "0-3");
        assert_eq!(get(&tmp, "cpuset/a/b/cpuset.cpus"), "0-3");
        assert_eq!(get(&tmp, "cpuset/a/b/cpuset.mems"), "0");
    }

    #[test]
    fn cgroups_v1_helpers() {
        let h = |s: &str| serde_json::from_str::<LinuxHugepageLimit>(s).unwrap();
        assert_eq!(
            hugetlb_file(&h(r#"{"pageSize":"2MB","limit":1}"#), "max").unwrap(),
            "hugetlb.2MB.max"
        );
        assert!(hugetlb_file(&h(r#"{"pageSize":"../xMB","limit":1}"#), "max").is_err());
        let r: LinuxRdma = serde_json::from_str(r#"{"hcaHandles":2}"#).unwrap();
        assert_eq!(
            rdma_line("mlx5_0", &r).unwrap().unwrap(),
            "mlx5_0 hca_handle=2"
        );
        assert!(rdma_line("a b", &r).is_err());
        assert_eq!(pids_max(0), None);
    }
}
