//! `linux.netDevices`: host network interfaces moved into the container's network namespace,
//! renamed, with their permanent global addresses and brought up (runtime-spec config-linux.md
//! "Network Devices"; runc's devChangeNetNamespace).
//!
//! [`check_net_devices`] runs when config.json is validated; [`move_net_devices`] runs in the
//! runtime (the parent), which is in the host's network namespace, once the container's init
//! exists in its own one and before any hook runs. Nothing is moved back at delete, as the spec
//! requires: when the namespace goes away the kernel returns physical devices to the initial
//! namespace and destroys virtual ones (veth, macvlan…).
//!
//! rtnetlink is spoken over a raw NETLINK_ROUTE socket. The socket for the container's side is
//! opened by a short-lived thread that joined the namespace: a socket stays in the namespace it
//! was made in, and setns(CLONE_NEWNET) in a thread leaves the rest of the caller (possibly the
//! multi-threaded shim) where it was.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol};
use oci_spec::runtime::LinuxNetDevice;

use super::{errno_text, SetupError};
use crate::namespaces::{Kind, Namespaces};

// <linux/netlink.h>, <linux/rtnetlink.h>, <linux/if_link.h>, <linux/if_addr.h>
const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const IFLA_IFNAME: u16 = 3;
const IFLA_NET_NS_FD: u16 = 28;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const IFA_FLAGS: u16 = 8;
const IFA_F_PERMANENT: u32 = 0x80;
const RT_SCOPE_UNIVERSE: u8 = 0;
const IFF_UP: u32 = 0x1;
/// IFNAMSIZ less the NUL.
const MAX_NAME: usize = 15;

fn field(host: &str) -> String {
    format!("linux.netDevices[{host:?}]")
}

fn needs(host: &str, reason: impl Into<String>) -> SetupError {
    SetupError::Needs {
        field: field(host),
        reason: reason.into(),
    }
}

/// The kernel's dev_valid_name; `template` allows one "%d" (the kernel picks the number).
fn check_name(host: &str, what: &str, name: &str, template: bool) -> Result<(), SetupError> {
    let bad = |why: &str| needs(host, format!("{what} {name:?}: {why}"));
    if name.is_empty() || name == "." || name == ".." {
        return Err(bad("not a valid interface name"));
    }
    if name.len() > MAX_NAME {
        return Err(bad("longer than 15 bytes (IFNAMSIZ)"));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c == '\0' || c.is_whitespace())
    {
        return Err(bad("holds '/', ':' or white space"));
    }
    let percents = name.matches('%').count();
    if percents > 0 && !(template && percents == 1 && name.contains("%d")) {
        return Err(bad(if template {
            "'%' may only appear once, as \"%d\""
        } else {
            "holds '%'"
        }));
    }
    Ok(())
}

/// The name the device gets in the container (the host's when `name` is unset or empty).
fn new_name<'a>(host: &'a str, dev: &'a LinuxNetDevice) -> &'a str {
    dev.name()
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(host)
}

/// The container must have a network namespace other than the runtime's, names must be valid
/// and distinct, and every device must exist in the runtime's network namespace now.
pub fn check_net_devices(
    devices: &HashMap<String, LinuxNetDevice>,
    ns: &Namespaces,
) -> Result<(), SetupError> {
    if devices.is_empty() {
        return Ok(());
    }
    let own = match ns.get(Kind::Net) {
        None => false,
        Some(n) => match &n.path {
            None => true,
            // Joined by path: moving into the runtime's own namespace would be a rename only.
            Some(path) => !same_file(path, "/proc/self/ns/net"),
        },
    };
    if !own {
        return Err(SetupError::Needs {
            field: "linux.netDevices".into(),
            reason: "the container has no network namespace of its own to move devices into; \
                     add {\"type\": \"network\"} to linux.namespaces"
                .into(),
        });
    }
    let mut rtnl = Rtnl::open().map_err(|e| SetupError::Needs {
        field: "linux.netDevices".into(),
        reason: format!("netlink socket: {}", errno_text(e)),
    })?;
    let mut names: Vec<(&str, &str)> = Vec::new();
    for (host, dev) in sorted(devices) {
        check_name(host, "host device", host, false)?;
        let name = new_name(host, dev);
        check_name(host, "name", name, true)?;
        if !name.contains("%d") {
            if let Some((other, _)) = names.iter().find(|(_, n)| *n == name) {
                return Err(needs(
                    host,
                    format!("name {name:?} is also given to {other:?}: give each device its own"),
                ));
            }
        }
        names.push((host, name));
        if rtnl.link_by_name(host).is_err() {
            return Err(needs(
                host,
                "no such network device in the runtime's network namespace",
            ));
        }
    }
    Ok(())
}

