//! Blocking Engine.IO servers: long-polling and WebSocket sessions served
//! beside plain WebSocket routes on one listener, a thread per connection.
//!
//! The session table is the same [`EngineIo`] hub the async adapters use;
//! this module only moves its requests, responses and messages over
//! blocking sockets and runs its timer on a thread.
//!
//! ```
//! use switchboard_threads::engineio::client::EngineIoClient;
//! use switchboard_threads::engineio::{EngineIo, MessageData, Routes, ServerConfig, serve};
//!
//! let (engine, sockets) = EngineIo::with_sockets(ServerConfig::default());
//! let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! let addr = listener.local_addr()?;
//! std::thread::spawn(move || serve(listener, Routes::new().engineio("/engine.io/", engine)));
//! // Each new session on a thread of its own, echoing.
//! std::thread::spawn(move || {
//!     for mut socket in switchboard_threads::engineio::blocking(sockets) {
//!         std::thread::spawn(move || {
//!             while let Some(message) = socket.recv() {
//!                 let _ = socket.send(message);
//!             }
//!         });
//!     }
//! });
//!
//! let mut client = EngineIoClient::connect(&format!("http://{addr}"))?;
//! client.send("hello")?;
//! assert_eq!(client.recv_message(), Some(MessageData::from("hello")));
//! client.close();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! One deviation from the async adapters: a blocking thread cannot wait for
//! a poll's response and for its socket at once, so while a poll is held a
//! short-lived watcher thread waits on the socket to notice a client that
//! goes away, or requests it pipelines behind the poll (read and handled
//! by the connection's thread, as the async adapters do).

pub mod client;

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::{Either, select};
pub use switchboard_async::engineio::{
    EngineIo, EventHandler, SocketSender, Sockets, WeakEngineIo, WsCommand,
};
use switchboard_async::engineio::{Routed, Socket as AsyncSocket, TryRecvError};
use switchboard_async::server::{Pipelined, RouteTable};
use switchboard_async::socketio::SocketIo;
use switchboard_async::timer::{self, Timed, WeakTimed};
pub use switchboard_core::engineio::HttpResponse;
pub use switchboard_core::engineio::{
    CloseReason, MessageData, SendError, ServerConfig, ServerEvent,
};
use switchboard_core::http::{HttpError, IncomingRequest, RequestReader, RequestWait};
pub use switchboard_core::http::{Request, ServerLimits};
use switchboard_core::ws::handshake::{self, Rejection};

use crate::accept::accept_loop;
use crate::ws::{self, Config, WebSocket};

/// One Engine.IO session, read with blocking calls: the sessions of an
/// [`EngineIo::with_sockets`] endpoint, from [`blocking`]. Iterating a
/// `Socket` calls [`recv`](Self::recv) until the session closes.
///
/// ```
/// # use switchboard_threads::engineio::{self, EngineIo, Routes, ServerConfig};
/// # use switchboard_threads::engineio::client::EngineIoClient;
/// # let (engine, sockets) = EngineIo::with_sockets(ServerConfig::default());
/// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # let url = format!("http://{}", listener.local_addr()?);
/// # let routes = Routes::new().engineio("/engine.io/", engine);
/// # std::thread::spawn(move || engineio::serve(listener, routes));
/// # let mut sessions = engineio::blocking(sockets);
/// let mut client = EngineIoClient::connect(&url)?;
/// let socket = sessions.next().unwrap();
/// assert_eq!(socket.sid(), client.sid());
/// // The session's thread: answer every message, until the session closes.
/// let server = std::thread::spawn(move || {
///     let (sender, mut count) = (socket.sender(), 0);
///     for message in socket {
///         let _ = sender.send(message);
///         count += 1;
///     }
///     count
/// });
/// client.send("ping")?;
/// assert_eq!(client.recv_message(), Some("ping".into()));
/// client.close();
/// assert_eq!(server.join().unwrap(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Socket(AsyncSocket);

impl Socket {
    /// The session id.
    pub fn sid(&self) -> &str {
        self.0.sid()
    }

    /// The handshake request (query and headers).
    ///
    /// ```
    /// # use switchboard_threads::engineio::{self, EngineIo, Routes, ServerConfig};
    /// # use switchboard_threads::engineio::client::EngineIoClient;
    /// # let (engine, sockets) = EngineIo::with_sockets(ServerConfig::default());
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let url = format!("http://{}", listener.local_addr()?);
    /// # let routes = Routes::new().engineio("/engine.io/", engine);
    /// # std::thread::spawn(move || engineio::serve(listener, routes));
    /// # let mut sessions = engineio::blocking(sockets);
    /// let client = EngineIoClient::connect(&format!("{url}/engine.io/?room=lobby"))?;
    /// let socket = sessions.next().unwrap();
    /// assert_eq!(socket.request().query_param("room").as_deref(), Some("lobby"));
    /// assert_eq!(socket.sid(), client.sid());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn request(&self) -> &switchboard_core::http::Request {
        self.0.request()
    }

    /// Blocks for the next message; `None` once the session closed.
    ///
    /// ```
    /// use switchboard_threads::engineio::CloseReason;
    /// # use switchboard_threads::engineio::{self, EngineIo, Routes, ServerConfig};
    /// # use switchboard_threads::engineio::client::EngineIoClient;
    /// # let (engine, sockets) = EngineIo::with_sockets(ServerConfig::default());
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let url = format!("http://{}", listener.local_addr()?);
    /// # let routes = Routes::new().engineio("/engine.io/", engine);
    /// # std::thread::spawn(move || engineio::serve(listener, routes));
    /// # let mut sessions = engineio::blocking(sockets);
    /// let mut client = EngineIoClient::connect(&url)?;
    /// let mut socket = sessions.next().unwrap();
    /// client.send("text")?;
    /// client.send(vec![1u8, 2])?;
    /// client.close();
    /// assert_eq!(socket.recv(), Some("text".into()));
    /// assert_eq!(socket.recv(), Some(vec![1u8, 2].into()));
    /// assert_eq!(socket.recv(), None);
    /// assert_eq!(socket.close_reason(), Some(CloseReason::TransportClose));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv(&mut self) -> Option<MessageData> {
        futures_executor::block_on(self.0.recv())
    }

    /// Sends a message: at once over WebSocket, with the next poll response
    /// over long-polling.
    ///
    /// ```
    /// # use switchboard_threads::engineio::{self, EngineIo, Routes, ServerConfig};
    /// # use switchboard_threads::engineio::client::EngineIoClient;
    /// # let (engine, sockets) = EngineIo::with_sockets(ServerConfig::default());
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let url = format!("http://{}", listener.local_addr()?);
    /// # let routes = Routes::new().engineio("/engine.io/", engine);
    /// # std::thread::spawn(move || engineio::serve(listener, routes));
    /// # let mut sessions = engineio::blocking(sockets);
    /// let mut client = EngineIoClient::connect(&url)?;
    /// let socket = sessions.next().unwrap();
    /// socket.send("welcome")?;
    /// socket.send(vec![0u8, 1])?;
    /// assert_eq!(client.recv_message(), Some("welcome".into()));
    /// assert_eq!(client.recv_message(), Some(vec![0u8, 1].into()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send(&self, data: impl Into<MessageData>) -> Result<(), SendError> {
        self.0.send(data)
    }

    /// A cloneable handle that sends to this session from other threads.
    ///
    /// ```
    /// # use switchboard_threads::engineio::{self, EngineIo, Routes, ServerConfig};
    /// # use switchboard_threads::engineio::client::EngineIoClient;
    /// # let (engine, sockets) = EngineIo::with_sockets(ServerConfig::default());
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let url = format!("http://{}", listener.local_addr()?);
    /// # let routes = Routes::new().engineio("/engine.io/", engine);
    /// # std::thread::spawn(move || engineio::serve(listener, routes));
    /// # let mut sessions = engineio::blocking(sockets);
    /// let mut client = EngineIoClient::connect(&url)?;
    /// let socket = sessions.next().unwrap();
    /// let sender = socket.sender();
    /// std::thread::spawn(move || sender.send("from another thread"));
    /// assert_eq!(client.recv_message(), Some("from another thread".into()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sender(&self) -> SocketSender {
        self.0.sender()
    }

    /// Closes the session (`forced close`): the client's side ends too, and
    /// [`recv`](Self::recv) returns `None`.
    ///
    /// ```
    /// use switchboard_threads::engineio::CloseReason;
    /// # use switchboard_threads::engineio::{self, EngineIo, Routes, ServerConfig};
    /// # use switchboard_threads::engineio::client::EngineIoClient;
    /// # let (engine, sockets) = EngineIo::with_sockets(ServerConfig::default());
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let url = format!("http://{}", listener.local_addr()?);
    /// # let routes = Routes::new().engineio("/engine.io/", engine);
    /// # std::thread::spawn(move || engineio::serve(listener, routes));
    /// # let mut sessions = engineio::blocking(sockets);
    /// let mut client = EngineIoClient::connect(&url)?;
    /// let mut socket = sessions.next().unwrap();
    /// socket.close();
    /// assert_eq!(socket.recv(), None);
    /// assert_eq!(socket.close_reason(), Some(CloseReason::ForcedClose));
    /// assert_eq!(client.recv_message(), None); // the client's side ended
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(&self) {
        self.0.close()
    }

    /// Why the session closed, once it has (see [`Socket::recv`]).
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.0.close_reason()
    }
}

