//! Switchboard: WebSocket, Engine.IO and Socket.IO for Rust, server and
//! client, on the runtime of your choice.
//!
//! # Picking a runtime
//!
//! Pick runtimes with Cargo features; each lives in its own module, so
//! several can be enabled at once:
//!
//! | feature | module | model |
//! | --- | --- | --- |
//! | `tokio` (default) | [`tokio`] | tokio's scheduler |
//! | `smol` | `smol` | smol's executor; also async-std apps |
//! | `threads` | `threads` | blocking `std::net`, a thread per connection |
//! | `tower` | `tokio::tower` | mount into axum / hyper 1.x (implies `tokio`) |
//!
//! ```toml
//! [dependencies]
//! switchboard = "0.1" # tokio
//! # or: switchboard = { version = "0.1", default-features = false, features = ["smol"] }
//! ```
//!
//! Socket.IO handlers are written once against [`socketio`] and run on
//! whichever runtime serves them: switching the feature (and nothing else)
//! moves a server built with [`serve`] to another runtime.
//!
//! ```no_run
//! use switchboard::socketio::{SocketIo, SocketIoConfig};
//!
//! fn main() -> std::io::Result<()> {
//!     let io = SocketIo::new(SocketIoConfig::default());
//!     io.ns("/", |socket| {
//!         socket.on("chat", |socket, event| {
//!             let text: String = event.arg(0).unwrap_or_default();
//!             let _ = socket.broadcast().emit("chat", &text); // to everyone else
//!         });
//!     });
//!     switchboard::serve("127.0.0.1:3000", io) // blocks for good
//! }
//! ```
//!
//! # A Socket.IO server and a client in an async app
//!
//! In an async app, serve the routes from a task; binding the listener
//! yourself gives you the port. The client takes the runtime to run on
//! (here [`tokio::Tokio`]). Events and acks carry any `serde` types:
//!
//! ```
//! use std::time::Duration;
//! use switchboard::socketio::client::ClientBuilder;
//! use switchboard::socketio::{SocketIo, SocketIoConfig};
//! # #[cfg(feature = "tokio")]
//! use switchboard::tokio::engineio::{Routes, serve};
//!
//! # #[cfg(feature = "tokio")]
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let io = SocketIo::new(SocketIoConfig::default());
//!     io.ns("/", |socket| {
//!         let _ = socket.emit("welcome", "hello"); // on connect
//!         socket.on("join", |socket, mut event| {
//!             let room: String = event.arg(0).unwrap_or_default();
//!             let _ = socket.join(&room);
//!             if let Some(ack) = event.take_ack() {
//!                 let _ = ack.send(&room);
//!             }
//!         });
//!     });
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//!     let url = format!("http://{}", listener.local_addr()?);
//!     tokio::spawn(serve(listener, Routes::new().socketio("/socket.io/", &io)));
//!
//!     let (welcomes, mut welcome) = tokio::sync::mpsc::unbounded_channel();
//!     let socket = ClientBuilder::new(&url)
//!         .on("welcome", move |_socket, event| {
//!             let _ = welcomes.send(event.arg::<String>(0).unwrap_or_default());
//!         })
//!         .connect(switchboard::tokio::Tokio)
//!         .await?;
//!     let room = socket.emit_with_ack("join", "lobby", Duration::from_secs(5))?.await?;
//!     assert_eq!(room.arg::<String>(0)?, "lobby");
//!     let text = tokio::time::timeout(Duration::from_secs(5), welcome.recv()).await?;
//!     assert_eq!(text.as_deref(), Some("hello"));
//!     Ok(())
//! }
//! # #[cfg(not(feature = "tokio"))]
//! # fn main() {}
//! ```
//!
//! # WebSocket
//!
//! A server handing each connection to a handler (here the ready-made
//! echo), and a client:
//!
//! ```
//! use std::time::Duration;
//! # #[cfg(feature = "tokio")]
//! use switchboard::tokio::ws;
//! # #[cfg(feature = "tokio")]
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
//! # #[cfg(not(feature = "tokio"))]
//! # fn main() {}
//! ```
//!
//! The same names exist in `smol::ws` and, blocking, in `threads::ws`; the
//! runtime modules' docs have more: Engine.IO, WebSocket routes beside
//! Socket.IO on one listener, plain HTTP routes, accepting connections
//! yourself.
//!
//! # On async-std (feature `smol`)
//!
//! async-std shares smol's reactor; a `switchboard::smol::Smol` made with
//! `Smol::with_spawner` runs Switchboard's tasks on async-std's executor:
//!
//! ```
//! # #[cfg(feature = "smol")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use switchboard::smol::Smol;
//! use switchboard::smol::engineio::{Routes, serve_on};
//! use switchboard::socketio::client::ClientBuilder;
//! use switchboard::socketio::{SocketIo, SocketIoConfig};
//!
//! let io = SocketIo::new(SocketIoConfig::default());
//! io.ns("/", |socket| {
//!     socket.on("sum", |_socket, mut event| {
//!         let (a, b): (i64, i64) = event.args().unwrap_or_default();
//!         if let Some(ack) = event.take_ack() {
//!             let _ = ack.send(&(a + b));
//!         }
//!     });
//! });
//! async_std::task::block_on(async {
//!     let runtime = Smol::with_spawner(|task| {
//!         async_std::task::spawn(task);
//!     });
//!     let listener = async_net::TcpListener::bind("127.0.0.1:0").await?;
//!     let url = format!("http://{}", listener.local_addr()?);
//!     let routes = Routes::new().socketio("/socket.io/", &io);
//!     async_std::task::spawn(serve_on(runtime.clone(), listener, routes));
//!
//!     let socket = ClientBuilder::new(&url).connect(runtime).await?;
//!     let answer = socket.emit_with_ack("sum", &(1, 2), Duration::from_secs(5))?.await?;
//!     assert_eq!(answer.arg::<i64>(0)?, 3);
//!     Ok(())
//! })
//! # }
//! # #[cfg(not(feature = "smol"))]
//! # fn main() {}
//! ```
//!
//! # Inside an axum app (feature `tower`)
//!
//! `tokio::tower::SwitchboardLayer` mounts Socket.IO, Engine.IO and
//! WebSocket routes beside the app's own, on its listener (see
//! `examples/axum.rs` for a REST route that emits to a Socket.IO room):
//!
//! ```
//! # #[cfg(feature = "tower")]
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use switchboard::socketio::client::ClientBuilder;
//! use switchboard::socketio::{SocketIo, SocketIoConfig};
//! use switchboard::tokio::tower::SwitchboardLayer;
//! use switchboard::tokio::{Tokio, ws};
//!
//! let io = SocketIo::new(SocketIoConfig::default());
//! io.ns("/", |socket| {
//!     socket.on("join", |socket, mut event| {
//!         let _ = socket.join(&event.arg::<String>(0).unwrap_or_default());
//!         if let Some(ack) = event.take_ack() {
//!             let _ = ack.send(&());
//!         }
//!     });
//! });
//! let switchboard = SwitchboardLayer::new()
//!     .socketio("/socket.io/", &io)
//!     .websocket("/ws", ws::echo);
//! let app = Router::new()
//!     .route("/api/health", get(|| async { "ok" }))
//!     .layer(switchboard);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(async move { axum::serve(listener, app).await });
//!
//! let socket = ClientBuilder::new(&format!("http://{addr}")).connect(Tokio).await?;
//! socket.emit_with_ack("join", "lobby", Duration::from_secs(5))?.await?;
//! assert_eq!(io.to("lobby").emit("news", "hello")?, 1); // from anywhere: a REST route, a job
//! let mut echo = ws::connect(&format!("ws://{addr}/ws")).await?;
//! echo.send(ws::Message::text("hi")).await?;
//! let back = tokio::time::timeout(Duration::from_secs(5), echo.recv()).await?;
//! assert_eq!(back.expect("open")?, ws::Message::text("hi"));
//! # Ok(()) }
//! # #[cfg(not(feature = "tower"))]
//! # fn main() {}
//! ```
//!
//! The protocol state machines are in [`core`], shared by all of them.

