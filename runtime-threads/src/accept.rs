//! The accept loop every threads server runs, a thread per connection, and
//! its connection limit: a slot per open connection (and so per connection
//! thread), counted by the core's [`ConnectionCount`]; at the limit the
//! loop blocks until a connection ends.

use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use switchboard_core::connections::ConnectionCount;

/// The pause after a failed accept (such as running out of file
/// descriptors) or a thread that could not be started, before the next
/// accept.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// Accepts connections on `listener` forever, at most `max_connections`
/// open at once, running `serve` for each on a thread of its own named
/// `thread_name`. A connection whose thread cannot be started is closed.
pub(crate) fn accept_loop<F>(
    listener: &TcpListener,
    max_connections: usize,
    thread_name: &str,
    serve: F,
) -> !
where
    F: Fn(TcpStream) + Send + Sync + 'static,
{
    let serve = Arc::new(serve);
    let limit = ConnectionLimit::new(max_connections);
    loop {
        let slot = limit.acquire();
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(error) => {
                drop(slot);
                tracing::warn!(%error, "accept failed");
                std::thread::sleep(ACCEPT_RETRY);
                continue;
            }
        };
        let serve = serve.clone();
        let started = std::thread::Builder::new()
            .name(thread_name.to_owned())
            .spawn(move || {
                let _slot = slot;
                serve(stream);
            });
        if let Err(error) = started {
            tracing::warn!(%error, "no thread for a connection; closed it");
            std::thread::sleep(ACCEPT_RETRY);
        }
    }
}

/// The open connections of one accept loop.
pub(crate) struct ConnectionLimit {
    shared: Arc<Shared>,
}

struct Shared {
    count: Mutex<ConnectionCount>,
    freed: Condvar,
}

impl Shared {
    fn count(&self) -> MutexGuard<'_, ConnectionCount> {
        self.count.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ConnectionLimit {
    pub(crate) fn new(max_connections: usize) -> Self {
        ConnectionLimit {
            shared: Arc::new(Shared {
                count: Mutex::new(ConnectionCount::new(max_connections)),
                freed: Condvar::new(),
            }),
        }
    }

    /// Blocks until fewer than the limit are open and takes a slot, held
    /// until the returned guard is dropped.
    pub(crate) fn acquire(&self) -> ConnectionSlot {
        let mut count = self.shared.count();
        while !count.try_open(Instant::now()) {
            count = self
                .shared
                .freed
                .wait(count)
                .unwrap_or_else(PoisonError::into_inner);
        }
        ConnectionSlot {
            shared: self.shared.clone(),
        }
    }
}

/// One open connection's place under the limit; dropping it frees it.
pub(crate) struct ConnectionSlot {
    shared: Arc<Shared>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.shared.count().close();
        self.shared.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_loop_blocks_at_the_limit_until_a_slot_is_freed() {
        let limit = ConnectionLimit::new(1);
        let first = limit.acquire();
        let second = std::thread::scope(|scope| {
            let waiter = scope.spawn(|| limit.acquire());
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(!waiter.is_finished(), "a second slot was handed out");
            drop(first);
            waiter.join().expect("the waiter")
        });
        assert_eq!(limit.shared.count().open(), 1);
        drop(second);
        assert_eq!(limit.shared.count().open(), 0);
    }
}