impl Iterator for Socket {
    type Item = MessageData;
    fn next(&mut self) -> Option<MessageData> {
        self.recv()
    }
}

/// The new sessions of an [`EngineIo::with_sockets`] endpoint, as a
/// blocking iterator (ending once the endpoint is gone).
///
/// ```
/// use switchboard_threads::engineio::{self, EngineIo, Routes, ServerConfig};
/// # use switchboard_threads::engineio::client::EngineIoClient;
/// let (engine, sockets) = EngineIo::with_sockets(ServerConfig::default());
/// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # let url = format!("http://{}", listener.local_addr()?);
/// let routes = Routes::new().engineio("/engine.io/", engine);
/// std::thread::spawn(move || engineio::serve(listener, routes));
/// let mut sessions = engineio::blocking(sockets);
/// let (first, second) = (EngineIoClient::connect(&url)?, EngineIoClient::connect(&url)?);
/// assert_eq!(sessions.next().unwrap().sid(), first.sid());
/// assert_eq!(sessions.next().unwrap().sid(), second.sid());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn blocking(sockets: Sockets) -> impl Iterator<Item = Socket> {
    futures_executor::block_on_stream(sockets).map(Socket)
}

type WsHandler = Arc<dyn Fn(WebSocket) + Send + Sync>;
pub use switchboard_async::server::HttpHandler;
use switchboard_async::server::WsRoutes;

/// What a server serves: Engine.IO endpoints by path, WebSocket handlers
/// on paths of their own, and one for upgrades on every other path.
/// Cloning is cheap (the endpoints and handlers are shared).
///
/// ```
/// use switchboard_threads::engineio::{self, EngineIo, HttpResponse, Routes, ServerConfig};
/// use switchboard_threads::engineio::client::EngineIoClient;
/// use switchboard_threads::ws::{self, Message};
///
/// let (engine, _sockets) = EngineIo::with_sockets(ServerConfig::default());
/// let routes = Routes::new()
///     .engineio("/engine.io/", engine)
///     .websocket_at("/echo", ws::echo)
///     .http(|_request, _body| HttpResponse { status: 200, headers: vec![], body: "home".into() });
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let addr = listener.local_addr()?;
/// std::thread::spawn(move || engineio::serve(listener, routes));
///
/// let mut socket = ws::connect(&format!("ws://{addr}/echo"))?;
/// socket.send(Message::text("hi"))?;
/// assert_eq!(socket.recv().unwrap()?, Message::text("hi"));
/// let client = EngineIoClient::connect(&format!("http://{addr}"))?;
/// assert!(!client.sid().is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Routes {
    table: RouteTable,
    websocket: WsRoutes<WsHandler>,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes")
            .field("table", &self.table)
            .field(
                "websocket_paths",
                &self.websocket.paths().collect::<Vec<_>>(),
            )
            .field("websocket_fallback", &self.websocket.has_fallback())
            .finish()
    }
}

impl Default for Routes {
    fn default() -> Self {
        Self::new()
    }
}

impl Routes {
    /// No routes: every request gets 404.
    pub fn new() -> Self {
        Routes {
            table: RouteTable::default(),
            websocket: WsRoutes::default(),
        }
    }

