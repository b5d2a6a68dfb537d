//! Blocking WebSocket server and client.
//!
//! A [`WebSocket`] is one connection: its thread reads with
//! [`WebSocket::recv`] (or iterates it), and anyone writes, the connection
//! itself with [`WebSocket::send`] or other threads through a cloneable
//! [`Sender`]. Servers take connections with [`serve`] (an accept loop, a
//! thread per connection) or [`accept`] (a stream the application accepted
//! itself); clients [`connect`].
//!
//! ```
//! use switchboard_threads::ws::{self, Config, Message};
//!
//! let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! let addr = listener.local_addr()?;
//! std::thread::spawn(move || ws::serve(listener, Config::default(), ws::echo));
//!
//! let mut socket = ws::connect(&format!("ws://{addr}/"))?;
//! socket.send(Message::text("hello"))?;
//! assert_eq!(socket.recv().unwrap()?, Message::text("hello"));
//! socket.close(None)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Keep-alive
//!
//! With [`Config::keepalive`], a side pings its peer every interval and
//! fails the connection when no pong comes within the timeout
//! ([`ProtocolError::KeepAliveTimeout`]); its timers run while a thread
//! waits in [`WebSocket::recv`], and while a send waits for a full socket
//! (a peer that reads nothing then fails that send with [`Error::Closed`]).
//! Pings are answered on their own; both are handed to the application
//! too.
//!
//! ```
//! use std::time::Duration;
//! use switchboard_threads::ws::{self, Config, KeepAlive, Message};
//!
//! let keepalive = KeepAlive {
//!     interval: Duration::from_millis(50),
//!     timeout: Duration::from_secs(5),
//! };
//! let config = Config { keepalive: Some(keepalive), ..Config::default() };
//! # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! # let addr = listener.local_addr()?;
//! std::thread::spawn(move || ws::serve(listener, config, ws::echo));
//!
//! // A quiet client: the server's ping arrives (and is answered).
//! let mut socket = ws::connect(&format!("ws://{addr}/"))?;
//! assert!(matches!(socket.recv().unwrap()?, Message::Ping(_)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use switchboard_core::http::{HeadReader, Limits, Request};
pub use switchboard_core::ws::handshake::WsUrl;
use switchboard_core::ws::handshake::{self, ClientHandshake, HandshakeError, Rejection};
pub use switchboard_core::ws::{
    CloseCode, CloseFrame, Config, DeflateConfig, KeepAlive, Message, OriginPolicy, ProtocolError,
    SendError, Text,
};
use switchboard_core::ws::{Connection, Role};

use crate::accept::accept_loop;

mod watch;

/// Anything that can go wrong on a WebSocket: the same type on every
/// runtime.
///
/// ```
/// use switchboard_threads::ws::{self, Config, Error, Message};
/// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # let addr = listener.local_addr()?;
/// # std::thread::spawn(move || ws::serve(listener, Config::default(), ws::echo));
/// let mut socket = ws::connect(&format!("ws://{addr}/"))?;
/// socket.close(None)?;
/// assert!(matches!(socket.send(Message::text("too late")), Err(Error::Closed)));
/// // This adapter has no TLS.
/// assert!(matches!(ws::connect("wss://example.com/"), Err(Error::Handshake(_))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub use switchboard_async::Error;

struct Writer {
    conn: Connection,
    stream: TcpStream,
    transport_closed: bool,
    reading: Reading,
    /// The write timeout last set on `stream` (see [`WRITE_SLICE`]).
    write_timeout: Option<Duration>,
}

/// The longest a blocked write waits before the connection's timers get a
/// look (sooner when one is due sooner): a sender stuck on a peer that
/// reads nothing still meets the keep-alive and close timeouts, and sees
/// the reader's end of stream.
const WRITE_SLICE: Duration = Duration::from_millis(100);

/// Whether the connection's reader waits in a read, and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// It does not: it takes the core's next deadline before it reads.
    No,
    /// It does, or is about to, with a read timeout at this deadline (none:
    /// no timeout) or a watch at it ([`watch`]): the core's timers run by
    /// then.
    Until(Option<Instant>),
}

impl Writer {
    /// Writes the core's transmit buffer out, blocking while the socket is
    /// full: this is the backpressure senders feel. The connection's timers
    /// run while it blocks: when one that is due leaves the connection
    /// done (a keep-alive that failed, a close that timed out), it gives up
    /// with [`Error::Closed`] and closes the transport. An end of stream
    /// the reader met meanwhile (`peer_ended`) is the core's too, and so is
    /// a close another thread asked for meanwhile ([`close_on`]): it is
    /// started behind what is queued, so its timeout bounds the wait. Once
    /// the transport is closed nothing is written (its callers look at
    /// `transport_closed`).
    fn flush(&mut self, signals: &Signals) -> Result<(), Error> {
        self.flush_waiting(signals, |_| {})
    }

