//! Socket.IO packets: their kinds and payloads, the encoder, the
//! [`Decoder`] that reassembles binary packets from Engine.IO messages, and
//! the errors of both.
//!
//! Wire form (each packet is one Engine.IO text message, followed by its
//! attachments as Engine.IO binary messages):
//!
//! ```text
//! <kind>[<attachments>-][<namespace>,][<ack id>][<JSON payload>]
//! ```
//!
//! | part | rule |
//! | --- | --- |
//! | kind | one digit, `0`-`6` ([`PacketKind`]) |
//! | attachments | BINARY_EVENT and BINARY_ACK only: a count, then `-` (socket.io 2.x sends `0` for data it was told is binary) |
//! | namespace | only when not `/`: starts with `/`, runs to the first `,` (or the end of the message) |
//! | ack id | decimal digits |
//! | payload | JSON; binary values replaced by `{"_placeholder":true,"num":N}` |

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::marker::PhantomData;

use bytes::Bytes;
use serde::Serialize;
use serde::de::value::SeqAccessDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer as _, IgnoredAny, SeqAccess, Visitor};

use super::ProtocolVersion;
use super::binary::{BinDe, BinSeed, BinSeq, BinSer, Collected, PlaceholderError, Reading, Walk};
use crate::engineio::MessageData;
use crate::ws::Text;

/// The main namespace, `/`: left out of encoded packets.
pub const DEFAULT_NAMESPACE: &str = "/";

/// Event names the official JavaScript implementations refuse: they have a
/// meaning of their own there (Node's `EventEmitter`, the client's
/// connection events). The official decoder (socket.io-parser 4) closes the
/// connection on an EVENT named so; [`encode_event`] refuses them, and the
/// [`Decoder`] does unless [`DecoderConfig::refuse_reserved_events`] is off.
pub const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// Whether `name` is one of the [`RESERVED_EVENTS`].
pub fn is_reserved_event(name: &str) -> bool {
    RESERVED_EVENTS.contains(&name)
}

/// The type of a packet, its first character on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// `0`: a client asks to join a namespace (v5: with an optional auth
    /// object; v4: with an optional query in the namespace); the server
    /// accepts (v5: with `{"sid": ...}`).
    Connect,
    /// `1`: one side leaves a namespace. No payload.
    Disconnect,
    /// `2`: an event: `["name", ...args]`, with an ack id when the sender
    /// wants an answer.
    Event,
    /// `3`: the answer to an event: `[...args]` and the event's ack id.
    Ack,
    /// `4`: the server refuses a namespace connection (v5:
    /// `{"message": ..., "data": ...}`; v4, where it is called ERROR: a
    /// string, or any JSON value).
    ConnectError,
    /// `5`: an event with binary attachments.
    BinaryEvent,
    /// `6`: an ack with binary attachments.
    BinaryAck,
}

impl PacketKind {
    /// The kind with number `n` (0-6).
    ///
    /// ```
    /// use switchboard_core::socketio::PacketKind;
    /// assert_eq!(PacketKind::from_u8(5), Some(PacketKind::BinaryEvent));
    /// assert_eq!(PacketKind::from_u8(7), None);
    /// ```
    pub const fn from_u8(n: u8) -> Option<Self> {
        Some(match n {
            0 => PacketKind::Connect,
            1 => PacketKind::Disconnect,
            2 => PacketKind::Event,
            3 => PacketKind::Ack,
            4 => PacketKind::ConnectError,
            5 => PacketKind::BinaryEvent,
            6 => PacketKind::BinaryAck,
            _ => return None,
        })
    }

    /// The kind whose digit is `c` (`'0'`-`'6'`).
    pub const fn from_char(c: char) -> Option<Self> {
        if c.is_ascii_digit() {
            PacketKind::from_u8(c as u8 - b'0')
        } else {
            None
        }
    }

    /// The kind's number (0-6).
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// The kind's digit (`'0'`-`'6'`).
    pub const fn as_char(self) -> char {
        (b'0' + self as u8) as char
    }

    /// Whether packets of this kind carry binary attachments.
    pub const fn is_binary(self) -> bool {
        matches!(self, PacketKind::BinaryEvent | PacketKind::BinaryAck)
    }

    /// Whether this is an event, binary or not.
    pub const fn is_event(self) -> bool {
        matches!(self, PacketKind::Event | PacketKind::BinaryEvent)
    }

    /// Whether this is an ack, binary or not.
    pub const fn is_ack(self) -> bool {
        matches!(self, PacketKind::Ack | PacketKind::BinaryAck)
    }

    /// The binary form of an event or ack (`Event` to `BinaryEvent`, `Ack`
    /// to `BinaryAck`); other kinds unchanged.
    pub const fn to_binary(self) -> Self {
        match self {
            PacketKind::Event => PacketKind::BinaryEvent,
            PacketKind::Ack => PacketKind::BinaryAck,
            other => other,
        }
    }

    /// The plain form of a binary event or ack (`BinaryEvent` to `Event`,
    /// `BinaryAck` to `Ack`); other kinds unchanged.
    pub const fn to_plain(self) -> Self {
        match self {
            PacketKind::BinaryEvent => PacketKind::Event,
            PacketKind::BinaryAck => PacketKind::Ack,
            other => other,
        }
    }
}

/// JSON text, validated once, held in shared [`Bytes`]: a decoded payload
/// is a slice of the received message, read (with serde) only when and as
/// the application asks, and sent again without being re-encoded.
///
/// ```
/// use switchboard_core::socketio::RawJson;
/// let json = RawJson::new(r#"{"token":"123"}"#).unwrap();
/// assert_eq!(json.as_str(), r#"{"token":"123"}"#);
/// let auth: std::collections::HashMap<&str, &str> = json.deserialize().unwrap();
/// assert_eq!(auth["token"], "123");
/// assert!(RawJson::new("{").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RawJson(Text);

impl RawJson {
    /// Checks that `json` is one JSON value (surrounding whitespace
    /// allowed) that a [`serde_json::Value`] can hold (numbers within the
    /// range of `f64`, no lone surrogate escapes), its arrays and objects
    /// nested at most [`MAX_JSON_DEPTH`] deep, and wraps it.
    pub fn new(json: impl Into<Text>) -> Result<Self, serde_json::Error> {
        let json = json.into();
        let mut de = serde_json::Deserializer::from_str(json.as_str());
        <Checked as de::Deserialize>::deserialize(&mut de)?;
        de.end()?;
        if !nesting_within_limit(json.as_str()) {
            return Err(de::Error::custom(TOO_DEEP));
        }
        Ok(RawJson(json))
    }

    /// Serializes `value` as plain JSON (a binary value becomes an array of
    /// numbers; binary attachments are made by [`Packet::event`],
    /// [`Packet::ack`] and [`encode_event`]). A value nesting deeper than
    /// [`MAX_JSON_DEPTH`] is an error, as with [`RawJson::new`], so that
    /// [`RawJson::to_value`] can read it back.
    ///
    /// ```
    /// use switchboard_core::socketio::RawJson;
    /// let json = RawJson::from_serialize(&serde_json::json!({"sid": "abc"})).unwrap();
    /// assert_eq!(json.as_str(), r#"{"sid":"abc"}"#);
    /// ```
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        let json = serde_json::to_vec(value)?;
        let json = Text::from_validated(json.into());
        if !nesting_within_limit(json.as_str()) {
            return Err(de::Error::custom(TOO_DEEP));
        }
        Ok(RawJson(json))
    }

    /// Wraps text known to be one JSON value.
    fn from_valid(text: Text) -> Self {
        RawJson(text)
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The JSON text, shareable.
    pub fn as_text(&self) -> &Text {
        &self.0
    }

    /// Gives the JSON text up.
    pub fn into_text(self) -> Text {
        self.0
    }

    /// Reads the JSON as `T` (placeholders are left as they are: see
    /// [`Packet::data`] to resolve them).
    pub fn deserialize<'a, T: de::Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.as_str())
    }

    /// Reads the JSON as a dynamic [`serde_json::Value`].
    pub fn to_value(&self) -> serde_json::Value {
        self.deserialize()
            .expect("RawJson holds one valid JSON value")
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawJson({})", self.as_str())
    }
}

impl fmt::Display for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One Socket.IO packet.
///
/// A decoded packet keeps its payload as the received JSON text
/// ([`RawJson`]) and its attachments as the received [`Bytes`]: nothing is
/// parsed into values until the application reads them ([`Packet::args`],
/// [`Packet::arg`], [`Packet::data`], [`Packet::event_name`]), and a packet
/// can be encoded again (forwarded, broadcast) without touching its JSON.
///
/// The payload of a binary packet keeps its placeholders
/// (`{"_placeholder":true,"num":N}`): `attachments[N]` is the binary value
/// in that place, and the typed readers put it there.
///
/// ```
/// use switchboard_core::socketio::{Packet, PacketKind, ProtocolVersion};
/// let packet = Packet::event("/admin", "project:delete", &(123,), Some(456)).unwrap();
/// let encoded = packet.encode(ProtocolVersion::V5);
/// assert_eq!(encoded.text, r#"2/admin,456["project:delete",123]"#);
/// assert_eq!(packet.event_name().as_deref(), Some("project:delete"));
/// let (id,): (u32,) = packet.args().unwrap();
/// assert_eq!(id, 123);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The packet's kind. On decoding, as it was sent (binary kinds keep
    /// their attachments). On encoding, an event or ack is sent as its
    /// binary kind exactly when `attachments` is not empty, whichever of
    /// the two forms `kind` names.
    pub kind: PacketKind,
    /// The namespace: `/` (the main one, [`DEFAULT_NAMESPACE`]) or a path
    /// starting with `/`, without any `,` (which would end it on the wire).
    /// In protocol v4, the query of a CONNECT's namespace
    /// (`/admin?token=1`) is not part of it: it is in `data`. An empty
    /// namespace is encoded like `/`.
    pub namespace: Text,
    /// The ack id: on an event that wants an answer, and on every ack.
    pub id: Option<u64>,
    /// The payload. Every kind's payload is an object, an array or a string
    /// (a v4 ERROR's may be any JSON value); a payload starting with a digit
    /// would be read back as part of the ack id.
    pub data: Option<RawJson>,
    /// The binary attachments of a binary event or ack, in placeholder
    /// order. Ignored on encoding other kinds.
    pub attachments: Vec<Bytes>,
}

impl Packet {
    /// A packet of `kind` in `namespace`, without payload, ack id or
    /// attachments.
    pub fn new(kind: PacketKind, namespace: impl Into<Text>) -> Self {
        Packet {
            kind,
            namespace: namespace.into(),
            id: None,
            data: None,
            attachments: Vec::new(),
        }
    }

    /// A CONNECT: a client asks to join `namespace`, with an optional auth
    /// object (in protocol v4, encoded as the namespace's query).
    pub fn connect(namespace: impl Into<Text>, auth: Option<RawJson>) -> Self {
        Packet {
            data: auth,
            ..Packet::new(PacketKind::Connect, namespace)
        }
    }

    /// The server's CONNECT accepting a client into `namespace` with the
    /// socket id `sid`: `{"sid": ...}` in protocol v5; no payload in v4.
    ///
    /// ```
    /// use switchboard_core::socketio::{Packet, ProtocolVersion::*};
    /// assert_eq!(Packet::connect_reply("/admin", "oSO0OpakMV_3jnilAAAA", V5).encode(V5).text,
    ///            r#"0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}"#);
    /// assert_eq!(Packet::connect_reply("/admin", "x", V4).encode(V4).text, "0/admin,");
    /// ```
    pub fn connect_reply(namespace: impl Into<Text>, sid: &str, version: ProtocolVersion) -> Self {
        let data = match version {
            ProtocolVersion::V4 => None,
            ProtocolVersion::V5 => {
                let mut json = Vec::with_capacity(sid.len() + 10);
                json.extend_from_slice(b"{\"sid\":");
                write_json_str(&mut json, sid);
                json.push(b'}');
                Some(RawJson::from_valid(Text::from_validated(json.into())))
            }
        };
        Packet {
            data,
            ..Packet::new(PacketKind::Connect, namespace)
        }
    }

    /// A DISCONNECT from `namespace`.
    pub fn disconnect(namespace: impl Into<Text>) -> Self {
        Packet::new(PacketKind::Disconnect, namespace)
    }

    /// A CONNECT_ERROR refusing `namespace`: in protocol v5,
    /// `{"message": message, "data": data}` (`data` left out when `None`);
    /// in v4, `data` when given and not a value JavaScript takes for false
    /// (`null`, `false`, `0`, `""`), else `message` as a JSON string, as
    /// Node's server writes `err.data || err.message` to v2 clients.
    ///
    /// ```
    /// use switchboard_core::socketio::{Packet, ProtocolVersion::*};
    /// let refusal = Packet::connect_error("/admin", "not authorized", None, V5);
    /// assert_eq!(refusal.encode(V5).text, r#"4/admin,{"message":"not authorized"}"#);
    /// let refusal = Packet::connect_error("/admin", "not authorized", None, V4);
    /// assert_eq!(refusal.encode(V4).text, r#"4/admin,"not authorized""#);
    /// ```
    pub fn connect_error(
        namespace: impl Into<Text>,
        message: &str,
        data: Option<&RawJson>,
        version: ProtocolVersion,
    ) -> Self {
        let payload = match (version, data) {
            (ProtocolVersion::V4, Some(data)) if !is_falsy(data.as_str()) => data.clone(),
            (ProtocolVersion::V4, _) => {
                let mut json = Vec::with_capacity(message.len() + 2);
                write_json_str(&mut json, message);
                RawJson::from_valid(Text::from_validated(json.into()))
            }
            (ProtocolVersion::V5, data) => {
                let extra = data.map_or(0, |d| d.as_str().len() + 8);
                let mut json = Vec::with_capacity(message.len() + extra + 14);
                json.extend_from_slice(b"{\"message\":");
                write_json_str(&mut json, message);
                if let Some(data) = data {
                    json.extend_from_slice(b",\"data\":");
                    json.extend_from_slice(data.as_str().as_bytes());
                }
                json.push(b'}');
                RawJson::from_valid(Text::from_validated(json.into()))
            }
        };
        Packet {
            data: Some(payload),
            ..Packet::new(PacketKind::ConnectError, namespace)
        }
    }

