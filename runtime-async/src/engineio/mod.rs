//! The Engine.IO server hub: the sans-IO [`Server`]s shared by every
//! connection of an endpoint, and the routing of what they produce.
//!
//! Connections (async tasks here, OS threads in `switchboard-threads`) feed
//! the hub requests and WebSocket messages; the hub runs them through the
//! core and routes each [`Transmit`] to the task that owns its poll or
//! WebSocket (a oneshot per held poll, a bounded queue per WebSocket).
//! The endpoint's sessions are split among several core servers
//! ([`Shard`]s, a few per CPU), each under its own lock: a message, a
//! request or a send locks only the shard owning its session (named by
//! the session, connection or poll id), so connections on different
//! threads rarely wait for each other. Application events are handed to an [`EventHandler`] in
//! the order the core produced them per session (concurrently across
//! sessions), outside the lock, so a handler may call [`EngineIo::send`]
//! directly. A timer (driven by the runtime, see
//! [`EngineIo::timed`]) is woken whenever the next deadline moves
//! earlier.
//!
//! Nothing in this module is tied to an async runtime: it uses only locks
//! and `futures` channels, which block or await equally well.
//!
//! An endpoint driven in memory, as a server's connection task drives it:
//! the task hands it the request, then each message it reads, and writes
//! what the endpoint queues for it.
//!
//! ```
//! use switchboard_async::engineio::{EngineIo, Routed, WsCommand};
//! use switchboard_core::engineio::{ServerConfig, ServerEvent};
//! use switchboard_core::http::{Limits, Request};
//! use switchboard_core::ws::Message;
//!
//! // Echoes every message to the session it came from.
//! let engine = EngineIo::new(ServerConfig::default(), |engine: &EngineIo, event: ServerEvent| {
//!     if let ServerEvent::Message { sid, data } = event {
//!         let _ = engine.send(&sid, data);
//!     }
//! });
//! // A client's WebSocket request, as the connection task read it.
//! let head = b"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\n\
//!              Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
//! let (request, _) = Request::parse(head, &Limits::default())?.unwrap();
//! let Routed::WebSocket(conn, mut queue) = engine.handle_request(&request, Default::default())
//! else {
//!     panic!("not a WebSocket request")
//! };
//! // (The task completes the WebSocket handshake here.) It writes the
//! // session's `open` packet first ...
//! let Ok(WsCommand::Send(open)) = queue.try_recv() else { panic!() };
//! assert!(open.as_text().unwrap().starts_with(r#"0{"sid":"#));
//! // ... then hands over what it reads, and writes the answers.
//! engine.ws_message(conn, Message::text("4hello"));
//! let Ok(WsCommand::Send(echo)) = queue.try_recv() else { panic!() };
//! assert_eq!(echo.as_text(), Some("4hello"));
//! // The client goes away: the task tells the endpoint.
//! engine.ws_closed(conn);
//! assert_eq!(engine.session_count(), 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod client;
mod queue;

use queue::{SendFailure, WsCommandSender, ws_queue};
pub use queue::{TryRecvError, WsCommands, WsQueueRoom};

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

use crate::dispatch::{OrderedDispatch, run_handler};
use crate::timer::{Timed, TimerSignal};
use bytes::Bytes;
use futures_channel::{mpsc, oneshot};
use futures_core::Stream;
use switchboard_core::engineio::{
    CloseReason, ConnId, HttpResponse, MAX_SHARDS, MessageData, PollId, RequestOutcome, SendError,
    Server, ServerConfig, ServerEvent, Shard, Transmit,
};
use switchboard_core::http::Request;
use switchboard_core::ids::IdMap;
use switchboard_core::ws::Message;

/// Shards per CPU of an endpoint made by [`EngineIo::new`]: enough that
/// two threads rarely want the same shard at once.
const SHARDS_PER_CPU: usize = 4;

/// How long an Engine.IO WebSocket waits at most for the application's
/// handlers to make room for its session's messages
/// ([`EngineIo::room_wait`]) before handing them over anyway (a handler
/// backlog then over its limit closes the socket).
///
/// See [`EventHandler::no_room_made`]'s example.
pub const HANDLERS_CATCH_UP: std::time::Duration = std::time::Duration::from_secs(5);
/// How often a waiting connection looks again.
const HANDLERS_POLL: std::time::Duration = std::time::Duration::from_millis(1);

/// Receives the events of an [`EngineIo`] endpoint: in order and one at a
/// time per session, concurrently across sessions.
///
/// Called outside the hub's lock, from whichever connection or timer
/// produced the event (usually the session's own connection), so events of
/// different sessions may be handled on different threads at once. A
/// handler that blocks holds back only its own session's later events, but
/// it also holds the task or thread it runs on: keep it short on async
/// runtimes (hand long work to a task or channel). It may call
/// [`EngineIo::send`] and [`EngineIo::close`].
///
/// A handler that echoes, and counts the sessions open:
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use switchboard_async::engineio::{EngineIo, EventHandler};
/// use switchboard_core::engineio::{ServerConfig, ServerEvent};
/// use switchboard_core::ws::Message;
/// # // An in-memory WebSocket client, no network: `connect` opens its session (connection, command queue, sid), `sent` takes the texts queued for it.
/// # fn connect(engine: &switchboard_async::engineio::EngineIo) -> (switchboard_core::engineio::ConnId, switchboard_async::engineio::WsCommands, String) {
/// #     use switchboard_async::engineio::{Routed, WsCommand};
/// #     let head = b"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
/// #     let request = switchboard_core::http::Request::parse(head, &Default::default()).unwrap().unwrap().0;
/// #     let Routed::WebSocket(conn, mut queue) = engine.handle_request(&request, Default::default()) else { unreachable!() };
/// #     let Ok(WsCommand::Send(open)) = queue.try_recv() else { unreachable!() };
/// #     let open: serde_json::Value = serde_json::from_str(&open.as_text().unwrap()[1..]).unwrap();
/// #     (conn, queue, open["sid"].as_str().unwrap().to_owned())
/// # }
/// # fn sent(queue: &mut switchboard_async::engineio::WsCommands) -> Vec<String> {
/// #     use switchboard_async::engineio::WsCommand;
/// #     std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect()
/// # }
///
/// struct Echo {
///     open: Arc<AtomicUsize>,
/// }
///
/// impl EventHandler for Echo {
///     fn handle(&self, engine: &EngineIo, event: ServerEvent) {
///         match event {
///             ServerEvent::Open { .. } => {
///                 self.open.fetch_add(1, Ordering::Relaxed);
///             }
///             ServerEvent::Message { sid, data } => {
///                 let _ = engine.send(&sid, data);
///             }
///             ServerEvent::Close { .. } => {
///                 self.open.fetch_sub(1, Ordering::Relaxed);
///             }
///         }
///     }
/// }
///
/// let open = Arc::new(AtomicUsize::new(0));
/// let engine = EngineIo::new(ServerConfig::default(), Echo { open: open.clone() });
/// let (conn, mut queue, _sid) = connect(&engine); // an in-memory WebSocket client
/// assert_eq!(open.load(Ordering::Relaxed), 1);
/// engine.ws_message(conn, Message::text("4hi"));
/// assert_eq!(sent(&mut queue), ["4hi"]);
/// engine.ws_closed(conn);
/// assert_eq!(open.load(Ordering::Relaxed), 0);
/// ```
///
/// A closure `Fn(&EngineIo, ServerEvent)` is a handler too (see
/// [`EngineIo::new`]).
pub trait EventHandler: Send + Sync + 'static {
    /// Handles one event.
    ///
    /// See [`EventHandler`]'s example.
    fn handle(&self, engine: &EngineIo, event: ServerEvent);

    /// Whether the application takes more of session `sid`'s messages
    /// now. While it does not, the session's messages wait undelivered,
    /// its WebSocket connection reads no more and its polling `POST` is
    /// not answered (see [`EngineIo::room_wait`] and
    /// [`EngineIo::answer_wait`]), so a handler backlog a client's burst
    /// would overflow is met by TCP backpressure instead. Always `true` by
    /// default.
    ///
    /// A handler that queues the messages for a worker holds them back while
    /// two wait:
    ///
    /// ```
    /// use std::collections::VecDeque;
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Instant;
    /// use switchboard_async::engineio::{EngineIo, EventHandler};
    /// use switchboard_core::engineio::{MessageData, ServerConfig, ServerEvent};
    /// use switchboard_core::ws::Message;
    /// # // An in-memory WebSocket client, no network: `connect` opens its session (connection, command queue, sid).
    /// # fn connect(engine: &switchboard_async::engineio::EngineIo) -> (switchboard_core::engineio::ConnId, switchboard_async::engineio::WsCommands, String) {
    /// #     use switchboard_async::engineio::{Routed, WsCommand};
    /// #     let head = b"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    /// #     let request = switchboard_core::http::Request::parse(head, &Default::default()).unwrap().unwrap().0;
    /// #     let Routed::WebSocket(conn, mut queue) = engine.handle_request(&request, Default::default()) else { unreachable!() };
    /// #     let Ok(WsCommand::Send(open)) = queue.try_recv() else { unreachable!() };
    /// #     let open: serde_json::Value = serde_json::from_str(&open.as_text().unwrap()[1..]).unwrap();
    /// #     (conn, queue, open["sid"].as_str().unwrap().to_owned())
    /// # }
    ///
    /// struct ToWorker(Arc<Mutex<VecDeque<MessageData>>>);
    ///
    /// impl EventHandler for ToWorker {
    ///     fn handle(&self, _: &EngineIo, event: ServerEvent) {
    ///         if let ServerEvent::Message { data, .. } = event {
    ///             self.0.lock().unwrap().push_back(data);
    ///         }
    ///     }
    ///
    ///     fn has_room(&self, _sid: &str) -> bool {
    ///         self.0.lock().unwrap().len() < 2
    ///     }
    ///
    ///     fn may_lack_room(&self) -> bool {
    ///         !self.has_room("")
    ///     }
    /// }
    ///
    /// let work = Arc::new(Mutex::new(VecDeque::new()));
    /// let engine = EngineIo::new(ServerConfig::default(), ToWorker(work.clone()));
    /// let (conn, _queue, _sid) = connect(&engine); // an in-memory WebSocket client
    /// engine.ws_messages(conn, ["4a", "4b", "4c"].map(Message::text));
    /// assert_eq!(work.lock().unwrap().len(), 2); // "c" waits, not delivered
    /// work.lock().unwrap().pop_front(); // the worker takes "a"
    /// // The endpoint's timer (or the connection, see `EngineIo::room_wait`)
    /// // finds room, and delivers "c".
    /// engine.timed().run_timers(Instant::now());
    /// assert_eq!(*work.lock().unwrap(), ["b".into(), "c".into()]);
    /// ```
    fn has_room(&self, sid: &str) -> bool {
        let _ = sid;
        true
    }

    /// Whether [`has_room`](Self::has_room) may be `false` for some
    /// session: a cheap check a connection makes before every hand-over,
    /// asking `has_room` (which may look through the session's sockets)
    /// only when this says so. `false` by default.
    ///
    /// See [`has_room`](Self::has_room)'s example, whose handler lacks room
    /// exactly when its queue is full.
    fn may_lack_room(&self) -> bool {
        false
    }

    /// A connection waited [`HANDLERS_CATCH_UP`]
    /// for room for session `sid`'s messages in vain and hands them over
    /// anyway: the handler should answer `has_room` with `true` for what
    /// holds the session back until it makes progress (its backlog then
    /// reaches its limit, as a slow flood's does), so connections do not
    /// wait for stuck handlers again and again.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    /// use std::time::Instant;
    /// use switchboard_async::engineio::{EngineIo, EventHandler, HANDLERS_CATCH_UP};
    /// use switchboard_core::engineio::{ServerConfig, ServerEvent};
    /// use switchboard_core::ws::Message;
    /// # // An in-memory WebSocket client, no network: `connect` opens its session (connection, command queue, sid).
    /// # fn connect(engine: &switchboard_async::engineio::EngineIo) -> (switchboard_core::engineio::ConnId, switchboard_async::engineio::WsCommands, String) {
    /// #     use switchboard_async::engineio::{Routed, WsCommand};
    /// #     let head = b"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    /// #     let request = switchboard_core::http::Request::parse(head, &Default::default()).unwrap().unwrap().0;
    /// #     let Routed::WebSocket(conn, mut queue) = engine.handle_request(&request, Default::default()) else { unreachable!() };
    /// #     let Ok(WsCommand::Send(open)) = queue.try_recv() else { unreachable!() };
    /// #     let open: serde_json::Value = serde_json::from_str(&open.as_text().unwrap()[1..]).unwrap();
    /// #     (conn, queue, open["sid"].as_str().unwrap().to_owned())
    /// # }
    ///
    /// /// Room for two messages, which nobody reads: once a session waited in
    /// /// vain, its messages go through.
    /// #[derive(Clone, Default)]
    /// struct Backlog {
    ///     messages: Arc<AtomicUsize>,
    ///     stuck: Arc<AtomicBool>,
    /// }
    ///
    /// impl EventHandler for Backlog {
    ///     fn handle(&self, _: &EngineIo, event: ServerEvent) {
    ///         if let ServerEvent::Message { .. } = event {
    ///             self.messages.fetch_add(1, Ordering::Relaxed);
    ///         }
    ///     }
    ///
    ///     fn has_room(&self, _sid: &str) -> bool {
    ///         self.stuck.load(Ordering::Relaxed) || self.messages.load(Ordering::Relaxed) < 2
    ///     }
    ///
    ///     fn may_lack_room(&self) -> bool {
    ///         true
    ///     }
    ///
    ///     fn no_room_made(&self, sid: &str) {
    ///         eprintln!("session {sid}: nobody reads its messages");
    ///         self.stuck.store(true, Ordering::Relaxed);
    ///     }
    /// }
    ///
    /// let backlog = Backlog::default();
    /// let engine = EngineIo::new(ServerConfig::default(), backlog.clone());
    /// let (conn, _queue, _sid) = connect(&engine); // an in-memory WebSocket client
    /// engine.ws_messages(conn, ["4a", "4b", "4c"].map(Message::text));
    /// assert_eq!(backlog.messages.load(Ordering::Relaxed), 2); // "c" waits
    /// // The endpoint's timer, once the session waited long enough:
    /// engine.timed().run_timers(Instant::now() + HANDLERS_CATCH_UP);
    /// assert!(backlog.stuck.load(Ordering::Relaxed));
    /// assert_eq!(backlog.messages.load(Ordering::Relaxed), 3);
    /// ```
    fn no_room_made(&self, sid: &str) {
        let _ = sid;
    }
}

impl<F> EventHandler for F
where
    F: Fn(&EngineIo, ServerEvent) + Send + Sync + 'static,
{
    fn handle(&self, engine: &EngineIo, event: ServerEvent) {
        self(engine, event)
    }
}

/// What the hub asks a WebSocket task to do.
///
/// A WebSocket connection's task carries them out in order:
///
/// ```
/// use switchboard_async::engineio::{EngineIo, WsCommand};
/// use switchboard_core::engineio::ServerConfig;
/// # // An in-memory WebSocket client, no network: `connect` opens its session (connection, command queue, sid).
/// # fn connect(engine: &switchboard_async::engineio::EngineIo) -> (switchboard_core::engineio::ConnId, switchboard_async::engineio::WsCommands, String) {
/// #     use switchboard_async::engineio::{Routed, WsCommand};
/// #     let head = b"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
/// #     let request = switchboard_core::http::Request::parse(head, &Default::default()).unwrap().unwrap().0;
/// #     let Routed::WebSocket(conn, mut queue) = engine.handle_request(&request, Default::default()) else { unreachable!() };
/// #     let Ok(WsCommand::Send(open)) = queue.try_recv() else { unreachable!() };
/// #     let open: serde_json::Value = serde_json::from_str(&open.as_text().unwrap()[1..]).unwrap();
/// #     (conn, queue, open["sid"].as_str().unwrap().to_owned())
/// # }
///
/// let engine = EngineIo::new(ServerConfig::default(), |_: &EngineIo, _| {});
/// let (_conn, mut queue, sid) = connect(&engine); // an in-memory WebSocket client
/// engine.send(&sid, "bye")?;
/// engine.close(&sid);
/// let mut written = Vec::new();
/// while let Ok(command) = queue.try_recv() {
///     match command {
///         WsCommand::Send(message) => written.push(message), // write it
///         WsCommand::Close => break, // close the WebSocket, and stop
///     }
/// }
/// assert_eq!(written[0].as_text(), Some("4bye"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub enum WsCommand {
    /// Send this message.
    Send(Message),
    /// Close the WebSocket (normal closure) and stop.
    Close,
}

