//! The Engine.IO server cases, byte for byte, written from the protocol
//! (socketio/engine.io-protocol: the v4 spec and its test suite) and
//! section 1 of `shared/conformance-contract.md`. `tests/tests/eio.rs` runs
//! every case against the official Node `engine.io` server
//! (`tests/interop/eio-server.mjs`, to check the cases themselves) and
//! against `conformance-server` on every runtime.
//!
//! Each case is a plain function taking the server's address. It speaks raw
//! HTTP/1.1 over blocking sockets ([`Http`], keep-alive, one request at a
//! time per connection, so a held long-poll needs its own connection) and
//! raw RFC 6455 frames ([`crate::raw`]) for the websocket transport.
//!
//! The server under test is configured as the contract says: path
//! `/engine.io/`, `pingInterval` 300 ms, `pingTimeout` 200 ms, `maxPayload`
//! 1 000 000, CORS for any origin, and every message packet echoed back as it
//! was sent. The Engine.IO v3 cases (`v3_*`) take the path too: the Node
//! server accepts v3 on `/engine.io/` with `--eio3`; `conformance-server`
//! accepts it on `/socket.io/` (a Socket.IO server, so they ignore message
//! packets and never rely on an echo).
//!
//! Wire facts the cases rely on (v4): a packet is its type digit followed by
//! its data (`0` open, `1` close, `2` ping, `3` pong, `4` message, `5`
//! upgrade, `6` noop); a polling payload joins packets with the record
//! separator `\x1e`; a binary message travels over polling as `b` followed by
//! its base64, over websocket as a binary frame holding the raw bytes; the
//! server pings (`2`) every `pingInterval` and expects the pong (`3`) within
//! `pingTimeout`. In v3 a polling payload is a series of
//! `<length>:<packet>` (the length in UTF-16 code units) and the client
//! pings.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::raw::{self, RawConn, ReadResult, frame};

/// The Engine.IO path of section 1.
pub const PATH: &str = "/engine.io/";
/// `pingInterval` of the server under test.
pub const PING_INTERVAL: Duration = Duration::from_millis(300);
/// `pingTimeout` of the server under test.
pub const PING_TIMEOUT: Duration = Duration::from_millis(200);
/// `maxPayload` of the server under test.
pub const MAX_PAYLOAD: usize = 1_000_000;

/// How long any single answer may take.
const T: Duration = Duration::from_secs(5);
/// Longer than `pingInterval + pingTimeout`, with room for a loaded machine.
const PAST_TIMEOUT: Duration = Duration::from_millis(1000);
/// The v4 polling packet separator.
const SEP: char = '\x1e';

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

// ---------------------------------------------------------------------------
// A small JSON reader, enough for open packets and error bodies.

/// A JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A number.
    Number(f64),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Json>),
    /// An object, fields in document order.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Parses a whole document.
    pub fn parse(text: &str) -> Result<Json, String> {
        let mut p = JsonReader {
            s: text.as_bytes(),
            at: 0,
        };
        let value = p.value()?;
        p.skip_ws();
        if p.at != p.s.len() {
            return Err(format!("trailing bytes at {} in {text:?}", p.at));
        }
        Ok(value)
    }

    /// The field `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The keys of an object, sorted.
    pub fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = match self {
            Json::Object(fields) => fields.iter().map(|(k, _)| k.as_str()).collect(),
            _ => Vec::new(),
        };
        keys.sort_unstable();
        keys
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number, if this is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Number(n) => Some(*n),
            _ => None,
        }
    }
}

struct JsonReader<'a> {
    s: &'a [u8],
    at: usize,
}

impl JsonReader<'_> {
    fn skip_ws(&mut self) {
        while matches!(self.s.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        self.skip_ws();
        if self.s.get(self.at) == Some(&byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), String> {
        if self.eat(byte) {
            Ok(())
        } else {
            Err(format!("expected {:?} at {}", byte as char, self.at))
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.skip_ws();
        match self.s.get(self.at) {
            Some(b'{') => {
                self.at += 1;
                let mut fields = Vec::new();
                if self.eat(b'}') {
                    return Ok(Json::Object(fields));
                }
                loop {
                    self.skip_ws();
                    let key = self.string()?;
                    self.expect(b':')?;
                    fields.push((key, self.value()?));
                    if !self.eat(b',') {
                        self.expect(b'}')?;
                        return Ok(Json::Object(fields));
                    }
                }
            }
            Some(b'[') => {
                self.at += 1;
                let mut items = Vec::new();
                if self.eat(b']') {
                    return Ok(Json::Array(items));
                }
                loop {
                    items.push(self.value()?);
                    if !self.eat(b',') {
                        self.expect(b']')?;
                        return Ok(Json::Array(items));
                    }
                }
            }
            Some(b'"') => Ok(Json::String(self.string()?)),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'n') => self.literal("null", Json::Null),
            Some(c) if *c == b'-' || c.is_ascii_digit() => {
                let start = self.at;
                while matches!(
                    self.s.get(self.at),
                    Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                ) {
                    self.at += 1;
                }
                let text =
                    std::str::from_utf8(&self.s[start..self.at]).map_err(|e| e.to_string())?;
                text.parse()
                    .map(Json::Number)
                    .map_err(|_| format!("bad number {text:?}"))
            }
            other => Err(format!("unexpected {other:?} at {}", self.at)),
        }
    }

    fn literal(&mut self, word: &str, value: Json) -> Result<Json, String> {
        if self.s[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(format!("bad literal at {}", self.at))
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self
            .s
            .get(self.at..self.at + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u32::from_str_radix(d, 16).ok())
            .ok_or_else(|| format!("bad \\u escape at {}", self.at))?;
        self.at += 4;
        Ok(digits)
    }

    fn string(&mut self) -> Result<String, String> {
        if self.s.get(self.at) != Some(&b'"') {
            return Err(format!("expected a string at {}", self.at));
        }
        self.at += 1;
        let mut out = Vec::new();
        loop {
            let c = *self.s.get(self.at).ok_or("unterminated string")?;
            self.at += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = *self.s.get(self.at).ok_or("unterminated escape")?;
                    self.at += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let mut code = self.hex4()?;
                            if (0xD800..0xDC00).contains(&code)
                                && self.s[self.at..].starts_with(b"\\u")
                            {
                                self.at += 2;
                                let low = self.hex4()?;
                                code =
                                    0x10000 + ((code - 0xD800) << 10) + (low.wrapping_sub(0xDC00));
                            }
                            char::from_u32(code).unwrap_or('\u{FFFD}')
                        }
                        _ => return Err(format!("bad escape at {}", self.at)),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                c => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|e| e.to_string())
    }
}

// ---------------------------------------------------------------------------
// A raw HTTP/1.1 client.

/// An HTTP response as read off the wire (chunked bodies decoded).
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The head (status line and headers).
    pub head: String,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        raw::header(&self.head, name)
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why [`Http::recv`] gave no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// Nothing (complete) arrived in time.
    Timeout,
    /// The server closed (or reset) the connection first.
    Closed,
    /// The bytes were not an HTTP/1.1 response.
    Malformed(String),
}

/// One keep-alive HTTP/1.1 connection to the server, opened on first use
/// and reopened after the server closes it.
pub struct Http {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Http {
    /// A client for `addr` (connects lazily).
    pub fn new(addr: SocketAddr) -> Self {
        Http {
            addr,
            stream: None,
            buf: Vec::new(),
        }
    }

    /// Writes a request. Write errors are ignored: the server may close
    /// early, and [`Http::recv`] then reports what happened.
    pub fn send(&mut self, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) {
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.addr).expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            stream.set_write_timeout(Some(T)).expect("write timeout");
            self.stream = Some(stream);
            self.buf.clear();
        }
        let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() || matches!(method, "POST" | "PUT") {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        let stream = self.stream.as_mut().expect("connected");
        let _ = stream.write_all(&bytes);
    }