    /// [`flush`](Self::flush), handing the connection to `on_wait` each
    /// time the socket took nothing for a write slice, before its timers
    /// run: a sender that learns elsewhere that the connection is done (an
    /// Engine.IO session closed meanwhile) starts its close there, so the
    /// close timeout bounds the wait.
    fn flush_waiting(
        &mut self,
        signals: &Signals,
        mut on_wait: impl FnMut(&mut Connection),
    ) -> Result<(), Error> {
        // The timeout holds until the timers run again, after a wait.
        let mut bounded = false;
        while !self.transport_closed && !self.conn.transmit().is_empty() {
            if !bounded {
                self.bound_write()?;
                bounded = true;
            }
            let mut slices = [io::IoSlice::new(&[]); 8];
            let count = self.conn.transmit_vectored(&mut slices);
            match self.stream.write_vectored(&slices[..count]) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                Ok(n) => self.conn.advance_transmit(n),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    bounded = false;
                    let now = Instant::now();
                    on_wait(&mut self.conn);
                    if let Some(frame) = signals.take_close_request() {
                        // Refused only when already closing: nothing to do.
                        let _ = self.conn.close(frame);
                    }
                    if signals.peer_ended.load(Ordering::Acquire) {
                        self.conn.handle_eof();
                    }
                    let due = self.conn.poll_timeout().is_some_and(|at| at <= now);
                    self.conn.handle_timeout(now);
                    if due && self.conn.should_close_transport() {
                        self.close_transport();
                        return Err(Error::Closed);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Sets the socket's write timeout to [`WRITE_SLICE`], or to the core's
    /// next deadline when that comes sooner (only when that changes it
    /// much: a busy connection makes no extra system call per write).
    fn bound_write(&mut self) -> io::Result<()> {
        let now = Instant::now();
        let wanted = self.conn.poll_timeout().map_or(WRITE_SLICE, |at| {
            at.saturating_duration_since(now)
                .clamp(Duration::from_millis(1), WRITE_SLICE)
        });
        if self
            .write_timeout
            .is_none_or(|set| set > wanted || set < wanted / 2)
        {
            self.stream.set_write_timeout(Some(wanted))?;
            self.write_timeout = Some(wanted);
        }
        Ok(())
    }

    fn close_transport_if_due(&mut self) {
        if !self.transport_closed
            && self.conn.should_close_transport()
            && self.conn.transmit().is_empty()
        {
            self.close_transport();
        }
    }

    /// Closes the socket: a read blocked on it (the reader's) returns.
    fn close_transport(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        self.transport_closed = true;
    }

    /// Hands the core's next deadline to the deadline watcher if it comes
    /// before the reader's read times out: a sender that started a close
    /// (which arms the close timeout) while the reader waits in a read, on
    /// a peer that then sends nothing, would otherwise leave the
    /// connection open for good.
    fn watch_deadline_for_reader(&mut self, shared: &Arc<Shared>) {
        if self.transport_closed {
            return;
        }
        if let Reading::Until(until) = self.reading
            && let Some(at) = self.conn.poll_timeout()
            && until.is_none_or(|until| at < until)
        {
            self.reading = Reading::Until(Some(at));
            watch::watch(at, Arc::downgrade(shared));
        }
    }
}

/// What a [`WebSocket`] and its [`Sender`]s share.
struct Shared {
    writer: Mutex<Writer>,
    /// Set by the deadline watcher before it tries `writer`'s lock: if that
    /// was held, whoever held it hands the deadline back once it lets go
    /// ([`hand_back_missed_deadline`]), so the watcher never blocks on a
    /// connection (a sender may hold the lock while the socket is full).
    deadline_missed: AtomicBool,
    /// What other threads tell a writer that holds `writer`'s lock.
    signals: Signals,
}

/// What a writer blocked on a full socket (holding the writer's lock)
/// learns from other threads, between write slices.
#[derive(Default)]
struct Signals {
    /// Set by the reader when its read met the end of stream, before it
    /// waits for `writer`'s lock: a sender blocked writing to a peer that
    /// shut its side down and reads nothing learns it there.
    peer_ended: AtomicBool,
    /// A close a [`Sender::close`] (or [`WebSocket::close`]) asked for
    /// before it waits for `writer`'s lock ([`close_on`]): a sender blocked
    /// writing to a peer that reads nothing starts it, so the close timeout
    /// ends that write (without keep-alive, nothing else would) and the
    /// close does not wait for the lock for good.
    close_request: Mutex<Option<Option<CloseFrame>>>,
}

impl Signals {
    fn close_request(&self) -> MutexGuard<'_, Option<Option<CloseFrame>>> {
        self.close_request
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The close asked for, if any: the taker starts it.
    fn take_close_request(&self) -> Option<Option<CloseFrame>> {
        self.close_request().take()
    }
}

/// The deadline watcher's call at a deadline it was handed: runs the
/// core's timers in place of a reader that waits in a read past them, and
/// closes the transport if the core says so, which ends that read.
fn at_deadline(shared: &Arc<Shared>, now: Instant) {
    // Both sides swap (read-modify-write): a holder that lets go of the
    // lock before the `try_lock` below then sees the flag, or this sees
    // the lock free.
    shared.deadline_missed.swap(true, Ordering::AcqRel);
    let mut writer = match shared.writer.try_lock() {
        Ok(writer) => writer,
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(TryLockError::WouldBlock) => return,
    };
    shared.deadline_missed.store(false, Ordering::Release);
    if writer.transport_closed {
        return;
    }
    writer.conn.handle_timeout(now);
    if writer.conn.should_close_transport() {
        // Nobody writes (this holds the lock) and the reader waits in a
        // read: what may still be queued would not go out either.
        writer.close_transport();
        return;
    }
    if let Reading::Until(_) = writer.reading {
        // The reader's own timeout is not known here: watch the next
        // deadline anyway (at worst both wake for it).
        writer.reading = Reading::Until(None);
        writer.watch_deadline_for_reader(shared);
    }
}

/// After letting go of the writer's lock: hands back a deadline the
/// watcher met while the lock was held.
fn hand_back_missed_deadline(shared: &Arc<Shared>) {
    if shared.deadline_missed.swap(false, Ordering::AcqRel) {
        watch::watch(Instant::now(), Arc::downgrade(shared));
    }
}

/// The next decoded event as the application gets it, once what decoding
/// queued (automatic pongs, a failure's close frame) is written out; a
/// failed write ends the connection (`finished`). With `hold_failure`, a
/// failure is handed over first, its close frame going out with the next
/// write ([`WebSocket::hold_failure_close`]).
fn take_event(
    writer: &mut Writer,
    signals: &Signals,
    finished: &mut bool,
    hold_failure: bool,
) -> Option<Result<Message, Error>> {
    let event = writer.conn.poll_event()?.into_result().map_err(Error::from);
    if hold_failure && event.is_err() {
        return Some(event);
    }
    let flushed = writer.flush(signals);
    writer.close_transport_if_due();
    if let Err(e) = flushed {
        *finished = true;
        return Some(Err(e));
    }
    Some(event)
}

fn lock(shared: &Shared) -> MutexGuard<'_, Writer> {
    shared
        .writer
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn send_on(shared: &Arc<Shared>, message: Message) -> Result<(), Error> {
    send_all_on(shared, std::iter::once(message))
}

/// Queues `messages` and writes them out together: one lock, one clock read
/// and (while the socket takes it) one write.
fn send_all_on(
    shared: &Arc<Shared>,
    messages: impl IntoIterator<Item = Message>,
) -> Result<(), Error> {
    send_all_waiting_on(shared, messages, |_| {})
}

/// [`send_all_on`], with `on_wait` called while the socket takes nothing
/// (see [`Writer::flush_waiting`]).
fn send_all_waiting_on(
    shared: &Arc<Shared>,
    messages: impl IntoIterator<Item = Message>,
    on_wait: impl FnMut(&mut Connection),
) -> Result<(), Error> {
    send_locked(shared, lock(shared), messages, on_wait)
}

/// Starts the close handshake with `frame`. The close is asked for before
/// the writer's lock is waited for: a sender that holds the lock, blocked
/// on a peer that reads nothing, starts it itself (see [`Signals`]), and
/// then this has nothing more to do.
fn close_on(shared: &Arc<Shared>, frame: Option<CloseFrame>) -> Result<(), Error> {
    *shared.signals.close_request() = Some(frame);
    let writer = lock(shared);
    let Some(frame) = shared.signals.take_close_request() else {
        drop(writer);
        hand_back_missed_deadline(shared);
        return Ok(());
    };
    send_locked(
        shared,
        writer,
        std::iter::once(Message::Close(frame)),
        |_| {},
    )
}

/// [`send_all_waiting_on`] with the writer's lock already taken.
fn send_locked(
    shared: &Arc<Shared>,
    mut writer: MutexGuard<'_, Writer>,
    messages: impl IntoIterator<Item = Message>,
    on_wait: impl FnMut(&mut Connection),
) -> Result<(), Error> {
    if writer.transport_closed {
        return Err(Error::Closed);
    }
    let mut sent = Ok(());
    for message in messages {
        if let Err(error) = writer.conn.send(message) {
            // What was queued before the failing message still goes out.
            sent = Err(error);
            break;
        }
    }
    // Timers armed by what was sent (a close's timeout) start now.
    writer.conn.handle_timeout(Instant::now());
    let flushed = writer.flush_waiting(&shared.signals, on_wait);
    if flushed.is_ok() {
        writer.close_transport_if_due();
    }
    writer.watch_deadline_for_reader(shared);
    drop(writer);
    hand_back_missed_deadline(shared);
    sent?;
    flushed?;
    Ok(())
}

/// A cloneable handle that sends on a [`WebSocket`] from any thread
/// ([`WebSocket::sender`]), while the connection's own thread blocks in
/// [`recv`](WebSocket::recv). Each thread's messages go out in the order
/// it sent them.
///
/// ```
/// use switchboard_threads::ws::{self, Message};
/// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # let addr = listener.local_addr()?;
/// # std::thread::spawn(move || ws::serve(listener, ws::Config::default(), ws::echo));
/// let mut socket = ws::connect(&format!("ws://{addr}/"))?;
/// let writers: Vec<_> = (0..2)
///     .map(|i| {
///         let sender = socket.sender();
///         std::thread::spawn(move || sender.send(Message::text(format!("from thread {i}"))))
///     })
///     .collect();
/// for writer in writers {
///     writer.join().unwrap()?;
/// }
/// // The echoes, in whichever order the threads sent.
/// let mut echoes = Vec::new();
/// for _ in 0..2 {
///     echoes.push(socket.recv().unwrap()?.as_text().unwrap().to_owned());
/// }
/// echoes.sort();
/// assert_eq!(echoes, ["from thread 0", "from thread 1"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Sender {
    shared: Arc<Shared>,
}

impl Sender {
    /// Sends a message, blocking while the socket's send buffer is full.
    ///
    /// ```
    /// use switchboard_threads::ws::{self, Message};
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = listener.local_addr()?;
    /// # std::thread::spawn(move || ws::serve(listener, ws::Config::default(), ws::echo));
    /// let mut socket = ws::connect(&format!("ws://{addr}/"))?;
    /// let sender = socket.sender();
    /// std::thread::spawn(move || sender.send(Message::text("from elsewhere")));
    /// assert_eq!(socket.recv().unwrap()?, Message::text("from elsewhere"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send(&self, message: impl Into<Message>) -> Result<(), Error> {
        send_on(&self.shared, message.into())
    }

    /// Sends several messages, in order, in one write (blocking while the
    /// socket's send buffer is full): cheaper than one [`send`](Self::send)
    /// each when they are ready together.
    ///
    /// ```
    /// use switchboard_threads::ws::{self, Message};
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = listener.local_addr()?;
    /// # std::thread::spawn(move || ws::serve(listener, ws::Config::default(), ws::echo));
    /// let mut socket = ws::connect(&format!("ws://{addr}/"))?;
    /// let sender = socket.sender();
    /// sender.send_all((0..3).map(|i| Message::text(format!("part {i}"))))?;
    /// for i in 0..3 {
    ///     assert_eq!(socket.recv().unwrap()?, Message::text(format!("part {i}")));
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_all(&self, messages: impl IntoIterator<Item = Message>) -> Result<(), Error> {
        send_all_on(&self.shared, messages)
    }

    /// [`send_all`](Self::send_all), handing the connection to `on_wait`
    /// whenever the socket has taken nothing for a while (at most 100 ms),
    /// before its timers run: the Engine.IO writer starts the close there
    /// once its session closed, as the session's close otherwise waits
    /// behind a write that a peer reading nothing never lets finish.
    pub(crate) fn send_all_waiting(
        &self,
        messages: impl IntoIterator<Item = Message>,
        on_wait: impl FnMut(&mut Connection),
    ) -> Result<(), Error> {
        send_all_waiting_on(&self.shared, messages, on_wait)
    }

    /// Starts the close handshake; the [`WebSocket`]'s `recv` sees it end
    /// (at the latest at the close timeout, if the peer does not answer).
    ///
    /// ```
    /// use switchboard_threads::ws::{self, CloseCode, CloseFrame, Message};
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = listener.local_addr()?;
    /// # std::thread::spawn(move || ws::serve(listener, ws::Config::default(), ws::echo));
    /// let mut socket = ws::connect(&format!("ws://{addr}/"))?;
    /// let sender = socket.sender();
    /// std::thread::spawn(move || sender.close(Some(CloseFrame::new(CloseCode::NORMAL, "bye"))));
    /// // The reading thread gets the peer's answer (its status code), then the end.
    /// let answer = CloseFrame::new(CloseCode::NORMAL, "");
    /// assert_eq!(socket.recv().unwrap()?, Message::Close(Some(answer)));
    /// assert!(socket.recv().is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(&self, frame: Option<CloseFrame>) -> Result<(), Error> {
        close_on(&self.shared, frame)
    }
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

/// A blocking WebSocket connection.
///
/// [`recv`](Self::recv) blocks for the next message (answering pings and
/// keeping timers meanwhile); [`send`](Self::send) and every [`Sender`]
/// write at once, blocking while the socket is full. Iterating a
/// `WebSocket` calls `recv` until the connection ends.
///
/// ```
/// use switchboard_threads::ws::{self, Message};
/// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # let addr = listener.local_addr()?;
/// # std::thread::spawn(move || ws::serve(listener, ws::Config::default(), ws::echo));
/// let mut socket = ws::connect(&format!("ws://{addr}/"))?;
/// socket.send(Message::text("one"))?;
/// socket.send(Message::binary(vec![2u8]))?;
/// socket.sender().close(None)?;
/// // The echoes, the server's close frame, then the end.
/// let received = socket.by_ref().collect::<Result<Vec<_>, _>>()?;
/// assert_eq!(received, [Message::text("one"), Message::binary(vec![2u8]), Message::Close(None)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct WebSocket {
    reader: TcpStream,
    shared: Arc<Shared>,
    protocol: Option<String>,
    finished: bool,
    /// See [`hold_failure_close`](Self::hold_failure_close).
    hold_failure: bool,
    /// The read timeout last set on `reader`, to set it only when it changes.
    read_timeout: Option<Duration>,
}

