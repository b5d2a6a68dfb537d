//! Switchboard on smol, and on async-std (whose reactor is the same
//! `async-io`).
//!
//! [`Smol`] is the [`Runtime`](switchboard_async::Runtime) the shared async
//! driver runs on: `async-net` sockets, `async-io` timers, and a spawner that
//! is smol's global executor by default or the application's own (for
//! example async-std's) through [`Smol::with_spawner`].
//!
//! How many executor threads to run is the application's choice. With
//! several threads on one `async_executor::Executor`, each thread that
//! picks up a task wakes another sleeping one in case the task runs long.
//! When a server has few busy connections, that is a thread woken for
//! nothing on each wake-up of a connection's task, and a single executor
//! thread does better. With many busy connections, one thread per core
//! does better. smol's global executor, which [`Smol::new`] spawns on,
//! runs `SMOL_THREADS` threads (one by default). `BENCHMARKS.md` ("Halt
//! polling") has the figures.
//!
//! ```no_run
//! use switchboard_smol::ws;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! smol::block_on(async {
//!     let listener = async_net::TcpListener::bind("127.0.0.1:9001").await?;
//!     smol::spawn(ws::serve(listener, ws::Config::default(), ws::echo)).detach();
//!     let mut client = ws::connect("ws://127.0.0.1:9001/").await?;
//!     client.send(ws::Message::text("hello")).await?;
//!     assert_eq!(client.recv().await.unwrap()?, ws::Message::text("hello"));
//!     Ok(())
//! })
//! # }
//! ```

#![warn(missing_docs)]

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

type BoxedTask = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
type Spawner = Arc<dyn Fn(BoxedTask) + Send + Sync>;

/// The smol (or async-std) runtime, for the shared async driver.
#[derive(Clone, Default)]
pub struct Smol {
    spawner: Option<Spawner>,
}

impl Smol {
    /// Spawns tasks on smol's global executor.
    pub fn new() -> Self {
        Self::default()
    }

    /// Spawns tasks with `spawn`, e.g. on async-std:
    ///
    /// ```
    /// let runtime = switchboard_smol::Smol::with_spawner(|task| {
    ///     // async_std::task::spawn(task);
    ///     # drop(task);
    /// });
    /// ```
    pub fn with_spawner(spawn: impl Fn(BoxedTask) + Send + Sync + 'static) -> Self {
        Self {
            spawner: Some(Arc::new(spawn)),
        }
    }
}

impl fmt::Debug for Smol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Smol")
            .field("custom_spawner", &self.spawner.is_some())
            .finish()
    }
}

/// A timer that completes at its deadline.
pub struct Sleep(async_io::Timer);

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

impl switchboard_async::Runtime for Smol {
    type Sleep = Sleep;
    type TcpStream = async_net::TcpStream;
    type TcpListener = async_net::TcpListener;

    fn sleep_until(&self, deadline: Instant) -> Self::Sleep {
        Sleep(async_io::Timer::at(deadline))
    }

    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match &self.spawner {
            Some(spawn) => spawn(Box::pin(future)),
            None => smol::spawn(future).detach(),
        }
    }

    async fn connect(&self, host: &str, port: u16) -> io::Result<Self::TcpStream> {
        let stream = async_net::TcpStream::connect((host, port)).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    async fn accept(
        &self,
        listener: &Self::TcpListener,
    ) -> io::Result<(Self::TcpStream, SocketAddr)> {
        let (stream, peer) = listener.accept().await?;
        stream.set_nodelay(true)?;
        Ok((stream, peer))
    }
}

pub mod ws {
    //! WebSocket server and client on smol and async-std.

    use std::future::Future;
    use std::sync::Arc;

    use futures_io::{AsyncRead, AsyncWrite};

    pub use switchboard_async::Error;
    pub use switchboard_async::ws::{accept_request, echo, read_request};
    pub use switchboard_core::ws::{
        CloseCode, CloseFrame, Config, DeflateConfig, KeepAlive, Message, OriginPolicy, Text,
    };

    use super::Smol;

    /// A WebSocket on smol, over a TCP stream by default.
    pub type WebSocket<S = async_net::TcpStream> = switchboard_async::ws::WebSocket<S, Smol>;

    /// Connects to a `ws://` URL with the default [`Config`].
    pub async fn connect(url: &str) -> Result<WebSocket, Error> {
        connect_with_config(url, Config::default()).await
    }

    /// Connects to a `ws://` URL.
    pub async fn connect_with_config(url: &str, config: Config) -> Result<WebSocket, Error> {
        switchboard_async::ws::connect(Smol::new(), url, Arc::new(config)).await
    }