    fn fill(&mut self, deadline: Instant) -> Result<(), HttpError> {
        let stream = self.stream.as_mut().ok_or(HttpError::Closed)?;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HttpError::Timeout);
        }
        stream.set_read_timeout(Some(left)).expect("read timeout");
        let mut chunk = [0u8; 65536];
        match stream.read(&mut chunk) {
            Ok(0) => Err(HttpError::Closed),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Err(HttpError::Timeout)
            }
            Err(_) => Err(HttpError::Closed),
        }
    }

    /// Reads one response within `timeout`.
    pub fn recv(&mut self, timeout: Duration) -> Result<Response, HttpError> {
        let deadline = Instant::now() + timeout;
        let result = self.recv_until(deadline);
        if !matches!(result, Err(HttpError::Timeout)) {
            let close = result.as_ref().map_or(true, |r| {
                r.header("connection")
                    .is_some_and(|v| v.eq_ignore_ascii_case("close"))
            });
            if close {
                self.stream = None;
                self.buf.clear();
            }
        }
        result
    }

    fn recv_until(&mut self, deadline: Instant) -> Result<Response, HttpError> {
        let head_end = loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            self.fill(deadline)?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let status = head
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| HttpError::Malformed(head.clone()))?;
        let length = raw::header(&head, "content-length");
        let chunked = raw::header(&head, "transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let body = if chunked {
            let mut at = head_end;
            let mut body = Vec::new();
            loop {
                let line_end = loop {
                    if let Some(p) = self.buf[at..].windows(2).position(|w| w == b"\r\n") {
                        break at + p;
                    }
                    self.fill(deadline)?;
                };
                let line = String::from_utf8_lossy(&self.buf[at..line_end]).into_owned();
                let size_text = line.split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(size_text, 16)
                    .map_err(|_| HttpError::Malformed(format!("chunk size {line:?}")))?;
                at = line_end + 2;
                if size == 0 {
                    // Trailers (none expected), then the blank line.
                    loop {
                        if let Some(p) = self.buf[at..].windows(2).position(|w| w == b"\r\n") {
                            let blank = p == 0;
                            at += p + 2;
                            if blank {
                                break;
                            }
                        } else {
                            self.fill(deadline)?;
                        }
                    }
                    break;
                }
                while self.buf.len() < at + size + 2 {
                    self.fill(deadline)?;
                }
                body.extend_from_slice(&self.buf[at..at + size]);
                at += size + 2;
            }
            self.buf.drain(..at);
            body
        } else if let Some(length) = length {
            let length: usize = length
                .parse()
                .map_err(|_| HttpError::Malformed(format!("content-length {length:?}")))?;
            while self.buf.len() < head_end + length {
                self.fill(deadline)?;
            }
            let body = self.buf[head_end..head_end + length].to_vec();
            self.buf.drain(..head_end + length);
            body
        } else if status == 204 || status == 304 || (100..200).contains(&status) {
            self.buf.drain(..head_end);
            Vec::new()
        } else {
            // Delimited by the end of the connection.
            loop {
                match self.fill(deadline) {
                    Ok(()) => {}
                    Err(HttpError::Closed) => break,
                    Err(e) => return Err(e),
                }
            }
            let body = self.buf[head_end..].to_vec();
            self.buf.clear();
            self.stream = None;
            body
        };
        Ok(Response { status, head, body })
    }

    /// Sends a request and reads its response (panics on timeout or close).
    pub fn request(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        self.send(method, target, headers, body);
        self.recv(T)
            .unwrap_or_else(|e| panic!("{method} {target}: no response ({e:?})"))
    }
}

/// `ServerLimits::max_connections` at 2 (a Switchboard setting; Node's
/// `engine.io` has none): two keep-alive connections are served, a third
/// gets no answer while both stay open, and is answered as soon as one of
/// them closes.
pub fn connection_limit_holds_back_a_third_connection(addr: SocketAddr) {
    let handshake = format!("{PATH}?EIO=4&transport=polling");
    let mut first = Http::new(addr);
    let mut second = Http::new(addr);
    assert_eq!(first.request("GET", &handshake, &[], b"").status, 200);
    assert_eq!(second.request("GET", &handshake, &[], b"").status, 200);
    let mut third = Http::new(addr);
    third.send("GET", &handshake, &[], b"");
    assert_eq!(
        third.recv(Duration::from_millis(500)).map(|r| r.status),
        Err(HttpError::Timeout),
        "a third connection was served"
    );
    // The open connections are still served.
    assert_eq!(second.request("GET", &handshake, &[], b"").status, 200);
    drop(first);
    let response = third.recv(T).expect("served once a connection closed");
    assert_eq!(response.status, 200);
    check_open_packet(&response.text(), &["websocket"]);
}

/// `ServerLimits::max_connections` at 1 (a Switchboard setting): a
/// websocket session's client sends large messages (each echoed) and reads
/// nothing, until the server's write to it waits and the server stops
/// reading too. The client's pongs, sent blind after each message, keep the
/// session alive until then; once they stop reaching it, the heartbeat times
/// the session out while the server's write waits. The server then gives up
/// on what it could not write within the WebSocket close timeout
/// (`switchboard_core::ws::Config::close_timeout`, 5 s by default, which
/// the server keeps) and releases the connection: a second connection,
/// held back until then, is served. Not a Node case (no connection limit).
pub fn a_websocket_whose_peer_stops_reading_is_released(addr: SocketAddr) {
    let close_timeout = switchboard_core::ws::Config::default().close_timeout;
    let (mut conn, _sid) = ws_session(addr);
    let mut unit = frame(
        1,
        true,
        0,
        format!("4{}", "x".repeat(64 << 10)).as_bytes(),
        true,
    );
    unit.extend_from_slice(&frame(1, true, 0, b"3", true));
    flood_until_blocked(&mut conn, &unit);
    let mut next = Http::new(addr);
    next.send("GET", &format!("{PATH}?EIO=4&transport=polling"), &[], b"");
    // Generous slack for a loaded machine; without the release the second
    // connection is never served.
    let limit = PAST_TIMEOUT + close_timeout + Duration::from_secs(5);
    let response = next.recv(limit).unwrap_or_else(|e| {
        panic!(
            "the connection of a peer that reads nothing was not released within {limit:?} \
             ({e:?})"
        )
    });
    assert_eq!(response.status, 200, "{}", response.head);
    drop(conn);
}

/// Writes `unit` (whole frames) over and over, reading nothing, until the
/// server has surely stopped reading because its own writes wait: a write
/// takes nothing for a second, or waits a second once more was written
/// than the server can hold on its way out (its socket's send buffer, at
/// most 4 MiB by default, the WebSocket's transmit bound, a burst of echoes
/// queued, this side's receive buffer), or twice that was written.
fn flood_until_blocked(conn: &mut RawConn, unit: &[u8]) {
    use std::io::ErrorKind;
    const MORE_THAN_THE_SERVER_HOLDS: usize = 12 << 20;
    let wait = Duration::from_secs(1);
    conn.stream
        .set_write_timeout(Some(wait))
        .expect("write timeout");
    let until = Instant::now() + Duration::from_secs(60);
    let (mut left, mut written) = (unit, 0);
    while written < 2 * MORE_THAN_THE_SERVER_HOLDS {
        assert!(Instant::now() < until, "the server never stopped reading");
        if left.is_empty() {
            left = unit;
        }
        let started = Instant::now();
        match conn.stream.write(left) {
            Ok(_) if started.elapsed() >= wait && written >= MORE_THAN_THE_SERVER_HOLDS => return,
            Ok(n) => {
                left = &left[n..];
                written += n;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return,
            Err(e) => panic!("the server ended the connection while it still read: {e}"),
        }
    }
}

/// `ServerLimits::request_timeout` at 300 ms: a request head that stops
/// half-way gets 408 and the connection is closed.
pub fn a_stalled_request_gets_408(addr: SocketAddr) {
    let mut conn = raw::connect(addr);
    conn.write(format!("GET {PATH}?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n").as_bytes());
    let started = Instant::now();
    let rest = conn.read_to_end(T);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "not closed in time"
    );
    assert!(
        rest.starts_with(b"HTTP/1.1 408 "),
        "{}",
        String::from_utf8_lossy(&rest)
    );
}

