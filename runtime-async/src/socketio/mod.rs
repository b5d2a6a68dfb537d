//! The Socket.IO server on any runtime: the core's
//! [`socketio::server::Server`](switchboard_core::socketio::server::Server)
//! over an [`EngineIo`] endpoint, with the application's handlers.
//!
//! [`SocketIo`] is the server handle (`io`): register namespaces with
//! [`SocketIo::ns`], emit and broadcast from anywhere (a handler, another
//! task or thread, an HTTP route). Each connection is a [`Socket`]:
//! [`Socket::on`] registers event handlers, [`Socket::emit`] sends, rooms
//! with [`Socket::join`] and [`Socket::to`].
//!
//! Like the Engine.IO hub, nothing here is tied to a runtime: the core's
//! state is kept under one lock; what it asks to send goes to the
//! Engine.IO endpoint in the order it was produced, outside the lock; its
//! events reach the handlers in order per socket (different sockets'
//! concurrently), outside the lock, so a handler may emit, join or
//! disconnect directly. Sync handlers run where the event is delivered
//! (on async runtimes usually the socket's own connection task, so keep
//! them short there), or through a [`HandlerRunner`] (the threads
//! adapter's handler threads, where they may block); a slow one holds back
//! only its socket's later events. Async handlers are spawned on the
//! runtime's executor. An emit is handed to the transport at once, so a
//! handler that emits progress while it works delivers each step at its
//! time.

pub mod client;
mod payload;

use std::any::{Any, TypeId};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use futures_util::FutureExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use switchboard_core::engineio::{self as eio, ServerEvent as EngineEvent};
use switchboard_core::ids::IdMap;
pub use switchboard_core::socketio::server::{
    AckError, BroadcastTarget, DisconnectReason, EmitError, NamespaceMatch,
    ServerConfig as CoreConfig, SocketId,
};
use switchboard_core::socketio::server::{Server as Core, ServerEvent, Transmit};
use switchboard_core::socketio::{Packet, RawJson, encode_event, is_reserved_event};

pub use payload::Payload;

use crate::dispatch::{OrderedDispatch, log_handler_panic, run_handler};
use crate::engineio::{self, EngineIo};
use crate::timer::{Timed, TimerSignal};

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
/// Which of a socket's event streams an event belongs to: ack answers and
/// failures are delivered apart from the socket's events, so a handler
/// that blocks for an ack of its own socket gets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Lane {
    Events,
    Acks,
}

/// Runs a job elsewhere, such as on a thread pool (see
/// [`SocketIo::set_handler_runner`]).
///
/// A pool of four handler threads, where sync handlers may block:
///
/// ```
/// use std::sync::{Arc, Mutex, mpsc};
/// use switchboard_async::socketio::{HandlerRunner, SocketIo, SocketIoConfig};
///
/// let (jobs, queue) = mpsc::channel::<Box<dyn FnOnce() + Send>>();
/// let queue = Arc::new(Mutex::new(queue));
/// for _ in 0..4 {
///     let queue = queue.clone();
///     std::thread::spawn(move || loop {
///         let job = queue.lock().unwrap().recv(); // the lock is let go here
///         match job {
///             Ok(job) => job(),
///             Err(_) => break, // the server is gone
///         }
///     });
/// }
/// let runner: HandlerRunner = Arc::new(move |job| {
///     let _ = jobs.send(job);
/// });
/// let io = SocketIo::new(SocketIoConfig::default());
/// io.set_handler_runner(runner);
/// ```
pub type HandlerRunner = Arc<dyn Fn(Box<dyn FnOnce() + Send>) + Send + Sync>;

/// Runs a future in the background (a runtime's `spawn`; with tokio,
/// `Arc::new(|task| { tokio::spawn(task); })`). See
/// [`SocketIo::set_spawner`].
///
/// ```
/// use std::sync::{Arc, mpsc};
/// use switchboard_async::socketio::Spawner;
///
/// // Without a runtime at hand: a thread per task.
/// let spawner: Spawner = Arc::new(|task| {
///     std::thread::spawn(move || futures_executor::block_on(task));
/// });
/// let (done, finished) = mpsc::channel();
/// spawner(Box::pin(async move { done.send("ran").unwrap() }));
/// assert_eq!(finished.recv().unwrap(), "ran");
/// ```
pub type Spawner = Arc<dyn Fn(BoxFuture) + Send + Sync>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Settings of a [`SocketIo`] server.
///
/// ```
/// use std::time::Duration;
/// use switchboard_async::socketio::{SocketIo, SocketIoConfig};
///
/// let mut config = SocketIoConfig::default();
/// config.engine.ping_interval = Duration::from_secs(10); // the heartbeat
/// config.engine.allow_eio3 = true; // Socket.IO 2 clients too
/// config.socketio.connect_timeout = Duration::from_secs(10);
/// config.socketio.max_rooms_per_socket = 100;
/// config.max_pending_events = 256;
/// let io = SocketIo::new(config);
/// # assert_eq!(io.socket_count(), 0);
/// ```
#[derive(Debug, Clone)]
pub struct SocketIoConfig {
    /// The Engine.IO endpoint under it (heartbeat, limits, CORS, v3
    /// clients with `allow_eio3`).
    pub engine: eio::ServerConfig,
    /// The Socket.IO layer (connect timeout, decoder limits).
    pub socketio: CoreConfig,
    /// The most events of one socket waiting for its sync handlers, or
    /// running in its async handlers, at once (default 1,024). Past half
    /// of it, the client's connection stops handing over its messages
    /// until the handlers catch up (a WebSocket reads no more; a polling
    /// `POST` is answered once its messages are handed over), so a burst
    /// waits in TCP. Handlers that make no room in
    /// [`HANDLERS_CATCH_UP`](crate::engineio::HANDLERS_CATCH_UP) (5 s) are
    /// not waited for: a client that goes on sending then goes past the
    /// limit and is disconnected from the namespace (DISCONNECT, `io
    /// server disconnect` on its side; the handlers see
    /// [`DisconnectReason::ServerNamespaceDisconnect`]) with a warning in
    /// the log, instead of queueing without bound. The events already
    /// accepted are still handled.
    pub max_pending_events: usize,
}

impl Default for SocketIoConfig {
    fn default() -> Self {
        SocketIoConfig {
            engine: eio::ServerConfig::default(),
            socketio: CoreConfig::default(),
            max_pending_events: 1024,
        }
    }
}

/// Why a connection to a namespace was refused: the client gets
/// CONNECT_ERROR with this message and data.
///
/// A middleware returns it (see [`SocketIo::ns_with`]); the client's
/// `connect_error` handler gets them as `err.message` and `err.data`:
///
/// ```
/// use serde_json::json;
/// use switchboard_async::socketio::ConnectError;
///
/// let refusal = ConnectError::new("not authorized")
///     .with_data(json!({ "reason": "token expired" }));
/// assert_eq!(refusal.to_string(), "not authorized");
/// assert_eq!(refusal.data, Some(json!({ "reason": "token expired" })));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConnectError {
    /// The message (`err.message` on the client).
    pub message: String,
    /// Extra data (`err.data` on the client).
    pub data: Option<serde_json::Value>,
}

impl ConnectError {
    /// A refusal with `message`.
    pub fn new(message: impl Into<String>) -> Self {
        ConnectError {
            message: message.into(),
            data: None,
        }
    }

    /// Adds data to the refusal.
    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.data = Some(data);
        self
    }
}

/// What a client sent when it joined a namespace: what a middleware
/// checks, and what [`Socket::handshake`] keeps.
///
/// The client's `auth` option (`io({ auth: { token: "s3cret" } })`)
/// arrives as `auth`. A middleware is a plain function of it, easy to
/// test:
///
/// ```
/// use serde_json::json;
/// use switchboard_async::socketio::{ConnectError, Handshake};
///
/// fn check_token(handshake: &Handshake) -> Result<(), ConnectError> {
///     match handshake.auth["token"].as_str() {
///         Some("s3cret") => Ok(()),
///         _ => Err(ConnectError::new("not authorized")),
///     }
/// }
///
/// let handshake = Handshake {
///     namespace: "/".into(),
///     auth: json!({ "token": "s3cret" }),
///     sid: "AZ3xWqL0".into(),
/// };
/// assert!(check_token(&handshake).is_ok());
/// let anonymous = Handshake { auth: json!({}), ..handshake };
/// assert!(check_token(&anonymous).is_err());
/// ```
#[derive(Debug, Clone)]
pub struct Handshake {
    /// The namespace.
    pub namespace: String,
    /// The auth payload (`{}` when none was sent).
    pub auth: serde_json::Value,
    /// The Engine.IO session id.
    pub sid: String,
}

type Middleware = Arc<dyn Fn(&Handshake) -> Result<(), ConnectError> + Send + Sync>;

/// The refusal a client gets when a middleware panics.
const MIDDLEWARE_PANICKED: &str = "server error";

enum Callback<A> {
    Sync(Arc<dyn Fn(A) + Send + Sync>),
    Async(Arc<dyn Fn(A) -> BoxFuture + Send + Sync>),
}

impl<A> Clone for Callback<A> {
    fn clone(&self) -> Self {
        match self {
            Callback::Sync(f) => Callback::Sync(f.clone()),
            Callback::Async(f) => Callback::Async(f.clone()),
        }
    }
}

/// A namespace's middlewares and connection handler.
struct NamespaceHandlers {
    middlewares: Vec<Middleware>,
    on_connect: Callback<Socket>,
}

/// A namespace being set up: middlewares run in order before the
/// connection handler; the first refusal answers the client.
///
/// [`SocketIo::ns_with`] and [`SocketIo::dynamic_ns`] hand one to their
/// `setup`:
///
/// ```
/// use switchboard_async::socketio::{ConnectError, SocketIo, SocketIoConfig};
///
/// let io = SocketIo::new(SocketIoConfig::default());
/// io.ns_with(
///     "/admin",
///     |ns| {
///         ns.middleware(|handshake| match handshake.auth.get("token") {
///             Some(_) => Ok(()),
///             None => Err(ConnectError::new("log in first")),
///         })
///         // Only for the clients the first one let through.
///         .middleware(|handshake| match handshake.auth["role"].as_str() {
///             Some("admin") => Ok(()),
///             _ => Err(ConnectError::new("admins only")),
///         })
///     },
///     |socket| {
///         let _ = socket.emit("welcome", "admin");
///     },
/// );
/// # use switchboard_async::engineio::{Routed, WsCommand, WsCommands};
/// # use switchboard_core::{http::{Limits, Request}, ws::Message};
/// # // In-memory clients, no network: `open()` connects one over WebSocket, `send` hands the server a packet from it, `recv` takes what the server sent it.
/// # let request = Request::parse(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", &Limits::default()).unwrap().unwrap().0;
/// # let open = || match io.engine().handle_request(&request, Default::default()) { Routed::WebSocket(conn, mut queue) => { recv(&mut queue); (conn, queue) } _ => unreachable!() };
/// # let send = |conn, packet: &str| io.engine().ws_message(conn, Message::text(packet.to_owned()));
/// # fn recv(queue: &mut WsCommands) -> Vec<String> { std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect() }
/// # let ((a, mut qa), (b, mut qb)) = (open(), open());
/// # send(a, r#"40/admin,{"role":"admin"}"#);
/// # assert_eq!(recv(&mut qa), [r#"44/admin,{"message":"log in first"}"#]);
/// # send(b, r#"40/admin,{"token":"t","role":"admin"}"#);
/// # assert_eq!(recv(&mut qb)[1], r#"42/admin,["welcome","admin"]"#);
/// ```
pub struct Namespace {
    middlewares: Vec<Middleware>,
}

impl Namespace {
    /// Adds a middleware, run after those added before it: `Ok(())` lets the
    /// client through, a [`ConnectError`] refuses it (one that panics
    /// refuses it with `server error`, and the panic is logged). It runs
    /// where the client's CONNECT is handled, so keep it quick. It may hold
    /// state:
    ///
    /// ```
    /// use std::collections::HashSet;
    /// use std::sync::{Arc, RwLock};
    /// use switchboard_async::socketio::{ConnectError, SocketIo, SocketIoConfig};
    ///
    /// let banned: Arc<RwLock<HashSet<String>>> = Arc::default();
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// let list = banned.clone();
    /// io.ns_with(
    ///     "/",
    ///     move |ns| {
    ///         ns.middleware(move |handshake| {
    ///             let user = handshake.auth["user"].as_str().unwrap_or_default();
    ///             match list.read().unwrap().contains(user) {
    ///                 true => Err(ConnectError::new("banned")),
    ///                 false => Ok(()),
    ///             }
    ///         })
    ///     },
    ///     |_socket| {},
    /// );
    /// banned.write().unwrap().insert("mallory".into()); // from now on
    /// ```
    pub fn middleware(
        mut self,
        check: impl Fn(&Handshake) -> Result<(), ConnectError> + Send + Sync + 'static,
    ) -> Self {
        self.middlewares.push(Arc::new(check));
        self
    }
}

#[derive(Default)]
struct SocketHandlers {
    events: HashMap<String, Callback<(Socket, Event)>>,
    any: Option<Callback<(Socket, Event)>>,
    disconnect: Vec<Callback<(Socket, DisconnectReason)>>,
    /// The socket has disconnected and its handlers are gone: none
    /// registered from now on would ever run, so none is kept (it would
    /// keep the socket it may hold alive for ever).
    closed: bool,
}

struct SocketEntry {
    namespace: String,
    handshake: Handshake,
    handlers: RwLock<SocketHandlers>,
    extensions: Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
    /// This socket's event handlers running as spawned tasks.
    running: AtomicUsize,
    /// Its handlers made no room in a whole wait for them
    /// ([`EventHandler::no_room_made`]): not
    /// waited for again until one of them ends.
    stuck: AtomicBool,
    /// Once it has disconnected: the rooms it was in as it left.
    rooms_left: OnceLock<Vec<String>>,
}

pub(crate) enum AckSlot {
    Callback(Box<dyn FnOnce(Result<Payload, AckError>) + Send>),
    Channel(oneshot::Sender<Result<Payload, AckError>>),
    /// One socket's part of a broadcast's acks.
    Group(Arc<AckGroup>, SocketId),
}

/// What a [`BroadcastAckFuture`] resolves with: every socket asked, with
/// its answer or why it gave none.
pub type BroadcastAnswers = Vec<(SocketId, Result<Payload, AckError>)>;

/// The answers to one broadcast's ack request, gathered as they come
/// ([`Broadcast::emit_with_ack`]).
pub(crate) struct AckGroup {
    state: Mutex<AckGroupState>,
}

struct AckGroupState {
    /// Sockets asked whose answer (or failure) has not come yet.
    remaining: usize,
    answers: BroadcastAnswers,
    done: Option<oneshot::Sender<BroadcastAnswers>>,
}

impl AckGroup {
    fn new(remaining: usize, done: oneshot::Sender<BroadcastAnswers>) -> Self {
        AckGroup {
            state: Mutex::new(AckGroupState {
                remaining,
                answers: Vec::with_capacity(remaining),
                done: Some(done),
            }),
        }
    }

    /// Counts `socket`'s answer; the last one resolves the group.
    fn answer(&self, socket: SocketId, answer: Result<Payload, AckError>) {
        let mut state = lock(&self.state);
        state.answers.push((socket, answer));
        state.remaining = state.remaining.saturating_sub(1);
        if state.remaining == 0 {
            let answers = std::mem::take(&mut state.answers);
            if let Some(done) = state.done.take() {
                let _ = done.send(answers);
            }
        }
    }
}