/// The response to a held poll, once the session has something for it
/// (resolves to `Err` when the endpoint is gone). Ready to be written: it
/// takes along what was queued for the session between the answer and
/// the moment it resolves
/// ([`Server::top_up_poll_response`](switchboard_core::engineio::Server::top_up_poll_response)),
/// so the echoes of the rest of a POST go in this response rather than in
/// one more round trip.
///
/// ```
/// use futures_executor::block_on;
/// use switchboard_async::engineio::{EngineIo, Routed};
/// use switchboard_core::engineio::ServerConfig;
/// # // An in-memory polling client, no network: `request` makes its requests, `handshake` opens its session (its sid).
/// # fn request(method: &str, target: &str) -> switchboard_core::http::Request {
/// #     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n\r\n");
/// #     switchboard_core::http::Request::parse(head.as_bytes(), &Default::default()).unwrap().unwrap().0
/// # }
/// # fn handshake(engine: &switchboard_async::engineio::EngineIo) -> String {
/// #     let switchboard_async::engineio::Routed::Respond(open) = engine.handle_request(&request("GET", "/engine.io/?EIO=4&transport=polling"), Default::default()) else { unreachable!() };
/// #     serde_json::from_slice::<serde_json::Value>(&open.body[1..]).unwrap()["sid"].as_str().unwrap().to_owned()
/// # }
///
/// let engine = EngineIo::new(ServerConfig::default(), |_: &EngineIo, _| {});
/// let sid = handshake(&engine); // an in-memory polling client
/// let poll = request("GET", &format!("/engine.io/?EIO=4&transport=polling&sid={sid}"));
/// let Routed::Hold(_poll, held) = engine.handle_request(&poll, Default::default()) else {
///     panic!("nothing queued yet: the poll waits")
/// };
/// engine.send(&sid, "one")?; // answers the poll ...
/// engine.send(&sid, "two")?; // ... and this goes along, not yet written
/// let response = block_on(held)?;
/// assert_eq!(response.body, "4one\x1e4two");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Dropped before it resolved (the connection's task cancelled, its
/// runtime shut down), it aborts the poll as
/// [`EngineIo::poll_aborted`] does: the session closes at once (`transport
/// error`) rather than answer a poll that is never written, losing what it
/// sends meanwhile.
#[derive(Debug)]
pub struct HeldPoll {
    rx: oneshot::Receiver<HttpResponse>,
    hub: std::sync::Weak<Hub>,
    /// The session, to top the response up.
    sid: Option<Arc<str>>,
    poll: PollId,
    /// Resolved: nothing to abort when dropped.
    done: bool,
}

impl std::future::Future for HeldPoll {
    type Output = Result<HttpResponse, oneshot::Canceled>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let received = std::task::ready!(std::pin::Pin::new(&mut self.rx).poll(cx));
        self.done = true;
        let mut response = received?;
        if let Some(sid) = &self.sid
            && let Some(hub) = self.hub.upgrade()
        {
            lock(&hub.shards[self.poll.shard()])
                .server
                .top_up_poll_response(sid, &mut response);
        }
        Poll::Ready(Ok(response))
    }
}

impl Drop for HeldPoll {
    fn drop(&mut self) {
        if !self.done
            && let Some(hub) = self.hub.upgrade()
        {
            EngineIo { hub }.poll_aborted(self.poll);
        }
    }
}

/// A polling `POST` whose answer waits for the handlers (see
/// [`EngineIo::answer_wait`]). Dropped before [`wait_until`](Self::wait_until) said
/// `None`, it closes the session (`transport error`), as Node does when a
/// data request's connection closes early.
///
/// ```
/// use switchboard_async::engineio::{EngineIo, EventHandler};
/// use switchboard_core::engineio::{CloseReason, ServerConfig, ServerEvent};
/// # use std::sync::{Arc, Mutex};
/// # // An in-memory polling client, no network: `request` makes its requests, `handshake` opens its session (its sid).
/// # fn request(method: &str, target: &str) -> switchboard_core::http::Request {
/// #     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n\r\n");
/// #     switchboard_core::http::Request::parse(head.as_bytes(), &Default::default()).unwrap().unwrap().0
/// # }
/// # fn handshake(engine: &switchboard_async::engineio::EngineIo) -> String {
/// #     let switchboard_async::engineio::Routed::Respond(open) = engine.handle_request(&request("GET", "/engine.io/?EIO=4&transport=polling"), Default::default()) else { unreachable!() };
/// #     serde_json::from_slice::<serde_json::Value>(&open.body[1..]).unwrap()["sid"].as_str().unwrap().to_owned()
/// # }
/// # /// Has no room for any message, and records the events it gets.
/// # struct Full(Arc<Mutex<Vec<ServerEvent>>>);
/// # impl EventHandler for Full {
/// #     fn handle(&self, _: &EngineIo, event: ServerEvent) { self.0.lock().unwrap().push(event) }
/// #     fn has_room(&self, _: &str) -> bool { false }
/// #     fn may_lack_room(&self) -> bool { true }
/// # }
/// # let events = Arc::new(Mutex::new(Vec::new()));
///
/// // A handler without room for the messages (`Full`):
/// let engine = EngineIo::new(ServerConfig::default(), Full(events.clone()));
/// let sid = handshake(&engine); // an in-memory polling client
/// let post = request("POST", &format!("/engine.io/?EIO=4&transport=polling&sid={sid}"));
/// engine.handle_request(&post, "4hello".into());
/// let answer = engine.answer_wait(&post).expect("the answer waits for the handler");
/// drop(answer); // the client went away before it was written
/// assert_eq!(engine.session_count(), 0);
/// let last = events.lock().unwrap().pop();
/// assert!(matches!(last, Some(ServerEvent::Close { reason: CloseReason::TransportError, .. })));
/// ```
#[derive(Debug)]
pub struct PostAnswer {
    engine: EngineIo,
    sid: Arc<str>,
    shard: usize,
    since: Instant,
    done: bool,
}

impl PostAnswer {
    /// `None` once the answer can be written; otherwise when to ask again.
    ///
    /// A connection waits as told, then writes the answer:
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::time::{Duration, Instant};
    /// use switchboard_async::engineio::{EngineIo, EventHandler, Routed};
    /// use switchboard_core::engineio::{ServerConfig, ServerEvent};
    /// # // An in-memory polling client, no network: `request` makes its requests, `handshake` opens its session (its sid).
    /// # fn request(method: &str, target: &str) -> switchboard_core::http::Request {
    /// #     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    /// #     switchboard_core::http::Request::parse(head.as_bytes(), &Default::default()).unwrap().unwrap().0
    /// # }
    /// # fn handshake(engine: &switchboard_async::engineio::EngineIo) -> String {
    /// #     let switchboard_async::engineio::Routed::Respond(open) = engine.handle_request(&request("GET", "/engine.io/?EIO=4&transport=polling"), Default::default()) else { unreachable!() };
    /// #     serde_json::from_slice::<serde_json::Value>(&open.body[1..]).unwrap()["sid"].as_str().unwrap().to_owned()
    /// # }
    /// # /// Has room while its flag says so.
    /// # struct Gate(Arc<AtomicBool>);
    /// # impl EventHandler for Gate {
    /// #     fn handle(&self, _: &EngineIo, _: ServerEvent) {}
    /// #     fn has_room(&self, _: &str) -> bool { self.0.load(Ordering::Relaxed) }
    /// #     fn may_lack_room(&self) -> bool { true }
    /// # }
    ///
    /// // A handler with room while `room` says so (`Gate`), none for now:
    /// let room = Arc::new(AtomicBool::new(false));
    /// let engine = EngineIo::new(ServerConfig::default(), Gate(room.clone()));
    /// let sid = handshake(&engine); // an in-memory polling client
    /// let post = request("POST", &format!("/engine.io/?EIO=4&transport=polling&sid={sid}"));
    /// let Routed::Respond(response) = engine.handle_request(&post, "4hello".into()) else {
    ///     panic!()
    /// };
    /// // The application catches up, elsewhere.
    /// std::thread::spawn(move || {
    ///     std::thread::sleep(Duration::from_millis(20));
    ///     room.store(true, Ordering::Relaxed);
    /// });
    /// if let Some(mut answer) = engine.answer_wait(&post) {
    ///     while let Some(again) = answer.wait_until() {
    ///         std::thread::sleep(again.saturating_duration_since(Instant::now()));
    ///     }
    /// }
    /// assert_eq!(response.body, "ok"); // now written
    /// ```
    pub fn wait_until(&mut self) -> Option<Instant> {
        let again = self.engine.wait_for_session(&self.sid, self.since, false);
        self.done = again.is_none();
        again
    }
}

impl Drop for PostAnswer {
    fn drop(&mut self) {
        let done = self.done;
        self.engine.with_state(self.shard, |state| {
            state.answering.remove(&self.sid);
            if !done {
                state.server.post_aborted(&self.sid, Instant::now());
            }
        });
    }
}

/// What to do with an HTTP request on the Engine.IO path.
///
/// How a connection answers a request on the Engine.IO path, here with
/// blocking calls (an async server awaits the held poll instead, while it
/// watches the connection):
///
/// ```
/// use bytes::Bytes;
/// use futures_executor::block_on;
/// use switchboard_async::engineio::{EngineIo, Routed};
/// use switchboard_core::engineio::ServerConfig;
/// use switchboard_core::http::Request;
/// # // An in-memory polling client, no network: `request` makes its requests, `handshake` opens its session (its sid).
/// # fn request(method: &str, target: &str) -> switchboard_core::http::Request {
/// #     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n\r\n");
/// #     switchboard_core::http::Request::parse(head.as_bytes(), &Default::default()).unwrap().unwrap().0
/// # }
/// # fn handshake(engine: &switchboard_async::engineio::EngineIo) -> String {
/// #     let switchboard_async::engineio::Routed::Respond(open) = engine.handle_request(&request("GET", "/engine.io/?EIO=4&transport=polling"), Default::default()) else { unreachable!() };
/// #     serde_json::from_slice::<serde_json::Value>(&open.body[1..]).unwrap()["sid"].as_str().unwrap().to_owned()
/// # }
///
/// /// The response to write, if the request is answered over HTTP.
/// fn answer(engine: &EngineIo, request: &Request, body: Bytes) -> Option<Vec<u8>> {
///     let response = match engine.handle_request(request, body) {
///         Routed::Respond(response) => response,
///         // (A client that hangs up meanwhile: `engine.poll_aborted(poll)`.)
///         Routed::Hold(_poll, held) => block_on(held).ok()?,
///         // Upgrade, then carry the messages: see `server::pump_engine_ws`.
///         Routed::WebSocket(..) => return None,
///     };
///     Some(response.encode_for(&request.method))
/// }
///
/// let engine = EngineIo::new(ServerConfig::default(), |_: &EngineIo, _| {});
/// let first = request("GET", "/engine.io/?EIO=4&transport=polling"); // a handshake
/// let open = answer(&engine, &first, Bytes::new());
/// assert!(open.unwrap().starts_with(b"HTTP/1.1 200 OK\r\n"));
/// # let sid = handshake(&engine);
/// let poll = request("GET", &format!("/engine.io/?EIO=4&transport=polling&sid={sid}"));
/// let sender = engine.clone();
/// std::thread::spawn(move || sender.send(&sid, "news"));
/// assert!(answer(&engine, &poll, Bytes::new()).unwrap().ends_with(b"4news"));
/// ```
#[derive(Debug)]
pub enum Routed {
    /// Write this response.
    Respond(HttpResponse),
    /// Wait for the response of this held poll. If the client goes away
    /// first, call [`EngineIo::poll_aborted`].
    Hold(PollId, HeldPoll),
    /// Perform the WebSocket handshake, then pump messages: feed
    /// [`EngineIo::ws_message`] and [`EngineIo::ws_closed`], and carry out
    /// the commands from the receiver (which already holds the first ones,
    /// such as a WebSocket-only session's `open` packet).
    WebSocket(ConnId, WsCommands),
}

/// One shard of the endpoint: its core server and the channels to the
/// polls and WebSockets of its sessions.
struct State {
    server: Server,
    polls: IdMap<PollId, oneshot::Sender<HttpResponse>>,
    conns: IdMap<ConnId, WsCommandSender>,
    /// Sessions whose last `POST` is not answered yet ([`PostAnswer`]).
    answering: switchboard_core::ids::IdSet<Arc<str>>,
    /// This shard's deadline as the timer last saw it, if any.
    timer_deadline: Option<Instant>,
}

struct Hub {
    shards: Box<[Mutex<State>]>,
    /// Turns handshakes (which any shard can take) among the shards.
    next_handshake: AtomicUsize,
    /// Copied out of the configuration, read without a lock.
    max_payload: usize,
    per_message_deflate: bool,
    /// Events taken out of the server, waiting for the handler, in order
    /// per session.
    events: OrderedDispatch<Arc<str>, ServerEvent>,
    handler: Box<dyn EventHandler>,
    timer: TimerSignal,
    /// The hub itself, to hand the handler an [`EngineIo`].
    this: std::sync::Weak<Hub>,
}

impl Drop for Hub {
    fn drop(&mut self) {
        // Lets the timer notice the endpoint is gone.
        self.timer.wake();
    }
}

impl Timed for Hub {
    fn run_timers(&self, now: Instant) -> Option<Instant> {
        let mut earliest: Option<Instant> = None;
        for shard in 0..self.shards.len() {
            let mut state = lock(&self.shards[shard]);
            state.server.handle_timeout(now);
            EngineIo::route(self, &mut state);
            let next = state.server.poll_timeout();
            state.timer_deadline = next;
            drop(state);
            earliest = earliest.into_iter().chain(next).min();
        }
        EngineIo::deliver(self);
        let resume = EngineIo::resume_paused(self, now);
        earliest.into_iter().chain(resume).min()
    }

    fn timer_signal(&self) -> &TimerSignal {
        &self.timer
    }
}

/// An Engine.IO endpoint: the shared session table and the handle the
/// application sends and closes with. Cloning is cheap (one `Arc`).
///
/// ```
/// use switchboard_async::engineio::EngineIo;
/// use switchboard_core::engineio::{ServerConfig, ServerEvent};
/// # // An in-memory WebSocket client, no network: `connect` opens its session (connection, command queue, sid), `sent` takes the texts queued for it.
/// # fn connect(engine: &switchboard_async::engineio::EngineIo) -> (switchboard_core::engineio::ConnId, switchboard_async::engineio::WsCommands, String) {
/// #     use switchboard_async::engineio::{Routed, WsCommand};
/// #     let head = b"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
/// #     let request = switchboard_core::http::Request::parse(head, &Default::default()).unwrap().unwrap().0;
/// #     let Routed::WebSocket(conn, mut queue) = engine.handle_request(&request, Default::default()) else { unreachable!() };
/// #     let Ok(WsCommand::Send(open)) = queue.try_recv() else { unreachable!() };
/// #     let open: serde_json::Value = serde_json::from_str(&open.as_text().unwrap()[1..]).unwrap();
/// #     (conn, queue, open["sid"].as_str().unwrap().to_owned())
/// # }
/// # fn sent(queue: &mut switchboard_async::engineio::WsCommands) -> Vec<String> {
/// #     use switchboard_async::engineio::WsCommand;
/// #     std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect()
/// # }
///
/// // Greets every new session.
/// let engine = EngineIo::new(ServerConfig::default(), |engine: &EngineIo, event: ServerEvent| {
///     if let ServerEvent::Open { sid, .. } = event {
///         let _ = engine.send(&sid, "welcome");
///     }
/// });
/// let (_conn, mut queue, sid) = connect(&engine); // an in-memory WebSocket client
/// assert_eq!(sent(&mut queue), ["4welcome"]);
/// // Any clone sends to any session, from any thread.
/// let handle = engine.clone();
/// std::thread::spawn(move || handle.send(&sid, "news")).join().unwrap()?;
/// assert_eq!(sent(&mut queue), ["4news"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct EngineIo {
    hub: Arc<Hub>,
}

impl fmt::Debug for EngineIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineIo")
            .field("sessions", &self.session_count())
            .finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How many locks a hub splits its state among by default: four per CPU,
/// so two threads rarely want the same one.
pub(crate) fn default_shards() -> usize {
    std::thread::available_parallelism()
        .map_or(1, usize::from)
        .saturating_mul(SHARDS_PER_CPU)
        .clamp(1, MAX_SHARDS)
}

impl EngineIo {
    /// An endpoint whose events go to `handler`.
    ///
    /// Its timers (heartbeats, upgrade timeouts) run only while a runtime
    /// drives its [`EngineIo::timed`] handle: the adapters' `serve` functions do.
    ///
    /// ```
    /// use switchboard_async::engineio::EngineIo;
    /// use switchboard_core::engineio::{ServerConfig, ServerEvent};
    ///
    /// let engine = EngineIo::new(ServerConfig::default(), |engine: &EngineIo, event: ServerEvent| {
    ///     match event {
    ///         ServerEvent::Open { sid, request, .. } => println!("{sid} opened {}", request.target),
    ///         ServerEvent::Message { sid, data } => {
    ///             let _ = engine.send(&sid, data); // echo
    ///         }
    ///         ServerEvent::Close { sid, reason } => println!("{sid} closed: {reason}"),
    ///     }
    /// });
    /// assert_eq!(engine.session_count(), 0);
    /// ```
    pub fn new(config: ServerConfig, handler: impl EventHandler) -> Self {
        Self::with_shards(config, handler, default_shards())
    }

