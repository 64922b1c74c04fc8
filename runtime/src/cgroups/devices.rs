//! Device access rules: the v1 `devices.allow`/`devices.deny` format and the default rules
//! runc adds for every container.

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

fn is_all(rule: &LinuxDeviceCgroup) -> bool {
    matches!(rule.typ(), None | Some(LinuxDeviceType::A))
}

/// True when applying `rules` in order leaves every device allowed: the last rule that names
/// all devices allows them and no deny follows it. An empty list restricts nothing either.
pub fn allows_everything(rules: &[LinuxDeviceCgroup]) -> bool {
    match rules.iter().rposition(is_all) {
        None => rules.iter().all(|r| r.allow()),
        Some(i) => rules[i].allow() && rules[i..].iter().all(|r| r.allow()),
    }
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
