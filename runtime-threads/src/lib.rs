//! Switchboard on plain OS threads: blocking `std::net` sockets, a thread per
//! connection, sync handlers (python-socketio's "threading" mode).
//!
//! The adapter moves bytes and time between the socket and the sans-IO core:
//! reads block with a timeout set to the core's next deadline; writes go out
//! under a lock shared with every [`ws::Sender`] clone. A deadline a sender
//! moves earlier than a waiting read's (a close started on another thread
//! arms the close timeout) is kept by one deadline thread for the process.
//!
//! ```
//! use switchboard_threads::ws;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! let addr = listener.local_addr()?;
//! std::thread::spawn(move || ws::serve(listener, ws::Config::default(), ws::echo));
//! let mut client = ws::connect(&format!("ws://{addr}/"))?;
//! client.send(ws::Message::text("hello"))?;
//! assert_eq!(client.recv().unwrap()?, ws::Message::text("hello"));
//! # Ok(()) }
//! ```
//!
//! [`ws`] holds the WebSocket server and client; [`engineio`] the Engine.IO
//! server, the [`Routes`](engineio::Routes) that put Engine.IO, Socket.IO,
//! WebSocket and HTTP endpoints on one listener, and [`engineio::client`];
//! [`socketio`] the Socket.IO server and [`socketio::client`].

#![warn(missing_docs)]

mod accept;
pub mod engineio;
mod pool;
#[cfg(test)]
mod testing;
pub mod ws;

pub mod socketio {
    //! Socket.IO servers: namespaces, events, acks, binary, rooms and
    //! broadcasts (the same names on every runtime). Mount a [`SocketIo`]
    //! with [`Routes::socketio`](crate::engineio::Routes::socketio) and
    //! serve the routes. Sync handlers run on a pool of handler threads, so
    //! they may block (even on an ack of their own socket); the client is
    //! in [`client`].
    //!
    //! ```
    //! use std::time::Duration;
    //! use switchboard_threads::engineio::{self, Routes};
    //! use switchboard_threads::socketio::client::{ClientBuilder, Threads};
    //! use switchboard_threads::socketio::{SocketIo, SocketIoConfig};
    //!
    //! let io = SocketIo::new(SocketIoConfig::default());
    //! io.ns("/", |socket| {
    //!     let _ = socket.join("lobby");
    //!     socket.on("chat", |socket, event| {
    //!         let text: String = event.arg(0).unwrap_or_default();
    //!         // Everyone in the lobby, the sender too.
    //!         let _ = socket.io().to("lobby").emit("chat", &text);
    //!     });
    //! });
    //! let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    //! let url = format!("http://{}", listener.local_addr()?);
    //! let routes = Routes::new().socketio("/socket.io/", &io);
    //! std::thread::spawn(move || engineio::serve(listener, routes));
    //!
    //! let (chats, chat) = std::sync::mpsc::channel();
    //! let client = ClientBuilder::new(&url)
    //!     .on("chat", move |_, event| {
    //!         let _ = chats.send(event.arg::<String>(0).unwrap_or_default());
    //!     })
    //!     .connect(Threads)
    //!     .wait()?;
    //! client.emit("chat", "hello")?;
    //! assert_eq!(chat.recv_timeout(Duration::from_secs(5))?, "hello");
    //! # Ok::<(), Box<dyn std::error::Error>>(())
    //! ```
    //!
    //! See [`switchboard_async::socketio`] for the whole API.

    pub use switchboard_async::socketio::*;