    /// An endpoint whose sessions are split among `shards` core servers,
    /// each under its own lock (see [`Shard`]); [`EngineIo::new`] takes
    /// four per CPU. One shard serializes every message of the endpoint.
    ///
    /// # Panics
    ///
    /// When `shards` is 0 or above [`MAX_SHARDS`].
    ///
    /// ```
    /// use switchboard_async::engineio::EngineIo;
    /// use switchboard_core::engineio::ServerConfig;
    ///
    /// let engine = EngineIo::with_shards(ServerConfig::default(), |_: &EngineIo, _| {}, 2);
    /// assert_eq!(engine.session_count(), 0);
    /// ```
    pub fn with_shards(config: ServerConfig, handler: impl EventHandler, shards: usize) -> Self {
        assert!(
            (1..=MAX_SHARDS).contains(&shards),
            "an endpoint has 1 to {MAX_SHARDS} shards, not {shards}"
        );
        let max_payload = config.max_payload;
        let per_message_deflate = config.per_message_deflate;
        let events = OrderedDispatch::with_shards(shards);
        let shards = (0..shards)
            .map(|index| {
                Mutex::new(State {
                    server: Server::with_shard(config.clone(), Shard::new(index, shards)),
                    polls: IdMap::default(),
                    answering: Default::default(),
                    conns: IdMap::default(),
                    timer_deadline: None,
                })
            })
            .collect();
        EngineIo {
            hub: Arc::new_cyclic(|this| Hub {
                shards,
                next_handshake: AtomicUsize::new(0),
                max_payload,
                per_message_deflate,
                events,
                handler: Box::new(handler),
                timer: TimerSignal::default(),
                this: this.clone(),
            }),
        }
    }

