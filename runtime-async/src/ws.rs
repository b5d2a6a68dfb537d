//! WebSocket over any async stream: the [`WebSocket`] driver (a `Stream` of
//! messages and a `Sink` for them), the server's [`accept`] and [`serve`],
//! and the client's [`connect`].
//!
//! Examples with a `runtime` (`switchboard_tokio::Tokio`,
//! `switchboard_smol::Smol::new()`, any [`Runtime`]) and a network only
//! compile here; the others run in memory.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};
use std::time::Instant;

use bytes::Bytes;
use futures_core::Stream;
use futures_io::{AsyncRead, AsyncWrite};
use futures_util::future::{Either, select};
use futures_util::{AsyncReadExt, AsyncWriteExt, Sink, SinkExt, StreamExt};
use switchboard_core::http::{HeadReader, Limits, Request};
use switchboard_core::ws::handshake::{self, ClientHandshake, HandshakeError, WsUrl};
use switchboard_core::ws::{CloseFrame, Config, Connection, Message, Role};

use crate::accept::accept_loop;
use crate::io::poll_read_with;
use crate::timer::LazyTimer;
use crate::{Error, Runtime};

/// Queued output of at least this many bytes is written at once instead of
/// with the answers to the rest of a read. Below it, coalescing saves system
/// calls; from it on, the peer gains more from starting on the answer early
/// (measured with 16 KiB echoes in BENCHMARKS.md: a client and server that
/// otherwise take turns work at the same time).
const EARLY_WRITE_BYTES: usize = 16 << 10;

/// A WebSocket connection over the stream `S`, on runtime `R`.
///
/// Receive with [`recv`](Self::recv) or as a [`Stream`]; send with
/// [`send`](Self::send) or as a [`Sink`]. Received pings are answered
/// automatically and also yielded, so they can be observed. The stream ends
/// (`None`) once the connection is closed. Sending waits while the outgoing
/// buffer is at its bound ([`Config::write_buffer_limit`]) and every send is
/// flushed to the transport at once. The connection's timers run while a
/// send waits: a peer that reads nothing is still failed by the keep-alive
/// (or given up on at the close timeout), and the send fails with
/// [`Error::Closed`].
///
/// To read and write from two tasks, [`split`](StreamExt::split) it.
///
/// ```
/// use futures_util::{AsyncRead, AsyncWrite};
/// use switchboard_async::ws::WebSocket;
/// use switchboard_async::{Error, Runtime};
/// use switchboard_core::ws::Message;
///
/// /// Answers each text message with its length, until the peer closes.
/// async fn lengths<S, R>(mut ws: WebSocket<S, R>) -> Result<(), Error>
/// where
///     S: AsyncRead + AsyncWrite + Unpin,
///     R: Runtime,
/// {
///     while let Some(message) = ws.recv().await {
///         if let Some(text) = message?.as_text() {
///             ws.send(Message::text(text.len().to_string())).await?;
///         }
///     }
///     Ok(())
/// }
/// ```
///
/// Split, a task writes while another reads:
///
/// ```
/// use std::time::{Duration, Instant};
/// use futures_util::{AsyncRead, AsyncWrite, SinkExt, StreamExt};
/// use switchboard_async::Runtime;
/// use switchboard_async::ws::WebSocket;
/// use switchboard_core::ws::Message;
///
/// async fn ticker<S, R>(ws: WebSocket<S, R>, runtime: R)
/// where
///     S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
///     R: Runtime,
/// {
///     let (mut sink, mut stream) = ws.split();
///     let clock = runtime.clone();
///     runtime.spawn(async move {
///         for n in 0.. {
///             clock.sleep_until(Instant::now() + Duration::from_secs(1)).await;
///             if sink.send(Message::text(format!("tick {n}"))).await.is_err() {
///                 break;
///             }
///         }
///     });
///     while let Some(Ok(message)) = stream.next().await {
///         println!("received {message:?}");
///     }
/// }
/// ```
pub struct WebSocket<S, R: Runtime> {
    io: S,
    conn: Connection,
    runtime: R,
    timer: LazyTimer<R::Sleep>,
    /// The timer a sender polls while its write waits: one of its own, so
    /// the receiving side's (another task, when split) stays registered.
    send_timer: LazyTimer<R::Sleep>,
    protocol: Option<String>,
    finished: bool,
    /// The tasks last left waiting by the `Stream` and the `Sink` side: a
    /// split socket's halves. A transport wakes only the task that polled
    /// it last (tokio's rule), so a half that writes wakes the other, which
    /// may be waiting for just that; one that runs the timers wakes it too
    /// (the connection may have failed meanwhile). See [`Parked`].
    parked: Parked,
}

/// The wakers of [`WebSocket::parked`].
#[derive(Default)]
struct Parked {
    /// The stream side's task.
    stream: Option<Waker>,
    /// Whether it waits for writes to go out (output was queued when it
    /// parked); otherwise only a timer wakes it from here.
    stream_on_writes: bool,
    /// The sink side's task, waiting for room or for a flush.
    sink: Option<Waker>,
}

