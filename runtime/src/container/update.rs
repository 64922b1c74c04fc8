//! `update`: new limits for a live container's cgroup (libcontainer's `Set`, runc's `update`).
//!
//! The request is merged over the container's current resources, as runc merges it into its
//! saved config, so that limits which depend on each other (v1 memory and memory+swap, cpu quota
//! and period) are written together with their current partners. Only what the request carries
//! changes; a zero where runc reads zero as "not given" (memory, cpu and pids numbers, the blkio
//! weight) and an empty cpuset string change nothing. Lists (hugepageLimits, throttles) replace
//! the saved list. Device rules are never rewritten, as runc's update skips them.
//!
//! When the kernel refuses a value, the previous resources are written again (runc does the
//! same) and the error names the field, the value and the file. On success the merged resources
//! are saved into the state directory's config.json, so a later load sees them.

use oci_spec::runtime::{Linux, LinuxResources};
use serde_json::{Map, Value};

use super::{Container, ContainerError, Op, Result, CONFIG_FILE};
use crate::cgroups::CgroupError;

/// (group, key) where 0 means "not given": runc's update and its cgroup drivers skip zero.
const ZERO_IS_UNSET: &[(&str, &str)] = &[
    ("memory", "limit"),
    ("memory", "reservation"),
    ("memory", "swap"),
    ("memory", "kernel"),
    ("memory", "kernelTCP"),
    ("cpu", "shares"),
    ("cpu", "quota"),
    ("cpu", "period"),
    ("cpu", "realtimeRuntime"),
    ("cpu", "realtimePeriod"),
    ("pids", "limit"),
    ("blockIO", "weight"),
];

/// (group, key) where an empty string means "not given".
const EMPTY_IS_UNSET: &[(&str, &str)] = &[("cpu", "cpus"), ("cpu", "mems")];

/// The kernel's own value of a limit the container's config never set: written on rollback when
/// the failed update had set it. Both backends read these the same way (-1 = unlimited / max,
/// 1024 shares = cpu.weight 100, 100 ms = the default CFS period).
const KERNEL_DEFAULTS: &[(&str, &str, i64)] = &[
    ("memory", "limit", -1),
    ("memory", "swap", -1),
    ("pids", "limit", -1),
    ("cpu", "quota", -1),
    ("cpu", "period", 100_000),
    ("cpu", "shares", 1024),
];

impl Container {
    /// Changes the live cgroup's limits to `resources` merged over the current ones (see the
    /// module docs). Allowed while created, running or paused; a paused container stays paused.
    /// On a refused value the previous limits are restored and the error names the field.
    pub fn update(&mut self, resources: &LinuxResources) -> Result<()> {
        self.check(Op::Update)?;
        let current = self
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().clone())
            .unwrap_or_default();
        check_devices(&current, resources)?;
        // The checks create does, so a bad value is named before anything is written.
        crate::cgroups::check_resources(resources)?;
        let merged = merge(&current, resources)?;
        let rollback = rollback_of(&current, &merged)?;
        if let Err(e) = self.cgroup.apply(&without_devices(&merged)) {
            let restored = self.cgroup.apply(&without_devices(&rollback));
            return Err(explain(e, restored).into());
        }
        let mut spec = self.spec.clone();
        match spec.linux_mut() {
            Some(linux) => {
                linux.set_resources(Some(merged));
            }
            None => {
                let mut linux: Linux =
                    serde_json::from_value(Value::Object(Map::new())).map_err(|e| spec_err(&e))?;
                linux.set_resources(Some(merged));
                spec.set_linux(Some(linux));
            }
        }
        let path = self.dir.join(CONFIG_FILE);
        let saved = serde_json::to_vec_pretty(&spec)
            .map_err(|source| ContainerError::Json {
                path: path.clone(),
                source,
            })
            .and_then(|data| super::write_atomic(&path, &data));
        if let Err(e) = saved {
            // The cgroup must not hold limits that a later load would not know about.
            if let Err(r) = self.cgroup.apply(&without_devices(&rollback)) {
                log::error!("container {}: restore limits: {r}", self.state.id);
            }
            return Err(e);
        }
        self.spec = spec;
        log::debug!("container {}: resources updated", self.state.id);
        Ok(())
    }
}

