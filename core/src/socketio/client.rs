//! The Socket.IO client, sans IO: namespace connections multiplexed over
//! one Engine.IO session, events and acks both ways, disconnects, and the
//! reconnection of the session with exponential backoff.
//!
//! A [`Client`] plays the part of Node's `Manager` and of its `Socket`s at
//! once: it owns one Engine.IO session at a time (opened, re-opened and
//! closed by the adapter on its request) and the namespaces connected over
//! it. The adapter feeds it what happens to the session
//! ([`Client::handle_engine_open`], [`Client::handle_engine_message`],
//! [`Client::handle_engine_close`], [`Client::handle_engine_error`]), the
//! application's commands ([`Client::connect`], [`Client::emit`],
//! [`Client::emit_with_ack`], [`Client::ack`], [`Client::disconnect`],
//! [`Client::close`]) and time ([`Client::handle_timeout`]); it polls out
//! what to do with the session ([`Client::poll_transmit`]:
//! [`ClientTransmit`]), application events ([`Client::poll_event`]:
//! [`ClientEvent`]) and the next deadline ([`Client::poll_timeout`]).
//!
//! # Behaviour
//!
//! It follows Node's `socket.io-client` (v4) where the protocol leaves
//! room:
//!
//! - Each namespace is joined with a CONNECT carrying its auth payload; the
//!   server's CONNECT gives the socket id, its CONNECT_ERROR a message and
//!   data ([`ConnectError::Refused`]).
//! - Emits made while a namespace is not connected are buffered (at most
//!   [`ClientConfig::max_buffered_packets`] per namespace; more is refused
//!   with [`EmitError::BufferFull`]) and sent, in order, once it connects.
//! - Events the server sends on a namespace before its CONNECT (what
//!   python-socketio's connect handler emits) are kept (as many as
//!   [`ClientConfig::max_buffered_packets`]) and handed out once it
//!   connects, before [`ClientEvent::Connect`], as Node's client does; they
//!   are dropped if the namespace is refused or the session lost first.
//! - An ack answers the event of one connection of the namespace
//!   ([`ClientEvent::Event`]'s `connection`): after a reconnection it is
//!   not sent ([`EmitError::NotConnected`]), since the server's ack ids
//!   start again with each connection.
//! - An ack asked for with a timeout fails with [`AckError::Timeout`] when
//!   no answer came in time (a buffered packet whose ack timed out is not
//!   sent any more). Acks of packets already sent fail with
//!   [`AckError::Disconnected`] when the namespace disconnects; those of
//!   buffered packets wait for the reconnection.
//! - When the session closes ([`DisconnectReason::TransportClose`],
//!   [`DisconnectReason::TransportError`], [`DisconnectReason::PingTimeout`],
//!   or [`DisconnectReason::ParseError`] for unreadable input, after which
//!   the client closes the session itself), every connected namespace
//!   disconnects with that reason and the client reconnects: after
//!   `reconnection_delay * 2^attempt` (capped at `reconnection_delay_max`),
//!   moved by up to `randomization_factor` of itself at random, it asks for
//!   a new session ([`ClientTransmit::Open`]) and joins every namespace again
//!   with a new CONNECT. A session that fails to open counts as an attempt;
//!   after [`ClientConfig::reconnection_attempts`] of them it gives up
//!   ([`ClientEvent::ReconnectFailed`]).
//! - A namespace the server disconnects ([`DisconnectReason::IoServerDisconnect`])
//!   or refuses, or one the application leaves
//!   ([`DisconnectReason::IoClientDisconnect`]), is not joined again. When no
//!   namespace wants to be connected any more, the session is closed and no
//!   reconnection happens until the application connects a namespace again.
//!
//! # The adapter's side of the session
//!
//! - [`ClientTransmit::Open`]: open a new Engine.IO session (there is no
//!   other at that time); report [`Client::handle_engine_open`] once its
//!   handshake completed, or [`Client::handle_engine_error`] if it failed.
//! - [`ClientTransmit::Send`]: send the message on the session, in order.
//! - [`ClientTransmit::Close`]: close the session (after sending what was
//!   asked before), and report nothing more about it.
//! - [`Client::handle_engine_close`]: the open session closed on its own.
//!
//! # Protocol v4
//!
//! With [`ClientConfig::version`] [`ProtocolVersion::V4`] (socket.io 2.x
//! servers, over Engine.IO v3), `/` is joined without a CONNECT (the
//! server sends its CONNECT at once), other namespaces put their auth
//! object in the CONNECT's query, the server's CONNECT carries no socket id
//! (the id is the Engine.IO session id, prefixed with `namespace#` outside
//! `/`), and a refusal carries any JSON value.
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, Instant};
//! use switchboard_core::engineio::MessageData;
//! use switchboard_core::socketio::client::{Client, ClientConfig, ClientEvent, ClientTransmit};
//! use switchboard_core::socketio::RawJson;
//!
//! let now = Instant::now();
//! let mut client = Client::with_seed(ClientConfig::default(), 1);
//! let auth = RawJson::new(r#"{"token":"abc"}"#).unwrap();
//! client.connect("/", Some(auth), now);
//! assert_eq!(client.poll_transmit(), Some(ClientTransmit::Open));
//!
//! client.handle_engine_open("eio-sid", now);
//! let text = |t: &str| ClientTransmit::Send(MessageData::Text(t.to_owned().into()));
//! assert_eq!(client.poll_transmit(), Some(text(r#"0{"token":"abc"}"#)));
//! client.handle_engine_message(MessageData::Text(r#"0{"sid":"s1"}"#.into()), now);
//! assert!(matches!(client.poll_event(), Some(ClientEvent::Connect { sid, .. }) if sid == "s1"));
//!
//! let id = client.emit_with_ack("/", "hello", &("world",), Some(Duration::from_secs(5)), now).unwrap();
//! assert_eq!(client.poll_transmit(), Some(text(r#"20["hello","world"]"#)));
//! client.handle_engine_message(MessageData::Text(r#"30["hi"]"#.into()), now);
//! let Some(ClientEvent::Ack { id: answered, packet, .. }) = client.poll_event() else { panic!() };
//! assert_eq!(answered, id);
//! assert_eq!(packet.args::<(String,)>().unwrap().0, "hi");
//! ```

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::ProtocolVersion;
use super::packet::{
    DEFAULT_NAMESPACE, Decoder, DecoderConfig, EncodeError, Encoded, Packet, PacketKind, RawJson,
    encode_ack, encode_event,
};
pub use super::server::AckError;
use crate::engineio::MessageData;
use crate::engineio::client::ClientCloseReason;
use crate::ws::Text;

/// Settings of a [`Client`]; the defaults are Node's.
///
/// ```
/// use std::time::Duration;
/// use switchboard_core::socketio::client::ClientConfig;
/// let config = ClientConfig::default();
/// assert_eq!(config.reconnection_delay, Duration::from_millis(1000));
/// assert_eq!(config.reconnection_delay_max, Duration::from_millis(5000));
/// assert_eq!(config.randomization_factor, 0.5);
/// assert_eq!(config.reconnection_attempts, None);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// The protocol revision (default v5; v4 runs over Engine.IO v3).
    pub version: ProtocolVersion,
    /// Reconnect after the session is lost (default true).
    pub reconnection: bool,
    /// How many attempts in a row before giving up; `None` (the default)
    /// tries forever.
    pub reconnection_attempts: Option<u32>,
    /// The delay before the first attempt, doubled for each further one
    /// (default 1 s).
    pub reconnection_delay: Duration,
    /// The longest delay between attempts (default 5 s).
    pub reconnection_delay_max: Duration,
    /// How far, as a fraction of itself, a delay is moved at random,
    /// between 0 and 1 (default 0.5: a 1 s delay becomes 0.5 s to 1.5 s).
    pub randomization_factor: f64,
    /// The most packets one namespace buffers while it is not connected
    /// (default 1024); an emit beyond it fails with
    /// [`EmitError::BufferFull`]. As many events from the server, received
    /// before the namespace's CONNECT, are kept for it (more are dropped).
    pub max_buffered_packets: usize,
    /// Limits of the packet decoder.
    pub decoder: DecoderConfig,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            version: ProtocolVersion::V5,
            reconnection: true,
            reconnection_attempts: None,
            reconnection_delay: Duration::from_millis(1000),
            reconnection_delay_max: Duration::from_millis(5000),
            randomization_factor: 0.5,
            max_buffered_packets: 1024,
            decoder: DecoderConfig::default(),
        }
    }
}

