//! Task events to containerd, in the order they were sent: one queue, one forwarder task that
//! hands them to the crate's publisher one after the other.

use std::time::{SystemTime, UNIX_EPOCH};

use containerd_shim::protos::api::Mount;
use containerd_shim::protos::events::task::{
    TaskCheckpointed, TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO,
    TaskOOM, TaskPaused, TaskResumed, TaskStart,
};
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::{MessageDyn, MessageField};
use containerd_shim::protos::topics;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::Context;
use log::{debug, warn};
use tokio::sync::mpsc;

use crate::io::StdioPaths;

/// One event and its topic.
type Item = (&'static str, Box<dyn MessageDyn>);

/// The sending side; cheap to clone.
#[derive(Clone)]
pub struct Events {
    tx: mpsc::UnboundedSender<Item>,
}

impl Events {
    /// Starts the forwarder for events of `namespace`.
    pub fn spawn(publisher: RemotePublisher, namespace: String) -> Events {
        let (tx, mut rx) = mpsc::unbounded_channel::<Item>();
        tokio::spawn(async move {
            while let Some((topic, event)) = rx.recv().await {
                debug!("event {topic}: {event:?}");
                if let Err(e) = publisher
                    .publish(Context::default(), topic, &namespace, event)
                    .await
                {
                    warn!("publish {topic}: {e}");
                }
            }
        });
        Events { tx }
    }

    /// Events that go nowhere but this receiver (tests).
    #[cfg(test)]
    pub fn detached() -> (Events, mpsc::UnboundedReceiver<Item>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Events { tx }, rx)
    }

    fn send(&self, topic: &'static str, event: Box<dyn MessageDyn>) {
        if self.tx.send((topic, event)).is_err() {
            warn!("event {topic} dropped: the forwarder has stopped");
        }
    }

    pub fn create(&self, id: &str, bundle: &str, rootfs: Vec<Mount>, io: &StdioPaths, pid: u32) {
        self.send(
            topics::TASK_CREATE_EVENT_TOPIC,
            Box::new(TaskCreate {
                container_id: id.to_string(),
                bundle: bundle.to_string(),
                rootfs,
                io: MessageField::some(TaskIO {
                    stdin: io.stdin.clone(),
                    stdout: io.stdout.clone(),
                    stderr: io.stderr.clone(),
                    terminal: io.terminal,
                    ..Default::default()
                }),
                pid,
                ..Default::default()
            }),
        );
    }

    pub fn start(&self, id: &str, pid: u32) {
        self.send(
            topics::TASK_START_EVENT_TOPIC,
            Box::new(TaskStart {
                container_id: id.to_string(),
                pid,
                ..Default::default()
            }),
        );
    }

    /// `id` is the container id for an init, the exec id for an exec.
    pub fn exit(&self, container_id: &str, id: &str, pid: u32, status: u32, at: SystemTime) {
        self.send(
            topics::TASK_EXIT_EVENT_TOPIC,
            Box::new(TaskExit {
                container_id: container_id.to_string(),
                id: id.to_string(),
                pid,
                exit_status: status,
                exited_at: MessageField::some(timestamp(at)),
                ..Default::default()
            }),
        );
    }

    pub fn delete(&self, id: &str, pid: u32, status: u32, at: Option<SystemTime>) {
        self.send(
            topics::TASK_DELETE_EVENT_TOPIC,
            Box::new(TaskDelete {
                container_id: id.to_string(),
                id: id.to_string(),
                pid,
                exit_status: status,
                exited_at: at.map(timestamp).into(),
                ..Default::default()
            }),
        );
    }

    pub fn exec_added(&self, id: &str, exec_id: &str) {
        self.send(
            topics::TASK_EXEC_ADDED_EVENT_TOPIC,
            Box::new(TaskExecAdded {
                container_id: id.to_string(),
                exec_id: exec_id.to_string(),
                ..Default::default()
            }),
        );
    }

    pub fn exec_started(&self, id: &str, exec_id: &str, pid: u32) {
        self.send(
            topics::TASK_EXEC_STARTED_EVENT_TOPIC,
            Box::new(TaskExecStarted {
                container_id: id.to_string(),
                exec_id: exec_id.to_string(),
                pid,
                ..Default::default()
            }),
        );
    }

    /// The OOM killer hit the container's cgroup (see oom.rs for its order with TaskExit).
    pub fn oom(&self, id: &str) {
        self.send(
            topics::TASK_OOM_EVENT_TOPIC,
            Box::new(TaskOOM {
                container_id: id.to_string(),
                ..Default::default()
            }),
        );
    }

    pub fn paused(&self, id: &str) {
        self.send(
            topics::TASK_PAUSED_EVENT_TOPIC,
            Box::new(TaskPaused {
                container_id: id.to_string(),
                ..Default::default()
            }),
        );
    }

    /// `checkpoint`: where the images went (runc's shim leaves it empty; containerd knows).
    pub fn checkpointed(&self, id: &str, checkpoint: &str) {
        self.send(
            topics::TASK_CHECKPOINTED_EVENT_TOPIC,
            Box::new(TaskCheckpointed {
                container_id: id.to_string(),
                checkpoint: checkpoint.to_string(),
                ..Default::default()
            }),
        );
    }

    pub fn resumed(&self, id: &str) {
        self.send(
            topics::TASK_RESUMED_EVENT_TOPIC,
            Box::new(TaskResumed {
                container_id: id.to_string(),
                ..Default::default()
            }),
        );
    }
}

/// A protobuf timestamp of `t`.
pub fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
        ..Default::default()
    }
}