/// A `HEAD` request's response is its head alone (RFC 9110, 9.3.2), with
/// the `Content-Length` the body would have had: the next response on the
/// keep-alive connection follows right after it. Both an Engine.IO answer
/// (400, bad handshake method) and the 404 of an unknown path.
pub fn head_responses_have_no_body(addr: SocketAddr) {
    for target in [format!("{PATH}?EIO=4&transport=polling"), "/nowhere".into()] {
        let mut conn = raw::connect(addr);
        conn.write(
            format!(
                "HEAD {target} HTTP/1.1\r\nHost: x\r\n\r\n\
                 GET {PATH}?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        );
        let bytes = conn.read_to_end(T);
        let text = String::from_utf8_lossy(&bytes);
        let (head, rest) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("HEAD {target}: no response head in {text:?}"));
        assert!(head.starts_with("HTTP/1.1 4"), "HEAD {target}: {head}");
        let length = head
            .lines()
            .find_map(|line| {
                line.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| panic!("HEAD {target}: no Content-Length in {head}"));
        assert_ne!(
            length, "0",
            "HEAD {target}: the length of the body it would have had"
        );
        assert!(
            rest.starts_with("HTTP/1.1 200 "),
            "HEAD {target}: a body, or no second response, after the head: {rest:?}"
        );
    }
}

/// A POST sent with `Expect: 100-continue` gets `100 Continue` once its
/// head is in (RFC 9110, 10.1.1; Node's `http` answers it too), then its
/// answer once the body follows; the message reaches the session.
pub fn expect_continue_gets_100(addr: SocketAddr) {
    let mut s = Polling::open(addr);
    let body = "4hello";
    let mut conn = raw::connect(addr);
    conn.write(
        format!(
            "POST {PATH}?EIO=4&transport=polling&sid={} HTTP/1.1\r\nHost: x\r\n\
             Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n\
             Expect: 100-continue\r\n\r\n",
            s.sid,
            body.len()
        )
        .as_bytes(),
    );
    let interim = conn.read_head(T).expect("an answer to the head");
    assert!(interim.starts_with("HTTP/1.1 100 "), "{interim}");
    conn.write(body.as_bytes());
    let head = conn.read_head(T).expect("the POST's answer");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert_eq!(s.recv_messages(1), [body]);
}

/// One request on a fresh connection.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    Http::new(addr).request(method, target, headers, body)
}

/// The `Content-Type` of a text polling POST.
pub const TEXT_BODY: (&str, &str) = ("Content-Type", "text/plain;charset=UTF-8");

// ---------------------------------------------------------------------------
// Engine.IO helpers.

/// Splits a v4 polling payload into its packets.
pub fn decode_v4_payload(payload: &str) -> Vec<String> {
    payload.split(SEP).map(str::to_owned).collect()
}

/// Encodes packets as a v3 polling payload (`<length>:<packet>`...).
pub fn encode_v3_payload(packets: &[&str]) -> String {
    packets
        .iter()
        .map(|p| format!("{}:{p}", p.encode_utf16().count()))
        .collect()
}

/// Splits a v3 text polling payload into its packets, checking each length.
pub fn decode_v3_payload(payload: &str) -> Vec<String> {
    let mut packets = Vec::new();
    let mut rest = payload;
    while !rest.is_empty() {
        let (len, after) = rest
            .split_once(':')
            .unwrap_or_else(|| panic!("v3 payload without a length: {payload:?}"));
        let len: usize = len
            .parse()
            .unwrap_or_else(|_| panic!("v3 payload with a bad length {len:?}: {payload:?}"));
        let mut units = 0;
        let mut end = 0;
        for ch in after.chars() {
            if units == len {
                break;
            }
            units += ch.len_utf16();
            end += ch.len_utf8();
        }
        assert_eq!(units, len, "v3 payload shorter than announced: {payload:?}");
        packets.push(after[..end].to_owned());
        rest = &after[end..];
    }
    packets
}

/// Checks an open packet (`0{...}`) as section 1 requires; returns its sid.
pub fn check_open_packet(packet: &str, upgrades: &[&str]) -> String {
    let json = packet
        .strip_prefix('0')
        .unwrap_or_else(|| panic!("not an open packet: {packet:?}"));
    let open = Json::parse(json).unwrap_or_else(|e| panic!("open packet {packet:?}: {e}"));
    assert_eq!(
        open.keys(),
        [
            "maxPayload",
            "pingInterval",
            "pingTimeout",
            "sid",
            "upgrades"
        ],
        "open packet fields: {packet}"
    );
    let sid = open.get("sid").and_then(Json::as_str).unwrap_or_default();
    assert!(!sid.is_empty(), "sid must be a non-empty string: {packet}");
    let want_upgrades = Json::Array(
        upgrades
            .iter()
            .map(|u| Json::String(u.to_string()))
            .collect(),
    );
    assert_eq!(
        open.get("upgrades"),
        Some(&want_upgrades),
        "upgrades: {packet}"
    );
    assert_eq!(
        open.get("pingInterval").and_then(Json::as_f64),
        Some(PING_INTERVAL.as_millis() as f64),
        "pingInterval: {packet}"
    );
    assert_eq!(
        open.get("pingTimeout").and_then(Json::as_f64),
        Some(PING_TIMEOUT.as_millis() as f64),
        "pingTimeout: {packet}"
    );
    assert_eq!(
        open.get("maxPayload").and_then(Json::as_f64),
        Some(MAX_PAYLOAD as f64),
        "maxPayload: {packet}"
    );
    sid.to_owned()
}

/// Asserts an Engine.IO error response: HTTP 400 with a JSON body
/// `{"code":<number>,"message":<string>}`, and `code` if given.
pub fn assert_error(response: &Response, code: Option<u8>, what: &str) {
    assert_eq!(
        response.status,
        400,
        "{what}: expected 400, got {}\n{}{}",
        response.status,
        response.head,
        response.text()
    );
    let json = Json::parse(&response.text()).unwrap_or_else(|e| {
        panic!(
            "{what}: error body is not JSON ({e}): {:?}",
            response.text()
        )
    });
    assert_eq!(
        json.keys(),
        ["code", "message"],
        "{what}: {}",
        response.text()
    );
    let got = json.get("code").and_then(Json::as_f64);
    assert!(
        got.is_some(),
        "{what}: code is not a number: {}",
        response.text()
    );
    assert!(
        json.get("message").and_then(Json::as_str).is_some(),
        "{what}: message is not a string: {}",
        response.text()
    );
    if let Some(code) = code {
        assert_eq!(got, Some(f64::from(code)), "{what}: {}", response.text());
    }
}

/// Asserts polling requests for `sid` are refused as for an unknown or
/// closed session (400, code 1 "Session ID unknown").
pub fn assert_session_closed(addr: SocketAddr, path: &str, eio: u8, sid: &str) {
    let target = format!("{path}?EIO={eio}&transport=polling&sid={sid}");
    let r = http_request(addr, "GET", &target, &[], b"");
    assert_error(&r, Some(1), "GET for a closed session");
}

/// A polling session: one connection for GETs (a held poll blocks it) and
/// one for POSTs.
pub struct Polling {
    /// The session id.
    pub sid: String,
    /// The path (`/engine.io/`, or `/socket.io/` for v3 on our server).
    pub path: String,
    /// The protocol revision (3 or 4).
    pub eio: u8,
    get: Http,
    post: Http,
}

impl Polling {
    /// A v4 session on [`PATH`]: the handshake is checked (section 1).
    pub fn open(addr: SocketAddr) -> Polling {
        Self::open_at(addr, PATH, 4)
    }

    /// A v4 session on `path` opened without checking the handshake
    /// against the contract's settings (for servers with other intervals).
    pub fn open_any(addr: SocketAddr, path: &str) -> Polling {
        let r = http_request(
            addr,
            "GET",
            &format!("{path}?EIO=4&transport=polling"),
            &[],
            b"",
        );
        assert_eq!(r.status, 200, "handshake: {}{}", r.head, r.text());
        let open = r.text();
        let json = open
            .strip_prefix('0')
            .unwrap_or_else(|| panic!("not an open packet: {open}"));
        let sid = Json::parse(json)
            .ok()
            .and_then(|open| open.get("sid").and_then(Json::as_str).map(str::to_owned))
            .unwrap_or_else(|| panic!("no sid in {open}"));
        Polling {
            sid,
            path: path.to_owned(),
            eio: 4,
            get: Http::new(addr),
            post: Http::new(addr),
        }
    }

    /// A session on `path` with protocol `eio`; checks the handshake.
    pub fn open_at(addr: SocketAddr, path: &str, eio: u8) -> Polling {
        let mut get = Http::new(addr);
        let r = get.request(
            "GET",
            &format!("{path}?EIO={eio}&transport=polling"),
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
                "the handshake is the open packet alone: {packets:?}"
            );
        }
        Polling {
            sid,
            path: path.to_owned(),
            eio,
            get,
            post: Http::new(addr),
        }
    }

    /// The polling URL target of this session.
    pub fn target(&self) -> String {
        format!(
            "{}?EIO={}&transport=polling&sid={}",
            self.path, self.eio, self.sid
        )
    }

    /// The websocket URL target upgrading this session.
    pub fn ws_target(&self) -> String {
        format!(
            "{}?EIO={}&transport=websocket&sid={}",
            self.path, self.eio, self.sid
        )
    }

    /// A GET poll (blocks while the server holds it).
    pub fn get(&mut self) -> Response {
        let target = self.target();
        self.get.request("GET", &target, &[], b"")
    }

    /// Starts a GET poll without waiting for it.
    pub fn start_get(&mut self) {
        let target = self.target();
        self.get.send("GET", &target, &[], b"");
    }

    /// Waits for the answer to [`Polling::start_get`].
    pub fn finish_get(&mut self, timeout: Duration) -> Response {
        self.get
            .recv(timeout)
            .unwrap_or_else(|e| panic!("held poll: no response ({e:?})"))
    }

    /// A POST of `body` (as a text payload).
    pub fn post(&mut self, body: &str) -> Response {
        let target = self.target();
        self.post
            .request("POST", &target, &[TEXT_BODY], body.as_bytes())
    }

    /// A POST that must succeed (200, `ok`).
    pub fn post_ok(&mut self, body: &str) {
        let r = self.post(body);
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "ok"),
            "POST {:?}: {}",
            truncate(body),
            r.head
        );
    }

    /// A POST that must succeed within `timeout` (for one the server may
    /// answer only once the application's handlers caught up).
    pub fn post_ok_within(&mut self, body: &str, timeout: Duration) {
        self.start_post(body);
        let r = self
            .post_answer(timeout)
            .unwrap_or_else(|e| panic!("POST {:?}: no response ({e:?})", truncate(body)));
        assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{}", r.head);
    }

    /// Starts a POST without waiting for its answer (see
    /// [`Polling::post_answer`]).
    pub fn start_post(&mut self, body: &str) {
        let target = self.target();
        self.post
            .send("POST", &target, &[TEXT_BODY], body.as_bytes());
    }

    /// The answer to the POST [`Polling::start_post`] sent, within
    /// `timeout`.
    pub fn post_answer(&mut self, timeout: Duration) -> Result<Response, HttpError> {
        self.post.recv(timeout)
    }

    /// A POST on the connection the GET polls use (as a second, concurrent
    /// data request).
    pub fn post_on_poll_connection(&mut self, body: &str) -> Response {
        let target = self.target();
        self.get
            .request("POST", &target, &[TEXT_BODY], body.as_bytes())
    }

    /// Decodes a poll response (which must be a 200).
    pub fn packets_of(&self, r: &Response) -> Vec<String> {
        assert_eq!(r.status, 200, "poll: {}{}", r.head, r.text());
        if self.eio == 3 {
            assert!(
                !r.header("content-type")
                    .is_some_and(|t| t.contains("octet-stream")),
                "unexpected binary v3 payload"
            );
            decode_v3_payload(&r.text())
        } else {
            decode_v4_payload(&r.text())
        }
    }

    /// One GET poll, decoded.
    pub fn poll(&mut self) -> Vec<String> {
        let r = self.get();
        self.packets_of(&r)
    }

    fn pong(&mut self) {
        let body = if self.eio == 3 {
            encode_v3_payload(&["3"])
        } else {
            "3".to_owned()
        };
        self.post_ok(&body);
    }

    /// Handles the non-message packets of a v4 poll (answers pings; a close
    /// fails the case) and returns the message packets as sent on the wire
    /// (`4...` or `b...`).
    pub fn messages_of(&mut self, packets: Vec<String>) -> Vec<String> {
        let mut messages = Vec::new();
        for p in packets {
            match p.as_bytes().first() {
                Some(b'4' | b'b') => messages.push(p),
                Some(b'2') if self.eio == 4 => self.pong(),
                Some(b'6') => {}
                _ => panic!(
                    "unexpected packet {:?} while waiting for messages",
                    truncate(&p)
                ),
            }
        }
        messages
    }

    /// Polls until `n` message packets arrived, answering pings.
    pub fn recv_messages(&mut self, n: usize) -> Vec<String> {
        let mut got = Vec::new();
        let deadline = Instant::now() + T;
        while got.len() < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} messages",
                got.len()
            );
            let packets = self.poll();
            got.extend(self.messages_of(packets));
        }
        assert_eq!(got.len(), n, "more messages than sent");
        got
    }
}