thread_local! {
    /// What `recv` reads into: one per thread (so per connection), zeroed
    /// once rather than on every call.
    static READ_BUF: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; 64 << 10].into_boxed_slice());
}

impl WebSocket {
    fn new(
        stream: TcpStream,
        conn: Connection,
        protocol: Option<String>,
        buffered: &[u8],
    ) -> Result<Self, Error> {
        let reader = stream.try_clone()?;
        let mut writer = Writer {
            conn,
            stream,
            transport_closed: false,
            reading: Reading::No,
            write_timeout: None,
        };
        let signals = Signals::default();
        writer.conn.handle_timeout(Instant::now());
        writer.conn.receive(buffered);
        writer.flush(&signals)?;
        Ok(Self {
            reader,
            shared: Arc::new(Shared {
                writer: Mutex::new(writer),
                deadline_missed: AtomicBool::new(false),
                signals,
            }),
            protocol,
            finished: false,
            hold_failure: false,
            read_timeout: None,
        })
    }

    /// From now on a failure (the peer broke the protocol) is handed over
    /// before its close frame (1002, 1007, 1009) is written: the frame goes
    /// out with the next [`recv`](Self::recv) or send. The Engine.IO pump
    /// closes the session in between, so a client that reads the close
    /// frame finds its session closed.
    pub(crate) fn hold_failure_close(&mut self) {
        self.hold_failure = true;
    }