    /// An endpoint that hands each new session to the returned stream as
    /// a [`Socket`] (see [`Sockets`]).
    ///
    /// Accept the sessions and read their messages: a session with
    /// [`ServerConfig::max_buffered_packets`] messages unread is closed, and
    /// so is a new one while as many wait to be accepted.
    ///
    /// ```
    /// use futures_executor::block_on;
    /// use switchboard_async::engineio::EngineIo;
    /// use switchboard_core::engineio::ServerConfig;
    /// use switchboard_core::ws::Message;
    /// # // An in-memory WebSocket client, no network: `connect` opens its session (connection, command queue, sid), `sent` takes the texts queued for it.
    /// # fn connect(engine: &switchboard_async::engineio::EngineIo) -> (switchboard_core::engineio::ConnId, switchboard_async::engineio::WsCommands, String) {
    /// #     use switchboard_async::engineio::{Routed, WsCommand};
    /// #     let head = b"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    /// #     let request = switchboard_core::http::Request::parse(head, &Default::default()).unwrap().unwrap().0;
    /// #     let Routed::WebSocket(conn, mut queue) = engine.handle_request(&request, Default::default()) else { unreachable!() };
    /// #     let Ok(WsCommand::Send(open)) = queue.try_recv() else { unreachable!() };
    /// #     let open: serde_json::Value = serde_json::from_str(&open.as_text().unwrap()[1..]).unwrap();
    /// #     (conn, queue, open["sid"].as_str().unwrap().to_owned())
    /// # }
    /// # fn sent(queue: &mut switchboard_async::engineio::WsCommands) -> Vec<String> {
    /// #     use switchboard_async::engineio::WsCommand;
    /// #     std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect()
    /// # }
    ///
    /// let (engine, mut sockets) = EngineIo::with_sockets(ServerConfig::default());
    /// let (conn, mut queue, _sid) = connect(&engine); // an in-memory WebSocket client
    /// let mut socket = block_on(sockets.accept()).unwrap();
    /// engine.ws_message(conn, Message::text("4ping"));
    /// let message = block_on(socket.recv()).unwrap();
    /// socket.send(message)?; // echo
    /// assert_eq!(sent(&mut queue), ["4ping"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_sockets(config: ServerConfig) -> (Self, Sockets) {
        let buffer = config.max_buffered_packets.max(1);
        let (tx, rx) = mpsc::channel(buffer);
        let router = SocketRouter {
            new_sockets: Mutex::new(tx),
            inboxes: Mutex::new(IdMap::default()),
            buffer,
            unread: Arc::default(),
        };
        (EngineIo::new(config, router), Sockets { rx })
    }

    /// How many sessions are open.
    ///
    /// ```
    /// use switchboard_async::engineio::EngineIo;
    /// use switchboard_core::engineio::ServerConfig;
    /// # // An in-memory WebSocket client, no network: `connect` opens its session (connection, command queue, sid).
    /// # fn connect(engine: &switchboard_async::engineio::EngineIo) -> (switchboard_core::engineio::ConnId, switchboard_async::engineio::WsCommands, String) {
    /// #     use switchboard_async::engineio::{Routed, WsCommand};
    /// #     let head = b"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    /// #     let request = switchboard_core::http::Request::parse(head, &Default::default()).unwrap().unwrap().0;
    /// #     let Routed::WebSocket(conn, mut queue) = engine.handle_request(&request, Default::default()) else { unreachable!() };
    /// #     let Ok(WsCommand::Send(open)) = queue.try_recv() else { unreachable!() };
    /// #     let open: serde_json::Value = serde_json::from_str(&open.as_text().unwrap()[1..]).unwrap();
    /// #     (conn, queue, open["sid"].as_str().unwrap().to_owned())
    /// # }
    ///
    /// let engine = EngineIo::new(ServerConfig::default(), |_: &EngineIo, _| {});
    /// assert_eq!(engine.session_count(), 0);
    /// let (conn, _queue, _sid) = connect(&engine); // an in-memory WebSocket client
    /// assert_eq!(engine.session_count(), 1);
    /// engine.ws_closed(conn);
    /// assert_eq!(engine.session_count(), 0);
    /// ```
    pub fn session_count(&self) -> usize {
        self.hub
            .shards
            .iter()
            .map(|shard| lock(shard).server.session_count())
            .sum()
    }

    /// The largest message or polling body accepted.
    ///
    /// ```
    /// use switchboard_async::engineio::EngineIo;
    /// use switchboard_core::engineio::ServerConfig;
    ///
    /// let config = ServerConfig { max_payload: 64 << 10, ..ServerConfig::default() };
    /// let engine = EngineIo::new(config, |_: &EngineIo, _| {});
    /// assert_eq!(engine.max_payload(), 65_536);
    /// ```
    pub fn max_payload(&self) -> usize {
        self.hub.max_payload
    }

    /// Whether its WebSocket transport accepts permessage-deflate.
    ///
    /// ```
    /// use switchboard_async::engineio::EngineIo;
    /// use switchboard_core::engineio::ServerConfig;
    ///
    /// let engine = EngineIo::new(ServerConfig::default(), |_: &EngineIo, _| {});
    /// assert!(!engine.per_message_deflate()); // off by default
    /// let config = ServerConfig { per_message_deflate: true, ..ServerConfig::default() };
    /// assert!(EngineIo::new(config, |_: &EngineIo, _| {}).per_message_deflate());
    /// ```
    pub fn per_message_deflate(&self) -> bool {
        self.hub.per_message_deflate
    }

    /// The WebSocket settings for this endpoint's connections: `base`,
    /// without compression unless the endpoint enables it.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use switchboard_async::engineio::EngineIo;
    /// use switchboard_core::engineio::ServerConfig;
    /// use switchboard_core::ws::Config;
    ///
    /// let base = Arc::new(Config::default()); // permessage-deflate on
    /// let without_deflate = Arc::new(Config { deflate: None, ..Config::default() });
    /// let engine = EngineIo::new(ServerConfig::default(), |_: &EngineIo, _| {});
    /// let config = engine.websocket_config(&base, &without_deflate);
    /// assert!(config.deflate.is_none()); // the endpoint does not enable it
    /// ```
    pub fn websocket_config(
        &self,
        base: &Arc<switchboard_core::ws::Config>,
        without_deflate: &Arc<switchboard_core::ws::Config>,
    ) -> Arc<switchboard_core::ws::Config> {
        if self.per_message_deflate() {
            base.clone()
        } else {
            without_deflate.clone()
        }
    }

    /// Sends a message to session `sid`: at once over WebSocket, or with
    /// the next poll response (a held poll is released now).
    ///
    /// ```
    /// use switchboard_async::engineio::EngineIo;
    /// use switchboard_core::engineio::{SendError, ServerConfig};
    /// # // An in-memory WebSocket client, no network: `connect` opens its session (connection, command queue, sid), `sent` takes the texts queued for it.
    /// # fn connect(engine: &switchboard_async::engineio::EngineIo) -> (switchboard_core::engineio::ConnId, switchboard_async::engineio::WsCommands, String) {
    /// #     use switchboard_async::engineio::{Routed, WsCommand};
    /// #     let head = b"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    /// #     let request = switchboard_core::http::Request::parse(head, &Default::default()).unwrap().unwrap().0;
    /// #     let Routed::WebSocket(conn, mut queue) = engine.handle_request(&request, Default::default()) else { unreachable!() };
    /// #     let Ok(WsCommand::Send(open)) = queue.try_recv() else { unreachable!() };
    /// #     let open: serde_json::Value = serde_json::from_str(&open.as_text().unwrap()[1..]).unwrap();
    /// #     (conn, queue, open["sid"].as_str().unwrap().to_owned())
    /// # }
    /// # fn sent(queue: &mut switchboard_async::engineio::WsCommands) -> Vec<String> {
    /// #     use switchboard_async::engineio::WsCommand;
    /// #     std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect()
    /// # }
    ///
    /// let engine = EngineIo::new(ServerConfig::default(), |_: &EngineIo, _| {});
    /// let (_conn, mut queue, sid) = connect(&engine); // an in-memory WebSocket client
    /// engine.send(&sid, "hello")?;
    /// engine.send(&sid, String::from("world"))?;
    /// assert_eq!(sent(&mut queue), ["4hello", "4world"]);
    /// assert_eq!(engine.send("no-such-session", "hello"), Err(SendError::UnknownSession));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send(&self, sid: &str, data: impl Into<MessageData>) -> Result<(), SendError> {
        let data = data.into();
        self.with_server(self.sid_shard(sid), |server| server.send(sid, data))
    }

    /// Sends `messages` only if the session's transport can take them now
    /// (see the core's `Server::send_volatile`); returns whether it did.
    ///
    /// ```
    /// use switchboard_async::engineio::EngineIo;
    /// use switchboard_core::engineio::ServerConfig;
    /// # // An in-memory WebSocket client, no network: `connect` opens its session (connection, command queue, sid), `sent` takes the texts queued for it.
    /// # fn connect(engine: &switchboard_async::engineio::EngineIo) -> (switchboard_core::engineio::ConnId, switchboard_async::engineio::WsCommands, String) {
    /// #     use switchboard_async::engineio::{Routed, WsCommand};
    /// #     let head = b"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    /// #     let request = switchboard_core::http::Request::parse(head, &Default::default()).unwrap().unwrap().0;
    /// #     let Routed::WebSocket(conn, mut queue) = engine.handle_request(&request, Default::default()) else { unreachable!() };
    /// #     let Ok(WsCommand::Send(open)) = queue.try_recv() else { unreachable!() };
    /// #     let open: serde_json::Value = serde_json::from_str(&open.as_text().unwrap()[1..]).unwrap();
    /// #     (conn, queue, open["sid"].as_str().unwrap().to_owned())
    /// # }
    /// # fn sent(queue: &mut switchboard_async::engineio::WsCommands) -> Vec<String> {
    /// #     use switchboard_async::engineio::WsCommand;
    /// #     std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect()
    /// # }
    /// # // An in-memory polling client, no network: `request` makes its requests, `handshake` opens its session (its sid).
    /// # fn request(method: &str, target: &str) -> switchboard_core::http::Request {
    /// #     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    /// #     switchboard_core::http::Request::parse(head.as_bytes(), &Default::default()).unwrap().unwrap().0
    /// # }
    /// # fn handshake(engine: &switchboard_async::engineio::EngineIo) -> String {
    /// #     let switchboard_async::engineio::Routed::Respond(open) = engine.handle_request(&request("GET", "/engine.io/?EIO=4&transport=polling"), Default::default()) else { unreachable!() };
    /// #     serde_json::from_slice::<serde_json::Value>(&open.body[1..]).unwrap()["sid"].as_str().unwrap().to_owned()
    /// # }
    ///
    /// let engine = EngineIo::new(ServerConfig::default(), |_: &EngineIo, _| {});
    /// let (_conn, mut queue, sid) = connect(&engine); // a WebSocket client
    /// assert_eq!(engine.send_volatile(&sid, ["tick".into()]), Ok(true));
    /// assert_eq!(sent(&mut queue), ["4tick"]);
    /// let sid = handshake(&engine); // a polling client, between two polls
    /// assert_eq!(engine.send_volatile(&sid, ["tick".into()]), Ok(false)); // dropped
    /// ```
    pub fn send_volatile(
        &self,
        sid: &str,
        messages: impl IntoIterator<Item = MessageData>,
    ) -> Result<bool, SendError> {
        self.with_server(self.sid_shard(sid), |server| {
            server.send_volatile(sid, messages)
        })
    }

    /// Closes session `sid` (`forced close`).
    ///
    /// ```
    /// use switchboard_async::engineio::{EngineIo, WsCommand};
    /// use switchboard_core::engineio::{CloseReason, ServerConfig, ServerEvent};
    /// # // An in-memory WebSocket client, no network: `connect` opens its session (connection, command queue, sid).
    /// # fn connect(engine: &switchboard_async::engineio::EngineIo) -> (switchboard_core::engineio::ConnId, switchboard_async::engineio::WsCommands, String) {
    /// #     use switchboard_async::engineio::{Routed, WsCommand};
    /// #     let head = b"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    /// #     let request = switchboard_core::http::Request::parse(head, &Default::default()).unwrap().unwrap().0;
    /// #     let Routed::WebSocket(conn, mut queue) = engine.handle_request(&request, Default::default()) else { unreachable!() };
    /// #     let Ok(WsCommand::Send(open)) = queue.try_recv() else { unreachable!() };
    /// #     let open: serde_json::Value = serde_json::from_str(&open.as_text().unwrap()[1..]).unwrap();
    /// #     (conn, queue, open["sid"].as_str().unwrap().to_owned())
    /// # }
    ///
    /// let (events, handled) = std::sync::mpsc::channel();
    /// let engine = EngineIo::new(ServerConfig::default(), move |_: &EngineIo, event| {
    ///     let _ = events.send(event);
    /// });
    /// let (_conn, mut queue, sid) = connect(&engine); // an in-memory WebSocket client
    /// engine.close(&sid);
    /// assert!(matches!(queue.try_recv(), Ok(WsCommand::Close))); // its WebSocket closes
    /// let closed = ServerEvent::Close { sid: sid.into(), reason: CloseReason::ForcedClose };
    /// assert_eq!(handled.try_iter().last(), Some(closed));
    /// ```
    pub fn close(&self, sid: &str) {
        self.with_server(self.sid_shard(sid), |server| server.close(sid));
    }

    /// Runs several sends and closes as one: one lock and one routing pass
    /// for all of them (a broadcast to many sessions, say). Returns what `f`
    /// returns.
    ///
    /// ```
    /// use switchboard_async::engineio::EngineIo;
    /// use switchboard_core::engineio::{ServerConfig, ServerEvent};
    ///
    /// let engine = EngineIo::new(ServerConfig::default(), |_: &EngineIo, _: ServerEvent| {});
    /// let reached = engine.batch(|batch| {
    ///     let text = "to all".into();
    ///     batch.send_many(["no-such-session", "nor-this-one"], &text)
    /// });
    /// assert_eq!(reached, 0);
    /// ```
    pub fn batch<T>(&self, f: impl FnOnce(&mut Batch<'_>) -> T) -> T {
        let mut batch = Batch {
            hub: &self.hub,
            held: None,
        };
        let result = f(&mut batch);
        batch.release();
        Self::deliver(&self.hub);
        result
    }

    /// Handles an HTTP request on the Engine.IO path, with its body (cut at
    /// [`ServerConfig::max_payload`] + 1 bytes).
    ///
    /// A polling client's requests:
    ///
    /// ```
    /// use futures_executor::block_on;
    /// use switchboard_async::engineio::{EngineIo, Routed};
    /// use switchboard_core::engineio::{ServerConfig, ServerEvent};
    /// # // An in-memory polling client, no network: `request` makes its requests, `handshake` opens its session (its sid).
    /// # fn request(method: &str, target: &str) -> switchboard_core::http::Request {
    /// #     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    /// #     switchboard_core::http::Request::parse(head.as_bytes(), &Default::default()).unwrap().unwrap().0
    /// # }
    /// # fn handshake(engine: &switchboard_async::engineio::EngineIo) -> String {
    /// #     let switchboard_async::engineio::Routed::Respond(open) = engine.handle_request(&request("GET", "/engine.io/?EIO=4&transport=polling"), Default::default()) else { unreachable!() };
    /// #     serde_json::from_slice::<serde_json::Value>(&open.body[1..]).unwrap()["sid"].as_str().unwrap().to_owned()
    /// # }
    ///
    /// let engine = EngineIo::new(ServerConfig::default(), |engine: &EngineIo, event: ServerEvent| {
    ///     if let ServerEvent::Message { sid, data } = event {
    ///         let _ = engine.send(&sid, data); // echo
    ///     }
    /// });
    /// let handshake = request("GET", "/engine.io/?EIO=4&transport=polling");
    /// let Routed::Respond(open) = engine.handle_request(&handshake, Default::default()) else {
    ///     panic!()
    /// };
    /// assert!(open.body.starts_with(br#"0{"sid":""#));
    /// # let sid = serde_json::from_slice::<serde_json::Value>(&open.body[1..])?["sid"].as_str().unwrap().to_owned();
    /// let target = format!("/engine.io/?EIO=4&transport=polling&sid={sid}");
    /// // A poll waits for something to send; a POST brings messages.
    /// let (poll, post) = (request("GET", &target), request("POST", &target));
    /// let Routed::Hold(_poll, held) = engine.handle_request(&poll, Default::default()) else {
    ///     panic!()
    /// };
    /// let Routed::Respond(ok) = engine.handle_request(&post, "4hi".into()) else { panic!() };
    /// assert_eq!((ok.status, &ok.body[..]), (200, &b"ok"[..]));
    /// assert_eq!(block_on(held)?.body, "4hi"); // the echo
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn handle_request(&self, request: &Request, body: Bytes) -> Routed {
        let count = self.hub.shards.len();
        let shard = Shard::of_request(request, count).unwrap_or_else(|| self.handshake_shard());
        self.with_state(shard, |state| {
            if request.method == "POST"
                && !state.answering.is_empty()
                && let Some(sid) = request.query_param("sid")
                && state.answering.contains(&*sid)
            {
                let now = Instant::now();
                return Routed::Respond(state.server.post_overlapped(request, &sid, now));
            }
            match state.server.handle_request(request, body, Instant::now()) {
                RequestOutcome::Respond(response) => Routed::Respond(response),
                RequestOutcome::Hold(poll) => {
                    let (tx, rx) = oneshot::channel();
                    state.polls.insert(poll, tx);
                    let sid = state.server.held_poll_session(poll);
                    Routed::Hold(
                        poll,
                        HeldPoll {
                            rx,
                            hub: Arc::downgrade(&self.hub),
                            sid,
                            poll,
                            done: false,
                        },
                    )
                }
                RequestOutcome::AcceptWebSocket { conn } => {
                    let buffer = state.server.config().max_buffered_packets.max(1);
                    let (tx, rx) = ws_queue(buffer);
                    state.conns.insert(conn, tx);
                    Routed::WebSocket(conn, rx)
                }
            }
        })
    }

    /// The shard for a request without a session (a handshake): the next
    /// in turn that has room for a session, or the next in turn if none
    /// has (it refuses the handshake).
    fn handshake_shard(&self) -> usize {
        let count = self.hub.shards.len();
        let first = self.hub.next_handshake.fetch_add(1, Ordering::Relaxed) % count;
        (0..count)
            .map(|step| (first + step) % count)
            .find(|&shard| !lock(&self.hub.shards[shard]).server.is_full())
            .unwrap_or(first)
    }

    /// The client of held poll `poll` went away before its response.
    ///
    /// ```
    /// use switchboard_async::engineio::{EngineIo, Routed};
    /// use switchboard_core::engineio::ServerConfig;
    /// # // An in-memory polling client, no network: `request` makes its requests, `handshake` opens its session (its sid).
    /// # fn request(method: &str, target: &str) -> switchboard_core::http::Request {
    /// #     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    /// #     switchboard_core::http::Request::parse(head.as_bytes(), &Default::default()).unwrap().unwrap().0
    /// # }
    /// # fn handshake(engine: &switchboard_async::engineio::EngineIo) -> String {
    /// #     let switchboard_async::engineio::Routed::Respond(open) = engine.handle_request(&request("GET", "/engine.io/?EIO=4&transport=polling"), Default::default()) else { unreachable!() };
    /// #     serde_json::from_slice::<serde_json::Value>(&open.body[1..]).unwrap()["sid"].as_str().unwrap().to_owned()
    /// # }
    ///
    /// let engine = EngineIo::new(ServerConfig::default(), |_: &EngineIo, _| {});
    /// let sid = handshake(&engine); // an in-memory polling client
    /// let poll = request("GET", &format!("/engine.io/?EIO=4&transport=polling&sid={sid}"));
    /// let Routed::Hold(poll, _held) = engine.handle_request(&poll, Default::default()) else {
    ///     panic!()
    /// };
    /// // The client hung up while its poll waited: the session ends
    /// // (`transport error`), as in Node.
    /// engine.poll_aborted(poll);
    /// assert_eq!(engine.session_count(), 0);
    /// ```
    pub fn poll_aborted(&self, poll: PollId) {
        self.with_state(poll.shard(), |state| {
            state.polls.remove(&poll);
            state.server.poll_aborted(poll, Instant::now());
        });
    }

    /// A message arrived on WebSocket `conn`.
    ///
    /// ```
    /// use switchboard_async::engineio::EngineIo;
    /// use switchboard_core::engineio::{MessageData, ServerConfig, ServerEvent};
    /// use switchboard_core::ws::Message;
    /// # // An in-memory WebSocket client, no network: `connect` opens its session (connection, command queue, sid).
    /// # fn connect(engine: &switchboard_async::engineio::EngineIo) -> (switchboard_core::engineio::ConnId, switchboard_async::engineio::WsCommands, String) {
    /// #     use switchboard_async::engineio::{Routed, WsCommand};
    /// #     let head = b"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    /// #     let request = switchboard_core::http::Request::parse(head, &Default::default()).unwrap().unwrap().0;
    /// #     let Routed::WebSocket(conn, mut queue) = engine.handle_request(&request, Default::default()) else { unreachable!() };
    /// #     let Ok(WsCommand::Send(open)) = queue.try_recv() else { unreachable!() };
    /// #     let open: serde_json::Value = serde_json::from_str(&open.as_text().unwrap()[1..]).unwrap();
    /// #     (conn, queue, open["sid"].as_str().unwrap().to_owned())
    /// # }
    ///
    /// let (events, handled) = std::sync::mpsc::channel();
    /// let engine = EngineIo::new(ServerConfig::default(), move |_: &EngineIo, event| {
    ///     let _ = events.send(event);
    /// });
    /// let (conn, _queue, sid) = connect(&engine); // an in-memory WebSocket client
    /// engine.ws_message(conn, Message::text("4hello")); // a `message` packet
    /// let message = ServerEvent::Message { sid: sid.into(), data: MessageData::from("hello") };
    /// assert_eq!(handled.try_iter().last(), Some(message));
    /// ```
    pub fn ws_message(&self, conn: ConnId, message: Message) {
        self.with_server(conn.shard(), |server| {
            server.ws_message(conn, message, Instant::now())
        });
    }

    /// Messages that arrived together on WebSocket `conn` (one read's
    /// worth), handled in order with one lock and one routing pass.
    ///
    /// ```
    /// use switchboard_async::engineio::EngineIo;
    /// use switchboard_core::engineio::{ServerConfig, ServerEvent};
    /// use switchboard_core::ws::Message;
    /// # // An in-memory WebSocket client, no network: `connect` opens its session (connection, command queue, sid), `sent` takes the texts queued for it.
    /// # fn connect(engine: &switchboard_async::engineio::EngineIo) -> (switchboard_core::engineio::ConnId, switchboard_async::engineio::WsCommands, String) {
    /// #     use switchboard_async::engineio::{Routed, WsCommand};
    /// #     let head = b"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    /// #     let request = switchboard_core::http::Request::parse(head, &Default::default()).unwrap().unwrap().0;
    /// #     let Routed::WebSocket(conn, mut queue) = engine.handle_request(&request, Default::default()) else { unreachable!() };
    /// #     let Ok(WsCommand::Send(open)) = queue.try_recv() else { unreachable!() };
    /// #     let open: serde_json::Value = serde_json::from_str(&open.as_text().unwrap()[1..]).unwrap();
    /// #     (conn, queue, open["sid"].as_str().unwrap().to_owned())
    /// # }
    /// # fn sent(queue: &mut switchboard_async::engineio::WsCommands) -> Vec<String> {
    /// #     use switchboard_async::engineio::WsCommand;
    /// #     std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect()
    /// # }
    ///
    /// let engine = EngineIo::new(ServerConfig::default(), |engine: &EngineIo, event: ServerEvent| {
    ///     if let ServerEvent::Message { sid, data } = event {
    ///         let _ = engine.send(&sid, data); // echo
    ///     }
    /// });
    /// let (conn, mut queue, _sid) = connect(&engine); // an in-memory WebSocket client
    /// // Every message of one read from the socket:
    /// engine.ws_messages(conn, [Message::text("4a"), Message::text("4b")]);
    /// assert_eq!(sent(&mut queue), ["4a", "4b"]);
    /// ```
    pub fn ws_messages(&self, conn: ConnId, messages: impl IntoIterator<Item = Message>) {
        self.with_server(conn.shard(), |server| {
            let now = Instant::now();
            for message in messages {
                server.ws_message(conn, message, now);
            }
        });
    }

    /// Whether WebSocket `conn` should hand over more messages now or wait
    /// for the handlers to make room for them: `None` to go on, or when to
    /// look again. It waits while its session's messages wait for room
    /// (delivery paused, see [`EngineIo::answer_wait`]), while a whole
    /// batch of them handed over before still waits for a deliverer (one
    /// busy elsewhere, such as a handler's task that sends and so delivers
    /// what is queued), or while the handler has no room for the session
    /// ([`EventHandler::has_room`]). A connection asks before every
    /// hand-over, `since` being when it started waiting; after
    /// [`HANDLERS_CATCH_UP`] it goes on anyway, and the handler is told
    /// its session made no room ([`EventHandler::no_room_made`]).
    ///
    /// A connection's loop, blocking here (the async pump sleeps on its
    /// runtime, writing what is queued meanwhile):
    ///
    /// ```
    /// use std::time::Instant;
    /// use switchboard_async::engineio::EngineIo;
    /// use switchboard_core::engineio::ConnId;
    /// use switchboard_core::ws::Message;
    ///
    /// fn hand_over(engine: &EngineIo, conn: ConnId, read: Vec<Message>) {
    ///     let since = Instant::now();
    ///     while let Some(again) = engine.room_wait(conn, since) {
    ///         std::thread::sleep(again.saturating_duration_since(Instant::now()));
    ///     }
    ///     engine.ws_messages(conn, read);
    /// }
    /// # use switchboard_core::engineio::ServerConfig;
    /// # // An in-memory WebSocket client, no network: `connect` opens its session (connection, command queue, sid).
    /// # fn connect(engine: &switchboard_async::engineio::EngineIo) -> (switchboard_core::engineio::ConnId, switchboard_async::engineio::WsCommands, String) {
    /// #     use switchboard_async::engineio::{Routed, WsCommand};
    /// #     let head = b"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    /// #     let request = switchboard_core::http::Request::parse(head, &Default::default()).unwrap().unwrap().0;
    /// #     let Routed::WebSocket(conn, mut queue) = engine.handle_request(&request, Default::default()) else { unreachable!() };
    /// #     let Ok(WsCommand::Send(open)) = queue.try_recv() else { unreachable!() };
    /// #     let open: serde_json::Value = serde_json::from_str(&open.as_text().unwrap()[1..]).unwrap();
    /// #     (conn, queue, open["sid"].as_str().unwrap().to_owned())
    /// # }
    ///
    /// let engine = EngineIo::new(ServerConfig::default(), |_: &EngineIo, _| {});
    /// let (conn, _queue, _sid) = connect(&engine); // an in-memory WebSocket client
    /// hand_over(&engine, conn, vec![Message::text("4hi")]); // room at once
    /// ```
    pub fn room_wait(&self, conn: ConnId, since: Instant) -> Option<Instant> {
        let hub = &*self.hub;
        if hub.events.paused() == 0
            && hub.events.waiting() < queue::MAX_BURST
            && !hub.handler.may_lack_room()
        {
            return None;
        }
        let sid = self.conn_session(conn)?;
        self.wait_for_session(&sid, since, true)
    }

    /// Whether the messages WebSocket `conn` handed over last still wait
    /// for the handler to make room for them (delivery paused): `None`
    /// when they are all handed to it, or when to look again (meanwhile
    /// the connection reads nothing more; see [`EngineIo::room_wait`]).
    ///
    /// ```
    /// use std::time::Instant;
    /// use switchboard_async::engineio::EngineIo;
    /// use switchboard_core::engineio::ServerConfig;
    /// use switchboard_core::ws::Message;
    /// # // An in-memory WebSocket client, no network: `connect` opens its session (connection, command queue, sid).
    /// # fn connect(engine: &switchboard_async::engineio::EngineIo) -> (switchboard_core::engineio::ConnId, switchboard_async::engineio::WsCommands, String) {
    /// #     use switchboard_async::engineio::{Routed, WsCommand};
    /// #     let head = b"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    /// #     let request = switchboard_core::http::Request::parse(head, &Default::default()).unwrap().unwrap().0;
    /// #     let Routed::WebSocket(conn, mut queue) = engine.handle_request(&request, Default::default()) else { unreachable!() };
    /// #     let Ok(WsCommand::Send(open)) = queue.try_recv() else { unreachable!() };
    /// #     let open: serde_json::Value = serde_json::from_str(&open.as_text().unwrap()[1..]).unwrap();
    /// #     (conn, queue, open["sid"].as_str().unwrap().to_owned())
    /// # }
    ///
    /// let engine = EngineIo::new(ServerConfig::default(), |_: &EngineIo, _| {});
    /// let (conn, _queue, _sid) = connect(&engine); // an in-memory WebSocket client
    /// engine.ws_messages(conn, [Message::text("4hi")]);
    /// // Before reading on, the connection lets the handler catch up.
    /// let since = Instant::now();
    /// while let Some(again) = engine.handed_over_wait(conn, since) {
    ///     std::thread::sleep(again.saturating_duration_since(Instant::now()));
    /// }
    /// ```
    pub fn handed_over_wait(&self, conn: ConnId, since: Instant) -> Option<Instant> {
        if self.hub.events.paused() == 0 {
            return None;
        }
        let sid = self.conn_session(conn)?;
        self.wait_for_session(&sid, since, false)
    }

    /// For the answer to `request`, a polling `POST` this endpoint took:
    /// while the handler has no room for a session's messages
    /// ([`EventHandler::has_room`]), the rest of them wait (delivery is
    /// paused) and so does the answer to the `POST` that brought them, so
    /// the client sends no more meanwhile; after [`HANDLERS_CATCH_UP`]
    /// they go on anyway (see [`EngineIo::room_wait`]). `None` when the
    /// answer need not wait; otherwise wait as [`PostAnswer::wait_until`] says,
    /// then write it. Another `POST` of the session meanwhile, or the
    /// [`PostAnswer`] dropped before it is done (the client went away),
    /// closes the session, as in Node.
    ///
    /// See [`PostAnswer::wait_until`] for a connection waiting, and
    /// [`PostAnswer`] for a client going away meanwhile. With room in the
    /// handler, nothing waits:
    ///
    /// ```
    /// use switchboard_async::engineio::{EngineIo, Routed};
    /// use switchboard_core::engineio::ServerConfig;
    /// # // An in-memory polling client, no network: `request` makes its requests, `handshake` opens its session (its sid).
    /// # fn request(method: &str, target: &str) -> switchboard_core::http::Request {
    /// #     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    /// #     switchboard_core::http::Request::parse(head.as_bytes(), &Default::default()).unwrap().unwrap().0
    /// # }
    /// # fn handshake(engine: &switchboard_async::engineio::EngineIo) -> String {
    /// #     let switchboard_async::engineio::Routed::Respond(open) = engine.handle_request(&request("GET", "/engine.io/?EIO=4&transport=polling"), Default::default()) else { unreachable!() };
    /// #     serde_json::from_slice::<serde_json::Value>(&open.body[1..]).unwrap()["sid"].as_str().unwrap().to_owned()
    /// # }
    ///
    /// let engine = EngineIo::new(ServerConfig::default(), |_: &EngineIo, _| {});
    /// let sid = handshake(&engine); // an in-memory polling client
    /// let post = request("POST", &format!("/engine.io/?EIO=4&transport=polling&sid={sid}"));
    /// let Routed::Respond(response) = engine.handle_request(&post, "4hi".into()) else { panic!() };
    /// assert!(engine.answer_wait(&post).is_none()); // write `response` now
    /// ```
    pub fn answer_wait(&self, request: &Request) -> Option<PostAnswer> {
        if self.hub.events.paused() == 0 || request.method != "POST" {
            return None;
        }
        let sid: Arc<str> = Arc::from(&*request.query_param("sid")?);
        let since = Instant::now();
        self.wait_for_session(&sid, since, false)?;
        let shard = Shard::of_sid(&sid, self.hub.shards.len());
        lock(&self.hub.shards[shard]).answering.insert(sid.clone());
        Some(PostAnswer {
            engine: self.clone(),
            sid,
            shard,
            since,
            done: false,
        })
    }

    fn conn_session(&self, conn: ConnId) -> Option<Arc<str>> {
        let state = lock(&self.hub.shards[conn.shard()]);
        state.server.conn_session(conn).map(Arc::from)
    }

    /// Resumes the paused sessions the handler has room for again, or
    /// paused for [`HANDLERS_CATCH_UP`] (run by the timer, so that no
    /// session waits for a connection to resume it); returns when to look
    /// again while some stay paused.
    fn resume_paused(hub: &Hub, now: Instant) -> Option<Instant> {
        if hub.events.paused() == 0 {
            return None;
        }
        for (sid, paused_at) in hub.events.paused_keys() {
            Self::resume_if_room(hub, &sid, now >= paused_at + HANDLERS_CATCH_UP);
        }
        (hub.events.paused() > 0).then(|| Instant::now() + HANDLERS_POLL)
    }

    /// Resumes session `sid`'s paused messages and delivers them if the
    /// handler has room for them, or whatever it says once `waited_out`
    /// (it is told, and is expected to let more through).
    fn resume_if_room(hub: &Hub, sid: &str, waited_out: bool) {
        if waited_out {
            hub.handler.no_room_made(sid);
        } else if !hub.handler.has_room(sid) {
            return;
        }
        if hub.events.resume(sid, waited_out) {
            Self::deliver(hub);
        }
    }

    /// Resumes session `sid`'s paused messages once the handler has room
    /// (or after [`HANDLERS_CATCH_UP`]), delivering them here; then, with
    /// `before_hand_over`, also waits for room for more.
    fn wait_for_session(
        &self,
        sid: &str,
        since: Instant,
        before_hand_over: bool,
    ) -> Option<Instant> {
        let hub = &*self.hub;
        let handler = &hub.handler;
        let now = Instant::now();
        let timed_out = now >= since + HANDLERS_CATCH_UP;
        if hub.events.is_paused(sid) {
            Self::resume_if_room(hub, sid, timed_out);
            if hub.events.is_paused(sid) {
                return Some(now + HANDLERS_POLL);
            }
        }
        if !before_hand_over {
            // Another caller may be delivering them, and may pause them
            // again: wait until they are all delivered.
            return (!timed_out && hub.events.has_events(sid)).then_some(now + HANDLERS_POLL);
        }
        if hub.events.queued(sid) < queue::MAX_BURST
            && (!handler.may_lack_room() || handler.has_room(sid))
        {
            return None;
        }
        if timed_out {
            handler.no_room_made(sid);
            return None;
        }
        Some(now + HANDLERS_POLL)
    }

    /// WebSocket `conn` closed, failed, or its handshake failed.
    ///
    /// ```
    /// use switchboard_async::engineio::EngineIo;
    /// use switchboard_core::engineio::{CloseReason, ServerConfig, ServerEvent};
    /// # // An in-memory WebSocket client, no network: `connect` opens its session (connection, command queue, sid).
    /// # fn connect(engine: &switchboard_async::engineio::EngineIo) -> (switchboard_core::engineio::ConnId, switchboard_async::engineio::WsCommands, String) {
    /// #     use switchboard_async::engineio::{Routed, WsCommand};
    /// #     let head = b"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    /// #     let request = switchboard_core::http::Request::parse(head, &Default::default()).unwrap().unwrap().0;
    /// #     let Routed::WebSocket(conn, mut queue) = engine.handle_request(&request, Default::default()) else { unreachable!() };
    /// #     let Ok(WsCommand::Send(open)) = queue.try_recv() else { unreachable!() };
    /// #     let open: serde_json::Value = serde_json::from_str(&open.as_text().unwrap()[1..]).unwrap();
    /// #     (conn, queue, open["sid"].as_str().unwrap().to_owned())
    /// # }
    ///
    /// let (events, handled) = std::sync::mpsc::channel();
    /// let engine = EngineIo::new(ServerConfig::default(), move |_: &EngineIo, event| {
    ///     let _ = events.send(event);
    /// });
    /// let (conn, _queue, sid) = connect(&engine); // an in-memory WebSocket client
    /// engine.ws_closed(conn); // the client went away
    /// let closed = ServerEvent::Close { sid: sid.into(), reason: CloseReason::TransportClose };
    /// assert_eq!(handled.try_iter().last(), Some(closed));
    /// assert_eq!(engine.session_count(), 0);
    /// ```
    pub fn ws_closed(&self, conn: ConnId) {
        self.with_state(conn.shard(), |state| {
            state.conns.remove(&conn);
            state.server.ws_closed(conn, Instant::now());
        });
    }

    /// The endpoint's timer (heartbeats, upgrade timeouts), for a runtime
    /// to drive: see `server::spawn_timer`.
    ///
    /// A runtime drives it (`server::spawn_timer`); by hand here:
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use switchboard_async::engineio::EngineIo;
    /// use switchboard_core::engineio::ServerConfig;
    /// # // An in-memory WebSocket client, no network: `connect` opens its session (connection, command queue, sid), `sent` takes the texts queued for it.
    /// # fn connect(engine: &switchboard_async::engineio::EngineIo) -> (switchboard_core::engineio::ConnId, switchboard_async::engineio::WsCommands, String) {
    /// #     use switchboard_async::engineio::{Routed, WsCommand};
    /// #     let head = b"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    /// #     let request = switchboard_core::http::Request::parse(head, &Default::default()).unwrap().unwrap().0;
    /// #     let Routed::WebSocket(conn, mut queue) = engine.handle_request(&request, Default::default()) else { unreachable!() };
    /// #     let Ok(WsCommand::Send(open)) = queue.try_recv() else { unreachable!() };
    /// #     let open: serde_json::Value = serde_json::from_str(&open.as_text().unwrap()[1..]).unwrap();
    /// #     (conn, queue, open["sid"].as_str().unwrap().to_owned())
    /// # }
    /// # fn sent(queue: &mut switchboard_async::engineio::WsCommands) -> Vec<String> {
    /// #     use switchboard_async::engineio::WsCommand;
    /// #     std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect()
    /// # }
    ///
    /// let engine = EngineIo::new(ServerConfig::default(), |_: &EngineIo, _| {});
    /// let timer = engine.timed();
    /// assert_eq!(timer.run_timers(Instant::now()), None); // no session, nothing due
    /// let (_conn, mut queue, _sid) = connect(&engine); // an in-memory WebSocket client
    /// let ping_due = timer.run_timers(Instant::now()).expect("a heartbeat ahead");
    /// assert!(ping_due > Instant::now() + Duration::from_secs(20)); // every 25 s
    /// timer.run_timers(ping_due);
    /// assert_eq!(sent(&mut queue), ["2"]); // a ping
    /// ```
    pub fn timed(&self) -> Arc<dyn Timed> {
        self.hub.clone()
    }

    /// A weak handle, for holders that must not keep the endpoint alive.
    ///
    /// ```
    /// use switchboard_async::engineio::EngineIo;
    /// use switchboard_core::engineio::ServerConfig;
    ///
    /// let engine = EngineIo::new(ServerConfig::default(), |_: &EngineIo, _| {});
    /// let weak = engine.downgrade();
    /// assert!(weak.upgrade().is_some());
    /// drop(engine);
    /// assert!(weak.upgrade().is_none());
    /// ```
    pub fn downgrade(&self) -> WeakEngineIo {
        WeakEngineIo {
            hub: Arc::downgrade(&self.hub),
        }
    }

    /// The shard owning session `sid`.
    fn sid_shard(&self, sid: &str) -> usize {
        Shard::of_sid(sid, self.hub.shards.len())
    }

    fn with_server<T>(&self, shard: usize, f: impl FnOnce(&mut Server) -> T) -> T {
        self.with_state(shard, |state| f(&mut state.server))
    }

    /// Runs `f` on shard `shard`, routes what its server produced, then
    /// hands the events to the handler.
    fn with_state<T>(&self, shard: usize, f: impl FnOnce(&mut State) -> T) -> T {
        // Routed at once, also when called from a handler: a handler that
        // sends, then works for a while, has its message on the wire
        // before it returns.
        let hub = &*self.hub;
        let result = {
            let mut state = lock(&hub.shards[shard]);
            let result = f(&mut state);
            Self::route(hub, &mut state);
            result
        };
        Self::deliver(hub);
        result
    }

    fn route(hub: &Hub, state: &mut State) {
        loop {
            while let Some(transmit) = state.server.poll_transmit() {
                match transmit {
                    Transmit::PollResponse { poll, response } => {
                        if let Some(tx) = state.polls.remove(&poll) {
                            // A dropped receiver means the poll's connection
                            // is going away; it reports that itself.
                            let _ = tx.send(response);
                        }
                    }
                    Transmit::WsSend { conn, message } => {
                        let Some(tx) = state.conns.get_mut(&conn) else {
                            continue;
                        };
                        if let Err(failure) = tx.try_send(WsCommand::Send(message)) {
                            if failure == SendFailure::Full {
                                tracing::warn!(conn = conn.as_u64(), "WebSocket backlogged");
                                state.server.ws_backlogged(conn, Instant::now());
                            } else {
                                state.conns.remove(&conn);
                                state.server.ws_closed(conn, Instant::now());
                            }
                        }
                    }
                    Transmit::WsClose { conn } => {
                        if let Some(mut tx) = state.conns.remove(&conn) {
                            // A full queue ends when the sender is dropped,
                            // which the task also takes as a close.
                            let _ = tx.try_send(WsCommand::Close);
                        }
                    }
                }
            }
            let mut closed = Vec::new();
            hub.events.push_all(
                std::iter::from_fn(|| state.server.poll_event()).map(|event| {
                    if matches!(event, ServerEvent::Close { .. }) {
                        closed.push(event.sid().clone());
                    }
                    (event.sid().clone(), event)
                }),
            );
            // A closed session's messages go to the handler, and its close
            // after them, whatever room the handler has.
            for sid in closed {
                hub.events.resume(&sid, true);
            }
            // Routing may have closed sessions, which queues more.
            if !state.server.has_pending_output() {
                break;
            }
        }
        let next = state.server.poll_timeout();
        let earlier = match (next, state.timer_deadline) {
            (Some(next), Some(current)) => next < current,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if earlier {
            state.timer_deadline = next;
            hub.timer.wake();
        }
    }

    /// Hands queued events to the handler: in order per session, and
    /// concurrently with callers delivering other sessions.
    fn deliver(hub: &Hub) {
        if hub.events.is_idle() {
            return;
        }
        let Some(engine) = hub.this.upgrade().map(|hub| EngineIo { hub }) else {
            return;
        };
        // A session's messages wait (its key paused) while the handler has
        // no room for them; the timer resumes it (`resume_paused`), as does
        // whoever waits for the session (`wait_for_session`).
        hub.events.deliver_pausable(
            |event| {
                let pause = matches!(event, ServerEvent::Message { sid, .. }
                    if hub.handler.may_lack_room() && !hub.handler.has_room(sid));
                if pause {
                    hub.timer.wake();
                }
                pause
            },
            |event| run_handler(|| hub.handler.handle(&engine, event)),
        );
    }
}

/// Sends and closes gathered by [`EngineIo::batch`]: each applied under
/// its session's shard lock, which stays held while the next one is for
/// the same shard, so a run of operations costs one lock and one routing
/// pass per shard it touches.
///
/// ```
/// use switchboard_async::engineio::EngineIo;
/// use switchboard_core::engineio::{SendError, ServerConfig};
/// # // An in-memory WebSocket client, no network: `connect` opens its session (connection, command queue, sid), `sent` takes the texts queued for it.
/// # fn connect(engine: &switchboard_async::engineio::EngineIo) -> (switchboard_core::engineio::ConnId, switchboard_async::engineio::WsCommands, String) {
/// #     use switchboard_async::engineio::{Routed, WsCommand};
/// #     let head = b"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
/// #     let request = switchboard_core::http::Request::parse(head, &Default::default()).unwrap().unwrap().0;
/// #     let Routed::WebSocket(conn, mut queue) = engine.handle_request(&request, Default::default()) else { unreachable!() };
/// #     let Ok(WsCommand::Send(open)) = queue.try_recv() else { unreachable!() };
/// #     let open: serde_json::Value = serde_json::from_str(&open.as_text().unwrap()[1..]).unwrap();
/// #     (conn, queue, open["sid"].as_str().unwrap().to_owned())
/// # }
/// # fn sent(queue: &mut switchboard_async::engineio::WsCommands) -> Vec<String> {
/// #     use switchboard_async::engineio::WsCommand;
/// #     std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect()
/// # }
///
/// let engine = EngineIo::new(ServerConfig::default(), |_: &EngineIo, _| {});
/// let (_, mut first, a) = connect(&engine); // in-memory WebSocket clients
/// let (_, mut second, b) = connect(&engine);
/// engine.batch(|batch| {
///     batch.send(&a, "just you")?;
///     let everyone = [a.as_str(), b.as_str()];
///     batch.send_many(everyone, &"news".into());
///     batch.close(&b);
///     Ok::<_, SendError>(())
/// })?;
/// assert_eq!(sent(&mut first), ["4just you", "4news"]);
/// assert_eq!(sent(&mut second), ["4news"]); // then its WebSocket closes
/// assert_eq!(engine.session_count(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Batch<'a> {
    hub: &'a Hub,
    /// The shard locked now, and its lock.
    held: Option<(usize, MutexGuard<'a, State>)>,
}

impl fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch").finish_non_exhaustive()
    }
}

