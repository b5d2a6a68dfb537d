//! The blocking Engine.IO client: the core's
//! [`Client`] driven by threads.
//!
//! A driver thread owns the session: it waits on one channel for what its
//! helpers report (an HTTP answer from a request thread, a message from the
//! WebSocket reader thread) or for the core's next deadline, feeds the
//! core, and carries out what the core asks for. The application's sends go
//! straight into the core under a lock, so [`EngineIoClient::send`] answers
//! at once.
//!
//! ```
//! use switchboard_threads::engineio::client::{ClientEvent, EngineIoClient};
//! # use switchboard_threads::engineio::{self, EngineIo, Routes, ServerConfig};
//! # let (engine, sockets) = EngineIo::with_sockets(ServerConfig::default());
//! # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! # let url = format!("http://{}", listener.local_addr()?);
//! # let routes = Routes::new().engineio("/engine.io/", engine);
//! # std::thread::spawn(move || engineio::serve(listener, routes));
//! # // An echo server.
//! # std::thread::spawn(move || {
//! #     for mut socket in engineio::blocking(sockets) {
//! #         std::thread::spawn(move || {
//! #             while let Some(message) = socket.recv() {
//! #                 let _ = socket.send(message);
//! #             }
//! #         });
//! #     }
//! # });
//! // An echo server at `url` (`http://127.0.0.1:port`).
//! let mut client = EngineIoClient::connect(&url)?;
//! client.send("hello")?;
//! // Besides messages, events tell of the upgrade and the close.
//! loop {
//!     match client.recv() {
//!         Some(ClientEvent::Message(message)) => {
//!             assert_eq!(message, "hello".into());
//!             break;
//!         }
//!         Some(ClientEvent::Upgraded) => println!("now on WebSocket"),
//!         other => panic!("unexpected {other:?}"),
//!     }
//! }
//! client.close();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchboard_core::connections::is_closed_by_peer;
use switchboard_core::engineio::MessageData;
use switchboard_core::engineio::client::{
    Client, ClientTransmit, HttpRequest, RequestId, WsConnect,
};
pub use switchboard_core::engineio::client::{
    ClientCloseReason, ClientConfig, ClientError, ClientEvent, ClientSendError, ConfigError,
};
pub use switchboard_core::engineio::{OpenPacket, TransportKind};
use switchboard_core::http::{Limits, ResponseReader, is_interim};

use crate::ws::{self, Config, Message, Sender as WsSender};

/// Connecting failed (the same error as on the async runtimes).
///
/// ```
/// use switchboard_threads::engineio::client::{ConnectError, EngineIoClient};
/// assert!(matches!(EngineIoClient::connect("not a url"), Err(ConnectError::Config(_))));
/// // This adapter has no TLS.
/// assert!(matches!(
///     EngineIoClient::connect("https://example.com"),
///     Err(ConnectError::TlsUnsupported)
/// ));
/// ```
pub use switchboard_async::engineio::client::ConnectError;

enum Input {
    Wake,
    Http(RequestId, io::Result<(u16, Bytes)>),
    WsOpened(u64, WsSender),
    WsMessage(u64, Message),
    /// The WebSocket of a generation ended; with why, if it failed.
    WsClosed(u64, Option<String>),
}

type Shared = Arc<Mutex<Client>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Client> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sends on an [`EngineIoClient`] from any thread; cloneable
/// ([`EngineIoClient::sender`]).
///
/// ```
/// use switchboard_threads::engineio::client::EngineIoClient;
/// # use switchboard_threads::engineio::{self, EngineIo, Routes, ServerConfig};
/// # let (engine, sockets) = EngineIo::with_sockets(ServerConfig::default());
/// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # let url = format!("http://{}", listener.local_addr()?);
/// # let routes = Routes::new().engineio("/engine.io/", engine);
/// # std::thread::spawn(move || engineio::serve(listener, routes));
/// # let mut sessions = engineio::blocking(sockets);
/// let client = EngineIoClient::connect(&url)?;
/// let mut socket = sessions.next().unwrap();
/// let writers: Vec<_> = (0..2)
///     .map(|i| {
///         let sender = client.sender();
///         std::thread::spawn(move || sender.send(format!("from thread {i}")))
///     })
///     .collect();
/// for writer in writers {
///     writer.join().unwrap()?;
/// }
/// // In whichever order the threads sent.
/// let received = [socket.recv().unwrap(), socket.recv().unwrap()];
/// for i in 0..2 {
///     assert!(received.contains(&format!("from thread {i}").into()));
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ClientSender {
    client: Shared,
    inputs: SyncSender<Input>,
}

