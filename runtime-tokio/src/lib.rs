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

#![warn(missing_docs)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

mod compat;
#[cfg(feature = "tower")]
pub mod tower;

pub use compat::TokioIo;

/// The tokio runtime, for the shared async driver.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tokio;

impl switchboard_async::Runtime for Tokio {
    type Sleep = tokio::time::Sleep;
    type TcpStream = TokioIo<tokio::net::TcpStream>;
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
        Ok(TokioIo(stream))
    }

    async fn accept(
        &self,
        listener: &Self::TcpListener,
    ) -> io::Result<(Self::TcpStream, SocketAddr)> {
        let (stream, peer) = listener.accept().await?;
        stream.set_nodelay(true)?;
        Ok((TokioIo(stream), peer))
    }
}

pub mod ws {
    //! WebSocket server and client on tokio.

    use std::future::Future;
    use std::sync::Arc;

    use tokio::io::{AsyncRead, AsyncWrite};

    pub use switchboard_async::Error;
    pub use switchboard_async::ws::{accept_request, read_request};
    pub use switchboard_core::ws::{
        CloseCode, CloseFrame, Config, DeflateConfig, KeepAlive, Message, OriginPolicy, Text,
    };

    use super::{Tokio, TokioIo};

    /// A WebSocket on tokio, over a TCP stream by default.
    pub type WebSocket<S = TokioIo<tokio::net::TcpStream>> =
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
    pub async fn accept<S>(stream: S, config: Config) -> Result<WebSocket<TokioIo<S>>, Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        switchboard_async::ws::accept(Tokio, TokioIo(stream), Arc::new(config)).await
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

pub mod engineio {
    //! Engine.IO servers on tokio: long-polling and WebSocket sessions
    //! served beside plain WebSocket routes on one listener.
    //!
    //! ```no_run
    //! use switchboard_tokio::engineio::{EngineIo, Routes, ServerConfig, serve};
    //! # async fn run() -> std::io::Result<()> {
    //! let (engine, mut sockets) = EngineIo::with_sockets(ServerConfig::default());
    //! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    //! tokio::spawn(serve(listener, Routes::new().engineio("/engine.io/", engine)));
    //! while let Some(mut socket) = sockets.accept().await {
    //!     tokio::spawn(async move {
    //!         while let Some(message) = socket.recv().await {
    //!             let _ = socket.send(message); // echo
    //!         }
    //!     });
    //! }
    //! # Ok(()) }
    //! ```

    pub use switchboard_async::engineio::client::{ClientSender, ConnectError, EngineIoClient};
    pub use switchboard_async::engineio::{
        EngineIo, EventHandler, Socket, SocketSender, Sockets, WeakEngineIo,
    };
    pub use switchboard_core::engineio::HttpResponse;
    pub use switchboard_core::engineio::client::{
        ClientCloseReason, ClientConfig, ClientEvent, ClientSendError,
    };
    pub use switchboard_core::engineio::{
        CloseReason, MessageData, SendError, ServerConfig, ServerEvent,
    };
    pub use switchboard_core::http::{Request, ServerLimits};

    use super::{Tokio, TokioIo};

    /// Routes of a tokio server, over TCP by default.
    pub type Routes<S = TokioIo<tokio::net::TcpStream>> =
        switchboard_async::server::Routes<S, Tokio>;

    /// Serves `routes` on `listener`, one task per connection, forever.
    pub async fn serve(listener: tokio::net::TcpListener, routes: Routes) {
        switchboard_async::server::serve(Tokio, listener, routes).await
    }

    /// Serves `routes` on one connection the application accepted.
    pub async fn serve_connection<S>(stream: S, routes: Routes<TokioIo<S>>) -> std::io::Result<()>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        routes.start_timers(&Tokio);
        switchboard_async::server::serve_connection(Tokio, TokioIo(stream), routes).await
    }

    /// Connects to the Engine.IO server at `url` (`http://host:port`, with
    /// an optional path replacing `/engine.io/`): polling first, then the
    /// upgrade to WebSocket.
    pub async fn connect(url: &str) -> Result<EngineIoClient, ConnectError> {
        connect_with_config(ClientConfig::from_url(url)?).await
    }

    /// Connects with explicit settings (transports, protocol version,
    /// limits, headers).
    pub async fn connect_with_config(config: ClientConfig) -> Result<EngineIoClient, ConnectError> {
        EngineIoClient::connect(Tokio, config).await
    }
}

pub mod socketio {
    //! Socket.IO servers: namespaces, events, acks, binary, rooms and
    //! broadcasts (the same names on every runtime). Mount a [`SocketIo`]
    //! with `Routes::socketio` and serve the routes.
    //!
    //! See [`switchboard_async::socketio`] for the whole API.

    pub use switchboard_async::socketio::client::{ClientBuilder, ClientSocket, SocketIoClient};
    pub use switchboard_async::socketio::*;

    /// Serves `io` at `/socket.io/` on `addr`, forever.
    ///
    /// ```no_run
    /// use switchboard_tokio::socketio::{SocketIo, SocketIoConfig, serve};
    /// # async fn run() -> std::io::Result<()> {
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     socket.on("ping", |socket, _| {
    ///         let _ = socket.emit("pong", &());
    ///     });
    /// });
    /// serve("127.0.0.1:3000", io).await
    /// # }
    /// ```
    pub async fn serve(addr: impl tokio::net::ToSocketAddrs, io: SocketIo) -> std::io::Result<()> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let routes = crate::engineio::Routes::new().socketio("/socket.io/", &io);
        crate::engineio::serve(listener, routes).await;
        Ok(())
    }
}
