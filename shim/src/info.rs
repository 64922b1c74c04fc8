//! `-info`: containerd 2.x's introspection of a shim binary. It runs `<shim> -info` with the
//! runtime options (a serialized `google.protobuf.Any`, or nothing) on stdin and reads a
//! serialized `containerd.types.RuntimeInfo` from stdout: CRI for the handler's features, and the
//! task manager before every task whose mounts are id-mapped (it refuses the task unless the
//! features say `mountExtensions.idmap.enabled`). No async runtime, no shim crate, no CRIU: it is
//! on the path of every id-mapped task create.

use std::io::{IsTerminal, Read, Write};

use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{Message, MessageField};
use containerd_shim::protos::types::introspection::{RuntimeInfo, RuntimeVersion};

use crate::options::{OptionsError, ShimOptions};

/// The name the shim gives itself in its [`RuntimeInfo`].
pub const NAME: &str = "containerd-shim-myrt-v1";
/// The type URL containerd expects on the features `Any` (its value is the features JSON).
pub const FEATURES_TYPE_URL: &str =
    "types.containerd.io/opencontainers/runtime-spec/1/features/Features";

#[derive(Debug, thiserror::Error)]
pub enum InfoError {
    #[error("read stdin: {0}")]
    Stdin(std::io::Error),
    #[error(
        "stdin is not a serialized google.protobuf.Any ({0}): give the runtime options as \
         containerd does (an encoded Any of containerd.runc.v1.Options or \
         runtimeoptions.v1.Options), or nothing"
    )]
    NotAny(String),
    #[error("runtime options on stdin: {0}")]
    Options(#[from] OptionsError),
    #[error("encode the RuntimeInfo answer: {0}")]
    Encode(containerd_shim::protos::protobuf::Error),
    #[error("write the answer to stdout: {0}")]
    Stdout(std::io::Error),
}

pub type Result<T> = std::result::Result<T, InfoError>;

/// Whether the command line asks for `-info` (Go's flag package also takes `--info` and
/// `-info=true`).
pub fn is_requested<I: IntoIterator<Item = String>>(args: I) -> bool {
    args.into_iter().any(|a| {
        matches!(
            a.as_str(),
            "-info" | "--info" | "-info=true" | "--info=true"
        )
    })
}

/// The options `Any` of `-info`'s stdin; `None` when there is nothing (or an empty `Any`).
/// Options that the shim would refuse at `start` or Create are refused here too, so that
/// containerd reports the problem before it creates anything.
pub fn read_options(stdin: &[u8]) -> Result<Option<Any>> {
    if stdin.is_empty() {
        return Ok(None);
    }
    let any = Any::parse_from_bytes(stdin).map_err(|e| InfoError::NotAny(e.to_string()))?;
    // Random bytes can parse as an Any made only of unknown fields: containerd never sends one.
    if any.special_fields.unknown_fields().iter().next().is_some() {
        return Err(InfoError::NotAny(
            "fields other than type_url (1) and value (2)".into(),
        ));
    }
    if any.type_url.is_empty() && any.value.is_empty() {
        return Ok(None);
    }
    ShimOptions::from_any(Some(&any))?;
    Ok(Some(any))
}

/// The answer to `-info` with `stdin` as the options: name, version, the options echoed back
/// (as containerd's runc shim does) and the OCI features document without the CRIU status.
pub fn runtime_info(stdin: &[u8]) -> Result<RuntimeInfo> {
    let options = read_options(stdin)?;
    let features = myrt_runtime::features::document_with(None);
    let features = Any {
        type_url: FEATURES_TYPE_URL.to_string(),
        // Serializing a serde_json::Value cannot fail: every key is a string.
        value: serde_json::to_vec(&features).unwrap_or_default(),
        ..Default::default()
    };
    Ok(RuntimeInfo {
        name: NAME.to_string(),
        version: MessageField::some(RuntimeVersion {
            version: env!("CARGO_PKG_VERSION").to_string(),
            // The build records no source revision.
            revision: String::new(),
            ..Default::default()
        }),
        options: options.into(),
        features: MessageField::some(features),
        ..Default::default()
    })
}

/// `runtime_info` serialized, as containerd reads it from stdout.
pub fn answer(stdin: &[u8]) -> Result<Vec<u8>> {
    runtime_info(stdin)?
        .write_to_bytes()
        .map_err(InfoError::Encode)
}

/// Runs `-info`: reads stdin, writes the answer to stdout and returns the exit code. On an
/// error stdout stays empty and stderr says what is wrong (containerd quotes it).
pub fn main() -> i32 {
    match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{NAME} -info: {e}");
            1
        }
    }
}

