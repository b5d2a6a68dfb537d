//! The Socket.IO server cases, byte for byte, written from the protocol
//! (socketio/socket.io-protocol: the v5 spec and its test suite) and
//! sections 2 and 3 of `shared/conformance-contract.md`. `tests/tests/sio.rs`
//! runs every case against the official Node `socket.io` server
//! (`tests/interop/sio-server.mjs`, to check the cases themselves) and
//! against `conformance-server` on every runtime.
//!
//! Each case is a plain function taking the server's address, and the
//! [`Transport`] when it holds for both. A case drives one or more
//! [`Session`]s: an Engine.IO session on `/socket.io/` over raw HTTP or raw
//! RFC 6455 frames (the helpers of [`crate::eio_cases`]), with a reader
//! thread that keeps the heartbeat going (answers the server's pings in v4,
//! sends pings in v3) and queues what the server sends, so a case can hold
//! several sessions and wait as long as it needs to.
//!
//! The server under test is configured as the contract says: path
//! `/socket.io/`, `pingInterval` 300 ms, `pingTimeout` 200 ms, `maxPayload`
//! 1 000 000, `connectTimeout` 1000 ms, namespaces `/`, `/custom` and
//! `/admin` with the handlers of the contract's tables, Engine.IO v3 clients
//! accepted.
//!
//! Wire facts the cases rely on (protocol v5): every Socket.IO packet
//! travels in an Engine.IO message packet, so it starts with `4` on the wire;
//! a packet is `<type>[<attachments>-][<namespace>,][<ack id>][<JSON>]` with
//! the types `0` CONNECT, `1` DISCONNECT, `2` EVENT, `3` ACK, `4`
//! CONNECT_ERROR, `5` BINARY_EVENT, `6` BINARY_ACK; the namespace is left
//! out for `/`; the client must CONNECT first (optionally with an auth
//! object), and the server answers CONNECT with `{"sid": ...}` (an id of its
//! own, not the Engine.IO sid) or CONNECT_ERROR with `{"message": ...}`; an
//! EVENT's payload is a non-empty array whose first item is the event name;
//! an ACK carries the id of the event it answers and an array; binary
//! values are replaced by `{"_placeholder":true,"num":N}` and sent as the
//! N-th binary message after the packet. Protocol v4 (socket.io 2.x over
//! Engine.IO v3) differs: `/` is joined without a CONNECT (the server sends
//! its CONNECT, `40`, unasked), and a refused CONNECT carries a plain string.
//!
//! Received packets are compared by meaning: the header (type, attachments,
//! namespace, ack id) exactly, the JSON payload as JSON (object keys in any
//! order).

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::eio_cases::{
    self, Http, HttpError, Json, Polling, Response, TEXT_BODY, WsMsg, assert_error,
    assert_session_closed, check_open_packet, decode_v3_payload, decode_v4_payload,
    encode_v3_payload, http_request, ws_open, ws_recv, ws_recv_message, ws_text,
};
use crate::raw::{RawConn, frame};

/// The Socket.IO path of section 2.
pub const PATH: &str = "/socket.io/";
/// `connectTimeout` of the server under test.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);

/// How long any single answer may take.
const T: Duration = Duration::from_secs(5);
/// How long a case watches for something that must not come.
const QUIET: Duration = Duration::from_millis(400);

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

// ---------------------------------------------------------------------------
// Socket.IO packets.

/// A decoded Socket.IO packet (as carried by one Engine.IO message).
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// The packet type (0..=6).
    pub kind: u8,
    /// The number of binary attachments (BINARY_EVENT, BINARY_ACK).
    pub attachments: Option<u64>,
    /// The namespace (`/` when left out).
    pub nsp: String,
    /// The ack id.
    pub id: Option<u64>,
    /// The JSON payload.
    pub data: Option<Json>,
}

impl Packet {
    /// Decodes an Engine.IO message packet holding a Socket.IO packet: `4`
    /// then `<type>[<n>-][<nsp>,][<id>][<json>]`.
    pub fn parse(message: &str) -> Result<Packet, String> {
        let s = message
            .strip_prefix('4')
            .ok_or("not an Engine.IO message packet")?;
        let bytes = s.as_bytes();
        let kind = match bytes.first() {
            Some(c @ b'0'..=b'6') => c - b'0',
            other => return Err(format!("bad packet type {:?}", other.map(|c| *c as char))),
        };
        let mut at = 1;
        let digits = |at: &mut usize| {
            let start = *at;
            while bytes.get(*at).is_some_and(u8::is_ascii_digit) {
                *at += 1;
            }
            &s[start..*at]
        };
        let attachments = if kind == 5 || kind == 6 {
            let n = digits(&mut at);
            if bytes.get(at) != Some(&b'-') {
                return Err("attachment count without '-'".into());
            }
            at += 1;
            Some(n.parse().map_err(|_| format!("attachment count {n:?}"))?)
        } else {
            None
        };
        let nsp = if bytes.get(at) == Some(&b'/') {
            let end = s[at..].find(',').map_or(s.len(), |p| at + p);
            let nsp = s[at..end].to_owned();
            at = (end + 1).min(s.len());
            nsp
        } else {
            "/".to_owned()
        };
        let id = digits(&mut at);
        let id = if id.is_empty() {
            None
        } else {
            Some(id.parse().map_err(|_| format!("ack id {id:?}"))?)
        };
        let data = if at < s.len() {
            Some(Json::parse(&s[at..])?)
        } else {
            None
        };
        Ok(Packet {
            kind,
            attachments,
            nsp,
            id,
            data,
        })
    }

    /// Whether `self` and `other` mean the same (JSON objects compared
    /// regardless of key order).
    pub fn same_as(&self, other: &Packet) -> bool {
        self.kind == other.kind
            && self.attachments == other.attachments
            && self.nsp == other.nsp
            && self.id == other.id
            && self.data.as_ref().map(normalized) == other.data.as_ref().map(normalized)
    }
}