struct Hub {
    core: Mutex<Core>,
    engine: std::sync::OnceLock<EngineIo>,
    outbox: Mutex<Outbox>,
    flushing: Mutex<()>,
    /// The core's events, waiting for the handlers, in order per socket
    /// and lane.
    events: OrderedDispatch<(SocketId, Lane), ServerEvent>,
    /// Where sockets' deliveries run when not in place (see
    /// [`SocketIo::set_handler_runner`]).
    handler_runner: std::sync::OnceLock<HandlerRunner>,
    namespaces: RwLock<HashMap<String, Arc<NamespaceHandlers>>>,
    dynamic: RwLock<Vec<Arc<NamespaceHandlers>>>,
    sockets: RwLock<IdMap<SocketId, Arc<SocketEntry>>>,
    acks: Mutex<IdMap<(SocketId, u64), AckSlot>>,
    spawner: std::sync::OnceLock<Spawner>,
    timer: TimerSignal,
    timer_deadline: Mutex<Option<Instant>>,
    /// [`SocketIoConfig::max_pending_events`].
    max_pending_events: usize,
    /// Async event handlers running, across all sockets.
    running: Arc<AtomicUsize>,
    this: Weak<Hub>,
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.timer.wake();
    }
}

/// The Socket.IO server handle (`io`). Cloning is cheap.
///
/// Register namespaces and their handlers, then serve
/// [`engine`](SocketIo::engine) at `/socket.io/` (a runtime's
/// [`Routes::socketio`](crate::server::Routes::socketio) does it). A chat
/// with rooms:
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use switchboard_async::socketio::{SocketIo, SocketIoConfig};
///
/// #[derive(Serialize, Deserialize)]
/// struct Chat { room: String, text: String }
///
/// let io = SocketIo::new(SocketIoConfig::default());
/// io.ns("/", |socket| {
///     // Client: socket.emit("join", "rust")
///     socket.on("join", |socket, event| {
///         if let Ok(room) = event.arg::<String>(0) {
///             let _ = socket.join(&room);
///         }
///     });
///     // Client: socket.emit("chat", { room: "rust", text: "hi" })
///     socket.on("chat", |socket, event| {
///         if let Ok(chat) = event.arg::<Chat>(0) {
///             // Everyone else in the room.
///             let _ = socket.to(chat.room.clone()).emit("chat", &chat);
///         }
///     });
/// });
/// assert_eq!(io.socket_count(), 0); // no client yet
/// # use switchboard_async::engineio::{Routed, WsCommand, WsCommands};
/// # use switchboard_core::{http::{Limits, Request}, ws::Message};
/// # // In-memory clients, no network: `open()` connects one over WebSocket, `send` hands the server a packet from it, `recv` takes what the server sent it.
/// # let request = Request::parse(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", &Limits::default()).unwrap().unwrap().0;
/// # let open = || match io.engine().handle_request(&request, Default::default()) { Routed::WebSocket(conn, mut queue) => { recv(&mut queue); (conn, queue) } _ => unreachable!() };
/// # let send = |conn, packet: &str| io.engine().ws_message(conn, Message::text(packet.to_owned()));
/// # fn recv(queue: &mut WsCommands) -> Vec<String> { std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect() }
/// # let ((a, mut qa), (b, mut qb), (c, mut qc)) = (open(), open(), open());
/// # for conn in [a, b, c] { send(conn, "40"); }
/// # assert_eq!(io.socket_count(), 3);
/// # send(a, r#"42["join","rust"]"#);
/// # send(b, r#"42["join","rust"]"#);
/// # (recv(&mut qa), recv(&mut qb), recv(&mut qc));
/// # send(a, r#"42["chat",{"room":"rust","text":"hi"}]"#);
/// # assert_eq!(recv(&mut qb), [r#"42["chat",{"room":"rust","text":"hi"}]"#]);
/// # assert!(recv(&mut qa).is_empty() && recv(&mut qc).is_empty());
/// ```
#[derive(Clone)]
pub struct SocketIo {
    hub: Arc<Hub>,
}

impl fmt::Debug for SocketIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketIo").finish_non_exhaustive()
    }
}

impl SocketIo {
    /// A server with no namespaces yet. Its async handlers run on the
    /// runtime of the server it is mounted on (see
    /// [`SocketIo::set_spawner`]).
    pub fn new(config: SocketIoConfig) -> Self {
        let hub = Arc::new_cyclic(|this: &Weak<Hub>| Hub {
            core: Mutex::new(Core::new(config.socketio)),
            engine: std::sync::OnceLock::new(),
            outbox: Mutex::new(Outbox::default()),
            flushing: Mutex::new(()),
            events: OrderedDispatch::with_shards(crate::engineio::default_shards()),
            handler_runner: std::sync::OnceLock::new(),
            namespaces: RwLock::new(HashMap::new()),
            dynamic: RwLock::new(Vec::new()),
            sockets: RwLock::new(IdMap::default()),
            acks: Mutex::new(IdMap::default()),
            spawner: std::sync::OnceLock::new(),
            timer: TimerSignal::default(),
            timer_deadline: Mutex::new(None),
            max_pending_events: config.max_pending_events.max(1),
            running: Arc::default(),
            this: this.clone(),
        });
        let engine = EngineIo::new(
            config.engine,
            EngineEvents {
                hub: Arc::downgrade(&hub),
            },
        );
        let _ = hub.engine.set(engine);
        SocketIo { hub }
    }

    /// Runs async handlers through `spawner` (a runtime's spawn). Mounting
    /// the server with `Routes::socketio` sets the runtime's; only the
    /// first call counts. Until one is set, an async handler runs on a
    /// thread of its own.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    ///
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// // With tokio: io.set_spawner(Arc::new(|task| { tokio::spawn(task); }));
    /// io.set_spawner(Arc::new(|task| {
    ///     std::thread::spawn(move || futures_executor::block_on(task));
    /// }));
    /// ```
    pub fn set_spawner(&self, spawner: Spawner) {
        let _ = self.hub.spawner.set(spawner);
    }