impl Parked {
    /// Remembers the task of `cx` in `slot`.
    fn park(slot: &mut Option<Waker>, cx: &Context<'_>) {
        if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *slot = Some(cx.waker().clone());
        }
    }

    /// Wakes the task in `slot` unless it is the one of `cx`.
    fn wake_other(slot: &mut Option<Waker>, cx: &Context<'_>) {
        if slot.as_ref().is_some_and(|w| !w.will_wake(cx.waker()))
            && let Some(waker) = slot.take()
        {
            waker.wake();
        }
    }

    /// Output went out: wakes the other side if it waits for that.
    fn wrote(&mut self, cx: &Context<'_>) {
        Self::wake_other(&mut self.sink, cx);
        if self.stream_on_writes {
            Self::wake_other(&mut self.stream, cx);
        }
    }

    /// The timers ran (a ping may be owed, the connection may have
    /// failed): wakes the other side.
    fn timers_ran(&mut self, cx: &Context<'_>) {
        Self::wake_other(&mut self.sink, cx);
        Self::wake_other(&mut self.stream, cx);
    }
}

impl<S, R> WebSocket<S, R>
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: Runtime,
{
    /// Wraps a stream on which the opening handshake is done. `buffered`
    /// holds bytes that arrived after the handshake.
    ///
    /// For a connection whose handshake was made elsewhere (by an HTTP server
    /// that upgraded it, say); a client's first frame came in the same read as
    /// its request:
    ///
    /// ```
    /// use std::sync::Arc;
    /// use futures_util::io::Cursor;
    /// use switchboard_async::ws::WebSocket;
    /// use switchboard_core::ws::{Config, Connection, Message, Role};
    /// # #[derive(Clone)]
    /// # struct InMemory; // a runtime that never sleeps, spawns or connects: enough here
    /// # impl switchboard_async::Runtime for InMemory {
    /// #     type Sleep = std::future::Pending<()>;
    /// #     type TcpStream = futures_util::io::Cursor<Vec<u8>>;
    /// #     type TcpListener = ();
    /// #     fn sleep_until(&self, _: std::time::Instant) -> Self::Sleep { std::future::pending() }
    /// #     fn spawn<F: Future<Output = ()> + Send + 'static>(&self, _: F) {}
    /// #     async fn connect(&self, _: &str, _: u16) -> std::io::Result<Self::TcpStream> { unimplemented!() }
    /// #     async fn accept(&self, _: &()) -> std::io::Result<(Self::TcpStream, std::net::SocketAddr)> { unimplemented!() }
    /// # }
    /// # let runtime = InMemory; // `Tokio`, `Smol::new()`, ...
    /// # let config = Arc::new(Config::default());
    /// # let mut client = Connection::new(Role::Client, config.clone(), None);
    /// # client.send(Message::text("hello"))?;
    /// # let buffered = client.transmit().to_vec();
    ///
    /// // `buffered`: what was read after the request head.
    /// let io = Cursor::new(Vec::new()); // the upgraded connection
    /// let conn = Connection::new(Role::Server, config, None);
    /// let mut ws = WebSocket::from_parts(io, runtime, conn, None, &buffered);
    /// assert_eq!(ws.next_buffered().transpose()?, Some(Message::text("hello")));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_parts(
        io: S,
        runtime: R,
        conn: Connection,
        protocol: Option<String>,
        buffered: &[u8],
    ) -> Self {
        let mut ws = Self {
            io,
            conn,
            runtime,
            timer: LazyTimer::default(),
            send_timer: LazyTimer::default(),
            protocol,
            finished: false,
            parked: Parked::default(),
        };
        ws.conn.handle_timeout(Instant::now());
        ws.conn.receive(buffered);
        ws
    }

    /// The runtime the WebSocket runs on.
    pub(crate) fn runtime(&self) -> &R {
        &self.runtime
    }

    /// The sub-protocol agreed in the handshake.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use switchboard_async::ws::{self, WebSocket};
    /// use switchboard_async::{Error, Runtime};
    /// use switchboard_core::ws::Config;
    ///
    /// // `runtime`: `switchboard_tokio::Tokio`, `switchboard_smol::Smol::new()`, ...
    /// async fn chat<R: Runtime>(runtime: R, io: R::TcpStream) -> Result<(), Error> {
    ///     let protocols = vec!["chat.v2".into(), "chat.v1".into()];
    ///     let config = Config { protocols, ..Config::default() };
    ///     let ws = ws::accept(runtime, io, Arc::new(config)).await?;
    ///     match ws.protocol() {
    ///         Some("chat.v2") => { /* the new protocol */ }
    ///         _ => { /* the old one, also for clients that asked for none */ }
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// Whether permessage-deflate is in use.
    ///
    /// ```
    /// use futures_util::{AsyncRead, AsyncWrite};
    /// use switchboard_async::Runtime;
    /// use switchboard_async::ws::WebSocket;
    ///
    /// fn describe<S: AsyncRead + AsyncWrite + Unpin, R: Runtime>(ws: &WebSocket<S, R>) -> String {
    ///     let compressed = if ws.is_compressed() { "permessage-deflate" } else { "uncompressed" };
    ///     format!("{compressed}, protocol {:?}", ws.protocol())
    /// }
    /// ```
    pub fn is_compressed(&self) -> bool {
        self.conn.is_compressed()
    }

    /// The sans-IO connection underneath.
    ///
    /// ```
    /// use futures_util::{AsyncRead, AsyncWrite};
    /// use switchboard_async::Runtime;
    /// use switchboard_async::ws::WebSocket;
    /// use switchboard_core::ws::Role;
    ///
    /// fn is_server<S: AsyncRead + AsyncWrite + Unpin, R: Runtime>(ws: &WebSocket<S, R>) -> bool {
    ///     ws.connection().role() == Role::Server
    /// }
    /// ```
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Receives the next message; `None` once the connection is closed.
    ///
    /// ```
    /// use futures_util::{AsyncRead, AsyncWrite};
    /// use switchboard_async::ws::WebSocket;
    /// use switchboard_async::{Error, Runtime};
    /// use switchboard_core::ws::Message;
    ///
    /// /// Counts the messages until the peer closes.
    /// async fn count<S, R>(mut ws: WebSocket<S, R>) -> Result<usize, Error>
    /// where
    ///     S: AsyncRead + AsyncWrite + Unpin,
    ///     R: Runtime,
    /// {
    ///     let mut count = 0;
    ///     while let Some(message) = ws.recv().await {
    ///         match message? {
    ///             Message::Text(_) | Message::Binary(_) => count += 1,
    ///             _ => {} // pings (answered already), pongs, the close frame
    ///         }
    ///     }
    ///     Ok(count)
    /// }
    /// ```
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        self.next().await
    }

    /// The next message already received and decoded, without reading or
    /// writing the transport: `None` when the next one needs a read. A
    /// driver that takes a message with [`recv`](Self::recv) can gather the
    /// rest of the same read this way and handle them as one batch.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use futures_executor::block_on;
    /// use futures_util::io::Cursor;
    /// use switchboard_async::ws::WebSocket;
    /// use switchboard_core::ws::{Config, Connection, Message, Role};
    /// # #[derive(Clone)]
    /// # struct InMemory; // a runtime that never sleeps, spawns or connects: enough here
    /// # impl switchboard_async::Runtime for InMemory {
    /// #     type Sleep = std::future::Pending<()>;
    /// #     type TcpStream = futures_util::io::Cursor<Vec<u8>>;
    /// #     type TcpListener = ();
    /// #     fn sleep_until(&self, _: std::time::Instant) -> Self::Sleep { std::future::pending() }
    /// #     fn spawn<F: Future<Output = ()> + Send + 'static>(&self, _: F) {}
    /// #     async fn connect(&self, _: &str, _: u16) -> std::io::Result<Self::TcpStream> { unimplemented!() }
    /// #     async fn accept(&self, _: &()) -> std::io::Result<(Self::TcpStream, std::net::SocketAddr)> { unimplemented!() }
    /// # }
    /// # let runtime = InMemory; // `Tokio`, `Smol::new()`, ...
    /// # let config = Arc::new(Config::default());
    /// # let mut client = Connection::new(Role::Client, config.clone(), None);
    /// # for text in ["a", "b", "c"] { client.send(Message::text(text))?; }
    /// # let server = Connection::new(Role::Server, config, None);
    /// # let mut ws = WebSocket::from_parts(Cursor::new(Vec::new()), runtime, server, None, client.transmit());
    ///
    /// // Three messages arrived in one read:
    /// let first = block_on(ws.recv()).unwrap()?;
    /// let mut batch = vec![first];
    /// while let Some(message) = ws.next_buffered() {
    ///     batch.push(message?);
    /// }
    /// assert_eq!(batch, ["a", "b", "c"].map(Message::text));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn next_buffered(&mut self) -> Option<Result<Message, Error>> {
        self.conn
            .poll_event()
            .map(|event| event.into_result().map_err(Error::from))
    }

    /// Sends a message and flushes it to the transport.
    ///
    /// ```
    /// use futures_util::{AsyncRead, AsyncWrite};
    /// use switchboard_async::ws::WebSocket;
    /// use switchboard_async::{Error, Runtime};
    /// use switchboard_core::ws::Message;
    ///
    /// async fn greet<S, R>(ws: &mut WebSocket<S, R>) -> Result<(), Error>
    /// where
    ///     S: AsyncRead + AsyncWrite + Unpin,
    ///     R: Runtime,
    /// {
    ///     ws.send(Message::text("hello")).await?;
    ///     ws.send(Message::binary(vec![0u8, 1, 2])).await // waits while the buffer is full
    /// }
    /// ```
    pub async fn send(&mut self, message: impl Into<Message>) -> Result<(), Error> {
        SinkExt::send(self, message.into()).await
    }

    /// Starts the close handshake and waits (up to the close timeout) until
    /// the peer answers and the transport is closed. Messages that arrive
    /// meanwhile are dropped.
    ///
    /// ```
    /// use futures_util::{AsyncRead, AsyncWrite};
    /// use switchboard_async::ws::WebSocket;
    /// use switchboard_async::{Error, Runtime};
    /// use switchboard_core::ws::CloseFrame;
    ///
    /// async fn shut_down<S, R>(mut ws: WebSocket<S, R>) -> Result<(), Error>
    /// where
    ///     S: AsyncRead + AsyncWrite + Unpin,
    ///     R: Runtime,
    /// {
    ///     // 1001 "going away": the client may come back later.
    ///     ws.close(Some(CloseFrame::new(1001, "restarting"))).await
    /// }
    /// ```
    pub async fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        self.conn.close(frame)?;
        match self.flush().await {
            // The peer took nothing within the close timeout: the rest was
            // dropped, and the transport closes below.
            Ok(()) | Err(Error::Closed) => {}
            Err(error) => return Err(error),
        }
        while let Some(item) = self.next().await {
            if let Err(error) = item {
                tracing::debug!(%error, "error while closing");
            }
        }
        Ok(())
    }

    /// Writes out as much of the transmit buffer as the transport takes.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut wrote = false;
        let result = loop {
            if self.conn.transmit().is_empty() {
                break Poll::Ready(Ok(()));
            }
            let mut slices = [io::IoSlice::new(&[]); 8];
            let count = self.conn.transmit_vectored(&mut slices);
            match Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..count]) {
                Poll::Ready(Ok(0)) => break Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.conn.advance_transmit(n);
                    wrote = true;
                }
                Poll::Ready(Err(e)) => break Poll::Ready(Err(e)),
                Poll::Pending => break Poll::Pending,
            }
        };
        if wrote {
            self.parked.wrote(cx);
        }
        result
    }

    /// Writes out the transmit buffer like `poll_write_out`, running the
    /// core's timers while the transport takes nothing: a keep-alive or
    /// close timeout still fires while a sender waits on a peer that does
    /// not read. [`Error::Closed`] once the core gave up on the connection
    /// meanwhile (it failed, or its close timed out).
    fn poll_write_out_timed(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        loop {
            if let Poll::Ready(result) = self.poll_write_out(cx) {
                self.send_timer.clear();
                return Poll::Ready(result.map_err(Error::from));
            }
            ready!(self.poll_timer_of(true, cx));
            if self.conn.should_close_transport() {
                self.send_timer.clear();
                return Poll::Ready(Err(Error::Closed));
            }
        }
    }

    /// Writes out the transmit buffer (see `poll_write_out_timed`) and
    /// flushes the transport.
    fn poll_flush_out(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        ready!(self.poll_write_out_timed(cx))?;
        ready!(Pin::new(&mut self.io).poll_flush(cx))?;
        Poll::Ready(Ok(()))
    }

    /// Runs a `Sink` side `poll`, parking its task (see `parked`) when it
    /// is pending.
    fn sink_parked_unless_ready<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut Self, &mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        let result = poll(self, cx);
        if result.is_pending() {
            Parked::park(&mut self.parked.sink, cx);
        }
        result
    }

    /// Keeps one runtime timer at the core's next deadline (re-armed
    /// lazily, as the deadline mostly moves later); returns Ready when it
    /// passed (after telling the core).
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_timer_of(false, cx)
    }

    /// [`poll_timer`](Self::poll_timer) with the receiving side's timer, or
    /// a waiting sender's (`send_timer`).
    fn poll_timer_of(&mut self, sender: bool, cx: &mut Context<'_>) -> Poll<()> {
        let timer = if sender {
            &mut self.send_timer
        } else {
            &mut self.timer
        };
        let Some(deadline) = self.conn.poll_timeout() else {
            timer.clear();
            return Poll::Pending;
        };
        let runtime = &self.runtime;
        ready!(timer.poll_until(deadline, cx, |at| runtime.sleep_until(at)));
        self.conn.handle_timeout(Instant::now());
        self.parked.timers_ran(cx);
        Poll::Ready(())
    }

    /// Starts writing what is queued once it reaches [`EARLY_WRITE_BYTES`],
    /// without waiting for the transport to take it.
    fn write_early(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.conn.transmit_len() < EARLY_WRITE_BYTES {
            return Ok(());
        }
        match self.poll_write_out(cx) {
            Poll::Ready(result) => result,
            Poll::Pending => Ok(()),
        }
    }

    fn poll_next_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        loop {
            if let Some(event) = self.conn.poll_event() {
                // Automatic pongs, close echoes and whatever the application
                // queued go out below, before the next read (or with the
                // next send), so the answers to a burst of small messages
                // leave in one write; large answers leave at once, so the
                // peer works on them while the rest of the burst is handled.
                if let Err(e) = self.write_early(cx) {
                    self.finished = true;
                    return Poll::Ready(Some(Err(e.into())));
                }
                return Poll::Ready(Some(event.into_result().map_err(Error::from)));
            }
            if self.finished {
                return Poll::Ready(None);
            }
            if let Poll::Ready(Err(e)) = self.poll_write_out(cx) {
                self.finished = true;
                return Poll::Ready(Some(Err(e.into())));
            }
            if self.conn.should_close_transport() {
                if self.conn.transmit().is_empty() {
                    let _ = ready!(Pin::new(&mut self.io).poll_close(cx));
                    self.finished = true;
                    return Poll::Ready(None);
                }
                // Still writing the last frames; the timer bounds the wait.
                ready!(self.poll_timer(cx));
                continue;
            }
            if self.poll_timer(cx).is_ready() {
                continue;
            }
            if !self.conn.can_send() {
                // The peer is not reading what we owe it (pongs, echoes):
                // stop reading until it does.
                return Poll::Pending;
            }
            let conn = &mut self.conn;
            match ready!(poll_read_with(&mut self.io, cx, |data| {
                if data.is_empty() {
                    conn.handle_eof();
                } else {
                    conn.receive(data);
                }
                conn.handle_timeout(Instant::now());
            })) {
                Ok(()) => {}
                Err(e) => {
                    self.finished = true;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }
}

impl<S, R> Stream for WebSocket<S, R>
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: Runtime,
{
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let next = this.poll_next_message(cx);
        if next.is_pending() {
            Parked::park(&mut this.parked.stream, cx);
            this.parked.stream_on_writes = !this.conn.transmit().is_empty();
        }
        next
    }
}

