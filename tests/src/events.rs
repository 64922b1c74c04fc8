//! Watching `ctr events` of one private containerd.
//!
//! `ctr events` gives no sign that its subscription is live, so [`EventWatcher::start`] labels the
//! namespace until it sees its own `/namespaces/update` come back: every event after that is
//! seen.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use crate::containerd::Containerd;

/// One event line: `DATE TIME +ZONE ZONE NAMESPACE TOPIC JSON`.
#[derive(Debug, Clone)]
pub struct Event {
    pub namespace: String,
    /// e.g. `/tasks/exit`.
    pub topic: String,
    pub payload: serde_json::Value,
}

impl Event {
    fn parse(line: &str) -> Option<Event> {
        let mut parts = line.splitn(7, ' ');
        let namespace = parts.nth(4)?.to_string();
        let topic = parts.next()?.to_string();
        let payload = serde_json::from_str(parts.next()?).ok()?;
        Some(Event {
            namespace,
            topic,
            payload,
        })
    }

    /// A string field of the payload ("" when absent).
    pub fn field(&self, name: &str) -> &str {
        self.payload
            .get(name)
            .and_then(|v| v.as_str())
            .unwrap_or("")
    }

    /// `exit_status` of a `/tasks/exit` or `/tasks/delete` (protobuf JSON omits 0).
    pub fn exit_status(&self) -> u64 {
        self.payload
            .get("exit_status")
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
    }
}

/// A running `ctr events` whose lines of one namespace are kept in order.
pub struct EventWatcher {
    child: Child,
    lines: Receiver<String>,
    namespace: String,
    seen: Vec<Event>,
}

impl EventWatcher {
    /// Subscribes and returns once the subscription is known to be live.
    #[track_caller]
    pub fn start(cd: &Containerd) -> EventWatcher {
        let mut child = cd
            .ctr_command(["events"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start ctr events: {e}"));
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take();
        thread::spawn(move || {
            if let Some(out) = stdout {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        });
        let mut watcher = EventWatcher {
            child,
            lines: rx,
            namespace: cd.namespace().to_string(),
            seen: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        for round in 0.. {
            assert!(
                Instant::now() < deadline,
                "ctr events never showed the namespace label the test set"
            );
            let label = format!("myrt-e2e-sync={round}");
            cd.ctr(["namespaces", "label", cd.namespace(), label.as_str()])
                .ok();
            let synced = |e: &Event| {
                e.topic == "/namespaces/update"
                    && e.payload["labels"]["myrt-e2e-sync"] == round.to_string().as_str()
            };
            if watcher.try_wait_for(synced, Duration::from_millis(300)) {
                break;
            }
        }
        watcher.seen.clear();
        watcher
    }

    fn try_wait_for(&mut self, pred: impl Fn(&Event) -> bool, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(event) =
                        Event::parse(&line).filter(|e| e.namespace == self.namespace)
                    {
                        let hit = pred(&event);
                        self.seen.push(event);
                        if hit {
                            return true;
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    return false
                }
            }
        }
    }

    /// Reads events until one matches `pred`; returns all events of the namespace seen since
    /// the watcher started. Panics, listing them, after `timeout`.
    #[track_caller]
    pub fn wait_for(&mut self, pred: impl Fn(&Event) -> bool, timeout: Duration) -> &[Event] {
        if !self.seen.iter().any(&pred) && !self.try_wait_for(&pred, timeout) {
            panic!(
                "the awaited event did not come within {timeout:?}; seen: {:#?}",
                self.topics()
            );
        }
        &self.seen
    }

    /// `topic id` of each event seen, for messages.
    pub fn topics(&self) -> Vec<String> {
        self.seen
            .iter()
            .map(|e| {
                let id = [e.field("exec_id"), e.field("id"), e.field("container_id")]
                    .into_iter()
                    .find(|s| !s.is_empty())
                    .unwrap_or("");
                format!("{} {id}", e.topic)
            })
            .collect()
    }
}

impl Drop for EventWatcher {
    fn drop(&mut self) {
        // Child::kill signals exactly this child's pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_ctr_events_line() {
        let line = r#"2026-11-28 05:01:19.127583355 +0000 UTC t1 /tasks/exit {"container_id":"e2","id":"x1","pid":7309,"exit_status":5}"#;
        let e = Event::parse(line).expect("a valid line");
        assert_eq!(e.namespace, "t1");
        assert_eq!(e.topic, "/tasks/exit");
        assert_eq!(e.field("id"), "x1");
        assert_eq!(e.exit_status(), 5);
        let zero = Event::parse(r#"2026-11-28 05:01:18.9 +0000 UTC t1 /tasks/exit {"id":"e1"}"#);
        assert_eq!(zero.map(|e| e.exit_status()), Some(0));
        assert!(Event::parse("garbage").is_none());
    }
}
