//! The Socket.IO client on any runtime: the core's
//! [`socketio::client::Client`](switchboard_core::socketio::client::Client)
//! over an Engine.IO client session, with the application's handlers.
//!
//! [`ClientBuilder`] sets the client up (URL, namespace, auth, transports,
//! reconnection) and connects; what it gives back is a [`ClientSocket`], the
//! connection to one namespace, with the server side's names:
//! [`ClientSocket::on`], [`ClientSocket::emit`],
//! [`ClientSocket::emit_with_ack`] (a future, or [`AckFuture::wait`] on
//! threads), [`ClientSocket::on_connect`], [`ClientSocket::on_disconnect`],
//! [`ClientSocket::disconnect`]. More namespaces share the same Engine.IO
//! session: [`SocketIoClient::socket`].
//!
//! ```no_run
//! use std::time::Duration;
//! use switchboard_async::socketio::client::ClientBuilder;
//! # async fn run<R: switchboard_async::Runtime>(runtime: R) -> Result<(), Box<dyn std::error::Error>> {
//! let socket = ClientBuilder::new("http://localhost:3000")
//!     .auth(&serde_json::json!({"token": "abc"}))
//!     .on("chat", |_socket, event| {
//!         let (text,): (String,) = event.args().unwrap_or_default();
//!         println!("chat: {text}");
//!     })
//!     .on_disconnect(|_socket, reason| println!("disconnected: {reason}"))
//!     .connect(runtime)
//!     .await?;
//! socket.emit("chat", "hello")?;
//! let answer = socket.emit_with_ack("sum", &(1, 2), Duration::from_secs(5))?.await?;
//! println!("1 + 2 = {}", answer.values()[0]);
//! # Ok(()) }
//! ```
//!
//! # Threads and tasks
//!
//! Nothing here is tied to a runtime: the core's state is kept under one
//! lock, and what it asks to send goes to the Engine.IO session in order,
//! outside the lock, as soon as an emit is made. A driver (a task on async
//! runtimes, a thread on `switchboard-threads`; see [`ClientDriver`]) opens
//! and closes the sessions the core asks for, feeds it their messages, and
//! runs its timers. Handlers run in order where the event is delivered,
//! outside the lock: keep sync handlers short, and do not block in one on
//! [`AckFuture::wait`] (the answer comes through the same driver; use
//! [`ClientSocket::emit_with_ack_callback`] or an async handler).
//!
//! The client lives while a handle to it ([`SocketIoClient`],
//! [`ClientSocket`]) does; a handler that keeps a socket keeps it alive, so
//! end it with [`SocketIoClient::disconnect`] (or leave every namespace).
//!
//! # The examples
//!
//! `runtime` in the examples is what runs the client:
//! `switchboard_tokio::Tokio`, `switchboard_smol::Smol::new()`, or
//! `switchboard_threads::socketio::client::Threads` (which blocks with
//! `wait()` where these `.await`); any [`ClientDriver`]. Examples that talk
//! to a server only compile here; the others run, with a stand-in runtime
//! that opens no session: their namespace keeps waiting for it, never
//! connected, and their emits wait in its buffer.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, RwLock, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_channel::{mpsc, oneshot};
use futures_util::StreamExt;
use futures_util::future::{Either, select};
use serde::Serialize;
use switchboard_core::engineio::MessageData;
use switchboard_core::engineio::client::{
    ClientCloseReason, ClientConfig as EngineConfig, ClientEvent as EngineEvent, ClientSendError,
    ConfigError,
};
pub use switchboard_core::socketio::client::{
    AckError, ClientConfig as CoreConfig, ConnectError, DisconnectReason, EmitError,
};
use switchboard_core::socketio::client::{Client as Core, ClientEvent, ClientTransmit};
use switchboard_core::socketio::{ProtocolVersion, RawJson};

pub use super::Payload;
use super::{AckSlot, block_on, complete, spawn_handler};
use crate::Runtime;
use crate::dispatch::run_handler;
use crate::engineio::client::{ClientSender, EngineIoClient};

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
pub use super::Spawner;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// An Engine.IO transport the client may use
/// ([`ClientBuilder::transports`]).
///
/// ```
/// use switchboard_async::socketio::client::{ClientBuilder, Transport};
/// # #[derive(Clone, Copy)]
/// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
/// # impl switchboard_async::socketio::client::ClientDriver for Offline {
/// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
/// # }
/// # let runtime = Offline;
///
/// // socket.io-client: io(url, { transports: ["websocket"] })
/// let socket = ClientBuilder::new("http://localhost:3000")
///     .transports([Transport::WebSocket])
///     .build(runtime)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// HTTP long-polling.
    Polling,
    /// WebSocket.
    WebSocket,
}

/// A client that could not be set up: from [`ClientBuilder::build`] and
/// [`SocketIoClient::new`] ([`ClientBuilder::connect`] reports it as
/// [`ConnectError::Transport`] with its message).
///
/// ```
/// use std::collections::HashMap;
/// use switchboard_async::socketio::client::{BuildError, ClientBuilder};
/// use switchboard_core::engineio::client::ConfigError;
/// # #[derive(Clone, Copy)]
/// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
/// # impl switchboard_async::socketio::client::ClientDriver for Offline {
/// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
/// # }
/// # let runtime = Offline;
///
/// let tls = ClientBuilder::new("https://example.com").build(runtime);
/// assert_eq!(tls.unwrap_err(), BuildError::TlsUnsupported);
///
/// let no_scheme = ClientBuilder::new("localhost:3000").build(runtime);
/// assert!(matches!(no_scheme, Err(BuildError::Config(ConfigError::InvalidUrl(_)))));
///
/// let nothing_allowed = ClientBuilder::new("http://localhost:3000").transports([]);
/// let error = nothing_allowed.build(runtime).unwrap_err();
/// assert_eq!(error, BuildError::Config(ConfigError::NoTransport));
///
/// let not_json = HashMap::from([((1, 2), "keys that are not strings")]);
/// let bad_auth = ClientBuilder::new("http://localhost:3000").auth(&not_json);
/// assert!(matches!(bad_auth.build(runtime), Err(BuildError::Auth(_))));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The URL or an Engine.IO setting cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `https`/`wss`: not supported by the drivers yet.
    #[error("TLS is not supported by this driver")]
    TlsUnsupported,
    /// The auth payload does not serialize as JSON.
    #[error("invalid auth payload: {0}")]
    Auth(String),
}

// ---------------------------------------------------------------------------
// The driver's side.

/// An open Engine.IO session, as the hub sees it: a runtime's client
/// sender. A driver hands one to [`ClientHub::session_opened`].
///
/// A session that keeps what it is sent, for a test:
///
/// ```
/// use std::sync::Mutex;
/// use switchboard_async::socketio::client::EngineLink;
/// use switchboard_core::engineio::MessageData;
/// use switchboard_core::engineio::client::ClientSendError;
///
/// #[derive(Default)]
/// struct Recorder(Mutex<Option<Vec<MessageData>>>); // `None` once closed
///
/// impl EngineLink for Recorder {
///     fn send(&self, message: MessageData) -> Result<(), ClientSendError> {
///         let mut sent = self.0.lock().unwrap();
///         sent.as_mut().ok_or(ClientSendError::Closed)?.push(message);
///         Ok(())
///     }
///
///     fn close(&self) {
///         self.0.lock().unwrap().take();
///     }
/// }
///
/// let link = Recorder(Mutex::new(Some(Vec::new())));
/// link.send(r#"2["chat","hi"]"#.into()).unwrap();
/// link.close();
/// assert_eq!(link.send("2".into()), Err(ClientSendError::Closed));
/// ```
pub trait EngineLink: Send + Sync {
    /// Queues a message on the session.
    fn send(&self, message: MessageData) -> Result<(), ClientSendError>;
    /// Closes the session.
    fn close(&self);
}

impl EngineLink for ClientSender {
    fn send(&self, message: MessageData) -> Result<(), ClientSendError> {
        ClientSender::send(self, message)
    }

    fn close(&self) {
        ClientSender::close(self)
    }
}

/// What runs a client: opens the Engine.IO sessions its [`ClientHub`] asks
/// for and reports on them, and runs its timers. Every async [`Runtime`]
/// is one (a driver task); `switchboard-threads` has its own (a driver
/// thread). [`ClientHub`] shows the driver's side step by step.
///
/// A driver that is one of two runtimes, chosen at run time (a test suite
/// running the same cases on each, say):
///
/// ```
/// use std::sync::Arc;
/// use switchboard_async::Runtime;
/// use switchboard_async::socketio::client::{ClientBuilder, ClientDriver, ClientHub};
///
/// enum Either<A, B> {
///     Left(A),
///     Right(B),
/// }
///
/// impl<A: Runtime, B: Runtime> ClientDriver for Either<A, B> {
///     fn start(self, hub: Arc<ClientHub>) {
///         match self {
///             Either::Left(runtime) => runtime.start(hub),
///             Either::Right(runtime) => runtime.start(hub),
///         }
///     }
/// }
///
/// async fn join<A, B>(driver: Either<A, B>) -> Result<(), Box<dyn std::error::Error>>
/// where
///     A: Runtime,
///     B: Runtime,
/// {
///     let socket = ClientBuilder::new("http://localhost:3000").connect(driver).await?;
///     socket.emit("hello", &())?;
///     Ok(())
/// }
/// ```
pub trait ClientDriver {
    /// Starts driving `hub`: called once, when the client is made. The
    /// driver should hold the hub weakly, and stop once it is gone.
    ///
    /// ```
    /// use std::sync::{Arc, Weak};
    /// use switchboard_async::socketio::client::{ClientBuilder, ClientDriver, ClientHub};
    ///
    /// /// Keeps the hub for a test to drive by hand.
    /// struct Keep(Arc<std::sync::Mutex<Weak<ClientHub>>>);
    ///
    /// impl ClientDriver for Keep {
    ///     fn start(self, hub: Arc<ClientHub>) {
    ///         *self.0.lock().unwrap() = Arc::downgrade(&hub);
    ///     }
    /// }
    ///
    /// let kept = Arc::default();
    /// let socket = ClientBuilder::new("http://localhost:3000").build(Keep(Arc::clone(&kept)))?;
    /// let hub = kept.lock().unwrap().upgrade().expect("alive while the socket is");
    /// assert!(hub.take_open_request().is_some()); // the session to open
    /// drop((socket, hub));
    /// assert!(kept.lock().unwrap().upgrade().is_none()); // the client is gone: stop
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn start(self, hub: Arc<ClientHub>);
}

impl<R: Runtime> ClientDriver for R {
    fn start(self, hub: Arc<ClientHub>) {
        let (inputs_tx, inputs) = mpsc::channel::<(u64, SessionInput)>(64);
        let runtime = self.clone();
        start_driver(self, &hub, inputs, move |config, generation| {
            runtime.spawn(run_session(
                runtime.clone(),
                config,
                generation,
                inputs_tx.clone(),
            ));
        });
    }
}

/// What a session task reports to the driver task, with the session's
/// generation.
type SessionInputs = mpsc::Receiver<(u64, SessionInput)>;

/// What a session task reports to the driver task.
enum SessionInput {
    Opened(Box<dyn EngineLink>, String),
    Failed(String),
    Event(EngineEvent),
}

/// Starts the driver task of `hub` on `runtime`: `open` starts the session
/// of a generation, which reports on `inputs`.
fn start_driver<R: Runtime>(
    runtime: R,
    hub: &Arc<ClientHub>,
    inputs: SessionInputs,
    open: impl FnMut(EngineConfig, u64) + Send + 'static,
) {
    let (wake_tx, wake_rx) = mpsc::channel::<()>(1);
    let wake = Mutex::new(wake_tx);
    hub.set_wake(move || {
        // A full channel already holds a wake-up.
        let _ = lock(&wake).try_send(());
    });
    let spawner = runtime.clone();
    hub.set_spawner(Arc::new(move |future| spawner.spawn(future)));
    runtime.spawn(drive(
        runtime.clone(),
        Arc::downgrade(hub),
        wake_rx,
        inputs,
        open,
    ));
}

async fn drive<R: Runtime>(
    runtime: R,
    hub: Weak<ClientHub>,
    wake: mpsc::Receiver<()>,
    mut inputs: SessionInputs,
    open: impl FnMut(EngineConfig, u64) + Send + 'static,
) {
    drive_while_alive(runtime, hub, wake, &mut inputs, open).await;
    // The client is gone. A session still opening finds the channel
    // closed and ends itself; one whose handshake completed and waits in
    // the queue is closed here (it would otherwise stay open, answering
    // the server's pings, with nothing to report to).
    inputs.close();
    while let Ok((_, input)) = inputs.try_recv() {
        if let SessionInput::Opened(link, _) = input {
            link.close();
        }
    }
}

async fn drive_while_alive<R: Runtime>(
    runtime: R,
    hub: Weak<ClientHub>,
    mut wake: mpsc::Receiver<()>,
    inputs: &mut SessionInputs,
    mut open: impl FnMut(EngineConfig, u64) + Send + 'static,
) {
    loop {
        let (deadline, gate) = {
            let Some(hub) = hub.upgrade() else {
                return;
            };
            if let Some(generation) = hub.take_open_request() {
                open(hub.engine_config().clone(), generation);
            }
            (hub.poll_timeout(), hub.handler_gate().clone())
        };
        let sleep = match deadline {
            Some(deadline) => Either::Left(runtime.sleep_until(deadline)),
            None => Either::Right(std::future::pending::<()>()),
        };
        let sleep = std::pin::pin!(sleep);
        // Nothing more from the sessions while the handlers have no room;
        // timers and wake-ups go on.
        let input = std::pin::pin!(async {
            gate.room().await;
            inputs.next().await
        });
        let woke = match select(select(input, wake.next()), sleep).await {
            Either::Left((Either::Left((input, _)), _)) => input.map(Some),
            // The hub is gone with its wake sender: stop.
            Either::Left((Either::Right((None, _)), _)) => return,
            Either::Left((Either::Right((Some(()), _)), _)) => Some(None),
            Either::Right(_) => None,
        };
        let Some(hub) = hub.upgrade() else {
            return;
        };
        match woke {
            Some(Some((generation, input))) => match input {
                SessionInput::Opened(link, sid) => hub.session_opened(generation, link, &sid),
                SessionInput::Failed(error) => hub.session_failed(generation, error),
                SessionInput::Event(EngineEvent::Message(message)) => {
                    hub.session_message(generation, message)
                }
                SessionInput::Event(EngineEvent::Closed { reason, .. }) => {
                    hub.session_closed(generation, reason)
                }
                SessionInput::Event(_) => {}
            },
            Some(None) => {}
            None => hub.run_timers(),
        }
        // The session's inputs come first in the wait above: a server that
        // keeps sending would otherwise hold the timers (ack timeouts)
        // back for as long as it does.
        if hub.poll_timeout().is_some_and(|due| due <= Instant::now()) {
            hub.run_timers();
        }
    }
}

/// Opens one Engine.IO session and forwards what happens to it.
async fn run_session<R: Runtime>(
    runtime: R,
    config: EngineConfig,
    generation: u64,
    mut inputs: mpsc::Sender<(u64, SessionInput)>,
) {
    use futures_util::SinkExt;
    let mut client = match EngineIoClient::connect(runtime, config).await {
        Ok(client) => client,
        Err(error) => {
            let _ = inputs
                .send((generation, SessionInput::Failed(error.to_string())))
                .await;
            return;
        }
    };
    let opened = SessionInput::Opened(Box::new(client.sender()), client.sid().to_owned());
    if inputs.send((generation, opened)).await.is_err() {
        client.sender().close();
        return;
    }
    while let Some(event) = client.recv().await {
        let closed = matches!(event, EngineEvent::Closed { .. });
        if inputs
            .send((generation, SessionInput::Event(event)))
            .await
            .is_err()
        {
            client.sender().close();
            return;
        }
        if closed {
            return;
        }
    }
}