/// Why a namespace disconnected, as Node's client words it
/// ([`DisconnectReason::as_str`]).
///
/// ```
/// use switchboard_core::engineio::client::ClientCloseReason;
/// use switchboard_core::socketio::client::DisconnectReason;
/// let reason = DisconnectReason::from_engine(ClientCloseReason::PingTimeout);
/// assert_eq!(reason, DisconnectReason::PingTimeout);
/// assert_eq!(reason.as_str(), "ping timeout");
/// assert!(reason.reconnects());
/// assert!(!DisconnectReason::IoServerDisconnect.reconnects());
/// assert_eq!(DisconnectReason::IoClientDisconnect.to_string(), "io client disconnect");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The server sent DISCONNECT (`socket.disconnect()` there): no
    /// reconnection.
    IoServerDisconnect,
    /// The application left the namespace ([`Client::disconnect`],
    /// [`Client::close`]).
    IoClientDisconnect,
    /// The session closed (the server closed it, or the connection was
    /// lost): the client reconnects.
    TransportClose,
    /// The session failed: the client reconnects.
    TransportError,
    /// The server stopped answering the heartbeat: the client reconnects.
    PingTimeout,
    /// The server sent something unreadable: the client closes the session
    /// and reconnects.
    ParseError,
}

impl DisconnectReason {
    /// The reason as Node's `socket.io-client` words it.
    pub const fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::IoServerDisconnect => "io server disconnect",
            DisconnectReason::IoClientDisconnect => "io client disconnect",
            DisconnectReason::TransportClose => "transport close",
            DisconnectReason::TransportError => "transport error",
            DisconnectReason::PingTimeout => "ping timeout",
            DisconnectReason::ParseError => "parse error",
        }
    }

    /// The reason for an Engine.IO session that closed with `reason`.
    pub const fn from_engine(reason: ClientCloseReason) -> Self {
        match reason {
            ClientCloseReason::TransportClose => DisconnectReason::TransportClose,
            ClientCloseReason::PingTimeout => DisconnectReason::PingTimeout,
            ClientCloseReason::ForcedClose => DisconnectReason::IoClientDisconnect,
            _ => DisconnectReason::TransportError,
        }
    }

    /// Whether the client reconnects after it (when reconnection is on).
    pub const fn reconnects(self) -> bool {
        !matches!(
            self,
            DisconnectReason::IoServerDisconnect | DisconnectReason::IoClientDisconnect
        )
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why joining a namespace failed.
///
/// ```
/// # use std::time::Instant;
/// use switchboard_core::engineio::MessageData;
/// use switchboard_core::socketio::client::{Client, ClientConfig, ClientEvent, ConnectError};
/// # let now = Instant::now();
/// let mut client = Client::new(ClientConfig::default());
/// client.connect("/admin", None, now);
/// client.handle_engine_open("e1", now);
/// # while client.poll_transmit().is_some() {}
/// let refusal = r#"4/admin,{"message":"not authorized","data":{"code":401}}"#;
/// client.handle_engine_message(MessageData::Text(refusal.into()), now);
///
/// let Some(ClientEvent::ConnectError { namespace, error }) = client.poll_event() else { panic!() };
/// assert_eq!(namespace, "/admin");
/// assert_eq!(error.to_string(), "not authorized");
/// let ConnectError::Refused { data, .. } = error else { panic!() };
/// assert_eq!(data, Some(serde_json::json!({"code": 401})));
/// assert!(!client.is_active("/admin")); // not joined again
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The server refused (CONNECT_ERROR), e.g. a middleware's
    /// `not authorized`, or `Invalid namespace`.
    #[error("{message}")]
    Refused {
        /// The message (`err.message` on the server).
        message: String,
        /// Extra data (`err.data` on the server).
        data: Option<serde_json::Value>,
    },
    /// The Engine.IO session could not be opened (the client keeps
    /// trying when reconnection is on).
    #[error("transport error: {0}")]
    Transport(String),
    /// The attempt ended without an answer: the application left the
    /// namespace or closed the client first. (The state machine does not
    /// report it; adapters answer waiting callers with it.)
    #[error("disconnected before the namespace was joined")]
    Closed,
}

/// An emit or ack that was not made.
///
/// ```
/// # use std::time::Instant;
/// use switchboard_core::socketio::client::{Client, ClientConfig, EmitError};
/// # let now = Instant::now();
/// let config = ClientConfig { max_buffered_packets: 1, ..ClientConfig::default() };
/// let mut client = Client::new(config);
/// client.emit("/", "first", &()).unwrap(); // buffered: `/` is not connected
/// assert!(matches!(client.emit("/", "second", &()), Err(EmitError::BufferFull)));
/// assert!(matches!(client.emit("/", "disconnect", &()), Err(EmitError::Encode(_))));
/// assert!(matches!(client.ack("/", 0, 0, &()), Err(EmitError::NotConnected)));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmitError {
    /// The arguments could not be encoded (or the event name is reserved).
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The namespace is not connected and already buffers
    /// [`ClientConfig::max_buffered_packets`] packets.
    #[error("the send buffer of the namespace is full")]
    BufferFull,
    /// An ack for a namespace that is not connected, or that connected
    /// again since the event came (it answers an event of a connection that
    /// is gone).
    #[error("the namespace is not connected")]
    NotConnected,
}

/// Something for the application.
///
/// An event from the server that asks for an answer, and the answer:
///
/// ```
/// # use std::time::Instant;
/// # use switchboard_core::engineio::MessageData;
/// # use switchboard_core::socketio::client::{Client, ClientConfig};
/// # let now = Instant::now();
/// # let mut client = Client::with_seed(ClientConfig::default(), 1);
/// # client.connect("/", None, now);
/// # client.handle_engine_open("e1", now);
/// # while client.poll_transmit().is_some() {}
/// # client.handle_engine_message(MessageData::Text(r#"0{"sid":"s1"}"#.into()), now);
/// # while client.poll_event().is_some() {}
/// use switchboard_core::socketio::client::{ClientEvent, ClientTransmit};
/// // `/` is connected.
/// let event = r#"25["question","six times seven?"]"#;
/// client.handle_engine_message(MessageData::Text(event.into()), now);
/// let Some(ClientEvent::Event { namespace, connection, packet }) = client.poll_event() else {
///     panic!()
/// };
/// assert_eq!(namespace, "/");
/// assert_eq!(packet.event_name().as_deref(), Some("question"));
/// assert_eq!(packet.arg::<&str>(0).unwrap(), "six times seven?");
///
/// let id = packet.id.expect("the server asks for an ack");
/// client.ack(&namespace, connection, id, &(42,)).unwrap();
/// let answer = ClientTransmit::Send(MessageData::Text("35[42]".into()));
/// assert_eq!(client.poll_transmit(), Some(answer));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A namespace is connected (again, after a reconnection).
    Connect {
        /// The namespace.
        namespace: Text,
        /// The socket id the server gave.
        sid: String,
    },
    /// Joining a namespace failed. After a refusal the namespace is not
    /// joined again; after a transport error it is when the client
    /// reconnects.
    ConnectError {
        /// The namespace.
        namespace: Text,
        /// Why.
        error: ConnectError,
    },
    /// An event from the server. Its name, arguments and ack id (when the
    /// server asks for an answer: reply with [`Client::ack`], passing
    /// `connection` along) are in `packet`.
    Event {
        /// The namespace.
        namespace: Text,
        /// Which connection of the namespace the event came on (a number
        /// of the client's own, new at each [`ClientEvent::Connect`]).
        connection: u64,
        /// The EVENT or BINARY_EVENT.
        packet: Packet,
    },
    /// The server answered an ack asked for with [`Client::emit_with_ack`].
    Ack {
        /// The namespace.
        namespace: Text,
        /// The ack id.
        id: u64,
        /// The ACK or BINARY_ACK ([`Packet::args`]).
        packet: Packet,
    },
    /// An ack asked for will not come.
    AckFailed {
        /// The namespace.
        namespace: Text,
        /// The ack id.
        id: u64,
        /// Why.
        error: AckError,
    },
    /// A connected namespace disconnected (once per [`ClientEvent::Connect`]).
    Disconnect {
        /// The namespace.
        namespace: Text,
        /// Why.
        reason: DisconnectReason,
    },
    /// A reconnection attempt starts: a new session is asked for.
    ReconnectAttempt {
        /// The attempt's number, from 1.
        attempt: u32,
    },
    /// A reconnection attempt opened a session.
    Reconnected {
        /// How many attempts it took.
        attempt: u32,
    },
    /// Every allowed attempt failed: the client stops trying (until the
    /// application connects a namespace again).
    ReconnectFailed,
}

