//! User-namespaced pods (Kubernetes `hostUsers: false`) through containerd 2.x's CRI plugin:
//! kubelet sends `userns_options` (mode POD, one uid and one gid mapping) in the sandbox's and
//! every container's namespace options. containerd then
//! - makes the pod's netns inside a user namespace of its own with that mapping and hands the
//!   runtime its path, with a new user namespace for the pause (the engine joins the netns
//!   before it makes the user namespace, as runc does: the path is out of reach after);
//! - labels the snapshot so the overlay snapshotter adds `uidmap=`/`gidmap=` to the rootfs
//!   mounts: the shim id-maps the image's layers (shim/src/rootfs.rs), so the image's root-owned
//!   files are the pod's root's;
//! - gives volumes `uidMappings`/`gidMappings` (id-mapped binds), and first asks the runtime
//!   `-info` whether it supports them (shim/src/info.rs);
//! - binds the sandbox's shm, hosts and resolv.conf from its 0700 state dirs: the engine clones
//!   every bind source before it enters the user namespace.
//!
//! Handler myrt only: runc 1.1.5 (Debian bookworm) has no id-mapped mounts, so containerd refuses
//! its volumes (asserted in `runc_refuses_idmapped_volume`). containerd 1.6/1.7 ignore or
//! refuse userns_options on their own: the tests skip there, loudly.
//!
//! Run as root: `MYRT_CONTAINERD=$(scripts/containerd-versions.sh fetch 2.1) cargo test -p
//! myrt-tests --test cri_userns -- --test-threads=1 --nocapture` after `cargo build -p
//! myrt-shim -p myrt-runtime`.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use myrt_tests::cri::api::{
    IdMapping, LinuxContainerSecurityContext, NamespaceMode, NamespaceOption, UserNamespace,
};
use myrt_tests::cri::{
    container_config, doc_snippet, ns_link, pod_spec, run_pod, setup, setup_with_config_env, sh,
    start_app, status_field, teardown, volume, with_linux, CgroupParent, Cri, Pod,
};
use myrt_tests::{paths, Containerd, IMAGE_REF};

/// The pod's ids on the host: container 0..65535 is host BASE..BASE+65535 (kubelet hands out
/// multiples of 65536 above the node's range).
const BASE: u32 = 65536 * 9;
const SIZE: u32 = 65536;

/// False (after a loud SKIP) where containerd has no user-namespaced pods (before 2.0).
fn supported() -> bool {
    let (major, minor) = paths::containerd_version();
    if major < 2 {
        eprintln!(
            "SKIP: containerd {major}.{minor} has no user-namespaced pods (hostUsers: false needs \
             containerd 2.0+)"
        );
        return false;
    }
    true
}

/// The pod's one mapping line, as kubelet sends it.
fn pod_mapping() -> Vec<IdMapping> {
    vec![IdMapping {
        host_id: BASE,
        container_id: 0,
        length: SIZE,
    }]
}

/// The namespace options kubelet sends for a `hostUsers: false` pod (pod network).
fn userns_options(pid: NamespaceMode) -> NamespaceOption {
    let map = pod_mapping();
    NamespaceOption {
        network: NamespaceMode::Pod as i32,
        pid: pid as i32,
        ipc: NamespaceMode::Pod as i32,
        userns_options: Some(UserNamespace {
            mode: NamespaceMode::Pod as i32,
            uids: map.clone(),
            gids: map,
        }),
        ..Default::default()
    }
}

/// RunPodSandbox of a user-namespaced pod with handler `handler`.
fn run_userns_pod(cri: &Cri, cd: &Containerd, parent: &CgroupParent, handler: &str) -> Pod {
    let mut spec = pod_spec(&format!("userns-{handler}"), cd, parent, NamespaceMode::Pod);
    if let Some(sc) = spec
        .linux
        .as_mut()
        .and_then(|l| l.security_context.as_mut())
    {
        sc.namespace_options = Some(userns_options(NamespaceMode::Pod));
    }
    run_pod(cri, spec, handler)
}

/// The `app` container (a sleep) with `vol` bound at /vol, as kubelet sends it in such a pod:
/// the volume id-mapped with the pod's mapping.
fn app_config(vol: &Path) -> myrt_tests::cri::api::ContainerConfig {
    let mut c = container_config("app", IMAGE_REF, &["/bin/sleep", "1000"], "app.log", &[]);
    c.mounts.push(myrt_tests::cri::api::Mount {
        uid_mappings: pod_mapping(),
        gid_mappings: pod_mapping(),
        ..volume(vol, "/vol", false)
    });
    with_linux(
        c,
        None,
        Some(LinuxContainerSecurityContext {
            namespace_options: Some(userns_options(NamespaceMode::Container)),
            ..Default::default()
        }),
    )
}