impl std::fmt::Debug for ClientSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSender").finish_non_exhaustive()
    }
}

impl ClientSender {
    /// Queues a message: over WebSocket it goes out at once, over polling
    /// with the next `POST`.
    ///
    /// ```
    /// use switchboard_threads::engineio::client::EngineIoClient;
    /// # use switchboard_threads::engineio::{self, EngineIo, Routes, ServerConfig};
    /// # let (engine, sockets) = EngineIo::with_sockets(ServerConfig::default());
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let url = format!("http://{}", listener.local_addr()?);
    /// # let routes = Routes::new().engineio("/engine.io/", engine);
    /// # std::thread::spawn(move || engineio::serve(listener, routes));
    /// # let mut sessions = engineio::blocking(sockets);
    /// let client = EngineIoClient::connect(&url)?;
    /// let mut socket = sessions.next().unwrap();
    /// let sender = client.sender();
    /// std::thread::spawn(move || sender.send("from another thread"));
    /// assert_eq!(socket.recv(), Some("from another thread".into()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send(&self, data: impl Into<MessageData>) -> Result<(), ClientSendError> {
        lock(&self.client).send(data.into())?;
        self.wake();
        Ok(())
    }

    /// Closes the session (`forced close`), without waiting: the
    /// [`EngineIoClient`]'s `recv` sees it end.
    ///
    /// ```
    /// use switchboard_threads::engineio::client::{ClientCloseReason, ClientEvent, EngineIoClient};
    /// # use switchboard_threads::engineio::{self, EngineIo, Routes, ServerConfig};
    /// # let (engine, sockets) = EngineIo::with_sockets(ServerConfig::default());
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let url = format!("http://{}", listener.local_addr()?);
    /// # let routes = Routes::new().engineio("/engine.io/", engine);
    /// # std::thread::spawn(move || engineio::serve(listener, routes));
    /// # let mut sessions = engineio::blocking(sockets);
    /// let mut client = EngineIoClient::connect(&url)?;
    /// let mut socket = sessions.next().unwrap();
    /// let sender = client.sender();
    /// std::thread::spawn(move || sender.close());
    /// // The reading thread sees the close last.
    /// let last = std::iter::from_fn(|| client.recv()).last();
    /// assert_eq!(last, Some(ClientEvent::Closed { reason: ClientCloseReason::ForcedClose, error: None }));
    /// assert_eq!(socket.recv(), None); // the server's side closed too
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(&self) {
        lock(&self.client).close();
        self.wake();
    }

    fn wake(&self) {
        // A full channel means the driver has work queued and will look.
        if let Err(TrySendError::Full(_)) = self.inputs.try_send(Input::Wake) {}
    }
}

/// A connected blocking Engine.IO client session: it starts on HTTP
/// long-polling and moves to WebSocket when the server offers it (by
/// default). [`recv`](Self::recv) blocks for its events; sends go out from
/// any thread (through [`sender`](Self::sender)). Dropping it closes the
/// session.
///
/// It keeps at most 64 events the application has not read. Past them its
/// driver thread waits for `recv`, reading nothing more from the server
/// (and answering no pings meanwhile), so a client left unread for longer
/// than the server's ping timeout loses its session (`ping timeout`).
///
/// ```
/// use switchboard_threads::engineio::client::EngineIoClient;
/// # use switchboard_threads::engineio::{self, EngineIo, Routes, ServerConfig};
/// # let (engine, sockets) = EngineIo::with_sockets(ServerConfig::default());
/// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # let url = format!("http://{}", listener.local_addr()?);
/// # let routes = Routes::new().engineio("/engine.io/", engine);
/// # std::thread::spawn(move || engineio::serve(listener, routes));
/// # let mut sessions = engineio::blocking(sockets);
/// // An Engine.IO server at `url` (`http://127.0.0.1:port`).
/// let mut client = EngineIoClient::connect(&url)?;
/// let mut socket = sessions.next().unwrap();
/// client.send("question")?;
/// assert_eq!(socket.recv(), Some("question".into()));
/// socket.send("answer")?;
/// assert_eq!(client.recv_message(), Some("answer".into()));
/// client.close();
/// assert_eq!(socket.recv(), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct EngineIoClient {
    sender: ClientSender,
    events: Receiver<ClientEvent>,
    sid: String,
    handshake: OpenPacket,
    closed: bool,
}