    /// Serves `io` at `/socket.io/` on `addr`, a thread per connection,
    /// blocking the calling thread. It returns only if `addr` cannot be
    /// bound (or the timer threads cannot be started); for more routes, or
    /// a listener bound beforehand, use
    /// [`engineio::serve`](crate::engineio::serve).
    ///
    /// ```no_run
    /// use switchboard_threads::socketio::{self, SocketIo, SocketIoConfig};
    ///
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     socket.on("ping", |socket, _event| {
    ///         let _ = socket.emit("pong", "pong");
    ///     });
    /// });
    /// socketio::serve("0.0.0.0:3000", io)?; // blocks for good
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn serve(addr: impl std::net::ToSocketAddrs, io: SocketIo) -> std::io::Result<()> {
        let listener = std::net::TcpListener::bind(addr)?;
        let routes = crate::engineio::Routes::new().socketio("/socket.io/", &io);
        crate::engineio::serve(listener, routes)
    }
    pub mod client;
    /// Sets a Socket.IO client up; on threads, connect it with the
    /// [`Threads`] driver and block until the namespace is joined with
    /// [`Connecting::wait`](client::Connecting::wait):
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_threads::socketio::client::Transport;
    /// use switchboard_threads::socketio::{ClientBuilder, Threads};
    /// # use switchboard_threads::engineio::{self, Routes};
    /// # use switchboard_threads::socketio::{SocketIo, SocketIoConfig};
    /// # let io = SocketIo::new(SocketIoConfig::default());
    /// # io.ns("/", |socket| {
    /// #     socket.on("sum", |_, mut event| {
    /// #         let (a, b): (i64, i64) = event.args().unwrap_or_default();
    /// #         if let Some(ack) = event.take_ack() {
    /// #             let _ = ack.send(&(a + b));
    /// #         }
    /// #     });
    /// # });
    /// # io.ns("/admin", |_| {});
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let url = format!("http://{}", listener.local_addr()?);
    /// # let routes = Routes::new().socketio("/socket.io/", &io);
    /// # std::thread::spawn(move || engineio::serve(listener, routes));
    /// // A server at `url` with namespaces `/` and `/admin`.
    /// let admin = ClientBuilder::new(&format!("{url}/admin")) // the namespace
    ///     .transports([Transport::WebSocket])
    ///     .timeout(Duration::from_secs(5))
    ///     .reconnection_attempts(3)
    ///     .on_connect(|socket| println!("joined {}", socket.namespace()))
    ///     .connect(Threads)
    ///     .wait()?;
    /// assert_eq!(admin.namespace(), "/admin");
    /// assert!(admin.connected());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub use client::ClientBuilder;
    /// A client's connection to one namespace; on threads, block for an
    /// ack with [`AckFuture::wait`](client::AckFuture::wait), or have a
    /// callback take it (the way for a handler, which must not block on
    /// it):
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_threads::socketio::{SocketIoClient, Threads};
    /// # use switchboard_threads::engineio::{self, Routes};
    /// # use switchboard_threads::socketio::{SocketIo, SocketIoConfig};
    /// # let io = SocketIo::new(SocketIoConfig::default());
    /// # io.ns("/", |socket| {
    /// #     socket.on("sum", |_, mut event| {
    /// #         let (a, b): (i64, i64) = event.args().unwrap_or_default();
    /// #         if let Some(ack) = event.take_ack() {
    /// #             let _ = ack.send(&(a + b));
    /// #         }
    /// #     });
    /// # });
    /// # io.ns("/admin", |_| {});
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let url = format!("http://{}", listener.local_addr()?);
    /// # let routes = Routes::new().socketio("/socket.io/", &io);
    /// # std::thread::spawn(move || engineio::serve(listener, routes));
    /// // A server at `url` whose `sum` event answers with the sum.
    /// let socket = SocketIoClient::connect(Threads, &url).wait()?;
    /// assert!(socket.connected() && socket.id().is_some());
    /// let answer = socket.emit_with_ack("sum", &(1, 2), Duration::from_secs(5))?.wait()?;
    /// assert_eq!(answer.args::<(i64,)>()?, (3,));
    ///
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let timeout = Duration::from_secs(5);
    /// socket.emit_with_ack_callback("sum", &(2, 3), timeout, move |answer| {
    ///     let _ = tx.send(answer.map(|payload| payload.values().to_vec()));
    /// })?;
    /// assert_eq!(rx.recv_timeout(timeout)??, [5]);
    /// socket.disconnect();
    /// assert!(!socket.connected());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub use client::ClientSocket;
    /// A Socket.IO client, its namespaces sharing one session; on threads,
    /// made with the [`Threads`] driver:
    ///
    /// ```
    /// use switchboard_threads::engineio::client::ClientConfig;
    /// use switchboard_threads::socketio::client::CoreConfig;
    /// use switchboard_threads::socketio::{SocketIoClient, Threads};
    /// # use switchboard_threads::engineio::{self, Routes};
    /// # use switchboard_threads::socketio::{SocketIo, SocketIoConfig};
    /// # let io = SocketIo::new(SocketIoConfig::default());
    /// # io.ns("/", |socket| {
    /// #     socket.on("sum", |_, mut event| {
    /// #         let (a, b): (i64, i64) = event.args().unwrap_or_default();
    /// #         if let Some(ack) = event.take_ack() {
    /// #             let _ = ack.send(&(a + b));
    /// #         }
    /// #     });
    /// # });
    /// # io.ns("/admin", |_| {});
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let url = format!("http://{}", listener.local_addr()?);
    /// # let routes = Routes::new().socketio("/socket.io/", &io);
    /// # std::thread::spawn(move || engineio::serve(listener, routes));
    /// // A server at `url` with namespaces `/` and `/admin`.
    /// let engine = ClientConfig::from_url(&format!("{url}/socket.io/"))?;
    /// let client = SocketIoClient::new(Threads, engine, CoreConfig::default())?;
    /// // Both namespaces over one session.
    /// let (main, admin) = (client.socket("/"), client.socket("/admin"));
    /// main.connect().wait()?;
    /// admin.connect().wait()?;
    /// assert!(client.is_open() && main.connected() && admin.connected());
    /// client.disconnect();
    /// assert!(!main.connected() && !admin.connected());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub use client::SocketIoClient;
    pub use client::Threads;
}