    /// The sub-protocol agreed in the handshake: the first one in the
    /// client's [`Config::protocols`] that the server supports.
    ///
    /// ```
    /// use switchboard_threads::ws::{self, Config};
    /// let protocols = |names: &[&str]| Config {
    ///     protocols: names.iter().map(|name| name.to_string()).collect(),
    ///     ..Config::default()
    /// };
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = listener.local_addr()?;
    /// let server = protocols(&["chat"]);
    /// std::thread::spawn(move || ws::serve(listener, server, ws::echo));
    /// let url = format!("ws://{addr}/");
    /// let socket = ws::connect_with_config(&url, protocols(&["chat.v2", "chat"]))?;
    /// assert_eq!(socket.protocol(), Some("chat"));
    /// assert_eq!(ws::connect(&url)?.protocol(), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// Whether permessage-deflate is in use: by default clients offer it
    /// and servers accept it ([`Config::deflate`]).
    ///
    /// ```
    /// use switchboard_threads::ws::{self, Config};
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = listener.local_addr()?;
    /// # std::thread::spawn(move || ws::serve(listener, ws::Config::default(), ws::echo));
    /// let url = format!("ws://{addr}/");
    /// assert!(ws::connect(&url)?.is_compressed());
    /// let plain = Config { deflate: None, ..Config::default() };
    /// assert!(!ws::connect_with_config(&url, plain)?.is_compressed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_compressed(&self) -> bool {
        lock(&self.shared).conn.is_compressed()
    }

    /// A cloneable sender for other threads (see [`Sender`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_threads::ws::{self, Message};
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = listener.local_addr()?;
    /// # std::thread::spawn(move || ws::serve(listener, ws::Config::default(), ws::echo));
    /// let mut socket = ws::connect(&format!("ws://{addr}/"))?;
    /// // A ticker thread writes while this one reads.
    /// let sender = socket.sender();
    /// std::thread::spawn(move || {
    ///     for _ in 0..2 {
    ///         let _ = sender.send(Message::text("tick"));
    ///         std::thread::sleep(Duration::from_millis(10));
    ///     }
    /// });
    /// assert_eq!(socket.recv().unwrap()?, Message::text("tick"));
    /// assert_eq!(socket.recv().unwrap()?, Message::text("tick"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sender(&self) -> Sender {
        Sender {
            shared: self.shared.clone(),
        }
    }

    /// Sends a message, blocking while the socket's send buffer is full.
    ///
    /// ```
    /// use switchboard_threads::ws::{self, Message};
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = listener.local_addr()?;
    /// # std::thread::spawn(move || ws::serve(listener, ws::Config::default(), ws::echo));
    /// let mut socket = ws::connect(&format!("ws://{addr}/"))?;
    /// socket.send(Message::text("text"))?;
    /// socket.send(Message::binary(vec![1u8, 2, 3]))?;
    /// assert_eq!(socket.recv().unwrap()?, Message::text("text"));
    /// assert_eq!(socket.recv().unwrap()?, Message::binary(vec![1u8, 2, 3]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send(&self, message: impl Into<Message>) -> Result<(), Error> {
        send_on(&self.shared, message.into())
    }

    /// Sends several messages, in order, in one write; see
    /// [`Sender::send_all`].
    ///
    /// ```
    /// use switchboard_threads::ws::{self, Message};
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = listener.local_addr()?;
    /// # std::thread::spawn(move || ws::serve(listener, ws::Config::default(), ws::echo));
    /// let mut socket = ws::connect(&format!("ws://{addr}/"))?;
    /// socket.send_all([Message::text("a"), Message::text("b")])?;
    /// assert_eq!(socket.recv().unwrap()?, Message::text("a"));
    /// assert_eq!(socket.recv().unwrap()?, Message::text("b"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_all(&self, messages: impl IntoIterator<Item = Message>) -> Result<(), Error> {
        send_all_on(&self.shared, messages)
    }

    /// The next message already received and decoded, without reading:
    /// `None` when the next one needs a read. After [`recv`](Self::recv),
    /// this gathers the rest of the same read to handle as one batch.
    ///
    /// ```
    /// use switchboard_threads::ws::{self, Message};
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = listener.local_addr()?;
    /// # std::thread::spawn(move || ws::serve(listener, ws::Config::default(), ws::echo));
    /// let mut socket = ws::connect(&format!("ws://{addr}/"))?;
    /// socket.send_all((0..10).map(|i| Message::text(i.to_string())))?;
    /// let mut received = Vec::new();
    /// while received.len() < 10 {
    ///     // One blocking read, then whatever else it brought.
    ///     let mut batch = vec![socket.recv().unwrap()?];
    ///     while let Some(message) = socket.next_buffered() {
    ///         batch.push(message?);
    ///     }
    ///     received.extend(batch);
    /// }
    /// assert_eq!(received[9], Message::text("9"));
    /// // Nothing more was read: the next message needs a read.
    /// assert!(socket.next_buffered().is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn next_buffered(&mut self) -> Option<Result<Message, Error>> {
        take_event(
            &mut lock(&self.shared),
            &self.shared.signals,
            &mut self.finished,
            self.hold_failure,
        )
    }

    /// Starts the close handshake and waits (up to the close timeout) for it
    /// to finish. Messages that arrive meanwhile are dropped.
    ///
    /// ```
    /// use switchboard_threads::ws::{self, CloseCode, CloseFrame, Error, Message};
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = listener.local_addr()?;
    /// # std::thread::spawn(move || ws::serve(listener, ws::Config::default(), ws::echo));
    /// let mut socket = ws::connect(&format!("ws://{addr}/"))?;
    /// socket.close(Some(CloseFrame::new(CloseCode::NORMAL, "done")))?;
    /// // The handshake is over and the connection gone.
    /// assert!(socket.recv().is_none());
    /// assert!(matches!(socket.send(Message::text("late")), Err(Error::Closed)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        close_on(&self.shared, frame)?;
        while let Some(item) = self.recv() {
            if let Err(error) = item {
                tracing::debug!(%error, "error while closing");
            }
        }
        Ok(())
    }

    /// Blocks for the next message; `None` once the connection is closed.
    /// Besides text and binary messages it hands over the control frames
    /// it saw (pings, already answered; pongs; the peer's close frame), and
    /// the error that failed the connection, if one did.
    ///
    /// ```
    /// use switchboard_threads::ws::{self, CloseCode, CloseFrame, Config, Message, WebSocket};
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = listener.local_addr()?;
    /// std::thread::spawn(move || ws::serve(listener, Config::default(), |mut ws: WebSocket| {
    ///     let _ = ws.send(Message::text("welcome"));
    ///     let _ = ws.close(Some(CloseFrame::new(CloseCode::NORMAL, "done")));
    /// }));
    /// let mut socket = ws::connect(&format!("ws://{addr}/"))?;
    /// assert_eq!(socket.recv().unwrap()?, Message::text("welcome"));
    /// let frame = CloseFrame::new(CloseCode::NORMAL, "done");
    /// assert_eq!(socket.recv().unwrap()?, Message::Close(Some(frame)));
    /// assert!(socket.recv().is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv(&mut self) -> Option<Result<Message, Error>> {
        loop {
            let timeout = {
                let mut writer = lock(&self.shared);
                let signals = &self.shared.signals;
                let hold = self.hold_failure;
                if let Some(item) = take_event(&mut writer, signals, &mut self.finished, hold) {
                    return Some(item);
                }
                if self.finished {
                    return None;
                }
                let now = Instant::now();
                writer.conn.handle_timeout(now);
                if let Err(e) = writer.flush(signals) {
                    self.finished = true;
                    return Some(Err(e));
                }
                writer.close_transport_if_due();
                if writer.transport_closed {
                    self.finished = true;
                    continue;
                }
                // Under the same lock: a sender that moves the deadline
                // earlier from now on has it watched.
                let deadline = writer.conn.poll_timeout();
                writer.reading = Reading::Until(deadline);
                deadline.map(|at| {
                    at.saturating_duration_since(now)
                        .max(Duration::from_millis(1))
                })
            };
            if timeout != self.read_timeout {
                if let Err(e) = self.reader.set_read_timeout(timeout) {
                    return Some(Err(e.into()));
                }
                self.read_timeout = timeout;
            }
            let (read, mut writer) = READ_BUF.with_borrow_mut(|buf| {
                let read = self.reader.read(buf);
                if let Ok(0) = read {
                    // Before the lock, which a sender blocked on this peer
                    // may hold: it sees the end there.
                    self.shared
                        .signals
                        .peer_ended
                        .store(true, Ordering::Release);
                }
                let mut writer = lock(&self.shared);
                writer.reading = Reading::No;
                if let Ok(n @ 1..) = read {
                    writer.conn.receive(&buf[..n]);
                }
                (read, writer)
            });
            match read {
                Ok(0) => writer.conn.handle_eof(),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    if writer.transport_closed {
                        self.finished = true;
                        continue;
                    }
                    self.finished = true;
                    writer.transport_closed = true;
                    return Some(Err(e.into()));
                }
            }
        }
    }
}