impl std::fmt::Debug for EngineIoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineIoClient")
            .field("sid", &self.sid)
            .finish_non_exhaustive()
    }
}

impl EngineIoClient {
    /// Connects to the Engine.IO server at `url` (`http://host:port`, with
    /// an optional path replacing `/engine.io/`): polling first, then the
    /// upgrade to WebSocket. Returns once the handshake is done; the query
    /// goes with every request.
    ///
    /// ```
    /// use switchboard_threads::engineio::client::EngineIoClient;
    /// # use switchboard_threads::engineio::{self, EngineIo, Routes, ServerConfig};
    /// # let (engine, sockets) = EngineIo::with_sockets(ServerConfig::default());
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let url = format!("http://{}", listener.local_addr()?);
    /// # let routes = Routes::new().engineio("/engine.io/", engine);
    /// # std::thread::spawn(move || engineio::serve(listener, routes));
    /// # let mut sessions = engineio::blocking(sockets);
    /// let client = EngineIoClient::connect(&format!("{url}/engine.io/?token=abc"))?;
    /// let socket = sessions.next().unwrap();
    /// assert_eq!(socket.sid(), client.sid());
    /// assert_eq!(socket.request().query_param("token").as_deref(), Some("abc"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect(url: &str) -> Result<Self, ConnectError> {
        Self::connect_with_config(ClientConfig::from_url(url)?)
    }

    /// Connects with explicit settings.
    ///
    /// ```
    /// use switchboard_threads::engineio::client::TransportKind;
    /// use switchboard_threads::engineio::client::{ClientConfig, EngineIoClient};
    /// # use switchboard_threads::engineio::{self, EngineIo, Routes, ServerConfig};
    /// # let (engine, sockets) = EngineIo::with_sockets(ServerConfig::default());
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let url = format!("http://{}", listener.local_addr()?);
    /// # let routes = Routes::new().engineio("/engine.io/", engine);
    /// # std::thread::spawn(move || engineio::serve(listener, routes));
    /// # let mut sessions = engineio::blocking(sockets);
    /// // WebSocket only, from the start.
    /// let mut config = ClientConfig::from_url(&url)?;
    /// config.polling = false;
    /// config.extra_headers.push(("Authorization".into(), "Bearer abc".into()));
    /// let client = EngineIoClient::connect_with_config(config)?;
    /// assert_eq!(client.transport(), TransportKind::WebSocket);
    /// let socket = sessions.next().unwrap();
    /// assert_eq!(socket.request().headers.get("authorization"), Some("Bearer abc"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect_with_config(config: ClientConfig) -> Result<Self, ConnectError> {
        if config.secure {
            return Err(ConnectError::TlsUnsupported);
        }
        let client: Shared = Arc::new(Mutex::new(Client::new(config, Instant::now())?));
        let (inputs_tx, inputs) = sync_channel(64);
        let (events_tx, events) = sync_channel(64);
        let requests = Arc::new(Requests::default());
        let driver = Driver {
            client: client.clone(),
            inputs_tx: inputs_tx.clone(),
            requests: requests.clone(),
            ws: None,
            ws_generation: 0,
        };
        std::thread::Builder::new()
            .name("switchboard-eio-client".into())
            .spawn(move || {
                driver.run(inputs, events_tx);
                // As long as a closing WebSocket gets.
                requests.end(Config::default().close_timeout);
            })?;
        let sender = ClientSender {
            client,
            inputs: inputs_tx,
        };
        match events.recv() {
            Ok(ClientEvent::Open { sid, handshake, .. }) => Ok(EngineIoClient {
                sender,
                events,
                sid,
                handshake,
                closed: false,
            }),
            Ok(ClientEvent::Closed { reason, error }) => {
                Err(ConnectError::Closed { reason, error })
            }
            _ => Err(ConnectError::Closed {
                reason: ClientCloseReason::TransportError,
                error: None,
            }),
        }
    }

    /// The session id.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// The server's handshake.
    ///
    /// ```
    /// use switchboard_threads::engineio::client::EngineIoClient;
    /// # use switchboard_threads::engineio::{self, EngineIo, Routes, ServerConfig};
    /// # let (engine, _sockets) = EngineIo::with_sockets(ServerConfig::default());
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let url = format!("http://{}", listener.local_addr()?);
    /// # let routes = Routes::new().engineio("/engine.io/", engine);
    /// # std::thread::spawn(move || engineio::serve(listener, routes));
    /// let client = EngineIoClient::connect(&url)?;
    /// let handshake = client.handshake();
    /// assert_eq!(handshake.sid, client.sid());
    /// assert_eq!(handshake.ping_interval, 25_000); // ServerConfig's default, in ms
    /// assert_eq!(handshake.upgrades, ["websocket"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn handshake(&self) -> &OpenPacket {
        &self.handshake
    }

    /// The session's transport at the moment.
    ///
    /// ```
    /// use switchboard_threads::engineio::client::TransportKind;
    /// use switchboard_threads::engineio::client::{ClientConfig, ClientEvent, EngineIoClient};
    /// # use switchboard_threads::engineio::{self, EngineIo, Routes, ServerConfig};
    /// # let (engine, _sockets) = EngineIo::with_sockets(ServerConfig::default());
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let url = format!("http://{}", listener.local_addr()?);
    /// # let routes = Routes::new().engineio("/engine.io/", engine);
    /// # std::thread::spawn(move || engineio::serve(listener, routes));
    /// // Polling first, then the upgrade (unless the config says otherwise).
    /// let mut client = EngineIoClient::connect(&url)?;
    /// assert_eq!(client.recv(), Some(ClientEvent::Upgraded));
    /// assert_eq!(client.transport(), TransportKind::WebSocket);
    /// let mut config = ClientConfig::from_url(&url)?;
    /// config.upgrade = false;
    /// let client = EngineIoClient::connect_with_config(config)?;
    /// assert_eq!(client.transport(), TransportKind::Polling);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn transport(&self) -> TransportKind {
        lock(&self.sender.client).transport()
    }

    /// Blocks for the next event; `None` after [`ClientEvent::Closed`].
    ///
    /// ```
    /// use switchboard_threads::engineio::client::{ClientCloseReason, ClientEvent, EngineIoClient};
    /// # use switchboard_threads::engineio::{self, EngineIo, Routes, ServerConfig};
    /// # let (engine, sockets) = EngineIo::with_sockets(ServerConfig::default());
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let url = format!("http://{}", listener.local_addr()?);
    /// # let routes = Routes::new().engineio("/engine.io/", engine);
    /// # std::thread::spawn(move || engineio::serve(listener, routes));
    /// # let mut sessions = engineio::blocking(sockets);
    /// let mut client = EngineIoClient::connect(&url)?;
    /// let socket = sessions.next().unwrap();
    /// assert_eq!(client.recv(), Some(ClientEvent::Upgraded));
    /// socket.send("news")?;
    /// assert_eq!(client.recv(), Some(ClientEvent::Message("news".into())));
    /// socket.close();
    /// let closed = ClientEvent::Closed { reason: ClientCloseReason::TransportClose, error: None };
    /// assert_eq!(client.recv(), Some(closed));
    /// assert_eq!(client.recv(), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv(&mut self) -> Option<ClientEvent> {
        if self.closed {
            return None;
        }
        let event = self.events.recv().ok();
        self.closed = matches!(event, None | Some(ClientEvent::Closed { .. }));
        event
    }

    /// Like [`recv`](Self::recv), giving up after `timeout`: `None` then
    /// too (the session may still be open).
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_threads::engineio::client::{ClientEvent, EngineIoClient};
    /// # use switchboard_threads::engineio::{self, EngineIo, Routes, ServerConfig};
    /// # let (engine, _sockets) = EngineIo::with_sockets(ServerConfig::default());
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let url = format!("http://{}", listener.local_addr()?);
    /// # let routes = Routes::new().engineio("/engine.io/", engine);
    /// # std::thread::spawn(move || engineio::serve(listener, routes));
    /// let mut client = EngineIoClient::connect(&url)?;
    /// let wait = Duration::from_secs(5);
    /// assert_eq!(client.recv_timeout(wait), Some(ClientEvent::Upgraded));
    /// // Nothing more comes.
    /// assert_eq!(client.recv_timeout(Duration::from_millis(50)), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_timeout(&mut self, timeout: std::time::Duration) -> Option<ClientEvent> {
        if self.closed {
            return None;
        }
        match self.events.recv_timeout(timeout) {
            Ok(event) => {
                self.closed = matches!(event, ClientEvent::Closed { .. });
                Some(event)
            }
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                self.closed = true;
                None
            }
        }
    }

    /// Blocks for the next message, skipping other events; `None` once the
    /// session closed.
    ///
    /// ```
    /// use switchboard_threads::engineio::client::EngineIoClient;
    /// # use switchboard_threads::engineio::{self, EngineIo, Routes, ServerConfig};
    /// # let (engine, sockets) = EngineIo::with_sockets(ServerConfig::default());
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let url = format!("http://{}", listener.local_addr()?);
    /// # let routes = Routes::new().engineio("/engine.io/", engine);
    /// # std::thread::spawn(move || engineio::serve(listener, routes));
    /// # let mut sessions = engineio::blocking(sockets);
    /// let mut client = EngineIoClient::connect(&url)?;
    /// let socket = sessions.next().unwrap();
    /// socket.send("text")?;
    /// socket.send(vec![1u8, 2])?;
    /// // Whether or not the upgrade's `Upgraded` event comes in between.
    /// assert_eq!(client.recv_message(), Some("text".into()));
    /// assert_eq!(client.recv_message(), Some(vec![1u8, 2].into()));
    /// client.close();
    /// assert_eq!(client.recv_message(), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_message(&mut self) -> Option<MessageData> {
        loop {
            if let ClientEvent::Message(data) = self.recv()? {
                return Some(data);
            }
        }
    }

    /// Queues a message (see [`ClientSender::send`]): text or binary.
    ///
    /// ```
    /// use switchboard_threads::engineio::MessageData;
    /// use switchboard_threads::engineio::client::EngineIoClient;
    /// # use switchboard_threads::engineio::{self, EngineIo, Routes, ServerConfig};
    /// # let (engine, sockets) = EngineIo::with_sockets(ServerConfig::default());
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let url = format!("http://{}", listener.local_addr()?);
    /// # let routes = Routes::new().engineio("/engine.io/", engine);
    /// # std::thread::spawn(move || engineio::serve(listener, routes));
    /// # let mut sessions = engineio::blocking(sockets);
    /// let client = EngineIoClient::connect(&url)?;
    /// let mut socket = sessions.next().unwrap();
    /// client.send("text")?;
    /// client.send(vec![1u8, 2])?;
    /// assert_eq!(socket.recv(), Some(MessageData::Text("text".into())));
    /// assert_eq!(socket.recv(), Some(MessageData::Binary(vec![1u8, 2].into())));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send(&self, data: impl Into<MessageData>) -> Result<(), ClientSendError> {
        self.sender.send(data)
    }

    /// A cloneable sender for other threads (see [`ClientSender`]).
    pub fn sender(&self) -> ClientSender {
        self.sender.clone()
    }

    /// Closes the session (`forced close`) and waits for it to end; events
    /// not yet received are dropped.
    ///
    /// ```
    /// use switchboard_threads::engineio::CloseReason;
    /// use switchboard_threads::engineio::client::EngineIoClient;
    /// # use switchboard_threads::engineio::{self, EngineIo, Routes, ServerConfig};
    /// # let (engine, sockets) = EngineIo::with_sockets(ServerConfig::default());
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let url = format!("http://{}", listener.local_addr()?);
    /// # let routes = Routes::new().engineio("/engine.io/", engine);
    /// # std::thread::spawn(move || engineio::serve(listener, routes));
    /// # let mut sessions = engineio::blocking(sockets);
    /// let mut client = EngineIoClient::connect(&url)?;
    /// let mut socket = sessions.next().unwrap();
    /// client.close();
    /// assert_eq!(client.recv(), None);
    /// assert_eq!(socket.recv(), None);
    /// assert_eq!(socket.close_reason(), Some(CloseReason::TransportClose));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(&mut self) {
        self.sender.close();
        while self.recv().is_some() {}
    }
}