/// Something for the adapter to do with the Engine.IO session.
///
/// The adapter's glue with an [Engine.IO client](crate::engineio::client::Client),
/// here over a WebSocket-only session whose frames are made up:
///
/// ```
/// use std::time::Instant;
/// use switchboard_core::engineio::client as eio;
/// use switchboard_core::socketio::client::{Client, ClientConfig, ClientEvent, ClientTransmit};
/// use switchboard_core::ws::Message;
/// # let now = Instant::now();
/// let mut client = Client::new(ClientConfig::default());
/// client.connect("/", None, now);
///
/// // Open: start an Engine.IO session; report its `open`.
/// assert_eq!(client.poll_transmit(), Some(ClientTransmit::Open));
/// let config = eio::ClientConfig { polling: false, ..eio::ClientConfig::new("localhost", 3000) };
/// let mut engine = eio::Client::new(config, now).unwrap();
/// # engine.poll_transmit();
/// # engine.ws_opened(now);
/// let open = r#"0{"sid":"e1","upgrades":[],"pingInterval":25000,"pingTimeout":20000}"#;
/// engine.ws_message(Message::text(open), now);
/// let Some(eio::ClientEvent::Open { sid, .. }) = engine.poll_event() else { panic!() };
/// client.handle_engine_open(&sid, now);
///
/// // Send: a Socket.IO packet (CONNECT, `0`) in an Engine.IO message (`4`).
/// let Some(ClientTransmit::Send(data)) = client.poll_transmit() else { panic!() };
/// engine.send(data).unwrap();
/// assert_eq!(engine.poll_transmit(), Some(eio::ClientTransmit::WsSend(Message::text("40"))));
///
/// // The session's messages go back the other way.
/// engine.ws_message(Message::text(r#"40{"sid":"s1"}"#), now);
/// let Some(eio::ClientEvent::Message(data)) = engine.poll_event() else { panic!() };
/// client.handle_engine_message(data, now);
/// assert!(matches!(client.poll_event(), Some(ClientEvent::Connect { .. })));
///
/// // Close: after what was sent before (here the DISCONNECT).
/// client.close();
/// let Some(ClientTransmit::Send(data)) = client.poll_transmit() else { panic!() };
/// engine.send(data).unwrap();
/// assert_eq!(client.poll_transmit(), Some(ClientTransmit::Close));
/// engine.close();
/// assert_eq!(engine.poll_transmit(), Some(eio::ClientTransmit::WsSend(Message::text("41"))));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientTransmit {
    /// Open a new Engine.IO session, and report how that went.
    Open,
    /// Send this message on the session.
    Send(MessageData),
    /// Close the session; nothing more about it is to be reported.
    Close,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Engine {
    Idle,
    Opening,
    Open { sid: String },
}

#[derive(Debug)]
enum NsState {
    /// Not wanted (never connected, left, refused, or disconnected by the
    /// server).
    Inactive,
    /// Wanted: waiting for the session or the server's CONNECT.
    Connecting {
        /// Events from the server that came before its CONNECT, on this
        /// session (python-socketio sends the CONNECT after its connect
        /// handler, so what the handler emits comes first).
        early: VecDeque<Packet>,
    },
    Connected {
        sid: String,
        /// This connection's number (`Client::next_connection`).
        connection: u64,
    },
}

#[derive(Debug)]
struct Namespace {
    auth: Option<RawJson>,
    state: NsState,
    /// Packets waiting for the connection, with their ack ids.
    buffer: VecDeque<(Encoded, Option<u64>)>,
}

impl Namespace {
    fn active(&self) -> bool {
        !matches!(self.state, NsState::Inactive)
    }

    fn connecting(&self) -> bool {
        matches!(self.state, NsState::Connecting { .. })
    }
}

impl NsState {
    fn connecting() -> Self {
        NsState::Connecting {
            early: VecDeque::new(),
        }
    }
}

/// What [`Client::handle_packet`] needs to know of a namespace's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Inactive,
    Connecting,
    Connected { connection: u64 },
}

#[derive(Debug)]
struct PendingAck {
    namespace: String,
    deadline: Option<Instant>,
    /// Still in the namespace's buffer.
    buffered: bool,
}

/// The Socket.IO client state machine (see the [module docs](self)).
///
/// A lost session, and the reconnection:
///
/// ```
/// # use std::time::{Duration, Instant};
/// use switchboard_core::engineio::client::ClientCloseReason;
/// use switchboard_core::engineio::MessageData;
/// use switchboard_core::socketio::client::{
///     Client, ClientConfig, ClientEvent, ClientTransmit, DisconnectReason,
/// };
/// # let now = Instant::now();
/// // No jitter: the first attempt comes after exactly `reconnection_delay`.
/// let config = ClientConfig { randomization_factor: 0.0, ..ClientConfig::default() };
/// let mut client = Client::new(config);
/// # client.connect("/", None, now);
/// # client.handle_engine_open("e1", now);
/// # while client.poll_transmit().is_some() {}
/// # client.handle_engine_message(MessageData::Text(r#"0{"sid":"s1"}"#.into()), now);
/// # while client.poll_event().is_some() {}
/// // ... connected on `/` ...
/// client.handle_engine_close(ClientCloseReason::TransportClose, now);
/// let reason = DisconnectReason::TransportClose;
/// assert_eq!(client.poll_event(), Some(ClientEvent::Disconnect { namespace: "/".into(), reason }));
/// assert!(client.is_reconnecting());
///
/// let at = client.poll_timeout().unwrap();
/// assert_eq!(at, now + Duration::from_secs(1));
/// client.handle_timeout(at);
/// assert_eq!(client.poll_event(), Some(ClientEvent::ReconnectAttempt { attempt: 1 }));
/// assert_eq!(client.poll_transmit(), Some(ClientTransmit::Open));
///
/// client.handle_engine_open("e2", at);
/// assert_eq!(client.poll_event(), Some(ClientEvent::Reconnected { attempt: 1 }));
/// assert_eq!(client.poll_transmit(), Some(ClientTransmit::Send(MessageData::Text("0".into()))));
/// client.handle_engine_message(MessageData::Text(r#"0{"sid":"s2"}"#.into()), at);
/// assert_eq!(client.sid("/"), Some("s2"));
/// ```
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    engine: Engine,
    decoder: Decoder,
    namespaces: BTreeMap<String, Namespace>,
    next_ack_id: u64,
    /// The number of the next namespace connection.
    next_connection: u64,
    acks: HashMap<u64, PendingAck>,
    /// (deadline, ack id)
    ack_deadlines: BTreeSet<(Instant, u64)>,
    /// Reconnection attempts made in a row.
    attempts: u32,
    /// A reconnection is scheduled (`reconnect_at`) or its session is
    /// opening.
    reconnecting: bool,
    reconnect_at: Option<Instant>,
    /// No reconnection: the client was closed on purpose.
    skip_reconnect: bool,
    rng: u64,
    transmits: VecDeque<ClientTransmit>,
    events: VecDeque<ClientEvent>,
}

