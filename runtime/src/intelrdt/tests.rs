//! The module against a directory laid out like resctrl ([`lay_out_root`]): no host here has
//! RDT hardware, so the kernel's side (mkdir filling a group, rmdir of a populated group) is the
//! emulation's; everything else is the code that runs on a real resctrl mount.

use std::fs;
use std::path::PathBuf;

use oci_spec::runtime::{LinuxIntelRdt, Spec};
use serde_json::{json, Value};

use super::schema::mismatch;
use super::*;
use crate::utils::{mountinfo, Pid};

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("resctrl");
        fs::create_dir(&root).unwrap();
        lay_out_root(&root).unwrap();
        Fixture { _dir: dir, root }
    }

    fn rs(&self) -> Resctrl {
        Resctrl::at(self.root.clone())
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.root.join(rel)).unwrap()
    }

    fn write(&self, rel: &str, text: &str) {
        fs::write(self.root.join(rel), text).unwrap()
    }
}

/// linux.intelRdt as oci-spec 0.9 (de)serializes it (enableCmt, enableMbm).
fn rdt(v: Value) -> LinuxIntelRdt {
    serde_json::from_value(v).unwrap()
}

fn cfg(v: Value) -> Config {
    Config::from_oci(&rdt(v)).unwrap()
}

fn cfg_err(v: Value) -> String {
    Config::from_oci(&rdt(v)).unwrap_err().to_string()
}

fn spec_with(v: Value) -> Spec {
    serde_json::from_value(json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "linux": {"intelRdt": v}
    }))
    .unwrap()
}

/// Places and sets up the group for `v` as create does; the group also when that failed (it
/// records what was created).
fn try_setup(fx: &Fixture, v: Value, id: &str) -> (RdtGroup, std::result::Result<(), String>) {
    let c = cfg(v.clone());
    let mut g = RdtGroup::place(&fx.rs(), &c, id);
    let res = fx.rs().check(&c).and_then(|()| g.setup(&spec_with(v)));
    (g, res.map_err(|e| e.to_string()))
}

#[track_caller]
fn setup(fx: &Fixture, v: Value, id: &str) -> RdtGroup {
    let (g, res) = try_setup(fx, v, id);
    if let Err(e) = res {
        panic!("setup failed: {e}");
    }
    g
}

#[track_caller]
fn setup_err(fx: &Fixture, v: Value, id: &str) -> (RdtGroup, String) {
    let (g, res) = try_setup(fx, v, id);
    match res {
        Ok(()) => panic!("setup succeeded: {g:?}"),
        Err(e) => (g, e),
    }
}

fn me() -> Pid {
    Pid::this()
}

#[test]
fn schemas_are_checked_for_form_and_named_in_errors() {
    let c = cfg(
        json!({"closID": "gold", "l3CacheSchema": "L3:0=00FF;1=0x0f",
        "memBwSchema": "  MB:0=70;1=50  ", "enableCmt": true}),
    );
    assert_eq!(c.clos_id.as_deref(), Some("gold"));
    assert_eq!(c.l3_cache_schema.as_deref(), Some("L3:0=00FF;1=0x0f"));
    assert_eq!(c.mem_bw_schema.as_deref(), Some("MB:0=70;1=50"));
    assert_eq!(
        c.schemata().as_deref(),
        Some("L3:0=00FF;1=0x0f\nMB:0=70;1=50\n")
    );
    assert!(c.enable_cmt && !c.enable_mbm && c.has_schema() && c.monitoring());
    // CDP: two L3 lines of their own resources in one field
    let c = cfg(json!({"l3CacheSchema": "L3CODE:0=f0\nL3DATA:0=0f"}));
    assert_eq!(c.schemata().as_deref(), Some("L3CODE:0=f0\nL3DATA:0=0f\n"));
    // empty strings are unset (Go's omitempty)
    let c = cfg(json!({"closID": "", "l3CacheSchema": "", "memBwSchema": ""}));
    assert_eq!(c, Config::default());
    assert_eq!(c.schemata(), None);

    let e = cfg_err(json!({"l3CacheSchema": "L3:0=zz"}));
    assert!(
        e.starts_with("linux.intelRdt.l3CacheSchema \"L3:0=zz\": line \"L3:0=zz\": ")
            && e.contains("not hexadecimal"),
        "{e}"
    );
    let e = cfg_err(json!({"memBwSchema": "L3:0=ff"}));
    assert!(
        e.starts_with("linux.intelRdt.memBwSchema \"L3:0=ff\": ") && e.contains("MB: lines only"),
        "{e}"
    );
    let e = cfg_err(json!({"memBwSchema": "MB:0=7f"}));
    assert!(e.contains("not a decimal number"), "{e}");
    let e = cfg_err(json!({"l3CacheSchema": "0=ff"}));
    assert!(e.contains("no ':'"), "{e}");
    let e = cfg_err(json!({"l3CacheSchema": "L3:x=ff"}));
    assert!(e.contains("cache id \"x\""), "{e}");
    let e = cfg_err(json!({"l3CacheSchema": "L3:0=ff\nL3:1=ff"}));
    assert!(e.contains("two L3: lines"), "{e}");
    let e = cfg_err(json!({"l3CacheSchema": "L3:0=ff;0=f"}));
    assert!(e.contains("cache id 0 given twice"), "{e}");
    let e = cfg_err(json!({"l3CacheSchema": "L3:"}));
    assert!(e.contains("no <cache id>=<value>"), "{e}");
    for bad in ["a/b", "..", ".", "info", "mon_groups", "mon_data", "x\ny"] {
        let e = cfg_err(json!({"closID": bad}));
        assert!(e.starts_with("linux.intelRdt.closID "), "{bad}: {e}");
    }
}

