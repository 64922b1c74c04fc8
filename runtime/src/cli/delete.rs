//! `delete`: destroy a container; `--force` also kills a running one and makes deleting a
//! container that does not exist a success, as in runc.

use clap::Args;
use myrt_runtime::ContainerError;

use super::{io_err, Global, Result};

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// forcibly deletes the container if it is still running (uses SIGKILL)
    #[arg(short = 'f', long)]
    pub force: bool,
    /// the container id
    #[arg(value_name = "container-id")]
    pub id: String,
}

pub fn delete(g: &Global, a: DeleteArgs) -> Result<i32> {
    myrt_runtime::factory::validate_id(&a.id)?;
    let factory = g.factory()?;
    let err = match factory.load(&a.id) {
        Ok(mut c) => {
            c.destroy(a.force)?;
            return Ok(0);
        }
        Err(e) => e,
    };
    // A directory without a state file is what an aborted create leaves: runc removes it.
    let dir = factory.root().join(&a.id);
    let leftover = dir.is_dir() && !dir.join("state.json").exists();
    if leftover {
        std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
    }
    match err {
        ContainerError::NotFound(_) if a.force => Ok(0),
        _ if leftover && a.force => Ok(0),
        _ if leftover => Err(ContainerError::NotFound(a.id).into()),
        e => Err(e.into()),
    }
}