    /// An EVENT named `event` with `args` (see [`encode_event`] for how
    /// `args` become arguments), asking for an ack when `id` is set. Binary
    /// values in `args` become attachments, and the packet a BINARY_EVENT.
    pub fn event<T: Serialize + ?Sized>(
        namespace: impl Into<Text>,
        event: &str,
        args: &T,
        id: Option<u64>,
    ) -> Result<Self, EncodeError> {
        check_event_name(event)?;
        let mut json = Vec::with_capacity(event.len() + 64);
        let attachments = write_args(&mut json, Some(event), args)?;
        Ok(Packet {
            kind: binary_if(PacketKind::Event, &attachments),
            namespace: namespace.into(),
            id,
            data: Some(RawJson::from_valid(Text::from_validated(json.into()))),
            attachments,
        })
    }

    /// An ACK answering the event with ack id `id` with `args` (see
    /// [`encode_event`] for how `args` become arguments). Binary values in
    /// `args` become attachments, and the packet a BINARY_ACK.
    pub fn ack<T: Serialize + ?Sized>(
        namespace: impl Into<Text>,
        id: u64,
        args: &T,
    ) -> Result<Self, EncodeError> {
        let mut json = Vec::with_capacity(64);
        let attachments = write_args(&mut json, None, args)?;
        Ok(Packet {
            kind: binary_if(PacketKind::Ack, &attachments),
            namespace: namespace.into(),
            id: Some(id),
            data: Some(RawJson::from_valid(Text::from_validated(json.into()))),
            attachments,
        })
    }

    /// The name of an event (the first element of its payload); `None` for
    /// other kinds, or a payload that is not an event's. Borrowed from the
    /// payload unless the name holds JSON escapes; reads only the name.
    pub fn event_name(&self) -> Option<Cow<'_, str>> {
        if !self.kind.is_event() {
            return None;
        }
        let json = self.data.as_ref()?.as_str();
        let rest = json.trim_start_matches(JSON_WHITESPACE).strip_prefix('[')?;
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<EventName<'_>>();
        match stream.next()? {
            Ok(EventName(name)) => Some(name),
            Err(_) => None,
        }
    }

    /// Reads the arguments as `T`: an event's payload after its name, any
    /// other packet's whole payload (which must be an array), as a
    /// sequence. `T` is anything read from a JSON array: a tuple (`(T,)`
    /// for one argument), a `Vec`, a `serde_json::Value`, a struct read
    /// positionally. Extra arguments are ignored; binary values
    /// ([`Binary`](super::Binary), or any type read from bytes) are taken
    /// from the attachments. No payload reads as no arguments.
    ///
    /// ```
    /// use switchboard_core::socketio::{Binary, Packet};
    /// let packet = Packet::event("/", "upload", &("a.txt", Binary::from(vec![1, 2])), None).unwrap();
    /// let (name, file): (String, Binary) = packet.args().unwrap();
    /// assert_eq!((name.as_str(), &file[..]), ("a.txt", &[1u8, 2][..]));
    /// let all: Vec<serde_json::Value> = packet.args().unwrap();
    /// assert_eq!(all.len(), 2);
    /// ```
    pub fn args<'a, T: de::Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        let json = self.data.as_ref().map_or("[]", RawJson::as_str);
        let _reading = Reading::start(&self.attachments);
        let mut de = serde_json::Deserializer::from_str(json);
        let value = de.deserialize_seq(AllArgs {
            skip: usize::from(self.kind.is_event()),
            attachments: &self.attachments,
            marker: PhantomData,
        })?;
        de.end()?;
        Ok(value)
    }

    /// Reads argument `index` (counted as in [`Packet::args`]) as `T`. A
    /// missing argument reads like JavaScript's `undefined`: as `None` into
    /// an `Option`, an error otherwise.
    ///
    /// ```
    /// use switchboard_core::socketio::Packet;
    /// let packet = Packet::event("/", "move", &(3, "left"), None).unwrap();
    /// assert_eq!(packet.arg::<&str>(1).unwrap(), "left");
    /// assert_eq!(packet.arg::<Option<i32>>(2).unwrap(), None);
    /// assert!(packet.arg::<i32>(2).is_err());
    /// ```
    pub fn arg<'a, T: de::Deserialize<'a>>(&'a self, index: usize) -> Result<T, serde_json::Error> {
        let json = self.data.as_ref().map_or("[]", RawJson::as_str);
        let _reading = Reading::start(&self.attachments);
        let mut de = serde_json::Deserializer::from_str(json);
        let value = de.deserialize_seq(NthArg {
            skip: usize::from(self.kind.is_event()).saturating_add(index),
            attachments: &self.attachments,
            marker: PhantomData::<T>,
        })?;
        de.end()?;
        match value {
            Some(value) => Ok(value),
            None => T::deserialize(de::value::UnitDeserializer::<serde_json::Error>::new()),
        }
    }

    /// Reads the whole payload as `T`, with binary values taken from the
    /// attachments; no payload reads as JSON `null` (so as `None` into an
    /// `Option`). For a CONNECT's auth, a CONNECT_ERROR's payload, or an
    /// event's array as a whole.
    pub fn data<'a, T: de::Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        let json = self.data.as_ref().map_or("null", RawJson::as_str);
        let _reading = Reading::start(&self.attachments);
        let mut de = serde_json::Deserializer::from_str(json);
        let value = T::deserialize(BinDe::new(&mut de, &self.attachments))?;
        de.end()?;
        Ok(value)
    }

    /// The reason of a CONNECT_ERROR, as the client reports it; `None` for
    /// other kinds.
    ///
    /// Protocol v5: a `{"message", "data"}` object (a bare string is taken
    /// as the message). Protocol v4: a string is the message; any other
    /// payload is the data, with an empty message.
    pub fn connect_error_data(&self, version: ProtocolVersion) -> Option<ConnectErrorData> {
        if self.kind != PacketKind::ConnectError {
            return None;
        }
        let value = self
            .data
            .as_ref()
            .map_or(serde_json::Value::Null, RawJson::to_value);
        Some(match (value, version) {
            (serde_json::Value::String(message), _) => ConnectErrorData {
                message,
                data: None,
            },
            (serde_json::Value::Object(mut object), ProtocolVersion::V5) => ConnectErrorData {
                message: match object.remove("message") {
                    Some(serde_json::Value::String(message)) => message,
                    _ => String::new(),
                },
                data: object.remove("data"),
            },
            (serde_json::Value::Null, _) => ConnectErrorData {
                message: String::new(),
                data: None,
            },
            (other, _) => ConnectErrorData {
                message: String::new(),
                data: Some(other),
            },
        })
    }

    /// Encodes the packet: the text message, then the attachments of a
    /// binary event or ack.
    ///
    /// In protocol v4, a CONNECT's payload (an object) is written as the
    /// query of its namespace (`0/admin?token=1,`), values that are not
    /// strings as their JSON text; any other payload of a v4 CONNECT is not
    /// sent.
    pub fn encode(&self, version: ProtocolVersion) -> Encoded {
        let binary = (self.kind.is_event() || self.kind.is_ack()) && !self.attachments.is_empty();
        let kind = if binary {
            self.kind.to_binary()
        } else {
            self.kind.to_plain()
        };
        let data = self.data.as_ref().map(RawJson::as_str);
        let mut out = Vec::with_capacity(16 + self.namespace.len() + data.map_or(0, str::len));
        if kind == PacketKind::Connect && version == ProtocolVersion::V4 {
            let query = data.map(query_from_json).unwrap_or_default();
            write_header(&mut out, kind, 0, &self.namespace, &query, self.id);
        } else {
            let count = if binary { self.attachments.len() } else { 0 };
            write_header(&mut out, kind, count, &self.namespace, "", self.id);
            if let Some(data) = data {
                out.extend_from_slice(data.as_bytes());
            }
        }
        Encoded {
            text: Text::from_validated(out.into()),
            attachments: if binary {
                self.attachments.clone()
            } else {
                Vec::new()
            },
        }
    }
}

/// The reason of a refused namespace connection (see
/// [`Packet::connect_error_data`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectErrorData {
    /// The message (`err.message` on the server); empty when none was sent.
    pub message: String,
    /// Extra data (`err.data` on the server).
    pub data: Option<serde_json::Value>,
}

/// An encoded packet: one Engine.IO text message, then one binary message
/// per attachment. Cheap to clone (shared buffers), so one encoding can go
/// to many sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The text message.
    pub text: Text,
    /// The binary messages to send right after `text`, in order.
    pub attachments: Vec<Bytes>,
}

impl Encoded {
    /// How many Engine.IO messages the packet takes.
    pub fn message_count(&self) -> usize {
        1 + self.attachments.len()
    }

    /// The Engine.IO messages, in sending order.
    pub fn into_messages(self) -> impl Iterator<Item = MessageData> {
        let text = std::iter::once(MessageData::Text(self.text));
        text.chain(self.attachments.into_iter().map(MessageData::Binary))
    }
}

/// Encodes an EVENT named `event` with `args` in `namespace`, asking for an
/// ack when `id` is set. The wire form is the same in protocols v4 and v5.
///
/// `args` become the event's arguments this way:
/// - a value that serializes as a JSON array (a tuple, a `Vec`, a slice, a
///   `serde_json::Value::Array`): its elements;
/// - `()`: no arguments;
/// - anything else (a struct, a map, a string, a number, `None`, ...): the
///   only argument. To send one array as one argument, wrap it: `(vec,)`.
///
/// Binary values anywhere in `args` ([`Binary`](super::Binary), or any
/// value that serializes as bytes) become placeholders and attachments, and
/// the packet a BINARY_EVENT. Without binary values, the packet is written
/// straight into one buffer: one allocation for a small payload. Note that
/// the official decoder refuses more than 10 attachments by default.
///
/// ```
/// use switchboard_core::socketio::{encode_event, Binary};
/// let hello = encode_event("/", "hey", "Jude", None).unwrap();
/// assert_eq!(hello.text, r#"2["hey","Jude"]"#);
/// let two = encode_event("/chat", "msg", &("hi", 2), Some(7)).unwrap();
/// assert_eq!(two.text, r#"2/chat,7["msg","hi",2]"#);
/// let bin = encode_event("/", "baz", &Binary::from(vec![1, 2, 3, 4]), None).unwrap();
/// assert_eq!(bin.text, r#"51-["baz",{"_placeholder":true,"num":0}]"#);
/// assert_eq!(bin.attachments, [vec![1u8, 2, 3, 4]]);
/// ```
pub fn encode_event<T: Serialize + ?Sized>(
    namespace: &str,
    event: &str,
    args: &T,
    id: Option<u64>,
) -> Result<Encoded, EncodeError> {
    check_event_name(event)?;
    let mut out = Vec::with_capacity(128 + namespace.len() + event.len());
    write_header(&mut out, PacketKind::Event, 0, namespace, "", id);
    let attachments = write_args(&mut out, Some(event), args)?;
    Ok(finish(out, PacketKind::Event, attachments))
}

/// Encodes an ACK with `args` answering the event with ack id `id` in
/// `namespace` (a BINARY_ACK when `args` hold binary values). `args` become
/// arguments as with [`encode_event`].
///
/// ```
/// use switchboard_core::socketio::encode_ack;
/// assert_eq!(encode_ack("/", 12, &()).unwrap().text, "312[]");
/// assert_eq!(encode_ack("/admin", 13, "bar").unwrap().text, r#"3/admin,13["bar"]"#);
/// ```
pub fn encode_ack<T: Serialize + ?Sized>(
    namespace: &str,
    id: u64,
    args: &T,
) -> Result<Encoded, EncodeError> {
    let mut out = Vec::with_capacity(64 + namespace.len());
    write_header(&mut out, PacketKind::Ack, 0, namespace, "", Some(id));
    let attachments = write_args(&mut out, None, args)?;
    Ok(finish(out, PacketKind::Ack, attachments))
}

/// Event or ack data that could not be encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The arguments failed to serialize (e.g. a map with keys that are
    /// not strings, or a `Serialize` impl that failed).
    #[error("cannot serialize the arguments: {0}")]
    Json(#[from] serde_json::Error),
    /// An event named like one of the [`RESERVED_EVENTS`], which the
    /// official clients refuse by closing the connection.
    #[error("{0:?} is a reserved event name")]
    ReservedEventName(String),
}

fn check_event_name(event: &str) -> Result<(), EncodeError> {
    if is_reserved_event(event) {
        return Err(EncodeError::ReservedEventName(event.to_owned()));
    }
    Ok(())
}

fn binary_if(kind: PacketKind, attachments: &[Bytes]) -> PacketKind {
    if attachments.is_empty() {
        kind
    } else {
        kind.to_binary()
    }
}

/// The whitespace JSON allows around values.
const JSON_WHITESPACE: [char; 4] = [' ', '\t', '\n', '\r'];

/// Whether the JSON value `json` is one JavaScript takes for false: `null`,
/// `false`, a number equal to zero, or the empty string.
fn is_falsy(json: &str) -> bool {
    match json.trim_matches(JSON_WHITESPACE) {
        "null" | "false" | "\"\"" => true,
        number if number.starts_with(|c: char| c == '-' || c.is_ascii_digit()) => {
            number.parse::<f64>().is_ok_and(|n| n == 0.0)
        }
        _ => false,
    }
}

/// Writes `<kind>[<count>-][<namespace>[?<query>],][<id>]`.
fn write_header(
    out: &mut Vec<u8>,
    kind: PacketKind,
    attachments: usize,
    namespace: &str,
    query: &str,
    id: Option<u64>,
) {
    out.push(b'0' + kind.as_u8());
    if attachments > 0 {
        write_u64(out, attachments as u64);
        out.push(b'-');
    }
    let namespace = if namespace.is_empty() {
        DEFAULT_NAMESPACE
    } else {
        namespace
    };
    if namespace != DEFAULT_NAMESPACE || !query.is_empty() {
        out.extend_from_slice(namespace.as_bytes());
        if !query.is_empty() {
            out.push(b'?');
            out.extend_from_slice(query.as_bytes());
        }
        out.push(b',');
    }
    if let Some(id) = id {
        write_u64(out, id);
    }
}

/// Appends `n` in decimal.
fn write_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// Appends `s` as a JSON string.
fn write_json_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("a string always serializes into a Vec");
}