impl Client {
    /// A client with no namespace yet, its jitter seeded at random. It asks
    /// for nothing until a namespace is [connected](Client::connect).
    ///
    /// ```
    /// use switchboard_core::socketio::client::{Client, ClientConfig};
    /// let mut client = Client::new(ClientConfig::default());
    /// assert_eq!(client.poll_transmit(), None);
    /// assert!(!client.is_engine_open());
    /// assert_eq!(client.config().max_buffered_packets, 1024);
    /// ```
    pub fn new(config: ClientConfig) -> Self {
        let mut seed = [0u8; 8];
        // Only jitter: a failure leaves a fixed seed.
        let _ = getrandom::fill(&mut seed);
        Self::with_seed(config, u64::from_le_bytes(seed))
    }

    /// A client whose reconnection jitter comes from `seed` (for
    /// reproducible tests).
    pub fn with_seed(config: ClientConfig, seed: u64) -> Self {
        Client {
            decoder: Decoder::new(config.version, config.decoder),
            config,
            engine: Engine::Idle,
            namespaces: BTreeMap::new(),
            next_ack_id: 0,
            next_connection: 0,
            acks: HashMap::new(),
            ack_deadlines: BTreeSet::new(),
            attempts: 0,
            reconnecting: false,
            reconnect_at: None,
            skip_reconnect: false,
            rng: seed,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Whether an Engine.IO session is open.
    pub fn is_engine_open(&self) -> bool {
        matches!(self.engine, Engine::Open { .. })
    }

    /// Whether `namespace` is connected.
    pub fn is_connected(&self, namespace: &str) -> bool {
        self.sid(namespace).is_some()
    }

    /// Whether `namespace` wants to be connected (connected, or waiting for
    /// the session or the server's answer).
    pub fn is_active(&self, namespace: &str) -> bool {
        self.namespaces
            .get(&*normalize(namespace))
            .is_some_and(Namespace::active)
    }

    /// The socket id of `namespace`, while it is connected.
    ///
    /// This and the other getters, as a namespace connects:
    ///
    /// ```
    /// # use std::time::Instant;
    /// use switchboard_core::engineio::MessageData;
    /// use switchboard_core::socketio::client::{Client, ClientConfig};
    /// # let now = Instant::now();
    /// let mut client = Client::new(ClientConfig::default());
    /// client.connect("/chat", None, now);
    /// assert!(client.is_active("/chat") && !client.is_connected("/chat"));
    /// client.emit_with_ack("/chat", "hello", &(), None, now).unwrap();
    /// assert_eq!((client.buffered("/chat"), client.pending_acks()), (1, 1));
    ///
    /// client.handle_engine_open("e1", now);
    /// assert!(client.is_engine_open());
    /// let connect = MessageData::Text(r#"0/chat,{"sid":"s1"}"#.into());
    /// client.handle_engine_message(connect, now);
    /// assert_eq!(client.sid("/chat"), Some("s1"));
    /// assert!(client.is_connected("chat")); // the leading `/` may be left out
    /// assert_eq!(client.buffered("/chat"), 0); // sent on connecting
    /// assert!(!client.is_reconnecting());
    /// ```
    pub fn sid(&self, namespace: &str) -> Option<&str> {
        match &self.namespaces.get(&*normalize(namespace))?.state {
            NsState::Connected { sid, .. } => Some(sid),
            _ => None,
        }
    }

    /// How many packets `namespace` buffers.
    pub fn buffered(&self, namespace: &str) -> usize {
        self.namespaces
            .get(&*normalize(namespace))
            .map_or(0, |ns| ns.buffer.len())
    }

    /// How many acks are awaited.
    pub fn pending_acks(&self) -> usize {
        self.acks.len()
    }

    /// Whether a reconnection attempt is scheduled or under way.
    pub fn is_reconnecting(&self) -> bool {
        self.reconnecting
    }

    /// Joins `namespace` (`/` or a path starting with `/`), with `auth` as
    /// the CONNECT's payload (`None` keeps the one given before, if any).
    /// Opens a session when none is open or opening (unless a reconnection
    /// is scheduled: it will carry the CONNECT). For a namespace connected
    /// or connecting already, only a new `auth` is kept, for the next
    /// CONNECT.
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use switchboard_core::engineio::MessageData;
    /// # use switchboard_core::socketio::client::{Client, ClientConfig};
    /// # let now = Instant::now();
    /// # let mut client = Client::with_seed(ClientConfig::default(), 1);
    /// # client.connect("/", None, now);
    /// # client.handle_engine_open("e1", now);
    /// # while client.poll_transmit().is_some() {}
    /// # client.handle_engine_message(MessageData::Text(r#"0{"sid":"s1"}"#.into()), now);
    /// # while client.poll_event().is_some() {}
    /// # use switchboard_core::socketio::client::ClientTransmit;
    /// # let text = |t: &str| ClientTransmit::Send(MessageData::Text(t.to_owned().into()));
    /// use switchboard_core::socketio::RawJson;
    /// // The session is open, `/` connected: another namespace joins at once.
    /// let auth = RawJson::new(r#"{"token":"t"}"#).unwrap();
    /// client.connect("admin", Some(auth), now);
    /// assert_eq!(client.poll_transmit(), Some(text(r#"0/admin,{"token":"t"}"#)));
    /// assert!(client.is_active("/admin"));
    /// // Asking again while connecting sends nothing more.
    /// client.connect("/admin", None, now);
    /// assert_eq!(client.poll_transmit(), None);
    /// ```
    pub fn connect(&mut self, namespace: &str, auth: Option<RawJson>, _now: Instant) {
        let namespace = &*normalize(namespace);
        let version = self.config.version;
        let ns = self.namespace_mut(namespace);
        if auth.is_some() {
            ns.auth = auth;
        }
        if ns.active() {
            self.ensure_engine();
            return;
        }
        ns.state = NsState::connecting();
        let connect = Packet::connect(text(namespace), ns.auth.clone());
        match self.engine {
            Engine::Open { .. } => self.send_encoded(connect.encode(version)),
            Engine::Opening => {}
            Engine::Idle => self.ensure_engine(),
        }
    }

    /// Leaves `namespace`: a connected one sends DISCONNECT and reports
    /// [`DisconnectReason::IoClientDisconnect`]; acks of packets sent on it
    /// fail. When no namespace is left, the session is closed and
    /// reconnection stops.
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use switchboard_core::engineio::MessageData;
    /// # use switchboard_core::socketio::client::{Client, ClientConfig};
    /// # let now = Instant::now();
    /// # let mut client = Client::with_seed(ClientConfig::default(), 1);
    /// # client.connect("/", None, now);
    /// # client.handle_engine_open("e1", now);
    /// # while client.poll_transmit().is_some() {}
    /// # client.handle_engine_message(MessageData::Text(r#"0{"sid":"s1"}"#.into()), now);
    /// # while client.poll_event().is_some() {}
    /// # use switchboard_core::socketio::client::ClientTransmit;
    /// # let text = |t: &str| ClientTransmit::Send(MessageData::Text(t.to_owned().into()));
    /// use switchboard_core::socketio::client::{ClientEvent, DisconnectReason};
    /// // `/` is the only namespace connected.
    /// client.disconnect("/");
    /// assert_eq!(client.poll_transmit(), Some(text("1")));
    /// assert_eq!(client.poll_transmit(), Some(ClientTransmit::Close)); // the session too
    /// let reason = DisconnectReason::IoClientDisconnect;
    /// assert_eq!(client.poll_event(), Some(ClientEvent::Disconnect { namespace: "/".into(), reason }));
    /// assert!(!client.is_active("/") && !client.is_engine_open());
    /// ```
    pub fn disconnect(&mut self, namespace: &str) {
        let namespace = &*normalize(namespace);
        let version = self.config.version;
        let Some(ns) = self.namespaces.get_mut(namespace) else {
            return;
        };
        let was = std::mem::replace(&mut ns.state, NsState::Inactive);
        if let NsState::Connected { .. } = was {
            self.send_encoded(Packet::disconnect(text(namespace)).encode(version));
            self.events.push_back(ClientEvent::Disconnect {
                namespace: text(namespace),
                reason: DisconnectReason::IoClientDisconnect,
            });
            self.fail_sent_acks(namespace);
        }
        self.close_if_unused();
    }

    /// Leaves every namespace (as [`Client::disconnect`]) and closes the
    /// session; no reconnection follows.
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use switchboard_core::engineio::MessageData;
    /// # use switchboard_core::socketio::client::{Client, ClientConfig};
    /// # let now = Instant::now();
    /// # let mut client = Client::with_seed(ClientConfig::default(), 1);
    /// # client.connect("/", None, now);
    /// # client.handle_engine_open("e1", now);
    /// # while client.poll_transmit().is_some() {}
    /// # client.handle_engine_message(MessageData::Text(r#"0{"sid":"s1"}"#.into()), now);
    /// # while client.poll_event().is_some() {}
    /// # use switchboard_core::socketio::client::ClientTransmit;
    /// # let text = |t: &str| ClientTransmit::Send(MessageData::Text(t.to_owned().into()));
    /// // `/` is connected and `/admin` waits for the server's answer.
    /// client.connect("/admin", None, now);
    /// # client.poll_transmit();
    /// client.close();
    /// assert_eq!(client.poll_transmit(), Some(text("1"))); // `/` leaves
    /// assert_eq!(client.poll_transmit(), Some(ClientTransmit::Close));
    /// assert!(!client.is_active("/admin") && !client.is_reconnecting());
    /// assert_eq!(client.poll_timeout(), None);
    /// ```
    pub fn close(&mut self) {
        let names: Vec<String> = self.namespaces.keys().cloned().collect();
        for namespace in names {
            self.disconnect(&namespace);
        }
        self.close_engine();
    }

    /// Emits `event` with `args` on `namespace` (see
    /// [`encode_event`] for how `args` become
    /// arguments): sent at once when the namespace is connected, buffered
    /// otherwise.
    ///
    /// ```
    /// # use std::time::Instant;
    /// use switchboard_core::engineio::MessageData;
    /// use switchboard_core::socketio::client::{Client, ClientConfig, ClientTransmit};
    /// # let now = Instant::now();
    /// let text = |t: &str| ClientTransmit::Send(MessageData::Text(t.to_owned().into()));
    /// let mut client = Client::new(ClientConfig::default());
    /// client.connect("/", None, now);
    /// client.emit("/", "move", &(3, "left")).unwrap(); // buffered until connected
    ///
    /// assert_eq!(client.poll_transmit(), Some(ClientTransmit::Open));
    /// client.handle_engine_open("e1", now);
    /// assert_eq!(client.poll_transmit(), Some(text("0")));
    /// client.handle_engine_message(MessageData::Text(r#"0{"sid":"s1"}"#.into()), now);
    /// assert_eq!(client.poll_transmit(), Some(text(r#"2["move",3,"left"]"#)));
    ///
    /// client.emit("/", "chat", "hi").unwrap(); // one argument needs no tuple
    /// assert_eq!(client.poll_transmit(), Some(text(r#"2["chat","hi"]"#)));
    /// ```
    pub fn emit<T: Serialize + ?Sized>(
        &mut self,
        namespace: &str,
        event: &str,
        args: &T,
    ) -> Result<(), EmitError> {
        let namespace = &*normalize(namespace);
        let encoded = encode_event(namespace, event, args, None)?;
        self.send_or_buffer(namespace, encoded, None)
    }

    /// Emits `event` asking for an ack, which must come within `timeout`
    /// (`None`: no deadline); returns the ack id that
    /// [`ClientEvent::Ack`] or [`ClientEvent::AckFailed`] will carry.
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use switchboard_core::engineio::MessageData;
    /// # use switchboard_core::socketio::client::{Client, ClientConfig};
    /// # let now = Instant::now();
    /// # let mut client = Client::with_seed(ClientConfig::default(), 1);
    /// # client.connect("/", None, now);
    /// # client.handle_engine_open("e1", now);
    /// # while client.poll_transmit().is_some() {}
    /// # client.handle_engine_message(MessageData::Text(r#"0{"sid":"s1"}"#.into()), now);
    /// # while client.poll_event().is_some() {}
    /// # use switchboard_core::socketio::client::ClientTransmit;
    /// # let text = |t: &str| ClientTransmit::Send(MessageData::Text(t.to_owned().into()));
    /// use std::time::Duration;
    /// use switchboard_core::socketio::client::{AckError, ClientEvent};
    /// // `/` is connected.
    /// let id = client.emit_with_ack("/", "ping", &(), Some(Duration::from_secs(2)), now).unwrap();
    /// assert_eq!(client.poll_transmit(), Some(text(&format!(r#"2{id}["ping"]"#))));
    /// assert_eq!(client.poll_timeout(), Some(now + Duration::from_secs(2)));
    ///
    /// // No answer in time.
    /// client.handle_timeout(now + Duration::from_secs(2));
    /// let failed = ClientEvent::AckFailed { namespace: "/".into(), id, error: AckError::Timeout };
    /// assert_eq!(client.poll_event(), Some(failed));
    /// assert_eq!(client.pending_acks(), 0);
    /// ```
    pub fn emit_with_ack<T: Serialize + ?Sized>(
        &mut self,
        namespace: &str,
        event: &str,
        args: &T,
        timeout: Option<Duration>,
        now: Instant,
    ) -> Result<u64, EmitError> {
        let namespace = &*normalize(namespace);
        let id = self.next_ack_id;
        let encoded = encode_event(namespace, event, args, Some(id))?;
        let deadline = timeout.and_then(|timeout| now.checked_add(timeout));
        // Registered first: sending it marks it as sent.
        self.acks.insert(
            id,
            PendingAck {
                namespace: namespace.to_owned(),
                deadline,
                buffered: true,
            },
        );
        if let Err(error) = self.send_or_buffer(namespace, encoded, Some(id)) {
            self.acks.remove(&id);
            return Err(error);
        }
        self.next_ack_id = self.next_ack_id.wrapping_add(1);
        if let Some(deadline) = deadline {
            self.ack_deadlines.insert((deadline, id));
        }
        Ok(id)
    }

    /// Answers the server's event that carried ack id `id` on `namespace`,
    /// on connection `connection` (both from its [`ClientEvent::Event`];
    /// see [`ClientEvent`] for the whole exchange). Fails with
    /// [`EmitError::NotConnected`] unless that connection is still the
    /// namespace's: after a reconnection the server's ack ids start again,
    /// and the answer would go to another of its questions.
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use switchboard_core::engineio::MessageData;
    /// # use switchboard_core::socketio::client::{Client, ClientConfig};
    /// # let now = Instant::now();
    /// # let mut client = Client::with_seed(ClientConfig::default(), 1);
    /// # client.connect("/", None, now);
    /// # client.handle_engine_open("e1", now);
    /// # while client.poll_transmit().is_some() {}
    /// # client.handle_engine_message(MessageData::Text(r#"0{"sid":"s1"}"#.into()), now);
    /// # while client.poll_event().is_some() {}
    /// # use switchboard_core::socketio::client::ClientTransmit;
    /// # let text = |t: &str| ClientTransmit::Send(MessageData::Text(t.to_owned().into()));
    /// use switchboard_core::engineio::client::ClientCloseReason;
    /// use switchboard_core::socketio::client::{ClientEvent, EmitError};
    /// // `/` is connected; the server's `21["sum",1,2]` asks for ack 1.
    /// client.handle_engine_message(MessageData::Text(r#"21["sum",1,2]"#.into()), now);
    /// let Some(ClientEvent::Event { connection, .. }) = client.poll_event() else { panic!() };
    /// client.ack("/", connection, 1, &(3,)).unwrap();
    /// assert_eq!(client.poll_transmit(), Some(text("31[3]")));
    ///
    /// // Once the session is lost, the answer has no connection to go to,
    /// // not even the next one.
    /// client.handle_engine_close(ClientCloseReason::TransportClose, now);
    /// assert!(matches!(client.ack("/", connection, 1, &(3,)), Err(EmitError::NotConnected)));
    /// ```
    pub fn ack<T: Serialize + ?Sized>(
        &mut self,
        namespace: &str,
        connection: u64,
        id: u64,
        args: &T,
    ) -> Result<(), EmitError> {
        let namespace = &*normalize(namespace);
        let current = self.namespaces.get(namespace).is_some_and(
            |ns| matches!(ns.state, NsState::Connected { connection: c, .. } if c == connection),
        );
        if !current {
            return Err(EmitError::NotConnected);
        }
        let encoded = encode_ack(namespace, id, args)?;
        self.send_encoded(encoded);
        Ok(())
    }

    /// The session asked for by [`ClientTransmit::Open`] completed its
    /// handshake, with Engine.IO session id `sid`: every namespace that
    /// wants to be connected sends its CONNECT.
    ///
    /// ```
    /// # use std::time::Instant;
    /// use switchboard_core::engineio::MessageData;
    /// use switchboard_core::socketio::client::{Client, ClientConfig, ClientTransmit};
    /// # let now = Instant::now();
    /// let text = |t: &str| ClientTransmit::Send(MessageData::Text(t.to_owned().into()));
    /// let mut client = Client::new(ClientConfig::default());
    /// client.connect("/", None, now);
    /// client.connect("/admin", None, now);
    /// assert_eq!(client.poll_transmit(), Some(ClientTransmit::Open)); // one session for both
    /// assert_eq!(client.poll_transmit(), None);
    ///
    /// client.handle_engine_open("e1", now);
    /// assert_eq!(client.poll_transmit(), Some(text("0")));
    /// assert_eq!(client.poll_transmit(), Some(text("0/admin,")));
    /// ```
    pub fn handle_engine_open(&mut self, sid: &str, _now: Instant) {
        if self.engine != Engine::Opening {
            return;
        }
        self.engine = Engine::Open {
            sid: sid.to_owned(),
        };
        self.decoder.reset();
        if self.reconnecting {
            self.reconnecting = false;
            self.events.push_back(ClientEvent::Reconnected {
                attempt: self.attempts,
            });
            self.attempts = 0;
        }
        let version = self.config.version;
        let connects: Vec<Encoded> = self
            .namespaces
            .iter()
            .filter(|(name, ns)| {
                ns.connecting()
                    && !(version.connects_implicitly() && name.as_str() == DEFAULT_NAMESPACE)
            })
            .map(|(name, ns)| Packet::connect(text(name), ns.auth.clone()).encode(version))
            .collect();
        for connect in connects {
            self.send_encoded(connect);
        }
        self.close_if_unused();
    }

    /// The session asked for by [`ClientTransmit::Open`] could not be opened
    /// (`error` says why): namespaces waiting for it report
    /// [`ClientEvent::ConnectError`], and the client tries again later when
    /// reconnection is on.
    ///
    /// ```
    /// # use std::time::Instant;
    /// use switchboard_core::socketio::client::{
    ///     Client, ClientConfig, ClientEvent, ClientTransmit, ConnectError,
    /// };
    /// # let now = Instant::now();
    /// let mut client = Client::new(ClientConfig::default());
    /// client.connect("/", None, now);
    /// assert_eq!(client.poll_transmit(), Some(ClientTransmit::Open));
    /// client.handle_engine_error("connection refused", now);
    ///
    /// let error = ConnectError::Transport("connection refused".into());
    /// let namespace = "/".into();
    /// assert_eq!(client.poll_event(), Some(ClientEvent::ConnectError { namespace, error }));
    /// assert!(client.is_reconnecting() && client.is_active("/"));
    /// assert!(client.poll_timeout().is_some()); // the next attempt
    /// ```
    pub fn handle_engine_error(&mut self, error: impl Into<String>, now: Instant) {
        if self.engine != Engine::Opening {
            return;
        }
        self.engine = Engine::Idle;
        let error = error.into();
        for (name, ns) in &self.namespaces {
            if ns.connecting() {
                self.events.push_back(ClientEvent::ConnectError {
                    namespace: text(name),
                    error: ConnectError::Transport(error.clone()),
                });
            }
        }
        self.reconnecting = false;
        self.reconnect(now);
        self.settle_without_engine();
    }

    /// A message arrived on the session. A binary packet takes its text
    /// message and one binary message per attachment; it is handed out
    /// once complete. Something unreadable closes the session
    /// ([`DisconnectReason::ParseError`]) and the client reconnects.
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use switchboard_core::engineio::MessageData;
    /// # use switchboard_core::socketio::client::{Client, ClientConfig};
    /// # let now = Instant::now();
    /// # let mut client = Client::with_seed(ClientConfig::default(), 1);
    /// # client.connect("/", None, now);
    /// # client.handle_engine_open("e1", now);
    /// # while client.poll_transmit().is_some() {}
    /// # client.handle_engine_message(MessageData::Text(r#"0{"sid":"s1"}"#.into()), now);
    /// # while client.poll_event().is_some() {}
    /// # use switchboard_core::socketio::client::ClientTransmit;
    /// use switchboard_core::socketio::client::{ClientEvent, DisconnectReason};
    /// // `/` is connected.
    /// let event = r#"51-["file",{"_placeholder":true,"num":0}]"#;
    /// client.handle_engine_message(MessageData::Text(event.into()), now);
    /// assert_eq!(client.poll_event(), None); // its attachment is still to come
    /// client.handle_engine_message(MessageData::Binary(vec![1, 2, 3].into()), now);
    /// let Some(ClientEvent::Event { packet, .. }) = client.poll_event() else { panic!() };
    /// assert_eq!(packet.attachments, [vec![1, 2, 3]]);
    ///
    /// client.handle_engine_message(MessageData::Text("not a packet".into()), now);
    /// assert_eq!(client.poll_transmit(), Some(ClientTransmit::Close));
    /// let reason = DisconnectReason::ParseError;
    /// assert_eq!(client.poll_event(), Some(ClientEvent::Disconnect { namespace: "/".into(), reason }));
    /// assert!(client.is_reconnecting());
    /// ```
    pub fn handle_engine_message(&mut self, message: MessageData, now: Instant) {
        if !self.is_engine_open() {
            return;
        }
        match self.decoder.receive(message) {
            Ok(Some(packet)) => self.handle_packet(packet),
            Ok(None) => {}
            Err(error) => {
                tracing::debug!(%error, "unreadable Socket.IO packet; closing the session");
                self.transmits.push_back(ClientTransmit::Close);
                self.engine_gone(DisconnectReason::ParseError, now);
            }
        }
    }

    /// The open session closed with `reason` (not after
    /// [`ClientTransmit::Close`]): connected namespaces disconnect, and the
    /// client reconnects when reconnection is on. Acks of packets already
    /// sent fail (see [`Client`] for the reconnection).
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use switchboard_core::engineio::MessageData;
    /// # use switchboard_core::socketio::client::{Client, ClientConfig};
    /// # let now = Instant::now();
    /// # let mut client = Client::with_seed(ClientConfig::default(), 1);
    /// # client.connect("/", None, now);
    /// # client.handle_engine_open("e1", now);
    /// # while client.poll_transmit().is_some() {}
    /// # client.handle_engine_message(MessageData::Text(r#"0{"sid":"s1"}"#.into()), now);
    /// # while client.poll_event().is_some() {}
    /// use switchboard_core::engineio::client::ClientCloseReason;
    /// use switchboard_core::socketio::client::{AckError, ClientEvent, DisconnectReason};
    /// // `/` is connected, an ack awaited.
    /// let id = client.emit_with_ack("/", "save", &(), None, now).unwrap();
    /// client.handle_engine_close(ClientCloseReason::PingTimeout, now);
    ///
    /// let reason = DisconnectReason::PingTimeout;
    /// assert_eq!(client.poll_event(), Some(ClientEvent::Disconnect { namespace: "/".into(), reason }));
    /// let error = AckError::Disconnected;
    /// let failed = ClientEvent::AckFailed { namespace: "/".into(), id, error };
    /// assert_eq!(client.poll_event(), Some(failed));
    /// assert!(client.is_reconnecting());
    /// ```
    pub fn handle_engine_close(&mut self, reason: ClientCloseReason, now: Instant) {
        if !self.is_engine_open() {
            return;
        }
        self.engine_gone(DisconnectReason::from_engine(reason), now);
    }

    /// Runs what is due at `now`: ack timeouts and the reconnection timer.
    ///
    /// See [`Client::emit_with_ack`] for an ack timeout and [`Client`] for
    /// a reconnection.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(deadline, id)) = self.ack_deadlines.first() {
            if deadline > now {
                break;
            }
            self.ack_deadlines.pop_first();
            let Some(ack) = self.acks.remove(&id) else {
                continue;
            };
            if ack.buffered {
                if let Some(ns) = self.namespaces.get_mut(&ack.namespace) {
                    ns.buffer.retain(|(_, ack_id)| *ack_id != Some(id));
                }
            }
            self.events.push_back(ClientEvent::AckFailed {
                namespace: text(&ack.namespace),
                id,
                error: AckError::Timeout,
            });
        }
        if self.reconnect_at.is_some_and(|at| at <= now) {
            self.reconnect_at = None;
            if self.skip_reconnect || self.engine != Engine::Idle {
                self.reconnecting = false;
                return;
            }
            self.events.push_back(ClientEvent::ReconnectAttempt {
                attempt: self.attempts,
            });
            self.engine = Engine::Opening;
            self.transmits.push_back(ClientTransmit::Open);
        }
    }