impl Container {
    /// New Intel RDT schemas (`myrt update --l3-cache-schema/--mem-bw-schema`): the given ones
    /// replace those of linux.intelRdt, the schemata of the container's resctrl group are
    /// rewritten and config.json saved. A container without linux.intelRdt gets a group of its
    /// own with every current process moved in, as runc's update does. A class the container
    /// only joined is refused (other containers share it); the kernel's refusal names the value.
    pub fn update_intel_rdt(
        &mut self,
        l3_cache_schema: Option<&str>,
        mem_bw_schema: Option<&str>,
    ) -> Result<()> {
        self.check(Op::Update)?;
        let mut spec = self.spec.clone();
        let mut rdt = spec
            .linux()
            .as_ref()
            .and_then(|l| l.intel_rdt().clone())
            .unwrap_or_default();
        if let Some(s) = l3_cache_schema {
            rdt.set_l3_cache_schema(Some(s.to_string()));
        }
        if let Some(s) = mem_bw_schema {
            rdt.set_mem_bw_schema(Some(s.to_string()));
        }
        let cfg = crate::intelrdt::Config::from_oci(&rdt)?;
        match spec.linux_mut() {
            Some(linux) => {
                linux.set_intel_rdt(Some(rdt));
            }
            None => {
                let mut linux: Linux =
                    serde_json::from_value(Value::Object(Map::new())).map_err(|e| spec_err(&e))?;
                linux.set_intel_rdt(Some(rdt));
                spec.set_linux(Some(linux));
            }
        }
        match &self.state.intel_rdt {
            Some(group) => group.set_schemata(&cfg)?,
            None => {
                // runc moves the init only; every process of the cgroup moves here.
                let pids = self.processes()?;
                let mut group = crate::intelrdt::RdtGroup::plan(&spec, &self.state.id)?
                    .ok_or_else(|| ContainerError::Spec("linux.intelRdt: missing".into()))?;
                let joined = group
                    .setup(&spec)
                    .and_then(|()| pids.iter().try_for_each(|pid| group.add_process(*pid)));
                if let Err(e) = joined {
                    if let Err(r) = group.remove() {
                        log::warn!("container {}: {r}", self.state.id);
                    }
                    return Err(e.into());
                }
                self.state.intel_rdt = Some(group);
                self.save()?;
            }
        }
        let path = self.dir.join(CONFIG_FILE);
        let data = serde_json::to_vec_pretty(&spec).map_err(|source| ContainerError::Json {
            path: path.clone(),
            source,
        })?;
        super::write_atomic(&path, &data)?;
        self.spec = spec;
        log::debug!("container {}: intelRdt updated", self.state.id);
        Ok(())
    }
}

fn spec_err(e: &serde_json::Error) -> ContainerError {
    ContainerError::Spec(format!("linux.resources: {e}"))
}

fn to_value(r: &LinuxResources) -> Result<Value> {
    serde_json::to_value(r).map_err(|e| spec_err(&e))
}

fn from_value(v: Value) -> Result<LinuxResources> {
    serde_json::from_value(v).map_err(|e| spec_err(&e))
}

fn without_devices(r: &LinuxResources) -> LinuxResources {
    let mut r = r.clone();
    r.set_devices(None);
    r
}

/// Device rules can only be repeated (CRI sends the spec's own with every update), not changed:
/// rewriting them on a live container briefly denies every device on v1.
fn check_devices(current: &LinuxResources, update: &LinuxResources) -> Result<()> {
    let Some(new) = update.devices().as_deref().filter(|d| !d.is_empty()) else {
        return Ok(());
    };
    if Some(new) == current.devices().as_deref() {
        return Ok(());
    }
    Err(CgroupError::Unsupported {
        field: "linux.resources.devices".into(),
        reason: "device rules cannot be changed on a live container; leave the field out".into(),
    }
    .into())
}

