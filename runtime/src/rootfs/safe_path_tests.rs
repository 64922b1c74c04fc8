//! RootDir against a real directory tree: both resolvers must keep every lookup inside the
//! root. No mounts, no root needed.

use super::*;
use std::io::Read;
use std::os::unix::fs::symlink;

const RESOLVERS: [Resolver; 2] = [Resolver::Openat2, Resolver::Walk];

/// root/etc/passwd says "inside"; links: link -> /etc, rel -> ../../../../etc,
/// pw -> /etc/passwd, loop -> loop, hole -> /made/here (dangling), sub/abs -> /etc/passwd,
/// sub/up -> ../etc/passwd (sub/etc/passwd says "wrong").
fn tree() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("root");
    std::fs::create_dir_all(root.join("etc")).expect("mkdir");
    std::fs::write(root.join("etc/passwd"), "inside").expect("write");
    symlink("/etc", root.join("link")).expect("symlink");
    symlink("../../../../etc", root.join("rel")).expect("symlink");
    symlink("/etc/passwd", root.join("pw")).expect("symlink");
    symlink("loop", root.join("loop")).expect("symlink");
    symlink("/made/here", root.join("hole")).expect("symlink");
    // An absolute link below the top must restart at the root, not at its own directory.
    std::fs::create_dir_all(root.join("sub/etc")).expect("mkdir");
    std::fs::write(root.join("sub/etc/passwd"), "wrong").expect("write");
    symlink("/etc/passwd", root.join("sub/abs")).expect("symlink");
    symlink("../etc/passwd", root.join("sub/up")).expect("symlink");
    (tmp, root)
}

fn read(fd: OwnedFd) -> String {
    let mut s = String::new();
    std::fs::File::from(fd)
        .read_to_string(&mut s)
        .expect("read");
    s
}

fn open(root: &RootDir, p: &str, flags: OFlag) -> Result<OwnedFd> {
    root.open(Path::new(p), flags)
}

#[test]
fn absolute_symlink_to_etc_resolves_inside_the_root() {
    let (_tmp, path) = tree();
    for r in RESOLVERS {
        let root = RootDir::with_resolver(&path, r).expect("root");
        let fd = open(&root, "/link/passwd", OFlag::O_RDONLY).expect("open through link");
        assert_eq!(read(fd), "inside", "{r:?}");
        let fd = open(&root, "pw", OFlag::O_RDONLY).expect("open final link");
        assert_eq!(read(fd), "inside", "{r:?}");
        let fd = open(&root, "sub/abs", OFlag::O_RDONLY).expect("open nested absolute link");
        assert_eq!(read(fd), "inside", "{r:?}");
        let fd = open(&root, "sub/up", OFlag::O_RDONLY).expect("open nested relative link");
        assert_eq!(read(fd), "inside", "{r:?}");
    }
}

#[test]
fn dotdot_is_clamped_at_the_root() {
    let (_tmp, path) = tree();
    for r in RESOLVERS {
        let root = RootDir::with_resolver(&path, r).expect("root");
        let fd = open(&root, "../../../../etc/passwd", OFlag::O_RDONLY).expect("open ..");
        assert_eq!(read(fd), "inside", "{r:?}");
        let fd = open(&root, "/rel/passwd", OFlag::O_RDONLY).expect("open relative link");
        assert_eq!(read(fd), "inside", "{r:?}");
    }
}

#[test]
fn nofollow_refuses_a_final_symlink_but_o_path_gets_the_link() {
    let (_tmp, path) = tree();
    for r in RESOLVERS {
        let root = RootDir::with_resolver(&path, r).expect("root");
        let err = open(&root, "/pw", OFlag::O_RDONLY | OFlag::O_NOFOLLOW).expect_err("must refuse");
        assert_eq!(err.errno(), Some(Errno::ELOOP), "{r:?}: {err}");
        let fd = open(&root, "/pw", OFlag::O_PATH | OFlag::O_NOFOLLOW).expect("open link itself");
        let st = stat::fstat(&fd).expect("fstat");
        assert!(is_symlink(&st), "{r:?}");
    }
}

#[test]
fn symlink_loops_and_missing_paths_fail() {
    let (_tmp, path) = tree();
    for r in RESOLVERS {
        let root = RootDir::with_resolver(&path, r).expect("root");
        let err = open(&root, "/loop", OFlag::O_RDONLY).expect_err("loop");
        assert_eq!(err.errno(), Some(Errno::ELOOP), "{r:?}");
        let err = open(&root, "/hole", OFlag::O_RDONLY).expect_err("dangling");
        assert!(err.is_not_found(), "{r:?}: {err}");
        let err = open(&root, "/etc/passwd/x", OFlag::O_RDONLY).expect_err("through a file");
        assert_eq!(err.errno(), Some(Errno::ENOTDIR), "{r:?}");
    }
}

