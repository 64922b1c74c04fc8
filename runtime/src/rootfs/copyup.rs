//! "tmpcopyup": the content a directory had before a tmpfs was mounted over it, copied into
//! the tmpfs. The old content stays readable through an fd opened before the mount. Nothing
//! is followed: files are opened with O_NOFOLLOW, symlinks are copied as symlinks.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{self, AtFlags, OFlag};
use nix::sys::stat::{self, Mode, SFlag};
use nix::unistd::{self, Gid, Uid};

const MAX_DEPTH: usize = 128;

/// Copies everything in `src` into `dst` (both directory fds), keeping modes and owners.
pub(super) fn copy_tree(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> Result<(), Errno> {
    copy_dir(src, dst, 0)
}

fn copy_dir(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, depth: usize) -> Result<(), Errno> {
    if depth > MAX_DEPTH {
        return Err(Errno::ELOOP);
    }
    let reader = fcntl::openat(
        src,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut dir = Dir::from_fd(reader)?;
    let names: Vec<_> = dir
        .iter()
        .filter_map(Result::ok)
        .filter(|e| !matches!(e.file_name().to_bytes(), b"." | b".."))
        .map(|e| e.file_name().to_owned())
        .collect();
    for name in names {
        let st = stat::fstatat(src, name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW)?;
        let perm = Mode::from_bits_truncate(st.st_mode & 0o7777);
        let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
        match kind {
            SFlag::S_IFDIR => {
                match stat::mkdirat(dst, name.as_c_str(), Mode::from_bits_truncate(0o700)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(e),
                }
                let s = open_nofollow(src, &name, OFlag::O_DIRECTORY | OFlag::O_RDONLY)?;
                let d = open_nofollow(dst, &name, OFlag::O_DIRECTORY | OFlag::O_RDONLY)?;
                copy_dir(s.as_fd(), d.as_fd(), depth + 1)?;
                stat::fchmod(&d, perm)?;
            }
            SFlag::S_IFREG => {
                let s = open_nofollow(src, &name, OFlag::O_RDONLY)?;
                let d = fcntl::openat(
                    dst,
                    name.as_c_str(),
                    OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_WRONLY
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )?;
                let (mut s, mut d) = (File::from(s), File::from(d));
                std::io::copy(&mut s, &mut d)
                    .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
                stat::fchmod(&d, perm)?;
            }
            SFlag::S_IFLNK => {
                let target = fcntl::readlinkat(src, name.as_c_str())?;
                unistd::symlinkat(target.as_os_str(), dst, name.as_c_str())?;
            }
            SFlag::S_IFCHR | SFlag::S_IFBLK | SFlag::S_IFIFO => {
                stat::mknodat(dst, name.as_c_str(), kind, perm, st.st_rdev)?;
            }
            // Sockets cannot be copied; an unknown type is skipped as well.
            _ => continue,
        }
        unistd::fchownat(
            dst,
            name.as_c_str(),
            Some(Uid::from_raw(st.st_uid)),
            Some(Gid::from_raw(st.st_gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
        if kind != SFlag::S_IFLNK {
            // chown may clear setuid/setgid bits: set the mode last.
            stat::fchmodat(
                dst,
                name.as_c_str(),
                perm,
                stat::FchmodatFlags::NoFollowSymlink,
            )
            .or_else(|e| {
                if e == Errno::EOPNOTSUPP {
                    Ok(())
                } else {
                    Err(e)
                }
            })?;
        }
    }
    Ok(())
}

fn open_nofollow(
    dir: BorrowedFd<'_>,
    name: &std::ffi::CStr,
    flags: OFlag,
) -> Result<OwnedFd, Errno> {
    fcntl::openat(
        dir,
        name,
        flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    #[test]
    fn copies_files_dirs_and_symlinks() {
        let src = tempfile::tempdir().expect("tempdir");
        let dst = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(src.path().join("sub")).expect("mkdir");
        std::fs::write(src.path().join("sub/file"), b"hello").expect("write");
        std::fs::set_permissions(
            src.path().join("sub/file"),
            std::fs::Permissions::from_mode(0o640),
        )
        .expect("chmod");
        symlink("/etc/passwd", src.path().join("link")).expect("symlink");
        let s = File::open(src.path()).expect("open src");
        let d = File::open(dst.path()).expect("open dst");
        copy_tree(s.as_fd(), d.as_fd()).expect("copy");
        assert_eq!(
            std::fs::read(dst.path().join("sub/file")).expect("read"),
            b"hello"
        );
        let mode = std::fs::metadata(dst.path().join("sub/file"))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o640);
        assert_eq!(
            std::fs::read_link(dst.path().join("link")).expect("readlink"),
            std::path::Path::new("/etc/passwd")
        );
    }
}
