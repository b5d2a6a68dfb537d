//! The accept loop every server of the async driver runs, and its
//! connection limit: a slot per open connection, counted by the core's
//! [`ConnectionCount`]; at the limit the loop waits until a connection
//! ends. The threads adapter's accept loop blocks on the same
//! [`ConnectionLimit`].

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;
use switchboard_core::connections::{AcceptErrors, ConnectionCount, is_lost_connection};

use crate::Runtime;

/// The pause after a failed accept (such as running out of file
/// descriptors), or a connection the threads adapter could not start a
/// thread for, before the next accept.
pub const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// Accepts connections on `listener` forever, at most `max_connections`
/// open at once, running `serve` for each in a task of its own. The task
/// must hold the connection's slot until it ends (the slot is handed to
/// `serve` rather than wrapped around its future: an async block awaiting
/// a future it captured holds it twice, doubling every connection's task).
pub(crate) async fn accept_loop<R, F, Fut>(
    runtime: &R,
    listener: &R::TcpListener,
    max_connections: usize,
    serve: F,
) where
    R: Runtime,
    F: Fn(R::TcpStream, SocketAddr, ConnectionSlot) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let limit = ConnectionLimit::new(max_connections);
    let mut errors = AcceptErrors::default();
    loop {
        let slot = limit.acquire().await;
        match runtime.accept(listener).await {
            Ok((io, peer)) => runtime.spawn(serve(io, peer, slot)),
            Err(error) if is_lost_connection(&error) => {
                tracing::debug!(%error, "connection lost before its accept");
            }
            Err(error) => {
                drop(slot);
                errors.failed(&error, Instant::now());
                runtime.sleep_until(Instant::now() + ACCEPT_RETRY).await;
            }
        }
    }
}

/// The open connections of one accept loop, which is the only task that
/// waits for a slot.
///
/// ```
/// use futures_util::FutureExt;
/// use switchboard_async::accept::ConnectionLimit;
///
/// let limit = ConnectionLimit::new(1);
/// let slot = limit.acquire().now_or_never().expect("a free slot");
/// assert!(limit.acquire().now_or_never().is_none()); // full
/// drop(slot); // the connection ended
/// assert!(limit.acquire().now_or_never().is_some());
/// ```
pub struct ConnectionLimit {
    shared: Arc<Shared>,
}

struct Shared {
    count: Mutex<ConnectionCount>,
    /// The accept loop, waiting for a slot.
    freed: AtomicWaker,
}

impl Shared {
    fn count(&self) -> MutexGuard<'_, ConnectionCount> {
        self.count.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ConnectionLimit {
    /// A limit of `max_connections` open at once (at least one).
    pub fn new(max_connections: usize) -> Self {
        ConnectionLimit {
            shared: Arc::new(Shared {
                count: Mutex::new(ConnectionCount::new(max_connections)),
                freed: AtomicWaker::new(),
            }),
        }
    }

    /// Waits until fewer than the limit are open and takes a slot, held
    /// until the returned guard is dropped.
    pub async fn acquire(&self) -> ConnectionSlot {
        poll_fn(|cx| {
            if self.shared.count().try_open(Instant::now()) {
                return Poll::Ready(self.slot());
            }
            self.shared.freed.register(cx.waker());
            // A slot freed between the look and the registration.
            if self.shared.count().try_open(Instant::now()) {
                return Poll::Ready(self.slot());
            }
            Poll::Pending
        })
        .await
    }

    fn slot(&self) -> ConnectionSlot {
        ConnectionSlot {
            shared: self.shared.clone(),
        }
    }
}

/// One open connection's place under the limit; dropping it frees it.
pub struct ConnectionSlot {
    shared: Arc<Shared>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.shared.count().close();
        self.shared.freed.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[test]
    fn the_accept_loop_waits_at_the_limit_until_a_slot_is_freed() {
        let limit = ConnectionLimit::new(2);
        let first = limit.acquire().now_or_never().expect("a free slot");
        let _second = limit.acquire().now_or_never().expect("a free slot");
        let waiting = std::thread::scope(|scope| {
            let waiter = scope.spawn(|| futures_executor::block_on(limit.acquire()));
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(!waiter.is_finished(), "a third slot was handed out");
            drop(first);
            waiter.join().expect("the waiter")
        });
        assert_eq!(limit.shared.count().open(), 2);
        drop(waiting);
        assert_eq!(limit.shared.count().open(), 1);
    }

    /// A runtime whose listener hands out the queued results, then waits
    /// for good, and whose timers never fire: what the accept loop does
    /// before its first pause.
    #[derive(Clone, Default)]
    struct Scripted {
        accepts: Arc<Mutex<std::collections::VecDeque<std::io::Result<()>>>>,
        spawned: Arc<Mutex<usize>>,
        sleeps: Arc<Mutex<usize>>,
    }

    impl Runtime for Scripted {
        type Sleep = std::future::Pending<()>;
        type TcpStream = futures_util::io::Cursor<Vec<u8>>;
        type TcpListener = ();

        fn sleep_until(&self, _: Instant) -> Self::Sleep {
            *self.sleeps.lock().unwrap() += 1;
            std::future::pending()
        }

        fn spawn<F>(&self, _: F)
        where
            F: Future<Output = ()> + Send + 'static,
        {
            *self.spawned.lock().unwrap() += 1;
        }

        async fn connect(&self, _: &str, _: u16) -> std::io::Result<Self::TcpStream> {
            unreachable!("nothing connects")
        }

        async fn accept(&self, _: &()) -> std::io::Result<(Self::TcpStream, SocketAddr)> {
            let next = self.accepts.lock().unwrap().pop_front();
            match next {
                Some(result) => result.map(|()| (Default::default(), ([127, 0, 0, 1], 1).into())),
                None => std::future::pending().await,
            }
        }
    }

    /// Runs the accept loop over `results` until it waits; returns how
    /// many connections it spawned and how often it paused.
    fn accept_all(results: Vec<std::io::Result<()>>) -> (usize, usize) {
        let runtime = Scripted::default();
        runtime.accepts.lock().unwrap().extend(results);
        let accepting = accept_loop(&runtime, &(), 10, |_io, _peer, _slot| async {});
        assert!(accepting.now_or_never().is_none(), "the accept loop ended");
        let spawned = *runtime.spawned.lock().unwrap();
        let sleeps = *runtime.sleeps.lock().unwrap();
        (spawned, sleeps)
    }

    #[test]
    fn a_connection_lost_before_its_accept_does_not_pause_the_accept_loop() {
        use std::io::{Error, ErrorKind};
        for kind in [
            ErrorKind::ConnectionAborted,
            ErrorKind::ConnectionReset,
            ErrorKind::ConnectionRefused,
        ] {
            let results = vec![Err(Error::from(kind)), Ok(())];
            assert_eq!(accept_all(results), (1, 0), "after {kind:?}");
        }
    }

    #[test]
    fn running_out_of_file_descriptors_pauses_the_accept_loop() {
        let emfile = std::io::Error::from_raw_os_error(24);
        let (spawned, sleeps) = accept_all(vec![Err(emfile), Ok(())]);
        assert_eq!((spawned, sleeps), (0, 1), "retried without a pause");
    }
}