/// `update` over `current`: the fields `update` gives replace those of `current`, objects are
/// merged key by key, lists and values replaced.
pub(crate) fn merge(current: &LinuxResources, update: &LinuxResources) -> Result<LinuxResources> {
    let mut base = to_value(current)?;
    let mut upd = to_value(update)?;
    drop_unset(&mut upd);
    // checked by check_devices: either absent or the saved rules again
    if let Some(u) = upd.as_object_mut() {
        u.remove("devices");
    }
    // runc: an unlimited memory limit without a swap value lifts the swap limit too
    if let Some(mem) = upd.get_mut("memory").and_then(Value::as_object_mut) {
        if mem.get("limit").and_then(Value::as_i64) == Some(-1) && !mem.contains_key("swap") {
            mem.insert("swap".into(), Value::from(-1));
        }
    }
    deep_merge(&mut base, upd);
    from_value(base)
}

/// Removes the values that mean "not given", then the groups left empty.
fn drop_unset(v: &mut Value) {
    let Some(top) = v.as_object_mut() else { return };
    for (group, key) in ZERO_IS_UNSET {
        if let Some(g) = top.get_mut(*group).and_then(Value::as_object_mut) {
            if g.get(*key)
                .is_some_and(|x| x.as_i64() == Some(0) || x.is_null())
            {
                g.remove(*key);
            }
        }
    }
    for (group, key) in EMPTY_IS_UNSET {
        if let Some(g) = top.get_mut(*group).and_then(Value::as_object_mut) {
            if g.get(*key)
                .is_some_and(|x| x.as_str() == Some("") || x.is_null())
            {
                g.remove(*key);
            }
        }
    }
    top.retain(|_, g| !(g.is_null() || g.as_object().is_some_and(Map::is_empty)));
}

