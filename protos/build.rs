//! Generates the prost types from proto/*.proto with protox (pure Rust: no protoc needed).

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "proto/runtimeoptions.proto",
    "proto/runc.proto",
    "proto/criu/rpc.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for p in PROTOS {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(PROTOS, [PathBuf::from("proto")])?;
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}