    /// Runs each socket's sync handlers through `runner` rather than on the
    /// thread or task that received the event: `runner` gets a job per
    /// socket with events waiting, which delivers them in order. With a
    /// thread pool as runner, a handler may block, even for an ack of its
    /// own socket, while its connection goes on reading (python-socketio's
    /// threading mode). `switchboard-threads` installs its pool when the
    /// server is mounted with its `Routes::socketio`; on async runtimes
    /// handlers run in place (use async handlers for slow work). Only the
    /// first call counts.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    ///
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.set_handler_runner(Arc::new(|job| {
    ///     std::thread::spawn(job);
    /// }));
    /// ```
    pub fn set_handler_runner(&self, runner: HandlerRunner) {
        let _ = self.hub.handler_runner.set(runner);
    }

    /// The Engine.IO endpoint to mount (at `/socket.io/` by convention).
    ///
    /// ```
    /// # use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// let engine = io.engine();
    /// assert_eq!(engine.session_count(), 0); // no client connected
    /// ```
    pub fn engine(&self) -> &EngineIo {
        self.hub.engine.get().expect("set at construction")
    }

    /// The server's timer (connect and ack timeouts), for a runtime to
    /// drive.
    ///
    /// ```
    /// use std::time::Instant;
    /// # use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    ///
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// let timer = io.timed();
    /// // Runs what is due and says when to come back: nothing waits yet.
    /// assert_eq!(timer.run_timers(Instant::now()), None);
    /// ```
    pub fn timed(&self) -> Arc<dyn Timed> {
        self.hub.clone()
    }

    /// Accepts connections to namespace `path`, handing each new socket to
    /// `on_connect` (a sync handler). It runs before the socket's events
    /// are handled, so the handlers it registers see them all. Another call
    /// for the same `path` replaces its handlers, for the clients that
    /// connect after it.
    ///
    /// The client's CONNECT answer leaves when `on_connect` returns, or
    /// with its first emit (which it precedes), as with Node's server: the
    /// rooms `on_connect` joins before it emits hold the socket by the
    /// time the client learns it is connected.
    ///
    /// ```
    /// use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    ///
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     println!("{} connected", socket.id());
    ///     socket.on("echo", |socket, event| {
    ///         let _ = socket.emit("echo", &event.payload());
    ///     });
    /// });
    /// io.ns("/admin", |socket| {
    ///     let _ = socket.emit("welcome", "admin area");
    /// });
    /// assert!(io.sockets("/").is_empty() && io.sockets("/admin").is_empty());
    /// ```
    pub fn ns(&self, path: &str, on_connect: impl Fn(Socket) + Send + Sync + 'static) {
        self.ns_with(path, |ns| ns, on_connect)
    }

    /// Like [`SocketIo::ns`], with middlewares set up by `setup`: they run in
    /// order when a client asks to join, the first [`ConnectError`] refuses
    /// it (the client's `connect_error` handler gets its message and data),
    /// and `on_connect` runs for the clients they all let through.
    ///
    /// A client connecting with `io({ auth: { token: "s3cret" } })` gets in;
    /// any other gets `err.message == "not authorized"`:
    ///
    /// ```
    /// use serde_json::json;
    /// use switchboard_async::socketio::{ConnectError, SocketIo, SocketIoConfig};
    ///
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns_with(
    ///     "/",
    ///     |ns| {
    ///         ns.middleware(|handshake| match handshake.auth["token"].as_str() {
    ///             Some("s3cret") => Ok(()),
    ///             _ => Err(ConnectError::new("not authorized")
    ///                 .with_data(json!({ "hint": "log in first" }))),
    ///         })
    ///     },
    ///     |socket| {
    ///         let _ = socket.emit("welcome", &());
    ///     },
    /// );
    /// # use switchboard_async::engineio::{Routed, WsCommand, WsCommands};
    /// # use switchboard_core::{http::{Limits, Request}, ws::Message};
    /// # // In-memory clients, no network: `open()` connects one over WebSocket, `send` hands the server a packet from it, `recv` takes what the server sent it.
    /// # let request = Request::parse(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", &Limits::default()).unwrap().unwrap().0;
    /// # let open = || match io.engine().handle_request(&request, Default::default()) { Routed::WebSocket(conn, mut queue) => { recv(&mut queue); (conn, queue) } _ => unreachable!() };
    /// # let send = |conn, packet: &str| io.engine().ws_message(conn, Message::text(packet.to_owned()));
    /// # fn recv(queue: &mut WsCommands) -> Vec<String> { std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect() }
    /// # let ((a, mut qa), (b, mut qb)) = (open(), open());
    /// # send(a, r#"40{"token":"guess"}"#);
    /// # assert_eq!(recv(&mut qa), [r#"44{"message":"not authorized","data":{"hint":"log in first"}}"#]);
    /// # send(b, r#"40{"token":"s3cret"}"#);
    /// # let sent = recv(&mut qb);
    /// # assert!(sent[0].starts_with(r#"40{"sid":"#) && sent[1] == r#"42["welcome"]"#);
    /// # assert_eq!(io.socket_count(), 1);
    /// ```
    pub fn ns_with(
        &self,
        path: &str,
        setup: impl FnOnce(Namespace) -> Namespace,
        on_connect: impl Fn(Socket) + Send + Sync + 'static,
    ) {
        self.add_namespace(path, setup, Callback::Sync(Arc::new(on_connect)));
    }

    /// Like [`SocketIo::ns`] with an async connection handler. The client is
    /// accepted first; the handler then runs in place up to its first
    /// `.await` that waits, and on the runtime from there, as a JavaScript
    /// `async` connection listener does. Register the socket's event
    /// handlers before the handler first waits: the socket's events do not
    /// wait for the rest of it, and an event with no handler is dropped.
    ///
    /// ```
    /// use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    ///
    /// async fn load_history(room: &str) -> Vec<String> {
    ///     vec![format!("welcome to {room}")] // a database query, say
    /// }
    ///
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns_async("/", |socket| async move {
    ///     let history = load_history("lobby").await;
    ///     let _ = socket.emit("history", &(history,)); // one argument, an array
    /// });
    /// ```
    pub fn ns_async<F, Fut>(&self, path: &str, on_connect: F)
    where
        F: Fn(Socket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let f: Arc<dyn Fn(Socket) -> BoxFuture + Send + Sync> =
            Arc::new(move |socket| Box::pin(on_connect(socket)));
        self.add_namespace(path, |ns| ns, Callback::Async(f));
    }

    /// Accepts connections to every namespace `matches` says yes to (e.g.
    /// `/room-*`), all sharing these middlewares and handlers. Namespaces of
    /// [`ns`](SocketIo::ns) are tried first, then these in the order they
    /// were added; [`Socket::namespace`] tells which one a socket joined.
    ///
    /// ```
    /// use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    ///
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// // Client: io("https://example.com/game-7")
    /// io.dynamic_ns(
    ///     |name| name.starts_with("/game-"),
    ///     |ns| ns,
    ///     |socket| {
    ///         // The others in the same game hear of the newcomer.
    ///         let _ = socket.broadcast().emit("joined", socket.id().as_ref());
    ///     },
    /// );
    /// # use switchboard_async::engineio::{Routed, WsCommand, WsCommands};
    /// # use switchboard_core::{http::{Limits, Request}, ws::Message};
    /// # // In-memory clients, no network: `open()` connects one over WebSocket, `send` hands the server a packet from it, `recv` takes what the server sent it.
    /// # let request = Request::parse(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", &Limits::default()).unwrap().unwrap().0;
    /// # let open = || match io.engine().handle_request(&request, Default::default()) { Routed::WebSocket(conn, mut queue) => { recv(&mut queue); (conn, queue) } _ => unreachable!() };
    /// # let send = |conn, packet: &str| io.engine().ws_message(conn, Message::text(packet.to_owned()));
    /// # fn recv(queue: &mut WsCommands) -> Vec<String> { std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect() }
    /// # let ((a, mut qa), (b, mut qb)) = (open(), open());
    /// # send(a, "40/game-7,");
    /// # assert!(recv(&mut qa)[0].starts_with(r#"40/game-7,{"sid":"#));
    /// # send(b, "40/game-7,");
    /// # recv(&mut qb);
    /// # assert!(recv(&mut qa)[0].starts_with(r#"42/game-7,["joined","#));
    /// # assert_eq!(io.sockets("/game-7")[0].namespace(), "/game-7");
    /// # send(a, "40/chat,");
    /// # assert_eq!(recv(&mut qa), [r#"44/chat,{"message":"Invalid namespace"}"#]);
    /// ```
    pub fn dynamic_ns(
        &self,
        matches: impl Fn(&str) -> bool + Send + Sync + 'static,
        setup: impl FnOnce(Namespace) -> Namespace,
        on_connect: impl Fn(Socket) + Send + Sync + 'static,
    ) {
        let handlers = Arc::new(NamespaceHandlers {
            middlewares: setup(Namespace {
                middlewares: Vec::new(),
            })
            .middlewares,
            on_connect: Callback::Sync(Arc::new(on_connect)),
        });
        let mut dynamic = self
            .hub
            .dynamic
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        lock(&self.hub.core).add_dynamic_namespace(Box::new(matches));
        dynamic.push(handlers);
    }

    fn add_namespace(
        &self,
        path: &str,
        setup: impl FnOnce(Namespace) -> Namespace,
        on_connect: Callback<Socket>,
    ) {
        let handlers = Arc::new(NamespaceHandlers {
            middlewares: setup(Namespace {
                middlewares: Vec::new(),
            })
            .middlewares,
            on_connect,
        });
        self.hub
            .namespaces
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(path.to_owned(), handlers);
        lock(&self.hub.core).add_namespace(path);
    }

    /// Broadcasts in namespace `path`: to all of its sockets, or to some
    /// rooms of it with [`Broadcast::to`].
    ///
    /// ```
    /// use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    ///
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/admin", |_socket| {});
    /// // From anywhere: another thread, a timer, an HTTP route.
    /// let reached = io.of("/admin").emit("alert", "restarting in 5 minutes")?;
    /// assert_eq!(reached, 0); // nobody connected yet
    /// # Ok::<(), switchboard_async::socketio::EmitError>(())
    /// ```
    pub fn of(&self, path: &str) -> Broadcast {
        Broadcast {
            hub: self.hub.clone(),
            target: BroadcastTarget::namespace(path),
        }
    }

    /// Broadcasts to `room` of namespace `/`.
    ///
    /// ```
    /// # use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     let _ = socket.join("news");
    /// });
    /// let reached = io.to("news").emit("headline", &("Rust 2024 is out", 1))?;
    /// assert_eq!(reached, 0);
    /// # Ok::<(), switchboard_async::socketio::EmitError>(())
    /// ```
    pub fn to(&self, room: impl Into<String>) -> Broadcast {
        self.of("/").to(room)
    }

    /// Emits to every socket of namespace `/`; returns how many it reached.
    /// A reserved event name (`connect`, `disconnect`, ...) fails with
    /// [`EmitError::Encode`].
    ///
    /// ```
    /// # use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |_socket| {});
    /// assert_eq!(io.emit("tick", &42).unwrap(), 0);
    /// assert!(io.emit("disconnect", &()).is_err());
    /// ```
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, args: &T) -> Result<usize, EmitError> {
        self.of("/").emit(event, args)
    }

    /// The connected sockets of namespace `path`.
    ///
    /// ```
    /// # use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |_socket| {});
    /// // Say goodbye to everyone, then let them go.
    /// for socket in io.sockets("/") {
    ///     let _ = socket.emit("bye", "the server is shutting down");
    ///     socket.disconnect();
    /// }
    /// assert!(io.sockets("/").is_empty());
    /// ```
    pub fn sockets(&self, path: &str) -> Vec<Socket> {
        let ids = lock(&self.hub.core).sockets_of(path);
        ids.into_iter()
            .filter_map(|id| self.hub.socket(&id))
            .collect()
    }

    /// How many sockets are connected, in every namespace.
    ///
    /// ```
    /// # use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     // Tell everyone how many are online.
    ///     let online = socket.io().socket_count();
    ///     let _ = socket.io().emit("online", &online);
    /// });
    /// assert_eq!(io.socket_count(), 0);
    /// ```
    pub fn socket_count(&self) -> usize {
        lock(&self.hub.core).socket_count()
    }
}

impl Timed for Hub {
    fn run_timers(&self, now: Instant) -> Option<Instant> {
        self.with_core(|core| core.handle_timeout(now));
        // Recorded under the core's lock, as `with_core` compares a new
        // deadline with the record: one added in between would find a
        // record already run, not wake the timer, and be overwritten.
        let core = lock(&self.core);
        let next = core.poll_timeout();
        #[cfg(test)]
        tests::between_read_and_record();
        *lock(&self.timer_deadline) = next;
        drop(core);
        next
    }

    fn timer_signal(&self) -> &TimerSignal {
        &self.timer
    }
}

/// The Socket.IO server as its Engine.IO endpoint's event handler.
struct EngineEvents {
    hub: Weak<Hub>,
}

impl engineio::EventHandler for EngineEvents {
    fn handle(&self, _: &EngineIo, event: EngineEvent) {
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        let now = Instant::now();
        hub.with_core(|core| match event {
            EngineEvent::Open { sid, version, .. } => core.handle_open(&sid, version, now),
            EngineEvent::Message { sid, data } => core.handle_message(&sid, data, now),
            EngineEvent::Close { sid, reason } => core.handle_close(&sid, reason),
        })
    }

    /// Room while every socket of the session has at most half of
    /// [`SocketIoConfig::max_pending_events`] events waiting for its
    /// handlers and async handlers running: a client's burst then waits
    /// in TCP instead of disconnecting its socket.
    fn has_room(&self, sid: &str) -> bool {
        let Some(hub) = self.hub.upgrade() else {
            return true;
        };
        hub.session_backlog(sid).is_empty()
    }

    /// While the whole server's backlog is at most half of one socket's
    /// limit, no socket can be past half: the usual case, told without
    /// looking through the sockets.
    fn may_lack_room(&self) -> bool {
        self.hub.upgrade().is_some_and(|hub| {
            hub.events.waiting() + hub.running.load(Ordering::Relaxed) > hub.max_pending_events / 2
        })
    }

    fn no_room_made(&self, sid: &str) {
        if let Some(hub) = self.hub.upgrade() {
            for entry in hub.session_backlog(sid) {
                entry.stuck.store(true, Ordering::Relaxed);
            }
        }
    }
}

impl Hub {
    /// The sockets of Engine.IO session `sid` with more than half of
    /// `max_pending_events` events waiting for their handlers or async
    /// handlers running, and not stuck (see [`SocketEntry::stuck`]).
    fn session_backlog(&self, sid: &str) -> Vec<Arc<SocketEntry>> {
        let half = self.max_pending_events / 2;
        let sockets: Vec<(SocketId, Arc<SocketEntry>)> = self
            .sockets
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, entry)| &*entry.handshake.sid == sid)
            .map(|(id, entry)| (id.clone(), entry.clone()))
            .collect();
        sockets
            .into_iter()
            .filter(|(id, entry)| {
                !entry.stuck.load(Ordering::Relaxed)
                    && (entry.running.load(Ordering::Relaxed) > half
                        || self.events.queued(&(id.clone(), Lane::Events)) > half)
            })
            .map(|(_, entry)| entry)
            .collect()
    }

    fn socket(self: &Arc<Self>, id: &SocketId) -> Option<Socket> {
        let entry = self
            .sockets
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()?;
        Some(Socket {
            id: id.clone(),
            entry,
            hub: self.clone(),
        })
    }

    /// Runs `f` on the core, then sends what it produced and hands out its
    /// events, both outside the lock and in order.
    fn with_core<T>(&self, f: impl FnOnce(&mut Core) -> T) -> T {
        let result = {
            let mut core = lock(&self.core);
            let result = f(&mut core);
            loop {
                self.queue_transmits(&mut core);
                let events = std::iter::from_fn(|| core.poll_event()).map(|event| {
                    let lane = match event {
                        ServerEvent::Ack { .. } | ServerEvent::AckFailed { .. } => Lane::Acks,
                        _ => Lane::Events,
                    };
                    ((event.socket().clone(), lane), event)
                });
                let overflowed = self
                    .events
                    .push_all_bounded(events, self.max_pending_events);
                if overflowed.is_empty() {
                    break;
                }
                // Ack answers are bounded by the acks the server asked for.
                for (socket, _) in overflowed.iter().filter(|(_, lane)| *lane == Lane::Events) {
                    self.warn_overflow(socket);
                    core.disconnect(socket);
                }
            }
            let next = core.poll_timeout();
            let mut deadline = lock(&self.timer_deadline);
            if next.is_some_and(|next| deadline.is_none_or(|current| next < current)) {
                *deadline = next;
                self.timer.wake();
            }
            result
        };
        self.flush();
        self.deliver();
        result
    }

    /// Moves the core's transmits to the outbox. One for a session whose
    /// CONNECT answer is held goes after it: the answer is released first.
    fn queue_transmits(&self, core: &mut Core) {
        let mut outbox = lock(&self.outbox);
        if outbox.held.is_empty() {
            outbox
                .queue
                .extend(std::iter::from_fn(|| core.poll_transmit()));
            return;
        }
        while let Some(transmit) = core.poll_transmit() {
            let sids: &[Arc<str>] = match &transmit {
                Transmit::Send { sid, .. }
                | Transmit::SendVolatile { sid, .. }
                | Transmit::Close { sid } => std::slice::from_ref(sid),
                Transmit::SendMany { sids, .. } => sids,
            };
            for sid in sids {
                outbox.release(sid);
            }
            outbox.queue.push_back(transmit);
        }
    }

    /// Accepts `socket`, holding its CONNECT answer back until the guard
    /// is dropped or the session is sent anything else: what the
    /// connection handler does before it first emits (joining rooms,
    /// above all) is done before the client learns it is connected, as
    /// with Node's server, where the answer leaves after the connection
    /// listener returns.
    fn accept_held(&self, socket: &SocketId) -> Result<HeldConnect<'_>, EmitError> {
        let sid = self.with_core(|core| {
            core.accept(socket)?;
            let mut outbox = lock(&self.outbox);
            let mut sid = None;
            while let Some(transmit) = core.poll_transmit() {
                match &transmit {
                    Transmit::Send { sid: to, .. } if sid.as_ref().is_none_or(|s| s == to) => {
                        sid = Some(to.clone());
                        outbox.held.push((to.clone(), transmit));
                    }
                    _ => outbox.queue.push_back(transmit),
                }
            }
            Ok::<_, EmitError>(sid)
        })?;
        Ok(HeldConnect { hub: self, sid })
    }

    fn warn_overflow(&self, socket: &SocketId) {
        tracing::warn!(
            %socket,
            max_pending_events = self.max_pending_events,
            "a socket's events outran its handlers; disconnected it"
        );
    }

    /// Hands what the core sent to the Engine.IO endpoint, in order, one
    /// caller at a time: everything queued goes over in one batch (one
    /// lock and one routing pass of the endpoint).
    fn flush(&self) {
        let Some(engine) = self.engine.get() else {
            return;
        };
        let mut batch = VecDeque::new();
        loop {
            let Ok(guard) = self.flushing.try_lock() else {
                return;
            };
            loop {
                std::mem::swap(&mut batch, &mut lock(&self.outbox).queue);
                if batch.is_empty() {
                    break;
                }
                engine.batch(|engine| {
                    for transmit in batch.drain(..) {
                        apply(engine, transmit);
                    }
                });
            }
            drop(guard);
            // Queued after the last look but before the unlock, by a
            // caller that found the lock taken: send it now.
            if lock(&self.outbox).queue.is_empty() {
                return;
            }
        }
    }

    /// Hands the core's events to the handlers: in order per socket (and
    /// lane), concurrently with other sockets, in place or through the
    /// handler runner.
    fn deliver(&self) {
        if self.events.is_idle() {
            return;
        }
        let Some(hub) = self.this.upgrade() else {
            return;
        };
        let Some(runner) = self.handler_runner.get() else {
            self.events
                .deliver(|event| run_handler(|| hub.dispatch(event)));
            return;
        };
        while let Some(key) = self.events.take_ready() {
            let hub = hub.clone();
            runner(Box::new(move || {
                hub.events
                    .deliver_taken(key, |event| run_handler(|| hub.dispatch(event)));
            }));
        }
    }

    /// Runs an async event handler, in place up to its first wait and then
    /// in a task of its own, counted among the socket's running handlers
    /// until it ends; past
    /// [`SocketIoConfig::max_pending_events`] of them the event is dropped
    /// and the socket disconnected.
    fn spawn_event_handler(
        &self,
        handler: &Arc<dyn Fn((Socket, Event)) -> BoxFuture + Send + Sync>,
        socket: Socket,
        event: Event,
    ) {
        /// Counts the handler out when its task ends, or is dropped unrun:
        /// progress, so its socket's connection waits for its backlog
        /// again.
        struct Running(Arc<SocketEntry>, Arc<AtomicUsize>);
        impl Drop for Running {
            fn drop(&mut self) {
                self.0.running.fetch_sub(1, Ordering::Relaxed);
                self.1.fetch_sub(1, Ordering::Relaxed);
                self.0.stuck.store(false, Ordering::Relaxed);
            }
        }
        self.running.fetch_add(1, Ordering::Relaxed);
        let running = Running(socket.entry.clone(), self.running.clone());
        if running.0.running.fetch_add(1, Ordering::Relaxed) >= self.max_pending_events {
            drop(running);
            self.warn_overflow(&socket.id);
            self.with_core(|core| core.disconnect(&socket.id));
            return;
        }
        let mut handling = handler((socket, event));
        if poll_in_place(&mut handling) {
            return;
        }
        self.spawn(async move {
            let _running = running;
            handling.await;
        });
    }

    fn run<A: Send + 'static>(&self, callback: &Callback<A>, arg: A) {
        match callback {
            Callback::Sync(f) => f(arg),
            Callback::Async(f) => self.start(f(arg)),
        }
    }

    /// Runs an async connection or disconnection handler here up to its
    /// first wait, and the rest on the runtime, as a JavaScript `async`
    /// listener runs: the event handlers it registers (and the rooms it
    /// joins) before it first waits are in place before the socket's next
    /// event is dispatched.
    fn start(&self, mut handler: BoxFuture) {
        if !poll_in_place(&mut handler) {
            self.spawn(handler);
        }
    }

    /// Runs an async handler on the runtime's executor (on a thread of its
    /// own before the server is mounted on one).
    fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        spawn_handler(self.spawner.get(), future);
    }

    fn dispatch(self: &Arc<Self>, event: ServerEvent) {
        match event {
            ServerEvent::Connect {
                socket,
                sid,
                namespace,
                matched,
                auth,
            } => {
                let handlers = match matched {
                    NamespaceMatch::Static => self
                        .namespaces
                        .read()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get(&*namespace)
                        .cloned(),
                    NamespaceMatch::Dynamic(index) => self
                        .dynamic
                        .read()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get(index)
                        .cloned(),
                };
                let Some(handlers) = handlers else {
                    self.with_core(|core| core.reject(&socket, "Invalid namespace", None));
                    return;
                };
                let handshake = Handshake {
                    namespace: namespace.to_string(),
                    auth: auth.to_value(),
                    sid,
                };
                // A middleware that panics refuses the client: it must hear
                // a verdict, or it waits for one (and its CONNECTs are
                // ignored) for as long as its connection lasts.
                let verdict = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    handlers
                        .middlewares
                        .iter()
                        .find_map(|check| check(&handshake).err())
                }));
                let refusal = verdict.unwrap_or_else(|panic| {
                    log_handler_panic(&*panic);
                    Some(ConnectError::new(MIDDLEWARE_PANICKED))
                });
                if let Some(refusal) = refusal {
                    let data = refusal
                        .data
                        .as_ref()
                        .and_then(|data| RawJson::from_serialize(data).ok());
                    self.with_core(|core| core.reject(&socket, &refusal.message, data.as_ref()));
                    return;
                }
                let entry = Arc::new(SocketEntry {
                    namespace: namespace.to_string(),
                    handshake,
                    handlers: RwLock::new(SocketHandlers::default()),
                    extensions: Mutex::new(HashMap::new()),
                    running: AtomicUsize::new(0),
                    stuck: AtomicBool::new(false),
                    rooms_left: OnceLock::new(),
                });
                self.sockets
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(socket.clone(), entry.clone());
                let Ok(held) = self.accept_held(&socket) else {
                    // The session went away meanwhile.
                    self.sockets
                        .write()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&socket);
                    return;
                };
                let socket = Socket {
                    id: socket,
                    entry,
                    hub: self.clone(),
                };
                self.run(&handlers.on_connect, socket);
                drop(held);
            }
            ServerEvent::Event { socket, packet } => {
                let Some(socket) = self.socket(&socket) else {
                    return;
                };
                let Some(name) = packet.event_name().map(|n| n.into_owned()) else {
                    return;
                };
                let handler = {
                    let handlers = socket
                        .entry
                        .handlers
                        .read()
                        .unwrap_or_else(PoisonError::into_inner);
                    handlers
                        .events
                        .get(&name)
                        .or(handlers.any.as_ref())
                        .cloned()
                };
                let Some(handler) = handler else {
                    tracing::trace!(event = %name, "no handler; ignored");
                    return;
                };
                let ack = packet.id.map(|id| Ack {
                    socket: socket.clone(),
                    id,
                });
                let event = Event::new(name, packet, ack);
                match &handler {
                    Callback::Async(f) => self.spawn_event_handler(f, socket, event),
                    Callback::Sync(f) => {
                        // On a pool, a handler that ends is progress: its
                        // connection waits for its backlog again.
                        let pooled = self.handler_runner.get().map(|_| socket.entry.clone());
                        f((socket, event));
                        if let Some(entry) = pooled {
                            entry.stuck.store(false, Ordering::Relaxed);
                        }
                    }
                }
            }
            ServerEvent::Ack { socket, id, packet } => {
                let slot = lock(&self.acks).remove(&(socket, id));
                let answer = Payload::from_packet(&packet).map_err(|error| {
                    tracing::debug!(%error, "unreadable ack");
                    AckError::Disconnected
                });
                complete(slot, answer);
            }
            ServerEvent::AckFailed { socket, id, error } => {
                let slot = lock(&self.acks).remove(&(socket, id));
                complete(slot, Err(error));
            }
            ServerEvent::Disconnect {
                socket,
                reason,
                rooms,
                ..
            } => {
                let Some(entry) = self
                    .sockets
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&socket)
                else {
                    return;
                };
                // No event of it comes any more: its handlers go, and with
                // them the clones of the socket they may hold, which would
                // otherwise keep it (and all they hold) alive for ever.
                // (Dropped after the lock is let go.)
                let handlers = std::mem::replace(
                    &mut *entry
                        .handlers
                        .write()
                        .unwrap_or_else(PoisonError::into_inner),
                    SocketHandlers {
                        closed: true,
                        ..SocketHandlers::default()
                    },
                );
                let callbacks = handlers.disconnect;
                let _ = entry.rooms_left.set(rooms);
                let socket = Socket {
                    id: socket,
                    entry,
                    hub: self.clone(),
                };
                // Each on its own: one that panics skips none of the others.
                for callback in &callbacks {
                    run_handler(|| self.run(callback, (socket.clone(), reason)));
                }
            }
        }
    }
}