#[test]
fn raw_config_flags_and_unknown_keys() {
    let raw =
        json!({"linux": {"intelRdt": {"closID": "c", "enableCMT": true, "enableMBM": false}}});
    let mut spec: Spec = serde_json::from_value(json!({"ociVersion": "1.0.2",
        "linux": raw["linux"].clone()}))
    .unwrap();
    // oci-spec misses the capitals: without the fix-up the flags are lost
    let before = spec.linux().as_ref().unwrap().intel_rdt().clone().unwrap();
    assert_eq!(before.enable_cmt(), &None);
    fix_up_spec(&raw, &mut spec).unwrap();
    let c = Config::from_spec(&spec).unwrap().unwrap();
    assert!(c.enable_cmt && !c.enable_mbm);

    for (key, val) in [
        ("schemata", json!(["L3:0=ff"])),
        ("enableMonitoring", json!(true)),
    ] {
        let raw = json!({"linux": {"intelRdt": {key: val}}});
        let e = fix_up_spec(&raw, &mut spec).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "linux.intelRdt.{key}: not supported by this version of myrt"
            )),
            "{e}"
        );
    }
    let raw = json!({"linux": {"intelRdt": {"enableCMT": "yes"}}});
    let e = fix_up_spec(&raw, &mut spec).unwrap_err().to_string();
    assert_eq!(
        e,
        "linux.intelRdt.enableCMT \"\\\"yes\\\"\": must be true or false"
    );
    // nothing to do without linux.intelRdt
    fix_up_spec(&json!({"linux": {}}), &mut spec).unwrap();
}

#[test]
fn locate_reports_a_host_without_resctrl() {
    let none = || Ok(Vec::new());
    let e = Resctrl::locate_with(None, none).unwrap_err().to_string();
    assert_eq!(
        e,
        "linux.intelRdt: this host has no resctrl filesystem mounted (Intel RDT needs a CPU with \
         RDT and \"mount -t resctrl resctrl /sys/fs/resctrl\")"
    );
    let e = Resctrl::locate_with(Some("/nonexistent/resctrl".into()), none)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("linux.intelRdt: this host has no resctrl filesystem mounted")
            && e.ends_with("; MYRT_RESCTRL_ROOT=/nonexistent/resctrl is not a directory"),
        "{e}"
    );
    // an empty variable counts as unset
    let e = Resctrl::locate_with(Some("".into()), none)
        .unwrap_err()
        .to_string();
    assert!(e.ends_with("/sys/fs/resctrl\")"), "{e}");

    let fx = Fixture::new();
    let rs = Resctrl::locate_with(Some(fx.root.clone().into()), none).unwrap();
    assert_eq!((rs.root(), rs.is_kernel()), (fx.root.as_path(), false));
    // a resctrl line in mountinfo whose mount point is not resctrl (covered) is no resctrl
    let line = format!(
        "99 25 0:50 / {} rw,relatime shared:9 - resctrl resctrl rw\n",
        fx.root.display()
    );
    let e = Resctrl::locate_with(None, || Ok(mountinfo::parse(&line)))
        .unwrap_err()
        .to_string();
    assert!(e.contains("another filesystem covers it"), "{e}");
}

