//! Switchboard on tokio.
//!
//! [`Tokio`] is the [`Runtime`](switchboard_async::Runtime) the shared async
//! driver runs on; this crate adds nothing but glue: tokio's sockets seen
//! through `futures` IO traits, its timers and its spawner.
//!
//! ```no_run
//! use switchboard_tokio::ws;
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
//! tokio::spawn(ws::serve(listener, ws::Config::default(), ws::echo));
//! let mut client = ws::connect("ws://127.0.0.1:9001/").await?;
//! client.send(ws::Message::text("hello")).await?;
//! assert_eq!(client.recv().await.unwrap()?, ws::Message::text("hello"));
//! # Ok(()) }
//! ```

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

/// The tokio runtime, for the shared async driver.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tokio;

impl switchboard_async::Runtime for Tokio {
    type Sleep = tokio::time::Sleep;
    type TcpStream = Compat<tokio::net::TcpStream>;
    type TcpListener = tokio::net::TcpListener;

    fn sleep_until(&self, deadline: Instant) -> Self::Sleep {
        tokio::time::sleep_until(deadline.into())
    }

    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        tokio::spawn(future);
    }

    async fn connect(&self, host: &str, port: u16) -> io::Result<Self::TcpStream> {
        let stream = tokio::net::TcpStream::connect((host, port)).await?;
        stream.set_nodelay(true)?;
        Ok(stream.compat())
    }

    async fn accept(
        &self,
        listener: &Self::TcpListener,
    ) -> io::Result<(Self::TcpStream, SocketAddr)> {
        let (stream, peer) = listener.accept().await?;
        stream.set_nodelay(true)?;
        Ok((stream.compat(), peer))
    }
}

pub mod ws {
    //! WebSocket server and client on tokio.

    use std::future::Future;
    use std::sync::Arc;

    use tokio::io::{AsyncRead, AsyncWrite};
    use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

    pub use switchboard_async::Error;
    pub use switchboard_async::ws::{accept_request, read_request};
    pub use switchboard_core::ws::{
        CloseCode, CloseFrame, Config, DeflateConfig, KeepAlive, Message, OriginPolicy, Text,
    };

    use super::Tokio;

    /// A WebSocket on tokio, over a TCP stream by default.
    pub type WebSocket<S = Compat<tokio::net::TcpStream>> =
        switchboard_async::ws::WebSocket<S, Tokio>;

    /// Connects to a `ws://` URL with the default [`Config`].
    pub async fn connect(url: &str) -> Result<WebSocket, Error> {
        connect_with_config(url, Config::default()).await
    }

    /// Connects to a `ws://` URL.
    pub async fn connect_with_config(url: &str, config: Config) -> Result<WebSocket, Error> {
        switchboard_async::ws::connect(Tokio, url, Arc::new(config)).await
    }

    /// Performs the server handshake on a stream the application accepted.
    pub async fn accept<S>(stream: S, config: Config) -> Result<WebSocket<Compat<S>>, Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        switchboard_async::ws::accept(Tokio, stream.compat(), Arc::new(config)).await
    }

    /// Serves WebSocket connections on `listener`, one task each, handing
    /// each to `handler`. Runs until the task is dropped.
    pub async fn serve<F, Fut>(listener: tokio::net::TcpListener, config: Config, handler: F)
    where
        F: Fn(WebSocket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        switchboard_async::ws::serve(Tokio, listener, Arc::new(config), handler).await
    }

    /// Echoes text and binary messages until the peer closes.
    pub use switchboard_async::ws::echo;
}