fn deep_merge(base: &mut Value, upd: Value) {
    match (base, upd) {
        (Value::Object(b), Value::Object(u)) => {
            for (k, v) in u {
                match b.get_mut(&k) {
                    Some(slot) if slot.is_object() && v.is_object() => deep_merge(slot, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, u) => *b = u,
    }
}

/// What to write when `merged` fails: `current`, plus the kernel's default for each limit in
/// [`KERNEL_DEFAULTS`] that `merged` sets and `current` never had (writing `current` alone would
/// leave such a limit in force).
pub(crate) fn rollback_of(
    current: &LinuxResources,
    merged: &LinuxResources,
) -> Result<LinuxResources> {
    let mut base = to_value(current)?;
    let merged = to_value(merged)?;
    let Some(top) = base.as_object_mut() else {
        return from_value(base);
    };
    for (group, key, default) in KERNEL_DEFAULTS {
        let set_now = merged.get(*group).and_then(|g| g.get(*key)).is_some();
        let set_before = top.get(*group).and_then(|g| g.get(*key)).is_some();
        if set_now && !set_before {
            let g = top
                .entry(group.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(g) = g.as_object_mut() {
                g.insert(key.to_string(), Value::from(*default));
            }
        }
    }
    from_value(base)
}

/// The OCI field a cgroup file carries out (both hierarchies).
fn field_of(file: &str) -> String {
    let f = match file {
        "memory.limit_in_bytes" | "memory.max" => "memory.limit",
        "memory.memsw.limit_in_bytes" | "memory.swap.max" => "memory.swap",
        "memory.soft_limit_in_bytes" | "memory.low" => "memory.reservation",
        "memory.kmem.tcp.limit_in_bytes" => "memory.kernelTCP",
        "memory.swappiness" => "memory.swappiness",
        "memory.oom_control" => "memory.disableOOMKiller",
        "memory.use_hierarchy" => "memory.useHierarchy",
        "cpuset.cpus" => "cpu.cpus",
        "cpuset.mems" => "cpu.mems",
        "cpu.shares" | "cpu.weight" => "cpu.shares",
        "cpu.cfs_quota_us" | "cpu.max" => "cpu.quota",
        "cpu.cfs_period_us" => "cpu.period",
        "cpu.cfs_burst_us" | "cpu.max.burst" => "cpu.burst",
        "cpu.idle" => "cpu.idle",
        "cpu.rt_period_us" => "cpu.realtimePeriod",
        "cpu.rt_runtime_us" => "cpu.realtimeRuntime",
        "pids.max" => "pids.limit",
        "blkio.weight" | "blkio.bfq.weight" | "io.weight" | "io.bfq.weight" => "blockIO.weight",
        "blkio.leaf_weight" => "blockIO.leafWeight",
        "blkio.weight_device" | "blkio.bfq.weight_device" | "io.bfq.weight_device" => {
            "blockIO.weightDevice"
        }
        "net_cls.classid" => "network.classID",
        "net_prio.ifpriomap" => "network.priorities",
        "rdma.max" => "rdma",
        f if f.starts_with("blkio.throttle.") || f == "io.max" => "blockIO (throttle)",
        f if f.starts_with("hugetlb.") => "hugepageLimits",
        f => return format!("linux.resources ({f})"),
    };
    format!("linux.resources.{f}")
}

/// Why the kernel may have refused `file`, where the errno alone does not say.
fn hint(file: &str, errno: Option<i32>) -> &'static str {
    match (file, errno) {
        ("memory.limit_in_bytes", Some(libc::EBUSY)) => {
            " (the memory in use is above the new limit and the kernel could not reclaim it)"
        }
        ("memory.limit_in_bytes", Some(libc::EINVAL)) => {
            " (above memory+swap: raise linux.resources.memory.swap with it)"
        }
        ("memory.memsw.limit_in_bytes", Some(libc::EINVAL)) => {
            " (memory+swap must be >= the memory limit)"
        }
        ("cpuset.cpus" | "cpuset.mems", Some(libc::EINVAL | libc::ERANGE)) => {
            " (not within the parent cgroup's cpuset, or not online)"
        }
        ("pids.max", Some(libc::EINVAL)) => " (out of range)",
        _ => "",
    }
}

/// The error of a refused update: names the field, the value and the file, and whether the
/// previous limits are back in force.
fn explain(e: CgroupError, restored: std::result::Result<(), CgroupError>) -> CgroupError {
    let after = match &restored {
        Ok(()) => "the previous limits are in force again".to_string(),
        Err(r) => format!("restoring the previous limits failed too: {r}"),
    };
    match e {
        CgroupError::Write {
            path,
            value,
            source,
        } => {
            let file = path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            CgroupError::InvalidValue {
                field: field_of(&file),
                value,
                reason: format!(
                    "the kernel refused it in {}: {source}{}; {after}",
                    path.display(),
                    hint(&file, source.raw_os_error())
                ),
            }
        }
        other => {
            match restored {
                Ok(()) => log::info!("update refused ({other}): {after}"),
                Err(_) => log::error!("update refused ({other}): {after}"),
            }
            other
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    fn json(r: &LinuxResources) -> Value {
        serde_json::to_value(r).unwrap()
    }

    #[test]
    fn update_merges_only_given_fields() {
        let cur = res(r#"{"memory":{"limit":100,"swap":200,"reservation":50},
            "cpu":{"shares":512,"cpus":"0"},"pids":{"limit":10},
            "devices":[{"allow":false,"access":"rwm"}],
            "hugepageLimits":[{"pageSize":"2MB","limit":1}]}"#);
        let m = merge(&cur, &res(r#"{"memory":{"limit":80},"pids":{"limit":5}}"#)).unwrap();
        assert_eq!(
            json(&m),
            json(&res(r#"{"memory":{"limit":80,"swap":200,"reservation":50},
            "cpu":{"shares":512,"cpus":"0"},"pids":{"limit":5},
            "devices":[{"allow":false,"access":"rwm"}],
            "hugepageLimits":[{"pageSize":"2MB","limit":1}]}"#))
        );
        // zero and "" mean "not given" (runc), lists are replaced
        let m = merge(
            &cur,
            &res(
                r#"{"memory":{"limit":0,"swap":0},"cpu":{"shares":0,"cpus":"","mems":""},
                "pids":{"limit":0},"blockIO":{"weight":0},
                "hugepageLimits":[{"pageSize":"1GB","limit":0}]}"#,
            ),
        )
        .unwrap();
        assert_eq!(m.memory().unwrap().limit(), Some(100));
        assert_eq!(m.cpu().as_ref().unwrap().cpus().as_deref(), Some("0"));
        assert_eq!(m.cpu().as_ref().unwrap().mems(), &None);
        assert_eq!(m.pids().unwrap().limit(), 10);
        assert!(m.block_io().is_none(), "{m:?}");
        let h = m.hugepage_limits().as_ref().unwrap();
        assert_eq!((h.len(), h[0].page_size().as_str()), (1, "1GB"));
        // swappiness 0 is a value, not "unset"
        let m = merge(&cur, &res(r#"{"memory":{"swappiness":0}}"#)).unwrap();
        assert_eq!(m.memory().unwrap().swappiness(), Some(0));
    }

    #[test]
    fn update_unlimited_memory_lifts_swap_unless_given() {
        let cur = res(r#"{"memory":{"limit":100,"swap":200}}"#);
        let m = merge(&cur, &res(r#"{"memory":{"limit":-1}}"#)).unwrap();
        assert_eq!(
            (m.memory().unwrap().limit(), m.memory().unwrap().swap()),
            (Some(-1), Some(-1))
        );
        let m = merge(&cur, &res(r#"{"memory":{"limit":-1,"swap":300}}"#)).unwrap();
        assert_eq!(m.memory().unwrap().swap(), Some(300));
        let m = merge(&LinuxResources::default(), &res(r#"{"pids":{"limit":-1}}"#)).unwrap();
        assert_eq!(m.pids().unwrap().limit(), -1);
    }

    #[test]
    fn update_rollback_restores_kernel_defaults_of_new_fields() {
        let cur = res(r#"{"memory":{"limit":100},"cpu":{"quota":5000}}"#);
        let merged = merge(
            &cur,
            &res(r#"{"memory":{"limit":50,"swap":60},"pids":{"limit":3},
                "cpu":{"quota":1000,"period":20000,"shares":2},"blockIO":{"weight":300}}"#),
        )
        .unwrap();
        let back = rollback_of(&cur, &merged).unwrap();
        assert_eq!(
            json(&back),
            json(&res(
                r#"{"memory":{"limit":100,"swap":-1},"pids":{"limit":-1},
                "cpu":{"quota":5000,"period":100000,"shares":1024}}"#
            ))
        );
        // nothing new: the current resources as they are
        let back = rollback_of(&cur, &cur).unwrap();
        assert_eq!(json(&back), json(&cur));
    }

    #[test]
    fn update_devices_can_be_repeated_not_changed() {
        let cur = res(r#"{"devices":[{"allow":false,"access":"rwm"}]}"#);
        check_devices(
            &cur,
            &res(r#"{"devices":[{"allow":false,"access":"rwm"}]}"#),
        )
        .unwrap();
        check_devices(&cur, &res(r#"{"devices":[]}"#)).unwrap();
        check_devices(&cur, &res(r#"{"memory":{"limit":1}}"#)).unwrap();
        let e = check_devices(&cur, &res(r#"{"devices":[{"allow":true,"access":"rwm"}]}"#))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("linux.resources.devices: "), "{e}");
        // the merge never touches the saved rules
        let m = merge(&cur, &res(r#"{"devices":[{"allow":true,"access":"r"}]}"#)).unwrap();
        assert_eq!(json(&m), json(&cur));
    }

    #[test]
    fn update_refusal_names_field_value_and_rollback() {
        let write = |file: &str, errno: i32| CgroupError::Write {
            path: format!("/sys/fs/cgroup/x/c/{file}").into(),
            value: "10485760".into(),
            source: std::io::Error::from_raw_os_error(errno),
        };
        let e = explain(write("memory.limit_in_bytes", libc::EBUSY), Ok(())).to_string();
        assert!(
            e.starts_with("linux.resources.memory.limit: invalid value \"10485760\": ")
                && e.contains("/sys/fs/cgroup/x/c/memory.limit_in_bytes")
                && e.contains("could not reclaim")
                && e.ends_with("the previous limits are in force again"),
            "{e}"
        );
        let e = explain(
            write("cpu.max", libc::EINVAL),
            Err(write("cpu.max", libc::EPERM)),
        );
        let e = e.to_string();
        assert!(
            e.starts_with("linux.resources.cpu.quota: ")
                && e.contains("restoring the previous limits failed too"),
            "{e}"
        );
        assert_eq!(field_of("pids.max"), "linux.resources.pids.limit");
        assert_eq!(
            field_of("hugetlb.2MB.max"),
            "linux.resources.hugepageLimits"
        );
        assert_eq!(field_of("weird"), "linux.resources (weird)");
        // other errors already name their field and stay as they are
        let e = explain(
            CgroupError::Unsupported {
                field: "linux.resources.rdma".into(),
                reason: "x".into(),
            },
            Ok(()),
        );
        assert!(e.is_unsupported());
    }
}
