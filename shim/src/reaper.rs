//! The shim's one reaper. The shim is a child subreaper: container inits and exec'd processes
//! are reparented to it, and every exit reaches it as SIGCHLD.
//!
//! A `waitpid(-1)` loop would also take the exit status of children that the engine waits for
//! by pid (hooks, the stage-1 helper), so this reaper only reaps what it may:
//! - pids someone watches ([`Reaper::watch`]) are reaped with `waitpid(pid)`;
//! - any other zombie is first only looked at (`waitid(WNOWAIT)`); if nobody reaps it within
//!   [`GRACE`] it is an orphan (or an exec that exited before its pid was known): it is reaped
//!   and its status kept for [`UNKNOWN_TTL`] in case its pid is watched after all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use log::{debug, warn};
use myrt_runtime::Pid;
use nix::errno::Errno;
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{oneshot, Notify};

/// How long a zombie that nobody watches is left for its owner (the engine's `Child::wait`).
const GRACE: Duration = Duration::from_millis(200);
/// How long the exit of an unwatched pid is kept for a late [`Reaper::watch`].
const UNKNOWN_TTL: Duration = Duration::from_secs(10);
/// Exit status reported when a watched process vanished without us seeing its status.
pub const UNKNOWN_STATUS: i32 = 255;

/// Exit status as containerd reports it: the exit code, or 128 + the signal number.
pub fn exit_status(status: WaitStatus) -> Option<(i32, i32)> {
    match status {
        WaitStatus::Exited(pid, code) => Some((pid.as_raw(), code)),
        WaitStatus::Signaled(pid, sig, _) => Some((pid.as_raw(), 128 + sig as i32)),
        _ => None,
    }
}

#[derive(Default)]
struct State {
    watched: HashMap<i32, oneshot::Sender<i32>>,
    /// Exits nobody watched yet: pid → (status, when reaped).
    unknown: HashMap<i32, (i32, Instant)>,
    /// Zombies left for their owner: pid → first seen.
    pending: HashMap<i32, Instant>,
}

struct Inner {
    state: Mutex<State>,
    wake: Notify,
}

/// Handle on the reaper task; cheap to clone.
#[derive(Clone)]
pub struct Reaper {
    inner: Arc<Inner>,
}

impl Reaper {
    /// Starts the reaper task on the current tokio runtime.
    pub fn start() -> std::io::Result<Reaper> {
        let mut sigchld = signal(SignalKind::child())?;
        let reaper = Reaper {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                wake: Notify::new(),
            }),
        };
        let r = reaper.clone();
        tokio::spawn(async move {
            loop {
                let next = r.scan();
                let sleep = async {
                    match next {
                        Some(at) => tokio::time::sleep_until(at.into()).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = sigchld.recv() => {}
                    _ = r.inner.wake.notified() => {}
                    _ = sleep => {}
                }
            }
        });
        Ok(reaper)
    }

    /// A reaper without its task, for tests of callers that must not reap the test's children.
    #[cfg(test)]
    pub fn detached() -> Reaper {
        Reaper {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                wake: Notify::new(),
            }),
        }
    }

    /// Delivers the exit status of `pid` once it exits (at once if it already did).
    pub fn watch(&self, pid: Pid) -> oneshot::Receiver<i32> {
        let (tx, rx) = oneshot::channel();
        let raw = pid.as_raw();
        {
            let mut st = self.lock();
            match st.unknown.remove(&raw) {
                // A live process with this pid means the kept exit belonged to an older one.
                Some((status, _)) if !pid.exists() => {
                    let _ = tx.send(status);
                    return rx;
                }
                _ => {}
            }
            st.watched.insert(raw, tx);
        }
        // It may be a zombie already: look now rather than at the next SIGCHLD.
        self.inner.wake.notify_one();
        rx
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reaps what may be reaped; returns when to look again for zombies left to their owner.
    fn scan(&self) -> Option<Instant> {
        let mut st = self.lock();
        let now = Instant::now();
        st.unknown
            .retain(|_, (_, at)| now.duration_since(*at) < UNKNOWN_TTL);
        st.pending
            .retain(|_, seen| now.duration_since(*seen) < UNKNOWN_TTL);

        // 1. Every watched pid, by pid: a zombie left for its owner cannot hide them.
        let watched: Vec<i32> = st.watched.keys().copied().collect();
        for raw in watched {
            let Some(pid) = Pid::new(raw) else { continue };
            match waitpid(pid.as_nix(), Some(WaitPidFlag::WNOHANG)) {
                Ok(ws) => {
                    if let Some((_, status)) = exit_status(ws) {
                        deliver(&mut st, raw, status);
                    }
                }
                // Not (yet) our child: still under the engine's stage 1, or gone for good.
                Err(Errno::ECHILD) if !pid.exists() => {
                    warn!("pid {raw} vanished without an exit status (reaped elsewhere)");
                    deliver(&mut st, raw, UNKNOWN_STATUS);
                }
                Err(_) => {}
            }
        }

        // 2. Other zombies: look without reaping.
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        loop {
            let (raw, _) = waitid(Id::All, flags).ok().and_then(exit_status)?;
            if !st.watched.contains_key(&raw) {
                let seen = *st.pending.entry(raw).or_insert(now);
                if now.duration_since(seen) < GRACE {
                    return Some(seen + GRACE);
                }
            }
            let pid = Pid::new(raw)?;
            match waitpid(pid.as_nix(), Some(WaitPidFlag::WNOHANG))
                .ok()
                .and_then(exit_status)
            {
                Some((_, status)) => {
                    st.pending.remove(&raw);
                    if st.watched.contains_key(&raw) {
                        deliver(&mut st, raw, status);
                    } else {
                        debug!("reaped unwatched pid {raw} (status {status})");
                        st.unknown.insert(raw, (status, now));
                    }
                }
                // Its owner reaped it between the look and ours: look again.
                None => continue,
            }
        }
    }
}