fn truncate(s: &str) -> String {
    if s.len() > 60 {
        let mut end = 60;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}... ({} bytes)", &s[..end], s.len())
    } else {
        s.to_owned()
    }
}

/// A message received over a websocket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsMsg {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A close frame (its code).
    Close(Option<u16>),
    /// The TCP connection ended.
    Eof,
    /// Nothing in time.
    Timeout,
}

/// Opens a websocket to `target`: the response head, and the connection if
/// the server answered 101 with the right accept key.
pub fn ws_handshake(addr: SocketAddr, target: &str, extra: &str) -> (Option<RawConn>, String) {
    let mut conn = raw::connect(addr);
    conn.stream
        .set_write_timeout(Some(T))
        .expect("write timeout");
    conn.write(raw::upgrade_request(target, extra).as_bytes());
    let Some(head) = conn.read_head(T) else {
        return (None, String::new());
    };
    if !head.starts_with("HTTP/1.1 101 ") {
        return (None, head);
    }
    let accept = raw::header(&head, "sec-websocket-accept");
    assert_eq!(
        accept.as_deref(),
        Some(raw::accept_key(raw::CLIENT_KEY).as_str()),
        "bad accept key: {head}"
    );
    (Some(conn), head)
}

/// Opens a websocket to `target`, which must succeed.
pub fn ws_open(addr: SocketAddr, target: &str) -> RawConn {
    match ws_handshake(addr, target, "") {
        (Some(conn), _) => conn,
        (None, head) => panic!("websocket to {target} refused: {head:?}"),
    }
}

/// Sends a text message (masked).
pub fn ws_text(conn: &mut RawConn, text: &str) {
    conn.write(&frame(1, true, 0, text.as_bytes(), true));
}

/// Sends a binary message (masked).
pub fn ws_binary(conn: &mut RawConn, data: &[u8]) {
    conn.write(&frame(2, true, 0, data, true));
}

/// Reads the next message within `timeout`: answers websocket pings,
/// skips pongs, joins fragments.
pub fn ws_recv(conn: &mut RawConn, timeout: Duration) -> WsMsg {
    let deadline = Instant::now() + timeout;
    let mut partial: Option<(u8, Vec<u8>)> = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let f = match conn.read_frame(left) {
            ReadResult::Frame(f) => f,
            ReadResult::Eof => return WsMsg::Eof,
            ReadResult::Timeout => return WsMsg::Timeout,
        };
        let (opcode, payload) = match f.opcode {
            8 => return WsMsg::Close(f.close_code()),
            9 => {
                let _ = conn.stream.write_all(&frame(10, true, 0, &f.payload, true));
                continue;
            }
            10 => continue,
            0 => {
                let (opcode, mut data) = partial.take().expect("continuation without a start");
                data.extend_from_slice(&f.payload);
                if !f.fin {
                    partial = Some((opcode, data));
                    continue;
                }
                (opcode, data)
            }
            1 | 2 if !f.fin => {
                partial = Some((f.opcode, f.payload));
                continue;
            }
            1 | 2 => (f.opcode, f.payload),
            other => panic!("unexpected opcode {other}"),
        };
        return if opcode == 1 {
            WsMsg::Text(String::from_utf8(payload).expect("text frame is UTF-8"))
        } else {
            WsMsg::Binary(payload)
        };
    }
}

/// Reads the next Engine.IO message over websocket, answering v4 pings
/// (`2`) with pongs and skipping noops.
pub fn ws_recv_message(conn: &mut RawConn) -> WsMsg {
    loop {
        match ws_recv(conn, T) {
            WsMsg::Text(t) if t == "2" => ws_text(conn, "3"),
            WsMsg::Text(t) if t == "6" => {}
            other => return other,
        }
    }
}