// ---------------------------------------------------------------------------
// The bound on running handlers.

/// How many of a client's async handlers may run at once by default
/// ([`ClientBuilder::max_running_handlers`]).
///
/// ```
/// use switchboard_async::socketio::client::{ClientBuilder, DEFAULT_MAX_RUNNING_HANDLERS};
///
/// assert_eq!(DEFAULT_MAX_RUNNING_HANDLERS, 1024);
/// // Twice the default, for handlers that mostly wait on something else:
/// let builder = ClientBuilder::new("http://localhost:3000")
///     .max_running_handlers(2 * DEFAULT_MAX_RUNNING_HANDLERS);
/// ```
pub const DEFAULT_MAX_RUNNING_HANDLERS: usize = 1024;

/// The client's async handlers running at once, and the driver waiting for
/// room among them. Each async handler holds a pass while it runs; at the
/// limit the driver hands the hub nothing more from the session until one
/// ends, so a server that sends faster than the handlers finish is held
/// back by the transport (TCP, or polls not made) rather than by a growing
/// pile of tasks. Sync handlers need no pass: they run where events are
/// delivered, on the driver, and hold it up themselves.
///
/// ```
/// use futures_util::FutureExt;
/// use switchboard_async::socketio::client::HandlerGate;
///
/// let gate = HandlerGate::new(1);
/// let pass = gate.enter();
/// assert!(!gate.has_room());
/// assert!(gate.room().now_or_never().is_none()); // the driver waits
/// drop(pass); // the handler ended
/// assert!(gate.room().now_or_never().is_some());
/// ```
pub struct HandlerGate {
    state: Mutex<GateState>,
    /// Wakes a driver thread blocked in [`HandlerGate::wait_for_room`].
    freed: Condvar,
    max: usize,
}

struct GateState {
    running: usize,
    /// A driver task waiting in [`HandlerGate::room`].
    waiter: Option<Waker>,
    /// [`HandlerGate::nudge`] was called: a blocked driver thread should
    /// look again at its deadline.
    nudged: bool,
}

impl fmt::Debug for HandlerGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerGate")
            .field("running", &self.running())
            .field("max", &self.max)
            .finish()
    }
}