/// `json` with the fields of every object sorted by key.
pub fn normalized(json: &Json) -> Json {
    match json {
        Json::Object(fields) => {
            let mut fields: Vec<(String, Json)> = fields
                .iter()
                .map(|(k, v)| (k.clone(), normalized(v)))
                .collect();
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            Json::Object(fields)
        }
        Json::Array(items) => Json::Array(items.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

/// Asserts the Engine.IO message `got` holds the same Socket.IO packet as
/// `want` (see [`Packet::same_as`]).
pub fn assert_packet(got: &str, want: &str, what: &str) {
    let g = Packet::parse(got)
        .unwrap_or_else(|e| panic!("{what}: {got:?} is not a Socket.IO packet ({e})"));
    let w = Packet::parse(want).unwrap_or_else(|e| panic!("bad expected packet {want:?}: {e}"));
    assert!(g.same_as(&w), "{what}: expected {want}\n got {got}");
}

/// `s` as a JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A binary placeholder, `{"_placeholder":true,"num":n}`.
fn ph(n: u32) -> String {
    format!(r#"{{"_placeholder":true,"num":{n}}}"#)
}

// ---------------------------------------------------------------------------
// Sessions.

/// The Engine.IO transport a session runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// HTTP long-polling.
    Polling,
    /// WebSocket from the start.
    Websocket,
}

/// An Engine.IO message: a text packet as on the wire (`4...`), or a binary
/// message's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text message packet, `4` included.
    Text(String),
    /// A binary message (the bytes alone, without any v3 type byte).
    Binary(Vec<u8>),
}

impl Frame {
    /// A text frame.
    pub fn text(packet: impl Into<String>) -> Frame {
        Frame::Text(packet.into())
    }
}

fn describe(frame: &Frame) -> String {
    match frame {
        Frame::Text(t) if t.len() > 200 => {
            let mut end = 200;
            while !t.is_char_boundary(end) {
                end -= 1;
            }
            format!("text {:?}... ({} bytes)", &t[..end], t.len())
        }
        Frame::Text(t) => format!("text {t:?}"),
        Frame::Binary(b) if b.len() > 32 => format!("binary of {} bytes", b.len()),
        Frame::Binary(b) => format!("binary {b:?}"),
    }
}

/// What a session's reader thread reports.
#[derive(Debug)]
pub enum Event {
    /// A message from the server.
    Frame(Frame),
    /// The server ended the session (how).
    Closed(String),
    /// Something that is not Engine.IO came (what).
    Error(String),
}

/// The sending half of a session, shared with its reader thread (which
/// answers pings through it).
enum Writer {
    Polling { post: Mutex<Http>, target: String },
    Ws { stream: Mutex<TcpStream> },
}

impl Writer {
    fn post(&self, body: &str) -> Result<Response, HttpError> {
        let Writer::Polling { post, target } = self else {
            unreachable!("post on a websocket session")
        };
        let mut http = post.lock().unwrap_or_else(|e| e.into_inner());
        http.send("POST", target, &[TEXT_BODY], body.as_bytes());
        http.recv(T)
    }

    fn ws_write(&self, bytes: &[u8]) -> std::io::Result<()> {
        let Writer::Ws { stream } = self else {
            unreachable!("websocket write on a polling session")
        };
        let mut stream = stream.lock().unwrap_or_else(|e| e.into_inner());
        stream.write_all(bytes)
    }
}

/// An Engine.IO session on [`PATH`] with a reader thread (see the module
/// docs). Dropping it stops the thread and, on websocket, closes the
/// connection.
pub struct Session {
    /// The Engine.IO session id.
    pub sid: String,
    /// The transport.
    pub transport: Transport,
    /// The Engine.IO protocol revision (3 or 4).
    pub eio: u8,
    addr: SocketAddr,
    writer: Arc<Writer>,
    rx: Receiver<Event>,
    stop: Arc<AtomicBool>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Writer::Ws { stream } = &*self.writer {
            let stream = stream.lock().unwrap_or_else(|e| e.into_inner());
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
}

/// Runs a reader loop, turning a panic into an [`Event::Error`].
fn reader(tx: Sender<Event>, body: impl FnOnce(&Sender<Event>) + Send + 'static) {
    std::thread::spawn(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&tx)));
        if let Err(p) = result {
            let _ = tx.send(Event::Error(format!("reader: {}", panic_text(&*p))));
        }
    });
}

fn ws_reader(
    mut conn: RawConn,
    writer: Arc<Writer>,
    eio: u8,
    stop: Arc<AtomicBool>,
    tx: &Sender<Event>,
) {
    let text = |t: &str| frame(1, true, 0, t.as_bytes(), true);
    let mut last_ping: Option<Instant> = None;
    loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        if eio == 3 && last_ping.is_none_or(|t| t.elapsed() >= Duration::from_millis(100)) {
            let _ = writer.ws_write(&text("2"));
            last_ping = Some(Instant::now());
        }
        let event = match ws_recv(&mut conn, Duration::from_millis(50)) {
            WsMsg::Timeout => continue,
            WsMsg::Close(code) => Event::Closed(format!("close frame {code:?}")),
            WsMsg::Eof => Event::Closed("end of the connection".into()),
            WsMsg::Text(t) => match t.as_str() {
                "2" if eio == 4 => {
                    let _ = writer.ws_write(&text("3"));
                    continue;
                }
                "3" if eio == 3 => continue,
                "6" => continue,
                "1" => Event::Closed("close packet".into()),
                _ if t.starts_with('4') => Event::Frame(Frame::Text(t)),
                _ => Event::Error(format!("unexpected Engine.IO packet {t:?}")),
            },
            WsMsg::Binary(b) if eio == 3 => match b.split_first() {
                Some((4, rest)) => Event::Frame(Frame::Binary(rest.to_vec())),
                _ => Event::Error(format!(
                    "a v3 binary message must start with the message type 4: {b:?}"
                )),
            },
            WsMsg::Binary(b) => Event::Frame(Frame::Binary(b)),
        };
        let end = matches!(event, Event::Closed(_));
        if tx.send(event).is_err() || end {
            return;
        }
    }
}

fn polling_reader(
    mut get: Http,
    target: String,
    writer: Arc<Writer>,
    eio: u8,
    stop: Arc<AtomicBool>,
    tx: &Sender<Event>,
) {
    loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        if eio == 3 {
            // v3: the client pings; the pong releases the poll.
            let _ = writer.post(&encode_v3_payload(&["2"]));
        }
        get.send("GET", &target, &[], b"");
        let r = match get.recv(T) {
            Ok(r) => r,
            Err(HttpError::Closed) => {
                let _ = tx.send(Event::Closed("the poll's connection was closed".into()));
                return;
            }
            Err(e) => {
                let _ = tx.send(Event::Error(format!("poll: no answer ({e:?})")));
                return;
            }
        };
        if r.status != 200 {
            let _ = tx.send(Event::Closed(format!(
                "the poll got {}: {}",
                r.status,
                r.text()
            )));
            return;
        }
        if eio == 3
            && r.header("content-type")
                .is_some_and(|t| t.contains("octet-stream"))
        {
            let _ = tx.send(Event::Error("unexpected binary v3 payload".into()));
            return;
        }
        let text = r.text();
        let packets = if eio == 3 {
            decode_v3_payload(&text)
        } else {
            decode_v4_payload(&text)
        };
        let mut messages = 0;
        for p in packets {
            let event = match p.as_bytes().first() {
                Some(b'4') => Event::Frame(Frame::Text(p)),
                Some(b'b') => {
                    let b64 = if eio == 3 {
                        p.strip_prefix("b4")
                    } else {
                        p.strip_prefix('b')
                    };
                    match b64.and_then(|b| BASE64.decode(b).ok()) {
                        Some(data) => Event::Frame(Frame::Binary(data)),
                        None => Event::Error(format!("bad base64 packet {p:?}")),
                    }
                }
                Some(b'2') if eio == 4 => {
                    let _ = writer.post("3");
                    continue;
                }
                Some(b'3') if eio == 3 => continue,
                Some(b'6') => continue,
                Some(b'1') => Event::Closed("close packet".into()),
                _ => Event::Error(format!("unexpected Engine.IO packet {p:?}")),
            };
            messages += 1;
            let end = matches!(event, Event::Closed(_));
            if tx.send(event).is_err() || end {
                return;
            }
        }
        if eio == 3 && messages == 0 {
            sleep_ms(50);
        }
    }
}

