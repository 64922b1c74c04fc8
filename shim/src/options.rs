//! The runtime options containerd hands to the shim: `containerd.runc.v1.Options` (for runtimes
//! named like runc's) or CRI's generic `runtimeoptions.v1.Options`, whose TOML body (or file)
//! holds myrt's own keys. Everything ends up in one [`ShimOptions`].

use std::path::{Path, PathBuf};

use containerd_shim::protos::protobuf::well_known_types::any::Any;
use myrt_protos::runc::v1::Options as RuncOptions;
use myrt_protos::runtimeoptions::v1::Options as RuntimeOptions;
use myrt_protos::{type_url, Message};
use serde::{Deserialize, Serialize};

/// Where container state lives when no `root` option is given: `<DEFAULT_ROOT>/<namespace>`.
pub const DEFAULT_ROOT: &str = "/run/containerd/myrt";
/// The file in the bundle that keeps the options for the `delete` action.
pub const OPTIONS_FILE: &str = "options.json";
const LOG_LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    #[error("options: cannot decode {type_url}: {source}")]
    Decode {
        type_url: String,
        source: myrt_protos::DecodeError,
    },
    #[error(
        "options: unsupported type {0:?}: expected containerd.runc.v1.Options or \
         runtimeoptions.v1.Options"
    )]
    UnknownType(String),
    #[error("options: {0}")]
    Unsupported(String),
    #[error("options: config_path {path}: {source}")]
    ReadConfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("options: TOML config{}: {message}", at.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Toml {
        at: Option<PathBuf>,
        /// One line: "line L, column C: what is wrong".
        message: String,
    },
    #[error("options: log_level {0:?}: use one of off, error, warn, info, debug, trace")]
    LogLevel(String),
    #[error("options: {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("options: {path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
}

pub type Result<T> = std::result::Result<T, OptionsError>;

/// What the shim takes from the options, whichever message carried them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimOptions {
    /// Move the root with MS_MOVE instead of pivot_root (for ramdisk roots).
    pub no_pivot_root: bool,
    /// A cgroup (path relative to the hierarchy roots) to put the shim process in.
    pub shim_cgroup: Option<String>,
    /// The engine's state root; `<DEFAULT_ROOT>/<namespace>` when absent.
    pub root: Option<PathBuf>,
    /// The shim's log level (`RUST_LOG` still wins).
    pub log_level: Option<String>,
    /// Owner of the stdio pipes given to the container.
    pub io_uid: Option<u32>,
    pub io_gid: Option<u32>,
    /// The CRIU binary for checkpoint/restore; `criu` from PATH when absent.
    #[serde(default)]
    pub criu_path: Option<PathBuf>,
    /// Where a checkpoint writes (instead of containerd's temp dir) and a restore reads images.
    #[serde(default)]
    pub criu_image_path: Option<PathBuf>,
    /// CRIU's work dir (logs); `<bundle>/criu-work` when absent.
    #[serde(default)]
    pub criu_work_path: Option<PathBuf>,
}

/// The keys accepted in a runtimeoptions TOML body or file. CamelCase aliases match the names
/// containerd's config uses for runc (`SystemdCgroup`, `NoPivotRoot`, ...).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlOptions {
    #[serde(default, alias = "NoPivotRoot")]
    no_pivot_root: bool,
    #[serde(default, alias = "ShimCgroup")]
    shim_cgroup: Option<String>,
    #[serde(default, alias = "Root")]
    root: Option<PathBuf>,
    #[serde(default, alias = "SystemdCgroup")]
    systemd_cgroup: bool,
    #[serde(default, alias = "LogLevel")]
    log_level: Option<String>,
    #[serde(default, alias = "IoUid")]
    io_uid: Option<u32>,
    #[serde(default, alias = "IoGid")]
    io_gid: Option<u32>,
    #[serde(default, alias = "CriuPath")]
    criu_path: Option<PathBuf>,
    #[serde(default, alias = "CriuImagePath")]
    criu_image_path: Option<PathBuf>,
    #[serde(default, alias = "CriuWorkPath")]
    criu_work_path: Option<PathBuf>,
    /// CRI copies the whole options table into the body, including these two of its own.
    #[serde(default, alias = "TypeUrl")]
    #[allow(dead_code)]
    type_url: Option<String>,
    #[serde(default, alias = "ConfigPath")]
    #[allow(dead_code)]
    config_path: Option<String>,
}

