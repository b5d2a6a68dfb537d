//! The Engine.IO client, sans IO: the handshake over HTTP long-polling or
//! WebSocket, the polling cycle, the upgrade from polling to WebSocket, the
//! heartbeat and the close, for protocol v4 (and v3 when configured).
//!
//! This module owns every client-side Engine.IO rule: which HTTP requests to
//! make and when (one `GET` poll at a time, at most one `POST` carrying the
//! queued packets, split to respect the server's `maxPayload`), how to read
//! their answers, when to open a WebSocket and what to send on it, how the
//! upgrade pauses polling so that no packet is lost or reordered, and why a
//! session ends. The wire codecs themselves live in the packet and payload
//! modules; the WebSocket framing in [`crate::ws`].
//!
//! A [`Client`] is a state machine in the style of quinn-proto and h11. The
//! adapter feeds it HTTP answers ([`Client::handle_http_response`],
//! [`Client::handle_http_error`]), WebSocket happenings
//! ([`Client::ws_opened`], [`Client::ws_message`], [`Client::ws_closed`]),
//! commands ([`Client::send`], [`Client::close`]) and time
//! ([`Client::handle_timeout`]); it polls out things to do
//! ([`Client::poll_transmit`]: [`ClientTransmit`]), application events
//! ([`Client::poll_event`]: [`ClientEvent`]) and the next deadline
//! ([`Client::poll_timeout`]). Nothing here reads a clock or touches a
//! socket. The client has at most one WebSocket at a time (the session's
//! transport, or an upgrade probe), so WebSocket inputs carry no id.
//!
//! Behaviour follows Node's `engine.io-client` (v6) where the protocol
//! documents leave room: the close reasons use its wording
//! ([`ClientCloseReason::as_str`]), the v4 heartbeat waits for the server's
//! pings (messages do not count, as the protocol says; in v3 any packet
//! counts, as in `engine.io-client` 3), the probe waits for the in-flight poll and
//! `POST` before sending `upgrade`, and the request target carries the same
//! query parameters (`EIO`, `transport`, `sid`, `t`, `b64`).
//!
//! # A whole handshake and upgrade
//!
//! ```
//! use std::time::Instant;
//! use bytes::Bytes;
//! use switchboard_core::engineio::client::{
//!     Client, ClientConfig, ClientEvent, ClientTransmit, HttpMethod,
//! };
//! use switchboard_core::engineio::{MessageData, TransportKind};
//! use switchboard_core::ws::Message;
//!
//! let mut config = ClientConfig::from_url("http://localhost:3000").unwrap();
//! config.timestamp_requests = false; // no random `t` parameter, for the asserts
//! let now = Instant::now();
//! let mut client = Client::new(config, now).unwrap();
//!
//! // 1. The polling handshake.
//! let Some(ClientTransmit::Http(get)) = client.poll_transmit() else { panic!() };
//! assert_eq!(get.method, HttpMethod::Get);
//! assert_eq!(get.target, "/engine.io/?EIO=4&transport=polling");
//! assert!(get.encode().starts_with(
//!     b"GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: localhost:3000\r\n"
//! ));
//! let open = br#"0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
//! client.handle_http_response(get.id, 200, Bytes::from_static(open), now);
//! let Some(ClientEvent::Open { sid, transport, .. }) = client.poll_event() else { panic!() };
//! assert_eq!((sid.as_str(), transport), ("abc", TransportKind::Polling));
//!
//! // 2. The upgrade probe starts, and the long poll.
//! let Some(ClientTransmit::WsConnect(ws)) = client.poll_transmit() else { panic!() };
//! assert_eq!(ws.url.target, "/engine.io/?EIO=4&transport=websocket&sid=abc");
//! let Some(ClientTransmit::Http(poll)) = client.poll_transmit() else { panic!() };
//! assert_eq!(poll.target, "/engine.io/?EIO=4&transport=polling&sid=abc");
//! client.ws_opened(now);
//! assert_eq!(client.poll_transmit(), Some(ClientTransmit::WsSend(Message::text("2probe"))));
//! client.ws_message(Message::text("3probe"), now);
//! // A message sent now waits for the switch.
//! client.send(MessageData::Text("hello".into())).unwrap();
//! assert_eq!(client.poll_transmit(), None);
//!
//! // 3. The server releases the poll with a noop; the client upgrades.
//! client.handle_http_response(poll.id, 200, Bytes::from_static(b"6"), now);
//! assert_eq!(client.poll_transmit(), Some(ClientTransmit::WsSend(Message::text("5"))));
//! assert_eq!(client.poll_transmit(), Some(ClientTransmit::WsSend(Message::text("4hello"))));
//! assert_eq!(client.poll_event(), Some(ClientEvent::Upgraded));
//! assert_eq!(client.transport(), TransportKind::WebSocket);
//! ```
//!
//! # Driving it
//!
//! - [`ClientTransmit::Http`]: send the [`HttpRequest`] to
//!   [`ClientConfig::host`]:[`ClientConfig::port`] (TLS when
//!   [`ClientConfig::secure`]), for instance as the bytes of
//!   [`HttpRequest::encode`]; report the answer's status and whole body with
//!   [`Client::handle_http_response`], or a failure with
//!   [`Client::handle_http_error`]. A `GET` poll may be held by the server
//!   for up to its ping interval, so a `POST` needs a second connection.
//! - [`ClientTransmit::WsConnect`]: open a WebSocket to the [`WsUrl`] given
//!   (e.g. with [`crate::ws::handshake::ClientHandshake`]); report
//!   [`Client::ws_opened`], every message with [`Client::ws_message`], and
//!   the end (or a failed handshake) with [`Client::ws_closed`].
//! - [`ClientTransmit::WsSend`] / [`ClientTransmit::WsClose`]: send a message
//!   on, or close, that WebSocket.
//! - Once [`ClientEvent::Closed`] is out, drop any request still in flight:
//!   its answer is ignored.

use std::collections::VecDeque;
use std::fmt;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;

use super::{
    DecodeError, MessageData, OpenPacket, PROBE, Packet, PacketType, PayloadKind, PayloadLimits,
    ProtocolVersion, TransportKind, decode_payload, encode_payload,
};
use crate::ws::Message;
use crate::ws::handshake::WsUrl;

/// The default Engine.IO path, as Node's `engine.io-client` uses it.
pub const DEFAULT_PATH: &str = "/engine.io/";

/// Query keys the client writes itself; the same keys in
/// [`ClientConfig::query`] are left out.
const RESERVED_QUERY_KEYS: [&str; 5] = ["EIO", "transport", "sid", "t", "b64"];

/// The client's settings.
///
/// ```
/// use switchboard_core::engineio::client::ClientConfig;
/// use switchboard_core::engineio::ProtocolVersion;
/// let config = ClientConfig::from_url("https://example.com/socket.io?token=abc").unwrap();
/// assert!(config.secure);
/// assert_eq!((config.host.as_str(), config.port), ("example.com", 443));
/// assert_eq!(config.path, "/socket.io/");
/// assert_eq!(config.query, [("token".to_string(), "abc".to_string())]);
/// assert_eq!(config.version, ProtocolVersion::V4);
/// assert_eq!(config.authority(), "example.com");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Use TLS (`https`/`wss`).
    pub secure: bool,
    /// The server's host name or address (an IPv6 address without brackets).
    pub host: String,
    /// The server's port.
    pub port: u16,
    /// The Engine.IO path, starting and ending with `/` (default
    /// [`DEFAULT_PATH`]).
    pub path: String,
    /// Extra query parameters, written first and as they are (already
    /// URL-encoded). Keys the client writes itself (`EIO`, `transport`,
    /// `sid`, `t`, `b64`) are left out.
    pub query: Vec<(String, String)>,
    /// Allow the HTTP long-polling transport. When allowed, the session
    /// starts with it.
    pub polling: bool,
    /// Allow the WebSocket transport: the session starts with it when
    /// polling is not allowed, and upgrades to it otherwise.
    pub websocket: bool,
    /// Upgrade from polling to WebSocket when the server offers it (default
    /// true).
    pub upgrade: bool,
    /// The protocol revision to speak (default v4).
    pub version: ProtocolVersion,
    /// The largest polling body or WebSocket message accepted from the
    /// server, in bytes (default 16 MiB); more closes the session
    /// (`transport error`).
    pub max_payload: usize,
    /// Header lines added to every HTTP request and WebSocket handshake
    /// (e.g. `Authorization`, `Cookie`, `Origin`).
    pub extra_headers: Vec<(String, String)>,
    /// Add a unique `t` query parameter to every polling request, against
    /// caches (default true, as Node's `timestampRequests`).
    pub timestamp_requests: bool,
    /// Ask the server to send binary messages as base64 text (`b64=1`), and
    /// send them so too (default false, as Node's `forceBase64`).
    pub force_base64: bool,
    /// Give up when the handshake has not completed in this time (default
    /// 20 s, the Socket.IO client's `timeout`); `None` waits forever.
    pub connect_timeout: Option<Duration>,
    /// The most packets waiting to be sent; [`Client::send`] refuses more
    /// with [`ClientSendError::BufferFull`] (default 4096).
    pub max_buffered_packets: usize,
}

impl ClientConfig {
    /// Settings for a server at `host:port`, with the defaults.
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_core::engineio::client::{ClientConfig, DEFAULT_PATH};
    /// let config = ClientConfig::new("localhost", 3000);
    /// assert_eq!(config.path, DEFAULT_PATH);
    /// assert!(config.polling && config.websocket && config.upgrade);
    /// assert_eq!(config.connect_timeout, Some(Duration::from_secs(20)));
    /// assert_eq!(config.authority(), "localhost:3000");
    /// ```
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        ClientConfig {
            secure: false,
            host: host.into(),
            port,
            path: DEFAULT_PATH.to_owned(),
            query: Vec::new(),
            polling: true,
            websocket: true,
            upgrade: true,
            version: ProtocolVersion::V4,
            max_payload: 16 << 20,
            extra_headers: Vec::new(),
            timestamp_requests: true,
            force_base64: false,
            connect_timeout: Some(Duration::from_secs(20)),
            max_buffered_packets: 4096,
        }
    }

    /// Settings from a URL: `http://`, `https://`, `ws://` or `wss://`,
    /// with a host, an optional port, path and query. A path other than
    /// `/` replaces [`DEFAULT_PATH`] (a trailing `/` is added); the query
    /// becomes [`ClientConfig::query`].
    ///
    /// ```
    /// use switchboard_core::engineio::client::{ClientConfig, ConfigError};
    /// let config = ClientConfig::from_url("ws://127.0.0.1:8080/realtime?room=1&debug").unwrap();
    /// assert!(!config.secure);
    /// assert_eq!((config.host.as_str(), config.port), ("127.0.0.1", 8080));
    /// assert_eq!(config.path, "/realtime/");
    /// assert_eq!(config.query, [("room".into(), "1".into()), ("debug".into(), String::new())]);
    ///
    /// let error = ClientConfig::from_url("ftp://example.com").unwrap_err();
    /// assert_eq!(error, ConfigError::InvalidUrl("ftp://example.com".into()));
    /// ```
    pub fn from_url(url: &str) -> Result<Self, ConfigError> {
        let parsed = WsUrl::parse(url).map_err(|_| ConfigError::InvalidUrl(url.to_owned()))?;
        let mut config = ClientConfig::new(parsed.host, parsed.port);
        config.secure = parsed.secure;
        let target = parsed.target.split('#').next().unwrap_or("/");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        if !path.is_empty() && path != "/" {
            config.path = if path.ends_with('/') {
                path.to_owned()
            } else {
                format!("{path}/")
            };
        }
        config.query = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (key.to_owned(), value.to_owned())
            })
            .collect();
        Ok(config)
    }

    /// The `Host` header value: the host (bracketed when it is an IPv6
    /// address), and the port unless it is the scheme's default.
    ///
    /// ```
    /// use switchboard_core::engineio::client::ClientConfig;
    /// assert_eq!(ClientConfig::new("::1", 80).authority(), "[::1]");
    /// assert_eq!(ClientConfig::new("::1", 3000).authority(), "[::1]:3000");
    /// let tls = ClientConfig { secure: true, ..ClientConfig::new("example.com", 443) };
    /// assert_eq!(tls.authority(), "example.com");
    /// ```
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default_port = if self.secure { 443 } else { 80 };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !self.polling && !self.websocket {
            return Err(ConfigError::NoTransport);
        }
        if self.host.is_empty() || self.host.contains(['/', '?', '#', '@', ' ']) {
            return Err(ConfigError::InvalidHost(self.host.clone()));
        }
        let path_ok = self.path.starts_with('/')
            && !self.path.contains(|c: char| {
                c == '?' || c == '#' || c.is_ascii_whitespace() || c.is_control()
            });
        if !path_ok {
            return Err(ConfigError::InvalidPath(self.path.clone()));
        }
        Ok(())
    }
}

/// Settings that cannot make a client.
///
/// ```
/// use std::time::Instant;
/// use switchboard_core::engineio::client::{Client, ClientConfig, ConfigError};
/// let config =
///     ClientConfig { polling: false, websocket: false, ..ClientConfig::new("localhost", 80) };
/// assert_eq!(Client::new(config, Instant::now()).unwrap_err(), ConfigError::NoTransport);
///
/// let config = ClientConfig { path: "engine.io".into(), ..ClientConfig::new("localhost", 80) };
/// assert!(matches!(Client::new(config, Instant::now()), Err(ConfigError::InvalidPath(_))));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The URL is not an `http`, `https`, `ws` or `wss` URL with a host.
    #[error("invalid Engine.IO URL: {0}")]
    InvalidUrl(String),
    /// The host is empty or holds URL syntax.
    #[error("invalid host: {0:?}")]
    InvalidHost(String),
    /// The path does not start with `/`, or holds `?`, `#` or whitespace.
    #[error("invalid path: {0:?}")]
    InvalidPath(String),
    /// Neither polling nor WebSocket is allowed.
    #[error("no transport allowed")]
    NoTransport,
}

/// An HTTP request the client asked for, unique within one [`Client`].
///
/// Keep it with the request in flight, and hand it back with the answer
/// ([`Client::handle_http_response`], [`Client::handle_http_error`]).
///
/// ```
/// # use std::time::Instant;
/// use switchboard_core::engineio::client::{Client, ClientConfig, ClientTransmit};
/// let mut client = Client::new(ClientConfig::new("localhost", 3000), Instant::now()).unwrap();
/// let Some(ClientTransmit::Http(handshake)) = client.poll_transmit() else { panic!() };
/// assert_eq!(handshake.id.as_u64(), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(u64);

impl RequestId {
    /// The id as a number.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

/// The method of an [`HttpRequest`].
///
/// ```
/// use switchboard_core::engineio::client::HttpMethod;
/// assert_eq!(HttpMethod::Get.as_str(), "GET");
/// assert_eq!(HttpMethod::Post.to_string(), "POST");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpMethod {
    /// A poll (or the polling handshake): the answer carries packets.
    Get,
    /// Packets for the server; the answer carries nothing of use.
    Post,
}

impl HttpMethod {
    /// The method's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
        }
    }
}

impl fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An HTTP request to make, as data, for async and blocking adapters alike.
///
/// ```
/// # use std::time::Instant;
/// use bytes::Bytes;
/// use switchboard_core::engineio::client::{Client, ClientConfig, ClientTransmit, HttpMethod};
/// # let config = ClientConfig {
/// #     timestamp_requests: false,
/// #     upgrade: false,
/// #     ..ClientConfig::new("localhost", 3000)
/// # };
/// # let now = Instant::now();
/// # let mut client = Client::new(config, now).unwrap();
/// # let Some(ClientTransmit::Http(get)) = client.poll_transmit() else { panic!() };
/// # let open = br#"0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000}"#;
/// # client.handle_http_response(get.id, 200, Bytes::from_static(open), now);
/// # let Some(ClientTransmit::Http(_poll)) = client.poll_transmit() else { panic!() };
/// // An open polling session, its `GET` poll in flight:
/// client.send("hello".into()).unwrap();
/// let Some(ClientTransmit::Http(post)) = client.poll_transmit() else { panic!() };
/// assert_eq!(post.method, HttpMethod::Post);
/// assert_eq!(post.target, "/engine.io/?EIO=4&transport=polling&sid=abc");
/// assert_eq!(post.header("host"), Some("localhost:3000"));
/// assert_eq!(post.body, "4hello");
/// let bytes = post.encode();
/// assert!(bytes.starts_with(b"POST /engine.io/?EIO=4&transport=polling&sid=abc HTTP/1.1\r\n"));
/// assert!(bytes.ends_with(b"\r\nContent-Length: 6\r\n\r\n4hello"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// The id to report the answer with.
    pub id: RequestId,
    /// `GET` or `POST`.
    pub method: HttpMethod,
    /// The request target: path and query.
    pub target: String,
    /// Header lines, `Host` first; no `Content-Length`
    /// ([`HttpRequest::encode`] adds it).
    pub headers: Vec<(String, String)>,
    /// The body (empty for a `GET`).
    pub body: Bytes,
}

