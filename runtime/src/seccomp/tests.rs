use super::*;

use crate::setup::testutil::{assert_child_ok, in_child, run_child};

fn profile(json: &str) -> LinuxSeccomp {
    serde_json::from_str(json).unwrap()
}

fn err(json: &str) -> String {
    build(&profile(json)).unwrap_err().to_string()
}

fn fixture(name: &str) -> LinuxSeccomp {
    let path = format!(
        "{}/tests/fixtures/seccomp/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_slice(&data).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn default_profiles_of_docker_and_containerd_build() {
    for name in ["docker-default-amd64.json", "containerd-default-amd64.json"] {
        let p = fixture(name);
        assert!(p.syscalls().as_ref().unwrap()[0].names().len() > 300);
        let f = build(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!f.uses_notify());
        assert!(f.ctx.is_arch_present(ScmpArch::X86).unwrap(), "{name}");
        assert!(f.ctx.is_arch_present(ScmpArch::X32).unwrap(), "{name}");
        assert_eq!(
            f.ctx.get_act_default().unwrap(),
            ScmpAction::Errno(libc::EPERM),
            "{name}"
        );
    }
}

#[test]
fn architectures_are_added() {
    let f = build(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_AARCH64","SCMP_ARCH_ARM"],
            "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#,
    ))
    .unwrap();
    assert!(f.ctx.is_arch_present(ScmpArch::Aarch64).unwrap());
    assert!(f.ctx.is_arch_present(ScmpArch::Arm).unwrap());
    assert!(!f.ctx.is_arch_present(ScmpArch::S390X).unwrap());
}

#[test]
fn unknown_action_arch_flag_and_op_are_refused_naming_the_value() {
    for (json, want) in [
        (r#"{"defaultAction":"SCMP_ACT_FOO"}"#, "SCMP_ACT_FOO"),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_VAX"]}"#,
            "SCMP_ARCH_VAX",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_FOO"]}"#,
            "SECCOMP_FILTER_FLAG_FOO",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["kill"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"SCMP_CMP_FOO"}]}]}"#,
            "SCMP_CMP_FOO",
        ),
    ] {
        let e = serde_json::from_str::<LinuxSeccomp>(json)
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{e}");
    }
}

#[test]
fn unknown_names_in_raw_json_name_the_field() {
    let raw = |sc: &str| -> serde_json::Value {
        serde_json::from_str(&format!(r#"{{"linux":{{"seccomp":{sc}}}}}"#)).unwrap()
    };
    for (sc, want) in [
        (
            r#"{"defaultAction":"SCMP_ACT_FOO"}"#,
            r#"linux.seccomp.defaultAction "SCMP_ACT_FOO": unknown action"#,
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86","SCMP_ARCH_VAX"]}"#,
            r#"linux.seccomp.architectures[1] "SCMP_ARCH_VAX": unknown architecture"#,
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_FOO"]}"#,
            r#"linux.seccomp.flags[0] "SECCOMP_FILTER_FLAG_FOO": unknown flag"#,
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["a"],"action":"SCMP_ACT_ALLOW"},{"names":["kill"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"SCMP_CMP_FOO"}]}]}"#,
            r#"linux.seccomp.syscalls[1].args[0].op "SCMP_CMP_FOO": unknown operator"#,
        ),
    ] {
        let e = check_names(&raw(sc)).unwrap_err().to_string();
        assert!(e.starts_with(want), "{e}");
    }
    let docker = serde_json::json!({"linux": {"seccomp": serde_json::to_value(
        fixture("docker-default-amd64.json")).unwrap()}});
    check_names(&docker).unwrap();
}

#[test]
fn out_of_range_values_name_the_field() {
    let e = err(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["kill"],"action":"SCMP_ACT_ERRNO","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
    );
    assert!(
        e.starts_with("linux.seccomp.syscalls[0].args[0].index: 6 is out of range"),
        "{e}"
    );
    let e = err(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["kill"],"action":"SCMP_ACT_ERRNO","errnoRet":70000}]}"#,
    );
    assert!(
        e.starts_with("linux.seccomp.syscalls[0].errnoRet: errno return 70000"),
        "{e}"
    );
    let e = err(r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":65536}"#);
    assert!(e.starts_with("linux.seccomp.defaultErrnoRet"), "{e}");
}