impl Iterator for WebSocket {
    type Item = Result<Message, Error>;
    fn next(&mut self) -> Option<Self::Item> {
        self.recv()
    }
}

impl std::fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocket")
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

fn limits(config: &Config) -> Limits {
    Limits {
        max_head_size: config.max_head_size,
        max_headers: config.max_headers,
    }
}

/// Reads until `deadline` bounded blocking reads, mapping a timeout to
/// [`Error::HandshakeTimeout`].
/// When a handshake starting now must be done: `None` (never) for a
/// timeout too long to reach an `Instant`.
fn handshake_deadline(config: &Config) -> Option<Instant> {
    Instant::now().checked_add(config.handshake_timeout)
}

/// The time left before `deadline`; a deadline passed is the handshake's
/// timeout.
fn left_before(deadline: Option<Instant>) -> Result<Option<Duration>, Error> {
    match deadline.map(|at| at.saturating_duration_since(Instant::now())) {
        Some(left) if left.is_zero() => Err(Error::HandshakeTimeout),
        left => Ok(left),
    }
}

fn read_before(
    stream: &mut TcpStream,
    buf: &mut [u8],
    deadline: Option<Instant>,
) -> Result<usize, Error> {
    stream.set_read_timeout(left_before(deadline)?)?;
    match stream.read(buf) {
        Ok(0) => Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
        Ok(n) => Ok(n),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Err(Error::HandshakeTimeout)
        }
        Err(e) => Err(e.into()),
    }
}

fn refuse(stream: &mut TcpStream, rejection: Rejection) -> Error {
    tracing::debug!(%rejection, "refusing WebSocket handshake");
    let _ = stream.write_all(&rejection.to_response());
    let _ = stream.shutdown(Shutdown::Both);
    rejection.into()
}