impl HandlerGate {
    /// A gate letting `max` handlers (at least one) run at once.
    ///
    /// ```
    /// use switchboard_async::socketio::client::HandlerGate;
    ///
    /// let gate = HandlerGate::new(0); // taken as 1
    /// let first = gate.enter();
    /// assert_eq!(gate.running(), 1);
    /// assert!(!gate.has_room());
    /// ```
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(HandlerGate {
            state: Mutex::new(GateState {
                running: 0,
                waiter: None,
                nudged: false,
            }),
            freed: Condvar::new(),
            max: max.max(1),
        })
    }

    fn state(&self) -> MutexGuard<'_, GateState> {
        lock(&self.state)
    }

    /// The handlers running now.
    pub fn running(&self) -> usize {
        self.state().running
    }

    /// Whether the driver may hand the hub more of the session.
    pub fn has_room(&self) -> bool {
        self.running() < self.max
    }

    /// A pass for a handler starting now, held until it ends. Never waits:
    /// the driver waits for room before it hands over what starts handlers.
    ///
    /// ```
    /// use switchboard_async::socketio::client::HandlerGate;
    ///
    /// let gate = HandlerGate::new(1);
    /// let passes = [gate.enter(), gate.enter()]; // past the limit: still given
    /// assert_eq!(gate.running(), 2);
    /// drop(passes);
    /// assert_eq!(gate.running(), 0);
    /// ```
    pub fn enter(self: &Arc<Self>) -> HandlerPass {
        self.state().running += 1;
        HandlerPass { gate: self.clone() }
    }

    /// Waits until fewer than the limit run (for one driver task).
    pub fn room(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(|cx| {
            let mut state = self.state();
            if state.running < self.max {
                return Poll::Ready(());
            }
            state.waiter = Some(cx.waker().clone());
            Poll::Pending
        })
    }

    /// Blocks until fewer than the limit run, `deadline` passes, or
    /// [`HandlerGate::nudge`] is called (for a driver thread); whether
    /// there is room.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use switchboard_async::socketio::client::HandlerGate;
    ///
    /// let gate = HandlerGate::new(1);
    /// assert!(gate.wait_for_room(None)); // room: at once
    /// let pass = gate.enter();
    /// let soon = Instant::now() + Duration::from_millis(10);
    /// assert!(!gate.wait_for_room(Some(soon))); // full until the deadline
    /// std::thread::spawn(move || drop(pass)); // the handler ends elsewhere
    /// assert!(gate.wait_for_room(None));
    /// ```
    pub fn wait_for_room(&self, deadline: Option<Instant>) -> bool {
        let mut state = self.state();
        while state.running >= self.max {
            if std::mem::take(&mut state.nudged) {
                return false;
            }
            state = match deadline {
                None => self
                    .freed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    self.freed
                        .wait_timeout(state, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
        true
    }

    /// Has a driver thread blocked in [`HandlerGate::wait_for_room`] return
    /// (now, or at its next wait): the deadline it waits with moved, say
    /// because a handler asked for an ack.
    ///
    /// ```
    /// use switchboard_async::socketio::client::HandlerGate;
    ///
    /// let gate = HandlerGate::new(1);
    /// let _pass = gate.enter();
    /// gate.nudge();
    /// assert!(!gate.wait_for_room(None)); // returns, without room, to look again
    /// ```
    pub fn nudge(&self) {
        self.state().nudged = true;
        self.freed.notify_all();
    }
}

/// A running handler's place under [`HandlerGate`]'s limit; dropping it
/// (the handler ended, or its task was dropped) frees it.
///
/// ```
/// use switchboard_async::socketio::client::HandlerGate;
///
/// let gate = HandlerGate::new(1);
/// let pass = gate.enter();
/// let handler = async move {
///     // ... the handler's work ...
///     drop(pass); // or dropped with the task, if it never ends
/// };
/// assert!(!gate.has_room());
/// futures_executor::block_on(handler);
/// assert!(gate.has_room());
/// ```
#[derive(Debug)]
pub struct HandlerPass {
    gate: Arc<HandlerGate>,
}

impl Drop for HandlerPass {
    fn drop(&mut self) {
        let mut state = self.gate.state();
        state.running -= 1;
        if state.running < self.gate.max {
            let waiter = state.waiter.take();
            drop(state);
            self.gate.freed.notify_all();
            if let Some(waiter) = waiter {
                waiter.wake();
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The hub.

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

#[derive(Default)]
struct SocketHandlers {
    events: HashMap<String, Callback<(ClientSocket, Event)>>,
    any: Option<Callback<(ClientSocket, Event)>>,
    connect: Vec<Callback<ClientSocket>>,
    disconnect: Vec<Callback<(ClientSocket, DisconnectReason)>>,
    connect_error: Vec<Callback<(ClientSocket, ConnectError)>>,
}

/// A caller of [`ClientSocket::connect`] waiting for the answer.
type Waiter = oneshot::Sender<Result<(), ConnectError>>;

struct SocketEntry {
    namespace: String,
    handlers: RwLock<SocketHandlers>,
    /// Callers of [`ClientSocket::connect`] waiting for the answer, added
    /// and taken under the core's lock: the answer the core gives next
    /// (a CONNECT, a refusal, the namespace left) is theirs, and one it
    /// gave before they asked is not.
    waiters: Mutex<Vec<Waiter>>,
}

/// An event of the core waiting for its handlers, with the joins it
/// answers (those waiting when the core produced it).
struct Queued {
    event: ClientEvent,
    waiters: Vec<Waiter>,
}

#[derive(Default)]
struct ManagerHandlers {
    reconnect_attempt: Vec<Arc<dyn Fn(u32) + Send + Sync>>,
    reconnect: Vec<Arc<dyn Fn(u32) + Send + Sync>>,
    reconnect_failed: Vec<Arc<dyn Fn() + Send + Sync>>,
}

/// The Engine.IO session the hub talks to.
#[derive(Default)]
struct Session {
    /// Counts session requests and closes: a report about another
    /// generation is stale.
    generation: u64,
    /// A session was asked for and the driver has not taken the request.
    open_requested: bool,
    link: Option<Box<dyn EngineLink>>,
}

/// The state a client's handles and its driver share: the core under a
/// lock, the handlers, the acks waited for, and the session. Applications
/// use [`SocketIoClient`] and [`ClientSocket`]; the methods here are for
/// [`ClientDriver`]s.
///
/// A driver opens the session [`ClientHub::take_open_request`] asks for and
/// reports on it ([`ClientHub::session_opened`], then each message to
/// [`ClientHub::session_message`], and [`ClientHub::session_closed`];
/// [`ClientHub::session_failed`] if it could not be opened), and runs
/// [`ClientHub::run_timers`] at [`ClientHub::poll_timeout`]. Here, as in the
/// examples of these methods, a test does it by hand: `driver` hands over
/// the hub it is started with (`handed`), and `Wire` is an [`EngineLink`]
/// keeping the text it is sent (`Wire::take`).
///
/// ```
/// use switchboard_async::socketio::client::ClientBuilder;
/// # type Hub = std::sync::Arc<switchboard_async::socketio::client::ClientHub>;
/// # struct ByHand(std::sync::mpsc::Sender<Hub>); // a driver that hands its hub over
/// # impl switchboard_async::socketio::client::ClientDriver for ByHand {
/// #     fn start(self, hub: Hub) {
/// #         self.0.send(hub).unwrap()
/// #     }
/// # }
/// # #[derive(Clone, Default)] // a session that keeps the text it is sent
/// # struct Wire(std::sync::Arc<std::sync::Mutex<Vec<String>>>);
/// # impl Wire {
/// #     fn take(&self) -> Vec<String> {
/// #         std::mem::take(&mut *self.0.lock().unwrap())
/// #     }
/// # }
/// # impl switchboard_async::socketio::client::EngineLink for Wire {
/// #     fn send(
/// #         &self,
/// #         message: switchboard_core::engineio::MessageData,
/// #     ) -> Result<(), switchboard_core::engineio::client::ClientSendError> {
/// #         if let switchboard_core::engineio::MessageData::Text(text) = message {
/// #             self.0.lock().unwrap().push(text.as_str().to_owned());
/// #         }
/// #         Ok(())
/// #     }
/// #     fn close(&self) {}
/// # }
/// # let (driver, handed) = {
/// #     let (tx, rx) = std::sync::mpsc::channel();
/// #     (ByHand(tx), rx)
/// # };
///
/// let socket = ClientBuilder::new("http://localhost:3000")
///     .on("question", |_socket, mut event| {
///         let _ = event.take_ack().unwrap().send("42");
///     })
///     .build(driver)?;
/// let hub = handed.recv()?;
/// let generation = hub.take_open_request().expect("a session is asked for");
/// let wire = Wire::default();
/// hub.session_opened(generation, Box::new(wire.clone()), "eio-sid");
/// hub.session_message(generation, r#"0{"sid":"s1"}"#.into()); // the server's CONNECT
/// assert_eq!(socket.id().as_deref(), Some("s1"));
/// hub.session_message(generation, r#"21["question"]"#.into()); // asks for ack 1
/// assert_eq!(wire.take(), ["0", r#"31["42"]"#]); // our CONNECT, our answer
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ClientHub {
    core: Mutex<Core>,
    engine_config: EngineConfig,
    outbox: Mutex<VecDeque<ClientTransmit>>,
    flushing: Mutex<()>,
    events: Mutex<VecDeque<Queued>>,
    delivering: Mutex<()>,
    session: Mutex<Session>,
    wake: OnceLock<Box<dyn Fn() + Send + Sync>>,
    spawner: OnceLock<Spawner>,
    handlers_running: Arc<HandlerGate>,
    sockets: RwLock<HashMap<String, Arc<SocketEntry>>>,
    manager: RwLock<ManagerHandlers>,
    acks: Mutex<HashMap<u64, AckSlot>>,
    this: Weak<ClientHub>,
}

impl fmt::Debug for ClientHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientHub").finish_non_exhaustive()
    }
}

impl Drop for ClientHub {
    fn drop(&mut self) {
        let session = self
            .session
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(link) = session.link.take() {
            link.close();
        }
    }
}

impl ClientHub {
    /// The Engine.IO settings of the sessions to open.
    ///
    /// ```
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # type Hub = std::sync::Arc<switchboard_async::socketio::client::ClientHub>;
    /// # struct ByHand(std::sync::mpsc::Sender<Hub>); // a driver that hands its hub over
    /// # impl switchboard_async::socketio::client::ClientDriver for ByHand {
    /// #     fn start(self, hub: Hub) {
    /// #         self.0.send(hub).unwrap()
    /// #     }
    /// # }
    /// # #[derive(Clone, Default)] // a session that keeps the text it is sent
    /// # struct Wire(std::sync::Arc<std::sync::Mutex<Vec<String>>>);
    /// # impl Wire {
    /// #     fn take(&self) -> Vec<String> {
    /// #         std::mem::take(&mut *self.0.lock().unwrap())
    /// #     }
    /// # }
    /// # impl switchboard_async::socketio::client::EngineLink for Wire {
    /// #     fn send(
    /// #         &self,
    /// #         message: switchboard_core::engineio::MessageData,
    /// #     ) -> Result<(), switchboard_core::engineio::client::ClientSendError> {
    /// #         if let switchboard_core::engineio::MessageData::Text(text) = message {
    /// #             self.0.lock().unwrap().push(text.as_str().to_owned());
    /// #         }
    /// #         Ok(())
    /// #     }
    /// #     fn close(&self) {}
    /// # }
    /// # let (driver, handed) = {
    /// #     let (tx, rx) = std::sync::mpsc::channel();
    /// #     (ByHand(tx), rx)
    /// # };
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000/chat?v=2")
    ///     .path("/realtime")
    ///     .build(driver)?;
    /// let engine = handed.recv()?.engine_config().clone();
    /// assert_eq!((engine.host.as_str(), engine.port), ("localhost", 3000));
    /// assert_eq!(engine.path, "/realtime/");
    /// assert_eq!(engine.query, [("v".to_owned(), "2".to_owned())]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn engine_config(&self) -> &EngineConfig {
        &self.engine_config
    }

    /// Sets how to wake the driver (when a command moved the deadline or
    /// asked for a session). Only the first call counts.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use switchboard_async::socketio::client::{CoreConfig, SocketIoClient};
    /// use switchboard_core::engineio::client::ClientConfig as EngineConfig;
    /// # type Hub = std::sync::Arc<switchboard_async::socketio::client::ClientHub>;
    /// # struct ByHand(std::sync::mpsc::Sender<Hub>); // a driver that hands its hub over
    /// # impl switchboard_async::socketio::client::ClientDriver for ByHand {
    /// #     fn start(self, hub: Hub) {
    /// #         self.0.send(hub).unwrap()
    /// #     }
    /// # }
    /// # #[derive(Clone, Default)] // a session that keeps the text it is sent
    /// # struct Wire(std::sync::Arc<std::sync::Mutex<Vec<String>>>);
    /// # impl Wire {
    /// #     fn take(&self) -> Vec<String> {
    /// #         std::mem::take(&mut *self.0.lock().unwrap())
    /// #     }
    /// # }
    /// # impl switchboard_async::socketio::client::EngineLink for Wire {
    /// #     fn send(
    /// #         &self,
    /// #         message: switchboard_core::engineio::MessageData,
    /// #     ) -> Result<(), switchboard_core::engineio::client::ClientSendError> {
    /// #         if let switchboard_core::engineio::MessageData::Text(text) = message {
    /// #             self.0.lock().unwrap().push(text.as_str().to_owned());
    /// #         }
    /// #         Ok(())
    /// #     }
    /// #     fn close(&self) {}
    /// # }
    /// # let (driver, handed) = {
    /// #     let (tx, rx) = std::sync::mpsc::channel();
    /// #     (ByHand(tx), rx)
    /// # };
    ///
    /// let engine = EngineConfig::from_url("http://localhost:3000/socket.io/")?;
    /// let io = SocketIoClient::new(driver, engine, CoreConfig::default())?;
    /// let hub = handed.recv()?;
    /// let wakes = Arc::new(AtomicUsize::new(0));
    /// let counter = Arc::clone(&wakes);
    /// hub.set_wake(move || {
    ///     counter.fetch_add(1, Ordering::Relaxed);
    /// });
    /// let _joining = io.socket("/").connect(); // asks for a session
    /// assert_eq!(wakes.load(Ordering::Relaxed), 1);
    /// assert!(hub.take_open_request().is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_wake(&self, wake: impl Fn() + Send + Sync + 'static) {
        let _ = self.wake.set(Box::new(wake));
    }

    /// Runs async handlers through `spawner`. Only the first call counts;
    /// without one, an async handler runs on a thread of its own.
    ///
    /// A driver on a runtime spawns them as tasks:
    ///
    /// ```
    /// use std::sync::Arc;
    /// use switchboard_async::Runtime;
    /// use switchboard_async::socketio::client::ClientHub;
    ///
    /// fn spawn_handlers_on<R: Runtime>(runtime: R, hub: &ClientHub) {
    ///     hub.set_spawner(Arc::new(move |handler| runtime.spawn(handler)));
    /// }
    /// ```
    pub fn set_spawner(&self, spawner: Spawner) {
        let _ = self.spawner.set(spawner);
    }

    /// The async handlers running: a driver hands the hub nothing more from
    /// the session ([`ClientHub::session_message`]) while it has no room.
    ///
    /// ```
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # type Hub = std::sync::Arc<switchboard_async::socketio::client::ClientHub>;
    /// # struct ByHand(std::sync::mpsc::Sender<Hub>); // a driver that hands its hub over
    /// # impl switchboard_async::socketio::client::ClientDriver for ByHand {
    /// #     fn start(self, hub: Hub) {
    /// #         self.0.send(hub).unwrap()
    /// #     }
    /// # }
    /// # #[derive(Clone, Default)] // a session that keeps the text it is sent
    /// # struct Wire(std::sync::Arc<std::sync::Mutex<Vec<String>>>);
    /// # impl Wire {
    /// #     fn take(&self) -> Vec<String> {
    /// #         std::mem::take(&mut *self.0.lock().unwrap())
    /// #     }
    /// # }
    /// # impl switchboard_async::socketio::client::EngineLink for Wire {
    /// #     fn send(
    /// #         &self,
    /// #         message: switchboard_core::engineio::MessageData,
    /// #     ) -> Result<(), switchboard_core::engineio::client::ClientSendError> {
    /// #         if let switchboard_core::engineio::MessageData::Text(text) = message {
    /// #             self.0.lock().unwrap().push(text.as_str().to_owned());
    /// #         }
    /// #         Ok(())
    /// #     }
    /// #     fn close(&self) {}
    /// # }
    /// # let (driver, handed) = {
    /// #     let (tx, rx) = std::sync::mpsc::channel();
    /// #     (ByHand(tx), rx)
    /// # };
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000")
    ///     .max_running_handlers(8)
    ///     .build(driver)?;
    /// let hub = handed.recv()?;
    /// // A driver thread, before it reads from the session again:
    /// if hub.handler_gate().wait_for_room(hub.poll_timeout()) {
    ///     // ... read, and hand the messages to hub.session_message ...
    /// } else {
    ///     hub.run_timers(); // a deadline came first
    /// }
    /// assert_eq!(hub.handler_gate().running(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn handler_gate(&self) -> &Arc<HandlerGate> {
        &self.handlers_running
    }

    /// A session to open, if one was asked for: its generation, to report
    /// it with.
    ///
    /// ```
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # type Hub = std::sync::Arc<switchboard_async::socketio::client::ClientHub>;
    /// # struct ByHand(std::sync::mpsc::Sender<Hub>); // a driver that hands its hub over
    /// # impl switchboard_async::socketio::client::ClientDriver for ByHand {
    /// #     fn start(self, hub: Hub) {
    /// #         self.0.send(hub).unwrap()
    /// #     }
    /// # }
    /// # #[derive(Clone, Default)] // a session that keeps the text it is sent
    /// # struct Wire(std::sync::Arc<std::sync::Mutex<Vec<String>>>);
    /// # impl Wire {
    /// #     fn take(&self) -> Vec<String> {
    /// #         std::mem::take(&mut *self.0.lock().unwrap())
    /// #     }
    /// # }
    /// # impl switchboard_async::socketio::client::EngineLink for Wire {
    /// #     fn send(
    /// #         &self,
    /// #         message: switchboard_core::engineio::MessageData,
    /// #     ) -> Result<(), switchboard_core::engineio::client::ClientSendError> {
    /// #         if let switchboard_core::engineio::MessageData::Text(text) = message {
    /// #             self.0.lock().unwrap().push(text.as_str().to_owned());
    /// #         }
    /// #         Ok(())
    /// #     }
    /// #     fn close(&self) {}
    /// # }
    /// # let (driver, handed) = {
    /// #     let (tx, rx) = std::sync::mpsc::channel();
    /// #     (ByHand(tx), rx)
    /// # };
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000").build(driver)?;
    /// let hub = handed.recv()?;
    /// let generation = hub.take_open_request().expect("joining asks for a session");
    /// assert_eq!(hub.take_open_request(), None); // taken
    /// // ... open it, then report with `generation`:
    /// hub.session_failed(generation, "connection refused".to_owned());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn take_open_request(&self) -> Option<u64> {
        let mut session = lock(&self.session);
        std::mem::take(&mut session.open_requested).then_some(session.generation)
    }

    /// When [`ClientHub::run_timers`] should run next: an ack's deadline, or
    /// the next reconnection attempt.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # type Hub = std::sync::Arc<switchboard_async::socketio::client::ClientHub>;
    /// # struct ByHand(std::sync::mpsc::Sender<Hub>); // a driver that hands its hub over
    /// # impl switchboard_async::socketio::client::ClientDriver for ByHand {
    /// #     fn start(self, hub: Hub) {
    /// #         self.0.send(hub).unwrap()
    /// #     }
    /// # }
    /// # #[derive(Clone, Default)] // a session that keeps the text it is sent
    /// # struct Wire(std::sync::Arc<std::sync::Mutex<Vec<String>>>);
    /// # impl Wire {
    /// #     fn take(&self) -> Vec<String> {
    /// #         std::mem::take(&mut *self.0.lock().unwrap())
    /// #     }
    /// # }
    /// # impl switchboard_async::socketio::client::EngineLink for Wire {
    /// #     fn send(
    /// #         &self,
    /// #         message: switchboard_core::engineio::MessageData,
    /// #     ) -> Result<(), switchboard_core::engineio::client::ClientSendError> {
    /// #         if let switchboard_core::engineio::MessageData::Text(text) = message {
    /// #             self.0.lock().unwrap().push(text.as_str().to_owned());
    /// #         }
    /// #         Ok(())
    /// #     }
    /// #     fn close(&self) {}
    /// # }
    /// # let (driver, handed) = {
    /// #     let (tx, rx) = std::sync::mpsc::channel();
    /// #     (ByHand(tx), rx)
    /// # };
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000").build(driver)?;
    /// let hub = handed.recv()?;
    /// assert_eq!(hub.poll_timeout(), None); // nothing due
    /// let before = Instant::now();
    /// let _answer = socket.emit_with_ack("sum", &(1, 2), Duration::from_secs(5))?;
    /// let due = hub.poll_timeout().expect("the ack's deadline");
    /// assert!(due >= before + Duration::from_secs(5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn poll_timeout(&self) -> Option<Instant> {
        lock(&self.core).poll_timeout()
    }

    /// Runs the core's timers: fails the acks past their deadline, and starts
    /// a reconnection attempt when its delay is over (see
    /// [`ClientHub::session_closed`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_async::socketio::client::{AckError, ClientBuilder};
    /// # type Hub = std::sync::Arc<switchboard_async::socketio::client::ClientHub>;
    /// # struct ByHand(std::sync::mpsc::Sender<Hub>); // a driver that hands its hub over
    /// # impl switchboard_async::socketio::client::ClientDriver for ByHand {
    /// #     fn start(self, hub: Hub) {
    /// #         self.0.send(hub).unwrap()
    /// #     }
    /// # }
    /// # #[derive(Clone, Default)] // a session that keeps the text it is sent
    /// # struct Wire(std::sync::Arc<std::sync::Mutex<Vec<String>>>);
    /// # impl Wire {
    /// #     fn take(&self) -> Vec<String> {
    /// #         std::mem::take(&mut *self.0.lock().unwrap())
    /// #     }
    /// # }
    /// # impl switchboard_async::socketio::client::EngineLink for Wire {
    /// #     fn send(
    /// #         &self,
    /// #         message: switchboard_core::engineio::MessageData,
    /// #     ) -> Result<(), switchboard_core::engineio::client::ClientSendError> {
    /// #         if let switchboard_core::engineio::MessageData::Text(text) = message {
    /// #             self.0.lock().unwrap().push(text.as_str().to_owned());
    /// #         }
    /// #         Ok(())
    /// #     }
    /// #     fn close(&self) {}
    /// # }
    /// # let (driver, handed) = {
    /// #     let (tx, rx) = std::sync::mpsc::channel();
    /// #     (ByHand(tx), rx)
    /// # };
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000").build(driver)?;
    /// let hub = handed.recv()?;
    /// let answer = socket.emit_with_ack("sum", &(1, 2), Duration::ZERO)?;
    /// hub.run_timers(); // the deadline passed
    /// assert_eq!(answer.wait(), Err(AckError::Timeout));
    /// assert_eq!(hub.poll_timeout(), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run_timers(&self) {
        self.with_core(|core| core.handle_timeout(Instant::now()));
    }

    /// The session of `generation` opened, with Engine.IO session id `sid`:
    /// every namespace waiting for it sends its CONNECT over `link`. The link
    /// of a stale generation (the session was closed, or another asked for,
    /// meanwhile) is closed at once.
    ///
    /// ```
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # type Hub = std::sync::Arc<switchboard_async::socketio::client::ClientHub>;
    /// # struct ByHand(std::sync::mpsc::Sender<Hub>); // a driver that hands its hub over
    /// # impl switchboard_async::socketio::client::ClientDriver for ByHand {
    /// #     fn start(self, hub: Hub) {
    /// #         self.0.send(hub).unwrap()
    /// #     }
    /// # }
    /// # #[derive(Clone, Default)] // a session that keeps the text it is sent
    /// # struct Wire(std::sync::Arc<std::sync::Mutex<Vec<String>>>);
    /// # impl Wire {
    /// #     fn take(&self) -> Vec<String> {
    /// #         std::mem::take(&mut *self.0.lock().unwrap())
    /// #     }
    /// # }
    /// # impl switchboard_async::socketio::client::EngineLink for Wire {
    /// #     fn send(
    /// #         &self,
    /// #         message: switchboard_core::engineio::MessageData,
    /// #     ) -> Result<(), switchboard_core::engineio::client::ClientSendError> {
    /// #         if let switchboard_core::engineio::MessageData::Text(text) = message {
    /// #             self.0.lock().unwrap().push(text.as_str().to_owned());
    /// #         }
    /// #         Ok(())
    /// #     }
    /// #     fn close(&self) {}
    /// # }
    /// # let (driver, handed) = {
    /// #     let (tx, rx) = std::sync::mpsc::channel();
    /// #     (ByHand(tx), rx)
    /// # };
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000")
    ///     .auth(&serde_json::json!({ "token": "abc" }))
    ///     .build(driver)?;
    /// let hub = handed.recv()?;
    /// let generation = hub.take_open_request().unwrap();
    /// let wire = Wire::default();
    /// hub.session_opened(generation, Box::new(wire.clone()), "eio-sid");
    /// assert_eq!(wire.take(), [r#"0{"token":"abc"}"#]); // CONNECT with the auth
    /// assert!(hub.poll_timeout().is_none() && !socket.connected()); // waiting for the answer
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn session_opened(&self, generation: u64, link: Box<dyn EngineLink>, sid: &str) {
        let stale = self.with_core(|core| {
            // Under the core's lock, where its transmits are queued: a
            // close or open it asked for and not yet carried out also makes
            // this session stale (the core may be opening the next one).
            let moved_on = lock(&self.outbox)
                .iter()
                .any(|transmit| !matches!(transmit, ClientTransmit::Send(_)));
            let mut session = lock(&self.session);
            if session.generation != generation || moved_on {
                return Some(link);
            }
            session.link = Some(link);
            drop(session);
            core.handle_engine_open(sid, Instant::now());
            None
        });
        if let Some(link) = stale {
            link.close();
        }
    }

    /// The session of `generation` failed to open (`error` says why): the
    /// namespaces waiting for it get [`ConnectError::Transport`], and the
    /// client tries again later when reconnection is on. Stale generations are
    /// ignored.
    ///
    /// ```
    /// use switchboard_async::socketio::client::{ClientBuilder, ConnectError};
    /// # type Hub = std::sync::Arc<switchboard_async::socketio::client::ClientHub>;
    /// # struct ByHand(std::sync::mpsc::Sender<Hub>); // a driver that hands its hub over
    /// # impl switchboard_async::socketio::client::ClientDriver for ByHand {
    /// #     fn start(self, hub: Hub) {
    /// #         self.0.send(hub).unwrap()
    /// #     }
    /// # }
    /// # #[derive(Clone, Default)] // a session that keeps the text it is sent
    /// # struct Wire(std::sync::Arc<std::sync::Mutex<Vec<String>>>);
    /// # impl Wire {
    /// #     fn take(&self) -> Vec<String> {
    /// #         std::mem::take(&mut *self.0.lock().unwrap())
    /// #     }
    /// # }
    /// # impl switchboard_async::socketio::client::EngineLink for Wire {
    /// #     fn send(
    /// #         &self,
    /// #         message: switchboard_core::engineio::MessageData,
    /// #     ) -> Result<(), switchboard_core::engineio::client::ClientSendError> {
    /// #         if let switchboard_core::engineio::MessageData::Text(text) = message {
    /// #             self.0.lock().unwrap().push(text.as_str().to_owned());
    /// #         }
    /// #         Ok(())
    /// #     }
    /// #     fn close(&self) {}
    /// # }
    /// # let (driver, handed) = {
    /// #     let (tx, rx) = std::sync::mpsc::channel();
    /// #     (ByHand(tx), rx)
    /// # };
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000")
    ///     .reconnection(false)
    ///     .build(driver)?;
    /// let hub = handed.recv()?;
    /// let joining = socket.connect(); // also waits for the answer
    /// let generation = hub.take_open_request().unwrap();
    /// hub.session_failed(generation, "connection refused".to_owned());
    /// let error = ConnectError::Transport("connection refused".to_owned());
    /// assert_eq!(joining.wait(), Err(error));
    /// assert!(!socket.active()); // no reconnection
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn session_failed(&self, generation: u64, error: String) {
        if !self.current(generation) {
            return;
        }
        self.with_core(|core| core.handle_engine_error(error, Instant::now()));
    }

    /// A message arrived on the session of `generation` (stale generations
    /// are ignored). The handlers of sync events run before it returns.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # type Hub = std::sync::Arc<switchboard_async::socketio::client::ClientHub>;
    /// # struct ByHand(std::sync::mpsc::Sender<Hub>); // a driver that hands its hub over
    /// # impl switchboard_async::socketio::client::ClientDriver for ByHand {
    /// #     fn start(self, hub: Hub) {
    /// #         self.0.send(hub).unwrap()
    /// #     }
    /// # }
    /// # #[derive(Clone, Default)] // a session that keeps the text it is sent
    /// # struct Wire(std::sync::Arc<std::sync::Mutex<Vec<String>>>);
    /// # impl Wire {
    /// #     fn take(&self) -> Vec<String> {
    /// #         std::mem::take(&mut *self.0.lock().unwrap())
    /// #     }
    /// # }
    /// # impl switchboard_async::socketio::client::EngineLink for Wire {
    /// #     fn send(
    /// #         &self,
    /// #         message: switchboard_core::engineio::MessageData,
    /// #     ) -> Result<(), switchboard_core::engineio::client::ClientSendError> {
    /// #         if let switchboard_core::engineio::MessageData::Text(text) = message {
    /// #             self.0.lock().unwrap().push(text.as_str().to_owned());
    /// #         }
    /// #         Ok(())
    /// #     }
    /// #     fn close(&self) {}
    /// # }
    /// # let (driver, handed) = {
    /// #     let (tx, rx) = std::sync::mpsc::channel();
    /// #     (ByHand(tx), rx)
    /// # };
    ///
    /// let (news_tx, news) = mpsc::channel();
    /// let socket = ClientBuilder::new("http://localhost:3000")
    ///     .on("news", move |_socket, event| {
    ///         news_tx.send(event.arg::<String>(0).unwrap()).unwrap();
    ///     })
    ///     .build(driver)?;
    /// let hub = handed.recv()?;
    /// let generation = hub.take_open_request().unwrap();
    /// hub.session_opened(generation, Box::new(Wire::default()), "eio-sid");
    /// hub.session_message(generation, r#"0{"sid":"s1"}"#.into());
    /// hub.session_message(generation, r#"2["news","rain"]"#.into());
    /// assert_eq!(news.try_recv()?, "rain");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn session_message(&self, generation: u64, message: MessageData) {
        if !self.current(generation) {
            return;
        }
        self.with_core(|core| core.handle_engine_message(message, Instant::now()));
    }

    /// The session of `generation` closed on its own (stale generations are
    /// ignored): connected namespaces disconnect, and the client reconnects
    /// when reconnection is on.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use std::time::Duration;
    /// use switchboard_async::socketio::client::{ClientBuilder, DisconnectReason};
    /// use switchboard_core::engineio::client::ClientCloseReason;
    /// # type Hub = std::sync::Arc<switchboard_async::socketio::client::ClientHub>;
    /// # struct ByHand(std::sync::mpsc::Sender<Hub>); // a driver that hands its hub over
    /// # impl switchboard_async::socketio::client::ClientDriver for ByHand {
    /// #     fn start(self, hub: Hub) {
    /// #         self.0.send(hub).unwrap()
    /// #     }
    /// # }
    /// # #[derive(Clone, Default)] // a session that keeps the text it is sent
    /// # struct Wire(std::sync::Arc<std::sync::Mutex<Vec<String>>>);
    /// # impl Wire {
    /// #     fn take(&self) -> Vec<String> {
    /// #         std::mem::take(&mut *self.0.lock().unwrap())
    /// #     }
    /// # }
    /// # impl switchboard_async::socketio::client::EngineLink for Wire {
    /// #     fn send(
    /// #         &self,
    /// #         message: switchboard_core::engineio::MessageData,
    /// #     ) -> Result<(), switchboard_core::engineio::client::ClientSendError> {
    /// #         if let switchboard_core::engineio::MessageData::Text(text) = message {
    /// #             self.0.lock().unwrap().push(text.as_str().to_owned());
    /// #         }
    /// #         Ok(())
    /// #     }
    /// #     fn close(&self) {}
    /// # }
    /// # let (driver, handed) = {
    /// #     let (tx, rx) = std::sync::mpsc::channel();
    /// #     (ByHand(tx), rx)
    /// # };
    ///
    /// let (reasons_tx, reasons) = mpsc::channel();
    /// let socket = ClientBuilder::new("http://localhost:3000")
    ///     .reconnection_delay(Duration::ZERO) // reconnect at once, for the test
    ///     .on_disconnect(move |_socket, reason| reasons_tx.send(reason).unwrap())
    ///     .build(driver)?;
    /// let hub = handed.recv()?;
    /// let generation = hub.take_open_request().unwrap();
    /// hub.session_opened(generation, Box::new(Wire::default()), "eio-sid");
    /// hub.session_message(generation, r#"0{"sid":"s1"}"#.into());
    /// hub.session_closed(generation, ClientCloseReason::TransportClose);
    /// assert_eq!(reasons.try_recv()?, DisconnectReason::TransportClose);
    /// assert!(!socket.connected() && socket.active()); // reconnecting
    /// hub.run_timers(); // the delay is over
    /// assert!(hub.take_open_request().is_some()); // the next session
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn session_closed(&self, generation: u64, reason: ClientCloseReason) {
        {
            let mut session = lock(&self.session);
            if session.generation != generation {
                return;
            }
            session.link = None;
        }
        self.with_core(|core| core.handle_engine_close(reason, Instant::now()));
    }

    fn current(&self, generation: u64) -> bool {
        lock(&self.session).generation == generation
    }

    fn wake(&self) {
        if let Some(wake) = self.wake.get() {
            wake();
        }
    }

    /// Runs `f` on the core, then carries out what it produced and hands
    /// out its events, both outside the lock and in order.
    fn with_core<T>(&self, f: impl FnOnce(&mut Core) -> T) -> T {
        let (result, closed) = {
            let mut core = lock(&self.core);
            let before = core.poll_timeout();
            let result = f(&mut core);
            lock(&self.outbox).extend(std::iter::from_fn(|| core.poll_transmit()));
            let closed = {
                let mut events = lock(&self.events);
                while let Some(event) = core.poll_event() {
                    // The answer to the joins waiting now, and to no later
                    // one (a join made after a refusal is a new attempt).
                    let waiters = match &event {
                        ClientEvent::Connect { namespace, .. }
                        | ClientEvent::ConnectError { namespace, .. } => {
                            self.take_waiters(namespace)
                        }
                        _ => Vec::new(),
                    };
                    events.push_back(Queued { event, waiters });
                }
                self.unanswered_waiters(&core)
            };
            if core.poll_timeout() != before {
                self.wake();
            }
            (result, closed)
        };
        for waiter in closed {
            let _ = waiter.send(Err(ConnectError::Closed));
        }
        self.flush();
        self.deliver();
        result
    }

    /// The joins waiting on `namespace` (under the core's lock).
    fn take_waiters(&self, namespace: &str) -> Vec<Waiter> {
        self.entry(namespace)
            .map(|entry| std::mem::take(&mut *lock(&entry.waiters)))
            .unwrap_or_default()
    }

    /// The joins of namespaces that no longer want to be connected, with no
    /// answer coming (left, disconnected by the server while joining, or
    /// given up on): they get [`ConnectError::Closed`]. Under the core's
    /// lock, after the events that answered the others were queued.
    fn unanswered_waiters(&self, core: &Core) -> Vec<Waiter> {
        let mut closed = Vec::new();
        for entry in read(&self.sockets).values() {
            let mut waiters = lock(&entry.waiters);
            if !waiters.is_empty() && !core.is_active(&entry.namespace) {
                closed.append(&mut waiters);
            }
        }
        closed
    }

    fn flush(&self) {
        loop {
            let Ok(guard) = self.flushing.try_lock() else {
                return;
            };
            loop {
                // Taken off the queue under the session's lock: a session
                // reported opened meanwhile ([`session_opened`], which looks
                // for an open or close still queued) then waits for the
                // generation this one moves on to, instead of finding
                // neither and being taken for the current session.
                //
                // [`session_opened`]: Self::session_opened
                let mut session = lock(&self.session);
                let Some(transmit) = lock(&self.outbox).pop_front() else {
                    break;
                };
                match transmit {
                    ClientTransmit::Send(message) => {
                        if let Some(link) = &session.link {
                            if let Err(error) = link.send(message) {
                                tracing::debug!(%error, "Socket.IO packet not sent");
                            }
                        }
                    }
                    ClientTransmit::Open => {
                        session.generation += 1;
                        session.open_requested = true;
                        session.link = None;
                        drop(session);
                        self.wake();
                    }
                    ClientTransmit::Close => {
                        session.generation += 1;
                        session.open_requested = false;
                        if let Some(link) = session.link.take() {
                            link.close();
                        }
                    }
                }
            }
            drop(guard);
            if lock(&self.outbox).is_empty() {
                return;
            }
        }
    }

    fn deliver(&self) {
        let Some(hub) = self.this.upgrade() else {
            return;
        };
        loop {
            let Ok(guard) = self.delivering.try_lock() else {
                return;
            };
            loop {
                let Some(Queued { event, waiters }) = lock(&self.events).pop_front() else {
                    break;
                };
                run_handler(|| hub.dispatch(event, waiters));
            }
            drop(guard);
            if lock(&self.events).is_empty() {
                return;
            }
        }
    }

    fn run<A: Send + 'static>(&self, callback: &Callback<A>, arg: A) {
        match callback {
            Callback::Sync(f) => f(arg),
            Callback::Async(f) => {
                let pass = self.handlers_running.enter();
                let handler = f(arg);
                spawn_handler(self.spawner.get(), async move {
                    handler.await;
                    drop(pass);
                });
            }
        }
    }

    fn entry(&self, namespace: &str) -> Option<Arc<SocketEntry>> {
        read(&self.sockets).get(namespace).cloned()
    }

    fn socket(self: &Arc<Self>, namespace: &str) -> Option<ClientSocket> {
        Some(ClientSocket {
            entry: self.entry(namespace)?,
            hub: self.clone(),
        })
    }

    fn dispatch(self: &Arc<Self>, event: ClientEvent, waiters: Vec<Waiter>) {
        match event {
            ClientEvent::Connect { namespace, .. } => {
                for waiter in waiters {
                    let _ = waiter.send(Ok(()));
                }
                let Some(socket) = self.socket(&namespace) else {
                    return;
                };
                let handlers = read(&socket.entry.handlers).connect.clone();
                for handler in &handlers {
                    self.run(handler, socket.clone());
                }
            }
            ClientEvent::ConnectError { namespace, error } => {
                for waiter in waiters {
                    let _ = waiter.send(Err(error.clone()));
                }
                let Some(socket) = self.socket(&namespace) else {
                    return;
                };
                let handlers = read(&socket.entry.handlers).connect_error.clone();
                for handler in &handlers {
                    self.run(handler, (socket.clone(), error.clone()));
                }
            }
            ClientEvent::Event {
                namespace,
                connection,
                packet,
            } => {
                let Some(socket) = self.socket(&namespace) else {
                    return;
                };
                let Some(name) = packet.event_name().map(|name| name.into_owned()) else {
                    return;
                };
                let handler = {
                    let handlers = read(&socket.entry.handlers);
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
                    connection,
                    id,
                });
                let event = Event::new(name, packet, ack);
                self.run(&handler, (socket, event));
            }
            ClientEvent::Ack { id, packet, .. } => {
                let slot = lock(&self.acks).remove(&id);
                let answer = Payload::from_packet(&packet).map_err(|error| {
                    tracing::debug!(%error, "unreadable ack");
                    AckError::Disconnected
                });
                complete(slot, answer);
            }
            ClientEvent::AckFailed { id, error, .. } => {
                let slot = lock(&self.acks).remove(&id);
                complete(slot, Err(error));
            }
            ClientEvent::Disconnect { namespace, reason } => {
                let Some(socket) = self.socket(&namespace) else {
                    return;
                };
                let handlers = read(&socket.entry.handlers).disconnect.clone();
                for handler in &handlers {
                    self.run(handler, (socket.clone(), reason));
                }
            }
            ClientEvent::ReconnectAttempt { attempt } => {
                let handlers = read(&self.manager).reconnect_attempt.clone();
                for handler in &handlers {
                    handler(attempt);
                }
            }
            ClientEvent::Reconnected { attempt } => {
                let handlers = read(&self.manager).reconnect.clone();
                for handler in &handlers {
                    handler(attempt);
                }
            }
            ClientEvent::ReconnectFailed => {
                let handlers = read(&self.manager).reconnect_failed.clone();
                for handler in &handlers {
                    handler();
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The application's handles.

/// A Socket.IO client: one Engine.IO session at a time (reopened on its
/// own after a loss), shared by the namespaces joined over it (Node's
/// `Manager`). Cloning is cheap.
///
/// Two namespaces over one session, as with socket.io-client's
/// `socket.io.socket("/admin")`:
///
/// ```
/// use switchboard_async::socketio::client::ClientBuilder;
/// # async fn run<R: switchboard_async::Runtime>(runtime: R) -> Result<(), Box<dyn std::error::Error>> {
/// let socket = ClientBuilder::new("http://localhost:3000").connect(runtime).await?;
/// let io = socket.io();
/// io.on_reconnect(|attempts| println!("back after {attempts} attempts"));
///
/// let admin = io.socket("/admin");
/// admin.on("stats", |_admin, event| println!("stats: {:?}", event.payload().values()));
/// admin.connect_with_auth(&serde_json::json!({ "token": "secret" }))?.await?;
/// admin.emit("subscribe", "load")?;
/// // ...
/// io.disconnect(); // leaves `/` and `/admin`, and closes the session
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SocketIoClient {
    hub: Arc<ClientHub>,
}

impl fmt::Debug for SocketIoClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketIoClient").finish_non_exhaustive()
    }
}

impl SocketIoClient {
    /// A client for the Engine.IO endpoint `engine`, run by `driver`. It
    /// opens no session until a namespace connects. At most
    /// [`DEFAULT_MAX_RUNNING_HANDLERS`] async handlers run at once (see
    /// [`SocketIoClient::with_max_running_handlers`]). [`ClientBuilder`]
    /// makes both configurations from a URL; here, for protocol v4, set
    /// `engine.version` to match (as [`ClientBuilder::protocol`] does).
    ///
    /// ```
    /// use switchboard_async::socketio::client::{CoreConfig, SocketIoClient};
    /// use switchboard_core::engineio::client::ClientConfig as EngineConfig;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let engine = EngineConfig::from_url("http://localhost:3000/socket.io/")?;
    /// let config = CoreConfig { reconnection_attempts: Some(5), ..CoreConfig::default() };
    /// let io = SocketIoClient::new(runtime, engine, config)?;
    /// assert!(!io.is_open()); // no session yet
    /// let chat = io.socket("/chat");
    /// let _joining = chat.connect(); // now one is asked for
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(
        driver: impl ClientDriver,
        engine: EngineConfig,
        config: CoreConfig,
    ) -> Result<Self, BuildError> {
        Self::with_max_running_handlers(driver, engine, config, DEFAULT_MAX_RUNNING_HANDLERS)
    }

    /// [`SocketIoClient::new`] letting `max_running_handlers` async
    /// handlers run at once: at the limit the client reads nothing more
    /// from the server until one of them ends.
    ///
    /// ```
    /// use switchboard_async::socketio::client::{CoreConfig, SocketIoClient};
    /// use switchboard_core::engineio::client::ClientConfig as EngineConfig;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let engine = EngineConfig::from_url("http://localhost:3000/socket.io/")?;
    /// let config = CoreConfig::default();
    /// let io = SocketIoClient::with_max_running_handlers(runtime, engine, config, 16)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_max_running_handlers(
        driver: impl ClientDriver,
        engine: EngineConfig,
        config: CoreConfig,
        max_running_handlers: usize,
    ) -> Result<Self, BuildError> {
        if engine.secure {
            return Err(BuildError::TlsUnsupported);
        }
        // Checked now rather than at each attempt.
        switchboard_core::engineio::client::Client::new(engine.clone(), Instant::now())?;
        let hub = Arc::new_cyclic(|this| ClientHub {
            core: Mutex::new(Core::new(config)),
            engine_config: engine,
            outbox: Mutex::new(VecDeque::new()),
            flushing: Mutex::new(()),
            events: Mutex::new(VecDeque::new()),
            delivering: Mutex::new(()),
            session: Mutex::new(Session::default()),
            wake: OnceLock::new(),
            spawner: OnceLock::new(),
            handlers_running: HandlerGate::new(max_running_handlers),
            sockets: RwLock::new(HashMap::new()),
            manager: RwLock::new(ManagerHandlers::default()),
            acks: Mutex::new(HashMap::new()),
            this: this.clone(),
        });
        driver.start(hub.clone());
        Ok(SocketIoClient { hub })
    }

    /// Connects to the server at `url` with the default settings, joining
    /// the namespace the URL's path names (`/` without a path), as
    /// socket.io-client's `io(url)`; see [`ClientBuilder`] for more.
    ///
    /// ```
    /// use switchboard_async::socketio::client::SocketIoClient;
    /// # async fn run<R: switchboard_async::Runtime>(runtime: R) -> Result<(), Box<dyn std::error::Error>> {
    /// let socket = SocketIoClient::connect(runtime, "http://localhost:3000/chat").await?;
    /// assert_eq!(socket.namespace(), "/chat");
    /// socket.emit("message", "hello")?;
    /// # Ok(()) }
    /// ```
    pub fn connect(driver: impl ClientDriver, url: &str) -> Connecting {
        ClientBuilder::new(url).connect(driver)
    }

    /// The socket of `namespace` (`/` or a path such as `/admin`; the
    /// leading `/` may be left out), made on first use, not connected
    /// until [`ClientSocket::connect`].
    ///
    /// ```
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000").build(runtime)?;
    /// let io = socket.io();
    /// let admin = io.socket("admin");
    /// assert_eq!(admin.namespace(), "/admin");
    /// assert!(!admin.active()); // not joined yet
    /// let _joining = admin.connect(); // over the same session as `/`
    /// assert!(io.socket("/admin").active()); // the same socket
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn socket(&self, namespace: &str) -> ClientSocket {
        let namespace = match namespace {
            "" => "/".to_owned(),
            name if name.starts_with('/') => name.to_owned(),
            name => format!("/{name}"),
        };
        let entry = write(&self.hub.sockets)
            .entry(namespace.clone())
            .or_insert_with(|| {
                Arc::new(SocketEntry {
                    namespace,
                    handlers: RwLock::new(SocketHandlers::default()),
                    waiters: Mutex::new(Vec::new()),
                })
            })
            .clone();
        ClientSocket {
            entry,
            hub: self.hub.clone(),
        }
    }

    /// Leaves every namespace (DISCONNECT, `io client disconnect`) and
    /// closes the session; nothing reconnects until a namespace connects
    /// again. Joins still waiting for an answer fail with
    /// [`ConnectError::Closed`]. (python-socketio's `sio.disconnect()`.)
    ///
    /// ```
    /// use switchboard_async::socketio::client::{ClientBuilder, ConnectError};
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000").build(runtime)?;
    /// let io = socket.io();
    /// let admin = io.socket("/admin");
    /// let joining = admin.connect();
    /// io.disconnect();
    /// assert!(!socket.active() && !admin.active());
    /// assert_eq!(joining.wait(), Err(ConnectError::Closed));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn disconnect(&self) {
        self.hub.with_core(Core::close);
    }

    /// Whether an Engine.IO session is open (example:
    /// [`SocketIoClient::new`]).
    pub fn is_open(&self) -> bool {
        lock(&self.hub.core).is_engine_open()
    }

    /// Runs `handler` when a reconnection attempt starts, with its number
    /// (from 1), as socket.io-client's `socket.io.on("reconnect_attempt")`.
    /// Reconnection handlers run where the event is delivered: keep them
    /// short.
    ///
    /// ```
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000")
    ///     .reconnection_attempts(5)
    ///     .build(runtime)?;
    /// socket.io().on_reconnect_attempt(|attempt| println!("reconnecting ({attempt} of 5)"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_reconnect_attempt(&self, handler: impl Fn(u32) + Send + Sync + 'static) {
        write(&self.hub.manager)
            .reconnect_attempt
            .push(Arc::new(handler));
    }

    /// Runs `handler` when a reconnection succeeded, with the number of
    /// attempts it took (`socket.io.on("reconnect")`). The namespaces then
    /// join again; their connect handlers run once each has.
    ///
    /// ```
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000").build(runtime)?;
    /// socket.io().on_reconnect(|attempts| println!("reconnected after {attempts} attempt(s)"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_reconnect(&self, handler: impl Fn(u32) + Send + Sync + 'static) {
        write(&self.hub.manager).reconnect.push(Arc::new(handler));
    }

    /// Runs `handler` when every allowed reconnection attempt failed
    /// ([`ClientBuilder::reconnection_attempts`];
    /// `socket.io.on("reconnect_failed")`).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000")
    ///     .reconnection_attempts(3)
    ///     .build(runtime)?;
    /// let gave_up = Arc::new(AtomicBool::new(false));
    /// let flag = Arc::clone(&gave_up);
    /// socket.io().on_reconnect_failed(move || flag.store(true, Ordering::Relaxed));
    /// // ... the application's loop stops once `gave_up` is set.
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_reconnect_failed(&self, handler: impl Fn() + Send + Sync + 'static) {
        write(&self.hub.manager)
            .reconnect_failed
            .push(Arc::new(handler));
    }
}

