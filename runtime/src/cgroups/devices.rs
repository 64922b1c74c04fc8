//! Device access rules: the v1 `devices.allow`/`devices.deny` format, the default rules
//! runc adds for every container, and the [`DevicePolicy`] a rule list leaves in force (what
//! the cgroup v2 eBPF program enforces).

use std::collections::BTreeMap;
use std::fmt;

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};

use super::CgroupError;

const FIELD: &str = "linux.resources.devices";

/// The rule as the v1 devices controller reads it: "c 1:3 rwm", "a *:* rwm".
/// An absent access means "rwm", like runc.
pub fn rule_string(rule: &LinuxDeviceCgroup) -> Result<String, CgroupError> {
    let invalid = |reason: &str| CgroupError::InvalidValue {
        field: FIELD.into(),
        value: rule.to_string(),
        reason: reason.into(),
    };
    let typ = match rule.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => 'a',
        LinuxDeviceType::B => 'b',
        LinuxDeviceType::C | LinuxDeviceType::U => 'c',
        LinuxDeviceType::P => return Err(invalid("type p (fifo) has no device cgroup rule")),
    };
    let num = |n: Option<i64>| match n {
        None | Some(-1) => Ok("*".to_string()),
        Some(v) if v >= 0 => Ok(v.to_string()),
        Some(_) => Err(invalid("major and minor must be >= 0")),
    };
    let access = rule
        .access()
        .as_deref()
        .filter(|a| !a.is_empty())
        .unwrap_or("rwm");
    if !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(invalid("access must be made of r, w and m"));
    }
    Ok(format!(
        "{typ} {}:{} {access}",
        num(rule.major())?,
        num(rule.minor())?
    ))
}

/// True when applying `rules` in order leaves every device allowed (see [`DevicePolicy`]).
/// An empty list restricts nothing: both backends then leave the cgroup as it is.
pub fn allows_everything(rules: &[LinuxDeviceCgroup]) -> bool {
    rules.is_empty() || DevicePolicy::from_rules(rules).is_ok_and(|p| p.allows_everything())
}

/// Access bits as the kernel's device hook passes them (`BPF_DEVCG_ACC_*`).
pub const ACC_MKNOD: u8 = 1;
pub const ACC_READ: u8 = 2;
pub const ACC_WRITE: u8 = 4;
pub const ACC_ALL: u8 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// The node types the device controller governs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeviceKind {
    Block,
    Char,
}

/// An exception to the policy's default: the devices it names (`None` = any number) and the
/// accesses it grants (default deny) or takes away (default allow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeviceException {
    pub kind: DeviceKind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u8,
}

impl DeviceException {
    fn key(&self) -> (DeviceKind, Option<u32>, Option<u32>) {
        (self.kind, self.major, self.minor)
    }

    /// Whether the exception names the device (any access).
    pub fn matches(&self, kind: DeviceKind, major: u32, minor: u32) -> bool {
        self.kind == kind
            && self.major.is_none_or(|m| m == major)
            && self.minor.is_none_or(|m| m == minor)
    }
}

impl fmt::Display for DeviceException {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let num = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        let kind = match self.kind {
            DeviceKind::Block => 'b',
            DeviceKind::Char => 'c',
        };
        let access: String = [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')]
            .iter()
            .filter(|(bit, _)| self.access & bit != 0)
            .map(|(_, c)| c)
            .collect();
        let (major, minor) = (num(self.major), num(self.minor));
        write!(f, "{kind} {major}:{minor} {access}")
    }
}

/// What a rule list leaves in force, computed as the v1 device controller does (runc's
/// devices emulator): a rule of type "a" resets everything to allow-all or deny-all; any other
/// rule adds an exception to the default or takes access away from an exception with exactly
/// the same type and numbers. The list starts from deny-all, like the v1 backend, which writes
/// "a" to devices.deny first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePolicy {
    pub default_allow: bool,
    /// Sorted by (type, major, minor); wildcards first. At most one per (type, major, minor).
    pub exceptions: Vec<DeviceException>,
}