/// Reads an HTTP request head from `stream` within the handshake timeout.
/// Returns it with the bytes that came after it. With [`accept_request`],
/// this lets the application look at the request (its path, query and
/// headers) before it accepts the connection, or answers it itself.
///
/// ```
/// use std::io::Write;
/// use std::sync::Arc;
/// use switchboard_threads::ws::{self, Config, Message};
/// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # let addr = listener.local_addr()?;
/// std::thread::spawn(move || {
///     let config = Arc::new(Config::default());
///     for mut stream in listener.incoming().flatten() {
///         let config = config.clone();
///         std::thread::spawn(move || -> Result<(), ws::Error> {
///             let (request, rest) = ws::read_request(&mut stream, &config)?;
///             if request.path() == "/chat" {
///                 ws::echo(ws::accept_request(stream, &request, &rest, config)?);
///             } else {
///                 stream.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")?;
///             }
///             Ok(())
///         });
///     }
/// });
/// assert!(ws::connect(&format!("ws://{addr}/elsewhere")).is_err());
/// let mut socket = ws::connect(&format!("ws://{addr}/chat"))?;
/// socket.send(Message::text("hi"))?;
/// assert_eq!(socket.recv().unwrap()?, Message::text("hi"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_request(stream: &mut TcpStream, config: &Config) -> Result<(Request, Vec<u8>), Error> {
    let deadline = handshake_deadline(config);
    let mut reader = HeadReader::new(limits(config));
    let mut buf = [0u8; 2048];
    loop {
        let n = read_before(stream, &mut buf, deadline)?;
        match reader.push_request(&buf[..n]) {
            Ok(Some((request, rest))) => return Ok((request, rest.to_vec())),
            Ok(None) => {}
            Err(error) => return Err(refuse(stream, error.into())),
        }
    }
}

/// Completes the server handshake for a request the caller already read
/// (with [`read_request`], or its own HTTP server): `buffered` holds the
/// bytes read after the request head, which belong to the WebSocket. A
/// request that is not a valid upgrade, or that `config` refuses (its
/// origin, say), is answered with its error status and the stream closed.
///
/// ```
/// use std::sync::Arc;
/// use switchboard_threads::ws::{self, Config, Message};
/// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # let addr = listener.local_addr()?;
/// std::thread::spawn(move || -> Result<(), ws::Error> {
///     let config = Arc::new(Config::default());
///     let (mut stream, _) = listener.accept()?;
///     let (request, rest) = ws::read_request(&mut stream, &config)?;
///     let user = request.query_param("user").unwrap_or_default().into_owned();
///     let socket = ws::accept_request(stream, &request, &rest, config)?;
///     socket.send(Message::text(format!("hello, {user}")))
/// });
/// let mut socket = ws::connect(&format!("ws://{addr}/?user=ada"))?;
/// assert_eq!(socket.recv().unwrap()?, Message::text("hello, ada"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn accept_request(
    mut stream: TcpStream,
    request: &Request,
    buffered: &[u8],
    config: Arc<Config>,
) -> Result<WebSocket, Error> {
    match handshake::accept(request, &config) {
        Ok(accepted) => {
            stream.write_all(&accepted.response)?;
            stream.set_read_timeout(None)?;
            let conn = Connection::new(Role::Server, config, accepted.deflate);
            WebSocket::new(stream, conn, accepted.protocol, buffered)
        }
        Err(rejection) => Err(refuse(&mut stream, rejection)),
    }
}

/// Performs the server handshake on a stream the application accepted:
/// reads the request (within [`Config::handshake_timeout`]) and answers
/// it. Use [`read_request`] and [`accept_request`] to look at the request
/// first.
///
/// ```
/// use switchboard_threads::ws::{self, Config, Message};
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let addr = listener.local_addr()?;
/// // The application's own accept loop, a thread per connection (the
/// // handshake on it too, so that a slow client holds up no other).
/// std::thread::spawn(move || {
///     for stream in listener.incoming().flatten() {
///         std::thread::spawn(move || {
///             if let Ok(socket) = ws::accept(stream, Config::default()) {
///                 ws::echo(socket);
///             }
///         });
///     }
/// });
/// let mut socket = ws::connect(&format!("ws://{addr}/"))?;
/// socket.send(Message::text("hi"))?;
/// assert_eq!(socket.recv().unwrap()?, Message::text("hi"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn accept(mut stream: TcpStream, config: Config) -> Result<WebSocket, Error> {
    stream.set_nodelay(true)?;
    let (request, buffered) = read_request(&mut stream, &config)?;
    accept_request(stream, &request, &buffered, Arc::new(config))
}

/// Connects to a `ws://` URL with the default [`Config`]. `wss://` is
/// refused: this adapter has no TLS.
///
/// ```
/// use switchboard_threads::ws::{self, Message};
/// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # let addr = listener.local_addr()?;
/// # std::thread::spawn(move || ws::serve(listener, ws::Config::default(), ws::echo));
/// let mut socket = ws::connect(&format!("ws://{addr}/chat?room=1"))?;
/// socket.send(Message::text("hi"))?;
/// assert_eq!(socket.recv().unwrap()?, Message::text("hi"));
/// assert!(ws::connect("wss://example.com/").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn connect(url: &str) -> Result<WebSocket, Error> {
    connect_with_config(url, Config::default())
}

/// Connects to a `ws://` URL with the given settings (limits, timeouts,
/// sub-protocols, compression, keep-alive).
///
/// ```
/// use std::time::Duration;
/// use switchboard_threads::ws::{self, Config, KeepAlive, Message};
/// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # let addr = listener.local_addr()?;
/// # std::thread::spawn(move || ws::serve(listener, ws::Config::default(), ws::echo));
/// // Ping the server every 50 ms; give up if a pong takes more than 5 s.
/// let keepalive = KeepAlive {
///     interval: Duration::from_millis(50),
///     timeout: Duration::from_secs(5),
/// };
/// let config = Config { keepalive: Some(keepalive), ..Config::default() };
/// let mut socket = ws::connect_with_config(&format!("ws://{addr}/"), config)?;
/// // Waiting in `recv` runs the timer: the server's pong comes back.
/// assert!(matches!(socket.recv().unwrap()?, Message::Pong(_)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn connect_with_config(url: &str, config: Config) -> Result<WebSocket, Error> {
    let url = WsUrl::parse(url)?;
    if url.secure {
        return Err(HandshakeError::InvalidUrl("wss:// needs a TLS stream".into()).into());
    }
    let deadline = handshake_deadline(&config);
    let stream = connect_before(&url.host, url.port, deadline)?;
    stream.set_nodelay(true)?;
    client_handshake_before(stream, &url, Arc::new(config), &[], deadline)
}