/// The client's connection to one namespace (Node's `Socket`). Cloning is
/// cheap: clones are the same connection, and each handler gets one.
///
/// ```
/// use switchboard_async::socketio::client::ClientBuilder;
/// # #[derive(Clone, Copy)]
/// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
/// # impl switchboard_async::socketio::client::ClientDriver for Offline {
/// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
/// # }
/// # let runtime = Offline;
///
/// let socket = ClientBuilder::new("http://localhost:3000").build(runtime)?;
/// socket.on("ping", |socket, _event| {
///     let _ = socket.emit("pong", &());
/// });
/// let for_later = socket.clone();
/// for_later.emit("hello", "world")?; // waits in the buffer until connected
/// assert_eq!(for_later.namespace(), socket.namespace());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ClientSocket {
    entry: Arc<SocketEntry>,
    hub: Arc<ClientHub>,
}

impl fmt::Debug for ClientSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSocket")
            .field("namespace", &self.entry.namespace)
            .field("id", &self.id())
            .finish()
    }
}

impl ClientSocket {
    /// The namespace (example: [`ClientSocket::active`]).
    pub fn namespace(&self) -> &str {
        &self.entry.namespace
    }

    /// The socket id the server gave, while connected (socket.io-client's
    /// `socket.id`).
    ///
    /// ```
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000")
    ///     .on_connect(|socket| println!("connected as {}", socket.id().unwrap_or_default()))
    ///     .build(runtime)?;
    /// assert_eq!(socket.id(), None); // not connected
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn id(&self) -> Option<String> {
        lock(&self.hub.core)
            .sid(&self.entry.namespace)
            .map(str::to_owned)
    }

