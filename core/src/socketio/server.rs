//! The Socket.IO server, sans IO: namespaces and the sockets in them, the
//! connect handshake and its verdict, rooms, acks with deadlines, and
//! disconnects, over the sessions of an Engine.IO server.
//!
//! A [`Server`] sits on top of an Engine.IO endpoint. The adapter feeds it
//! the endpoint's events ([`Server::handle_open`],
//! [`Server::handle_message`], [`Server::handle_close`]), the
//! application's commands (accept or reject a connection, emit, ack,
//! broadcast, join, leave, disconnect) and time
//! ([`Server::handle_timeout`]); it polls out application events
//! ([`Server::poll_event`]), Engine.IO messages to send and sessions to
//! close ([`Server::poll_transmit`]), and the next deadline
//! ([`Server::poll_timeout`]).
//!
//! # Connecting
//!
//! A client's CONNECT to a known namespace becomes
//! [`ServerEvent::Connect`] with a fresh [`SocketId`] and the auth payload;
//! the application runs its middlewares and answers with
//! [`Server::accept`] (the client gets CONNECT with the socket id, the
//! socket joins the room named by its id) or [`Server::reject`] (the client
//! gets CONNECT_ERROR). An unknown namespace is refused with
//! `Invalid namespace` without asking. A session that connects to no
//! namespace within [`ServerConfig::connect_timeout`] is closed. Engine.IO
//! v3 clients (Socket.IO protocol v4) are connected to `/` implicitly.
//!
//! # Bad input
//!
//! A packet that does not decode closes the whole Engine.IO session (its
//! sockets disconnect with `parse error`), as the protocol asks. Packets
//! for a namespace the session has not joined, and acks with unknown ids,
//! are dropped with a log line. A CONNECT for a namespace the session is
//! in already, or a CONNECT_ERROR from the client, closes the session (its
//! sockets disconnect with `forced close`), as Node's server does. Every
//! table is bounded by what the application accepts: a session may ask for
//! at most [`ServerConfig::max_namespaces_per_session`] namespaces.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::ProtocolVersion;
use super::packet::{
    DEFAULT_NAMESPACE, Decoder, DecoderConfig, EncodeError, Encoded, Packet, PacketKind, RawJson,
    encode_ack, encode_event,
};
use crate::engineio::{self, MessageData};
use crate::ids::{IdMap, IdSet};
use crate::ws::Text;

/// A socket's id: unique, unguessable, URL-safe (as Engine.IO session
/// ids). Cheap to clone.
///
/// ```
/// # use std::time::Instant;
/// # use switchboard_core::engineio::{self, MessageData};
/// use switchboard_core::socketio::server::{Server, ServerConfig, ServerEvent, SocketId};
/// # let now = Instant::now();
/// # let mut server = Server::new(ServerConfig::default());
/// # server.add_namespace("/");
/// # server.handle_open("e1", engineio::ProtocolVersion::V4, now);
/// # server.handle_message("e1", MessageData::Text("0".into()), now);
/// // A client asks to join `/`:
/// let Some(ServerEvent::Connect { socket, .. }) = server.poll_event() else { panic!() };
/// let kept: SocketId = socket.clone(); // shares the string
/// server.accept(&socket).unwrap();
/// assert_eq!(server.socket_info(&kept), Some(("/", "e1")));
/// ```
pub type SocketId = Arc<str>;

/// A predicate deciding whether a namespace name belongs to a dynamic
/// namespace (e.g. every `/room-*`).
///
/// ```
/// use switchboard_core::socketio::server::{NamespaceMatcher, Server, ServerConfig};
/// let rooms: NamespaceMatcher = Box::new(|name| name.starts_with("/room-"));
/// let mut server = Server::new(ServerConfig::default());
/// assert_eq!(server.add_dynamic_namespace(rooms), 0);
/// ```
pub type NamespaceMatcher = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// Settings of a [`Server`].
///
/// ```
/// # use std::time::{Duration, Instant};
/// use switchboard_core::engineio;
/// use switchboard_core::socketio::server::{Server, ServerConfig, Transmit};
/// # let now = Instant::now();
/// // A session that joins no namespace in time is closed.
/// let config = ServerConfig { connect_timeout: Duration::from_secs(10), ..ServerConfig::default() };
/// let mut server = Server::new(config);
/// server.handle_open("e1", engineio::ProtocolVersion::V4, now);
/// assert_eq!(server.poll_timeout(), Some(now + Duration::from_secs(10)));
/// server.handle_timeout(now + Duration::from_secs(10));
/// assert_eq!(server.poll_transmit(), Some(Transmit::Close { sid: "e1".into() }));
/// ```
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// How long a new session may take to connect to a namespace before it
    /// is closed (default 45 s, as Node's `connectTimeout`); one too long
    /// to be an instant, such as [`Duration::MAX`], never expires.
    pub connect_timeout: Duration,
    /// Limits of the packet decoder (attachments per packet).
    pub decoder: DecoderConfig,
    /// The most namespaces one session may connect to or ask for at once
    /// (default 64); a CONNECT beyond it closes the session.
    pub max_namespaces_per_session: usize,
    /// The most rooms one socket may be in, counting the one named by its
    /// id (default 4,096); [`Server::join`] beyond it fails with
    /// [`EmitError::TooManyRooms`]. Node has no such limit: it bounds what
    /// a handler joining rooms that clients name can cost.
    pub max_rooms_per_socket: usize,
    /// The longest room name, in bytes, [`Server::join`] takes (default
    /// 1,024); a longer one fails with [`EmitError::RoomNameTooLong`].
    /// With `max_rooms_per_socket` it bounds the rooms index per socket
    /// (about 4 MiB by default) when handlers join rooms that clients
    /// name. Node has no such limit.
    pub max_room_name_len: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            connect_timeout: Duration::from_secs(45),
            decoder: DecoderConfig::default(),
            max_namespaces_per_session: 64,
            max_rooms_per_socket: 4096,
            max_room_name_len: 1024,
        }
    }
}

/// Why a socket left its namespace; [`DisconnectReason::as_str`] gives
/// Node's wording.
///
/// ```
/// use switchboard_core::socketio::server::DisconnectReason;
/// assert_eq!(DisconnectReason::ClientNamespaceDisconnect.as_str(), "client namespace disconnect");
/// assert_eq!(DisconnectReason::PingTimeout.to_string(), "ping timeout");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The client's connection closed.
    TransportClose,
    /// The connection failed.
    TransportError,
    /// The client stopped answering the heartbeat.
    PingTimeout,
    /// The client sent something unreadable.
    ParseError,
    /// The server closed the connection ([`Server::close_session`]), or
    /// the client sent a packet its state does not allow (a CONNECT for a
    /// namespace it is in, a CONNECT_ERROR), which Node's server also
    /// closes the connection over.
    ForcedClose,
    /// The client left the namespace (DISCONNECT).
    ClientNamespaceDisconnect,
    /// The server removed the socket ([`Server::disconnect`]).
    ServerNamespaceDisconnect,
}

impl DisconnectReason {
    /// The reason as Node's socket.io words it.
    pub const fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::TransportClose => "transport close",
            DisconnectReason::TransportError => "transport error",
            DisconnectReason::PingTimeout => "ping timeout",
            DisconnectReason::ParseError => "parse error",
            DisconnectReason::ForcedClose => "forced close",
            DisconnectReason::ClientNamespaceDisconnect => "client namespace disconnect",
            DisconnectReason::ServerNamespaceDisconnect => "server namespace disconnect",
        }
    }

    fn from_engine(reason: engineio::CloseReason) -> Self {
        match reason {
            engineio::CloseReason::TransportClose => DisconnectReason::TransportClose,
            engineio::CloseReason::PingTimeout => DisconnectReason::PingTimeout,
            engineio::CloseReason::ForcedClose => DisconnectReason::ForcedClose,
            engineio::CloseReason::ParseError => DisconnectReason::ParseError,
            _ => DisconnectReason::TransportError,
        }
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an ack the server asked for will not come.
///
/// See [`Server::emit_with_ack`] and [`Server::handle_close`].
///
/// ```
/// use switchboard_core::socketio::server::AckError;
/// assert_eq!(AckError::Timeout.to_string(), "ack timed out");
/// assert_eq!(AckError::Disconnected.to_string(), "socket disconnected");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// No answer within the timeout.
    #[error("ack timed out")]
    Timeout,
    /// The socket disconnected first.
    #[error("socket disconnected")]
    Disconnected,
}

/// Why an emit, or a join, was refused: the socket is not connected, the
/// data cannot be sent (a reserved event name, unencodable data), or a
/// room limit.
///
/// ```
/// # use std::time::{Duration, Instant};
/// # use switchboard_core::engineio::{self, MessageData};
/// # use switchboard_core::socketio::server::*;
/// # fn connect(server: &mut Server, sid: &str, now: Instant) -> SocketId {
/// #     server.handle_open(sid, engineio::ProtocolVersion::V4, now);
/// #     server.handle_message(sid, MessageData::Text("0".into()), now);
/// #     let Some(ServerEvent::Connect { socket, .. }) = server.poll_event() else { panic!() };
/// #     server.accept(&socket).unwrap();
/// #     while server.poll_transmit().is_some() {}
/// #     socket
/// # }
/// # let text = |t: &str| MessageData::Text(t.to_owned().into());
/// # let send = |sid: &str, t: &str| Transmit::Send { sid: sid.into(), message: text(t) };
/// # let now = Instant::now();
/// # let mut server = Server::new(ServerConfig::default());
/// # server.add_namespace("/");
/// # let socket = connect(&mut server, "e1", now);
/// // `socket` is connected.
/// let long = "x".repeat(2000);
/// assert!(matches!(server.join(&socket, &long), Err(EmitError::RoomNameTooLong { limit: 1024 })));
/// assert!(matches!(server.emit(&socket, "disconnect", &()), Err(EmitError::Encode(_))));
/// server.disconnect(&socket);
/// assert!(matches!(server.emit(&socket, "news", &()), Err(EmitError::UnknownSocket)));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmitError {
    /// No connected socket has this id.
    #[error("unknown or disconnected socket")]
    UnknownSocket,
    /// The data could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The socket is in [`ServerConfig::max_rooms_per_socket`] rooms
    /// already.
    #[error("the socket is in {limit} rooms already")]
    TooManyRooms {
        /// The limit.
        limit: usize,
    },
    /// The room name is longer than [`ServerConfig::max_room_name_len`]
    /// bytes.
    #[error("room names are at most {limit} bytes long")]
    RoomNameTooLong {
        /// The limit.
        limit: usize,
    },
}

/// Which namespace a CONNECT matched (see
/// [`Server::add_dynamic_namespace`] for a dynamic one).
///
/// ```
/// # use std::time::Instant;
/// # use switchboard_core::engineio::{self, MessageData};
/// use switchboard_core::socketio::server::{NamespaceMatch, Server, ServerConfig, ServerEvent};
/// # let now = Instant::now();
/// let mut server = Server::new(ServerConfig::default());
/// server.add_namespace("/chat");
/// # server.handle_open("e1", engineio::ProtocolVersion::V4, now);
/// server.handle_message("e1", MessageData::Text("0/chat,".into()), now);
/// let Some(ServerEvent::Connect { matched, .. }) = server.poll_event() else { panic!() };
/// assert_eq!(matched, NamespaceMatch::Static);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NamespaceMatch {
    /// A namespace added with [`Server::add_namespace`].
    Static,
    /// The dynamic namespace with this index (in the order of
    /// [`Server::add_dynamic_namespace`]).
    Dynamic(usize),
}

/// Something for the application.
///
/// ```
/// # use std::time::{Duration, Instant};
/// # use switchboard_core::engineio::{self, MessageData};
/// # use switchboard_core::socketio::server::*;
/// # fn connect(server: &mut Server, sid: &str, now: Instant) -> SocketId {
/// #     server.handle_open(sid, engineio::ProtocolVersion::V4, now);
/// #     server.handle_message(sid, MessageData::Text("0".into()), now);
/// #     let Some(ServerEvent::Connect { socket, .. }) = server.poll_event() else { panic!() };
/// #     server.accept(&socket).unwrap();
/// #     while server.poll_transmit().is_some() {}
/// #     socket
/// # }
/// # let text = |t: &str| MessageData::Text(t.to_owned().into());
/// # let send = |sid: &str, t: &str| Transmit::Send { sid: sid.into(), message: text(t) };
/// # let now = Instant::now();
/// # let mut server = Server::new(ServerConfig::default());
/// # server.add_namespace("/");
/// use switchboard_core::socketio::server::ServerEvent;
/// /// The application's side: a middleware, and an event handler.
/// fn handle(server: &mut Server, event: ServerEvent) {
///     match event {
///         ServerEvent::Connect { socket, auth, .. } => match auth.to_value()["token"].as_str() {
///             Some("secret") => server.accept(&socket).unwrap(),
///             _ => server.reject(&socket, "not authorized", None),
///         },
///         ServerEvent::Event { socket, packet } => {
///             if let (Some(id), Ok((a, b))) = (packet.id, packet.args::<(i64, i64)>()) {
///                 server.ack(&socket, id, &(a + b,)).unwrap();
///             }
///         }
///         ServerEvent::Ack { .. } | ServerEvent::AckFailed { .. } => {}
///         ServerEvent::Disconnect { .. } => {}
///     }
/// }
///
/// // Events are handled as they come: the socket must be accepted
/// // before its first event arrives.
/// server.handle_open("e1", engineio::ProtocolVersion::V4, now);
/// for message in [r#"0{"token":"secret"}"#, r#"21["sum",1,2]"#] {
///     server.handle_message("e1", text(message), now);
///     while let Some(event) = server.poll_event() {
///         handle(&mut server, event);
///     }
/// }
/// let Some(Transmit::Send { message: connected, .. }) = server.poll_transmit() else { panic!() };
/// assert!(matches!(connected, MessageData::Text(t) if t.starts_with(r#"0{"sid":"#)));
/// assert_eq!(server.poll_transmit(), Some(send("e1", "31[3]")));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// A client asks to join a namespace: answer with [`Server::accept`]
    /// or [`Server::reject`].
    Connect {
        /// The socket it would be.
        socket: SocketId,
        /// Its Engine.IO session.
        sid: String,
        /// The namespace.
        namespace: Text,
        /// Which registration matched.
        matched: NamespaceMatch,
        /// The auth payload (`{}` when the client sent none).
        auth: RawJson,
    },
    /// An event from a connected socket. Its name, arguments, ack id and
    /// attachments are in `packet` ([`Packet::event_name`],
    /// [`Packet::args`], `packet.id`).
    Event {
        /// The socket.
        socket: SocketId,
        /// The EVENT or BINARY_EVENT.
        packet: Packet,
    },
    /// The client answered an ack the server asked for.
    Ack {
        /// The socket.
        socket: SocketId,
        /// The ack id [`Server::emit_with_ack`] returned.
        id: u64,
        /// The ACK or BINARY_ACK ([`Packet::args`]).
        packet: Packet,
    },
    /// An ack the server asked for will not come.
    AckFailed {
        /// The socket.
        socket: SocketId,
        /// The ack id.
        id: u64,
        /// Why.
        error: AckError,
    },
    /// A connected socket left its namespace (once per accepted socket).
    Disconnect {
        /// The socket.
        socket: SocketId,
        /// Its namespace.
        namespace: Text,
        /// Why.
        reason: DisconnectReason,
        /// The rooms it was in as it left, the one named by its id
        /// included, sorted (what Node's `disconnecting` listener and
        /// python-socketio's disconnect handler still see).
        rooms: Vec<String>,
    },
}

