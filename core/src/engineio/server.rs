//! The Engine.IO server, sans IO: sessions over HTTP long-polling and
//! WebSocket, the upgrade between them, and the heartbeat.
//!
//! A [`Server`] is a state machine in the style of quinn-proto. The adapter
//! feeds it HTTP requests ([`Server::handle_request`]), WebSocket messages
//! ([`Server::ws_message`], [`Server::ws_closed`]), aborted polls
//! ([`Server::poll_aborted`]), commands ([`Server::send`],
//! [`Server::close`]) and time ([`Server::handle_timeout`]); it polls out
//! application events ([`Server::poll_event`]), things to write
//! ([`Server::poll_transmit`]) and the next deadline
//! ([`Server::poll_timeout`]). Nothing here reads a clock or touches a
//! socket.
//!
//! # Polls
//!
//! A `GET` poll with nothing queued is parked: [`RequestOutcome::Hold`]
//! hands out a [`PollId`], and the adapter keeps the HTTP connection open
//! until a [`Transmit::PollResponse`] for that id comes out of
//! [`Server::poll_transmit`]. It is released as soon as something is queued
//! for the session (a message from [`Server::send`], a heartbeat ping), when
//! an upgrade probe succeeds (with a `noop`), or when the session closes
//! (with a `close` packet). What was queued before the adapter next calls
//! `poll_transmit` goes out in that one response, up to `max_payload`
//! (at least one packet); the rest waits for the next poll.
//!
//! # WebSockets
//!
//! For a request with `transport=websocket` the server answers
//! [`RequestOutcome::AcceptWebSocket`]; the adapter performs the RFC 6455
//! handshake, then writes the [`Transmit::WsSend`] messages for that
//! connection in order. A WebSocket-first session is created at once: its
//! `open` packet is the first `WsSend` for the connection (queued before
//! `handle_request` returns), so the adapter writes its 101 response and
//! then that message. If the handshake fails, the adapter calls
//! [`Server::ws_closed`] and the session closes (`transport close`).

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{
    EncodedPayload, MessageData, OpenPacket, PROBE, Packet, PayloadKind, PayloadLimits,
    ProtocolVersion, Shard, decode_payload, encode_payload, new_sid,
};
use crate::connections::WarningThrottle;
use crate::http::{self, Request, query_param};
use crate::ids::IdMap;
use crate::ws::Message;

/// Which origins get CORS headers (see [`Cors`] for the headers sent).
///
/// ```
/// use switchboard_core::engineio::{AllowedOrigins, Cors, ServerConfig};
/// let cors = Cors {
///     origins: AllowedOrigins::List(vec!["https://app.example".into()]),
///     credentials: true,
/// };
/// let config = ServerConfig { cors, ..ServerConfig::default() };
/// assert_eq!(ServerConfig::default().cors.origins, AllowedOrigins::Any);
/// assert!(config.cors.credentials);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// Any origin (`Access-Control-Allow-Origin: *`, or the request's origin
    /// echoed when credentials are allowed).
    Any,
    /// Only these origins (exact match), echoed back.
    List(Vec<String>),
}

/// CORS policy, applied to every response.
///
/// ```
/// # use std::time::{Duration, Instant};
/// # use bytes::Bytes;
/// # use switchboard_core::engineio::*;
/// # use switchboard_core::http::{Limits, Request};
/// # use switchboard_core::ws::Message;
/// # fn request(method: &str, target: &str, headers: &str) -> Request {
/// #     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
/// #     Request::parse(head.as_bytes(), &Limits::default()).unwrap().unwrap().0
/// # }
/// # fn get(target: &str) -> Request { request("GET", target, "") }
/// # fn post(target: &str) -> Request { request("POST", target, "") }
/// # fn upgrade(target: &str) -> Request {
/// #     request("GET", target, "Upgrade: websocket\r\nConnection: Upgrade\r\n")
/// # }
/// let cors = Cors {
///     origins: AllowedOrigins::List(vec!["https://app.example".into()]),
///     credentials: true,
/// };
/// let mut server = Server::new(ServerConfig { cors, ..ServerConfig::default() });
/// let handshake = request(
///     "GET",
///     "/engine.io/?EIO=4&transport=polling",
///     "Origin: https://app.example\r\n",
/// );
/// let RequestOutcome::Respond(response) =
///     server.handle_request(&handshake, Bytes::new(), Instant::now())
/// else {
///     panic!()
/// };
/// assert_eq!(response.header("Access-Control-Allow-Origin"), Some("https://app.example"));
/// assert_eq!(response.header("Access-Control-Allow-Credentials"), Some("true"));
/// assert_eq!(response.header("Vary"), Some("Origin"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    /// The origins allowed.
    pub origins: AllowedOrigins,
    /// Whether to send `Access-Control-Allow-Credentials: true`.
    pub credentials: bool,
}

impl Default for Cors {
    fn default() -> Self {
        Cors {
            origins: AllowedOrigins::Any,
            credentials: false,
        }
    }
}

/// A hook deciding whether a handshake request may open a session; an
/// `Err` is answered with 403 (`{"code":4,"message":"Forbidden"}`).
///
/// ```
/// # use std::time::{Duration, Instant};
/// # use bytes::Bytes;
/// # use switchboard_core::engineio::*;
/// # use switchboard_core::http::{Limits, Request};
/// # use switchboard_core::ws::Message;
/// # fn request(method: &str, target: &str, headers: &str) -> Request {
/// #     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
/// #     Request::parse(head.as_bytes(), &Limits::default()).unwrap().unwrap().0
/// # }
/// # fn get(target: &str) -> Request { request("GET", target, "") }
/// # fn post(target: &str) -> Request { request("POST", target, "") }
/// # fn upgrade(target: &str) -> Request {
/// #     request("GET", target, "Upgrade: websocket\r\nConnection: Upgrade\r\n")
/// # }
/// use std::sync::Arc;
/// let allow: AllowRequest = Arc::new(|request: &Request| match request.query_param("token") {
///     Some(token) if token == "secret" => Ok(()),
///     _ => Err("no token".into()),
/// });
/// let config = ServerConfig { allow_request: Some(allow), ..ServerConfig::default() };
/// let mut server = Server::new(config);
/// let now = Instant::now();
///
/// let refused = server.handle_request(&get("/engine.io/?EIO=4&transport=polling"), Bytes::new(), now);
/// let RequestOutcome::Respond(response) = refused else { panic!() };
/// assert_eq!(response.status, 403);
/// assert_eq!(response.body, r#"{"code":4,"message":"Forbidden"}"#);
///
/// let target = "/engine.io/?EIO=4&transport=polling&token=secret";
/// let RequestOutcome::Respond(response) = server.handle_request(&get(target), Bytes::new(), now) else {
///     panic!()
/// };
/// assert_eq!(response.status, 200);
/// ```
pub type AllowRequest = Arc<dyn Fn(&Request) -> Result<(), String> + Send + Sync>;

/// The server's settings. Defaults are Node's engine.io defaults.
///
/// The handshake announces the heartbeat and `max_payload`:
///
/// ```
/// # use std::time::{Duration, Instant};
/// # use bytes::Bytes;
/// # use switchboard_core::engineio::*;
/// # use switchboard_core::http::{Limits, Request};
/// # use switchboard_core::ws::Message;
/// # fn request(method: &str, target: &str, headers: &str) -> Request {
/// #     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
/// #     Request::parse(head.as_bytes(), &Limits::default()).unwrap().unwrap().0
/// # }
/// # fn get(target: &str) -> Request { request("GET", target, "") }
/// # fn post(target: &str) -> Request { request("POST", target, "") }
/// # fn upgrade(target: &str) -> Request {
/// #     request("GET", target, "Upgrade: websocket\r\nConnection: Upgrade\r\n")
/// # }
/// let config = ServerConfig {
///     ping_interval: Duration::from_secs(10),
///     ping_timeout: Duration::from_secs(5),
///     allow_upgrades: false,
///     ..ServerConfig::default()
/// };
/// let mut server = Server::new(config);
/// let handshake = get("/engine.io/?EIO=4&transport=polling");
/// let outcome = server.handle_request(&handshake, Bytes::new(), Instant::now());
/// let RequestOutcome::Respond(response) = outcome else { panic!() };
/// let open = std::str::from_utf8(&response.body).unwrap();
/// let announced = r#""upgrades":[],"pingInterval":10000,"pingTimeout":5000,"maxPayload":1000000}"#;
/// assert!(open.ends_with(announced));
/// ```
#[derive(Clone)]
pub struct ServerConfig {
    /// Time between server pings (v4), announced as `pingInterval` (25 s).
    pub ping_interval: Duration,
    /// Time to wait for the pong (v4), announced as `pingTimeout` (20 s).
    /// v3: a session closes after `ping_interval + ping_timeout` without a
    /// client ping.
    pub ping_timeout: Duration,
    /// The largest polling body and WebSocket message accepted, announced
    /// as `maxPayload` (1 000 000, Node's `maxHttpBufferSize`). Also bounds
    /// the size of one poll response (at least one packet is always sent).
    pub max_payload: usize,
    /// Accept the polling transport.
    pub polling: bool,
    /// Accept the WebSocket transport.
    pub websocket: bool,
    /// Allow upgrades from polling to WebSocket.
    pub allow_upgrades: bool,
    /// Accept Engine.IO v3 clients (`EIO=3`).
    pub allow_eio3: bool,
    /// How long an upgrade may take, from the WebSocket being accepted to
    /// the client's `upgrade` packet (10 s).
    pub upgrade_timeout: Duration,
    /// The most messages queued for one WebSocket connection (1024): the
    /// adapters' queue from the endpoint to the connection's writer. A
    /// connection whose peer stops reading until it is full is closed with
    /// [`CloseReason::BufferFull`].
    pub max_buffered_packets: usize,
    /// The most a polling session's queue (packets waiting for the client's
    /// next poll) may hold, in bytes: each packet's encoded size plus 64
    /// for its bookkeeping (default 4 MiB). Queuing more closes the session
    /// with [`CloseReason::BufferFull`]. Bytes rather than packets: the
    /// answers to one POST of many small packets (a client emitting in a
    /// loop, whose packets the client sends together) fit, however many
    /// there are, up to about what the POST itself could hold
    /// (`max_payload`), while a few large packets cannot pile up to a
    /// thousand times their size. Node sets no bound.
    pub max_buffered_bytes: usize,
    /// CORS policy.
    pub cors: Cors,
    /// Whether the WebSocket transport accepts permessage-deflate (default
    /// false, as in Node's engine.io: a compression context costs hundreds
    /// of KiB per connection, idle or not).
    pub per_message_deflate: bool,
    /// Name of a cookie set to the session id on polling handshakes (Node:
    /// `cookie` option, usually `io`); `None` sets no cookie (the default).
    pub cookie: Option<String>,
    /// Handshake admission hook.
    pub allow_request: Option<AllowRequest>,
    /// The most sessions open at once (default 100,000). A handshake
    /// beyond it is answered 503 with `{"code":4,"message":"Too many
    /// sessions"}` (Node's engine.io has no such limit: a client that
    /// handshakes in a loop without ever polling leaves a session behind
    /// each time, for `ping_interval + ping_timeout`). A sharded endpoint
    /// splits it among its shards ([`Shard::share_of`]), and its hub hands
    /// each handshake to a shard with room.
    pub max_sessions: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            max_payload: 1_000_000,
            polling: true,
            websocket: true,
            allow_upgrades: true,
            allow_eio3: false,
            upgrade_timeout: Duration::from_secs(10),
            max_buffered_packets: 1024,
            max_buffered_bytes: 4 << 20,
            cors: Cors::default(),
            cookie: None,
            allow_request: None,
            per_message_deflate: false,
            max_sessions: 100_000,
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("ping_interval", &self.ping_interval)
            .field("ping_timeout", &self.ping_timeout)
            .field("max_payload", &self.max_payload)
            .field("polling", &self.polling)
            .field("websocket", &self.websocket)
            .field("allow_upgrades", &self.allow_upgrades)
            .field("allow_eio3", &self.allow_eio3)
            .field("upgrade_timeout", &self.upgrade_timeout)
            .field("max_buffered_packets", &self.max_buffered_packets)
            .field("max_buffered_bytes", &self.max_buffered_bytes)
            .field("cors", &self.cors)
            .field("cookie", &self.cookie)
            .field("per_message_deflate", &self.per_message_deflate)
            .field("allow_request", &self.allow_request.is_some())
            .field("max_sessions", &self.max_sessions)
            .finish()
    }
}

/// A parked `GET` poll (see [`Server::held_poll_session`]).
///
/// ```
/// # use std::time::Instant;
/// # use bytes::Bytes;
/// # use switchboard_core::engineio::*;
/// # use switchboard_core::http::{Limits, Request};
/// # fn get(target: &str, headers: &str) -> Request {
/// #     let head = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
/// #     Request::parse(head.as_bytes(), &Limits::default()).unwrap().unwrap().0
/// # }
/// # let now = Instant::now();
/// # let mut server = Server::new(ServerConfig::default());
/// # server.handle_request(&get("/engine.io/?EIO=4&transport=polling", ""), Bytes::new(), now);
/// # let sid = server.poll_event().unwrap().sid().clone();
/// let target = format!("/engine.io/?EIO=4&transport=polling&sid={sid}");
/// let RequestOutcome::Hold(poll) = server.handle_request(&get(&target, ""), Bytes::new(), now)
/// else {
///     panic!()
/// };
/// assert_eq!(server.held_poll_session(poll), Some(sid)); // until answered
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PollId(u64);

impl PollId {
    /// The id as a number, unique within one [`Server`].
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

/// A WebSocket connection the adapter accepted for the server (see
/// [`Server::conn_session`]).
///
/// ```
/// # use std::time::Instant;
/// # use bytes::Bytes;
/// # use switchboard_core::engineio::*;
/// # use switchboard_core::http::{Limits, Request};
/// # fn get(target: &str, headers: &str) -> Request {
/// #     let head = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
/// #     Request::parse(head.as_bytes(), &Limits::default()).unwrap().unwrap().0
/// # }
/// # let now = Instant::now();
/// # let mut server = Server::new(ServerConfig::default());
/// let upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\n";
/// let target = "/engine.io/?EIO=4&transport=websocket";
/// let outcome = server.handle_request(&get(target, upgrade), Bytes::new(), now);
/// let RequestOutcome::AcceptWebSocket { conn } = outcome else { panic!() };
/// assert!(server.conn_session(conn).is_some()); // until it closes
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u64);

impl ConnId {
    /// The id as a number, unique within one [`Server`].
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

/// An Engine.IO transport.
///
/// ```
/// use switchboard_core::engineio::TransportKind;
/// assert_eq!(TransportKind::Polling.as_str(), "polling");
/// assert_eq!(TransportKind::WebSocket.as_str(), "websocket");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// HTTP long-polling.
    Polling,
    /// WebSocket.
    WebSocket,
}

impl TransportKind {
    /// The value of the `transport` query parameter.
    pub const fn as_str(self) -> &'static str {
        match self {
            TransportKind::Polling => "polling",
            TransportKind::WebSocket => "websocket",
        }
    }
}

/// An HTTP response to write.
///
/// ```
/// # use std::time::{Duration, Instant};
/// # use bytes::Bytes;
/// # use switchboard_core::engineio::*;
/// # use switchboard_core::http::{Limits, Request};
/// # use switchboard_core::ws::Message;
/// # fn request(method: &str, target: &str, headers: &str) -> Request {
/// #     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
/// #     Request::parse(head.as_bytes(), &Limits::default()).unwrap().unwrap().0
/// # }
/// # fn get(target: &str) -> Request { request("GET", target, "") }
/// # fn post(target: &str) -> Request { request("POST", target, "") }
/// # fn upgrade(target: &str) -> Request {
/// #     request("GET", target, "Upgrade: websocket\r\nConnection: Upgrade\r\n")
/// # }
/// let mut server = Server::new(ServerConfig::default());
/// let handshake = get("/engine.io/?EIO=4&transport=polling");
/// let outcome = server.handle_request(&handshake, Bytes::new(), Instant::now());
/// let RequestOutcome::Respond(response) = outcome else { panic!() };
/// assert_eq!(response.status, 200);
/// assert_eq!(response.header("content-type"), Some("text/plain; charset=UTF-8"));
///
/// let bytes = response.encode();
/// assert!(bytes.starts_with(b"HTTP/1.1 200 OK\r\n"));
/// assert!(bytes.ends_with(&response.body));
/// // The answer to a `HEAD` request has the head only.
/// let head = response.encode_for("HEAD");
/// assert_eq!(head.len(), bytes.len() - response.body.len());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Header lines (no `Content-Length`: [`HttpResponse::encode`] adds it).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
}

impl HttpResponse {
    /// The response head and body as bytes.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_for("GET")
    }

    /// The response to a request made with `method` as bytes: the head
    /// alone for `HEAD` ([`http::encode_response_for`]).
    pub fn encode_for(&self, method: &str) -> Vec<u8> {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        http::encode_response_for(method, self.status, &headers, &self.body)
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What to do with an HTTP request.
///
/// ```
/// # use std::time::{Duration, Instant};
/// # use bytes::Bytes;
/// # use switchboard_core::engineio::*;
/// # use switchboard_core::http::{Limits, Request};
/// # use switchboard_core::ws::Message;
/// # fn request(method: &str, target: &str, headers: &str) -> Request {
/// #     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
/// #     Request::parse(head.as_bytes(), &Limits::default()).unwrap().unwrap().0
/// # }
/// # fn get(target: &str) -> Request { request("GET", target, "") }
/// # fn post(target: &str) -> Request { request("POST", target, "") }
/// # fn upgrade(target: &str) -> Request {
/// #     request("GET", target, "Upgrade: websocket\r\nConnection: Upgrade\r\n")
/// # }
/// let now = Instant::now();
/// let mut server = Server::new(ServerConfig::default());
/// // The polling handshake: answered at once.
/// let outcome = server.handle_request(&get("/engine.io/?EIO=4&transport=polling"), Bytes::new(), now);
/// assert!(matches!(outcome, RequestOutcome::Respond(ref r) if r.status == 200));
/// let sid = server.poll_event().unwrap().sid().clone();
///
/// // A poll with nothing to send: held.
/// let polling = format!("/engine.io/?EIO=4&transport=polling&sid={sid}");
/// let outcome = server.handle_request(&get(&polling), Bytes::new(), now);
/// assert!(matches!(outcome, RequestOutcome::Hold(_)));
///
/// // An upgrade: a WebSocket for the adapter to accept.
/// let target = format!("/engine.io/?EIO=4&transport=websocket&sid={sid}");
/// let outcome = server.handle_request(&upgrade(&target), Bytes::new(), now);
/// assert!(matches!(outcome, RequestOutcome::AcceptWebSocket { .. }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestOutcome {
    /// Write this response.
    Respond(HttpResponse),
    /// Keep the request open until a [`Transmit::PollResponse`] for this id.
    /// If the client goes away first, call [`Server::poll_aborted`].
    Hold(PollId),
    /// Perform the RFC 6455 handshake, then feed [`Server::ws_message`] and
    /// [`Server::ws_closed`] for `conn`, and write its
    /// [`Transmit::WsSend`]s. If the handshake fails, call
    /// [`Server::ws_closed`].
    AcceptWebSocket {
        /// The connection's id.
        conn: ConnId,
    },
}

/// Why a session closed; [`CloseReason::as_str`] gives Node's wording.
///
/// ```
/// use switchboard_core::engineio::CloseReason;
/// assert_eq!(CloseReason::PingTimeout.as_str(), "ping timeout");
/// assert_eq!(CloseReason::BufferFull.to_string(), "transport buffer full");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// The client closed: a `close` packet, or its WebSocket closed.
    TransportClose,
    /// A transport failure: a duplicate poll, an aborted poll, an oversize
    /// body or message, a heartbeat in the wrong direction.
    TransportError,
    /// No heartbeat in time.
    PingTimeout,
    /// [`Server::close`].
    ForcedClose,
    /// An invalid packet or payload.
    ParseError,
    /// More than [`ServerConfig::max_buffered_bytes`] queued for a polling
    /// session, or [`ServerConfig::max_buffered_packets`] messages for a
    /// WebSocket
    /// (not in Node).
    BufferFull,
}