/// `/proc/PID/<file>` (uid_map or gid_map) as `(container, host, size)` lines.
fn id_map(pid: u64, file: &str) -> Vec<(u32, u32, u32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/{file}"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/{file}: {e}"));
    text.lines()
        .map(|l| {
            let n: Vec<u32> = l
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            assert_eq!(n.len(), 3, "/proc/{pid}/{file}: {text:?}");
            (n[0], n[1], n[2])
        })
        .collect()
}

/// Each handler's `user_namespaces` feature as CRI's Status reports it to kubelet.
fn userns_features(cri: &Cri) -> Vec<(String, bool)> {
    let st = cri.status().unwrap_or_else(|e| panic!("Status: {e}"));
    let mut v: Vec<(String, bool)> = st
        .runtime_handlers
        .iter()
        .map(|h| {
            let on = h.features.as_ref().is_some_and(|f| f.user_namespaces);
            (h.name.clone(), on)
        })
        .collect();
    v.sort();
    v
}

/// Handler `myrt` with its own runtime type: the pod runs, but containerd asks runc-typed
/// runtimes only for their features, so Status says `user_namespaces: false` for it (kubelet
/// would not send the pod; the CRI plugin itself does not check).
#[test]
fn userns_pod_myrt() {
    if !(myrt_tests::isolate() && supported()) {
        return;
    }
    let (parent, cd, cri) = setup();
    check_userns_pod(&cri, &cd, &parent, None);
}

/// Handler `myrt` as docs/kubernetes.md registers it for such pods (snippet
/// `containerd-2.x-userns`, run as written but for the shim's path and its `Root`): Status
/// says `user_namespaces: true`, runc's options reach the shim (its state is under that
/// `Root`), and the pod runs.
#[test]
fn userns_pod_myrt_docs_config() {
    if !(myrt_tests::isolate() && supported()) {
        return;
    }
    let snippet = doc_snippet("containerd-2.x-userns");
    let shim = paths::bin_dir().join("containerd-shim-myrt-v1");
    for part in [
        "/usr/local/bin/containerd-shim-myrt-v1",
        "/run/containerd/myrt",
    ] {
        assert!(
            snippet.contains(part),
            "the snippet lost {part:?}: {snippet}"
        );
    }
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let section = snippet
        .replace(
            "/usr/local/bin/containerd-shim-myrt-v1",
            &shim.to_string_lossy(),
        )
        .replace("/run/containerd/myrt", &root.path().to_string_lossy());
    let (parent, cd, cri) = setup_with_config_env(&[("MYRT_CRI_MYRT_SECTION", &section)]);
    check_userns_pod(&cri, &cd, &parent, Some(root.path()));
}