    /// The next time [`Client::handle_timeout`] should run: the earliest
    /// ack deadline or reconnection attempt.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use switchboard_core::socketio::client::{Client, ClientConfig, ClientEvent, ClientTransmit};
    /// let t0 = Instant::now();
    /// let config = ClientConfig {
    ///     randomization_factor: 0.0,
    ///     reconnection_attempts: Some(2),
    ///     ..ClientConfig::default()
    /// };
    /// let mut client = Client::new(config);
    /// client.connect("/", None, t0);
    /// # client.poll_transmit();
    /// client.handle_engine_error("refused", t0);
    /// # client.poll_event();
    /// // Attempts after 1 s, then 2 s more (the delay doubles), then none.
    /// let first = client.poll_timeout().unwrap();
    /// assert_eq!(first, t0 + Duration::from_secs(1));
    /// client.handle_timeout(first);
    /// assert_eq!(client.poll_transmit(), Some(ClientTransmit::Open));
    /// client.handle_engine_error("refused", first);
    /// let second = client.poll_timeout().unwrap();
    /// assert_eq!(second, first + Duration::from_secs(2));
    /// client.handle_timeout(second);
    /// client.handle_engine_error("refused", second);
    /// assert_eq!(client.poll_timeout(), None);
    /// assert!(std::iter::from_fn(|| client.poll_event()).any(|e| e == ClientEvent::ReconnectFailed));
    /// ```
    pub fn poll_timeout(&self) -> Option<Instant> {
        let ack = self.ack_deadlines.first().map(|&(deadline, _)| deadline);
        [ack, self.reconnect_at].into_iter().flatten().min()
    }