impl CloseReason {
    /// The reason as Node's engine.io words it.
    pub const fn as_str(self) -> &'static str {
        match self {
            CloseReason::TransportClose => "transport close",
            CloseReason::TransportError => "transport error",
            CloseReason::PingTimeout => "ping timeout",
            CloseReason::ForcedClose => "forced close",
            CloseReason::ParseError => "parse error",
            CloseReason::BufferFull => "transport buffer full",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something for the application.
///
/// ```
/// # use std::time::{Duration, Instant};
/// # use bytes::Bytes;
/// # use switchboard_core::engineio::*;
/// # use switchboard_core::http::{Limits, Request};
/// # use switchboard_core::ws::Message;
/// # fn request(method: &str, target: &str, headers: &str) -> Request {
/// #     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
/// #     Request::parse(head.as_bytes(), &Limits::default()).unwrap().unwrap().0
/// # }
/// # fn get(target: &str) -> Request { request("GET", target, "") }
/// # fn post(target: &str) -> Request { request("POST", target, "") }
/// # fn upgrade(target: &str) -> Request {
/// #     request("GET", target, "Upgrade: websocket\r\nConnection: Upgrade\r\n")
/// # }
/// # let now = Instant::now();
/// # let mut server = Server::new(ServerConfig::default());
/// # let target = "/engine.io/?EIO=4&transport=websocket";
/// # let outcome = server.handle_request(&upgrade(target), Bytes::new(), now);
/// # let RequestOutcome::AcceptWebSocket { conn } = outcome else { panic!() };
/// # let Some(ServerEvent::Open { sid, .. }) = server.poll_event() else { panic!() };
/// # server.poll_transmit(); // the open packet
/// // A WebSocket session on `conn`, past its `Open` event:
/// server.ws_message(conn, Message::text("4hello"), now);
/// server.ws_closed(conn, now);
/// let events: Vec<String> = std::iter::from_fn(|| server.poll_event())
///     .map(|event| match event {
///         ServerEvent::Open { request, .. } => format!("open {}", request.path()),
///         ServerEvent::Message { data: MessageData::Text(text), .. } => format!("message {text}"),
///         ServerEvent::Message { .. } => "binary".to_owned(),
///         ServerEvent::Close { reason, .. } => format!("close: {reason}"),
///     })
///     .collect();
/// assert_eq!(events, ["message hello", "close: transport close"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// A session opened.
    Open {
        /// Its id.
        sid: Arc<str>,
        /// The client's protocol revision.
        version: ProtocolVersion,
        /// The transport of the handshake.
        transport: TransportKind,
        /// The handshake request (head only: query, headers).
        request: Request,
    },
    /// A message from the client.
    Message {
        /// The session.
        sid: Arc<str>,
        /// The data.
        data: MessageData,
    },
    /// A session closed (exactly once per session).
    Close {
        /// The session.
        sid: Arc<str>,
        /// Why.
        reason: CloseReason,
    },
}

impl ServerEvent {
    /// The session the event belongs to.
    ///
    /// ```
    /// use switchboard_core::engineio::{CloseReason, ServerEvent};
    ///
    /// let event = ServerEvent::Close { sid: "AAAA".into(), reason: CloseReason::TransportClose };
    /// assert_eq!(&**event.sid(), "AAAA");
    /// ```
    pub fn sid(&self) -> &Arc<str> {
        match self {
            ServerEvent::Open { sid, .. }
            | ServerEvent::Message { sid, .. }
            | ServerEvent::Close { sid, .. } => sid,
        }
    }
}

/// Something for the adapter to write.
///
/// ```
/// # use std::time::{Duration, Instant};
/// # use bytes::Bytes;
/// # use switchboard_core::engineio::*;
/// # use switchboard_core::http::{Limits, Request};
/// # use switchboard_core::ws::Message;
/// # fn request(method: &str, target: &str, headers: &str) -> Request {
/// #     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
/// #     Request::parse(head.as_bytes(), &Limits::default()).unwrap().unwrap().0
/// # }
/// # fn get(target: &str) -> Request { request("GET", target, "") }
/// # fn post(target: &str) -> Request { request("POST", target, "") }
/// # fn upgrade(target: &str) -> Request {
/// #     request("GET", target, "Upgrade: websocket\r\nConnection: Upgrade\r\n")
/// # }
/// # let now = Instant::now();
/// # let mut server = Server::new(ServerConfig::default());
/// # server.handle_request(&get("/engine.io/?EIO=4&transport=polling"), Bytes::new(), now);
/// # let Some(ServerEvent::Open { sid, .. }) = server.poll_event() else { panic!() };
/// # let polling = format!("/engine.io/?EIO=4&transport=polling&sid={sid}");
/// // A polling session, its poll held; a WebSocket session on `conn`.
/// let RequestOutcome::Hold(poll) = server.handle_request(&get(&polling), Bytes::new(), now) else {
///     panic!()
/// };
/// # let outcome = server.handle_request(&upgrade("/engine.io/?EIO=4&transport=websocket"), Bytes::new(), now);
/// # let RequestOutcome::AcceptWebSocket { conn } = outcome else { panic!() };
/// # let ws_sid = server.conn_session(conn).unwrap().to_owned();
/// # server.poll_transmit();
/// server.send(&sid, "to the poller".into()).unwrap();
/// server.send(&ws_sid, "to the WebSocket".into()).unwrap();
/// server.close(&ws_sid);
/// while let Some(transmit) = server.poll_transmit() {
///     match transmit {
///         Transmit::PollResponse { poll: p, response } => {
///             assert_eq!((p, &response.body[..]), (poll, &b"4to the poller"[..]));
///         }
///         Transmit::WsSend { conn: c, message } => {
///             assert_eq!((c, message), (conn, Message::text("4to the WebSocket")));
///         }
///         Transmit::WsClose { conn: c } => assert_eq!(c, conn),
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// Answer a held poll.
    PollResponse {
        /// The poll.
        poll: PollId,
        /// The response.
        response: HttpResponse,
    },
    /// Send a WebSocket message.
    WsSend {
        /// The connection.
        conn: ConnId,
        /// The message.
        message: Message,
    },
    /// Close a WebSocket (normal closure). The adapter then forgets `conn`;
    /// calling [`Server::ws_closed`] for it is harmless.
    WsClose {
        /// The connection.
        conn: ConnId,
    },
}

/// [`Server::send`] failed.
///
/// ```
/// # use std::time::{Duration, Instant};
/// # use bytes::Bytes;
/// # use switchboard_core::engineio::*;
/// # use switchboard_core::http::{Limits, Request};
/// # use switchboard_core::ws::Message;
/// # fn request(method: &str, target: &str, headers: &str) -> Request {
/// #     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
/// #     Request::parse(head.as_bytes(), &Limits::default()).unwrap().unwrap().0
/// # }
/// # fn get(target: &str) -> Request { request("GET", target, "") }
/// # fn post(target: &str) -> Request { request("POST", target, "") }
/// # fn upgrade(target: &str) -> Request {
/// #     request("GET", target, "Upgrade: websocket\r\nConnection: Upgrade\r\n")
/// # }
/// # let now = Instant::now();
/// # let mut server = Server::new(ServerConfig::default());
/// # server.handle_request(&get("/engine.io/?EIO=4&transport=polling"), Bytes::new(), now);
/// # let Some(ServerEvent::Open { sid, .. }) = server.poll_event() else { panic!() };
/// # let polling = format!("/engine.io/?EIO=4&transport=polling&sid={sid}");
/// use switchboard_core::engineio::SendError;
/// assert_eq!(server.send("no-such-session", "hi".into()), Err(SendError::UnknownSession));
/// # let config = ServerConfig { max_buffered_bytes: 100, ..ServerConfig::default() };
/// # let mut server = Server::new(config);
/// # server.handle_request(&get("/engine.io/?EIO=4&transport=polling"), Bytes::new(), now);
/// # let Some(ServerEvent::Open { sid, .. }) = server.poll_event() else { panic!() };
/// // With `max_buffered_bytes: 100`, a client that does not poll:
/// let big = MessageData::Binary(vec![0; 100].into());
/// assert_eq!(server.send(&sid, big), Err(SendError::BufferFull));
/// let Some(ServerEvent::Close { reason, .. }) = server.poll_event() else { panic!() };
/// assert_eq!(reason, CloseReason::BufferFull);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// No open session has this id.
    #[error("unknown or closed session")]
    UnknownSession,
    /// The session's queue was full; the session is now closed.
    #[error("session buffer full")]
    BufferFull,
}

/// Engine.IO error codes, as in Node's `Server.errors`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorCode {
    UnknownTransport = 0,
    UnknownSid = 1,
    BadHandshakeMethod = 2,
    BadRequest = 3,
    Forbidden = 4,
    UnsupportedProtocolVersion = 5,
}

impl ErrorCode {
    fn message(self) -> &'static str {
        match self {
            ErrorCode::UnknownTransport => "Transport unknown",
            ErrorCode::UnknownSid => "Session ID unknown",
            ErrorCode::BadHandshakeMethod => "Bad handshake method",
            ErrorCode::BadRequest => "Bad request",
            ErrorCode::Forbidden => "Forbidden",
            ErrorCode::UnsupportedProtocolVersion => "Unsupported protocol version",
        }
    }

    fn status(self) -> u16 {
        match self {
            ErrorCode::Forbidden => 403,
            _ => 400,
        }
    }
}

type HeaderList = Vec<(String, String)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Polling,
    WebSocket(ConnId),
}

#[derive(Debug)]
struct HeldPoll {
    id: PollId,
    /// CORS headers computed from the poll's request.
    headers: HeaderList,
}

#[derive(Debug, Clone, Copy)]
struct Upgrade {
    conn: ConnId,
    probed: bool,
    deadline: Instant,
    /// Whether the WebSocket takes binary frames (its request had no
    /// `b64`).
    binary: bool,
}

#[derive(Debug)]
struct Session {
    /// Its id (shared with the maps and events that name it).
    sid: Arc<str>,
    version: ProtocolVersion,
    /// v3 polling: whether binary payloads may be sent (no `b64`).
    supports_binary: bool,
    /// Whether the session's WebSocket takes binary frames (no `b64` on
    /// its request); otherwise binary messages go as base64 text, as
    /// Node's WebSocket transport sends them.
    ws_binary: bool,
    transport: Transport,
    /// Packets waiting for a poll (polling only; WebSocket sends at once).
    queue: PollQueue,
    poll: Option<HeldPoll>,
    upgrade: Option<Upgrade>,
    /// v4: when to send the next ping (`None` while a pong is awaited).
    ping_at: Option<Instant>,
    /// v4: the pong deadline; v3: the client ping deadline.
    timeout_at: Option<Instant>,
    /// v4: whether a packet other than `pong` already extended the current
    /// pong deadline (Node extends it once per ping).
    timeout_extended: bool,
    /// Whether the session's id is in `Server::flush_queue`.
    flush_scheduled: bool,
}

