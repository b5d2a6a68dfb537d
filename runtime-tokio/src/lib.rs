//! Switchboard on tokio: WebSocket, Engine.IO and Socket.IO servers and
//! clients.
//!
//! [`Tokio`] is the [`Runtime`](switchboard_async::Runtime) the shared async
//! driver runs on; this crate adds nothing but glue: tokio's sockets seen
//! through `futures` IO traits ([`TokioIo`]), its timers and its spawner.
//! The modules hold what applications call:
//!
//! - [`socketio`]: Socket.IO servers (namespaces, events, acks, rooms,
//!   broadcasts) and the client;
//! - [`engineio`]: the [`Routes`](engineio::Routes) that put Socket.IO,
//!   Engine.IO, WebSocket and plain HTTP endpoints on one listener,
//!   [`engineio::serve`] them, and the Engine.IO client;
//! - [`ws`]: WebSocket servers and clients;
//! - `tower` (feature `tower`): the same routes mounted into an axum or
//!   hyper 1.x app.
//!
//! A Socket.IO server and a client asking it for a sum (python-socketio's
//! `sio.call`, socket.io's `emitWithAck`):
//!
//! ```
//! use std::time::Duration;
//! use switchboard_tokio::Tokio;
//! use switchboard_tokio::engineio::{Routes, serve};
//! use switchboard_tokio::socketio::{ClientBuilder, SocketIo, SocketIoConfig};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let io = SocketIo::new(SocketIoConfig::default());
//!     io.ns("/", |socket| {
//!         socket.on("sum", |_socket, mut event| {
//!             let (a, b): (i64, i64) = event.args().unwrap_or_default();
//!             if let Some(ack) = event.take_ack() {
//!                 let _ = ack.send(&(a + b));
//!             }
//!         });
//!     });
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//!     let url = format!("http://{}", listener.local_addr()?);
//!     tokio::spawn(serve(listener, Routes::new().socketio("/socket.io/", &io)));
//!
//!     let socket = ClientBuilder::new(&url).connect(Tokio).await?;
//!     let answer = socket.emit_with_ack("sum", &(1, 2), Duration::from_secs(5))?.await?;
//!     assert_eq!(answer.arg::<i64>(0)?, 3);
//!     socket.disconnect();
//!     Ok(())
//! }
//! ```
//!
//! A WebSocket echo server and a client:
//!
//! ```
//! use std::time::Duration;
//! use switchboard_tokio::ws;
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let url = format!("ws://{}/", listener.local_addr()?);
//! tokio::spawn(ws::serve(listener, ws::Config::default(), ws::echo));
//!
//! let mut client = ws::connect(&url).await?;
//! client.send(ws::Message::text("hello")).await?;
//! let echo = tokio::time::timeout(Duration::from_secs(5), client.recv()).await?;
//! assert_eq!(echo.expect("open")?, ws::Message::text("hello"));
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

mod compat;
#[cfg(feature = "tower")]
pub mod tower;

pub use compat::TokioIo;

/// The tokio runtime, for the shared async driver: pass it wherever a
/// driver asks for a runtime, such as the Socket.IO client's
/// [`ClientBuilder::connect`](socketio::ClientBuilder::connect) (see the
/// [crate] example) or `switchboard_async`'s functions (see
/// [`TokioIo`]). Tasks go to `tokio::spawn`, so it must be used inside a
/// tokio runtime; TCP streams it connects or accepts have `TCP_NODELAY`
/// set.
///
/// ```
/// use std::time::{Duration, Instant};
/// use switchboard_async::Runtime;
/// use switchboard_tokio::Tokio;
/// # #[tokio::main]
/// # async fn main() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let port = listener.local_addr()?.port();
/// Tokio.spawn(async move {
///     let _ = Tokio.accept(&listener).await;
/// });
/// let stream = Tokio.connect("127.0.0.1", port).await?; // a TokioIo<TcpStream>
/// assert!(stream.0.nodelay()?);
///
/// let start = Instant::now();
/// Tokio.sleep_until(start + Duration::from_millis(10)).await;
/// assert!(start.elapsed() >= Duration::from_millis(10));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Tokio;

/// What a sleep until the end of `Instant`'s range waits instead: about 30
/// years, as tokio's `sleep(Duration::MAX)` does.
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