/// Appends the arguments array (`["event",...args]`, or `[...args]` for an
/// ack) and returns the attachments of the binary values in it.
fn write_args<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    event: Option<&str>,
    args: &T,
) -> Result<Vec<Bytes>, serde_json::Error> {
    out.push(b'[');
    if let Some(event) = event {
        write_json_str(out, event);
        // Most events carry one argument: write its comma in advance.
        out.push(b',');
    }
    let start = out.len();
    let collected = RefCell::new(Collected::default());
    args.serialize(BinSer::top(
        &mut serde_json::Serializer::new(&mut *out),
        &collected,
    ))?;
    let collected = collected.into_inner();
    if collected.top_unit || out[start..] == *b"[]" {
        // No arguments.
        out.truncate(start);
        if event.is_some() {
            out.pop();
        }
        out.push(b']');
    } else if out[start] == b'[' {
        // The arguments' own array: its `]` closes ours.
        out.remove(start);
    } else {
        out.push(b']');
    }
    Ok(collected.attachments)
}

/// Makes the text of an event or ack written with
/// [`write_header`]`(kind, 0, ..)` and [`write_args`] binary when it has
/// attachments.
fn finish(mut out: Vec<u8>, kind: PacketKind, attachments: Vec<Bytes>) -> Encoded {
    if !attachments.is_empty() {
        out[0] = b'0' + kind.to_binary().as_u8();
        let mut count = Vec::with_capacity(8);
        write_u64(&mut count, attachments.len() as u64);
        count.push(b'-');
        out.splice(1..1, count);
    }
    Encoded {
        text: Text::from_validated(out.into()),
        attachments,
    }
}

/// The query a v4 CONNECT's object payload is sent as: `key=value` pairs
/// joined by `&`, percent-encoded as `encodeURIComponent` does.
fn query_from_json(json: &str) -> String {
    let Ok(serde_json::Value::Object(_)) = serde_json::from_str::<serde_json::Value>(json) else {
        return String::new();
    };
    // Read again in document order (serde_json's map is sorted).
    let pairs: OrderedPairs = serde_json::from_str(json).unwrap_or_default();
    let mut query = String::new();
    for (key, value) in pairs.0 {
        if !query.is_empty() {
            query.push('&');
        }
        percent_encode(&mut query, &key);
        query.push('=');
        match value {
            serde_json::Value::String(value) => percent_encode(&mut query, &value),
            other => percent_encode(&mut query, &other.to_string()),
        }
    }
    query
}

/// An object's entries in document order.
#[derive(Default)]
struct OrderedPairs(Vec<(String, serde_json::Value)>);

impl<'de> de::Deserialize<'de> for OrderedPairs {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PairsVisitor;
        impl<'de> Visitor<'de> for PairsVisitor {
            type Value = OrderedPairs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<OrderedPairs, A::Error> {
                let mut pairs = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    pairs.push(entry);
                }
                Ok(OrderedPairs(pairs))
            }
        }
        deserializer.deserialize_map(PairsVisitor)
    }
}

/// Appends `s` percent-encoded, keeping what `encodeURIComponent` keeps.
fn percent_encode(out: &mut String, s: &str) {
    for &byte in s.as_bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(byte >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(byte & 15)]));
        }
    }
}

/// The value of a hex digit.
fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Decodes one `application/x-www-form-urlencoded` component as
/// `URLSearchParams` does: `+` is a space, `%XX` a byte (kept literally
/// when malformed), invalid UTF-8 replaced.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let high = bytes.get(i + 1).copied().and_then(hex_value);
                let low = bytes.get(i + 2).copied().and_then(hex_value);
                if let (Some(high), Some(low)) = (high, low) {
                    out.push((high << 4) | low);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A v4 CONNECT's namespace query as a JSON object of strings, as Node's
/// server reads it into the handshake's auth (later duplicates win, in the
/// first one's place). Linear in the query's size: keys are chosen by the
/// peer, so they are found again through a (SipHash) map, not a scan.
fn query_to_json(query: &str) -> RawJson {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut places: HashMap<String, usize> = HashMap::new();
    for part in query.split('&').filter(|part| !part.is_empty()) {
        let (key, value) = part.split_once('=').unwrap_or((part, ""));
        let (key, value) = (percent_decode(key), percent_decode(value));
        match places.entry(key) {
            Entry::Occupied(place) => pairs[*place.get()].1 = value,
            Entry::Vacant(place) => {
                pairs.push((place.key().clone(), value));
                place.insert(pairs.len() - 1);
            }
        }
    }
    let mut json = Vec::with_capacity(query.len() + 8);
    json.push(b'{');
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            json.push(b',');
        }
        write_json_str(&mut json, key);
        json.push(b':');
        write_json_str(&mut json, value);
    }
    json.push(b'}');
    RawJson::from_valid(Text::from_validated(json.into()))
}

/// An event's name, borrowed from the payload when it has no escapes.
struct EventName<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for EventName<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(NameVisitor).and_then(|name| {
            name.map(EventName)
                .ok_or_else(|| de::Error::custom("event name is not a string"))
        })
    }
}

/// Reads a value as a string, or `None` (skipping it) when it is not one.
struct NameVisitor;

impl<'de> DeserializeSeed<'de> for NameVisitor {
    type Value = Option<Cow<'de, str>>;
    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NameVisitor {
    type Value = Option<Cow<'de, str>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event name")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v)))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_seq(seq).map(|_| None)
    }
    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_map(map).map(|_| None)
    }
}

/// Reads the arguments (after `skip` elements) as one `T`.
struct AllArgs<'a, T> {
    skip: usize,
    attachments: &'a [Bytes],
    marker: PhantomData<T>,
}

impl<'a, T: de::Deserialize<'a>> Visitor<'a> for AllArgs<'a, T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of arguments")
    }

    fn visit_seq<A: SeqAccess<'a>>(self, mut seq: A) -> Result<T, A::Error> {
        for _ in 0..self.skip {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
        }
        let value = T::deserialize(SeqAccessDeserializer::new(BinSeq::new(
            &mut seq,
            self.attachments,
        )))?;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(value)
    }
}

/// Reads the element after `skip` others as a `T`, if there is one.
struct NthArg<'a, T> {
    skip: usize,
    attachments: &'a [Bytes],
    marker: PhantomData<T>,
}

impl<'a, T: de::Deserialize<'a>> Visitor<'a> for NthArg<'a, T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of arguments")
    }

    fn visit_seq<A: SeqAccess<'a>>(self, mut seq: A) -> Result<Option<T>, A::Error> {
        for _ in 0..self.skip {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(None);
            }
        }
        let value = seq.next_element_seed(BinSeed::new(PhantomData::<T>, self.attachments))?;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(value)
    }
}

// ---------------------------------------------------------------------------
// Decoding.

/// Settings of a [`Decoder`].
///
/// ```
/// use switchboard_core::socketio::DecoderConfig;
/// let config = DecoderConfig { max_attachments: 64, ..DecoderConfig::default() };
/// assert!(config.refuse_reserved_events);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderConfig {
    /// The most attachments one packet may announce (default 10, the
    /// official parser's `maxAttachments`). The decoder holds at most this
    /// many binary messages at a time, each bounded by Engine.IO's message
    /// size limit.
    pub max_attachments: usize,
    /// Refuse events named like one of the [`RESERVED_EVENTS`] (default
    /// on, as the official parser 4 does; the v4-era parser of socket.io
    /// 2.x took them).
    pub refuse_reserved_events: bool,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            max_attachments: 10,
            refuse_reserved_events: true,
        }
    }
}

/// How many attachments a pending packet has room for before they come,
/// whatever its count (the default limit).
const PREALLOCATED_ATTACHMENTS: usize = 10;

/// Turns the Engine.IO messages of one session into Socket.IO packets.
///
/// A text message is a packet, complete unless it is a binary event or ack
/// announcing attachments: those wait for exactly as many binary messages
/// as they announce, which become their [`attachments`](Packet::attachments)
/// in order. Every placeholder in their payload is checked against that
/// count as soon as the text arrives.
///
/// On an error the decoder drops any partial packet and expects a new one;
/// a server closes the session (see [`DecodeError`]).
///
/// ```
/// use switchboard_core::engineio::MessageData;
/// use switchboard_core::socketio::{Decoder, DecoderConfig, PacketKind, ProtocolVersion};
/// use bytes::Bytes;
///
/// let mut decoder = Decoder::new(ProtocolVersion::V5, DecoderConfig::default());
/// let packet = decoder.receive(MessageData::Text(r#"2["foo"]"#.into())).unwrap().unwrap();
/// assert_eq!(packet.event_name().as_deref(), Some("foo"));
///
/// let text = r#"51-["baz",{"_placeholder":true,"num":0}]"#;
/// assert_eq!(decoder.receive(MessageData::Text(text.into())), Ok(None));
/// assert_eq!(decoder.pending_attachments(), 1);
/// let blob = Bytes::from_static(&[1, 2, 3, 4]);
/// let packet = decoder.receive(MessageData::Binary(blob.clone())).unwrap().unwrap();
/// assert_eq!(packet.kind, PacketKind::BinaryEvent);
/// assert_eq!(packet.attachments, [blob]);
/// ```
#[derive(Debug, Clone)]
pub struct Decoder {
    version: ProtocolVersion,
    config: DecoderConfig,
    /// A binary packet waiting for its attachments, and how many it
    /// announced.
    pending: Option<(Packet, usize)>,
}

impl Decoder {
    /// A decoder for a peer speaking `version`.
    pub fn new(version: ProtocolVersion, config: DecoderConfig) -> Self {
        Decoder {
            version,
            config,
            pending: None,
        }
    }

    /// The protocol version being decoded.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// The decoder's settings.
    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }

    /// Takes the next Engine.IO message: returns a packet when one is
    /// complete, `None` while a binary packet waits for attachments.
    pub fn receive(&mut self, message: MessageData) -> Result<Option<Packet>, DecodeError> {
        match message {
            MessageData::Text(text) => self.receive_text(text),
            MessageData::Binary(data) => self.receive_binary(data),
        }
    }

    /// Takes an Engine.IO text message: a new packet.
    pub fn receive_text(&mut self, text: Text) -> Result<Option<Packet>, DecodeError> {
        if let Some((packet, expected)) = self.pending.take() {
            return Err(DecodeError::UnexpectedText {
                missing: expected - packet.attachments.len(),
            });
        }
        let (mut packet, expected) = decode_text(text, self.version, &self.config)?;
        if expected == 0 {
            return Ok(Some(packet));
        }
        // Room for what the default limit allows: the count is the peer's
        // word, and the limit may be raised as far as `usize::MAX`.
        packet.attachments = Vec::with_capacity(expected.min(PREALLOCATED_ATTACHMENTS));
        self.pending = Some((packet, expected));
        Ok(None)
    }

    /// Takes an Engine.IO binary message: the next attachment of the
    /// pending binary packet.
    pub fn receive_binary(&mut self, data: Bytes) -> Result<Option<Packet>, DecodeError> {
        let Some((packet, expected)) = &mut self.pending else {
            return Err(DecodeError::UnexpectedBinary);
        };
        packet.attachments.push(data);
        if packet.attachments.len() < *expected {
            return Ok(None);
        }
        Ok(self.pending.take().map(|(packet, _)| packet))
    }

    /// How many binary messages the pending packet still waits for (0 when
    /// none is pending).
    pub fn pending_attachments(&self) -> usize {
        self.pending
            .as_ref()
            .map_or(0, |(packet, expected)| expected - packet.attachments.len())
    }

    /// Drops a pending partial packet.
    pub fn reset(&mut self) {
        self.pending = None;
    }
}

/// Invalid Socket.IO input: a malformed packet, or a message out of turn.
///
/// What a server does about any of them: close the Engine.IO session, and
/// with it every namespace on it. The protocol says the receiver MUST close
/// the connection, the official server does (its sockets see the disconnect
/// reason [`disconnect_reason`](DecodeError::disconnect_reason),
/// `"parse error"`), and a packet stream with a broken binary sequence
/// cannot be read further anyway.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// An empty text message.
    #[error("empty packet")]
    EmptyPacket,
    /// A first character other than `0`-`6`.
    #[error("unknown packet type {0:?}")]
    UnknownPacketType(char),
    /// A binary packet whose attachment count is missing, not a number, or
    /// not followed by `-`. (A count of 0 is a complete packet, as the
    /// official parsers read it.)
    #[error("invalid attachment count")]
    InvalidAttachmentCount,
    /// A binary packet announcing more attachments than
    /// [`DecoderConfig::max_attachments`].
    #[error("more than {limit} attachments")]
    TooManyAttachments {
        /// The limit.
        limit: usize,
    },
    /// A namespace holding control characters.
    #[error("invalid namespace")]
    InvalidNamespace,
    /// An ack id that overflows, or is followed by something that cannot
    /// start a payload (`21a["foo"]`).
    #[error("invalid ack id")]
    InvalidAckId,
    /// An ack (binary or not) without an ack id.
    #[error("ack without an ack id")]
    MissingAckId,
    /// A payload that is not one JSON value, nests too deep, or holds a
    /// number beyond the range of `f64` or a lone surrogate escape (which
    /// `JSON.parse` reads, but a [`serde_json::Value`] cannot hold).
    #[error("invalid JSON payload: {0}")]
    InvalidJson(String),
    /// An event or ack without a payload.
    #[error("{0:?} packet without a payload")]
    MissingPayload(PacketKind),
    /// A DISCONNECT with a payload.
    #[error("{0:?} packet with a payload")]
    UnexpectedPayload(PacketKind),
    /// A CONNECT whose payload is not an object.
    #[error("CONNECT payload is not an object")]
    InvalidConnectPayload,
    /// A v5 CONNECT_ERROR whose payload is neither an object nor a string.
    #[error("CONNECT_ERROR payload is neither an object nor a string")]
    InvalidConnectErrorPayload,
    /// An event or ack whose payload is not an array.
    #[error("{0:?} payload is not an array")]
    PayloadNotArray(PacketKind),
    /// An event whose payload is an empty array: no name.
    #[error("event without a name")]
    EmptyEvent,
    /// An event whose first element is not a string. (The official parser
    /// 4 also takes numbers; see the module documentation.)
    #[error("event name is not a string")]
    EventNameNotString,
    /// An event named like one of the [`RESERVED_EVENTS`].
    #[error("{0:?} is a reserved event name")]
    ReservedEventName(String),
    /// A placeholder (`"_placeholder": true`) whose `num` is missing or not
    /// a non-negative integer.
    #[error("invalid placeholder")]
    InvalidPlaceholder,
    /// A placeholder pointing past the attachments the packet announced.
    #[error("placeholder {num} points past the {attachments} attachments")]
    PlaceholderOutOfRange {
        /// The placeholder's `num`.
        num: u64,
        /// How many attachments the packet announced.
        attachments: usize,
    },
    /// A binary message while no binary packet waits for attachments.
    #[error("binary message without a binary packet")]
    UnexpectedBinary,
    /// A text message while a binary packet still waits for attachments.
    #[error("text message while {missing} attachments are missing")]
    UnexpectedText {
        /// How many attachments were still missing (the partial packet is
        /// dropped).
        missing: usize,
    },
}