#[test]
fn capabilities_missing_on_the_host_name_the_field() {
    let fx = Fixture::new();
    let all = cfg(json!({"l3CacheSchema": "L3:0=ff", "memBwSchema": "MB:0=50",
        "enableCmt": true, "enableMbm": true}));
    fx.rs().check(&all).unwrap();

    fs::remove_dir_all(fx.root.join("info/MB")).unwrap();
    let e = fx.rs().check(&all).unwrap_err().to_string();
    assert!(
        e.starts_with("linux.intelRdt.memBwSchema: this host's resctrl (")
            && e.contains("no memory bandwidth allocation (MBA) for MB lines (no info/MB)"),
        "{e}"
    );
    fs::remove_dir_all(fx.root.join("info/L3")).unwrap();
    let l3 = cfg(json!({"l3CacheSchema": "L3:0=ff"}));
    let e = fx.rs().check(&l3).unwrap_err().to_string();
    assert!(
        e.starts_with("linux.intelRdt.l3CacheSchema: ") && e.contains("(no info/L3)"),
        "{e}"
    );
    // mounted with cdp: the error says which lines to give instead
    fs::create_dir(fx.root.join("info/L3CODE")).unwrap();
    let e = fx.rs().check(&l3).unwrap_err().to_string();
    assert!(e.contains("give L3CODE: and L3DATA: lines instead"), "{e}");
    let e = fx
        .rs()
        .check(&cfg(json!({"l3CacheSchema": "L3CODE:0=f\nL3DATA:0=f"})))
        .unwrap_err()
        .to_string();
    assert!(e.contains("(no info/L3DATA)"), "{e}");

    fx.write("info/L3_MON/mon_features", "mbm_local_bytes\n");
    let cmt = cfg(json!({"enableCmt": true}));
    let e = fx.rs().check(&cmt).unwrap_err().to_string();
    assert!(
        e.starts_with("linux.intelRdt.enableCMT: ") && e.contains("lacks llc_occupancy"),
        "{e}"
    );
    fx.rs().check(&cfg(json!({"enableMbm": true}))).unwrap();
    fs::remove_dir_all(fx.root.join("info/L3_MON")).unwrap();
    let e = fx
        .rs()
        .check(&cfg(json!({"enableMbm": true})))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("linux.intelRdt.enableMBM: ")
            && e.contains("lacks mbm_total_bytes and mbm_local_bytes"),
        "{e}"
    );
}

#[test]
fn a_new_class_is_created_written_joined_by_tasks_and_removed() {
    let fx = Fixture::new();
    let v =
        json!({"closID": "gold", "l3CacheSchema": "L3:0=ff;1=ff", "memBwSchema": "MB:0=70;1=50"});
    let mut g = setup(&fx, v, "c1");
    assert_eq!(g.path, fx.root.join("gold"));
    assert!(g.created && g.mon_path.is_none() && !g.kernel);
    assert_eq!(fx.read("gold/schemata"), "L3:0=ff;1=ff\nMB:0=70;1=50\n");
    // the state round-trips (it is saved in state.json)
    let saved: RdtGroup = serde_json::from_str(&serde_json::to_string(&g).unwrap()).unwrap();
    assert_eq!(saved, g);

    let child = std::process::Command::new("true").spawn().unwrap();
    let gone = Pid::new(child.id() as i32).unwrap();
    let mut child = child;
    child.wait().unwrap();
    g.add_task(gone).unwrap();
    assert_eq!(fx.read("gold/tasks"), format!("{gone}\n"));
    assert_eq!(fx.read("tasks"), "", "the root's tasks are untouched");
    // the class's tasks are all gone: removed
    g.remove().unwrap();
    assert!(!fx.root.join("gold").exists());
    assert!(!g.created);
    g.remove().unwrap();
}

#[test]
fn a_class_myrt_created_is_kept_while_others_use_it() {
    let fx = Fixture::new();
    let mut g = setup(
        &fx,
        json!({"closID": "shared", "memBwSchema": "MB:0=30"}),
        "c1",
    );
    g.add_task(me()).unwrap(); // a live task (this test), as another container's would be
    g.remove().unwrap();
    assert!(
        fx.root.join("shared/schemata").exists(),
        "removed a class in use"
    );
}