fn run() -> Result<()> {
    let mut data = Vec::new();
    let stdin = std::io::stdin();
    // Someone typing the command at a terminal means "no options", not "wait for EOF".
    if !stdin.is_terminal() {
        stdin
            .lock()
            .read_to_end(&mut data)
            .map_err(InfoError::Stdin)?;
    }
    let out = answer(&data)?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&out)
        .and_then(|()| stdout.flush())
        .map_err(InfoError::Stdout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use myrt_protos::runc::v1::Options as RuncOptions;
    use myrt_protos::runtimeoptions::v1::Options as RuntimeOptions;
    use myrt_protos::{type_url, Message as _};

    fn any_bytes(type_url: &str, value: Vec<u8>) -> Vec<u8> {
        Any {
            type_url: type_url.into(),
            value,
            ..Default::default()
        }
        .write_to_bytes()
        .unwrap()
    }

    fn features(info: &RuntimeInfo) -> oci_spec::runtime::Features {
        assert_eq!(info.features.type_url, FEATURES_TYPE_URL);
        serde_json::from_slice(&info.features.value).unwrap()
    }

    #[test]
    fn empty_stdin_round_trip() {
        let bytes = answer(&[]).unwrap();
        let info = RuntimeInfo::parse_from_bytes(&bytes).unwrap();
        assert_eq!(info.name, NAME);
        assert_eq!(info.version.version, env!("CARGO_PKG_VERSION"));
        assert!(info.options.is_none());
        assert!(info.annotations.is_empty());
        assert_eq!(info, runtime_info(&[]).unwrap());
        // An empty Any is no options either.
        let info = runtime_info(&Any::default().write_to_bytes().unwrap()).unwrap();
        assert!(info.options.is_none());
    }

    #[test]
    fn features_say_idmap_and_user_namespaces() {
        let info = runtime_info(&[]).unwrap();
        let f = features(&info);
        let linux = f.linux().as_ref().unwrap();
        let idmap = linux.mount_extensions().as_ref().unwrap().idmap().clone();
        assert_eq!(idmap.unwrap().enabled(), &Some(true));
        assert!(linux
            .namespaces()
            .as_ref()
            .unwrap()
            .contains(&oci_spec::runtime::LinuxNamespaceType::User));
        assert!(f
            .mount_options()
            .as_ref()
            .unwrap()
            .contains(&"idmap".to_string()));
        // No CRIU run on this path.
        let annotations = f.annotations().clone().unwrap();
        assert!(!annotations.contains_key("io.containerd.myrt.checkpoint.criu"));
    }

    #[test]
    fn options_are_echoed() {
        let runc = RuncOptions {
            root: "/run/containerd/myrt-test".into(),
            no_pivot_root: true,
            ..Default::default()
        };
        let stdin = any_bytes(type_url::RUNC_OPTIONS, runc.encode_to_vec());
        let info = RuntimeInfo::parse_from_bytes(&answer(&stdin).unwrap()).unwrap();
        assert_eq!(info.options.type_url, type_url::RUNC_OPTIONS);
        assert_eq!(info.options.value, runc.encode_to_vec());

        let cri = RuntimeOptions {
            type_url: "io.containerd.myrt.v1.options".into(),
            config_body: "no_pivot_root = true\n".into(),
            ..Default::default()
        };
        let stdin = any_bytes(type_url::RUNTIME_OPTIONS, cri.encode_to_vec());
        let info = runtime_info(&stdin).unwrap();
        assert_eq!(info.options.value, cri.encode_to_vec());
    }

    #[test]
    fn refused_options_name_the_key() {
        let runc = RuncOptions {
            binary_name: "runc".into(),
            ..Default::default()
        };
        let stdin = any_bytes(type_url::RUNC_OPTIONS, runc.encode_to_vec());
        let err = runtime_info(&stdin).unwrap_err();
        assert!(matches!(err, InfoError::Options(_)), "{err}");
        assert!(err.to_string().contains("binary_name"), "{err}");

        let cri = RuntimeOptions {
            config_body: "no_such_key = 1\n".into(),
            ..Default::default()
        };
        let stdin = any_bytes(type_url::RUNTIME_OPTIONS, cri.encode_to_vec());
        let err = runtime_info(&stdin).unwrap_err().to_string();
        assert!(err.contains("no_such_key"), "{err}");

        let err = runtime_info(&any_bytes("example.Other", vec![1]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("example.Other"), "{err}");
    }

    #[test]
    fn garbage_is_not_an_any() {
        for garbage in [&b"\xff\xfe not protobuf"[..], b"this is not protobuf\n"] {
            let err = runtime_info(garbage).unwrap_err();
            assert!(matches!(err, InfoError::NotAny(_)), "{err}");
        }
        // Well-formed protobuf, but not an Any: field 5, varint 1.
        let err = runtime_info(&[0x28, 0x01]).unwrap_err();
        assert!(matches!(err, InfoError::NotAny(_)), "{err}");
    }

    #[test]
    fn flag_forms() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(is_requested(args(&["-info"])));
        assert!(is_requested(args(&["--info"])));
        assert!(is_requested(args(&["-debug", "-info=true"])));
        assert!(!is_requested(args(&["-info=false"])));
        assert!(!is_requested(args(&[
            "-namespace",
            "k8s.io",
            "-id",
            "x",
            "start"
        ])));
    }
}
