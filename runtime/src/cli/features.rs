//! `features`: prints the OCI runtime features document ([`myrt_runtime::features`]) with the
//! host's CRIU status.

use myrt_runtime::features::{criu_status, document_with};
use serde::Serialize;

use super::Result;

pub fn features(criu: &std::path::Path) -> Result<i32> {
    // runc indents with four spaces.
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    // Serializing a Value into a Vec cannot fail.
    let _ = document_with(Some(criu_status(criu))).serialize(&mut ser);
    println!("{}", String::from_utf8_lossy(&buf));
    Ok(0)
}