#[test]
fn an_existing_class_is_joined_when_its_schemata_match() {
    let fx = Fixture::new();
    make_group(&fx.root, "silver").unwrap();
    // a new group starts with the root's lines (the emulation copies them)
    assert_eq!(fx.read("silver/schemata"), fx.read("schemata"));
    fx.write(
        "silver/schemata",
        "    L3:0=0ff00;1=fffff\n    MB:0=100;1=100\n",
    );
    let mut g = setup(
        &fx,
        json!({"closID": "silver", "l3CacheSchema": "L3:0=FF00", "memBwSchema": "MB:1=100"}),
        "c1",
    );
    assert!(!g.created);
    assert_eq!(
        fx.read("silver/schemata"),
        "    L3:0=0ff00;1=fffff\n    MB:0=100;1=100\n",
        "a joined class's schemata are not written"
    );
    g.add_task(me()).unwrap();
    assert_eq!(fx.read("silver/tasks"), format!("{}\n", me()));
    g.remove().unwrap();
    assert!(
        fx.root.join("silver").is_dir(),
        "removed a class it only joined"
    );

    // the same class without a schema is joined as it is
    let g = setup(&fx, json!({"closID": "silver"}), "c2");
    assert!(!g.created && g.path == fx.root.join("silver"));
}

#[test]
fn a_class_with_other_schemata_is_refused() {
    let fx = Fixture::new();
    make_group(&fx.root, "bronze").unwrap();
    fx.write("bronze/schemata", "L3:0=f0;1=fffff\nMB:0=100;1=100\n");
    let (g, e) = setup_err(
        &fx,
        json!({"closID": "bronze", "l3CacheSchema": "L3:0=ff"}),
        "c1",
    );
    assert_eq!(
        e,
        format!(
            "linux.intelRdt.closID \"bronze\": the existing group {} does not match the schema \
             given (L3 cache id 0 is f0 there, not ff); its schemata are \
             \"L3:0=f0;1=fffff\\nMB:0=100;1=100\": give matching l3CacheSchema/memBwSchema \
             values, none (to join it as it is), or another closID",
            fx.root.join("bronze").display()
        )
    );
    assert!(!g.created);
    assert_eq!(
        fx.read("bronze/schemata"),
        "L3:0=f0;1=fffff\nMB:0=100;1=100\n"
    );
    let (_, e) = setup_err(
        &fx,
        json!({"closID": "bronze", "l3CacheSchema": "L3:2=ff"}),
        "c1",
    );
    assert!(e.contains("its L3 line has no cache id 2"), "{e}");
    assert_eq!(
        mismatch(
            "MB:0=100\n",
            cfg(json!({"l3CacheSchema": "L3:0=f"})).lines()
        )
        .as_deref(),
        Some("it has no L3 line")
    );
}

#[test]
fn a_class_without_schema_must_exist() {
    let fx = Fixture::new();
    let (g, e) = setup_err(&fx, json!({"closID": "nosuch"}), "c1");
    assert_eq!(
        e,
        format!(
            "linux.intelRdt.closID \"nosuch\": no resctrl group {}; with neither l3CacheSchema \
             nor memBwSchema the group must exist beforehand (create it with mkdir and write \
             its schemata, or give a schema)",
            fx.root.join("nosuch").display()
        )
    );
    assert!(!g.created && !fx.root.join("nosuch").exists());
    // a file of the root is not a group
    let (_, e) = setup_err(
        &fx,
        json!({"closID": "cpus", "memBwSchema": "MB:0=20"}),
        "c1",
    );
    assert!(e.contains("exists but is not a resctrl group"), "{e}");
}

#[test]
fn without_clos_id_the_group_is_named_after_the_container() {
    let fx = Fixture::new();
    let mut g = setup(
        &fx,
        json!({"memBwSchema": "MB:0=20;1=20", "enableCmt": true}),
        "c7",
    );
    // its own CTRL_MON group monitors itself: no MON group
    assert_eq!(
        (g.path.clone(), g.mon_path.clone()),
        (fx.root.join("c7"), None)
    );
    assert_eq!(fx.read("c7/schemata"), "MB:0=20;1=20\n");
    // a leftover of the same name is not silently adopted
    let (g2, e) = setup_err(&fx, json!({"memBwSchema": "MB:0=20"}), "c7");
    assert_eq!(
        e,
        format!(
            "linux.intelRdt: resctrl group {} already exists, though it is named after this \
             container: a leftover of an earlier container with the same id (remove it with \
             rmdir) or someone else's group",
            fx.root.join("c7").display()
        )
    );
    assert!(!g2.created);
    g.remove().unwrap();
    assert!(!fx.root.join("c7").exists());
    // an empty intelRdt still gets a group of its own (OCI: closID defaults to the id)
    let mut g = setup(&fx, json!({}), "c8");
    assert!(g.created && fx.root.join("c8/tasks").is_file());
    g.remove().unwrap();
}