impl Session {
    fn next_deadline(&self) -> Option<Instant> {
        [
            self.ping_at,
            self.timeout_at,
            self.upgrade.map(|u| u.deadline),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// The Engine.IO server state machine (see the [module docs](self)).
///
/// A polling session, from the handshake to a message each way:
///
/// ```
/// use std::time::Instant;
/// use bytes::Bytes;
/// use switchboard_core::engineio::{
///     MessageData, RequestOutcome, Server, ServerConfig, ServerEvent, Transmit,
/// };
/// use switchboard_core::http::{Limits, Request};
///
/// // What the adapter parsed off an HTTP connection.
/// fn request(method: &str, target: &str) -> Request {
///     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n\r\n");
///     Request::parse(head.as_bytes(), &Limits::default()).unwrap().unwrap().0
/// }
/// let now = Instant::now();
/// let mut server = Server::new(ServerConfig::default());
///
/// // The handshake, answered at once with the `open` packet.
/// let handshake = request("GET", "/engine.io/?EIO=4&transport=polling");
/// let RequestOutcome::Respond(open) = server.handle_request(&handshake, Bytes::new(), now) else {
///     panic!()
/// };
/// assert!(open.body.starts_with(br#"0{"sid":""#));
/// let Some(ServerEvent::Open { sid, .. }) = server.poll_event() else { panic!() };
///
/// // A poll waits for something to send.
/// let target = format!("/engine.io/?EIO=4&transport=polling&sid={sid}");
/// let poll = server.handle_request(&request("GET", &target), Bytes::new(), now);
/// let RequestOutcome::Hold(poll) = poll else { panic!() };
/// server.send(&sid, MessageData::Text("hello".into())).unwrap();
/// let Some(Transmit::PollResponse { poll: answered, response }) = server.poll_transmit() else {
///     panic!()
/// };
/// assert_eq!((answered, &response.body[..]), (poll, &b"4hello"[..]));
///
/// // The client's messages come in a `POST`.
/// let body = Bytes::from_static(b"4hi");
/// let RequestOutcome::Respond(ok) = server.handle_request(&request("POST", &target), body, now)
/// else {
///     panic!()
/// };
/// assert_eq!((ok.status, &ok.body[..]), (200, &b"ok"[..]));
/// let Some(ServerEvent::Message { data, .. }) = server.poll_event() else { panic!() };
/// assert_eq!(data, MessageData::Text("hi".into()));
/// ```
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    shard: Shard,
    sessions: IdMap<Arc<str>, Session>,
    polls: IdMap<PollId, Arc<str>>,
    conns: IdMap<ConnId, Arc<str>>,
    next_id: u64,
    events: VecDeque<ServerEvent>,
    transmits: VecDeque<Transmit>,
    /// Sessions with a held poll and newly queued packets.
    flush_queue: VecDeque<Arc<str>>,
    /// Polling sessions closed by the server while no poll was held: their
    /// last packets and `close` wait for the client's next poll, as in
    /// Node, until they expire.
    closing: IdMap<Arc<str>, Closing>,
    /// The latest time passed in, for deadlines set by calls without one.
    last_now: Option<Instant>,
    /// When to look at which session: at or before each session's next
    /// deadline (a deadline that moved later leaves an early entry, which
    /// only costs a look), so timers cost O(log n), not a scan.
    deadlines: BTreeSet<(Instant, Arc<str>)>,
    /// Handshakes refused for `max_sessions` are logged through it.
    full_warning: WarningThrottle,
}

/// What a polling session closed by the server still owes its client.
#[derive(Debug)]
struct Closing {
    version: ProtocolVersion,
    supports_binary: bool,
    /// Queued packets, then `close` (a poll takes what fits in
    /// `max_payload`; the entry goes when the `close` is taken).
    packets: PollQueue,
    expires: Instant,
    /// The WebSocket the client was upgrading to, kept open: a client that
    /// completes the upgrade (`5`) polls no more, so the packets go out
    /// there, as Node's server flushes a closing socket's buffer over the
    /// transport it upgraded to.
    upgrade: Option<ConnId>,
    /// Whether that WebSocket takes binary frames (no `b64`).
    upgrade_binary: bool,
}

impl Server {
    /// A server with no sessions.
    ///
    /// ```
    /// use switchboard_core::engineio::{Server, ServerConfig, Shard};
    /// let server = Server::new(ServerConfig::default());
    /// assert_eq!(server.session_count(), 0);
    /// assert_eq!(server.shard(), Shard::SOLE);
    /// assert!(server.config().allow_upgrades);
    /// assert_eq!(server.poll_timeout(), None);
    /// ```
    pub fn new(config: ServerConfig) -> Self {
        Server::with_shard(config, Shard::SOLE)
    }

    /// A server owning one shard of an endpoint's sessions (see
    /// [`Shard`]): its session ids and connection and poll ids name it.
    ///
    /// ```
    /// use switchboard_core::engineio::{Server, ServerConfig, Shard};
    /// let server = Server::with_shard(ServerConfig::default(), Shard::new(1, 4));
    /// assert_eq!(server.shard(), Shard::new(1, 4));
    /// ```
    pub fn with_shard(mut config: ServerConfig, shard: Shard) -> Self {
        // Deadlines are `Instant`s: a timeout that could not be added to one
        // (`Duration::MAX`, for "never") is held to a century, as good as
        // never.
        for timeout in [
            &mut config.ping_interval,
            &mut config.ping_timeout,
            &mut config.upgrade_timeout,
        ] {
            *timeout = (*timeout).min(crate::LONGEST_TIMEOUT);
        }
        Server {
            shard,
            config,
            sessions: IdMap::default(),
            polls: IdMap::default(),
            conns: IdMap::default(),
            next_id: shard.id_base(),
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            flush_queue: VecDeque::new(),
            closing: IdMap::default(),
            last_now: None,
            deadlines: BTreeSet::new(),
            full_warning: WarningThrottle::default(),
        }
    }

    /// Which shard of its endpoint this server is.
    pub fn shard(&self) -> Shard {
        self.shard
    }

    /// Whether a handshake now would be refused for
    /// [`ServerConfig::max_sessions`] (in a sharded endpoint: for this
    /// shard's part of it, so that a hub can hand the handshake to a shard
    /// with room).
    ///
    /// ```
    /// use std::time::Instant;
    /// use bytes::Bytes;
    /// use switchboard_core::engineio::{RequestOutcome, Server, ServerConfig};
    /// use switchboard_core::http::{Headers, Request};
    ///
    /// let mut server = Server::new(ServerConfig { max_sessions: 1, ..ServerConfig::default() });
    /// let handshake = Request {
    ///     method: "GET".into(),
    ///     target: "/engine.io/?EIO=4&transport=polling".into(),
    ///     version: 1,
    ///     headers: Headers(Vec::new()),
    /// };
    /// assert!(!server.is_full());
    /// server.handle_request(&handshake, Bytes::new(), Instant::now());
    /// assert!(server.is_full());
    /// match server.handle_request(&handshake, Bytes::new(), Instant::now()) {
    ///     RequestOutcome::Respond(response) => assert_eq!(response.status, 503),
    ///     other => panic!("{other:?}"),
    /// }
    /// ```
    pub fn is_full(&self) -> bool {
        self.sessions.len() >= self.shard.share_of(self.config.max_sessions)
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// How many sessions are open.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Handles an HTTP request on the Engine.IO path. The adapter has
    /// parsed the head and read the body up to `max_payload + 1` bytes.
    ///
    /// See [`Server`] for a session's requests, and [`RequestOutcome`]
    /// for the three answers. Requests the server cannot take are answered
    /// with Engine.IO's error codes, and preflights with CORS headers:
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use bytes::Bytes;
    /// # use switchboard_core::engineio::*;
    /// # use switchboard_core::http::{Limits, Request};
    /// # use switchboard_core::ws::Message;
    /// # fn request(method: &str, target: &str, headers: &str) -> Request {
    /// #     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
    /// #     Request::parse(head.as_bytes(), &Limits::default()).unwrap().unwrap().0
    /// # }
    /// # fn get(target: &str) -> Request { request("GET", target, "") }
    /// # fn post(target: &str) -> Request { request("POST", target, "") }
    /// # fn upgrade(target: &str) -> Request {
    /// #     request("GET", target, "Upgrade: websocket\r\nConnection: Upgrade\r\n")
    /// # }
    /// let mut server = Server::new(ServerConfig::default());
    /// let now = Instant::now();
    /// let mut answer = |request: &Request| match server.handle_request(request, Bytes::new(), now) {
    ///     RequestOutcome::Respond(response) => (response.status, response.body),
    ///     other => panic!("{other:?}"),
    /// };
    /// let (status, body) = answer(&get("/engine.io/?EIO=4&transport=carrier-pigeon"));
    /// assert_eq!((status, &body[..]), (400, &br#"{"code":0,"message":"Transport unknown"}"#[..]));
    /// let (status, body) = answer(&get("/engine.io/?EIO=4&transport=polling&sid=nope"));
    /// assert_eq!((status, &body[..]), (400, &br#"{"code":1,"message":"Session ID unknown"}"#[..]));
    /// let (status, body) = answer(&get("/engine.io/?EIO=2&transport=polling"));
    /// let unsupported = r#"{"code":5,"message":"Unsupported protocol version"}"#;
    /// assert_eq!((status, &body[..]), (400, unsupported.as_bytes()));
    /// let (status, _) = answer(&request("OPTIONS", "/engine.io/?EIO=4&transport=polling", ""));
    /// assert_eq!(status, 204);
    /// ```
    pub fn handle_request(&mut self, req: &Request, body: Bytes, now: Instant) -> RequestOutcome {
        self.last_now = Some(now);
        let cors = self.cors_headers(req);
        if req.method == "OPTIONS" {
            return RequestOutcome::Respond(self.preflight(req, cors));
        }
        let query = req.query().unwrap_or("");
        let transport = match query_param(query, "transport").as_deref() {
            Some("polling") if self.config.polling => TransportKind::Polling,
            Some("websocket") if self.config.websocket => TransportKind::WebSocket,
            _ => return error(ErrorCode::UnknownTransport, cors),
        };
        let version = match query_param(query, "EIO")
            .as_deref()
            .map(ProtocolVersion::from_query)
        {
            Some(Ok(ProtocolVersion::V4)) => ProtocolVersion::V4,
            Some(Ok(ProtocolVersion::V3)) if self.config.allow_eio3 => ProtocolVersion::V3,
            _ => return error(ErrorCode::UnsupportedProtocolVersion, cors),
        };
        let is_upgrade = req.headers.has_token("upgrade", "websocket");
        let Some(sid) = query_param(query, "sid") else {
            return self.handshake(req, transport, version, is_upgrade, cors, now);
        };
        let Some(session) = self.sessions.get_mut(sid.as_ref()) else {
            if transport == TransportKind::Polling && req.method == "GET" {
                if let Some(closing) = self.closing.get_mut(sid.as_ref()) {
                    let upgrade = closing.upgrade.take();
                    let packets = closing
                        .packets
                        .take_batch(self.config.max_payload, closing.version);
                    let payload =
                        encode_payload(&packets, closing.version, closing.supports_binary);
                    if closing.packets.is_empty() {
                        self.closing.remove(sid.as_ref());
                    }
                    if let Some(conn) = upgrade {
                        self.drop_ws(conn);
                    }
                    return RequestOutcome::Respond(polling_response(payload, cors));
                }
            }
            return error(ErrorCode::UnknownSid, cors);
        };
        if session.version != version {
            return error(ErrorCode::BadRequest, cors);
        }
        let sid = session.sid.clone();
        match transport {
            TransportKind::WebSocket => {
                if !is_upgrade
                    || req.method != "GET"
                    || !self.config.allow_upgrades
                    || session.transport != Transport::Polling
                    || session.upgrade.is_some()
                {
                    return error(ErrorCode::BadRequest, cors);
                }
                self.next_id += 1;
                let conn = ConnId(self.next_id);
                let deadline = now + self.config.upgrade_timeout;
                session.upgrade = Some(Upgrade {
                    conn,
                    probed: false,
                    deadline,
                    binary: query_param(query, "b64").is_none(),
                });
                self.deadlines.insert((deadline, sid.clone()));
                self.conns.insert(conn, sid);
                RequestOutcome::AcceptWebSocket { conn }
            }
            TransportKind::Polling => {
                if session.transport != Transport::Polling {
                    return error(ErrorCode::BadRequest, cors);
                }
                match req.method.as_str() {
                    "GET" => self.poll_request(sid, cors),
                    "POST" => self.data_request(sid, req, body, cors, now),
                    _ => error(ErrorCode::BadRequest, cors),
                }
            }
        }
    }

    /// The session WebSocket `conn` carries (or probes for).
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use bytes::Bytes;
    /// # use switchboard_core::engineio::*;
    /// # use switchboard_core::http::{Limits, Request};
    /// # use switchboard_core::ws::Message;
    /// # fn request(method: &str, target: &str, headers: &str) -> Request {
    /// #     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
    /// #     Request::parse(head.as_bytes(), &Limits::default()).unwrap().unwrap().0
    /// # }
    /// # fn get(target: &str) -> Request { request("GET", target, "") }
    /// # fn post(target: &str) -> Request { request("POST", target, "") }
    /// # fn upgrade(target: &str) -> Request {
    /// #     request("GET", target, "Upgrade: websocket\r\nConnection: Upgrade\r\n")
    /// # }
    /// let mut server = Server::new(ServerConfig::default());
    /// let target = "/engine.io/?EIO=4&transport=websocket";
    /// let outcome = server.handle_request(&upgrade(target), Bytes::new(), Instant::now());
    /// let RequestOutcome::AcceptWebSocket { conn } = outcome else { panic!() };
    /// let Some(ServerEvent::Open { sid, .. }) = server.poll_event() else { panic!() };
    /// assert_eq!(server.conn_session(conn), Some(&*sid));
    /// // The `open` packet is the connection's first message.
    /// let Some(Transmit::WsSend { conn: first, message }) = server.poll_transmit() else { panic!() };
    /// assert_eq!(first, conn);
    /// assert!(message.as_text().unwrap().starts_with(r#"0{"sid":"#));
    /// ```
    pub fn conn_session(&self, conn: ConnId) -> Option<&str> {
        self.conns.get(&conn).map(|sid| &**sid)
    }

    /// A message arrived on a WebSocket accepted for `conn`: a packet of
    /// its session, or of an upgrade probe. A close frame counts as
    /// [`Server::ws_closed`]; pings and pongs are the WebSocket layer's.
    ///
    /// The upgrade of a polling session:
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use bytes::Bytes;
    /// # use switchboard_core::engineio::*;
    /// # use switchboard_core::http::{Limits, Request};
    /// # use switchboard_core::ws::Message;
    /// # fn request(method: &str, target: &str, headers: &str) -> Request {
    /// #     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
    /// #     Request::parse(head.as_bytes(), &Limits::default()).unwrap().unwrap().0
    /// # }
    /// # fn get(target: &str) -> Request { request("GET", target, "") }
    /// # fn post(target: &str) -> Request { request("POST", target, "") }
    /// # fn upgrade(target: &str) -> Request {
    /// #     request("GET", target, "Upgrade: websocket\r\nConnection: Upgrade\r\n")
    /// # }
    /// # let now = Instant::now();
    /// # let mut server = Server::new(ServerConfig::default());
    /// # server.handle_request(&get("/engine.io/?EIO=4&transport=polling"), Bytes::new(), now);
    /// # let Some(ServerEvent::Open { sid, .. }) = server.poll_event() else { panic!() };
    /// # let polling = format!("/engine.io/?EIO=4&transport=polling&sid={sid}");
    /// // A polling session, its poll held:
    /// let RequestOutcome::Hold(poll) = server.handle_request(&get(&polling), Bytes::new(), now) else {
    ///     panic!()
    /// };
    /// let target = format!("/engine.io/?EIO=4&transport=websocket&sid={sid}");
    /// let outcome = server.handle_request(&upgrade(&target), Bytes::new(), now);
    /// let RequestOutcome::AcceptWebSocket { conn } = outcome else { panic!() };
    ///
    /// server.ws_message(conn, Message::text("2probe"), now);
    /// let pong = Transmit::WsSend { conn, message: Message::text("3probe") };
    /// assert_eq!(server.poll_transmit(), Some(pong));
    /// // The held poll is released with a `noop`.
    /// let Some(Transmit::PollResponse { poll: released, response }) = server.poll_transmit() else {
    ///     panic!()
    /// };
    /// assert_eq!((released, &response.body[..]), (poll, &b"6"[..]));
    ///
    /// server.ws_message(conn, Message::text("5"), now); // `upgrade`
    /// server.send(&sid, "now over WebSocket".into()).unwrap();
    /// let sent = Transmit::WsSend { conn, message: Message::text("4now over WebSocket") };
    /// assert_eq!(server.poll_transmit(), Some(sent));
    /// ```
    pub fn ws_message(&mut self, conn: ConnId, message: Message, now: Instant) {
        let Some(sid) = self.conns.get(&conn).cloned() else {
            return;
        };
        let Some(session) = self.sessions.get(&sid) else {
            return self.closing_upgrade_message(&sid, conn, message, now);
        };
        let version = session.version;
        let is_probe = session.upgrade.is_some_and(|u| u.conn == conn);
        let max = self.config.max_payload;
        let decoded = match message {
            Message::Text(text) if text.len() <= max => Packet::decode_ws_text(text, version),
            Message::Binary(data) if data.len() <= max => Packet::decode_ws_binary(data, version),
            // Too large: on a probe, the upgrade fails and the session
            // goes on polling (as Node's, whose `ws` closes the probe).
            Message::Text(_) | Message::Binary(_) if is_probe => return self.drop_probe(&sid),
            Message::Text(_) | Message::Binary(_) => {
                // The WebSocket is still open: the adapter closes it.
                self.close_session(&sid, CloseReason::TransportError, None);
                return;
            }
            Message::Close(_) => return self.ws_closed(conn, now),
            Message::Ping(_) | Message::Pong(_) => return,
        };
        if is_probe {
            match decoded {
                Ok(packet) => self.probe_packet(&sid, conn, packet),
                Err(_) => self.drop_probe(&sid),
            }
            return;
        }
        let result = match decoded {
            Ok(packet) => self.on_packet(&sid, packet, now),
            Err(_) => Err(CloseReason::ParseError),
        };
        if let Err(reason) = result {
            self.close_session(&sid, reason, None);
        }
    }

    /// The WebSocket `conn` closed (or its handshake failed). The session
    /// it carries closes (`transport close`); a failed upgrade probe leaves
    /// its session on polling.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use bytes::Bytes;
    /// # use switchboard_core::engineio::*;
    /// # use switchboard_core::http::{Limits, Request};
    /// # use switchboard_core::ws::Message;
    /// # fn request(method: &str, target: &str, headers: &str) -> Request {
    /// #     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
    /// #     Request::parse(head.as_bytes(), &Limits::default()).unwrap().unwrap().0
    /// # }
    /// # fn get(target: &str) -> Request { request("GET", target, "") }
    /// # fn post(target: &str) -> Request { request("POST", target, "") }
    /// # fn upgrade(target: &str) -> Request {
    /// #     request("GET", target, "Upgrade: websocket\r\nConnection: Upgrade\r\n")
    /// # }
    /// # let now = Instant::now();
    /// # let mut server = Server::new(ServerConfig::default());
    /// # let target = "/engine.io/?EIO=4&transport=websocket";
    /// # let outcome = server.handle_request(&upgrade(target), Bytes::new(), now);
    /// # let RequestOutcome::AcceptWebSocket { conn } = outcome else { panic!() };
    /// # let Some(ServerEvent::Open { sid, .. }) = server.poll_event() else { panic!() };
    /// # server.poll_transmit(); // the open packet
    /// // A WebSocket session on `conn`:
    /// server.ws_closed(conn, now);
    /// let closed = ServerEvent::Close { sid: sid.clone(), reason: CloseReason::TransportClose };
    /// assert_eq!(server.poll_event(), Some(closed));
    /// assert_eq!(server.conn_session(conn), None);
    /// assert_eq!(server.session_count(), 0);
    /// ```
    pub fn ws_closed(&mut self, conn: ConnId, _now: Instant) {
        let Some(sid) = self.conns.remove(&conn) else {
            return;
        };
        let Some(session) = self.sessions.get_mut(&sid) else {
            if let Some(closing) = self.closing.get_mut(&sid) {
                closing.upgrade = None;
            }
            return;
        };
        if session.upgrade.is_some_and(|u| u.conn == conn) {
            session.upgrade = None;
        } else if session.transport == Transport::WebSocket(conn) {
            self.close_session(&sid, CloseReason::TransportClose, Some(conn));
        }
    }

    /// The adapter cannot take more [`Transmit::WsSend`]s for `conn`: its
    /// queue of [`ServerConfig::max_buffered_packets`] messages is full
    /// because the peer stopped reading. Sessions on that WebSocket close
    /// (`transport buffer full`) rather than buffer without bound.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use bytes::Bytes;
    /// # use switchboard_core::engineio::*;
    /// # use switchboard_core::http::{Limits, Request};
    /// # use switchboard_core::ws::Message;
    /// # fn request(method: &str, target: &str, headers: &str) -> Request {
    /// #     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
    /// #     Request::parse(head.as_bytes(), &Limits::default()).unwrap().unwrap().0
    /// # }
    /// # fn get(target: &str) -> Request { request("GET", target, "") }
    /// # fn post(target: &str) -> Request { request("POST", target, "") }
    /// # fn upgrade(target: &str) -> Request {
    /// #     request("GET", target, "Upgrade: websocket\r\nConnection: Upgrade\r\n")
    /// # }
    /// # let now = Instant::now();
    /// # let mut server = Server::new(ServerConfig::default());
    /// # let target = "/engine.io/?EIO=4&transport=websocket";
    /// # let outcome = server.handle_request(&upgrade(target), Bytes::new(), now);
    /// # let RequestOutcome::AcceptWebSocket { conn } = outcome else { panic!() };
    /// # let Some(ServerEvent::Open { sid, .. }) = server.poll_event() else { panic!() };
    /// # server.poll_transmit(); // the open packet
    /// // A WebSocket session on `conn`, whose client stopped reading:
    /// server.ws_backlogged(conn, now);
    /// assert_eq!(server.poll_transmit(), Some(Transmit::WsClose { conn }));
    /// let Some(ServerEvent::Close { reason, .. }) = server.poll_event() else { panic!() };
    /// assert_eq!(reason, CloseReason::BufferFull);
    /// ```
    pub fn ws_backlogged(&mut self, conn: ConnId, _now: Instant) {
        if let Some(sid) = self.conns.get(&conn).cloned() {
            self.close_session(&sid, CloseReason::BufferFull, None);
        }
    }

    /// The session held poll `poll` belongs to, while it is held.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use bytes::Bytes;
    /// # use switchboard_core::engineio::*;
    /// # use switchboard_core::http::{Limits, Request};
    /// # use switchboard_core::ws::Message;
    /// # fn request(method: &str, target: &str, headers: &str) -> Request {
    /// #     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
    /// #     Request::parse(head.as_bytes(), &Limits::default()).unwrap().unwrap().0
    /// # }
    /// # fn get(target: &str) -> Request { request("GET", target, "") }
    /// # fn post(target: &str) -> Request { request("POST", target, "") }
    /// # fn upgrade(target: &str) -> Request {
    /// #     request("GET", target, "Upgrade: websocket\r\nConnection: Upgrade\r\n")
    /// # }
    /// # let now = Instant::now();
    /// # let mut server = Server::new(ServerConfig::default());
    /// # server.handle_request(&get("/engine.io/?EIO=4&transport=polling"), Bytes::new(), now);
    /// # let Some(ServerEvent::Open { sid, .. }) = server.poll_event() else { panic!() };
    /// # let polling = format!("/engine.io/?EIO=4&transport=polling&sid={sid}");
    /// // A polling session `sid`, `polling` the target of its polls:
    /// let RequestOutcome::Hold(poll) = server.handle_request(&get(&polling), Bytes::new(), now) else {
    ///     panic!()
    /// };
    /// assert_eq!(server.held_poll_session(poll), Some(sid.clone()));
    /// server.send(&sid, "released".into()).unwrap();
    /// assert!(matches!(server.poll_transmit(), Some(Transmit::PollResponse { .. })));
    /// assert_eq!(server.held_poll_session(poll), None);
    /// ```
    pub fn held_poll_session(&self, poll: PollId) -> Option<Arc<str>> {
        self.polls.get(&poll).cloned()
    }

    /// Adds to `response`, the answer to one of session `sid`'s polls that
    /// came out of [`poll_transmit`](Self::poll_transmit) and is not
    /// written yet, the packets queued for the session since, as far as
    /// [`ServerConfig::max_payload`] allows. A driver calls it just before
    /// writing the response: answers made meanwhile (the echoes of the
    /// rest of a POST) then travel in it instead of waiting for the next
    /// poll, as with Node and engineioxide, whose polls take what is
    /// queued when they run. Only protocol v4 payloads (always text) are
    /// extended; returns whether packets were added.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use bytes::Bytes;
    /// # use switchboard_core::engineio::*;
    /// # use switchboard_core::http::{Limits, Request};
    /// # use switchboard_core::ws::Message;
    /// # fn request(method: &str, target: &str, headers: &str) -> Request {
    /// #     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
    /// #     Request::parse(head.as_bytes(), &Limits::default()).unwrap().unwrap().0
    /// # }
    /// # fn get(target: &str) -> Request { request("GET", target, "") }
    /// # fn post(target: &str) -> Request { request("POST", target, "") }
    /// # fn upgrade(target: &str) -> Request {
    /// #     request("GET", target, "Upgrade: websocket\r\nConnection: Upgrade\r\n")
    /// # }
    /// # let now = Instant::now();
    /// # let mut server = Server::new(ServerConfig::default());
    /// # server.handle_request(&get("/engine.io/?EIO=4&transport=polling"), Bytes::new(), now);
    /// # let Some(ServerEvent::Open { sid, .. }) = server.poll_event() else { panic!() };
    /// # let polling = format!("/engine.io/?EIO=4&transport=polling&sid={sid}");
    /// # server.handle_request(&get(&polling), Bytes::new(), now);
    /// // A polling session, its poll held:
    /// server.send(&sid, "a".into()).unwrap();
    /// let Some(Transmit::PollResponse { mut response, .. }) = server.poll_transmit() else { panic!() };
    /// // Before the response is written, the application sends more.
    /// server.send(&sid, "b".into()).unwrap();
    /// assert!(server.top_up_poll_response(&sid, &mut response));
    /// assert_eq!(response.body, "4a\x1e4b");
    /// assert!(!server.top_up_poll_response(&sid, &mut response)); // nothing left
    /// ```
    pub fn top_up_poll_response(&mut self, sid: &str, response: &mut HttpResponse) -> bool {
        let Some(session) = self.sessions.get_mut(sid) else {
            return false;
        };
        if session.version != ProtocolVersion::V4
            || session.transport != Transport::Polling
            || session.poll.is_some()
            || session.queue.is_empty()
            || response.status != 200
            || response.body.is_empty()
        {
            return false;
        }
        let budget = self
            .config
            .max_payload
            .saturating_sub(response.body.len() + 1);
        let packets = session.queue.take_within(budget, session.version);
        if packets.is_empty() {
            return false;
        }
        let more = encode_payload(&packets, session.version, session.supports_binary).into_bytes();
        let mut body = bytes::BytesMut::with_capacity(response.body.len() + 1 + more.len());
        body.extend_from_slice(&response.body);
        body.extend_from_slice(&[super::payload::RECORD_SEPARATOR as u8]);
        body.extend_from_slice(&more);
        response.body = body.freeze();
        true
    }

    /// The HTTP connection carrying held poll `poll` went away. As in Node,
    /// the session closes (`transport error`).
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use bytes::Bytes;
    /// # use switchboard_core::engineio::*;
    /// # use switchboard_core::http::{Limits, Request};
    /// # use switchboard_core::ws::Message;
    /// # fn request(method: &str, target: &str, headers: &str) -> Request {
    /// #     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
    /// #     Request::parse(head.as_bytes(), &Limits::default()).unwrap().unwrap().0
    /// # }
    /// # fn get(target: &str) -> Request { request("GET", target, "") }
    /// # fn post(target: &str) -> Request { request("POST", target, "") }
    /// # fn upgrade(target: &str) -> Request {
    /// #     request("GET", target, "Upgrade: websocket\r\nConnection: Upgrade\r\n")
    /// # }
    /// # let now = Instant::now();
    /// # let mut server = Server::new(ServerConfig::default());
    /// # server.handle_request(&get("/engine.io/?EIO=4&transport=polling"), Bytes::new(), now);
    /// # let Some(ServerEvent::Open { sid, .. }) = server.poll_event() else { panic!() };
    /// # let polling = format!("/engine.io/?EIO=4&transport=polling&sid={sid}");
    /// // A polling session `sid`, `polling` the target of its polls:
    /// let RequestOutcome::Hold(poll) = server.handle_request(&get(&polling), Bytes::new(), now) else {
    ///     panic!()
    /// };
    /// server.poll_aborted(poll, now); // the client hung up
    /// let Some(ServerEvent::Close { reason, .. }) = server.poll_event() else { panic!() };
    /// assert_eq!(reason, CloseReason::TransportError);
    /// ```
    pub fn poll_aborted(&mut self, poll: PollId, _now: Instant) {
        let Some(sid) = self.polls.remove(&poll) else {
            return;
        };
        if let Some(session) = self.sessions.get_mut(&sid) {
            session.poll = None;
            self.close_session(&sid, CloseReason::TransportError, None);
        }
    }

    /// Another data request (`POST`) of session `sid` came while the
    /// driver still holds the answer to the last one. As in Node ("data
    /// request overlap from client"), the session closes (`transport
    /// error`) and `request` gets a `400`, with its CORS headers (as Node's
    /// CORS middleware adds them first), so a browser can read it.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use bytes::Bytes;
    /// # use switchboard_core::engineio::*;
    /// # use switchboard_core::http::{Limits, Request};
    /// # use switchboard_core::ws::Message;
    /// # fn request(method: &str, target: &str, headers: &str) -> Request {
    /// #     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
    /// #     Request::parse(head.as_bytes(), &Limits::default()).unwrap().unwrap().0
    /// # }
    /// # fn get(target: &str) -> Request { request("GET", target, "") }
    /// # fn post(target: &str) -> Request { request("POST", target, "") }
    /// # fn upgrade(target: &str) -> Request {
    /// #     request("GET", target, "Upgrade: websocket\r\nConnection: Upgrade\r\n")
    /// # }
    /// # let now = Instant::now();
    /// # let mut server = Server::new(ServerConfig::default());
    /// # server.handle_request(&get("/engine.io/?EIO=4&transport=polling"), Bytes::new(), now);
    /// # let Some(ServerEvent::Open { sid, .. }) = server.poll_event() else { panic!() };
    /// # let polling = format!("/engine.io/?EIO=4&transport=polling&sid={sid}");
    /// // The driver holds the answer to a `POST` of session `sid` when another comes.
    /// let response = server.post_overlapped(&post(&polling), &sid, now);
    /// assert_eq!(response.status, 400);
    /// let Some(ServerEvent::Close { reason, .. }) = server.poll_event() else { panic!() };
    /// assert_eq!(reason, CloseReason::TransportError);
    /// ```
    pub fn post_overlapped(&mut self, request: &Request, sid: &str, now: Instant) -> HttpResponse {
        self.post_aborted(sid, now);
        HttpResponse {
            status: 400,
            headers: self.cors_headers(request),
            body: Bytes::new(),
        }
    }

    /// The connection of a data request (`POST`) of session `sid` went
    /// away while the driver held its answer. As in Node ("data request
    /// connection closed prematurely"), the session closes (`transport
    /// error`).
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use bytes::Bytes;
    /// # use switchboard_core::engineio::*;
    /// # use switchboard_core::http::{Limits, Request};
    /// # use switchboard_core::ws::Message;
    /// # fn request(method: &str, target: &str, headers: &str) -> Request {
    /// #     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
    /// #     Request::parse(head.as_bytes(), &Limits::default()).unwrap().unwrap().0
    /// # }
    /// # fn get(target: &str) -> Request { request("GET", target, "") }
    /// # fn post(target: &str) -> Request { request("POST", target, "") }
    /// # fn upgrade(target: &str) -> Request {
    /// #     request("GET", target, "Upgrade: websocket\r\nConnection: Upgrade\r\n")
    /// # }
    /// # let now = Instant::now();
    /// # let mut server = Server::new(ServerConfig::default());
    /// # server.handle_request(&get("/engine.io/?EIO=4&transport=polling"), Bytes::new(), now);
    /// # let Some(ServerEvent::Open { sid, .. }) = server.poll_event() else { panic!() };
    /// # let polling = format!("/engine.io/?EIO=4&transport=polling&sid={sid}");
    /// // The connection of a `POST` of session `sid` went away.
    /// server.post_aborted(&sid, now);
    /// let Some(ServerEvent::Close { reason, .. }) = server.poll_event() else { panic!() };
    /// assert_eq!(reason, CloseReason::TransportError);
    /// ```
    pub fn post_aborted(&mut self, sid: &str, _now: Instant) {
        if self.sessions.contains_key(sid) {
            self.close_session(sid, CloseReason::TransportError, None);
        }
    }

    /// Sends a message to session `sid`. Over polling it is queued (and a
    /// held poll released); over WebSocket it is sent at once.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use bytes::Bytes;
    /// # use switchboard_core::engineio::*;
    /// # use switchboard_core::http::{Limits, Request};
    /// # use switchboard_core::ws::Message;
    /// # fn request(method: &str, target: &str, headers: &str) -> Request {
    /// #     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
    /// #     Request::parse(head.as_bytes(), &Limits::default()).unwrap().unwrap().0
    /// # }
    /// # fn get(target: &str) -> Request { request("GET", target, "") }
    /// # fn post(target: &str) -> Request { request("POST", target, "") }
    /// # fn upgrade(target: &str) -> Request {
    /// #     request("GET", target, "Upgrade: websocket\r\nConnection: Upgrade\r\n")
    /// # }
    /// # let now = Instant::now();
    /// # let mut server = Server::new(ServerConfig::default());
    /// # server.handle_request(&get("/engine.io/?EIO=4&transport=polling"), Bytes::new(), now);
    /// # let Some(ServerEvent::Open { sid, .. }) = server.poll_event() else { panic!() };
    /// # let polling = format!("/engine.io/?EIO=4&transport=polling&sid={sid}");
    /// // A polling session: queued for the next poll, which takes it at once.
    /// server.send(&sid, "one".into()).unwrap();
    /// server.send(&sid, MessageData::Binary(vec![1, 2, 3].into())).unwrap();
    /// assert_eq!(server.poll_transmit(), None);
    /// let RequestOutcome::Respond(response) = server.handle_request(&get(&polling), Bytes::new(), now)
    /// else {
    ///     panic!()
    /// };
    /// assert_eq!(response.body, "4one\x1ebAQID"); // binary as base64 in a v4 payload
    /// ```
    pub fn send(&mut self, sid: &str, data: MessageData) -> Result<(), SendError> {
        if !self.sessions.contains_key(sid) {
            return Err(SendError::UnknownSession);
        }
        self.enqueue(sid, Packet::Message(data)).map_err(|reason| {
            self.close_session(sid, reason, None);
            SendError::BufferFull
        })
    }

    /// Sends `data` to every session of `sids` (a broadcast), as
    /// [`Server::send`] would one by one, but encoded once per protocol
    /// revision for the WebSocket sessions, which share the encoded bytes.
    /// Unknown sessions are skipped; returns how many sessions it reached.
    ///
    /// ```
    /// use std::time::Instant;
    /// use bytes::Bytes;
    /// use switchboard_core::engineio::{MessageData, Server, ServerConfig, ServerEvent, Transmit};
    /// use switchboard_core::http::{Header, Headers, Request};
    ///
    /// let mut server = Server::new(ServerConfig::default());
    /// let upgrade = Request {
    ///     method: "GET".into(),
    ///     target: "/engine.io/?EIO=4&transport=websocket".into(),
    ///     version: 1,
    ///     headers: Headers(vec![
    ///         Header { name: "Upgrade".into(), value: "websocket".into() },
    ///         Header { name: "Connection".into(), value: "Upgrade".into() },
    ///     ]),
    /// };
    /// let now = Instant::now();
    /// let mut sids = Vec::new();
    /// for _ in 0..3 {
    ///     server.handle_request(&upgrade, Bytes::new(), now);
    ///     while let Some(event) = server.poll_event() {
    ///         if let ServerEvent::Open { sid, .. } = event {
    ///             sids.push(sid);
    ///         }
    ///     }
    /// }
    /// while server.poll_transmit().is_some() {} // the open packets
    ///
    /// let news = MessageData::Text("news".into());
    /// assert_eq!(server.send_many(sids.iter().map(|sid| &**sid), &news), 3);
    /// let sent: Vec<_> = std::iter::from_fn(|| server.poll_transmit()).collect();
    /// assert_eq!(sent.len(), 3);
    /// assert!(sent.iter().all(|t| matches!(t,
    ///     Transmit::WsSend { message, .. } if message.as_text() == Some("4news"))));
    /// ```
    pub fn send_many<'a>(
        &mut self,
        sids: impl IntoIterator<Item = &'a str>,
        data: &MessageData,
    ) -> usize {
        // Encoded once per protocol revision, and per binary support.
        let mut ws_forms: [Option<Message>; 4] = [None, None, None, None];
        let mut sent = 0;
        for sid in sids {
            let Some(session) = self.sessions.get(sid) else {
                continue;
            };
            let version = session.version;
            match session.transport {
                Transport::WebSocket(conn) => {
                    let binary = session.ws_binary;
                    let form = &mut ws_forms
                        [usize::from(version == ProtocolVersion::V4) * 2 + usize::from(binary)];
                    let message = form
                        .get_or_insert_with(|| {
                            ws_form(&Packet::Message(data.clone()), version, binary)
                        })
                        .clone();
                    self.transmits.push_back(Transmit::WsSend { conn, message });
                    sent += 1;
                }
                Transport::Polling => match self.enqueue(sid, Packet::Message(data.clone())) {
                    Ok(()) => sent += 1,
                    Err(reason) => self.close_session(sid, reason, None),
                },
            }
        }
        sent
    }

    /// Sends `messages` to session `sid` only if its transport can take
    /// them at once (Socket.IO's volatile emits): over WebSocket always,
    /// over polling only while a poll is held with nothing queued before
    /// them. Returns whether they were sent; all or none are.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use bytes::Bytes;
    /// # use switchboard_core::engineio::*;
    /// # use switchboard_core::http::{Limits, Request};
    /// # use switchboard_core::ws::Message;
    /// # fn request(method: &str, target: &str, headers: &str) -> Request {
    /// #     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
    /// #     Request::parse(head.as_bytes(), &Limits::default()).unwrap().unwrap().0
    /// # }
    /// # fn get(target: &str) -> Request { request("GET", target, "") }
    /// # fn post(target: &str) -> Request { request("POST", target, "") }
    /// # fn upgrade(target: &str) -> Request {
    /// #     request("GET", target, "Upgrade: websocket\r\nConnection: Upgrade\r\n")
    /// # }
    /// # let now = Instant::now();
    /// # let mut server = Server::new(ServerConfig::default());
    /// # server.handle_request(&get("/engine.io/?EIO=4&transport=polling"), Bytes::new(), now);
    /// # let Some(ServerEvent::Open { sid, .. }) = server.poll_event() else { panic!() };
    /// # let polling = format!("/engine.io/?EIO=4&transport=polling&sid={sid}");
    /// // A polling session without a poll held: dropped.
    /// assert_eq!(server.send_volatile(&sid, ["tick".into()]), Ok(false));
    /// // Once a poll is held: sent.
    /// server.handle_request(&get(&polling), Bytes::new(), now);
    /// assert_eq!(server.send_volatile(&sid, ["tick".into(), "tock".into()]), Ok(true));
    /// let Some(Transmit::PollResponse { response, .. }) = server.poll_transmit() else { panic!() };
    /// assert_eq!(response.body, "4tick\x1e4tock");
    /// ```
    pub fn send_volatile(
        &mut self,
        sid: &str,
        messages: impl IntoIterator<Item = MessageData>,
    ) -> Result<bool, SendError> {
        let Some(session) = self.sessions.get(sid) else {
            return Err(SendError::UnknownSession);
        };
        let writable = match session.transport {
            Transport::WebSocket(_) => true,
            Transport::Polling => session.poll.is_some() && session.queue.is_empty(),
        };
        if !writable {
            return Ok(false);
        }
        for data in messages {
            self.send(sid, data)?;
        }
        Ok(true)
    }

    /// Closes session `sid` (`forced close`). On polling, packets already
    /// queued go out with the `close` packet: in the held poll's answer,
    /// or, with no poll held, in the answer to the client's next poll (if
    /// it comes within the ping interval plus the ping timeout). A
    /// WebSocket is closed ([`Transmit::WsClose`]).
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use bytes::Bytes;
    /// # use switchboard_core::engineio::*;
    /// # use switchboard_core::http::{Limits, Request};
    /// # use switchboard_core::ws::Message;
    /// # fn request(method: &str, target: &str, headers: &str) -> Request {
    /// #     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
    /// #     Request::parse(head.as_bytes(), &Limits::default()).unwrap().unwrap().0
    /// # }
    /// # fn get(target: &str) -> Request { request("GET", target, "") }
    /// # fn post(target: &str) -> Request { request("POST", target, "") }
    /// # fn upgrade(target: &str) -> Request {
    /// #     request("GET", target, "Upgrade: websocket\r\nConnection: Upgrade\r\n")
    /// # }
    /// # let now = Instant::now();
    /// # let mut server = Server::new(ServerConfig::default());
    /// # server.handle_request(&get("/engine.io/?EIO=4&transport=polling"), Bytes::new(), now);
    /// # let Some(ServerEvent::Open { sid, .. }) = server.poll_event() else { panic!() };
    /// # let polling = format!("/engine.io/?EIO=4&transport=polling&sid={sid}");
    /// // A polling session, not polling at the moment:
    /// server.send(&sid, "bye".into()).unwrap();
    /// server.close(&sid);
    /// let closed = ServerEvent::Close { sid: sid.clone(), reason: CloseReason::ForcedClose };
    /// assert_eq!(server.poll_event(), Some(closed));
    /// assert_eq!(server.send(&sid, "late".into()), Err(SendError::UnknownSession));
    ///
    /// let RequestOutcome::Respond(last) = server.handle_request(&get(&polling), Bytes::new(), now)
    /// else {
    ///     panic!()
    /// };
    /// assert_eq!(last.body, "4bye\x1e1");
    /// ```
    pub fn close(&mut self, sid: &str) {
        self.close_session(sid, CloseReason::ForcedClose, None);
    }

    /// Whether [`Server::poll_transmit`] or [`Server::poll_event`] has
    /// something to hand out.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use bytes::Bytes;
    /// # use switchboard_core::engineio::*;
    /// # use switchboard_core::http::{Limits, Request};
    /// # use switchboard_core::ws::Message;
    /// # fn request(method: &str, target: &str, headers: &str) -> Request {
    /// #     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
    /// #     Request::parse(head.as_bytes(), &Limits::default()).unwrap().unwrap().0
    /// # }
    /// # fn get(target: &str) -> Request { request("GET", target, "") }
    /// # fn post(target: &str) -> Request { request("POST", target, "") }
    /// # fn upgrade(target: &str) -> Request {
    /// #     request("GET", target, "Upgrade: websocket\r\nConnection: Upgrade\r\n")
    /// # }
    /// # let now = Instant::now();
    /// # let mut server = Server::new(ServerConfig::default());
    /// # let target = "/engine.io/?EIO=4&transport=websocket";
    /// # let outcome = server.handle_request(&upgrade(target), Bytes::new(), now);
    /// # let RequestOutcome::AcceptWebSocket { conn } = outcome else { panic!() };
    /// # let Some(ServerEvent::Open { sid, .. }) = server.poll_event() else { panic!() };
    /// # server.poll_transmit(); // the open packet
    /// // A WebSocket session `sid`:
    /// assert!(!server.has_pending_output());
    /// server.send(&sid, "hi".into()).unwrap();
    /// assert!(server.has_pending_output());
    /// while server.poll_transmit().is_some() {}
    /// assert!(!server.has_pending_output());
    /// ```
    pub fn has_pending_output(&self) -> bool {
        !self.transmits.is_empty() || !self.flush_queue.is_empty() || !self.events.is_empty()
    }

    /// Runs the timers due at `now`: heartbeats and upgrade timeouts.
    ///
    /// In protocol v4 the server pings every `ping_interval` and closes a
    /// session whose pong does not come within `ping_timeout`:
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use bytes::Bytes;
    /// # use switchboard_core::engineio::*;
    /// # use switchboard_core::http::{Limits, Request};
    /// # use switchboard_core::ws::Message;
    /// # fn request(method: &str, target: &str, headers: &str) -> Request {
    /// #     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
    /// #     Request::parse(head.as_bytes(), &Limits::default()).unwrap().unwrap().0
    /// # }
    /// # fn get(target: &str) -> Request { request("GET", target, "") }
    /// # fn post(target: &str) -> Request { request("POST", target, "") }
    /// # fn upgrade(target: &str) -> Request {
    /// #     request("GET", target, "Upgrade: websocket\r\nConnection: Upgrade\r\n")
    /// # }
    /// # let now = Instant::now();
    /// # let mut server = Server::new(ServerConfig::default());
    /// # let target = "/engine.io/?EIO=4&transport=websocket";
    /// # let outcome = server.handle_request(&upgrade(target), Bytes::new(), now);
    /// # let RequestOutcome::AcceptWebSocket { conn } = outcome else { panic!() };
    /// # let Some(ServerEvent::Open { sid, .. }) = server.poll_event() else { panic!() };
    /// # server.poll_transmit(); // the open packet
    /// let secs = Duration::from_secs;
    /// // A WebSocket session opened at `now`, with the default 25 s and 20 s:
    /// assert_eq!(server.poll_timeout(), Some(now + secs(25)));
    /// server.handle_timeout(now + secs(25));
    /// assert_eq!(server.poll_transmit(), Some(Transmit::WsSend { conn, message: Message::text("2") }));
    /// assert_eq!(server.poll_timeout(), Some(now + secs(45)));
    ///
    /// // No pong.
    /// server.handle_timeout(now + secs(45));
    /// assert_eq!(server.poll_transmit(), Some(Transmit::WsClose { conn }));
    /// let Some(ServerEvent::Close { reason, .. }) = server.poll_event() else { panic!() };
    /// assert_eq!(reason, CloseReason::PingTimeout);
    /// ```
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = Some(now);
        let mut due = Vec::new();
        while self.deadlines.first().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, sid)) = self.deadlines.pop_first() {
                due.push(sid);
            }
        }
        due.sort_unstable();
        due.dedup();
        let mut pings = Vec::new();
        let mut timeouts = Vec::new();
        let mut dropped = Vec::new();
        for sid in &due {
            let Some(session) = self.sessions.get_mut(sid) else {
                if self
                    .closing
                    .get(sid)
                    .is_some_and(|closing| closing.expires <= now)
                    && let Some(Closing {
                        upgrade: Some(conn),
                        ..
                    }) = self.closing.remove(sid)
                {
                    self.drop_ws(conn);
                }
                continue;
            };
            if let Some(upgrade) = session.upgrade
                && upgrade.deadline <= now
            {
                session.upgrade = None;
                dropped.push(upgrade.conn);
            }
            if session.timeout_at.is_some_and(|t| t <= now) {
                timeouts.push(sid.clone());
            } else if session.ping_at.is_some_and(|t| t <= now) {
                session.ping_at = None;
                session.timeout_at = Some(now + self.config.ping_timeout);
                session.timeout_extended = false;
                pings.push(sid.clone());
            }
        }
        for conn in dropped {
            self.drop_ws(conn);
        }
        for sid in pings {
            if let Err(reason) = self.enqueue(&sid, Packet::Ping(None)) {
                self.close_session(&sid, reason, None);
            }
        }
        for sid in timeouts {
            self.close_session(&sid, CloseReason::PingTimeout, None);
        }
        for sid in due {
            if let Some(deadline) = self.sessions.get(&sid).and_then(Session::next_deadline) {
                self.deadlines.insert((deadline, sid));
            }
        }
    }

    /// The next time [`Server::handle_timeout`] should run. It may come
    /// before any timer is due (a deadline that moved later, as a pong
    /// moves the next ping, leaves its earlier time behind); running the
    /// timers then does nothing but find the next one.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use bytes::Bytes;
    /// # use switchboard_core::engineio::*;
    /// # use switchboard_core::http::{Limits, Request};
    /// # use switchboard_core::ws::Message;
    /// # fn request(method: &str, target: &str, headers: &str) -> Request {
    /// #     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
    /// #     Request::parse(head.as_bytes(), &Limits::default()).unwrap().unwrap().0
    /// # }
    /// # fn get(target: &str) -> Request { request("GET", target, "") }
    /// # fn post(target: &str) -> Request { request("POST", target, "") }
    /// # fn upgrade(target: &str) -> Request {
    /// #     request("GET", target, "Upgrade: websocket\r\nConnection: Upgrade\r\n")
    /// # }
    /// # let now = Instant::now();
    /// # let mut server = Server::new(ServerConfig::default());
    /// # let target = "/engine.io/?EIO=4&transport=websocket";
    /// # let outcome = server.handle_request(&upgrade(target), Bytes::new(), now);
    /// # let RequestOutcome::AcceptWebSocket { conn } = outcome else { panic!() };
    /// # let Some(ServerEvent::Open { sid, .. }) = server.poll_event() else { panic!() };
    /// # server.poll_transmit(); // the open packet
    /// let secs = Duration::from_secs;
    /// server.handle_timeout(now + secs(25)); // the ping
    /// # server.poll_transmit();
    /// server.ws_message(conn, Message::text("3"), now + secs(26)); // the pong
    /// // The pong deadline is still asked for, then the next ping.
    /// assert_eq!(server.poll_timeout(), Some(now + secs(45)));
    /// server.handle_timeout(now + secs(45));
    /// assert_eq!(server.poll_event(), None);
    /// assert_eq!(server.poll_timeout(), Some(now + secs(51)));
    /// ```
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// The next application event.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// The next thing to write (see [`Transmit`]). A held poll is answered
    /// here with everything queued for its session by then, so call it
    /// after a batch of sends rather than after each.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use bytes::Bytes;
    /// # use switchboard_core::engineio::*;
    /// # use switchboard_core::http::{Limits, Request};
    /// # use switchboard_core::ws::Message;
    /// # fn request(method: &str, target: &str, headers: &str) -> Request {
    /// #     let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
    /// #     Request::parse(head.as_bytes(), &Limits::default()).unwrap().unwrap().0
    /// # }
    /// # fn get(target: &str) -> Request { request("GET", target, "") }
    /// # fn post(target: &str) -> Request { request("POST", target, "") }
    /// # fn upgrade(target: &str) -> Request {
    /// #     request("GET", target, "Upgrade: websocket\r\nConnection: Upgrade\r\n")
    /// # }
    /// # let now = Instant::now();
    /// # let mut server = Server::new(ServerConfig::default());
    /// # server.handle_request(&get("/engine.io/?EIO=4&transport=polling"), Bytes::new(), now);
    /// # let Some(ServerEvent::Open { sid, .. }) = server.poll_event() else { panic!() };
    /// # let polling = format!("/engine.io/?EIO=4&transport=polling&sid={sid}");
    /// # server.handle_request(&get(&polling), Bytes::new(), now);
    /// // A polling session, its poll held:
    /// server.send(&sid, "a".into()).unwrap();
    /// server.send(&sid, "b".into()).unwrap();
    /// let Some(Transmit::PollResponse { response, .. }) = server.poll_transmit() else { panic!() };
    /// assert_eq!(response.body, "4a\x1e4b");
    /// assert_eq!(server.poll_transmit(), None);
    /// ```
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        loop {
            if let Some(transmit) = self.transmits.pop_front() {
                return Some(transmit);
            }
            let sid = self.flush_queue.pop_front()?;
            let Some(session) = self.sessions.get_mut(&sid) else {
                continue;
            };
            session.flush_scheduled = false;
            if session.queue.is_empty() {
                continue;
            }
            let Some(poll) = session.poll.take() else {
                continue;
            };
            self.polls.remove(&poll.id);
            let packets = session
                .queue
                .take_batch(self.config.max_payload, session.version);
            let response = payload_response(session, &packets, poll.headers);
            return Some(Transmit::PollResponse {
                poll: poll.id,
                response,
            });
        }
    }

    fn handshake(
        &mut self,
        req: &Request,
        transport: TransportKind,
        version: ProtocolVersion,
        is_upgrade: bool,
        mut cors: HeaderList,
        now: Instant,
    ) -> RequestOutcome {
        if req.method != "GET" {
            return error(ErrorCode::BadHandshakeMethod, cors);
        }
        if transport == TransportKind::WebSocket && !is_upgrade {
            return error(ErrorCode::BadRequest, cors);
        }
        if let Some(allow) = &self.config.allow_request
            && allow(req).is_err()
        {
            return error(ErrorCode::Forbidden, cors);
        }
        if self.is_full() {
            if self.full_warning.due(now) {
                tracing::warn!(
                    max_sessions = self.config.max_sessions,
                    "Engine.IO session limit reached: refusing handshakes with 503"
                );
            }
            return refusal(503, ErrorCode::Forbidden, "Too many sessions", cors);
        }
        let mut sid = new_sid();
        self.shard.stamp_sid(&mut sid);
        let upgrades = if transport == TransportKind::Polling
            && self.config.allow_upgrades
            && self.config.websocket
        {
            vec![TransportKind::WebSocket.as_str().to_owned()]
        } else {
            Vec::new()
        };
        let open = Packet::Open(OpenPacket {
            sid: sid.clone(),
            upgrades,
            ping_interval: millis(self.config.ping_interval),
            ping_timeout: millis(self.config.ping_timeout),
            max_payload: Some(self.config.max_payload as u64),
        });
        let (ping_at, timeout_at) = match version {
            ProtocolVersion::V4 => (Some(now + self.config.ping_interval), None),
            ProtocolVersion::V3 => (
                None,
                Some(now + self.config.ping_interval + self.config.ping_timeout),
            ),
        };
        let query = req.query().unwrap_or("");
        let sid: Arc<str> = sid.into();
        let mut session = Session {
            sid: sid.clone(),
            version,
            supports_binary: query_param(query, "b64").is_none(),
            ws_binary: query_param(query, "b64").is_none(),
            transport: Transport::Polling,
            queue: PollQueue::default(),
            poll: None,
            upgrade: None,
            ping_at,
            timeout_at,
            flush_scheduled: false,
            timeout_extended: false,
        };
        let outcome = match transport {
            TransportKind::Polling => {
                if let Some(name) = &self.config.cookie {
                    cors.push((
                        "Set-Cookie".into(),
                        format!("{name}={sid}; Path=/; HttpOnly; SameSite=Lax"),
                    ));
                }
                RequestOutcome::Respond(payload_response(&session, &[open], cors))
            }
            TransportKind::WebSocket => {
                self.next_id += 1;
                let conn = ConnId(self.next_id);
                session.transport = Transport::WebSocket(conn);
                self.conns.insert(conn, sid.clone());
                self.transmits.push_back(Transmit::WsSend {
                    conn,
                    message: open.encode_ws(version),
                });
                RequestOutcome::AcceptWebSocket { conn }
            }
        };
        if let Some(deadline) = session.next_deadline() {
            self.deadlines.insert((deadline, sid.clone()));
        }
        self.sessions.insert(sid.clone(), session);
        self.events.push_back(ServerEvent::Open {
            sid,
            version,
            transport,
            request: req.clone(),
        });
        outcome
    }

    fn poll_request(&mut self, sid: Arc<str>, cors: HeaderList) -> RequestOutcome {
        let Some(session) = self.sessions.get_mut(&sid) else {
            return error(ErrorCode::UnknownSid, cors);
        };
        if session.poll.is_some() {
            // A duplicate concurrent poll: Node's "overlap from client".
            self.close_session(&sid, CloseReason::TransportError, None);
            return error(ErrorCode::BadRequest, cors);
        }
        if !session.queue.is_empty() {
            let packets = session
                .queue
                .take_batch(self.config.max_payload, session.version);
            return RequestOutcome::Respond(payload_response(session, &packets, cors));
        }
        if session.upgrade.is_some_and(|u| u.probed) {
            return RequestOutcome::Respond(payload_response(session, &[Packet::Noop], cors));
        }
        self.next_id += 1;
        let id = PollId(self.next_id);
        session.poll = Some(HeldPoll { id, headers: cors });
        self.polls.insert(id, sid);
        RequestOutcome::Hold(id)
    }

    fn data_request(
        &mut self,
        sid: Arc<str>,
        req: &Request,
        body: Bytes,
        cors: HeaderList,
        now: Instant,
    ) -> RequestOutcome {
        let Some(session) = self.sessions.get(&sid) else {
            return error(ErrorCode::UnknownSid, cors);
        };
        if body.len() > self.config.max_payload {
            self.close_session(&sid, CloseReason::TransportError, None);
            return RequestOutcome::Respond(HttpResponse {
                status: 413,
                headers: cors,
                body: Bytes::new(),
            });
        }
        let kind = PayloadKind::from_content_type(req.headers.get("content-type"));
        let limits = PayloadLimits {
            max_bytes: self.config.max_payload,
            ..PayloadLimits::default()
        };
        let decoder = match decode_payload(body, kind, session.version, &limits) {
            Ok(decoder) => decoder,
            Err(e) => {
                self.close_session(&sid, CloseReason::ParseError, None);
                return error_with_status(ErrorCode::BadRequest, e.status(), cors);
            }
        };
        for item in decoder {
            let result = match item {
                Ok(packet) => self.on_packet(&sid, packet, now),
                Err(_) => Err(CloseReason::ParseError),
            };
            match result {
                Ok(()) => {}
                Err(CloseReason::TransportClose) => {
                    self.close_session(&sid, CloseReason::TransportClose, None);
                    break;
                }
                Err(reason) => {
                    self.close_session(&sid, reason, None);
                    return error(ErrorCode::BadRequest, cors);
                }
            }
        }
        let mut headers = cors;
        headers.push(("Content-Type".into(), "text/html".into()));
        push_no_store(&mut headers);
        RequestOutcome::Respond(HttpResponse {
            status: 200,
            headers,
            body: Bytes::from_static(b"ok"),
        })
    }

    /// A packet from the client on the session's current transport.
    fn on_packet(&mut self, sid: &str, packet: Packet, now: Instant) -> Result<(), CloseReason> {
        let Some(session) = self.sessions.get_mut(sid) else {
            return Ok(());
        };
        // As Node: data that arrives while a pong is awaited shows the
        // client is alive, and buys it one more pingTimeout (once per ping),
        // so a large message in flight does not time the session out.
        if session.version == ProtocolVersion::V4
            && session.timeout_at.is_some()
            && !session.timeout_extended
            && !matches!(packet, Packet::Pong(_))
        {
            session.timeout_at = Some(now + self.config.ping_timeout);
            session.timeout_extended = true;
        }
        match packet {
            Packet::Message(data) => {
                self.events.push_back(ServerEvent::Message {
                    sid: session.sid.clone(),
                    data,
                });
            }
            Packet::Pong(_) => {
                if session.version != ProtocolVersion::V4 {
                    return Err(CloseReason::TransportError);
                }
                if session.timeout_at.take().is_some() {
                    let ping_at = now + self.config.ping_interval;
                    session.ping_at = Some(ping_at);
                    // The next ping may come before the pong deadline
                    // the index still holds (an interval shorter than the
                    // timeout): index it too.
                    self.deadlines.insert((ping_at, session.sid.clone()));
                }
            }
            Packet::Ping(data) => {
                if session.version != ProtocolVersion::V3 {
                    return Err(CloseReason::TransportError);
                }
                session.timeout_at =
                    Some(now + self.config.ping_interval + self.config.ping_timeout);
                self.enqueue(sid, Packet::Pong(data))?;
            }
            Packet::Close => return Err(CloseReason::TransportClose),
            Packet::Open(_) | Packet::Upgrade | Packet::Noop => {}
        }
        Ok(())
    }

    /// A packet on an upgrade's probe WebSocket.
    fn probe_packet(&mut self, sid: &str, conn: ConnId, packet: Packet) {
        let Some(session) = self.sessions.get_mut(sid) else {
            return;
        };
        match packet {
            Packet::Ping(Some(data)) if data == PROBE => {
                send_ws(
                    &mut self.transmits,
                    conn,
                    session.version,
                    true,
                    [probe_answer()],
                );
                if let Some(upgrade) = &mut session.upgrade {
                    upgrade.probed = true;
                }
                release_with_noop(
                    session,
                    self.config.max_payload,
                    &mut self.polls,
                    &mut self.transmits,
                );
            }
            Packet::Upgrade => {
                if let Some(upgrade) = session.upgrade.take() {
                    session.ws_binary = upgrade.binary;
                }
                release_with_noop(
                    session,
                    self.config.max_payload,
                    &mut self.polls,
                    &mut self.transmits,
                );
                session.transport = Transport::WebSocket(conn);
                send_ws(
                    &mut self.transmits,
                    conn,
                    session.version,
                    session.ws_binary,
                    session.queue.drain(),
                );
            }
            _ => self.drop_probe(sid),
        }
    }

    /// A message on the upgrade WebSocket of a session closed while no
    /// poll was held ([`Closing::upgrade`]): the probe is answered, and the
    /// upgrade gets the packets and `close` instead of the next poll.
    fn closing_upgrade_message(
        &mut self,
        sid: &Arc<str>,
        conn: ConnId,
        message: Message,
        now: Instant,
    ) {
        let Some(closing) = self
            .closing
            .get(sid)
            .filter(|closing| closing.upgrade == Some(conn))
        else {
            self.conns.remove(&conn);
            return;
        };
        let (version, binary) = (closing.version, closing.upgrade_binary);
        let packet = match message {
            Message::Text(text) if text.len() <= self.config.max_payload => {
                Packet::decode_ws_text(text, version).ok()
            }
            Message::Close(_) => return self.ws_closed(conn, now),
            Message::Ping(_) | Message::Pong(_) => return,
            Message::Text(_) | Message::Binary(_) => None,
        };
        match packet {
            Some(Packet::Ping(Some(data))) if data == PROBE => {
                send_ws(&mut self.transmits, conn, version, true, [probe_answer()]);
            }
            Some(Packet::Upgrade) => {
                let mut closing = self.closing.remove(sid).expect("looked up above");
                send_ws(
                    &mut self.transmits,
                    conn,
                    version,
                    binary,
                    closing.packets.drain(),
                );
                self.drop_ws(conn);
            }
            // Anything else: the upgrade is given up, as for an open session;
            // the next poll still gets the packets.
            _ => {
                if let Some(closing) = self.closing.get_mut(sid) {
                    closing.upgrade = None;
                }
                self.drop_ws(conn);
            }
        }
    }

    fn drop_probe(&mut self, sid: &str) {
        if let Some(upgrade) = self.sessions.get_mut(sid).and_then(|s| s.upgrade.take()) {
            self.drop_ws(upgrade.conn);
        }
    }

    /// Forgets WebSocket `conn` and has the adapter close it.
    fn drop_ws(&mut self, conn: ConnId) {
        self.conns.remove(&conn);
        self.transmits.push_back(Transmit::WsClose { conn });
    }

    /// Queues a packet for the client (polling) or sends it (WebSocket).
    fn enqueue(&mut self, sid: &str, packet: Packet) -> Result<(), CloseReason> {
        let Some(session) = self.sessions.get_mut(sid) else {
            return Ok(());
        };
        match session.transport {
            Transport::WebSocket(conn) => {
                self.transmits.push_back(Transmit::WsSend {
                    conn,
                    message: ws_form(&packet, session.version, session.ws_binary),
                });
            }
            Transport::Polling => {
                if session.queue.bytes + PollQueue::cost(&packet) > self.config.max_buffered_bytes {
                    return Err(CloseReason::BufferFull);
                }
                session.queue.push_back(packet);
                if session.poll.is_some() && !session.flush_scheduled {
                    session.flush_scheduled = true;
                    self.flush_queue.push_back(session.sid.clone());
                }
            }
        }
        Ok(())
    }

    /// Closes a session: answers its held poll with a `close` packet
    /// (preceded by what is queued on a forced close), closes its
    /// WebSockets (except `closed_conn`, already gone), reports the close.
    fn close_session(&mut self, sid: &str, reason: CloseReason, closed_conn: Option<ConnId>) {
        let Some(mut session) = self.sessions.remove(sid) else {
            return;
        };
        // On a forced close a polling client is owed what was queued, then
        // the `close`.
        let owes_queue =
            reason == CloseReason::ForcedClose && session.transport == Transport::Polling;
        if owes_queue {
            session.queue.push_back(Packet::Close);
        }
        if let Some(poll) = session.poll.take() {
            self.polls.remove(&poll.id);
            let packets = if owes_queue {
                // What fits in one response; the next poll gets the rest.
                session
                    .queue
                    .take_batch(self.config.max_payload, session.version)
            } else if reason == CloseReason::TransportClose {
                // As Node's polling transport: when the client itself
                // closed (a `close` packet), its pending poll just ends
                // with a noop.
                vec![Packet::Noop]
            } else {
                vec![Packet::Close]
            };
            let response = payload_response(&session, &packets, poll.headers);
            self.transmits.push_back(Transmit::PollResponse {
                poll: poll.id,
                response,
            });
        }
        if owes_queue
            && !session.queue.is_empty()
            && let Some(now) = self.last_now
        {
            // No poll to answer now (or more than one response holds): the
            // client's next poll gets the rest and the close.
            let packets = std::mem::take(&mut session.queue);
            let expires = now + self.config.ping_interval + self.config.ping_timeout;
            // In the deadline index like the sessions' own deadlines, so
            // that `poll_timeout` never scans the closing sessions.
            self.deadlines.insert((expires, session.sid.clone()));
            let upgrade = session.upgrade.take();
            self.closing.insert(
                session.sid.clone(),
                Closing {
                    version: session.version,
                    supports_binary: session.supports_binary,
                    packets,
                    expires,
                    upgrade: upgrade.map(|upgrade| upgrade.conn),
                    upgrade_binary: upgrade.is_none_or(|upgrade| upgrade.binary),
                },
            );
        }
        let conns = [
            match session.transport {
                Transport::WebSocket(conn) => Some(conn),
                Transport::Polling => None,
            },
            session.upgrade.map(|u| u.conn),
        ];
        for conn in conns.into_iter().flatten() {
            self.conns.remove(&conn);
            if Some(conn) != closed_conn {
                self.transmits.push_back(Transmit::WsClose { conn });
            }
        }
        self.events.push_back(ServerEvent::Close {
            sid: session.sid,
            reason,
        });
    }

    fn cors_headers(&self, req: &Request) -> HeaderList {
        let cors = &self.config.cors;
        let origin = req.headers.get("origin");
        let allowed = match (&cors.origins, origin) {
            (AllowedOrigins::Any, None) if !cors.credentials => Some("*"),
            (AllowedOrigins::Any, Some(_)) if !cors.credentials => Some("*"),
            (AllowedOrigins::Any, Some(o)) => Some(o),
            (AllowedOrigins::List(list), Some(o)) if list.iter().any(|a| a == o) => Some(o),
            _ => None,
        };
        let mut headers = Vec::new();
        if let Some(allowed) = allowed {
            headers.push(("Access-Control-Allow-Origin".into(), allowed.to_owned()));
            if cors.credentials {
                headers.push(("Access-Control-Allow-Credentials".into(), "true".into()));
            }
            if allowed != "*" {
                headers.push(("Vary".into(), "Origin".into()));
            }
        }
        headers
    }

    fn preflight(&self, req: &Request, mut headers: HeaderList) -> HttpResponse {
        headers.push((
            "Access-Control-Allow-Methods".into(),
            "GET,HEAD,PUT,PATCH,POST,DELETE".into(),
        ));
        if let Some(asked) = req.headers.get("access-control-request-headers") {
            headers.push(("Access-Control-Allow-Headers".into(), asked.to_owned()));
            headers.push(("Vary".into(), "Access-Control-Request-Headers".into()));
        }
        HttpResponse {
            status: 204,
            headers,
            body: Bytes::new(),
        }
    }
}