impl<'a> Batch<'a> {
    /// As [`EngineIo::send`].
    ///
    /// See [`Batch`]'s example.
    pub fn send(&mut self, sid: &str, data: impl Into<MessageData>) -> Result<(), SendError> {
        self.server_of(sid).send(sid, data.into())
    }

    /// Sends `data` to each session of `sids`, encoded once per shard (see
    /// the core's `Server::send_many`); returns how many it reached.
    ///
    /// ```
    /// use switchboard_async::engineio::EngineIo;
    /// use switchboard_core::engineio::{MessageData, ServerConfig};
    /// # // An in-memory WebSocket client, no network: `connect` opens its session (connection, command queue, sid).
    /// # fn connect(engine: &switchboard_async::engineio::EngineIo) -> (switchboard_core::engineio::ConnId, switchboard_async::engineio::WsCommands, String) {
    /// #     use switchboard_async::engineio::{Routed, WsCommand};
    /// #     let head = b"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    /// #     let request = switchboard_core::http::Request::parse(head, &Default::default()).unwrap().unwrap().0;
    /// #     let Routed::WebSocket(conn, mut queue) = engine.handle_request(&request, Default::default()) else { unreachable!() };
    /// #     let Ok(WsCommand::Send(open)) = queue.try_recv() else { unreachable!() };
    /// #     let open: serde_json::Value = serde_json::from_str(&open.as_text().unwrap()[1..]).unwrap();
    /// #     (conn, queue, open["sid"].as_str().unwrap().to_owned())
    /// # }
    ///
    /// let engine = EngineIo::new(ServerConfig::default(), |_: &EngineIo, _| {});
    /// let clients: Vec<_> = (0..3).map(|_| connect(&engine)).collect(); // in memory
    /// let sids = clients.iter().map(|(_, _, sid)| sid.as_str());
    /// let news = MessageData::from("news");
    /// let reached = engine.batch(|batch| batch.send_many(sids.chain(["gone"]), &news));
    /// assert_eq!(reached, 3); // not the unknown session
    /// ```
    pub fn send_many<'s>(
        &mut self,
        sids: impl IntoIterator<Item = &'s str>,
        data: &MessageData,
    ) -> usize {
        let count = self.hub.shards.len();
        if count == 1 {
            return self.server(0).send_many(sids, data);
        }
        let mut by_shard: Vec<Vec<&str>> = vec![Vec::new(); count];
        for sid in sids {
            by_shard[Shard::of_sid(sid, count)].push(sid);
        }
        // The shard held now first: a broadcast right after a send to one
        // of its sessions takes no other lock for it.
        let first = self.held.as_ref().map_or(0, |(shard, _)| *shard);
        let mut reached = 0;
        for shard in (0..count).map(|offset| (first + offset) % count) {
            let sids = std::mem::take(&mut by_shard[shard]);
            if !sids.is_empty() {
                reached += self.server(shard).send_many(sids, data);
            }
        }
        reached
    }

    /// As [`EngineIo::send_volatile`].
    ///
    /// ```
    /// use switchboard_async::engineio::EngineIo;
    /// use switchboard_core::engineio::ServerConfig;
    /// # // An in-memory WebSocket client, no network: `connect` opens its session (connection, command queue, sid), `sent` takes the texts queued for it.
    /// # fn connect(engine: &switchboard_async::engineio::EngineIo) -> (switchboard_core::engineio::ConnId, switchboard_async::engineio::WsCommands, String) {
    /// #     use switchboard_async::engineio::{Routed, WsCommand};
    /// #     let head = b"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    /// #     let request = switchboard_core::http::Request::parse(head, &Default::default()).unwrap().unwrap().0;
    /// #     let Routed::WebSocket(conn, mut queue) = engine.handle_request(&request, Default::default()) else { unreachable!() };
    /// #     let Ok(WsCommand::Send(open)) = queue.try_recv() else { unreachable!() };
    /// #     let open: serde_json::Value = serde_json::from_str(&open.as_text().unwrap()[1..]).unwrap();
    /// #     (conn, queue, open["sid"].as_str().unwrap().to_owned())
    /// # }
    /// # fn sent(queue: &mut switchboard_async::engineio::WsCommands) -> Vec<String> {
    /// #     use switchboard_async::engineio::WsCommand;
    /// #     std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect()
    /// # }
    ///
    /// let engine = EngineIo::new(ServerConfig::default(), |_: &EngineIo, _| {});
    /// let (_conn, mut queue, sid) = connect(&engine); // an in-memory WebSocket client
    /// let sent_now = engine.batch(|batch| batch.send_volatile(&sid, ["tick".into()]))?;
    /// assert!(sent_now); // a WebSocket takes it at once
    /// assert_eq!(sent(&mut queue), ["4tick"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_volatile(
        &mut self,
        sid: &str,
        messages: impl IntoIterator<Item = MessageData>,
    ) -> Result<bool, SendError> {
        self.server_of(sid).send_volatile(sid, messages)
    }

    /// As [`EngineIo::close`].
    ///
    /// See [`Batch`]'s example.
    pub fn close(&mut self, sid: &str) {
        self.server_of(sid).close(sid);
    }

    fn server_of(&mut self, sid: &str) -> &mut Server {
        self.server(Shard::of_sid(sid, self.hub.shards.len()))
    }

    /// The server of shard `shard`, locked: the shard held before (if
    /// another) is routed and unlocked first, so at most one shard lock is
    /// held and two batches cannot deadlock.
    fn server(&mut self, shard: usize) -> &mut Server {
        if self.held.as_ref().is_some_and(|(held, _)| *held != shard) {
            self.release();
        }
        let hub = self.hub;
        &mut self
            .held
            .get_or_insert_with(|| (shard, lock(&hub.shards[shard])))
            .1
            .server
    }

    /// Routes what the held shard produced and unlocks it.
    fn release(&mut self) {
        if let Some((_, mut state)) = self.held.take() {
            EngineIo::route(self.hub, &mut state);
        }
    }
}