#[test]
fn monitoring_only_uses_a_mon_group_of_the_default_group() {
    let fx = Fixture::new();
    let mut g = setup(&fx, json!({"enableCmt": true, "enableMbm": true}), "m1");
    let mon = fx.root.join("mon_groups/m1");
    assert_eq!(
        (g.path.clone(), g.mon_path.clone()),
        (fx.root.clone(), Some(mon.clone()))
    );
    assert!(!g.created && g.mon_created);
    assert!(
        !mon.join("schemata").exists(),
        "a MON group has no schemata"
    );
    g.add_task(me()).unwrap();
    // first into the parent CTRL_MON group, then the MON group (the kernel's rule)
    assert_eq!(fx.read("tasks"), format!("{}\n", me()));
    assert_eq!(fx.read("mon_groups/m1/tasks"), format!("{}\n", me()));
    fx.write("mon_groups/m1/mon_data/mon_L3_01/llc_occupancy", "4096\n");
    let s = g.stats().unwrap();
    assert_eq!(
        s.cmt_stats
            .as_ref()
            .map(|c| c.iter().map(|x| x.llc_occupancy).collect::<Vec<_>>()),
        Some(vec![0, 4096])
    );
    // a schema cannot be added to the default group
    let e = g
        .set_schemata(&cfg(json!({"memBwSchema": "MB:0=10"})))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "linux.intelRdt: cannot change the schemata of {}: it is the default group",
            fx.root.display()
        )),
        "{e}"
    );
    g.remove().unwrap();
    assert!(!mon.exists() && fx.root.join("schemata").exists());
}

#[test]
fn a_class_with_monitoring_gives_the_container_its_own_mon_group() {
    let fx = Fixture::new();
    make_group(&fx.root, "gold").unwrap();
    let mut g = setup(&fx, json!({"closID": "gold", "enableMbm": true}), "c1");
    let mon = fx.root.join("gold/mon_groups/c1");
    assert_eq!(g.mon_path.as_deref(), Some(mon.as_path()));
    assert!(mon.join("mon_data/mon_L3_00/mbm_total_bytes").is_file());
    g.add_task(me()).unwrap();
    assert_eq!(fx.read("gold/mon_groups/c1/tasks"), format!("{}\n", me()));
    g.remove().unwrap();
    assert!(!mon.exists() && fx.root.join("gold").is_dir());
}

#[test]
fn stats_have_runc_names() {
    let fx = Fixture::new();
    let g = setup(
        &fx,
        json!({"closID": "gold", "l3CacheSchema": "L3:0=ff;1=ff", "memBwSchema": "MB:0=70;1=50"}),
        "c1",
    );
    fx.write("gold/mon_data/mon_L3_00/mbm_total_bytes", "1000\n");
    fx.write("gold/mon_data/mon_L3_00/mbm_local_bytes", "600\n");
    fx.write("gold/mon_data/mon_L3_01/llc_occupancy", "65536\n");
    let s = g.stats().unwrap();
    assert_eq!(
        serde_json::to_value(&s).unwrap(),
        json!({
            "l3_cache_info": {"cbm_mask": "fffff", "min_cbm_bits": 1, "num_closids": 16},
            "l3_cache_schema_root": "L3:0=fffff;1=fffff",
            "l3_cache_schema": "L3:0=ff;1=ff",
            "mem_bw_info": {"bandwidth_gran": 10, "delay_linear": 1, "min_bandwidth": 10,
                "num_closids": 8},
            "mem_bw_schema_root": "MB:0=100;1=100",
            "mem_bw_schema": "MB:0=70;1=50",
            "mbm_stats": [{"mbm_total_bytes": 1000, "mbm_local_bytes": 600},
                {"mbm_total_bytes": 0, "mbm_local_bytes": 0}],
            "cmt_stats": [{"llc_occupancy": 0}, {"llc_occupancy": 65536}]
        })
    );
    // nothing read serializes as runc's empty struct
    assert_eq!(serde_json::to_string(&Stats::default()).unwrap(), "{}");
    // a counter the kernel cannot read yet
    fx.write("gold/mon_data/mon_L3_00/llc_occupancy", "Unavailable\n");
    let e = g.stats().unwrap_err().to_string();
    assert!(e.contains("unexpected content \"Unavailable\""), "{e}");
    // without monitoring on the host, no counters are read
    fs::remove_dir_all(fx.root.join("info/L3_MON")).unwrap();
    let s = g.stats().unwrap();
    assert_eq!((s.mbm_stats, s.cmt_stats), (None, None));
}