impl switchboard_async::Runtime for Tokio {
    type Sleep = tokio::time::Sleep;
    type TcpStream = TokioIo<tokio::net::TcpStream>;
    type TcpListener = tokio::net::TcpListener;

    fn sleep_until(&self, deadline: Instant) -> Self::Sleep {
        // tokio rounds a deadline up to the next millisecond by adding to
        // it, which panics within a millisecond of `Instant`'s end: such a
        // deadline is as good as never, as is tokio's own far future.
        let deadline = match deadline.checked_add(Duration::from_millis(1)) {
            Some(_) => deadline,
            None => Instant::now() + FAR_FUTURE,
        };
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
    //! WebSocket server and client on tokio, as tokio-tungstenite offers:
    //! [`serve`] a listener or [`accept`] streams yourself, [`connect`] to
    //! `ws://` URLs; each gives a [`WebSocket`] to [`recv`] from and
    //! [`send`] to (or a `futures` `Stream` and `Sink`). Received pings are
    //! answered for you; permessage-deflate is on by default ([`Config`]).
    //!
    //! A handler written by hand: a greeting, then each text back in upper
    //! case.
    //!
    //! ```
    //! use std::time::Duration;
    //! use switchboard_tokio::ws::{self, Message, WebSocket};
    //!
    //! async fn shout(mut socket: WebSocket) {
    //!     let _ = socket.send(Message::text("welcome")).await;
    //!     while let Some(Ok(message)) = socket.recv().await {
    //!         if let Some(text) = message.as_text() {
    //!             if socket.send(Message::text(text.to_uppercase())).await.is_err() {
    //!                 break;
    //!             }
    //!         }
    //!     }
    //! }
    //! # #[tokio::main]
    //! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    //! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    //! let url = format!("ws://{}/", listener.local_addr()?);
    //! tokio::spawn(ws::serve(listener, ws::Config::default(), shout));
    //!
    //! let mut client = ws::connect(&url).await?;
    //! client.send(Message::text("hi")).await?;
    //! for expected in ["welcome", "HI"] {
    //!     let message = tokio::time::timeout(Duration::from_secs(5), client.recv()).await?;
    //!     assert_eq!(message.expect("open")?, Message::text(expected));
    //! }
    //! client.close(None).await?;
    //! # Ok(()) }
    //! ```
    //!
    //! [`recv`]: WebSocket::recv
    //! [`send`]: WebSocket::send

    use std::future::Future;
    use std::sync::Arc;

    use tokio::io::{AsyncRead, AsyncWrite};

    pub use switchboard_async::Error;
    pub use switchboard_async::ws::{accept_request, read_request};
    pub use switchboard_core::ws::{
        CloseCode, CloseFrame, Config, DeflateConfig, KeepAlive, Message, OriginPolicy, Text,
    };

    use super::{Tokio, TokioIo};

    /// A WebSocket on tokio, over a TCP stream by default (over another
    /// tokio stream `S` it is `WebSocket<TokioIo<S>>`, see [`accept`]).
    ///
    /// It is a `futures` `Stream` of messages and a `Sink` for them, so
    /// `StreamExt::split` (futures-util) gives halves that two tasks can
    /// use at once:
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures_util::{SinkExt, StreamExt};
    /// use switchboard_tokio::ws::{self, Message};
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let url = format!("ws://{}/", listener.local_addr()?);
    /// # tokio::spawn(ws::serve(listener, ws::Config::default(), ws::echo));
    /// let client: ws::WebSocket = ws::connect(&url).await?;
    /// let (mut sink, mut stream) = client.split();
    /// tokio::spawn(async move {
    ///     for n in 0..3 {
    ///         if sink.send(Message::text(n.to_string())).await.is_err() {
    ///             break;
    ///         }
    ///     }
    /// });
    /// for n in 0..3 {
    ///     let echo = tokio::time::timeout(Duration::from_secs(5), stream.next()).await?;
    ///     assert_eq!(echo.expect("open")?, Message::text(n.to_string()));
    /// }
    /// # Ok(()) }
    /// ```
    pub type WebSocket<S = TokioIo<tokio::net::TcpStream>> =
        switchboard_async::ws::WebSocket<S, Tokio>;

    /// Connects to a `ws://` URL with the default [`Config`] (which offers
    /// permessage-deflate); the opening handshake has
    /// [`Config::handshake_timeout`] to complete.
    ///
    /// `wss://` is refused, as this crate brings no TLS: connect a TLS
    /// stream yourself (tokio-rustls, say) and run
    /// [`switchboard_async::ws::client_handshake`] over it (see
    /// [`TokioIo`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_tokio::ws::{self, Message};
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let addr = listener.local_addr()?;
    /// # tokio::spawn(ws::serve(listener, ws::Config::default(), ws::echo));
    /// let mut client = ws::connect(&format!("ws://{addr}/chat?room=1")).await?;
    /// client.send(Message::binary(vec![1, 2, 3])).await?;
    /// let echo = tokio::time::timeout(Duration::from_secs(5), client.recv()).await?;
    /// assert_eq!(echo.expect("open")?, Message::binary(vec![1, 2, 3]));
    /// client.close(None).await?; // the close handshake
    ///
    /// assert!(ws::connect("wss://example.com/").await.is_err());
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<WebSocket, Error> {
        connect_with_config(url, Config::default()).await
    }

    /// Connects to a `ws://` URL with `config`: sub-protocols to offer,
    /// compression, limits, timeouts.
    ///
    /// ```
    /// use switchboard_tokio::ws;
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let url = format!("ws://{}/", listener.local_addr()?);
    /// // The server supports two sub-protocols, the client offers one.
    /// let server = ws::Config {
    ///     protocols: vec!["chat.v2".into(), "chat.v1".into()],
    ///     ..ws::Config::default()
    /// };
    /// tokio::spawn(ws::serve(listener, server, ws::echo));
    ///
    /// let config = ws::Config {
    ///     protocols: vec!["chat.v1".into()],
    ///     deflate: None, // no permessage-deflate
    ///     ..ws::Config::default()
    /// };
    /// let client = ws::connect_with_config(&url, config).await?;
    /// assert_eq!(client.protocol(), Some("chat.v1"));
    /// assert!(!client.is_compressed());
    /// # Ok(()) }
    /// ```
    pub async fn connect_with_config(url: &str, config: Config) -> Result<WebSocket, Error> {
        switchboard_async::ws::connect(Tokio, url, Arc::new(config)).await
    }

    /// Performs the server handshake on a stream the application accepted
    /// (any tokio stream: a `TcpStream` from its own accept loop, a TLS
    /// stream, a `UnixStream`), within [`Config::handshake_timeout`]. A
    /// refused handshake is answered with its HTTP status before the
    /// error is returned.
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_tokio::ws::{self, Message};
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let url = format!("ws://{}/", listener.local_addr()?);
    /// tokio::spawn(async move {
    ///     while let Ok((stream, peer)) = listener.accept().await {
    ///         tokio::spawn(async move {
    ///             match ws::accept(stream, ws::Config::default()).await {
    ///                 Ok(socket) => ws::echo(socket).await,
    ///                 Err(error) => eprintln!("{peer}: {error}"),
    ///             }
    ///         });
    ///     }
    /// });
    ///
    /// let mut client = ws::connect(&url).await?;
    /// client.send(Message::text("hi")).await?;
    /// let echo = tokio::time::timeout(Duration::from_secs(5), client.recv()).await?;
    /// assert_eq!(echo.expect("open")?, Message::text("hi"));
    /// # Ok(()) }
    /// ```
    pub async fn accept<S>(stream: S, config: Config) -> Result<WebSocket<TokioIo<S>>, Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        switchboard_async::ws::accept(Tokio, TokioIo(stream), Arc::new(config)).await
    }