impl Drop for Batch<'_> {
    /// Routes what was sent also when the batch's closure panics: it would
    /// otherwise wait in its shard until something else touched it (the
    /// next heartbeat).
    fn drop(&mut self) {
        self.release();
    }
}

/// Engine.IO endpoints by path: the one place a request path is matched to
/// an endpoint, shared by every server (async, threads, tower).
///
/// ```
/// use switchboard_async::engineio::{EngineIo, EngineMounts};
/// use switchboard_core::engineio::ServerConfig;
///
/// let mut mounts = EngineMounts::default();
/// mounts.mount("/engine.io", EngineIo::new(ServerConfig::default(), |_: &EngineIo, _| {}));
/// assert!(mounts.engine_for("/engine.io/").is_some());
/// assert!(mounts.engine_for("/engine.io").is_some());
/// assert!(mounts.engine_for("/engine.iox").is_none());
/// ```
#[derive(Clone, Default)]
pub struct EngineMounts {
    /// (prefix ending in `/`, endpoint), in mounting order.
    engines: Vec<(String, EngineIo)>,
}

impl fmt::Debug for EngineMounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.paths()).finish()
    }
}

impl EngineMounts {
    /// Serves `engine` under `path` (`/engine.io` and `/engine.io/` are
    /// the same): that path and every path below it.
    ///
    /// ```
    /// use switchboard_async::engineio::{EngineIo, EngineMounts};
    /// use switchboard_core::engineio::ServerConfig;
    ///
    /// let mut mounts = EngineMounts::default();
    /// mounts.mount("/engine.io", EngineIo::new(ServerConfig::default(), |_: &EngineIo, _| {}));
    /// mounts.mount("/chat/", EngineIo::new(ServerConfig::default(), |_: &EngineIo, _| {}));
    /// assert!(mounts.engine_for("/chat/").is_some());
    /// assert_eq!(mounts.paths().collect::<Vec<_>>(), ["/engine.io/", "/chat/"]);
    /// ```
    pub fn mount(&mut self, path: &str, engine: EngineIo) {
        let prefix = format!("{}/", path.trim_end_matches('/'));
        self.engines.push((prefix, engine));
    }

    /// The endpoint serving request path `path`, the first mounted that
    /// matches.
    ///
    /// ```
    /// use switchboard_async::engineio::{EngineIo, EngineMounts};
    /// use switchboard_core::engineio::ServerConfig;
    ///
    /// let mut mounts = EngineMounts::default();
    /// mounts.mount("/engine.io", EngineIo::new(ServerConfig::default(), |_: &EngineIo, _| {}));
    /// // The request path, without the query:
    /// assert!(mounts.engine_for("/engine.io/").is_some());
    /// assert!(mounts.engine_for("/engine.io/anything/below").is_some());
    /// assert!(mounts.engine_for("/socket.io/").is_none());
    /// ```
    pub fn engine_for(&self, path: &str) -> Option<&EngineIo> {
        self.engines
            .iter()
            .find(|(prefix, _)| {
                path.starts_with(prefix.as_str()) || path == &prefix[..prefix.len() - 1]
            })
            .map(|(_, engine)| engine)
    }

    /// The largest request body any endpoint takes (its `maxPayload`).
    ///
    /// ```
    /// use switchboard_async::engineio::{EngineIo, EngineMounts};
    /// use switchboard_core::engineio::ServerConfig;
    ///
    /// let mut mounts = EngineMounts::default();
    /// assert_eq!(mounts.max_body(), 0);
    /// let small = ServerConfig { max_payload: 1 << 10, ..ServerConfig::default() };
    /// mounts.mount("/small", EngineIo::new(small, |_: &EngineIo, _| {}));
    /// mounts.mount("/engine.io", EngineIo::new(ServerConfig::default(), |_: &EngineIo, _| {}));
    /// assert_eq!(mounts.max_body(), 1_000_000); // the default `max_payload`
    /// ```
    pub fn max_body(&self) -> usize {
        self.engines
            .iter()
            .map(|(_, engine)| engine.max_payload())
            .max()
            .unwrap_or(0)
    }

    /// The mounted prefixes, in order.
    ///
    /// See [`EngineMounts::mount`]'s example.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.engines.iter().map(|(prefix, _)| prefix.as_str())
    }
}

/// A handle on an [`EngineIo`] that does not keep it alive.
///
/// For a task that works for the endpoint but must not keep it alive:
///
/// ```
/// use std::time::Duration;
/// use futures_executor::block_on;
/// use futures_util::StreamExt;
/// use switchboard_async::engineio::{EngineIo, WsCommand};
/// use switchboard_core::engineio::{ServerConfig, ServerEvent};
/// # // An in-memory WebSocket client, no network: `connect` opens its session (connection, command queue, sid).
/// # fn connect(engine: &switchboard_async::engineio::EngineIo) -> (switchboard_core::engineio::ConnId, switchboard_async::engineio::WsCommands, String) {
/// #     use switchboard_async::engineio::{Routed, WsCommand};
/// #     let head = b"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
/// #     let request = switchboard_core::http::Request::parse(head, &Default::default()).unwrap().unwrap().0;
/// #     let Routed::WebSocket(conn, mut queue) = engine.handle_request(&request, Default::default()) else { unreachable!() };
/// #     let Ok(WsCommand::Send(open)) = queue.try_recv() else { unreachable!() };
/// #     let open: serde_json::Value = serde_json::from_str(&open.as_text().unwrap()[1..]).unwrap();
/// #     (conn, queue, open["sid"].as_str().unwrap().to_owned())
/// # }
///
/// // Greets each new session a little later, if the endpoint is still there.
/// let engine = EngineIo::new(ServerConfig::default(), |engine: &EngineIo, event: ServerEvent| {
///     if let ServerEvent::Open { sid, .. } = event {
///         let weak = engine.downgrade();
///         std::thread::spawn(move || {
///             std::thread::sleep(Duration::from_millis(10));
///             if let Some(engine) = weak.upgrade() {
///                 let _ = engine.send(&sid, "welcome");
///             }
///         });
///     }
/// });
/// let (_conn, mut queue, _sid) = connect(&engine); // an in-memory WebSocket client
/// let Some(WsCommand::Send(welcome)) = block_on(queue.next()) else { panic!() };
/// assert_eq!(welcome.as_text(), Some("4welcome"));
/// ```
#[derive(Debug, Clone)]
pub struct WeakEngineIo {
    hub: std::sync::Weak<Hub>,
}

impl WeakEngineIo {
    /// The endpoint, if it still exists.
    ///
    /// See [`EngineIo::downgrade`]'s example.
    pub fn upgrade(&self) -> Option<EngineIo> {
        self.hub.upgrade().map(|hub| EngineIo { hub })
    }
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hub")
    }
}

/// The sessions of an endpoint made by [`EngineIo::with_sockets`], as they
/// open: a [`Stream`] of [`Socket`]s.
///
/// ```
/// use futures_executor::block_on;
/// use futures_util::StreamExt;
/// use switchboard_async::engineio::EngineIo;
/// use switchboard_core::engineio::ServerConfig;
/// # // An in-memory WebSocket client, no network: `connect` opens its session (connection, command queue, sid).
/// # fn connect(engine: &switchboard_async::engineio::EngineIo) -> (switchboard_core::engineio::ConnId, switchboard_async::engineio::WsCommands, String) {
/// #     use switchboard_async::engineio::{Routed, WsCommand};
/// #     let head = b"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
/// #     let request = switchboard_core::http::Request::parse(head, &Default::default()).unwrap().unwrap().0;
/// #     let Routed::WebSocket(conn, mut queue) = engine.handle_request(&request, Default::default()) else { unreachable!() };
/// #     let Ok(WsCommand::Send(open)) = queue.try_recv() else { unreachable!() };
/// #     let open: serde_json::Value = serde_json::from_str(&open.as_text().unwrap()[1..]).unwrap();
/// #     (conn, queue, open["sid"].as_str().unwrap().to_owned())
/// # }
///
/// let (engine, sockets) = EngineIo::with_sockets(ServerConfig::default());
/// let clients = [connect(&engine), connect(&engine)]; // in-memory WebSocket clients
/// // As a stream: the first two sessions.
/// let opened: Vec<_> = block_on(sockets.take(2).collect());
/// assert_eq!(opened[0].sid(), clients[0].2);
/// assert_eq!(opened[1].sid(), clients[1].2);
/// ```
#[derive(Debug)]
pub struct Sockets {
    rx: mpsc::Receiver<Socket>,
}

impl Sockets {
    /// The next new session; `None` once the endpoint is gone.
    ///
    /// An accept loop, each session served by a task of its own (on a runtime:
    /// `runtime.spawn(...)`; a thread here):
    ///
    /// ```
    /// use futures_executor::block_on;
    /// use futures_util::StreamExt;
    /// use switchboard_async::engineio::{EngineIo, WsCommand};
    /// use switchboard_core::engineio::ServerConfig;
    /// use switchboard_core::ws::Message;
    /// # // An in-memory WebSocket client, no network: `connect` opens its session (connection, command queue, sid).
    /// # fn connect(engine: &switchboard_async::engineio::EngineIo) -> (switchboard_core::engineio::ConnId, switchboard_async::engineio::WsCommands, String) {
    /// #     use switchboard_async::engineio::{Routed, WsCommand};
    /// #     let head = b"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    /// #     let request = switchboard_core::http::Request::parse(head, &Default::default()).unwrap().unwrap().0;
    /// #     let Routed::WebSocket(conn, mut queue) = engine.handle_request(&request, Default::default()) else { unreachable!() };
    /// #     let Ok(WsCommand::Send(open)) = queue.try_recv() else { unreachable!() };
    /// #     let open: serde_json::Value = serde_json::from_str(&open.as_text().unwrap()[1..]).unwrap();
    /// #     (conn, queue, open["sid"].as_str().unwrap().to_owned())
    /// # }
    ///
    /// let (engine, mut sockets) = EngineIo::with_sockets(ServerConfig::default());
    /// let accepting = std::thread::spawn(move || {
    ///     block_on(async {
    ///         while let Some(mut socket) = sockets.accept().await {
    ///             std::thread::spawn(move || {
    ///                 block_on(async {
    ///                     while let Some(message) = socket.recv().await {
    ///                         let _ = socket.send(message); // echo
    ///                     }
    ///                 })
    ///             });
    ///         }
    ///     })
    /// });
    /// let (conn, mut queue, _sid) = connect(&engine); // an in-memory WebSocket client
    /// engine.ws_message(conn, Message::text("4hello"));
    /// let Some(WsCommand::Send(echo)) = block_on(queue.next()) else { panic!() };
    /// assert_eq!(echo.as_text(), Some("4hello"));
    /// drop(engine); // the endpoint is gone: the loop ends
    /// accepting.join().unwrap();
    /// ```
    pub async fn accept(&mut self) -> Option<Socket> {
        futures_util::StreamExt::next(&mut self.rx).await
    }
}

impl Stream for Sockets {
    type Item = Socket;

    fn poll_next(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Socket>> {
        std::pin::Pin::new(&mut self.rx).poll_next(cx)
    }
}

/// One Engine.IO session: its messages as a [`Stream`] (ending when the
/// session closes), and sending.
///
/// Served by a task of its own (see [`Sockets::accept`]), or read here:
///
/// ```
/// use futures_executor::block_on;
/// use switchboard_async::engineio::EngineIo;
/// use switchboard_core::engineio::ServerConfig;
/// use switchboard_core::ws::Message;
/// # // An in-memory WebSocket client, no network: `connect` opens its session (connection, command queue, sid), `sent` takes the texts queued for it.
/// # fn connect(engine: &switchboard_async::engineio::EngineIo) -> (switchboard_core::engineio::ConnId, switchboard_async::engineio::WsCommands, String) {
/// #     use switchboard_async::engineio::{Routed, WsCommand};
/// #     let head = b"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
/// #     let request = switchboard_core::http::Request::parse(head, &Default::default()).unwrap().unwrap().0;
/// #     let Routed::WebSocket(conn, mut queue) = engine.handle_request(&request, Default::default()) else { unreachable!() };
/// #     let Ok(WsCommand::Send(open)) = queue.try_recv() else { unreachable!() };
/// #     let open: serde_json::Value = serde_json::from_str(&open.as_text().unwrap()[1..]).unwrap();
/// #     (conn, queue, open["sid"].as_str().unwrap().to_owned())
/// # }
/// # fn sent(queue: &mut switchboard_async::engineio::WsCommands) -> Vec<String> {
/// #     use switchboard_async::engineio::WsCommand;
/// #     std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect()
/// # }
///
/// let (engine, mut sockets) = EngineIo::with_sockets(ServerConfig::default());
/// let (conn, mut queue, _sid) = connect(&engine); // an in-memory WebSocket client
/// let mut socket = block_on(sockets.accept()).unwrap();
/// socket.send("welcome")?;
/// engine.ws_message(conn, Message::text("4thanks"));
/// assert_eq!(block_on(socket.recv()), Some("thanks".into()));
/// assert_eq!(sent(&mut queue), ["4welcome"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Socket {
    sid: Arc<str>,
    engine: WeakEngineIo,
    inbox: mpsc::Receiver<MessageData>,
    unread: Unread,
    close_reason: Arc<Mutex<Option<CloseReason>>>,
    request: Request,
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket").field("sid", &self.sid).finish()
    }
}