    /// Whether the namespace is connected (example:
    /// [`ClientSocket::active`]).
    pub fn connected(&self) -> bool {
        lock(&self.hub.core).is_connected(&self.entry.namespace)
    }

    /// Whether the namespace wants to be connected (connected, or waiting
    /// for the session, a reconnection or the server's answer;
    /// socket.io-client's `socket.active`).
    ///
    /// ```
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000/admin").build(runtime)?;
    /// assert_eq!(socket.namespace(), "/admin");
    /// assert!(socket.active() && !socket.connected()); // waiting for the session
    /// socket.disconnect();
    /// assert!(!socket.active()); // left: not joined again
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn active(&self) -> bool {
        lock(&self.hub.core).is_active(&self.entry.namespace)
    }

    /// The client (the shared session; socket.io-client's `socket.io`).
    ///
    /// ```
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000").build(runtime)?;
    /// socket.io().on_reconnect(|attempts| println!("reconnected after {attempts} attempt(s)"));
    /// let admin = socket.io().socket("/admin"); // another namespace, same session
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn io(&self) -> SocketIoClient {
        SocketIoClient {
            hub: self.hub.clone(),
        }
    }

    /// Joins the namespace with the auth payload given before (if any);
    /// the future resolves once the server answered (or the session could
    /// not be opened), at once when the namespace is connected already.
    /// Reconnections join again on their own; this is for a namespace left
    /// ([`ClientSocket::disconnect`]) or one the server disconnected.
    ///
    /// ```
    /// use switchboard_async::socketio::client::{ClientBuilder, DisconnectReason};
    /// # async fn run<R: switchboard_async::Runtime>(runtime: R) -> Result<(), Box<dyn std::error::Error>> {
    /// let socket = ClientBuilder::new("http://localhost:3000").connect(runtime).await?;
    /// socket.on_disconnect(|socket, reason| {
    ///     if reason == DisconnectReason::IoServerDisconnect {
    ///         let _ = socket.connect(); // kicked out: join again
    ///     }
    /// });
    /// socket.disconnect();
    /// // ... later
    /// socket.connect().await?;
    /// # Ok(()) }
    /// ```
    pub fn connect(&self) -> ConnectFuture {
        self.connect_inner(None)
    }

    /// Joins the namespace with `auth` as the CONNECT's payload (kept for
    /// reconnections). For a namespace connected or joining already, `auth`
    /// is kept for its next CONNECT (after a reconnection), and the future
    /// answers as [`ClientSocket::connect`]'s does.
    ///
    /// ```
    /// use serde_json::json;
    /// use switchboard_async::socketio::client::{ClientBuilder, ConnectError};
    /// # async fn run<R: switchboard_async::Runtime>(runtime: R) -> Result<(), Box<dyn std::error::Error>> {
    /// let socket = ClientBuilder::new("http://localhost:3000").connect(runtime).await?;
    /// let admin = socket.io().socket("/admin");
    /// match admin.connect_with_auth(&json!({ "token": "secret" }))?.await {
    ///     Ok(()) => println!("admin as {:?}", admin.id()),
    ///     Err(ConnectError::Refused { message, .. }) => eprintln!("not let in: {message}"),
    ///     Err(error) => return Err(error.into()),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn connect_with_auth<T: Serialize + ?Sized>(
        &self,
        auth: &T,
    ) -> Result<ConnectFuture, BuildError> {
        let auth = RawJson::from_serialize(auth).map_err(|e| BuildError::Auth(e.to_string()))?;
        Ok(self.connect_inner(Some(auth)))
    }

    fn connect_inner(&self, auth: Option<RawJson>) -> ConnectFuture {
        let (tx, rx) = oneshot::channel();
        self.hub.with_core(|core| {
            let namespace = &self.entry.namespace;
            core.connect(namespace, auth, Instant::now());
            if core.is_connected(namespace) {
                let _ = tx.send(Ok(()));
            } else {
                // Under the core's lock: answered by the core's next word
                // on the namespace (see `ClientHub::with_core`).
                let mut waiters = lock(&self.entry.waiters);
                // Joins given up on (their future dropped) need no answer.
                waiters.retain(|waiter| !waiter.is_canceled());
                waiters.push(tx);
            }
        });
        ConnectFuture { rx }
    }

    /// Handles event `event` with a sync handler (replacing an earlier
    /// one); the [`Event`] carries the [`Ack`] when the server asked for
    /// one. It runs where the event is delivered: keep it short, and do not
    /// wait in it for an ack ([`ClientSocket::on_async`] may).
    ///
    /// ```
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000").build(runtime)?;
    /// // socket.on("question", (text, callback) => callback("42"))
    /// socket.on("question", |_socket, mut event| {
    ///     let text: String = event.arg(0).unwrap_or_default();
    ///     println!("asked: {text}");
    ///     if let Some(ack) = event.take_ack() {
    ///         let _ = ack.send("42");
    ///     }
    /// });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on(&self, event: &str, handler: impl Fn(ClientSocket, Event) + Send + Sync + 'static) {
        write(&self.entry.handlers).events.insert(
            event.to_owned(),
            Callback::Sync(Arc::new(move |(s, e)| handler(s, e))),
        );
    }

    /// Handles event `event` with an async handler, spawned per event
    /// (replacing an earlier handler), at most
    /// [`ClientBuilder::max_running_handlers`] at once.
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000").build(runtime)?;
    /// socket.on_async("job", |socket, event| async move {
    ///     let id: u64 = event.arg(0).unwrap_or_default();
    ///     // An async handler may wait for an ack of its own.
    ///     let Ok(claim) = socket.emit_with_ack("claim", &(id,), Duration::from_secs(5)) else {
    ///         return;
    ///     };
    ///     if let Ok(answer) = claim.await {
    ///         println!("job {id}: {:?}", answer.values());
    ///     }
    /// });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_async<F, Fut>(&self, event: &str, handler: F)
    where
        F: Fn(ClientSocket, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let f: Arc<dyn Fn((ClientSocket, Event)) -> BoxFuture + Send + Sync> =
            Arc::new(move |(s, e)| Box::pin(handler(s, e)));
        write(&self.entry.handlers)
            .events
            .insert(event.to_owned(), Callback::Async(f));
    }

    /// Handles every event that has no handler of its own (replacing an
    /// earlier catch-all), like python-socketio's `@sio.on("*")`; unlike
    /// socket.io-client's `onAny`, it does not see the events that have one.
    ///
    /// ```
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000").build(runtime)?;
    /// socket.on("chat", |_socket, _event| { /* chat only */ });
    /// socket.on_any(|_socket, event| {
    ///     println!("unhandled {}: {:?}", event.name(), event.payload().values());
    /// });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_any(&self, handler: impl Fn(ClientSocket, Event) + Send + Sync + 'static) {
        write(&self.entry.handlers).any =
            Some(Callback::Sync(Arc::new(move |(s, e)| handler(s, e))));
    }

    /// Runs `handler` each time the namespace connects (again after a
    /// reconnection). Handlers add up: each one given runs.
    ///
    /// ```
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000").build(runtime)?;
    /// socket.on_connect(|socket| {
    ///     // After a reconnection too: subscribe again.
    ///     let _ = socket.emit("subscribe", "news");
    /// });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_connect(&self, handler: impl Fn(ClientSocket) + Send + Sync + 'static) {
        write(&self.entry.handlers)
            .connect
            .push(Callback::Sync(Arc::new(handler)));
    }

    /// Runs `handler` each time the namespace disconnects, with the reason
    /// (`io server disconnect`, `transport close`, ...). Handlers add up.
    ///
    /// ```
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000").build(runtime)?;
    /// socket.on_disconnect(|_socket, reason| {
    ///     if reason.reconnects() {
    ///         println!("lost ({reason}): reconnecting");
    ///     } else {
    ///         println!("disconnected ({reason})"); // left, or kicked out
    ///     }
    /// });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_disconnect(
        &self,
        handler: impl Fn(ClientSocket, DisconnectReason) + Send + Sync + 'static,
    ) {
        write(&self.entry.handlers)
            .disconnect
            .push(Callback::Sync(Arc::new(move |(s, r)| handler(s, r))));
    }

    /// Runs `handler` when joining the namespace fails: refused by the
    /// server (CONNECT_ERROR), or the session could not be opened. Handlers
    /// add up.
    ///
    /// ```
    /// use switchboard_async::socketio::client::{ClientBuilder, ConnectError};
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000").build(runtime)?;
    /// socket.on_connect_error(|_socket, error| match error {
    ///     // A middleware's `next(new Error("not authorized"))`: not retried.
    ///     ConnectError::Refused { message, data } => eprintln!("refused: {message} {data:?}"),
    ///     // Retried as the reconnection settings say.
    ///     ConnectError::Transport(why) => eprintln!("server unreachable: {why}"),
    ///     _ => {}
    /// });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_connect_error(
        &self,
        handler: impl Fn(ClientSocket, ConnectError) + Send + Sync + 'static,
    ) {
        write(&self.entry.handlers)
            .connect_error
            .push(Callback::Sync(Arc::new(move |(s, e)| handler(s, e))));
    }

    /// Emits `event` with `args` (see
    /// [`encode_event`](switchboard_core::socketio::encode_event) for how
    /// `args` become arguments: a tuple or array spreads, anything else is
    /// one argument). Sent at once when connected; buffered otherwise, and
    /// sent once the namespace is connected. As in Node's client, that
    /// includes after [`ClientSocket::disconnect`]: the emit waits for a
    /// [`ClientSocket::connect`] (check [`ClientSocket::connected`] first
    /// to drop it instead); [`EmitError::BufferFull`] past
    /// `max_buffered_packets`.
    ///
    /// ```
    /// use switchboard_async::socketio::client::{ClientBuilder, EmitError};
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000").build(runtime)?;
    /// socket.emit("chat", "hello")?; // one argument
    /// socket.emit("move", &(3, 4))?; // a tuple spreads: two arguments
    /// socket.emit("scores", &(vec![1, 2],))?; // one array argument
    /// socket.emit("ping", &())?; // no argument
    /// // Names the official clients keep for themselves are refused:
    /// assert!(matches!(socket.emit("disconnect", &()), Err(EmitError::Encode(_))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, args: &T) -> Result<(), EmitError> {
        self.hub
            .with_core(|core| core.emit(&self.entry.namespace, event, args))
    }

    /// Emits `event` asking for an ack within `timeout`; `callback` gets
    /// the answer's arguments, or why none came. It runs where the answer is
    /// delivered, like a sync handler: keep it short. (Dropped uncalled if
    /// the client is dropped first.)
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_async::socketio::client::{AckError, ClientBuilder};
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000").build(runtime)?;
    /// // socket.timeout(5000).emit("sum", 1, 2, (err, total) => ...)
    /// let timeout = Duration::from_secs(5);
    /// socket.emit_with_ack_callback("sum", &(1, 2), timeout, |answer| match answer {
    ///     Ok(total) => println!("1 + 2 = {:?}", total.arg::<i64>(0)),
    ///     Err(AckError::Timeout) => eprintln!("no answer within 5 s"),
    ///     Err(AckError::Disconnected) => eprintln!("disconnected before the answer"),
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
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
    /// [`AckFuture::wait`] on threads). The timeout runs from now, also
    /// while the emit waits in the buffer. Do not block on it in a sync
    /// handler (use [`ClientSocket::emit_with_ack_callback`] there).
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_async::socketio::client::{AckError, ClientSocket};
    /// # async fn run(socket: ClientSocket) -> Result<(), Box<dyn std::error::Error>> {
    /// // python-socketio: total = await sio.call("sum", (1, 2), timeout=5)
    /// match socket.emit_with_ack("sum", &(1, 2), Duration::from_secs(5))?.await {
    ///     Ok(answer) => println!("1 + 2 = {}", answer.arg::<i64>(0)?),
    ///     Err(AckError::Timeout) => eprintln!("no answer within 5 s"),
    ///     Err(AckError::Disconnected) => eprintln!("disconnected before the answer"),
    /// }
    /// # Ok(()) }
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
            let id = core.emit_with_ack(
                &self.entry.namespace,
                event,
                args,
                Some(timeout),
                Instant::now(),
            )?;
            // Registered before the packet leaves (the flush comes after).
            if let Some(slot) = slot.take() {
                lock(&self.hub.acks).insert(id, slot);
            }
            Ok(())
        })
    }

    /// Leaves the namespace: DISCONNECT to the server, `io client
    /// disconnect` to the disconnect handlers; no reconnection joins it
    /// again. The session closes when no namespace is left. A join still
    /// waiting for its answer fails with [`ConnectError::Closed`].
    ///
    /// ```
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000").build(runtime)?;
    /// socket.disconnect();
    /// assert!(!socket.active()); // reconnections leave it out
    /// // An emit now would wait for a later connect(); drop it instead:
    /// if socket.connected() {
    ///     socket.emit("bye", &())?;
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn disconnect(&self) {
        // A join waiting for its answer is answered `Closed` under the
        // core's lock; one a disconnect handler makes is a new one.
        self.hub
            .with_core(|core| core.disconnect(&self.entry.namespace));
    }
}