#[test]
fn a_name_unknown_on_every_listed_arch_is_refused_naming_it() {
    let e = err(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
            "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_KILL"},{"names":["rmdir","mkdri"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    assert!(
        e.starts_with(
            r#"linux.seccomp.syscalls[1].names[1] "mkdri": unknown syscall on every architecture"#
        ),
        "{e}"
    );
    // Without architectures: the native one decides.
    let e = err(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["no_such_syscall"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    assert!(e.contains(r#"names[0] "no_such_syscall""#), "{e}");
}

#[test]
fn names_of_other_arches_and_newer_kernels_are_skipped_like_runc() {
    // cacheflush and set_tls are ARM's; statmount and mseal are newer than libseccomp 2.5.4.
    build(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_AARCH64","SCMP_ARCH_ARM"],
            "syscalls":[{"names":["cacheflush","set_tls","statmount","mseal","mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#,
    ))
    .unwrap();
    for name in NEWER_THAN_LIBSECCOMP {
        check_syscall_name(name, &[ScmpArch::Native], "f").unwrap();
    }
}

#[test]
fn every_name_of_the_default_profiles_is_known_on_each_of_their_arches() {
    // The evidence for refusing unknown names: libseccomp knows all of them everywhere.
    for name in ["docker-default-amd64.json", "containerd-default-amd64.json"] {
        let p = fixture(name);
        let archs: Vec<ScmpArch> = p
            .architectures()
            .iter()
            .flatten()
            .map(|a| arch(*a))
            .collect();
        assert_eq!(archs.len(), 3, "{name}");
        for call in p.syscalls().iter().flatten() {
            for n in call.names() {
                for a in &archs {
                    assert!(
                        ScmpSyscall::from_name_by_arch(n, *a).is_ok(),
                        "{name}: {n} unknown on {a:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn notify_rules_are_checked() {
    let e = err(r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#);
    assert!(e.starts_with("linux.seccomp.defaultAction: "), "{e}");
    let e = err(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    );
    assert!(e.starts_with("linux.seccomp.listenerPath: missing"), "{e}");
    let e = err(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/agent.sock","syscalls":[{"names":["mkdir","write"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    );
    assert!(
        e.starts_with(r#"linux.seccomp.syscalls[0].names[1] "write": "#),
        "{e}"
    );
    let f = build(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/agent.sock","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    ))
    .unwrap();
    assert!(f.uses_notify());
}

#[test]
fn flags_known_to_libseccomp_are_set() {
    let f = build(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_TSYNC","SECCOMP_FILTER_FLAG_LOG","SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
            "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#,
    ))
    .unwrap();
    assert!(f.ctx.get_ctl_tsync().unwrap());
    assert!(f.ctx.get_ctl_log().unwrap());
    assert!(f.ctx.get_ctl_ssb().unwrap());
    let waitkill = profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}"#,
    );
    if libseccomp::get_api() >= 7 {
        build(&waitkill).unwrap();
    } else {
        let e = build(&waitkill).unwrap_err().to_string();
        assert!(
            e.starts_with("linux.seccomp.flags[0] SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: "),
            "{e}"
        );
    }
    assert_eq!(
        features::supported_flags().contains(&"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"),
        libseccomp::get_api() >= 7
    );
}

#[test]
fn rule_with_the_default_action_is_skipped() {
    build(&profile(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"},{"names":["getpid"],"action":"SCMP_ACT_ALLOW"}]}"#,
    ))
    .unwrap();
}

/// Loads a filter in a fresh copy of the test binary: errno rules, argument conditions (AND
/// within one rule, OR when two test the same argument) and no_new_privs left alone.
#[test]
fn loaded_filter_applies_errno_and_args_child() {
    if !in_child() {
        assert_child_ok(&run_child(
            module_path!(),
            "loaded_filter_applies_errno_and_args_child",
        ));
        return;
    }
    let f = build(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["getppid"],"action":"SCMP_ACT_ERRNO","errnoRet":38},
            {"names":["personality"],"action":"SCMP_ACT_ERRNO",
             "args":[{"index":0,"value":4660,"op":"SCMP_CMP_EQ"}]},
            {"names":["umask"],"action":"SCMP_ACT_ERRNO",
             "args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"},{"index":0,"value":2,"op":"SCMP_CMP_EQ"}]},
            {"names":["dup3"],"action":"SCMP_ACT_ERRNO",
             "args":[{"index":1,"value":255,"op":"SCMP_CMP_MASKED_EQ","valueTwo":77}]}]}"#,
    ))
    .unwrap();
    // Running as root with CAP_SYS_ADMIN: loading needs no no_new_privs, and sets none.
    assert!(f.load().unwrap().is_none());
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    assert!(status.contains("NoNewPrivs:\t0"), "{status}");
    assert!(status.contains("Seccomp:\t2"), "{status}");
    let errno = || std::io::Error::last_os_error().raw_os_error().unwrap();
    // SAFETY: plain syscalls with integer arguments; failures are the point.
    unsafe {
        assert_eq!(libc::syscall(libc::SYS_getppid), -1);
        assert_eq!(errno(), libc::ENOSYS);
        assert_eq!(libc::personality(0x1234), -1);
        assert_eq!(errno(), libc::EPERM);
        assert_ne!(libc::personality(0xffff_ffff), -1);
        // The two conditions on argument 0 are an OR: umask(1) and umask(2) fail (errno rules
        // make the raw syscall return -1), umask(3) works.
        assert_eq!(libc::syscall(libc::SYS_umask, 1), -1);
        assert_eq!(libc::syscall(libc::SYS_umask, 2), -1);
        assert_ne!(libc::syscall(libc::SYS_umask, 0o22), -1);
        // masked: (newfd & 0xff) == 77 is refused; 78 is not.
        assert_eq!(libc::dup3(0, 77 + 256, 0), -1);
        assert_eq!(errno(), libc::EPERM);
        assert_ne!(libc::dup3(0, 78 + 256, 0), -1);
    }
}
