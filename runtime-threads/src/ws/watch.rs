//! The deadline watcher: one thread for the whole process that runs a
//! WebSocket's timers at a deadline no thread of that connection waits for.
//!
//! A connection's reader blocks in a read that times out at the core's
//! next deadline as it was when the read began. A [`Sender`](super::Sender)
//! on another thread can move that deadline earlier (a close started from
//! outside the read path arms the close timeout), and nothing would wake
//! the reader for it: a peer that then stays silent would hold the
//! connection (and its thread) for good. The sender hands such a deadline
//! here instead ([`watch`]); at that instant this thread runs the
//! connection's timers ([`super::at_deadline`]), which closes the transport
//! when the core says so and so ends the reader's read.
//!
//! The thread starts with the first deadline handed to it, sleeps on a
//! condition variable until the earliest, and never blocks on a
//! connection: it holds connections weakly and only tries their locks.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Instant;

use super::Shared;

/// A connection's deadline.
struct Due {
    at: Instant,
    shared: Weak<Shared>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    /// Reversed, so the heap's top is the earliest.
    fn cmp(&self, other: &Self) -> Ordering {
        other.at.cmp(&self.at)
    }
}

#[derive(Default)]
struct Queue {
    due: BinaryHeap<Due>,
    /// Whether the thread runs (it is started with the first deadline,
    /// and again with the next one if starting it failed).
    running: bool,
}

#[derive(Default)]
struct Watcher {
    queue: Mutex<Queue>,
    /// Signalled when a deadline earlier than every other arrives.
    earlier: Condvar,
}

static WATCHER: OnceLock<Watcher> = OnceLock::new();

fn lock(watcher: &Watcher) -> MutexGuard<'_, Queue> {
    watcher
        .queue
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs the timers of `shared` at `at` (at once if it has passed), unless
/// the connection is gone by then.
pub(super) fn watch(at: Instant, shared: Weak<Shared>) {
    let watcher = WATCHER.get_or_init(Watcher::default);
    let mut queue = lock(watcher);
    let earliest = queue.due.peek().is_none_or(|first| at < first.at);
    queue.due.push(Due { at, shared });
    if queue.running {
        if earliest {
            watcher.earlier.notify_one();
        }
        return;
    }
    match std::thread::Builder::new()
        .name("switchboard-ws-deadlines".into())
        .spawn(move || run(watcher))
    {
        Ok(_) => queue.running = true,
        // The deadline stays queued: the next one handed here tries again.
        Err(error) => tracing::warn!(%error, "cannot start the WebSocket deadline thread"),
    }
}

fn run(watcher: &'static Watcher) {
    let mut queue = lock(watcher);
    loop {
        let now = Instant::now();
        match queue.due.peek().map(|first| first.at) {
            Some(at) if at <= now => {
                let Some(Due { shared, .. }) = queue.due.pop() else {
                    continue;
                };
                // Not under the queue's lock: running the timers may hand
                // the connection's next deadline back here.
                drop(queue);
                if let Some(shared) = shared.upgrade() {
                    super::at_deadline(&shared, now);
                }
                queue = lock(watcher);
            }
            Some(at) => {
                queue = watcher
                    .earlier
                    .wait_timeout(queue, at - now)
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .0;
            }
            None => {
                queue = watcher
                    .earlier
                    .wait(queue)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        }
    }
}
