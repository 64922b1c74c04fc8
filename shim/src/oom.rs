//! TaskOOM events: one watcher task per container polls the engine's [`OomNotifier`] (tokio
//! `AsyncFd`) and publishes `/tasks/oom` when the OOM killer hits the container's cgroup.
//!
//! Ordering: CRI marks a container OOMKilled only if TaskOOM arrives before its TaskExit. The
//! kernel counts a kill before it sends the SIGKILL, so [`OomWatch::flush`], called after the
//! reap and before TaskExit is sent, always sees it; the watcher and `flush` check and publish
//! under one lock, so whichever sees the kill first publishes it, once, ahead of the exit.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};

use log::{debug, warn};
use myrt_runtime::cgroups::oom::OomNotifier;
use myrt_runtime::cgroups::CgroupConfig;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::task::JoinHandle;

use crate::events::Events;
use crate::process::lock;

/// The notifier shared by the watcher task and [`OomWatch::flush`].
struct Shared {
    id: String,
    events: Events,
    notifier: Mutex<OomNotifier>,
    /// The notifier's fd; it lives as long as `notifier`, i.e. as long as this struct.
    fd: RawFd,
}

impl Shared {
    /// Consumes what is pending and publishes one TaskOOM if any kill was counted (as
    /// containerd's runc shim does per increase). Returns whether the notifier is closed.
    fn check_and_publish(&self) -> bool {
        let mut n = lock(&self.notifier);
        match n.check() {
            Ok(0) => {}
            Ok(kills) => {
                warn!("container {}: OOM killer hit it ({kills} kills)", self.id);
                self.events.oom(&self.id);
            }
            Err(e) => warn!("container {}: oom check: {e}", self.id),
        }
        n.is_closed()
    }
}

/// `AsyncFd` wants to own what it polls: a handle that keeps the notifier (and its fd) alive.
struct PollHandle(Arc<Shared>);

impl AsRawFd for PollHandle {
    fn as_raw_fd(&self) -> RawFd {
        self.0.fd
    }
}

/// The OOM watch of one container; stops its task when dropped.
pub struct OomWatch {
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl OomWatch {
    /// Starts watching the cgroup of `config` (a running tokio runtime is needed). A cgroup that
    /// cannot be watched is logged, not an error (containerd's runc shim does the same).
    pub async fn start(id: &str, config: CgroupConfig, events: &Events) -> Option<OomWatch> {
        let made = tokio::task::spawn_blocking(move || OomNotifier::from_config(&config)).await;
        let notifier = match made {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                warn!("container {id}: no OOM events: {e}");
                return None;
            }
            Err(e) => {
                warn!("container {id}: no OOM events: {e}");
                return None;
            }
        };
        let shared = Arc::new(Shared {
            id: id.to_string(),
            events: events.clone(),
            fd: notifier.as_raw_fd(),
            notifier: Mutex::new(notifier),
        });
        // SAFETY: the handle holds an Arc of `shared`, whose notifier owns the fd (an OwnedFd it
        // never replaces): the fd stays open and the same for as long as the AsyncFd lives.
        let registered = unsafe {
            AsyncFd::register_with_interest(PollHandle(shared.clone()), Interest::READABLE)
        };
        let afd = match registered {
            Ok(a) => a,
            Err(e) => {
                warn!("container {id}: no OOM events: poll the notifier: {e}");
                return None;
            }
        };
        let task = tokio::spawn(watch(afd));
        Some(OomWatch {
            shared,
            task: Mutex::new(Some(task)),
        })
    }

    /// Publishes an OOM kill that is counted but not yet published; call right before a
    /// TaskExit goes out.
    pub fn flush(&self) {
        self.shared.check_and_publish();
    }

    /// Ends the watcher (the container is being deleted).
    pub fn stop(&self) {
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }
}

impl Drop for OomWatch {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn watch(afd: AsyncFd<PollHandle>) {
    let shared = afd.get_ref().0.clone();
    loop {
        let mut ready = match afd.readable().await {
            Ok(r) => r,
            Err(e) => {
                warn!("container {}: poll OOM notifier: {e}", shared.id);
                return;
            }
        };
        let closed = shared.check_and_publish();
        // check() read everything pending; a newer wakeup keeps the fd ready
        ready.clear_ready();
        if closed {
            debug!(
                "container {}: OOM watch ends: cgroup empty or gone",
                shared.id
            );
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};
    use std::time::{Duration, SystemTime};

    use containerd_shim::protos::topics;
    use myrt_runtime::cgroups::{new_manager, Manager};
    use myrt_runtime::Pid;
    use oci_spec::runtime::LinuxResources;

    use super::*;

    /// Kills what is left and removes the cgroup, whatever happens.
    struct Guard(Box<dyn Manager>);

    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.kill_all();
            let _ = self.0.remove();
        }
    }

    fn resources(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    /// A process of a 16 MiB cgroup that grows past it is OOM-killed: the watcher and the flush
    /// made before the exit event publish one TaskOOM between them, ahead of that exit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn oom_published_once_before_the_exit() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping: the OOM watch test needs root (cgroups)");
            return;
        }
        let nanos = SystemTime::UNIX_EPOCH
            .elapsed()
            .map_or(0, |d| d.subsec_nanos());
        let path = format!("/myrt-test-shim-oom-{}-{nanos}", std::process::id());
        let g = Guard(new_manager(Some(&path), "unused", false).unwrap());
        g.0.create().unwrap();
        let limit = 16 << 20;
        let both = format!(r#"{{"memory":{{"limit":{limit},"swap":{limit}}}}}"#);
        if let Err(e) = g.0.apply(&resources(&both)) {
            // no swap accounting on this host: the limit alone
            assert!(e.is_unsupported(), "{e}");
            let alone = format!(r#"{{"memory":{{"limit":{limit}}}}}"#);
            g.0.apply(&resources(&alone)).unwrap();
        }
        let (events, mut rx) = Events::detached();
        let watch = OomWatch::start("c1", g.0.config(), &events)
            .await
            .expect("an OOM watch");

        let mut child = Command::new("sh")
            .args(["-c", "read x; exec tail /dev/zero"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = Pid::new(child.id() as i32).unwrap();
        g.0.add_task(pid).unwrap();
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
        // what watch_exit does after the reap
        watch.flush();
        events.exit("c1", "c1", pid.as_raw() as u32, 137, SystemTime::now());

        let topic = |t: Option<(&'static str, _)>| t.map(|(topic, _)| topic);
        assert_eq!(topic(rx.recv().await), Some(topics::TASK_OOM_EVENT_TOPIC));
        assert_eq!(topic(rx.recv().await), Some(topics::TASK_EXIT_EVENT_TOPIC));
        // the watcher's own wakeup comes later (v2: kernfs notifies from a work queue)
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(rx.try_recv().is_err(), "one TaskOOM only");
        watch.stop();
    }
}