impl ServerEvent {
    /// The socket the event belongs to (for [`ServerEvent::Connect`], the
    /// socket it would be).
    ///
    /// ```
    /// use switchboard_core::socketio::server::{AckError, ServerEvent};
    ///
    /// let event = ServerEvent::AckFailed { socket: "s1".into(), id: 7, error: AckError::Timeout };
    /// assert_eq!(&**event.socket(), "s1");
    /// ```
    pub fn socket(&self) -> &SocketId {
        match self {
            ServerEvent::Connect { socket, .. }
            | ServerEvent::Event { socket, .. }
            | ServerEvent::Ack { socket, .. }
            | ServerEvent::AckFailed { socket, .. }
            | ServerEvent::Disconnect { socket, .. } => socket,
        }
    }
}

/// Something for the adapter to do on the Engine.IO endpoint.
///
/// See [`Server`] for the whole loop.
///
/// ```
/// use switchboard_core::engineio;
/// use switchboard_core::socketio::server::Transmit;
/// /// Carries out a transmit on the Engine.IO endpoint the server sits on.
/// fn apply(endpoint: &mut engineio::Server, transmit: Transmit) {
///     match transmit {
///         Transmit::Send { sid, message } => {
///             let _ = endpoint.send(&sid, message); // the session may have closed
///         }
///         Transmit::SendMany { sids, messages } => {
///             for message in &messages {
///                 endpoint.send_many(sids.iter().map(|sid| &**sid), message);
///             }
///         }
///         Transmit::SendVolatile { sid, messages } => {
///             let _ = endpoint.send_volatile(&sid, messages);
///         }
///         Transmit::Close { sid } => endpoint.close(&sid),
///     }
/// }
/// # let mut endpoint = engineio::Server::new(engineio::ServerConfig::default());
/// # apply(&mut endpoint, Transmit::Close { sid: "gone".into() });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// Send this message on session `sid`.
    Send {
        /// The Engine.IO session.
        sid: Arc<str>,
        /// The message.
        message: MessageData,
    },
    /// Send these messages (one packet), in order, on every session of
    /// `sids` (a broadcast: encoded once, shared by all).
    SendMany {
        /// The Engine.IO sessions.
        sids: Vec<Arc<str>>,
        /// The messages.
        messages: Vec<MessageData>,
    },
    /// Send these messages (one packet) on session `sid` only if its
    /// transport can take them now; drop them otherwise (a volatile emit).
    SendVolatile {
        /// The Engine.IO session.
        sid: Arc<str>,
        /// The messages, all or none.
        messages: Vec<MessageData>,
    },
    /// Close Engine.IO session `sid`.
    Close {
        /// The session.
        sid: Arc<str>,
    },
}

/// Who a broadcast reaches: the sockets of a namespace in any of `rooms`
/// (all of the namespace's sockets when `rooms` is empty), minus those in
/// any of `except` and minus `except_socket`.
///
/// ```
/// # use std::time::{Duration, Instant};
/// # use switchboard_core::engineio::{self, MessageData};
/// # use switchboard_core::socketio::server::*;
/// # fn connect(server: &mut Server, sid: &str, now: Instant) -> SocketId {
/// #     server.handle_open(sid, engineio::ProtocolVersion::V4, now);
/// #     server.handle_message(sid, MessageData::Text("0".into()), now);
/// #     let Some(ServerEvent::Connect { socket, .. }) = server.poll_event() else { panic!() };
/// #     server.accept(&socket).unwrap();
/// #     while server.poll_transmit().is_some() {}
/// #     socket
/// # }
/// # let text = |t: &str| MessageData::Text(t.to_owned().into());
/// # let send = |sid: &str, t: &str| Transmit::Send { sid: sid.into(), message: text(t) };
/// # let now = Instant::now();
/// # let mut server = Server::new(ServerConfig::default());
/// # server.add_namespace("/");
/// use switchboard_core::socketio::encode_event;
/// let alice = connect(&mut server, "e1", now);
/// let bob = connect(&mut server, "e2", now);
/// let carol = connect(&mut server, "e3", now);
/// server.join(&alice, "lobby").unwrap();
/// server.join(&bob, "lobby").unwrap();
///
/// // To the lobby, but not from Alice to herself.
/// let target = BroadcastTarget {
///     rooms: vec!["lobby".into()],
///     except_socket: Some(alice.clone()),
///     ..BroadcastTarget::namespace("/")
/// };
/// let packet = encode_event("/", "joined", "alice", None).unwrap();
/// assert_eq!(server.broadcast(&target, &packet), 1);
/// let sids = vec!["e2".into()];
/// let messages = vec![text(r#"2["joined","alice"]"#)];
/// assert_eq!(server.poll_transmit(), Some(Transmit::SendMany { sids, messages }));
///
/// // Everyone.
/// assert_eq!(server.broadcast(&BroadcastTarget::namespace("/"), &packet), 3);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BroadcastTarget {
    /// The namespace.
    pub namespace: String,
    /// Rooms to reach; empty: everyone.
    pub rooms: Vec<String>,
    /// Rooms to leave out.
    pub except: Vec<String>,
    /// A socket to leave out (the sender, for a broadcast from a socket).
    pub except_socket: Option<SocketId>,
}

impl BroadcastTarget {
    /// Everyone in `namespace`.
    pub fn namespace(namespace: impl Into<String>) -> Self {
        BroadcastTarget {
            namespace: namespace.into(),
            ..BroadcastTarget::default()
        }
    }
}

/// Room membership: the place a multi-node adapter (one that forwards
/// broadcasts to other servers) plugs in. [`LocalRooms`] keeps it in
/// memory.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use switchboard_core::socketio::server::{BroadcastTarget, LocalRooms, Rooms, SocketId};
/// use switchboard_core::socketio::Encoded;
///
/// /// Local rooms, and every broadcast handed on (here: counted).
/// #[derive(Debug, Default)]
/// struct Forwarding {
///     local: LocalRooms,
///     forwarded: Arc<AtomicUsize>,
/// }
///
/// impl Rooms for Forwarding {
///     fn join(&mut self, ns: &str, room: &str, s: &SocketId) { self.local.join(ns, room, s) }
///     fn leave(&mut self, ns: &str, room: &str, s: &SocketId) { self.local.leave(ns, room, s) }
///     fn leave_all(&mut self, ns: &str, s: &SocketId) { self.local.leave_all(ns, s) }
///     fn rooms_of(&self, ns: &str, s: &SocketId) -> Vec<String> { self.local.rooms_of(ns, s) }
///     fn room_size(&self, ns: &str, room: &str) -> usize { self.local.room_size(ns, room) }
///     fn members(
///         &self,
///         target: &BroadcastTarget,
///         all: &mut dyn Iterator<Item = SocketId>,
///     ) -> Vec<SocketId> {
///         self.local.members(target, all)
///     }
///     fn on_broadcast(&mut self, _target: &BroadcastTarget, _packet: &Encoded) {
///         self.forwarded.fetch_add(1, Ordering::Relaxed); // to the other nodes
///     }
/// }
///
/// # use switchboard_core::socketio::server::{Server, ServerConfig};
/// let rooms = Forwarding::default();
/// let forwarded = rooms.forwarded.clone();
/// let mut server = Server::with_rooms(ServerConfig::default(), Box::new(rooms));
/// server.add_namespace("/");
/// let packet = switchboard_core::socketio::encode_event("/", "news", &(), None).unwrap();
/// assert_eq!(server.broadcast(&BroadcastTarget::namespace("/"), &packet), 0); // no local socket
/// assert_eq!(forwarded.load(Ordering::Relaxed), 1);
/// ```
pub trait Rooms: Send + fmt::Debug {
    /// Adds `socket` of `namespace` to `room`.
    fn join(&mut self, namespace: &str, room: &str, socket: &SocketId);
    /// Removes `socket` from `room`.
    fn leave(&mut self, namespace: &str, room: &str, socket: &SocketId);
    /// Removes `socket` from every room of `namespace`.
    fn leave_all(&mut self, namespace: &str, socket: &SocketId);
    /// The rooms `socket` is in.
    fn rooms_of(&self, namespace: &str, socket: &SocketId) -> Vec<String>;
    /// How many rooms `socket` is in.
    fn room_count(&self, namespace: &str, socket: &SocketId) -> usize {
        self.rooms_of(namespace, socket).len()
    }
    /// Whether `socket` is in `room`.
    fn is_in(&self, namespace: &str, room: &str, socket: &SocketId) -> bool {
        self.rooms_of(namespace, socket).iter().any(|r| r == room)
    }
    /// How many sockets are in `room`.
    fn room_size(&self, namespace: &str, room: &str) -> usize;
    /// The sockets a broadcast to `target` reaches (each once). `all` is
    /// every socket of the namespace, for a target without rooms.
    fn members(
        &self,
        target: &BroadcastTarget,
        all: &mut dyn Iterator<Item = SocketId>,
    ) -> Vec<SocketId>;
    /// Called for every broadcast, after it was sent to local members (a
    /// multi-node adapter forwards it here).
    fn on_broadcast(&mut self, _target: &BroadcastTarget, _packet: &Encoded) {}
}

/// In-memory rooms: the default [`Rooms`].
///
/// ```
/// use switchboard_core::socketio::server::{BroadcastTarget, LocalRooms, Rooms, SocketId};
/// let mut rooms = LocalRooms::default();
/// let (a, b): (SocketId, SocketId) = ("a".into(), "b".into());
/// rooms.join("/", "lobby", &a);
/// rooms.join("/", "lobby", &b);
/// rooms.join("/", "admins", &a);
/// assert_eq!(rooms.room_size("/", "lobby"), 2);
/// let target = BroadcastTarget {
///     rooms: vec!["lobby".into()],
///     except: vec!["admins".into()],
///     ..BroadcastTarget::namespace("/")
/// };
/// assert_eq!(rooms.members(&target, &mut std::iter::empty()), [b.clone()]);
/// rooms.leave_all("/", &a);
/// assert_eq!(rooms.room_size("/", "lobby"), 1);
/// ```
#[derive(Debug, Default)]
pub struct LocalRooms {
    /// namespace → room → sockets.
    rooms: HashMap<String, HashMap<String, IdSet<SocketId>>>,
    /// namespace → socket → rooms.
    by_socket: HashMap<String, IdMap<SocketId, HashSet<String>>>,
}

impl Rooms for LocalRooms {
    fn join(&mut self, namespace: &str, room: &str, socket: &SocketId) {
        self.rooms
            .entry(namespace.to_owned())
            .or_default()
            .entry(room.to_owned())
            .or_default()
            .insert(socket.clone());
        self.by_socket
            .entry(namespace.to_owned())
            .or_default()
            .entry(socket.clone())
            .or_default()
            .insert(room.to_owned());
    }

    fn leave(&mut self, namespace: &str, room: &str, socket: &SocketId) {
        if let Some(rooms) = self.rooms.get_mut(namespace) {
            if let Some(members) = rooms.get_mut(room) {
                members.remove(socket);
                if members.is_empty() {
                    rooms.remove(room);
                }
            }
            if rooms.is_empty() {
                self.rooms.remove(namespace);
            }
        }
        if let Some(sockets) = self.by_socket.get_mut(namespace) {
            if let Some(joined) = sockets.get_mut(socket) {
                joined.remove(room);
                if joined.is_empty() {
                    sockets.remove(socket);
                }
            }
            if sockets.is_empty() {
                self.by_socket.remove(namespace);
            }
        }
    }

    fn leave_all(&mut self, namespace: &str, socket: &SocketId) {
        let Some(sockets) = self.by_socket.get_mut(namespace) else {
            return;
        };
        let joined = sockets.remove(socket);
        if sockets.is_empty() {
            // Namespaces may be named by clients (dynamic ones): an empty
            // one leaves nothing behind.
            self.by_socket.remove(namespace);
        }
        let Some(joined) = joined else {
            return;
        };
        if let Some(rooms) = self.rooms.get_mut(namespace) {
            for room in joined {
                if let Some(members) = rooms.get_mut(&room) {
                    members.remove(socket);
                    if members.is_empty() {
                        rooms.remove(&room);
                    }
                }
            }
            if rooms.is_empty() {
                self.rooms.remove(namespace);
            }
        }
    }