/// The server's answer to the client's upgrade probe (`3probe`).
fn probe_answer() -> Packet {
    Packet::Pong(Some(PROBE.into()))
}

/// Queues `packets` for WebSocket `conn`, in order; binary messages as
/// base64 text unless `binary` (see [`ws_form`]).
fn send_ws(
    transmits: &mut VecDeque<Transmit>,
    conn: ConnId,
    version: ProtocolVersion,
    binary: bool,
    packets: impl IntoIterator<Item = Packet>,
) {
    transmits.extend(packets.into_iter().map(|packet| Transmit::WsSend {
        conn,
        message: ws_form(&packet, version, binary),
    }));
}

/// `packet` as a WebSocket message for a peer that takes binary frames
/// (`binary`) or not (its WebSocket request had `b64`): then a binary
/// message goes as its base64 text form, as Node's WebSocket transport
/// encodes it when `supportsBinary` is false.
fn ws_form(packet: &Packet, version: ProtocolVersion, binary: bool) -> Message {
    if !binary && packet.is_binary() {
        Message::text(packet.encode_text(version))
    } else {
        packet.encode_ws(version)
    }
}

fn release_with_noop(
    session: &mut Session,
    max_payload: usize,
    polls: &mut IdMap<PollId, Arc<str>>,
    transmits: &mut VecDeque<Transmit>,
) {
    if let Some(poll) = session.poll.take() {
        polls.remove(&poll.id);
        let packets = if session.queue.is_empty() {
            vec![Packet::Noop]
        } else {
            session.queue.take_batch(max_payload, session.version)
        };
        let response = payload_response(session, &packets, poll.headers);
        transmits.push_back(Transmit::PollResponse {
            poll: poll.id,
            response,
        });
    }
}

