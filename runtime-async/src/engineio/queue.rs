//! The queue from the Engine.IO hub to one WebSocket connection.
//!
//! The hub pushes under its own lock, one message at a time (a broadcast
//! pushes one to each of many connections); the connection task takes
//! everything queued at once and writes it in one go. A general-purpose
//! channel allocates a node per message and synchronises per message; this
//! queue swaps a whole batch out under one short lock, so in a steady state
//! nothing is allocated, and it stays bounded: a full queue tells the hub
//! the peer stopped reading.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use futures_util::task::AtomicWaker;

use super::WsCommand;

struct Shared {
    state: Mutex<State>,
    waker: AtomicWaker,
    /// Signalled when the receiver takes a batch or goes away.
    taken: Condvar,
    capacity: usize,
}

/// The most received messages a connection hands the hub in one batch
/// (at most half its queue) before the answers they caused are taken: a
/// read of more messages than the queue holds (a client emitting in a
/// loop) does not overflow it.
pub(crate) const MAX_BURST: usize = 64;

#[derive(Default)]
struct State {
    commands: VecDeque<WsCommand>,
    sender_gone: bool,
    receiver_gone: bool,
    /// The connection task is handing messages to the hub and takes what
    /// is queued right after: no wake needed meanwhile.
    receiver_busy: bool,
    /// Readers blocked in [`WsQueueRoom::wait`]: `taken` is signalled only
    /// for them (a signal costs a system call even when nobody waits).
    room_waiters: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A bounded queue of at most `capacity` commands waiting to be taken.
pub(crate) fn ws_queue(capacity: usize) -> (WsCommandSender, WsCommands) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        waker: AtomicWaker::new(),
        taken: Condvar::new(),
        capacity: capacity.max(1),
    });
    let sender = WsCommandSender {
        shared: shared.clone(),
    };
    let receiver = WsCommands {
        shared,
        taken: VecDeque::new(),
        closed: false,
    };
    (sender, receiver)
}

/// Why [`WsCommandSender::try_send`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendFailure {
    /// `capacity` commands are waiting: the connection is not keeping up.
    Full,
    /// The connection task is gone.
    Gone,
}

/// The hub's end of a WebSocket connection's queue. Dropping it ends the
/// queue (the connection task sees [`TryRecvError::Closed`] once it has
/// taken what was queued).
pub(crate) struct WsCommandSender {
    shared: Arc<Shared>,
}

impl WsCommandSender {
    pub(crate) fn try_send(&mut self, command: WsCommand) -> Result<(), SendFailure> {
        let mut state = self.shared.lock();
        if state.receiver_gone {
            return Err(SendFailure::Gone);
        }
        if state.commands.len() >= self.shared.capacity {
            return Err(SendFailure::Full);
        }
        let wake = state.commands.is_empty() && !state.receiver_busy;
        state.commands.push_back(command);
        drop(state);
        // A task that found the queue empty registered before looking; one
        // wake per batch is enough.
        if wake {
            self.shared.waker.wake();
        }
        Ok(())
    }
}

impl Drop for WsCommandSender {
    fn drop(&mut self) {
        self.shared.lock().sender_gone = true;
        self.shared.waker.wake();
    }
}

/// [`WsCommands::try_recv`] found nothing.
///
/// ```
/// use switchboard_async::engineio::{EngineIo, TryRecvError, WsCommand};
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
/// assert_eq!(queue.try_recv().unwrap_err(), TryRecvError::Empty);
/// engine.close(&sid);
/// assert!(matches!(queue.try_recv(), Ok(WsCommand::Close)));
/// assert_eq!(queue.try_recv().unwrap_err(), TryRecvError::Closed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing queued right now.
    Empty,
    /// Nothing queued, and the hub dropped its end: no more will come.
    Closed,
}

/// What the hub asks one Engine.IO WebSocket connection to do, in order: a
/// [`Stream`] of [`WsCommand`]s, ending when the hub forgets the connection.
///
/// A connection's task writes the messages until it is told to close:
///
/// ```
/// use futures_executor::block_on;
/// use futures_util::StreamExt;
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
/// engine.send(&sid, "one")?;
/// engine.send(&sid, "two")?;
/// engine.close(&sid);
/// let written = block_on(async {
///     let mut written = Vec::new();
///     while let Some(command) = queue.next().await {
///         match command {
///             WsCommand::Send(message) => written.push(message), // write it
///             WsCommand::Close => break,                          // close the WebSocket
///         }
///     }
///     written
/// });
/// assert_eq!(written.len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct WsCommands {
    shared: Arc<Shared>,
    /// The batch taken out of the shared queue, handed out one by one.
    taken: VecDeque<WsCommand>,
    closed: bool,
}