/// Asserts the server ends the websocket (a close frame or the end of the
/// connection) within `timeout`, skipping anything it sends before.
pub fn ws_expect_closed(conn: &mut RawConn, timeout: Duration, what: &str) {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match ws_recv(conn, left) {
            WsMsg::Close(_) | WsMsg::Eof => return,
            WsMsg::Timeout => panic!("{what}: the server did not close the websocket"),
            WsMsg::Text(_) | WsMsg::Binary(_) => {}
        }
    }
}

/// A websocket-only v4 session on [`PATH`]: checks the open packet; returns
/// the connection and the sid.
pub fn ws_session(addr: SocketAddr) -> (RawConn, String) {
    let mut conn = ws_open(addr, &format!("{PATH}?EIO=4&transport=websocket"));
    match ws_recv(&mut conn, T) {
        WsMsg::Text(open) => {
            let sid = check_open_packet(&open, &[]);
            (conn, sid)
        }
        other => panic!("expected the open packet, got {other:?}"),
    }
}

/// Writes `bytes`, ignoring errors (the server may close while we write).
fn write_lossy(conn: &mut RawConn, bytes: &[u8]) {
    let _ = conn.stream.write_all(bytes);
}

fn b64(data: &[u8]) -> String {
    format!("b{}", BASE64.encode(data))
}

// ---------------------------------------------------------------------------
// Engine.IO v4 cases.

/// A polling handshake answers the open packet with exactly the fields and
/// values of section 1 (`upgrades: ["websocket"]`), as a text payload;
/// each handshake gets its own sid.
pub fn handshake_over_polling(addr: SocketAddr) {
    let r = http_request(
        addr,
        "GET",
        &format!("{PATH}?EIO=4&transport=polling"),
        &[],
        b"",
    );
    assert_eq!(r.status, 200, "{}{}", r.head, r.text());
    let content_type = r.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain"),
        "content type {content_type:?}"
    );
    let text = r.text();
    assert!(!text.contains(SEP), "one packet only: {text:?}");
    let sid = check_open_packet(&text, &["websocket"]);
    let other = Polling::open(addr);
    assert_ne!(sid, other.sid, "two handshakes, one sid");
}

/// A websocket handshake is answered with the open packet as the first
/// message, with `upgrades: []`.
pub fn handshake_over_websocket(addr: SocketAddr) {
    let (mut conn, _sid) = ws_session(addr);
    conn.write(&frame(8, true, 0, &raw::close_payload(1000, b""), true));
}

/// Invalid requests get 400 with a JSON body `{"code":N,"message":"..."}`:
/// a missing or non-numeric or unsupported `EIO` (code 5), a missing or
/// unknown `transport` (code 0), a handshake that is not a GET (code 2), an
/// unknown sid (code 1), a websocket handshake without the upgrade
/// (code 3). The codes are the error codes of the Engine.IO server.
pub fn bad_requests_get_400(addr: SocketAddr) {
    let cases: &[(&str, String, u8)] = &[
        ("GET", format!("{PATH}?transport=polling"), 5),
        ("GET", format!("{PATH}?EIO=abc&transport=polling"), 5),
        ("GET", format!("{PATH}?EIO=5&transport=polling"), 5),
        ("GET", format!("{PATH}?EIO=4"), 0),
        ("GET", format!("{PATH}?EIO=4&transport=abc"), 0),
        ("POST", format!("{PATH}?EIO=4&transport=polling"), 2),
        ("PUT", format!("{PATH}?EIO=4&transport=polling"), 2),
        (
            "GET",
            format!("{PATH}?EIO=4&transport=polling&sid=unknown"),
            1,
        ),
        (
            "POST",
            format!("{PATH}?EIO=4&transport=polling&sid=unknown"),
            1,
        ),
        ("GET", format!("{PATH}?EIO=4&transport=websocket"), 3),
    ];
    // One keep-alive connection for all: an error must not break it.
    let mut http = Http::new(addr);
    for (method, target, code) in cases {
        let body: &[u8] = if *method == "GET" { b"" } else { b"4hello" };
        let r = http.request(method, target, &[TEXT_BODY], body);
        assert_error(&r, Some(*code), &format!("{method} {target}"));
        let content_type = r.header("content-type").unwrap_or_default();
        assert!(
            content_type.starts_with("application/json"),
            "{method} {target}: content type {content_type:?}"
        );
    }
}

/// Invalid websocket handshakes (bad `EIO`, bad `transport`, unknown sid)
/// are refused, or closed without an open packet.
pub fn bad_websocket_handshakes_are_refused(addr: SocketAddr) {
    for query in [
        "transport=websocket",
        "EIO=abc&transport=websocket",
        "EIO=4",
        "EIO=4&transport=abc",
        "EIO=4&transport=websocket&sid=unknown",
    ] {
        let target = format!("{PATH}?{query}");
        match ws_handshake(addr, &target, "") {
            (None, head) => assert!(
                head.is_empty() || head.starts_with("HTTP/1.1 4"),
                "{target}: {head}"
            ),
            (Some(mut conn), _) => match ws_recv(&mut conn, T) {
                WsMsg::Close(_) | WsMsg::Eof => {}
                other => panic!("{target}: accepted, then {other:?}"),
            },
        }
    }
}

/// The server sends nothing on its own but the heartbeat: the first poll
/// after the handshake is held until the first ping (`2`), about
/// `pingInterval` later; a pong (`3`) is answered `ok`.
pub fn first_poll_gets_the_ping(addr: SocketAddr) {
    let start = Instant::now();
    let mut s = Polling::open(addr);
    let r = s.get();
    let elapsed = start.elapsed();
    assert_eq!((r.status, r.text().as_str()), (200, "2"), "{}", r.head);
    assert!(
        elapsed >= PING_INTERVAL - Duration::from_millis(50),
        "the ping came after {elapsed:?}, before pingInterval"
    );
    s.post_ok("3");
}

/// Text messages come back over polling as sent: ASCII, UTF-8, empty.
pub fn polling_echoes_text(addr: SocketAddr) {
    let mut s = Polling::open(addr);
    for message in ["4hello", "4κόσμε €𝄞 \u{0} \"quoted\"", "4"] {
        s.post_ok(message);
        assert_eq!(s.recv_messages(1), [message]);
    }
    // The poll response carrying a text payload is text/plain.
    s.post_ok("4x");
    loop {
        let r = s.get();
        let packets = s.packets_of(&r);
        let messages = s.messages_of(packets);
        if messages.is_empty() {
            continue;
        }
        assert_eq!(messages, ["4x"]);
        let content_type = r.header("content-type").unwrap_or_default();
        assert!(content_type.starts_with("text/plain"), "{content_type:?}");
        break;
    }
}

/// Binary messages come back over polling as `b<base64>`.
pub fn polling_echoes_binary(addr: SocketAddr) {
    let mut s = Polling::open(addr);
    let all_bytes: Vec<u8> = (0..=255).collect();
    for data in [&[1u8, 2, 3, 4][..], &all_bytes, &[0u8][..]] {
        let packet = b64(data);
        s.post_ok(&packet);
        assert_eq!(s.recv_messages(1), [packet]);
    }
}

/// Several packets in one POST, separated by `\x1e`, come back in order.
pub fn polling_echoes_several_packets_per_post(addr: SocketAddr) {
    let mut s = Polling::open(addr);
    s.post_ok("4test1\x1e4test2\x1e4test3");
    assert_eq!(s.recv_messages(3), ["4test1", "4test2", "4test3"]);
    s.post_ok("4hello\x1ebAQIDBA==");
    assert_eq!(s.recv_messages(2), ["4hello", "bAQIDBA=="]);
}

/// One POST of 3,000 packets (a client emitting in a loop over polling
/// sends what it buffered in one POST) is echoed in full, in order, over
/// the next polls, and the session stays open: more answers than
/// `max_buffered_packets` (1024) fit in a polling session's queue.
pub fn polling_post_of_many_packets_is_echoed(addr: SocketAddr) {
    const PACKETS: usize = 3000;
    let mut s = Polling::open(addr);
    let sent: Vec<String> = (0..PACKETS).map(|i| format!("4m{i}")).collect();
    s.post_ok(&sent.join("\x1e"));
    assert_eq!(s.recv_messages(PACKETS), sent);
    s.post_ok("4after");
    assert_eq!(s.recv_messages(1), ["4after"]);
}