/// An event from the server (see [`super::Event`]): its name, its
/// arguments, read typed or as they came, and the [`Ack`] when the server
/// asked for an answer.
///
/// ```
/// use switchboard_async::socketio::client::{ClientBuilder, ClientSocket, Event};
/// # #[derive(Clone, Copy)]
/// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
/// # impl switchboard_async::socketio::client::ClientDriver for Offline {
/// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
/// # }
/// # let runtime = Offline;
///
/// fn on_order(_socket: ClientSocket, mut event: Event) {
///     assert_eq!(event.name(), "order");
///     let Ok((item, quantity)) = event.args::<(String, u32)>() else {
///         return; // not the arguments expected
///     };
///     let raw = event.payload(); // JSON values and binary attachments, as received
///     println!("{quantity} x {item} ({} arguments)", raw.len());
///     if let Some(ack) = event.take_ack() {
///         let _ = ack.send(&("ok", quantity));
///     }
/// }
/// let socket = ClientBuilder::new("http://localhost:3000")
///     .on("order", on_order)
///     .build(runtime)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type Event = super::Event<Ack>;

/// The answer the server asked for with its event; send it once (the
/// callback a socket.io-client handler gets last, or the return value of
/// a python-socketio one).
///
/// ```
/// use switchboard_async::socketio::client::ClientBuilder;
/// # #[derive(Clone, Copy)]
/// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
/// # impl switchboard_async::socketio::client::ClientDriver for Offline {
/// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
/// # }
/// # let runtime = Offline;
///
/// let socket = ClientBuilder::new("http://localhost:3000").build(runtime)?;
/// socket.on("sum", |_socket, mut event| {
///     let (a, b): (i64, i64) = event.args().unwrap_or_default();
///     if let Some(ack) = event.take_ack() {
///         let _ = ack.send(&(a + b,));
///     }
/// });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Ack {
    socket: ClientSocket,
    /// The connection of the namespace the event came on.
    connection: u64,
    id: u64,
}

impl Ack {
    /// Answers with `args` (arguments as for [`ClientSocket::emit`]), at
    /// once; [`EmitError::NotConnected`] when the namespace disconnected
    /// since the event came, even if it has connected again (the answer
    /// belongs to the connection that asked).
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_async::socketio::client::{ClientBuilder, EmitError};
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000").build(runtime)?;
    /// socket.on_async("report", |_socket, mut event| async move {
    ///     let Some(ack) = event.take_ack() else { return };
    ///     let report = "...".to_owned(); // slow work, awaited here
    ///     if let Err(EmitError::NotConnected) = ack.send(&(report,)) {
    ///         eprintln!("disconnected meanwhile: the report is lost");
    ///     }
    /// });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send<T: Serialize + ?Sized>(self, args: &T) -> Result<(), EmitError> {
        let Ack {
            socket,
            connection,
            id,
        } = self;
        socket
            .hub
            .with_core(|core| core.ack(&socket.entry.namespace, connection, id, args))
    }
}

pub use super::AckFuture;

/// The server's answer to [`ClientSocket::connect`]: `.await` it, or
/// [`ConnectFuture::wait`] on threads. Dropping it changes nothing: the
/// namespace keeps joining.
///
/// ```
/// use switchboard_async::socketio::client::{ClientSocket, ConnectError};
/// # async fn run(socket: ClientSocket) -> Result<(), Box<dyn std::error::Error>> {
/// let admin = socket.io().socket("/admin");
/// match admin.connect().await {
///     Ok(()) => println!("in /admin as {:?}", admin.id()),
///     Err(ConnectError::Refused { message, data }) => eprintln!("refused: {message} {data:?}"),
///     Err(ConnectError::Transport(why)) => eprintln!("no session: {why}"),
///     Err(error) => eprintln!("{error}"), // left before the answer came
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ConnectFuture {
    rx: oneshot::Receiver<Result<(), ConnectError>>,
}

impl ConnectFuture {
    /// Blocks the thread until the answer comes (for threads; not in a
    /// handler, nor in async code).
    ///
    /// ```
    /// use switchboard_async::socketio::client::{ClientBuilder, ConnectError};
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000").build(runtime)?;
    /// let joining = socket.connect();
    /// socket.disconnect(); // gave up before the server answered
    /// assert_eq!(joining.wait(), Err(ConnectError::Closed));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait(self) -> Result<(), ConnectError> {
        block_on(self)
    }
}

impl Future for ConnectFuture {
    type Output = Result<(), ConnectError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|answer| answer.unwrap_or(Err(ConnectError::Closed)))
    }
}

/// A connection being made by [`ClientBuilder::connect`]: `.await` it, or
/// [`Connecting::wait`] on threads. On failure the client is closed (no
/// reconnection continues).
///
/// ```
/// use switchboard_async::socketio::client::{ClientBuilder, ConnectError};
/// # async fn run<R: switchboard_async::Runtime>(runtime: R) -> Result<(), Box<dyn std::error::Error>> {
/// let connecting = ClientBuilder::new("http://localhost:3000")
///     .auth(&serde_json::json!({ "token": "expired" }))
///     .connect(runtime);
/// let socket = match connecting.await {
///     Ok(socket) => socket,
///     Err(ConnectError::Refused { message, data }) => {
///         eprintln!("refused: {message} ({data:?})");
///         return Ok(());
///     }
///     Err(error) => return Err(error.into()), // the server is not there
/// };
/// socket.emit("hello", &())?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Connecting {
    state: Result<(ClientSocket, ConnectFuture), Option<ConnectError>>,
}

impl Connecting {
    /// Blocks the thread until the namespace is connected or refused (for
    /// threads; not in a handler, nor in async code).
    ///
    /// ```
    /// use switchboard_async::socketio::client::{ClientBuilder, ConnectError};
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// // No TLS yet: the connection fails at once.
    /// let connecting = ClientBuilder::new("https://localhost:3000").connect(runtime);
    /// let error = connecting.wait().unwrap_err();
    /// let expected = "TLS is not supported by this driver".to_owned();
    /// assert_eq!(error, ConnectError::Transport(expected));
    /// ```
    pub fn wait(self) -> Result<ClientSocket, ConnectError> {
        block_on(self)
    }
}

impl Future for Connecting {
    type Output = Result<ClientSocket, ConnectError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (socket, future) = match &mut self.state {
            Ok(pair) => pair,
            Err(error) => {
                return Poll::Ready(Err(error.take().unwrap_or(ConnectError::Closed)));
            }
        };
        let answer = std::task::ready!(Pin::new(future).poll(cx));
        let socket = socket.clone();
        self.state = Err(None);
        Poll::Ready(match answer {
            Ok(()) => Ok(socket),
            Err(error) => {
                socket.disconnect();
                Err(error)
            }
        })
    }
}

// ---------------------------------------------------------------------------
// The builder.

type Setup = Box<dyn FnOnce(&ClientSocket) + Send>;

/// Sets a client up and connects it to one namespace.
///
/// The URL's path is the namespace, as with Node's `io(url)`
/// (`http://host:3000/admin` joins `/admin`); the Engine.IO path is
/// `/socket.io/` unless [`ClientBuilder::path`] says otherwise; the URL's
/// query goes with every request. Handlers given here are in place before
/// the first event can arrive.
///
/// ```
/// use std::time::Duration;
/// use switchboard_async::socketio::client::{ClientBuilder, Transport};
/// # #[derive(Clone, Copy)]
/// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
/// # impl switchboard_async::socketio::client::ClientDriver for Offline {
/// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
/// # }
/// # let runtime = Offline;
///
/// // io("http://localhost:3000/chat", { auth: {...}, transports: ["websocket"], ... })
/// let socket = ClientBuilder::new("http://localhost:3000/chat")
///     .auth(&serde_json::json!({ "token": "abc" }))
///     .transports([Transport::WebSocket])
///     .reconnection_attempts(10)
///     .reconnection_delay(Duration::from_millis(500))
///     .on("message", |_socket, event| {
///         let text: String = event.arg(0).unwrap_or_default();
///         println!("message: {text}");
///     })
///     .build(runtime)?; // or `.connect(runtime).await?`, to wait for the server
/// assert_eq!(socket.namespace(), "/chat");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ClientBuilder {
    engine: Result<EngineConfig, BuildError>,
    config: CoreConfig,
    max_running_handlers: usize,
    namespace: String,
    auth: Result<Option<RawJson>, BuildError>,
    setups: Vec<Setup>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("engine", &self.engine)
            .field("config", &self.config)
            .field("max_running_handlers", &self.max_running_handlers)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// Splits `url` into the Engine.IO URL (path `/socket.io/`, the query