/// Carries out one of the core's transmits on the Engine.IO endpoint.
fn apply(engine: &mut engineio::Batch<'_>, transmit: Transmit) {
    match transmit {
        Transmit::Send { sid, message } => {
            if let Err(error) = engine.send(&sid, message) {
                tracing::debug!(%sid, %error, "Socket.IO packet not sent");
            }
        }
        Transmit::SendMany { sids, messages } => {
            for message in &messages {
                engine.send_many(sids.iter().map(|sid| &**sid), message);
            }
        }
        Transmit::SendVolatile { sid, messages } => {
            if let Ok(false) = engine.send_volatile(&sid, messages) {
                tracing::trace!(%sid, "volatile packet dropped");
            }
        }
        Transmit::Close { sid } => engine.close(&sid),
    }
}

/// Polls an async handler once, here: whether it is done (or panicked,
/// which is logged). One that is not goes on in a spawned task, which is
/// polled at once with its own waker, so nothing woken meanwhile is missed.
fn poll_in_place(handler: &mut BoxFuture) -> bool {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        handler.as_mut().poll(&mut cx)
    })) {
        Ok(Poll::Ready(())) => true,
        Ok(Poll::Pending) => false,
        Err(panic) => {
            log_handler_panic(&*panic);
            true
        }
    }
}

/// A CONNECT answer held back by [`Hub::accept_held`]: sent when this is
/// dropped (after the connection handler, or when it panics), if nothing
/// sent it earlier.
struct HeldConnect<'a> {
    hub: &'a Hub,
    sid: Option<Arc<str>>,
}

impl Drop for HeldConnect<'_> {
    fn drop(&mut self) {
        let Some(sid) = &self.sid else {
            return;
        };
        lock(&self.hub.outbox).release(sid);
        self.hub.flush();
    }
}

/// What the core sent, on its way to the Engine.IO endpoint.
#[derive(Default)]
struct Outbox {
    /// To send, in order.
    queue: VecDeque<Transmit>,
    /// CONNECT answers held back while their connection handler runs (see
    /// [`Hub::accept_held`]), by Engine.IO session.
    held: Vec<(Arc<str>, Transmit)>,
}

impl Outbox {
    /// Queues what is held for session `sid`, in order.
    fn release(&mut self, sid: &str) {
        if self.held.iter().any(|(held_sid, _)| **held_sid == *sid) {
            let (released, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
                .into_iter()
                .partition(|(held_sid, _)| **held_sid == *sid);
            self.held = kept;
            self.queue
                .extend(released.into_iter().map(|(_, transmit)| transmit));
        }
    }
}

pub(crate) fn complete(slot: Option<AckSlot>, answer: Result<Payload, AckError>) {
    match slot {
        Some(AckSlot::Callback(callback)) => callback(answer),
        Some(AckSlot::Channel(tx)) => {
            let _ = tx.send(answer);
        }
        Some(AckSlot::Group(group, socket)) => group.answer(socket, answer),
        None => {}
    }
}

/// One client's connection to one namespace. Cloning is cheap; a clone
/// kept after the disconnect just fails to emit.
///
/// A namespace's connection handler gets one per client that joins, and
/// registers its event handlers on it:
///
/// ```
/// use switchboard_async::socketio::{Socket, SocketIo, SocketIoConfig};
///
/// fn on_connect(socket: Socket) {
///     println!("{} joined {}", socket.id(), socket.namespace());
///     let _ = socket.emit("welcome", &format!("you are {}", socket.id()));
///     socket.on("ping", |socket, _event| {
///         let _ = socket.emit("pong", &());
///     });
/// }
///
/// let io = SocketIo::new(SocketIoConfig::default());
/// io.ns("/", on_connect);
/// io.ns("/chat", on_connect);
/// ```
#[derive(Clone)]
pub struct Socket {
    id: SocketId,
    entry: Arc<SocketEntry>,
    hub: Arc<Hub>,
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.id)
            .field("namespace", &self.entry.namespace)
            .finish()
    }
}

impl Socket {
    /// The socket's id (also the name of a room it is always in). See
    /// [`Socket`] for an example.
    pub fn id(&self) -> &SocketId {
        &self.id
    }

    /// Its namespace.
    pub fn namespace(&self) -> &str {
        &self.entry.namespace
    }

    /// What the client sent when it connected: its `auth` payload
    /// (`io({ auth: { name: "ann" } })` on the client), the namespace and the
    /// Engine.IO session id.
    ///
    /// ```
    /// # use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     let name = socket.handshake().auth["name"].as_str().unwrap_or("stranger");
    ///     let _ = socket.emit("hello", &format!("hello, {name}"));
    /// });
    /// ```
    pub fn handshake(&self) -> &Handshake {
        &self.entry.handshake
    }

    /// The server handle (see [`SocketIo::socket_count`] for an example).
    pub fn io(&self) -> SocketIo {
        SocketIo {
            hub: self.hub.clone(),
        }
    }

    /// Handles event `event` with a sync handler (replacing an earlier
    /// one). A socket's events reach its handlers one at a time, in the
    /// order they arrived; other sockets' handlers may run at the same
    /// time on other threads. On the threads adapter a handler runs on a
    /// handler thread and may block, even waiting for an ack of its own
    /// socket ([`AckFuture::wait`]). On async runtimes it runs on the task
    /// that delivers the event (usually the socket's own connection), so
    /// blocking there holds that connection and a worker thread: use
    /// [`on_async`](Self::on_async) for slow work (see
    /// [`SocketIo::set_handler_runner`]).
    ///
    /// The reserved names (`disconnect`, `connect`, ...:
    /// [`RESERVED_EVENTS`](switchboard_core::socketio::RESERVED_EVENTS)) never
    /// come from a client, as in Node: the disconnection has
    /// [`on_disconnect`](Self::on_disconnect), and registering a reserved
    /// name logs a warning.
    ///
    /// ```
    /// use serde::Deserialize;
    /// use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    ///
    /// #[derive(Deserialize)]
    /// struct Move { x: i32, y: i32 }
    ///
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     // Client: socket.emit("move", { x: 1, y: 2 })
    ///     socket.on("move", |socket, event| match event.arg::<Move>(0) {
    ///         Ok(Move { x, y }) => {
    ///             let _ = socket.broadcast().emit("moved", &(socket.id().as_ref(), x, y));
    ///         }
    ///         Err(error) => {
    ///             let _ = socket.emit("error", &error.to_string());
    ///         }
    ///     });
    /// });
    /// ```
    pub fn on(&self, event: &str, handler: impl Fn(Socket, Event) + Send + Sync + 'static) {
        self.set_handler(event, Callback::Sync(Arc::new(move |(s, e)| handler(s, e))));
    }

    /// Handles event `event` with an async handler. Each call runs in place
    /// up to its first `.await` that waits, in the order of the socket's
    /// events (as a JavaScript `async` listener does), and on the runtime
    /// from there: a slow one holds back nothing, so the socket's handlers
    /// may run at the same time and finish in any order. One that never
    /// waits costs no task.
    ///
    /// ```
    /// use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    ///
    /// async fn search(query: &str) -> Vec<String> {
    ///     vec![format!("{query}: 3 results")] // a database or an HTTP API, say
    /// }
    ///
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     // Client: socket.emit("search", "rust", (results) => ...)
    ///     socket.on_async("search", |_socket, mut event| async move {
    ///         let query: String = event.arg(0).unwrap_or_default();
    ///         let results = search(&query).await;
    ///         if let Some(ack) = event.take_ack() {
    ///             let _ = ack.send(&(results,)); // one argument, an array
    ///         }
    ///     });
    /// });
    /// # use switchboard_async::engineio::{Routed, WsCommand, WsCommands};
    /// # use switchboard_core::{http::{Limits, Request}, ws::Message};
    /// # // In-memory clients, no network: `open()` connects one over WebSocket, `send` hands the server a packet from it, `recv` takes what the server sent it.
    /// # let request = Request::parse(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", &Limits::default()).unwrap().unwrap().0;
    /// # let open = || match io.engine().handle_request(&request, Default::default()) { Routed::WebSocket(conn, mut queue) => { recv(&mut queue); (conn, queue) } _ => unreachable!() };
    /// # let send = |conn, packet: &str| io.engine().ws_message(conn, Message::text(packet.to_owned()));
    /// # fn recv(queue: &mut WsCommands) -> Vec<String> { std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect() }
    /// # let (a, mut qa) = open();
    /// # send(a, "40");
    /// # recv(&mut qa);
    /// # send(a, r#"421["search","rust"]"#);
    /// # let mut answer = Vec::new();
    /// # for _ in 0..1000 {
    /// #     answer = recv(&mut qa);
    /// #     if !answer.is_empty() { break }
    /// #     std::thread::sleep(std::time::Duration::from_millis(10));
    /// # }
    /// # assert_eq!(answer, [r#"431[["rust: 3 results"]]"#]);
    /// ```
    pub fn on_async<F, Fut>(&self, event: &str, handler: F)
    where
        F: Fn(Socket, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let f: Arc<dyn Fn((Socket, Event)) -> BoxFuture + Send + Sync> =
            Arc::new(move |(s, e)| Box::pin(handler(s, e)));
        self.set_handler(event, Callback::Async(f));
    }

    /// Handles every event that has no handler of its own (replacing an
    /// earlier one); [`Event::name`] tells which it is.
    ///
    /// ```
    /// # use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     socket.on("chat", |_socket, _event| { /* ... */ });
    ///     socket.on_any(|socket, event| {
    ///         let _ = socket.emit("error", &format!("unknown event: {}", event.name()));
    ///     });
    /// });
    /// # use switchboard_async::engineio::{Routed, WsCommand, WsCommands};
    /// # use switchboard_core::{http::{Limits, Request}, ws::Message};
    /// # // In-memory clients, no network: `open()` connects one over WebSocket, `send` hands the server a packet from it, `recv` takes what the server sent it.
    /// # let request = Request::parse(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", &Limits::default()).unwrap().unwrap().0;
    /// # let open = || match io.engine().handle_request(&request, Default::default()) { Routed::WebSocket(conn, mut queue) => { recv(&mut queue); (conn, queue) } _ => unreachable!() };
    /// # let send = |conn, packet: &str| io.engine().ws_message(conn, Message::text(packet.to_owned()));
    /// # fn recv(queue: &mut WsCommands) -> Vec<String> { std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect() }
    /// # let (a, mut qa) = open();
    /// # send(a, "40");
    /// # recv(&mut qa);
    /// # send(a, r#"42["chat","hi"]"#);
    /// # send(a, r#"42["dance"]"#);
    /// # assert_eq!(recv(&mut qa), [r#"42["error","unknown event: dance"]"#]);
    /// ```
    pub fn on_any(&self, handler: impl Fn(Socket, Event) + Send + Sync + 'static) {
        let mut handlers = self
            .entry
            .handlers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if !handlers.closed {
            handlers.any = Some(Callback::Sync(Arc::new(move |(s, e)| handler(s, e))));
        }
    }

    /// Runs `handler` when the socket leaves its namespace, with the
    /// reason (every handler registered, in order). By then the socket has
    /// left its rooms and cannot emit, but [`rooms`](Self::rooms) still
    /// names the rooms it was in (as in Node's `disconnecting` listener and
    /// python-socketio's disconnect handler), so a broadcast to them
    /// reaches the others, and its [`extension`](Self::extension)s are
    /// still there. One that panics skips none of the others. A handler
    /// registered (with this or [`on`](Self::on)) once the socket has
    /// disconnected would never run, and is not kept.
    ///
    /// ```
    /// use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    ///
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     // Client: socket.emit("enter", "lobby")
    ///     socket.on("enter", |socket, event| {
    ///         if let Ok(room) = event.arg::<String>(0) {
    ///             let _ = socket.join(&room);
    ///         }
    ///     });
    ///     socket.on_disconnect(|socket, reason| {
    ///         // Whoever shared a room with it hears it, once.
    ///         let rooms = socket.rooms();
    ///         let others = rooms.into_iter().fold(socket.broadcast(), |to, room| to.to(room));
    ///         let _ = others.emit("left", &(socket.id().as_ref(), reason.as_str()));
    ///     });
    /// });
    /// # use switchboard_async::engineio::{Routed, WsCommand, WsCommands};
    /// # use switchboard_core::{http::{Limits, Request}, ws::Message};
    /// # // In-memory clients, no network: `open()` connects one over WebSocket, `send` hands the server a packet from it, `recv` takes what the server sent it.
    /// # let request = Request::parse(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", &Limits::default()).unwrap().unwrap().0;
    /// # let open = || match io.engine().handle_request(&request, Default::default()) { Routed::WebSocket(conn, mut queue) => { recv(&mut queue); (conn, queue) } _ => unreachable!() };
    /// # let send = |conn, packet: &str| io.engine().ws_message(conn, Message::text(packet.to_owned()));
    /// # fn recv(queue: &mut WsCommands) -> Vec<String> { std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect() }
    /// # let ((a, mut qa), (b, mut qb), (c, mut qc)) = (open(), open(), open());
    /// # for conn in [a, b] { send(conn, "40"); send(conn, r#"42["enter","lobby"]"#); send(conn, r#"42["enter","games"]"#); }
    /// # send(c, "40"); // not in the lobby
    /// # (recv(&mut qa), recv(&mut qb), recv(&mut qc));
    /// # send(a, "41"); // the client leaves the namespace
    /// # let left = recv(&mut qb);
    /// # assert_eq!(left.len(), 1, "{left:?}");
    /// # assert!(left[0].starts_with(r#"42["left","#), "{left:?}");
    /// # assert!(left[0].ends_with(r#","client namespace disconnect"]"#), "{left:?}");
    /// # assert_eq!(recv(&mut qc), Vec::<String>::new());
    /// ```
    pub fn on_disconnect(
        &self,
        handler: impl Fn(Socket, DisconnectReason) + Send + Sync + 'static,
    ) {
        let mut handlers = self
            .entry
            .handlers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if !handlers.closed {
            handlers
                .disconnect
                .push(Callback::Sync(Arc::new(move |(s, r)| handler(s, r))));
        }
    }

    fn set_handler(&self, event: &str, callback: Callback<(Socket, Event)>) {
        if is_reserved_event(event) {
            // Node's `socket.on("disconnect", ...)` habit: never called here.
            tracing::warn!(
                event,
                "a handler for a reserved event name never runs: clients cannot send it; \
                 use on_disconnect for the disconnection"
            );
        }
        let mut handlers = self
            .entry
            .handlers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if !handlers.closed {
            handlers.events.insert(event.to_owned(), callback);
        }
    }