impl HttpRequest {
    /// The request as HTTP/1.1 bytes: request line, headers, a
    /// `Content-Length` for a `POST`, the body. Nothing asks to close the
    /// connection, so it may be kept alive for the next request.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.target).into_bytes();
        let headers = self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        crate::http::write_headers(&mut out, headers);
        if self.method == HttpMethod::Post || !self.body.is_empty() {
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A WebSocket to open.
///
/// The opening handshake is [`ClientHandshake`](crate::ws::handshake::ClientHandshake)'s:
///
/// ```
/// # use std::time::Instant;
/// use switchboard_core::engineio::client::{Client, ClientConfig, ClientTransmit};
/// use switchboard_core::ws::{self, handshake::ClientHandshake};
/// let mut config = ClientConfig::from_url("ws://localhost:3000").unwrap();
/// config.polling = false; // WebSocket only
/// config.extra_headers.push(("Cookie".into(), "a=b".into()));
/// let mut client = Client::new(config, Instant::now()).unwrap();
///
/// let Some(ClientTransmit::WsConnect(connect)) = client.poll_transmit() else { panic!() };
/// assert_eq!(connect.url.target, "/engine.io/?EIO=4&transport=websocket");
/// let headers: Vec<(&str, &str)> =
///     connect.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
/// let handshake = ClientHandshake::new(&connect.url, &ws::Config::default(), &headers);
/// let request = std::str::from_utf8(handshake.request()).unwrap();
/// assert!(request.starts_with("GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\n"));
/// assert!(request.contains("\r\nHost: localhost:3000\r\n"));
/// assert!(request.contains("\r\nCookie: a=b\r\n"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsConnect {
    /// Where: scheme, host, port, `Host` value and target (path and query).
    pub url: WsUrl,
    /// Header lines to add to the opening handshake
    /// ([`ClientConfig::extra_headers`]).
    pub headers: Vec<(String, String)>,
}

/// Something for the adapter to do.
///
/// An adapter takes them in a loop after every input and hands each to
/// its transport; here, the steps of a WebSocket-only session:
///
/// ```
/// # use std::time::Instant;
/// use switchboard_core::engineio::client::{Client, ClientConfig, ClientTransmit};
/// use switchboard_core::ws::Message;
/// # let now = Instant::now();
/// let config = ClientConfig { polling: false, ..ClientConfig::new("localhost", 3000) };
/// let mut client = Client::new(config, now).unwrap();
/// let mut log = Vec::new();
/// let mut step = |client: &mut Client, log: &mut Vec<String>| {
///     while let Some(transmit) = client.poll_transmit() {
///         log.push(match transmit {
///             ClientTransmit::Http(request) => format!("{} {}", request.method, request.target),
///             ClientTransmit::WsConnect(connect) => format!("connect {}", connect.url.target),
///             ClientTransmit::WsSend(message) => format!("send {}", message.as_text().unwrap()),
///             ClientTransmit::WsClose => "close".to_owned(),
///         });
///     }
/// };
/// step(&mut client, &mut log);
/// client.ws_opened(now);
/// let open = r#"0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000}"#;
/// client.ws_message(Message::text(open), now);
/// client.send("hi".into()).unwrap();
/// client.close();
/// step(&mut client, &mut log);
/// let connect = "connect /engine.io/?EIO=4&transport=websocket";
/// assert_eq!(log, [connect, "send 4hi", "send 1", "close"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientTransmit {
    /// Make this HTTP request and report its answer.
    Http(HttpRequest),
    /// Open a WebSocket (the session's transport, or an upgrade probe).
    WsConnect(WsConnect),
    /// Send a message on the WebSocket.
    WsSend(Message),
    /// Close the WebSocket (normal closure). Calling [`Client::ws_closed`]
    /// afterwards is harmless.
    WsClose,
}

/// Why a session closed; [`ClientCloseReason::as_str`] gives the wording of
/// Node's `engine.io-client`.
///
/// ```
/// use switchboard_core::engineio::client::ClientCloseReason;
/// assert_eq!(ClientCloseReason::PingTimeout.as_str(), "ping timeout");
/// assert_eq!(ClientCloseReason::ForcedClose.to_string(), "forced close");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientCloseReason {
    /// The server closed: a `close` packet, or its WebSocket closed.
    TransportClose,
    /// A transport failure: a failed request, an HTTP error status, an
    /// unreadable or oversize body or message, a connect timeout.
    TransportError,
    /// No sign of life from the server in time.
    PingTimeout,
    /// [`Client::close`].
    ForcedClose,
}

impl ClientCloseReason {
    /// The reason as Node's `engine.io-client` words it (Socket.IO's client
    /// reports a forced close as `io client disconnect`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ClientCloseReason::TransportClose => "transport close",
            ClientCloseReason::TransportError => "transport error",
            ClientCloseReason::PingTimeout => "ping timeout",
            ClientCloseReason::ForcedClose => "forced close",
        }
    }
}

impl fmt::Display for ClientCloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong, carried by [`ClientEvent::Closed`] and
/// [`ClientEvent::UpgradeFailed`].
///
/// ```
/// # use std::time::Instant;
/// use bytes::Bytes;
/// use switchboard_core::engineio::client::{
///     Client, ClientCloseReason, ClientConfig, ClientError, ClientEvent, ClientTransmit,
/// };
/// # let now = Instant::now();
/// let mut client = Client::new(ClientConfig::new("localhost", 3000), now).unwrap();
/// let Some(ClientTransmit::Http(handshake)) = client.poll_transmit() else { panic!() };
/// client.handle_http_response(handshake.id, 503, Bytes::new(), now);
///
/// let Some(ClientEvent::Closed { reason, error: Some(error) }) = client.poll_event() else {
///     panic!()
/// };
/// assert_eq!(reason, ClientCloseReason::TransportError);
/// assert_eq!(error, ClientError::HttpStatus { status: 503 });
/// assert_eq!(error.to_string(), "server answered HTTP 503");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The adapter reported a request as failed.
    #[error("HTTP {method} request failed: {reason}")]
    RequestFailed {
        /// The request's method.
        method: HttpMethod,
        /// Why, as the adapter put it (connection refused, reset, ...).
        reason: String,
    },
    /// The server answered a request with a status other than 200.
    #[error("server answered HTTP {status}")]
    HttpStatus {
        /// The status.
        status: u16,
    },
    /// A body or message larger than [`ClientConfig::max_payload`].
    #[error("received {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// Its size in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// An unreadable packet or payload.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The first packet of the session was not `open`.
    #[error("expected the open packet, got {0:?}")]
    ExpectedOpen(PacketType),
    /// The WebSocket closed before the handshake.
    #[error("the WebSocket closed before the handshake")]
    WebSocketClosed,
    /// The WebSocket failed to open (connection refused, a refused
    /// upgrade, ...), as the adapter put it.
    #[error("the WebSocket failed to open: {reason}")]
    WebSocketFailed {
        /// Why.
        reason: String,
    },
    /// The handshake did not complete within
    /// [`ClientConfig::connect_timeout`].
    #[error("the handshake timed out")]
    ConnectTimeout,
    /// The probe WebSocket closed before answering `3probe`.
    #[error("the probe WebSocket closed")]
    ProbeClosed,
    /// The probe WebSocket answered something other than `3probe`.
    #[error("unexpected {0:?} packet in answer to the probe")]
    ProbeRejected(PacketType),
}

/// Something for the application.
///
/// ```
/// # use std::time::Instant;
/// use bytes::Bytes;
/// use switchboard_core::engineio::client::{Client, ClientConfig, ClientEvent, ClientTransmit};
/// use switchboard_core::engineio::{MessageData, TransportKind};
/// # let now = Instant::now();
/// let mut client = Client::new(ClientConfig::new("localhost", 3000), now).unwrap();
/// let Some(ClientTransmit::Http(handshake)) = client.poll_transmit() else { panic!() };
/// // The handshake's answer may carry messages after the `open` packet.
/// let open = r#"0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000}"#;
/// let body = format!("{open}\x1e4welcome");
/// client.handle_http_response(handshake.id, 200, Bytes::from(body), now);
///
/// let Some(ClientEvent::Open { sid, transport, handshake }) = client.poll_event() else {
///     panic!()
/// };
/// assert_eq!((sid.as_str(), transport), ("abc", TransportKind::Polling));
/// assert_eq!(handshake.ping_interval, 25000);
/// let welcome = ClientEvent::Message(MessageData::Text("welcome".into()));
/// assert_eq!(client.poll_event(), Some(welcome));
/// assert_eq!(client.poll_event(), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The handshake completed.
    Open {
        /// The session id.
        sid: String,
        /// The transport of the handshake.
        transport: TransportKind,
        /// The whole handshake (ping interval and timeout, `maxPayload`,
        /// upgrades).
        handshake: OpenPacket,
    },
    /// A message from the server.
    Message(MessageData),
    /// The session moved from polling to WebSocket.
    Upgraded,
    /// The upgrade probe failed; the session stays on polling.
    UpgradeFailed(ClientError),
    /// The session closed (exactly once).
    Closed {
        /// Why.
        reason: ClientCloseReason,
        /// What went wrong, when something did.
        error: Option<ClientError>,
    },
}

/// [`Client::send`] failed.
///
/// ```
/// # use std::time::Instant;
/// use switchboard_core::engineio::client::{Client, ClientConfig, ClientSendError};
/// let config = ClientConfig { max_buffered_packets: 1, ..ClientConfig::new("localhost", 3000) };
/// let mut client = Client::new(config, Instant::now()).unwrap();
/// client.send("first".into()).unwrap(); // waits for the handshake
/// assert_eq!(client.send("second".into()), Err(ClientSendError::BufferFull));
/// client.close();
/// assert_eq!(client.send("third".into()), Err(ClientSendError::Closed));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClientSendError {
    /// The session is closing or closed.
    #[error("session closed")]
    Closed,
    /// [`ClientConfig::max_buffered_packets`] packets already wait; try
    /// again once some went out.
    #[error("send buffer full")]
    BufferFull,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the `open` packet.
    Opening,
    Open,
    /// [`Client::close`] was called; the `close` packet waits to go out.
    Closing,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// The WebSocket is being opened.
    Connecting,
    /// `2probe` sent.
    AwaitingPong,
    /// `3probe` received: polling is pausing (the in-flight `GET` and
    /// `POST` must end) before `upgrade` is sent.
    Pausing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ws {
    None,
    /// The session's transport.
    Main,
    /// An upgrade probe.
    Probe(Probe),
}

/// The Engine.IO client state machine (see the [module docs](self)).
///
/// A session over WebSocket only, from the handshake to the close:
///
/// ```
/// use std::time::Instant;
/// use switchboard_core::engineio::client::{
///     Client, ClientCloseReason, ClientConfig, ClientEvent, ClientTransmit,
/// };
/// use switchboard_core::engineio::MessageData;
/// use switchboard_core::ws::Message;
///
/// let now = Instant::now();
/// let config = ClientConfig { polling: false, ..ClientConfig::new("localhost", 3000) };
/// let mut client = Client::new(config, now).unwrap();
/// assert!(matches!(client.poll_transmit(), Some(ClientTransmit::WsConnect(_))));
///
/// // Open the WebSocket; the server speaks first.
/// client.ws_opened(now);
/// let open = r#"0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000}"#;
/// client.ws_message(Message::text(open), now);
/// assert!(matches!(client.poll_event(), Some(ClientEvent::Open { .. })));
///
/// // The server pings (v4); the client answers.
/// client.ws_message(Message::text("2"), now);
/// assert_eq!(client.poll_transmit(), Some(ClientTransmit::WsSend(Message::text("3"))));
///
/// // Messages both ways.
/// client.ws_message(Message::text("4hi"), now);
/// assert_eq!(client.poll_event(), Some(ClientEvent::Message(MessageData::Text("hi".into()))));
/// client.send(MessageData::Binary(vec![1, 2].into())).unwrap();
/// assert_eq!(client.poll_transmit(), Some(ClientTransmit::WsSend(Message::binary(vec![1, 2]))));
///
/// // The server ends the session.
/// client.ws_message(Message::text("1"), now);
/// assert_eq!(client.poll_transmit(), Some(ClientTransmit::WsClose));
/// let closed = ClientEvent::Closed { reason: ClientCloseReason::TransportClose, error: None };
/// assert_eq!(client.poll_event(), Some(closed));
/// assert!(client.is_closed());
/// ```
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    phase: Phase,
    transport: TransportKind,
    handshake: Option<OpenPacket>,
    /// The outstanding `GET` (handshake or poll).
    get: Option<RequestId>,
    /// The outstanding `POST`.
    post: Option<RequestId>,
    next_id: u64,
    ws: Ws,
    /// Packets waiting to be sent, in order.
    queue: VecDeque<Packet>,
    transmits: VecDeque<ClientTransmit>,
    events: VecDeque<ClientEvent>,
    connect_deadline: Option<Instant>,
    /// When the server is deemed gone (v4: no ping; v3: no pong).
    liveness_deadline: Option<Instant>,
    /// v3: when to send the next ping.
    next_ping: Option<Instant>,
    /// Random prefix of the `t` query parameter.
    nonce: String,
}

