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

/// An Engine.IO transport the client may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// HTTP long-polling.
    Polling,
    /// WebSocket.
    WebSocket,
}

/// A client that could not be set up.
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
/// sender.
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
/// thread).
pub trait ClientDriver {
    /// Starts driving `hub`: called once, when the client is made. The
    /// driver should hold the hub weakly, and stop once it is gone.
    fn start(self, hub: Arc<ClientHub>);
}

impl<R: Runtime> ClientDriver for R {
    fn start(self, hub: Arc<ClientHub>) {
        let (wake_tx, wake_rx) = mpsc::channel::<()>(1);
        let wake = Mutex::new(wake_tx);
        hub.set_wake(move || {
            // A full channel already holds a wake-up.
            let _ = lock(&wake).try_send(());
        });
        let spawner = self.clone();
        hub.set_spawner(Arc::new(move |future| spawner.spawn(future)));
        self.spawn(drive(self.clone(), Arc::downgrade(&hub), wake_rx));
    }
}

/// What a session task reports to the driver task.
enum SessionInput {
    Opened(ClientSender, String),
    Failed(String),
    Event(EngineEvent),
}

async fn drive<R: Runtime>(runtime: R, hub: Weak<ClientHub>, mut wake: mpsc::Receiver<()>) {
    let (inputs_tx, mut inputs) = mpsc::channel::<(u64, SessionInput)>(64);
    loop {
        let (deadline, gate) = {
            let Some(hub) = hub.upgrade() else {
                return;
            };
            if let Some(generation) = hub.take_open_request() {
                runtime.spawn(run_session(
                    runtime.clone(),
                    hub.engine_config().clone(),
                    generation,
                    inputs_tx.clone(),
                ));
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
                SessionInput::Opened(sender, sid) => {
                    hub.session_opened(generation, Box::new(sender), &sid)
                }
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
    let opened = SessionInput::Opened(client.sender(), client.sid().to_owned());
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
    pub fn nudge(&self) {
        self.state().nudged = true;
        self.freed.notify_all();
    }
}

/// A running handler's place under [`HandlerGate`]'s limit; dropping it
/// (the handler ended, or its task was dropped) frees it.
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

struct SocketEntry {
    namespace: String,
    handlers: RwLock<SocketHandlers>,
    /// Callers of [`ClientSocket::connect`] waiting for the answer.
    waiters: Mutex<Vec<oneshot::Sender<Result<(), ConnectError>>>>,
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
pub struct ClientHub {
    core: Mutex<Core>,
    engine_config: EngineConfig,
    outbox: Mutex<VecDeque<ClientTransmit>>,
    flushing: Mutex<()>,
    events: Mutex<VecDeque<ClientEvent>>,
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
    pub fn engine_config(&self) -> &EngineConfig {
        &self.engine_config
    }

    /// Sets how to wake the driver (when a command moved the deadline or
    /// asked for a session). Only the first call counts.
    pub fn set_wake(&self, wake: impl Fn() + Send + Sync + 'static) {
        let _ = self.wake.set(Box::new(wake));
    }

    /// Runs async handlers through `spawner`. Only the first call counts;
    /// without one, an async handler runs on a thread of its own.
    pub fn set_spawner(&self, spawner: Spawner) {
        let _ = self.spawner.set(spawner);
    }

    /// The async handlers running: a driver hands the hub nothing more from
    /// the session ([`ClientHub::session_message`]) while it has no room.
    pub fn handler_gate(&self) -> &Arc<HandlerGate> {
        &self.handlers_running
    }

    /// A session to open, if one was asked for: its generation, to report
    /// it with.
    pub fn take_open_request(&self) -> Option<u64> {
        let mut session = lock(&self.session);
        std::mem::take(&mut session.open_requested).then_some(session.generation)
    }

    /// When [`ClientHub::run_timers`] should run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        lock(&self.core).poll_timeout()
    }

    /// Runs the core's timers.
    pub fn run_timers(&self) {
        self.with_core(|core| core.handle_timeout(Instant::now()));
    }

    /// The session of `generation` opened, with Engine.IO session id `sid`.
    pub fn session_opened(&self, generation: u64, link: Box<dyn EngineLink>, sid: &str) {
        {
            let mut session = lock(&self.session);
            if session.generation != generation {
                drop(session);
                link.close();
                return;
            }
            session.link = Some(link);
        }
        self.with_core(|core| core.handle_engine_open(sid, Instant::now()));
    }

    /// The session of `generation` failed to open.
    pub fn session_failed(&self, generation: u64, error: String) {
        if !self.current(generation) {
            return;
        }
        self.with_core(|core| core.handle_engine_error(error, Instant::now()));
    }

    /// A message arrived on the session of `generation`.
    pub fn session_message(&self, generation: u64, message: MessageData) {
        if !self.current(generation) {
            return;
        }
        self.with_core(|core| core.handle_engine_message(message, Instant::now()));
    }

    /// The session of `generation` closed.
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
        let result = {
            let mut core = lock(&self.core);
            let before = core.poll_timeout();
            let result = f(&mut core);
            lock(&self.outbox).extend(std::iter::from_fn(|| core.poll_transmit()));
            lock(&self.events).extend(std::iter::from_fn(|| core.poll_event()));
            if core.poll_timeout() != before {
                self.wake();
            }
            result
        };
        self.flush();
        self.deliver();
        result
    }

    fn flush(&self) {
        loop {
            let Ok(guard) = self.flushing.try_lock() else {
                return;
            };
            loop {
                let Some(transmit) = lock(&self.outbox).pop_front() else {
                    break;
                };
                let mut session = lock(&self.session);
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
                let Some(event) = lock(&self.events).pop_front() else {
                    break;
                };
                run_handler(|| hub.dispatch(event));
            }
            hub.settle_waiters();
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

    fn dispatch(self: &Arc<Self>, event: ClientEvent) {
        match event {
            ClientEvent::Connect { namespace, .. } => {
                let Some(socket) = self.socket(&namespace) else {
                    return;
                };
                for waiter in std::mem::take(&mut *lock(&socket.entry.waiters)) {
                    let _ = waiter.send(Ok(()));
                }
                let handlers = read(&socket.entry.handlers).connect.clone();
                for handler in &handlers {
                    self.run(handler, socket.clone());
                }
            }
            ClientEvent::ConnectError { namespace, error } => {
                let Some(socket) = self.socket(&namespace) else {
                    return;
                };
                for waiter in std::mem::take(&mut *lock(&socket.entry.waiters)) {
                    let _ = waiter.send(Err(error.clone()));
                }
                let handlers = read(&socket.entry.handlers).connect_error.clone();
                for handler in &handlers {
                    self.run(handler, (socket.clone(), error.clone()));
                }
            }
            ClientEvent::Event { namespace, packet } => {
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

    /// Callers waiting to join a namespace that no longer wants to be
    /// connected get [`ConnectError::Closed`].
    fn settle_waiters(&self) {
        let waiting: Vec<Arc<SocketEntry>> = read(&self.sockets)
            .values()
            .filter(|entry| !lock(&entry.waiters).is_empty())
            .cloned()
            .collect();
        for entry in waiting {
            let active = lock(&self.core).is_active(&entry.namespace);
            if !active {
                for waiter in std::mem::take(&mut *lock(&entry.waiters)) {
                    let _ = waiter.send(Err(ConnectError::Closed));
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
    /// [`SocketIoClient::with_max_running_handlers`]).
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

    /// Connects to namespace `/` of the server at `url` with the default
    /// settings (see [`ClientBuilder`] for more).
    pub fn connect(driver: impl ClientDriver, url: &str) -> Connecting {
        ClientBuilder::new(url).connect(driver)
    }

    /// The socket of `namespace` (`/` or a path such as `/admin`; the
    /// leading `/` may be left out), made on first use, not connected
    /// until [`ClientSocket::connect`].
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
    /// again.
    pub fn disconnect(&self) {
        self.hub.with_core(Core::close);
    }

    /// Whether an Engine.IO session is open.
    pub fn is_open(&self) -> bool {
        lock(&self.hub.core).is_engine_open()
    }

    /// Runs `handler` when a reconnection attempt starts, with its number.
    pub fn on_reconnect_attempt(&self, handler: impl Fn(u32) + Send + Sync + 'static) {
        write(&self.hub.manager)
            .reconnect_attempt
            .push(Arc::new(handler));
    }

    /// Runs `handler` when a reconnection succeeded, with the number of
    /// attempts it took.
    pub fn on_reconnect(&self, handler: impl Fn(u32) + Send + Sync + 'static) {
        write(&self.hub.manager).reconnect.push(Arc::new(handler));
    }

    /// Runs `handler` when every allowed reconnection attempt failed.
    pub fn on_reconnect_failed(&self, handler: impl Fn() + Send + Sync + 'static) {
        write(&self.hub.manager)
            .reconnect_failed
            .push(Arc::new(handler));
    }
}

/// The client's connection to one namespace (Node's `Socket`). Cloning is
/// cheap.
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
    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.entry.namespace
    }

    /// The socket id the server gave, while connected.
    pub fn id(&self) -> Option<String> {
        lock(&self.hub.core)
            .sid(&self.entry.namespace)
            .map(str::to_owned)
    }

    /// Whether the namespace is connected.
    pub fn connected(&self) -> bool {
        lock(&self.hub.core).is_connected(&self.entry.namespace)
    }

    /// Whether the namespace wants to be connected (connected, or waiting
    /// for the session, a reconnection or the server's answer).
    pub fn active(&self) -> bool {
        lock(&self.hub.core).is_active(&self.entry.namespace)
    }

    /// The client (the shared session).
    pub fn io(&self) -> SocketIoClient {
        SocketIoClient {
            hub: self.hub.clone(),
        }
    }

    /// Joins the namespace with the auth payload given before (if any);
    /// the future resolves once the server answered (or the session could
    /// not be opened). Reconnections join again on their own.
    pub fn connect(&self) -> ConnectFuture {
        self.connect_inner(None)
    }

    /// Joins the namespace with `auth` as the CONNECT's payload (kept for
    /// reconnections).
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
                // Under the core's lock, once the namespace is active:
                // waiters of inactive namespaces are answered `Closed`.
                lock(&self.entry.waiters).push(tx);
            }
        });
        ConnectFuture { rx }
    }

    /// Handles event `event` with a sync handler (replacing an earlier
    /// one); the [`Event`] carries the [`Ack`] when the server asked for
    /// one.
    pub fn on(&self, event: &str, handler: impl Fn(ClientSocket, Event) + Send + Sync + 'static) {
        write(&self.entry.handlers).events.insert(
            event.to_owned(),
            Callback::Sync(Arc::new(move |(s, e)| handler(s, e))),
        );
    }

    /// Handles event `event` with an async handler, spawned per event.
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

    /// Handles every event that has no handler of its own.
    pub fn on_any(&self, handler: impl Fn(ClientSocket, Event) + Send + Sync + 'static) {
        write(&self.entry.handlers).any =
            Some(Callback::Sync(Arc::new(move |(s, e)| handler(s, e))));
    }

    /// Runs `handler` each time the namespace connects (again after a
    /// reconnection).
    pub fn on_connect(&self, handler: impl Fn(ClientSocket) + Send + Sync + 'static) {
        write(&self.entry.handlers)
            .connect
            .push(Callback::Sync(Arc::new(handler)));
    }

    /// Runs `handler` each time the namespace disconnects, with the reason
    /// (`io server disconnect`, `transport close`, ...).
    pub fn on_disconnect(
        &self,
        handler: impl Fn(ClientSocket, DisconnectReason) + Send + Sync + 'static,
    ) {
        write(&self.entry.handlers)
            .disconnect
            .push(Callback::Sync(Arc::new(move |(s, r)| handler(s, r))));
    }

    /// Runs `handler` when joining the namespace fails: refused by the
    /// server (CONNECT_ERROR), or the session could not be opened.
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
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, args: &T) -> Result<(), EmitError> {
        self.hub
            .with_core(|core| core.emit(&self.entry.namespace, event, args))
    }

    /// Emits `event` asking for an ack within `timeout`; `callback` gets
    /// the answer's arguments, or why none came.
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
    /// again. The session closes when no namespace is left.
    pub fn disconnect(&self) {
        self.hub
            .with_core(|core| core.disconnect(&self.entry.namespace));
        for waiter in std::mem::take(&mut *lock(&self.entry.waiters)) {
            let _ = waiter.send(Err(ConnectError::Closed));
        }
    }
}

/// An event from the server (see [`super::Event`]).
pub type Event = super::Event<Ack>;

/// The answer the server asked for with its event; send it once.
#[derive(Debug)]
pub struct Ack {
    socket: ClientSocket,
    id: u64,
}

impl Ack {
    /// Answers with `args` (arguments as for [`ClientSocket::emit`]).
    pub fn send<T: Serialize + ?Sized>(self, args: &T) -> Result<(), EmitError> {
        let Ack { socket, id } = self;
        socket
            .hub
            .with_core(|core| core.ack(&socket.entry.namespace, id, args))
    }
}

pub use super::AckFuture;

/// The server's answer to [`ClientSocket::connect`].
#[derive(Debug)]
pub struct ConnectFuture {
    rx: oneshot::Receiver<Result<(), ConnectError>>,
}

impl ConnectFuture {
    /// Blocks the thread until the answer comes.
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
#[derive(Debug)]
pub struct Connecting {
    state: Result<(ClientSocket, ConnectFuture), Option<ConnectError>>,
}

impl Connecting {
    /// Blocks the thread until the namespace is connected or refused.
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
    /// WebSocket, reconnection forever with 1 s to 5 s delays.
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
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = if namespace.is_empty() {
            "/".to_owned()
        } else {
            namespace.to_owned()
        };
        self
    }

    /// The auth payload of the CONNECT (an object), sent again on every
    /// reconnection.
    pub fn auth<T: Serialize + ?Sized>(mut self, auth: &T) -> Self {
        self.auth = RawJson::from_serialize(auth)
            .map(Some)
            .map_err(|e| BuildError::Auth(e.to_string()));
        self
    }

    /// The Engine.IO path (default `/socket.io/`).
    pub fn path(self, path: &str) -> Self {
        let path = if path.ends_with('/') {
            path.to_owned()
        } else {
            format!("{path}/")
        };
        self.engine(|engine| engine.path = path)
    }

    /// Adds a query parameter to every request (already URL-encoded).
    pub fn query(self, key: &str, value: &str) -> Self {
        self.engine(|engine| engine.query.push((key.to_owned(), value.to_owned())))
    }

    /// Adds a header to every HTTP request and WebSocket handshake.
    pub fn header(self, name: &str, value: &str) -> Self {
        self.engine(|engine| {
            engine
                .extra_headers
                .push((name.to_owned(), value.to_owned()))
        })
    }

    /// The transports allowed (default both: polling first, then the
    /// upgrade). `[Transport::WebSocket]` connects straight over WebSocket.
    pub fn transports(self, transports: impl IntoIterator<Item = Transport>) -> Self {
        let transports: Vec<Transport> = transports.into_iter().collect();
        self.engine(|engine| {
            engine.polling = transports.contains(&Transport::Polling);
            engine.websocket = transports.contains(&Transport::WebSocket);
        })
    }

    /// Whether to upgrade from polling to WebSocket (default true).
    pub fn upgrade(self, upgrade: bool) -> Self {
        self.engine(|engine| engine.upgrade = upgrade)
    }

    /// How long an Engine.IO handshake may take (default 20 s).
    pub fn timeout(self, timeout: Duration) -> Self {
        self.engine(|engine| engine.connect_timeout = Some(timeout))
    }

    /// The protocol revision: v5 (default), or v4 for socket.io 2.x
    /// servers (over Engine.IO v3).
    pub fn protocol(mut self, version: ProtocolVersion) -> Self {
        self.config.version = version;
        self.engine(|engine| engine.version = version.engineio())
    }

    /// Whether to reconnect after the session is lost (default true).
    pub fn reconnection(mut self, reconnection: bool) -> Self {
        self.config.reconnection = reconnection;
        self
    }

    /// How many reconnection attempts in a row before giving up (default:
    /// no limit).
    pub fn reconnection_attempts(mut self, attempts: u32) -> Self {
        self.config.reconnection_attempts = Some(attempts);
        self
    }

    /// The delay before the first reconnection attempt, doubled for each
    /// further one (default 1 s).
    pub fn reconnection_delay(mut self, delay: Duration) -> Self {
        self.config.reconnection_delay = delay;
        self
    }

    /// The longest delay between reconnection attempts (default 5 s).
    pub fn reconnection_delay_max(mut self, delay: Duration) -> Self {
        self.config.reconnection_delay_max = delay;
        self
    }

    /// How far, as a fraction, each delay is moved at random (default 0.5).
    pub fn randomization_factor(mut self, factor: f64) -> Self {
        self.config.randomization_factor = factor;
        self
    }

    /// The most packets buffered per namespace while it is not connected
    /// (default 1024).
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
    pub fn max_running_handlers(mut self, max: usize) -> Self {
        self.max_running_handlers = max;
        self
    }

    /// Changes the Engine.IO settings directly.
    pub fn engine_config(self, f: impl FnOnce(&mut EngineConfig)) -> Self {
        self.engine(f)
    }

    /// Changes the Socket.IO settings directly.
    pub fn config(mut self, f: impl FnOnce(&mut CoreConfig)) -> Self {
        f(&mut self.config);
        self
    }

    /// Runs `setup` on the socket before it connects (to register
    /// handlers, for instance).
    pub fn setup(mut self, setup: impl FnOnce(&ClientSocket) + Send + 'static) -> Self {
        self.setups.push(Box::new(setup));
        self
    }

    /// See [`ClientSocket::on`].
    pub fn on(
        self,
        event: &str,
        handler: impl Fn(ClientSocket, Event) + Send + Sync + 'static,
    ) -> Self {
        let event = event.to_owned();
        self.setup(move |socket| socket.on(&event, handler))
    }

    /// See [`ClientSocket::on_async`].
    pub fn on_async<F, Fut>(self, event: &str, handler: F) -> Self
    where
        F: Fn(ClientSocket, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let event = event.to_owned();
        self.setup(move |socket| socket.on_async(&event, handler))
    }

    /// See [`ClientSocket::on_any`].
    pub fn on_any(self, handler: impl Fn(ClientSocket, Event) + Send + Sync + 'static) -> Self {
        self.setup(move |socket| socket.on_any(handler))
    }

    /// See [`ClientSocket::on_connect`].
    pub fn on_connect(self, handler: impl Fn(ClientSocket) + Send + Sync + 'static) -> Self {
        self.setup(move |socket| socket.on_connect(handler))
    }

    /// See [`ClientSocket::on_disconnect`].
    pub fn on_disconnect(
        self,
        handler: impl Fn(ClientSocket, DisconnectReason) + Send + Sync + 'static,
    ) -> Self {
        self.setup(move |socket| socket.on_disconnect(handler))
    }

    /// See [`ClientSocket::on_connect_error`].
    pub fn on_connect_error(
        self,
        handler: impl Fn(ClientSocket, ConnectError) + Send + Sync + 'static,
    ) -> Self {
        self.setup(move |socket| socket.on_connect_error(handler))
    }

    /// Makes the client and starts joining the namespace, without waiting:
    /// the socket is returned at once (emits are buffered until it is
    /// connected), and the client keeps trying as its reconnection settings
    /// say.
    pub fn build(self, driver: impl ClientDriver) -> Result<ClientSocket, BuildError> {
        let (socket, connecting) = self.start(driver)?;
        drop(connecting);
        Ok(socket)
    }

    /// Makes the client and joins the namespace: resolves once the server
    /// accepted (or refused, or the first session could not be opened; the
    /// client is then closed).
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