    /// Emits `event` with `args` to this client (see
    /// [`encode_event`] for how
    /// `args` become arguments: a tuple or array spreads, anything else is
    /// one argument). Fails with [`EmitError::UnknownSocket`] once the
    /// socket is gone, and with [`EmitError::Encode`] for a reserved event
    /// name or arguments that do not serialize.
    ///
    /// ```
    /// use serde::Serialize;
    /// use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    ///
    /// #[derive(Serialize)]
    /// struct Score { player: String, points: u32 }
    ///
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     // Client: socket.on("hello", (text) => ...), and so on.
    ///     let _ = socket.emit("hello", "world"); // one argument
    ///     let _ = socket.emit("point", &(3, 4)); // a tuple: two arguments
    ///     let _ = socket.emit("ranks", &(vec![1, 2, 3],)); // one array
    ///     let _ = socket.emit("score", &Score { player: "ann".into(), points: 7 });
    ///     let _ = socket.emit("ready", &()); // no argument
    /// });
    /// # use switchboard_async::engineio::{Routed, WsCommand, WsCommands};
    /// # use switchboard_core::{http::{Limits, Request}, ws::Message};
    /// # // In-memory clients, no network: `open()` connects one over WebSocket, `send` hands the server a packet from it, `recv` takes what the server sent it.
    /// # let request = Request::parse(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", &Limits::default()).unwrap().unwrap().0;
    /// # let open = || match io.engine().handle_request(&request, Default::default()) { Routed::WebSocket(conn, mut queue) => { recv(&mut queue); (conn, queue) } _ => unreachable!() };
    /// # let send = |conn, packet: &str| io.engine().ws_message(conn, Message::text(packet.to_owned()));
    /// # fn recv(queue: &mut WsCommands) -> Vec<String> { std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect() }
    /// # let (a, mut qa) = open();
    /// # send(a, "40");
    /// # let sent = recv(&mut qa);
    /// # assert_eq!(sent[1..], [
    /// #     r#"42["hello","world"]"#,
    /// #     r#"42["point",3,4]"#,
    /// #     r#"42["ranks",[1,2,3]]"#,
    /// #     r#"42["score",{"player":"ann","points":7}]"#,
    /// #     r#"42["ready"]"#,
    /// # ]);
    /// ```
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, args: &T) -> Result<(), EmitError> {
        self.hub.with_core(|core| core.emit(&self.id, event, args))
    }

    /// Emits `event` only if the client's transport can take it now,
    /// dropping it otherwise (Node's `socket.volatile.emit`): for data that
    /// is stale by the time it could be sent.
    ///
    /// ```
    /// use std::time::Duration;
    /// # use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    /// # fn read_sensor() -> f64 { 21.5 }
    ///
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     // A live reading every 100 ms, for as long as the client stays.
    ///     std::thread::spawn(move || {
    ///         while socket.connected() {
    ///             let _ = socket.emit_volatile("temperature", &read_sensor());
    ///             std::thread::sleep(Duration::from_millis(100));
    ///         }
    ///     });
    /// });
    /// ```
    pub fn emit_volatile<T: Serialize + ?Sized>(
        &self,
        event: &str,
        args: &T,
    ) -> Result<(), EmitError> {
        self.hub
            .with_core(|core| core.emit_volatile(&self.id, event, args))
    }

    /// Emits `event` asking for an ack within `timeout`; `callback` gets
    /// the answer's arguments, or why none came ([`AckError::Timeout`], or
    /// [`AckError::Disconnected`] when the socket left first). Nothing
    /// waits for the answer, so a sync handler can ask and return.
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_async::socketio::{AckError, SocketIo, SocketIoConfig};
    ///
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     // Client: socket.on("nickname?", (callback) => callback("ann"))
    ///     let me = socket.clone();
    ///     let _ = socket.emit_with_ack_callback(
    ///         "nickname?",
    ///         &(),
    ///         Duration::from_secs(10),
    ///         move |answer| match answer {
    ///             Ok(args) => {
    ///                 let name: String = args.arg(0).unwrap_or_default();
    ///                 let _ = me.emit("welcome", &name);
    ///             }
    ///             Err(AckError::Timeout) => me.disconnect(),
    ///             Err(AckError::Disconnected) => {}
    ///         },
    ///     );
    /// });
    /// # use switchboard_async::engineio::{Routed, WsCommand, WsCommands};
    /// # use switchboard_core::{http::{Limits, Request}, ws::Message};
    /// # // In-memory clients, no network: `open()` connects one over WebSocket, `send` hands the server a packet from it, `recv` takes what the server sent it.
    /// # let request = Request::parse(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", &Limits::default()).unwrap().unwrap().0;
    /// # let open = || match io.engine().handle_request(&request, Default::default()) { Routed::WebSocket(conn, mut queue) => { recv(&mut queue); (conn, queue) } _ => unreachable!() };
    /// # let send = |conn, packet: &str| io.engine().ws_message(conn, Message::text(packet.to_owned()));
    /// # fn recv(queue: &mut WsCommands) -> Vec<String> { std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect() }
    /// # let (a, mut qa) = open();
    /// # send(a, "40");
    /// # assert_eq!(recv(&mut qa)[1], r#"420["nickname?"]"#);
    /// # send(a, r#"430["ann"]"#);
    /// # assert_eq!(recv(&mut qa), [r#"42["welcome","ann"]"#]);
    /// ```
    pub fn emit_with_ack_callback<T: Serialize + ?Sized>(
        &self,
        event: &str,
        args: &T,
        timeout: Duration,
        callback: impl FnOnce(Result<Payload, AckError>) + Send + 'static,
    ) -> Result<(), EmitError> {
        self.emit_with_ack_slot(event, args, timeout, AckSlot::Callback(Box::new(callback)))
    }

    /// Emits `event` asking for an ack within `timeout`; the returned
    /// [`AckFuture`] resolves with the answer (or blocks for it with
    /// [`AckFuture::wait`] on threads).
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    ///
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     socket.on_async("checkout", |socket, _event| async move {
    ///         // Client: socket.on("confirm", (total, callback) => callback(true))
    ///         let Ok(answer) = socket.emit_with_ack("confirm", &42.5, Duration::from_secs(30)) else {
    ///             return; // the socket is gone
    ///         };
    ///         let confirmed = match answer.await {
    ///             Ok(args) => args.arg::<bool>(0).unwrap_or(false),
    ///             Err(_) => false, // no answer in time, or the client left
    ///         };
    ///         let _ = socket.emit(if confirmed { "order placed" } else { "order cancelled" }, &());
    ///     });
    /// });
    /// ```
    pub fn emit_with_ack<T: Serialize + ?Sized>(
        &self,
        event: &str,
        args: &T,
        timeout: Duration,
    ) -> Result<AckFuture, EmitError> {
        let (tx, rx) = oneshot::channel();
        self.emit_with_ack_slot(event, args, timeout, AckSlot::Channel(tx))?;
        Ok(AckFuture { rx })
    }

    fn emit_with_ack_slot<T: Serialize + ?Sized>(
        &self,
        event: &str,
        args: &T,
        timeout: Duration,
        slot: AckSlot,
    ) -> Result<(), EmitError> {
        let mut slot = Some(slot);
        self.hub.with_core(|core| {
            let id = core.emit_with_ack(&self.id, event, args, timeout, Instant::now())?;
            // Registered before the packet leaves (the flush comes after).
            if let Some(slot) = slot.take() {
                lock(&self.hub.acks).insert((self.id.clone(), id), slot);
            }
            Ok(())
        })
    }

    /// Joins `room`; fails with `EmitError::TooManyRooms` once the socket
    /// is in `max_rooms_per_socket` rooms (its own included; default
    /// 4,096), and with `EmitError::RoomNameTooLong` for a name longer
    /// than `max_room_name_len` bytes (default 1,024); both set in
    /// [`SocketIoConfig::socketio`]. Joining a room it is in already
    /// succeeds.
    ///
    /// ```
    /// use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    ///
    /// let mut config = SocketIoConfig::default();
    /// config.socketio.max_rooms_per_socket = 2; // its own and one more
    /// let io = SocketIo::new(config);
    /// io.ns("/", |socket| {
    ///     // Client: socket.emit("join", "rust", (joined) => ...)
    ///     socket.on("join", |socket, mut event| {
    ///         let room: String = event.arg(0).unwrap_or_default();
    ///         let joined = socket.join(&room).is_ok();
    ///         if let Some(ack) = event.take_ack() {
    ///             let _ = ack.send(&joined);
    ///         }
    ///     });
    /// });
    /// # use switchboard_async::engineio::{Routed, WsCommand, WsCommands};
    /// # use switchboard_core::{http::{Limits, Request}, ws::Message};
    /// # // In-memory clients, no network: `open()` connects one over WebSocket, `send` hands the server a packet from it, `recv` takes what the server sent it.
    /// # let request = Request::parse(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", &Limits::default()).unwrap().unwrap().0;
    /// # let open = || match io.engine().handle_request(&request, Default::default()) { Routed::WebSocket(conn, mut queue) => { recv(&mut queue); (conn, queue) } _ => unreachable!() };
    /// # let send = |conn, packet: &str| io.engine().ws_message(conn, Message::text(packet.to_owned()));
    /// # fn recv(queue: &mut WsCommands) -> Vec<String> { std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect() }
    /// # let (a, mut qa) = open();
    /// # send(a, "40");
    /// # recv(&mut qa);
    /// # send(a, r#"420["join","rust"]"#);
    /// # send(a, r#"421["join","rust"]"#);
    /// # send(a, r#"422["join","go"]"#);
    /// # assert_eq!(recv(&mut qa), ["430[true]", "431[true]", "432[false]"]);
    /// ```
    pub fn join(&self, room: &str) -> Result<(), EmitError> {
        self.hub.with_core(|core| core.join(&self.id, room))
    }

    /// Leaves `room`.
    ///
    /// ```
    /// # use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     // Client: socket.emit("switch", "general")
    ///     socket.on("switch", |socket, event| {
    ///         let Ok(room) = event.arg::<String>(0) else { return };
    ///         let own = socket.id().to_string(); // stay in the room of its id
    ///         for old in socket.rooms().into_iter().filter(|old| *old != own) {
    ///             let _ = socket.leave(&old);
    ///         }
    ///         let _ = socket.join(&room);
    ///     });
    /// });
    /// # use switchboard_async::engineio::{Routed, WsCommand, WsCommands};
    /// # use switchboard_core::{http::{Limits, Request}, ws::Message};
    /// # // In-memory clients, no network: `open()` connects one over WebSocket, `send` hands the server a packet from it, `recv` takes what the server sent it.
    /// # let request = Request::parse(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", &Limits::default()).unwrap().unwrap().0;
    /// # let open = || match io.engine().handle_request(&request, Default::default()) { Routed::WebSocket(conn, mut queue) => { recv(&mut queue); (conn, queue) } _ => unreachable!() };
    /// # let send = |conn, packet: &str| io.engine().ws_message(conn, Message::text(packet.to_owned()));
    /// # fn recv(queue: &mut WsCommands) -> Vec<String> { std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect() }
    /// # let (a, _qa) = open();
    /// # send(a, "40");
    /// # send(a, r#"42["switch","random"]"#);
    /// # send(a, r#"42["switch","general"]"#);
    /// # let socket = &io.sockets("/")[0];
    /// # let mut rooms = socket.rooms();
    /// # rooms.sort();
    /// # let mut expected = vec!["general".to_owned(), socket.id().to_string()];
    /// # expected.sort();
    /// # assert_eq!(rooms, expected);
    /// ```
    pub fn leave(&self, room: &str) -> Result<(), EmitError> {
        self.hub.with_core(|core| core.leave(&self.id, room))
    }

    /// The rooms this socket is in, the one named by its id included. Once
    /// it has disconnected (see [`connected`](Self::connected)), the rooms
    /// it was in as it left, for its [`on_disconnect`](Self::on_disconnect)
    /// handlers; it is in none of them any more.
    ///
    /// ```
    /// # use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     // Client: socket.emit("my rooms", (rooms) => ...)
    ///     socket.on("my rooms", |socket, mut event| {
    ///         if let Some(ack) = event.take_ack() {
    ///             let _ = ack.send(&(socket.rooms(),));
    ///         }
    ///     });
    /// });
    /// ```
    pub fn rooms(&self) -> Vec<String> {
        if let Some(left) = self.entry.rooms_left.get() {
            return left.clone();
        }
        lock(&self.hub.core).rooms_of(&self.id)
    }

    /// How many sockets of this namespace are in `room`.
    ///
    /// ```
    /// # use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     let _ = socket.join("lobby");
    ///     let _ = socket.emit("players in the lobby", &socket.room_size("lobby"));
    /// });
    /// ```
    pub fn room_size(&self, room: &str) -> usize {
        lock(&self.hub.core).room_size(&self.entry.namespace, room)
    }

    /// Broadcasts to `room` of this namespace, leaving this socket out (more
    /// rooms with [`Broadcast::to`]).
    ///
    /// ```
    /// # use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     // Client: socket.emit("typing", "rust")
    ///     socket.on("typing", |socket, event| {
    ///         if let Ok(room) = event.arg::<String>(0) {
    ///             let _ = socket.to(room).emit("typing", socket.id().as_ref());
    ///         }
    ///     });
    /// });
    /// ```
    pub fn to(&self, room: impl Into<String>) -> Broadcast {
        self.broadcast().to(room)
    }

    /// Broadcasts to every other socket of this namespace.
    ///
    /// ```
    /// # use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     let _ = socket.broadcast().emit("user joined", socket.id().as_ref());
    /// });
    /// ```
    pub fn broadcast(&self) -> Broadcast {
        Broadcast {
            hub: self.hub.clone(),
            target: BroadcastTarget {
                except_socket: Some(self.id.clone()),
                ..BroadcastTarget::namespace(self.entry.namespace.clone())
            },
        }
    }

    /// Removes the socket from its namespace: the client gets a
    /// DISCONNECT (`io server disconnect`; it does not reconnect on its
    /// own, as it does after [`close_connection`](Self::close_connection)).
    ///
    /// ```
    /// # use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     socket.on("chat", |socket, event| {
    ///         let text: String = event.arg(0).unwrap_or_default();
    ///         if text.contains("buy now") {
    ///             socket.disconnect(); // no spam here
    ///         } else {
    ///             let _ = socket.broadcast().emit("chat", &text);
    ///         }
    ///     });
    /// });
    /// # use switchboard_async::engineio::{Routed, WsCommand, WsCommands};
    /// # use switchboard_core::{http::{Limits, Request}, ws::Message};
    /// # // In-memory clients, no network: `open()` connects one over WebSocket, `send` hands the server a packet from it, `recv` takes what the server sent it.
    /// # let request = Request::parse(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", &Limits::default()).unwrap().unwrap().0;
    /// # let open = || match io.engine().handle_request(&request, Default::default()) { Routed::WebSocket(conn, mut queue) => { recv(&mut queue); (conn, queue) } _ => unreachable!() };
    /// # let send = |conn, packet: &str| io.engine().ws_message(conn, Message::text(packet.to_owned()));
    /// # fn recv(queue: &mut WsCommands) -> Vec<String> { std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect() }
    /// # let (a, mut qa) = open();
    /// # send(a, "40");
    /// # recv(&mut qa);
    /// # send(a, r#"42["chat","buy now!"]"#);
    /// # assert_eq!(recv(&mut qa), ["41"]);
    /// # assert_eq!(io.socket_count(), 0);
    /// ```
    pub fn disconnect(&self) {
        self.hub.with_core(|core| core.disconnect(&self.id));
    }

    /// Closes the client's whole connection without DISCONNECT packets, as
    /// a lost connection looks to it (it will reconnect on its own). Every
    /// socket of that connection leaves with
    /// [`DisconnectReason::ForcedClose`]. Once this socket has disconnected
    /// it does nothing (as Node's `socket.disconnect(true)`).
    ///
    /// ```
    /// # use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     // Client: socket.emit("reconnect me")
    ///     socket.on("reconnect me", |socket, _event| socket.close_connection());
    /// });
    /// ```
    pub fn close_connection(&self) {
        let sid = self.entry.handshake.sid.clone();
        self.hub.with_core(|core| {
            // Once the socket is gone, the connection is none of its
            // business (it may carry the client's other namespaces).
            if core.socket_info(&self.id).is_some() {
                core.close_session(&sid);
            }
        });
    }

    /// Whether the socket is still connected. A clone kept elsewhere (a
    /// task, a map of users) can tell; once the socket is gone, its emits
    /// fail with [`EmitError::UnknownSocket`].
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use switchboard_async::socketio::{EmitError, Socket, SocketIo, SocketIoConfig};
    ///
    /// let last: Arc<Mutex<Option<Socket>>> = Arc::default();
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// let keep = last.clone();
    /// io.ns("/", move |socket| *keep.lock().unwrap() = Some(socket));
    /// # use switchboard_async::engineio::{Routed, WsCommand, WsCommands};
    /// # use switchboard_core::{http::{Limits, Request}, ws::Message};
    /// # // In-memory clients, no network: `open()` connects one over WebSocket, `send` hands the server a packet from it, `recv` takes what the server sent it.
    /// # let request = Request::parse(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", &Limits::default()).unwrap().unwrap().0;
    /// # let open = || match io.engine().handle_request(&request, Default::default()) { Routed::WebSocket(conn, mut queue) => { recv(&mut queue); (conn, queue) } _ => unreachable!() };
    /// # let send = |conn, packet: &str| io.engine().ws_message(conn, Message::text(packet.to_owned()));
    /// # fn recv(queue: &mut WsCommands) -> Vec<String> { std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect() }
    /// # let (a, _qa) = open();
    /// # send(a, "40");
    /// # send(a, "41");
    /// // ... a client connected, then left.
    /// let socket = last.lock().unwrap().clone().expect("a client connected");
    /// assert!(!socket.connected());
    /// assert!(matches!(socket.emit("hello", &()), Err(EmitError::UnknownSocket)));
    /// ```
    pub fn connected(&self) -> bool {
        lock(&self.hub.core).socket_info(&self.id).is_some()
    }

    /// Stores a value of type `T` on the socket (replacing one): state of
    /// the connection, such as the user it logged in as, for its handlers
    /// (see [`extension`](Self::extension)).
    ///
    /// ```
    /// use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    ///
    /// #[derive(Clone)]
    /// struct User { name: String }
    ///
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     // Client: io({ auth: { name: "ann" } })
    ///     let name = socket.handshake().auth["name"].as_str().unwrap_or("anonymous");
    ///     socket.insert_extension(User { name: name.to_owned() });
    ///     socket.on("chat", |socket, event| {
    ///         let Some(user) = socket.extension::<User>() else { return };
    ///         let text: String = event.arg(0).unwrap_or_default();
    ///         let _ = socket.broadcast().emit("chat", &(user.name, text));
    ///     });
    /// });
    /// # use switchboard_async::engineio::{Routed, WsCommand, WsCommands};
    /// # use switchboard_core::{http::{Limits, Request}, ws::Message};
    /// # // In-memory clients, no network: `open()` connects one over WebSocket, `send` hands the server a packet from it, `recv` takes what the server sent it.
    /// # let request = Request::parse(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", &Limits::default()).unwrap().unwrap().0;
    /// # let open = || match io.engine().handle_request(&request, Default::default()) { Routed::WebSocket(conn, mut queue) => { recv(&mut queue); (conn, queue) } _ => unreachable!() };
    /// # let send = |conn, packet: &str| io.engine().ws_message(conn, Message::text(packet.to_owned()));
    /// # fn recv(queue: &mut WsCommands) -> Vec<String> { std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect() }
    /// # let ((a, mut qa), (b, mut qb)) = (open(), open());
    /// # send(a, r#"40{"name":"ann"}"#);
    /// # send(b, "40");
    /// # (recv(&mut qa), recv(&mut qb));
    /// # send(a, r#"42["chat","hi"]"#);
    /// # assert_eq!(recv(&mut qb), [r#"42["chat","ann","hi"]"#]);
    /// ```
    pub fn insert_extension<T: Any + Send + Sync>(&self, value: T) {
        lock(&self.entry.extensions).insert(TypeId::of::<T>(), Box::new(value));
    }

    /// A copy of the stored value of type `T`. For state the handlers
    /// change, store a shared value (an `Arc` of an atomic or a `Mutex`).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// # use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    ///
    /// #[derive(Clone, Default)]
    /// struct Sent(Arc<AtomicU32>);
    ///
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     socket.insert_extension(Sent::default());
    ///     socket.on("chat", |socket, _event| {
    ///         let sent = socket.extension::<Sent>().unwrap_or_default();
    ///         if sent.0.fetch_add(1, Ordering::Relaxed) >= 100 {
    ///             socket.disconnect(); // that will do
    ///         }
    ///     });
    /// });
    /// ```
    pub fn extension<T: Any + Send + Sync + Clone>(&self) -> Option<T> {
        lock(&self.entry.extensions)
            .get(&TypeId::of::<T>())
            .and_then(|value| value.downcast_ref::<T>())
            .cloned()
    }
}

/// An event received with its arguments, and the answer its sender asked
/// for: `A` is the server's [`Ack`] for an event from a client, or the
/// client's [`client::Ack`] for one from the server.
///
/// A client's `socket.emit("greet", "ann", { lang: "fr" }, (reply) => ...)`
/// reads as:
///
/// ```
/// use serde::Deserialize;
/// # use switchboard_async::socketio::{SocketIo, SocketIoConfig};
///
/// #[derive(Deserialize)]
/// struct Options { lang: String }
///
/// let io = SocketIo::new(SocketIoConfig::default());
/// io.ns("/", |socket| {
///     socket.on("greet", |_socket, mut event| {
///         let Ok((name, options)) = event.args::<(String, Options)>() else { return };
///         let greeting = match options.lang.as_str() {
///             "fr" => format!("bonjour {name}"),
///             _ => format!("hello {name}"),
///         };
///         if let Some(ack) = event.take_ack() {
///             let _ = ack.send(&greeting);
///         }
///     });
/// });
/// ```
#[derive(Debug)]
pub struct Event<A = Ack> {
    name: String,
    packet: Packet,
    ack: Option<A>,
}

impl<A> Event<A> {
    pub(crate) fn new(name: String, packet: Packet, ack: Option<A>) -> Self {
        Event { name, packet, ack }
    }

    /// The event's name (see [`Socket::on_any`] for an example).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The arguments read as `T`: a tuple (`(T,)` for one), a `Vec`, a
    /// struct read positionally; binary values come from the attachments.
    ///
    /// ```
    /// use serde::Deserialize;
    /// # use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    ///
    /// // Client: socket.emit("move", 3, 4)
    /// #[derive(Deserialize)]
    /// struct Move { x: i32, y: i32 } // x = 3, y = 4
    ///
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     socket.on("move", |socket, event| {
    ///         if let Ok(Move { x, y }) = event.args() {
    ///             let _ = socket.broadcast().emit("moved", &(x, y));
    ///         }
    ///     });
    ///     // Client: socket.emit("sum", 1, 2, 3)
    ///     socket.on("sum", |socket, event| {
    ///         let numbers: Vec<f64> = event.args().unwrap_or_default();
    ///         let _ = socket.emit("sum", &numbers.iter().sum::<f64>());
    ///     });
    /// });
    /// # use switchboard_async::engineio::{Routed, WsCommand, WsCommands};
    /// # use switchboard_core::{http::{Limits, Request}, ws::Message};
    /// # // In-memory clients, no network: `open()` connects one over WebSocket, `send` hands the server a packet from it, `recv` takes what the server sent it.
    /// # let request = Request::parse(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", &Limits::default()).unwrap().unwrap().0;
    /// # let open = || match io.engine().handle_request(&request, Default::default()) { Routed::WebSocket(conn, mut queue) => { recv(&mut queue); (conn, queue) } _ => unreachable!() };
    /// # let send = |conn, packet: &str| io.engine().ws_message(conn, Message::text(packet.to_owned()));
    /// # fn recv(queue: &mut WsCommands) -> Vec<String> { std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect() }
    /// # let ((a, mut qa), (b, mut qb)) = (open(), open());
    /// # for conn in [a, b] { send(conn, "40"); }
    /// # (recv(&mut qa), recv(&mut qb));
    /// # send(a, r#"42["move",3,4]"#);
    /// # assert_eq!(recv(&mut qb), [r#"42["moved",3,4]"#]);
    /// # send(a, r#"42["sum",1,2,3.5]"#);
    /// # assert_eq!(recv(&mut qa), [r#"42["sum",6.5]"#]);
    /// ```
    pub fn args<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        self.packet.args()
    }

    /// Argument `index` read as `T`. A missing argument reads as `None` into
    /// an `Option` (JavaScript's `undefined`), and fails otherwise.
    ///
    /// ```
    /// # use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     // Client: socket.emit("page", 2) or socket.emit("page", 2, 50)
    ///     socket.on("page", |socket, event| {
    ///         let page: u32 = event.arg(0).unwrap_or(1);
    ///         let size = event.arg::<Option<u32>>(1).ok().flatten().unwrap_or(20);
    ///         let _ = socket.emit("page", &(page, size));
    ///     });
    /// });
    /// ```
    pub fn arg<T: DeserializeOwned>(&self, index: usize) -> Result<T, serde_json::Error> {
        self.packet.arg(index)
    }

    /// The arguments as received, binary included, to send on unchanged.
    ///
    /// ```
    /// # use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     // A relay: what one client sends, files included, the others get.
    ///     socket.on("relay", |socket, event| {
    ///         let _ = socket.broadcast().emit("relay", &event.payload());
    ///     });
    /// });
    /// ```
    pub fn payload(&self) -> Payload {
        Payload::from_packet(&self.packet).unwrap_or_default()
    }

    /// The packet as decoded.
    pub fn packet(&self) -> &Packet {
        &self.packet
    }

    /// Takes the ack the sender asked for, if it did (`None` when the
    /// client emitted without a callback, or once taken).
    ///
    /// An echo: the client's `socket.emit("echo", "hi", 1, (a, b) => ...)`
    /// gets `"hi", 1` back.
    ///
    /// ```
    /// # use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     socket.on("echo", |_socket, mut event| {
    ///         if let Some(ack) = event.take_ack() {
    ///             let _ = ack.send(&event.payload());
    ///         }
    ///     });
    /// });
    /// # use switchboard_async::engineio::{Routed, WsCommand, WsCommands};
    /// # use switchboard_core::{http::{Limits, Request}, ws::Message};
    /// # // In-memory clients, no network: `open()` connects one over WebSocket, `send` hands the server a packet from it, `recv` takes what the server sent it.
    /// # let request = Request::parse(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", &Limits::default()).unwrap().unwrap().0;
    /// # let open = || match io.engine().handle_request(&request, Default::default()) { Routed::WebSocket(conn, mut queue) => { recv(&mut queue); (conn, queue) } _ => unreachable!() };
    /// # let send = |conn, packet: &str| io.engine().ws_message(conn, Message::text(packet.to_owned()));
    /// # fn recv(queue: &mut WsCommands) -> Vec<String> { std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect() }
    /// # let (a, mut qa) = open();
    /// # send(a, "40");
    /// # recv(&mut qa);
    /// # send(a, r#"427["echo","hi",1]"#);
    /// # send(a, r#"42["echo","no callback"]"#);
    /// # assert_eq!(recv(&mut qa), [r#"437["hi",1]"#]);
    /// ```
    pub fn take_ack(&mut self) -> Option<A> {
        self.ack.take()
    }
}

/// The answer a client asked for with its event; send it once. Left
/// unsent, the client hears nothing (its callback never runs, unless
/// the client used a timeout). It can go elsewhere to be sent later:
///
/// ```
/// # use switchboard_async::socketio::{SocketIo, SocketIoConfig};
/// # fn render_report(_: &str) -> String { String::new() }
/// let io = SocketIo::new(SocketIoConfig::default());
/// io.ns("/", |socket| {
///     // Client: socket.emit("report", "2024-q1", (pdf) => ...)
///     socket.on("report", |_socket, mut event| {
///         let (Some(ack), Ok(quarter)) = (event.take_ack(), event.arg::<String>(0)) else {
///             return;
///         };
///         std::thread::spawn(move || {
///             let _ = ack.send(&render_report(&quarter)); // slow
///         });
///     });
/// });
/// ```
#[derive(Debug)]
pub struct Ack {
    socket: Socket,
    id: u64,
}

impl Ack {
    /// Answers with `args` (arguments as for [`Socket::emit`]). Fails with
    /// [`EmitError::UnknownSocket`] once the socket is gone.
    ///
    /// ```
    /// use serde::Serialize;
    /// use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    ///
    /// #[derive(Serialize)]
    /// struct Created { id: u64, name: String }
    ///
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     // Client: socket.emit("create room", "rust", (room) => room.id)
    ///     socket.on("create room", |_socket, mut event| {
    ///         let name: String = event.arg(0).unwrap_or_default();
    ///         if let Some(ack) = event.take_ack() {
    ///             let _ = ack.send(&Created { id: 1, name });
    ///         }
    ///     });
    /// });
    /// # use switchboard_async::engineio::{Routed, WsCommand, WsCommands};
    /// # use switchboard_core::{http::{Limits, Request}, ws::Message};
    /// # // In-memory clients, no network: `open()` connects one over WebSocket, `send` hands the server a packet from it, `recv` takes what the server sent it.
    /// # let request = Request::parse(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", &Limits::default()).unwrap().unwrap().0;
    /// # let open = || match io.engine().handle_request(&request, Default::default()) { Routed::WebSocket(conn, mut queue) => { recv(&mut queue); (conn, queue) } _ => unreachable!() };
    /// # let send = |conn, packet: &str| io.engine().ws_message(conn, Message::text(packet.to_owned()));
    /// # fn recv(queue: &mut WsCommands) -> Vec<String> { std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect() }
    /// # let (a, mut qa) = open();
    /// # send(a, "40");
    /// # recv(&mut qa);
    /// # send(a, r#"425["create room","rust"]"#);
    /// # assert_eq!(recv(&mut qa), [r#"435[{"id":1,"name":"rust"}]"#]);
    /// ```
    pub fn send<T: Serialize + ?Sized>(self, args: &T) -> Result<(), EmitError> {
        let Ack { socket, id } = self;
        socket.hub.with_core(|core| core.ack(&socket.id, id, args))
    }
}

/// The answer to [`Socket::emit_with_ack`]: `.await` it, or
/// [`wait`](AckFuture::wait) for it on a thread. It fails with
/// [`AckError::Timeout`] when no answer came in time (the server's
/// [`timer`](SocketIo::timed) must run, as it does once the server is
/// mounted), or [`AckError::Disconnected`].
///
/// ```
/// use std::time::Duration;
/// use switchboard_async::socketio::Socket;
///
/// // Asks the client for its nickname: `None` if it did not say.
/// async fn nickname(socket: &Socket) -> Option<String> {
///     let answer = socket.emit_with_ack("nickname?", &(), Duration::from_secs(5));
///     answer.ok()?.await.ok()?.arg(0).ok()
/// }
/// # use switchboard_async::socketio::{SocketIo, SocketIoConfig};
/// # let io = SocketIo::new(SocketIoConfig::default());
/// # io.ns("/", |_socket| {});
/// # use switchboard_async::engineio::{Routed, WsCommand, WsCommands};
/// # use switchboard_core::{http::{Limits, Request}, ws::Message};
/// # // In-memory clients, no network: `open()` connects one over WebSocket, `send` hands the server a packet from it, `recv` takes what the server sent it.
/// # let request = Request::parse(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", &Limits::default()).unwrap().unwrap().0;
/// # let open = || match io.engine().handle_request(&request, Default::default()) { Routed::WebSocket(conn, mut queue) => { recv(&mut queue); (conn, queue) } _ => unreachable!() };
/// # let send = |conn, packet: &str| io.engine().ws_message(conn, Message::text(packet.to_owned()));
/// # fn recv(queue: &mut WsCommands) -> Vec<String> { std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect() }
/// # let (a, _qa) = open();
/// # send(a, "40");
/// # let socket = io.sockets("/").pop().unwrap();
/// # let (name, ()) = futures_executor::block_on(futures_util::future::join(
/// #     nickname(&socket),
/// #     async { send(a, r#"430["ann"]"#) },
/// # ));
/// # assert_eq!(name.as_deref(), Some("ann"));
/// ```
#[derive(Debug)]
pub struct AckFuture {
    pub(crate) rx: oneshot::Receiver<Result<Payload, AckError>>,
}

impl AckFuture {
    /// Blocks the thread until the answer comes (for threads; in async code
    /// `.await` it instead). Not in a sync handler on an async runtime: it
    /// runs on the task that reads the answer (see [`Socket::on`]).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    /// # let io = SocketIo::new(SocketIoConfig::default());
    /// # io.ns("/", |_socket| {});
    /// # use switchboard_async::engineio::{Routed, WsCommand, WsCommands};
    /// # use switchboard_core::{http::{Limits, Request}, ws::Message};
    /// # // In-memory clients, no network: `open()` connects one over WebSocket, `send` hands the server a packet from it, `recv` takes what the server sent it.
    /// # let request = Request::parse(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", &Limits::default()).unwrap().unwrap().0;
    /// # let open = || match io.engine().handle_request(&request, Default::default()) { Routed::WebSocket(conn, mut queue) => { recv(&mut queue); (conn, queue) } _ => unreachable!() };
    /// # let send = |conn, packet: &str| io.engine().ws_message(conn, Message::text(packet.to_owned()));
    /// # fn recv(queue: &mut WsCommands) -> Vec<String> { std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect() }
    /// # let (a, _qa) = open();
    /// # send(a, "40");
    /// // On a thread of its own, or in a handler on the threads adapter.
    /// let socket = io.sockets("/").pop().expect("a client connected");
    /// // Client: socket.on("add", (a, b, callback) => callback(a + b))
    /// let answer = socket.emit_with_ack("add", &(2, 3), Duration::from_secs(5))?;
    /// # send(a, "430[5]");
    /// let sum: i32 = answer.wait()?.arg(0)?;
    /// assert_eq!(sum, 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait(self) -> Result<Payload, AckError> {
        block_on(self)
    }
}

impl Future for AckFuture {
    type Output = Result<Payload, AckError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|answer| answer.unwrap_or(Err(AckError::Disconnected)))
    }
}