    /// Serves WebSocket connections on `listener`, one task each, handing
    /// each to `handler` once its handshake is done. Runs until the task is
    /// dropped; connections already handed over go on in their own tasks.
    /// At most [`Config::max_connections`] are open at once.
    ///
    /// The handler is called for every connection, so state it shares is
    /// cloned in (here a count of connections):
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::time::Duration;
    /// use switchboard_tokio::ws::{self, Message};
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let url = format!("ws://{}/", listener.local_addr()?);
    /// let connections = Arc::new(AtomicUsize::new(0));
    /// let counter = connections.clone();
    /// let server = tokio::spawn(ws::serve(listener, ws::Config::default(), move |socket| {
    ///     counter.fetch_add(1, Ordering::Relaxed);
    ///     ws::echo(socket)
    /// }));
    ///
    /// let mut client = ws::connect(&url).await?;
    /// client.send(Message::text("hi")).await?;
    /// let echo = tokio::time::timeout(Duration::from_secs(5), client.recv()).await?;
    /// assert_eq!(echo.expect("open")?, Message::text("hi"));
    /// assert_eq!(connections.load(Ordering::Relaxed), 1);
    /// server.abort(); // no more connections
    /// # Ok(()) }
    /// ```
    pub async fn serve<F, Fut>(listener: tokio::net::TcpListener, config: Config, handler: F)
    where
        F: Fn(WebSocket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        switchboard_async::ws::serve(Tokio, listener, Arc::new(config), handler).await
    }