impl<S, R> Sink<Message> for WebSocket<S, R>
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: Runtime,
{
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        if this.conn.can_send() {
            this.write_early(cx)?;
            return Poll::Ready(Ok(()));
        }
        this.sink_parked_unless_ready(cx, Self::poll_write_out_timed)
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        let this = self.get_mut();
        this.conn.send(message)?;
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        // Timers armed by what was sent (a close's deadline) start now: one
        // clock read per flush, not per message fed.
        this.conn.handle_timeout(Instant::now());
        this.sink_parked_unless_ready(cx, Self::poll_flush_out)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        this.conn.close(None)?;
        this.conn.handle_timeout(Instant::now());
        this.sink_parked_unless_ready(cx, Self::poll_flush_out)
    }
}

impl<S, R: Runtime> std::fmt::Debug for WebSocket<S, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocket")
            .field("conn", &self.conn)
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

/// Runs `future` with the configured handshake timeout (one too long to
/// reach an `Instant` never expires).
async fn with_deadline<R, T>(
    runtime: &R,
    config: &Config,
    future: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error>
where
    R: Runtime,
{
    let Some(deadline) = Instant::now().checked_add(config.handshake_timeout) else {
        return future.await;
    };
    let sleep = runtime.sleep_until(deadline);
    let future = std::pin::pin!(future);
    let sleep = std::pin::pin!(sleep);
    match select(future, sleep).await {
        Either::Left((result, _)) => result,
        Either::Right(((), _)) => Err(Error::HandshakeTimeout),
    }
}

/// Reads an HTTP request head from `io`. Returns it with the bytes that came
/// after it. A head over the limits is answered (431 or 400) and refused.
///
/// Routing by path before the handshake:
///
/// ```
/// use std::sync::Arc;
/// use futures_util::AsyncWriteExt;
/// use switchboard_async::{Error, Runtime, ws};
/// use switchboard_core::ws::Config;
///
/// async fn route<R: Runtime>(runtime: R, mut io: R::TcpStream) -> Result<(), Error> {
///     let config = Arc::new(Config::default());
///     let (request, buffered) = ws::read_request(&mut io, &config).await?;
///     if request.path() != "/chat" {
///         io.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n").await?;
///         return Ok(io.close().await?);
///     }
///     let ws = ws::accept_request(runtime, io, &request, &buffered, config).await?;
///     ws::echo(ws).await;
///     Ok(())
/// }
/// ```
pub async fn read_request<S>(io: &mut S, config: &Config) -> Result<(Request, Bytes), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut reader = HeadReader::new(limits(config));
    let mut buf = [0u8; 2048];
    loop {
        let n = io.read(&mut buf).await?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        match reader.push_request(&buf[..n]) {
            Ok(Some(done)) => return Ok(done),
            Ok(None) => {}
            Err(error) => {
                let rejection = handshake::Rejection::from(error);
                let _ = io.write_all(&rejection.to_response()).await;
                let _ = io.close().await;
                return Err(rejection.into());
            }
        }
    }
}