/// The answers to [`Broadcast::emit_with_ack`]: every socket asked, with
/// its answer, or why it gave none ([`AckError::Timeout`],
/// [`AckError::Disconnected`]), in the order they came. `.await` it, or
/// [`wait`](Self::wait) for it on a thread.
#[derive(Debug)]
pub struct BroadcastAckFuture {
    rx: oneshot::Receiver<BroadcastAnswers>,
}

impl BroadcastAckFuture {
    /// Blocks the thread until every answer is in (for threads; in async
    /// code `.await` it instead). Not in a sync handler on an async
    /// runtime: it runs on a task that reads the answers.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use switchboard_async::socketio::SocketIo;
    ///
    /// // On a thread of its own, or in a handler on the threads adapter.
    /// fn poll_the_room(io: &SocketIo) -> Result<(), Box<dyn std::error::Error>> {
    ///     let asking = io.to("room").emit_with_ack("favourite colour?", &(), Duration::from_secs(30))?;
    ///     for (socket, answer) in asking.wait() {
    ///         match answer {
    ///             Ok(args) => println!("{socket}: {:?}", args.arg::<String>(0)),
    ///             Err(error) => println!("{socket}: no answer ({error})"),
    ///         }
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub fn wait(self) -> BroadcastAnswers {
        block_on(self)
    }
}