/// kept) and the namespace (the path).
fn split_url(url: &str) -> (String, String) {
    let Some(scheme_end) = url.find("://") else {
        return (url.to_owned(), "/".to_owned());
    };
    let rest = &url[scheme_end + 3..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let tail = tail.split('#').next().unwrap_or("");
    let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
    let namespace = match path.trim_end_matches('/') {
        "" => "/".to_owned(),
        path => path.to_owned(),
    };
    let mut engine = format!("{}{authority}/socket.io/", &url[..scheme_end + 3]);
    if !query.is_empty() {
        engine.push('?');
        engine.push_str(query);
    }
    (engine, namespace)
}

impl ClientBuilder {
    /// A client for the server at `url` (`http://`, `https://`, `ws://` or
    /// `wss://`), with Node's defaults: polling then the upgrade to
    /// WebSocket, reconnection forever with delays from 1 s, doubling up to
    /// 5 s, each moved at random by up to half. A URL that cannot work fails
    /// [`ClientBuilder::build`] or [`ClientBuilder::connect`].
    ///
    /// ```
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000").build(runtime)?;
    /// assert_eq!(socket.namespace(), "/");
    /// // The path is the namespace; the query goes with every request.
    /// let admin = ClientBuilder::new("ws://localhost:3000/admin?token=abc").build(runtime)?;
    /// assert_eq!(admin.namespace(), "/admin");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(url: &str) -> Self {
        let (engine_url, namespace) = split_url(url);
        let engine = EngineConfig::from_url(&engine_url).map_err(BuildError::from);
        ClientBuilder {
            engine,
            config: CoreConfig::default(),
            max_running_handlers: DEFAULT_MAX_RUNNING_HANDLERS,
            namespace,
            auth: Ok(None),
            setups: Vec::new(),
        }
    }

    fn engine(mut self, f: impl FnOnce(&mut EngineConfig)) -> Self {
        if let Ok(engine) = &mut self.engine {
            f(engine);
        }
        self
    }

    /// The namespace to join (instead of the URL's path).
    ///
    /// ```
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000")
    ///     .namespace("/admin")
    ///     .build(runtime)?;
    /// assert_eq!(socket.namespace(), "/admin");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = if namespace.is_empty() {
            "/".to_owned()
        } else {
            namespace.to_owned()
        };
        self
    }

    /// The auth payload of the CONNECT (an object), sent again on every
    /// reconnection: socket.io-client's `auth` option, python-socketio's
    /// `auth` argument. One that does not serialize as JSON fails the build
    /// ([`BuildError::Auth`]).
    ///
    /// ```
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000")
    ///     .auth(&serde_json::json!({ "token": "abc", "room": 42 }))
    ///     .build(runtime)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn auth<T: Serialize + ?Sized>(mut self, auth: &T) -> Self {
        self.auth = RawJson::from_serialize(auth)
            .map(Some)
            .map_err(|e| BuildError::Auth(e.to_string()));
        self
    }

    /// The Engine.IO path (default `/socket.io/`; a missing trailing `/` is
    /// added), as socket.io-client's `path` option.
    ///
    /// ```
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// // Requests go to http://localhost:3000/realtime/
    /// let socket = ClientBuilder::new("http://localhost:3000")
    ///     .path("/realtime")
    ///     .build(runtime)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn path(self, path: &str) -> Self {
        let path = if path.ends_with('/') {
            path.to_owned()
        } else {
            format!("{path}/")
        };
        self.engine(|engine| engine.path = path)
    }

    /// Adds a query parameter to every request (already URL-encoded), as
    /// one in the URL does (socket.io-client's `query` option).
    ///
    /// ```
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// // The same as "http://localhost:3000/?token=a%2Bb&lang=en"
    /// let socket = ClientBuilder::new("http://localhost:3000")
    ///     .query("token", "a%2Bb")
    ///     .query("lang", "en")
    ///     .build(runtime)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn query(self, key: &str, value: &str) -> Self {
        self.engine(|engine| engine.query.push((key.to_owned(), value.to_owned())))
    }

    /// Adds a header to every HTTP request and WebSocket handshake (Node's
    /// `extraHeaders` option).
    ///
    /// ```
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000")
    ///     .header("Authorization", "Bearer abc")
    ///     .header("Cookie", "session=xyz")
    ///     .build(runtime)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn header(self, name: &str, value: &str) -> Self {
        self.engine(|engine| {
            engine
                .extra_headers
                .push((name.to_owned(), value.to_owned()))
        })
    }

    /// The transports allowed (default both: polling first, then the
    /// upgrade). `[Transport::WebSocket]` connects straight over WebSocket;
    /// none fails the build.
    ///
    /// ```
    /// use switchboard_async::socketio::client::{ClientBuilder, Transport};
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// // io(url, { transports: ["websocket"] }): no polling at all
    /// let socket = ClientBuilder::new("http://localhost:3000")
    ///     .transports([Transport::WebSocket])
    ///     .build(runtime)?;
    /// // Long-polling only (through a proxy that drops WebSockets, say)
    /// let polling = ClientBuilder::new("http://localhost:3000")
    ///     .transports([Transport::Polling])
    ///     .build(runtime)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn transports(self, transports: impl IntoIterator<Item = Transport>) -> Self {
        let transports: Vec<Transport> = transports.into_iter().collect();
        self.engine(|engine| {
            engine.polling = transports.contains(&Transport::Polling);
            engine.websocket = transports.contains(&Transport::WebSocket);
        })
    }

    /// Whether to upgrade from polling to WebSocket (default true).
    ///
    /// ```
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// // Stay on long-polling even when the server offers WebSocket.
    /// let socket = ClientBuilder::new("http://localhost:3000")
    ///     .upgrade(false)
    ///     .build(runtime)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn upgrade(self, upgrade: bool) -> Self {
        self.engine(|engine| engine.upgrade = upgrade)
    }

    /// How long an Engine.IO handshake may take (default 20 s, as
    /// socket.io-client's `timeout`): a session not open by then could not
    /// be opened ([`ConnectError::Transport`]; reconnection goes on as set).
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000")
    ///     .timeout(Duration::from_secs(5))
    ///     .build(runtime)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn timeout(self, timeout: Duration) -> Self {
        self.engine(|engine| engine.connect_timeout = Some(timeout))
    }

    /// The protocol revision: v5 (default), or v4 for socket.io 2.x
    /// servers (over Engine.IO v3). This sets the Engine.IO revision to go
    /// with it too.
    ///
    /// ```
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// use switchboard_core::socketio::ProtocolVersion;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// // A socket.io 2.x server
    /// let socket = ClientBuilder::new("http://localhost:3000")
    ///     .protocol(ProtocolVersion::V4)
    ///     .build(runtime)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn protocol(mut self, version: ProtocolVersion) -> Self {
        self.config.version = version;
        self.engine(|engine| engine.version = version.engineio())
    }

    /// Whether to reconnect after the session is lost (default true). With
    /// false, a session that could not be opened is not tried again either:
    /// its namespaces stop waiting (their connect error handlers get
    /// [`ConnectError::Transport`]).
    ///
    /// ```
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000")
    ///     .reconnection(false)
    ///     .on_disconnect(|_socket, reason| println!("gone for good: {reason}"))
    ///     .build(runtime)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reconnection(mut self, reconnection: bool) -> Self {
        self.config.reconnection = reconnection;
        self
    }

    /// How many reconnection attempts in a row before giving up (default:
    /// no limit); then [`SocketIoClient::on_reconnect_failed`]'s handlers
    /// run. A successful reconnection starts the count again.
    ///
    /// ```
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000")
    ///     .reconnection_attempts(5)
    ///     .build(runtime)?;
    /// socket.io().on_reconnect_failed(|| eprintln!("5 attempts failed: giving up"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reconnection_attempts(mut self, attempts: u32) -> Self {
        self.config.reconnection_attempts = Some(attempts);
        self
    }

    /// The delay before the first reconnection attempt, doubled for each
    /// further one (default 1 s); each is then moved at random
    /// ([`ClientBuilder::randomization_factor`]) and capped
    /// ([`ClientBuilder::reconnection_delay_max`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// // Waits 0.5 s, 1 s, 2 s, 4 s, 8 s, then 10 s before each attempt.
    /// let socket = ClientBuilder::new("http://localhost:3000")
    ///     .reconnection_delay(Duration::from_millis(500))
    ///     .reconnection_delay_max(Duration::from_secs(10))
    ///     .randomization_factor(0.0)
    ///     .build(runtime)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reconnection_delay(mut self, delay: Duration) -> Self {
        self.config.reconnection_delay = delay;
        self
    }

    /// The longest delay between reconnection attempts (default 5 s),
    /// random move included.
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// // 1 s, 2 s, 4 s, ... each ±50 %, never more than a minute.
    /// let socket = ClientBuilder::new("http://localhost:3000")
    ///     .reconnection_delay_max(Duration::from_secs(60))
    ///     .build(runtime)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reconnection_delay_max(mut self, delay: Duration) -> Self {
        self.config.reconnection_delay_max = delay;
        self
    }

    /// How far, as a fraction, each delay is moved at random (default 0.5,
    /// taken between 0 and 1): up or down by up to this share of itself, so
    /// that clients a server restart dropped do not all come back at once.
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// // First delay 0.2 s to 1.8 s, then 0.4 s to 3.6 s, ...
    /// let socket = ClientBuilder::new("http://localhost:3000")
    ///     .reconnection_delay(Duration::from_secs(1))
    ///     .randomization_factor(0.8)
    ///     .build(runtime)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn randomization_factor(mut self, factor: f64) -> Self {
        self.config.randomization_factor = factor;
        self
    }

    /// The most packets buffered per namespace while it is not connected
    /// (default 1024); an emit beyond it fails with
    /// [`EmitError::BufferFull`]. With 0, an emit made while not connected
    /// fails instead of waiting.
    ///
    /// ```
    /// use switchboard_async::socketio::client::{ClientBuilder, EmitError};
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000")
    ///     .max_buffered_packets(2)
    ///     .build(runtime)?;
    /// socket.emit("a", &())?; // not connected: buffered
    /// socket.emit("b", &())?;
    /// assert!(matches!(socket.emit("c", &()), Err(EmitError::BufferFull)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_buffered_packets(mut self, max: usize) -> Self {
        self.config.max_buffered_packets = max;
        self
    }

    /// The most async handlers ([`ClientBuilder::on_async`]) running at
    /// once (default [`DEFAULT_MAX_RUNNING_HANDLERS`]). At the limit the
    /// client reads nothing more from the server until one of them ends:
    /// the server's sends wait in its queues and in TCP instead of as tasks
    /// here. Ack answers and the heartbeat wait too, so a handler that
    /// awaits an ack while the limit is reached waits for the ack's
    /// timeout.
    ///
    /// ```
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000")
    ///     .max_running_handlers(8) // a ninth job waits for one of these to end
    ///     .on_async("job", |_socket, event| async move {
    ///         println!("working on {:?}", event.payload().values());
    ///     })
    ///     .build(runtime)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_running_handlers(mut self, max: usize) -> Self {
        self.max_running_handlers = max;
        self
    }

    /// Changes the Engine.IO settings directly (those with no method here).
    ///
    /// ```
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000")
    ///     .engine_config(|engine| {
    ///         engine.max_payload = 1 << 20; // refuse messages over 1 MiB
    ///         engine.timestamp_requests = false;
    ///     })
    ///     .build(runtime)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn engine_config(self, f: impl FnOnce(&mut EngineConfig)) -> Self {
        self.engine(f)
    }

    /// Changes the Socket.IO settings directly (those with no method here).
    /// Its `version` is the Socket.IO side only: change the revision with
    /// [`ClientBuilder::protocol`].
    ///
    /// ```
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000")
    ///     // More binary values per packet than the official parser's 10:
    ///     .config(|config| config.decoder.max_attachments = 32)
    ///     .build(runtime)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn config(mut self, f: impl FnOnce(&mut CoreConfig)) -> Self {
        f(&mut self.config);
        self
    }

    /// Runs `setup` on the socket before it connects (to register
    /// handlers, for instance).
    ///
    /// ```
    /// use switchboard_async::socketio::client::{ClientBuilder, ClientSocket};
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// fn chat_handlers(socket: &ClientSocket) {
    ///     socket.on("message", |_socket, event| println!("{:?}", event.payload().values()));
    ///     socket.on("typing", |_socket, _event| println!("someone is typing"));
    /// }
    /// let socket = ClientBuilder::new("http://localhost:3000")
    ///     .setup(chat_handlers)
    ///     .build(runtime)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn setup(mut self, setup: impl FnOnce(&ClientSocket) + Send + 'static) -> Self {
        self.setups.push(Box::new(setup));
        self
    }

    /// [`ClientSocket::on`], in place before the first event.
    ///
    /// ```
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000")
    ///     .on("news", |_socket, event| {
    ///         let (title, body): (String, String) = event.args().unwrap_or_default();
    ///         println!("{title}: {body}");
    ///     })
    ///     .build(runtime)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on(
        self,
        event: &str,
        handler: impl Fn(ClientSocket, Event) + Send + Sync + 'static,
    ) -> Self {
        let event = event.to_owned();
        self.setup(move |socket| socket.on(&event, handler))
    }

    /// [`ClientSocket::on_async`], in place before the first event.
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000")
    ///     .on_async("refresh", |socket, _event| async move {
    ///         let Ok(state) = socket.emit_with_ack("state", &(), Duration::from_secs(5)) else {
    ///             return;
    ///         };
    ///         if let Ok(state) = state.await {
    ///             println!("state: {:?}", state.values());
    ///         }
    ///     })
    ///     .build(runtime)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_async<F, Fut>(self, event: &str, handler: F) -> Self
    where
        F: Fn(ClientSocket, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let event = event.to_owned();
        self.setup(move |socket| socket.on_async(&event, handler))
    }

    /// [`ClientSocket::on_any`], in place before the first event.
    ///
    /// ```
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000")
    ///     .on_any(|_socket, event| println!("{}: {:?}", event.name(), event.payload().values()))
    ///     .build(runtime)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_any(self, handler: impl Fn(ClientSocket, Event) + Send + Sync + 'static) -> Self {
        self.setup(move |socket| socket.on_any(handler))
    }

    /// [`ClientSocket::on_connect`], in place before the first connection.
    ///
    /// ```
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000")
    ///     .on_connect(|socket| println!("connected as {:?}", socket.id()))
    ///     .build(runtime)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_connect(self, handler: impl Fn(ClientSocket) + Send + Sync + 'static) -> Self {
        self.setup(move |socket| socket.on_connect(handler))
    }

    /// [`ClientSocket::on_disconnect`], in place before the first
    /// connection.
    ///
    /// ```
    /// use switchboard_async::socketio::client::{ClientBuilder, DisconnectReason};
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000")
    ///     .on_disconnect(|socket, reason| {
    ///         if reason == DisconnectReason::IoServerDisconnect {
    ///             let _ = socket.connect(); // the server kicked us out: join again
    ///         }
    ///     })
    ///     .build(runtime)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_disconnect(
        self,
        handler: impl Fn(ClientSocket, DisconnectReason) + Send + Sync + 'static,
    ) -> Self {
        self.setup(move |socket| socket.on_disconnect(handler))
    }

    /// [`ClientSocket::on_connect_error`], in place before the first answer.
    ///
    /// ```
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000")
    ///     .on_connect_error(|_socket, error| eprintln!("cannot join: {error}"))
    ///     .build(runtime)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_connect_error(
        self,
        handler: impl Fn(ClientSocket, ConnectError) + Send + Sync + 'static,
    ) -> Self {
        self.setup(move |socket| socket.on_connect_error(handler))
    }

    /// Makes the client and starts joining the namespace, without waiting:
    /// the socket is returned at once (emits are buffered until it is
    /// connected), and the client keeps trying as its reconnection settings
    /// say. This is socket.io-client's `io(url)`; errors are the settings'
    /// ([`BuildError`]).
    ///
    /// ```
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # #[derive(Clone, Copy)]
    /// # struct Offline; // in place of `Tokio` or `Smol::new()`: opens no session
    /// # impl switchboard_async::socketio::client::ClientDriver for Offline {
    /// #     fn start(self, _: std::sync::Arc<switchboard_async::socketio::client::ClientHub>) {}
    /// # }
    /// # let runtime = Offline;
    ///
    /// let socket = ClientBuilder::new("http://localhost:3000").build(runtime)?;
    /// socket.emit("hello", "world")?; // sent once connected
    /// assert!(socket.active() && !socket.connected());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build(self, driver: impl ClientDriver) -> Result<ClientSocket, BuildError> {
        let (socket, connecting) = self.start(driver)?;
        drop(connecting);
        Ok(socket)
    }

    /// Makes the client and joins the namespace: resolves once the server
    /// accepted (or refused, or the first session could not be opened; the
    /// client is then closed), as python-socketio's `await sio.connect(url)`.
    /// Settings that cannot work ([`BuildError`]) fail it at once with
    /// [`ConnectError::Transport`] and their message.
    ///
    /// ```
    /// use switchboard_async::socketio::client::ClientBuilder;
    /// # async fn run<R: switchboard_async::Runtime>(runtime: R) -> Result<(), Box<dyn std::error::Error>> {
    /// let socket = ClientBuilder::new("http://localhost:3000")
    ///     .auth(&serde_json::json!({ "token": "abc" }))
    ///     .connect(runtime)
    ///     .await?;
    /// println!("connected as {:?}", socket.id());
    /// # Ok(()) }
    /// ```
    pub fn connect(self, driver: impl ClientDriver) -> Connecting {
        Connecting {
            state: self
                .start(driver)
                .map_err(|error| Some(ConnectError::Transport(error.to_string()))),
        }
    }

    fn start(self, driver: impl ClientDriver) -> Result<(ClientSocket, ConnectFuture), BuildError> {
        let auth = self.auth?;
        let io = SocketIoClient::with_max_running_handlers(
            driver,
            self.engine?,
            self.config,
            self.max_running_handlers,
        )?;
        let socket = io.socket(&self.namespace);
        for setup in self.setups {
            setup(&socket);
        }
        let connecting = socket.connect_inner(auth);
        Ok((socket, connecting))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A driver that hands its hub over, for a test to play the sessions.
    struct ByHand(std::sync::mpsc::Sender<Arc<ClientHub>>);

    impl ClientDriver for ByHand {
        fn start(self, hub: Arc<ClientHub>) {
            self.0.send(hub).unwrap();
        }
    }

    /// A session that keeps the text it is sent, and whether it was closed.
    #[derive(Clone, Default)]
    struct Wire(Arc<Mutex<(Vec<String>, bool)>>);

    impl Wire {
        fn take(&self) -> Vec<String> {
            std::mem::take(&mut lock(&self.0).0)
        }

        fn closed(&self) -> bool {
            lock(&self.0).1
        }
    }

    impl EngineLink for Wire {
        fn send(&self, message: MessageData) -> Result<(), ClientSendError> {
            if let MessageData::Text(text) = message {
                lock(&self.0).0.push(text.as_str().to_owned());
            }
            Ok(())
        }

        fn close(&self) {
            lock(&self.0).1 = true;
        }
    }

    /// A client on `/` without reconnection delay, and its hub.
    fn by_hand() -> (ClientSocket, Arc<ClientHub>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let socket = ClientBuilder::new("http://localhost:3000")
            .reconnection_delay(Duration::ZERO)
            .randomization_factor(0.0)
            .build(ByHand(tx))
            .unwrap();
        (socket, rx.recv().unwrap())
    }

    /// Opens the session asked for and connects `/` over it.
    fn open_session(hub: &ClientHub, sid: &str) -> (u64, Wire) {
        let generation = hub.take_open_request().expect("a session is asked for");
        let wire = Wire::default();
        hub.session_opened(generation, Box::new(wire.clone()), sid);
        assert_eq!(wire.take(), ["0"]);
        hub.session_message(generation, format!(r#"0{{"sid":"{sid}"}}"#).into());
        (generation, wire)
    }

    #[test]
    fn an_ack_held_over_a_reconnection_is_not_sent() {
        let (socket, hub) = by_hand();
        let held: Arc<Mutex<Option<Ack>>> = Arc::default();
        let keep = held.clone();
        socket.on("question", move |_socket, mut event| {
            *lock(&keep) = event.take_ack();
        });
        let (generation, _first) = open_session(&hub, "s1");
        hub.session_message(generation, r#"20["question"]"#.into());
        let ack = lock(&held).take().expect("the server asked for an ack");
        // The session is lost; the client reconnects; the server's ack ids
        // start again on the new connection.
        hub.session_closed(generation, ClientCloseReason::TransportClose);
        hub.run_timers();
        let (_, second) = open_session(&hub, "s2");
        assert!(socket.connected());
        assert!(matches!(ack.send("late"), Err(EmitError::NotConnected)));
        assert_eq!(second.take(), Vec::<String>::new());
    }

    #[test]
    fn a_session_opened_after_the_core_moved_on_is_not_taken() {
        let (socket, hub) = by_hand();
        let generation = hub.take_open_request().expect("a session is asked for");
        // Another thread is flushing: what follows waits in the outbox.
        let flushing = lock(&hub.flushing);
        socket.disconnect(); // the session asked for is closed ...
        drop(socket.connect()); // ... and another asked for
        // The first session's handshake completes meanwhile.
        let stale = Wire::default();
        hub.session_opened(generation, Box::new(stale.clone()), "e1");
        drop(flushing);
        hub.flush();
        assert!(stale.closed());
        // The session asked for last is the one the namespace joins over.
        let generation = hub.take_open_request().expect("a new session is asked for");
        let wire = Wire::default();
        hub.session_opened(generation, Box::new(wire.clone()), "e2");
        assert_eq!(wire.take(), ["0"]);
        hub.session_message(generation, r#"0{"sid":"s2"}"#.into());
        assert_eq!(socket.id().as_deref(), Some("s2"));
    }

    /// Polls `future` once: its output, if it has one already.
    fn ready<F: Future + Unpin>(future: &mut F) -> Option<F::Output> {
        futures_util::FutureExt::now_or_never(future)
    }

    #[test]
    fn a_refusal_of_an_earlier_join_does_not_answer_a_later_one() {
        let (socket, hub) = by_hand();
        let (generation, wire) = open_session(&hub, "s1");
        let admin = socket.io().socket("/admin");
        let mut first = admin.connect();
        assert_eq!(wire.take(), ["0/admin,"]);
        // The refusal comes while another thread delivers events: it waits
        // in the queue ...
        let delivering = lock(&hub.delivering);
        hub.session_message(generation, r#"4/admin,{"message":"not now"}"#.into());
        assert!(!admin.active());
        // ... when the application tries again.
        let mut second = admin.connect();
        assert_eq!(wire.take(), ["0/admin,"]);
        drop(delivering);
        hub.deliver();
        assert!(matches!(
            ready(&mut first),
            Some(Err(ConnectError::Refused { .. }))
        ));
        // The second attempt is still waiting for its own answer.
        assert_eq!(ready(&mut second), None);
        hub.session_message(generation, r#"0/admin,{"sid":"a2"}"#.into());
        assert_eq!(ready(&mut second), Some(Ok(())));
        assert_eq!(admin.id().as_deref(), Some("a2"));
    }

    #[test]
    fn a_connect_of_an_earlier_join_does_not_answer_a_later_one() {
        let (socket, hub) = by_hand();
        let (generation, wire) = open_session(&hub, "s1");
        let admin = socket.io().socket("/admin");
        let mut first = admin.connect();
        assert_eq!(wire.take(), ["0/admin,"]);
        let delivering = lock(&hub.delivering);
        hub.session_message(generation, r#"0/admin,{"sid":"a1"}"#.into());
        // Left and joined again before the CONNECT was delivered.
        admin.disconnect();
        let mut second = admin.connect();
        drop(delivering);
        hub.deliver();
        // The first join was answered (it did connect, then left).
        assert!(ready(&mut first).is_some());
        assert!(!admin.connected());
        assert_eq!(ready(&mut second), None, "not connected yet");
        hub.session_message(generation, r#"4/admin,{"message":"no"}"#.into());
        assert!(matches!(
            ready(&mut second),
            Some(Err(ConnectError::Refused { .. }))
        ));
    }

    #[test]
    fn a_join_made_by_a_disconnect_handler_is_not_closed() {
        let (socket, hub) = by_hand();
        let rejoin: Arc<Mutex<Option<ConnectFuture>>> = Arc::default();
        let keep = rejoin.clone();
        socket.on_disconnect(move |socket, _reason| {
            *lock(&keep) = Some(socket.connect());
        });
        open_session(&hub, "s1");
        socket.disconnect();
        let mut joining = lock(&rejoin).take().expect("the handler joined again");
        assert!(socket.active());
        assert_eq!(ready(&mut joining), None, "waiting for the server");
        let (_, _) = open_session(&hub, "s2");
        assert_eq!(ready(&mut joining), Some(Ok(())));
        assert_eq!(socket.id().as_deref(), Some("s2"));
    }

    #[test]
    fn closing_while_another_thread_delivers_answers_the_joins() {
        let (socket, hub) = by_hand();
        let mut joining = socket.connect();
        let admin = socket.io().socket("/admin");
        let mut admin_joining = admin.connect();
        // Another thread is at the end of a delivery (its queue empty) ...
        let delivering = lock(&hub.delivering);
        socket.io().disconnect();
        // ... which it ends: nothing was queued since.
        drop(delivering);
        assert!(lock(&hub.events).is_empty());
        assert_eq!(ready(&mut joining), Some(Err(ConnectError::Closed)));
        assert_eq!(ready(&mut admin_joining), Some(Err(ConnectError::Closed)));
    }

    /// A runtime on plain threads: a thread per task, a thread per timer;
    /// it connects nowhere (sessions come from the test).
    #[derive(Clone)]
    struct Threaded;

    use crate::testing::ThreadSleep;

    impl Runtime for Threaded {
        type Sleep = ThreadSleep;
        type TcpStream = futures_util::io::Cursor<Vec<u8>>;
        type TcpListener = ();

        fn sleep_until(&self, deadline: Instant) -> ThreadSleep {
            ThreadSleep::until(deadline)
        }

        fn spawn<F>(&self, future: F)
        where
            F: Future<Output = ()> + Send + 'static,
        {
            std::thread::spawn(move || block_on(future));
        }

        async fn connect(&self, _: &str, _: u16) -> std::io::Result<Self::TcpStream> {
            Err(std::io::Error::other("no network in this test"))
        }

        async fn accept(&self, _: &()) -> std::io::Result<(Self::TcpStream, std::net::SocketAddr)> {
            Err(std::io::Error::other("no network in this test"))
        }
    }

    /// The async driver on [`Threaded`], its sessions played by the test:
    /// each generation asked for goes to the test, which reports on the
    /// session through `inputs`.
    struct Scripted {
        inputs: SessionInputs,
        opens: std::sync::mpsc::Sender<u64>,
    }

    impl ClientDriver for Scripted {
        fn start(self, hub: Arc<ClientHub>) {
            let opens = self.opens;
            start_driver(Threaded, &hub, self.inputs, move |_config, generation| {
                let _ = opens.send(generation);
            });
        }
    }

    /// Where a test reports on its sessions to the driver.
    type Reports = Arc<Mutex<mpsc::Sender<(u64, SessionInput)>>>;

    /// A driver for [`Scripted`], what it reports sessions with, and the
    /// generations it is asked to open.
    fn scripted() -> (Scripted, Reports, std::sync::mpsc::Receiver<u64>) {
        let (inputs_tx, inputs) = mpsc::channel(64);
        let (opens, opened) = std::sync::mpsc::channel();
        let driver = Scripted { inputs, opens };
        (driver, Arc::new(Mutex::new(inputs_tx)), opened)
    }

    /// Long enough to mean "never" in a test.
    const HANG: Duration = Duration::from_secs(30);

    /// Reports `input` to the driver.
    fn report(
        inputs: &Mutex<mpsc::Sender<(u64, SessionInput)>>,
        generation: u64,
        input: SessionInput,
    ) {
        use futures_util::SinkExt;
        let mut inputs = lock(inputs).clone();
        block_on(inputs.send((generation, input))).expect("the driver is running");
    }

    fn message(text: &str) -> SessionInput {
        SessionInput::Event(EngineEvent::Message(text.to_owned().into()))
    }

    /// `future`'s output, on a thread of its own; `None` if it takes
    /// [`HANG`].
    fn bounded<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> Option<T> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(block_on(future));
        });
        rx.recv_timeout(HANG).ok()
    }

    #[test]
    fn timers_run_while_the_session_keeps_the_driver_busy() {
        let (driver, inputs, opens) = scripted();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let generation: Arc<OnceLock<u64>> = Arc::default();
        let (feed, flag, current) = (inputs.clone(), stop.clone(), generation.clone());
        let socket = ClientBuilder::new("http://localhost:3000")
            .on("tick", move |_socket, _event| {
                // The server streams: the next tick is always there already.
                if !flag.load(std::sync::atomic::Ordering::Relaxed) {
                    let next = (
                        current.get().copied().unwrap_or_default(),
                        message(r#"2["tick"]"#),
                    );
                    let _ = lock(&feed).try_send(next);
                }
            })
            .build(driver)
            .unwrap();
        let g = opens.recv_timeout(HANG).expect("a session is asked for");
        generation.set(g).unwrap();
        report(
            &inputs,
            g,
            SessionInput::Opened(Box::new(Wire::default()), "e1".into()),
        );
        report(&inputs, g, message(r#"0{"sid":"s1"}"#));
        let joined = socket.connect();
        assert_eq!(bounded(joined), Some(Ok(())));
        let answer = socket
            .emit_with_ack("never answered", &(), Duration::from_millis(20))
            .unwrap();
        report(&inputs, g, message(r#"2["tick"]"#));
        let outcome = bounded(answer);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(outcome, Some(Err(AckError::Timeout)));
    }

    #[test]
    fn joins_given_up_on_are_not_kept() {
        let (socket, hub) = by_hand();
        let (_generation, wire) = open_session(&hub, "s1");
        let admin = socket.io().socket("/admin");
        // The server never answers; the application keeps trying, each
        // time giving up on the join after a while.
        for _ in 0..1000 {
            drop(admin.connect());
        }
        assert_eq!(wire.take(), ["0/admin,"]);
        let entry = hub.entry("/admin").unwrap();
        assert!(lock(&entry.waiters).len() <= 1);
    }

    #[test]
    fn a_session_handed_over_as_the_client_goes_is_closed() {
        let (driver, inputs, opens) = scripted();
        let (release_tx, release) = futures_channel::oneshot::channel::<()>();
        let release = Arc::new(Mutex::new(Some(release)));
        let socket = ClientBuilder::new("http://localhost:3000")
            .max_running_handlers(1)
            .on_async("work", move |socket, _event| {
                let release = lock(&release).take();
                async move {
                    drop(socket);
                    if let Some(release) = release {
                        let _ = release.await;
                    }
                }
            })
            .build(driver)
            .unwrap();
        let g = opens.recv_timeout(HANG).expect("a session is asked for");
        report(
            &inputs,
            g,
            SessionInput::Opened(Box::new(Wire::default()), "e1".into()),
        );
        report(&inputs, g, message(r#"0{"sid":"s1"}"#));
        assert_eq!(bounded(socket.connect()), Some(Ok(())));
        // The handler runs: no room for more, the driver reads nothing.
        report(&inputs, g, message(r#"2["work"]"#));
        let gate = socket.hub.handler_gate().clone();
        let start = Instant::now();
        while gate.has_room() && start.elapsed() < HANG {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(!gate.has_room());
        // A session's handshake completes (one asked for earlier, say), and
        // waits in the queue as the application drops the client.
        let late = Wire::default();
        report(
            &inputs,
            g,
            SessionInput::Opened(Box::new(late.clone()), "e2".into()),
        );
        drop(socket);
        let start = Instant::now();
        while !late.closed() && start.elapsed() < HANG {
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = release_tx.send(());
        assert!(late.closed(), "the session would stay open for nothing");
    }

    #[test]
    fn urls() {
        let (engine, ns) = split_url("http://localhost:3000");
        assert_eq!(
            (engine.as_str(), ns.as_str()),
            ("http://localhost:3000/socket.io/", "/")
        );
        let (engine, ns) = split_url("http://127.0.0.1:3000/admin?token=1#x");
        assert_eq!(
            (engine.as_str(), ns.as_str()),
            ("http://127.0.0.1:3000/socket.io/?token=1", "/admin")
        );
        let (engine, ns) = split_url("ws://[::1]:80/");
        assert_eq!(
            (engine.as_str(), ns.as_str()),
            ("ws://[::1]:80/socket.io/", "/")
        );
    }

    #[test]
    fn builder_settings() {
        let builder = ClientBuilder::new("http://localhost:3000/chat")
            .transports([Transport::WebSocket])
            .path("/custom")
            .reconnection_attempts(3)
            .protocol(ProtocolVersion::V4);
        let engine = builder.engine.as_ref().unwrap();
        assert!(!engine.polling && engine.websocket);
        assert_eq!(engine.path, "/custom/");
        assert_eq!(
            engine.version,
            switchboard_core::engineio::ProtocolVersion::V3
        );
        assert_eq!(builder.namespace, "/chat");
        assert_eq!(builder.config.reconnection_attempts, Some(3));
        assert!(ClientBuilder::new("nonsense").engine.is_err());
    }
}