impl ShimOptions {
    /// Parses the options `Any` of a Create request or of `start`'s stdin. `None` or an empty
    /// message gives the defaults.
    pub fn from_any(any: Option<&Any>) -> Result<ShimOptions> {
        let Some(any) = any else {
            return Ok(ShimOptions::default());
        };
        if any.type_url.is_empty() && any.value.is_empty() {
            return Ok(ShimOptions::default());
        }
        // containerd writes the bare full name; typeurl-style prefixes are accepted too.
        let name = any.type_url.rsplit('/').next().unwrap_or_default();
        let decode_err = |source| OptionsError::Decode {
            type_url: any.type_url.clone(),
            source,
        };
        match name {
            type_url::RUNC_OPTIONS => {
                let o = RuncOptions::decode(any.value.as_slice()).map_err(decode_err)?;
                ShimOptions::from_runc(&o)
            }
            type_url::RUNTIME_OPTIONS => {
                let o = RuntimeOptions::decode(any.value.as_slice()).map_err(decode_err)?;
                ShimOptions::from_runtime_options(&o)
            }
            _ => Err(OptionsError::UnknownType(any.type_url.clone())),
        }
    }

    /// Parses `start`'s stdin: a serialized `Any`, or nothing.
    pub fn from_any_bytes(data: &[u8]) -> Result<ShimOptions> {
        if data.is_empty() {
            return Ok(ShimOptions::default());
        }
        use containerd_shim::protos::protobuf::Message as _;
        let any = Any::parse_from_bytes(data).map_err(|e| {
            OptionsError::Unsupported(format!("start stdin is not a protobuf Any: {e}"))
        })?;
        ShimOptions::from_any(Some(&any))
    }

    #[allow(deprecated)]
    fn from_runc(o: &RuncOptions) -> Result<ShimOptions> {
        if o.systemd_cgroup {
            return Err(systemd_unsupported("systemd_cgroup (SystemdCgroup)"));
        }
        if !o.binary_name.is_empty() {
            return Err(OptionsError::Unsupported(format!(
                "binary_name {:?}: myrt runs containers with its own engine and calls no OCI \
                 runtime binary; remove BinaryName",
                o.binary_name
            )));
        }
        if !o.task_api_address.is_empty() {
            return Err(OptionsError::Unsupported(format!(
                "task_api_address {:?}: the shim serves its own socket only; remove it",
                o.task_api_address
            )));
        }
        if !matches!(o.task_api_version, 0 | 2) {
            return Err(OptionsError::Unsupported(format!(
                "task_api_version {}: the shim serves task API v2 only",
                o.task_api_version
            )));
        }
        // no_new_keyring: the engine never creates a session keyring, so both values hold.
        Ok(ShimOptions {
            no_pivot_root: o.no_pivot_root,
            shim_cgroup: non_empty(&o.shim_cgroup),
            root: non_empty(&o.root).map(PathBuf::from),
            log_level: None,
            io_uid: (o.io_uid != 0).then_some(o.io_uid),
            io_gid: (o.io_gid != 0).then_some(o.io_gid),
            criu_path: non_empty(&o.criu_path).map(PathBuf::from),
            criu_image_path: non_empty(&o.criu_image_path).map(PathBuf::from),
            criu_work_path: non_empty(&o.criu_work_path).map(PathBuf::from),
        })
    }

    fn from_runtime_options(o: &RuntimeOptions) -> Result<ShimOptions> {
        if !o.config_body.is_empty() {
            return ShimOptions::from_toml(&o.config_body, None);
        }
        if !o.config_path.is_empty() {
            let path = PathBuf::from(&o.config_path);
            let body =
                std::fs::read_to_string(&path).map_err(|source| OptionsError::ReadConfig {
                    path: path.clone(),
                    source,
                })?;
            return ShimOptions::from_toml(&body, Some(&path));
        }
        Ok(ShimOptions::default())
    }