impl Drop for EngineIoClient {
    fn drop(&mut self) {
        if !self.closed {
            self.sender.close();
        }
    }
}

/// The HTTP requests of one session: their threads, the connections they
/// use, and the idle keep-alive connections. When the session ends its
/// requests get a while to finish (a `close` packet's `POST`, a poll the
/// server answers as it closes the session); then the connections still
/// in use are shut down, so that a poll a vanished server never answers
/// does not hold its thread and socket for good.
#[derive(Default)]
struct Requests {
    state: Mutex<RequestsState>,
    finished: Condvar,
}

#[derive(Default)]
struct RequestsState {
    idle: Vec<TcpStream>,
    /// Request threads started and not yet finished.
    running: usize,
    /// A handle on each connection a request is using, by number.
    busy: Vec<(u64, TcpStream)>,
    next_busy: u64,
    ended: bool,
}

impl Requests {
    fn state(&self) -> MutexGuard<'_, RequestsState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A request thread is starting.
    fn started(&self) {
        self.state().running += 1;
    }

    /// A request thread ended (or never started).
    fn finished(&self) {
        self.state().running -= 1;
        self.finished.notify_all();
    }

    /// An idle keep-alive connection, if any; refused once the session
    /// has ended.
    fn take_idle(&self) -> io::Result<Option<TcpStream>> {
        let mut state = self.state();
        if state.ended {
            return Err(io::ErrorKind::ConnectionAborted.into());
        }
        Ok(state.idle.pop())
    }