impl std::fmt::Debug for WsCommands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsCommands")
            .field("taken", &self.taken.len())
            .field("closed", &self.closed)
            .finish()
    }
}

impl WsCommands {
    /// Runs `f` (which hands received messages to the hub) with wake-ups
    /// for this queue held back: the answers `f` causes are queued for the
    /// caller to take right after, and waking the task that is running
    /// would only have it polled again for nothing.
    ///
    /// ```
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
    /// # use switchboard_core::engineio::ServerEvent;
    /// # // An endpoint that echoes every message.
    /// # let engine = EngineIo::new(ServerConfig::default(), |engine: &EngineIo, event: ServerEvent| {
    /// #     if let ServerEvent::Message { sid, data } = event { let _ = engine.send(&sid, data); }
    /// # });
    ///
    /// // `engine` echoes every message.
    /// let (conn, mut queue, _sid) = connect(&engine); // an in-memory WebSocket client
    /// let read = vec![Message::text("4a"), Message::text("4b")];
    /// queue.while_busy(|| engine.ws_messages(conn, read));
    /// assert_eq!(sent(&mut queue), ["4a", "4b"]); // the answers, taken right after
    /// ```
    pub fn while_busy<T>(&mut self, f: impl FnOnce() -> T) -> T {
        /// Clears the flag also if `f` unwinds, so later sends wake again.
        struct Busy<'a>(&'a Shared);
        impl Drop for Busy<'_> {
            fn drop(&mut self) {
                self.0.lock().receiver_busy = false;
            }
        }
        self.shared.lock().receiver_busy = true;
        let _busy = Busy(&self.shared);
        f()
    }

    /// How many received messages to hand the hub at once before taking
    /// the answers they caused (see [`WsQueueRoom`] where another thread
    /// takes them).
    ///
    /// A read of more messages than the queue holds, handed over a burst at a
    /// time:
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
    /// let config = ServerConfig { max_buffered_packets: 16, ..ServerConfig::default() };
    /// let engine = EngineIo::new(config, |engine: &EngineIo, event: ServerEvent| {
    ///     if let ServerEvent::Message { sid, data } = event {
    ///         let _ = engine.send(&sid, data); // echo
    ///     }
    /// });
    /// let (conn, mut queue, _sid) = connect(&engine); // an in-memory WebSocket client
    /// assert_eq!(queue.burst_limit(), 8); // half the queue
    /// let read: Vec<Message> = (0..20).map(|n| Message::text(format!("4{n}"))).collect();
    /// let mut echoes = 0;
    /// for burst in read.chunks(queue.burst_limit()) {
    ///     queue.while_busy(|| engine.ws_messages(conn, burst.to_vec()));
    ///     echoes += sent(&mut queue).len(); // written before the next burst
    /// }
    /// assert_eq!(echoes, 20);
    /// assert_eq!(engine.session_count(), 1); // the queue never overflowed
    /// ```
    pub fn burst_limit(&self) -> usize {
        MAX_BURST.min(self.shared.capacity.div_ceil(2))
    }

    /// A handle for the connection's reader, when another thread takes the
    /// commands.
    ///
    /// See [`WsQueueRoom`]'s example.
    pub fn room(&self) -> WsQueueRoom {
        WsQueueRoom {
            shared: self.shared.clone(),
        }
    }

    /// Ready once the hub has let go of the connection (it closed the
    /// session, or the endpoint is gone): no more commands come, though the
    /// last ones may still be queued. Pending until then, with the task of
    /// `cx` woken when it happens. A connection whose write waits (a peer
    /// that reads nothing) watches this meanwhile, so it learns of the
    /// session's close without taking the commands queued before it.
    ///
    /// ```
    /// use std::task::{Context, Waker};
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
    /// let (_conn, mut queue, sid) = connect(&engine); // an in-memory WebSocket client
    /// let mut cx = Context::from_waker(Waker::noop());
    /// engine.send(&sid, "bye")?;
    /// assert!(queue.poll_ended(&mut cx).is_pending());
    /// engine.close(&sid);
    /// assert!(queue.poll_ended(&mut cx).is_ready());
    /// assert!(queue.try_recv().is_ok()); // "bye", still queued
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn poll_ended(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.closed {
            return Poll::Ready(());
        }
        // Registered before looking: a sender dropped in between wakes it.
        self.shared.waker.register(cx.waker());
        if self.shared.lock().sender_gone {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// The next command if one is queued, without waiting.
    ///
    /// ```
    /// use switchboard_async::engineio::{EngineIo, TryRecvError, WsCommand};
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
    /// engine.send(&sid, "a")?;
    /// engine.send(&sid, "b")?;
    /// // Everything queued, in one write:
    /// let mut batch = Vec::new();
    /// while let Ok(WsCommand::Send(message)) = queue.try_recv() {
    ///     batch.push(message);
    /// }
    /// assert_eq!(batch.len(), 2);
    /// assert_eq!(queue.try_recv().unwrap_err(), TryRecvError::Empty); // for now
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_recv(&mut self) -> Result<WsCommand, TryRecvError> {
        if let Some(command) = self.taken.pop_front() {
            return Ok(command);
        }
        if self.closed {
            return Err(TryRecvError::Closed);
        }
        let mut state = self.shared.lock();
        // Swapping keeps both buffers' capacity: no allocation per batch.
        std::mem::swap(&mut self.taken, &mut state.commands);
        let sender_gone = state.sender_gone;
        let waiters = state.room_waiters > 0;
        drop(state);
        if waiters && !self.taken.is_empty() {
            self.shared.taken.notify_all();
        }
        match self.taken.pop_front() {
            Some(command) => Ok(command),
            None if sender_gone => {
                self.closed = true;
                Err(TryRecvError::Closed)
            }
            None => Err(TryRecvError::Empty),
        }
    }
}

impl Stream for WsCommands {
    type Item = WsCommand;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WsCommand>> {
        match self.try_recv() {
            Ok(command) => return Poll::Ready(Some(command)),
            Err(TryRecvError::Closed) => return Poll::Ready(None),
            Err(TryRecvError::Empty) => {}
        }
        self.shared.waker.register(cx.waker());
        // Pushed between the look and the registration: take it now.
        match self.try_recv() {
            Ok(command) => Poll::Ready(Some(command)),
            Err(TryRecvError::Closed) => Poll::Ready(None),
            Err(TryRecvError::Empty) => Poll::Pending,
        }
    }
}

impl Drop for WsCommands {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.receiver_gone = true;
        // What is queued will never be written; free it now.
        state.commands.clear();
        let waiters = state.room_waiters > 0;
        drop(state);
        if waiters {
            self.shared.taken.notify_all();
        }
    }
}