    /// Parses myrt's TOML keys; an unknown key is an error that names it.
    pub fn from_toml(body: &str, at: Option<&Path>) -> Result<ShimOptions> {
        let t: TomlOptions = toml::from_str(body).map_err(|e| OptionsError::Toml {
            at: at.map(Path::to_path_buf),
            message: toml_message(body, &e),
        })?;
        if t.systemd_cgroup {
            return Err(systemd_unsupported("systemd_cgroup"));
        }
        if let Some(level) = &t.log_level {
            if !LOG_LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
                return Err(OptionsError::LogLevel(level.clone()));
            }
        }
        Ok(ShimOptions {
            no_pivot_root: t.no_pivot_root,
            shim_cgroup: t.shim_cgroup.filter(|s| !s.is_empty()),
            root: t.root.filter(|p| !p.as_os_str().is_empty()),
            log_level: t.log_level.map(|l| l.to_ascii_lowercase()),
            io_uid: t.io_uid,
            io_gid: t.io_gid,
            criu_path: t.criu_path.filter(|p| !p.as_os_str().is_empty()),
            criu_image_path: t.criu_image_path.filter(|p| !p.as_os_str().is_empty()),
            criu_work_path: t.criu_work_path.filter(|p| !p.as_os_str().is_empty()),
        })
    }

    /// The engine's state root for containers of `namespace`.
    pub fn state_root(&self, namespace: &str) -> PathBuf {
        match &self.root {
            Some(root) => root.join(namespace),
            None => Path::new(DEFAULT_ROOT).join(namespace),
        }
    }

    /// Saves the options in the bundle so that the `delete` action finds the state root.
    pub fn save(&self, bundle: &Path) -> Result<()> {
        let path = bundle.join(OPTIONS_FILE);
        let data = serde_json::to_vec(self).map_err(|source| OptionsError::Json {
            path: path.clone(),
            source,
        })?;
        std::fs::write(&path, data).map_err(|source| OptionsError::File { path, source })
    }

    /// The options saved by [`ShimOptions::save`]; the defaults when there is no file.
    pub fn load(bundle: &Path) -> Result<ShimOptions> {
        let path = bundle.join(OPTIONS_FILE);
        match std::fs::read(&path) {
            Ok(data) => serde_json::from_slice(&data).map_err(|source| OptionsError::Json {
                path: path.clone(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ShimOptions::default()),
            Err(source) => Err(OptionsError::File { path, source }),
        }
    }
}

/// toml's error as one line with its position (its Display is a multi-line snippet).
fn toml_message(body: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let before = &body[..span.start.min(body.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {col}: {msg}")
        }
        None => msg,
    }
}

fn systemd_unsupported(key: &str) -> OptionsError {
    OptionsError::Unsupported(format!(
        "{key}: the systemd cgroup driver is not supported by myrt yet; set it to false and \
         give cgroupsPath as a plain path (kubelet: cgroupDriver: cgroupfs)"
    ))
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any(type_url: &str, value: Vec<u8>) -> Any {
        Any {
            type_url: type_url.into(),
            value,
            ..Default::default()
        }
    }

    fn runtime_options(body: &str, path: &str) -> Any {
        let o = RuntimeOptions {
            type_url: "io.containerd.myrt.v1.options".into(),
            config_path: path.into(),
            config_body: body.into(),
        };
        any(type_url::RUNTIME_OPTIONS, o.encode_to_vec())
    }

    #[test]
    fn absent_or_empty_is_default() {
        assert_eq!(ShimOptions::from_any(None).unwrap(), ShimOptions::default());
        assert_eq!(
            ShimOptions::from_any(Some(&Any::default())).unwrap(),
            ShimOptions::default()
        );
        assert_eq!(
            ShimOptions::from_any_bytes(&[]).unwrap(),
            ShimOptions::default()
        );
    }

    #[test]
    fn runc_options() {
        let o = RuncOptions {
            no_pivot_root: true,
            shim_cgroup: "/shims".into(),
            root: "/run/containerd/runc".into(),
            io_uid: 1000,
            ..Default::default()
        };
        let got =
            ShimOptions::from_any(Some(&any(type_url::RUNC_OPTIONS, o.encode_to_vec()))).unwrap();
        assert!(got.no_pivot_root);
        assert_eq!(got.shim_cgroup.as_deref(), Some("/shims"));
        assert_eq!(
            got.state_root("k8s.io"),
            PathBuf::from("/run/containerd/runc/k8s.io")
        );
        assert_eq!((got.io_uid, got.io_gid), (Some(1000), None));
    }

    #[test]
    #[allow(deprecated)]
    fn criu_paths_from_runc_options_and_toml() {
        let o = RuncOptions {
            criu_path: "/usr/local/sbin/criu".into(),
            criu_work_path: "/var/tmp/w".into(),
            ..Default::default()
        };
        let s =
            ShimOptions::from_any(Some(&any(type_url::RUNC_OPTIONS, o.encode_to_vec()))).unwrap();
        assert_eq!(
            s.criu_path.as_deref(),
            Some(Path::new("/usr/local/sbin/criu"))
        );
        assert_eq!(s.criu_work_path.as_deref(), Some(Path::new("/var/tmp/w")));
        assert_eq!(s.criu_image_path, None);
        let t = ShimOptions::from_toml(
            "CriuPath = \"/opt/criu\"\ncriu_image_path = \"/img\"\n",
            None,
        )
        .unwrap();
        assert_eq!(t.criu_path.as_deref(), Some(Path::new("/opt/criu")));
        assert_eq!(t.criu_image_path.as_deref(), Some(Path::new("/img")));
    }

    #[test]
    fn runc_options_refuse_what_is_not_supported() {
        for (o, needle) in [
            (
                RuncOptions {
                    systemd_cgroup: true,
                    ..Default::default()
                },
                "systemd_cgroup",
            ),
            (
                RuncOptions {
                    binary_name: "runc".into(),
                    ..Default::default()
                },
                "binary_name",
            ),
            (
                RuncOptions {
                    task_api_version: 3,
                    ..Default::default()
                },
                "task_api_version",
            ),
        ] {
            let err = ShimOptions::from_any(Some(&any(type_url::RUNC_OPTIONS, o.encode_to_vec())))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn runtime_options_body_is_toml_and_not_shim_cgroup() {
        // The crate's own parser would put this body into shim_cgroup (field 3).
        let a = runtime_options("no_pivot_root = true\nlog_level = \"DEBUG\"\n", "");
        let got = ShimOptions::from_any(Some(&a)).unwrap();
        assert!(got.no_pivot_root);
        assert_eq!(got.shim_cgroup, None);
        assert_eq!(got.log_level.as_deref(), Some("debug"));
    }

    #[test]
    fn runtime_options_camel_case_keys_as_cri_writes_them() {
        let a = runtime_options(
            "TypeUrl = \"x\"\nNoPivotRoot = true\nRoot = \"/run/r\"\nShimCgroup = \"/s\"\n",
            "",
        );
        let got = ShimOptions::from_any(Some(&a)).unwrap();
        assert!(got.no_pivot_root);
        assert_eq!(got.state_root("default"), PathBuf::from("/run/r/default"));
        assert_eq!(got.shim_cgroup.as_deref(), Some("/s"));
    }

    #[test]
    fn unknown_key_is_named() {
        let err = ShimOptions::from_any(Some(&runtime_options(
            "root = \"/r\"\nno_such_key = 1\n",
            "",
        )))
        .unwrap_err()
        .to_string();
        assert!(err.contains("no_such_key"), "{err}");
        assert!(err.contains("line 2, column 1"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn systemd_and_bad_log_level_are_refused() {
        let err = ShimOptions::from_toml("SystemdCgroup = true", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("systemd"), "{err}");
        let err = ShimOptions::from_toml("log_level = \"loud\"", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("loud"), "{err}");
    }

    #[test]
    fn config_path_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("myrt.toml");
        std::fs::write(&path, "root = \"/run/elsewhere\"\n").unwrap();
        let got =
            ShimOptions::from_any(Some(&runtime_options("", path.to_str().unwrap()))).unwrap();
        assert_eq!(got.root, Some(PathBuf::from("/run/elsewhere")));
        let err = ShimOptions::from_any(Some(&runtime_options("", "/nonexistent/myrt.toml")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/myrt.toml"), "{err}");
    }

    #[test]
    fn unknown_type_url_is_refused() {
        let err = ShimOptions::from_any(Some(&any("example.Foo", vec![1, 2])))
            .unwrap_err()
            .to_string();
        assert!(err.contains("example.Foo"), "{err}");
    }

    #[test]
    fn prefixed_type_url_and_stdin_bytes() {
        use containerd_shim::protos::protobuf::Message as _;
        let o = RuncOptions {
            no_pivot_root: true,
            ..Default::default()
        };
        let a = any(
            "type.googleapis.com/containerd.runc.v1.Options",
            o.encode_to_vec(),
        );
        let bytes = a.write_to_bytes().unwrap();
        assert!(ShimOptions::from_any_bytes(&bytes).unwrap().no_pivot_root);
        assert!(ShimOptions::from_any_bytes(&[0xff, 0xff]).is_err());
    }

    #[test]
    fn save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            ShimOptions::load(dir.path()).unwrap(),
            ShimOptions::default()
        );
        let o = ShimOptions {
            root: Some("/run/x".into()),
            no_pivot_root: true,
            ..Default::default()
        };
        o.save(dir.path()).unwrap();
        assert_eq!(ShimOptions::load(dir.path()).unwrap(), o);
    }
}
