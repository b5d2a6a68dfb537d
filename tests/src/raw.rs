//! Hand-rolled RFC 6455 peers over blocking sockets. They are written apart
//! from `switchboard-core` on purpose, so a case checks the implementation
//! against an independent reading of the RFC, byte for byte.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::{Digest, Sha1};

/// A frame as read off the wire (payload unmasked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    /// FIN bit.
    pub fin: bool,
    /// RSV1 bit.
    pub rsv1: bool,
    /// Opcode.
    pub opcode: u8,
    /// Whether the frame was masked.
    pub masked: bool,
    /// The payload.
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// The close code of a close frame.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == 8 && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// Builds a frame: `mask` masks with a fixed key.
pub fn frame(opcode: u8, fin: bool, rsv: u8, payload: &[u8], mask: bool) -> Vec<u8> {
    let mut out = vec![(fin as u8) << 7 | (rsv & 7) << 4 | opcode];
    let mask_bit = if mask { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if mask {
        let key = [0x12, 0x34, 0x56, 0x78];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// A close frame payload: code and reason.
pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

/// What a read off the socket gave.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadResult {
    /// A whole frame.
    Frame(RawFrame),
    /// The peer closed the TCP connection.
    Eof,
    /// Nothing (complete) arrived in time.
    Timeout,
}

/// A blocking socket with a read buffer, shared by the raw client and server.
pub struct RawConn {
    /// The socket.
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    fn fill(&mut self, deadline: Instant) -> Option<bool> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        self.stream.set_read_timeout(Some(left)).ok()?;
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(0) => Some(false),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Some(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(_) => Some(false),
        }
    }

    /// Reads an HTTP head (up to the blank line) within `timeout`.
    pub fn read_head(&mut self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..end + 4).collect();
                return Some(String::from_utf8_lossy(&head).into_owned());
            }
            if self.fill(deadline) != Some(true) {
                return None;
            }
        }
    }

    /// Whether the peer closes the connection within `timeout` (what it
    /// sends before is read and dropped).
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match self.fill(deadline) {
                Some(true) => self.buf.clear(),
                Some(false) => return true,
                None => return false,
            }
        }
    }

    /// Reads everything until the peer closes (or `timeout`).
    pub fn read_to_end(&mut self, timeout: Duration) -> Vec<u8> {
        let deadline = Instant::now() + timeout;
        while self.fill(deadline) == Some(true) {}
        std::mem::take(&mut self.buf)
    }

    /// Reads one frame within `timeout`.
    pub fn read_frame(&mut self, timeout: Duration) -> ReadResult {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((frame, used)) = parse_frame(&self.buf) {
                self.buf.drain(..used);
                return ReadResult::Frame(frame);
            }
            match self.fill(deadline) {
                Some(true) => {}
                Some(false) => return ReadResult::Eof,
                None => return ReadResult::Timeout,
            }
        }
    }

    /// Reads frames until a close frame; returns it. Panics on EOF or timeout.
    pub fn expect_close(&mut self, timeout: Duration) -> RawFrame {
        loop {
            match self.read_frame(timeout) {
                ReadResult::Frame(f) if f.opcode == 8 => return f,
                ReadResult::Frame(_) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    /// Asserts the peer closes the TCP connection within `timeout`, with no
    /// more frames.
    pub fn expect_eof(&mut self, timeout: Duration) {
        match self.read_frame(timeout) {
            ReadResult::Eof => {}
            other => panic!("expected the TCP connection to close, got {other:?}"),
        }
    }
}

fn parse_frame(buf: &[u8]) -> Option<(RawFrame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let masked = buf[1] & 0x80 != 0;
    let (len, mut at) = match buf[1] & 0x7F {
        126 => (
            u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    let key = if masked {
        let k: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        Some(k)
    } else {
        None
    };
    let mut payload = buf.get(at..at + len)?.to_vec();
    if let Some(k) = key {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= k[i % 4];
        }
    }
    Some((
        RawFrame {
            fin: buf[0] & 0x80 != 0,
            rsv1: buf[0] & 0x40 != 0,
            opcode: buf[0] & 0x0F,
            masked,
            payload,
        },
        at + len,
    ))
}

/// The accept key for `key` (RFC 6455 section 4.2.2).
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    BASE64.encode(sha.finalize())
}

/// A key used by raw clients.
pub const CLIENT_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// A handshake request for `path` with extra header lines (each ending in
/// `\r\n`).
pub fn upgrade_request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {CLIENT_KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// A raw client connected to `addr`.
pub fn connect(addr: SocketAddr) -> RawConn {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    RawConn::new(stream)
}

/// Connects and completes a handshake with `extra` headers; returns the
/// connection and the response head (asserting a valid 101).
pub fn open(addr: SocketAddr, extra: &str) -> (RawConn, String) {
    let mut conn = connect(addr);
    conn.write(upgrade_request("/", extra).as_bytes());
    let head = conn
        .read_head(Duration::from_secs(5))
        .expect("handshake response");
    assert!(head.starts_with("HTTP/1.1 101 "), "not a 101: {head}");
    let expected = format!("sec-websocket-accept: {}", accept_key(CLIENT_KEY)).to_lowercase();
    assert!(
        head.to_lowercase().contains(&expected),
        "bad accept key: {head}"
    );
    (conn, head)
}

/// A raw server on an ephemeral port, for client-role cases.
pub struct RawServer {
    listener: TcpListener,
}

impl RawServer {
    /// Binds to 127.0.0.1 on an ephemeral port.
    pub fn bind() -> Self {
        Self {
            listener: TcpListener::bind("127.0.0.1:0").expect("bind"),
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.listener.local_addr().expect("addr")
    }

    /// The `ws://` URL of this server.
    pub fn url(&self) -> String {
        format!("ws://{}/test", self.listener.local_addr().expect("addr"))
    }

    /// Accepts one connection; returns it and the request head.
    pub fn accept(&self) -> (RawConn, String) {
        let (stream, _) = self.listener.accept().expect("accept");
        let mut conn = RawConn::new(stream);
        let head = conn
            .read_head(Duration::from_secs(5))
            .expect("request head");
        (conn, head)
    }

    /// Accepts one connection and answers a valid 101 with `extra` header
    /// lines; returns the connection and the request head.
    pub fn accept_upgrade(&self, extra: &str) -> (RawConn, String) {
        let (mut conn, head) = self.accept();
        let key = header(&head, "sec-websocket-key").expect("key");
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n{extra}\r\n",
            accept_key(&key)
        );
        conn.write(response.as_bytes());
        (conn, head)
    }
}

/// The value of header `name` (case-insensitive) in an HTTP head.
pub fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}