/// A connection reader's view of its queue, when another thread takes the
/// commands (the threads adapter's writer): before handing the hub more
/// messages, the reader waits for the writer to catch up.
///
/// A reader thread hands the endpoint what it reads while a writer thread
/// empties the queue (the threads adapter's split):
///
/// ```
/// use std::time::Duration;
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
/// # use switchboard_core::engineio::ServerEvent;
/// # // An endpoint that echoes every message.
/// # let engine = EngineIo::new(ServerConfig::default(), |engine: &EngineIo, event: ServerEvent| {
/// #     if let ServerEvent::Message { sid, data } = event { let _ = engine.send(&sid, data); }
/// # });
///
/// // `engine` echoes every message.
/// let (conn, mut queue, sid) = connect(&engine); // an in-memory WebSocket client
/// let room = queue.room();
/// let writer = std::thread::spawn(move || {
///     let mut written = 0;
///     while let Some(WsCommand::Send(_message)) = block_on(queue.next()) {
///         written += 1; // write it
///     }
///     written
/// });
/// for n in 0..100 {
///     room.wait(Duration::from_secs(5)); // until the writer caught up
///     engine.ws_message(conn, Message::text(format!("4{n}")));
/// }
/// engine.close(&sid);
/// assert_eq!(writer.join().unwrap(), 100);
/// ```
#[derive(Clone)]
pub struct WsQueueRoom {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for WsQueueRoom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsQueueRoom").finish_non_exhaustive()
    }
}