/// A polling session's packets waiting for a poll, and what they cost
/// ([`ServerConfig::max_buffered_bytes`]).
#[derive(Debug, Default)]
struct PollQueue {
    packets: VecDeque<Packet>,
    /// The sum of the packets' [`PollQueue::cost`].
    bytes: usize,
}

impl PollQueue {
    /// What a queued packet counts against the bound: its estimated
    /// encoded size and its bookkeeping.
    fn cost(packet: &Packet) -> usize {
        packet.text_len_hint() + 64
    }

    fn push_back(&mut self, packet: Packet) {
        self.bytes += Self::cost(&packet);
        self.packets.push_back(packet);
    }

    fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// Takes every packet.
    fn drain(&mut self) -> std::collections::vec_deque::Drain<'_, Packet> {
        self.bytes = 0;
        self.packets.drain(..)
    }

    /// Takes packets for one poll response: at least one, then more while
    /// their estimated encoded size stays within `max_bytes`.
    fn take_batch(&mut self, max_bytes: usize, version: ProtocolVersion) -> Vec<Packet> {
        self.take(max_bytes, true, version)
    }

    /// Takes packets while their estimated encoded size (with separators
    /// before each) stays within `max_bytes`; maybe none.
    fn take_within(&mut self, max_bytes: usize, version: ProtocolVersion) -> Vec<Packet> {
        self.take(max_bytes, false, version)
    }

    fn take(
        &mut self,
        max_bytes: usize,
        at_least_one: bool,
        version: ProtocolVersion,
    ) -> Vec<Packet> {
        let mut batch = Vec::new();
        let mut size = 0;
        while let Some(packet) = self.packets.front() {
            let hint = packet.text_len_hint();
            let len = match version {
                // The record separator before each but the first.
                ProtocolVersion::V4 => hint + usize::from(!batch.is_empty() || !at_least_one),
                // Each framed: `<length>:` (string payloads), or a kind
                // byte, length digits and `0xFF` (binary payloads, whose
                // binary packets are shorter than their base64 hint).
                ProtocolVersion::V3 => hint + 2 + decimal_digits(hint),
            };
            if (!batch.is_empty() || !at_least_one) && size + len > max_bytes {
                break;
            }
            size += len;
            self.bytes -= Self::cost(packet);
            batch.extend(self.packets.pop_front());
        }
        batch
    }
}

/// How many decimal digits `n` is written with.
fn decimal_digits(n: usize) -> usize {
    n.checked_ilog10().map_or(1, |digits| digits as usize + 1)
}

fn payload_response(session: &Session, packets: &[Packet], headers: HeaderList) -> HttpResponse {
    let payload = encode_payload(packets, session.version, session.supports_binary);
    polling_response(payload, headers)
}

/// A poll's answer: `payload`, with its content type.
fn polling_response(payload: EncodedPayload, mut headers: HeaderList) -> HttpResponse {
    let content_type = match payload.kind() {
        PayloadKind::Text => "text/plain; charset=UTF-8",
        PayloadKind::Binary => "application/octet-stream",
    };
    headers.push(("Content-Type".into(), content_type.into()));
    push_no_store(&mut headers);
    HttpResponse {
        status: 200,
        headers,
        body: payload.into_bytes(),
    }
}

/// As Node's polling transport, which marks each of its answers (a poll's
/// packets, a `POST`'s `ok`) so: a cache must not hand a client an old
/// answer again (a client whose polls carry no `t` parameter would get
/// the same packets twice).
fn push_no_store(headers: &mut HeaderList) {
    headers.push(("Cache-Control".into(), "no-store".into()));
}

fn error(code: ErrorCode, headers: HeaderList) -> RequestOutcome {
    error_with_status(code, code.status(), headers)
}

fn error_with_status(code: ErrorCode, status: u16, headers: HeaderList) -> RequestOutcome {
    refusal(status, code, code.message(), headers)
}

