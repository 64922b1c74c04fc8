//! A minimal ttrpc client for the shim calls ctr 1.6 has no command for (e.g. Task.Checkpoint
//! with options of the test's choosing): one unary call per connection, protobuf encoded by hand.
//!
//! ```no_run
//! use myrt_tests::ttrpc::{call, field_bytes};
//! let mut req = Vec::new();
//! field_bytes(1, b"c1", &mut req); // StateRequest.id
//! let socket = std::path::PathBuf::from("/run/containerd/s/…");
//! let reply = call(&socket, "containerd.task.v2.Task", "State", &req);
//! ```

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// One field of a decoded protobuf message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 2: bytes, a string or a nested message.
    Bytes(Vec<u8>),
}

/// A non-OK ttrpc status: the gRPC code (5 NOT_FOUND, 12 UNIMPLEMENTED, …) and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: u64,
    pub message: String,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ttrpc status {}: {}", self.code, self.message)
    }
}

pub fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends field `field` with wire type 2 (bytes, string, message).
pub fn field_bytes(field: u32, data: &[u8], out: &mut Vec<u8>) {
    varint(u64::from(field << 3 | 2), out);
    varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

/// Appends field `field` with wire type 0 (bool, integers).
pub fn field_varint(field: u32, v: u64, out: &mut Vec<u8>) {
    varint(u64::from(field << 3), out);
    varint(v, out);
}

/// A `google.protobuf.Any{type_url, value}`.
pub fn any(type_url: &str, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    field_bytes(1, type_url.as_bytes(), &mut out);
    field_bytes(2, value, &mut out);
    out
}

fn read_varint(buf: &mut &[u8]) -> Option<u64> {
    let (mut v, mut shift) = (0u64, 0);
    loop {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
}

/// The fields of a message in order; panics on wire types other than 0 and 2 or on truncation
/// (the shims' answers used by the tests hold no others).
#[track_caller]
pub fn fields(mut buf: &[u8]) -> Vec<(u32, Value)> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = read_varint(&mut buf).expect("truncated protobuf key");
        let (field, wire) = ((key >> 3) as u32, key & 7);
        match wire {
            0 => out.push((
                field,
                Value::Varint(read_varint(&mut buf).expect("truncated varint")),
            )),
            2 => {
                let len = read_varint(&mut buf).expect("truncated length") as usize;
                assert!(len <= buf.len(), "protobuf field {field} runs past the end");
                out.push((field, Value::Bytes(buf[..len].to_vec())));
                buf = &buf[len..];
            }
            w => panic!("unexpected protobuf wire type {w} (field {field})"),
        }
    }
    out
}

/// Calls `service/method` on the ttrpc server at `socket` and returns the response payload, or
/// the non-OK status. Panics when the socket cannot be used (the test fails).
#[track_caller]
pub fn call(socket: &Path, service: &str, method: &str, payload: &[u8]) -> Result<Vec<u8>, Status> {
    call_timeout(socket, service, method, payload, Duration::from_secs(60))
}

/// [`call`] with a deadline for the answer (sent as the request's timeout too).
#[track_caller]
pub fn call_timeout(
    socket: &Path,
    service: &str,
    method: &str,
    payload: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, Status> {
    let mut req = Vec::new();
    field_bytes(1, service.as_bytes(), &mut req);
    field_bytes(2, method.as_bytes(), &mut req);
    field_bytes(3, payload, &mut req);
    field_varint(4, timeout.as_nanos() as u64, &mut req); // timeout_nano
    let mut s =
        UnixStream::connect(socket).unwrap_or_else(|e| panic!("connect {}: {e}", socket.display()));
    s.set_read_timeout(Some(timeout + Duration::from_secs(5)))
        .expect("set a read timeout");
    let mut msg = (req.len() as u32).to_be_bytes().to_vec();
    msg.extend_from_slice(&1u32.to_be_bytes()); // stream id
    msg.extend_from_slice(&[1, 0]); // request, no flags
    msg.extend_from_slice(&req);
    s.write_all(&msg)
        .unwrap_or_else(|e| panic!("send {service}/{method}: {e}"));
    let mut header = [0u8; 10];
    s.read_exact(&mut header)
        .unwrap_or_else(|e| panic!("no answer to {service}/{method}: {e}"));
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    assert_eq!(header[8], 2, "not a ttrpc response: {header:?}");
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)
        .unwrap_or_else(|e| panic!("truncated answer to {service}/{method}: {e}"));
    let mut payload = Vec::new();
    for (field, v) in fields(&body) {
        match (field, v) {
            (1, Value::Bytes(status)) => {
                let mut st = Status {
                    code: 0,
                    message: String::new(),
                };
                for (f, v) in fields(&status) {
                    match (f, v) {
                        (1, Value::Varint(c)) => st.code = c,
                        (2, Value::Bytes(m)) => st.message = String::from_utf8_lossy(&m).into(),
                        _ => {}
                    }
                }
                if st.code != 0 {
                    return Err(st);
                }
            }
            (2, Value::Bytes(p)) => payload = p,
            _ => {}
        }
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_decodes_fields() {
        let mut m = Vec::new();
        field_bytes(1, b"c1", &mut m);
        field_varint(5, 1, &mut m);
        field_bytes(3, &any("x.Y", &[0x28, 0x01]), &mut m);
        field_varint(2, 300, &mut m);
        let f = fields(&m);
        assert_eq!(f[0], (1, Value::Bytes(b"c1".to_vec())));
        assert_eq!(f[1], (5, Value::Varint(1)));
        assert_eq!(f[3], (2, Value::Varint(300)));
        let Value::Bytes(inner) = &f[2].1 else {
            panic!("field 3 is a message")
        };
        assert_eq!(
            fields(inner),
            vec![
                (1, Value::Bytes(b"x.Y".to_vec())),
                (2, Value::Bytes(vec![0x28, 0x01]))
            ]
        );
    }
}