    /// The next application event.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// The next thing to do with the session.
    pub fn poll_transmit(&mut self) -> Option<ClientTransmit> {
        self.transmits.pop_front()
    }

    fn namespace_mut(&mut self, namespace: &str) -> &mut Namespace {
        self.namespaces
            .entry(namespace.to_owned())
            .or_insert_with(|| Namespace {
                auth: None,
                state: NsState::Inactive,
                buffer: VecDeque::new(),
            })
    }

    /// Opens a session if a namespace wants one and none is open, opening
    /// or scheduled.
    fn ensure_engine(&mut self) {
        if self.engine != Engine::Idle || self.reconnecting {
            return;
        }
        if !self.namespaces.values().any(Namespace::active) {
            return;
        }
        self.skip_reconnect = false;
        self.engine = Engine::Opening;
        self.transmits.push_back(ClientTransmit::Open);
    }

    fn send_encoded(&mut self, encoded: Encoded) {
        if !self.is_engine_open() {
            return;
        }
        self.transmits
            .extend(encoded.into_messages().map(ClientTransmit::Send));
    }

    fn send_or_buffer(
        &mut self,
        namespace: &str,
        encoded: Encoded,
        ack: Option<u64>,
    ) -> Result<(), EmitError> {
        if self.is_connected(namespace) {
            if let Some(ack) = ack.and_then(|id| self.acks.get_mut(&id)) {
                ack.buffered = false;
            }
            self.send_encoded(encoded);
            return Ok(());
        }
        let limit = self.config.max_buffered_packets;
        let ns = self.namespace_mut(namespace);
        if ns.buffer.len() >= limit {
            return Err(EmitError::BufferFull);
        }
        ns.buffer.push_back((encoded, ack));
        Ok(())
    }

