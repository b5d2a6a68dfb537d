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
//! The modules hold what applications call: [`socketio`] (Socket.IO
//! servers and the client), [`engineio`] (the [`Routes`](engineio::Routes)
//! that put Socket.IO, Engine.IO, WebSocket and HTTP endpoints on one
//! listener, and the Engine.IO client) and [`ws`] (WebSocket servers and
//! clients). A Socket.IO server that greets each client and sums for it,
//! and a client:
//!
//! ```
//! use std::time::Duration;
//! use smol::future::FutureExt;
//! use switchboard_smol::Smol;
//! use switchboard_smol::engineio::{Routes, serve};
//! use switchboard_smol::socketio::{ClientBuilder, SocketIo, SocketIoConfig};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     smol::block_on(async {
//!         let io = SocketIo::new(SocketIoConfig::default());
//!         io.ns("/", |socket| {
//!             let _ = socket.emit("welcome", "hello");
//!             socket.on("sum", |_socket, mut event| {
//!                 let (a, b): (i64, i64) = event.args().unwrap_or_default();
//!                 if let Some(ack) = event.take_ack() {
//!                     let _ = ack.send(&(a + b));
//!                 }
//!             });
//!         });
//!         let listener = async_net::TcpListener::bind("127.0.0.1:0").await?;
//!         let url = format!("http://{}", listener.local_addr()?);
//!         smol::spawn(serve(listener, Routes::new().socketio("/socket.io/", &io))).detach();
//!
//!         let (welcomes, welcome) = smol::channel::unbounded();
//!         let socket = ClientBuilder::new(&url)
//!             .on("welcome", move |_socket, event| {
//!                 let _ = welcomes.try_send(event.arg::<String>(0).unwrap_or_default());
//!             })
//!             .connect(Smol::new())
//!             .await?;
//!         let answer = socket.emit_with_ack("sum", &(1, 2), Duration::from_secs(5))?.await?;
//!         assert_eq!(answer.arg::<i64>(0)?, 3);
//!         let timeout = async {
//!             smol::Timer::after(Duration::from_secs(5)).await;
//!             None
//!         };
//!         assert_eq!(async { welcome.recv().await.ok() }.or(timeout).await.as_deref(), Some("hello"));
//!         Ok(())
//!     })
//! }
//! ```
//!
//! A WebSocket echo server and a client:
//!
//! ```
//! use std::time::Duration;
//! use smol::future::FutureExt;
//! use switchboard_smol::ws;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! smol::block_on(async {
//!     let listener = async_net::TcpListener::bind("127.0.0.1:0").await?;
//!     let url = format!("ws://{}/", listener.local_addr()?);
//!     smol::spawn(ws::serve(listener, ws::Config::default(), ws::echo)).detach();
//!
//!     let mut client = ws::connect(&url).await?;
//!     client.send(ws::Message::text("hello")).await?;
//!     let timeout = async {
//!         smol::Timer::after(Duration::from_secs(5)).await;
//!         None
//!     };
//!     let echo = client.recv().or(timeout).await.expect("an echo within 5 s");
//!     assert_eq!(echo?, ws::Message::text("hello"));
//!     Ok(())
//! })
//! # }
//! ```
//!
//! On async-std, whose reactor is the same, hand the servers a [`Smol`]
//! that spawns on async-std's executor ([`Smol::with_spawner`]) through the
//! `serve_on` functions, or serve the streams of async-std's own listener
//! with [`engineio::serve_connection`] and [`ws::accept`]
//! (`examples/async_std_embed.rs`).

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

/// The smol (or async-std) runtime, for the shared async driver: pass it
/// wherever a driver asks for a runtime, such as the Socket.IO client's
/// [`ClientBuilder::connect`](socketio::ClientBuilder::connect) or the
/// `serve_on` functions. TCP streams it connects or accepts have
/// `TCP_NODELAY` set.
///
/// ```
/// use switchboard_async::Runtime;
/// use switchboard_smol::Smol;
/// # fn main() -> std::io::Result<()> {
/// smol::block_on(async {
///     let runtime = Smol::new();
///     let listener = async_net::TcpListener::bind("127.0.0.1:0").await?;
///     let port = listener.local_addr()?.port();
///     let server = runtime.clone();
///     runtime.spawn(async move {
///         let _ = server.accept(&listener).await;
///     });
///     let stream = runtime.connect("127.0.0.1", port).await?;
///     assert!(stream.nodelay()?);
///     Ok(())
/// })
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Smol {
    spawner: Option<Spawner>,
}