impl DecodeError {
    /// The disconnect reason the sockets of a session closed for this error
    /// report: `"parse error"`, as with Node's server.
    pub fn disconnect_reason(&self) -> &'static str {
        "parse error"
    }
}

/// Decodes a text message: the packet, and how many attachments it waits
/// for.
fn decode_text(
    text: Text,
    version: ProtocolVersion,
    config: &DecoderConfig,
) -> Result<(Packet, usize), DecodeError> {
    let s = text.as_str();
    let bytes = s.as_bytes();
    let first = s.chars().next().ok_or(DecodeError::EmptyPacket)?;
    let kind = PacketKind::from_char(first).ok_or(DecodeError::UnknownPacketType(first))?;
    // The kind is an ASCII digit: the rest starts at byte 1.
    let mut i = 1;

    let mut expected = 0;
    if kind.is_binary() {
        let digits = count_digits(&bytes[i..]);
        if digits == 0 || bytes.get(i + digits) != Some(&b'-') {
            return Err(DecodeError::InvalidAttachmentCount);
        }
        // A count of 0 is a packet "labeled binary but no binary data to
        // follow", as socket.io 2.x sends an event forced binary: complete
        // as it is (as the official parsers take it).
        let count = parse_u64(&bytes[i..i + digits]).unwrap_or(u64::MAX);
        expected = usize::try_from(count)
            .ok()
            .filter(|&count| count <= config.max_attachments)
            .ok_or(DecodeError::TooManyAttachments {
                limit: config.max_attachments,
            })?;
        i += digits + 1;
    }

    let mut namespace = Text::from(DEFAULT_NAMESPACE);
    let mut query = None;
    if bytes.get(i) == Some(&b'/') {
        let end = bytes[i..]
            .iter()
            .position(|&b| b == b',')
            .map_or(bytes.len(), |p| i + p);
        let mut name_end = end;
        if kind == PacketKind::Connect && version == ProtocolVersion::V4 {
            if let Some(q) = s[i..end].find('?') {
                name_end = i + q;
                query = Some(&s[name_end + 1..end]);
            }
        }
        if s[i..name_end].chars().any(char::is_control) {
            return Err(DecodeError::InvalidNamespace);
        }
        namespace = slice(&text, i, name_end);
        i = (end + 1).min(bytes.len());
    }

    let mut id = None;
    let digits = count_digits(&bytes[i..]);
    if digits > 0 {
        id = Some(parse_u64(&bytes[i..i + digits]).ok_or(DecodeError::InvalidAckId)?);
        i += digits;
        if let Some(next) = bytes.get(i) {
            if !matches!(next, b'[' | b'{' | b'"' | b' ' | b'\t' | b'\n' | b'\r') {
                return Err(DecodeError::InvalidAckId);
            }
        }
    }
    if kind.is_ack() && id.is_none() {
        return Err(DecodeError::MissingAckId);
    }

    let json = &s[i..];
    let mut data = None;
    if json.is_empty() {
        if kind.is_event() || kind.is_ack() {
            return Err(DecodeError::MissingPayload(kind));
        }
    } else {
        if kind == PacketKind::Disconnect {
            return Err(DecodeError::UnexpectedPayload(kind));
        }
        check_payload(json, kind, version, expected, config)?;
        data = Some(RawJson::from_valid(slice(&text, i, bytes.len())));
    }
    if let Some(query) = query {
        data = Some(query_to_json(query));
    }

    let packet = Packet {
        kind,
        namespace,
        id,
        data,
        attachments: Vec::new(),
    };
    Ok((packet, expected))
}

/// The part `start..end` of `text` (on character boundaries), sharing its
/// buffer.
fn slice(text: &Text, start: usize, end: usize) -> Text {
    debug_assert!(text.is_char_boundary(start) && text.is_char_boundary(end));
    Text::from_validated(text.as_bytes().slice(start..end))
}

/// How many ASCII digits `bytes` starts with.
fn count_digits(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| b.is_ascii_digit()).count()
}

/// The value of ASCII digits, `None` on overflow.
fn parse_u64(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// How deep the arrays and objects of a payload may nest: as deep as
/// serde_json reads back (its recursion limit of 128 takes 127 levels), so
/// that every payload the decoder, [`RawJson::new`] or
/// [`RawJson::from_serialize`] accepts can be read as a
/// [`serde_json::Value`]. Deeper JSON is refused as invalid.
pub const MAX_JSON_DEPTH: usize = 127;

const TOO_DEEP: &str = "arrays and objects nested deeper than 127 levels";

/// Whether the arrays and objects of `json`, valid JSON, nest at most
/// [`MAX_JSON_DEPTH`] deep. (serde_json's check while skipping a value does
/// not count depth.)
fn nesting_within_limit(json: &str) -> bool {
    let bytes = json.as_bytes();
    if bytes.len() <= MAX_JSON_DEPTH {
        return true;
    }
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() {
                    match bytes[i] {
                        b'\\' => i += 2,
                        b'"' => break,
                        _ => i += 1,
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    true
}

/// Checks that `json` is one JSON value of the shape `kind` takes, which a
/// [`serde_json::Value`] can hold (see [`Checked`]), nested at most
/// [`MAX_JSON_DEPTH`] deep, and, for a binary packet, that its placeholders
/// point at its `attachments`.
fn check_payload(
    json: &str,
    kind: PacketKind,
    version: ProtocolVersion,
    attachments: usize,
    config: &DecoderConfig,
) -> Result<(), DecodeError> {
    let mut shape = None;
    let mut placeholder = None;
    let mut de = serde_json::Deserializer::from_str(json);
    let result = de
        .deserialize_any(PayloadCheck {
            kind,
            version,
            attachments,
            refuse_reserved_events: config.refuse_reserved_events,
            shape: &mut shape,
            placeholder: &mut placeholder,
        })
        .and_then(|()| de.end());
    match result {
        Ok(()) if nesting_within_limit(json) => Ok(()),
        Ok(()) => Err(DecodeError::InvalidJson(TOO_DEEP.into())),
        Err(error) => Err(match (shape, placeholder) {
            (Some(shape), _) => shape,
            (None, Some(PlaceholderError::Invalid)) => DecodeError::InvalidPlaceholder,
            (None, Some(PlaceholderError::OutOfRange(num))) => {
                DecodeError::PlaceholderOutOfRange { num, attachments }
            }
            (None, None) => DecodeError::InvalidJson(error.to_string()),
        }),
    }
}

/// A JSON value read and dropped, checked as a [`serde_json::Value`]
/// reads it: numbers within the range of `f64`, no lone surrogate escapes.
/// (`JSON.parse` takes both, as `Infinity` and as lone surrogates, and
/// [`IgnoredAny`] skips them unchecked; a `Value` cannot hold them.)
struct Checked;

impl<'de> de::Deserialize<'de> for Checked {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Checked)
    }
}

impl<'de> Visitor<'de> for Checked {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_key::<Checked>()?.is_some() {
            map.next_value::<Checked>()?;
        }
        Ok(Checked)
    }
}

/// The top-level value of a payload, checked against its packet's kind.
struct PayloadCheck<'c> {
    kind: PacketKind,
    version: ProtocolVersion,
    attachments: usize,
    refuse_reserved_events: bool,
    shape: &'c mut Option<DecodeError>,
    placeholder: &'c mut Option<PlaceholderError>,
}

/// The shape of a top-level payload.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Found {
    Object,
    Array,
    String,
    Other,
}

impl PayloadCheck<'_> {
    /// Whether a top-level `found` suits the packet's kind.
    fn accepts(&self, found: Found) -> Result<(), DecodeError> {
        use PacketKind::*;
        match (self.kind, found) {
            (Connect, Found::Object) => Ok(()),
            (Connect, _) => Err(DecodeError::InvalidConnectPayload),
            (ConnectError, Found::Object | Found::String) => Ok(()),
            (ConnectError, _) if self.version == ProtocolVersion::V4 => Ok(()),
            (ConnectError, _) => Err(DecodeError::InvalidConnectErrorPayload),
            (Event | BinaryEvent | Ack | BinaryAck, Found::Array) => Ok(()),
            (Event | BinaryEvent | Ack | BinaryAck, _) => {
                Err(DecodeError::PayloadNotArray(self.kind))
            }
            // Refused before the payload is read.
            (Disconnect, _) => Err(DecodeError::UnexpectedPayload(self.kind)),
        }
    }

    fn check<E: de::Error>(self, found: Found) -> Result<(), E> {
        self.accepts(found).map_err(|error| self.fail(error))
    }

    fn fail<E: de::Error>(self, error: DecodeError) -> E {
        *self.shape = Some(error);
        E::custom("payload of the wrong shape")
    }

    /// Checks (binary packet) or skips the rest of an array.
    fn rest<'de, A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.kind.is_binary() {
            while seq
                .next_element_seed(Walk {
                    attachments: self.attachments,
                    error: &mut *self.placeholder,
                })?
                .is_some()
            {}
        } else {
            while seq.next_element::<Checked>()?.is_some() {}
        }
        Ok(())
    }
}

impl<'de> Visitor<'de> for PayloadCheck<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Socket.IO payload")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.check(Found::Other)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.check(Found::Other)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.check(Found::Other)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.check(Found::Other)
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.check(Found::Other)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.check(Found::String)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        if let Err(error) = self.accepts(Found::Object) {
            return Err(self.fail(error));
        }
        Checked.visit_map(map).map(|_| ())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if let Err(error) = self.accepts(Found::Array) {
            return Err(self.fail(error));
        }
        if self.kind.is_event() {
            match seq.next_element_seed(NameVisitor)? {
                None => return Err(self.fail(DecodeError::EmptyEvent)),
                Some(None) => return Err(self.fail(DecodeError::EventNameNotString)),
                Some(Some(name)) if self.refuse_reserved_events && is_reserved_event(&name) => {
                    let error = DecodeError::ReservedEventName(name.into_owned());
                    return Err(self.fail(error));
                }
                Some(Some(_)) => {}
            }
        }
        self.rest(seq)
    }
}

#[cfg(test)]
pub(super) mod testing {
    //! Strategies shared by the codec tests.

    use proptest::prelude::*;