impl Future for BroadcastAckFuture {
    type Output = BroadcastAnswers;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The sender goes only with the server (its acks table): no answer
        // is coming then.
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|answers| answers.unwrap_or_default())
    }
}

/// Runs an async handler with `spawner` (a runtime's spawn), or on a
/// thread of its own when there is none yet (a server not mounted, a
/// client not connected).
pub(crate) fn spawn_handler(
    spawner: Option<&Spawner>,
    future: impl Future<Output = ()> + Send + 'static,
) {
    // A panic ends the handler's task only; some executors (smol's) would
    // otherwise unwind through the thread running them. One box holds the
    // handler's future and this guard both.
    let future: BoxFuture = Box::pin(async move {
        if let Err(panic) = std::panic::AssertUnwindSafe(future).catch_unwind().await {
            log_handler_panic(&*panic);
        }
    });
    match spawner {
        Some(spawn) => spawn(future),
        None => {
            let _ = std::thread::Builder::new()
                .name("switchboard-handler".into())
                .spawn(move || block_on(future));
        }
    }
}

pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}

/// A broadcast being aimed: rooms to reach, rooms to leave out. Start
/// one with [`SocketIo::of`], [`SocketIo::to`], [`Socket::to`] or
/// [`Socket::broadcast`]; keep a clone to reach the same sockets again.
///
/// ```
/// # use switchboard_async::socketio::{SocketIo, SocketIoConfig};
/// let io = SocketIo::new(SocketIoConfig::default());
/// io.ns("/chat", |_socket| {});
/// // The sockets of /chat in room "rust" or "go", but not those in "muted".
/// let devs = io.of("/chat").to("rust").to("go").except("muted");
/// assert!(devs.sockets().is_empty());
/// devs.emit("meetup", "Thursday, 7 pm")?;
/// # Ok::<(), switchboard_async::socketio::EmitError>(())
/// ```
#[derive(Clone)]
pub struct Broadcast {
    hub: Arc<Hub>,
    target: BroadcastTarget,
}

impl fmt::Debug for Broadcast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broadcast")
            .field("target", &self.target)
            .finish()
    }
}

impl Broadcast {
    /// Also reaches `room` (with no room given, the whole namespace): a
    /// socket in any of the rooms is reached, once.
    ///
    /// ```
    /// # use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |_socket| {});
    /// let staff = io.to("admins").to("moderators");
    /// assert_eq!(staff.emit("report", "user 42 flagged")?, 0);
    /// # Ok::<(), switchboard_async::socketio::EmitError>(())
    /// ```
    pub fn to(mut self, room: impl Into<String>) -> Self {
        self.target.rooms.push(room.into());
        self
    }

    /// Leaves out the sockets in `room`.
    ///
    /// ```
    /// # use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     let _ = socket.join("players");
    ///     // Client: socket.emit("lost")
    ///     socket.on("lost", |socket, _event| {
    ///         let _ = socket.join("out");
    ///     });
    /// });
    /// # use switchboard_async::engineio::{Routed, WsCommand, WsCommands};
    /// # use switchboard_core::{http::{Limits, Request}, ws::Message};
    /// # // In-memory clients, no network: `open()` connects one over WebSocket, `send` hands the server a packet from it, `recv` takes what the server sent it.
    /// # let request = Request::parse(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", &Limits::default()).unwrap().unwrap().0;
    /// # let open = || match io.engine().handle_request(&request, Default::default()) { Routed::WebSocket(conn, mut queue) => { recv(&mut queue); (conn, queue) } _ => unreachable!() };
    /// # let send = |conn, packet: &str| io.engine().ws_message(conn, Message::text(packet.to_owned()));
    /// # fn recv(queue: &mut WsCommands) -> Vec<String> { std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect() }
    /// # let ((a, mut qa), (b, mut qb)) = (open(), open());
    /// # for conn in [a, b] { send(conn, "40"); }
    /// # send(b, r#"42["lost"]"#);
    /// # (recv(&mut qa), recv(&mut qb));
    /// // ... two players connected; one lost.
    /// let reached = io.to("players").except("out").emit("next round", &2)?;
    /// assert_eq!(reached, 1);
    /// # assert_eq!(recv(&mut qa), [r#"42["next round",2]"#]);
    /// # assert!(recv(&mut qb).is_empty());
    /// # Ok::<(), switchboard_async::socketio::EmitError>(())
    /// ```
    pub fn except(mut self, room: impl Into<String>) -> Self {
        self.target.except.push(room.into());
        self
    }