    /// Serves `engine` under `path` (such as `/engine.io/`).
    ///
    /// An endpoint made with [`EngineIo::new`] hands every session's
    /// events to one handler, in order per session, on the thread that
    /// produced them (usually the session's connection thread):
    ///
    /// ```
    /// use switchboard_threads::engineio::{self, EngineIo, Routes, ServerConfig, ServerEvent};
    /// use switchboard_threads::engineio::client::EngineIoClient;
    ///
    /// let engine = EngineIo::new(ServerConfig::default(), |engine: &EngineIo, event| {
    ///     if let ServerEvent::Message { sid, data } = event {
    ///         let _ = engine.send(&sid, data);
    ///     }
    /// });
    /// let routes = Routes::new().engineio("/realtime/", engine);
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = listener.local_addr()?;
    /// std::thread::spawn(move || engineio::serve(listener, routes));
    /// let mut client = EngineIoClient::connect(&format!("http://{addr}/realtime/"))?;
    /// client.send("echo me")?;
    /// assert_eq!(client.recv_message(), Some("echo me".into()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn engineio(mut self, path: &str, engine: EngineIo) -> Self {
        self.table.mount_engineio(path, engine);
        self
    }

    /// Serves the Socket.IO server `io` under `path` (such as
    /// `/socket.io/`). Its sync handlers run on the adapter's handler
    /// threads (see [`SocketIo::set_handler_runner`]), so they may block.
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_threads::engineio::{self, Routes};
    /// use switchboard_threads::socketio::client::{ClientBuilder, Threads};
    /// use switchboard_threads::socketio::{SocketIo, SocketIoConfig};
    ///
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     socket.on("sum", |_, mut event| {
    ///         let (a, b): (i64, i64) = event.args().unwrap_or_default();
    ///         if let Some(ack) = event.take_ack() {
    ///             let _ = ack.send(&(a + b));
    ///         }
    ///     });
    /// });
    /// let routes = Routes::new().socketio("/socket.io/", &io);
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = listener.local_addr()?;
    /// std::thread::spawn(move || engineio::serve(listener, routes));
    /// let client = ClientBuilder::new(&format!("http://{addr}")).connect(Threads).wait()?;
    /// let answer = client.emit_with_ack("sum", &(1, 2), Duration::from_secs(5))?.wait()?;
    /// assert_eq!(answer.args::<(i64,)>()?, (3,));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn socketio(mut self, path: &str, io: &SocketIo) -> Self {
        io.set_handler_runner(crate::pool::handler_runner());
        self.table.mount_socketio(path, io);
        self
    }

    /// Hands WebSocket upgrades on any other path (no Engine.IO endpoint
    /// and no [`Routes::websocket_at`] of its own) to `handler`, on the
    /// connection's thread.
    ///
    /// ```
    /// use switchboard_threads::engineio::{self, Routes};
    /// use switchboard_threads::ws::{self, Message};
    /// let routes = Routes::new().websocket(ws::echo);
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = listener.local_addr()?;
    /// std::thread::spawn(move || engineio::serve(listener, routes));
    /// let mut socket = ws::connect(&format!("ws://{addr}/any/path"))?;
    /// socket.send(Message::text("hi"))?;
    /// assert_eq!(socket.recv().unwrap()?, Message::text("hi"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn websocket(mut self, handler: impl Fn(WebSocket) + Send + Sync + 'static) -> Self {
        self.websocket.set_fallback(Arc::new(handler));
        self
    }

    /// Hands WebSocket upgrades on exactly `path` (whatever the query) to
    /// `handler`, on the connection's thread; other paths go to
    /// [`Routes::websocket`]'s handler, or get 404 without one.
    ///
    /// ```
    /// use switchboard_threads::engineio::{self, Routes};
    /// use switchboard_threads::ws::{self, Message, WebSocket};
    /// let routes = Routes::new()
    ///     .websocket_at("/echo", ws::echo)
    ///     .websocket_at("/hello", |ws: WebSocket| {
    ///         let _ = ws.send(Message::text("hello"));
    ///     });
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = listener.local_addr()?;
    /// std::thread::spawn(move || engineio::serve(listener, routes));
    /// let mut socket = ws::connect(&format!("ws://{addr}/hello?lang=en"))?;
    /// assert_eq!(socket.recv().unwrap()?, Message::text("hello"));
    /// assert!(ws::connect(&format!("ws://{addr}/elsewhere")).is_err()); // 404
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn websocket_at(
        mut self,
        path: &str,
        handler: impl Fn(WebSocket) + Send + Sync + 'static,
    ) -> Self {
        self.websocket.add(path, Arc::new(handler));
        self
    }

    /// The WebSocket configuration: as given for the WebSocket routes; for
    /// the Engine.IO endpoints' WebSocket transport without
    /// permessage-deflate unless the endpoint enables it
    /// ([`ServerConfig::per_message_deflate`]).
    ///
    /// ```
    /// use switchboard_threads::engineio::{self, Routes};
    /// use switchboard_threads::ws::{self, Config};
    /// let config = Config { protocols: vec!["chat".into()], ..Config::default() };
    /// let routes = Routes::new().ws_config(config.clone()).websocket(ws::echo);
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = listener.local_addr()?;
    /// std::thread::spawn(move || engineio::serve(listener, routes));
    /// let socket = ws::connect_with_config(&format!("ws://{addr}/"), config)?;
    /// assert_eq!(socket.protocol(), Some("chat"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ws_config(mut self, config: Config) -> Self {
        self.table.set_ws_config(config);
        self
    }

    /// Answers every other HTTP request (no Engine.IO path, no WebSocket
    /// upgrade) with `handler`, e.g. to serve the application's pages;
    /// without one they get 404.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use switchboard_threads::engineio::{self, HttpResponse, Routes};
    /// let routes = Routes::new().http(|request, _body| HttpResponse {
    ///     status: 200,
    ///     headers: vec![("Content-Type".into(), "text/plain".into())],
    ///     body: format!("you asked for {}", request.path()).into(),
    /// });
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = listener.local_addr()?;
    /// std::thread::spawn(move || engineio::serve(listener, routes));
    /// let mut stream = std::net::TcpStream::connect(addr)?;
    /// stream.write_all(b"GET /about HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
    /// let mut response = String::new();
    /// stream.read_to_string(&mut response)?;
    /// assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
    /// assert!(response.ends_with("\r\n\r\nyou asked for /about"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn http(
        mut self,
        handler: impl Fn(&Request, Bytes) -> HttpResponse + Send + Sync + 'static,
    ) -> Self {
        self.table.set_http(Arc::new(handler));
        self
    }

    /// HTTP limits and timeouts, and the most connections [`serve`] keeps
    /// open at once.
    ///
    /// ```
    /// use std::io::Read;
    /// use std::time::Duration;
    /// use switchboard_threads::engineio::{self, Routes, ServerLimits};
    /// let limits = ServerLimits {
    ///     request_timeout: Duration::from_millis(100),
    ///     max_connections: 1_000,
    ///     ..ServerLimits::default()
    /// };
    /// let routes = Routes::new().limits(limits);
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = listener.local_addr()?;
    /// std::thread::spawn(move || engineio::serve(listener, routes));
    /// // A client that sends nothing is answered 408 and let go.
    /// let mut response = String::new();
    /// std::net::TcpStream::connect(addr)?.read_to_string(&mut response)?;
    /// assert!(response.starts_with("HTTP/1.1 408 "));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn limits(mut self, limits: ServerLimits) -> Self {
        self.table.set_limits(limits);
        self
    }

    /// Starts the timer thread of every Engine.IO endpoint (once per
    /// endpoint, however often it is called). [`serve`] calls it; call it
    /// once before [`serve_connection`].
    ///
    /// ```
    /// use switchboard_threads::engineio::{EngineIo, Routes, ServerConfig};
    /// let (engine, _sockets) = EngineIo::with_sockets(ServerConfig::default());
    /// let routes = Routes::new().engineio("/engine.io/", engine);
    /// routes.start_timers()?; // heartbeats and session timeouts run from now on
    /// routes.start_timers()?; // starts nothing more
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn start_timers(&self) -> io::Result<()> {
        for timed in self.table.timers() {
            spawn_timer(timed.clone())?;
        }
        Ok(())
    }
}

struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs the timers of `timed` (an Engine.IO endpoint's heartbeats, a
/// Socket.IO server's ack deadlines) on a thread, until it is dropped. Only
/// the first call per owner starts one. [`Routes::start_timers`] does this
/// for the endpoints it serves; this is for an endpoint driven otherwise
/// (through [`EngineIo::handle_request`], say).
///
/// ```
/// use switchboard_threads::engineio::{self, EngineIo, ServerConfig};
/// let (engine, _sockets) = EngineIo::with_sockets(ServerConfig::default());
/// engineio::spawn_timer(engine.timed())?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn spawn_timer(timed: Arc<dyn Timed>) -> io::Result<()> {
    if !timed.timer_signal().claim() {
        return Ok(());
    }
    let weak: WeakTimed = Arc::downgrade(&timed);
    let run = {
        let weak = weak.clone();
        move || {
            // A timer thread that ends early (a panic) gives the claim
            // back too, so the endpoint's next `serve` starts another.
            let _claim = ReleaseOnDrop(weak.clone());
            let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
            let mut cx = Context::from_waker(&waker);
            while let Some(next) = timer::run_once(&weak) {
                if timer::poll_woken_or_gone(&weak, &mut cx).is_ready() {
                    continue;
                }
                match next {
                    Some(deadline) => std::thread::park_timeout(
                        deadline.saturating_duration_since(Instant::now()),
                    ),
                    None => std::thread::park(),
                }
            }
        }
    };
    let started = if faults().timer_start {
        Err(io::Error::other("cannot start a thread (test)"))
    } else {
        std::thread::Builder::new()
            .name("switchboard-timer".into())
            .spawn(run)
            .map(drop)
    };
    if started.is_err() {
        // No timer runs: the claim goes back, so a later `serve` (or
        // `start_timers`) starts one instead of running without
        // heartbeats or session timeouts.
        timed.timer_signal().release();
    }
    started
}

