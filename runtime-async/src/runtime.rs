//! What a runtime supplies to the shared driver.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use futures_io::{AsyncRead, AsyncWrite};

/// Tasks, timers and TCP sockets of one async runtime.
pub trait Runtime: Clone + Send + Sync + Unpin + 'static {
    /// A timer future.
    type Sleep: Future<Output = ()> + Send + 'static;
    /// A connected TCP stream.
    type TcpStream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// A bound TCP listener.
    type TcpListener: Send + Sync + 'static;

    /// A future that completes at `deadline`.
    fn sleep_until(&self, deadline: Instant) -> Self::Sleep;

    /// Runs `future` in the background.
    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static;

    /// Opens a TCP connection (with `TCP_NODELAY`) to `host:port`.
    fn connect(
        &self,
        host: &str,
        port: u16,
    ) -> impl Future<Output = io::Result<Self::TcpStream>> + Send;

    /// Accepts the next connection (with `TCP_NODELAY` set).
    fn accept(
        &self,
        listener: &Self::TcpListener,
    ) -> impl Future<Output = io::Result<(Self::TcpStream, SocketAddr)>> + Send;
}
