//! Parsers for /proc/self/mountinfo (where each hierarchy is mounted) and /proc/self/cgroup
//! (this process' own cgroup in each).

use std::collections::HashMap;
use std::path::PathBuf;

/// Controllers a v1 `cgroup` mount may carry in its super options (other options such as
/// "rw", "clone_children" or "name=systemd" are not controllers).
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum MountKind {
    /// A v1 hierarchy with its controllers ("cpu,cpuacct" mounted together gives both).
    V1(Vec<String>),
    V2,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CgroupMount {
    pub mountpoint: PathBuf,
    /// The cgroup shown at the mountpoint ("/" unless a subtree was bind-mounted).
    pub root: String,
    pub kind: MountKind,
}

/// The cgroup mounts, in mountinfo order. A named v1 hierarchy (name=systemd) counts with its
/// name as its one "controller": runc joins it too, and a container left in its root would make
/// CRIU dump the host's whole hierarchy. Other v1 mounts without a known controller are left
/// out. Malformed lines are skipped.
pub(super) fn parse_mountinfo(text: &str) -> Vec<CgroupMount> {
    crate::utils::mountinfo::parse(text)
        .into_iter()
        .filter_map(|m| {
            let kind = match m.fs_type.as_str() {
                "cgroup2" => MountKind::V2,
                "cgroup" => {
                    let c: Vec<String> = m
                        .super_options
                        .iter()
                        .filter(|o| V1_CONTROLLERS.contains(&o.as_str()) || o.starts_with("name="))
                        .cloned()
                        .collect();
                    if c.is_empty() {
                        return None;
                    }
                    MountKind::V1(c)
                }
                _ => return None,
            };
            Some(CgroupMount {
                mountpoint: m.mount_point,
                root: m.root.to_string_lossy().into_owned(),
                kind,
            })
        })
        .collect()
}

/// controller -> cgroup path from /proc/self/cgroup ("4:memory:/a" or "2:cpu,cpuacct:/b");
/// the v2 line "0::/c" gives the key "".
pub(super) fn parse_proc_cgroup(text: &str) -> HashMap<String, String> {
    let mut own = HashMap::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if ctrls.is_empty() {
            own.insert(String::new(), path.to_string());
        }
        for c in ctrls.split(',').filter(|c| !c.is_empty()) {
            own.insert(c.to_string(), path.to_string());
        }
    }
    own
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This development host: v1 controllers plus a cgroup2 mount holding only hugetlb.
    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 31 0:39 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct,clone_children
43 22 0:40 /docker/abc /mnt/my\\040cg rw - cgroup cgroup rw,pids
";
    const PURE_V2: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    #[test]
    fn cgroups_mountinfo_hybrid() {
        let m = parse_mountinfo(HYBRID);
        let v1 = |c: &[&str]| MountKind::V1(c.iter().map(|s| s.to_string()).collect());
        assert_eq!(m.len(), 6, "{m:?}");
        assert_eq!(m[0].mountpoint, PathBuf::from("/sys/fs/cgroup/cpu"));
        assert_eq!(m[0].kind, v1(&["cpu"]));
        assert_eq!(m[2].kind, v1(&["name=systemd"]));
        assert_eq!(m[3].kind, MountKind::V2);
        assert_eq!(m[4].kind, v1(&["cpu", "cpuacct"]));
        assert_eq!(m[5].mountpoint, PathBuf::from("/mnt/my cg"));
        assert_eq!(m[5].root, "/docker/abc");
    }

    #[test]
    fn cgroups_mountinfo_pure_v2() {
        let m = parse_mountinfo(PURE_V2);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].kind, MountKind::V2);
        assert_eq!(m[0].mountpoint, PathBuf::from("/sys/fs/cgroup"));
        assert_eq!(m[0].root, "/");
        assert!(parse_mountinfo("garbage\n1 2 3\n").is_empty());
    }

    #[test]
    fn cgroups_proc_self_cgroup() {
        let own = parse_proc_cgroup("9:name=systemd:/\n2:cpu,cpuacct:/a/b\n0::/user.slice\n");
        assert_eq!(own["cpu"], "/a/b");
        assert_eq!(own["cpuacct"], "/a/b");
        assert_eq!(own["name=systemd"], "/");
        assert_eq!(own[""], "/user.slice");
    }
}