/// A `hostUsers: false` pod with handler `myrt`, checked from the host and from inside, then
/// torn down. `runc_type_root`: the handler is runc-typed (docs config) with this `Root`, so
/// Status must advertise user namespaces for it and the pod's state must be under that root.
fn check_userns_pod(
    cri: &Cri,
    cd: &Containerd,
    parent: &CgroupParent,
    runc_type_root: Option<&Path>,
) {
    let advertised = runc_type_root.is_some();
    let features = userns_features(cri);
    // runc 1.1.5 has no id-mapped mounts: never advertised.
    for (name, want) in [("myrt", advertised), ("runc", false)] {
        assert!(
            features.contains(&(name.to_string(), want)),
            "handler {name}: user_namespaces must be {want}: {features:?}"
        );
    }
    let handler = "myrt";
    let pod = run_userns_pod(cri, cd, parent, handler);

    // The pause: a user namespace of its own with the pod's mapping, not the host's.
    for file in ["uid_map", "gid_map"] {
        assert_eq!(
            id_map(pod.pause, file),
            vec![(0, BASE, SIZE)],
            "pause {file}"
        );
    }
    let pod_userns = ns_link(pod.pause, "user");
    assert_ne!(pod_userns, ns_link(std::process::id() as u64, "user"));

    // A volume with a file the host's root owns, and a dir the container will write into.
    let vol = cd.dir().join("share/userns-vol");
    fs::create_dir_all(&vol).unwrap_or_else(|e| panic!("create {}: {e}", vol.display()));
    fs::write(vol.join("from-host"), "host\n").unwrap_or_else(|e| panic!("write: {e}"));

    let (app, app_pid) = start_app(cri, &pod, &app_config(&vol));
    assert_eq!(
        ns_link(app_pid, "user"),
        pod_userns,
        "the app is in the pod's user namespace"
    );
    assert_eq!(ns_link(app_pid, "net"), ns_link(pod.pause, "net"));
    // Its root is BASE on the host.
    let uid = status_field(app_pid, "Uid").unwrap_or_default();
    assert_eq!(
        uid.split_whitespace().next(),
        Some(BASE.to_string().as_str()),
        "the app's real uid on the host: {uid:?}"
    );

    // Inside: root, the same mapping; the image's files (owned by 0 on disk) are root's, since
    // the shim id-mapped its layers; the rootfs and /tmp are writable.
    let r = sh(
        cri,
        &app,
        "id -u; id -g; cat /proc/self/uid_map; stat -c '%u:%g' /bin/busybox /etc; \
         readlink /proc/self/ns/user; echo new > /new-file && stat -c '%u:%g' /new-file",
    );
    let out: Vec<&str> = r.out.lines().map(str::trim).collect();
    assert_eq!(r.code, 0, "{r:?}");
    let want_map = format!("0 {BASE} {SIZE}");
    let map_line: String = out[2].split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(
        (
            out[0],
            out[1],
            map_line.as_str(),
            out[3],
            out[4],
            out[5],
            out[6]
        ),
        (
            "0",
            "0",
            want_map.as_str(),
            "0:0",
            "0:0",
            pod_userns.as_str(),
            "0:0"
        ),
        "{r:?}"
    );

    // The volume is id-mapped too: the host's root-owned file is the pod root's, and what the
    // pod's root writes lands on the host as 0 (what kubelet's volumes expect).
    let r = sh(
        cri,
        &app,
        "stat -c '%u:%g' /vol/from-host && echo pod > /vol/from-pod && cat /vol/from-host",
    );
    assert_eq!((r.code, r.out.as_str()), (0, "0:0\nhost\n"), "{r:?}");
    let meta = fs::metadata(vol.join("from-pod"))
        .unwrap_or_else(|e| panic!("the pod's file on the host: {e}"));
    assert_eq!(
        (meta.uid(), meta.gid()),
        (0, 0),
        "owner of the pod's file on the host"
    );
    // containerd asked for it with uidMappings on the mount (after the shim's -info said yes).
    let config = cd.dir().join(format!(
        "state/io.containerd.runtime.v2.task/k8s.io/{app}/config.json"
    ));
    let spec: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(&config).unwrap_or_else(|e| panic!("read {}: {e}", config.display())),
    )
    .unwrap_or_else(|e| panic!("parse {}: {e}", config.display()));
    let vol_mount = spec["mounts"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["destination"] == "/vol"))
        .unwrap_or_else(|| panic!("no /vol mount in {}", config.display()));
    assert_eq!(
        vol_mount["uidMappings"][0]["hostID"].as_u64(),
        Some(u64::from(BASE)),
        "{vol_mount}"
    );
    // The overlay's helper mount of the id-mapped layers is gone once the rootfs is up.
    assert!(
        !cd.dir()
            .join(format!(
                "state/io.containerd.runtime.v2.task/k8s.io/{app}/idmapped-layers"
            ))
            .exists(),
        "the id-mapped layers' helper dir is left in the bundle"
    );

    if let Some(root) = runc_type_root {
        let state = root.join("k8s.io").join(&pod.id);
        assert!(
            state.is_dir(),
            "the Root option did not reach the shim: no {}",
            state.display()
        );
    }
    teardown(cd, cri, &pod, &[&app]);
}

#[test]
fn runc_refuses_idmapped_volume() {
    if !(myrt_tests::isolate() && supported() && myrt_tests::cri::selected("runc")) {
        return;
    }
    let (parent, cd, cri) = setup();
    let pod = run_userns_pod(&cri, &cd, &parent, "runc");
    let vol = cd.dir().join("share/userns-vol");
    fs::create_dir_all(&vol).unwrap_or_else(|e| panic!("create {}: {e}", vol.display()));
    let id = cri
        .create_container(&pod.id, &app_config(&vol), &pod.config)
        .unwrap_or_else(|e| panic!("CreateContainer: {e}"));
    let err = cri
        .start_container(&id)
        .expect_err("runc 1.1.5 has no id-mapped mounts: containerd must refuse the volume");
    assert!(
        err.message().contains("mountExtensions.idmap"),
        "StartContainer with runc: {err:?}"
    );
    cri.remove_container(&id)
        .unwrap_or_else(|e| panic!("RemoveContainer: {e}"));
    teardown(&cd, &cri, &pod, &[]);
}