    /// Echoes text and binary messages until the peer closes: a ready-made
    /// handler for [`serve`] and routes (see [`connect`]'s example).
    pub use switchboard_async::ws::echo;
}

pub mod engineio {
    //! Engine.IO servers on tokio: long-polling and WebSocket sessions
    //! served beside plain WebSocket routes on one listener; and the
    //! Engine.IO client ([`connect`]).
    //!
    //! [`Routes`] say what a listener serves (Socket.IO and Engine.IO
    //! endpoints by path, WebSocket handlers, plain HTTP), and [`serve`]
    //! serves them. An Engine.IO echo at `/engine.io/` with a WebSocket
    //! echo at `/ws` beside it:
    //!
    //! ```
    //! use std::time::Duration;
    //! use switchboard_tokio::engineio::{self, EngineIo, MessageData, Routes, ServerConfig};
    //! use switchboard_tokio::ws;
    //! # #[tokio::main]
    //! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    //! let (engine, mut sockets) = EngineIo::with_sockets(ServerConfig::default());
    //! let routes = Routes::new()
    //!     .engineio("/engine.io/", engine)
    //!     .websocket_at("/ws", ws::echo);
    //! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    //! let addr = listener.local_addr()?;
    //! tokio::spawn(engineio::serve(listener, routes));
    //! tokio::spawn(async move {
    //!     // Each session as it opens, in a task of its own.
    //!     while let Some(mut socket) = sockets.accept().await {
    //!         tokio::spawn(async move {
    //!             while let Some(message) = socket.recv().await {
    //!                 let _ = socket.send(message); // echo
    //!             }
    //!         });
    //!     }
    //! });
    //!
    //! let five_s = Duration::from_secs(5);
    //! let mut client = engineio::connect(&format!("http://{addr}")).await?;
    //! client.send("hello")?;
    //! let echo = tokio::time::timeout(five_s, client.recv_message()).await?;
    //! assert_eq!(echo, Some(MessageData::from("hello")));
    //!
    //! let mut plain = ws::connect(&format!("ws://{addr}/ws")).await?;
    //! plain.send(ws::Message::text("hi")).await?;
    //! let echo = tokio::time::timeout(five_s, plain.recv()).await?;
    //! assert_eq!(echo.expect("open")?, ws::Message::text("hi"));
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
        CloseReason, MessageData, OpenPacket, SendError, ServerConfig, ServerEvent, TransportKind,
    };
    pub use switchboard_core::http::{Request, ServerLimits};

    use super::{Tokio, TokioIo};

    /// Routes of a tokio server, over TCP by default: what one listener
    /// serves. Engine.IO and Socket.IO endpoints by path prefix, WebSocket
    /// handlers on paths of their own ([`websocket_at`]) and on every other
    /// path ([`websocket`]), and an HTTP handler for the remaining requests
    /// ([`http`]); without one those get 404.
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_tokio::engineio::{self, HttpResponse, Routes};
    /// use switchboard_tokio::socketio::{SocketIo, SocketIoConfig};
    /// use switchboard_tokio::ws;
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// let routes = Routes::new()
    ///     .socketio("/socket.io/", &io)
    ///     .websocket_at("/echo", ws::echo)
    ///     .http(|request, _body| {
    ///         let (status, text) = match request.path() {
    ///             "/health" => (200, "ok"),
    ///             _ => (404, "not found"),
    ///         };
    ///         let headers = vec![("Content-Type".into(), "text/plain".into())];
    ///         HttpResponse { status, headers, body: text.into() }
    ///     });
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let addr = listener.local_addr()?;
    /// tokio::spawn(engineio::serve(listener, routes));
    ///
    /// let mut stream = tokio::net::TcpStream::connect(addr).await?;
    /// stream.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await?;
    /// let mut response = String::new();
    /// tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response)).await??;
    /// assert!(response.starts_with("HTTP/1.1 200") && response.ends_with("ok"));
    /// # Ok(()) }
    /// ```
    ///
    /// [`websocket_at`]: switchboard_async::server::Routes::websocket_at
    /// [`websocket`]: switchboard_async::server::Routes::websocket
    /// [`http`]: switchboard_async::server::Routes::http
    pub type Routes<S = TokioIo<tokio::net::TcpStream>> =
        switchboard_async::server::Routes<S, Tokio>;

    /// Serves `routes` on `listener`, one task per connection, forever
    /// (abort its task to stop accepting). It starts the endpoints' timers
    /// (heartbeats, ack deadlines) and has Socket.IO servers spawn their
    /// async handlers with `tokio::spawn`. At most
    /// [`ServerLimits::max_connections`] are open at once.
    ///
    /// ```
    /// use switchboard_tokio::engineio::{self, EngineIo, Routes, ServerConfig};
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (engine, _sockets) = EngineIo::with_sockets(ServerConfig::default());
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let url = format!("http://{}", listener.local_addr()?);
    /// let routes = Routes::new().engineio("/engine.io/", engine.clone());
    /// let server = tokio::spawn(engineio::serve(listener, routes));
    ///
    /// let _client = engineio::connect(&url).await?;
    /// assert_eq!(engine.session_count(), 1);
    /// server.abort();
    /// # Ok(()) }
    /// ```
    pub async fn serve(listener: tokio::net::TcpListener, routes: Routes) {
        switchboard_async::server::serve(Tokio, listener, routes).await
    }

    /// Serves `routes` on one connection the application accepted (from
    /// its own accept loop, or a TLS stream), until the client closes it,
    /// a timeout passes, or it is upgraded to a WebSocket and that ends.
    /// It starts the routes' timers on tokio, once however often it is
    /// called.
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_tokio::Tokio;
    /// use switchboard_tokio::engineio::{self, Routes};
    /// use switchboard_tokio::socketio::{ClientBuilder, SocketIo, SocketIoConfig};
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |_socket| {});
    /// let routes: Routes = Routes::new().socketio("/socket.io/", &io);
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let url = format!("http://{}", listener.local_addr()?);
    /// tokio::spawn(async move {
    ///     while let Ok((stream, peer)) = listener.accept().await {
    ///         let _ = stream.set_nodelay(true); // as `serve` does
    ///         let routes = routes.clone();
    ///         tokio::spawn(async move {
    ///             if let Err(error) = engineio::serve_connection(stream, routes).await {
    ///                 eprintln!("{peer}: {error}");
    ///             }
    ///         });
    ///     }
    /// });
    ///
    /// let socket = ClientBuilder::new(&url).connect(Tokio).await?;
    /// assert!(socket.connected());
    /// # Ok(()) }
    /// ```
    pub async fn serve_connection<S>(stream: S, routes: Routes<TokioIo<S>>) -> std::io::Result<()>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        routes.start_timers(&Tokio);
        switchboard_async::server::serve_connection(Tokio, TokioIo(stream), routes).await
    }

    /// Connects to the Engine.IO server at `url` (`http://host:port`, with
    /// an optional path replacing `/engine.io/`): polling first, then the
    /// upgrade to WebSocket. Resolves once the handshake is done (or the
    /// connect timeout of [`ClientConfig`], 20 s, passed). `https://` is
    /// refused ([`ConnectError::TlsUnsupported`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_tokio::engineio::{self, MessageData};
    /// # use switchboard_tokio::engineio::{EngineIo, Routes, ServerConfig};
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let (engine, mut sockets) = EngineIo::with_sockets(ServerConfig::default());
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let url = format!("http://{}", listener.local_addr()?);
    /// # tokio::spawn(engineio::serve(listener, Routes::new().engineio("/engine.io/", engine)));
    /// # tokio::spawn(async move {
    /// #     while let Some(mut socket) = sockets.accept().await {
    /// #         tokio::spawn(async move {
    /// #             while let Some(message) = socket.recv().await {
    /// #                 let _ = socket.send(message);
    /// #             }
    /// #         });
    /// #     }
    /// # });
    /// // An echo server at `url` (see the module docs).
    /// let mut client = engineio::connect(&url).await?;
    /// println!("session {}", client.sid());
    /// client.send(vec![1u8, 2, 3])?; // binary; a &str or String is text
    /// let echo = tokio::time::timeout(Duration::from_secs(5), client.recv_message()).await?;
    /// assert_eq!(echo, Some(MessageData::from(vec![1u8, 2, 3])));
    /// client.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<EngineIoClient, ConnectError> {
        connect_with_config(ClientConfig::from_url(url)?).await
    }

    /// Connects with explicit settings (transports, protocol version,
    /// limits, headers).
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_core::engineio::TransportKind;
    /// use switchboard_tokio::engineio::{self, ClientConfig, EngineIo, Routes, ServerConfig};
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (engine, mut sockets) = EngineIo::with_sockets(ServerConfig::default());
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let url = format!("http://{}", listener.local_addr()?);
    /// tokio::spawn(engineio::serve(listener, Routes::new().engineio("/engine.io/", engine)));
    ///
    /// let mut config = ClientConfig::from_url(&url)?;
    /// config.polling = false; // WebSocket from the start
    /// config.extra_headers.push(("Authorization".into(), "Bearer s3cret".into()));
    /// let client = engineio::connect_with_config(config).await?;
    /// assert_eq!(client.transport(), TransportKind::WebSocket);
    ///
    /// let socket = tokio::time::timeout(Duration::from_secs(5), sockets.accept()).await?;
    /// let socket = socket.expect("a session");
    /// assert_eq!(socket.request().headers.get("authorization"), Some("Bearer s3cret"));
    /// # Ok(()) }
    /// ```
    pub async fn connect_with_config(config: ClientConfig) -> Result<EngineIoClient, ConnectError> {
        EngineIoClient::connect(Tokio, config).await
    }
}