/// Completes the server handshake for a request the caller already read
/// (embedding in an HTTP server, or routing by path). `buffered` holds bytes
/// read after the request head. A refused handshake is answered with its
/// HTTP status before the error is returned.
///
/// Checking a token in the query first (a request this function refuses,
/// one that is no WebSocket upgrade say, it answers itself):
///
/// ```
/// use std::sync::Arc;
/// use futures_util::AsyncWriteExt;
/// use switchboard_async::{Error, Runtime, ws};
/// use switchboard_core::ws::Config;
///
/// async fn authenticated<R: Runtime>(runtime: R, mut io: R::TcpStream) -> Result<(), Error> {
///     let config = Arc::new(Config::default());
///     let (request, buffered) = ws::read_request(&mut io, &config).await?;
///     if request.query_param("token").as_deref() != Some("s3cret") {
///         io.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n").await?;
///         return Ok(io.close().await?);
///     }
///     let ws = ws::accept_request(runtime, io, &request, &buffered, config).await?;
///     ws::echo(ws).await;
///     Ok(())
/// }
/// ```
pub async fn accept_request<S, R>(
    runtime: R,
    mut io: S,
    request: &Request,
    buffered: &[u8],
    config: Arc<Config>,
) -> Result<WebSocket<S, R>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: Runtime,
{
    match handshake::accept(request, &config) {
        Ok(accepted) => {
            io.write_all(&accepted.response).await?;
            io.flush().await?;
            let conn = Connection::new(Role::Server, config, accepted.deflate);
            Ok(WebSocket::from_parts(
                io,
                runtime,
                conn,
                accepted.protocol,
                buffered,
            ))
        }
        Err(rejection) => {
            tracing::debug!(%rejection, "refusing WebSocket handshake");
            let _ = io.write_all(&rejection.to_response()).await;
            let _ = io.close().await;
            Err(rejection.into())
        }
    }
}