impl DevicePolicy {
    pub fn from_rules(rules: &[LinuxDeviceCgroup]) -> Result<DevicePolicy, CgroupError> {
        type Key = (DeviceKind, Option<u32>, Option<u32>);
        let mut default_allow = false;
        let mut map: BTreeMap<Key, u8> = BTreeMap::new();
        for rule in rules {
            let Some(ex) = parse_rule(rule)? else {
                default_allow = rule.allow();
                map.clear();
                continue;
            };
            let key = ex.key();
            if rule.allow() != default_allow {
                *map.entry(key).or_default() |= ex.access;
                continue;
            }
            // v1 silently ignores taking access away from part of a wildcard exception, which
            // would leave the device open while the rule list says otherwise; refuse it (runc).
            let (k, major, minor) = key;
            for wide in [(k, None, minor), (k, major, None), (k, None, None)] {
                let held = map.get(&wide).copied().unwrap_or(0) & ex.access;
                if wide != key && held != 0 {
                    let (kind, major, minor) = wide;
                    let wide = DeviceException {
                        kind,
                        major,
                        minor,
                        access: held,
                    };
                    let reason = format!(
                        "cannot punch a hole in the wildcard rule \"{wide}\" of an earlier rule; \
                         list the devices one by one instead"
                    );
                    return Err(invalid_rule(rule, &reason));
                }
            }
            if let Some(access) = map.get_mut(&key) {
                *access &= !ex.access;
                if *access == 0 {
                    map.remove(&key);
                }
            }
        }
        let exceptions = map
            .into_iter()
            .map(|((kind, major, minor), access)| DeviceException {
                kind,
                major,
                minor,
                access,
            })
            .collect();
        Ok(DevicePolicy {
            default_allow,
            exceptions,
        })
    }

    pub fn allows_everything(&self) -> bool {
        self.default_allow && self.exceptions.is_empty()
    }

    /// The decision for one request, as v1's `devcgroup_legacy_check_permission` makes it:
    /// default deny needs one exception that grants every requested bit; default allow denies
    /// when any exception takes away any requested bit.
    pub fn allows(&self, kind: DeviceKind, major: u32, minor: u32, access: u8) -> bool {
        let mut named = self
            .exceptions
            .iter()
            .filter(|e| e.matches(kind, major, minor));
        if self.default_allow {
            !named.any(|e| e.access & access != 0)
        } else {
            named.any(|e| access & !e.access == 0)
        }
    }
}

fn invalid_rule(rule: &LinuxDeviceCgroup, reason: &str) -> CgroupError {
    CgroupError::InvalidValue {
        field: FIELD.into(),
        value: rule.to_string(),
        reason: reason.into(),
    }
}

/// The rule's exception, or `None` for type "a" (all devices, whatever numbers it names).
fn parse_rule(rule: &LinuxDeviceCgroup) -> Result<Option<DeviceException>, CgroupError> {
    let mut access = 0;
    for c in rule.access().as_deref().unwrap_or_default().chars() {
        access |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => return Err(invalid_rule(rule, "access must be made of r, w and m")),
        };
    }
    let num = |n: Option<i64>| match n {
        None | Some(-1) => Ok(None),
        Some(v) => u32::try_from(v)
            .map(Some)
            .map_err(|_| invalid_rule(rule, "major and minor must be -1 (any) or 0..=4294967295")),
    };
    let (major, minor) = (num(rule.major())?, num(rule.minor())?);
    let kind = match rule.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => return Ok(None),
        LinuxDeviceType::B => DeviceKind::Block,
        LinuxDeviceType::C | LinuxDeviceType::U => DeviceKind::Char,
        LinuxDeviceType::P => {
            return Err(invalid_rule(
                rule,
                "type p (fifo) has no device cgroup rule",
            ))
        }
    };
    Ok(Some(DeviceException {
        kind,
        major,
        minor,
        // an absent or empty access means "rwm", like runc
        access: if access == 0 { ACC_ALL } else { access },
    }))
}

fn rule(
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(true);
    r.set_typ(Some(typ));
    r.set_major(major);
    r.set_minor(minor);
    r.set_access(Some(access.to_string()));
    r
}

/// runc's `AllowedDevices`: mknod of any node, the standard /dev nodes, ptys and tun.
pub fn default_allowed_rules() -> Vec<LinuxDeviceCgroup> {
    use LinuxDeviceType::{B, C};
    vec![
        rule(C, None, None, "m"),
        rule(B, None, None, "m"),
        rule(C, Some(1), Some(3), "rwm"),    // /dev/null
        rule(C, Some(1), Some(8), "rwm"),    // /dev/random
        rule(C, Some(1), Some(7), "rwm"),    // /dev/full
        rule(C, Some(5), Some(0), "rwm"),    // /dev/tty
        rule(C, Some(1), Some(5), "rwm"),    // /dev/zero
        rule(C, Some(1), Some(9), "rwm"),    // /dev/urandom
        rule(C, Some(136), None, "rwm"),     // /dev/pts/*
        rule(C, Some(5), Some(2), "rwm"),    // /dev/ptmx
        rule(C, Some(10), Some(200), "rwm"), // /dev/net/tun
    ]
}