impl Socket {
    /// The session id.
    ///
    /// ```
    /// # use futures_executor::block_on;
    /// # use switchboard_async::engineio::EngineIo;
    /// # use switchboard_core::engineio::ServerConfig;
    /// # // An in-memory WebSocket client, no network: `connect` opens its session (connection, command queue, sid).
    /// # fn connect(engine: &switchboard_async::engineio::EngineIo) -> (switchboard_core::engineio::ConnId, switchboard_async::engineio::WsCommands, String) {
    /// #     use switchboard_async::engineio::{Routed, WsCommand};
    /// #     let head = b"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    /// #     let request = switchboard_core::http::Request::parse(head, &Default::default()).unwrap().unwrap().0;
    /// #     let Routed::WebSocket(conn, mut queue) = engine.handle_request(&request, Default::default()) else { unreachable!() };
    /// #     let Ok(WsCommand::Send(open)) = queue.try_recv() else { unreachable!() };
    /// #     let open: serde_json::Value = serde_json::from_str(&open.as_text().unwrap()[1..]).unwrap();
    /// #     (conn, queue, open["sid"].as_str().unwrap().to_owned())
    /// # }
    /// let (engine, mut sockets) = EngineIo::with_sockets(ServerConfig::default());
    /// let (_conn, _queue, sid) = connect(&engine); // an in-memory WebSocket client
    /// let socket = block_on(sockets.accept()).unwrap();
    /// assert_eq!(socket.sid(), sid); // the `sid` the client got in its `open` packet
    /// ```
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// The handshake request (query and headers).
    ///
    /// ```
    /// use futures_executor::block_on;
    /// use switchboard_async::engineio::{EngineIo, Routed};
    /// use switchboard_core::engineio::ServerConfig;
    /// # // An in-memory polling client, no network: `request` makes its requests, `handshake` opens its session (its sid).
    /// # fn request(method: &str, target: &str) -> switchboard_core::http::Request {
    /// #     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    /// #     switchboard_core::http::Request::parse(head.as_bytes(), &Default::default()).unwrap().unwrap().0
    /// # }
    /// # fn handshake(engine: &switchboard_async::engineio::EngineIo) -> String {
    /// #     let switchboard_async::engineio::Routed::Respond(open) = engine.handle_request(&request("GET", "/engine.io/?EIO=4&transport=polling"), Default::default()) else { unreachable!() };
    /// #     serde_json::from_slice::<serde_json::Value>(&open.body[1..]).unwrap()["sid"].as_str().unwrap().to_owned()
    /// # }
    ///
    /// let (engine, mut sockets) = EngineIo::with_sockets(ServerConfig::default());
    /// // An in-memory polling client's handshake:
    /// let handshake = request("GET", "/engine.io/?EIO=4&transport=polling&room=lobby");
    /// let Routed::Respond(_open) = engine.handle_request(&handshake, Default::default()) else {
    ///     panic!()
    /// };
    /// let socket = block_on(sockets.accept()).unwrap();
    /// assert_eq!(socket.request().query_param("room").as_deref(), Some("lobby"));
    /// assert_eq!(socket.request().headers.get("host"), Some("localhost"));
    /// ```
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The next message; `None` once the session closed.
    ///
    /// ```
    /// use switchboard_core::engineio::{CloseReason, MessageData};
    /// use switchboard_core::ws::Message;
    /// # use futures_executor::block_on;
    /// # use switchboard_async::engineio::EngineIo;
    /// # use switchboard_core::engineio::ServerConfig;
    /// # // An in-memory WebSocket client, no network: `connect` opens its session (connection, command queue, sid).
    /// # fn connect(engine: &switchboard_async::engineio::EngineIo) -> (switchboard_core::engineio::ConnId, switchboard_async::engineio::WsCommands, String) {
    /// #     use switchboard_async::engineio::{Routed, WsCommand};
    /// #     let head = b"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    /// #     let request = switchboard_core::http::Request::parse(head, &Default::default()).unwrap().unwrap().0;
    /// #     let Routed::WebSocket(conn, mut queue) = engine.handle_request(&request, Default::default()) else { unreachable!() };
    /// #     let Ok(WsCommand::Send(open)) = queue.try_recv() else { unreachable!() };
    /// #     let open: serde_json::Value = serde_json::from_str(&open.as_text().unwrap()[1..]).unwrap();
    /// #     (conn, queue, open["sid"].as_str().unwrap().to_owned())
    /// # }
    ///
    /// let (engine, mut sockets) = EngineIo::with_sockets(ServerConfig::default());
    /// let (conn, _queue, _sid) = connect(&engine); // an in-memory WebSocket client
    /// let mut socket = block_on(sockets.accept()).unwrap();
    /// engine.ws_messages(conn, [Message::text("4text"), Message::binary(vec![1u8, 2])]);
    /// engine.ws_closed(conn); // then the client goes away
    /// assert_eq!(block_on(socket.recv()), Some(MessageData::from("text")));
    /// assert_eq!(block_on(socket.recv()), Some(MessageData::from(vec![1u8, 2])));
    /// assert_eq!(block_on(socket.recv()), None);
    /// assert_eq!(socket.close_reason(), Some(CloseReason::TransportClose));
    /// ```
    pub async fn recv(&mut self) -> Option<MessageData> {
        futures_util::StreamExt::next(self).await
    }

    /// Sends a message (see [`EngineIo::send`]).
    ///
    /// ```
    /// # use futures_executor::block_on;
    /// # use switchboard_async::engineio::EngineIo;
    /// # use switchboard_core::engineio::ServerConfig;
    /// # // An in-memory WebSocket client, no network: `connect` opens its session (connection, command queue, sid), `sent` takes the texts queued for it.
    /// # fn connect(engine: &switchboard_async::engineio::EngineIo) -> (switchboard_core::engineio::ConnId, switchboard_async::engineio::WsCommands, String) {
    /// #     use switchboard_async::engineio::{Routed, WsCommand};
    /// #     let head = b"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    /// #     let request = switchboard_core::http::Request::parse(head, &Default::default()).unwrap().unwrap().0;
    /// #     let Routed::WebSocket(conn, mut queue) = engine.handle_request(&request, Default::default()) else { unreachable!() };
    /// #     let Ok(WsCommand::Send(open)) = queue.try_recv() else { unreachable!() };
    /// #     let open: serde_json::Value = serde_json::from_str(&open.as_text().unwrap()[1..]).unwrap();
    /// #     (conn, queue, open["sid"].as_str().unwrap().to_owned())
    /// # }
    /// # fn sent(queue: &mut switchboard_async::engineio::WsCommands) -> Vec<String> {
    /// #     use switchboard_async::engineio::WsCommand;
    /// #     std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect()
    /// # }
    /// let (engine, mut sockets) = EngineIo::with_sockets(ServerConfig::default());
    /// let (_conn, mut queue, _sid) = connect(&engine); // an in-memory WebSocket client
    /// let socket = block_on(sockets.accept()).unwrap();
    /// socket.send("text")?;
    /// socket.send(String::from("more"))?;
    /// assert_eq!(sent(&mut queue), ["4text", "4more"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send(&self, data: impl Into<MessageData>) -> Result<(), SendError> {
        match self.engine.upgrade() {
            Some(engine) => engine.send(&self.sid, data),
            None => Err(SendError::UnknownSession),
        }
    }

    /// A handle that sends to this session from elsewhere.
    ///
    /// ```
    /// # use futures_executor::block_on;
    /// # use switchboard_async::engineio::EngineIo;
    /// # use switchboard_core::engineio::ServerConfig;
    /// # // An in-memory WebSocket client, no network: `connect` opens its session (connection, command queue, sid), `sent` takes the texts queued for it.
    /// # fn connect(engine: &switchboard_async::engineio::EngineIo) -> (switchboard_core::engineio::ConnId, switchboard_async::engineio::WsCommands, String) {
    /// #     use switchboard_async::engineio::{Routed, WsCommand};
    /// #     let head = b"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    /// #     let request = switchboard_core::http::Request::parse(head, &Default::default()).unwrap().unwrap().0;
    /// #     let Routed::WebSocket(conn, mut queue) = engine.handle_request(&request, Default::default()) else { unreachable!() };
    /// #     let Ok(WsCommand::Send(open)) = queue.try_recv() else { unreachable!() };
    /// #     let open: serde_json::Value = serde_json::from_str(&open.as_text().unwrap()[1..]).unwrap();
    /// #     (conn, queue, open["sid"].as_str().unwrap().to_owned())
    /// # }
    /// # fn sent(queue: &mut switchboard_async::engineio::WsCommands) -> Vec<String> {
    /// #     use switchboard_async::engineio::WsCommand;
    /// #     std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect()
    /// # }
    /// let (engine, mut sockets) = EngineIo::with_sockets(ServerConfig::default());
    /// let (_conn, mut queue, _sid) = connect(&engine); // an in-memory WebSocket client
    /// let socket = block_on(sockets.accept()).unwrap();
    /// let sender = socket.sender();
    /// std::thread::spawn(move || sender.send("from elsewhere")).join().unwrap()?;
    /// assert_eq!(sent(&mut queue), ["4from elsewhere"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sender(&self) -> SocketSender {
        SocketSender {
            sid: self.sid.clone(),
            engine: self.engine.clone(),
        }
    }

    /// Closes the session (`forced close`).
    ///
    /// ```
    /// use switchboard_async::engineio::WsCommand;
    /// use switchboard_core::engineio::CloseReason;
    /// # use futures_executor::block_on;
    /// # use switchboard_async::engineio::EngineIo;
    /// # use switchboard_core::engineio::ServerConfig;
    /// # // An in-memory WebSocket client, no network: `connect` opens its session (connection, command queue, sid).
    /// # fn connect(engine: &switchboard_async::engineio::EngineIo) -> (switchboard_core::engineio::ConnId, switchboard_async::engineio::WsCommands, String) {
    /// #     use switchboard_async::engineio::{Routed, WsCommand};
    /// #     let head = b"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    /// #     let request = switchboard_core::http::Request::parse(head, &Default::default()).unwrap().unwrap().0;
    /// #     let Routed::WebSocket(conn, mut queue) = engine.handle_request(&request, Default::default()) else { unreachable!() };
    /// #     let Ok(WsCommand::Send(open)) = queue.try_recv() else { unreachable!() };
    /// #     let open: serde_json::Value = serde_json::from_str(&open.as_text().unwrap()[1..]).unwrap();
    /// #     (conn, queue, open["sid"].as_str().unwrap().to_owned())
    /// # }
    ///
    /// let (engine, mut sockets) = EngineIo::with_sockets(ServerConfig::default());
    /// let (_conn, mut queue, _sid) = connect(&engine); // an in-memory WebSocket client
    /// let mut socket = block_on(sockets.accept()).unwrap();
    /// socket.close();
    /// assert!(matches!(queue.try_recv(), Ok(WsCommand::Close))); // its WebSocket closes
    /// assert_eq!(block_on(socket.recv()), None);
    /// assert_eq!(socket.close_reason(), Some(CloseReason::ForcedClose));
    /// ```
    pub fn close(&self) {
        if let Some(engine) = self.engine.upgrade() {
            engine.close(&self.sid);
        }
    }

    /// Why the session closed, once it has.
    ///
    /// See [`Socket::recv`]'s and [`Socket::close`]'s examples.
    pub fn close_reason(&self) -> Option<CloseReason> {
        *lock(&self.close_reason)
    }
}

impl Stream for Socket {
    type Item = MessageData;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<MessageData>> {
        let message = std::task::ready!(std::pin::Pin::new(&mut self.inbox).poll_next(cx));
        if message.is_some() {
            self.unread.read(1);
            self.unread.session.stuck.store(false, Ordering::Relaxed);
        }
        Poll::Ready(message)
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // Nothing arrives once closed; what did is counted out.
        self.inbox.close();
        while self.inbox.try_recv().is_ok() {
            self.unread.read(1);
        }
    }
}

/// How many messages wait in a session's inbox, and in all inboxes of the
/// endpoint (read without a lock by [`SocketRouter::may_lack_room`]).
#[derive(Debug, Clone, Default)]
struct Unread {
    session: Arc<SessionUnread>,
    all: Arc<AtomicUsize>,
}

#[derive(Debug, Default)]
struct SessionUnread {
    count: AtomicUsize,
    /// The application read nothing in a whole wait for room
    /// ([`EventHandler::no_room_made`]): not waited for again until it
    /// reads.
    stuck: std::sync::atomic::AtomicBool,
}

impl Unread {
    fn arrived(&self) {
        self.session.count.fetch_add(1, Ordering::Relaxed);
        self.all.fetch_add(1, Ordering::Relaxed);
    }

    fn read(&self, n: usize) {
        self.session.count.fetch_sub(n, Ordering::Relaxed);
        self.all.fetch_sub(n, Ordering::Relaxed);
    }
}

/// Sends to one session; cloneable, usable from any task or thread.
///
/// ```
/// # use futures_executor::block_on;
/// # use switchboard_async::engineio::EngineIo;
/// # use switchboard_core::engineio::ServerConfig;
/// # // An in-memory WebSocket client, no network: `connect` opens its session (connection, command queue, sid), `sent` takes the texts queued for it.
/// # fn connect(engine: &switchboard_async::engineio::EngineIo) -> (switchboard_core::engineio::ConnId, switchboard_async::engineio::WsCommands, String) {
/// #     use switchboard_async::engineio::{Routed, WsCommand};
/// #     let head = b"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
/// #     let request = switchboard_core::http::Request::parse(head, &Default::default()).unwrap().unwrap().0;
/// #     let Routed::WebSocket(conn, mut queue) = engine.handle_request(&request, Default::default()) else { unreachable!() };
/// #     let Ok(WsCommand::Send(open)) = queue.try_recv() else { unreachable!() };
/// #     let open: serde_json::Value = serde_json::from_str(&open.as_text().unwrap()[1..]).unwrap();
/// #     (conn, queue, open["sid"].as_str().unwrap().to_owned())
/// # }
/// # fn sent(queue: &mut switchboard_async::engineio::WsCommands) -> Vec<String> {
/// #     use switchboard_async::engineio::WsCommand;
/// #     std::iter::from_fn(|| match queue.try_recv() { Ok(WsCommand::Send(m)) => m.as_text().map(str::to_owned), _ => None }).collect()
/// # }
/// let (engine, mut sockets) = EngineIo::with_sockets(ServerConfig::default());
/// let (_conn, mut queue, _sid) = connect(&engine); // an in-memory WebSocket client
/// let socket = block_on(sockets.accept()).unwrap();
/// let ticker = socket.sender();
/// std::thread::spawn(move || {
///     for n in 1..=3 {
///         ticker.send(format!("tick {n}")).unwrap();
///     }
/// })
/// .join()
/// .unwrap();
/// assert_eq!(sent(&mut queue), ["4tick 1", "4tick 2", "4tick 3"]);
/// ```
#[derive(Debug, Clone)]
pub struct SocketSender {
    sid: Arc<str>,
    engine: WeakEngineIo,
}

impl SocketSender {
    /// Sends a message (see [`EngineIo::send`]).
    ///
    /// Once the session closed (or the endpoint is gone), it fails:
    ///
    /// ```
    /// use switchboard_core::engineio::SendError;
    /// # use futures_executor::block_on;
    /// # use switchboard_async::engineio::EngineIo;
    /// # use switchboard_core::engineio::ServerConfig;
    /// # // An in-memory WebSocket client, no network: `connect` opens its session (connection, command queue, sid).
    /// # fn connect(engine: &switchboard_async::engineio::EngineIo) -> (switchboard_core::engineio::ConnId, switchboard_async::engineio::WsCommands, String) {
    /// #     use switchboard_async::engineio::{Routed, WsCommand};
    /// #     let head = b"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    /// #     let request = switchboard_core::http::Request::parse(head, &Default::default()).unwrap().unwrap().0;
    /// #     let Routed::WebSocket(conn, mut queue) = engine.handle_request(&request, Default::default()) else { unreachable!() };
    /// #     let Ok(WsCommand::Send(open)) = queue.try_recv() else { unreachable!() };
    /// #     let open: serde_json::Value = serde_json::from_str(&open.as_text().unwrap()[1..]).unwrap();
    /// #     (conn, queue, open["sid"].as_str().unwrap().to_owned())
    /// # }
    ///
    /// let (engine, mut sockets) = EngineIo::with_sockets(ServerConfig::default());
    /// let (_conn, _queue, _sid) = connect(&engine); // an in-memory WebSocket client
    /// let socket = block_on(sockets.accept()).unwrap();
    /// let sender = socket.sender();
    /// assert_eq!(sender.send("hi"), Ok(()));
    /// socket.close();
    /// assert_eq!(sender.send("hi"), Err(SendError::UnknownSession));
    /// ```
    pub fn send(&self, data: impl Into<MessageData>) -> Result<(), SendError> {
        match self.engine.upgrade() {
            Some(engine) => engine.send(&self.sid, data),
            None => Err(SendError::UnknownSession),
        }
    }
}

struct Inbox {
    tx: mpsc::Sender<MessageData>,
    close_reason: Arc<Mutex<Option<CloseReason>>>,
    unread: Unread,
}

/// The [`EventHandler`] behind [`EngineIo::with_sockets`]: one bounded
/// inbox per session. A WebSocket's burst waits (in TCP) while its inbox is
/// more than half full; a session whose application stops reading until
/// its inbox holds [`ServerConfig::max_buffered_packets`] messages is
/// closed rather than buffered without bound.
struct SocketRouter {
    new_sockets: Mutex<mpsc::Sender<Socket>>,
    inboxes: Mutex<IdMap<Arc<str>, Inbox>>,
    buffer: usize,
    /// Messages in all inboxes, not yet read.
    unread: Arc<AtomicUsize>,
}