/// Releases its endpoint's timer claim when dropped ([`spawn_timer`]).
struct ReleaseOnDrop(WeakTimed);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        if let Some(timed) = self.0.upgrade() {
            timed.timer_signal().release();
        }
    }
}

/// Accepts connections on `listener` forever, one thread each, serving
/// `routes` on each. At most [`ServerLimits::max_connections`] are open at
/// once; at the limit nothing more is accepted until one closes. Accept
/// errors, and a connection thread that cannot be started (the connection
/// is then closed), are logged and retried after a short pause: this
/// returns only if the timer threads cannot be started.
///
/// ```
/// use switchboard_threads::engineio::{self, EngineIo, Routes, ServerConfig};
/// use switchboard_threads::engineio::client::EngineIoClient;
/// let (engine, sockets) = EngineIo::with_sockets(ServerConfig::default());
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let url = format!("http://{}", listener.local_addr()?);
/// // `serve` blocks for good: give it a thread.
/// std::thread::spawn(move || engineio::serve(listener, Routes::new().engineio("/engine.io/", engine)));
/// let mut client = EngineIoClient::connect(&url)?;
/// let socket = engineio::blocking(sockets).next().unwrap();
/// socket.send("hello")?;
/// assert_eq!(client.recv_message(), Some("hello".into()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn serve(listener: TcpListener, routes: Routes) -> io::Result<()> {
    routes.start_timers()?;
    let max_connections = routes.table.limits().max_connections;
    accept_loop(
        &listener,
        max_connections,
        "switchboard-http",
        move |stream| {
            if let Err(error) = serve_connection(stream, routes.clone()) {
                tracing::debug!(%error, "connection ended");
            }
        },
    )
}

/// Serves `routes` on one connection the application accepted, on the
/// calling thread, until the client closes it, a timeout passes, or it is
/// upgraded to a WebSocket (then this returns when the WebSocket ends).
/// Call [`Routes::start_timers`] once beforehand when not using [`serve`].
///
/// ```
/// use switchboard_threads::engineio::{self, Routes};
/// use switchboard_threads::ws::{self, Message};
/// let routes = Routes::new().websocket_at("/ws", ws::echo);
/// routes.start_timers()?;
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let addr = listener.local_addr()?;
/// // The application's own accept loop, a thread per connection.
/// std::thread::spawn(move || {
///     for stream in listener.incoming().flatten() {
///         let routes = routes.clone();
///         std::thread::spawn(move || engineio::serve_connection(stream, routes));
///     }
/// });
/// let mut socket = ws::connect(&format!("ws://{addr}/ws"))?;
/// socket.send(Message::text("hi"))?;
/// assert_eq!(socket.recv().unwrap()?, Message::text("hi"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn serve_connection(mut stream: TcpStream, routes: Routes) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = routes.table.request_reader();
    let mut first = true;
    // A request read while a poll was held, not answered early.
    let mut next = None;
    loop {
        let read = match next.take() {
            Some(incoming) => Ok(Some(incoming)),
            None => next_request(&mut stream, &mut reader, routes.table.limits(), first),
        };
        let incoming = match read {
            Ok(Some(incoming)) => incoming,
            // Shut down rather than only dropped: a held poll's watcher
            // (`wait_for_poll`) may still hold the socket, waiting on it.
            Ok(None) => {
                let _ = stream.shutdown(Shutdown::Both);
                return Ok(());
            }
            Err(RequestError::Io(error)) => {
                let _ = stream.shutdown(Shutdown::Both);
                return Err(error);
            }
            Err(RequestError::Http(error)) => {
                let _ = stream.write_all(&Rejection::from(error).to_response());
                let _ = stream.shutdown(Shutdown::Both);
                return Ok(());
            }
        };
        first = false;
        let IncomingRequest {
            request,
            body,
            truncated,
        } = incoming;
        let keep_alive = request.keep_alive() && !truncated;
        let mut response = match routes.table.engines().engine_for(request.path()) {
            Some(engine) => match engine.handle_request(&request, body) {
                Routed::Respond(response) => {
                    // A POST whose messages wait for the handlers' room is
                    // answered once they are handed over.
                    if let Some(mut answer) = engine.answer_wait(&request) {
                        wait_until_none(|_| answer.wait_until());
                    }
                    response
                }
                Routed::Hold(poll, rx) => {
                    // (Nothing is read as a request behind a last one.)
                    let mut pipelined = Pipelined::new(!keep_alive);
                    let table = &routes.table;
                    let mut response =
                        match wait_for_poll(&stream, &mut reader, rx, table, &mut pipelined) {
                            Ok(Some(response)) => response,
                            // The client went away, flooded the connection,
                            // or the wait could not start: the poll is
                            // never answered.
                            waited => {
                                engine.poll_aborted(poll);
                                let _ = stream.shutdown(Shutdown::Both);
                                return waited.map(drop);
                            }
                        };
                    if !keep_alive {
                        response.headers.push(("Connection".into(), "close".into()));
                    }
                    stream.write_all(&response.encode_for(&request.method))?;
                    if !keep_alive {
                        let _ = stream.shutdown(Shutdown::Both);
                        return Ok(());
                    }
                    // Then the answers to the requests that came behind it,
                    // in order.
                    let (answered, after) = pipelined.finish();
                    for (engine, request, response) in answered {
                        if let Some(mut answer) = engine.answer_wait(&request) {
                            wait_until_none(|_| answer.wait_until());
                        }
                        stream.write_all(&response.encode_for(&request.method))?;
                    }
                    next = after;
                    continue;
                }
                Routed::WebSocket(conn, commands) => {
                    let buffered = reader.take_buffered();
                    let config = routes.table.engine_ws_config(engine);
                    match ws::accept_request(stream, &request, &buffered, config) {
                        Ok(ws) => pump_engine_ws(engine, conn, ws, commands),
                        Err(error) => {
                            tracing::debug!(%error, "Engine.IO WebSocket handshake failed");
                            engine.ws_closed(conn);
                        }
                    }
                    return Ok(());
                }
            },
            None if handshake::is_upgrade_request(&request) => {
                let Some(handler) = routes.websocket.find(request.path()).cloned() else {
                    write_status(&mut stream, &request.method, 404, false)?;
                    return Ok(());
                };
                let buffered = reader.take_buffered();
                match ws::accept_request(
                    stream,
                    &request,
                    &buffered,
                    routes.table.ws_config().clone(),
                ) {
                    Ok(ws) => handler(ws),
                    Err(error) => tracing::debug!(%error, "WebSocket handshake failed"),
                }
                return Ok(());
            }
            None => match routes.table.answer_http(&request, body, truncated) {
                Some(response) => response,
                None => {
                    write_status(&mut stream, &request.method, 404, keep_alive)?;
                    if !keep_alive {
                        return Ok(());
                    }
                    continue;
                }
            },
        };
        if !keep_alive {
            response.headers.push(("Connection".into(), "close".into()));
        }
        stream.write_all(&response.encode_for(&request.method))?;
        if !keep_alive {
            let _ = stream.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

enum RequestError {
    Io(io::Error),
    Http(HttpError),
}

thread_local! {
    static READ_BUF: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; 16 << 10].into_boxed_slice());
}