#[test]
fn update_rewrites_only_groups_of_the_container() {
    let fx = Fixture::new();
    let g = setup(&fx, json!({"memBwSchema": "MB:0=70"}), "c1");
    g.set_schemata(&cfg(
        json!({"l3CacheSchema": "L3:0=f", "memBwSchema": "MB:0=30"}),
    ))
    .unwrap();
    assert_eq!(fx.read("c1/schemata"), "L3:0=f\nMB:0=30\n");
    // the host check applies to updates too
    fs::remove_dir_all(fx.root.join("info/MB")).unwrap();
    let e = g
        .set_schemata(&cfg(json!({"memBwSchema": "MB:0=30"})))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("linux.intelRdt.memBwSchema: "), "{e}");

    make_group(&fx.root, "joined").unwrap();
    let j = setup(&fx, json!({"closID": "joined"}), "c2");
    let e = j
        .set_schemata(&cfg(json!({"l3CacheSchema": "L3:0=f"})))
        .unwrap_err()
        .to_string();
    assert!(e.contains("it is a class this container joined"), "{e}");
}

#[test]
fn kernel_refusals_name_the_value_and_the_reason() {
    let fx = Fixture::new();
    let g = setup(&fx, json!({"memBwSchema": "MB:0=70"}), "c1");
    // the kernel's files are never created: a missing one is an error, not a new plain file
    fs::remove_file(fx.root.join("c1/tasks")).unwrap();
    let e = g.add_task(me()).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "linux.intelRdt: the kernel refused task \"{}\" in {}: No such file or directory \
             (os error 2)",
            me(),
            fx.root.join("c1/tasks").display()
        )
    );
    assert!(!fx.root.join("c1/tasks").exists());
    // a refused write carries info/last_cmd_status
    fs::remove_file(fx.root.join("c1/schemata")).unwrap();
    fs::create_dir(fx.root.join("c1/schemata")).unwrap();
    fx.write(
        "info/last_cmd_status",
        "Unknown or unsupported domain id 9\n",
    );
    let e = g
        .set_schemata(&cfg(json!({"memBwSchema": "MB:9=30"})))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "linux.intelRdt: the kernel refused schemata \"MB:9=30\" in {}: ",
            fx.root.join("c1/schemata").display()
        )) && e.ends_with("; info/last_cmd_status: \"Unknown or unsupported domain id 9\""),
        "{e}"
    );
}

#[test]
fn a_taken_mon_group_name_is_refused() {
    let fx = Fixture::new();
    make_group(&fx.root, "gold").unwrap();
    fs::create_dir(fx.root.join("gold/mon_groups/c1")).unwrap();
    let (g, e) = setup_err(&fx, json!({"closID": "gold", "enableCmt": true}), "c1");
    assert!(e.contains("gold/mon_groups/c1 already exists"), "{e}");
    assert!(!g.created && !g.mon_created);
}

#[test]
fn the_emulated_mkdir_fills_a_group_like_the_kernel() {
    let fx = Fixture::new();
    make_group(&fx.root, "g").unwrap();
    for f in [
        "g/tasks",
        "g/schemata",
        "g/mon_data/mon_L3_01/mbm_local_bytes",
    ] {
        assert!(fx.root.join(f).is_file(), "{f}");
    }
    assert!(fx.root.join("g/mon_groups").is_dir());
    // without monitoring on the host there is no mon_data
    fs::remove_dir_all(fx.root.join("info/L3_MON")).unwrap();
    make_group(&fx.root, "h").unwrap();
    assert!(!fx.root.join("h/mon_data").exists() && !fx.root.join("h/mon_groups").exists());
}