impl Client {
    /// A client that starts connecting at once: the first
    /// [`Client::poll_transmit`] is the polling handshake `GET`, or the
    /// [`ClientTransmit::WsConnect`] of a WebSocket-only session.
    ///
    /// `now` starts the [`connect_timeout`](ClientConfig::connect_timeout).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use switchboard_core::engineio::client::{Client, ClientConfig, ClientTransmit, HttpMethod};
    /// let mut config = ClientConfig::from_url("http://localhost:3000").unwrap();
    /// config.timestamp_requests = false;
    /// let now = Instant::now();
    /// let mut client = Client::new(config, now).unwrap();
    /// assert_eq!(client.poll_timeout(), Some(now + Duration::from_secs(20)));
    ///
    /// let Some(ClientTransmit::Http(get)) = client.poll_transmit() else { panic!() };
    /// assert_eq!(get.method, HttpMethod::Get);
    /// assert_eq!(get.target, "/engine.io/?EIO=4&transport=polling");
    /// assert_eq!(client.poll_transmit(), None); // until the answer comes
    /// ```
    pub fn new(config: ClientConfig, now: Instant) -> Result<Self, ConfigError> {
        config.validate()?;
        let transport = if config.polling {
            TransportKind::Polling
        } else {
            TransportKind::WebSocket
        };
        let mut nonce = [0u8; 6];
        // Only a cache buster: a failure leaves it zeroes.
        let _ = getrandom::fill(&mut nonce);
        let mut client = Client {
            connect_deadline: config.connect_timeout.and_then(|d| now.checked_add(d)),
            config,
            phase: Phase::Opening,
            transport,
            handshake: None,
            get: None,
            post: None,
            next_id: 0,
            ws: Ws::None,
            queue: VecDeque::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            liveness_deadline: None,
            next_ping: None,
            nonce: URL_SAFE_NO_PAD.encode(nonce),
        };
        match transport {
            TransportKind::Polling => client.send_poll(),
            TransportKind::WebSocket => {
                client.ws = Ws::Main;
                let connect = client.ws_connect();
                client
                    .transmits
                    .push_back(ClientTransmit::WsConnect(connect));
            }
        }
        Ok(client)
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The session id, once the handshake completed.
    pub fn sid(&self) -> Option<&str> {
        self.handshake.as_ref().map(|open| open.sid.as_str())
    }

    /// The server's handshake, once received.
    ///
    /// This and the other getters, before and after the handshake:
    ///
    /// ```
    /// # use std::time::Instant;
    /// use switchboard_core::engineio::client::{Client, ClientConfig};
    /// use switchboard_core::engineio::TransportKind;
    /// use switchboard_core::ws::Message;
    /// # let now = Instant::now();
    /// let config = ClientConfig { polling: false, ..ClientConfig::new("localhost", 3000) };
    /// let mut client = Client::new(config, now).unwrap();
    /// assert_eq!((client.sid(), client.handshake(), client.is_open()), (None, None, false));
    /// assert_eq!(client.transport(), TransportKind::WebSocket);
    /// client.send("early".into()).unwrap();
    /// assert_eq!(client.queued(), 1); // until the session opens
    ///
    /// client.ws_opened(now);
    /// let open = r#"0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000}"#;
    /// client.ws_message(Message::text(open), now);
    /// assert_eq!(client.sid(), Some("abc"));
    /// assert_eq!(client.handshake().unwrap().ping_timeout, 20000);
    /// assert!(client.is_open() && !client.is_closed());
    /// assert_eq!(client.config().host, "localhost");
    /// ```
    pub fn handshake(&self) -> Option<&OpenPacket> {
        self.handshake.as_ref()
    }

    /// The session's current transport.
    pub fn transport(&self) -> TransportKind {
        self.transport
    }

    /// Whether the handshake completed and the session is not closing.
    pub fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    /// Whether the session closed ([`ClientEvent::Closed`] was queued).
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// How many packets wait to be sent.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The answer to request `id`: its status and whole body. Answers to
    /// unknown or stale requests are ignored. A status other than 200
    /// closes the session ([`ClientError::HttpStatus`]). The answer to a
    /// poll starts the next one while the session polls.
    ///
    /// ```
    /// # use std::time::Instant;
    /// use bytes::Bytes;
    /// use switchboard_core::engineio::client::{Client, ClientConfig, ClientEvent, ClientTransmit};
    /// use switchboard_core::engineio::MessageData;
    /// # let now = Instant::now();
    /// # let config = ClientConfig { upgrade: false, ..ClientConfig::new("localhost", 3000) };
    /// let mut client = Client::new(config, now).unwrap();
    /// let Some(ClientTransmit::Http(handshake)) = client.poll_transmit() else { panic!() };
    /// let open = br#"0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000}"#;
    /// client.handle_http_response(handshake.id, 200, Bytes::from_static(open), now);
    /// assert!(matches!(client.poll_event(), Some(ClientEvent::Open { .. })));
    ///
    /// // The first poll; the server answers with two messages.
    /// let Some(ClientTransmit::Http(poll)) = client.poll_transmit() else { panic!() };
    /// client.handle_http_response(poll.id, 200, Bytes::from_static(b"4a\x1e4b"), now);
    /// assert_eq!(client.poll_event(), Some(ClientEvent::Message(MessageData::Text("a".into()))));
    /// assert_eq!(client.poll_event(), Some(ClientEvent::Message(MessageData::Text("b".into()))));
    /// let Some(ClientTransmit::Http(next)) = client.poll_transmit() else { panic!() };
    /// assert_ne!(next.id, poll.id);
    ///
    /// // A second answer to the same request is ignored.
    /// client.handle_http_response(poll.id, 200, Bytes::from_static(b"4c"), now);
    /// assert_eq!(client.poll_event(), None);
    /// ```
    pub fn handle_http_response(&mut self, id: RequestId, status: u16, body: Bytes, now: Instant) {
        if self.phase == Phase::Closed {
            return;
        }
        if self.get == Some(id) {
            self.get = None;
            if status != 200 {
                return self.fail(ClientError::HttpStatus { status });
            }
            self.on_poll_body(body, now);
            if self.phase == Phase::Closed {
                return;
            }
            self.maybe_poll();
            self.try_finish_upgrade();
        } else if self.post == Some(id) {
            self.post = None;
            if status != 200 {
                return self.fail(ClientError::HttpStatus { status });
            }
            self.try_finish_upgrade();
        }
    }

    /// Request `id` failed (connection refused or reset, timed out, an
    /// unreadable answer, as `reason` says): the session closes
    /// (`transport error`).
    ///
    /// ```
    /// # use std::time::Instant;
    /// use switchboard_core::engineio::client::{
    ///     Client, ClientCloseReason, ClientConfig, ClientError, ClientEvent, ClientTransmit,
    ///     HttpMethod,
    /// };
    /// # let now = Instant::now();
    /// let mut client = Client::new(ClientConfig::new("localhost", 3000), now).unwrap();
    /// let Some(ClientTransmit::Http(handshake)) = client.poll_transmit() else { panic!() };
    /// client.handle_http_error(handshake.id, "connection refused", now);
    ///
    /// let error = ClientError::RequestFailed {
    ///     method: HttpMethod::Get,
    ///     reason: "connection refused".into(),
    /// };
    /// let reason = ClientCloseReason::TransportError;
    /// let closed = ClientEvent::Closed { reason, error: Some(error) };
    /// assert_eq!(client.poll_event(), Some(closed));
    /// assert!(client.is_closed());
    /// ```
    pub fn handle_http_error(&mut self, id: RequestId, reason: impl fmt::Display, _now: Instant) {
        if self.phase == Phase::Closed {
            return;
        }
        let method = if self.get == Some(id) {
            HttpMethod::Get
        } else if self.post == Some(id) {
            HttpMethod::Post
        } else {
            return;
        };
        self.get = self.get.filter(|&g| g != id);
        self.post = self.post.filter(|&p| p != id);
        self.fail(ClientError::RequestFailed {
            method,
            reason: reason.to_string(),
        });
    }

    /// The WebSocket asked for by [`ClientTransmit::WsConnect`] is open.
    /// An upgrade probe sends its `2probe` ping now; a session opening on
    /// the WebSocket waits for the server's `open` packet.
    ///
    /// ```
    /// # use std::time::Instant;
    /// use bytes::Bytes;
    /// use switchboard_core::engineio::client::{Client, ClientConfig, ClientTransmit};
    /// use switchboard_core::ws::Message;
    /// # let now = Instant::now();
    /// let mut client = Client::new(ClientConfig::new("localhost", 3000), now).unwrap();
    /// let Some(ClientTransmit::Http(handshake)) = client.poll_transmit() else { panic!() };
    /// let open = br#"0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000}"#;
    /// client.handle_http_response(handshake.id, 200, Bytes::from_static(open), now);
    /// // The server offers the upgrade: a probe WebSocket, and the poll meanwhile.
    /// assert!(matches!(client.poll_transmit(), Some(ClientTransmit::WsConnect(_))));
    /// assert!(matches!(client.poll_transmit(), Some(ClientTransmit::Http(_))));
    ///
    /// client.ws_opened(now);
    /// assert_eq!(client.poll_transmit(), Some(ClientTransmit::WsSend(Message::text("2probe"))));
    /// ```
    pub fn ws_opened(&mut self, _now: Instant) {
        if self.phase == Phase::Closed {
            return;
        }
        if self.ws == Ws::Probe(Probe::Connecting) {
            self.ws = Ws::Probe(Probe::AwaitingPong);
            let ping = Packet::Ping(Some(PROBE.into())).encode_ws(self.config.version);
            self.transmits.push_back(ClientTransmit::WsSend(ping));
        }
    }

    /// A message arrived on the WebSocket. Control frames are ignored
    /// (the WebSocket layer answers pings); a close frame counts as
    /// [`Client::ws_closed`].
    ///
    /// ```
    /// # use std::time::Instant;
    /// use switchboard_core::engineio::client::{Client, ClientConfig, ClientEvent};
    /// use switchboard_core::engineio::MessageData;
    /// use switchboard_core::ws::Message;
    /// # let now = Instant::now();
    /// # let config = ClientConfig { polling: false, ..ClientConfig::new("localhost", 3000) };
    /// # let mut client = Client::new(config, now).unwrap();
    /// # client.poll_transmit();
    /// # client.ws_opened(now);
    /// # client.ws_message(Message::text(r#"0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000}"#), now);
    /// # client.poll_event();
    /// // A session open on a WebSocket:
    /// client.ws_message(Message::text("4text"), now);
    /// client.ws_message(Message::binary(vec![1, 2, 3]), now); // no `b` prefix in v4
    /// client.ws_message(Message::Ping("".into()), now); // the WebSocket layer answers it
    /// let text = MessageData::Text("text".into());
    /// let binary = MessageData::Binary(vec![1, 2, 3].into());
    /// assert_eq!(client.poll_event(), Some(ClientEvent::Message(text)));
    /// assert_eq!(client.poll_event(), Some(ClientEvent::Message(binary)));
    /// assert_eq!(client.poll_event(), None);
    /// ```
    pub fn ws_message(&mut self, message: Message, now: Instant) {
        if self.phase == Phase::Closed || self.ws == Ws::None {
            return;
        }
        let limit = self.config.max_payload;
        let version = self.config.version;
        let decoded = match message {
            Message::Text(text) if text.len() > limit => Err(ClientError::TooLarge {
                size: text.len(),
                limit,
            }),
            Message::Binary(data) if data.len() > limit => Err(ClientError::TooLarge {
                size: data.len(),
                limit,
            }),
            Message::Text(text) => Packet::decode_ws_text(text, version).map_err(Into::into),
            Message::Binary(data) => Packet::decode_ws_binary(data, version).map_err(Into::into),
            Message::Close(_) => return self.ws_closed(now),
            Message::Ping(_) | Message::Pong(_) => return,
        };
        match self.ws {
            Ws::None => {}
            Ws::Probe(Probe::Connecting | Probe::AwaitingPong) => match decoded {
                Ok(Packet::Pong(Some(data))) if data == PROBE => {
                    self.ws = Ws::Probe(Probe::Pausing);
                    self.try_finish_upgrade();
                }
                Ok(packet) => {
                    self.probe_failed(ClientError::ProbeRejected(packet.packet_type()), true);
                }
                Err(error) => self.probe_failed(error, true),
            },
            // The server sends nothing on the probe before `upgrade`; should
            // it, the packet belongs to the session all the same.
            Ws::Main | Ws::Probe(Probe::Pausing) => match decoded {
                Ok(packet) => self.on_packet(packet, now),
                Err(error) => self.fail(error),
            },
        }
    }

    /// The WebSocket closed, or its opening handshake failed. On the
    /// session's transport this closes the session (`transport close`, or
    /// `transport error` before the handshake); on an upgrade probe, the
    /// session stays on polling.
    ///
    /// ```
    /// # use std::time::Instant;
    /// use bytes::Bytes;
    /// use switchboard_core::engineio::client::{
    ///     Client, ClientConfig, ClientError, ClientEvent, ClientTransmit,
    /// };
    /// use switchboard_core::engineio::TransportKind;
    /// # let now = Instant::now();
    /// let mut client = Client::new(ClientConfig::new("localhost", 3000), now).unwrap();
    /// let Some(ClientTransmit::Http(handshake)) = client.poll_transmit() else { panic!() };
    /// let open = br#"0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000}"#;
    /// client.handle_http_response(handshake.id, 200, Bytes::from_static(open), now);
    /// # client.poll_event();
    /// assert!(matches!(client.poll_transmit(), Some(ClientTransmit::WsConnect(_))));
    ///
    /// // The probe's WebSocket closes (or never opens): polling goes on.
    /// client.ws_closed(now);
    /// assert_eq!(client.poll_event(), Some(ClientEvent::UpgradeFailed(ClientError::ProbeClosed)));
    /// assert!(client.is_open());
    /// assert_eq!(client.transport(), TransportKind::Polling);
    /// ```
    pub fn ws_closed(&mut self, now: Instant) {
        self.ws_ended(None, now);
    }

    /// The WebSocket failed to open, or failed later, for `reason`: as
    /// [`Client::ws_closed`], with the reason kept in the session's error
    /// ([`ClientError::WebSocketFailed`]) when the session was opening on
    /// it.
    ///
    /// ```
    /// # use std::time::Instant;
    /// use switchboard_core::engineio::client::{
    ///     Client, ClientCloseReason, ClientConfig, ClientError, ClientEvent,
    /// };
    /// # let now = Instant::now();
    /// let config = ClientConfig { polling: false, ..ClientConfig::new("localhost", 3000) };
    /// let mut client = Client::new(config, now).unwrap();
    /// # client.poll_transmit();
    /// client.ws_failed("HTTP 404 instead of 101", now);
    /// let error = ClientError::WebSocketFailed { reason: "HTTP 404 instead of 101".into() };
    /// let reason = ClientCloseReason::TransportError;
    /// let closed = ClientEvent::Closed { reason, error: Some(error) };
    /// assert_eq!(client.poll_event(), Some(closed));
    /// ```
    pub fn ws_failed(&mut self, reason: impl fmt::Display, now: Instant) {
        self.ws_ended(Some(reason.to_string()), now);
    }

    fn ws_ended(&mut self, failure: Option<String>, _now: Instant) {
        if self.phase == Phase::Closed {
            return;
        }
        match self.ws {
            Ws::None => {}
            Ws::Probe(_) => self.probe_failed(ClientError::ProbeClosed, false),
            Ws::Main => {
                self.ws = Ws::None;
                if self.phase == Phase::Opening {
                    self.fail(match failure {
                        Some(reason) => ClientError::WebSocketFailed { reason },
                        None => ClientError::WebSocketClosed,
                    });
                } else {
                    self.close_with(ClientCloseReason::TransportClose, None, false);
                }
            }
        }
    }

    /// Queues a message for the server. It is sent once the session is
    /// open, in order with everything else; several messages queued before
    /// the next [`Client::poll_transmit`] share one polling `POST`.
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use bytes::Bytes;
    /// use switchboard_core::engineio::client::{Client, ClientConfig, ClientTransmit};
    /// use switchboard_core::engineio::MessageData;
    /// # let now = Instant::now();
    /// # let config = ClientConfig { upgrade: false, ..ClientConfig::new("localhost", 3000) };
    /// # let mut client = Client::new(config, now).unwrap();
    /// # let Some(ClientTransmit::Http(get)) = client.poll_transmit() else { panic!() };
    /// # client.handle_http_response(get.id, 200, Bytes::from_static(br#"0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000}"#), now);
    /// # let Some(ClientTransmit::Http(_poll)) = client.poll_transmit() else { panic!() };
    /// // An open polling session, its `GET` poll in flight:
    /// client.send("a".into()).unwrap();
    /// client.send(MessageData::Binary(vec![1, 2, 3].into())).unwrap();
    /// let Some(ClientTransmit::Http(post)) = client.poll_transmit() else { panic!() };
    /// assert_eq!(post.body, "4a\x1ebAQID"); // binary as base64 in a v4 payload
    ///
    /// // One `POST` at a time: the next waits for this one's answer.
    /// client.send("c".into()).unwrap();
    /// assert_eq!(client.poll_transmit(), None);
    /// client.handle_http_response(post.id, 200, Bytes::from_static(b"ok"), now);
    /// let Some(ClientTransmit::Http(post)) = client.poll_transmit() else { panic!() };
    /// assert_eq!(post.body, "4c");
    /// ```
    pub fn send(&mut self, data: MessageData) -> Result<(), ClientSendError> {
        match self.phase {
            Phase::Closing | Phase::Closed => Err(ClientSendError::Closed),
            Phase::Opening | Phase::Open => {
                if self.queue.len() >= self.config.max_buffered_packets {
                    return Err(ClientSendError::BufferFull);
                }
                self.queue.push_back(Packet::Message(data));
                Ok(())
            }
        }
    }

    /// Closes the session (`forced close`). Packets already queued go out
    /// first, then a `close` packet (polling: in a `POST`; WebSocket: as a
    /// message, then the WebSocket is closed); [`ClientEvent::Closed`]
    /// follows the transmit that carries it. Before the handshake, the
    /// session closes at once. An upgrade in progress is abandoned.
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use bytes::Bytes;
    /// use switchboard_core::engineio::client::{
    ///     Client, ClientCloseReason, ClientConfig, ClientEvent, ClientTransmit,
    /// };
    /// # let now = Instant::now();
    /// # let config = ClientConfig { upgrade: false, ..ClientConfig::new("localhost", 3000) };
    /// # let mut client = Client::new(config, now).unwrap();
    /// # let Some(ClientTransmit::Http(get)) = client.poll_transmit() else { panic!() };
    /// # client.handle_http_response(get.id, 200, Bytes::from_static(br#"0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000}"#), now);
    /// # client.poll_event();
    /// # let Some(ClientTransmit::Http(_poll)) = client.poll_transmit() else { panic!() };
    /// // An open polling session:
    /// client.send("last words".into()).unwrap();
    /// client.close();
    /// assert!(!client.is_open());
    /// assert_eq!(client.poll_event(), None); // not before the transmit
    ///
    /// let Some(ClientTransmit::Http(post)) = client.poll_transmit() else { panic!() };
    /// assert_eq!(post.body, "4last words\x1e1");
    /// let closed = ClientEvent::Closed { reason: ClientCloseReason::ForcedClose, error: None };
    /// assert_eq!(client.poll_event(), Some(closed));
    /// ```
    pub fn close(&mut self) {
        match self.phase {
            Phase::Closing | Phase::Closed => {}
            Phase::Opening => self.close_with(ClientCloseReason::ForcedClose, None, false),
            Phase::Open => {
                if let Ws::Probe(probe) = self.ws {
                    self.ws = Ws::None;
                    // A connect not taken yet is dropped: the abandoned
                    // probe's WebSocket is never opened. Otherwise it is
                    // closed.
                    let pending = self.transmits.len();
                    self.transmits
                        .retain(|t| !matches!(t, ClientTransmit::WsConnect(_)));
                    if probe != Probe::Connecting || self.transmits.len() == pending {
                        self.transmits.push_back(ClientTransmit::WsClose);
                    }
                }
                self.phase = Phase::Closing;
                self.queue.push_back(Packet::Close);
            }
        }
    }

    /// Runs the timers due at `now`: the connect timeout, the heartbeat
    /// deadline, and (v3) the client's ping.
    ///
    /// In v4 the server pings, and without a ping for its ping interval plus
    /// ping timeout the session closes (`ping timeout`), whatever else the
    /// server sends meanwhile:
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use switchboard_core::engineio::client::{
    ///     Client, ClientCloseReason, ClientConfig, ClientEvent, ClientTransmit,
    /// };
    /// use switchboard_core::ws::Message;
    /// let secs = Duration::from_secs;
    /// let t0 = Instant::now();
    /// # let config = ClientConfig { polling: false, ..ClientConfig::new("localhost", 3000) };
    /// # let mut client = Client::new(config, t0).unwrap();
    /// # client.poll_transmit();
    /// # client.ws_opened(t0);
    /// // A WebSocket session opened at t0, with pingInterval 25 s and pingTimeout 20 s:
    /// let open = r#"0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000}"#;
    /// client.ws_message(Message::text(open), t0);
    /// # client.poll_event();
    /// assert_eq!(client.poll_timeout(), Some(t0 + secs(45)));
    ///
    /// client.ws_message(Message::text("2"), t0 + secs(25)); // the server's ping
    /// assert_eq!(client.poll_transmit(), Some(ClientTransmit::WsSend(Message::text("3"))));
    /// assert_eq!(client.poll_timeout(), Some(t0 + secs(70)));
    ///
    /// client.handle_timeout(t0 + secs(70)); // silence since
    /// assert_eq!(client.poll_transmit(), Some(ClientTransmit::WsClose));
    /// let closed = ClientEvent::Closed { reason: ClientCloseReason::PingTimeout, error: None };
    /// assert_eq!(client.poll_event(), Some(closed));
    /// assert_eq!(client.poll_timeout(), None);
    /// ```
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.phase == Phase::Closed {
            return;
        }
        if self.phase == Phase::Opening && self.connect_deadline.is_some_and(|t| t <= now) {
            return self.fail(ClientError::ConnectTimeout);
        }
        if self.liveness_deadline.is_some_and(|t| t <= now) {
            return self.close_with(ClientCloseReason::PingTimeout, None, false);
        }
        if self.next_ping.is_some_and(|t| t <= now) {
            self.next_ping = None;
            if self.phase == Phase::Open {
                self.queue.push_back(Packet::Ping(None));
                if let Some((_, timeout)) = self.heartbeat() {
                    self.liveness_deadline = now.checked_add(timeout);
                }
            }
        }
    }

    /// The next time [`Client::handle_timeout`] should run.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use switchboard_core::engineio::client::{
    ///     Client, ClientCloseReason, ClientConfig, ClientError, ClientEvent,
    /// };
    /// let t0 = Instant::now();
    /// let config = ClientConfig {
    ///     connect_timeout: Some(Duration::from_secs(5)),
    ///     ..ClientConfig::new("localhost", 3000)
    /// };
    /// let mut client = Client::new(config, t0).unwrap();
    /// // The handshake request goes out, and no answer comes.
    /// let deadline = client.poll_timeout().unwrap();
    /// assert_eq!(deadline, t0 + Duration::from_secs(5));
    /// client.handle_timeout(deadline);
    /// let Some(ClientEvent::Closed { reason, error }) = client.poll_event() else { panic!() };
    /// assert_eq!(reason, ClientCloseReason::TransportError);
    /// assert_eq!(error, Some(ClientError::ConnectTimeout));
    /// ```
    pub fn poll_timeout(&self) -> Option<Instant> {
        let connect = match self.phase {
            Phase::Opening => self.connect_deadline,
            Phase::Closed => return None,
            _ => None,
        };
        [connect, self.liveness_deadline, self.next_ping]
            .into_iter()
            .flatten()
            .min()
    }

    /// The next application event.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// The next thing to do. Queued packets are turned into a `POST` (or
    /// WebSocket messages) here, so everything queued before this call
    /// travels together. Call it until it returns `None` after every input
    /// and command.
    ///
    /// See [`ClientTransmit`] for a loop over it, and [`Client::send`] for
    /// how packets are batched.
    ///
    /// ```
    /// # use std::time::Instant;
    /// use switchboard_core::engineio::client::{Client, ClientConfig, ClientTransmit};
    /// use switchboard_core::ws::Message;
    /// # let now = Instant::now();
    /// let config = ClientConfig { polling: false, ..ClientConfig::new("localhost", 3000) };
    /// let mut client = Client::new(config, now).unwrap();
    /// client.send("early".into()).unwrap(); // waits for the handshake
    /// assert!(matches!(client.poll_transmit(), Some(ClientTransmit::WsConnect(_))));
    /// assert_eq!(client.poll_transmit(), None);
    ///
    /// client.ws_opened(now);
    /// let open = r#"0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000}"#;
    /// client.ws_message(Message::text(open), now);
    /// assert_eq!(client.poll_transmit(), Some(ClientTransmit::WsSend(Message::text("4early"))));
    /// assert_eq!(client.poll_transmit(), None);
    /// ```
    pub fn poll_transmit(&mut self) -> Option<ClientTransmit> {
        if self.transmits.is_empty() {
            self.flush();
        }
        self.transmits.pop_front()
    }

    /// The ping interval and timeout of the handshake.
    fn heartbeat(&self) -> Option<(Duration, Duration)> {
        self.handshake.as_ref().map(|open| {
            (
                Duration::from_millis(open.ping_interval),
                Duration::from_millis(open.ping_timeout),
            )
        })
    }

    /// The server showed it is alive (v4: pinged; v3: sent anything): its
    /// next sign is due within another ping interval and timeout.
    fn heard(&mut self, now: Instant) {
        if let Some((interval, timeout)) = self.heartbeat() {
            self.liveness_deadline = now.checked_add(interval.saturating_add(timeout));
        }
    }

    fn upgrading(&self) -> bool {
        self.ws == Ws::Probe(Probe::Pausing)
    }

    fn next_request_id(&mut self) -> RequestId {
        self.next_id += 1;
        RequestId(self.next_id)
    }

    /// The request target for `transport`.
    fn target(&self, transport: TransportKind, stamp: Option<u64>) -> String {
        let mut target = String::with_capacity(self.config.path.len() + 64);
        target.push_str(&self.config.path);
        target.push('?');
        for (key, value) in &self.config.query {
            if RESERVED_QUERY_KEYS.contains(&key.as_str()) {
                continue;
            }
            let _ = write!(target, "{key}={value}&");
        }
        let _ = write!(
            target,
            "EIO={}&transport={}",
            self.config.version,
            transport.as_str()
        );
        if let Some(sid) = self.sid() {
            target.push_str("&sid=");
            percent_encode(&mut target, sid);
        }
        if let Some(stamp) = stamp.filter(|_| self.config.timestamp_requests) {
            let _ = write!(target, "&t={}{stamp}", self.nonce);
        }
        if self.config.force_base64 {
            target.push_str("&b64=1");
        }
        target
    }

    fn headers(&self) -> Vec<(String, String)> {
        let mut headers = Vec::with_capacity(2 + self.config.extra_headers.len());
        headers.push(("Host".to_owned(), self.config.authority()));
        headers.extend(self.config.extra_headers.iter().cloned());
        headers
    }

    fn send_poll(&mut self) {
        let id = self.next_request_id();
        let target = self.target(TransportKind::Polling, Some(id.0));
        self.get = Some(id);
        self.transmits.push_back(ClientTransmit::Http(HttpRequest {
            id,
            method: HttpMethod::Get,
            target,
            headers: self.headers(),
            body: Bytes::new(),
        }));
    }

    fn ws_connect(&self) -> WsConnect {
        WsConnect {
            url: WsUrl {
                secure: self.config.secure,
                host: self.config.host.clone(),
                port: self.config.port,
                authority: self.config.authority(),
                target: self.target(TransportKind::WebSocket, None),
            },
            headers: self.config.extra_headers.clone(),
        }
    }

    /// Starts the next poll when polling is the transport and nothing
    /// holds it back.
    fn maybe_poll(&mut self) {
        if self.phase == Phase::Open
            && self.transport == TransportKind::Polling
            && self.get.is_none()
            && !self.upgrading()
        {
            self.send_poll();
        }
    }

    /// Completes the upgrade once `3probe` arrived and polling is idle.
    fn try_finish_upgrade(&mut self) {
        if self.upgrading()
            && self.phase == Phase::Open
            && self.get.is_none()
            && self.post.is_none()
        {
            let upgrade = Packet::Upgrade.encode_ws(self.config.version);
            self.transmits.push_back(ClientTransmit::WsSend(upgrade));
            self.ws = Ws::Main;
            self.transport = TransportKind::WebSocket;
            self.events.push_back(ClientEvent::Upgraded);
        }
    }

    fn probe_failed(&mut self, error: ClientError, close_ws: bool) {
        if close_ws {
            self.transmits.push_back(ClientTransmit::WsClose);
        }
        self.ws = Ws::None;
        self.events.push_back(ClientEvent::UpgradeFailed(error));
        // Polling resumes if it was pausing.
        self.maybe_poll();
    }

    /// The body of a `GET` answer.
    fn on_poll_body(&mut self, body: Bytes, now: Instant) {
        let limit = self.config.max_payload;
        if body.len() > limit {
            return self.fail(ClientError::TooLarge {
                size: body.len(),
                limit,
            });
        }
        // A v3 server answers in binary form (`application/octet-stream`)
        // when it sends binary data: such a body starts with a kind byte 0
        // or 1, a string payload with an ASCII digit.
        let kind = match (self.config.version, body.first()) {
            (ProtocolVersion::V3, Some(0 | 1)) => PayloadKind::Binary,
            _ => PayloadKind::Text,
        };
        let limits = PayloadLimits {
            max_bytes: limit,
            ..PayloadLimits::default()
        };
        let decoder = match decode_payload(body, kind, self.config.version, &limits) {
            Ok(decoder) => decoder,
            Err(error) => return self.fail(error.into()),
        };
        for item in decoder {
            match item {
                Ok(packet) => self.on_packet(packet, now),
                Err(error) => return self.fail(error.into()),
            }
            if self.phase == Phase::Closed {
                return;
            }
        }
    }

    /// A packet from the server on the session's transport.
    fn on_packet(&mut self, packet: Packet, now: Instant) {
        if self.phase == Phase::Opening {
            return match packet {
                Packet::Open(open) => self.on_handshake(open, now),
                other => self.fail(ClientError::ExpectedOpen(other.packet_type())),
            };
        }
        let version = self.config.version;
        if version == ProtocolVersion::V3 || matches!(packet, Packet::Ping(_)) {
            self.heard(now);
        }
        match packet {
            Packet::Message(data) => self.events.push_back(ClientEvent::Message(data)),
            Packet::Ping(_) if version == ProtocolVersion::V4 => {
                if self.phase == Phase::Open {
                    self.queue.push_back(Packet::Pong(None));
                }
            }
            Packet::Pong(_) if version == ProtocolVersion::V3 => {
                if let Some((interval, _)) = self.heartbeat() {
                    self.next_ping = now.checked_add(interval);
                }
            }
            Packet::Close => self.close_with(ClientCloseReason::TransportClose, None, false),
            // A second handshake, heartbeats in the wrong direction,
            // `upgrade` and `noop` change nothing.
            Packet::Open(_)
            | Packet::Ping(_)
            | Packet::Pong(_)
            | Packet::Upgrade
            | Packet::Noop => {}
        }
    }

    fn on_handshake(&mut self, open: OpenPacket, now: Instant) {
        self.phase = Phase::Open;
        self.connect_deadline = None;
        let probe = self.transport == TransportKind::Polling
            && self.config.upgrade
            && self.config.websocket
            && open
                .upgrades
                .iter()
                .any(|u| u == TransportKind::WebSocket.as_str());
        self.events.push_back(ClientEvent::Open {
            sid: open.sid.clone(),
            transport: self.transport,
            handshake: open.clone(),
        });
        self.handshake = Some(open);
        self.heard(now);
        if self.config.version == ProtocolVersion::V3
            && let Some((interval, _)) = self.heartbeat()
        {
            self.next_ping = now.checked_add(interval);
        }
        if probe {
            self.ws = Ws::Probe(Probe::Connecting);
            let connect = self.ws_connect();
            self.transmits.push_back(ClientTransmit::WsConnect(connect));
        }
    }

    /// Sends what is queued, if the transport can take it now.
    fn flush(&mut self) {
        if self.queue.is_empty()
            || !matches!(self.phase, Phase::Open | Phase::Closing)
            || self.upgrading()
        {
            return;
        }
        let version = self.config.version;
        match self.transport {
            TransportKind::WebSocket => {
                while let Some(packet) = self.queue.pop_front() {
                    let message = match &packet {
                        Packet::Message(MessageData::Binary(_)) if self.config.force_base64 => {
                            Message::text(packet.encode_text(version))
                        }
                        _ => packet.encode_ws(version),
                    };
                    self.transmits.push_back(ClientTransmit::WsSend(message));
                    if packet == Packet::Close {
                        self.close_with(ClientCloseReason::ForcedClose, None, true);
                        return;
                    }
                }
            }
            TransportKind::Polling => {
                if self.post.is_some() {
                    return;
                }
                let limit = match version {
                    ProtocolVersion::V4 => self.handshake.as_ref().and_then(|h| h.max_payload),
                    // v3 clients ignore `maxPayload`, as Node's did.
                    ProtocolVersion::V3 => None,
                };
                let batch = take_batch(&mut self.queue, limit);
                let closing = batch.last() == Some(&Packet::Close);
                let payload = encode_payload(&batch, version, !self.config.force_base64);
                let id = self.next_request_id();
                let mut headers = self.headers();
                headers.insert(
                    1,
                    ("Content-Type".to_owned(), payload.content_type().to_owned()),
                );
                self.post = Some(id);
                self.transmits.push_back(ClientTransmit::Http(HttpRequest {
                    id,
                    method: HttpMethod::Post,
                    target: self.target(TransportKind::Polling, Some(id.0)),
                    headers,
                    body: payload.into_bytes(),
                }));
                if closing {
                    self.close_with(ClientCloseReason::ForcedClose, None, true);
                }
            }
        }
    }

    /// A transport failure.
    fn fail(&mut self, error: ClientError) {
        self.close_with(ClientCloseReason::TransportError, Some(error), false);
    }

    /// Ends the session: closes a WebSocket still open, forgets requests,
    /// packets and timers, reports the close. Transmits not yet taken are
    /// dropped unless `keep_transmits` (a forced close's last packets).
    fn close_with(
        &mut self,
        reason: ClientCloseReason,
        error: Option<ClientError>,
        keep_transmits: bool,
    ) {
        if self.phase == Phase::Closed {
            return;
        }
        if !keep_transmits {
            self.transmits.clear();
        }
        if self.ws != Ws::None {
            self.transmits.push_back(ClientTransmit::WsClose);
        }
        self.ws = Ws::None;
        self.phase = Phase::Closed;
        self.get = None;
        self.post = None;
        self.queue.clear();
        self.connect_deadline = None;
        self.liveness_deadline = None;
        self.next_ping = None;
        self.events.push_back(ClientEvent::Closed { reason, error });
    }
}

/// Takes queued packets for one `POST`: at least one, then more while the
/// body stays within `limit` bytes (the server's `maxPayload`).
fn take_batch(queue: &mut VecDeque<Packet>, limit: Option<u64>) -> Vec<Packet> {
    let Some(limit) = limit else {
        return queue.drain(..).collect();
    };
    let mut batch = Vec::new();
    let mut size: u64 = 0;
    while let Some(packet) = queue.front() {
        // The v4 text form is at most this long; a separator between
        // packets.
        let len = packet.text_len_hint() as u64 + u64::from(!batch.is_empty());
        if !batch.is_empty() && size.saturating_add(len) > limit {
            break;
        }
        size = size.saturating_add(len);
        batch.extend(queue.pop_front());
    }
    batch
}

/// Appends `value` to a query string, percent-encoding all but the
/// unreserved characters of RFC 3986.
fn percent_encode(out: &mut String, value: &str) {
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engineio::server::{
        ConnId, PollId, RequestOutcome, Server, ServerConfig, ServerEvent, Transmit,
    };
    use crate::http::{Header, Headers, Limits, Request};
    use proptest::prelude::*;
    use std::collections::HashMap;

    const OPEN: &str = r#"0{"sid":"abc","upgrades":["websocket"],"pingInterval":300,"pingTimeout":200,"maxPayload":1000000}"#;
    const OPEN_WS: &str =
        r#"0{"sid":"abc","upgrades":[],"pingInterval":300,"pingTimeout":200,"maxPayload":1000000}"#;

    fn config() -> ClientConfig {
        ClientConfig {
            timestamp_requests: false,
            ..ClientConfig::from_url("http://localhost:3000").unwrap()
        }
    }

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    fn http(client: &mut Client) -> HttpRequest {
        match client.poll_transmit() {
            Some(ClientTransmit::Http(req)) => req,
            other => panic!("expected an HTTP request, got {other:?}"),
        }
    }

    fn ws_send(client: &mut Client) -> Message {
        match client.poll_transmit() {
            Some(ClientTransmit::WsSend(m)) => m,
            other => panic!("expected a WebSocket message, got {other:?}"),
        }
    }

    fn body(req: &HttpRequest) -> &str {
        std::str::from_utf8(&req.body).unwrap()
    }

    fn respond(client: &mut Client, req: &HttpRequest, body: &str, now: Instant) {
        client.handle_http_response(req.id, 200, Bytes::copy_from_slice(body.as_bytes()), now);
    }

    fn closed(client: &mut Client) -> (ClientCloseReason, Option<ClientError>) {
        loop {
            match client.poll_event() {
                Some(ClientEvent::Closed { reason, error }) => return (reason, error),
                Some(_) => {}
                None => panic!("no close event"),
            }
        }
    }

    /// A polling handshake without upgrade; returns the client and the
    /// outstanding poll.
    fn polling_client(t0: Instant) -> (Client, HttpRequest) {
        let mut client = Client::new(
            ClientConfig {
                upgrade: false,
                ..config()
            },
            t0,
        )
        .unwrap();
        let handshake = http(&mut client);
        respond(&mut client, &handshake, OPEN, t0);
        assert!(matches!(
            client.poll_event(),
            Some(ClientEvent::Open { .. })
        ));
        let poll = http(&mut client);
        assert_eq!(poll.method, HttpMethod::Get);
        (client, poll)
    }

    /// A WebSocket-only handshake.
    fn ws_client(t0: Instant) -> Client {
        let mut client = Client::new(
            ClientConfig {
                polling: false,
                ..config()
            },
            t0,
        )
        .unwrap();
        assert!(matches!(
            client.poll_transmit(),
            Some(ClientTransmit::WsConnect(_))
        ));
        client.ws_opened(t0);
        client.ws_message(Message::text(OPEN_WS), t0);
        assert!(matches!(
            client.poll_event(),
            Some(ClientEvent::Open { .. })
        ));
        client
    }

    #[test]
    fn polling_handshake() {
        let t0 = Instant::now();
        let mut client = Client::new(
            ClientConfig {
                query: vec![("token".into(), "x%20y".into()), ("EIO".into(), "3".into())],
                extra_headers: vec![("Authorization".into(), "Bearer t".into())],
                ..config()
            },
            t0,
        )
        .unwrap();
        assert_eq!(client.poll_timeout(), Some(t0 + Duration::from_secs(20)));
        let req = http(&mut client);
        assert_eq!(req.method, HttpMethod::Get);
        assert_eq!(
            req.target,
            "/engine.io/?token=x%20y&EIO=4&transport=polling"
        );
        assert_eq!(
            req.encode(),
            b"GET /engine.io/?token=x%20y&EIO=4&transport=polling HTTP/1.1\r\n\
              Host: localhost:3000\r\nAuthorization: Bearer t\r\n\r\n"
        );
        assert_eq!(client.poll_transmit(), None);
        assert_eq!(client.sid(), None);
        respond(&mut client, &req, OPEN, ms(t0, 10));
        let Some(ClientEvent::Open {
            sid,
            transport,
            handshake,
        }) = client.poll_event()
        else {
            panic!()
        };
        assert_eq!(sid, "abc");
        assert_eq!(transport, TransportKind::Polling);
        assert_eq!(handshake.max_payload, Some(1_000_000));
        assert_eq!(client.sid(), Some("abc"));
        assert!(client.is_open());
        // The probe, then the first poll.
        let Some(ClientTransmit::WsConnect(ws)) = client.poll_transmit() else {
            panic!()
        };
        assert_eq!(
            ws.url.target,
            "/engine.io/?token=x%20y&EIO=4&transport=websocket&sid=abc"
        );
        assert_eq!(ws.url.authority, "localhost:3000");
        assert_eq!(ws.headers, [("Authorization".into(), "Bearer t".into())]);
        let poll = http(&mut client);
        assert_eq!(
            poll.target,
            "/engine.io/?token=x%20y&EIO=4&transport=polling&sid=abc"
        );
        // The heartbeat deadline replaces the connect timeout.
        assert_eq!(client.poll_timeout(), Some(ms(t0, 510)));
        assert_eq!(client.poll_transmit(), None);
    }

    #[test]
    fn timestamps_and_base64() {
        let t0 = Instant::now();
        let mut client = Client::new(
            ClientConfig {
                timestamp_requests: true,
                force_base64: true,
                version: ProtocolVersion::V3,
                ..config()
            },
            t0,
        )
        .unwrap();
        let first = http(&mut client);
        assert!(
            first
                .target
                .starts_with("/engine.io/?EIO=3&transport=polling&t="),
            "{}",
            first.target
        );
        assert!(first.target.ends_with("&b64=1"));
        respond(&mut client, &first, &format!("{}:{OPEN}", OPEN.len()), t0);
        let Some(ClientTransmit::WsConnect(ws)) = client.poll_transmit() else {
            panic!()
        };
        // No timestamp on WebSockets.
        assert_eq!(
            ws.url.target,
            "/engine.io/?EIO=3&transport=websocket&sid=abc&b64=1"
        );
        let second = http(&mut client);
        assert_ne!(first.target, second.target);
    }

    #[test]
    fn urls() {
        let config = ClientConfig::from_url("ws://[::1]:8080").unwrap();
        assert_eq!(config.authority(), "[::1]:8080");
        assert_eq!(config.path, DEFAULT_PATH);
        assert!(config.query.is_empty());
        let config = ClientConfig::from_url("wss://h:443/a/b/?x=1&y#frag").unwrap();
        assert_eq!(config.authority(), "h");
        assert_eq!(config.path, "/a/b/");
        assert_eq!(
            config.query,
            [("x".into(), "1".into()), ("y".into(), String::new())]
        );
        for bad in ["ftp://h", "http://", "localhost:3000", "http://h:99999"] {
            assert!(
                matches!(ClientConfig::from_url(bad), Err(ConfigError::InvalidUrl(_))),
                "{bad}"
            );
        }
        let t0 = Instant::now();
        let none = ClientConfig {
            polling: false,
            websocket: false,
            ..config.clone()
        };
        assert_eq!(Client::new(none, t0).unwrap_err(), ConfigError::NoTransport);
        let bad_path = ClientConfig {
            path: "x?".into(),
            ..config.clone()
        };
        assert!(matches!(
            Client::new(bad_path, t0),
            Err(ConfigError::InvalidPath(_))
        ));
        let bad_host = ClientConfig {
            host: "a/b".into(),
            ..config
        };
        assert!(matches!(
            Client::new(bad_host, t0),
            Err(ConfigError::InvalidHost(_))
        ));
    }

    #[test]
    fn websocket_only_handshake() {
        let t0 = Instant::now();
        let mut client = Client::new(
            ClientConfig {
                polling: false,
                ..config()
            },
            t0,
        )
        .unwrap();
        let Some(ClientTransmit::WsConnect(ws)) = client.poll_transmit() else {
            panic!()
        };
        assert_eq!(ws.url.target, "/engine.io/?EIO=4&transport=websocket");
        assert_eq!((ws.url.host.as_str(), ws.url.port), ("localhost", 3000));
        assert!(!ws.url.secure);
        // Sends before the handshake wait for it.
        client.send(MessageData::Text("early".into())).unwrap();
        client.ws_opened(t0);
        assert_eq!(client.poll_transmit(), None);
        client.ws_message(Message::text(OPEN_WS), t0);
        assert_eq!(
            client.poll_event(),
            Some(ClientEvent::Open {
                sid: "abc".into(),
                transport: TransportKind::WebSocket,
                handshake: OpenPacket::from_json(&OPEN_WS[1..]).unwrap(),
            })
        );
        assert_eq!(ws_send(&mut client), Message::text("4early"));
        assert_eq!(client.poll_transmit(), None);
        assert_eq!(client.transport(), TransportKind::WebSocket);
    }

    #[test]
    fn websocket_closed_before_the_handshake() {
        let t0 = Instant::now();
        let mut client = Client::new(
            ClientConfig {
                polling: false,
                ..config()
            },
            t0,
        )
        .unwrap();
        client.ws_closed(t0);
        assert_eq!(
            closed(&mut client),
            (
                ClientCloseReason::TransportError,
                Some(ClientError::WebSocketClosed)
            )
        );
        assert_eq!(client.poll_transmit(), None, "the connect is dropped");
    }

    #[test]
    fn first_packet_must_be_open() {
        let t0 = Instant::now();
        let mut client = Client::new(config(), t0).unwrap();
        let req = http(&mut client);
        respond(&mut client, &req, "4hello", t0);
        assert_eq!(
            closed(&mut client),
            (
                ClientCloseReason::TransportError,
                Some(ClientError::ExpectedOpen(PacketType::Message))
            )
        );
    }

    #[test]
    fn connect_timeout() {
        let t0 = Instant::now();
        let mut client = Client::new(config(), t0).unwrap();
        let req = http(&mut client);
        client.handle_timeout(ms(t0, 19_999));
        assert_eq!(client.poll_event(), None);
        client.handle_timeout(ms(t0, 20_000));
        assert_eq!(
            closed(&mut client),
            (
                ClientCloseReason::TransportError,
                Some(ClientError::ConnectTimeout)
            )
        );
        // A late answer is ignored.
        respond(&mut client, &req, OPEN, ms(t0, 20_001));
        assert_eq!(client.poll_event(), None);
        assert_eq!(client.poll_transmit(), None);
        assert_eq!(client.poll_timeout(), None);
    }

    #[test]
    fn messages_over_polling() {
        let t0 = Instant::now();
        let (mut client, poll) = polling_client(t0);
        client.send(MessageData::Text("hello".into())).unwrap();
        client
            .send(MessageData::Binary(vec![1, 2, 3].into()))
            .unwrap();
        let post = http(&mut client);
        assert_eq!(post.method, HttpMethod::Post);
        assert_eq!(post.target, "/engine.io/?EIO=4&transport=polling&sid=abc");
        assert_eq!(body(&post), "4hello\u{1e}bAQID");
        assert_eq!(
            post.header("content-type"),
            Some("text/plain; charset=UTF-8")
        );
        let encoded = post.encode();
        assert!(encoded.starts_with(b"POST /engine.io/?EIO=4&transport=polling&sid=abc HTTP/1.1\r\nHost: localhost:3000\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Length: 12\r\n\r\n"));
        assert!(encoded.ends_with(b"\r\n\r\n4hello\x1ebAQID"));
        // One POST at a time.
        client.send(MessageData::Text("next".into())).unwrap();
        assert_eq!(client.poll_transmit(), None);
        respond(&mut client, &post, "ok", t0);
        assert_eq!(body(&http(&mut client)), "4next");
        // Received: text and binary.
        respond(&mut client, &poll, "4hi\u{1e}bAQ==\u{1e}6", t0);
        assert_eq!(
            client.poll_event(),
            Some(ClientEvent::Message(MessageData::Text("hi".into())))
        );
        assert_eq!(
            client.poll_event(),
            Some(ClientEvent::Message(MessageData::Binary(vec![1].into())))
        );
        assert_eq!(client.poll_event(), None);
        // The next poll follows at once.
        let next = http(&mut client);
        assert_eq!(next.method, HttpMethod::Get);
        assert_ne!(next.id, poll.id);
    }

    #[test]
    fn posts_respect_max_payload() {
        let t0 = Instant::now();
        let mut client = Client::new(
            ClientConfig {
                upgrade: false,
                ..config()
            },
            t0,
        )
        .unwrap();
        let req = http(&mut client);
        respond(
            &mut client,
            &req,
            r#"0{"sid":"s","upgrades":[],"pingInterval":300,"pingTimeout":200,"maxPayload":11}"#,
            t0,
        );
        let _poll = http(&mut client);
        for m in ["aaaa", "bbbb", "cccc"] {
            client.send(MessageData::Text(m.into())).unwrap();
        }
        let first = http(&mut client);
        assert_eq!(body(&first), "4aaaa\u{1e}4bbbb");
        respond(&mut client, &first, "ok", t0);
        assert_eq!(body(&http(&mut client)), "4cccc");
        // A packet larger than the limit still goes, alone.
        let mut queue: VecDeque<Packet> = [Packet::text("0123456789ab"), Packet::text("c")].into();
        assert_eq!(take_batch(&mut queue, Some(4)).len(), 1);
        assert_eq!(queue.len(), 1);
    }

    #[test]
    fn messages_over_websocket() {
        let t0 = Instant::now();
        let mut client = ws_client(t0);
        client.send(MessageData::Text("hello".into())).unwrap();
        client.send(MessageData::Binary(vec![1, 2].into())).unwrap();
        assert_eq!(ws_send(&mut client), Message::text("4hello"));
        assert_eq!(ws_send(&mut client), Message::binary(vec![1, 2]));
        assert_eq!(client.poll_transmit(), None);
        client.ws_message(Message::text("4hi"), t0);
        client.ws_message(Message::binary(vec![7]), t0);
        client.ws_message(Message::text("bAQ=="), t0);
        client.ws_message(Message::Ping(Bytes::new()), t0);
        assert_eq!(
            client.poll_event(),
            Some(ClientEvent::Message(MessageData::Text("hi".into())))
        );
        assert_eq!(
            client.poll_event(),
            Some(ClientEvent::Message(MessageData::Binary(vec![7].into())))
        );
        assert_eq!(
            client.poll_event(),
            Some(ClientEvent::Message(MessageData::Binary(vec![1].into())))
        );
        assert_eq!(client.poll_event(), None);
    }

    #[test]
    fn v3_binary_framing() {
        let t0 = Instant::now();
        // WebSocket: a 0x04 type byte.
        let mut client = Client::new(
            ClientConfig {
                polling: false,
                version: ProtocolVersion::V3,
                ..config()
            },
            t0,
        )
        .unwrap();
        let _ = client.poll_transmit();
        client.ws_opened(t0);
        client.ws_message(Message::text(OPEN_WS), t0);
        client.send(MessageData::Binary(vec![9].into())).unwrap();
        assert_eq!(ws_send(&mut client), Message::binary(vec![4, 9]));
        client.ws_message(Message::binary(vec![4, 8]), t0);
        assert!(matches!(
            client.poll_event(),
            Some(ClientEvent::Open { .. })
        ));
        assert_eq!(
            client.poll_event(),
            Some(ClientEvent::Message(MessageData::Binary(vec![8].into())))
        );

        // Polling: binary payloads both ways.
        let mut client = Client::new(
            ClientConfig {
                upgrade: false,
                version: ProtocolVersion::V3,
                ..config()
            },
            t0,
        )
        .unwrap();
        let req = http(&mut client);
        respond(&mut client, &req, &format!("{}:{OPEN}", OPEN.len()), t0);
        let poll = http(&mut client);
        client.send(MessageData::Text("a".into())).unwrap();
        client.send(MessageData::Binary(vec![1].into())).unwrap();
        let post = http(&mut client);
        assert_eq!(
            post.header("Content-Type"),
            Some("application/octet-stream")
        );
        assert_eq!(&post.body[..], [0, 2, 0xff, b'4', b'a', 1, 2, 0xff, 4, 1]);
        client.handle_http_response(
            poll.id,
            200,
            Bytes::from_static(&[0, 3, 0xff, b'4', b'h', b'i', 1, 2, 0xff, 4, 7]),
            t0,
        );
        assert!(matches!(
            client.poll_event(),
            Some(ClientEvent::Open { .. })
        ));
        assert_eq!(
            client.poll_event(),
            Some(ClientEvent::Message(MessageData::Text("hi".into())))
        );
        assert_eq!(
            client.poll_event(),
            Some(ClientEvent::Message(MessageData::Binary(vec![7].into())))
        );
        let poll = http(&mut client);
        respond(&mut client, &poll, "10:b4AQIDBA==", t0);
        assert_eq!(
            client.poll_event(),
            Some(ClientEvent::Message(MessageData::Binary(
                vec![1, 2, 3, 4].into()
            )))
        );
    }

    #[test]
    fn force_base64_over_websocket() {
        let t0 = Instant::now();
        let mut client = Client::new(
            ClientConfig {
                polling: false,
                force_base64: true,
                ..config()
            },
            t0,
        )
        .unwrap();
        let Some(ClientTransmit::WsConnect(ws)) = client.poll_transmit() else {
            panic!()
        };
        assert!(ws.url.target.ends_with("&b64=1"));
        client.ws_opened(t0);
        client.ws_message(Message::text(OPEN_WS), t0);
        client
            .send(MessageData::Binary(vec![1, 2, 3].into()))
            .unwrap();
        assert_eq!(ws_send(&mut client), Message::text("bAQID"));
    }

    /// Starts a polling session with an upgrade probe; returns the client,
    /// its outstanding poll, and checks the probe's connect.
    fn upgrading_client(t0: Instant) -> (Client, HttpRequest) {
        let mut client = Client::new(config(), t0).unwrap();
        let req = http(&mut client);
        respond(&mut client, &req, OPEN, t0);
        assert!(matches!(
            client.poll_event(),
            Some(ClientEvent::Open { .. })
        ));
        assert!(matches!(
            client.poll_transmit(),
            Some(ClientTransmit::WsConnect(_))
        ));
        let poll = http(&mut client);
        (client, poll)
    }

    #[test]
    fn upgrade_preserves_order() {
        let t0 = Instant::now();
        let (mut client, poll) = upgrading_client(t0);
        // Before the probe answers, packets go by polling.
        client.send(MessageData::Text("a".into())).unwrap();
        let post = http(&mut client);
        assert_eq!(body(&post), "4a");
        client.ws_opened(t0);
        assert_eq!(ws_send(&mut client), Message::text("2probe"));
        client.send(MessageData::Text("b".into())).unwrap();
        assert_eq!(client.poll_transmit(), None, "a POST is in flight");
        client.ws_message(Message::text("3probe"), t0);
        client.send(MessageData::Binary(vec![3].into())).unwrap();
        // Paused: the POST and the poll must come back first.
        assert_eq!(client.poll_transmit(), None);
        respond(&mut client, &post, "ok", t0);
        assert_eq!(client.poll_transmit(), None, "the poll is in flight");
        assert_eq!(client.poll_event(), None);
        // The poll returns with a message and a ping: handled, no new poll.
        respond(&mut client, &poll, "4x\u{1e}2\u{1e}6", t0);
        assert_eq!(
            client.poll_event(),
            Some(ClientEvent::Message(MessageData::Text("x".into())))
        );
        assert_eq!(client.poll_event(), Some(ClientEvent::Upgraded));
        assert_eq!(ws_send(&mut client), Message::text("5"));
        assert_eq!(ws_send(&mut client), Message::text("4b"));
        assert_eq!(ws_send(&mut client), Message::binary(vec![3]));
        assert_eq!(ws_send(&mut client), Message::text("3"));
        assert_eq!(client.poll_transmit(), None);
        assert_eq!(client.transport(), TransportKind::WebSocket);
        client.send(MessageData::Text("d".into())).unwrap();
        assert_eq!(ws_send(&mut client), Message::text("4d"));
        client.ws_message(Message::text("4from ws"), t0);
        assert_eq!(
            client.poll_event(),
            Some(ClientEvent::Message(MessageData::Text("from ws".into())))
        );
        // The WebSocket is now the session's: its close ends the session.
        client.ws_closed(t0);
        assert_eq!(
            closed(&mut client),
            (ClientCloseReason::TransportClose, None)
        );
        assert_eq!(client.poll_transmit(), None);
    }

    #[test]
    fn upgrade_without_anything_in_flight() {
        let t0 = Instant::now();
        let (mut client, poll) = upgrading_client(t0);
        client.ws_opened(t0);
        assert_eq!(ws_send(&mut client), Message::text("2probe"));
        // The poll came back before the probe answer.
        respond(&mut client, &poll, "6", t0);
        let poll = http(&mut client);
        client.ws_message(Message::text("3probe"), t0);
        assert_eq!(client.poll_transmit(), None);
        respond(&mut client, &poll, "6", t0);
        assert_eq!(ws_send(&mut client), Message::text("5"));
        assert_eq!(client.poll_transmit(), None);
        // A late answer to an old request is ignored.
        respond(&mut client, &poll, "1", t0);
        assert_eq!(client.poll_event(), Some(ClientEvent::Upgraded));
        assert_eq!(client.poll_event(), None);
    }

    #[test]
    fn failed_probe_stays_on_polling() {
        let t0 = Instant::now();
        // The probe WebSocket closes before answering.
        let (mut client, poll) = upgrading_client(t0);
        client.ws_opened(t0);
        assert_eq!(ws_send(&mut client), Message::text("2probe"));
        client.ws_closed(t0);
        assert_eq!(
            client.poll_event(),
            Some(ClientEvent::UpgradeFailed(ClientError::ProbeClosed))
        );
        client.send(MessageData::Text("still".into())).unwrap();
        assert_eq!(body(&http(&mut client)), "4still");
        respond(&mut client, &poll, "4ok", t0);
        assert_eq!(http(&mut client).method, HttpMethod::Get);
        assert_eq!(client.transport(), TransportKind::Polling);
        // Later WebSocket input is ignored.
        client.ws_message(Message::text("5"), t0);
        client.ws_closed(t0);
        assert!(matches!(client.poll_event(), Some(ClientEvent::Message(_))));
        assert_eq!(client.poll_event(), None);

        // The probe is answered with something else.
        let (mut client, _poll) = upgrading_client(t0);
        client.ws_opened(t0);
        let _ = ws_send(&mut client);
        client.ws_message(Message::text("3nope"), t0);
        assert_eq!(client.poll_transmit(), Some(ClientTransmit::WsClose));
        assert_eq!(
            client.poll_event(),
            Some(ClientEvent::UpgradeFailed(ClientError::ProbeRejected(
                PacketType::Pong
            )))
        );
        assert!(client.is_open());

        // The WebSocket dies while polling is paused: polling resumes.
        let (mut client, poll) = upgrading_client(t0);
        client.ws_opened(t0);
        let _ = ws_send(&mut client);
        client.ws_message(Message::text("3probe"), t0);
        client.send(MessageData::Text("held".into())).unwrap();
        client.ws_closed(t0);
        assert_eq!(
            client.poll_event(),
            Some(ClientEvent::UpgradeFailed(ClientError::ProbeClosed))
        );
        assert_eq!(body(&http(&mut client)), "4held");
        respond(&mut client, &poll, "6", t0);
        assert_eq!(http(&mut client).method, HttpMethod::Get);
    }

    #[test]
    fn upgrade_disabled_or_not_offered() {
        let t0 = Instant::now();
        let (mut client, _) = polling_client(t0);
        assert_eq!(client.poll_transmit(), None);
        let mut client = Client::new(
            ClientConfig {
                websocket: false,
                ..config()
            },
            t0,
        )
        .unwrap();
        let req = http(&mut client);
        respond(&mut client, &req, OPEN, t0);
        assert_eq!(http(&mut client).method, HttpMethod::Get);
        assert_eq!(client.poll_transmit(), None);
    }

    #[test]
    fn v4_heartbeat() {
        let t0 = Instant::now();
        let (mut client, poll) = polling_client(t0);
        assert_eq!(client.poll_timeout(), Some(ms(t0, 500)));
        respond(&mut client, &poll, "2", ms(t0, 300));
        let poll = http(&mut client);
        assert_eq!(poll.method, HttpMethod::Get);
        let pong = http(&mut client);
        assert_eq!(body(&pong), "3");
        assert_eq!(client.poll_timeout(), Some(ms(t0, 800)));
        respond(&mut client, &pong, "ok", ms(t0, 301));
        assert_eq!(client.poll_transmit(), None);
        // Only a ping is a sign of life (the protocol, and Node's client):
        // a server that sends messages but stopped pinging is timed out.
        respond(&mut client, &poll, "4x", ms(t0, 400));
        assert!(matches!(client.poll_event(), Some(ClientEvent::Message(_))));
        assert_eq!(client.poll_timeout(), Some(ms(t0, 800)));
        client.handle_timeout(ms(t0, 799));
        assert!(client.is_open());
        let _poll = http(&mut client);
        client.handle_timeout(ms(t0, 800));
        assert_eq!(closed(&mut client), (ClientCloseReason::PingTimeout, None));
        assert_eq!(client.poll_transmit(), None);

        // Over a WebSocket.
        let mut client = ws_client(t0);
        client.ws_message(Message::text("2"), ms(t0, 300));
        assert_eq!(ws_send(&mut client), Message::text("3"));
        client.handle_timeout(ms(t0, 800));
        assert_eq!(closed(&mut client), (ClientCloseReason::PingTimeout, None));
        assert_eq!(client.poll_transmit(), Some(ClientTransmit::WsClose));
    }

    #[test]
    fn v3_client_ping() {
        let t0 = Instant::now();
        let mut client = Client::new(
            ClientConfig {
                upgrade: false,
                version: ProtocolVersion::V3,
                ..config()
            },
            t0,
        )
        .unwrap();
        let req = http(&mut client);
        assert_eq!(req.target, "/engine.io/?EIO=3&transport=polling");
        let open =
            r#"0{"sid":"abc","upgrades":["websocket"],"pingInterval":300,"pingTimeout":200}"#;
        respond(&mut client, &req, &format!("{}:{open}", open.len()), t0);
        let poll = http(&mut client);
        assert_eq!(client.poll_timeout(), Some(ms(t0, 300)));
        client.handle_timeout(ms(t0, 300));
        let ping = http(&mut client);
        assert_eq!(body(&ping), "1:2");
        assert_eq!(client.poll_timeout(), Some(ms(t0, 500)));
        respond(&mut client, &ping, "ok", ms(t0, 310));
        respond(&mut client, &poll, "1:3", ms(t0, 320));
        assert_eq!(client.poll_timeout(), Some(ms(t0, 620)));
        let _poll = http(&mut client);
        client.handle_timeout(ms(t0, 620));
        assert_eq!(body(&http(&mut client)), "1:2");
        // No pong.
        client.handle_timeout(ms(t0, 819));
        assert!(client.is_open());
        client.handle_timeout(ms(t0, 820));
        assert_eq!(closed(&mut client), (ClientCloseReason::PingTimeout, None));
    }

    #[test]
    fn close_over_polling() {
        let t0 = Instant::now();
        let (mut client, _poll) = polling_client(t0);
        client.send(MessageData::Text("bye".into())).unwrap();
        client.close();
        assert_eq!(
            client.send(MessageData::Text("late".into())),
            Err(ClientSendError::Closed)
        );
        assert_eq!(client.poll_event(), None, "closed once the packet is out");
        let post = http(&mut client);
        assert_eq!(body(&post), "4bye\u{1e}1");
        assert_eq!(closed(&mut client), (ClientCloseReason::ForcedClose, None));
        assert!(client.is_closed());
        assert_eq!(client.poll_transmit(), None);
        client.close();
        assert_eq!(client.poll_event(), None);

        // With a POST in flight, the close waits for it.
        let (mut client, _poll) = polling_client(t0);
        client.send(MessageData::Text("first".into())).unwrap();
        let first = http(&mut client);
        client.close();
        assert_eq!(client.poll_transmit(), None);
        respond(&mut client, &first, "ok", t0);
        assert_eq!(body(&http(&mut client)), "1");
        assert_eq!(closed(&mut client), (ClientCloseReason::ForcedClose, None));

        // Before the handshake: closed at once, nothing to send.
        let mut client = Client::new(config(), t0).unwrap();
        client.close();
        assert_eq!(closed(&mut client), (ClientCloseReason::ForcedClose, None));
        assert_eq!(client.poll_transmit(), None);
    }

    #[test]
    fn close_over_websocket() {
        let t0 = Instant::now();
        let mut client = ws_client(t0);
        client.send(MessageData::Text("bye".into())).unwrap();
        client.close();
        assert_eq!(ws_send(&mut client), Message::text("4bye"));
        assert_eq!(ws_send(&mut client), Message::text("1"));
        assert_eq!(client.poll_transmit(), Some(ClientTransmit::WsClose));
        assert_eq!(closed(&mut client), (ClientCloseReason::ForcedClose, None));
        client.ws_closed(t0);
        assert_eq!(client.poll_event(), None);

        // Closing during an upgrade abandons the probe.
        let (mut client, _poll) = upgrading_client(t0);
        client.ws_opened(t0);
        let _ = ws_send(&mut client);
        client.ws_message(Message::text("3probe"), t0);
        client.close();
        assert_eq!(client.poll_transmit(), Some(ClientTransmit::WsClose));
        assert_eq!(body(&http(&mut client)), "1");
        assert_eq!(closed(&mut client), (ClientCloseReason::ForcedClose, None));
    }

    /// An extra header with a line break does not split the requests.
    #[test]
    fn extra_headers_that_would_split_a_request_are_left_out() {
        let t0 = Instant::now();
        let mut config = config();
        config
            .extra_headers
            .push(("Cookie".into(), "a=b\r\nX-Injected: 1".into()));
        config.extra_headers.push(("X-Ok".into(), "yes".into()));
        let mut client = Client::new(config, t0).unwrap();
        let handshake = http(&mut client);
        let bytes = handshake.encode();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(!text.contains("X-Injected"), "{text:?}");
        assert!(text.contains("\r\nX-Ok: yes\r\n"), "{text:?}");
    }

    #[test]
    fn close_before_the_probe_connects_opens_no_websocket() {
        let t0 = Instant::now();
        let mut client = Client::new(config(), t0).unwrap();
        let handshake = http(&mut client);
        respond(&mut client, &handshake, OPEN, t0);
        // The probe's connect and the first poll wait to be taken; the
        // application closes first: the upgrade is abandoned, so its
        // WebSocket is never opened.
        client.close();
        let transmits: Vec<ClientTransmit> =
            std::iter::from_fn(|| client.poll_transmit()).collect();
        assert!(
            !transmits
                .iter()
                .any(|t| matches!(t, ClientTransmit::WsConnect(_) | ClientTransmit::WsClose)),
            "{transmits:?}"
        );
        let Some(ClientTransmit::Http(post)) = transmits.last() else {
            panic!("{transmits:?}")
        };
        assert_eq!(body(post), "1");
        assert_eq!(closed(&mut client), (ClientCloseReason::ForcedClose, None));

        // Once the connect was taken, the probe's WebSocket is closed.
        let (mut client, _poll) = upgrading_client(t0);
        client.close();
        assert_eq!(client.poll_transmit(), Some(ClientTransmit::WsClose));
        assert_eq!(body(&http(&mut client)), "1");
    }

    #[test]
    fn server_close() {
        let t0 = Instant::now();
        let (mut client, poll) = polling_client(t0);
        respond(&mut client, &poll, "4last\u{1e}1\u{1e}4ignored", t0);
        assert!(matches!(client.poll_event(), Some(ClientEvent::Message(_))));
        assert_eq!(
            client.poll_event(),
            Some(ClientEvent::Closed {
                reason: ClientCloseReason::TransportClose,
                error: None
            })
        );
        assert_eq!(client.poll_event(), None);
        assert_eq!(client.poll_transmit(), None);

        let mut client = ws_client(t0);
        client.ws_message(Message::text("1"), t0);
        assert_eq!(
            closed(&mut client),
            (ClientCloseReason::TransportClose, None)
        );
        assert_eq!(client.poll_transmit(), Some(ClientTransmit::WsClose));

        let mut client = ws_client(t0);
        client.ws_message(Message::Close(None), t0);
        assert_eq!(
            closed(&mut client),
            (ClientCloseReason::TransportClose, None)
        );
        assert_eq!(client.poll_transmit(), None);
    }

    #[test]
    fn http_failures() {
        let t0 = Instant::now();
        let (mut client, poll) = polling_client(t0);
        client.handle_http_response(poll.id, 400, Bytes::from_static(b"{}"), t0);
        assert_eq!(
            closed(&mut client),
            (
                ClientCloseReason::TransportError,
                Some(ClientError::HttpStatus { status: 400 })
            )
        );

        let (mut client, _poll) = polling_client(t0);
        client.send(MessageData::Text("x".into())).unwrap();
        let post = http(&mut client);
        client.handle_http_response(post.id, 500, Bytes::new(), t0);
        assert_eq!(
            closed(&mut client),
            (
                ClientCloseReason::TransportError,
                Some(ClientError::HttpStatus { status: 500 })
            )
        );

        let (mut client, poll) = polling_client(t0);
        client.handle_http_error(RequestId(999), "refused", t0);
        assert!(client.is_open(), "unknown ids are ignored");
        client.handle_http_error(poll.id, "connection reset", t0);
        assert_eq!(
            closed(&mut client),
            (
                ClientCloseReason::TransportError,
                Some(ClientError::RequestFailed {
                    method: HttpMethod::Get,
                    reason: "connection reset".into(),
                })
            )
        );

        // The handshake itself.
        let mut client = Client::new(config(), t0).unwrap();
        let req = http(&mut client);
        client.handle_http_response(req.id, 403, Bytes::new(), t0);
        assert_eq!(
            closed(&mut client),
            (
                ClientCloseReason::TransportError,
                Some(ClientError::HttpStatus { status: 403 })
            )
        );
    }

    #[test]
    fn garbage_closes_with_a_reason() {
        let t0 = Instant::now();
        let (mut client, poll) = polling_client(t0);
        respond(&mut client, &poll, "4ok\u{1e}9x", t0);
        assert!(matches!(client.poll_event(), Some(ClientEvent::Message(_))));
        assert_eq!(
            closed(&mut client),
            (
                ClientCloseReason::TransportError,
                Some(ClientError::Decode(DecodeError::UnknownPacketType('9')))
            )
        );

        let (mut client, poll) = polling_client(t0);
        client.handle_http_response(poll.id, 200, Bytes::from_static(b"4\xff"), t0);
        assert_eq!(
            closed(&mut client),
            (
                ClientCloseReason::TransportError,
                Some(ClientError::Decode(DecodeError::InvalidUtf8))
            )
        );

        let mut client = Client::new(config(), t0).unwrap();
        let req = http(&mut client);
        respond(&mut client, &req, "0{not json", t0);
        assert!(matches!(
            closed(&mut client),
            (
                ClientCloseReason::TransportError,
                Some(ClientError::Decode(DecodeError::InvalidOpen(_)))
            )
        ));

        // Over the limit.
        let mut client = Client::new(
            ClientConfig {
                max_payload: 8,
                upgrade: false,
                ..config()
            },
            t0,
        )
        .unwrap();
        let req = http(&mut client);
        respond(&mut client, &req, OPEN, t0);
        assert_eq!(
            closed(&mut client),
            (
                ClientCloseReason::TransportError,
                Some(ClientError::TooLarge {
                    size: OPEN.len(),
                    limit: 8
                })
            )
        );

        let mut client = ws_client(t0);
        client.ws_message(Message::text("x"), t0);
        assert!(matches!(
            closed(&mut client),
            (
                ClientCloseReason::TransportError,
                Some(ClientError::Decode(_))
            )
        ));
        assert_eq!(client.poll_transmit(), Some(ClientTransmit::WsClose));
    }

    #[test]
    fn send_buffer_is_bounded() {
        let t0 = Instant::now();
        let mut client = Client::new(
            ClientConfig {
                max_buffered_packets: 2,
                ..config()
            },
            t0,
        )
        .unwrap();
        client.send(MessageData::Text("1".into())).unwrap();
        client.send(MessageData::Text("2".into())).unwrap();
        assert_eq!(
            client.send(MessageData::Text("3".into())),
            Err(ClientSendError::BufferFull)
        );
        assert_eq!(client.queued(), 2);
        assert!(!client.is_closed());
    }

    #[test]
    fn huge_heartbeat_values_do_not_overflow() {
        let t0 = Instant::now();
        let mut client = Client::new(config(), t0).unwrap();
        let req = http(&mut client);
        let open = format!(
            r#"0{{"sid":"a b/é","pingInterval":{max},"pingTimeout":{max}}}"#,
            max = u64::MAX
        );
        respond(&mut client, &req, &open, t0);
        assert!(client.is_open());
        let poll = http(&mut client);
        assert_eq!(
            poll.target,
            "/engine.io/?EIO=4&transport=polling&sid=a%20b%2F%C3%A9"
        );
        client.handle_timeout(ms(t0, 1_000_000));
        assert!(client.is_open());
    }

    /// Our client against our server, in memory.
    struct Net {
        server: Server,
        client: Client,
        held: HashMap<PollId, RequestId>,
        conn: Option<ConnId>,
        server_events: Vec<ServerEvent>,
        client_events: Vec<ClientEvent>,
        requests: Vec<String>,
    }

    const UPGRADE_HEADERS: [(&str, &str); 2] =
        [("Upgrade", "websocket"), ("Connection", "Upgrade")];

    impl Net {
        fn new(client: ClientConfig, server: ServerConfig, now: Instant) -> Self {
            Net {
                server: Server::new(server),
                client: Client::new(client, now).unwrap(),
                held: HashMap::new(),
                conn: None,
                server_events: Vec::new(),
                client_events: Vec::new(),
                requests: Vec::new(),
            }
        }

        /// Moves everything until both sides are quiet.
        fn pump(&mut self, now: Instant) {
            loop {
                let mut progress = false;
                while let Some(transmit) = self.client.poll_transmit() {
                    progress = true;
                    self.carry_client(transmit, now);
                }
                while let Some(transmit) = self.server.poll_transmit() {
                    progress = true;
                    self.carry_server(transmit, now);
                }
                self.server_events
                    .extend(std::iter::from_fn(|| self.server.poll_event()));
                self.client_events
                    .extend(std::iter::from_fn(|| self.client.poll_event()));
                if !progress {
                    break;
                }
            }
        }

        fn carry_client(&mut self, transmit: ClientTransmit, now: Instant) {
            match transmit {
                ClientTransmit::Http(req) => {
                    self.requests.push(format!(
                        "{} {}",
                        req.method,
                        String::from_utf8_lossy(&req.body)
                    ));
                    let bytes = req.encode();
                    let (head, len) = Request::parse(&bytes, &Limits::default()).unwrap().unwrap();
                    let body = Bytes::copy_from_slice(&bytes[len..]);
                    match self.server.handle_request(&head, body, now) {
                        RequestOutcome::Respond(r) => self
                            .client
                            .handle_http_response(req.id, r.status, r.body, now),
                        RequestOutcome::Hold(poll) => {
                            self.held.insert(poll, req.id);
                        }
                        other => panic!("{other:?}"),
                    }
                }
                ClientTransmit::WsConnect(connect) => {
                    self.requests.push("WS".into());
                    let head = Request {
                        method: "GET".into(),
                        target: connect.url.target,
                        version: 1,
                        headers: Headers(
                            UPGRADE_HEADERS
                                .iter()
                                .map(|(n, v)| Header {
                                    name: (*n).into(),
                                    value: (*v).into(),
                                })
                                .collect(),
                        ),
                    };
                    match self.server.handle_request(&head, Bytes::new(), now) {
                        RequestOutcome::AcceptWebSocket { conn } => {
                            self.conn = Some(conn);
                            self.client.ws_opened(now);
                        }
                        _ => self.client.ws_closed(now),
                    }
                }
                ClientTransmit::WsSend(message) => {
                    let conn = self.conn.expect("a WebSocket");
                    self.server.ws_message(conn, message, now);
                }
                ClientTransmit::WsClose => {
                    if let Some(conn) = self.conn.take() {
                        self.server.ws_closed(conn, now);
                    }
                }
            }
        }

        fn carry_server(&mut self, transmit: Transmit, now: Instant) {
            match transmit {
                Transmit::PollResponse { poll, response } => {
                    let id = self.held.remove(&poll).expect("a held poll");
                    self.client
                        .handle_http_response(id, response.status, response.body, now);
                }
                Transmit::WsSend { conn, message } => {
                    if self.conn == Some(conn) {
                        self.client.ws_message(message, now);
                    }
                }
                Transmit::WsClose { conn } => {
                    if self.conn == Some(conn) {
                        self.conn = None;
                        self.client.ws_closed(now);
                    }
                }
            }
        }

        fn sid(&self) -> String {
            self.client.sid().unwrap().to_owned()
        }

        fn server_messages(&mut self) -> Vec<MessageData> {
            let mut out = Vec::new();
            self.server_events.retain(|e| match e {
                ServerEvent::Message { data, .. } => {
                    out.push(data.clone());
                    false
                }
                _ => true,
            });
            out
        }

        fn client_messages(&mut self) -> Vec<MessageData> {
            let mut out = Vec::new();
            self.client_events.retain(|e| match e {
                ClientEvent::Message(data) => {
                    out.push(data.clone());
                    false
                }
                _ => true,
            });
            out
        }
    }

    fn server_config(version: ProtocolVersion) -> ServerConfig {
        ServerConfig {
            ping_interval: Duration::from_millis(300),
            ping_timeout: Duration::from_millis(200),
            allow_eio3: version == ProtocolVersion::V3,
            ..ServerConfig::default()
        }
    }

    fn text(s: &'static str) -> MessageData {
        MessageData::Text(s.into())
    }

    #[test]
    fn against_our_server_with_upgrade() {
        for version in [ProtocolVersion::V4, ProtocolVersion::V3] {
            let t0 = Instant::now();
            let client_config = ClientConfig {
                version,
                timestamp_requests: true,
                ..config()
            };
            let mut net = Net::new(client_config, server_config(version), t0);
            // Queued before the handshake completes.
            net.client.send(text("early")).unwrap();
            net.pump(t0);
            let sid = net.sid();
            assert!(matches!(
                net.server_events.first(),
                Some(ServerEvent::Open { sid: s, version: v, transport: TransportKind::Polling, .. })
                    if **s == *sid && *v == version
            ));
            assert_eq!(
                net.client_events.first(),
                Some(&ClientEvent::Open {
                    sid: sid.clone(),
                    transport: TransportKind::Polling,
                    handshake: net.client.handshake().unwrap().clone(),
                })
            );
            // The probe succeeded at once (the server released the poll
            // with a noop), and the session is on the WebSocket.
            assert!(
                net.client_events.contains(&ClientEvent::Upgraded),
                "{version}"
            );
            assert_eq!(net.client.transport(), TransportKind::WebSocket);
            assert_eq!(net.server_messages(), [text("early")]);

            // Messages both ways, over the WebSocket.
            net.client.send(text("hello")).unwrap();
            net.client
                .send(MessageData::Binary(vec![0, 1, 255].into()))
                .unwrap();
            net.pump(t0);
            assert_eq!(
                net.server_messages(),
                [text("hello"), MessageData::Binary(vec![0, 1, 255].into())]
            );
            net.server.send(&sid, text("hi")).unwrap();
            net.server
                .send(&sid, MessageData::Binary(vec![9].into()))
                .unwrap();
            net.pump(t0);
            assert_eq!(
                net.client_messages(),
                [text("hi"), MessageData::Binary(vec![9].into())]
            );

            // Heartbeats keep the session up for a while.
            for step in 1..=20u64 {
                let now = ms(t0, step * 100);
                net.server.handle_timeout(now);
                net.client.handle_timeout(now);
                net.pump(now);
            }
            assert!(net.client.is_open(), "{version}: {:?}", net.client_events);
            assert_eq!(net.server.session_count(), 1);

            // The client closes.
            net.client.close();
            net.pump(ms(t0, 2100));
            assert!(net.client.is_closed());
            assert_eq!(net.server.session_count(), 0);
            assert!(matches!(
                net.client_events.last(),
                Some(ClientEvent::Closed {
                    reason: ClientCloseReason::ForcedClose,
                    error: None
                })
            ));
            assert!(
                net.server_events
                    .iter()
                    .any(|e| matches!(e, ServerEvent::Close { .. }))
            );
        }
    }

    #[test]
    fn against_our_server_with_traffic_during_the_upgrade() {
        let t0 = Instant::now();
        let mut net = Net::new(config(), server_config(ProtocolVersion::V4), t0);
        // The handshake only.
        let handshake = http(&mut net.client);
        net.carry_client(ClientTransmit::Http(handshake), t0);
        let sid = net.sid();
        // Start the probe and the poll, but hold the probe's answer back.
        let Some(ClientTransmit::WsConnect(connect)) = net.client.poll_transmit() else {
            panic!()
        };
        let poll = net.client.poll_transmit().unwrap();
        net.carry_client(poll, t0);
        net.client.send(text("1")).unwrap();
        net.server.send(&sid, text("a")).unwrap();
        net.pump(t0);
        net.carry_client(ClientTransmit::WsConnect(connect), t0);
        net.client.send(text("2")).unwrap();
        net.server.send(&sid, text("b")).unwrap();
        net.pump(t0);
        net.client.send(text("3")).unwrap();
        net.server.send(&sid, text("c")).unwrap();
        net.pump(t0);
        assert_eq!(net.client.transport(), TransportKind::WebSocket);
        assert_eq!(net.server_messages(), [text("1"), text("2"), text("3")]);
        assert_eq!(net.client_messages(), [text("a"), text("b"), text("c")]);
        assert!(net.requests.contains(&"WS".to_string()));

        // The server closes.
        net.server.close(&sid);
        net.pump(t0);
        assert!(matches!(
            net.client_events.last(),
            Some(ClientEvent::Closed {
                reason: ClientCloseReason::TransportClose,
                ..
            })
        ));
    }

    #[test]
    fn against_our_server_polling_only() {
        for version in [ProtocolVersion::V4, ProtocolVersion::V3] {
            let t0 = Instant::now();
            let client_config = ClientConfig {
                version,
                websocket: false,
                ..config()
            };
            let mut net = Net::new(client_config, server_config(version), t0);
            net.pump(t0);
            let sid = net.sid();
            net.client.send(text("x")).unwrap();
            net.client
                .send(MessageData::Binary(vec![1, 2, 3].into()))
                .unwrap();
            net.server
                .send(&sid, MessageData::Binary(vec![4].into()))
                .unwrap();
            net.server.send(&sid, text("y")).unwrap();
            net.pump(t0);
            assert_eq!(
                net.server_messages(),
                [text("x"), MessageData::Binary(vec![1, 2, 3].into())]
            );
            assert_eq!(
                net.client_messages(),
                [MessageData::Binary(vec![4].into()), text("y")]
            );
            for step in 1..=20u64 {
                let now = ms(t0, step * 100);
                net.server.handle_timeout(now);
                net.client.handle_timeout(now);
                net.pump(now);
            }
            assert!(net.client.is_open(), "{version}: {:?}", net.client_events);
            // The server closes: its held poll answers `close`.
            net.server.close(&sid);
            net.pump(ms(t0, 2100));
            assert!(matches!(
                net.client_events.last(),
                Some(ClientEvent::Closed {
                    reason: ClientCloseReason::TransportClose,
                    error: None
                })
            ));
        }
    }

    #[test]
    fn against_our_server_websocket_only() {
        let t0 = Instant::now();
        let client_config = ClientConfig {
            polling: false,
            ..config()
        };
        let mut net = Net::new(client_config, server_config(ProtocolVersion::V4), t0);
        net.pump(t0);
        let sid = net.sid();
        assert_eq!(net.client.transport(), TransportKind::WebSocket);
        net.client.send(text("ws")).unwrap();
        net.server.send(&sid, text("back")).unwrap();
        net.pump(t0);
        assert_eq!(net.server_messages(), [text("ws")]);
        assert_eq!(net.client_messages(), [text("back")]);
        // The server stops answering: the client notices.
        net.conn = None;
        net.client.handle_timeout(ms(t0, 500));
        assert!(matches!(
            net.client.poll_event(),
            Some(ClientEvent::Closed {
                reason: ClientCloseReason::PingTimeout,
                ..
            })
        ));
    }

    /// A network that delivers in any order what may be reordered (HTTP
    /// requests and answers on separate connections) and in order what may
    /// not (one WebSocket's messages each way).
    struct Sim {
        server: Server,
        client: Client,
        now: Instant,
        requests: Vec<HttpRequest>,
        answers: Vec<(RequestId, u16, Bytes)>,
        held: HashMap<PollId, RequestId>,
        connects: Vec<WsConnect>,
        /// The WebSocket: server conn, and messages each way.
        conn: Option<ConnId>,
        client_open: bool,
        to_server: VecDeque<Option<Message>>,
        to_client: VecDeque<Option<Message>>,
        sid: Option<String>,
        sent_by_client: usize,
        sent_by_server: usize,
        got_by_server: Vec<String>,
        got_by_client: Vec<String>,
        server_closed: bool,
        client_closed: bool,
    }

    impl Sim {
        fn take_transmits(&mut self) {
            while let Some(t) = self.client.poll_transmit() {
                match t {
                    ClientTransmit::Http(req) => self.requests.push(req),
                    ClientTransmit::WsConnect(c) => self.connects.push(c),
                    ClientTransmit::WsSend(m) => self.to_server.push_back(Some(m)),
                    ClientTransmit::WsClose => self.to_server.push_back(None),
                }
            }
            while let Some(t) = self.server.poll_transmit() {
                match t {
                    Transmit::PollResponse { poll, response } => {
                        let id = self.held.remove(&poll).unwrap();
                        self.answers.push((id, response.status, response.body));
                    }
                    Transmit::WsSend { conn, message } => {
                        if self.conn == Some(conn) {
                            self.to_client.push_back(Some(message));
                        }
                    }
                    Transmit::WsClose { conn } => {
                        if self.conn == Some(conn) {
                            self.to_client.push_back(None);
                        }
                    }
                }
            }
            while let Some(e) = self.client.poll_event() {
                match e {
                    ClientEvent::Open { sid, .. } => self.sid = Some(sid),
                    ClientEvent::Message(data) => self.got_by_client.push(sim_key(&data)),
                    ClientEvent::Closed { .. } => self.client_closed = true,
                    _ => {}
                }
            }
            while let Some(e) = self.server.poll_event() {
                match e {
                    ServerEvent::Message { data, .. } => self.got_by_server.push(sim_key(&data)),
                    ServerEvent::Close { .. } => self.server_closed = true,
                    _ => {}
                }
            }
        }

        fn step(&mut self, choice: u8, pick: usize) {
            let now = self.now;
            match choice % 9 {
                0 if !self.requests.is_empty() => {
                    let req = self.requests.remove(pick % self.requests.len());
                    let bytes = req.encode();
                    let (head, len) = Request::parse(&bytes, &Limits::default()).unwrap().unwrap();
                    let body = Bytes::copy_from_slice(&bytes[len..]);
                    match self.server.handle_request(&head, body, now) {
                        RequestOutcome::Respond(r) => self.answers.push((req.id, r.status, r.body)),
                        RequestOutcome::Hold(poll) => {
                            self.held.insert(poll, req.id);
                        }
                        other => panic!("{other:?}"),
                    }
                }
                1 if !self.answers.is_empty() => {
                    let (id, status, body) = self.answers.remove(pick % self.answers.len());
                    self.client.handle_http_response(id, status, body, now);
                }
                2 if !self.connects.is_empty() && pick % 4 == 0 => {
                    // Refused.
                    self.connects.remove(0);
                    self.client.ws_closed(now);
                }
                2 if !self.connects.is_empty() => {
                    let connect = self.connects.remove(0);
                    let head = Request {
                        method: "GET".into(),
                        target: connect.url.target,
                        version: 1,
                        headers: Headers(
                            UPGRADE_HEADERS
                                .iter()
                                .map(|(n, v)| Header {
                                    name: (*n).into(),
                                    value: (*v).into(),
                                })
                                .collect(),
                        ),
                    };
                    match self.server.handle_request(&head, Bytes::new(), now) {
                        RequestOutcome::AcceptWebSocket { conn } => {
                            self.conn = Some(conn);
                            self.to_server.clear();
                            self.to_client.clear();
                            self.client_open = true;
                            self.client.ws_opened(now);
                        }
                        _ => self.client.ws_closed(now),
                    }
                }
                3 if !self.to_server.is_empty() => match self.to_server.pop_front().unwrap() {
                    Some(m) => {
                        if let Some(conn) = self.conn {
                            self.server.ws_message(conn, m, now);
                        }
                    }
                    None => {
                        if let Some(conn) = self.conn.take() {
                            self.server.ws_closed(conn, now);
                            self.to_client.push_back(None);
                        }
                    }
                },
                4 if !self.to_client.is_empty() => match self.to_client.pop_front().unwrap() {
                    Some(m) => self.client.ws_message(m, now),
                    None => {
                        if self.client_open {
                            self.client_open = false;
                            self.conn = None;
                            self.client.ws_closed(now);
                        }
                    }
                },
                5 if self.client.is_open() => {
                    let _ = self
                        .client
                        .send(sim_message('c', self.sent_by_client, pick))
                        .map(|()| self.sent_by_client += 1);
                }
                6 => {
                    if let Some(sid) = self.sid.clone() {
                        if self
                            .server
                            .send(&sid, sim_message('s', self.sent_by_server, pick))
                            .is_ok()
                        {
                            self.sent_by_server += 1;
                        }
                    }
                }
                7 => {
                    self.now += Duration::from_millis(pick as u64 % 300);
                    self.server.handle_timeout(self.now);
                    self.client.handle_timeout(self.now);
                }
                8 if pick % 5 == 0 => {
                    // The WebSocket breaks.
                    if let Some(conn) = self.conn.take() {
                        self.server.ws_closed(conn, now);
                    }
                    if self.client_open {
                        self.client_open = false;
                        self.to_server.clear();
                        self.to_client.clear();
                        self.client.ws_closed(now);
                    }
                }
                8 if pick % 37 == 1 => self.client.close(),
                8 if pick % 37 == 2 => {
                    if let Some(sid) = self.sid.clone() {
                        self.server.close(&sid);
                    }
                }
                _ => {}
            }
            self.take_transmits();
        }
    }

    /// Message `n` from `side`: text (with characters of 1 to 4 UTF-8
    /// bytes, 1 or 2 UTF-16 units) or binary, of varying length.
    fn sim_message(side: char, n: usize, pick: usize) -> MessageData {
        let padding = "é€😀x".repeat(pick % 7);
        let text = format!("{side}{n}:{padding}");
        if pick % 3 == 0 {
            MessageData::Binary(text.into_bytes().into())
        } else {
            MessageData::Text(text.into())
        }
    }

    /// The `{side}{n}` a message starts with.
    fn sim_key(data: &MessageData) -> String {
        let text = match data {
            MessageData::Text(t) => t.to_string(),
            MessageData::Binary(b) => String::from_utf8(b.to_vec()).unwrap(),
        };
        text.split(':').next().unwrap().to_owned()
    }

    proptest! {
        #[test]
        fn any_delivery_order_keeps_messages_in_order(
            steps in proptest::collection::vec((any::<u8>(), any::<usize>()), 0..200),
            v3 in any::<bool>(),
            force_base64 in any::<bool>(),
            max_payload in 20usize..200,
        ) {
            let t0 = Instant::now();
            let version = if v3 { ProtocolVersion::V3 } else { ProtocolVersion::V4 };
            let mut sim = Sim {
                server: Server::new(ServerConfig {
                    ping_interval: Duration::from_secs(2),
                    ping_timeout: Duration::from_secs(2),
                    allow_eio3: true,
                    max_payload,
                    ..ServerConfig::default()
                }),
                client: Client::new(ClientConfig { version, force_base64, ..config() }, t0).unwrap(),
                now: t0,
                requests: Vec::new(),
                answers: Vec::new(),
                held: HashMap::new(),
                connects: Vec::new(),
                conn: None,
                client_open: false,
                to_server: VecDeque::new(),
                to_client: VecDeque::new(),
                sid: None,
                sent_by_client: 0,
                sent_by_server: 0,
                got_by_server: Vec::new(),
                got_by_client: Vec::new(),
                server_closed: false,
                client_closed: false,
            };
            sim.take_transmits();
            for (choice, pick) in steps {
                sim.step(choice, pick);
            }
            // Then deliver everything, in order.
            for _ in 0..200 {
                for choice in [0u8, 1, 2, 3, 4] {
                    sim.step(choice, 0);
                }
            }
            let expected_server: Vec<String> = (0..sim.got_by_server.len()).map(|i| format!("c{i}")).collect();
            prop_assert_eq!(&sim.got_by_server, &expected_server, "client to server");
            let expected_client: Vec<String> = (0..sim.got_by_client.len()).map(|i| format!("s{i}")).collect();
            prop_assert_eq!(&sim.got_by_client, &expected_client, "server to client");
            if !sim.server_closed && !sim.client_closed {
                prop_assert_eq!(sim.got_by_server.len(), sim.sent_by_client, "lost client messages");
                prop_assert_eq!(sim.got_by_client.len(), sim.sent_by_server, "lost server messages");
            }
        }
    }

    /// One input to a client.
    #[derive(Debug, Clone)]
    enum Input {
        Get(u16, Vec<u8>),
        Post(u16),
        HttpError(bool),
        WsOpened,
        WsText(String),
        WsBinary(Vec<u8>),
        WsClosed,
        Send(bool),
        Close,
        Timeout(u64),
    }

    fn arb_input() -> impl Strategy<Value = Input> {
        let body = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..48),
            "[0-6b\\x1e:A-Za-z0-9{}\",]{0,32}".prop_map(String::into_bytes),
            Just(OPEN.as_bytes().to_vec()),
            Just(b"3probe".to_vec()),
        ];
        prop_oneof![
            (prop_oneof![Just(200u16), any::<u16>()], body).prop_map(|(s, b)| Input::Get(s, b)),
            prop_oneof![Just(200u16), any::<u16>()].prop_map(Input::Post),
            any::<bool>().prop_map(Input::HttpError),
            Just(Input::WsOpened),
            prop_oneof![
                any::<String>(),
                "[0-6b][0-9a-z{}\":,]{0,16}",
                Just("3probe".to_string()),
                Just(OPEN_WS.to_string()),
            ]
            .prop_map(Input::WsText),
            proptest::collection::vec(any::<u8>(), 0..16).prop_map(Input::WsBinary),
            Just(Input::WsClosed),
            any::<bool>().prop_map(Input::Send),
            Just(Input::Close),
            (0u64..2_000).prop_map(Input::Timeout),
        ]
    }

    proptest! {
        #[test]
        fn random_input_never_panics(
            inputs in proptest::collection::vec(arb_input(), 0..24),
            v3 in any::<bool>(),
            polling in any::<bool>(),
        ) {
            let t0 = Instant::now();
            let version = if v3 { ProtocolVersion::V3 } else { ProtocolVersion::V4 };
            let mut client = Client::new(
                ClientConfig { version, polling, max_payload: 40, ..config() },
                t0,
            ).unwrap();
            let mut gets = Vec::new();
            let mut posts = Vec::new();
            let mut closes = 0;
            let mut now = t0;
            for input in inputs {
                while let Some(transmit) = client.poll_transmit() {
                    if let ClientTransmit::Http(req) = transmit {
                        match req.method {
                            HttpMethod::Get => gets.push(req.id),
                            HttpMethod::Post => posts.push(req.id),
                        }
                    }
                }
                match input {
                    Input::Get(status, body) => {
                        if let Some(id) = gets.pop() {
                            client.handle_http_response(id, status, body.into(), now);
                        }
                    }
                    Input::Post(status) => {
                        if let Some(id) = posts.pop() {
                            client.handle_http_response(id, status, Bytes::from_static(b"ok"), now);
                        }
                    }
                    Input::HttpError(get) => {
                        let id = if get { gets.pop() } else { posts.pop() };
                        if let Some(id) = id {
                            client.handle_http_error(id, "failed", now);
                        }
                    }
                    Input::WsOpened => client.ws_opened(now),
                    Input::WsText(text) => client.ws_message(Message::text(text), now),
                    Input::WsBinary(data) => client.ws_message(Message::binary(data), now),
                    Input::WsClosed => client.ws_closed(now),
                    Input::Send(binary) => {
                        let data = if binary {
                            MessageData::Binary(vec![1, 2].into())
                        } else {
                            MessageData::Text("m".into())
                        };
                        let _ = client.send(data);
                    }
                    Input::Close => client.close(),
                    Input::Timeout(step) => {
                        now += Duration::from_millis(step);
                        client.handle_timeout(now);
                    }
                }
                while let Some(event) = client.poll_event() {
                    if matches!(event, ClientEvent::Closed { .. }) {
                        closes += 1;
                    }
                }
                prop_assert!(closes <= 1);
                prop_assert_eq!(closes == 1, client.is_closed());
                if client.is_closed() {
                    // After the close, at most a WebSocket close and the
                    // last packets of a forced close.
                    while let Some(transmit) = client.poll_transmit() {
                        prop_assert!(!matches!(transmit, ClientTransmit::WsConnect(_)));
                    }
                    prop_assert_eq!(client.poll_timeout(), None);
                }
            }
        }
    }
}
