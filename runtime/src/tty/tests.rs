//! The console-socket protocol over real socket pairs, and the console set up in a busybox
//! container (private mount and pid namespaces, see rootfs::test_support).

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::Path;

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use serde_json::json;

use super::*;
use crate::rootfs::test_support::{busybox_rootfs, config, default_mounts, ns_child, spec};
use crate::rootfs::{enter_rootfs, prepare_rootfs};

fn pair() -> (OwnedFd, OwnedFd) {
    socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .expect("socketpair")
}

#[test]
fn console_fd_and_name_round_trip() {
    let (a, b) = pair();
    let (r, w) = nix::unistd::pipe().expect("pipe");
    send_console(a.as_fd(), w.as_fd(), "/dev/pts/7").expect("send");
    let (fd, name) = recv_console(b.as_fd()).expect("recv");
    assert_eq!(name, "/dev/pts/7");
    let (sent, got) = (
        stat::fstat(&w).expect("fstat"),
        stat::fstat(&fd).expect("fstat"),
    );
    assert_eq!((sent.st_dev, sent.st_ino), (got.st_dev, got.st_ino));
    assert_ne!(fd.as_raw_fd(), w.as_raw_fd());
    std::fs::File::from(fd)
        .write_all(b"x")
        .expect("write through the received fd");
    let mut buf = [0u8; 1];
    std::fs::File::from(r).read_exact(&mut buf).expect("read");
    assert_eq!(&buf, b"x");
}

#[test]
fn recv_refuses_messages_without_exactly_one_fd() {
    let (a, b) = pair();
    nix::unistd::write(&a, b"/dev/pts/1").expect("write");
    let err = recv_console(b.as_fd()).expect_err("no fd");
    assert!(
        err.to_string().contains("without a file descriptor"),
        "{err}"
    );

    let (a, b) = pair();
    let (r, w) = nix::unistd::pipe().expect("pipe");
    let fds = [r.as_raw_fd(), w.as_raw_fd()];
    let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
    let iov = [std::io::IoSlice::new(b"two")];
    nix::sys::socket::sendmsg::<()>(
        a.as_raw_fd(),
        &iov,
        &cmsg,
        nix::sys::socket::MsgFlags::empty(),
        None,
    )
    .expect("sendmsg");
    let err = recv_console(b.as_fd()).expect_err("two fds");
    assert!(err.to_string().contains("more than one"), "{err}");

    let (a, b) = pair();
    drop(a);
    let err = recv_console(b.as_fd()).expect_err("closed");
    assert!(err.to_string().contains("closed"), "{err}");
}

/// Keeps the test harness' stdout/stderr while the console replaces fds 0-2.
struct SavedStdio(OwnedFd, OwnedFd);

impl SavedStdio {
    fn save() -> Self {
        let out = std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .expect("dup stdout");
        let err = std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .expect("dup stderr");
        SavedStdio(out, err)
    }
}

impl Drop for SavedStdio {
    fn drop(&mut self) {
        let _ = unistd::dup2_stdout(&self.0);
        let _ = unistd::dup2_stderr(&self.1);
    }
}

#[test]
fn console_in_a_busybox_container() {
    let Some(dir) = ns_child(module_path!(), "console_in_a_busybox_container", &[]) else {
        return;
    };
    let rootfs = busybox_rootfs(&dir);
    let spec = spec(default_mounts(), json!({}), false);
    let cfg = config(&spec, &rootfs, &dir);
    prepare_rootfs(&cfg).expect("prepare_rootfs");
    enter_rootfs(&cfg).expect("enter_rootfs");

    // CVE-2025-52565: /dev/console as a symlink is refused before anything is mounted.
    symlink("/etc/marker", "/dev/console").expect("symlink");
    let (a, b) = pair();
    let err = setup_console(a)
        .expect_err("symlinked /dev/console")
        .to_string();
    assert!(err.contains("CVE-2025-52565"), "{err}");
    std::fs::remove_file("/dev/console").expect("remove symlink");
    drop(b);

    let (a, b) = pair();
    let saved = SavedStdio::save();
    let result = setup_console(a);
    let stdin_stat = stat::fstat(std::io::stdin().as_fd());
    let mut stdout_is_tty = false;
    if result.is_ok() {
        stdout_is_tty = nix::unistd::isatty(std::io::stdout().as_fd()).unwrap_or(false);
        let _ = std::io::stdout().write_all(b"ping\n");
        let _ = std::io::stdout().flush();
    }
    drop(saved);
    result.expect("setup_console");
    let (master, name) = recv_console(b.as_fd()).expect("recv the master");
    assert!(name.starts_with("/dev/pts/"), "{name}");
    assert!(stdout_is_tty, "stdout is not the terminal");
    let stdin_stat = stdin_stat.expect("fstat stdin");
    let console = std::fs::metadata("/dev/console").expect("stat /dev/console");
    assert_eq!(
        console.rdev(),
        stdin_stat.st_rdev,
        "/dev/console is not the terminal"
    );
    assert_eq!(
        std::fs::metadata(&name).expect("stat pty").rdev(),
        stdin_stat.st_rdev
    );
    let mut buf = [0u8; 64];
    let n = nix::unistd::read(&master, &mut buf).expect("read from the master");
    assert!(
        String::from_utf8_lossy(&buf[..n]).contains("ping"),
        "{:?}",
        &buf[..n]
    );
    assert_eq!(
        nix::unistd::getsid(None).expect("getsid"),
        nix::unistd::getpid()
    );
    // Closing the master would hang up our controlling terminal and SIGHUP this process
    // before the harness reports; it closes when the process exits.
    std::mem::forget(master);
}

#[test]
fn ptmx_that_is_not_devpts_is_refused() {
    let Some(dir) = ns_child(module_path!(), "ptmx_that_is_not_devpts_is_refused", &[]) else {
        return;
    };
    let rootfs = busybox_rootfs(&dir);
    // No devpts: /dev/pts is a plain directory of the /dev tmpfs.
    let mounts: Vec<_> = default_mounts()
        .into_iter()
        .filter(|m| m["type"] != "devpts")
        .collect();
    let spec = spec(mounts, json!({}), false);
    let cfg = config(&spec, &rootfs, &dir);
    prepare_rootfs(&cfg).expect("prepare_rootfs");
    enter_rootfs(&cfg).expect("enter_rootfs");
    std::fs::create_dir_all("/dev/pts").expect("mkdir");
    symlink("/dev/null", "/dev/pts/ptmx").expect("symlink");
    let (a, _b) = pair();
    let err = setup_console(a).expect_err("symlinked ptmx");
    assert!(matches!(err, TtyError::Path(_)), "{err}");
    std::fs::remove_file("/dev/pts/ptmx").expect("rm");
    // A device that opens fine but is not a devpts ptmx.
    stat::mknod(
        Path::new("/dev/pts/ptmx"),
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o666),
        stat::makedev(1, 3),
    )
    .expect("mknod");
    let (a, _b) = pair();
    let err = setup_console(a).expect_err("ptmx on tmpfs");
    assert!(matches!(err, TtyError::NotDevpts { .. }), "{err}");
}