impl Session {
    /// Opens a v4 Engine.IO session on [`PATH`] (the handshake is checked as
    /// section 2 requires) and starts its reader.
    pub fn open(addr: SocketAddr, transport: Transport) -> Session {
        Self::open_eio(addr, transport, 4)
    }

    /// Opens a v3 Engine.IO session on [`PATH`] (a socket.io 2.x client).
    pub fn open_v3(addr: SocketAddr, transport: Transport) -> Session {
        Self::open_eio(addr, transport, 3)
    }

    fn open_eio(addr: SocketAddr, transport: Transport, eio: u8) -> Session {
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let (sid, writer) = match transport {
            Transport::Polling => {
                let mut get = Http::new(addr);
                let r = get.request(
                    "GET",
                    &format!("{PATH}?EIO={eio}&transport=polling"),
                    &[],
                    b"",
                );
                assert_eq!(r.status, 200, "handshake: {}{}", r.head, r.text());
                let packets = if eio == 3 {
                    decode_v3_payload(&r.text())
                } else {
                    decode_v4_payload(&r.text())
                };
                let sid = check_open_packet(&packets[0], &["websocket"]);
                if eio == 4 {
                    assert_eq!(
                        packets.len(),
                        1,
                        "before a CONNECT, the handshake is the open packet alone: {packets:?}"
                    );
                }
                for p in &packets[1..] {
                    let _ = tx.send(Event::Frame(Frame::Text(p.clone())));
                }
                let target = format!("{PATH}?EIO={eio}&transport=polling&sid={sid}");
                let writer = Arc::new(Writer::Polling {
                    post: Mutex::new(Http::new(addr)),
                    target: target.clone(),
                });
                let (w, s) = (writer.clone(), stop.clone());
                reader(tx, move |tx| polling_reader(get, target, w, eio, s, tx));
                (sid, writer)
            }
            Transport::Websocket => {
                let mut conn = ws_open(addr, &format!("{PATH}?EIO={eio}&transport=websocket"));
                let sid = match ws_recv(&mut conn, T) {
                    WsMsg::Text(open) => check_open_packet(&open, &[]),
                    other => panic!("expected the open packet, got {other:?}"),
                };
                let stream = conn.stream.try_clone().expect("clone the socket");
                let writer = Arc::new(Writer::Ws {
                    stream: Mutex::new(stream),
                });
                let (w, s) = (writer.clone(), stop.clone());
                reader(tx, move |tx| ws_reader(conn, w, eio, s, tx));
                (sid, writer)
            }
        };
        Session {
            sid,
            transport,
            eio,
            addr,
            writer,
            rx,
            stop,
        }
    }

    /// A v4 session connected to `/` (the `auth` event consumed); returns
    /// it and its Socket.IO id.
    pub fn connected(addr: SocketAddr, transport: Transport) -> (Session, String) {
        let s = Session::open(addr, transport);
        let id = s.connect("/", None);
        s.expect_auth("/", "{}");
        (s, id)
    }

    fn write(&self, frames: &[Frame], strict: bool) {
        match &*self.writer {
            Writer::Polling { .. } => {
                let body = if self.eio == 3 {
                    let packets: Vec<String> = frames
                        .iter()
                        .map(|f| match f {
                            Frame::Text(t) => t.clone(),
                            Frame::Binary(b) => format!("b4{}", BASE64.encode(b)),
                        })
                        .collect();
                    let refs: Vec<&str> = packets.iter().map(String::as_str).collect();
                    encode_v3_payload(&refs)
                } else {
                    frames
                        .iter()
                        .map(|f| match f {
                            Frame::Text(t) => t.clone(),
                            Frame::Binary(b) => format!("b{}", BASE64.encode(b)),
                        })
                        .collect::<Vec<_>>()
                        .join("\x1e")
                };
                let r = self.writer.post(&body);
                if strict {
                    let r = r.unwrap_or_else(|e| panic!("POST {body:?}: no answer ({e:?})"));
                    assert_eq!(
                        (r.status, r.text().as_str()),
                        (200, "ok"),
                        "POST {body:?}: {}",
                        r.head
                    );
                }
            }
            Writer::Ws { .. } => {
                for f in frames {
                    let bytes = match f {
                        Frame::Text(t) => frame(1, true, 0, t.as_bytes(), true),
                        Frame::Binary(b) if self.eio == 3 => {
                            let mut data = vec![4u8];
                            data.extend_from_slice(b);
                            frame(2, true, 0, &data, true)
                        }
                        Frame::Binary(b) => frame(2, true, 0, b, true),
                    };
                    let result = self.writer.ws_write(&bytes);
                    if strict {
                        result.unwrap_or_else(|e| panic!("write {}: {e}", describe(f)));
                    }
                }
            }
        }
    }

    /// Sends one text packet (`4...`), which the server must accept.
    pub fn send(&self, packet: &str) {
        self.write(&[Frame::text(packet)], true);
    }

    /// Sends messages (over polling, in one POST), which the server must
    /// accept.
    pub fn send_frames(&self, frames: &[Frame]) {
        self.write(frames, true);
    }

    /// Sends messages the server may refuse in any way.
    pub fn send_lossy(&self, frames: &[Frame]) {
        self.write(frames, false);
    }