/// Reads until a whole request is buffered. `Ok(None)`: the client closed
/// between requests, or stayed idle past the keep-alive timeout.
fn next_request(
    stream: &mut TcpStream,
    reader: &mut RequestReader,
    limits: &ServerLimits,
    first: bool,
) -> Result<Option<IncomingRequest>, RequestError> {
    let mut wait = RequestWait::new(reader, first, Instant::now());
    loop {
        if let Some(incoming) = reader.next_request().map_err(RequestError::Http)? {
            return Ok(Some(incoming));
        }
        if let Some(interim) = reader.take_interim() {
            stream.write_all(interim).map_err(RequestError::Io)?;
        }
        let now = Instant::now();
        wait.received(reader, now);
        let left = wait.deadline(limits).saturating_duration_since(now);
        if left.is_zero() {
            return wait
                .timed_out(limits)
                .map_or(Ok(None), |e| Err(RequestError::Http(e)));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(RequestError::Io)?;
        let read = read_into(stream, reader);
        match read {
            Ok(0) if reader.has_partial_request() => {
                return Err(RequestError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(RequestError::Io(e)),
        }
    }
}

/// One read from `stream` into `reader`, through the thread's read buffer.
fn read_into(mut stream: &TcpStream, reader: &mut RequestReader) -> io::Result<usize> {
    READ_BUF.with_borrow_mut(|buf| {
        let read = stream.read(buf);
        if let Ok(n) = read {
            reader.receive(&buf[..n]);
        }
        read
    })
}

/// What a held poll's watcher thread saw on the socket.
enum Watched {
    /// Bytes to read: the watcher waits to be told to look again.
    Readable,
    /// The client went away (or the socket failed).
    Gone,
}

/// Waits for a held poll's response while watching the connection: `None`
/// if the client went away (or sent more than a request's worth of bytes
/// while waiting). Requests that come behind the poll go to `pipelined`.
///
/// A blocking thread cannot wait for the response and for its socket at
/// once, so a watcher thread waits on the socket (a `peek`, reading
/// nothing) and says when bytes came; this thread then reads them.
fn wait_for_poll(
    stream: &TcpStream,
    reader: &mut RequestReader,
    mut rx: switchboard_async::engineio::HeldPoll,
    table: &RouteTable,
    pipelined: &mut Pipelined,
) -> io::Result<Option<HttpResponse>> {
    let max_buffered = Pipelined::max_buffered(table);
    // What was read with the poll.
    pipelined.answer(reader, table);
    if reader.buffered_len() > max_buffered {
        return Ok(None);
    }
    let watched = stream.try_clone()?;
    watched.set_read_timeout(None)?;
    let (events_tx, mut events) = futures_channel::mpsc::unbounded();
    let (again_tx, again) = std::sync::mpsc::channel::<()>();
    let mut interrupts = faults().peek_interrupts;
    let watch = move || {
        // Ends when the client goes away, or once this thread no longer
        // listens and the client sends its next request (the usual case,
        // after the response) or the connection thread shuts the socket
        // down (an idle keep-alive timeout).
        let mut byte = [0u8; 1];
        loop {
            let peeked = if interrupts > 0 {
                interrupts -= 1;
                Err(io::ErrorKind::Interrupted.into())
            } else {
                watched.peek(&mut byte)
            };
            let event = match peeked {
                Ok(1..) => Watched::Readable,
                // A signal, not the client: wait on.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(0) | Err(_) => Watched::Gone,
            };
            let gone = matches!(event, Watched::Gone);
            if events_tx.unbounded_send(event).is_err() || gone || again.recv().is_err() {
                return;
            }
        }
    };
    if faults().watcher_start {
        return Err(io::Error::other("cannot start a thread (test)"));
    }
    std::thread::Builder::new()
        .name("switchboard-poll-watch".into())
        .stack_size(32 << 10)
        .spawn(watch)?;
    loop {
        let watched = futures_executor::block_on(async {
            match select(&mut rx, events.next()).await {
                Either::Left((response, _)) => Err(response.ok()),
                Either::Right((watched, _)) => Ok(watched),
            }
        });
        match watched {
            Err(response) => return Ok(response),
            Ok(Some(Watched::Readable)) => {}
            Ok(Some(Watched::Gone) | None) => return Ok(None),
        }
        // Bytes are there: this read does not block.
        let read = read_into(stream, reader);
        match read {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted
                        | io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
        pipelined.answer(reader, table);
        if reader.buffered_len() > max_buffered {
            return Ok(None);
        }
        if again_tx.send(()).is_err() {
            // The watcher is gone (it cannot be, short of a panic).
            return Ok(None);
        }
    }
}

/// Faults a test injects on its own thread, as `pool.rs` starves one:
/// none outside tests.
#[derive(Clone, Copy, Default)]
struct Faults {
    /// [`spawn_timer`] cannot start its thread.
    timer_start: bool,
    /// A held poll's watcher thread cannot start.
    watcher_start: bool,
    /// A held poll's watcher finds its socket's first this many waits
    /// interrupted (`EINTR`, a signal).
    peek_interrupts: u32,
}

#[cfg(test)]
thread_local! {
    static FAULTS: std::cell::Cell<Faults> = const {
        std::cell::Cell::new(Faults {
            timer_start: false,
            watcher_start: false,
            peek_interrupts: 0,
        })
    };
}

#[cfg(test)]
fn faults() -> Faults {
    FAULTS.get()
}

#[cfg(not(test))]
fn faults() -> Faults {
    Faults::default()
}

/// How long a reader waits for its writer to make room in the queue before
/// handing the hub more messages anyway (the hub then finds the queue full
/// and closes the session: the peer is not reading).
const WRITER_CATCH_UP: Duration = Duration::from_secs(5);

/// Carries an Engine.IO WebSocket: this thread reads and feeds the
/// endpoint a read's messages at a time; a writer thread carries out the
/// endpoint's commands, writing all that are queued together.
fn pump_engine_ws(
    engine: &EngineIo,
    conn: switchboard_core::engineio::ConnId,
    mut ws: WebSocket,
    commands: switchboard_async::engineio::WsCommands,
) {
    let sender = ws.sender();
    let (burst_limit, room) = (commands.burst_limit(), commands.room());
    let writer = std::thread::Builder::new()
        .name("switchboard-eio-ws-writer".into())
        .spawn(move || write_commands(&sender, commands));
    if let Err(error) = writer {
        tracing::warn!(%error, "cannot start a WebSocket writer thread");
        engine.ws_closed(conn);
        return;
    }
    // A failure's close frame goes out once the endpoint has closed the
    // session (below), not when the failure is read.
    ws.hold_failure_close();
    let mut burst = Vec::new();
    let mut protocol_error = false;
    'read: while let Some(item) = ws.recv() {
        let mut failed = None;
        match item {
            Ok(message) => burst.push(message),
            Err(error) => failed = Some(error),
        }
        // The rest of the read in batches; before each next one the writer
        // catches up, so a read of more messages than the queue holds does
        // not overflow it.
        loop {
            while failed.is_none()
                && burst.len() < burst_limit
                && let Some(next) = ws.next_buffered()
            {
                match next {
                    Ok(message) => burst.push(message),
                    Err(error) => failed = Some(error),
                }
            }
            // Handlers behind: the batch waits for them a little, so a
            // client's burst waits in TCP instead of overflowing their
            // backlog.
            wait_until_none(|since| engine.room_wait(conn, since));
            let more = burst.len() == burst_limit;
            if !burst.is_empty() {
                engine.ws_messages(conn, burst.drain(..));
            }
            if failed.is_some() || !more {
                // Nothing more read: what was handed over still waiting for
                // room is delivered before the next read.
                wait_until_none(|since| engine.handed_over_wait(conn, since));
                break;
            }
            room.wait(WRITER_CATCH_UP);
        }
        if let Some(error) = failed {
            tracing::debug!(%error, "Engine.IO WebSocket failed");
            protocol_error = true;
            break 'read;
        }
    }
    engine.ws_closed(conn);
    if protocol_error {
        // Write the close frame saying why (1002, 1007, 1009), then wait
        // (within the close timeout) for the peer's answer or its end, as
        // a WebSocket route does.
        while ws.recv().is_some() {}
    }
}

/// Sleeps while `wait` (given when the wait started) says when to look
/// again.
fn wait_until_none(mut wait: impl FnMut(Instant) -> Option<Instant>) {
    let since = Instant::now();
    while let Some(again) = wait(since) {
        std::thread::sleep(again.saturating_duration_since(Instant::now()));
    }
}

/// The writer thread of [`pump_engine_ws`]: blocks for the endpoint's next
/// command, then writes it with every send queued behind it.
///
/// A peer that reads nothing holds a write up for good (an Engine.IO
/// WebSocket has no WebSocket keep-alive of its own), and the session's
/// heartbeat then closes it. So while a write waits, the writer looks at
/// the queue between write slices: once the session is closed (its close
/// taken, or the endpoint let go of the connection), what the endpoint
/// queued before goes into the WebSocket, past its transmit bound (the
/// queue's own bound holds it), and the WebSocket closes, so its close
/// timeout gives the peer that long to take it all before the connection
/// is given up on and its threads end.
fn write_commands(sender: &ws::Sender, mut commands: switchboard_async::engineio::WsCommands) {
    let mut batch = Vec::new();
    loop {
        let mut closing = match futures_executor::block_on(commands.next()) {
            Some(WsCommand::Send(message)) => {
                batch.push(message);
                false
            }
            Some(WsCommand::Close) | None => true,
        };
        while !closing {
            match commands.try_recv() {
                Ok(WsCommand::Send(message)) => batch.push(message),
                Ok(WsCommand::Close) | Err(TryRecvError::Closed) => closing = true,
                Err(TryRecvError::Empty) => break,
            }
        }
        if !batch.is_empty() {
            let mut closed = false;
            let sent = sender.send_all_waiting(batch.drain(..), |conn| {
                let mut cx = Context::from_waker(Waker::noop());
                if !closed && (closing || commands.poll_ended(&mut cx).is_ready()) {
                    closed = true;
                    while let Ok(WsCommand::Send(message)) = commands.try_recv() {
                        let _ = conn.send(message);
                    }
                    let _ = conn.close(None);
                }
            });
            if sent.is_err() {
                return;
            }
            closing |= closed;
        }
        if closing {
            break;
        }
    }
    let _ = sender.close(None);
}

fn write_status(
    stream: &mut TcpStream,
    method: &str,
    status: u16,
    keep_alive: bool,
) -> io::Result<()> {
    let bytes = switchboard_core::http::encode_status_response(method, status, keep_alive);
    stream.write_all(&bytes)?;
    if !keep_alive {
        let _ = stream.shutdown(Shutdown::Both);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_async::server::MAX_ANSWERED_EARLY;
    use switchboard_core::http::{IncomingResponse, Limits, ResponseReader};

    /// Long enough only to turn a hang into a failure.
    const HANG: Duration = Duration::from_secs(30);

    /// Serves `routes` on a fresh listener; its address.
    fn start(routes: Routes) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || serve(listener, routes));
        addr
    }

    /// A raw HTTP/1.1 client connection.
    struct Raw {
        stream: TcpStream,
        reader: ResponseReader,
    }

    impl Raw {
        fn connect(addr: std::net::SocketAddr) -> Raw {
            let stream = TcpStream::connect(addr).expect("connect");
            stream.set_read_timeout(Some(HANG)).expect("timeout");
            Raw {
                stream,
                reader: ResponseReader::new(Limits::default(), 16 << 20),
            }
        }

        fn send(&mut self, bytes: &[u8]) {
            self.stream.write_all(bytes).expect("write");
        }

        fn get(&mut self, target: &str) {
            self.send(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        }

        /// The next response; panics if none comes within [`HANG`].
        fn response(&mut self) -> IncomingResponse {
            let mut buf = [0u8; 4096];
            loop {
                if let Some(response) = self.reader.next_response().expect("response") {
                    return response;
                }
                let n = self.stream.read(&mut buf).expect("no response in time");
                assert!(n > 0, "closed before a response");
                self.reader.receive(&buf[..n]);
            }
        }

        /// Whether the server closes the connection within [`HANG`] (no
        /// more bytes arrive before).
        fn closed_by_server(&mut self) -> bool {
            let mut buf = [0u8; 1024];
            match self.stream.read(&mut buf) {
                Ok(0) => true,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => true,
                Ok(_) => false,
                Err(_) => false,
            }
        }
    }

    /// A polling handshake on `raw`: the session id.
    fn open_session(raw: &mut Raw, path: &str) -> String {
        raw.get(&format!("{path}?EIO=4&transport=polling"));
        let open = raw.response();
        assert_eq!(open.response.status, 200);
        let body = String::from_utf8(open.body.to_vec()).expect("utf-8");
        let start = body.find("\"sid\":\"").expect("sid") + 7;
        let end = start + body[start..].find('"').expect("sid end");
        body[start..end].to_owned()
    }

    /// A connection whose held poll was answered, then left idle past the
    /// keep-alive timeout, is closed: the thread that watched the client
    /// during the poll held a second handle on the socket and waited on it
    /// without a timeout, so the connection stayed open (and that thread
    /// alive) for as long as the client kept quiet.
    #[test]
    fn an_idle_connection_after_a_held_poll_is_closed() {
        let (engine, sockets) = EngineIo::with_sockets(ServerConfig::default());
        let limits = ServerLimits {
            keep_alive_timeout: Duration::from_millis(200),
            ..ServerLimits::default()
        };
        let addr = start(Routes::new().engineio("/engine.io/", engine).limits(limits));
        let mut sessions = blocking(sockets);
        let mut raw = Raw::connect(addr);
        let sid = open_session(&mut raw, "/engine.io/");
        let socket = sessions.next().expect("session");
        raw.get(&format!("/engine.io/?EIO=4&transport=polling&sid={sid}"));
        // The poll is held until there is something to send.
        std::thread::sleep(Duration::from_millis(50));
        socket.send("hello").expect("send");
        let poll = raw.response();
        assert_eq!(&poll.body[..], b"4hello");
        assert!(
            raw.closed_by_server(),
            "the idle connection stayed open past the keep-alive timeout"
        );
    }

    /// Reads and drops everything until the server closes the connection:
    /// `false` if it is still open after [`HANG`].
    fn drained_until_closed(stream: &mut TcpStream) -> bool {
        stream.set_read_timeout(Some(HANG)).expect("timeout");
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }

    const WS_UPGRADE: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

    /// An Engine.IO WebSocket whose peer goes silent in the middle of a
    /// frame (without closing TCP) is given up on: the heartbeat closes the
    /// session, and the connection closes within the close timeout.
    #[test]
    fn an_engineio_websocket_whose_peer_vanishes_mid_frame_is_closed() {
        let config = ServerConfig {
            ping_interval: Duration::from_millis(100),
            ping_timeout: Duration::from_millis(100),
            ..ServerConfig::default()
        };
        let (engine, _sockets) = EngineIo::with_sockets(config);
        let ws_config = Config {
            close_timeout: Duration::from_millis(200),
            ..Config::default()
        };
        let addr = start(
            Routes::new()
                .engineio("/engine.io/", engine)
                .ws_config(ws_config),
        );
        let mut client = TcpStream::connect(addr).expect("connect");
        client
            .write_all(
                format!(
                    "GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n{WS_UPGRADE}\r\n"
                )
                .as_bytes(),
            )
            .expect("request");
        // The start of a masked text frame of 100 bytes, and no more.
        client.write_all(&[0x81, 0x80 | 100, 1, 2]).expect("frame");
        assert!(
            drained_until_closed(&mut client),
            "the connection stayed open"
        );
    }

    /// Messages a server thread sends without pause while the client opens
    /// its session over polling and upgrades to WebSocket all arrive, in
    /// order, whichever transport carries each.
    #[test]
    fn messages_keep_their_order_across_the_upgrade() {
        use super::client::EngineIoClient;
        const COUNT: usize = 3000;
        let (engine, sockets) = EngineIo::with_sockets(ServerConfig::default());
        let addr = start(Routes::new().engineio("/engine.io/", engine));
        let sender = std::thread::spawn(move || {
            let socket = blocking(sockets).next().expect("session");
            for i in 0..COUNT {
                if socket.send(i.to_string()).is_err() {
                    return i;
                }
                // Spread over the upgrade.
                if i % 20 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            COUNT
        });
        let mut client = EngineIoClient::connect(&format!("http://{addr}")).expect("connect");
        let mut next = 0;
        while next < COUNT {
            let Some(message) = client.recv_message() else {
                panic!("the session ended after {next} messages");
            };
            assert_eq!(message, MessageData::from(next.to_string()), "out of order");
            next += 1;
        }
        assert_eq!(sender.join().expect("sender"), COUNT);
        assert_eq!(client.transport(), super::client::TransportKind::WebSocket);
    }

    /// A client that goes away while its poll is held ends its session
    /// (`transport close`, as in Node), and a held poll is answered when the
    /// server closes the session.
    #[test]
    fn a_held_poll_ends_with_its_client_or_its_session() {
        let (engine, sockets) = EngineIo::with_sockets(ServerConfig::default());
        let addr = start(Routes::new().engineio("/engine.io/", engine));
        let mut sessions = blocking(sockets);

        let mut raw = Raw::connect(addr);
        let sid = open_session(&mut raw, "/engine.io/");
        let mut socket = sessions.next().expect("session");
        raw.get(&format!("/engine.io/?EIO=4&transport=polling&sid={sid}"));
        std::thread::sleep(Duration::from_millis(50));
        drop(raw);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send((socket.recv(), socket.close_reason()));
        });
        let (message, reason) = rx
            .recv_timeout(HANG)
            .expect("the session outlived its client");
        assert_eq!(message, None);
        assert!(reason.is_some());

        let mut raw = Raw::connect(addr);
        let sid = open_session(&mut raw, "/engine.io/");
        let socket = sessions.next().expect("session");
        raw.get(&format!("/engine.io/?EIO=4&transport=polling&sid={sid}"));
        std::thread::sleep(Duration::from_millis(50));
        socket.close();
        let answer = raw.response();
        assert_eq!(answer.response.status, 200);
        assert_eq!(&answer.body[..], b"1", "the close packet");
    }

    /// Reads one (unmasked) frame from the server: opcode and payload.
    fn read_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
        let mut head = [0u8; 2];
        stream.read_exact(&mut head).expect("frame head");
        let len = match head[1] & 0x7f {
            126 => {
                let mut ext = [0u8; 2];
                stream.read_exact(&mut ext).expect("length");
                usize::from(u16::from_be_bytes(ext))
            }
            127 => {
                let mut ext = [0u8; 8];
                stream.read_exact(&mut ext).expect("length");
                usize::try_from(u64::from_be_bytes(ext)).expect("length")
            }
            len => usize::from(len),
        };
        let mut payload = vec![0u8; len];
        stream.read_exact(&mut payload).expect("payload");
        (head[0] & 0x0f, payload)
    }

    /// A text frame from the client, masked with a zero key.
    fn text_frame(payload: &[u8]) -> Vec<u8> {
        assert!(payload.len() < 126);
        let mut frame = vec![0x81, 0x80 | payload.len() as u8, 0, 0, 0, 0];
        frame.extend_from_slice(payload);
        frame
    }

    /// A client that breaks the WebSocket protocol (invalid UTF-8) after a
    /// good message whose handler is still running: by the time it reads
    /// the close frame (1007) its session is closed, even though the
    /// handler held the connection's thread meanwhile. The close frame
    /// went out as soon as the failure was decoded, before the endpoint
    /// was told, so a client that looked at once found its session open.
    #[test]
    fn an_engineio_websocket_failure_closes_the_session_before_the_close_frame() {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = std::sync::Mutex::new(released);
        let engine = EngineIo::new(ServerConfig::default(), move |_: &EngineIo, event| {
            if let ServerEvent::Message { data, .. } = event
                && data == MessageData::from("slow")
            {
                let _ = released
                    .lock()
                    .unwrap()
                    .recv_timeout(Duration::from_secs(2));
            }
        });
        let addr = start(Routes::new().engineio("/engine.io/", engine));
        let mut client = TcpStream::connect(addr).expect("connect");
        client.set_read_timeout(Some(HANG)).expect("timeout");
        client
            .write_all(
                format!(
                    "GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n{WS_UPGRADE}\r\n"
                )
                .as_bytes(),
            )
            .expect("request");
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8];
            client.read_exact(&mut byte).expect("response head");
            head.push(byte[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 101 "));
        let (opcode, open) = read_frame(&mut client);
        assert_eq!(opcode, 1);
        let open = String::from_utf8(open).expect("open packet");
        let start = open.find("\"sid\":\"").expect("sid") + 7;
        let sid = &open[start..start + open[start..].find('"').expect("sid end")];

        let mut bytes = text_frame(b"4slow");
        bytes.extend(text_frame(b"4\xff"));
        client.write_all(&bytes).expect("frames");
        loop {
            let (opcode, payload) = read_frame(&mut client);
            if opcode == 8 {
                assert_eq!(&payload[..2], &1007u16.to_be_bytes());
                break;
            }
        }
        let mut raw = Raw::connect(addr);
        raw.get(&format!("/engine.io/?EIO=4&transport=polling&sid={sid}"));
        let answer = raw.response();
        let _ = release.send(());
        assert_eq!(answer.response.status, 400);
        let body = String::from_utf8_lossy(&answer.body);
        assert!(
            body.contains("\"code\":1"),
            "the session was still open: {body}"
        );
    }

    /// Serves `routes` with its connections one after another on a thread
    /// that has `faults`; its address.
    fn start_with(routes: Routes, faults: Faults) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        routes.start_timers().expect("timers");
        std::thread::spawn(move || {
            FAULTS.set(faults);
            for stream in listener.incoming().flatten() {
                let _ = serve_connection(stream, routes.clone());
            }
        });
        addr
    }

    fn post_bytes(target: &str, body: &str) -> Vec<u8> {
        format!(
            "POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    /// An endpoint that echoes every message.
    fn echo_engine() -> EngineIo {
        EngineIo::new(ServerConfig::default(), |engine: &EngineIo, event| {
            if let ServerEvent::Message { sid, data } = event {
                let _ = engine.send(&sid, data);
            }
        })
    }

    /// The body of the next response, which must be a 200.
    fn ok_body(raw: &mut Raw) -> String {
        let response = raw.response();
        assert_eq!(response.response.status, 200, "{response:?}");
        String::from_utf8(response.body.to_vec()).expect("utf-8")
    }

    /// `POST`s pipelined behind a held poll (in the same write, or once
    /// it waits) are handed to the endpoint while the poll waits, as the
    /// async server does: the echo the first causes answers the poll (the
    /// second's goes along), instead of both waiting for the next
    /// heartbeat; their answers follow the poll's, in order, and the
    /// request behind them is handled after.
    #[test]
    fn a_post_pipelined_behind_a_held_poll_is_handled_while_it_waits() {
        let addr = start(Routes::new().engineio("/engine.io/", echo_engine()));
        for later in [false, true] {
            let mut raw = Raw::connect(addr);
            let sid = open_session(&mut raw, "/engine.io/");
            let target = format!("/engine.io/?EIO=4&transport=polling&sid={sid}");
            let poll = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
            let mut requests = Vec::new();
            if later {
                // Read with the poll, or (here) by its watcher's turn.
                raw.send(poll.as_bytes());
                std::thread::sleep(Duration::from_millis(50));
            } else {
                requests.extend(poll.as_bytes());
            }
            requests.extend(post_bytes(&target, "4hi"));
            requests.extend(post_bytes(&target, "4again"));
            requests.extend(b"GET /elsewhere HTTP/1.1\r\nHost: x\r\n\r\n");
            raw.send(&requests);
            assert_eq!(ok_body(&mut raw), "4hi\x1e4again", "later: {later}");
            assert_eq!(ok_body(&mut raw), "ok");
            assert_eq!(ok_body(&mut raw), "ok");
            assert_eq!(raw.response().response.status, 404);
        }
    }

    /// Only [`MAX_ANSWERED_EARLY`] pipelined `POST`s are handled while a
    /// poll waits: the poll carries their echoes, and the rest are handled
    /// once it is answered, their echoes left for the next poll.
    #[test]
    fn pipelined_posts_handled_while_a_poll_waits_are_bounded() {
        let addr = start(Routes::new().engineio("/engine.io/", echo_engine()));
        let mut raw = Raw::connect(addr);
        let sid = open_session(&mut raw, "/engine.io/");
        let target = format!("/engine.io/?EIO=4&transport=polling&sid={sid}");
        let poll = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
        let count = MAX_ANSWERED_EARLY + 4;
        let mut requests = poll.clone().into_bytes();
        for i in 0..count {
            requests.extend(post_bytes(&target, &format!("4m{i}")));
        }
        raw.send(&requests);
        let echoes = |range: std::ops::Range<usize>| {
            range
                .map(|i| format!("4m{i}"))
                .collect::<Vec<_>>()
                .join("\x1e")
        };
        assert_eq!(ok_body(&mut raw), echoes(0..MAX_ANSWERED_EARLY));
        for _ in 0..count {
            assert_eq!(ok_body(&mut raw), "ok");
        }
        raw.send(poll.as_bytes());
        assert_eq!(ok_body(&mut raw), echoes(MAX_ANSWERED_EARLY..count));
    }

    /// A client that sends more than a request's worth of bytes behind a
    /// held poll (not taken early: behind another request) loses its
    /// connection, and its poll is aborted (the session closes at once,
    /// `transport error`), rather than the server buffering without bound.
    #[test]
    fn a_client_flooding_behind_a_held_poll_is_let_go() {
        let config = ServerConfig {
            max_payload: 1 << 10,
            ..ServerConfig::default()
        };
        let (engine, sockets) = EngineIo::with_sockets(config);
        let addr = start(Routes::new().engineio("/engine.io/", engine));
        let mut sessions = blocking(sockets);
        for later in [false, true] {
            let mut raw = Raw::connect(addr);
            let sid = open_session(&mut raw, "/engine.io/");
            let mut socket = sessions.next().expect("session");
            let poll = format!(
                "GET /engine.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: x\r\n\r\n"
            );
            let mut requests = Vec::new();
            if later {
                raw.send(poll.as_bytes());
                std::thread::sleep(Duration::from_millis(50));
            } else {
                requests.extend(poll.as_bytes());
            }
            requests.extend(b"GET /elsewhere HTTP/1.1\r\nHost: x\r\n\r\n");
            requests.extend(vec![b'x'; 64 << 10]);
            raw.send(&requests);
            assert!(
                drained_until_closed(&mut raw.stream),
                "the connection stayed open (later: {later})"
            );
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send((socket.recv(), socket.close_reason()));
            });
            let (message, reason) = rx.recv_timeout(HANG).expect("the session stayed open");
            assert_eq!(message, None);
            assert_eq!(reason, Some(CloseReason::TransportError), "later: {later}");
        }
    }

    /// A signal that interrupts the wait of a held poll's watcher (`EINTR`)
    /// does not end the session: the poll is answered.
    #[test]
    fn an_interrupted_poll_watch_does_not_end_the_session() {
        let (engine, sockets) = EngineIo::with_sockets(ServerConfig::default());
        let faults = Faults {
            peek_interrupts: 2,
            ..Faults::default()
        };
        let addr = start_with(Routes::new().engineio("/engine.io/", engine), faults);
        let mut sessions = blocking(sockets);
        let mut raw = Raw::connect(addr);
        let sid = open_session(&mut raw, "/engine.io/");
        let socket = sessions.next().expect("session");
        raw.get(&format!("/engine.io/?EIO=4&transport=polling&sid={sid}"));
        // The poll is held until there is something to send.
        std::thread::sleep(Duration::from_millis(50));
        socket.send("hello").expect("the session is open");
        assert_eq!(ok_body(&mut raw), "4hello");
    }

    /// A held poll whose watcher cannot start is aborted: the session
    /// closes at once (`transport error`), and so does the connection.
    #[test]
    fn a_held_poll_whose_watch_cannot_start_is_aborted() {
        let (engine, sockets) = EngineIo::with_sockets(ServerConfig::default());
        let faults = Faults {
            watcher_start: true,
            ..Faults::default()
        };
        let addr = start_with(Routes::new().engineio("/engine.io/", engine), faults);
        let mut sessions = blocking(sockets);
        let mut raw = Raw::connect(addr);
        let sid = open_session(&mut raw, "/engine.io/");
        let mut socket = sessions.next().expect("session");
        raw.get(&format!("/engine.io/?EIO=4&transport=polling&sid={sid}"));
        assert!(raw.closed_by_server(), "the connection stayed open");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send((socket.recv(), socket.close_reason()));
        });
        let (message, reason) = rx.recv_timeout(HANG).expect("the session stayed open");
        assert_eq!(message, None);
        assert_eq!(reason, Some(CloseReason::TransportError));
    }

    /// A timer thread that cannot be started gives the endpoint's timer
    /// claim back, so serving it later starts one: its heartbeat answers a
    /// held poll with a ping.
    #[test]
    fn a_timer_thread_that_cannot_start_gives_its_claim_back() {
        let config = ServerConfig {
            ping_interval: Duration::from_millis(100),
            ..ServerConfig::default()
        };
        let (engine, _sockets) = EngineIo::with_sockets(config);
        FAULTS.set(Faults {
            timer_start: true,
            ..Faults::default()
        });
        assert!(spawn_timer(engine.timed()).is_err());
        FAULTS.set(Faults::default());
        assert!(!engine.timed().timer_signal().is_claimed());
        let addr = start(Routes::new().engineio("/engine.io/", engine));
        let mut raw = Raw::connect(addr);
        let sid = open_session(&mut raw, "/engine.io/");
        raw.get(&format!("/engine.io/?EIO=4&transport=polling&sid={sid}"));
        assert_eq!(ok_body(&mut raw), "2", "a ping");
    }
}