/// Performs the server side of the opening handshake on a stream the caller
/// accepted, within [`Config::handshake_timeout`].
///
/// An accept loop of one's own (see [`serve`] for the ready-made one):
///
/// ```
/// use std::sync::Arc;
/// use switchboard_async::{Runtime, ws};
/// use switchboard_core::ws::Config;
///
/// // `runtime`: `switchboard_tokio::Tokio`, `switchboard_smol::Smol::new()`, ...
/// async fn run<R: Runtime>(runtime: R, listener: R::TcpListener) -> std::io::Result<()> {
///     let config = Arc::new(Config::default());
///     loop {
///         let (io, peer) = runtime.accept(&listener).await?;
///         let accepted = ws::accept(runtime.clone(), io, config.clone());
///         runtime.spawn(async move {
///             match accepted.await {
///                 Ok(ws) => ws::echo(ws).await,
///                 Err(error) => eprintln!("{peer}: {error}"), // answered already
///             }
///         });
///     }
/// }
/// ```
pub async fn accept<S, R>(
    runtime: R,
    mut io: S,
    config: Arc<Config>,
) -> Result<WebSocket<S, R>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: Runtime,
{
    let rt = runtime.clone();
    with_deadline(&rt, &config.clone(), async move {
        let (request, buffered) = read_request(&mut io, &config).await?;
        accept_request(runtime, io, &request, &buffered, config).await
    })
    .await
}