    /// Emits `event` with `args` (encoded once) to every socket reached;
    /// returns how many.
    ///
    /// ```
    /// use std::time::Duration;
    /// # use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    ///
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     let _ = socket.join("prices");
    /// });
    /// let ticker = io.clone();
    /// std::thread::spawn(move || loop {
    ///     let _ = ticker.to("prices").emit("price", &("BTC", 64_000.5));
    ///     std::thread::sleep(Duration::from_secs(1));
    /// });
    /// ```
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, args: &T) -> Result<usize, EmitError> {
        let packet = encode_event(&self.target.namespace, event, args, None)?;
        Ok(self
            .hub
            .with_core(|core| core.broadcast(&self.target, &packet)))
    }

    /// Like [`Broadcast::emit`], dropping the packet for each client whose
    /// transport cannot take it at once.
    ///
    /// ```
    /// # use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    /// # let positions: Vec<(u32, f32, f32)> = Vec::new();
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/game", |_socket| {});
    /// // Each tick of the game loop: a client that cannot keep up skips one.
    /// let _ = io.of("/game").emit_volatile("positions", &(positions,));
    /// ```
    pub fn emit_volatile<T: Serialize + ?Sized>(
        &self,
        event: &str,
        args: &T,
    ) -> Result<usize, EmitError> {
        let packet = encode_event(&self.target.namespace, event, args, None)?;
        Ok(self
            .hub
            .with_core(|core| core.broadcast_volatile(&self.target, &packet)))
    }

    /// The sockets this broadcast would reach.
    ///
    /// ```
    /// # use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     let _ = socket.join("lobby");
    ///     // Client: socket.emit("who else is here", (ids) => ...)
    ///     socket.on("who else is here", |socket, mut event| {
    ///         let ids: Vec<String> = socket
    ///             .to("lobby")
    ///             .sockets()
    ///             .iter()
    ///             .map(|other| other.id().to_string())
    ///             .collect();
    ///         if let Some(ack) = event.take_ack() {
    ///             let _ = ack.send(&(ids,));
    ///         }
    ///     });
    /// });
    /// ```
    pub fn sockets(&self) -> Vec<Socket> {
        let ids = lock(&self.hub.core).members(&self.target);
        ids.iter().filter_map(|id| self.hub.socket(id)).collect()
    }

    /// Makes every socket reached join `room` (Node's `socketsJoin`),
    /// from anywhere: a handler, another task or thread, an HTTP route.
    /// A socket already in [`ServerConfig::max_rooms_per_socket`] rooms
    /// stays out of it.
    ///
    /// [`ServerConfig::max_rooms_per_socket`]: switchboard_core::socketio::server::ServerConfig::max_rooms_per_socket
    ///
    /// ```
    /// # use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     // Client: socket.emit("merge", "red", "blue")
    ///     socket.on("merge", |socket, event| {
    ///         let Ok((from, into)) = event.args::<(String, String)>() else { return };
    ///         // Everyone in `from`, this socket included, moves to `into`.
    ///         let everyone = socket.io().of(socket.namespace()).to(from.clone());
    ///         everyone.join(&into);
    ///         everyone.leave(&from);
    ///         let _ = socket.io().to(into).emit("merged", &from);
    ///     });
    /// });
    /// # use switchboard_async::engineio::{Routed, WsCommand, WsCommands};
    /// # use switchboard_core::{http::{Limits, Request}, ws::Message};
    /// # // In-memory clients, no network: `open()` connects one over WebSocket, `send` hands the server a packet from it, `recv` takes what the server sent it.
    /// # let request = Request::parse(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", &Limits::default()).unwrap().unwrap().0;
    /// # let open = || match io.engine().handle_request(&request, Default::default()) { Routed::WebSocket(conn, mut queue) => { recv(&mut queue); (conn, queue) } _ => unreachable!() };
    /// # let send = |conn, packet: &str| io.engine().ws_message(conn, Message::text(packet.to_owned()));
    /// # fn recv(queue: &mut WsCommands) -> Vec<String> { std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect() }
    /// # let ((a, mut qa), (b, mut qb), (c, mut qc)) = (open(), open(), open());
    /// # for conn in [a, b, c] { send(conn, "40"); }
    /// # io.sockets("/").iter().take(2).for_each(|socket| { socket.join("red").unwrap(); });
    /// # let red: Vec<String> = io.to("red").sockets().iter().map(|s| s.id().to_string()).collect();
    /// # assert_eq!(red.len(), 2);
    /// # (recv(&mut qa), recv(&mut qb), recv(&mut qc));
    /// # send(a, r#"42["merge","red","blue"]"#);
    /// # let mut blue: Vec<String> = io.to("blue").sockets().iter().map(|s| s.id().to_string()).collect();
    /// # let mut expected = red.clone();
    /// # (blue.sort(), expected.sort());
    /// # assert_eq!(blue, expected);
    /// # assert_eq!(io.of("/").room_size("red"), 0);
    /// # let got = [recv(&mut qa), recv(&mut qb), recv(&mut qc)].map(|m| m.len());
    /// # assert_eq!(got.iter().sum::<usize>(), 2, "{got:?}");
    /// ```
    pub fn join(&self, room: &str) {
        self.hub.with_core(|core| {
            for socket in core.members(&self.target) {
                if let Err(error) = core.join(&socket, room) {
                    tracing::debug!(%socket, %error, "not joined");
                }
            }
        });
    }

    /// Makes every socket reached leave `room` (Node's `socketsLeave`).
    /// See [`Broadcast::join`].
    pub fn leave(&self, room: &str) {
        self.hub.with_core(|core| {
            for socket in core.members(&self.target) {
                let _ = core.leave(&socket, room);
            }
        });
    }

    /// Emits `event` to every socket reached, asking each for an ack within
    /// `timeout` (Node's `io.timeout(ms).emitWithAck(...)`, without its
    /// all-or-nothing error): the returned [`BroadcastAckFuture`] resolves,
    /// once every socket asked has answered or failed to (no answer in
    /// time, or it disconnected first), with each socket and its answer.
    /// The packet is encoded once for all of them. Only sockets of this
    /// server are asked.
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    ///
    /// // Asks everyone in `room` whether they are ready: how many said yes.
    /// async fn ready_count(io: &SocketIo, room: &str) -> usize {
    ///     // Client: socket.on("ready?", (callback) => callback(true))
    ///     let Ok(asking) = io.to(room).emit_with_ack("ready?", &(), Duration::from_secs(10)) else {
    ///         return 0;
    ///     };
    ///     let answers = asking.await;
    ///     answers
    ///         .iter()
    ///         .filter(|(_socket, answer)| {
    ///             answer.as_ref().is_ok_and(|args| args.arg::<bool>(0).unwrap_or(false))
    ///         })
    ///         .count()
    /// }
    /// # let io = SocketIo::new(SocketIoConfig::default());
    /// # io.ns("/", |socket| { let _ = socket.join("table-1"); });
    /// # use switchboard_async::engineio::{Routed, WsCommand, WsCommands};
    /// # use switchboard_core::{http::{Limits, Request}, ws::Message};
    /// # // In-memory clients, no network: `open()` connects one over WebSocket, `send` hands the server a packet from it, `recv` takes what the server sent it.
    /// # let request = Request::parse(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", &Limits::default()).unwrap().unwrap().0;
    /// # let open = || match io.engine().handle_request(&request, Default::default()) { Routed::WebSocket(conn, mut queue) => { recv(&mut queue); (conn, queue) } _ => unreachable!() };
    /// # let send = |conn, packet: &str| io.engine().ws_message(conn, Message::text(packet.to_owned()));
    /// # fn recv(queue: &mut WsCommands) -> Vec<String> { std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect() }
    /// # let ((a, mut qa), (b, mut qb), (c, mut qc)) = (open(), open(), open());
    /// # for conn in [a, b, c] { send(conn, "40"); }
    /// # (recv(&mut qa), recv(&mut qb), recv(&mut qc));
    /// # let (count, ()) = futures_executor::block_on(futures_util::future::join(ready_count(&io, "table-1"), async {
    /// #     let asked = recv(&mut qa);
    /// #     assert_eq!(asked.len(), 1);
    /// #     assert_eq!(asked, recv(&mut qb));
    /// #     let id = asked[0].strip_prefix("42").unwrap().strip_suffix(r#"["ready?"]"#).unwrap().to_owned();
    /// #     send(a, &format!("43{id}[true]"));
    /// #     send(b, &format!("43{id}[false]"));
    /// #     send(c, "41"); // leaves without answering
    /// # }));
    /// # assert_eq!(count, 1);
    /// ```
    pub fn emit_with_ack<T: Serialize + ?Sized>(
        &self,
        event: &str,
        args: &T,
        timeout: Duration,
    ) -> Result<BroadcastAckFuture, EmitError> {
        let (tx, rx) = oneshot::channel();
        let mut done = Some(tx);
        self.hub.with_core(|core| -> Result<(), EmitError> {
            let (id, asked) =
                core.broadcast_with_ack(&self.target, event, args, timeout, Instant::now())?;
            let Some(done) = done.take() else {
                return Ok(());
            };
            if asked.is_empty() {
                let _ = done.send(Vec::new());
                return Ok(());
            }
            // Registered before the packet leaves (the flush comes after).
            let group = Arc::new(AckGroup::new(asked.len(), done));
            let mut acks = lock(&self.hub.acks);
            for socket in asked {
                acks.insert((socket.clone(), id), AckSlot::Group(group.clone(), socket));
            }
            Ok(())
        })?;
        Ok(BroadcastAckFuture { rx })
    }

    /// How many sockets of the namespace are in `room`.
    ///
    /// ```
    /// # use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/chat", |_socket| {});
    /// assert_eq!(io.of("/chat").room_size("rust"), 0);
    /// ```
    pub fn room_size(&self, room: &str) -> usize {
        lock(&self.hub.core).room_size(&self.target.namespace, room)
    }

    /// Disconnects every socket reached.
    ///
    /// ```
    /// # use switchboard_async::socketio::{SocketIo, SocketIoConfig};
    /// let io = SocketIo::new(SocketIoConfig::default());
    /// io.ns("/", |socket| {
    ///     let _ = socket.join("game-7");
    /// });
    /// // The game is over: everyone in it leaves.
    /// io.to("game-7").disconnect();
    /// ```
    pub fn disconnect(&self) {
        for socket in self.sockets() {
            socket.disconnect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::engineio::{CloseReason, MessageData, ProtocolVersion as Eio};

    /// Opens Engine.IO session `sid` on the core (no transport) and
    /// connects it to `/`; returns its socket.
    fn connect(io: &SocketIo, sid: &str) -> SocketId {
        let now = Instant::now();
        io.hub.with_core(|core| {
            core.handle_open(sid, Eio::V4, now);
            core.handle_message(sid, MessageData::Text("0".into()), now);
        });
        let sockets = lock(&io.hub.core).sockets_of("/");
        let socket = sockets
            .into_iter()
            .find(|s| lock(&io.hub.core).socket_info(s).map(|(_, e)| e) == Some(sid));
        socket.expect("connected")
    }

    /// An in-memory client over WebSocket: what it sends goes to the
    /// server's Engine.IO endpoint, what the server sends it waits in its
    /// queue.
    struct Client {
        io: SocketIo,
        conn: switchboard_core::engineio::ConnId,
        queue: crate::engineio::WsCommands,
    }

    impl Client {
        fn open(io: &SocketIo) -> Client {
            use switchboard_core::http::{Limits, Request};
            let request = Request::parse(
                b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
                &Limits::default(),
            )
            .unwrap()
            .unwrap()
            .0;
            match io.engine().handle_request(&request, Default::default()) {
                crate::engineio::Routed::WebSocket(conn, queue) => {
                    let mut client = Client {
                        io: io.clone(),
                        conn,
                        queue,
                    };
                    client.recv(); // Engine.IO's open
                    client
                }
                _ => panic!("not a WebSocket"),
            }
        }

        fn send(&self, packet: &str) {
            self.io.engine().ws_message(
                self.conn,
                switchboard_core::ws::Message::text(packet.to_owned()),
            );
        }

        /// What the server sent it since the last look.
        fn recv(&mut self) -> Vec<String> {
            std::iter::from_fn(|| match self.queue.try_recv() {
                Ok(crate::engineio::WsCommand::Send(m)) => m.as_text().map(str::to_owned),
                _ => None,
            })
            .collect()
        }
    }

    #[test]
    fn a_disconnected_socket_is_freed_though_its_handlers_hold_it() {
        let io = SocketIo::new(SocketIoConfig::default());
        let entries: Arc<Mutex<Vec<Weak<SocketEntry>>>> = Arc::default();
        let seen = entries.clone();
        io.ns("/", move |socket| {
            lock(&seen).push(Arc::downgrade(&socket.entry));
            // Handlers that keep their socket, as closures do.
            let me = socket.clone();
            socket.on("ping", move |_, _| {
                let _ = me.emit("pong", &());
            });
            let me = socket.clone();
            socket.on_any(move |_, _| {
                let _ = me.emit("what", &());
            });
            let me = socket.clone();
            socket.on_disconnect(move |_, _| {
                let _ = me.connected();
            });
        });
        connect(&io, "e1");
        io.hub
            .with_core(|core| core.handle_close("e1", CloseReason::TransportClose));
        let entries = lock(&entries);
        assert_eq!(entries.len(), 1);
        assert!(entries[0].upgrade().is_none(), "the socket is leaked");
    }

    /// A middleware that panics must still answer the client: left
    /// waiting for a verdict, its CONNECTs are ignored for good (and on a
    /// session already in another namespace no connect timeout ends it).
    #[test]
    fn a_middleware_that_panics_refuses_the_client() {
        let io = SocketIo::new(SocketIoConfig::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        io.ns_with(
            "/",
            move |ns| {
                ns.middleware(move |_| {
                    if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                        panic!("the user database is down");
                    }
                    Ok(())
                })
            },
            |_| {},
        );
        io.ns("/other", |_| {});
        let mut client = Client::open(&io);
        client.send("40/other,");
        assert!(client.recv()[0].starts_with(r#"40/other,{"sid":"#));
        client.send("40");
        let refused = client.recv();
        assert_eq!(refused.len(), 1, "no answer: {refused:?}");
        assert!(refused[0].starts_with(r#"44{"message":"#), "{refused:?}");
        // Asking again goes through the middlewares again.
        client.send("40");
        let accepted = client.recv();
        assert!(
            accepted
                .first()
                .is_some_and(|p| p.starts_with(r#"40{"sid":"#)),
            "{accepted:?}"
        );
        assert_eq!(io.sockets("/").len(), 1);
    }

    /// One disconnect handler that panics does not keep the socket's other
    /// disconnect handlers from running (they may free what the
    /// application keeps for the socket).
    #[test]
    fn a_panicking_disconnect_handler_does_not_skip_the_others() {
        let io = SocketIo::new(SocketIoConfig::default());
        let ran = Arc::new(AtomicUsize::new(0));
        let counted = ran.clone();
        io.ns("/", move |socket| {
            socket.on_disconnect(|_, _| panic!("a bug in a logger"));
            let counted = counted.clone();
            socket.on_disconnect(move |_, _| {
                counted.fetch_add(1, Ordering::SeqCst);
            });
        });
        let mut client = Client::open(&io);
        client.send("40");
        client.recv();
        client.send("41");
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    }

    /// Handlers registered on a socket once it has disconnected (by an
    /// async connection handler that waited, by a task keeping a clone)
    /// can never run: kept, the clones of the socket they hold would keep
    /// it, and all they hold, alive for ever.
    #[test]
    fn handlers_registered_after_the_disconnect_are_not_kept() {
        let io = SocketIo::new(SocketIoConfig::default());
        let kept: Arc<Mutex<Option<Socket>>> = Arc::default();
        let keep = kept.clone();
        io.ns("/", move |socket| *lock(&keep) = Some(socket));
        let mut client = Client::open(&io);
        client.send("40");
        client.send("41");
        client.recv();
        let socket = lock(&kept).take().expect("connected");
        assert!(!socket.connected());
        let entry = Arc::downgrade(&socket.entry);
        let me = socket.clone();
        socket.on("ping", move |_, _| {
            let _ = me.emit("pong", &());
        });
        let me = socket.clone();
        socket.on_any(move |_, _| {
            let _ = me.emit("what", &());
        });
        let me = socket.clone();
        socket.on_disconnect(move |_, _| {
            let _ = me.connected();
        });
        drop(socket);
        assert!(entry.upgrade().is_none(), "the socket is leaked");
    }

    /// A clone of a socket that has left its namespace closes nothing (as
    /// Node's `socket.disconnect(true)` once disconnected): the client's
    /// connection may carry its other namespaces still.
    #[test]
    fn closing_the_connection_of_a_gone_socket_leaves_the_connection_alone() {
        let io = SocketIo::new(SocketIoConfig::default());
        io.ns("/", |_| {});
        io.ns("/chat", |_| {});
        let mut client = Client::open(&io);
        client.send("40");
        client.send("40/chat,");
        client.recv();
        let chat = io.sockets("/chat").pop().expect("in /chat");
        client.send("41/chat,"); // leaves /chat, stays in /
        assert!(!chat.connected());
        chat.close_connection();
        assert_eq!(io.sockets("/").len(), 1, "the connection was closed");
        assert!(client.recv().is_empty());
    }

    /// A connection handler that lets its socket go at once: the client
    /// learns it was connected, then that it is not, and the disconnect
    /// handlers the connection handler registered run, once.
    #[test]
    fn disconnecting_in_the_connection_handler() {
        for close in [false, true] {
            let io = SocketIo::new(SocketIoConfig::default());
            let reasons: Arc<Mutex<Vec<DisconnectReason>>> = Arc::default();
            let seen = reasons.clone();
            io.ns("/", move |socket| {
                let seen = seen.clone();
                socket.on_disconnect(move |socket, reason| {
                    assert!(!socket.connected());
                    lock(&seen).push(reason);
                });
                let _ = socket.emit("hello", &());
                if close {
                    socket.close_connection();
                    socket.close_connection();
                } else {
                    socket.disconnect();
                    socket.disconnect();
                }
                assert!(socket.emit("hello", &()).is_err());
            });
            let mut client = Client::open(&io);
            client.send("40");
            let got = client.recv();
            assert!(got[0].starts_with(r#"40{"sid":"#), "{got:?}");
            assert_eq!(got[1], r#"42["hello"]"#);
            if close {
                assert_eq!(got.len(), 2, "{got:?}");
                assert_eq!(*lock(&reasons), [DisconnectReason::ForcedClose]);
            } else {
                assert_eq!(got[2..], ["41"]);
                assert_eq!(
                    *lock(&reasons),
                    [DisconnectReason::ServerNamespaceDisconnect]
                );
            }
            assert_eq!(io.socket_count(), 0);
        }
    }

    #[test]
    fn a_broadcast_with_ack_resolves_with_every_answer_and_every_silence() {
        let io = SocketIo::new(SocketIoConfig::default());
        io.ns("/", |_| {});
        let (a, b, c) = (connect(&io, "e1"), connect(&io, "e2"), connect(&io, "e3"));
        let t0 = Instant::now();
        let mut asking = io
            .of("/")
            .emit_with_ack("vote", &(), Duration::from_millis(50))
            .unwrap();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        // One answers (with ack id 0, the first of every socket), one
        // leaves, one stays silent: nothing resolves before the deadline.
        io.hub.with_core(|core| {
            core.handle_message("e1", MessageData::Text(r#"30["yes"]"#.into()), t0);
            core.handle_close("e2", CloseReason::TransportClose);
        });
        assert!(Pin::new(&mut asking).poll(&mut cx).is_pending());
        // (The deadline ran from the emit, a moment after t0.)
        io.timed()
            .run_timers(Instant::now() + Duration::from_millis(50));
        let Poll::Ready(answers) = Pin::new(&mut asking).poll(&mut cx) else {
            panic!("not resolved at the deadline")
        };
        let mut seen: Vec<(SocketId, String)> = answers
            .into_iter()
            .map(|(socket, answer)| {
                let answer = match answer {
                    Ok(args) => args.arg::<String>(0).unwrap(),
                    Err(error) => format!("{error:?}"),
                };
                (socket, answer)
            })
            .collect();
        seen.sort();
        let mut expected = vec![
            (a, "yes".to_owned()),
            (b, "Disconnected".to_owned()),
            (c, "Timeout".to_owned()),
        ];
        expected.sort();
        assert_eq!(seen, expected);
        // Nobody to ask: resolved at once.
        let nobody = io
            .to("empty room")
            .emit_with_ack("vote", &(), Duration::from_secs(1));
        assert_eq!(futures_executor::block_on(nobody.unwrap()).len(), 0);
    }

    std::thread_local! {
        /// Run by [`Hub::run_timers`] on this thread between reading the
        /// core's next deadline and recording it for the timer.
        static BETWEEN_READ_AND_RECORD: std::cell::RefCell<Option<Box<dyn FnMut()>>> =
            std::cell::RefCell::new(None);
    }

    pub(super) fn between_read_and_record() {
        BETWEEN_READ_AND_RECORD.with(|hook| {
            if let Some(hook) = hook.borrow_mut().as_mut() {
                hook();
            }
        });
    }

    /// A deadline added while the timer is between reading the core's next
    /// deadline and recording it must still wake the timer (or be what it
    /// records): else it sleeps past it, here for ever.
    #[test]
    fn a_deadline_added_while_the_timers_run_is_not_missed() {
        let io = SocketIo::new(SocketIoConfig::default());
        io.ns("/", |_| {});
        let socket = connect(&io, "e1");
        // An ack due at once: the timer records its deadline, then runs it.
        let t0 = Instant::now();
        io.hub.with_core(|core| {
            core.emit_with_ack(&socket, "q", &(), Duration::ZERO, t0)
                .unwrap();
        });
        let timed = io.timed();
        let signal = timed.timer_signal();
        signal.clear();
        // Meanwhile another thread asks for an ack with a later deadline.
        let added = Arc::new(AtomicBool::new(false));
        let hook_added = added.clone();
        let (hook_io, hook_socket) = (io.clone(), socket.clone());
        BETWEEN_READ_AND_RECORD.with(|hook| {
            *hook.borrow_mut() = Some(Box::new(move || {
                let (io, socket, added) =
                    (hook_io.clone(), hook_socket.clone(), hook_added.clone());
                let (tx, rx) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    io.hub.with_core(|core| {
                        let now = Instant::now();
                        core.emit_with_ack(&socket, "q", &(), Duration::from_secs(1), now)
                            .unwrap();
                    });
                    added.store(true, Ordering::SeqCst);
                    let _ = tx.send(());
                });
                // Done at once when nothing holds it back.
                let _ = rx.recv_timeout(Duration::from_millis(200));
            }));
        });
        let next = timed.run_timers(Instant::now());
        BETWEEN_READ_AND_RECORD.with(|hook| hook.borrow_mut().take());
        while !added.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        let earliest = lock(&io.hub.core).poll_timeout();
        assert!(earliest.is_some(), "the second ack waits");
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let woken = signal.poll_woken(&mut cx).is_ready();
        assert!(
            woken || next.is_some_and(|next| next <= earliest.unwrap()),
            "the timer sleeps until {next:?}, past the ack's deadline {earliest:?}"
        );
    }
}