/// Connects to the first of `host`'s addresses that answers, within the
/// handshake's `deadline`: a host that drops packets would otherwise hold
/// the caller for the system's connect timeout (minutes).
fn connect_before(host: &str, port: u16, deadline: Option<Instant>) -> Result<TcpStream, Error> {
    use std::net::ToSocketAddrs;
    if deadline.is_none() {
        return Ok(TcpStream::connect((host, port))?);
    }
    let mut failed = None;
    for addr in (host, port).to_socket_addrs()? {
        let Some(left) = left_before(deadline)? else {
            break;
        };
        match TcpStream::connect_timeout(&addr, left) {
            Ok(stream) => return Ok(stream),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(Error::HandshakeTimeout),
            Err(e) => failed = Some(e),
        }
    }
    Err(failed
        .unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the host has no address"))
        .into())
}

/// Performs the client handshake on a connected stream, with
/// `extra_headers` added to the request (`Authorization`, `Cookie`,
/// `Origin`...), within [`Config::handshake_timeout`].
///
/// ```
/// use std::net::TcpStream;
/// use std::sync::Arc;
/// use switchboard_threads::ws::WsUrl;
/// use switchboard_threads::ws::{self, Config, Message};
/// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # let addr = listener.local_addr()?;
/// # // Answers with the request's `Authorization` header.
/// # std::thread::spawn(move || -> Result<(), ws::Error> {
/// #     let config = Arc::new(Config::default());
/// #     let (mut stream, _) = listener.accept()?;
/// #     let (request, rest) = ws::read_request(&mut stream, &config)?;
/// #     let auth = request.headers.get("authorization").unwrap_or("").to_owned();
/// #     ws::accept_request(stream, &request, &rest, config)?.send(Message::text(auth))
/// # });
/// let url = WsUrl::parse(&format!("ws://{addr}/private"))?;
/// let stream = TcpStream::connect((url.host.as_str(), url.port))?;
/// let config = Arc::new(Config::default());
/// let headers = [("Authorization", "Bearer abc")];
/// let mut socket = ws::client_handshake(stream, &url, config, &headers)?;
/// assert_eq!(socket.recv().unwrap()?, Message::text("Bearer abc"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn client_handshake(
    stream: TcpStream,
    url: &WsUrl,
    config: Arc<Config>,
    extra_headers: &[(&str, &str)],
) -> Result<WebSocket, Error> {
    let deadline = handshake_deadline(&config);
    client_handshake_before(stream, url, config, extra_headers, deadline)
}

fn client_handshake_before(
    mut stream: TcpStream,
    url: &WsUrl,
    config: Arc<Config>,
    extra_headers: &[(&str, &str)],
    deadline: Option<Instant>,
) -> Result<WebSocket, Error> {
    let handshake = ClientHandshake::new(url, &config, extra_headers);
    stream.write_all(handshake.request())?;
    let mut reader = HeadReader::new(limits(&config));
    let mut buf = [0u8; 2048];
    let (response, buffered) = loop {
        let n = read_before(&mut stream, &mut buf, deadline)?;
        if let Some(done) = reader
            .push_response(&buf[..n])
            .map_err(HandshakeError::from)?
        {
            break done;
        }
    };
    let negotiated = handshake.finish(&response, &config)?;
    stream.set_read_timeout(None)?;
    let conn = Connection::new(Role::Client, config, negotiated.deflate);
    WebSocket::new(stream, conn, negotiated.protocol, &buffered)
}

/// Accepts connections on `listener` forever, one thread each, handing each
/// WebSocket to `handler` on its thread. At most
/// [`Config::max_connections`] are open at once; at the limit nothing more
/// is accepted until one closes. Accept errors, and a connection thread
/// that cannot be started (the connection is then closed), are logged and
/// retried after a short pause: this never returns.
///
/// ```
/// use switchboard_threads::ws::{self, Config, Message, WebSocket};
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let addr = listener.local_addr()?;
/// let config = Config { max_connections: 1_000, ..Config::default() };
/// // `serve` blocks for good: give it a thread.
/// std::thread::spawn(move || {
///     ws::serve(listener, config, |mut ws: WebSocket| {
///         // The connection's own thread: blocking here holds up no other
///         // connection.
///         while let Some(Ok(message)) = ws.recv() {
///             if let Some(text) = message.as_text() {
///                 let _ = ws.send(Message::text(text.to_uppercase()));
///             }
///         }
///     })
/// });
/// let mut socket = ws::connect(&format!("ws://{addr}/"))?;
/// socket.send(Message::text("shout"))?;
/// assert_eq!(socket.recv().unwrap()?, Message::text("SHOUT"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn serve<F>(listener: TcpListener, config: Config, handler: F) -> io::Result<()>
where
    F: Fn(WebSocket) + Send + Sync + 'static,
{
    let max_connections = config.max_connections;
    let config = Arc::new(config);
    accept_loop(
        &listener,
        max_connections,
        "switchboard-ws",
        move |mut stream| {
            let _ = stream.set_nodelay(true);
            let result = read_request(&mut stream, &config).and_then(|(request, buffered)| {
                accept_request(stream, &request, &buffered, config.clone())
            });
            match result {
                Ok(ws) => handler(ws),
                Err(error) => tracing::debug!(%error, "WebSocket handshake failed"),
            }
        },
    )
}

