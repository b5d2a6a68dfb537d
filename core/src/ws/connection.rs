//! The WebSocket connection state machine: frames in, events out; messages
//! in, frames out. One rule lives here once: reassembly, fail-fast UTF-8,
//! limits, automatic pongs, keep-alive and the close handshake.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};

use super::deflate::{Deflate, InflateError};
use super::frame::{FrameHeader, MAX_HEADER_LEN, OpCode, encode_frame};
use super::mask::extend_masked;
use super::utf8::Utf8Validator;
use super::{
    CloseCode, CloseFrame, Config, DeflateParams, Message, ProtocolError, Role, SendError, Text,
};

/// Buffers larger than this are released when they empty, so idle
/// connections hold no buffer memory.
const RETAINED_BUFFER: usize = 512;

/// The most the transmit buffer reserves at once, from the size it last
/// reached, when it starts filling again.
const MAX_OUT_RESERVE: usize = 16 * 1024;

/// Unmasked payloads (server role) at least this long are queued by
/// reference rather than copied behind their header: the transport writes
/// them with a vectored write.
const ZERO_COPY_MIN: usize = 1024;

/// Payloads above this size are expected to arrive over several reads.
const MULTI_READ_PAYLOAD: usize = 64 << 10;

/// Where the end of the read buffer stands in the frame layout, so received
/// payload bytes are unmasked as they are copied in.
#[derive(Debug, Clone, Copy)]
enum Scan {
    /// At (or inside) a header: its first `len` bytes.
    Header {
        partial: [u8; MAX_HEADER_LEN],
        len: u8,
    },
    /// Inside a payload with `remaining` bytes to come, `offset` bytes in.
    Payload {
        remaining: u64,
        key: Option<[u8; 4]>,
        offset: usize,
    },
    /// Past a header that does not parse (the connection fails when it gets
    /// there), or a client's unmasked input: bytes are copied as they are.
    Off,
}

impl Scan {
    const HEADER: Scan = Scan::Header {
        partial: [0; MAX_HEADER_LEN],
        len: 0,
    };
}

/// Where the connection stands in its lifetime.
///
/// ```
/// # use std::sync::Arc;
/// use switchboard_core::ws::{CloseFrame, Config, Connection, Message, Role, State};
/// let config = Arc::new(Config::default());
/// let mut server = Connection::new(Role::Server, config.clone(), None);
/// let mut client = Connection::new(Role::Client, config, None);
/// assert_eq!(server.state(), State::Open);
///
/// server.close(Some(CloseFrame::new(1000u16, "bye"))).unwrap();
/// assert_eq!(server.state(), State::CloseSent);
///
/// // The client reads the close frame and echoes it: its side is done.
/// client.receive(server.transmit());
/// assert_eq!(client.state(), State::Closed);
/// // The echo reaches the server: the handshake is over.
/// server.receive(client.transmit());
/// assert_eq!(server.state(), State::Closed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Messages flow both ways.
    Open,
    /// We sent a close frame and wait for the peer's.
    CloseSent,
    /// The close handshake finished, or the connection failed. Nothing more
    /// is sent or accepted.
    Closed,
}

/// What the connection reports to the application.
///
/// A peer that breaks the protocol fails the connection: the event carries
/// the error, and the close frame with its
/// [`close_code`](ProtocolError::close_code) waits in the transmit buffer.
///
/// ```
/// # use std::sync::Arc;
/// use bytes::BytesMut;
/// use switchboard_core::ws::{encode_frame, Config, Connection, Event, OpCode, ProtocolError, Role};
/// let mut server = Connection::new(Role::Server, Arc::new(Config::default()), None);
///
/// // A client frame must be masked; this one is not.
/// let mut frame = BytesMut::new();
/// encode_frame(&mut frame, OpCode::Text, true, false, None, b"hi");
/// server.receive(&frame);
///
/// assert_eq!(server.poll_event(), Some(Event::Failed(ProtocolError::UnmaskedFrame)));
/// assert_eq!(ProtocolError::UnmaskedFrame.close_code().0, 1002);
/// assert_eq!(server.transmit(), b"\x88\x02\x03\xea"); // close, 1002
/// assert!(server.should_close_transport());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A message, or an observed ping, pong or close frame.
    Message(Message),
    /// The peer broke the protocol or a limit (or vanished); the matching
    /// close frame, if one may be sent, is queued and the connection is
    /// closed.
    Failed(ProtocolError),
}