/// Messages queued while no poll is pending come back in the order they
/// were sent; a held poll is released by a message.
pub fn polling_queued_messages_arrive_in_order(addr: SocketAddr) {
    let mut s = Polling::open(addr);
    let sent: Vec<String> = (0..20)
        .map(|i| {
            if i % 2 == 0 {
                format!("4message {i}")
            } else {
                b64(&[i as u8; 5])
            }
        })
        .collect();
    for packet in &sent {
        s.post_ok(packet);
    }
    assert_eq!(s.recv_messages(sent.len()), sent);

    // A poll held by the server, then a message: the poll returns with it.
    for attempt in 0.. {
        s.start_get();
        sleep_ms(50);
        s.post_ok("4late");
        let r = s.finish_get(T);
        let packets = s.packets_of(&r);
        let mut got = s.messages_of(packets);
        if got.is_empty() && attempt < 3 {
            // The heartbeat released the poll before the message came.
            got = s.recv_messages(1);
            assert_eq!(got, ["4late"]);
            continue;
        }
        assert_eq!(got, ["4late"]);
        break;
    }
}

/// Over websocket, text packets come back as text frames and binary frames
/// (raw bytes) as binary frames, in order.
pub fn websocket_echoes_text_and_binary(addr: SocketAddr) {
    let (mut conn, _) = ws_session(addr);
    ws_text(&mut conn, "4hello");
    assert_eq!(ws_recv_message(&mut conn), WsMsg::Text("4hello".into()));
    ws_text(&mut conn, "4κόσμε €𝄞");
    assert_eq!(ws_recv_message(&mut conn), WsMsg::Text("4κόσμε €𝄞".into()));
    ws_binary(&mut conn, &[1, 2, 3, 4]);
    assert_eq!(ws_recv_message(&mut conn), WsMsg::Binary(vec![1, 2, 3, 4]));
    let big: Vec<u8> = (0..100_000).map(|i| (i % 251) as u8).collect();
    ws_binary(&mut conn, &big);
    assert!(
        ws_recv_message(&mut conn) == WsMsg::Binary(big),
        "100 KB binary differs"
    );
    let mut sent = Vec::new();
    for i in 0..30u8 {
        if i % 2 == 0 {
            let text = format!("4burst {i}");
            ws_text(&mut conn, &text);
            sent.push(WsMsg::Text(text));
        } else {
            let data = vec![i; 1 + i as usize];
            ws_binary(&mut conn, &data);
            sent.push(WsMsg::Binary(data));
        }
    }
    for (i, want) in sent.into_iter().enumerate() {
        assert_eq!(ws_recv_message(&mut conn), want, "message {i}");
    }
}

/// A polling session that answers every ping lives on for several
/// intervals (longer than `pingInterval + pingTimeout`), and still echoes.
pub fn heartbeat_keeps_a_polling_session(addr: SocketAddr) {
    let mut s = Polling::open(addr);
    let start = Instant::now();
    for i in 0..4 {
        assert_eq!(s.poll(), ["2"], "ping {i}");
        s.post_ok("3");
    }
    assert!(start.elapsed() >= 3 * PING_INTERVAL, "pings came too fast");
    s.post_ok("4alive");
    assert_eq!(s.recv_messages(1), ["4alive"]);
}

/// A polling session that does not answer the ping is closed: idle, its
/// next poll gets 400; with a poll held, that poll ends with a `close`
/// packet (or 400) and the next one gets 400.
pub fn missing_pong_closes_a_polling_session(addr: SocketAddr) {
    let s = Polling::open(addr);
    std::thread::sleep(PAST_TIMEOUT);
    assert_session_closed(addr, PATH, 4, &s.sid);

    let mut s = Polling::open(addr);
    assert_eq!(s.poll(), ["2"]);
    let r = s.get();
    if r.status == 200 {
        assert_eq!(
            s.packets_of(&r),
            ["1"],
            "the held poll ends with a close packet"
        );
    } else {
        assert_error(&r, None, "poll after a missed pong");
    }
    assert_session_closed(addr, PATH, 4, &s.sid);
}

/// A websocket session that answers every ping lives on for several
/// intervals, and still echoes.
pub fn heartbeat_keeps_a_websocket_session(addr: SocketAddr) {
    let (mut conn, _) = ws_session(addr);
    for i in 0..4 {
        assert_eq!(ws_recv(&mut conn, T), WsMsg::Text("2".into()), "ping {i}");
        ws_text(&mut conn, "3");
    }
    ws_text(&mut conn, "4alive");
    assert_eq!(ws_recv_message(&mut conn), WsMsg::Text("4alive".into()));
}

/// A websocket session that does not answer the ping is closed, and its sid
/// is then unknown.
pub fn missing_pong_closes_a_websocket_session(addr: SocketAddr) {
    let (mut conn, sid) = ws_session(addr);
    assert_eq!(ws_recv(&mut conn, T), WsMsg::Text("2".into()));
    ws_expect_closed(&mut conn, PAST_TIMEOUT + T, "missed pong");
    assert_session_closed(addr, PATH, 4, &sid);
}

/// A client `close` packet over polling closes the session: the pending
/// poll ends with a `noop` (`6`, as the official suite expects), the POST
/// gets `ok`, and the sid is then unknown.
pub fn close_packet_closes_a_polling_session(addr: SocketAddr) {
    let mut s = Polling::open(addr);
    for attempt in 0.. {
        s.start_get();
        sleep_ms(50);
        let r = s.post("1");
        let held = s.finish_get(T);
        let packets = s.packets_of(&held);
        if packets == ["2"] && attempt < 3 {
            // The heartbeat released the poll before the close came:
            // answer it and retry on a fresh session.
            s = Polling::open(addr);
            continue;
        }
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "ok"),
            "POST 1: {}",
            r.head
        );
        assert_eq!(packets, ["6"], "the pending poll ends with a noop");
        break;
    }
    assert_session_closed(addr, PATH, 4, &s.sid);
}

/// A client `close` packet over websocket closes the session.
pub fn close_packet_closes_a_websocket_session(addr: SocketAddr) {
    let (mut conn, sid) = ws_session(addr);
    ws_text(&mut conn, "1");
    ws_expect_closed(&mut conn, T, "close packet");
    assert_session_closed(addr, PATH, 4, &sid);
}

/// When the server closes a websocket session from outside the
/// connection's own reading (here the client's `close` packet and a missed
/// pong: the endpoint, not the read, starts the close), it sends its close
/// frame and, if the client then neither answers it nor closes TCP, drops
/// the connection within the WebSocket close timeout
/// (`switchboard_core::ws::Config::close_timeout`, 5 s by default, which
/// `conformance-server` keeps). Not a Node case: Node's `ws` waits 30 s.
pub fn unanswered_server_close_drops_the_websocket(addr: SocketAddr) {
    let close_timeout = switchboard_core::ws::Config::default().close_timeout;
    // Both sessions wait for their close timeout at once.
    let (mut by_packet, _) = ws_session(addr);
    ws_text(&mut by_packet, "1");
    let (by_pong, _) = ws_session(addr);
    let mut waiting =
        [("close packet", by_packet), ("missed pong", by_pong)].map(|(what, mut conn)| {
            // Everything up to the close frame (the missed pong's ping is
            // never answered), then silence: no close answer, no FIN.
            loop {
                match conn.read_frame(PAST_TIMEOUT + T) {
                    ReadResult::Frame(f) if f.opcode == 8 => break,
                    ReadResult::Frame(_) => {}
                    other => panic!("{what}: expected the server's close frame, got {other:?}"),
                }
            }
            (what, conn, Instant::now())
        });
    for (what, conn, closing_since) in &mut waiting {
        // Generous slack for a loaded machine; without the timeout the
        // connection stays open for good.
        let limit = close_timeout + Duration::from_secs(5);
        let left = (*closing_since + limit).saturating_duration_since(Instant::now());
        match conn.read_frame(left) {
            ReadResult::Eof => {}
            other => panic!(
                "{what}: the server did not drop the connection within {limit:?} of its \
                 unanswered close frame, got {other:?}"
            ),
        }
    }
}