    /// A namespace: `/`, or a path without `,`, `?` or control characters.
    pub(crate) fn arb_namespace() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("/".to_string()),
            "/[a-zA-Z0-9_/.:é😀-]{0,12}",
            "/[^,?\\p{Cc}]{0,8}",
        ]
    }

    /// A JSON value without placeholders (nor numbers that would not
    /// survive a round trip).
    pub(crate) fn arb_json() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            "[a-z0-9 \"\\\\é😀\\u{0}-\\u{1f}]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z_]{0,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use crate::socketio::Binary;
    use proptest::prelude::*;
    use serde_json::json;

    const V4: ProtocolVersion = ProtocolVersion::V4;
    const V5: ProtocolVersion = ProtocolVersion::V5;

    fn decoder(version: ProtocolVersion) -> Decoder {
        Decoder::new(version, DecoderConfig::default())
    }

    /// Decodes a text packet and its attachments.
    fn decode(
        text: &str,
        attachments: &[&[u8]],
        version: ProtocolVersion,
    ) -> Result<Packet, DecodeError> {
        let mut decoder = decoder(version);
        let mut result = decoder.receive(MessageData::Text(Text::from(text.to_owned())))?;
        for attachment in attachments {
            assert!(result.is_none(), "{text}: complete before its attachments");
            result = decoder.receive(MessageData::Binary(Bytes::copy_from_slice(attachment)))?;
        }
        Ok(result.unwrap_or_else(|| panic!("{text}: incomplete")))
    }

    fn decode_err(text: &str, version: ProtocolVersion) -> DecodeError {
        decode_text(
            Text::from(text.to_owned()),
            version,
            &DecoderConfig::default(),
        )
        .expect_err(text)
    }

    fn packet(
        kind: PacketKind,
        namespace: &'static str,
        data: Option<&str>,
        id: Option<u64>,
    ) -> Packet {
        Packet {
            kind,
            namespace: namespace.into(),
            id,
            data: data.map(|json| RawJson::new(json.to_owned()).unwrap()),
            attachments: Vec::new(),
        }
    }

    fn with_attachments(mut packet: Packet, attachments: &[&[u8]]) -> Packet {
        packet.attachments = attachments
            .iter()
            .map(|a| Bytes::copy_from_slice(a))
            .collect();
        packet
    }

    #[test]
    fn packet_kinds() {
        for n in 0..=6u8 {
            let kind = PacketKind::from_u8(n).unwrap();
            assert_eq!(kind.as_u8(), n);
            assert_eq!(PacketKind::from_char(kind.as_char()), Some(kind));
            assert_eq!(kind.to_binary().to_plain(), kind.to_plain());
            assert_eq!(
                kind.to_binary().is_binary(),
                kind.is_event() || kind.is_ack()
            );
        }
        assert_eq!(PacketKind::from_u8(7), None);
        assert_eq!(PacketKind::from_char('7'), None);
        assert_eq!(PacketKind::from_char('٣'), None);
        assert_eq!(PacketKind::Event.to_binary(), PacketKind::BinaryEvent);
        assert_eq!(PacketKind::BinaryAck.to_plain(), PacketKind::Ack);
        assert_eq!(PacketKind::Connect.to_binary(), PacketKind::Connect);
    }

    /// Every example of the protocol v5 document ("Packet encoding" and
    /// "Sample session"), both ways.
    #[test]
    fn v5_spec_examples() {
        use PacketKind::*;
        let b1234: &[u8] = &[1, 2, 3, 4];
        let cases: Vec<(Packet, &str, Vec<&[u8]>)> = vec![
            (packet(Connect, "/", None, None), "0", vec![]),
            (
                packet(
                    Connect,
                    "/",
                    Some(r#"{"sid":"wZX3oN0bSVIhsaknAAAI"}"#),
                    None,
                ),
                r#"0{"sid":"wZX3oN0bSVIhsaknAAAI"}"#,
                vec![],
            ),
            (packet(Connect, "/admin", None, None), "0/admin,", vec![]),
            (
                packet(
                    Connect,
                    "/admin",
                    Some(r#"{"sid":"oSO0OpakMV_3jnilAAAA"}"#),
                    None,
                ),
                r#"0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}"#,
                vec![],
            ),
            (
                packet(
                    ConnectError,
                    "/",
                    Some(r#"{"message":"Not authorized"}"#),
                    None,
                ),
                r#"4{"message":"Not authorized"}"#,
                vec![],
            ),
            (
                packet(Event, "/", Some(r#"["foo"]"#), None),
                r#"2["foo"]"#,
                vec![],
            ),
            (
                packet(Event, "/admin", Some(r#"["bar"]"#), None),
                r#"2/admin,["bar"]"#,
                vec![],
            ),
            (
                with_attachments(
                    packet(
                        BinaryEvent,
                        "/",
                        Some(r#"["baz",{"_placeholder":true,"num":0}]"#),
                        None,
                    ),
                    &[b1234],
                ),
                r#"51-["baz",{"_placeholder":true,"num":0}]"#,
                vec![b1234],
            ),
            (
                with_attachments(
                    packet(
                        BinaryEvent,
                        "/admin",
                        Some(
                            r#"["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
                        ),
                        None,
                    ),
                    &[&[1, 2], &[3, 4]],
                ),
                r#"52-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
                vec![&[1u8, 2][..], &[3, 4][..]],
            ),
            (
                packet(Event, "/", Some(r#"["foo"]"#), Some(12)),
                r#"212["foo"]"#,
                vec![],
            ),
            (packet(Ack, "/", Some("[]"), Some(12)), "312[]", vec![]),
            (
                packet(Event, "/admin", Some(r#"["foo"]"#), Some(13)),
                r#"2/admin,13["foo"]"#,
                vec![],
            ),
            (
                packet(Ack, "/admin", Some(r#"["bar"]"#), Some(13)),
                r#"3/admin,13["bar"]"#,
                vec![],
            ),
            (
                with_attachments(
                    packet(
                        BinaryEvent,
                        "/",
                        Some(r#"["foo",{"_placeholder":true,"num":0}]"#),
                        Some(14),
                    ),
                    &[b1234],
                ),
                r#"51-14["foo",{"_placeholder":true,"num":0}]"#,
                vec![b1234],
            ),
            (
                packet(Ack, "/", Some(r#"["bar"]"#), Some(14)),
                r#"314["bar"]"#,
                vec![],
            ),
            (
                packet(Event, "/", Some(r#"["foo"]"#), Some(15)),
                r#"215["foo"]"#,
                vec![],
            ),
            (
                with_attachments(
                    packet(
                        BinaryAck,
                        "/",
                        Some(r#"["bar",{"_placeholder":true,"num":0}]"#),
                        Some(15),
                    ),
                    &[b1234],
                ),
                r#"61-15["bar",{"_placeholder":true,"num":0}]"#,
                vec![b1234],
            ),
            (packet(Disconnect, "/", None, None), "1", vec![]),
            (packet(Disconnect, "/admin", None, None), "1/admin,", vec![]),
            // Sample session.
            (
                packet(Event, "/", Some(r#"["hey","Jude"]"#), None),
                r#"2["hey","Jude"]"#,
                vec![],
            ),
            (
                packet(
                    Connect,
                    "/admin",
                    Some(r#"{"sid":"-G5j-67EZFp-q59rADQM"}"#),
                    None,
                ),
                r#"0/admin,{"sid":"-G5j-67EZFp-q59rADQM"}"#,
                vec![],
            ),
            (
                packet(Event, "/admin", Some(r#"["tellme"]"#), Some(1)),
                r#"2/admin,1["tellme"]"#,
                vec![],
            ),
            (
                with_attachments(
                    packet(
                        BinaryAck,
                        "/admin",
                        Some(r#"[{"_placeholder":true,"num":0}]"#),
                        Some(1),
                    ),
                    &[b"\xff"],
                ),
                r#"61-/admin,1[{"_placeholder":true,"num":0}]"#,
                vec![&b"\xff"[..]],
            ),
        ];
        for (packet, text, attachments) in cases {
            let encoded = packet.encode(V5);
            assert_eq!(encoded.text, text);
            assert_eq!(encoded.attachments, attachments);
            assert_eq!(decode(text, &attachments, V5), Ok(packet), "{text}");
        }
    }

    /// Every example of the protocol v4 document ("Packet encoding",
    /// "Sample session"), both ways.
    #[test]
    fn v4_spec_examples() {
        use PacketKind::*;
        let cases: Vec<(Packet, &str, Vec<&[u8]>)> = vec![
            (packet(Connect, "/", None, None), "0", vec![]),
            (packet(Connect, "/admin", None, None), "0/admin,", vec![]),
            (packet(Disconnect, "/admin", None, None), "1/admin,", vec![]),
            (
                packet(Event, "/", Some(r#"["hello",1]"#), None),
                r#"2["hello",1]"#,
                vec![],
            ),
            (
                packet(
                    Event,
                    "/admin",
                    Some(r#"["project:delete",123]"#),
                    Some(456),
                ),
                r#"2/admin,456["project:delete",123]"#,
                vec![],
            ),
            (
                packet(Ack, "/admin", Some("[]"), Some(456)),
                "3/admin,456[]",
                vec![],
            ),
            (
                packet(ConnectError, "/admin", Some(r#""Not authorized""#), None),
                r#"4/admin,"Not authorized""#,
                vec![],
            ),
            (
                with_attachments(
                    packet(
                        BinaryEvent,
                        "/",
                        Some(r#"["hello",{"_placeholder":true,"num":0}]"#),
                        None,
                    ),
                    &[&[1, 2, 3]],
                ),
                r#"51-["hello",{"_placeholder":true,"num":0}]"#,
                vec![&[1u8, 2, 3][..]],
            ),
            (
                with_attachments(
                    packet(
                        BinaryEvent,
                        "/admin",
                        Some(r#"["project:delete",{"_placeholder":true,"num":0}]"#),
                        Some(456),
                    ),
                    &[&[1, 2, 3]],
                ),
                r#"51-/admin,456["project:delete",{"_placeholder":true,"num":0}]"#,
                vec![&[1u8, 2, 3][..]],
            ),
            (
                with_attachments(
                    packet(
                        BinaryAck,
                        "/admin",
                        Some(r#"[{"_placeholder":true,"num":0}]"#),
                        Some(456),
                    ),
                    &[&[3, 2, 1]],
                ),
                r#"61-/admin,456[{"_placeholder":true,"num":0}]"#,
                vec![&[3u8, 2, 1][..]],
            ),
            (
                packet(Event, "/", Some(r#"["hey","Jude"]"#), None),
                r#"2["hey","Jude"]"#,
                vec![],
            ),
        ];
        for (packet, text, attachments) in cases {
            let encoded = packet.encode(V4);
            assert_eq!(encoded.text, text);
            assert_eq!(encoded.attachments, attachments);
            assert_eq!(decode(text, &attachments, V4), Ok(packet), "{text}");
        }
    }

    /// v4: the CONNECT's query is its auth, both ways (the document's
    /// `/admin?token=1234&uid=abcd`, and what the socket.io 2 client sends).
    #[test]
    fn v4_connect_query() {
        let decoded = decode("0/admin?token=1234&uid=abcd,", &[], V4).unwrap();
        assert_eq!(decoded.namespace, "/admin");
        assert_eq!(
            decoded.data.as_ref().unwrap().as_str(),
            r#"{"token":"1234","uid":"abcd"}"#
        );
        assert_eq!(decoded.encode(V4).text, "0/admin?token=1234&uid=abcd,");

        // Percent-decoding, `+`, missing values, duplicates (last wins, in
        // the first one's place), empty parts.
        let decoded = decode("0/a?x=%C3%A9+%2C&y&x=2&&=v&z=%zz,", &[], V4).unwrap();
        assert_eq!(
            decoded.data.unwrap().as_str(),
            r#"{"x":"2","y":"","":"v","z":"%zz"}"#
        );
        // Without a trailing comma, and on the main namespace.
        let decoded = decode("0/?token=1", &[], V4).unwrap();
        assert_eq!(decoded.namespace, "/");
        assert_eq!(decoded.data.as_ref().unwrap().as_str(), r#"{"token":"1"}"#);
        assert_eq!(decoded.encode(V4).text, "0/?token=1,");
        // An empty query is an empty auth.
        let decoded = decode("0/admin?,", &[], V4).unwrap();
        assert_eq!(decoded.data.unwrap().as_str(), "{}");

        // Encoding: values that are not strings as their JSON; special
        // characters percent-encoded; other payloads left out.
        let auth = RawJson::new(r#"{"b":1,"a":"x y,é&","c":[true]}"#).unwrap();
        let connect = Packet::connect("/admin", Some(auth));
        assert_eq!(
            connect.encode(V4).text,
            "0/admin?b=1&a=x%20y%2C%C3%A9%26&c=%5Btrue%5D,"
        );
        let decoded = decode(connect.encode(V4).text.as_str(), &[], V4).unwrap();
        assert_eq!(
            decoded.data.unwrap().as_str(),
            r#"{"b":"1","a":"x y,é&","c":"[true]"}"#
        );
        assert_eq!(
            Packet::connect("/admin", Some(RawJson::new("{}").unwrap()))
                .encode(V4)
                .text,
            "0/admin,"
        );
        assert_eq!(
            Packet::connect("/", Some(RawJson::new(r#"{"t":"1"}"#).unwrap()))
                .encode(V5)
                .text,
            r#"0{"t":"1"}"#
        );

        // In v5 a `?` is part of the namespace, and on v4 only CONNECT has
        // a query.
        assert_eq!(decode("0/a?x=1,", &[], V5).unwrap().namespace, "/a?x=1");
        assert_eq!(decode("1/a?x=1,", &[], V4).unwrap().namespace, "/a?x=1");
    }

    /// A v4 CONNECT's query is read in time linear in its size, as
    /// `URLSearchParams` reads it: a client's one CONNECT holding many
    /// distinct keys (about 45 000 in 300 KB, well within a message) must
    /// not cost time quadratic in their number, which took seconds here.
    #[test]
    fn v4_connect_query_with_many_keys_is_read_whole() {
        // (Read through a map of the keys seen: a key scan per key made
        // this one 300 KB packet take seconds.)
        let keys = 45_000;
        let mut text = String::from("0/admin?");
        for i in 0..keys {
            text.push_str(&format!("k{i}=v&"));
        }
        text.push_str("k7=last,");
        let packet = decode(&text, &[], V4).unwrap();
        let auth: serde_json::Map<String, serde_json::Value> = packet.data().unwrap();
        assert_eq!(auth.len(), keys);
        assert_eq!(auth["k7"], "last");
        assert_eq!(auth["k44999"], "v");
    }

    #[test]
    fn connect_errors() {
        let refusal = Packet::connect_error("/", "Not authorized", None, V5);
        assert_eq!(refusal.encode(V5).text, r#"4{"message":"Not authorized"}"#);
        let data = RawJson::new(r#"{"code":7}"#).unwrap();
        let refusal = Packet::connect_error("/admin", "no", Some(&data), V5);
        assert_eq!(
            refusal.encode(V5).text,
            r#"4/admin,{"message":"no","data":{"code":7}}"#
        );
        assert_eq!(
            refusal.connect_error_data(V5),
            Some(ConnectErrorData {
                message: "no".into(),
                data: Some(json!({"code": 7})),
            })
        );
        // v4: err.data || err.message.
        let refusal = Packet::connect_error("/admin", "no", Some(&data), V4);
        assert_eq!(refusal.encode(V4).text, r#"4/admin,{"code":7}"#);
        assert_eq!(
            refusal.connect_error_data(V4),
            Some(ConnectErrorData {
                message: String::new(),
                data: Some(json!({"code": 7})),
            })
        );
        let refusal = decode(r#"4/admin,"not authorized""#, &[], V4).unwrap();
        assert_eq!(
            refusal.connect_error_data(V4).unwrap().message,
            "not authorized"
        );
        // v4 takes any JSON value; v5 an object or a string.
        assert!(decode("4[1]", &[], V4).is_ok());
        assert!(decode("4 true", &[], V4).is_ok());
        assert_eq!(
            decode_err("4[1]", V5),
            DecodeError::InvalidConnectErrorPayload
        );
        assert_eq!(
            decode_err("4null", V5),
            DecodeError::InvalidConnectErrorPayload
        );
        assert_eq!(
            decode(r#"4"x""#, &[], V5)
                .unwrap()
                .connect_error_data(V5)
                .unwrap()
                .message,
            "x"
        );
        // Without a payload.
        let bare = decode("4/admin,", &[], V5).unwrap();
        assert_eq!(bare.connect_error_data(V5).unwrap().message, "");
        assert_eq!(
            packet(PacketKind::Event, "/", None, None).connect_error_data(V5),
            None
        );
    }

    #[test]
    fn v4_connect_errors_send_the_message_for_falsy_data_as_node() {
        // Node writes `err.data || err.message`: JavaScript's falsy values
        // of data give way to the message.
        for falsy in ["null", "false", "0", "-0", "0.0", "0e5", r#""""#] {
            let data = RawJson::new(falsy).unwrap();
            let refusal = Packet::connect_error("/admin", "no", Some(&data), V4);
            assert_eq!(refusal.encode(V4).text, r#"4/admin,"no""#, "{falsy}");
        }
        for truthy in ["true", "1", "-1", "0.5", r#"" ""#, r#""0""#, "[]", "{}"] {
            let data = RawJson::new(truthy).unwrap();
            let refusal = Packet::connect_error("/admin", "no", Some(&data), V4);
            assert_eq!(
                refusal.encode(V4).text.as_str(),
                format!("4/admin,{truthy}"),
                "{truthy}"
            );
        }
    }

    #[test]
    fn connect_replies() {
        let reply = Packet::connect_reply("/", "wZX3oN0bSVIhsaknAAAI", V5);
        assert_eq!(reply.encode(V5).text, r#"0{"sid":"wZX3oN0bSVIhsaknAAAI"}"#);
        assert_eq!(Packet::connect_reply("/", "x", V4).encode(V4).text, "0");
        // The sid is escaped as JSON.
        let reply = Packet::connect_reply("/", "a\"b", V5);
        assert_eq!(
            reply.data::<serde_json::Value>().unwrap(),
            json!({"sid": "a\"b"})
        );
    }

    #[test]
    fn encoding_events_and_acks() {
        let cases: [(Encoded, &str); 12] = [
            (encode_event("/", "foo", &(), None).unwrap(), r#"2["foo"]"#),
            (
                encode_event("/", "foo", "bar", None).unwrap(),
                r#"2["foo","bar"]"#,
            ),
            (
                encode_event("/", "foo", &("a", 1, true), Some(0)).unwrap(),
                r#"20["foo","a",1,true]"#,
            ),
            (
                encode_event("/", "foo", &[1, 2], None).unwrap(),
                r#"2["foo",1,2]"#,
            ),
            (
                encode_event("/", "foo", &(vec![1, 2],), None).unwrap(),
                r#"2["foo",[1,2]]"#,
            ),
            (
                encode_event("/", "foo", &Vec::<u8>::new(), None).unwrap(),
                r#"2["foo"]"#,
            ),
            (
                encode_event("/", "foo", &json!({"a": null}), None).unwrap(),
                r#"2["foo",{"a":null}]"#,
            ),
            (
                encode_event("/", "foo", &None::<u8>, None).unwrap(),
                r#"2["foo",null]"#,
            ),
            (
                encode_event("", "é\"\n", &1, None).unwrap(),
                r#"2["é\"\n",1]"#,
            ),
            (encode_ack("/", 1, &()).unwrap(), "31[]"),
            (
                encode_ack("/x", 1, &("a", "b")).unwrap(),
                r#"3/x,1["a","b"]"#,
            ),
            (
                encode_ack("/", 18446744073709551615, &json!({})).unwrap(),
                "318446744073709551615[{}]",
            ),
        ];
        for (encoded, text) in cases {
            assert_eq!(encoded.text, text);
            assert!(encoded.attachments.is_empty());
            assert_eq!(encoded.message_count(), 1);
        }
        // Binary anywhere in the arguments.
        let encoded = encode_event(
            "/admin",
            "up",
            &(
                json!({"n": 1}),
                Binary::from(vec![1]),
                vec![Binary::from(vec![2])],
            ),
            Some(3),
        )
        .unwrap();
        assert_eq!(
            encoded.text,
            r#"52-/admin,3["up",{"n":1},{"_placeholder":true,"num":0},[{"_placeholder":true,"num":1}]]"#
        );
        assert_eq!(encoded.attachments, [&[1u8][..], &[2]]);
        let messages: Vec<_> = encoded.into_messages().collect();
        assert_eq!(messages.len(), 3);
        assert!(matches!(messages[2], MessageData::Binary(_)));
        let encoded = encode_ack("/", 15, &("bar", Binary::from(vec![1, 2, 3, 4]))).unwrap();
        assert_eq!(
            encoded.text,
            r#"61-15["bar",{"_placeholder":true,"num":0}]"#
        );
        // Twelve attachments: a two-digit count.
        let many: Vec<Binary> = (0..12).map(|i| Binary::from(vec![i])).collect();
        let encoded = encode_event("/", "many", &many, None).unwrap();
        assert!(
            encoded
                .text
                .starts_with(r#"512-["many",{"_placeholder":true,"num":0}"#)
        );
        assert_eq!(encoded.attachments.len(), 12);

        // Errors.
        assert!(matches!(
            encode_event("/", "connect", &(), None),
            Err(EncodeError::ReservedEventName(name)) if name == "connect"
        ));
        let mut bad_keys = std::collections::HashMap::new();
        bad_keys.insert(vec![1], 1);
        assert!(matches!(
            encode_event("/", "x", &bad_keys, None),
            Err(EncodeError::Json(_))
        ));
        assert!(Packet::event("/", "removeListener", &(), None).is_err());
    }

    #[test]
    fn packet_builders_match_the_direct_encoders() {
        let args = ("a", Binary::from(vec![9]), 2);
        let built = Packet::event("/n", "e", &args, Some(4)).unwrap();
        assert_eq!(built.kind, PacketKind::BinaryEvent);
        assert_eq!(
            built.encode(V5),
            encode_event("/n", "e", &args, Some(4)).unwrap()
        );
        let built = Packet::ack("/n", 4, &args).unwrap();
        assert_eq!(built.kind, PacketKind::BinaryAck);
        assert_eq!(built.encode(V4), encode_ack("/n", 4, &args).unwrap());
        let built = Packet::ack("/", 4, "x").unwrap();
        assert_eq!(built.kind, PacketKind::Ack);

        // The kind follows the attachments on encoding.
        let mut event = packet(PacketKind::BinaryEvent, "/", Some(r#"["a"]"#), None);
        assert_eq!(event.encode(V5).text, r#"2["a"]"#);
        event.kind = PacketKind::Event;
        event.attachments = vec![Bytes::from_static(b"x")];
        assert_eq!(event.encode(V5).text, r#"51-["a"]"#);
        // Attachments of other kinds are not sent.
        let mut connect = Packet::connect("/", None);
        connect.attachments = vec![Bytes::from_static(b"x")];
        assert_eq!(
            connect.encode(V5),
            Encoded {
                text: "0".into(),
                attachments: vec![]
            }
        );
    }

    #[test]
    fn reading_arguments() {
        let packet = decode(r#"2["message",1,"2",{"3":[true]}]"#, &[], V5).unwrap();
        assert_eq!(packet.event_name().as_deref(), Some("message"));
        let (a, b, c): (u8, String, serde_json::Value) = packet.args().unwrap();
        assert_eq!((a, b.as_str(), c), (1, "2", json!({"3": [true]})));
        let all: Vec<serde_json::Value> = packet.args().unwrap();
        assert_eq!(all, [json!(1), json!("2"), json!({"3": [true]})]);
        // Fewer elements than there are arguments: the rest is ignored.
        let (a,): (u8,) = packet.args().unwrap();
        assert_eq!(a, 1);
        assert!(packet.args::<(u8, u8)>().is_err());
        assert_eq!(packet.arg::<&str>(1).unwrap(), "2");
        assert_eq!(packet.arg::<Option<u8>>(9).unwrap(), None);
        assert_eq!(packet.data::<serde_json::Value>().unwrap()[0], "message");

        // Escaped names are unescaped; plain ones borrowed.
        let packet = decode(r#"2 [ "a\"b" , 1 ]"#, &[], V5).unwrap();
        assert_eq!(packet.event_name().as_deref(), Some("a\"b"));
        let packet = decode(r#"2["plain"]"#, &[], V5).unwrap();
        assert!(matches!(packet.event_name(), Some(Cow::Borrowed("plain"))));
        assert_eq!(packet.args::<Vec<u8>>().unwrap(), Vec::<u8>::new());
        // Not an event.
        let ack = decode(r#"31["a",2]"#, &[], V5).unwrap();
        assert_eq!(ack.event_name(), None);
        assert_eq!(ack.args::<(String, u8)>().unwrap(), ("a".into(), 2));
        assert_eq!(ack.arg::<u8>(1).unwrap(), 2);
        let connect = decode(r#"0{"token":"123"}"#, &[], V5).unwrap();
        assert_eq!(
            connect.data::<serde_json::Value>().unwrap(),
            json!({"token": "123"})
        );
        assert!(connect.args::<Vec<u8>>().is_err());
        let bare = decode("0", &[], V5).unwrap();
        assert_eq!(bare.data::<Option<serde_json::Value>>().unwrap(), None);
        assert_eq!(bare.args::<Vec<u8>>().unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn binary_reassembly() {
        let text = r#"52-/admin,3["message",{"_placeholder":true,"num":1},{"x":{"_placeholder":true,"num":0}}]"#;
        let mut decoder = decoder(V5);
        assert_eq!(decoder.receive_text(Text::from(text.to_owned())), Ok(None));
        assert_eq!(decoder.pending_attachments(), 2);
        assert_eq!(
            decoder.receive_binary(Bytes::from_static(&[1, 2, 3])),
            Ok(None)
        );
        assert_eq!(decoder.pending_attachments(), 1);
        let packet = decoder
            .receive_binary(Bytes::from_static(&[4, 5, 6]))
            .unwrap()
            .unwrap();
        assert_eq!(decoder.pending_attachments(), 0);
        assert_eq!(packet.kind, PacketKind::BinaryEvent);
        assert_eq!(packet.namespace, "/admin");
        assert_eq!(packet.id, Some(3));
        assert_eq!(packet.attachments, [&[1u8, 2, 3][..], &[4, 5, 6]]);

        #[derive(serde::Deserialize)]
        struct Holder {
            x: Binary,
        }
        let (first, holder): (Binary, Holder) = packet.args().unwrap();
        assert_eq!(&first[..], &[4, 5, 6]);
        assert_eq!(&holder.x[..], &[1, 2, 3]);
        // Zero-copy: the attachments themselves.
        assert_eq!(first.as_ptr(), packet.attachments[1].as_ptr());
        // Placeholders by index, with dynamic values.
        let value: serde_json::Value = packet.arg(0).unwrap();
        assert_eq!(value, json!({"_placeholder": true, "num": 1}));

        // Re-encoding sends the same messages.
        let encoded = packet.encode(V5);
        assert_eq!(encoded.text, text);
        assert_eq!(encoded.attachments, packet.attachments);

        // Packets after a binary one decode normally.
        let next = decoder
            .receive_text(Text::from(r#"2["after"]"#))
            .unwrap()
            .unwrap();
        assert_eq!(next.event_name().as_deref(), Some("after"));
        // Empty attachments count.
        let mut decoder = self::decoder(V4);
        assert_eq!(
            decoder.receive_text(Text::from(r#"61-1[{"_placeholder":true,"num":0}]"#)),
            Ok(None)
        );
        let packet = decoder.receive_binary(Bytes::new()).unwrap().unwrap();
        assert_eq!(packet.attachments, [Bytes::new()]);
    }

    #[test]
    fn out_of_turn_messages() {
        let mut decoder = decoder(V5);
        assert_eq!(
            decoder.receive_binary(Bytes::from_static(b"x")),
            Err(DecodeError::UnexpectedBinary)
        );
        assert_eq!(
            decoder.receive_text(Text::from(r#"52-["a",{"_placeholder":true,"num":1}]"#)),
            Ok(None)
        );
        assert_eq!(decoder.receive_binary(Bytes::from_static(b"x")), Ok(None));
        assert_eq!(
            decoder.receive_text(Text::from(r#"2["b"]"#)),
            Err(DecodeError::UnexpectedText { missing: 1 })
        );
        // The partial packet is dropped; the decoder starts over.
        assert_eq!(decoder.pending_attachments(), 0);
        assert!(
            decoder
                .receive_text(Text::from(r#"2["b"]"#))
                .unwrap()
                .is_some()
        );
        assert_eq!(
            decoder.receive(MessageData::Binary(Bytes::new())),
            Err(DecodeError::UnexpectedBinary)
        );
        // reset() drops a pending packet.
        assert_eq!(decoder.receive_text(Text::from(r#"51-["a"]"#)), Ok(None));
        decoder.reset();
        assert_eq!(
            decoder.receive_binary(Bytes::new()),
            Err(DecodeError::UnexpectedBinary)
        );
        assert_eq!(decoder.version(), V5);
        assert_eq!(decoder.config().max_attachments, 10);
    }

    #[test]
    fn decode_errors() {
        use DecodeError::*;
        let cases: Vec<(&str, DecodeError)> = vec![
            ("", EmptyPacket),
            ("7", UnknownPacketType('7')),
            ("a", UnknownPacketType('a')),
            ("é", UnknownPacketType('é')),
            ("4abc", InvalidJson(String::new())),
            // Attachment counts.
            (r#"5["a"]"#, InvalidAttachmentCount),
            (r#"5-["a"]"#, InvalidAttachmentCount),
            (r#"51["a"]"#, InvalidAttachmentCount),
            (r#"51e1-["a"]"#, InvalidAttachmentCount),
            ("5", InvalidAttachmentCount),
            (r#"611-1[]"#, TooManyAttachments { limit: 10 }),
            (
                r#"599999999999999999999999-["a"]"#,
                TooManyAttachments { limit: 10 },
            ),
            // Namespaces.
            ("0/a\u{0}b,", InvalidNamespace),
            ("2/a\nb,[\"x\"]", InvalidNamespace),
            // Ack ids.
            (r#"21a["foo"]"#, InvalidAckId),
            (r#"2/admin,1.5["a"]"#, InvalidAckId),
            (r#"299999999999999999999["a"]"#, InvalidAckId),
            (r#"2abc["a"]"#, InvalidJson(String::new())),
            (r#"3["a"]"#, MissingAckId),
            (r#"61-[{"_placeholder":true,"num":0}]"#, MissingAckId),
            // Payloads.
            (r#"2["a""#, InvalidJson(String::new())),
            (r#"2["a"]x"#, InvalidJson(String::new())),
            (r#"2["a"]["b"]"#, InvalidJson(String::new())),
            ("2", MissingPayload(PacketKind::Event)),
            ("2/admin,", MissingPayload(PacketKind::Event)),
            (r#"2/admin["a"]"#, MissingPayload(PacketKind::Event)),
            ("31", MissingPayload(PacketKind::Ack)),
            ("1{}", UnexpectedPayload(PacketKind::Disconnect)),
            ("1/a,[]", UnexpectedPayload(PacketKind::Disconnect)),
            ("0[]", InvalidConnectPayload),
            ("0null", InvalidConnectPayload),
            (r#"0"x""#, InvalidConnectPayload),
            (r#"2{"a":1}"#, PayloadNotArray(PacketKind::Event)),
            (r#"2"a""#, PayloadNotArray(PacketKind::Event)),
            (r#"31{}"#, PayloadNotArray(PacketKind::Ack)),
            (r#"61-1"x""#, PayloadNotArray(PacketKind::BinaryAck)),
            ("2[]", EmptyEvent),
            ("2[1]", EventNameNotString),
            (r#"2[{"a":[1]},"b"]"#, EventNameNotString),
            ("2[null]", EventNameNotString),
            (r#"2["connect"]"#, ReservedEventName("connect".into())),
            (
                r#"2["disconnecting",1]"#,
                ReservedEventName("disconnecting".into()),
            ),
            // Placeholders.
            (
                r#"51-["a",{"_placeholder":true,"num":1}]"#,
                PlaceholderOutOfRange {
                    num: 1,
                    attachments: 1,
                },
            ),
            (
                r#"51-["a",[{"_placeholder":true,"num":9}]]"#,
                PlaceholderOutOfRange {
                    num: 9,
                    attachments: 1,
                },
            ),
            (r#"51-["a",{"_placeholder":true}]"#, InvalidPlaceholder),
            (
                r#"51-["a",{"_placeholder":true,"num":"0"}]"#,
                InvalidPlaceholder,
            ),
            (
                r#"51-["a",{"_placeholder":true,"num":0.0}]"#,
                InvalidPlaceholder,
            ),
            (
                r#"51-["a",{"_placeholder":true,"num":-1}]"#,
                InvalidPlaceholder,
            ),
            (
                r#"61-1[{"_placeholder":true,"num":1}]"#,
                PlaceholderOutOfRange {
                    num: 1,
                    attachments: 1,
                },
            ),
        ];
        for (text, error) in cases {
            let got = decode_err(text, V5);
            match (&got, &error) {
                (InvalidJson(_), InvalidJson(_)) => {}
                _ => assert_eq!(got, error, "{text:?}"),
            }
            assert_eq!(got.disconnect_reason(), "parse error");
        }
        // Deep nesting is an error, not a stack overflow.
        let deep = format!("2[\"a\",{}]", "[".repeat(100_000));
        assert!(matches!(decode_err(&deep, V5), InvalidJson(_)));
        let deep = format!("51-[\"a\",{}]", "{\"a\":".repeat(100_000));
        assert!(matches!(decode_err(&deep, V5), InvalidJson(_)));
    }

    #[test]
    fn lenient_forms_node_accepts() {
        // A namespace without its comma, at the end of the packet.
        assert_eq!(decode("0/random", &[], V5).unwrap().namespace, "/random");
        assert_eq!(decode("1/custom", &[], V5).unwrap().namespace, "/custom");
        // The main namespace spelled out.
        let packet = decode(r#"2/,["a"]"#, &[], V5).unwrap();
        assert_eq!(packet.namespace, "/");
        assert_eq!(packet.encode(V5).text, r#"2["a"]"#);
        // Whitespace around the payload.
        assert_eq!(
            decode("2 [\"a\"] ", &[], V5)
                .unwrap()
                .data
                .unwrap()
                .as_str(),
            " [\"a\"] "
        );
        assert_eq!(decode(r#"2/a,1 ["a"]"#, &[], V5).unwrap().id, Some(1));
        // An id on a packet that does not use one is kept.
        assert_eq!(decode("1/a,5", &[], V5).unwrap().id, Some(5));
        // Placeholders in a packet without attachments are plain objects;
        // placeholders may be left unused.
        assert!(decode(r#"2["a",{"_placeholder":true,"num":5}]"#, &[], V5).is_ok());
        assert!(
            decode(
                r#"52-["a",{"_placeholder":true,"num":1}]"#,
                &[&b"x"[..], &b"y"[..]],
                V5
            )
            .is_ok()
        );
        // Reserved names, when allowed.
        let config = DecoderConfig {
            refuse_reserved_events: false,
            ..DecoderConfig::default()
        };
        let mut lenient = Decoder::new(V4, config);
        assert!(
            lenient
                .receive_text(Text::from(r#"2["connect"]"#))
                .unwrap()
                .is_some()
        );
        // More attachments, when allowed.
        let config = DecoderConfig {
            max_attachments: 11,
            ..DecoderConfig::default()
        };
        let mut decoder = Decoder::new(V5, config);
        assert_eq!(decoder.receive_text(Text::from(r#"511-["a"]"#)), Ok(None));
        assert_eq!(decoder.pending_attachments(), 11);
    }

    /// A binary packet announcing no attachments (`50-`), as socket.io
    /// 2.x writes an event forced binary without binary data
    /// (`socket.binary(true).emit("x", "y")`): socket.io-parser (3.x and
    /// 4.x) hands it out at once, "labeled binary but no binary data to
    /// follow". It is complete, and the packet after it decodes.
    #[test]
    fn binary_packets_without_attachments_are_complete() {
        for version in [V4, V5] {
            let mut decoder = decoder(version);
            let packet = decoder
                .receive_text(Text::from(r#"50-/nsp,0["forced binary"]"#))
                .unwrap()
                .unwrap();
            assert_eq!(packet.kind, PacketKind::BinaryEvent);
            assert_eq!((packet.namespace.as_str(), packet.id), ("/nsp", Some(0)));
            assert_eq!(packet.event_name().as_deref(), Some("forced binary"));
            assert!(packet.attachments.is_empty());
            assert_eq!(decoder.pending_attachments(), 0);
            // Sent on as the plain event it is.
            assert_eq!(packet.encode(version).text, r#"2/nsp,0["forced binary"]"#);
            let ack = decoder
                .receive_text(Text::from(r#"60-3["ok",1]"#))
                .unwrap()
                .unwrap();
            assert_eq!((ack.kind, ack.id), (PacketKind::BinaryAck, Some(3)));
            assert_eq!(ack.args::<(String, u8)>().unwrap(), ("ok".into(), 1));
            // A placeholder still needs an attachment to point at.
            assert_eq!(
                decoder.receive_text(Text::from(r#"50-["a",{"_placeholder":true,"num":0}]"#)),
                Err(DecodeError::PlaceholderOutOfRange {
                    num: 0,
                    attachments: 0
                })
            );
            assert!(
                decoder
                    .receive_text(Text::from(r#"2["next"]"#))
                    .unwrap()
                    .is_some()
            );
            assert_eq!(
                decoder.receive_binary(Bytes::from_static(b"x")),
                Err(DecodeError::UnexpectedBinary)
            );
        }
    }

    /// However many attachments a packet announces, the decoder sets
    /// nothing aside for them before they come: a limit raised as far as
    /// it goes (`usize::MAX`, no limit) must not let one packet's count
    /// make the decoder reserve memory for that many (a capacity overflow
    /// panic, or an allocation failure that aborts the process).
    #[test]
    fn a_huge_attachment_count_reserves_nothing() {
        let config = DecoderConfig {
            max_attachments: usize::MAX,
            ..DecoderConfig::default()
        };
        for count in [
            "18446744073709551615",
            "99999999999999",
            "4611686018427387904",
        ] {
            let mut decoder = Decoder::new(V5, config);
            let text = format!(r#"5{count}-["a",{{"_placeholder":true,"num":0}}]"#);
            assert_eq!(decoder.receive_text(Text::from(text)), Ok(None));
            assert_eq!(
                decoder.pending_attachments(),
                count.parse::<usize>().unwrap()
            );
            assert_eq!(decoder.receive_binary(Bytes::from_static(b"x")), Ok(None));
            // The next text ends the partial packet; the one after decodes.
            assert!(matches!(
                decoder.receive_text(Text::from(r#"2["b"]"#)),
                Err(DecodeError::UnexpectedText { .. })
            ));
            assert!(
                decoder
                    .receive_text(Text::from(r#"2["b"]"#))
                    .unwrap()
                    .is_some()
            );
        }
    }

    /// A [`Binary`] in a type serde reads through a buffer of its own
    /// (`#[serde(flatten)]`, untagged and internally tagged enums) reads
    /// back from the placeholder the encoder wrote for it, without a copy.
    #[test]
    fn binary_in_flattened_and_untagged_types_reads_back() {
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        struct File {
            file: Binary,
            thumb: Option<Binary>,
        }
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        struct Upload {
            name: String,
            #[serde(flatten)]
            file: File,
        }
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        #[serde(untagged)]
        enum Message {
            Text { text: String },
            Blob { blob: Binary },
        }
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        #[serde(tag = "type")]
        enum Chunk {
            Data { index: u32, data: Vec<Binary> },
            End,
        }
        type Args = (Upload, Vec<Message>, Chunk, Chunk);
        let args: Args = (
            Upload {
                name: "a.png".into(),
                file: File {
                    file: Binary::from(vec![1, 2]),
                    thumb: Some(Binary::from(vec![3])),
                },
            },
            vec![
                Message::Text { text: "hi".into() },
                Message::Blob {
                    blob: Binary::from(vec![4]),
                },
            ],
            Chunk::Data {
                index: 7,
                data: vec![Binary::from(vec![5]), Binary::from(vec![])],
            },
            Chunk::End,
        );
        for version in [V4, V5] {
            let encoded = encode_event("/up", "upload", &args, Some(1)).unwrap();
            assert_eq!(encoded.attachments.len(), 5);
            let attachments: Vec<&[u8]> = encoded.attachments.iter().map(|a| &a[..]).collect();
            let packet = decode(encoded.text.as_str(), &attachments, version).unwrap();
            let back: Args = packet.args().unwrap();
            assert_eq!(back, args);
            assert_eq!(back.0.file.file.as_ptr(), packet.attachments[0].as_ptr());
            assert_eq!(packet.arg::<Upload>(0).unwrap(), args.0);
            // An array is not one message.
            assert!(packet.arg::<Message>(1).is_err());
            assert_eq!(packet.arg::<Vec<Message>>(1).unwrap(), args.1);
            let whole: (String, Upload, Vec<Message>, Chunk, Chunk) = packet.data().unwrap();
            assert_eq!((whole.1, whole.2, whole.3, whole.4), args);
            let ack = encode_ack(
                "/up",
                1,
                &(Chunk::Data {
                    index: 0,
                    data: vec![Binary::from(vec![9])],
                },),
            )
            .unwrap();
            let packet = decode(ack.text.as_str(), &[&[9]], version).unwrap();
            let (chunk,): (Chunk,) = packet.args().unwrap();
            assert_eq!(
                chunk,
                Chunk::Data {
                    index: 0,
                    data: vec![Binary::from(vec![9])]
                }
            );
        }
        // A placeholder that points nowhere, or is malformed, is still an
        // error there.
        for text in [
            r#"51-["e",{"name":"x","file":{"_placeholder":false,"num":0}}]"#,
            r#"51-["e",{"name":"x","file":{"num":0}}]"#,
        ] {
            let decoded = decode(text, &[b"x"], V5).unwrap();
            assert!(decoded.args::<(Upload,)>().is_err(), "{text}");
        }
        let plain = decode(
            r#"2["e",{"name":"x","file":{"_placeholder":true,"num":0}}]"#,
            &[],
            V5,
        )
        .unwrap();
        assert!(plain.args::<(Upload,)>().is_err());
        let built = with_attachments(
            packet(
                PacketKind::BinaryEvent,
                "/",
                Some(r#"["e",{"name":"x","file":{"_placeholder":true,"num":1}}]"#),
                None,
            ),
            &[b"x"],
        );
        assert!(built.args::<(Upload,)>().is_err());
    }

    #[test]
    fn decoded_parts_share_the_message() {
        let text = Text::from(String::from(r#"2/admin,7["shared",1]"#));
        let start = text.as_bytes().as_ptr();
        let packet = decoder(V5).receive_text(text).unwrap().unwrap();
        assert_eq!(packet.namespace.as_bytes().as_ptr(), start.wrapping_add(1));
        assert_eq!(
            packet.data.as_ref().unwrap().as_str().as_ptr(),
            start.wrapping_add(9)
        );
    }

    #[test]
    fn raw_json() {
        let json = RawJson::new(" [1, {\"a\": null}] ").unwrap();
        assert_eq!(json.to_value(), json!([1, {"a": null}]));
        assert_eq!(json.to_string(), " [1, {\"a\": null}] ");
        assert_eq!(format!("{json:?}"), "RawJson( [1, {\"a\": null}] )");
        assert_eq!(json.clone().into_text(), *json.as_text());
        for bad in ["", " ", "[", "1 2", "{\"a\"}", "nul"] {
            assert!(RawJson::new(bad).is_err(), "{bad:?}");
        }
    }

    /// `depth` arrays nested, the innermost holding a string with brackets
    /// and an escaped quote (which must not count).
    fn nested(depth: usize) -> String {
        format!("{}\"[[{{\\\"\"{}", "[".repeat(depth), "]".repeat(depth))
    }

    /// A value serialized into a [`RawJson`] nests no deeper than what
    /// [`RawJson::new`] takes: one that does (a client's auth, 127 levels,
    /// kept one level down) is an error, not a `RawJson` whose
    /// [`to_value`](RawJson::to_value) panics.
    #[test]
    fn serialized_json_nested_too_deep_is_refused() {
        let mut value = json!("x");
        for _ in 0..MAX_JSON_DEPTH {
            value = json!([value]);
        }
        let raw = RawJson::from_serialize(&value).unwrap();
        assert_eq!(raw.to_value(), value);
        let deeper = json!({ "auth": value });
        assert!(RawJson::from_serialize(&deeper).is_err());
    }

    #[test]
    fn json_nested_deeper_than_serde_json_reads_back_is_refused() {
        // As deep as serde_json reads back, in every place the decoder or
        // the application meets JSON.
        let deepest = nested(MAX_JSON_DEPTH);
        let value = RawJson::new(deepest.clone()).unwrap().to_value();
        assert!(value.is_array());
        let event = decode(
            &format!(r#"2["e",{}]"#, nested(MAX_JSON_DEPTH - 1)),
            &[],
            V5,
        )
        .unwrap();
        assert!(event.data.as_ref().unwrap().to_value().is_array());
        let auth = format!(r#"0{{"a":{}}}"#, nested(MAX_JSON_DEPTH - 1));
        let connect = decode(&auth, &[], V5).unwrap();
        assert!(connect.data.as_ref().unwrap().to_value().is_object());

        // One level deeper: refused, not a panic when read.
        let too_deep = nested(MAX_JSON_DEPTH + 1);
        assert!(RawJson::new(too_deep.clone()).is_err());
        for text in [
            format!(r#"2["e",{}]"#, nested(MAX_JSON_DEPTH)),
            format!(r#"3/chat,7["e",{}]"#, nested(MAX_JSON_DEPTH)),
            format!(r#"0{{"a":{}}}"#, nested(MAX_JSON_DEPTH)),
            format!(r#"0/custom,{{"a":{}}}"#, nested(MAX_JSON_DEPTH + 500)),
        ] {
            assert!(
                matches!(decode_err(&text, V5), DecodeError::InvalidJson(_)),
                "{text}"
            );
        }
        // Brackets inside strings do not count.
        let strings = format!(r#"2["e","{}"]"#, "[{".repeat(300));
        assert!(decode(&strings, &[], V5).is_ok());
    }

    /// JSON that `JSON.parse` reads but a `serde_json::Value` cannot hold
    /// (a number beyond `f64`, which Node reads as `Infinity`; a lone
    /// surrogate escape) is refused wherever JSON comes in, so that reading
    /// an accepted payload as a value (the server's auth, a client's
    /// CONNECT_ERROR) never panics.
    #[test]
    fn json_a_value_cannot_hold_is_refused() {
        for json in [
            "1e400",
            "-1e400",
            r#""\ud800""#,
            r#"{"a":[1e999]}"#,
            r#"{"\udc00":1}"#,
        ] {
            assert!(RawJson::new(json).is_err(), "{json}");
        }
        for (text, version) in [
            (r#"0{"token":1e400}"#, V5),
            (r#"0/admin,{"x":"\ud800"}"#, V5),
            (r#"2["e",1e400]"#, V5),
            (r#"2["e",{"\ud800":1}]"#, V4),
            (r#"3/a,1[{"k":"\udfff"}]"#, V5),
            (r#"4{"message":"no","data":1e400}"#, V5),
            (r#"4[1e400]"#, V4),
            (r#"51-["e",{"_placeholder":true,"num":0},1e400]"#, V5),
        ] {
            assert!(
                matches!(decode_err(text, version), DecodeError::InvalidJson(_)),
                "{text}"
            );
        }
        // Numbers and escapes a value holds still pass.
        for json in [
            "1e308",
            "1e-400",
            "18446744073709551616",
            "-9223372036854775809",
            r#""\ud83d\ude00\u0000""#,
        ] {
            let raw = RawJson::new(json).unwrap();
            let _ = raw.to_value();
        }
        let error = decode(
            r#"4{"message":"no","data":[1e308,"\ud83d\ude00"]}"#,
            &[],
            V5,
        );
        let data = error.unwrap().connect_error_data(V5).unwrap();
        assert_eq!(data.message, "no");
    }

    /// Packets built from arbitrary parts, as the encoder writes them.
    fn arb_packet() -> impl Strategy<Value = Packet> {
        let kind = (0..=6u8).prop_map(|n| PacketKind::from_u8(n).unwrap());
        let attachments = proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(Bytes::from),
            1..4,
        );
        (
            kind,
            arb_namespace(),
            any::<Option<u64>>(),
            "[a-zA-Z0-9 :é\"\\\\]{0,10}",
            proptest::collection::vec(arb_json(), 0..4),
            attachments,
        )
            .prop_map(|(kind, namespace, id, name, args, attachments)| {
                let mut packet = Packet::new(kind, namespace);
                match kind {
                    PacketKind::Connect => {
                        packet.data =
                            id.map(|_| RawJson::from_serialize(&json!({"k": name})).unwrap());
                    }
                    PacketKind::Disconnect => {}
                    PacketKind::ConnectError => {
                        packet.data =
                            Some(RawJson::from_serialize(&json!({"message": name})).unwrap());
                    }
                    PacketKind::Event | PacketKind::BinaryEvent => {
                        let name = if is_reserved_event(&name) {
                            "x".into()
                        } else {
                            name
                        };
                        let mut array = vec![serde_json::Value::String(name)];
                        array.extend(args);
                        packet.id = id;
                        packet.data = Some(RawJson::from_serialize(&array).unwrap());
                    }
                    PacketKind::Ack | PacketKind::BinaryAck => {
                        packet.id = Some(id.unwrap_or(0));
                        packet.data = Some(RawJson::from_serialize(&args).unwrap());
                    }
                }
                if kind.is_binary() {
                    // One placeholder per attachment, at the end.
                    let mut value = packet.data.as_ref().unwrap().to_value();
                    for num in 0..attachments.len() {
                        value
                            .as_array_mut()
                            .unwrap()
                            .push(json!({"_placeholder": true, "num": num}));
                    }
                    packet.data = Some(RawJson::from_serialize(&value).unwrap());
                    packet.attachments = attachments;
                }
                packet
            })
    }

    /// A value with binary data anywhere, read back untagged (so through
    /// serde's own buffer: see `Reading`).
    #[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
    #[serde(untagged)]
    enum Tree {
        Leaf(i64),
        List(Vec<Tree>),
        Map(std::collections::BTreeMap<String, Tree>),
        Blob(Binary),
    }

    fn arb_tree() -> impl Strategy<Value = Tree> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(Tree::Leaf),
            proptest::collection::vec(any::<u8>(), 0..6).prop_map(|b| Tree::Blob(b.into())),
        ];
        leaf.prop_recursive(6, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Tree::List),
                proptest::collection::btree_map("[a-z_]{0,6}", inner, 0..4).prop_map(Tree::Map),
            ]
        })
    }

    /// The binary values of `tree`, in the order they are written.
    fn blobs(tree: &Tree, out: &mut Vec<Binary>) {
        match tree {
            Tree::Leaf(_) => {}
            Tree::Blob(blob) => out.push(blob.clone()),
            Tree::List(items) => items.iter().for_each(|item| blobs(item, out)),
            Tree::Map(map) => map.values().for_each(|item| blobs(item, out)),
        }
    }

    /// The parts of a packet's text as socket.io-parser 4 (`decodeString`)
    /// reads them: kind, attachments, namespace, ack id and payload text.
    /// (Its JavaScript loose comparisons reduced to what they do on the
    /// characters our encoder writes.)
    fn node_parts(text: &str) -> (u8, Option<u64>, String, Option<u64>, String) {
        let chars: Vec<char> = text.chars().collect();
        let at = |i: usize| chars.get(i).copied();
        let kind = at(0).and_then(|c| c.to_digit(10)).unwrap() as u8;
        let mut i = 0;
        let mut attachments = None;
        if kind == 5 || kind == 6 {
            let start = i + 1;
            i += 1;
            while at(i) != Some('-') && i != chars.len() {
                i += 1;
            }
            let buf: String = chars[start..i].iter().collect();
            attachments = Some(buf.parse().unwrap());
        }
        let mut nsp = "/".to_string();
        if at(i + 1) == Some('/') {
            let start = i + 1;
            loop {
                i += 1;
                if at(i) == Some(',') || i == chars.len() {
                    break;
                }
            }
            nsp = chars[start..i].iter().collect();
        }
        let mut id = None;
        if at(i + 1).is_some_and(|c| c.is_ascii_digit()) {
            let start = i + 1;
            loop {
                i += 1;
                if !at(i).is_some_and(|c| c.is_ascii_digit()) {
                    i -= 1;
                    break;
                }
            }
            let digits: String = chars[start..=i].iter().collect();
            id = Some(digits.parse().unwrap());
        }
        let payload: String = chars
            .get(i + 1..)
            .map_or(String::new(), |rest| rest.iter().collect());
        (kind, attachments, nsp, id, payload)
    }

    fn arb_version() -> impl Strategy<Value = ProtocolVersion> {
        prop_oneof![Just(V4), Just(V5)]
    }

    proptest! {
        #[test]
        fn round_trip(packet in arb_packet(), version in arb_version()) {
            // v4 CONNECT payloads travel as a query: strings only.
            let encoded = packet.encode(version);
            let attachments: Vec<&[u8]> = encoded.attachments.iter().map(|a| &a[..]).collect();
            let decoded = decode(encoded.text.as_str(), &attachments, version);
            prop_assert_eq!(decoded, Ok(packet));
        }

        /// What we write, Node's parser reads as we do: the same
        /// namespace, ack id, attachment count and payload.
        #[test]
        fn node_reads_what_we_write(packet in arb_packet(), version in arb_version()) {
            let encoded = packet.encode(version);
            let (kind, attachments, nsp, id, payload) = node_parts(encoded.text.as_str());
            let decoded = decode(
                encoded.text.as_str(),
                &encoded.attachments.iter().map(|a| &a[..]).collect::<Vec<_>>(),
                version,
            )
            .unwrap();
            prop_assert_eq!(kind, decoded.kind.as_u8());
            prop_assert_eq!(attachments, decoded.kind.is_binary().then_some(encoded.attachments.len() as u64));
            let namespace = if packet.namespace.is_empty() { "/" } else { packet.namespace.as_str() };
            if version == V4 && packet.kind == PacketKind::Connect {
                prop_assert!(nsp == namespace || nsp.starts_with(&format!("{namespace}?")), "{}", nsp);
            } else {
                prop_assert_eq!(nsp.as_str(), namespace);
                prop_assert_eq!(payload.as_str(), packet.data.as_ref().map_or("", RawJson::as_str));
            }
            prop_assert_eq!(id, packet.id);
        }

        /// Binary values anywhere in nested arrays and objects, in events
        /// and acks: one attachment each, in order, read back in place.
        #[test]
        fn binary_anywhere_round_trips(
            tree in arb_tree(),
            namespace in arb_namespace(),
            id in any::<u64>(),
            version in arb_version(),
        ) {
            let mut expected = Vec::new();
            blobs(&tree, &mut expected);
            for encoded in [
                encode_event(&namespace, "tree", &(&tree, 1), Some(id)).unwrap(),
                encode_ack(&namespace, id, &(&tree, 1)).unwrap(),
            ] {
                prop_assert_eq!(
                    encoded.attachments.iter().map(|a| &a[..]).collect::<Vec<_>>(),
                    expected.iter().map(|b| &b[..]).collect::<Vec<_>>()
                );
                let mut decoder = decoder(version);
                let mut result = Ok(None);
                for message in encoded.into_messages() {
                    prop_assert_eq!(&result, &Ok(None));
                    result = decoder.receive(message);
                }
                let packet = result.unwrap().unwrap();
                prop_assert_eq!(packet.id, Some(id));
                let (back, one): (Tree, u8) = packet.args().unwrap();
                prop_assert_eq!(&back, &tree);
                prop_assert_eq!(one, 1);
                let mut found = Vec::new();
                blobs(&back, &mut found);
                for (blob, attachment) in found.iter().zip(&packet.attachments) {
                    prop_assert_eq!(blob.as_ptr(), attachment.as_ptr());
                }
            }
        }

        #[test]
        fn typed_round_trip(
            namespace in arb_namespace(),
            args in proptest::collection::vec(arb_json(), 0..4),
            blobs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..8), 0..3),
            id in any::<Option<u64>>(),
        ) {
            let blobs: Vec<Binary> = blobs.into_iter().map(Binary::from).collect();
            let encoded = encode_event(&namespace, "ev", &(&args, &blobs), id).unwrap();
            prop_assert_eq!(encoded.attachments.len(), blobs.len());
            let attachments: Vec<&[u8]> = encoded.attachments.iter().map(|a| &a[..]).collect();
            let packet = decode(encoded.text.as_str(), &attachments, V5).unwrap();
            let name = packet.event_name();
            prop_assert_eq!(name.as_deref(), Some("ev"));
            prop_assert_eq!(packet.id, id);
            let (args_back, blobs_back): (Vec<serde_json::Value>, Vec<Binary>) = packet.args().unwrap();
            prop_assert_eq!(args_back, args.clone());
            prop_assert_eq!(blobs_back, blobs.clone());

            let ack = encode_ack(&namespace, id.unwrap_or(1), &args).unwrap();
            let packet = decode(ack.text.as_str(), &[], V4).unwrap();
            let back: Vec<serde_json::Value> = packet.args().unwrap();
            prop_assert_eq!(back, args);
        }

        #[test]
        fn any_text_decodes_or_fails(text in any::<String>(), version in arb_version()) {
            let _ = decoder(version).receive_text(Text::from(text));
        }

        #[test]
        fn wire_like_text_decodes_or_fails(
            text in "[0-7][0-9/a-z,?=&%\\-\\[\\]{}\":_ .]{0,40}",
            version in arb_version(),
        ) {
            let _ = decoder(version).receive_text(Text::from(text));
        }

        #[test]
        fn any_message_sequence_decodes_or_fails(
            messages in proptest::collection::vec(
                prop_oneof![
                    "[2356][0-9\\-\\[\\]{}\"_a-z:,]{0,30}".prop_map(|t| MessageData::Text(Text::from(t))),
                    Just(MessageData::Text(Text::from(r#"52-["a",{"_placeholder":true,"num":1}]"#))),
                    proptest::collection::vec(any::<u8>(), 0..8).prop_map(|b| MessageData::Binary(b.into())),
                    // JSON at the edges of what a value holds.
                    (
                        prop_oneof![Just("2[\"e\","), Just("0{\"k\":["), Just("4{\"data\":[")],
                        proptest::collection::vec(
                            prop_oneof![
                                Just("1e400"), Just("-1e309"), Just("1e308"), Just("1e-400"),
                                Just("18446744073709551616"), Just(r#""\ud800""#),
                                Just(r#""\udc00\ud800""#), Just(r#""\ud83d\ude00""#),
                            ],
                            0..3,
                        ),
                    )
                        .prop_map(|(head, atoms)| {
                            let close = if head.starts_with('2') { "]" } else { "]}" };
                            let text = format!("{head}{}{close}", atoms.join(","));
                            MessageData::Text(Text::from(text))
                        }),
                ],
                0..12,
            ),
        ) {
            let mut decoder = decoder(V5);
            for message in messages {
                let result = decoder.receive(message);
                if result.is_err() {
                    // An error leaves nothing behind: the next packet decodes.
                    prop_assert_eq!(decoder.pending_attachments(), 0);
                    let next = decoder.clone().receive_text(Text::from(r#"2["next"]"#));
                    prop_assert!(matches!(next, Ok(Some(_))), "{:?}", next);
                }
                if let Ok(Some(packet)) = result {
                    // Whatever decodes can be read and encoded again.
                    let _ = packet.event_name();
                    let _ = packet.args::<serde_json::Value>();
                    let _ = packet.data.as_ref().map(RawJson::to_value);
                    let _ = packet.connect_error_data(V5);
                    let _ = packet.encode(V5);
                }
                prop_assert!(decoder.pending_attachments() <= 10);
            }
        }
    }
}