    fn set_state(&mut self, namespace: &str, state: NsState) {
        if let Some(ns) = self.namespaces.get_mut(namespace) {
            ns.state = state;
        }
    }

    fn handle_packet(&mut self, packet: Packet) {
        let namespace = packet.namespace.clone();
        let name = namespace.as_str();
        let version = self.config.version;
        let state = self.namespaces.get(name).map(|ns| match ns.state {
            NsState::Inactive => Phase::Inactive,
            NsState::Connecting { .. } => Phase::Connecting,
            NsState::Connected { connection, .. } => Phase::Connected { connection },
        });
        match packet.kind {
            PacketKind::Connect => match state {
                Some(Phase::Connecting) => match self.connect_sid(&packet) {
                    Some(sid) => self.connected(name, sid),
                    None => self.refuse(
                        name,
                        "the server's CONNECT carries no socket id (a Socket.IO v2 server?)"
                            .to_owned(),
                        None,
                    ),
                },
                Some(Phase::Connected { .. }) => {}
                _ if version.connects_implicitly() && name == DEFAULT_NAMESPACE => {}
                _ => {
                    // Left while the CONNECT was on its way: leave again.
                    self.send_encoded(Packet::disconnect(namespace.clone()).encode(version));
                }
            },
            PacketKind::ConnectError => {
                if state == Some(Phase::Connecting) {
                    let data = packet
                        .connect_error_data(version)
                        .expect("a CONNECT_ERROR packet");
                    self.refuse(name, data.message, data.data);
                } else {
                    tracing::debug!(
                        namespace = name,
                        "CONNECT_ERROR while not connecting; ignored"
                    );
                }
            }
            PacketKind::Disconnect => match state {
                Some(Phase::Connected { .. }) => {
                    self.set_state(name, NsState::Inactive);
                    self.events.push_back(ClientEvent::Disconnect {
                        namespace: namespace.clone(),
                        reason: DisconnectReason::IoServerDisconnect,
                    });
                    self.fail_sent_acks(name);
                    self.close_if_unused();
                }
                Some(Phase::Connecting) => {
                    self.set_state(name, NsState::Inactive);
                    self.close_if_unused();
                }
                _ => {}
            },
            PacketKind::Event | PacketKind::BinaryEvent => match state {
                Some(Phase::Connected { connection }) => {
                    self.events.push_back(ClientEvent::Event {
                        namespace: namespace.clone(),
                        connection,
                        packet,
                    });
                }
                Some(Phase::Connecting) => {
                    // Before the server's CONNECT (python-socketio sends it
                    // after its connect handler): kept for the connection.
                    let limit = self.config.max_buffered_packets;
                    let ns = self.namespace_mut(name);
                    if let NsState::Connecting { early } = &mut ns.state
                        && early.len() < limit
                    {
                        early.push_back(packet);
                    } else {
                        tracing::debug!(
                            namespace = name,
                            "too many events before the CONNECT; dropped"
                        );
                    }
                }
                _ => {
                    tracing::debug!(
                        namespace = name,
                        "event on a namespace not connected; dropped"
                    );
                }
            },
            PacketKind::Ack | PacketKind::BinaryAck => {
                let Some(id) = packet.id else {
                    return;
                };
                let known = self
                    .acks
                    .get(&id)
                    .is_some_and(|ack| ack.namespace == name && !ack.buffered);
                if !known {
                    tracing::debug!(namespace = name, id, "ack with an unknown id; dropped");
                    return;
                }
                if let Some(deadline) = self.acks.remove(&id).and_then(|ack| ack.deadline) {
                    self.ack_deadlines.remove(&(deadline, id));
                }
                self.events.push_back(ClientEvent::Ack {
                    namespace: namespace.clone(),
                    id,
                    packet,
                });
            }
        }
    }

