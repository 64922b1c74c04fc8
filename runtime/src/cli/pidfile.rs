//! `--pid-file`: the pid, without a newline, written atomically (a hidden temp file in the same
//! directory renamed over the target), like runc's createPidFile.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use myrt_runtime::Pid;

use super::{io_err, CliError, Result};

pub fn write(path: &Path, pid: Pid) -> Result<()> {
    let name = path.file_name().ok_or_else(|| {
        CliError::Usage(format!("--pid-file {}: not a file name", path.display()))
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(".{}", name.to_string_lossy()));
    let res = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o666)
            .custom_flags(libc::O_SYNC)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        write!(f, "{}", pid.as_raw()).map_err(io_err(&tmp))?;
        drop(f);
        fs::rename(&tmp, path).map_err(io_err(path))
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_pid_without_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ctr.pid");
        write(&p, Pid::new(4242).unwrap()).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "4242");
        write(&p, Pid::new(7).unwrap()).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "7");
        assert!(!dir.path().join(".ctr.pid").exists());
    }
}
