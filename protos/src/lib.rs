//! prost types for the messages containerd sends to or expects from the shim.
//!
//! - [`runtimeoptions::v1::Options`]: CRI's generic runtime options (`type_url`, `config_path`,
//!   `config_body`).
//! - [`runc::v1::Options`]: containerd's runc shim options (`containerd.runc.v1.Options`), plus
//!   `CheckpointOptions` and `ProcessDetails` (the `info` of an exec in `Pids`).
//!
//! - [`criu`]: CRIU's RPC (swrk) messages, from CRIU 4.2.1's `rpc.proto`.
//!
//! Generated at build time from `proto/` with protox and prost-build.

pub mod runtimeoptions {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/runtimeoptions.v1.rs"));
    }
}

pub mod runc {
    pub mod v1 {
        #![allow(deprecated)]
        include!(concat!(env!("OUT_DIR"), "/containerd.runc.v1.rs"));
    }
}

/// CRIU's RPC protocol (`criu swrk`): `CriuReq`, `CriuResp`, `CriuOpts`, … (proto2).
pub mod criu {
    // CRIU's .proto comments are indented with tabs.
    #![allow(clippy::tabs_in_doc_comments)]
    include!(concat!(env!("OUT_DIR"), "/criu.rs"));
}

/// Type URLs under which these messages travel in a `google.protobuf.Any`.
pub mod type_url {
    pub const RUNTIME_OPTIONS: &str = "runtimeoptions.v1.Options";
    pub const RUNC_OPTIONS: &str = "containerd.runc.v1.Options";
    pub const RUNC_CHECKPOINT_OPTIONS: &str = "containerd.runc.v1.CheckpointOptions";
    pub const PROCESS_DETAILS: &str = "containerd.runc.v1.ProcessDetails";
}

pub use prost::{DecodeError, Message};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_options_roundtrip_and_wire_numbers() {
        let o = runtimeoptions::v1::Options {
            type_url: "io.containerd.myrt.v1.options".into(),
            config_path: "/etc/myrt.toml".into(),
            config_body: "root = \"/run/x\"\n".into(),
        };
        let bytes = o.encode_to_vec();
        // field 1, wire type 2 (length-delimited) = tag byte 0x0a; field 2 = 0x12; field 3 = 0x1a.
        assert_eq!(bytes[0], 0x0a);
        assert!(bytes.windows(2).any(|w| w == [0x12, 14]));
        assert!(bytes.windows(2).any(|w| w == [0x1a, 16]));
        let back = runtimeoptions::v1::Options::decode(bytes.as_slice()).unwrap();
        assert_eq!(back, o);
    }

    #[test]
    fn runc_options_roundtrip_and_wire_numbers() {
        #[allow(deprecated)]
        let o = runc::v1::Options {
            no_pivot_root: true,
            no_new_keyring: true,
            shim_cgroup: "/shim".into(),
            io_uid: 1000,
            io_gid: 1001,
            binary_name: "myrt".into(),
            root: "/run/containerd/runc".into(),
            criu_path: String::new(),
            systemd_cgroup: true,
            criu_image_path: "/img".into(),
            criu_work_path: "/work".into(),
            task_api_address: "ttrpc+unix:///x".into(),
            task_api_version: 2,
        };
        let bytes = o.encode_to_vec();
        let back = runc::v1::Options::decode(bytes.as_slice()).unwrap();
        assert_eq!(back, o);
        // Hand-encoded by field number: systemd_cgroup (9, varint) = 0x48 0x01,
        // root (7, bytes) = 0x3a, io_gid (5, varint) = 0x28.
        let hand = [
            0x08, 0x01, 0x28, 0x07, 0x3a, 0x02, b'/', b'r', 0x48, 0x01, 0x68, 0x03,
        ];
        let d = runc::v1::Options::decode(&hand[..]).unwrap();
        assert!(d.no_pivot_root && d.systemd_cgroup);
        assert_eq!(
            (d.io_gid, d.root.as_str(), d.task_api_version),
            (7, "/r", 3)
        );
    }

    #[test]
    fn runtime_options_bytes_do_not_parse_as_runc_shim_cgroup_here() {
        // The pitfall of containerd-shim 0.11: decoding runtimeoptions as runc Options puts
        // config_body (field 3) into shim_cgroup. Both decode; only the type URL tells them apart.
        let o = runtimeoptions::v1::Options {
            config_body: "x".into(),
            ..Default::default()
        };
        let as_runc = runc::v1::Options::decode(o.encode_to_vec().as_slice()).unwrap();
        assert_eq!(as_runc.shim_cgroup, "x");
    }

    #[test]
    fn process_details_roundtrip() {
        let d = runc::v1::ProcessDetails {
            exec_id: "exec-1".into(),
        };
        assert_eq!(
            d.encode_to_vec(),
            [0x0a, 6, b'e', b'x', b'e', b'c', b'-', b'1']
        );
        let back = runc::v1::ProcessDetails::decode(d.encode_to_vec().as_slice()).unwrap();
        assert_eq!(back, d);
    }
}
