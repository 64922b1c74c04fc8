//! A plain directory laid out like resctrl, for hosts without RDT (every host this engine has
//! been tested on). Only what the kernel alone does is imitated here: the files mkdir creates in
//! a new group, and rmdir of a group that holds files. Every other read and write of the module
//! is the same on both; writes never create a file (no O_CREAT), so a file the kernel would
//! have made must exist in the directory too.
//!
//! [`lay_out_root`] writes a resctrl root as an Intel server with CAT, MBA and L3 monitoring on
//! two cache domains shows it; tests remove parts of it to take a capability away.

use std::fs;
use std::io;
use std::path::Path;

/// The events a monitored group reports, when the root lists them in info/L3_MON/mon_features.
const MON_EVENTS: &[&str] = &["llc_occupancy", "mbm_total_bytes", "mbm_local_bytes"];

/// Which kind of group mkdir made: a CTRL_MON group in the root, or a MON group in a
/// `mon_groups` directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Ctrl,
    Mon,
}

/// Writes a resctrl root into the (existing, empty) directory `root`: info/L3, info/MB,
/// info/L3_MON, info/last_cmd_status, the default group's schemata and tasks, mon_groups/ and
/// mon_data/mon_L3_0{0,1}/ with the three monitoring events.
pub fn lay_out_root(root: &Path) -> io::Result<()> {
    let files: &[(&str, &str)] = &[
        ("info/L3/cbm_mask", "fffff\n"),
        ("info/L3/min_cbm_bits", "1\n"),
        ("info/L3/num_closids", "16\n"),
        ("info/L3/shareable_bits", "0\n"),
        ("info/MB/bandwidth_gran", "10\n"),
        ("info/MB/delay_linear", "1\n"),
        ("info/MB/min_bandwidth", "10\n"),
        ("info/MB/num_closids", "8\n"),
        (
            "info/L3_MON/mon_features",
            "llc_occupancy\nmbm_total_bytes\nmbm_local_bytes\n",
        ),
        ("info/L3_MON/num_rmids", "176\n"),
        ("info/L3_MON/max_threshold_occupancy", "1081344\n"),
        ("info/last_cmd_status", "ok\n"),
        ("schemata", "L3:0=fffff;1=fffff\n    MB:0=100;1=100\n"),
        ("tasks", ""),
        ("cpus", "ff\n"),
    ];
    for (path, text) in files {
        let path = root.join(path);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        fs::write(path, text)?;
    }
    fs::create_dir_all(root.join("mon_groups"))?;
    for domain in ["mon_L3_00", "mon_L3_01"] {
        let dir = root.join("mon_data").join(domain);
        fs::create_dir_all(&dir)?;
        for event in MON_EVENTS {
            fs::write(dir.join(event), "0\n")?;
        }
    }
    Ok(())
}

/// Creates the group `<root>/<name>` as a resctrl admin's mkdir would (for tests that join a
/// pre-existing class): the directory and what the kernel puts in it.
pub fn make_group(root: &Path, name: &str) -> io::Result<()> {
    let dir = root.join(name);
    fs::create_dir(&dir)?;
    populate(root, &dir, Kind::Ctrl)
}

/// What the kernel puts into a group it has just created: `schemata` (a new CTRL_MON group
/// starts with the default allocation: the root's lines), `tasks`, and with monitoring
/// `mon_groups/` and `mon_data/` (the root's domains, each event reading 0).
pub(crate) fn populate(root: &Path, group: &Path, kind: Kind) -> io::Result<()> {
    fs::write(group.join("tasks"), "")?;
    if kind == Kind::Ctrl {
        let schemata = fs::read_to_string(root.join("schemata")).unwrap_or_default();
        fs::write(group.join("schemata"), schemata)?;
    }
    let features = fs::read_to_string(root.join("info/L3_MON/mon_features")).unwrap_or_default();
    if features.trim().is_empty() {
        return Ok(());
    }
    if kind == Kind::Ctrl {
        fs::create_dir(group.join("mon_groups"))?;
    }
    let domains = match fs::read_dir(root.join("mon_data")) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for domain in domains {
        let dir = group.join("mon_data").join(domain?.file_name());
        fs::create_dir_all(&dir)?;
        for event in features.split_whitespace() {
            fs::write(dir.join(event), "0\n")?;
        }
    }
    Ok(())
}

/// rmdir of a group: the kernel removes its files with it; a plain directory needs them
/// removed first.
pub(crate) fn remove(group: &Path) -> io::Result<()> {
    fs::remove_dir_all(group)
}