impl WsQueueRoom {
    /// Blocks until at most half the queue is taken up, the receiver is
    /// gone, or `timeout` passed (a writer stuck on a peer that does not
    /// read: the hub then finds the queue full and closes the session).
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
    /// let config = ServerConfig { max_buffered_packets: 4, ..ServerConfig::default() };
    /// let engine = EngineIo::new(config, |_: &EngineIo, _| {});
    /// let (_conn, mut queue, sid) = connect(&engine); // an in-memory WebSocket client
    /// let room = queue.room();
    /// for _ in 0..3 {
    ///     engine.send(&sid, "data")?; // more than half the queue
    /// }
    /// let started = Instant::now();
    /// room.wait(Duration::from_millis(50)); // nobody takes them: the timeout passes
    /// assert!(started.elapsed() >= Duration::from_millis(50));
    /// sent(&mut queue); // the writer takes them
    /// room.wait(Duration::from_secs(5)); // room: at once
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait(&self, timeout: Duration) {
        let mut state = self.shared.lock();
        let half = self.shared.capacity / 2;
        state.room_waiters += 1;
        let (mut state, _) = self
            .shared
            .taken
            .wait_timeout_while(state, timeout, |state| {
                state.commands.len() > half && !state.receiver_gone
            })
            .unwrap_or_else(PoisonError::into_inner);
        state.room_waiters -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use switchboard_core::ws::Message;

    fn send(n: u8) -> WsCommand {
        WsCommand::Send(Message::Binary(vec![n].into()))
    }

    fn number(command: WsCommand) -> u8 {
        match command {
            WsCommand::Send(Message::Binary(data)) => data[0],
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn in_order_bounded_and_closed_when_the_sender_goes() {
        let (mut tx, mut rx) = ws_queue(2);
        assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
        tx.try_send(send(1)).unwrap();
        tx.try_send(send(2)).unwrap();
        assert_eq!(tx.try_send(send(3)).unwrap_err(), SendFailure::Full);
        assert_eq!(number(rx.try_recv().unwrap()), 1);
        // The batch is taken: room again for two.
        tx.try_send(send(3)).unwrap();
        tx.try_send(send(4)).unwrap();
        drop(tx);
        let rest: Vec<u8> = futures_executor::block_on_stream(rx).map(number).collect();
        assert_eq!(rest, [2, 3, 4]);
    }

    #[test]
    fn no_wake_while_busy_and_the_queue_is_taken_after() {
        struct CountWakes(std::sync::atomic::AtomicUsize);
        impl std::task::Wake for CountWakes {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let (mut tx, mut rx) = ws_queue(4);
        let wakes = Arc::new(CountWakes(0.into()));
        let waker = std::task::Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut rx).poll_next(&mut cx).is_pending());
        rx.while_busy(|| tx.try_send(send(1)).unwrap());
        assert_eq!(wakes.0.load(std::sync::atomic::Ordering::SeqCst), 0);
        assert_eq!(number(rx.try_recv().unwrap()), 1);
        // Not busy any more: a send wakes the waiting task.
        assert!(Pin::new(&mut rx).poll_next(&mut cx).is_pending());
        tx.try_send(send(2)).unwrap();
        assert_eq!(wakes.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        // A panic inside clears the flag too.
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rx.while_busy(|| panic!("handler failed"))
        }));
        assert!(caught.is_err());
        assert_eq!(number(rx.try_recv().unwrap()), 2);
        assert!(Pin::new(&mut rx).poll_next(&mut cx).is_pending());
        tx.try_send(send(3)).unwrap();
        assert_eq!(wakes.0.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[test]
    fn a_reader_waits_for_room_until_the_writer_takes_a_batch() {
        let (mut tx, mut rx) = ws_queue(4);
        assert_eq!(rx.burst_limit(), 2);
        let room = rx.room();
        for n in 0..4 {
            tx.try_send(send(n)).unwrap();
        }
        let started = std::time::Instant::now();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            assert_eq!(number(rx.try_recv().unwrap()), 0);
            rx
        });
        room.wait(Duration::from_secs(10));
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(40),
            "returned before the batch was taken"
        );
        assert!(
            waited < Duration::from_secs(5),
            "not woken when the batch was taken"
        );
        // Room: no wait; and none once the receiver is gone.
        room.wait(Duration::from_secs(10));
        drop(writer.join().unwrap());
        for n in 0..4 {
            let _ = tx.try_send(send(n));
        }
        let started = std::time::Instant::now();
        room.wait(Duration::from_secs(10));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_task_watching_for_the_end_is_woken_when_the_sender_goes() {
        struct CountWakes(std::sync::atomic::AtomicUsize);
        impl std::task::Wake for CountWakes {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let (mut tx, mut rx) = ws_queue(4);
        let wakes = Arc::new(CountWakes(0.into()));
        let waker = std::task::Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        tx.try_send(send(1)).unwrap();
        assert!(rx.poll_ended(&mut cx).is_pending());
        drop(tx);
        assert_eq!(wakes.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(rx.poll_ended(&mut cx).is_ready());
        // What was queued before is still there.
        assert_eq!(number(rx.try_recv().unwrap()), 1);
        assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Closed);
        assert!(rx.poll_ended(&mut cx).is_ready());
    }

    #[test]
    fn a_gone_receiver_refuses_and_a_waiting_one_is_woken() {
        let (mut tx, mut rx) = ws_queue(4);
        let waiter = std::thread::spawn(move || {
            let first = futures_executor::block_on(rx.next()).map(number);
            (first, rx)
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        tx.try_send(send(7)).unwrap();
        let (first, rx) = waiter.join().unwrap();
        assert_eq!(first, Some(7));
        drop(rx);
        assert_eq!(tx.try_send(send(8)).unwrap_err(), SendFailure::Gone);
    }
}