fn deliver(st: &mut State, raw: i32, status: i32) {
    if let Some(tx) = st.watched.remove(&raw) {
        let _ = tx.send(status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;
    use std::process::Command;

    #[test]
    fn status_mapping() {
        let p = nix::unistd::Pid::from_raw(42);
        assert_eq!(exit_status(WaitStatus::Exited(p, 3)), Some((42, 3)));
        assert_eq!(
            exit_status(WaitStatus::Signaled(p, Signal::SIGKILL, false)),
            Some((42, 137))
        );
        assert_eq!(
            exit_status(WaitStatus::Signaled(p, Signal::SIGTERM, true)),
            Some((42, 143))
        );
        assert_eq!(exit_status(WaitStatus::StillAlive), None);
    }

    // The tests below spawn real children of the test process; each runs in its own process
    // (the reaper looks at every child of the process), so they live in one test.
    #[test]
    fn reaps_watched_leaves_owned_children_and_keeps_early_exits() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let reaper = Reaper::start().unwrap();

            // A watched child: its status comes through, signals as 128+n.
            let child = Command::new("sh").args(["-c", "exit 7"]).spawn().unwrap();
            let pid = Pid::new(child.id() as i32).unwrap();
            let rx = reaper.watch(pid);
            assert_eq!(
                tokio::time::timeout(Duration::from_secs(5), rx)
                    .await
                    .unwrap()
                    .unwrap(),
                7
            );
            std::mem::forget(child);

            let child = Command::new("sleep").arg("30").spawn().unwrap();
            let pid = Pid::new(child.id() as i32).unwrap();
            let rx = reaper.watch(pid);
            pid.signal(Signal::SIGKILL).unwrap();
            assert_eq!(
                tokio::time::timeout(Duration::from_secs(5), rx)
                    .await
                    .unwrap()
                    .unwrap(),
                137
            );
            std::mem::forget(child);

            // An unwatched child whose owner waits for it by pid keeps its status.
            let owned = tokio::task::spawn_blocking(|| {
                let mut c = Command::new("sh").args(["-c", "exit 3"]).spawn().unwrap();
                std::thread::sleep(Duration::from_millis(50));
                c.wait().unwrap().code()
            });
            assert_eq!(owned.await.unwrap(), Some(3));

            // An exit before anyone watched the pid is kept and matched later.
            let child = Command::new("sh").args(["-c", "exit 9"]).spawn().unwrap();
            let pid = Pid::new(child.id() as i32).unwrap();
            std::mem::forget(child);
            tokio::time::sleep(GRACE * 3).await;
            assert!(
                !pid.exists(),
                "the orphaned zombie was reaped after the grace time"
            );
            let rx = reaper.watch(pid);
            assert_eq!(
                tokio::time::timeout(Duration::from_secs(5), rx)
                    .await
                    .unwrap()
                    .unwrap(),
                9
            );
        });
    }
}