impl Event {
    /// The message, or the error that failed the connection: what a driver
    /// hands its application for each event.
    ///
    /// ```
    /// use switchboard_core::ws::{Event, Message, ProtocolError};
    /// assert_eq!(Event::Message(Message::text("hi")).into_result(), Ok(Message::text("hi")));
    /// assert_eq!(
    ///     Event::Failed(ProtocolError::InvalidUtf8).into_result(),
    ///     Err(ProtocolError::InvalidUtf8),
    /// );
    /// ```
    pub fn into_result(self) -> Result<Message, ProtocolError> {
        match self {
            Event::Message(message) => Ok(message),
            Event::Failed(error) => Err(error),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct FrameInProgress {
    header: FrameHeader,
    /// Payload bytes already unmasked (and validated, for text).
    processed: usize,
    validate_utf8: bool,
}

#[derive(Debug)]
struct MessageInProgress {
    text: bool,
    compressed: bool,
    data: BytesMut,
    fragments: usize,
}

/// A timer that is off, waiting to be armed at the next `handle_timeout`,
/// or armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    Off,
    Arm(std::time::Duration),
    At(Instant),
}

impl Timer {
    /// Due `after` from `now`; off when that is past the end of time (a
    /// timeout of `Duration::MAX`, say).
    fn after(now: Instant, after: std::time::Duration) -> Timer {
        now.checked_add(after).map_or(Timer::Off, Timer::At)
    }

    fn arm(&mut self, now: Instant) {
        if let Timer::Arm(after) = *self {
            *self = Timer::after(now, after);
        }
    }

    fn expired(&self, now: Instant) -> bool {
        matches!(*self, Timer::At(at) if now >= at)
    }

    fn deadline(&self) -> Option<Instant> {
        match *self {
            Timer::At(at) => Some(at),
            _ => None,
        }
    }
}

/// Client masking keys, drawn from the OS CSPRNG a block at a time.
struct MaskKeys {
    pool: [u8; 64],
    used: usize,
}

impl MaskKeys {
    fn new() -> Box<Self> {
        Box::new(Self {
            pool: [0; 64],
            used: 64,
        })
    }

    fn next(&mut self) -> [u8; 4] {
        if self.used == self.pool.len() {
            getrandom::fill(&mut self.pool).expect("the OS random source failed");
            self.used = 0;
        }
        let key = self.pool[self.used..self.used + 4]
            .try_into()
            .expect("4 bytes");
        self.used += 4;
        key
    }
}

/// One WebSocket connection, either role, without IO.
///
/// Feed received bytes with [`receive`](Self::receive) (and
/// [`handle_eof`](Self::handle_eof) at end of stream), take events with
/// [`poll_event`](Self::poll_event), queue messages with
/// [`send`](Self::send), and write out [`transmit`](Self::transmit),
/// acknowledging with [`advance_transmit`](Self::advance_transmit). Call
/// [`handle_timeout`](Self::handle_timeout) with the current time after
/// feeding input or sending, and again at [`poll_timeout`](Self::poll_timeout).
/// Once [`should_close_transport`](Self::should_close_transport) holds and
/// the transmit buffer is empty, close the transport; keep calling
/// `handle_timeout` meanwhile: what the peer has not taken within
/// [`Config::close_timeout`] is dropped, so the buffer empties.
///
/// # Example
///
/// An echo server's loop over any [`Read`](std::io::Read) and
/// [`Write`](std::io::Write), here fed the bytes of a client-role
/// connection and writing into a `Vec`:
///
/// ```
/// use std::io::{Read, Write};
/// use std::sync::Arc;
/// use std::time::Instant;
/// use switchboard_core::ws::{CloseFrame, Config, Connection, Event, Message, Role};
///
/// fn serve(conn: &mut Connection, mut rx: impl Read, mut tx: impl Write) -> std::io::Result<()> {
///     let mut buf = [0u8; 4096];
///     while !conn.should_close_transport() {
///         // A real loop also wakes at `conn.poll_timeout()`.
///         match rx.read(&mut buf)? {
///             0 => conn.handle_eof(),
///             n => conn.receive(&buf[..n]),
///         }
///         conn.handle_timeout(Instant::now());
///         while let Some(event) = conn.poll_event() {
///             if let Ok(message @ (Message::Text(_) | Message::Binary(_))) = event.into_result() {
///                 let _ = conn.send(message); // refused only once closing
///             }
///         }
///         while !conn.transmit().is_empty() {
///             let n = tx.write(conn.transmit())?;
///             conn.advance_transmit(n);
///         }
///     }
///     Ok(())
/// }
///
/// # let config = Arc::new(Config::default());
/// let mut client = Connection::new(Role::Client, config.clone(), None);
/// client.send(Message::text("Hello")).unwrap();
/// client.close(Some(CloseFrame::new(1000u16, "done"))).unwrap();
///
/// let mut server = Connection::new(Role::Server, config, None);
/// let mut written = Vec::new();
/// serve(&mut server, client.transmit(), &mut written).unwrap();
///
/// client.receive(&written);
/// assert_eq!(client.poll_event(), Some(Event::Message(Message::text("Hello"))));
/// let echo = Message::Close(Some(CloseFrame::new(1000u16, "")));
/// assert_eq!(client.poll_event(), Some(Event::Message(echo)));
/// ```
pub struct Connection {
    role: Role,
    config: Arc<Config>,
    state: State,
    failed: bool,
    eof: bool,
    read_buf: BytesMut,
    scan: Scan,
    frame: Option<FrameInProgress>,
    message: Option<MessageInProgress>,
    utf8: Utf8Validator,
    out: BytesMut,
    /// What `out` held when last released (capped): reserved at once when
    /// it starts filling again, so a busy connection grows its buffer in
    /// one allocation, not a doubling per frame.
    out_reserve: u32,
    /// Written before `out`: sealed pieces of it and payloads queued by
    /// reference.
    out_chunks: VecDeque<Bytes>,
    events: VecDeque<Event>,
    deflate: Option<Box<Deflate>>,
    mask_keys: Option<Box<MaskKeys>>,
    next_ping: Timer,
    pong_deadline: Timer,
    close_deadline: Timer,
    close_timed_out: bool,
}

impl Connection {
    /// A connection in `role` after a successful opening handshake, with the
    /// permessage-deflate parameters it negotiated (if any).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use switchboard_core::http::{Limits, Request};
    /// use switchboard_core::ws::{handshake, Config, Connection, Role, State};
    /// let raw = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
    ///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    ///     Sec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n";
    /// let (request, _) = Request::parse(raw, &Limits::default()).unwrap().unwrap();
    /// let config = Arc::new(Config::default());
    /// let accepted = handshake::accept(&request, &config).unwrap();
    /// // Write `accepted.response`, then speak WebSocket:
    /// let conn = Connection::new(Role::Server, config, accepted.deflate);
    /// assert_eq!((conn.role(), conn.state()), (Role::Server, State::Open));
    /// assert!(conn.is_compressed());
    /// assert_eq!(conn.config().max_message_size, 4 << 20);
    /// ```
    pub fn new(role: Role, config: Arc<Config>, deflate: Option<DeflateParams>) -> Self {
        let deflate = deflate.map(|params| {
            let deflate_config = config.deflate.clone().unwrap_or_default();
            Box::new(Deflate::new(&params, role == Role::Server, &deflate_config))
        });
        let next_ping = match config.keepalive {
            Some(k) => Timer::Arm(k.interval),
            None => Timer::Off,
        };
        Self {
            role,
            state: State::Open,
            failed: false,
            eof: false,
            read_buf: BytesMut::new(),
            scan: if role == Role::Server {
                Scan::HEADER
            } else {
                Scan::Off
            },
            frame: None,
            message: None,
            utf8: Utf8Validator::default(),
            out: BytesMut::new(),
            out_reserve: 0,
            out_chunks: VecDeque::new(),
            events: VecDeque::new(),
            deflate,
            mask_keys: (role == Role::Client).then(MaskKeys::new),
            next_ping,
            pong_deadline: Timer::Off,
            close_deadline: Timer::Off,
            close_timed_out: false,
            config,
        }
    }

    /// This connection's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Where the connection stands.
    pub fn state(&self) -> State {
        self.state
    }

    /// The connection's settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether permessage-deflate is in use.
    pub fn is_compressed(&self) -> bool {
        self.deflate.is_some()
    }

    /// Feeds bytes received from the transport. Frames are decoded lazily:
    /// up to the next event here, the rest as events are polled, so a
    /// protocol error further on never overtakes the answers the application
    /// gives to the messages before it.
    ///
    /// Reads may split frames anywhere:
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use switchboard_core::ws::{Config, Connection, Event, Message, Role};
    /// # let config = Arc::new(Config::default());
    /// let mut client = Connection::new(Role::Client, config.clone(), None);
    /// let mut server = Connection::new(Role::Server, config, None);
    /// client.send(Message::text("Hello")).unwrap();
    /// let bytes = client.transmit(); // a masked frame of 11 bytes
    ///
    /// server.receive(&bytes[..4]);
    /// assert_eq!(server.poll_event(), None);
    /// server.receive(&bytes[4..]);
    /// assert_eq!(server.poll_event(), Some(Event::Message(Message::text("Hello"))));
    /// ```
    pub fn receive(&mut self, data: &[u8]) {
        if self.state == State::Closed || data.is_empty() {
            return;
        }
        self.append(data);
        self.process();
    }

    /// Appends received bytes to the read buffer, unmasking payload bytes on
    /// the way in (one pass instead of a copy and then an unmasking pass).
    /// Only the frame layout is read here; every rule is applied by
    /// `process_frame` when it gets to the frame.
    fn append(&mut self, mut data: &[u8]) {
        // Once for the whole read: growing piece by piece could move the
        // buffer (and copy what it holds) several times.
        self.read_buf.reserve(data.len());
        while !data.is_empty() {
            match &mut self.scan {
                Scan::Payload {
                    remaining,
                    key,
                    offset,
                } => {
                    let n = (*remaining).min(data.len() as u64) as usize;
                    match key {
                        Some(key) => extend_masked(&mut self.read_buf, &data[..n], *key, *offset),
                        None => self.read_buf.extend_from_slice(&data[..n]),
                    }
                    data = &data[n..];
                    *remaining -= n as u64;
                    *offset += n;
                    if *remaining == 0 {
                        self.scan = Scan::HEADER;
                    }
                }
                Scan::Header { partial, len } => {
                    let have = *len as usize;
                    let take = (MAX_HEADER_LEN - have).min(data.len());
                    let mut head = *partial;
                    let parsed = if have == 0 {
                        FrameHeader::parse(data)
                    } else {
                        head[have..have + take].copy_from_slice(&data[..take]);
                        FrameHeader::parse(&head[..have + take])
                    };
                    match parsed {
                        Ok(Some((header, header_len))) => {
                            let used = header_len - have;
                            self.read_buf.extend_from_slice(&data[..used]);
                            data = &data[used..];
                            self.scan = if header.payload_len == 0 {
                                Scan::HEADER
                            } else {
                                Scan::Payload {
                                    remaining: header.payload_len,
                                    key: header.mask,
                                    offset: 0,
                                }
                            };
                        }
                        Ok(None) => {
                            // 14 bytes always hold a header, so all of `data`
                            // was taken.
                            if have == 0 {
                                head[..take].copy_from_slice(&data[..take]);
                            }
                            self.read_buf.extend_from_slice(data);
                            *partial = head;
                            *len = (have + take) as u8;
                            return;
                        }
                        Err(_) => {
                            self.read_buf.extend_from_slice(data);
                            self.scan = Scan::Off;
                            return;
                        }
                    }
                }
                Scan::Off => {
                    self.read_buf.extend_from_slice(data);
                    return;
                }
            }
        }
    }

    /// Decodes frames until one produces an event (or the buffer runs dry).
    fn process(&mut self) {
        while self.events.is_empty() {
            match self.process_frame() {
                Ok(true) => {}
                Ok(false) => break,
                Err(error) => {
                    self.fail(error);
                    break;
                }
            }
        }
        if self.read_buf.is_empty() && self.read_buf.capacity() > 0 {
            // Always let go: the remaining capacity may share the allocation
            // of a message already handed out, which would keep it alive.
            self.read_buf = BytesMut::new();
        }
    }

    /// The transport reached end of stream. Before the close handshake
    /// finished, this fails the connection with
    /// [`ProtocolError::AbnormalClosure`] (code 1006, never sent); after it,
    /// it only lets [`should_close_transport`](Self::should_close_transport)
    /// hold.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use switchboard_core::ws::{Config, Connection, Event, ProtocolError, Role, State};
    /// let mut server = Connection::new(Role::Server, Arc::new(Config::default()), None);
    /// server.handle_eof();
    /// assert_eq!(server.poll_event(), Some(Event::Failed(ProtocolError::AbnormalClosure)));
    /// assert_eq!(server.state(), State::Closed);
    /// assert!(server.transmit().is_empty());
    /// assert!(server.should_close_transport());
    /// ```
    pub fn handle_eof(&mut self) {
        self.eof = true;
        if self.state != State::Closed {
            self.fail(ProtocolError::AbnormalClosure);
        }
    }

    /// The next event, if any. Drain it after every
    /// [`receive`](Self::receive): each call decodes as far as the next
    /// event, so what the application sends in answer goes out before the
    /// close frame of an error further on in the same read.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use bytes::BytesMut;
    /// use switchboard_core::ws::{encode_frame, Config, Connection, Event, Message, OpCode};
    /// use switchboard_core::ws::{ProtocolError, Role};
    /// let mut server = Connection::new(Role::Server, Arc::new(Config::default()), None);
    /// // One read: a text frame "ok", then one that is not UTF-8.
    /// let mut read = BytesMut::new();
    /// encode_frame(&mut read, OpCode::Text, true, false, Some([1, 2, 3, 4]), b"ok");
    /// encode_frame(&mut read, OpCode::Text, true, false, Some([5, 6, 7, 8]), b"\xff");
    /// server.receive(&read);
    ///
    /// assert_eq!(server.poll_event(), Some(Event::Message(Message::text("ok"))));
    /// server.send(Message::text("answer")).unwrap();
    /// assert_eq!(server.poll_event(), Some(Event::Failed(ProtocolError::InvalidUtf8)));
    /// assert_eq!(server.poll_event(), None);
    /// // The answer, then the close frame with code 1007.
    /// assert_eq!(server.transmit(), b"\x81\x06answer\x88\x02\x03\xef");
    /// ```
    pub fn poll_event(&mut self) -> Option<Event> {
        if self.events.is_empty() && self.state != State::Closed {
            self.process();
        }
        self.events.pop_front()
    }

    /// Queues a message (or a ping, pong or close) for sending: its frame
    /// appears in [`transmit`](Self::transmit). A close goes through
    /// [`close`](Self::close). Once a close frame was sent or received,
    /// anything but a close is refused with [`SendError::Closed`].
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use switchboard_core::ws::{Config, Connection, Message, Role, SendError};
    /// let mut server = Connection::new(Role::Server, Arc::new(Config::default()), None);
    /// server.send(Message::text("Hi")).unwrap();
    /// server.send(Message::Ping("p".into())).unwrap();
    /// assert_eq!(server.transmit(), b"\x81\x02Hi\x89\x01p");
    ///
    /// let too_long = Message::Ping(vec![0; 126].into());
    /// assert_eq!(server.send(too_long), Err(SendError::ControlFrameTooLong(126)));
    /// server.send(Message::Close(None)).unwrap();
    /// assert_eq!(server.send(Message::text("late")), Err(SendError::Closed));
    /// ```
    pub fn send(&mut self, message: Message) -> Result<(), SendError> {
        match message {
            Message::Text(text) => self.send_data(OpCode::Text, text.into_bytes()),
            Message::Binary(data) => self.send_data(OpCode::Binary, data),
            Message::Ping(data) => self.send_control(OpCode::Ping, &data),
            Message::Pong(data) => self.send_control(OpCode::Pong, &data),
            Message::Close(frame) => self.close(frame),
        }
    }

    /// Starts the close handshake. Closing twice is harmless.
    ///
    /// The close frame is queued and the state becomes
    /// [`State::CloseSent`]; the peer's close frame finishes the handshake
    /// (or [`handle_timeout`](Self::handle_timeout) gives up after
    /// [`Config::close_timeout`]). A code that may not be sent, or a reason
    /// over 123 bytes, is refused.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use switchboard_core::ws::{CloseCode, CloseFrame, Config, Connection, Event, Message, Role};
    /// use switchboard_core::ws::{SendError, State};
    /// # let config = Arc::new(Config::default());
    /// let mut server = Connection::new(Role::Server, config.clone(), None);
    /// let mut client = Connection::new(Role::Client, config, None);
    /// let reserved = CloseFrame::new(1005u16, ""); // "no status": never sent
    /// assert_eq!(server.close(Some(reserved)), Err(SendError::InvalidCloseCode(1005)));
    ///
    /// server.close(Some(CloseFrame::new(CloseCode::NORMAL, "bye"))).unwrap();
    /// assert_eq!(server.transmit(), b"\x88\x05\x03\xe8bye");
    /// client.receive(server.transmit());
    /// server.advance_transmit(server.transmit_len());
    /// let bye = CloseFrame::new(1000u16, "bye");
    /// assert_eq!(client.poll_event(), Some(Event::Message(Message::Close(Some(bye)))));
    ///
    /// // The client echoed the code; the echo ends the handshake.
    /// server.receive(client.transmit());
    /// let echo = CloseFrame::new(1000u16, "");
    /// assert_eq!(server.poll_event(), Some(Event::Message(Message::Close(Some(echo)))));
    /// assert_eq!(server.state(), State::Closed);
    /// assert!(server.should_close_transport());
    /// ```
    pub fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), SendError> {
        if self.state != State::Open {
            return Ok(());
        }
        if let Some(frame) = &frame {
            if !frame.code.is_sendable() {
                return Err(SendError::InvalidCloseCode(frame.code.0));
            }
            if frame.reason.len() > 123 {
                return Err(SendError::ControlFrameTooLong(frame.reason.len() + 2));
            }
        }
        self.queue_close(frame.as_ref());
        self.state = State::CloseSent;
        self.close_deadline = Timer::Arm(self.config.close_timeout);
        Ok(())
    }

    /// Bytes waiting to be written to the transport: the first contiguous
    /// piece of them (empty when there are none). See also
    /// [`transmit_vectored`](Self::transmit_vectored).
    ///
    /// Write until it is empty, acknowledging what the socket took:
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use std::io::Write;
    /// use switchboard_core::ws::{Config, Connection, Message, Role};
    /// let mut server = Connection::new(Role::Server, Arc::new(Config::default()), None);
    /// server.send(Message::binary(vec![1u8; 5000])).unwrap();
    ///
    /// let mut socket = Vec::new();
    /// while !server.transmit().is_empty() {
    ///     let n = socket.write(server.transmit()).unwrap();
    ///     server.advance_transmit(n);
    /// }
    /// assert_eq!(socket.len(), 4 + 5000); // header with a 16-bit length, payload
    /// assert_eq!(&socket[..4], b"\x82\x7e\x13\x88");
    /// ```
    pub fn transmit(&self) -> &[u8] {
        match self.out_chunks.front() {
            Some(chunk) => chunk,
            None => &self.out,
        }
    }

    /// Fills `bufs` with the pieces of what waits to be written, in order,
    /// for a vectored write; returns how many it filled. A server-role
    /// connection queues large payloads by reference, as pieces of their
    /// own, so a vectored write sends them without a copy.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use std::io::{IoSlice, Write};
    /// use switchboard_core::ws::{Config, Connection, Message, Role};
    /// let mut server = Connection::new(Role::Server, Arc::new(Config::default()), None);
    /// server.send(Message::text("hi")).unwrap();
    /// server.send(Message::binary(vec![7u8; 4096])).unwrap();
    /// assert_eq!(server.transmit(), b"\x81\x02hi"); // only the first piece
    ///
    /// let mut bufs = [IoSlice::new(&[]); 8];
    /// let n = server.transmit_vectored(&mut bufs);
    /// let mut socket = Vec::new();
    /// let written = socket.write_vectored(&bufs[..n]).unwrap();
    /// server.advance_transmit(written);
    /// assert_eq!(written, 4 + 4 + 4096);
    /// assert_eq!(&socket[..8], b"\x81\x02hi\x82\x7e\x10\x00");
    /// assert_eq!(server.transmit_len(), 0);
    /// ```
    pub fn transmit_vectored<'a>(&'a self, bufs: &mut [std::io::IoSlice<'a>]) -> usize {
        let pieces = self
            .out_chunks
            .iter()
            .map(|c| &c[..])
            .chain(std::iter::once(&self.out[..]))
            .filter(|p| !p.is_empty());
        let mut filled = 0;
        for (slot, piece) in bufs.iter_mut().zip(pieces) {
            *slot = std::io::IoSlice::new(piece);
            filled += 1;
        }
        filled
    }

    /// Marks `n` bytes of what waits as written: the first `n` bytes of
    /// [`transmit_vectored`](Self::transmit_vectored)'s pieces, which may
    /// reach past [`transmit`](Self::transmit)'s.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use switchboard_core::ws::{Config, Connection, Message, Role};
    /// let mut server = Connection::new(Role::Server, Arc::new(Config::default()), None);
    /// server.send(Message::text("Hello")).unwrap();
    /// assert_eq!(server.transmit(), b"\x81\x05Hello");
    /// server.advance_transmit(4); // a short write
    /// assert_eq!(server.transmit(), b"llo");
    /// assert_eq!(server.transmit_len(), 3);
    /// server.advance_transmit(3);
    /// assert!(server.transmit().is_empty());
    /// ```
    pub fn advance_transmit(&mut self, mut n: usize) {
        while n > 0
            && let Some(chunk) = self.out_chunks.front_mut()
        {
            let k = n.min(chunk.len());
            chunk.advance(k);
            n -= k;
            if chunk.is_empty() {
                self.out_chunks.pop_front();
                if self.out_chunks.is_empty() {
                    // Idle connections hold no queue either.
                    self.out_chunks = VecDeque::new();
                }
            }
        }
        if n == 0 {
            return;
        }
        // `capacity` counts from the read position, so measure the
        // allocation before advancing past it.
        let allocated = self.out.capacity();
        self.out.advance(n);
        if self.out.is_empty() && allocated > RETAINED_BUFFER {
            self.out_reserve = allocated.min(MAX_OUT_RESERVE) as u32;
            self.out = BytesMut::new();
        }
    }

    /// How many bytes wait to be written, over every piece (see
    /// [`can_send`](Self::can_send)).
    pub fn transmit_len(&self) -> usize {
        self.out_chunks.iter().map(Bytes::len).sum::<usize>() + self.out.len()
    }

    /// Whether the transmit buffer is below the
    /// [`write_buffer_limit`](Config::write_buffer_limit), so more may be
    /// queued without growing past the bound.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use switchboard_core::ws::{Config, Connection, Message, Role};
    /// let config = Config { write_buffer_limit: 16, ..Config::default() };
    /// let mut server = Connection::new(Role::Server, Arc::new(config), None);
    /// server.send(Message::text("twenty bytes of text")).unwrap();
    /// assert_eq!(server.transmit_len(), 2 + 20);
    /// assert!(!server.can_send()); // the sender waits for the socket
    /// server.advance_transmit(10);
    /// assert!(server.can_send());
    /// ```
    pub fn can_send(&self) -> bool {
        self.transmit_len() < self.config.write_buffer_limit
    }

    /// Whether the transport should be closed once the transmit buffer is
    /// written: the server closes first after the close handshake; the client
    /// waits for that (or gives up after the close timeout); a failed
    /// connection closes at once.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use switchboard_core::ws::{CloseFrame, Config, Connection, Event, Message, Role, State};
    /// # let config = Arc::new(Config::default());
    /// let mut server = Connection::new(Role::Server, config.clone(), None);
    /// let mut client = Connection::new(Role::Client, config, None);
    /// server.close(Some(CloseFrame::new(1001u16, "restart"))).unwrap();
    /// client.receive(server.transmit());
    /// server.receive(client.transmit());
    ///
    /// // Both sides are closed; the server closes the TCP connection ...
    /// assert_eq!((server.state(), client.state()), (State::Closed, State::Closed));
    /// assert!(server.should_close_transport());
    /// // ... and the client waits for it to do so.
    /// assert!(!client.should_close_transport());
    /// assert!(matches!(client.poll_event(), Some(Event::Message(Message::Close(_)))));
    /// client.handle_eof();
    /// assert_eq!(client.poll_event(), None); // not an error after the close handshake
    /// assert!(client.should_close_transport());
    /// ```
    pub fn should_close_transport(&self) -> bool {
        if self.eof || self.close_timed_out {
            return true;
        }
        self.state == State::Closed && (self.role == Role::Server || self.failed)
    }

    /// The earliest time [`handle_timeout`](Self::handle_timeout) has work.
    /// Timers start at the `handle_timeout` call after whatever started
    /// them, so call it before asking.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use std::time::{Duration, Instant};
    /// use switchboard_core::ws::{CloseFrame, Config, Connection, Role};
    /// let config = Config { close_timeout: Duration::from_secs(5), ..Config::default() };
    /// let mut server = Connection::new(Role::Server, Arc::new(config), None);
    /// assert_eq!(server.poll_timeout(), None); // no keep-alive by default
    ///
    /// let t0 = Instant::now();
    /// server.close(Some(CloseFrame::new(1000u16, ""))).unwrap();
    /// server.handle_timeout(t0);
    /// assert_eq!(server.poll_timeout(), Some(t0 + Duration::from_secs(5)));
    ///
    /// // The client never answers: give up on it.
    /// server.handle_timeout(t0 + Duration::from_secs(5));
    /// assert!(server.should_close_transport());
    /// assert_eq!(server.poll_timeout(), None);
    /// ```
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.next_ping, self.pong_deadline, self.close_deadline]
            .iter()
            .filter_map(Timer::deadline)
            .min()
    }

    /// Arms timers started since the last call and acts on those that
    /// expired: keep-alive pings, missing pongs, and close timeouts.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use std::time::{Duration, Instant};
    /// use switchboard_core::ws::{Config, Connection, Event, KeepAlive, Message, ProtocolError, Role};
    /// let secs = Duration::from_secs;
    /// let keepalive = KeepAlive { interval: secs(10), timeout: secs(5) };
    /// let config = Arc::new(Config { keepalive: Some(keepalive), ..Config::default() });
    /// let mut server = Connection::new(Role::Server, config.clone(), None);
    /// let mut client = Connection::new(Role::Client, config, None);
    ///
    /// let t0 = Instant::now();
    /// server.handle_timeout(t0);
    /// assert_eq!(server.poll_timeout(), Some(t0 + secs(10)));
    /// server.handle_timeout(t0 + secs(10));
    /// assert_eq!(server.transmit(), b"\x89\x00"); // a ping
    /// assert_eq!(server.poll_timeout(), Some(t0 + secs(15))); // its pong's deadline
    ///
    /// // The client answers pings by itself.
    /// client.receive(server.transmit());
    /// server.advance_transmit(2);
    /// assert_eq!(client.poll_event(), Some(Event::Message(Message::Ping("".into()))));
    /// server.receive(client.transmit());
    /// assert_eq!(server.poll_event(), Some(Event::Message(Message::Pong("".into()))));
    /// assert_eq!(server.poll_timeout(), Some(t0 + secs(20))); // the next ping
    ///
    /// // That one goes unanswered.
    /// server.handle_timeout(t0 + secs(20));
    /// server.handle_timeout(t0 + secs(25));
    /// assert_eq!(server.poll_event(), Some(Event::Failed(ProtocolError::KeepAliveTimeout)));
    /// assert!(server.should_close_transport());
    /// ```
    pub fn handle_timeout(&mut self, now: Instant) {
        self.next_ping.arm(now);
        self.pong_deadline.arm(now);
        self.close_deadline.arm(now);
        if self.close_deadline.expired(now) {
            self.close_deadline = Timer::Off;
            self.close_timed_out = true;
            self.state = State::Closed;
            // The peer has not taken our close frame (or a failure's) in
            // all that time: what is still queued is not going out, and
            // the transport closes without waiting for it (as Node's `ws`
            // destroys the socket at its close timeout).
            self.out = BytesMut::new();
            self.out_chunks = VecDeque::new();
        }
        if self.state != State::Open {
            self.next_ping = Timer::Off;
            self.pong_deadline = Timer::Off;
            return;
        }
        if self.pong_deadline.expired(now) {
            self.fail(ProtocolError::KeepAliveTimeout);
            return;
        }
        if self.next_ping.expired(now)
            && let Some(keepalive) = self.config.keepalive
        {
            self.queue_frame(OpCode::Ping, false, b"");
            if self.pong_deadline == Timer::Off {
                self.pong_deadline = Timer::after(now, keepalive.timeout);
            }
            self.next_ping = Timer::after(now, keepalive.interval);
        }
    }

    fn send_data(&mut self, opcode: OpCode, payload: Bytes) -> Result<(), SendError> {
        if self.state != State::Open {
            return Err(SendError::Closed);
        }
        match self.deflate.as_mut() {
            Some(deflate) if deflate.should_compress(payload.len()) => {
                let mut compressed = BytesMut::new();
                deflate.compress(&payload, &mut compressed);
                self.queue_frame(opcode, true, &compressed);
            }
            _ if self.mask_keys.is_none() && payload.len() >= ZERO_COPY_MIN => {
                // Header behind what is staged, then the payload by
                // reference: no copy of it.
                let header = FrameHeader {
                    fin: true,
                    rsv1: false,
                    rsv2: false,
                    rsv3: false,
                    opcode,
                    mask: None,
                    payload_len: payload.len() as u64,
                };
                if !self.out.is_empty() {
                    let staged = std::mem::take(&mut self.out).freeze();
                    self.out_chunks.push_back(staged);
                }
                let mut head = BytesMut::with_capacity(MAX_HEADER_LEN);
                header.encode(&mut head);
                self.out_chunks.push_back(head.freeze());
                self.out_chunks.push_back(payload);
            }
            _ => self.queue_frame(opcode, false, &payload),
        }
        Ok(())
    }

    fn send_control(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), SendError> {
        if self.state != State::Open {
            return Err(SendError::Closed);
        }
        if payload.len() > 125 {
            return Err(SendError::ControlFrameTooLong(payload.len()));
        }
        self.queue_frame(opcode, false, payload);
        Ok(())
    }

    fn queue_frame(&mut self, opcode: OpCode, rsv1: bool, payload: &[u8]) {
        let mask = self.mask_keys.as_mut().map(|keys| keys.next());
        if self.out.capacity() == 0 {
            self.out
                .reserve((self.out_reserve as usize).max(MAX_HEADER_LEN + payload.len()));
        }
        encode_frame(&mut self.out, opcode, true, rsv1, mask, payload);
    }

    fn queue_close(&mut self, frame: Option<&CloseFrame>) {
        let mut payload = [0u8; 125];
        let len = match frame {
            Some(frame) => {
                payload[..2].copy_from_slice(&frame.code.0.to_be_bytes());
                let reason = frame.reason.as_bytes();
                payload[2..2 + reason.len()].copy_from_slice(reason);
                2 + reason.len()
            }
            None => 0,
        };
        self.queue_frame(OpCode::Close, false, &payload[..len]);
    }

    /// Fails the connection: queues the close frame for `error` (when its code
    /// may be sent and we have not sent one yet) and closes.
    fn fail(&mut self, error: ProtocolError) {
        tracing::debug!(%error, role = ?self.role, "failing WebSocket connection");
        let code = error.close_code();
        if self.state == State::Open && code.is_sendable() {
            self.queue_close(Some(&CloseFrame::new(code, "")));
        }
        self.arm_close_deadline();
        self.state = State::Closed;
        self.failed = true;
        self.read_buf = BytesMut::new();
        self.frame = None;
        self.message = None;
        self.events.push_back(Event::Failed(error));
    }

    /// Parses (the rest of) one frame from the read buffer. Returns whether
    /// a whole frame was consumed.
    fn process_frame(&mut self) -> Result<bool, ProtocolError> {
        if self.state == State::Closed {
            self.read_buf.clear();
            return Ok(false);
        }
        let mut frame = match self.frame {
            Some(frame) => frame,
            None => {
                let Some((header, header_len)) = FrameHeader::parse(&self.read_buf)? else {
                    return Ok(false);
                };
                let validate_utf8 = self.check_header(&header)?;
                self.read_buf.advance(header_len);
                // A payload that takes several reads gets its room at once
                // (within the limits just checked). A smaller one that ends
                // past this read grows with the next read's reservation,
                // one allocation instead of two.
                let payload_len = header.payload_len as usize;
                if payload_len > MULTI_READ_PAYLOAD && payload_len > self.read_buf.len() {
                    self.read_buf.reserve(payload_len - self.read_buf.len());
                }
                FrameInProgress {
                    header,
                    processed: 0,
                    validate_utf8,
                }
            }
        };
        let payload_len = frame.header.payload_len as usize;
        let available = self.read_buf.len().min(payload_len);
        if available > frame.processed {
            // Unmasked already, as it was appended.
            let fresh = &self.read_buf[frame.processed..available];
            if frame.validate_utf8 {
                self.utf8
                    .feed(fresh)
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
            }
            frame.processed = available;
        }
        if available < payload_len {
            self.frame = Some(frame);
            return Ok(false);
        }
        self.frame = None;
        let payload = self.read_buf.split_to(payload_len);
        self.handle_frame(frame.header, payload)?;
        Ok(true)
    }

    /// Checks a header against the role, the negotiated extensions, the
    /// message in progress and the limits, before its payload is read.
    /// Returns whether the payload is uncompressed text to validate.
    fn check_header(&mut self, header: &FrameHeader) -> Result<bool, ProtocolError> {
        let data_start = matches!(header.opcode, OpCode::Text | OpCode::Binary);
        if header.rsv2 || header.rsv3 || (header.rsv1 && !(data_start && self.deflate.is_some())) {
            return Err(ProtocolError::ReservedBits);
        }
        if header.opcode.is_control() {
            if !header.fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            if header.payload_len > 125 {
                return Err(ProtocolError::ControlFrameTooLong(header.payload_len));
            }
        }
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        if header.payload_len > self.config.max_frame_size as u64 {
            return Err(ProtocolError::FrameTooLarge {
                size: header.payload_len,
                limit: self.config.max_frame_size,
            });
        }
        let too_large = ProtocolError::MessageTooLarge {
            limit: self.config.max_message_size,
        };
        match header.opcode {
            OpCode::Text | OpCode::Binary => {
                if self.message.is_some() {
                    return Err(ProtocolError::ExpectedContinuation);
                }
                if !header.rsv1 && header.payload_len > self.config.max_message_size as u64 {
                    return Err(too_large);
                }
                let validate = header.opcode == OpCode::Text && !header.rsv1;
                if validate {
                    self.utf8 = Utf8Validator::default();
                }
                Ok(validate)
            }
            OpCode::Continuation => {
                let Some(message) = &self.message else {
                    return Err(ProtocolError::UnexpectedContinuation);
                };
                if message.fragments >= self.config.max_fragments {
                    return Err(ProtocolError::TooManyFragments {
                        limit: self.config.max_fragments,
                    });
                }
                if !message.compressed
                    && message.data.len() as u64 + header.payload_len
                        > self.config.max_message_size as u64
                {
                    return Err(too_large);
                }
                Ok(message.text && !message.compressed)
            }
            _ => Ok(false),
        }
    }

    fn handle_frame(
        &mut self,
        header: FrameHeader,
        payload: BytesMut,
    ) -> Result<(), ProtocolError> {
        match header.opcode {
            OpCode::Ping => {
                if self.state == State::Open {
                    self.queue_frame(OpCode::Pong, false, &payload);
                }
                self.emit(Message::Ping(payload.freeze()));
            }
            OpCode::Pong => {
                self.pong_deadline = Timer::Off;
                self.emit(Message::Pong(payload.freeze()));
            }
            OpCode::Close => self.handle_close(&payload)?,
            OpCode::Text if header.fin && !header.rsv1 => {
                self.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
                self.emit(Message::Text(Text::from_validated(payload.freeze())));
            }
            OpCode::Binary if header.fin && !header.rsv1 => {
                self.emit(Message::Binary(payload.freeze()));
            }
            OpCode::Text | OpCode::Binary => {
                self.message = Some(MessageInProgress {
                    text: header.opcode == OpCode::Text,
                    compressed: header.rsv1,
                    data: BytesMut::new(),
                    fragments: 1,
                });
                self.append_fragment(payload, header.fin)?;
            }
            OpCode::Continuation => {
                if let Some(message) = self.message.as_mut() {
                    message.fragments += 1;
                }
                self.append_fragment(payload, header.fin)?;
            }
        }
        Ok(())
    }

    fn append_fragment(&mut self, payload: BytesMut, fin: bool) -> Result<(), ProtocolError> {
        let limit = self.config.max_message_size;
        let message = self.message.as_mut().expect("checked by check_header");
        if message.compressed {
            let deflate = self.deflate.as_mut().expect("rsv1 checked by check_header");
            let before = message.data.len();
            deflate
                .decompress(&payload, fin, &mut message.data, limit)
                .map_err(|e| match e {
                    InflateError::Corrupt => ProtocolError::CorruptCompression,
                    InflateError::TooLarge => ProtocolError::MessageTooLarge { limit },
                })?;
            if message.text {
                if before == 0 {
                    self.utf8 = Utf8Validator::default();
                }
                self.utf8
                    .feed(&message.data[before..])
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
            }
        } else if message.data.is_empty() {
            message.data = payload;
        } else {
            message.data.extend_from_slice(&payload);
        }
        if fin {
            let message = self.message.take().expect("present");
            let data = message.data.freeze();
            if message.text {
                self.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
                self.emit(Message::Text(Text::from_validated(data)));
            } else {
                self.emit(Message::Binary(data));
            }
        }
        Ok(())
    }

    fn handle_close(&mut self, payload: &[u8]) -> Result<(), ProtocolError> {
        let frame = match payload.len() {
            0 => None,
            1 => return Err(ProtocolError::TruncatedCloseFrame),
            _ => {
                let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
                if !code.is_sendable() {
                    return Err(ProtocolError::InvalidCloseCode(code.0));
                }
                let reason = Text::try_from_bytes(Bytes::copy_from_slice(&payload[2..]))
                    .map_err(|_| ProtocolError::InvalidCloseReason)?;
                Some(CloseFrame { code, reason })
            }
        };
        if self.state == State::Open {
            // Echo the status code, as RFC 6455 section 5.5.1 suggests.
            let echo = frame.as_ref().map(|f| CloseFrame::new(f.code, ""));
            self.queue_close(echo.as_ref());
            // A client waits this long for the server to close TCP; a
            // server, for the peer to take the echo.
            self.close_deadline = Timer::Arm(self.config.close_timeout);
        } else if self.role == Role::Client {
            self.close_deadline = Timer::Arm(self.config.close_timeout);
        }
        self.state = State::Closed;
        self.read_buf.clear();
        self.emit(Message::Close(frame));
        Ok(())
    }

    /// Bounds what is left of a closed connection: the transport gets the
    /// close timeout to take what is queued (a failure's close frame, a
    /// close echo), unless a close timeout already runs.
    fn arm_close_deadline(&mut self) {
        if self.close_deadline == Timer::Off {
            self.close_deadline = Timer::Arm(self.config.close_timeout);
        }
    }

    fn emit(&mut self, message: Message) {
        self.events.push_back(Event::Message(message));
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.role)
            .field("state", &self.state)
            .field("compressed", &self.deflate.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::KeepAlive;
    use proptest::prelude::*;
    use std::time::Duration;

    fn masked(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        let op = match opcode {
            0 => OpCode::Continuation,
            1 => OpCode::Text,
            2 => OpCode::Binary,
            8 => OpCode::Close,
            9 => OpCode::Ping,
            _ => OpCode::Pong,
        };
        encode_frame(&mut out, op, fin, false, Some([1, 2, 3, 4]), payload);
        out.to_vec()
    }

    fn server(config: Config) -> Connection {
        Connection::new(Role::Server, Arc::new(config), None)
    }

    /// Feeds `bytes` to `conn` in reads of the sizes in `reads` (cycled),
    /// draining the events after each read; returns them all.
    fn receive_in_reads(conn: &mut Connection, bytes: &[u8], reads: &[usize]) -> Vec<Event> {
        let mut events = Vec::new();
        let mut rest = bytes;
        for n in reads.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (read, after) = rest.split_at((*n).min(rest.len()));
            conn.receive(read);
            while let Some(event) = conn.poll_event() {
                events.push(event);
            }
            rest = after;
        }
        events
    }

    /// Timeouts too long to reach an `Instant` (`Duration::MAX`, for
    /// "never") never fire, rather than panicking when armed.
    #[test]
    fn timeouts_past_the_end_of_time_never_fire() {
        let config = Config {
            keepalive: Some(KeepAlive {
                interval: Duration::MAX,
                timeout: Duration::MAX,
            }),
            close_timeout: Duration::MAX,
            ..Config::default()
        };
        let mut conn = server(config);
        let t0 = Instant::now();
        conn.handle_timeout(t0);
        assert_eq!(conn.poll_timeout(), None);
        conn.close(None).unwrap();
        conn.handle_timeout(t0);
        assert_eq!(conn.poll_timeout(), None);
        conn.handle_timeout(t0 + Duration::from_secs(1_000 * 86_400));
        assert_eq!(conn.state(), State::CloseSent);
    }

    #[test]
    fn keepalive_pings_and_fails_without_pong() {
        let config = Config {
            keepalive: Some(KeepAlive {
                interval: Duration::from_secs(10),
                timeout: Duration::from_secs(5),
            }),
            ..Config::default()
        };
        let mut conn = server(config);
        let t0 = Instant::now();
        conn.handle_timeout(t0);
        assert_eq!(conn.poll_timeout(), Some(t0 + Duration::from_secs(10)));
        conn.handle_timeout(t0 + Duration::from_secs(10));
        assert_eq!(conn.transmit(), b"\x89\x00", "a ping goes out");
        let n = conn.transmit().len();
        conn.advance_transmit(n);
        // A pong clears the deadline.
        conn.receive(&masked(10, true, b""));
        assert!(matches!(
            conn.poll_event(),
            Some(Event::Message(Message::Pong(_)))
        ));
        conn.handle_timeout(t0 + Duration::from_secs(16));
        assert_eq!(conn.state(), State::Open);
        // The next ping goes unanswered.
        conn.handle_timeout(t0 + Duration::from_secs(20));
        assert_eq!(conn.transmit(), b"\x89\x00");
        conn.handle_timeout(t0 + Duration::from_secs(25));
        assert_eq!(
            conn.poll_event(),
            Some(Event::Failed(ProtocolError::KeepAliveTimeout))
        );
        assert!(conn.should_close_transport());
    }

    #[test]
    fn close_waits_for_the_peer_then_times_out() {
        let mut conn = server(Config::default());
        let t0 = Instant::now();
        conn.close(Some(CloseFrame::new(1000u16, "bye"))).unwrap();
        conn.handle_timeout(t0);
        assert_eq!(conn.state(), State::CloseSent);
        assert!(!conn.should_close_transport());
        assert_eq!(conn.send(Message::text("late")), Err(SendError::Closed));
        conn.handle_timeout(t0 + Duration::from_secs(5));
        assert!(conn.should_close_transport());
    }

    /// A peer that reads nothing: once the connection is done (failed, or
    /// the peer's close echoed), what is queued gets the close timeout to
    /// go out, then is dropped so the transport can close.
    #[test]
    fn unwritten_output_of_a_closed_connection_is_dropped_at_the_close_timeout() {
        let t0 = Instant::now();
        let timeout = Config::default().close_timeout;
        // Failed: a protocol error's close frame stays unwritten.
        let mut failed = server(Config::default());
        failed.send(Message::binary(vec![1u8; 4096])).unwrap();
        failed.receive(b"\x81\x00"); // unmasked
        assert!(matches!(failed.poll_event(), Some(Event::Failed(_))));
        // Echoed: the peer's close is answered, the answer stays unwritten.
        let mut echoed = server(Config::default());
        echoed.send(Message::binary(vec![1u8; 4096])).unwrap();
        echoed.receive(&masked(8, true, b"\x03\xe8"));
        assert!(matches!(
            echoed.poll_event(),
            Some(Event::Message(Message::Close(_)))
        ));
        for conn in [&mut failed, &mut echoed] {
            conn.handle_timeout(t0);
            assert!(conn.should_close_transport());
            assert_eq!(conn.poll_timeout(), Some(t0 + timeout));
            conn.handle_timeout(t0 + timeout);
            assert_eq!(conn.transmit_len(), 0, "the unwritten output is dropped");
            assert_eq!(conn.poll_timeout(), None);
        }
    }

    #[test]
    fn client_waits_for_the_server_to_close_tcp() {
        let mut conn = Connection::new(Role::Client, Arc::new(Config::default()), None);
        let t0 = Instant::now();
        conn.handle_timeout(t0);
        conn.receive(b"\x88\x02\x03\xe8");
        assert!(matches!(
            conn.poll_event(),
            Some(Event::Message(Message::Close(Some(_))))
        ));
        assert_eq!(conn.state(), State::Closed);
        assert!(!conn.should_close_transport(), "the server closes first");
        conn.handle_timeout(t0 + Duration::from_secs(1));
        conn.handle_eof();
        assert!(conn.should_close_transport());
        assert_eq!(
            conn.poll_event(),
            None,
            "EOF after the close handshake is not an error"
        );
    }

    #[test]
    fn events_are_decoded_one_at_a_time() {
        let mut conn = server(Config::default());
        let mut bytes = masked(1, true, b"first");
        bytes.extend(masked(1, true, b"\xff"));
        conn.receive(&bytes);
        assert_eq!(
            conn.poll_event(),
            Some(Event::Message(Message::text("first")))
        );
        // The answer to the first message is queued before the failure.
        conn.send(Message::text("answer")).unwrap();
        assert_eq!(
            conn.poll_event(),
            Some(Event::Failed(ProtocolError::InvalidUtf8))
        );
        assert_eq!(conn.transmit(), b"\x81\x06answer\x88\x02\x03\xef");
    }

    #[test]
    fn idle_connections_release_their_buffers() {
        let mut conn = server(Config::default());
        conn.receive(&masked(2, true, &[0u8; 4096]));
        assert!(matches!(
            conn.poll_event(),
            Some(Event::Message(Message::Binary(_)))
        ));
        conn.send(Message::binary(vec![0u8; 4096])).unwrap();
        while !conn.transmit().is_empty() {
            let n = conn.transmit().len();
            conn.advance_transmit(n);
        }
        assert_eq!(conn.read_buf.capacity(), 0);
        assert_eq!(conn.out.capacity(), 0);
    }

    proptest! {
        #[test]
        fn random_input_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)) {
            for role in [Role::Server, Role::Client] {
                let config = Config { max_frame_size: 1 << 10, max_message_size: 1 << 12, ..Config::default() };
                let mut conn = Connection::new(role, Arc::new(config), Some(DeflateParams::default()));
                for chunk in &chunks {
                    conn.receive(chunk);
                    while conn.poll_event().is_some() {}
                }
                conn.handle_eof();
                while conn.poll_event().is_some() {}
                prop_assert_eq!(conn.state(), State::Closed);
            }
        }

        #[test]
        fn any_fragmentation_of_valid_frames_gives_the_same_messages(split in proptest::collection::vec(1usize..40, 1..10)) {
            let mut bytes = masked(1, false, "κόσ".as_bytes());
            bytes.extend(masked(9, true, b"p"));
            bytes.extend(masked(0, true, "με".as_bytes()));
            bytes.extend(masked(2, true, &[7u8; 300]));
            let mut conn = server(Config::default());
            let events = receive_in_reads(&mut conn, &bytes, &split);
            prop_assert_eq!(events, vec![
                Event::Message(Message::Ping(Bytes::from_static(b"p"))),
                Event::Message(Message::text("κόσμε")),
                Event::Message(Message::binary(vec![7u8; 300])),
            ]);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn large_frames_in_reads_of_any_size_give_the_same_messages(
            reads in proptest::collection::vec(1usize..100_000, 1..8),
        ) {
            // Payloads below, at and above the size reserved at once, some
            // ending inside a read and some across several.
            let sizes = [16 << 10, 16 << 10, (64 << 10) + 1, 200_000, 3, 16 << 10];
            let payloads: Vec<Vec<u8>> = sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| (0..n).map(|j| (i * 31 + j) as u8).collect())
                .collect();
            let bytes: Vec<u8> = payloads.iter().flat_map(|p| masked(2, true, p)).collect();
            let mut conn = server(Config::default());
            let events = receive_in_reads(&mut conn, &bytes, &reads);
            let expected: Vec<Event> = payloads
                .into_iter()
                .map(|p| Event::Message(Message::binary(p)))
                .collect();
            prop_assert_eq!(events, expected);
        }
    }
}