pub mod socketio {
    //! Socket.IO servers: namespaces, events, acks, binary, rooms and
    //! broadcasts (the same names on every runtime). Mount a [`SocketIo`]
    //! with [`Routes::socketio`](switchboard_async::server::Routes::socketio)
    //! and serve the routes (or use [`serve`]); the client is
    //! [`ClientBuilder`], connected with [`Tokio`](crate::Tokio).
    //!
    //! Rooms, and an emit from outside any handler (a REST route, a job):
    //!
    //! ```
    //! use std::time::Duration;
    //! use switchboard_tokio::Tokio;
    //! use switchboard_tokio::engineio::{self, Routes};
    //! use switchboard_tokio::socketio::{ClientBuilder, SocketIo, SocketIoConfig};
    //! # #[tokio::main]
    //! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    //! let io = SocketIo::new(SocketIoConfig::default());
    //! io.ns("/", |socket| {
    //!     socket.on("join", |socket, mut event| {
    //!         let room: String = event.arg(0).unwrap_or_default();
    //!         let _ = socket.join(&room);
    //!         if let Some(ack) = event.take_ack() {
    //!             let _ = ack.send(&room);
    //!         }
    //!     });
    //! });
    //! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    //! let url = format!("http://{}", listener.local_addr()?);
    //! tokio::spawn(engineio::serve(listener, Routes::new().socketio("/socket.io/", &io)));
    //!
    //! let client = ClientBuilder::new(&url)
    //!     .on("news", |_socket, event| {
    //!         println!("news: {}", event.arg::<String>(0).unwrap_or_default());
    //!     })
    //!     .connect(Tokio)
    //!     .await?;
    //! client.emit_with_ack("join", "lobby", Duration::from_secs(5))?.await?;
    //! // To every socket in the room; the count of sockets it went to.
    //! assert_eq!(io.to("lobby").emit("news", "hello, lobby")?, 1);
    //! # Ok(()) }
    //! ```
    //!
    //! See [`switchboard_async::socketio`] for the whole API.