    /// Performs the server handshake on any stream the application accepted
    /// (smol's, async-std's, or any `futures` IO stream).
    pub async fn accept<S>(stream: S, config: Config) -> Result<WebSocket<S>, Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        switchboard_async::ws::accept(Smol::new(), stream, Arc::new(config)).await
    }

    /// Serves WebSocket connections on `listener`, spawning one task each on
    /// `runtime`'s executor, handing each to `handler`.
    pub async fn serve_on<F, Fut>(
        runtime: Smol,
        listener: async_net::TcpListener,
        config: Config,
        handler: F,
    ) where
        F: Fn(WebSocket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        switchboard_async::ws::serve(runtime, listener, Arc::new(config), handler).await
    }

    /// Serves WebSocket connections on `listener` with smol's global
    /// executor.
    pub async fn serve<F, Fut>(listener: async_net::TcpListener, config: Config, handler: F)
    where
        F: Fn(WebSocket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        serve_on(Smol::new(), listener, config, handler).await
    }
}

pub mod engineio {
    //! Engine.IO servers on smol and async-std: long-polling and WebSocket
    //! sessions served beside plain WebSocket routes on one listener.
    //!
    //! ```no_run
    //! use switchboard_smol::engineio::{EngineIo, Routes, ServerConfig, serve};
    //! # fn main() -> std::io::Result<()> {
    //! smol::block_on(async {
    //!     let (engine, mut sockets) = EngineIo::with_sockets(ServerConfig::default());
    //!     let listener = async_net::TcpListener::bind("127.0.0.1:3000").await?;
    //!     smol::spawn(serve(listener, Routes::new().engineio("/engine.io/", engine))).detach();
    //!     while let Some(mut socket) = sockets.accept().await {
    //!         smol::spawn(async move {
    //!             while let Some(message) = socket.recv().await {
    //!                 let _ = socket.send(message); // echo
    //!             }
    //!         })
    //!         .detach();
    //!     }
    //!     Ok(())
    //! })
    //! # }
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

    use super::Smol;

    /// Routes of a smol server, over TCP by default.
    pub type Routes<S = async_net::TcpStream> = switchboard_async::server::Routes<S, Smol>;

    /// Serves `routes` on `listener` with smol's global executor.
    pub async fn serve(listener: async_net::TcpListener, routes: Routes) {
        serve_on(Smol::new(), listener, routes).await
    }

    /// Serves `routes` on `listener`, spawning on `runtime`'s executor
    /// (for example async-std's, see [`Smol::with_spawner`]).
    pub async fn serve_on(runtime: Smol, listener: async_net::TcpListener, routes: Routes) {
        switchboard_async::server::serve(runtime, listener, routes).await
    }

    /// Serves `routes` on one connection the application accepted (any
    /// `futures` IO stream), spawning timers on `runtime`.
    pub async fn serve_connection<S>(
        runtime: Smol,
        stream: S,
        routes: Routes<S>,
    ) -> std::io::Result<()>
    where
        S: futures_io::AsyncRead + futures_io::AsyncWrite + Unpin + Send + 'static,
    {
        routes.start_timers(&runtime);
        switchboard_async::server::serve_connection(runtime, stream, routes).await
    }

    /// Serves `routes` on a connection whose first request head the
    /// application read and parsed itself, to route its own paths first:
    /// `request` is that head, `buffered` what it read after the head. Then
    /// goes on as [`serve_connection`] does (keep-alive, upgrades). See
    /// `examples/smol_embed.rs`.
    pub async fn serve_request<S>(
        runtime: Smol,
        stream: S,
        request: &Request,
        buffered: &[u8],
        routes: Routes<S>,
    ) -> std::io::Result<()>
    where
        S: futures_io::AsyncRead + futures_io::AsyncWrite + Unpin + Send + 'static,
    {
        routes.start_timers(&runtime);
        switchboard_async::server::serve_request(runtime, stream, request, buffered, routes).await
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
        EngineIoClient::connect(Smol::new(), config).await
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

    /// Serves `io` at `/socket.io/` on `addr` with smol's global executor,
    /// forever.
    pub async fn serve(
        addr: impl async_net::AsyncToSocketAddrs,
        io: SocketIo,
    ) -> std::io::Result<()> {
        let listener = async_net::TcpListener::bind(addr).await?;
        let routes = crate::engineio::Routes::new().socketio("/socket.io/", &io);
        crate::engineio::serve(listener, routes).await;
        Ok(())
    }
}