    /// The next event within `timeout` (`None`: nothing came).
    pub fn next(&self, timeout: Duration) -> Option<Event> {
        match self.rx.recv_timeout(timeout) {
            Ok(event) => Some(event),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                Some(Event::Error("the reader thread ended".into()))
            }
        }
    }

    /// The next message, which must come within a few seconds.
    pub fn recv(&self, what: &str) -> Frame {
        match self.next(T) {
            Some(Event::Frame(f)) => f,
            Some(Event::Closed(how)) => panic!("{what}: the session was closed ({how})"),
            Some(Event::Error(e)) => panic!("{what}: {e}"),
            None => panic!("{what}: nothing came within {T:?}"),
        }
    }

    /// The next message, which must be a text packet.
    pub fn recv_text(&self, what: &str) -> String {
        match self.recv(what) {
            Frame::Text(t) => t,
            other => panic!("{what}: expected a text packet, got {}", describe(&other)),
        }
    }

    /// The next message, as a decoded Socket.IO packet.
    pub fn recv_packet(&self, what: &str) -> Packet {
        let t = self.recv_text(what);
        Packet::parse(&t)
            .unwrap_or_else(|e| panic!("{what}: {t:?} is not a Socket.IO packet ({e})"))
    }

    /// Asserts the next message is the text packet `want` (by meaning).
    pub fn expect(&self, want: &str) {
        let got = self.recv_text(want);
        assert_packet(&got, want, "");
    }

    /// Asserts the next message is a binary message holding `want`.
    pub fn expect_binary(&self, want: &[u8]) {
        match self.recv("a binary attachment") {
            Frame::Binary(b) => assert_eq!(b, want, "binary attachment"),
            other => panic!(
                "expected a binary attachment of {} bytes, got {}",
                want.len(),
                describe(&other)
            ),
        }
    }

    /// Asserts the server sends nothing (but the heartbeat) for `time`.
    pub fn expect_quiet(&self, time: Duration, what: &str) {
        match self.next(time) {
            None => {}
            Some(Event::Frame(f)) => panic!("{what}: unexpected {}", describe(&f)),
            Some(Event::Closed(how)) => panic!("{what}: the session was closed ({how})"),
            Some(Event::Error(e)) => panic!("{what}: {e}"),
        }
    }

    /// Asserts the server ends the session within `timeout`; after that,
    /// polling requests for its sid get 400. Returns the messages that came
    /// before the end.
    pub fn expect_closed(&self, timeout: Duration, what: &str) -> Vec<Frame> {
        self.expect_closed_how(timeout, what).0
    }

    /// [`Session::expect_closed`], also returning how the end came (e.g.
    /// `close packet`, `close frame ...`, `the poll got 400: ...`).
    pub fn expect_closed_how(&self, timeout: Duration, what: &str) -> (Vec<Frame>, String) {
        let deadline = Instant::now() + timeout;
        let mut before = Vec::new();
        let how = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left) {
                None => panic!(
                    "{what}: the session is still open after {timeout:?} (got {:?})",
                    before.iter().map(describe).collect::<Vec<_>>()
                ),
                Some(Event::Frame(f)) => before.push(f),
                Some(Event::Closed(how)) => break how,
                Some(Event::Error(e)) => panic!("{what}: {e}"),
            }
        };
        assert_session_closed(self.addr, PATH, self.eio, &self.sid);
        (before, how)
    }

    /// Sends CONNECT for `nsp` (with the auth object `auth`) and checks the
    /// answer is a CONNECT with `{"sid": <non-empty string>}` alone;
    /// returns that id.
    pub fn connect(&self, nsp: &str, auth: Option<&str>) -> String {
        let prefix = if nsp == "/" {
            String::new()
        } else {
            format!("{nsp},")
        };
        self.send(&format!("40{prefix}{}", auth.unwrap_or("")));
        let what = format!("CONNECT {nsp}");
        let p = self.recv_packet(&what);
        assert!(
            p.kind == 0 && p.nsp == nsp,
            "{what}: expected a CONNECT for {nsp}, got {p:?}"
        );
        let data = p
            .data
            .unwrap_or_else(|| panic!("{what}: a v5 CONNECT answer carries {{\"sid\": ...}}"));
        assert_eq!(data.keys(), ["sid"], "{what}: {data:?}");
        let id = data.get("sid").and_then(Json::as_str).unwrap_or_default();
        assert!(!id.is_empty(), "{what}: the sid must be a non-empty string");
        id.to_owned()
    }

    /// Asserts the next message is the `auth` event of `nsp` with `auth`.
    pub fn expect_auth(&self, nsp: &str, auth: &str) {
        self.expect(&format!("42{}[\"auth\",{auth}]", nsp_prefix(nsp)));
    }
}

/// The namespace part of a packet: nothing for `/`, `"<nsp>,"` otherwise.
fn nsp_prefix(nsp: &str) -> String {
    if nsp == "/" {
        String::new()
    } else {
        format!("{nsp},")
    }
}

/// Asserts `info` answers with this socket's id, namespace and auth.
fn check_info(s: &Session, nsp: &str, id: &str, auth: &str) {
    let n = nsp_prefix(nsp);
    s.send(&format!("42{n}77[\"info\"]"));
    s.expect(&format!(
        r#"43{n}77[{{"id":{},"nsp":{},"auth":{auth}}}]"#,
        json_string(id),
        json_string(nsp)
    ));
}

// ---------------------------------------------------------------------------
// Engine.IO on the Socket.IO path.

/// The Engine.IO handshake on `/socket.io/` is that of section 1 (the
/// official suite checks it there): the open packet with the configured
/// values, `upgrades: ["websocket"]` over polling and `[]` over websocket,
/// nothing else before a CONNECT; invalid requests get 400 with a JSON
/// error body; CORS allows any origin.
pub fn engineio_handshake(addr: SocketAddr) {
    let origin = ("Origin", "http://example.test");
    let r = http_request(
        addr,
        "GET",
        &format!("{PATH}?EIO=4&transport=polling"),
        &[origin],
        b"",
    );
    assert_eq!(r.status, 200, "{}{}", r.head, r.text());
    let packets = decode_v4_payload(&r.text());
    assert_eq!(packets.len(), 1, "the open packet alone: {packets:?}");
    check_open_packet(&packets[0], &["websocket"]);
    let allowed = r.header("access-control-allow-origin");
    assert!(
        matches!(allowed.as_deref(), Some("*" | "http://example.test")),
        "CORS: {}",
        r.head
    );
    drop(Session::open(addr, Transport::Websocket));
    let mut http = Http::new(addr);
    for (method, query) in [
        ("GET", "EIO=4"),
        ("GET", "EIO=4&transport=abc"),
        ("POST", "EIO=4&transport=polling"),
        ("PUT", "EIO=4&transport=polling"),
        ("GET", "EIO=4&transport=polling&sid=unknown"),
    ] {
        let target = format!("{PATH}?{query}");
        let r = http.request(method, &target, &[TEXT_BODY], b"");
        assert_error(&r, None, &format!("{method} {target}"));
    }
}

/// Contract sections 2 and 3: a missing or unknown `EIO` (`abc`, `5`) gets
/// 400, even though `EIO=3` is accepted.
pub fn missing_or_unknown_eio_gets_400(addr: SocketAddr) {
    eio_cases::v3_server_rejects_bad_eio(addr, PATH);
}