#![warn(missing_docs)]

pub use switchboard_core as core;

/// The byte buffer type of messages, bodies and binary attachments (the
/// `bytes` crate's).
pub use bytes::{self, Bytes};
/// JSON values, as Socket.IO payloads hold them (the `serde_json` crate).
pub use serde_json;

/// The Socket.IO server API, the same on every runtime: [`SocketIo`]
/// (`io`), [`Socket`](socketio::Socket), events, acks, rooms, broadcasts;
/// and the client, in [`socketio::client`] (its `ClientBuilder` connects
/// with a runtime's driver, such as `switchboard::tokio::Tokio`).
///
/// A server is built without naming a runtime; the runtime modules'
/// `Routes::socketio` (or [`serve`]) mount it:
///
/// ```
/// use switchboard::socketio::{SocketIo, SocketIoConfig};
///
/// fn chat() -> SocketIo {
///     let io = SocketIo::new(SocketIoConfig::default());
///     io.ns("/", |socket| {
///         let _ = socket.join("lobby");
///         socket.on("chat", |socket, event| {
///             let text: String = event.arg(0).unwrap_or_default();
///             let _ = socket.to("lobby").emit("chat", &text); // the others in the lobby
///         });
///     });
///     io
/// }
/// let io = chat();
/// assert_eq!(io.socket_count(), 0); // no client yet
/// ```
///
/// [`SocketIo`]: socketio::SocketIo
pub mod socketio {
    pub use switchboard_async::socketio::*;
}

