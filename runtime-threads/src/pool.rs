//! The threads the Socket.IO handlers run on (python-socketio's threading
//! mode): a socket's events are delivered by a pool thread, not by the
//! connection thread that read them, so a handler may block (sleep, wait
//! for an ack of its own socket) while its connection goes on reading.
//!
//! Threads are made when every one is busy and leave after
//! [`IDLE_TIMEOUT`] without work, so the pool holds about as many threads
//! as there are sockets with a handler running, as a thread per event
//! would, without a thread start per event. It has no cap of its own (a
//! handler waiting for another socket's handler must not wait for a free
//! thread): the servers' connection limit (`max_connections`) bounds the
//! sockets, and so the pool.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use switchboard_async::socketio::HandlerRunner;

type Job = Box<dyn FnOnce() + Send>;

/// How long an idle thread waits for work before it ends.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

static POOL: Pool = Pool {
    idle: Mutex::new(Vec::new()),
    next_worker: AtomicU64::new(0),
};

/// The process's handler pool as a [`HandlerRunner`].
pub(crate) fn handler_runner() -> HandlerRunner {
    Arc::new(|job| POOL.run(job))
}

struct Pool {
    /// Idle threads (by number), each waiting on its own channel.
    idle: Mutex<Vec<(u64, mpsc::Sender<Job>)>>,
    next_worker: AtomicU64,
}

impl Pool {
    fn run(&'static self, job: Job) {
        let idle = self.idle().pop();
        let job = match idle {
            Some((_, worker)) => match worker.send(job) {
                Ok(()) => return,
                Err(mpsc::SendError(job)) => job,
            },
            None => job,
        };
        let number = self.next_worker.fetch_add(1, Ordering::Relaxed);
        // Kept here too, so that the job survives a failed thread start.
        let first = Arc::new(Mutex::new(Some(job)));
        let theirs = first.clone();
        let started = std::thread::Builder::new()
            .name("switchboard-handler".into())
            .spawn(move || {
                if let Some(job) = take(&theirs) {
                    self.work(number, job);
                }
            });
        if let Err(error) = started {
            // The job delivers a socket's events: it must run somewhere.
            tracing::warn!(%error, "no handler thread; running the handler in place");
            if let Some(job) = take(&first) {
                job();
            }
        }
    }

    /// Runs `job`, then whatever is sent to this thread while it is idle,
    /// until it has been idle for [`IDLE_TIMEOUT`].
    fn work(&self, number: u64, mut job: Job) {
        let (tx, rx) = mpsc::channel::<Job>();
        loop {
            job();
            self.idle().push((number, tx.clone()));
            job = match rx.recv_timeout(IDLE_TIMEOUT) {
                Ok(job) => job,
                Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {
                    let mut idle = self.idle();
                    if let Some(at) = idle.iter().position(|(n, _)| *n == number) {
                        idle.remove(at);
                        return;
                    }
                    drop(idle);
                    // Taken from the idle list meanwhile: its job is coming.
                    match rx.recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    }
                }
            };
        }
    }

    fn idle(&self) -> MutexGuard<'_, Vec<(u64, mpsc::Sender<Job>)>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn take(slot: &Mutex<Option<Job>>) -> Option<Job> {
    slot.lock().unwrap_or_else(PoisonError::into_inner).take()
}