fn same_file(a: &std::path::Path, b: &str) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

fn sorted(devices: &HashMap<String, LinuxNetDevice>) -> Vec<(&str, &LinuxNetDevice)> {
    let mut list: Vec<(&str, &LinuxNetDevice)> =
        devices.iter().map(|(k, v)| (k.as_str(), v)).collect();
    list.sort_by_key(|(k, _)| *k);
    list
}

/// Moves every device into the network namespace of `init_pid`, in name order: down, addresses
/// noted, moved and renamed in one RTM_NEWLINK, the permanent global addresses added again
/// (the kernel drops addresses on a move), then up.
pub fn move_net_devices(
    devices: &HashMap<String, LinuxNetDevice>,
    init_pid: i32,
) -> Result<(), SetupError> {
    if devices.is_empty() {
        return Ok(());
    }
    let ns_path = format!("/proc/{init_pid}/ns/net");
    let netns: OwnedFd = nix::fcntl::open(
        ns_path.as_str(),
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| SetupError::Needs {
        field: "linux.netDevices".into(),
        reason: format!("open {ns_path}: {}", errno_text(e)),
    })?;
    let mut host = Rtnl::open().map_err(|e| SetupError::Needs {
        field: "linux.netDevices".into(),
        reason: format!("netlink socket: {}", errno_text(e)),
    })?;
    let mut ctr = Rtnl::open_in(&netns).map_err(|e| SetupError::Needs {
        field: "linux.netDevices".into(),
        reason: format!(
            "netlink socket in the container's network namespace: {}",
            errno_text(e)
        ),
    })?;
    for (name, dev) in sorted(devices) {
        move_one(&mut host, &mut ctr, &netns, name, new_name(name, dev))?;
    }
    Ok(())
}

fn move_one(
    host: &mut Rtnl,
    ctr: &mut Rtnl,
    netns: &OwnedFd,
    name: &str,
    target: &str,
) -> Result<(), SetupError> {
    let step = |what: &str, e: Errno| needs(name, format!("{what}: {}", errno_text(e)));
    let index = host.link_by_name(name).map_err(|e| match e {
        Errno::ENODEV => needs(
            name,
            "no such network device in the runtime's network namespace",
        ),
        e => step("look up the device", e),
    })?;
    // Down first, as runc does: nothing on the host keeps using it while it changes.
    host.set_link_up(index, false)
        .map_err(|e| step("set it down", e))?;
    let addrs: Vec<Address> = host
        .addresses(index)
        .map_err(|e| step("list its addresses", e))?
        .into_iter()
        .filter(|a| a.flags & IFA_F_PERMANENT != 0 && a.scope == RT_SCOPE_UNIVERSE)
        .collect();
    log::debug!(
        "linux.netDevices: moving {name} (index {index}, {} address(es)) as {target}",
        addrs.len()
    );
    host.move_link(index, netns, target).map_err(|e| match e {
        Errno::EEXIST => needs(
            name,
            format!(
                "a device named {target:?} already exists in the container's network \
                 namespace (end the name in \"%d\" to let the kernel number it)"
            ),
        ),
        e => step("move it into the container's network namespace", e),
    })?;
    // The kernel keeps the index unless the namespace has it taken already.
    let moved = match ctr.link_name(index) {
        Ok(n) if n == target || (target.contains("%d") && fits_template(&n, target)) => index,
        _ if !target.contains("%d") => ctr
            .link_by_name(target)
            .map_err(|e| step(&format!("find {target:?} after the move"), e))?,
        _ => {
            return Err(needs(
                name,
                format!("cannot find the device named from {target:?} after the move"),
            ))
        }
    };
    for a in &addrs {
        match ctr.add_address(moved, a) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(step(&format!("add address {} again", a.text()), e)),
        }
    }
    ctr.set_link_up(moved, true)
        .map_err(|e| step("set it up in the container", e))
}