/// The rules to give [`super::Manager::apply`] for a new container, as runc's specconv builds
/// them: the spec's rules in order, then allow rules for each `linux.devices` node, then
/// [`default_allowed_rules`]. Without the defaults, containerd's "deny all" leaves the
/// container without /dev/null.
pub fn rules_with_defaults(
    spec_rules: &[LinuxDeviceCgroup],
    linux_devices: &[LinuxDevice],
) -> Vec<LinuxDeviceCgroup> {
    let mut out = spec_rules.to_vec();
    for d in linux_devices {
        if matches!(d.typ(), LinuxDeviceType::P) {
            continue; // fifos are not governed by the device cgroup
        }
        out.push(rule(d.typ(), Some(d.major()), Some(d.minor()), "rwm"));
    }
    out.extend(default_allowed_rules());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn cgroups_device_rule_strings() {
        let r = parse(
            r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3},
            {"allow":true,"type":"b","major":8,"access":"r"},{"allow":true,"type":"c","major":-1,"minor":-1,"access":"m"}]"#,
        );
        let s: Vec<String> = r.iter().map(|r| rule_string(r).unwrap()).collect();
        assert_eq!(s, ["a *:* rwm", "c 1:3 rwm", "b 8:* r", "c *:* m"]);
        let bad = parse(
            r#"[{"allow":true,"type":"c","major":1,"minor":3,"access":"rwx"},{"allow":true,"type":"p"}]"#,
        );
        for b in &bad {
            let e = rule_string(b).unwrap_err().to_string();
            assert!(e.starts_with("linux.resources.devices"), "{e}");
        }
    }

    #[test]
    fn cgroups_device_allow_everything() {
        let containerd = parse(r#"[{"allow":false,"access":"rwm"}]"#);
        assert!(!allows_everything(&containerd));
        assert!(!allows_everything(&rules_with_defaults(&containerd, &[])));
        assert!(allows_everything(&[]));
        assert!(allows_everything(&parse(
            r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"a"}]"#
        )));
        assert!(!allows_everything(&parse(
            r#"[{"allow":true,"type":"a"},{"allow":false,"type":"c","major":1}]"#
        )));
    }

    fn ex(kind: DeviceKind, major: Option<u32>, minor: Option<u32>, access: u8) -> DeviceException {
        DeviceException {
            kind,
            major,
            minor,
            access,
        }
    }

    #[test]
    fn cgroups_device_policy_like_v1() {
        use DeviceKind::{Block, Char};
        let p = |json: &str| DevicePolicy::from_rules(&parse(json));
        let containerd = parse(r#"[{"allow":false,"access":"rwm"}]"#);
        let full = DevicePolicy::from_rules(&rules_with_defaults(&containerd, &[])).unwrap();
        assert!(!full.default_allow);
        assert_eq!(full.exceptions.len(), default_allowed_rules().len());
        // sorted by type, then numbers, wildcards first
        assert_eq!(full.exceptions[0], ex(Block, None, None, ACC_MKNOD));
        assert_eq!(full.exceptions[1], ex(Char, None, None, ACC_MKNOD));
        assert_eq!(full.exceptions[2], ex(Char, Some(1), Some(3), ACC_ALL));
        assert!(full
            .exceptions
            .contains(&ex(Char, Some(136), None, ACC_ALL)));
        assert_eq!(full.exceptions[1].to_string(), "c *:* m");
        assert_eq!(full.exceptions[2].to_string(), "c 1:3 rwm");

        // an empty list is deny-all here; the backends skip it before asking
        assert_eq!(p("[]").unwrap().exceptions, []);
        assert!(!p("[]").unwrap().default_allow);
        // "a" resets, whatever came before
        let reset =
            p(r#"[{"allow":true,"type":"c","major":1,"minor":3},{"allow":true,"type":"a"}]"#);
        assert!(reset.unwrap().allows_everything());
        // same (type, major, minor): access merges and is taken away bit by bit
        let merged = p(
            r#"[{"allow":true,"type":"c","major":1,"minor":3,"access":"r"},
            {"allow":true,"type":"c","major":1,"minor":3,"access":"w"},
            {"allow":false,"type":"c","major":1,"minor":3,"access":"r"},
            {"allow":false,"type":"c","major":1,"minor":5,"access":"rwm"}]"#,
        )
        .unwrap();
        assert_eq!(merged.exceptions, [ex(Char, Some(1), Some(3), ACC_WRITE)]);
        let gone = p(
            r#"[{"allow":true,"type":"b","major":8,"minor":0,"access":"rw"},
            {"allow":false,"type":"b","major":8,"minor":0,"access":"rwm"}]"#,
        );
        assert_eq!(gone.unwrap().exceptions, []);
        // default allow: deny rules are the exceptions
        let deny = p(r#"[{"allow":true,"type":"a"},{"allow":false,"type":"c","major":1,"minor":7,"access":"w"}]"#)
            .unwrap();
        assert!(deny.default_allow);
        assert_eq!(deny.exceptions, [ex(Char, Some(1), Some(7), ACC_WRITE)]);
    }

    #[test]
    fn cgroups_device_policy_refuses_holes_and_bad_rules() {
        let p = |json: &str| DevicePolicy::from_rules(&parse(json));
        for json in [
            // deny one device of an allowed wildcard: v1 would ignore it and leave 1:3 open
            r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"access":"rw"},
                {"allow":false,"type":"c","major":1,"minor":3,"access":"w"}]"#,
            r#"[{"allow":true,"type":"a"},{"allow":false,"type":"c","access":"m"},
                {"allow":true,"type":"c","major":1,"minor":3,"access":"m"}]"#,
            r#"[{"allow":true,"type":"c","major":-2}]"#,
            r#"[{"allow":true,"type":"c","major":4294967296}]"#,
            r#"[{"allow":true,"type":"c","major":1,"access":"rx"}]"#,
            r#"[{"allow":false,"type":"a","access":"q"}]"#,
            r#"[{"allow":true,"type":"p"}]"#,
        ] {
            let e = p(json).unwrap_err().to_string();
            assert!(
                e.starts_with("linux.resources.devices: invalid value"),
                "{e}"
            );
        }
        let e = p(
            r#"[{"allow":false},{"allow":true,"type":"c","major":1,"access":"rw"},
            {"allow":false,"type":"c","major":1,"minor":3,"access":"w"}]"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("wildcard rule \"c 1:* w\""), "{e}");
        // a disjoint access is no hole: the wildcard grants no m
        assert!(p(
            r#"[{"allow":false},{"allow":true,"type":"c","major":1,"access":"rw"},
            {"allow":false,"type":"c","major":1,"minor":3,"access":"m"}]"#
        )
        .is_ok());
        // 2^32-1 is a valid number (it matches no real device)
        assert!(p(r#"[{"allow":true,"type":"c","major":4294967295,"minor":0}]"#).is_ok());
    }

    #[test]
    fn cgroups_device_policy_decisions_like_the_v1_kernel() {
        use DeviceKind::{Block, Char};
        let rules = parse(
            r#"[{"allow":false},{"allow":true,"type":"c","major":1,"minor":3,"access":"r"},
            {"allow":true,"type":"c","major":1,"access":"w"},{"allow":true,"type":"b","access":"m"}]"#,
        );
        let p = DevicePolicy::from_rules(&rules).unwrap();
        assert!(p.allows(Char, 1, 3, ACC_READ));
        assert!(p.allows(Char, 1, 3, ACC_WRITE));
        // no single exception grants both: v1 denies O_RDWR here
        assert!(!p.allows(Char, 1, 3, ACC_READ | ACC_WRITE));
        assert!(p.allows(Char, 1, 9, ACC_WRITE));
        assert!(!p.allows(Char, 1, 9, ACC_READ));
        assert!(!p.allows(Char, 2, 3, ACC_WRITE));
        assert!(p.allows(Block, 8, 0, ACC_MKNOD));
        assert!(!p.allows(Block, 8, 0, ACC_READ));
        let deny = DevicePolicy::from_rules(&parse(
            r#"[{"allow":true,"type":"a"},{"allow":false,"type":"c","major":1,"minor":7,"access":"w"}]"#,
        ))
        .unwrap();
        assert!(deny.allows(Char, 1, 7, ACC_READ));
        // any overlap with a denied bit denies
        assert!(!deny.allows(Char, 1, 7, ACC_READ | ACC_WRITE));
        assert!(deny.allows(Block, 1, 7, ACC_WRITE));
    }

    #[test]
    fn cgroups_device_defaults_follow_spec_rules() {
        let spec = parse(r#"[{"allow":false,"access":"rwm"}]"#);
        let dev: Vec<LinuxDevice> = serde_json::from_str(
            r#"[{"path":"/dev/fuse","type":"c","major":10,"minor":229},{"path":"/dev/f","type":"p","major":0,"minor":0}]"#,
        )
        .unwrap();
        let all = rules_with_defaults(&spec, &dev);
        assert_eq!(all.len(), 1 + 1 + default_allowed_rules().len());
        assert_eq!(rule_string(&all[0]).unwrap(), "a *:* rwm");
        assert!(!all[0].allow());
        assert_eq!(rule_string(&all[1]).unwrap(), "c 10:229 rwm");
        assert_eq!(rule_string(&all[4]).unwrap(), "c 1:3 rwm");
    }
}