/// A Socket.IO session started over polling upgrades to websocket
/// (`2probe`/`3probe`, the pending poll ends with a noop, then `5`) and goes
/// on there: events, acks and binary attachments, and the sid is refused
/// over HTTP afterwards.
pub fn upgrade_to_websocket(addr: SocketAddr) {
    let mut s = Polling::open_at(addr, PATH, 4);
    s.post_ok("40");
    let got = s.recv_messages(2);
    let p = Packet::parse(&got[0]).expect("CONNECT");
    assert!(p.kind == 0 && p.nsp == "/", "{:?}", got[0]);
    assert_packet(&got[1], r#"42["auth",{}]"#, "auth event");
    s.post_ok(r#"42["message","before"]"#);
    assert_packet(
        &s.recv_messages(1)[0],
        r#"42["message-back","before"]"#,
        "over polling",
    );

    s.start_get();
    sleep_ms(20);
    let mut ws = ws_open(addr, &s.ws_target());
    ws_text(&mut ws, "2probe");
    assert_eq!(ws_recv(&mut ws, T), WsMsg::Text("3probe".into()));
    let held = s.finish_get(T);
    let packets = s.packets_of(&held);
    if packets == ["2"] {
        // The heartbeat released the poll first.
        s.post_ok("3");
    } else {
        assert_eq!(packets, ["6"], "the pending poll ends with a noop");
    }
    ws_text(&mut ws, "5");
    ws_text(&mut ws, r#"421["echo","over websocket"]"#);
    match ws_recv_message(&mut ws) {
        WsMsg::Text(t) => assert_packet(&t, r#"431["over websocket"]"#, "after the upgrade"),
        other => panic!("after the upgrade: {other:?}"),
    }
    ws_text(&mut ws, &format!(r#"451-2["echo",{}]"#, ph(0)));
    ws.write(&frame(2, true, 0, &[1, 2, 3], true));
    match ws_recv_message(&mut ws) {
        WsMsg::Text(t) => assert_packet(&t, &format!("461-2[{}]", ph(0)), "binary ack"),
        other => panic!("binary ack: {other:?}"),
    }
    assert_eq!(ws_recv_message(&mut ws), WsMsg::Binary(vec![1, 2, 3]));
    let r = http_request(addr, "GET", &s.target(), &[], b"");
    assert_error(&r, None, "GET after the upgrade");
}

// ---------------------------------------------------------------------------
// Connecting to namespaces.

/// CONNECT to `/` (`40`) is answered `40{"sid":...}` (an id that is not the
/// Engine.IO sid), then `/` emits `auth` with `{}`; `info` acks with that
/// id, the namespace and the auth.
pub fn connect_to_main(addr: SocketAddr, t: Transport) {
    let s = Session::open(addr, t);
    let id = s.connect("/", None);
    assert_ne!(
        id, s.sid,
        "the Socket.IO id is not the Engine.IO sid (protocol v5)"
    );
    s.expect_auth("/", "{}");
    check_info(&s, "/", &id, "{}");
    // Every connection gets an id of its own.
    let (_other, other_id) = Session::connected(addr, t);
    assert_ne!(id, other_id, "two sockets, one id");
}

/// The CONNECT payload is the handshake auth: `auth` and `info` give it
/// back unchanged.
pub fn connect_with_auth(addr: SocketAddr, t: Transport) {
    let auth = r#"{"token":"123","nested":{"list":[1,"two",null,true,2.5]}}"#;
    let s = Session::open(addr, t);
    let id = s.connect("/", Some(auth));
    s.expect_auth("/", auth);
    check_info(&s, "/", &id, auth);
}

/// CONNECT to `/custom` (`40/custom,`, or `40/custom` with no comma, with
/// or without auth) gets `40/custom,{"sid":...}` and the `auth` event of
/// `/custom`; the same session can be connected to `/` as well, and
/// packets go to the namespace they name.
pub fn connect_to_custom(addr: SocketAddr, t: Transport) {
    let s = Session::open(addr, t);
    let custom = s.connect("/custom", None);
    s.expect_auth("/custom", "{}");
    let main = s.connect("/", None);
    s.expect_auth("/", "{}");
    assert_ne!(custom, main, "one id per namespace");
    s.send(r#"42/custom,7["echo","to custom"]"#);
    s.expect(r#"43/custom,7["to custom"]"#);
    s.send(r#"427["echo","to main"]"#);
    s.expect(r#"437["to main"]"#);
    check_info(&s, "/custom", &custom, "{}");
    check_info(&s, "/", &main, "{}");

    let s = Session::open(addr, t);
    s.connect("/custom", Some(r#"{"token":"abc"}"#));
    s.expect_auth("/custom", r#"{"token":"abc"}"#);

    // The official suite's form without the comma.
    let s = Session::open(addr, t);
    s.send("40/custom");
    let p = s.recv_packet("CONNECT /custom");
    assert!(p.kind == 0 && p.nsp == "/custom", "{p:?}");
    s.expect_auth("/custom", "{}");
}

/// CONNECT to a namespace the server does not have gets
/// `44/random,{"message":"Invalid namespace"}`, as the first CONNECT of a
/// session or next to a connected namespace, which goes on unharmed.
pub fn invalid_namespace(addr: SocketAddr, t: Transport) {
    let s = Session::open(addr, t);
    s.send("40/random,");
    s.expect(r#"44/random,{"message":"Invalid namespace"}"#);

    let (s, _) = Session::connected(addr, t);
    s.send(r#"40/random,{"token":"secret"}"#);
    s.expect(r#"44/random,{"message":"Invalid namespace"}"#);
    s.send("40/custom/sub,");
    s.expect(r#"44/custom/sub,{"message":"Invalid namespace"}"#);
    s.send(r#"42["message","still connected"]"#);
    s.expect(r#"42["message-back","still connected"]"#);
}

/// `/admin` refuses a CONNECT without the token, or with another one, with
/// `44/admin,{"message":"not authorized"}`, and accepts `{"token":"secret"}`
/// (no `auth` event there); `echo` and `info` work on it.
pub fn admin_requires_the_token(addr: SocketAddr, t: Transport) {
    let s = Session::open(addr, t);
    let refused = r#"44/admin,{"message":"not authorized"}"#;
    s.send("40/admin,");
    s.expect(refused);
    s.send(r#"40/admin,{"token":"wrong"}"#);
    s.expect(refused);
    s.send(r#"40/admin,{"token":{"token":"secret"}}"#);
    s.expect(refused);
    let auth = r#"{"token":"secret"}"#;
    let id = s.connect("/admin", Some(auth));
    s.send(r#"42/admin,3["echo","admin",{"ok":true}]"#);
    s.expect(r#"43/admin,3["admin",{"ok":true}]"#);
    check_info(&s, "/admin", &id, auth);
}

/// A session that sends no CONNECT is closed `connectTimeout` (1 s) after
/// it opened, heartbeat or not (the reader answers every ping).
pub fn no_connect_closes_the_session(addr: SocketAddr, t: Transport) {
    let start = Instant::now();
    let s = Session::open(addr, t);
    s.expect_quiet(CONNECT_TIMEOUT / 2, "well before connectTimeout");
    s.expect_closed(T, "no CONNECT within connectTimeout");
    let elapsed = start.elapsed();
    assert!(
        elapsed < CONNECT_TIMEOUT + Duration::from_millis(1500),
        "closed {elapsed:?} after the handshake, long after connectTimeout"
    );
}

/// A session connected to a namespace outlives `connectTimeout` and the
/// heartbeat's deadlines.
pub fn connected_session_stays_open(addr: SocketAddr, t: Transport) {
    let (s, _) = Session::connected(addr, t);
    s.expect_quiet(CONNECT_TIMEOUT + Duration::from_millis(500), "idle");
    s.send(r#"42["message","still here"]"#);
    s.expect(r#"42["message-back","still here"]"#);
}

// ---------------------------------------------------------------------------
// Events and acks.

/// `message` comes back as `message-back` with the same arguments, in
/// order, several per POST included.
pub fn event_gets_message_back(addr: SocketAddr, t: Transport) {
    let (s, _) = Session::connected(addr, t);
    s.send(r#"42["message",1,"2",{"3":[true]}]"#);
    s.expect(r#"42["message-back",1,"2",{"3":[true]}]"#);
    s.send(r#"42["message","κόσμε €𝄞 \"q\" \\",null,[],{},-1.5e3]"#);
    s.expect(r#"42["message-back","κόσμε €𝄞 \"q\" \\",null,[],{},-1.5e3]"#);
    s.send(r#"42["message"]"#);
    s.expect(r#"42["message-back"]"#);
    let burst: Vec<Frame> = (0..5)
        .map(|i| Frame::text(format!(r#"42["message",{i}]"#)))
        .collect();
    s.send_frames(&burst);
    for i in 0..5 {
        s.expect(&format!(r#"42["message-back",{i}]"#));
    }
}

/// An event with an ack id gets an ACK with that id: `message-with-ack`
/// and `echo` ack with their arguments; `echo` without an id gets nothing.
pub fn ack_round_trip(addr: SocketAddr, t: Transport) {
    let (s, _) = Session::connected(addr, t);
    s.send(r#"42456["message-with-ack",1,"2",{"3":[false]}]"#);
    s.expect(r#"43456[1,"2",{"3":[false]}]"#);
    s.send(r#"420["echo"]"#);
    s.expect("430[]");
    s.send(r#"42123456["echo",{"a":{"b":[1,2,{"c":null}]}},"x"]"#);
    s.expect(r#"43123456[{"a":{"b":[1,2,{"c":null}]}},"x"]"#);
    s.send(r#"42["echo","no ack wanted"]"#);
    s.send(r#"42["message","next"]"#);
    s.expect(r#"42["message-back","next"]"#);
    s.expect_quiet(QUIET, "echo without an ack id");
}

/// A binary event (`452-` and two binary messages) comes back as
/// `message-back` with the same attachments.
pub fn binary_event(addr: SocketAddr, t: Transport) {
    let (s, _) = Session::connected(addr, t);
    s.send_frames(&[
        Frame::text(format!(r#"452-["message",{},{}]"#, ph(0), ph(1))),
        Frame::Binary(vec![1, 2, 3]),
        Frame::Binary(vec![4, 5, 6]),
    ]);
    s.expect(&format!(r#"452-["message-back",{},{}]"#, ph(0), ph(1)));
    s.expect_binary(&[1, 2, 3]);
    s.expect_binary(&[4, 5, 6]);
    // Nested, with text around, every byte value, and an empty buffer.
    let all: Vec<u8> = (0..=255).collect();
    s.send_frames(&[
        Frame::text(format!(
            r#"453-["message","text",{{"a":{},"list":[1,{}]}},{}]"#,
            ph(0),
            ph(1),
            ph(2)
        )),
        Frame::Binary(all.clone()),
        Frame::Binary(vec![]),
        Frame::Binary(vec![0]),
    ]);
    s.expect(&format!(
        r#"453-["message-back","text",{{"a":{},"list":[1,{}]}},{}]"#,
        ph(0),
        ph(1),
        ph(2)
    ));
    s.expect_binary(&all);
    s.expect_binary(&[]);
    s.expect_binary(&[0]);
}

/// Binary events with an ack id get a BINARY_ACK (`46N-<id>`) with the
/// attachments, on `/` and on `/custom`.
pub fn binary_ack(addr: SocketAddr, t: Transport) {
    let (s, _) = Session::connected(addr, t);
    s.send_frames(&[
        Frame::text(format!(
            r#"452-789["message-with-ack",{},{}]"#,
            ph(0),
            ph(1)
        )),
        Frame::Binary(vec![1, 2, 3]),
        Frame::Binary(vec![4, 5, 6]),
    ]);
    s.expect(&format!("462-789[{},{}]", ph(0), ph(1)));
    s.expect_binary(&[1, 2, 3]);
    s.expect_binary(&[4, 5, 6]);
    let big: Vec<u8> = (0..70_000).map(|i| (i % 253) as u8).collect();
    s.send_frames(&[
        Frame::text(format!(r#"451-12["echo",{{"data":{},"n":1}}]"#, ph(0))),
        Frame::Binary(big.clone()),
    ]);
    s.expect(&format!(r#"461-12[{{"data":{},"n":1}}]"#, ph(0)));
    s.expect_binary(&big);
    s.connect("/custom", None);
    s.expect_auth("/custom", "{}");
    s.send_frames(&[
        Frame::text(format!(r#"451-/custom,5["echo",{}]"#, ph(0))),
        Frame::Binary(vec![7, 7]),
    ]);
    s.expect(&format!("461-/custom,5[{}]", ph(0)));
    s.expect_binary(&[7, 7]);
}

/// An event nobody handles is ignored: no ack even when one was asked
/// for, and the socket goes on.
pub fn unhandled_event_is_ignored(addr: SocketAddr, t: Transport) {
    let (s, _) = Session::connected(addr, t);
    s.send(r#"4217["no-such-event",1,2]"#);
    s.send(r#"42["no-such-event"]"#);
    s.send(r#"42["message","after"]"#);
    s.expect(r#"42["message-back","after"]"#);
    s.expect_quiet(QUIET, "an unhandled event with an ack id");
}

/// An ACK for an id the server never used is dropped; the socket goes on.
pub fn ack_with_unknown_id_is_ignored(addr: SocketAddr, t: Transport) {
    let (s, _) = Session::connected(addr, t);
    s.send(r#"43999["nobody asked"]"#);
    s.send(r#"42["message","after"]"#);
    s.expect(r#"42["message-back","after"]"#);
}

/// Events for a namespace the session is not connected to are ignored:
/// nothing comes back, and the connection and its namespaces go on.
pub fn event_on_unconnected_namespace_is_ignored(addr: SocketAddr, t: Transport) {
    let (s, _) = Session::connected(addr, t);
    s.send(r#"42/custom,["echo","x"]"#);
    s.send(r#"42/custom,5["echo","x"]"#);
    s.send(r#"42/admin,6["info"]"#);
    s.send(r#"42["message","still connected"]"#);
    s.expect(r#"42["message-back","still connected"]"#);
    s.expect_quiet(QUIET, "events on namespaces not connected");
}

// ---------------------------------------------------------------------------
// Malformed packets.

/// Sends each of `attempts` on a fresh connected session, which the server
/// must close; a bystander session on the same server loses nothing.
fn assert_malformed_closes(addr: SocketAddr, t: Transport, attempts: &[Vec<Frame>]) {
    let (bystander, _) = Session::connected(addr, t);
    bystander.send(r#"42["join","bystanders"]"#);
    for frames in attempts {
        let what: Vec<String> = frames.iter().map(describe).collect();
        let (s, _) = Session::connected(addr, t);
        s.send_lossy(frames);
        s.expect_closed(T, &format!("after {what:?}"));
    }
    bystander.send(r#"421["room-size","bystanders"]"#);
    bystander.expect("431[1]");
    bystander.send(r#"42["message","unharmed"]"#);
    bystander.expect(r#"42["message-back","unharmed"]"#);
}

/// An unknown packet type closes the connection.
pub fn unknown_packet_type_closes(addr: SocketAddr, t: Transport) {
    assert_malformed_closes(
        addr,
        t,
        &[
            vec![Frame::text("4abc")],
            vec![Frame::text(r#"47["message"]"#)],
            vec![Frame::text(r#"49["message"]"#)],
        ],
    );
}

/// An EVENT whose payload is not a non-empty array (with the event name
/// first) closes the connection.
pub fn non_array_event_payload_closes(addr: SocketAddr, t: Transport) {
    assert_malformed_closes(
        addr,
        t,
        &[
            vec![Frame::text("42{}")],
            vec![Frame::text(r#"42"message""#)],
            vec![Frame::text("42[]")],
        ],
    );
}

/// An EVENT with no payload at all (the spec makes it mandatory) closes
/// the connection.
pub fn event_without_payload_closes(addr: SocketAddr, t: Transport) {
    assert_malformed_closes(
        addr,
        t,
        &[vec![Frame::text("42")], vec![Frame::text("4212")]],
    );
}

/// An ack id that is not a number closes the connection.
pub fn non_numeric_ack_id_closes(addr: SocketAddr, t: Transport) {
    assert_malformed_closes(
        addr,
        t,
        &[
            vec![Frame::text(
                r#"42abc["message-with-ack",1,"2",{"3":[false]}]"#,
            )],
            vec![Frame::text(r#"42-1["message-with-ack",1]"#)],
        ],
    );
}

/// A payload that is not JSON closes the connection.
pub fn bad_json_closes(addr: SocketAddr, t: Transport) {
    assert_malformed_closes(
        addr,
        t,
        &[
            vec![Frame::text(r#"42["message",1"#)],
            vec![Frame::text(r#"42["message",}]"#)],
            vec![Frame::text(r#"40{"token":}"#)],
        ],
    );
}

/// A placeholder whose `num` points past the attachments (or is not a
/// number) closes the connection.
pub fn placeholder_out_of_range_closes(addr: SocketAddr, t: Transport) {
    let with = |placeholder: &str| {
        vec![
            Frame::text(format!(r#"451-["message",{placeholder}]"#)),
            Frame::Binary(vec![1]),
        ]
    };
    assert_malformed_closes(
        addr,
        t,
        &[
            with(&ph(1)),
            with(r#"{"_placeholder":true,"num":-1}"#),
            with(r#"{"_placeholder":true,"num":"0"}"#),
        ],
    );
}

/// An absurd attachment count closes the connection at once, without the
/// server waiting for (or reserving room for) the attachments.
pub fn too_many_attachments_closes(addr: SocketAddr, t: Transport) {
    assert_malformed_closes(
        addr,
        t,
        &[
            vec![Frame::text(format!(r#"451000000-["message",{}]"#, ph(0)))],
            vec![Frame::text(format!(
                r#"4599999999999999999999-["message",{}]"#,
                ph(0)
            ))],
        ],
    );
}

/// Attachments that do not match the packet close the connection: a
/// binary message with no binary packet pending, and a text packet while
/// attachments are still expected.
pub fn unexpected_attachment_closes(addr: SocketAddr, t: Transport) {
    assert_malformed_closes(
        addr,
        t,
        &[
            vec![Frame::Binary(vec![1, 2, 3])],
            vec![
                Frame::text(format!(r#"452-["message",{},{}]"#, ph(0), ph(1))),
                Frame::Binary(vec![1]),
                Frame::text(r#"42["message","too early"]"#),
            ],
        ],
    );
}

// ---------------------------------------------------------------------------
// Disconnection.

/// A client DISCONNECT leaves the namespace only: after `41/custom`, `/`
/// still works (the official suite's case); after `41`, the socket has left
/// its rooms.
pub fn client_disconnect(addr: SocketAddr, t: Transport) {
    let (s, _) = Session::connected(addr, t);
    s.send("40/custom");
    let p = s.recv_packet("CONNECT /custom");
    assert!(p.kind == 0 && p.nsp == "/custom", "{p:?}");
    s.expect_auth("/custom", "{}");
    s.send("41/custom");
    s.send(r#"42["message","message to main namespace"]"#);
    s.expect(r#"42["message-back","message to main namespace"]"#);

    s.send(r#"421["join","leavers"]"#);
    s.expect(r#"431["leavers"]"#);
    let (other, _) = Session::connected(addr, t);
    other.send(r#"421["room-size","leavers"]"#);
    other.expect("431[1]");
    s.send("41");
    wait_for_room_size(&other, "leavers", 0);
}

/// Asks `room-size` of `room` through `s` until it is `size` (a few
/// seconds at most: the change may come from another connection).
fn wait_for_room_size(s: &Session, room: &str, size: u32) {
    let deadline = Instant::now() + T;
    for id in 100.. {
        s.send(&format!(r#"42{id}["room-size",{}]"#, json_string(room)));
        let p = s.recv_packet("room-size");
        assert_eq!(p.id, Some(id), "{p:?}");
        if p.data == Some(Json::Array(vec![Json::Number(f64::from(size))])) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "room {room:?}: expected {size} members, still {p:?}"
        );
        sleep_ms(50);
    }
}

/// `disconnect-me` makes the server send DISCONNECT (`41`) and nothing
/// else, and the socket is gone: it has left its rooms. (Whether the
/// Engine.IO session then stays open is up to the server: the client was on
/// no other namespace.)
pub fn server_disconnect(addr: SocketAddr, t: Transport) {
    let (s, _) = Session::connected(addr, t);
    s.send(r#"421["join","to be disconnected"]"#);
    s.expect(r#"431["to be disconnected"]"#);
    let (other, _) = Session::connected(addr, t);
    other.send(r#"421["room-size","to be disconnected"]"#);
    other.expect("431[1]");
    s.send(r#"42["disconnect-me"]"#);
    s.expect("41");
    wait_for_room_size(&other, "to be disconnected", 0);

    // With another namespace on the connection, that one goes on.
    let (s, _) = Session::connected(addr, t);
    s.connect("/custom", None);
    s.expect_auth("/custom", "{}");
    s.send(r#"42["disconnect-me"]"#);
    s.expect("41");
    s.send(r#"42/custom,1["echo","still here"]"#);
    s.expect(r#"43/custom,1["still here"]"#);
}

/// `drop-me` closes the Engine.IO session without a Socket.IO DISCONNECT.
/// Over polling the poll gets the close packet `1` (held or next), which
/// clients report as a transport close (a 400 or a broken poll would be a
/// transport error).
pub fn drop_me_closes_without_disconnect(addr: SocketAddr, t: Transport) {
    let (s, _) = Session::connected(addr, t);
    s.send(r#"42["drop-me"]"#);
    let (before, how) = s.expect_closed_how(T, "after drop-me");
    for f in &before {
        if let Frame::Text(text) = f {
            let p = Packet::parse(text);
            assert!(
                !p.as_ref().is_ok_and(|p| p.kind == 1),
                "drop-me sent a DISCONNECT: {text:?}"
            );
        }
    }
    if t == Transport::Polling {
        assert_eq!(
            how, "close packet",
            "over polling, drop-me must end the poll with a close packet"
        );
    }
}

// ---------------------------------------------------------------------------
// Rooms, broadcast, server-to-client acks.

/// Rooms: `join` and `leave` ack with the room; `room-size` counts the
/// members; `broadcast` reaches every other member (text and binary), not
/// the sender, member or not, and acks with no arguments.
pub fn rooms_and_broadcast(addr: SocketAddr, t: Transport) {
    let (a, _) = Session::connected(addr, t);
    let (b, _) = Session::connected(addr, t);
    let (c, _) = Session::connected(addr, t);
    a.send(r#"421["join","room1"]"#);
    a.expect(r#"431["room1"]"#);
    b.send(r#"422["join","room1"]"#);
    b.expect(r#"432["room1"]"#);
    c.send(r#"423["room-size","room1"]"#);
    c.expect("433[2]");
    c.send(r#"424["room-size","nobody here"]"#);
    c.expect("434[0]");

    // From a socket outside the room: both members.
    c.send(r#"425["broadcast","room1","hello",{"n":1}]"#);
    c.expect("435[]");
    a.expect(r#"42["broadcast","room1","hello",{"n":1}]"#);
    b.expect(r#"42["broadcast","room1","hello",{"n":1}]"#);
    // From a member: the other member only.
    a.send(r#"426["broadcast","room1","from a"]"#);
    a.expect("436[]");
    b.expect(r#"42["broadcast","room1","from a"]"#);
    // Binary.
    b.send_frames(&[
        Frame::text(format!(r#"451-7["broadcast","room1",{}]"#, ph(0))),
        Frame::Binary(vec![1, 2, 3]),
    ]);
    b.expect("437[]");
    a.expect(&format!(r#"451-["broadcast","room1",{}]"#, ph(0)));
    a.expect_binary(&[1, 2, 3]);
    // Binary to both members: each gets the packet, then its attachment.
    c.send_frames(&[
        Frame::text(format!(r#"451-12["broadcast","room1",{}]"#, ph(0))),
        Frame::Binary(vec![4, 5]),
    ]);
    c.expect("4312[]");
    for member in [&a, &b] {
        member.expect(&format!(r#"451-["broadcast","room1",{}]"#, ph(0)));
        member.expect_binary(&[4, 5]);
    }
    a.expect_quiet(QUIET, "a: nothing else");
    b.expect_quiet(Duration::ZERO, "b: not its own broadcasts");
    c.expect_quiet(Duration::ZERO, "c: not a member");

    a.send(r#"428["leave","room1"]"#);
    a.expect(r#"438["room1"]"#);
    c.send(r#"429["room-size","room1"]"#);
    c.expect("439[1]");
    c.send(r#"4210["broadcast","room1","after leave"]"#);
    c.expect("4310[]");
    b.expect(r#"42["broadcast","room1","after leave"]"#);
    a.expect_quiet(QUIET, "a left the room");

    // Without an ack.
    c.send(r#"42["join","room2"]"#);
    c.send(r#"4211["room-size","room2"]"#);
    c.expect("4311[1]");
}

/// `ask` makes the server emit `question` with an ack id of its own; the
/// client's ACK (text or binary) comes back as the ack of `ask`.
pub fn ask_question(addr: SocketAddr, t: Transport) {
    let (s, _) = Session::connected(addr, t);
    s.send(r#"4233["ask","what?",{"n":1}]"#);
    let q = s.recv_packet("question");
    let want = Packet::parse(r#"42["question","what?",{"n":1}]"#).expect("valid");
    assert!(
        q.kind == 2
            && q.nsp == "/"
            && q.data.as_ref().map(normalized) == want.data.map(|d| normalized(&d)),
        "question: {q:?}"
    );
    let qid = q.id.expect("the question asks for an ack");
    s.send(&format!(r#"43{qid}["answer",42]"#));
    s.expect(r#"4333["answer",42]"#);

    s.send(r#"4234["ask"]"#);
    let q = s.recv_packet("second question");
    assert_eq!(
        q.data,
        Some(Json::Array(vec![Json::String("question".into())]))
    );
    let qid2 = q.id.expect("the question asks for an ack");
    assert_ne!(qid, qid2, "a pending ack id was reused");
    s.send_frames(&[
        Frame::text(format!("461-{qid2}[{}]", ph(0))),
        Frame::Binary(vec![9, 8, 7]),
    ]);
    s.expect(&format!("461-34[{}]", ph(0)));
    s.expect_binary(&[9, 8, 7]);
}

// ---------------------------------------------------------------------------
// Engine.IO v3 clients (Socket.IO protocol v4), section 3.

/// Asserts the next packet is a v3 CONNECT for `nsp` (a payload, which
/// protocol v4 does not define, is not looked at).
fn expect_v3_connect(s: &Session, nsp: &str) {
    let p = s.recv_packet(&format!("v3 CONNECT {nsp}"));
    assert!(p.kind == 0 && p.nsp == nsp, "v3 CONNECT {nsp}: {p:?}");
}

/// A v3 session joins `/` without a CONNECT: the server sends a bare `40`
/// and the `auth` event; events and acks work, in v3 framing over polling
/// (lengths in UTF-16 code units, checked on every payload).
pub fn v3_implicit_connect(addr: SocketAddr, t: Transport) {
    let s = Session::open_v3(addr, t);
    expect_v3_connect(&s, "/");
    s.expect(r#"42["auth",{}]"#);
    s.send_frames(&[
        Frame::text(r#"42["message","κόσμε €𝄞 😀"]"#),
        Frame::text(r#"421["echo",{"a":[1,2]},"𝄞"]"#),
    ]);
    s.expect(r#"42["message-back","κόσμε €𝄞 😀"]"#);
    s.expect(r#"431[{"a":[1,2]},"𝄞"]"#);
    s.send(r#"422["info"]"#);
    let p = s.recv_packet("info");
    let info = match (&p.kind, &p.id, &p.data) {
        (3, Some(2), Some(Json::Array(items))) if items.len() == 1 => items[0].clone(),
        _ => panic!("info: {p:?}"),
    };
    assert_eq!(info.get("nsp"), Some(&Json::String("/".into())), "{info:?}");
    assert_eq!(info.get("auth"), Some(&Json::Object(vec![])), "{info:?}");
    assert!(info.get("id").and_then(Json::as_str).is_some(), "{info:?}");
    s.send("40/custom");
    expect_v3_connect(&s, "/custom");
    s.expect(r#"42/custom,["auth",{}]"#);
}

/// v3 over websocket: binary messages carry the type byte `4` first, both
/// ways; binary events and acks work.
pub fn v3_binary_over_websocket(addr: SocketAddr) {
    let s = Session::open_v3(addr, Transport::Websocket);
    expect_v3_connect(&s, "/");
    s.expect(r#"42["auth",{}]"#);
    s.send_frames(&[
        Frame::text(format!(r#"451-["message",{}]"#, ph(0))),
        Frame::Binary(vec![1, 2, 3]),
    ]);
    s.expect(&format!(r#"451-["message-back",{}]"#, ph(0)));
    s.expect_binary(&[1, 2, 3]);
    s.send_frames(&[
        Frame::text(format!(r#"452-7["message-with-ack",{},{}]"#, ph(0), ph(1))),
        Frame::Binary(vec![4]),
        Frame::Binary(vec![5, 6]),
    ]);
    s.expect(&format!("462-7[{},{}]", ph(0), ph(1)));
    s.expect_binary(&[4]);
    s.expect_binary(&[5, 6]);
}

/// v3 heartbeat on `/socket.io/`: the client pings and gets pongs (the
/// server never pings), over polling and websocket; a session without
/// pings is closed after `pingInterval + pingTimeout`.
pub fn v3_heartbeat(addr: SocketAddr) {
    eio_cases::v3_client_pings_keep_a_polling_session(addr, PATH);
    eio_cases::v3_session_without_pings_times_out(addr, PATH);
    eio_cases::v3_websocket_heartbeat(addr, PATH);
}

/// For a v3 client, a middleware refusal is a plain string:
/// `44/admin,"not authorized"`.
pub fn v3_admin_refusal_is_a_plain_string(addr: SocketAddr, t: Transport) {
    let s = Session::open_v3(addr, t);
    expect_v3_connect(&s, "/");
    s.expect(r#"42["auth",{}]"#);
    s.send("40/admin");
    s.expect(r#"44/admin,"not authorized""#);
    s.send("40/admin?token=wrong");
    s.expect(r#"44/admin,"not authorized""#);
    // `/` is untouched.
    s.send(r#"42["message","still here"]"#);
    s.expect(r#"42["message-back","still here"]"#);
}