/// `name` is what the kernel made of a "%d" template.
fn fits_template(name: &str, template: &str) -> bool {
    let Some((pre, post)) = template.split_once("%d") else {
        return false;
    };
    name.len() > pre.len() + post.len()
        && name.starts_with(pre)
        && name.ends_with(post)
        && name[pre.len()..name.len() - post.len()]
            .chars()
            .all(|c| c.is_ascii_digit())
}

/// An interface address as RTM_GETADDR reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Address {
    family: u8,
    prefixlen: u8,
    scope: u8,
    flags: u32,
    local: Option<Vec<u8>>,
    address: Option<Vec<u8>>,
    broadcast: Option<Vec<u8>>,
}

impl Address {
    fn text(&self) -> String {
        let bytes = self.local.as_ref().or(self.address.as_ref());
        let ip = match bytes.map(Vec::as_slice) {
            Some(&[a, b, c, d]) => std::net::Ipv4Addr::new(a, b, c, d).to_string(),
            Some(b) if b.len() == 16 => {
                let mut raw = [0u8; 16];
                raw.copy_from_slice(b);
                std::net::Ipv6Addr::from(raw).to_string()
            }
            _ => "?".into(),
        };
        format!("{ip}/{}", self.prefixlen)
    }
}

/// One rtnetlink request being built: header, fixed part, attributes (4-byte aligned).
struct Msg(Vec<u8>);

impl Msg {
    fn new(typ: u16, flags: u16) -> Msg {
        let mut buf = vec![0u8; NLMSG_HDRLEN];
        buf[4..6].copy_from_slice(&typ.to_ne_bytes());
        buf[6..8].copy_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        Msg(buf)
    }

    fn ifinfo(mut self, index: u32, flags: u32, change: u32) -> Msg {
        self.0.extend_from_slice(&[0, 0, 0, 0]); // family, pad, type
        self.0.extend_from_slice(&index.to_ne_bytes());
        self.0.extend_from_slice(&flags.to_ne_bytes());
        self.0.extend_from_slice(&change.to_ne_bytes());
        self
    }

