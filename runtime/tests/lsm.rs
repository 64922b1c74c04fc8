//! AppArmor and SELinux through the engine: on a host with AppArmor a profile loaded with
//! apparmor_parser confines the container (its /proc/self/attr/current, a denied path); on a
//! host without the LSM the fields are refused naming field and value, as runc fails on them.
//! Each test runs as root in its own mount + pid namespace (see common::isolate).
//!
//! The AppArmor test needs AppArmor enabled and `apparmor_parser` (Debian package apparmor);
//! it skips loudly elsewhere. It runs in the QEMU guest (Debian's 6.1 kernel):
//!   cargo test -p myrt-runtime --test lsm --no-run   # on the host, then in the guest:
//!   /work/shared/vm/vm-run.sh 'target/debug/deps/lsm-<hash> --test-threads=1'

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::{isolate, Env};
use myrt_runtime::setup::lsm::HostLsm;
use serde_json::json;

/// Mounts securityfs where a minimal init left it out (the guest), inside the test's private
/// mount namespace, so the engine (and apparmor_parser) can see AppArmor.
fn ensure_securityfs() {
    let sec = Path::new("/sys/kernel/security");
    if Path::new("/sys/module/apparmor").exists() && !sec.join("apparmor").exists() {
        let r = nix::mount::mount(
            Some("securityfs"),
            sec,
            Some("securityfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        );
        if let Err(e) = r {
            eprintln!("!!! mount securityfs on {}: {e}", sec.display());
        }
    }
}

fn apparmor_parser() -> Option<&'static str> {
    ["/usr/sbin/apparmor_parser", "/sbin/apparmor_parser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// Loads (or, with `remove`, unloads) a profile file; returns apparmor_parser's complaint.
fn parser(args: &[&str], file: &Path) -> Result<(), String> {
    let bin = apparmor_parser().ok_or("apparmor_parser not installed")?;
    let out = Command::new(bin)
        .args(args)
        .arg(file)
        .output()
        .map_err(|e| format!("run {bin}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn lsm_fields_are_refused_where_the_host_lacks_the_lsm() {
    if !isolate() {
        return;
    }
    ensure_securityfs();
    let host = HostLsm::detect();
    let label = "system_u:system_r:container_t:s0:c1,c2";
    let cases = [
        (
            !host.apparmor,
            json!({"process": {"apparmorProfile": "myrt-nope"}}),
            r#"process.apparmorProfile "myrt-nope": AppArmor is not enabled on this host"#,
        ),
        (
            !host.selinux,
            json!({"process": {"selinuxLabel": label}}),
            r#"process.selinuxLabel "system_u:system_r:container_t:s0:c1,c2": SELinux is not enabled"#,
        ),
    ];
    let mut ran = 0;
    for (applies, set, want) in cases {
        if !applies {
            eprintln!("!!! SKIPPED on this host (the LSM is enabled): {want}");
            continue;
        }
        ran += 1;
        let env = Env::new("lsmno", &["true"]);
        env.edit(|c| {
            for (section, fields) in set.as_object().unwrap() {
                for (k, v) in fields.as_object().unwrap() {
                    c[section][k] = v.clone();
                }
            }
        });
        let err = env.fails(&["create", "--bundle", env.bundle_str(), &env.id]);
        assert!(err.contains(want), "expected {want:?} in: {err}");
        env.assert_gone();
    }
    if !host.apparmor {
        // An exec'd process with a profile fails too, naming the field.
        let env = Env::new("lsmexec", &["sleep", "1000"]);
        env.create(&[]);
        let err = env.fails(&["exec", "--apparmor", "myrt-nope", &env.id, "true"]);
        assert!(
            err.contains(r#"process.apparmorProfile "myrt-nope": write /proc/thread-self/attr/"#),
            "{err}"
        );
        env.ok(&["delete", "--force", &env.id]);
        env.assert_gone();
    }
    if !host.selinux {
        // A mount label only labels files, which confines nothing without SELinux: ignored,
        // and no context= reaches the kernel (it would refuse the mount).
        let env = Env::new("lsmmnt", &["sh", "-c", "grep ' /dev ' /proc/self/mounts"]);
        env.edit(|c| {
            c["linux"]["mountLabel"] = json!("system_u:object_r:container_file_t:s0");
        });
        let out = env.run(&[]);
        assert_eq!(out.code(), Some(0), "{out:?}");
        assert!(
            out.stdout.contains("tmpfs") && !out.stdout.contains("context="),
            "{out:?}"
        );
        env.assert_gone();
        ran += 1;
    }
    eprintln!("{ran} refusal case(s) ran");
}

#[test]
fn apparmor_profile_confines_the_container() {
    if !isolate() {
        return;
    }
    ensure_securityfs();
    if !HostLsm::detect().apparmor {
        eprintln!(
            "!!! SKIPPED apparmor_profile_confines_the_container: AppArmor is not enabled on this \
             host (run it in the QEMU guest, see the top of tests/lsm.rs)"
        );
        return;
    }
    let Some(_) = apparmor_parser() else {
        eprintln!("!!! SKIPPED apparmor_profile_confines_the_container: no apparmor_parser (apt-get install apparmor)");
        return;
    };
    let env = Env::new(
        "aa",
        &[
            "sh",
            "-c",
            "cat /proc/self/attr/current | tr -d '\\0\\n'; echo; cat /etc/hostname 2>/dev/null && echo readable || echo denied; echo x > /tmp/x && echo write-ok",
        ],
    );
    let name = format!("myrt-test-{}", std::process::id());
    // "file," allows every file access but the denied one; attach_disconnected because the
    // container's paths are outside the namespace the profile was loaded from.
    let profile = format!(
        "abi <abi/3.0>,\nprofile {name} flags=(attach_disconnected,mediate_deleted) {{\n  \
         file,\n  capability,\n  network,\n  signal,\n  unix,\n  deny /etc/hostname rw,\n}}\n"
    );
    let file = env.path("profile");
    fs::write(&file, profile).expect("write profile");
    parser(&["-r", "-K"], &file).unwrap_or_else(|e| panic!("apparmor_parser -r: {e}"));

    env.edit(|c| c["process"]["apparmorProfile"] = json!(name));
    let out = env.run(&[]);
    let result = (|| {
        if !out.success() {
            return Err(format!("run failed: {out:?}"));
        }
        let want = format!("{name} (enforce)\ndenied\nwrite-ok\n");
        if out.stdout != want {
            return Err(format!("stdout {:?}, want {want:?}", out.stdout));
        }
        Ok(())
    })();
    // exec: the same profile by --apparmor, the field an exec'd process gets it from.
    let exec_env = Env::new("aaexec", &["sleep", "1000"]);
    exec_env.create(&[]);
    let current = exec_env.myrt(&[
        "exec",
        "--apparmor",
        &name,
        &exec_env.id,
        "cat",
        "/proc/self/attr/current",
    ]);
    exec_env.ok(&["delete", "--force", &exec_env.id]);
    let _ = parser(&["-R"], &file);
    result.unwrap();
    assert!(current.success(), "{current:?}");
    assert_eq!(
        current.stdout.trim_end_matches(['\n', '\0']),
        format!("{name} (enforce)")
    );
    env.assert_gone();
    exec_env.assert_gone();
}