impl Smol {
    /// Spawns tasks on smol's global executor (`smol::spawn`), which runs
    /// them on threads of its own (`SMOL_THREADS`, one by default).
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_smol::Smol;
    /// use switchboard_smol::socketio::ClientBuilder;
    /// # use switchboard_smol::engineio::{Routes, serve};
    /// # use switchboard_smol::socketio::{SocketIo, SocketIoConfig};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # smol::block_on(async {
    /// # let io = SocketIo::new(SocketIoConfig::default());
    /// # io.ns("/", |socket| {
    /// #     socket.on("echo", |_socket, mut event| {
    /// #         let text: String = event.arg(0).unwrap_or_default();
    /// #         if let Some(ack) = event.take_ack() {
    /// #             let _ = ack.send(&text);
    /// #         }
    /// #     });
    /// # });
    /// # let listener = async_net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let url = format!("http://{}", listener.local_addr()?);
    /// # smol::spawn(serve(listener, Routes::new().socketio("/socket.io/", &io))).detach();
    /// // A Socket.IO server at `url` acks each "echo" with its text.
    /// let socket = ClientBuilder::new(&url).connect(Smol::new()).await?;
    /// let answer = socket.emit_with_ack("echo", "hi", Duration::from_secs(5))?.await?;
    /// assert_eq!(answer.arg::<String>(0)?, "hi");
    /// socket.disconnect();
    /// # Ok(()) })
    /// # }
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Spawns tasks with `spawn`: on async-std,
    /// `Smol::with_spawner(|task| { async_std::task::spawn(task); })`, or on
    /// an executor of the application's own, as here (two threads running
    /// a `smol::Executor` that serves WebSockets):
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use smol::future::FutureExt;
    /// use switchboard_smol::{Smol, ws};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let executor = Arc::new(smol::Executor::new());
    /// for _ in 0..2 {
    ///     let executor = executor.clone();
    ///     std::thread::spawn(move || smol::block_on(executor.run(smol::future::pending::<()>())));
    /// }
    /// let spawner = executor.clone();
    /// let runtime = Smol::with_spawner(move |task| spawner.spawn(task).detach());
    ///
    /// smol::block_on(async {
    ///     let listener = async_net::TcpListener::bind("127.0.0.1:0").await?;
    ///     let url = format!("ws://{}/", listener.local_addr()?);
    ///     let server = ws::serve_on(runtime, listener, ws::Config::default(), ws::echo);
    ///     executor.spawn(server).detach();
    ///
    ///     let mut client = ws::connect(&url).await?;
    ///     client.send(ws::Message::text("hi")).await?;
    ///     let timeout = async {
    ///         smol::Timer::after(Duration::from_secs(5)).await;
    ///         None
    ///     };
    ///     let echo = client.recv().or(timeout).await.expect("an echo within 5 s");
    ///     assert_eq!(echo?, ws::Message::text("hi"));
    ///     Ok(())
    /// })
    /// # }
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

/// A timer that completes at its deadline: what
/// [`Runtime::sleep_until`](switchboard_async::Runtime::sleep_until) gives
/// on [`Smol`] (an `async_io::Timer`).
///
/// ```
/// use std::time::{Duration, Instant};
/// use switchboard_async::Runtime;
/// use switchboard_smol::Smol;
///
/// let start = Instant::now();
/// smol::block_on(Smol::new().sleep_until(start + Duration::from_millis(10)));
/// assert!(start.elapsed() >= Duration::from_millis(10));
/// ```
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
    //! WebSocket server and client on smol and async-std: [`serve`] a
    //! listener (or [`serve_on`] an executor of your own) or [`accept`]
    //! streams yourself, and [`connect`] to `ws://` URLs; each gives a
    //! [`WebSocket`] to `recv` from and `send` to (or a `futures` `Stream`
    //! and `Sink`). Received pings are answered for you; permessage-deflate
    //! is on by default ([`Config`]).
    //!
    //! A handler written by hand: a greeting, then each text back in upper
    //! case.
    //!
    //! ```
    //! use std::time::Duration;
    //! use smol::future::FutureExt;
    //! use switchboard_smol::ws::{self, Message, WebSocket};
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
    //! # fn main() -> Result<(), Box<dyn std::error::Error>> {
    //! smol::block_on(async {
    //!     let listener = async_net::TcpListener::bind("127.0.0.1:0").await?;
    //!     let url = format!("ws://{}/", listener.local_addr()?);
    //!     smol::spawn(ws::serve(listener, ws::Config::default(), shout)).detach();
    //!
    //!     let mut client = ws::connect(&url).await?;
    //!     client.send(Message::text("hi")).await?;
    //!     for expected in ["welcome", "HI"] {
    //!         let timeout = async {
    //!             smol::Timer::after(Duration::from_secs(5)).await;
    //!             None
    //!         };
    //!         let message = client.recv().or(timeout).await.expect("an answer within 5 s");
    //!         assert_eq!(message?, Message::text(expected));
    //!     }
    //!     client.close(None).await?;
    //!     Ok(())
    //! })
    //! # }
    //! ```

    use std::future::Future;
    use std::sync::Arc;

    use futures_io::{AsyncRead, AsyncWrite};

    pub use switchboard_async::Error;
    pub use switchboard_async::ws::{accept_request, echo, read_request};
    pub use switchboard_core::ws::{
        CloseCode, CloseFrame, Config, DeflateConfig, KeepAlive, Message, OriginPolicy, Text,
    };

    use super::Smol;