/// Performs the client side of the opening handshake on a connected stream.
///
/// Over a stream connected by other means (a TLS stream, a proxy's tunnel):
///
/// ```
/// use std::sync::Arc;
/// use futures_util::{AsyncRead, AsyncWrite};
/// use switchboard_async::{Error, Runtime, ws};
/// use switchboard_core::ws::Config;
/// use switchboard_core::ws::handshake::WsUrl;
/// use switchboard_core::ws::Message;
///
/// async fn hello<S, R>(runtime: R, stream: S) -> Result<(), Error>
/// where
///     S: AsyncRead + AsyncWrite + Unpin,
///     R: Runtime,
/// {
///     let url = WsUrl::parse("wss://example.com/chat")?;
///     let headers = [("Authorization", "Bearer s3cret")];
///     let config = Arc::new(Config::default());
///     let mut ws = ws::client_handshake(runtime, stream, &url, config, &headers).await?;
///     ws.send(Message::text("hello")).await?;
///     ws.close(None).await
/// }
/// ```
pub async fn client_handshake<S, R>(
    runtime: R,
    mut io: S,
    url: &WsUrl,
    config: Arc<Config>,
    extra_headers: &[(&str, &str)],
) -> Result<WebSocket<S, R>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: Runtime,
{
    let handshake = ClientHandshake::new(url, &config, extra_headers);
    let rt = runtime.clone();
    with_deadline(&rt, &config.clone(), async move {
        io.write_all(handshake.request()).await?;
        io.flush().await?;
        let mut reader = HeadReader::new(limits(&config));
        let mut buf = [0u8; 2048];
        let (response, buffered) = loop {
            let n = io.read(&mut buf).await?;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
            }
            if let Some(done) = reader
                .push_response(&buf[..n])
                .map_err(HandshakeError::from)?
            {
                break done;
            }
        };
        let negotiated = handshake.finish(&response, &config)?;
        let conn = Connection::new(Role::Client, config, negotiated.deflate);
        Ok(WebSocket::from_parts(
            io,
            runtime,
            conn,
            negotiated.protocol,
            &buffered,
        ))
    })
    .await
}

/// Connects to a `ws://` URL over TCP and performs the client handshake.
///
/// ```
/// use std::sync::Arc;
/// use switchboard_async::{Error, Runtime, ws};
/// use switchboard_core::ws::{Config, Message};
///
/// // `runtime`: `switchboard_tokio::Tokio`, `switchboard_smol::Smol::new()`, ...
/// async fn ask<R: Runtime>(runtime: R) -> Result<Option<Message>, Error> {
///     let config = Arc::new(Config::default());
///     let mut ws = ws::connect(runtime, "ws://localhost:9001/echo", config).await?;
///     ws.send(Message::text("hello")).await?;
///     let answer = ws.recv().await.transpose()?;
///     ws.close(None).await?;
///     Ok(answer)
/// }
/// ```
pub async fn connect<R: Runtime>(
    runtime: R,
    url: &str,
    config: Arc<Config>,
) -> Result<WebSocket<R::TcpStream, R>, Error> {
    let url = WsUrl::parse(url)?;
    if url.secure {
        return Err(HandshakeError::InvalidUrl(
            "wss:// needs a TLS stream: connect one and use client_handshake".into(),
        )
        .into());
    }
    // The TCP connect counts against the handshake timeout too: a host
    // that drops packets would otherwise hold it for the system's connect
    // timeout (minutes).
    let rt = runtime.clone();
    with_deadline(&rt, &config.clone(), async move {
        let io = runtime.connect(&url.host, url.port).await?;
        client_handshake(runtime, io, &url, config, &[]).await
    })
    .await
}