    pub use switchboard_async::socketio::client::{ClientBuilder, ClientSocket, SocketIoClient};
    pub use switchboard_async::socketio::*;

    /// Serves `io` at `/socket.io/` on `addr`, forever: it returns only if
    /// `addr` cannot be bound. To learn the port of `127.0.0.1:0`, or to
    /// serve more routes, bind the listener yourself and use
    /// [`engineio::serve`](crate::engineio::serve) (see the [crate]
    /// example).
    ///
    /// ```no_run
    /// use switchboard_tokio::socketio::{SocketIo, SocketIoConfig, serve};
    ///
    /// #[tokio::main]
    /// async fn main() -> std::io::Result<()> {
    ///     let io = SocketIo::new(SocketIoConfig::default());
    ///     io.ns("/", |socket| {
    ///         socket.on("ping", |socket, _event| {
    ///             let _ = socket.emit("pong", &());
    ///         });
    ///     });
    ///     serve("0.0.0.0:3000", io).await // blocks for good
    /// }
    /// ```
    pub async fn serve(addr: impl tokio::net::ToSocketAddrs, io: SocketIo) -> std::io::Result<()> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let routes = crate::engineio::Routes::new().socketio("/socket.io/", &io);
        crate::engineio::serve(listener, routes).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use switchboard_async::Runtime;