    /// A WebSocket on smol, over a TCP stream by default (over any other
    /// `futures` IO stream `S`, such as async-std's, it is
    /// `WebSocket<S>`, see [`accept`]).
    ///
    /// Closing with a reason, and the peer seeing it:
    ///
    /// ```
    /// use std::time::Duration;
    /// use smol::future::FutureExt;
    /// use switchboard_smol::ws::{self, CloseCode, CloseFrame, Message, WebSocket};
    ///
    /// // Answers one message, then closes.
    /// async fn once(mut socket: WebSocket) {
    ///     if let Some(Ok(message)) = socket.recv().await {
    ///         let _ = socket.send(message).await;
    ///     }
    ///     let _ = socket.close(Some(CloseFrame::new(CloseCode::NORMAL, "bye"))).await;
    /// }
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// smol::block_on(async {
    ///     # let listener = async_net::TcpListener::bind("127.0.0.1:0").await?;
    ///     # let url = format!("ws://{}/", listener.local_addr()?);
    ///     smol::spawn(ws::serve(listener, ws::Config::default(), once)).detach();
    ///     let mut client = ws::connect(&url).await?;
    ///     client.send(Message::text("hi")).await?;
    ///     let mut received = Vec::new();
    ///     let timeout = smol::Timer::after(Duration::from_secs(5));
    ///     let all = async {
    ///         while let Some(message) = client.recv().await {
    ///             received.push(message?);
    ///         }
    ///         Ok::<_, ws::Error>(())
    ///     };
    ///     all.or(async { timeout.await; panic!("no close within 5 s") }).await?;
    ///     let bye = CloseFrame::new(CloseCode::NORMAL, "bye");
    ///     assert_eq!(received, [Message::text("hi"), Message::Close(Some(bye))]);
    ///     Ok(())
    /// })
    /// # }
    /// ```
    pub type WebSocket<S = async_net::TcpStream> = switchboard_async::ws::WebSocket<S, Smol>;

    /// Connects to a `ws://` URL with the default [`Config`] (which offers
    /// permessage-deflate); the opening handshake has
    /// [`Config::handshake_timeout`] to complete.
    ///
    /// `wss://` is refused, as this crate brings no TLS: connect a TLS
    /// stream yourself (async-tls, futures-rustls) and run
    /// [`switchboard_async::ws::client_handshake`] over it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use smol::future::FutureExt;
    /// use switchboard_smol::ws::{self, Message};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// smol::block_on(async {
    ///     # let listener = async_net::TcpListener::bind("127.0.0.1:0").await?;
    ///     # let addr = listener.local_addr()?;
    ///     # smol::spawn(ws::serve(listener, ws::Config::default(), ws::echo)).detach();
    ///     let mut client = ws::connect(&format!("ws://{addr}/chat?room=1")).await?;
    ///     client.send(Message::binary(vec![1, 2, 3])).await?;
    ///     let timeout = async {
    ///         smol::Timer::after(Duration::from_secs(5)).await;
    ///         None
    ///     };
    ///     let echo = client.recv().or(timeout).await.expect("an echo within 5 s");
    ///     assert_eq!(echo?, Message::binary(vec![1, 2, 3]));
    ///     client.close(None).await?; // the close handshake
    ///
    ///     assert!(ws::connect("wss://example.com/").await.is_err());
    ///     Ok(())
    /// })
    /// # }
    /// ```
    pub async fn connect(url: &str) -> Result<WebSocket, Error> {
        connect_with_config(url, Config::default()).await
    }

    /// Connects to a `ws://` URL with `config`: sub-protocols to offer,
    /// compression, limits, timeouts.
    ///
    /// ```
    /// use switchboard_smol::ws;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// smol::block_on(async {
    ///     # let listener = async_net::TcpListener::bind("127.0.0.1:0").await?;
    ///     # let url = format!("ws://{}/", listener.local_addr()?);
    ///     // The server supports two sub-protocols, the client offers one.
    ///     let server = ws::Config {
    ///         protocols: vec!["chat.v2".into(), "chat.v1".into()],
    ///         ..ws::Config::default()
    ///     };
    ///     smol::spawn(ws::serve(listener, server, ws::echo)).detach();
    ///
    ///     let config = ws::Config {
    ///         protocols: vec!["chat.v1".into()],
    ///         deflate: None, // no permessage-deflate
    ///         ..ws::Config::default()
    ///     };
    ///     let client = ws::connect_with_config(&url, config).await?;
    ///     assert_eq!(client.protocol(), Some("chat.v1"));
    ///     assert!(!client.is_compressed());
    ///     Ok(())
    /// })
    /// # }
    /// ```
    pub async fn connect_with_config(url: &str, config: Config) -> Result<WebSocket, Error> {
        switchboard_async::ws::connect(Smol::new(), url, Arc::new(config)).await
    }

