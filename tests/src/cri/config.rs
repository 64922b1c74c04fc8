//! The CRI messages kubelet sends, reduced to what containerd's CRI plugin reads: pod and
//! container configs, volumes, and the CRI log format the containers' output lands in.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use super::api::{
    self, ContainerConfig, ContainerMetadata, ImageSpec, KeyValue, LinuxContainerConfig,
    LinuxContainerResources, LinuxContainerSecurityContext, LinuxPodSandboxConfig,
    LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption, PodSandboxConfig,
    PodSandboxMetadata,
};
use super::CgroupParent;
use crate::Containerd;

/// A pod sandbox config as kubelet sends it, reduced to what the CRI plugin reads.
/// `network`: [`NamespaceMode::Pod`] for a netns of its own (CNI), [`NamespaceMode::Node`] for
/// the host's (here: containerd's) network. The pid namespace is the pod's.
pub fn pod_config(
    name: &str,
    uid: &str,
    log_dir: &Path,
    cgroup_parent: &str,
    network: NamespaceMode,
) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.to_string(),
            uid: uid.to_string(),
            namespace: "default".to_string(),
            attempt: 0,
        }),
        // kubelet sends no hostname for host-network pods: they keep the node's UTS namespace
        // (runc refuses a hostname without a private one).
        hostname: if network == NamespaceMode::Node {
            String::new()
        } else {
            name.to_string()
        },
        log_directory: log_dir.to_string_lossy().into_owned(),
        labels: HashMap::from([("myrt-test".to_string(), name.to_string())]),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.to_string(),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: network as i32,
                    pid: NamespaceMode::Pod as i32,
                    ipc: NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A container config: `image`, `command` (entrypoint replaced), log at `log_path` (relative
/// to the sandbox's log directory), and read-write binds `(host, container)`.
pub fn container_config(
    name: &str,
    image: &str,
    command: &[&str],
    log_path: &str,
    binds: &[(&Path, &str)],
) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.to_string(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: image.to_string(),
            ..Default::default()
        }),
        command: command.iter().map(|s| s.to_string()).collect(),
        envs: vec![KeyValue {
            key: "MYRT_TEST".to_string(),
            value: name.to_string(),
        }],
        // PROPAGATION_PRIVATE is the CRI's zero value: what kubelet sends for a plain bind.
        mounts: binds
            .iter()
            .map(|(host, ctr)| volume(host, ctr, false))
            .collect(),
        log_path: log_path.to_string(),
        ..Default::default()
    }
}

/// One line of a CRI log file: `<RFC3339Nano time> <stdout|stderr> <P|F> <content>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub stream: String,
    /// `P`: a partial line (more follows), `F`: the line ends here.
    pub tag: String,
    pub content: String,
}

/// The lines of a CRI log file; panics on a line that is not in the CRI format.
#[track_caller]
pub fn read_log(path: &Path) -> Vec<LogLine> {
    let raw = fs::read_to_string(path).unwrap_or_default();
    raw.lines()
        .map(|line| {
            let mut parts = line.splitn(4, ' ');
            let (_time, stream, tag) = (parts.next(), parts.next(), parts.next());
            match (stream, tag) {
                (Some(stream @ ("stdout" | "stderr")), Some(tag @ ("P" | "F"))) => LogLine {
                    stream: stream.to_string(),
                    tag: tag.to_string(),
                    content: parts.next().unwrap_or("").to_string(),
                },
                _ => panic!("{}: not a CRI log line: {line:?}", path.display()),
            }
        })
        .collect()
}

/// [`pod_config`] for pod `name` of this test: a uid of its own, the logs in containerd's
/// `pod-logs/` (made by [`setup`](super::setup)), cgroups under `parent`.
pub fn pod_spec(
    name: &str,
    cd: &Containerd,
    parent: &CgroupParent,
    network: NamespaceMode,
) -> PodSandboxConfig {
    pod_config(
        name,
        &format!("uid-{name}-{}", std::process::id()),
        &cd.dir().join("pod-logs"),
        &parent.0,
        network,
    )
}

/// A container config with a Linux section (resources, security context).
pub fn with_linux(
    mut c: ContainerConfig,
    resources: Option<LinuxContainerResources>,
    security: Option<LinuxContainerSecurityContext>,
) -> ContainerConfig {
    c.linux = Some(LinuxContainerConfig {
        resources,
        security_context: security,
    });
    c
}

/// A kubelet-style volume: `host` at `container`, private propagation, read-only or not.
pub fn volume(host: &Path, container: &str, readonly: bool) -> api::Mount {
    api::Mount {
        container_path: container.to_string(),
        host_path: host.to_string_lossy().into_owned(),
        readonly,
        propagation: api::MountPropagation::PropagationPrivate as i32,
        ..Default::default()
    }
}

/// The fenced block of docs/kubernetes.md whose first line is `# myrt-doc-snippet: NAME` (the
/// docs' containerd configs, which the tests run as written).
#[track_caller]
pub fn doc_snippet(name: &str) -> String {
    let path = crate::paths::workspace_dir().join("docs/kubernetes.md");
    let doc = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let marker = format!("# myrt-doc-snippet: {name}");
    let start = doc
        .find(&marker)
        .unwrap_or_else(|| panic!("{} has no snippet {marker:?}", path.display()));
    let body = &doc[start..];
    let end = body
        .find("\n```")
        .unwrap_or_else(|| panic!("snippet {name} is not closed"));
    body[..end].to_string()
}
