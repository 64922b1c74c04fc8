//! The container state machine: creating → created → running ⇄ paused → stopped.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a container is doing, as runc reports it in `state` (OCI status plus "paused").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

/// The verbs that change or need a status; used to check transitions and name them in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Start,
    Exec,
    Signal,
    Pause,
    Resume,
    Update,
    Checkpoint,
    Delete,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Start => "start",
            Op::Exec => "exec",
            Op::Signal => "signal",
            Op::Pause => "pause",
            Op::Resume => "resume",
            Op::Update => "update",
            Op::Checkpoint => "checkpoint",
            Op::Delete => "delete",
        })
    }
}

impl Status {
    /// Whether `op` is legal in this status (runc's rules). `Delete` of a live container needs
    /// force, which the caller checks separately.
    pub fn allows(self, op: Op) -> bool {
        use Status::*;
        match op {
            Op::Start => self == Created,
            Op::Exec => matches!(self, Created | Running),
            Op::Signal => matches!(self, Created | Running | Paused),
            Op::Pause => self == Running,
            Op::Resume => self == Paused,
            Op::Update => matches!(self, Created | Running | Paused),
            // runc: only a live tree can be dumped; CRIU freezes a running one itself.
            Op::Checkpoint => matches!(self, Running | Paused),
            Op::Delete => matches!(self, Created | Stopped),
        }
    }

    /// The status after `op` succeeds.
    pub fn after(self, op: Op) -> Status {
        match op {
            Op::Start => Status::Running,
            Op::Pause => Status::Paused,
            Op::Resume => Status::Running,
            Op::Delete => Status::Stopped,
            Op::Exec | Op::Signal | Op::Update | Op::Checkpoint => self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_follow_runc() {
        assert!(Status::Created.allows(Op::Start));
        assert!(!Status::Running.allows(Op::Start));
        assert!(!Status::Stopped.allows(Op::Start));
        assert!(Status::Running.allows(Op::Pause));
        assert!(!Status::Created.allows(Op::Pause));
        assert!(!Status::Paused.allows(Op::Pause));
        assert!(Status::Paused.allows(Op::Resume));
        assert!(!Status::Running.allows(Op::Resume));
        assert!(Status::Paused.allows(Op::Signal));
        assert!(!Status::Stopped.allows(Op::Signal));
        assert!(!Status::Paused.allows(Op::Exec));
        assert!(Status::Stopped.allows(Op::Delete));
        assert!(!Status::Running.allows(Op::Delete));
        assert!(Status::Paused.allows(Op::Update));
        assert!(!Status::Stopped.allows(Op::Update));
        assert!(Status::Running.allows(Op::Checkpoint));
        assert!(!Status::Created.allows(Op::Checkpoint));
        assert!(!Status::Stopped.allows(Op::Checkpoint));
        assert_eq!(Status::Paused.after(Op::Update), Status::Paused);
        assert_eq!(Status::Running.after(Op::Pause), Status::Paused);
        assert_eq!(Status::Paused.after(Op::Resume), Status::Running);
    }

    #[test]
    fn serializes_lowercase() {
        assert_eq!(
            serde_json::to_string(&Status::Paused).unwrap(),
            "\"paused\""
        );
    }
}
