//! The accept loop every threads server runs, a thread per connection,
//! under the async driver's [`ConnectionLimit`]: at the limit the loop
//! blocks until a connection (and so its thread) ends.

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

use switchboard_async::accept::{ACCEPT_RETRY, ConnectionLimit};
use switchboard_core::connections::{AcceptErrors, is_lost_connection};

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
    // A listener handed over in non-blocking mode would fail every accept
    // with `WouldBlock` (and on some systems pass the mode on to the
    // connections, which are read with blocking calls).
    if let Err(error) = listener.set_nonblocking(false) {
        tracing::warn!(%error, "could not make the listener blocking");
    }
    let serve = Arc::new(serve);
    let limit = ConnectionLimit::new(max_connections);
    let mut errors = AcceptErrors::default();
    loop {
        let slot = futures_executor::block_on(limit.acquire());
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(error) if is_lost_connection(&error) => {
                tracing::debug!(%error, "connection lost before its accept");
                continue;
            }
            Err(error) => {
                drop(slot);
                errors.failed(&error, std::time::Instant::now());
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