    /// Notes that `stream` is in use, so that [`Requests::end`] can shut it
    /// down; refused once the session has ended.
    fn enter(&self, stream: &TcpStream) -> io::Result<u64> {
        let handle = stream.try_clone()?;
        let mut state = self.state();
        if state.ended {
            return Err(io::ErrorKind::ConnectionAborted.into());
        }
        let number = state.next_busy;
        state.next_busy += 1;
        state.busy.push((number, handle));
        Ok(number)
    }

    /// The request on connection `number` is over; `stream` is kept for
    /// the next one if given (and the session goes on).
    fn leave(&self, number: u64, stream: Option<TcpStream>) {
        let mut state = self.state();
        state.busy.retain(|(n, _)| *n != number);
        if let Some(stream) = stream.filter(|_| !state.ended) {
            state.idle.push(stream);
        }
    }

    /// The session ended: waits up to `linger` for the request threads to
    /// finish, then shuts down the connections still in use.
    fn end(&self, linger: Duration) {
        let deadline = Instant::now() + linger;
        let mut state = self.state();
        while state.running > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .finished
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state.ended = true;
        state.idle.clear();
        for (_, stream) in state.busy.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

struct Driver {
    client: Shared,
    inputs_tx: SyncSender<Input>,
    requests: Arc<Requests>,
    ws: Option<WsSender>,
    ws_generation: u64,
}

impl Driver {
    fn run(mut self, inputs: Receiver<Input>, events: SyncSender<ClientEvent>) {
        let (host, port, max_payload) = {
            let client = lock(&self.client);
            let config = client.config();
            (config.host.clone(), config.port, config.max_payload)
        };
        loop {
            let (transmits, new_events, deadline) = {
                let mut client = lock(&self.client);
                let transmits: Vec<_> = std::iter::from_fn(|| client.poll_transmit()).collect();
                let new_events: Vec<_> = std::iter::from_fn(|| client.poll_event()).collect();
                (transmits, new_events, client.poll_timeout())
            };
            for transmit in transmits {
                self.carry_out(transmit, &host, port, max_payload);
            }
            let mut closed = false;
            for event in new_events {
                closed |= matches!(event, ClientEvent::Closed { .. });
                if events.send(event).is_err() {
                    lock(&self.client).close();
                }
            }
            if closed {
                if let Some(ws) = self.ws.take() {
                    let _ = ws.close(None);
                }
                return;
            }
            let input = match deadline {
                Some(deadline) => {
                    match inputs.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                        Ok(input) => Some(input),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
                None => match inputs.recv() {
                    Ok(input) => Some(input),
                    Err(_) => return,
                },
            };
            let now = Instant::now();
            let mut client = lock(&self.client);
            let Some(input) = input else {
                client.handle_timeout(now);
                continue;
            };
            match input {
                Input::Wake => {}
                Input::Http(id, Ok((status, body))) => {
                    client.handle_http_response(id, status, body, now)
                }
                Input::Http(id, Err(error)) => {
                    tracing::debug!(%error, "Engine.IO HTTP request failed");
                    client.handle_http_error(id, error, now)
                }
                Input::WsOpened(generation, sender) if generation == self.ws_generation => {
                    self.ws = Some(sender);
                    client.ws_opened(now);
                }
                Input::WsMessage(generation, message) if generation == self.ws_generation => {
                    client.ws_message(message, now)
                }
                Input::WsClosed(generation, failure) if generation == self.ws_generation => {
                    self.ws = None;
                    match failure {
                        Some(reason) => client.ws_failed(reason, now),
                        None => client.ws_closed(now),
                    }
                }
                Input::WsOpened(..) | Input::WsMessage(..) | Input::WsClosed(..) => {}
            }
            // Inputs that never stop coming must not hold the timers off.
            if deadline.is_some_and(|deadline| deadline <= now) {
                client.handle_timeout(now);
            }
        }
    }

    fn carry_out(&mut self, transmit: ClientTransmit, host: &str, port: u16, max_payload: usize) {
        match transmit {
            ClientTransmit::Http(request) => {
                let id = request.id;
                let requests = self.requests.clone();
                let inputs = self.inputs_tx.clone();
                let host = host.to_owned();
                self.requests.started();
                let spawned = std::thread::Builder::new()
                    .name("switchboard-eio-http".into())
                    .spawn(move || {
                        let result = http_exchange(&requests, &host, port, &request, max_payload);
                        requests.finished();
                        let _ = inputs.send(Input::Http(request.id, result));
                    });
                if let Err(error) = spawned {
                    self.requests.finished();
                    tracing::warn!(%error, "cannot start an HTTP request thread");
                    lock(&self.client).handle_http_error(
                        id,
                        format_args!("cannot start a thread: {error}"),
                        Instant::now(),
                    );
                }
            }
            ClientTransmit::WsConnect(connect) => {
                self.ws_generation += 1;
                self.ws = None;
                let generation = self.ws_generation;
                let inputs = self.inputs_tx.clone();
                let spawned = std::thread::Builder::new()
                    .name("switchboard-eio-ws".into())
                    .spawn(move || run_ws(connect, max_payload, generation, inputs));
                if let Err(error) = spawned {
                    tracing::warn!(%error, "cannot start a WebSocket thread");
                    lock(&self.client).ws_failed(
                        format_args!("cannot start a thread: {error}"),
                        Instant::now(),
                    );
                }
            }
            ClientTransmit::WsSend(message) => {
                if let Some(ws) = &self.ws {
                    if ws.send(message).is_err() {
                        self.ws = None;
                        lock(&self.client).ws_closed(Instant::now());
                    }
                }
            }
            ClientTransmit::WsClose => {
                if let Some(ws) = self.ws.take() {
                    let _ = ws.close(None);
                }
            }
        }
    }
}

/// Opens the WebSocket, hands its sender to the driver, and feeds its
/// messages back until it ends.
fn run_ws(connect: WsConnect, max_payload: usize, generation: u64, inputs: SyncSender<Input>) {
    let config = Arc::new(Config {
        max_message_size: max_payload,
        max_frame_size: max_payload,
        ..Config::default()
    });
    let headers: Vec<(&str, &str)> = connect
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let opened = TcpStream::connect((connect.url.host.as_str(), connect.url.port))
        .map_err(ws::Error::from)
        .and_then(|stream| {
            stream.set_nodelay(true)?;
            ws::client_handshake(stream, &connect.url, config, &headers)
        });
    let mut socket = match opened {
        Ok(socket) => socket,
        Err(error) => {
            tracing::debug!(%error, "Engine.IO WebSocket failed to open");
            let _ = inputs.send(Input::WsClosed(generation, Some(error.to_string())));
            return;
        }
    };
    if inputs
        .send(Input::WsOpened(generation, socket.sender()))
        .is_err()
    {
        return;
    }
    let mut failure = None;
    while let Some(item) = socket.recv() {
        match item {
            Ok(message) if message.is_data() => {
                if inputs.send(Input::WsMessage(generation, message)).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::debug!(%error, "Engine.IO WebSocket failed");
                failure = Some(error.to_string());
                break;
            }
        }
    }
    let _ = inputs.send(Input::WsClosed(generation, failure));
}

/// Makes one HTTP request on a pooled keep-alive connection (or a new
/// one), returning the status and body.
fn http_exchange(
    requests: &Requests,
    host: &str,
    port: u16,
    request: &HttpRequest,
    max_body: usize,
) -> io::Result<(u16, Bytes)> {
    let bytes = request.encode();
    loop {
        let pooled = requests.take_idle()?;
        let reused = pooled.is_some();
        let mut stream = match pooled {
            Some(stream) => stream,
            None => {
                let stream = TcpStream::connect((host, port))?;
                stream.set_nodelay(true)?;
                stream
            }
        };
        let busy = requests.enter(&stream)?;
        let exchanged = exchange_on(&mut stream, &bytes, max_body);
        let keep = matches!(exchanged, Ok((_, _, true)));
        requests.leave(busy, keep.then_some(stream));
        match exchanged {
            Ok((status, body, _)) => return Ok((status, body)),
            // A pooled connection the server closed meanwhile (nothing of
            // an answer came): again on another one.
            Err(Failure {
                error,
                answered: false,
            }) if reused && is_closed_by_peer(&error) => {
                tracing::debug!(%error, "a pooled connection was closed; retrying");
            }
            Err(Failure { error, .. }) => return Err(error),
        }
    }
}

/// An exchange failed with `error`; `answered` if bytes of an answer had
/// arrived.
struct Failure {
    error: io::Error,
    answered: bool,
}

/// Sends `request` and reads its answer (interim `1xx` answers skipped):
/// the status, the body, and whether the connection can be reused.
fn exchange_on(
    stream: &mut TcpStream,
    request: &[u8],
    max_body: usize,
) -> Result<(u16, Bytes, bool), Failure> {
    let mut answered = false;
    let fail = |error, answered| Failure { error, answered };
    stream.write_all(request).map_err(|e| fail(e, false))?;
    let mut reader = ResponseReader::new(Limits::default(), max_body);
    let mut buf = vec![0u8; 16 << 10];
    let invalid = |e| fail(io::Error::new(io::ErrorKind::InvalidData, e), true);
    loop {
        if answered {
            match reader.next_response().map_err(invalid)? {
                Some(response) if is_interim(response.response.status) => continue,
                Some(response) => {
                    let keep_alive = !response.truncated
                        && !response.response.headers.has_token("connection", "close");
                    return Ok((response.response.status, response.body, keep_alive));
                }
                None => {}
            }
        }
        let n = stream.read(&mut buf).map_err(|e| fail(e, answered))?;
        if n == 0 {
            return match reader.handle_eof().map_err(invalid)? {
                Some(response) => Ok((response.response.status, response.body, false)),
                None => Err(fail(io::ErrorKind::UnexpectedEof.into(), answered)),
            };
        }
        answered = true;
        reader.receive(&buf[..n]);
    }
}
