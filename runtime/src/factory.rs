//! The factory: containers live as directories under a state root (`/run/myrt` by default), so
//! any process — the shim, the `myrt` CLI, a restarted shim — can load them again.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::container::{Container, ContainerError, CreateOpts, RestoreOpts, Result};

pub const DEFAULT_ROOT: &str = "/run/myrt";
/// Container ids longer than this are refused (they become directory names and cgroup paths).
pub const MAX_ID_LEN: usize = 1024;

#[derive(Debug, Clone)]
pub struct Factory {
    root: PathBuf,
}

impl Factory {
    /// A factory over `root`, created (mode 0700) if missing.
    pub fn new(root: impl Into<PathBuf>) -> Result<Factory> {
        let root = root.into();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&root)
            .map_err(crate::container::io_err(&root))?;
        Ok(Factory { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates container `id` from the bundle; returns when its init waits for `start`.
    pub fn create(&self, id: &str, bundle: &Path, opts: CreateOpts) -> Result<Container> {
        validate_id(id)?;
        Container::create(&self.root.join(id), id, bundle, opts)
    }

    /// Restores container `id` from a checkpoint with the bundle; returns when its restored
    /// tree runs.
    pub fn restore(&self, id: &str, bundle: &Path, opts: RestoreOpts) -> Result<Container> {
        validate_id(id)?;
        Container::restore(&self.root.join(id), id, bundle, opts)
    }

    pub fn load(&self, id: &str) -> Result<Container> {
        validate_id(id)?;
        let dir = self.root.join(id);
        if !dir.is_dir() {
            return Err(ContainerError::NotFound(id.to_string()));
        }
        Container::load_from(&dir)
    }

    /// Ids of every container under the root, sorted.
    pub fn list(&self) -> Result<Vec<String>> {
        let mut ids: Vec<String> = fs::read_dir(&self.root)
            .map_err(crate::container::io_err(&self.root))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join(crate::container::STATE_FILE).is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

/// Container ids become directory names: no '/', no "." or "..", no NUL, bounded length.
pub fn validate_id(id: &str) -> Result<()> {
    let bad = |why: &str| Err(ContainerError::InvalidId(format!("{id:?}: {why}")));
    if id.is_empty() {
        return bad("empty");
    }
    if id.len() > MAX_ID_LEN {
        return bad("longer than 1024 bytes");
    }
    if id == "." || id == ".." {
        return bad("not a valid name");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'+'))
    {
        return bad("only letters, digits and _ - . + are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["a", "abc-123", "x.y_z", &"a".repeat(1024)] {
            validate_id(ok).unwrap();
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../x",
            "a\0b",
            "sp ace",
            &"a".repeat(1025),
        ] {
            assert!(validate_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn load_missing_and_list() {
        let dir = tempfile::tempdir().unwrap();
        let f = Factory::new(dir.path().join("root")).unwrap();
        assert!(matches!(f.load("nope"), Err(ContainerError::NotFound(_))));
        assert!(f.list().unwrap().is_empty());
        fs::create_dir(f.root().join("c1")).unwrap();
        fs::write(f.root().join("c1/state.json"), "{}").unwrap();
        fs::create_dir(f.root().join("junk")).unwrap();
        assert_eq!(f.list().unwrap(), vec!["c1".to_string()]);
    }
}