    use super::*;

    /// The latest `Instant` there is (found by halving steps).
    fn last_instant() -> Instant {
        let mut last = Instant::now();
        let mut step = Duration::from_secs(u64::MAX);
        while step > Duration::ZERO {
            match last.checked_add(step) {
                Some(later) => last = later,
                None => step /= 2,
            }
        }
        last
    }

    #[tokio::test]
    async fn a_sleep_until_the_end_of_time_does_not_panic() {
        for deadline in [
            last_instant(),
            last_instant() - Duration::from_micros(1),
            Instant::now() + Duration::from_secs(100 * 365 * 86_400),
        ] {
            let sleep = Tokio.sleep_until(deadline);
            let waited = tokio::time::timeout(Duration::from_millis(20), sleep).await;
            assert!(waited.is_err(), "a far-future sleep ended");
        }
    }

    /// A WebSocket echo served on `addr` (a port of its own), and its port.
    async fn echo_on(addr: &str) -> u16 {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        tokio::spawn(ws::serve(listener, ws::Config::default(), ws::echo));
        port
    }

    async fn echoes(url: &str) {
        let five_s = Duration::from_secs(5);
        let connecting = tokio::time::timeout(five_s, ws::connect(url)).await;
        let mut client = connecting.expect("connected in time").expect("connected");
        client.send(ws::Message::text("hi")).await.expect("sent");
        let echo = tokio::time::timeout(five_s, client.recv()).await;
        let echo = echo
            .expect("an echo in time")
            .expect("open")
            .expect("a message");
        assert_eq!(echo, ws::Message::text("hi"));
    }

    #[tokio::test]
    async fn a_client_connects_to_an_ipv6_literal() {
        let port = echo_on("[::1]:0").await;
        echoes(&format!("ws://[::1]:{port}/")).await;
    }

    #[tokio::test]
    async fn a_client_connects_to_a_host_name() {
        let port = echo_on("127.0.0.1:0").await;
        echoes(&format!("ws://localhost:{port}/")).await;
    }

    #[tokio::test]
    async fn a_refused_connect_is_an_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        drop(listener);
        let url = format!("ws://127.0.0.1:{port}/");
        let result = tokio::time::timeout(Duration::from_secs(5), ws::connect(&url)).await;
        assert!(matches!(result, Ok(Err(ws::Error::Io(_)))), "{result:?}");
    }

    #[tokio::test]
    async fn a_panicking_connection_gives_its_slot_back() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("ws://{}/", listener.local_addr().expect("address"));
        let config = ws::Config {
            max_connections: 1,
            ..ws::Config::default()
        };
        let first = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        tokio::spawn(ws::serve(listener, config, move |socket| {
            let first = first.swap(false, std::sync::atomic::Ordering::Relaxed);
            async move {
                if first {
                    panic!("a handler's bug");
                }
                ws::echo(socket).await
            }
        }));
        let panicked = ws::connect(&url).await.expect("connected");
        echoes(&url).await;
        drop(panicked);
    }
}