    fn rooms_of(&self, namespace: &str, socket: &SocketId) -> Vec<String> {
        self.by_socket
            .get(namespace)
            .and_then(|sockets| sockets.get(socket))
            .map(|rooms| rooms.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn room_count(&self, namespace: &str, socket: &SocketId) -> usize {
        self.by_socket
            .get(namespace)
            .and_then(|sockets| sockets.get(socket))
            .map_or(0, |rooms| rooms.len())
    }

    fn is_in(&self, namespace: &str, room: &str, socket: &SocketId) -> bool {
        self.by_socket
            .get(namespace)
            .and_then(|sockets| sockets.get(socket))
            .is_some_and(|rooms| rooms.contains(room))
    }

    fn room_size(&self, namespace: &str, room: &str) -> usize {
        self.rooms
            .get(namespace)
            .and_then(|rooms| rooms.get(room))
            .map_or(0, IdSet::len)
    }

    fn members(
        &self,
        target: &BroadcastTarget,
        all: &mut dyn Iterator<Item = SocketId>,
    ) -> Vec<SocketId> {
        let rooms = self.rooms.get(&target.namespace);
        let excluded = |socket: &SocketId| {
            target.except_socket.as_ref() == Some(socket)
                || target.except.iter().any(|room| {
                    rooms
                        .and_then(|rooms| rooms.get(room))
                        .is_some_and(|members| members.contains(socket))
                })
        };
        if target.rooms.is_empty() {
            return all.filter(|socket| !excluded(socket)).collect();
        }
        let Some(rooms) = rooms else {
            return Vec::new();
        };
        if let [room] = target.rooms.as_slice() {
            // One room holds each socket once: nothing to deduplicate.
            let members = rooms.get(room).into_iter().flatten();
            return members.filter(|s| !excluded(s)).cloned().collect();
        }
        let mut seen = IdSet::default();
        let mut out = Vec::new();
        for room in &target.rooms {
            for socket in rooms.get(room).into_iter().flatten() {
                if !excluded(socket) && seen.insert(socket.clone()) {
                    out.push(socket.clone());
                }
            }
        }
        out
    }
}

#[derive(Debug)]
struct Session {
    version: ProtocolVersion,
    decoder: Decoder,
    /// namespace → socket (connected, or waiting for the verdict).
    sockets: HashMap<Text, SocketId>,
    /// Until a namespace is connected: its key in `Server::deadlines`.
    connect_deadline: Option<DeadlineKey>,
}

#[derive(Debug)]
struct SocketState {
    sid: Arc<str>,
    namespace: Text,
    version: ProtocolVersion,
    connected: bool,
    next_ack: u64,
    /// ack id → its key in `Server::deadlines` (`None`: no deadline)
    acks: HashMap<u64, Option<DeadlineKey>>,
}

/// A key of `Server::deadlines`: the deadline, and a sequence number that
/// tells apart deadlines at the same instant.
type DeadlineKey = (Instant, u64);

/// The Socket.IO server state machine (see the [module docs](self)).
///
/// Stacked on an [Engine.IO server](crate::engineio::Server), with a
/// WebSocket session:
///
/// ```
/// use std::time::Instant;
/// use bytes::Bytes;
/// use switchboard_core::engineio;
/// use switchboard_core::socketio::server::{Server, ServerConfig, ServerEvent, Transmit};
/// use switchboard_core::ws::Message;
/// # use switchboard_core::http::{Limits, Request};
///
/// /// One turn of the loop: Engine.IO events in, the application, transmits out.
/// fn pump(endpoint: &mut engineio::Server, server: &mut Server, now: Instant) {
///     while let Some(event) = endpoint.poll_event() {
///         match event {
///             engineio::ServerEvent::Open { sid, version, .. } => {
///                 server.handle_open(&sid, version, now)
///             }
///             engineio::ServerEvent::Message { sid, data } => server.handle_message(&sid, data, now),
///             engineio::ServerEvent::Close { sid, reason } => server.handle_close(&sid, reason),
///         }
///     }
///     while let Some(event) = server.poll_event() {
///         match event {
///             ServerEvent::Connect { socket, .. } => server.accept(&socket).unwrap(),
///             ServerEvent::Event { socket, packet } => {
///                 if packet.event_name().as_deref() == Some("hello") {
///                     server.emit(&socket, "world", &()).unwrap();
///                 }
///             }
///             _ => {}
///         }
///     }
///     while let Some(transmit) = server.poll_transmit() {
///         match transmit {
///             Transmit::Send { sid, message } => drop(endpoint.send(&sid, message)),
///             Transmit::Close { sid } => endpoint.close(&sid),
///             _ => unreachable!("no broadcast or volatile emit here"),
///         }
///     }
/// }
///
/// let now = Instant::now();
/// let mut endpoint = engineio::Server::new(engineio::ServerConfig::default());
/// let mut server = Server::new(ServerConfig::default());
/// server.add_namespace("/");
/// # let head = "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: localhost\r\n\
/// #     Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
/// # let (request, _) = Request::parse(head.as_bytes(), &Limits::default()).unwrap().unwrap();
/// // A client opens a WebSocket session, joins `/` and says hello.
/// let engineio::RequestOutcome::AcceptWebSocket { conn } =
///     endpoint.handle_request(&request, Bytes::new(), now)
/// else {
///     panic!()
/// };
/// endpoint.ws_message(conn, Message::text("40"), now);
/// pump(&mut endpoint, &mut server, now);
/// endpoint.ws_message(conn, Message::text(r#"42["hello"]"#), now);
/// pump(&mut endpoint, &mut server, now);
///
/// let sent: Vec<Message> = std::iter::from_fn(|| endpoint.poll_transmit())
///     .map(|transmit| match transmit {
///         engineio::Transmit::WsSend { message, .. } => message,
///         other => panic!("{other:?}"),
///     })
///     .collect();
/// assert!(sent[0].as_text().unwrap().starts_with(r#"0{"sid":"#)); // Engine.IO open
/// assert!(sent[1].as_text().unwrap().starts_with(r#"40{"sid":"#)); // Socket.IO CONNECT
/// assert_eq!(sent[2], Message::text(r#"42["world"]"#));
/// ```
pub struct Server {
    config: ServerConfig,
    namespaces: HashSet<String>,
    dynamic: Vec<NamespaceMatcher>,
    sessions: IdMap<String, Session>,
    sockets: IdMap<SocketId, SocketState>,
    /// namespace → connected sockets, in connection order.
    by_namespace: HashMap<String, IdSet<SocketId>>,
    rooms: Box<dyn Rooms>,
    /// (deadline, sequence) → what expires; removed when it no longer can
    /// (an answered ack, a connected or closed session).
    deadlines: BTreeMap<DeadlineKey, Deadline>,
    sequence: u64,
    events: VecDeque<ServerEvent>,
    transmits: VecDeque<Transmit>,
}

#[derive(Debug, Clone)]
enum Deadline {
    Connect(String),
    Ack(SocketId, u64),
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("namespaces", &self.namespaces)
            .field("dynamic", &self.dynamic.len())
            .field("sessions", &self.sessions.len())
            .field("sockets", &self.sockets.len())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server with no namespaces, keeping rooms in memory
    /// ([`LocalRooms`]).
    ///
    /// ```
    /// use switchboard_core::socketio::server::{Server, ServerConfig};
    /// let server = Server::new(ServerConfig::default());
    /// assert_eq!(server.socket_count(), 0);
    /// assert_eq!(server.config().max_namespaces_per_session, 64);
    /// ```
    pub fn new(config: ServerConfig) -> Self {
        Self::with_rooms(config, Box::new(LocalRooms::default()))
    }

    /// A server keeping rooms in `rooms` (see [`Rooms`] for an example).
    pub fn with_rooms(config: ServerConfig, rooms: Box<dyn Rooms>) -> Self {
        Server {
            config,
            namespaces: HashSet::new(),
            dynamic: Vec::new(),
            sessions: IdMap::default(),
            sockets: IdMap::default(),
            by_namespace: HashMap::new(),
            rooms,
            deadlines: BTreeMap::new(),
            sequence: 0,
            events: VecDeque::new(),
            transmits: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Accepts connections to namespace `path` (such as `/` or `/chat`).
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use switchboard_core::engineio::{self, MessageData};
    /// # use switchboard_core::socketio::server::*;
    /// # fn connect(server: &mut Server, sid: &str, now: Instant) -> SocketId {
    /// #     server.handle_open(sid, engineio::ProtocolVersion::V4, now);
    /// #     server.handle_message(sid, MessageData::Text("0".into()), now);
    /// #     let Some(ServerEvent::Connect { socket, .. }) = server.poll_event() else { panic!() };
    /// #     server.accept(&socket).unwrap();
    /// #     while server.poll_transmit().is_some() {}
    /// #     socket
    /// # }
    /// # let text = |t: &str| MessageData::Text(t.to_owned().into());
    /// # let send = |sid: &str, t: &str| Transmit::Send { sid: sid.into(), message: text(t) };
    /// # let now = Instant::now();
    /// # let mut server = Server::new(ServerConfig::default());
    /// # server.add_namespace("/");
    /// server.add_namespace("/chat");
    /// server.handle_open("e1", engineio::ProtocolVersion::V4, now);
    /// server.handle_message("e1", text("0/chat,"), now);
    /// assert!(matches!(server.poll_event(), Some(ServerEvent::Connect { .. })));
    ///
    /// // A namespace nobody added is refused without asking the application.
    /// server.handle_message("e1", text("0/elsewhere,"), now);
    /// assert_eq!(server.poll_event(), None);
    /// let refusal = r#"4/elsewhere,{"message":"Invalid namespace"}"#;
    /// assert_eq!(server.poll_transmit(), Some(send("e1", refusal)));
    /// ```
    pub fn add_namespace(&mut self, path: &str) {
        self.namespaces.insert(path.to_owned());
    }

    /// Accepts connections to every namespace `matcher` says yes to (tried
    /// after the static ones, in order); returns its index for
    /// [`NamespaceMatch::Dynamic`].
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use switchboard_core::engineio::{self, MessageData};
    /// # use switchboard_core::socketio::server::*;
    /// # fn connect(server: &mut Server, sid: &str, now: Instant) -> SocketId {
    /// #     server.handle_open(sid, engineio::ProtocolVersion::V4, now);
    /// #     server.handle_message(sid, MessageData::Text("0".into()), now);
    /// #     let Some(ServerEvent::Connect { socket, .. }) = server.poll_event() else { panic!() };
    /// #     server.accept(&socket).unwrap();
    /// #     while server.poll_transmit().is_some() {}
    /// #     socket
    /// # }
    /// # let text = |t: &str| MessageData::Text(t.to_owned().into());
    /// # let send = |sid: &str, t: &str| Transmit::Send { sid: sid.into(), message: text(t) };
    /// # let now = Instant::now();
    /// # let mut server = Server::new(ServerConfig::default());
    /// # server.add_namespace("/");
    /// let rooms = server.add_dynamic_namespace(Box::new(|name: &str| name.starts_with("/room-")));
    /// server.handle_open("e1", engineio::ProtocolVersion::V4, now);
    /// server.handle_message("e1", text("0/room-42,"), now);
    /// let Some(ServerEvent::Connect { namespace, matched, .. }) = server.poll_event() else {
    ///     panic!()
    /// };
    /// assert_eq!((&*namespace, matched), ("/room-42", NamespaceMatch::Dynamic(rooms)));
    /// ```
    pub fn add_dynamic_namespace(&mut self, matcher: NamespaceMatcher) -> usize {
        self.dynamic.push(matcher);
        self.dynamic.len() - 1
    }

    /// A new Engine.IO session opened, speaking Engine.IO `version`: its
    /// connect timeout starts. An Engine.IO v3 session (a Socket.IO v2
    /// client) asks for `/` at once, without a CONNECT. A session already
    /// open under `sid` (its close never reported) ends first: its sockets
    /// disconnect with `transport close`.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use switchboard_core::engineio::{self, MessageData};
    /// # use switchboard_core::socketio::server::*;
    /// # fn connect(server: &mut Server, sid: &str, now: Instant) -> SocketId {
    /// #     server.handle_open(sid, engineio::ProtocolVersion::V4, now);
    /// #     server.handle_message(sid, MessageData::Text("0".into()), now);
    /// #     let Some(ServerEvent::Connect { socket, .. }) = server.poll_event() else { panic!() };
    /// #     server.accept(&socket).unwrap();
    /// #     while server.poll_transmit().is_some() {}
    /// #     socket
    /// # }
    /// # let text = |t: &str| MessageData::Text(t.to_owned().into());
    /// # let send = |sid: &str, t: &str| Transmit::Send { sid: sid.into(), message: text(t) };
    /// # let now = Instant::now();
    /// # let mut server = Server::new(ServerConfig::default());
    /// # server.add_namespace("/");
    /// server.handle_open("e1", engineio::ProtocolVersion::V4, now);
    /// assert_eq!(server.poll_event(), None); // waits for the client's CONNECT
    /// assert_eq!(server.poll_timeout(), Some(now + Duration::from_secs(45)));
    ///
    /// server.handle_open("old", engineio::ProtocolVersion::V3, now);
    /// let Some(ServerEvent::Connect { socket, namespace, .. }) = server.poll_event() else { panic!() };
    /// assert_eq!(&*namespace, "/");
    /// server.accept(&socket).unwrap();
    /// assert_eq!(server.poll_transmit(), Some(send("old", "0"))); // no socket id in v4
    /// ```
    pub fn handle_open(&mut self, sid: &str, version: engineio::ProtocolVersion, now: Instant) {
        let version = ProtocolVersion::from_engineio(version);
        // A session opened again under its id (its close never reported)
        // ends first: its sockets must not outlive it unlisted.
        self.end_session(sid, DisconnectReason::TransportClose);
        // A timeout too long to be an instant never expires.
        let connect_deadline = now
            .checked_add(self.config.connect_timeout)
            .map(|at| self.add_deadline(at, Deadline::Connect(sid.to_owned())));
        self.sessions.insert(
            sid.to_owned(),
            Session {
                version,
                decoder: Decoder::new(version, self.config.decoder),
                sockets: HashMap::new(),
                connect_deadline,
            },
        );
        if version.connects_implicitly() {
            // Socket.IO v2 clients are in `/` from the start.
            let empty = RawJson::new("{}").expect("valid JSON");
            self.connect_request(sid, Text::from(DEFAULT_NAMESPACE), empty);
        }
    }

    /// A message arrived on session `sid`. A binary packet takes its text
    /// message and one binary message per attachment. A packet that does
    /// not decode closes the session.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use switchboard_core::engineio::{self, MessageData};
    /// # use switchboard_core::socketio::server::*;
    /// # fn connect(server: &mut Server, sid: &str, now: Instant) -> SocketId {
    /// #     server.handle_open(sid, engineio::ProtocolVersion::V4, now);
    /// #     server.handle_message(sid, MessageData::Text("0".into()), now);
    /// #     let Some(ServerEvent::Connect { socket, .. }) = server.poll_event() else { panic!() };
    /// #     server.accept(&socket).unwrap();
    /// #     while server.poll_transmit().is_some() {}
    /// #     socket
    /// # }
    /// # let text = |t: &str| MessageData::Text(t.to_owned().into());
    /// # let send = |sid: &str, t: &str| Transmit::Send { sid: sid.into(), message: text(t) };
    /// # let now = Instant::now();
    /// # let mut server = Server::new(ServerConfig::default());
    /// # server.add_namespace("/");
    /// # let socket = connect(&mut server, "e1", now);
    /// // `socket` is connected on session `e1`.
    /// server.handle_message("e1", text(r#"2["chat","hi"]"#), now);
    /// let Some(ServerEvent::Event { socket: from, packet }) = server.poll_event() else { panic!() };
    /// assert_eq!((from, packet.arg::<&str>(0).unwrap()), (socket.clone(), "hi"));
    ///
    /// server.handle_message("e1", text("9 is no packet type"), now);
    /// assert_eq!(server.poll_transmit(), Some(Transmit::Close { sid: "e1".into() }));
    /// let Some(ServerEvent::Disconnect { reason, .. }) = server.poll_event() else { panic!() };
    /// assert_eq!(reason, DisconnectReason::ParseError);
    /// ```
    pub fn handle_message(&mut self, sid: &str, message: MessageData, now: Instant) {
        let Some(session) = self.sessions.get_mut(sid) else {
            return;
        };
        let packet = match session.decoder.receive(message) {
            Ok(Some(packet)) => packet,
            Ok(None) => return,
            Err(error) => {
                tracing::debug!(%sid, %error, "invalid Socket.IO packet; closing the session");
                return self.fail_session(sid, DisconnectReason::ParseError);
            }
        };
        self.handle_packet(sid, packet, now);
    }

    /// Session `sid` closed: its sockets disconnect, and the acks they
    /// wait for fail.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use switchboard_core::engineio::{self, MessageData};
    /// # use switchboard_core::socketio::server::*;
    /// # fn connect(server: &mut Server, sid: &str, now: Instant) -> SocketId {
    /// #     server.handle_open(sid, engineio::ProtocolVersion::V4, now);
    /// #     server.handle_message(sid, MessageData::Text("0".into()), now);
    /// #     let Some(ServerEvent::Connect { socket, .. }) = server.poll_event() else { panic!() };
    /// #     server.accept(&socket).unwrap();
    /// #     while server.poll_transmit().is_some() {}
    /// #     socket
    /// # }
    /// # let text = |t: &str| MessageData::Text(t.to_owned().into());
    /// # let send = |sid: &str, t: &str| Transmit::Send { sid: sid.into(), message: text(t) };
    /// # let now = Instant::now();
    /// # let mut server = Server::new(ServerConfig::default());
    /// # server.add_namespace("/");
    /// # let socket = connect(&mut server, "e1", now);
    /// // `socket` is connected on session `e1`, and waits for an ack.
    /// let id = server.emit_with_ack(&socket, "save", &(), Duration::from_secs(5), now).unwrap();
    /// server.handle_close("e1", engineio::CloseReason::PingTimeout);
    ///
    /// let error = AckError::Disconnected;
    /// let failed = ServerEvent::AckFailed { socket: socket.clone(), id, error };
    /// assert_eq!(server.poll_event(), Some(failed));
    /// let Some(ServerEvent::Disconnect { reason, .. }) = server.poll_event() else { panic!() };
    /// assert_eq!(reason, DisconnectReason::PingTimeout);
    /// assert_eq!(server.socket_count(), 0);
    /// ```
    pub fn handle_close(&mut self, sid: &str, reason: engineio::CloseReason) {
        self.end_session(sid, DisconnectReason::from_engine(reason));
    }

    /// Accepts the connection [`ServerEvent::Connect`] asked for: the
    /// client gets CONNECT, and the socket joins the room of its own id.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use switchboard_core::engineio::{self, MessageData};
    /// # use switchboard_core::socketio::server::*;
    /// # fn connect(server: &mut Server, sid: &str, now: Instant) -> SocketId {
    /// #     server.handle_open(sid, engineio::ProtocolVersion::V4, now);
    /// #     server.handle_message(sid, MessageData::Text("0".into()), now);
    /// #     let Some(ServerEvent::Connect { socket, .. }) = server.poll_event() else { panic!() };
    /// #     server.accept(&socket).unwrap();
    /// #     while server.poll_transmit().is_some() {}
    /// #     socket
    /// # }
    /// # let text = |t: &str| MessageData::Text(t.to_owned().into());
    /// # let send = |sid: &str, t: &str| Transmit::Send { sid: sid.into(), message: text(t) };
    /// # let now = Instant::now();
    /// # let mut server = Server::new(ServerConfig::default());
    /// # server.add_namespace("/");
    /// server.handle_open("e1", engineio::ProtocolVersion::V4, now);
    /// server.handle_message("e1", text("0"), now);
    /// let Some(ServerEvent::Connect { socket, .. }) = server.poll_event() else { panic!() };
    /// server.accept(&socket).unwrap();
    ///
    /// assert_eq!(server.poll_transmit(), Some(send("e1", &format!(r#"0{{"sid":"{socket}"}}"#))));
    /// assert_eq!(server.rooms_of(&socket), [socket.to_string()]);
    /// assert_eq!(server.socket_info(&socket), Some(("/", "e1")));
    /// ```
    pub fn accept(&mut self, socket: &SocketId) -> Result<(), EmitError> {
        let state = self
            .sockets
            .get_mut(socket)
            .ok_or(EmitError::UnknownSocket)?;
        if state.connected {
            return Ok(());
        }
        state.connected = true;
        let (sid, namespace, version) = (state.sid.clone(), state.namespace.clone(), state.version);
        let connect_deadline = self
            .sessions
            .get_mut(&*sid)
            .and_then(|session| session.connect_deadline.take());
        if let Some(key) = connect_deadline {
            self.deadlines.remove(&key);
        }
        self.by_namespace
            .entry(namespace.to_string())
            .or_default()
            .insert(socket.clone());
        self.rooms.join(&namespace, socket, socket);
        let reply = Packet::connect_reply(namespace, socket, version).encode(version);
        self.send_encoded(sid, reply);
        Ok(())
    }

    /// Refuses the connection [`ServerEvent::Connect`] asked for: the
    /// client gets CONNECT_ERROR with `message` and `data`.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use switchboard_core::engineio::{self, MessageData};
    /// # use switchboard_core::socketio::server::*;
    /// # fn connect(server: &mut Server, sid: &str, now: Instant) -> SocketId {
    /// #     server.handle_open(sid, engineio::ProtocolVersion::V4, now);
    /// #     server.handle_message(sid, MessageData::Text("0".into()), now);
    /// #     let Some(ServerEvent::Connect { socket, .. }) = server.poll_event() else { panic!() };
    /// #     server.accept(&socket).unwrap();
    /// #     while server.poll_transmit().is_some() {}
    /// #     socket
    /// # }
    /// # let text = |t: &str| MessageData::Text(t.to_owned().into());
    /// # let send = |sid: &str, t: &str| Transmit::Send { sid: sid.into(), message: text(t) };
    /// # let now = Instant::now();
    /// # let mut server = Server::new(ServerConfig::default());
    /// # server.add_namespace("/");
    /// use switchboard_core::socketio::RawJson;
    /// server.handle_open("e1", engineio::ProtocolVersion::V4, now);
    /// server.handle_message("e1", text("0"), now);
    /// let Some(ServerEvent::Connect { socket, .. }) = server.poll_event() else { panic!() };
    /// let data = RawJson::new(r#"{"retry":false}"#).unwrap();
    /// server.reject(&socket, "not authorized", Some(&data));
    ///
    /// let refusal = r#"4{"message":"not authorized","data":{"retry":false}}"#;
    /// assert_eq!(server.poll_transmit(), Some(send("e1", refusal)));
    /// assert_eq!(server.socket_info(&socket), None);
    /// ```
    pub fn reject(&mut self, socket: &SocketId, message: &str, data: Option<&RawJson>) {
        let Some(state) = self.sockets.get(socket) else {
            return;
        };
        if state.connected {
            return;
        }
        let (sid, namespace, version) = (state.sid.clone(), state.namespace.clone(), state.version);
        self.sockets.remove(socket);
        if let Some(session) = self.sessions.get_mut(&*sid) {
            session.sockets.remove(&namespace);
        }
        let refusal = Packet::connect_error(namespace, message, data, version).encode(version);
        self.send_encoded(sid, refusal);
    }

    /// Sends an encoded packet (from [`encode_event`]) to a connected
    /// socket. The packet's namespace must be the socket's.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use switchboard_core::engineio::{self, MessageData};
    /// # use switchboard_core::socketio::server::*;
    /// # fn connect(server: &mut Server, sid: &str, now: Instant) -> SocketId {
    /// #     server.handle_open(sid, engineio::ProtocolVersion::V4, now);
    /// #     server.handle_message(sid, MessageData::Text("0".into()), now);
    /// #     let Some(ServerEvent::Connect { socket, .. }) = server.poll_event() else { panic!() };
    /// #     server.accept(&socket).unwrap();
    /// #     while server.poll_transmit().is_some() {}
    /// #     socket
    /// # }
    /// # let text = |t: &str| MessageData::Text(t.to_owned().into());
    /// # let send = |sid: &str, t: &str| Transmit::Send { sid: sid.into(), message: text(t) };
    /// # let now = Instant::now();
    /// # let mut server = Server::new(ServerConfig::default());
    /// # server.add_namespace("/");
    /// # let socket = connect(&mut server, "e1", now);
    /// use switchboard_core::socketio::encode_event;
    /// // Encoded once, sent to several sockets.
    /// let packet = encode_event("/", "tick", &(1,), None).unwrap();
    /// # let other = connect(&mut server, "e2", now);
    /// for to in [&socket, &other] {
    ///     server.emit_encoded(to, &packet).unwrap();
    /// }
    /// assert_eq!(server.poll_transmit(), Some(send("e1", r#"2["tick",1]"#)));
    /// assert_eq!(server.poll_transmit(), Some(send("e2", r#"2["tick",1]"#)));
    /// ```
    pub fn emit_encoded(&mut self, socket: &SocketId, packet: &Encoded) -> Result<(), EmitError> {
        let state = self.connected(socket)?;
        let sid = state.sid.clone();
        self.send_encoded(sid, packet.clone());
        Ok(())
    }

    /// Emits event `event` with `args` to a connected socket.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use switchboard_core::engineio::{self, MessageData};
    /// # use switchboard_core::socketio::server::*;
    /// # fn connect(server: &mut Server, sid: &str, now: Instant) -> SocketId {
    /// #     server.handle_open(sid, engineio::ProtocolVersion::V4, now);
    /// #     server.handle_message(sid, MessageData::Text("0".into()), now);
    /// #     let Some(ServerEvent::Connect { socket, .. }) = server.poll_event() else { panic!() };
    /// #     server.accept(&socket).unwrap();
    /// #     while server.poll_transmit().is_some() {}
    /// #     socket
    /// # }
    /// # let text = |t: &str| MessageData::Text(t.to_owned().into());
    /// # let send = |sid: &str, t: &str| Transmit::Send { sid: sid.into(), message: text(t) };
    /// # let now = Instant::now();
    /// # let mut server = Server::new(ServerConfig::default());
    /// # server.add_namespace("/");
    /// # let socket = connect(&mut server, "e1", now);
    /// use switchboard_core::socketio::Binary;
    /// server.emit(&socket, "news", &("headline", 3)).unwrap();
    /// assert_eq!(server.poll_transmit(), Some(send("e1", r#"2["news","headline",3]"#)));
    ///
    /// // Binary data travels as an attachment, in a message of its own.
    /// server.emit(&socket, "file", &Binary::from(vec![1, 2])).unwrap();
    /// let placeholder = r#"51-["file",{"_placeholder":true,"num":0}]"#;
    /// assert_eq!(server.poll_transmit(), Some(send("e1", placeholder)));
    /// let message = MessageData::Binary(vec![1, 2].into());
    /// let attachment = Transmit::Send { sid: "e1".into(), message };
    /// assert_eq!(server.poll_transmit(), Some(attachment));
    /// ```
    pub fn emit<T: Serialize + ?Sized>(
        &mut self,
        socket: &SocketId,
        event: &str,
        args: &T,
    ) -> Result<(), EmitError> {
        let state = self.connected(socket)?;
        let encoded = encode_event(&state.namespace, event, args, None)?;
        let sid = state.sid.clone();
        self.send_encoded(sid, encoded);
        Ok(())
    }

    /// Emits event `event` with `args` only if the client's transport can
    /// take it at once; otherwise it is dropped (Node's `volatile`), for
    /// data that is stale by the time it could be sent.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use switchboard_core::engineio::{self, MessageData};
    /// # use switchboard_core::socketio::server::*;
    /// # fn connect(server: &mut Server, sid: &str, now: Instant) -> SocketId {
    /// #     server.handle_open(sid, engineio::ProtocolVersion::V4, now);
    /// #     server.handle_message(sid, MessageData::Text("0".into()), now);
    /// #     let Some(ServerEvent::Connect { socket, .. }) = server.poll_event() else { panic!() };
    /// #     server.accept(&socket).unwrap();
    /// #     while server.poll_transmit().is_some() {}
    /// #     socket
    /// # }
    /// # let text = |t: &str| MessageData::Text(t.to_owned().into());
    /// # let send = |sid: &str, t: &str| Transmit::Send { sid: sid.into(), message: text(t) };
    /// # let now = Instant::now();
    /// # let mut server = Server::new(ServerConfig::default());
    /// # server.add_namespace("/");
    /// # let socket = connect(&mut server, "e1", now);
    /// server.emit_volatile(&socket, "position", &(10, 20)).unwrap();
    /// let messages = vec![text(r#"2["position",10,20]"#)];
    /// assert_eq!(server.poll_transmit(), Some(Transmit::SendVolatile { sid: "e1".into(), messages }));
    /// ```
    pub fn emit_volatile<T: Serialize + ?Sized>(
        &mut self,
        socket: &SocketId,
        event: &str,
        args: &T,
    ) -> Result<(), EmitError> {
        let state = self.connected(socket)?;
        let encoded = encode_event(&state.namespace, event, args, None)?;
        let sid = state.sid.clone();
        self.transmits.push_back(Transmit::SendVolatile {
            sid,
            messages: encoded.into_messages().collect(),
        });
        Ok(())
    }

    /// Emits event `event` with `args` asking for an ack within `timeout`
    /// (one too long to be an instant, such as [`Duration::MAX`], never
    /// expires); returns the ack id. The answer comes as
    /// [`ServerEvent::Ack`], or [`ServerEvent::AckFailed`].
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use switchboard_core::engineio::{self, MessageData};
    /// # use switchboard_core::socketio::server::*;
    /// # fn connect(server: &mut Server, sid: &str, now: Instant) -> SocketId {
    /// #     server.handle_open(sid, engineio::ProtocolVersion::V4, now);
    /// #     server.handle_message(sid, MessageData::Text("0".into()), now);
    /// #     let Some(ServerEvent::Connect { socket, .. }) = server.poll_event() else { panic!() };
    /// #     server.accept(&socket).unwrap();
    /// #     while server.poll_transmit().is_some() {}
    /// #     socket
    /// # }
    /// # let text = |t: &str| MessageData::Text(t.to_owned().into());
    /// # let send = |sid: &str, t: &str| Transmit::Send { sid: sid.into(), message: text(t) };
    /// # let now = Instant::now();
    /// # let mut server = Server::new(ServerConfig::default());
    /// # server.add_namespace("/");
    /// # let socket = connect(&mut server, "e1", now);
    /// let id = server.emit_with_ack(&socket, "confirm", &(), Duration::from_secs(5), now).unwrap();
    /// assert_eq!(server.poll_transmit(), Some(send("e1", &format!(r#"2{id}["confirm"]"#))));
    ///
    /// server.handle_message("e1", text(&format!(r#"3{id}["yes"]"#)), now);
    /// let Some(ServerEvent::Ack { id: answered, packet, .. }) = server.poll_event() else { panic!() };
    /// assert_eq!((answered, packet.arg::<&str>(0).unwrap()), (id, "yes"));
    /// ```
    pub fn emit_with_ack<T: Serialize + ?Sized>(
        &mut self,
        socket: &SocketId,
        event: &str,
        args: &T,
        timeout: Duration,
        now: Instant,
    ) -> Result<u64, EmitError> {
        let state = self
            .sockets
            .get_mut(socket)
            .filter(|s| s.connected)
            .ok_or(EmitError::UnknownSocket)?;
        let id = state.next_ack;
        let encoded = encode_event(&state.namespace, event, args, Some(id))?;
        state.next_ack += 1;
        let sid = state.sid.clone();
        let key = now
            .checked_add(timeout)
            .map(|at| self.add_deadline(at, Deadline::Ack(socket.clone(), id)));
        if let Some(state) = self.sockets.get_mut(socket) {
            state.acks.insert(id, key);
        }
        self.send_encoded(sid, encoded);
        Ok(id)
    }

    /// Answers the client's event with ack id `id` with `args`.
    ///
    /// See [`ServerEvent`] for a handler answering acks.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use switchboard_core::engineio::{self, MessageData};
    /// # use switchboard_core::socketio::server::*;
    /// # fn connect(server: &mut Server, sid: &str, now: Instant) -> SocketId {
    /// #     server.handle_open(sid, engineio::ProtocolVersion::V4, now);
    /// #     server.handle_message(sid, MessageData::Text("0".into()), now);
    /// #     let Some(ServerEvent::Connect { socket, .. }) = server.poll_event() else { panic!() };
    /// #     server.accept(&socket).unwrap();
    /// #     while server.poll_transmit().is_some() {}
    /// #     socket
    /// # }
    /// # let text = |t: &str| MessageData::Text(t.to_owned().into());
    /// # let send = |sid: &str, t: &str| Transmit::Send { sid: sid.into(), message: text(t) };
    /// # let now = Instant::now();
    /// # let mut server = Server::new(ServerConfig::default());
    /// # server.add_namespace("/");
    /// # let socket = connect(&mut server, "e1", now);
    /// server.handle_message("e1", text(r#"27["time"]"#), now);
    /// let Some(ServerEvent::Event { packet, .. }) = server.poll_event() else { panic!() };
    /// server.ack(&socket, packet.id.unwrap(), &("12:00",)).unwrap();
    /// assert_eq!(server.poll_transmit(), Some(send("e1", r#"37["12:00"]"#)));
    /// ```
    pub fn ack<T: Serialize + ?Sized>(
        &mut self,
        socket: &SocketId,
        id: u64,
        args: &T,
    ) -> Result<(), EmitError> {
        let state = self.connected(socket)?;
        let encoded = encode_ack(&state.namespace, id, args)?;
        let sid = state.sid.clone();
        self.send_encoded(sid, encoded);
        Ok(())
    }

    /// Sends `packet` (encoded once, for `target.namespace`) to every
    /// socket `target` reaches; returns how many. See [`BroadcastTarget`]
    /// for an example.
    pub fn broadcast(&mut self, target: &BroadcastTarget, packet: &Encoded) -> usize {
        self.broadcast_with(target, packet, false)
    }

    /// Like [`Server::broadcast`], dropping the packet for each client whose
    /// transport cannot take it at once.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use switchboard_core::engineio::{self, MessageData};
    /// # use switchboard_core::socketio::server::*;
    /// # fn connect(server: &mut Server, sid: &str, now: Instant) -> SocketId {
    /// #     server.handle_open(sid, engineio::ProtocolVersion::V4, now);
    /// #     server.handle_message(sid, MessageData::Text("0".into()), now);
    /// #     let Some(ServerEvent::Connect { socket, .. }) = server.poll_event() else { panic!() };
    /// #     server.accept(&socket).unwrap();
    /// #     while server.poll_transmit().is_some() {}
    /// #     socket
    /// # }
    /// # let text = |t: &str| MessageData::Text(t.to_owned().into());
    /// # let send = |sid: &str, t: &str| Transmit::Send { sid: sid.into(), message: text(t) };
    /// # let now = Instant::now();
    /// # let mut server = Server::new(ServerConfig::default());
    /// # server.add_namespace("/");
    /// use switchboard_core::socketio::encode_event;
    /// connect(&mut server, "e1", now);
    /// connect(&mut server, "e2", now);
    /// let packet = encode_event("/", "position", &(10, 20), None).unwrap();
    /// assert_eq!(server.broadcast_volatile(&BroadcastTarget::namespace("/"), &packet), 2);
    /// // One volatile send per session, each dropped if its transport is busy.
    /// let sessions: Vec<_> = std::iter::from_fn(|| server.poll_transmit())
    ///     .map(|transmit| match transmit {
    ///         Transmit::SendVolatile { sid, .. } => sid,
    ///         other => panic!("{other:?}"),
    ///     })
    ///     .collect();
    /// assert_eq!(sessions.len(), 2);
    /// ```
    pub fn broadcast_volatile(&mut self, target: &BroadcastTarget, packet: &Encoded) -> usize {
        self.broadcast_with(target, packet, true)
    }

    /// The connected sockets `target` reaches, as a broadcast to it would
    /// (Node's `fetchSockets`).
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use switchboard_core::engineio::{self, MessageData};
    /// # use switchboard_core::socketio::server::*;
    /// # fn connect(server: &mut Server, sid: &str, now: Instant) -> SocketId {
    /// #     server.handle_open(sid, engineio::ProtocolVersion::V4, now);
    /// #     server.handle_message(sid, MessageData::Text("0".into()), now);
    /// #     let Some(ServerEvent::Connect { socket, .. }) = server.poll_event() else { panic!() };
    /// #     server.accept(&socket).unwrap();
    /// #     socket
    /// # }
    /// # let now = Instant::now();
    /// let mut server = Server::new(ServerConfig::default());
    /// server.add_namespace("/");
    /// let (a, b) = (connect(&mut server, "e1", now), connect(&mut server, "e2", now));
    /// server.join(&a, "lobby").unwrap();
    /// let lobby = BroadcastTarget { rooms: vec!["lobby".into()], ..BroadcastTarget::namespace("/") };
    /// assert_eq!(server.members(&lobby), [a.clone()]);
    /// let others = BroadcastTarget { except_socket: Some(a), ..BroadcastTarget::namespace("/") };
    /// assert_eq!(server.members(&others), [b]);
    /// ```
    pub fn members(&self, target: &BroadcastTarget) -> Vec<SocketId> {
        let mut members = self.reached(target);
        members.retain(|socket| self.sockets.get(socket).is_some_and(|s| s.connected));
        members
    }

    /// The sockets the [`Rooms`] say `target` reaches, among the
    /// namespace's connected ones (a multi-node adapter's own included).
    fn reached(&self, target: &BroadcastTarget) -> Vec<SocketId> {
        let mut all = self
            .by_namespace
            .get(&target.namespace)
            .into_iter()
            .flatten()
            .cloned();
        self.rooms.members(target, &mut all)
    }

    /// Queues one `packet` for all of `sids` (none: nothing).
    fn send_to_many(&mut self, sids: Vec<Arc<str>>, packet: &Encoded) {
        if !sids.is_empty() {
            self.transmits.push_back(Transmit::SendMany {
                sids,
                messages: packet.clone().into_messages().collect(),
            });
        }
    }

    /// Emits `event` with `args` to every socket `target` reaches, asking
    /// each for an ack within `timeout` (Node's `io.timeout(ms).emit(...)`
    /// with a callback); returns the ack id, one for all of them, and the
    /// sockets asked. Each answer comes as [`ServerEvent::Ack`] with that
    /// id, each missing one as [`ServerEvent::AckFailed`] (at the deadline,
    /// or when its socket disconnects first). The packet is encoded once.
    /// Only this node's sockets are asked: [`Rooms::on_broadcast`] is not
    /// called.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use switchboard_core::engineio::{self, MessageData};
    /// # use switchboard_core::socketio::server::*;
    /// # fn connect(server: &mut Server, sid: &str, now: Instant) -> SocketId {
    /// #     server.handle_open(sid, engineio::ProtocolVersion::V4, now);
    /// #     server.handle_message(sid, MessageData::Text("0".into()), now);
    /// #     let Some(ServerEvent::Connect { socket, .. }) = server.poll_event() else { panic!() };
    /// #     server.accept(&socket).unwrap();
    /// #     while server.poll_transmit().is_some() {}
    /// #     socket
    /// # }
    /// # let text = |t: &str| MessageData::Text(t.to_owned().into());
    /// # let t0 = Instant::now();
    /// # let mut server = Server::new(ServerConfig::default());
    /// # server.add_namespace("/");
    /// let (a, b) = (connect(&mut server, "e1", t0), connect(&mut server, "e2", t0));
    /// let everyone = BroadcastTarget::namespace("/");
    /// let (id, asked) = server
    ///     .broadcast_with_ack(&everyone, "vote", &(), Duration::from_secs(5), t0)
    ///     .unwrap();
    /// assert_eq!(asked.len(), 2);
    /// let Some(Transmit::SendMany { sids, .. }) = server.poll_transmit() else { panic!() };
    /// assert_eq!(sids.len(), 2); // one packet, `2<id>["vote"]`, for both sessions
    ///
    /// server.handle_message("e1", text(&format!(r#"3{id}["yes"]"#)), t0);
    /// let Some(ServerEvent::Ack { socket, .. }) = server.poll_event() else { panic!() };
    /// assert_eq!(socket, a);
    /// server.handle_timeout(t0 + Duration::from_secs(5)); // e2 never answers
    /// let Some(ServerEvent::AckFailed { socket, error, .. }) = server.poll_event() else { panic!() };
    /// assert_eq!((socket, error), (b, AckError::Timeout));
    /// ```
    pub fn broadcast_with_ack<T: Serialize + ?Sized>(
        &mut self,
        target: &BroadcastTarget,
        event: &str,
        args: &T,
        timeout: Duration,
        now: Instant,
    ) -> Result<(u64, Vec<SocketId>), EmitError> {
        let members = self.members(target);
        // One id, unused by every socket asked.
        let id = members
            .iter()
            .filter_map(|socket| self.sockets.get(socket))
            .map(|state| state.next_ack)
            .max()
            .unwrap_or(0);
        let packet = encode_event(&target.namespace, event, args, Some(id))?;
        let deadline = now.checked_add(timeout);
        let mut sids = Vec::with_capacity(members.len());
        for socket in &members {
            let key = deadline.map(|at| self.add_deadline(at, Deadline::Ack(socket.clone(), id)));
            if let Some(state) = self.sockets.get_mut(socket) {
                state.next_ack = id + 1;
                state.acks.insert(id, key);
                sids.push(state.sid.clone());
            }
        }
        self.send_to_many(sids, &packet);
        Ok((id, members))
    }

    fn broadcast_with(
        &mut self,
        target: &BroadcastTarget,
        packet: &Encoded,
        volatile: bool,
    ) -> usize {
        let members = self.reached(target);
        let sids = members.iter().filter_map(|socket| {
            let state = self.sockets.get(socket).filter(|s| s.connected)?;
            Some(state.sid.clone())
        });
        let count = if volatile {
            let before = self.transmits.len();
            self.transmits
                .extend(sids.map(|sid| Transmit::SendVolatile {
                    sid,
                    messages: packet.clone().into_messages().collect(),
                }));
            self.transmits.len() - before
        } else {
            let sids: Vec<Arc<str>> = sids.collect();
            let count = sids.len();
            self.send_to_many(sids, packet);
            count
        };
        self.rooms.on_broadcast(target, packet);
        count
    }

    /// Adds a connected socket to `room`; past
    /// [`ServerConfig::max_rooms_per_socket`] rooms it fails with
    /// [`EmitError::TooManyRooms`] (joining a room it is in already
    /// succeeds), and a name longer than
    /// [`ServerConfig::max_room_name_len`] with
    /// [`EmitError::RoomNameTooLong`].
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use switchboard_core::engineio::{self, MessageData};
    /// # use switchboard_core::socketio::server::*;
    /// # fn connect(server: &mut Server, sid: &str, now: Instant) -> SocketId {
    /// #     server.handle_open(sid, engineio::ProtocolVersion::V4, now);
    /// #     server.handle_message(sid, MessageData::Text("0".into()), now);
    /// #     let Some(ServerEvent::Connect { socket, .. }) = server.poll_event() else { panic!() };
    /// #     server.accept(&socket).unwrap();
    /// #     while server.poll_transmit().is_some() {}
    /// #     socket
    /// # }
    /// # let text = |t: &str| MessageData::Text(t.to_owned().into());
    /// # let send = |sid: &str, t: &str| Transmit::Send { sid: sid.into(), message: text(t) };
    /// # let now = Instant::now();
    /// # let mut server = Server::new(ServerConfig::default());
    /// # server.add_namespace("/");
    /// # let socket = connect(&mut server, "e1", now);
    /// server.join(&socket, "lobby").unwrap();
    /// server.join(&socket, "lobby").unwrap(); // once is enough
    /// assert_eq!(server.room_size("/", "lobby"), 1);
    /// let rooms = server.rooms_of(&socket); // in no particular order
    /// assert_eq!(rooms.len(), 2);
    /// assert!(rooms.contains(&"lobby".to_owned()) && rooms.contains(&socket.to_string()));
    ///
    /// server.leave(&socket, "lobby").unwrap();
    /// assert_eq!(server.room_size("/", "lobby"), 0);
    /// ```
    pub fn join(&mut self, socket: &SocketId, room: &str) -> Result<(), EmitError> {
        let namespace = self.connected(socket)?.namespace.clone();
        if room.len() > self.config.max_room_name_len {
            return Err(EmitError::RoomNameTooLong {
                limit: self.config.max_room_name_len,
            });
        }
        let limit = self.config.max_rooms_per_socket;
        if self.rooms.room_count(&namespace, socket) >= limit
            && !self.rooms.is_in(&namespace, room, socket)
        {
            return Err(EmitError::TooManyRooms { limit });
        }
        self.rooms.join(&namespace, room, socket);
        Ok(())
    }

    /// Removes a socket from `room` (see [`Server::join`]).
    pub fn leave(&mut self, socket: &SocketId, room: &str) -> Result<(), EmitError> {
        let namespace = self.connected(socket)?.namespace.clone();
        self.rooms.leave(&namespace, room, socket);
        Ok(())
    }

    /// The rooms a socket is in (including the one named by its id).
    pub fn rooms_of(&self, socket: &SocketId) -> Vec<String> {
        match self.sockets.get(socket) {
            Some(state) => self.rooms.rooms_of(&state.namespace, socket),
            None => Vec::new(),
        }
    }

    /// How many sockets of `namespace` are in `room`.
    pub fn room_size(&self, namespace: &str, room: &str) -> usize {
        self.rooms.room_size(namespace, room)
    }

    /// The connected sockets of `namespace`.
    pub fn sockets_of(&self, namespace: &str) -> Vec<SocketId> {
        self.by_namespace
            .get(namespace)
            .map(|sockets| sockets.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// How many sockets are connected, in every namespace.
    pub fn socket_count(&self) -> usize {
        self.by_namespace.values().map(IdSet::len).sum()
    }

    /// The namespace and Engine.IO session of a connected socket.
    ///
    /// This and the other queries:
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use switchboard_core::engineio::{self, MessageData};
    /// # use switchboard_core::socketio::server::*;
    /// # fn connect(server: &mut Server, sid: &str, now: Instant) -> SocketId {
    /// #     server.handle_open(sid, engineio::ProtocolVersion::V4, now);
    /// #     server.handle_message(sid, MessageData::Text("0".into()), now);
    /// #     let Some(ServerEvent::Connect { socket, .. }) = server.poll_event() else { panic!() };
    /// #     server.accept(&socket).unwrap();
    /// #     while server.poll_transmit().is_some() {}
    /// #     socket
    /// # }
    /// # let text = |t: &str| MessageData::Text(t.to_owned().into());
    /// # let send = |sid: &str, t: &str| Transmit::Send { sid: sid.into(), message: text(t) };
    /// # let now = Instant::now();
    /// # let mut server = Server::new(ServerConfig::default());
    /// # server.add_namespace("/");
    /// server.add_namespace("/chat");
    /// let a = connect(&mut server, "e1", now);
    /// # server.handle_message("e1", text("0/chat,"), now);
    /// # let Some(ServerEvent::Connect { socket: b, .. }) = server.poll_event() else { panic!() };
    /// # server.accept(&b).unwrap();
    /// // Session `e1` has socket `a` in `/` and socket `b` in `/chat`.
    /// assert_eq!(server.socket_info(&b), Some(("/chat", "e1")));
    /// assert_eq!(server.sockets_of("/"), [a.clone()]);
    /// assert_eq!(server.socket_count(), 2);
    /// assert_eq!(server.socket_info(&"nobody".into()), None);
    /// ```
    pub fn socket_info(&self, socket: &SocketId) -> Option<(&str, &str)> {
        self.sockets
            .get(socket)
            .filter(|s| s.connected)
            .map(|s| (&*s.namespace, &*s.sid))
    }

    /// Removes a socket from its namespace: the client gets DISCONNECT
    /// (`io server disconnect` on its side).
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use switchboard_core::engineio::{self, MessageData};
    /// # use switchboard_core::socketio::server::*;
    /// # fn connect(server: &mut Server, sid: &str, now: Instant) -> SocketId {
    /// #     server.handle_open(sid, engineio::ProtocolVersion::V4, now);
    /// #     server.handle_message(sid, MessageData::Text("0".into()), now);
    /// #     let Some(ServerEvent::Connect { socket, .. }) = server.poll_event() else { panic!() };
    /// #     server.accept(&socket).unwrap();
    /// #     while server.poll_transmit().is_some() {}
    /// #     socket
    /// # }
    /// # let text = |t: &str| MessageData::Text(t.to_owned().into());
    /// # let send = |sid: &str, t: &str| Transmit::Send { sid: sid.into(), message: text(t) };
    /// # let now = Instant::now();
    /// # let mut server = Server::new(ServerConfig::default());
    /// # server.add_namespace("/");
    /// # let socket = connect(&mut server, "e1", now);
    /// server.disconnect(&socket);
    /// assert_eq!(server.poll_transmit(), Some(send("e1", "1")));
    /// let Some(ServerEvent::Disconnect { reason, .. }) = server.poll_event() else { panic!() };
    /// assert_eq!(reason, DisconnectReason::ServerNamespaceDisconnect);
    /// // The session stays open for its other namespaces.
    /// assert_eq!(server.poll_transmit(), None);
    /// ```
    pub fn disconnect(&mut self, socket: &SocketId) {
        let Some(state) = self.sockets.get(socket).filter(|s| s.connected) else {
            return;
        };
        let (sid, namespace, version) = (state.sid.clone(), state.namespace.clone(), state.version);
        self.send_encoded(sid, Packet::disconnect(namespace).encode(version));
        self.remove_socket(socket, DisconnectReason::ServerNamespaceDisconnect);
    }

    /// Closes Engine.IO session `sid` without DISCONNECT packets, as a lost
    /// connection looks to the client; its sockets disconnect with `forced
    /// close`.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use switchboard_core::engineio::{self, MessageData};
    /// # use switchboard_core::socketio::server::*;
    /// # fn connect(server: &mut Server, sid: &str, now: Instant) -> SocketId {
    /// #     server.handle_open(sid, engineio::ProtocolVersion::V4, now);
    /// #     server.handle_message(sid, MessageData::Text("0".into()), now);
    /// #     let Some(ServerEvent::Connect { socket, .. }) = server.poll_event() else { panic!() };
    /// #     server.accept(&socket).unwrap();
    /// #     while server.poll_transmit().is_some() {}
    /// #     socket
    /// # }
    /// # let text = |t: &str| MessageData::Text(t.to_owned().into());
    /// # let send = |sid: &str, t: &str| Transmit::Send { sid: sid.into(), message: text(t) };
    /// # let now = Instant::now();
    /// # let mut server = Server::new(ServerConfig::default());
    /// # server.add_namespace("/");
    /// # let socket = connect(&mut server, "e1", now);
    /// server.close_session("e1");
    /// assert_eq!(server.poll_transmit(), Some(Transmit::Close { sid: "e1".into() }));
    /// let Some(ServerEvent::Disconnect { reason, .. }) = server.poll_event() else { panic!() };
    /// assert_eq!(reason, DisconnectReason::ForcedClose);
    /// ```
    pub fn close_session(&mut self, sid: &str) {
        if self.sessions.contains_key(sid) {
            self.transmits
                .push_back(Transmit::Close { sid: sid.into() });
            self.end_session(sid, DisconnectReason::ForcedClose);
        }
    }

    /// Runs the deadlines due at `now`: connect timeouts and ack timeouts.
    ///
    /// See [`ServerConfig`] for a connect timeout.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use switchboard_core::engineio::{self, MessageData};
    /// # use switchboard_core::socketio::server::*;
    /// # fn connect(server: &mut Server, sid: &str, now: Instant) -> SocketId {
    /// #     server.handle_open(sid, engineio::ProtocolVersion::V4, now);
    /// #     server.handle_message(sid, MessageData::Text("0".into()), now);
    /// #     let Some(ServerEvent::Connect { socket, .. }) = server.poll_event() else { panic!() };
    /// #     server.accept(&socket).unwrap();
    /// #     while server.poll_transmit().is_some() {}
    /// #     socket
    /// # }
    /// # let text = |t: &str| MessageData::Text(t.to_owned().into());
    /// # let send = |sid: &str, t: &str| Transmit::Send { sid: sid.into(), message: text(t) };
    /// # let now = Instant::now();
    /// # let mut server = Server::new(ServerConfig::default());
    /// # server.add_namespace("/");
    /// # let socket = connect(&mut server, "e1", now);
    /// let id = server.emit_with_ack(&socket, "ping", &(), Duration::from_secs(2), now).unwrap();
    /// assert_eq!(server.poll_timeout(), Some(now + Duration::from_secs(2)));
    /// server.handle_timeout(now + Duration::from_secs(2));
    /// let failed = ServerEvent::AckFailed { socket: socket.clone(), id, error: AckError::Timeout };
    /// assert_eq!(server.poll_event(), Some(failed));
    /// ```
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(entry) = self.deadlines.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = *entry.key();
            match entry.remove() {
                Deadline::Connect(sid) => {
                    let due = self
                        .sessions
                        .get_mut(&sid)
                        .filter(|s| s.connect_deadline == Some(key))
                        .map(|s| s.connect_deadline.take())
                        .is_some();
                    if due {
                        tracing::debug!(%sid, "no namespace connected in time; closing");
                        self.close_session(&sid);
                    }
                }
                Deadline::Ack(socket, id) => {
                    let due = self
                        .sockets
                        .get_mut(&socket)
                        .is_some_and(|s| s.acks.remove(&id).is_some());
                    if due {
                        self.events.push_back(ServerEvent::AckFailed {
                            socket,
                            id,
                            error: AckError::Timeout,
                        });
                    }
                }
            }
        }
    }

    /// When [`Server::handle_timeout`] should next run (see its example):
    /// the earliest connect timeout of a session not connected yet, or
    /// ack timeout of an ack not answered yet.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.keys().next().map(|(deadline, _)| *deadline)
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// The next thing to do on the Engine.IO endpoint.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    fn handle_packet(&mut self, sid: &str, packet: Packet, now: Instant) {
        let _ = now;
        match packet.kind {
            PacketKind::Connect => {
                let auth = match packet.data {
                    Some(auth) => auth,
                    None => RawJson::new("{}").expect("valid JSON"),
                };
                self.connect_request(sid, packet.namespace, auth);
            }
            PacketKind::Disconnect => {
                if let Some(socket) = self.socket_in(sid, &packet.namespace) {
                    self.remove_socket(&socket, DisconnectReason::ClientNamespaceDisconnect);
                }
            }
            PacketKind::Event | PacketKind::BinaryEvent => {
                match self.socket_in(sid, &packet.namespace) {
                    Some(socket) => self.events.push_back(ServerEvent::Event { socket, packet }),
                    None => tracing::debug!(
                        %sid,
                        namespace = %packet.namespace,
                        "event for a namespace the session has not joined; dropped"
                    ),
                }
            }
            PacketKind::Ack | PacketKind::BinaryAck => {
                let Some(socket) = self.socket_in(sid, &packet.namespace) else {
                    return;
                };
                let id = packet.id.unwrap_or_default();
                let known = self
                    .sockets
                    .get_mut(&socket)
                    .and_then(|state| state.acks.remove(&id));
                if let Some(key) = known {
                    if let Some(key) = key {
                        self.deadlines.remove(&key);
                    }
                    self.events
                        .push_back(ServerEvent::Ack { socket, id, packet });
                } else {
                    tracing::debug!(%sid, id, "ack with an unknown id; dropped");
                }
            }
            PacketKind::ConnectError => {
                // Node's "invalid state".
                tracing::debug!(%sid, "CONNECT_ERROR from a client; closing the session");
                self.fail_session(sid, DisconnectReason::ForcedClose);
            }
        }
    }

    fn connect_request(&mut self, sid: &str, namespace: Text, auth: RawJson) {
        let Some(session) = self.sessions.get_mut(sid) else {
            return;
        };
        let version = session.version;
        if let Some(socket) = session.sockets.get(&namespace) {
            if self.sockets.get(socket).is_some_and(|s| s.connected) {
                // Node's "invalid state": it closes the connection.
                tracing::debug!(%sid, %namespace, "CONNECT for a joined namespace; closing");
                return self.fail_session(sid, DisconnectReason::ForcedClose);
            }
            // Still waiting for the verdict on the first: ignored.
            return;
        }
        if session.sockets.len() >= self.config.max_namespaces_per_session {
            tracing::debug!(%sid, "too many namespaces on one session; closing");
            return self.fail_session(sid, DisconnectReason::ParseError);
        }
        let matched = if self.namespaces.contains(&*namespace) {
            Some(NamespaceMatch::Static)
        } else {
            self.dynamic
                .iter()
                .position(|matcher| matcher(&namespace))
                .map(NamespaceMatch::Dynamic)
        };
        let Some(matched) = matched else {
            // `{"message": ...}` in both revisions: Node's server writes
            // this one as an object to v2 clients too.
            let refusal =
                Packet::connect_error(namespace, "Invalid namespace", None, ProtocolVersion::V5)
                    .encode(version);
            return self.send_encoded(sid.into(), refusal);
        };
        let socket: SocketId = engineio::new_sid().into();
        session.sockets.insert(namespace.clone(), socket.clone());
        self.sockets.insert(
            socket.clone(),
            SocketState {
                sid: sid.into(),
                namespace: namespace.clone(),
                version,
                connected: false,
                next_ack: 0,
                acks: HashMap::new(),
            },
        );
        self.events.push_back(ServerEvent::Connect {
            socket,
            sid: sid.to_owned(),
            namespace,
            matched,
            auth,
        });
    }

    fn socket_in(&self, sid: &str, namespace: &Text) -> Option<SocketId> {
        let socket = self.sessions.get(sid)?.sockets.get(namespace)?;
        self.sockets
            .get(socket)
            .is_some_and(|s| s.connected)
            .then(|| socket.clone())
    }

    fn connected(&self, socket: &SocketId) -> Result<&SocketState, EmitError> {
        self.sockets
            .get(socket)
            .filter(|s| s.connected)
            .ok_or(EmitError::UnknownSocket)
    }

    fn send_encoded(&mut self, sid: Arc<str>, encoded: Encoded) {
        for message in encoded.into_messages() {
            self.transmits.push_back(Transmit::Send {
                sid: sid.clone(),
                message,
            });
        }
    }

    fn remove_socket(&mut self, socket: &SocketId, reason: DisconnectReason) {
        let Some(state) = self.sockets.remove(socket) else {
            return;
        };
        if let Some(session) = self.sessions.get_mut(&*state.sid) {
            session.sockets.remove(&state.namespace);
        }
        if !state.connected {
            return;
        }
        if let Some(sockets) = self.by_namespace.get_mut(&*state.namespace) {
            sockets.remove(socket);
            if sockets.is_empty() {
                // (A dynamic namespace's name is the client's choice.)
                self.by_namespace.remove(&*state.namespace);
            }
        }
        let mut rooms = self.rooms.rooms_of(&state.namespace, socket);
        rooms.sort_unstable();
        self.rooms.leave_all(&state.namespace, socket);
        for key in state.acks.values().flatten() {
            self.deadlines.remove(key);
        }
        let mut pending: Vec<u64> = state.acks.keys().copied().collect();
        pending.sort_unstable();
        for id in pending {
            self.events.push_back(ServerEvent::AckFailed {
                socket: socket.clone(),
                id,
                error: AckError::Disconnected,
            });
        }
        self.events.push_back(ServerEvent::Disconnect {
            socket: socket.clone(),
            namespace: state.namespace,
            reason,
            rooms,
        });
    }

    /// Closes a session because of what its client did.
    fn fail_session(&mut self, sid: &str, reason: DisconnectReason) {
        self.transmits
            .push_back(Transmit::Close { sid: sid.into() });
        self.end_session(sid, reason);
    }

    fn end_session(&mut self, sid: &str, reason: DisconnectReason) {
        let Some(session) = self.sessions.remove(sid) else {
            return;
        };
        if let Some(key) = session.connect_deadline {
            self.deadlines.remove(&key);
        }
        let mut sockets: Vec<SocketId> = session.sockets.into_values().collect();
        sockets.sort();
        for socket in sockets {
            // The session is gone already: no packets for it.
            self.remove_socket(&socket, reason);
        }
    }

    fn add_deadline(&mut self, at: Instant, what: Deadline) -> DeadlineKey {
        self.sequence += 1;
        let key = (at, self.sequence);
        self.deadlines.insert(key, what);
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engineio::ProtocolVersion as Eio;
    use bytes::Bytes;

    fn server() -> Server {
        let mut server = Server::new(ServerConfig {
            connect_timeout: Duration::from_secs(1),
            ..ServerConfig::default()
        });
        server.add_namespace("/");
        server.add_namespace("/admin");
        server
    }

    fn text(s: &str) -> MessageData {
        MessageData::Text(Text::from(s.to_owned()))
    }

    /// Everything sent on `sid`, as strings (binary as `<hex>`).
    fn sent(server: &mut Server) -> Vec<(String, String)> {
        std::iter::from_fn(|| server.poll_transmit())
            .flat_map(|t| match t {
                Transmit::Send {
                    sid,
                    message: MessageData::Text(t),
                } => vec![(sid.to_string(), t.to_string())],
                Transmit::Send {
                    sid,
                    message: MessageData::Binary(b),
                } => vec![(sid.to_string(), format!("<{b:02x?}>"))],
                Transmit::SendMany { sids, messages } => sids
                    .iter()
                    .flat_map(|sid| {
                        messages.iter().map(move |m| {
                            let shown = match m {
                                MessageData::Text(t) => t.to_string(),
                                MessageData::Binary(b) => format!("<{b:02x?}>"),
                            };
                            (sid.to_string(), shown)
                        })
                    })
                    .collect(),
                Transmit::Close { sid } => vec![(sid.to_string(), "CLOSE".into())],
                Transmit::SendVolatile { sid, messages } => {
                    vec![(sid.to_string(), format!("VOLATILE {}", messages.len()))]
                }
            })
            .collect()
    }

    fn connect(server: &mut Server, sid: &str, namespace: &str, now: Instant) -> SocketId {
        let packet = if namespace == "/" {
            "0".to_string()
        } else {
            format!("0{namespace},")
        };
        server.handle_message(sid, text(&packet), now);
        let Some(ServerEvent::Connect { socket, .. }) = server.poll_event() else {
            panic!("no connect event");
        };
        server.accept(&socket).unwrap();
        socket
    }

    #[test]
    fn connect_accept_and_reject() {
        let mut server = server();
        let t0 = Instant::now();
        server.handle_open("s1", Eio::V4, t0);
        server.handle_message("s1", text(r#"0{"token":"abc"}"#), t0);
        let Some(ServerEvent::Connect {
            socket,
            sid,
            namespace,
            matched,
            auth,
        }) = server.poll_event()
        else {
            panic!()
        };
        assert_eq!(
            (sid.as_str(), &*namespace, matched),
            ("s1", "/", NamespaceMatch::Static)
        );
        assert_eq!(auth.as_str(), r#"{"token":"abc"}"#);
        // Events before the verdict are dropped.
        server.handle_message("s1", text(r#"2["early"]"#), t0);
        assert_eq!(server.poll_event(), None);
        server.accept(&socket).unwrap();
        assert_eq!(
            sent(&mut server),
            [("s1".into(), format!(r#"0{{"sid":"{socket}"}}"#))]
        );
        assert_eq!(server.rooms_of(&socket), [socket.to_string()]);

        server.handle_message("s1", text("0/admin,"), t0);
        let Some(ServerEvent::Connect {
            socket: admin,
            auth,
            ..
        }) = server.poll_event()
        else {
            panic!()
        };
        assert_eq!(auth.as_str(), "{}");
        server.reject(&admin, "not authorized", None);
        assert_eq!(
            sent(&mut server),
            [(
                "s1".into(),
                r#"4/admin,{"message":"not authorized"}"#.into()
            )]
        );
        assert!(server.emit(&admin, "x", &()).is_err());

        server.handle_message("s1", text("0/nope,"), t0);
        assert_eq!(server.poll_event(), None);
        assert_eq!(
            sent(&mut server),
            [(
                "s1".into(),
                r#"4/nope,{"message":"Invalid namespace"}"#.into()
            )]
        );
    }

    #[test]
    fn dynamic_namespaces_match_by_predicate() {
        let mut server = server();
        let index = server.add_dynamic_namespace(Box::new(|ns: &str| ns.starts_with("/room-")));
        let t0 = Instant::now();
        server.handle_open("s1", Eio::V4, t0);
        server.handle_message("s1", text("0/room-42,"), t0);
        let Some(ServerEvent::Connect {
            matched, namespace, ..
        }) = server.poll_event()
        else {
            panic!()
        };
        assert_eq!(
            (matched, &*namespace),
            (NamespaceMatch::Dynamic(index), "/room-42")
        );
    }

    #[test]
    fn events_acks_and_binary() {
        let mut server = server();
        let t0 = Instant::now();
        server.handle_open("s1", Eio::V4, t0);
        let socket = connect(&mut server, "s1", "/", t0);
        sent(&mut server);

        server.handle_message("s1", text(r#"27["echo","hi",1]"#), t0);
        let Some(ServerEvent::Event {
            socket: from,
            packet,
        }) = server.poll_event()
        else {
            panic!()
        };
        assert_eq!(from, socket);
        assert_eq!(packet.event_name().as_deref(), Some("echo"));
        assert_eq!(packet.id, Some(7));
        server.ack(&socket, 7, &("hi", 1)).unwrap();
        assert_eq!(sent(&mut server), [("s1".into(), r#"37["hi",1]"#.into())]);

        // A binary event arrives in two messages.
        server.handle_message(
            "s1",
            text(r#"51-["bin",{"_placeholder":true,"num":0}]"#),
            t0,
        );
        assert_eq!(server.poll_event(), None);
        server.handle_message("s1", MessageData::Binary(Bytes::from_static(&[1, 2])), t0);
        let Some(ServerEvent::Event { packet, .. }) = server.poll_event() else {
            panic!()
        };
        assert_eq!(packet.attachments, [Bytes::from_static(&[1, 2])]);
    }

    #[test]
    fn server_acks_answer_or_fail() {
        let mut server = server();
        let t0 = Instant::now();
        server.handle_open("s1", Eio::V4, t0);
        let socket = connect(&mut server, "s1", "/", t0);
        sent(&mut server);
        let id = server
            .emit_with_ack(&socket, "question", &"why", Duration::from_millis(100), t0)
            .unwrap();
        assert_eq!(
            sent(&mut server),
            [("s1".into(), format!(r#"2{id}["question","why"]"#))]
        );
        server.handle_message("s1", text(&format!(r#"3{id}["because"]"#)), t0);
        let Some(ServerEvent::Ack {
            id: answered,
            packet,
            ..
        }) = server.poll_event()
        else {
            panic!()
        };
        assert_eq!(answered, id);
        assert_eq!(packet.args::<(String,)>().unwrap().0, "because");
        // A second answer, or one to an unknown id, is dropped.
        server.handle_message("s1", text(&format!(r#"3{id}["again"]"#)), t0);
        server.handle_message("s1", text(r#"399["what"]"#), t0);
        assert_eq!(server.poll_event(), None);

        let late = server
            .emit_with_ack(&socket, "question", &(), Duration::from_millis(100), t0)
            .unwrap();
        assert_eq!(server.poll_timeout(), Some(t0 + Duration::from_millis(100)));
        server.handle_timeout(t0 + Duration::from_millis(100));
        assert_eq!(
            server.poll_event(),
            Some(ServerEvent::AckFailed {
                socket: socket.clone(),
                id: late,
                error: AckError::Timeout
            })
        );
        let pending = server
            .emit_with_ack(&socket, "question", &(), Duration::from_secs(5), t0)
            .unwrap();
        server.handle_close("s1", engineio::CloseReason::TransportClose);
        assert_eq!(
            server.poll_event(),
            Some(ServerEvent::AckFailed {
                socket: socket.clone(),
                id: pending,
                error: AckError::Disconnected
            })
        );
        assert!(matches!(
            server.poll_event(),
            Some(ServerEvent::Disconnect {
                reason: DisconnectReason::TransportClose,
                ..
            })
        ));
    }

    #[test]
    fn a_socket_joins_at_most_max_rooms_per_socket() {
        let mut server = Server::new(ServerConfig {
            max_rooms_per_socket: 3,
            ..ServerConfig::default()
        });
        server.add_namespace("/");
        let t0 = Instant::now();
        server.handle_open("s1", Eio::V4, t0);
        let socket = connect(&mut server, "s1", "/", t0);
        // Its own room counts: two more fit.
        server.join(&socket, "a").unwrap();
        server.join(&socket, "b").unwrap();
        assert!(matches!(
            server.join(&socket, "c"),
            Err(EmitError::TooManyRooms { limit: 3 })
        ));
        assert_eq!(server.room_size("/", "c"), 0);
        server.join(&socket, "a").expect("a room it is in already");
        server.leave(&socket, "a").unwrap();
        server.join(&socket, "c").expect("room again after a leave");
        assert_eq!(server.rooms_of(&socket).len(), 3);
    }

    #[test]
    fn room_names_are_at_most_max_room_name_len_bytes() {
        let mut server = Server::new(ServerConfig {
            max_room_name_len: 4,
            ..ServerConfig::default()
        });
        server.add_namespace("/");
        let t0 = Instant::now();
        server.handle_open("s1", Eio::V4, t0);
        let socket = connect(&mut server, "s1", "/", t0);
        server.join(&socket, "four").unwrap();
        assert!(matches!(
            server.join(&socket, "fives"),
            Err(EmitError::RoomNameTooLong { limit: 4 })
        ));
        // Bytes, not characters.
        assert!(server.join(&socket, "éé").is_ok());
        assert!(server.join(&socket, "ééé").is_err());
        assert_eq!(server.room_size("/", "fives"), 0);
    }

    #[test]
    fn rooms_and_broadcasts() {
        let mut server = server();
        let t0 = Instant::now();
        let sockets: Vec<SocketId> = (0..3)
            .map(|i| {
                let sid = format!("s{i}");
                server.handle_open(&sid, Eio::V4, t0);
                connect(&mut server, &sid, "/", t0)
            })
            .collect();
        sent(&mut server);
        for socket in &sockets[..2] {
            server.join(socket, "room").unwrap();
        }
        assert_eq!(server.room_size("/", "room"), 2);
        let packet = encode_event("/", "news", "hi", None).unwrap();
        let target = BroadcastTarget {
            rooms: vec!["room".into()],
            except_socket: Some(sockets[0].clone()),
            ..BroadcastTarget::namespace("/")
        };
        assert_eq!(server.broadcast(&target, &packet), 1);
        assert_eq!(
            sent(&mut server),
            [("s1".into(), r#"2["news","hi"]"#.into())]
        );
        // Everyone but those in `room`.
        let target = BroadcastTarget {
            except: vec!["room".into()],
            ..BroadcastTarget::namespace("/")
        };
        assert_eq!(server.broadcast(&target, &packet), 1);
        assert_eq!(sent(&mut server)[0].0, "s2");
        assert_eq!(server.broadcast_volatile(&target, &packet), 1);
        assert_eq!(sent(&mut server), [("s2".into(), "VOLATILE 1".into())]);
        server.emit_volatile(&sockets[0], "tick", &1).unwrap();
        assert_eq!(sent(&mut server), [("s0".into(), "VOLATILE 1".into())]);
        // Leaving, and disconnecting, leave rooms.
        server.leave(&sockets[1], "room").unwrap();
        assert_eq!(server.room_size("/", "room"), 1);
        server.handle_message("s0", text("1"), t0);
        let Some(ServerEvent::Disconnect { reason, rooms, .. }) = server.poll_event() else {
            panic!()
        };
        assert_eq!(reason, DisconnectReason::ClientNamespaceDisconnect);
        // The event names the rooms it left.
        let mut expected = vec!["room".to_owned(), sockets[0].to_string()];
        expected.sort();
        assert_eq!(rooms, expected);
        assert_eq!(server.room_size("/", "room"), 0);
        assert_eq!(server.socket_count(), 2);
    }

    #[test]
    fn server_disconnect_and_session_close() {
        let mut server = server();
        let t0 = Instant::now();
        server.handle_open("s1", Eio::V4, t0);
        let root = connect(&mut server, "s1", "/", t0);
        let admin = connect(&mut server, "s1", "/admin", t0);
        sent(&mut server);
        server.disconnect(&admin);
        assert_eq!(sent(&mut server), [("s1".into(), "1/admin,".into())]);
        assert!(matches!(
            server.poll_event(),
            Some(ServerEvent::Disconnect {
                reason: DisconnectReason::ServerNamespaceDisconnect,
                ..
            })
        ));
        server.close_session("s1");
        assert_eq!(sent(&mut server), [("s1".into(), "CLOSE".into())]);
        assert_eq!(
            server.poll_event(),
            Some(ServerEvent::Disconnect {
                rooms: vec![root.to_string()],
                socket: root,
                namespace: "/".into(),
                reason: DisconnectReason::ForcedClose,
            })
        );
    }

    #[test]
    fn bad_packets_close_the_session() {
        for bad in [
            "9",
            r#"2"not an array""#,
            r#"2abc["x"]"#,
            "2[",
            r#"51-["x",{"_placeholder":true,"num":3}]"#,
        ] {
            let mut server = server();
            let t0 = Instant::now();
            server.handle_open("s1", Eio::V4, t0);
            connect(&mut server, "s1", "/", t0);
            sent(&mut server);
            server.handle_message("s1", text(bad), t0);
            if bad.starts_with('5') {
                server.handle_message("s1", MessageData::Binary(Bytes::from_static(b"x")), t0);
            }
            assert_eq!(sent(&mut server), [("s1".into(), "CLOSE".into())], "{bad}");
            assert!(
                matches!(
                    server.poll_event(),
                    Some(ServerEvent::Disconnect {
                        reason: DisconnectReason::ParseError,
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn connect_timeout_closes_idle_sessions() {
        let mut server = server();
        let t0 = Instant::now();
        server.handle_open("idle", Eio::V4, t0);
        server.handle_open("busy", Eio::V4, t0);
        connect(&mut server, "busy", "/", t0);
        sent(&mut server);
        server.handle_timeout(t0 + Duration::from_millis(999));
        assert!(sent(&mut server).is_empty());
        server.handle_timeout(t0 + Duration::from_secs(1));
        assert_eq!(sent(&mut server), [("idle".into(), "CLOSE".into())]);
    }

    #[test]
    fn socket_io_v2_clients_join_the_main_namespace_at_once() {
        let mut server = server();
        let t0 = Instant::now();
        server.handle_open("old", Eio::V3, t0);
        let Some(ServerEvent::Connect {
            socket, namespace, ..
        }) = server.poll_event()
        else {
            panic!()
        };
        assert_eq!(&*namespace, "/");
        server.accept(&socket).unwrap();
        assert_eq!(sent(&mut server), [("old".into(), "0".into())]);
        server.handle_message("old", text("0/admin?token=secret,"), t0);
        let Some(ServerEvent::Connect {
            socket: admin,
            auth,
            ..
        }) = server.poll_event()
        else {
            panic!()
        };
        assert_eq!(auth.to_value(), serde_json::json!({"token": "secret"}));
        server.reject(&admin, "not authorized", None);
        assert_eq!(
            sent(&mut server),
            [("old".into(), r#"4/admin,"not authorized""#.into())]
        );
    }

    #[test]
    fn answered_and_failed_acks_leave_no_deadline_behind() {
        let mut server = server();
        let t0 = Instant::now();
        server.handle_open("s1", Eio::V4, t0);
        let socket = connect(&mut server, "s1", "/", t0);
        // Connected: the connect timeout no longer applies.
        assert_eq!(server.poll_timeout(), None);
        let hour = Duration::from_secs(3600);
        for _ in 0..1000 {
            let id = server
                .emit_with_ack(&socket, "question", &(), hour, t0)
                .unwrap();
            server.handle_message("s1", text(&format!("3{id}[]")), t0);
        }
        assert_eq!(server.deadlines.len(), 0, "answered acks keep deadlines");
        assert_eq!(server.poll_timeout(), None);
        server
            .emit_with_ack(&socket, "question", &(), hour, t0)
            .unwrap();
        server.handle_close("s1", engineio::CloseReason::TransportClose);
        assert_eq!(server.deadlines.len(), 0, "a closed session's acks");
        // A session closed before connecting drops its connect deadline.
        server.handle_open("s2", Eio::V4, t0);
        server.handle_close("s2", engineio::CloseReason::TransportClose);
        assert_eq!(server.poll_timeout(), None);
    }

    #[test]
    fn timeouts_too_far_to_represent_never_expire() {
        let mut server = Server::new(ServerConfig {
            connect_timeout: Duration::MAX,
            ..ServerConfig::default()
        });
        server.add_namespace("/");
        let t0 = Instant::now();
        server.handle_open("idle", Eio::V4, t0);
        server.handle_open("s1", Eio::V4, t0);
        let socket = connect(&mut server, "s1", "/", t0);
        sent(&mut server);
        let id = server
            .emit_with_ack(&socket, "question", &(), Duration::MAX, t0)
            .unwrap();
        assert_eq!(server.poll_timeout(), None);
        server.handle_timeout(t0 + Duration::from_secs(1 << 40));
        assert!(sent(&mut server).iter().all(|(_, m)| m != "CLOSE"));
        assert_eq!(server.poll_event(), None);
        server.handle_message("s1", text(&format!("3{id}[1]")), t0);
        assert!(matches!(server.poll_event(), Some(ServerEvent::Ack { .. })));
    }

    #[test]
    fn a_connect_for_a_joined_namespace_closes_the_session_as_node_does() {
        let mut server = server();
        let t0 = Instant::now();
        server.handle_open("s1", Eio::V4, t0);
        let socket = connect(&mut server, "s1", "/", t0);
        sent(&mut server);
        // Asked again while connected: Node's "invalid state" closes the
        // connection, its sockets see `forced close`.
        server.handle_message("s1", text("0"), t0);
        assert_eq!(sent(&mut server), [("s1".into(), "CLOSE".into())]);
        assert_eq!(
            server.poll_event(),
            Some(ServerEvent::Disconnect {
                rooms: vec![socket.to_string()],
                socket,
                namespace: "/".into(),
                reason: DisconnectReason::ForcedClose,
            })
        );

        // Asked again while the first is waiting for its verdict: ignored.
        server.handle_open("s2", Eio::V4, t0);
        server.handle_message("s2", text("0/admin,"), t0);
        server.handle_message("s2", text("0/admin,"), t0);
        let Some(ServerEvent::Connect { socket, .. }) = server.poll_event() else {
            panic!()
        };
        assert_eq!(server.poll_event(), None);
        server.accept(&socket).unwrap();
        assert_eq!(sent(&mut server).len(), 1);

        // A CONNECT_ERROR from a client: the same.
        server.handle_message("s2", text(r#"4/admin,{"message":"x"}"#), t0);
        assert_eq!(sent(&mut server), [("s2".into(), "CLOSE".into())]);
        assert!(matches!(
            server.poll_event(),
            Some(ServerEvent::Disconnect {
                reason: DisconnectReason::ForcedClose,
                ..
            })
        ));
    }

    #[test]
    fn socket_io_v2_clients_get_invalid_namespace_as_an_object_as_from_node() {
        let mut server = server();
        let t0 = Instant::now();
        server.handle_open("old", Eio::V3, t0);
        let Some(ServerEvent::Connect { socket, .. }) = server.poll_event() else {
            panic!()
        };
        server.accept(&socket).unwrap();
        sent(&mut server);
        server.handle_message("old", text("0/nope"), t0);
        assert_eq!(
            sent(&mut server),
            [(
                "old".into(),
                r#"4/nope,{"message":"Invalid namespace"}"#.into()
            )]
        );
    }

    #[test]
    fn dynamic_namespaces_left_leave_nothing_behind() {
        let mut server = server();
        server.add_dynamic_namespace(Box::new(|ns: &str| ns.starts_with("/room-")));
        let t0 = Instant::now();
        server.handle_open("s1", Eio::V4, t0);
        // A client walks through namespaces its names: none of them stays.
        for i in 0..100 {
            let namespace = format!("/room-{i}");
            let socket = connect(&mut server, "s1", &namespace, t0);
            server.join(&socket, "lobby").unwrap();
            server.handle_message("s1", text(&format!("1{namespace},")), t0);
            assert!(matches!(
                server.poll_event(),
                Some(ServerEvent::Disconnect { .. })
            ));
        }
        assert_eq!(server.by_namespace.len(), 0, "namespaces left behind");
        // The rooms index, alone.
        let mut rooms = LocalRooms::default();
        let socket: SocketId = "a".into();
        for i in 0..100 {
            let namespace = format!("/room-{i}");
            rooms.join(&namespace, "lobby", &socket);
            rooms.join(&namespace, "other", &socket);
            rooms.leave(&namespace, "lobby", &socket);
            rooms.leave_all(&namespace, &socket);
        }
        assert_eq!((rooms.rooms.len(), rooms.by_socket.len()), (0, 0));
    }

    #[test]
    fn a_session_opened_again_under_its_sid_leaves_no_socket_behind() {
        let mut server = server();
        let t0 = Instant::now();
        server.handle_open("s1", Eio::V4, t0);
        let old = connect(&mut server, "s1", "/", t0);
        server.handle_message("s1", text("0/admin,"), t0);
        let Some(ServerEvent::Connect {
            socket: pending, ..
        }) = server.poll_event()
        else {
            panic!()
        };
        // The adapter reports a new session under the same id (its close
        // never came): the old one's sockets are gone with it.
        server.handle_open("s1", Eio::V4, t0);
        assert!(matches!(
            server.poll_event(),
            Some(ServerEvent::Disconnect { socket, reason: DisconnectReason::TransportClose, .. })
                if socket == old
        ));
        assert_eq!(server.socket_count(), 0);
        assert_eq!(server.room_size("/", &old), 0);
        assert!(server.accept(&pending).is_err());
        // The new session connects afresh, and leaves nothing when it closes.
        let new = connect(&mut server, "s1", "/", t0);
        server.handle_close("s1", engineio::CloseReason::TransportClose);
        assert!(matches!(
            server.poll_event(),
            Some(ServerEvent::Disconnect { socket, .. }) if socket == new
        ));
        assert_eq!((server.sockets.len(), server.deadlines.len()), (0, 0));
    }

    #[test]
    fn namespaces_per_session_are_bounded() {
        let mut server = Server::new(ServerConfig {
            max_namespaces_per_session: 2,
            ..ServerConfig::default()
        });
        server.add_dynamic_namespace(Box::new(|_: &str| true));
        let t0 = Instant::now();
        server.handle_open("s1", Eio::V4, t0);
        for ns in ["/a", "/b", "/c"] {
            server.handle_message("s1", text(&format!("0{ns},")), t0);
        }
        assert_eq!(sent(&mut server), [("s1".into(), "CLOSE".into())]);
    }
}

#[cfg(test)]
mod sequences {
    //! Random sequences of sessions, packets, application commands and
    //! time: nothing panics, and every table agrees with every other.
    use super::*;
    use crate::engineio::ProtocolVersion as Eio;
    use proptest::prelude::*;
    use std::sync::Mutex;

    /// The in-memory rooms, shared with the test to look inside.
    #[derive(Debug, Clone, Default)]
    struct Shared(Arc<Mutex<LocalRooms>>);

    impl Rooms for Shared {
        fn join(&mut self, ns: &str, room: &str, s: &SocketId) {
            self.0.lock().unwrap().join(ns, room, s)
        }
        fn leave(&mut self, ns: &str, room: &str, s: &SocketId) {
            self.0.lock().unwrap().leave(ns, room, s)
        }
        fn leave_all(&mut self, ns: &str, s: &SocketId) {
            self.0.lock().unwrap().leave_all(ns, s)
        }
        fn rooms_of(&self, ns: &str, s: &SocketId) -> Vec<String> {
            self.0.lock().unwrap().rooms_of(ns, s)
        }
        fn room_count(&self, ns: &str, s: &SocketId) -> usize {
            self.0.lock().unwrap().room_count(ns, s)
        }
        fn is_in(&self, ns: &str, room: &str, s: &SocketId) -> bool {
            self.0.lock().unwrap().is_in(ns, room, s)
        }
        fn room_size(&self, ns: &str, room: &str) -> usize {
            self.0.lock().unwrap().room_size(ns, room)
        }
        fn members(
            &self,
            target: &BroadcastTarget,
            all: &mut dyn Iterator<Item = SocketId>,
        ) -> Vec<SocketId> {
            self.0.lock().unwrap().members(target, all)
        }
    }

    const SIDS: [&str; 3] = ["s0", "s1", "s2"];
    const NAMESPACES: [&str; 4] = ["/", "/admin", "/room-1", "/room-2"];
    const ROOMS: [&str; 3] = ["lobby", "vip", "/admin"];
    const PACKETS: &[&str] = &[
        "0",
        "0/admin,",
        "0/room-1,",
        "0/room-2,{\"a\":1}",
        "0/nope,",
        "1",
        "1/admin,",
        "1/room-1,",
        "2[\"e\"]",
        "2/admin,5[\"e\",1]",
        "2/room-2,[\"e\"]",
        "30[]",
        "31[]",
        "3/admin,0[]",
        "3/room-1,1[]",
        "3/room-2,2[]",
        "4/admin,{\"message\":\"x\"}",
        "51-[\"e\",{\"_placeholder\":true,\"num\":0}]",
        "61-/admin,0[{\"_placeholder\":true,\"num\":0}]",
        "9 garbage",
        "",
    ];

    #[derive(Debug, Clone)]
    enum Op {
        Open(usize, bool),
        Close(usize),
        Text(usize, usize),
        Binary(usize),
        Accept(usize),
        Reject(usize),
        Join(usize, usize),
        Leave(usize, usize),
        Disconnect(usize),
        EmitAck(usize, u64),
        BroadcastAck(usize, Option<usize>, Option<usize>, bool),
        Broadcast(usize, Option<usize>, Option<usize>),
        CloseSession(usize),
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        let sid = 0..SIDS.len();
        let any_socket = 0..16usize;
        let room = 0..ROOMS.len();
        let ns = 0..NAMESPACES.len();
        prop_oneof![
            1 => (sid.clone(), any::<bool>()).prop_map(|(s, v3)| Op::Open(s, v3)),
            1 => sid.clone().prop_map(Op::Close),
            6 => (sid.clone(), 0..PACKETS.len()).prop_map(|(s, p)| Op::Text(s, p)),
            1 => sid.clone().prop_map(Op::Binary),
            3 => any_socket.clone().prop_map(Op::Accept),
            1 => any_socket.clone().prop_map(Op::Reject),
            2 => (any_socket.clone(), room.clone()).prop_map(|(s, r)| Op::Join(s, r)),
            1 => (any_socket.clone(), room.clone()).prop_map(|(s, r)| Op::Leave(s, r)),
            1 => any_socket.clone().prop_map(Op::Disconnect),
            2 => (any_socket.clone(), 0..4u64).prop_map(|(s, t)| Op::EmitAck(s, t)),
            1 => (
                ns.clone(),
                proptest::option::of(room.clone()),
                proptest::option::of(room.clone()),
                any::<bool>()
            )
                .prop_map(|(n, to, except, forever)| Op::BroadcastAck(n, to, except, forever)),
            1 => (ns, proptest::option::of(room.clone()), proptest::option::of(room))
                .prop_map(|(n, to, except)| Op::Broadcast(n, to, except)),
            1 => sid.prop_map(Op::CloseSession),
            1 => (0..3u64).prop_map(Op::Advance),
        ]
    }

    /// Every table agrees with every other.
    fn check(server: &Server, rooms: &Shared) {
        for (socket, state) in server.sockets.iter() {
            let session = server
                .sessions
                .get(&*state.sid)
                .expect("a socket outlived its session");
            assert_eq!(session.sockets.get(&state.namespace), Some(socket));
            let listed = server
                .by_namespace
                .get(&*state.namespace)
                .is_some_and(|sockets| sockets.contains(socket));
            assert_eq!(
                listed, state.connected,
                "by_namespace and the socket disagree"
            );
            assert!(
                state.next_ack > state.acks.keys().copied().max().unwrap_or(0)
                    || state.acks.is_empty()
            );
            if !state.connected {
                assert!(state.acks.is_empty());
            }
            for (id, key) in &state.acks {
                if let Some(key) = key {
                    assert!(
                        matches!(server.deadlines.get(key), Some(Deadline::Ack(s, i)) if s == socket && i == id)
                    );
                }
            }
        }
        for (sid, session) in server.sessions.iter() {
            for (namespace, socket) in &session.sockets {
                let state = server
                    .sockets
                    .get(socket)
                    .expect("a session lists a gone socket");
                assert_eq!((&*state.sid, &state.namespace), (&**sid, namespace));
            }
            if let Some(key) = session.connect_deadline {
                assert!(
                    matches!(server.deadlines.get(&key), Some(Deadline::Connect(s)) if s == sid)
                );
            }
        }
        for (namespace, sockets) in &server.by_namespace {
            assert!(!sockets.is_empty(), "an empty namespace table");
            for socket in sockets.iter() {
                let state = server.sockets.get(socket).expect("a gone socket listed");
                assert_eq!(&*state.namespace, namespace);
            }
        }
        for (key, deadline) in &server.deadlines {
            match deadline {
                Deadline::Connect(sid) => {
                    let session = server
                        .sessions
                        .get(sid)
                        .expect("a deadline of a gone session");
                    assert_eq!(session.connect_deadline, Some(*key));
                }
                Deadline::Ack(socket, id) => {
                    let state = server
                        .sockets
                        .get(socket)
                        .expect("a deadline of a gone socket");
                    assert_eq!(state.acks.get(id), Some(&Some(*key)));
                }
            }
        }
        let local = rooms.0.lock().unwrap();
        for (namespace, sockets) in &local.by_socket {
            assert!(!sockets.is_empty());
            for (socket, joined) in sockets.iter() {
                assert!(!joined.is_empty());
                let state = server.sockets.get(socket).expect("a gone socket in a room");
                assert!(state.connected && &*state.namespace == namespace);
                for room in joined {
                    assert!(local.rooms[namespace][room].contains(socket));
                }
            }
        }
        for (namespace, rooms) in &local.rooms {
            assert!(!rooms.is_empty());
            for (room, members) in rooms {
                assert!(!members.is_empty());
                for socket in members.iter() {
                    assert!(local.by_socket[namespace][socket].contains(room));
                }
            }
        }
    }

    fn target(ns: usize, to: Option<usize>, except: Option<usize>) -> BroadcastTarget {
        BroadcastTarget {
            rooms: to.map(|r| ROOMS[r].to_owned()).into_iter().collect(),
            except: except.map(|r| ROOMS[r].to_owned()).into_iter().collect(),
            ..BroadcastTarget::namespace(NAMESPACES[ns])
        }
    }

    fn run(ops: Vec<Op>) {
        let rooms = Shared::default();
        let mut server = Server::with_rooms(
            ServerConfig {
                connect_timeout: Duration::from_secs(2),
                max_namespaces_per_session: 3,
                max_rooms_per_socket: 3,
                ..ServerConfig::default()
            },
            Box::new(rooms.clone()),
        );
        server.add_namespace("/");
        server.add_namespace("/admin");
        server.add_dynamic_namespace(Box::new(|ns: &str| ns.starts_with("/room-")));
        let t0 = Instant::now();
        let mut now = t0;
        let mut seen: Vec<SocketId> = Vec::new();
        // Accepted sockets, those that left, and the acks asked, open.
        let mut accepted = HashSet::new();
        let mut left = HashSet::new();
        let mut asked: HashSet<(SocketId, u64)> = HashSet::new();
        let pick = |seen: &Vec<SocketId>, i: usize| seen.get(i % seen.len().max(1)).cloned();
        for op in ops {
            match op {
                Op::Open(s, v3) => {
                    server.handle_open(SIDS[s], if v3 { Eio::V3 } else { Eio::V4 }, now)
                }
                Op::Close(s) => server.handle_close(SIDS[s], engineio::CloseReason::TransportClose),
                Op::Text(s, p) => {
                    server.handle_message(SIDS[s], MessageData::Text(PACKETS[p].into()), now)
                }
                Op::Binary(s) => server.handle_message(
                    SIDS[s],
                    MessageData::Binary(bytes::Bytes::from_static(&[1, 2])),
                    now,
                ),
                Op::Accept(i) => {
                    if let Some(socket) = pick(&seen, i)
                        && server.accept(&socket).is_ok()
                    {
                        accepted.insert(socket);
                    }
                }
                Op::Reject(i) => {
                    if let Some(socket) = pick(&seen, i) {
                        server.reject(&socket, "no", None);
                    }
                }
                Op::Join(i, r) => {
                    if let Some(socket) = pick(&seen, i) {
                        let _ = server.join(&socket, ROOMS[r]);
                    }
                }
                Op::Leave(i, r) => {
                    if let Some(socket) = pick(&seen, i) {
                        let _ = server.leave(&socket, ROOMS[r]);
                    }
                }
                Op::Disconnect(i) => {
                    if let Some(socket) = pick(&seen, i) {
                        server.disconnect(&socket);
                    }
                }
                Op::EmitAck(i, t) => {
                    if let Some(socket) = pick(&seen, i) {
                        let timeout = Duration::from_secs(t);
                        if let Ok(id) = server.emit_with_ack(&socket, "e", &(), timeout, now) {
                            assert!(asked.insert((socket, id)), "an ack id in use given again");
                        }
                    }
                }
                Op::BroadcastAck(n, to, except, forever) => {
                    let timeout = if forever {
                        Duration::MAX
                    } else {
                        Duration::from_secs(1)
                    };
                    let target = target(n, to, except);
                    let expected = server.members(&target);
                    let (id, members) = server
                        .broadcast_with_ack(&target, "e", &(), timeout, now)
                        .unwrap();
                    assert_eq!(members, expected);
                    for socket in members {
                        assert!(asked.insert((socket, id)), "an ack id in use given again");
                    }
                }
                Op::Broadcast(n, to, except) => {
                    let target = target(n, to, except);
                    let packet = encode_event(NAMESPACES[n], "e", &(), None).unwrap();
                    let expected = server.members(&target).len();
                    assert_eq!(server.broadcast(&target, &packet), expected);
                }
                Op::CloseSession(s) => server.close_session(SIDS[s]),
                Op::Advance(secs) => {
                    now += Duration::from_secs(secs);
                    server.handle_timeout(now);
                }
            }
            while let Some(event) = server.poll_event() {
                match event {
                    ServerEvent::Connect { socket, .. } => seen.push(socket),
                    ServerEvent::Disconnect { socket, .. } => {
                        assert!(accepted.contains(&socket), "a Disconnect for no connection");
                        assert!(left.insert(socket.clone()), "two Disconnects");
                        assert!(!asked.iter().any(|(s, _)| *s == socket), "an ack left open");
                    }
                    ServerEvent::Ack { socket, id, .. }
                    | ServerEvent::AckFailed { socket, id, .. } => {
                        assert!(
                            asked.remove(&(socket, id)),
                            "an ack settled twice, or unasked"
                        );
                    }
                    ServerEvent::Event { socket, .. } => {
                        assert!(accepted.contains(&socket) && !left.contains(&socket));
                    }
                }
            }
            while server.poll_transmit().is_some() {}
            check(&server, &rooms);
        }
        // Everything closed: nothing left behind.
        for sid in SIDS {
            server.handle_close(sid, engineio::CloseReason::TransportClose);
        }
        while let Some(event) = server.poll_event() {
            match event {
                ServerEvent::Disconnect { socket, .. } => assert!(left.insert(socket)),
                ServerEvent::AckFailed { socket, id, .. } => assert!(asked.remove(&(socket, id))),
                other => panic!("{other:?}"),
            }
        }
        assert!(asked.is_empty(), "acks never settled");
        assert_eq!(accepted, left, "accepted sockets that never left");
        check(&server, &rooms);
        assert_eq!(server.sockets.len(), 0);
        assert_eq!(server.deadlines.len(), 0);
        assert!(server.by_namespace.is_empty());
        let local = rooms.0.lock().unwrap();
        assert!(local.rooms.is_empty() && local.by_socket.is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 512,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]
        #[test]
        fn any_sequence_keeps_every_table_consistent(ops in proptest::collection::vec(op(), 0..60)) {
            run(ops);
        }
    }
}