    /// The socket id of a CONNECT answering ours.
    fn connect_sid(&self, packet: &Packet) -> Option<String> {
        match self.config.version {
            ProtocolVersion::V5 => {
                #[derive(serde::Deserialize)]
                struct Reply {
                    sid: String,
                }
                packet
                    .data::<Option<Reply>>()
                    .ok()
                    .flatten()
                    .map(|reply| reply.sid)
            }
            ProtocolVersion::V4 => {
                let Engine::Open { sid } = &self.engine else {
                    return None;
                };
                Some(if packet.namespace.as_str() == DEFAULT_NAMESPACE {
                    sid.clone()
                } else {
                    format!("{}#{sid}", packet.namespace.as_str())
                })
            }
        }
    }

    fn connected(&mut self, namespace: &str, sid: String) {
        let Some(ns) = self.namespaces.get_mut(namespace) else {
            return;
        };
        let connection = self.next_connection;
        self.next_connection = self.next_connection.wrapping_add(1);
        let was = std::mem::replace(
            &mut ns.state,
            NsState::Connected {
                sid: sid.clone(),
                connection,
            },
        );
        let buffered = std::mem::take(&mut ns.buffer);
        let early = match was {
            NsState::Connecting { early } => early,
            _ => VecDeque::new(),
        };
        // As Node's client: the events that came first, then `connect`.
        for packet in early {
            self.events.push_back(ClientEvent::Event {
                namespace: text(namespace),
                connection,
                packet,
            });
        }
        self.events.push_back(ClientEvent::Connect {
            namespace: text(namespace),
            sid,
        });
        for (encoded, ack) in buffered {
            if let Some(ack) = ack.and_then(|id| self.acks.get_mut(&id)) {
                ack.buffered = false;
            }
            self.send_encoded(encoded);
        }
    }

    fn refuse(&mut self, namespace: &str, message: String, data: Option<serde_json::Value>) {
        self.set_state(namespace, NsState::Inactive);
        self.events.push_back(ClientEvent::ConnectError {
            namespace: text(namespace),
            error: ConnectError::Refused { message, data },
        });
        self.close_if_unused();
    }

    /// Fails the acks of packets already sent on `namespace`.
    fn fail_sent_acks(&mut self, namespace: &str) {
        let mut failed: Vec<u64> = self
            .acks
            .iter()
            .filter(|(_, ack)| ack.namespace == namespace && !ack.buffered)
            .map(|(&id, _)| id)
            .collect();
        failed.sort_unstable();
        for id in failed {
            if let Some(deadline) = self.acks.remove(&id).and_then(|ack| ack.deadline) {
                self.ack_deadlines.remove(&(deadline, id));
            }
            self.events.push_back(ClientEvent::AckFailed {
                namespace: text(namespace),
                id,
                error: AckError::Disconnected,
            });
        }
    }

    /// The session is gone (closed, or closed by us over a parse error).
    fn engine_gone(&mut self, reason: DisconnectReason, now: Instant) {
        self.engine = Engine::Idle;
        self.decoder.reset();
        let mut disconnected = Vec::new();
        for (name, ns) in &mut self.namespaces {
            // Connecting again: what came early on the lost session is stale.
            if ns.active() {
                if let NsState::Connected { .. } = ns.state {
                    disconnected.push(name.clone());
                }
                ns.state = NsState::connecting();
            }
        }
        for namespace in disconnected {
            self.events.push_back(ClientEvent::Disconnect {
                namespace: text(&namespace),
                reason,
            });
            self.fail_sent_acks(&namespace);
        }
        self.attempts = 0;
        self.reconnecting = false;
        self.reconnect(now);
        self.settle_without_engine();
    }

    /// Without a session and without a reconnection to come, namespaces
    /// stop waiting: a later [`Client::connect`] starts afresh.
    fn settle_without_engine(&mut self) {
        if self.engine == Engine::Idle && !self.reconnecting {
            for ns in self.namespaces.values_mut() {
                if ns.connecting() {
                    ns.state = NsState::Inactive;
                }
            }
        }
    }

    /// Schedules the next reconnection attempt, if allowed.
    fn reconnect(&mut self, now: Instant) {
        if self.reconnecting
            || self.skip_reconnect
            || !self.config.reconnection
            || !self.namespaces.values().any(Namespace::active)
        {
            return;
        }
        if self
            .config
            .reconnection_attempts
            .is_some_and(|max| self.attempts >= max)
        {
            self.attempts = 0;
            self.events.push_back(ClientEvent::ReconnectFailed);
            return;
        }
        let delay = self.backoff_delay();
        self.reconnecting = true;
        self.reconnect_at = Some(now.checked_add(delay).unwrap_or(now));
    }

    /// `delay * 2^attempts`, moved at random by up to
    /// `randomization_factor` of itself, capped at the maximum; counts the
    /// attempt.
    fn backoff_delay(&mut self) -> Duration {
        let exponent = i32::try_from(self.attempts.min(64)).unwrap_or(64);
        let base = self.config.reconnection_delay.as_secs_f64() * 2f64.powi(exponent);
        self.attempts = self.attempts.saturating_add(1);
        let factor = self.config.randomization_factor.clamp(0.0, 1.0);
        let mut delay = base;
        if factor > 0.0 {
            let r = self.random();
            let deviation = r * factor * base;
            // Down or up, decided from the same draw, as Node does.
            if ((r * 10.0) as u64) & 1 == 0 {
                delay -= deviation;
            } else {
                delay += deviation;
            }
        }
        let max = self.config.reconnection_delay_max.as_secs_f64();
        Duration::try_from_secs_f64(delay.min(max).max(0.0)).unwrap_or(Duration::ZERO)
    }

    /// A number in `[0, 1)` (splitmix64).
    fn random(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Closes the session when no namespace wants it any more.
    fn close_if_unused(&mut self) {
        if !self.namespaces.values().any(Namespace::active) {
            self.close_engine();
        }
    }

    /// Closes the session (if any) and cancels reconnection.
    fn close_engine(&mut self) {
        self.skip_reconnect = true;
        self.reconnecting = false;
        self.reconnect_at = None;
        self.attempts = 0;
        if self.engine != Engine::Idle {
            self.engine = Engine::Idle;
            self.decoder.reset();
            self.transmits.push_back(ClientTransmit::Close);
        }
    }
}

/// `""` is `/`, and a name without its leading `/` gets one.
fn normalize(namespace: &str) -> Cow<'_, str> {
    if namespace.is_empty() {
        Cow::Borrowed(DEFAULT_NAMESPACE)
    } else if namespace.starts_with('/') {
        Cow::Borrowed(namespace)
    } else {
        Cow::Owned(format!("/{namespace}"))
    }
}

fn text(namespace: &str) -> Text {
    Text::from(namespace.to_owned())
}

#[cfg(test)]
mod tests;