/// Echoes text and binary messages until the peer closes: a handler for
/// [`serve`] and for routes.
///
/// ```
/// use switchboard_threads::ws::{self, Config, Message};
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let addr = listener.local_addr()?;
/// std::thread::spawn(move || ws::serve(listener, Config::default(), ws::echo));
/// let mut socket = ws::connect(&format!("ws://{addr}/"))?;
/// socket.send(Message::binary(vec![1u8, 2, 3]))?;
/// assert_eq!(socket.recv().unwrap()?, Message::binary(vec![1u8, 2, 3]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn echo(mut ws: WebSocket) {
    while let Some(item) = ws.recv() {
        match item {
            Ok(message) if message.is_data() => {
                if ws.send(message).is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(error) => tracing::debug!(%error, "echo connection ended"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A handshake timeout too long for an `Instant` (a way to say "no
    /// timeout") is no timeout, on both sides, rather than a panic.
    #[test]
    fn a_handshake_timeout_past_the_end_of_time_is_none() {
        let forever = || Config {
            handshake_timeout: Duration::MAX,
            ..Config::default()
        };
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            let mut ws = accept(stream, forever()).expect("handshake");
            while let Some(Ok(message)) = ws.recv() {
                if ws.send(message).is_err() {
                    break;
                }
            }
        });
        let mut ws = connect_with_config(&format!("ws://{addr}/"), forever()).expect("connect");
        ws.send(Message::text("hi")).expect("send");
        assert_eq!(ws.recv().expect("open").expect("echo"), Message::text("hi"));
    }

    /// A [`Sender`] blocks writing to a peer that reads nothing (no
    /// keep-alive); the peer then shuts its side down. The reader meets the
    /// end of stream while the sender holds the connection's lock: the
    /// send still fails within the close timeout, and `recv` ends, instead
    /// of both threads waiting for good.
    #[test]
    fn a_send_blocked_on_a_peer_that_shut_down_fails() {
        use std::sync::atomic::AtomicUsize;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let sent = Arc::new(AtomicUsize::new(0));
        let counted = sent.clone();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            let config = Config {
                close_timeout: Duration::from_millis(300),
                keepalive: None,
                ..Config::default()
            };
            let mut ws = accept(stream, config).expect("handshake");
            let sender = ws.sender();
            let flooder = std::thread::spawn(move || {
                loop {
                    if let Err(error) = sender.send(Message::binary(vec![7u8; 64 << 10])) {
                        return error;
                    }
                    counted.fetch_add(1, Ordering::Relaxed);
                }
            });
            while ws.recv().is_some() {}
            flooder.join().expect("flooder")
        });

        let mut client = TcpStream::connect(addr).expect("connect");
        client
            .write_all(
                b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            )
            .expect("request");
        // Read nothing until the sender is stuck.
        let mut last = usize::MAX;
        let give_up = Instant::now() + Duration::from_secs(20);
        while sent.load(Ordering::Relaxed) != last {
            assert!(Instant::now() < give_up, "the sender never blocked");
            last = sent.load(Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(300));
        }
        client.shutdown(Shutdown::Write).expect("shutdown");
        let shut = Instant::now();
        while !server.is_finished() {
            assert!(
                shut.elapsed() < Duration::from_secs(5),
                "the blocked send (and recv) never ended"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let error = server.join().expect("server");
        assert!(matches!(error, Error::Closed), "{error}");
        drop(client);
    }

    /// A [`Sender`] on another thread closes while the connection's reader
    /// waits in a read without a timeout (no keep-alive) and the peer then
    /// stays silent: the deadline watcher still drops the connection at the
    /// close timeout, and `recv` ends.
    #[test]
    fn a_close_from_another_thread_times_out_on_a_silent_peer() {
        let close_timeout = Duration::from_millis(300);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            let config = Config {
                close_timeout,
                keepalive: None,
                ..Config::default()
            };
            let mut ws = accept(stream, config).expect("handshake");
            let sender = ws.sender();
            let closer = std::thread::spawn(move || {
                // Well after the reader blocked in its read.
                std::thread::sleep(Duration::from_millis(200));
                sender.close(None).expect("close");
                Instant::now()
            });
            while ws.recv().is_some() {}
            let ended = Instant::now();
            ended - closer.join().expect("closer")
        });

        let mut client = TcpStream::connect(addr).expect("connect");
        client
            .write_all(
                b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            )
            .expect("request");
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        // The handshake's response, the close frame, then (never answered)
        // the end of the connection.
        let started = Instant::now();
        let mut received = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            match client.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!(
                    "the connection stayed open {:?} (got {received:?}): {e}",
                    started.elapsed()
                ),
            }
        }
        let head_end = received
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("response head")
            + 4;
        assert!(received.starts_with(b"HTTP/1.1 101 "), "{received:?}");
        assert_eq!(&received[head_end..], b"\x88\x00", "the close frame alone");
        let closing = server.join().expect("server");
        // Measured from just after `close` returned, so a little under the
        // timeout when the deadline thread is punctual.
        assert!(
            closing + Duration::from_millis(50) >= close_timeout
                && closing < close_timeout + Duration::from_secs(3),
            "recv ended {closing:?} after the close (close timeout {close_timeout:?})"
        );
    }

    /// A [`Sender`] blocks writing to a peer that reads nothing (no
    /// keep-alive, the default), and another thread then gives up on the
    /// peer with [`Sender::close`]: the close starts behind the blocked
    /// write, so the close timeout ends the write, the close and `recv`,
    /// instead of the close waiting for the writer's lock for good.
    #[test]
    fn a_close_while_a_send_is_blocked_on_a_peer_that_reads_nothing_ends_it() {
        use std::sync::atomic::AtomicUsize;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let sent = Arc::new(AtomicUsize::new(0));
        let counted = sent.clone();
        let (closer_tx, closer_rx) = std::sync::mpsc::channel::<Sender>();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            let config = Config {
                close_timeout: Duration::from_millis(300),
                keepalive: None,
                ..Config::default()
            };
            let mut ws = accept(stream, config).expect("handshake");
            let sender = ws.sender();
            closer_tx.send(ws.sender()).expect("closer");
            let flooder = std::thread::spawn(move || {
                loop {
                    if let Err(error) = sender.send(Message::binary(vec![7u8; 64 << 10])) {
                        return error;
                    }
                    counted.fetch_add(1, Ordering::Relaxed);
                }
            });
            while ws.recv().is_some() {}
            flooder.join().expect("flooder")
        });

        let mut client = TcpStream::connect(addr).expect("connect");
        client
            .write_all(
                b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            )
            .expect("request");
        let closer = closer_rx.recv().expect("closer");
        // Read nothing until the sender is stuck.
        let mut last = usize::MAX;
        let give_up = Instant::now() + Duration::from_secs(20);
        while sent.load(Ordering::Relaxed) != last {
            assert!(Instant::now() < give_up, "the sender never blocked");
            last = sent.load(Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(300));
        }
        let closing = std::thread::spawn(move || closer.close(None));
        let started = Instant::now();
        while !(server.is_finished() && closing.is_finished()) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the close (and the blocked send, and recv) never ended"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let error = server.join().expect("server");
        assert!(matches!(error, Error::Closed), "{error}");
        closing
            .join()
            .expect("closing")
            .expect("the close was started");
        drop(client);
    }
}