/// Accepts connections on `listener` forever, performing each handshake in
/// its own task and handing each WebSocket to `handler` there. Failed
/// handshakes are answered and logged; accept errors (such as running out of
/// file descriptors) are logged and retried after a short pause. At most
/// [`Config::max_connections`] are open at once; at the limit nothing more
/// is accepted until one closes.
///
/// ```
/// use std::sync::Arc;
/// use switchboard_async::{Runtime, ws};
/// use switchboard_core::ws::{Config, Message};
///
/// // `runtime`: `switchboard_tokio::Tokio`, `switchboard_smol::Smol::new()`, ...
/// async fn run<R: Runtime>(runtime: R, listener: R::TcpListener) {
///     let config = Arc::new(Config { max_message_size: 1 << 20, ..Config::default() });
///     ws::serve(runtime, listener, config, |mut ws| async move {
///         let _ = ws.send(Message::text("welcome")).await;
///         while let Some(Ok(message)) = ws.recv().await {
///             println!("{message:?}");
///         }
///     })
///     .await; // runs forever
/// }
/// ```
pub async fn serve<R, F, Fut>(runtime: R, listener: R::TcpListener, config: Arc<Config>, handler: F)
where
    R: Runtime,
    F: Fn(WebSocket<R::TcpStream, R>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let handler = Arc::new(handler);
    let max_connections = config.max_connections;
    accept_loop(&runtime, &listener, max_connections, |io, peer, slot| {
        let handler = handler.clone();
        let config = config.clone();
        let rt = runtime.clone();
        async move {
            let _slot = slot;
            // Boxed so the handshake's buffers are freed once it is done,
            // rather than kept in every connection's task.
            match Box::pin(accept(rt, io, config)).await {
                Ok(ws) => handler(ws).await,
                Err(error) => tracing::debug!(%peer, %error, "WebSocket handshake failed"),
            }
        }
    })
    .await
}