#[test]
fn magic_links_are_not_followed() {
    // /proc/self/root is a magic link to "/": through it, "etc/passwd" would be the host's.
    for r in RESOLVERS {
        let root = RootDir::with_resolver(Path::new("/proc/self"), r).expect("root");
        let res = open(&root, "root/etc/passwd", OFlag::O_RDONLY);
        assert!(
            res.is_err(),
            "{r:?}: opened the host's /etc/passwd through a magic link"
        );
    }
}

#[test]
fn mkdir_all_follows_symlinks_inside_the_root() {
    let (_tmp, path) = tree();
    for (i, r) in RESOLVERS.into_iter().enumerate() {
        let root = RootDir::with_resolver(&path, r).expect("root");
        let sub = format!("/link/new{i}/a/b");
        let fd = root.mkdir_all(Path::new(&sub), 0o755).expect("mkdir_all");
        assert!(path.join(format!("etc/new{i}/a/b")).is_dir(), "{r:?}");
        assert!(
            !Path::new(&format!("/etc/new{i}")).exists(),
            "{r:?}: created on the host"
        );
        assert_eq!(
            root.in_root_path(fd.as_fd()).expect("in root"),
            Path::new(&format!("/etc/new{i}/a/b"))
        );
        // A dangling absolute link is created inside the root too.
        root.mkdir_all(Path::new("/hole/x"), 0o755)
            .expect("mkdir through dangling link");
        assert!(path.join("made/here/x").is_dir(), "{r:?}");
        assert!(!Path::new("/made").exists(), "{r:?}: created on the host");
        let err = root
            .mkdir_all(Path::new("/etc/passwd/x"), 0o755)
            .expect_err("through a file");
        assert_eq!(err.errno(), Some(Errno::ENOTDIR));
    }
}

#[test]
fn create_file_makes_parents_and_keeps_existing_files() {
    let (_tmp, path) = tree();
    let root = RootDir::new(&path).expect("root");
    let fd = root
        .create_file(Path::new("/a/b/file"), 0o644)
        .expect("create");
    assert!(path.join("a/b/file").is_file());
    assert_eq!(
        root.in_root_path(fd.as_fd()).expect("in root"),
        Path::new("/a/b/file")
    );
    root.create_file(Path::new("/pw"), 0o644)
        .expect("existing via link");
    assert_eq!(
        std::fs::read_to_string(path.join("etc/passwd")).expect("read"),
        "inside"
    );
}

#[test]
fn lstat_does_not_follow_the_last_component() {
    let (_tmp, path) = tree();
    let root = RootDir::new(&path).expect("root");
    let st = root
        .lstat(Path::new("/pw"))
        .expect("lstat")
        .expect("exists");
    assert!(is_symlink(&st));
    let st = root
        .lstat(Path::new("/link/passwd"))
        .expect("lstat")
        .expect("exists");
    assert!(!is_symlink(&st));
    assert!(root.lstat(Path::new("/nothing")).expect("lstat").is_none());
    assert!(root.lstat(Path::new("/")).expect("lstat").is_some());
}

#[test]
fn open_refuses_o_creat() {
    let (_tmp, path) = tree();
    let root = RootDir::new(&path).expect("root");
    assert!(open(&root, "/new", OFlag::O_CREAT | OFlag::O_WRONLY).is_err());
    assert!(!path.join("new").exists());
}

#[test]
fn procfs_check() {
    let fd = open_procfs().expect("host /proc is procfs");
    check_procfs(fd.as_fd(), Path::new("/proc")).expect("procfs");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = std::fs::File::open(tmp.path()).expect("open");
    let err = check_procfs(dir.as_fd(), tmp.path()).expect_err("not procfs");
    assert!(matches!(err, SafePathError::NotProcfs { .. }), "{err}");
}

#[test]
fn clean_path_is_lexical_and_absolute() {
    for (input, want) in [
        ("", "/"),
        ("/", "/"),
        ("a/b", "/a/b"),
        ("/a/./b/", "/a/b"),
        ("/a//b", "/a/b"),
        ("/../../etc", "/etc"),
        ("/a/b/../c", "/a/c"),
        ("../x/..", "/"),
    ] {
        assert_eq!(clean_path(Path::new(input)), Path::new(want), "{input:?}");
    }
}