    fn attr(mut self, typ: u16, data: &[u8]) -> Msg {
        let len = 4 + data.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&typ.to_ne_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().next_multiple_of(4), 0);
        self
    }

    fn name(self, typ: u16, name: &str) -> Msg {
        let mut data = name.as_bytes().to_vec();
        data.push(0);
        self.attr(typ, &data)
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = self.0.len() as u32;
        self.0[0..4].copy_from_slice(&len.to_ne_bytes());
        self.0[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.0
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The attributes after a message's fixed part: (type, data).
fn attrs(payload: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= payload.len() {
        let len = u16_at(payload, at) as usize;
        if len < 4 || at + len > payload.len() {
            break;
        }
        out.push((u16_at(payload, at + 2) & 0x3fff, &payload[at + 4..at + len]));
        at += len.next_multiple_of(4);
    }
    out
}

/// A NETLINK_ROUTE socket and the sequence number of its last request.
struct Rtnl {
    fd: OwnedFd,
    seq: u32,
}

impl Rtnl {
    fn open() -> Result<Rtnl, Errno> {
        let fd = socket::socket(
            AddressFamily::Netlink,
            socket::SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )?;
        socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
        Ok(Rtnl { fd, seq: 0 })
    }

    /// A socket in the network namespace `netns`, made by a thread that joins it.
    fn open_in(netns: &OwnedFd) -> Result<Rtnl, Errno> {
        std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::setns(netns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)?;
                Rtnl::open()
            })
            .join()
            .unwrap_or(Err(Errno::EIO))
        })
    }

    /// Sends one request; returns every reply message (type, payload) up to the ack, the error
    /// or NLMSG_DONE.
    fn call(&mut self, msg: Msg) -> Result<Vec<(u16, Vec<u8>)>, Errno> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let req = msg.finish(seq);
        let dump = u16_at(&req, 6) & NLM_F_DUMP == NLM_F_DUMP;
        socket::send(self.fd.as_raw_fd(), &req, MsgFlags::empty())?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match socket::recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Err(Errno::EINTR) => continue,
                r => r?,
            };
            let mut at = 0;
            while at + NLMSG_HDRLEN <= n {
                let len = u32_at(&buf, at) as usize;
                if len < NLMSG_HDRLEN || at + len > n {
                    return Err(Errno::EBADMSG);
                }
                let typ = u16_at(&buf, at + 4);
                let msg_seq = u32_at(&buf, at + 8);
                let payload = &buf[at + NLMSG_HDRLEN..at + len];
                at += len.next_multiple_of(4);
                if msg_seq != seq {
                    continue;
                }
                match typ {
                    NLMSG_ERROR => {
                        let code = payload
                            .get(0..4)
                            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                            .ok_or(Errno::EBADMSG)?;
                        return if code == 0 {
                            Ok(out)
                        } else {
                            Err(Errno::from_raw(-code))
                        };
                    }
                    NLMSG_DONE => return Ok(out),
                    _ => {
                        out.push((typ, payload.to_vec()));
                        if !dump {
                            return Ok(out);
                        }
                    }
                }
            }
        }
    }

    /// The index of the link called `name`.
    fn link_by_name(&mut self, name: &str) -> Result<u32, Errno> {
        let reply = self.call(
            Msg::new(RTM_GETLINK, 0)
                .ifinfo(0, 0, 0)
                .name(IFLA_IFNAME, name),
        )?;
        match reply.first() {
            Some((RTM_NEWLINK, p)) if p.len() >= 16 => Ok(u32_at(p, 4)),
            _ => Err(Errno::ENODEV),
        }
    }

    /// The name of the link with `index`.
    fn link_name(&mut self, index: u32) -> Result<String, Errno> {
        let reply = self.call(Msg::new(RTM_GETLINK, 0).ifinfo(index, 0, 0))?;
        let Some((RTM_NEWLINK, p)) = reply.first() else {
            return Err(Errno::ENODEV);
        };
        attrs(p.get(16..).unwrap_or(&[]))
            .into_iter()
            .find(|(t, _)| *t == IFLA_IFNAME)
            .map(|(_, d)| String::from_utf8_lossy(d.split(|b| *b == 0).next().unwrap_or(d)).into())
            .ok_or(Errno::ENODEV)
    }

    fn set_link_up(&mut self, index: u32, up: bool) -> Result<(), Errno> {
        let flags = if up { IFF_UP } else { 0 };
        self.call(Msg::new(RTM_NEWLINK, NLM_F_ACK).ifinfo(index, flags, IFF_UP))
            .map(drop)
    }

    /// Moves the link into `netns` under `name`, in one request so no name clash on either
    /// side can come between the two.
    fn move_link(&mut self, index: u32, netns: &OwnedFd, name: &str) -> Result<(), Errno> {
        let fd = netns.as_raw_fd() as u32;
        self.call(
            Msg::new(RTM_NEWLINK, NLM_F_ACK)
                .ifinfo(index, 0, 0)
                .attr(IFLA_NET_NS_FD, &fd.to_ne_bytes())
                .name(IFLA_IFNAME, name),
        )
        .map(drop)
    }

    fn addresses(&mut self, index: u32) -> Result<Vec<Address>, Errno> {
        // ifaddrmsg: family AF_UNSPEC (every family), the rest zero.
        let mut msg = Msg::new(RTM_GETADDR, NLM_F_DUMP);
        msg.0.extend_from_slice(&[0u8; 8]);
        let mut out = Vec::new();
        for (typ, p) in self.call(msg)? {
            if typ != RTM_NEWADDR || p.len() < 8 || u32_at(&p, 4) != index {
                continue;
            }
            let mut a = Address {
                family: p[0],
                prefixlen: p[1],
                flags: u32::from(p[2]),
                scope: p[3],
                local: None,
                address: None,
                broadcast: None,
            };
            for (t, d) in attrs(&p[8..]) {
                match t {
                    IFA_LOCAL => a.local = Some(d.to_vec()),
                    IFA_ADDRESS => a.address = Some(d.to_vec()),
                    IFA_BROADCAST => a.broadcast = Some(d.to_vec()),
                    IFA_FLAGS if d.len() >= 4 => a.flags = u32_at(d, 0),
                    _ => {}
                }
            }
            out.push(a);
        }
        Ok(out)
    }

    fn add_address(&mut self, index: u32, a: &Address) -> Result<(), Errno> {
        let mut msg = Msg::new(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        msg.0
            .extend_from_slice(&[a.family, a.prefixlen, IFA_F_PERMANENT as u8, a.scope]);
        msg.0.extend_from_slice(&index.to_ne_bytes());
        for (t, d) in [
            (IFA_LOCAL, &a.local),
            (IFA_ADDRESS, &a.address),
            (IFA_BROADCAST, &a.broadcast),
        ] {
            if let Some(d) = d {
                msg = msg.attr(t, d);
            }
        }
        self.call(msg).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn devices(json: &str) -> HashMap<String, LinuxNetDevice> {
        serde_json::from_str(json).unwrap()
    }

    fn ns(json: &str) -> Namespaces {
        let spec: oci_spec::runtime::Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2", "root": {"path": "rootfs"},
            "linux": {"namespaces": serde_json::from_str::<serde_json::Value>(json).unwrap()}
        }))
        .unwrap();
        Namespaces::from_spec(&spec).unwrap()
    }

    #[test]
    fn needs_a_network_namespace_of_its_own() {
        let d = devices(r#"{"lo": {"name": "eth0"}}"#);
        let err = check_net_devices(&d, &ns(r#"[{"type":"mount"}]"#))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("linux.netDevices: the container has no network namespace"),
            "{err}"
        );
        let err = check_net_devices(
            &d,
            &ns(r#"[{"type":"mount"},{"type":"network","path":"/proc/self/ns/net"}]"#),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("linux.netDevices: "), "{err}");
    }

    #[test]
    fn names_are_checked() {
        let own = ns(r#"[{"type":"mount"},{"type":"network"}]"#);
        for (json, want) in [
            (
                r#"{"lo": {"name": "a/b"}}"#,
                r#"linux.netDevices["lo"]: name "a/b": holds"#,
            ),
            (
                r#"{"lo": {"name": "0123456789abcdef"}}"#,
                "longer than 15 bytes",
            ),
            (r#"{"lo": {"name": "e%s"}}"#, "may only appear once"),
            (r#"{"a b": {}}"#, r#"linux.netDevices["a b"]: host device"#),
            (
                r#"{"nosuchdev0": {"name": "eth0"}}"#,
                r#"linux.netDevices["nosuchdev0"]: no such network device"#,
            ),
        ] {
            let err = check_net_devices(&devices(json), &own)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{json}: {err}");
        }
        // lo exists in every network namespace; "%d" is a template the kernel fills in.
        check_net_devices(&devices(r#"{"lo": {"name": "eth%d"}}"#), &own).unwrap();
        check_net_devices(&devices(r#"{"lo": {}}"#), &own).unwrap();
    }

    #[test]
    fn templates() {
        assert!(fits_template("eth12", "eth%d"));
        assert!(fits_template("a3b", "a%db"));
        assert!(!fits_template("eth", "eth%d"));
        assert!(!fits_template("ethx", "eth%d"));
    }

    #[test]
    fn reads_links_and_addresses_of_this_namespace() {
        let mut rtnl = Rtnl::open().unwrap();
        let lo = rtnl.link_by_name("lo").unwrap();
        assert_eq!(rtnl.link_name(lo).unwrap(), "lo");
        assert_eq!(rtnl.link_by_name("nosuchdev0"), Err(Errno::ENODEV));
        // Loopback addresses are host scope: never carried over by a move.
        for a in rtnl.addresses(lo).unwrap() {
            assert_ne!(a.scope, RT_SCOPE_UNIVERSE, "{}", a.text());
        }
    }
}