impl EventHandler for SocketRouter {
    fn handle(&self, engine: &EngineIo, event: ServerEvent) {
        match event {
            ServerEvent::Open { sid, request, .. } => {
                let (tx, inbox) = mpsc::channel(self.buffer);
                let close_reason = Arc::new(Mutex::new(None));
                let unread = Unread {
                    session: Arc::default(),
                    all: self.unread.clone(),
                };
                let socket = Socket {
                    sid: sid.clone(),
                    engine: engine.downgrade(),
                    inbox,
                    unread: unread.clone(),
                    close_reason: close_reason.clone(),
                    request,
                };
                if lock(&self.new_sockets).try_send(socket).is_err() {
                    tracing::warn!(%sid, "application is not accepting sessions; closing");
                    engine.close(&sid);
                    return;
                }
                lock(&self.inboxes).insert(
                    sid,
                    Inbox {
                        tx,
                        close_reason,
                        unread,
                    },
                );
            }
            ServerEvent::Message { sid, data } => {
                let mut inboxes = lock(&self.inboxes);
                let Some(inbox) = inboxes.get_mut(&sid) else {
                    return;
                };
                // Counted first: the application may read it at once.
                inbox.unread.arrived();
                if inbox.tx.try_send(data).is_err() {
                    inbox.unread.read(1);
                    drop(inboxes);
                    tracing::warn!(%sid, "application is not reading the session; closing");
                    engine.close(&sid);
                }
            }
            ServerEvent::Close { sid, reason } => {
                if let Some(inbox) = lock(&self.inboxes).remove(&sid) {
                    *lock(&inbox.close_reason) = Some(reason);
                }
            }
        }
    }

    /// Room while the session's inbox is at most half full (or the
    /// application read nothing in a whole wait: its inbox then fills and
    /// the session is closed).
    fn has_room(&self, sid: &str) -> bool {
        lock(&self.inboxes).get(sid).is_none_or(|inbox| {
            let session = &inbox.unread.session;
            session.stuck.load(Ordering::Relaxed)
                || session.count.load(Ordering::Relaxed) <= self.buffer / 2
        })
    }

    fn no_room_made(&self, sid: &str) {
        if let Some(inbox) = lock(&self.inboxes).get(sid) {
            inbox.unread.session.stuck.store(true, Ordering::Relaxed);
        }
    }

    fn may_lack_room(&self) -> bool {
        self.unread.load(Ordering::Relaxed) > self.buffer / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::http::Limits;

    fn request(target: &str) -> Request {
        let head =
            format!("GET {target} HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
        Request::parse(head.as_bytes(), &Limits::default())
            .unwrap()
            .unwrap()
            .0
    }

    /// A WebSocket handshake on `engine`: the connection and its queue,
    /// the open packet taken off it.
    fn open_ws(engine: &EngineIo) -> (ConnId, WsCommands) {
        let Routed::WebSocket(conn, mut commands) = engine.handle_request(
            &request("/engine.io/?EIO=4&transport=websocket"),
            Bytes::new(),
        ) else {
            panic!("a WebSocket handshake")
        };
        assert!(texts(&mut commands)[0].starts_with("0{\"sid\":"));
        (conn, commands)
    }

    /// Pings every 10 s, a pong due within 5 s.
    fn timer_test_config() -> ServerConfig {
        ServerConfig {
            ping_interval: std::time::Duration::from_secs(10),
            ping_timeout: std::time::Duration::from_secs(5),
            ..ServerConfig::default()
        }
    }

    fn texts(commands: &mut WsCommands) -> Vec<String> {
        let mut texts = Vec::new();
        while let Ok(WsCommand::Send(message)) = commands.try_recv() {
            texts.push(message.as_text().unwrap().to_owned());
        }
        texts
    }

    /// A handler whose room the test sets, recording what it handles and
    /// the sessions it was told made no room.
    #[derive(Default)]
    struct Gated {
        room: std::sync::atomic::AtomicBool,
        handled: Mutex<Vec<String>>,
        no_room: Mutex<Vec<String>>,
        /// The close reasons handled.
        closed: Mutex<Vec<CloseReason>>,
    }

    impl EventHandler for Arc<Gated> {
        fn handle(&self, _: &EngineIo, event: ServerEvent) {
            if let ServerEvent::Message {
                data: MessageData::Text(text),
                ..
            } = event
            {
                lock(&self.handled).push(text.to_string());
            } else if let ServerEvent::Close { reason, .. } = event {
                lock(&self.closed).push(reason);
            }
        }

        fn has_room(&self, _: &str) -> bool {
            self.room.load(Ordering::Relaxed)
        }

        fn may_lack_room(&self) -> bool {
            true
        }

        fn no_room_made(&self, sid: &str) {
            lock(&self.no_room).push(sid.to_owned());
        }
    }

    /// Messages the handler has no room for wait, undelivered and in
    /// order; the timer hands them over once it has room, with nobody
    /// else asking, or after `HANDLERS_CATCH_UP` anyway.
    #[test]
    fn the_timer_resumes_messages_waiting_for_room() {
        let gated = Arc::new(Gated::default());
        let engine = EngineIo::new(timer_test_config(), gated.clone());
        let timer = engine.timed();
        let (conn, _commands) = open_ws(&engine);
        engine.ws_messages(conn, [Message::text("4a"), Message::text("4b")]);
        assert!(lock(&gated.handled).is_empty(), "no room: nothing handled");
        let now = Instant::now();
        assert!(
            timer
                .run_timers(now)
                .is_some_and(|next| next <= now + HANDLERS_POLL * 2),
            "the timer looks again soon"
        );
        assert!(lock(&gated.handled).is_empty());
        gated.room.store(true, Ordering::Relaxed);
        timer.run_timers(Instant::now());
        assert_eq!(*lock(&gated.handled), ["a", "b"]);
        assert!(lock(&gated.no_room).is_empty());

        gated.room.store(false, Ordering::Relaxed);
        engine.ws_messages(conn, [Message::text("4c")]);
        timer.run_timers(Instant::now() + HANDLERS_CATCH_UP / 2);
        assert_eq!(lock(&gated.handled).len(), 2, "still no room");
        timer.run_timers(Instant::now() + HANDLERS_CATCH_UP * 2);
        assert_eq!(
            *lock(&gated.handled),
            ["a", "b", "c"],
            "handed over after the wait"
        );
        assert_eq!(lock(&gated.no_room).len(), 1);
    }

    /// A session closed in the read that brought messages the handler has
    /// no room for: its messages, then its close, reach the handler at
    /// once, whatever its room (a close resumes at once), not when the
    /// timer finds room or gives up waiting.
    #[test]
    fn a_close_read_with_messages_is_not_held_back_for_room() {
        let gated = Arc::new(Gated::default());
        let engine = EngineIo::new(timer_test_config(), gated.clone());
        let (conn, _commands) = open_ws(&engine);
        // A message, then the client's `close` packet, in one read.
        engine.ws_messages(conn, [Message::text("4a"), Message::text("1")]);
        assert_eq!(engine.session_count(), 0);
        assert_eq!(*lock(&gated.handled), ["a"], "the closed session's message");
        assert_eq!(*lock(&gated.closed), [CloseReason::TransportClose]);
        assert!(lock(&gated.no_room).is_empty());
    }

    /// A session closed while a deliverer is inside one of its handlers,
    /// before that deliverer finds no room for the next message: the close
    /// still goes through at once, not after `HANDLERS_CATCH_UP`.
    #[test]
    fn a_close_during_a_delivery_is_not_held_back_for_room() {
        struct Blocking {
            gated: Arc<Gated>,
            entered: std::sync::Barrier,
            release: std::sync::Barrier,
        }
        impl EventHandler for Arc<Blocking> {
            fn handle(&self, engine: &EngineIo, event: ServerEvent) {
                let first = matches!(&event, ServerEvent::Message { data, .. }
                    if *data == MessageData::Text("a".into()));
                self.gated.handle(engine, event);
                if first {
                    self.entered.wait();
                    self.release.wait();
                }
            }
            fn has_room(&self, sid: &str) -> bool {
                self.gated.has_room(sid)
            }
            fn may_lack_room(&self) -> bool {
                true
            }
            fn no_room_made(&self, sid: &str) {
                self.gated.no_room_made(sid);
            }
        }
        let gated = Arc::new(Gated::default());
        gated.room.store(true, Ordering::Relaxed);
        let blocking = Arc::new(Blocking {
            gated: gated.clone(),
            entered: std::sync::Barrier::new(2),
            release: std::sync::Barrier::new(2),
        });
        let engine = EngineIo::with_shards(timer_test_config(), blocking.clone(), 1);
        let (conn, _commands) = open_ws(&engine);
        let reader = {
            let engine = engine.clone();
            std::thread::spawn(move || {
                engine.ws_messages(conn, [Message::text("4a"), Message::text("4b")]);
            })
        };
        // The reader's thread is inside the handler of "a".
        blocking.entered.wait();
        let sid = engine.conn_session(conn).expect("open");
        engine.close(&sid);
        assert_eq!(engine.session_count(), 0);
        // The handler runs out of room before its deliverer looks at "b".
        gated.room.store(false, Ordering::Relaxed);
        blocking.release.wait();
        reader.join().unwrap();
        assert_eq!(*lock(&gated.handled), ["a", "b"]);
        assert_eq!(*lock(&gated.closed), [CloseReason::ForcedClose]);
        assert!(lock(&gated.no_room).is_empty());
    }

    /// A batch whose closure panics after a send still routes what it
    /// sent: the message goes out now, not whenever something else next
    /// touches its shard (the next heartbeat).
    #[test]
    fn a_panicking_batch_still_routes_its_sends() {
        let engine = EngineIo::with_shards(ServerConfig::default(), |_: &EngineIo, _| {}, 1);
        let (conn, mut commands) = open_ws(&engine);
        let sid: String = engine.conn_session(conn).unwrap().to_string();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            engine.batch(|batch| {
                batch.send(&sid, "sent").unwrap();
                panic!("the application failed mid-batch");
            })
        }));
        assert!(caught.is_err());
        assert_eq!(texts(&mut commands), ["4sent"]);
    }

    /// A panicking handler loses only the event it was given: the
    /// connection that delivered it goes on with the next message, and the
    /// timer goes on delivering when a handler panics under it.
    #[test]
    fn a_panicking_handler_loses_only_its_event() {
        let closes = Arc::new(Mutex::new(0));
        let seen = closes.clone();
        let config = timer_test_config();
        let engine = EngineIo::new(
            config,
            move |engine: &EngineIo, event: ServerEvent| match event {
                ServerEvent::Message { sid, data } => {
                    assert!(
                        data != MessageData::Text("boom".into()),
                        "the handler failed"
                    );
                    engine.send(&sid, data).unwrap();
                }
                ServerEvent::Close { .. } => {
                    *lock(&seen) += 1;
                    panic!("the close handler failed");
                }
                _ => {}
            },
        );
        let start = Instant::now();
        let mut conns: Vec<(ConnId, WsCommands)> = (0..2).map(|_| open_ws(&engine)).collect();
        let (conn, commands) = &mut conns[0];
        engine.ws_messages(*conn, [Message::text("4boom"), Message::text("4after")]);
        assert_eq!(texts(commands), ["4after"]);

        let timer = engine.timed();
        let pings = timer.run_timers(start).expect("pings are due");
        let pong_deadline = timer
            .run_timers(pings + std::time::Duration::from_secs(1))
            .expect("pong deadlines");
        let after = timer.run_timers(pong_deadline + std::time::Duration::from_millis(1));
        assert_eq!(after, None, "no session left");
        assert_eq!(*lock(&closes), 2, "the second close was still delivered");
        assert_eq!(engine.session_count(), 0);
    }

    /// The timer serves every shard: pings go out and unanswered sessions
    /// time out in all of them, and it reports the earliest deadline.
    #[test]
    fn the_timer_runs_every_shard() {
        let closed = Arc::new(Mutex::new(Vec::new()));
        let seen = closed.clone();
        let config = timer_test_config();
        let engine = EngineIo::with_shards(
            config,
            move |_: &EngineIo, event: ServerEvent| {
                if let ServerEvent::Close { reason, .. } = event {
                    lock(&seen).push(reason);
                }
            },
            4,
        );
        let start = Instant::now();
        let mut conns: Vec<WsCommands> = (0..8).map(|_| open_ws(&engine).1).collect();
        let timer = engine.timed();
        let next = timer.run_timers(start).expect("pings are due");
        assert!(next >= start + std::time::Duration::from_secs(10));
        // A second of slack: the handshakes above took less than that.
        let after_pings = timer
            .run_timers(next + std::time::Duration::from_secs(1))
            .expect("pong deadlines");
        for commands in &mut conns {
            assert_eq!(texts(commands), ["2"], "every shard's session is pinged");
        }
        assert!(lock(&closed).is_empty());
        let after_timeouts = timer.run_timers(after_pings + std::time::Duration::from_millis(1));
        assert_eq!(after_timeouts, None, "no session left");
        assert_eq!(*lock(&closed), vec![CloseReason::PingTimeout; 8]);
        assert_eq!(engine.session_count(), 0);
    }

    /// `max_sessions` holds for the endpoint, not per shard: handshakes go
    /// to shards with room until the endpoint is full, then get 503.
    #[test]
    fn a_sharded_endpoint_holds_max_sessions_in_all() {
        let engine = EngineIo::with_shards(
            ServerConfig {
                max_sessions: 3,
                ..ServerConfig::default()
            },
            |_: &EngineIo, _| {},
            4,
        );
        let handshake = || {
            engine.handle_request(
                &request("/engine.io/?EIO=4&transport=polling"),
                Bytes::new(),
            )
        };
        let mut sids = Vec::new();
        for _ in 0..3 {
            match handshake() {
                Routed::Respond(response) if response.status == 200 => {
                    let open = String::from_utf8(response.body.to_vec()).unwrap();
                    let open: serde_json::Value = serde_json::from_str(&open[1..]).unwrap();
                    sids.push(open["sid"].as_str().unwrap().to_owned());
                }
                _ => panic!("a handshake within the limit was refused"),
            }
        }
        assert_eq!(engine.session_count(), 3);
        for _ in 0..4 {
            match handshake() {
                Routed::Respond(response) => assert_eq!(response.status, 503),
                _ => panic!("a handshake beyond the limit"),
            }
        }
        engine.close(&sids[1]);
        assert_eq!(engine.session_count(), 2);
        // Whichever shard's turn it is, the next handshake finds the room.
        match handshake() {
            Routed::Respond(response) => assert_eq!(response.status, 200),
            _ => panic!("a polling handshake"),
        }
        assert_eq!(engine.session_count(), 3);
    }

    #[test]
    #[should_panic(expected = "1 to 64 shards, not 0")]
    fn an_endpoint_without_shards_is_refused() {
        EngineIo::with_shards(ServerConfig::default(), |_: &EngineIo, _| {}, 0);
    }

    /// Sessions spread over the shards; each message, send, broadcast and
    /// close reaches the one shard owning its session.
    #[test]
    fn a_sharded_endpoint_routes_everything_to_the_owning_shard() {
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = events.clone();
        let engine = EngineIo::with_shards(
            ServerConfig::default(),
            move |_: &EngineIo, event: ServerEvent| lock(&seen).push(event),
            4,
        );
        let mut conns: Vec<(ConnId, WsCommands)> = (0..8).map(|_| open_ws(&engine)).collect();
        let shards: std::collections::HashSet<usize> =
            conns.iter().map(|(conn, _)| conn.shard()).collect();
        assert_eq!(shards.len(), 4, "handshakes go round the shards");
        assert_eq!(engine.session_count(), 8);
        let sids: Vec<Arc<str>> = std::mem::take(&mut *lock(&events))
            .into_iter()
            .map(|event| event.sid().clone())
            .collect();
        assert_eq!(sids.len(), 8);
        for (sid, (conn, _)) in sids.iter().zip(&conns) {
            assert_eq!(Shard::of_sid(sid, 4), conn.shard());
        }

        // A message from each connection reaches the handler under its sid.
        for (conn, _) in &conns {
            engine.ws_messages(*conn, [Message::text("4hello")]);
        }
        let from: Vec<Arc<str>> = std::mem::take(&mut *lock(&events))
            .into_iter()
            .map(|event| match event {
                ServerEvent::Message { sid, .. } => sid,
                other => panic!("expected a message, got {other:?}"),
            })
            .collect();
        assert_eq!(from, sids);

        // A send to one session, then a broadcast to all, in one batch.
        let reached = engine.batch(|batch| {
            batch.send(&sids[5], "first").unwrap();
            batch.send_many(sids.iter().map(|sid| &**sid), &"all".into())
        });
        assert_eq!(reached, 8);
        for (index, (_, commands)) in conns.iter_mut().enumerate() {
            let expected: &[&str] = if index == 5 {
                &["4first", "4all"]
            } else {
                &["4all"]
            };
            assert_eq!(texts(commands), expected);
        }

        // Closing one session touches no other.
        engine.close(&sids[2]);
        assert_eq!(engine.session_count(), 7);
        assert!(matches!(conns[2].1.try_recv(), Ok(WsCommand::Close)));
        engine.send(&sids[3], "still").unwrap();
        assert_eq!(texts(&mut conns[3].1), ["4still"]);
        assert_eq!(
            engine.send(&sids[2], "gone"),
            Err(SendError::UnknownSession)
        );
    }
}