/// Echoes every text and binary message back until the peer closes: the
/// WebSocket echo of `conformance-server` and of the demos.
///
/// ```
/// use std::sync::Arc;
/// use futures_executor::block_on;
/// use futures_util::io::Cursor;
/// use switchboard_async::ws::{self, WebSocket};
/// use switchboard_core::ws::{Config, Connection, Message, Role};
/// # #[derive(Clone)]
/// # struct InMemory; // a runtime that never sleeps, spawns or connects: enough here
/// # impl switchboard_async::Runtime for InMemory {
/// #     type Sleep = std::future::Pending<()>;
/// #     type TcpStream = futures_util::io::Cursor<Vec<u8>>;
/// #     type TcpListener = ();
/// #     fn sleep_until(&self, _: std::time::Instant) -> Self::Sleep { std::future::pending() }
/// #     fn spawn<F: Future<Output = ()> + Send + 'static>(&self, _: F) {}
/// #     async fn connect(&self, _: &str, _: u16) -> std::io::Result<Self::TcpStream> { unimplemented!() }
/// #     async fn accept(&self, _: &()) -> std::io::Result<(Self::TcpStream, std::net::SocketAddr)> { unimplemented!() }
/// # }
/// # let runtime = InMemory; // `Tokio`, `Smol::new()`, ...
/// # let config = Arc::new(Config::default());
/// # let mut client = Connection::new(Role::Client, config.clone(), None);
///
/// // A client sent two messages, then its connection ended.
/// client.send(Message::text("hi"))?;
/// client.send(Message::binary(vec![1u8, 2]))?;
/// let mut stream = Cursor::new(Vec::new()); // keeps what the server writes
/// let server = Connection::new(Role::Server, config, None);
/// let ws = WebSocket::from_parts(&mut stream, runtime, server, None, client.transmit());
/// block_on(ws::echo(ws));
/// client.receive(stream.get_ref());
/// let echoed: Vec<Message> = std::iter::from_fn(|| client.poll_event())
///     .filter_map(|event| event.into_result().ok())
///     .collect();
/// assert_eq!(echoed, [Message::text("hi"), Message::binary(vec![1u8, 2])]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub async fn echo<S, R>(mut ws: WebSocket<S, R>)
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: Runtime,
{
    while let Some(item) = ws.next().await {
        match item {
            Ok(message) if message.is_data() => {
                // Queued only: written out with the echoes of the messages
                // that came in the same read, before the next read.
                if ws.feed(message).await.is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::debug!(%error, "echo connection ended");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transport that has nothing to read (end of stream) and records the
    /// size of each write.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<usize>,
    }

    impl AsyncRead for Recorder {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(0))
        }
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.writes.push(buf.len());
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let n = bufs.iter().map(|b| b.len()).sum();
            self.writes.push(n);
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// A runtime whose timers never fire; nothing here spawns or connects.
    #[derive(Clone)]
    struct NoRuntime;

    impl Runtime for NoRuntime {
        type Sleep = std::future::Pending<()>;
        type TcpStream = Recorder;
        type TcpListener = ();

        fn sleep_until(&self, _: Instant) -> Self::Sleep {
            std::future::pending()
        }

        fn spawn<F>(&self, _: F)
        where
            F: Future<Output = ()> + Send + 'static,
        {
            unreachable!("nothing spawns")
        }

        async fn connect(&self, _: &str, _: u16) -> io::Result<Recorder> {
            unreachable!("nothing connects")
        }

        async fn accept(&self, _: &()) -> io::Result<(Recorder, std::net::SocketAddr)> {
            unreachable!("nothing accepts")
        }
    }

    /// A runtime whose connects never complete (a host that drops
    /// packets) and whose timers are due at once.
    #[derive(Clone)]
    struct Unreachable;

    impl Runtime for Unreachable {
        type Sleep = std::future::Ready<()>;
        type TcpStream = Recorder;
        type TcpListener = ();

        fn sleep_until(&self, _: Instant) -> Self::Sleep {
            std::future::ready(())
        }

        fn spawn<F>(&self, _: F)
        where
            F: Future<Output = ()> + Send + 'static,
        {
            unreachable!("nothing spawns")
        }

        async fn connect(&self, _: &str, _: u16) -> io::Result<Recorder> {
            std::future::pending().await
        }

        async fn accept(&self, _: &()) -> io::Result<(Recorder, std::net::SocketAddr)> {
            unreachable!("nothing accepts")
        }
    }

    /// The handshake timeout bounds the TCP connect too, and one too long
    /// for an `Instant` means no timeout rather than a panic.
    #[test]
    fn the_handshake_timeout_bounds_the_connect() {
        use futures_util::FutureExt;
        let config = Arc::new(Config::default());
        let connecting = super::connect(Unreachable, "ws://example.com/", config);
        assert!(matches!(
            connecting.now_or_never(),
            Some(Err(Error::HandshakeTimeout))
        ));
        let config = Arc::new(Config {
            handshake_timeout: std::time::Duration::MAX,
            ..Config::default()
        });
        let connecting = super::connect(Unreachable, "ws://example.com/", config);
        assert!(connecting.now_or_never().is_none(), "still connecting");
    }

    /// Echoes `sizes` (binary messages, all arriving in one read) and
    /// returns the sizes of the writes the echoes took.
    fn echo_writes(sizes: &[usize]) -> Vec<usize> {
        let config = Arc::new(Config::default());
        let mut client = Connection::new(Role::Client, config.clone(), None);
        for &size in sizes {
            client.send(Message::binary(vec![7u8; size])).unwrap();
        }
        let mut wire = Vec::new();
        while !client.transmit().is_empty() {
            let n = client.transmit().len();
            wire.extend_from_slice(client.transmit());
            client.advance_transmit(n);
        }
        let server = Connection::new(Role::Server, config, None);
        let ws = WebSocket::from_parts(Recorder::default(), NoRuntime, server, None, &wire);
        let mut ws = futures_executor::block_on(async move {
            let mut ws = ws;
            while let Some(Ok(message)) = ws.next().await {
                ws.feed(message).await.unwrap();
            }
            ws
        });
        std::mem::take(&mut ws.io.writes)
    }

    /// A transport with tokio's waker rule: only the task that last polled
    /// a direction is woken when it becomes ready. Reads never complete;
    /// writes take up to `room` bytes.
    #[derive(Clone, Default)]
    struct OneWakerPipe(Arc<std::sync::Mutex<PipeState>>);

    #[derive(Default)]
    struct PipeState {
        room: usize,
        write_waker: Option<std::task::Waker>,
    }

    impl AsyncRead for OneWakerPipe {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Pending
        }
    }

    impl AsyncWrite for OneWakerPipe {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let mut state = self.0.lock().unwrap();
            if state.room == 0 {
                state.write_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let n = state.room.min(buf.len());
            state.room -= n;
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// A waker that records whether it was woken.
    struct Flag(std::sync::atomic::AtomicBool);

    impl futures_util::task::ArcWake for Flag {
        fn wake_by_ref(flag: &Arc<Self>) {
            flag.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn flag() -> (Arc<Flag>, std::task::Waker) {
        let flag = Arc::new(Flag(std::sync::atomic::AtomicBool::new(false)));
        (flag.clone(), futures_util::task::waker(flag))
    }

    /// Split, a sending task waits for the transport while the receiving
    /// task, polled after it, took over the transport's one write waker:
    /// once the receiving task writes the buffer out, the sending task is
    /// woken too and its send completes (it would otherwise wait for good).
    #[test]
    fn both_halves_of_a_split_socket_are_woken_when_the_writes_go_out() {
        let pipe = OneWakerPipe::default();
        let config = Config {
            write_buffer_limit: 1024,
            ..Config::default()
        };
        let conn = Connection::new(Role::Server, Arc::new(config), None);
        let ws = WebSocket::from_parts(pipe.clone(), NoRuntime, conn, None, &[]);
        let (mut sink, mut stream) = ws.split();
        let (sink_woken, sink_waker) = flag();
        let (_, stream_waker) = flag();
        let mut sending = sink.send(Message::binary(vec![1u8; 4096]));
        let mut sending = Pin::new(&mut sending);
        assert!(
            sending
                .as_mut()
                .poll(&mut Context::from_waker(&sink_waker))
                .is_pending()
        );
        let mut stream_cx = Context::from_waker(&stream_waker);
        assert!(stream.poll_next_unpin(&mut stream_cx).is_pending());
        // The peer reads: the transport wakes the task that polled it last.
        let woken = {
            let mut state = pipe.0.lock().unwrap();
            state.room = 1 << 20;
            state.write_waker.take().expect("a write waiter")
        };
        assert!(woken.will_wake(&stream_waker));
        woken.wake();
        assert!(stream.poll_next_unpin(&mut stream_cx).is_pending());
        assert!(
            sink_woken.0.load(std::sync::atomic::Ordering::SeqCst),
            "the sending task was never woken"
        );
        assert!(
            sending
                .as_mut()
                .poll(&mut Context::from_waker(&sink_waker))
                .is_ready()
        );
    }

    #[test]
    fn small_answers_to_one_read_share_a_write() {
        let writes = echo_writes(&[32; 16]);
        assert_eq!(writes.first(), Some(&(16 * 34)), "{writes:?}");
    }

    #[test]
    fn large_answers_leave_before_the_rest_of_the_read_is_handled() {
        let writes = echo_writes(&[16 << 10, 16 << 10, 16 << 10]);
        let frame = (16 << 10) + 4;
        assert_eq!(&writes[..3], &[frame, frame, frame], "{writes:?}");
    }
}