fn refusal(status: u16, code: ErrorCode, message: &str, mut headers: HeaderList) -> RequestOutcome {
    headers.push(("Content-Type".into(), "application/json".into()));
    let body = format!(r#"{{"code":{},"message":"{message}"}}"#, code as u8);
    RequestOutcome::Respond(HttpResponse {
        status,
        headers,
        body: body.into(),
    })
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Header, Headers};
    use proptest::prelude::*;

    const OPEN_TAIL: &str =
        r#"","upgrades":["websocket"],"pingInterval":300,"pingTimeout":200,"maxPayload":1000000}"#;

    fn config() -> ServerConfig {
        ServerConfig {
            ping_interval: Duration::from_millis(300),
            ping_timeout: Duration::from_millis(200),
            ..ServerConfig::default()
        }
    }

    fn request(method: &str, target: &str, headers: &[(&str, &str)]) -> Request {
        Request {
            method: method.into(),
            target: target.into(),
            version: 1,
            headers: Headers(
                headers
                    .iter()
                    .map(|(n, v)| Header {
                        name: (*n).into(),
                        value: (*v).into(),
                    })
                    .collect(),
            ),
        }
    }

    const WS: &[(&str, &str)] = &[("Upgrade", "websocket"), ("Connection", "Upgrade")];

    fn get(server: &mut Server, target: &str, now: Instant) -> RequestOutcome {
        server.handle_request(&request("GET", target, &[]), Bytes::new(), now)
    }

    fn post(server: &mut Server, sid: &str, body: &str, now: Instant) -> RequestOutcome {
        let target = format!("/engine.io/?EIO=4&transport=polling&sid={sid}");
        server.handle_request(
            &request("POST", &target, &[]),
            Bytes::copy_from_slice(body.as_bytes()),
            now,
        )
    }

    fn poll(server: &mut Server, sid: &str, now: Instant) -> RequestOutcome {
        get(
            server,
            &format!("/engine.io/?EIO=4&transport=polling&sid={sid}"),
            now,
        )
    }

    fn respond(outcome: RequestOutcome) -> (u16, String) {
        match outcome {
            RequestOutcome::Respond(r) => (r.status, String::from_utf8(r.body.to_vec()).unwrap()),
            other => panic!("expected a response, got {other:?}"),
        }
    }

    fn held(outcome: RequestOutcome) -> PollId {
        match outcome {
            RequestOutcome::Hold(id) => id,
            other => panic!("expected a held poll, got {other:?}"),
        }
    }

    fn accepted(outcome: RequestOutcome) -> ConnId {
        match outcome {
            RequestOutcome::AcceptWebSocket { conn } => conn,
            other => panic!("expected a websocket, got {other:?}"),
        }
    }

    fn assert_error(outcome: RequestOutcome, status: u16, code: u8) {
        match outcome {
            RequestOutcome::Respond(r) => {
                assert_eq!(r.status, status);
                let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
                assert_eq!(json["code"], code, "{json}");
                assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
            }
            other => panic!("expected an error, got {other:?}"),
        }
    }

    /// A polling handshake; returns the sid and drains the Open event.
    fn handshake(server: &mut Server, now: Instant) -> String {
        let (status, body) = respond(get(server, "/engine.io/?EIO=4&transport=polling", now));
        assert_eq!(status, 200);
        let open = OpenPacket::from_json(&body[1..]).unwrap();
        assert!(matches!(
            server.poll_event(),
            Some(ServerEvent::Open { .. })
        ));
        open.sid
    }

    fn poll_response(server: &mut Server) -> (PollId, String) {
        match server.poll_transmit() {
            Some(Transmit::PollResponse { poll, response }) => {
                (poll, String::from_utf8(response.body.to_vec()).unwrap())
            }
            other => panic!("expected a poll response, got {other:?}"),
        }
    }

    fn ws_send(server: &mut Server) -> (ConnId, Message) {
        match server.poll_transmit() {
            Some(Transmit::WsSend { conn, message }) => (conn, message),
            other => panic!("expected a ws send, got {other:?}"),
        }
    }

    fn closed(server: &mut Server) -> CloseReason {
        loop {
            match server.poll_event() {
                Some(ServerEvent::Close { reason, .. }) => return reason,
                Some(_) => {}
                None => panic!("no close event"),
            }
        }
    }

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    #[test]
    fn handshakes_beyond_max_sessions_get_503_until_one_closes() {
        let mut server = Server::new(ServerConfig {
            max_sessions: 2,
            ..config()
        });
        let now = Instant::now();
        let first = handshake(&mut server, now);
        handshake(&mut server, now);
        let ws_handshake = request("GET", "/engine.io/?EIO=4&transport=websocket", WS);
        for refused in [
            get(&mut server, "/engine.io/?EIO=4&transport=polling", now),
            server.handle_request(&ws_handshake, Bytes::new(), now),
        ] {
            match refused {
                RequestOutcome::Respond(r) => {
                    assert_eq!(r.status, 503);
                    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
                    assert_eq!(
                        json,
                        serde_json::json!({"code": 4, "message": "Too many sessions"})
                    );
                }
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
        assert!(
            server.poll_event().is_none(),
            "a refused handshake opened a session"
        );
        // The open sessions are untouched, and a closed one frees its place.
        assert_eq!(respond(post(&mut server, &first, "1", now)).0, 200);
        while server.poll_event().is_some() {}
        handshake(&mut server, now);
    }

    #[test]
    fn the_shards_hold_their_parts_of_max_sessions() {
        let now = Instant::now();
        for (index, part) in [(0, 3), (1, 2)] {
            let mut server = Server::with_shard(
                ServerConfig {
                    max_sessions: 5,
                    ..config()
                },
                Shard::new(index, 2),
            );
            for _ in 0..part {
                assert!(!server.is_full());
                handshake(&mut server, now);
            }
            assert!(server.is_full());
            let (status, _) = respond(get(&mut server, "/engine.io/?EIO=4&transport=polling", now));
            assert_eq!(status, 503, "shard {index}");
        }
    }

    #[test]
    fn polling_handshake() {
        let mut server = Server::new(config());
        let t0 = Instant::now();
        let outcome = get(&mut server, "/engine.io/?EIO=4&transport=polling", t0);
        let RequestOutcome::Respond(r) = outcome else {
            panic!()
        };
        assert_eq!(r.status, 200);
        assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
        assert_eq!(r.header("Content-Type"), Some("text/plain; charset=UTF-8"));
        let body = std::str::from_utf8(&r.body).unwrap();
        let Some(ServerEvent::Open {
            sid,
            version,
            transport,
            ..
        }) = server.poll_event()
        else {
            panic!()
        };
        assert_eq!(body, format!(r#"0{{"sid":"{sid}{OPEN_TAIL}"#));
        assert_eq!(version, ProtocolVersion::V4);
        assert_eq!(transport, TransportKind::Polling);
        assert!(r.encode().starts_with(b"HTTP/1.1 200 OK\r\n"));
    }

    /// As Node's polling transport (`headers()`): every polling answer is
    /// marked `Cache-Control: no-store`, so that a cache never hands a
    /// client an old poll's packets again (a client that does not add a
    /// `t` parameter to its polls).
    #[test]
    fn polling_answers_are_not_stored_by_caches() {
        let mut server = Server::new(config());
        let t0 = Instant::now();
        let no_store = |outcome: RequestOutcome| match outcome {
            RequestOutcome::Respond(r) => {
                assert_eq!(r.status, 200);
                r.header("Cache-Control").map(str::to_owned)
            }
            other => panic!("expected a response, got {other:?}"),
        };
        let handshake_answer = get(&mut server, "/engine.io/?EIO=4&transport=polling", t0);
        assert_eq!(no_store(handshake_answer).as_deref(), Some("no-store"));
        let Some(ServerEvent::Open { sid, .. }) = server.poll_event() else {
            panic!()
        };
        // A POST's `ok`.
        assert_eq!(
            no_store(post(&mut server, &sid, "4a", t0)).as_deref(),
            Some("no-store")
        );
        // A poll answered at once, and a held poll answered later.
        server.send(&sid, "b".into()).unwrap();
        assert_eq!(
            no_store(poll(&mut server, &sid, t0)).as_deref(),
            Some("no-store")
        );
        held(poll(&mut server, &sid, t0));
        server.send(&sid, "c".into()).unwrap();
        let Some(Transmit::PollResponse { response, .. }) = server.poll_transmit() else {
            panic!()
        };
        assert_eq!(response.header("Cache-Control"), Some("no-store"));
        // The last packets of a session closed while no poll was held.
        server.close(&sid);
        assert_eq!(
            no_store(poll(&mut server, &sid, t0)).as_deref(),
            Some("no-store")
        );
    }

    #[test]
    fn a_shards_ids_name_it_and_requests_for_them_route_back() {
        let t0 = Instant::now();
        let shard = Shard::new(5, 8);
        let mut server = Server::with_shard(config(), shard);
        let sid = handshake(&mut server, t0);
        assert_eq!(sid.len(), 20);
        assert_eq!(Shard::of_sid(&sid, 8), 5);
        let target = format!("/engine.io/?EIO=4&transport=polling&sid={sid}");
        assert_eq!(Shard::of_request(&request("GET", &target, &[]), 8), Some(5));
        assert_eq!(
            Shard::of_request(
                &request("GET", "/engine.io/?EIO=4&transport=polling", &[]),
                8
            ),
            None
        );
        let poll_id = held(poll(&mut server, &sid, t0));
        assert_eq!(poll_id.shard(), 5);
        let req = request("GET", &target.replace("polling", "websocket"), WS);
        let conn = accepted(server.handle_request(&req, Bytes::new(), t0));
        assert_eq!(conn.shard(), 5);
        let ws_only = request("GET", "/engine.io/?EIO=4&transport=websocket", WS);
        let conn = accepted(server.handle_request(&ws_only, Bytes::new(), t0));
        assert_eq!(conn.shard(), 5);
        // An unsplit server keeps ids from 1 and shard 0.
        let mut sole = Server::new(config());
        let conn = accepted(sole.handle_request(&ws_only, Bytes::new(), t0));
        assert_eq!((conn.shard(), conn.as_u64()), (0, 1));
    }

    #[test]
    fn websocket_handshake() {
        let mut server = Server::new(config());
        let t0 = Instant::now();
        let req = request("GET", "/engine.io/?EIO=4&transport=websocket", WS);
        let conn = accepted(server.handle_request(&req, Bytes::new(), t0));
        let (c, message) = ws_send(&mut server);
        assert_eq!(c, conn);
        let text = message.as_text().unwrap().to_owned();
        let open = OpenPacket::from_json(&text[1..]).unwrap();
        assert_eq!(
            text,
            format!(
                r#"0{{"sid":"{}","upgrades":[],"pingInterval":300,"pingTimeout":200,"maxPayload":1000000}}"#,
                open.sid
            )
        );
        assert!(matches!(
            server.poll_event(),
            Some(ServerEvent::Open {
                transport: TransportKind::WebSocket,
                ..
            })
        ));
        // Echo-style round trip and the heartbeat over the websocket.
        server.ws_message(conn, Message::text("4hi"), t0);
        assert_eq!(
            server.poll_event(),
            Some(ServerEvent::Message {
                sid: open.sid.as_str().into(),
                data: MessageData::Text("hi".into())
            })
        );
        server
            .send(&open.sid, MessageData::Binary(vec![1, 2].into()))
            .unwrap();
        assert_eq!(ws_send(&mut server), (conn, Message::binary(vec![1, 2])));
        server.handle_timeout(ms(t0, 300));
        assert_eq!(ws_send(&mut server), (conn, Message::text("2")));
        server.ws_message(conn, Message::text("3"), ms(t0, 350));
        server.ws_closed(conn, ms(t0, 400));
        assert_eq!(closed(&mut server), CloseReason::TransportClose);
        assert_eq!(
            server.poll_transmit(),
            None,
            "no close for a gone websocket"
        );
        assert_eq!(server.session_count(), 0);
    }

    #[test]
    fn bad_requests() {
        let mut server = Server::new(config());
        let t0 = Instant::now();
        let sid = handshake(&mut server, t0);
        for (target, code) in [
            ("/engine.io/?transport=polling", 5),
            ("/engine.io/?EIO=abc&transport=polling", 5),
            ("/engine.io/?EIO=3&transport=polling", 5),
            ("/engine.io/?EIO=4", 0),
            ("/engine.io/?EIO=4&transport=tobi", 0),
            ("/engine.io/?EIO=4&transport=polling&sid=nope", 1),
            ("/engine.io/?EIO=4&transport=websocket", 3),
        ] {
            assert_error(get(&mut server, target, t0), 400, code);
        }
        for method in ["POST", "PUT"] {
            let req = request(method, "/engine.io/?EIO=4&transport=polling", &[]);
            assert_error(
                server.handle_request(&req, Bytes::from_static(b"4x"), t0),
                400,
                2,
            );
        }
        server.close(&sid);
        assert_eq!(closed(&mut server), CloseReason::ForcedClose);
        assert_error(post(&mut server, &sid, "4x", t0), 400, 1);
        // The next poll learns of the close; after that the sid is unknown.
        assert_eq!(respond(poll(&mut server, &sid, t0)), (200, "1".into()));
        assert_error(poll(&mut server, &sid, t0), 400, 1);
    }

    #[test]
    fn forbidden_and_preflight() {
        let mut server = Server::new(ServerConfig {
            allow_request: Some(Arc::new(|req: &Request| {
                if req.headers.get("x-token") == Some("ok") {
                    Ok(())
                } else {
                    Err("no".into())
                }
            })),
            ..config()
        });
        let t0 = Instant::now();
        assert_error(
            get(&mut server, "/engine.io/?EIO=4&transport=polling", t0),
            403,
            4,
        );
        let req = request(
            "GET",
            "/engine.io/?EIO=4&transport=polling",
            &[("X-Token", "ok")],
        );
        assert_eq!(
            respond(server.handle_request(&req, Bytes::new(), t0)).0,
            200
        );
        let req = request(
            "OPTIONS",
            "/engine.io/?EIO=4&transport=polling",
            &[("Access-Control-Request-Headers", "content-type")],
        );
        let RequestOutcome::Respond(r) = server.handle_request(&req, Bytes::new(), t0) else {
            panic!()
        };
        assert_eq!(r.status, 204);
        assert_eq!(
            r.header("Access-Control-Allow-Headers"),
            Some("content-type")
        );
        assert!(
            r.header("Access-Control-Allow-Methods")
                .unwrap()
                .contains("POST")
        );
    }

    #[test]
    fn cors_with_credentials_echoes_the_origin_and_sets_cookie() {
        let mut server = Server::new(ServerConfig {
            cors: Cors {
                origins: AllowedOrigins::List(vec!["https://a.example".into()]),
                credentials: true,
            },
            cookie: Some("io".into()),
            ..config()
        });
        let t0 = Instant::now();
        let req = request(
            "GET",
            "/engine.io/?EIO=4&transport=polling",
            &[("Origin", "https://a.example")],
        );
        let RequestOutcome::Respond(r) = server.handle_request(&req, Bytes::new(), t0) else {
            panic!()
        };
        assert_eq!(
            r.header("Access-Control-Allow-Origin"),
            Some("https://a.example")
        );
        assert_eq!(r.header("Access-Control-Allow-Credentials"), Some("true"));
        assert!(r.header("Set-Cookie").unwrap().starts_with("io="));
        let req = request(
            "GET",
            "/engine.io/?EIO=4&transport=polling",
            &[("Origin", "https://evil.example")],
        );
        let RequestOutcome::Respond(r) = server.handle_request(&req, Bytes::new(), t0) else {
            panic!()
        };
        assert_eq!(r.header("Access-Control-Allow-Origin"), None);
    }

    /// The `400` for an overlapping `POST` carries the request's CORS
    /// headers, as every other answer does, so a browser can read it.
    #[test]
    fn an_overlapping_post_is_refused_with_its_cors_headers() {
        let mut server = Server::new(ServerConfig {
            cors: Cors {
                origins: AllowedOrigins::List(vec!["https://a.example".into()]),
                credentials: true,
            },
            ..config()
        });
        let t0 = Instant::now();
        let sid = handshake(&mut server, t0);
        let post = request(
            "POST",
            &format!("/engine.io/?EIO=4&transport=polling&sid={sid}"),
            &[("Origin", "https://a.example")],
        );
        let r = server.post_overlapped(&post, &sid, t0);
        assert_eq!(r.status, 400);
        assert_eq!(
            r.header("Access-Control-Allow-Origin"),
            Some("https://a.example")
        );
        assert_eq!(r.header("Access-Control-Allow-Credentials"), Some("true"));
    }

    #[test]
    fn first_poll_gets_the_first_ping_and_pongs_keep_the_session() {
        let mut server = Server::new(config());
        let t0 = Instant::now();
        let sid = handshake(&mut server, t0);
        assert_eq!(server.poll_timeout(), Some(ms(t0, 300)));
        let mut now = ms(t0, 10);
        for round in 0..5u64 {
            let id = held(poll(&mut server, &sid, now));
            server.handle_timeout(now);
            assert_eq!(server.poll_transmit(), None, "nothing before the ping");
            // Timers may wake early (a deadline that moved later leaves an
            // early look); the ping comes at the first one that is due.
            let transmit = loop {
                let due = server.poll_timeout().unwrap();
                assert!(due > now);
                now = due;
                server.handle_timeout(now);
                if let Some(transmit) = server.poll_transmit() {
                    break transmit;
                }
            };
            let Transmit::PollResponse { poll, response } = transmit else {
                panic!("expected the ping, got {transmit:?}");
            };
            assert_eq!((poll, &response.body[..]), (id, &b"2"[..]), "round {round}");
            now += Duration::from_millis(50);
            assert_eq!(
                respond(post(&mut server, &sid, "3", now)),
                (200, "ok".into())
            );
        }
        assert_eq!(server.poll_event(), None);
        assert_eq!(server.session_count(), 1);
    }

    #[test]
    fn missing_pong_times_out() {
        let mut server = Server::new(config());
        let t0 = Instant::now();
        let sid = handshake(&mut server, t0);
        let id = held(poll(&mut server, &sid, t0));
        server.handle_timeout(ms(t0, 300));
        assert_eq!(poll_response(&mut server), (id, "2".into()));
        let id = held(poll(&mut server, &sid, ms(t0, 310)));
        assert_eq!(server.poll_timeout(), Some(ms(t0, 500)));
        server.handle_timeout(ms(t0, 499));
        assert_eq!(server.poll_event(), None);
        server.handle_timeout(ms(t0, 500));
        assert_eq!(closed(&mut server), CloseReason::PingTimeout);
        assert_eq!(poll_response(&mut server), (id, "1".into()));
        assert_error(poll(&mut server, &sid, ms(t0, 600)), 400, 1);
        assert_eq!(server.poll_timeout(), None);
    }

    #[test]
    fn data_while_a_pong_is_awaited_extends_the_deadline_once() {
        let mut server = Server::new(config());
        let t0 = Instant::now();
        let sid = handshake(&mut server, t0);
        server.handle_timeout(ms(t0, 300));
        assert_eq!(server.poll_timeout(), Some(ms(t0, 500)));
        assert_eq!(
            respond(post(&mut server, &sid, "4a", ms(t0, 450))),
            (200, "ok".into())
        );
        assert_eq!(
            respond(post(&mut server, &sid, "4b", ms(t0, 600))),
            (200, "ok".into())
        );
        let closed_at = |server: &mut Server| {
            std::iter::from_fn(|| server.poll_event()).any(|event| {
                matches!(
                    event,
                    ServerEvent::Close {
                        reason: CloseReason::PingTimeout,
                        ..
                    }
                )
            })
        };
        // The first message moved the deadline to 650 ms; the second did not.
        server.handle_timeout(ms(t0, 500));
        assert!(!closed_at(&mut server));
        assert_eq!(server.poll_timeout(), Some(ms(t0, 650)));
        server.handle_timeout(ms(t0, 649));
        assert!(!closed_at(&mut server));
        server.handle_timeout(ms(t0, 650));
        assert!(closed_at(&mut server));
    }

    /// As Node (`pingIntervalTimer.refresh()` on a pong), the next ping is
    /// due `ping_interval` after the pong, also when that comes before the
    /// pong deadline (a ping interval shorter than the ping timeout).
    #[test]
    fn the_next_ping_is_due_an_interval_after_the_pong() {
        let mut server = Server::new(ServerConfig {
            ping_interval: Duration::from_millis(100),
            ping_timeout: Duration::from_millis(500),
            ..ServerConfig::default()
        });
        let t0 = Instant::now();
        let req = request("GET", "/engine.io/?EIO=4&transport=websocket", WS);
        let conn = accepted(server.handle_request(&req, Bytes::new(), t0));
        let _open = ws_send(&mut server);
        server.handle_timeout(ms(t0, 100));
        assert_eq!(ws_send(&mut server), (conn, Message::text("2")));
        server.ws_message(conn, Message::text("3"), ms(t0, 110));
        assert_eq!(server.poll_timeout(), Some(ms(t0, 210)));
        server.handle_timeout(ms(t0, 210));
        assert_eq!(ws_send(&mut server), (conn, Message::text("2")));
        assert_eq!(server.poll_timeout(), Some(ms(t0, 600)));
    }

    #[test]
    fn duplicate_poll_closes() {
        let mut server = Server::new(config());
        let t0 = Instant::now();
        let sid = handshake(&mut server, t0);
        let id = held(poll(&mut server, &sid, t0));
        assert_error(poll(&mut server, &sid, t0), 400, 3);
        assert_eq!(closed(&mut server), CloseReason::TransportError);
        assert_eq!(poll_response(&mut server), (id, "1".into()));
        assert_error(poll(&mut server, &sid, t0), 400, 1);
    }

    #[test]
    fn aborted_poll_closes() {
        let mut server = Server::new(config());
        let t0 = Instant::now();
        let sid = handshake(&mut server, t0);
        let id = held(poll(&mut server, &sid, t0));
        server.poll_aborted(id, t0);
        assert_eq!(closed(&mut server), CloseReason::TransportError);
        assert_eq!(server.poll_transmit(), None);
        server.poll_aborted(id, t0);
        assert_eq!(server.poll_event(), None);
    }

    #[test]
    fn a_failed_data_request_closes_with_transport_error() {
        let mut server = Server::new(config());
        let t0 = Instant::now();
        let sid = handshake(&mut server, t0);
        let post = request(
            "POST",
            &format!("/engine.io/?EIO=4&transport=polling&sid={sid}"),
            &[],
        );
        assert_eq!(server.post_overlapped(&post, &sid, t0).status, 400);
        assert_eq!(closed(&mut server), CloseReason::TransportError);
        server.post_aborted(&sid, t0);
        assert_eq!(server.poll_event(), None, "closed once");
    }

    #[test]
    fn oversize_post_is_413_and_closes() {
        let mut server = Server::new(ServerConfig {
            max_payload: 100,
            ..config()
        });
        let t0 = Instant::now();
        let sid = handshake(&mut server, t0);
        let body = format!("4{}", "a".repeat(100));
        let (status, _) = respond(post(&mut server, &sid, &body, t0));
        assert_eq!(status, 413);
        assert_eq!(closed(&mut server), CloseReason::TransportError);
    }

    #[test]
    fn a_forced_close_waits_for_the_next_poll() {
        let mut server = Server::new(config());
        let t0 = Instant::now();
        let sid = handshake(&mut server, t0);
        server.send(&sid, MessageData::from("last")).unwrap();
        server.close(&sid);
        assert_eq!(closed(&mut server), CloseReason::ForcedClose);
        assert_eq!(
            respond(poll(&mut server, &sid, t0)),
            (200, "4last\u{1e}1".into())
        );
        // Once told, the session is unknown.
        assert_eq!(respond(poll(&mut server, &sid, t0)).0, 400);
        // A client that never polls again is forgotten after a heartbeat
        // (pingInterval + pingTimeout), and the timer is asked for then.
        let config = config();
        let forgotten = t0 + config.ping_interval + config.ping_timeout;
        let sid = handshake(&mut server, t0);
        server.close(&sid);
        assert!(server.poll_timeout().is_some_and(|at| at <= forgotten));
        server.handle_timeout(forgotten - Duration::from_millis(1));
        assert_eq!(server.closing.len(), 1, "kept until it expires");
        server.handle_timeout(forgotten);
        assert!(server.closing.is_empty());
        assert_eq!(server.poll_timeout(), None, "nothing left to wake for");
        assert_eq!(respond(poll(&mut server, &sid, t0)).0, 400);
    }

    #[test]
    fn volatile_sends_need_a_writable_transport() {
        let mut server = Server::new(config());
        let t0 = Instant::now();
        let sid = handshake(&mut server, t0);
        // No poll held: dropped.
        assert_eq!(
            server.send_volatile(&sid, [MessageData::from("a")]),
            Ok(false)
        );
        let id = held(poll(&mut server, &sid, t0));
        assert_eq!(
            server.send_volatile(&sid, [MessageData::from("b"), MessageData::from("c")]),
            Ok(true)
        );
        assert_eq!(poll_response(&mut server), (id, "4b\u{1e}4c".into()));
        assert_eq!(
            server.send_volatile("nope", [MessageData::from("x")]),
            Err(SendError::UnknownSession)
        );
    }

    #[test]
    fn client_close_and_parse_error() {
        let mut server = Server::new(config());
        let t0 = Instant::now();
        let sid = handshake(&mut server, t0);
        let id = held(poll(&mut server, &sid, t0));
        assert_eq!(
            respond(post(&mut server, &sid, "1", t0)),
            (200, "ok".into())
        );
        assert_eq!(closed(&mut server), CloseReason::TransportClose);
        assert_eq!(poll_response(&mut server), (id, "6".into()));

        let sid = handshake(&mut server, t0);
        assert_error(post(&mut server, &sid, "4a\u{1e}9", t0), 400, 3);
        assert!(matches!(
            server.poll_event(),
            Some(ServerEvent::Message { .. })
        ));
        assert_eq!(closed(&mut server), CloseReason::ParseError);

        // A ping from a v4 client: heartbeat in the wrong direction.
        let sid = handshake(&mut server, t0);
        assert_error(post(&mut server, &sid, "2", t0), 400, 3);
        assert_eq!(closed(&mut server), CloseReason::TransportError);
    }

    #[test]
    fn echo_round_trip_text_and_binary() {
        let mut server = Server::new(config());
        let t0 = Instant::now();
        let sid = handshake(&mut server, t0);
        assert_eq!(
            respond(post(&mut server, &sid, "4hello\u{1e}bAQIDBA==", t0)).0,
            200
        );
        let mut got = Vec::new();
        while let Some(ServerEvent::Message { sid: s, data }) = server.poll_event() {
            assert_eq!(&*s, sid.as_str());
            got.push(data.clone());
            server.send(&sid, data).unwrap();
        }
        assert_eq!(
            got,
            [
                MessageData::Text("hello".into()),
                MessageData::Binary(vec![1, 2, 3, 4].into())
            ]
        );
        assert_eq!(
            respond(poll(&mut server, &sid, t0)),
            (200, "4hello\u{1e}bAQIDBA==".into())
        );
    }

    #[test]
    fn send_many_reaches_every_transport_and_encodes_once() {
        let mut server = Server::new(config());
        let t0 = Instant::now();
        let mut ws_sessions = Vec::new();
        for _ in 0..2 {
            let req = request("GET", "/engine.io/?EIO=4&transport=websocket", WS);
            let conn = accepted(server.handle_request(&req, Bytes::new(), t0));
            let (_, open) = ws_send(&mut server);
            let open = OpenPacket::from_json(&open.as_text().unwrap()[1..]).unwrap();
            ws_sessions.push((conn, open.sid));
        }
        while server.poll_event().is_some() {}
        let polling = handshake(&mut server, t0);
        let id = held(poll(&mut server, &polling, t0));
        let sids = [&ws_sessions[0].1, "unknown", &polling, &ws_sessions[1].1];
        let data = MessageData::Text("news".into());
        assert_eq!(server.send_many(sids.iter().map(|s| &**s), &data), 3);
        let (first_conn, first) = ws_send(&mut server);
        let (second_conn, second) = ws_send(&mut server);
        assert_eq!(
            [first_conn, second_conn],
            [ws_sessions[0].0, ws_sessions[1].0]
        );
        assert_eq!(first.as_text(), Some("4news"));
        let (Message::Text(a), Message::Text(b)) = (&first, &second) else {
            panic!("text expected");
        };
        assert_eq!(
            a.as_bytes().as_ptr(),
            b.as_bytes().as_ptr(),
            "one encoding shared by the WebSocket sessions"
        );
        assert_eq!(poll_response(&mut server), (id, "4news".into()));
        assert_eq!(server.poll_transmit(), None);
    }

    /// Timeouts too long to reach an `Instant` (`Duration::MAX`, a way to
    /// say "never") never expire, on v4 and v3 sessions, through pings,
    /// upgrades and closes, rather than panicking.
    #[test]
    fn timeouts_past_the_end_of_time_never_expire() {
        let mut server = Server::new(ServerConfig {
            ping_interval: Duration::MAX,
            ping_timeout: Duration::MAX,
            upgrade_timeout: Duration::MAX,
            allow_eio3: true,
            ..config()
        });
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(1_000 * 86_400);
        let v4 = handshake(&mut server, t0);
        let req = request("GET", "/engine.io/?EIO=3&transport=polling", &[]);
        let (status, _) = respond(server.handle_request(&req, Bytes::new(), t0));
        assert_eq!(status, 200);
        while server.poll_event().is_some() {}
        let upgrade = request(
            "GET",
            &format!("/engine.io/?EIO=4&transport=websocket&sid={v4}"),
            WS,
        );
        accepted(server.handle_request(&upgrade, Bytes::new(), t0));
        server.handle_timeout(later);
        assert_eq!(server.session_count(), 2);
        assert_eq!(server.poll_event(), None);
        server.close(&v4);
        server.handle_timeout(later);
        assert_eq!(server.session_count(), 1);
    }

    #[test]
    fn send_releases_a_held_poll_at_once() {
        let mut server = Server::new(config());
        let t0 = Instant::now();
        let sid = handshake(&mut server, t0);
        let id = held(poll(&mut server, &sid, t0));
        assert_eq!(server.poll_transmit(), None);
        server.send(&sid, MessageData::Text("a".into())).unwrap();
        server.send(&sid, MessageData::Text("b".into())).unwrap();
        assert_eq!(poll_response(&mut server), (id, "4a\u{1e}4b".into()));
        assert_eq!(server.poll_transmit(), None);
        server.send(&sid, MessageData::Text("c".into())).unwrap();
        assert_eq!(server.poll_transmit(), None, "no poll held");
        assert_eq!(respond(poll(&mut server, &sid, t0)), (200, "4c".into()));
        assert_eq!(
            server.send("nope", MessageData::Text("x".into())),
            Err(SendError::UnknownSession)
        );
    }

    #[test]
    fn a_poll_response_is_topped_up_with_what_was_queued_since() {
        let mut server = Server::new(ServerConfig {
            max_payload: 11,
            ..config()
        });
        let t0 = Instant::now();
        let sid = handshake(&mut server, t0);
        let id = held(poll(&mut server, &sid, t0));
        assert_eq!(server.held_poll_session(id).as_deref(), Some(&*sid));
        server.send(&sid, MessageData::Text("a".into())).unwrap();
        let Some(Transmit::PollResponse {
            poll: answered,
            mut response,
        }) = server.poll_transmit()
        else {
            panic!("expected a poll response");
        };
        assert_eq!(answered, id);
        assert_eq!(server.held_poll_session(id), None);
        assert!(
            !server.top_up_poll_response(&sid, &mut response),
            "nothing queued"
        );
        for m in ["bb", "cccc", "d"] {
            server.send(&sid, MessageData::Text(m.into())).unwrap();
        }
        assert_eq!(server.poll_transmit(), None, "no poll held");
        // `4a` + `\x1e4bb` + `\x1e4cccc` is 14 bytes: over max_payload (11).
        assert!(server.top_up_poll_response(&sid, &mut response));
        assert_eq!(&response.body[..], b"4a\x1e4bb");
        assert_eq!(
            response.header("Content-Type"),
            Some("text/plain; charset=UTF-8")
        );
        assert!(!server.top_up_poll_response(&sid, &mut response), "full");
        assert_eq!(
            respond(poll(&mut server, &sid, t0)),
            (200, "4cccc\u{1e}4d".into())
        );
        assert!(!server.top_up_poll_response("nope", &mut response));
    }

    #[test]
    fn a_poll_response_is_not_topped_up_while_a_poll_is_held() {
        let mut server = Server::new(config());
        let t0 = Instant::now();
        let sid = handshake(&mut server, t0);
        held(poll(&mut server, &sid, t0));
        server.send(&sid, MessageData::Text("a".into())).unwrap();
        let (_, first) = poll_response(&mut server);
        let mut response = HttpResponse {
            status: 200,
            headers: Vec::new(),
            body: first.into(),
        };
        // The client's next poll is held, and takes what comes next.
        let id = held(poll(&mut server, &sid, t0));
        server.send(&sid, MessageData::Text("b".into())).unwrap();
        assert!(!server.top_up_poll_response(&sid, &mut response));
        assert_eq!(poll_response(&mut server), (id, "4b".into()));
    }

    #[test]
    fn forced_close_flushes_queue_to_held_poll() {
        let mut server = Server::new(config());
        let t0 = Instant::now();
        let sid = handshake(&mut server, t0);
        let id = held(poll(&mut server, &sid, t0));
        server.send(&sid, MessageData::Text("bye".into())).unwrap();
        server.close(&sid);
        assert_eq!(poll_response(&mut server), (id, "4bye\u{1e}1".into()));
        assert_eq!(closed(&mut server), CloseReason::ForcedClose);
        assert_eq!(server.poll_event(), None);
        server.close(&sid);
        assert_eq!(server.poll_event(), None, "close is reported once");
    }

    #[test]
    fn poll_responses_are_bounded_by_max_payload() {
        let mut server = Server::new(ServerConfig {
            max_payload: 11,
            ..config()
        });
        let t0 = Instant::now();
        let sid = handshake(&mut server, t0);
        for m in ["aaaa", "bbbb", "cccc"] {
            server.send(&sid, MessageData::Text(m.into())).unwrap();
        }
        assert_eq!(respond(poll(&mut server, &sid, t0)).1, "4aaaa\u{1e}4bbbb");
        assert_eq!(respond(poll(&mut server, &sid, t0)).1, "4cccc");
    }

    #[test]
    fn buffer_bound_closes_the_session() {
        // Room for three one-byte messages (`4x`: 2 bytes and 64 of
        // bookkeeping each).
        let mut server = Server::new(ServerConfig {
            max_buffered_bytes: 3 * 66,
            ..config()
        });
        let t0 = Instant::now();
        let sid = handshake(&mut server, t0);
        let other = handshake(&mut server, t0);
        for _ in 0..3 {
            server.send(&sid, MessageData::Text("x".into())).unwrap();
        }
        assert_eq!(
            server.send(&sid, MessageData::Text("x".into())),
            Err(SendError::BufferFull)
        );
        assert_eq!(closed(&mut server), CloseReason::BufferFull);
        assert_error(poll(&mut server, &sid, t0), 400, 1);
        server.send(&other, MessageData::Text("y".into())).unwrap();
        assert_eq!(respond(poll(&mut server, &other, t0)).1, "4y");
    }

    #[test]
    fn upgrade() {
        let mut server = Server::new(config());
        let t0 = Instant::now();
        let sid = handshake(&mut server, t0);
        let ws_target = format!("/engine.io/?EIO=4&transport=websocket&sid={sid}");
        let ws_req = request("GET", &ws_target, WS);
        let conn = accepted(server.handle_request(&ws_req, Bytes::new(), t0));
        // A second websocket while upgrading is refused.
        assert_error(server.handle_request(&ws_req, Bytes::new(), t0), 400, 3);
        let id = held(poll(&mut server, &sid, t0));
        server.ws_message(conn, Message::text("2probe"), ms(t0, 10));
        assert_eq!(ws_send(&mut server), (conn, Message::text("3probe")));
        assert_eq!(poll_response(&mut server), (id, "6".into()));
        // Packets sent during the upgrade wait, and go over the websocket.
        server.send(&sid, MessageData::Text("one".into())).unwrap();
        server
            .send(&sid, MessageData::Binary(vec![2].into()))
            .unwrap();
        server.ws_message(conn, Message::text("5"), ms(t0, 20));
        assert_eq!(ws_send(&mut server), (conn, Message::text("4one")));
        assert_eq!(ws_send(&mut server), (conn, Message::binary(vec![2])));
        server
            .send(&sid, MessageData::Text("three".into()))
            .unwrap();
        assert_eq!(ws_send(&mut server), (conn, Message::text("4three")));
        assert_eq!(server.poll_transmit(), None);
        // HTTP after the upgrade is refused, and so is another websocket.
        assert_error(poll(&mut server, &sid, ms(t0, 30)), 400, 3);
        assert_error(post(&mut server, &sid, "4x", ms(t0, 30)), 400, 3);
        assert_error(server.handle_request(&ws_req, Bytes::new(), t0), 400, 3);
        assert_eq!(server.poll_event(), None);
        // Messages and heartbeat on the websocket.
        server.ws_message(conn, Message::text("4up"), ms(t0, 40));
        assert!(matches!(
            server.poll_event(),
            Some(ServerEvent::Message { .. })
        ));
        server.handle_timeout(ms(t0, 300));
        assert_eq!(ws_send(&mut server), (conn, Message::text("2")));
        server.handle_timeout(ms(t0, 500));
        assert_eq!(closed(&mut server), CloseReason::PingTimeout);
        assert_eq!(server.poll_transmit(), Some(Transmit::WsClose { conn }));
    }

    /// A WebSocket opened with `b64` (a client without binary support,
    /// engine.io-client's `forceBase64`) gets binary messages as base64
    /// text, as Node's WebSocket transport sends them (`supportsBinary`
    /// comes from that WebSocket's own request): on a WebSocket-first
    /// session, after an upgrade, in a broadcast; v3 as `b4...`.
    #[test]
    fn a_websocket_asking_for_base64_gets_binary_as_text() {
        let mut server = Server::new(ServerConfig {
            allow_eio3: true,
            ..config()
        });
        let t0 = Instant::now();
        let bytes = MessageData::Binary(vec![1, 2, 3].into());
        // WebSocket first, v4 and v3.
        for (eio, text) in [(4, "bAQID"), (3, "b4AQID")] {
            let target = format!("/engine.io/?EIO={eio}&transport=websocket&b64=1");
            let req = request("GET", &target, WS);
            let conn = accepted(server.handle_request(&req, Bytes::new(), t0));
            let _open = ws_send(&mut server);
            let Some(ServerEvent::Open { sid, .. }) = server.poll_event() else {
                panic!()
            };
            server.send(&sid, bytes.clone()).unwrap();
            assert_eq!(ws_send(&mut server), (conn, Message::text(text)));
            assert_eq!(server.send_many([&*sid], &bytes), 1);
            assert_eq!(ws_send(&mut server), (conn, Message::text(text)));
        }
        // An upgrade whose WebSocket asks for base64 (engine.io-client puts
        // `b64` on every WebSocket request, on a polling one only on the
        // handshake); what waited for the upgrade too.
        let sid = handshake(&mut server, t0);
        let target = format!("/engine.io/?EIO=4&transport=websocket&sid={sid}&b64=1");
        let conn = accepted(server.handle_request(&request("GET", &target, WS), Bytes::new(), t0));
        server.ws_message(conn, Message::text("2probe"), t0);
        assert_eq!(ws_send(&mut server), (conn, Message::text("3probe")));
        server.send(&sid, bytes.clone()).unwrap();
        server.ws_message(conn, Message::text("5"), t0);
        assert_eq!(ws_send(&mut server), (conn, Message::text("bAQID")));
        server.send(&sid, bytes.clone()).unwrap();
        assert_eq!(ws_send(&mut server), (conn, Message::text("bAQID")));
        // Without `b64`, binary frames.
        let sid = handshake(&mut server, t0);
        let target = format!("/engine.io/?EIO=4&transport=websocket&sid={sid}");
        let conn = accepted(server.handle_request(&request("GET", &target, WS), Bytes::new(), t0));
        server.ws_message(conn, Message::text("5"), t0);
        server.send(&sid, bytes).unwrap();
        assert_eq!(ws_send(&mut server), (conn, Message::binary(vec![1, 2, 3])));
    }

    /// A session closed by the server during an upgrade, with no poll held:
    /// what was queued before the close, and the close, reach the client
    /// over the WebSocket it upgrades to (Node's server flushes a closing
    /// socket's buffer over the new transport), or on its next poll if it
    /// polls instead.
    #[test]
    fn a_forced_close_during_an_upgrade_goes_out_where_the_client_is() {
        let mut server = Server::new(config());
        let t0 = Instant::now();
        // A polling session with a WebSocket open to upgrade to.
        let upgrading = |server: &mut Server| {
            let sid = handshake(server, t0);
            let ws_target = format!("/engine.io/?EIO=4&transport=websocket&sid={sid}");
            let ws_req = request("GET", &ws_target, WS);
            let conn = accepted(server.handle_request(&ws_req, Bytes::new(), t0));
            (sid, conn)
        };
        let close = |server: &mut Server, sid: &str| {
            server.close(sid);
            assert_eq!(closed(server), CloseReason::ForcedClose);
        };
        for probed_first in [true, false] {
            let (sid, conn) = upgrading(&mut server);
            if probed_first {
                server.ws_message(conn, Message::text("2probe"), ms(t0, 10));
                assert_eq!(ws_send(&mut server), (conn, Message::text("3probe")));
            }
            server.send(&sid, MessageData::from("last")).unwrap();
            close(&mut server, &sid);
            assert_eq!(server.poll_transmit(), None, "the upgrade stays open");
            if !probed_first {
                server.ws_message(conn, Message::text("2probe"), ms(t0, 10));
                assert_eq!(ws_send(&mut server), (conn, Message::text("3probe")));
            }
            server.ws_message(conn, Message::text("5"), ms(t0, 20));
            assert_eq!(ws_send(&mut server), (conn, Message::text("4last")));
            assert_eq!(ws_send(&mut server), (conn, Message::text("1")));
            assert_eq!(server.poll_transmit(), Some(Transmit::WsClose { conn }));
            assert_eq!(server.poll_transmit(), None);
            assert_eq!(respond(poll(&mut server, &sid, ms(t0, 30))).0, 400);
            assert!(server.closing.is_empty() && server.conns.is_empty());
        }
        // The client polls instead: the poll gets them, the upgrade closes.
        let (sid, conn) = upgrading(&mut server);
        server.send(&sid, MessageData::from("last")).unwrap();
        close(&mut server, &sid);
        assert_eq!(
            respond(poll(&mut server, &sid, ms(t0, 10))),
            (200, "4last\u{1e}1".into())
        );
        assert_eq!(server.poll_transmit(), Some(Transmit::WsClose { conn }));
        server.ws_message(conn, Message::text("5"), ms(t0, 20));
        assert_eq!(server.poll_transmit(), None, "that WebSocket is forgotten");
        // Neither: the upgrade closes when the session is forgotten.
        let (sid, conn) = upgrading(&mut server);
        close(&mut server, &sid);
        let config = config();
        server.handle_timeout(t0 + config.ping_interval + config.ping_timeout);
        assert_eq!(server.poll_transmit(), Some(Transmit::WsClose { conn }));
        assert!(server.closing.is_empty() && server.conns.is_empty());
        // A WebSocket that ends first is just forgotten; the poll still
        // gets the close.
        let (sid, conn) = upgrading(&mut server);
        close(&mut server, &sid);
        server.ws_closed(conn, ms(t0, 10));
        assert_eq!(
            respond(poll(&mut server, &sid, ms(t0, 20))),
            (200, "1".into())
        );
        assert_eq!(server.poll_transmit(), None);
    }

    #[test]
    fn upgrade_timeout_drops_the_probe() {
        let mut server = Server::new(ServerConfig {
            upgrade_timeout: Duration::from_millis(100),
            ..config()
        });
        let t0 = Instant::now();
        let sid = handshake(&mut server, t0);
        let ws_target = format!("/engine.io/?EIO=4&transport=websocket&sid={sid}");
        let ws_req = request("GET", &ws_target, WS);
        let conn = accepted(server.handle_request(&ws_req, Bytes::new(), t0));
        assert_eq!(server.poll_timeout(), Some(ms(t0, 100)));
        server.handle_timeout(ms(t0, 100));
        assert_eq!(server.poll_transmit(), Some(Transmit::WsClose { conn }));
        server.ws_message(conn, Message::text("5"), ms(t0, 110));
        server
            .send(&sid, MessageData::Text("still polling".into()))
            .unwrap();
        assert_eq!(
            respond(poll(&mut server, &sid, ms(t0, 120))).1,
            "4still polling"
        );
        // A new upgrade may start.
        let conn2 = accepted(server.handle_request(&ws_req, Bytes::new(), ms(t0, 130)));
        assert_ne!(conn, conn2);
        // A bad probe packet drops the probe, not the session.
        server.ws_message(conn2, Message::text("4nope"), ms(t0, 140));
        assert_eq!(
            server.poll_transmit(),
            Some(Transmit::WsClose { conn: conn2 })
        );
        assert_eq!(server.session_count(), 1);
    }

    #[test]
    fn oversize_ws_message_closes() {
        let mut server = Server::new(ServerConfig {
            max_payload: 10,
            ..config()
        });
        let t0 = Instant::now();
        let req = request("GET", "/engine.io/?EIO=4&transport=websocket", WS);
        let conn = accepted(server.handle_request(&req, Bytes::new(), t0));
        server.ws_message(conn, Message::binary(vec![0; 11]), t0);
        assert!(matches!(
            server.poll_event(),
            Some(ServerEvent::Open { .. })
        ));
        assert_eq!(closed(&mut server), CloseReason::TransportError);
        let _open = ws_send(&mut server);
        assert_eq!(server.poll_transmit(), Some(Transmit::WsClose { conn }));
        server.ws_closed(conn, t0);
        assert_eq!(server.poll_event(), None);
    }

    /// An oversize message on an upgrade's probe WebSocket fails the
    /// upgrade, not the session: Node's `ws` closes the probe (its
    /// `maxPayload` is `maxHttpBufferSize`), and the upgrade's error
    /// handler drops it while the session goes on polling.
    #[test]
    fn oversize_message_on_a_probe_drops_the_probe_only() {
        let mut server = Server::new(ServerConfig {
            max_payload: 10,
            ..config()
        });
        let t0 = Instant::now();
        let sid = handshake(&mut server, t0);
        let target = format!("/engine.io/?EIO=4&transport=websocket&sid={sid}");
        let conn = accepted(server.handle_request(&request("GET", &target, WS), Bytes::new(), t0));
        server.ws_message(conn, Message::text(format!("4{}", "x".repeat(10))), t0);
        assert_eq!(server.poll_transmit(), Some(Transmit::WsClose { conn }));
        assert_eq!(server.poll_event(), None);
        assert_eq!(server.session_count(), 1);
        server.send(&sid, "still polling".into()).unwrap();
        assert_eq!(
            respond(poll(&mut server, &sid, t0)),
            (200, "4still polling".into())
        );
    }

    #[test]
    fn v3_handshake_and_client_heartbeat() {
        let mut server = Server::new(ServerConfig {
            allow_eio3: true,
            ..config()
        });
        let t0 = Instant::now();
        let (status, body) = respond(get(&mut server, "/engine.io/?EIO=3&transport=polling", t0));
        assert_eq!(status, 200);
        let (len, packet) = body.split_once(':').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), packet.len());
        let open = OpenPacket::from_json(&packet[1..]).unwrap();
        assert_eq!((open.ping_interval, open.ping_timeout), (300, 200));
        let sid = open.sid;
        let v3 = |sid: &str| format!("/engine.io/?EIO=3&transport=polling&sid={sid}");
        // No server ping; the client pings and gets pongs.
        assert_eq!(server.poll_timeout(), Some(ms(t0, 500)));
        let id = held(get(&mut server, &v3(&sid), t0));
        server.handle_timeout(ms(t0, 400));
        assert_eq!(server.poll_transmit(), None);
        let req = request("POST", &v3(&sid), &[]);
        let (status, _) =
            respond(server.handle_request(&req, Bytes::from_static(b"1:2"), ms(t0, 400)));
        assert_eq!(status, 200);
        assert_eq!(poll_response(&mut server), (id, "1:3".into()));
        // A v4 request for a v3 session is refused.
        assert_error(poll(&mut server, &sid, ms(t0, 450)), 400, 3);
        server.handle_timeout(ms(t0, 899));
        assert_eq!(
            server.poll_event(),
            Some(ServerEvent::Open {
                sid: sid.as_str().into(),
                version: ProtocolVersion::V3,
                transport: TransportKind::Polling,
                request: request("GET", "/engine.io/?EIO=3&transport=polling", &[]),
            })
        );
        assert_eq!(server.poll_event(), None);
        server.handle_timeout(ms(t0, 900));
        assert_eq!(closed(&mut server), CloseReason::PingTimeout);
    }

    #[test]
    fn v3_websocket_probe() {
        let mut server = Server::new(ServerConfig {
            allow_eio3: true,
            ..config()
        });
        let t0 = Instant::now();
        let (_, body) = respond(get(&mut server, "/engine.io/?EIO=3&transport=polling", t0));
        let packet = body.split_once(':').unwrap().1;
        let sid = OpenPacket::from_json(&packet[1..]).unwrap().sid;
        let target = format!("/engine.io/?EIO=3&transport=websocket&sid={sid}");
        let conn = accepted(server.handle_request(&request("GET", &target, WS), Bytes::new(), t0));
        server.ws_message(conn, Message::text("2probe"), t0);
        assert_eq!(ws_send(&mut server), (conn, Message::text("3probe")));
        server.ws_message(conn, Message::text("5"), t0);
        server.ws_message(conn, Message::text("2"), t0);
        assert_eq!(ws_send(&mut server), (conn, Message::text("3")));
        server
            .send(&sid, MessageData::Binary(vec![9].into()))
            .unwrap();
        assert_eq!(ws_send(&mut server), (conn, Message::binary(vec![4, 9])));
    }

    #[test]
    fn query_params() {
        assert_eq!(query_param("a=1&b=2", "b").as_deref(), Some("2"));
        assert_eq!(query_param("a=%41%2", "a").as_deref(), Some("A%2"));
        assert_eq!(query_param("a=x+y", "a").as_deref(), Some("x y"));
        assert_eq!(query_param("a", "a").as_deref(), Some(""));
        assert_eq!(query_param("ab=1", "a"), None);
        assert_eq!(query_param("a=%ff", "a").as_deref(), Some("%ff"));
    }

    /// v3 payloads frame each packet with its length (`<len>:`), more than
    /// v4's one separator: the bound counts that framing too.
    #[test]
    fn v3_poll_responses_are_bounded_by_max_payload() {
        let mut server = Server::new(ServerConfig {
            allow_eio3: true,
            max_payload: 11,
            ..config()
        });
        let t0 = Instant::now();
        let (_, body) = respond(get(&mut server, "/engine.io/?EIO=3&transport=polling", t0));
        let packet = body.split_once(':').unwrap().1;
        let sid = OpenPacket::from_json(&packet[1..]).unwrap().sid;
        for m in ["aa", "bb", "cc", "dd"] {
            server.send(&sid, MessageData::Text(m.into())).unwrap();
        }
        let v3 = format!("/engine.io/?EIO=3&transport=polling&sid={sid}");
        let mut bodies = Vec::new();
        while bodies.len() < 4 {
            let (status, body) = respond(get(&mut server, &v3, t0));
            assert_eq!(status, 200);
            assert!(body.len() <= 11, "{body:?} is over max_payload");
            bodies.push(body);
            if bodies.concat().ends_with("3:4dd") {
                break;
            }
        }
        assert_eq!(bodies.concat(), "3:4aa3:4bb3:4cc3:4dd");
    }

    /// A held poll released by a successful probe takes what is queued
    /// within `max_payload`, like any poll response; the rest waits (and
    /// goes over the WebSocket if the upgrade completes).
    #[test]
    fn a_poll_released_by_a_probe_is_bounded_by_max_payload() {
        let mut server = Server::new(ServerConfig {
            max_payload: 11,
            ..config()
        });
        let t0 = Instant::now();
        let sid = handshake(&mut server, t0);
        let ws_target = format!("/engine.io/?EIO=4&transport=websocket&sid={sid}");
        let conn =
            accepted(server.handle_request(&request("GET", &ws_target, WS), Bytes::new(), t0));
        let id = held(poll(&mut server, &sid, t0));
        for m in ["aaaa", "bbbb", "cccc"] {
            server.send(&sid, MessageData::Text(m.into())).unwrap();
        }
        server.ws_message(conn, Message::text("2probe"), t0);
        assert_eq!(ws_send(&mut server), (conn, Message::text("3probe")));
        assert_eq!(poll_response(&mut server), (id, "4aaaa\u{1e}4bbbb".into()));
        assert_eq!(server.poll_transmit(), None);
        server.ws_message(conn, Message::text("5"), t0);
        assert_eq!(ws_send(&mut server), (conn, Message::text("4cccc")));
        assert_eq!(server.poll_transmit(), None);
    }

    /// A forced close with a held poll and more queued than one response
    /// may hold: the poll gets what fits, the next poll the rest and the
    /// `close`.
    #[test]
    fn a_forced_close_with_a_held_poll_is_bounded_by_max_payload() {
        let mut server = Server::new(ServerConfig {
            max_payload: 11,
            ..config()
        });
        let t0 = Instant::now();
        let sid = handshake(&mut server, t0);
        let id = held(poll(&mut server, &sid, t0));
        for m in ["aaaa", "bbbb", "cccc"] {
            server.send(&sid, MessageData::Text(m.into())).unwrap();
        }
        server.close(&sid);
        assert_eq!(closed(&mut server), CloseReason::ForcedClose);
        assert_eq!(poll_response(&mut server), (id, "4aaaa\u{1e}4bbbb".into()));
        assert_eq!(server.poll_transmit(), None);
        assert_eq!(
            respond(poll(&mut server, &sid, t0)),
            (200, "4cccc\u{1e}1".into())
        );
        assert_error(poll(&mut server, &sid, t0), 400, 1);
    }

    /// What a closed session still owes its client goes out one bounded
    /// response per poll.
    #[test]
    fn a_closing_sessions_packets_are_bounded_by_max_payload() {
        let mut server = Server::new(ServerConfig {
            max_payload: 11,
            ..config()
        });
        let t0 = Instant::now();
        let sid = handshake(&mut server, t0);
        for m in ["aaaa", "bbbb", "cccc"] {
            server.send(&sid, MessageData::Text(m.into())).unwrap();
        }
        server.close(&sid);
        assert_eq!(closed(&mut server), CloseReason::ForcedClose);
        assert_eq!(
            respond(poll(&mut server, &sid, t0)),
            (200, "4aaaa\u{1e}4bbbb".into())
        );
        assert_eq!(
            respond(poll(&mut server, &sid, t0)),
            (200, "4cccc\u{1e}1".into())
        );
        assert_error(poll(&mut server, &sid, t0), 400, 1);
    }

    /// The server's bookkeeping agrees with itself: every held poll and
    /// WebSocket maps to what holds it, a queue's byte count is its
    /// packets' cost, and every session and closing session has an entry
    /// in the deadline index at or before its next deadline.
    fn check_invariants(server: &Server) {
        let indexed = |sid: &Arc<str>, deadline: Instant| {
            server
                .deadlines
                .range(..=(deadline, sid.clone()))
                .any(|(_, s)| s == sid)
        };
        for (sid, session) in &server.sessions {
            if let Some(poll) = &session.poll {
                assert_eq!(server.polls.get(&poll.id), Some(sid));
            }
            let cost: usize = session.queue.packets.iter().map(PollQueue::cost).sum();
            assert_eq!(session.queue.bytes, cost);
            if let Some(deadline) = session.next_deadline() {
                assert!(indexed(sid, deadline), "{sid}'s deadline is not indexed");
            }
        }
        for (poll, sid) in &server.polls {
            let session = server.sessions.get(sid).expect("a held poll's session");
            assert_eq!(session.poll.as_ref().map(|p| p.id), Some(*poll));
        }
        for (conn, sid) in &server.conns {
            let known = server.sessions.get(sid).is_some_and(|s| {
                s.transport == Transport::WebSocket(*conn)
                    || s.upgrade.is_some_and(|u| u.conn == *conn)
            }) || server
                .closing
                .get(sid)
                .is_some_and(|c| c.upgrade == Some(*conn));
            assert!(known, "{conn:?} maps to {sid}, which does not hold it");
        }
        for (sid, closing) in &server.closing {
            assert!(!closing.packets.is_empty());
            assert!(
                indexed(sid, closing.expires),
                "{sid}'s expiry is not indexed"
            );
        }
    }

    #[derive(Debug, Clone)]
    enum Step {
        Handshake {
            websocket: bool,
            v3: bool,
            b64: bool,
        },
        Poll(usize),
        Post(usize, &'static str),
        Upgrade(usize, bool),
        WsMessage(usize, &'static str, bool),
        WsClosed(usize),
        WsBacklogged(usize),
        PollAborted(usize),
        PostAborted(usize),
        Send(usize, usize, bool),
        SendVolatile(usize),
        Close(usize),
        Advance(u64),
        Transmit(bool),
    }

    fn step() -> impl Strategy<Value = Step> {
        const POSTS: &[&str] = &[
            "4hi",
            "2",
            "3",
            "1",
            "6",
            "5",
            "4a\u{1e}4b",
            "x",
            "1:2",
            "3:4hi",
            "",
        ];
        const WS_TEXT: &[&str] = &["2probe", "3probe", "5", "4hi", "2", "3", "1", "6", "x", ""];
        prop_oneof![
            (any::<bool>(), any::<bool>(), any::<bool>())
                .prop_map(|(websocket, v3, b64)| Step::Handshake { websocket, v3, b64 }),
            any::<usize>().prop_map(Step::Poll),
            (any::<usize>(), proptest::sample::select(POSTS)).prop_map(|(i, b)| Step::Post(i, b)),
            (any::<usize>(), any::<bool>()).prop_map(|(i, b64)| Step::Upgrade(i, b64)),
            (
                any::<usize>(),
                proptest::sample::select(WS_TEXT),
                any::<bool>()
            )
                .prop_map(|(i, m, binary)| Step::WsMessage(i, m, binary)),
            any::<usize>().prop_map(Step::WsClosed),
            any::<usize>().prop_map(Step::WsBacklogged),
            any::<usize>().prop_map(Step::PollAborted),
            any::<usize>().prop_map(Step::PostAborted),
            (any::<usize>(), 0..20usize, any::<bool>()).prop_map(|(i, n, b)| Step::Send(i, n, b)),
            any::<usize>().prop_map(Step::SendVolatile),
            any::<usize>().prop_map(Step::Close),
            (0..700u64).prop_map(Step::Advance),
            any::<bool>().prop_map(Step::Transmit),
        ]
    }

    fn pick<T: Clone>(items: &[T], i: usize) -> Option<T> {
        (!items.is_empty()).then(|| items[i % items.len()].clone())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Random sequences of requests, WebSocket messages, commands and
        /// time never panic, keep the bookkeeping consistent, answer polls
        /// within `max_payload` (no one packet here is larger), and leave
        /// no deadline in the past after `handle_timeout`.
        #[test]
        fn random_sequences_keep_the_server_consistent(
            steps in proptest::collection::vec(step(), 0..60),
        ) {
            const MAX_PAYLOAD: usize = 64;
            let mut server = Server::new(ServerConfig {
                allow_eio3: true,
                max_payload: MAX_PAYLOAD,
                max_buffered_bytes: 1000,
                upgrade_timeout: Duration::from_millis(250),
                ..config()
            });
            let mut now = Instant::now();
            let (mut sids, mut conns, mut polls) = (Vec::<(String, u8)>::new(), Vec::new(), Vec::new());
            let check_body = |response: &HttpResponse| {
                assert!(
                    response.body.len() <= MAX_PAYLOAD,
                    "{} bytes over max_payload", response.body.len()
                );
            };
            for step in steps {
                let mut outcome = None;
                match step {
                    Step::Handshake { websocket, v3, b64 } => {
                        let target = format!(
                            "/engine.io/?EIO={}&transport={}{}",
                            if v3 { 3 } else { 4 },
                            if websocket { "websocket" } else { "polling" },
                            if b64 { "&b64=1" } else { "" },
                        );
                        let headers = if websocket { WS } else { &[] };
                        outcome = Some(server.handle_request(&request("GET", &target, headers), Bytes::new(), now));
                    }
                    Step::Poll(i) => if let Some((sid, eio)) = pick(&sids, i) {
                        let target = format!("/engine.io/?EIO={eio}&transport=polling&sid={sid}");
                        outcome = Some(server.handle_request(&request("GET", &target, &[]), Bytes::new(), now));
                    },
                    Step::Post(i, body) => if let Some((sid, eio)) = pick(&sids, i) {
                        let target = format!("/engine.io/?EIO={eio}&transport=polling&sid={sid}");
                        let body = Bytes::from_static(body.as_bytes());
                        outcome = Some(server.handle_request(&request("POST", &target, &[]), body, now));
                    },
                    Step::Upgrade(i, b64) => if let Some((sid, eio)) = pick(&sids, i) {
                        let b64 = if b64 { "&b64=1" } else { "" };
                        let target = format!("/engine.io/?EIO={eio}&transport=websocket&sid={sid}{b64}");
                        outcome = Some(server.handle_request(&request("GET", &target, WS), Bytes::new(), now));
                    },
                    Step::WsMessage(i, text, binary) => if let Some(conn) = pick(&conns, i) {
                        let message = if binary {
                            Message::binary(text.as_bytes().to_vec())
                        } else {
                            Message::text(text)
                        };
                        server.ws_message(conn, message, now);
                    },
                    Step::WsClosed(i) => if let Some(conn) = pick(&conns, i) {
                        server.ws_closed(conn, now);
                    },
                    Step::WsBacklogged(i) => if let Some(conn) = pick(&conns, i) {
                        server.ws_backlogged(conn, now);
                    },
                    Step::PollAborted(i) => if let Some(poll) = pick(&polls, i) {
                        server.poll_aborted(poll, now);
                    },
                    Step::PostAborted(i) => if let Some((sid, _)) = pick(&sids, i) {
                        server.post_aborted(&sid, now);
                    },
                    Step::Send(i, n, binary) => if let Some((sid, _)) = pick(&sids, i) {
                        let data = if binary {
                            MessageData::Binary(vec![7; n / 2].into())
                        } else {
                            MessageData::from("y".repeat(n))
                        };
                        let _ = server.send(&sid, data);
                    },
                    Step::SendVolatile(i) => if let Some((sid, _)) = pick(&sids, i) {
                        let _ = server.send_volatile(&sid, [MessageData::from("v")]);
                    },
                    Step::Close(i) => if let Some((sid, _)) = pick(&sids, i) {
                        server.close(&sid);
                    },
                    Step::Advance(ms) => {
                        now += Duration::from_millis(ms);
                        server.handle_timeout(now);
                        if let Some(at) = server.poll_timeout() {
                            prop_assert!(at > now, "a deadline left in the past");
                        }
                    }
                    Step::Transmit(top_up) => {
                        while let Some(transmit) = server.poll_transmit() {
                            if let Transmit::PollResponse { mut response, poll } = transmit {
                                check_body(&response);
                                if top_up && let Some(sid) = sids.iter().find(|(s, _)| {
                                    server.sessions.get(s.as_str()).is_some_and(|s| s.poll.is_none())
                                }).map(|(s, _)| s.clone()) {
                                    server.top_up_poll_response(&sid, &mut response);
                                    check_body(&response);
                                }
                                prop_assert!(server.held_poll_session(poll).is_none());
                            }
                        }
                    }
                }
                match outcome {
                    // (A handshake's `open` alone is over this bound.)
                    Some(RequestOutcome::Respond(response))
                        if response.status == 200 && !response.body.contains(&b'{') =>
                    {
                        check_body(&response);
                    }
                    Some(RequestOutcome::Hold(poll)) => polls.push(poll),
                    Some(RequestOutcome::AcceptWebSocket { conn }) => conns.push(conn),
                    Some(RequestOutcome::Respond(_)) | None => {}
                }
                while let Some(event) = server.poll_event() {
                    if let ServerEvent::Open { sid, version, .. } = event {
                        let eio = if version == ProtocolVersion::V3 { 3 } else { 4 };
                        sids.push((sid.to_string(), eio));
                    }
                }
                check_invariants(&server);
            }
        }
    }

    proptest! {
        #[test]
        fn random_bodies_never_panic(
            body in proptest::collection::vec(any::<u8>(), 0..64),
            binary in any::<bool>(),
            v3 in any::<bool>(),
        ) {
            let mut server = Server::new(ServerConfig { allow_eio3: true, max_payload: 48, ..config() });
            let t0 = Instant::now();
            let eio = if v3 { 3 } else { 4 };
            let (_, open) = respond(get(&mut server, &format!("/engine.io/?EIO={eio}&transport=polling"), t0));
            let json = &open[open.find('{').unwrap()..];
            let sid = OpenPacket::from_json(json).unwrap().sid;
            let target = format!("/engine.io/?EIO={eio}&transport=polling&sid={sid}");
            let _ = held(server.handle_request(&request("GET", &target, &[]), Bytes::new(), t0));
            let content_type = if binary { "application/octet-stream" } else { "text/plain" };
            let req = request("POST", &target, &[("Content-Type", content_type)]);
            let RequestOutcome::Respond(r) = server.handle_request(&req, body.into(), t0) else {
                panic!("a POST is always answered");
            };
            prop_assert!([200, 400, 413].contains(&r.status));
            while server.poll_transmit().is_some() {}
            let mut closes = 0;
            while let Some(event) = server.poll_event() {
                if matches!(event, ServerEvent::Close { .. }) { closes += 1; }
            }
            prop_assert!(closes <= 1);
            prop_assert_eq!(closes == 1, server.session_count() == 0);
            server.handle_timeout(t0 + Duration::from_secs(5));
        }

        #[test]
        fn random_ws_messages_never_panic(
            messages in proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u8>(), 0..16)), 0..8),
        ) {
            let mut server = Server::new(config());
            let t0 = Instant::now();
            let req = request("GET", "/engine.io/?EIO=4&transport=websocket", WS);
            let conn = accepted(server.handle_request(&req, Bytes::new(), t0));
            for (text, data) in messages {
                let message = if text {
                    Message::text(String::from_utf8_lossy(&data).into_owned())
                } else {
                    Message::binary(data)
                };
                server.ws_message(conn, message, t0);
            }
            while server.poll_transmit().is_some() {}
            while server.poll_event().is_some() {}
        }
    }
}