/// A second GET while one is pending closes the session: the duplicate gets
/// an error (400, or 500 as Node answers), the pending one a `close`
/// packet, and the sid is then unknown.
pub fn duplicate_poll_closes_the_session(addr: SocketAddr) {
    let mut s = Polling::open(addr);
    s.start_get();
    sleep_ms(50);
    let dup = http_request(addr, "GET", &format!("{}&t=dup", s.target()), &[], b"");
    assert!(
        dup.status == 400 || dup.status == 500,
        "duplicate poll: {}",
        dup.head
    );
    let held = s.finish_get(T);
    assert_eq!(
        s.packets_of(&held),
        ["1"],
        "the pending poll ends with a close packet"
    );
    assert_session_closed(addr, PATH, 4, &s.sid);
}

/// An invalid packet in a POST closes the session (whatever the POST
/// itself gets).
pub fn invalid_packet_closes_a_polling_session(addr: SocketAddr) {
    let mut s = Polling::open(addr);
    let r = s.post("abc");
    assert!(r.status == 200 || r.status == 400, "POST abc: {}", r.head);
    assert_session_closed(addr, PATH, 4, &s.sid);
}

/// An invalid packet in a POST is an invalid request: 400 (what the
/// official suite asserts).
pub fn invalid_packet_post_gets_400(addr: SocketAddr) {
    let mut s = Polling::open(addr);
    let r = s.post("abc");
    assert_error(&r, None, "POST with an invalid packet");
}

/// An invalid packet over websocket closes the session.
pub fn invalid_packet_closes_a_websocket_session(addr: SocketAddr) {
    let (mut conn, sid) = ws_session(addr);
    ws_text(&mut conn, "abc");
    ws_expect_closed(&mut conn, T, "invalid packet");
    assert_session_closed(addr, PATH, 4, &sid);
}

/// Invalid UTF-8 in a text frame fails the WebSocket as RFC 6455 says:
/// the client reads a close frame with 1007 (not a bare end of the
/// connection), and the session is closed.
pub fn invalid_utf8_over_websocket_gets_close_1007(addr: SocketAddr) {
    let (mut conn, sid) = ws_session(addr);
    conn.write(&frame(1, true, 0, b"4\xff", true));
    let deadline = Instant::now() + T;
    loop {
        match ws_recv(
            &mut conn,
            deadline.saturating_duration_since(Instant::now()),
        ) {
            WsMsg::Close(code) => {
                assert_eq!(code, Some(1007), "close code");
                break;
            }
            WsMsg::Text(_) | WsMsg::Binary(_) => {}
            other => panic!("expected a close frame with 1007, got {other:?}"),
        }
    }
    assert_session_closed(addr, PATH, 4, &sid);
}

/// A client that sends more messages at once than the server's send queue
/// holds (`maxBufferedPackets`, 1024 by default; a client emitting in a
/// loop) gets every echo, in order, and stays connected: the server takes
/// the answers to part of a read before handing on the rest.
pub fn websocket_burst_larger_than_the_send_queue_is_echoed(addr: SocketAddr) {
    const BURST: usize = 3000;
    let (mut conn, _sid) = ws_session(addr);
    let burst: Vec<u8> = (0..BURST)
        .flat_map(|i| frame(1, true, 0, format!("4m{i}").as_bytes(), true))
        .collect();
    conn.write(&burst);
    // Then one more, which only an open session echoes.
    for i in 0..=BURST {
        if i == BURST {
            ws_text(&mut conn, &format!("4m{i}"));
        }
        loop {
            match ws_recv(&mut conn, T) {
                WsMsg::Text(ping) if ping == "2" => ws_text(&mut conn, "3"),
                WsMsg::Text(echo) => {
                    assert_eq!(echo, format!("4m{i}"), "echo {i} of {BURST}");
                    break;
                }
                other => panic!("echo {i} of {BURST}: got {other:?}"),
            }
        }
    }
}

/// A POST of exactly `maxPayload` bytes is accepted and echoed.
pub fn post_of_max_payload_is_accepted(addr: SocketAddr) {
    let mut s = Polling::open(addr);
    let packet = format!("4{}", "a".repeat(MAX_PAYLOAD - 1));
    s.post_ok(&packet);
    let got = s.recv_messages(1);
    assert!(got[0] == packet, "the 1 MB message came back changed");
}

/// A POST over `maxPayload` gets 413.
pub fn oversize_post_gets_413(addr: SocketAddr) {
    let mut s = Polling::open(addr);
    let r = s.post(&format!("4{}", "a".repeat(MAX_PAYLOAD)));
    assert_eq!(r.status, 413, "{}", r.head);
}

/// A POST over `maxPayload` gets 413 and closes the session.
pub fn oversize_post_closes_the_session(addr: SocketAddr) {
    let mut s = Polling::open(addr);
    let r = s.post(&format!("4{}", "a".repeat(MAX_PAYLOAD)));
    assert_eq!(r.status, 413, "{}", r.head);
    assert_session_closed(addr, PATH, 4, &s.sid);
}

/// Upgrade from polling to websocket: `2probe` is answered `3probe`; the
/// pending GET ends with a `noop`, and so does a GET during the upgrade;
/// after `5` the session runs on the websocket, HTTP requests for its sid
/// get 400, and a second websocket for it is refused.
pub fn upgrade_to_websocket(addr: SocketAddr) {
    let mut s = Polling::open(addr);
    s.start_get();
    sleep_ms(20);
    let mut ws = ws_open(addr, &s.ws_target());
    ws_text(&mut ws, "2probe");
    assert_eq!(ws_recv(&mut ws, T), WsMsg::Text("3probe".into()));
    let held = s.finish_get(T);
    let packets = s.packets_of(&held);
    // Unless the heartbeat came first, the pending poll gets the noop.
    if packets != ["2"] {
        assert_eq!(packets, ["6"], "the pending poll ends with a noop");
    } else {
        s.pong();
    }
    // A poll during the upgrade is ended with a noop too.
    let during = s.poll();
    assert!(
        during == ["6"] || during == ["2"],
        "a poll during the upgrade: {during:?}"
    );
    if during == ["2"] {
        s.pong();
    }
    ws_text(&mut ws, "5");
    ws_text(&mut ws, "4hello");
    assert_eq!(ws_recv_message(&mut ws), WsMsg::Text("4hello".into()));
    ws_binary(&mut ws, &[9, 8, 7]);
    assert_eq!(ws_recv_message(&mut ws), WsMsg::Binary(vec![9, 8, 7]));

    let r = http_request(addr, "GET", &s.target(), &[], b"");
    assert_error(&r, None, "GET after the upgrade");
    let r = http_request(addr, "POST", &s.target(), &[TEXT_BODY], b"4x");
    assert_error(&r, None, "POST after the upgrade");

    match ws_handshake(addr, &s.ws_target(), "") {
        (None, head) => assert!(
            head.is_empty() || head.starts_with("HTTP/1.1 4"),
            "second websocket: {head}"
        ),
        (Some(mut second), _) => match ws_recv(&mut second, T) {
            WsMsg::Close(_) | WsMsg::Eof => {}
            other => panic!("a second websocket for the sid was accepted, then {other:?}"),
        },
    }
    // The upgraded session is untouched.
    ws_text(&mut ws, "4still here");
    assert_eq!(ws_recv_message(&mut ws), WsMsg::Text("4still here".into()));
}

/// A websocket message of exactly `maxPayload` bytes is echoed; a larger
/// one closes the session.
pub fn oversize_websocket_message_closes(addr: SocketAddr) {
    let (mut conn, sid) = ws_session(addr);
    let packet = format!("4{}", "b".repeat(MAX_PAYLOAD - 1));
    ws_text(&mut conn, &packet);
    let echoed = ws_recv_message(&mut conn);
    assert!(
        echoed == WsMsg::Text(packet),
        "the 1 MB message came back changed: {}",
        match &echoed {
            WsMsg::Text(t) => format!("text of {} bytes: {:?}...", t.len(), &t[..t.len().min(20)]),
            other => format!("{other:?}").chars().take(80).collect(),
        }
    );
    let big = format!("4{}", "c".repeat(MAX_PAYLOAD));
    write_lossy(&mut conn, &frame(1, true, 0, big.as_bytes(), true));
    ws_expect_closed(&mut conn, T, "message over maxPayload");
    assert_session_closed(addr, PATH, 4, &sid);
}