/// CVE-2024-21626: the walk refuses /proc magic links (an fd, cwd or root link) the way
/// openat2's RESOLVE_NO_MAGICLINKS does, and still follows the plain ones (self, mounts).
#[test]
fn walk_refuses_proc_magic_links() {
    let dir = tempfile::tempdir().expect("tempdir");
    let leaked = std::fs::File::open(dir.path()).expect("open a directory fd");
    let fd = std::os::fd::AsRawFd::as_raw_fd(&leaked);
    let root = RootDir::with_resolver(Path::new("/"), Resolver::Walk).expect("root");
    for p in [
        format!("/proc/self/fd/{fd}"),
        format!("/proc/self/fd/{fd}/x"),
        "/proc/self/cwd".to_string(),
        "/proc/self/root/etc".to_string(),
        "/proc/self/ns/net".to_string(),
    ] {
        let err = root
            .open(Path::new(&p), OFlag::O_PATH)
            .expect_err("a magic link must be refused");
        assert!(err.to_string().contains("magic link"), "{p}: {err}");
        let err = root
            .mkdir_all(&Path::new(&p).join("made"), 0o755)
            .expect_err("mkdir through a magic link must be refused");
        assert!(err.to_string().contains("CVE-2024-21626"), "{p}: {err}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).expect("read").count(), 0);
    let fd = open(&root, "/proc/self/status", OFlag::O_RDONLY).expect("plain /proc/self");
    assert!(read(fd).contains("Pid:"));
    open(&root, "/proc/mounts", OFlag::O_RDONLY).expect("plain /proc/mounts link");
}

/// A root made from an fd opened through another root (as the container's /proc is) keeps
/// every lookup below that fd: `..` and absolute symlinks stop at it, with both resolvers.
#[test]
fn from_fd_keeps_lookups_below_the_fd() {
    let (_tmp, path) = tree();
    for r in RESOLVERS {
        let outer = RootDir::with_resolver(&path, r).expect("root");
        let fd = open(
            &outer,
            "/sub",
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
        )
        .expect("open sub");
        let sub = RootDir::from_fd_with_resolver(fd, Path::new("/sub"), r).expect("from_fd");
        assert_eq!(sub.path(), Path::new("/sub"));
        for p in [
            "/etc/passwd",
            "../etc/passwd",
            "../../../etc/passwd",
            "abs",
            "up",
        ] {
            let fd = open(&sub, p, OFlag::O_RDONLY).expect(p);
            // sub/etc/passwd says "wrong" to the outer root; here it is the only one in reach.
            assert_eq!(read(fd), "wrong", "{r:?} {p}: left the fd");
        }
        let fd = open(&sub, "/etc", OFlag::O_PATH).expect("open etc");
        assert_eq!(
            sub.in_root_path(fd.as_fd()).expect("in root"),
            Path::new("/etc")
        );
        // The outer root's links lead nowhere from here.
        let err = open(&sub, "/link/passwd", OFlag::O_RDONLY).expect_err("no link in sub");
        assert!(err.is_not_found(), "{r:?}: {err}");
    }
}

/// The way masked.rs uses it: a root at a procfs fd follows procfs' own links (self, mounts)
/// and refuses magic links and anything above /proc.
#[test]
fn from_fd_on_procfs() {
    for r in RESOLVERS {
        let proc = RootDir::from_fd_with_resolver(
            open_procfs().expect("host /proc"),
            Path::new("/proc"),
            r,
        )
        .expect("from_fd");
        let fd = open(&proc, "/self/status", OFlag::O_RDONLY).expect("self/status");
        assert!(read(fd).contains("Pid:"), "{r:?}");
        open(&proc, "mounts", OFlag::O_RDONLY).expect("mounts link");
        let err = open(&proc, "../etc/passwd", OFlag::O_RDONLY).expect_err("above /proc");
        assert!(err.is_not_found(), "{r:?}: {err}");
        open(&proc, "/self/root/etc/passwd", OFlag::O_RDONLY)
            .expect_err("magic link to the host's root");
    }
}

#[test]
fn from_fd_refuses_a_file() {
    let (_tmp, path) = tree();
    let file = std::fs::File::open(path.join("etc/passwd")).expect("open");
    let err = RootDir::from_fd(file.into(), Path::new("/etc/passwd")).expect_err("a file");
    assert_eq!(err.errno(), Some(Errno::ENOTDIR), "{err}");
}