    /// Performs the server handshake on any stream the application accepted
    /// (smol's, async-std's, or any `futures` IO stream), within
    /// [`Config::handshake_timeout`]. A refused handshake is answered with
    /// its HTTP status before the error is returned.
    ///
    /// ```
    /// use std::time::Duration;
    /// use smol::future::FutureExt;
    /// use switchboard_smol::ws::{self, Message};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// smol::block_on(async {
    ///     let listener = async_net::TcpListener::bind("127.0.0.1:0").await?;
    ///     let url = format!("ws://{}/", listener.local_addr()?);
    ///     smol::spawn(async move {
    ///         while let Ok((stream, peer)) = listener.accept().await {
    ///             smol::spawn(async move {
    ///                 match ws::accept(stream, ws::Config::default()).await {
    ///                     Ok(socket) => ws::echo(socket).await,
    ///                     Err(error) => eprintln!("{peer}: {error}"),
    ///                 }
    ///             })
    ///             .detach();
    ///         }
    ///     })
    ///     .detach();
    ///
    ///     let mut client = ws::connect(&url).await?;
    ///     client.send(Message::text("hi")).await?;
    ///     let timeout = async {
    ///         smol::Timer::after(Duration::from_secs(5)).await;
    ///         None
    ///     };
    ///     let echo = client.recv().or(timeout).await.expect("an echo within 5 s");
    ///     assert_eq!(echo?, Message::text("hi"));
    ///     Ok(())
    /// })
    /// # }
    /// ```
    pub async fn accept<S>(stream: S, config: Config) -> Result<WebSocket<S>, Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        switchboard_async::ws::accept(Smol::new(), stream, Arc::new(config)).await
    }

    /// Serves WebSocket connections on `listener`, spawning one task each on
    /// `runtime`'s executor, handing each to `handler` once its handshake
    /// is done. Runs until dropped; at most [`Config::max_connections`] are
    /// open at once. Here the spawner counts what it is given:
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::time::Duration;
    /// use smol::future::FutureExt;
    /// use switchboard_smol::{Smol, ws};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let spawned = Arc::new(AtomicUsize::new(0));
    /// let count = spawned.clone();
    /// let runtime = Smol::with_spawner(move |task| {
    ///     count.fetch_add(1, Ordering::Relaxed);
    ///     smol::spawn(task).detach();
    /// });
    /// smol::block_on(async {
    ///     let listener = async_net::TcpListener::bind("127.0.0.1:0").await?;
    ///     let url = format!("ws://{}/", listener.local_addr()?);
    ///     smol::spawn(ws::serve_on(runtime, listener, ws::Config::default(), ws::echo)).detach();
    ///
    ///     let mut client = ws::connect(&url).await?;
    ///     client.send(ws::Message::text("hi")).await?;
    ///     let timeout = async {
    ///         smol::Timer::after(Duration::from_secs(5)).await;
    ///         None
    ///     };
    ///     client.recv().or(timeout).await.expect("an echo within 5 s")?;
    ///     assert_eq!(spawned.load(Ordering::Relaxed), 1); // the connection's task
    ///     Ok(())
    /// })
    /// # }
    /// ```
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
    /// executor (see [`serve_on`]). The handler is called for every
    /// connection, so state it shares is cloned in:
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::time::Duration;
    /// use smol::future::FutureExt;
    /// use switchboard_smol::ws::{self, Message};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// smol::block_on(async {
    ///     let listener = async_net::TcpListener::bind("127.0.0.1:0").await?;
    ///     let url = format!("ws://{}/", listener.local_addr()?);
    ///     let next_id = Arc::new(AtomicUsize::new(1));
    ///     let handler = move |mut socket: ws::WebSocket| {
    ///         let id = next_id.fetch_add(1, Ordering::Relaxed);
    ///         async move {
    ///             let _ = socket.send(Message::text(format!("you are #{id}"))).await;
    ///             ws::echo(socket).await;
    ///         }
    ///     };
    ///     smol::spawn(ws::serve(listener, ws::Config::default(), handler)).detach();
    ///
    ///     let mut client = ws::connect(&url).await?;
    ///     let timeout = async {
    ///         smol::Timer::after(Duration::from_secs(5)).await;
    ///         None
    ///     };
    ///     let hello = client.recv().or(timeout).await.expect("a greeting within 5 s");
    ///     assert_eq!(hello?, Message::text("you are #1"));
    ///     Ok(())
    /// })
    /// # }
    /// ```
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
    //! sessions served beside plain WebSocket routes on one listener; and
    //! the Engine.IO client ([`connect`]).
    //!
    //! [`Routes`] say what a listener serves (Socket.IO and Engine.IO
    //! endpoints by path, WebSocket handlers, plain HTTP), and [`serve`]
    //! serves them. An Engine.IO echo at `/engine.io/` with a WebSocket
    //! echo at `/ws` beside it:
    //!
    //! ```
    //! use std::time::Duration;
    //! use smol::future::FutureExt;
    //! use switchboard_smol::engineio::{self, EngineIo, MessageData, Routes, ServerConfig};
    //! use switchboard_smol::ws;
    //! # fn main() -> Result<(), Box<dyn std::error::Error>> {
    //! smol::block_on(async {
    //!     let (engine, mut sockets) = EngineIo::with_sockets(ServerConfig::default());
    //!     let routes = Routes::new()
    //!         .engineio("/engine.io/", engine)
    //!         .websocket_at("/ws", ws::echo);
    //!     let listener = async_net::TcpListener::bind("127.0.0.1:0").await?;
    //!     let addr = listener.local_addr()?;
    //!     smol::spawn(engineio::serve(listener, routes)).detach();
    //!     smol::spawn(async move {
    //!         // Each session as it opens, in a task of its own.
    //!         while let Some(mut socket) = sockets.accept().await {
    //!             smol::spawn(async move {
    //!                 while let Some(message) = socket.recv().await {
    //!                     let _ = socket.send(message); // echo
    //!                 }
    //!             })
    //!             .detach();
    //!         }
    //!     })
    //!     .detach();
    //!
    //!     let mut client = engineio::connect(&format!("http://{addr}")).await?;
    //!     client.send("hello")?;
    //!     let timeout = async {
    //!         smol::Timer::after(Duration::from_secs(5)).await;
    //!         None
    //!     };
    //!     let echo = client.recv_message().or(timeout).await;
    //!     assert_eq!(echo, Some(MessageData::from("hello")));
    //!
    //!     let mut plain = ws::connect(&format!("ws://{addr}/ws")).await?;
    //!     plain.send(ws::Message::text("hi")).await?;
    //!     let timeout = async {
    //!         smol::Timer::after(Duration::from_secs(5)).await;
    //!         None
    //!     };
    //!     let echo = plain.recv().or(timeout).await.expect("an echo within 5 s");
    //!     assert_eq!(echo?, ws::Message::text("hi"));
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
        CloseReason, MessageData, OpenPacket, SendError, ServerConfig, ServerEvent, TransportKind,
    };
    pub use switchboard_core::http::{Request, ServerLimits};

    use super::Smol;

    /// Routes of a smol server, over TCP by default (over another stream
    /// `S`, such as async-std's, `Routes<S>` for [`serve_connection`]):
    /// what one listener serves. Engine.IO and Socket.IO endpoints by path
    /// prefix, WebSocket handlers on paths of their own ([`websocket_at`])
    /// and on every other path ([`websocket`]), and an HTTP handler for the
    /// remaining requests ([`http`]); without one those get 404.
    ///
    /// ```
    /// use std::time::Duration;
    /// use smol::future::FutureExt;
    /// use smol::io::{AsyncReadExt, AsyncWriteExt};
    /// use switchboard_smol::engineio::{self, HttpResponse, Routes};
    /// use switchboard_smol::socketio::{SocketIo, SocketIoConfig};
    /// use switchboard_smol::ws;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// smol::block_on(async {
    ///     let io = SocketIo::new(SocketIoConfig::default());
    ///     let routes = Routes::new()
    ///         .socketio("/socket.io/", &io)
    ///         .websocket(ws::echo) // upgrades on any other path
    ///         .http(|request, _body| {
    ///             let (status, text) = match request.path() {
    ///                 "/health" => (200, "ok"),
    ///                 _ => (404, "not found"),
    ///             };
    ///             let headers = vec![("Content-Type".into(), "text/plain".into())];
    ///             HttpResponse { status, headers, body: text.into() }
    ///         });
    ///     let listener = async_net::TcpListener::bind("127.0.0.1:0").await?;
    ///     let addr = listener.local_addr()?;
    ///     smol::spawn(engineio::serve(listener, routes)).detach();
    ///
    ///     let mut stream = async_net::TcpStream::connect(addr).await?;
    ///     stream.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await?;
    ///     let mut response = String::new();
    ///     let timeout = async {
    ///         smol::Timer::after(Duration::from_secs(5)).await;
    ///         panic!("no answer within 5 s")
    ///     };
    ///     stream.read_to_string(&mut response).or(timeout).await?;
    ///     assert!(response.starts_with("HTTP/1.1 200") && response.ends_with("ok"));
    ///
    ///     let _echo = ws::connect(&format!("ws://{addr}/anywhere")).await?;
    ///     Ok(())
    /// })
    /// # }
    /// ```
    ///
    /// [`websocket_at`]: switchboard_async::server::Routes::websocket_at
    /// [`websocket`]: switchboard_async::server::Routes::websocket
    /// [`http`]: switchboard_async::server::Routes::http
    pub type Routes<S = async_net::TcpStream> = switchboard_async::server::Routes<S, Smol>;

    /// Serves `routes` on `listener` with smol's global executor, one task
    /// per connection, forever (see [`serve_on`]). It starts the
    /// endpoints' timers (heartbeats, ack deadlines) and has Socket.IO
    /// servers spawn their async handlers on that executor. At most
    /// [`ServerLimits::max_connections`] are open at once.
    ///
    /// ```
    /// use switchboard_smol::engineio::{self, EngineIo, Routes, ServerConfig};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// smol::block_on(async {
    ///     let (engine, _sockets) = EngineIo::with_sockets(ServerConfig::default());
    ///     let listener = async_net::TcpListener::bind("127.0.0.1:0").await?;
    ///     let url = format!("http://{}", listener.local_addr()?);
    ///     let routes = Routes::new().engineio("/engine.io/", engine.clone());
    ///     let server = smol::spawn(engineio::serve(listener, routes));
    ///
    ///     let _client = engineio::connect(&url).await?;
    ///     assert_eq!(engine.session_count(), 1);
    ///     drop(server); // a smol task dropped is cancelled: no more connections
    ///     Ok(())
    /// })
    /// # }
    /// ```
    pub async fn serve(listener: async_net::TcpListener, routes: Routes) {
        serve_on(Smol::new(), listener, routes).await
    }

    /// Serves `routes` on `listener`, spawning on `runtime`'s executor
    /// (for example async-std's, see [`Smol::with_spawner`]): the
    /// connections' tasks, the timers, and the Socket.IO servers' async
    /// handlers.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use switchboard_smol::Smol;
    /// use switchboard_smol::engineio::{self, Routes};
    /// use switchboard_smol::socketio::{ClientBuilder, SocketIo, SocketIoConfig};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // An executor of the application's own, on a thread of its own.
    /// let executor = Arc::new(smol::Executor::new());
    /// let runner = executor.clone();
    /// std::thread::spawn(move || smol::block_on(runner.run(smol::future::pending::<()>())));
    /// let spawner = executor.clone();
    /// let runtime = Smol::with_spawner(move |task| spawner.spawn(task).detach());
    ///
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     socket.on_async("slow_echo", |_socket, mut event| async move {
    ///         smol::Timer::after(Duration::from_millis(10)).await;
    ///         let text: String = event.arg(0).unwrap_or_default();
    ///         if let Some(ack) = event.take_ack() {
    ///             let _ = ack.send(&text);
    ///         }
    ///     });
    /// });
    /// smol::block_on(async {
    ///     let listener = async_net::TcpListener::bind("127.0.0.1:0").await?;
    ///     let url = format!("http://{}", listener.local_addr()?);
    ///     let routes = Routes::new().socketio("/socket.io/", &io);
    ///     executor.spawn(engineio::serve_on(runtime, listener, routes)).detach();
    ///
    ///     let socket = ClientBuilder::new(&url).connect(Smol::new()).await?;
    ///     let answer = socket.emit_with_ack("slow_echo", "hi", Duration::from_secs(5))?.await?;
    ///     assert_eq!(answer.arg::<String>(0)?, "hi");
    ///     Ok(())
    /// })
    /// # }
    /// ```
    pub async fn serve_on(runtime: Smol, listener: async_net::TcpListener, routes: Routes) {
        switchboard_async::server::serve(runtime, listener, routes).await
    }

    /// Serves `routes` on one connection the application accepted (any
    /// `futures` IO stream: async-std's `TcpStream`, a TLS stream),
    /// spawning timers on `runtime` (once each however often it is
    /// called), until the client closes it, a timeout passes, or it is
    /// upgraded to a WebSocket and that ends.
    ///
    /// ```
    /// use switchboard_smol::Smol;
    /// use switchboard_smol::engineio::{self, Routes};
    /// use switchboard_smol::socketio::{ClientBuilder, SocketIo, SocketIoConfig};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// smol::block_on(async {
    ///     let io = SocketIo::new(SocketIoConfig::default());
    ///     io.ns("/", |_socket| {});
    ///     let routes: Routes = Routes::new().socketio("/socket.io/", &io);
    ///     let listener = async_net::TcpListener::bind("127.0.0.1:0").await?;
    ///     let url = format!("http://{}", listener.local_addr()?);
    ///     smol::spawn(async move {
    ///         while let Ok((stream, peer)) = listener.accept().await {
    ///             let _ = stream.set_nodelay(true); // as `serve` does
    ///             let routes = routes.clone();
    ///             smol::spawn(async move {
    ///                 if let Err(error) = engineio::serve_connection(Smol::new(), stream, routes).await {
    ///                     eprintln!("{peer}: {error}");
    ///                 }
    ///             })
    ///             .detach();
    ///         }
    ///     })
    ///     .detach();
    ///
    ///     let socket = ClientBuilder::new(&url).connect(Smol::new()).await?;
    ///     assert!(socket.connected());
    ///     Ok(())
    /// })
    /// # }
    /// ```
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
    /// `examples/smol_embed.rs` for a whole app.
    ///
    /// ```
    /// use std::time::Duration;
    /// use smol::future::FutureExt;
    /// use smol::io::{AsyncReadExt, AsyncWriteExt};
    /// use switchboard_smol::Smol;
    /// use switchboard_smol::engineio::{self, Routes};
    /// use switchboard_smol::socketio::{ClientBuilder, SocketIo, SocketIoConfig};
    /// use switchboard_smol::ws;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// smol::block_on(async {
    ///     let io = SocketIo::new(SocketIoConfig::default());
    ///     io.ns("/", |_socket| {});
    ///     let routes: Routes = Routes::new().socketio("/socket.io/", &io);
    ///     let listener = async_net::TcpListener::bind("127.0.0.1:0").await?;
    ///     let addr = listener.local_addr()?;
    ///     smol::spawn(async move {
    ///         while let Ok((mut stream, _peer)) = listener.accept().await {
    ///             let routes = routes.clone();
    ///             smol::spawn(async move {
    ///                 // Any parser will do; this one answers 431 to a head too large.
    ///                 let config = ws::Config::default();
    ///                 let Ok((request, buffered)) = ws::read_request(&mut stream, &config).await else {
    ///                     return;
    ///                 };
    ///                 if request.path() == "/version" {
    ///                     let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\n1.0";
    ///                     let _ = stream.write_all(answer).await;
    ///                 } else {
    ///                     let _ = engineio::serve_request(Smol::new(), stream, &request, &buffered, routes).await;
    ///                 }
    ///             })
    ///             .detach();
    ///         }
    ///     })
    ///     .detach();
    ///
    ///     let mut stream = async_net::TcpStream::connect(addr).await?;
    ///     stream.write_all(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n").await?;
    ///     let mut answer = String::new();
    ///     let timeout = async {
    ///         smol::Timer::after(Duration::from_secs(5)).await;
    ///         panic!("no answer within 5 s")
    ///     };
    ///     stream.read_to_string(&mut answer).or(timeout).await?;
    ///     assert!(answer.starts_with("HTTP/1.1 200 OK") && answer.ends_with("1.0"));
    ///
    ///     let socket = ClientBuilder::new(&format!("http://{addr}")).connect(Smol::new()).await?;
    ///     assert!(socket.connected());
    ///     Ok(())
    /// })
    /// # }
    /// ```
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
    /// upgrade to WebSocket. Resolves once the handshake is done (or failed;
    /// [`ClientConfig::connect_timeout`] bounds it, 20 s by default).
    /// `https://` is refused ([`ConnectError::TlsUnsupported`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use smol::future::FutureExt;
    /// use switchboard_smol::engineio::{self, MessageData};
    /// # use switchboard_smol::engineio::{EngineIo, Routes, ServerConfig};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// smol::block_on(async {
    ///     # let (engine, mut sockets) = EngineIo::with_sockets(ServerConfig::default());
    ///     # let listener = async_net::TcpListener::bind("127.0.0.1:0").await?;
    ///     # let url = format!("http://{}", listener.local_addr()?);
    ///     # smol::spawn(engineio::serve(listener, Routes::new().engineio("/engine.io/", engine))).detach();
    ///     # smol::spawn(async move {
    ///     #     while let Some(mut socket) = sockets.accept().await {
    ///     #         smol::spawn(async move {
    ///     #             while let Some(message) = socket.recv().await {
    ///     #                 let _ = socket.send(message);
    ///     #             }
    ///     #         }).detach();
    ///     #     }
    ///     # }).detach();
    ///     // An echo server at `url` (see the module docs).
    ///     let mut client = engineio::connect(&url).await?;
    ///     println!("session {}", client.sid());
    ///     client.send(vec![1u8, 2, 3])?; // binary; a &str or String is text
    ///     let timeout = async {
    ///         smol::Timer::after(Duration::from_secs(5)).await;
    ///         None
    ///     };
    ///     let echo = client.recv_message().or(timeout).await;
    ///     assert_eq!(echo, Some(MessageData::from(vec![1u8, 2, 3])));
    ///     client.close().await;
    ///     Ok(())
    /// })
    /// # }
    /// ```
    pub async fn connect(url: &str) -> Result<EngineIoClient, ConnectError> {
        connect_with_config(ClientConfig::from_url(url)?).await
    }

    /// Connects with explicit settings (transports, protocol version,
    /// limits, headers).
    ///
    /// ```
    /// use std::time::Duration;
    /// use smol::future::FutureExt;
    /// use switchboard_core::engineio::TransportKind;
    /// use switchboard_smol::engineio::{self, ClientConfig, EngineIo, Routes, ServerConfig};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// smol::block_on(async {
    ///     let (engine, mut sockets) = EngineIo::with_sockets(ServerConfig::default());
    ///     let listener = async_net::TcpListener::bind("127.0.0.1:0").await?;
    ///     let url = format!("http://{}", listener.local_addr()?);
    ///     let routes = Routes::new().engineio("/engine.io/", engine);
    ///     smol::spawn(engineio::serve(listener, routes)).detach();
    ///
    ///     let mut config = ClientConfig::from_url(&url)?;
    ///     config.websocket = false; // long-polling only
    ///     config.extra_headers.push(("Authorization".into(), "Bearer s3cret".into()));
    ///     let client = engineio::connect_with_config(config).await?;
    ///     assert_eq!(client.transport(), TransportKind::Polling);
    ///
    ///     let timeout = async {
    ///         smol::Timer::after(Duration::from_secs(5)).await;
    ///         None
    ///     };
    ///     let socket = sockets.accept().or(timeout).await.expect("a session");
    ///     assert_eq!(socket.request().headers.get("authorization"), Some("Bearer s3cret"));
    ///     Ok(())
    /// })
    /// # }
    /// ```
    pub async fn connect_with_config(config: ClientConfig) -> Result<EngineIoClient, ConnectError> {
        EngineIoClient::connect(Smol::new(), config).await
    }
}

pub mod socketio {
    //! Socket.IO servers: namespaces, events, acks, binary, rooms and
    //! broadcasts (the same names on every runtime). Mount a [`SocketIo`]
    //! with [`Routes::socketio`](switchboard_async::server::Routes::socketio)
    //! and serve the routes (or use [`serve`]); the client is
    //! [`ClientBuilder`], connected with [`Smol`](crate::Smol).
    //!
    //! Rooms, and an emit from outside any handler (a REST route, a job):
    //!
    //! ```
    //! use std::time::Duration;
    //! use smol::future::FutureExt;
    //! use switchboard_smol::Smol;
    //! use switchboard_smol::engineio::{self, Routes};
    //! use switchboard_smol::socketio::{ClientBuilder, SocketIo, SocketIoConfig};
    //! # fn main() -> Result<(), Box<dyn std::error::Error>> {
    //! smol::block_on(async {
    //!     let io = SocketIo::new(SocketIoConfig::default());
    //!     io.ns("/", |socket| {
    //!         socket.on("join", |socket, mut event| {
    //!             let room: String = event.arg(0).unwrap_or_default();
    //!             let _ = socket.join(&room);
    //!             if let Some(ack) = event.take_ack() {
    //!                 let _ = ack.send(&room);
    //!             }
    //!         });
    //!     });
    //!     let listener = async_net::TcpListener::bind("127.0.0.1:0").await?;
    //!     let url = format!("http://{}", listener.local_addr()?);
    //!     smol::spawn(engineio::serve(listener, Routes::new().socketio("/socket.io/", &io))).detach();
    //!
    //!     let (news_tx, news) = smol::channel::unbounded();
    //!     let client = ClientBuilder::new(&url)
    //!         .on("news", move |_socket, event| {
    //!             let _ = news_tx.try_send(event.arg::<String>(0).unwrap_or_default());
    //!         })
    //!         .connect(Smol::new())
    //!         .await?;
    //!     client.emit_with_ack("join", "lobby", Duration::from_secs(5))?.await?;
    //!     // To every socket in the room; the count of sockets it went to.
    //!     assert_eq!(io.to("lobby").emit("news", "hello, lobby")?, 1);
    //!     let timeout = async {
    //!         smol::Timer::after(Duration::from_secs(5)).await;
    //!         None
    //!     };
    //!     let received = async { news.recv().await.ok() }.or(timeout).await;
    //!     assert_eq!(received.as_deref(), Some("hello, lobby"));
    //!     Ok(())
    //! })
    //! # }
    //! ```
    //!
    //! See [`switchboard_async::socketio`] for the whole API.

    pub use switchboard_async::socketio::client::{ClientBuilder, ClientSocket, SocketIoClient};
    pub use switchboard_async::socketio::*;

    /// Serves `io` at `/socket.io/` on `addr` with smol's global executor,
    /// forever: it returns only if `addr` cannot be bound. To learn the
    /// port of `127.0.0.1:0`, or to serve more routes, bind the listener
    /// yourself and use [`engineio::serve`](crate::engineio::serve) (see
    /// the [crate] example).
    ///
    /// ```no_run
    /// use switchboard_smol::socketio::{SocketIo, SocketIoConfig, serve};
    ///
    /// fn main() -> std::io::Result<()> {
    ///     let io = SocketIo::new(SocketIoConfig::default());
    ///     io.ns("/", |socket| {
    ///         socket.on("ping", |socket, _event| {
    ///             let _ = socket.emit("pong", &());
    ///         });
    ///     });
    ///     smol::block_on(serve("0.0.0.0:3000", io)) // blocks for good
    /// }
    /// ```
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use smol::future::FutureExt;
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

    #[test]
    fn a_sleep_until_the_end_of_time_does_not_panic() {
        smol::block_on(async {
            for deadline in [
                last_instant(),
                last_instant() - Duration::from_micros(1),
                Instant::now() + Duration::from_secs(100 * 365 * 86_400),
            ] {
                let sleep = async {
                    Smol::new().sleep_until(deadline).await;
                    true
                };
                let timeout = async {
                    async_io::Timer::after(Duration::from_millis(20)).await;
                    false
                };
                assert!(!sleep.or(timeout).await, "a far-future sleep ended");
            }
        });
    }

    /// Waits for `future` at most five seconds.
    async fn within_5_s<T>(future: impl Future<Output = T>) -> T {
        let timeout = async {
            async_io::Timer::after(Duration::from_secs(5)).await;
            panic!("not done within 5 s")
        };
        future.or(timeout).await
    }

    /// A WebSocket echo served on `addr` (a port of its own) by `runtime`,
    /// and its port.
    async fn echo_on(runtime: Smol, addr: &str) -> u16 {
        let listener = async_net::TcpListener::bind(addr).await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let server = ws::serve_on(runtime.clone(), listener, ws::Config::default(), ws::echo);
        runtime.spawn(server);
        port
    }

    async fn echoes(url: &str) {
        let mut client = within_5_s(ws::connect(url)).await.expect("connected");
        client.send(ws::Message::text("hi")).await.expect("sent");
        let echo = within_5_s(client.recv())
            .await
            .expect("open")
            .expect("a message");
        assert_eq!(echo, ws::Message::text("hi"));
    }

    #[test]
    fn a_client_connects_to_an_ipv6_literal() {
        smol::block_on(async {
            let port = echo_on(Smol::new(), "[::1]:0").await;
            echoes(&format!("ws://[::1]:{port}/")).await;
        });
    }

    #[test]
    fn a_client_connects_to_a_host_name() {
        smol::block_on(async {
            let port = echo_on(Smol::new(), "127.0.0.1:0").await;
            echoes(&format!("ws://localhost:{port}/")).await;
        });
    }

    #[test]
    fn a_refused_connect_is_an_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        drop(listener);
        let url = format!("ws://127.0.0.1:{port}/");
        let result = smol::block_on(within_5_s(ws::connect(&url)));
        assert!(matches!(result, Err(ws::Error::Io(_))), "{result:?}");
    }

    #[test]
    fn everything_runs_on_one_thread_with_an_executor_of_its_own() {
        let executor = Arc::new(smol::Executor::new());
        let spawner = executor.clone();
        let runtime = Smol::with_spawner(move |task| spawner.spawn(task).detach());
        smol::block_on(executor.run(async {
            let port = echo_on(runtime, "127.0.0.1:0").await;
            echoes(&format!("ws://127.0.0.1:{port}/")).await;
        }));
    }

    #[test]
    fn a_panicking_connection_gives_its_slot_back() {
        smol::block_on(async {
            let listener = async_net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let url = format!("ws://{}/", listener.local_addr().expect("address"));
            let config = ws::Config {
                max_connections: 1,
                ..ws::Config::default()
            };
            let first = Arc::new(std::sync::atomic::AtomicBool::new(true));
            let server = ws::serve(listener, config, move |socket| {
                let first = first.swap(false, std::sync::atomic::Ordering::Relaxed);
                async move {
                    if first {
                        panic!("a handler's bug");
                    }
                    ws::echo(socket).await
                }
            });
            smol::spawn(server).detach();
            let panicked = within_5_s(ws::connect(&url)).await.expect("connected");
            echoes(&url).await;
            drop(panicked);
        });
    }
}