/// A WebSocket transport offered permessage-deflate (as every browser
/// offers it) declines it: compression is off by default, as in Node's
/// engine.io, since each compressed connection holds zlib state.
pub fn websocket_declines_permessage_deflate(addr: SocketAddr) {
    let target = format!("{PATH}?EIO=4&transport=websocket");
    let (conn, head) = ws_handshake(
        addr,
        &target,
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
    );
    assert!(conn.is_some(), "websocket refused: {head}");
    assert_eq!(
        raw::header(&head, "sec-websocket-extensions"),
        None,
        "compression accepted: {head}"
    );
}

/// CORS for any origin: with an `Origin`, every response (handshake, POST,
/// poll, error) allows it, and the preflight allows GET and POST and the
/// headers asked for.
pub fn cors_allows_any_origin(addr: SocketAddr) {
    let origin = ("Origin", "http://example.test");
    let allowed = |r: &Response, what: &str| {
        let value = r.header("access-control-allow-origin");
        assert!(
            matches!(value.as_deref(), Some("*" | "http://example.test")),
            "{what}: Access-Control-Allow-Origin {value:?}\n{}",
            r.head
        );
    };
    let mut http = Http::new(addr);
    let r = http.request(
        "GET",
        &format!("{PATH}?EIO=4&transport=polling"),
        &[origin],
        b"",
    );
    allowed(&r, "handshake");
    let sid = check_open_packet(&r.text(), &["websocket"]);
    let target = format!("{PATH}?EIO=4&transport=polling&sid={sid}");
    let r = http.request("POST", &target, &[origin, TEXT_BODY], b"4cors");
    assert_eq!(r.status, 200);
    allowed(&r, "POST");
    let r = http.request("GET", &target, &[origin], b"");
    assert_eq!(r.text(), "4cors");
    allowed(&r, "poll");
    let r = http.request(
        "GET",
        &format!("{PATH}?EIO=4&transport=abc"),
        &[origin],
        b"",
    );
    assert_eq!(r.status, 400);
    allowed(&r, "error");
    let r = http.request(
        "OPTIONS",
        &target,
        &[
            origin,
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
        b"",
    );
    assert!(r.status == 200 || r.status == 204, "preflight: {}", r.head);
    allowed(&r, "preflight");
    let methods = r
        .header("access-control-allow-methods")
        .unwrap_or_default()
        .to_ascii_uppercase();
    assert!(
        methods.contains("GET") && methods.contains("POST"),
        "preflight methods {methods:?}"
    );
    let headers = r
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        headers.contains("content-type"),
        "preflight headers {headers:?}"
    );
}

// ---------------------------------------------------------------------------
// Engine.IO v3 cases (`path` is where the server accepts `EIO=3`).

/// Pings a v3 session over polling and polls until the pong (`3`) comes
/// back, skipping what was queued before (message packets, e.g. a Socket.IO
/// server's CONNECT) and failing on anything else, such as a server ping.
/// (Node answers a polling `2probe` with a bare `3`: only the upgrade probe
/// over websocket echoes `probe`, so plain pings are used here.)
fn v3_ping_over_polling(s: &mut Polling) {
    s.post_ok(&encode_v3_payload(&["2"]));
    let deadline = Instant::now() + T;
    loop {
        assert!(Instant::now() < deadline, "no pong");
        for p in s.poll() {
            match p.as_bytes().first() {
                Some(b'3') => return,
                Some(b'4' | b'6') => {}
                _ => panic!("unexpected v3 packet {p:?} while waiting for the pong"),
            }
        }
    }
}

/// A v3 polling handshake: `<length>:0{...}` with the section 1 values and
/// `upgrades: ["websocket"]`.
pub fn v3_handshake_over_polling(addr: SocketAddr, path: &str) {
    let r = http_request(
        addr,
        "GET",
        &format!("{path}?EIO=3&transport=polling"),
        &[],
        b"",
    );
    assert_eq!(r.status, 200, "{}{}", r.head, r.text());
    let text = r.text();
    let packets = decode_v3_payload(&text);
    check_open_packet(&packets[0], &["websocket"]);
    // The same, text only, for a client without binary support.
    let r = http_request(
        addr,
        "GET",
        &format!("{path}?EIO=3&transport=polling&b64=1"),
        &[],
        b"",
    );
    assert_eq!(r.status, 200);
    check_open_packet(&decode_v3_payload(&r.text())[0], &["websocket"]);
}

/// v3: the client pings, the server answers each ping with a pong and
/// never pings itself; client pings keep the session
/// alive past `pingInterval + pingTimeout`.
pub fn v3_client_pings_keep_a_polling_session(addr: SocketAddr, path: &str) {
    let mut s = Polling::open_at(addr, path, 3);
    let start = Instant::now();
    while start.elapsed() < PAST_TIMEOUT {
        v3_ping_over_polling(&mut s);
        sleep_ms(150);
    }
}

/// v3: a session without client pings is closed after
/// `pingInterval + pingTimeout`.
pub fn v3_session_without_pings_times_out(addr: SocketAddr, path: &str) {
    let s = Polling::open_at(addr, path, 3);
    std::thread::sleep(PAST_TIMEOUT);
    assert_session_closed(addr, path, 3, &s.sid);
}

/// v3 over websocket: open packet with `upgrades: []`, pongs for pings,
/// alive while pinged, closed once the pings stop.
pub fn v3_websocket_heartbeat(addr: SocketAddr, path: &str) {
    let mut conn = ws_open(addr, &format!("{path}?EIO=3&transport=websocket"));
    let sid = match ws_recv(&mut conn, T) {
        WsMsg::Text(open) => check_open_packet(&open, &[]),
        other => panic!("expected the open packet, got {other:?}"),
    };
    let start = Instant::now();
    while start.elapsed() < PAST_TIMEOUT {
        ws_text(&mut conn, "2");
        loop {
            match ws_recv(&mut conn, T) {
                WsMsg::Text(t) if t == "3" => break,
                WsMsg::Text(t) if t.starts_with('4') => {}
                other => panic!("expected a pong, got {other:?}"),
            }
        }
        sleep_ms(150);
    }
    ws_expect_closed(&mut conn, PAST_TIMEOUT + T, "v3 session without pings");
    assert_session_closed(addr, path, 3, &sid);
}

/// v3 upgrade: `2probe` → `3probe`, the pending poll ends with a `noop`,
/// then `5`; after it, the heartbeat runs over the websocket and HTTP
/// requests for the sid get 400.
pub fn v3_upgrade_to_websocket(addr: SocketAddr, path: &str) {
    let mut s = Polling::open_at(addr, path, 3);
    v3_ping_over_polling(&mut s);
    s.start_get();
    sleep_ms(20);
    let mut ws = ws_open(addr, &s.ws_target());
    ws_text(&mut ws, "2probe");
    assert_eq!(ws_recv(&mut ws, T), WsMsg::Text("3probe".into()));
    let held = s.finish_get(T);
    let packets = s.packets_of(&held);
    assert!(
        packets.iter().any(|p| p == "6"),
        "the pending poll ends with a noop: {packets:?}"
    );
    ws_text(&mut ws, "5");
    ws_text(&mut ws, "2");
    loop {
        match ws_recv(&mut ws, T) {
            WsMsg::Text(t) if t == "3" => break,
            WsMsg::Text(t) if t.starts_with('4') || t == "6" => {}
            other => panic!("expected a pong over the websocket, got {other:?}"),
        }
    }
    let r = http_request(addr, "GET", &s.target(), &[], b"");
    assert_error(&r, None, "v3 GET after the upgrade");
}

/// With v3 enabled, a missing or unknown `EIO` is still refused with 400
/// (contract sections 2 and 3).
pub fn v3_server_rejects_bad_eio(addr: SocketAddr, path: &str) {
    for query in [
        "transport=polling",
        "EIO=abc&transport=polling",
        "EIO=5&transport=polling",
    ] {
        let target = format!("{path}?{query}");
        let r = http_request(addr, "GET", &target, &[], b"");
        assert_error(&r, None, &target);
    }
}