/// Serves `io` at `/socket.io/` on `addr`, blocking the calling thread, on
/// the enabled runtime: tokio if its feature is on, else smol, else
/// threads. Use the runtime modules to choose explicitly or to serve more
/// routes.
///
/// It returns only if `addr` cannot be bound (or the runtime cannot be
/// started):
///
/// ```no_run
/// use switchboard::socketio::{SocketIo, SocketIoConfig};
///
/// let io = SocketIo::new(SocketIoConfig::default());
/// io.ns("/", |socket| {
///     socket.on("ping", |socket, _event| {
///         let _ = socket.emit("pong", &());
///     });
/// });
/// switchboard::serve("0.0.0.0:3000", io)?; // blocks for good
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// On tokio this starts a runtime of its own: called from inside a tokio
/// runtime it returns an error at once rather than panic. An async app
/// awaits `switchboard::tokio::socketio::serve(addr, io)` (or
/// `tokio::engineio::serve` on a listener it bound) instead.
///
/// ```
/// # #[cfg(feature = "tokio")]
/// # #[tokio::main]
/// # async fn main() {
/// let io = switchboard::socketio::SocketIo::new(Default::default());
/// let error = switchboard::serve("127.0.0.1:0", io).unwrap_err();
/// assert!(error.to_string().contains("await switchboard::tokio::socketio::serve"));
/// # }
/// # #[cfg(not(feature = "tokio"))]
/// # fn main() {}
/// ```
#[cfg(any(feature = "tokio", feature = "smol", feature = "threads"))]
pub fn serve(addr: impl std::net::ToSocketAddrs, io: socketio::SocketIo) -> std::io::Result<()> {
    #[cfg(feature = "tokio")]
    if ::tokio::runtime::Handle::try_current().is_ok() {
        return Err(std::io::Error::other(
            "switchboard::serve blocks its thread on a tokio runtime of its own, so it cannot \
             run inside one: await switchboard::tokio::socketio::serve(addr, io) instead",
        ));
    }
    let listener = std::net::TcpListener::bind(addr)?;
    #[cfg(feature = "tokio")]
    {
        let runtime = ::tokio::runtime::Runtime::new()?;
        runtime.block_on(async move {
            listener.set_nonblocking(true)?;
            let listener = ::tokio::net::TcpListener::from_std(listener)?;
            let routes = tokio::engineio::Routes::new().socketio("/socket.io/", &io);
            tokio::engineio::serve(listener, routes).await;
            Ok(())
        })
    }
    #[cfg(all(feature = "smol", not(feature = "tokio")))]
    {
        ::smol::block_on(async move {
            let listener = async_net::TcpListener::try_from(listener)?;
            let routes = smol::engineio::Routes::new().socketio("/socket.io/", &io);
            smol::engineio::serve(listener, routes).await;
            Ok(())
        })
    }
    #[cfg(all(feature = "threads", not(feature = "tokio"), not(feature = "smol")))]
    {
        let routes = threads::engineio::Routes::new().socketio("/socket.io/", &io);
        threads::engineio::serve(listener, routes)
    }
}

/// Switchboard on tokio.
#[cfg(feature = "tokio")]
pub use switchboard_tokio as tokio;

/// Switchboard on smol and async-std.
#[cfg(feature = "smol")]
pub use switchboard_smol as smol;

/// Switchboard on OS threads.
#[cfg(feature = "threads")]
pub use switchboard_threads as threads;

/// The README's examples, compiled as doctests (they use the default
/// runtime, tokio).
#[cfg(all(doctest, feature = "tokio"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(all(test, feature = "tokio"))]
mod tests {
    #[test]
    fn serve_inside_a_tokio_runtime_is_an_error_not_a_panic() {
        let runtime = ::tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let error = runtime
            .block_on(async {
                super::serve(
                    "127.0.0.1:0",
                    super::socketio::SocketIo::new(Default::default()),
                )
            })
            .expect_err("refused inside a runtime");
        assert!(
            error.to_string().contains("tokio::socketio::serve"),
            "{error}"
        );
    }
}
